//! `make bench`: the event log's throughput, each figure measured against a
//! baseline taken in the same run, on the same server and the same database.
//!
//! What is measured (one `BENCH` line each on stdout, everything else on
//! stderr):
//!
//! - `eventlog.append.c1`, `.c4`, `.c16`: single-event appends, each to a new
//!   stream (`ExpectedVersion::NoStream`), through [`PgEventLog`]'s `append` on
//!   the application role (row-level security applies), by 1, 4 and 16
//!   concurrent writers sharing a pool of exactly that many connections.
//!   Baseline: a plain autocommit single-row `INSERT` of the same values into
//!   `bench_baseline_events`, a copy of `events` (`LIKE events INCLUDING
//!   ALL`: same columns, defaults — `pg_current_xact_id()` and the identity
//!   column included —, checks and indexes; no row-level security), through
//!   the same pool. Both sides build the same realistic event (about 200
//!   bytes of data, a full `Metadata` with causation and traceparent).
//! - `eventlog.append.batch10`: one writer appending 10 events per call (a
//!   new stream each call), against 10-row multi-row `INSERT`s.
//! - `eventlog.catchup`: how fast a new [`Subscription`] (batch 1000, one
//!   partition, a handler that only counts) reads and checkpoints a log of
//!   1,000,000 events, from `join` until caught up. The log is the append
//!   figures' events topped up to 1,000,000 with set-based SQL: 1,000
//!   tenants x 100 streams x up to 10 events, tenants interleaved in the
//!   global order as live traffic interleaves them (so nearly every event
//!   starts a new same-tenant run for the subscription). Baseline: a bare
//!   keyset scan of `events` (owner pool) in the same order with the same
//!   batch size, decoding the same columns; the mean of one scan before and
//!   one after the subscription. A breakdown of where a batch's time goes is
//!   printed after it.
//!
//! Why ratios: the machine is small and shared (2 cores, a virtual disk whose
//! fsync latency varies), so an absolute events/s figure says more about the
//! machine than about the code. The same work done by the simplest possible
//! SQL, measured alternately with the subject in the same run, cancels the
//! machine out: the ratio is what the log's design costs (the function call,
//! the row-level security check, the `RETURNING`, the gap-safe read, the
//! checkpoint transaction) over what PostgreSQL needs anyway. The appends run
//! in alternating rounds (3 of `BENCH_ROUND_SECS`, default 3 s, after a
//! warm-up) and report the median of each side.
//!
//! Both sides run with the server's own durability settings (printed on the
//! first stderr line): a lower `synchronous_commit` would flatter both.

mod graphql;
mod notify;
mod social;

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use serde_json::{Value, json};
use sqlx::types::chrono::{DateTime, Utc};
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;
use ventanilla_eventlog::{
    EventLog, ExpectedVersion, Limits, Metadata, NewEvent, Position, RecordedEvent,
};
use ventanilla_kernel::{Actor, EventId, StreamId, TenantId, TraceParent};
use ventanilla_postgres::subscription::Step;
use ventanilla_postgres::{
    Handler, PgEventLog, PoolSettings, Subscription, SubscriptionConfig, TenantTx, db,
};
use ventanilla_testkit::TestDb;

/// Tenants the events are spread over.
const TENANTS: u64 = 1_000;
/// Streams per tenant in the catch-up log.
const STREAMS_PER_TENANT: u64 = 100;
/// Events in the catch-up log.
const CATCHUP_EVENTS: u64 = 1_000_000;
/// Rows per seeding transaction.
const SEED_CHUNK: u64 = 100_000;
/// Batch size of the catch-up subscription and of its baseline scan.
const CATCHUP_BATCH: usize = 1_000;
/// Events per call in the batch figure.
const BATCH: usize = 10;
/// Targets (stderr verdicts).
const APPEND_RATIO_TARGET: f64 = 0.8;
const CATCHUP_TARGET: f64 = 50_000.0;

/// The baseline table: `events` without row-level security.
const BASELINE_TABLE: &str = "bench_baseline_events";

const INSERT_ONE: &str = "INSERT INTO bench_baseline_events \
     (tenant_id, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, stream_hash) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

/// One seeding chunk: rows `$1..$2` of the interleaved log, each stream's
/// data and metadata made in Rust (the same shapes as the appended events)
/// and stored once in `bench_streams`.
const SEED: &str = "INSERT INTO events \
     (tenant_id, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, stream_hash) \
     SELECT s.tenant_id, s.stream_id, x.v, gen_random_uuid(), \
            CASE WHEN x.v = 0 THEN 'ticket.opened' \
                 WHEN x.v % 3 = 1 THEN 'ticket.commented' \
                 WHEN x.v % 3 = 2 THEN 'ticket.assigned' \
                 ELSE 'ticket.status_changed' END, \
            1::smallint, s.data, s.metadata, s.stream_hash \
       FROM (SELECT i, i / $3 / $4 AS v, (i % $3) * $4 + (i / $3) % $4 AS n \
               FROM generate_series($1::bigint, $2::bigint - 1) AS i) AS x \
       JOIN bench_streams s ON s.n = x.n \
      ORDER BY x.i";

const SCAN: &str = "SELECT tenant_id, stream_id, stream_version, event_id, event_type, schema_version, \
            data, metadata, transaction_id, global_position, recorded_at \
       FROM events WHERE (transaction_id, global_position) > ($1, $2) \
      ORDER BY transaction_id, global_position LIMIT $3";

type ScanRow = (
    Uuid,
    String,
    i64,
    Uuid,
    String,
    i16,
    Value,
    Value,
    i64,
    i64,
    DateTime<Utc>,
);

fn out(line: &str) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}")?;
    stdout.flush()?;
    Ok(())
}

fn bench_line(name: &str, value: f64, baseline: f64, unit: &str) -> anyhow::Result<f64> {
    let (v, b) = (value.round(), baseline.round());
    let ratio = if b > 0.0 { v / b } else { 0.0 };
    out(&format!(
        "BENCH {name} {v:.0} {unit} baseline={b:.0} ratio={ratio:.2}"
    ))?;
    Ok(ratio)
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn fmt_rates(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| format!("{v:.0}"))
        .collect::<Vec<_>>()
        .join(" ")
}

// ---------------------------------------------------------------------------
// Realistic events

const STREETS: [&str; 4] = [
    "la calle Mayor",
    "la avenida de la Constitución",
    "la plaza del Carmen",
    "el paseo del Prado",
];

fn ticket_data(n: u64) -> Value {
    let street = STREETS[(n % 4) as usize];
    json!({
        "subject": format!("Farola apagada en {street} {}", n % 150 + 1),
        "description": "Lleva tres noches sin encenderse.",
        "category": "alumbrado",
        "channel": "web",
        "location": {
            "lat": ((40.4 + (n % 1000) as f64 / 10_000.0) * 10_000.0).round() / 10_000.0,
            "lon": ((-3.7 - (n % 777) as f64 / 10_000.0) * 10_000.0).round() / 10_000.0,
        },
    })
}

fn metadata() -> Metadata {
    let span = Uuid::new_v4().as_u64_pair().0 | 1;
    Metadata {
        correlation_id: Uuid::new_v4(),
        causation_id: Some(Uuid::new_v4()),
        traceparent: TraceParent::new_root(Uuid::new_v4().as_u128(), span),
        actor: Actor::Staff {
            id: Uuid::new_v4().to_string(),
        },
    }
}

fn event_type(version: u64) -> &'static str {
    match version {
        0 => "ticket.opened",
        v if v % 3 == 1 => "ticket.commented",
        v if v % 3 == 2 => "ticket.assigned",
        _ => "ticket.status_changed",
    }
}

fn new_event(n: u64, version: u64) -> NewEvent {
    NewEvent {
        id: EventId::from_uuid(Uuid::new_v4()),
        event_type: event_type(version).to_owned(),
        schema_version: 1,
        data: ticket_data(n),
        metadata: metadata(),
    }
}

fn new_stream() -> anyhow::Result<StreamId> {
    Ok(StreamId::for_aggregate("ticket", Uuid::new_v4())?)
}

// ---------------------------------------------------------------------------
// Append figures

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    /// `PgEventLog::append` of one event to a new stream.
    Append,
    /// One-row `INSERT` into the baseline table.
    Insert,
    /// `PgEventLog::append` of [`BATCH`] events to a new stream.
    AppendBatch,
    /// [`BATCH`]-row `INSERT` into the baseline table.
    InsertBatch,
}

struct Ctx {
    pool: PgPool,
    log: PgEventLog,
    tenants: Arc<Vec<TenantId>>,
    insert_batch: Arc<str>,
}

impl Ctx {
    async fn new(url: &str, connections: u32, tenants: Arc<Vec<TenantId>>) -> anyhow::Result<Self> {
        let pool = db::connect(
            url,
            &PoolSettings {
                max_connections: connections,
                ..PoolSettings::default()
            },
        )
        .await?;
        // Pre-warm: open every connection now, not during a measurement.
        let mut held = Vec::new();
        for _ in 0..connections {
            held.push(pool.acquire().await?);
        }
        drop(held);
        if pool.size() != connections {
            bail!(
                "the pool holds {} connections, not {connections}",
                pool.size()
            );
        }
        let mut sql = String::from(
            "INSERT INTO bench_baseline_events (tenant_id, stream_id, stream_version, event_id, \
             event_type, schema_version, data, metadata, stream_hash) VALUES ",
        );
        for r in 0..BATCH {
            let p = r * 9;
            if r > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${}, ${}, ${})",
                p + 1,
                p + 2,
                p + 3,
                p + 4,
                p + 5,
                p + 6,
                p + 7,
                p + 8,
                p + 9
            ));
        }
        Ok(Self {
            log: PgEventLog::new(pool.clone(), Limits::default()),
            pool,
            tenants,
            insert_batch: Arc::from(sql),
        })
    }

    fn tenant(&self, n: u64) -> TenantId {
        let i = (n.wrapping_mul(7919) % self.tenants.len().max(1) as u64) as usize;
        self.tenants.get(i).copied().unwrap_or(TenantId::PLATFORM)
    }

    /// Does one unit of `work`; returns how many events it stored.
    async fn op(&self, work: Work, n: u64) -> anyhow::Result<u64> {
        let tenant = self.tenant(n);
        let stream = new_stream()?;
        let count = match work {
            Work::Append | Work::Insert => 1,
            Work::AppendBatch | Work::InsertBatch => BATCH,
        };
        let events: Vec<NewEvent> = (0..count as u64).map(|v| new_event(n, v)).collect();
        match work {
            Work::Append | Work::AppendBatch => {
                let appended = self
                    .log
                    .append(tenant, &stream, ExpectedVersion::NoStream, events)
                    .await?;
                if appended.positions.len() != count {
                    bail!("append stored {} events", appended.positions.len());
                }
            }
            Work::Insert => {
                let e = events.first().context("no event")?;
                sqlx::query(INSERT_ONE)
                    .bind(tenant.into_uuid())
                    .bind(stream.as_str())
                    .bind(0_i64)
                    .bind(e.id.into_uuid())
                    .bind(e.event_type.as_str())
                    .bind(i16::try_from(e.schema_version)?)
                    .bind(&e.data)
                    .bind(serde_json::to_value(&e.metadata)?)
                    .bind(i64::from(stream.partition_hash()))
                    .execute(&self.pool)
                    .await?;
            }
            Work::InsertBatch => {
                let mut q = sqlx::query(AssertSqlSafe(self.insert_batch.clone()));
                for (v, e) in events.iter().enumerate() {
                    q = q
                        .bind(tenant.into_uuid())
                        .bind(stream.as_str())
                        .bind(i64::try_from(v)?)
                        .bind(e.id.into_uuid())
                        .bind(e.event_type.as_str())
                        .bind(i16::try_from(e.schema_version)?)
                        .bind(&e.data)
                        .bind(serde_json::to_value(&e.metadata)?)
                        .bind(i64::from(stream.partition_hash()));
                }
                q.execute(&self.pool).await?;
            }
        }
        Ok(count as u64)
    }
}

/// Runs `work` with `writers` concurrent tasks for `duration`; events/s.
async fn run_for(
    ctx: &Arc<Ctx>,
    work: Work,
    writers: usize,
    duration: Duration,
    seq: &AtomicU64,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(writers);
    for _ in 0..writers {
        let ctx = Arc::clone(ctx);
        let base = seq.fetch_add(1 << 32, Ordering::Relaxed);
        tasks.push(tokio::spawn(async move {
            let mut events = 0_u64;
            let mut n = base;
            while Instant::now() < deadline {
                events += ctx.op(work, n).await?;
                n += 1;
            }
            anyhow::Ok(events)
        }));
    }
    let mut total = 0_u64;
    for t in tasks {
        total += t.await??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

struct Rounds {
    rounds: usize,
    duration: Duration,
    warmup: Duration,
}

/// Alternates subject and baseline rounds; the medians of each.
async fn compare(
    label: &str,
    ctx: &Arc<Ctx>,
    subject: Work,
    baseline: Work,
    writers: usize,
    plan: &Rounds,
    seq: &AtomicU64,
) -> anyhow::Result<(f64, f64)> {
    // Warm-up: every connection prepares both statements and fills its caches.
    run_for(ctx, subject, writers, plan.warmup, seq).await?;
    run_for(ctx, baseline, writers, plan.warmup, seq).await?;
    let (mut s, mut b) = (Vec::new(), Vec::new());
    for r in 0..plan.rounds {
        if r % 2 == 0 {
            s.push(run_for(ctx, subject, writers, plan.duration, seq).await?);
            b.push(run_for(ctx, baseline, writers, plan.duration, seq).await?);
        } else {
            b.push(run_for(ctx, baseline, writers, plan.duration, seq).await?);
            s.push(run_for(ctx, subject, writers, plan.duration, seq).await?);
        }
    }
    eprintln!(
        "  {label}: rounds of {:.1} s, subject [{}] events/s, baseline [{}] events/s",
        plan.duration.as_secs_f64(),
        fmt_rates(&s),
        fmt_rates(&b)
    );
    Ok((median(&s), median(&b)))
}

async fn create_baseline_table(admin: &PgPool) -> anyhow::Result<()> {
    sqlx::query(AssertSqlSafe(format!(
        "CREATE TABLE {BASELINE_TABLE} (LIKE events INCLUDING ALL)"
    )))
    .execute(admin)
    .await?;
    sqlx::query(AssertSqlSafe(format!(
        "GRANT SELECT, INSERT ON {BASELINE_TABLE} TO ventanilla_app"
    )))
    .execute(admin)
    .await?;
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT regexp_replace(indexdef, '^.* USING ', '') FROM pg_indexes \
          WHERE tablename = $1 ORDER BY indexname",
    )
    .bind(BASELINE_TABLE)
    .fetch_all(admin)
    .await?;
    eprintln!(
        "baseline table {BASELINE_TABLE}: LIKE events INCLUDING ALL, no RLS; indexes: {}",
        indexes.join(", ")
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Catch-up figure

/// Counts events and calls (one call per run of same-tenant events).
#[derive(Default)]
struct Count {
    events: AtomicU64,
    calls: AtomicU64,
}

struct Counting(Arc<Count>);

#[async_trait]
impl Handler for Counting {
    async fn handle(&self, _tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        self.0
            .events
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        self.0.calls.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Fills `events` up to [`CATCHUP_EVENTS`] rows, set-based, in transactions
/// of [`SEED_CHUNK`] rows on two connections. Tenants are interleaved the way
/// live traffic interleaves them: consecutive events in the global order
/// belong to different tenants. Each stream's data and metadata are made in
/// Rust (the same shapes and sizes as the appended events; a stream's events
/// share them) so that the server only copies them.
async fn seed(admin: &PgPool, tenants: &[TenantId]) -> anyhow::Result<()> {
    let started = Instant::now();
    let existing: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(admin)
        .await?;
    let existing = u64::try_from(existing)?;
    let to_seed = CATCHUP_EVENTS.saturating_sub(existing);

    sqlx::query(
        "CREATE UNLOGGED TABLE bench_streams (n bigint PRIMARY KEY, tenant_id uuid NOT NULL, \
         stream_id text NOT NULL, stream_hash bigint NOT NULL, data jsonb NOT NULL, metadata jsonb NOT NULL)",
    )
    .execute(admin)
    .await?;
    // The streams, with their real partition hashes (FNV-1a, computed here),
    // uploaded a tenant slice at a time.
    for slice in tenants.chunks(100).enumerate() {
        let (first, slice) = slice;
        let mut ns = Vec::new();
        let mut stream_tenants = Vec::new();
        let mut ids = Vec::new();
        let mut hashes = Vec::new();
        let mut data = Vec::new();
        let mut metas = Vec::new();
        for (k, tenant) in slice.iter().enumerate() {
            let t = u64::try_from(first * 100 + k)?;
            for s in 0..STREAMS_PER_TENANT {
                let n = t * STREAMS_PER_TENANT + s;
                let stream = new_stream()?;
                ns.push(i64::try_from(n)?);
                stream_tenants.push(tenant.into_uuid());
                hashes.push(i64::from(stream.partition_hash()));
                ids.push(String::from(stream));
                data.push(ticket_data(n));
                metas.push(serde_json::to_value(metadata())?);
            }
        }
        sqlx::query(
            "INSERT INTO bench_streams SELECT * FROM \
             unnest($1::bigint[], $2::uuid[], $3::text[], $4::bigint[], $5::jsonb[], $6::jsonb[])",
        )
        .bind(&ns)
        .bind(&stream_tenants)
        .bind(&ids)
        .bind(&hashes)
        .bind(&data)
        .bind(&metas)
        .execute(admin)
        .await?;
    }
    sqlx::query("ANALYZE bench_streams").execute(admin).await?;

    let t = i64::try_from(TENANTS)?;
    let s = i64::try_from(STREAMS_PER_TENANT)?;
    let chunks: Vec<(u64, u64)> = (0..to_seed.div_ceil(SEED_CHUNK))
        .map(|k| (k * SEED_CHUNK, ((k + 1) * SEED_CHUNK).min(to_seed)))
        .collect();
    let chunks = Arc::new(chunks);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (admin, chunks, next) = (admin.clone(), Arc::clone(&chunks), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            loop {
                let k = usize::try_from(next.fetch_add(1, Ordering::Relaxed))?;
                let Some(&(lo, hi)) = chunks.get(k) else {
                    return anyhow::Ok(());
                };
                let chunk = Instant::now();
                let mut tx = admin.begin().await?;
                // The ORDER BY sorts in memory.
                sqlx::query("SET LOCAL work_mem = '256MB'")
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query(SEED)
                    .bind(i64::try_from(lo)?)
                    .bind(i64::try_from(hi)?)
                    .bind(t)
                    .bind(s)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                if done != hi - lo {
                    bail!("seeding rows {lo}..{hi} stored {done}");
                }
                eprintln!(
                    "  seeded rows {lo}..{hi} of {to_seed} in {:.1} s",
                    chunk.elapsed().as_secs_f64()
                );
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    sqlx::query("DROP TABLE bench_streams")
        .execute(admin)
        .await?;
    let seeded_in = started.elapsed().as_secs_f64();
    let vacuum = Instant::now();
    // Set hint bits and the visibility map now, so that neither the subject
    // nor the baseline pays for it.
    sqlx::query("VACUUM (ANALYZE) events")
        .execute(admin)
        .await?;
    let vacuumed_in = vacuum.elapsed().as_secs_f64();
    let (rows, data, meta, size): (i64, f64, f64, String) = sqlx::query_as(
        "SELECT count(*), avg(octet_length(data::text))::float8, avg(octet_length(metadata::text))::float8, \
                pg_size_pretty(pg_total_relation_size('events')) FROM events",
    )
    .fetch_one(admin)
    .await?;
    eprintln!(
        "catch-up log: {rows} events ({existing} from the append figures, {to_seed} seeded over \
         {TENANTS} tenants x {STREAMS_PER_TENANT} streams, tenants interleaved), avg data {data:.0} B, \
         avg metadata {meta:.0} B, table+indexes {size}; seeded in {seeded_in:.1} s, vacuum {vacuumed_in:.1} s"
    );
    if u64::try_from(rows)? != CATCHUP_EVENTS {
        bail!("the log holds {rows} events, not {CATCHUP_EVENTS}");
    }
    Ok(())
}

/// The baseline: a bare keyset scan decoding the same columns; events/s.
async fn scan(admin: &PgPool) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut after = (0_i64, 0_i64);
    let mut total = 0_u64;
    let limit = i64::try_from(CATCHUP_BATCH)?;
    loop {
        let rows: Vec<ScanRow> = sqlx::query_as(SCAN)
            .bind(after.0)
            .bind(after.1)
            .bind(limit)
            .fetch_all(admin)
            .await?;
        let Some(last) = rows.last() else { break };
        after = (last.8, last.9);
        total += rows.len() as u64;
    }
    let elapsed = started.elapsed().as_secs_f64();
    if total != CATCHUP_EVENTS {
        bail!("the baseline scan read {total} events, not {CATCHUP_EVENTS}");
    }
    eprintln!("  keyset scan: {total} events in {elapsed:.1} s");
    Ok(total as f64 / elapsed)
}

/// What the subscription's catch-up did.
struct CatchUp {
    events_per_s: f64,
    batches: u64,
    handler_calls: u64,
    elapsed: Duration,
}

/// The subject: a new subscription from join to caught up.
async fn catch_up(app: &PgPool) -> anyhow::Result<CatchUp> {
    let count = Arc::new(Count::default());
    let log = Arc::new(PgEventLog::new(app.clone(), Limits::default()));
    let config = SubscriptionConfig {
        partitions: 1,
        batch_size: CATCHUP_BATCH,
        ..SubscriptionConfig::new("bench-catchup", "bench-member")
    };
    let started = Instant::now();
    let handler = Arc::new(Counting(Arc::clone(&count)));
    let mut sub = Subscription::join(log, app.clone(), config, handler).await?;
    sub.rebalance().await?;
    let (mut batches, mut waits) = (0_u64, 0_u64);
    loop {
        match sub.step().await? {
            Step::Applied(_) => batches += 1,
            Step::Idle if count.events.load(Ordering::Relaxed) >= CATCHUP_EVENTS => break,
            Step::Idle => {
                // Another session's open transaction holds the gap-safe
                // horizon back (a shared server): wait for it.
                waits += 1;
                if started.elapsed() > Duration::from_secs(300) {
                    bail!(
                        "the subscription is stuck at {} events",
                        count.events.load(Ordering::Relaxed)
                    );
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            Step::Lost => sub.rebalance().await?,
        }
    }
    let elapsed = started.elapsed();
    let total = count.events.load(Ordering::Relaxed);
    if total != CATCHUP_EVENTS {
        bail!("the subscription handled {total} events, not {CATCHUP_EVENTS}");
    }
    let handler_calls = count.calls.load(Ordering::Relaxed);
    eprintln!(
        "  subscription: {total} events in {:.1} s, {batches} batches, {handler_calls} handler calls{}",
        elapsed.as_secs_f64(),
        if waits > 0 {
            format!(", {waits} waits of 5 ms for another session's open transaction")
        } else {
            String::new()
        }
    );
    Ok(CatchUp {
        events_per_s: total as f64 / elapsed.as_secs_f64(),
        batches,
        handler_calls,
        elapsed,
    })
}

/// Where a catch-up batch's time goes: the read alone, the bare scan alone,
/// and how many same-tenant runs a batch holds.
async fn catch_up_breakdown(app: &PgPool, admin: &PgPool, run: &CatchUp) -> anyhow::Result<()> {
    const SAMPLE: u32 = 30;
    let log = PgEventLog::new(app.clone(), Limits::default());
    let started = Instant::now();
    let mut after = Position::START;
    for _ in 0..SAMPLE {
        let events = log.read_all(after, CATCHUP_BATCH, None).await?;
        after = events
            .last()
            .map(|e| e.position)
            .context("the log ran out")?;
    }
    let read_all = started.elapsed() / SAMPLE;

    let started = Instant::now();
    let mut after = (0_i64, 0_i64);
    for _ in 0..SAMPLE {
        let rows: Vec<ScanRow> = sqlx::query_as(SCAN)
            .bind(after.0)
            .bind(after.1)
            .bind(i64::try_from(CATCHUP_BATCH)?)
            .fetch_all(admin)
            .await?;
        let last = rows.last().context("the log ran out")?;
        after = (last.8, last.9);
    }
    let bare = started.elapsed() / SAMPLE;

    let batches = run.batches.max(1);
    let per_batch = run.elapsed.as_secs_f64() * 1000.0 / batches as f64;
    let runs = run.handler_calls as f64 / batches as f64;
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    eprintln!(
        "  catch-up per batch of {CATCHUP_BATCH}: subscription {per_batch:.1} ms with the next batch read \
         ahead while one is applied; read_all alone {:.1} ms (bare keyset scan {:.1} ms); {runs:.0} \
         same-tenant runs handed to the handler (the tenant is set only when a handler writes)",
        ms(read_all),
        ms(bare),
    );
    Ok(())
}

// ---------------------------------------------------------------------------

async fn describe_machine(pool: &PgPool) -> anyhow::Result<()> {
    let (version, sync, fsync, buffers): (String, String, String, String) = sqlx::query_as(
        "SELECT current_setting('server_version'), current_setting('synchronous_commit'), \
                current_setting('fsync'), current_setting('shared_buffers')",
    )
    .fetch_one(pool)
    .await?;
    let nproc = std::thread::available_parallelism().map_or(0, usize::from);
    eprintln!(
        "machine: nproc={nproc} postgresql={version} synchronous_commit={sync} fsync={fsync} shared_buffers={buffers}"
    );
    Ok(())
}

fn env_secs(name: &str, default: f64) -> anyhow::Result<Duration> {
    let secs = match std::env::var(name) {
        Ok(v) => v
            .parse::<f64>()
            .with_context(|| format!("{name} must be a number of seconds"))?,
        Err(_) => default,
    };
    Ok(Duration::from_secs_f64(secs.max(0.1)))
}

/// The verdict on a figure against its target (`value` ≥ `target`),
/// printed as it is made: "verdict NAME: SHOWN vs target >= TARGET: met",
/// or how far short it is.
pub(crate) fn verdict(name: &str, shown: &str, value: f64, target: f64) -> String {
    let outcome = if value >= target {
        "met".to_owned()
    } else {
        format!("NOT met (short by {:.0}%)", (1.0 - value / target) * 100.0)
    };
    let verdict = format!("verdict {name}: {shown} vs target >= {target}: {outcome}");
    eprintln!("{verdict}");
    verdict
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let db = TestDb::new().await;
    describe_machine(&db.app).await?;
    let plan = Rounds {
        rounds: 3,
        duration: env_secs("BENCH_ROUND_SECS", 3.0)?,
        warmup: env_secs("BENCH_WARMUP_SECS", 0.5)?,
    };
    // Seeding, VACUUM and catch-up outlast the test kit's 30 s statement
    // time-out.
    let admin = db::connect(
        &db.admin_url,
        &PoolSettings {
            max_connections: 2,
            statement_timeout: Duration::from_secs(600),
            ..PoolSettings::default()
        },
    )
    .await?;
    let tenants: Arc<Vec<TenantId>> = Arc::new(
        (0..TENANTS)
            .map(|_| TenantId::from_uuid(Uuid::new_v4()))
            .collect(),
    );
    create_baseline_table(&admin).await?;
    let sample = new_event(1, 0);
    eprintln!(
        "event: data {} B, metadata {} B (JSON text)",
        serde_json::to_string(&sample.data)?.len(),
        serde_json::to_string(&sample.metadata)?.len()
    );
    let seq = AtomicU64::new(0);

    // BENCH_ONLY=append, catchup, social, notify or graphql runs one family of
    // figures.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    let (appends, catchup) = (
        only.is_empty() || only == "append",
        only.is_empty() || only == "catchup",
    );
    let mut verdicts = Vec::new();
    for writers in [1_u32, 4, 16].into_iter().filter(|_| appends) {
        let ctx = Arc::new(Ctx::new(&db.app_url, writers, Arc::clone(&tenants)).await?);
        let name = format!("eventlog.append.c{writers}");
        let (s, b) = compare(
            &name,
            &ctx,
            Work::Append,
            Work::Insert,
            writers as usize,
            &plan,
            &seq,
        )
        .await?;
        let ratio = bench_line(&name, s, b, "events/s")?;
        if writers >= 4 {
            verdicts.push(verdict(
                &name,
                &format!("ratio {ratio:.2}"),
                ratio,
                APPEND_RATIO_TARGET,
            ));
        }
        ctx.pool.close().await;
    }

    if appends {
        let ctx = Arc::new(Ctx::new(&db.app_url, 1, Arc::clone(&tenants)).await?);
        let name = "eventlog.append.batch10";
        let (s, b) = compare(
            name,
            &ctx,
            Work::AppendBatch,
            Work::InsertBatch,
            1,
            &plan,
            &seq,
        )
        .await?;
        bench_line(name, s, b, "events/s")?;
        ctx.pool.close().await;
    }

    if catchup {
        catchup_figure(&db, &admin, &tenants, &mut verdicts).await?;
    }

    if only.is_empty() || only == "social" {
        social::figure(&db, &mut verdicts).await?;
    }
    if only.is_empty() || only == "notify" {
        notify::figure(&mut verdicts).await?;
    }
    if only.is_empty() || only == "graphql" {
        graphql::figure(&mut verdicts).await?;
    }

    admin.close().await;
    eprintln!("--");
    for v in &verdicts {
        eprintln!("{v}");
    }
    eprintln!("total run time {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The catch-up figure: seeds the log to a million events, then times a new
/// subscription against a bare keyset scan.
async fn catchup_figure(
    db: &TestDb,
    admin: &PgPool,
    tenants: &[TenantId],
    verdicts: &mut Vec<String>,
) -> anyhow::Result<()> {
    seed(admin, tenants).await?;
    // Baseline before and after the subject (the first read also warms the
    // OS cache); their mean is the baseline.
    let b1 = scan(admin).await?;
    let run = catch_up(&db.app).await?;
    let s = run.events_per_s;
    let b2 = scan(admin).await?;
    bench_line("eventlog.catchup", s, (b1 + b2) / 2.0, "events/s")?;
    catch_up_breakdown(&db.app, admin, &run).await?;
    verdicts.push(verdict(
        "eventlog.catchup",
        &format!("{s:.0} events/s"),
        s,
        CATCHUP_TARGET,
    ));
    Ok(())
}
