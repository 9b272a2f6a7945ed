//! Live subscriptions over WebSocket (`graphql-transport-ws`):
//! `inboxChanged` — a ticket of the caller's organisation changed — and
//! `ticketUpdated(id)` — one ticket, re-read after each change. Staff only
//! (the inbox is theirs); the tenant is the principal's, so nobody hears
//! another organisation's changes.

use std::sync::Arc;

use async_graphql::futures_util::{Stream, StreamExt, stream};
use async_graphql::{Context, ID, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use tokio::sync::broadcast;

use super::Services;
use super::access::{self, services};
use super::ids;
use super::tickets::{Ticket, load};
use crate::error::service_error;
use crate::live::{Change, Live};

/// A ticket of the organisation changed.
#[derive(Debug, Clone, SimpleObject)]
pub struct InboxChange {
    /// The ticket (a global id).
    pub ticket_id: ID,
    /// What happened (`ticket.replied`, `ticket.status_changed`…).
    pub event: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// The changes a listener hears, as a stream (a listener too slow for the
/// feed skips what it missed and goes on).
fn changes(receiver: broadcast::Receiver<Change>) -> impl Stream<Item = Change> {
    stream::unfold(receiver, |mut receiver| async move {
        loop {
            match receiver.recv().await {
                Ok(change) => return Some((change, receiver)),
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    })
}

/// The live subscriptions.
#[derive(Default)]
pub struct LiveSubscription;

#[Subscription]
impl LiveSubscription {
    /// Every change of a ticket of your organisation, as it happens (staff).
    /// Re-read the inbox page or the ticket to see it.
    async fn inbox_changed(&self, ctx: &Context<'_>) -> Result<impl Stream<Item = InboxChange>> {
        let by = access::staff_reader(ctx)?;
        let live = ctx.data::<Live>()?;
        Ok(changes(live.subscribe()).filter_map(move |c| async move {
            (c.tenant == by.tenant).then(|| InboxChange {
                ticket_id: ids::encode("Ticket", c.ticket),
                event: c.event_type,
                at: c.at,
            })
        }))
    }

    /// The ticket `id`, each time it changes (staff). Another
    /// organisation's id is `NOT_FOUND`, at once.
    async fn ticket_updated(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> Result<impl Stream<Item = Result<Ticket>>> {
        let by = access::staff_reader(ctx)?;
        let ticket = ids::ticket("id", &id)?;
        // Refused now, not silently never told.
        load(ctx, by, ticket).await?;
        services(ctx)?;
        let services: Arc<Services> = Arc::clone(ctx.data::<Arc<Services>>()?);
        let live = ctx.data::<Live>()?;
        Ok(changes(live.subscribe())
            .filter(move |c| {
                let ours = c.tenant == by.tenant && c.ticket == ticket.0;
                async move { ours }
            })
            .then(move |_| {
                let services = Arc::clone(&services);
                async move {
                    services
                        .tickets
                        .ticket(by.tenant, by.staff, ticket)
                        .await
                        .map(Ticket::from_view)
                        .map_err(|e| service_error(&e))
                }
            }))
    }
}
