//! [`Notifications`], the service of "Avísame cuando…": citizens and
//! integrators subscribe to a topic or a case, citizens confirm, leave and
//! manage their subscriptions from the links they got by e-mail (the link's
//! token is their only credential, and names the tenant), staff publish
//! announcements and set who the tenant's e-mails come from.
//!
//! Like [`crate::service::Tickets`]: every method parses raw input into the
//! domain's values (a refusal names the field), looks up what only it can
//! know (the tenant's topics in the tenants service's events, the case by
//! its tracking token in the inbox, the linked accounts in the social
//! service's events), runs a decider, and waits until the `notify`
//! projection shows the change. It sends nothing: the fan-out reactor
//! queues, the worker sends.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use secrecy::SecretString;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandRunner, Decider, Position};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::projection::settle;
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_social_domain::account::{self as account, Account, AccountId};
use ventanilla_tenancy::Tenancy;
use ventanilla_tenants_domain::organisation::TopicId as DirectoryTopicId;
use ventanilla_tenants_domain::staff::{Role, StaffId};
use ventanilla_tickets_domain::announcement::{self, Announcement, AnnouncementId, Publish};
use ventanilla_tickets_domain::sender::{self, Configure, Sender, SenderState};
use ventanilla_tickets_domain::subscription::{
    self, Subscribe, Subscription, SubscriptionCommand, SubscriptionError, SubscriptionId, Target,
    TopicId, Via,
};
use ventanilla_tickets_domain::ticket::TicketId;
use ventanilla_tickets_domain::values::{AgentId, Channel, Contact, InvalidValue, Reference};
use ventanilla_webhooks::UrlPolicy;

use super::error::NotifyError;
use super::links::{LinkKey, Purpose, subscriber_id};
use super::projection::{NotifyProjection, via_key};
use super::render::Links;
use crate::inbox;
use crate::service::{Origin, tracking_hash};

/// How long a change waits for the `notify` projection to show it.
pub const CATCH_UP_TIMEOUT: StdDuration = StdDuration::from_secs(15);

/// The most subscriptions one address may hold in a tenant (a guard
/// against a form being used to flood an inbox).
pub const SUBSCRIPTIONS_PER_ADDRESS_MAX: i64 = 50;

/// What the service needs of the configuration.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// The key of links and webhook secrets (`None`: not configured).
    pub key: Option<LinkKey>,
    /// Where citizens' links point (no trailing slash).
    pub public_url: String,
    /// How long an e-mail subscription waits for its confirmation.
    pub confirm_for: Duration,
    /// Where webhooks may point.
    pub url_policy: UrlPolicy,
}

impl NotifyConfig {
    /// From the `[notify]` settings. A key that is set but malformed is an
    /// error (the process must not start with it); an unset key leaves
    /// e-mail and webhook subscriptions refused with a message naming it.
    pub fn from_settings(
        settings: &ventanilla_runtime::config::NotifySettings,
    ) -> anyhow::Result<Self> {
        let key = match &settings.key {
            Some(k) => Some(LinkKey::new(Some(k))?),
            None => None,
        };
        Ok(Self {
            key,
            public_url: settings.public_url.trim_end_matches('/').to_owned(),
            confirm_for: Duration::hours(i64::from(settings.confirm_hours.max(1))),
            url_policy: UrlPolicy {
                allow_private: settings.allow_private_webhooks,
            },
        })
    }

    /// For tests and tools: a key from its base64 form.
    pub fn with_key(mut self, key: &SecretString) -> anyhow::Result<Self> {
        self.key = Some(LinkKey::new(Some(key))?);
        Ok(self)
    }

    fn key(&self) -> Result<&LinkKey, NotifyError> {
        self.key
            .as_ref()
            .ok_or(NotifyError::NotConfigured(super::links::KeyError::Missing))
    }

    /// The links of a subscription's messages.
    pub fn links(
        &self,
        tenant: TenantId,
        subscription: Uuid,
        subscriber: Uuid,
    ) -> Result<Links, NotifyError> {
        let key = self.key()?;
        let url = |path: &str, purpose: Purpose, id: Uuid| {
            format!(
                "{}/notify/{path}?t={}",
                self.public_url,
                key.token(purpose, tenant, id)
            )
        };
        Ok(Links {
            confirm: Some(url("confirm", Purpose::Confirm, subscription)),
            unsubscribe: Some(url("unsubscribe", Purpose::Unsubscribe, subscription)),
            manage: Some(url("manage", Purpose::Manage, subscriber)),
        })
    }
}

/// What a subscription is about, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetRequest {
    /// A topic of the tenant.
    Topic(Uuid),
    /// A case: the ticket with this reference and tracking token.
    Case {
        /// The ticket's reference.
        reference: String,
        /// The tracking token the citizen got when it opened; required on
        /// the portal, optional with an API key (which acts for the
        /// organisation: a ticket that came from a social network has no
        /// token its citizen knows).
        tracking_token: Option<String>,
    },
}

/// How the citizen wants to be told, as asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ViaRequest {
    /// By e-mail, at this address (double opt-in).
    Email(String),
    /// At this `http(s)` URL, signed (integrators only).
    Webhook(String),
    /// On a social network, as this handle.
    Social {
        /// The network.
        channel: String,
        /// The handle or id on it.
        handle: String,
    },
}

/// A subscription request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeRequest {
    /// What about.
    pub target: TargetRequest,
    /// How.
    pub via: ViaRequest,
    /// The language of the notifications (the tenant's by default).
    pub language: Option<String>,
    /// One digest a day instead of one message per notification (e-mail).
    pub daily_digest: bool,
}

/// A subscription just requested (or found, when the same was asked
/// before).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribed {
    /// Its id.
    pub id: Uuid,
    /// `pending` (an e-mail waits for its confirmation) or `active`.
    pub status: String,
    /// For a webhook: the secret its deliveries are signed with
    /// (`whsec_…`).
    pub webhook_secret: Option<String>,
    /// Whether the same subscription existed already (nothing new written).
    pub existing: bool,
}

/// A subscription, as its owner or staff see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct SubscriptionView {
    /// Its id.
    pub subscription_id: Uuid,
    /// `topic` or `case`.
    pub target_kind: String,
    /// The topic.
    pub topic_id: Option<Uuid>,
    /// The case.
    pub ticket_id: Option<Uuid>,
    /// `email`, `webhook` or `social`.
    pub via: String,
    /// The address, URL or handle.
    pub address: String,
    /// The language.
    pub language: String,
    /// Daily digest or not.
    pub daily_digest: bool,
    /// `pending`, `active`, `cancelled`, `expired`, `bounced`, `disabled`.
    pub status: String,
    /// When it was requested.
    pub created_at: DateTime<Utc>,
}

/// An announcement to publish, as asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishRequest {
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// A link (`http(s)`).
    pub link: Option<String>,
    /// An image (`https`).
    pub image_url: Option<String>,
    /// The topics it is about (the tenant's).
    pub topics: Vec<Uuid>,
    /// Its language (the tenant's by default).
    pub language: Option<String>,
    /// The linked social accounts it is also posted to (the tenant's).
    pub accounts: Vec<Uuid>,
    /// Makes a retried request safe: the same key publishes once.
    pub idempotency_key: Option<Uuid>,
}

/// An announcement and how its notifications are going.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AnnouncementView {
    /// Its id.
    pub id: Uuid,
    /// Its title.
    pub title: String,
    /// Its topics.
    pub topics: Vec<Uuid>,
    /// The accounts it is posted to.
    pub accounts: Vec<Uuid>,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// Notifications queued and not sent yet (digests included).
    pub queued: i64,
    /// Notifications sent.
    pub sent: i64,
    /// Notifications that failed for good.
    pub failed: i64,
}

/// Most announcements one page of [`Notifications::announcements`] holds.
pub const MAX_ANNOUNCEMENTS_PAGE: u32 = 100;

/// Reads an announcements cursor (`<published_at µs>.<id>`).
fn decode_cursor(s: &str) -> Option<(DateTime<Utc>, Uuid)> {
    let (at, id) = s.split_once('.')?;
    Some((
        DateTime::from_timestamp_micros(at.parse().ok()?)?,
        Uuid::parse_str(id).ok()?,
    ))
}

/// An announcement's row with its id first.
type IdentifiedRow = (Uuid, String, Vec<Uuid>, Vec<Uuid>, DateTime<Utc>);

/// An announcement's row: title, topics, accounts, when.
type AnnouncementRow = (String, Vec<Uuid>, Vec<Uuid>, DateTime<Utc>);

/// The notifications service.
#[derive(Clone)]
pub struct Notifications {
    runner: CommandRunner<PgEventLog>,
    pool: PgPool,
    tenancy: Tenancy,
    config: Arc<NotifyConfig>,
}

fn citizen_ctx(tenant: TenantId, origin: &Origin) -> CommandContext {
    let actor = match origin {
        Origin::Web => Actor::Citizen {
            channel: "web".into(),
        },
        Origin::Api { key } => Actor::ApiKey {
            id: key.to_string(),
        },
    };
    CommandContext::new(tenant, Utc::now(), actor)
}

impl Notifications {
    /// The service over `log`.
    pub fn new(log: Arc<PgEventLog>, config: NotifyConfig) -> Self {
        let pool = log.pool().clone();
        let runner = CommandRunner::new(log, 5);
        Self {
            tenancy: Tenancy::new(runner.clone()),
            runner,
            pool,
            config: Arc::new(config),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    /// What the service reads of the tenants service.
    pub fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    async fn settle(&self, position: Option<Position>) {
        settle(
            Arc::clone(self.runner.log()),
            self.pool.clone(),
            Arc::new(NotifyProjection),
            position,
            CATCH_UP_TIMEOUT,
        )
        .await;
    }

    async fn run(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        command: &SubscriptionCommand,
    ) -> Result<Option<Position>, NotifyError> {
        let done = self
            .runner
            .execute::<Subscription>(ctx, &subscription::stream_id(SubscriptionId(id))?, command)
            .await?;
        Ok(done.position)
    }

    /// A subscription of the tenant, from the read model.
    pub async fn subscription(
        &self,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<SubscriptionView, NotifyError> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let view = sqlx::query_as::<_, SubscriptionView>(
            "SELECT subscription_id, target_kind, topic_id, ticket_id, via, address, language, daily_digest, status, created_at \
             FROM notify_subscriptions WHERE tenant_id = $1 AND subscription_id = $2",
        )
        .bind(tenant.into_uuid())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        view.ok_or_else(|| NotifyError::NotFound("no such subscription".into()))
    }

    /// The name of a topic or the reference of a case, as the citizen
    /// knows it.
    pub async fn target_label(
        &self,
        tenant: TenantId,
        view: &SubscriptionView,
    ) -> Result<String, NotifyError> {
        if let Some(topic) = view.topic_id {
            let directory = self.tenancy.directory(tenant).await?;
            return Ok(directory
                .topic(DirectoryTopicId(topic))
                .map(|t| t.name.to_string())
                .unwrap_or_default());
        }
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let reference: Option<String> = sqlx::query_scalar(
            "SELECT reference FROM tickets WHERE tenant_id = $1 AND ticket_id = $2",
        )
        .bind(tenant.into_uuid())
        .bind(view.ticket_id)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(reference.unwrap_or_default())
    }

    // -----------------------------------------------------------------------
    // Citizens and integrators
    // -----------------------------------------------------------------------

    /// Subscribes to a topic or a case. E-mail subscriptions wait for their
    /// confirmation (the e-mail goes out within the worker's interval);
    /// webhook ones (integrators only) are active at once and get their
    /// signing secret. Asking again for the same thing returns the same
    /// subscription. Refused with nothing written: a malformed address or
    /// URL (`VALIDATION`, naming the field), a webhook at a private address
    /// in production, an unknown topic or case (`NOT_FOUND`), a suspended
    /// tenant (`TENANT_SUSPENDED`), no `notify.key` (`UNAVAILABLE`).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn subscribe(
        &self,
        tenant: TenantId,
        origin: &Origin,
        request: &SubscribeRequest,
    ) -> Result<Subscribed, NotifyError> {
        let active = self.tenancy.active_tenant(tenant).await?;
        let key = self.config.key()?.clone();
        let via = match &request.via {
            ViaRequest::Email(address) => {
                let contact = Contact::parse(None, Some(address), None, None)
                    .map_err(|e| InvalidValue::new("email", e.problem))?;
                Via::Email {
                    address: contact.email.unwrap_or_default(),
                }
            }
            ViaRequest::Webhook(url) => {
                if !matches!(origin, Origin::Api { .. }) {
                    return Err(NotifyError::Forbidden(
                        "webhook subscriptions are for integrators: use an API key",
                    ));
                }
                let checked = ventanilla_webhooks::check_url(url, &self.config.url_policy)
                    .await
                    .map_err(|e| InvalidValue::new("url", e.to_string()))?;
                Via::Webhook {
                    url: checked.to_string(),
                }
            }
            ViaRequest::Social { channel, handle } => {
                let channel = Channel::parse("channel", channel)?;
                if !channel.is_social() {
                    return Err(InvalidValue::new(
                        "channel",
                        format!("{channel} is not a social network; subscribe by e-mail instead"),
                    )
                    .into());
                }
                // Settled below, once the target is known.
                Via::Social {
                    channel,
                    handle: handle.trim().to_owned(),
                }
            }
        };
        let target = match &request.target {
            TargetRequest::Topic(topic) => {
                let directory = self.tenancy.directory(tenant).await?;
                if directory.topic(DirectoryTopicId(*topic)).is_none() {
                    return Err(NotifyError::NotFound(
                        "no such topic in this organisation; choose one of its topics".into(),
                    ));
                }
                Target::Topic(TopicId(*topic))
            }
            TargetRequest::Case {
                reference,
                tracking_token,
            } => {
                let reference = Reference::parse("reference", reference)?;
                let mut tx = begin_for_tenant(&self.pool, tenant).await?;
                let id = match (tracking_token, origin) {
                    (Some(token), _) => {
                        let hash = tracking_hash(token).map_err(|_| {
                            InvalidValue::new("tracking_token", "is not a tracking token")
                        })?;
                        inbox::find_by_tracking(&mut tx, reference.as_str(), hash.as_str()).await?
                    }
                    (None, Origin::Api { .. }) => {
                        inbox::find_by_reference(&mut tx, reference.as_str()).await?
                    }
                    (None, Origin::Web) => {
                        return Err(InvalidValue::new(
                            "tracking_token",
                            "give the tracking token you got when you sent your request",
                        )
                        .into());
                    }
                }
                .ok_or_else(|| {
                    NotifyError::NotFound(
                        "no case with this reference and tracking token in this organisation"
                            .into(),
                    )
                })?;
                tx.commit().await?;
                Target::Case(TicketId(id))
            }
        };
        let via = match via {
            Via::Social { channel, handle } => {
                self.social_identity(tenant, origin, target, channel, handle)
                    .await?
            }
            other => other,
        };
        let language = request
            .language
            .clone()
            .unwrap_or_else(|| active.default_language.clone());
        let subscriber = subscriber_id(tenant, &via_key(&via));
        // The same request again: the same subscription.
        let (target_kind, topic, case) = match target {
            Target::Topic(t) => ("topic", Some(t.0), None),
            Target::Case(t) => ("case", None, Some(t.0)),
        };
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let existing: Option<(Uuid, String)> = sqlx::query_as(
            "SELECT subscription_id, status FROM notify_subscriptions \
             WHERE tenant_id = $1 AND subscriber_id = $2 AND target_kind = $3 \
               AND topic_id IS NOT DISTINCT FROM $4 AND ticket_id IS NOT DISTINCT FROM $5 \
               AND status IN ('pending', 'active') \
             ORDER BY created_at LIMIT 1",
        )
        .bind(tenant.into_uuid())
        .bind(subscriber)
        .bind(target_kind)
        .bind(topic)
        .bind(case)
        .fetch_optional(&mut *tx)
        .await?;
        let held: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notify_subscriptions \
             WHERE tenant_id = $1 AND subscriber_id = $2 AND status IN ('pending', 'active')",
        )
        .bind(tenant.into_uuid())
        .bind(subscriber)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let webhook = matches!(via, Via::Webhook { .. });
        let secret = |id: Uuid| {
            webhook.then(|| ventanilla_webhooks::secret_text(&key.webhook_secret(tenant, id)))
        };
        if let Some((id, status)) = existing {
            return Ok(Subscribed {
                id,
                status,
                webhook_secret: secret(id),
                existing: true,
            });
        }
        if held >= SUBSCRIPTIONS_PER_ADDRESS_MAX {
            return Err(InvalidValue::new(
                "email",
                format!(
                    "holds {SUBSCRIPTIONS_PER_ADDRESS_MAX} subscriptions in this organisation already; cancel some from the manage link first"
                ),
            )
            .into());
        }
        let id = Uuid::new_v4();
        let ctx = citizen_ctx(tenant, origin);
        let confirmation = match via {
            Via::Email { .. } => {
                let token = key.token(Purpose::Confirm, tenant, id);
                Some((
                    tracking_hash(&token).map_err(|e| NotifyError::Unexpected(e.into()))?,
                    ctx.now + self.config.confirm_for,
                ))
            }
            _ => None,
        };
        let email = confirmation.is_some();
        let command = SubscriptionCommand::Subscribe(Box::new(Subscribe {
            id: SubscriptionId(id),
            target,
            via,
            language,
            daily_digest: request.daily_digest && email,
            confirmation,
            target_known: true,
        }));
        let position = self.run(&ctx, id, &command).await?;
        self.settle(position).await;
        Ok(Subscribed {
            id,
            status: if email { "pending" } else { "active" }.into(),
            webhook_secret: secret(id),
            existing: false,
        })
    }

    /// Who is told on a social network: for a case, the citizen who wrote
    /// it on that network (the notices answer their latest message there);
    /// for a topic, the id an integrator gives (a citizen on the portal
    /// cannot name someone else's account).
    async fn social_identity(
        &self,
        tenant: TenantId,
        origin: &Origin,
        target: Target,
        channel: Channel,
        handle: String,
    ) -> Result<Via, NotifyError> {
        match target {
            Target::Case(ticket) => {
                let mut tx = begin_for_tenant(&self.pool, tenant).await?;
                let found: Option<(String, Option<String>)> = sqlx::query_as(
                    "SELECT channel, contact->>'handle' FROM tickets WHERE tenant_id = $1 AND ticket_id = $2",
                )
                .bind(tenant.into_uuid())
                .bind(ticket.0)
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                let Some((came_on, contact)) = found else {
                    return Err(NotifyError::NotFound(
                        "no such case in this organisation".into(),
                    ));
                };
                if came_on != channel.as_str() {
                    return Err(InvalidValue::new(
                        "channel",
                        format!(
                            "this case came on {came_on}, not {channel}; be told on {came_on} or by e-mail"
                        ),
                    )
                    .into());
                }
                let handle = match origin {
                    Origin::Api { .. } if !handle.is_empty() => handle,
                    _ => contact.unwrap_or(handle),
                };
                Ok(Via::Social { channel, handle })
            }
            Target::Topic(_) => match origin {
                Origin::Api { .. } if !handle.is_empty() => Ok(Via::Social { channel, handle }),
                Origin::Api { .. } => Err(InvalidValue::new(
                    "handle",
                    "give the citizen's id on the network to send them private messages",
                )
                .into()),
                Origin::Web => Err(NotifyError::Forbidden(
                    "on a social network, follow the organisation's account, or subscribe to the topic by e-mail",
                )),
            },
        }
    }

    fn open(&self, purpose: Purpose, token: &str) -> Result<(TenantId, Uuid), NotifyError> {
        self.config
            .key()?
            .open(purpose, token)
            .ok_or(NotifyError::InvalidLink)
    }

    /// Confirms an e-mail subscription from its link (a no-op when it is
    /// confirmed already). A forged or mistyped link is `NOT_FOUND`; an
    /// expired one `CONFLICT`, saying to subscribe again.
    pub async fn confirm(&self, token: &str) -> Result<(TenantId, SubscriptionView), NotifyError> {
        let (tenant, id) = self.open(Purpose::Confirm, token)?;
        self.tenancy.active_tenant(tenant).await?;
        let hash = tracking_hash(token).map_err(|_| NotifyError::InvalidLink)?;
        let ctx = citizen_ctx(tenant, &Origin::Web);
        let position = self
            .run(&ctx, id, &SubscriptionCommand::Confirm { token: hash })
            .await
            .map_err(|e| match e {
                NotifyError::Subscription(SubscriptionError::NotFound) => NotifyError::InvalidLink,
                other => other,
            })?;
        self.settle(position).await;
        Ok((tenant, self.subscription(tenant, id).await?))
    }

    /// Cancels a subscription from its one-click unsubscribe link (a no-op
    /// when it has ended already). Works for a suspended tenant too: a
    /// citizen can always leave.
    pub async fn unsubscribe(
        &self,
        token: &str,
    ) -> Result<(TenantId, SubscriptionView), NotifyError> {
        let (tenant, id) = self.open(Purpose::Unsubscribe, token)?;
        self.cancel(tenant, id).await
    }

    async fn cancel(
        &self,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<(TenantId, SubscriptionView), NotifyError> {
        let ctx = citizen_ctx(tenant, &Origin::Web);
        let position = self
            .run(&ctx, id, &SubscriptionCommand::Cancel)
            .await
            .map_err(|e| match e {
                NotifyError::Subscription(SubscriptionError::NotFound) => NotifyError::InvalidLink,
                other => other,
            })?;
        self.settle(position).await;
        Ok((tenant, self.subscription(tenant, id).await?))
    }

    /// An address's subscriptions in the tenant its manage link names,
    /// newest first.
    pub async fn manage(
        &self,
        token: &str,
    ) -> Result<(TenantId, Vec<SubscriptionView>), NotifyError> {
        let (tenant, subscriber) = self.open(Purpose::Manage, token)?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let rows = sqlx::query_as::<_, SubscriptionView>(
            "SELECT subscription_id, target_kind, topic_id, ticket_id, via, address, language, daily_digest, status, created_at \
             FROM notify_subscriptions WHERE tenant_id = $1 AND subscriber_id = $2 \
             ORDER BY created_at DESC LIMIT 200",
        )
        .bind(tenant.into_uuid())
        .bind(subscriber)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok((tenant, rows))
    }

    /// Cancels one of the subscriptions a manage link lists; another
    /// address's subscription is `NOT_FOUND`.
    pub async fn cancel_from_manage(
        &self,
        token: &str,
        subscription: Uuid,
    ) -> Result<(TenantId, SubscriptionView), NotifyError> {
        let (tenant, subscriber) = self.open(Purpose::Manage, token)?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let owner: Option<Uuid> = sqlx::query_scalar(
            "SELECT subscriber_id FROM notify_subscriptions WHERE tenant_id = $1 AND subscription_id = $2",
        )
        .bind(tenant.into_uuid())
        .bind(subscription)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        if owner != Some(subscriber) {
            return Err(NotifyError::NotFound("no such subscription".into()));
        }
        self.cancel(tenant, subscription).await
    }

    // -----------------------------------------------------------------------
    // Staff
    // -----------------------------------------------------------------------

    async fn staff(&self, tenant: TenantId, by: StaffId, admin: bool) -> Result<(), NotifyError> {
        match self.tenancy.working_role(tenant, by).await? {
            Some(role) if !admin || role == Role::Admin => Ok(()),
            Some(_) => Err(NotifyError::Forbidden(
                "only an admin of this organisation may change who its e-mails come from",
            )),
            None => Err(NotifyError::Forbidden(
                "only active staff of this organisation may publish announcements",
            )),
        }
    }

    /// Publishes an announcement: every confirmed subscriber of its topics
    /// is notified (by the fan-out reactor and the worker), and the social
    /// service posts it on the chosen accounts. Refused with nothing
    /// written: a malformed field (`VALIDATION`), a topic or account that
    /// is not the tenant's (`NOT_FOUND`), someone who is not active staff
    /// (`FORBIDDEN`).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn publish(
        &self,
        tenant: TenantId,
        by: StaffId,
        request: &PublishRequest,
    ) -> Result<AnnouncementView, NotifyError> {
        self.staff(tenant, by, false).await?;
        let active = self.tenancy.active_tenant(tenant).await?;
        let directory = self.tenancy.directory(tenant).await?;
        if let Some(t) = request
            .topics
            .iter()
            .find(|t| directory.topic(DirectoryTopicId(**t)).is_none())
        {
            return Err(NotifyError::NotFound(format!(
                "no topic {t} in this organisation; choose among its topics"
            )));
        }
        for a in &request.accounts {
            let (_, events) = self
                .runner
                .load::<Account>(tenant, &account::stream_id(AccountId(*a))?)
                .await
                .map_err(|e| NotifyError::Unexpected(anyhow::anyhow!("{e}")))?;
            let linked = Account::fold(&events)
                .account
                .is_some_and(|acc| !acc.unlinked);
            if !linked {
                return Err(NotifyError::NotFound(format!(
                    "no linked social account {a} in this organisation; link it first or leave it out"
                )));
            }
        }
        let command = Publish {
            title: request.title.trim().to_owned(),
            body: request.body.trim().to_owned(),
            link: request.link.clone().filter(|l| !l.trim().is_empty()),
            image_url: request.image_url.clone().filter(|l| !l.trim().is_empty()),
            topics: request.topics.iter().map(|t| TopicId(*t)).collect(),
            language: request
                .language
                .clone()
                .unwrap_or_else(|| active.default_language.clone()),
            accounts: request.accounts.clone(),
            by: AgentId(by.0),
            all_known: true,
        };
        command.check()?;
        let id = request
            .idempotency_key
            .map_or_else(Uuid::new_v4, |k| Uuid::new_v5(&k, b"announcement"));
        let mut ctx = CommandContext::new(tenant, Utc::now(), Actor::Staff { id: by.to_string() });
        if let Some(k) = request.idempotency_key {
            ctx = ctx.with_idempotency_key(k);
        }
        let done = self
            .runner
            .execute::<Announcement>(
                &ctx,
                &announcement::stream_id(AnnouncementId(id))?,
                &command,
            )
            .await?;
        self.settle(done.position).await;
        self.announcement(tenant, id).await
    }

    /// An announcement and how its notifications are going.
    pub async fn announcement(
        &self,
        tenant: TenantId,
        id: Uuid,
    ) -> Result<AnnouncementView, NotifyError> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let row: Option<AnnouncementRow> = sqlx::query_as(
            "SELECT title, topics, accounts, published_at FROM notify_announcements \
             WHERE tenant_id = $1 AND announcement_id = $2",
        )
        .bind(tenant.into_uuid())
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((title, topics, accounts, published_at)) = row else {
            return Err(NotifyError::NotFound("no such announcement".into()));
        };
        let (queued, sent, failed): (i64, i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE state IN ('pending', 'sending', 'digest')), \
                    count(*) FILTER (WHERE state IN ('sent', 'digested')), \
                    count(*) FILTER (WHERE state = 'failed') \
             FROM notify_outbox WHERE tenant_id = $1 AND content_id = $2",
        )
        .bind(tenant.into_uuid())
        .bind(id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(AnnouncementView {
            id,
            title,
            topics,
            accounts,
            published_at,
            queued,
            sent,
            failed,
        })
    }

    /// The tenant's announcements, newest first: at most `first` (1 to
    /// [`MAX_ANNOUNCEMENTS_PAGE`]) after `after` (a cursor of an earlier
    /// page), each with how its notifications are going; and whether more
    /// follow. Two queries whatever the page's size.
    pub async fn announcements(
        &self,
        tenant: TenantId,
        first: u32,
        after: Option<&str>,
    ) -> Result<(Vec<(AnnouncementView, String)>, bool), NotifyError> {
        if first == 0 || first > MAX_ANNOUNCEMENTS_PAGE {
            return Err(InvalidValue::new(
                "first",
                format!("must be 1 to {MAX_ANNOUNCEMENTS_PAGE}"),
            )
            .into());
        }
        let after = match after {
            None => None,
            Some(cursor) => Some(decode_cursor(cursor).ok_or_else(|| {
                InvalidValue::new("after", "is not a cursor this list gave; start again")
            })?),
        };
        let (after_at, after_id) = after.unzip();
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let mut rows: Vec<IdentifiedRow> =
            sqlx::query_as(
            "SELECT announcement_id, title, topics, accounts, published_at FROM notify_announcements \
             WHERE tenant_id = $1 \
               AND ($2::timestamptz IS NULL OR (published_at, announcement_id) < ($2, $3)) \
             ORDER BY published_at DESC, announcement_id DESC LIMIT $4",
        )
        .bind(tenant.into_uuid())
        .bind(after_at)
        .bind(after_id)
        .bind(i64::from(first) + 1)
        .fetch_all(&mut *tx)
        .await?;
        let more = rows.len() > first as usize;
        rows.truncate(first as usize);
        let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
        let counts: Vec<(Uuid, i64, i64, i64)> = sqlx::query_as(
            "SELECT content_id, \
                    count(*) FILTER (WHERE state IN ('pending', 'sending', 'digest')), \
                    count(*) FILTER (WHERE state IN ('sent', 'digested')), \
                    count(*) FILTER (WHERE state = 'failed') \
             FROM notify_outbox WHERE tenant_id = $1 AND content_id = ANY($2) GROUP BY content_id",
        )
        .bind(tenant.into_uuid())
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        let counts: std::collections::HashMap<Uuid, (i64, i64, i64)> = counts
            .into_iter()
            .map(|(id, q, s, f)| (id, (q, s, f)))
            .collect();
        let page = rows
            .into_iter()
            .map(|(id, title, topics, accounts, published_at)| {
                let (queued, sent, failed) = counts.get(&id).copied().unwrap_or_default();
                let cursor = format!("{}.{}", published_at.timestamp_micros(), id.simple());
                (
                    AnnouncementView {
                        id,
                        title,
                        topics,
                        accounts,
                        published_at,
                        queued,
                        sent,
                        failed,
                    },
                    cursor,
                )
            })
            .collect();
        Ok((page, more))
    }

    /// Who the tenant's e-mails come from (`None` fields: the defaults).
    pub async fn sender(&self, tenant: TenantId) -> Result<SenderState, NotifyError> {
        let (_, events) = self
            .runner
            .load::<Sender>(tenant, &sender::stream_id()?)
            .await
            .map_err(|e| NotifyError::Unexpected(anyhow::anyhow!("{e}")))?;
        Ok(Sender::fold(&events))
    }

    /// Sets who the tenant's e-mails come from (admins).
    pub async fn configure_sender(
        &self,
        tenant: TenantId,
        by: StaffId,
        sender_settings: SenderState,
    ) -> Result<SenderState, NotifyError> {
        self.staff(tenant, by, true).await?;
        let ctx = CommandContext::new(tenant, Utc::now(), Actor::Staff { id: by.to_string() });
        let done = self
            .runner
            .execute::<Sender>(
                &ctx,
                &sender::stream_id()?,
                &Configure {
                    sender: sender_settings,
                },
            )
            .await
            .map_err(|e| match e {
                ventanilla_eventlog::CommandError::Domain(sender::SenderError::Invalid(v)) => {
                    NotifyError::Invalid(v)
                }
                other => NotifyError::Unexpected(anyhow::anyhow!("{other}")),
            })?;
        Ok(done.state)
    }

    // -----------------------------------------------------------------------
    // Timers
    // -----------------------------------------------------------------------

    /// Expires the unconfirmed e-mail subscriptions past their expiry;
    /// returns how many.
    pub async fn expire_due(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let due: Vec<(Uuid, Uuid)> = sqlx::query_as("SELECT * FROM notify_expired($1, 500)")
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let mut expired = 0;
        for (tenant, id) in due {
            let tenant = TenantId::from_uuid(tenant);
            let ctx = CommandContext::new(tenant, Utc::now(), Actor::system("notify-expiry"));
            match self.run(&ctx, id, &SubscriptionCommand::Expire).await {
                Ok(Some(_)) => expired += 1,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(tenant_id = %tenant, subscription = %id, error = %e, "could not expire a subscription")
                }
            }
        }
        Ok(expired)
    }
}
