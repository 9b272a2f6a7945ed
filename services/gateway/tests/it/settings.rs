//! The organisation's settings through GraphQL: service levels (staff read,
//! admins set, new tickets are due by them), the notifications' sender
//! (admins), and finding a ticket by the reference a citizen quotes.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::organisation::agent_token;
use super::support::{OPERATOR_TOKEN, World, code, field, ok};

const LEVELS: &str =
    "{ serviceLevels { firstResponseMinutes resolutionMinutes reopenWindowHours } }";
const CONFIGURE: &str = "mutation($f: Int!, $r: Int!, $w: Int!) { configureServiceLevels(firstResponseMinutes: $f, resolutionMinutes: $r, reopenWindowHours: $w) { firstResponseMinutes resolutionMinutes reopenWindowHours } }";
const SENDER: &str = "mutation($n: String, $a: String, $r: String) { configureNotificationSender(name: $n, address: $a, replyTo: $r) { name address replyTo } }";

fn time(v: &Value) -> DateTime<Utc> {
    v.as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn admins_set_service_levels_staff_read_them_and_new_tickets_are_due_by_them() {
    let w = World::new().await;
    let c = w.council("lalin").await;
    let admin = w.login(&c).await;
    let agent = agent_token(&w, &c).await;

    let defaults = w.gql(Some(&agent), LEVELS, json!({})).await;
    assert_eq!(
        ok(&defaults)["serviceLevels"],
        json!({ "firstResponseMinutes": 240, "resolutionMinutes": 2400, "reopenWindowHours": 168 })
    );

    let set = w
        .gql(
            Some(&admin),
            CONFIGURE,
            json!({ "f": 60, "r": 480, "w": 72 }),
        )
        .await;
    let wanted =
        json!({ "firstResponseMinutes": 60, "resolutionMinutes": 480, "reopenWindowHours": 72 });
    assert_eq!(ok(&set)["configureServiceLevels"], wanted);
    let read = w.gql(Some(&agent), LEVELS, json!({})).await;
    assert_eq!(ok(&read)["serviceLevels"], wanted, "read your writes");

    // A ticket opened now is due its first answer within the hour (no
    // business hours set: the clock runs round the clock).
    let ticket = w.open_ticket(&c, "Contenedor roto").await;
    let read = w
        .gql(
            Some(&agent),
            "query($id: ID!) { ticket(id: $id) { openedAt dueAt } }",
            json!({ "id": ticket }),
        )
        .await;
    let t = &ok(&read)["ticket"];
    assert_eq!(
        (time(&t["dueAt"]) - time(&t["openedAt"])).num_minutes(),
        60,
        "{t}"
    );

    // Refusals name the argument and change nothing.
    let before = w.event_count().await;
    for (vars, named) in [
        (json!({ "f": 0, "r": 480, "w": 72 }), "firstResponseMinutes"),
        (json!({ "f": 60, "r": -5, "w": 72 }), "resolutionMinutes"),
        (json!({ "f": 60, "r": 480, "w": 9000 }), "reopenWindowHours"),
        (
            json!({ "f": 600, "r": 480, "w": 72 }),
            "firstResponseMinutes",
        ),
    ] {
        let answer = w.gql(Some(&admin), CONFIGURE, vars.clone()).await;
        assert_eq!(code(&answer), "VALIDATION", "{vars}: {answer}");
        assert_eq!(field(&answer), named, "{answer}");
    }
    for (credentials, expected) in [
        (Some(agent.as_str()), "FORBIDDEN"),
        (Some(c.write_key.as_str()), "FORBIDDEN"),
        (Some(OPERATOR_TOKEN), "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ] {
        let answer = w
            .gql(
                credentials,
                CONFIGURE,
                json!({ "f": 30, "r": 480, "w": 72 }),
            )
            .await;
        assert_eq!(code(&answer), expected, "{answer}");
    }
    let answer = w.gql(Some(&c.read_key), LEVELS, json!({})).await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    assert_eq!(w.event_count().await, before, "nothing was written");
    let read = w.gql(Some(&admin), LEVELS, json!({})).await;
    assert_eq!(ok(&read)["serviceLevels"], wanted);

    // Another organisation keeps its own.
    let other = w.council("silleda").await;
    let theirs = w.login(&other).await;
    let read = w.gql(Some(&theirs), LEVELS, json!({})).await;
    assert_eq!(ok(&read)["serviceLevels"]["firstResponseMinutes"], 240);
}

#[tokio::test]
async fn admins_choose_whom_notifications_come_from() {
    let w = World::new().await;
    let c = w.council("carballo").await;
    let admin = w.login(&c).await;
    let agent = agent_token(&w, &c).await;
    let read = "{ notificationSender { name address replyTo } }";

    let defaults = w.gql(Some(&admin), read, json!({})).await;
    assert_eq!(
        ok(&defaults)["notificationSender"],
        json!({ "name": null, "address": null, "replyTo": null })
    );
    let set = w
        .gql(
            Some(&admin),
            SENDER,
            json!({ "n": "Concello de Carballo", "a": "avisos@carballo.gal", "r": "  " }),
        )
        .await;
    let wanted = json!({ "name": "Concello de Carballo", "address": "avisos@carballo.gal", "replyTo": null });
    assert_eq!(ok(&set)["configureNotificationSender"], wanted);
    let again = w.gql(Some(&admin), read, json!({})).await;
    assert_eq!(ok(&again)["notificationSender"], wanted);

    let before = w.event_count().await;
    for (vars, named) in [
        (json!({ "a": "avisos-en-carballo" }), "address"),
        (json!({ "r": "a@b@c.gal" }), "replyTo"),
        (json!({ "n": "x".repeat(500) }), "name"),
    ] {
        let answer = w.gql(Some(&admin), SENDER, vars.clone()).await;
        assert_eq!(code(&answer), "VALIDATION", "{vars}: {answer}");
        assert_eq!(field(&answer), named, "{answer}");
    }
    for credentials in [agent.as_str(), c.write_key.as_str()] {
        for query in [read, SENDER] {
            let answer = w.gql(Some(credentials), query, json!({})).await;
            assert_eq!(code(&answer), "FORBIDDEN", "{query}: {answer}");
        }
    }
    assert_eq!(w.event_count().await, before, "nothing was written");
    let still = w.gql(Some(&admin), read, json!({})).await;
    assert_eq!(ok(&still)["notificationSender"], wanted);
}

#[tokio::test]
async fn staff_find_a_ticket_by_the_reference_a_citizen_quotes() {
    let w = World::new().await;
    let c = w.council("ribadeo").await;
    let other = w.council("foz").await;
    let staff = w.login(&c).await;
    let theirs = w.login(&other).await;
    let id = w.open_ticket(&c, "Banco roto en el paseo").await;
    let read = w
        .gql(
            Some(&staff),
            "query($id: ID!) { ticket(id: $id) { reference } }",
            json!({ "id": id }),
        )
        .await;
    let reference = ok(&read)["ticket"]["reference"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_reference =
        "query($r: String!) { ticketByReference(reference: $r) { id reference subject } }";

    let found = w
        .gql(
            Some(&staff),
            by_reference,
            json!({ "r": format!(" {reference} ") }),
        )
        .await;
    assert_eq!(
        ok(&found)["ticketByReference"],
        json!({ "id": id, "reference": reference, "subject": "Banco roto en el paseo" })
    );
    let answer = w
        .gql(Some(&theirs), by_reference, json!({ "r": reference }))
        .await;
    assert_eq!(
        code(&answer),
        "NOT_FOUND",
        "another organisation's: {answer}"
    );
    let answer = w
        .gql(Some(&staff), by_reference, json!({ "r": "banco roto" }))
        .await;
    assert_eq!(code(&answer), "VALIDATION", "{answer}");
    assert_eq!(field(&answer), "reference", "{answer}");
    let answer = w
        .gql(Some(&c.read_key), by_reference, json!({ "r": reference }))
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
}
