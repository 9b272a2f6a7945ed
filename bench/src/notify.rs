//! `BENCH notify.fanout`: an announcement to [`SUBSCRIBERS`] confirmed
//! e-mail subscribers, from the publish call to the last message received
//! by a local SMTP server — through the real pipeline as `serve` runs it:
//! the `notify` projection, the fan-out reactor (subscription
//! `notify:fanout`) and the notification worker (claims in batches,
//! [`CONCURRENCY`] sends at a time over a pool of as many SMTP connections,
//! records outcomes), on a fresh database.
//!
//! Baseline, in the same run, alternating with the subject: the same
//! number of already-rendered messages sent with the same mail client,
//! pool and concurrency to the same server — the least sending them costs.
//! The ratio is subject over baseline (medians of [`ROUNDS`] rounds each).
//!
//! Also printed: `first_ms` (publish → first message), `confirm_ms` (a
//! citizen who subscribes while the announcement is going out gets the
//! confirmation after this long: urgent mail overtakes the bulk), and
//! `rss_growth_mb` (the process's peak resident memory over the subject
//! rounds minus its peak after the first baseline round: what the pipeline
//! adds — notifications are not held in memory; the local server's
//! messages are counted and dropped as they arrive in both).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use chrono::Utc;
use futures::StreamExt as _;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use ventanilla_eventlog::{
    CommandContext, CommandRunner, DomainEvent, EventLog, ExpectedVersion, Limits, Metadata,
    NewEvent,
};
use ventanilla_kernel::{Actor, EventId, TenantId};
use ventanilla_mail::sink::SmtpSink;
use ventanilla_mail::{Address, Mailer, MailerConfig, OutgoingMail};
use ventanilla_postgres::projection::{Projection, ensure_caught_up};
use ventanilla_postgres::{Handler, PgEventLog, Subscription, SubscriptionConfig};
use ventanilla_tenants::operator::{Operator, ProvisionRequest};
use ventanilla_tenants::organisation::Organisation;
use ventanilla_tenants::secrets;
use ventanilla_tenants_domain::staff::{self, PasswordHash, StaffCommand, StaffId, StaffMember};
use ventanilla_testkit::TestDb;
use ventanilla_tickets::notify::fanout::FanoutReactor;
use ventanilla_tickets::notify::projection::NotifyProjection;
use ventanilla_tickets::notify::service::{
    Notifications, NotifyConfig, PublishRequest, SubscribeRequest, TargetRequest, ViaRequest,
};
use ventanilla_tickets::notify::worker::{NotifyWorker, WorkerSettings};
use ventanilla_tickets::service::Origin;
use ventanilla_tickets_domain::subscription::{SubscriptionEvent, Target, TopicId, Via};
use ventanilla_tickets_domain::values::TrackingTokenHash;
use ventanilla_webhooks::UrlPolicy;

const NAME: &str = "notify.fanout";
/// Subscribers of the topic.
pub const SUBSCRIBERS: usize = 10_000;
/// Sends at a time (and SMTP connections).
pub const CONCURRENCY: usize = 16;
/// Rounds of the subject and of the baseline.
pub const ROUNDS: usize = 3;
const PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";
const KEY: &str = "YmVuY2gtbm90aWZ5LWtleS0zMi1ieXRlcy1sb25nISE=";

fn peak_rss_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
}

async fn council(log: &Arc<PgEventLog>) -> anyhow::Result<(TenantId, StaffId)> {
    let p = Operator::new(Arc::clone(log), "bench")
        .provision(&ProvisionRequest {
            name: "Concello de Vilanova".into(),
            slug: "vilanova".into(),
            kind: "council".into(),
            plan: Some("municipio".into()),
            admin_email: "alcaldia@vilanova.gal".into(),
            ..ProvisionRequest::default()
        })
        .await
        .map_err(|e| anyhow!("provisioning the council: {e}"))?;
    CommandRunner::new(Arc::clone(log), 3)
        .execute::<StaffMember>(
            &CommandContext::new(p.tenant, Utc::now(), Actor::system("bench")),
            &staff::stream_id(p.admin)?,
            &StaffCommand::AcceptInvitation {
                invitation: secrets::hash_token(&p.invitation_code)?,
                password: PasswordHash::parse("password", PASSWORD_HASH)?,
            },
        )
        .await
        .map_err(|e| anyhow!("activating the admin: {e}"))?;
    Ok((p.tenant, p.admin))
}

/// `n` confirmed e-mail subscriptions to `topic`, written as their events
/// (requested and confirmed, one append each), 8 at a time.
async fn seed(
    log: &Arc<PgEventLog>,
    tenant: TenantId,
    topic: Uuid,
    n: usize,
) -> anyhow::Result<()> {
    let hash = TrackingTokenHash::parse("token", &"0".repeat(64))?;
    let results: Vec<anyhow::Result<()>> = futures::stream::iter(0..n)
        .map(|i| {
            let log = Arc::clone(log);
            let hash = hash.clone();
            async move {
                let id = Uuid::new_v4();
                let now = Utc::now();
                let events = [
                    SubscriptionEvent::Requested {
                        target: Target::Topic(TopicId(topic)),
                        via: Via::Email {
                            address: format!("vecino{i}@correo.test"),
                        },
                        language: if i % 2 == 0 { "es".into() } else { "gl".into() },
                        daily_digest: false,
                        confirmation: Some((hash, now + chrono::Duration::days(2))),
                        at: now,
                    },
                    SubscriptionEvent::Confirmed { at: now },
                ];
                let metadata = Metadata::system("bench", Uuid::new_v4());
                let new = events
                    .iter()
                    .map(|e| NewEvent {
                        id: EventId::from_uuid(Uuid::new_v4()),
                        event_type: e.event_type().to_owned(),
                        schema_version: e.schema_version(),
                        data: e.to_data(),
                        metadata: metadata.clone(),
                    })
                    .collect();
                log.append(
                    tenant,
                    &ventanilla_tickets_domain::subscription::stream_id(
                        ventanilla_tickets_domain::subscription::SubscriptionId(id),
                    )?,
                    ExpectedVersion::NoStream,
                    new,
                )
                .await?;
                Ok(())
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Runs the figure, printing its BENCH line.
pub async fn figure(verdicts: &mut Vec<String>) -> anyhow::Result<()> {
    let started = Instant::now();
    let db = TestDb::new().await;
    let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
    let sink = Arc::new(SmtpSink::start().await?);
    let config = NotifyConfig {
        key: None,
        public_url: "https://ventanilla.bench".into(),
        confirm_for: chrono::Duration::hours(48),
        url_policy: UrlPolicy {
            allow_private: true,
        },
    }
    .with_key(&SecretString::from(KEY))?;
    let service = Notifications::new(Arc::clone(&log), config.clone());
    let (tenant, admin) = council(&log).await?;
    let topic = Organisation::new(Arc::clone(&log))
        .add_topic(tenant, admin, "Campamentos de verano", None)
        .await
        .map_err(|e| anyhow!("adding the topic: {e}"))?
        .0;
    let seeding = Instant::now();
    seed(&log, tenant, topic, SUBSCRIBERS).await?;
    let head = log.committed_head().await?;
    ensure_caught_up(
        Arc::clone(&log),
        db.app.clone(),
        Arc::new(NotifyProjection),
        head,
        Duration::from_secs(300),
    )
    .await?;
    eprintln!(
        "{NAME}: {SUBSCRIBERS} confirmed subscribers seeded and projected in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    // The pipeline, as `serve` runs it.
    let shutdown = CancellationToken::new();
    let reactor: Arc<dyn Handler> = Arc::new(FanoutReactor::new(
        Arc::clone(&log),
        service.tenancy().clone(),
        8,
    ));
    let subscription = Subscription::join(
        Arc::clone(&log),
        db.app.clone(),
        SubscriptionConfig {
            batch_size: 50,
            poll_interval: Duration::from_millis(100),
            ..SubscriptionConfig::new("notify:fanout", "bench")
        },
        reactor,
    )
    .await?;
    let notifications = log.spawn_notifications(shutdown.clone());
    let reactor_task = tokio::spawn(subscription.run(shutdown.clone()));
    let mailer_config = MailerConfig {
        url: sink.url(),
        pool_size: u32::try_from(CONCURRENCY)?,
        timeout: Duration::from_secs(30),
    };
    let worker = NotifyWorker::new(
        Arc::clone(&log),
        Arc::new(config),
        Some(Arc::new(Mailer::new(&mailer_config)?)),
        Arc::new(ventanilla_webhooks::Sender::new(
            Duration::from_secs(5),
            UrlPolicy {
                allow_private: true,
            },
        )?),
        WorkerSettings {
            concurrency: CONCURRENCY,
            sender_address: "no-reply@ventanilla.bench".into(),
        },
    );
    let worker_task = {
        let worker = worker.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            ventanilla_runtime::ticker::every(
                Duration::from_millis(20),
                shutdown,
                "the notification worker",
                || async { worker.drain().await },
            )
            .await;
        })
    };
    // Projections, so that the confirmation during the fan-out shows.
    let projections = ventanilla_postgres::projection::ProjectionRunner::new(
        Arc::clone(&log),
        db.app.clone(),
        "bench",
    )
    .start(
        &[Arc::new(NotifyProjection) as Arc<dyn Projection>],
        shutdown.clone(),
    )
    .await?;

    // Warm-up: the reactor reads the seeded subscriptions' events (queueing
    // confirmations the worker drops: they are confirmed already) and the
    // worker empties the queue before any round starts.
    let warm = Instant::now();
    loop {
        let left: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM notify_outbox WHERE state IN ('pending', 'sending')",
        )
        .fetch_one(&db.admin)
        .await?;
        let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM notify_outbox")
            .fetch_one(&db.admin)
            .await?;
        if left == 0 && queued >= i64::try_from(SUBSCRIBERS)? {
            break;
        }
        if warm.elapsed() > Duration::from_secs(300) {
            return Err(anyhow!("{NAME}: the warm-up did not finish within 300 s"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "  warm-up: the reactor read the seeded events and the worker emptied the queue in {:.1} s",
        warm.elapsed().as_secs_f64()
    );
    let baseline_mailer = Mailer::new(&mailer_config)?;
    let (mut subject, mut baseline, mut firsts, mut confirms) = (vec![], vec![], vec![], vec![]);
    let mut rss_before = 0;
    for round in 0..ROUNDS {
        // Baseline: the same messages, already rendered, straight to SMTP.
        sink.clear();
        let dropper = {
            // Drop what arrives as it comes, as in the subject rounds.
            let stop = CancellationToken::new();
            let (sink, s2) = (Arc::clone(&sink), stop.clone());
            (
                tokio::spawn(async move {
                    let mut n = 0;
                    while !s2.is_cancelled() {
                        n += sink.take().len();
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    n + sink.take().len()
                }),
                stop,
            )
        };
        let t = Instant::now();
        let sent: Vec<Result<(), ventanilla_mail::MailError>> =
            futures::stream::iter(0..SUBSCRIBERS)
                .map(|i| {
                    let mailer = &baseline_mailer;
                    async move {
                        let mut mail = OutgoingMail::new(
                            format!("{}@ventanilla.bench", Uuid::new_v4()),
                            Address::named("Concello de Vilanova", "no-reply@ventanilla.bench"),
                            Address::new(format!("vecino{i}@correo.test")),
                            "Inscrición aberta: campamentos de verano",
                            "Ábrese o prazo.\n\nPrazas limitadas.",
                        );
                        mail.html = Some("<p>Ábrese o prazo.</p><p>Prazas limitadas.</p>".into());
                        mail.list_unsubscribe =
                            Some("https://ventanilla.bench/notify/unsubscribe?t=x".into());
                        mail.auto_submitted = true;
                        mailer.send(&mail).await
                    }
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        dropper.1.cancel();
        let arrived = dropper.0.await?;
        if arrived != SUBSCRIBERS {
            return Err(anyhow!(
                "{NAME}: the baseline's server received {arrived} of {SUBSCRIBERS}"
            ));
        }
        if round == 0 {
            rss_before = peak_rss_kb();
        }
        let failed = sent.iter().filter(|r| r.is_err()).count();
        let secs = t.elapsed().as_secs_f64();
        baseline.push(SUBSCRIBERS as f64 / secs);
        eprintln!(
            "  round {round}: baseline {SUBSCRIBERS} messages in {secs:.2} s ({:.0}/s), {failed} failed",
            SUBSCRIBERS as f64 / secs
        );

        // Subject: publish, and a citizen subscribes while it goes out.
        sink.clear();
        let t = Instant::now();
        service
            .publish(
                tenant,
                admin,
                &PublishRequest {
                    title: format!("Inscrición aberta: campamentos de verano ({round})"),
                    body: "Ábrese o prazo de inscrición.\n\nPrazas limitadas.".into(),
                    link: Some("https://vilanova.gal/campamentos".into()),
                    topics: vec![topic],
                    ..PublishRequest::default()
                },
            )
            .await
            .map_err(|e| anyhow!("publishing: {e}"))?;
        // What arrives is counted and dropped as it comes (the local
        // server would otherwise hold every message in this process).
        let mut received = 0usize;
        let mut first = None;
        while first.is_none() && t.elapsed() < Duration::from_secs(60) {
            received += sink.take().len();
            if received > 0 {
                first = Some(t.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let address = format!("nova{round}@correo.test");
        let asked = Instant::now();
        service
            .subscribe(
                tenant,
                &Origin::Web,
                &SubscribeRequest {
                    target: TargetRequest::Topic(topic),
                    via: ViaRequest::Email(address.clone()),
                    language: None,
                    daily_digest: false,
                },
            )
            .await
            .map_err(|e| anyhow!("subscribing: {e}"))?;
        let mut confirm = None;
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let got = sink.take();
            received += got.len();
            if confirm.is_none() && got.iter().any(|m| m.to.contains(&address)) {
                confirm = Some(asked.elapsed());
            }
            if received > SUBSCRIBERS && confirm.is_some() {
                break;
            }
            if Instant::now() > deadline {
                return Err(anyhow!(
                    "{NAME}: only {received} of {} messages arrived within 300 s",
                    SUBSCRIBERS + 1
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let secs = t.elapsed().as_secs_f64();
        subject.push(SUBSCRIBERS as f64 / secs);
        firsts.push(first.unwrap_or_default().as_secs_f64() * 1000.0);
        confirms.push(confirm.unwrap_or_default().as_secs_f64() * 1000.0);
        eprintln!(
            "  round {round}: announcement to {SUBSCRIBERS} in {secs:.2} s ({:.0}/s), first after {:.0} ms, a confirmation asked meanwhile arrived after {:.0} ms",
            SUBSCRIBERS as f64 / secs,
            firsts.last().unwrap_or(&0.0),
            confirms.last().unwrap_or(&0.0),
        );
    }
    let rss_growth = peak_rss_kb().saturating_sub(rss_before) as f64 / 1024.0;
    let (s, b) = (median(subject), median(baseline));
    let (first_ms, confirm_ms) = (median(firsts), median(confirms));
    let ratio = if b > 0.0 { s / b } else { 0.0 };
    crate::out(&format!(
        "BENCH {NAME} {s:.0} notifications/s baseline={b:.0} ratio={ratio:.2} subscribers={SUBSCRIBERS} first_ms={first_ms:.0} confirm_ms={confirm_ms:.0} rss_growth_mb={rss_growth:.1}",
    ))?;
    verdicts.push(format!(
        "figure {NAME}: {s:.0}/s against a bare SMTP sender's {b:.0}/s (ratio {ratio:.2}); a confirmation overtakes the bulk in {confirm_ms:.0} ms"
    ));
    shutdown.cancel();
    let _ = reactor_task.await.context("the fan-out reactor")?;
    let _ = worker_task.await;
    for p in projections {
        let _ = p.await;
    }
    let _ = notifications.await;
    eprintln!(
        "  {NAME}: figure run time {:.1} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
