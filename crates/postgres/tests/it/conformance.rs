//! Runs the event log conformance suite against PostgreSQL.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{PgConnection, Postgres, Transaction};
use uuid::Uuid;
use ventanilla_eventlog::conformance::{self as suite, Harness, Member, ProbeRow, SlowAppend};
use ventanilla_eventlog::{EventLog, Limits, NewEvent, RecordedEvent};
use ventanilla_kernel::{EventId, StreamId, TenantId};
use ventanilla_postgres::db::set_tenant;
use ventanilla_postgres::{Handler, PgEventLog, Subscription, SubscriptionConfig, TenantTx};
use ventanilla_testkit::TestDb;

pub struct PgHarness {
    pub db: TestDb,
    log: Arc<PgEventLog>,
}

impl PgHarness {
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        sqlx::raw_sql(
            "CREATE TABLE probe_applied (subscription text, event_id uuid, stream text, version bigint, \
               member text, times int NOT NULL DEFAULT 1, seq bigserial, PRIMARY KEY (subscription, event_id)); \
             GRANT ALL ON probe_applied TO ventanilla_app; \
             GRANT USAGE ON SEQUENCE probe_applied_seq_seq TO ventanilla_app;",
        )
        .execute(&db.admin)
        .await
        .unwrap();
        let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
        Self { db, log }
    }
}

struct Slow(Transaction<'static, Postgres>);

#[async_trait]
impl SlowAppend for Slow {
    async fn commit(self: Box<Self>) -> anyhow::Result<()> {
        self.0.commit().await?;
        Ok(())
    }
}

/// Records what it applies; fails after `crash_after` events, losing its
/// transaction as a crash would.
struct Probe {
    subscription: String,
    member: String,
    crash_after: Option<usize>,
    applied: AtomicUsize,
}

#[async_trait]
impl Handler for Probe {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        for e in events {
            if self
                .crash_after
                .is_some_and(|n| self.applied.load(Ordering::SeqCst) >= n)
            {
                anyhow::bail!("simulated crash");
            }
            sqlx::query(
                "INSERT INTO probe_applied (subscription, event_id, stream, version, member) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (subscription, event_id) DO UPDATE SET times = probe_applied.times + 1",
            )
            .bind(&self.subscription)
            .bind(e.id.into_uuid())
            .bind(e.stream.as_str())
            .bind(e.version as i64)
            .bind(&self.member)
            .execute(tx.conn().await?)
            .await?;
            self.applied.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }
}

struct PgMember(Subscription<PgEventLog>);

#[async_trait]
impl Member for PgMember {
    async fn rebalance(&mut self) -> anyhow::Result<()> {
        Ok(self.0.rebalance().await?)
    }
    async fn catch_up(&mut self) -> anyhow::Result<usize> {
        self.0.catch_up().await
    }
    fn owned(&self) -> Vec<u32> {
        self.0.owned()
    }
    async fn leave(mut self: Box<Self>) {
        self.0.leave().await;
    }
}

#[async_trait]
impl Harness for PgHarness {
    type Log = PgEventLog;

    fn log(&self) -> Arc<PgEventLog> {
        Arc::clone(&self.log)
    }

    async fn begin_slow_append(
        &self,
        tenant: TenantId,
        stream: &StreamId,
        events: Vec<NewEvent>,
    ) -> anyhow::Result<Box<dyn SlowAppend>> {
        let mut tx = self.db.app.begin().await?;
        append_in(&mut tx, tenant, stream, events).await?;
        Ok(Box::new(Slow(tx)))
    }

    async fn member(
        &self,
        subscription: &str,
        member: &str,
        partitions: u32,
        batch_size: usize,
        crash_after: Option<usize>,
        member_timeout: Duration,
    ) -> anyhow::Result<Box<dyn Member>> {
        let mut config = SubscriptionConfig::new(subscription, member);
        config.partitions = partitions;
        config.batch_size = batch_size;
        config.member_timeout = member_timeout;
        let probe = Arc::new(Probe {
            subscription: subscription.to_owned(),
            member: member.to_owned(),
            crash_after,
            applied: AtomicUsize::new(0),
        });
        let sub = Subscription::join(self.log(), self.db.app.clone(), config, probe).await?;
        Ok(Box::new(PgMember(sub)))
    }

    async fn applied(&self, subscription: &str) -> anyhow::Result<Vec<ProbeRow>> {
        let rows: Vec<(Uuid, String, i64, String, i32, i64)> = sqlx::query_as(
            "SELECT event_id, stream, version, member, times, seq FROM probe_applied WHERE subscription = $1 ORDER BY seq",
        )
        .bind(subscription)
        .fetch_all(&self.db.admin)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, stream, version, member, times, seq)| ProbeRow {
                event_id: EventId::from_uuid(id),
                stream,
                version: version as u64,
                member,
                times: times as u32,
                seq: seq as u64,
            })
            .collect())
    }
}

/// Appends through the same SQL function inside a caller's transaction.
pub async fn append_in(
    tx: &mut PgConnection,
    tenant: TenantId,
    stream: &StreamId,
    events: Vec<NewEvent>,
) -> anyhow::Result<()> {
    set_tenant(tx, tenant).await?;
    let ids: Vec<Uuid> = events.iter().map(|e| e.id.into_uuid()).collect();
    let types: Vec<String> = events.iter().map(|e| e.event_type.clone()).collect();
    let schemas: Vec<i16> = events.iter().map(|e| e.schema_version as i16).collect();
    let data: Vec<serde_json::Value> = events.iter().map(|e| e.data.clone()).collect();
    let meta: Vec<serde_json::Value> = events
        .iter()
        .map(|e| serde_json::to_value(&e.metadata).unwrap())
        .collect();
    sqlx::query("SELECT * FROM eventlog_append($1, $2, $3, -2, $4, $5, $6, $7, $8)")
        .bind(tenant.into_uuid())
        .bind(stream.as_str())
        .bind(i64::from(stream.partition_hash()))
        .bind(ids)
        .bind(types)
        .bind(schemas)
        .bind(data)
        .bind(meta)
        .fetch_all(tx)
        .await?;
    Ok(())
}

#[tokio::test]
async fn ordering() {
    suite::ordering(&PgHarness::new().await).await;
}

#[tokio::test]
async fn expected_version() {
    suite::expected_version(&PgHarness::new().await).await;
}

#[tokio::test]
async fn idempotent_reappend() {
    suite::idempotent_reappend(&PgHarness::new().await).await;
}

#[tokio::test]
async fn invalid_events_write_nothing() {
    suite::invalid_events_write_nothing(&PgHarness::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gap_safety() {
    suite::gap_safety(&PgHarness::new().await).await;
}

#[tokio::test]
async fn subscriber_resumes_after_crash() {
    suite::subscriber_resumes_after_crash(&PgHarness::new().await).await;
}

#[tokio::test]
async fn consumer_group() {
    suite::consumer_group(&PgHarness::new().await).await;
}

/// A real kill: the member's task is aborted while its batch transaction is
/// open; the connection's transaction is rolled back and a new member
/// resumes from the last committed checkpoint.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_task_loses_nothing() {
    struct Stall(tokio::sync::Notify);
    #[async_trait]
    impl Handler for Stall {
        async fn handle(
            &self,
            tx: &mut TenantTx<'_>,
            events: &[RecordedEvent],
        ) -> anyhow::Result<()> {
            let tx = tx.conn().await?;
            for e in events {
                sqlx::query("INSERT INTO probe_applied (subscription, event_id, stream, version, member) VALUES ('kill', $1, $2, $3, 'stall')")
                    .bind(e.id.into_uuid()).bind(e.stream.as_str()).bind(e.version as i64)
                    .execute(&mut *tx).await?;
            }
            self.0.notify_one();
            std::future::pending::<()>().await;
            Ok(())
        }
    }
    let h = PgHarness::new().await;
    let log = h.log();
    for i in 0..20 {
        log.append(
            suite::tenant(1),
            &suite::stream("kill-1"),
            ventanilla_eventlog::ExpectedVersion::Any,
            vec![suite::event("t.k", i)],
        )
        .await
        .unwrap();
    }
    // Wait until all 20 are readable (another test's open transaction may
    // hold readers back for a moment), so the stalled batch is not empty.
    let readable =
        suite::read_at_least(log.as_ref(), ventanilla_eventlog::Position::START, 100, 20).await;
    assert_eq!(readable.len(), 20);
    let stall = Arc::new(Stall(tokio::sync::Notify::new()));
    let mut config = SubscriptionConfig::new("kill", "stall");
    config.member_timeout = Duration::from_millis(300);
    let mut sub = Subscription::join(
        Arc::clone(&log),
        h.db.app.clone(),
        config,
        stall.clone() as Arc<dyn Handler>,
    )
    .await
    .unwrap();
    sub.rebalance().await.unwrap();
    let task = tokio::spawn(async move { sub.step().await });
    tokio::time::timeout(Duration::from_secs(20), stall.0.notified())
        .await
        .expect("the member reached its handler");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut m = h
        .member("kill", "fresh", 1, 100, None, Duration::from_millis(300))
        .await
        .unwrap();
    m.rebalance().await.unwrap();
    m.catch_up().await.unwrap();
    let rows = h.applied("kill").await.unwrap();
    assert_eq!(rows.len(), 20);
    assert!(
        rows.iter().all(|r| r.member == "fresh" && r.times == 1),
        "the aborted batch left nothing behind"
    );
}
