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
        let accounts = Accounts::new(Arc::clone(&log), Some(&key()), &base);
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
        .unwrap();
        Self {
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

    fn runner(&self) -> CommandRunner<PgEventLog> {
        CommandRunner::new(Arc::clone(&self.log), 3)
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

    /// Runs `handler` as subscription `name` until it has read the whole
    /// log.
    pub async fn drain(&self, name: &str, handler: Arc<dyn Handler>) {
        let mut sub = Subscription::join(
            Arc::clone(&self.log),
            self.db.app.clone(),
            SubscriptionConfig::new(name, "test"),
            handler,
        )
        .await
        .unwrap();
        sub.rebalance().await.unwrap();
        sub.catch_up().await.unwrap();
        sub.leave().await;
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
        self.drain(
            ventanilla_social::outbound::SUBSCRIPTION,
            Arc::new(OutboundReactor),
        )
        .await;
        self.worker.tick(Utc::now()).await.unwrap();
        self.drain(ventanilla_tickets::inbound::SUBSCRIPTION, inbound)
            .await;
        self.caught_up().await;
    }

    /// Waits for every read model of both services.
    pub async fn caught_up(&self) {
        let head = self.log.head().await.unwrap();
        let mut all: Vec<Arc<dyn Projection>> = ventanilla_tickets::projections();
        all.extend(ventanilla_social::projections());
        for p in all {
            ensure_caught_up(
                Arc::clone(&self.log),
                self.db.app.clone(),
                p,
                head,
                Duration::from_secs(15),
            )
            .await
            .unwrap();
        }
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(ventanilla_postgres::sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.db.admin)
            .await
            .unwrap()
    }
}
