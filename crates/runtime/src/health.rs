//! The operational endpoints every process serves: `GET /healthz` (the
//! process is alive) and `GET /readyz` (it may receive traffic: every
//! module started, every readiness check passes, no shutdown under way).
//!
//! Checks are registered by modules while they start (see
//! [`StartContext::add_readiness_check`](crate::modules::StartContext::add_readiness_check));
//! this module only runs them.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use futures::FutureExt;
use futures::future::{BoxFuture, join_all};
use serde::Serialize;
use tokio_util::sync::CancellationToken;

/// How long one readiness check may take before it counts as failed, so a
/// hung dependency makes `/readyz` answer 503 instead of hanging the probe.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The function behind a [`ReadinessCheck`]: `Err` carries a short,
/// secret-free message that `/readyz` shows.
pub type CheckFn = Arc<dyn Fn() -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// A named probe of something a module needs (its database, a peer).
#[derive(Clone)]
pub struct ReadinessCheck {
    name: String,
    check: CheckFn,
}

impl ReadinessCheck {
    /// A check called `name` that runs `check` on every `/readyz` request.
    pub fn new<F, Fut>(name: impl Into<String>, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        Self {
            name: name.into(),
            check: Arc::new(move || check().boxed()),
        }
    }

    /// The name shown in `/readyz`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs the check, failing it after [`CHECK_TIMEOUT`].
    pub async fn run(&self) -> Result<(), String> {
        tokio::time::timeout(CHECK_TIMEOUT, (self.check)())
            .await
            .unwrap_or_else(|_| Err(format!("timed out after {CHECK_TIMEOUT:?}")))
    }
}

impl fmt::Debug for ReadinessCheck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadinessCheck")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The `/healthz` and `/readyz` routes. `/readyz` runs `checks`
/// concurrently on each request and answers 503 once `shutdown` is
/// cancelled, so a load balancer drains the process before it stops.
pub fn ops_router(checks: Vec<ReadinessCheck>, shutdown: CancellationToken) -> Router {
    let state = Arc::new(OpsState { checks, shutdown });
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(state)
}

struct OpsState {
    checks: Vec<ReadinessCheck>,
    shutdown: CancellationToken,
}

#[derive(Serialize)]
struct Health {
    status: &'static str,
}

#[derive(Serialize)]
struct Readiness {
    status: &'static str,
    /// Check name → `"ok"` or the reason it failed.
    checks: BTreeMap<String, String>,
}

async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

async fn readyz(State(state): State<Arc<OpsState>>) -> (StatusCode, Json<Readiness>) {
    if state.shutdown.is_cancelled() {
        let body = Readiness {
            status: "shutting_down",
            checks: BTreeMap::new(),
        };
        return (StatusCode::SERVICE_UNAVAILABLE, Json(body));
    }
    let results = join_all(
        state
            .checks
            .iter()
            .map(|check| async move { (check.name().to_owned(), check.run().await) }),
    )
    .await;
    let ready = results.iter().all(|(_, result)| result.is_ok());
    let checks = results
        .into_iter()
        .map(|(name, result)| (name, result.err().unwrap_or_else(|| "ok".to_owned())))
        .collect();
    if ready {
        let body = Readiness {
            status: "ready",
            checks,
        };
        (StatusCode::OK, Json(body))
    } else {
        let body = Readiness {
            status: "not_ready",
            checks,
        };
        (StatusCode::SERVICE_UNAVAILABLE, Json(body))
    }
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::extract::Request;
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;

    async fn get_json(router: Router, path: &str) -> (StatusCode, Value) {
        let request = Request::builder().uri(path).body(Body::empty()).unwrap();
        let response = router.oneshot(request).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .unwrap();
        (status, serde_json::from_slice(&body).unwrap())
    }

    fn passing(name: &str) -> ReadinessCheck {
        ReadinessCheck::new(name, || async { Ok(()) })
    }

    #[tokio::test]
    async fn healthz_is_ok() {
        let router = ops_router(Vec::new(), CancellationToken::new());
        assert_eq!(
            get_json(router, "/healthz").await,
            (StatusCode::OK, json!({"status": "ok"}))
        );
    }

    #[tokio::test]
    async fn readyz_is_ready_when_every_check_passes() {
        let router = ops_router(
            vec![passing("tickets.database"), passing("social.database")],
            CancellationToken::new(),
        );
        assert_eq!(
            get_json(router, "/readyz").await,
            (
                StatusCode::OK,
                json!({"status": "ready", "checks": {
                    "social.database": "ok",
                    "tickets.database": "ok",
                }})
            )
        );
    }

    #[tokio::test]
    async fn readyz_is_503_with_the_failing_check_message() {
        let failing = ReadinessCheck::new("tickets.database", || async {
            Err("connection refused".to_owned())
        });
        let router = ops_router(
            vec![passing("social.database"), failing],
            CancellationToken::new(),
        );
        assert_eq!(
            get_json(router, "/readyz").await,
            (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"status": "not_ready", "checks": {
                    "social.database": "ok",
                    "tickets.database": "connection refused",
                }})
            )
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_fails_after_the_timeout() {
        let hung = ReadinessCheck::new("peer", std::future::pending);
        let error = hung.run().await.unwrap_err();
        assert!(error.contains("timed out"), "{error}");
    }

    #[tokio::test]
    async fn readyz_is_503_during_shutdown() {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let router = ops_router(vec![passing("x")], shutdown);
        let (status, body) = get_json(router, "/readyz").await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "shutting_down");
    }
}
