//! Connecting, creating and migrating, and the wake-ups.

use std::time::Duration;

use ventanilla_eventlog::{EventLog, ExpectedVersion, Limits};
use ventanilla_postgres::{PgEventLog, PoolSettings, db};
use ventanilla_testkit::TestDb;

#[tokio::test]
async fn a_bad_url_fails_with_one_readable_line() {
    let err = db::connect("mysql://nope", &PoolSettings::default())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("the database URL is not valid"), "{text}");
    assert!(!text.contains('\n'));

    let settings = PoolSettings {
        connect_timeout: Duration::from_secs(2),
        ..PoolSettings::default()
    };
    let err = db::connect("postgres://root@127.0.0.1:1/ventanilla", &settings)
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with("cannot connect to PostgreSQL at root@127.0.0.1:1/ventanilla"),
        "{text}"
    );
    assert!(!text.contains('\n'));
}

#[tokio::test]
async fn prepare_creates_and_migrates_a_missing_database() {
    let db = TestDb::new().await;
    let name = format!("{}_fresh", db.name());
    let admin_url = db.admin_url.replace(db.name(), &name);
    let app_url = db.app_url.replace(db.name(), &name);
    let prepared = db::Database::prepare(&admin_url, &app_url, &PoolSettings::default())
        .await
        .unwrap();
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&db.admin)
        .await
        .unwrap_or(0);
    let _ = applied;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&prepared.app)
        .await
        .unwrap();
    assert_eq!(n, 0, "the app role can query the migrated log");
    // Twice is fine: nothing to create, nothing to migrate.
    db::Database::prepare(&admin_url, &app_url, &PoolSettings::default())
        .await
        .unwrap();
    prepared.app.close().await;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&db.admin)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_in_one_process_wake_readers_in_another() {
    let db = TestDb::new().await;
    let writer = PgEventLog::new(db.app.clone(), Limits::default());
    let reader_pool = db::connect(&db.app_url, &PoolSettings::default())
        .await
        .unwrap();
    let reader = PgEventLog::new(reader_pool, Limits::default());
    let shutdown = tokio_util::sync::CancellationToken::new();
    let w = writer.spawn_notifications(shutdown.clone());
    let r = reader.spawn_notifications(shutdown.clone());
    let mut wake = reader.wakeups();
    // Let the listener connect (it wakes once when it does).
    tokio::time::timeout(Duration::from_secs(5), wake.changed())
        .await
        .unwrap()
        .unwrap();
    writer
        .append(
            ventanilla_eventlog::conformance::tenant(1),
            &ventanilla_eventlog::conformance::stream("wake-1"),
            ExpectedVersion::Any,
            vec![ventanilla_eventlog::conformance::event("t.wake", 1)],
        )
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), wake.changed())
        .await
        .expect("the other process was woken by NOTIFY within 5 s")
        .unwrap();
    shutdown.cancel();
    let _ = (w.await, r.await);
}
