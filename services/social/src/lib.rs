//! The social service: linked social accounts, inbound ingestion from
//! webhooks and polling, outbound delivery of replies and announcements,
//! and channel health.
//!
//! - [`accounts`]: linking accounts, their credentials and health;
//! - [`connector`]: the contract every network's connector meets;
//! - [`meta`]: Facebook Pages, Messenger and Instagram (Graph API);
//! - [`x`]: X (API v2, Account Activity webhooks);
//! - [`mastodon`]: Mastodon (per-instance accounts, mentions polled);
//! - [`telegram`]: Telegram bots (webhooks with a secret token);
//! - [`whatsapp`]: WhatsApp Cloud API (Meta's webhooks, the 24-hour
//!   window);
//! - [`bluesky`]: Bluesky (sessions kept, notifications polled);
//! - [`email`]: e-mail (parsing, threading, replies) and [`mailbox`]: the
//!   SMTP receiver's handler for linked mailboxes;
//! - [`vault`]: credentials encrypted at rest;
//! - [`webhooks`]: the endpoints the networks call; [`ingest`]: recording
//!   what citizens wrote; [`polling`]: X, Mastodon and Bluesky mentions
//!   read by polling;
//!   [`outbound`]: replies and posts queued and sent;
//!   [`publications`]: staff posts on linked accounts; [`announcements`]:
//!   the council's published announcements posted on the accounts they
//!   name;
//! - [`conversations`]: the messages citizens wrote, to answer them;
//! - `fake` (feature `fakes`, and in tests): local servers reproducing the
//!   networks' APIs and signed webhooks; `simulator` (feature `fakes`): the
//!   simulated networks `make run` uses.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use ventanilla_postgres::projection::Projection;
use ventanilla_postgres::{Handler, PgEventLog, Subscription, SubscriptionConfig};
use ventanilla_runtime::config::SocialSettings;
use ventanilla_runtime::{Module, Running, StartContext};

pub mod accounts;
pub mod announcements;
pub mod bluesky;
pub mod connector;
pub mod conversations;
pub mod email;
#[cfg(any(test, feature = "fakes"))]
pub mod fake;
pub mod ingest;
pub mod mailbox;
pub mod mastodon;
pub mod meta;
pub mod outbound;
mod payload;
pub mod polling;
pub mod publications;
#[cfg(feature = "fakes")]
pub mod simulator;
pub mod telegram;
pub mod vault;
pub mod webhooks;
pub mod whatsapp;
pub mod x;

/// The read models this service maintains.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(accounts::AccountsProjection),
        Arc::new(conversations::ConversationsProjection),
    ]
}

/// The social service as a module of the binary: the webhook endpoints,
/// the outbound reactor (subscription [`outbound::SUBSCRIPTION`]: replies
/// and announcements), the delivery worker and the mention poller.
pub struct SocialService {
    log: Arc<PgEventLog>,
    settings: SocialSettings,
    member: String,
}

impl SocialService {
    /// The module over `log` with `settings`; `member` names this process
    /// in consumer groups.
    pub fn new(log: Arc<PgEventLog>, settings: SocialSettings, member: impl Into<String>) -> Self {
        Self {
            log,
            settings,
            member: member.into(),
        }
    }

    /// The accounts service this module uses.
    pub fn accounts(&self) -> accounts::Accounts {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(20))
            .build()
            .unwrap_or_default();
        accounts::Accounts::new(
            Arc::clone(&self.log),
            self.settings.credentials_key.as_ref(),
            &self.settings.public_url,
        )
        .with_telegram(telegram::TelegramClient::new(
            self.settings.telegram_base_url.clone(),
            http,
        ))
    }
}

/// The domain of the platform's Message-IDs and SMTP greeting: the host of
/// its public URL, or `ventanilla.localhost` for an address.
fn mail_domain(public_url: &str) -> String {
    public_url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split(['/', ':']).next())
        .filter(|h| h.contains('.') && h.parse::<std::net::IpAddr>().is_err())
        .map_or_else(
            || "ventanilla.localhost".to_owned(),
            str::to_ascii_lowercase,
        )
}

impl SocialService {
    /// The base URLs of the networks' APIs: the configured ones, or the
    /// simulated networks' when `social.simulator` is set (then also the
    /// simulated networks themselves).
    async fn networks(
        &self,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> anyhow::Result<Networks> {
        if !self.settings.simulator {
            return Ok(Networks {
                graph: self.settings.graph_base_url.clone(),
                x: self.settings.x_base_url.clone(),
                #[cfg(feature = "fakes")]
                simulated: None,
            });
        }
        #[cfg(feature = "fakes")]
        {
            let simulated = Arc::new(simulator::start(shutdown).await);
            Ok(Networks {
                graph: simulated.graph.base_url.clone(),
                x: simulated.x.base_url.clone(),
                simulated: Some(simulated),
            })
        }
        #[cfg(not(feature = "fakes"))]
        {
            let _ = shutdown;
            anyhow::bail!(
                "social.simulator is set, but this binary was built without the simulator (feature `fakes`)"
            )
        }
    }
}

/// Where the networks' APIs are, for this process.
struct Networks {
    graph: String,
    x: String,
    #[cfg(feature = "fakes")]
    simulated: Option<Arc<simulator::Simulated>>,
}

#[async_trait]
impl Module for SocialService {
    fn name(&self) -> &'static str {
        "social"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["projections"]
    }

    async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
        let accounts = self.accounts();
        if self.settings.credentials_key.is_none() {
            tracing::warn!(
                "social.credentials_key is not set: no social account can be linked (set VENTANILLA__SOCIAL__CREDENTIALS_KEY)"
            );
        }
        ctx.add_routes(webhooks::Webhooks::new(accounts.clone(), Arc::clone(&self.log)).router());
        let shutdown = ctx.shutdown();
        let reactor: Arc<dyn Handler> = Arc::new(outbound::OutboundReactor::new(
            accounts.clone(),
            Arc::clone(&self.log),
        ));
        let subscription = Subscription::join(
            Arc::clone(&self.log),
            self.log.pool().clone(),
            SubscriptionConfig::new(outbound::SUBSCRIPTION, &self.member),
            reactor,
        )
        .await?;
        let outbound = tokio::spawn(subscription.run(shutdown.clone()));
        let networks = self.networks(shutdown.clone()).await?;
        let (graph_base, x_base) = (networks.graph.clone(), networks.x.clone());
        let worker = outbound::DeliveryWorker::new(
            accounts,
            Arc::clone(&self.log),
            &graph_base,
            &x_base,
            Duration::from_millis(self.settings.delivery_interval_ms.max(50)),
        )?
        .with_telegram_base(&self.settings.telegram_base_url)?;
        // One Bluesky session per account and process, shared.
        let bluesky = Arc::new(bluesky::Keepers::new(
            reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()?,
        ));
        let mail_domain = mail_domain(&self.settings.public_url);
        #[allow(unused_mut)]
        let mut smtp_url = secrecy::ExposeSecret::expose_secret(&self.settings.smtp_url).to_owned();
        #[cfg(feature = "fakes")]
        if let Some(simulated) = &networks.simulated {
            smtp_url = simulated.mail_relay.clone();
        }
        let mailer = ventanilla_mail::Mailer::new(&ventanilla_mail::MailerConfig {
            url: smtp_url,
            pool_size: 4,
            timeout: Duration::from_secs(30),
        })
        .map_err(|e| anyhow::anyhow!("social.smtp_url: {e}"))?;
        #[allow(unused_mut)]
        let mut worker = worker
            .with_bluesky(Arc::clone(&bluesky))
            .with_mailer(Arc::new(mailer), &mail_domain);
        #[allow(unused_mut)]
        let mut servers = accounts::Servers::default();
        #[cfg(feature = "fakes")]
        if let Some(simulated) = &networks.simulated {
            servers = accounts::Servers {
                mastodon: Some(simulated.mastodon.base_url().to_owned()),
                bluesky: Some(simulated.bluesky.base_url().to_owned()),
            };
            worker = worker
                .with_telegram_base(simulated.telegram.base_url())?
                .with_whatsapp_base(simulated.whatsapp.base_url())?;
            ctx.add_routes(simulator::router(
                Arc::clone(simulated),
                self.accounts(),
                &self.settings.public_url,
                self.settings.mail_bind,
            ));
        }
        let worker = worker.with_servers(servers.clone());
        let worker = tokio::spawn(worker.run(shutdown.clone()));
        // Citizens' mail to linked mailboxes, when a receiver is configured.
        let receiver = match self.settings.mail_bind {
            Some(bind) => {
                let mut config = ventanilla_mail::receiver::ReceiverConfig::new(bind);
                config.hostname = mail_domain.clone();
                config.max_message_bytes = self.settings.mail_max_bytes;
                let handler = Arc::new(mailbox::Mailbox::new(
                    Arc::clone(&self.log),
                    self.accounts().tenancy().clone(),
                    self.settings.mail_max_bytes,
                ));
                let receiver = ventanilla_mail::receiver::SmtpReceiver::start(config, handler)
                    .await
                    .map_err(|e| anyhow::anyhow!("social.mail_bind {bind}: {e}"))?;
                tracing::info!(smtp = %receiver.addr(), "receiving citizens' mail for linked mailboxes");
                Some(receiver)
            }
            None => None,
        };
        let poller = polling::MentionPoller::new(
            self.accounts(),
            Arc::clone(&self.log),
            &x_base,
            Duration::from_secs(self.settings.poll_interval_secs.max(5)),
        )?
        .with_bluesky(bluesky)
        .with_servers(servers);
        let poller = tokio::spawn(poller.run(shutdown.clone()));
        tracing::info!(
            service = "social",
            "started: webhooks, outbound reactor, delivery worker"
        );
        Ok(Running::new(async move {
            outbound.await??;
            worker.await?;
            poller.await?;
            if let Some(receiver) = receiver {
                receiver.shutdown().await;
            }
            Ok(())
        }))
    }
}
