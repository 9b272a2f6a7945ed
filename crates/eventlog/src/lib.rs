//! The event log contract every Ventanilla service writes to and reads from.
//!
//! - [`envelope`]: what an event is on the wire and at rest ([`NewEvent`],
//!   [`RecordedEvent`], [`Metadata`], [`Position`]).
//! - [`log`]: the [`EventLog`] trait a backend implements (append with an
//!   expected version, read a stream, read everything gap-safely, wake-ups).
//! - [`decider`]: pure `decide`/`evolve` aggregates, the [`CommandRunner`] that
//!   loads, decides, appends and retries conflicts, and given/when/then
//!   helpers for testing deciders without I/O.
//! - [`conformance`] (feature `conformance`): one suite of behavioural tests,
//!   written once against the trait, that every backend must pass.
//!
//! This crate performs no I/O itself and knows nothing of PostgreSQL.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod decider;
pub mod envelope;
pub mod log;
pub mod testing;

pub use decider::{
    CommandContext, CommandError, CommandRunner, Decider, DomainEvent, Executed, UpcastError,
    decode_payload, decode_tagged,
};
pub use envelope::{InvalidEvent, Limits, Metadata, NewEvent, Position, RecordedEvent};
pub use log::{AppendError, Appended, EventLog, ExpectedVersion, PartitionFilter, ReadError};
