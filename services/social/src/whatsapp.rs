//! The WhatsApp connector (WhatsApp Cloud API, on Meta's Graph API): a
//! council links one of its WhatsApp Business phone numbers, citizens
//! write to it, and agents answer them there.
//!
//! What it does:
//! - answers Meta's subscription check and verifies `X-Hub-Signature-256`
//!   over the raw request bytes, with Meta's own functions
//!   ([`verify_subscription`], [`verify_signature`] call
//!   [`crate::meta::verify_subscription`] and
//!   [`crate::meta::verify_signature`]);
//! - reads a verified delivery (`object: "whatsapp_business_account"`) into
//!   the citizens' messages, their attachments and the delivery receipts of
//!   our own messages ([`parse`], [`WhatsAppDelivery`]);
//! - sends replies (`POST /{phone-number-id}/messages`) with
//!   [`WhatsAppClient`], refusing without calling when WhatsApp's 24-hour
//!   window is closed, and says why a call failed in [`SendError`]'s words.
//!
//! Credentials of a WhatsApp account ([`Credentials`]):
//! - `external_id`: the **phone-number id** (`metadata.phone_number_id` in
//!   webhooks, the `{phone-number-id}` of the send endpoint), not the
//!   phone number and not the WhatsApp Business Account id;
//! - `access_token`: a **system user token** with the
//!   `whatsapp_business_messaging` permission;
//! - `signing_secret`: the Meta **app secret** that signs the webhooks;
//! - `verify_token`: the token Meta's webhook verification request must
//!   carry (`hub.verify_token`), chosen when the webhook is configured;
//! - `human_agent`: unused (WhatsApp has no `HUMAN_AGENT` tag).
//!
//! WhatsApp has no public posts: announcements cannot be published here
//! ([`WhatsAppClient::publish`] refuses), and outside the 24-hour window
//! only approved template messages may be sent, which this connector does
//! not support yet.
//!
//! What it must not do: keep state, write anywhere, read the clock to decide
//! the messaging window (the service passes `now`), call the API for a
//! reply it already knows the window forbids, or let the token or the app
//! secret reach a URL, an error or a log line (the token travels only in
//! the `Authorization` header).

use chrono::{DateTime, TimeDelta, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use ventanilla_social_domain::inbound::{Author, MessageKind};

use crate::connector::{
    Credentials, Delivery, Inbound, OutboundReply, Post, ReplyTarget, SendError, Sent, WebhookError,
};
use crate::meta::{self, Usage};
use crate::payload;

pub use crate::meta::SIGNATURE_HEADER;

/// The channel name of WhatsApp messages (also the network named in
/// errors).
pub const CHANNEL: &str = "whatsapp";

/// The `object` of WhatsApp Business Account webhook deliveries.
pub const OBJECT: &str = "whatsapp_business_account";

/// The Graph API base this connector is written against (the same pinned
/// version as [`crate::meta::GRAPH_BASE`]).
pub const GRAPH_BASE: &str = meta::GRAPH_BASE;

/// How long after the citizen's last message a free-form reply may be sent,
/// in hours.
pub const WINDOW_HOURS: u32 = 24;

/// The longest text message WhatsApp takes, in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The permission the system user token needs to send messages.
pub const MESSAGING_PERMISSION: &str = "whatsapp_business_messaging";

/// Why a reply outside the 24-hour window is not sent (before calling, or
/// when WhatsApp answers error 131047).
pub const OUTSIDE_WINDOW_REASON: &str = "WhatsApp only allows free-form replies within 24 hours of the citizen's last message; template messages are not supported yet — answer on another channel";

/// Why a message WhatsApp could not deliver (error 131026) failed.
pub const UNDELIVERABLE_REASON: &str = "WhatsApp could not deliver the message: the number may not be on WhatsApp, may not have accepted WhatsApp's latest terms, or may use an outdated app — answer on another channel";

/// Why an announcement is not published on WhatsApp.
pub const NO_PUBLISHING_REASON: &str = "announcements cannot be posted on WhatsApp: it has no public posts, and sending them to subscribers would need approved template messages, which are not supported; publish the announcement on another channel";

/// How long to wait after Cloud API throughput (130429) and pair (131056)
/// limits when WhatsApp does not say.
const SHORT_RATE_LIMIT_WAIT: TimeDelta = TimeDelta::seconds(60);

/// How long to wait after the app's (4) or the business account's (80007)
/// call limits, counted over an hour, when WhatsApp does not say.
const LONG_RATE_LIMIT_WAIT: TimeDelta = TimeDelta::minutes(15);

// ---------------------------------------------------------------------------
// Webhooks: verification, signature, parsing
// ---------------------------------------------------------------------------

/// Answers Meta's subscription check for this account: the challenge when
/// `hub.mode` is `subscribe` and `hub.verify_token` is the account's
/// [`Credentials::verify_token`] (see [`crate::meta::verify_subscription`]).
pub fn verify_subscription(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
    creds: &Credentials,
) -> Result<String, WebhookError> {
    meta::verify_subscription(mode, verify_token, challenge, &creds.verify_token)
}

/// Checks the [`SIGNATURE_HEADER`] of a delivery over its raw bytes with
/// the account's app secret ([`Credentials::signing_secret`]; see
/// [`crate::meta::verify_signature`]).
pub fn verify_signature(
    creds: &Credentials,
    raw_body: &[u8],
    header: Option<&str>,
) -> Result<(), WebhookError> {
    meta::verify_signature(&creds.signing_secret, raw_body, header)
}

/// What a WhatsApp webhook delivery contained for one phone number.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WhatsAppDelivery {
    /// The citizens' messages (`channel: "whatsapp"`, [`MessageKind::Direct`])
    /// and the count of what was ignored; `removed` is always empty
    /// (WhatsApp does not report deletions).
    pub delivery: Delivery,
    /// The media and locations the messages carried, in order, each naming
    /// its message (the contract's [`Inbound`] has no place for them).
    pub attachments: Vec<Attachment>,
    /// The delivery receipts of the messages we sent, in order.
    pub receipts: Vec<Receipt>,
}

/// What kind of attachment a message carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaKind {
    /// A photo (`image`).
    Image,
    /// A file (`document`).
    Document,
    /// A voice note or an audio file (`audio`).
    Audio,
    /// A video (`video`).
    Video,
    /// A sticker (`sticker`).
    Sticker,
    /// A shared location (`location`), with no media.
    Location,
}

impl MediaKind {
    /// The message `type` WhatsApp names it with.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaKind::Image => "image",
            MediaKind::Document => "document",
            MediaKind::Audio => "audio",
            MediaKind::Video => "video",
            MediaKind::Sticker => "sticker",
            MediaKind::Location => "location",
        }
    }

    fn of(message_type: &str) -> Option<MediaKind> {
        Some(match message_type {
            "image" => MediaKind::Image,
            "document" => MediaKind::Document,
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            "sticker" => MediaKind::Sticker,
            "location" => MediaKind::Location,
            _ => return None,
        })
    }
}

/// A place a citizen shared.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// Latitude, in degrees.
    pub latitude: f64,
    /// Longitude, in degrees.
    pub longitude: f64,
    /// The place's name, if the citizen picked a named place.
    pub name: Option<String>,
    /// Its address, if WhatsApp gives one.
    pub address: Option<String>,
}

/// A media file or a location a message carried. The media itself is not
/// downloaded here: `GET /{media-id}` with the account's token gives a
/// short-lived URL to fetch it from.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    /// The `wamid` of the message it came with.
    pub message_id: String,
    /// What it is.
    pub kind: MediaKind,
    /// WhatsApp's media id (none for a location).
    pub media_id: Option<String>,
    /// Its MIME type (`image/jpeg`, `audio/ogg; codecs=opus`…).
    pub mime_type: Option<String>,
    /// The SHA-256 WhatsApp gives for the file, to check a download.
    pub sha256: Option<String>,
    /// The file name, for documents.
    pub filename: Option<String>,
    /// The place, for a location.
    pub location: Option<Location>,
}

/// Where one of our messages got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// WhatsApp accepted it and is delivering it.
    Sent,
    /// It reached the citizen's phone.
    Delivered,
    /// The citizen opened it (only if they share read receipts).
    Read,
    /// It could not be sent or delivered ([`Receipt::error`] says why).
    Failed,
}

/// A delivery receipt (`statuses[]`) of a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// The `wamid` our send returned ([`Sent::platform_id`]).
    pub wamid: String,
    /// Where it got to.
    pub status: ReceiptStatus,
    /// The citizen's WhatsApp id it was sent to.
    pub recipient: String,
    /// When WhatsApp says it happened.
    pub at: DateTime<Utc>,
    /// For a failure, what WhatsApp said (`errors[]`: title, details and
    /// code).
    pub error: Option<String>,
    /// For a failure, WhatsApp's error code (131047: outside the 24-hour
    /// window; 131026: undeliverable…).
    pub error_code: Option<i64>,
    /// The `biz_opaque_callback_data` the message was sent with (the
    /// platform's id of the reply), if any.
    pub callback: Option<String>,
}

/// The phone-number ids a verified delivery has changes for
/// (`entry[].changes[].value.metadata.phone_number_id`), distinct, in order
/// of appearance: one Business Account's webhook may carry several of its
/// numbers, and the service reads each linked number's part with [`parse`].
pub fn phone_number_ids(raw_body: &[u8]) -> Result<Vec<String>, WebhookError> {
    let entries = envelope(raw_body)?;
    let mut ids: Vec<String> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("entry[{i}]");
        for (j, change) in changes_of(entry, &at)?.iter().enumerate() {
            let id = change
                .get("value")
                .and_then(|v| v.get("metadata"))
                .and_then(|m| m.get("phone_number_id"))
                .and_then(payload::id_string);
            match id {
                Some(id) if !ids.contains(&id) => ids.push(id),
                Some(_) => {}
                None if change.get("field").and_then(Value::as_str) == Some("messages") => {
                    return Err(malformed(format!(
                        "{at}.changes[{j}].value.metadata.phone_number_id is missing"
                    )));
                }
                None => {}
            }
        }
    }
    Ok(ids)
}

/// Reads a verified delivery (the same raw bytes whose signature was
/// checked) for the phone number `phone_number_id`: every entry and every
/// `changes[]` item whose `value.metadata.phone_number_id` is that number
/// (the other numbers' changes are skipped and not counted).
///
/// - `messages[]`: a [`MessageKind::Direct`] [`Inbound`] on the
///   [`CHANNEL`]: `platform_id` the `wamid` (the key redeliveries are
///   deduplicated on), `thread` and author the sender's `wa_id` (`from`)
///   with the profile name given in `contacts[]`, `in_reply_to` the
///   `context.id` of the message it answers, `sent_at` the `timestamp`
///   (Unix seconds, as a string). The text is `text.body`; for an `image`,
///   `document`, `audio`, `video`, `sticker` or `location`, the caption or
///   "", the media in [`WhatsAppDelivery::attachments`]; for a reply to
///   buttons or a list (`interactive`, `button`), the title of the option
///   chosen.
/// - `statuses[]`: a [`Receipt`] (`sent`, `delivered`, `read`, `failed`).
///
/// Counted in [`Delivery::ignored`] and otherwise dropped: other `field`s
/// (template, quality and account updates…), other message types
/// (reactions, contact cards, orders, `system`, `unsupported`…), other
/// statuses, and the errors WhatsApp reports in `value.errors[]`, which
/// are logged.
///
/// An `object` other than [`OBJECT`], a body that is not JSON, or one
/// without the shape WhatsApp sends (no `entry` array, a `messages` change
/// without its `metadata.phone_number_id`, a message without `id`, `from`,
/// `type` or a readable `timestamp`, a status without `id`, `status`,
/// recipient or `timestamp`…) is [`WebhookError::Malformed`].
pub fn parse(raw_body: &[u8], phone_number_id: &str) -> Result<WhatsAppDelivery, WebhookError> {
    let entries = envelope(raw_body)?;
    let mut out = WhatsAppDelivery::default();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("entry[{i}]");
        for (j, change) in changes_of(entry, &at)?.iter().enumerate() {
            read_change(
                change,
                &format!("{at}.changes[{j}]"),
                phone_number_id,
                &mut out,
            )?;
        }
    }
    Ok(out)
}

/// The entries of a delivery.
fn envelope(raw_body: &[u8]) -> Result<Vec<Value>, WebhookError> {
    let root: Value = serde_json::from_slice(raw_body)
        .map_err(|e| malformed(format!("the body is not JSON ({e})")))?;
    let Value::Object(mut root) = root else {
        return Err(malformed("the body is not a JSON object"));
    };
    match root.get("object").and_then(Value::as_str) {
        Some(OBJECT) => {}
        Some(other) => {
            return Err(malformed(format!(
                "the object {:?} is not handled (only {OBJECT})",
                payload::excerpt(other, 40)
            )));
        }
        None => return Err(malformed("\"object\" is missing")),
    }
    match root.remove("entry") {
        Some(Value::Array(entries)) => Ok(entries),
        Some(_) => Err(malformed("\"entry\" is not an array")),
        None => Err(malformed("\"entry\" is missing")),
    }
}

fn changes_of<'v>(entry: &'v Value, at: &str) -> Result<&'v [Value], WebhookError> {
    if !entry.is_object() {
        return Err(malformed(format!("{at} is not an object")));
    }
    READ.optional_array(entry, "changes", at)
}

/// One `changes[]` item.
fn read_change(
    change: &Value,
    at: &str,
    own: &str,
    out: &mut WhatsAppDelivery,
) -> Result<(), WebhookError> {
    if !change.is_object() {
        return Err(malformed(format!("{at} is not an object")));
    }
    let field = READ.required_str(change, "field", at)?;
    let value = change
        .get("value")
        .filter(|v| v.is_object())
        .ok_or_else(|| malformed(format!("{at}.value is missing or not an object")))?;
    let at = format!("{at}.value");
    let number = value
        .get("metadata")
        .and_then(|m| m.get("phone_number_id"))
        .and_then(payload::id_string);
    if field != "messages" {
        // Template, quality, account updates…: counted for the number they
        // name, or for every number when they name none.
        if number.as_deref().is_none_or(|n| n == own) {
            out.delivery.ignored += 1;
        }
        return Ok(());
    }
    let number =
        number.ok_or_else(|| malformed(format!("{at}.metadata.phone_number_id is missing")))?;
    if number != own {
        return Ok(());
    }
    let contacts = READ.optional_array(value, "contacts", &at)?;
    let messages = READ.optional_array(value, "messages", &at)?;
    let statuses = READ.optional_array(value, "statuses", &at)?;
    let errors = READ.optional_array(value, "errors", &at)?;
    for (k, message) in messages.iter().enumerate() {
        read_message(message, contacts, &format!("{at}.messages[{k}]"), out)?;
    }
    for (k, status) in statuses.iter().enumerate() {
        read_status(status, &format!("{at}.statuses[{k}]"), out)?;
    }
    if !errors.is_empty() {
        tracing::warn!(
            network = CHANNEL,
            phone_number_id = own,
            errors = %describe_errors(errors).unwrap_or_default(),
            "WhatsApp reported errors in a webhook; they are ignored"
        );
        out.delivery.ignored += errors.len();
    }
    Ok(())
}

/// One `messages[]` item: a citizen's message, or a type we ignore.
fn read_message(
    message: &Value,
    contacts: &[Value],
    at: &str,
    out: &mut WhatsAppDelivery,
) -> Result<(), WebhookError> {
    if !message.is_object() {
        return Err(malformed(format!("{at} is not an object")));
    }
    let wamid = READ.required_id(message, "id", at)?;
    let from = READ.required_id(message, "from", at)?;
    let message_type = READ.required_str(message, "type", at)?;
    let sent_at = message
        .get("timestamp")
        .and_then(timestamp)
        .ok_or_else(|| malformed(format!("{at}.timestamp is missing or not a Unix time")))?;
    let text = match message_type.as_str() {
        "text" => str_at(message, &["text", "body"]),
        "interactive" => interactive_title(message),
        "button" => str_at(message, &["button", "text"]),
        other => match MediaKind::of(other) {
            Some(kind) => {
                let media = message.get(other);
                out.attachments
                    .push(attachment(&wamid, kind, media.unwrap_or(&Value::Null)));
                media.map(|m| str_at(m, &["caption"])).unwrap_or_default()
            }
            None => {
                tracing::debug!(
                    network = CHANNEL,
                    message_type = other,
                    "a WhatsApp message of a type not handled is ignored"
                );
                out.delivery.ignored += 1;
                return Ok(());
            }
        },
    };
    let name = contacts
        .iter()
        .find(|c| c.get("wa_id").and_then(payload::id_string).as_deref() == Some(from.as_str()))
        .map(|c| str_at(c, &["profile", "name"]))
        .filter(|n| !n.is_empty());
    out.delivery.messages.push(Inbound {
        channel: CHANNEL,
        kind: MessageKind::Direct,
        platform_id: wamid,
        thread: from.clone(),
        in_reply_to: message
            .get("context")
            .and_then(|c| c.get("id"))
            .and_then(payload::id_string),
        author: Author {
            platform_user_id: from,
            handle: None,
            name,
        },
        text,
        sent_at,
    });
    Ok(())
}

/// The option a citizen chose: `interactive.button_reply.title`,
/// `interactive.list_reply.title`, or a flow's `nfm_reply.body`.
fn interactive_title(message: &Value) -> String {
    let Some(interactive) = message.get("interactive") else {
        return String::new();
    };
    match interactive.get("type").and_then(Value::as_str) {
        Some("button_reply") => str_at(interactive, &["button_reply", "title"]),
        Some("list_reply") => str_at(interactive, &["list_reply", "title"]),
        Some("nfm_reply") => str_at(interactive, &["nfm_reply", "body"]),
        _ => String::new(),
    }
}

fn attachment(wamid: &str, kind: MediaKind, media: &Value) -> Attachment {
    let text = |field: &str| {
        media
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    };
    let location = if kind == MediaKind::Location {
        let degrees = |field: &str| {
            media.get(field).and_then(|v| {
                v.as_f64()
                    .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
            })
        };
        degrees("latitude")
            .zip(degrees("longitude"))
            .map(|(latitude, longitude)| Location {
                latitude,
                longitude,
                name: text("name"),
                address: text("address"),
            })
    } else {
        None
    };
    Attachment {
        message_id: wamid.to_owned(),
        kind,
        media_id: media.get("id").and_then(payload::id_string),
        mime_type: text("mime_type"),
        sha256: text("sha256"),
        filename: text("filename"),
        location,
    }
}

/// One `statuses[]` item: a receipt, or a status we ignore.
fn read_status(status: &Value, at: &str, out: &mut WhatsAppDelivery) -> Result<(), WebhookError> {
    if !status.is_object() {
        return Err(malformed(format!("{at} is not an object")));
    }
    let wamid = READ.required_id(status, "id", at)?;
    let state = READ.required_str(status, "status", at)?;
    let recipient = status
        .get("recipient_id")
        .or_else(|| status.get("recipient_user_id"))
        .and_then(payload::id_string)
        .ok_or_else(|| malformed(format!("{at}.recipient_id is missing")))?;
    let when = status
        .get("timestamp")
        .and_then(timestamp)
        .ok_or_else(|| malformed(format!("{at}.timestamp is missing or not a Unix time")))?;
    let state = match state.as_str() {
        "sent" => ReceiptStatus::Sent,
        "delivered" => ReceiptStatus::Delivered,
        "read" => ReceiptStatus::Read,
        "failed" => ReceiptStatus::Failed,
        // "deleted", "warning", "played"…
        _ => {
            out.delivery.ignored += 1;
            return Ok(());
        }
    };
    let errors = READ.optional_array(status, "errors", at)?;
    out.receipts.push(Receipt {
        wamid,
        status: state,
        recipient,
        at: when,
        error: describe_errors(errors),
        error_code: errors
            .iter()
            .find_map(|e| e.get("code").and_then(Value::as_i64)),
        callback: status
            .get("biz_opaque_callback_data")
            .and_then(Value::as_str)
            .map(str::to_owned),
    });
    Ok(())
}

/// `errors[]` as one sentence: each error's title (or message), its
/// `error_data.details` and its code.
fn describe_errors(errors: &[Value]) -> Option<String> {
    let described: Vec<String> = errors
        .iter()
        .filter_map(|e| {
            let title = e
                .get("title")
                .or_else(|| e.get("message"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty());
            let details = e
                .get("error_data")
                .and_then(|d| d.get("details"))
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty() && Some(*s) != title);
            let code = e.get("code").and_then(Value::as_i64);
            let text = match (title, details) {
                (Some(t), Some(d)) => format!("{t}: {d}"),
                (Some(t), None) => t.to_owned(),
                (None, Some(d)) => d.to_owned(),
                (None, None) => return code.map(|c| format!("error code {c}")),
            };
            Some(match code {
                Some(c) => format!("{} (code {c})", payload::excerpt(&text, 300)),
                None => payload::excerpt(&text, 300),
            })
        })
        .collect();
    (!described.is_empty()).then(|| described.join("; "))
}

fn malformed(problem: impl Into<String>) -> WebhookError {
    READ.malformed(problem)
}

/// Reads this network's payloads.
const READ: payload::Reader = payload::Reader::new(CHANNEL);

/// The string at `path` in `v`, or "".
fn str_at(v: &Value, path: &[&str]) -> String {
    path.iter()
        .try_fold(v, |v, field| v.get(*field))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A time as WhatsApp sends it: Unix seconds, as a string (or a number).
fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    let seconds = match v {
        Value::String(s) => s.trim().parse::<i64>().ok()?,
        Value::Number(n) => n.as_i64()?,
        _ => return None,
    };
    DateTime::from_timestamp(seconds, 0)
}

// ---------------------------------------------------------------------------
// Cloud API client
// ---------------------------------------------------------------------------

/// A WhatsApp Cloud API client: sends text replies from the account's phone
/// number. It keeps no state beyond the base URL and the HTTP client (whose
/// timeouts the service configures); the account's token travels only in
/// the `Authorization: Bearer` header.
#[derive(Debug, Clone)]
pub struct WhatsAppClient {
    base: String,
    http: reqwest::Client,
}

impl WhatsAppClient {
    /// A client for the Graph API at `graph_base` (e.g. [`GRAPH_BASE`],
    /// `https://graph.facebook.com/v25.0`, or a fake's URL), with the
    /// versioned path; a trailing slash is dropped.
    pub fn new(graph_base: impl Into<String>, http: reqwest::Client) -> Self {
        let mut base = graph_base.into();
        while base.ends_with('/') {
            base.pop();
        }
        Self { base, http }
    }

    /// Sends a reply to the citizen, not quoting any message (see
    /// [`WhatsAppClient::send_in_reply_to`]).
    pub async fn send(
        &self,
        creds: &Credentials,
        reply: &OutboundReply,
    ) -> Result<Sent, SendError> {
        self.send_with_usage(creds, reply, None, None).await.0
    }

    /// Sends a reply to the citizen, quoting `message_id` (the `wamid` of
    /// the message answered) when given, as WhatsApp shows replies to a
    /// known message.
    pub async fn send_in_reply_to(
        &self,
        creds: &Credentials,
        reply: &OutboundReply,
        message_id: Option<&str>,
    ) -> Result<Sent, SendError> {
        self.send_with_usage(creds, reply, message_id, None).await.0
    }

    /// Sends a text reply and returns the new message's `wamid`, with the
    /// usage Meta reported with its answer (see [`crate::meta::usage`];
    /// `None` when no call was made or Meta did not report it).
    ///
    /// Only [`ReplyTarget::Direct`], within [`WINDOW_HOURS`] of the
    /// citizen's last message (`reply.now - last_inbound_at`): `POST
    /// {base}/{phone-number id}/messages` with `{"messaging_product":
    /// "whatsapp","recipient_type":"individual","to":<wa_id>,"type":"text",
    /// "text":{"body":…,"preview_url":true}}` and, with `message_id`,
    /// `"context":{"message_id":…}`; answers `{"messaging_product",
    /// "contacts":[{"input","wa_id"}],"messages":[{"id"}]}`.
    ///
    /// Refused without calling: a reply later than the window
    /// ([`SendError::Rejected`] with [`OUTSIDE_WINDOW_REASON`]), a
    /// [`ReplyTarget::Public`] (WhatsApp has nothing public to answer
    /// under), an empty text or one over [`MAX_TEXT_CHARS`] characters.
    ///
    /// WhatsApp's errors: 131047 (re-engagement) is the same window
    /// refusal; 131026 is [`UNDELIVERABLE_REASON`]; 190 (or HTTP 401) is
    /// [`SendError::TokenExpired`]; 10, 200–299 and 131005 are
    /// [`SendError::PermissionMissing`] (`whatsapp_business_messaging`);
    /// 130429, 131056, 4 and 80007 (or HTTP 429) are
    /// [`SendError::RateLimited`] until `reply.now` plus what Meta says
    /// (`Retry-After`, or the usage header's
    /// `estimated_time_to_regain_access`), else 60 s for the throughput and
    /// pair limits and 15 min for the hourly call limits; 5xx, 1, 2,
    /// 131000, 131016, 133004 and transient errors are
    /// [`SendError::Temporary`]; any other is [`SendError::Rejected`] with
    /// what WhatsApp said.
    ///
    /// `callback` travels as `biz_opaque_callback_data` and comes back on
    /// every status receipt of the message ([`Receipt::callback`]): the
    /// platform's id of the reply, so a receipt finds its reply.
    pub async fn send_with_usage(
        &self,
        creds: &Credentials,
        reply: &OutboundReply,
        message_id: Option<&str>,
        callback: Option<&str>,
    ) -> (Result<Sent, SendError>, Option<Usage>) {
        let (recipient, last_inbound_at) = match &reply.target {
            ReplyTarget::Direct {
                recipient,
                last_inbound_at,
            } => (recipient.trim(), *last_inbound_at),
            ReplyTarget::Public { .. } => {
                return (
                    Err(rejected(
                        "WhatsApp has no public comments or posts to answer under: answer the citizen in their WhatsApp chat",
                    )),
                    None,
                );
            }
        };
        if reply.now.signed_duration_since(last_inbound_at)
            > TimeDelta::hours(i64::from(WINDOW_HOURS))
        {
            return (Err(rejected(OUTSIDE_WINDOW_REASON)), None);
        }
        if recipient.is_empty() {
            return (
                Err(rejected(
                    "the citizen's WhatsApp id is unknown: answer on another channel",
                )),
                None,
            );
        }
        if let Err(e) = check_text(&reply.text) {
            return (Err(e), None);
        }
        let phone = match segment(&creds.external_id) {
            Ok(phone) => phone,
            Err(e) => return (Err(e), None),
        };
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "to": recipient,
            "type": "text",
            "text": { "body": reply.text, "preview_url": true },
        });
        let quoted = message_id.map(str::trim).filter(|m| !m.is_empty());
        if let (Some(quoted), Value::Object(fields)) = (quoted, &mut body) {
            fields.insert("context".to_owned(), json!({ "message_id": quoted }));
        }
        if let (Some(callback), Value::Object(fields)) = (callback, &mut body) {
            fields.insert("biz_opaque_callback_data".to_owned(), json!(callback));
        }
        self.post_message(creds, phone, &body, reply.now).await
    }

    /// Refuses: WhatsApp has no public posts, and messaging subscribers
    /// would need approved template messages, which are not supported
    /// ([`SendError::Rejected`] with [`NO_PUBLISHING_REASON`]; nothing is
    /// called).
    pub async fn publish(&self, _creds: &Credentials, _post: &Post) -> Result<Sent, SendError> {
        Err(rejected(NO_PUBLISHING_REASON))
    }

    /// POSTs a message and reads the new `wamid`.
    async fn post_message(
        &self,
        creds: &Credentials,
        phone: &str,
        body: &Value,
        now: DateTime<Utc>,
    ) -> (Result<Sent, SendError>, Option<Usage>) {
        let token = creds.access_token.expose_secret();
        let response = self
            .http
            .post(format!("{}/{phone}/messages", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => return (Err(transport_error(&e)), None),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let used = meta::usage(&headers);
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return (Err(transport_error(&e)), used),
        };
        if !status.is_success() {
            return (Err(api_error(status, &headers, &bytes, now, token)), used);
        }
        let wamid = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
            v.get("messages")
                .and_then(|m| m.get(0))
                .and_then(|m| m.get("id"))
                .and_then(payload::id_string)
        });
        let result = match wamid {
            Some(platform_id) => Ok(Sent { platform_id }),
            None => {
                tracing::warn!(
                    network = CHANNEL,
                    "the WhatsApp Cloud API answered a success without the message id"
                );
                Err(SendError::Temporary {
                    network: CHANNEL,
                    reason: "WhatsApp answered without the id of the message sent".to_owned(),
                })
            }
        };
        (result, used)
    }
}

/// The text is sendable: not empty, at most [`MAX_TEXT_CHARS`] characters.
fn check_text(text: &str) -> Result<(), SendError> {
    let chars = text.chars().count();
    if text.trim().is_empty() {
        return Err(rejected("the reply is empty: write a text to send"));
    }
    if chars > MAX_TEXT_CHARS {
        return Err(rejected(format!(
            "the reply has {chars} characters and WhatsApp takes at most {MAX_TEXT_CHARS}: shorten it or send it in parts"
        )));
    }
    Ok(())
}

/// The phone-number id checked to be safe as one URL path segment, so the
/// endpoint called cannot change.
fn segment(id: &str) -> Result<&str, SendError> {
    let id = id.trim();
    let safe = !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if safe {
        Ok(id)
    } else {
        Err(rejected(format!(
            "{:?} is not a WhatsApp phone-number id: an admin must link the account with the phone-number id Meta shows for the number",
            payload::excerpt(id, 40)
        )))
    }
}

fn rejected(reason: impl Into<String>) -> SendError {
    SendError::Rejected {
        network: CHANNEL,
        reason: reason.into(),
    }
}

/// A failure before WhatsApp answered (connection, timeout, body cut),
/// said without the URL.
fn transport_error(e: &reqwest::Error) -> SendError {
    let reason = if e.is_timeout() {
        "the request timed out".to_owned()
    } else if e.is_connect() {
        "could not connect".to_owned()
    } else if e.is_body() || e.is_decode() {
        "reading the answer failed".to_owned()
    } else {
        "sending the request failed".to_owned()
    };
    tracing::warn!(network = CHANNEL, %reason, "WhatsApp Cloud API call failed");
    SendError::Temporary {
        network: CHANNEL,
        reason,
    }
}

/// Maps the Cloud API's error answer (`{"error":{"message","type","code",
/// "error_data":{"messaging_product","details"},"error_subcode",
/// "is_transient","fbtrace_id"}}` and its status) to a [`SendError`].
fn api_error(
    status: StatusCode,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
    token: &str,
) -> SendError {
    let error = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").cloned())
        .filter(Value::is_object);
    let field = |name: &str| error.as_ref().and_then(|e| e.get(name));
    let code = field("code").and_then(Value::as_i64);
    let transient = field("is_transient").and_then(Value::as_bool) == Some(true);
    let message = field("message")
        .and_then(Value::as_str)
        .map(|m| redact(m, token))
        .unwrap_or_default();
    let details = field("error_data")
        .and_then(|d| d.get("details"))
        .and_then(Value::as_str)
        .map(|d| redact(d, token))
        .filter(|d| !d.is_empty() && *d != message);
    let trace = field("fbtrace_id")
        .and_then(Value::as_str)
        .map(|t| format!(" (fbtrace_id {})", payload::excerpt(t, 40)))
        .unwrap_or_default();
    tracing::warn!(
        network = CHANNEL,
        status = status.as_u16(),
        code,
        fbtrace = %trace,
        "the WhatsApp Cloud API refused a call"
    );
    let said = || {
        let text = match (message.is_empty(), &details, code) {
            (false, Some(d), _) => format!("{message}: {d}"),
            (false, None, _) => message.clone(),
            (true, Some(d), _) => d.clone(),
            (true, None, Some(code)) => format!("error code {code}"),
            (true, None, None) => "an error without description".to_owned(),
        };
        format!("{}{trace}", payload::excerpt(&text, 300))
    };
    let rate_limited = matches!(code, Some(4 | 80_007 | 130_429 | 131_056));
    if status == StatusCode::TOO_MANY_REQUESTS || rate_limited {
        return SendError::RateLimited {
            network: CHANNEL,
            until: now + rate_limit_wait(code, headers),
        };
    }
    match code {
        Some(131_047) => rejected(OUTSIDE_WINDOW_REASON),
        Some(131_026) => rejected(UNDELIVERABLE_REASON),
        // 190: invalid or expired token; 102, 104, 2500: no usable token.
        Some(102 | 104 | 190 | 2500) => SendError::TokenExpired { network: CHANNEL },
        _ if status == StatusCode::UNAUTHORIZED => SendError::TokenExpired { network: CHANNEL },
        // 3: capability; 10: permission denied; 200–299: permission not
        // granted or removed; 131005: access denied.
        Some(3 | 10 | 200..=299 | 131_005) => SendError::PermissionMissing {
            network: CHANNEL,
            permission: permission_named(&message, details.as_deref()),
        },
        // 1: unknown; 2: service; 131000: something went wrong; 131016:
        // service unavailable; 133004: server temporarily unavailable.
        Some(1 | 2 | 131_000 | 131_016 | 133_004) => SendError::Temporary {
            network: CHANNEL,
            reason: said(),
        },
        _ if transient || status.is_server_error() => SendError::Temporary {
            network: CHANNEL,
            reason: said(),
        },
        Some(_) => rejected(said()),
        // No Graph error body (a proxy's page, an empty body…).
        None => SendError::Temporary {
            network: CHANNEL,
            reason: format!("HTTP {} without a WhatsApp error", status.as_u16()),
        },
    }
}

/// The permission a refusal names (`whatsapp_business_management` when
/// Meta says that one), else [`MESSAGING_PERMISSION`].
fn permission_named(message: &str, details: Option<&str>) -> String {
    let management = "whatsapp_business_management";
    let names = |s: &str| s.contains(management) && !s.contains(MESSAGING_PERMISSION);
    if names(message) || details.is_some_and(names) {
        management.to_owned()
    } else {
        MESSAGING_PERMISSION.to_owned()
    }
}

/// How long WhatsApp says to wait: `Retry-After` (seconds), else the
/// highest `estimated_time_to_regain_access` (minutes) in
/// `X-Business-Use-Case-Usage`, else by the code: 60 s for the throughput
/// (130429) and pair (131056) limits, 15 min for the hourly call limits (4,
/// 80007). At most a day.
fn rate_limit_wait(code: Option<i64>, headers: &HeaderMap) -> TimeDelta {
    const DAY_SECONDS: i64 = 24 * 3600;
    let retry_after = headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s > 0);
    if let Some(seconds) = retry_after {
        return TimeDelta::seconds(seconds.min(DAY_SECONDS));
    }
    let regain_minutes = headers
        .get("x-business-use-case-usage")
        .and_then(|v| v.to_str().ok())
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|v| match v {
            Value::Object(by_object) => by_object
                .values()
                .filter_map(Value::as_array)
                .flatten()
                .filter_map(|e| e.get("estimated_time_to_regain_access"))
                .filter_map(Value::as_i64)
                .max(),
            _ => None,
        })
        .filter(|m| *m > 0);
    if let Some(minutes) = regain_minutes {
        return TimeDelta::minutes(minutes.min(DAY_SECONDS / 60));
    }
    match code {
        Some(4 | 80_007) => LONG_RATE_LIMIT_WAIT,
        _ => SHORT_RATE_LIMIT_WAIT,
    }
}

/// `message` with any occurrence of the token removed (Meta does not echo
/// tokens, but an error must never carry one).
fn redact(message: &str, token: &str) -> String {
    if token.is_empty() {
        message.to_owned()
    } else {
        message.replace(token, "[redacted]")
    }
}

/// The credentials of a WhatsApp account, from their parts (see the module
/// documentation for what each is).
pub fn credentials(
    phone_number_id: impl Into<String>,
    system_user_token: SecretString,
    app_secret: SecretString,
    verify_token: SecretString,
) -> Credentials {
    Credentials {
        external_id: phone_number_id.into(),
        access_token: system_user_token,
        signing_secret: app_secret,
        verify_token,
        human_agent: false,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::fake::whatsapp::{self as fake, Failure, FakeWhatsApp};

    const PHONE: &str = "106540352242922";
    const OTHER_PHONE: &str = "106540352299999";
    const TOKEN: &str = "EAAG-system-user-token";
    const SECRET: &str = "app-secret-for-tests";
    const CITIZEN: &str = "16505551234";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn creds() -> Credentials {
        credentials(PHONE, secret(TOKEN), secret(SECRET), secret("verify-me"))
    }

    fn at_s(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn is_malformed(r: &Result<WhatsAppDelivery, WebhookError>) -> bool {
        matches!(
            r,
            Err(WebhookError::Malformed {
                network: "whatsapp",
                ..
            })
        )
    }

    // -- parsing ---------------------------------------------------------------

    /// The example of SOCIAL_APIS.md §2, byte for byte.
    const DOC_EXAMPLE: &str = r#"{"object":"whatsapp_business_account","entry":[{"id":"<WABA_ID>","changes":[{"field":"messages","value":{
 "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},
 "contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],
 "messages":[{"from":"16505551234","id":"wamid.HBgL…","timestamp":"1749416383","type":"text","text":{"body":"…"}}]}}]}]}"#;

    #[test]
    fn the_documented_example_is_one_text_message() {
        let d = parse(DOC_EXAMPLE.as_bytes(), PHONE).unwrap();
        assert_eq!(
            d.delivery.messages,
            vec![Inbound {
                channel: "whatsapp",
                kind: MessageKind::Direct,
                platform_id: "wamid.HBgL…".into(),
                thread: "16505551234".into(),
                in_reply_to: None,
                author: Author {
                    platform_user_id: "16505551234".into(),
                    handle: None,
                    name: Some("Sheena Nelson".into()),
                },
                text: "…".into(),
                sent_at: at_s(1_749_416_383),
            }]
        );
        assert_eq!(d.delivery.ignored, 0);
        assert!(d.delivery.removed.is_empty());
        assert!(d.attachments.is_empty());
        assert!(d.receipts.is_empty());
        assert_eq!(phone_number_ids(DOC_EXAMPLE.as_bytes()).unwrap(), [PHONE]);
    }

    #[test]
    fn a_signed_delivery_from_the_fake_verifies_and_reads_unescaped() {
        let payload = fake::text_message(
            PHONE,
            CITIZEN,
            "Begoña",
            "wamid.A1",
            "La farola está rota",
            1_767_261_600,
        );
        let (raw, signature) = fake::signed_webhook(SECRET, &payload);
        assert!(
            String::from_utf8(raw.clone())
                .unwrap()
                .contains(r"est\u00e1")
        );
        verify_signature(&creds(), &raw, Some(&signature)).unwrap();
        assert_eq!(
            verify_signature(&creds(), b"{}", Some(&signature)),
            Err(WebhookError::BadSignature)
        );
        let d = parse(&raw, PHONE).unwrap();
        assert_eq!(d.delivery.messages[0].text, "La farola está rota");
        assert_eq!(
            d.delivery.messages[0].author.name.as_deref(),
            Some("Begoña")
        );
        assert_eq!(
            verify_subscription(Some("subscribe"), Some("verify-me"), Some("42"), &creds()),
            Ok("42".to_owned())
        );
        assert_eq!(
            verify_subscription(Some("subscribe"), Some("nope"), Some("42"), &creds()),
            Err(WebhookError::BadVerifyToken)
        );
    }

    #[test]
    fn another_phone_numbers_changes_are_skipped() {
        let mine = fake::text_message(PHONE, CITIZEN, "A", "wamid.mine", "hola", 1_767_261_600);
        let theirs = fake::text_message(
            OTHER_PHONE,
            "34600000000",
            "B",
            "wamid.theirs",
            "adiós",
            1_767_261_601,
        );
        let receipt = fake::status_receipt(OTHER_PHONE, "wamid.x", "read", "34600000000");
        let raw = fake::batch(&[theirs, mine, receipt]).to_string();
        assert_eq!(
            phone_number_ids(raw.as_bytes()).unwrap(),
            [OTHER_PHONE, PHONE]
        );
        let d = parse(raw.as_bytes(), PHONE).unwrap();
        let ids: Vec<&str> = d
            .delivery
            .messages
            .iter()
            .map(|m| m.platform_id.as_str())
            .collect();
        assert_eq!(ids, ["wamid.mine"]);
        assert_eq!(d.delivery.ignored, 0);
        assert!(d.receipts.is_empty());
        let d = parse(raw.as_bytes(), OTHER_PHONE).unwrap();
        assert_eq!(d.delivery.messages[0].platform_id, "wamid.theirs");
        assert_eq!(d.receipts.len(), 1);
    }

    #[test]
    fn statuses_are_delivery_receipts() {
        let raw = json!({"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[
            {"field":"messages","value":{"messaging_product":"whatsapp",
             "metadata":{"display_phone_number":"15550783881","phone_number_id":PHONE},
             "statuses":[
                {"id":"wamid.1","status":"sent","timestamp":"1767261600","recipient_id":CITIZEN,
                 "conversation":{"id":"c1","origin":{"type":"service"}},
                 "pricing":{"billable":false,"pricing_model":"PMP","category":"service"}},
                {"id":"wamid.1","status":"delivered","timestamp":"1767261601","recipient_id":CITIZEN},
                {"id":"wamid.1","status":"read","timestamp":"1767261602","recipient_id":CITIZEN},
                {"id":"wamid.2","status":"failed","timestamp":"1767261603","recipient_id":CITIZEN,
                 "errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message",
                   "error_data":{"details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},
                   "href":"https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/"}]},
                {"id":"wamid.3","status":"deleted","timestamp":"1767261604","recipient_id":CITIZEN}
             ]}}]}]})
        .to_string();
        let d = parse(raw.as_bytes(), PHONE).unwrap();
        assert!(d.delivery.messages.is_empty());
        assert_eq!(d.delivery.ignored, 1);
        let states: Vec<ReceiptStatus> = d.receipts.iter().map(|r| r.status).collect();
        assert_eq!(
            states,
            [
                ReceiptStatus::Sent,
                ReceiptStatus::Delivered,
                ReceiptStatus::Read,
                ReceiptStatus::Failed
            ]
        );
        assert_eq!(
            d.receipts[0],
            Receipt {
                wamid: "wamid.1".into(),
                status: ReceiptStatus::Sent,
                recipient: CITIZEN.into(),
                at: at_s(1_767_261_600),
                error: None,
                error_code: None,
                callback: None,
            }
        );
        assert_eq!(
            d.receipts[3].error.as_deref(),
            Some(
                "Re-engagement message: Message failed to send because more than 24 hours have passed since the customer last replied to this number. (code 131047)"
            )
        );
        assert_eq!(d.receipts[3].error_code, Some(131_047));

        let built = fake::status_receipt(PHONE, "wamid.9", "delivered", CITIZEN);
        let d = parse(built.to_string().as_bytes(), PHONE).unwrap();
        assert_eq!(d.receipts[0].wamid, "wamid.9");
        assert_eq!(d.receipts[0].status, ReceiptStatus::Delivered);
    }

    #[test]
    fn media_interactive_and_replies_are_read() {
        let value = |messages: Value| {
            json!({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{
                "messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":PHONE},
                "contacts":[{"profile":{"name":"Vecina"},"wa_id":CITIZEN}],"messages":messages}}]}]})
        };
        let t = "1767261600";
        let raw = value(json!([
            {"from":CITIZEN,"id":"wamid.img","timestamp":t,"type":"image",
             "image":{"caption":"Bache en la calle","mime_type":"image/jpeg","sha256":"abc=","id":"1001"}},
            {"from":CITIZEN,"id":"wamid.doc","timestamp":t,"type":"document",
             "document":{"filename":"denuncia.pdf","mime_type":"application/pdf","sha256":"def=","id":"1002"}},
            {"from":CITIZEN,"id":"wamid.aud","timestamp":t,"type":"audio",
             "audio":{"mime_type":"audio/ogg; codecs=opus","sha256":"ghi=","id":"1003","voice":true}},
            {"from":CITIZEN,"id":"wamid.vid","timestamp":t,"type":"video",
             "video":{"mime_type":"video/mp4","sha256":"jkl=","id":"1004"}},
            {"from":CITIZEN,"id":"wamid.stk","timestamp":t,"type":"sticker",
             "sticker":{"mime_type":"image/webp","sha256":"mno=","id":"1005","animated":false}},
            {"from":CITIZEN,"id":"wamid.loc","timestamp":t,"type":"location",
             "location":{"latitude":40.4168,"longitude":-3.7038,"name":"Puerta del Sol","address":"Madrid"}},
            {"from":CITIZEN,"id":"wamid.btn","timestamp":t,"type":"interactive",
             "context":{"from":"15550783881","id":"wamid.ours"},
             "interactive":{"type":"button_reply","button_reply":{"id":"yes","title":"Sí, resuelto"}}},
            {"from":CITIZEN,"id":"wamid.lst","timestamp":t,"type":"interactive",
             "interactive":{"type":"list_reply","list_reply":{"id":"r1","title":"Limpieza","description":"calles"}}},
            {"from":CITIZEN,"id":"wamid.qr","timestamp":t,"type":"button",
             "button":{"text":"Ver estado","payload":"STATUS"}},
            {"from":CITIZEN,"id":"wamid.txt","timestamp":t,"type":"text",
             "context":{"from":"15550783881","id":"wamid.ours2"},"text":{"body":"gracias"}},
            {"from":CITIZEN,"id":"wamid.rea","timestamp":t,"type":"reaction",
             "reaction":{"message_id":"wamid.ours","emoji":"👍"}},
            {"from":CITIZEN,"id":"wamid.uns","timestamp":t,"type":"unsupported",
             "errors":[{"code":131051,"title":"Message type unknown"}]}
        ]))
        .to_string();
        let d = parse(raw.as_bytes(), PHONE).unwrap();
        let read: Vec<(&str, &str, Option<&str>)> = d
            .delivery
            .messages
            .iter()
            .map(|m| {
                (
                    m.platform_id.as_str(),
                    m.text.as_str(),
                    m.in_reply_to.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            read,
            [
                ("wamid.img", "Bache en la calle", None),
                ("wamid.doc", "", None),
                ("wamid.aud", "", None),
                ("wamid.vid", "", None),
                ("wamid.stk", "", None),
                ("wamid.loc", "", None),
                ("wamid.btn", "Sí, resuelto", Some("wamid.ours")),
                ("wamid.lst", "Limpieza", None),
                ("wamid.qr", "Ver estado", None),
                ("wamid.txt", "gracias", Some("wamid.ours2")),
            ]
        );
        assert!(
            d.delivery
                .messages
                .iter()
                .all(|m| m.author.name.as_deref() == Some("Vecina") && m.thread == CITIZEN)
        );
        assert_eq!(d.delivery.ignored, 2);
        let kinds: Vec<(&str, MediaKind)> = d
            .attachments
            .iter()
            .map(|a| (a.message_id.as_str(), a.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("wamid.img", MediaKind::Image),
                ("wamid.doc", MediaKind::Document),
                ("wamid.aud", MediaKind::Audio),
                ("wamid.vid", MediaKind::Video),
                ("wamid.stk", MediaKind::Sticker),
                ("wamid.loc", MediaKind::Location),
            ]
        );
        assert_eq!(
            d.attachments[1],
            Attachment {
                message_id: "wamid.doc".into(),
                kind: MediaKind::Document,
                media_id: Some("1002".into()),
                mime_type: Some("application/pdf".into()),
                sha256: Some("def=".into()),
                filename: Some("denuncia.pdf".into()),
                location: None,
            }
        );
        assert_eq!(
            d.attachments[5].location,
            Some(Location {
                latitude: 40.4168,
                longitude: -3.7038,
                name: Some("Puerta del Sol".into()),
                address: Some("Madrid".into()),
            })
        );
        assert_eq!(d.attachments[5].media_id, None);

        let built = fake::image_message(
            PHONE,
            CITIZEN,
            "Vecina",
            "wamid.i2",
            "2001",
            "image/png",
            Some("foto"),
            1_767_261_600,
        );
        let d = parse(built.to_string().as_bytes(), PHONE).unwrap();
        assert_eq!(d.delivery.messages[0].text, "foto");
        assert_eq!(d.attachments[0].media_id.as_deref(), Some("2001"));
        assert_eq!(d.attachments[0].mime_type.as_deref(), Some("image/png"));
        assert!(d.attachments[0].sha256.is_some());
    }

    #[test]
    fn other_fields_and_reported_errors_are_counted() {
        let raw = json!({"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
            {"field":"message_template_status_update","value":{"event":"APPROVED","message_template_id":1}},
            {"field":"account_update","value":{"phone_number":"15550783881","event":"VERIFIED_ACCOUNT"}},
            {"field":"phone_number_quality_update","value":{"display_phone_number":"1","event":"FLAGGED",
              "metadata":{"phone_number_id":OTHER_PHONE}}},
            {"field":"messages","value":{"messaging_product":"whatsapp",
              "metadata":{"display_phone_number":"15550783881","phone_number_id":PHONE},
              "errors":[{"code":130429,"title":"Rate limit hit","message":"(#130429) Rate limit hit",
                "error_data":{"details":"Cloud API message throughput has been reached."}}]}}
        ]}]})
        .to_string();
        let d = parse(raw.as_bytes(), PHONE).unwrap();
        assert!(d.delivery.messages.is_empty());
        assert_eq!(d.delivery.ignored, 3);
    }

    #[test]
    fn bodies_without_whatsapps_shape_are_malformed() {
        let ok_value = r#""metadata":{"phone_number_id":"106540352242922"}"#;
        let bodies: Vec<String> = vec![
            String::new(),
            "not json".into(),
            "[]".into(),
            r#"{"entry":[]}"#.into(),
            r#"{"object":"page","entry":[]}"#.into(),
            r#"{"object":"whatsapp_business_account"}"#.into(),
            r#"{"object":"whatsapp_business_account","entry":{}}"#.into(),
            r#"{"object":"whatsapp_business_account","entry":[1]}"#.into(),
            r#"{"object":"whatsapp_business_account","entry":[{"changes":{}}]}"#.into(),
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"value":{}}]}]}"#.into(),
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages"}]}]}"#
                .into(),
            r#"{"object":"whatsapp_business_account","entry":[{"changes":[{"field":"messages","value":{"messages":[]}}]}]}"#
                .into(),
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{{ok_value},"messages":{{}}}}}}]}}]}}"#
            ),
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{{ok_value},"messages":[{{"from":"1","timestamp":"1","type":"text"}}]}}}}]}}]}}"#
            ),
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{{ok_value},"messages":[{{"id":"w","timestamp":"1","type":"text"}}]}}}}]}}]}}"#
            ),
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{{ok_value},"messages":[{{"id":"w","from":"1","timestamp":"yesterday","type":"text"}}]}}}}]}}]}}"#
            ),
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{{ok_value},"messages":[{{"id":"w","from":"1","timestamp":"1"}}]}}}}]}}]}}"#
            ),
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{{ok_value},"statuses":[{{"id":"w","status":"read","timestamp":"1"}}]}}}}]}}]}}"#
            ),
            format!(
                r#"{{"object":"whatsapp_business_account","entry":[{{"changes":[{{"field":"messages","value":{{{ok_value},"statuses":[{{"status":"read","timestamp":"1","recipient_id":"2"}}]}}}}]}}]}}"#
            ),
        ];
        for body in &bodies {
            let result = parse(body.as_bytes(), PHONE);
            assert!(
                is_malformed(&result),
                "{body} should be malformed: {result:?}"
            );
        }
        let empty = parse(
            br#"{"object":"whatsapp_business_account","entry":[]}"#,
            PHONE,
        )
        .unwrap();
        assert_eq!(empty, WhatsAppDelivery::default());
    }

    // -- sending -------------------------------------------------------------

    async fn fake_with_token() -> (FakeWhatsApp, WhatsAppClient) {
        let fake = FakeWhatsApp::start().await;
        fake.allow_token(TOKEN);
        let client = WhatsAppClient::new(format!("{}/", fake.base_url()), reqwest::Client::new());
        (fake, client)
    }

    fn direct(text: &str, last_inbound_at: DateTime<Utc>, now: DateTime<Utc>) -> OutboundReply {
        OutboundReply {
            target: ReplyTarget::Direct {
                recipient: CITIZEN.into(),
                last_inbound_at,
            },
            text: text.into(),
            now,
        }
    }

    #[tokio::test]
    async fn a_reply_quotes_the_message_it_answers() {
        let (fake, client) = fake_with_token().await;
        let now = Utc::now();
        fake.set_last_inbound(CITIZEN, now - TimeDelta::hours(2));
        let reply = direct(
            "Gracias, lo revisamos: https://ayto.example/t/1",
            now - TimeDelta::hours(2),
            now,
        );
        let sent = client
            .send_in_reply_to(&creds(), &reply, Some("wamid.HBgLcitizen"))
            .await
            .unwrap();
        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/v25.0/{PHONE}/messages"));
        assert!(r.query.is_empty());
        assert_eq!(
            r.authorization.as_deref(),
            Some("Bearer EAAG-system-user-token")
        );
        assert_eq!(
            r.body,
            Some(json!({
                "messaging_product":"whatsapp","recipient_type":"individual","to":CITIZEN,
                "type":"text","text":{"body":"Gracias, lo revisamos: https://ayto.example/t/1","preview_url":true},
                "context":{"message_id":"wamid.HBgLcitizen"}
            }))
        );
        let delivered = fake.sent();
        assert_eq!(delivered.len(), 1);
        assert_eq!(sent.platform_id, delivered[0].wamid);
        assert_eq!(delivered[0].to, CITIZEN);
        assert_eq!(delivered[0].context.as_deref(), Some("wamid.HBgLcitizen"));

        // Without a message to quote, no context.
        client.send(&creds(), &reply).await.unwrap();
        let body = fake.requests()[1].body.clone().unwrap();
        assert!(body.get("context").is_none());
    }

    #[tokio::test]
    async fn outside_the_window_nothing_is_called() {
        let (fake, client) = fake_with_token().await;
        let now = at_s(1_767_261_600);
        let late = direct(
            "hola",
            now - TimeDelta::hours(24) - TimeDelta::seconds(1),
            now,
        );
        let e = client.send(&creds(), &late).await.unwrap_err();
        assert_eq!(e, rejected(OUTSIDE_WINDOW_REASON));
        assert!(!e.is_retryable());
        assert!(e.to_string().contains("within 24 hours"));
        assert!(e.to_string().contains("answer on another channel"));

        let public = OutboundReply {
            target: ReplyTarget::Public {
                in_reply_to: "wamid.1".into(),
            },
            text: "hola".into(),
            now,
        };
        assert!(matches!(
            client.send(&creds(), &public).await,
            Err(SendError::Rejected { .. })
        ));
        let ok_window = now - TimeDelta::hours(1);
        let empty = direct("  ", ok_window, now);
        assert!(matches!(
            client.send(&creds(), &empty).await,
            Err(SendError::Rejected { .. })
        ));
        let long = direct(&"a".repeat(MAX_TEXT_CHARS + 1), ok_window, now);
        let e = client.send(&creds(), &long).await.unwrap_err();
        assert!(e.to_string().contains("4097 characters"), "{e}");
        assert!(matches!(
            client.publish(&creds(), &Post::default()).await,
            Err(SendError::Rejected { reason, .. }) if reason == NO_PUBLISHING_REASON
        ));
        assert!(fake.requests().is_empty());

        // Exactly 24 hours is still within the window, and 4096 characters
        // are accepted.
        fake.set_now(Some(now));
        fake.set_last_inbound(CITIZEN, now - TimeDelta::hours(24));
        let edge = direct(&"á".repeat(MAX_TEXT_CHARS), now - TimeDelta::hours(24), now);
        client.send(&creds(), &edge).await.unwrap();
    }

    #[tokio::test]
    async fn the_apis_window_error_is_the_same_refusal() {
        let (fake, client) = fake_with_token().await;
        let now = Utc::now();
        // The service believes the citizen wrote an hour ago; WhatsApp
        // knows better.
        fake.set_last_inbound(CITIZEN, now - TimeDelta::hours(30));
        let reply = direct("hola", now - TimeDelta::hours(1), now);
        assert_eq!(
            client.send(&creds(), &reply).await,
            Err(rejected(OUTSIDE_WINDOW_REASON))
        );
        // A citizen who never wrote is outside the window too.
        let stranger = OutboundReply {
            target: ReplyTarget::Direct {
                recipient: "34699999999".into(),
                last_inbound_at: now,
            },
            text: "hola".into(),
            now,
        };
        assert_eq!(
            client.send(&creds(), &stranger).await,
            Err(rejected(OUTSIDE_WINDOW_REASON))
        );
        fake.fail_next(Failure::OutsideWindow);
        fake.set_last_inbound(CITIZEN, now);
        assert_eq!(
            client.send(&creds(), &reply).await,
            Err(rejected(OUTSIDE_WINDOW_REASON))
        );
        assert_eq!(fake.requests().len(), 3);
        assert!(fake.sent().is_empty());
    }

    #[tokio::test]
    async fn an_unknown_or_expired_token_asks_to_link_again() {
        let (fake, client) = fake_with_token().await;
        let now = Utc::now();
        fake.set_last_inbound(CITIZEN, now);
        let reply = direct("hola", now, now);
        let wrong = credentials(
            PHONE,
            secret("stale-token-123"),
            secret(SECRET),
            secret("v"),
        );
        let e = client.send(&wrong, &reply).await.unwrap_err();
        assert_eq!(
            e,
            SendError::TokenExpired {
                network: "whatsapp"
            }
        );
        assert!(e.degrades_account());
        assert!(!e.to_string().contains("stale-token-123"));
        fake.fail_next(Failure::TokenExpired);
        assert_eq!(
            client.send(&creds(), &reply).await,
            Err(SendError::TokenExpired {
                network: "whatsapp"
            })
        );
        fake.fail_next(Failure::PermissionMissing);
        assert_eq!(
            client.send(&creds(), &reply).await,
            Err(SendError::PermissionMissing {
                network: "whatsapp",
                permission: MESSAGING_PERMISSION.into()
            })
        );
    }

    #[tokio::test]
    async fn rate_limits_and_outages_are_retried_later() {
        let (fake, client) = fake_with_token().await;
        let now = Utc::now();
        fake.set_last_inbound(CITIZEN, now);
        let reply = direct("hola", now, now);
        fake.fail_next(Failure::RateLimited);
        let e = client.send(&creds(), &reply).await.unwrap_err();
        assert_eq!(
            e,
            SendError::RateLimited {
                network: "whatsapp",
                until: now + TimeDelta::seconds(60)
            }
        );
        assert!(e.is_retryable());
        fake.fail_next(Failure::PairRateLimited);
        assert!(matches!(
            client.send(&creds(), &reply).await,
            Err(SendError::RateLimited { .. })
        ));
        fake.fail_next(Failure::ServerError);
        let e = client.send(&creds(), &reply).await.unwrap_err();
        assert!(matches!(e, SendError::Temporary { .. }), "{e:?}");
        fake.fail_next(Failure::Undeliverable);
        assert_eq!(
            client.send(&creds(), &reply).await,
            Err(rejected(UNDELIVERABLE_REASON))
        );
        // And then it goes through.
        client.send(&creds(), &reply).await.unwrap();
        assert_eq!(fake.sent().len(), 1);
    }

    #[tokio::test]
    async fn an_unreachable_api_is_temporary() {
        let client = WhatsAppClient::new("http://127.0.0.1:9/v25.0", reqwest::Client::new());
        let now = Utc::now();
        let e = client
            .send(&creds(), &direct("hola", now, now))
            .await
            .unwrap_err();
        assert!(matches!(e, SendError::Temporary { .. }), "{e:?}");
        assert!(!e.to_string().contains("127.0.0.1"));
    }

    fn error_body(code: i64, message: &str, details: Option<&str>) -> Vec<u8> {
        let mut error =
            json!({"message":message,"type":"OAuthException","code":code,"fbtrace_id":"AbC"});
        if let Some(d) = details {
            error["error_data"] = json!({"messaging_product":"whatsapp","details":d});
        }
        json!({ "error": error }).to_string().into_bytes()
    }

    #[test]
    fn cloud_api_errors_map_to_send_errors() {
        let now = at_s(1_767_261_600);
        let none = HeaderMap::new();
        let map = |status: u16, body: &[u8], h: &HeaderMap| {
            api_error(StatusCode::from_u16(status).unwrap(), h, body, now, TOKEN)
        };
        let limited = |d: TimeDelta| SendError::RateLimited {
            network: "whatsapp",
            until: now + d,
        };
        assert_eq!(
            map(
                400,
                &error_body(130_429, "(#130429) Rate limit hit", None),
                &none
            ),
            limited(TimeDelta::seconds(60))
        );
        assert_eq!(
            map(
                400,
                &error_body(131_056, "(#131056) pair rate limit hit", None),
                &none
            ),
            limited(TimeDelta::seconds(60))
        );
        assert_eq!(
            map(
                400,
                &error_body(4, "(#4) Application request limit reached", None),
                &none
            ),
            limited(TimeDelta::minutes(15))
        );
        let buc = {
            let mut h = HeaderMap::new();
            h.insert(
                "x-business-use-case-usage",
                r#"{"102290129340398":[{"type":"whatsapp","call_count":100,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":7}]}"#
                    .parse()
                    .unwrap(),
            );
            h
        };
        assert_eq!(
            map(
                400,
                &error_body(80_007, "(#80007) Rate limit issues", None),
                &buc
            ),
            limited(TimeDelta::minutes(7))
        );
        let mut retry = HeaderMap::new();
        retry.insert("retry-after", "30".parse().unwrap());
        assert_eq!(map(429, b"", &retry), limited(TimeDelta::seconds(30)));
        assert_eq!(
            map(
                401,
                &error_body(190, "Error validating access token", None),
                &none
            ),
            SendError::TokenExpired {
                network: "whatsapp"
            }
        );
        assert_eq!(
            map(401, b"", &none),
            SendError::TokenExpired {
                network: "whatsapp"
            }
        );
        assert_eq!(
            map(
                400,
                &error_body(
                    131_047,
                    "(#131047) Re-engagement message",
                    Some("more than 24 hours")
                ),
                &none
            ),
            rejected(OUTSIDE_WINDOW_REASON)
        );
        assert_eq!(
            map(
                400,
                &error_body(131_026, "(#131026) Message undeliverable", None),
                &none
            ),
            rejected(UNDELIVERABLE_REASON)
        );
        for code in [10, 200, 131_005] {
            assert_eq!(
                map(
                    403,
                    &error_body(
                        code,
                        "(#10) Application does not have permission for this action",
                        None
                    ),
                    &none
                ),
                SendError::PermissionMissing {
                    network: "whatsapp",
                    permission: "whatsapp_business_messaging".into()
                },
                "code {code}"
            );
        }
        assert_eq!(
            map(
                403,
                &error_body(
                    200,
                    "(#200) Requires whatsapp_business_management permission",
                    None
                ),
                &none
            ),
            SendError::PermissionMissing {
                network: "whatsapp",
                permission: "whatsapp_business_management".into()
            }
        );
        for (status, code) in [(500, 131_000), (503, 131_016), (400, 2), (502, 100)] {
            assert!(
                matches!(
                    map(status, &error_body(code, "x", None), &none),
                    SendError::Temporary { .. }
                ),
                "{status} {code}"
            );
        }
        assert!(matches!(
            map(502, b"<html>", &none),
            SendError::Temporary { .. }
        ));
        assert!(matches!(map(400, b"", &none), SendError::Temporary { .. }));
        assert_eq!(
            map(
                400,
                &error_body(
                    131_009,
                    &format!("(#131009) Parameter value is not valid {TOKEN}"),
                    Some("Invalid to")
                ),
                &none
            ),
            rejected(
                "(#131009) Parameter value is not valid [redacted]: Invalid to (fbtrace_id AbC)"
            )
        );
    }

    #[test]
    fn ids_that_would_change_the_endpoint_are_refused() {
        assert_eq!(segment(PHONE), Ok(PHONE));
        for bad in ["", "../me", "1/messages", "1?x=y", "1#x", "a b"] {
            assert!(
                matches!(segment(bad), Err(SendError::Rejected { .. })),
                "{bad}"
            );
        }
    }
}
