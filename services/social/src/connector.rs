//! The contract every network's connector meets, so that a change on one
//! network degrades one channel, not the product: what a webhook delivery
//! or a poll yields ([`Inbound`]), what the service asks a connector to send
//! ([`OutboundReply`], [`Post`]), and how a send can fail ([`SendError`]), in
//! words an agent or an admin can act on.
//!
//! Connectors (`meta`, `x`) are plain code over HTTP: they verify and parse
//! what the networks send (always over the raw bytes, before parsing), and
//! call the networks' APIs at a base URL given to them (the real one, or a
//! local fake in tests). They keep no state and write nothing: the service
//! records what they return.

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use ventanilla_social_domain::inbound::{Author, MessageKind};

/// One message a citizen wrote, as a connector read it from a webhook
/// delivery or a poll. The service turns it into a
/// `social.message_received` event on the account it arrived on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The network's channel name (`facebook`, `instagram`, `x`).
    pub channel: &'static str,
    /// A private message, a comment, a mention or a reply.
    pub kind: MessageKind,
    /// The platform's id of the message (a Messenger `mid`, a comment id,
    /// a tweet id, a DM event id). For an edited comment, the id with the
    /// edit's marker (`<comment_id>:edited:<time>`), so the edit is a new
    /// message.
    pub platform_id: String,
    /// The conversation it belongs to: for Messenger and DMs, the citizen's
    /// id on the network; for comments, the post; for X mentions, the
    /// conversation id (the tweet id when unknown).
    pub thread: String,
    /// The platform id of the message it answers, if any.
    pub in_reply_to: Option<String>,
    /// Who wrote it.
    pub author: Author,
    /// Its text ("" when it has none, e.g. a photo).
    pub text: String,
    /// When the network says it was written.
    pub sent_at: DateTime<Utc>,
}

/// What a webhook delivery contained besides messages, for the service to
/// act on or ignore.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Delivery {
    /// The citizens' messages, in the order delivered (the account's own
    /// messages and echoes already dropped).
    pub messages: Vec<Inbound>,
    /// Platform ids of messages the citizen removed (a deleted comment).
    pub removed: Vec<String>,
    /// How many entries were ignored (an object or field not handled:
    /// likes, reads, typing…).
    pub ignored: usize,
}

/// Why a webhook delivery was refused. Nothing is stored for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No signature header, or it does not match the raw body (HTTP 401).
    #[error("the request is not signed by the network, or the signature does not match")]
    BadSignature,
    /// A verification request with the wrong token (HTTP 403).
    #[error("the verification token does not match this account's")]
    BadVerifyToken,
    /// The body is not what the network sends (HTTP 400).
    #[error("the body is not a {network} webhook payload: {problem}")]
    Malformed {
        /// The network.
        network: &'static str,
        /// What is wrong, for the log.
        problem: String,
    },
}

/// How to reach the citizen with a reply, from what the service recorded
/// of the message being answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyTarget {
    /// A private message to the citizen (Messenger / Instagram PSID, X user
    /// id), `last_inbound_at` being when they last wrote (Meta's 24-hour
    /// window).
    Direct {
        /// The citizen's id on the network.
        recipient: String,
        /// When they last wrote on this conversation.
        last_inbound_at: DateTime<Utc>,
    },
    /// A public answer under their comment or post.
    Public {
        /// The platform id of the comment or post answered.
        in_reply_to: String,
    },
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundReply {
    /// Where it goes.
    pub target: ReplyTarget,
    /// What it says.
    pub text: String,
    /// When the service asks (for the window checks; never the clock).
    pub now: DateTime<Utc>,
}

/// An announcement to publish on the account.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Post {
    /// What it says.
    pub text: String,
    /// A link to attach, if any.
    pub link: Option<String>,
    /// An image (`https`) to publish it with, where the network takes one
    /// by URL (a Facebook Page photo post); the other networks ignore it.
    pub image_url: Option<String>,
}

/// An account's credentials, decrypted for one call. `Debug` shows no
/// secret.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// The network's id of the account (page id, Instagram id, X user id).
    pub external_id: String,
    /// The token the API calls carry (page token, X user token).
    pub access_token: SecretString,
    /// The secret webhook signatures are made with (Meta app secret, X
    /// consumer secret).
    pub signing_secret: SecretString,
    /// The token Meta's verification request must carry (unused for X).
    pub verify_token: SecretString,
    /// Whether Meta approved the `HUMAN_AGENT` tag for this page.
    pub human_agent: bool,
}

/// Why a send failed, said so that the agent (on the message) or the admin
/// (on the account's health) knows what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The network limits us until then: retry after it; the account is
    /// `degraded` meanwhile.
    #[error("rate limited by {network} until {until}")]
    RateLimited {
        /// The network.
        network: &'static str,
        /// When the limit lifts.
        until: DateTime<Utc>,
    },
    /// The token expired or was revoked: the account must be linked again.
    #[error("the {network} token expired or was revoked; an admin must link the account again")]
    TokenExpired {
        /// The network.
        network: &'static str,
    },
    /// The app lacks a permission (named): an admin must grant it.
    #[error("{network} refused: the permission {permission} is missing; an admin must grant it")]
    PermissionMissing {
        /// The network.
        network: &'static str,
        /// The permission (`pages_messaging`, `dm.write`…).
        permission: String,
    },
    /// Outside the network's messaging window (Meta: 24 hours after the
    /// citizen's last message, 7 with `HUMAN_AGENT`): reply on another
    /// channel.
    #[error(
        "the citizen last wrote more than {hours} hours ago; {network} only allows a reply within that window: answer on another channel"
    )]
    OutsideWindow {
        /// The network.
        network: &'static str,
        /// The window, in hours.
        hours: u32,
    },
    /// The network refused this message for good (the post was deleted,
    /// replies are restricted, the text too long…), as it said.
    #[error("{network} refused the message: {reason}")]
    Rejected {
        /// The network.
        network: &'static str,
        /// What it said.
        reason: String,
    },
    /// A failure that may pass (a 5xx, a timeout): retry with backoff.
    #[error("{network} is not answering properly ({reason})")]
    Temporary {
        /// The network.
        network: &'static str,
        /// What happened.
        reason: String,
    },
}

impl SendError {
    /// Whether trying again later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            SendError::RateLimited { .. } | SendError::Temporary { .. }
        )
    }

    /// Whether the account itself is unwell (its health becomes
    /// `degraded` with this reason).
    pub fn degrades_account(&self) -> bool {
        matches!(
            self,
            SendError::RateLimited { .. }
                | SendError::TokenExpired { .. }
                | SendError::PermissionMissing { .. }
        )
    }
}

/// What a network answered to a send: the id of what it created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// The platform's id of the message, comment or post created.
    pub platform_id: String,
}
