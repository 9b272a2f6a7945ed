//! Replies and posts going out. Two parts:
//!
//! - [`OutboundReactor`] (subscription `social:outbound`) reads the tickets
//!   service's `ticket.replied` events on social channels and queues each
//!   reply (`social_deliveries`), in the subscription's transaction: a reply
//!   is queued once, whatever the redeliveries. It also reads the tickets
//!   service's `announcement.published` events and has them posted on the
//!   accounts they name ([`crate::announcements`]): the publication is
//!   recorded (idempotently) and its posts queued in the same transaction.
//!   And it reads the tickets service's `notice.requested` ("Avísame
//!   cuando…" on a social network) and queues each like a reply — to the
//!   author of the citizen's message, or privately to the id given — with
//!   a nil ticket, so its `delivery.*` events settle the notification.
//! - [`DeliveryWorker`] sends the queued replies and posts that are due
//!   (posts: see [`crate::publications`]). Each attempt
//!   is recorded in the reply's `delivery-<uuid>` stream *before* the
//!   network is called; after a crash between the call and the record, the
//!   next try finds the attempt without an outcome and marks the reply
//!   failed with a reason that says to check on the network — a reply is
//!   never posted twice. Temporary failures are retried with exponential
//!   backoff and jitter (a rate limit waits for its reset); the account's
//!   health follows (`degraded` on an expired token, a missing permission or
//!   a rate limit; `ok` again after a success). The outcome,
//!   `delivery.sent` or `delivery.failed`, is what the tickets service shows
//!   on the reply.
//!
//! What this module must not do: write to the tickets' streams (the tickets
//! service records the outcome it reads), or hold a connection while a
//! network call runs.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use ventanilla_eventlog::{
    CommandContext, CommandError, CommandRunner, DomainEvent, RecordedEvent,
};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::{Handler, PgEventLog, TenantTx, begin_for_tenant};
use ventanilla_social_domain::account::{AccountDetails, AccountId, Health, Network};
use ventanilla_social_domain::delivery::{self, Delivery, DeliveryCommand, DeliveryError};
use ventanilla_social_domain::publication::{
    self, Publication, PublicationCommand, PublicationError,
};
use ventanilla_tickets_domain::notice::{NoticeEvent, NoticeTo};
use ventanilla_tickets_domain::ticket::TicketEvent;

use crate::accounts::{Accounts, Servers, SocialError};
use crate::connector::{OutboundReply, Post, ReplyTarget, SendError, Sent};
use crate::conversations;
use crate::publications::Publications;
use crate::{announcements, bluesky, mastodon, meta, telegram, whatsapp, x};

/// The subscription's name.
pub const SUBSCRIPTION: &str = "social:outbound";

/// After this many attempts a reply that keeps failing is given up.
pub const MAX_ATTEMPTS: i32 = 8;

/// The longest wait between two attempts.
pub const MAX_BACKOFF: chrono::Duration = chrono::Duration::hours(1);

/// Where a queued reply goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum QueuedTarget {
    /// A private message to the author of a direct message.
    Direct { recipient: String },
    /// A public answer under a comment, mention or reply.
    Public { in_reply_to: String },
    /// Nothing to answer: the citizen's message is not known here.
    Unknown { reason: String },
    /// A reply by e-mail to `to`, threaded under the citizen's mail.
    Email {
        to: String,
        thread: crate::email::EmailThread,
        subject: String,
        reference: String,
    },
    /// A post of publication `publication` on the account's page or
    /// timeline (the row's `ticket_id` is the publication's id).
    Post {
        link: Option<String>,
        /// Absent from rows queued before images were posted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        image_url: Option<String>,
    },
}

/// Queues `post`, of publication `publication`, on `account` (in the
/// caller's tenant-scoped transaction): the row's id is derived from both,
/// so queueing twice queues once.
pub(crate) async fn queue_post(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    publication: Uuid,
    (account, network): (AccountId, Network),
    post: &Post,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let id = Uuid::new_v5(&publication, account.0.as_bytes());
    let target = serde_json::to_value(QueuedTarget::Post {
        link: post.link.clone(),
        image_url: post.image_url.clone(),
    })
    .unwrap_or_default();
    sqlx::query(
        "INSERT INTO social_deliveries (tenant_id, message_id, ticket_id, account_id, channel, target, body, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(tenant.into_uuid())
    .bind(id)
    .bind(publication)
    .bind(account.0)
    .bind(network.as_str())
    .bind(target)
    .bind(post.text.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues replies written on social channels, and the posts of published
/// announcements.
#[derive(Clone)]
pub struct OutboundReactor {
    publications: Publications,
}

impl OutboundReactor {
    /// The reactor over `log`, reading accounts through `accounts` (an
    /// announcement's accounts are looked up in its tenant only).
    pub fn new(accounts: Accounts, log: Arc<PgEventLog>) -> Self {
        Self {
            publications: Publications::new(accounts, log),
        }
    }
}

#[async_trait]
impl Handler for OutboundReactor {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        for e in events {
            match e.event_type.as_str() {
                "ticket.replied" => queue_reply(tx, e).await?,
                "notice.requested" => queue_notice(tx, e).await?,
                announcements::PUBLISHED => {
                    announcements::publish(&self.publications, tx, e).await?;
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// Queues the reply of a `ticket.replied` on a social channel.
async fn queue_reply(tx: &mut TenantTx<'_>, e: &RecordedEvent) -> anyhow::Result<()> {
    let tenant = tx.tenant().into_uuid();
    let TicketEvent::Replied(r) =
        TicketEvent::from_stored(&e.event_type, e.schema_version, &e.data)?
    else {
        return Ok(());
    };
    let channel = r.channel.as_str();
    if Network::parse(channel).is_none() {
        return Ok(()); // web, e-mail…: another deliverer's
    }
    let Some(ticket) = e
        .stream
        .as_str()
        .strip_prefix("ticket-")
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        return Ok(());
    };
    let conn = tx.conn().await?;
    queue_delivery(
        conn,
        tenant,
        r.message_id.0,
        ticket,
        channel,
        Answer::To(r.in_reply_to_platform_id.as_deref()),
        r.body.as_str(),
        e.recorded_at,
        Some((r.subject.as_str(), r.reference.as_str())),
    )
    .await
}

/// Whom a queued message answers.
enum Answer<'a> {
    /// The author of this message (if known), as a reply to it would.
    To(Option<&'a str>),
    /// A private message to this id, from the tenant's account on the
    /// channel's network.
    Direct(&'a str),
}

/// Queues one message (a reply, or a notice of the tickets service) in the
/// caller's transaction: once per message id, whatever the redeliveries.
#[allow(clippy::too_many_arguments)]
async fn queue_delivery(
    conn: &mut sqlx::PgConnection,
    tenant: Uuid,
    message: Uuid,
    ticket: Uuid,
    channel: &str,
    answer: Answer<'_>,
    body: &str,
    at: DateTime<Utc>,
    ticket_facts: Option<(&str, &str)>,
) -> anyhow::Result<()> {
    let (account, target) = match answer {
        Answer::To(platform_id) => {
            let answered = match platform_id {
                Some(p) => conversations::find(&mut *conn, channel, p).await?,
                None => None,
            };
            match answered {
                // A mail: answered by mail, threaded under it.
                Some(m) if channel == crate::email::CHANNEL => {
                    let thread = m
                        .reply_context
                        .clone()
                        .and_then(|c| serde_json::from_value(c).ok())
                        .unwrap_or_else(|| crate::email::EmailThread {
                            message_id: platform_id.unwrap_or_default().to_owned(),
                            references: vec![],
                        });
                    let (subject, reference) = ticket_facts.unwrap_or_default();
                    (
                        m.account_id,
                        QueuedTarget::Email {
                            to: m.author_id,
                            thread,
                            subject: subject.to_owned(),
                            reference: reference.to_owned(),
                        },
                    )
                }
                Some(m) if m.kind == "direct" => (
                    m.account_id,
                    QueuedTarget::Direct {
                        recipient: m.author_id,
                    },
                ),
                Some(m) => (
                    m.account_id,
                    QueuedTarget::Public {
                        in_reply_to: platform_id.unwrap_or_default().to_owned(),
                    },
                ),
                None => (
                    Uuid::nil(),
                    QueuedTarget::Unknown {
                        reason: format!(
                            "the citizen's message on {channel} is not known to the platform, so there is nothing to answer there; reply on another channel"
                        ),
                    },
                ),
            }
        }
        Answer::Direct(recipient) => {
            let account: Option<Uuid> = sqlx::query_scalar(
                "SELECT account_id FROM social_accounts \
                 WHERE tenant_id = $1 AND network = $2 AND NOT unlinked ORDER BY linked_at LIMIT 1",
            )
            .bind(tenant)
            .bind(channel)
            .fetch_optional(&mut *conn)
            .await?;
            match account {
                Some(a) => (
                    a,
                    QueuedTarget::Direct {
                        recipient: recipient.to_owned(),
                    },
                ),
                None => (
                    Uuid::nil(),
                    QueuedTarget::Unknown {
                        reason: format!("no {channel} account is linked to send it from"),
                    },
                ),
            }
        }
    };
    sqlx::query(
        "INSERT INTO social_deliveries (tenant_id, message_id, ticket_id, account_id, channel, target, body, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(message)
    .bind(ticket)
    .bind(account)
    .bind(channel)
    .bind(serde_json::to_value(&target)?)
    .bind(body)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Queues a notice of the tickets service ("Avísame cuando…" on a social
/// network) like a reply: to the author of the citizen's message, or as a
/// private message to the id an integrator gave. Its deliveries report a
/// nil ticket and the notice's id as the message.
async fn queue_notice(tx: &mut TenantTx<'_>, e: &RecordedEvent) -> anyhow::Result<()> {
    let tenant = tx.tenant().into_uuid();
    let NoticeEvent::Requested(n) =
        NoticeEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
    let Some(id) = e
        .stream
        .as_str()
        .strip_prefix("notice-")
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        return Ok(());
    };
    let channel = n.channel.as_str();
    if Network::parse(channel).is_none() {
        return Ok(());
    }
    let answer = match &n.to {
        NoticeTo::AuthorOf { platform_id } => Answer::To(Some(platform_id)),
        NoticeTo::Direct { recipient } => Answer::Direct(recipient),
    };
    let conn = tx.conn().await?;
    queue_delivery(
        conn,
        tenant,
        id,
        Uuid::nil(),
        channel,
        answer,
        &n.text,
        e.recorded_at,
        None,
    )
    .await
}

/// A queued reply.
#[derive(Debug, sqlx::FromRow)]
struct Queued {
    ticket_id: Uuid,
    account_id: Uuid,
    channel: String,
    target: sqlx::types::Json<QueuedTarget>,
    body: String,
    attempts: i32,
}

/// Sends the due replies.
#[derive(Clone)]
pub struct DeliveryWorker {
    accounts: Accounts,
    runner: CommandRunner<PgEventLog>,
    graph: meta::GraphClient,
    instagram: meta::GraphClient,
    x: x::XClient,
    mastodon: mastodon::MastodonClient,
    telegram: telegram::TelegramClient,
    whatsapp: whatsapp::WhatsAppClient,
    bluesky: Arc<bluesky::Keepers>,
    servers: Servers,
    mailer: Option<(Arc<ventanilla_mail::Mailer>, String)>,
    interval: Duration,
}

impl DeliveryWorker {
    /// A worker over `log`, calling Meta at `graph_base` and X at `x_base`,
    /// looking for due replies every `interval`.
    pub fn new(
        accounts: Accounts,
        log: Arc<PgEventLog>,
        graph_base: &str,
        x_base: &str,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()?;
        Ok(Self {
            accounts,
            runner: CommandRunner::new(log, 5),
            graph: meta::GraphClient::new(graph_base, http.clone()),
            instagram: meta::GraphClient::instagram(graph_base, http.clone()),
            x: x::XClient::new(x_base, http.clone()),
            mastodon: mastodon::MastodonClient::new(http.clone()),
            whatsapp: whatsapp::WhatsAppClient::new(graph_base, http.clone()),
            bluesky: Arc::new(bluesky::Keepers::new(http.clone())),
            servers: Servers::default(),
            mailer: None,
            telegram: telegram::TelegramClient::new(telegram::API_BASE, http),
            interval,
        })
    }

    /// Sends replies to citizens' mail through `mailer`, with Message-IDs
    /// on `domain` (without it, such replies fail saying so).
    pub fn with_mailer(mut self, mailer: Arc<ventanilla_mail::Mailer>, domain: &str) -> Self {
        self.mailer = Some((mailer, domain.to_owned()));
        self
    }

    /// Calls the simulated Mastodon and Bluesky servers (simulator mode).
    pub fn with_servers(mut self, servers: Servers) -> Self {
        self.servers = servers;
        self
    }

    /// Shares Bluesky sessions with the poller (one sign-in per account
    /// and process).
    pub fn with_bluesky(mut self, keepers: Arc<bluesky::Keepers>) -> Self {
        self.bluesky = keepers;
        self
    }

    /// Calls WhatsApp's Cloud API at `base` (a local fake in tests) instead
    /// of the Graph API base the worker was given.
    pub fn with_whatsapp_base(mut self, base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()?;
        self.whatsapp = whatsapp::WhatsAppClient::new(base, http);
        Ok(self)
    }

    /// Calls Telegram's Bot API at `base` (a local fake in tests and the
    /// simulator) instead of `https://api.telegram.org`.
    pub fn with_telegram_base(mut self, base: &str) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()?;
        self.telegram = telegram::TelegramClient::new(base, http);
        Ok(self)
    }

    /// One pass at `now`: sends what is due (at most 50 replies). Returns
    /// how many replies it handled.
    pub async fn tick(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let due: Vec<(Uuid, Uuid)> =
            sqlx::query_as("SELECT tenant_id, message_id FROM social_deliveries_due($1, 50)")
                .bind(now)
                .fetch_all(self.runner.log().pool())
                .await?;
        let mut handled = 0;
        for (tenant, message) in due {
            let tenant = TenantId::from_uuid(tenant);
            if let Err(e) = self.deliver(tenant, message, now).await {
                tracing::warn!(tenant_id = %tenant, message = %message, error = %e, "delivery step failed; retried next tick");
            } else {
                handled += 1;
            }
        }
        Ok(handled)
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        ventanilla_runtime::ticker::every(
            self.interval,
            shutdown,
            "the delivery worker",
            || async { self.tick(Utc::now()).await.map(|_| ()) },
        )
        .await;
    }

    async fn row(&self, tenant: TenantId, message: Uuid) -> anyhow::Result<Option<Queued>> {
        let mut tx = begin_for_tenant(self.runner.log().pool(), tenant).await?;
        let row = sqlx::query_as(
            "SELECT ticket_id, account_id, channel, target, body, attempts \
             FROM social_deliveries WHERE tenant_id = $1 AND message_id = $2 AND NOT done",
        )
        .bind(tenant.into_uuid())
        .bind(message)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    async fn update(
        &self,
        tenant: TenantId,
        message: Uuid,
        attempts: i32,
        next: Option<DateTime<Utc>>,
    ) -> anyhow::Result<()> {
        let mut tx = begin_for_tenant(self.runner.log().pool(), tenant).await?;
        sqlx::query(
            "UPDATE social_deliveries SET attempts = $3, done = $4, \
               next_attempt_at = coalesce($5, next_attempt_at) \
             WHERE tenant_id = $1 AND message_id = $2",
        )
        .bind(tenant.into_uuid())
        .bind(message)
        .bind(attempts)
        .bind(next.is_none())
        .bind(next)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn record(
        &self,
        tenant: TenantId,
        message: Uuid,
        now: DateTime<Utc>,
        command: DeliveryCommand,
    ) -> Result<(), CommandError<DeliveryError>> {
        let ctx = CommandContext::new(tenant, now, Actor::system("social-delivery"));
        let stream =
            delivery::stream_id(message).map_err(|e| CommandError::Unexpected(e.into()))?;
        self.runner
            .execute::<Delivery>(&ctx, &stream, &command)
            .await
            .map(|_| ())
    }

    /// One reply: start an attempt, send, record the outcome.
    async fn deliver(
        &self,
        tenant: TenantId,
        message: Uuid,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let Some(q) = self.row(tenant, message).await? else {
            return Ok(());
        };
        if let QueuedTarget::Post { link, image_url } = &q.target.0 {
            let post = Post {
                text: q.body.clone(),
                link: link.clone(),
                image_url: image_url.clone(),
            };
            return self.post(tenant, message, &q, post, now).await;
        }
        let attempt = q.attempts + 1;
        match self
            .record(
                tenant,
                message,
                now,
                DeliveryCommand::Start {
                    ticket: q.ticket_id,
                    message,
                    channel: q.channel.clone(),
                    attempt: u32::try_from(attempt).unwrap_or(1),
                },
            )
            .await
        {
            Ok(()) => {}
            Err(CommandError::Domain(DeliveryError::Interrupted)) => {
                let reason = format!(
                    "sending was interrupted and {} may or may not have received the reply; it is not sent again to avoid a duplicate: check on {} and answer again if needed",
                    q.channel, q.channel
                );
                self.record(tenant, message, now, DeliveryCommand::Fail { reason })
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                return self.update(tenant, message, attempt, None).await;
            }
            Err(CommandError::Domain(DeliveryError::Finished)) => {
                return self.update(tenant, message, q.attempts, None).await;
            }
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        }
        let outcome = self.send(tenant, message, &q, now).await;
        let account = AccountId(q.account_id);
        match outcome {
            Ok((sent, near_limit)) => {
                self.record(
                    tenant,
                    message,
                    now,
                    DeliveryCommand::Succeed {
                        platform_id: sent.platform_id,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                self.update(tenant, message, attempt, None).await?;
                if !near_limit {
                    self.health(tenant, account, Health::Ok).await;
                }
            }
            Err(Failure::Send(e)) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                let next = next_attempt(&e, attempt, now);
                if e.degrades_account() {
                    self.health(tenant, account, degraded(&e)).await;
                }
                self.record(
                    tenant,
                    message,
                    now,
                    DeliveryCommand::Retry {
                        reason: e.to_string(),
                        next_at: next,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                self.update(tenant, message, attempt, Some(next)).await?;
            }
            Err(failure) => {
                let reason = match &failure {
                    Failure::Send(e) if e.is_retryable() => {
                        format!("gave up after {attempt} attempts: {e}")
                    }
                    Failure::Send(e) => {
                        if e.degrades_account() {
                            self.health(tenant, account, degraded(e)).await;
                        }
                        e.to_string()
                    }
                    Failure::Cannot(reason) => reason.clone(),
                };
                self.record(tenant, message, now, DeliveryCommand::Fail { reason })
                    .await
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                self.update(tenant, message, attempt, None).await?;
            }
        }
        Ok(())
    }

    async fn publication(
        &self,
        tenant: TenantId,
        publication: Uuid,
        now: DateTime<Utc>,
        command: PublicationCommand,
    ) -> Result<(), CommandError<PublicationError>> {
        let ctx = CommandContext::new(tenant, now, Actor::system("social-publisher"));
        let stream =
            publication::stream_id(publication).map_err(|e| CommandError::Unexpected(e.into()))?;
        self.runner
            .execute::<Publication>(&ctx, &stream, &command)
            .await
            .map(|_| ())
    }

    /// One post of a publication: start, publish, record — as a reply.
    async fn post(
        &self,
        tenant: TenantId,
        row: Uuid,
        q: &Queued,
        post: Post,
        now: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let (publication, account) = (q.ticket_id, AccountId(q.account_id));
        let attempt = q.attempts + 1;
        match self
            .publication(
                tenant,
                publication,
                now,
                PublicationCommand::Start { account },
            )
            .await
        {
            Ok(()) => {}
            Err(CommandError::Domain(PublicationError::Interrupted)) => {
                let reason = format!(
                    "posting was interrupted and {} may or may not have published it; it is not posted again to avoid a duplicate: check the account",
                    q.channel
                );
                self.publication(
                    tenant,
                    publication,
                    now,
                    PublicationCommand::Fail { account, reason },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                return self.update(tenant, row, attempt, None).await;
            }
            Err(CommandError::Domain(_)) => {
                return self.update(tenant, row, q.attempts, None).await;
            }
            Err(e) => return Err(anyhow::anyhow!("{e}")),
        }
        let result = async {
            let state = self
                .accounts
                .state(tenant, account)
                .await
                .map_err(|e| Failure::Send(temporary(&q.channel, &e)))?;
            if state.unlinked {
                return Err(Failure::Cannot("the account was unlinked".into()));
            }
            let creds = self
                .accounts
                .credentials_of(tenant, &state)
                .await
                .map_err(|e| Failure::Send(temporary(&q.channel, &e)))?;
            match state.network {
                Network::Facebook => self.graph.publish(&creds, &post).await,
                Network::Instagram => self.instagram.publish(&creds, &post).await,
                Network::X => self.x.publish(&creds, &post).await,
                Network::Mastodon => {
                    let instance = instance_of(&self.servers.base_of(&state))?;
                    self.mastodon
                        .publish(&instance, &creds, &post, Some(&row.to_string()))
                        .await
                }
                Network::Telegram => {
                    let Some(channel) = state.reach.publish_to.as_deref() else {
                        return Err(Failure::Cannot(format!(
                            "the Telegram bot {} has no channel to post announcements in; set one when linking it",
                            state.name
                        )));
                    };
                    self.telegram.publish(&creds, channel, &post).await
                }
                Network::WhatsApp => self.whatsapp.publish(&creds, &post).await,
                Network::Email => {
                    return Err(Failure::Cannot(
                        "a mailbox does not publish posts; announcements reach subscribers by e-mail through their subscriptions".into(),
                    ));
                }
                Network::Bluesky => {
                    let keeper = self.bluesky.for_base(&self.servers.base_of(&state));
                    let key = account.0.to_string();
                    let options = bluesky::PostOptions::default();
                    match keeper.session(&key, &creds).await {
                        Ok(session) => match keeper.client().post(&session, &post, &options).await {
                            Err(SendError::TokenExpired { .. }) => {
                                match keeper.renew(&key, &creds, &session).await {
                                    Ok(renewed) => {
                                        keeper.client().post(&renewed, &post, &options).await
                                    }
                                    Err(e) => Err(e),
                                }
                            }
                            other => other,
                        },
                        Err(e) => Err(e),
                    }
                }
            }
            .map_err(Failure::Send)
        }
        .await;
        let command = match result {
            Ok(sent) => {
                self.health(tenant, account, Health::Ok).await;
                PublicationCommand::Posted {
                    account,
                    platform_id: sent.platform_id,
                }
            }
            Err(Failure::Send(e)) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                if e.degrades_account() {
                    self.health(tenant, account, degraded(&e)).await;
                }
                // The attempt ended without a post: a new one may start.
                self.publication(
                    tenant,
                    publication,
                    now,
                    PublicationCommand::Retry {
                        account,
                        reason: e.to_string(),
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
                return self
                    .update(tenant, row, attempt, Some(next_attempt(&e, attempt, now)))
                    .await;
            }
            Err(Failure::Send(e)) => {
                if e.degrades_account() {
                    self.health(tenant, account, degraded(&e)).await;
                }
                PublicationCommand::Fail {
                    account,
                    reason: e.to_string(),
                }
            }
            Err(Failure::Cannot(reason)) => PublicationCommand::Fail { account, reason },
        };
        self.publication(tenant, publication, now, command)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        self.update(tenant, row, attempt, None).await
    }

    async fn health(&self, tenant: TenantId, account: AccountId, health: Health) {
        if let Err(e) = self.accounts.report_health(tenant, account, health).await {
            tracing::warn!(tenant_id = %tenant, error = %e, "could not record an account's health");
        }
    }

    /// Calls the network; no connection is held meanwhile.
    /// Returns what the network created, and whether the account is near
    /// its rate limit (so not healthy, though the send succeeded).
    async fn send(
        &self,
        tenant: TenantId,
        message: Uuid,
        q: &Queued,
        now: DateTime<Utc>,
    ) -> Result<(Sent, bool), Failure> {
        if let QueuedTarget::Email {
            to,
            thread,
            subject,
            reference,
        } = &q.target.0
        {
            return self
                .email_reply(tenant, q, message, to, thread, subject, reference)
                .await
                .map(|sent| (sent, false));
        }
        let target = match &q.target.0 {
            QueuedTarget::Unknown { reason } => return Err(Failure::Cannot(reason.clone())),
            QueuedTarget::Email { .. } => {
                return Err(Failure::Cannot("an e-mail reply is sent by mail".into()));
            }
            QueuedTarget::Post { .. } => {
                return Err(Failure::Cannot("a post is not a reply".into()));
            }
            QueuedTarget::Public { in_reply_to } => ReplyTarget::Public {
                in_reply_to: in_reply_to.clone(),
            },
            QueuedTarget::Direct { recipient } => {
                let last = async {
                    let mut tx = begin_for_tenant(self.runner.log().pool(), tenant).await?;
                    let last =
                        conversations::last_written(&mut tx, q.account_id, recipient).await?;
                    tx.commit().await?;
                    Ok::<_, sqlx::Error>(last)
                }
                .await
                .map_err(|e| Failure::Send(temporary(&q.channel, &e)))?;
                ReplyTarget::Direct {
                    recipient: recipient.clone(),
                    last_inbound_at: last.unwrap_or(now),
                }
            }
        };
        let account = AccountId(q.account_id);
        let state = match self.accounts.state(tenant, account).await {
            Ok(s) => s,
            Err(SocialError::NotFound) => {
                return Err(Failure::Cannot("the account the citizen wrote to is no longer linked; reply on another channel".into()));
            }
            Err(e) => return Err(Failure::Send(temporary(&q.channel, &e))),
        };
        if state.unlinked {
            return Err(Failure::Cannot(format!(
                "the {} account {} was unlinked; link it again or reply on another channel",
                state.network.as_str(),
                state.name
            )));
        }
        let creds = self
            .accounts
            .credentials_of(tenant, &state)
            .await
            .map_err(|e| Failure::Send(temporary(&q.channel, &e)))?;
        let reply = OutboundReply {
            target,
            text: q.body.clone(),
            now,
        };
        let (result, usage) = match state.network {
            Network::Facebook => self.graph.send_with_usage(&creds, &reply).await,
            Network::Instagram => self.instagram.send_with_usage(&creds, &reply).await,
            Network::X => (self.x.send(&creds, &reply).await, None),
            Network::Telegram => (self.telegram.send(&creds, &reply).await, None),
            Network::WhatsApp => {
                self.whatsapp
                    .send_with_usage(&creds, &reply, None, Some(&message.to_string()))
                    .await
            }
            Network::Email => (
                Err(SendError::Rejected {
                    network: "email",
                    reason: "an e-mail reply needs the citizen's mail to answer".into(),
                }),
                None,
            ),
            Network::Bluesky => (
                self.bluesky_reply(tenant, &state, &creds, &reply, account)
                    .await,
                None,
            ),
            Network::Mastodon => (
                self.mastodon_reply(tenant, &state, &creds, &reply, q.account_id, message)
                    .await,
                None,
            ),
        };
        // Meta reports how much of the call budget is used: near the limit,
        // the account is degraded before Meta starts refusing.
        let near_limit = usage.is_some_and(|u| u.near_limit());
        if let Some(usage) = usage.filter(meta::Usage::near_limit) {
            self.health(
                tenant,
                account,
                Health::Degraded {
                    reason: format!(
                        "Meta reports {}% of the call budget used; replies may be refused soon",
                        usage.highest()
                    ),
                    until: None,
                },
            )
            .await;
        }
        result.map(|sent| (sent, near_limit)).map_err(Failure::Send)
    }
}

impl DeliveryWorker {
    /// A reply on Mastodon: in the visibility of the status answered (never
    /// wider) and mentioning its author, with the reply's id as the
    /// `Idempotency-Key`. For a private answer, the author is read from the
    /// citizen's latest status to the account.
    async fn mastodon_reply(
        &self,
        tenant: TenantId,
        state: &AccountDetails,
        creds: &crate::connector::Credentials,
        reply: &OutboundReply,
        account: Uuid,
        message: Uuid,
    ) -> Result<Sent, SendError> {
        let instance = instance_of(&self.servers.base_of(state)).map_err(|f| match f {
            Failure::Send(e) => e,
            Failure::Cannot(reason) => SendError::Rejected {
                network: "mastodon",
                reason,
            },
        })?;
        let answered = match &reply.target {
            ReplyTarget::Public { in_reply_to } => Some(in_reply_to.clone()),
            ReplyTarget::Direct { recipient, .. } => {
                let mut tx = begin_for_tenant(self.runner.log().pool(), tenant)
                    .await
                    .map_err(|e| temporary("mastodon", &e))?;
                let latest = conversations::latest_from(&mut tx, account, recipient)
                    .await
                    .map_err(|e| temporary("mastodon", &e))?;
                tx.commit().await.map_err(|e| temporary("mastodon", &e))?;
                latest
            }
        };
        let (visibility, acct) = match answered {
            Some(status) => {
                self.mastodon
                    .status_facts(&instance, creds, &status)
                    .await?
            }
            None => ("direct".to_owned(), String::new()),
        };
        self.mastodon
            .send(
                &instance,
                creds,
                reply,
                &visibility,
                &acct,
                &message.to_string(),
            )
            .await
    }
}

impl DeliveryWorker {
    /// A reply on Bluesky: a post answering the citizen's, with the
    /// thread's root and the post answered (their cids were recorded with
    /// the message). Bluesky's private messages are not supported.
    async fn bluesky_reply(
        &self,
        tenant: TenantId,
        state: &AccountDetails,
        creds: &crate::connector::Credentials,
        reply: &OutboundReply,
        account: AccountId,
    ) -> Result<Sent, SendError> {
        let refused = |reason: &str| SendError::Rejected {
            network: "bluesky",
            reason: reason.to_owned(),
        };
        let ReplyTarget::Public { in_reply_to } = &reply.target else {
            return Err(refused(
                "Bluesky private messages are not supported; answer on another channel",
            ));
        };
        let mut tx = begin_for_tenant(self.runner.log().pool(), tenant)
            .await
            .map_err(|e| temporary("bluesky", &e))?;
        let answered = conversations::find(&mut tx, "bluesky", in_reply_to)
            .await
            .map_err(|e| temporary("bluesky", &e))?;
        tx.commit().await.map_err(|e| temporary("bluesky", &e))?;
        let refs: bluesky::PostRefs = answered
            .and_then(|m| m.reply_context)
            .and_then(|c| serde_json::from_value(c).ok())
            .ok_or_else(|| {
                refused(
                    "the citizen's Bluesky post is not known well enough to answer it (no cid recorded); answer on another channel",
                )
            })?;
        let thread = refs.reply_refs();
        let keeper = self.bluesky.for_base(&self.servers.base_of(state));
        let key = account.0.to_string();
        let options = bluesky::PostOptions::default();
        let session = keeper.session(&key, creds).await?;
        let client = keeper.client();
        match client
            .reply(
                &session,
                &reply.text,
                &thread.parent,
                &thread.root,
                &options,
            )
            .await
        {
            Err(SendError::TokenExpired { .. }) => {
                let renewed = keeper.renew(&key, creds, &session).await?;
                client
                    .reply(
                        &renewed,
                        &reply.text,
                        &thread.parent,
                        &thread.root,
                        &options,
                    )
                    .await
            }
            other => other,
        }
    }
}

impl DeliveryWorker {
    /// A reply by e-mail: from the mailbox the citizen wrote to, threaded
    /// under their mail (`In-Reply-To`, `References`), `Re: [REF] subject`,
    /// a Message-ID derived from the reply (the same on a retry), through
    /// the platform's relay. A permanent refusal (no such mailbox) fails the
    /// reply; a temporary one is retried.
    #[allow(clippy::too_many_arguments)]
    async fn email_reply(
        &self,
        tenant: TenantId,
        q: &Queued,
        message: Uuid,
        to: &str,
        thread: &crate::email::EmailThread,
        subject: &str,
        reference: &str,
    ) -> Result<Sent, Failure> {
        let Some((mailer, domain)) = &self.mailer else {
            return Err(Failure::Cannot(
                "no SMTP relay is configured for replies by e-mail (social.smtp_url); answer on another channel".into(),
            ));
        };
        let state = self
            .accounts
            .state(tenant, AccountId(q.account_id))
            .await
            .map_err(|e| Failure::Send(temporary("email", &e)))?;
        if state.unlinked {
            return Err(Failure::Cannot(format!(
                "the mailbox {} was unlinked; link it again or reply on another channel",
                state.external_id
            )));
        }
        let mail = crate::email::reply_mail(
            ventanilla_mail::Address::named(state.name.clone(), state.external_id.clone()),
            ventanilla_mail::Address::new(to.to_owned()),
            subject,
            reference,
            &q.body,
            thread,
            domain,
            message,
        );
        let message_id = mail.message_id.clone();
        match mailer.send(&mail).await {
            Ok(()) => Ok(Sent {
                platform_id: message_id,
            }),
            Err(e) if e.is_permanent() => Err(Failure::Send(SendError::Rejected {
                network: "email",
                reason: format!("the citizen's mail server refused the reply: {e}"),
            })),
            Err(e) => Err(Failure::Send(SendError::Temporary {
                network: "email",
                reason: e.to_string(),
            })),
        }
    }
}

/// A Mastodon instance from its base URL.
fn instance_of(base: &str) -> Result<mastodon::Instance, Failure> {
    mastodon::Instance::parse(base)
        .map_err(|e| Failure::Cannot(format!("the Mastodon account's instance: {e}")))
}

/// Why a reply was not sent.
enum Failure {
    /// The network said so.
    Send(SendError),
    /// It cannot be sent at all (nothing to answer, the account unlinked).
    Cannot(String),
}

fn temporary(channel: &str, e: &dyn std::fmt::Display) -> SendError {
    tracing::warn!(error = %e, "delivery could not prepare its call");
    SendError::Temporary {
        network: match Network::parse(channel) {
            Some(Network::Facebook) => "facebook",
            Some(Network::Instagram) => "instagram",
            Some(Network::X) => "x",
            Some(Network::Mastodon) => "mastodon",
            Some(Network::Telegram) => "telegram",
            Some(Network::WhatsApp) => "whatsapp",
            Some(Network::Bluesky) => "bluesky",
            Some(Network::Email) => "email",
            None => "the network",
        },
        reason: "the platform could not prepare the call".into(),
    }
}

fn degraded(e: &SendError) -> Health {
    Health::Degraded {
        reason: e.to_string(),
        until: match e {
            SendError::RateLimited { until, .. } => Some(*until),
            _ => None,
        },
    }
}

/// When to try again after `e` on attempt `attempt`: a rate limit's reset,
/// or 2^attempt seconds with ±50% jitter, at most [`MAX_BACKOFF`].
fn next_attempt(e: &SendError, attempt: i32, now: DateTime<Utc>) -> DateTime<Utc> {
    if let SendError::RateLimited { until, .. } = e {
        return (*until).max(now + chrono::Duration::seconds(1));
    }
    let base = 2f64.powi(attempt.clamp(0, 20));
    let mut r = [0u8; 2];
    let jitter = match getrandom::fill(&mut r) {
        Ok(()) => 0.5 + f64::from(u16::from_le_bytes(r)) / f64::from(u16::MAX),
        Err(_) => 1.0,
    };
    let secs = (base * jitter).min(MAX_BACKOFF.num_seconds() as f64);
    now + chrono::Duration::milliseconds((secs * 1000.0) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_with_jitter_and_waits_for_a_rate_limit() {
        let now = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        let temp = SendError::Temporary {
            network: "x",
            reason: "503".into(),
        };
        for attempt in 1..6 {
            let wait = (next_attempt(&temp, attempt, now) - now).num_milliseconds() as f64 / 1000.0;
            let base = 2f64.powi(attempt);
            assert!(
                wait >= base * 0.5 - 0.01 && wait <= base * 1.5 + 0.01,
                "{attempt}: {wait}"
            );
        }
        let far = next_attempt(&temp, 30, now) - now;
        assert!(far <= MAX_BACKOFF);
        let until = now + chrono::Duration::minutes(15);
        let limited = SendError::RateLimited {
            network: "x",
            until,
        };
        assert_eq!(next_attempt(&limited, 1, now), until);
    }
}
