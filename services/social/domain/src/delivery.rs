//! The delivery of one reply on a social network, stream
//! `delivery-<reply message uuid>` in the ticket's tenant: each attempt is
//! recorded *before* the network is called, and its outcome after. So after
//! a crash between calling the network and recording what it answered, the
//! stream shows an attempt with no outcome, and the next try is refused
//! ([`DeliveryError::Interrupted`]): the reply is marked failed with a reason
//! that says to check on the network, rather than risk posting it twice.
//!
//! `delivery.sent` and `delivery.failed` are the contract the tickets service
//! reads to show the reply's delivery state; they carry the ticket and the
//! message.
//!
//! What this module must not do: read a clock, call a network, or choose
//! the backoff (the worker computes the next instant).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

/// The type of the event saying a reply was sent.
pub const SENT: &str = "delivery.sent";
/// The type of the event saying a reply could not be sent, for good.
pub const FAILED: &str = "delivery.failed";
/// The type of a receipt after sending (contract: read by the tickets
/// service).
pub const RECEIPT: &str = "delivery.receipt";
const ATTEMPT_STARTED: &str = "delivery.attempt_started";
const RETRY_SCHEDULED: &str = "delivery.retry_scheduled";

/// The longest failure reason kept, in characters.
pub const REASON_MAX: usize = 500;

/// The stream of a reply's delivery: `delivery-<message uuid>`.
pub fn stream_id(message: Uuid) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("delivery", message)
}

/// What can be asked of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryCommand {
    /// Records that attempt `attempt` is about to call the network.
    Start {
        /// The ticket the reply is on.
        ticket: Uuid,
        /// The reply (a ticket message id).
        message: Uuid,
        /// The channel (`facebook`, `instagram`, `x`).
        channel: String,
        /// The attempt's number, from 1.
        attempt: u32,
    },
    /// The network accepted the reply.
    Succeed {
        /// Its id on the network.
        platform_id: String,
    },
    /// The attempt failed in a way that may pass; the worker tries again at
    /// `next_at`.
    Retry {
        /// What happened.
        reason: String,
        /// When to try again.
        next_at: DateTime<Utc>,
    },
    /// The network reported, after the reply was sent, that it reached
    /// the citizen, was read, or failed after all (a WhatsApp status). A
    /// no-op unless the reply was sent.
    Receipt {
        /// What the network reported.
        status: ReceiptStatus,
        /// For a failure: why.
        reason: Option<String>,
    },
    /// The reply cannot be sent, for good.
    Fail {
        /// Why, for the agent.
        reason: String,
    },
}

/// `delivery.attempt_started`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttemptStarted {
    /// The ticket.
    pub ticket: Uuid,
    /// The reply.
    pub message: Uuid,
    /// The channel.
    pub channel: String,
    /// The attempt's number.
    pub attempt: u32,
    /// When.
    pub at: DateTime<Utc>,
}

/// `delivery.sent` (contract: read by the tickets service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sent {
    /// The ticket.
    pub ticket: Uuid,
    /// The reply.
    pub message: Uuid,
    /// The channel.
    pub channel: String,
    /// Its id on the network.
    pub platform_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// `delivery.retry_scheduled`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryScheduled {
    /// The attempt that failed.
    pub attempt: u32,
    /// What happened.
    pub reason: String,
    /// When the next attempt is due.
    pub next_at: DateTime<Utc>,
    /// When.
    pub at: DateTime<Utc>,
}

/// `delivery.failed` (contract: read by the tickets service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    /// The ticket.
    pub ticket: Uuid,
    /// The reply.
    pub message: Uuid,
    /// The channel.
    pub channel: String,
    /// Why, in words an agent can act on.
    pub reason: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a receipt says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptStatus {
    /// It reached the citizen's device.
    Delivered,
    /// The citizen read it.
    Read,
    /// It did not reach them after all.
    Failed,
}

/// `delivery.receipt` (contract: read by the tickets service).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// The ticket.
    pub ticket: Uuid,
    /// The reply.
    pub message: Uuid,
    /// The channel.
    pub channel: String,
    /// What the network reported.
    pub status: ReceiptStatus,
    /// For a failure: why.
    pub reason: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a delivery's stream records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryEvent {
    /// `delivery.attempt_started`
    AttemptStarted(AttemptStarted),
    /// `delivery.sent`
    Sent(Sent),
    /// `delivery.retry_scheduled`
    RetryScheduled(RetryScheduled),
    /// `delivery.failed`
    Failed(Failed),
    /// `delivery.receipt`
    Receipt(Receipt),
}

/// Reads a stored payload of schema version 1.
fn decode<T: serde::de::DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    ventanilla_eventlog::decode_payload(event_type, schema_version, 1, data)
}

impl DomainEvent for DeliveryEvent {
    fn event_type(&self) -> &'static str {
        match self {
            DeliveryEvent::AttemptStarted(_) => ATTEMPT_STARTED,
            DeliveryEvent::Sent(_) => SENT,
            DeliveryEvent::RetryScheduled(_) => RETRY_SCHEDULED,
            DeliveryEvent::Failed(_) => FAILED,
            DeliveryEvent::Receipt(_) => RECEIPT,
        }
    }

    fn to_data(&self) -> Value {
        match self {
            DeliveryEvent::AttemptStarted(e) => serde_json::to_value(e),
            DeliveryEvent::Sent(e) => serde_json::to_value(e),
            DeliveryEvent::RetryScheduled(e) => serde_json::to_value(e),
            DeliveryEvent::Failed(e) => serde_json::to_value(e),
            DeliveryEvent::Receipt(e) => serde_json::to_value(e),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        Ok(match event_type {
            ATTEMPT_STARTED => Self::AttemptStarted(decode(event_type, schema_version, data)?),
            SENT => Self::Sent(decode(event_type, schema_version, data)?),
            RETRY_SCHEDULED => Self::RetryScheduled(decode(event_type, schema_version, data)?),
            FAILED => Self::Failed(decode(event_type, schema_version, data)?),
            RECEIPT => Self::Receipt(decode(event_type, schema_version, data)?),
            other => {
                return Err(UpcastError {
                    event_type: other.to_owned(),
                    schema_version,
                    reason: "not a delivery event type".to_owned(),
                });
            }
        })
    }
}

/// Why a delivery command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// The reply was sent or failed for good already.
    #[error("the delivery is finished")]
    Finished,
    /// An earlier attempt started and never recorded its outcome (a crash
    /// while calling the network): it may have been sent.
    #[error("an earlier attempt was interrupted; the reply may have been sent")]
    Interrupted,
    /// An outcome with no attempt started.
    #[error("no attempt is in progress")]
    NoAttempt,
}

/// Where a delivery is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryState {
    /// The ticket, the reply and the channel, once started.
    pub started: Option<(Uuid, Uuid, String)>,
    /// The attempt in progress (started, no outcome yet).
    pub in_progress: Option<u32>,
    /// How many attempts were started.
    pub attempts: u32,
    /// Whether it was sent or failed for good.
    pub finished: bool,
    /// Whether it was sent (receipts are recorded only then).
    pub sent: bool,
}

/// The aggregate.
pub struct Delivery;

fn cut(s: &str) -> String {
    s.chars().take(REASON_MAX).collect()
}

impl Decider for Delivery {
    type State = DeliveryState;
    type Command = DeliveryCommand;
    type Event = DeliveryEvent;
    type Error = DeliveryError;

    fn decide(
        state: &DeliveryState,
        command: &DeliveryCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<DeliveryEvent>, DeliveryError> {
        if let DeliveryCommand::Receipt { status, reason } = command {
            let Some((ticket, message, channel)) = state.started.clone().filter(|_| state.sent)
            else {
                return Ok(vec![]);
            };
            return Ok(vec![DeliveryEvent::Receipt(Receipt {
                ticket,
                message,
                channel,
                status: *status,
                reason: reason.as_deref().map(cut),
                at: now,
            })]);
        }
        if state.finished {
            return Err(DeliveryError::Finished);
        }
        let ids = || state.started.clone().ok_or(DeliveryError::NoAttempt);
        match command {
            DeliveryCommand::Start {
                ticket,
                message,
                channel,
                attempt,
            } => {
                if state.in_progress.is_some() {
                    return Err(DeliveryError::Interrupted);
                }
                Ok(vec![DeliveryEvent::AttemptStarted(AttemptStarted {
                    ticket: *ticket,
                    message: *message,
                    channel: channel.clone(),
                    attempt: (*attempt).max(state.attempts + 1),
                    at: now,
                })])
            }
            DeliveryCommand::Succeed { platform_id } => {
                state.in_progress.ok_or(DeliveryError::NoAttempt)?;
                let (ticket, message, channel) = ids()?;
                Ok(vec![DeliveryEvent::Sent(Sent {
                    ticket,
                    message,
                    channel,
                    platform_id: platform_id.clone(),
                    at: now,
                })])
            }
            DeliveryCommand::Retry { reason, next_at } => {
                let attempt = state.in_progress.ok_or(DeliveryError::NoAttempt)?;
                Ok(vec![DeliveryEvent::RetryScheduled(RetryScheduled {
                    attempt,
                    reason: cut(reason),
                    next_at: *next_at,
                    at: now,
                })])
            }
            // Handled above, before the finished check.
            DeliveryCommand::Receipt { .. } => Ok(vec![]),
            DeliveryCommand::Fail { reason } => {
                let (ticket, message, channel) = ids()?;
                Ok(vec![DeliveryEvent::Failed(Failed {
                    ticket,
                    message,
                    channel,
                    reason: cut(reason),
                    at: now,
                })])
            }
        }
    }

    fn evolve(mut state: DeliveryState, event: &DeliveryEvent) -> DeliveryState {
        match event {
            DeliveryEvent::AttemptStarted(e) => {
                state.started = Some((e.ticket, e.message, e.channel.clone()));
                state.in_progress = Some(e.attempt);
                state.attempts = state.attempts.max(e.attempt);
            }
            DeliveryEvent::RetryScheduled(_) => state.in_progress = None,
            DeliveryEvent::Sent(_) => {
                state.in_progress = None;
                state.finished = true;
                state.sent = true;
            }
            DeliveryEvent::Failed(_) => {
                state.in_progress = None;
                state.finished = true;
            }
            DeliveryEvent::Receipt(_) => {}
        }
        state
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use ventanilla_eventlog::testing::given;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
    }

    fn start(attempt: u32) -> DeliveryCommand {
        DeliveryCommand::Start {
            ticket: Uuid::from_u128(1),
            message: Uuid::from_u128(2),
            channel: "x".into(),
            attempt,
        }
    }

    fn started(attempt: u32) -> DeliveryEvent {
        DeliveryEvent::AttemptStarted(AttemptStarted {
            ticket: Uuid::from_u128(1),
            message: Uuid::from_u128(2),
            channel: "x".into(),
            attempt,
            at: now(),
        })
    }

    fn retried(attempt: u32) -> DeliveryEvent {
        DeliveryEvent::RetryScheduled(RetryScheduled {
            attempt,
            reason: "503".into(),
            next_at: now(),
            at: now(),
        })
    }

    #[test]
    fn an_attempt_is_recorded_before_the_call_and_its_outcome_after() {
        given::<Delivery>(vec![])
            .at(now())
            .when(&start(1))
            .then(vec![started(1)]);
        given::<Delivery>(vec![started(1)])
            .at(now())
            .when(&DeliveryCommand::Succeed {
                platform_id: "1800".into(),
            })
            .then(vec![DeliveryEvent::Sent(Sent {
                ticket: Uuid::from_u128(1),
                message: Uuid::from_u128(2),
                channel: "x".into(),
                platform_id: "1800".into(),
                at: now(),
            })]);
        given::<Delivery>(vec![started(1), retried(1)])
            .at(now())
            .when(&start(2))
            .then(vec![started(2)]);
    }

    #[test]
    fn an_interrupted_attempt_is_never_repeated_and_a_finished_delivery_refuses_all() {
        given::<Delivery>(vec![started(1)])
            .when(&start(2))
            .then_error(|e| *e == DeliveryError::Interrupted);
        let failed = DeliveryEvent::Failed(Failed {
            ticket: Uuid::from_u128(1),
            message: Uuid::from_u128(2),
            channel: "x".into(),
            reason: "interrupted".into(),
            at: now(),
        });
        given::<Delivery>(vec![started(1)])
            .at(now())
            .when(&DeliveryCommand::Fail {
                reason: "interrupted".into(),
            })
            .then(vec![failed.clone()]);
        given::<Delivery>(vec![started(1), failed])
            .when(&start(2))
            .then_error(|e| *e == DeliveryError::Finished);
        given::<Delivery>(vec![])
            .when(&DeliveryCommand::Succeed {
                platform_id: "1".into(),
            })
            .then_error(|e| *e == DeliveryError::NoAttempt);
    }

    #[test]
    fn events_round_trip_through_storage() {
        for e in [started(3), retried(3)] {
            assert_eq!(
                DeliveryEvent::from_stored(e.event_type(), 1, &e.to_data()).unwrap(),
                e
            );
        }
        assert_eq!(
            stream_id(Uuid::from_u128(2)).unwrap().as_str(),
            "delivery-00000000-0000-0000-0000-000000000002"
        );
    }

    #[test]
    fn receipts_are_recorded_only_after_a_send() {
        let started = DeliveryEvent::AttemptStarted(AttemptStarted {
            ticket: Uuid::from_u128(1),
            message: Uuid::from_u128(2),
            channel: "whatsapp".into(),
            attempt: 1,
            at: now(),
        });
        let sent = DeliveryEvent::Sent(Sent {
            ticket: Uuid::from_u128(1),
            message: Uuid::from_u128(2),
            channel: "whatsapp".into(),
            platform_id: "wamid.1".into(),
            at: now(),
        });
        let read = DeliveryCommand::Receipt {
            status: ReceiptStatus::Read,
            reason: None,
        };
        given::<Delivery>(vec![started.clone()])
            .when(&read)
            .then(vec![]);
        given::<Delivery>(vec![started, sent])
            .at(now())
            .when(&read)
            .then(vec![DeliveryEvent::Receipt(Receipt {
                ticket: Uuid::from_u128(1),
                message: Uuid::from_u128(2),
                channel: "whatsapp".into(),
                status: ReceiptStatus::Read,
                reason: None,
                at: now(),
            })]);
    }
}
