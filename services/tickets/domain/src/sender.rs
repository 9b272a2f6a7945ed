//! Who a tenant's notification e-mails come from, stream `notify-sender`
//! in the tenant: the display name, the From address (which the platform's
//! SMTP relay must accept for it) and the Reply-To address. A tenant that
//! never set them sends as its own name from the platform's default address,
//! with replies going to its contact address (the service fills those in).
//!
//! Only the service checks who may change them (an admin); this module
//! checks the values.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

use crate::values::{Contact, InvalidValue};

/// The longest display name, in characters.
pub const NAME_MAX: usize = 100;

/// The stream of a tenant's sender: `notify-sender`.
pub fn stream_id() -> Result<StreamId, StreamIdError> {
    StreamId::parse("notify-sender")
}

/// The aggregate.
pub struct Sender;

/// A tenant's sender; `None` fields take the platform's defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SenderState {
    /// The display name.
    pub name: Option<String>,
    /// The From address.
    pub address: Option<String>,
    /// The Reply-To address.
    pub reply_to: Option<String>,
}

/// Sets all three (a no-op when they are so already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Configure {
    /// The new sender.
    pub sender: SenderState,
}

/// `notify_sender.configured`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Configured {
    /// The sender.
    #[serde(flatten)]
    pub sender: SenderState,
    /// When.
    pub at: DateTime<Utc>,
}

/// What the stream records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderEvent {
    /// `notify_sender.configured`
    Configured(Configured),
}

const CONFIGURED: &str = "notify_sender.configured";

impl DomainEvent for SenderEvent {
    fn event_type(&self) -> &'static str {
        CONFIGURED
    }

    fn to_data(&self) -> Value {
        match self {
            SenderEvent::Configured(e) => serde_json::to_value(e).unwrap_or_default(),
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        ventanilla_eventlog::decode_tagged(
            &[CONFIGURED],
            "notification sender",
            event_type,
            schema_version,
            data,
        )
        .map(Self::Configured)
    }
}

/// Why a change of the sender is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderError {
    /// A malformed value; names the field.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
}

fn address(field: &'static str, value: &Option<String>) -> Result<Option<String>, InvalidValue> {
    let Some(value) = value else {
        return Ok(None);
    };
    let parsed = Contact::parse(None, Some(value), None, None)
        .map_err(|e| InvalidValue::new(field, e.problem))?;
    Ok(parsed.email)
}

impl Decider for Sender {
    type State = SenderState;
    type Command = Configure;
    type Event = SenderEvent;
    type Error = SenderError;

    fn decide(
        state: &SenderState,
        command: &Configure,
        now: DateTime<Utc>,
    ) -> Result<Vec<SenderEvent>, SenderError> {
        let name = match &command.sender.name {
            Some(n) => {
                let n = n.trim();
                let chars = n.chars().count();
                if n.is_empty() || chars > NAME_MAX || n.chars().any(char::is_control) {
                    return Err(InvalidValue::new(
                        "sender_name",
                        format!("must be 1 to {NAME_MAX} characters on one line"),
                    )
                    .into());
                }
                Some(n.to_owned())
            }
            None => None,
        };
        let sender = SenderState {
            name,
            address: address("sender_address", &command.sender.address)?,
            reply_to: address("reply_to", &command.sender.reply_to)?,
        };
        if &sender == state {
            return Ok(vec![]);
        }
        Ok(vec![SenderEvent::Configured(Configured {
            sender,
            at: now,
        })])
    }

    fn evolve(_state: SenderState, event: &SenderEvent) -> SenderState {
        match event {
            SenderEvent::Configured(c) => c.sender.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn configure(name: Option<&str>, address: Option<&str>) -> Configure {
        Configure {
            sender: SenderState {
                name: name.map(str::to_owned),
                address: address.map(str::to_owned),
                reply_to: None,
            },
        }
    }

    #[test]
    fn a_sender_is_checked_canonicalised_and_set_once() {
        let now = Utc::now();
        let events = Sender::decide(
            &SenderState::default(),
            &configure(Some(" Concello de Lugo "), Some("Avisos@Lugo.GAL")),
            now,
        )
        .unwrap();
        let state = Sender::fold(&events);
        assert_eq!(state.name.as_deref(), Some("Concello de Lugo"));
        assert_eq!(state.address.as_deref(), Some("Avisos@lugo.gal"));
        // The same again changes nothing.
        assert!(
            Sender::decide(
                &state,
                &configure(Some("Concello de Lugo"), Some("Avisos@lugo.gal")),
                now
            )
            .unwrap()
            .is_empty()
        );
        let e = Sender::decide(&state, &configure(None, Some("not an address")), now).unwrap_err();
        assert!(matches!(e, SenderError::Invalid(v) if v.field == "sender_address"));
        let e = Sender::decide(&state, &configure(Some("a\nb"), None), now).unwrap_err();
        assert!(matches!(e, SenderError::Invalid(v) if v.field == "sender_name"));
    }
}
