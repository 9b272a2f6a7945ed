//! `BENCH graphql.inbox`: the inbox query a staff member's screen sends
//! most, a page of 25 open tickets by last activity, through the whole
//! gateway over HTTP, against the same SQL served by a bare axum handler,
//! both in the same run on the same database and the same pool.
//!
//! The world: a fresh database whose `tickets` read model (the `inbox`
//! projection's table, `migrations/0008_tickets.sql`) holds 1,000,000
//! tickets of 1,000 tenants, loaded with set-based SQL as the owner (going
//! through the event log would take hours; the rows are what the
//! projection writes, with the shapes and spread of the `inbox_scale` test
//! in `services/tickets/tests/it/inbox_scale.rs`), then `VACUUM (ANALYZE)`d.
//! The benchmarked council is real: provisioned by the operator service,
//! its admin activated with a password and logged in through the GraphQL
//! `login` mutation, so every request authenticates a real session. It
//! holds [`MINE`] tickets — a large council's inbox, one in a hundred of
//! the rows, physically interleaved with the others as live traffic
//! interleaves them —; the other 999 tenants share the rest evenly (990 or
//! 991 each) and exist only as rows of the read model.
//!
//! Subject: [`Gateway::router`] served by `axum::serve` on a local port
//! with the peer address recorded (as the binary serves it, without the
//! binary's generic HTTP layers: body limit, time-out, traceparent), with
//! default `[gateway]` settings. Each request is a `POST /graphql` with
//! `Authorization: Bearer <session token>` and [`QUERY`]; every one must
//! answer 200 with no `errors`. The council is on a plan the bench defines
//! through the operator service with a rate limit no benchmark reaches
//! ([`UNTHROTTLED_PER_MINUTE`]): the rate limiter still counts every
//! request, it never refuses one (the shipped plans' 600 and 3,000 a minute
//! would measure the limiter instead of the gateway).
//!
//! Baseline: a bare axum handler on another local port, over the same
//! application-role pool (row-level security applies), that does what the
//! tickets service's read does for this page and nothing else — a
//! transaction scoped to the tenant (`begin_for_tenant`), [`INBOX_SQL`]
//! (the statement `inbox_page` prepares for this filter and sort; checked
//! against `pg_prepared_statements` before measuring, so it cannot drift),
//! commit — and answers the same JSON (`data.inbox.edges[].node` with the
//! same global ids, references, statuses, subjects, and `pageInfo`; checked
//! equal to the gateway's answer before measuring). It takes no
//! credentials: it knows its tenant.
//!
//! Load: [`CLIENTS`] concurrent clients on one keep-alive `reqwest` client,
//! each sending its next request as soon as the previous one is answered,
//! for `BENCH_ROUND_SECS` (default 3) per round, [`ROUNDS`] alternating
//! rounds of each side after a warm-up of `BENCH_WARMUP_SECS`. The figure
//! is the median of each side's requests per second; `graphql.inbox.p99`
//! is the 99th percentile of the subject's request latency over all its
//! rounds, under that same load (the baseline's beside it).
//!
//! After the rounds, stderr gets where a gateway request's time goes: each
//! service call the gateway makes for this request (the session check, the
//! tickets service's inbox, and within it the staff check, each stream fold
//! and the page's transaction) called alone by the same number of
//! concurrent tasks, as calls per second and the saturated machine's time
//! per call, set against the two sides' time per request; what is left is
//! HTTP, GraphQL and the rate limiter.
//!
//! Seeding (about 16 s here): the secondary indexes of `tickets` are
//! dropped for the load and rebuilt from their catalogue definitions
//! afterwards (checked to be all back before anything is measured).

use std::future::IntoFuture as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use sqlx::{AssertSqlSafe, PgPool, Row as _};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use ventanilla_eventlog::Limits;
use ventanilla_gateway::Gateway;
use ventanilla_gateway::live::Live;
use ventanilla_kernel::TenantId;
use ventanilla_postgres::{PgEventLog, PoolSettings, begin_for_tenant, db};
use ventanilla_runtime::Settings;
use ventanilla_tenants::operator::{Operator, ProvisionRequest};
use ventanilla_tenants::staff::Staff;
use ventanilla_tenants_domain::plan::PlanLimits;
use ventanilla_tenants_domain::staff::{SessionId, StaffId};
use ventanilla_testkit::TestDb;
use ventanilla_tickets::inbox::{self, Cursor, InboxFilter, InboxItem, InboxSort};
use ventanilla_tickets::service::Tickets;
use ventanilla_tickets_domain::ticket::Status;

use super::{env_secs, fmt_rates, median, out};

const NAME: &str = "graphql.inbox";
/// Concurrent HTTP clients.
const CLIENTS: usize = 8;
/// Alternating rounds of each side.
const ROUNDS: usize = 3;
/// Tickets in the read model, and the tenants they belong to.
const TICKETS: i64 = 1_000_000;
const TENANTS: i64 = 1_000;
/// The benchmarked council's tickets: one row in [`MINE_EVERY`].
const MINE: i64 = 10_000;
const MINE_EVERY: i64 = TICKETS / MINE;
/// Rows per seeding transaction (two connections seed at once).
const SEED_CHUNK: i64 = 250_000;
/// The page asked for.
const PAGE: i64 = 25;
/// The target: subject over baseline.
const RATIO_TARGET: f64 = 0.5;

/// The plan the council is on: the shipped plans' limits, but a rate limit
/// no benchmark reaches.
const PLAN: &str = "bench-unthrottled";
const UNTHROTTLED_PER_MINUTE: u32 = 1_000_000_000;
const SLUG: &str = "villabench";
const ADMIN_EMAIL: &str = "alcaldia@villabench.gal";
const PASSWORD: &str = "bench correct horse battery";

/// The request each client sends (the gateway's side; the baseline gets the
/// same bytes and ignores them).
const QUERY: &str = "query { inbox(first: 25, filter: {status: OPEN}) { \
     edges { node { id reference status subject } } pageInfo { hasNextPage endCursor } } }";

/// The statement `ventanilla_tickets::inbox::inbox_page` builds for
/// `filter: {status: OPEN}`, sort by last activity, no cursor: its
/// `ITEM_COLUMNS`, the tenant from the transaction's `app.tenant_id`, the
/// status filter, the order and `LIMIT first + 1` (services/tickets/src/
/// inbox.rs). Copied, and compared with what `inbox_page` really prepares
/// before measuring.
const INBOX_SQL: &str = "SELECT ticket_id, reference, kind, status, channel, subject, contact, \
     department_id, assignee_id, tags, priority, opened_at, last_activity_at, awaiting_reply, \
     messages_count, due_at, breached FROM tickets WHERE tenant_id = \
     NULLIF(current_setting('app.tenant_id', true), '')::uuid AND status = $1 \
     ORDER BY last_activity_at DESC, ticket_id DESC LIMIT $2";

/// One seeding chunk: rows `$2..$3` of the read model. `$1` is the
/// benchmarked council, which gets every [`MINE_EVERY`]th row (`$5`); the
/// other rows go round the `$4` other tenants in turn, so every tenant's
/// tickets are interleaved on disk as live traffic interleaves them. The
/// rows themselves are [`ventanilla_tickets::synthetic`]'s, as in the
/// `inbox_scale` test.
const SEED_SRC: &str = "
    SELECT CASE WHEN g % $5::bigint = 0 THEN $1::uuid
                ELSE md5('bench-tenant-' || ((g - g / $5::bigint - 1) % $4::bigint))::uuid END AS tenant_id,
           CASE WHEN g % $5::bigint = 0 THEN 'VILLABENCH'
                ELSE 'T' || ((g - g / $5::bigint - 1) % $4::bigint) END AS prefix,
           CASE WHEN g % $5::bigint = 0 THEN g / $5::bigint + 1
                ELSE (g - g / $5::bigint - 1) / $4::bigint + 1 END AS n
      FROM generate_series($2::bigint, $3::bigint - 1) g";

/// Each ticket's last activity: some moment of the three years before
/// 2026-06-01.
const SEED_LAST_ACTIVITY: &str =
    "timestamptz '2026-06-01 00:00:00+00' - make_interval(secs => 60 + h2 % (3 * 365 * 86400))";

/// Subjects as citizens write them.
const SEED_SUBJECT: &str = "(ARRAY['Farola apagada en la calle Mayor', '¿Cuándo abre el registro el sábado?',
           'Contenedor quemado junto al colegio', 'El autobús de la línea 3 no pasó',
           'Árbol caído en la acera del parque', 'Tarjeta de aparcamiento para residentes'])[1 + h2 % 6]
        || ' (' || n || ')'";

/// The seeding statement (see [`SEED_SRC`]).
fn seed_sql() -> String {
    ventanilla_tickets::synthetic::load_tickets(SEED_SRC, SEED_LAST_ACTIVITY, SEED_SUBJECT, "")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The `p` quantile (nearest rank) of `values`, in ms.
fn quantile_ms(values: &mut [Duration], p: f64) -> f64 {
    values.sort_unstable();
    if values.is_empty() {
        return 0.0;
    }
    let rank = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
    ms(values[rank - 1])
}

// ---------------------------------------------------------------------------
// The world

/// Loads [`TICKETS`] rows into the read model, in chunks of
/// [`SEED_CHUNK`] on two connections, then the status counts the
/// projection keeps, then `VACUUM (ANALYZE)`. Returns the seconds it took.
async fn seed(admin: &PgPool, mine: TenantId) -> anyhow::Result<f64> {
    let started = Instant::now();
    // Maintaining nine indexes row by row in random key order is most of a
    // bulk load's time: the secondary indexes are dropped for the load and
    // rebuilt from their own definitions (read back from the catalogue, so
    // they are exactly the migration's), each in one sorted pass. The
    // primary key stays.
    let indexes: Vec<(String, String)> = sqlx::query_as(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i \
          WHERE i.schemaname = current_schema() AND i.tablename = 'tickets' \
            AND NOT EXISTS (SELECT 1 FROM pg_constraint c \
                             WHERE c.conrelid = 'tickets'::regclass AND c.conname = i.indexname) \
          ORDER BY i.indexname",
    )
    .fetch_all(admin)
    .await?;
    for (name, _) in &indexes {
        sqlx::query(AssertSqlSafe(format!("DROP INDEX {name}")))
            .execute(admin)
            .await?;
    }
    let chunks: Arc<Vec<(i64, i64)>> = Arc::new(
        (0..(TICKETS + SEED_CHUNK - 1) / SEED_CHUNK)
            .map(|k| (k * SEED_CHUNK, ((k + 1) * SEED_CHUNK).min(TICKETS)))
            .collect(),
    );
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
                sqlx::query("SET LOCAL jit = off").execute(&mut *tx).await?;
                sqlx::query("SET LOCAL work_mem = '256MB'")
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query(AssertSqlSafe(seed_sql()))
                    .bind(mine.into_uuid())
                    .bind(lo)
                    .bind(hi)
                    .bind(TENANTS - 1)
                    .bind(MINE_EVERY)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                tx.commit().await?;
                if i64::try_from(done)? != hi - lo {
                    bail!("seeding tickets {lo}..{hi} stored {done}");
                }
                eprintln!(
                    "  seeded tickets {lo}..{hi} of {TICKETS} in {:.1} s",
                    chunk.elapsed().as_secs_f64()
                );
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let loaded = started.elapsed().as_secs_f64();
    let rebuild = Instant::now();
    let definitions = Arc::new(indexes);
    let next = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (admin, definitions, next) =
            (admin.clone(), Arc::clone(&definitions), Arc::clone(&next));
        workers.push(tokio::spawn(async move {
            loop {
                let k = usize::try_from(next.fetch_add(1, Ordering::Relaxed))?;
                let Some((_, definition)) = definitions.get(k) else {
                    return anyhow::Ok(());
                };
                let mut tx = admin.begin().await?;
                sqlx::query("SET LOCAL maintenance_work_mem = '256MB'")
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(AssertSqlSafe(definition.clone()))
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
            }
        }));
    }
    for w in workers {
        w.await??;
    }
    let rebuilt = rebuild.elapsed().as_secs_f64();
    let now: Vec<String> = sqlx::query_scalar(
        "SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() \
            AND tablename = 'tickets' ORDER BY indexname",
    )
    .fetch_all(admin)
    .await?;
    if definitions.iter().any(|(_, d)| !now.contains(d)) {
        bail!("the tickets' indexes were not all rebuilt: {now:?}");
    }
    // The counts the projection keeps as tickets open and move.
    sqlx::query(
        "INSERT INTO ticket_status_counts (tenant_id, status, tickets) \
         SELECT tenant_id, status, count(*) FROM tickets GROUP BY 1, 2 \
         ON CONFLICT (tenant_id, status) DO UPDATE SET tickets = EXCLUDED.tickets",
    )
    .execute(admin)
    .await?;
    let vacuum = Instant::now();
    // Hint bits, the visibility map and statistics now, so that no round
    // pays for them.
    sqlx::query("VACUUM (ANALYZE) tickets")
        .execute(admin)
        .await?;
    let vacuumed = vacuum.elapsed().as_secs_f64();

    let row = sqlx::query(
        "SELECT count(*) AS total, count(DISTINCT tenant_id) AS tenants, \
                count(*) FILTER (WHERE tenant_id = $1) AS mine, \
                count(*) FILTER (WHERE tenant_id = $1 AND status = 'open') AS mine_open, \
                pg_size_pretty(pg_total_relation_size('tickets')) AS size \
           FROM tickets",
    )
    .bind(mine.into_uuid())
    .fetch_one(admin)
    .await?;
    let (total, tenants, mine_n, open): (i64, i64, i64, i64) = (
        row.try_get("total")?,
        row.try_get("tenants")?,
        row.try_get("mine")?,
        row.try_get("mine_open")?,
    );
    let size: String = row.try_get("size")?;
    if (total, tenants, mine_n) != (TICKETS, TENANTS, MINE) {
        bail!(
            "the read model holds {total} tickets of {tenants} tenants ({mine_n} of the council), \
             not {TICKETS} of {TENANTS} ({MINE})"
        );
    }
    if open <= PAGE {
        bail!("the council has {open} open tickets: not a full page and a next one");
    }
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "{NAME}: read model seeded with {total} tickets of {tenants} tenants ({mine_n} of the \
         council, {open} of them open), table and indexes {size}; loaded in {loaded:.1} s, \
         {} indexes rebuilt in {rebuilt:.1} s, VACUUM (ANALYZE) {vacuumed:.1} s, {seconds:.1} s in all",
        definitions.len()
    );
    Ok(seconds)
}

/// The council: a plan with no practical rate limit, provisioned on it, its
/// admin activated with [`PASSWORD`].
async fn council(log: &Arc<PgEventLog>) -> anyhow::Result<(TenantId, StaffId)> {
    let operator = Operator::new(Arc::clone(log), "bench");
    let provincia = operator
        .plans()
        .await
        .map_err(|e| anyhow!("reading the plans: {e}"))?
        .into_iter()
        .find(|p| p.plan.code.as_str() == "provincia")
        .context("the shipped plan provincia is missing")?
        .plan
        .limits;
    operator
        .define_plan(
            PLAN,
            "Bench (unthrottled)",
            PlanLimits {
                api_requests_per_minute: UNTHROTTLED_PER_MINUTE,
                ..provincia
            },
            false,
        )
        .await
        .map_err(|e| anyhow!("defining the plan: {e}"))?;
    let p = operator
        .provision(&ProvisionRequest {
            name: "Concello de Villabench".into(),
            slug: SLUG.into(),
            kind: "council".into(),
            plan: Some(PLAN.into()),
            admin_email: ADMIN_EMAIL.into(),
            ..ProvisionRequest::default()
        })
        .await
        .map_err(|e| anyhow!("provisioning the council: {e}"))?;
    Staff::new(Arc::clone(log))
        .accept_invitation(p.tenant, p.admin, &p.invitation_code, PASSWORD)
        .await
        .map_err(|e| anyhow!("activating the admin: {e}"))?;
    Ok((p.tenant, p.admin))
}

/// Serves `app` on a local port until `shutdown`; its base URL.
async fn serve(
    app: Router,
    shutdown: &CancellationToken,
    tasks: &mut Vec<JoinHandle<anyhow::Result<()>>>,
) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let server = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown.clone().cancelled_owned())
    .into_future();
    tasks.push(tokio::spawn(async move { Ok(server.await?) }));
    Ok(base)
}

// ---------------------------------------------------------------------------
// The baseline

/// What the bare handler needs: the pool and its one tenant.
struct Bare {
    pool: PgPool,
    tenant: TenantId,
}

/// The page as the tickets service reads it, and nothing more: a
/// transaction scoped to the tenant, [`INBOX_SQL`], commit.
async fn bare_items(pool: &PgPool, tenant: TenantId) -> anyhow::Result<(Vec<InboxItem>, bool)> {
    let mut tx = begin_for_tenant(pool, tenant).await?;
    let mut items: Vec<InboxItem> = sqlx::query_as(INBOX_SQL)
        .bind(Status::Open.as_str())
        .bind(PAGE + 1)
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    let more = items.len() > usize::try_from(PAGE)?;
    items.truncate(usize::try_from(PAGE)?);
    Ok((items, more))
}

/// The page in the shape the gateway answers.
fn page_json(items: &[InboxItem], more: bool) -> Value {
    let edges: Vec<Value> = items
        .iter()
        .map(|i| {
            json!({ "node": {
                "id": STANDARD.encode(format!("Ticket:{}", i.ticket_id)),
                "reference": i.reference,
                "status": i.status.to_uppercase(),
                "subject": i.subject,
            }})
        })
        .collect();
    let end = items.last().map(|i| {
        Cursor {
            key: Some(i.last_activity_at),
            ticket: i.ticket_id,
        }
        .encode()
    });
    json!({ "data": { "inbox": {
        "edges": edges,
        "pageInfo": { "hasNextPage": more, "endCursor": end },
    }}})
}

async fn bare(State(bare): State<Arc<Bare>>, _body: Bytes) -> axum::response::Response {
    match bare_items(&bare.pool, bare.tenant).await {
        Ok((items, more)) => (
            StatusCode::OK,
            [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
            axum::Json(page_json(&items, more)),
        )
            .into_response(),
        Err(e) => {
            eprintln!("  the bare handler failed: {e:#}");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// `INBOX_SQL` is what `inbox_page` prepares for this page, and both give
/// the same tickets.
async fn check_sql(pool: &PgPool, tenant: TenantId) -> anyhow::Result<()> {
    let filter = InboxFilter {
        status: Some(Status::Open),
        ..InboxFilter::default()
    };
    let mut tx = begin_for_tenant(pool, tenant).await?;
    let page = inbox::inbox_page(
        &mut tx,
        &filter,
        InboxSort::LastActivity,
        u32::try_from(PAGE)?,
        None,
    )
    .await?;
    let prepared: Vec<String> = sqlx::query_scalar("SELECT statement FROM pg_prepared_statements")
        .fetch_all(&mut *tx)
        .await?;
    tx.commit().await?;
    if !prepared.iter().any(|s| s == INBOX_SQL) {
        bail!(
            "the baseline's SQL is not what inbox_page prepares; it prepared:\n{}",
            prepared.join("\n")
        );
    }
    let (items, more) = bare_items(pool, tenant).await?;
    if items != page.items || more != page.next.is_some() {
        bail!("the baseline's page differs from inbox_page's");
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// The load

/// What one side did in a round.
struct Round {
    requests: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Round {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

struct Load {
    http: reqwest::Client,
    body: String,
    authorization: String,
}

impl Load {
    /// One request; its latency. Anything but a 200 without `errors` fails
    /// the figure.
    async fn send(&self, url: &str) -> anyhow::Result<Duration> {
        let started = Instant::now();
        let answer = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("authorization", &self.authorization)
            .body(self.body.clone())
            .send()
            .await?;
        let status = answer.status();
        let bytes = answer.bytes().await?;
        let took = started.elapsed();
        if status != reqwest::StatusCode::OK || bytes.windows(9).any(|w| w == b"\"errors\":") {
            bail!(
                "{url} answered {status}: {}",
                String::from_utf8_lossy(&bytes[..bytes.len().min(500)])
            );
        }
        Ok(took)
    }

    /// [`CLIENTS`] clients, each sending its next request when the last is
    /// answered, for `duration`.
    async fn run(self: &Arc<Self>, url: &str, duration: Duration) -> anyhow::Result<Round> {
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            let (load, url) = (Arc::clone(self), url.to_owned());
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::new();
                while Instant::now() < deadline {
                    latencies.push(load.send(&url).await?);
                }
                anyhow::Ok(latencies)
            }));
        }
        let mut latencies = Vec::new();
        for t in tasks {
            latencies.extend(t.await??);
        }
        Ok(Round {
            requests: latencies.len(),
            elapsed: started.elapsed(),
            latencies,
        })
    }

    /// The JSON answer of one request.
    async fn answer(&self, url: &str) -> anyhow::Result<Value> {
        let answer = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .header("authorization", &self.authorization)
            .body(self.body.clone())
            .send()
            .await?;
        Ok(answer.json().await?)
    }
}

/// Logs the admin in through the gateway; the session token and the staff id.
async fn login(http: &reqwest::Client, url: &str) -> anyhow::Result<(String, String)> {
    let answer: Value = http
        .post(url)
        .json(&json!({
            "query": "mutation($t: String!, $e: String!, $p: String!) { login(tenant: $t, email: $e, password: $p) { token staffId } }",
            "variables": { "t": SLUG, "e": ADMIN_EMAIL, "p": PASSWORD },
        }))
        .send()
        .await?
        .json()
        .await?;
    let token = answer["data"]["login"]["token"]
        .as_str()
        .with_context(|| format!("the login failed: {answer}"))?;
    let staff = answer["data"]["login"]["staffId"]
        .as_str()
        .with_context(|| format!("the login failed: {answer}"))?;
    Ok((token.to_owned(), staff.to_owned()))
}

// ---------------------------------------------------------------------------
// The figure

/// The inbox figure: see the module documentation.
pub async fn figure(verdicts: &mut Vec<String>) -> anyhow::Result<()> {
    let started = Instant::now();
    let shutdown = CancellationToken::new();
    let mut tasks = Vec::new();
    let db = TestDb::new().await;
    let result = measure(&db, &shutdown, &mut tasks, verdicts).await;
    shutdown.cancel();
    for t in tasks {
        match tokio::time::timeout(Duration::from_secs(10), t).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => eprintln!("  a server of the figure failed: {e:#}"),
            Ok(Err(e)) => eprintln!("  a server of the figure panicked: {e}"),
            Err(_) => eprintln!("  a server of the figure did not stop within 10 s"),
        }
    }
    eprintln!(
        "  {NAME}: figure run time {:.1} s",
        started.elapsed().as_secs_f64()
    );
    result
}

async fn measure(
    db: &TestDb,
    shutdown: &CancellationToken,
    tasks: &mut Vec<JoinHandle<anyhow::Result<()>>>,
    verdicts: &mut Vec<String>,
) -> anyhow::Result<()> {
    let round = env_secs("BENCH_ROUND_SECS", 3.0)?;
    let warmup = env_secs("BENCH_WARMUP_SECS", 0.5)?;
    let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
    let (tenant, admin) = council(&log).await?;

    // Seeding outlasts the test kit's 30 s statement time-out.
    let owner = db::connect(
        &db.admin_url,
        &PoolSettings {
            max_connections: 2,
            statement_timeout: Duration::from_secs(600),
            ..PoolSettings::default()
        },
    )
    .await?;
    let seeded_in = seed(&owner, tenant).await?;
    owner.close().await;

    // Both servers, on the same application-role pool.
    let settings = Settings::load_from(None, Vec::<(String, String)>::new())?;
    // As `serve` runs it: fed by the log (live subscriptions, and the
    // memory of who is who that the log keeps honest).
    let live = Live::start(
        Arc::clone(&log),
        Tickets::new(Arc::clone(&log)),
        shutdown.clone(),
    )
    .await?;
    let gateway = Gateway::new(Arc::clone(&log), &settings).router_with(live)?;
    let subject_url = format!("{}/graphql", serve(gateway, shutdown, tasks).await?);
    let bare_router = Router::new()
        .route("/graphql", post(bare))
        .with_state(Arc::new(Bare {
            pool: db.app.clone(),
            tenant,
        }));
    let baseline_url = format!("{}/graphql", serve(bare_router, shutdown, tasks).await?);

    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .timeout(Duration::from_secs(30))
        .build()?;
    let (token, staff) = login(&http, &subject_url).await?;
    if staff != admin.to_string() {
        bail!("logged in as {staff}, not the admin {admin}");
    }
    let load = Arc::new(Load {
        http,
        body: json!({ "query": QUERY }).to_string(),
        authorization: format!("Bearer {token}"),
    });

    // Same SQL as the service, same answer as the gateway.
    check_sql(&db.app, tenant).await?;
    let (g, b) = (
        load.answer(&subject_url).await?,
        load.answer(&baseline_url).await?,
    );
    if g != b {
        bail!("the gateway and the bare handler answer differently:\n{g}\n{b}");
    }
    let edges = g["data"]["inbox"]["edges"].as_array().map_or(0, Vec::len);
    if i64::try_from(edges)? != PAGE {
        bail!("the gateway answered {edges} tickets, not {PAGE}: {g}");
    }

    // Warm-up: connections, statement caches, the plan cache of the limiter.
    load.run(&subject_url, warmup).await?;
    load.run(&baseline_url, warmup).await?;
    let (mut s, mut bl) = (Vec::new(), Vec::new());
    let (mut s_lat, mut b_lat) = (Vec::new(), Vec::new());
    for r in 0..ROUNDS {
        for side in 0..2 {
            let subject = (side == 0) == (r % 2 == 0);
            let url = if subject { &subject_url } else { &baseline_url };
            let done = load.run(url, round).await?;
            if subject {
                s.push(done.rate());
                s_lat.extend(done.latencies);
            } else {
                bl.push(done.rate());
                b_lat.extend(done.latencies);
            }
        }
    }
    eprintln!(
        "  {NAME}: rounds of {:.1} s with {CLIENTS} clients, gateway [{}] requests/s, bare handler [{}] requests/s",
        round.as_secs_f64(),
        fmt_rates(&s),
        fmt_rates(&bl)
    );
    let (subject, baseline) = (median(&s).round(), median(&bl).round());
    let ratio = if baseline > 0.0 {
        subject / baseline
    } else {
        0.0
    };
    let (p50, p99) = (quantile_ms(&mut s_lat, 0.50), quantile_ms(&mut s_lat, 0.99));
    let (b50, b99) = (quantile_ms(&mut b_lat, 0.50), quantile_ms(&mut b_lat, 0.99));
    out(&format!(
        "BENCH {NAME} {subject:.0} requests/s baseline={baseline:.0} ratio={ratio:.2} \
         p50_ms={p50:.1} baseline_p50_ms={b50:.1} clients={CLIENTS} tickets={TICKETS} \
         tenants={TENANTS} tenant_tickets={MINE} seed_s={seeded_in:.0}"
    ))?;
    out(&format!("BENCH {NAME}.p99 {p99:.1} ms baseline={b99:.1}"))?;
    verdicts.push(crate::verdict(
        NAME,
        &format!("ratio {ratio:.2}"),
        ratio,
        RATIO_TARGET,
    ));

    breakdown(db, &log, tenant, admin, &token, (subject, baseline)).await
}

/// A piece of a gateway request, called alone.
#[derive(Debug, Clone, Copy)]
enum Piece {
    /// The session check the gateway makes on every request
    /// (`Staff::authenticate`: the tenant's stream, the session's row in a
    /// tenant transaction, the member's stream).
    Authenticate,
    /// The tickets service's inbox page (`Tickets::inbox`: its staff check,
    /// then the page's transaction).
    ServiceInbox,
    /// The service's staff check alone (`Tenancy::working_role`).
    WorkingRole,
    /// Folding the tenant's stream (`Tenancy::active_tenant`).
    TenantStream,
    /// Folding the member's stream (`Tenancy::member`).
    MemberStream,
    /// The page's transaction, as the bare handler runs it.
    PageTransaction,
}

/// What the pieces are called with.
struct Pieces {
    staff: Staff,
    tickets: Tickets,
    pool: PgPool,
    tenant: TenantId,
    admin: StaffId,
    session: SessionId,
    secret: String,
    filter: InboxFilter,
}

impl Pieces {
    async fn call(&self, piece: Piece) -> anyhow::Result<()> {
        let (tenant, admin) = (self.tenant, self.admin);
        match piece {
            Piece::Authenticate => {
                self.staff
                    .authenticate(tenant, self.session, &self.secret)
                    .await
                    .map_err(|e| anyhow!("authenticate: {e}"))?;
            }
            Piece::ServiceInbox => {
                let page = self
                    .tickets
                    .inbox(
                        tenant,
                        admin,
                        &self.filter,
                        InboxSort::LastActivity,
                        u32::try_from(PAGE)?,
                        None,
                    )
                    .await
                    .map_err(|e| anyhow!("inbox: {e}"))?;
                if i64::try_from(page.items.len())? != PAGE {
                    bail!("the service's inbox gave {} tickets", page.items.len());
                }
            }
            Piece::WorkingRole => {
                self.tickets
                    .tenancy()
                    .working_role(tenant, admin)
                    .await
                    .map_err(|e| anyhow!("working_role: {e}"))?
                    .context("the admin has no working role")?;
            }
            Piece::TenantStream => {
                self.tickets
                    .tenancy()
                    .active_tenant(tenant)
                    .await
                    .map_err(|e| anyhow!("active_tenant: {e}"))?;
            }
            Piece::MemberStream => {
                self.tickets
                    .tenancy()
                    .member(tenant, admin)
                    .await
                    .map_err(|e| anyhow!("member: {e}"))?
                    .context("the admin is not a member")?;
            }
            Piece::PageTransaction => {
                bare_items(&self.pool, tenant).await?;
            }
        }
        Ok(())
    }

    /// `piece` called by [`CLIENTS`] concurrent tasks for `duration`: calls
    /// per second.
    async fn rate(self: &Arc<Self>, piece: Piece, duration: Duration) -> anyhow::Result<f64> {
        let started = Instant::now();
        let deadline = started + duration;
        let mut tasks = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            let pieces = Arc::clone(self);
            tasks.push(tokio::spawn(async move {
                let mut calls = 0_u64;
                while Instant::now() < deadline {
                    pieces.call(piece).await?;
                    calls += 1;
                }
                anyhow::Ok(calls)
            }));
        }
        let mut calls = 0;
        for t in tasks {
            calls += t.await??;
        }
        Ok(calls as f64 / started.elapsed().as_secs_f64())
    }
}

/// Where a gateway request's time goes: each piece it is made of, called
/// alone by the same [`CLIENTS`] concurrent tasks (in this process, no
/// HTTP), as calls per second and what one call costs the saturated machine
/// (1 / rate); and the events the two streams it folds hold.
async fn breakdown(
    db: &TestDb,
    log: &Arc<PgEventLog>,
    tenant: TenantId,
    admin: StaffId,
    token: &str,
    (subject, baseline): (f64, f64),
) -> anyhow::Result<()> {
    let mut parts = token.split('.');
    let (Some(_), Some(_), Some(session), Some(secret)) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        bail!("the session token is not vs1.<tenant>.<session>.<secret>");
    };
    let pieces = Arc::new(Pieces {
        staff: Staff::new(Arc::clone(log)),
        tickets: Tickets::new(Arc::clone(log)),
        pool: db.app.clone(),
        tenant,
        admin,
        session: SessionId(Uuid::parse_str(session)?),
        secret: secret.to_owned(),
        filter: InboxFilter {
            status: Some(Status::Open),
            ..InboxFilter::default()
        },
    });
    let each = Duration::from_secs(1);
    let cost = |rate: f64| if rate > 0.0 { 1000.0 / rate } else { 0.0 };
    let mut lines = vec![format!(
        "gateway over HTTP {subject:.0}/s ({:.2} ms), bare handler over HTTP {baseline:.0}/s ({:.2} ms)",
        cost(subject),
        cost(baseline)
    )];
    let mut costs = Vec::new();
    for piece in [
        Piece::Authenticate,
        Piece::ServiceInbox,
        Piece::WorkingRole,
        Piece::TenantStream,
        Piece::MemberStream,
        Piece::PageTransaction,
    ] {
        pieces.rate(piece, each / 4).await?;
        let rate = pieces.rate(piece, each).await?;
        costs.push(cost(rate));
        lines.push(format!("{piece:?} {rate:.0}/s ({:.2} ms)", cost(rate)));
    }
    let (authenticate, service_inbox, page) = (costs[0], costs[1], costs[5]);
    let streams: Vec<(String, i64)> = sqlx::query_as(
        "SELECT stream_id, count(*) FROM events WHERE tenant_id = $1 \
          AND stream_id IN ($2, $3) GROUP BY stream_id ORDER BY stream_id",
    )
    .bind(tenant.into_uuid())
    .bind(String::from(ventanilla_tenants_domain::tenant::stream_id(
        tenant,
    )?))
    .bind(String::from(ventanilla_tenants_domain::staff::stream_id(
        admin,
    )?))
    .fetch_all(&db.admin)
    .await?;
    eprintln!(
        "  {NAME}: where a request's time goes, each piece called alone by {CLIENTS} tasks \
         (calls/s, and the saturated machine's time per call):\n    {}\n    so: the session check \
         and the service's inbox account for {:.2} ms of the gateway's {:.2} ms, the page's \
         transaction for {page:.2} ms of that; HTTP, GraphQL (parse, validation, execution, \
         JSON) and the rate limiter for the other {:.2} ms, against {:.2} ms of HTTP and JSON \
         around the bare handler's transaction. Events folded per request (twice each): {}",
        lines.join("\n    "),
        authenticate + service_inbox,
        cost(subject),
        cost(subject) - authenticate - service_inbox,
        cost(baseline) - page,
        streams
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
