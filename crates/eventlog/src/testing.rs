//! Given/when/then for deciders: state a history, run a command, and assert
//! the events it produces or the error it gives, with no I/O at all.
//!
//! ```ignore
//! given::<Counter>(vec![Incremented])
//!     .when(&Increment)
//!     .then(vec![Incremented]);
//! ```

use std::fmt::Debug;

use chrono::{DateTime, TimeZone, Utc};

use crate::decider::Decider;

/// A history of events, the start of a scenario.
pub struct Given<D: Decider> {
    history: Vec<D::Event>,
    now: DateTime<Utc>,
}

/// The history an aggregate has before the command.
pub fn given<D: Decider>(history: Vec<D::Event>) -> Given<D> {
    Given {
        history,
        // A fixed instant: scenarios must not depend on the wall clock.
        now: Utc
            .with_ymd_and_hms(2026, 1, 15, 10, 0, 0)
            .single()
            .unwrap_or_default(),
    }
}

impl<D: Decider> Given<D> {
    /// Decides at this instant instead of the default (2026-01-15 10:00 UTC).
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        self.now = now;
        self
    }

    /// Runs the command.
    pub fn when(self, command: &D::Command) -> Then<D> {
        let state = D::fold(&self.history);
        Then {
            result: D::decide(&state, command, self.now),
        }
    }
}

/// The outcome of a command, to assert on.
pub struct Then<D: Decider> {
    result: Result<Vec<D::Event>, D::Error>,
}

impl<D: Decider> Then<D>
where
    D::Event: PartialEq + Debug,
    D::Error: Debug,
{
    /// Asserts that the command produced exactly these events.
    #[track_caller]
    pub fn then(self, expected: Vec<D::Event>) {
        match self.result {
            Ok(events) => assert_eq!(events, expected, "the command produced other events"),
            Err(e) => panic!("expected events {expected:?}, got the error {e:?}"),
        }
    }

    /// Asserts that the command was refused with an error matching `check`.
    #[track_caller]
    pub fn then_error(self, check: impl FnOnce(&D::Error) -> bool) {
        match self.result {
            Ok(events) => panic!("expected an error, got the events {events:?}"),
            Err(e) => assert!(check(&e), "unexpected error {e:?}"),
        }
    }

    /// The raw outcome, for assertions the helpers do not cover.
    pub fn into_result(self) -> Result<Vec<D::Event>, D::Error> {
        self.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decider::{DomainEvent, UpcastError};
    use serde_json::{Value, json};

    /// A tiny aggregate to test the helpers themselves: a counter that
    /// refuses to go above 2.
    struct Counter;

    #[derive(Debug, PartialEq)]
    struct Incremented;

    #[derive(Debug, PartialEq, thiserror::Error)]
    #[error("full")]
    struct Full;

    impl DomainEvent for Incremented {
        fn event_type(&self) -> &'static str {
            "counter.incremented"
        }
        fn to_data(&self) -> Value {
            json!({})
        }
        fn from_stored(t: &str, v: u16, _: &Value) -> Result<Self, UpcastError> {
            match t {
                "counter.incremented" => Ok(Incremented),
                _ => Err(UpcastError {
                    event_type: t.into(),
                    schema_version: v,
                    reason: "unknown type".into(),
                }),
            }
        }
    }

    impl Decider for Counter {
        type State = u32;
        type Command = ();
        type Event = Incremented;
        type Error = Full;
        fn decide(state: &u32, _: &(), _: DateTime<Utc>) -> Result<Vec<Incremented>, Full> {
            if *state >= 2 {
                Err(Full)
            } else {
                Ok(vec![Incremented])
            }
        }
        fn evolve(state: u32, _: &Incremented) -> u32 {
            state + 1
        }
    }

    #[test]
    fn given_when_then_passes_and_fails_as_it_should() {
        given::<Counter>(vec![]).when(&()).then(vec![Incremented]);
        given::<Counter>(vec![Incremented, Incremented])
            .when(&())
            .then_error(|e| *e == Full);
        let wrong = std::panic::catch_unwind(|| {
            given::<Counter>(vec![Incremented, Incremented])
                .when(&())
                .then(vec![Incremented]);
        });
        assert!(wrong.is_err(), "then() must fail on an unexpected error");
    }
}
