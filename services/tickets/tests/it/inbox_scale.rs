//! The inbox at scale: "an inbox page of 25 out of 100,000 tickets of one
//! tenant, among 1,000 tenants, answers from an index, not a scan".
//!
//! The `tickets` read model is loaded directly as the owner (it is a read
//! model: direct rows are fine for a planner test) with 100,000 tickets of
//! one council and 100 of each of 1,000 other tenants, with a realistic
//! spread of status, channel, kind, department, assignee, tags, due instants,
//! activity and breaches; then `ANALYZE`d.
//!
//! For each filter and sort, the statement is the one
//! [`inbox::inbox_page`] really prepares: the test runs the function on a
//! fresh application-role connection, reads the statement back from
//! `pg_prepared_statements` (so the SQL here can never drift from
//! `inbox.rs`), and runs `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE` of
//! that very statement, row-level security applying:
//!
//! - with a custom plan (the parameters known to the planner);
//! - with a generic plan built while a *small* tenant was set (what a pooled
//!   connection's cached statement may hold after the plan cache switches to
//!   generic), then executed for the big tenant.
//!
//! Each plan must read the tickets through a tenant-leading `tickets_by_*`
//! index, with no sequential scan, and read few rows for a 25-row page. The
//! filters without an index of their own (tag, channel, kind, breached
//! alone, unassigned) are asserted for what they do: the activity index,
//! stopping at the `LIMIT`. The due-time sort, first page and next page,
//! is one range of `tickets_by_due` (ordered by `due_order`, infinity for
//! tickets with no running clock, which come last).
//!
//! Then the real function pages through the loaded rows (cursor round trip
//! included) and must give exactly what the owner sees, in order, without
//! overlap or gap, and the right status counts.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use uuid::Uuid;
use ventanilla_tickets::inbox::{self, Cursor, InboxFilter, InboxItem, InboxSort};
use ventanilla_tickets::synthetic;
use ventanilla_tickets_domain::ticket::Status;
use ventanilla_tickets_domain::values::Channel;

use crate::support::World;

/// The big tenant's tickets.
const BIG: i64 = 100_000;
/// The other tenants, and the tickets of each.
const OTHERS: i64 = 1_000;
const EACH: i64 = 100;
/// The page size asked.
const PAGE: u32 = 25;
/// The most rows an index scan may read for one page of a filter without an
/// index of its own.
const MAX_ROWS_READ: f64 = 2_000.0;
/// The most buffers (8 kB pages) one page may touch.
const MAX_BUFFERS: u64 = 1_000;

/// The rows of the big tenant (`$1`, `$2` of them) and of `$3` others
/// (`$4` each), for [`synthetic::load_tickets`].
const SRC: &str = "
    SELECT t.tenant_id, t.prefix, g AS n
      FROM (SELECT $1::uuid AS tenant_id, 'BIG' AS prefix, $2::int AS rows
            UNION ALL
            SELECT md5('tenant-' || k)::uuid, 'T' || k, $4::int FROM generate_series(1, $3::int) k) t,
           LATERAL generate_series(1, t.rows) g";

/// One in 25 tickets has its last activity at a shared instant (groups of
/// 40 in the big tenant), so the cursor's tie-break by ticket id is
/// exercised at page boundaries.
const LAST_ACTIVITY: &str = "CASE WHEN n % 25 = 0 THEN timestamptz '2026-06-01 00:00:00+00' - make_interval(days => n / 1000) ELSE timestamptz '2026-06-01 00:00:00+00' - make_interval(secs => 60 + h2 % (3 * 365 * 86400)) END";

/// Loads the read model: `$1` is the big tenant (see [`SRC`]).
fn load() -> String {
    synthetic::load_tickets(
        SRC,
        LAST_ACTIVITY,
        "'Asunto ' || n",
        " ORDER BY tenant_id, last_activity_at",
    )
}

/// The columns `inbox_page` selects, in its order (what the captured
/// statement must start with).
const SELECT_PREFIX: &str = "SELECT ticket_id, reference, kind, status, channel, subject, contact, \
     department_id, assignee_id, tags, priority, opened_at, last_activity_at, awaiting_reply, \
     messages_count, due_at, breached FROM tickets WHERE tenant_id = \
     NULLIF(current_setting('app.tenant_id', true), '')::uuid";

/// How the pages by activity end (the LIMIT's parameter number follows).
const BY_ACTIVITY: &str = "ORDER BY last_activity_at DESC, ticket_id DESC LIMIT $";

/// What a plan must show.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// Served by one of these indexes alone: every row the scan reads is on
    /// the page (no row removed by a filter).
    Exact(&'static [&'static str]),
    /// A filter with no index of its own: one of these indexes, in the
    /// page's order, stopping at the LIMIT after at most MAX_ROWS_READ rows.
    Filtered(&'static [&'static str]),
}

/// One inbox page to explain.
struct Case {
    name: &'static str,
    filter: InboxFilter,
    sort: InboxSort,
    after: Option<Cursor>,
    /// Fragments the captured statement must contain.
    sql: &'static [&'static str],
    expect: Expect,
}

/// A literal for `EXECUTE name(...)`, in `inbox_page`'s bind order.
#[derive(Debug, Clone)]
enum Lit {
    Text(String),
    Uuid(Uuid),
    Bool(bool),
    Ts(Option<DateTime<Utc>>),
    Int(i64),
}

impl Lit {
    fn sql(&self) -> String {
        match self {
            Lit::Text(s) => format!("'{}'::text", s.replace('\'', "''")),
            Lit::Uuid(u) => format!("'{u}'::uuid"),
            Lit::Bool(b) => b.to_string(),
            Lit::Ts(Some(t)) => format!(
                "'{}'::timestamptz",
                t.to_rfc3339_opts(SecondsFormat::Micros, true)
            ),
            Lit::Ts(None) => "NULL::timestamptz".to_owned(),
            Lit::Int(i) => format!("{i}::bigint"),
        }
    }

    fn type_name(&self) -> &'static str {
        match self {
            Lit::Text(_) => "text",
            Lit::Uuid(_) => "uuid",
            Lit::Bool(_) => "boolean",
            Lit::Ts(_) => "timestamp with time zone",
            Lit::Int(_) => "bigint",
        }
    }
}

/// The parameters `inbox_page` binds for this page, in its order.
fn literals(case: &Case) -> Vec<Lit> {
    let f = &case.filter;
    let mut v = Vec::new();
    if let Some(s) = f.status {
        v.push(Lit::Text(s.as_str().to_owned()));
    }
    if let Some(k) = &f.kind {
        v.push(Lit::Text(k.clone()));
    }
    if let Some(d) = f.department {
        v.push(Lit::Uuid(d));
    }
    if let Some(a) = f.assignee {
        v.push(Lit::Uuid(a));
    }
    if let Some(c) = f.channel {
        v.push(Lit::Text(c.as_str().to_owned()));
    }
    if let Some(t) = &f.tag {
        v.push(Lit::Text(t.clone()));
    }
    if let Some(b) = f.breached {
        v.push(Lit::Bool(b));
    }
    match (case.sort, case.after) {
        (_, None) => {}
        (InboxSort::LastActivity, Some(c)) => {
            v.push(Lit::Ts(c.key));
            v.push(Lit::Uuid(c.ticket));
        }
        (InboxSort::DueTime, Some(c)) => {
            v.push(Lit::Text(
                c.key
                    .map_or_else(|| "infinity".to_owned(), |k| k.to_rfc3339()),
            ));
            v.push(Lit::Uuid(c.ticket));
        }
    }
    v.push(Lit::Int(i64::from(PAGE) + 1));
    v
}

/// What a plan did, from `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)`.
#[derive(Debug, Default)]
struct Probe {
    /// Every node, `type[index]` from the top, for the report.
    shape: Vec<String>,
    /// The indexes scanned on `tickets`.
    indexes: Vec<String>,
    /// Sequential scans of `tickets`.
    seq_scans: usize,
    /// Sort nodes.
    sorts: usize,
    /// Rows the scans of `tickets` read (returned plus removed by a filter).
    rows_read: f64,
    /// Rows the scans of `tickets` removed by a filter.
    rows_removed: f64,
    /// Rows the plan returned.
    rows_out: f64,
    /// Shared buffers hit or read.
    buffers: u64,
    /// Execution time, ms.
    ms: f64,
    /// The index conditions, for the report.
    conds: Vec<String>,
}

fn num(node: &Value, key: &str) -> f64 {
    node.get(key).and_then(Value::as_f64).unwrap_or(0.0)
}

fn walk(node: &Value, p: &mut Probe) {
    let kind = node["Node Type"].as_str().unwrap_or("?").to_owned();
    let on_tickets = node["Relation Name"].as_str() == Some("tickets");
    let index = node["Index Name"].as_str().map(str::to_owned);
    p.shape.push(match &index {
        Some(i) => format!("{kind}[{i}]"),
        None if on_tickets => format!("{kind}[tickets]"),
        None => kind.clone(),
    });
    if kind == "Sort" || kind == "Incremental Sort" {
        p.sorts += 1;
    }
    if on_tickets {
        let loops = num(node, "Actual Loops").max(1.0);
        let removed = (num(node, "Rows Removed by Filter")
            + num(node, "Rows Removed by Index Recheck"))
            * loops;
        p.rows_read += num(node, "Actual Rows") * loops + removed;
        p.rows_removed += removed;
        if kind == "Seq Scan" {
            p.seq_scans += 1;
        }
        if let Some(i) = index {
            p.indexes.push(i);
        }
        if let Some(c) = node["Index Cond"].as_str() {
            p.conds.push(c.to_owned());
        }
    }
    if kind == "Bitmap Index Scan" {
        // Its heap scan is the node on `tickets`; keep the index's name.
        if let Some(i) = node["Index Name"].as_str() {
            p.indexes.push(i.to_owned());
        }
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        walk(child, p);
    }
}

fn probe(explained: &Value) -> Probe {
    let top = &explained[0];
    let plan = &top["Plan"];
    let mut p = Probe {
        rows_out: num(plan, "Actual Rows"),
        buffers: (num(plan, "Shared Hit Blocks") + num(plan, "Shared Read Blocks")) as u64,
        ms: num(top, "Execution Time"),
        ..Probe::default()
    };
    walk(plan, &mut p);
    p
}

async fn explain(conn: &mut PgConnection, sql: &str) -> Value {
    sqlx::query_scalar(AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn set_tenant(conn: &mut PgConnection, tenant: Uuid) {
    sqlx::query("SELECT set_config('app.tenant_id', $1, true)")
        .bind(tenant.to_string())
        .execute(&mut *conn)
        .await
        .unwrap();
}

/// Checks one plan against what the case expects; returns a line for the
/// report.
fn check(case: &Case, which: &str, p: &Probe, expected_rows: f64) -> String {
    let line = format!(
        "{:<22} {which:<8} {:>8.2} ms  rows read {:>7}  removed {:>7}  buffers {:>5}  {}",
        case.name,
        p.ms,
        p.rows_read,
        p.rows_removed,
        p.buffers,
        p.shape.join(" > ")
    );
    assert_eq!(
        p.rows_out, expected_rows,
        "{}: {which} plan returned a different number of rows\n{line}",
        case.name
    );
    match case.expect {
        Expect::Exact(allowed) | Expect::Filtered(allowed) => {
            assert_eq!(
                p.seq_scans, 0,
                "{}: {which} plan scans the whole table\n{line}",
                case.name
            );
            assert_eq!(
                p.sorts, 0,
                "{}: {which} plan sorts instead of reading an index in order\n{line}",
                case.name
            );
            assert!(
                p.indexes.len() == 1 && allowed.contains(&p.indexes[0].as_str()),
                "{}: {which} plan should read one of {allowed:?}\n{line}",
                case.name
            );
            assert!(
                p.conds.iter().any(|c| c.contains("tenant_id =")),
                "{}: {which} plan's index condition does not lead with the tenant: {:?}\n{line}",
                case.name,
                p.conds
            );
            assert!(
                p.buffers <= MAX_BUFFERS,
                "{}: {which} plan touched {} buffers for one page\n{line}",
                case.name,
                p.buffers
            );
            if let Expect::Exact(_) = case.expect {
                assert_eq!(
                    p.rows_removed, 0.0,
                    "{}: {which} plan filters rows the index should have skipped\n{line}",
                    case.name
                );
                assert!(
                    p.rows_read <= f64::from(PAGE) + 1.0,
                    "{}: {which} plan read more than the page\n{line}",
                    case.name
                );
            } else {
                assert!(
                    p.rows_read < MAX_ROWS_READ,
                    "{}: {which} plan read {} rows for one page\n{line}",
                    case.name,
                    p.rows_read
                );
            }
        }
    }
    line
}

/// Runs the real `inbox_page` for `case` on a fresh application-role
/// connection, reads back the statement it prepared, and explains that very
/// statement with a custom plan and with a generic plan built for `small`.
async fn explain_case(w: &World, big: Uuid, small: Uuid, case: &Case) -> Vec<String> {
    let mut conn = PgConnection::connect(&w.db.app_url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    set_tenant(&mut tx, big).await;
    let page = inbox::inbox_page(&mut tx, &case.filter, case.sort, PAGE, case.after)
        .await
        .unwrap();
    let expected_rows = (page.items.len() + usize::from(page.next.is_some())) as f64;
    let prepared: Vec<(String, String, Vec<String>)> = sqlx::query_as(
        "SELECT name::text, statement, parameter_types::text[] FROM pg_prepared_statements \
          WHERE statement LIKE 'SELECT ticket_id, reference, %'",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    assert_eq!(
        prepared.len(),
        1,
        "{}: inbox_page should prepare one statement: {prepared:?}",
        case.name
    );
    let (name, statement, types) = &prepared[0];
    assert!(
        statement.starts_with(SELECT_PREFIX),
        "{}: the inbox statement changed: {statement}",
        case.name
    );
    for fragment in case.sql {
        assert!(
            statement.contains(fragment),
            "{}: expected {fragment:?} in {statement}",
            case.name
        );
    }
    let lits = literals(case);
    assert_eq!(
        types,
        &lits
            .iter()
            .map(|l| l.type_name().to_owned())
            .collect::<Vec<_>>(),
        "{}: the parameters of {statement}",
        case.name
    );
    let args = lits.iter().map(Lit::sql).collect::<Vec<_>>().join(", ");
    let execute = format!("EXECUTE \"{name}\"({args})");

    // A custom plan, as the first executions of a statement get.
    sqlx::query("SET LOCAL plan_cache_mode = force_custom_plan")
        .execute(&mut *tx)
        .await
        .unwrap();
    let custom = probe(
        &explain(
            &mut tx,
            &format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}"),
        )
        .await,
    );
    let mut lines = vec![check(case, "custom", &custom, expected_rows)];

    // A generic plan built while a small tenant was set, then run for the
    // big one: what a pooled connection's cached statement may hold.
    set_tenant(&mut tx, small).await;
    sqlx::query("SET LOCAL plan_cache_mode = force_generic_plan")
        .execute(&mut *tx)
        .await
        .unwrap();
    explain(&mut tx, &format!("EXPLAIN (FORMAT JSON) {execute}")).await;
    set_tenant(&mut tx, big).await;
    let generic = probe(
        &explain(
            &mut tx,
            &format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {execute}"),
        )
        .await,
    );
    lines.push(check(case, "generic", &generic, expected_rows));
    tx.rollback().await.unwrap();
    conn.close().await.unwrap();
    lines
}

/// How `status_counts` reads the big tenant's tickets: the statement it
/// really prepares, explained with a custom plan. Counting every ticket of
/// the tenant has no LIMIT to stop at; this is for the report.
async fn explain_status_counts(w: &World, big: Uuid) -> String {
    let mut conn = PgConnection::connect(&w.db.app_url).await.unwrap();
    let mut tx = conn.begin().await.unwrap();
    set_tenant(&mut tx, big).await;
    inbox::status_counts(&mut tx).await.unwrap();
    let name: String = sqlx::query_scalar(
        "SELECT name::text FROM pg_prepared_statements WHERE statement LIKE 'SELECT status, tickets FROM ticket_status_counts %'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let p = probe(
        &explain(
            &mut tx,
            &format!("EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) EXECUTE \"{name}\""),
        )
        .await,
    );
    tx.rollback().await.unwrap();
    conn.close().await.unwrap();
    format!(
        "{:.2} ms, rows read {}, buffers {}, {}",
        p.ms,
        p.rows_read,
        p.buffers,
        p.shape.join(" > ")
    )
}

/// The ids the owner sees for the big tenant, in an order and under a
/// condition given as SQL.
async fn owner_ids(w: &World, big: Uuid, condition: &str, order: &str) -> Vec<Uuid> {
    sqlx::query_scalar(AssertSqlSafe(format!(
        "SELECT ticket_id FROM tickets WHERE tenant_id = $1 {condition} ORDER BY {order}"
    )))
    .bind(big)
    .fetch_all(&w.db.admin)
    .await
    .unwrap()
}

/// Pages through the big tenant's inbox with the real function, passing
/// each page's cursor (through its string form) to the next, for at most
/// `max_pages` pages. Returns the ids in page order and whether the walk
/// reached the end.
async fn walk_pages(
    w: &World,
    big: Uuid,
    filter: &InboxFilter,
    sort: InboxSort,
    max_pages: usize,
) -> (Vec<Uuid>, bool) {
    let mut ids = Vec::new();
    let mut after = None;
    for _ in 0..max_pages {
        let mut tx = w.db.app.begin().await.unwrap();
        set_tenant(&mut tx, big).await;
        let page = inbox::inbox_page(&mut tx, filter, sort, PAGE, after)
            .await
            .unwrap();
        tx.rollback().await.unwrap();
        assert!(page.items.len() <= PAGE as usize);
        check_order(&page.items, sort);
        ids.extend(page.items.iter().map(|i| i.ticket_id));
        match page.next {
            Some(next) => {
                assert_eq!(page.items.len(), PAGE as usize, "a short page with a next");
                let cursor = Cursor::decode(&next).expect("the next cursor decodes");
                assert_eq!(cursor.encode(), next);
                after = Some(cursor);
            }
            None => return (ids, true),
        }
    }
    (ids, false)
}

/// The items of a page are in the page's order.
fn check_order(items: &[InboxItem], sort: InboxSort) {
    for pair in items.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        match sort {
            InboxSort::LastActivity => assert!(
                (a.last_activity_at, a.ticket_id) > (b.last_activity_at, b.ticket_id),
                "out of order: {a:?} then {b:?}"
            ),
            InboxSort::DueTime => {
                let key = |i: &InboxItem| (i.due_at.is_none(), i.due_at, i.ticket_id);
                assert!(key(a) < key(b), "out of order: {a:?} then {b:?}");
            }
        }
    }
}

#[tokio::test]
async fn an_inbox_page_of_one_tenant_among_a_thousand_answers_from_an_index() {
    let started = Instant::now();
    let w = World::new().await;
    let c = w.council("santiago").await;
    let big = c.tenant.into_uuid();
    eprintln!("inbox_scale: world and council in {:?}", started.elapsed());

    // The read model, loaded as the owner.
    let t = Instant::now();
    let mut tx = w.db.admin.begin().await.unwrap();
    sqlx::query("SET LOCAL jit = off")
        .execute(&mut *tx)
        .await
        .unwrap();
    let loaded = sqlx::query(AssertSqlSafe(load()))
        .bind(big)
        .bind(BIG as i32)
        .bind(OTHERS as i32)
        .bind(EACH as i32)
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    tx.commit().await.unwrap();
    // The counts the projection keeps as tickets open and move.
    sqlx::query(
        "INSERT INTO ticket_status_counts (tenant_id, status, tickets) \
         SELECT tenant_id, status, count(*) FROM tickets GROUP BY 1, 2 \
         ON CONFLICT (tenant_id, status) DO UPDATE SET tickets = EXCLUDED.tickets",
    )
    .execute(&w.db.admin)
    .await
    .unwrap();
    let load_time = t.elapsed();
    let t = Instant::now();
    sqlx::query("ANALYZE tickets")
        .execute(&w.db.admin)
        .await
        .unwrap();
    let analyze_time = t.elapsed();
    let (total, tenants, mine): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*), count(DISTINCT tenant_id), count(*) FILTER (WHERE tenant_id = $1) FROM tickets",
    )
    .bind(big)
    .fetch_one(&w.db.admin)
    .await
    .unwrap();
    assert_eq!(loaded, (BIG + OTHERS * EACH) as u64);
    assert_eq!(
        (total, tenants, mine),
        (BIG + OTHERS * EACH, OTHERS + 1, BIG)
    );
    eprintln!(
        "inbox_scale: loaded {total} tickets of {tenants} tenants ({mine} of one) in {load_time:?}, \
         ANALYZE in {analyze_time:?}"
    );

    // Values to filter by: an agent and a department of the big tenant, and
    // a small tenant to build generic plans with.
    let (agent, department, small): (Uuid, Uuid, Uuid) = sqlx::query_as(
        "SELECT md5($1::text || 'agent' || 7)::uuid, md5($1::text || 'dept' || 7)::uuid, md5('tenant-5')::uuid",
    )
    .bind(big)
    .fetch_one(&w.db.admin)
    .await
    .unwrap();
    let mut spread: Vec<(String, i64)> = sqlx::query_as(
        "SELECT 'status ' || status, count(*) FROM tickets WHERE tenant_id = $1 GROUP BY status \
         UNION ALL SELECT 'breached', count(*) FILTER (WHERE breached) FROM tickets WHERE tenant_id = $1 \
         UNION ALL SELECT 'due', count(due_at) FROM tickets WHERE tenant_id = $1 \
         UNION ALL SELECT 'assignee 7', count(*) FILTER (WHERE assignee_id = $2) FROM tickets WHERE tenant_id = $1 \
         UNION ALL SELECT 'department 7', count(*) FILTER (WHERE department_id = $3) FROM tickets WHERE tenant_id = $1 \
         UNION ALL SELECT 'tag7', count(*) FILTER (WHERE 'tag7' = ANY(tags)) FROM tickets WHERE tenant_id = $1",
    )
    .bind(big)
    .bind(agent)
    .bind(department)
    .fetch_all(&w.db.admin)
    .await
    .unwrap();
    spread.sort();
    eprintln!("inbox_scale: the big tenant's spread: {spread:?}");

    // A cursor into the open tickets: the 25th of the first page.
    let open_ids = owner_ids(
        &w,
        big,
        "AND status = 'open'",
        "last_activity_at DESC, ticket_id DESC LIMIT 25",
    )
    .await;
    let (open_key, open_last): (DateTime<Utc>, Uuid) = sqlx::query_as(
        "SELECT last_activity_at, ticket_id FROM tickets WHERE tenant_id = $1 AND ticket_id = $2",
    )
    .bind(big)
    .bind(open_ids[24])
    .fetch_one(&w.db.admin)
    .await
    .unwrap();

    let cases = vec![
        Case {
            name: "no filter, activity",
            filter: InboxFilter::default(),
            sort: InboxSort::LastActivity,
            after: None,
            sql: &[BY_ACTIVITY],
            expect: Expect::Exact(&["tickets_by_activity"]),
        },
        Case {
            name: "status",
            filter: InboxFilter {
                status: Some(Status::Open),
                ..InboxFilter::default()
            },
            sort: InboxSort::LastActivity,
            after: None,
            sql: &[" AND status = $1", BY_ACTIVITY],
            expect: Expect::Exact(&["tickets_by_status"]),
        },
        Case {
            name: "status, next page",
            filter: InboxFilter {
                status: Some(Status::Open),
                ..InboxFilter::default()
            },
            sort: InboxSort::LastActivity,
            after: Some(Cursor {
                key: Some(open_key),
                ticket: open_last,
            }),
            sql: &[" AND (last_activity_at, ticket_id) < ($2, $3)", BY_ACTIVITY],
            expect: Expect::Exact(&["tickets_by_status"]),
        },
        Case {
            name: "assignee",
            filter: InboxFilter {
                assignee: Some(agent),
                ..InboxFilter::default()
            },
            sort: InboxSort::LastActivity,
            after: None,
            sql: &[" AND assignee_id = $1", BY_ACTIVITY],
            expect: Expect::Exact(&["tickets_by_assignee"]),
        },
        Case {
            name: "department",
            filter: InboxFilter {
                department: Some(department),
                ..InboxFilter::default()
            },
            sort: InboxSort::LastActivity,
            after: None,
            sql: &[" AND department_id = $1", BY_ACTIVITY],
            expect: Expect::Exact(&["tickets_by_department"]),
        },
        Case {
            name: "breached + status",
            filter: InboxFilter {
                status: Some(Status::Open),
                breached: Some(true),
                ..InboxFilter::default()
            },
            sort: InboxSort::LastActivity,
            after: None,
            sql: &[" AND status = $1", " AND breached = $2", BY_ACTIVITY],
            expect: Expect::Filtered(&["tickets_by_status"]),
        },
        Case {
            name: "breached",
            filter: InboxFilter {
                breached: Some(true),
                ..InboxFilter::default()
            },
            sort: InboxSort::LastActivity,
            after: None,
            sql: &[" AND breached = $1", BY_ACTIVITY],
            expect: Expect::Filtered(&["tickets_by_activity"]),
        },
        Case {
            name: "unassigned",
            filter: InboxFilter {
                unassigned: true,
                ..InboxFilter::default()
            },
            sort: InboxSort::LastActivity,
            after: None,
            sql: &[" AND assignee_id IS NULL", BY_ACTIVITY],
            expect: Expect::Filtered(&["tickets_by_activity", "tickets_by_assignee"]),
        },
        Case {
            name: "tag",
            filter: InboxFilter {
                tag: Some("tag7".into()),
                ..InboxFilter::default()
            },
            sort: InboxSort::LastActivity,
            after: None,
            sql: &[" AND $1 = ANY(tags)", BY_ACTIVITY],
            expect: Expect::Filtered(&["tickets_by_activity"]),
        },
        Case {
            name: "channel",
            filter: InboxFilter {
                channel: Some(Channel::X),
                ..InboxFilter::default()
            },
            sort: InboxSort::LastActivity,
            after: None,
            sql: &[" AND channel = $1", BY_ACTIVITY],
            expect: Expect::Filtered(&["tickets_by_activity"]),
        },
        Case {
            name: "kind",
            filter: InboxFilter {
                kind: Some("suggestion".into()),
                ..InboxFilter::default()
            },
            sort: InboxSort::LastActivity,
            after: None,
            sql: &[" AND kind = $1", BY_ACTIVITY],
            expect: Expect::Filtered(&["tickets_by_activity"]),
        },
        Case {
            name: "due time",
            filter: InboxFilter::default(),
            sort: InboxSort::DueTime,
            after: None,
            sql: &["ORDER BY due_order ASC, ticket_id ASC LIMIT $1"],
            expect: Expect::Exact(&["tickets_by_due"]),
        },
        Case {
            name: "due time, next page",
            filter: InboxFilter::default(),
            sort: InboxSort::DueTime,
            after: Some(Cursor {
                key: Some(open_key),
                ticket: open_last,
            }),
            sql: &[" AND (due_order, ticket_id) > ($1::timestamptz, $2)"],
            expect: Expect::Exact(&["tickets_by_due"]),
        },
    ];
    let t = Instant::now();
    let mut report = Vec::new();
    for case in &cases {
        report.extend(explain_case(&w, big, small, case).await);
    }
    eprintln!(
        "inbox_scale: plans of a 25-ticket page ({} statements, custom and generic, in {:?}):\n{}",
        cases.len(),
        t.elapsed(),
        report.join("\n")
    );
    eprintln!(
        "inbox_scale: status counts (not a page; shown, not asserted): {}",
        explain_status_counts(&w, big).await
    );

    // The real function gives what the owner sees: the first page...
    let t = Instant::now();
    let mut tx = w.db.app.begin().await.unwrap();
    set_tenant(&mut tx, big).await;
    let first = inbox::inbox_page(
        &mut tx,
        &InboxFilter::default(),
        InboxSort::LastActivity,
        PAGE,
        None,
    )
    .await
    .unwrap();
    let counts = inbox::status_counts(&mut tx).await.unwrap();
    tx.rollback().await.unwrap();
    let newest = owner_ids(
        &w,
        big,
        "",
        "last_activity_at DESC, ticket_id DESC LIMIT 200",
    )
    .await;
    assert_eq!(first.items.len(), PAGE as usize);
    assert_eq!(
        first.items.iter().map(|i| i.ticket_id).collect::<Vec<_>>(),
        newest[..PAGE as usize].to_vec()
    );
    assert!(
        first.items.iter().all(|i| i.reference.starts_with("BIG-")),
        "another tenant's ticket on the page"
    );
    let tied = first
        .items
        .iter()
        .filter(|i| i.last_activity_at == first.items[0].last_activity_at)
        .count();
    assert_eq!(tied, PAGE as usize, "the first page is one tie group");

    // ... the same page through the service, for the council's agent ...
    let served = w
        .tickets
        .inbox(
            c.tenant,
            c.agent,
            &InboxFilter::default(),
            InboxSort::LastActivity,
            PAGE,
            None,
        )
        .await
        .unwrap();
    assert_eq!(served, first);

    // ... the status counts ...
    let owner_counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM tickets WHERE tenant_id = $1 GROUP BY status ORDER BY status",
    )
    .bind(big)
    .fetch_all(&w.db.admin)
    .await
    .unwrap();
    assert_eq!(counts, owner_counts);
    assert_eq!(counts.iter().map(|c| c.1).sum::<i64>(), BIG);
    assert_eq!(
        w.tickets.status_counts(c.tenant, c.agent).await.unwrap(),
        owner_counts
    );

    // ... eight pages by activity, across a tie group, without overlap or
    // gap ...
    let (walked, _) =
        walk_pages(&w, big, &InboxFilter::default(), InboxSort::LastActivity, 8).await;
    assert_eq!(walked, newest);

    // ... a filtered inbox to its end ...
    let mine_open = InboxFilter {
        status: Some(Status::Open),
        assignee: Some(agent),
        ..InboxFilter::default()
    };
    let (walked, ended) = walk_pages(&w, big, &mine_open, InboxSort::LastActivity, 100).await;
    assert!(ended);
    let expected = owner_ids(
        &w,
        big,
        &format!("AND status = 'open' AND assignee_id = '{agent}'"),
        "last_activity_at DESC, ticket_id DESC",
    )
    .await;
    assert!(expected.len() > 2 * PAGE as usize, "{}", expected.len());
    assert_eq!(walked, expected);

    // ... and by due time, from the soonest through the tickets with no
    // running clock, to the end.
    let mine = InboxFilter {
        assignee: Some(agent),
        ..InboxFilter::default()
    };
    let (walked, ended) = walk_pages(&w, big, &mine, InboxSort::DueTime, 200).await;
    assert!(ended);
    let expected = owner_ids(
        &w,
        big,
        &format!("AND assignee_id = '{agent}'"),
        "due_at ASC NULLS LAST, ticket_id ASC",
    )
    .await;
    let with_due: BTreeMap<bool, usize> =
        sqlx::query_as::<_, (bool, i64)>(
            "SELECT due_at IS NULL, count(*) FROM tickets WHERE tenant_id = $1 AND assignee_id = $2 GROUP BY 1",
        )
        .bind(big)
        .bind(agent)
        .fetch_all(&w.db.admin)
        .await
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, v as usize))
        .collect();
    assert!(
        with_due.get(&false).copied().unwrap_or(0) > PAGE as usize
            && with_due.get(&true).copied().unwrap_or(0) > PAGE as usize,
        "the walk crosses from due tickets to undue ones: {with_due:?}"
    );
    assert_eq!(walked.len(), expected.len());
    assert_eq!(walked, expected);
    eprintln!(
        "inbox_scale: pages checked against the owner's view in {:?}; whole test {:?}",
        t.elapsed(),
        started.elapsed()
    );
}
