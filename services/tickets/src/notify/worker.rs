//! The notification worker: sends what the fan-out reactor queued.
//!
//! Each tick claims a batch of due notifications across tenants
//! (`notify_claim()`: most urgent first, rows another process holds skipped,
//! each claimed with a lease), sends them concurrently — by e-mail through
//! the SMTP relay, as a signed webhook, or handed to the social service as
//! a `notice.requested` (settled when its `delivery.*` comes back) — and
//! records the outcome in the row's tenant. Nothing is held in memory beyond one batch, so an
//! announcement to 10,000 subscribers flows through in batches while
//! confirmations and case updates (priority 0) overtake it.
//!
//! Guarantees:
//! - at least once: a process that dies mid-send leaves its rows `sending`;
//!   when the lease ends they are claimed again and sent with the **same**
//!   `Message-ID` / `webhook-id` (both are the notification's id), so mail
//!   clients and integrators can drop the repeat. A notification recorded
//!   `sent` is never sent again.
//! - temporary failures (SMTP 4xx, connection trouble, webhook 5xx/429)
//!   retry with exponential backoff and jitter, at most [`MAX_ATTEMPTS`];
//! - a permanent bounce (no such mailbox) records `subscription.bounced`,
//!   which ends the subscription: its other queued notifications are
//!   dropped; a webhook failure counts towards the subscription's
//!   `WEBHOOK_FAILURES_MAX` (then `subscription.disabled`), a success resets
//!   it;
//! - nothing is sent for a subscription that ended (cancelled, expired,
//!   bounced, disabled), and an e-mail subscription gets nothing but its
//!   confirmation until it is confirmed.
//!
//! The digest step folds the held notifications of daily-digest subscribers
//! into one `digest` notification when their hour comes.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandRunner, Decider};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_mail::{Address, MailError, Mailer, OutgoingMail};
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_tenancy::Tenancy;
use ventanilla_tickets_domain::notice::{self, Notice, NoticeTo, Request};
use ventanilla_tickets_domain::sender::{self, Sender};
use ventanilla_tickets_domain::subscription::{
    self, Subscription, SubscriptionCommand, SubscriptionId,
};
use ventanilla_tickets_domain::values::Channel;

use super::fanout::PRIORITY_BULK;
use super::links::subscriber_id;
use super::render::{self, Content};
use super::service::NotifyConfig;

/// After this many attempts a notification that keeps failing is given up.
pub const MAX_ATTEMPTS: i32 = 8;

/// The longest wait between two attempts.
pub const MAX_BACKOFF: chrono::Duration = chrono::Duration::hours(1);

/// How long a claimed notification is held before another worker may
/// claim it again (a crashed worker's).
pub const LEASE: chrono::Duration = chrono::Duration::minutes(2);

/// What the worker needs besides the service's configuration.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// Notifications sent at the same time.
    pub concurrency: usize,
    /// The From address when the tenant has not set one.
    pub sender_address: String,
}

/// A claimed notification.
#[derive(Debug, Clone, sqlx::FromRow)]
struct Claimed {
    tenant_id: Uuid,
    notification_id: Uuid,
    subscription_id: Uuid,
    content_id: Uuid,
    kind: String,
    via: String,
    address: String,
    channel: Option<String>,
    language: String,
    attempts: i32,
    status: Option<String>,
}

/// How one notification went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Sent,
    /// Handed to the social service (a `notice.requested`); its
    /// `delivery.*` event settles it.
    Handed,
    /// Not sent and never will be: the subscription ended, or the content
    /// is gone.
    Dropped(String),
    /// Try again at this instant.
    Retry(DateTime<Utc>, String),
    /// Given up.
    Failed(String),
}

/// What the domain must hear about a send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    None,
    Bounced,
    WebhookFailed,
    WebhookOk,
}

/// What a tenant's messages need, read once per batch.
#[derive(Debug, Clone)]
struct TenantFacts {
    name: String,
    from: Address,
    reply_to: Option<Address>,
    active: bool,
}

/// The worker.
#[derive(Clone)]
pub struct NotifyWorker {
    pool: PgPool,
    runner: CommandRunner<PgEventLog>,
    tenancy: Tenancy,
    config: Arc<NotifyConfig>,
    mailer: Option<Arc<Mailer>>,
    webhooks: Arc<ventanilla_webhooks::Sender>,
    settings: WorkerSettings,
    message_id_domain: String,
}

/// The backoff before attempt `attempts + 1`: 30 s doubling, ±50 % jitter,
/// at most [`MAX_BACKOFF`]; a `Retry-After` is honoured when longer.
pub fn next_attempt(
    attempts: i32,
    retry_after: Option<Duration>,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let base = 30.0 * 2f64.powi((attempts - 1).clamp(0, 20));
    let jitter = 0.5 + f64::from((Uuid::new_v4().as_u128() & 0xffff) as u16) / f64::from(u16::MAX);
    let mut secs = (base * jitter).min(MAX_BACKOFF.num_seconds() as f64);
    if let Some(after) = retry_after {
        secs = secs.max(after.as_secs_f64().min(MAX_BACKOFF.num_seconds() as f64));
    }
    now + chrono::Duration::milliseconds((secs * 1000.0) as i64)
}

/// The host of `url`, for Message-IDs.
fn host_of(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let host = rest.split(['/', ':', '?']).next()?;
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// Whether an SMTP refusal says the mailbox itself is bad (RFC 3463
/// 5.1.x: no such user, bad address, mailbox unavailable).
fn mailbox_gone(e: &MailError) -> bool {
    match e {
        MailError::Invalid(_) => true,
        MailError::Permanent { code, message } => {
            matches!(code, Some(550 | 551 | 553)) || message.contains("5.1.")
        }
        _ => false,
    }
}

impl NotifyWorker {
    /// A worker sending mail through `mailer` (`None`: e-mail notifications
    /// wait, with a reason saying the relay is not configured).
    pub fn new(
        log: Arc<PgEventLog>,
        config: Arc<NotifyConfig>,
        mailer: Option<Arc<Mailer>>,
        webhooks: Arc<ventanilla_webhooks::Sender>,
        settings: WorkerSettings,
    ) -> Self {
        let runner = CommandRunner::new(Arc::clone(&log), 5);
        // The public host names Message-IDs and List-Ids; an address (a
        // development machine's) does not: the sender's domain then.
        let message_id_domain = host_of(&config.public_url)
            .filter(|h| h.contains('.') && h.parse::<std::net::IpAddr>().is_err())
            .or_else(|| {
                settings
                    .sender_address
                    .rsplit_once('@')
                    .map(|(_, d)| d.to_ascii_lowercase())
            })
            .unwrap_or_else(|| "ventanilla.localhost".to_owned());
        Self {
            pool: log.pool().clone(),
            tenancy: Tenancy::new(runner.clone()),
            runner,
            config,
            mailer,
            webhooks,
            settings,
            message_id_domain,
        }
    }

    /// Sends one batch of due notifications; returns how many were
    /// claimed.
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let limit = i32::try_from(self.settings.concurrency.max(1) * 8).unwrap_or(128);
        let claimed: Vec<Claimed> = sqlx::query_as("SELECT * FROM notify_claim($1, $2, $3)")
            .bind(now)
            .bind(now + LEASE)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        if claimed.is_empty() {
            return Ok(0);
        }
        let count = claimed.len();
        let mut by_tenant: BTreeMap<Uuid, Vec<Claimed>> = BTreeMap::new();
        for c in claimed {
            by_tenant.entry(c.tenant_id).or_default().push(c);
        }
        for (tenant, rows) in by_tenant {
            let tenant = TenantId::from_uuid(tenant);
            if let Err(e) = self.send_tenant(tenant, rows).await {
                // The rows stay `sending` and are claimed again after the
                // lease: nothing is lost.
                tracing::error!(tenant_id = %tenant, error = %e, "could not send a batch of notifications");
            }
        }
        Ok(count)
    }

    /// Sends batches until fewer than a full batch is due.
    pub async fn drain(&self) -> anyhow::Result<()> {
        let full = self.settings.concurrency.max(1) * 8;
        while self.tick(Utc::now()).await? >= full {}
        Ok(())
    }

    async fn facts(&self, tenant: TenantId) -> anyhow::Result<TenantFacts> {
        let (name, contact, active) = match self.tenancy.active_tenant(tenant).await {
            Ok(t) => (t.name, Some(t.contact_email), true),
            Err(ventanilla_tenancy::TenancyError::Unexpected(e)) => return Err(e),
            Err(_) => (String::new(), None, false),
        };
        let (_, events) = self
            .runner
            .load::<Sender>(tenant, &sender::stream_id()?)
            .await
            .map_err(|e| anyhow::anyhow!("reading the tenant's sender: {e}"))?;
        let sender = Sender::fold(&events);
        let display = sender.name.unwrap_or_else(|| name.clone());
        Ok(TenantFacts {
            from: Address::named(
                display,
                sender
                    .address
                    .unwrap_or_else(|| self.settings.sender_address.clone()),
            ),
            reply_to: sender.reply_to.or(contact).map(Address::new),
            name,
            active,
        })
    }

    async fn contents(
        &self,
        tenant: TenantId,
        ids: &[Uuid],
    ) -> anyhow::Result<HashMap<Uuid, Content>> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let rows: Vec<(Uuid, serde_json::Value)> = sqlx::query_as(
            "SELECT content_id, data FROM notify_contents WHERE tenant_id = $1 AND content_id = ANY($2)",
        )
        .bind(tenant.into_uuid())
        .bind(ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let mut out = HashMap::new();
        for (id, data) in rows {
            out.insert(id, serde_json::from_value(data)?);
        }
        Ok(out)
    }

    async fn send_tenant(&self, tenant: TenantId, rows: Vec<Claimed>) -> anyhow::Result<()> {
        let facts = Arc::new(self.facts(tenant).await?);
        let mut ids: Vec<Uuid> = rows.iter().map(|r| r.content_id).collect();
        ids.sort_unstable();
        ids.dedup();
        let mut contents = self.contents(tenant, &ids).await?;
        // A digest's items.
        let items: Vec<Uuid> = contents
            .values()
            .filter_map(|c| match c {
                Content::Digest { items } => Some(items.clone()),
                _ => None,
            })
            .flatten()
            .filter(|id| !contents.contains_key(id))
            .collect();
        if !items.is_empty() {
            contents.extend(self.contents(tenant, &items).await?);
        }
        let contents = Arc::new(contents);
        let now = Utc::now();
        let outcomes: Vec<(Claimed, Outcome, Verdict)> = futures::stream::iter(rows)
            .map(|row| {
                let facts = Arc::clone(&facts);
                let contents = Arc::clone(&contents);
                async move {
                    let (outcome, verdict) =
                        self.send_one(tenant, &row, &facts, &contents, now).await;
                    (row, outcome, verdict)
                }
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;
        self.record(tenant, &outcomes).await?;
        for (row, outcome, verdict) in &outcomes {
            self.tell_domain(tenant, row, outcome, *verdict).await;
        }
        Ok(())
    }

    async fn send_one(
        &self,
        tenant: TenantId,
        row: &Claimed,
        facts: &TenantFacts,
        contents: &HashMap<Uuid, Content>,
        now: DateTime<Utc>,
    ) -> (Outcome, Verdict) {
        let confirmation = row.kind == "subscription.confirmation";
        match (confirmation, row.status.as_deref()) {
            (true, None | Some("pending")) | (false, Some("active")) => {}
            (false, None) => {
                return (
                    Outcome::Retry(
                        now + chrono::Duration::seconds(5),
                        "the subscription is not in the read model yet".into(),
                    ),
                    Verdict::None,
                );
            }
            (_, Some(status)) => {
                return (
                    Outcome::Dropped(format!("the subscription is {status}")),
                    Verdict::None,
                );
            }
        }
        if !facts.active {
            return self.retry_or_fail(
                row,
                "the organisation's account is suspended or closed".into(),
                None,
                now,
            );
        }
        let Some(content) = contents.get(&row.content_id) else {
            return (
                Outcome::Dropped("its content is gone".into()),
                Verdict::None,
            );
        };
        match row.via.as_str() {
            "email" => self.email(tenant, row, facts, content, contents, now).await,
            "webhook" => self.webhook(tenant, row, content, now).await,
            "social" => self.social(tenant, row, facts, content, now).await,
            other => (
                Outcome::Failed(format!("notifications by {other} are not available yet")),
                Verdict::None,
            ),
        }
    }

    fn retry_or_fail(
        &self,
        row: &Claimed,
        reason: String,
        retry_after: Option<Duration>,
        now: DateTime<Utc>,
    ) -> (Outcome, Verdict) {
        if row.attempts >= MAX_ATTEMPTS {
            (
                Outcome::Failed(format!("gave up after {} attempts: {reason}", row.attempts)),
                Verdict::None,
            )
        } else {
            (
                Outcome::Retry(next_attempt(row.attempts, retry_after, now), reason),
                Verdict::None,
            )
        }
    }

    async fn email(
        &self,
        tenant: TenantId,
        row: &Claimed,
        facts: &TenantFacts,
        content: &Content,
        contents: &HashMap<Uuid, Content>,
        now: DateTime<Utc>,
    ) -> (Outcome, Verdict) {
        let Some(mailer) = &self.mailer else {
            return self.retry_or_fail(
                row,
                "no SMTP relay is configured (notify.smtp_url)".into(),
                None,
                now,
            );
        };
        let subscriber = subscriber_id(tenant, &format!("email:{}", row.address));
        let links = match self.config.links(tenant, row.subscription_id, subscriber) {
            Ok(l) => l,
            Err(e) => return self.retry_or_fail(row, e.to_string(), None, now),
        };
        let items: Vec<Content> = match content {
            Content::Digest { items } => items
                .iter()
                .filter_map(|i| contents.get(i).cloned())
                .collect(),
            _ => vec![],
        };
        let rendered = match render::render(&row.language, &facts.name, content, &items, &links) {
            Ok(r) => r,
            Err(e) => {
                return (
                    Outcome::Failed(format!("could not render the message: {e}")),
                    Verdict::None,
                );
            }
        };
        let mut mail = OutgoingMail::new(
            format!("{}@{}", row.notification_id, self.message_id_domain),
            facts.from.clone(),
            Address::new(row.address.clone()),
            rendered.subject,
            rendered.text,
        );
        mail.html = Some(rendered.html);
        mail.reply_to = facts.reply_to.clone();
        mail.auto_submitted = true;
        mail.language = Some(render::phrases(&row.language).tag.to_owned());
        mail.list_id = Some(format!("{}.notify.{}", tenant, self.message_id_domain));
        if row.kind != "subscription.confirmation" {
            mail.list_unsubscribe = links.unsubscribe.filter(|u| u.starts_with("https://"));
        }
        mail.headers = vec![(
            "X-Ventanilla-Notification".to_owned(),
            row.notification_id.to_string(),
        )];
        match mailer.send(&mail).await {
            Ok(()) => (Outcome::Sent, Verdict::None),
            Err(e) if e.is_permanent() => {
                let verdict = if mailbox_gone(&e) {
                    Verdict::Bounced
                } else {
                    Verdict::None
                };
                (Outcome::Failed(e.to_string()), verdict)
            }
            Err(e) => self.retry_or_fail(row, e.to_string(), None, now),
        }
    }

    async fn webhook(
        &self,
        tenant: TenantId,
        row: &Claimed,
        content: &Content,
        now: DateTime<Utc>,
    ) -> (Outcome, Verdict) {
        let Some(key) = &self.config.key else {
            return self.retry_or_fail(
                row,
                "no notification key is configured (notify.key)".into(),
                None,
                now,
            );
        };
        let body = json!({
            "id": row.notification_id,
            "type": content.webhook_type(),
            "subscription_id": row.subscription_id,
            "created_at": now,
            "data": content,
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let secret = key.webhook_secret(tenant, row.subscription_id);
        match self
            .webhooks
            .send(
                &row.address,
                &secret,
                &row.notification_id.to_string(),
                &body,
                now.timestamp(),
            )
            .await
        {
            Ok(_) => (Outcome::Sent, Verdict::WebhookOk),
            Err(ventanilla_webhooks::SendError::Temporary {
                reason,
                retry_after,
            }) => {
                let (outcome, _) = self.retry_or_fail(row, reason, retry_after, now);
                (outcome, Verdict::WebhookFailed)
            }
            Err(ventanilla_webhooks::SendError::Permanent { reason, .. }) => {
                (Outcome::Failed(reason), Verdict::WebhookFailed)
            }
        }
    }

    /// Hands a notification on a social network to the social service:
    /// for a case, as an answer to the citizen's latest message on it (a
    /// private message where they wrote privately); otherwise a private
    /// message to the id the integrator gave.
    async fn social(
        &self,
        tenant: TenantId,
        row: &Claimed,
        facts: &TenantFacts,
        content: &Content,
        now: DateTime<Utc>,
    ) -> (Outcome, Verdict) {
        let Some(channel) = row
            .channel
            .as_deref()
            .and_then(|c| Channel::parse("channel", c).ok())
        else {
            return (
                Outcome::Failed("the subscription names no social network".into()),
                Verdict::None,
            );
        };
        let case = match content {
            Content::CaseReply { ticket_id, .. } | Content::CaseStatus { ticket_id, .. } => {
                Some(*ticket_id)
            }
            _ => None,
        };
        let latest = match case {
            Some(ticket) => match self.latest_inbound(tenant, ticket, channel.as_str()).await {
                Ok(found) => found,
                Err(e) => return self.retry_or_fail(row, e.to_string(), None, now),
            },
            None => None,
        };
        let to = match latest {
            Some(platform_id) => NoticeTo::AuthorOf { platform_id },
            None => NoticeTo::Direct {
                recipient: row.address.clone(),
            },
        };
        let request = Request {
            channel,
            to,
            text: notice::fit(&render::short(&row.language, &facts.name, content)),
            subscription: row.subscription_id,
        };
        let ctx = CommandContext::new(tenant, now, Actor::system("notify-worker"))
            .with_idempotency_key(row.notification_id);
        let stream = match notice::stream_id(row.notification_id) {
            Ok(s) => s,
            Err(e) => return (Outcome::Failed(e.to_string()), Verdict::None),
        };
        match self.runner.execute::<Notice>(&ctx, &stream, &request).await {
            Ok(_) => (Outcome::Handed, Verdict::None),
            Err(ventanilla_eventlog::CommandError::Domain(e)) => {
                (Outcome::Failed(e.to_string()), Verdict::None)
            }
            Err(e) => self.retry_or_fail(row, e.to_string(), None, now),
        }
    }

    /// The platform id of the citizen's latest message on a case, on
    /// `channel`.
    async fn latest_inbound(
        &self,
        tenant: TenantId,
        ticket: Uuid,
        channel: &str,
    ) -> Result<Option<String>, sqlx::Error> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let found = sqlx::query_scalar(
            "SELECT platform_id FROM ticket_messages \
             WHERE tenant_id = $1 AND ticket_id = $2 AND direction = 'in' AND channel = $3 AND platform_id IS NOT NULL \
             ORDER BY seq DESC LIMIT 1",
        )
        .bind(tenant.into_uuid())
        .bind(ticket)
        .bind(channel)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(found)
    }

    async fn record(
        &self,
        tenant: TenantId,
        outcomes: &[(Claimed, Outcome, Verdict)],
    ) -> anyhow::Result<()> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let sent: Vec<Uuid> = outcomes
            .iter()
            .filter(|(_, o, _)| *o == Outcome::Sent)
            .map(|(r, _, _)| r.notification_id)
            .collect();
        if !sent.is_empty() {
            sqlx::query(
                "UPDATE notify_outbox SET state = 'sent', sent_at = now(), last_error = NULL \
                 WHERE tenant_id = $1 AND notification_id = ANY($2)",
            )
            .bind(tenant.into_uuid())
            .bind(&sent)
            .execute(&mut *tx)
            .await?;
        }
        for (row, outcome, _) in outcomes {
            let (state, next, error) = match outcome {
                Outcome::Sent => continue,
                Outcome::Handed => ("handed", None, &String::new()),
                Outcome::Dropped(r) => ("dropped", None, r),
                Outcome::Failed(r) => ("failed", None, r),
                Outcome::Retry(at, r) => ("pending", Some(*at), r),
            };
            tracing::debug!(tenant_id = %tenant, notification = %row.notification_id, state, error = %error, "notification not sent");
            sqlx::query(
                "UPDATE notify_outbox SET state = $3, next_attempt_at = COALESCE($4, next_attempt_at), last_error = $5 \
                 WHERE tenant_id = $1 AND notification_id = $2",
            )
            .bind(tenant.into_uuid())
            .bind(row.notification_id)
            .bind(state)
            .bind(next)
            .bind((!error.is_empty()).then(|| error.chars().take(500).collect::<String>()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn tell_domain(
        &self,
        tenant: TenantId,
        row: &Claimed,
        outcome: &Outcome,
        verdict: Verdict,
    ) {
        let command = match (verdict, outcome) {
            (Verdict::Bounced, Outcome::Failed(reason)) => SubscriptionCommand::RecordBounce {
                permanent: true,
                reason: reason.clone(),
            },
            (Verdict::WebhookFailed, _) => {
                SubscriptionCommand::RecordWebhookResult { failed: true }
            }
            (Verdict::WebhookOk, _) => SubscriptionCommand::RecordWebhookResult { failed: false },
            _ => return,
        };
        let ctx = CommandContext::new(tenant, Utc::now(), Actor::system("notify-worker"));
        let stream = match subscription::stream_id(SubscriptionId(row.subscription_id)) {
            Ok(s) => s,
            Err(_) => return,
        };
        match self
            .runner
            .execute::<Subscription>(&ctx, &stream, &command)
            .await
        {
            Ok(done) => {
                let ended = done.state.subscription.is_some_and(|s| {
                    matches!(
                        s.status,
                        subscription::Status::Bounced | subscription::Status::Disabled
                    )
                });
                if ended && let Err(e) = self.drop_queued(tenant, row.subscription_id).await {
                    tracing::warn!(tenant_id = %tenant, subscription = %row.subscription_id, error = %e, "could not drop an ended subscription's notifications");
                }
            }
            Err(e) => {
                tracing::warn!(tenant_id = %tenant, subscription = %row.subscription_id, error = %e, "could not record a delivery result on the subscription");
            }
        }
    }

    /// Drops what is still queued for a subscription that just ended (the
    /// read model would show it shortly; this does not wait for it).
    async fn drop_queued(&self, tenant: TenantId, subscription: Uuid) -> anyhow::Result<()> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        sqlx::query(
            "UPDATE notify_outbox SET state = 'dropped', last_error = 'the subscription ended' \
             WHERE tenant_id = $1 AND subscription_id = $2 AND state IN ('pending', 'digest')",
        )
        .bind(tenant.into_uuid())
        .bind(subscription)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Folds the held notifications of every daily-digest subscriber whose
    /// hour has come into one `digest` notification each; returns how many
    /// digests were queued.
    pub async fn queue_digests(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let due: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT * FROM notify_digests_due($1, 500)")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let mut queued = 0;
        for (tenant, subscription) in due {
            let tenant = TenantId::from_uuid(tenant);
            let mut tx = begin_for_tenant(&self.pool, tenant).await?;
            let items: Vec<(Uuid, DateTime<Utc>, String, String, String)> = sqlx::query_as(
                "WITH folded AS ( \
                   UPDATE notify_outbox SET state = 'digested', sent_at = $3 \
                   WHERE tenant_id = $1 AND subscription_id = $2 AND state = 'digest' AND digest_at <= $3 \
                   RETURNING content_id, created_at, via, address, language) \
                 SELECT content_id, created_at, via, address, language FROM folded ORDER BY created_at",
            )
            .bind(tenant.into_uuid())
            .bind(subscription)
            .bind(now)
            .fetch_all(&mut *tx)
            .await?;
            let Some((_, _, via, address, language)) = items.last().cloned() else {
                tx.commit().await?;
                continue;
            };
            let mut ids: Vec<Uuid> = Vec::with_capacity(items.len());
            for (id, ..) in &items {
                if !ids.contains(id) {
                    ids.push(*id);
                }
            }
            let digest = Uuid::new_v5(&subscription, now.to_rfc3339().as_bytes());
            sqlx::query(
                "INSERT INTO notify_contents (tenant_id, content_id, kind, data, created_at) VALUES ($1, $2, 'digest', $3, $4) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(tenant.into_uuid())
            .bind(digest)
            .bind(serde_json::to_value(Content::Digest { items: ids })?)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO notify_outbox (tenant_id, notification_id, subscription_id, content_id, kind, via, address, language, \
                                            priority, state, next_attempt_at, created_at) \
                 VALUES ($1, $2, $3, $2, 'digest', $4, $5, $6, $7, 'pending', $8, $8) ON CONFLICT DO NOTHING",
            )
            .bind(tenant.into_uuid())
            .bind(digest)
            .bind(subscription)
            .bind(via)
            .bind(address)
            .bind(language)
            .bind(PRIORITY_BULK)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            queued += 1;
        }
        Ok(queued)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let now = Utc::now();
        for attempts in 1..=MAX_ATTEMPTS {
            let wait = (next_attempt(attempts, None, now) - now).num_milliseconds() as f64 / 1000.0;
            let base = 30.0 * 2f64.powi(attempts - 1);
            assert!(
                wait >= (base * 0.5).min(3600.0) - 0.01,
                "{attempts}: {wait}"
            );
            assert!(
                wait <= (base * 1.5).min(3600.0) + 0.01,
                "{attempts}: {wait}"
            );
        }
        let wait = next_attempt(1, Some(Duration::from_secs(600)), now) - now;
        assert!(wait >= chrono::Duration::seconds(599));
        assert_eq!(
            host_of("https://Ventanilla.Example.org:8443/x").as_deref(),
            Some("ventanilla.example.org")
        );
    }

    #[test]
    fn only_a_bad_mailbox_ends_a_subscription() {
        let p = |code, m: &str| MailError::Permanent {
            code: Some(code),
            message: m.into(),
        };
        assert!(mailbox_gone(&p(550, "5.1.1 User unknown")));
        assert!(!mailbox_gone(&p(554, "5.7.1 message refused as spam")));
        assert!(!mailbox_gone(&MailError::Temporary {
            code: Some(451),
            message: "later".into()
        }));
    }
}
