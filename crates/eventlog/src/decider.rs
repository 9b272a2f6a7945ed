//! Aggregates as deciders, and the command path that runs them.
//!
//! A [`Decider`] is pure: `decide(&state, &command, now)` returns the events
//! a command produces (or a domain error), and `evolve(state, &event)` folds
//! an event into the state. No I/O, no clock, no random ids: the command path
//! supplies `now`, and new ids travel inside commands.
//!
//! The [`CommandRunner`] is the impure part: it loads the stream, folds it,
//! decides, and appends with the expected version it loaded, retrying a
//! bounded number of times when another writer got there first.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;
use tracing::{debug, instrument};
use uuid::Uuid;
use ventanilla_kernel::{Actor, EventId, StreamId, TenantId, TraceParent};

use crate::envelope::{InvalidEvent, Metadata, NewEvent, Position, RecordedEvent};
use crate::log::{AppendError, EventLog, ExpectedVersion, ReadError};

/// A stored event could not be turned back into a domain event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read event {event_type} v{schema_version}: {reason}")]
pub struct UpcastError {
    /// The stored type.
    pub event_type: String,
    /// The stored schema version.
    pub schema_version: u16,
    /// What went wrong.
    pub reason: String,
}

/// [`decode_payload`] for an event enum whose variant travels in its data
/// (`#[serde(tag = "type")]`): refuses an `event_type` not among `types`
/// (the enum's stored names; `what` names the enum in the refusal), then
/// reads version 1 of the data.
pub fn decode_tagged<T: serde::de::DeserializeOwned>(
    types: &[&str],
    what: &str,
    event_type: &str,
    schema_version: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    if !types.contains(&event_type) {
        return Err(UpcastError {
            event_type: event_type.to_owned(),
            schema_version,
            reason: format!("not a {what} event type"),
        });
    }
    decode_payload(event_type, schema_version, 1, data)
}

/// Reads a stored event's data into its payload type, when it was written at
/// schema version `current` — the common case of [`DomainEvent::from_stored`]
/// for a type that has never changed shape. An older or newer version is
/// refused (an upcaster for it belongs to the event's module), and so is data
/// that does not fit the type.
pub fn decode_payload<T: serde::de::DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    current: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    let fail = |reason: String| UpcastError {
        event_type: event_type.to_owned(),
        schema_version,
        reason,
    };
    if schema_version != current {
        return Err(fail(format!(
            "unknown schema version {schema_version} (this code reads version {current})"
        )));
    }
    T::deserialize(data).map_err(|e| fail(e.to_string()))
}

/// A domain event: knows its type name and schema version, and how to be
/// written as JSON and read back from any stored version (upcasting old ones).
pub trait DomainEvent: Sized + Send + Sync {
    /// The past-tense type name, e.g. `tenant.suspended`.
    fn event_type(&self) -> &'static str;

    /// The current schema version of this type's data.
    fn schema_version(&self) -> u16 {
        1
    }

    /// The data to store: a JSON object.
    fn to_data(&self) -> Value;

    /// Reads a stored event of any known version of its type.
    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError>;
}

/// An aggregate's decision logic.
pub trait Decider {
    /// What the aggregate remembers. `Default` is the state of a stream that
    /// does not exist yet.
    type State: Default + Send;
    /// What can be asked of it.
    type Command: Send + Sync;
    /// What it records.
    type Event: DomainEvent;
    /// Why it refuses a command.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The events `command` produces in `state` at `now`, or why not.
    fn decide(
        state: &Self::State,
        command: &Self::Command,
        now: DateTime<Utc>,
    ) -> Result<Vec<Self::Event>, Self::Error>;

    /// The state after `event`.
    fn evolve(state: Self::State, event: &Self::Event) -> Self::State;

    /// Folds events into a state, starting from nothing.
    fn fold<'a>(events: impl IntoIterator<Item = &'a Self::Event>) -> Self::State
    where
        Self::Event: 'a,
    {
        events
            .into_iter()
            .fold(Self::State::default(), Self::evolve)
    }
}

/// Everything about a command that is not the command itself: which tenant,
/// when, who, and the trace it belongs to.
#[derive(Debug, Clone)]
pub struct CommandContext {
    /// The tenant whose stream is written. Comes from the authenticated
    /// principal, never from user input.
    pub tenant: TenantId,
    /// The time the command is decided at.
    pub now: DateTime<Utc>,
    /// Who asks.
    pub actor: Actor,
    /// Shared by everything this request causes.
    pub correlation_id: Uuid,
    /// The event or request that caused this command.
    pub causation_id: Option<Uuid>,
    /// The caller's trace context, stored with the events.
    pub traceparent: Option<TraceParent>,
    /// When set, the events get ids derived from it, and running the same
    /// command again after a success returns the stored result instead of
    /// deciding again.
    pub idempotency_key: Option<Uuid>,
}

impl CommandContext {
    /// A context for `tenant` at `now` by `actor`, starting a new correlation.
    pub fn new(tenant: TenantId, now: DateTime<Utc>, actor: Actor) -> Self {
        Self {
            tenant,
            now,
            actor,
            correlation_id: Uuid::new_v4(),
            causation_id: None,
            traceparent: None,
            idempotency_key: None,
        }
    }

    /// Carries the caller's trace context.
    pub fn with_traceparent(mut self, traceparent: Option<TraceParent>) -> Self {
        self.traceparent = traceparent;
        self
    }

    /// Makes the command idempotent under `key`.
    pub fn with_idempotency_key(mut self, key: Uuid) -> Self {
        self.idempotency_key = Some(key);
        self
    }

    fn metadata(&self) -> Metadata {
        Metadata {
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            traceparent: self.traceparent,
            actor: self.actor.clone(),
        }
    }
}

/// What a successful command produced.
pub struct Executed<D: Decider> {
    /// The aggregate's state after the command.
    pub state: D::State,
    /// The events recorded (empty when the command changed nothing).
    pub events: Vec<D::Event>,
    /// The stream's version after the command (None: the stream is empty).
    pub version: Option<u64>,
    /// The position of the last event written, to wait for projections.
    pub position: Option<Position>,
    /// True when this was a repeat of an idempotent command already stored.
    pub replayed: bool,
}

impl<D: Decider> std::fmt::Debug for Executed<D>
where
    D::State: std::fmt::Debug,
    D::Event: std::fmt::Debug,
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executed")
            .field("state", &self.state)
            .field("events", &self.events)
            .field("version", &self.version)
            .field("position", &self.position)
            .field("replayed", &self.replayed)
            .finish()
    }
}

/// Why a command was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error + 'static> {
    /// The aggregate refused it.
    #[error(transparent)]
    Domain(E),
    /// Other writers kept changing the stream; gave up after this many tries.
    #[error("the record changed while the command ran ({attempts} attempts); try again")]
    Conflict {
        /// How many times it was tried.
        attempts: u32,
    },
    /// The events it produced break the log's limits.
    #[error(transparent)]
    Invalid(InvalidEvent),
    /// The log failed, or a stored event could not be read.
    #[error(transparent)]
    Unexpected(anyhow::Error),
}

/// Loads, decides, appends; retries on conflict.
pub struct CommandRunner<L: EventLog + ?Sized> {
    log: Arc<L>,
    max_attempts: u32,
}

impl<L: EventLog + ?Sized> Clone for CommandRunner<L> {
    fn clone(&self) -> Self {
        Self {
            log: Arc::clone(&self.log),
            max_attempts: self.max_attempts,
        }
    }
}

/// How many events one read of a stream asks for while loading it.
const LOAD_PAGE: usize = 1000;

impl<L: EventLog + ?Sized> CommandRunner<L> {
    /// A runner over `log` that tries a command at most `max_attempts` times.
    pub fn new(log: Arc<L>, max_attempts: u32) -> Self {
        Self {
            log,
            max_attempts: max_attempts.max(1),
        }
    }

    /// The log this runner writes to.
    pub fn log(&self) -> &Arc<L> {
        &self.log
    }

    /// Runs `command` against the aggregate in `stream`.
    #[instrument(skip_all, fields(tenant_id = %ctx.tenant, stream = %stream))]
    pub async fn execute<D: Decider>(
        &self,
        ctx: &CommandContext,
        stream: &StreamId,
        command: &D::Command,
    ) -> Result<Executed<D>, CommandError<D::Error>> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (recorded, events) = self.load::<D>(ctx.tenant, stream).await?;
            let version = recorded.last().map(|e| e.version);

            if let Some(key) = ctx.idempotency_key {
                // Already done? The command's first event id is derived from
                // the key, so its presence in the stream says so.
                let first = EventId::for_command(key, 0);
                if recorded.iter().any(|e| e.id == first) {
                    let stored: std::collections::HashSet<EventId> =
                        recorded.iter().map(|e| e.id).collect();
                    let ids: std::collections::HashSet<EventId> = (0..)
                        .map(|i| EventId::for_command(key, i))
                        .take_while(|id| stored.contains(id))
                        .collect();
                    let mine: Vec<bool> = recorded.iter().map(|r| ids.contains(&r.id)).collect();
                    let position = recorded
                        .iter()
                        .zip(&mine)
                        .filter(|(_, m)| **m)
                        .map(|(r, _)| r.position)
                        .max();
                    let state = D::fold(&events);
                    let produced = events
                        .into_iter()
                        .zip(mine)
                        .filter_map(|(e, m)| m.then_some(e))
                        .collect();
                    return Ok(Executed {
                        state,
                        events: produced,
                        version,
                        position,
                        replayed: true,
                    });
                }
            }

            let mut state = D::fold(&events);
            let new = D::decide(&state, command, ctx.now).map_err(CommandError::Domain)?;
            if new.is_empty() {
                return Ok(Executed {
                    state,
                    events: new,
                    version,
                    position: None,
                    replayed: false,
                });
            }
            let metadata = ctx.metadata();
            let to_append = new
                .iter()
                .enumerate()
                .map(|(i, e)| NewEvent {
                    id: match ctx.idempotency_key {
                        Some(key) => EventId::for_command(key, i),
                        None => EventId::from_uuid(Uuid::new_v4()),
                    },
                    event_type: e.event_type().to_owned(),
                    schema_version: e.schema_version(),
                    data: e.to_data(),
                    metadata: metadata.clone(),
                })
                .collect();
            let expected = version.map_or(ExpectedVersion::NoStream, ExpectedVersion::Exact);
            match self
                .log
                .append(ctx.tenant, stream, expected, to_append)
                .await
            {
                Ok(appended) => {
                    for e in &new {
                        state = D::evolve(state, e);
                    }
                    return Ok(Executed {
                        state,
                        events: new,
                        version: Some(appended.version),
                        position: appended.last_position(),
                        replayed: false,
                    });
                }
                Err(AppendError::WrongExpectedVersion { .. }) if attempt < self.max_attempts => {
                    debug!(attempt, "conflict, deciding again");
                    continue;
                }
                Err(AppendError::WrongExpectedVersion { .. }) => {
                    return Err(CommandError::Conflict { attempts: attempt });
                }
                Err(AppendError::Invalid(e)) => return Err(CommandError::Invalid(e)),
                Err(e) => return Err(CommandError::Unexpected(e.into())),
            }
        }
    }

    /// Loads a stream's recorded events and their domain form.
    pub async fn load<D: Decider>(
        &self,
        tenant: TenantId,
        stream: &StreamId,
    ) -> Result<(Vec<RecordedEvent>, Vec<D::Event>), CommandError<D::Error>> {
        let mut recorded = Vec::new();
        loop {
            let from = recorded.last().map_or(0, |e: &RecordedEvent| e.version + 1);
            let page = self
                .log
                .read_stream(tenant, stream, from, LOAD_PAGE)
                .await
                .map_err(|e: ReadError| CommandError::Unexpected(e.into()))?;
            let done = page.len() < LOAD_PAGE;
            recorded.extend(page);
            if done {
                break;
            }
        }
        let events = recorded
            .iter()
            .map(|e| D::Event::from_stored(&e.event_type, e.schema_version, &e.data))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CommandError::Unexpected(e.into()))?;
        Ok((recorded, events))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[derive(Debug, PartialEq, serde::Deserialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Stored {
        Opened { n: u32 },
    }

    #[test]
    fn tagged_payloads_are_read_and_foreign_types_refused() {
        let data = serde_json::json!({"type": "opened", "n": 3});
        let read: Stored =
            decode_tagged(&["thing.opened"], "thing", "thing.opened", 1, &data).unwrap();
        assert_eq!(read, Stored::Opened { n: 3 });
        let e = decode_tagged::<Stored>(&["thing.opened"], "thing", "other.opened", 1, &data)
            .unwrap_err();
        assert_eq!(e.reason, "not a thing event type");
        let e = decode_tagged::<Stored>(&["thing.opened"], "thing", "thing.opened", 2, &data)
            .unwrap_err();
        assert!(
            e.reason.contains("unknown schema version 2"),
            "{}",
            e.reason
        );
    }
}
