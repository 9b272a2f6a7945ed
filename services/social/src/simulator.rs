//! The simulator for newcomers: with `social.simulator = true` (what
//! `make run` sets), `serve` runs the local fakes of the Graph API and the X
//! API in its own process and sends replies there, logging what each
//! simulated network received; the demo council's accounts are linked to
//! them with the development credentials below; and `ventanilla simulate …`
//! sends a realistic signed webhook to the running server — so anyone can
//! watch a message become a ticket and the answer go out, with no real
//! credentials.
//!
//! What this module must not do: run unless asked (it is compiled only with
//! the `fakes` feature, and `serve` starts it only with the setting), or be
//! pointed at a real network.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::fake::{meta as fake_meta, x as fake_x};

/// The simulated Facebook Page's id.
pub const PAGE_ID: &str = "100000000000001";
/// The simulated page token.
pub const PAGE_TOKEN: &str = "simulated-page-token";
/// The simulated Meta app secret (webhooks are signed with it).
pub const APP_SECRET: &str = "simulated-app-secret";
/// The simulated Meta verification token.
pub const VERIFY_TOKEN: &str = "simulated-verify-token";
/// The simulated X account's user id.
pub const X_USER_ID: &str = "1500000000000000001";
/// The simulated X user token.
pub const X_TOKEN: &str = "simulated-x-token";
/// The simulated X consumer secret (webhooks are signed with it).
pub const CONSUMER_SECRET: &str = "simulated-consumer-secret";
/// The demo's simulated Telegram bot's token.
pub const BOT_TOKEN: &str = "7000000009:AAsimulatedDemoBotToken_abcdefghijklmn";
/// The bot's id.
pub const BOT_ID: i64 = 7_000_000_009;
/// The bot's username.
pub const BOT_USERNAME: &str = "villademo_bot";
/// The demo's simulated WhatsApp phone-number id.
pub const WA_PHONE_ID: &str = "106540352242999";
/// Its system user token.
pub const WA_TOKEN: &str = "simulated-whatsapp-token";
/// The app secret its webhooks are signed with.
pub const WA_APP_SECRET: &str = "simulated-whatsapp-app-secret";
/// Its webhook verification token.
pub const WA_VERIFY_TOKEN: &str = "simulated-whatsapp-verify";
/// The demo's simulated Mastodon token.
pub const MASTODON_TOKEN: &str = "simulated-mastodon-token";
/// The instance the demo's Mastodon account is linked with (the simulator
/// answers for it).
pub const MASTODON_INSTANCE: &str = "https://mastodon.simulated.test";
/// The PDS the demo's Bluesky account is linked with (likewise).
pub const BLUESKY_PDS: &str = "https://bluesky.simulated.test";
/// The demo's mailbox.
pub const MAILBOX: &str = "villademo@correo.ventanilla.test";

/// The simulated networks running in this process.
pub struct Simulated {
    /// The fake Graph API.
    pub graph: Arc<fake_meta::FakeGraph>,
    /// The fake X API.
    pub x: Arc<fake_x::FakeX>,
    /// The simulated Bot API (the demo's bot).
    pub telegram: Arc<crate::fake::telegram::FakeTelegram>,
    /// The simulated WhatsApp Cloud API.
    pub whatsapp: Arc<crate::fake::whatsapp::FakeWhatsApp>,
    /// The simulated Mastodon instance (every Mastodon account's, here).
    pub mastodon: Arc<crate::fake::mastodon::FakeMastodon>,
    /// The simulated Bluesky PDS (every Bluesky account's, here).
    pub bluesky: Arc<crate::fake::bluesky::FakeBluesky>,
    /// The `smtp://` URL of a local SMTP server replies by e-mail go to
    /// (each kept under `.local/mail/`).
    pub mail_relay: String,
}

/// Starts the simulated networks, accepting the development tokens, and a
/// task that logs every request they receive until `shutdown` (the task
/// keeps them running until then).
pub async fn start(shutdown: CancellationToken) -> Simulated {
    let graph = fake_meta::start().await;
    graph.allow_token(PAGE_TOKEN);
    let x = fake_x::start().await;
    x.allow_token(X_TOKEN, X_USER_ID);
    tracing::warn!(
        graph = %graph.base_url, x = %x.base_url,
        "SIMULATOR: replies go to local simulated Facebook and X APIs, not to the real networks"
    );
    let telegram = crate::fake::telegram::FakeTelegram::start().await;
    telegram.add_bot(BOT_TOKEN, BOT_ID, BOT_USERNAME);
    telegram.accept_any_webhook_url();
    let whatsapp = crate::fake::whatsapp::FakeWhatsApp::start().await;
    whatsapp.allow_token(WA_TOKEN);
    let mastodon = crate::fake::mastodon::start().await;
    mastodon.allow_token(MASTODON_TOKEN);
    let bluesky = crate::fake::bluesky::FakeBluesky::start().await;
    tracing::warn!(
        telegram = telegram.base_url(),
        whatsapp = whatsapp.base_url(),
        mastodon = mastodon.base_url(),
        bluesky = bluesky.base_url(),
        "SIMULATOR: Telegram, WhatsApp, Mastodon and Bluesky are simulated too"
    );
    let (telegram, whatsapp, mastodon, bluesky) = (
        Arc::new(telegram),
        Arc::new(whatsapp),
        Arc::new(mastodon),
        Arc::new(bluesky),
    );
    let (graph, x) = (Arc::new(graph), Arc::new(x));
    let later = shutdown.clone();
    let mail_relay = match ventanilla_mail::sink::SmtpSink::start().await {
        Ok(sink) => {
            let url = sink.url();
            drop(sink.keep_in(".local/mail".into(), "replies", shutdown.clone()));
            url
        }
        Err(e) => {
            tracing::warn!(error = %e, "the simulated mail relay could not start; replies by e-mail will wait");
            "smtp://127.0.0.1:25".to_owned()
        }
    };
    let (g, t) = (Arc::clone(&graph), Arc::clone(&x));
    tokio::spawn(async move {
        let mut seen = (0usize, 0usize);
        let mut every = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => {
                    let graph_requests = g.requests();
                    for r in graph_requests.iter().skip(seen.0) {
                        let body = r.body.as_ref().map(ToString::to_string).unwrap_or_default();
                        tracing::info!(network = "facebook (simulated)", method = %r.method, path = %r.path, body, "the simulated network received");
                    }
                    let x_requests = t.requests();
                    for r in x_requests.iter().skip(seen.1) {
                        let body = r.body.as_ref().map(ToString::to_string).unwrap_or_default();
                        tracing::info!(network = "x (simulated)", method = %r.method, path = %r.path, body, "the simulated network received");
                    }
                    seen = (graph_requests.len(), x_requests.len());
                }
            }
        }
    });
    {
        let (tg, wa, ma, bs) = (
            Arc::clone(&telegram),
            Arc::clone(&whatsapp),
            Arc::clone(&mastodon),
            Arc::clone(&bluesky),
        );
        let shutdown = later;
        tokio::spawn(async move {
            let mut seen = (0usize, 0usize, 0usize, 0usize);
            let mut every = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = every.tick() => {
                        let sent = tg.sent();
                        for m in sent.iter().skip(seen.0) {
                            tracing::info!(network = "telegram (simulated)", chat = m.chat_id, text = %m.text, "the simulated network received");
                        }
                        let wa_sent = wa.sent();
                        for m in wa_sent.iter().skip(seen.1) {
                            tracing::info!(network = "whatsapp (simulated)", to = %m.to, text = %m.body, "the simulated network received");
                        }
                        let statuses = ma.statuses();
                        for m in statuses.iter().skip(seen.2) {
                            tracing::info!(network = "mastodon (simulated)", visibility = %m.visibility, text = %m.text, "the simulated network received");
                        }
                        let records = bs.records();
                        for r in records.iter().skip(seen.3) {
                            tracing::info!(network = "bluesky (simulated)", record = %r.record, "the simulated network received");
                        }
                        seen = (sent.len(), wa_sent.len(), statuses.len(), records.len());
                    }
                }
            }
        });
    }
    Simulated {
        graph,
        x,
        telegram,
        whatsapp,
        mastodon,
        bluesky,
        mail_relay,
    }
}

/// What `POST /simulator/{network}/message` is asked.
#[derive(Debug, serde::Deserialize)]
pub struct SimulatedMessage {
    /// The tenant whose account receives it.
    pub tenant: Uuid,
    /// The citizen (an id, a handle, an address: each network its own).
    pub from: String,
    /// What they write.
    pub text: String,
    /// A private message rather than a public mention (Mastodon).
    #[serde(default)]
    pub direct: bool,
}

/// What the simulator's route needs.
#[derive(Clone)]
struct Route {
    simulated: Arc<Simulated>,
    accounts: crate::accounts::Accounts,
    public_url: String,
    mail_bind: Option<std::net::SocketAddr>,
    http: reqwest::Client,
    updates: Arc<std::sync::atomic::AtomicI64>,
}

/// `POST /simulator/{network}/message` (simulator mode only): a citizen
/// writes on a simulated network — for the networks that call us, the
/// simulated network calls our webhook (signed, with the account's secret);
/// for the polled ones, the mention waits on the simulated server for the
/// poller; a mail goes to our SMTP receiver.
pub fn router(
    simulated: Arc<Simulated>,
    accounts: crate::accounts::Accounts,
    public_url: &str,
    mail_bind: Option<std::net::SocketAddr>,
) -> axum::Router {
    axum::Router::new()
        .route(
            "/simulator/{network}/message",
            axum::routing::post(simulate_message),
        )
        .with_state(Route {
            simulated,
            accounts,
            public_url: public_url.trim_end_matches('/').to_owned(),
            mail_bind,
            http: reqwest::Client::new(),
            updates: Arc::new(std::sync::atomic::AtomicI64::new(Utc::now().timestamp())),
        })
}

async fn simulate_message(
    axum::extract::State(r): axum::extract::State<Route>,
    axum::extract::Path(network): axum::extract::Path<String>,
    axum::Json(m): axum::Json<SimulatedMessage>,
) -> (axum::http::StatusCode, String) {
    match simulate_one(&r, &network, &m).await {
        Ok(said) => (axum::http::StatusCode::OK, said),
        Err(e) => (axum::http::StatusCode::BAD_REQUEST, e.to_string()),
    }
}

/// POSTs a signed delivery to our own webhook.
async fn post_webhook(
    http: &reqwest::Client,
    url: String,
    header: &'static str,
    value: String,
    body: Vec<u8>,
) -> anyhow::Result<()> {
    let status = http
        .post(&url)
        .header(header, value)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?
        .status();
    anyhow::ensure!(status.is_success(), "our webhook answered {status}");
    Ok(())
}

async fn simulate_one(r: &Route, network: &str, m: &SimulatedMessage) -> anyhow::Result<String> {
    use secrecy::ExposeSecret;
    use ventanilla_social_domain::account::AccountId;
    let tenant = ventanilla_kernel::TenantId::from_uuid(m.tenant);
    let account = r
        .accounts
        .linked(tenant)
        .await?
        .into_iter()
        .find(|a| a.network == network)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "the tenant has no linked {network} account (make run links the demo's)"
            )
        })?;
    let id = AccountId(account.account_id);
    match network {
        "telegram" => {
            let creds = r.accounts.credentials(tenant, id).await?;
            let chat: i64 = m.from.parse().unwrap_or(4_242_424_242);
            let update_id = r.updates.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let citizen =
                crate::fake::telegram::TelegramUser::new(chat, "Vecina", Some("vecina_simulada"));
            let body = r
                .simulated
                .telegram
                .update_message(update_id, chat, &citizen, &m.text, None);
            post_webhook(
                &r.http,
                format!("{}/webhooks/telegram/{}", r.public_url, id.0),
                crate::telegram::SECRET_HEADER,
                creds.signing_secret.expose_secret().to_owned(),
                body,
            )
            .await?;
            Ok("the simulated Telegram delivered the update".into())
        }
        "whatsapp" => {
            let creds = r.accounts.credentials(tenant, id).await?;
            let now = Utc::now();
            r.simulated.whatsapp.set_last_inbound(&m.from, now);
            let payload = crate::fake::whatsapp::text_message(
                &creds.external_id,
                &m.from,
                "Vecina simulada",
                &format!("wamid.SIM{}", Uuid::new_v4().simple()),
                &m.text,
                now.timestamp(),
            );
            let (body, signature) = crate::fake::whatsapp::signed_webhook(
                creds.signing_secret.expose_secret(),
                &payload,
            );
            post_webhook(
                &r.http,
                format!("{}/webhooks/whatsapp/{}", r.public_url, id.0),
                "x-hub-signature-256",
                signature,
                body,
            )
            .await?;
            Ok("the simulated WhatsApp delivered the message".into())
        }
        "mastodon" => {
            let acct = if m.from.contains('@') {
                m.from.trim_start_matches('@').to_owned()
            } else {
                format!("{}@vecindario.social", m.from)
            };
            let visibility = if m.direct { "direct" } else { "public" };
            r.simulated.mastodon.push_mention(
                &acct,
                &format!("@concello {}", m.text),
                visibility,
                None,
            );
            Ok("the mention waits on the simulated instance: the poller reads it within social.poll_interval_secs".into())
        }
        "bluesky" => {
            let handle = if m.from.contains('.') {
                m.from.trim_start_matches('@').to_owned()
            } else {
                format!("{}.bsky.social", m.from)
            };
            r.simulated.bluesky.push_mention(&handle, &m.text, None);
            Ok("the mention waits on the simulated PDS: the poller reads it within social.poll_interval_secs".into())
        }
        "email" => {
            let bind = r
                .mail_bind
                .ok_or_else(|| anyhow::anyhow!("no SMTP receiver runs here (social.mail_bind)"))?;
            let from = if m.from.contains('@') {
                m.from.clone()
            } else {
                "vecina@example.org".to_owned()
            };
            let subject: String = m
                .text
                .split_whitespace()
                .take(8)
                .collect::<Vec<_>>()
                .join(" ");
            let mailer = ventanilla_mail::Mailer::new(&ventanilla_mail::MailerConfig {
                url: format!("smtp://{bind}"),
                pool_size: 1,
                timeout: Duration::from_secs(10),
            })?;
            let mail = ventanilla_mail::OutgoingMail::new(
                format!("{}@example.org", Uuid::new_v4().simple()),
                ventanilla_mail::Address::named("Vecina simulada", from),
                ventanilla_mail::Address::new(account.external_id.clone()),
                subject,
                m.text.clone(),
            );
            mailer.send(&mail).await?;
            Ok(format!(
                "a mail went to {} through our SMTP receiver",
                account.external_id
            ))
        }
        other => anyhow::bail!(
            "{other} is not simulated here; use telegram, whatsapp, mastodon, bluesky or email"
        ),
    }
}

/// What a citizen can do in the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A comment on the page's latest post.
    FacebookComment,
    /// A Messenger message to the page.
    Messenger,
    /// A mention of the X account.
    XMention,
    /// A direct message to the X account.
    XDirectMessage,
}

impl Action {
    /// Every action, as the command line names them.
    pub const ALL: [(&'static str, Action); 4] = [
        ("facebook-comment", Action::FacebookComment),
        ("messenger", Action::Messenger),
        ("x-mention", Action::XMention),
        ("x-dm", Action::XDirectMessage),
    ];

    /// The action named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// Whether it goes to the Meta webhook (else X's).
    pub fn is_meta(self) -> bool {
        matches!(self, Action::FacebookComment | Action::Messenger)
    }
}

/// A signed webhook for `action` by the citizen `citizen` (a stable id:
/// the same citizen's messages continue one conversation), saying `text`:
/// the body, the signature header's name and its value.
pub fn webhook(action: Action, citizen: &str, text: &str) -> (Vec<u8>, &'static str, String) {
    let n = Uuid::new_v4().simple().to_string();
    let now = Utc::now();
    let digits: String = n
        .chars()
        .map(|c| char::from(b'0' + (c as u8 % 10)))
        .take(15)
        .collect();
    let payload = match action {
        Action::FacebookComment => fake_meta::feed_comment(
            PAGE_ID,
            &format!("{PAGE_ID}_1"),
            &format!("{PAGE_ID}_1_{digits}"),
            citizen,
            "Vecina simulada",
            text,
            "add",
            now.timestamp(),
        ),
        Action::Messenger => fake_meta::messenger_message(
            PAGE_ID,
            citizen,
            &format!("m_{n}"),
            text,
            now.timestamp_millis(),
        ),
        Action::XMention => fake_x::mention_event(
            X_USER_ID,
            &format!("18{digits}"),
            &format!("@concello_demo {text}"),
            citizen,
            "vecina_simulada",
            None,
            now.timestamp_millis(),
        ),
        Action::XDirectMessage => fake_x::dm_event(
            X_USER_ID,
            &format!("17{digits}"),
            citizen,
            X_USER_ID,
            "vecina_simulada",
            text,
            now.timestamp_millis(),
        ),
    };
    if action.is_meta() {
        let (body, signature) = fake_meta::signed_webhook(APP_SECRET, &payload);
        (body, "x-hub-signature-256", signature)
    } else {
        let (body, signature) = fake_x::signed_webhook(CONSUMER_SECRET, &payload);
        (body, "x-twitter-webhooks-signature", signature)
    }
}
