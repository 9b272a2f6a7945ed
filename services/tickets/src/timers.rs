//! The breach timer: records, as an event in the ticket's history, each
//! response-time clock that passes its due instant while it still runs.
//!
//! Every `interval` it asks `tickets_overdue()` (a SECURITY DEFINER function
//! of `migrations/0008_tickets.sql`, the one cross-tenant read of the
//! `tickets` read model: ids only) for tickets whose next running clock is
//! due, and runs `RecordBreach` for both clocks on each, in the ticket's own
//! tenant. The decider checks again against the ticket's stream, so a ticket
//! answered a moment ago, a read model that lags, two timers in two
//! processes or a tick repeated after a crash never record a breach twice or
//! wrongly. A breach is late by at most `interval` plus the projection's
//! delay.
//!
//! What it must not do: decide whether a clock is breached (the decider
//! does), or send anything (notifications react to the event).

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_tickets_domain::ticket::TicketId;

use crate::service::Tickets;

/// The most tickets one tick handles; the rest wait for the next tick.
pub const BATCH: i32 = 500;

/// The breach timer of one process.
pub struct BreachTimer {
    tickets: Tickets,
    interval: Duration,
}

impl BreachTimer {
    /// A timer ticking every `interval`.
    pub fn new(tickets: Tickets, interval: Duration) -> Self {
        Self { tickets, interval }
    }

    /// One pass at `now`: records the breaches due by then (at most
    /// [`BATCH`] tickets) and returns how many it recorded.
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let pool = self.tickets.runner().log().pool().clone();
        let due: Vec<(Uuid, Uuid)> =
            sqlx::query_as("SELECT tenant_id, ticket_id FROM tickets_overdue($1, $2)")
                .bind(now)
                .bind(BATCH)
                .fetch_all(&pool)
                .await?;
        let mut recorded = 0;
        for (tenant, ticket) in due {
            let tenant = TenantId::from_uuid(tenant);
            match self
                .tickets
                .breach_clocks(tenant, TicketId(ticket), now)
                .await
            {
                Ok((n, _)) => recorded += n,
                // One ticket failing must not stop the others; it is found
                // again at the next tick.
                Err(e) => tracing::warn!(
                    tenant_id = %tenant, ticket = %ticket, error = %e,
                    "could not record a response-time breach"
                ),
            }
        }
        if recorded > 0 {
            tracing::info!(recorded, "response-time breaches recorded");
        }
        Ok(recorded)
    }

    /// Ticks until `shutdown`. A failed tick is logged and retried at the
    /// next one.
    pub async fn run(self, shutdown: CancellationToken) {
        ventanilla_runtime::ticker::every(self.interval, shutdown, "the breach timer", || async {
            self.tick(Utc::now()).await.map(|_| ())
        })
        .await;
    }
}
