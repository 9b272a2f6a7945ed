//! [`PgEventLog`]: the event log on PostgreSQL.
//!
//! Every operation is one statement calling a function of
//! `migrations/0001_roles_and_event_log.sql`, so an append costs one round
//! trip and group-commits like a plain insert.
//!
//! Wake-ups: an append wakes readers in this process at once. Other
//! processes learn of it through `NOTIFY`, sent by a separate notifier task
//! that coalesces bursts — never inside the append's transaction, because
//! PostgreSQL serialises the commits of notifying transactions, which would
//! undo group commit. Readers also poll slowly, so a lost notification only
//! delays them.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::postgres::PgListener;
use sqlx::{FromRow, PgPool};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};
use uuid::Uuid;
use ventanilla_eventlog::{
    AppendError, Appended, EventLog, ExpectedVersion, Limits, Metadata, NewEvent, PartitionFilter,
    Position, ReadError, RecordedEvent,
};
use ventanilla_kernel::{EventId, StreamId, TenantId};

/// The channel other processes listen on.
pub const NOTIFY_CHANNEL: &str = "ventanilla_eventlog";

/// How many times an append with [`ExpectedVersion::Any`] retries when
/// another writer takes the same version at the same moment.
const ANY_RETRIES: u32 = 5;

/// The PostgreSQL event log.
#[derive(Clone)]
pub struct PgEventLog {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    limits: Limits,
    wake: watch::Sender<u64>,
    tell_peers: Notify,
}

impl PgEventLog {
    /// A log on `pool` (the application role's pool).
    pub fn new(pool: PgPool, limits: Limits) -> Self {
        let (wake, _) = watch::channel(0);
        Self {
            inner: Arc::new(Inner {
                pool,
                limits,
                wake,
                tell_peers: Notify::new(),
            }),
        }
    }

    /// The pool this log uses.
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    fn wake_local(&self) {
        self.inner.wake.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Runs the cross-process wake-ups until `shutdown`: LISTEN for other
    /// processes' appends, and NOTIFY them of ours.
    pub fn spawn_notifications(&self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        let log = self.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = shutdown.cancelled() => {}
                () = log.listen() => {}
                () = log.notify_peers() => {}
            }
        })
    }

    async fn listen(&self) {
        loop {
            match PgListener::connect_with(&self.inner.pool).await {
                Ok(mut listener) => {
                    if let Err(e) = listener.listen(NOTIFY_CHANNEL).await {
                        warn!(error = %e, "cannot LISTEN for new events; polling only");
                    } else {
                        // A notification may have been missed while connecting.
                        self.wake_local();
                        loop {
                            match listener.recv().await {
                                Ok(_) => self.wake_local(),
                                Err(e) => {
                                    warn!(error = %e, "event notifications interrupted");
                                    break;
                                }
                            }
                        }
                    }
                }
                Err(e) => warn!(error = %e, "cannot connect to LISTEN for new events"),
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    async fn notify_peers(&self) {
        loop {
            self.inner.tell_peers.notified().await;
            // Let a burst of appends share one notification.
            tokio::time::sleep(Duration::from_millis(2)).await;
            if let Err(e) = sqlx::query("SELECT pg_notify($1, '')")
                .bind(NOTIFY_CHANNEL)
                .execute(&self.inner.pool)
                .await
            {
                debug!(error = %e, "cannot notify other processes; they will poll");
            }
        }
    }
}

#[derive(FromRow)]
struct AppendRow {
    event_id: Uuid,
    stream_version: i64,
    transaction_id: i64,
    global_position: i64,
    already_stored: bool,
}

/// The columns an [`EventRow`] is read from (a macro, so queries stay
/// `&'static str`).
macro_rules! event_columns {
    () => {
        "tenant_id, stream_id, stream_version, event_id, event_type, schema_version, \
         data, metadata, transaction_id, global_position, recorded_at"
    };
}

#[derive(FromRow)]
struct EventRow {
    tenant_id: Uuid,
    stream_id: String,
    stream_version: i64,
    event_id: Uuid,
    event_type: String,
    schema_version: i16,
    data: Value,
    metadata: sqlx::types::Json<Metadata>,
    transaction_id: i64,
    global_position: i64,
    recorded_at: DateTime<Utc>,
}

fn position(commit: i64, sequence: i64) -> Position {
    Position {
        commit: u64::try_from(commit).unwrap_or_default(),
        sequence: u64::try_from(sequence).unwrap_or_default(),
    }
}

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

impl EventRow {
    fn into_recorded(self) -> Result<RecordedEvent, ReadError> {
        let position = position(self.transaction_id, self.global_position);
        let corrupt = |reason: String| ReadError::Corrupt { position, reason };
        let metadata = self.metadata.0;
        let stream = StreamId::parse(self.stream_id).map_err(|e| corrupt(e.to_string()))?;
        Ok(RecordedEvent {
            id: EventId::from_uuid(self.event_id),
            tenant_id: TenantId::from_uuid(self.tenant_id),
            stream,
            version: u64::try_from(self.stream_version).map_err(|e| corrupt(e.to_string()))?,
            position,
            event_type: self.event_type,
            schema_version: u16::try_from(self.schema_version)
                .map_err(|e| corrupt(e.to_string()))?,
            data: self.data,
            metadata,
            recorded_at: self.recorded_at,
        })
    }
}

/// The expected version for the one-statement path, if it applies: −1 for a
/// new stream, n for an exact version. `Any` needs the function (it takes a
/// per-stream lock and reads the current version).
fn single_path(expected: ExpectedVersion) -> Option<i64> {
    match expected {
        ExpectedVersion::NoStream => Some(-1),
        ExpectedVersion::Exact(v) => i64::try_from(v).ok(),
        ExpectedVersion::Any => None,
    }
}

fn backend(e: sqlx::Error) -> anyhow::Error {
    anyhow::Error::new(e)
}

impl PgEventLog {
    async fn append_once(
        &self,
        tenant: TenantId,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<Appended, AppendError> {
        let expected_code: i64 = match expected {
            ExpectedVersion::Any => -2,
            ExpectedVersion::NoStream => -1,
            ExpectedVersion::Exact(v) => to_i64(v),
        };
        let ids: Vec<Uuid> = events.iter().map(|e| e.id.into_uuid()).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let schemas: Vec<i16> = events
            .iter()
            .map(|e| i16::try_from(e.schema_version).unwrap_or(i16::MAX))
            .collect();
        let data: Vec<&Value> = events.iter().map(|e| &e.data).collect();
        let metadata = events
            .iter()
            .map(|e| serde_json::to_value(&e.metadata))
            .collect::<Result<Vec<Value>, _>>()
            .map_err(|e| AppendError::Backend(e.into()))?;

        if let ([event], Some(expected_version)) = (events, single_path(expected)) {
            match self
                .append_single(tenant, stream, expected_version, event)
                .await
            {
                // Stored: done in one plain statement.
                Ok(Some(appended)) => return Ok(appended),
                // Nothing written: the stream is not at the expected version,
                // or (a unique violation) the version or the id is taken —
                // perhaps by this very event, delivered twice. The function
                // below tells these apart.
                Ok(None) => {}
                Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {}
                Err(e) => return Err(self.classify(e, stream, expected)),
            }
        }
        let result = sqlx::query_as::<_, AppendRow>(
            "SELECT event_id, stream_version, transaction_id, global_position, already_stored \
             FROM eventlog_append($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(tenant.into_uuid())
        .bind(stream.as_str())
        .bind(i64::from(stream.partition_hash()))
        .bind(expected_code)
        .bind(&ids)
        .bind(&types)
        .bind(&schemas)
        .bind(&data)
        .bind(&metadata)
        .fetch_all(&self.inner.pool)
        .await;

        let rows = result.map_err(|e| self.classify(e, stream, expected))?;

        let already_stored = rows.first().is_some_and(|r| r.already_stored);
        let by_id: std::collections::HashMap<Uuid, &AppendRow> =
            rows.iter().map(|r| (r.event_id, r)).collect();
        let positions = ids
            .iter()
            .filter_map(|id| by_id.get(id))
            .map(|r| position(r.transaction_id, r.global_position))
            .collect::<Vec<_>>();
        let version = rows
            .iter()
            .map(|r| r.stream_version)
            .max()
            .and_then(|v| u64::try_from(v).ok())
            .unwrap_or_default();
        if positions.len() != events.len() {
            return Err(AppendError::Backend(anyhow::anyhow!(
                "the log returned {} positions for {} events",
                positions.len(),
                events.len()
            )));
        }
        Ok(Appended {
            version,
            positions,
            already_stored,
        })
    }

    /// One event to a new stream (`expected` −1) or at an exact version, in
    /// one plain INSERT — no `ON CONFLICT`, whose speculative insertion costs
    /// more than the rare duplicate it would catch. `None` when the version
    /// check wrote nothing; a unique violation when the version or the id is
    /// taken.
    async fn append_single(
        &self,
        tenant: TenantId,
        stream: &StreamId,
        expected: i64,
        event: &NewEvent,
    ) -> Result<Option<Appended>, sqlx::Error> {
        let metadata =
            serde_json::to_value(&event.metadata).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        // The tenant is set by a materialised CTE the inserted row is read
        // from, so row-level security sees it before the row is checked; the
        // version check is correlated with it for the same reason.
        const NEW_STREAM: &str = "WITH scope AS MATERIALIZED \
               (SELECT set_config('app.tenant_id', $1::text, true) AS tenant) \
             INSERT INTO events (tenant_id, stream_id, stream_version, event_id, event_type, \
                                 schema_version, data, metadata, stream_hash) \
             SELECT $1, $2, $3 + 1, $4, $5, $6, $7, $8, $9 FROM scope \
             RETURNING stream_version, transaction_id, global_position";
        const AT_VERSION: &str = "WITH scope AS MATERIALIZED \
               (SELECT set_config('app.tenant_id', $1::text, true) AS tenant) \
             INSERT INTO events (tenant_id, stream_id, stream_version, event_id, event_type, \
                                 schema_version, data, metadata, stream_hash) \
             SELECT $1, $2, $3 + 1, $4, $5, $6, $7, $8, $9 FROM scope \
              WHERE EXISTS (SELECT 1 FROM events e WHERE e.tenant_id = scope.tenant::uuid \
                               AND e.stream_id = $2 AND e.stream_version = $3) \
             RETURNING stream_version, transaction_id, global_position";
        let row: Option<(i64, i64, i64)> =
            sqlx::query_as(if expected < 0 { NEW_STREAM } else { AT_VERSION })
                .bind(tenant.into_uuid())
                .bind(stream.as_str())
                .bind(expected)
                .bind(event.id.into_uuid())
                .bind(&event.event_type)
                .bind(i16::try_from(event.schema_version).unwrap_or(i16::MAX))
                .bind(&event.data)
                .bind(metadata)
                .bind(i64::from(stream.partition_hash()))
                .fetch_optional(&self.inner.pool)
                .await?;
        Ok(row.map(|(version, commit, sequence)| Appended {
            version: u64::try_from(version).unwrap_or_default(),
            positions: vec![position(commit, sequence)],
            already_stored: false,
        }))
    }

    /// Turns a database error of an append into the append's error.
    fn classify(
        &self,
        e: sqlx::Error,
        stream: &StreamId,
        expected: ExpectedVersion,
    ) -> AppendError {
        let sqlx::Error::Database(db) = e else {
            return AppendError::Backend(backend(e));
        };
        let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
        match code.as_str() {
            // The caller fills in the actual version.
            "VE001" => AppendError::WrongExpectedVersion {
                stream: stream.clone(),
                expected,
                actual: None,
            },
            "23505" if db.constraint() == Some("events_pkey") => {
                AppendError::WrongExpectedVersion {
                    stream: stream.clone(),
                    expected,
                    actual: None,
                }
            }
            "VE002" => AppendError::IdempotencyMismatch {
                stream: stream.clone(),
            },
            _ => AppendError::Backend(backend(sqlx::Error::Database(db))),
        }
    }

    async fn current_version(&self, tenant: TenantId, stream: &StreamId) -> Option<u64> {
        let mut tx = crate::db::begin_for_tenant(&self.inner.pool, tenant)
            .await
            .ok()?;
        let v: Option<i64> = sqlx::query_scalar(
            "SELECT max(stream_version) FROM events WHERE tenant_id = $1 AND stream_id = $2",
        )
        .bind(tenant.into_uuid())
        .bind(stream.as_str())
        .fetch_one(&mut *tx)
        .await
        .ok()?;
        v.and_then(|v| u64::try_from(v).ok())
    }
}

#[async_trait]
impl EventLog for PgEventLog {
    async fn append(
        &self,
        tenant: TenantId,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, AppendError> {
        self.inner.limits.check(&events)?;
        let mut tries = 0;
        let result = loop {
            tries += 1;
            match self.append_once(tenant, stream, expected, &events).await {
                Err(AppendError::WrongExpectedVersion { .. })
                    if expected == ExpectedVersion::Any && tries < ANY_RETRIES =>
                {
                    continue;
                }
                other => break other,
            }
        };
        match result {
            Ok(appended) => {
                if !appended.already_stored {
                    self.wake_local();
                    self.inner.tell_peers.notify_one();
                }
                Ok(appended)
            }
            Err(AppendError::WrongExpectedVersion {
                stream, expected, ..
            }) => Err(AppendError::WrongExpectedVersion {
                actual: self.current_version(tenant, &stream).await,
                stream,
                expected,
            }),
            Err(e) => Err(e),
        }
    }

    async fn read_stream(
        &self,
        tenant: TenantId,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let rows = sqlx::query_as::<_, EventRow>(concat!(
            "SELECT ",
            event_columns!(),
            " FROM eventlog_read_stream($1, $2, $3, $4)"
        ))
        .bind(tenant.into_uuid())
        .bind(stream.as_str())
        .bind(to_i64(from))
        .bind(i32::try_from(max).unwrap_or(i32::MAX))
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| ReadError::Backend(backend(e)))?;
        rows.into_iter().map(EventRow::into_recorded).collect()
    }

    async fn read_all(
        &self,
        after: Position,
        max: usize,
        partitions: Option<&PartitionFilter>,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let (count, parts): (i64, Option<Vec<i64>>) = match partitions {
            Some(p) => (
                i64::from(p.count.max(1)),
                Some(p.owned.iter().map(|&o| i64::from(o)).collect()),
            ),
            None => (1, None),
        };
        let rows = sqlx::query_as::<_, EventRow>(concat!(
            "SELECT ",
            event_columns!(),
            " FROM eventlog_read_all($1, $2, $3, $4, $5)"
        ))
        .bind(to_i64(after.commit))
        .bind(to_i64(after.sequence))
        .bind(i32::try_from(max).unwrap_or(i32::MAX))
        .bind(count)
        .bind(parts)
        .fetch_all(&self.inner.pool)
        .await
        .map_err(|e| ReadError::Backend(backend(e)))?;
        rows.into_iter().map(EventRow::into_recorded).collect()
    }

    async fn head(&self) -> Result<Position, ReadError> {
        let row: Option<(Option<i64>, Option<i64>)> =
            sqlx::query_as("SELECT transaction_id, global_position FROM eventlog_head()")
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(|e| ReadError::Backend(backend(e)))?;
        Ok(match row {
            Some((Some(c), Some(s))) => position(c, s),
            _ => Position::START,
        })
    }

    async fn committed_head(&self) -> Result<Position, ReadError> {
        let row: Option<(Option<i64>, Option<i64>)> =
            sqlx::query_as("SELECT transaction_id, global_position FROM eventlog_last_position()")
                .fetch_optional(&self.inner.pool)
                .await
                .map_err(|e| ReadError::Backend(backend(e)))?;
        Ok(match row {
            Some((Some(c), Some(s))) => position(c, s),
            _ => Position::START,
        })
    }

    fn wakeups(&self) -> watch::Receiver<u64> {
        self.inner.wake.subscribe()
    }
}
