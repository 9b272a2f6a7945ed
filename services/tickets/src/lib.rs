//! The tickets service: tickets and their conversations, the inbox, response-time clocks and citizens' subscriptions.
//!
//! Its business arrives with issue #4 and #5; for now it is a [`Module`] of the
//! one binary that starts, reports ready, owns no projection yet and stops
//! cleanly, so that `serve --services tickets` already runs it in a process of
//! its own.

use async_trait::async_trait;
use ventanilla_runtime::{Module, Running, StartContext};

/// The tickets service as a module of the binary.
#[derive(Debug, Default)]
pub struct TicketsService;

#[async_trait]
impl Module for TicketsService {
    fn name(&self) -> &'static str {
        "tickets"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["projections"]
    }

    async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
        tracing::info!(
            service = "tickets",
            "started (no business yet: issue #4 and #5)"
        );
        Ok(Running::until_shutdown(ctx.shutdown()))
    }
}
