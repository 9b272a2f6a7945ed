//! Agents change a ticket's priority and merge duplicates; refusals write
//! nothing.

use serde_json::json;

use crate::support::{World, code};

#[tokio::test]
async fn set_priority_answers_with_the_ticket_and_a_read_key_is_refused() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    let id = w.open_ticket(&c, "Bache en la calle").await;

    let set = w
        .gql(
            Some(&token),
            "mutation($id: ID!) { setPriority(ticketId: $id, priority: URGENT) { id priority } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        set["data"]["setPriority"],
        json!({ "id": id, "priority": "URGENT" }),
        "{set}"
    );
    let read = w
        .gql(
            Some(&token),
            "query($id: ID!) { ticket(id: $id) { priority } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(read["data"]["ticket"]["priority"], "URGENT", "{read}");

    let before = w.event_count().await;
    let refused = w
        .gql(
            Some(&c.read_key),
            "mutation($id: ID!) { setPriority(ticketId: $id, priority: LOW) { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    assert_eq!(w.event_count().await, before, "nothing was written");
}

#[tokio::test]
async fn merge_closes_the_duplicate_and_another_tenants_ticket_is_not_found() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let other = w.council("ourense").await;
    let token = w.login(&c).await;
    let duplicate = w.open_ticket(&c, "Farola fundida").await;
    let kept = w.open_ticket(&c, "Farola fundida (otra vez)").await;
    let foreign = w.open_ticket(&other, "Farola de Ourense").await;

    // Another organisation's ticket, on either side: nothing is written.
    let before = w.event_count().await;
    for (from, into) in [(&duplicate, &foreign), (&foreign, &kept)] {
        let refused = w
            .gql(
                Some(&token),
                "mutation($a: ID!, $b: ID!) { merge(ticketId: $a, intoTicketId: $b) { id } }",
                json!({ "a": from, "b": into }),
            )
            .await;
        assert_eq!(code(&refused), "NOT_FOUND", "{refused}");
    }
    assert_eq!(w.event_count().await, before, "nothing was written");

    let merged = w
        .gql(
            Some(&token),
            "mutation($a: ID!, $b: ID!) { merge(ticketId: $a, intoTicketId: $b) { id status mergedInto } }",
            json!({ "a": duplicate, "b": kept }),
        )
        .await;
    assert_eq!(
        merged["data"]["merge"],
        json!({ "id": duplicate, "status": "CLOSED", "mergedInto": kept }),
        "{merged}"
    );
    let target = w
        .gql(
            Some(&token),
            "query($id: ID!) { ticket(id: $id) { status mergedInto } }",
            json!({ "id": kept }),
        )
        .await;
    assert_eq!(
        target["data"]["ticket"]["mergedInto"],
        json!(null),
        "{target}"
    );
    assert_ne!(target["data"]["ticket"]["status"], "CLOSED", "{target}");
}
