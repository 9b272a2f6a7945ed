//! The X connector (API v2 for calls, Account Activity API for webhooks).
//!
//! What it does:
//! - answers X's CRC challenge ([`crc_response`]) and checks the
//!   `x-twitter-webhooks-signature` of every delivery over the raw bytes
//!   ([`verify_signature`]), both with the app's consumer secret;
//! - turns an Account Activity delivery into the citizens' messages
//!   ([`parse`]): mentions and replies (`tweet_create_events`) and direct
//!   messages (`direct_message_events`), dropping the account's own tweets
//!   and DMs, retweets and every other kind of event;
//! - reads the mentions timeline for accounts without webhook access
//!   ([`parse_mentions`], [`XClient::mentions`]);
//! - sends replies, DMs and announcements with the account's OAuth 2.0 user
//!   token ([`XClient`]), and says why a send failed in [`SendError`]'s
//!   terms, reading X's rate-limit headers ([`rate_limit`]).
//!
//! What it must not do: keep state, write anything, read the clock where the
//! caller gives the time, or put a token in an error, a log line or a
//! `Debug` output. Its only I/O is [`XClient`]'s HTTP calls, to the base URL
//! it is given (the real API or a local fake).

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Duration, TimeZone as _, Utc};
use hmac::{Hmac, KeyInit as _, Mac as _};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret as _, SecretString};
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;
use subtle::ConstantTimeEq as _;
use ventanilla_social_domain::inbound::{Author, MessageKind};

use crate::connector::{
    Credentials, Delivery, Inbound, OutboundReply, Post, ReplyTarget, SendError, Sent, WebhookError,
};

/// The channel name of X messages.
pub const CHANNEL: &str = "x";

/// The real API's base URL.
pub const API_BASE: &str = "https://api.x.com";

/// The header carrying a webhook delivery's signature.
pub const SIGNATURE_HEADER: &str = "x-twitter-webhooks-signature";

/// The longest post X accepts, in weighted characters (see
/// [`weighted_length`]).
pub const MAX_POST_LENGTH: usize = 280;

/// The longest direct message X accepts, in characters.
pub const MAX_DM_LENGTH: usize = 10_000;

/// How long to wait after a 429 that carries no reset header: X's usual
/// window.
const DEFAULT_RATE_WINDOW: Duration = Duration::minutes(15);

/// The fields the mentions poll asks for (the default is only `id,text`).
const MENTION_TWEET_FIELDS: &str =
    "conversation_id,created_at,author_id,in_reply_to_user_id,referenced_tweets";

/// X's epoch for its snowflake ids, in Unix milliseconds.
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

/// The longest error text from X kept in a [`SendError`] reason.
const MAX_REASON_LENGTH: usize = 300;

type HmacSha256 = Hmac<Sha256>;

fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        // HMAC takes a key of any length (RFC 2104 §2); this cannot happen.
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

fn malformed(problem: impl Into<String>) -> WebhookError {
    WebhookError::Malformed {
        network: CHANNEL,
        problem: problem.into(),
    }
}

// ---------------------------------------------------------------------------
// Webhooks: CRC and signature
// ---------------------------------------------------------------------------

/// The body answering X's challenge-response check (`GET <webhook
/// url>?crc_token=T`), to be served with status 200 and
/// `Content-Type: application/json` within 3 seconds:
/// `{"response_token":"sha256=<base64 HMAC-SHA256(consumer secret, T)>"}`.
pub fn crc_response(consumer_secret: &SecretString, crc_token: &str) -> String {
    let mac = hmac_sha256(
        consumer_secret.expose_secret().as_bytes(),
        crc_token.as_bytes(),
    );
    serde_json::json!({ "response_token": format!("sha256={}", BASE64.encode(mac)) }).to_string()
}

/// Checks the `x-twitter-webhooks-signature` header of a delivery
/// (`sha256=<base64 HMAC-SHA256(consumer secret, raw body)>`) against the
/// raw bytes received, in constant time. A missing, malformed or wrong
/// signature is [`WebhookError::BadSignature`].
pub fn verify_signature(
    consumer_secret: &SecretString,
    raw_body: &[u8],
    header: Option<&str>,
) -> Result<(), WebhookError> {
    let header = header.ok_or(WebhookError::BadSignature)?;
    let encoded = header
        .trim()
        .strip_prefix("sha256=")
        .ok_or(WebhookError::BadSignature)?;
    let given = BASE64
        .decode(encoded)
        .map_err(|_| WebhookError::BadSignature)?;
    let expected = hmac_sha256(consumer_secret.expose_secret().as_bytes(), raw_body);
    // `ct_eq` on slices of different lengths is false.
    if bool::from(expected.as_slice().ct_eq(given.as_slice())) {
        Ok(())
    } else {
        Err(WebhookError::BadSignature)
    }
}

// ---------------------------------------------------------------------------
// Webhooks: Account Activity payloads
// ---------------------------------------------------------------------------

/// An Account Activity delivery. Keys not listed are other kinds of event
/// (`favorite_events`, `follow_events`, typing and read indicators…).
#[derive(Deserialize)]
struct Activity {
    for_user_id: String,
    #[serde(default)]
    tweet_create_events: Vec<V1Tweet>,
    #[serde(default)]
    tweet_delete_events: Vec<TweetDelete>,
    #[serde(default)]
    direct_message_events: Vec<DmEvent>,
    #[serde(default)]
    users: HashMap<String, DmUser>,
    #[serde(flatten)]
    other: serde_json::Map<String, Value>,
}

/// A tweet in the v1.1 shape the Account Activity API sends.
#[derive(Deserialize)]
struct V1Tweet {
    id_str: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    full_text: Option<String>,
    #[serde(default)]
    extended_tweet: Option<ExtendedTweet>,
    #[serde(default)]
    in_reply_to_status_id_str: Option<String>,
    #[serde(default)]
    in_reply_to_user_id_str: Option<String>,
    user: V1User,
    #[serde(default)]
    timestamp_ms: Option<String>,
    #[serde(default)]
    created_at: Option<String>,
    #[serde(default)]
    retweeted_status: Option<Value>,
    #[serde(default)]
    conversation_id_str: Option<String>,
    #[serde(default)]
    conversation_id: Option<Value>,
}

#[derive(Deserialize)]
struct ExtendedTweet {
    #[serde(default)]
    full_text: Option<String>,
}

#[derive(Deserialize)]
struct V1User {
    id_str: String,
    #[serde(default)]
    screen_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct TweetDelete {
    status: DeletedStatus,
}

#[derive(Deserialize)]
struct DeletedStatus {
    id: String,
    #[serde(default)]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct DmEvent {
    #[serde(rename = "type")]
    kind: String,
    id: String,
    #[serde(default)]
    created_timestamp: Option<String>,
    #[serde(default)]
    message_create: Option<MessageCreate>,
}

#[derive(Deserialize)]
struct MessageCreate {
    sender_id: String,
    #[serde(default)]
    message_data: Option<MessageData>,
}

#[derive(Deserialize)]
struct MessageData {
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct DmUser {
    #[serde(default)]
    screen_name: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

/// The time encoded in an X snowflake id (ids from after November 2010).
fn snowflake_time(id: &str) -> Option<DateTime<Utc>> {
    let id: i64 = id.parse().ok()?;
    Utc.timestamp_millis_opt((id >> 22) + SNOWFLAKE_EPOCH_MS)
        .single()
}

fn millis(value: &str) -> Option<DateTime<Utc>> {
    Utc.timestamp_millis_opt(value.trim().parse().ok()?)
        .single()
}

fn handle(screen_name: Option<&str>) -> Option<String> {
    screen_name
        .filter(|s| !s.is_empty())
        .map(|s| format!("@{}", s.trim_start_matches('@')))
}

/// An id given as a string or as a JSON number.
fn id_value(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn tweet_inbound(tweet: V1Tweet, own_user_id: &str) -> Result<Inbound, WebhookError> {
    let sent_at = tweet
        .timestamp_ms
        .as_deref()
        .and_then(millis)
        .or_else(|| {
            tweet.created_at.as_deref().and_then(|c| {
                DateTime::parse_from_str(c, "%a %b %d %H:%M:%S %z %Y")
                    .ok()
                    .map(|t| t.with_timezone(&Utc))
            })
        })
        .or_else(|| snowflake_time(&tweet.id_str))
        .ok_or_else(|| malformed(format!("tweet {} has no usable time", tweet.id_str)))?;
    let text = tweet
        .extended_tweet
        .and_then(|e| e.full_text)
        .or(tweet.full_text)
        .or(tweet.text)
        .unwrap_or_default();
    let in_reply_to = tweet.in_reply_to_status_id_str.filter(|s| !s.is_empty());
    let kind =
        if in_reply_to.is_some() && tweet.in_reply_to_user_id_str.as_deref() == Some(own_user_id) {
            MessageKind::Reply
        } else {
            MessageKind::Mention
        };
    // v1.1 objects carry no conversation id; when X adds one, use it. Without
    // it the root is unknown: the tweet answered stands for the thread.
    let thread = tweet
        .conversation_id_str
        .filter(|s| !s.is_empty())
        .or_else(|| tweet.conversation_id.as_ref().and_then(id_value))
        .or_else(|| in_reply_to.clone())
        .unwrap_or_else(|| tweet.id_str.clone());
    Ok(Inbound {
        channel: CHANNEL,
        kind,
        platform_id: tweet.id_str,
        thread,
        in_reply_to,
        author: Author {
            platform_user_id: tweet.user.id_str,
            handle: handle(tweet.user.screen_name.as_deref()),
            name: tweet.user.name.filter(|n| !n.is_empty()),
        },
        text,
        sent_at,
    })
}

/// Reads an Account Activity delivery (already verified with
/// [`verify_signature`]) for the account `own_user_id`.
///
/// - `tweet_create_events` become [`MessageKind::Mention`]s, or
///   [`MessageKind::Reply`]s when they answer one of the account's tweets;
///   the thread is the conversation id if the payload has one, else the
///   tweet answered, else the tweet itself;
/// - `direct_message_events` of type `message_create` become
///   [`MessageKind::Direct`] messages whose thread is the citizen's user id
///   (the conversation with them); attachments are not carried, only the
///   text;
/// - `tweet_delete_events` of someone else's tweets go to
///   [`Delivery::removed`].
///
/// The account's own tweets and DMs, retweets, DM events of another type and
/// every other kind of event (`favorite_events`, `follow_events`, typing and
/// read indicators…) are counted in [`Delivery::ignored`], one per entry.
///
/// A body that is not a delivery, or one for another account (`for_user_id`
/// differs), is [`WebhookError::Malformed`].
pub fn parse(raw_body: &[u8], own_user_id: &str) -> Result<Delivery, WebhookError> {
    let activity: Activity = serde_json::from_slice(raw_body)
        .map_err(|e| malformed(format!("not an Account Activity payload: {e}")))?;
    if activity.for_user_id != own_user_id {
        return Err(malformed(format!(
            "delivered for user {} to the account of user {own_user_id}",
            activity.for_user_id
        )));
    }
    let mut delivery = Delivery::default();

    for tweet in activity.tweet_create_events {
        if tweet.user.id_str == own_user_id || tweet.retweeted_status.is_some() {
            delivery.ignored += 1;
            continue;
        }
        delivery.messages.push(tweet_inbound(tweet, own_user_id)?);
    }

    for deleted in activity.tweet_delete_events {
        if deleted.status.user_id.as_deref() == Some(own_user_id) {
            delivery.ignored += 1;
        } else {
            delivery.removed.push(deleted.status.id);
        }
    }

    for event in activity.direct_message_events {
        let create = match event.message_create {
            Some(create) if event.kind == "message_create" => create,
            _ => {
                delivery.ignored += 1;
                continue;
            }
        };
        if create.sender_id == own_user_id {
            delivery.ignored += 1;
            continue;
        }
        let sent_at = event
            .created_timestamp
            .as_deref()
            .and_then(millis)
            .or_else(|| snowflake_time(&event.id))
            .ok_or_else(|| malformed(format!("DM event {} has no usable time", event.id)))?;
        let user = activity.users.get(&create.sender_id);
        delivery.messages.push(Inbound {
            channel: CHANNEL,
            kind: MessageKind::Direct,
            platform_id: event.id,
            thread: create.sender_id.clone(),
            in_reply_to: None,
            author: Author {
                handle: handle(user.and_then(|u| u.screen_name.as_deref())),
                name: user.and_then(|u| u.name.clone()).filter(|n| !n.is_empty()),
                platform_user_id: create.sender_id,
            },
            text: create.message_data.map(|d| d.text).unwrap_or_default(),
            sent_at,
        });
    }

    delivery.ignored += activity
        .other
        .iter()
        .filter(|(key, _)| key.ends_with("_events"))
        .map(|(_, value)| value.as_array().map_or(1, Vec::len))
        .sum::<usize>();
    Ok(delivery)
}

// ---------------------------------------------------------------------------
// Polling: the mentions timeline
// ---------------------------------------------------------------------------

/// A page of mentions: the citizens' messages (newest first),
/// `meta.newest_id` (the `since_id` of the next poll) and `meta.next_token`
/// (the `pagination_token` of the next, older, page).
pub type Mentions = (Vec<Inbound>, Option<String>, Option<String>);

#[derive(Deserialize)]
struct MentionsBody {
    #[serde(default)]
    data: Vec<V2Tweet>,
    #[serde(default)]
    includes: Includes,
    #[serde(default)]
    meta: Option<MentionsMeta>,
    #[serde(default)]
    errors: Vec<Value>,
}

#[derive(Deserialize)]
struct V2Tweet {
    id: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    author_id: Option<String>,
    #[serde(default)]
    conversation_id: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    in_reply_to_user_id: Option<String>,
    #[serde(default)]
    referenced_tweets: Vec<Referenced>,
}

#[derive(Deserialize)]
struct Referenced {
    #[serde(rename = "type")]
    kind: String,
    id: String,
}

#[derive(Deserialize, Default)]
struct Includes {
    #[serde(default)]
    users: Vec<V2User>,
}

#[derive(Deserialize)]
struct V2User {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct MentionsMeta {
    #[serde(default)]
    newest_id: Option<String>,
    #[serde(default)]
    next_token: Option<String>,
}

/// Reads a page of `GET /2/users/:id/mentions` (asked with the fields
/// [`XClient::mentions`] requests) for the account `own_user_id`: the
/// citizens' mentions and replies, newest first as X lists them, then
/// `meta.newest_id` (the `since_id` of the next poll, when this is the first
/// page) and `meta.next_token` (the `pagination_token` of the next, older,
/// page).
///
/// The thread is the conversation id (the tweet itself when absent). The
/// account's own tweets and retweets are dropped. A body that is not such a
/// page (`data` is absent when `meta.result_count` is 0) is
/// [`WebhookError::Malformed`].
pub fn parse_mentions(body: &[u8], own_user_id: &str) -> Result<Mentions, WebhookError> {
    let page: MentionsBody =
        serde_json::from_slice(body).map_err(|e| malformed(format!("not a mentions page: {e}")))?;
    if page.data.is_empty() && page.meta.is_none() && !page.errors.is_empty() {
        return Err(malformed(format!(
            "the mentions page carries only errors: {}",
            error_text(&Value::Array(page.errors))
        )));
    }
    let users: HashMap<&str, &V2User> = page
        .includes
        .users
        .iter()
        .map(|u| (u.id.as_str(), u))
        .collect();
    let mut messages = Vec::with_capacity(page.data.len());
    for tweet in &page.data {
        let author_id = tweet
            .author_id
            .as_deref()
            .ok_or_else(|| malformed(format!("tweet {} has no author_id", tweet.id)))?;
        if author_id == own_user_id
            || tweet
                .referenced_tweets
                .iter()
                .any(|r| r.kind == "retweeted")
        {
            continue;
        }
        let in_reply_to = tweet
            .referenced_tweets
            .iter()
            .find(|r| r.kind == "replied_to")
            .map(|r| r.id.clone());
        let kind =
            if in_reply_to.is_some() && tweet.in_reply_to_user_id.as_deref() == Some(own_user_id) {
                MessageKind::Reply
            } else {
                MessageKind::Mention
            };
        let sent_at = tweet
            .created_at
            .or_else(|| snowflake_time(&tweet.id))
            .ok_or_else(|| malformed(format!("tweet {} has no usable time", tweet.id)))?;
        let user = users.get(author_id);
        messages.push(Inbound {
            channel: CHANNEL,
            kind,
            platform_id: tweet.id.clone(),
            thread: tweet
                .conversation_id
                .clone()
                .filter(|c| !c.is_empty())
                .unwrap_or_else(|| tweet.id.clone()),
            in_reply_to,
            author: Author {
                platform_user_id: author_id.to_owned(),
                handle: handle(user.and_then(|u| u.username.as_deref())),
                name: user.and_then(|u| u.name.clone()).filter(|n| !n.is_empty()),
            },
            text: tweet.text.clone(),
            sent_at,
        });
    }
    let (newest, next) = page
        .meta
        .map(|m| (m.newest_id, m.next_token))
        .unwrap_or_default();
    Ok((messages, newest, next))
}

// ---------------------------------------------------------------------------
// Text length
// ---------------------------------------------------------------------------

/// How X counts a post's length, approximately (twitter-text's v3
/// configuration): a URL counts 23; a character in Latin, Greek, Cyrillic,
/// Hebrew, Arabic, Indic… (U+0000–U+10FF) or general punctuation counts 1;
/// any other (CJK, emoji) counts 2. Emoji sequences count once (joined parts,
/// skin tones, variation selectors and the second flag letter count 0).
///
/// X normalises to NFC first and has its own URL detector; this counts
/// decomposed accents twice and only sees URLs starting with `http://` or
/// `https://`, so it can be a little over for such texts, never for the
/// common ones.
pub fn weighted_length(text: &str) -> usize {
    let mut total = 0;
    for (i, word) in text.split(char::is_whitespace).enumerate() {
        if i > 0 {
            total += 1; // the whitespace character split on
        }
        if word.starts_with("https://") || word.starts_with("http://") {
            total += 23;
            continue;
        }
        let mut after_joiner = false;
        let mut pending_flag = false;
        for c in word.chars() {
            let code = u32::from(c);
            let weight = match code {
                0x200D => {
                    after_joiner = true;
                    continue;
                }
                0xFE00..=0xFE0F | 0x1F3FB..=0x1F3FF | 0xE0020..=0xE007F | 0x20E3 => 0,
                0x1F1E6..=0x1F1FF => {
                    pending_flag = !pending_flag;
                    if pending_flag { 2 } else { 0 }
                }
                _ if after_joiner => 0,
                0..=0x10FF | 0x2000..=0x200C | 0x2010..=0x201F | 0x2032..=0x2037 => 1,
                _ => 2,
            };
            if !(0x1F1E6..=0x1F1FF).contains(&code) {
                pending_flag = false;
            }
            after_joiner = false;
            total += weight;
        }
    }
    total
}

// ---------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------

/// X's rate-limit window for an endpoint, as its headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in the window (`x-rate-limit-limit`).
    pub limit: u32,
    /// Requests left in it (`x-rate-limit-remaining`).
    pub remaining: u32,
    /// When the window starts again (`x-rate-limit-reset`, Unix seconds).
    pub reset: DateTime<Utc>,
}

fn header_limit(headers: &HeaderMap, prefix: &str) -> Option<RateLimit> {
    let get = |suffix: &str| {
        headers
            .get(format!("{prefix}-{suffix}"))
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    Some(RateLimit {
        limit: get("limit")?.parse().ok()?,
        remaining: get("remaining")?.parse().ok()?,
        reset: Utc.timestamp_opt(get("reset")?.parse().ok()?, 0).single()?,
    })
}

/// Reads the `x-rate-limit-limit`, `x-rate-limit-remaining` and
/// `x-rate-limit-reset` headers of an answer; `None` unless all three are
/// there and well formed.
pub fn rate_limit(headers: &HeaderMap) -> Option<RateLimit> {
    header_limit(headers, "x-rate-limit")
}

/// When a 429 lifts: the latest reset among the exhausted windows (the
/// endpoint's 15-minute one, and the 24-hour per-user and per-app ones X
/// reports on posting), else the endpoint's reset, else `now` + 15 minutes.
fn limited_until(headers: &HeaderMap, now: DateTime<Utc>) -> DateTime<Utc> {
    let windows: Vec<RateLimit> = ["x-rate-limit", "x-user-limit-24hour", "x-app-limit-24hour"]
        .iter()
        .filter_map(|prefix| header_limit(headers, prefix))
        .collect();
    windows
        .iter()
        .filter(|w| w.remaining == 0)
        .map(|w| w.reset)
        .max()
        .or_else(|| rate_limit(headers).map(|w| w.reset))
        .unwrap_or(now + DEFAULT_RATE_WINDOW)
}

// ---------------------------------------------------------------------------
// The API client
// ---------------------------------------------------------------------------

/// A client for X's API v2 at a base URL (`https://api.x.com`, or a local
/// fake), calling with an account's OAuth 2.0 user token
/// (`Authorization: Bearer`, from [`Credentials::access_token`]).
#[derive(Debug, Clone)]
pub struct XClient {
    base: String,
    http: reqwest::Client,
}

/// What X answered, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
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

fn is_numeric_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

fn truncate(mut text: String) -> String {
    if text.len() > MAX_REASON_LENGTH {
        let mut end = MAX_REASON_LENGTH;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push('…');
    }
    text
}

/// The human part of an X error body: a v2 problem's `detail` (or `title`)
/// and the `message`s of an `errors` array (v1.1 and v2).
fn error_text(body: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    if let Some(detail) = body
        .get("detail")
        .or_else(|| body.get("title"))
        .and_then(Value::as_str)
    {
        parts.push(detail.to_owned());
    }
    let errors = body
        .as_array()
        .or_else(|| body.get("errors").and_then(Value::as_array));
    for error in errors.into_iter().flatten() {
        if let Some(message) = error
            .get("message")
            .or_else(|| error.get("detail"))
            .and_then(Value::as_str)
            && !parts.iter().any(|p| p == message)
        {
            parts.push(message.to_owned());
        }
    }
    parts.join("; ")
}

/// Maps a non-success answer to a [`SendError`]; `permission` is the scope
/// the endpoint needs.
fn failure(answer: &Answer, permission: &str, now: DateTime<Utc>) -> SendError {
    let status = answer.status;
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let text = error_text(&body);
    let described = if text.is_empty() {
        format!("HTTP {}", status.as_u16())
    } else {
        truncate(format!("HTTP {}: {text}", status.as_u16()))
    };
    if status == StatusCode::TOO_MANY_REQUESTS {
        return SendError::RateLimited {
            network: CHANNEL,
            until: limited_until(&answer.headers, now),
        };
    }
    if status == StatusCode::UNAUTHORIZED {
        return SendError::TokenExpired { network: CHANNEL };
    }
    if status.is_server_error() {
        return temporary(described);
    }
    if status == StatusCode::FORBIDDEN {
        let raw = String::from_utf8_lossy(&answer.body).to_lowercase();
        let problem = body.get("type").and_then(Value::as_str).unwrap_or_default();
        let reason = body
            .get("reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // X refuses the reply itself: the post is gone, or its
        // reply_settings keep us out. Nothing to grant.
        if raw.contains("reply") {
            return rejected(described);
        }
        // An app-only token where a user token is needed: link again.
        if problem.ends_with("/unsupported-authentication") {
            return SendError::TokenExpired { network: CHANNEL };
        }
        if reason == "client-not-enrolled"
            || reason == "oauth1-permissions"
            || problem.ends_with("/client-forbidden")
            || raw.contains("client-not-enrolled")
            || raw.contains("oauth1-permissions")
            || raw.contains("oauth1 app permissions")
            || raw.contains("scope")
        {
            return SendError::PermissionMissing {
                network: CHANNEL,
                permission: permission.to_owned(),
            };
        }
        return rejected(described);
    }
    if status.is_client_error() {
        return rejected(described);
    }
    temporary(format!("unexpected answer: {described}"))
}

impl XClient {
    /// A client for the API at `base` (e.g. [`API_BASE`]; a trailing `/` is
    /// ignored), over `http` (whose timeouts apply).
    pub fn new(base: impl Into<String>, http: reqwest::Client) -> Self {
        let mut base = base.into();
        while base.ends_with('/') {
            base.pop();
        }
        XClient { base, http }
    }

    /// Sends a request and reads the whole answer; a network failure or
    /// timeout is [`SendError::Temporary`].
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        creds: &Credentials,
    ) -> Result<Answer, SendError> {
        let response = request
            .bearer_auth(creds.access_token.expose_secret())
            .send()
            .await
            .map_err(|e| temporary(format!("request failed: {}", e.without_url())))?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| temporary(format!("reading the answer failed: {}", e.without_url())))?
            .to_vec();
        if let Some(limit) = rate_limit(&headers)
            && limit.remaining == 0
        {
            tracing::warn!(
                network = CHANNEL,
                account = %creds.external_id,
                reset = %limit.reset,
                "X rate limit exhausted"
            );
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Reads `data.<field>` of a successful answer.
    fn created_id(answer: &Answer, field: &str) -> Result<Sent, SendError> {
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        match body
            .get("data")
            .and_then(|d| d.get(field))
            .and_then(id_value)
        {
            Some(platform_id) => Ok(Sent { platform_id }),
            None => {
                let text = error_text(&body);
                Err(rejected(truncate(format!(
                    "X answered HTTP {} without data.{field}{}",
                    answer.status.as_u16(),
                    if text.is_empty() {
                        String::new()
                    } else {
                        format!(": {text}")
                    }
                ))))
            }
        }
    }

    async fn post_tweet(
        &self,
        creds: &Credentials,
        body: Value,
        now: DateTime<Utc>,
    ) -> Result<Sent, SendError> {
        let request = self
            .http
            .post(format!("{}/2/tweets", self.base))
            .json(&body);
        let answer = self.call(request, creds).await?;
        if !answer.status.is_success() {
            return Err(failure(&answer, "tweet.write", now));
        }
        Self::created_id(&answer, "id")
    }

    /// Sends a reply: a public one (`POST /2/tweets` with
    /// `reply.in_reply_to_tweet_id`), or a direct message
    /// (`POST /2/dm_conversations/with/:recipient/messages`). X has no
    /// messaging window, so `last_inbound_at` is not looked at.
    ///
    /// A post longer than [`MAX_POST_LENGTH`] weighted characters (or a DM
    /// longer than [`MAX_DM_LENGTH`]) is [`SendError::Rejected`] without
    /// calling X. The platform id returned is the new tweet's id or the DM
    /// event's id.
    pub async fn send(
        &self,
        creds: &Credentials,
        reply: &OutboundReply,
    ) -> Result<Sent, SendError> {
        match &reply.target {
            ReplyTarget::Public { in_reply_to } => {
                check_post_length(&reply.text)?;
                if !is_numeric_id(in_reply_to) {
                    return Err(rejected(format!(
                        "{in_reply_to:?} is not an X post id to reply to"
                    )));
                }
                let body = serde_json::json!({
                    "text": reply.text,
                    "reply": { "in_reply_to_tweet_id": in_reply_to },
                });
                self.post_tweet(creds, body, reply.now).await
            }
            ReplyTarget::Direct { recipient, .. } => {
                let length = reply.text.chars().count();
                if length > MAX_DM_LENGTH {
                    return Err(rejected(format!(
                        "the message has {length} characters; X allows {MAX_DM_LENGTH} in a direct message"
                    )));
                }
                if !is_numeric_id(recipient) {
                    return Err(rejected(format!("{recipient:?} is not an X user id")));
                }
                let request = self
                    .http
                    .post(format!(
                        "{}/2/dm_conversations/with/{recipient}/messages",
                        self.base
                    ))
                    .json(&serde_json::json!({ "text": reply.text }));
                let answer = self.call(request, creds).await?;
                if !answer.status.is_success() {
                    return Err(failure(&answer, "dm.write", reply.now));
                }
                Self::created_id(&answer, "dm_event_id")
            }
        }
    }

    /// Publishes an announcement on the account (`POST /2/tweets`), the
    /// link appended to the text after a space. Too long a text is
    /// [`SendError::Rejected`] without calling X. An image is ignored: X
    /// takes media only as uploaded bytes, not by URL.
    pub async fn publish(&self, creds: &Credentials, post: &Post) -> Result<Sent, SendError> {
        let text = match post.link.as_deref().map(str::trim) {
            Some(link) if !link.is_empty() => format!("{} {link}", post.text.trim_end()),
            _ => post.text.clone(),
        };
        check_post_length(&text)?;
        self.post_tweet(creds, serde_json::json!({ "text": text }), Utc::now())
            .await
    }

    /// Reads a page of the account's mentions
    /// (`GET /2/users/:id/mentions`, up to 100, newer than `since_id`,
    /// continuing at `pagination_token`), as [`parse_mentions`] returns
    /// them: the messages, `meta.newest_id` and `meta.next_token`.
    pub async fn mentions(
        &self,
        creds: &Credentials,
        since_id: Option<&str>,
        pagination_token: Option<&str>,
    ) -> Result<Mentions, SendError> {
        let user = &creds.external_id;
        if !is_numeric_id(user) {
            return Err(rejected(format!("{user:?} is not an X user id")));
        }
        let mut url = reqwest::Url::parse(&format!("{}/2/users/{user}/mentions", self.base))
            .map_err(|e| temporary(format!("bad X base URL: {e}")))?;
        {
            let mut query = url.query_pairs_mut();
            if let Some(since_id) = since_id {
                query.append_pair("since_id", since_id);
            }
            query.append_pair("max_results", "100");
            if let Some(token) = pagination_token {
                query.append_pair("pagination_token", token);
            }
            query
                .append_pair("tweet.fields", MENTION_TWEET_FIELDS)
                .append_pair("expansions", "author_id")
                .append_pair("user.fields", "username,name");
        }
        let answer = self.call(self.http.get(url), creds).await?;
        if !answer.status.is_success() {
            return Err(failure(&answer, "tweet.read", Utc::now()));
        }
        parse_mentions(&answer.body, user).map_err(|e| temporary(e.to_string()))
    }
}

fn check_post_length(text: &str) -> Result<(), SendError> {
    let length = weighted_length(text);
    if length > MAX_POST_LENGTH {
        Err(rejected(format!(
            "the text counts {length} characters; X allows {MAX_POST_LENGTH} in a post"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const OWN: &str = "2975699229";
    const CITIZEN: &str = "1205290247124217856";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn independent_signature(key: &str, message: &[u8]) -> String {
        let mut mac = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(key.as_bytes()).unwrap();
        hmac::Mac::update(&mut mac, message);
        format!(
            "sha256={}",
            base64::engine::general_purpose::STANDARD.encode(hmac::Mac::finalize(mac).into_bytes())
        )
    }

    /// Zammad's `tweet_create-user_mention` fixture, trimmed as in
    /// SOCIAL_APIS.md.
    const MENTION_FIXTURE: &str = r#"{"for_user_id":"2975699229","user_has_blocked":false,"tweet_create_events":[{"id_str":"1205348660982083584",
 "text":"@ScruffyMcG This is a test of Twitter API webhooks.","in_reply_to_status_id_str":null,
 "in_reply_to_user_id_str":"2975699229","user":{"id_str":"1205290247124217856","screen_name":"pennbrooke1"},
 "entities":{"user_mentions":[{"id_str":"2975699229","indices":[0,11]}]},"timestamp_ms":"1576212489730"}]}"#;

    /// Zammad's `direct_message-incoming_with_media` fixture, trimmed.
    const DM_FIXTURE: &str = r#"{"for_user_id":"2975699229","direct_message_events":[{"type":"message_create","id":"1206724334791753732",
 "created_timestamp":"1576540475925","message_create":{"target":{"recipient_id":"2975699229"},
 "sender_id":"1205290247124217856","message_data":{"text":"Yes, you are!","entities":{"hashtags":[],"urls":[]},
 "attachment":{"type":"media","media":{"id_str":"1206724329586601985","media_url_https":"https://pbs.twimg.com/dm_gif_preview/1206724329586601985/x.jpg","type":"animated_gif"}}}}}],
 "users":{"1205290247124217856":{"screen_name":"pennbrooke1"}}}"#;

    #[test]
    fn crc_response_is_the_base64_hmac_of_the_token() {
        let body = crc_response(&secret("consumer-secret-123"), "crc-token-abc");
        let json: Value = serde_json::from_str(&body).unwrap();
        let token = json["response_token"].as_str().unwrap();
        assert_eq!(
            token,
            independent_signature("consumer-secret-123", b"crc-token-abc")
        );
        // Computed with Python's hmac module.
        assert_eq!(token, "sha256=8q4gbHSwr+NvXrzFaOG7EoZ8pRQRk2eTIMIbbVxALFY=");
        assert_eq!(json.as_object().unwrap().len(), 1);
    }

    #[test]
    fn a_good_signature_verifies() {
        let body = MENTION_FIXTURE.as_bytes();
        let header = independent_signature("s3cret", body);
        assert_eq!(
            verify_signature(&secret("s3cret"), body, Some(&header)),
            Ok(())
        );
    }

    #[test]
    fn bad_or_missing_signatures_are_refused() {
        let body = MENTION_FIXTURE.as_bytes();
        let good = independent_signature("s3cret", body);
        let s = secret("s3cret");
        for header in [
            None,
            Some(""),
            Some("sha256="),
            Some("sha256=not base64!"),
            Some(good.trim_start_matches("sha256=")),
            Some(&independent_signature("other", body)),
            Some(&independent_signature("s3cret", b"{}")),
        ] {
            assert_eq!(
                verify_signature(&s, body, header),
                Err(WebhookError::BadSignature),
                "{header:?}"
            );
        }
        // The same bytes, re-serialised, are not what was signed.
        let reserialised =
            serde_json::to_vec(&serde_json::from_str::<Value>(MENTION_FIXTURE).unwrap()).unwrap();
        assert_eq!(
            verify_signature(&s, &reserialised, Some(&good)),
            Err(WebhookError::BadSignature)
        );
    }

    #[test]
    fn parses_the_zammad_mention() {
        let delivery = parse(MENTION_FIXTURE.as_bytes(), OWN).unwrap();
        assert_eq!(delivery.ignored, 0);
        assert!(delivery.removed.is_empty());
        assert_eq!(
            delivery.messages,
            vec![Inbound {
                channel: "x",
                kind: MessageKind::Mention,
                platform_id: "1205348660982083584".into(),
                thread: "1205348660982083584".into(),
                in_reply_to: None,
                author: Author {
                    platform_user_id: CITIZEN.into(),
                    handle: Some("@pennbrooke1".into()),
                    name: None,
                },
                text: "@ScruffyMcG This is a test of Twitter API webhooks.".into(),
                sent_at: Utc.timestamp_millis_opt(1_576_212_489_730).unwrap(),
            }]
        );
    }

    #[test]
    fn parses_the_zammad_dm_with_media() {
        let delivery = parse(DM_FIXTURE.as_bytes(), OWN).unwrap();
        assert_eq!(delivery.ignored, 0);
        assert_eq!(
            delivery.messages,
            vec![Inbound {
                channel: "x",
                kind: MessageKind::Direct,
                platform_id: "1206724334791753732".into(),
                thread: CITIZEN.into(),
                in_reply_to: None,
                author: Author {
                    platform_user_id: CITIZEN.into(),
                    handle: Some("@pennbrooke1".into()),
                    name: None,
                },
                text: "Yes, you are!".into(),
                sent_at: Utc.timestamp_millis_opt(1_576_540_475_925).unwrap(),
            }]
        );
    }

    #[test]
    fn a_reply_to_the_account_is_a_reply_with_extended_text() {
        let body = serde_json::json!({
            "for_user_id": OWN,
            "tweet_create_events": [{
                "id_str": "1900000000000000002",
                "text": "@ayto Hay un bache enorme en la calle Mayor desde hace semanas, y nadie…",
                "truncated": true,
                "extended_tweet": {"full_text": "@ayto Hay un bache enorme en la calle Mayor desde hace semanas, y nadie lo arregla."},
                "in_reply_to_status_id_str": "1900000000000000001",
                "in_reply_to_user_id_str": OWN,
                "user": {"id_str": CITIZEN, "screen_name": "vecina", "name": "Vecina"},
                "timestamp_ms": "1700000000000"
            }]
        });
        let delivery = parse(body.to_string().as_bytes(), OWN).unwrap();
        let message = &delivery.messages[0];
        assert_eq!(message.kind, MessageKind::Reply);
        assert_eq!(message.in_reply_to.as_deref(), Some("1900000000000000001"));
        assert_eq!(message.thread, "1900000000000000001");
        assert!(message.text.ends_with("lo arregla."));
        assert_eq!(message.author.name.as_deref(), Some("Vecina"));

        // A reply to someone else's tweet that mentions the account stays a
        // mention; a conversation id, when present, is the thread.
        let body = serde_json::json!({
            "for_user_id": OWN,
            "tweet_create_events": [{
                "id_str": "1900000000000000003", "text": "@otro @ayto mira",
                "in_reply_to_status_id_str": "1900000000000000002",
                "in_reply_to_user_id_str": "42",
                "conversation_id_str": "1900000000000000001",
                "user": {"id_str": CITIZEN, "screen_name": "vecina"},
                "timestamp_ms": "1700000000000"
            }]
        });
        let message = &parse(body.to_string().as_bytes(), OWN).unwrap().messages[0];
        assert_eq!(message.kind, MessageKind::Mention);
        assert_eq!(message.thread, "1900000000000000001");
    }

    #[test]
    fn own_tweets_and_dms_are_dropped() {
        let body = serde_json::json!({
            "for_user_id": OWN,
            "tweet_create_events": [{
                "id_str": "1", "text": "Gracias, lo miramos",
                "in_reply_to_status_id_str": "2", "in_reply_to_user_id_str": CITIZEN,
                "user": {"id_str": OWN, "screen_name": "ayto"}, "timestamp_ms": "1700000000000"
            }],
            "direct_message_events": [{
                "type": "message_create", "id": "3", "created_timestamp": "1700000000000",
                "message_create": {"target": {"recipient_id": CITIZEN}, "sender_id": OWN,
                                   "message_data": {"text": "Hola"}}
            }],
            "users": {OWN: {"screen_name": "ayto"}, CITIZEN: {"screen_name": "vecina"}}
        });
        let delivery = parse(body.to_string().as_bytes(), OWN).unwrap();
        assert!(delivery.messages.is_empty());
        assert_eq!(delivery.ignored, 2);
    }

    #[test]
    fn retweets_are_dropped() {
        let body = serde_json::json!({
            "for_user_id": OWN,
            "tweet_create_events": [{
                "id_str": "5", "text": "RT @ayto: Corte de agua mañana",
                "user": {"id_str": CITIZEN, "screen_name": "vecina"}, "timestamp_ms": "1700000000000",
                "retweeted_status": {"id_str": "4", "user": {"id_str": OWN}}
            }]
        });
        let delivery = parse(body.to_string().as_bytes(), OWN).unwrap();
        assert!(delivery.messages.is_empty());
        assert_eq!(delivery.ignored, 1);
    }

    #[test]
    fn favorites_follows_typing_and_reads_are_ignored() {
        let body = serde_json::json!({
            "for_user_id": OWN,
            "favorite_events": [{"id": "a", "favorited_status": {"id_str": "1"}, "user": {"id_str": CITIZEN}}],
            "follow_events": [{"type": "follow"}, {"type": "follow"}],
            "direct_message_indicate_typing_events": [{"created_timestamp": "1", "sender_id": CITIZEN}],
            "direct_message_mark_read_events": [{"created_timestamp": "1", "sender_id": CITIZEN}],
            "user_has_blocked": false
        });
        let delivery = parse(body.to_string().as_bytes(), OWN).unwrap();
        assert!(delivery.messages.is_empty());
        assert_eq!(delivery.ignored, 5);
    }

    #[test]
    fn deleted_tweets_are_reported_as_removed() {
        let body = serde_json::json!({
            "for_user_id": OWN,
            "tweet_delete_events": [
                {"status": {"id": "1900000000000000002", "user_id": CITIZEN}, "timestamp_ms": "1700000000000"},
                {"status": {"id": "1900000000000000003", "user_id": OWN}, "timestamp_ms": "1700000000000"}
            ]
        });
        let delivery = parse(body.to_string().as_bytes(), OWN).unwrap();
        assert_eq!(delivery.removed, vec!["1900000000000000002".to_owned()]);
        assert_eq!(delivery.ignored, 1);
    }

    #[test]
    fn a_delivery_for_another_account_is_malformed() {
        assert!(matches!(
            parse(MENTION_FIXTURE.as_bytes(), "999"),
            Err(WebhookError::Malformed { network: "x", .. })
        ));
    }

    #[test]
    fn garbage_is_malformed() {
        for body in [
            &b"not json"[..],
            b"",
            b"[]",
            b"{}",
            b"{\"for_user_id\":2975699229}",
            b"{\"for_user_id\":\"2975699229\",\"tweet_create_events\":[{\"id_str\":\"1\"}]}",
            b"{\"for_user_id\":\"2975699229\",\"tweet_create_events\":{}}",
        ] {
            assert!(
                matches!(
                    parse(body, OWN),
                    Err(WebhookError::Malformed { network: "x", .. })
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn parses_a_mentions_page() {
        let body = serde_json::json!({
            "data": [
                {"id": "1900000000000000005", "text": "@ayto gracias", "author_id": CITIZEN,
                 "conversation_id": "1900000000000000001", "created_at": "2025-03-01T10:00:00.000Z",
                 "in_reply_to_user_id": OWN, "edit_history_tweet_ids": ["1900000000000000005"],
                 "referenced_tweets": [{"type": "replied_to", "id": "1900000000000000004"}]},
                {"id": "1900000000000000003", "text": "@ayto hay un bache", "author_id": "77",
                 "conversation_id": "1900000000000000003", "created_at": "2025-03-01T09:00:00.000Z"},
                {"id": "1900000000000000002", "text": "@ayto nota", "author_id": OWN,
                 "conversation_id": "1900000000000000002", "created_at": "2025-03-01T08:00:00.000Z"},
                {"id": "1900000000000000001", "text": "RT @x: @ayto", "author_id": "78",
                 "conversation_id": "1900000000000000001", "created_at": "2025-03-01T07:00:00.000Z",
                 "referenced_tweets": [{"type": "retweeted", "id": "1"}]}
            ],
            "includes": {"users": [
                {"id": CITIZEN, "username": "vecina", "name": "Vecina"},
                {"id": "77", "username": "otro", "name": "Otro"}
            ]},
            "meta": {"result_count": 4, "newest_id": "1900000000000000005",
                     "oldest_id": "1900000000000000001", "next_token": "7140dibdnow9c7btw3w29"}
        });
        let (messages, newest, next) = parse_mentions(body.to_string().as_bytes(), OWN).unwrap();
        assert_eq!(newest.as_deref(), Some("1900000000000000005"));
        assert_eq!(next.as_deref(), Some("7140dibdnow9c7btw3w29"));
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[0],
            Inbound {
                channel: "x",
                kind: MessageKind::Reply,
                platform_id: "1900000000000000005".into(),
                thread: "1900000000000000001".into(),
                in_reply_to: Some("1900000000000000004".into()),
                author: Author {
                    platform_user_id: CITIZEN.into(),
                    handle: Some("@vecina".into()),
                    name: Some("Vecina".into()),
                },
                text: "@ayto gracias".into(),
                sent_at: "2025-03-01T10:00:00Z".parse().unwrap(),
            }
        );
        assert_eq!(messages[1].kind, MessageKind::Mention);
        assert_eq!(messages[1].author.handle.as_deref(), Some("@otro"));
        assert_eq!(messages[1].in_reply_to, None);
    }

    #[test]
    fn an_empty_mentions_page_has_no_data() {
        let (messages, newest, next) =
            parse_mentions(br#"{"meta":{"result_count":0}}"#, OWN).unwrap();
        assert!(messages.is_empty());
        assert_eq!((newest, next), (None, None));
        assert!(matches!(
            parse_mentions(b"<html>", OWN),
            Err(WebhookError::Malformed { network: "x", .. })
        ));
        assert!(matches!(
            parse_mentions(
                br#"{"errors":[{"title":"Not Found Error","detail":"Could not find user"}]}"#,
                OWN
            ),
            Err(WebhookError::Malformed { .. })
        ));
    }

    #[test]
    fn snowflake_ids_carry_their_time() {
        // 1205348660982083584 was posted at timestamp_ms 1576212489730.
        assert_eq!(
            snowflake_time("1205348660982083584").unwrap(),
            Utc.timestamp_millis_opt(1_576_212_489_730).unwrap()
        );
    }

    #[test]
    fn weighted_length_counts_like_x() {
        assert_eq!(weighted_length("hola"), 4);
        assert_eq!(weighted_length("añadir árbol"), 12);
        assert_eq!(weighted_length("市役所"), 6);
        assert_eq!(
            weighted_length("mira https://example.org/una/ruta/muy/larga/de/verdad?x=1"),
            5 + 23
        );
        assert_eq!(weighted_length("👍"), 2);
        assert_eq!(weighted_length("👍🏽"), 2);
        assert_eq!(weighted_length("👨‍👩‍👧"), 2);
        assert_eq!(weighted_length("🇪🇸🇫🇷"), 4);
        assert_eq!(weighted_length("❤️"), 2);
        assert_eq!(weighted_length(&"a".repeat(280)), 280);
    }

    #[test]
    fn rate_limit_headers_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert("x-rate-limit-limit", "300".parse().unwrap());
        headers.insert("x-rate-limit-remaining", "0".parse().unwrap());
        assert_eq!(rate_limit(&headers), None);
        headers.insert("x-rate-limit-reset", "1700000900".parse().unwrap());
        let limit = rate_limit(&headers).unwrap();
        assert_eq!(
            limit,
            RateLimit {
                limit: 300,
                remaining: 0,
                reset: Utc.timestamp_opt(1_700_000_900, 0).unwrap()
            }
        );
        // An exhausted 24-hour window lasts longer than the 15-minute one.
        headers.insert("x-rate-limit-remaining", "10".parse().unwrap());
        headers.insert("x-user-limit-24hour-limit", "100".parse().unwrap());
        headers.insert("x-user-limit-24hour-remaining", "0".parse().unwrap());
        headers.insert("x-user-limit-24hour-reset", "1700050000".parse().unwrap());
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(
            limited_until(&headers, now),
            Utc.timestamp_opt(1_700_050_000, 0).unwrap()
        );
        assert_eq!(
            limited_until(&HeaderMap::new(), now),
            now + Duration::minutes(15)
        );
    }

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn errors_map_to_what_an_agent_or_admin_can_do() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let map = |status, body: &str| failure(&answer(status, body), "dm.write", now);
        assert_eq!(
            map(
                429,
                r#"{"errors":[{"code":88,"message":"Rate limit exceeded"}]}"#
            ),
            SendError::RateLimited {
                network: "x",
                until: now + Duration::minutes(15)
            }
        );
        assert_eq!(
            map(
                401,
                r#"{"title":"Unauthorized","type":"about:blank","status":401,"detail":"Unauthorized"}"#
            ),
            SendError::TokenExpired { network: "x" }
        );
        assert!(matches!(
            map(403, r#"{"detail":"You attempted to reply to a Tweet that is deleted or not visible to you.","type":"about:blank","title":"Forbidden","status":403}"#),
            SendError::Rejected { reason, .. } if reason.contains("deleted or not visible")
        ));
        assert_eq!(
            map(
                403,
                r#"{"client_id":"1","detail":"When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project.","reason":"client-not-enrolled","title":"Client Forbidden","type":"https://api.twitter.com/2/problems/client-forbidden"}"#
            ),
            SendError::PermissionMissing {
                network: "x",
                permission: "dm.write".into()
            }
        );
        assert_eq!(
            map(
                403,
                r#"{"title":"Unsupported Authentication","detail":"Authenticating with OAuth 2.0 Application-Only is forbidden for this endpoint.","type":"https://api.twitter.com/2/problems/unsupported-authentication","status":403}"#
            ),
            SendError::TokenExpired { network: "x" }
        );
        assert!(matches!(
            map(
                403,
                r#"{"detail":"You are not allowed to create a Tweet with duplicate content.","type":"about:blank","title":"Forbidden","status":403}"#
            ),
            SendError::Rejected { .. }
        ));
        assert!(matches!(
            map(400, r#"{"errors":[{"message":"$.in_reply_to_tweet_id: is not defined in the schema"}],"title":"Invalid Request","detail":"One or more parameters to your request was invalid.","type":"https://api.twitter.com/2/problems/invalid-request"}"#),
            SendError::Rejected { reason, .. } if reason.contains("is not defined in the schema")
        ));
        assert!(matches!(map(503, ""), SendError::Temporary { .. }));
        assert!(matches!(map(500, "<html>"), SendError::Temporary { .. }));
    }

    #[tokio::test]
    async fn too_long_posts_are_refused_before_calling() {
        // Nothing listens on this port: a call would be Temporary.
        let client = XClient::new("http://127.0.0.1:9", reqwest::Client::new());
        let creds = Credentials {
            external_id: OWN.into(),
            access_token: secret("token"),
            signing_secret: secret("s"),
            verify_token: secret(""),
            human_agent: false,
        };
        let reply = OutboundReply {
            target: ReplyTarget::Public {
                in_reply_to: "1".into(),
            },
            text: "a".repeat(281),
            now: Utc::now(),
        };
        assert!(matches!(
            client.send(&creds, &reply).await,
            Err(SendError::Rejected { .. })
        ));
        let post = Post {
            text: "a".repeat(270),
            link: Some("https://example.org/x".into()),
            ..Post::default()
        };
        assert!(matches!(
            client.publish(&creds, &post).await,
            Err(SendError::Rejected { .. })
        ));
    }
}
