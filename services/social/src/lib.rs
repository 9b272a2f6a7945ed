//! The social service: linked social and e-mail accounts, inbound ingestion, outbound delivery and channel health.
//!
//! Its business arrives with issue #6 and #7; for now it is a [`Module`] of the
//! one binary that starts, reports ready, owns no projection yet and stops
//! cleanly, so that `serve --services social` already runs it in a process of
//! its own.

use async_trait::async_trait;
use ventanilla_runtime::{Module, Running, StartContext};

/// The social service as a module of the binary.
#[derive(Debug, Default)]
pub struct SocialService;

#[async_trait]
impl Module for SocialService {
    fn name(&self) -> &'static str {
        "social"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["projections"]
    }

    async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
        tracing::info!(
            service = "social",
            "started (no business yet: issue #6 and #7)"
        );
        Ok(Running::until_shutdown(ctx.shutdown()))
    }
}
