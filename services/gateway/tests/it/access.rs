//! Who may do what: credentials, scopes, roles and tenants.

use std::sync::Arc;

use serde_json::json;
use ventanilla_tenants::api_keys::ApiKeys;

use crate::support::{OPERATOR_TOKEN, World, code};

#[tokio::test]
async fn a_read_key_reads_but_cannot_mutate_and_nothing_changes() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let id = w.open_ticket(&c, "Bache en la calle").await;
    let token = w.login(&c).await;

    let viewer = w
        .gql(
            Some(&c.read_key),
            "{ viewer { kind scope tenant { name } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        viewer["data"]["viewer"],
        json!({ "kind": "API_KEY", "scope": "READ", "tenant": { "name": "Concello de lugo" } })
    );

    let before = w.event_count().await;
    for (mutation, variables) in [
        (
            "mutation($id: ID!) { reply(ticketId: $id, body: \"hola\") { id } }",
            json!({ "id": id }),
        ),
        (
            "mutation($id: ID!) { close(ticketId: $id) { id } }",
            json!({ "id": id }),
        ),
        (
            "mutation { openTicket(input: { kind: QUESTION, email: \"a@b.es\", subject: \"s\", body: \"b\" }) { id } }",
            json!({}),
        ),
        (
            "mutation { subscribeToTopic(input: { topicId: \"00000000-0000-0000-0000-000000000001\", email: \"a@b.es\" }) { id } }",
            json!({}),
        ),
    ] {
        let answer = w.gql(Some(&c.read_key), mutation, variables).await;
        assert_eq!(code(&answer), "FORBIDDEN", "{mutation}: {answer}");
        assert!(
            answer["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("read_write"),
            "{answer}"
        );
    }
    assert_eq!(
        w.event_count().await,
        before,
        "a refused mutation wrote nothing"
    );

    // A read_write key still may not work tickets, nor read the inbox.
    let answer = w
        .gql(
            Some(&c.write_key),
            "mutation($id: ID!) { reply(ticketId: $id, body: \"hola\") { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    let answer = w
        .gql(
            Some(&c.read_key),
            "{ inbox { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    // Staff may not act as integrators.
    let answer = w
        .gql(
            Some(&token),
            "mutation { openTicket(input: { kind: QUESTION, email: \"a@b.es\", subject: \"s\", body: \"b\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    assert_eq!(w.event_count().await, before);
}

#[tokio::test]
async fn no_bad_expired_or_revoked_credentials_are_unauthenticated() {
    let w = World::new().await;
    let c = w.council("lugo").await;

    // No credentials: only login and the viewer.
    let anonymous = w
        .gql(None, "{ viewer { kind tenant { id } } }", json!({}))
        .await;
    assert_eq!(
        anonymous["data"]["viewer"],
        json!({ "kind": "ANONYMOUS", "tenant": null })
    );
    let answer = w
        .gql(None, "{ inbox { edges { cursor } } }", json!({}))
        .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");

    let forged_session = format!(
        "vs1.{}.{}.{}",
        c.tenant,
        uuid::Uuid::new_v4(),
        "ab".repeat(32)
    );
    let other_tenant_session = format!(
        "vs1.{}.{}.{}",
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        "ab".repeat(32)
    );
    for token in [
        "nonsense",
        &format!("vk_{}", "0".repeat(64)),
        &forged_session,
        &other_tenant_session,
        "vs1.garbage",
    ] {
        let answer = w.gql(Some(token), "{ viewer { kind } }", json!({})).await;
        assert_eq!(code(&answer), "UNAUTHENTICATED", "{token}: {answer}");
        assert!(answer["data"].is_null(), "{answer}");
    }

    // Not a bearer token at all.
    let (_, answer) = w
        .send(
            axum::http::Request::post("/graphql")
                .header(axum::http::header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
                .body(axum::body::Body::from(r#"{"query":"{ viewer { kind } }"}"#))
                .unwrap(),
        )
        .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");

    // A wrong password.
    let answer = w
        .gql(
            None,
            "mutation { login(tenant: \"lugo\", email: \"alcaldia@lugo.gal\", password: \"wrong wrong wrong\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");
    // An unknown organisation.
    let answer = w
        .gql(
            None,
            "mutation { login(tenant: \"nowhere\", email: \"a@b.es\", password: \"whatever it is\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "NOT_FOUND", "{answer}");
    let answer = w
        .gql(
            None,
            "mutation { login(tenant: \"No Such!\", email: \"a@b.es\", password: \"whatever it is\") { token } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "VALIDATION", "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["field"], "tenant");

    // A revoked key is refused on its next use.
    let keys = ApiKeys::new(Arc::clone(&w.log));
    let key = w
        .gql(Some(&c.read_key), "{ viewer { apiKeyId } }", json!({}))
        .await;
    let key_id = key["data"]["viewer"]["apiKeyId"].as_str().unwrap();
    keys.revoke(
        c.tenant,
        c.admin,
        ventanilla_tenants_domain::api_key::ApiKeyId(key_id.parse().unwrap()),
        None,
    )
    .await
    .unwrap();
    let answer = w
        .gql(Some(&c.read_key), "{ viewer { kind } }", json!({}))
        .await;
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_operator_has_no_tenant() {
    let w = World::new().await;
    let viewer = w
        .gql(
            Some(OPERATOR_TOKEN),
            "{ viewer { kind tenant { id } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        viewer["data"]["viewer"],
        json!({ "kind": "OPERATOR", "tenant": null })
    );
    let answer = w
        .gql(
            Some(OPERATOR_TOKEN),
            "{ inbox { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    // Almost the token is no token.
    let almost = &OPERATOR_TOKEN[..OPERATOR_TOKEN.len() - 1];
    let answer = w.gql(Some(almost), "{ viewer { kind } }", json!({})).await;
    assert_eq!(code(&answer), "UNAUTHENTICATED", "{answer}");
}

#[tokio::test]
async fn another_tenants_ticket_is_not_found_and_untouched() {
    let w = World::new().await;
    let lugo = w.council("lugo").await;
    let vigo = w.council("vigo").await;
    let theirs = w.open_ticket(&vigo, "Ruido nocturno").await;
    let token = w.login(&lugo).await;

    let before = w.event_count().await;
    for (query, variables) in [
        (
            "query($id: ID!) { ticket(id: $id) { subject } }",
            json!({ "id": theirs }),
        ),
        (
            "query($id: ID!) { node(id: $id) { id ... on Ticket { subject } } }",
            json!({ "id": theirs }),
        ),
        (
            "mutation($id: ID!) { reply(ticketId: $id, body: \"hola\") { subject } }",
            json!({ "id": theirs }),
        ),
        (
            "mutation($id: ID!) { addNote(ticketId: $id, body: \"hola\") { subject } }",
            json!({ "id": theirs }),
        ),
        (
            "mutation($id: ID!) { close(ticketId: $id) { subject } }",
            json!({ "id": theirs }),
        ),
    ] {
        let answer = w.gql(Some(&token), query, variables).await;
        assert_eq!(code(&answer), "NOT_FOUND", "{query}: {answer}");
        assert!(!answer.to_string().contains("Ruido"), "{answer}");
    }
    assert_eq!(w.event_count().await, before);

    // Not a ticket's id at all.
    let answer = w
        .gql(
            Some(&token),
            "{ ticket(id: \"bm9wZQ==\") { subject } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&answer), "VALIDATION", "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["field"], "id");
    let answer = w
        .gql(Some(&token), "{ node(id: \"bm9wZQ==\") { id } }", json!({}))
        .await;
    assert_eq!(code(&answer), "NOT_FOUND", "{answer}");
}
