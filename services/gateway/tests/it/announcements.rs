//! Staff publish announcements and follow them; refusals write nothing.

use serde_json::json;

use crate::support::{World, code};

const PUBLISH: &str = "mutation($i: PublishAnnouncementInput!) { publishAnnouncement(input: $i) { \
    id title topics publishedAt queued sent failed } }";

#[tokio::test]
async fn staff_publish_and_read_an_announcement_and_a_foreign_topic_is_refused() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    let topic = w
        .gql(
            Some(&token),
            "mutation { addTopic(name: \"Cortes de agua\") { id } }",
            json!({}),
        )
        .await;
    let topic = topic["data"]["addTopic"]["id"].as_str().unwrap().to_owned();

    // A topic that is not the organisation's, or a read key: nothing is
    // written.
    let before = w.event_count().await;
    let unknown = w
        .gql(
            Some(&token),
            PUBLISH,
            json!({ "i": {
                "title": "Corte de agua",
                "body": "Mañana de 9 a 12 en el centro.",
                "topics": ["00000000-0000-0000-0000-000000000001"],
            }}),
        )
        .await;
    assert_eq!(code(&unknown), "NOT_FOUND", "{unknown}");
    let key = w
        .gql(
            Some(&c.read_key),
            PUBLISH,
            json!({ "i": { "title": "Corte de agua", "body": "Mañana.", "topics": [topic] } }),
        )
        .await;
    assert_eq!(code(&key), "FORBIDDEN", "{key}");
    assert_eq!(w.event_count().await, before, "nothing was written");

    let input = json!({ "i": {
        "title": "Corte de agua",
        "body": "Mañana de 9 a 12 en el centro.",
        "link": "https://lugo.gal/avisos/agua",
        "topics": [topic],
        "language": "es",
        "idempotencyKey": "3f1e0c2a-8b7d-4e6f-9a1b-2c3d4e5f6a7b",
    }});
    let published = w.gql(Some(&token), PUBLISH, input.clone()).await;
    assert!(published.get("errors").is_none(), "{published}");
    let a = &published["data"]["publishAnnouncement"];
    assert_eq!(a["title"], "Corte de agua");
    assert_eq!(a["topics"], json!([topic]));
    assert!(a["publishedAt"].is_string(), "{a}");
    assert_eq!(
        (&a["queued"], &a["sent"], &a["failed"]),
        (&json!(0), &json!(0), &json!(0))
    );
    let id = a["id"].as_str().unwrap().to_owned();

    // The same idempotency key publishes once.
    let again = w.gql(Some(&token), PUBLISH, input).await;
    assert_eq!(again["data"]["publishAnnouncement"]["id"], id, "{again}");

    let read = w
        .gql(
            Some(&token),
            "query($id: UUID!) { announcement(id: $id) { id title publishedAt queued sent failed } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(read["data"]["announcement"]["id"], id, "{read}");
    assert_eq!(
        read["data"]["announcement"]["publishedAt"],
        a["publishedAt"]
    );
    let missing = w
        .gql(
            Some(&token),
            "{ announcement(id: \"00000000-0000-0000-0000-000000000002\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&missing), "NOT_FOUND", "{missing}");
}

#[tokio::test]
async fn staff_page_through_their_announcements_newest_first_and_only_theirs() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    let topic_of = |token: String| {
        let w = &w;
        async move {
            let t = w
                .gql(
                    Some(&token),
                    "mutation { addTopic(name: \"Avisos\") { id } }",
                    json!({}),
                )
                .await;
            t["data"]["addTopic"]["id"].as_str().unwrap().to_owned()
        }
    };
    let topic = topic_of(token.clone()).await;
    for n in 0..3 {
        let published = w
            .gql(
                Some(&token),
                PUBLISH,
                json!({ "i": { "title": format!("Aviso {n}"), "body": "Texto.", "topics": [topic] } }),
            )
            .await;
        assert!(published.get("errors").is_none(), "{published}");
    }
    let other = w.council("vigo").await;
    let theirs = w.login(&other).await;
    let their_topic = topic_of(theirs.clone()).await;
    let published = w
        .gql(
            Some(&theirs),
            PUBLISH,
            json!({ "i": { "title": "Aviso de Vigo", "body": "Texto.", "topics": [their_topic] } }),
        )
        .await;
    assert!(published.get("errors").is_none(), "{published}");

    const LIST: &str = "query($after: String) { announcements(first: 2, after: $after) { \
        edges { node { title queued sent failed } } pageInfo { hasNextPage endCursor } } }";
    let first = w.gql(Some(&token), LIST, json!({})).await;
    assert!(first.get("errors").is_none(), "{first}");
    let page = &first["data"]["announcements"];
    let titles = |p: &serde_json::Value| -> Vec<String> {
        p["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["title"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(titles(page), ["Aviso 2", "Aviso 1"]);
    assert_eq!(page["pageInfo"]["hasNextPage"], true);
    let second = w
        .gql(
            Some(&token),
            LIST,
            json!({ "after": page["pageInfo"]["endCursor"] }),
        )
        .await;
    let page = &second["data"]["announcements"];
    assert_eq!(titles(page), ["Aviso 0"], "{second}");
    assert_eq!(page["pageInfo"]["hasNextPage"], false);

    let forged = w
        .gql(Some(&token), LIST, json!({ "after": "not-a-cursor" }))
        .await;
    assert_eq!(code(&forged), "VALIDATION", "{forged}");
    assert_eq!(forged["errors"][0]["extensions"]["field"], "after");
    let too_many = w
        .gql(
            Some(&token),
            "{ announcements(first: 1000) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&too_many), "VALIDATION", "{too_many}");
    let key = w
        .gql(
            Some(&c.read_key),
            "{ announcements { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&key), "FORBIDDEN", "{key}");
}
