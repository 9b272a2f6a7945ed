//! The tickets service: the three citizen requests as tickets, the inbox
//! staff work them in, response-time clocks, presence figures, and tickets
//! from what citizens write on social networks.
//!
//! - [`service`]: [`service::Tickets`], what citizens, integrators, staff and
//!   deliverers ask of the service;
//! - [`inbox`]: the `inbox` projection (`tickets`, `ticket_messages`,
//!   `ticket_timeline`) and its queries;
//! - [`tenancy`]: what the service reads of the tenants service's events
//!   (active tenant, staff, directory, business hours);
//! - [`error`]: refusals and their API codes.
//!
//! The domain (deciders) is the `ventanilla-tickets-domain` crate. Each
//! method takes the tenant as an argument: the gateway (issue #8) passes the
//! authenticated principal's, never one from input.

use std::sync::Arc;

use async_trait::async_trait;
use ventanilla_postgres::projection::Projection;
use ventanilla_runtime::{Module, Running, StartContext};

pub mod error;
pub mod inbox;
pub mod service;
pub mod tenancy;

/// The read models this service maintains.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(inbox::InboxProjection)]
}

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
        tracing::info!(service = "tickets", "started");
        Ok(Running::until_shutdown(ctx.shutdown()))
    }
}
