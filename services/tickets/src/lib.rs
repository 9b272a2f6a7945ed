//! The tickets service: the three citizen requests as tickets, the inbox
//! staff work them in, response-time clocks, presence figures, and tickets
//! from what citizens write on social networks.
//!
//! - [`service`]: [`service::Tickets`], what citizens, integrators, staff and
//!   deliverers ask of the service;
//! - [`inbox`]: the `inbox` projection (`tickets`, `ticket_messages`,
//!   `ticket_timeline`) and its queries;
//! - [`inbound`]: the reactor that turns social messages into tickets;
//! - [`timers`]: the breach timer of the response-time clocks;
//! - [`notify`]: "Avísame cuando…" — subscriptions, announcements and the
//!   notifications they cause;
//! - [`health`]: the presence-health figures;
//! - [`synthetic`]: the statement the scale tests and the benchmark fill the
//!   inbox read model with;
//! - [`error`]: refusals and their API codes.
//!
//! The domain (deciders) is the `ventanilla-tickets-domain` crate; what the
//! service reads of the tenants service's events (active tenant, staff,
//! directory, business hours) is the `ventanilla-tenancy` crate. Each
//! method takes the tenant as an argument: the gateway (issue #8) passes the
//! authenticated principal's, never one from input.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_trait::async_trait;
use ventanilla_postgres::projection::Projection;
use ventanilla_postgres::{Handler, PgEventLog, Subscription, SubscriptionConfig};
use ventanilla_runtime::config::NotifySettings;
use ventanilla_runtime::{Module, Running, StartContext};

pub mod error;
pub mod health;
pub mod inbound;
pub mod inbox;
pub mod notify;
pub mod service;
pub mod synthetic;
pub mod timers;

/// The read models this service maintains.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![
        Arc::new(inbox::InboxProjection),
        Arc::new(notify::projection::NotifyProjection),
    ]
}

/// The tickets service as a module of the binary: in its process it runs
/// the inbound reactor (social messages → tickets, subscription
/// [`inbound::SUBSCRIPTION`]) and the breach timer. Several processes share
/// the reactor's work through its consumer group; their timers may overlap
/// harmlessly (the decider records a breach once).
pub struct TicketsService {
    log: Arc<PgEventLog>,
    member: String,
    breach_interval: Duration,
    notify: Option<NotifySettings>,
}

impl TicketsService {
    /// The module over `log`; `member` names this process in consumer
    /// groups (unique per process).
    pub fn new(log: Arc<PgEventLog>, member: impl Into<String>) -> Self {
        Self {
            log,
            member: member.into(),
            breach_interval: Duration::from_secs(15),
            notify: None,
        }
    }

    /// Also runs "Avísame cuando…": the fan-out reactor, the notification
    /// worker, the digest and expiry timers and the citizens' pages.
    pub fn with_notify(mut self, settings: NotifySettings) -> Self {
        self.notify = Some(settings);
        self
    }

    /// How often the breach timer looks for overdue clocks (default 15 s).
    pub fn with_breach_interval(mut self, interval: Duration) -> Self {
        self.breach_interval = interval;
        self
    }
}

#[async_trait]
impl Module for TicketsService {
    fn name(&self) -> &'static str {
        "tickets"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["projections"]
    }

    async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
        let tickets = service::Tickets::new(Arc::clone(&self.log));
        let shutdown = ctx.shutdown();
        let reactor: Arc<dyn Handler> = Arc::new(inbound::InboundReactor::new(tickets.clone()));
        let subscription = Subscription::join(
            Arc::clone(&self.log),
            self.log.pool().clone(),
            SubscriptionConfig {
                // Small batches: the batch's tickets become visible when it
                // commits, so a message reaches the inbox within a second
                // even under load.
                batch_size: 50,
                ..SubscriptionConfig::new(inbound::SUBSCRIPTION, &self.member)
            },
            reactor,
        )
        .await?;
        let inbound = tokio::spawn(subscription.run(shutdown.clone()));
        let timer = tokio::spawn(
            timers::BreachTimer::new(tickets, self.breach_interval).run(shutdown.clone()),
        );
        let notify = match &self.notify {
            Some(settings) => Some(
                notify::start(ctx, Arc::clone(&self.log), &self.member, settings)
                    .await
                    .context("starting notifications")?,
            ),
            None => None,
        };
        tracing::info!(
            service = "tickets",
            notifications = notify.is_some(),
            "started: inbound reactor and breach timer"
        );
        Ok(Running::new(async move {
            inbound.await??;
            timer.await?;
            if let Some(notify) = notify {
                notify.await??;
            }
            Ok(())
        }))
    }
}
