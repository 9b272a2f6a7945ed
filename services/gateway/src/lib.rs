//! The gateway: the platform's public HTTP front door.
//!
//! It will serve the GraphQL API (issue #8): authenticate, resolve the
//! tenant from the principal, enforce limits and reach each service through
//! its client API, holding no business rules of its own. Until then it
//! answers `/` with what this process runs and `/graphql` with a clear
//! "not implemented yet" error in GraphQL's error shape.

use async_trait::async_trait;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{any, get};
use axum::{Json, Router};
use serde_json::json;
use ventanilla_runtime::{Module, Running, StartContext};

/// The gateway as a module of the binary.
#[derive(Debug, Default)]
pub struct Gateway;

/// The routes the gateway serves.
pub fn router() -> Router {
    Router::new()
        .route("/", get(index))
        .route("/graphql", any(graphql_unavailable))
}

async fn index() -> impl IntoResponse {
    Json(json!({
        "name": "Ventanilla",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": { "health": "/healthz", "readiness": "/readyz", "graphql": "/graphql" },
    }))
}

async fn graphql_unavailable() -> impl IntoResponse {
    (
        StatusCode::NOT_IMPLEMENTED,
        Json(json!({
            "errors": [{
                "message": "the GraphQL API is not available yet in this version of Ventanilla",
                "extensions": { "code": "UNIMPLEMENTED" }
            }]
        })),
    )
}

#[async_trait]
impl Module for Gateway {
    fn name(&self) -> &'static str {
        "gateway"
    }

    async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
        ctx.add_routes(router());
        Ok(Running::until_shutdown(ctx.shutdown()))
    }
}
