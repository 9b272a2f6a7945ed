//! Integration tests of `ventanilla-webhooks`: signatures (with the
//! Standard Webhooks reference vector), the URL policy, and deliveries to a
//! local axum server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;
use ventanilla_webhooks::{
    SendError, Sender, SignatureError, UrlError, UrlPolicy, check_url, parse_secret, secret_text,
    sign, verify,
};

// ---------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------

const SPEC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const SPEC_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const SPEC_TIMESTAMP: i64 = 1_614_265_330;
const SPEC_BODY: &[u8] = br#"{"test": 2432232314}"#;
const SPEC_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

#[test]
fn reproduces_the_standard_webhooks_reference_vector() {
    let secret = parse_secret(SPEC_SECRET).unwrap();
    assert_eq!(secret_text(&secret), SPEC_SECRET);
    assert_eq!(
        sign(&secret, SPEC_ID, SPEC_TIMESTAMP, SPEC_BODY),
        SPEC_SIGNATURE
    );
    assert_eq!(
        verify(
            &secret,
            SPEC_ID,
            "1614265330",
            SPEC_BODY,
            SPEC_SIGNATURE,
            SPEC_TIMESTAMP,
            300
        ),
        Ok(())
    );
}

#[test]
fn sign_then_verify_round_trips() {
    let secret = b"a secret of some thirty-two bytes";
    let body = br#"{"type":"ticket.replied","data":{"ticket":"T-1"}}"#;
    let signature = sign(secret, "msg_1", 1_700_000_000, body);
    assert!(signature.starts_with("v1,"));
    let ok = verify(
        secret,
        "msg_1",
        "1700000000",
        body,
        &signature,
        1_700_000_010,
        300,
    );
    assert_eq!(ok, Ok(()));
}

#[test]
fn tampering_wrong_secret_and_stale_or_future_timestamps_are_refused() {
    let secret = b"secret-one";
    let body = br#"{"n":1}"#;
    let ts = 1_700_000_000;
    let sig = sign(secret, "msg_1", ts, body);
    let check = |secret: &[u8], id: &str, ts: &str, body: &[u8], now: i64| {
        verify(secret, id, ts, body, &sig, now, 300)
    };

    assert_eq!(
        check(secret, "msg_1", "1700000000", br#"{"n":2}"#, ts),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        check(b"secret-two", "msg_1", "1700000000", body, ts),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        check(secret, "msg_2", "1700000000", body, ts),
        Err(SignatureError::Mismatch)
    );
    // The same signature under another timestamp does not verify either.
    assert_eq!(
        check(secret, "msg_1", "1700000001", body, ts),
        Err(SignatureError::Mismatch)
    );
    // At the edge of the tolerance: accepted; beyond: refused.
    assert_eq!(check(secret, "msg_1", "1700000000", body, ts + 300), Ok(()));
    let old = check(secret, "msg_1", "1700000000", body, ts + 301).unwrap_err();
    assert!(matches!(old, SignatureError::TooOld { age_secs: 301, .. }));
    assert!(old.to_string().contains("replay"), "{old}");
    let future = check(secret, "msg_1", "1700000000", body, ts - 301).unwrap_err();
    assert!(matches!(
        future,
        SignatureError::InFuture {
            ahead_secs: 301,
            ..
        }
    ));
    assert!(matches!(
        check(secret, "msg_1", "yesterday", body, ts),
        Err(SignatureError::InvalidTimestamp { .. })
    ));
}

#[test]
fn any_of_several_signatures_may_match() {
    let body = b"{}";
    let old_secret = b"old secret";
    let new_secret = b"new secret";
    let header = format!(
        "v1a,c29tZXRoaW5nIGVsc2U= v1,bm90IGEgbWF0Y2g= {}  {}",
        sign(old_secret, "msg_1", 10, body),
        sign(new_secret, "msg_1", 10, body)
    );
    assert_eq!(
        verify(old_secret, "msg_1", "10", body, &header, 10, 5),
        Ok(())
    );
    assert_eq!(
        verify(new_secret, "msg_1", "10", body, &header, 10, 5),
        Ok(())
    );
    assert_eq!(
        verify(b"other", "msg_1", "10", body, &header, 10, 5),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        verify(new_secret, "msg_1", "10", body, "v1a,abc garbage", 10, 5),
        Err(SignatureError::NoSignature)
    );
    assert_eq!(
        verify(new_secret, "msg_1", "10", body, "v1,!!!not-base64", 10, 5),
        Err(SignatureError::Mismatch)
    );
}

// ---------------------------------------------------------------------------
// URL policy
// ---------------------------------------------------------------------------

const STRICT: UrlPolicy = UrlPolicy {
    allow_private: false,
};
const LENIENT: UrlPolicy = UrlPolicy {
    allow_private: true,
};

#[tokio::test]
async fn check_url_refuses_what_webhooks_must_not_reach() {
    let refused = [
        "ftp://example.org/hook",
        "https://user:pass@93.184.216.34/hook",
        "https://token@93.184.216.34/hook",
        "http://127.0.0.1/hook",
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://localhost/hook",
        "http://LOCALHOST.:3000/hook",
        "http://api.localhost/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::ffff:127.0.0.1]/hook",
        "http://192.168.0.1/hook",
        "http://172.20.0.5/hook",
        "http://100.64.1.1/hook",
        "http://[fd00::1]/hook",
        "http://[fe80::1]/hook",
        "http://0.0.0.0/hook",
        "http://2130706433/hook", // 127.0.0.1 as a decimal number
        "http://0x7f.1/hook",     // 127.0.0.1 in hex shorthand
        "mailto:someone@example.org",
        "not a url",
        "",
    ];
    for url in refused {
        let err = check_url(url, &STRICT).await.unwrap_err();
        assert_eq!(err.field(), "url");
        assert!(!err.to_string().is_empty());
        assert!(err.is_permanent(), "{url}: {err}");
    }
    let too_long = format!("https://93.184.216.34/{}", "a".repeat(2000));
    assert!(matches!(
        check_url(&too_long, &STRICT).await,
        Err(UrlError::TooLong { .. })
    ));
}

#[tokio::test]
async fn refusals_say_why() {
    let creds = check_url("https://u:p@93.184.216.34/", &STRICT)
        .await
        .unwrap_err();
    assert!(
        creds
            .to_string()
            .contains("put the secret in your endpoint, not the URL")
    );
    let metadata = check_url("http://169.254.169.254/", &STRICT)
        .await
        .unwrap_err();
    assert!(metadata.to_string().contains("link-local"), "{metadata}");
    let mapped = check_url("http://[::ffff:127.0.0.1]/", &STRICT)
        .await
        .unwrap_err();
    assert!(mapped.to_string().contains("loopback"), "{mapped}");
    let scheme = check_url("ftp://example.org/", &STRICT).await.unwrap_err();
    assert!(scheme.to_string().contains("http"), "{scheme}");
}

#[tokio::test]
async fn check_url_accepts_public_addresses_and_private_ones_when_allowed() {
    let url = check_url("https://93.184.216.34/hooks?x=1", &STRICT)
        .await
        .unwrap();
    assert_eq!(url.host_str(), Some("93.184.216.34"));
    check_url("http://[2606:4700:4700::1111]:8443/", &STRICT)
        .await
        .unwrap();
    for url in [
        "http://localhost:3000/hook",
        "http://127.0.0.1:3000/hook",
        "http://[::1]/hook",
        "http://10.1.2.3/hook",
    ] {
        check_url(url, &LENIENT).await.unwrap();
    }
    // Still refused when private addresses are allowed.
    assert!(check_url("ftp://127.0.0.1/", &LENIENT).await.is_err());
    assert!(check_url("http://u:p@127.0.0.1/", &LENIENT).await.is_err());
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_a_clear_temporary_error() {
    // `.invalid` never resolves (RFC 6761); no internet needed to fail.
    let err = check_url("https://hooks.example.invalid/", &STRICT)
        .await
        .unwrap_err();
    assert!(matches!(err, UrlError::Unresolvable { .. }), "{err:?}");
    assert!(!err.is_permanent());
    assert!(err.to_string().contains("hooks.example.invalid"), "{err}");
}

// ---------------------------------------------------------------------------
// Deliveries to a local server
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

#[derive(Default, Clone)]
struct Log {
    hook: Arc<Mutex<Vec<Received>>>,
    target_hits: Arc<AtomicUsize>,
}

impl Log {
    fn hook_count(&self) -> usize {
        self.hook.lock().unwrap().len()
    }
}

/// Serves `/hook` with `answer` (after `delay`) and `/target` (the redirect
/// target, which must never be called) on 127.0.0.1; returns the base URL.
async fn serve<R>(answer: R, delay: Duration) -> (String, Log)
where
    R: Fn() -> axum::response::Response + Clone + Send + Sync + 'static,
{
    let log = Log::default();
    let hook_log = log.clone();
    let target_log = log.clone();
    let app = Router::new()
        .route(
            "/hook",
            post(move |headers: HeaderMap, body: Bytes| {
                let log = hook_log.clone();
                let answer = answer.clone();
                async move {
                    log.hook.lock().unwrap().push(Received { headers, body });
                    tokio::time::sleep(delay).await;
                    answer()
                }
            }),
        )
        .route(
            "/target",
            post(move || {
                let log = target_log.clone();
                async move {
                    log.target_hits.fetch_add(1, Ordering::SeqCst);
                    StatusCode::OK
                }
            })
            .get(|| async { StatusCode::OK }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), log)
}

fn sender(policy: UrlPolicy) -> Sender {
    Sender::new(Duration::from_secs(5), policy).unwrap()
}

const SECRET: &[u8] = b"a subscription secret, 32 bytes!";
const BODY: &[u8] =
    br#"{"type":"announcement.published","data":{"id":"a-1","title":"Corte de agua"}}"#;
const NOW: i64 = 1_700_000_000;

#[tokio::test]
async fn a_delivery_arrives_signed_and_verifies() {
    let (base, log) = serve(|| StatusCode::NO_CONTENT.into_response(), Duration::ZERO).await;
    let delivered = sender(LENIENT)
        .send(&format!("{base}/hook"), SECRET, "msg_42", BODY, NOW)
        .await
        .unwrap();
    assert_eq!(delivered.status, 204);

    let received = log.hook.lock().unwrap()[0].clone();
    let h = |name: &str| received.headers.get(name).unwrap().to_str().unwrap();
    assert_eq!(h("webhook-id"), "msg_42");
    assert_eq!(h("webhook-timestamp"), "1700000000");
    assert_eq!(h("content-type"), "application/json");
    assert_eq!(h("user-agent"), "Ventanilla-Webhooks/1");
    assert_eq!(&received.body[..], BODY);
    assert_eq!(
        verify(
            SECRET,
            h("webhook-id"),
            h("webhook-timestamp"),
            &received.body,
            h("webhook-signature"),
            NOW + 3,
            300
        ),
        Ok(())
    );
    // What an integrator holds is the textual secret.
    let integrators_secret = parse_secret(&secret_text(SECRET)).unwrap();
    assert_eq!(
        verify(
            &integrators_secret,
            h("webhook-id"),
            h("webhook-timestamp"),
            &received.body,
            h("webhook-signature"),
            NOW,
            300
        ),
        Ok(())
    );
}

#[tokio::test]
async fn a_503_is_temporary() {
    let (base, _log) = serve(
        || (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance").into_response(),
        Duration::ZERO,
    )
    .await;
    let err = sender(LENIENT)
        .send(&format!("{base}/hook"), SECRET, "msg_1", BODY, NOW)
        .await
        .unwrap_err();
    let SendError::Temporary {
        reason,
        retry_after,
    } = err
    else {
        panic!("expected Temporary, got {err:?}");
    };
    assert!(
        reason.starts_with("the endpoint answered 503 Service Unavailable"),
        "{reason}"
    );
    assert!(reason.contains("down for maintenance"), "{reason}");
    assert_eq!(retry_after, None);
}

#[tokio::test]
async fn a_429_with_retry_after_is_temporary_with_the_wait() {
    let (base, _log) = serve(
        || {
            (
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, "7")],
                "slow down",
            )
                .into_response()
        },
        Duration::ZERO,
    )
    .await;
    let err = sender(LENIENT)
        .send(&format!("{base}/hook"), SECRET, "msg_1", BODY, NOW)
        .await
        .unwrap_err();
    match err {
        SendError::Temporary {
            reason,
            retry_after,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(reason.contains("429 Too Many Requests"), "{reason}");
            assert!(reason.contains("retry after 7 s"), "{reason}");
        }
        other => panic!("expected Temporary, got {other:?}"),
    }
}

#[tokio::test]
async fn a_410_is_permanent_and_says_the_endpoint_is_gone() {
    let (base, _log) = serve(|| StatusCode::GONE.into_response(), Duration::ZERO).await;
    let err = sender(LENIENT)
        .send(&format!("{base}/hook"), SECRET, "msg_1", BODY, NOW)
        .await
        .unwrap_err();
    match err {
        SendError::Permanent { reason, status } => {
            assert_eq!(status, Some(410));
            assert!(reason.contains("410 Gone"), "{reason}");
            assert!(reason.contains("endpoint is gone"), "{reason}");
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
}

#[tokio::test]
async fn a_redirect_is_permanent_and_not_followed() {
    let (base, log) = serve(
        || (StatusCode::FOUND, [(header::LOCATION, "/target")]).into_response(),
        Duration::ZERO,
    )
    .await;
    let err = sender(LENIENT)
        .send(&format!("{base}/hook"), SECRET, "msg_1", BODY, NOW)
        .await
        .unwrap_err();
    match err {
        SendError::Permanent { reason, status } => {
            assert_eq!(status, Some(302));
            assert!(reason.contains("302 Found"), "{reason}");
            assert!(reason.contains("do not follow redirects"), "{reason}");
            assert!(reason.contains("give the final URL"), "{reason}");
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
    assert_eq!(log.hook_count(), 1);
    assert_eq!(log.target_hits.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn an_endpoint_slower_than_the_timeout_is_temporary() {
    let (base, _log) = serve(|| StatusCode::OK.into_response(), Duration::from_secs(5)).await;
    let sender = Sender::new(Duration::from_millis(300), LENIENT).unwrap();
    let started = std::time::Instant::now();
    let err = sender
        .send(&format!("{base}/hook"), SECRET, "msg_1", BODY, NOW)
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    match err {
        SendError::Temporary { reason, .. } => {
            assert!(reason.contains("did not answer within 0.3 s"), "{reason}");
        }
        other => panic!("expected Temporary, got {other:?}"),
    }
}

#[tokio::test]
async fn a_closed_port_is_temporary() {
    // Bind then drop, so the port is (almost certainly) closed.
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let err = sender(LENIENT)
        .send(
            &format!("http://127.0.0.1:{port}/hook"),
            SECRET,
            "msg_1",
            BODY,
            NOW,
        )
        .await
        .unwrap_err();
    assert!(err.is_temporary(), "{err:?}");
    assert!(err.reason().contains("could not connect"), "{err}");
}

#[tokio::test]
async fn the_production_policy_refuses_loopback_before_any_request() {
    let (base, log) = serve(|| StatusCode::OK.into_response(), Duration::ZERO).await;
    let strict = sender(STRICT);
    let err = strict
        .send(&format!("{base}/hook"), SECRET, "msg_1", BODY, NOW)
        .await
        .unwrap_err();
    match &err {
        SendError::Permanent { reason, status } => {
            assert_eq!(*status, None);
            assert!(reason.contains("127.0.0.1"), "{reason}");
            assert!(reason.contains("loopback"), "{reason}");
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
    let port = base.rsplit(':').next().unwrap();
    let by_name = strict
        .send(
            &format!("http://localhost:{port}/hook"),
            SECRET,
            "msg_1",
            BODY,
            NOW,
        )
        .await
        .unwrap_err();
    assert!(!by_name.is_temporary(), "{by_name:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(log.hook_count(), 0);
}

#[tokio::test]
async fn unusable_ids_and_empty_secrets_are_refused_before_sending() {
    let (base, log) = serve(|| StatusCode::OK.into_response(), Duration::ZERO).await;
    let url = format!("{base}/hook");
    let s = sender(LENIENT);
    for id in ["", "has space", "línea", "new\nline"] {
        let err = s.send(&url, SECRET, id, BODY, NOW).await.unwrap_err();
        assert!(!err.is_temporary(), "{id:?}: {err:?}");
        assert!(err.reason().contains("webhook-id"), "{err}");
    }
    let err = s.send(&url, b"", "msg_1", BODY, NOW).await.unwrap_err();
    assert!(err.reason().contains("secret"), "{err}");
    assert_eq!(log.hook_count(), 0);
}
