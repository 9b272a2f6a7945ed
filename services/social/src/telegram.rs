//! The Telegram connector (Bot API): a council links a bot, citizens write
//! to it in a private chat or mention it in a group, and agents answer
//! through it.
//!
//! What it does:
//! - checks the `X-Telegram-Bot-Api-Secret-Token` header of every webhook
//!   delivery against the account's secret, in constant time
//!   ([`verify_secret`]); the secret is a shared token chosen at linking
//!   ([`new_secret_token`]), not an HMAC, and is kept in
//!   [`Credentials::signing_secret`];
//! - reads one Update into the citizens' messages ([`parse`]) and returns
//!   its sequential `update_id`, the key Telegram's redeliveries are
//!   deduplicated on;
//! - calls the Bot API ([`TelegramClient`]): `getMe` to check a token when
//!   an account is linked, `setWebhook` / `deleteWebhook`, `sendMessage` to
//!   answer (with Bot API 7.0 `reply_parameters`) and to publish on a
//!   channel, and says why a call failed in [`SendError`]'s words.
//!
//! Ids: Telegram numbers messages per chat, so a message's platform id is
//! `<chat_id>:<message_id>` (an edit: `<chat_id>:<message_id>:edited:<edit
//! date>`), and the thread is the chat id (in a private chat, the citizen's
//! user id).
//!
//! What it must not do: keep state, write anything, or let the bot token —
//! which Telegram puts in the URL path (`/bot<token>/<method>`) — reach a
//! log line, an error or a `Debug` output; nor put the webhook secret in
//! one. Its only I/O is [`TelegramClient`]'s HTTP calls, to the base URL it
//! is given (the real API or a local fake).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use ventanilla_social_domain::inbound::{Author, MessageKind};

use crate::connector::{
    Credentials, Delivery, Inbound, OutboundReply, Post, ReplyTarget, SendError, Sent, WebhookError,
};

/// The channel name of Telegram messages.
pub const CHANNEL: &str = "telegram";

/// The real Bot API's base URL.
pub const API_BASE: &str = "https://api.telegram.org";

/// The header Telegram sends the webhook's secret token in.
pub const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// The updates the webhook asks for: citizens' messages and their edits
/// (channel posts are our own announcements; the rest is not handled).
pub const ALLOWED_UPDATES: [&str; 2] = ["message", "edited_message"];

/// The longest text `sendMessage` takes, in characters.
pub const MAX_MESSAGE_LENGTH: usize = 4096;

/// The longest webhook secret token Telegram accepts.
pub const MAX_SECRET_TOKEN_LENGTH: usize = 256;

/// How long to wait after a 429 that does not say (Telegram always says).
const DEFAULT_RETRY_AFTER_SECS: i64 = 30;

/// The longest error text from Telegram kept in a [`SendError`] reason.
const MAX_REASON_LENGTH: usize = 300;

/// Update fields that carry a message of a kind a citizen can send: with
/// none of them (nor text or a caption) a message is a service message
/// (someone joined, a title changed, a pin…).
const CONTENT_FIELDS: &[&str] = &[
    "photo",
    "document",
    "audio",
    "video",
    "video_note",
    "voice",
    "animation",
    "sticker",
    "contact",
    "location",
    "venue",
    "poll",
    "dice",
    "story",
    "paid_media",
];

fn malformed(problem: impl Into<String>) -> WebhookError {
    WebhookError::Malformed {
        network: CHANNEL,
        problem: problem.into(),
    }
}

// ---------------------------------------------------------------------------
// Webhooks: the secret token
// ---------------------------------------------------------------------------

/// Whether `c` may be in a webhook secret token (`A-Z a-z 0-9 _ -`).
fn secret_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'-'
}

/// Whether Telegram accepts `token` as a webhook `secret_token`: 1 to 256
/// characters from `A-Z a-z 0-9 _ -`.
pub fn valid_secret_token(token: &str) -> bool {
    (1..=MAX_SECRET_TOKEN_LENGTH).contains(&token.len()) && token.bytes().all(secret_char)
}

/// A new webhook secret token: 43 characters of base64url (32 random bytes
/// from the operating system), which Telegram accepts
/// ([`valid_secret_token`]). Store it as the account's
/// [`Credentials::signing_secret`] and give it to
/// [`TelegramClient::set_webhook`].
///
/// # Errors
///
/// When the operating system gives no randomness.
pub fn new_secret_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// Checks the `X-Telegram-Bot-Api-Secret-Token` header of a delivery
/// against the account's secret (`expected`). Both are hashed and the
/// digests compared in constant time, so neither the content nor the length
/// of the secret leaks through timing. A missing or wrong header, or an
/// empty `expected` secret (an account linked without one), is
/// [`WebhookError::BadSignature`] (answer 401).
pub fn verify_secret(expected: &SecretString, header: Option<&str>) -> Result<(), WebhookError> {
    let expected = expected.expose_secret().as_bytes();
    let given = header.ok_or(WebhookError::BadSignature)?.as_bytes();
    if expected.is_empty() {
        return Err(WebhookError::BadSignature);
    }
    let expected = Sha256::digest(expected);
    let given = Sha256::digest(given);
    if bool::from(expected.as_slice().ct_eq(given.as_slice())) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

// ---------------------------------------------------------------------------
// Webhooks: Updates
// ---------------------------------------------------------------------------

/// An Update: at most one of `message`, `edited_message`, `channel_post`,
/// `callback_query`… is present; the ones not listed land in `other`.
#[derive(Deserialize)]
struct Update {
    update_id: i64,
    #[serde(default)]
    message: Option<Message>,
    #[serde(default)]
    edited_message: Option<Message>,
    #[serde(flatten)]
    other: Map<String, Value>,
}

#[derive(Deserialize)]
struct Message {
    message_id: i64,
    #[serde(default)]
    from: Option<User>,
    chat: Chat,
    date: i64,
    #[serde(default)]
    edit_date: Option<i64>,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    caption: Option<String>,
    #[serde(default)]
    entities: Vec<Entity>,
    #[serde(default)]
    caption_entities: Vec<Entity>,
    #[serde(default)]
    reply_to_message: Option<Replied>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// The message answered: only what tells whom it answers.
#[derive(Deserialize)]
struct Replied {
    message_id: i64,
    #[serde(default)]
    from: Option<User>,
}

#[derive(Deserialize)]
struct User {
    id: i64,
    #[serde(default)]
    is_bot: bool,
    #[serde(default)]
    first_name: String,
    #[serde(default)]
    last_name: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

#[derive(Deserialize)]
struct Chat {
    id: i64,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct Entity {
    #[serde(rename = "type")]
    kind: String,
    offset: usize,
    length: usize,
    #[serde(default)]
    user: Option<User>,
}

/// `<chat_id>:<message_id>`, the platform id of a message (Telegram
/// numbers messages per chat).
pub fn message_platform_id(chat_id: i64, message_id: i64) -> String {
    format!("{chat_id}:{message_id}")
}

/// Reads a platform id back: `<chat_id>:<message_id>`, optionally followed
/// by an edit's marker (`:edited:<edit date>`), into the chat id and the
/// message id; `None` for anything else.
pub fn split_platform_id(platform_id: &str) -> Option<(i64, i64)> {
    let mut parts = platform_id.trim().splitn(3, ':');
    let chat = parts.next()?.parse().ok()?;
    let message = parts.next()?.parse().ok()?;
    match parts.next() {
        None => Some((chat, message)),
        Some(rest) if rest.starts_with("edited:") => Some((chat, message)),
        Some(_) => None,
    }
}

/// The `length` UTF-16 code units of `text` from `offset` (Telegram's
/// entity offsets count UTF-16 code units).
fn utf16_slice(text: &str, offset: usize, length: usize) -> Option<String> {
    let units: Vec<u16> = text.encode_utf16().collect();
    let end = offset.checked_add(length)?;
    units.get(offset..end).map(String::from_utf16_lossy)
}

fn same_username(written: &str, bot_username: &str) -> bool {
    written
        .trim_start_matches('@')
        .eq_ignore_ascii_case(bot_username.trim_start_matches('@'))
}

/// Whether a group message addresses the bot: a `mention` of its
/// `@username`, a `text_mention` of its id, or a command addressed to it
/// (`/start@bot`). Without entities, the text is searched for the
/// `@username`.
fn mentions_bot(message: &Message, bot_id: &str, bot_username: Option<&str>) -> bool {
    let (text, entities) = match (&message.text, &message.caption) {
        (Some(text), _) => (text.as_str(), &message.entities),
        (None, Some(caption)) => (caption.as_str(), &message.caption_entities),
        (None, None) => return false,
    };
    let username = bot_username
        .map(|u| u.trim().trim_start_matches('@'))
        .filter(|u| !u.is_empty());
    if entities.is_empty() {
        return username.is_some_and(|u| {
            text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '@'))
                .any(|word| word.starts_with('@') && same_username(word, u))
        });
    }
    entities.iter().any(|entity| match entity.kind.as_str() {
        "text_mention" => entity
            .user
            .as_ref()
            .is_some_and(|u| u.id.to_string() == bot_id),
        "mention" => username.is_some_and(|u| {
            utf16_slice(text, entity.offset, entity.length).is_some_and(|w| same_username(&w, u))
        }),
        "bot_command" => username.is_some_and(|u| {
            utf16_slice(text, entity.offset, entity.length)
                .and_then(|command| command.split_once('@').map(|(_, to)| to.to_owned()))
                .is_some_and(|to| same_username(&to, u))
        }),
        _ => false,
    })
}

fn author(user: &User) -> Author {
    let name = match user.last_name.as_deref().map(str::trim) {
        Some(last) if !last.is_empty() => format!("{} {last}", user.first_name.trim()),
        _ => user.first_name.trim().to_owned(),
    };
    Author {
        platform_user_id: user.id.to_string(),
        handle: user
            .username
            .as_deref()
            .map(|u| u.trim().trim_start_matches('@'))
            .filter(|u| !u.is_empty())
            .map(|u| format!("@{u}")),
        name: Some(name.trim().to_owned()).filter(|n| !n.is_empty()),
    }
}

fn unix_seconds(seconds: i64) -> Option<DateTime<Utc>> {
    Utc.timestamp_opt(seconds, 0).single()
}

/// One message (new or edited) of an Update: a citizen's message, or
/// `None` when it is not for us (counted as ignored by the caller).
fn message_inbound(
    message: Message,
    edited: bool,
    bot_id: &str,
    bot_username: Option<&str>,
) -> Result<Option<Inbound>, WebhookError> {
    let at = if edited { "edited_message" } else { "message" };
    let Some(from) = &message.from else {
        // Without an author it is not a citizen's (Telegram fills `from`
        // for every message outside channels).
        return Ok(None);
    };
    if from.is_bot || from.id.to_string() == bot_id.trim() {
        return Ok(None);
    }
    let has_content = message.text.is_some()
        || message.caption.is_some()
        || CONTENT_FIELDS.iter().any(|f| message.rest.contains_key(*f));
    if !has_content {
        // A service message: someone joined or left, a pin, a new title…
        return Ok(None);
    }
    let replied_to_bot = message
        .reply_to_message
        .as_ref()
        .and_then(|r| r.from.as_ref())
        .is_some_and(|u| u.id.to_string() == bot_id.trim());
    let kind = match message.chat.kind.as_str() {
        "private" => MessageKind::Direct,
        "group" | "supergroup" => {
            if replied_to_bot {
                MessageKind::Reply
            } else if mentions_bot(&message, bot_id.trim(), bot_username) {
                MessageKind::Mention
            } else {
                // Group chatter that does not address the bot (it sees it
                // when its privacy mode is off or it is a group admin).
                return Ok(None);
            }
        }
        // "channel": channel posts come as `channel_post`; nothing to
        // answer here.
        _ => return Ok(None),
    };
    let chat_id = message.chat.id;
    let (platform_id, written) = if edited {
        let edit_date = message.edit_date.unwrap_or(message.date);
        (
            format!(
                "{}:edited:{edit_date}",
                message_platform_id(chat_id, message.message_id)
            ),
            edit_date,
        )
    } else {
        (
            message_platform_id(chat_id, message.message_id),
            message.date,
        )
    };
    let sent_at = unix_seconds(written)
        .ok_or_else(|| malformed(format!("{at}.date {written} is not a valid time")))?;
    Ok(Some(Inbound {
        channel: CHANNEL,
        kind,
        platform_id,
        thread: chat_id.to_string(),
        in_reply_to: message
            .reply_to_message
            .as_ref()
            .map(|r| message_platform_id(chat_id, r.message_id)),
        author: author(from),
        text: message.text.or(message.caption).unwrap_or_default(),
        sent_at,
    }))
}

/// Reads one Update (a webhook delivery, already checked with
/// [`verify_secret`]) for the bot whose user id is `bot_id` and whose
/// username (from [`TelegramClient::get_me`]) is `bot_username`; returns
/// its `update_id` — sequential per bot, the key to deduplicate Telegram's
/// redeliveries on — and the citizens' messages.
///
/// - `message` in a private chat: a [`MessageKind::Direct`] message;
/// - `message` in a group or supergroup: a [`MessageKind::Reply`] when it
///   answers one of the bot's messages, a [`MessageKind::Mention`] when it
///   mentions the bot (an `@username` mention — only recognised when
///   `bot_username` is given —, a mention of its id, or a command
///   `/…@username`); other group messages are ignored;
/// - `edited_message`: the same, as a new message whose platform id is
///   `<chat_id>:<message_id>:edited:<edit_date>` and whose time is the
///   edit's.
///
/// The platform id is `<chat_id>:<message_id>`, the thread the chat id,
/// `in_reply_to` the `<chat_id>:<message_id>` of `reply_to_message`, the
/// author the sender (`@username` as handle, first and last name as name)
/// and the text the `text`, or the media's `caption`, or "" for media
/// without one (the media themselves are not carried).
///
/// Counted in [`Delivery::ignored`] and otherwise dropped: messages from
/// bots (the bot's own included), service messages (joins, pins…),
/// `channel_post` (the council's own channel), and every other kind of
/// update (`callback_query`, `my_chat_member`, `edited_channel_post`…).
///
/// A body that is not an Update (not JSON, no integer `update_id`, a
/// message without `message_id`, `chat` or `date`) is
/// [`WebhookError::Malformed`].
pub fn parse(
    raw_body: &[u8],
    bot_id: &str,
    bot_username: Option<&str>,
) -> Result<(i64, Delivery), WebhookError> {
    let update: Update = serde_json::from_slice(raw_body)
        .map_err(|e| malformed(format!("not a Telegram Update: {e}")))?;
    let mut delivery = Delivery::default();
    let messages = [(update.message, false), (update.edited_message, true)];
    let mut read = 0;
    for (message, edited) in messages {
        let Some(message) = message else { continue };
        read += 1;
        match message_inbound(message, edited, bot_id, bot_username)? {
            Some(inbound) => delivery.messages.push(inbound),
            None => delivery.ignored += 1,
        }
    }
    // Any other kind of update (only one is ever present).
    if read == 0 {
        delivery.ignored += update.other.values().filter(|v| !v.is_null()).count();
        if delivery.ignored == 0 {
            delivery.ignored = 1;
        }
    }
    Ok((update.update_id, delivery))
}

// ---------------------------------------------------------------------------
// The Bot API client
// ---------------------------------------------------------------------------

/// The bot a token belongs to, as `getMe` says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotInfo {
    /// The bot's user id (the account's external id, and [`parse`]'s
    /// `bot_id`).
    pub id: String,
    /// Its username, without `@` (for [`parse`] to see mentions).
    pub username: String,
    /// Whether it sees every group message (privacy mode off): otherwise it
    /// only gets commands, replies to it and mentions of it.
    pub can_read_all_group_messages: bool,
}

/// The user id of the bot a token belongs to: a bot token is
/// `<bot id>:<secret>`. `None` when the token does not look like one.
pub fn bot_id_from_token(token: &SecretString) -> Option<String> {
    let token = token.expose_secret();
    valid_bot_token(token).then(|| token.split(':').next().unwrap_or_default().to_owned())
}

/// Whether `token` is shaped like a bot token (`<digits>:<A-Z a-z 0-9 _
/// ->`), and so is safe as a URL path segment.
fn valid_bot_token(token: &str) -> bool {
    match token.split_once(':') {
        Some((id, secret)) => {
            !id.is_empty()
                && id.len() <= 20
                && id.bytes().all(|b| b.is_ascii_digit())
                && !secret.is_empty()
                && secret.bytes().all(secret_char)
        }
        None => false,
    }
}

/// What a call is for, to word its failures.
#[derive(Debug, Clone, Copy)]
enum Call<'a> {
    /// A reply to a citizen.
    Reply,
    /// A post on this channel (`@name` or id).
    Publish(&'a str),
    /// `getMe`, `setWebhook`, `deleteWebhook`.
    Setup,
}

/// Telegram's answer to a failed call:
/// `{"ok":false,"error_code","description","parameters"}`.
#[derive(Debug, Clone)]
struct ApiError {
    code: i64,
    description: String,
    retry_after: Option<i64>,
    migrate_to_chat_id: Option<i64>,
}

enum CallError {
    /// Telegram answered, refusing.
    Api(ApiError),
    /// No usable answer (network, timeout, not the Bot API).
    Other(SendError),
}

#[derive(Deserialize)]
struct Answer {
    ok: bool,
    #[serde(default)]
    result: Value,
    #[serde(default)]
    error_code: Option<i64>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    parameters: Option<ResponseParameters>,
}

#[derive(Deserialize)]
struct ResponseParameters {
    #[serde(default)]
    retry_after: Option<i64>,
    #[serde(default)]
    migrate_to_chat_id: Option<i64>,
}

fn temporary(reason: impl Into<String>) -> SendError {
    SendError::Temporary {
        network: CHANNEL,
        reason: reason.into(),
    }
}

fn rejected(reason: impl Into<String>) -> SendError {
    SendError::Rejected {
        network: CHANNEL,
        reason: reason.into(),
    }
}

/// At most [`MAX_REASON_LENGTH`] characters of what Telegram said, with
/// the token removed should it ever appear.
fn said(description: &str, token: &str) -> String {
    let text = if token.is_empty() {
        description.to_owned()
    } else {
        description.replace(token, "[redacted]")
    };
    let mut out: String = text.chars().take(MAX_REASON_LENGTH).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

/// The seconds of "Too Many Requests: retry after N".
fn retry_after_in(description: &str) -> Option<i64> {
    let lower = description.to_ascii_lowercase();
    let (_, after) = lower.split_once("retry after")?;
    after
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// Maps Telegram's refusal to a [`SendError`] an agent or admin can act
/// on.
fn api_failure(error: &ApiError, call: Call<'_>, now: DateTime<Utc>, token: &str) -> SendError {
    let description = said(&error.description, token);
    let lower = error.description.to_ascii_lowercase();
    if error.code == 429 || error.retry_after.is_some() {
        let seconds = error
            .retry_after
            .or_else(|| retry_after_in(&error.description))
            .unwrap_or(DEFAULT_RETRY_AFTER_SECS)
            .max(1);
        return SendError::RateLimited {
            network: CHANNEL,
            until: now + Duration::seconds(seconds),
        };
    }
    // 401: the token was revoked (or regenerated with @BotFather); 404: the
    // Bot API's answer to a token it cannot read.
    if error.code == 401 || error.code == 404 {
        return SendError::TokenExpired { network: CHANNEL };
    }
    if error.code >= 500 {
        return temporary(format!("Telegram answered {}: {description}", error.code));
    }
    let channel_permission = |channel: &str| SendError::PermissionMissing {
        network: CHANNEL,
        permission: format!(
            "\"Post messages\" for the bot, as an administrator of the channel {channel}"
        ),
    };
    if lower.contains("bot was blocked by the user") {
        return rejected(
            "the citizen blocked the bot; they must unblock it and write to it again before a reply can reach them: answer on another channel meanwhile",
        );
    }
    if lower.contains("can't initiate conversation")
        || lower.contains("can't send messages to bots")
    {
        return rejected(
            "the citizen has not started a chat with the bot; a bot cannot write first, so they must write to it (press Start) before it can answer them",
        );
    }
    if lower.contains("user is deactivated") {
        return rejected("the citizen's Telegram account was deleted: answer on another channel");
    }
    if lower.contains("upgraded to a supergroup") {
        let new_id = error
            .migrate_to_chat_id
            .map(|id| format!(" (its new id is {id})"))
            .unwrap_or_default();
        return rejected(format!(
            "the group became a supergroup{new_id}; the citizen's next message there will arrive from the new chat, answer that one"
        ));
    }
    let rights = lower.contains("not enough rights")
        || lower.contains("need administrator rights")
        || lower.contains("not a member")
        || lower.contains("bot was kicked");
    if lower.contains("chat not found") {
        return match call {
            Call::Publish(channel) => rejected(format!(
                "the channel {channel} does not exist or the bot is not in it: check its name and add the bot to it as an administrator who can post messages"
            )),
            Call::Reply => rejected(
                "Telegram no longer knows this chat (it was deleted, or the bot was removed from the group): answer on another channel",
            ),
            Call::Setup => rejected(description),
        };
    }
    if rights {
        return match call {
            Call::Publish(channel) => channel_permission(channel),
            Call::Reply | Call::Setup => rejected(format!(
                "the bot may not write in this chat (it was removed or restricted there; Telegram said: {description})"
            )),
        };
    }
    if lower.contains("message is too long") {
        return rejected(format!(
            "the text is longer than the {MAX_MESSAGE_LENGTH} characters Telegram allows: shorten it"
        ));
    }
    if lower.contains("message text is empty") {
        return rejected("the text is empty: write something to send");
    }
    if (400..500).contains(&error.code) {
        return rejected(description);
    }
    temporary(format!("unexpected answer {}: {description}", error.code))
}

/// The `chat_id` to send to: a number, or a public `@username` as is.
fn chat_value(chat: &str) -> Option<Value> {
    let chat = chat.trim();
    if let Ok(id) = chat.parse::<i64>() {
        return Some(json!(id));
    }
    let name = chat.strip_prefix('@')?;
    let valid = (4..=32).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    valid.then(|| json!(chat))
}

fn check_text(text: &str) -> Result<(), SendError> {
    let length = text.chars().count();
    if length > MAX_MESSAGE_LENGTH {
        return Err(rejected(format!(
            "the text has {length} characters; Telegram allows {MAX_MESSAGE_LENGTH} in a message: shorten it or split it"
        )));
    }
    if text.trim().is_empty() {
        return Err(rejected("the text is empty: write something to send"));
    }
    Ok(())
}

/// A client for the Bot API at a base URL ([`API_BASE`], or a local fake),
/// calling as the bot whose token is [`Credentials::access_token`]. The
/// token goes in the URL path (`{base}/bot<token>/<method>`), so errors
/// are reported without their URL and nothing here logs one.
#[derive(Debug, Clone)]
pub struct TelegramClient {
    base: String,
    http: reqwest::Client,
}

impl TelegramClient {
    /// A client for the API at `base` (e.g. [`API_BASE`]; a trailing `/` is
    /// ignored), over `http` (whose timeouts apply).
    pub fn new(base: impl Into<String>, http: reqwest::Client) -> Self {
        let mut base = base.into();
        while base.ends_with('/') {
            base.pop();
        }
        TelegramClient { base, http }
    }

    /// Calls `method` with `body` and returns Telegram's `result`.
    async fn call(
        &self,
        creds: &Credentials,
        method: &str,
        body: &Value,
    ) -> Result<Value, CallError> {
        let token = creds.access_token.expose_secret();
        if !valid_bot_token(token) {
            // Not a bot token at all (and unsafe in a URL path): link again.
            return Err(CallError::Other(SendError::TokenExpired {
                network: CHANNEL,
            }));
        }
        let response = self
            .http
            .post(format!("{}/bot{token}/{method}", self.base))
            .json(body)
            .send()
            .await
            .map_err(|e| CallError::Other(transport(method, e)))?;
        let status = response.status();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| CallError::Other(transport(method, e)))?;
        match serde_json::from_slice::<Answer>(&bytes) {
            Ok(answer) if answer.ok => Ok(answer.result),
            Ok(answer) => {
                let parameters = answer.parameters;
                let error = ApiError {
                    code: answer
                        .error_code
                        .unwrap_or_else(|| i64::from(status.as_u16())),
                    description: answer.description.unwrap_or_default(),
                    retry_after: parameters.as_ref().and_then(|p| p.retry_after),
                    migrate_to_chat_id: parameters.as_ref().and_then(|p| p.migrate_to_chat_id),
                };
                tracing::warn!(
                    network = CHANNEL,
                    account = %creds.external_id,
                    method,
                    status = status.as_u16(),
                    code = error.code,
                    "the Bot API refused a call"
                );
                Err(CallError::Api(error))
            }
            Err(_) if status.is_success() => Err(CallError::Other(temporary(format!(
                "{method} answered HTTP {} with a body that is not a Bot API answer",
                status.as_u16()
            )))),
            Err(_) => Err(CallError::Other(temporary(format!(
                "{method} answered HTTP {} without a Bot API answer",
                status.as_u16()
            )))),
        }
    }

    /// [`TelegramClient::call`], failures worded for `call`.
    async fn request(
        &self,
        creds: &Credentials,
        method: &str,
        body: &Value,
        call: Call<'_>,
        now: DateTime<Utc>,
    ) -> Result<Value, SendError> {
        self.call(creds, method, body).await.map_err(|e| match e {
            CallError::Api(error) => {
                api_failure(&error, call, now, creds.access_token.expose_secret())
            }
            CallError::Other(error) => error,
        })
    }

    /// Checks a token (`getMe`) when an account is linked: the bot it
    /// belongs to. A revoked or mistyped token is
    /// [`SendError::TokenExpired`].
    pub async fn get_me(&self, creds: &Credentials) -> Result<BotInfo, SendError> {
        let result = self
            .request(creds, "getMe", &json!({}), Call::Setup, Utc::now())
            .await?;
        let id = result.get("id").and_then(Value::as_i64);
        let username = result.get("username").and_then(Value::as_str);
        match (id, username) {
            (Some(id), Some(username)) => Ok(BotInfo {
                id: id.to_string(),
                username: username.to_owned(),
                can_read_all_group_messages: result
                    .get("can_read_all_group_messages")
                    .and_then(Value::as_bool)
                    .unwrap_or(false),
            }),
            _ => Err(temporary(
                "getMe answered without the bot's id and username",
            )),
        }
    }

    /// Points the bot's webhook at `url` (`setWebhook`), with
    /// `secret_token` (sent back in [`SECRET_HEADER`] with every delivery),
    /// `allowed_updates` (usually [`ALLOWED_UPDATES`]) and
    /// `drop_pending_updates: false`, so nothing written meanwhile is lost.
    ///
    /// A secret Telegram would refuse is [`SendError::Rejected`] without
    /// calling; so is Telegram's refusal of the URL ("bad webhook: An HTTPS
    /// URL must be provided…"), with its words.
    pub async fn set_webhook(
        &self,
        creds: &Credentials,
        url: &str,
        secret_token: &SecretString,
        allowed_updates: &[&str],
    ) -> Result<(), SendError> {
        if !valid_secret_token(secret_token.expose_secret()) {
            return Err(rejected(format!(
                "the webhook secret must be 1 to {MAX_SECRET_TOKEN_LENGTH} characters from A-Z, a-z, 0-9, _ and -: generate a new one"
            )));
        }
        let body = json!({
            "url": url,
            "secret_token": secret_token.expose_secret(),
            "allowed_updates": allowed_updates,
            "drop_pending_updates": false,
        });
        self.request(creds, "setWebhook", &body, Call::Setup, Utc::now())
            .await
            .map(|_| ())
    }

    /// Removes the bot's webhook (`deleteWebhook`, keeping pending
    /// updates), when its account is unlinked.
    pub async fn delete_webhook(&self, creds: &Credentials) -> Result<(), SendError> {
        let body = json!({ "drop_pending_updates": false });
        self.request(creds, "deleteWebhook", &body, Call::Setup, Utc::now())
            .await
            .map(|_| ())
    }

    /// Sends `sendMessage` and reads the message created.
    async fn send_message(
        &self,
        creds: &Credentials,
        body: &Value,
        call: Call<'_>,
        now: DateTime<Utc>,
    ) -> Result<Sent, SendError> {
        let result = self.request(creds, "sendMessage", body, call, now).await?;
        sent_message(&result)
    }

    /// Sends a reply with `sendMessage`. Where it goes:
    /// - [`ReplyTarget::Public`] `{ in_reply_to: "<chat_id>:<message_id>" }`
    ///   (a group mention or reply; an edit's id `…:edited:<date>` is
    ///   answered as the message): to `chat_id`, quoting the message with
    ///   `reply_parameters: {message_id, allow_sending_without_reply:
    ///   true}` — so a deleted message does not stop the answer;
    /// - [`ReplyTarget::Direct`] `{ recipient }`: a private chat, whose id is
    ///   the citizen's user id; `recipient` may also be a
    ///   `<chat_id>:<message_id>`, then quoted as above. Telegram has no
    ///   messaging window: `last_inbound_at` is not looked at.
    ///
    /// A text longer than [`MAX_MESSAGE_LENGTH`] characters, or empty, is
    /// [`SendError::Rejected`] without calling Telegram. Returns the new
    /// message's `<chat_id>:<message_id>`.
    ///
    /// Failures: 429 is [`SendError::RateLimited`] until `reply.now` plus
    /// `retry_after`; 401 [`SendError::TokenExpired`]; a citizen who blocked
    /// the bot or never started it, and other refusals, are
    /// [`SendError::Rejected`] saying what to do; 5xx, timeouts and
    /// unreachable servers [`SendError::Temporary`]. A Bot API server that
    /// still answers "message to be replied not found" gets the reply again
    /// without the quote.
    pub async fn send(
        &self,
        creds: &Credentials,
        reply: &OutboundReply,
    ) -> Result<Sent, SendError> {
        let (chat_id, quoted) = match &reply.target {
            ReplyTarget::Public { in_reply_to } => {
                let (chat, message) = split_platform_id(in_reply_to).ok_or_else(|| {
                    rejected(format!(
                        "{in_reply_to:?} is not a Telegram message id (<chat_id>:<message_id>)"
                    ))
                })?;
                (chat, Some(message))
            }
            ReplyTarget::Direct { recipient, .. } => match split_platform_id(recipient) {
                Some((chat, message)) => (chat, Some(message)),
                None => {
                    let chat = recipient.trim().parse::<i64>().map_err(|_| {
                        rejected(format!("{recipient:?} is not a Telegram chat or user id"))
                    })?;
                    (chat, None)
                }
            },
        };
        check_text(&reply.text)?;
        let mut body = json!({ "chat_id": chat_id, "text": reply.text });
        if let (Some(message_id), Value::Object(fields)) = (quoted, &mut body) {
            fields.insert(
                "reply_parameters".to_owned(),
                json!({ "message_id": message_id, "allow_sending_without_reply": true }),
            );
        }
        match self.call(creds, "sendMessage", &body).await {
            Ok(result) => sent_message(&result),
            Err(CallError::Api(error))
                if error
                    .description
                    .to_ascii_lowercase()
                    .contains("message to be replied not found") =>
            {
                if let Value::Object(fields) = &mut body {
                    fields.remove("reply_parameters");
                }
                self.send_message(creds, &body, Call::Reply, reply.now)
                    .await
            }
            Err(CallError::Api(error)) => Err(api_failure(
                &error,
                Call::Reply,
                reply.now,
                creds.access_token.expose_secret(),
            )),
            Err(CallError::Other(error)) => Err(error),
        }
    }

    /// Publishes an announcement on a channel where the bot is an
    /// administrator (`channel`: its `@username`, or its `-100…` id):
    /// `sendMessage` with the text and, if any, the link on its own line
    /// (unless the text has it), its preview shown
    /// (`link_preview_options: {is_disabled: false, url: link}`). An image
    /// is ignored (`sendMessage` has none). Returns the post's
    /// `<chat_id>:<message_id>`.
    ///
    /// A channel that does not exist, or lacks the bot, is
    /// [`SendError::Rejected`]; a bot that may not post there is
    /// [`SendError::PermissionMissing`] (an admin of the channel must make
    /// it an administrator who can post messages). Too long a text is
    /// refused without calling.
    pub async fn publish(
        &self,
        creds: &Credentials,
        channel: &str,
        post: &Post,
    ) -> Result<Sent, SendError> {
        let chat = chat_value(channel).ok_or_else(|| {
            rejected(format!(
                "{channel:?} is not a Telegram channel: give its @username or its numeric id"
            ))
        })?;
        let link = post
            .link
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty());
        let text = match link {
            Some(link) if !post.text.contains(link) => {
                format!("{}\n\n{link}", post.text.trim_end())
            }
            _ => post.text.clone(),
        };
        check_text(&text)?;
        let mut body = json!({ "chat_id": chat, "text": text });
        if let (Some(link), Value::Object(fields)) = (link, &mut body) {
            fields.insert(
                "link_preview_options".to_owned(),
                json!({ "is_disabled": false, "url": link }),
            );
        }
        self.send_message(creds, &body, Call::Publish(channel.trim()), Utc::now())
            .await
    }
}

/// A network failure, without the URL (it holds the token).
fn transport(method: &str, e: reqwest::Error) -> SendError {
    let reason = if e.is_timeout() {
        format!("{method} timed out")
    } else if e.is_connect() {
        format!("{method} could not connect")
    } else {
        format!("{method} failed: {}", e.without_url())
    };
    tracing::warn!(network = CHANNEL, %reason, "Bot API call failed");
    temporary(reason)
}

/// The `<chat_id>:<message_id>` of the Message `sendMessage` returned.
fn sent_message(result: &Value) -> Result<Sent, SendError> {
    let chat = result
        .get("chat")
        .and_then(|c| c.get("id"))
        .and_then(Value::as_i64);
    let message = result.get("message_id").and_then(Value::as_i64);
    match (chat, message) {
        (Some(chat), Some(message)) => Ok(Sent {
            platform_id: message_platform_id(chat, message),
        }),
        _ => Err(temporary(
            "sendMessage answered without the message's chat and id; it may have been sent",
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const BOT: &str = "7000000001";
    const BOT_NAME: &str = "AytoVillanuevaBot";

    /// The Update of SOCIAL_APIS.md §5, byte for byte.
    const EXAMPLE: &str = r#"{"update_id":5,"message":{"message_id":5,"from":{"id":111111,"first_name":"Test Firstname","username":"Testusername"},"chat":{"id":111111,"type":"private"},"date":1441645532,"text":"Hello, I need your Help"}}"#;

    fn parse_one(body: &Value) -> (i64, Delivery) {
        parse(body.to_string().as_bytes(), BOT, Some(BOT_NAME)).unwrap()
    }

    fn group_message(text: &str, entities: Value) -> Value {
        json!({
            "update_id": 900,
            "message": {
                "message_id": 77,
                "from": {"id": 222, "is_bot": false, "first_name": "Ana", "last_name": "Ruiz"},
                "chat": {"id": -1001234567890_i64, "title": "Vecinos del centro", "type": "supergroup"},
                "date": 1700000000,
                "text": text,
                "entities": entities
            }
        })
    }

    #[test]
    fn parses_the_documented_update_exactly() {
        let (update_id, delivery) = parse(EXAMPLE.as_bytes(), BOT, Some(BOT_NAME)).unwrap();
        assert_eq!(update_id, 5);
        assert_eq!(delivery.ignored, 0);
        assert!(delivery.removed.is_empty());
        assert_eq!(
            delivery.messages,
            vec![Inbound {
                channel: "telegram",
                kind: MessageKind::Direct,
                platform_id: "111111:5".into(),
                thread: "111111".into(),
                in_reply_to: None,
                author: Author {
                    platform_user_id: "111111".into(),
                    handle: Some("@Testusername".into()),
                    name: Some("Test Firstname".into()),
                },
                text: "Hello, I need your Help".into(),
                sent_at: Utc.timestamp_opt(1_441_645_532, 0).unwrap(),
            }]
        );
        // Without the bot's username a private message reads the same.
        assert_eq!(
            parse(EXAMPLE.as_bytes(), BOT, None)
                .unwrap()
                .1
                .messages
                .len(),
            1
        );
    }

    #[test]
    fn an_edit_is_a_new_message() {
        let body = json!({
            "update_id": 6,
            "edited_message": {
                "message_id": 5,
                "from": {"id": 111111, "is_bot": false, "first_name": "Test", "last_name": "Citizen"},
                "chat": {"id": 111111, "first_name": "Test", "type": "private"},
                "date": 1441645532,
                "edit_date": 1441645600,
                "text": "Hello, I need your help (edited)",
                "reply_to_message": {"message_id": 4, "from": {"id": 7000000001_i64, "is_bot": true, "first_name": "Ayto"},
                                     "chat": {"id": 111111, "type": "private"}, "date": 1441645500, "text": "¿En qué calle?"}
            }
        });
        let (update_id, delivery) = parse_one(&body);
        assert_eq!(update_id, 6);
        let message = &delivery.messages[0];
        assert_eq!(message.kind, MessageKind::Direct);
        assert_eq!(message.platform_id, "111111:5:edited:1441645600");
        assert_eq!(message.in_reply_to.as_deref(), Some("111111:4"));
        assert_eq!(
            message.sent_at,
            Utc.timestamp_opt(1_441_645_600, 0).unwrap()
        );
        assert_eq!(message.author.name.as_deref(), Some("Test Citizen"));
        assert_eq!(message.author.handle, None);
        assert_eq!(split_platform_id(&message.platform_id), Some((111111, 5)));
    }

    #[test]
    fn a_group_message_counts_only_when_it_addresses_the_bot() {
        // "@AytoVillanuevaBot" after an emoji: offsets are UTF-16 units.
        let text = "👋 @aytovillanuevabot la farola de la plaza no funciona";
        let mention = json!([{"type": "mention", "offset": 3, "length": 18}]);
        let (_, delivery) = parse_one(&group_message(text, mention.clone()));
        let message = &delivery.messages[0];
        assert_eq!(message.kind, MessageKind::Mention);
        assert_eq!(message.platform_id, "-1001234567890:77");
        assert_eq!(message.thread, "-1001234567890");
        assert_eq!(message.text, text);
        assert_eq!(message.author.name.as_deref(), Some("Ana Ruiz"));
        // Without the username the mention cannot be told apart.
        let (_, delivery) = parse(
            group_message(text, mention).to_string().as_bytes(),
            BOT,
            None,
        )
        .unwrap();
        assert_eq!((delivery.messages.len(), delivery.ignored), (0, 1));

        // Another account mentioned, or no one: group chatter, ignored.
        let other = json!([{"type": "mention", "offset": 0, "length": 6}]);
        let (_, delivery) = parse_one(&group_message("@otro hola", other));
        assert_eq!((delivery.messages.len(), delivery.ignored), (0, 1));
        let (_, delivery) = parse_one(&group_message("qué calor hace", json!([])));
        assert_eq!((delivery.messages.len(), delivery.ignored), (0, 1));

        // A command addressed to the bot, and a text_mention of its id.
        let command = json!([{"type": "bot_command", "offset": 0, "length": 24}]);
        let (_, delivery) = parse_one(&group_message("/start@AytoVillanuevaBot", command));
        assert_eq!(delivery.messages[0].kind, MessageKind::Mention);
        let by_id = json!([{"type": "text_mention", "offset": 0, "length": 4,
                           "user": {"id": 7000000001_i64, "is_bot": true, "first_name": "Ayto"}}]);
        let (_, delivery) = parse_one(&group_message("Ayto, ¿abrís el lunes?", by_id));
        assert_eq!(delivery.messages[0].kind, MessageKind::Mention);
    }

    #[test]
    fn a_group_reply_to_the_bot_is_a_reply() {
        let mut body = group_message("Sigue sin arreglar", json!([]));
        body["message"]["reply_to_message"] = json!({
            "message_id": 70,
            "from": {"id": 7000000001_i64, "is_bot": true, "first_name": "Ayto", "username": BOT_NAME},
            "chat": {"id": -1001234567890_i64, "type": "supergroup"},
            "date": 1699990000,
            "text": "Gracias, lo revisamos"
        });
        let (_, delivery) = parse_one(&body);
        let message = &delivery.messages[0];
        assert_eq!(message.kind, MessageKind::Reply);
        assert_eq!(message.in_reply_to.as_deref(), Some("-1001234567890:70"));
    }

    #[test]
    fn messages_from_bots_are_dropped() {
        let mut body: Value = serde_json::from_str(EXAMPLE).unwrap();
        body["message"]["from"]["is_bot"] = json!(true);
        let (_, delivery) = parse_one(&body);
        assert_eq!((delivery.messages.len(), delivery.ignored), (0, 1));

        // Our own bot, even without is_bot.
        let mut body: Value = serde_json::from_str(EXAMPLE).unwrap();
        body["message"]["from"]["id"] = json!(7_000_000_001_i64);
        let (_, delivery) = parse_one(&body);
        assert_eq!((delivery.messages.len(), delivery.ignored), (0, 1));
    }

    #[test]
    fn channel_posts_callbacks_and_service_messages_are_ignored() {
        let channel_post = json!({
            "update_id": 10,
            "channel_post": {"message_id": 3, "sender_chat": {"id": -1009, "type": "channel", "title": "Avisos"},
                             "chat": {"id": -1009, "type": "channel", "title": "Avisos"}, "date": 1, "text": "Aviso"}
        });
        let callback = json!({
            "update_id": 11,
            "callback_query": {"id": "4382bfdwdsb323b2d9", "from": {"id": 111111, "is_bot": false, "first_name": "A"},
                               "chat_instance": "-1", "data": "ok"}
        });
        let joined = json!({
            "update_id": 12,
            "message": {"message_id": 9, "from": {"id": 333, "is_bot": false, "first_name": "Luis"},
                        "chat": {"id": -55, "type": "group", "title": "Barrio"}, "date": 1,
                        "new_chat_members": [{"id": 333, "is_bot": false, "first_name": "Luis"}]}
        });
        for (body, id) in [(channel_post, 10), (callback, 11), (joined, 12)] {
            let (update_id, delivery) = parse_one(&body);
            assert_eq!(update_id, id);
            assert!(delivery.messages.is_empty(), "{body}");
            assert_eq!(delivery.ignored, 1, "{body}");
        }
    }

    #[test]
    fn media_carry_their_caption_or_no_text() {
        let body = json!({
            "update_id": 13,
            "message": {"message_id": 8, "from": {"id": 111111, "is_bot": false, "first_name": "A"},
                        "chat": {"id": 111111, "type": "private"}, "date": 1700000000,
                        "photo": [{"file_id": "AgAD", "file_unique_id": "AQAD", "width": 90, "height": 90}],
                        "caption": "Así está la acera"}
        });
        assert_eq!(parse_one(&body).1.messages[0].text, "Así está la acera");
        let body = json!({
            "update_id": 14,
            "message": {"message_id": 9, "from": {"id": 111111, "is_bot": false, "first_name": "A"},
                        "chat": {"id": 111111, "type": "private"}, "date": 1700000000,
                        "voice": {"file_id": "AwAD", "file_unique_id": "AgAD", "duration": 3}}
        });
        let (_, delivery) = parse_one(&body);
        assert_eq!(delivery.messages[0].text, "");
    }

    #[test]
    fn garbage_is_malformed() {
        for body in [
            &b"not json"[..],
            b"",
            b"[]",
            b"{}",
            b"{\"update_id\":\"5\"}",
            b"{\"update_id\":5,\"message\":{\"message_id\":1}}",
            b"{\"update_id\":5,\"message\":{\"message_id\":1,\"chat\":{\"id\":1,\"type\":\"private\"}}}",
            b"{\"update_id\":5,\"message\":[]}",
        ] {
            assert!(
                matches!(
                    parse(body, BOT, Some(BOT_NAME)),
                    Err(WebhookError::Malformed {
                        network: "telegram",
                        ..
                    })
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn the_secret_header_is_checked() {
        let secret = SecretString::from("s3cr3t-Token_value".to_owned());
        assert_eq!(verify_secret(&secret, Some("s3cr3t-Token_value")), Ok(()));
        for wrong in [
            None,
            Some(""),
            Some("s3cr3t-Token_valuf"),
            Some("s3cr3t-Token_value "),
            Some("s3cr3t"),
            Some("S3CR3T-TOKEN_VALUE"),
        ] {
            assert_eq!(
                verify_secret(&secret, wrong),
                Err(WebhookError::BadSignature),
                "{wrong:?}"
            );
        }
        // An account without a secret accepts nothing, not even "".
        let empty = SecretString::from(String::new());
        assert_eq!(
            verify_secret(&empty, Some("")),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn new_secret_tokens_are_valid_and_differ() {
        let a = new_secret_token().unwrap();
        let b = new_secret_token().unwrap();
        assert!(a.len() >= 32 && valid_secret_token(&a), "{a}");
        assert_ne!(a, b);
        assert!(valid_secret_token("a"));
        assert!(valid_secret_token(&"A-z_9".repeat(51)));
        assert!(!valid_secret_token(""));
        assert!(!valid_secret_token(&"a".repeat(257)));
        assert!(!valid_secret_token("123456:ABC"));
        assert!(!valid_secret_token("ñ"));
    }

    #[test]
    fn platform_ids_map_to_chat_and_message() {
        assert_eq!(split_platform_id("111111:5"), Some((111111, 5)));
        assert_eq!(
            split_platform_id("-1001234567890:77:edited:1700000000"),
            Some((-1_001_234_567_890, 77))
        );
        assert_eq!(split_platform_id("111111"), None);
        assert_eq!(split_platform_id("a:b"), None);
        assert_eq!(split_platform_id("1:2:3"), None);
        assert_eq!(
            bot_id_from_token(&SecretString::from("7000000001:AAH-x_y".to_owned())).as_deref(),
            Some(BOT)
        );
        assert_eq!(
            bot_id_from_token(&SecretString::from("no/token".to_owned())),
            None
        );
    }

    fn api(code: i64, description: &str, retry_after: Option<i64>) -> ApiError {
        ApiError {
            code,
            description: description.into(),
            retry_after,
            migrate_to_chat_id: None,
        }
    }

    #[test]
    fn errors_map_to_what_an_agent_or_admin_can_do() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let map = |e: ApiError, call| api_failure(&e, call, now, "1:tok");
        assert_eq!(
            map(
                api(429, "Too Many Requests: retry after 5", Some(5)),
                Call::Reply
            ),
            SendError::RateLimited {
                network: "telegram",
                until: now + Duration::seconds(5)
            }
        );
        assert_eq!(
            map(
                api(429, "Too Many Requests: retry after 17", None),
                Call::Reply
            ),
            SendError::RateLimited {
                network: "telegram",
                until: now + Duration::seconds(17)
            }
        );
        assert_eq!(
            map(api(401, "Unauthorized", None), Call::Reply),
            SendError::TokenExpired {
                network: "telegram"
            }
        );
        assert!(matches!(
            map(api(403, "Forbidden: bot was blocked by the user", None), Call::Reply),
            SendError::Rejected { reason, .. } if reason.contains("unblock")
        ));
        assert!(matches!(
            map(api(403, "Forbidden: bot can't initiate conversation with a user", None), Call::Reply),
            SendError::Rejected { reason, .. } if reason.contains("write to it")
        ));
        assert!(matches!(
            map(api(400, "Bad Request: chat not found", None), Call::Publish("@ayto_avisos")),
            SendError::Rejected { reason, .. } if reason.contains("@ayto_avisos") && reason.contains("administrator")
        ));
        assert!(matches!(
            map(api(403, "Forbidden: not enough rights to send text messages to the chat", None), Call::Publish("@ayto_avisos")),
            SendError::PermissionMissing { permission, .. } if permission.contains("@ayto_avisos")
        ));
        assert!(matches!(
            map(
                api(
                    400,
                    "Bad Request: need administrator rights in the channel chat",
                    None
                ),
                Call::Publish("@ayto_avisos")
            ),
            SendError::PermissionMissing { .. }
        ));
        assert!(matches!(
            map(api(400, "Bad Request: can't parse entities: token 1:tok", None), Call::Reply),
            SendError::Rejected { reason, .. } if reason.contains("can't parse entities") && !reason.contains("1:tok")
        ));
        let error = map(api(502, "Bad Gateway", None), Call::Reply);
        assert!(matches!(error, SendError::Temporary { .. }));
        assert!(error.is_retryable());
    }

    fn creds() -> Credentials {
        Credentials {
            external_id: BOT.into(),
            access_token: SecretString::from("7000000001:AAH-secret_token".to_owned()),
            signing_secret: SecretString::from("webhook-secret".to_owned()),
            verify_token: SecretString::from(String::new()),
            human_agent: false,
        }
    }

    #[tokio::test]
    async fn too_long_or_misaddressed_texts_are_refused_before_calling() {
        // Nothing listens on this port: a call would be Temporary.
        let client = TelegramClient::new("http://127.0.0.1:9/", reqwest::Client::new());
        let reply = |target: ReplyTarget, text: String| OutboundReply {
            target,
            text,
            now: Utc::now(),
        };
        let public = ReplyTarget::Public {
            in_reply_to: "111111:5".into(),
        };
        let too_long = client
            .send(&creds(), &reply(public.clone(), "ñ".repeat(4097)))
            .await;
        assert!(
            matches!(&too_long, Err(SendError::Rejected { reason, .. }) if reason.contains("4097") && reason.contains("4096")),
            "{too_long:?}"
        );
        assert!(matches!(
            client.send(&creds(), &reply(public, "  ".into())).await,
            Err(SendError::Rejected { .. })
        ));
        let bad_target = ReplyTarget::Public {
            in_reply_to: "m_123".into(),
        };
        assert!(matches!(
            client
                .send(&creds(), &reply(bad_target, "hola".into()))
                .await,
            Err(SendError::Rejected { .. })
        ));
        let post = Post {
            text: "a".repeat(4090),
            link: Some("https://ayto.example/aviso".into()),
            ..Post::default()
        };
        assert!(matches!(
            client.publish(&creds(), "@ayto_avisos", &post).await,
            Err(SendError::Rejected { .. })
        ));
        assert!(matches!(
            client
                .publish(&creds(), "ayto avisos", &Post::default())
                .await,
            Err(SendError::Rejected { .. })
        ));
        // 4096 characters pass the check (and then fail to connect).
        let ok_length = client
            .send(
                &creds(),
                &reply(
                    ReplyTarget::Direct {
                        recipient: "111111".into(),
                        last_inbound_at: Utc::now(),
                    },
                    "ñ".repeat(4096),
                ),
            )
            .await;
        assert!(
            matches!(&ok_length, Err(SendError::Temporary { reason, .. }) if !reason.contains("AAH")),
            "{ok_length:?}"
        );
    }

    #[tokio::test]
    async fn a_token_that_is_not_a_bot_token_is_never_put_in_a_url() {
        let client = TelegramClient::new("http://127.0.0.1:9", reqwest::Client::new());
        let mut bad = creds();
        bad.access_token = SecretString::from("../../getMe?x=".to_owned());
        assert_eq!(
            client.get_me(&bad).await,
            Err(SendError::TokenExpired {
                network: "telegram"
            })
        );
    }
}
