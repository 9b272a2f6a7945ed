//! What feeds the GraphQL subscriptions: one reader per gateway process
//! follows the event log from where it was when the process started (woken
//! by the log's notifications, polling every second as a fallback) and
//! broadcasts each change of a ticket — its tenant, its id and the event's
//! type. Subscriptions keep only their principal's tenant (and, for
//! `ticketUpdated`, their ticket): a tenant never sees another's changes.
//!
//! A change is told only once the inbox read model shows it, so a
//! listener that re-reads the ticket or the inbox sees what it was told of.
//!
//! What this module must not do: hold events (a slow subscriber misses
//! changes and is told to re-read; the broadcast keeps the latest 1,024),
//! or read another service's tables.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use ventanilla_eventlog::{EventLog, Position};
use ventanilla_kernel::TenantId;
use ventanilla_postgres::PgEventLog;
use ventanilla_tickets::service::Tickets;

/// One change of a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// Its tenant.
    pub tenant: TenantId,
    /// The ticket.
    pub ticket: Uuid,
    /// What happened (`ticket.replied`, `ticket.status_changed`…).
    pub event_type: String,
    /// When the log stored it.
    pub at: DateTime<Utc>,
}

/// The process's feed of changes.
#[derive(Debug, Clone)]
pub struct Live {
    sender: broadcast::Sender<Change>,
}

impl Live {
    /// Starts following `log` until `shutdown`.
    /// Only changes committed after this call are told (the log's committed
    /// head is read before it returns).
    pub async fn start(
        log: Arc<PgEventLog>,
        tickets: Tickets,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Self> {
        let (sender, _) = broadcast::channel(1024);
        let feed = sender.clone();
        let mut position = log.committed_head().await?;
        tokio::spawn(async move {
            let mut wakeups = log.wakeups();
            loop {
                loop {
                    match log.read_all(position, 500, None).await {
                        Ok(events) if events.is_empty() => break,
                        Ok(events) => {
                            let changes: Vec<(Position, Change)> = events
                                .iter()
                                .filter_map(|e| {
                                    let ticket = e
                                        .stream
                                        .as_str()
                                        .strip_prefix("ticket-")
                                        .and_then(|id| Uuid::parse_str(id).ok())?;
                                    Some((
                                        e.position,
                                        Change {
                                            tenant: e.tenant_id,
                                            ticket,
                                            event_type: e.event_type.clone(),
                                            at: e.recorded_at,
                                        },
                                    ))
                                })
                                .collect();
                            if let Some(last) = events.last() {
                                position = last.position;
                            }
                            if let Some((upto, _)) = changes.last() {
                                tickets.inbox_caught_up(*upto).await;
                            }
                            for (_, change) in changes {
                                // Nobody listening is fine.
                                let _ = feed.send(change);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "live updates: reading the event log failed; trying again");
                            break;
                        }
                    }
                }
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = wakeups.changed() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        });
        Ok(Self { sender })
    }

    /// A new listener.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// A feed nobody writes to (a router built outside a running process).
    pub fn idle() -> Self {
        let (sender, _) = broadcast::channel(1);
        Self { sender }
    }
}
