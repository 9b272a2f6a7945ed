//! A notification to a subscriber on a social network, handed to the
//! social service: stream `notice-<uuid>` in the tenant (the uuid is the
//! notification's), one `notice.requested` event. The tickets service
//! writes it; the social service reads it and delivers it like a reply —
//! a direct message, or a public answer under the citizen's message where
//! that is how they wrote — and reports `delivery.sent` / `delivery.failed`
//! with the notice's id as the message and a nil ticket.
//!
//! What this module must not do: choose the account or the way of sending
//! (the social service does), or send.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

use crate::values::{Channel, InvalidValue};

/// The longest text of a notice, in characters (it must fit a post on X
/// with the citizen's handle).
pub const TEXT_MAX: usize = 240;

/// The stream of a notice: `notice-<uuid>`.
pub fn stream_id(id: Uuid) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("notice", id)
}

/// Whom a notice goes to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NoticeTo {
    /// The author of this message (the citizen's latest on their case):
    /// answered as a reply to it would be.
    AuthorOf {
        /// The message's platform id.
        platform_id: String,
    },
    /// A direct message to this id on the network (an integrator gave it).
    Direct {
        /// The citizen's id on the network.
        recipient: String,
    },
}

/// `notice.requested`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requested {
    /// The network.
    pub channel: Channel,
    /// Whom.
    pub to: NoticeTo,
    /// What it says (at most [`TEXT_MAX`] characters).
    pub text: String,
    /// The subscription it is for.
    pub subscription: Uuid,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a notice's stream records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoticeEvent {
    /// `notice.requested`
    Requested(Requested),
}

const REQUESTED: &str = "notice.requested";

impl DomainEvent for NoticeEvent {
    fn event_type(&self) -> &'static str {
        REQUESTED
    }

    fn to_data(&self) -> Value {
        match self {
            NoticeEvent::Requested(r) => serde_json::to_value(r).unwrap_or_default(),
        }
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        ventanilla_eventlog::decode_tagged(&[REQUESTED], "notice", event_type, schema_version, data)
            .map(Self::Requested)
    }
}

/// Asks for a notice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The network.
    pub channel: Channel,
    /// Whom.
    pub to: NoticeTo,
    /// What it says.
    pub text: String,
    /// The subscription it is for.
    pub subscription: Uuid,
}

/// Why a notice is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoticeError {
    /// A malformed field; names it.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// Requested already with something else.
    #[error("the notice was requested already")]
    AlreadyRequested,
}

/// The aggregate: requested once.
pub struct Notice;

impl Decider for Notice {
    type State = Option<Requested>;
    type Command = Request;
    type Event = NoticeEvent;
    type Error = NoticeError;

    fn decide(
        state: &Option<Requested>,
        command: &Request,
        now: DateTime<Utc>,
    ) -> Result<Vec<NoticeEvent>, NoticeError> {
        if let Some(done) = state {
            let same = done.channel == command.channel
                && done.to == command.to
                && done.text == command.text;
            return if same {
                Ok(vec![])
            } else {
                Err(NoticeError::AlreadyRequested)
            };
        }
        if !command.channel.is_social() {
            return Err(InvalidValue::new(
                "channel",
                format!("{} is not a social network", command.channel),
            )
            .into());
        }
        let chars = command.text.chars().count();
        if command.text.trim().is_empty() || chars > TEXT_MAX {
            return Err(InvalidValue::new(
                "text",
                format!("must be 1 to {TEXT_MAX} characters, got {chars}"),
            )
            .into());
        }
        let who = match &command.to {
            NoticeTo::AuthorOf { platform_id } => platform_id,
            NoticeTo::Direct { recipient } => recipient,
        };
        if who.trim().is_empty() || who.len() > 200 || who.chars().any(char::is_control) {
            return Err(
                InvalidValue::new("to", "must name a message or a person on the network").into(),
            );
        }
        Ok(vec![NoticeEvent::Requested(Requested {
            channel: command.channel,
            to: command.to.clone(),
            text: command.text.clone(),
            subscription: command.subscription,
            at: now,
        })])
    }

    fn evolve(_state: Option<Requested>, event: &NoticeEvent) -> Option<Requested> {
        match event {
            NoticeEvent::Requested(r) => Some(r.clone()),
        }
    }
}

/// `text` cut to [`TEXT_MAX`] characters at a word, with "…".
pub fn fit(text: &str) -> String {
    let text = text.trim();
    if text.chars().count() <= TEXT_MAX {
        return text.to_owned();
    }
    let cut: String = text.chars().take(TEXT_MAX - 1).collect();
    let at_word = cut.rfind(char::is_whitespace).filter(|i| *i > TEXT_MAX / 2);
    let mut out = match at_word {
        Some(i) => cut[..i].trim_end().to_owned(),
        None => cut,
    };
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(text: &str) -> Request {
        Request {
            channel: Channel::X,
            to: NoticeTo::AuthorOf {
                platform_id: "1790".into(),
            },
            text: text.into(),
            subscription: Uuid::nil(),
        }
    }

    #[test]
    fn a_notice_is_requested_once_and_checked() {
        let now = Utc::now();
        let events = Notice::decide(&None, &request("Tu consulta está resuelta"), now).unwrap();
        let state = Notice::fold(&events);
        assert!(
            Notice::decide(&state, &request("Tu consulta está resuelta"), now)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            Notice::decide(&state, &request("otra cosa"), now).unwrap_err(),
            NoticeError::AlreadyRequested
        );
        let long = "palabra ".repeat(60);
        assert!(matches!(
            Notice::decide(&None, &request(&long), now).unwrap_err(),
            NoticeError::Invalid(v) if v.field == "text"
        ));
        let fitted = fit(&long);
        assert!(
            fitted.chars().count() <= TEXT_MAX && fitted.ends_with("palabra…"),
            "{fitted}"
        );
        assert!(Notice::decide(&None, &request(&fitted), now).is_ok());
        let mut web = request("x");
        web.channel = Channel::Web;
        assert!(Notice::decide(&None, &web, now).is_err());
        let back = NoticeEvent::from_stored("notice.requested", 1, &events[0].to_data()).unwrap();
        assert_eq!(back, events[0]);
    }
}
