//! The isolation checks every service's suite runs on its own tables: the
//! catalogue (row-level security enabled and forced, policies keyed on
//! `app.tenant_id`, the application role neither owner nor exempt), and raw
//! SQL as the application role in one tenant's scope against another's rows
//! (invisible; updates and deletes touch nothing; inserts in the other's
//! name refused; row digests unchanged). Each suite seeds both tenants in
//! every table it checks, and adds the checks of its own service's API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use sqlx::{AssertSqlSafe, PgPool};
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_postgres::begin_for_tenant;

use crate::TestDb;

/// The application role.
pub const APP_ROLE: &str = "ventanilla_app";

/// The SQLSTATE of a refusal by a row-level security policy.
pub const REFUSED: &str = "42501";

/// Every base table of `public` whose name starts with `prefix` and that
/// has a `tenant_id` column.
pub async fn tables_with_prefix(db: &TestDb, prefix: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT c.table_name::text FROM information_schema.columns c \
           JOIN information_schema.tables t USING (table_schema, table_name) \
          WHERE c.table_schema = 'public' AND c.column_name = 'tenant_id' \
            AND t.table_type = 'BASE TABLE' AND starts_with(c.table_name::text, $1) \
          ORDER BY 1",
    )
    .bind(prefix)
    .fetch_all(&db.admin)
    .await
    .unwrap()
}

/// Per table and tenant: how many rows, and a digest of them, as the owner
/// sees them.
pub async fn fingerprints(
    db: &TestDb,
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
            .fetch_one(&db.admin)
            .await
            .unwrap();
            all.insert((table.clone(), tenant.into_uuid()), row);
        }
    }
    all
}

/// A table name as a quoted identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The SQLSTATE of a database error.
pub fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// A count as the application role: in `tenant`'s scope, or with no tenant
/// set (straight on the pool, outside any transaction).
pub async fn app_count(pool: &PgPool, tenant: Option<TenantId>, sql: &str, binds: &[Uuid]) -> i64 {
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
pub async fn attempt(
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
pub fn nothing_or_refused(result: Result<u64, sqlx::Error>, what: &str) {
    match result {
        Ok(0) => {}
        Err(e) if sqlstate(&e).as_deref() == Some(REFUSED) => {}
        other => panic!("{what}: expected no row affected or a refusal, got {other:?}"),
    }
}

/// Asserts the statement was refused by a row-level security policy.
pub fn refused(result: Result<u64, sqlx::Error>, what: &str) {
    match result {
        Err(e) if sqlstate(&e).as_deref() == Some(REFUSED) => {}
        other => panic!("{what}: expected a refusal ({REFUSED}), got {other:?}"),
    }
}

/// A row of `pg_policies`: name, command, roles, USING and WITH CHECK.
type PolicyRow = (String, String, Vec<String>, Option<String>, Option<String>);

/// The catalogue: RLS enabled and forced, not owned by the app role, and
/// policies keyed on `app.tenant_id` — except exactly the `wider` ones
/// (`table.policy ["role"]`, e.g. the log reader's read-only policies, or
/// a write policy of a NOLOGIN role only a SECURITY DEFINER function runs
/// as), which `why` explains.
pub async fn schema_enforces_isolation(
    db: &TestDb,
    tables: &[String],
    wider_allowed: &[String],
    why: &str,
) {
    let user: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&db.app)
        .await
        .unwrap();
    assert_eq!(user, APP_ROLE, "the app pool must log in as the app role");
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1")
            .bind(APP_ROLE)
            .fetch_one(&db.admin)
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
        .fetch_one(&db.admin)
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
        .fetch_all(&db.admin)
        .await
        .unwrap();
        let mut writable = false;
        for (name, cmd, roles, qual, with_check) in &policies {
            let applies_to_app = roles.iter().any(|r| r == "public" || r == APP_ROLE);
            if !applies_to_app {
                for role in roles {
                    // A wider policy reads; or it belongs to a role nobody
                    // logs in as, which only SECURITY DEFINER functions run
                    // as (the notification worker's claim).
                    let can_login: bool =
                        sqlx::query_scalar("SELECT rolcanlogin FROM pg_roles WHERE rolname = $1")
                            .bind(role)
                            .fetch_one(&db.admin)
                            .await
                            .unwrap();
                    assert!(
                        cmd == "SELECT" || !can_login,
                        "{table}.{name}: a policy for {roles:?} must be SELECT only, or for a NOLOGIN role"
                    );
                    let member: bool = sqlx::query_scalar("SELECT pg_has_role($1, $2, 'MEMBER')")
                        .bind(APP_ROLE)
                        .bind(role)
                        .fetch_one(&db.admin)
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
    assert_eq!(wider, wider_allowed, "{why}");
}

/// Raw SQL as the application role on every table of `tables`, in `me`'s
/// scope, against `other`'s rows (each a tenant and a name for messages).
/// Every table must hold rows of both.
pub async fn raw_sql_stays_in_scope(
    db: &TestDb,
    tables: &[String],
    me: (TenantId, &str),
    other: (TenantId, &str),
) {
    let pool = &db.app;
    let (mine, theirs) = (me.0.into_uuid(), other.0.into_uuid());
    let (me_slug, other_slug) = (me.1, other.1);
    for table in tables {
        let t = ident(table);
        let owned = |tenant: Uuid| {
            let sql = format!("SELECT count(*) FROM {t} WHERE tenant_id = $1");
            async move {
                sqlx::query_scalar::<_, i64>(AssertSqlSafe(sql))
                    .bind(tenant)
                    .fetch_one(&db.admin)
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
            app_count(pool, Some(me.0), &format!("SELECT count(*) FROM {t}"), &[]).await,
            my_rows,
            "{table}: what {me_slug} sees"
        );
        assert_eq!(
            app_count(
                pool,
                Some(me.0),
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
                me.0,
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
                me.0,
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
            match attempt(pool, me.0, &sql, &binds, false).await {
                Ok(n) => assert_eq!(n, own, "{table}: {me_slug} {what} every row it may"),
                Err(e) => panic!("{table}: {me_slug} {what} its own rows: {e}"),
            }
        }

        // My own rows cannot be handed over to the other tenant.
        refused(
            attempt(
                pool,
                me.0,
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
        .fetch_all(&db.admin)
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
            attempt(pool, me.0, &copy, &[theirs], true).await,
            &format!("{table}: {me_slug} inserting a row of {other_slug}"),
        );
        let control = attempt(pool, me.0, &copy, &[mine], false).await;
        assert!(
            !matches!(&control, Err(e) if sqlstate(e).as_deref() == Some(REFUSED)),
            "{table}: the copy is refused even in its owner's scope ({control:?}), so the refusal above proves nothing"
        );
    }
}

/// What [`tables_stay_in_scope`] found: the tables checked and, per table
/// and tenant, a digest of the rows (to prove later checks changed nothing).
pub struct Checked {
    /// The tables checked.
    pub tables: Vec<String>,
    /// The owner's digests of `a`'s, `b`'s and the platform's rows.
    pub fingerprints: BTreeMap<(String, Uuid), (i64, String)>,
    tenants: [TenantId; 3],
}

impl Checked {
    /// Asserts that the rows are still what they were when checked.
    pub async fn unchanged(&self, db: &TestDb, what: &str) {
        assert_eq!(
            fingerprints(db, &self.tables, &self.tenants).await,
            self.fingerprints,
            "{what} changed stored rows"
        );
    }
}

/// The whole raw-SQL suite on the tables named `prefix…` (which must
/// include `expected`): the catalogue ([`schema_enforces_isolation`], with
/// exactly the `wider` policies allowed), then raw SQL both ways between `a`
/// and `b` ([`raw_sql_stays_in_scope`]), and nothing changed.
pub async fn tables_stay_in_scope(
    db: &TestDb,
    prefix: &str,
    expected: &[&str],
    wider: &[String],
    why: &str,
    a: (TenantId, &str),
    b: (TenantId, &str),
) -> Checked {
    let tables = tables_with_prefix(db, prefix).await;
    for e in expected {
        assert!(
            tables.iter().any(|t| t == e),
            "{e} has no tenant_id column any more; found {tables:?}"
        );
    }
    let tenants = [a.0, b.0, TenantId::PLATFORM];
    let before = fingerprints(db, &tables, &tenants).await;
    eprintln!(
        "isolation: rows per table and tenant: {:?}",
        before
            .iter()
            .map(|((table, tenant), (n, _))| format!("{table}/{}={n}", &tenant.to_string()[..8]))
            .collect::<Vec<_>>()
    );
    schema_enforces_isolation(db, &tables, wider, why).await;
    raw_sql_stays_in_scope(db, &tables, b, a).await;
    raw_sql_stays_in_scope(db, &tables, a, b).await;
    let checked = Checked {
        tables,
        fingerprints: before,
        tenants,
    };
    checked.unchanged(db, "raw SQL in one tenant's scope").await;
    checked
}
