//! The inbox: the read models staff work from, and their queries.
//!
//! - [`InboxProjection`] (`inbox`) keeps `tickets` (one row per ticket: what
//!   the inbox lists, filters and sorts), `ticket_messages` (the
//!   conversation, with each reply's delivery state) and `ticket_timeline`
//!   (every event of the ticket, its history) from the tickets' streams
//!   (`migrations/0008_tickets.sql`). It derives everything from the events,
//!   so a rebuild gives the same rows.
//! - The query functions ([`inbox_page`], [`status_counts`], [`ticket_view`],
//!   [`find_by_tracking`]) run on a connection already scoped to a tenant
//!   (`begin_for_tenant`); the service's read methods wrap them with the
//!   caller's authorization.
//!
//! What this module must not do: decide anything (the `Ticket` decider
//! does), or read another service's tables.

use std::collections::HashMap;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, QueryBuilder};
use uuid::Uuid;
use ventanilla_eventlog::{DomainEvent, RecordedEvent};
use ventanilla_postgres::projection::Projection;
use ventanilla_postgres::{Handler, TenantTx};
use ventanilla_tickets_domain::ticket::{
    Assignee, Clock, DeliveryOutcome, Status, TicketEvent, TicketId,
};
use ventanilla_tickets_domain::values::{Addressee, Channel, Kind, Priority};

/// The most tickets one inbox page holds.
pub const MAX_PAGE: u32 = 100;

/// The `inbox` projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct InboxProjection;

impl Projection for InboxProjection {
    fn name(&self) -> &'static str {
        "inbox"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "tickets",
            "ticket_status_counts",
            "ticket_messages",
            "ticket_timeline",
        ]
    }
}

/// The ticket id of a `ticket-<uuid>` stream.
fn ticket_of(e: &RecordedEvent) -> Option<Uuid> {
    let id = e.stream.as_str().strip_prefix("ticket-")?;
    Uuid::parse_str(id).ok()
}

#[async_trait]
impl Handler for InboxProjection {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let tenant = tx.tenant().into_uuid();
        for e in events {
            if !e.event_type.starts_with("ticket.") {
                continue;
            }
            let Some(ticket) = ticket_of(e) else {
                continue;
            };
            let event = TicketEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
            let conn = tx.conn().await?;
            apply(conn, tenant, ticket, e, &event).await?;
        }
        Ok(())
    }
}

/// Recomputes the derived clock columns of a ticket from its due and breach
/// columns.
const CLOCKS: &str = "due_at = CASE
        WHEN first_response_due IS NULL THEN resolution_due
        WHEN resolution_due IS NULL THEN first_response_due
        ELSE least(first_response_due, resolution_due) END,
    due_order = coalesce(least(first_response_due, resolution_due), 'infinity'::timestamptz),
    next_breach_at = CASE
        WHEN (first_response_due IS NULL OR first_response_breached) THEN
            CASE WHEN resolution_breached THEN NULL ELSE resolution_due END
        WHEN (resolution_due IS NULL OR resolution_breached) THEN first_response_due
        ELSE least(first_response_due, resolution_due) END";

async fn apply(
    conn: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    e: &RecordedEvent,
    event: &TicketEvent,
) -> anyhow::Result<()> {
    let version = e.version as i64;
    // The history: every event, once (a batch replayed after a crash
    // rewrites the same rows), at the instant it records (the decider's
    // `now`), which is what the presence figures count by.
    let recorded = sqlx::query(
        "INSERT INTO ticket_timeline (tenant_id, ticket_id, version, event_type, actor, data, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant_id, ticket_id, version) DO NOTHING",
    )
    .bind(tenant)
    .bind(ticket)
    .bind(version)
    .bind(&e.event_type)
    .bind(serde_json::to_value(&e.metadata.actor)?)
    .bind(&e.data)
    .bind(event_at(event))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if recorded == 0 {
        // Applied before (a batch replayed): counts must not move twice.
        return Ok(());
    }

    match event {
        TicketEvent::Opened(o) => {
            let (dept, official) = match o.kind.addressee() {
                Some(Addressee::Department(d)) => (Some(d.0), None),
                Some(Addressee::Official { official, .. }) => (None, Some(official.0)),
                None => (None, None),
            };
            sqlx::query(
                "INSERT INTO tickets (tenant_id, ticket_id, reference, kind, addressee_department_id, \
                   addressee_official_id, status, channel, contact, subject, tracking_hash, notify_citizen, \
                   department_id, priority, opened_at, last_activity_at, awaiting_reply, version) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'new', $7, $8, $9, $10, $11, $12, $13, $14, $14, true, $15) \
                 ON CONFLICT (tenant_id, ticket_id) DO NOTHING",
            )
            .bind(tenant)
            .bind(ticket)
            .bind(o.reference.as_str())
            .bind(o.kind.as_str())
            .bind(dept)
            .bind(official)
            .bind(o.channel.as_str())
            .bind(serde_json::to_value(&o.contact)?)
            .bind(o.subject.as_str())
            .bind(o.tracking.as_str())
            .bind(o.notify_citizen)
            .bind(o.queue.map(|d| d.0))
            .bind(Priority::default().as_str())
            .bind(o.at)
            .bind(version)
            .execute(&mut *conn)
            .await?;
            count(conn, tenant, Status::New.as_str(), 1).await?;
            return Ok(());
        }
        TicketEvent::MessageReceived(m) => {
            let inserted = sqlx::query(
                "INSERT INTO ticket_messages (tenant_id, ticket_id, message_id, seq, direction, channel, body, platform_id, at) \
                 VALUES ($1, $2, $3, $4, 'in', $5, $6, $7, $8) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(ticket)
            .bind(m.message_id.0)
            .bind(version)
            .bind(m.channel.as_str())
            .bind(m.body.as_str())
            .bind(&m.platform_id)
            .bind(m.at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if inserted > 0 {
                update(
                    conn,
                    tenant,
                    ticket,
                    version,
                    "messages_count = messages_count + 1, last_inbound_at = $4, \
                     awaiting_reply = true, last_activity_at = greatest(last_activity_at, $4)",
                    Some(m.at),
                )
                .await?;
            }
        }
        TicketEvent::Replied(r) => {
            let inserted = sqlx::query(
                "INSERT INTO ticket_messages (tenant_id, ticket_id, message_id, seq, direction, channel, body, author_id, delivery_state, at) \
                 VALUES ($1, $2, $3, $4, 'out', $5, $6, $7, 'pending', $8) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(ticket)
            .bind(r.message_id.0)
            .bind(version)
            .bind(r.channel.as_str())
            .bind(r.body.as_str())
            .bind(r.by.0)
            .bind(r.at)
            .execute(&mut *conn)
            .await?
            .rows_affected();
            if inserted > 0 {
                sqlx::query(
                    "UPDATE tickets SET messages_count = messages_count + 1, awaiting_reply = false, \
                       last_activity_at = greatest(last_activity_at, $3), \
                       first_response_business_secs = CASE WHEN first_response_at IS NULL THEN $4 ELSE first_response_business_secs END, \
                       first_response_due = CASE WHEN first_response_at IS NULL THEN NULL ELSE first_response_due END, \
                       first_response_at = coalesce(first_response_at, $3), version = $5 \
                     WHERE tenant_id = $1 AND ticket_id = $2",
                )
                .bind(tenant)
                .bind(ticket)
                .bind(r.at)
                .bind(r.first_response_business_secs)
                .bind(version)
                .execute(&mut *conn)
                .await?;
                clocks(conn, tenant, ticket).await?;
            }
        }
        TicketEvent::DeliveryRecorded(d) => {
            // A receipt (delivered, read) keeps the platform id the send
            // recorded.
            let (state, platform_id, reason) = match &d.outcome {
                DeliveryOutcome::Sent { platform_id } => ("sent", platform_id.clone(), None),
                DeliveryOutcome::Failed { reason } => {
                    ("failed", None, Some(reason.as_str().to_owned()))
                }
                DeliveryOutcome::Delivered => ("delivered", None, None),
                DeliveryOutcome::Read => ("read", None, None),
            };
            let receipt = matches!(
                d.outcome,
                DeliveryOutcome::Delivered | DeliveryOutcome::Read
            );
            sqlx::query(
                "UPDATE ticket_messages SET delivery_state = $4, \
                        delivery_platform_id = CASE WHEN $7 THEN delivery_platform_id ELSE $5 END, \
                        failure_reason = CASE WHEN $7 THEN failure_reason ELSE $6 END \
                 WHERE tenant_id = $1 AND ticket_id = $2 AND message_id = $3",
            )
            .bind(tenant)
            .bind(ticket)
            .bind(d.message_id.0)
            .bind(state)
            .bind(platform_id)
            .bind(reason)
            .bind(receipt)
            .execute(&mut *conn)
            .await?;
        }
        TicketEvent::NoteAdded(n) => {
            update(
                conn,
                tenant,
                ticket,
                version,
                "notes_count = notes_count + 1, last_activity_at = greatest(last_activity_at, $4)",
                Some(n.at),
            )
            .await?;
        }
        TicketEvent::Assigned(a) => {
            let set = match a.to {
                Assignee::Agent(_) => "assignee_id = $5",
                Assignee::Department(_) => "department_id = $5, assignee_id = NULL",
                Assignee::Nobody => "assignee_id = NULL",
            };
            let id = match a.to {
                Assignee::Agent(agent) => Some(agent.0),
                Assignee::Department(d) => Some(d.0),
                Assignee::Nobody => None,
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tickets SET {set}, last_activity_at = greatest(last_activity_at, $4), version = $3 \
                 WHERE tenant_id = $1 AND ticket_id = $2"
            )))
            .bind(tenant)
            .bind(ticket)
            .bind(version)
            .bind(a.at)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        }
        TicketEvent::Tagged(t) => {
            sqlx::query(
                "UPDATE tickets SET tags = array_append(array_remove(tags, $3), $3), version = $4 \
                 WHERE tenant_id = $1 AND ticket_id = $2",
            )
            .bind(tenant)
            .bind(ticket)
            .bind(t.tag.as_str())
            .bind(version)
            .execute(&mut *conn)
            .await?;
        }
        TicketEvent::Untagged(t) => {
            sqlx::query(
                "UPDATE tickets SET tags = array_remove(tags, $3), version = $4 \
                 WHERE tenant_id = $1 AND ticket_id = $2",
            )
            .bind(tenant)
            .bind(ticket)
            .bind(t.tag.as_str())
            .bind(version)
            .execute(&mut *conn)
            .await?;
        }
        TicketEvent::PriorityChanged(p) => {
            sqlx::query(
                "UPDATE tickets SET priority = $3, version = $4 WHERE tenant_id = $1 AND ticket_id = $2",
            )
            .bind(tenant)
            .bind(ticket)
            .bind(p.to.as_str())
            .bind(version)
            .execute(&mut *conn)
            .await?;
        }
        TicketEvent::Resolved(_) | TicketEvent::Closed(_) => {}
        TicketEvent::MergedInto(m) => {
            sqlx::query(
                "UPDATE tickets SET merged_into = $3, version = $4 WHERE tenant_id = $1 AND ticket_id = $2",
            )
            .bind(tenant)
            .bind(ticket)
            .bind(m.target.0)
            .bind(version)
            .execute(&mut *conn)
            .await?;
        }
        TicketEvent::MergedFrom(m) => {
            update(
                conn,
                tenant,
                ticket,
                version,
                "last_activity_at = greatest(last_activity_at, $4)",
                Some(m.at),
            )
            .await?;
        }
        TicketEvent::StatusChanged(s) => {
            count(conn, tenant, s.from.as_str(), -1).await?;
            count(conn, tenant, s.to.as_str(), 1).await?;
            let extra = match s.to {
                Status::Resolved => ", resolved_at = $4, resolution_due = NULL",
                Status::Reopened => ", resolved_at = NULL, reopened_count = reopened_count + 1",
                Status::Closed => {
                    ", closed_at = $4, first_response_due = NULL, resolution_due = NULL"
                }
                Status::New | Status::Open | Status::WaitingOnCitizen => "",
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tickets SET status = $3, last_activity_at = greatest(last_activity_at, $4){extra}, version = $5 \
                 WHERE tenant_id = $1 AND ticket_id = $2"
            )))
            .bind(tenant)
            .bind(ticket)
            .bind(s.to.as_str())
            .bind(s.at)
            .bind(version)
            .execute(&mut *conn)
            .await?;
            clocks(conn, tenant, ticket).await?;
        }
        TicketEvent::DueSet(d) => {
            sqlx::query(
                "UPDATE tickets SET \
                   first_response_breached = first_response_breached AND first_response_due IS NOT DISTINCT FROM $3, \
                   resolution_breached = resolution_breached AND resolution_due IS NOT DISTINCT FROM $4, \
                   first_response_due = $3, resolution_due = $4, version = $5 \
                 WHERE tenant_id = $1 AND ticket_id = $2",
            )
            .bind(tenant)
            .bind(ticket)
            .bind(d.first_response)
            .bind(d.resolution)
            .bind(version)
            .execute(&mut *conn)
            .await?;
            clocks(conn, tenant, ticket).await?;
        }
        TicketEvent::SlaBreached(b) => {
            let column = match b.clock {
                Clock::FirstResponse => "first_response_breached",
                Clock::Resolution => "resolution_breached",
            };
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE tickets SET {column} = true, breached = true, version = $3 \
                 WHERE tenant_id = $1 AND ticket_id = $2"
            )))
            .bind(tenant)
            .bind(ticket)
            .bind(version)
            .execute(&mut *conn)
            .await?;
            clocks(conn, tenant, ticket).await?;
        }
    }
    Ok(())
}

/// The instant an event records.
fn event_at(event: &TicketEvent) -> DateTime<Utc> {
    match event {
        TicketEvent::Opened(e) => e.at,
        TicketEvent::MessageReceived(e) => e.at,
        TicketEvent::Replied(e) => e.at,
        TicketEvent::DeliveryRecorded(e) => e.at,
        TicketEvent::NoteAdded(e) => e.at,
        TicketEvent::Assigned(e) => e.at,
        TicketEvent::Tagged(e) => e.at,
        TicketEvent::Untagged(e) => e.at,
        TicketEvent::PriorityChanged(e) => e.at,
        TicketEvent::Resolved(e) => e.at,
        TicketEvent::Closed(e) => e.at,
        TicketEvent::MergedInto(e) => e.at,
        TicketEvent::MergedFrom(e) => e.at,
        TicketEvent::StatusChanged(e) => e.at,
        TicketEvent::DueSet(e) => e.at,
        TicketEvent::SlaBreached(e) => e.at,
    }
}

/// Moves the tenant's count of tickets in `status` by `by`.
async fn count(conn: &mut PgConnection, tenant: Uuid, status: &str, by: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO ticket_status_counts (tenant_id, status, tickets) VALUES ($1, $2, $3) \
         ON CONFLICT (tenant_id, status) DO UPDATE SET tickets = ticket_status_counts.tickets + EXCLUDED.tickets",
    )
    .bind(tenant)
    .bind(status)
    .bind(by)
    .execute(conn)
    .await?;
    Ok(())
}

/// `UPDATE tickets SET <set>, version = $3` for one ticket; `$4` is `at`.
async fn update(
    conn: &mut PgConnection,
    tenant: Uuid,
    ticket: Uuid,
    version: i64,
    set: &str,
    at: Option<DateTime<Utc>>,
) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE tickets SET {set}, version = $3 WHERE tenant_id = $1 AND ticket_id = $2"
    )))
    .bind(tenant)
    .bind(ticket)
    .bind(version)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn clocks(conn: &mut PgConnection, tenant: Uuid, ticket: Uuid) -> anyhow::Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE tickets SET {CLOCKS} WHERE tenant_id = $1 AND ticket_id = $2"
    )))
    .bind(tenant)
    .bind(ticket)
    .execute(conn)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

/// How an inbox page is ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum InboxSort {
    /// Most recent activity first (the default).
    #[default]
    LastActivity,
    /// Soonest due first; tickets with no running clock last.
    DueTime,
}

/// Which tickets an inbox page shows: every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InboxFilter {
    /// In this status.
    pub status: Option<Status>,
    /// Of this kind (`question`, `suggestion`, `question_for`).
    pub kind: Option<String>,
    /// In this department's queue.
    pub department: Option<Uuid>,
    /// Assigned to this agent.
    pub assignee: Option<Uuid>,
    /// Assigned to nobody.
    pub unassigned: bool,
    /// Came on this channel.
    pub channel: Option<Channel>,
    /// Has this tag.
    pub tag: Option<String>,
    /// Whether a response-time clock was breached (`None`: either).
    pub breached: Option<bool>,
}

/// Where a page starts: after the last ticket of the previous page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    /// The sort key of the last ticket (activity or due instant; `None` for
    /// a ticket with no due instant when sorting by due time).
    pub key: Option<DateTime<Utc>>,
    /// Its id, to break ties.
    pub ticket: Uuid,
}

impl Cursor {
    /// The opaque string form given to API clients.
    pub fn encode(&self) -> String {
        let key = self
            .key
            .map_or_else(|| "-".to_owned(), |k| k.timestamp_micros().to_string());
        format!("{key}.{}", self.ticket.simple())
    }

    /// Reads [`Cursor::encode`]'s form; `None` when it is not one.
    pub fn decode(s: &str) -> Option<Self> {
        let (key, id) = s.split_once('.')?;
        let key = if key == "-" {
            None
        } else {
            Some(DateTime::from_timestamp_micros(key.parse().ok()?)?)
        };
        Some(Self {
            key,
            ticket: Uuid::parse_str(id).ok()?,
        })
    }
}

/// One ticket as the inbox lists it.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct InboxItem {
    /// The ticket's id.
    pub ticket_id: Uuid,
    /// Its reference.
    pub reference: String,
    /// `question`, `suggestion` or `question_for`.
    pub kind: String,
    /// Where it is in the workflow.
    pub status: String,
    /// The channel it came on.
    pub channel: String,
    /// The subject.
    pub subject: String,
    /// The citizen's contact (name, email, phone, handle).
    pub contact: serde_json::Value,
    /// The department queue it is in.
    pub department_id: Option<Uuid>,
    /// The agent working it.
    pub assignee_id: Option<Uuid>,
    /// Its tags.
    pub tags: Vec<String>,
    /// `low`, `normal`, `high` or `urgent`.
    pub priority: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// Its last activity.
    pub last_activity_at: DateTime<Utc>,
    /// Whether the citizen wrote last (an answer is owed).
    pub awaiting_reply: bool,
    /// How many messages it has.
    pub messages_count: i32,
    /// When the next running clock falls due.
    pub due_at: Option<DateTime<Utc>>,
    /// Whether a clock was breached.
    pub breached: bool,
}

/// A page of the inbox.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InboxPage {
    /// The tickets, in the order asked.
    pub items: Vec<InboxItem>,
    /// Where the next page starts, if there is one.
    pub next: Option<String>,
}

const ITEM_COLUMNS: &str = "ticket_id, reference, kind, status, channel, subject, contact, department_id, \
     assignee_id, tags, priority, opened_at, last_activity_at, awaiting_reply, messages_count, due_at, breached";

/// One page of the tenant's inbox (`first` tickets, at most [`MAX_PAGE`]).
/// Every filter and both sorts are served by an index that leads with the
/// tenant (see the migration).
pub async fn inbox_page(
    conn: &mut PgConnection,
    filter: &InboxFilter,
    sort: InboxSort,
    first: u32,
    after: Option<Cursor>,
) -> Result<InboxPage, sqlx::Error> {
    let first = first.clamp(1, MAX_PAGE);
    let mut q = QueryBuilder::new(format!(
        "SELECT {ITEM_COLUMNS} FROM tickets WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid"
    ));
    if let Some(status) = filter.status {
        q.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(kind) = &filter.kind {
        q.push(" AND kind = ").push_bind(kind.clone());
    }
    if let Some(d) = filter.department {
        q.push(" AND department_id = ").push_bind(d);
    }
    if let Some(a) = filter.assignee {
        q.push(" AND assignee_id = ").push_bind(a);
    }
    if filter.unassigned {
        q.push(" AND assignee_id IS NULL");
    }
    if let Some(c) = filter.channel {
        q.push(" AND channel = ").push_bind(c.as_str());
    }
    if let Some(tag) = &filter.tag {
        q.push(" AND ").push_bind(tag.clone()).push(" = ANY(tags)");
    }
    if let Some(b) = filter.breached {
        q.push(" AND breached = ").push_bind(b);
    }
    match sort {
        InboxSort::LastActivity => {
            if let Some(c) = after {
                q.push(" AND (last_activity_at, ticket_id) < (")
                    .push_bind(c.key)
                    .push(", ")
                    .push_bind(c.ticket)
                    .push(")");
            }
            q.push(" ORDER BY last_activity_at DESC, ticket_id DESC");
        }
        InboxSort::DueTime => {
            // Tickets with no running clock sort last (`due_order` is
            // infinity for them), and the cursor is one range of the index
            // `tickets_by_due`.
            if let Some(c) = after {
                let key = c
                    .key
                    .map_or_else(|| "infinity".to_owned(), |k| k.to_rfc3339());
                q.push(" AND (due_order, ticket_id) > (")
                    .push_bind(key)
                    .push("::timestamptz, ")
                    .push_bind(c.ticket)
                    .push(")");
            }
            q.push(" ORDER BY due_order ASC, ticket_id ASC");
        }
    }
    q.push(" LIMIT ").push_bind(i64::from(first) + 1);
    let mut items: Vec<InboxItem> = q.build_query_as().fetch_all(conn).await?;
    let more = items.len() > first as usize;
    items.truncate(first as usize);
    let next = more
        .then(|| items.last())
        .flatten()
        .map(|last| Cursor {
            key: match sort {
                InboxSort::LastActivity => Some(last.last_activity_at),
                InboxSort::DueTime => last.due_at,
            },
            ticket: last.ticket_id,
        })
        .map(|c| c.encode());
    Ok(InboxPage { items, next })
}

/// How many of the tenant's tickets are in each status (statuses with none
/// are left out).
pub async fn status_counts(conn: &mut PgConnection) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT status, tickets FROM ticket_status_counts \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND tickets > 0 \
         ORDER BY status",
    )
    .fetch_all(conn)
    .await
}

/// One message of a ticket's conversation.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct MessageView {
    /// Its id.
    pub message_id: Uuid,
    /// `in` (from the citizen) or `out` (a reply).
    pub direction: String,
    /// The channel it came or went on.
    pub channel: String,
    /// What it says.
    pub body: String,
    /// For an inbound message, the platform's id of it.
    pub platform_id: Option<String>,
    /// For a reply, the agent who wrote it.
    pub author_id: Option<Uuid>,
    /// For a reply: `pending`, `sent` or `failed`.
    pub delivery_state: Option<String>,
    /// For a sent reply, the platform's id of it.
    pub delivery_platform_id: Option<String>,
    /// For a failed reply, why.
    pub failure_reason: Option<String>,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// One entry of a ticket's history: an event of its stream.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct HistoryEntry {
    /// Its place in the ticket's stream.
    pub version: i64,
    /// The event type (`ticket.assigned`…).
    pub event_type: String,
    /// Who caused it.
    pub actor: serde_json::Value,
    /// The event's data.
    pub data: serde_json::Value,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// A ticket as staff see it: its row, the whole conversation in order, and
/// its history (internal notes included).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct TicketView {
    /// The inbox's columns.
    #[sqlx(flatten)]
    pub item: InboxItem,
    /// The official it is addressed to, for `question_for`.
    pub addressee_official_id: Option<Uuid>,
    /// Whether the citizen wants to be told when it moves.
    pub notify_citizen: bool,
    /// When the staff first replied.
    pub first_response_at: Option<DateTime<Utc>>,
    /// When the first response is due, while that clock runs.
    pub first_response_due: Option<DateTime<Utc>>,
    /// When the resolution is due, while that clock runs.
    pub resolution_due: Option<DateTime<Utc>>,
    /// When it was resolved.
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// How often it was reopened.
    pub reopened_count: i32,
    /// The ticket it was merged into.
    pub merged_into: Option<Uuid>,
    /// How many internal notes it has.
    pub notes_count: i32,
    /// The conversation, oldest first.
    #[sqlx(skip)]
    pub messages: Vec<MessageView>,
    /// Every event of the ticket, oldest first.
    #[sqlx(skip)]
    pub history: Vec<HistoryEntry>,
}

/// A ticket of the tenant with its thread and history, if it exists.
pub async fn ticket_view(
    conn: &mut PgConnection,
    ticket: TicketId,
) -> Result<Option<TicketView>, sqlx::Error> {
    let row: Option<TicketView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ITEM_COLUMNS}, addressee_official_id, notify_citizen, first_response_at, first_response_due, \
           resolution_due, resolved_at, closed_at, reopened_count, merged_into, notes_count \
         FROM tickets WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND ticket_id = $1"
    )))
    .bind(ticket.0)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(mut view) = row else {
        return Ok(None);
    };
    view.messages = messages(&mut *conn, ticket).await?;
    view.history = sqlx::query_as(
        "SELECT version, event_type, actor, data, at FROM ticket_timeline \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND ticket_id = $1 \
         ORDER BY version",
    )
    .bind(ticket.0)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(view))
}

/// A row of a child table, with the ticket it belongs to.
#[derive(sqlx::FromRow)]
struct OfTicket<T> {
    ticket_id: Uuid,
    #[sqlx(flatten)]
    row: T,
}

/// The tenant's tickets among `ids`, each with its thread and history, in
/// three queries whatever their number (a page of the inbox asking for
/// its threads). Ids the tenant does not have are absent.
pub async fn ticket_views(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, TicketView>, sqlx::Error> {
    let rows: Vec<TicketView> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {ITEM_COLUMNS}, addressee_official_id, notify_citizen, first_response_at, first_response_due, \
           resolution_due, resolved_at, closed_at, reopened_count, merged_into, notes_count \
         FROM tickets WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND ticket_id = ANY($1)"
    )))
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut views: HashMap<Uuid, TicketView> =
        rows.into_iter().map(|v| (v.item.ticket_id, v)).collect();
    let found: Vec<Uuid> = views.keys().copied().collect();
    let messages: Vec<OfTicket<MessageView>> = sqlx::query_as(
        "SELECT ticket_id, message_id, direction, channel, body, platform_id, author_id, delivery_state, \
           delivery_platform_id, failure_reason, at FROM ticket_messages \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND ticket_id = ANY($1) \
         ORDER BY ticket_id, seq",
    )
    .bind(&found)
    .fetch_all(&mut *conn)
    .await?;
    for m in messages {
        if let Some(view) = views.get_mut(&m.ticket_id) {
            view.messages.push(m.row);
        }
    }
    let history: Vec<OfTicket<HistoryEntry>> = sqlx::query_as(
        "SELECT ticket_id, version, event_type, actor, data, at FROM ticket_timeline \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND ticket_id = ANY($1) \
         ORDER BY ticket_id, version",
    )
    .bind(&found)
    .fetch_all(&mut *conn)
    .await?;
    for h in history {
        if let Some(view) = views.get_mut(&h.ticket_id) {
            view.history.push(h.row);
        }
    }
    Ok(views)
}

/// A ticket's conversation, oldest first.
pub async fn messages(
    conn: &mut PgConnection,
    ticket: TicketId,
) -> Result<Vec<MessageView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT message_id, direction, channel, body, platform_id, author_id, delivery_state, \
           delivery_platform_id, failure_reason, at FROM ticket_messages \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND ticket_id = $1 \
         ORDER BY seq",
    )
    .bind(ticket.0)
    .fetch_all(conn)
    .await
}

/// The id of the tenant's ticket with this reference and tracking token
/// hash, if both match.
pub async fn find_by_tracking(
    conn: &mut PgConnection,
    reference: &str,
    tracking_hash: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT ticket_id FROM tickets \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid \
           AND reference = $1 AND tracking_hash = $2",
    )
    .bind(reference)
    .bind(tracking_hash)
    .fetch_optional(conn)
    .await
}

/// The id of the tenant's ticket with this reference, if any.
pub async fn find_by_reference(
    conn: &mut PgConnection,
    reference: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT ticket_id FROM tickets \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND reference = $1",
    )
    .bind(reference)
    .fetch_optional(conn)
    .await
}

/// The kind names of [`Kind`], for validating a filter.
pub fn kind_names() -> [&'static str; 3] {
    [
        Kind::Question.as_str(),
        Kind::Suggestion.as_str(),
        "question_for",
    ]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_not_one() {
        let c = Cursor {
            key: DateTime::from_timestamp_micros(1_767_225_600_123_456),
            ticket: Uuid::from_u128(42),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        let none = Cursor {
            key: None,
            ticket: Uuid::from_u128(7),
        };
        assert_eq!(Cursor::decode(&none.encode()), Some(none));
        for bad in [
            "",
            "x",
            "12.notauuid",
            "abc.00000000000000000000000000000001",
        ] {
            assert_eq!(Cursor::decode(bad), None, "{bad}");
        }
    }
}
