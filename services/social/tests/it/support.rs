//! The world the tests run in: a fresh database, a council with an admin
//! and an agent, the fakes of Meta and X, the webhook endpoints on a random
//! port, and the tickets and social services.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::Utc;
use secrecy::SecretString;
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandRunner, EventLog, Limits};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::projection::{Projection, ensure_caught_up};
use ventanilla_postgres::{Handler, PgEventLog, Subscription, SubscriptionConfig};
use ventanilla_social::accounts::{Accounts, LinkRequest};
use ventanilla_social::fake::{meta::FakeGraph, x::FakeX};
use ventanilla_social::outbound::{DeliveryWorker, OutboundReactor};
use ventanilla_social::webhooks::Webhooks;
use ventanilla_social_domain::account::AccountId;
use ventanilla_tenants::operator::{Operator, ProvisionRequest};
use ventanilla_tenants::secrets;
use ventanilla_tenants_domain::staff::{
    self, PasswordHash, Role, StaffCommand, StaffId, StaffMember,
};
use ventanilla_tenants_domain::values::{Email, Name};
use ventanilla_testkit::TestDb;
use ventanilla_tickets::inbound::InboundReactor;
use ventanilla_tickets::service::Tickets;

const PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";

pub const PAGE_ID: &str = "1029384756";
pub const PAGE_TOKEN: &str = "EAAGpagetoken";
pub const APP_SECRET: &str = "meta-app-secret";
pub const VERIFY_TOKEN: &str = "verify-me-please";
pub const X_USER_ID: &str = "2975699229";
pub const X_TOKEN: &str = "x-user-token";
pub const CONSUMER_SECRET: &str = "x-consumer-secret";

pub struct World {
    pub db: TestDb,
    pub log: Arc<PgEventLog>,
    pub op: Operator,
    pub tickets: Tickets,
    pub accounts: Accounts,
    pub graph: FakeGraph,
    pub x: FakeX,
    pub telegram: ventanilla_social::fake::telegram::FakeTelegram,
    pub mastodon: ventanilla_social::fake::mastodon::FakeMastodon,
    pub whatsapp: ventanilla_social::fake::whatsapp::FakeWhatsApp,
    pub base: String,
    pub http: reqwest::Client,
    pub worker: DeliveryWorker,
}

pub struct Council {
    pub tenant: TenantId,
    pub slug: String,
    pub admin: StaffId,
    pub agent: StaffId,
}

pub fn key() -> SecretString {
    SecretString::from(base64::engine::general_purpose::STANDARD.encode([42u8; 32]))
}

impl World {
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let telegram = ventanilla_social::fake::telegram::FakeTelegram::start().await;
        let mastodon = ventanilla_social::fake::mastodon::start().await;
        let whatsapp = ventanilla_social::fake::whatsapp::FakeWhatsApp::start().await;
        let accounts = Accounts::new(Arc::clone(&log), Some(&key()), &base).with_telegram(
            ventanilla_social::telegram::TelegramClient::new(
                telegram.base_url(),
                reqwest::Client::new(),
            ),
        );
        let router = Webhooks::new(accounts.clone(), Arc::clone(&log)).router();
        tokio::spawn(async move { axum::serve(listener, router).await });
        let graph = ventanilla_social::fake::meta::start().await;
        let x = ventanilla_social::fake::x::start().await;
        let worker = DeliveryWorker::new(
            accounts.clone(),
            Arc::clone(&log),
            &graph.base_url,
            &x.base_url,
            Duration::from_millis(100),
        )
        .unwrap()
        .with_telegram_base(telegram.base_url())
        .unwrap()
        .with_whatsapp_base(whatsapp.base_url())
        .unwrap();
        Self {
            telegram,
            mastodon,
            whatsapp,
            op: Operator::new(Arc::clone(&log), "test-operator"),
            tickets: Tickets::new(Arc::clone(&log)),
            accounts,
            graph,
            x,
            base,
            http: reqwest::Client::new(),
            worker,
            log,
            db,
        }
    }

    pub fn runner(&self) -> CommandRunner<PgEventLog> {
        CommandRunner::new(Arc::clone(&self.log), 3)
    }

    /// The social service's outbound reactor (replies and announcements).
    pub fn outbound(&self) -> Arc<dyn Handler> {
        Arc::new(OutboundReactor::new(
            self.accounts.clone(),
            Arc::clone(&self.log),
        ))
    }

    /// Provisions `slug` with an active admin and an active agent.
    pub async fn council(&self, slug: &str) -> Council {
        let p = self
            .op
            .provision(&ProvisionRequest {
                name: format!("Concello de {slug}"),
                slug: slug.to_owned(),
                kind: "council".into(),
                plan: Some("municipio".into()),
                admin_email: format!("alcaldia@{slug}.gal"),
                ..ProvisionRequest::default()
            })
            .await
            .unwrap();
        self.accept(p.tenant, p.admin, &p.invitation_code).await;
        let agent = StaffId(Uuid::new_v4());
        let (code, invitation) = secrets::new_token().unwrap();
        self.runner()
            .execute::<StaffMember>(
                &CommandContext::new(p.tenant, Utc::now(), Actor::system("test")),
                &staff::stream_id(agent).unwrap(),
                &StaffCommand::Invite {
                    id: agent,
                    email: Email::parse("email", &format!("agente@{slug}.gal")).unwrap(),
                    name: Name::parse("name", "Agente", 120).unwrap(),
                    role: Role::Agent,
                    invitation,
                    expires_at: Utc::now() + chrono::Duration::days(1),
                    invited_by: None,
                },
            )
            .await
            .unwrap();
        self.accept(p.tenant, agent, &code).await;
        Council {
            tenant: p.tenant,
            slug: p.slug,
            admin: p.admin,
            agent,
        }
    }

    async fn accept(&self, tenant: TenantId, id: StaffId, code: &str) {
        self.runner()
            .execute::<StaffMember>(
                &CommandContext::new(tenant, Utc::now(), Actor::system("test")),
                &staff::stream_id(id).unwrap(),
                &StaffCommand::AcceptInvitation {
                    invitation: secrets::hash_token(code).unwrap(),
                    password: PasswordHash::parse("password", PASSWORD_HASH).unwrap(),
                },
            )
            .await
            .unwrap();
    }

    /// Links the council's Facebook Page.
    pub async fn link_page(&self, c: &Council) -> (AccountId, String) {
        self.graph.allow_token(PAGE_TOKEN);
        self.accounts
            .link(
                c.tenant,
                c.admin,
                &LinkRequest {
                    network: "facebook".into(),
                    external_id: PAGE_ID.into(),
                    name: format!("Concello de {}", c.slug),
                    access_token: SecretString::from(PAGE_TOKEN),
                    signing_secret: SecretString::from(APP_SECRET),
                    verify_token: Some(SecretString::from(VERIFY_TOKEN)),
                    human_agent: false,
                    instance: None,
                    handle: None,
                    publish_to: None,
                },
            )
            .await
            .unwrap()
    }

    /// Links the council's X account.
    pub async fn link_x(&self, c: &Council) -> (AccountId, String) {
        self.x.allow_token(X_TOKEN, X_USER_ID);
        self.accounts
            .link(
                c.tenant,
                c.admin,
                &LinkRequest {
                    network: "x".into(),
                    external_id: X_USER_ID.into(),
                    name: "@concello".into(),
                    access_token: SecretString::from(X_TOKEN),
                    signing_secret: SecretString::from(CONSUMER_SECRET),
                    verify_token: None,
                    human_agent: false,
                    instance: None,
                    handle: None,
                    publish_to: None,
                },
            )
            .await
            .unwrap()
    }

    /// POSTs a webhook body with its signature header.
    pub async fn post(
        &self,
        url: &str,
        header: &str,
        signature: &str,
        body: Vec<u8>,
    ) -> reqwest::Response {
        self.http
            .post(url)
            .header("content-type", "application/json")
            .header(header, signature)
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Runs `handler` as subscription `name` until it has read every event
    /// committed so far.
    pub async fn drain(&self, name: &str, handler: Arc<dyn Handler>) {
        self.drain_all(name, handler).await;
    }

    /// Everything the services do after a webhook or a reply, in order:
    /// tickets from messages, replies queued, replies sent, outcomes on the
    /// tickets, read models caught up.
    pub async fn settle(&self) {
        let inbound: Arc<dyn Handler> = Arc::new(InboundReactor::new(self.tickets.clone()));
        self.drain(
            ventanilla_tickets::inbound::SUBSCRIPTION,
            Arc::clone(&inbound),
        )
        .await;
        self.drain(ventanilla_social::outbound::SUBSCRIPTION, self.outbound())
            .await;
        self.worker.tick(Utc::now()).await.unwrap();
        self.drain(ventanilla_tickets::inbound::SUBSCRIPTION, inbound)
            .await;
        self.caught_up().await;
    }

    /// Waits for every read model of both services.
    pub async fn caught_up(&self) {
        self.caught_up_all().await;
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(ventanilla_postgres::sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.db.admin)
            .await
            .unwrap()
    }
}

/// Helpers of the isolation and delivery suites: accounts with their own
/// ids and secrets, replies, the delivery queue and streams, and the worker
/// at a chosen instant.
impl World {
    /// Links a Facebook Page with the given ids and secrets (so that two
    /// councils hold different ones).
    pub async fn link_page_with(
        &self,
        c: &Council,
        page_id: &str,
        token: &str,
        app_secret: &str,
        verify_token: &str,
    ) -> (AccountId, String) {
        self.graph.allow_token(token);
        self.accounts
            .link(
                c.tenant,
                c.admin,
                &LinkRequest {
                    network: "facebook".into(),
                    external_id: page_id.into(),
                    name: format!("Concello de {} ({page_id})", c.slug),
                    access_token: SecretString::from(token.to_owned()),
                    signing_secret: SecretString::from(app_secret.to_owned()),
                    verify_token: Some(SecretString::from(verify_token.to_owned())),
                    human_agent: false,
                    instance: None,
                    handle: None,
                    publish_to: None,
                },
            )
            .await
            .unwrap()
    }

    /// Links an X account with the given ids and secrets.
    pub async fn link_x_with(
        &self,
        c: &Council,
        user_id: &str,
        token: &str,
        consumer_secret: &str,
    ) -> (AccountId, String) {
        self.x.allow_token(token, user_id);
        self.accounts
            .link(
                c.tenant,
                c.admin,
                &LinkRequest {
                    network: "x".into(),
                    external_id: user_id.into(),
                    name: format!("@concello{user_id}"),
                    access_token: SecretString::from(token.to_owned()),
                    signing_secret: SecretString::from(consumer_secret.to_owned()),
                    verify_token: None,
                    human_agent: false,
                    instance: None,
                    handle: None,
                    publish_to: None,
                },
            )
            .await
            .unwrap()
    }

    /// The one ticket of `tenant` opened on `channel`, as the owner sees it.
    pub async fn ticket_on(
        &self,
        tenant: TenantId,
        channel: &str,
    ) -> ventanilla_tickets_domain::ticket::TicketId {
        let ids: Vec<Uuid> = sqlx::query_scalar(
            "SELECT ticket_id FROM tickets WHERE tenant_id = $1 AND channel = $2 ORDER BY opened_at",
        )
        .bind(tenant.into_uuid())
        .bind(channel)
        .fetch_all(&self.db.admin)
        .await
        .unwrap();
        assert_eq!(ids.len(), 1, "tickets of {tenant} on {channel}: {ids:?}");
        ventanilla_tickets_domain::ticket::TicketId(ids[0])
    }

    /// The council's agent answers `ticket` on its own channel.
    pub async fn reply(
        &self,
        c: &Council,
        ticket: ventanilla_tickets_domain::ticket::TicketId,
        body: &str,
    ) -> ventanilla_tickets_domain::ticket::MessageId {
        self.tickets
            .reply(
                c.tenant,
                c.agent,
                ticket,
                &ventanilla_tickets::service::ReplyRequest {
                    body: body.into(),
                    ..ventanilla_tickets::service::ReplyRequest::default()
                },
            )
            .await
            .unwrap()
    }

    /// The reply `message` as the agent sees it on the ticket.
    pub async fn reply_view(
        &self,
        c: &Council,
        ticket: ventanilla_tickets_domain::ticket::TicketId,
        message: ventanilla_tickets_domain::ticket::MessageId,
    ) -> ventanilla_tickets::inbox::MessageView {
        let view = self
            .tickets
            .ticket(c.tenant, c.agent, ticket)
            .await
            .unwrap();
        view.messages
            .into_iter()
            .find(|m| m.message_id == message.0)
            .unwrap_or_else(|| panic!("reply {} is not on ticket {}", message.0, ticket.0))
    }

    /// Runs `handler` as subscription `name` until it has read every event
    /// committed so far. Unlike [`World::drain`], it does not stop where
    /// the log's gap-safe horizon happens to be: that horizon is the oldest
    /// transaction running on the whole server (other tests' included), so
    /// a single catch-up may stop short of events this test just wrote.
    pub async fn drain_all(&self, name: &str, handler: Arc<dyn Handler>) {
        let target = self.log.committed_head().await.unwrap();
        let mut sub = Subscription::join(
            Arc::clone(&self.log),
            self.db.app.clone(),
            SubscriptionConfig::new(name, "test"),
            handler,
        )
        .await
        .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        loop {
            sub.rebalance().await.unwrap();
            sub.catch_up().await.unwrap();
            if sub
                .checkpoints()
                .values()
                .min()
                .is_some_and(|p| *p >= target)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} has not read up to {target:?} within 15 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sub.leave().await;
    }

    /// Waits for every read model of both services to show every event
    /// committed so far (see [`World::drain_all`] for why not `head`).
    pub async fn caught_up_all(&self) {
        let target = self.log.committed_head().await.unwrap();
        let mut all: Vec<Arc<dyn Projection>> = ventanilla_tickets::projections();
        all.extend(ventanilla_social::projections());
        for p in all {
            ensure_caught_up(
                Arc::clone(&self.log),
                self.db.app.clone(),
                p,
                target,
                Duration::from_secs(15),
            )
            .await
            .unwrap();
        }
    }

    /// Tickets from messages and delivery outcomes on the tickets, up to
    /// every event committed so far.
    async fn inbound_all(&self) {
        let inbound: Arc<dyn Handler> = Arc::new(InboundReactor::new(self.tickets.clone()));
        self.drain_all(ventanilla_tickets::inbound::SUBSCRIPTION, inbound)
            .await;
    }

    /// Everything up to the delivery worker, which does not run: tickets
    /// from messages, outcomes on the tickets, replies queued, read models
    /// caught up.
    pub async fn queue(&self) {
        self.inbound_all().await;
        self.drain_all(ventanilla_social::outbound::SUBSCRIPTION, self.outbound())
            .await;
        self.caught_up_all().await;
    }

    /// One pass of the delivery worker at `now`, then the outcomes on the
    /// tickets. Returns how many replies the worker handled.
    pub async fn tick_at(&self, now: chrono::DateTime<Utc>) -> usize {
        let handled = self.worker.tick(now).await.unwrap();
        self.inbound_all().await;
        self.caught_up_all().await;
        handled
    }

    /// [`World::settle`], reading every event committed so far at each
    /// step: [`World::queue`], then [`World::tick_at`] now.
    pub async fn settle_all(&self) -> usize {
        self.queue().await;
        self.tick_at(Utc::now()).await
    }

    /// The queued reply `message` of `tenant`: attempts, when it is due,
    /// whether it is done (as the owner sees it).
    pub async fn queued(
        &self,
        tenant: TenantId,
        message: ventanilla_tickets_domain::ticket::MessageId,
    ) -> Queued {
        sqlx::query_as(
            "SELECT attempts, next_attempt_at, done FROM social_deliveries \
             WHERE tenant_id = $1 AND message_id = $2",
        )
        .bind(tenant.into_uuid())
        .bind(message.0)
        .fetch_optional(&self.db.admin)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("reply {} is not queued", message.0))
    }

    /// The events of the delivery stream of `message`, in order: type and
    /// data.
    pub async fn delivery_events(
        &self,
        tenant: TenantId,
        message: ventanilla_tickets_domain::ticket::MessageId,
    ) -> Vec<(String, serde_json::Value)> {
        sqlx::query_as(
            "SELECT event_type, data FROM events WHERE tenant_id = $1 AND stream_id = $2 \
             ORDER BY stream_version",
        )
        .bind(tenant.into_uuid())
        .bind(format!("delivery-{}", message.0))
        .fetch_all(&self.db.admin)
        .await
        .unwrap()
    }

    /// How many events the log holds.
    pub async fn event_count(&self) -> i64 {
        self.count("SELECT count(*) FROM events").await
    }

    /// The account `id` of the council as its staff see it.
    pub async fn account(
        &self,
        c: &Council,
        id: AccountId,
    ) -> ventanilla_social::accounts::AccountView {
        self.accounts
            .list(c.tenant, c.agent)
            .await
            .unwrap()
            .into_iter()
            .find(|a| a.account_id == id.0)
            .unwrap_or_else(|| panic!("account {} is not listed", id.0))
    }
}

/// A queued reply, as `social_deliveries` holds it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Queued {
    pub attempts: i32,
    pub next_attempt_at: chrono::DateTime<Utc>,
    pub done: bool,
}
