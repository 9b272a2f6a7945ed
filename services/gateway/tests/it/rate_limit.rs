//! Rate limiting: per API key and per client address, by the tenant's plan;
//! `429`, `Retry-After` and `RATE_LIMITED` over it.

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt;

use crate::support::{OPERATOR_TOKEN, World};

/// The free plan's `api_requests_per_minute`.
const FREE_PER_MINUTE: usize = 60;

/// `{ viewer { kind } }` with `token` from `peer`: the status, the
/// `Retry-After` header and the JSON answer.
async fn viewer(
    w: &World,
    token: Option<&str>,
    peer: Option<&str>,
) -> (StatusCode, Option<String>, Value) {
    let mut request = Request::post("/graphql").header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let mut request = request
        .body(Body::from(r#"{"query":"{ viewer { kind } }"}"#))
        .unwrap();
    if let Some(peer) = peer {
        let addr: SocketAddr = peer.parse().unwrap();
        request.extensions_mut().insert(ConnectInfo(addr));
    }
    let response = w.app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, retry_after, serde_json::from_slice(&bytes).unwrap())
}

#[tokio::test]
async fn a_key_over_its_plan_gets_429_with_retry_after_and_others_go_on() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    for i in 0..FREE_PER_MINUTE {
        let (status, _, answer) = viewer(&w, Some(&c.read_key), None).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {answer}");
    }
    let (status, retry_after, answer) = viewer(&w, Some(&c.read_key), None).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    let seconds: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&seconds), "{seconds}");
    assert_eq!(answer["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    assert!(answer["data"].is_null(), "{answer}");

    // Another key of the same organisation has its own bucket; the
    // operator is not limited.
    let (status, _, _) = viewer(&w, Some(&c.write_key), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = viewer(&w, Some(OPERATOR_TOKEN), None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn anonymous_requests_are_limited_per_address() {
    let w = World::new().await;
    let limit = ventanilla_gateway::rate_limit::ANONYMOUS_PER_MINUTE as usize;
    for _ in 0..limit {
        let (status, _, _) = viewer(&w, None, Some("10.0.0.1:4000")).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, retry_after, answer) = viewer(&w, None, Some("10.0.0.1:4001")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{answer}");
    assert!(retry_after.is_some());
    assert_eq!(answer["errors"][0]["extensions"]["code"], "RATE_LIMITED");
    // Another address is not affected.
    let (status, _, _) = viewer(&w, None, Some("10.0.0.2:4000")).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_is_also_limited_per_address_within_its_tenant() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    // Both keys from one address share the tenant's bucket for it.
    for i in 0..FREE_PER_MINUTE {
        let key = if i % 2 == 0 {
            &c.read_key
        } else {
            &c.write_key
        };
        let (status, _, answer) = viewer(&w, Some(key), Some("192.0.2.7:5000")).await;
        assert_eq!(status, StatusCode::OK, "request {i}: {answer}");
    }
    let (status, _, _) = viewer(&w, Some(&c.read_key), Some("192.0.2.7:5000")).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    let (status, _, _) = viewer(&w, Some(&c.read_key), Some("192.0.2.8:5000")).await;
    assert_eq!(status, StatusCode::OK);
}
