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
//! The same reader keeps the process's memory of who is who honest: it
//! tells the [`Memos`] of every event, and they forget a tenant's
//! principals and roles when its tenant, staff or key streams change. A
//! router without a reader ([`Live::idle`]) keeps no memos.
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
use ventanilla_tenancy::RoleMemo;
use ventanilla_tickets::service::Tickets;

use crate::auth::PrincipalMemo;

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

/// What a gateway process remembers of who is who between requests.
#[derive(Clone, Default)]
pub struct Memos {
    /// Checked principals, by token.
    pub principals: PrincipalMemo,
    /// Staff members' working roles, for the tickets service's checks.
    pub roles: RoleMemo,
}

impl std::fmt::Debug for Memos {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memos").finish_non_exhaustive()
    }
}

impl Memos {
    /// Forgets what an event of `stream` of `tenant` makes stale.
    pub fn saw(&self, tenant: TenantId, stream: &str) {
        self.principals.saw(tenant, stream);
        self.roles.saw(tenant, stream);
    }

    /// Forgets everything of `tenant` (after this process changed it).
    pub fn forget(&self, tenant: TenantId) {
        self.principals.forget(tenant);
        self.roles.forget(tenant);
    }

    /// Forgets everything.
    pub fn forget_all(&self) {
        self.principals.forget_all();
        self.roles.forget_all();
    }
}

/// The process's feed of changes.
#[derive(Debug, Clone)]
pub struct Live {
    sender: broadcast::Sender<Change>,
    memos: Option<Memos>,
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
        let memos = Memos::default();
        let told = memos.clone();
        let mut position = log.committed_head().await?;
        tokio::spawn(async move {
            let mut wakeups = log.wakeups();
            loop {
                loop {
                    match log.read_all(position, 500, None).await {
                        Ok(events) if events.is_empty() => break,
                        Ok(events) => {
                            for e in &events {
                                told.saw(e.tenant_id, e.stream.as_str());
                            }
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
        Ok(Self {
            sender,
            memos: Some(memos),
        })
    }

    /// What this process may remember, kept honest by the reader (`None`
    /// for [`Live::idle`]).
    pub fn memos(&self) -> Option<&Memos> {
        self.memos.as_ref()
    }

    /// A new listener.
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.sender.subscribe()
    }

    /// A feed nobody writes to (a router built outside a running process).
    pub fn idle() -> Self {
        let (sender, _) = broadcast::channel(1);
        Self {
            sender,
            memos: None,
        }
    }
}
