//! The contract between the social service and its readers for what
//! citizens write: the event `social.message_received`, recorded once per
//! platform message in the inbound stream of the linked account it arrived
//! on (`inbound-<account uuid>` in the account's tenant; the account's own
//! aggregate, with its settings and health, is another stream, so loading
//! it never reads the messages).
//!
//! The event id is [`message_event_id`]: derived from the network and the
//! platform's message id, so a message delivered twice — or by webhook and
//! by polling — is stored once. All messages of one account are in one
//! stream, so a reader sees them in the order they were recorded.
//!
//! The tickets service reads these events to open tickets or add messages
//! to them; the social service's ingestion (issue #6) writes them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use ventanilla_kernel::{EventId, StreamId, StreamIdError};

/// The type of the event.
pub const MESSAGE_RECEIVED: &str = "social.message_received";

ventanilla_kernel::uuid_newtype!(
    /// Identifies a linked social or e-mail account within its tenant.
    AccountId
);

/// The stream of the messages received on a linked account:
/// `inbound-<uuid>`.
pub fn inbound_stream(id: AccountId) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("inbound", id.0)
}

/// The id of the event recording the platform message `platform_id` on
/// `channel`: the same message always gets the same id
/// ([`EventId::derived`] in the scope `social:<channel>`).
pub fn message_event_id(channel: &str, platform_id: &str) -> EventId {
    EventId::derived(&format!("social:{channel}"), platform_id)
}

/// What kind of message it is on its network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MessageKind {
    /// A private message (Messenger, an X DM, a Telegram chat…).
    Direct,
    /// A public comment under one of the account's posts.
    Comment,
    /// A public post mentioning the account.
    Mention,
    /// A public reply to one of the account's posts.
    Reply,
}

/// Who wrote it, as the network identifies them. The same person writing
/// again on the same network has the same `platform_user_id`; nothing links
/// identities across networks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// The network's stable id of the user (a page-scoped id, an X user id…).
    pub platform_user_id: String,
    /// Their handle, as shown on the network (`@vecina`), if it has one.
    pub handle: Option<String>,
    /// Their display name, if the network gives it.
    pub name: Option<String>,
}

/// `social.message_received`: a citizen wrote to a linked account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageReceived {
    /// The account it arrived on.
    pub account: AccountId,
    /// The network, as the tickets service names channels (`facebook`,
    /// `instagram`, `x`, `mastodon`, `telegram`, `bluesky`, `whatsapp`,
    /// `email`).
    pub channel: String,
    /// What kind of message it is.
    pub kind: MessageKind,
    /// The platform's id of the message.
    pub platform_id: String,
    /// The conversation it belongs to on the platform (a Messenger
    /// conversation, the post a comment thread hangs from, an X
    /// conversation id…): messages of one thread continue one ticket.
    pub thread: String,
    /// The platform id of the message it answers, if any.
    pub in_reply_to: Option<String>,
    /// Who wrote it.
    pub author: Author,
    /// What it says (plain text).
    pub text: String,
    /// When the platform says it was written.
    pub sent_at: DateTime<Utc>,
    /// What the network needs, besides the platform id, to answer it
    /// (Bluesky: the post's cid and its thread's root); opaque to everyone
    /// but the network's connector.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_context: Option<serde_json::Value>,
    /// Its subject, where the channel has one (a mail's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use uuid::Uuid;

    #[test]
    fn the_same_message_always_gets_the_same_event_id() {
        assert_eq!(
            message_event_id("facebook", "m_1"),
            message_event_id("facebook", "m_1")
        );
        assert_ne!(
            message_event_id("facebook", "m_1"),
            message_event_id("x", "m_1")
        );
        assert_eq!(
            inbound_stream(AccountId(Uuid::from_u128(1)))
                .unwrap()
                .as_str(),
            "inbound-00000000-0000-0000-0000-000000000001"
        );
    }
}
