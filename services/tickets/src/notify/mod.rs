//! "Avísame cuando…": citizens subscribe to a topic or a case and are told
//! — by e-mail, or for integrators at a signed webhook — when the council
//! publishes an announcement about it or the case moves.
//!
//! - [`service`]: [`service::Notifications`] — subscribe, confirm, leave,
//!   manage; publish announcements; the tenant's sender;
//! - [`projection`]: the `notify` read model (subscriptions, announcements);
//! - [`fanout`]: the reactor that queues one notification per subscriber
//!   for each cause, in its transaction;
//! - [`worker`]: sends the queued notifications (SMTP, webhooks) with
//!   retries, records bounces and webhook failures, and folds daily digests;
//! - [`render`]: what the messages and pages say, in five languages;
//! - [`links`]: the signed links and derived webhook secrets;
//! - [`pages`]: the citizens' confirm / unsubscribe / manage pages;
//! - [`error`]: refusals and their API codes.
//!
//! Announcements are also posted on the chosen social accounts: the social
//! service reads `announcement.published` itself.

pub mod error;
pub mod fanout;
pub mod links;
pub mod pages;
pub mod projection;
pub mod render;
pub mod service;
pub mod worker;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::Utc;
use secrecy::ExposeSecret;
use ventanilla_postgres::{Handler, PgEventLog, Subscription, SubscriptionConfig};
use ventanilla_runtime::StartContext;
use ventanilla_runtime::config::NotifySettings;

/// How often the digest and expiry timers look for work.
pub const TIMER_INTERVAL: Duration = Duration::from_secs(60);

/// Starts notifications in this process: the fan-out reactor (a member of
/// its consumer group), the worker, the digest and expiry timers, the
/// citizens' pages, and — with `notify.mail_sink` — a local SMTP server
/// keeping what it receives under `.local/mail`. Returns the task to await.
pub async fn start(
    ctx: &mut StartContext,
    log: Arc<PgEventLog>,
    member: &str,
    settings: &NotifySettings,
) -> anyhow::Result<tokio::task::JoinHandle<anyhow::Result<()>>> {
    let config = Arc::new(service::NotifyConfig::from_settings(settings)?);
    if config.key.is_none() {
        tracing::warn!(
            "notify.key is not set: e-mail and webhook subscriptions are refused (set VENTANILLA__NOTIFY__KEY)"
        );
    }
    let service = service::Notifications::new(Arc::clone(&log), (*config).clone());
    ctx.add_routes(pages::router(service.clone()));
    let shutdown = ctx.shutdown();
    #[allow(unused_mut)]
    let mut smtp_url = settings.smtp_url.expose_secret().to_owned();
    #[allow(unused_mut)]
    let mut sink_task: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
    #[cfg(feature = "mail-sink")]
    if settings.mail_sink {
        let (url, task) = sink::start(shutdown.clone()).await?;
        smtp_url = url;
        sink_task = Some(task);
    }
    #[cfg(not(feature = "mail-sink"))]
    if settings.mail_sink {
        anyhow::bail!("notify.mail_sink needs a binary built with the mail-sink feature");
    }
    let mailer = ventanilla_mail::Mailer::new(&ventanilla_mail::MailerConfig {
        url: std::mem::take(&mut smtp_url),
        pool_size: settings.smtp_pool.max(1),
        timeout: Duration::from_secs(30),
    })
    .map_err(|e| anyhow::anyhow!("notify.smtp_url: {e}"))?;
    let webhooks = ventanilla_webhooks::Sender::new(Duration::from_secs(10), config.url_policy)
        .map_err(|e| anyhow::anyhow!("the webhook client: {e}"))?;
    let reactor: Arc<dyn Handler> = Arc::new(fanout::FanoutReactor::new(
        Arc::clone(&log),
        service.tenancy().clone(),
        settings.digest_hour,
    ));
    let subscription = Subscription::join(
        Arc::clone(&log),
        log.pool().clone(),
        SubscriptionConfig {
            batch_size: 50,
            ..SubscriptionConfig::new(fanout::SUBSCRIPTION, member)
        },
        reactor,
    )
    .await
    .context("joining the fan-out reactor's group")?;
    let reactor = tokio::spawn(subscription.run(shutdown.clone()));
    let worker = worker::NotifyWorker::new(
        Arc::clone(&log),
        Arc::clone(&config),
        Some(Arc::new(mailer)),
        Arc::new(webhooks),
        worker::WorkerSettings {
            concurrency: settings.concurrency.max(1),
            sender_address: settings.sender_address.clone(),
        },
    );
    let interval = Duration::from_millis(settings.interval_ms.max(20));
    let sending = {
        let worker = worker.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            ventanilla_runtime::ticker::every(
                interval,
                shutdown,
                "the notification worker",
                || async { worker.drain().await },
            )
            .await;
        })
    };
    let timers = tokio::spawn(async move {
        ventanilla_runtime::ticker::every(
            TIMER_INTERVAL,
            shutdown,
            "the digest and expiry timers",
            || async {
                let now = Utc::now();
                worker.queue_digests(now).await?;
                service.expire_due(now).await?;
                Ok(())
            },
        )
        .await;
    });
    Ok(tokio::spawn(async move {
        reactor.await??;
        sending.await?;
        timers.await?;
        if let Some(task) = sink_task {
            task.await??;
        }
        Ok(())
    }))
}

#[cfg(feature = "mail-sink")]
pub mod sink;
