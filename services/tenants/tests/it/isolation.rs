//! Tenant isolation, all of it in one place (issue #3, item 9).
//!
//! Two councils, A and B, are seeded through the real services with data in
//! every read model: the registry, staff and their sessions, API keys, the
//! directory, business hours, holidays and the portal (plus the event log and
//! the stream index that everything writes). Then:
//!
//! - **the schema**: every table of `public` with a `tenant_id` column —
//!   found from the catalogue, so a table added later is covered without
//!   touching this file — has row-level security enabled and forced, is not
//!   owned by the application role, and has only policies that read the
//!   transaction's `app.tenant_id`; the application role is neither superuser
//!   nor `BYPASSRLS`, nor a member of a role a wider policy names;
//! - **raw SQL as the application role**, on every such table: with no tenant
//!   set nothing is visible; in one tenant's scope the other tenant's and the
//!   platform's rows can be neither read, updated, deleted nor claimed by an
//!   insert, and one's own rows cannot be handed to the other tenant; the two
//!   documented widenings are asserted exactly (the operator scope sees the
//!   whole `tenant_registry`; every tenant reads the platform's `plans` and
//!   cannot change them); the other tenant's and the platform's rows are
//!   proved unchanged afterwards through the owner's connection;
//! - **the repository functions and services**, in each tenant's scope: every
//!   read returns exactly the scope's own rows (compared by id with what the
//!   owner sees), nothing with no tenant set; a session, a password, an API
//!   key, a staff member, a key, an official, a department, a topic or a
//!   holiday of the other tenant cannot be used, changed or removed;
//! - **the pool**: a connection given back after a commit, a rollback or a
//!   transaction that failed midway carries no tenant into its next use.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDate;
use sqlx::postgres::PgPoolOptions;
use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;
use ventanilla_eventlog::{EventLog, Limits};
use ventanilla_kernel::TenantId;
use ventanilla_postgres::projection::ensure_caught_up;
use ventanilla_postgres::stream_index::StreamIndex;
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_tenants::api_keys::{ApiKeys, CreatedKey};
use ventanilla_tenants::operator::{Operator, ProvisionRequest};
use ventanilla_tenants::organisation::{self, Organisation};
use ventanilla_tenants::registry;
use ventanilla_tenants::staff::{Session, Staff};
use ventanilla_tenants_domain::organisation::{DepartmentId, OfficialId, TopicId};
use ventanilla_tenants_domain::staff::{Role, StaffId};
use ventanilla_testkit::TestDb;
use ventanilla_testkit::isolation::{
    APP_ROLE, REFUSED, app_count, attempt, ident, nothing_or_refused, refused, sqlstate,
};

/// The tables that must have a `tenant_id` today; the suite covers whatever
/// else the catalogue lists too.
const EXPECTED_TABLES: [&str; 13] = [
    "events",
    "stream_index",
    "tenant_registry",
    "plans",
    "staff",
    "staff_sessions",
    "api_keys",
    "departments",
    "officials",
    "topics",
    "business_hours",
    "holidays",
    "portal_settings",
];

/// The platform's scope.
const PLATFORM: TenantId = TenantId::PLATFORM;

fn request(slug: &str) -> ProvisionRequest {
    ProvisionRequest {
        name: format!("Concello de {slug}"),
        slug: slug.to_owned(),
        kind: "council".into(),
        admin_email: format!("alcaldia@{slug}.gal"),
        languages: vec!["es".into(), "gl".into()],
        ..ProvisionRequest::default()
    }
}

/// The database and the services, all on one log.
struct World {
    db: TestDb,
    log: Arc<PgEventLog>,
    op: Operator,
    staff: Staff,
    keys: ApiKeys,
    org: Organisation,
}

/// One seeded council and what its people hold.
struct Council {
    tenant: TenantId,
    slug: String,
    admin: StaffId,
    admin_email: String,
    password: String,
    agent: StaffId,
    session: Session,
    key: CreatedKey,
    /// Its business hours' zone (each council's differs).
    time_zone: &'static str,
    /// A holiday only this council has.
    own_holiday: &'static str,
    official: OfficialId,
    department: DepartmentId,
    topic: TopicId,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
        Self {
            op: Operator::new(Arc::clone(&log), "test-operator"),
            staff: Staff::new(Arc::clone(&log)),
            keys: ApiKeys::new(Arc::clone(&log)),
            org: Organisation::new(Arc::clone(&log)),
            log,
            db,
        }
    }

    /// Provisions `slug` and fills every read model for it through the
    /// services: an active admin with a session, an invited agent, an API
    /// key, the demo organisation, its own hours and an own holiday.
    async fn council(
        &self,
        slug: &str,
        time_zone: &'static str,
        own_holiday: &'static str,
    ) -> Council {
        let provisioned = self.op.provision(&request(slug)).await.unwrap();
        let (tenant, admin) = (provisioned.tenant, provisioned.admin);
        let admin_email = format!("alcaldia@{slug}.gal");
        let password = format!("contrasinal segura de {slug}");
        self.staff
            .accept_invitation(tenant, admin, &provisioned.invitation_code, &password)
            .await
            .unwrap();
        let session = self
            .staff
            .login(tenant, &admin_email, &password)
            .await
            .unwrap();
        let agent = self
            .staff
            .invite(
                tenant,
                Some(admin),
                &format!("axente@{slug}.gal"),
                "Axente de proba",
                Role::Agent,
            )
            .await
            .unwrap()
            .staff;
        let key = self
            .keys
            .create(tenant, admin, "integración", "read")
            .await
            .unwrap();
        self.org.seed_demo(tenant, admin).await.unwrap();
        let morning = ("09:00", "14:00");
        self.org
            .set_business_hours(
                tenant,
                admin,
                time_zone,
                [
                    vec![morning],
                    vec![morning],
                    vec![morning],
                    vec![morning],
                    vec![morning],
                    vec![],
                    vec![],
                ],
            )
            .await
            .unwrap();
        self.org
            .add_holiday(tenant, admin, own_holiday, "Festa local")
            .await
            .unwrap();
        let directory = self.org.directory(tenant).await.unwrap();
        Council {
            tenant,
            slug: slug.to_owned(),
            admin,
            admin_email,
            password,
            agent,
            session,
            key,
            time_zone,
            own_holiday,
            official: directory.officials[0].id,
            department: directory.departments[0].id,
            topic: directory.topics[0].id,
        }
    }

    /// Makes every projection of the service, and the stream index, current
    /// with everything committed so far.
    async fn catch_up(&self) {
        let target = self.log.committed_head().await.unwrap();
        let mut all = ventanilla_tenants::projections();
        all.push(Arc::new(StreamIndex));
        for projection in all {
            let name = projection.name();
            ensure_caught_up(
                Arc::clone(&self.log),
                self.db.app.clone(),
                projection,
                target,
                Duration::from_secs(30),
            )
            .await
            .unwrap_or_else(|e| panic!("projection {name} did not catch up: {e:#}"));
        }
    }

    /// The owner's view (row-level security does not apply to it).
    async fn admin_count(&self, sql: &str, binds: &[Uuid]) -> i64 {
        let mut query = sqlx::query_scalar(AssertSqlSafe(sql.to_owned()));
        for b in binds {
            query = query.bind(*b);
        }
        query.fetch_one(&self.db.admin).await.unwrap()
    }

    /// The ids in column `id` of `table` for `tenant`, as the owner sees them.
    async fn admin_ids(&self, table: &str, id: &str, tenant: TenantId) -> BTreeSet<Uuid> {
        sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT {id} FROM {} WHERE tenant_id = $1",
            ident(table)
        )))
        .bind(tenant.into_uuid())
        .fetch_all(&self.db.admin)
        .await
        .unwrap()
        .into_iter()
        .collect()
    }

    /// Every base table of `public` with a `tenant_id` column, except the
    /// tickets and social services' (`ticket…`, `notify…`, `social…`), which
    /// their own suites seed and prove (`services/tickets/tests/it/isolation.rs`
    /// and `notify.rs`, `services/social/tests/it/isolation.rs`).
    async fn tenant_tables(&self) -> Vec<String> {
        sqlx::query_scalar(
            "SELECT c.table_name::text FROM information_schema.columns c \
               JOIN information_schema.tables t USING (table_schema, table_name) \
              WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' \
                AND t.table_type = 'BASE TABLE' \
                AND c.table_name NOT LIKE 'ticket%' AND c.table_name NOT LIKE 'social%' \
                AND c.table_name NOT LIKE 'notify%' \
              ORDER BY 1",
        )
        .fetch_all(&self.db.admin)
        .await
        .unwrap()
    }

    /// Per table and per tenant of `tenants`: how many rows, and a digest of
    /// them, as the owner sees them.
    async fn fingerprints(
        &self,
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
                .fetch_one(&self.db.admin)
                .await
                .unwrap();
                all.insert((table.clone(), tenant.into_uuid()), row);
            }
        }
        all
    }
}

/// A row of `pg_policies`: name, command, roles, USING and WITH CHECK.
type PolicyRow = (String, String, Vec<String>, Option<String>, Option<String>);

#[tokio::test]
async fn two_tenants_cannot_reach_each_other() {
    let w = World::new().await;
    let a = w.council("ribadeo", "Atlantic/Canary", "2027-07-25").await;
    let b = w.council("mondonedo", "Europe/Lisbon", "2027-05-17").await;
    w.catch_up().await;

    let tables = w.tenant_tables().await;
    for expected in EXPECTED_TABLES {
        assert!(
            tables.iter().any(|t| t == expected),
            "{expected} has no tenant_id column any more; found {tables:?}"
        );
    }
    let tenants = [a.tenant, b.tenant, PLATFORM];
    let before = w.fingerprints(&tables, &tenants).await;

    schema_enforces_isolation(&w, &tables).await;
    for (me, other) in [(&b, &a), (&a, &b)] {
        raw_sql_stays_in_scope(&w, &tables, me, other).await;
    }
    assert_eq!(
        w.fingerprints(&tables, &tenants).await,
        before,
        "raw SQL in one tenant's scope changed another's (or the platform's) rows"
    );

    nothing_is_visible_without_a_tenant(&w, &b).await;
    for (me, other) in [(&b, &a), (&a, &b)] {
        services_stay_in_scope(&w, me, other).await;
    }
    w.catch_up().await;
    assert_eq!(
        w.fingerprints(&tables, &tenants).await,
        before,
        "a service call in one tenant's name changed stored rows"
    );

    // A key authenticates as its own tenant only.
    for c in [&a, &b] {
        let principal = w.keys.authenticate(&c.key.secret).await.unwrap();
        assert_eq!(
            (principal.tenant, principal.key_id),
            (c.tenant, c.key.key_id),
            "{}'s key",
            c.slug
        );
    }

    pooled_connections_forget_the_tenant(&w, &tables, &a).await;
}

/// The catalogue: RLS enabled and forced, no owner or bypassing role, and
/// policies keyed on `app.tenant_id`.
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
    assert!(!superuser, "{APP_ROLE} must not be a superuser");
    assert!(!bypass, "{APP_ROLE} must not have BYPASSRLS");

    // A view runs with its owner's rights unless it is security_invoker: a
    // view over tenant rows would walk around the policies.
    let views: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c \
           JOIN pg_namespace n ON n.oid = c.relnamespace \
           JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped \
          WHERE n.nspname = 'public' AND c.relkind IN ('v', 'm') \
            AND NOT coalesce('security_invoker=true' = ANY (c.reloptions), false)",
    )
    .fetch_all(&w.db.admin)
    .await
    .unwrap();
    assert!(
        views.is_empty(),
        "views over tenant rows that bypass row-level security: {views:?}"
    );

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
                // A wider policy for another role (the log reader's): it may
                // only read, and the app role must not inherit it.
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
            } else {
                assert!(
                    matches!(cmd.as_str(), "SELECT" | "DELETE"),
                    "{table}.{name}: unexpected command {cmd}"
                );
            }
        }
        assert!(
            writable,
            "{table}: no policy lets {APP_ROLE} write (with a check on app.tenant_id)"
        );
    }
}

/// Raw SQL as the application role on every tenant table, in `me`'s scope,
/// against `other`'s and the platform's rows.
async fn raw_sql_stays_in_scope(w: &World, tables: &[String], me: &Council, other: &Council) {
    let pool = &w.db.app;
    let (mine, theirs, platform) = (
        me.tenant.into_uuid(),
        other.tenant.into_uuid(),
        PLATFORM.into_uuid(),
    );
    for table in tables {
        let t = ident(table);
        let is_plans = table == "plans";
        let is_registry = table == "tenant_registry";

        // Every table is seeded: otherwise the checks below prove nothing.
        let owned = |tenant: Uuid| {
            let sql = format!("SELECT count(*) FROM {t} WHERE tenant_id = $1");
            async move { w.admin_count(&sql, &[tenant]).await }
        };
        let (my_rows, their_rows, platform_rows) = (
            owned(mine).await,
            owned(theirs).await,
            owned(platform).await,
        );
        if is_plans {
            assert!(platform_rows > 0, "plans: the catalogue is empty");
            assert_eq!(my_rows + their_rows, 0, "plans belong to the platform only");
        } else {
            assert!(
                my_rows > 0 && their_rows > 0,
                "{table}: seed it for both tenants in this suite ({my_rows} and {their_rows} rows)"
            );
        }

        // With no tenant set, nothing (plans too: its read policy wants a
        // tenant set, and the write policy compares with NULL).
        assert_eq!(
            app_count(pool, None, &format!("SELECT count(*) FROM {t}"), &[]).await,
            0,
            "{table}: rows visible with no tenant set"
        );

        // In my scope: my rows; the platform's only for plans.
        let visible = app_count(
            pool,
            Some(me.tenant),
            &format!("SELECT count(*) FROM {t}"),
            &[],
        )
        .await;
        let expected = if is_plans { platform_rows } else { my_rows };
        assert_eq!(visible, expected, "{table}: what {} sees", me.slug);
        assert_eq!(
            app_count(
                pool,
                Some(me.tenant),
                &format!("SELECT count(*) FROM {t} WHERE tenant_id = $1"),
                &[theirs]
            )
            .await,
            0,
            "{table}: {} sees {}'s rows",
            me.slug,
            other.slug
        );
        let foreign = app_count(
            pool,
            Some(me.tenant),
            &format!("SELECT count(*) FROM {t} WHERE tenant_id <> $1"),
            &[mine],
        )
        .await;
        assert_eq!(
            foreign,
            if is_plans { platform_rows } else { 0 },
            "{table}: rows of others visible to {}",
            me.slug
        );

        // The operator scope: only the platform's rows, except the registry,
        // which it sees whole.
        let outside = app_count(
            pool,
            Some(PLATFORM),
            &format!("SELECT count(*) FROM {t} WHERE tenant_id <> $1"),
            &[platform],
        )
        .await;
        if is_registry {
            let all = w
                .admin_count("SELECT count(*) FROM tenant_registry", &[])
                .await;
            assert!(all >= 2);
            assert_eq!(outside, all, "the operator scope sees every tenant");
        } else {
            assert_eq!(
                outside, 0,
                "{table}: tenants' rows visible to the operator scope"
            );
        }

        // Updating or deleting the other tenant's or the platform's rows
        // touches nothing (the log refuses both outright).
        for (victim, whose) in [(theirs, other.slug.as_str()), (platform, "the platform")] {
            nothing_or_refused(
                attempt(
                    pool,
                    me.tenant,
                    &format!("UPDATE {t} SET tenant_id = tenant_id WHERE tenant_id = $1"),
                    &[victim],
                    true,
                )
                .await,
                &format!("{table}: {} updating {whose}'s rows", me.slug),
            );
            nothing_or_refused(
                attempt(
                    pool,
                    me.tenant,
                    &format!("DELETE FROM {t} WHERE tenant_id = $1"),
                    &[victim],
                    true,
                )
                .await,
                &format!("{table}: {} deleting {whose}'s rows", me.slug),
            );
        }
        // Unfiltered, so that only the policies decide which rows are
        // touched (a WHERE on a column would bring the SELECT policy in):
        // exactly my own rows, or a refusal. Rolled back.
        let own = u64::try_from(if is_plans { 0 } else { my_rows }).unwrap();
        for (sql, binds, what) in [
            (
                format!("UPDATE {t} SET tenant_id = $1"),
                vec![mine],
                "updating",
            ),
            (format!("DELETE FROM {t}"), vec![], "deleting"),
        ] {
            match attempt(pool, me.tenant, &sql, &binds, false).await {
                Ok(n) => assert_eq!(n, own, "{table}: {} {what} every row it may", me.slug),
                Err(e) if sqlstate(&e).as_deref() == Some(REFUSED) => {}
                Err(e) => panic!("{table}: {} {what} every row it may: {e}", me.slug),
            }
        }
        // The catalogue every tenant reads is not theirs to change.
        if is_plans {
            assert_eq!(
                attempt(pool, me.tenant, "UPDATE plans SET agents = 1000", &[], true)
                    .await
                    .unwrap(),
                0,
                "a tenant changed the plan catalogue"
            );
            assert_eq!(
                attempt(pool, me.tenant, "DELETE FROM plans", &[], true)
                    .await
                    .unwrap(),
                0,
                "a tenant deleted from the plan catalogue"
            );
        }

        // My own rows cannot be handed over to the other tenant.
        let give_away = attempt(
            pool,
            me.tenant,
            &format!("UPDATE {t} SET tenant_id = $1 WHERE tenant_id = $2"),
            &[theirs, mine],
            true,
        )
        .await;
        if is_plans {
            nothing_or_refused(give_away, "plans: a tenant moving plans");
        } else {
            refused(
                give_away,
                &format!("{table}: {} handing its rows to {}", me.slug, other.slug),
            );
        }

        // No row can be inserted in the other tenant's or the platform's
        // name: copy a row I can see, claiming their tenant. The same copy in
        // its owner's scope is not refused by a policy (it only collides with
        // the original), which shows the refusal is about the tenant.
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
            "INSERT INTO {t} ({list}) OVERRIDING SYSTEM VALUE \
             SELECT {picked} FROM {t} x, \
                    LATERAL jsonb_populate_record(NULL::{t}, to_jsonb(x) || jsonb_build_object('tenant_id', $1::uuid)) r \
              LIMIT 1"
        );
        for (victim, whose) in [(theirs, other.slug.as_str()), (platform, "the platform")] {
            refused(
                attempt(pool, me.tenant, &copy, &[victim], true).await,
                &format!("{table}: {} inserting a row of {whose}", me.slug),
            );
        }
        let (owner_scope, owner) = if is_plans {
            (PLATFORM, platform)
        } else {
            (me.tenant, mine)
        };
        let control = attempt(pool, owner_scope, &copy, &[owner], false).await;
        assert!(
            !matches!(&control, Err(e) if sqlstate(e).as_deref() == Some(REFUSED)),
            "{table}: the copy is refused even in its owner's scope ({control:?}), so the refusals above prove nothing"
        );
    }
}

/// With no tenant set, the repository functions see nothing.
async fn nothing_is_visible_without_a_tenant(w: &World, some: &Council) {
    let mut tx = w.db.app.begin().await.unwrap();
    let c = &mut *tx;
    assert!(organisation::departments(c).await.unwrap().is_empty());
    assert!(organisation::officials(c).await.unwrap().is_empty());
    assert!(
        organisation::official(c, some.official)
            .await
            .unwrap()
            .is_none()
    );
    assert!(organisation::topics(c).await.unwrap().is_empty());
    assert!(organisation::hours(c).await.unwrap().is_none());
    assert!(organisation::holidays(c).await.unwrap().is_empty());
    assert!(organisation::portal_settings(c).await.unwrap().is_none());
    assert!(registry::list(c).await.unwrap().is_empty());
    assert!(registry::by_slug(c, &some.slug).await.unwrap().is_none());
    tx.rollback().await.unwrap();
}

/// Every service read in `me`'s name returns `me`'s rows exactly; nothing of
/// `other`'s can be used, changed or removed through `me`.
async fn services_stay_in_scope(w: &World, me: &Council, other: &Council) {
    let (t, o) = (me.tenant, other.tenant);

    // Reads: exactly my ids, as the owner sees them.
    let staff: BTreeSet<Uuid> = w
        .staff
        .list(t)
        .await
        .unwrap()
        .iter()
        .map(|s| s.staff_id)
        .collect();
    assert_eq!(staff, w.admin_ids("staff", "staff_id", t).await);
    assert!(staff.is_disjoint(&w.admin_ids("staff", "staff_id", o).await));
    assert!(staff.contains(&me.admin.0) && staff.contains(&me.agent.0));

    let keys: BTreeSet<Uuid> = w
        .keys
        .list(t)
        .await
        .unwrap()
        .iter()
        .map(|k| k.key_id.0)
        .collect();
    assert_eq!(keys, w.admin_ids("api_keys", "key_id", t).await);
    assert!(!keys.contains(&other.key.key_id.0));

    let directory = w.org.directory(t).await.unwrap();
    let ids = |v: Vec<Uuid>| v.into_iter().collect::<BTreeSet<_>>();
    let departments = ids(directory.departments.iter().map(|d| d.id.0).collect());
    let officials = ids(directory.officials.iter().map(|d| d.id.0).collect());
    let topics = ids(directory.topics.iter().map(|d| d.id.0).collect());
    assert_eq!(
        departments,
        w.admin_ids("departments", "department_id", t).await
    );
    assert_eq!(officials, w.admin_ids("officials", "official_id", t).await);
    assert_eq!(topics, w.admin_ids("topics", "topic_id", t).await);
    assert!(!departments.contains(&other.department.0));
    assert!(!officials.contains(&other.official.0));
    assert!(!topics.contains(&other.topic.0));

    let schedule = w.org.business_hours(t).await.unwrap();
    assert_eq!(
        schedule.hours.as_ref().map(|h| h.time_zone.as_str()),
        Some(me.time_zone)
    );
    let dates: BTreeSet<NaiveDate> = schedule.holidays.iter().map(|h| h.date).collect();
    let own: NaiveDate = me.own_holiday.parse().unwrap();
    let theirs: NaiveDate = other.own_holiday.parse().unwrap();
    assert!(dates.contains(&own) && !dates.contains(&theirs));
    let stored: i64 = w
        .admin_count(
            "SELECT count(*) FROM holidays WHERE tenant_id = $1",
            &[t.into_uuid()],
        )
        .await;
    assert_eq!(i64::try_from(dates.len()).unwrap(), stored);

    let portal = w.org.portal(t).await.unwrap().unwrap();
    assert_eq!(
        portal.settings.public_name.as_str(),
        format!("Concello de {}", me.slug)
    );

    assert!(w.org.official(t, other.official).await.unwrap().is_none());
    assert!(w.org.official(t, me.official).await.unwrap().is_some());

    // The query functions, on a connection in my scope.
    let mut tx = begin_for_tenant(&w.db.app, t).await.unwrap();
    let c = &mut *tx;
    assert_eq!(
        organisation::departments(c).await.unwrap(),
        directory.departments
    );
    assert_eq!(
        organisation::officials(c).await.unwrap(),
        directory.officials
    );
    assert_eq!(organisation::topics(c).await.unwrap(), directory.topics);
    assert!(
        organisation::official(c, other.official)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        organisation::hours(c).await.unwrap().map(|h| h.time_zone),
        Some(me.time_zone.to_owned())
    );
    assert_eq!(organisation::holidays(c).await.unwrap(), schedule.holidays);
    assert_eq!(
        organisation::portal_settings(c).await.unwrap(),
        Some(portal)
    );
    assert!(
        registry::by_slug(c, &other.slug).await.unwrap().is_none(),
        "{} finds {} by slug",
        me.slug,
        other.slug
    );
    assert_eq!(
        registry::by_slug(c, &me.slug)
            .await
            .unwrap()
            .map(|s| s.tenant_id),
        Some(t.into_uuid())
    );
    let listed: Vec<Uuid> = registry::list(c)
        .await
        .unwrap()
        .iter()
        .map(|s| s.tenant_id)
        .collect();
    assert_eq!(listed, vec![t.into_uuid()]);
    tx.rollback().await.unwrap();

    // The other tenant's credentials do not open mine.
    let err = w
        .staff
        .authenticate(t, other.session.session_id, &other.session.token)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAUTHENTICATED", "{err}");
    let err = w
        .staff
        .login(t, &other.admin_email, &other.password)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAUTHENTICATED", "{err}");

    // Nothing of theirs can be changed or removed through me, even by my
    // own admin; and their admin is nobody here.
    let err = w
        .staff
        .deactivate(t, me.admin, other.agent)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err}");
    let err = w
        .staff
        .change_role(t, me.admin, other.agent, Role::Admin)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err}");
    let err = w
        .staff
        .revoke_sessions(t, me.admin, other.admin)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err}");
    let err = w
        .staff
        .invite(
            t,
            Some(other.admin),
            "intruso@example.org",
            "Intruso",
            Role::Admin,
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "{err}");

    let err = w
        .keys
        .revoke(t, me.admin, other.key.key_id, Some("alleo"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err}");
    let err = w
        .keys
        .rename(t, me.admin, other.key.key_id, "alleo")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err}");
    let err = w
        .keys
        .create(t, other.admin, "intrusa", "read_write")
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "{err}");

    let err = w
        .org
        .remove_official(t, me.admin, other.official)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err}");
    let err = w
        .org
        .remove_department(t, me.admin, other.department)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err}");
    let err = w
        .org
        .remove_topic(t, me.admin, other.topic)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err}");
    let err = w
        .org
        .remove_holiday(t, me.admin, other.own_holiday)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "NOT_FOUND", "{err}");
    let err = w
        .org
        .add_department(t, other.admin, "Intrusión", None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), "FORBIDDEN", "{err}");

    // Their session still opens theirs.
    let principal = w
        .staff
        .authenticate(o, other.session.session_id, &other.session.token)
        .await
        .unwrap();
    assert_eq!(principal.staff, other.admin);
}

/// What a connection of the application role sees outside any transaction.
async fn assert_clean(pool: &PgPool, tables: &[String], pid: i32, after: &str) {
    let now: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(
        now, pid,
        "{after}: the pool must hand back the same connection"
    );
    let setting: Option<String> =
        sqlx::query_scalar("SELECT current_setting('app.tenant_id', true)")
            .fetch_one(pool)
            .await
            .unwrap();
    assert!(
        setting.as_deref().unwrap_or_default().is_empty(),
        "{after}: the connection still carries tenant {setting:?}"
    );
    for table in tables {
        assert_eq!(
            app_count(
                pool,
                None,
                &format!("SELECT count(*) FROM {}", ident(table)),
                &[]
            )
            .await,
            0,
            "{after}: {table} rows visible on the returned connection"
        );
    }
}

/// A tenant set in one transaction is gone once the connection is back in
/// the pool, however the transaction ended.
async fn pooled_connections_forget_the_tenant(w: &World, tables: &[String], a: &Council) {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&w.db.app_url)
        .await
        .unwrap();
    let staff = w
        .admin_count(
            "SELECT count(*) FROM staff WHERE tenant_id = $1",
            &[a.tenant.into_uuid()],
        )
        .await;
    assert!(staff > 0);

    // Opens a transaction scoped to A on the one connection and checks it
    // sees A's staff; returns the transaction and the connection's pid.
    let scoped = async || {
        let mut tx = begin_for_tenant(&pool, a.tenant).await.unwrap();
        let (pid, seen): (i32, i64) =
            sqlx::query_as("SELECT pg_backend_pid(), (SELECT count(*) FROM staff)")
                .fetch_one(&mut *tx)
                .await
                .unwrap();
        assert_eq!(seen, staff, "the scoped transaction sees A's staff");
        (tx, pid)
    };

    let (tx, pid) = scoped().await;
    tx.commit().await.unwrap();
    assert_clean(&pool, tables, pid, "after a commit").await;

    let (tx, pid) = scoped().await;
    tx.rollback().await.unwrap();
    assert_clean(&pool, tables, pid, "after a rollback").await;

    // Failed midway and dropped, as `?` would leave it.
    let (mut tx, pid) = scoped().await;
    let err = sqlx::query("SELECT 1 / 0")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    assert_eq!(sqlstate(&err).as_deref(), Some("22012"));
    drop(tx);
    assert_clean(&pool, tables, pid, "after a failed transaction was dropped").await;

    // Failed midway, then committed anyway (the server rolls it back).
    let (mut tx, pid) = scoped().await;
    sqlx::query("SELECT 1 / 0")
        .execute(&mut *tx)
        .await
        .unwrap_err();
    let _ = tx.commit().await;
    assert_clean(
        &pool,
        tables,
        pid,
        "after a failed transaction was committed",
    )
    .await;

    pool.close().await;
}
