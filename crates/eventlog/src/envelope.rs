//! The envelope: what every event carries besides its own data, and the
//! checks an event must pass before any backend stores it.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use ventanilla_kernel::{Actor, EventId, StreamId, TenantId, TraceParent};

/// Where an event sits in the global order of the log.
///
/// Ordered by `(commit, sequence)`: `commit` orders the writing transactions
/// (on PostgreSQL, the transaction id), `sequence` the events within and across
/// them. Reading everything "after a position" in this order never skips an
/// event that committed late (see `docs/eventlog.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Position {
    /// The writing transaction's order key.
    pub commit: u64,
    /// The event's global sequence number.
    pub sequence: u64,
}

impl Position {
    /// Before the first event.
    pub const START: Position = Position {
        commit: 0,
        sequence: 0,
    };
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.commit, self.sequence)
    }
}

/// Why an event happened and on whose behalf: set by the command layer, kept
/// unchanged by every backend.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    /// Shared by every event caused, directly or not, by one request.
    pub correlation_id: Uuid,
    /// The event (or request) that directly caused this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub causation_id: Option<Uuid>,
    /// The W3C trace context of the request that caused the event, so the
    /// services that react to it continue the same trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<TraceParent>,
    /// Who made the change.
    pub actor: Actor,
}

impl Metadata {
    /// Metadata for a change the platform makes by itself, starting a new
    /// correlation.
    pub fn system(component: &str, correlation_id: Uuid) -> Self {
        Self {
            correlation_id,
            causation_id: None,
            traceparent: None,
            actor: Actor::system(component),
        }
    }
}

/// An event to append.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Its identity; appending an id that is already stored is a no-op.
    pub id: EventId,
    /// Past-tense name, e.g. `ticket.opened`.
    pub event_type: String,
    /// Version of the data's shape for this type, starting at 1. Readers
    /// upcast older versions.
    pub schema_version: u16,
    /// The event's data: a JSON object.
    pub data: Value,
    /// Why and on whose behalf.
    pub metadata: Metadata,
}

impl NewEvent {
    /// An event whose data arrives as JSON text (e.g. from an integrator);
    /// refused if the text is not a JSON object.
    pub fn from_json(
        id: EventId,
        event_type: impl Into<String>,
        schema_version: u16,
        json: &str,
        metadata: Metadata,
    ) -> Result<Self, InvalidEvent> {
        let data: Value =
            serde_json::from_str(json).map_err(|e| InvalidEvent::Json(e.to_string()))?;
        Ok(Self {
            id,
            event_type: event_type.into(),
            schema_version,
            data,
            metadata,
        })
    }
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedEvent {
    /// Its identity.
    pub id: EventId,
    /// The tenant whose data it is.
    pub tenant_id: TenantId,
    /// The stream it belongs to.
    pub stream: StreamId,
    /// Its version within the stream: 0 for the first event.
    pub version: u64,
    /// Its place in the global order.
    pub position: Position,
    /// Past-tense name.
    pub event_type: String,
    /// Version of the data's shape.
    pub schema_version: u16,
    /// The data.
    pub data: Value,
    /// Why and on whose behalf.
    pub metadata: Metadata,
    /// When the log stored it (the backend's clock).
    pub recorded_at: DateTime<Utc>,
}

/// Limits every backend enforces before writing anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest serialised `data` of one event, in bytes (default 1 MiB).
    pub max_event_bytes: usize,
    /// The most events one append may carry.
    pub max_events_per_append: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 1024 * 1024,
            max_events_per_append: 1000,
        }
    }
}

/// Why an event was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidEvent {
    /// An append with no events.
    #[error("an append needs at least one event")]
    Empty,
    /// More events than [`Limits::max_events_per_append`].
    #[error("an append may carry at most {max} events, got {count}")]
    TooMany {
        /// The limit.
        max: usize,
        /// What was given.
        count: usize,
    },
    /// The same event id twice in one append.
    #[error("event id {0} appears twice in one append")]
    DuplicateId(EventId),
    /// A malformed event type.
    #[error(
        "event type {0:?} must be 1 to 100 characters of a-z, 0-9, '.', '_' or '-', starting with a letter"
    )]
    BadType(String),
    /// Schema version 0.
    #[error("event {0:?}: schema version must be at least 1")]
    BadSchemaVersion(String),
    /// The data is not valid JSON text.
    #[error("event data is not valid JSON: {0}")]
    Json(String),
    /// The data is JSON but not an object.
    #[error("event {0:?}: data must be a JSON object")]
    NotAnObject(String),
    /// A string in the data contains U+0000, which PostgreSQL's jsonb (and so
    /// the log) cannot store.
    #[error("event {0:?}: data must not contain the character U+0000")]
    NulCharacter(String),
    /// The data is larger than [`Limits::max_event_bytes`].
    #[error("event {event_type:?} is {size} bytes; the limit is {max} bytes")]
    TooLarge {
        /// The event's type.
        event_type: String,
        /// Its serialised size.
        size: usize,
        /// The limit.
        max: usize,
    },
}

impl Limits {
    /// Checks an append's events against these limits and the envelope's
    /// rules. Backends call this before touching storage, so a refused
    /// append writes nothing.
    pub fn check(&self, events: &[NewEvent]) -> Result<(), InvalidEvent> {
        if events.is_empty() {
            return Err(InvalidEvent::Empty);
        }
        if events.len() > self.max_events_per_append {
            return Err(InvalidEvent::TooMany {
                max: self.max_events_per_append,
                count: events.len(),
            });
        }
        let mut seen = std::collections::HashSet::with_capacity(events.len());
        for e in events {
            if !seen.insert(e.id) {
                return Err(InvalidEvent::DuplicateId(e.id));
            }
            if !valid_type(&e.event_type) {
                return Err(InvalidEvent::BadType(e.event_type.clone()));
            }
            if e.schema_version == 0 {
                return Err(InvalidEvent::BadSchemaVersion(e.event_type.clone()));
            }
            if !e.data.is_object() {
                return Err(InvalidEvent::NotAnObject(e.event_type.clone()));
            }
            if contains_nul(&e.data) {
                return Err(InvalidEvent::NulCharacter(e.event_type.clone()));
            }
            let size = serialized_len(&e.data);
            if size > self.max_event_bytes {
                return Err(InvalidEvent::TooLarge {
                    event_type: e.event_type.clone(),
                    size,
                    max: self.max_event_bytes,
                });
            }
        }
        Ok(())
    }
}

fn valid_type(t: &str) -> bool {
    (1..=100).contains(&t.len())
        && t.starts_with(|c: char| c.is_ascii_lowercase())
        && t.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-')
        })
}

fn contains_nul(v: &Value) -> bool {
    match v {
        Value::String(s) => s.contains('\0'),
        Value::Array(a) => a.iter().any(contains_nul),
        Value::Object(o) => o.iter().any(|(k, v)| k.contains('\0') || contains_nul(v)),
        _ => false,
    }
}

fn serialized_len(v: &Value) -> usize {
    struct Counter(usize);
    impl std::io::Write for Counter {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let mut c = Counter(0);
    // Writing a Value to a counter cannot fail.
    let _ = serde_json::to_writer(&mut c, v);
    c.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(t: &str, data: Value) -> NewEvent {
        NewEvent {
            id: EventId::from_uuid(Uuid::new_v4()),
            event_type: t.into(),
            schema_version: 1,
            data,
            metadata: Metadata::system("test", Uuid::nil()),
        }
    }

    #[test]
    fn accepts_an_ordinary_event() {
        Limits::default()
            .check(&[ev("ticket.opened", json!({"subject": "Farola rota"}))])
            .unwrap();
    }

    #[test]
    fn refuses_what_cannot_be_stored() {
        let l = Limits {
            max_event_bytes: 32,
            max_events_per_append: 2,
        };
        assert_eq!(l.check(&[]), Err(InvalidEvent::Empty));
        assert!(matches!(
            l.check(&[ev("a", json!({})), ev("a", json!({})), ev("a", json!({}))]),
            Err(InvalidEvent::TooMany { max: 2, count: 3 })
        ));
        assert!(matches!(
            l.check(&[ev("Bad Type", json!({}))]),
            Err(InvalidEvent::BadType(_))
        ));
        assert!(matches!(
            l.check(&[ev("a", json!([1]))]),
            Err(InvalidEvent::NotAnObject(_))
        ));
        assert!(matches!(
            l.check(&[ev("a", json!({"s": "x\u{0}y"}))]),
            Err(InvalidEvent::NulCharacter(_))
        ));
        assert!(matches!(
            l.check(&[ev("a", json!({"s": "x".repeat(40)}))]),
            Err(InvalidEvent::TooLarge { max: 32, .. })
        ));
        let e = ev("a", json!({}));
        assert!(matches!(
            l.check(&[e.clone(), e]),
            Err(InvalidEvent::DuplicateId(_))
        ));
        let mut v0 = ev("a", json!({}));
        v0.schema_version = 0;
        assert!(matches!(
            l.check(&[v0]),
            Err(InvalidEvent::BadSchemaVersion(_))
        ));
    }

    #[test]
    fn from_json_refuses_broken_text() {
        let err = NewEvent::from_json(
            EventId::from_uuid(Uuid::nil()),
            "a",
            1,
            "{\"unterminated\": ",
            Metadata::system("t", Uuid::nil()),
        )
        .unwrap_err();
        assert!(matches!(err, InvalidEvent::Json(_)));
    }

    #[test]
    fn positions_order_by_commit_then_sequence() {
        let a = Position {
            commit: 5,
            sequence: 9,
        };
        let b = Position {
            commit: 6,
            sequence: 3,
        };
        assert!(a < b);
        assert!(Position::START < a);
        assert_eq!(a.to_string(), "5/9");
    }
}
