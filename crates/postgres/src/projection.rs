//! Read models: projections fed by a subscription, and their rebuild.
//!
//! A [`Projection`] is a [`Handler`] that owns some tables. Its rows and its
//! checkpoint commit in one transaction (see [`crate::subscription`]). Its
//! SQL names tables unqualified, so the same code writes the live tables or,
//! during a rebuild, fresh copies in a schema of their own that come first in
//! the `search_path`.
//!
//! [`rebuild`] replays the whole log into fresh copies of the tables while the
//! live projection keeps serving, then — holding the live subscription's
//! checkpoint rows locked so the live projection pauses — applies what
//! arrived meanwhile, swaps the copies in and moves the live checkpoint to
//! where the copies are. Readers see the old tables until the swap commits,
//! and the new ones after.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use sqlx::{AssertSqlSafe, PgConnection, PgPool};
use tokio_util::sync::CancellationToken;
use tracing::info;
use ventanilla_eventlog::{EventLog, Position, RecordedEvent};

use crate::subscription::{Handler, Subscription, SubscriptionConfig, TenantTx, apply_runs};

/// A read model: a handler and the tables it writes.
pub trait Projection: Handler {
    /// Its name (lowercase letters, digits and `_`): the subscription is
    /// `projection:<name>`.
    fn name(&self) -> &'static str;

    /// The tables it owns, in the `public` schema.
    fn tables(&self) -> &'static [&'static str];
}

/// The subscription name of a projection.
pub fn subscription_name(projection: &dyn Projection) -> String {
    format!("projection:{}", projection.name())
}

/// Runs every projection of a process as members of their subscriptions.
pub struct ProjectionRunner<L: EventLog + ?Sized> {
    log: Arc<L>,
    pool: PgPool,
    member: String,
    partitions: u32,
    batch_size: usize,
    poll_interval: Duration,
}

impl<L: EventLog + ?Sized> ProjectionRunner<L> {
    /// A runner whose members are named `member` (unique per process).
    pub fn new(log: Arc<L>, pool: PgPool, member: impl Into<String>) -> Self {
        Self {
            log,
            pool,
            member: member.into(),
            partitions: 1,
            batch_size: 500,
            poll_interval: Duration::from_secs(1),
        }
    }

    /// Sets the batch size and the fallback poll interval.
    pub fn with_batching(mut self, batch_size: usize, poll_interval: Duration) -> Self {
        self.batch_size = batch_size.max(1);
        self.poll_interval = poll_interval;
        self
    }

    /// Joins every projection's group and spawns its loop; the tasks end
    /// after `shutdown`.
    pub async fn start(
        &self,
        projections: &[Arc<dyn Projection>],
        shutdown: CancellationToken,
    ) -> anyhow::Result<Vec<tokio::task::JoinHandle<anyhow::Result<()>>>> {
        let mut tasks = Vec::new();
        for p in projections {
            let mut config = SubscriptionConfig::new(subscription_name(p.as_ref()), &self.member);
            config.partitions = self.partitions;
            config.batch_size = self.batch_size;
            config.poll_interval = self.poll_interval;
            let handler: Arc<dyn Handler> = Arc::new(AsHandler(Arc::clone(p)));
            let sub = Subscription::join(Arc::clone(&self.log), self.pool.clone(), config, handler)
                .await
                .with_context(|| format!("starting projection {}", p.name()))?;
            tasks.push(tokio::spawn(sub.run(shutdown.clone())));
        }
        Ok(tasks)
    }
}

/// After a change already recorded at `position` (nothing to wait for when
/// `None`): waits until `projection` shows it, so that the caller's next
/// read sees its change (read-your-writes). The change stands whatever
/// happens here: if the read model is late (its process unhealthy), this
/// only logs a warning.
pub async fn settle<L: EventLog + ?Sized>(
    log: Arc<L>,
    pool: PgPool,
    projection: Arc<dyn Projection>,
    position: Option<Position>,
    timeout: Duration,
) {
    let Some(target) = position else {
        return;
    };
    let name = projection.name();
    if let Err(e) = ensure_caught_up(log, pool, projection, target, timeout).await {
        tracing::warn!(error = %e, projection = name, position = %target, "a read model has not caught up with a change yet");
    }
}

/// Makes sure `projection` has applied every event up to `target` before a
/// caller reads its tables (read-your-writes for a command-line process,
/// which runs no projections of its own). If no live member of the
/// projection's group is running, this process takes the partitions, catches
/// up and leaves; otherwise it waits for the running members. Fails after
/// `timeout` with a message saying what to look at.
pub async fn ensure_caught_up<L: EventLog + ?Sized>(
    log: Arc<L>,
    pool: PgPool,
    projection: Arc<dyn Projection>,
    target: Position,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    let name = subscription_name(projection.as_ref());
    if target == Position::START || reached(&pool, &name, target).await? {
        return Ok(());
    }
    // A running process (`serve`) holds the group: wait for it rather than
    // join and make it hand its partitions over.
    let live: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM subscription_members WHERE subscription = $1 \
           AND heartbeat_at > now() - interval '10 seconds')",
    )
    .bind(&name)
    .fetch_one(&pool)
    .await?;
    let mut member = None;
    if !live {
        let mut config = SubscriptionConfig::new(
            &name,
            format!("oneshot-{}-{}", std::process::id(), uuid_suffix()),
        );
        config.batch_size = 1000;
        let handler: Arc<dyn Handler> = Arc::new(AsHandler(projection));
        member = Some(Subscription::join(log, pool.clone(), config, handler).await?);
    }
    let result = async {
        loop {
            if let Some(sub) = member.as_mut() {
                sub.rebalance().await?;
                if !sub.owned().is_empty() {
                    sub.catch_up().await?;
                }
            }
            if reached(&pool, &name, target).await? {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "the read model {name} has not caught up within {} s; check that the `serve` process running projections is healthy (/readyz)",
                    timeout.as_secs()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    .await;
    if let Some(mut sub) = member {
        sub.leave().await;
    }
    result
}

/// Whether every partition of `subscription` has passed `target`.
async fn reached(pool: &PgPool, subscription: &str, target: Position) -> anyhow::Result<bool> {
    let least: Option<(i64, i64)> = sqlx::query_as(
        "SELECT checkpoint_commit, checkpoint_sequence FROM subscription_partitions \
          WHERE subscription = $1 ORDER BY checkpoint_commit, checkpoint_sequence LIMIT 1",
    )
    .bind(subscription)
    .fetch_optional(pool)
    .await?;
    Ok(least.is_some_and(|(c, s)| {
        Position {
            commit: u64::try_from(c).unwrap_or_default(),
            sequence: u64::try_from(s).unwrap_or_default(),
        } >= target
    }))
}

fn uuid_suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    format!("{nanos:08x}")
}

/// Lets an `Arc<dyn Projection>` be used where an `Arc<dyn Handler>` is.
struct AsHandler(Arc<dyn Projection>);

#[async_trait::async_trait]
impl Handler for AsHandler {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        self.0.handle(tx, events).await
    }
}

/// Told how a rebuild advances (a progress bar on a terminal, or nothing).
pub trait RebuildProgress: Send + Sync {
    /// The estimated number of events to replay.
    fn start(&self, estimated_total: u64);
    /// `n` more events were replayed.
    fn advance(&self, n: u64);
    /// The copies were swapped in.
    fn finish(&self, replayed: u64);
}

/// No progress reporting.
impl RebuildProgress for () {
    fn start(&self, _: u64) {}
    fn advance(&self, _: u64) {}
    fn finish(&self, _: u64) {}
}

/// What a rebuild did.
#[derive(Debug, Clone, Copy)]
pub struct RebuildReport {
    /// Events replayed into the fresh copy.
    pub replayed: u64,
    /// Where the live projection continues from.
    pub checkpoint: Position,
    /// How long it took.
    pub elapsed: Duration,
}

fn check_identifier(s: &str) -> anyhow::Result<()> {
    if s.is_empty()
        || s.len() > 50
        || !s
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        bail!("{s:?} is not a valid table or projection name (a-z, 0-9, _)");
    }
    Ok(())
}

/// Replays the log into fresh copies of `projection`'s tables and swaps them
/// in once caught up. `admin` is the owner's pool (it creates and drops
/// tables); `log` reads the log.
pub async fn rebuild<L: EventLog + ?Sized>(
    admin: &PgPool,
    log: &L,
    projection: &dyn Projection,
    batch_size: usize,
    progress: &dyn RebuildProgress,
) -> anyhow::Result<RebuildReport> {
    let started = Instant::now();
    check_identifier(projection.name())?;
    for t in projection.tables() {
        check_identifier(t)?;
    }
    let schema = format!("rebuild_{}", projection.name());
    let live_subscription = subscription_name(projection);

    // 1. Fresh, empty copies with the same columns, indexes, policies and
    //    grants as the live tables.
    let mut tx = admin.begin().await?;
    exec(&mut tx, format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await?;
    exec(&mut tx, format!("CREATE SCHEMA {schema}")).await?;
    for table in projection.tables() {
        copy_table(&mut tx, &schema, table).await?;
    }
    tx.commit().await?;

    // 2. Replay while the live projection keeps serving, at least up to
    //    every event committed when the rebuild started (events behind a
    //    transaction still open elsewhere become readable a moment later).
    progress.start(log.head().await?.sequence);
    let target: Option<i64> = sqlx::query_scalar("SELECT eventlog_last_commit()")
        .fetch_one(admin)
        .await?;
    let target = target.and_then(|t| u64::try_from(t).ok()).unwrap_or(0);
    let give_up = Instant::now() + Duration::from_secs(300);
    let mut checkpoint = Position::START;
    let mut replayed = 0u64;
    loop {
        let mut tx = admin.begin().await?;
        let n = replay_batch(
            &mut tx,
            log,
            projection,
            &schema,
            &mut checkpoint,
            batch_size,
        )
        .await?;
        tx.commit().await?;
        replayed += n;
        progress.advance(n);
        if n > 0 {
            continue;
        }
        if checkpoint.commit >= target {
            break;
        }
        if Instant::now() > give_up {
            bail!(
                "a transaction has kept events from becoming readable for 5 minutes; \
                 look for a long-running transaction on the server (pg_stat_activity)"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // 3. Pause the live projection (lock its checkpoints), catch up, swap.
    let mut tx = admin.begin().await?;
    sqlx::query(
        "INSERT INTO subscriptions (name, partitions) VALUES ($1, 1) ON CONFLICT DO NOTHING",
    )
    .bind(&live_subscription)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "INSERT INTO subscription_partitions (subscription, partition) \
         SELECT name, p FROM subscriptions, generate_series(0, partitions - 1) AS p WHERE name = $1 \
         ON CONFLICT DO NOTHING",
    )
    .bind(&live_subscription)
    .execute(&mut *tx)
    .await?;
    sqlx::query("SELECT partition FROM subscription_partitions WHERE subscription = $1 FOR UPDATE")
        .bind(&live_subscription)
        .fetch_all(&mut *tx)
        .await?;
    loop {
        let n = replay_batch(
            &mut tx,
            log,
            projection,
            &schema,
            &mut checkpoint,
            batch_size,
        )
        .await?;
        replayed += n;
        progress.advance(n);
        if n == 0 {
            break;
        }
    }
    exec(&mut tx, "SET LOCAL search_path = public".to_owned()).await?;
    for table in projection.tables() {
        exec(&mut tx, format!("DROP TABLE public.{table}")).await?;
        exec(
            &mut tx,
            format!("ALTER TABLE {schema}.{table} SET SCHEMA public"),
        )
        .await?;
    }
    exec(&mut tx, format!("DROP SCHEMA {schema}")).await?;
    sqlx::query(
        "UPDATE subscription_partitions SET checkpoint_commit = $2, checkpoint_sequence = $3, updated_at = now() \
         WHERE subscription = $1",
    )
    .bind(&live_subscription)
    .bind(i64::try_from(checkpoint.commit)?)
    .bind(i64::try_from(checkpoint.sequence)?)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    progress.finish(replayed);
    let report = RebuildReport {
        replayed,
        checkpoint,
        elapsed: started.elapsed(),
    };
    info!(projection = projection.name(), replayed, checkpoint = %checkpoint, "projection rebuilt and swapped in");
    Ok(report)
}

async fn exec(conn: &mut PgConnection, sql: String) -> Result<(), sqlx::Error> {
    sqlx::query(AssertSqlSafe(sql))
        .execute(conn)
        .await
        .map(|_| ())
}

/// Replays one batch into the copies in `schema`; returns how many events.
async fn replay_batch<L: EventLog + ?Sized>(
    tx: &mut PgConnection,
    log: &L,
    projection: &dyn Projection,
    schema: &str,
    checkpoint: &mut Position,
    batch_size: usize,
) -> anyhow::Result<u64> {
    let mut events = log.read_all(*checkpoint, batch_size, None).await?;
    let Some(last) = events.last().map(|e| e.position) else {
        return Ok(0);
    };
    exec(tx, format!("SET LOCAL search_path = {schema}, public")).await?;
    apply_runs(projection, tx, &mut events).await?;
    *checkpoint = last;
    Ok(events.len() as u64)
}

/// A policy as `pg_policies` describes it: name, permissive, command,
/// roles, USING and WITH CHECK.
type PolicyRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
);

/// Creates `schema.table` like `public.table`: columns, defaults, checks,
/// the same indexes and constraints under the same names (so later
/// migrations still find them), row-level security with the same policies,
/// and the same grants.
async fn copy_table(tx: &mut PgConnection, schema: &str, table: &str) -> anyhow::Result<()> {
    exec(
        tx,
        format!(
            "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS \
             INCLUDING GENERATED INCLUDING IDENTITY INCLUDING STORAGE INCLUDING COMMENTS)"
        ),
    )
    .await
    .with_context(|| format!("copying table {table}"))?;

    let indexes: Vec<(String, String, Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT ic.relname::text, pg_get_indexdef(i.indexrelid), c.conname::text, c.contype::text \
           FROM pg_index i \
           JOIN pg_class ic ON ic.oid = i.indexrelid \
           LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid AND c.contype IN ('p', 'u') \
          WHERE i.indrelid = format('public.%I', $1::text)::regclass",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await?;
    for (index, def, constraint, kind) in indexes {
        let on_live = format!(" ON public.{table} ");
        if !def.contains(&on_live) {
            bail!("cannot copy index {index}: unexpected definition {def}");
        }
        exec(
            tx,
            def.replacen(&on_live, &format!(" ON {schema}.{table} "), 1),
        )
        .await?;
        if let (Some(name), Some(kind)) = (constraint, kind) {
            let what = if kind == "p" { "PRIMARY KEY" } else { "UNIQUE" };
            exec(
                tx,
                format!("ALTER TABLE {schema}.{table} ADD CONSTRAINT \"{name}\" {what} USING INDEX \"{index}\""),
            )
            .await?;
        }
    }

    let (enabled, forced): (bool, bool) = sqlx::query_as(
        "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = format('public.%I', $1::text)::regclass",
    )
    .bind(table)
    .fetch_one(&mut *tx)
    .await?;
    if enabled {
        exec(
            tx,
            format!("ALTER TABLE {schema}.{table} ENABLE ROW LEVEL SECURITY"),
        )
        .await?;
    }
    if forced {
        exec(
            tx,
            format!("ALTER TABLE {schema}.{table} FORCE ROW LEVEL SECURITY"),
        )
        .await?;
    }
    let policies: Vec<PolicyRow> = sqlx::query_as(
        "SELECT policyname::text, permissive, cmd, array_to_string(ARRAY(SELECT quote_ident(r) FROM unnest(roles) r), ', '), qual, with_check \
           FROM pg_policies WHERE schemaname = 'public' AND tablename = $1",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await?;
    for (name, permissive, cmd, roles, using, check) in policies {
        let roles = roles.replace("\"public\"", "PUBLIC");
        let mut sql = format!(
            "CREATE POLICY \"{name}\" ON {schema}.{table} AS {permissive} FOR {cmd} TO {roles}"
        );
        if let Some(using) = using {
            sql.push_str(&format!(" USING ({using})"));
        }
        if let Some(check) = check {
            sql.push_str(&format!(" WITH CHECK ({check})"));
        }
        exec(tx, sql).await?;
    }

    let grants: Vec<(String, String)> = sqlx::query_as(
        "SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(a.grantee::regrole::text) END, a.privilege_type \
           FROM pg_class c, aclexplode(c.relacl) a \
          WHERE c.oid = format('public.%I', $1::text)::regclass AND a.grantee <> c.relowner",
    )
    .bind(table)
    .fetch_all(&mut *tx)
    .await?;
    for (grantee, privilege) in grants {
        exec(
            tx,
            format!("GRANT {privilege} ON {schema}.{table} TO {grantee}"),
        )
        .await?;
    }
    Ok(())
}
