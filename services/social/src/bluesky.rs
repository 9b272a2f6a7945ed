//! The Bluesky connector (AT Protocol XRPC on the account's PDS, usually
//! `https://bsky.social`), hand-rolled over `reqwest` and `serde_json`.
//!
//! Bluesky has no webhooks: citizens' mentions, replies and quotes are read
//! by polling `app.bsky.notification.listNotifications`; answers and
//! announcements are `app.bsky.feed.post` records created with
//! `com.atproto.repo.createRecord`.
//!
//! What it does:
//! - signs in with the account's app password and keeps the session
//!   ([`Session`]; [`BlueskyClient::create_session`],
//!   [`BlueskyClient::refresh_session`]). `createSession` is allowed only 30
//!   times per 5 minutes and 300 (seen: 100) per day per account, so the
//!   [`SessionKeeper`] reuses a session until 5 minutes before its access
//!   token expires, then refreshes it, and signs in again only when the
//!   refresh token is gone — once, however many callers ask at the same
//!   time; a call answered `ExpiredToken` renews the session once and is
//!   tried once more ([`SessionKeeper::call`]);
//! - turns a page of notifications into the citizens' messages
//!   ([`parse_notifications`]) keeping each post's `cid` and thread refs
//!   ([`PostRefs`]), which a reply needs; reads every new one since the last
//!   seen, page after page ([`BlueskyClient::mentions`]);
//! - answers in the citizen's thread with the right root ([`reply_refs`],
//!   [`BlueskyClient::reply`]) and publishes announcements
//!   ([`BlueskyClient::post`]), with links and mentions as rich-text facets
//!   at UTF-8 byte offsets ([`find_facets`], [`facets_json`]), and refuses a
//!   text over 300 graphemes before calling ([`grapheme_len`]);
//! - says why a call failed in [`SendError`]'s terms, reading the
//!   `RateLimit-*` headers, whose reset is in Unix seconds ([`rate_limit`]).
//!
//! What it must not do: sign in on every call, write anything but the
//! records asked for, store anything (sessions are kept in memory; the
//! service persists them, encrypted, through `Session`'s serde), send a
//! token or password anywhere but the PDS it is given, or put one in an
//! error, a log line or a `Debug` output.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex as StdMutex, PoisonError};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, SecondsFormat, TimeZone as _, Utc};
use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};
use ventanilla_social_domain::inbound::{Author, MessageKind};

use crate::connector::{Credentials, Inbound, Post, SendError, Sent, WebhookError};

/// The channel name of Bluesky messages.
pub const CHANNEL: &str = "bluesky";

/// The PDS (entryway) of accounts hosted by Bluesky itself.
pub const DEFAULT_PDS: &str = "https://bsky.social";

/// The longest post Bluesky accepts, in graphemes.
pub const MAX_GRAPHEMES: usize = 300;

/// The longest post Bluesky accepts, in UTF-8 bytes.
pub const MAX_TEXT_BYTES: usize = 3000;

/// How many notifications a poll asks for per page (Bluesky's default; it
/// allows 1 to 100).
pub const PAGE_LIMIT: usize = 50;

/// The most pages one call of [`BlueskyClient::mentions`] reads, walking
/// back to the last seen notification (50 notifications each).
pub const MAX_PAGES_PER_POLL: usize = 10;

/// How long before its `exp` an access token counts as expired.
pub const EXPIRY_MARGIN: Duration = Duration::minutes(5);

/// How long before its `exp` a refresh token is no longer tried.
const REFRESH_MARGIN: Duration = Duration::minutes(1);

/// The lifetime assumed for an access token whose `exp` cannot be read.
const ASSUMED_ACCESS_LIFETIME: Duration = Duration::minutes(15);

/// How long to wait after a 429 that carries no usable reset header.
const DEFAULT_RATE_WINDOW: Duration = Duration::minutes(5);

/// The longest error text from Bluesky kept in a [`SendError`] reason.
const MAX_REASON_LENGTH: usize = 300;

/// The collection of posts.
const POST_COLLECTION: &str = "app.bsky.feed.post";

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

fn token_expired() -> SendError {
    SendError::TokenExpired { network: CHANNEL }
}

// ---------------------------------------------------------------------------
// Sessions
// ---------------------------------------------------------------------------

/// When a JWT expires, read from the `exp` claim of its payload (base64url
/// JSON; the signature is not checked: the PDS does that). `None` if the
/// token is not a JWT or has no numeric `exp`.
pub fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    let payload = token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?;
    let seconds = exp
        .as_i64()
        .or_else(|| exp.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))?;
    Utc.timestamp_opt(seconds, 0).single()
}

/// A signed-in session of a Bluesky account. `Debug` shows no token.
///
/// It serializes (serde) with the tokens as plain strings, so that the
/// service can keep it across restarts: store it **encrypted** (the vault),
/// never in an event or a log.
#[derive(Debug, Clone)]
pub struct Session {
    /// The account's DID (`did:plc:…`).
    pub did: String,
    /// The account's handle (`concello.bsky.social`), without `@`.
    pub handle: String,
    /// The access token every call carries (`Bearer`).
    pub access_jwt: SecretString,
    /// The token that renews the session (`refreshSession`).
    pub refresh_jwt: SecretString,
    /// When the access token expires (its `exp`; 15 minutes after issue
    /// when unreadable).
    pub access_expires_at: DateTime<Utc>,
    /// When the refresh token expires (its `exp`), if readable.
    pub refresh_expires_at: Option<DateTime<Utc>>,
}

impl Session {
    /// A session from the tokens the PDS gave at `now`, their expiries read
    /// from the tokens ([`jwt_expiry`]).
    pub fn from_tokens(
        did: impl Into<String>,
        handle: impl Into<String>,
        access_jwt: String,
        refresh_jwt: String,
        now: DateTime<Utc>,
    ) -> Session {
        let access_expires_at = jwt_expiry(&access_jwt).unwrap_or(now + ASSUMED_ACCESS_LIFETIME);
        let refresh_expires_at = jwt_expiry(&refresh_jwt);
        Session {
            did: did.into(),
            handle: handle.into(),
            access_jwt: SecretString::from(access_jwt),
            refresh_jwt: SecretString::from(refresh_jwt),
            access_expires_at,
            refresh_expires_at,
        }
    }

    /// Whether the access token can still be used at `now`: it expires more
    /// than [`EXPIRY_MARGIN`] (5 minutes) later.
    pub fn is_fresh(&self, now: DateTime<Utc>) -> bool {
        now + EXPIRY_MARGIN < self.access_expires_at
    }

    /// Whether the refresh token is worth trying at `now` (unknown expiry:
    /// yes).
    pub fn can_refresh(&self, now: DateTime<Utc>) -> bool {
        self.refresh_expires_at
            .is_none_or(|expires| now + REFRESH_MARGIN < expires)
    }

    /// Whether both sessions carry the same tokens.
    pub fn same_tokens(&self, other: &Session) -> bool {
        self.access_jwt.expose_secret() == other.access_jwt.expose_secret()
            && self.refresh_jwt.expose_secret() == other.refresh_jwt.expose_secret()
    }

    /// Whether this is the session of the account named `identifier` (its
    /// DID or handle, with or without `@`, any case).
    fn belongs_to(&self, identifier: &str) -> bool {
        let identifier = identifier.trim().trim_start_matches('@');
        identifier.eq_ignore_ascii_case(&self.did) || identifier.eq_ignore_ascii_case(&self.handle)
    }
}

/// How a [`Session`] is stored: the tokens as strings.
#[derive(Serialize, Deserialize)]
struct StoredSession {
    did: String,
    handle: String,
    access_jwt: String,
    refresh_jwt: String,
    access_expires_at: DateTime<Utc>,
    #[serde(default)]
    refresh_expires_at: Option<DateTime<Utc>>,
}

impl Serialize for Session {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        StoredSession {
            did: self.did.clone(),
            handle: self.handle.clone(),
            access_jwt: self.access_jwt.expose_secret().to_owned(),
            refresh_jwt: self.refresh_jwt.expose_secret().to_owned(),
            access_expires_at: self.access_expires_at,
            refresh_expires_at: self.refresh_expires_at,
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Session {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let stored = StoredSession::deserialize(deserializer)?;
        Ok(Session {
            did: stored.did,
            handle: stored.handle,
            access_jwt: SecretString::from(stored.access_jwt),
            refresh_jwt: SecretString::from(stored.refresh_jwt),
            access_expires_at: stored.access_expires_at,
            refresh_expires_at: stored.refresh_expires_at,
        })
    }
}

/// The answer of `createSession` and `refreshSession`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionAnswer {
    access_jwt: String,
    refresh_jwt: String,
    handle: String,
    did: String,
    #[serde(default)]
    active: Option<bool>,
    #[serde(default)]
    status: Option<String>,
}

// ---------------------------------------------------------------------------
// Notifications
// ---------------------------------------------------------------------------

/// A strong reference to a record: its `at://` uri and the `cid` of the
/// version meant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StrongRef {
    /// `at://did:plc:…/app.bsky.feed.post/<rkey>`.
    pub uri: String,
    /// The content id (`bafyrei…`).
    pub cid: String,
}

impl StrongRef {
    /// A reference from its parts.
    pub fn new(uri: impl Into<String>, cid: impl Into<String>) -> StrongRef {
        StrongRef {
            uri: uri.into(),
            cid: cid.into(),
        }
    }

    fn json(&self) -> Value {
        json!({ "uri": self.uri, "cid": self.cid })
    }
}

/// What a reply needs of a citizen's post besides its uri: its `cid`, and
/// the thread refs of its own `record.reply` when it is itself a reply.
/// Serializable, so the service can keep it with the message until it is
/// answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostRefs {
    /// The post's uri.
    pub uri: String,
    /// The post's cid.
    pub cid: String,
    /// `record.reply.root`, when the post is a reply.
    pub root: Option<StrongRef>,
    /// `record.reply.parent`, when the post is a reply.
    pub parent: Option<StrongRef>,
}

impl PostRefs {
    /// The `reply.root` and `reply.parent` of an answer to this post
    /// ([`reply_refs`]).
    pub fn reply_refs(&self) -> ReplyRefs {
        reply_refs(
            &self.uri,
            &self.cid,
            self.root.as_ref().map(|r| (r.uri.as_str(), r.cid.as_str())),
        )
    }
}

/// The `reply` of a post: the thread's first post and the post answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplyRefs {
    /// The thread's first post.
    pub root: StrongRef,
    /// The post answered.
    pub parent: StrongRef,
}

/// The refs of an answer to the post `parent_uri`/`parent_cid`: the parent
/// is that post; the root is the parent's own `record.reply.root` when the
/// parent is itself a reply (`parent_record_reply`), otherwise the parent
/// itself. A wrong root silently starts a separate thread.
pub fn reply_refs(
    parent_uri: &str,
    parent_cid: &str,
    parent_record_reply: Option<(&str, &str)>,
) -> ReplyRefs {
    let parent = StrongRef::new(parent_uri, parent_cid);
    let root = match parent_record_reply {
        Some((root_uri, root_cid)) if !root_uri.is_empty() && !root_cid.is_empty() => {
            StrongRef::new(root_uri, root_cid)
        }
        _ => parent.clone(),
    };
    ReplyRefs { root, parent }
}

/// A page of `listNotifications`, read by [`parse_notifications`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// The citizens' messages, newest first.
    pub items: Vec<Inbound>,
    /// The cursor of the next (older) page, if any.
    pub cursor: Option<String>,
    /// What a reply needs of each message's post, by its uri.
    pub refs: HashMap<String, PostRefs>,
    /// The uri of every notification of the page, newest first (ignored
    /// and own ones included): where a poll stops.
    pub uris: Vec<String>,
}

#[derive(Deserialize)]
struct ListNotifications {
    notifications: Vec<Notification>,
    #[serde(default)]
    cursor: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Notification {
    uri: String,
    #[serde(default)]
    cid: String,
    author: Profile,
    reason: String,
    #[serde(default)]
    record: Value,
    indexed_at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Profile {
    did: String,
    #[serde(default)]
    handle: String,
    #[serde(default)]
    display_name: Option<String>,
}

fn parse_time(value: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(value.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn strong_ref(value: Option<&Value>) -> Option<StrongRef> {
    let value = value?;
    let uri = value.get("uri")?.as_str()?;
    let cid = value.get("cid")?.as_str()?;
    (!uri.is_empty() && !cid.is_empty()).then(|| StrongRef::new(uri, cid))
}

/// Reads a page of `GET /xrpc/app.bsky.notification.listNotifications`
/// for the account `own_did`: one message per `mention`, `reply` or
/// `quote` notification, newest first; other reasons (likes, reposts,
/// follows…) and the account's own posts are skipped.
///
/// - `platform_id` is the post's `uri` (dedupe on it);
/// - `kind` is [`MessageKind::Reply`] for a `reply`, else
///   [`MessageKind::Mention`] (a quote is a public post about ours);
/// - `thread` is the thread's root (`record.reply.root.uri`), else the
///   post's own uri; `in_reply_to` is `record.reply.parent.uri`;
/// - the author is their DID, `@handle` and display name;
/// - the text is `record.text`; `sent_at` is `record.createdAt` (set by the
///   author's app), else the notification's `indexedAt`.
///
/// [`Page::refs`] keeps each post's `cid` and reply refs, which answering
/// it needs. A body that is not such a page is [`WebhookError::Malformed`].
pub fn parse_notifications(body: &[u8], own_did: &str) -> Result<Page, WebhookError> {
    let list: ListNotifications = serde_json::from_slice(body)
        .map_err(|e| malformed(format!("not a page of Bluesky notifications: {e}")))?;
    let mut page = Page {
        cursor: list.cursor.filter(|c| !c.is_empty()),
        ..Page::default()
    };
    for notification in list.notifications {
        page.uris.push(notification.uri.clone());
        let kind = match notification.reason.as_str() {
            "mention" | "quote" => MessageKind::Mention,
            "reply" => MessageKind::Reply,
            _ => continue,
        };
        if notification.author.did == own_did {
            continue;
        }
        if notification.uri.is_empty() || notification.cid.is_empty() {
            return Err(malformed(format!(
                "a {} notification has no uri or cid",
                notification.reason
            )));
        }
        let record = &notification.record;
        let reply = record.get("reply");
        let root = strong_ref(reply.and_then(|r| r.get("root")));
        let parent = strong_ref(reply.and_then(|r| r.get("parent")));
        let indexed_at = parse_time(&notification.indexed_at).ok_or_else(|| {
            malformed(format!(
                "notification {} has no valid indexedAt",
                notification.uri
            ))
        })?;
        let sent_at = record
            .get("createdAt")
            .and_then(Value::as_str)
            .and_then(parse_time)
            .unwrap_or(indexed_at);
        let text = record
            .get("text")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let author = notification.author;
        let handle = author.handle.trim().trim_start_matches('@');
        page.items.push(Inbound {
            channel: CHANNEL,
            kind,
            platform_id: notification.uri.clone(),
            thread: root
                .as_ref()
                .map_or_else(|| notification.uri.clone(), |r| r.uri.clone()),
            in_reply_to: parent.as_ref().map(|p| p.uri.clone()),
            author: Author {
                platform_user_id: author.did.clone(),
                handle: (!handle.is_empty() && handle != "handle.invalid")
                    .then(|| format!("@{handle}")),
                name: author
                    .display_name
                    .as_deref()
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(str::to_owned),
            },
            text,
            sent_at,
        });
        page.refs.insert(
            notification.uri.clone(),
            PostRefs {
                uri: notification.uri,
                cid: notification.cid,
                root,
                parent,
            },
        );
    }
    Ok(page)
}

// ---------------------------------------------------------------------------
// Text: length and facets
// ---------------------------------------------------------------------------

/// Whether `c` never starts a grapheme cluster (it extends the previous
/// one): combining marks, variation selectors, the zero-width joiner, emoji
/// skin-tone modifiers and tag characters.
fn extends_grapheme(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{200D}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FE20}'..='\u{FE2F}'
            | '\u{1F3FB}'..='\u{1F3FF}'
            | '\u{E0020}'..='\u{E007F}'
            | '\u{E0100}'..='\u{E01EF}'
    )
}

/// The length of a text as Bluesky counts it (grapheme clusters), without a
/// Unicode segmentation table: characters (Unicode scalar values), less
/// those that can only extend the grapheme before them (combining
/// accents, variation selectors, the joiner, skin tones, tags). Every
/// grapheme starts with a character that is counted, so this **never counts
/// fewer** than Bluesky; it counts more for the few clusters it does not
/// know (an emoji joined with `U+200D` counts 1 per joined emoji, a flag 2,
/// `\r\n` 2), so a text right at the limit may be refused although Bluesky
/// would take it.
pub fn grapheme_len(text: &str) -> usize {
    text.chars()
        .enumerate()
        .filter(|&(i, c)| i == 0 || !extends_grapheme(c))
        .count()
}

/// Refuses an empty text, or one Bluesky would refuse for its length,
/// before calling.
fn check_text(text: &str, what: &str) -> Result<(), SendError> {
    if text.trim().is_empty() {
        return Err(rejected(format!(
            "the {what} is empty; write something to send"
        )));
    }
    let length = grapheme_len(text);
    if length > MAX_GRAPHEMES {
        let over = length - MAX_GRAPHEMES;
        return Err(rejected(format!(
            "the {what} is too long for Bluesky: it counts {length} characters, {over} more than the {MAX_GRAPHEMES} a post may have; shorten it by at least {over}"
        )));
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(rejected(format!(
            "the {what} is too long for Bluesky: it takes {} bytes, more than the {MAX_TEXT_BYTES} a post may have (accents and emoji take several bytes); shorten it",
            text.len()
        )));
    }
    Ok(())
}

/// What a span of text points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FacetTarget {
    /// A web address (`https://…`), as written.
    Link(String),
    /// A Bluesky handle (`vecina.bsky.social`), lower-cased, without `@`.
    Mention(String),
}

/// A link or mention found in a text, at UTF-8 byte offsets (what
/// `app.bsky.richtext.facet` counts), end exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// The first byte.
    pub byte_start: usize,
    /// The byte after the last.
    pub byte_end: usize,
    /// What it points to.
    pub target: FacetTarget,
}

/// Characters that open a word without belonging to a link or mention.
const LEADING: &[char] = &['(', '[', '{', '"', '\'', '¿', '¡', '«', '“', '‘'];

/// Characters that end a sentence rather than belong to a link or mention.
const TRAILING: &[char] = &[
    '.', ',', ';', ':', '!', '?', ')', ']', '}', '\'', '"', '»', '”', '’',
];

/// Whether `handle` (without `@`) is a valid AT Protocol handle: at least
/// two dot-separated labels of ASCII letters, digits and `-` (not at either
/// end), each 1 to 63 long, 253 at most in all, the last not starting with
/// a digit.
pub fn is_handle(handle: &str) -> bool {
    let labels: Vec<&str> = handle.split('.').collect();
    handle.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
        && labels
            .last()
            .is_some_and(|tld| tld.starts_with(|c: char| c.is_ascii_alphabetic()))
}

/// The links (`http://` or `https://` words) and mentions (`@handle`) of a
/// text, in order, at UTF-8 byte offsets. A word may open with `(`, `¿`,
/// quotes… and end with punctuation (`.`, `,`, `?`, `)`…) that is not part
/// of it. Addresses without a scheme (`lugo.gal`) are not links.
pub fn find_facets(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut word_start: Option<usize> = None;
    let mut push_word = |start: usize, end: usize| {
        let word = &text[start..end];
        let core = word.trim_start_matches(LEADING);
        let start = start + (word.len() - core.len());
        let core = core.trim_end_matches(TRAILING);
        let end = start + core.len();
        let lower = core.to_ascii_lowercase();
        if lower.starts_with("https://") || lower.starts_with("http://") {
            if Url::parse(core).is_ok_and(|u| u.host_str().is_some_and(|h| !h.is_empty())) {
                spans.push(Span {
                    byte_start: start,
                    byte_end: end,
                    target: FacetTarget::Link(core.to_owned()),
                });
            }
        } else if let Some(handle) = core.strip_prefix('@')
            && is_handle(handle)
        {
            spans.push(Span {
                byte_start: start,
                byte_end: end,
                target: FacetTarget::Mention(handle.to_ascii_lowercase()),
            });
        }
    };
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(start) = word_start.take() {
                push_word(start, i);
            }
        } else if word_start.is_none() {
            word_start = Some(i);
        }
    }
    if let Some(start) = word_start {
        push_word(start, text.len());
    }
    spans
}

/// The `app.bsky.richtext.facet` entries of these spans: a `#link` with its
/// `uri`, a `#mention` with the DID `dids` gives for the handle (a mention
/// of a handle not there gets no facet: it stays plain text).
pub fn facets_json(spans: &[Span], dids: &HashMap<String, String>) -> Vec<Value> {
    spans
        .iter()
        .filter_map(|span| {
            let feature = match &span.target {
                FacetTarget::Link(uri) => {
                    json!({ "$type": "app.bsky.richtext.facet#link", "uri": uri })
                }
                FacetTarget::Mention(handle) => {
                    let did = dids.get(handle)?;
                    json!({ "$type": "app.bsky.richtext.facet#mention", "did": did })
                }
            };
            Some(json!({
                "index": { "byteStart": span.byte_start, "byteEnd": span.byte_end },
                "features": [feature]
            }))
        })
        .collect()
}

/// Options of a post or reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostOptions {
    /// Its languages (`langs`, BCP-47: `gl`, `es`), the tenant's; none
    /// given, none sent.
    pub langs: Vec<String>,
    /// DIDs already known for handles the text mentions (lower-case handle,
    /// without `@` → DID), e.g. the citizen's from their message; other
    /// handles are resolved with `com.atproto.identity.resolveHandle`.
    pub known_dids: HashMap<String, String>,
    /// The record's `createdAt`; `None`: now.
    pub created_at: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------
// Rate limits
// ---------------------------------------------------------------------------

/// Bluesky's rate-limit window for the caller, as its headers report it
/// (the tightest limit that applies).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimit {
    /// Points allowed in the window (`RateLimit-Limit`).
    pub limit: u32,
    /// Points left in it (`RateLimit-Remaining`).
    pub remaining: u32,
    /// When the window starts again (`RateLimit-Reset`, Unix seconds).
    pub reset: DateTime<Utc>,
    /// `RateLimit-Policy`, e.g. `30;w=300` (limit; window in seconds).
    pub policy: Option<String>,
}

/// Reads the `RateLimit-Limit`, `RateLimit-Remaining`, `RateLimit-Reset`
/// (Unix seconds) and `RateLimit-Policy` headers of an answer; `None`
/// unless the first three are there and well formed.
pub fn rate_limit(headers: &HeaderMap) -> Option<RateLimit> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    Some(RateLimit {
        limit: get("ratelimit-limit")?.parse().ok()?,
        remaining: get("ratelimit-remaining")?.parse().ok()?,
        reset: Utc
            .timestamp_opt(get("ratelimit-reset")?.parse().ok()?, 0)
            .single()?,
        policy: get("ratelimit-policy").map(str::to_owned),
    })
}

/// When a 429 lifts: the reset the headers give, if still ahead, else `now`
/// + 5 minutes.
fn limited_until(headers: &HeaderMap, now: DateTime<Utc>) -> DateTime<Utc> {
    rate_limit(headers)
        .map(|l| l.reset)
        .filter(|reset| *reset > now)
        .unwrap_or(now + DEFAULT_RATE_WINDOW)
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// What a call does, for the words of its failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    Login,
    Refresh,
    Poll,
    Resolve,
    Reply,
    Publish,
}

/// What the PDS answered, read whole.
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

/// Maps a non-success answer to a [`SendError`]. XRPC errors are
/// `{"error":"<Name>","message":"…"}`.
fn failure(answer: &Answer, call: Call, now: DateTime<Utc>) -> SendError {
    let code = answer.status.as_u16();
    let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let name = body
        .get("error")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let described = truncate(match (name.is_empty(), message.is_empty()) {
        (true, true) => format!("HTTP {code}"),
        (false, true) => format!("HTTP {code}: {name}"),
        (true, false) => format!("HTTP {code}: {message}"),
        (false, false) => format!("HTTP {code}: {name}: {message}"),
    });
    if answer.status == StatusCode::TOO_MANY_REQUESTS || name == "RateLimitExceeded" {
        return SendError::RateLimited {
            network: CHANNEL,
            until: limited_until(&answer.headers, now),
        };
    }
    match name {
        "AuthFactorTokenRequired" => {
            return rejected(
                "Bluesky asks for the sign-in code it e-mails, because the account's main password was given: create an app password in Bluesky (Settings → Privacy and security → App passwords) and link the account again with it",
            );
        }
        "AccountTakedown" => {
            return rejected(
                "Bluesky's moderators have taken the account down; it cannot post or read until Bluesky restores it (the account's owner can appeal to Bluesky)",
            );
        }
        "AccountDeactivated" => {
            return rejected(
                "the Bluesky account is deactivated; its owner must sign in to Bluesky to reactivate it",
            );
        }
        // An expired or unusable access token: the keeper renews the
        // session; from a login or a refresh, the account must sign in
        // again (wrong or revoked app password, expired refresh token).
        "ExpiredToken" | "InvalidToken" | "AuthMissing" | "AuthenticationRequired" => {
            return token_expired();
        }
        _ => {}
    }
    match answer.status {
        StatusCode::UNAUTHORIZED => token_expired(),
        StatusCode::FORBIDDEN => rejected(format!(
            "Bluesky does not let the account do this ({described}); check that its app password allows it"
        )),
        StatusCode::NOT_FOUND | StatusCode::NOT_IMPLEMENTED => rejected(format!(
            "the account's server does not know this Bluesky call ({described}); check its address (e.g. {DEFAULT_PDS})"
        )),
        StatusCode::BAD_REQUEST => match call {
            Call::Reply => rejected(format!(
                "Bluesky refused the reply ({described}); the post answered may have been deleted, or its author restricts replies: answer on another channel"
            )),
            Call::Publish => rejected(format!("Bluesky refused the post ({described})")),
            Call::Resolve => rejected(format!("Bluesky could not resolve a handle ({described})")),
            Call::Login | Call::Refresh | Call::Poll => rejected(described),
        },
        StatusCode::REQUEST_TIMEOUT => temporary(described),
        status if status.is_server_error() => temporary(described),
        status if status.is_client_error() => rejected(described),
        _ => temporary(format!("unexpected answer: {described}")),
    }
}

// ---------------------------------------------------------------------------
// The API client
// ---------------------------------------------------------------------------

/// Every new mention, reply and quote since the last seen, as
/// [`BlueskyClient::mentions`] read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Mentions {
    /// The citizens' messages, oldest first, each once.
    pub messages: Vec<Inbound>,
    /// The newest notification's uri: the next poll's `last_seen_uri`.
    /// `None` when there are no notifications at all: keep the one you had.
    pub newest_uri: Option<String>,
    /// What a reply needs of each message's post, by its uri.
    pub refs: HashMap<String, PostRefs>,
    /// Whether the poll stopped after [`MAX_PAGES_PER_POLL`] pages without
    /// reaching the last seen notification: older new ones were not read.
    pub truncated: bool,
}

/// A client for the XRPC API of a PDS (`https://bsky.social`, or a local
/// fake), calling with a [`Session`]'s tokens. It keeps no state: the
/// [`SessionKeeper`] keeps the sessions.
#[derive(Debug, Clone)]
pub struct BlueskyClient {
    base: String,
    http: reqwest::Client,
}

impl BlueskyClient {
    /// A client of the PDS at `pds_base` (`https://bsky.social`; a trailing
    /// `/` is fine) over `http` (whose timeouts apply).
    pub fn new(pds_base: &str, http: reqwest::Client) -> Self {
        BlueskyClient {
            base: pds_base.trim().trim_end_matches('/').to_owned(),
            http,
        }
    }

    /// The PDS's address.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn endpoint(&self, nsid: &str) -> Result<Url, SendError> {
        Url::parse(&format!("{}/xrpc/{nsid}", self.base)).map_err(|e| {
            rejected(format!(
                "the Bluesky server address {:?} is not a web address ({e}); use e.g. {DEFAULT_PDS}",
                self.base
            ))
        })
    }

    /// Sends a request (with `bearer` as `Authorization: Bearer`) and reads
    /// the whole answer; a network failure or timeout is
    /// [`SendError::Temporary`].
    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        bearer: Option<&SecretString>,
    ) -> Result<Answer, SendError> {
        let request = match bearer {
            Some(token) => request.bearer_auth(token.expose_secret()),
            None => request,
        };
        let response = request.send().await.map_err(|e| {
            let what = if e.is_timeout() {
                "did not answer in time"
            } else {
                "could not be reached"
            };
            temporary(format!("{} {what}: {}", self.base, e.without_url()))
        })?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .bytes()
            .await
            .map_err(|e| {
                temporary(format!(
                    "reading {}'s answer failed: {}",
                    self.base,
                    e.without_url()
                ))
            })?
            .to_vec();
        if let Some(limit) = rate_limit(&headers)
            && limit.remaining == 0
        {
            tracing::warn!(
                network = CHANNEL,
                pds = %self.base,
                reset = %limit.reset,
                policy = limit.policy.as_deref().unwrap_or_default(),
                "Bluesky rate limit exhausted"
            );
        }
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn session_from(&self, answer: &Answer, what: &str) -> Result<Session, SendError> {
        let session: SessionAnswer = serde_json::from_slice(&answer.body).map_err(|e| {
            temporary(format!(
                "{} answered {what} with something else: {e}",
                self.base
            ))
        })?;
        if session.active == Some(false) {
            let status = session.status.as_deref().unwrap_or("inactive");
            return Err(rejected(format!(
                "the Bluesky account @{} is {status}: it cannot post until it is active again",
                session.handle
            )));
        }
        Ok(Session::from_tokens(
            session.did,
            session.handle,
            session.access_jwt,
            session.refresh_jwt,
            Utc::now(),
        ))
    }

    /// Signs in (`POST /xrpc/com.atproto.server.createSession`) with the
    /// account's `identifier` (its DID or handle) and an **app password**.
    /// Allowed only 30 times per 5 minutes and 300 per day per account: use
    /// the [`SessionKeeper`], never once per call.
    ///
    /// A wrong or revoked password (`AuthenticationRequired`) is
    /// [`SendError::TokenExpired`] (an admin must link the account again);
    /// `AuthFactorTokenRequired` (the main password was given) and
    /// `AccountTakedown` are [`SendError::Rejected`] saying what to do; a
    /// 429 is [`SendError::RateLimited`] until `RateLimit-Reset`.
    pub async fn create_session(
        &self,
        identifier: &str,
        app_password: &SecretString,
    ) -> Result<Session, SendError> {
        let identifier = identifier.trim().trim_start_matches('@');
        if identifier.is_empty() {
            return Err(rejected(
                "the Bluesky account has no identifier (its handle or DID); link the account again",
            ));
        }
        let url = self.endpoint("com.atproto.server.createSession")?;
        let body = json!({
            "identifier": identifier,
            "password": app_password.expose_secret(),
        });
        let answer = self.call(self.http.post(url).json(&body), None).await?;
        if !answer.status.is_success() {
            return Err(failure(&answer, Call::Login, Utc::now()));
        }
        let session = self.session_from(&answer, "the sign-in")?;
        tracing::info!(network = CHANNEL, did = %session.did, "signed in to Bluesky");
        Ok(session)
    }

    /// Renews a session (`POST /xrpc/com.atproto.server.refreshSession`
    /// with `Bearer <refreshJwt>`): new access and refresh tokens (the old
    /// refresh token is spent). An expired or revoked refresh token
    /// (`ExpiredToken`, `InvalidToken`) is [`SendError::TokenExpired`]: sign
    /// in again.
    pub async fn refresh_session(&self, session: &Session) -> Result<Session, SendError> {
        let url = self.endpoint("com.atproto.server.refreshSession")?;
        let answer = self
            .call(self.http.post(url), Some(&session.refresh_jwt))
            .await?;
        if !answer.status.is_success() {
            return Err(failure(&answer, Call::Refresh, Utc::now()));
        }
        self.session_from(&answer, "the session refresh")
    }

    /// The DID of `handle` (`GET /xrpc/com.atproto.identity.resolveHandle`),
    /// `None` when it does not resolve (no such account).
    pub async fn resolve_handle(
        &self,
        session: &Session,
        handle: &str,
    ) -> Result<Option<String>, SendError> {
        let handle = handle.trim().trim_start_matches('@').to_ascii_lowercase();
        if !is_handle(&handle) {
            return Ok(None);
        }
        let mut url = self.endpoint("com.atproto.identity.resolveHandle")?;
        url.query_pairs_mut().append_pair("handle", &handle);
        let answer = self
            .call(self.http.get(url), Some(&session.access_jwt))
            .await?;
        if answer.status == StatusCode::BAD_REQUEST {
            let error = failure(&answer, Call::Resolve, Utc::now());
            if matches!(error, SendError::Rejected { .. }) {
                return Ok(None);
            }
            return Err(error);
        }
        if !answer.status.is_success() {
            return Err(failure(&answer, Call::Resolve, Utc::now()));
        }
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        Ok(body
            .get("did")
            .and_then(Value::as_str)
            .filter(|d| d.starts_with("did:"))
            .map(str::to_owned))
    }

    /// One page of the account's mentions, replies and quotes
    /// (`GET /xrpc/app.bsky.notification.listNotifications?limit=&reasons=mention&reasons=reply&reasons=quote&cursor=`),
    /// newest first, read by [`parse_notifications`].
    pub async fn list_notifications(
        &self,
        session: &Session,
        cursor: Option<&str>,
        limit: usize,
    ) -> Result<Page, SendError> {
        let mut url = self.endpoint("app.bsky.notification.listNotifications")?;
        {
            let mut query = url.query_pairs_mut();
            query
                .append_pair("limit", &limit.clamp(1, 100).to_string())
                .append_pair("reasons", "mention")
                .append_pair("reasons", "reply")
                .append_pair("reasons", "quote");
            if let Some(cursor) = cursor {
                query.append_pair("cursor", cursor);
            }
        }
        let answer = self
            .call(self.http.get(url), Some(&session.access_jwt))
            .await?;
        if !answer.status.is_success() {
            return Err(failure(&answer, Call::Poll, Utc::now()));
        }
        parse_notifications(&answer.body, &session.did).map_err(|e| {
            temporary(format!(
                "{} answered the notifications poll with something else: {e}",
                self.base
            ))
        })
    }

    /// Reads every mention, reply and quote newer than the notification
    /// `last_seen_uri`, oldest first, each once (by uri).
    ///
    /// Bluesky's cursor walks from the newest notification to older ones:
    /// the first page (50) is the newest, then the next pages are read with
    /// its `cursor` until the page holding `last_seen_uri`, the end, or
    /// [`MAX_PAGES_PER_POLL`] pages ([`Mentions::truncated`] then says
    /// that older new ones were not read). Without `last_seen_uri` (the
    /// first poll of an account) only the first page is read: linking an
    /// account does not turn its whole history into tickets.
    ///
    /// If the last seen post was deleted meanwhile, its notification is
    /// gone and the poll reads up to the page limit; the messages are
    /// deduplicated downstream by uri, so nothing is recorded twice.
    ///
    /// Store the messages before moving the cursor to
    /// [`Mentions::newest_uri`]: a failure returns nothing, and the same
    /// poll can simply be made again.
    pub async fn mentions(
        &self,
        session: &Session,
        last_seen_uri: Option<&str>,
    ) -> Result<Mentions, SendError> {
        self.mentions_paged(session, last_seen_uri, PAGE_LIMIT)
            .await
    }

    async fn mentions_paged(
        &self,
        session: &Session,
        last_seen_uri: Option<&str>,
        limit: usize,
    ) -> Result<Mentions, SendError> {
        let last_seen = last_seen_uri.map(str::trim).filter(|u| !u.is_empty());
        let max_pages = if last_seen.is_some() {
            MAX_PAGES_PER_POLL
        } else {
            1
        };
        let mut result = Mentions::default();
        let mut newest_first: Vec<Inbound> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        let mut cursor: Option<String> = None;
        let mut reached = last_seen.is_none();
        for page_number in 0..max_pages {
            let mut page = self
                .list_notifications(session, cursor.as_deref(), limit)
                .await?;
            if page_number == 0 {
                result.newest_uri = page.uris.first().cloned();
            }
            if let Some(last) = last_seen
                && let Some(position) = page.uris.iter().position(|u| u == last)
            {
                let newer: HashSet<&String> = page.uris[..position].iter().collect();
                page.items.retain(|m| newer.contains(&m.platform_id));
                reached = true;
            }
            for message in page.items {
                if seen.insert(message.platform_id.clone()) {
                    if let Some(refs) = page.refs.remove(&message.platform_id) {
                        result.refs.insert(message.platform_id.clone(), refs);
                    }
                    newest_first.push(message);
                }
            }
            if reached {
                break;
            }
            match page.cursor {
                Some(next) if !page.uris.is_empty() && cursor.as_deref() != Some(next.as_str()) => {
                    cursor = Some(next);
                }
                _ => {
                    // The end of the notifications: all read.
                    reached = true;
                    break;
                }
            }
        }
        if !reached {
            result.truncated = true;
            tracing::warn!(
                network = CHANNEL,
                did = %session.did,
                pages = max_pages,
                "the last seen Bluesky notification was not reached; older new ones were not read"
            );
        }
        newest_first.reverse();
        result.messages = newest_first;
        Ok(result)
    }

    /// The facets of these spans: links, and mentions of handles whose DID
    /// is known ([`PostOptions::known_dids`]) or resolves.
    async fn facets(
        &self,
        session: &Session,
        mut spans: Vec<Span>,
        options: &PostOptions,
    ) -> Result<Vec<Value>, SendError> {
        spans.sort_by_key(|s| s.byte_start);
        let mut dids: HashMap<String, String> = options
            .known_dids
            .iter()
            .map(|(h, d)| (h.trim_start_matches('@').to_ascii_lowercase(), d.clone()))
            .collect();
        for span in &spans {
            if let FacetTarget::Mention(handle) = &span.target
                && !dids.contains_key(handle)
                && let Some(did) = self.resolve_handle(session, handle).await?
            {
                dids.insert(handle.clone(), did);
            }
        }
        Ok(facets_json(&spans, &dids))
    }

    /// Creates a post record (`POST /xrpc/com.atproto.repo.createRecord`)
    /// in the session's repository.
    async fn create_post(
        &self,
        session: &Session,
        record: Value,
        call: Call,
    ) -> Result<Sent, SendError> {
        let url = self.endpoint("com.atproto.repo.createRecord")?;
        let body = json!({
            "repo": session.did,
            "collection": POST_COLLECTION,
            "record": record,
        });
        let answer = self
            .call(self.http.post(url).json(&body), Some(&session.access_jwt))
            .await?;
        if !answer.status.is_success() {
            return Err(failure(&answer, call, Utc::now()));
        }
        let created: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        match created.get("uri").and_then(Value::as_str) {
            Some(uri) if uri.starts_with("at://") => Ok(Sent {
                platform_id: uri.to_owned(),
            }),
            _ => Err(temporary(format!(
                "{} answered HTTP {} without the new post's uri",
                self.base,
                answer.status.as_u16()
            ))),
        }
    }

    fn record(
        text: &str,
        facets: Vec<Value>,
        reply: Option<(&StrongRef, &StrongRef)>,
        options: &PostOptions,
    ) -> Value {
        let created_at = options
            .created_at
            .unwrap_or_else(Utc::now)
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        let mut record = json!({
            "$type": POST_COLLECTION,
            "text": text,
            "createdAt": created_at,
        });
        let langs: Vec<&str> = options
            .langs
            .iter()
            .map(|l| l.trim())
            .filter(|l| !l.is_empty())
            .collect();
        if !langs.is_empty() {
            record["langs"] = json!(langs);
        }
        if !facets.is_empty() {
            record["facets"] = Value::Array(facets);
        }
        if let Some((parent, root)) = reply {
            record["reply"] = json!({ "root": root.json(), "parent": parent.json() });
        }
        record
    }

    /// Answers a post in its thread: an `app.bsky.feed.post` whose
    /// `reply.parent` is `parent` and `reply.root` is `root` (take both from
    /// [`reply_refs`] / [`PostRefs::reply_refs`]: a wrong root starts a
    /// separate thread), with `createdAt` (RFC 3339, `Z`), `langs`, and
    /// facets for its links and `@handle` mentions (UTF-8 byte offsets;
    /// handles resolved unless [`PostOptions::known_dids`] has them).
    ///
    /// Refused without calling ([`SendError::Rejected`]): an empty text, one
    /// over [`MAX_GRAPHEMES`] as [`grapheme_len`] counts (saying by how
    /// much) or over [`MAX_TEXT_BYTES`], and refs without an `at://` uri and
    /// a cid. The answer's [`Sent::platform_id`] is the new post's uri.
    pub async fn reply(
        &self,
        session: &Session,
        text: &str,
        parent: &StrongRef,
        root: &StrongRef,
        options: &PostOptions,
    ) -> Result<Sent, SendError> {
        check_text(text, "reply")?;
        for (which, reference) in [("answered", parent), ("starting the thread", root)] {
            if !reference.uri.starts_with("at://") || reference.cid.trim().is_empty() {
                return Err(rejected(format!(
                    "the Bluesky post {which} is not known well enough to reply to it (uri {:?}, cid {:?}); the reply needs both: answer on another channel",
                    reference.uri, reference.cid
                )));
            }
        }
        let facets = self.facets(session, find_facets(text), options).await?;
        let record = Self::record(text, facets, Some((parent, root)), options);
        self.create_post(session, record, Call::Reply).await
    }

    /// Publishes an announcement: a post with the text and, after a blank
    /// line, the link (as a `#link` facet, as are links and mentions in the
    /// text). The image is ignored: Bluesky takes images only as uploaded
    /// blobs. Too long a text (the link included) is refused without
    /// calling, as for [`BlueskyClient::reply`].
    pub async fn post(
        &self,
        session: &Session,
        post: &Post,
        options: &PostOptions,
    ) -> Result<Sent, SendError> {
        let mut text = post.text.trim_end().to_owned();
        let mut extra = Vec::new();
        if let Some(link) = post
            .link
            .as_deref()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let valid = Url::parse(link).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
            if !valid || link.contains(char::is_whitespace) {
                return Err(rejected(format!(
                    "the announcement's link {link:?} is not a web address (https://…)"
                )));
            }
            if !text.is_empty() {
                text.push_str("\n\n");
            }
            let start = text.len();
            text.push_str(link);
            extra.push(Span {
                byte_start: start,
                byte_end: text.len(),
                target: FacetTarget::Link(link.to_owned()),
            });
        }
        check_text(&text, "announcement")?;
        let body_len = extra.first().map_or(text.len(), |s| s.byte_start);
        let mut spans = find_facets(&text[..body_len]);
        spans.extend(extra);
        let facets = self.facets(session, spans, options).await?;
        let record = Self::record(&text, facets, None, options);
        self.create_post(session, record, Call::Publish).await
    }
}

// ---------------------------------------------------------------------------
// The session keeper
// ---------------------------------------------------------------------------

/// A sign-in that failed for good, remembered so that the same credentials
/// are not tried again (each try spends the small login budget).
#[derive(Debug)]
struct Refusal {
    fingerprint: [u8; 32],
    error: SendError,
}

/// One account's slot: its session, the identifier it signed in with, and
/// why it cannot sign in.
#[derive(Debug, Default)]
struct Slot {
    session: Option<Session>,
    signed_in_as: Option<String>,
    refusal: Option<Refusal>,
}

impl Slot {
    /// Whether the kept session is the account `identifier` names (its DID
    /// or handle, or the identifier it signed in with).
    fn belongs_to(&self, identifier: &str) -> bool {
        self.session.as_ref().is_some_and(|s| {
            s.belongs_to(identifier)
                || self
                    .signed_in_as
                    .as_deref()
                    .is_some_and(|i| i.eq_ignore_ascii_case(identifier.trim()))
        })
    }
}

fn fingerprint(creds: &Credentials) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(creds.external_id.trim().as_bytes());
    hasher.update([0u8]);
    hasher.update(creds.access_token.expose_secret().as_bytes());
    hasher.finalize().into()
}

/// Keeps one [`Session`] per account in memory, so that an account signs
/// in once and then only refreshes its session.
///
/// Each account (keyed by the service's account id) has its own
/// `tokio::sync::Mutex`, held while a session is refreshed or created: many
/// callers asking at once wait for the one sign-in. The credentials are the
/// account's [`Credentials`]: [`Credentials::external_id`] is its DID or
/// handle (the sign-in identifier), [`Credentials::access_token`] its app
/// password.
///
/// A sign-in refused for good (wrong password, takedown, main password
/// given) is remembered for those credentials and answered again without
/// calling until they change; a 429 until its reset.
#[derive(Debug)]
pub struct SessionKeeper {
    client: BlueskyClient,
    slots: StdMutex<HashMap<String, Arc<tokio::sync::Mutex<Slot>>>>,
}

impl SessionKeeper {
    /// A keeper signing in and refreshing through `client`.
    pub fn new(client: BlueskyClient) -> Self {
        SessionKeeper {
            client,
            slots: StdMutex::new(HashMap::new()),
        }
    }

    /// The client it signs in with.
    pub fn client(&self) -> &BlueskyClient {
        &self.client
    }

    fn slot(&self, account: &str) -> Arc<tokio::sync::Mutex<Slot>> {
        let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(slots.entry(account.to_owned()).or_default())
    }

    /// Puts a stored session back (after a restart), replacing the one kept.
    pub async fn restore(&self, account: &str, session: Session) {
        let slot = self.slot(account);
        let mut slot = slot.lock().await;
        slot.signed_in_as = None;
        slot.session = Some(session);
    }

    /// The session kept for `account`, if any, to persist it (encrypted).
    pub async fn current(&self, account: &str) -> Option<Session> {
        let slot = self.slot(account);
        let slot = slot.lock().await;
        slot.session.clone()
    }

    /// Forgets `account`'s session and refusals (the account was unlinked or
    /// linked again).
    pub async fn forget(&self, account: &str) {
        let slot = self.slot(account);
        let mut slot = slot.lock().await;
        *slot = Slot::default();
    }

    /// A session of `account` valid for at least 5 more minutes: the one
    /// kept; else the kept one refreshed; else (no session, or its refresh
    /// token expired or revoked) a new sign-in with `creds`. Concurrent
    /// callers for one account share the one refresh or sign-in.
    pub async fn session(&self, account: &str, creds: &Credentials) -> Result<Session, SendError> {
        let slot = self.slot(account);
        let mut slot = slot.lock().await;
        let now = Utc::now();
        if !slot.belongs_to(&creds.external_id) {
            slot.session = None;
        }
        if let Some(session) = &slot.session
            && session.is_fresh(now)
        {
            return Ok(session.clone());
        }
        self.renew_locked(&mut slot, account, creds, now, true)
            .await
    }

    /// A new session for `account` after a call refused `stale`'s access
    /// token: the one kept if another caller already renewed it, else the
    /// kept one refreshed, else a new sign-in.
    pub async fn renew(
        &self,
        account: &str,
        creds: &Credentials,
        stale: &Session,
    ) -> Result<Session, SendError> {
        let slot = self.slot(account);
        let mut slot = slot.lock().await;
        let now = Utc::now();
        if !slot.belongs_to(&creds.external_id) {
            slot.session = None;
        }
        if let Some(session) = &slot.session
            && !session.same_tokens(stale)
            && session.is_fresh(now)
        {
            return Ok(session.clone());
        }
        if slot.session.is_none() && stale.belongs_to(&creds.external_id) {
            slot.session = Some(stale.clone());
        }
        self.renew_locked(&mut slot, account, creds, now, false)
            .await
    }

    /// Refreshes the kept session, or signs in; the slot is locked. When
    /// the refresh fails for a passing reason (a 5xx, a 429) and
    /// `old_still_usable` (the PDS has not refused the access token), the
    /// old session is answered while its token has not actually expired.
    async fn renew_locked(
        &self,
        slot: &mut Slot,
        account: &str,
        creds: &Credentials,
        now: DateTime<Utc>,
        old_still_usable: bool,
    ) -> Result<Session, SendError> {
        if let Some(session) = slot.session.take()
            && session.can_refresh(now)
        {
            match self.client.refresh_session(&session).await {
                Ok(renewed) => {
                    slot.session = Some(renewed.clone());
                    return Ok(renewed);
                }
                Err(SendError::TokenExpired { .. }) => {
                    tracing::info!(
                        network = CHANNEL,
                        account,
                        "the Bluesky refresh token is no longer valid; signing in again"
                    );
                }
                Err(other) => {
                    // Keep it: the refresh may work next time.
                    let usable = old_still_usable && now < session.access_expires_at;
                    slot.session = Some(session.clone());
                    if usable {
                        tracing::warn!(network = CHANNEL, account, error = %other, "the Bluesky session could not be refreshed; its access token is used while it lasts");
                        return Ok(session);
                    }
                    return Err(other);
                }
            }
        }
        let fingerprint = fingerprint(creds);
        if let Some(refusal) = &slot.refusal
            && refusal.fingerprint == fingerprint
        {
            match &refusal.error {
                SendError::RateLimited { until, .. } if *until <= now => {}
                error => return Err(error.clone()),
            }
        }
        slot.refusal = None;
        match self
            .client
            .create_session(&creds.external_id, &creds.access_token)
            .await
        {
            Ok(session) => {
                slot.session = Some(session.clone());
                slot.signed_in_as = Some(creds.external_id.trim().to_owned());
                Ok(session)
            }
            Err(error) => {
                if matches!(
                    error,
                    SendError::RateLimited { .. }
                        | SendError::TokenExpired { .. }
                        | SendError::Rejected { .. }
                ) {
                    slot.refusal = Some(Refusal {
                        fingerprint,
                        error: error.clone(),
                    });
                }
                tracing::warn!(network = CHANNEL, account, error = %error, "Bluesky sign-in failed");
                Err(error)
            }
        }
    }

    /// Runs `op` with a valid session of `account`; if it fails with
    /// [`SendError::TokenExpired`] (the PDS answered `ExpiredToken` or
    /// `InvalidToken`), renews the session once ([`SessionKeeper::renew`])
    /// and runs it once more.
    pub async fn call<T, F>(
        &self,
        account: &str,
        creds: &Credentials,
        op: F,
    ) -> Result<T, SendError>
    where
        F: AsyncFn(&Session) -> Result<T, SendError>,
    {
        let session = self.session(account, creds).await?;
        match op(&session).await {
            Err(SendError::TokenExpired { .. }) => {
                let renewed = self.renew(account, creds, &session).await?;
                op(&renewed).await
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn jwt(claims: &Value) -> String {
        format!(
            "{}.{}.c2ln",
            URL_SAFE_NO_PAD.encode(br#"{"typ":"at+jwt","alg":"ES256K"}"#),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    #[test]
    fn the_expiry_is_read_from_the_jwt_payload() {
        let token =
            jwt(&json!({"scope":"com.atproto.appPass","sub":"did:plc:a","exp":1_700_000_000}));
        assert_eq!(
            jwt_expiry(&token),
            Some(Utc.timestamp_opt(1_700_000_000, 0).unwrap())
        );
        assert_eq!(jwt_expiry("not-a-jwt"), None);
        assert_eq!(jwt_expiry(&jwt(&json!({"sub":"x"}))), None);
        assert_eq!(jwt_expiry("a.!!!.c"), None);

        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let access = jwt(&json!({"exp": now.timestamp() + 3600}));
        let refresh = jwt(&json!({"exp": now.timestamp() + 86_400}));
        let session = Session::from_tokens("did:plc:a", "a.bsky.social", access, refresh, now);
        assert!(session.is_fresh(now));
        assert!(session.is_fresh(now + Duration::minutes(54)));
        assert!(
            !session.is_fresh(now + Duration::minutes(55)),
            "5 minutes before counts as expired"
        );
        assert!(session.can_refresh(now + Duration::hours(23)));
        assert!(!session.can_refresh(now + Duration::hours(24)));
        // Unreadable: 15 minutes assumed.
        let opaque = Session::from_tokens("d", "h", "x".into(), "y".into(), now);
        assert_eq!(opaque.access_expires_at, now + Duration::minutes(15));
        assert!(opaque.can_refresh(now + Duration::days(400)));
    }

    #[test]
    fn sessions_serialize_for_storage_and_hide_tokens_in_debug() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let session = Session::from_tokens(
            "did:plc:a",
            "a.bsky.social",
            jwt(&json!({"exp": 1_700_003_600})),
            "refresh-secret".into(),
            now,
        );
        let debug = format!("{session:?}");
        assert!(!debug.contains("refresh-secret"), "{debug}");
        let stored = serde_json::to_value(&session).unwrap();
        assert_eq!(stored["refresh_jwt"], "refresh-secret");
        assert_eq!(stored["did"], "did:plc:a");
        let back: Session = serde_json::from_value(stored).unwrap();
        assert!(back.same_tokens(&session));
        assert_eq!(back.access_expires_at, session.access_expires_at);
        assert_eq!(back.refresh_expires_at, None);
        assert!(back.belongs_to("@A.bsky.social"));
        assert!(back.belongs_to("did:plc:a"));
        assert!(!back.belongs_to("other.bsky.social"));
    }

    const OWN: &str = "did:plc:concello";

    fn notifications_fixture() -> Vec<u8> {
        json!({
            "notifications": [
                {
                    "uri": "at://did:plc:vecina/app.bsky.feed.post/3k3",
                    "cid": "bafyreic3",
                    "author": {"did": "did:plc:vecina", "handle": "vecina.bsky.social", "displayName": "Vecina "},
                    "reason": "reply",
                    "reasonSubject": "at://did:plc:concello/app.bsky.feed.post/3k1",
                    "record": {
                        "$type": "app.bsky.feed.post",
                        "text": "Sigue sen luz na rúa",
                        "createdAt": "2026-03-01T10:05:00.000Z",
                        "reply": {
                            "root": {"uri": "at://did:plc:vecina/app.bsky.feed.post/3k0", "cid": "bafyreic0"},
                            "parent": {"uri": "at://did:plc:concello/app.bsky.feed.post/3k1", "cid": "bafyreic1"}
                        }
                    },
                    "isRead": false,
                    "indexedAt": "2026-03-01T10:05:01.000Z",
                    "labels": []
                },
                {
                    "uri": "at://did:plc:x/app.bsky.feed.like/3k2",
                    "cid": "bafyreilike",
                    "author": {"did": "did:plc:x", "handle": "x.bsky.social"},
                    "reason": "like",
                    "record": {"$type": "app.bsky.feed.like"},
                    "isRead": false,
                    "indexedAt": "2026-03-01T10:04:00.000Z"
                },
                {
                    "uri": "at://did:plc:concello/app.bsky.feed.post/3k1b",
                    "cid": "bafyreiown",
                    "author": {"did": OWN, "handle": "concello.bsky.social"},
                    "reason": "mention",
                    "record": {"$type": "app.bsky.feed.post", "text": "@concello.bsky.social", "createdAt": "2026-03-01T10:03:00Z"},
                    "isRead": false,
                    "indexedAt": "2026-03-01T10:03:00.000Z"
                },
                {
                    "uri": "at://did:plc:outro/app.bsky.feed.post/3k0q",
                    "cid": "bafyreiq",
                    "author": {"did": "did:plc:outro", "handle": "handle.invalid"},
                    "reason": "quote",
                    "record": {"$type": "app.bsky.feed.post", "text": "Mirade isto", "createdAt": "not a date"},
                    "isRead": true,
                    "indexedAt": "2026-03-01T10:02:00.000Z"
                }
            ],
            "cursor": "2026-03-01T10:02:00.000Z",
            "seenAt": "2026-03-01T09:00:00.000Z"
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn notifications_become_messages_with_their_refs() {
        let page = parse_notifications(&notifications_fixture(), OWN).unwrap();
        assert_eq!(page.cursor.as_deref(), Some("2026-03-01T10:02:00.000Z"));
        assert_eq!(page.uris.len(), 4);
        assert_eq!(page.items.len(), 2, "like and own post skipped");
        let reply = &page.items[0];
        assert_eq!(reply.channel, "bluesky");
        assert_eq!(reply.kind, MessageKind::Reply);
        assert_eq!(
            reply.platform_id,
            "at://did:plc:vecina/app.bsky.feed.post/3k3"
        );
        assert_eq!(reply.thread, "at://did:plc:vecina/app.bsky.feed.post/3k0");
        assert_eq!(
            reply.in_reply_to.as_deref(),
            Some("at://did:plc:concello/app.bsky.feed.post/3k1")
        );
        assert_eq!(reply.author.platform_user_id, "did:plc:vecina");
        assert_eq!(reply.author.handle.as_deref(), Some("@vecina.bsky.social"));
        assert_eq!(reply.author.name.as_deref(), Some("Vecina"));
        assert_eq!(reply.text, "Sigue sen luz na rúa");
        assert_eq!(reply.sent_at, parse_time("2026-03-01T10:05:00Z").unwrap());
        let quote = &page.items[1];
        assert_eq!(quote.kind, MessageKind::Mention);
        assert_eq!(quote.thread, quote.platform_id);
        assert_eq!(quote.in_reply_to, None);
        assert_eq!(quote.author.handle, None);
        assert_eq!(
            quote.sent_at,
            parse_time("2026-03-01T10:02:00Z").unwrap(),
            "indexedAt"
        );

        let refs = &page.refs[&reply.platform_id];
        assert_eq!(refs.cid, "bafyreic3");
        let answer = refs.reply_refs();
        assert_eq!(
            answer.parent,
            StrongRef::new(&reply.platform_id, "bafyreic3")
        );
        assert_eq!(
            answer.root,
            StrongRef::new("at://did:plc:vecina/app.bsky.feed.post/3k0", "bafyreic0")
        );
        let quote_refs = page.refs[&quote.platform_id].reply_refs();
        assert_eq!(quote_refs.root, quote_refs.parent);

        assert!(matches!(
            parse_notifications(b"[]", OWN),
            Err(WebhookError::Malformed {
                network: "bluesky",
                ..
            })
        ));
        let bad_time = br#"{"notifications":[{"uri":"at://a/b/c","cid":"c","author":{"did":"did:plc:z"},"reason":"mention","indexedAt":"yesterday"}]}"#;
        assert!(parse_notifications(bad_time, OWN).is_err());
    }

    #[test]
    fn the_root_is_the_parents_root_when_the_parent_is_a_reply() {
        // The parent is a top-level post: it is the root.
        let top = reply_refs("at://did:plc:v/app.bsky.feed.post/1", "cid1", None);
        assert_eq!(
            top.root,
            StrongRef::new("at://did:plc:v/app.bsky.feed.post/1", "cid1")
        );
        assert_eq!(top.parent, top.root);
        // The parent answers another post: the thread's root is kept.
        let nested = reply_refs(
            "at://did:plc:v/app.bsky.feed.post/3",
            "cid3",
            Some(("at://did:plc:c/app.bsky.feed.post/0", "cid0")),
        );
        assert_eq!(
            nested.parent,
            StrongRef::new("at://did:plc:v/app.bsky.feed.post/3", "cid3")
        );
        assert_eq!(
            nested.root,
            StrongRef::new("at://did:plc:c/app.bsky.feed.post/0", "cid0")
        );
    }

    #[test]
    fn facets_use_utf8_byte_offsets() {
        let text = "¿Qué tal? @vecina.bsky.social mira https://lugo.gal";
        let spans = find_facets(text);
        assert_eq!(
            spans,
            vec![
                Span {
                    byte_start: 12,
                    byte_end: 31,
                    target: FacetTarget::Mention("vecina.bsky.social".into())
                },
                Span {
                    byte_start: 37,
                    byte_end: 53,
                    target: FacetTarget::Link("https://lugo.gal".into())
                },
            ]
        );
        assert_eq!(&text[12..31], "@vecina.bsky.social");
        assert_eq!(&text[37..53], "https://lugo.gal");
        let dids = HashMap::from([("vecina.bsky.social".to_owned(), "did:plc:vecina".to_owned())]);
        let facets = facets_json(&spans, &dids);
        assert_eq!(
            facets[0],
            json!({"index":{"byteStart":12,"byteEnd":31},"features":[{"$type":"app.bsky.richtext.facet#mention","did":"did:plc:vecina"}]})
        );
        assert_eq!(
            facets[1],
            json!({"index":{"byteStart":37,"byteEnd":53},"features":[{"$type":"app.bsky.richtext.facet#link","uri":"https://lugo.gal"}]})
        );
        // Unknown DID: no mention facet.
        assert_eq!(facets_json(&spans, &HashMap::new()).len(), 1);

        let spans =
            find_facets("(https://lugo.gal/rúa?x=1). ¡@Ana.Example.org! a@b.c @nope @1.2 ola.gal");
        assert_eq!(spans.len(), 2, "{spans:?}");
        assert_eq!(
            spans[0].target,
            FacetTarget::Link("https://lugo.gal/rúa?x=1".into())
        );
        assert_eq!(spans[0].byte_start, 1);
        assert_eq!(
            spans[1].target,
            FacetTarget::Mention("ana.example.org".into())
        );
        assert!(find_facets("").is_empty());
    }

    #[test]
    fn graphemes_are_never_undercounted() {
        assert_eq!(grapheme_len("hola"), 4);
        assert_eq!(grapheme_len("árbore"), 6);
        assert_eq!(
            grapheme_len("a\u{301}rbore"),
            6,
            "a combining accent joins its letter"
        );
        assert_eq!(grapheme_len("👍🏽"), 1, "a skin tone joins its emoji");
        assert_eq!(grapheme_len("❤\u{FE0F}"), 1);
        assert_eq!(
            grapheme_len("👩\u{200D}🚒"),
            2,
            "a ZWJ sequence is over-counted, never under"
        );
        assert_eq!(grapheme_len("\u{301}"), 1);
        assert!(check_text(&"ñ".repeat(300), "reply").is_ok());
        let error = check_text(&"ñ".repeat(302), "reply").unwrap_err();
        assert_eq!(
            error,
            SendError::Rejected {
                network: "bluesky",
                reason: "the reply is too long for Bluesky: it counts 302 characters, 2 more than the 300 a post may have; shorten it by at least 2".into()
            }
        );
        assert!(
            matches!(check_text("  ", "reply"), Err(SendError::Rejected { reason, .. }) if reason.contains("empty"))
        );
        // 300 graphemes of 4 bytes with accents: over 3000 bytes.
        let heavy = format!("e{}", "\u{301}".repeat(5)).repeat(300);
        assert!(
            matches!(check_text(&heavy, "reply"), Err(SendError::Rejected { reason, .. }) if reason.contains("bytes"))
        );
    }

    fn answer(status: u16, body: &str, headers: &[(&'static str, &str)]) -> Answer {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, value.parse().unwrap());
        }
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            headers: map,
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn errors_map_to_what_an_agent_or_admin_can_do() {
        let now = Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        let map = |a: Answer, call| failure(&a, call, now);
        let limited = answer(
            429,
            r#"{"error":"RateLimitExceeded","message":"Rate Limit Exceeded"}"#,
            &[
                ("ratelimit-limit", "30"),
                ("ratelimit-remaining", "0"),
                ("ratelimit-reset", "1700000300"),
                ("ratelimit-policy", "30;w=300"),
            ],
        );
        assert_eq!(
            rate_limit(&limited.headers),
            Some(RateLimit {
                limit: 30,
                remaining: 0,
                reset: now + Duration::minutes(5),
                policy: Some("30;w=300".into())
            })
        );
        assert_eq!(
            map(limited, Call::Login),
            SendError::RateLimited {
                network: "bluesky",
                until: now + Duration::minutes(5)
            }
        );
        assert_eq!(
            map(answer(429, "", &[]), Call::Reply),
            SendError::RateLimited {
                network: "bluesky",
                until: now + Duration::minutes(5)
            }
        );
        for body in [
            r#"{"error":"AuthenticationRequired","message":"Invalid identifier or password"}"#,
            r#"{"error":"ExpiredToken","message":"Token has expired"}"#,
            r#"{"error":"InvalidToken","message":"Token has been revoked"}"#,
        ] {
            assert_eq!(map(answer(401, body, &[]), Call::Login), token_expired());
            assert_eq!(map(answer(400, body, &[]), Call::Reply), token_expired());
        }
        assert!(matches!(
            map(answer(401, r#"{"error":"AuthFactorTokenRequired","message":"A sign in code has been sent to your email address"}"#, &[]), Call::Login),
            SendError::Rejected { reason, .. } if reason.contains("app password")
        ));
        assert!(matches!(
            map(answer(401, r#"{"error":"AccountTakedown","message":"Account has been taken down"}"#, &[]), Call::Login),
            SendError::Rejected { reason, .. } if reason.contains("taken the account down")
        ));
        assert!(matches!(
            map(answer(400, r#"{"error":"InvalidRequest","message":"Record/text must not be longer than 300 graphemes"}"#, &[]), Call::Reply),
            SendError::Rejected { reason, .. } if reason.contains("300 graphemes") && reason.contains("another channel")
        ));
        for status in [500, 502, 503, 504, 408] {
            assert!(
                map(answer(status, "<html>", &[]), Call::Poll).is_retryable(),
                "{status}"
            );
        }
        assert!(matches!(
            map(answer(404, "", &[]), Call::Poll),
            SendError::Rejected { .. }
        ));
    }

    #[tokio::test]
    async fn too_long_replies_and_bad_refs_are_refused_before_calling() {
        // Nothing listens there: a call would be Temporary.
        let client = BlueskyClient::new("http://127.0.0.1:9/", reqwest::Client::new());
        assert_eq!(client.base_url(), "http://127.0.0.1:9");
        let now = Utc::now();
        let session =
            Session::from_tokens(OWN, "concello.bsky.social", "a".into(), "r".into(), now);
        let parent = StrongRef::new("at://did:plc:v/app.bsky.feed.post/1", "cid1");
        let options = PostOptions::default();
        let too_long = client
            .reply(&session, &"a".repeat(301), &parent, &parent, &options)
            .await;
        assert!(
            matches!(too_long, Err(SendError::Rejected { reason, .. }) if reason.contains("by at least 1"))
        );
        let no_cid = StrongRef::new("at://did:plc:v/app.bsky.feed.post/1", "");
        assert!(matches!(
            client.reply(&session, "ola", &no_cid, &no_cid, &options).await,
            Err(SendError::Rejected { reason, .. }) if reason.contains("cid")
        ));
        let post = Post {
            text: "Aviso".into(),
            link: Some("javascript:alert(1)".into()),
            image_url: None,
        };
        assert!(matches!(
            client.post(&session, &post, &options).await,
            Err(SendError::Rejected { reason, .. }) if reason.contains("not a web address")
        ));
        assert!(matches!(
            client
                .reply(&session, "ola", &parent, &parent, &options)
                .await,
            Err(SendError::Temporary { .. })
        ));
    }
}

/// The session keepers of a process, one per PDS (accounts on one PDS share
/// its client): the poller and the delivery worker share them, so an
/// account signs in once per process, not once per call.
#[derive(Debug, Default)]
pub struct Keepers {
    http: reqwest::Client,
    by_base: StdMutex<HashMap<String, Arc<SessionKeeper>>>,
}

impl Keepers {
    /// Keepers calling through `http`.
    pub fn new(http: reqwest::Client) -> Self {
        Keepers {
            http,
            by_base: StdMutex::new(HashMap::new()),
        }
    }

    /// The keeper of the PDS at `base`.
    pub fn for_base(&self, base: &str) -> Arc<SessionKeeper> {
        let mut map = self
            .by_base
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(map.entry(base.to_owned()).or_insert_with(|| {
            Arc::new(SessionKeeper::new(BlueskyClient::new(
                base,
                self.http.clone(),
            )))
        }))
    }
}
