//! Tenant isolation enforced by PostgreSQL, tried with the application role.

use ventanilla_eventlog::conformance::{event, stream, tenant};
use ventanilla_eventlog::{EventLog, ExpectedVersion, Limits};
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_testkit::TestDb;

#[tokio::test]
async fn the_app_role_is_neither_owner_nor_superuser_and_rls_is_forced() {
    let db = TestDb::new().await;
    let (superuser, bypass): (bool, bool) =
        sqlx::query_as("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
            .fetch_one(&db.app)
            .await
            .unwrap();
    assert!(!superuser && !bypass);
    let tables: Vec<(String, bool, bool, String)> = sqlx::query_as(
        "SELECT c.relname::text, c.relrowsecurity, c.relforcerowsecurity, pg_get_userbyid(c.relowner)::text \
           FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid \
          WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace AND a.attname = 'tenant_id'",
    )
    .fetch_all(&db.admin)
    .await
    .unwrap();
    assert!(
        tables.len() >= 2,
        "events and stream_index at least: {tables:?}"
    );
    for (name, enabled, forced, owner) in tables {
        assert!(
            enabled && forced,
            "{name}: row-level security must be enabled and forced"
        );
        assert_ne!(
            owner, "ventanilla_app",
            "{name} must not be owned by the app role"
        );
    }
}

#[tokio::test]
async fn one_tenant_never_reads_or_changes_anothers_events() {
    let db = TestDb::new().await;
    let log = PgEventLog::new(db.app.clone(), Limits::default());
    let (a, b) = (tenant(1), tenant(2));
    log.append(
        a,
        &stream("secret-1"),
        ExpectedVersion::Any,
        vec![event("t.a", 1)],
    )
    .await
    .unwrap();
    log.append(
        b,
        &stream("secret-1"),
        ExpectedVersion::Any,
        vec![event("t.b", 1)],
    )
    .await
    .unwrap();

    // No tenant set: nothing visible.
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.app)
        .await
        .unwrap();
    assert_eq!(n, 0, "with no tenant set the app sees no events");

    // Tenant a: only a's rows, whatever the WHERE clause says.
    let mut tx = begin_for_tenant(&db.app, a).await.unwrap();
    let tenants: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT DISTINCT tenant_id FROM events")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(tenants, vec![a.into_uuid()]);
    let other: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE tenant_id = $1")
        .bind(b.into_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(other, 0, "a cannot read b's events even by naming b");
    // Writing into b's stream as a is refused by the policy.
    let insert = sqlx::query(
        "INSERT INTO events (tenant_id, stream_id, stream_version, event_id, event_type, schema_version, data, metadata, stream_hash) \
         VALUES ($1, 'secret-1', 5, gen_random_uuid(), 't.x', 1, '{}', '{}', 0)",
    )
    .bind(b.into_uuid())
    .execute(&mut *tx)
    .await;
    assert!(insert.is_err(), "a cannot write rows of b");
    tx.rollback().await.unwrap();

    // Update and delete are refused to everyone: the log is append-only.
    let mut tx = begin_for_tenant(&db.app, a).await.unwrap();
    assert!(
        sqlx::query("UPDATE events SET data = '{}'")
            .execute(&mut *tx)
            .await
            .is_err()
    );
    tx.rollback().await.unwrap();
    let mut tx = begin_for_tenant(&db.app, a).await.unwrap();
    assert!(
        sqlx::query("DELETE FROM events")
            .execute(&mut *tx)
            .await
            .is_err()
    );
    tx.rollback().await.unwrap();
    // Not even the owner may rewrite history.
    assert!(
        sqlx::query("DELETE FROM events")
            .execute(&db.admin)
            .await
            .is_err()
    );

    // The cross-tenant reader function is the only way to see everything,
    // and it is read-only.
    // (Waits: another test's open transaction may hold readers back.)
    let all = ventanilla_eventlog::conformance::read_at_least(
        &log,
        ventanilla_eventlog::Position::START,
        10,
        2,
    )
    .await;
    assert_eq!(all.len(), 2);
    // Reading a stream goes through the tenant given.
    assert_eq!(
        log.read_stream(b, &stream("secret-1"), 0, 10)
            .await
            .unwrap()[0]
            .event_type,
        "t.b"
    );
}

#[tokio::test]
async fn a_pooled_connection_carries_no_tenant_into_its_next_use() {
    let db = TestDb::new().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(&db.app_url)
        .await
        .unwrap();
    let log = PgEventLog::new(pool.clone(), Limits::default());
    log.append(
        tenant(1),
        &stream("pool-1"),
        ExpectedVersion::Any,
        vec![event("t.a", 1)],
    )
    .await
    .unwrap();
    let mut tx = begin_for_tenant(&pool, tenant(1)).await.unwrap();
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, 1);
    tx.commit().await.unwrap();
    // Same (only) connection, next use: the tenant is gone.
    let setting: Option<String> =
        sqlx::query_scalar("SELECT NULLIF(current_setting('app.tenant_id', true), '')")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(setting, None);
    let seen: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(seen, 0);
}

#[tokio::test]
async fn the_app_role_cannot_call_the_reader_function_to_write_or_escalate() {
    let db = TestDb::new().await;
    // Cannot become the log reader role.
    assert!(
        sqlx::query("SET ROLE ventanilla_log_reader")
            .execute(&db.app)
            .await
            .is_err()
    );
    // Cannot change the policies or the table.
    assert!(
        sqlx::query("ALTER TABLE events DISABLE ROW LEVEL SECURITY")
            .execute(&db.app)
            .await
            .is_err()
    );
    assert!(
        sqlx::query("DROP POLICY tenant_isolation ON events")
            .execute(&db.app)
            .await
            .is_err()
    );
}
