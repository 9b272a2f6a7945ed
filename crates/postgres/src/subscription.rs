//! Durable, named subscriptions to the event log, run as consumer groups.
//!
//! A [`Subscription`] reads the log in global order and hands batches to a
//! [`Handler`] inside a PostgreSQL transaction that also stores the new
//! checkpoint: a projection's rows and its checkpoint commit together, so a
//! crash never applies an event twice nor skips one. A reactor with outside
//! effects (sending a message) gets at-least-once delivery and must make its
//! effect idempotent (the event id is a natural key).
//!
//! Consumer groups: the subscription has a fixed number of partitions; a
//! stream's events all fall in one (`StreamId::partition_hash % partitions`).
//! Every member heartbeats; the live members, sorted by id, split the
//! partitions round-robin; a member releases what is no longer its share and
//! claims its share once the previous owner released it or its lease ran
//! out. Before committing, a member re-checks under a row lock that it still
//! owns its partitions at the checkpoints it read from; if not, the batch is
//! rolled back. The design is in `docs/eventlog.md`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgConnection, PgPool};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, instrument, warn};
use ventanilla_eventlog::{EventLog, PartitionFilter, Position, RecordedEvent};
use ventanilla_kernel::TenantId;

use crate::db::set_tenant;

/// Applies events. Called once per tenant of a batch with that tenant's
/// events in log order, inside the batch's transaction. What it writes for a
/// tenant must depend only on that tenant's events (see [`apply_runs`]).
#[async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Applies `events` (all of `tx.tenant()`). An error rolls the whole
    /// batch back; the subscription retries it after a pause.
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()>;
}

/// The batch's transaction, scoped to one tenant on first use: the handler
/// asks for the connection with [`TenantTx::conn`], which sets
/// `app.tenant_id` for the tenant of the run if the transaction is not
/// already scoped to it. A handler that writes nothing for a run costs no
/// round trip.
pub struct TenantTx<'c> {
    conn: &'c mut PgConnection,
    tenant: TenantId,
    scoped_to: &'c mut Option<TenantId>,
}

impl<'c> TenantTx<'c> {
    /// A scope over `conn` for `tenant`; `scoped_to` remembers which tenant
    /// the transaction is set to, across runs.
    pub fn new(
        conn: &'c mut PgConnection,
        tenant: TenantId,
        scoped_to: &'c mut Option<TenantId>,
    ) -> Self {
        Self {
            conn,
            tenant,
            scoped_to,
        }
    }

    /// The tenant of this run.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    /// The connection, with row-level security scoped to this run's tenant.
    pub async fn conn(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if *self.scoped_to != Some(self.tenant) {
            set_tenant(self.conn, self.tenant).await?;
            *self.scoped_to = Some(self.tenant);
        }
        Ok(self.conn)
    }
}

/// Calls `handler` once per tenant of the batch with that tenant's events,
/// in their order, inside `conn`'s transaction.
///
/// The batch is regrouped by tenant (a stable sort): a tenant's events keep
/// their order, but events of different tenants may be applied in another
/// order than the log's. That is sound because a handler's writes for one
/// tenant may depend only on that tenant's events — which row-level security
/// enforces anyway, since a run's transaction sees only its tenant's rows —
/// and the batch commits as a whole. It turns hundreds of interleaved runs
/// into one per tenant.
pub async fn apply_runs(
    handler: &dyn Handler,
    conn: &mut PgConnection,
    events: &mut [RecordedEvent],
) -> anyhow::Result<()> {
    events.sort_by_key(|e| e.tenant_id);
    let mut scoped_to = None;
    for run in events.chunk_by(|a, b| a.tenant_id == b.tenant_id) {
        let mut tx = TenantTx::new(&mut *conn, run[0].tenant_id, &mut scoped_to);
        handler.handle(&mut tx, run).await?;
    }
    Ok(())
}

/// How a subscription runs.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// The durable name: the checkpoint is kept under it.
    pub name: String,
    /// How many partitions the group splits the log into. Fixed when the
    /// subscription is first created; a different number later is refused.
    pub partitions: u32,
    /// This member's id, unique among the group's members.
    pub member: String,
    /// The most events applied in one transaction.
    pub batch_size: usize,
    /// The slowest the subscription looks for new events when no wake-up
    /// arrives.
    pub poll_interval: Duration,
    /// How often the member heartbeats and rebalances.
    pub heartbeat_interval: Duration,
    /// After this long without a heartbeat a member counts as gone, and its
    /// partitions' leases run out.
    pub member_timeout: Duration,
}

impl SubscriptionConfig {
    /// Defaults for `name`: one partition, 500 events a batch, a 1 s poll,
    /// heartbeats every 2 s, members gone after 10 s.
    pub fn new(name: impl Into<String>, member: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            partitions: 1,
            member: member.into(),
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
            heartbeat_interval: Duration::from_secs(2),
            member_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a subscription cannot start.
#[derive(Debug, thiserror::Error)]
pub enum SubscriptionError {
    /// It exists with another partition count.
    #[error("subscription {name} has {stored} partitions; it cannot run with {configured}")]
    PartitionMismatch {
        /// The subscription.
        name: String,
        /// What the database holds.
        stored: u32,
        /// What was configured.
        configured: u32,
    },
    /// The database failed.
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// One member of a subscription's consumer group.
pub struct Subscription<L: EventLog + ?Sized> {
    log: Arc<L>,
    pool: PgPool,
    config: SubscriptionConfig,
    handler: Arc<dyn Handler>,
    /// The partitions this member holds, with the checkpoint of each.
    owned: BTreeMap<u32, Position>,
    /// The next batch, read while the current one was being applied (only
    /// while catching up). Valid only for the position and partitions it
    /// was read for.
    read_ahead: Option<ReadAhead>,
}

struct ReadAhead {
    from: Position,
    owned: Vec<u32>,
    batch: tokio::task::JoinHandle<Result<Vec<RecordedEvent>, ventanilla_eventlog::ReadError>>,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Applied (or skipped as already applied) this many events.
    Applied(usize),
    /// Nothing new to read.
    Idle,
    /// Ownership or checkpoints changed under us; the batch was dropped.
    Lost,
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn pos(commit: i64, sequence: i64) -> Position {
    Position {
        commit: u64::try_from(commit).unwrap_or_default(),
        sequence: u64::try_from(sequence).unwrap_or_default(),
    }
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl<L: EventLog + ?Sized> Subscription<L> {
    /// Registers the subscription (creating it and its partitions if new)
    /// and this member; claims nothing yet.
    pub async fn join(
        log: Arc<L>,
        pool: PgPool,
        config: SubscriptionConfig,
        handler: Arc<dyn Handler>,
    ) -> Result<Self, SubscriptionError> {
        let partitions = config.partitions.clamp(1, 1024);
        let mut tx = pool.begin().await?;
        sqlx::query(
            "INSERT INTO subscriptions (name, partitions) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(&config.name)
        .bind(i32::try_from(partitions).unwrap_or(1))
        .execute(&mut *tx)
        .await?;
        let stored: i32 =
            sqlx::query_scalar("SELECT partitions FROM subscriptions WHERE name = $1")
                .bind(&config.name)
                .fetch_one(&mut *tx)
                .await?;
        let stored = u32::try_from(stored).unwrap_or_default();
        if stored != partitions {
            return Err(SubscriptionError::PartitionMismatch {
                name: config.name.clone(),
                stored,
                configured: partitions,
            });
        }
        sqlx::query(
            "INSERT INTO subscription_partitions (subscription, partition) \
             SELECT $1, p FROM generate_series(0, $2 - 1) AS p ON CONFLICT DO NOTHING",
        )
        .bind(&config.name)
        .bind(i32::try_from(partitions).unwrap_or(1))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        let config = SubscriptionConfig {
            partitions,
            ..config
        };
        let me = Self {
            log,
            pool,
            config,
            handler,
            owned: BTreeMap::new(),
            read_ahead: None,
        };
        me.heartbeat().await?;
        Ok(me)
    }

    /// The configuration.
    pub fn config(&self) -> &SubscriptionConfig {
        &self.config
    }

    /// The partitions this member holds now, with their checkpoints.
    pub fn checkpoints(&self) -> &BTreeMap<u32, Position> {
        &self.owned
    }

    /// The partitions this member holds now.
    pub fn owned(&self) -> Vec<u32> {
        self.owned.keys().copied().collect()
    }

    async fn heartbeat(&self) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO subscription_members (subscription, member, heartbeat_at) VALUES ($1, $2, now()) \
             ON CONFLICT (subscription, member) DO UPDATE SET heartbeat_at = now()",
        )
        .bind(&self.config.name)
        .bind(&self.config.member)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Heartbeats, then releases the partitions that are no longer this
    /// member's share and claims those that are and are free.
    #[instrument(skip_all, fields(subscription = %self.config.name, member = %self.config.member))]
    pub async fn rebalance(&mut self) -> Result<(), sqlx::Error> {
        self.heartbeat().await?;
        let timeout_ms = millis(self.config.member_timeout);
        // Members silent for too long are gone.
        sqlx::query(
            "DELETE FROM subscription_members WHERE subscription = $1 \
             AND heartbeat_at < now() - make_interval(secs => $2 / 1000.0)",
        )
        .bind(&self.config.name)
        .bind(timeout_ms)
        .execute(&self.pool)
        .await?;
        let members: Vec<String> = sqlx::query_scalar(
            "SELECT member FROM subscription_members WHERE subscription = $1 ORDER BY member",
        )
        .bind(&self.config.name)
        .fetch_all(&self.pool)
        .await?;
        let Some(index) = members.iter().position(|m| *m == self.config.member) else {
            // Our own row was swept: we were too slow. Hold nothing until the
            // next heartbeat re-registers us.
            self.owned.clear();
            return Ok(());
        };
        let share: Vec<i32> = (0..self.config.partitions)
            .filter(|p| (*p as usize) % members.len() == index)
            .filter_map(|p| i32::try_from(p).ok())
            .collect();
        sqlx::query(
            "UPDATE subscription_partitions SET owner = NULL, lease_until = NULL, updated_at = now() \
             WHERE subscription = $1 AND owner = $2 AND NOT (partition = ANY($3))",
        )
        .bind(&self.config.name)
        .bind(&self.config.member)
        .bind(&share)
        .execute(&self.pool)
        .await?;
        let claimed: Vec<(i32, i64, i64)> = sqlx::query_as(
            "UPDATE subscription_partitions \
                SET owner = $2, lease_until = now() + make_interval(secs => $4 / 1000.0), updated_at = now() \
              WHERE subscription = $1 AND partition = ANY($3) \
                AND (owner IS NULL OR owner = $2 OR lease_until < now()) \
             RETURNING partition, checkpoint_commit, checkpoint_sequence",
        )
        .bind(&self.config.name)
        .bind(&self.config.member)
        .bind(&share)
        .bind(timeout_ms)
        .fetch_all(&self.pool)
        .await?;
        let before: Vec<u32> = self.owned();
        self.owned = claimed
            .into_iter()
            .filter_map(|(p, c, s)| Some((u32::try_from(p).ok()?, pos(c, s))))
            .collect();
        if before != self.owned() {
            info!(partitions = ?self.owned(), members = members.len(), "partitions assigned");
        }
        Ok(())
    }

    fn filter(&self) -> Option<PartitionFilter> {
        (self.config.partitions > 1).then(|| PartitionFilter {
            count: self.config.partitions,
            owned: self.owned(),
        })
    }

    /// The batch after `from`: the one read ahead if it was read for this
    /// position and these partitions, else a fresh read.
    async fn read_batch(&mut self, from: Position) -> anyhow::Result<Vec<RecordedEvent>> {
        if let Some(ahead) = self.read_ahead.take() {
            if ahead.from == from && ahead.owned == self.owned() {
                return Ok(ahead.batch.await??);
            }
            ahead.batch.abort();
        }
        Ok(self
            .log
            .read_all(from, self.config.batch_size, self.filter().as_ref())
            .await?)
    }

    /// Reads one batch for the partitions held and applies it.
    pub async fn step(&mut self) -> anyhow::Result<Step> {
        let Some(from) = self.owned.values().min().copied() else {
            return Ok(Step::Idle);
        };
        let mut events = self.read_batch(from).await?;
        let Some(last) = events.last().map(|e| e.position) else {
            return Ok(Step::Idle);
        };
        let read = events.len();
        if read == self.config.batch_size {
            // Catching up: read the next batch while this one is applied.
            let log = Arc::clone(&self.log);
            let (max, filter) = (self.config.batch_size, self.filter());
            self.read_ahead = Some(ReadAhead {
                from: last,
                owned: self.owned(),
                batch: tokio::spawn(async move { log.read_all(last, max, filter.as_ref()).await }),
            });
        }

        let mut tx = self.pool.begin().await?;
        let owned: Vec<i32> = self
            .owned
            .keys()
            .filter_map(|p| i32::try_from(*p).ok())
            .collect();
        let held: Vec<(i32, i64, i64)> = sqlx::query_as(
            "SELECT partition, checkpoint_commit, checkpoint_sequence FROM subscription_partitions \
              WHERE subscription = $1 AND partition = ANY($2) AND owner = $3 AND lease_until > now() \
              ORDER BY partition FOR UPDATE",
        )
        .bind(&self.config.name)
        .bind(&owned)
        .bind(&self.config.member)
        .fetch_all(&mut *tx)
        .await?;
        let held: BTreeMap<u32, Position> = held
            .into_iter()
            .filter_map(|(p, c, s)| Some((u32::try_from(p).ok()?, pos(c, s))))
            .collect();
        if held != self.owned {
            debug!(subscription = %self.config.name, "ownership or checkpoints changed; dropping the batch");
            tx.rollback().await?;
            self.owned.clear();
            if let Some(ahead) = self.read_ahead.take() {
                ahead.batch.abort();
            }
            return Ok(Step::Lost);
        }

        // Partitions may sit at different checkpoints: skip what a
        // partition has already applied.
        let partitions = self.config.partitions;
        let owned_cps = &self.owned;
        events.retain(|e| {
            let p = PartitionFilter::partition_of(&e.stream, partitions);
            owned_cps.get(&p).is_some_and(|cp| e.position > *cp)
        });
        apply_runs(self.handler.as_ref(), &mut tx, &mut events).await?;

        sqlx::query(
            "UPDATE subscription_partitions \
                SET checkpoint_commit = $4, checkpoint_sequence = $5, updated_at = now(), \
                    lease_until = now() + make_interval(secs => $6 / 1000.0) \
              WHERE subscription = $1 AND partition = ANY($2) AND owner = $3 \
                AND (checkpoint_commit, checkpoint_sequence) < ($4, $5)",
        )
        .bind(&self.config.name)
        .bind(&owned)
        .bind(&self.config.member)
        .bind(to_i64(last.commit))
        .bind(to_i64(last.sequence))
        .bind(millis(self.config.member_timeout))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        for cp in self.owned.values_mut() {
            *cp = (*cp).max(last);
        }
        Ok(Step::Applied(read))
    }

    /// Applies batches until there is nothing more to read now.
    pub async fn catch_up(&mut self) -> anyhow::Result<usize> {
        if self.owned.is_empty() {
            self.rebalance().await?;
        }
        let mut total = 0;
        loop {
            match self.step().await? {
                Step::Applied(n) => total += n,
                Step::Idle => return Ok(total),
                Step::Lost => self.rebalance().await?,
            }
        }
    }

    /// Runs until `shutdown`, then leaves the group (releasing its partitions
    /// so the others take over at once). Handler errors are logged and the
    /// batch retried after a growing pause; they do not end the run.
    pub async fn run(mut self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut wakeups = self.log.wakeups();
        let mut next_heartbeat = Instant::now();
        let mut backoff = Duration::from_millis(100);
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            if Instant::now() >= next_heartbeat {
                if let Err(e) = self.rebalance().await {
                    warn!(subscription = %self.config.name, error = %e, "heartbeat failed");
                }
                next_heartbeat = Instant::now() + self.config.heartbeat_interval;
            }
            let idle = match self.step().await {
                Ok(Step::Applied(n)) => {
                    backoff = Duration::from_millis(100);
                    n < self.config.batch_size
                }
                Ok(Step::Idle) => true,
                Ok(Step::Lost) => {
                    next_heartbeat = Instant::now();
                    false
                }
                Err(e) => {
                    warn!(subscription = %self.config.name, error = format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "batch failed");
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            };
            if idle {
                let wait = self
                    .config
                    .poll_interval
                    .min(next_heartbeat.saturating_duration_since(Instant::now()));
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = wakeups.changed() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
        self.leave().await;
        Ok(())
    }

    /// Leaves the group: releases the partitions and removes the member.
    pub async fn leave(&mut self) {
        let released = sqlx::query(
            "UPDATE subscription_partitions SET owner = NULL, lease_until = NULL WHERE subscription = $1 AND owner = $2",
        )
        .bind(&self.config.name)
        .bind(&self.config.member)
        .execute(&self.pool)
        .await;
        let removed =
            sqlx::query("DELETE FROM subscription_members WHERE subscription = $1 AND member = $2")
                .bind(&self.config.name)
                .bind(&self.config.member)
                .execute(&self.pool)
                .await;
        if let Err(e) = released.and(removed) {
            warn!(subscription = %self.config.name, error = %e, "could not leave the group cleanly; the lease will run out");
        }
        self.owned.clear();
    }
}
