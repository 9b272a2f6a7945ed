//! Tenant isolation of the tickets service's tables, in the manner of the
//! tenants service's suite (`services/tenants/tests/it/isolation.rs`, which
//! leaves the `ticket…` tables to this one).
//!
//! Two councils, A and B, are seeded through the real service with data in
//! every table of the service (references and their counters, the inbox's
//! tickets, messages and timeline; the inbound reactor's conversations are
//! written directly as the owner while no reactor writes them in tests).
//! Then:
//!
//! - **the schema**: every base table of `public` whose name starts with
//!   `ticket` and has a `tenant_id` column — found from the catalogue, so a
//!   table added later is covered — has row-level security enabled and
//!   forced, is not owned by the application role, and its policies for the
//!   application role read `app.tenant_id`; the one wider policy (the breach
//!   timer's `log_reader_sees_all` on `tickets`) only reads and belongs to a
//!   role the application role is not a member of;
//! - **raw SQL as the application role**, on every such table: nothing is
//!   visible with no tenant set (nor in the platform's scope); in one
//!   tenant's scope the other's rows can be neither read, updated, deleted
//!   nor claimed by an insert, and one's own rows cannot be handed over; the
//!   other tenant's rows are proved unchanged through the owner's connection;
//! - **the query functions and the service's methods**: with no tenant set
//!   they see nothing; in each tenant's name they return exactly its own
//!   tickets; a ticket id, or a reference and tracking token, of the other
//!   tenant is `NOT_FOUND`, for reads and writes alike, and writes nothing;
//! - **`tickets_overdue()`**, the one cross-tenant read (SECURITY DEFINER):
//!   it returns ids only, `(tenant_id, ticket_id)`, runs as the log reader,
//!   and is not executable by PUBLIC.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use sqlx::{AssertSqlSafe, Column, PgPool, Row};
use uuid::Uuid;
use ventanilla_eventlog::EventLog;
use ventanilla_kernel::TenantId;
use ventanilla_postgres::begin_for_tenant;
use ventanilla_postgres::projection::{Projection, ensure_caught_up};
use ventanilla_tickets::inbox::{self, InboxFilter, InboxProjection, InboxSort};
use ventanilla_tickets::service::{
    AssignTo, Delivery, OpenRequest, OpenedTicket, Origin, ReplyRequest, tracking_hash,
};
use ventanilla_tickets_domain::ticket::MessageId;

use crate::support::{Council, World, question};

/// The tables that must have a `tenant_id` today; the suite covers whatever
/// else the catalogue lists too.
const EXPECTED_TABLES: [&str; 6] = [
    "ticket_conversations",
    "ticket_messages",
    "ticket_reference_counters",
    "ticket_references",
    "ticket_timeline",
    "tickets",
];

/// The application role.
const APP_ROLE: &str = "ventanilla_app";

/// `insufficient_privilege`: what PostgreSQL answers when a row breaks a
/// row-level security policy.
const REFUSED: &str = "42501";

/// A seeded council and what its citizens hold.
struct Seeded {
    c: Council,
    /// A question, answered and tagged.
    first: OpenedTicket,
    /// Its tracking token.
    token: String,
    /// A question for a department, in its queue.
    second: OpenedTicket,
    /// The reply on the first ticket.
    reply: MessageId,
}

/// Provisions `slug` and fills every table of the service for it.
async fn seed(w: &World, slug: &str) -> Seeded {
    let c = w.council(slug).await;
    let t = &w.tickets;
    let first = w.question(&c, "Farola fundida").await;
    let token = first.tracking_token.clone().unwrap();
    let reply = t
        .reply(
            c.tenant,
            c.agent,
            first.id,
            &ReplyRequest {
                body: "Avisamos a alumbrado.".into(),
                channel: None,
                wait_for_citizen: false,
            },
        )
        .await
        .unwrap();
    t.add_note(c.tenant, c.agent, first.id, "Nota interna.")
        .await
        .unwrap();
    t.tag(c.tenant, c.agent, first.id, "alumbrado")
        .await
        .unwrap();
    let second = t
        .open(
            c.tenant,
            Origin::Web,
            &OpenRequest {
                kind: "question_for".into(),
                department: Some(c.department),
                ..question("Licencia de obra")
            },
        )
        .await
        .unwrap();
    t.assign(c.tenant, c.agent, second.id, AssignTo::Agent(c.agent))
        .await
        .unwrap();
    Seeded {
        c,
        first,
        token,
        second,
        reply,
    }
}

/// The conversations the inbound reactor keeps: written here as the owner
/// for a tenant that has none (no reactor runs in these tests).
async fn seed_conversations(w: &World, s: &Seeded) {
    let tenant = s.c.tenant.into_uuid();
    let existing: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ticket_conversations WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&w.db.admin)
            .await
            .unwrap();
    if existing == 0 {
        for (channel, key, ticket) in [
            ("x", format!("thread:{}", s.c.slug), s.first.id),
            ("mastodon", format!("author:{}", s.c.slug), s.second.id),
        ] {
            sqlx::query(
                "INSERT INTO ticket_conversations (tenant_id, channel, key, ticket_id, updated_at) \
                 VALUES ($1, $2, $3, $4, now())",
            )
            .bind(tenant)
            .bind(channel)
            .bind(key)
            .bind(ticket.0)
            .execute(&w.db.admin)
            .await
            .unwrap();
        }
    }
}

/// Makes the inbox current with everything committed so far.
async fn catch_up(w: &World) {
    let target = w.log.committed_head().await.unwrap();
    let projection: Arc<dyn Projection> = Arc::new(InboxProjection);
    ensure_caught_up(
        Arc::clone(&w.log),
        w.db.app.clone(),
        projection,
        target,
        StdDuration::from_secs(30),
    )
    .await
    .unwrap();
}

/// Every base table of `public` named `ticket…` with a `tenant_id` column.
async fn ticket_tables(w: &World) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.table_name::text FROM information_schema.columns c \
           JOIN information_schema.tables t USING (table_schema, table_name) \
          WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' \
            AND t.table_type = 'BASE TABLE' AND c.table_name LIKE 'ticket%' \
          ORDER BY 1",
    )
    .fetch_all(&w.db.admin)
    .await
    .unwrap()
}

/// Per table and tenant: how many rows, and a digest of them, as the owner
/// sees them.
async fn fingerprints(
    w: &World,
    tables: &[String],
    tenants: &[TenantId],
) -> BTreeMap<(String, Uuid), (i64, String)> {
    let mut all = BTreeMap::new();
    for table in tables {
        for tenant in tenants {
            let row: (i64, String) = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT count(*), coalesce(md5(string_agg(x::text, '|' ORDER BY x::text)), '') \
                   FROM {} x WHERE tenant_id = $1",
                ident(table)
            )))
            .bind(tenant.into_uuid())
            .fetch_one(&w.db.admin)
            .await
            .unwrap();
            all.insert((table.clone(), tenant.into_uuid()), row);
        }
    }
    all
}

/// The ticket ids of `tenant` the owner sees.
async fn owner_tickets(w: &World, tenant: TenantId) -> BTreeSet<Uuid> {
    sqlx::query_scalar("SELECT ticket_id FROM tickets WHERE tenant_id = $1")
        .bind(tenant.into_uuid())
        .fetch_all(&w.db.admin)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// A table name as a quoted identifier.
fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQLSTATE of a database error.
fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// A count as the application role: in `tenant`'s scope, or with no tenant
/// set (straight on the pool, outside any transaction).
async fn app_count(pool: &PgPool, tenant: Option<TenantId>, sql: &str, binds: &[Uuid]) -> i64 {
    let mut query = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()));
    for b in binds {
        query = query.bind(*b);
    }
    match tenant {
        None => query.fetch_one(pool).await,
        Some(tenant) => {
            let mut tx = begin_for_tenant(pool, tenant).await.unwrap();
            let n = query.fetch_one(&mut *tx).await;
            tx.commit().await.unwrap();
            n
        }
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Runs one statement as the application role in its own transaction scoped
/// to `tenant`. Commits when `commit` and the statement succeeded; rolls
/// back otherwise.
async fn attempt(
    pool: &PgPool,
    tenant: TenantId,
    sql: &str,
    binds: &[Uuid],
    commit: bool,
) -> Result<u64, sqlx::Error> {
    let mut tx = begin_for_tenant(pool, tenant).await.unwrap();
    let mut query = sqlx::query(AssertSqlSafe(sql.to_owned()));
    for b in binds {
        query = query.bind(*b);
    }
    let done = query.execute(&mut *tx).await?;
    if commit {
        tx.commit().await.unwrap();
    } else {
        tx.rollback().await.unwrap();
    }
    Ok(done.rows_affected())
}

/// Asserts the statement changed nothing: no row affected, or refused.
fn nothing_or_refused(result: Result<u64, sqlx::Error>, what: &str) {
    match result {
        Ok(0) => {}
        Err(e) if sqlstate(&e).as_deref() == Some(REFUSED) => {}
        other => panic!("{what}: expected no row affected or a refusal, got {other:?}"),
    }
}

/// Asserts the statement was refused by a row-level security policy.
fn refused(result: Result<u64, sqlx::Error>, what: &str) {
    match result {
        Err(e) if sqlstate(&e).as_deref() == Some(REFUSED) => {}
        other => panic!("{what}: expected a refusal ({REFUSED}), got {other:?}"),
    }
}

/// A row of `pg_policies`: name, command, roles, USING and WITH CHECK.
type PolicyRow = (String, String, Vec<String>, Option<String>, Option<String>);

/// The catalogue: RLS enabled and forced, not owned by the app role, and
/// policies keyed on `app.tenant_id` (the log reader's read-only policy
/// aside).
async fn schema_enforces_isolation(w: &World, tables: &[String]) {
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&w.db.app)
        .await
        .unwrap();
    assert_eq!(user, APP_ROLE, "the app pool must log in as the app role");
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(APP_ROLE)
            .fetch_one(&w.db.admin)
            .await
            .unwrap();
    assert!(
        !superuser && !bypass,
        "{APP_ROLE} bypasses row-level security"
    );

    let mut wider = Vec::new();
    for table in tables {
        let (enabled, forced, owner, app_is_owner): (bool, bool, String, bool) = sqlx::query_as(
            "SELECT c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner)::text, \
                    pg_has_role($2, c.relowner, 'MEMBER') \
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
              WHERE n.nspname = 'public' AND c.relname = $1",
        )
        .bind(table)
        .bind(APP_ROLE)
        .fetch_one(&w.db.admin)
        .await
        .unwrap();
        assert!(enabled, "{table}: row-level security is not enabled");
        assert!(forced, "{table}: row-level security is not forced");
        assert!(
            owner != APP_ROLE && !app_is_owner,
            "{table}: owned by {owner}, which {APP_ROLE} is or belongs to"
        );

        let policies: Vec<PolicyRow> = sqlx::query_as(
            "SELECT policyname::text, cmd, roles::text[], qual, with_check \
               FROM pg_policies WHERE schemaname = 'public' AND tablename = $1 \
              ORDER BY policyname",
        )
        .bind(table)
        .fetch_all(&w.db.admin)
        .await
        .unwrap();
        let mut writable = false;
        for (name, cmd, roles, qual, with_check) in &policies {
            let applies_to_app = roles.iter().any(|r| r == "public" || r == APP_ROLE);
            if !applies_to_app {
                assert_eq!(
                    cmd, "SELECT",
                    "{table}.{name}: a policy for {roles:?} must be SELECT only"
                );
                for role in roles {
                    let member: bool = sqlx::query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
                        .bind(APP_ROLE)
                        .bind(role)
                        .fetch_one(&w.db.admin)
                        .await
                        .unwrap();
                    assert!(
                        !member,
                        "{table}.{name}: {APP_ROLE} is a member of {role}, whose policy widens what it sees"
                    );
                }
                wider.push(format!("{table}.{name} {roles:?}"));
                continue;
            }
            for (clause, text) in [("USING", qual), ("WITH CHECK", with_check)] {
                if let Some(text) = text {
                    assert!(
                        text.contains("app.tenant_id"),
                        "{table}.{name}: {clause} ({text}) does not read app.tenant_id"
                    );
                }
            }
            if matches!(cmd.as_str(), "ALL" | "INSERT" | "UPDATE") {
                writable = true;
                let check = with_check.as_ref().or(qual.as_ref());
                assert!(
                    check.is_some_and(|c| c.contains("app.tenant_id")),
                    "{table}.{name}: a {cmd} policy without a WITH CHECK on app.tenant_id"
                );
            }
        }
        assert!(
            writable,
            "{table}: no policy lets {APP_ROLE} write (with a check on app.tenant_id)"
        );
    }
    assert_eq!(
        wider,
        vec!["tickets.log_reader_sees_all [\"ventanilla_log_reader\"]".to_owned()],
        "the only wider policy is the breach timer's read of tickets"
    );
}

/// Raw SQL as the application role on every ticket table, in `me`'s scope,
/// against `other`'s rows.
async fn raw_sql_stays_in_scope(w: &World, tables: &[String], me: &Seeded, other: &Seeded) {
    let pool = &w.db.app;
    let (mine, theirs) = (me.c.tenant.into_uuid(), other.c.tenant.into_uuid());
    let (me_slug, other_slug) = (me.c.slug.as_str(), other.c.slug.as_str());
    for table in tables {
        let t = ident(table);
        let owned = |tenant: Uuid| {
            let sql = format!("SELECT count(*) FROM {t} WHERE tenant_id = $1");
            async move {
                sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                    .bind(tenant)
                    .fetch_one(&w.db.admin)
                    .await
                    .unwrap()
            }
        };
        let (my_rows, their_rows) = (owned(mine).await, owned(theirs).await);
        assert!(
            my_rows > 0 && their_rows > 0,
            "{table}: seed it for both tenants in this suite ({my_rows} and {their_rows} rows)"
        );

        // With no tenant set, and in the platform's scope: nothing.
        assert_eq!(
            app_count(pool, None, &format!("SELECT count(*) FROM {t}"), &[]).await,
            0,
            "{table}: rows visible with no tenant set"
        );
        assert_eq!(
            app_count(
                pool,
                Some(TenantId::PLATFORM),
                &format!("SELECT count(*) FROM {t}"),
                &[]
            )
            .await,
            0,
            "{table}: tenants' rows visible to the operator scope"
        );

        // In my scope: my rows only.
        assert_eq!(
            app_count(
                pool,
                Some(me.c.tenant),
                &format!("SELECT count(*) FROM {t}"),
                &[]
            )
            .await,
            my_rows,
            "{table}: what {me_slug} sees"
        );
        assert_eq!(
            app_count(
                pool,
                Some(me.c.tenant),
                &format!("SELECT count(*) FROM {t} WHERE tenant_id <> $1"),
                &[mine]
            )
            .await,
            0,
            "{table}: rows of others visible to {me_slug}"
        );

        // Updating or deleting the other tenant's rows touches nothing
        // (committed: the fingerprints prove it afterwards).
        nothing_or_refused(
            attempt(
                pool,
                me.c.tenant,
                &format!("UPDATE {t} SET tenant_id = tenant_id WHERE tenant_id = $1"),
                &[theirs],
                true,
            )
            .await,
            &format!("{table}: {me_slug} updating {other_slug}'s rows"),
        );
        nothing_or_refused(
            attempt(
                pool,
                me.c.tenant,
                &format!("DELETE FROM {t} WHERE tenant_id = $1"),
                &[theirs],
                true,
            )
            .await,
            &format!("{table}: {me_slug} deleting {other_slug}'s rows"),
        );
        // Unfiltered, so that only the policies decide which rows are
        // touched: exactly my own. Rolled back.
        let own = u64::try_from(my_rows).unwrap();
        for (sql, binds, what) in [
            (
                format!("UPDATE {t} SET tenant_id = $1"),
                vec![mine],
                "updating",
            ),
            (format!("DELETE FROM {t}"), vec![], "deleting"),
        ] {
            match attempt(pool, me.c.tenant, &sql, &binds, false).await {
                Ok(n) => assert_eq!(n, own, "{table}: {me_slug} {what} every row it may"),
                Err(e) => panic!("{table}: {me_slug} {what} its own rows: {e}"),
            }
        }

        // My own rows cannot be handed over to the other tenant.
        refused(
            attempt(
                pool,
                me.c.tenant,
                &format!("UPDATE {t} SET tenant_id = $1 WHERE tenant_id = $2"),
                &[theirs, mine],
                true,
            )
            .await,
            &format!("{table}: {me_slug} handing its rows to {other_slug}"),
        );

        // No row can be inserted in the other tenant's name: copy a row I can
        // see, claiming their tenant. The same copy in my own name is not
        // refused by a policy (it only collides with the original).
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT column_name::text FROM information_schema.columns \
              WHERE table_schema = 'public' AND table_name = $1 AND is_generated = 'NEVER' \
              ORDER BY ordinal_position",
        )
        .bind(table)
        .fetch_all(&w.db.admin)
        .await
        .unwrap();
        let list = columns
            .iter()
            .map(|c| ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let picked = columns
            .iter()
            .map(|c| format!("r.{}", ident(c)))
            .collect::<Vec<_>>()
            .join(", ");
        let copy = format!(
            "INSERT INTO {t} ({list}) \
             SELECT {picked} FROM {t} x, \
                    LATERAL jsonb_populate_record(NULL::{t}, to_jsonb(x) || jsonb_build_object('tenant_id', $1::uuid)) r \
              LIMIT 1"
        );
        refused(
            attempt(pool, me.c.tenant, &copy, &[theirs], true).await,
            &format!("{table}: {me_slug} inserting a row of {other_slug}"),
        );
        let control = attempt(pool, me.c.tenant, &copy, &[mine], false).await;
        assert!(
            !matches!(&control, Err(e) if sqlstate(e).as_deref() == Some(REFUSED)),
            "{table}: the copy is refused even in its owner's scope ({control:?}), so the refusal above proves nothing"
        );
    }
}

/// With no tenant set, the inbox's query functions see nothing.
async fn nothing_is_visible_without_a_tenant(w: &World, some: &Seeded) {
    let mut tx = w.db.app.begin().await.unwrap();
    let c = &mut *tx;
    for sort in [InboxSort::LastActivity, InboxSort::DueTime] {
        let page = inbox::inbox_page(c, &InboxFilter::default(), sort, 100, None)
            .await
            .unwrap();
        assert!(page.items.is_empty() && page.next.is_none());
    }
    assert!(inbox::status_counts(c).await.unwrap().is_empty());
    assert!(
        inbox::ticket_view(c, some.first.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(inbox::messages(c, some.first.id).await.unwrap().is_empty());
    let hash = tracking_hash(&some.token).unwrap();
    assert!(
        inbox::find_by_tracking(c, &some.first.reference, hash.as_str())
            .await
            .unwrap()
            .is_none()
    );
    tx.rollback().await.unwrap();
}

/// Every service read in `me`'s name returns `me`'s tickets exactly; no
/// ticket of `other`'s can be read or changed through `me`.
async fn services_stay_in_scope(w: &World, me: &Seeded, other: &Seeded) {
    let t = &w.tickets;
    let (tenant, agent) = (me.c.tenant, me.c.agent);
    let mine = owner_tickets(w, tenant).await;
    let theirs = owner_tickets(w, other.c.tenant).await;
    assert!(mine.len() >= 2 && theirs.len() >= 2 && mine.is_disjoint(&theirs));

    // The inbox, both sorts, and filters naming the other's agent or queue.
    for sort in [InboxSort::LastActivity, InboxSort::DueTime] {
        let page = t
            .inbox(tenant, agent, &InboxFilter::default(), sort, 100, None)
            .await
            .unwrap();
        let ids: BTreeSet<Uuid> = page.items.iter().map(|i| i.ticket_id).collect();
        assert_eq!(ids, mine, "{}'s inbox", me.c.slug);
    }
    for filter in [
        InboxFilter {
            assignee: Some(other.c.agent.0),
            ..InboxFilter::default()
        },
        InboxFilter {
            department: Some(other.c.department),
            ..InboxFilter::default()
        },
        InboxFilter {
            tag: Some("alumbrado".into()),
            ..InboxFilter::default()
        },
    ] {
        let page = t
            .inbox(tenant, agent, &filter, InboxSort::LastActivity, 100, None)
            .await
            .unwrap();
        assert!(
            page.items.iter().all(|i| mine.contains(&i.ticket_id)),
            "{filter:?}: {page:?}"
        );
    }
    let counts = t.status_counts(tenant, agent).await.unwrap();
    let owner_counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM tickets WHERE tenant_id = $1 GROUP BY status ORDER BY status",
    )
    .bind(tenant.into_uuid())
    .fetch_all(&w.db.admin)
    .await
    .unwrap();
    assert_eq!(counts, owner_counts);

    // My tickets are there; theirs are not found, by id or by reference and
    // token, even with their own valid token.
    let view = t.ticket(tenant, agent, me.first.id).await.unwrap();
    assert_eq!(view.item.ticket_id, me.first.id.0);
    for id in [other.first.id, other.second.id] {
        let e = t.ticket(tenant, agent, id).await.unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND", "{e}");
    }
    let seen = t
        .follow(tenant, &me.first.reference, &me.token)
        .await
        .unwrap();
    assert_eq!(seen.reference, me.first.reference);
    let e = t
        .follow(tenant, &other.first.reference, &other.token)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND", "{e}");
    // Their agent is nobody here.
    let e = t
        .ticket(tenant, other.c.agent, me.first.id)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "FORBIDDEN", "{e}");

    // Nothing of theirs can be changed through me: each is NOT_FOUND.
    let id = other.first.id;
    let results = [
        (
            "reply",
            t.reply(
                tenant,
                agent,
                id,
                &ReplyRequest {
                    body: "Intrusión".into(),
                    ..ReplyRequest::default()
                },
            )
            .await
            .map(|_| ()),
        ),
        (
            "note",
            t.add_note(tenant, agent, id, "Intrusión").await.map(|_| ()),
        ),
        ("tag", t.tag(tenant, agent, id, "intrusion").await),
        ("untag", t.untag(tenant, agent, id, "alumbrado").await),
        (
            "priority",
            t.set_priority(tenant, agent, id, "urgent").await,
        ),
        (
            "assign",
            t.assign(tenant, agent, id, AssignTo::Agent(agent)).await,
        ),
        ("resolve", t.resolve(tenant, agent, id).await),
        ("close", t.close(tenant, agent, id).await),
        (
            "merge theirs into mine",
            t.merge(tenant, agent, id, me.first.id).await,
        ),
        (
            "merge mine into theirs",
            t.merge(tenant, agent, me.second.id, id).await,
        ),
        (
            "delivery",
            t.record_delivery(
                tenant,
                id,
                other.reply,
                Delivery::Sent { platform_id: None },
            )
            .await,
        ),
        (
            "breaches",
            t.record_breaches(tenant, id, Utc::now() + Duration::days(400))
                .await
                .map(|_| ()),
        ),
    ];
    for (what, result) in results {
        match result {
            Err(e) => assert_eq!(e.code(), "NOT_FOUND", "{what}: {e}"),
            Ok(()) => panic!(
                "{what}: {}'s ticket changed in {}'s name",
                other.c.slug, me.c.slug
            ),
        }
    }
}

/// `tickets_overdue()` is the breach timer's cross-tenant read: ids only, as
/// the log reader, not for PUBLIC.
async fn overdue_returns_ids_only(w: &World, a: &Seeded, b: &Seeded) {
    let (result, definer, owner, public): (String, bool, String, bool) = sqlx::query_as(
        "SELECT pg_get_function_result(p.oid), p.prosecdef, pg_get_userbyid(p.proowner)::text, \
                EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x \
                         WHERE x.grantee = 0 AND x.privilege_type = 'EXECUTE') \
           FROM pg_proc p WHERE p.oid = 'public.tickets_overdue(timestamptz, integer)'::regprocedure",
    )
    .fetch_one(&w.db.admin)
    .await
    .unwrap();
    assert_eq!(result, "TABLE(tenant_id uuid, ticket_id uuid)");
    assert!(definer, "tickets_overdue must be SECURITY DEFINER");
    assert_eq!(owner, "ventanilla_log_reader");
    assert!(!public, "PUBLIC may execute tickets_overdue");

    // As the application role, in a tenant's scope or none: the columns are
    // the two ids, and the rows span both tenants (by design).
    let far = Utc::now() + Duration::days(3650);
    let expected: BTreeSet<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT tenant_id, ticket_id FROM tickets WHERE next_breach_at IS NOT NULL AND next_breach_at <= $1",
    )
    .bind(far)
    .fetch_all(&w.db.admin)
    .await
    .unwrap()
    .into_iter()
    .collect();
    for scope in [None, Some(a.c.tenant)] {
        let rows = match scope {
            None => sqlx::query("SELECT * FROM tickets_overdue($1, 100)")
                .bind(far)
                .fetch_all(&w.db.app)
                .await
                .unwrap(),
            Some(tenant) => {
                let mut tx = begin_for_tenant(&w.db.app, tenant).await.unwrap();
                let rows = sqlx::query("SELECT * FROM tickets_overdue($1, 100)")
                    .bind(far)
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                rows
            }
        };
        assert!(!rows.is_empty());
        let columns: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
        assert_eq!(columns, vec!["tenant_id", "ticket_id"], "ids only");
        let got: BTreeSet<(Uuid, Uuid)> = rows
            .iter()
            .map(|r| (r.get("tenant_id"), r.get("ticket_id")))
            .collect();
        assert_eq!(got, expected, "in scope {scope:?}");
        let tenants: BTreeSet<Uuid> = got.iter().map(|r| r.0).collect();
        assert_eq!(
            tenants,
            [a.c.tenant.into_uuid(), b.c.tenant.into_uuid()]
                .into_iter()
                .collect()
        );
    }
}

#[tokio::test]
async fn two_councils_cannot_reach_each_others_tickets() {
    let w = World::new().await;
    let a = seed(&w, "ribadeo").await;
    let b = seed(&w, "mondonedo").await;
    seed_conversations(&w, &a).await;
    seed_conversations(&w, &b).await;
    catch_up(&w).await;

    let tables = ticket_tables(&w).await;
    for expected in EXPECTED_TABLES {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} has no tenant_id column any more; found {tables:?}"
        );
    }
    let tenants = [a.c.tenant, b.c.tenant, TenantId::PLATFORM];
    let before = fingerprints(&w, &tables, &tenants).await;
    eprintln!(
        "isolation: rows per table and tenant: {:?}",
        before
            .iter()
            .map(|((table, tenant), (n, _))| format!("{table}/{}={n}", &tenant.to_string()[..8]))
            .collect::<Vec<_>>()
    );

    schema_enforces_isolation(&w, &tables).await;
    for (me, other) in [(&b, &a), (&a, &b)] {
        raw_sql_stays_in_scope(&w, &tables, me, other).await;
    }
    assert_eq!(
        fingerprints(&w, &tables, &tenants).await,
        before,
        "raw SQL in one tenant's scope changed another's rows"
    );

    nothing_is_visible_without_a_tenant(&w, &a).await;
    let events = w.event_count().await;
    for (me, other) in [(&b, &a), (&a, &b)] {
        services_stay_in_scope(&w, me, other).await;
    }
    catch_up(&w).await;
    assert_eq!(
        w.event_count().await,
        events,
        "a refused call wrote an event"
    );
    assert_eq!(
        fingerprints(&w, &tables, &tenants).await,
        before,
        "a service call in one tenant's name changed stored rows"
    );

    overdue_returns_ids_only(&w, &a, &b).await;
}
