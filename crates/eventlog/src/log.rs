//! The [`EventLog`] trait: the one interface to the system of record.
//!
//! A backend (PostgreSQL today, KurrentDB later) implements it and must pass
//! the [`conformance`](crate::conformance) suite.

use async_trait::async_trait;
use tokio::sync::watch;
use ventanilla_kernel::{StreamId, TenantId};

use crate::envelope::{InvalidEvent, NewEvent, Position, RecordedEvent};

/// What the writer believes the stream's current version to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectedVersion {
    /// Append whatever the stream holds.
    Any,
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version.
    Exact(u64),
}

/// The result of an append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The version of the stream's last event after the append.
    pub version: u64,
    /// The positions of the appended events, in order.
    pub positions: Vec<Position>,
    /// True when every event was already stored: nothing was written and the
    /// stored positions are returned (an idempotent retry).
    pub already_stored: bool,
}

impl Appended {
    /// The position of the last event appended: wait for a projection to
    /// reach it to read your own write.
    pub fn last_position(&self) -> Option<Position> {
        self.positions.last().copied()
    }
}

/// Why an append wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The stream's version is not the one expected: someone else wrote
    /// first. Reload and decide again.
    #[error("stream {stream}: expected version {expected:?}, but the stream is at {actual:?}")]
    WrongExpectedVersion {
        /// The stream.
        stream: StreamId,
        /// What the writer expected.
        expected: ExpectedVersion,
        /// The stream's version (None: it does not exist), when known.
        actual: Option<u64>,
    },
    /// Some of the event ids are already stored and some are not, or they
    /// are stored on another stream: not a retry of the same append.
    #[error(
        "stream {stream}: some of these event ids are already stored elsewhere; this is not a retry of one append"
    )]
    IdempotencyMismatch {
        /// The stream.
        stream: StreamId,
    },
    /// The events break the envelope's rules or limits.
    #[error(transparent)]
    Invalid(#[from] InvalidEvent),
    /// The backend failed (connection lost, time-out...).
    #[error("event log unavailable: {0}")]
    Backend(#[source] anyhow::Error),
}

/// Why a read failed. Reading a stream that does not exist is not an error:
/// it returns no events.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A stored event could not be decoded (a corrupt or foreign row).
    #[error("stored event {position} cannot be decoded: {reason}")]
    Corrupt {
        /// Where it is.
        position: Position,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend failed.
    #[error("event log unavailable: {0}")]
    Backend(#[source] anyhow::Error),
}

/// A consumer-group member's share of the log: the streams whose
/// [`StreamId::partition_hash`] modulo `count` is one of `owned`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFilter {
    /// How many partitions the subscription has.
    pub count: u32,
    /// The partitions to read.
    pub owned: Vec<u32>,
}

impl PartitionFilter {
    /// The partition of a stream among `count`.
    pub fn partition_of(stream: &StreamId, count: u32) -> u32 {
        stream.partition_hash() % count.max(1)
    }

    /// Whether this filter takes the stream.
    pub fn takes(&self, stream: &StreamId) -> bool {
        self.owned.contains(&Self::partition_of(stream, self.count))
    }
}

/// The system of record: an append-only log of events, in streams, per tenant.
#[async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Appends events to one stream of one tenant, atomically, if the stream
    /// is at the expected version. Nothing is written on any error. When every
    /// event id is already stored on this stream, nothing is written and the
    /// stored positions are returned (`already_stored`).
    async fn append(
        &self,
        tenant: TenantId,
        stream: &StreamId,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<Appended, AppendError>;

    /// Reads up to `max` events of one stream, in version order, starting at
    /// version `from`. An unknown stream gives an empty list.
    async fn read_stream(
        &self,
        tenant: TenantId,
        stream: &StreamId,
        from: u64,
        max: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError>;

    /// Reads up to `max` events of every tenant in global order, strictly
    /// after `after`, optionally only some partitions. Gap-safe: an event that
    /// is not returned now because its transaction is still open will never
    /// be ordered before a position already returned.
    async fn read_all(
        &self,
        after: Position,
        max: usize,
        partitions: Option<&PartitionFilter>,
    ) -> Result<Vec<RecordedEvent>, ReadError>;

    /// The position of the last event that `read_all` can return now
    /// ([`Position::START`] when the log is empty). Its `sequence` is also a
    /// close estimate of how many events the log holds: for progress bars
    /// and "caught up" checks.
    async fn head(&self) -> Result<Position, ReadError>;

    /// The position of the newest committed event, readable or not yet
    /// ([`Position::START`] when the log is empty): a reader that must see
    /// everything written so far — say, by another process — waits until it
    /// has passed it.
    async fn committed_head(&self) -> Result<Position, ReadError>;

    /// A value that changes whenever new events may be readable. Readers wait
    /// on it instead of polling fast; a slow poll stays as a fallback.
    fn wakeups(&self) -> watch::Receiver<u64>;
}
