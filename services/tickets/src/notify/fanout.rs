//! The fan-out reactor (subscription [`SUBSCRIPTION`]): turns what happens
//! into notifications to queue, in the subscription's transaction, so that
//! an accepted event is never lost and never queued twice.
//!
//! - `subscription.requested` by e-mail → the confirmation e-mail;
//! - `announcement.published` → one notification per subscriber of its
//!   topics (an address subscribed to two of them hears once);
//! - `ticket.replied`, and `ticket.status_changed` to resolved, closed or
//!   back open → one per subscriber of the case.
//!
//! Subscribers are selected with one `INSERT … SELECT` from the `notify`
//! projection — never loaded into memory — after waiting until the
//! projection shows every event before the cause (a subscription confirmed
//! just before an announcement hears about it). What a notification says is
//! stored once per cause (`notify_contents`); each queued row names its
//! subscriber, and its id is derived from the cause and the subscriber, so a
//! redelivered event queues nothing new. Subscribers who chose the daily
//! digest get their rows held until the next digest hour in the tenant's
//! time zone.
//!
//! What this module must not do: send (the worker does), or decide anything
//! the domain decides.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use sqlx::PgConnection;
use uuid::Uuid;
use ventanilla_eventlog::{DomainEvent, Position, RecordedEvent};
use ventanilla_kernel::TenantId;
use ventanilla_postgres::projection::ensure_caught_up;
use ventanilla_postgres::{Handler, PgEventLog, TenantTx};
use ventanilla_tenancy::Tenancy;
use ventanilla_tenants_domain::organisation::{DirectoryState, TopicId as DirectoryTopicId};
use ventanilla_tickets_domain::announcement::AnnouncementEvent;
use ventanilla_tickets_domain::subscription::{SubscriptionEvent, Target, Via};
use ventanilla_tickets_domain::ticket::{Status, TicketEvent};

use super::projection::{NotifyProjection, via_columns};
use super::render::Content;

/// The subscription's name.
pub const SUBSCRIPTION: &str = "notify:fanout";

/// How long the reactor waits for the `notify` projection to reach a cause.
pub const PROJECTION_WAIT: Duration = Duration::from_secs(30);

/// Urgent notifications (confirmations, case updates).
pub const PRIORITY_URGENT: i16 = 0;
/// Bulk notifications (announcements, digests).
pub const PRIORITY_BULK: i16 = 1;

/// The reactor.
#[derive(Clone)]
pub struct FanoutReactor {
    log: Arc<PgEventLog>,
    tenancy: Tenancy,
    digest_hour: u32,
}

impl FanoutReactor {
    /// The reactor over `log`, holding digests until `digest_hour` local.
    pub fn new(log: Arc<PgEventLog>, tenancy: Tenancy, digest_hour: u32) -> Self {
        Self {
            log,
            tenancy,
            digest_hour: digest_hour.min(23),
        }
    }
}

/// The next `hour`:00 in `tz` strictly after `now`.
pub fn next_digest(now: DateTime<Utc>, tz: Tz, hour: u32) -> DateTime<Utc> {
    let time = NaiveTime::from_hms_opt(hour.min(23), 0, 0).unwrap_or(NaiveTime::MIN);
    let mut date = now.with_timezone(&tz).date_naive();
    for _ in 0..4 {
        if let Some(at) = tz.from_local_datetime(&date.and_time(time)).earliest() {
            let at = at.with_timezone(&Utc);
            if at > now {
                return at;
            }
        }
        match date.succ_opt() {
            Some(next) => date = next,
            None => break,
        }
    }
    now + chrono::Duration::days(1)
}

fn id_of(e: &RecordedEvent, prefix: &str) -> Option<Uuid> {
    Uuid::parse_str(e.stream.as_str().strip_prefix(prefix)?).ok()
}

/// What the batch needs of the tenant, read once.
#[derive(Default)]
struct Facts {
    tz: Option<Tz>,
    directory: Option<DirectoryState>,
}

impl FanoutReactor {
    async fn tz(&self, facts: &mut Facts, tenant: TenantId) -> anyhow::Result<Tz> {
        if let Some(tz) = facts.tz {
            return Ok(tz);
        }
        let tz = self.tenancy.calendar(tenant).await?.time_zone();
        facts.tz = Some(tz);
        Ok(tz)
    }

    async fn topic_name(
        &self,
        facts: &mut Facts,
        tenant: TenantId,
        topic: Uuid,
    ) -> anyhow::Result<String> {
        if facts.directory.is_none() {
            facts.directory = Some(self.tenancy.directory(tenant).await?);
        }
        Ok(facts
            .directory
            .as_ref()
            .and_then(|d| d.topic(DirectoryTopicId(topic)))
            .map(|t| t.name.to_string())
            .unwrap_or_default())
    }
}

async fn store_content(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    content: &Content,
    at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let kind = content.webhook_type();
    sqlx::query(
        "INSERT INTO notify_contents (tenant_id, content_id, kind, data, created_at) \
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.into_uuid())
    .bind(id)
    .bind(kind)
    .bind(serde_json::to_value(content)?)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Which subscribers a cause goes to.
enum Audience<'a> {
    Topics(&'a [Uuid]),
    Case(Uuid),
}

/// Queues `content` for every subscriber of `audience` active since before
/// `at` (the cause), one row per subscriber (the lowest subscription id of
/// theirs carries it). Returns how many rows were queued.
#[allow(clippy::too_many_arguments)]
async fn fan_out(
    conn: &mut PgConnection,
    tenant: TenantId,
    content: Uuid,
    kind: &str,
    priority: i16,
    audience: Audience<'_>,
    at: DateTime<Utc>,
    digest_at: DateTime<Utc>,
) -> anyhow::Result<u64> {
    let (condition, topics, case): (&str, Vec<Uuid>, Option<Uuid>) = match audience {
        Audience::Topics(t) => (
            "s.target_kind = 'topic' AND s.topic_id = ANY($7)",
            t.to_vec(),
            None,
        ),
        Audience::Case(c) => (
            "s.target_kind = 'case' AND s.ticket_id = $8",
            vec![],
            Some(c),
        ),
    };
    let sql = format!(
        "INSERT INTO notify_outbox (tenant_id, notification_id, subscription_id, content_id, kind, via, address, channel, language, \
                                    priority, state, next_attempt_at, digest_at, created_at) \
         SELECT DISTINCT ON (s.subscriber_id) s.tenant_id, md5($2::text || s.subscriber_id::text)::uuid, s.subscription_id, $2, $3, \
                s.via, s.address, s.channel, s.language, $4, \
                CASE WHEN s.daily_digest AND s.via = 'email' THEN 'digest' ELSE 'pending' END, $5, \
                CASE WHEN s.daily_digest AND s.via = 'email' THEN $6::timestamptz END, $5 \
         FROM notify_subscriptions s \
         WHERE s.tenant_id = $1 AND s.status = 'active' AND s.active_since <= $5 AND {condition} \
         ORDER BY s.subscriber_id, s.subscription_id \
         ON CONFLICT DO NOTHING"
    );
    let done = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant.into_uuid())
        .bind(content)
        .bind(kind)
        .bind(priority)
        .bind(at)
        .bind(digest_at)
        .bind(topics)
        .bind(case)
        .execute(conn)
        .await?;
    Ok(done.rows_affected())
}

/// The reference and subject of a ticket, from the inbox.
async fn ticket_facts(
    conn: &mut PgConnection,
    ticket: Uuid,
) -> Result<Option<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT reference, subject FROM tickets \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid AND ticket_id = $1",
    )
    .bind(ticket)
    .fetch_optional(conn)
    .await
}

/// Whether an event may cause notifications to subscribers (so that the
/// reactor waits for the projection before handling it).
fn fans_out(e: &RecordedEvent) -> bool {
    matches!(
        e.event_type.as_str(),
        "announcement.published" | "ticket.replied" | "ticket.status_changed"
    )
}

#[async_trait]
impl Handler for FanoutReactor {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let tenant = tx.tenant();
        let mut facts = Facts::default();
        // The projection must show everything up to the last cause here.
        let last: Option<Position> = events
            .iter()
            .filter(|e| fans_out(e))
            .map(|e| e.position)
            .max();
        if let Some(target) = last {
            ensure_caught_up(
                Arc::clone(&self.log),
                self.log.pool().clone(),
                Arc::new(NotifyProjection),
                target,
                PROJECTION_WAIT,
            )
            .await?;
        }
        for e in events {
            match e.event_type.as_str() {
                "subscription.requested" => {
                    let Some(subscription) = id_of(e, "subscription-") else {
                        continue;
                    };
                    let SubscriptionEvent::Requested {
                        target,
                        via,
                        language,
                        ..
                    } = SubscriptionEvent::from_stored(&e.event_type, e.schema_version, &e.data)?
                    else {
                        continue;
                    };
                    if !matches!(via, Via::Email { .. }) {
                        continue;
                    }
                    let label = match target {
                        Target::Topic(t) => self.topic_name(&mut facts, tenant, t.0).await?,
                        Target::Case(t) => ticket_facts(tx.conn().await?, t.0)
                            .await?
                            .map(|(reference, _)| reference)
                            .unwrap_or_default(),
                    };
                    let content = e.id.into_uuid();
                    let conn = tx.conn().await?;
                    store_content(
                        conn,
                        tenant,
                        content,
                        &Content::Confirm { target: label },
                        e.recorded_at,
                    )
                    .await?;
                    let (via_kind, address, _) = via_columns(&via);
                    sqlx::query(
                        "INSERT INTO notify_outbox (tenant_id, notification_id, subscription_id, content_id, kind, via, address, language, \
                                                    priority, state, next_attempt_at, created_at) \
                         VALUES ($1, $2, $3, $4, 'subscription.confirmation', $5, $6, $7, $8, 'pending', $9, $9) ON CONFLICT DO NOTHING",
                    )
                    .bind(tenant.into_uuid())
                    .bind(Uuid::new_v5(&subscription, b"confirm"))
                    .bind(subscription)
                    .bind(content)
                    .bind(via_kind)
                    .bind(address)
                    .bind(language)
                    .bind(PRIORITY_URGENT)
                    .bind(e.recorded_at)
                    .execute(conn)
                    .await?;
                }
                "announcement.published" => {
                    let Some(announcement) = id_of(e, "announcement-") else {
                        continue;
                    };
                    let AnnouncementEvent::Published(p) =
                        AnnouncementEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
                    let content = Content::Announcement {
                        announcement_id: announcement,
                        title: p.title.clone(),
                        body: p.body.clone(),
                        link: p.link.clone(),
                        image_url: p.image_url.clone(),
                        at: p.at,
                    };
                    let tz = self.tz(&mut facts, tenant).await?;
                    let digest_at = next_digest(e.recorded_at, tz, self.digest_hour);
                    let conn = tx.conn().await?;
                    // Published once: the announcement's id names its content.
                    let id = announcement;
                    store_content(conn, tenant, id, &content, e.recorded_at).await?;
                    let topics: Vec<Uuid> = p.topics.iter().map(|t| t.0).collect();
                    let queued = fan_out(
                        conn,
                        tenant,
                        id,
                        content.webhook_type(),
                        PRIORITY_BULK,
                        Audience::Topics(&topics),
                        e.recorded_at,
                        digest_at,
                    )
                    .await?;
                    tracing::info!(tenant_id = %tenant, %announcement, queued, "announcement fanned out");
                }
                "ticket.replied" | "ticket.status_changed" => {
                    let Some(ticket) = id_of(e, "ticket-") else {
                        continue;
                    };
                    let event = TicketEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
                    let conn = tx.conn().await?;
                    let (reference, subject) =
                        ticket_facts(conn, ticket).await?.unwrap_or_default();
                    let content = match event {
                        TicketEvent::Replied(r) => Content::CaseReply {
                            ticket_id: ticket,
                            reference: r.reference.as_str().to_owned(),
                            subject: r.subject.as_str().to_owned(),
                            body: r.body.as_str().to_owned(),
                            at: r.at,
                        },
                        TicketEvent::StatusChanged(s) => {
                            let status = match (s.from, s.to) {
                                (_, Status::Resolved) => "resolved",
                                (_, Status::Closed) => "closed",
                                (Status::Resolved | Status::Closed, Status::Reopened) => "reopened",
                                _ => continue,
                            };
                            Content::CaseStatus {
                                ticket_id: ticket,
                                reference,
                                subject,
                                status: status.to_owned(),
                                at: s.at,
                            }
                        }
                        _ => continue,
                    };
                    let tz = self.tz(&mut facts, tenant).await?;
                    let digest_at = next_digest(e.recorded_at, tz, self.digest_hour);
                    let conn = tx.conn().await?;
                    let id = e.id.into_uuid();
                    store_content(conn, tenant, id, &content, e.recorded_at).await?;
                    fan_out(
                        conn,
                        tenant,
                        id,
                        content.webhook_type(),
                        PRIORITY_URGENT,
                        Audience::Case(ticket),
                        e.recorded_at,
                        digest_at,
                    )
                    .await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_next_digest_is_the_next_local_hour_across_days_and_clock_changes() {
        let madrid = chrono_tz::Europe::Madrid;
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // 07:30 local (06:30 UTC in winter) → 08:00 local today.
        assert_eq!(
            next_digest(at("2026-01-15T06:30:00Z"), madrid, 8),
            at("2026-01-15T07:00:00Z")
        );
        // 09:00 local → tomorrow 08:00.
        assert_eq!(
            next_digest(at("2026-01-15T08:00:00Z"), madrid, 8),
            at("2026-01-16T07:00:00Z")
        );
        // Exactly 08:00 local → tomorrow (strictly after).
        assert_eq!(
            next_digest(at("2026-01-15T07:00:00Z"), madrid, 8),
            at("2026-01-16T07:00:00Z")
        );
        // Across the spring change (29 March 2026): 08:00 CEST = 06:00 UTC.
        assert_eq!(
            next_digest(at("2026-03-28T12:00:00Z"), madrid, 8),
            at("2026-03-29T06:00:00Z")
        );
        // 02:00 does not exist that night: the next existing one.
        assert_eq!(
            next_digest(at("2026-03-28T12:00:00Z"), madrid, 2),
            at("2026-03-30T00:00:00Z")
        );
    }
}
