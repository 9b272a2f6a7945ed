//! The Meta connector: Facebook Pages (comments on the Page's posts),
//! Messenger, and Instagram (direct messages and comments), over the Graph
//! API.
//!
//! What it does:
//! - answers Meta's subscription check ([`verify_subscription`]);
//! - verifies `X-Hub-Signature-256` over the **raw** request bytes
//!   ([`verify_signature`]): Meta signs the body exactly as sent, with
//!   non-ASCII escaped as `\u00e1` and `/` as `\/`, so JSON re-serialised
//!   after parsing would never match;
//! - reads a verified delivery into [`Delivery`] ([`parse`]): Messenger and
//!   Instagram messages, Page feed comments and Instagram comments, every
//!   entry and every item of a batch; the account's own messages, echoes,
//!   reads, deliveries and reactions are dropped and counted;
//! - calls the Graph API to reply and to publish ([`GraphClient`]) and says
//!   why a call failed in [`SendError`]'s words; reads the rate-limit usage
//!   headers ([`usage`]).
//!
//! What it must not do: keep state, write anywhere, read the clock to decide
//! a messaging window (the service passes `now`), call the API for a reply
//! it already knows the window forbids, or let a token or the app secret
//! reach a URL, an error or a log line (tokens travel only in the
//! `Authorization` header).

use chrono::{DateTime, TimeDelta, Utc};
use hmac::{Hmac, KeyInit, Mac};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use ventanilla_social_domain::inbound::{Author, MessageKind};

use crate::connector::{
    Credentials, Delivery, Inbound, OutboundReply, Post, ReplyTarget, SendError, Sent, WebhookError,
};
use crate::payload;

/// The header Meta signs webhook deliveries in.
pub const SIGNATURE_HEADER: &str = "X-Hub-Signature-256";

/// The Graph API base this connector is written against (the version is
/// pinned: Meta changes behaviour between versions).
pub const GRAPH_BASE: &str = "https://graph.facebook.com/v25.0";

/// The channel name of Facebook Pages and Messenger.
pub const FACEBOOK: &str = "facebook";

/// The channel name of Instagram.
pub const INSTAGRAM: &str = "instagram";

/// Messenger's and Instagram's standard messaging window, in hours.
pub const STANDARD_WINDOW_HOURS: u32 = 24;

/// The window with the `HUMAN_AGENT` tag, in hours (7 days).
pub const HUMAN_AGENT_WINDOW_HOURS: u32 = 168;

/// Usage (in percent of the allowance) from which an account should be
/// treated as rate limited before Meta starts refusing calls.
pub const NEAR_LIMIT_PERCENT: u32 = 90;

/// The network name in [`WebhookError::Malformed`].
const NETWORK: &str = "meta";

/// How long to wait after a rate-limit answer that does not say.
const DEFAULT_RATE_LIMIT_WAIT: TimeDelta = TimeDelta::seconds(60);

/// Messenger's (2018278) and Instagram's (2534022) error subcodes for a
/// message sent outside the allowed window (with code 10).
const OUTSIDE_WINDOW_SUBCODES: [i64; 2] = [2_018_278, 2_534_022];

type HmacSha256 = Hmac<Sha256>;

// ---------------------------------------------------------------------------
// Webhooks: verification, signature, parsing
// ---------------------------------------------------------------------------

/// Answers Meta's subscription check (`GET <callback>?hub.mode=subscribe&
/// hub.verify_token=…&hub.challenge=…`): when the mode is `subscribe` and
/// the token equals `expected` (compared in constant time), returns the
/// challenge, to be answered with 200 and a `text/plain` body; otherwise
/// [`WebhookError::BadVerifyToken`] (answer 403). An empty `expected` token
/// never matches (an account without one is misconfigured).
pub fn verify_subscription(
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
    expected: &SecretString,
) -> Result<String, WebhookError> {
    let expected = expected.expose_secret().as_bytes();
    let (Some("subscribe"), Some(token), Some(challenge)) = (mode, verify_token, challenge) else {
        return Err(WebhookError::BadVerifyToken);
    };
    if expected.is_empty() || !bool::from(token.as_bytes().ct_eq(expected)) {
        return Err(WebhookError::BadVerifyToken);
    }
    Ok(challenge.to_owned())
}

/// Checks `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app_secret,
/// raw_body)>` over the bytes exactly as received (in constant time).
/// A missing, malformed or wrong header, or an empty app secret, is
/// [`WebhookError::BadSignature`] (answer 401).
pub fn verify_signature(
    app_secret: &SecretString,
    raw_body: &[u8],
    header: Option<&str>,
) -> Result<(), WebhookError> {
    let secret = app_secret.expose_secret().as_bytes();
    if secret.is_empty() {
        return Err(WebhookError::BadSignature);
    }
    let given = header
        .map(str::trim)
        .and_then(|h| h.strip_prefix("sha256="))
        .and_then(|hex_digest| hex::decode(hex_digest).ok())
        .ok_or(WebhookError::BadSignature)?;
    let mut mac = HmacSha256::new_from_slice(secret).map_err(|_| WebhookError::BadSignature)?;
    mac.update(raw_body);
    mac.verify_slice(&given)
        .map_err(|_| WebhookError::BadSignature)
}

/// The `X-Hub-Signature-256` value Meta would send for `raw_body` (for the
/// fakes and the tests).
#[cfg(any(test, feature = "fakes"))]
pub(crate) fn signature_header(app_secret: &[u8], raw_body: &[u8]) -> String {
    // HMAC takes keys of any length: this cannot fail; an empty digest
    // would only make the signature fail to verify.
    let digest = HmacSha256::new_from_slice(app_secret)
        .map(|mut mac| {
            mac.update(raw_body);
            mac.finalize().into_bytes().to_vec()
        })
        .unwrap_or_default();
    format!("sha256={}", hex::encode(digest))
}

/// The ids of the accounts a verified delivery is for (`entry[].id`: the
/// Page id for `object: "page"`, the Instagram account id for
/// `object: "instagram"`), distinct, in order of appearance.
///
/// One Meta app subscribed to several Pages may batch entries of several
/// Pages in one delivery: the service routes each id to its account and
/// reads that account's entries with [`parse_for_entry`].
pub fn entry_ids(raw_body: &[u8]) -> Result<Vec<String>, WebhookError> {
    let (_, entries) = envelope(raw_body)?;
    let mut ids: Vec<String> = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let id = READ.required_id(entry, "id", &format!("entry[{i}]"))?;
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    Ok(ids)
}

/// Reads a verified delivery (the same raw bytes whose signature was
/// checked) of the account whose network id is `own_id`: every entry, and
/// every `messaging[]` item and `changes[]` item of each.
///
/// - `object: "page"`, `messaging[]` (Messenger) and `object:
///   "instagram"`, `messaging[]` (Instagram DMs): a [`MessageKind::Direct`]
///   message; `thread` is the sender's id, `platform_id` the `mid`,
///   `in_reply_to` the `reply_to.mid`; a message with only attachments has
///   the text "". An Instagram "unsend" (`message.is_deleted`) puts the
///   `mid` in [`Delivery::removed`].
/// - `object: "page"`, `changes[]` with `field: "feed"` and `item:
///   "comment"`: `verb: "add"` is a [`MessageKind::Comment`] (`thread` the
///   `post_id`, `platform_id` the `comment_id`, `in_reply_to` the
///   `parent_id`); `verb: "edited"` the same with the `platform_id`
///   `<comment_id>:edited:<created_time>`, so the edit is a new message;
///   `verb: "remove"` puts the `comment_id` in [`Delivery::removed`].
/// - `object: "instagram"`, `changes[]` with `field: "comments"` (or
///   `live_comments`): a comment (`thread` the `media.id`, `platform_id` the
///   comment `id`, `in_reply_to` the `parent_id`, the author's handle the
///   `username`).
///
/// Counted in [`Delivery::ignored`] and otherwise dropped: echoes of the
/// account's own sends (`is_echo`), anything written by `own_id` (the
/// Page's or Instagram account's own replies), reads, deliveries,
/// reactions, postbacks, `standby` items, other feed items and verbs, other
/// fields, and comments Meta sent without their author (`from`), which
/// are logged.
///
/// Every entry is read as `own_id`'s; for a batch spanning several accounts
/// see [`entry_ids`] and [`parse_for_entry`].
///
/// An `object` other than `page` or `instagram`, a body that is not JSON,
/// or one that does not have the shape Meta sends (no `entry` array, a
/// message without `mid` or sender, a comment without its id or post…) is
/// [`WebhookError::Malformed`].
pub fn parse(raw_body: &[u8], own_id: &str) -> Result<Delivery, WebhookError> {
    parse_entries(raw_body, None, own_id)
}

/// Like [`parse`], reading only the entries whose `id` is `entry_id` (the
/// others are skipped and not counted): for a delivery batching several
/// accounts' entries.
pub fn parse_for_entry(
    raw_body: &[u8],
    entry_id: &str,
    own_id: &str,
) -> Result<Delivery, WebhookError> {
    parse_entries(raw_body, Some(entry_id), own_id)
}

fn parse_entries(
    raw_body: &[u8],
    only_entry: Option<&str>,
    own_id: &str,
) -> Result<Delivery, WebhookError> {
    let (channel, entries) = envelope(raw_body)?;
    let mut delivery = Delivery::default();
    for (i, entry) in entries.iter().enumerate() {
        let at = format!("entry[{i}]");
        let entry_id = READ.required_id(entry, "id", &at)?;
        let messaging = READ.optional_array(entry, "messaging", &at)?;
        let changes = READ.optional_array(entry, "changes", &at)?;
        let standby = READ.optional_array(entry, "standby", &at)?;
        if only_entry.is_some_and(|wanted| wanted != entry_id) {
            continue;
        }
        let entry_time = entry.get("time").and_then(timestamp);
        let ctx = Context {
            channel,
            own_id,
            entry_time,
        };
        for (j, item) in messaging.iter().enumerate() {
            ctx.messaging_item(item, &format!("{at}.messaging[{j}]"), &mut delivery)?;
        }
        for (j, change) in changes.iter().enumerate() {
            ctx.change(change, &format!("{at}.changes[{j}]"), &mut delivery)?;
        }
        // Messages another app holds the thread for (handover protocol):
        // not ours to answer.
        delivery.ignored += standby.len();
    }
    Ok(delivery)
}

/// The channel and the entries of a delivery.
fn envelope(raw_body: &[u8]) -> Result<(&'static str, Vec<Value>), WebhookError> {
    let root: Value = serde_json::from_slice(raw_body)
        .map_err(|e| malformed(format!("the body is not JSON ({e})")))?;
    let Value::Object(mut root) = root else {
        return Err(malformed("the body is not a JSON object"));
    };
    let channel = match root.get("object").and_then(Value::as_str) {
        Some("page") => FACEBOOK,
        Some("instagram") => INSTAGRAM,
        Some(other) => {
            return Err(malformed(format!(
                "the object {:?} is not handled (only page and instagram)",
                payload::excerpt(other, 40)
            )));
        }
        None => return Err(malformed("\"object\" is missing")),
    };
    match root.remove("entry") {
        Some(Value::Array(entries)) => Ok((channel, entries)),
        Some(_) => Err(malformed("\"entry\" is not an array")),
        None => Err(malformed("\"entry\" is missing")),
    }
}

/// What every item of one entry is read with.
struct Context<'a> {
    channel: &'static str,
    own_id: &'a str,
    entry_time: Option<DateTime<Utc>>,
}

impl Context<'_> {
    /// One `messaging[]` item: a message, or an event we ignore.
    fn messaging_item(
        &self,
        item: &Value,
        at: &str,
        out: &mut Delivery,
    ) -> Result<(), WebhookError> {
        if !item.is_object() {
            return Err(malformed(format!("{at} is not an object")));
        }
        let Some(message) = item.get("message") else {
            // read, delivery, reaction, postback, optin, referral…
            out.ignored += 1;
            return Ok(());
        };
        if !message.is_object() {
            return Err(malformed(format!("{at}.message is not an object")));
        }
        let at_message = format!("{at}.message");
        let mid = READ.required_str(message, "mid", &at_message)?;
        let sender = item
            .get("sender")
            .ok_or_else(|| malformed(format!("{at}.sender is missing")))
            .and_then(|s| READ.required_id(s, "id", &format!("{at}.sender")))?;
        let is_echo = message.get("is_echo").and_then(Value::as_bool) == Some(true);
        if is_echo || sender == self.own_id {
            out.ignored += 1;
            return Ok(());
        }
        if message.get("is_deleted").and_then(Value::as_bool) == Some(true) {
            out.removed.push(mid);
            return Ok(());
        }
        let sent_at = item
            .get("timestamp")
            .and_then(timestamp)
            .or(self.entry_time)
            .ok_or_else(|| malformed(format!("{at} has no timestamp")))?;
        let text = message
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let in_reply_to = message
            .get("reply_to")
            .and_then(|r| r.get("mid"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        out.messages.push(Inbound {
            channel: self.channel,
            kind: MessageKind::Direct,
            platform_id: mid,
            thread: sender.clone(),
            in_reply_to,
            author: Author {
                platform_user_id: sender,
                handle: None,
                name: None,
            },
            text,
            sent_at,
        });
        Ok(())
    }

    /// One `changes[]` item: a comment, or a field we ignore.
    fn change(&self, change: &Value, at: &str, out: &mut Delivery) -> Result<(), WebhookError> {
        let field = READ.required_str(change, "field", at)?;
        let value = change
            .get("value")
            .filter(|v| v.is_object())
            .ok_or_else(|| malformed(format!("{at}.value is missing or not an object")))?;
        let at_value = format!("{at}.value");
        match (self.channel, field.as_str()) {
            (FACEBOOK, "feed") => self.feed_change(value, &at_value, out),
            (INSTAGRAM, "comments" | "live_comments") => {
                self.instagram_comment(value, &at_value, out)
            }
            _ => {
                out.ignored += 1;
                Ok(())
            }
        }
    }

    /// A Page feed change: only comments are messages.
    fn feed_change(&self, value: &Value, at: &str, out: &mut Delivery) -> Result<(), WebhookError> {
        if value.get("item").and_then(Value::as_str) != Some("comment") {
            // reactions, likes, posts, shares, status updates…
            out.ignored += 1;
            return Ok(());
        }
        let verb = READ.required_str(value, "verb", at)?;
        let comment_id = READ.required_id(value, "comment_id", at)?;
        let edited = match verb.as_str() {
            "add" => false,
            "edited" => true,
            "remove" => {
                out.removed.push(comment_id);
                return Ok(());
            }
            _ => {
                // hide, unhide, block…
                out.ignored += 1;
                return Ok(());
            }
        };
        let post_id = READ.required_id(value, "post_id", at)?;
        let Some(author) = self.author(value, "name", "username", &comment_id, out) else {
            return Ok(());
        };
        let sent_at = value
            .get("created_time")
            .and_then(timestamp)
            .or(self.entry_time)
            .ok_or_else(|| malformed(format!("{at} has no created_time")))?;
        let platform_id = if edited {
            format!("{comment_id}:edited:{}", sent_at.timestamp())
        } else {
            comment_id
        };
        out.messages.push(Inbound {
            channel: self.channel,
            kind: MessageKind::Comment,
            platform_id,
            thread: post_id,
            in_reply_to: value.get("parent_id").and_then(payload::id_string),
            author,
            text: text_of(value, "message"),
            sent_at,
        });
        Ok(())
    }

    /// An Instagram comment on one of the account's media.
    fn instagram_comment(
        &self,
        value: &Value,
        at: &str,
        out: &mut Delivery,
    ) -> Result<(), WebhookError> {
        let comment_id = READ.required_id(value, "id", at)?;
        let media_id = value
            .get("media")
            .ok_or_else(|| malformed(format!("{at}.media is missing")))
            .and_then(|m| READ.required_id(m, "id", &format!("{at}.media")))?;
        let Some(author) = self.author(value, "name", "username", &comment_id, out) else {
            return Ok(());
        };
        let sent_at = value
            .get("timestamp")
            .or_else(|| value.get("created_time"))
            .and_then(timestamp)
            .or(self.entry_time)
            .ok_or_else(|| malformed(format!("{at} has no time")))?;
        out.messages.push(Inbound {
            channel: self.channel,
            kind: MessageKind::Comment,
            platform_id: comment_id,
            thread: media_id,
            in_reply_to: value.get("parent_id").and_then(payload::id_string),
            author,
            text: text_of(value, "text"),
            sent_at,
        });
        Ok(())
    }

    /// The comment's author (`from`), or `None` (counted as ignored) when
    /// it is the account itself or Meta left it out.
    fn author(
        &self,
        value: &Value,
        name_field: &str,
        handle_field: &str,
        comment_id: &str,
        out: &mut Delivery,
    ) -> Option<Author> {
        let Some(from) = value.get("from") else {
            tracing::warn!(
                network = NETWORK,
                channel = self.channel,
                comment_id,
                "a comment arrived without its author (from); it is ignored"
            );
            out.ignored += 1;
            return None;
        };
        let Some(id) = from.get("id").and_then(payload::id_string) else {
            tracing::warn!(
                network = NETWORK,
                channel = self.channel,
                comment_id,
                "a comment arrived without its author's id; it is ignored"
            );
            out.ignored += 1;
            return None;
        };
        if id == self.own_id {
            out.ignored += 1;
            return None;
        }
        let non_empty = |field: &str| {
            from.get(field)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Some(Author {
            platform_user_id: id,
            handle: non_empty(handle_field),
            name: non_empty(name_field),
        })
    }
}

fn malformed(problem: impl Into<String>) -> WebhookError {
    READ.malformed(problem)
}

/// Reads this network's payloads.
const READ: payload::Reader = payload::Reader::new(NETWORK);

fn text_of(v: &Value, field: &str) -> String {
    v.get(field)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

/// A time as Meta sends it: epoch milliseconds (Messenger `timestamp`,
/// messaging entries' `time`) or seconds (feed `created_time`, changes
/// entries' `time`), told apart by size (1e11 seconds is the year 5138),
/// as a number or a numeric string; or an ISO 8601 string
/// (`2017-08-31T18:10:30+0000`, as the Graph API reads them).
fn timestamp(v: &Value) -> Option<DateTime<Utc>> {
    const MILLIS_FROM: i64 = 100_000_000_000;
    let epoch = |n: i64| {
        if n.abs() >= MILLIS_FROM {
            DateTime::from_timestamp_millis(n)
        } else {
            DateTime::from_timestamp(n, 0)
        }
    };
    match v {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .and_then(epoch),
        Value::String(s) => s.parse::<i64>().ok().and_then(epoch).or_else(|| {
            DateTime::parse_from_rfc3339(s)
                .or_else(|_| DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%z"))
                .ok()
                .map(|t| t.with_timezone(&Utc))
        }),
        _ => None,
    }
}

// ---------------------------------------------------------------------------
// Graph API client
// ---------------------------------------------------------------------------

/// Rate-limit usage Meta reports in the `X-App-Usage`, `X-Page-Usage` and
/// `X-Business-Use-Case-Usage` headers, in percent of the allowance (the
/// highest over all the entries the headers list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Calls made, in percent of the calls allowed in the window.
    pub call_count: u32,
    /// Total time taken, in percent of the time allowed.
    pub total_time: u32,
    /// CPU time taken, in percent of the CPU time allowed.
    pub total_cputime: u32,
}

impl Usage {
    /// The highest of the three percentages.
    pub fn highest(&self) -> u32 {
        self.call_count.max(self.total_time).max(self.total_cputime)
    }

    /// Whether the account is close enough to the limit
    /// ([`NEAR_LIMIT_PERCENT`]) that the service should treat it as rate
    /// limited (and degrade it) before Meta starts refusing calls.
    pub fn near_limit(&self) -> bool {
        self.highest() >= NEAR_LIMIT_PERCENT
    }

    fn max(self, other: Usage) -> Usage {
        Usage {
            call_count: self.call_count.max(other.call_count),
            total_time: self.total_time.max(other.total_time),
            total_cputime: self.total_cputime.max(other.total_cputime),
        }
    }
}

/// Reads the usage headers of a Graph API answer: `X-App-Usage` and
/// `X-Page-Usage` (`{"call_count":28,"total_time":25,"total_cputime":25}`)
/// and `X-Business-Use-Case-Usage` (`{"<object id>":[{"type":"pages",
/// "call_count":…,"total_time":…,"total_cputime":…,
/// "estimated_time_to_regain_access":…}]}`), keeping the highest value of
/// each field. `None` when no header is there or none can be read (Meta
/// only sends them once enough calls were made).
///
/// The service should treat an account whose usage is
/// [`Usage::near_limit`] as rate limited; [`GraphClient::send_with_usage`]
/// and [`GraphClient::publish_with_usage`] return it with each answer.
pub fn usage(headers: &HeaderMap) -> Option<Usage> {
    usage_entries(headers)
        .into_iter()
        .map(|entry| Usage {
            call_count: percent(&entry, "call_count"),
            total_time: percent(&entry, "total_time"),
            total_cputime: percent(&entry, "total_cputime"),
        })
        .reduce(Usage::max)
}

/// Every usage object in the three headers.
fn usage_entries(headers: &HeaderMap) -> Vec<Map<String, Value>> {
    let json_header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|s| serde_json::from_str::<Value>(s).ok())
    };
    let mut entries = Vec::new();
    for name in ["x-app-usage", "x-page-usage"] {
        if let Some(Value::Object(entry)) = json_header(name) {
            entries.push(entry);
        }
    }
    if let Some(Value::Object(by_object)) = json_header("x-business-use-case-usage") {
        for list in by_object.into_values() {
            if let Value::Array(list) = list {
                entries.extend(list.into_iter().filter_map(|v| match v {
                    Value::Object(entry) => Some(entry),
                    _ => None,
                }));
            }
        }
    }
    entries
}

fn percent(entry: &Map<String, Value>, field: &str) -> u32 {
    entry
        .get(field)
        .and_then(|v| v.as_u64().or_else(|| v.as_f64().map(|f| f.max(0.0) as u64)))
        .map_or(0, |n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// How long Meta says to wait: the highest `estimated_time_to_regain_access`
/// (minutes) in the usage headers, else `Retry-After` (seconds), else 60 s.
fn rate_limit_wait(headers: &HeaderMap) -> TimeDelta {
    let minutes = usage_entries(headers)
        .iter()
        .filter_map(|e| e.get("estimated_time_to_regain_access"))
        .filter_map(Value::as_i64)
        .max()
        .unwrap_or(0);
    if minutes > 0 {
        return TimeDelta::minutes(minutes.min(24 * 60));
    }
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|s| *s > 0)
        .map_or(DEFAULT_RATE_LIMIT_WAIT, |s| {
            TimeDelta::seconds(s.min(24 * 3600))
        })
}

/// What a call was for, to name the permission it lacks and the window it
/// broke.
#[derive(Debug, Clone, Copy)]
enum Call {
    /// A private message sent within this window (hours).
    Message { window_hours: u32 },
    /// A public reply to a comment.
    Comment,
    /// A post on the Page.
    Publish,
}

/// A Graph API client for one network (Facebook or Instagram): replies by
/// private message (Send API) or under a comment, and publishes on a Page.
/// It keeps no state beyond the base URL and the HTTP client (whose
/// timeouts the service configures); the account's token travels only in
/// the `Authorization: Bearer` header.
#[derive(Debug, Clone)]
pub struct GraphClient {
    base: String,
    http: reqwest::Client,
    channel: &'static str,
}

impl GraphClient {
    /// A client for Facebook Pages and Messenger at `base` (e.g.
    /// [`GRAPH_BASE`], or a fake's URL), with the versioned path and no
    /// trailing slash.
    pub fn new(base: impl Into<String>, http: reqwest::Client) -> Self {
        Self::with_channel(base, http, FACEBOOK)
    }

    /// A client for an Instagram professional account at `base`
    /// (`https://graph.instagram.com/v25.0` with Instagram Login,
    /// [`GRAPH_BASE`] with Facebook Login): direct messages go to
    /// `/{ig_id}/messages`, comment replies to `/{comment_id}/replies`, and
    /// errors name the `instagram` network and its permissions. Instagram
    /// cannot publish a post without an image or a video, so
    /// [`GraphClient::publish`] refuses.
    pub fn instagram(base: impl Into<String>, http: reqwest::Client) -> Self {
        Self::with_channel(base, http, INSTAGRAM)
    }

    fn with_channel(base: impl Into<String>, http: reqwest::Client, channel: &'static str) -> Self {
        let mut base = base.into();
        while base.ends_with('/') {
            base.pop();
        }
        Self {
            base,
            http,
            channel,
        }
    }

    /// The channel this client talks for (`facebook` or `instagram`).
    pub fn channel(&self) -> &'static str {
        self.channel
    }

    /// Sends a reply:
    /// - [`ReplyTarget::Direct`]: within 24 h of the citizen's last message,
    ///   `POST {base}/{account id}/messages` with `messaging_type:
    ///   "RESPONSE"`; within 7 days and with `creds.human_agent`, with
    ///   `messaging_type: "MESSAGE_TAG", tag: "HUMAN_AGENT"`; later,
    ///   [`SendError::OutsideWindow`] without calling the API. Answers
    ///   `{"recipient_id","message_id"}`: the `message_id` is returned.
    /// - [`ReplyTarget::Public`]: `POST {base}/{comment id}/comments`
    ///   (Instagram: `/replies`) with `{"message": text}`; answers `{"id"}`.
    ///   An edited comment's id (`<id>:edited:<time>`) is answered as `<id>`.
    pub async fn send(
        &self,
        creds: &Credentials,
        reply: &OutboundReply,
    ) -> Result<Sent, SendError> {
        self.send_with_usage(creds, reply).await.0
    }

    /// [`GraphClient::send`], also returning the usage Meta reported with
    /// its answer (see [`usage`]); `None` when no call was made or Meta did
    /// not report it.
    pub async fn send_with_usage(
        &self,
        creds: &Credentials,
        reply: &OutboundReply,
    ) -> (Result<Sent, SendError>, Option<Usage>) {
        match &reply.target {
            ReplyTarget::Direct {
                recipient,
                last_inbound_at,
            } => {
                let age = reply.now.signed_duration_since(*last_inbound_at);
                let (messaging_type, tag, window_hours) =
                    if age <= TimeDelta::hours(i64::from(STANDARD_WINDOW_HOURS)) {
                        ("RESPONSE", None, STANDARD_WINDOW_HOURS)
                    } else if creds.human_agent
                        && age <= TimeDelta::hours(i64::from(HUMAN_AGENT_WINDOW_HOURS))
                    {
                        ("MESSAGE_TAG", Some("HUMAN_AGENT"), HUMAN_AGENT_WINDOW_HOURS)
                    } else {
                        let hours = if creds.human_agent {
                            HUMAN_AGENT_WINDOW_HOURS
                        } else {
                            STANDARD_WINDOW_HOURS
                        };
                        return (
                            Err(SendError::OutsideWindow {
                                network: self.channel,
                                hours,
                            }),
                            None,
                        );
                    };
                let account = match self.segment(&creds.external_id) {
                    Ok(account) => account,
                    Err(e) => return (Err(e), None),
                };
                let mut body = json!({
                    "recipient": { "id": recipient },
                    "messaging_type": messaging_type,
                    "message": { "text": reply.text },
                });
                if let (Some(tag), Value::Object(body)) = (tag, &mut body) {
                    body.insert("tag".to_owned(), Value::from(tag));
                }
                self.post(
                    creds,
                    &format!("{account}/messages"),
                    &body,
                    &["message_id"],
                    Call::Message { window_hours },
                    reply.now,
                )
                .await
            }
            ReplyTarget::Public { in_reply_to } => {
                // An edited comment is recorded as `<id>:edited:<time>`.
                let comment = in_reply_to.split(':').next().unwrap_or_default();
                let comment = match self.segment(comment) {
                    Ok(comment) => comment,
                    Err(e) => return (Err(e), None),
                };
                let edge = if self.channel == INSTAGRAM {
                    "replies"
                } else {
                    "comments"
                };
                self.post(
                    creds,
                    &format!("{comment}/{edge}"),
                    &json!({ "message": reply.text }),
                    &["id"],
                    Call::Comment,
                    reply.now,
                )
                .await
            }
        }
    }

    /// Publishes on the Page: `POST {base}/{page id}/feed` with `message`
    /// and, if any, `link`; answers `{"id":"<page>_<post>"}`, returned.
    /// With an `image_url`, a photo post instead: `POST {base}/{page
    /// id}/photos` with `url` and `caption` (the text, and the link after
    /// it unless the text has it: a photo post has no link field); answers
    /// `{"id":"<photo>","post_id":"<page>_<post>"}`, the `post_id` returned
    /// (comments on it name that post). On Instagram,
    /// [`SendError::Rejected`] without calling the API.
    pub async fn publish(&self, creds: &Credentials, post: &Post) -> Result<Sent, SendError> {
        self.publish_with_usage(creds, post).await.0
    }

    /// [`GraphClient::publish`], also returning the usage Meta reported
    /// (see [`usage`]).
    pub async fn publish_with_usage(
        &self,
        creds: &Credentials,
        post: &Post,
    ) -> (Result<Sent, SendError>, Option<Usage>) {
        if self.channel == INSTAGRAM {
            return (
                Err(SendError::Rejected {
                    network: self.channel,
                    reason: "Instagram cannot publish a post without an image or a video"
                        .to_owned(),
                }),
                None,
            );
        }
        let page = match self.segment(&creds.external_id) {
            Ok(page) => page,
            Err(e) => return (Err(e), None),
        };
        if let Some(image) = &post.image_url {
            let caption = match post.link.as_deref().map(str::trim) {
                Some(link) if !link.is_empty() && !post.text.contains(link) => {
                    format!("{}\n\n{link}", post.text.trim_end())
                }
                _ => post.text.clone(),
            };
            return self
                .post(
                    creds,
                    &format!("{page}/photos"),
                    &json!({ "url": image, "caption": caption }),
                    &["post_id", "id"],
                    Call::Publish,
                    Utc::now(),
                )
                .await;
        }
        let mut body = Map::new();
        body.insert("message".to_owned(), Value::from(post.text.as_str()));
        if let Some(link) = &post.link {
            body.insert("link".to_owned(), Value::from(link.as_str()));
        }
        self.post(
            creds,
            &format!("{page}/feed"),
            &Value::Object(body),
            &["id"],
            Call::Publish,
            Utc::now(),
        )
        .await
    }

    /// An id checked to be safe as one URL path segment (Meta's ids are
    /// digits and underscores), so nothing from a webhook can change the
    /// endpoint called.
    fn segment<'a>(&self, id: &'a str) -> Result<&'a str, SendError> {
        let safe = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if safe {
            Ok(id)
        } else {
            Err(SendError::Rejected {
                network: self.channel,
                reason: format!("{:?} is not a valid id", payload::excerpt(id, 40)),
            })
        }
    }

    /// POSTs `body` as JSON to `{base}/{path}` and reads the first of
    /// `id_fields` present in a successful answer.
    async fn post(
        &self,
        creds: &Credentials,
        path: &str,
        body: &Value,
        id_fields: &[&str],
        call: Call,
        now: DateTime<Utc>,
    ) -> (Result<Sent, SendError>, Option<Usage>) {
        let token = creds.access_token.expose_secret();
        let response = self
            .http
            .post(format!("{}/{path}", self.base))
            .bearer_auth(token)
            .json(body)
            .send()
            .await;
        let response = match response {
            Ok(response) => response,
            Err(e) => return (Err(self.transport_error(&e)), None),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let used = usage(&headers);
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(e) => return (Err(self.transport_error(&e)), used),
        };
        if !status.is_success() {
            let error = self.graph_error(status, &headers, &bytes, call, now, token);
            return (Err(error), used);
        }
        let id = serde_json::from_slice::<Value>(&bytes).ok().and_then(|v| {
            id_fields
                .iter()
                .find_map(|f| v.get(*f).and_then(payload::id_string))
        });
        let result = match id {
            Some(platform_id) => Ok(Sent { platform_id }),
            None => {
                tracing::warn!(
                    network = NETWORK,
                    channel = self.channel,
                    path,
                    "the Graph API answered a success without the id expected"
                );
                Err(SendError::Temporary {
                    network: self.channel,
                    reason: format!("the answer had no {:?}", id_fields.join(" or ")),
                })
            }
        };
        (result, used)
    }

    /// A failure before Graph answered (connection, timeout, body cut).
    fn transport_error(&self, e: &reqwest::Error) -> SendError {
        let reason = if e.is_timeout() {
            "the request timed out".to_owned()
        } else if e.is_connect() {
            "could not connect".to_owned()
        } else {
            // Without the URL: it names ids, not secrets, but keep it short.
            format!("the request failed ({})", RedactedError(e))
        };
        tracing::warn!(network = NETWORK, channel = self.channel, %reason, "Graph API call failed");
        SendError::Temporary {
            network: self.channel,
            reason,
        }
    }

    /// Maps Graph's error answer (`{"error":{"message","type","code",
    /// "error_subcode","is_transient","fbtrace_id"}}` and its status) to a
    /// [`SendError`].
    fn graph_error(
        &self,
        status: StatusCode,
        headers: &HeaderMap,
        body: &[u8],
        call: Call,
        now: DateTime<Utc>,
        token: &str,
    ) -> SendError {
        let network = self.channel;
        let error = serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v.get("error").cloned())
            .filter(Value::is_object);
        let code = error
            .as_ref()
            .and_then(|e| e.get("code"))
            .and_then(Value::as_i64);
        let subcode = error
            .as_ref()
            .and_then(|e| e.get("error_subcode"))
            .and_then(Value::as_i64);
        let transient = error
            .as_ref()
            .and_then(|e| e.get("is_transient"))
            .and_then(Value::as_bool)
            == Some(true);
        let message = error
            .as_ref()
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .map(|m| redact(m, token))
            .unwrap_or_default();
        let trace = error
            .as_ref()
            .and_then(|e| e.get("fbtrace_id"))
            .and_then(Value::as_str)
            .map(|t| format!(" (fbtrace_id {})", payload::excerpt(t, 40)))
            .unwrap_or_default();
        tracing::warn!(
            network = NETWORK,
            channel = network,
            status = status.as_u16(),
            code,
            subcode,
            fbtrace = %trace,
            "the Graph API refused a call"
        );
        let rate_limited = matches!(code, Some(4 | 17 | 32 | 613 | 80_000..=80_014));
        if status == StatusCode::TOO_MANY_REQUESTS || rate_limited {
            return SendError::RateLimited {
                network,
                until: now + rate_limit_wait(headers),
            };
        }
        match code {
            // 190: invalid or expired token (subcodes 458–467); 102: session
            // key invalid; 104: no token; 2500: an active token is required.
            Some(102 | 104 | 190 | 2500) => SendError::TokenExpired { network },
            Some(10) if subcode.is_some_and(|s| OUTSIDE_WINDOW_SUBCODES.contains(&s)) => {
                let hours = match call {
                    Call::Message { window_hours } => window_hours,
                    Call::Comment | Call::Publish => STANDARD_WINDOW_HOURS,
                };
                SendError::OutsideWindow { network, hours }
            }
            // 3: capability; 10: permission denied; 200–299: permission
            // not granted or revoked.
            Some(3 | 10 | 200..=299) => SendError::PermissionMissing {
                network,
                permission: self.permission(call, &message),
            },
            // 1: unknown, 2: service unavailable, 1200: temporary send
            // failure.
            Some(1 | 2 | 1200) => SendError::Temporary {
                network,
                reason: format!("{}{trace}", or_code(&message, code)),
            },
            _ if transient || status.is_server_error() => SendError::Temporary {
                network,
                reason: format!("{}{trace}", or_code(&message, code)),
            },
            Some(_) => SendError::Rejected {
                network,
                reason: format!("{}{trace}", or_code(&message, code)),
            },
            // No Graph error body (a proxy's page, an empty body…).
            None => SendError::Temporary {
                network,
                reason: format!("HTTP {} without a Graph error", status.as_u16()),
            },
        }
    }

    /// The permission a refused call lacks: the one the call needs if the
    /// message names it, else the first permission the message names, else
    /// the one the call needs.
    fn permission(&self, call: Call, message: &str) -> String {
        let needed = match (self.channel, call) {
            (INSTAGRAM, Call::Message { .. }) => "instagram_manage_messages",
            (INSTAGRAM, Call::Comment) => "instagram_manage_comments",
            (INSTAGRAM, Call::Publish) => "instagram_content_publish",
            (_, Call::Message { .. }) => "pages_messaging",
            (_, Call::Comment) => "pages_manage_engagement",
            (_, Call::Publish) => "pages_manage_posts",
        };
        let named: Vec<&str> = message
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .filter(|w| {
                ["pages_", "instagram_", "publish_", "business_", "read_"]
                    .iter()
                    .any(|p| w.starts_with(p) && w.len() > p.len())
            })
            .collect();
        if named.contains(&needed) {
            needed.to_owned()
        } else {
            named.first().copied().unwrap_or(needed).to_owned()
        }
    }
}

fn or_code(message: &str, code: Option<i64>) -> String {
    match (message.is_empty(), code) {
        (false, _) => payload::excerpt(message, 300),
        (true, Some(code)) => format!("Graph error code {code}"),
        (true, None) => "Graph error".to_owned(),
    }
}

/// `message` with any occurrence of the token removed (Graph does not echo
/// tokens, but an error must never carry one).
fn redact(message: &str, token: &str) -> String {
    if token.is_empty() {
        message.to_owned()
    } else {
        message.replace(token, "[redacted]")
    }
}

/// A reqwest error shown without its URL.
struct RedactedError<'a>(&'a reqwest::Error);

impl std::fmt::Display for RedactedError<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(self.0);
        let mut text = if self.0.is_body() {
            "reading the answer failed".to_owned()
        } else if self.0.is_request() {
            "sending the request failed".to_owned()
        } else {
            "HTTP error".to_owned()
        };
        // The innermost cause says what happened (reset, refused…).
        while let Some(cause) = source {
            if cause.source().is_none() {
                text = format!("{text}: {cause}");
            }
            source = cause.source();
        }
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use chrono::TimeZone;

    const SECRET: &str = "app-secret-for-tests";
    const PAGE: &str = "1029384756";
    const IG: &str = "17841400000000001";

    fn secret(s: &str) -> SecretString {
        SecretString::from(s.to_owned())
    }

    fn at_ms(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(ms).unwrap()
    }

    fn at_s(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(s, 0).unwrap()
    }

    fn is_malformed(r: Result<Delivery, WebhookError>) -> bool {
        matches!(
            r,
            Err(WebhookError::Malformed {
                network: "meta",
                ..
            })
        )
    }

    // -- signature ---------------------------------------------------------

    /// As Meta sends it: `á` escaped as `\u00e1` (lowercase hex).
    const ESCAPED_BODY: &str = r#"{"object":"page","entry":[{"id":"1029384756","time":1767261600000,"messaging":[{"sender":{"id":"5550001"},"recipient":{"id":"1029384756"},"timestamp":1767261600000,"message":{"mid":"m_abc","text":"calle Mayor est\u00e1 rota"}}]}]}"#;

    /// `openssl dgst -sha256 -hmac app-secret-for-tests` over ESCAPED_BODY.
    const ESCAPED_BODY_SIGNATURE: &str =
        "sha256=6c6b1f969afc2b468ea0036b1d120ed072f8a449487a69a53afa2aa4528a39e8";

    #[test]
    fn the_signature_is_over_the_escaped_raw_bytes() {
        let raw = ESCAPED_BODY.as_bytes();
        assert!(ESCAPED_BODY.contains(r"est\u00e1"));
        assert_eq!(
            signature_header(SECRET.as_bytes(), raw),
            ESCAPED_BODY_SIGNATURE
        );
        verify_signature(&secret(SECRET), raw, Some(ESCAPED_BODY_SIGNATURE)).unwrap();

        // The same JSON re-serialised (serde_json writes "á" as UTF-8) is
        // other bytes, with another signature.
        let reserialised =
            serde_json::to_vec(&serde_json::from_slice::<Value>(raw).unwrap()).unwrap();
        assert_ne!(reserialised, raw);
        assert_ne!(
            signature_header(SECRET.as_bytes(), &reserialised),
            ESCAPED_BODY_SIGNATURE
        );
        assert_eq!(
            verify_signature(&secret(SECRET), &reserialised, Some(ESCAPED_BODY_SIGNATURE)),
            Err(WebhookError::BadSignature)
        );

        // And the text is read unescaped.
        let delivery = parse(raw, PAGE).unwrap();
        assert_eq!(delivery.messages[0].text, "calle Mayor está rota");
    }

    #[test]
    fn a_missing_malformed_or_wrong_signature_is_refused() {
        let raw = ESCAPED_BODY.as_bytes();
        let s = secret(SECRET);
        let bad = |header: Option<&str>| verify_signature(&s, raw, header);
        assert_eq!(bad(None), Err(WebhookError::BadSignature));
        assert_eq!(bad(Some("")), Err(WebhookError::BadSignature));
        assert_eq!(bad(Some("sha256=")), Err(WebhookError::BadSignature));
        assert_eq!(bad(Some("sha256=zz")), Err(WebhookError::BadSignature));
        // the digest without its prefix, or with the legacy sha1 one
        let digest = &ESCAPED_BODY_SIGNATURE["sha256=".len()..];
        assert_eq!(bad(Some(digest)), Err(WebhookError::BadSignature));
        assert_eq!(
            bad(Some(&format!("sha1={digest}"))),
            Err(WebhookError::BadSignature)
        );
        // truncated
        assert_eq!(
            bad(Some(
                &ESCAPED_BODY_SIGNATURE[..ESCAPED_BODY_SIGNATURE.len() - 2]
            )),
            Err(WebhookError::BadSignature)
        );
        // another secret
        assert_eq!(
            verify_signature(&secret("other"), raw, Some(ESCAPED_BODY_SIGNATURE)),
            Err(WebhookError::BadSignature)
        );
        // an empty secret is never accepted, even with a matching digest
        let empty_sig = signature_header(b"", raw);
        assert_eq!(
            verify_signature(&secret(""), raw, Some(&empty_sig)),
            Err(WebhookError::BadSignature)
        );
        // one byte changed
        let mut tampered = raw.to_vec();
        tampered[10] ^= 1;
        assert_eq!(
            verify_signature(&s, &tampered, Some(ESCAPED_BODY_SIGNATURE)),
            Err(WebhookError::BadSignature)
        );
        // uppercase hex is the same digest
        let upper = format!("sha256={}", digest.to_uppercase());
        verify_signature(&s, raw, Some(&upper)).unwrap();
    }

    // -- subscription check -----------------------------------------------

    #[test]
    fn the_subscription_check_answers_the_challenge_only_with_the_right_token() {
        let expected = secret("verify-me");
        assert_eq!(
            verify_subscription(
                Some("subscribe"),
                Some("verify-me"),
                Some("1158201444"),
                &expected
            ),
            Ok("1158201444".to_owned())
        );
        let refused = |mode, token, challenge| {
            verify_subscription(mode, token, challenge, &expected)
                == Err(WebhookError::BadVerifyToken)
        };
        assert!(refused(Some("subscribe"), Some("verify-mE"), Some("1")));
        assert!(refused(Some("subscribe"), Some("verify-me-too"), Some("1")));
        assert!(refused(Some("subscribe"), Some(""), Some("1")));
        assert!(refused(Some("subscribe"), None, Some("1")));
        assert!(refused(Some("unsubscribe"), Some("verify-me"), Some("1")));
        assert!(refused(None, Some("verify-me"), Some("1")));
        assert!(refused(Some("subscribe"), Some("verify-me"), None));
        // an account without a verify token accepts nothing
        assert_eq!(
            verify_subscription(Some("subscribe"), Some(""), Some("1"), &secret("")),
            Err(WebhookError::BadVerifyToken)
        );
    }

    // -- parsing -------------------------------------------------------------

    fn page_messaging(items: Value) -> Vec<u8> {
        json!({"object":"page","entry":[{"id":PAGE,"time":1767261600123_i64,"messaging":items}]})
            .to_string()
            .into_bytes()
    }

    fn page_feed(value: Value) -> Vec<u8> {
        json!({"object":"page","entry":[{"id":PAGE,"time":1767261600,"changes":[{"field":"feed","value":value}]}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn a_messenger_text_message_is_a_direct_message() {
        let raw = page_messaging(json!([{
            "sender":{"id":"5550001"},"recipient":{"id":PAGE},"timestamp":1767261600000_i64,
            "message":{"mid":"m_1","text":"Hay un bache en mi calle","reply_to":{"mid":"m_0"}}
        }]));
        let delivery = parse(&raw, PAGE).unwrap();
        assert_eq!(
            delivery,
            Delivery {
                messages: vec![Inbound {
                    channel: "facebook",
                    kind: MessageKind::Direct,
                    platform_id: "m_1".into(),
                    thread: "5550001".into(),
                    in_reply_to: Some("m_0".into()),
                    author: Author {
                        platform_user_id: "5550001".into(),
                        handle: None,
                        name: None,
                    },
                    text: "Hay un bache en mi calle".into(),
                    sent_at: at_ms(1_767_261_600_000),
                }],
                removed: vec![],
                ignored: 0,
            }
        );
    }

    #[test]
    fn a_messenger_message_with_only_attachments_has_empty_text() {
        let raw = page_messaging(json!([{
            "sender":{"id":"5550001"},"recipient":{"id":PAGE},"timestamp":1767261600000_i64,
            "message":{"mid":"m_2","attachments":[{"type":"image","payload":{"url":"https://scontent.example/x.jpg"}}]}
        }]));
        let delivery = parse(&raw, PAGE).unwrap();
        assert_eq!(delivery.messages.len(), 1);
        assert_eq!(delivery.messages[0].text, "");
        assert_eq!(delivery.messages[0].platform_id, "m_2");
        assert_eq!(delivery.messages[0].in_reply_to, None);
    }

    #[test]
    fn echoes_and_the_pages_own_messages_are_dropped() {
        let raw = page_messaging(json!([
            {"sender":{"id":PAGE},"recipient":{"id":"5550001"},"timestamp":1767261600000_i64,
             "message":{"mid":"m_echo","is_echo":true,"app_id":1234,"text":"Gracias, lo revisamos"}},
            // an echo whose sender is somehow not the page still is an echo
            {"sender":{"id":"999"},"recipient":{"id":"5550001"},"timestamp":1767261600000_i64,
             "message":{"mid":"m_echo2","is_echo":true,"text":"x"}},
            // the page's own message without the echo flag
            {"sender":{"id":PAGE},"recipient":{"id":"5550001"},"timestamp":1767261600000_i64,
             "message":{"mid":"m_own","text":"x"}}
        ]));
        let delivery = parse(&raw, PAGE).unwrap();
        assert!(delivery.messages.is_empty());
        assert_eq!(delivery.ignored, 3);
    }

    #[test]
    fn reads_deliveries_reactions_and_postbacks_are_ignored() {
        let raw = page_messaging(json!([
            {"sender":{"id":"5550001"},"recipient":{"id":PAGE},"timestamp":1767261600000_i64,
             "read":{"watermark":1767261599000_i64}},
            {"sender":{"id":"5550001"},"recipient":{"id":PAGE},"timestamp":1767261600000_i64,
             "delivery":{"mids":["m_9"],"watermark":1767261599000_i64}},
            {"sender":{"id":"5550001"},"recipient":{"id":PAGE},"timestamp":1767261600000_i64,
             "reaction":{"mid":"m_9","action":"react","reaction":"love"}},
            {"sender":{"id":"5550001"},"recipient":{"id":PAGE},"timestamp":1767261600000_i64,
             "postback":{"title":"Empezar","payload":"GET_STARTED"}},
            {"sender":{"id":"5550001"},"recipient":{"id":PAGE},"timestamp":1767261600000_i64,
             "message":{"mid":"m_10","text":"hola"}}
        ]));
        let delivery = parse(&raw, PAGE).unwrap();
        assert_eq!(delivery.messages.len(), 1);
        assert_eq!(delivery.messages[0].platform_id, "m_10");
        assert_eq!(delivery.ignored, 4);
    }

    #[test]
    fn a_feed_comment_is_a_comment_on_its_post() {
        let raw = page_feed(json!({
            "item":"comment","verb":"add","comment_id":"444_555","post_id":"1029384756_444",
            "parent_id":"1029384756_444","from":{"id":"987654321","name":"Lucía Pérez"},
            "message":"La farola lleva una semana apagada","created_time":1767261500
        }));
        let delivery = parse(&raw, PAGE).unwrap();
        assert_eq!(
            delivery.messages,
            vec![Inbound {
                channel: "facebook",
                kind: MessageKind::Comment,
                platform_id: "444_555".into(),
                thread: "1029384756_444".into(),
                in_reply_to: Some("1029384756_444".into()),
                author: Author {
                    platform_user_id: "987654321".into(),
                    handle: None,
                    name: Some("Lucía Pérez".into()),
                },
                text: "La farola lleva una semana apagada".into(),
                sent_at: at_s(1_767_261_500),
            }]
        );
        assert_eq!(delivery.ignored, 0);
    }

    #[test]
    fn an_edited_feed_comment_is_a_new_message() {
        let raw = page_feed(json!({
            "item":"comment","verb":"edited","comment_id":"444_555","post_id":"1029384756_444",
            "parent_id":"444_550","from":{"id":"987654321","name":"Lucía Pérez"},
            "message":"La farola lleva dos semanas apagada","created_time":1767262000
        }));
        let delivery = parse(&raw, PAGE).unwrap();
        assert_eq!(delivery.messages.len(), 1);
        let m = &delivery.messages[0];
        assert_eq!(m.platform_id, "444_555:edited:1767262000");
        assert_eq!(m.thread, "1029384756_444");
        assert_eq!(m.in_reply_to.as_deref(), Some("444_550"));
        assert_eq!(m.text, "La farola lleva dos semanas apagada");
    }

    #[test]
    fn a_removed_feed_comment_is_reported_removed() {
        let raw = page_feed(json!({
            "item":"comment","verb":"remove","comment_id":"444_555","post_id":"1029384756_444",
            "parent_id":"1029384756_444","from":{"id":"987654321","name":"Lucía Pérez"},
            "created_time":1767262100
        }));
        let delivery = parse(&raw, PAGE).unwrap();
        assert!(delivery.messages.is_empty());
        assert_eq!(delivery.removed, vec!["444_555".to_owned()]);
    }

    #[test]
    fn the_pages_own_comments_and_other_feed_items_are_dropped() {
        let own = page_feed(json!({
            "item":"comment","verb":"add","comment_id":"444_556","post_id":"1029384756_444",
            "parent_id":"444_555","from":{"id":PAGE,"name":"Ayuntamiento"},
            "message":"Gracias, avisamos al servicio","created_time":1767261600
        }));
        let delivery = parse(&own, PAGE).unwrap();
        assert!(delivery.messages.is_empty());
        assert_eq!(delivery.ignored, 1);

        let reaction = page_feed(json!({
            "item":"reaction","verb":"add","post_id":"1029384756_444","reaction_type":"like",
            "from":{"id":"987654321","name":"Lucía Pérez"},"created_time":1767261600
        }));
        let hidden = page_feed(json!({
            "item":"comment","verb":"hide","comment_id":"444_555","post_id":"1029384756_444",
            "created_time":1767261600
        }));
        let no_author = page_feed(json!({
            "item":"comment","verb":"add","comment_id":"444_557","post_id":"1029384756_444",
            "message":"?","created_time":1767261600
        }));
        for raw in [reaction, hidden, no_author] {
            let delivery = parse(&raw, PAGE).unwrap();
            assert!(delivery.messages.is_empty());
            assert_eq!(delivery.ignored, 1);
        }
    }

    #[test]
    fn an_instagram_direct_message_is_a_direct_message() {
        let raw =
            json!({"object":"instagram","entry":[{"id":IG,"time":1767261600500_i64,"messaging":[
                {"sender":{"id":"IGSID-1"},"recipient":{"id":IG},"timestamp":1767261600400_i64,
                 "message":{"mid":"aWdfZAG1","text":"¿A qué hora abre el registro?"}},
                {"sender":{"id":IG},"recipient":{"id":"IGSID-1"},"timestamp":1767261600450_i64,
                 "message":{"mid":"aWdfZAG2","text":"A las 9","is_echo":true}},
                {"sender":{"id":"IGSID-1"},"recipient":{"id":IG},"timestamp":1767261600460_i64,
                 "message":{"mid":"aWdfZAG0","is_deleted":true}}
            ]}]})
            .to_string();
        let delivery = parse(raw.as_bytes(), IG).unwrap();
        assert_eq!(
            delivery.messages,
            vec![Inbound {
                channel: "instagram",
                kind: MessageKind::Direct,
                platform_id: "aWdfZAG1".into(),
                thread: "IGSID-1".into(),
                in_reply_to: None,
                author: Author {
                    platform_user_id: "IGSID-1".into(),
                    handle: None,
                    name: None,
                },
                text: "¿A qué hora abre el registro?".into(),
                sent_at: at_ms(1_767_261_600_400),
            }]
        );
        assert_eq!(delivery.ignored, 1);
        assert_eq!(delivery.removed, vec!["aWdfZAG0".to_owned()]);
    }

    #[test]
    fn an_instagram_comment_is_a_comment_on_its_media() {
        let raw = json!({"object":"instagram","entry":[{"id":IG,"time":1767261600,"changes":[
            {"field":"comments","value":{"from":{"id":"IGSID-2","username":"vecina.del.barrio"},
             "media":{"id":"17900000000000001","media_product_type":"FEED"},
             "id":"17800000000000001","parent_id":"17800000000000000","text":"¿Y la poda?"}},
            {"field":"comments","value":{"from":{"id":IG,"username":"ayto"},
             "media":{"id":"17900000000000001"},"id":"17800000000000002","text":"Mañana"}},
            {"field":"mentions","value":{"media_id":"17900000000000009","comment_id":"178"}}
        ]}]})
        .to_string();
        let delivery = parse(raw.as_bytes(), IG).unwrap();
        assert_eq!(
            delivery.messages,
            vec![Inbound {
                channel: "instagram",
                kind: MessageKind::Comment,
                platform_id: "17800000000000001".into(),
                thread: "17900000000000001".into(),
                in_reply_to: Some("17800000000000000".into()),
                author: Author {
                    platform_user_id: "IGSID-2".into(),
                    handle: Some("vecina.del.barrio".into()),
                    name: None,
                },
                text: "¿Y la poda?".into(),
                sent_at: at_s(1_767_261_600),
            }]
        );
        assert_eq!(delivery.ignored, 2);
    }

    #[test]
    fn every_entry_and_every_item_of_a_batch_is_read() {
        let item = |psid: &str, mid: &str, ms: i64| {
            json!({"sender":{"id":psid},"recipient":{"id":PAGE},"timestamp":ms,
                   "message":{"mid":mid,"text":mid}})
        };
        let raw = json!({"object":"page","entry":[
            {"id":PAGE,"time":1767261600000_i64,"messaging":[
                item("1", "m_a", 1_767_261_600_001), item("2", "m_b", 1_767_261_600_002)]},
            {"id":PAGE,"time":1767261700000_i64,"messaging":[
                item("1", "m_c", 1_767_261_700_001), item("3", "m_d", 1_767_261_700_002)],
             "changes":[{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"9_1",
                "post_id":"1029384756_9","from":{"id":"4","name":"N"},"message":"c","created_time":1767261700}}]}
        ]})
        .to_string();
        let delivery = parse(raw.as_bytes(), PAGE).unwrap();
        let ids: Vec<&str> = delivery
            .messages
            .iter()
            .map(|m| m.platform_id.as_str())
            .collect();
        assert_eq!(ids, ["m_a", "m_b", "m_c", "m_d", "9_1"]);
        assert_eq!(
            delivery.messages[3].sent_at,
            Utc.timestamp_millis_opt(1_767_261_700_002).unwrap()
        );
    }

    #[test]
    fn a_batch_of_several_pages_can_be_read_per_page() {
        let raw = json!({"object":"page","entry":[
            {"id":"111","time":1767261600000_i64,"messaging":[{"sender":{"id":"7"},"recipient":{"id":"111"},
              "timestamp":1767261600000_i64,"message":{"mid":"m_111","text":"a"}}]},
            {"id":"222","time":1767261600000_i64,"messaging":[{"sender":{"id":"7"},"recipient":{"id":"222"},
              "timestamp":1767261600000_i64,"message":{"mid":"m_222","text":"b"}}]},
            {"id":"111","time":1767261600000_i64,"messaging":[{"sender":{"id":"8"},"recipient":{"id":"111"},
              "timestamp":1767261600000_i64,"message":{"mid":"m_111b","text":"c"}}]}
        ]})
        .to_string();
        assert_eq!(entry_ids(raw.as_bytes()).unwrap(), ["111", "222"]);
        let of_111 = parse_for_entry(raw.as_bytes(), "111", "111").unwrap();
        let ids: Vec<&str> = of_111
            .messages
            .iter()
            .map(|m| m.platform_id.as_str())
            .collect();
        assert_eq!(ids, ["m_111", "m_111b"]);
        let of_222 = parse_for_entry(raw.as_bytes(), "222", "222").unwrap();
        assert_eq!(of_222.messages.len(), 1);
        assert_eq!(of_222.ignored, 0);
    }

    #[test]
    fn bodies_without_metas_shape_are_malformed() {
        let bodies: &[&[u8]] = &[
            b"",
            b"not json",
            b"[]",
            br#"{"object":"page"}"#,
            br#"{"entry":[]}"#,
            br#"{"object":"page","entry":{}}"#,
            br#"{"object":"page","entry":[{"time":1}]}"#,
            br#"{"object":"page","entry":[{"id":"1","messaging":{}}]}"#,
            br#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"timestamp":1,"message":{"text":"no mid"}}]}]}"#,
            br#"{"object":"page","entry":[{"id":"1","messaging":[{"timestamp":1,"message":{"mid":"m","text":"no sender"}}]}]}"#,
            br#"{"object":"page","entry":[{"id":"1","messaging":[{"sender":{"id":"2"},"message":{"mid":"m"}}]}]}"#,
            br#"{"object":"page","entry":[{"id":"1","changes":[{"field":"feed"}]}]}"#,
            br#"{"object":"page","entry":[{"id":"1","changes":[{"field":"feed","value":{"item":"comment","verb":"add","post_id":"p","from":{"id":"2"},"created_time":1}}]}]}"#,
            br#"{"object":"page","entry":[{"id":"1","changes":[{"field":"feed","value":{"item":"comment","verb":"add","comment_id":"c","from":{"id":"2"},"created_time":1}}]}]}"#,
            br#"{"object":"instagram","entry":[{"id":"1","time":1,"changes":[{"field":"comments","value":{"id":"c","from":{"id":"2"},"text":"no media"}}]}]}"#,
        ];
        for body in bodies {
            assert!(
                is_malformed(parse(body, "1")),
                "{} should be malformed",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn an_unknown_object_is_malformed() {
        for object in ["whatsapp_business_account", "user", "permissions", ""] {
            let raw = json!({"object":object,"entry":[]}).to_string();
            let result = parse(raw.as_bytes(), PAGE);
            assert!(is_malformed(result.clone()), "{object}: {result:?}");
        }
        let empty = parse(br#"{"object":"page","entry":[]}"#, PAGE).unwrap();
        assert_eq!(empty, Delivery::default());
    }

    #[test]
    fn times_in_seconds_milliseconds_and_iso_are_read() {
        assert_eq!(timestamp(&json!(1_767_261_600)), Some(at_s(1_767_261_600)));
        assert_eq!(
            timestamp(&json!(1_767_261_600_123_i64)),
            Some(at_ms(1_767_261_600_123))
        );
        assert_eq!(timestamp(&json!("1767261600")), Some(at_s(1_767_261_600)));
        assert_eq!(
            timestamp(&json!("2026-01-01T10:00:00+0000")),
            Some(at_s(1_767_261_600))
        );
        assert_eq!(timestamp(&json!(null)), None);
    }

    // -- usage and errors ------------------------------------------------------

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn usage_is_the_highest_over_the_headers() {
        assert_eq!(usage(&HeaderMap::new()), None);
        assert_eq!(usage(&headers(&[("x-app-usage", "not json")])), None);
        let h = headers(&[
            (
                "x-app-usage",
                r#"{"call_count":28,"total_time":25,"total_cputime":12}"#,
            ),
            (
                "x-business-use-case-usage",
                r#"{"1029384756":[{"type":"pages","call_count":91,"total_cputime":7,"total_time":30,"estimated_time_to_regain_access":0},{"type":"messenger","call_count":3,"total_cputime":40,"total_time":1}]}"#,
            ),
        ]);
        let u = usage(&h).unwrap();
        assert_eq!(
            u,
            Usage {
                call_count: 91,
                total_time: 30,
                total_cputime: 40
            }
        );
        assert_eq!(u.highest(), 91);
        assert!(u.near_limit());
        assert!(!Usage::default().near_limit());
    }

    fn client() -> GraphClient {
        GraphClient::new("http://127.0.0.1:9/v25.0/", reqwest::Client::new())
    }

    fn graph_body(code: i64, subcode: Option<i64>, message: &str) -> Vec<u8> {
        let mut error =
            json!({"message":message,"type":"OAuthException","code":code,"fbtrace_id":"AbC"});
        if let Some(s) = subcode {
            error["error_subcode"] = json!(s);
        }
        json!({ "error": error }).to_string().into_bytes()
    }

    #[test]
    fn graph_errors_map_to_send_errors() {
        let c = client();
        assert_eq!(c.base, "http://127.0.0.1:9/v25.0");
        let now = at_s(1_767_261_600);
        let msg = Call::Message { window_hours: 24 };
        let map = |status: u16, body: &[u8], call: Call, h: &HeaderMap| {
            c.graph_error(
                StatusCode::from_u16(status).unwrap(),
                h,
                body,
                call,
                now,
                "TOKEN-XYZ",
            )
        };
        let none = HeaderMap::new();

        for code in [4, 17, 32, 613, 80_001, 80_006] {
            assert_eq!(
                map(400, &graph_body(code, None, "(#4) limit"), msg, &none),
                SendError::RateLimited {
                    network: "facebook",
                    until: now + TimeDelta::seconds(60)
                },
                "code {code}"
            );
        }
        let buc = headers(&[(
            "x-business-use-case-usage",
            r#"{"1029384756":[{"type":"pages","call_count":100,"total_cputime":10,"total_time":10,"estimated_time_to_regain_access":19}]}"#,
        )]);
        assert_eq!(
            map(400, &graph_body(80_001, None, "too many calls"), msg, &buc),
            SendError::RateLimited {
                network: "facebook",
                until: now + TimeDelta::minutes(19)
            }
        );
        assert_eq!(
            map(429, b"", msg, &headers(&[("retry-after", "30")])),
            SendError::RateLimited {
                network: "facebook",
                until: now + TimeDelta::seconds(30)
            }
        );
        assert_eq!(
            map(
                400,
                &graph_body(190, Some(463), "Session has expired"),
                msg,
                &none
            ),
            SendError::TokenExpired {
                network: "facebook"
            }
        );
        assert_eq!(
            map(
                400,
                &graph_body(
                    10,
                    Some(2_018_278),
                    "(#10) This message is sent outside of allowed window."
                ),
                Call::Message { window_hours: 168 },
                &none
            ),
            SendError::OutsideWindow {
                network: "facebook",
                hours: 168
            }
        );
        assert_eq!(
            map(
                403,
                &graph_body(
                    200,
                    None,
                    "(#200) Requires pages_messaging permission to manage the object"
                ),
                msg,
                &none
            ),
            SendError::PermissionMissing {
                network: "facebook",
                permission: "pages_messaging".into()
            }
        );
        assert_eq!(
            map(
                403,
                &graph_body(
                    200,
                    None,
                    "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts permission"
                ),
                Call::Publish,
                &none
            ),
            SendError::PermissionMissing {
                network: "facebook",
                permission: "pages_manage_posts".into()
            }
        );
        assert_eq!(
            map(
                400,
                &graph_body(10, None, "(#10) Permission denied"),
                Call::Comment,
                &none
            ),
            SendError::PermissionMissing {
                network: "facebook",
                permission: "pages_manage_engagement".into()
            }
        );
        assert_eq!(
            map(
                400,
                &graph_body(100, Some(33), "Unsupported post request. TOKEN-XYZ"),
                Call::Comment,
                &none
            ),
            SendError::Rejected {
                network: "facebook",
                reason: "Unsupported post request. [redacted] (fbtrace_id AbC)".into()
            }
        );
        assert!(matches!(
            map(
                400,
                &graph_body(551, None, "This person isn't available right now."),
                msg,
                &none
            ),
            SendError::Rejected { .. }
        ));
        let transient = json!({"error":{"message":"An unexpected error has occurred. Please retry your request later.","type":"OAuthException","code":2,"is_transient":true}}).to_string();
        assert!(matches!(
            map(500, transient.as_bytes(), msg, &none),
            SendError::Temporary { .. }
        ));
        assert!(matches!(
            map(502, b"<html>Bad gateway</html>", msg, &none),
            SendError::Temporary { .. }
        ));
        assert!(matches!(
            map(400, b"", msg, &none),
            SendError::Temporary { .. }
        ));
        assert!(matches!(
            map(503, &graph_body(100, None, "x"), msg, &none),
            SendError::Temporary { .. }
        ));
    }

    #[test]
    fn instagram_errors_name_instagram() {
        let c = GraphClient::instagram("http://127.0.0.1:9/v25.0", reqwest::Client::new());
        assert_eq!(c.channel(), "instagram");
        let e = c.graph_error(
            StatusCode::BAD_REQUEST,
            &HeaderMap::new(),
            &graph_body(10, Some(2_534_022), "outside of allowed window"),
            Call::Message { window_hours: 24 },
            at_s(0),
            "t",
        );
        assert_eq!(
            e,
            SendError::OutsideWindow {
                network: "instagram",
                hours: 24
            }
        );
        let e = c.graph_error(
            StatusCode::FORBIDDEN,
            &HeaderMap::new(),
            &graph_body(200, None, "Permissions error"),
            Call::Comment,
            at_s(0),
            "t",
        );
        assert_eq!(
            e,
            SendError::PermissionMissing {
                network: "instagram",
                permission: "instagram_manage_comments".into()
            }
        );
    }

    #[test]
    fn ids_that_would_change_the_endpoint_are_refused() {
        let c = client();
        assert!(c.segment("1029384756_444").is_ok());
        for bad in ["", "../me", "1/feed", "1?fields=x", "1#x", "a b", "1.2"] {
            assert!(
                matches!(c.segment(bad), Err(SendError::Rejected { .. })),
                "{bad}"
            );
        }
    }
}
