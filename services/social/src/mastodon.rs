//! The Mastodon connector (REST API v1 of the tenant's own instance).
//!
//! Mastodon has no per-account webhook, so citizens' messages are read by
//! polling the account's `mention` notifications; direct messages are
//! statuses with `visibility: "direct"`, delivered as mentions too.
//!
//! What it does:
//! - checks the instance's address once, when it is given ([`Instance`]):
//!   `https` only (plain `http` only on the loopback, for the local fake);
//! - turns a page of `GET /api/v1/notifications` into the citizens'
//!   messages ([`parse_notifications`]), their HTML made plain text
//!   ([`html_to_text`]);
//! - reads every mention newer than a cursor, page after page, oldest first
//!   ([`MastodonClient::mentions`], following the `Link` header
//!   ([`parse_link_header`]) forward with `min_id`);
//! - answers a citizen at the visibility they wrote with, never wider, with
//!   their `@acct` and an `Idempotency-Key` so a retried send creates one
//!   status ([`MastodonClient::send`]), and publishes announcements
//!   ([`MastodonClient::publish`]);
//! - says why a call failed in [`SendError`]'s terms, reading Mastodon's
//!   rate-limit headers, whose reset is an ISO-8601 time, not Unix seconds
//!   ([`rate_limit`]).
//!
//! What it must not do: keep state, write anything, read the clock where the
//! caller gives the time, send a token anywhere but the account's own
//! instance, or put a token in an error, a log line or a `Debug` output. Its
//! only I/O is [`MastodonClient`]'s HTTP calls, to the instance it is given
//! (the real one or a local fake).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use reqwest::header::{HeaderMap, HeaderValue, LINK};
use reqwest::{StatusCode, Url};
use secrecy::ExposeSecret as _;
use serde::{Deserialize, Deserializer};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use ventanilla_social_domain::inbound::{Author, MessageKind};

use crate::connector::{
    Credentials, Inbound, OutboundReply, Post, ReplyTarget, SendError, Sent, WebhookError,
};

/// The channel name of Mastodon messages.
pub const CHANNEL: &str = "mastodon";

/// The longest status Mastodon accepts by default, in characters as
/// [`status_length`] counts them.
pub const MAX_STATUS_LENGTH: usize = 500;

/// How many notifications a poll asks for per page (Mastodon's default; it
/// allows up to 80 since 4.1, 30 before).
pub const PAGE_LIMIT: usize = 40;

/// The most pages one call of [`MastodonClient::mentions`] reads (40
/// notifications each); the rest is read by the next call, from the cursor
/// returned.
pub const MAX_PAGES_PER_POLL: usize = 25;

/// How long to wait after a 429 that carries no usable reset header:
/// Mastodon's window.
const DEFAULT_RATE_WINDOW: Duration = Duration::minutes(5);

/// The longest error text from Mastodon kept in a [`SendError`] reason.
const MAX_REASON_LENGTH: usize = 300;

/// The longest `Idempotency-Key` sent as given; longer ones are hashed.
const MAX_IDEMPOTENCY_KEY_LENGTH: usize = 128;

fn malformed(problem: impl Into<String>) -> WebhookError {
    WebhookError::Malformed {
        network: CHANNEL,
        problem: problem.into(),
    }
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

// ---------------------------------------------------------------------------
// The instance
// ---------------------------------------------------------------------------

/// The Mastodon server an account lives on (e.g. `https://social.example.gal`):
/// the base of every call made for that account, checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// `scheme://host[:port]`, without a trailing `/`.
    origin: String,
}

/// Why a Mastodon server address was refused, said for the admin linking
/// the account.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InstanceError {
    /// Not a web address at all.
    #[error(
        "{given:?} is not a web address; write the Mastodon server's address, e.g. https://social.example.gal"
    )]
    NotAUrl {
        /// What was given.
        given: String,
    },
    /// Not `https` (plain `http` is accepted only on the loopback, for
    /// tests).
    #[error(
        "the Mastodon server's address must start with https:// ({given:?} does not); tokens are never sent unencrypted"
    )]
    NotHttps {
        /// What was given.
        given: String,
    },
    /// It has a path, a query, a fragment or credentials: Mastodon's API
    /// sits at the root of its server.
    #[error(
        "{given:?} is not a server's address: give only https:// and the server's name (e.g. https://social.example.gal), without a path, query or user name"
    )]
    NotAServerRoot {
        /// What was given.
        given: String,
    },
}

impl Instance {
    /// Checks a Mastodon server's address: `https://host[:port]` (a trailing
    /// `/` is fine; without a scheme, `https://` is assumed); `http://` only
    /// for `127.0.0.1`, `::1` or `localhost` (the local fake). Non-ASCII
    /// names are kept in their ASCII (punycode) form.
    pub fn parse(base_url: &str) -> Result<Self, InstanceError> {
        let given = base_url.trim();
        let with_scheme = if given.contains("://") {
            given.to_owned()
        } else {
            format!("https://{given}")
        };
        let url = Url::parse(&with_scheme).map_err(|_| InstanceError::NotAUrl {
            given: given.to_owned(),
        })?;
        let host =
            url.host_str()
                .filter(|h| !h.is_empty())
                .ok_or_else(|| InstanceError::NotAUrl {
                    given: given.to_owned(),
                })?;
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(InstanceError::NotHttps {
                    given: given.to_owned(),
                });
            }
            _ => {
                return Err(InstanceError::NotAUrl {
                    given: given.to_owned(),
                });
            }
        }
        if !url.username().is_empty()
            || url.password().is_some()
            || url.query().is_some()
            || url.fragment().is_some()
            || !matches!(url.path(), "" | "/")
        {
            return Err(InstanceError::NotAServerRoot {
                given: given.to_owned(),
            });
        }
        let origin = match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        };
        Ok(Instance { origin })
    }

    /// The address, `scheme://host[:port]`.
    pub fn as_str(&self) -> &str {
        &self.origin
    }

    fn endpoint(&self, path: &str) -> Result<Url, SendError> {
        Url::parse(&format!("{}{path}", self.origin))
            .map_err(|e| rejected(format!("cannot build the address {path} on {self}: {e}")))
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

// ---------------------------------------------------------------------------
// HTML to text
// ---------------------------------------------------------------------------

/// The plain text of a status's HTML `content`, as a reader sees it: tags
/// removed (a mention `<a …>@<span>user</span></a>` reads `@user`, a link
/// its whole URL, the `invisible` parts included), `<br>` a line break, the
/// end of a paragraph (`</p>`, `</blockquote>`, `</pre>`, a list, a
/// heading) a blank line, a list item a line starting with `- `, and
/// entities decoded (`&amp;` `&lt;` `&gt;` `&quot;` `&#39;` `&apos;`
/// `&nbsp;`, and numeric ones `&#233;` `&#xE9;`; an unknown one is kept as
/// written). Line breaks in the HTML source are spaces, except inside
/// `<pre>`; trailing spaces of lines and blank lines at both ends are
/// dropped.
pub fn html_to_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut pre_depth = 0usize;
    let mut rest = html;
    while let Some(lt) = rest.find('<') {
        push_text(&mut out, &rest[..lt], pre_depth > 0);
        let after = &rest[lt + 1..];
        if let Some(comment) = after.strip_prefix("!--") {
            rest = comment.find("-->").map_or("", |end| &comment[end + 3..]);
            continue;
        }
        let is_tag = after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/' || c == '!');
        let Some(gt) = after.find('>').filter(|_| is_tag) else {
            // A lone `<` (never in Mastodon's sanitised HTML): keep it.
            out.push('<');
            rest = after;
            continue;
        };
        let tag = &after[..gt];
        rest = &after[gt + 1..];
        let closing = tag.starts_with('/');
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| !c.is_ascii_alphanumeric())
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        match (closing, name.as_str()) {
            (_, "br") => out.push('\n'),
            (false, "pre") => pre_depth += 1,
            (true, "pre") => {
                pre_depth = pre_depth.saturating_sub(1);
                out.push_str("\n\n");
            }
            (false, "li") => {
                if !out.is_empty() && !out.ends_with('\n') {
                    out.push('\n');
                }
                out.push_str("- ");
            }
            (true, "li") => out.push('\n'),
            (
                true,
                "p" | "blockquote" | "ul" | "ol" | "div" | "h1" | "h2" | "h3" | "h4" | "h5" | "h6",
            ) => out.push_str("\n\n"),
            _ => {}
        }
    }
    push_text(&mut out, rest, pre_depth > 0);
    tidy(&out)
}

/// Appends a text node, its entities decoded; source line breaks are
/// spaces unless `preformatted`.
fn push_text(out: &mut String, text: &str, preformatted: bool) {
    let start = out.len();
    decode_entities(text, out);
    if !preformatted && out[start..].contains(['\n', '\r']) {
        let node: String = out[start..]
            .chars()
            .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
            .collect();
        out.truncate(start);
        out.push_str(&node);
    }
}

/// Appends `text` with its HTML character references decoded.
fn decode_entities(text: &str, out: &mut String) {
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '#'))
            .unwrap_or(after.len());
        let decoded = if (1..=32).contains(&end) && after[end..].starts_with(';') {
            entity(&after[..end])
        } else {
            None
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
                rest = after;
            }
        }
    }
    out.push_str(rest);
}

/// The character an entity name (between `&` and `;`) stands for.
fn entity(name: &str) -> Option<char> {
    if let Some(number) = name.strip_prefix('#') {
        let code = match number.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => number.parse::<u32>().ok()?,
        };
        return Some(match code {
            0 => char::REPLACEMENT_CHARACTER,
            _ => char::from_u32(code).unwrap_or(char::REPLACEMENT_CHARACTER),
        });
    }
    Some(match name {
        "amp" | "AMP" => '&',
        "lt" | "LT" => '<',
        "gt" | "GT" => '>',
        "quot" | "QUOT" => '"',
        "apos" => '\'',
        "nbsp" => ' ',
        _ => return None,
    })
}

/// Trailing spaces of each line dropped, at most one blank line in a row,
/// no blank lines at either end.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0usize;
    for line in text.split('\n') {
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_run > 0 { "\n\n" } else { "\n" });
        }
        out.push_str(line);
        blank_run = 0;
    }
    out
}

// ---------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------

/// An id, given as a string (Mastodon) or a number (some other servers).
fn de_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::String(s) if !s.is_empty() => Ok(s),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected an id, found {other}"
        ))),
    }
}

fn de_opt_id<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    match Value::deserialize(deserializer)? {
        Value::Null => Ok(None),
        Value::String(s) if s.is_empty() => Ok(None),
        Value::String(s) => Ok(Some(s)),
        Value::Number(n) => Ok(Some(n.to_string())),
        other => Err(serde::de::Error::custom(format!(
            "expected an id, found {other}"
        ))),
    }
}

#[derive(Deserialize)]
struct Notification {
    #[serde(deserialize_with = "de_id")]
    id: String,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default)]
    account: Option<Account>,
    #[serde(default)]
    status: Option<Status>,
}

#[derive(Deserialize)]
struct Account {
    #[serde(deserialize_with = "de_id")]
    id: String,
    #[serde(default)]
    acct: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct Status {
    #[serde(deserialize_with = "de_id")]
    id: String,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
    #[serde(default, deserialize_with = "de_opt_id")]
    in_reply_to_id: Option<String>,
    #[serde(default, deserialize_with = "de_opt_id")]
    in_reply_to_account_id: Option<String>,
    #[serde(default)]
    visibility: Option<String>,
    #[serde(default)]
    content: String,
    #[serde(default)]
    spoiler_text: String,
    #[serde(default)]
    account: Option<Account>,
}

/// Orders ids as Mastodon does: numerically for numeric ids (Mastodon's
/// are 64-bit numbers as strings), else as strings (sortable ULIDs of other
/// servers).
fn id_order(a: &str, b: &str) -> std::cmp::Ordering {
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if numeric(a) && numeric(b) {
        let (a, b) = (a.trim_start_matches('0'), b.trim_start_matches('0'));
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    } else {
        a.cmp(b)
    }
}

/// The author's handle: `@acct` where `acct` already names the server
/// (`@user@remote`); for a local account (`acct` is just `user`), the
/// server is taken from their profile URL so the handle is complete.
fn handle(account: &Account) -> Option<String> {
    let acct = account.acct.trim().trim_start_matches('@');
    if acct.is_empty() {
        return None;
    }
    if acct.contains('@') {
        return Some(format!("@{acct}"));
    }
    let host = account
        .url
        .as_deref()
        .and_then(|u| Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned));
    Some(match host {
        Some(host) => format!("@{acct}@{host}"),
        None => format!("@{acct}"),
    })
}

/// A page of notifications: the citizens' messages and every notification's
/// id, both newest first.
struct Page {
    messages: Vec<Inbound>,
    ids: Vec<String>,
}

fn parse_page(body: &[u8], own_account_id: &str) -> Result<Page, WebhookError> {
    let mut notifications: Vec<Notification> = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("not a list of Mastodon notifications: {e}")))?;
    notifications.sort_by(|a, b| id_order(&b.id, &a.id));
    let ids = notifications.iter().map(|n| n.id.clone()).collect();
    let mut messages = Vec::with_capacity(notifications.len());
    for notification in notifications {
        if notification.kind != "mention" {
            continue;
        }
        // A mention whose status is gone (deleted meanwhile) has nothing to
        // read.
        let Some(status) = notification.status else {
            continue;
        };
        let Some(account) = status.account.as_ref().or(notification.account.as_ref()) else {
            return Err(malformed(format!(
                "notification {} has no account",
                notification.id
            )));
        };
        if account.id == own_account_id
            || notification
                .account
                .as_ref()
                .is_some_and(|a| a.id == own_account_id)
        {
            continue;
        }
        let sent_at = status
            .created_at
            .or(notification.created_at)
            .ok_or_else(|| malformed(format!("status {} has no created_at", status.id)))?;
        let direct = status.visibility.as_deref() == Some("direct");
        let kind = if direct {
            MessageKind::Direct
        } else if status.in_reply_to_id.is_some()
            && status.in_reply_to_account_id.as_deref() == Some(own_account_id)
        {
            MessageKind::Reply
        } else {
            MessageKind::Mention
        };
        // A direct conversation is the citizen; a public one hangs from its
        // root, which a notification does not carry: the status answered
        // stands for it (right when that one is the root), and
        // `MastodonClient::mentions` looks the real root up.
        let thread = if direct {
            account.id.clone()
        } else {
            status
                .in_reply_to_id
                .clone()
                .unwrap_or_else(|| status.id.clone())
        };
        let body = html_to_text(&status.content);
        let spoiler = status.spoiler_text.trim();
        let text = match (spoiler.is_empty(), body.is_empty()) {
            (true, _) => body,
            (false, true) => spoiler.to_owned(),
            (false, false) => format!("{spoiler}\n\n{body}"),
        };
        messages.push(Inbound {
            channel: CHANNEL,
            kind,
            platform_id: status.id.clone(),
            thread,
            in_reply_to: status.in_reply_to_id.clone(),
            author: Author {
                platform_user_id: account.id.clone(),
                handle: handle(account),
                name: account
                    .display_name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
            },
            text,
            sent_at,
        });
    }
    Ok(Page { messages, ids })
}

/// Reads the JSON array `GET /api/v1/notifications` answers, for the
/// account `own_account_id`: one message per `mention` notification,
/// newest first (other types, mentions whose status is gone and the
/// account's own statuses are skipped).
///
/// - `platform_id` is the status id (the same status is the same message,
///   whichever notification brought it);
/// - a `visibility: "direct"` status is a [`MessageKind::Direct`] message
///   whose thread is the author's account id; any other is a
///   [`MessageKind::Reply`] when it answers one of the account's statuses,
///   else a [`MessageKind::Mention`], whose thread is the status answered
///   (the root is not in a notification; [`MastodonClient::mentions`] looks
///   it up) or the status itself;
/// - the author's handle is `@user@server`, their name the display name;
/// - the text is the content warning, if any, a blank line and the
///   content as plain text ([`html_to_text`]);
/// - `sent_at` is the status's `created_at`.
///
/// A body that is not such an array is [`WebhookError::Malformed`].
pub fn parse_notifications(
    body: &[u8],
    own_account_id: &str,
) -> Result<Vec<Inbound>, WebhookError> {
    parse_page(body, own_account_id).map(|page| page.messages)
}

// ---------------------------------------------------------------------------
// Pagination
// ---------------------------------------------------------------------------

/// The pages a `Link` header points to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PageLinks {
    /// `rel="next"`: older results (`max_id=`).
    pub next: Option<String>,
    /// `rel="prev"`: newer results (`min_id=`, the page right after this
    /// one).
    pub prev: Option<String>,
}

/// Reads a `Link` header value
/// (`<url>; rel="next", <url>; rel="prev"`): the first URL of each
/// relation; `rel` may be quoted or not and name several relations;
/// anything else is ignored.
pub fn parse_link_header(value: &str) -> PageLinks {
    let mut links = PageLinks::default();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            break;
        };
        let url = after[..close].trim();
        let params_and_more = &after[close + 1..];
        // The parameters run to the next link (a `,` outside quotes).
        let mut in_quotes = false;
        let end = params_and_more
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    in_quotes = !in_quotes;
                }
                c == ',' && !in_quotes
            })
            .map_or(params_and_more.len(), |(i, _)| i);
        for param in params_and_more[..end].split(';') {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            if !key.trim().eq_ignore_ascii_case("rel") {
                continue;
            }
            for rel in value.trim().trim_matches('"').split_ascii_whitespace() {
                let slot = if rel.eq_ignore_ascii_case("next") {
                    &mut links.next
                } else if rel.eq_ignore_ascii_case("prev") || rel.eq_ignore_ascii_case("previous") {
                    &mut links.prev
                } else {
                    continue;
                };
                if slot.is_none() {
                    *slot = Some(url.to_owned());
                }
            }
        }
        rest = &params_and_more[end..];
    }
    links
}

/// The `Link` headers of an answer, read with [`parse_link_header`].
pub fn page_links(headers: &HeaderMap) -> PageLinks {
    let mut links = PageLinks::default();
    for value in headers.get_all(LINK) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        let found = parse_link_header(value);
        links.next = links.next.or(found.next);
        links.prev = links.prev.or(found.prev);
    }
    links
}

/// The `min_id` a page link carries (Mastodon's `rel="prev"`; servers before
/// 2.6 put `since_id` there instead, which is not a cursor).
fn min_id_of(link: &str) -> Option<String> {
    Url::parse(link)
        .ok()?
        .query_pairs()
        .find(|(k, _)| k == "min_id")
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

// ---------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------

/// Mastodon's rate-limit window for the caller, as its headers report it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in the window (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Requests left in it (`X-RateLimit-Remaining`).
    pub remaining: u32,
    /// When the window starts again (`X-RateLimit-Reset`: an ISO-8601 time
    /// with microseconds, e.g. `2026-11-29T10:15:00.123456Z`).
    pub reset: DateTime<Utc>,
}

/// Reads the `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
/// `X-RateLimit-Reset` headers of an answer; `None` unless all three are
/// there and well formed (the reset an ISO-8601 time, not Unix seconds).
pub fn rate_limit(headers: &HeaderMap) -> Option<RateLimit> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    Some(RateLimit {
        limit: get("x-ratelimit-limit")?.parse().ok()?,
        remaining: get("x-ratelimit-remaining")?.parse().ok()?,
        reset: DateTime::parse_from_rfc3339(get("x-ratelimit-reset")?)
            .ok()?
            .with_timezone(&Utc),
    })
}

/// When a 429 lifts: the reset the headers give, if it is still ahead,
/// else `now` + 5 minutes.
fn limited_until(headers: &HeaderMap, now: DateTime<Utc>) -> DateTime<Utc> {
    rate_limit(headers)
        .map(|l| l.reset)
        .filter(|reset| *reset > now)
        .unwrap_or(now + DEFAULT_RATE_WINDOW)
}

// ---------------------------------------------------------------------------
// Statuses: length, visibility, mention
// ---------------------------------------------------------------------------

/// How Mastodon counts a status's length, conservatively: characters
/// (Unicode scalar values; Mastodon counts grapheme clusters, never more),
/// a URL starting `http://` or `https://` counts 23 whatever its length,
/// and a mention `@user@server` counts only its `@user` part.
pub fn status_length(text: &str) -> usize {
    let mut total = 0;
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(start) = word_start.take() {
                total += word_length(&text[start..i]);
            }
            total += 1;
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(start) = word_start {
        total += word_length(&text[start..]);
    }
    total
}

/// Trailing characters that end a URL or mention rather than belong to it.
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', ')', ']', '}', '\'', '"'];

fn word_length(word: &str) -> usize {
    if let Some(at) = word.find("https://").or_else(|| word.find("http://")) {
        let (before, url) = word.split_at(at);
        let trimmed = url.trim_end_matches(TRAILING);
        let trailing = url[trimmed.len()..].chars().count();
        return before.chars().count() + 23 + trailing;
    }
    if let Some(mention) = word.strip_prefix('@')
        && let Some((user, server)) = mention.split_once('@')
        && !user.is_empty()
    {
        let domain_end = server
            .find(|c: char| !(c.is_alphanumeric() || c == '.' || c == '-'))
            .unwrap_or(server.len());
        let domain = server[..domain_end].trim_end_matches('.');
        if !domain.is_empty() {
            let after = &server[domain.len()..];
            return 1 + user.chars().count() + after.chars().count();
        }
    }
    word.chars().count()
}

/// The visibility of a reply to a status of visibility `answered`: the
/// same, never wider — `public`, `unlisted`, `private` (followers only) and
/// `direct` are kept; anything else (`limited`, unknown, empty) is answered
/// `direct`, the narrowest that still reaches the citizen.
pub fn reply_visibility(answered: &str) -> &'static str {
    match answered.trim() {
        "public" => "public",
        "unlisted" => "unlisted",
        "private" => "private",
        _ => "direct",
    }
}

/// `user` or `user@server` (with or without a leading `@`) as `@user` or
/// `@user@server`; `None` for an empty one, an error for anything that is
/// not a handle.
fn mention(acct: &str) -> Result<Option<String>, SendError> {
    let acct = acct.trim().trim_start_matches('@');
    if acct.is_empty() {
        return Ok(None);
    }
    let valid_user = |u: &str| {
        !u.is_empty()
            && u.chars()
                .all(|c| c.is_alphanumeric() || matches!(c, '_' | '.' | '-'))
    };
    let valid = match acct.split_once('@') {
        None => valid_user(acct),
        Some((user, server)) => {
            valid_user(user)
                && !server.is_empty()
                && (server.contains('.') || is_loopback(server.split(':').next().unwrap_or(server)))
                && server
                    .chars()
                    .all(|c| c.is_alphanumeric() || matches!(c, '.' | '-' | ':'))
        }
    };
    if valid {
        Ok(Some(format!("@{acct}")))
    } else {
        Err(rejected(format!(
            "{acct:?} is not a Mastodon handle (@user@server), so the citizen cannot be mentioned"
        )))
    }
}

/// The status text: `@acct ` then `text`, unless `text` already starts with
/// that mention.
fn with_mention(mention: Option<&str>, text: &str) -> String {
    let Some(mention) = mention else {
        return text.to_owned();
    };
    let start = text.trim_start();
    let already = start
        .get(..mention.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(mention))
        && start[mention.len()..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || TRAILING.contains(&c));
    if already {
        text.to_owned()
    } else {
        format!("{mention} {text}")
    }
}

fn check_length(status: &str, what: &str) -> Result<(), SendError> {
    let length = status_length(status);
    if length > MAX_STATUS_LENGTH {
        let over = length - MAX_STATUS_LENGTH;
        return Err(rejected(format!(
            "the {what} is too long for Mastodon: it counts {length} characters, {over} more than the {MAX_STATUS_LENGTH} a status may have; shorten it by at least {over}"
        )));
    }
    Ok(())
}

fn sha256_hex(parts: &[&str]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0u8]);
    }
    hex::encode(hasher.finalize())
}

/// The `Idempotency-Key` to send: `key` when it is a plain, short header
/// value; else derived from it (or from `fallback` when it is empty).
fn idempotency_header(key: &str, fallback: &[&str]) -> String {
    let key = key.trim();
    if key.is_empty() {
        return format!("ventanilla-{}", &sha256_hex(fallback)[..40]);
    }
    if key.len() <= MAX_IDEMPOTENCY_KEY_LENGTH && key.bytes().all(|b| b.is_ascii_graphic()) {
        key.to_owned()
    } else {
        format!("ventanilla-{}", &sha256_hex(&[key])[..40])
    }
}

// ---------------------------------------------------------------------------
// The API client
// ---------------------------------------------------------------------------

/// Every new mention since a cursor, as [`MastodonClient::mentions`] read
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentions {
    /// The citizens' messages, oldest first, each once.
    pub messages: Vec<Inbound>,
    /// The newest notification read (of any kind, mentions or not): the
    /// `min_id` of the next poll. `None` when nothing new was there: keep
    /// the cursor you had.
    pub newest_notification_id: Option<String>,
    /// Whether more may be waiting: the poll stopped after
    /// [`MAX_PAGES_PER_POLL`] full pages. Poll again from the new cursor.
    pub more: bool,
}

/// What a call does, for the permission it needs and the words of its
/// failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Poll,
    Thread,
    Reply,
    Publish,
}

impl Call {
    fn permission(self) -> &'static str {
        match self {
            Call::Poll => "read:notifications",
            Call::Thread => "read:statuses",
            Call::Reply | Call::Publish => "write:statuses",
        }
    }
}

/// What Mastodon answered, read whole.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
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

/// The human part of a Mastodon error body: `error`, and OAuth's
/// `error_description` when there is one.
fn error_text(body: &Value) -> String {
    let error = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match body.get("error_description").and_then(Value::as_str) {
        Some(description) if !description.is_empty() && !error.is_empty() => {
            format!("{error}: {description}")
        }
        Some(description) if !description.is_empty() => description.to_owned(),
        _ => error.to_owned(),
    }
}

/// Maps a non-success answer to a [`SendError`].
fn failure(answer: &Answer, call: Call, instance: &Instance, now: DateTime<Utc>) -> SendError {
    let status = answer.status;
    let code = status.as_u16();
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let said = error_text(&body);
    let described = if said.is_empty() {
        format!("HTTP {code}")
    } else {
        truncate(format!("HTTP {code}: {said}"))
    };
    match status {
        StatusCode::TOO_MANY_REQUESTS => SendError::RateLimited {
            network: CHANNEL,
            until: limited_until(&answer.headers, now),
        },
        StatusCode::UNAUTHORIZED => SendError::TokenExpired { network: CHANNEL },
        StatusCode::FORBIDDEN => {
            let lower = said.to_lowercase();
            if lower.contains("authenticated user") {
                // An app token where a user's is needed: link again.
                SendError::TokenExpired { network: CHANNEL }
            } else if ["disabled", "suspended", "pending", "confirmed", "moved"]
                .iter()
                .any(|w| lower.contains(w))
            {
                rejected(format!(
                    "the account on {instance} cannot act ({described}): it is disabled, suspended, moved or not yet approved there, and only that server's moderators can restore it"
                ))
            } else if lower.contains("scope") || said.is_empty() {
                SendError::PermissionMissing {
                    network: CHANNEL,
                    permission: call.permission().to_owned(),
                }
            } else {
                rejected(described)
            }
        }
        StatusCode::NOT_FOUND => match call {
            Call::Reply => rejected(format!(
                "the status being answered no longer exists on {instance}, or the account can no longer see it (deleted, or its author blocked the account) ({described}); answer on another channel"
            )),
            Call::Thread => rejected(format!(
                "the status is no longer on {instance} ({described})"
            )),
            Call::Poll | Call::Publish => rejected(format!(
                "{instance} does not know this API call ({described}); check that the account's server address is a Mastodon server"
            )),
        },
        StatusCode::UNPROCESSABLE_ENTITY => rejected(if said.is_empty() {
            described
        } else {
            truncate(said)
        }),
        StatusCode::REQUEST_TIMEOUT => temporary(described),
        _ if status.is_server_error() => temporary(described),
        _ if status.is_client_error() => rejected(described),
        _ => temporary(format!("unexpected answer: {described}")),
    }
}

/// A client for the Mastodon API, calling the instance each call is given
/// with the account's user token (`Authorization: Bearer`, from
/// [`Credentials::access_token`]); [`Credentials::external_id`] is the
/// account's id on its instance.
///
/// The instance's address comes from a tenant's admin: give the client an
/// `http` client that refuses private addresses where that matters.
#[derive(Debug, Clone)]
pub struct MastodonClient {
    http: reqwest::Client,
}

impl MastodonClient {
    /// A client over `http` (whose timeouts apply).
    pub fn new(http: reqwest::Client) -> Self {
        MastodonClient { http }
    }

    /// Sends a request and reads the whole answer; a network failure or
    /// timeout is [`SendError::Temporary`].
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        instance: &Instance,
        creds: &Credentials,
    ) -> Result<Answer, SendError> {
        let response = request
            .bearer_auth(creds.access_token.expose_secret())
            .send()
            .await
            .map_err(|e| {
                let what = if e.is_timeout() {
                    "did not answer in time"
                } else {
                    "could not be reached"
                };
                temporary(format!("{instance} {what}: {}", e.without_url()))
            })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| {
                temporary(format!(
                    "reading {instance}'s answer failed: {}",
                    e.without_url()
                ))
            })?
            .to_vec();
        if let Some(limit) = rate_limit(&headers)
            && limit.remaining == 0
        {
            tracing::warn!(
                network = CHANNEL,
                instance = %instance,
                account = %creds.external_id,
                reset = %limit.reset,
                "Mastodon rate limit exhausted"
            );
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    /// Reads every mention of the account newer than the notification
    /// `min_id`, oldest first, as [`parse_notifications`] reads them, with
    /// the root of each public conversation looked up.
    ///
    /// Asks `GET /api/v1/notifications?types[]=mention&limit=40&min_id=…`
    /// (and `include_filtered=true`, so that Mastodon 4.3's notification
    /// filters do not hide citizens' private mentions): `min_id` gives the
    /// page right after the cursor, and while a page is full the next one
    /// is the one its `Link: <…>; rel="prev"` names (its `min_id`), up to
    /// [`MAX_PAGES_PER_POLL`] pages ([`Mentions::more`] then says so).
    /// Without a cursor (the first poll of an account) only the latest page
    /// is read, not the account's whole history.
    ///
    /// For a public reply, the thread is the root of its conversation,
    /// read from `GET /api/v1/statuses/:id/context` (once per status
    /// answered); when that is refused (no `read:statuses`) or gone, the
    /// status answered stands for it.
    ///
    /// Store the messages before moving the cursor to
    /// [`Mentions::newest_notification_id`]: a failure returns nothing and
    /// the same poll can simply be made again.
    pub async fn mentions(
        &self,
        instance: &Instance,
        creds: &Credentials,
        min_id: Option<&str>,
    ) -> Result<Mentions, SendError> {
        let own = creds.external_id.as_str();
        let mut cursor = min_id
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        let first_poll = cursor.is_none();
        let mut result = Mentions::default();
        let mut seen_notifications = HashSet::new();
        let mut seen_statuses = HashSet::new();
        for _ in 0..MAX_PAGES_PER_POLL {
            let mut url = instance.endpoint("/api/v1/notifications")?;
            {
                let mut query = url.query_pairs_mut();
                query
                    .append_pair("types[]", "mention")
                    .append_pair("limit", &PAGE_LIMIT.to_string())
                    .append_pair("include_filtered", "true");
                if let Some(cursor) = &cursor {
                    query.append_pair("min_id", cursor);
                }
            }
            let answer = self.call(self.http.get(url), instance, creds).await?;
            if !answer.status.is_success() {
                return Err(failure(&answer, Call::Poll, instance, Utc::now()));
            }
            let page = parse_page(&answer.body, own).map_err(|e| {
                temporary(format!(
                    "{instance} answered the notifications poll with something else: {e}"
                ))
            })?;
            let Some(newest) = page.ids.first().cloned() else {
                result.more = false;
                break;
            };
            let fresh = page
                .ids
                .iter()
                .filter(|id| seen_notifications.insert((*id).clone()))
                .count();
            if fresh == 0 {
                // A server that ignores `min_id` and answers the same page.
                result.more = false;
                break;
            }
            result.newest_notification_id = Some(newest.clone());
            result.messages.extend(
                page.messages
                    .into_iter()
                    .rev()
                    .filter(|m| seen_statuses.insert(m.platform_id.clone())),
            );
            if first_poll || page.ids.len() < PAGE_LIMIT {
                result.more = false;
                break;
            }
            result.more = true;
            cursor = Some(
                page_links(&answer.headers)
                    .prev
                    .as_deref()
                    .and_then(min_id_of)
                    .unwrap_or(newest),
            );
        }
        self.resolve_threads(instance, creds, &mut result.messages)
            .await?;
        Ok(result)
    }

    /// Sets each public reply's thread to its conversation's root.
    async fn resolve_threads(
        &self,
        instance: &Instance,
        creds: &Credentials,
        messages: &mut [Inbound],
    ) -> Result<(), SendError> {
        let mut roots: HashMap<String, String> = HashMap::new();
        for message in messages.iter_mut() {
            if message.kind == MessageKind::Direct {
                continue;
            }
            let Some(parent) = message.in_reply_to.clone() else {
                continue;
            };
            if let Some(root) = roots.get(&parent) {
                message.thread = root.clone();
                continue;
            }
            let root = match self
                .thread_root(instance, creds, &message.platform_id)
                .await
            {
                Ok(Some(root)) => root,
                Ok(None) => parent.clone(),
                Err(e @ (SendError::RateLimited { .. } | SendError::TokenExpired { .. })) => {
                    return Err(e);
                }
                Err(e @ SendError::Temporary { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(
                        network = CHANNEL,
                        instance = %instance,
                        status = %message.platform_id,
                        error = %e,
                        "the conversation's root could not be read; the status answered stands for it"
                    );
                    parent.clone()
                }
            };
            roots.insert(parent, root.clone());
            message.thread = root;
        }
        Ok(())
    }

    /// The first status of the conversation `status_id` belongs to, as far
    /// as the account can see (`GET /api/v1/statuses/:id/context`,
    /// `ancestors[0]`); `None` if it has no ancestors.
    async fn thread_root(
        &self,
        instance: &Instance,
        creds: &Credentials,
        status_id: &str,
    ) -> Result<Option<String>, SendError> {
        if status_id.is_empty() || !status_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Ok(None);
        }
        let url = instance.endpoint(&format!("/api/v1/statuses/{status_id}/context"))?;
        let answer = self.call(self.http.get(url), instance, creds).await?;
        if !answer.status.is_success() {
            return Err(failure(&answer, Call::Thread, instance, Utc::now()));
        }
        #[derive(Deserialize)]
        struct Context {
            #[serde(default)]
            ancestors: Vec<Ancestor>,
        }
        #[derive(Deserialize)]
        struct Ancestor {
            #[serde(deserialize_with = "de_id")]
            id: String,
        }
        let context: Context = serde_json::from_slice(&answer.body).map_err(|e| {
            temporary(format!(
                "{instance} answered a conversation's context with something else: {e}"
            ))
        })?;
        Ok(context.ancestors.into_iter().next().map(|a| a.id))
    }

    /// What a reply to status `status_id` needs to know of it: its
    /// visibility and its author's `@user@server` (`GET
    /// /api/v1/statuses/:id`). Failures map as for [`MastodonClient::send`]
    /// (a 404: the status is gone).
    pub async fn status_facts(
        &self,
        instance: &Instance,
        creds: &Credentials,
        status_id: &str,
    ) -> Result<(String, String), SendError> {
        if status_id.is_empty() || !status_id.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(rejected(format!(
                "{status_id:?} is not a Mastodon status id to reply to"
            )));
        }
        let url = instance.endpoint(&format!("/api/v1/statuses/{status_id}"))?;
        let answer = self.call(self.http.get(url), instance, creds).await?;
        if !answer.status.is_success() {
            return Err(failure(&answer, Call::Reply, instance, Utc::now()));
        }
        #[derive(Deserialize)]
        struct Status {
            visibility: String,
            account: StatusAccount,
        }
        #[derive(Deserialize)]
        struct StatusAccount {
            acct: String,
            #[serde(default)]
            url: Option<String>,
        }
        let status: Status = serde_json::from_slice(&answer.body).map_err(|e| {
            temporary(format!(
                "{instance} answered a status with something else: {e}"
            ))
        })?;
        // A local account's acct has no server: complete it from its URL.
        let acct = match (status.account.acct.contains('@'), status.account.url) {
            (false, Some(url)) => url
                .split("://")
                .nth(1)
                .and_then(|rest| rest.split('/').next())
                .map_or(status.account.acct.clone(), |host| {
                    format!("{}@{host}", status.account.acct)
                }),
            _ => status.account.acct,
        };
        Ok((status.visibility, acct))
    }

    /// Posts a status (`POST /api/v1/statuses`, JSON) with an
    /// `Idempotency-Key`; Mastodon answers a retry with the same key, within
    /// an hour, with the status already created.
    async fn post_status(
        &self,
        instance: &Instance,
        creds: &Credentials,
        body: Value,
        key: &str,
        call: Call,
        now: DateTime<Utc>,
    ) -> Result<Sent, SendError> {
        let url = instance.endpoint("/api/v1/statuses")?;
        let key = HeaderValue::from_str(key)
            .map_err(|_| rejected("the idempotency key is not a valid header value"))?;
        let request = self
            .http
            .post(url)
            .header("Idempotency-Key", key)
            .json(&body);
        let answer = self.call(request, instance, creds).await?;
        if !answer.status.is_success() {
            return Err(failure(&answer, call, instance, now));
        }
        let created: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        match created.get("id") {
            Some(Value::String(id)) if !id.is_empty() => Ok(Sent {
                platform_id: id.clone(),
            }),
            Some(Value::Number(id)) => Ok(Sent {
                platform_id: id.to_string(),
            }),
            // Sending again with the same key is safe: it gives the status
            // if it was created.
            _ => Err(temporary(format!(
                "{instance} answered HTTP {} without the new status's id",
                answer.status.as_u16()
            ))),
        }
    }

    /// Answers a citizen with a status (`POST /api/v1/statuses`):
    ///
    /// - the text starts with `@mention_acct ` (`user@server`, with or
    ///   without `@`), unless it already does — on Mastodon a reply reaches
    ///   only who it mentions;
    /// - a [`ReplyTarget::Public`] reply answers its status
    ///   (`in_reply_to_id`) with the visibility of that status,
    ///   `in_reply_to_visibility`, never wider ([`reply_visibility`]): a
    ///   direct message is answered directly, a followers-only one
    ///   followers-only;
    /// - a [`ReplyTarget::Direct`] reply is a `direct` status mentioning the
    ///   citizen (which needs `mention_acct`); the contract does not carry
    ///   the status answered, so it is not threaded under it;
    /// - `idempotency_key` (the delivery's id) is sent as `Idempotency-Key`,
    ///   so a retried send creates one status (derived from the reply when
    ///   empty).
    ///
    /// A status longer than [`MAX_STATUS_LENGTH`] ([`status_length`], the
    /// mention included) is [`SendError::Rejected`], saying by how much,
    /// without calling Mastodon. A 401 is [`SendError::TokenExpired`], a 403
    /// for scopes [`SendError::PermissionMissing`] (`write:statuses`), a 404
    /// a [`SendError::Rejected`] saying the status answered is gone, a 422
    /// [`SendError::Rejected`] with Mastodon's words, a 429
    /// [`SendError::RateLimited`] until the reset, and a 5xx or a timeout
    /// [`SendError::Temporary`]. Mastodon has no messaging window:
    /// `last_inbound_at` is not looked at.
    pub async fn send(
        &self,
        instance: &Instance,
        creds: &Credentials,
        reply: &OutboundReply,
        in_reply_to_visibility: &str,
        mention_acct: &str,
        idempotency_key: &str,
    ) -> Result<Sent, SendError> {
        if reply.text.trim().is_empty() {
            return Err(rejected("the reply is empty; write something to send"));
        }
        let mention = mention(mention_acct)?;
        let (in_reply_to, visibility) = match &reply.target {
            ReplyTarget::Public { in_reply_to } => {
                let id = in_reply_to.trim();
                if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
                    return Err(rejected(format!(
                        "{in_reply_to:?} is not a Mastodon status id to reply to"
                    )));
                }
                (Some(id), reply_visibility(in_reply_to_visibility))
            }
            ReplyTarget::Direct { .. } => {
                if mention.is_none() {
                    return Err(rejected(
                        "a direct message on Mastodon reaches only who it mentions, and the citizen's @user@server is not known; answer on another channel",
                    ));
                }
                (None, "direct")
            }
        };
        let status = with_mention(mention.as_deref(), &reply.text);
        check_length(&status, "reply")?;
        let key = idempotency_header(
            idempotency_key,
            &[
                instance.as_str(),
                in_reply_to.unwrap_or_default(),
                visibility,
                &status,
            ],
        );
        let mut body = serde_json::json!({ "status": status, "visibility": visibility });
        if let Some(in_reply_to) = in_reply_to {
            body["in_reply_to_id"] = Value::String(in_reply_to.to_owned());
        }
        self.post_status(instance, creds, body, &key, Call::Reply, reply.now)
            .await
    }

    /// Publishes an announcement on the account: a `public` status with the
    /// text and, after a blank line, the link (Mastodon shows its preview
    /// card). The image is ignored: Mastodon takes media only as uploaded
    /// files. The `Idempotency-Key` is `idempotency_key` (the publication's
    /// id) or, without one, derived from the text and link, so the same
    /// announcement posted twice within an hour is one status. Too long a
    /// text is [`SendError::Rejected`] without calling Mastodon; failures
    /// map as for [`MastodonClient::send`].
    pub async fn publish(
        &self,
        instance: &Instance,
        creds: &Credentials,
        post: &Post,
        idempotency_key: Option<&str>,
    ) -> Result<Sent, SendError> {
        let text = match post.link.as_deref().map(str::trim) {
            Some(link) if !link.is_empty() => format!("{}\n\n{link}", post.text.trim_end()),
            _ => post.text.clone(),
        };
        if text.trim().is_empty() {
            return Err(rejected(
                "the announcement is empty; write something to post",
            ));
        }
        check_length(&text, "announcement")?;
        let key = match idempotency_key {
            Some(key) => idempotency_header(key, &[instance.as_str(), &text]),
            None => format!(
                "ventanilla-post-{}",
                &sha256_hex(&[instance.as_str(), &text])[..40]
            ),
        };
        let body = serde_json::json!({ "status": text, "visibility": "public" });
        self.post_status(instance, creds, body, &key, Call::Publish, Utc::now())
            .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use chrono::TimeZone as _;

    const OWN: &str = "14715";

    /// The notifications example of Mastodon's documentation
    /// (`methods/notifications.md`), its elisions filled as Mastodon 4
    /// answers: a mention replying to one of the account's statuses, then a
    /// favourite.
    const DOC_EXAMPLE: &str = r#"[
      {
        "id": "34975861",
        "type": "mention",
        "created_at": "2019-11-23T07:49:02.064Z",
        "group_key": "ungrouped-34975861",
        "account": {"id": "971724", "username": "zsc", "acct": "zsc",
                    "display_name": "zsc", "url": "https://mastodon.social/@zsc"},
        "status": {
          "id": "103186126728896492",
          "created_at": "2019-11-23T07:49:01.940Z",
          "in_reply_to_id": "103186038209478945",
          "in_reply_to_account_id": "14715",
          "sensitive": false, "spoiler_text": "", "visibility": "public", "language": "en",
          "uri": "https://mastodon.social/users/zsc/statuses/103186126728896492",
          "url": "https://mastodon.social/@zsc/103186126728896492",
          "content": "<p><span class=\"h-card\"><a href=\"https://mastodon.social/@trwnh\" class=\"u-url mention\">@<span>trwnh</span></a></span> sup!</p>",
          "account": {"id": "971724", "username": "zsc", "acct": "zsc",
                      "display_name": "zsc", "url": "https://mastodon.social/@zsc"},
          "media_attachments": [],
          "mentions": [{"id": "14715", "username": "trwnh",
                        "url": "https://mastodon.social/@trwnh", "acct": "trwnh"}]
        }
      },
      {
        "id": "34975535",
        "type": "favourite",
        "created_at": "2019-11-23T07:29:18.903Z",
        "account": {"id": "297420", "username": "haskal", "acct": "haskal@cybre.space"},
        "status": {
          "id": "103186046267791694",
          "created_at": "2019-11-23T07:28:34.210Z",
          "in_reply_to_id": "103186044372624124",
          "in_reply_to_account_id": "297420",
          "content": "<p>hola</p>",
          "account": {"id": "14715", "username": "trwnh", "acct": "trwnh"}
        }
      }
    ]"#;

    #[test]
    fn parses_the_documented_notifications() {
        let messages = parse_notifications(DOC_EXAMPLE.as_bytes(), OWN).unwrap();
        assert_eq!(
            messages,
            vec![Inbound {
                channel: "mastodon",
                kind: MessageKind::Reply,
                platform_id: "103186126728896492".into(),
                thread: "103186038209478945".into(),
                in_reply_to: Some("103186038209478945".into()),
                author: Author {
                    platform_user_id: "971724".into(),
                    handle: Some("@zsc@mastodon.social".into()),
                    name: Some("zsc".into()),
                },
                text: "@trwnh sup!".into(),
                sent_at: "2019-11-23T07:49:01.940Z".parse().unwrap(),
            }]
        );
    }

    #[test]
    fn a_direct_status_is_a_private_message_in_the_authors_thread() {
        // The shape SOCIAL_APIS.md records.
        let body = r#"[{"id":"34975862","type":"mention","created_at":"2019-11-23T07:49:02.064Z",
            "group_key":"ungrouped-34975862",
            "account":{"id":"971724","acct":"user@remote","display_name":""},
            "status":{"id":"103186126728896493","created_at":"2019-11-23T07:49:01.940Z",
              "in_reply_to_id":null,"visibility":"direct",
              "content":"<p><span class=\"h-card\" translate=\"no\"><a href=\"https://social.example.gal/@concello\" class=\"u-url mention\">@<span>concello</span></a></span> Ola &amp; bo día,<br />hai un burato na rúa &lt;Maior&gt; &#39;12&#39;</p><p>Grazas</p>",
              "media_attachments":[],"mentions":[{"id":"14715","acct":"concello"}],
              "account":{"id":"971724","acct":"user@remote","display_name":" "}}}]"#;
        let messages = parse_notifications(body.as_bytes(), OWN).unwrap();
        let m = &messages[0];
        assert_eq!(m.kind, MessageKind::Direct);
        assert_eq!(m.thread, "971724");
        assert_eq!(m.in_reply_to, None);
        assert_eq!(m.author.handle.as_deref(), Some("@user@remote"));
        assert_eq!(m.author.name, None);
        assert_eq!(
            m.text,
            "@concello Ola & bo día,\nhai un burato na rúa <Maior> '12'\n\nGrazas"
        );
    }

    #[test]
    fn mentions_kinds_and_skips() {
        let body = serde_json::json!([
            // Our own status mentioning us: skipped.
            {"id": "10", "type": "mention", "created_at": "2025-03-01T10:00:00Z",
             "account": {"id": OWN, "acct": "concello"},
             "status": {"id": "110", "visibility": "public", "content": "<p>nota</p>",
                        "created_at": "2025-03-01T10:00:00Z",
                        "account": {"id": OWN, "acct": "concello"}}},
            // A status that was deleted: skipped.
            {"id": "9", "type": "mention", "created_at": "2025-03-01T09:00:00Z",
             "account": {"id": "5", "acct": "x"}, "status": null},
            // A follow: skipped.
            {"id": "8", "type": "follow", "created_at": "2025-03-01T08:00:00Z",
             "account": {"id": "5", "acct": "x"}},
            // A reply to someone else that mentions us: a mention; a
            // content warning comes first.
            {"id": "7", "type": "mention", "created_at": "2025-03-01T07:00:00Z",
             "account": {"id": "6", "acct": "veciña", "display_name": "Veciña",
                         "url": "https://social.example.gal/@veci%C3%B1a"},
             "status": {"id": "107", "visibility": "private", "in_reply_to_id": "100",
                        "in_reply_to_account_id": "99", "spoiler_text": "lixo",
                        "content": "<p>@concello mirade</p>",
                        "created_at": "2025-03-01T07:00:00.5Z",
                        "account": {"id": "6", "acct": "veciña", "display_name": "Veciña",
                                    "url": "https://social.example.gal/@veci%C3%B1a"}}},
            // A top-level public mention, ids as numbers.
            {"id": 6, "type": "mention", "created_at": "2025-03-01T06:00:00Z",
             "account": {"id": 5, "acct": "x@y.example"},
             "status": {"id": 106, "visibility": "unlisted", "content": "ola",
                        "created_at": "2025-03-01T06:00:00Z",
                        "account": {"id": 5, "acct": "x@y.example"}}}
        ]);
        let messages = parse_notifications(body.to_string().as_bytes(), OWN).unwrap();
        assert_eq!(messages.len(), 2);
        assert_eq!(messages[0].kind, MessageKind::Mention);
        assert_eq!(messages[0].thread, "100");
        assert_eq!(messages[0].text, "lixo\n\n@concello mirade");
        assert_eq!(
            messages[0].author.handle.as_deref(),
            Some("@veciña@social.example.gal")
        );
        assert_eq!(messages[1].platform_id, "106");
        assert_eq!(messages[1].thread, "106");
        assert_eq!(messages[1].author.platform_user_id, "5");
        assert_eq!(messages[1].kind, MessageKind::Mention);
    }

    #[test]
    fn pages_are_read_newest_first_whatever_their_order() {
        let body = serde_json::json!([
            {"id": "9", "type": "mention", "account": {"id": "5", "acct": "a@b.c"},
             "status": {"id": "90", "created_at": "2025-03-01T06:00:00Z", "content": "a",
                        "account": {"id": "5", "acct": "a@b.c"}}},
            {"id": "10", "type": "mention", "account": {"id": "5", "acct": "a@b.c"},
             "status": {"id": "100", "created_at": "2025-03-01T07:00:00Z", "content": "b",
                        "account": {"id": "5", "acct": "a@b.c"}}}
        ]);
        let page = parse_page(body.to_string().as_bytes(), OWN).unwrap();
        assert_eq!(page.ids, ["10", "9"]);
        assert_eq!(page.messages[0].platform_id, "100");
        assert_eq!(id_order("10", "9"), std::cmp::Ordering::Greater);
        assert_eq!(id_order("010", "9"), std::cmp::Ordering::Greater);
        assert_eq!(
            id_order("01ARZ3NDEKTSV4RRFFQ69G5FAV", "01ARZ3NDEKTSV4RRFFQ69G5FAW"),
            std::cmp::Ordering::Less
        );
    }

    #[test]
    fn garbage_is_malformed() {
        for body in [
            &b"not json"[..],
            b"",
            b"{}",
            b"{\"error\":\"The access token is invalid\"}",
            b"[{\"type\":\"mention\"}]",
            b"[{\"id\":\"1\",\"type\":\"mention\",\"status\":{\"id\":\"2\",\"content\":\"x\",\"account\":{\"id\":\"3\"}}}]",
            b"[{\"id\":\"1\",\"type\":\"mention\",\"created_at\":\"2025-01-01T00:00:00Z\",\"status\":{\"id\":\"2\"}}]",
        ] {
            assert!(
                matches!(
                    parse_notifications(body, OWN),
                    Err(WebhookError::Malformed {
                        network: "mastodon",
                        ..
                    })
                ),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(parse_notifications(b"[]", OWN).unwrap(), vec![]);
    }

    #[test]
    fn html_becomes_plain_text() {
        let cases = [
            ("<p>hola</p>", "hola"),
            ("<p>a</p><p>b</p>", "a\n\nb"),
            ("<p>a<br>b<br/>c<br />d</p>", "a\nb\nc\nd"),
            (
                "<p>a &amp; b &lt;c&gt; &quot;d&quot; &#39;e&#39; &apos;f&apos;</p>",
                "a & b <c> \"d\" 'e' 'f'",
            ),
            (
                "caf&#233; caf&#xe9; caf&#XE9; &#128077;",
                "café café café 👍",
            ),
            ("&#0; &#xD800; &#99999999;", "\u{fffd} \u{fffd} \u{fffd}"),
            (
                "a &unknown; b & c &amp d &#x;",
                "a &unknown; b & c &amp d &#x;",
            ),
            ("a&nbsp;b", "a b"),
            (
                "<p><a href=\"https://example.org/a/very/long/path\" rel=\"nofollow noopener\" translate=\"no\" target=\"_blank\"><span class=\"invisible\">https://</span><span class=\"ellipsis\">example.org/a/very/lo</span><span class=\"invisible\">ng/path</span></a></p>",
                "https://example.org/a/very/long/path",
            ),
            (
                "<p><span class=\"h-card\" translate=\"no\"><a href=\"https://social.example.gal/@concello\" class=\"u-url mention\">@<span>concello</span></a></span> ola</p>",
                "@concello ola",
            ),
            ("<p>uno\ndos</p>", "uno dos"),
            ("<pre>a\n  b</pre><p>c</p>", "a\n  b\n\nc"),
            (
                "<ul><li>un</li><li>dous</li></ul><p>fin</p>",
                "- un\n- dous\n\nfin",
            ),
            (
                "<blockquote><p>cita</p></blockquote><p>resposta</p>",
                "cita\n\nresposta",
            ),
            ("<p>a <!-- comment <b> --> b</p>", "a  b"),
            ("3 < 4 and 5 > 2", "3 < 4 and 5 > 2"),
            ("<p>  </p><p></p><p>x  </p><br><br><br>", "x"),
            ("<p>sen pechar", "sen pechar"),
            ("<P>MAIÚSCULAS<BR>aquí</P>", "MAIÚSCULAS\naquí"),
            ("", ""),
        ];
        for (html, text) in cases {
            assert_eq!(html_to_text(html), text, "{html}");
        }
    }

    #[test]
    fn link_headers_are_read() {
        let links = parse_link_header(
            "<https://mastodon.example/api/v1/notifications?max_id=34975535>; rel=\"next\", <https://mastodon.example/api/v1/notifications?min_id=34975861>; rel=\"prev\"",
        );
        assert_eq!(
            links.next.as_deref(),
            Some("https://mastodon.example/api/v1/notifications?max_id=34975535")
        );
        assert_eq!(
            links.prev.as_deref(),
            Some("https://mastodon.example/api/v1/notifications?min_id=34975861")
        );
        assert_eq!(
            min_id_of(links.prev.as_deref().unwrap()).as_deref(),
            Some("34975861")
        );
        assert_eq!(min_id_of(links.next.as_deref().unwrap()), None);

        // Unquoted, several relations, other parameters, commas in URLs and
        // quotes, and the documentation's own example whose last link has no
        // rel.
        let links = parse_link_header(
            "<https://a.example/x?types%5B%5D=mention&a=1,2>; title=\"p, q\"; rel=prev ,<https://a.example/y>;rel=\"next last\"",
        );
        assert_eq!(
            links.prev.as_deref(),
            Some("https://a.example/x?types%5B%5D=mention&a=1,2")
        );
        assert_eq!(links.next.as_deref(), Some("https://a.example/y"));
        let links = parse_link_header(
            "<https://mastodon.example/api/v1/notifications?max_id=34975535>; rel=\"next\", <https://mastodon.example/api/v1/notifications?min_id=34975861>;",
        );
        assert!(links.next.is_some());
        assert_eq!(links.prev, None);
        assert_eq!(parse_link_header(""), PageLinks::default());
        assert_eq!(parse_link_header("garbage <unclosed"), PageLinks::default());

        let mut headers = HeaderMap::new();
        headers.append(LINK, "<https://a.example/n>; rel=\"next\"".parse().unwrap());
        headers.append(LINK, "<https://a.example/p>; rel=\"prev\"".parse().unwrap());
        let links = page_links(&headers);
        assert_eq!(links.next.as_deref(), Some("https://a.example/n"));
        assert_eq!(links.prev.as_deref(), Some("https://a.example/p"));
    }

    #[test]
    fn rate_limit_headers_are_read_with_an_iso_reset() {
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-limit", "300".parse().unwrap());
        headers.insert("x-ratelimit-remaining", "0".parse().unwrap());
        assert_eq!(rate_limit(&headers), None);
        headers.insert("x-ratelimit-reset", "1700000900".parse().unwrap());
        assert_eq!(
            rate_limit(&headers),
            None,
            "epoch seconds are not Mastodon's"
        );
        headers.insert(
            "x-ratelimit-reset",
            "2026-11-29T10:15:00.123456Z".parse().unwrap(),
        );
        let reset = Utc.with_ymd_and_hms(2026, 11, 29, 10, 15, 0).unwrap()
            + Duration::microseconds(123_456);
        assert_eq!(
            rate_limit(&headers),
            Some(RateLimit {
                limit: 300,
                remaining: 0,
                reset
            })
        );
        let before = reset - Duration::minutes(3);
        assert_eq!(limited_until(&headers, before), reset);
        // A reset already past (clock skew) or missing: wait a window.
        let after = reset + Duration::seconds(1);
        assert_eq!(limited_until(&headers, after), after + Duration::minutes(5));
        assert_eq!(
            limited_until(&HeaderMap::new(), before),
            before + Duration::minutes(5)
        );
    }

    #[test]
    fn instance_addresses_are_checked() {
        let ok = |given: &str, origin: &str| {
            assert_eq!(Instance::parse(given).unwrap().as_str(), origin, "{given}");
        };
        ok("https://social.example.gal", "https://social.example.gal");
        ok(
            " https://social.example.gal/ ",
            "https://social.example.gal",
        );
        ok("social.example.gal", "https://social.example.gal");
        ok(
            "https://Social.Example.GAL:8443",
            "https://social.example.gal:8443",
        );
        ok("https://bawü.social", "https://xn--baw-joa.social");
        ok("http://127.0.0.1:4567", "http://127.0.0.1:4567");
        ok("http://[::1]:4567/", "http://[::1]:4567");
        ok("http://localhost:3000", "http://localhost:3000");
        for (given, expected) in [
            (
                "http://social.example.gal",
                InstanceError::NotHttps {
                    given: "http://social.example.gal".into(),
                },
            ),
            (
                "http://10.0.0.1",
                InstanceError::NotHttps {
                    given: "http://10.0.0.1".into(),
                },
            ),
            (
                "https://social.example.gal/api/v1",
                InstanceError::NotAServerRoot {
                    given: "https://social.example.gal/api/v1".into(),
                },
            ),
            (
                "https://u:p@social.example.gal",
                InstanceError::NotAServerRoot {
                    given: "https://u:p@social.example.gal".into(),
                },
            ),
            (
                "https://social.example.gal/?a=1",
                InstanceError::NotAServerRoot {
                    given: "https://social.example.gal/?a=1".into(),
                },
            ),
            (
                "ftp://x.example",
                InstanceError::NotAUrl {
                    given: "ftp://x.example".into(),
                },
            ),
            (
                "",
                InstanceError::NotAUrl {
                    given: String::new(),
                },
            ),
            (
                "https://",
                InstanceError::NotAUrl {
                    given: "https://".into(),
                },
            ),
        ] {
            assert_eq!(Instance::parse(given), Err(expected), "{given}");
        }
        assert!(
            InstanceError::NotHttps {
                given: "http://a".into()
            }
            .to_string()
            .contains("https://")
        );
    }

    #[test]
    fn status_length_counts_like_mastodon() {
        assert_eq!(status_length("hola"), 4);
        assert_eq!(status_length("añadir árbol"), 12);
        assert_eq!(status_length("👍"), 1);
        assert_eq!(
            status_length("mira https://example.org/una/ruta/muy/larga?x=1"),
            5 + 23
        );
        assert_eq!(
            status_length("(https://example.org/una/ruta/muy/larga)."),
            1 + 23 + 2
        );
        assert_eq!(status_length("@vecina@outra.social ola"), 7 + 4);
        assert_eq!(status_length("@vecina@outra.social, ola"), 8 + 4);
        assert_eq!(status_length("@vecina ola"), 11);
        assert_eq!(status_length("a@b"), 3);
        assert_eq!(status_length("  dos  espazos \n"), 16);
        assert_eq!(status_length(&"a".repeat(500)), 500);
    }

    #[test]
    fn replies_are_never_wider_than_what_they_answer() {
        assert_eq!(reply_visibility("public"), "public");
        assert_eq!(reply_visibility("unlisted"), "unlisted");
        assert_eq!(reply_visibility("private"), "private");
        assert_eq!(reply_visibility("direct"), "direct");
        assert_eq!(reply_visibility("limited"), "direct");
        assert_eq!(reply_visibility(""), "direct");
        assert_eq!(reply_visibility("PUBLIC"), "direct");
    }

    #[test]
    fn the_mention_is_put_first_once() {
        let m = mention("vecina@outra.social").unwrap();
        assert_eq!(m.as_deref(), Some("@vecina@outra.social"));
        assert_eq!(mention("@vecina@outra.social").unwrap(), m);
        assert_eq!(mention("vecina").unwrap().as_deref(), Some("@vecina"));
        assert_eq!(mention("  ").unwrap(), None);
        assert!(mention("vecina @outra").is_err());
        assert!(mention("vecina@").is_err());
        assert!(mention("<script>@x.y").is_err());
        let m = m.as_deref();
        assert_eq!(with_mention(m, "Ola"), "@vecina@outra.social Ola");
        assert_eq!(
            with_mention(m, "@vecina@outra.social Ola"),
            "@vecina@outra.social Ola"
        );
        assert_eq!(
            with_mention(m, "@Vecina@Outra.Social, ola"),
            "@Vecina@Outra.Social, ola"
        );
        assert_eq!(
            with_mention(m, "@vecina@outra.socialx ola"),
            "@vecina@outra.social @vecina@outra.socialx ola"
        );
        assert_eq!(
            with_mention(m, "@vecina ola"),
            "@vecina@outra.social @vecina ola"
        );
        assert_eq!(with_mention(None, "ola"), "ola");
    }

    #[test]
    fn idempotency_keys_are_plain_header_values() {
        assert_eq!(idempotency_header("delivery-1", &["x"]), "delivery-1");
        let derived = idempotency_header("", &["a", "b"]);
        assert!(derived.starts_with("ventanilla-") && derived.len() == 51);
        assert_eq!(derived, idempotency_header(" ", &["a", "b"]));
        assert_ne!(derived, idempotency_header("", &["ab", ""]));
        let hashed = idempotency_header("clave con espazos", &[]);
        assert!(hashed.starts_with("ventanilla-"));
        assert!(HeaderValue::from_str(&hashed).is_ok());
        assert!(idempotency_header(&"k".repeat(200), &[]).len() < 100);
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
        let instance = Instance::parse("https://social.example.gal").unwrap();
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let map = |status, body: &str, call| failure(&answer(status, body), call, &instance, now);
        assert_eq!(
            map(429, r#"{"error":"Too many requests"}"#, Call::Reply),
            SendError::RateLimited {
                network: "mastodon",
                until: now + Duration::minutes(5)
            }
        );
        assert_eq!(
            map(
                401,
                r#"{"error":"The access token is invalid"}"#,
                Call::Poll
            ),
            SendError::TokenExpired {
                network: "mastodon"
            }
        );
        assert_eq!(
            map(
                401,
                r#"{"error":"invalid_token","error_description":"The access token was revoked"}"#,
                Call::Reply
            ),
            SendError::TokenExpired {
                network: "mastodon"
            }
        );
        assert_eq!(
            map(
                403,
                r#"{"error":"This action is outside the authorized scopes"}"#,
                Call::Reply
            ),
            SendError::PermissionMissing {
                network: "mastodon",
                permission: "write:statuses".into()
            }
        );
        assert_eq!(
            map(
                403,
                r#"{"error":"This action is outside the authorized scopes"}"#,
                Call::Poll
            ),
            SendError::PermissionMissing {
                network: "mastodon",
                permission: "read:notifications".into()
            }
        );
        assert_eq!(
            map(
                403,
                r#"{"error":"This method requires an authenticated user"}"#,
                Call::Reply
            ),
            SendError::TokenExpired {
                network: "mastodon"
            }
        );
        assert!(matches!(
            map(403, r#"{"error":"Your login is currently disabled"}"#, Call::Reply),
            SendError::Rejected { reason, .. } if reason.contains("moderators") && reason.contains("currently disabled")
        ));
        assert!(matches!(
            map(404, r#"{"error":"The post you are trying to reply to does not appear to exist."}"#, Call::Reply),
            SendError::Rejected { reason, .. } if reason.contains("no longer exists") && reason.contains("another channel")
        ));
        assert!(matches!(
            map(404, "<html>", Call::Poll),
            SendError::Rejected { reason, .. } if reason.contains("Mastodon server")
        ));
        assert_eq!(
            map(
                422,
                r#"{"error":"Validation failed: Text character limit of 500 exceeded"}"#,
                Call::Reply
            ),
            SendError::Rejected {
                network: "mastodon",
                reason: "Validation failed: Text character limit of 500 exceeded".into()
            }
        );
        for status in [500, 502, 503, 504, 408] {
            let error = map(status, "<html>Bad Gateway</html>", Call::Reply);
            assert!(matches!(error, SendError::Temporary { .. }), "{status}");
            assert!(error.is_retryable());
        }
        assert!(matches!(
            map(410, "", Call::Reply),
            SendError::Rejected { .. }
        ));
        assert!(matches!(
            map(302, "", Call::Reply),
            SendError::Temporary { .. }
        ));
    }

    #[tokio::test]
    async fn too_long_and_empty_replies_are_refused_before_calling() {
        // Nothing listens on this port: a call would be Temporary.
        let instance = Instance::parse("http://127.0.0.1:9").unwrap();
        let client = MastodonClient::new(reqwest::Client::new());
        let creds = Credentials {
            external_id: OWN.into(),
            access_token: secrecy::SecretString::from("token".to_owned()),
            signing_secret: secrecy::SecretString::from(String::new()),
            verify_token: secrecy::SecretString::from(String::new()),
            human_agent: false,
        };
        let reply = |text: String| OutboundReply {
            target: ReplyTarget::Public {
                in_reply_to: "1".into(),
            },
            text,
            now: Utc::now(),
        };
        // "@vecina " counts 8.
        let error = client
            .send(
                &instance,
                &creds,
                &reply("a".repeat(515)),
                "public",
                "vecina@outra.social",
                "k",
            )
            .await
            .unwrap_err();
        assert_eq!(
            error,
            SendError::Rejected {
                network: "mastodon",
                reason: "the reply is too long for Mastodon: it counts 523 characters, 23 more than the 500 a status may have; shorten it by at least 23".into()
            }
        );
        assert!(matches!(
            client
                .send(&instance, &creds, &reply("  ".into()), "public", "", "k")
                .await,
            Err(SendError::Rejected { reason, .. }) if reason.contains("empty")
        ));
        assert!(matches!(
            client
                .send(&instance, &creds, &reply("ola".into()), "public", "a b", "k")
                .await,
            Err(SendError::Rejected { reason, .. }) if reason.contains("not a Mastodon handle")
        ));
        let direct = OutboundReply {
            target: ReplyTarget::Direct {
                recipient: "5".into(),
                last_inbound_at: Utc::now(),
            },
            text: "ola".into(),
            now: Utc::now(),
        };
        assert!(matches!(
            client.send(&instance, &creds, &direct, "direct", "", "k").await,
            Err(SendError::Rejected { reason, .. }) if reason.contains("mentions")
        ));
        let post = Post {
            text: "a".repeat(480),
            link: Some("https://example.org/a".into()),
            ..Post::default()
        };
        assert!(matches!(
            client.publish(&instance, &creds, &post, None).await,
            Err(SendError::Rejected { reason, .. }) if reason.contains("announcement is too long") && reason.contains("by at least 5")
        ));
        // Within the limit, the call is made (and fails: nobody listens).
        assert!(matches!(
            client
                .send(&instance, &creds, &reply("ola".into()), "public", "", "k")
                .await,
            Err(SendError::Temporary { .. })
        ));
    }
}
