//! The `notify` projection: `notify_subscriptions` (every subscription, its
//! target, how the citizen is told and its status) and
//! `notify_announcements`, from the subscriptions' and announcements'
//! streams. What the fan-out reactor selects subscribers from, what the
//! citizen's "manage" page lists and what the expiry timer scans.

use async_trait::async_trait;
use sqlx::PgConnection;
use uuid::Uuid;
use ventanilla_eventlog::{DomainEvent, RecordedEvent};
use ventanilla_kernel::TenantId;
use ventanilla_postgres::projection::Projection;
use ventanilla_postgres::{Handler, TenantTx};
use ventanilla_tickets_domain::announcement::AnnouncementEvent;
use ventanilla_tickets_domain::subscription::{SubscriptionEvent, Target, Via};

use super::links::subscriber_id;

/// The projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct NotifyProjection;

impl Projection for NotifyProjection {
    fn name(&self) -> &'static str {
        "notify"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["notify_subscriptions", "notify_announcements"]
    }
}

/// What identifies the citizen (or integrator) behind a way of being told,
/// within a tenant: `email:<address>`, `webhook:<url>`,
/// `social:<channel>:<handle>`.
pub fn via_key(via: &Via) -> String {
    match via {
        Via::Email { address } => format!("email:{address}"),
        Via::Webhook { url } => format!("webhook:{url}"),
        Via::Social { channel, handle } => format!("social:{channel}:{handle}"),
    }
}

/// The kind, address and channel columns of a way of being told.
pub fn via_columns(via: &Via) -> (&'static str, String, Option<String>) {
    match via {
        Via::Email { address } => ("email", address.clone(), None),
        Via::Webhook { url } => ("webhook", url.clone(), None),
        Via::Social { channel, handle } => ("social", handle.clone(), Some(channel.to_string())),
    }
}

fn id_of(e: &RecordedEvent, prefix: &str) -> Option<Uuid> {
    Uuid::parse_str(e.stream.as_str().strip_prefix(prefix)?).ok()
}

#[async_trait]
impl Handler for NotifyProjection {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let tenant = tx.tenant();
        for e in events {
            if e.event_type.starts_with("subscription.") {
                let Some(id) = id_of(e, "subscription-") else {
                    continue;
                };
                let event =
                    SubscriptionEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
                apply_subscription(tx.conn().await?, tenant, id, &event).await?;
            } else if e.event_type == "announcement.published" {
                let Some(id) = id_of(e, "announcement-") else {
                    continue;
                };
                let AnnouncementEvent::Published(p) =
                    AnnouncementEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
                sqlx::query(
                    "INSERT INTO notify_announcements (tenant_id, announcement_id, title, topics, language, accounts, published_by, published_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
                )
                .bind(tenant.into_uuid())
                .bind(id)
                .bind(&p.title)
                .bind(p.topics.iter().map(|t| t.0).collect::<Vec<_>>())
                .bind(&p.language)
                .bind(&p.accounts)
                .bind(p.by.0)
                .bind(p.at)
                .execute(tx.conn().await?)
                .await?;
            }
        }
        Ok(())
    }
}

async fn set_status(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    status: &str,
    at: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE notify_subscriptions SET status = $3, expires_at = NULL, updated_at = $4 \
         WHERE tenant_id = $1 AND subscription_id = $2",
    )
    .bind(tenant.into_uuid())
    .bind(id)
    .bind(status)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

async fn apply_subscription(
    conn: &mut PgConnection,
    tenant: TenantId,
    id: Uuid,
    event: &SubscriptionEvent,
) -> Result<(), sqlx::Error> {
    match event {
        SubscriptionEvent::Requested {
            target,
            via,
            language,
            daily_digest,
            confirmation,
            at,
        } => {
            let (kind, topic, ticket) = match target {
                Target::Topic(t) => ("topic", Some(t.0), None),
                Target::Case(t) => ("case", None, Some(t.0)),
            };
            let (via_kind, address, channel) = via_columns(via);
            sqlx::query(
                "INSERT INTO notify_subscriptions (tenant_id, subscription_id, subscriber_id, target_kind, topic_id, ticket_id, \
                 via, address, channel, language, daily_digest, status, expires_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, 'pending', $12, $13, $13) ON CONFLICT DO NOTHING",
            )
            .bind(tenant.into_uuid())
            .bind(id)
            .bind(subscriber_id(tenant, &via_key(via)))
            .bind(kind)
            .bind(topic)
            .bind(ticket)
            .bind(via_kind)
            .bind(address)
            .bind(channel)
            .bind(language)
            .bind(daily_digest)
            .bind(confirmation.as_ref().map(|(_, expires)| *expires))
            .bind(at)
            .execute(conn)
            .await?;
        }
        SubscriptionEvent::Confirmed { at } => {
            set_status(conn, tenant, id, "active", *at).await?;
            sqlx::query(
                "UPDATE notify_subscriptions SET active_since = $3 WHERE tenant_id = $1 AND subscription_id = $2",
            )
            .bind(tenant.into_uuid())
            .bind(id)
            .bind(at)
            .execute(conn)
            .await?;
        }
        SubscriptionEvent::Cancelled { at } => {
            set_status(conn, tenant, id, "cancelled", *at).await?
        }
        SubscriptionEvent::Expired { at } => set_status(conn, tenant, id, "expired", *at).await?,
        SubscriptionEvent::Bounced { permanent, at, .. } => {
            if *permanent {
                set_status(conn, tenant, id, "bounced", *at).await?;
            }
        }
        SubscriptionEvent::Disabled { at, .. } => {
            set_status(conn, tenant, id, "disabled", *at).await?
        }
        SubscriptionEvent::WebhookFailed { in_a_row, at } => {
            sqlx::query(
                "UPDATE notify_subscriptions SET webhook_failures = $3, updated_at = $4 \
                 WHERE tenant_id = $1 AND subscription_id = $2",
            )
            .bind(tenant.into_uuid())
            .bind(id)
            .bind(i32::try_from(*in_a_row).unwrap_or(i32::MAX))
            .bind(at)
            .execute(conn)
            .await?;
        }
        SubscriptionEvent::WebhookRecovered { at } => {
            sqlx::query(
                "UPDATE notify_subscriptions SET webhook_failures = 0, updated_at = $3 \
                 WHERE tenant_id = $1 AND subscription_id = $2",
            )
            .bind(tenant.into_uuid())
            .bind(id)
            .bind(at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}
