//! Staff and the organisation's API keys read the presence figures per
//! day; anonymous callers and bad ranges are refused.

use chrono::{Duration, Utc};
use serde_json::json;

use crate::support::{World, code};

const QUERY: &str = "query($from: Date!, $to: Date!) { presenceHealth(from: $from, to: $to) { \
    day received receivedByChannel { channel count } answered answeredShare \
    firstResponseMedianSecs firstResponseP90Secs socialUnanswered resolved reopened } }";

#[tokio::test]
async fn staff_and_keys_see_the_days_figures_and_a_bad_range_is_refused() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    let id = w.open_ticket(&c, "Farola fundida").await;
    let replied = w
        .gql(
            Some(&token),
            "mutation($id: ID!) { reply(ticketId: $id, body: \"Mañana la cambiamos.\") { id } }",
            json!({ "id": id }),
        )
        .await;
    assert!(replied.get("errors").is_none(), "{replied}");

    // Around today, whatever the organisation's time zone.
    let today = Utc::now().date_naive();
    let from = (today - Duration::days(1)).to_string();
    let to = (today + Duration::days(1)).to_string();
    let answer = w
        .gql(Some(&token), QUERY, json!({ "from": from, "to": to }))
        .await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let days = answer["data"]["presenceHealth"].as_array().unwrap();
    assert_eq!(days.len(), 3, "{answer}");
    assert_eq!(days[0]["day"], from);
    assert_eq!(days[2]["day"], to);
    let busy: Vec<_> = days.iter().filter(|d| d["received"] == 1).collect();
    assert_eq!(busy.len(), 1, "{answer}");
    let day = busy[0];
    assert_eq!(
        day["receivedByChannel"],
        json!([{ "channel": "API", "count": 1 }])
    );
    assert_eq!(day["answered"], 1);
    assert_eq!(day["answeredShare"], 1.0);
    assert!(day["firstResponseMedianSecs"].is_number(), "{day}");
    assert!(day["firstResponseP90Secs"].is_number(), "{day}");
    assert_eq!(day["socialUnanswered"], 0);
    let quiet = days.iter().find(|d| d["received"] == 0).unwrap();
    assert_eq!(quiet["answeredShare"], json!(null));
    assert_eq!(quiet["receivedByChannel"], json!([]));

    // The organisation's integrators see the same figures, with either
    // key; another organisation's key sees its own (none).
    for key in [&c.read_key, &c.write_key] {
        let theirs = w
            .gql(Some(key), QUERY, json!({ "from": from, "to": to }))
            .await;
        assert_eq!(theirs, answer);
    }
    let other = w.council("vigo").await;
    let elsewhere = w
        .gql(
            Some(&other.read_key),
            QUERY,
            json!({ "from": from, "to": to }),
        )
        .await;
    assert!(elsewhere.get("errors").is_none(), "{elsewhere}");
    assert!(
        elsewhere["data"]["presenceHealth"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["received"] == 0),
        "{elsewhere}"
    );
    let anonymous = w.gql(None, QUERY, json!({ "from": from, "to": to })).await;
    assert_eq!(code(&anonymous), "UNAUTHENTICATED", "{anonymous}");
    // A range that ends before it starts names `to`.
    let backwards = w
        .gql(Some(&token), QUERY, json!({ "from": to, "to": from }))
        .await;
    assert_eq!(code(&backwards), "VALIDATION", "{backwards}");
    assert_eq!(backwards["errors"][0]["extensions"]["field"], "to");
    // Not a day at all.
    let malformed = w
        .gql(Some(&token), QUERY, json!({ "from": "ayer", "to": to }))
        .await;
    assert_eq!(code(&malformed), "VALIDATION", "{malformed}");
}
