//! Bad input and limits: each gets its code, nothing runs.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::json;
use tower::ServiceExt;

use crate::support::{World, code};

#[tokio::test]
async fn malformed_queries_unknown_fields_and_wrong_variables_are_validation() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    let before = w.event_count().await;

    for (query, variables) in [
        ("{ viewer { kind }", json!({})),
        ("{ viewer { favouriteColour } }", json!({})),
        (
            "query($n: Int!) { inbox(first: $n) { edges { cursor } } }",
            json!({ "n": "many" }),
        ),
        (
            "mutation($id: ID!) { reply(ticketId: $id) { id } }",
            json!({ "id": "x" }),
        ),
        (
            "query($f: InboxFilter) { inbox(filter: $f) { edges { cursor } } }",
            json!({ "f": { "status": "SOMEWHERE" } }),
        ),
        (
            "mutation($to: AssignTo!) { assign(ticketId: \"x\", to: $to) { id } }",
            json!({ "to": { "agentId": "00000000-0000-0000-0000-000000000001", "nobody": true } }),
        ),
    ] {
        let answer = w.gql(Some(&token), query, variables).await;
        assert_eq!(code(&answer), "VALIDATION", "{query}: {answer}");
        assert!(
            !answer["errors"][0]["message"].as_str().unwrap().is_empty(),
            "{answer}"
        );
    }

    // A body that is not a GraphQL request at all.
    for body in ["not json", "[1, 2]", "{\"variables\": {}}"] {
        let (status, answer) = w.post_raw(Some(&token), Body::from(body)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(code(&answer), "VALIDATION", "{answer}");
    }

    // A refusal of the service names the field, in the API's spelling.
    let id = w.open_ticket(&c, "Consulta").await;
    let before_reply = w.event_count().await;
    let answer = w
        .gql(
            Some(&token),
            "mutation($id: ID!) { reply(ticketId: $id, body: \"   \") { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&answer), "VALIDATION", "{answer}");
    assert_eq!(answer["errors"][0]["extensions"]["field"], "body");
    assert_eq!(w.event_count().await, before_reply);
    assert!(before_reply > before);
}

#[tokio::test]
async fn over_deep_and_over_complex_queries_are_refused() {
    let w = World::with(&[
        ("VENTANILLA__GATEWAY__MAX_DEPTH", "3"),
        ("VENTANILLA__GATEWAY__MAX_COMPLEXITY", "60"),
    ])
    .await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    let deep = w
        .gql(
            Some(&token),
            "{ inbox { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&deep), "VALIDATION", "{deep}");
    assert!(deep["data"].is_null(), "{deep}");
    let shallow = w
        .gql(
            Some(&token),
            "{ inbox(first: 5) { nodes { id } } }",
            json!({}),
        )
        .await;
    assert!(shallow.get("errors").is_none(), "{shallow}");
    // 25 tickets × (node + 2 fields) is over 60.
    let costly = w
        .gql(
            Some(&token),
            "{ inbox(first: 25) { nodes { id subject } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&costly), "VALIDATION", "{costly}");
}

#[tokio::test]
async fn bodies_over_the_cap_are_413_in_graphql_shape() {
    let w = World::new().await;
    let padding = "x".repeat(ventanilla_gateway::MAX_BODY_BYTES);
    let body = json!({ "query": format!("{{ viewer {{ kind }} }} # {padding}") }).to_string();

    // With its length declared…
    let request = Request::post("/graphql")
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len())
        .body(Body::from(body.clone()))
        .unwrap();
    let (status, answer) = w.send(request).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(code(&answer), "VALIDATION", "{answer}");
    assert!(
        answer["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{answer}"
    );

    // …or streamed without a length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body
        .into_bytes()
        .chunks(8192)
        .map(|c| Ok(c.to_vec()))
        .collect();
    let (status, answer) = w
        .post_raw(None, Body::from_stream(futures::stream::iter(chunks)))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    assert_eq!(code(&answer), "VALIDATION", "{answer}");
}

#[tokio::test]
async fn introspection_works_bounded_and_can_be_switched_off() {
    let w = World::new().await;
    // GraphiQL's standard query nests `ofType` deeper than max_depth.
    let standard = "query IntrospectionQuery { __schema { queryType { name } types { ...FullType } } } \
        fragment FullType on __Type { kind name fields(includeDeprecated: true) { name args { ...InputValue } type { ...TypeRef } } \
          inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name } possibleTypes { ...TypeRef } } \
        fragment InputValue on __InputValue { name type { ...TypeRef } defaultValue } \
        fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name \
          ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } } }";
    let answer = w.gql(None, standard, json!({})).await;
    assert!(answer.get("errors").is_none(), "{answer}");
    let types = answer["data"]["__schema"]["types"].as_array().unwrap();
    assert!(types.iter().any(|t| t["name"] == "Ticket"));

    let bomb = "{ __schema { types { fields { type { fields { type { fields { name } } } } } } } }";
    let answer = w.gql(None, bomb, json!({})).await;
    assert_eq!(code(&answer), "VALIDATION", "{answer}");

    // Mixed with other fields, the ordinary depth limit holds.
    let mixed = "{ viewer { kind } __type(name: \"Ticket\") { fields { type { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { ofType { name } } } } } } } } } } } } }";
    let answer = w.gql(None, mixed, json!({})).await;
    assert_eq!(code(&answer), "VALIDATION", "{answer}");

    let off = World::with(&[("VENTANILLA__GATEWAY__INTROSPECTION", "false")]).await;
    let answer = off
        .gql(None, "{ __schema { types { name } } }", json!({}))
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    assert!(answer["data"].is_null(), "{answer}");
    let answer = off
        .gql(None, "{ __type(name: \"Ticket\") { name } }", json!({}))
        .await;
    assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    // `__typename` is not introspection of the schema.
    let answer = off.gql(None, "{ __typename }", json!({})).await;
    assert_eq!(answer["data"]["__typename"], "Query", "{answer}");
}

#[tokio::test]
async fn browsers_get_graphiql() {
    let w = World::new().await;
    let response = w
        .app
        .clone()
        .oneshot(Request::get("/graphql").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let page = String::from_utf8_lossy(&bytes);
    assert!(page.contains("graphiql"));
    // Its subscriptions go to the WebSocket endpoint.
    assert!(page.contains("/graphql/ws"), "{page}");
}
