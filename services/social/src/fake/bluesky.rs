//! A local fake of a Bluesky PDS (AT Protocol XRPC), for the tests, the
//! simulator and the benchmark. Never used against a real server.
//!
//! [`FakeBluesky`] serves, at `http://127.0.0.1:<port>/xrpc/…`, the calls
//! [`crate::bluesky::BlueskyClient`] makes, with the PDS's request and
//! answer shapes, for one account of its own (the council's, [`OWN_DID`],
//! [`OWN_HANDLE`], app password [`APP_PASSWORD`]):
//! - `com.atproto.server.createSession` → JWT-shaped `accessJwt` and
//!   `refreshJwt` whose payload has `exp` (lifetimes set with
//!   [`FakeBluesky::set_token_lifetimes`]; 2 hours and 90 days by default);
//!   a login budget per 5-minute window (30 unless
//!   [`FakeBluesky::set_login_limit`] says otherwise; over it, 429
//!   `RateLimitExceeded`); wrong password → 401 `AuthenticationRequired`,
//!   [`FakeBluesky::require_auth_factor`] → 401 `AuthFactorTokenRequired`,
//!   [`FakeBluesky::take_down`] → 401 `AccountTakedown`;
//! - `com.atproto.server.refreshSession` with `Bearer <refreshJwt>` → a new
//!   pair, the old refresh token spent;
//! - an expired token (past its `exp`, or expired on purpose with
//!   [`FakeBluesky::expire_access_tokens`] /
//!   [`FakeBluesky::expire_refresh_tokens`]) → 400
//!   `{"error":"ExpiredToken"}`; an unknown or wrong-scope token → 400
//!   `InvalidToken`; none → 401 `AuthMissing`;
//! - `app.bsky.notification.listNotifications` (`limit` 1–100, default 50,
//!   `reasons`, `cursor`), newest first, over the notifications queued with
//!   [`FakeBluesky::push_mention`] and [`FakeBluesky::push_notification`];
//! - `com.atproto.repo.createRecord` of an `app.bsky.feed.post`, validated
//!   (`$type`, text ≤ 300 graphemes and 3000 bytes, `createdAt`,
//!   `reply.root`/`reply.parent` each with `uri` and `cid`, facets' byte
//!   ranges within the text and on character boundaries) → `{"uri","cid"}`;
//! - `com.atproto.identity.resolveHandle` for the accounts it knows.
//!
//! Every answer carries `RateLimit-Limit`, `RateLimit-Remaining`,
//! `RateLimit-Reset` (Unix seconds) and `RateLimit-Policy`
//! (`<limit>;w=300`): the login budget's on `createSession`, else 3000 per 5
//! minutes. [`FakeBluesky::fail_next`] and [`FakeBluesky::fail_next_on`] make
//! the next call fail;
//! [`FakeBluesky::requests`], [`FakeBluesky::records`],
//! [`FakeBluesky::logins`] and [`FakeBluesky::refreshes`] say what it
//! received.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

/// The DID of the fake's own account (the council's).
pub const OWN_DID: &str = "did:plc:concellofakelugo2345abcd";

/// The handle of the fake's own account.
pub const OWN_HANDLE: &str = "concello.bsky.social";

/// The app password the own account signs in with, unless set otherwise.
pub const APP_PASSWORD: &str = "abcd-efgh-ijkl-mnop";

/// The rate-limit window, in seconds (5 minutes).
const WINDOW_SECS: i64 = 300;

/// Sign-ins allowed per window unless set otherwise (Bluesky's 30).
const DEFAULT_LOGIN_LIMIT: u32 = 30;

/// Requests allowed per window (Bluesky's 3000 per IP).
const REQUEST_LIMIT: u32 = 3000;

/// The base32 alphabet of record keys (TIDs).
const TID_ALPHABET: &[u8; 32] = b"234567abcdefghijklmnopqrstuvwxyz";

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET` or `POST`.
    pub method: String,
    /// The XRPC method, e.g. `com.atproto.repo.createRecord` (the path
    /// without `/xrpc/`).
    pub nsid: String,
    /// The query parameters, decoded, in order (`reasons` repeated).
    pub query: Vec<(String, String)>,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// The JSON body, if any.
    pub body: Option<Value>,
}

impl Recorded {
    /// The first value of the query parameter `name`.
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the query parameter `name`, in order.
    pub fn query_values(&self, name: &str) -> Vec<&str> {
        self.query
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// A record the own account created through `createRecord`.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeRecord {
    /// Its `at://` uri.
    pub uri: String,
    /// Its cid.
    pub cid: String,
    /// The record as sent.
    pub record: Value,
}

#[derive(Debug, Clone)]
struct FakeAccount {
    did: String,
    handle: String,
}

#[derive(Debug, Clone)]
struct StoredPost {
    uri: String,
    cid: String,
    author: String,
}

#[derive(Debug, Clone)]
struct StoredNotification {
    seq: u64,
    uri: String,
    cid: String,
    author: String,
    reason: String,
    reason_subject: Option<String>,
    record: Value,
    indexed_at: DateTime<Utc>,
}

/// A failure to answer instead of the real thing.
#[derive(Debug, Clone)]
struct Failure {
    /// Only for this XRPC method; `None`: the next call, whatever it is.
    nsid: Option<String>,
    status: u16,
    named: Option<(String, String)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone)]
struct Issued {
    kind: TokenKind,
    did: String,
    seq: u64,
    expires_at: DateTime<Utc>,
    spent: bool,
}

#[derive(Debug, Clone, Copy, Default)]
struct Window {
    index: i64,
    used: u32,
}

impl Window {
    /// Counts one use in the current window; the uses so far and when the
    /// window ends.
    fn hit(&mut self, now: DateTime<Utc>) -> (u32, i64) {
        let index = now.timestamp().div_euclid(WINDOW_SECS);
        if self.index != index {
            *self = Window { index, used: 0 };
        }
        self.used = self.used.saturating_add(1);
        (self.used, (index + 1) * WINDOW_SECS)
    }
}

#[derive(Debug)]
struct Shared {
    password: String,
    accounts: Vec<FakeAccount>,
    posts: Vec<StoredPost>,
    notifications: Vec<StoredNotification>,
    records: Vec<FakeRecord>,
    tokens: HashMap<String, Issued>,
    token_seq: u64,
    record_seq: u64,
    access_lifetime: Duration,
    refresh_lifetime: Duration,
    access_expired_through: u64,
    refresh_expired_through: u64,
    login_limit: u32,
    login_window: Window,
    request_window: Window,
    logins: usize,
    refreshes: usize,
    requests: Vec<Recorded>,
    failures: VecDeque<Failure>,
    auth_factor: bool,
    taken_down: bool,
    last_indexed: DateTime<Utc>,
}

impl Shared {
    fn account_by_handle(&self, handle: &str) -> Option<&FakeAccount> {
        let handle = handle.trim().trim_start_matches('@');
        self.accounts
            .iter()
            .find(|a| a.handle.eq_ignore_ascii_case(handle))
    }

    fn account_by_did(&self, did: &str) -> Option<&FakeAccount> {
        self.accounts.iter().find(|a| a.did == did)
    }

    /// The account with this handle, created (with a DID derived from the
    /// handle) if unknown.
    fn account_for(&mut self, handle: &str) -> FakeAccount {
        if let Some(account) = self.account_by_handle(handle) {
            return account.clone();
        }
        let handle = handle.trim().trim_start_matches('@').to_ascii_lowercase();
        let digest = Sha256::digest(handle.as_bytes());
        let did = format!("did:plc:{}", base32(&digest)[..24].to_owned());
        let account = FakeAccount { did, handle };
        self.accounts.push(account.clone());
        account
    }

    /// A new post uri and cid in `did`'s repository.
    fn new_post_ref(&mut self, did: &str, text: &str) -> (String, String) {
        self.record_seq += 1;
        let rkey = tid(self.record_seq);
        let uri = format!("at://{did}/app.bsky.feed.post/{rkey}");
        let digest = Sha256::digest(format!("{uri}\0{text}").as_bytes());
        let cid = format!("bafyrei{}", &base32(&digest)[..52]);
        (uri, cid)
    }

    fn next_indexed_at(&mut self) -> DateTime<Utc> {
        let now = Utc::now().max(self.last_indexed + Duration::milliseconds(1));
        self.last_indexed = now;
        now
    }

    fn issue(&mut self, kind: TokenKind, did: &str) -> String {
        self.token_seq += 1;
        let seq = self.token_seq;
        let now = Utc::now();
        let (typ, scope, lifetime) = match kind {
            TokenKind::Access => ("at+jwt", "com.atproto.appPass", self.access_lifetime),
            TokenKind::Refresh => ("refresh+jwt", "com.atproto.refresh", self.refresh_lifetime),
        };
        let expires_at = now + lifetime;
        let header = json!({ "typ": typ, "alg": "ES256K" });
        let payload = json!({
            "scope": scope,
            "sub": did,
            "aud": "did:web:fake.bsky.invalid",
            "jti": format!("fake-{seq}"),
            "iat": now.timestamp(),
            "exp": expires_at.timestamp(),
        });
        let token = format!(
            "{}.{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(payload.to_string()),
            URL_SAFE_NO_PAD.encode(format!("fake-signature-{seq}")),
        );
        self.tokens.insert(
            token.clone(),
            Issued {
                kind,
                did: did.to_owned(),
                seq,
                expires_at,
                spent: false,
            },
        );
        token
    }

    fn session_json(&mut self) -> Value {
        let access = self.issue(TokenKind::Access, OWN_DID);
        let refresh = self.issue(TokenKind::Refresh, OWN_DID);
        json!({
            "did": OWN_DID,
            "handle": OWN_HANDLE,
            "accessJwt": access,
            "refreshJwt": refresh,
            "active": true,
            "didDoc": {"id": OWN_DID, "alsoKnownAs": [format!("at://{OWN_HANDLE}")]},
        })
    }

    /// Checks a bearer token of `kind`; the account's DID, or the error
    /// answer.
    fn authenticate(
        &self,
        authorization: Option<&str>,
        kind: TokenKind,
    ) -> Result<String, (StatusCode, Value)> {
        let Some(token) = authorization
            .and_then(|a| a.strip_prefix("Bearer "))
            .map(str::trim)
        else {
            return Err(xrpc_error(
                StatusCode::UNAUTHORIZED,
                "AuthMissing",
                "Authentication Required",
            ));
        };
        let Some(issued) = self.tokens.get(token) else {
            return Err(xrpc_error(
                StatusCode::BAD_REQUEST,
                "InvalidToken",
                "Token could not be verified",
            ));
        };
        if issued.kind != kind {
            return Err(xrpc_error(
                StatusCode::BAD_REQUEST,
                "InvalidToken",
                "Bad token scope",
            ));
        }
        let expired_through = match kind {
            TokenKind::Access => self.access_expired_through,
            TokenKind::Refresh => self.refresh_expired_through,
        };
        if issued.expires_at <= Utc::now() || issued.seq <= expired_through {
            return Err(xrpc_error(
                StatusCode::BAD_REQUEST,
                "ExpiredToken",
                "Token has expired",
            ));
        }
        if issued.spent {
            return Err(xrpc_error(
                StatusCode::BAD_REQUEST,
                "ExpiredToken",
                "Token has been revoked",
            ));
        }
        Ok(issued.did.clone())
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Lower-case base32 of `bytes` (the alphabet of CIDs), without padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::new();
    let (mut buffer, mut bits) = (0u32, 0u32);
    for byte in bytes {
        buffer = (buffer << 8) | u32::from(*byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    // Long enough for any prefix taken here.
    while out.len() < 64 {
        out.push('a');
    }
    out
}

/// A record key shaped like a TID: 13 sortable base32 characters.
fn tid(seq: u64) -> String {
    let micros = 1_700_000_000_000_000u64 + seq;
    let value = micros << 10;
    (0..13)
        .rev()
        .map(|i| char::from(TID_ALPHABET[((value >> (5 * i)) & 31) as usize]))
        .collect()
}

/// The DID of an `at://<did>/…` uri.
fn did_of(uri: &str) -> Option<&str> {
    uri.strip_prefix("at://")?.split('/').next()
}

/// A running fake PDS. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeBluesky {
    base_url: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeBluesky {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeBluesky {
    /// Starts a fake PDS on a free local port, with its own account
    /// ([`OWN_DID`], [`OWN_HANDLE`], [`APP_PASSWORD`]).
    ///
    /// # Panics
    ///
    /// If no local port can be bound (the tests cannot run then).
    pub async fn start() -> FakeBluesky {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("the fake Bluesky server cannot bind a local port: {e}"),
        };
        let address = match listener.local_addr() {
            Ok(address) => address,
            Err(e) => panic!("the fake Bluesky server has no local address: {e}"),
        };
        let base_url = format!("http://{address}");
        let shared = Arc::new(Mutex::new(Shared {
            password: APP_PASSWORD.to_owned(),
            accounts: vec![FakeAccount {
                did: OWN_DID.to_owned(),
                handle: OWN_HANDLE.to_owned(),
            }],
            posts: Vec::new(),
            notifications: Vec::new(),
            records: Vec::new(),
            tokens: HashMap::new(),
            token_seq: 0,
            record_seq: 0,
            access_lifetime: Duration::hours(2),
            refresh_lifetime: Duration::days(90),
            access_expired_through: 0,
            refresh_expired_through: 0,
            login_limit: DEFAULT_LOGIN_LIMIT,
            login_window: Window::default(),
            request_window: Window::default(),
            logins: 0,
            refreshes: 0,
            requests: Vec::new(),
            failures: VecDeque::new(),
            auth_factor: false,
            taken_down: false,
            last_indexed: DateTime::<Utc>::MIN_UTC,
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the fake Bluesky server stopped");
            }
        });
        FakeBluesky {
            base_url,
            shared,
            server,
        }
    }

    /// Where it listens: `http://127.0.0.1:<port>` (give it to
    /// [`crate::bluesky::BlueskyClient::new`]).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Sets the own account's app password.
    pub fn set_app_password(&self, password: &str) {
        lock(&self.shared).password = password.to_owned();
    }

    /// How many sign-ins are allowed per 5-minute window (the window starts
    /// again).
    pub fn set_login_limit(&self, limit: u32) {
        let mut shared = lock(&self.shared);
        shared.login_limit = limit;
        shared.login_window = Window::default();
    }

    /// How long the tokens issued from now on last (their `exp`).
    pub fn set_token_lifetimes(&self, access: Duration, refresh: Duration) {
        let mut shared = lock(&self.shared);
        shared.access_lifetime = access;
        shared.refresh_lifetime = refresh;
    }

    /// Every access token issued so far is refused as expired from now on
    /// (as if their time had passed); refresh tokens still work.
    pub fn expire_access_tokens(&self) {
        let mut shared = lock(&self.shared);
        shared.access_expired_through = shared.token_seq;
    }

    /// Every refresh token issued so far is refused as expired from now on.
    pub fn expire_refresh_tokens(&self) {
        let mut shared = lock(&self.shared);
        shared.refresh_expired_through = shared.token_seq;
    }

    /// Whether sign-ins are answered `AuthFactorTokenRequired` (as when the
    /// account's main password, not an app password, is given with e-mail
    /// two-factor on).
    pub fn require_auth_factor(&self, required: bool) {
        lock(&self.shared).auth_factor = required;
    }

    /// Whether the account is taken down (sign-ins answered
    /// `AccountTakedown`).
    pub fn take_down(&self, taken_down: bool) {
        lock(&self.shared).taken_down = taken_down;
    }

    /// Makes the next call (whatever it is) answer `status` with the PDS's
    /// body for it: 400 `InvalidRequest`, 401 `AuthenticationRequired`, 403
    /// `Forbidden`, 429 `RateLimitExceeded` (the headers saying none
    /// remain), 500 `InternalServerError`, 502–504 a proxy's HTML page.
    /// Several queue up.
    pub fn fail_next(&self, status: u16) {
        lock(&self.shared).failures.push_back(Failure {
            nsid: None,
            status,
            named: None,
        });
    }

    /// Makes the next call of the XRPC method `nsid` (other calls are
    /// answered normally) answer `status` with
    /// `{"error": error, "message": message}`. Several queue up.
    pub fn fail_next_on(&self, nsid: &str, status: u16, error: &str, message: &str) {
        lock(&self.shared).failures.push_back(Failure {
            nsid: Some(nsid.to_owned()),
            status,
            named: Some((error.to_owned(), message.to_owned())),
        });
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.clone()
    }

    /// The requests received so far for the XRPC method `nsid`.
    pub fn requests_to(&self, nsid: &str) -> Vec<Recorded> {
        lock(&self.shared)
            .requests
            .iter()
            .filter(|r| r.nsid == nsid)
            .cloned()
            .collect()
    }

    /// The records the own account created, in order.
    pub fn records(&self) -> Vec<FakeRecord> {
        lock(&self.shared).records.clone()
    }

    /// How many `createSession` calls were received (refused ones included).
    pub fn logins(&self) -> usize {
        lock(&self.shared).logins
    }

    /// How many `refreshSession` calls were received (refused ones
    /// included).
    pub fn refreshes(&self) -> usize {
        lock(&self.shared).refreshes
    }

    /// Makes `handle` a known account (resolvable) and returns its DID.
    pub fn add_account(&self, handle: &str) -> String {
        lock(&self.shared).account_for(handle).did
    }

    /// Stores a post by the own account (as if written in the app), which
    /// citizens can answer; returns its uri and cid.
    pub fn push_own_post(&self, text: &str) -> (String, String) {
        let mut shared = lock(&self.shared);
        let (uri, cid) = shared.new_post_ref(OWN_DID, text);
        shared.posts.push(StoredPost {
            uri: uri.clone(),
            cid: cid.clone(),
            author: OWN_DID.to_owned(),
        });
        (uri, cid)
    }

    /// Queues a post by `author_handle` (an account created on first use)
    /// saying `text`, answering `reply_to` = (parent uri, parent cid, (root
    /// uri, root cid)) if given, and the notification the own account gets
    /// for it: `reply` when it answers a thread of the own account (its
    /// parent or root is the own account's), else `mention`. Returns the
    /// post's uri and cid.
    pub fn push_mention(
        &self,
        author_handle: &str,
        text: &str,
        reply_to: Option<(&str, &str, (&str, &str))>,
    ) -> (String, String) {
        let mut shared = lock(&self.shared);
        let author = shared.account_for(author_handle);
        let (uri, cid) = shared.new_post_ref(&author.did, text);
        let mut record = json!({
            "$type": "app.bsky.feed.post",
            "text": text,
            "createdAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "langs": ["gl"],
        });
        let mut reason = "mention";
        let mut reason_subject = None;
        if let Some((parent_uri, parent_cid, (root_uri, root_cid))) = reply_to {
            record["reply"] = json!({
                "root": {"uri": root_uri, "cid": root_cid},
                "parent": {"uri": parent_uri, "cid": parent_cid},
            });
            if did_of(parent_uri) == Some(OWN_DID) || did_of(root_uri) == Some(OWN_DID) {
                reason = "reply";
                reason_subject = Some(parent_uri.to_owned());
            }
        }
        shared.posts.push(StoredPost {
            uri: uri.clone(),
            cid: cid.clone(),
            author: author.did.clone(),
        });
        let indexed_at = shared.next_indexed_at();
        let seq = shared.notifications.len() as u64 + 1;
        shared.notifications.push(StoredNotification {
            seq,
            uri: uri.clone(),
            cid: cid.clone(),
            author: author.did,
            reason: reason.to_owned(),
            reason_subject,
            record,
            indexed_at,
        });
        (uri, cid)
    }

    /// Queues a notification of another reason (`like`, `repost`,
    /// `follow`) from `author_handle`, about the own account's latest post;
    /// returns its uri.
    pub fn push_notification(&self, reason: &str, author_handle: &str) -> String {
        let mut shared = lock(&self.shared);
        let author = shared.account_for(author_handle);
        let subject = shared
            .posts
            .iter()
            .rev()
            .find(|p| p.author == OWN_DID)
            .map(|p| (p.uri.clone(), p.cid.clone()));
        let collection = match reason {
            "like" => "app.bsky.feed.like",
            "repost" => "app.bsky.feed.repost",
            _ => "app.bsky.graph.follow",
        };
        shared.record_seq += 1;
        let uri = format!(
            "at://{}/{collection}/{}",
            author.did,
            tid(shared.record_seq)
        );
        let record = match (&subject, collection) {
            (_, "app.bsky.graph.follow") | (None, _) => json!({
                "$type": collection,
                "subject": OWN_DID,
                "createdAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            }),
            (Some((s_uri, s_cid)), _) => json!({
                "$type": collection,
                "subject": {"uri": s_uri, "cid": s_cid},
                "createdAt": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            }),
        };
        let indexed_at = shared.next_indexed_at();
        let seq = shared.notifications.len() as u64 + 1;
        shared.notifications.push(StoredNotification {
            seq,
            uri: uri.clone(),
            cid: format!("bafyrei{}", &base32(uri.as_bytes())[..52]),
            author: author.did,
            reason: reason.to_owned(),
            reason_subject: subject.map(|(u, _)| u),
            record,
            indexed_at,
        });
        uri
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

fn xrpc_error(status: StatusCode, error: &str, message: &str) -> (StatusCode, Value) {
    (status, json!({ "error": error, "message": message }))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// The answer for an injected failure.
fn failure_response(status: u16, named: Option<(String, String)>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if let Some((error, message)) = named {
        let (status, body) = xrpc_error(status, &error, &message);
        return json_response(status, &body);
    }
    let (error, message) = match status.as_u16() {
        400 => ("InvalidRequest", "Invalid request"),
        401 => ("AuthenticationRequired", "Authentication Required"),
        403 => ("Forbidden", "Forbidden"),
        429 => ("RateLimitExceeded", "Rate Limit Exceeded"),
        502..=504 => {
            let reason = status.canonical_reason().unwrap_or("Bad Gateway");
            let page = format!(
                "<html><head><title>{code} {reason}</title></head><body><h1>{code} {reason}</h1></body></html>",
                code = status.as_u16()
            );
            return (status, [(header::CONTENT_TYPE, "text/html")], page).into_response();
        }
        _ => ("InternalServerError", "Internal Server Error"),
    };
    let (status, body) = xrpc_error(status, error, message);
    json_response(status, &body)
}

fn with_rate_headers(mut response: Response, limit: u32, remaining: u32, reset: i64) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("ratelimit-limit", limit.to_string()),
        ("ratelimit-remaining", remaining.to_string()),
        ("ratelimit-reset", reset.to_string()),
        ("ratelimit-policy", format!("{limit};w={WINDOW_SECS}")),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut shared = lock(&shared);
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let query = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let params: Option<Value> = serde_json::from_slice(&body).ok();
    let nsid = uri
        .path()
        .strip_prefix("/xrpc/")
        .unwrap_or(uri.path())
        .to_owned();
    shared.requests.push(Recorded {
        method: method.to_string(),
        nsid: nsid.clone(),
        query: query.clone(),
        authorization: authorization.clone(),
        body: params.clone(),
    });

    let now = Utc::now();
    if nsid == "com.atproto.server.refreshSession" {
        shared.refreshes += 1;
    }
    let login = nsid == "com.atproto.server.createSession";
    let (limit, used, reset) = if login {
        shared.logins += 1;
        let (used, reset) = shared.login_window.hit(now);
        (shared.login_limit, used, reset)
    } else {
        let (used, reset) = shared.request_window.hit(now);
        (REQUEST_LIMIT, used, reset)
    };
    let remaining = limit.saturating_sub(used);

    let failure = shared
        .failures
        .iter()
        .position(|f| f.nsid.as_deref().is_none_or(|n| n == nsid))
        .and_then(|i| shared.failures.remove(i));
    if let Some(Failure { status, named, .. }) = failure {
        let remaining = if status == 429 { 0 } else { remaining };
        return with_rate_headers(failure_response(status, named), limit, remaining, reset);
    }
    if used > limit {
        let (status, body) = xrpc_error(
            StatusCode::TOO_MANY_REQUESTS,
            "RateLimitExceeded",
            "Rate Limit Exceeded",
        );
        return with_rate_headers(json_response(status, &body), limit, 0, reset);
    }

    let auth = authorization.as_deref();
    let (status, body) = match (&method, nsid.as_str()) {
        (&Method::POST, "com.atproto.server.createSession") => {
            create_session(&mut shared, params.as_ref())
        }
        (&Method::POST, "com.atproto.server.refreshSession") => {
            match shared.authenticate(auth, TokenKind::Refresh) {
                Err(error) => error,
                Ok(_) => {
                    if let Some(token) = auth.and_then(|a| a.strip_prefix("Bearer "))
                        && let Some(issued) = shared.tokens.get_mut(token.trim())
                    {
                        issued.spent = true;
                    }
                    (StatusCode::OK, shared.session_json())
                }
            }
        }
        (&Method::GET, "app.bsky.notification.listNotifications") => {
            match shared.authenticate(auth, TokenKind::Access) {
                Err(error) => error,
                Ok(_) => list_notifications(&shared, &query),
            }
        }
        (&Method::POST, "com.atproto.repo.createRecord") => {
            match shared.authenticate(auth, TokenKind::Access) {
                Err(error) => error,
                Ok(did) => create_record(&mut shared, &did, params.as_ref()),
            }
        }
        (&Method::GET, "com.atproto.identity.resolveHandle") => {
            let handle = query
                .iter()
                .find(|(k, _)| k == "handle")
                .map(|(_, v)| v.as_str())
                .unwrap_or_default();
            match shared.account_by_handle(handle) {
                Some(account) => (StatusCode::OK, json!({ "did": account.did })),
                None => xrpc_error(
                    StatusCode::BAD_REQUEST,
                    "InvalidRequest",
                    "Unable to resolve handle",
                ),
            }
        }
        _ => xrpc_error(
            StatusCode::NOT_IMPLEMENTED,
            "MethodNotImplemented",
            "Method Not Implemented",
        ),
    };
    with_rate_headers(json_response(status, &body), limit, remaining, reset)
}

/// `com.atproto.server.createSession`.
fn create_session(shared: &mut Shared, params: Option<&Value>) -> (StatusCode, Value) {
    let text = |name: &str| {
        params
            .and_then(|p| p.get(name))
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    let identifier = text("identifier").trim().trim_start_matches('@');
    if identifier.is_empty() || text("password").is_empty() {
        return xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Input must have the properties \"identifier\" and \"password\"",
        );
    }
    let own =
        identifier.eq_ignore_ascii_case(OWN_DID) || identifier.eq_ignore_ascii_case(OWN_HANDLE);
    if !own || text("password") != shared.password {
        return xrpc_error(
            StatusCode::UNAUTHORIZED,
            "AuthenticationRequired",
            "Invalid identifier or password",
        );
    }
    if shared.taken_down {
        return xrpc_error(
            StatusCode::UNAUTHORIZED,
            "AccountTakedown",
            "Account has been taken down",
        );
    }
    if shared.auth_factor && text("authFactorToken").is_empty() {
        return xrpc_error(
            StatusCode::UNAUTHORIZED,
            "AuthFactorTokenRequired",
            "A sign in code has been sent to your email address",
        );
    }
    (StatusCode::OK, shared.session_json())
}

fn notification_json(shared: &Shared, n: &StoredNotification) -> Value {
    let author = shared.account_by_did(&n.author);
    json!({
        "uri": n.uri,
        "cid": n.cid,
        "author": {
            "did": n.author,
            "handle": author.map_or("handle.invalid", |a| a.handle.as_str()),
            "displayName": author.map(|a| a.handle.split('.').next().unwrap_or_default().to_owned()),
            "associated": {"chat": {"allowIncoming": "following"}},
            "labels": [],
            "createdAt": "2024-01-01T00:00:00.000Z",
        },
        "reason": n.reason,
        "reasonSubject": n.reason_subject,
        "record": n.record,
        "isRead": false,
        "indexedAt": n.indexed_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "labels": [],
    })
}

/// `app.bsky.notification.listNotifications`: newest first, `limit` 1–100
/// (default 50), filtered by `reasons`, older than `cursor` (the last
/// item's sequence number, opaque to callers).
fn list_notifications(shared: &Shared, query: &[(String, String)]) -> (StatusCode, Value) {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let limit = match param("limit").map(str::parse::<usize>) {
        None => 50,
        Some(Ok(limit)) if (1..=100).contains(&limit) => limit,
        Some(_) => {
            return xrpc_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "limit must be an integer between 1 and 100",
            );
        }
    };
    let reasons: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "reasons")
        .map(|(_, v)| v.as_str())
        .collect();
    let cursor = match param("cursor").map(str::parse::<u64>) {
        None => None,
        Some(Ok(cursor)) => Some(cursor),
        Some(Err(_)) => {
            return xrpc_error(
                StatusCode::BAD_REQUEST,
                "InvalidRequest",
                "Malformed cursor",
            );
        }
    };
    let mut matching: Vec<&StoredNotification> = shared
        .notifications
        .iter()
        .filter(|n| reasons.is_empty() || reasons.contains(&n.reason.as_str()))
        .filter(|n| cursor.is_none_or(|c| n.seq < c))
        .collect();
    matching.sort_by_key(|n| std::cmp::Reverse(n.seq));
    matching.truncate(limit);
    let mut body = json!({
        "notifications": matching.iter().map(|n| notification_json(shared, n)).collect::<Vec<_>>(),
        "seenAt": "2024-01-01T00:00:00.000Z",
        "priority": false,
    });
    if let Some(last) = matching.last() {
        body["cursor"] = Value::String(last.seq.to_string());
    }
    (StatusCode::OK, body)
}

/// The fake's own grapheme count: characters less combining marks,
/// variation selectors, the joiner and skin tones.
fn graphemes(text: &str) -> usize {
    text.chars()
        .enumerate()
        .filter(|&(i, c)| {
            i == 0
                || !matches!(c, '\u{0300}'..='\u{036F}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}' | '\u{1F3FB}'..='\u{1F3FF}')
        })
        .count()
}

fn invalid(message: impl Into<String>) -> (StatusCode, Value) {
    xrpc_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequest",
        &format!("Invalid app.bsky.feed.post record: {}", message.into()),
    )
}

/// Checks a post record as the PDS's lexicon validation does (the parts
/// the connector writes).
fn validate_post(record: &Value) -> Result<(), (StatusCode, Value)> {
    if record.get("$type").and_then(Value::as_str) != Some("app.bsky.feed.post") {
        return Err(invalid("Record/$type must be app.bsky.feed.post"));
    }
    let Some(text) = record.get("text").and_then(Value::as_str) else {
        return Err(invalid("Record must have the property \"text\""));
    };
    if graphemes(text) > 300 {
        return Err(invalid("Record/text must not be longer than 300 graphemes"));
    }
    if text.len() > 3000 {
        return Err(invalid(
            "Record/text must not be longer than 3000 characters",
        ));
    }
    let created_at = record.get("createdAt").and_then(Value::as_str);
    if created_at.is_none_or(|c| DateTime::parse_from_rfc3339(c).is_err()) {
        return Err(invalid(
            "Record/createdAt must be an valid atproto datetime",
        ));
    }
    if let Some(langs) = record.get("langs") {
        let ok = langs.as_array().is_some_and(|l| {
            l.len() <= 3 && l.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty()))
        });
        if !ok {
            return Err(invalid("Record/langs must be at most 3 language tags"));
        }
    }
    if let Some(reply) = record.get("reply") {
        for part in ["root", "parent"] {
            let Some(reference) = reply.get(part) else {
                return Err(invalid(format!(
                    "Record/reply must have the property \"{part}\""
                )));
            };
            let uri_ok = reference
                .get("uri")
                .and_then(Value::as_str)
                .is_some_and(|u| u.starts_with("at://"));
            let cid_ok = reference
                .get("cid")
                .and_then(Value::as_str)
                .is_some_and(|c| !c.is_empty());
            if !uri_ok || !cid_ok {
                return Err(invalid(format!(
                    "Record/reply/{part} must have the properties \"uri\" (at-uri) and \"cid\""
                )));
            }
        }
    }
    if let Some(facets) = record.get("facets") {
        let Some(facets) = facets.as_array() else {
            return Err(invalid("Record/facets must be an array"));
        };
        for (i, facet) in facets.iter().enumerate() {
            let index = facet.get("index");
            let start = index
                .and_then(|x| x.get("byteStart"))
                .and_then(Value::as_u64);
            let end = index.and_then(|x| x.get("byteEnd")).and_then(Value::as_u64);
            let (Some(start), Some(end)) = (start, end) else {
                return Err(invalid(format!(
                    "Record/facets/{i}/index must have byteStart and byteEnd"
                )));
            };
            let (start, end) = (start as usize, end as usize);
            if start >= end
                || end > text.len()
                || !text.is_char_boundary(start)
                || !text.is_char_boundary(end)
            {
                return Err(invalid(format!(
                    "Record/facets/{i}/index {start}..{end} is not a byte range of the text ({} bytes)",
                    text.len()
                )));
            }
            let features = facet.get("features").and_then(Value::as_array);
            if features.is_none_or(Vec::is_empty) {
                return Err(invalid(format!(
                    "Record/facets/{i}/features must not be empty"
                )));
            }
            for feature in features.into_iter().flatten() {
                let ok = match feature.get("$type").and_then(Value::as_str) {
                    Some("app.bsky.richtext.facet#link") => feature
                        .get("uri")
                        .and_then(Value::as_str)
                        .is_some_and(|u| !u.is_empty()),
                    Some("app.bsky.richtext.facet#mention") => feature
                        .get("did")
                        .and_then(Value::as_str)
                        .is_some_and(|d| d.starts_with("did:")),
                    Some("app.bsky.richtext.facet#tag") => feature
                        .get("tag")
                        .and_then(Value::as_str)
                        .is_some_and(|t| !t.is_empty()),
                    _ => false,
                };
                if !ok {
                    return Err(invalid(format!(
                        "Record/facets/{i}/features has an invalid feature"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// `com.atproto.repo.createRecord` of a post by the authenticated account.
fn create_record(shared: &mut Shared, did: &str, params: Option<&Value>) -> (StatusCode, Value) {
    let Some(params) = params else {
        return xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Request body must be JSON",
        );
    };
    let repo = params
        .get("repo")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let own = shared.account_by_did(did).map(|a| a.handle.clone());
    if repo != did && own.as_deref() != Some(repo) {
        return xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "Input/repo does not match the authenticated account",
        );
    }
    if params.get("collection").and_then(Value::as_str) != Some("app.bsky.feed.post") {
        return xrpc_error(
            StatusCode::BAD_REQUEST,
            "InvalidRequest",
            "This fake only creates app.bsky.feed.post records",
        );
    }
    let record = params.get("record").cloned().unwrap_or(Value::Null);
    if let Err(error) = validate_post(&record) {
        return error;
    }
    let text = record
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let (uri, cid) = shared.new_post_ref(did, &text);
    shared.posts.push(StoredPost {
        uri: uri.clone(),
        cid: cid.clone(),
        author: did.to_owned(),
    });
    shared.records.push(FakeRecord {
        uri: uri.clone(),
        cid: cid.clone(),
        record,
    });
    (
        StatusCode::OK,
        json!({
            "uri": uri,
            "cid": cid,
            "commit": {"cid": format!("bafyreicommit{}", shared.record_seq), "rev": tid(shared.record_seq)},
            "validationStatus": "valid",
        }),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::bluesky::{self, BlueskyClient, PostOptions, SessionKeeper, StrongRef, reply_refs};
    use crate::connector::{Credentials, Post, SendError};
    use secrecy::SecretString;
    use ventanilla_social_domain::inbound::MessageKind;

    const ACCOUNT: &str = "account-1";

    fn creds(password: &str) -> Credentials {
        Credentials {
            external_id: OWN_HANDLE.into(),
            access_token: SecretString::from(password.to_owned()),
            signing_secret: SecretString::from(String::new()),
            verify_token: SecretString::from(String::new()),
            human_agent: false,
        }
    }

    async fn setup() -> (FakeBluesky, Arc<SessionKeeper>) {
        let fake = FakeBluesky::start().await;
        let client = BlueskyClient::new(fake.base_url(), reqwest::Client::new());
        (fake, Arc::new(SessionKeeper::new(client)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn twenty_concurrent_callers_sign_in_once() {
        let (fake, keeper) = setup().await;
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..20 {
            let keeper = Arc::clone(&keeper);
            tasks.spawn(async move { keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await });
        }
        let mut tokens = Vec::new();
        while let Some(result) = tasks.join_next().await {
            let session = result.unwrap().unwrap();
            assert_eq!(session.did, OWN_DID);
            assert_eq!(session.handle, OWN_HANDLE);
            tokens.push(session);
        }
        assert_eq!(tokens.len(), 20);
        assert!(tokens.iter().all(|s| s.same_tokens(&tokens[0])));
        assert_eq!(fake.logins(), 1);
        assert_eq!(fake.refreshes(), 0);
        // The sign-in carried the identifier and the app password.
        let login = &fake.requests_to("com.atproto.server.createSession")[0];
        assert_eq!(
            login.body,
            Some(json!({"identifier": OWN_HANDLE, "password": APP_PASSWORD}))
        );
        // The expiry came from the JWT.
        assert!(tokens[0].access_expires_at > Utc::now() + Duration::minutes(110));
        assert!(tokens[0].refresh_expires_at.unwrap() > Utc::now() + Duration::days(89));
        // Another account signs in on its own.
        keeper
            .session("account-2", &creds(APP_PASSWORD))
            .await
            .unwrap();
        assert_eq!(fake.logins(), 2);
    }

    #[tokio::test]
    async fn an_expiring_access_token_is_refreshed_not_signed_in_again() {
        let (fake, keeper) = setup().await;
        // Within the 5-minute margin from the start.
        fake.set_token_lifetimes(Duration::minutes(3), Duration::days(1));
        let first = keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        let second = keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        let third = keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        assert!(!second.same_tokens(&first));
        assert!(!third.same_tokens(&second));
        assert_eq!(fake.logins(), 1);
        assert_eq!(fake.refreshes(), 2);
        let refresh = &fake.requests_to("com.atproto.server.refreshSession")[0];
        assert_eq!(
            refresh.authorization.as_deref(),
            Some(
                format!(
                    "Bearer {}",
                    secrecy::ExposeSecret::expose_secret(&first.refresh_jwt)
                )
                .as_str()
            )
        );
        // The keeper has the latest, for the service to persist.
        assert!(keeper.current(ACCOUNT).await.unwrap().same_tokens(&third));

        // The refresh fails for a passing reason: the old token, not yet
        // expired, is used meanwhile (no sign-in).
        fake.fail_next_on(
            "com.atproto.server.refreshSession",
            500,
            "InternalServerError",
            "Internal Server Error",
        );
        let fourth = keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        assert!(fourth.same_tokens(&third));
        assert_eq!(fake.logins(), 1);
        assert_eq!(fake.refreshes(), 3);
    }

    #[tokio::test]
    async fn an_expired_refresh_token_signs_in_once_more() {
        let (fake, keeper) = setup().await;
        fake.set_token_lifetimes(Duration::minutes(3), Duration::days(1));
        keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        fake.expire_refresh_tokens();
        keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        assert_eq!(fake.refreshes(), 1, "the refresh was tried first");
        assert_eq!(fake.logins(), 2, "then one sign-in");
        // The new refresh token works again.
        keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        assert_eq!(fake.logins(), 2);
        assert_eq!(fake.refreshes(), 2);
    }

    #[tokio::test]
    async fn a_stored_session_is_reused_after_a_restart() {
        let (fake, keeper) = setup().await;
        let session = keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        let stored = serde_json::to_string(&session).unwrap();
        let restarted =
            SessionKeeper::new(BlueskyClient::new(fake.base_url(), reqwest::Client::new()));
        restarted
            .restore(ACCOUNT, serde_json::from_str(&stored).unwrap())
            .await;
        let again = restarted
            .session(ACCOUNT, &creds(APP_PASSWORD))
            .await
            .unwrap();
        assert!(again.same_tokens(&session));
        assert_eq!(fake.logins(), 1);
    }

    #[tokio::test]
    async fn a_call_refused_as_expired_renews_once_and_is_tried_once_more() {
        let (fake, keeper) = setup().await;
        let c = creds(APP_PASSWORD);
        let client = keeper.client().clone();
        keeper.session(ACCOUNT, &c).await.unwrap();
        fake.expire_access_tokens();
        let mentions = keeper
            .call(ACCOUNT, &c, async |s| client.mentions(s, None).await)
            .await
            .unwrap();
        assert!(mentions.messages.is_empty());
        assert_eq!(fake.logins(), 1);
        assert_eq!(fake.refreshes(), 1);
        let polls = fake.requests_to("app.bsky.notification.listNotifications");
        assert_eq!(polls.len(), 2);
        assert_ne!(polls[0].authorization, polls[1].authorization);

        // Refused again after the renewal: given up after one retry.
        let list = "app.bsky.notification.listNotifications";
        fake.fail_next_on(list, 400, "ExpiredToken", "Token has expired");
        fake.fail_next_on(list, 400, "ExpiredToken", "Token has expired");
        let error = keeper
            .call(ACCOUNT, &c, async |s| client.mentions(s, None).await)
            .await
            .unwrap_err();
        assert_eq!(error, SendError::TokenExpired { network: "bluesky" });
        assert_eq!(
            fake.requests_to("app.bsky.notification.listNotifications")
                .len(),
            4
        );
        assert_eq!(fake.refreshes(), 2);
        assert_eq!(fake.logins(), 1);
    }

    #[tokio::test]
    async fn polling_walks_pages_down_to_the_last_seen_and_reads_nothing_twice() {
        let (fake, keeper) = setup().await;
        let session = keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        let client = keeper.client();

        let nothing = client.mentions(&session, None).await.unwrap();
        assert_eq!(nothing, bluesky::Mentions::default());

        let first_batch: Vec<String> = (0..3)
            .map(|i| {
                fake.push_mention(
                    "vecina.bsky.social",
                    &format!("@concello.bsky.social {i}"),
                    None,
                )
                .0
            })
            .collect();
        let first = client.mentions(&session, None).await.unwrap();
        let uris: Vec<&str> = first
            .messages
            .iter()
            .map(|m| m.platform_id.as_str())
            .collect();
        assert_eq!(
            uris,
            first_batch.iter().map(String::as_str).collect::<Vec<_>>(),
            "oldest first"
        );
        assert_eq!(first.newest_uri.as_deref(), Some(first_batch[2].as_str()));
        assert!(first.refs.contains_key(&first_batch[0]));
        let poll = fake
            .requests_to("app.bsky.notification.listNotifications")
            .pop()
            .unwrap();
        assert_eq!(poll.query_param("limit"), Some("50"));
        assert_eq!(
            poll.query_values("reasons"),
            vec!["mention", "reply", "quote"]
        );
        assert_eq!(poll.query_param("cursor"), None);
        assert_eq!(
            poll.authorization.as_deref(),
            Some(
                format!(
                    "Bearer {}",
                    secrecy::ExposeSecret::expose_secret(&session.access_jwt)
                )
                .as_str()
            )
        );

        // 55 new ones (and a like, not asked for): two pages.
        fake.push_notification("like", "outra.bsky.social");
        let second_batch: Vec<String> = (0..55)
            .map(|i| {
                fake.push_mention(
                    &format!("v{i}.bsky.social"),
                    "ola @concello.bsky.social",
                    None,
                )
                .0
            })
            .collect();
        let before = fake
            .requests_to("app.bsky.notification.listNotifications")
            .len();
        let second = client
            .mentions(&session, first.newest_uri.as_deref())
            .await
            .unwrap();
        let polls = fake.requests_to("app.bsky.notification.listNotifications");
        assert_eq!(polls.len() - before, 2, "two pages");
        assert!(polls[before + 1].query_param("cursor").is_some());
        let uris: Vec<&str> = second
            .messages
            .iter()
            .map(|m| m.platform_id.as_str())
            .collect();
        assert_eq!(
            uris,
            second_batch.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert!(!second.truncated);
        assert_eq!(
            second.newest_uri.as_deref(),
            Some(second_batch[54].as_str())
        );
        assert_eq!(
            second.messages[0].author.handle.as_deref(),
            Some("@v0.bsky.social")
        );

        // Nothing new: one page, nothing again.
        let third = client
            .mentions(&session, second.newest_uri.as_deref())
            .await
            .unwrap();
        assert!(third.messages.is_empty());
        assert_eq!(third.newest_uri, second.newest_uri);
        assert_eq!(
            fake.requests_to("app.bsky.notification.listNotifications")
                .len(),
            polls.len() + 1
        );
    }

    #[tokio::test]
    async fn a_reply_to_a_reply_keeps_the_threads_root() {
        let (fake, keeper) = setup().await;
        let session = keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        let client = keeper.client();
        let options = PostOptions {
            langs: vec!["gl".into()],
            ..PostOptions::default()
        };

        // The council posted; a citizen answers it; we answer the citizen.
        let (root_uri, root_cid) = fake.push_own_post("Corte de auga mañá na rúa Nova");
        let (citizen_uri, citizen_cid) = fake.push_mention(
            "vecina.bsky.social",
            "A que hora?",
            Some((
                root_uri.as_str(),
                root_cid.as_str(),
                (root_uri.as_str(), root_cid.as_str()),
            )),
        );
        let polled = client.mentions(&session, None).await.unwrap();
        let message = &polled.messages[0];
        assert_eq!(message.kind, MessageKind::Reply);
        assert_eq!(message.thread, root_uri);
        assert_eq!(message.in_reply_to.as_deref(), Some(root_uri.as_str()));
        let refs = polled.refs[&citizen_uri].reply_refs();
        assert_eq!(refs.parent, StrongRef::new(&citizen_uri, &citizen_cid));
        assert_eq!(refs.root, StrongRef::new(&root_uri, &root_cid));
        let sent = client
            .reply(&session, "De 9 a 13 h.", &refs.parent, &refs.root, &options)
            .await
            .unwrap();
        let record = fake.records().pop().unwrap();
        assert_eq!(sent.platform_id, record.uri);
        assert!(
            record
                .uri
                .starts_with(&format!("at://{OWN_DID}/app.bsky.feed.post/"))
        );
        assert_eq!(
            record.record["reply"]["root"],
            json!({"uri": root_uri, "cid": root_cid})
        );
        assert_eq!(
            record.record["reply"]["parent"],
            json!({"uri": citizen_uri, "cid": citizen_cid})
        );
        assert_eq!(record.record["langs"], json!(["gl"]));
        assert!(record.record["createdAt"].as_str().unwrap().ends_with('Z'));
        let create = fake
            .requests_to("com.atproto.repo.createRecord")
            .pop()
            .unwrap();
        assert_eq!(create.body.as_ref().unwrap()["repo"], OWN_DID);
        assert_eq!(
            create.body.as_ref().unwrap()["collection"],
            "app.bsky.feed.post"
        );

        // A top-level mention: it is its own thread's root.
        let (mention_uri, mention_cid) =
            fake.push_mention("outra.bsky.social", "@concello.bsky.social ola", None);
        let polled = client
            .mentions(&session, polled.newest_uri.as_deref())
            .await
            .unwrap();
        assert_eq!(polled.messages.len(), 1);
        assert_eq!(polled.messages[0].kind, MessageKind::Mention);
        let refs = polled.refs[&mention_uri].reply_refs();
        assert_eq!(refs.root, StrongRef::new(&mention_uri, &mention_cid));
        client
            .reply(&session, "Ola!", &refs.parent, &refs.root, &options)
            .await
            .unwrap();
        let record = fake.records().pop().unwrap();
        assert_eq!(record.record["reply"]["root"]["uri"], mention_uri);
        assert_eq!(record.record["reply"]["parent"]["uri"], mention_uri);

        // Same rule from the parts alone.
        let nested = reply_refs(
            &citizen_uri,
            &citizen_cid,
            Some((root_uri.as_str(), root_cid.as_str())),
        );
        assert_eq!(nested.root.uri, root_uri);
    }

    #[tokio::test]
    async fn facets_reach_the_record_at_byte_offsets() {
        let (fake, keeper) = setup().await;
        let session = keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        let client = keeper.client();
        let vecina = fake.add_account("vecina.bsky.social");
        let (uri, cid) = fake.push_mention("vecina.bsky.social", "ola", None);
        let parent = StrongRef::new(&uri, &cid);
        let text = "¿Qué tal? @vecina.bsky.social mira https://lugo.gal";
        client
            .reply(&session, text, &parent, &parent, &PostOptions::default())
            .await
            .unwrap();
        let record = fake.records().pop().unwrap().record;
        assert_eq!(record["text"], text);
        assert_eq!(
            record["facets"],
            json!([
                {"index": {"byteStart": 12, "byteEnd": 31},
                 "features": [{"$type": "app.bsky.richtext.facet#mention", "did": vecina}]},
                {"index": {"byteStart": 37, "byteEnd": 53},
                 "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://lugo.gal"}]}
            ])
        );
        let resolve = fake.requests_to("com.atproto.identity.resolveHandle");
        assert_eq!(resolve.len(), 1);
        assert_eq!(resolve[0].query_param("handle"), Some("vecina.bsky.social"));

        // A known DID is not resolved again; an unknown handle stays text.
        let options = PostOptions {
            known_dids: HashMap::from([("@Vecina.bsky.social".to_owned(), vecina.clone())]),
            ..PostOptions::default()
        };
        client
            .reply(
                &session,
                "@vecina.bsky.social e @ninguen.example.org",
                &parent,
                &parent,
                &options,
            )
            .await
            .unwrap();
        let record = fake.records().pop().unwrap().record;
        assert_eq!(record["facets"].as_array().unwrap().len(), 1);
        assert_eq!(
            fake.requests_to("com.atproto.identity.resolveHandle").len(),
            2
        );

        // An announcement: the link after a blank line, as a facet.
        let post = Post {
            text: "Pleno municipal o xoves".into(),
            link: Some("https://lugo.gal/pleno?día=1".into()),
            image_url: Some("https://lugo.gal/foto.jpg".into()),
        };
        client
            .post(&session, &post, &PostOptions::default())
            .await
            .unwrap();
        let record = fake.records().pop().unwrap().record;
        let text = record["text"].as_str().unwrap();
        assert_eq!(
            text,
            "Pleno municipal o xoves\n\nhttps://lugo.gal/pleno?día=1"
        );
        let facet = &record["facets"][0];
        let (start, end) = (
            facet["index"]["byteStart"].as_u64().unwrap() as usize,
            facet["index"]["byteEnd"].as_u64().unwrap() as usize,
        );
        assert_eq!(&text[start..end], "https://lugo.gal/pleno?día=1");
        assert_eq!(end, text.len());
        assert!(record.get("reply").is_none());
    }

    #[tokio::test]
    async fn too_long_is_refused_before_calling_and_the_fake_checks_records() {
        let (fake, keeper) = setup().await;
        let session = keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        let client = keeper.client();
        let (uri, cid) = fake.push_mention("vecina.bsky.social", "ola", None);
        let parent = StrongRef::new(&uri, &cid);
        let error = client
            .reply(
                &session,
                &"á".repeat(301),
                &parent,
                &parent,
                &PostOptions::default(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, SendError::Rejected { reason, .. } if reason.contains("301") && reason.contains("at least 1"))
        );
        assert!(!error.is_retryable());
        assert!(fake.requests_to("com.atproto.repo.createRecord").is_empty());
        // 300 is fine.
        client
            .reply(
                &session,
                &"á".repeat(300),
                &parent,
                &parent,
                &PostOptions::default(),
            )
            .await
            .unwrap();

        // What the fake refuses, as the PDS would.
        let http = reqwest::Client::new();
        let url = format!("{}/xrpc/com.atproto.repo.createRecord", fake.base_url());
        let token = secrecy::ExposeSecret::expose_secret(&session.access_jwt).to_owned();
        let post = |record: Value| {
            http.post(&url)
                .bearer_auth(&token)
                .json(
                    &json!({"repo": OWN_DID, "collection": "app.bsky.feed.post", "record": record}),
                )
                .send()
        };
        let now = "2026-03-01T10:00:00.000Z";
        for record in [
            json!({"$type": "app.bsky.feed.post", "text": "a".repeat(301), "createdAt": now}),
            json!({"text": "ola", "createdAt": now}),
            json!({"$type": "app.bsky.feed.post", "text": "ola"}),
            json!({"$type": "app.bsky.feed.post", "text": "ola", "createdAt": now,
                   "reply": {"root": {"uri": uri}, "parent": {"uri": uri, "cid": cid}}}),
            json!({"$type": "app.bsky.feed.post", "text": "ola", "createdAt": now,
                   "reply": {"parent": {"uri": uri, "cid": cid}}}),
            json!({"$type": "app.bsky.feed.post", "text": "¿ola", "createdAt": now,
                   "facets": [{"index": {"byteStart": 1, "byteEnd": 5},
                               "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://a.gal"}]}]}),
            json!({"$type": "app.bsky.feed.post", "text": "ola", "createdAt": now,
                   "facets": [{"index": {"byteStart": 0, "byteEnd": 4},
                               "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://a.gal"}]}]}),
        ] {
            let response = post(record.clone()).await.unwrap();
            assert_eq!(response.status(), 400, "{record}");
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"], "InvalidRequest", "{record}");
        }
        let ok = post(json!({"$type": "app.bsky.feed.post", "text": "¿ola", "createdAt": now,
            "facets": [{"index": {"byteStart": 2, "byteEnd": 5},
                        "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://a.gal"}]}]}))
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        assert!(ok.headers().contains_key("ratelimit-remaining"));
        // No token: 401 AuthMissing; a refresh token as access: InvalidToken.
        let response = http.post(&url).json(&json!({})).send().await.unwrap();
        assert_eq!(response.status(), 401);
        let refresh = secrecy::ExposeSecret::expose_secret(&session.refresh_jwt).to_owned();
        let response = http
            .post(&url)
            .bearer_auth(refresh)
            .json(&json!({}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "InvalidToken"
        );
    }

    #[tokio::test]
    async fn the_login_budget_answers_429_with_its_reset_and_is_not_spent_again() {
        let (fake, keeper) = setup().await;
        fake.set_login_limit(2);
        let c = creds(APP_PASSWORD);
        for account in ["a", "b"] {
            keeper.session(account, &c).await.unwrap();
        }
        let error = keeper.session("c", &c).await.unwrap_err();
        let SendError::RateLimited { network, until } = error else {
            panic!("expected a rate limit, got {error:?}");
        };
        assert_eq!(network, "bluesky");
        assert!(until > Utc::now() && until <= Utc::now() + Duration::minutes(5));
        assert_eq!(
            until.timestamp() % 300,
            0,
            "the window's end, from RateLimit-Reset"
        );
        assert_eq!(fake.logins(), 3);
        // Until the reset, the keeper does not try again.
        let again = keeper.session("c", &c).await.unwrap_err();
        assert!(matches!(again, SendError::RateLimited { .. }));
        assert_eq!(fake.logins(), 3);
        // The 429 carried the budget's headers.
        let response = reqwest::Client::new()
            .post(format!(
                "{}/xrpc/com.atproto.server.createSession",
                fake.base_url()
            ))
            .json(&json!({"identifier": OWN_HANDLE, "password": APP_PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 429);
        let headers = response.headers();
        assert_eq!(headers["ratelimit-limit"], "2");
        assert_eq!(headers["ratelimit-remaining"], "0");
        assert_eq!(headers["ratelimit-policy"], "2;w=300");
        assert_eq!(
            response.json::<Value>().await.unwrap()["error"],
            "RateLimitExceeded"
        );
    }

    #[tokio::test]
    async fn a_429_on_a_call_is_rate_limited_until_the_reset() {
        let (fake, keeper) = setup().await;
        let session = keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        fake.fail_next(429);
        let error = keeper.client().mentions(&session, None).await.unwrap_err();
        let SendError::RateLimited { until, .. } = error else {
            panic!("expected a rate limit, got {error:?}");
        };
        assert!(until > Utc::now());
        assert_eq!(until.timestamp() % 300, 0);
        fake.fail_next(503);
        let error = keeper.client().mentions(&session, None).await.unwrap_err();
        assert!(matches!(error, SendError::Temporary { .. }));
    }

    #[tokio::test]
    async fn refused_sign_ins_say_what_to_do_and_are_not_retried_with_the_same_password() {
        let (fake, keeper) = setup().await;
        let wrong = keeper
            .session(ACCOUNT, &creds("wrong-pass"))
            .await
            .unwrap_err();
        assert_eq!(wrong, SendError::TokenExpired { network: "bluesky" });
        assert!(wrong.degrades_account());
        keeper
            .session(ACCOUNT, &creds("wrong-pass"))
            .await
            .unwrap_err();
        assert_eq!(
            fake.logins(),
            1,
            "the same wrong password is not tried again"
        );
        // A new password is tried.
        keeper.session(ACCOUNT, &creds(APP_PASSWORD)).await.unwrap();
        assert_eq!(fake.logins(), 2);

        fake.require_auth_factor(true);
        let error = keeper.session("b", &creds(APP_PASSWORD)).await.unwrap_err();
        assert!(
            matches!(&error, SendError::Rejected { reason, .. } if reason.contains("app password"))
        );
        fake.require_auth_factor(false);
        fake.take_down(true);
        let error = keeper.session("c", &creds(APP_PASSWORD)).await.unwrap_err();
        assert!(
            matches!(&error, SendError::Rejected { reason, .. } if reason.contains("taken the account down"))
        );
    }
}
