//! A tenant's service levels, stream `ticket-settings` in the tenant: the
//! response-time targets (first response, resolution), counted in business
//! time, and how long after its resolution a citizen's message reopens a
//! ticket instead of opening a new one.
//!
//! A tenant that never set them works with [`ServiceLevelsState::default`]
//! ([`DEFAULT_FIRST_RESPONSE`], [`DEFAULT_RESOLUTION`],
//! [`DEFAULT_REOPEN_WINDOW`]). Only the service checks who may change them
//! (an admin); this module only checks the values.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

use crate::values::InvalidValue;

/// The first-response target of a tenant that never set one: 4 business
/// hours.
pub const DEFAULT_FIRST_RESPONSE: Duration = Duration::hours(4);
/// The resolution target of a tenant that never set one: 40 business hours
/// (a working week).
pub const DEFAULT_RESOLUTION: Duration = Duration::hours(40);
/// The reopening window of a tenant that never set one: 7 days.
pub const DEFAULT_REOPEN_WINDOW: Duration = Duration::days(7);

/// The longest target or window accepted: 365 days.
pub const MAX_SPAN: Duration = Duration::days(365);

/// The stream of a tenant's service levels: `ticket-settings`.
pub fn stream_id() -> Result<StreamId, StreamIdError> {
    StreamId::parse("ticket-settings")
}

/// The aggregate.
pub struct ServiceLevels;

/// What a tenant's service levels are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceLevelsState {
    /// The first-response target, in business time.
    pub first_response: Duration,
    /// The resolution target, in business time.
    pub resolution: Duration,
    /// How long after resolution a citizen's message reopens the ticket.
    pub reopen_window: Duration,
}

impl Default for ServiceLevelsState {
    fn default() -> Self {
        Self {
            first_response: DEFAULT_FIRST_RESPONSE,
            resolution: DEFAULT_RESOLUTION,
            reopen_window: DEFAULT_REOPEN_WINDOW,
        }
    }
}

/// What can be asked of the service levels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceLevelsCommand {
    /// Sets all three (a no-op when they are so already). Each must be at
    /// least a minute and at most [`MAX_SPAN`]; the first-response target
    /// must not exceed the resolution target.
    Configure {
        /// The first-response target.
        first_response: Duration,
        /// The resolution target.
        resolution: Duration,
        /// The reopening window.
        reopen_window: Duration,
    },
}

/// The service levels were set (`ticket_settings.configured`), in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configured {
    /// The first-response target, seconds of business time.
    pub first_response_secs: i64,
    /// The resolution target, seconds of business time.
    pub resolution_secs: i64,
    /// The reopening window, seconds.
    pub reopen_window_secs: i64,
    /// When.
    pub at: DateTime<Utc>,
}

/// What the stream records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceLevelsEvent {
    /// `ticket_settings.configured`
    Configured(Configured),
}

const CONFIGURED: &str = "ticket_settings.configured";

impl DomainEvent for ServiceLevelsEvent {
    fn event_type(&self) -> &'static str {
        CONFIGURED
    }

    fn to_data(&self) -> Value {
        match self {
            ServiceLevelsEvent::Configured(e) => serde_json::to_value(e).unwrap_or_default(),
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        ventanilla_eventlog::decode_tagged(
            &[CONFIGURED],
            "ticket settings",
            event_type,
            schema_version,
            data,
        )
        .map(Self::Configured)
    }
}

/// Why a change of the service levels is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceLevelsError {
    /// A value out of bounds; names the field.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
}

fn check_span(field: &'static str, d: Duration) -> Result<(), InvalidValue> {
    if d < Duration::minutes(1) || d > MAX_SPAN {
        return Err(InvalidValue::new(
            field,
            format!(
                "must be between 1 minute and {} days, got {} minutes",
                MAX_SPAN.num_days(),
                d.num_minutes()
            ),
        ));
    }
    Ok(())
}

impl Decider for ServiceLevels {
    type State = ServiceLevelsState;
    type Command = ServiceLevelsCommand;
    type Event = ServiceLevelsEvent;
    type Error = ServiceLevelsError;

    fn decide(
        state: &ServiceLevelsState,
        command: &ServiceLevelsCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<ServiceLevelsEvent>, ServiceLevelsError> {
        let ServiceLevelsCommand::Configure {
            first_response,
            resolution,
            reopen_window,
        } = command;
        check_span("first_response", *first_response)?;
        check_span("resolution", *resolution)?;
        check_span("reopen_window", *reopen_window)?;
        if first_response > resolution {
            return Err(InvalidValue::new(
                "first_response",
                "must not be longer than the resolution target",
            )
            .into());
        }
        let wanted = ServiceLevelsState {
            first_response: *first_response,
            resolution: *resolution,
            reopen_window: *reopen_window,
        };
        if *state == wanted {
            return Ok(vec![]);
        }
        Ok(vec![ServiceLevelsEvent::Configured(Configured {
            first_response_secs: first_response.num_seconds(),
            resolution_secs: resolution.num_seconds(),
            reopen_window_secs: reopen_window.num_seconds(),
            at: now,
        })])
    }

    fn evolve(_: ServiceLevelsState, event: &ServiceLevelsEvent) -> ServiceLevelsState {
        let ServiceLevelsEvent::Configured(e) = event;
        ServiceLevelsState {
            first_response: Duration::seconds(e.first_response_secs),
            resolution: Duration::seconds(e.resolution_secs),
            reopen_window: Duration::seconds(e.reopen_window_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ventanilla_eventlog::testing::given;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
    }

    fn configure(f: Duration, r: Duration, w: Duration) -> ServiceLevelsCommand {
        ServiceLevelsCommand::Configure {
            first_response: f,
            resolution: r,
            reopen_window: w,
        }
    }

    fn configured(f: i64, r: i64, w: i64) -> ServiceLevelsEvent {
        ServiceLevelsEvent::Configured(Configured {
            first_response_secs: f,
            resolution_secs: r,
            reopen_window_secs: w,
            at: now(),
        })
    }

    #[test]
    fn a_tenant_that_never_configured_has_the_defaults() {
        let s = ServiceLevels::fold(&[]);
        assert_eq!(s.first_response, Duration::hours(4));
        assert_eq!(s.resolution, Duration::hours(40));
        assert_eq!(s.reopen_window, Duration::days(7));
        assert_eq!(stream_id().unwrap().as_str(), "ticket-settings");
    }

    #[test]
    fn targets_are_configured_and_repeating_them_is_a_no_op() {
        let cmd = configure(Duration::hours(2), Duration::hours(16), Duration::days(3));
        given::<ServiceLevels>(vec![])
            .at(now())
            .when(&cmd)
            .then(vec![configured(7200, 57600, 259_200)]);
        given::<ServiceLevels>(vec![configured(7200, 57600, 259_200)])
            .at(now())
            .when(&cmd)
            .then(vec![]);
        let s = ServiceLevels::fold(&[configured(7200, 57600, 259_200)]);
        assert_eq!(s.reopen_window, Duration::days(3));
    }

    #[test]
    fn out_of_bounds_targets_are_refused_naming_the_field() {
        let h = Duration::hours;
        for (cmd, field) in [
            (
                configure(Duration::seconds(30), h(8), h(8)),
                "first_response",
            ),
            (configure(h(1), Duration::days(400), h(8)), "resolution"),
            (configure(h(1), h(8), Duration::zero()), "reopen_window"),
            (configure(h(9), h(8), h(8)), "first_response"),
        ] {
            given::<ServiceLevels>(vec![])
                .when(&cmd)
                .then_error(|e| matches!(e, ServiceLevelsError::Invalid(v) if v.field == field));
        }
    }

    #[test]
    fn the_event_round_trips_through_storage() {
        let e = configured(60, 120, 180);
        assert_eq!(
            ServiceLevelsEvent::from_stored(e.event_type(), 1, &e.to_data()).unwrap(),
            e
        );
        assert!(ServiceLevelsEvent::from_stored("ticket.opened", 1, &e.to_data()).is_err());
    }
}
