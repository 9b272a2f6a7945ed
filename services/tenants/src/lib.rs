//! The tenants service: tenant lifecycle, plans, departments and officials, topics, staff and API keys.
//!
//! Its business arrives with issue #3; for now it is a [`Module`] of the
//! one binary that starts, reports ready, owns no projection yet and stops
//! cleanly, so that `serve --services tenants` already runs it in a process of
//! its own.

use async_trait::async_trait;
use ventanilla_runtime::{Module, Running, StartContext};

/// The tenants service as a module of the binary.
#[derive(Debug, Default)]
pub struct TenantsService;

#[async_trait]
impl Module for TenantsService {
    fn name(&self) -> &'static str {
        "tenants"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["projections"]
    }

    async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
        tracing::info!(service = "tenants", "started (no business yet: issue #3)");
        Ok(Running::until_shutdown(ctx.shutdown()))
    }
}
