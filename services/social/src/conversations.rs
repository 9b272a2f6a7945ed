//! The `social_conversations` projection: what the service needs of each
//! message a citizen wrote in order to answer it — the account it came on,
//! private or public, the thread, the author's id on the network, when it
//! was written — from the `social.message_received` events
//! (`social_messages`, `migrations/0009_social.sql`).
//!
//! The delivery worker reads it to turn a ticket's reply (which names the
//! platform id of the citizen's last message) into a direct message or a
//! public answer on the right account, and to know when the citizen last
//! wrote (Meta's 24-hour window).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;
use ventanilla_eventlog::RecordedEvent;
use ventanilla_postgres::projection::Projection;
use ventanilla_postgres::{Handler, TenantTx};
use ventanilla_social_domain::inbound::{MESSAGE_RECEIVED, MessageKind, MessageReceived};

/// The projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConversationsProjection;

impl Projection for ConversationsProjection {
    fn name(&self) -> &'static str {
        "social_conversations"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["social_messages"]
    }
}

fn kind_name(kind: MessageKind) -> &'static str {
    match kind {
        MessageKind::Direct => "direct",
        MessageKind::Comment => "comment",
        MessageKind::Mention => "mention",
        MessageKind::Reply => "reply",
    }
}

#[async_trait]
impl Handler for ConversationsProjection {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let tenant = tx.tenant().into_uuid();
        for e in events {
            if e.event_type != MESSAGE_RECEIVED {
                continue;
            }
            let Ok(m) = serde_json::from_value::<MessageReceived>(e.data.clone()) else {
                tracing::error!(event = %e.id, "unreadable social.message_received; skipped");
                continue;
            };
            sqlx::query(
                "INSERT INTO social_messages (tenant_id, channel, platform_id, account_id, kind, thread, author_id, sent_at, reply_context) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(&m.channel)
            .bind(&m.platform_id)
            .bind(m.account.0)
            .bind(kind_name(m.kind))
            .bind(&m.thread)
            .bind(&m.author.platform_user_id)
            .bind(m.sent_at)
            .bind(&m.reply_context)
            .execute(tx.conn().await?)
            .await?;
        }
        Ok(())
    }
}

/// A message a citizen wrote, as recorded.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RecordedMessage {
    /// The account it came on.
    pub account_id: Uuid,
    /// `direct`, `comment`, `mention` or `reply`.
    pub kind: String,
    /// The thread.
    pub thread: String,
    /// The author's id on the network.
    pub author_id: String,
    /// What the network needs to answer it, if anything.
    pub reply_context: Option<serde_json::Value>,
}

/// The message with this platform id on `channel`, in the connection's
/// tenant.
pub async fn find(
    conn: &mut PgConnection,
    channel: &str,
    platform_id: &str,
) -> Result<Option<RecordedMessage>, sqlx::Error> {
    sqlx::query_as(
        "SELECT account_id, kind, thread, author_id, reply_context FROM social_messages \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid \
           AND channel = $1 AND platform_id = $2",
    )
    .bind(channel)
    .bind(platform_id)
    .fetch_optional(conn)
    .await
}

/// When `author` last wrote on `account` (for Meta's messaging window).
pub async fn last_written(
    conn: &mut PgConnection,
    account: Uuid,
    author: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT max(sent_at) FROM social_messages \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid \
           AND account_id = $1 AND author_id = $2",
    )
    .bind(account)
    .bind(author)
    .fetch_one(conn)
    .await
}

/// The platform id of `author`'s latest message on `account` (what a
/// private answer on Mastodon reads its author's `@user@server` from).
pub async fn latest_from(
    conn: &mut PgConnection,
    account: Uuid,
    author: &str,
) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT platform_id FROM social_messages \
         WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid \
           AND account_id = $1 AND author_id = $2 ORDER BY sent_at DESC LIMIT 1",
    )
    .bind(account)
    .bind(author)
    .fetch_optional(conn)
    .await
}
