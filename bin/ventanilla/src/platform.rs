//! What the binary builds before any module starts: the database (created
//! and migrated), the event log, and the registry of projections.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use indicatif::{ProgressBar, ProgressStyle};
use secrecy::ExposeSecret;
use ventanilla_eventlog::Limits;
use ventanilla_postgres::projection::{Projection, ProjectionRunner, RebuildProgress};
use ventanilla_postgres::sqlx::{self, PgPool};
use ventanilla_postgres::stream_index::StreamIndex;
use ventanilla_postgres::{Database, PgEventLog, PoolSettings, db};
use ventanilla_runtime::{Module, Running, Settings, StartContext};

/// The database and the event log of this process.
pub struct Platform {
    pub database: Database,
    pub log: Arc<PgEventLog>,
}

/// Every read model the platform maintains. Services add theirs here as
/// they arrive.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    let mut all: Vec<Arc<dyn Projection>> = vec![Arc::new(StreamIndex)];
    all.extend(ventanilla_tenants::projections());
    all.extend(ventanilla_tickets::projections());
    all.extend(ventanilla_social::projections());
    all
}

fn pool_settings(settings: &Settings) -> PoolSettings {
    PoolSettings {
        max_connections: settings.database.max_connections,
        connect_timeout: settings.database.connect_timeout(),
        statement_timeout: Duration::from_millis(settings.database.statement_timeout_ms),
        idle_in_transaction_timeout: Duration::from_millis(
            settings.database.idle_in_transaction_timeout_ms,
        ),
    }
}

impl Platform {
    /// Creates the database if missing, migrates it as the owner, and opens
    /// the application role's pool.
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let app_url = settings.database.app_url()?;
        let database = Database::prepare(
            settings.database.url.expose_secret(),
            app_url.expose_secret(),
            &pool_settings(settings),
        )
        .await?;
        let limits = Limits {
            max_event_bytes: settings.eventlog.max_event_bytes,
            ..Limits::default()
        };
        let log = Arc::new(PgEventLog::new(database.app.clone(), limits));
        Ok(Self { database, log })
    }

    /// Closes the pools.
    pub async fn close(self) {
        self.database.app.close().await;
    }

    /// The module that runs the platform's projections.
    pub fn projections_module(&self, settings: &Settings) -> ProjectionsModule {
        ProjectionsModule {
            log: Arc::clone(&self.log),
            pool: self.database.app.clone(),
            batch_size: settings.eventlog.batch_size as usize,
            poll_interval: settings.eventlog.poll_interval(),
        }
    }

    /// Prints each projection with its checkpoint and how far behind it is.
    pub async fn list_projections(&self) -> anyhow::Result<()> {
        use ventanilla_eventlog::EventLog;
        let head = self.log.head().await?;
        for p in projections() {
            let name = ventanilla_postgres::projection::subscription_name(p.as_ref());
            let at = checkpoint_of(&self.database.app, &name).await?.unwrap_or(0);
            #[allow(clippy::print_stdout)]
            {
                println!(
                    "{:<20} tables={:<30} at={:<10} head={}",
                    p.name(),
                    p.tables().join(","),
                    at,
                    head.sequence
                );
            }
        }
        Ok(())
    }

    /// Rebuilds one projection, with a progress bar on a terminal.
    pub async fn rebuild(
        &self,
        settings: &Settings,
        name: &str,
        batch_size: usize,
    ) -> anyhow::Result<()> {
        let all = projections();
        let Some(projection) = all.iter().find(|p| p.name() == name) else {
            let known: Vec<&str> = all.iter().map(|p| p.name()).collect();
            anyhow::bail!("no projection named {name:?}; known: {}", known.join(", "));
        };
        let admin = db::connect(
            settings.database.url.expose_secret(),
            &PoolSettings {
                max_connections: 2,
                ..pool_settings(settings)
            },
        )
        .await?;
        let bar = Bar::new();
        let report = ventanilla_postgres::rebuild(
            &admin,
            self.log.as_ref(),
            projection.as_ref(),
            batch_size,
            &bar,
        )
        .await
        .with_context(|| format!("rebuilding {name}"))?;
        admin.close().await;
        #[allow(clippy::print_stdout)]
        {
            println!(
                "rebuilt {name}: {} events in {:.1} s ({:.0} events/s); live from {}",
                report.replayed,
                report.elapsed.as_secs_f64(),
                report.replayed as f64 / report.elapsed.as_secs_f64().max(1e-9),
                report.checkpoint
            );
        }
        Ok(())
    }
}

/// The furthest checkpoint of a subscription, if it exists.
async fn checkpoint_of(pool: &PgPool, subscription: &str) -> anyhow::Result<Option<i64>> {
    Ok(sqlx::query_scalar(
        "SELECT max(checkpoint_sequence) FROM subscription_partitions WHERE subscription = $1",
    )
    .bind(subscription)
    .fetch_one(pool)
    .await?)
}

/// An indicatif progress bar; hidden when stderr is not a terminal.
struct Bar(ProgressBar);

impl Bar {
    fn new() -> Self {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "{spinner} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} events  {per_sec}  ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        Self(bar)
    }
}

impl RebuildProgress for Bar {
    fn start(&self, estimated_total: u64) {
        self.0.set_length(estimated_total);
    }
    fn advance(&self, n: u64) {
        self.0.inc(n);
        if self.0.position() > self.0.length().unwrap_or(0) {
            self.0.set_length(self.0.position());
        }
    }
    fn finish(&self, _replayed: u64) {
        self.0.finish_and_clear();
    }
}

/// Runs the platform's projections as members of their subscriptions.
pub struct ProjectionsModule {
    log: Arc<PgEventLog>,
    pool: PgPool,
    batch_size: usize,
    poll_interval: Duration,
}

/// This process's name in consumer groups: host and process id.
pub fn member_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!("{host}-{}", std::process::id())
}

#[async_trait]
impl Module for ProjectionsModule {
    fn name(&self) -> &'static str {
        "projections"
    }

    async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
        let runner = ProjectionRunner::new(Arc::clone(&self.log), self.pool.clone(), member_id())
            .with_batching(self.batch_size, self.poll_interval);
        let shutdown = ctx.shutdown();
        let tasks = runner.start(&projections(), shutdown.clone()).await?;
        let pool = self.pool.clone();
        ctx.add_readiness_check("database", move || {
            let pool = pool.clone();
            async move {
                sqlx::query("SELECT 1")
                    .execute(&pool)
                    .await
                    .map(|_| ())
                    .map_err(|e| format!("database unreachable: {e}"))
            }
        });
        Ok(Running::new(async move {
            for t in tasks {
                t.await??;
            }
            Ok(())
        }))
    }
}

/// The demo council's slug.
const DEMO_SLUG: &str = "demo";
/// The demo council's first admin.
const DEMO_ADMIN: &str = "admin@demo.ventanilla.test";

/// Provisions, once, the demo council `demo` — with its first admin already
/// activated, and departments, officials, topics, business hours and portal
/// settings — and prints the admin's login. Running it again changes nothing
/// (the organisation seed skips what exists). The password comes from
/// `VENTANILLA_DEMO_PASSWORD` (default `ventanilla-demo`): this is for a
/// development machine, never for a real install.
#[allow(clippy::print_stdout)]
pub async fn demo(platform: &Platform, settings: &Settings) -> anyhow::Result<()> {
    use ventanilla_tenants::operator::{Operator, OperatorError, ProvisionRequest};
    use ventanilla_tenants::organisation::Organisation;
    use ventanilla_tenants::staff::Staff;
    use ventanilla_tenants_domain::staff::StaffId;

    let password =
        std::env::var("VENTANILLA_DEMO_PASSWORD").unwrap_or_else(|_| "ventanilla-demo".to_owned());
    let operator = Operator::new(Arc::clone(&platform.log), "demo");
    let staff = Staff::new(Arc::clone(&platform.log));
    let (tenant, admin) = match operator.show(DEMO_SLUG).await {
        Ok(existing) => {
            let tenant = ventanilla_kernel::TenantId::from_uuid(existing.tenant_id);
            let admin = staff
                .list(tenant)
                .await?
                .into_iter()
                .find(|m| m.email == DEMO_ADMIN && m.status == "active")
                .map(|m| StaffId(m.staff_id))
                .context("the demo council exists but its admin is not active; drop the database to start over")?;
            (tenant, admin)
        }
        Err(OperatorError::UnknownTenant { .. }) => {
            let done = operator
                .provision(&ProvisionRequest {
                    name: "Ayuntamiento de Villademo".into(),
                    slug: DEMO_SLUG.into(),
                    kind: "council".into(),
                    plan: Some("provincia".into()),
                    time_zone: Some("Europe/Madrid".into()),
                    default_language: Some("es".into()),
                    languages: vec!["es".into(), "gl".into(), "ca".into(), "eu".into()],
                    admin_email: DEMO_ADMIN.into(),
                    admin_name: Some("Administración de Villademo".into()),
                    contact_email: Some("atencion@demo.ventanilla.test".into()),
                })
                .await?;
            staff
                .accept_invitation(done.tenant, done.admin, &done.invitation_code, &password)
                .await?;
            (done.tenant, done.admin)
        }
        Err(e) => return Err(e.into()),
    };
    Organisation::new(Arc::clone(&platform.log))
        .seed_demo(tenant, admin)
        .await?;
    let opened = demo_tickets(platform, tenant).await?;
    let linked = demo_accounts(platform, settings, tenant, admin).await?;
    println!(
        "Demo council \"{DEMO_SLUG}\" ready (tenant {tenant}, {opened} sample tickets in its inbox)."
    );
    println!(
        "  admin login: {DEMO_ADMIN} / {password}   (demo only; set VENTANILLA_DEMO_PASSWORD to change it, DEMO=0 to skip)"
    );
    match linked {
        Some(n) => println!(
            "  {n} simulated social accounts linked (Facebook, X): try `target/debug/ventanilla simulate facebook-comment \"La farola está fundida\"`"
        ),
        None => println!(
            "  no social accounts linked: set social.credentials_key (make run does) to link the simulated ones"
        ),
    }
    Ok(())
}

/// Opens the demo council's sample tickets, once: each carries a fixed
/// idempotency key, so running the demo again opens nothing new. Returns
/// how many sample tickets there are.
async fn demo_tickets(
    platform: &Platform,
    tenant: ventanilla_kernel::TenantId,
) -> anyhow::Result<usize> {
    use ventanilla_tickets::service::{OpenRequest, Origin, Tickets};
    let tickets = Tickets::new(Arc::clone(&platform.log));
    let department = tickets
        .tenancy()
        .directory(tenant)
        .await?
        .departments()
        .next()
        .map(|d| d.id.0);
    let samples = [
        (
            "question",
            None,
            "Farola fundida en la calle Mayor",
            "La farola frente al número 12 de la calle Mayor lleva una semana apagada.",
        ),
        (
            "suggestion",
            None,
            "Más bancos en el parque",
            "Propongo poner bancos a la sombra junto al parque infantil.",
        ),
        (
            "question_for",
            department,
            "Licencia para una obra menor",
            "¿Qué documentos necesito para cambiar las ventanas de mi casa?",
        ),
    ];
    let mut opened = 0;
    for (n, (kind, department, subject, body)) in samples.into_iter().enumerate() {
        if kind == "question_for" && department.is_none() {
            continue;
        }
        let request = OpenRequest {
            kind: kind.into(),
            department,
            name: Some("Vecina de Villademo".into()),
            email: Some("vecina@demo.ventanilla.test".into()),
            subject: subject.into(),
            body: body.into(),
            notify: true,
            idempotency_key: Some(uuid::Uuid::from_u128(0xde30_0000 + n as u128)),
            ..OpenRequest::default()
        };
        tickets
            .open(tenant, Origin::Web, &request)
            .await
            .map_err(|e| anyhow::anyhow!("opening the demo ticket {subject:?}: {e}"))?;
        opened += 1;
    }
    Ok(opened)
}

/// Links, once, the demo council to the simulated Facebook Page and X
/// account (development credentials of `ventanilla_social::simulator`).
/// `None` when no credentials key is configured.
async fn demo_accounts(
    platform: &Platform,
    settings: &Settings,
    tenant: ventanilla_kernel::TenantId,
    admin: ventanilla_tenants_domain::staff::StaffId,
) -> anyhow::Result<Option<usize>> {
    use secrecy::SecretString;
    use ventanilla_social::accounts::{Accounts, LinkRequest};
    use ventanilla_social::simulator as sim;
    let Some(key) = settings.social.credentials_key.as_ref() else {
        return Ok(None);
    };
    let accounts = Accounts::new(
        Arc::clone(&platform.log),
        Some(key),
        &settings.social.public_url,
    );
    let linked = accounts.linked(tenant).await?;
    for (network, external_id, name, token, secret, verify) in [
        (
            "facebook",
            sim::PAGE_ID,
            "Ayuntamiento de Villademo (simulado)",
            sim::PAGE_TOKEN,
            sim::APP_SECRET,
            Some(sim::VERIFY_TOKEN),
        ),
        (
            "x",
            sim::X_USER_ID,
            "@villademo (simulado)",
            sim::X_TOKEN,
            sim::CONSUMER_SECRET,
            None,
        ),
    ] {
        if linked.iter().any(|a| a.network == network) {
            continue;
        }
        accounts
            .link(
                tenant,
                admin,
                &LinkRequest {
                    network: network.into(),
                    external_id: external_id.into(),
                    name: name.into(),
                    access_token: SecretString::from(token),
                    signing_secret: SecretString::from(secret),
                    verify_token: verify.map(SecretString::from),
                    human_agent: true,
                    instance: None,
                    handle: None,
                    publish_to: None,
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("linking the demo's simulated {network} account: {e}"))?;
    }
    link_new_channels(&accounts, tenant, admin).await?;
    Ok(Some(accounts.linked(tenant).await?.len()))
}

/// Links, once, the demo council's simulated Telegram bot, WhatsApp number,
/// Mastodon and Bluesky accounts and mailbox (the simulator answers for
/// them; see `ventanilla_social::simulator`). The bot's webhook is
/// registered against a simulated Bot API started here for the purpose.
async fn link_new_channels(
    accounts: &ventanilla_social::accounts::Accounts,
    tenant: ventanilla_kernel::TenantId,
    admin: ventanilla_tenants_domain::staff::StaffId,
) -> anyhow::Result<()> {
    use secrecy::SecretString;
    use ventanilla_social::accounts::LinkRequest;
    use ventanilla_social::fake::{bluesky as fake_bluesky, mastodon as fake_mastodon};
    use ventanilla_social::simulator as sim;
    let linked = accounts.linked(tenant).await?;
    let request = |network: &str, external_id: &str, token: &str| LinkRequest {
        network: network.into(),
        external_id: external_id.into(),
        name: "Ayuntamiento de Villademo (simulado)".into(),
        access_token: SecretString::from(token),
        signing_secret: SecretString::from(""),
        verify_token: None,
        human_agent: false,
        instance: None,
        handle: None,
        publish_to: None,
    };
    let mut wanted = vec![
        LinkRequest {
            signing_secret: SecretString::from(sim::WA_APP_SECRET),
            verify_token: Some(SecretString::from(sim::WA_VERIFY_TOKEN)),
            ..request("whatsapp", sim::WA_PHONE_ID, sim::WA_TOKEN)
        },
        LinkRequest {
            instance: Some(sim::MASTODON_INSTANCE.into()),
            ..request("mastodon", fake_mastodon::ACCOUNT_ID, sim::MASTODON_TOKEN)
        },
        LinkRequest {
            instance: Some(sim::BLUESKY_PDS.into()),
            ..request(
                "bluesky",
                fake_bluesky::OWN_HANDLE,
                fake_bluesky::APP_PASSWORD,
            )
        },
        request("email", sim::MAILBOX, ""),
    ];
    wanted.retain(|r| !linked.iter().any(|a| a.network == r.network));
    for r in &wanted {
        accounts.link(tenant, admin, r).await.map_err(|e| {
            anyhow::anyhow!("linking the demo's simulated {} account: {e}", r.network)
        })?;
    }
    if !linked.iter().any(|a| a.network == "telegram") {
        let bot_api = ventanilla_social::fake::telegram::FakeTelegram::start().await;
        bot_api.add_bot(sim::BOT_TOKEN, sim::BOT_ID, sim::BOT_USERNAME);
        bot_api.accept_any_webhook_url();
        accounts
            .clone()
            .with_telegram(ventanilla_social::telegram::TelegramClient::new(
                bot_api.base_url(),
                reqwest::Client::new(),
            ))
            .link(tenant, admin, &request("telegram", "", sim::BOT_TOKEN))
            .await
            .map_err(|e| anyhow::anyhow!("linking the demo's simulated Telegram bot: {e}"))?;
    }
    Ok(())
}

/// `ventanilla simulate`: sends a signed webhook of a simulated network to
/// the running server, for the tenant's simulated account.
#[allow(clippy::print_stdout)]
pub async fn simulate(
    platform: &Platform,
    settings: &Settings,
    action: &str,
    slug: &str,
    from: &str,
    text: &str,
) -> anyhow::Result<()> {
    use ventanilla_social::accounts::Accounts;
    use ventanilla_social::simulator::{self as sim, Action};
    use ventanilla_social_domain::account::{AccountId, Network};
    use ventanilla_tenants::operator::Operator;
    let Some(action) = Action::parse(action) else {
        let names: Vec<&str> = Action::ALL.iter().map(|(n, _)| *n).collect();
        anyhow::bail!("unknown action {action:?}; use one of {}", names.join(", "));
    };
    let tenant = Operator::new(Arc::clone(&platform.log), "simulator")
        .show(slug)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tenant = ventanilla_kernel::TenantId::from_uuid(tenant.tenant_id);
    let accounts = Accounts::new(
        Arc::clone(&platform.log),
        settings.social.credentials_key.as_ref(),
        &settings.social.public_url,
    );
    let (network, external) = if action.is_meta() {
        (Network::Facebook, sim::PAGE_ID)
    } else {
        (Network::X, sim::X_USER_ID)
    };
    let account = accounts
        .linked(tenant)
        .await?
        .into_iter()
        .find(|a| a.network == network.as_str() && a.external_id == external)
        .ok_or_else(|| anyhow::anyhow!("{slug} has no simulated {} account linked; run `make run` (it links the demo's) first", network.as_str()))?;
    let url = accounts.webhook_url(network, AccountId(account.account_id));
    let (body, header, signature) = sim::webhook(action, from, text);
    let response = reqwest::Client::new()
        .post(&url)
        .header("content-type", "application/json")
        .header(header, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!("could not reach the server at {url}: {e}; is `make run` running?")
        })?;
    let status = response.status();
    println!("POST {url} -> {status}");
    if !status.is_success() {
        anyhow::bail!("the server refused the simulated webhook ({status})");
    }
    println!(
        "The message is on its way to {slug}'s inbox; the agent's reply will show in the server's log as received by the simulated network."
    );
    Ok(())
}

/// `ventanilla simulate telegram|whatsapp|mastodon|mastodon-dm|bluesky|email
/// "text"`: a citizen writes on a channel simulated inside the running
/// server (`make run`), which calls our webhook, queues the mention for
/// the poller, or mails our SMTP receiver.
#[allow(clippy::print_stdout)]
pub async fn simulate_channel(
    platform: &Platform,
    settings: &Settings,
    action: &str,
    slug: &str,
    from: &str,
    text: &str,
) -> anyhow::Result<()> {
    use ventanilla_tenants::operator::Operator;
    let (network, direct) = match action {
        "mastodon-dm" => ("mastodon", true),
        other => (other, false),
    };
    let tenant = Operator::new(Arc::clone(&platform.log), "simulator")
        .show(slug)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let url = format!(
        "{}/simulator/{network}/message",
        settings.social.public_url.trim_end_matches('/')
    );
    let response = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({
            "tenant": tenant.tenant_id, "from": from, "text": text, "direct": direct,
        }))
        .send()
        .await
        .map_err(|e| {
            anyhow::anyhow!("could not reach the server at {url}: {e}; is `make run` running?")
        })?;
    let status = response.status();
    let said = response.text().await.unwrap_or_default();
    if !status.is_success() {
        anyhow::bail!("the simulator refused ({status}): {said}");
    }
    println!("{said}");
    Ok(())
}

/// `ventanilla simulate reply --ticket REF "text"`: the council's first
/// active admin answers a ticket, as an agent would in the console; the
/// reply goes out on the ticket's channel (to the simulated network under
/// `make run`).
#[allow(clippy::print_stdout)]
pub async fn simulate_reply(
    platform: &Platform,
    slug: &str,
    reference: &str,
    text: &str,
) -> anyhow::Result<()> {
    use ventanilla_tenants::operator::Operator;
    use ventanilla_tenants::staff::Staff;
    use ventanilla_tenants_domain::staff::StaffId;
    use ventanilla_tickets::service::{ReplyRequest, Tickets};
    let tenant = Operator::new(Arc::clone(&platform.log), "simulator")
        .show(slug)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tenant = ventanilla_kernel::TenantId::from_uuid(tenant.tenant_id);
    let admin = Staff::new(Arc::clone(&platform.log))
        .list(tenant)
        .await?
        .into_iter()
        .find(|m| m.role == "admin" && m.status == "active")
        .map(|m| StaffId(m.staff_id))
        .ok_or_else(|| anyhow::anyhow!("{slug} has no active admin to answer as"))?;
    let tickets = Tickets::new(Arc::clone(&platform.log));
    let id = tickets
        .by_reference(tenant, admin, reference)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    tickets
        .reply(
            tenant,
            admin,
            id,
            &ReplyRequest {
                body: text.to_owned(),
                ..ReplyRequest::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!(
        "Replied to {reference}; the reply goes out on the ticket's channel (see the server's log)."
    );
    Ok(())
}

/// `simulate subscribe ADDRESS --topic NAME` and `simulate announce TITLE
/// --topic NAME`: a citizen subscribing by e-mail on the portal, and the
/// demo admin publishing an announcement about the topic (until the portal
/// and the console exist). With `make run`, the mail lands in `.local/mail`.
#[allow(clippy::print_stdout)]
pub async fn simulate_notify(
    platform: &Platform,
    settings: &Settings,
    action: &str,
    slug: &str,
    topic: Option<&str>,
    text: &str,
) -> anyhow::Result<()> {
    use ventanilla_tenants::operator::Operator;
    use ventanilla_tenants::staff::Staff;
    use ventanilla_tenants_domain::staff::StaffId;
    use ventanilla_tickets::notify::service::{
        Notifications, NotifyConfig, PublishRequest, SubscribeRequest, TargetRequest, ViaRequest,
    };
    use ventanilla_tickets::service::Origin;
    let tenant = Operator::new(Arc::clone(&platform.log), "simulator")
        .show(slug)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let tenant = ventanilla_kernel::TenantId::from_uuid(tenant.tenant_id);
    let service = Notifications::new(
        Arc::clone(&platform.log),
        NotifyConfig::from_settings(&settings.notify)?,
    );
    let directory = service.tenancy().directory(tenant).await?;
    let wanted = topic.unwrap_or_default().to_lowercase();
    let names: Vec<String> = directory.topics().map(|t| t.name.to_string()).collect();
    let found = directory
        .topics()
        .find(|t| !wanted.is_empty() && t.name.to_string().to_lowercase().starts_with(&wanted))
        .ok_or_else(|| {
            anyhow::anyhow!(
                "give --topic with one of {slug}'s topics: {}",
                names.join(", ")
            )
        })?;
    let name = found.name.to_string();
    match action {
        "subscribe" => {
            let done = service
                .subscribe(
                    tenant,
                    &Origin::Web,
                    &SubscribeRequest {
                        target: TargetRequest::Topic(found.id.0),
                        via: ViaRequest::Email(text.to_owned()),
                        language: None,
                        daily_digest: false,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "{text} asked for \"{name}\" (subscription {}, {}): the confirmation e-mail goes out within a second (with make run, in .local/mail).",
                done.id, done.status
            );
        }
        _ => {
            let admin = Staff::new(Arc::clone(&platform.log))
                .list(tenant)
                .await?
                .into_iter()
                .find(|m| m.role == "admin" && m.status == "active")
                .map(|m| StaffId(m.staff_id))
                .ok_or_else(|| anyhow::anyhow!("{slug} has no active admin to publish as"))?;
            let view = service
                .publish(
                    tenant,
                    admin,
                    &PublishRequest {
                        title: text.to_owned(),
                        body: format!("{text}\n\n(Aviso de demostración sobre «{name}».)"),
                        topics: vec![found.id.0],
                        ..PublishRequest::default()
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            println!(
                "Published \"{text}\" about \"{name}\" (announcement {}): every confirmed subscriber is told within seconds.",
                view.id
            );
        }
    }
    Ok(())
}
