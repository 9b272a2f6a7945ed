//! Projections: live application and rebuild-and-swap.

use std::sync::Arc;
use std::time::Duration;

use ventanilla_eventlog::conformance::{event, stream, tenant};
use ventanilla_eventlog::{EventLog, ExpectedVersion, Limits};
use ventanilla_postgres::projection::{Projection, ProjectionRunner};
use ventanilla_postgres::stream_index::StreamIndex;
use ventanilla_postgres::{PgEventLog, begin_for_tenant, rebuild};
use ventanilla_testkit::TestDb;

type Row = (String, String, i64, i64, String);

async fn index_of(db: &TestDb, t: ventanilla_kernel::TenantId) -> Vec<Row> {
    let mut tx = begin_for_tenant(&db.app, t).await.unwrap();
    let rows = sqlx::query_as(
        "SELECT stream_id, category, version, event_count, last_event_type FROM stream_index ORDER BY stream_id",
    )
    .fetch_all(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    rows
}

async fn fill(log: &PgEventLog, from: u64, to: u64) {
    for i in from..to {
        let t = tenant(u128::from(i % 2));
        log.append(
            t,
            &stream(&format!("ticket-{}", i % 7)),
            ExpectedVersion::Any,
            vec![event("ticket.noted", i)],
        )
        .await
        .unwrap();
        if i % 3 == 0 {
            log.append(
                t,
                &stream(&format!("settings-{}", i % 2)),
                ExpectedVersion::Any,
                vec![event("settings.changed", i)],
            )
            .await
            .unwrap();
        }
    }
}

async fn wait_for(db: &TestDb, t: ventanilla_kernel::TenantId, total: i64) -> Vec<Row> {
    for _ in 0..200 {
        let rows = index_of(db, t).await;
        if rows.iter().map(|r| r.3).sum::<i64>() == total {
            return rows;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the projection did not reach {total} events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rebuild_matches_the_live_projection_and_swaps_while_it_runs() {
    let db = TestDb::new().await;
    let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let notifications = log.spawn_notifications(shutdown.clone());
    let projections: Vec<Arc<dyn Projection>> = vec![Arc::new(StreamIndex)];
    let runner = ProjectionRunner::new(Arc::clone(&log), db.app.clone(), "test-member")
        .with_batching(50, Duration::from_millis(200));
    let tasks = runner.start(&projections, shutdown.clone()).await.unwrap();

    fill(&log, 0, 300).await;
    let t0 = tenant(0);
    let t0_total = 150 + 50; // 150 ticket events + settings events of tenant 0
    let live = wait_for(&db, t0, t0_total).await;
    assert!(
        live.iter().any(|r| r.1 == "settings"),
        "categories are recorded"
    );
    // Each tenant's rows count only its own events.
    wait_for(&db, tenant(1), 200).await;

    // Rebuild while writers keep appending.
    let writer = {
        let log = Arc::clone(&log);
        tokio::spawn(async move { fill(&log, 300, 400).await })
    };
    let report = rebuild(&db.admin, log.as_ref(), &StreamIndex, 37, &())
        .await
        .unwrap();
    writer.await.unwrap();
    assert!(
        report.replayed >= 400,
        "the rebuild replayed the whole log: {}",
        report.replayed
    );

    // After the swap the live projection continues on the new tables from
    // the rebuild's checkpoint: the end state equals a from-scratch fold.
    let t0_total_after = t0_total + 50 + 17; // 50 more ticket events, 17 more settings events (i%3==0, i even, 300..400)
    let rebuilt = wait_for(&db, t0, t0_total_after).await;
    assert_eq!(
        rebuilt
            .iter()
            .find(|r| r.0 == "ticket-0")
            .map(|r| r.4.as_str()),
        Some("ticket.noted")
    );
    let total_events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.admin)
        .await
        .unwrap();
    let indexed: i64 = {
        let a: i64 = index_of(&db, tenant(0)).await.iter().map(|r| r.3).sum();
        let b: i64 = wait_for(&db, tenant(1), total_events - a)
            .await
            .iter()
            .map(|r| r.3)
            .sum();
        a + b
    };
    assert_eq!(
        indexed, total_events,
        "every event counted exactly once after the swap"
    );

    // The swapped-in table keeps the live table's names, security and grants.
    let (rls, forced): (bool, bool) =
        sqlx::query_as("SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = 'public.stream_index'::regclass")
            .fetch_one(&db.admin)
            .await
            .unwrap();
    assert!(rls && forced);
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'stream_index' ORDER BY 1",
    )
    .fetch_all(&db.admin)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        vec![
            "stream_index_by_category".to_owned(),
            "stream_index_pkey".to_owned()
        ]
    );
    let leftover: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild_%'")
            .fetch_one(&db.admin)
            .await
            .unwrap();
    assert_eq!(leftover, 0, "the rebuild schema is gone");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM stream_index")
        .fetch_one(&db.app)
        .await
        .unwrap();
    assert_eq!(n, 0, "with no tenant the app still sees nothing");

    shutdown.cancel();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    notifications.await.unwrap();
}
