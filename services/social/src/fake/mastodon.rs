//! A local fake of a Mastodon instance, for the tests, the simulator and the
//! benchmark. Never used against a real server.
//!
//! [`FakeMastodon`] serves, at `http://127.0.0.1:<port>`, the calls
//! [`crate::mastodon::MastodonClient`] makes, with Mastodon's request and
//! answer shapes, for one account of its own (the council's,
//! [`ACCOUNT_ID`], `@`[`ACCOUNT_ACCT`]):
//! - `GET /api/v1/notifications` over the notifications queued with
//!   [`FakeMastodon::push_mention`] and [`FakeMastodon::push_notification`]:
//!   `types[]`, `exclude_types[]`, `account_id`, `max_id` (upper bound),
//!   `since_id` (lower bound, newest page), `min_id` (the page immediately
//!   newer than the cursor), `limit` (default 40, at most 80), newest first
//!   in every page, and a `Link` header (`rel="next"` with `max_id`,
//!   `rel="prev"` with `min_id`, the filters kept) on non-empty pages;
//! - `POST /api/v1/statuses` (JSON or form body) → 200 with a Status;
//!   `Idempotency-Key` honoured for an hour (the same key gives the same
//!   status, none created); 422 over 500 characters (as
//!   [`crate::mastodon::status_length`] counts) or without text; 404 when
//!   `in_reply_to_id` is unknown;
//! - `GET /api/v1/statuses/:id` and `GET /api/v1/statuses/:id/context`
//!   (ancestors root first, descendants).
//!
//! Every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (ISO-8601 with microseconds, at the end of the
//! current 5-minute window, as Mastodon's rack-attack computes it) for a
//! per-token budget (300 per 5 minutes unless
//! [`FakeMastodon::set_rate_limit`] says otherwise; over it, a real 429
//! `{"error":"Too many requests"}`). Calls need a `Bearer` token registered
//! with [`FakeMastodon::allow_token`] (else 401
//! `{"error":"The access token is invalid"}`; a call outside the scopes
//! given with [`FakeMastodon::allow_token_scopes`] is a 403).
//! [`FakeMastodon::fail_next`]
//! makes the next call answer a given status with Mastodon's body for it;
//! [`FakeMastodon::requests`] lists what was received and
//! [`FakeMastodon::statuses`] what the account posted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// The id of the instance's own account (the council's).
pub const ACCOUNT_ID: &str = "1";

/// The `acct` of the instance's own account.
pub const ACCOUNT_ACCT: &str = "concello";

/// The rate-limit window, in seconds (Mastodon's 5 minutes).
const WINDOW_SECS: i64 = 300;

/// Calls allowed per token and window unless set otherwise.
const DEFAULT_LIMIT: u32 = 300;

/// How long Mastodon remembers an `Idempotency-Key`.
const IDEMPOTENCY_TTL: Duration = Duration::hours(1);

/// The first status id (statuses and notifications are numbered apart, so
/// a test cannot mistake one for the other).
const FIRST_STATUS_ID: u64 = 110_000_000_000_000_001;

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET`, `POST`…
    pub method: String,
    /// The path, e.g. `/api/v1/statuses`.
    pub path: String,
    /// The query parameters, decoded, in order (`types[]` keeps its
    /// brackets).
    pub query: Vec<(String, String)>,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
    /// The `Idempotency-Key` header, as sent.
    pub idempotency_key: Option<String>,
    /// The `Content-Type` header, as sent.
    pub content_type: Option<String>,
    /// The body: the JSON sent, or a form body as a JSON object of strings
    /// (`name[]` fields as arrays).
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
}

/// A status the account posted through the fake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeStatus {
    /// Its id.
    pub id: String,
    /// The `status` text as sent.
    pub text: String,
    /// The status it answers.
    pub in_reply_to_id: Option<String>,
    /// `public`, `unlisted`, `private` or `direct`.
    pub visibility: String,
    /// The `Idempotency-Key` it was created with.
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Clone)]
struct FakeAccount {
    id: u64,
    username: String,
    acct: String,
    url: String,
}

#[derive(Debug, Clone)]
struct StoredStatus {
    id: u64,
    account: u64,
    text: String,
    content: String,
    in_reply_to: Option<u64>,
    in_reply_to_account: Option<u64>,
    visibility: String,
    created_at: DateTime<Utc>,
    mentions: Vec<u64>,
    idempotency_key: Option<String>,
    /// Posted through `POST /api/v1/statuses` (not queued by a test).
    via_api: bool,
}

#[derive(Debug, Clone)]
struct StoredNotification {
    id: u64,
    kind: String,
    created_at: DateTime<Utc>,
    from: u64,
    status: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    index: i64,
    used: u32,
    reset: DateTime<Utc>,
}

#[derive(Debug)]
struct Shared {
    base_url: String,
    host: String,
    /// Allowed tokens → their scopes.
    tokens: HashMap<String, Vec<String>>,
    accounts: Vec<FakeAccount>,
    statuses: Vec<StoredStatus>,
    notifications: Vec<StoredNotification>,
    last_account: u64,
    last_status: u64,
    last_notification: u64,
    requests: Vec<Recorded>,
    failures: VecDeque<u16>,
    limit: u32,
    windows: HashMap<String, Window>,
    /// (token, key) → (status id, when it expires).
    idempotency: HashMap<(String, String), (u64, DateTime<Utc>)>,
}

impl Shared {
    fn account(&self, id: u64) -> Option<&FakeAccount> {
        self.accounts.iter().find(|a| a.id == id)
    }

    fn status(&self, id: u64) -> Option<&StoredStatus> {
        self.statuses.iter().find(|s| s.id == id)
    }

    /// The account `user` or `user@server` (server the fake's own host for
    /// a local one), created if unknown.
    fn account_for(&mut self, acct: &str) -> u64 {
        if let Some(id) = self.find_account(acct) {
            return id;
        }
        let acct = acct.trim().trim_start_matches('@');
        let (username, server) = match acct.split_once('@') {
            Some((user, server)) => (user.to_owned(), Some(server.to_owned())),
            None => (acct.to_owned(), None),
        };
        self.last_account += 1;
        let id = self.last_account;
        let (acct, url) = match server {
            Some(server) => (
                format!("{username}@{server}"),
                format!("https://{server}/@{username}"),
            ),
            None => (username.clone(), format!("{}/@{username}", self.base_url)),
        };
        self.accounts.push(FakeAccount {
            id,
            username,
            acct,
            url,
        });
        id
    }

    /// A known account by `user`, `@user`, `user@server` or
    /// `user@<this host>`.
    fn find_account(&self, acct: &str) -> Option<u64> {
        let acct = acct.trim().trim_start_matches('@');
        let local = match acct.split_once('@') {
            Some((user, server)) if server.eq_ignore_ascii_case(&self.host) => user,
            Some(_) => acct,
            None => acct,
        };
        self.accounts
            .iter()
            .find(|a| a.acct.eq_ignore_ascii_case(local))
            .map(|a| a.id)
    }

    fn next_status_id(&mut self) -> u64 {
        self.last_status = if self.last_status == 0 {
            FIRST_STATUS_ID
        } else {
            self.last_status + 1
        };
        self.last_status
    }

    /// Stores a status by `account` and returns its id.
    fn create_status(
        &mut self,
        account: u64,
        text: &str,
        visibility: &str,
        in_reply_to: Option<u64>,
        idempotency_key: Option<String>,
        via_api: bool,
    ) -> u64 {
        let (content, mentions) = render(self, text);
        let in_reply_to_account = in_reply_to.and_then(|r| self.status(r).map(|s| s.account));
        let id = self.next_status_id();
        self.statuses.push(StoredStatus {
            id,
            account,
            text: text.to_owned(),
            content,
            in_reply_to,
            in_reply_to_account,
            visibility: visibility.to_owned(),
            created_at: Utc::now(),
            mentions,
            via_api,
            idempotency_key,
        });
        id
    }

    fn notify(&mut self, kind: &str, from: u64, status: Option<u64>) -> u64 {
        self.last_notification += 1;
        let id = self.last_notification;
        self.notifications.push(StoredNotification {
            id,
            kind: kind.to_owned(),
            created_at: Utc::now(),
            from,
            status,
        });
        id
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake Mastodon instance. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeMastodon {
    base_url: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeMastodon {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts a fake Mastodon instance on a free local port
/// ([`FakeMastodon::start`]).
///
/// # Panics
///
/// If no local port can be bound (the tests cannot run then).
pub async fn start() -> FakeMastodon {
    FakeMastodon::start().await
}

impl FakeMastodon {
    /// Starts a fake Mastodon instance on a free local port, with its own
    /// account ([`ACCOUNT_ID`], `@`[`ACCOUNT_ACCT`]) and no token allowed.
    ///
    /// # Panics
    ///
    /// If no local port can be bound (the tests cannot run then).
    pub async fn start() -> FakeMastodon {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("the fake Mastodon instance cannot bind a local port: {e}"),
        };
        let address = match listener.local_addr() {
            Ok(address) => address,
            Err(e) => panic!("the fake Mastodon instance has no local address: {e}"),
        };
        let base_url = format!("http://{address}");
        let shared = Arc::new(Mutex::new(Shared {
            base_url: base_url.clone(),
            host: address.ip().to_string(),
            tokens: HashMap::new(),
            accounts: vec![FakeAccount {
                id: 1,
                username: ACCOUNT_ACCT.to_owned(),
                acct: ACCOUNT_ACCT.to_owned(),
                url: format!("{base_url}/@{ACCOUNT_ACCT}"),
            }],
            statuses: Vec::new(),
            notifications: Vec::new(),
            last_account: 1,
            last_status: 0,
            last_notification: 0,
            requests: Vec::new(),
            failures: VecDeque::new(),
            limit: DEFAULT_LIMIT,
            windows: HashMap::new(),
            idempotency: HashMap::new(),
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the fake Mastodon instance stopped");
            }
        });
        FakeMastodon {
            base_url,
            shared,
            server,
        }
    }

    /// Where it listens: `http://127.0.0.1:<port>` (give it to
    /// [`crate::mastodon::Instance::parse`]).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// The id of the instance's own account ([`ACCOUNT_ID`]).
    pub fn account_id(&self) -> &'static str {
        ACCOUNT_ID
    }

    /// Accepts `token` as a user token of the instance's own account, with
    /// the scopes `read write`.
    pub fn allow_token(&self, token: &str) {
        self.allow_token_scopes(token, &["read", "write"]);
    }

    /// Accepts `token` with only these scopes (`read`, `read:notifications`,
    /// `read:statuses`, `write`, `write:statuses`…); a call outside them is
    /// answered 403 `{"error":"This action is outside the authorized
    /// scopes"}`, as Mastodon does.
    pub fn allow_token_scopes(&self, token: &str, scopes: &[&str]) {
        lock(&self.shared).tokens.insert(
            token.to_owned(),
            scopes.iter().map(|s| (*s).to_owned()).collect(),
        );
    }

    /// Sets how many calls a token may make per 5-minute window (the
    /// windows start again).
    pub fn set_rate_limit(&self, limit: u32) {
        let mut shared = lock(&self.shared);
        shared.limit = limit;
        shared.windows.clear();
    }

    /// Makes the next call (whatever it is) answer `status` with Mastodon's
    /// body for it: 401 an invalid token, 403 a missing scope, 404 a record
    /// not found, 422 a validation failure, 429 too many requests (the
    /// headers saying none remain), 500 an internal error, 502–504 a
    /// proxy's HTML page. Several queue up.
    pub fn fail_next(&self, status: u16) {
        lock(&self.shared).failures.push_back(status);
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.clone()
    }

    /// The statuses the instance's own account posted through the API, in
    /// order.
    pub fn statuses(&self) -> Vec<FakeStatus> {
        let own: u64 = ACCOUNT_ID.parse().unwrap_or(1);
        lock(&self.shared)
            .statuses
            .iter()
            .filter(|s| s.account == own && s.via_api)
            .map(|s| FakeStatus {
                id: s.id.to_string(),
                text: s.text.clone(),
                in_reply_to_id: s.in_reply_to.map(|r| r.to_string()),
                visibility: s.visibility.clone(),
                idempotency_key: s.idempotency_key.clone(),
            })
            .collect()
    }

    /// Queues a status by `from_acct` (`user@server`, or `user` for a local
    /// account; created on first use) saying `text`, with `visibility`
    /// (`public`, `unlisted`, `private`, `direct`), answering the status
    /// `in_reply_to` if given, and the `mention` notification the account
    /// gets for it. Returns the ids (sequential numbers) of the notification
    /// and of the status. `@user` and `@user@server` words of known accounts
    /// become mention links in the status's HTML, as Mastodon renders them.
    pub fn push_mention(
        &self,
        from_acct: &str,
        text: &str,
        visibility: &str,
        in_reply_to: Option<&str>,
    ) -> (String, String) {
        let mut shared = lock(&self.shared);
        let from = shared.account_for(from_acct);
        let in_reply_to = in_reply_to.and_then(|r| r.parse::<u64>().ok());
        let status = shared.create_status(from, text, visibility, in_reply_to, None, false);
        let notification = shared.notify("mention", from, Some(status));
        (notification.to_string(), status.to_string())
    }

    /// Queues a notification of another type (`favourite`, `reblog`,
    /// `follow`…) from `from_acct` (on the account's latest status, when
    /// the type is about a status), and returns its id.
    pub fn push_notification(&self, kind: &str, from_acct: &str) -> String {
        let mut shared = lock(&self.shared);
        let from = shared.account_for(from_acct);
        let own: u64 = ACCOUNT_ID.parse().unwrap_or(1);
        let status = match kind {
            "follow" | "follow_request" | "admin.sign_up" => None,
            _ => shared
                .statuses
                .iter()
                .rev()
                .find(|s| s.account == own)
                .map(|s| s.id),
        };
        shared.notify(kind, from, status).to_string()
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', ')', ']', '}', '\'', '"'];

/// A status's text as Mastodon's HTML: paragraphs on blank lines, `<br />`
/// on line breaks, links with their `invisible` and `ellipsis` parts, and
/// mentions of known accounts as `h-card` links; and the accounts it
/// mentions.
fn render(shared: &Shared, text: &str) -> (String, Vec<u64>) {
    let mut mentions = Vec::new();
    let mut html = String::new();
    for paragraph in text.split("\n\n").filter(|p| !p.trim().is_empty()) {
        html.push_str("<p>");
        for (i, line) in paragraph.split('\n').enumerate() {
            if i > 0 {
                html.push_str("<br />");
            }
            for (j, word) in line.split(' ').enumerate() {
                if j > 0 {
                    html.push(' ');
                }
                html.push_str(&render_word(shared, word, &mut mentions));
            }
        }
        html.push_str("</p>");
    }
    (html, mentions)
}

fn render_word(shared: &Shared, word: &str, mentions: &mut Vec<u64>) -> String {
    let core = word.trim_end_matches(TRAILING);
    let trailing = escape(&word[core.len()..]);
    if let Some(rest) = core
        .strip_prefix("https://")
        .map(|r| ("https://", r))
        .or_else(|| core.strip_prefix("http://").map(|r| ("http://", r)))
    {
        let (scheme, rest) = rest;
        let shown: String = rest.chars().take(30).collect();
        let hidden: String = rest.chars().skip(30).collect();
        let ellipsis = if hidden.is_empty() { "" } else { "ellipsis" };
        return format!(
            "<a href=\"{}\" target=\"_blank\" rel=\"nofollow noopener\" translate=\"no\"><span class=\"invisible\">{}</span><span class=\"{ellipsis}\">{}</span><span class=\"invisible\">{}</span></a>{trailing}",
            escape(core),
            escape(scheme),
            escape(&shown),
            escape(&hidden)
        );
    }
    if core.starts_with('@')
        && let Some(id) = shared.find_account(core)
        && let Some(account) = shared.account(id)
    {
        if !mentions.contains(&id) {
            mentions.push(id);
        }
        return format!(
            "<span class=\"h-card\" translate=\"no\"><a href=\"{}\" class=\"u-url mention\">@<span>{}</span></a></span>{trailing}",
            escape(&account.url),
            escape(&account.username)
        );
    }
    escape(word)
}

fn time(at: DateTime<Utc>) -> String {
    at.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn account_json(account: &FakeAccount) -> Value {
    json!({
        "id": account.id.to_string(),
        "username": account.username,
        "acct": account.acct,
        "display_name": account.username,
        "locked": false,
        "bot": false,
        "discoverable": true,
        "group": false,
        "created_at": "2023-01-01T00:00:00.000Z",
        "note": "",
        "url": account.url,
        "uri": account.url.replace("/@", "/users/"),
        "avatar": "https://files.example/avatars/original/missing.png",
        "header": "https://files.example/headers/original/missing.png",
        "followers_count": 0,
        "following_count": 0,
        "statuses_count": 1,
        "emojis": [],
        "fields": []
    })
}

fn status_json(shared: &Shared, status: &StoredStatus) -> Value {
    let account = shared.account(status.account);
    let url = account.map_or_else(String::new, |a| format!("{}/{}", a.url, status.id));
    let mentions: Vec<Value> = status
        .mentions
        .iter()
        .filter_map(|id| shared.account(*id))
        .map(|a| json!({"id": a.id.to_string(), "username": a.username, "url": a.url, "acct": a.acct}))
        .collect();
    json!({
        "id": status.id.to_string(),
        "created_at": time(status.created_at),
        "in_reply_to_id": status.in_reply_to.map(|r| r.to_string()),
        "in_reply_to_account_id": status.in_reply_to_account.map(|r| r.to_string()),
        "sensitive": false,
        "spoiler_text": "",
        "visibility": status.visibility,
        "language": "gl",
        "uri": url.replace("/@", "/users/").replacen(&format!("/{}", status.id), &format!("/statuses/{}", status.id), 1),
        "url": url,
        "replies_count": shared.statuses.iter().filter(|s| s.in_reply_to == Some(status.id)).count(),
        "reblogs_count": 0,
        "favourites_count": 0,
        "edited_at": null,
        "content": status.content,
        "reblog": null,
        "application": {"name": "Ventanilla", "website": null},
        "account": account.map_or(Value::Null, account_json),
        "media_attachments": [],
        "mentions": mentions,
        "tags": [],
        "emojis": [],
        "card": null,
        "poll": null
    })
}

fn notification_json(shared: &Shared, n: &StoredNotification) -> Value {
    json!({
        "id": n.id.to_string(),
        "type": n.kind,
        "created_at": time(n.created_at),
        "group_key": format!("ungrouped-{}", n.id),
        "account": shared.account(n.from).map_or(Value::Null, account_json),
        "status": n.status.and_then(|s| shared.status(s)).map_or(Value::Null, |s| status_json(shared, s)),
    })
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

fn error(status: StatusCode, message: &str) -> (StatusCode, Value) {
    (status, json!({ "error": message }))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
}

/// Mastodon's answer for an injected failure.
fn failure_response(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let message = match status.as_u16() {
        401 => "The access token is invalid",
        403 => "This action is outside the authorized scopes",
        404 => "Record not found",
        410 => "Gone",
        422 => "Validation failed: Text can't be blank",
        429 => "Too many requests",
        502..=504 => {
            let reason = status.canonical_reason().unwrap_or("Bad Gateway");
            let page = format!(
                "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
                code = status.as_u16()
            );
            return (status, [(header::CONTENT_TYPE, "text/html")], page).into_response();
        }
        _ => "Internal Server Error",
    };
    let (status, body) = error(status, message);
    json_response(status, &body)
}

fn with_rate_headers(
    mut response: Response,
    limit: u32,
    remaining: u32,
    reset: DateTime<Utc>,
) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-ratelimit-limit", limit.to_string()),
        ("x-ratelimit-remaining", remaining.to_string()),
        (
            "x-ratelimit-reset",
            reset.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        ),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

/// The body's parameters: JSON, or a form as a JSON object.
fn body_params(content_type: Option<&str>, body: &[u8]) -> Option<Value> {
    if body.is_empty() {
        return None;
    }
    let is_form = content_type.is_some_and(|c| c.starts_with("application/x-www-form-urlencoded"));
    if !is_form {
        return serde_json::from_slice(body).ok();
    }
    let text = std::str::from_utf8(body).ok()?;
    let url = reqwest::Url::parse(&format!("http://form.invalid/?{text}")).ok()?;
    let mut object = serde_json::Map::new();
    for (key, value) in url.query_pairs() {
        if key.ends_with("[]") {
            let entry = object
                .entry(key.into_owned())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(values) = entry {
                values.push(Value::String(value.into_owned()));
            }
        } else {
            object.insert(key.into_owned(), Value::String(value.into_owned()));
        }
    }
    Some(Value::Object(object))
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let mut shared = lock(&shared);
    let text_header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let authorization = text_header(header::AUTHORIZATION.as_str());
    let idempotency_key = text_header("idempotency-key");
    let content_type = text_header(header::CONTENT_TYPE.as_str());
    let query = Query::<Vec<(String, String)>>::try_from_uri(&uri)
        .map(|q| q.0)
        .unwrap_or_default();
    let params = body_params(content_type.as_deref(), &body);
    shared.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: query.clone(),
        authorization: authorization.clone(),
        idempotency_key: idempotency_key.clone(),
        content_type,
        body: params.clone(),
    });

    // The caller's window: per token, or per address without a known one.
    let token = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| shared.tokens.contains_key(*t))
        .map(str::to_owned);
    let now = Utc::now();
    let index = now.timestamp().div_euclid(WINDOW_SECS);
    let key = token
        .clone()
        .map_or_else(|| "ip:127.0.0.1".to_owned(), |t| format!("token:{t}"));
    let window = shared.windows.entry(key).or_insert(Window {
        index,
        used: 0,
        reset: now,
    });
    if window.index != index || window.used == 0 {
        // rack-attack: now + (period - now % period), microseconds kept.
        let into_window = now.timestamp().rem_euclid(WINDOW_SECS);
        *window = Window {
            index,
            used: 0,
            reset: now + Duration::seconds(WINDOW_SECS - into_window),
        };
    }
    window.used = window.used.saturating_add(1);
    let Window { used, reset, .. } = *window;
    let limit = shared.limit;
    let remaining = limit.saturating_sub(used);

    if let Some(status) = shared.failures.pop_front() {
        let remaining = if status == 429 { 0 } else { remaining };
        return with_rate_headers(failure_response(status), limit, remaining, reset);
    }
    if used > limit {
        let (status, body) = error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
        return with_rate_headers(json_response(status, &body), limit, 0, reset);
    }
    let Some(token) = token else {
        let (status, body) = error(StatusCode::UNAUTHORIZED, "The access token is invalid");
        return with_rate_headers(json_response(status, &body), limit, remaining, reset);
    };

    let path = uri.path().trim_end_matches('/');
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let needed = match (&method, segments.as_slice()) {
        (&Method::GET, ["api", "v1", "notifications"]) => Some(("read", "read:notifications")),
        (&Method::GET, ["api", "v1", "statuses", ..]) => Some(("read", "read:statuses")),
        (&Method::POST, ["api", "v1", "statuses"]) => Some(("write", "write:statuses")),
        _ => None,
    };
    let scopes = shared.tokens.get(&token).cloned().unwrap_or_default();
    if let Some((broad, narrow)) = needed
        && !scopes.iter().any(|s| s == broad || s == narrow)
    {
        let (status, body) = error(
            StatusCode::FORBIDDEN,
            "This action is outside the authorized scopes",
        );
        return with_rate_headers(json_response(status, &body), limit, remaining, reset);
    }
    let (status, body, link) = match (method, segments.as_slice()) {
        (Method::GET, ["api", "v1", "notifications"]) => notifications(&shared, &query),
        (Method::POST, ["api", "v1", "statuses"]) => {
            let (status, body) = create_status(
                &mut shared,
                &token,
                idempotency_key,
                params.unwrap_or(Value::Null),
            );
            (status, body, None)
        }
        (Method::GET, ["api", "v1", "statuses", id]) => {
            let (status, body) = match id.parse::<u64>().ok().and_then(|id| shared.status(id)) {
                Some(s) => (StatusCode::OK, status_json(&shared, s)),
                None => error(StatusCode::NOT_FOUND, "Record not found"),
            };
            (status, body, None)
        }
        (Method::GET, ["api", "v1", "statuses", id, "context"]) => {
            let (status, body) = context(&shared, id);
            (status, body, None)
        }
        _ => {
            let (status, body) = error(StatusCode::NOT_FOUND, "Record not found");
            (status, body, None)
        }
    };
    let mut response = json_response(status, &body);
    if let Some(link) = link.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LINK, link);
    }
    with_rate_headers(response, limit, remaining, reset)
}

/// The values of a query parameter given as `name[]` or `name`.
fn list_param<'a>(query: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    let bracketed = format!("{name}[]");
    query
        .iter()
        .filter(|(k, _)| *k == bracketed || k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// `GET /api/v1/notifications`, as Mastodon's `to_a_paginated_by_id`.
fn notifications(
    shared: &Shared,
    query: &[(String, String)],
) -> (StatusCode, Value, Option<String>) {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let id_param = |name: &str| param(name).and_then(|v| v.parse::<u64>().ok());
    let types = list_param(query, "types");
    let exclude = list_param(query, "exclude_types");
    let from = id_param("account_id");
    // Rails: `[params[:limit].to_i.abs, 80].min`, 40 when absent.
    let limit = match param("limit") {
        None => 40,
        Some(l) => {
            let digits: String = l
                .trim_start_matches(['-', '+'])
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse::<usize>().unwrap_or(0).min(80)
        }
    };
    let (max_id, since_id, min_id) = (id_param("max_id"), id_param("since_id"), id_param("min_id"));

    let mut matching: Vec<&StoredNotification> = shared
        .notifications
        .iter()
        .filter(|n| types.is_empty() || types.contains(&n.kind.as_str()))
        .filter(|n| !exclude.contains(&n.kind.as_str()))
        .filter(|n| from.is_none_or(|f| n.from == f))
        .filter(|n| max_id.is_none_or(|m| n.id < m))
        .collect();
    let page: Vec<&StoredNotification> = match min_id {
        // The page immediately newer than the cursor, shown newest first.
        Some(min_id) => {
            matching.retain(|n| n.id > min_id);
            matching.sort_by_key(|n| n.id);
            matching.truncate(limit);
            matching.reverse();
            matching
        }
        None => {
            matching.retain(|n| since_id.is_none_or(|s| n.id > s));
            matching.sort_by_key(|n| std::cmp::Reverse(n.id));
            matching.truncate(limit);
            matching
        }
    };
    let body = Value::Array(page.iter().map(|n| notification_json(shared, n)).collect());
    let link = match (page.first(), page.last()) {
        (Some(newest), Some(oldest)) => {
            // Rails keeps `limit` and the filters, keys sorted.
            let link = |cursor: (&str, u64)| {
                let mut pairs: Vec<(String, String)> = Vec::new();
                if let Some(account) = param("account_id") {
                    pairs.push(("account_id".into(), account.into()));
                }
                for kind in &exclude {
                    pairs.push(("exclude_types[]".into(), (*kind).into()));
                }
                if let Some(filtered) = param("include_filtered") {
                    pairs.push(("include_filtered".into(), filtered.into()));
                }
                if let Some(limit) = param("limit") {
                    pairs.push(("limit".into(), limit.into()));
                }
                pairs.push((cursor.0.into(), cursor.1.to_string()));
                for kind in &types {
                    pairs.push(("types[]".into(), (*kind).into()));
                }
                pairs.sort_by(|a, b| a.0.cmp(&b.0));
                let mut url =
                    reqwest::Url::parse(&format!("{}/api/v1/notifications", shared.base_url))
                        .ok()?;
                url.query_pairs_mut().extend_pairs(pairs);
                Some(url.to_string())
            };
            match (link(("max_id", oldest.id)), link(("min_id", newest.id))) {
                (Some(next), Some(prev)) => {
                    Some(format!("<{next}>; rel=\"next\", <{prev}>; rel=\"prev\""))
                }
                _ => None,
            }
        }
        _ => None,
    };
    (StatusCode::OK, body, link)
}

/// A string parameter (JSON strings and numbers, form strings).
fn string_param(params: &Value, name: &str) -> Option<String> {
    match params.get(name)? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `POST /api/v1/statuses`, as Mastodon's controller and
/// `PostStatusService`: the status answered is checked first (404), then
/// the idempotency key (the status already created), then the text (422).
fn create_status(
    shared: &mut Shared,
    token: &str,
    idempotency_key: Option<String>,
    params: Value,
) -> (StatusCode, Value) {
    let in_reply_to = match string_param(&params, "in_reply_to_id") {
        None => None,
        Some(id) => match id
            .parse::<u64>()
            .ok()
            .filter(|id| shared.status(*id).is_some())
        {
            Some(id) => Some(id),
            None => {
                return error(
                    StatusCode::NOT_FOUND,
                    "The post you are trying to reply to does not appear to exist.",
                );
            }
        },
    };
    let now = Utc::now();
    shared.idempotency.retain(|_, (_, expires)| *expires > now);
    let remembered = idempotency_key
        .as_ref()
        .filter(|k| !k.is_empty())
        .map(|k| (token.to_owned(), k.clone()));
    if let Some(remembered) = &remembered
        && let Some((id, _)) = shared.idempotency.get(remembered)
        && let Some(status) = shared.status(*id)
    {
        return (StatusCode::OK, status_json(shared, status));
    }
    let text = string_param(&params, "status").unwrap_or_default();
    let has_media = params
        .get("media_ids")
        .or_else(|| params.get("media_ids[]"))
        .and_then(Value::as_array)
        .is_some_and(|m| !m.is_empty());
    if text.trim().is_empty() && !has_media {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: Text can't be blank",
        );
    }
    if crate::mastodon::status_length(&text) > crate::mastodon::MAX_STATUS_LENGTH {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            "Validation failed: Text character limit of 500 exceeded",
        );
    }
    let visibility = string_param(&params, "visibility").unwrap_or_else(|| "public".to_owned());
    if !["public", "unlisted", "private", "direct"].contains(&visibility.as_str()) {
        return error(
            StatusCode::UNPROCESSABLE_ENTITY,
            &format!("'{visibility}' is not a valid visibility"),
        );
    }
    let own: u64 = ACCOUNT_ID.parse().unwrap_or(1);
    let id = shared.create_status(
        own,
        &text,
        &visibility,
        in_reply_to,
        idempotency_key.clone(),
        true,
    );
    if let Some(remembered) = remembered {
        shared
            .idempotency
            .insert(remembered, (id, now + IDEMPOTENCY_TTL));
    }
    match shared.status(id) {
        Some(status) => (StatusCode::OK, status_json(shared, status)),
        None => error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    }
}

/// `GET /api/v1/statuses/:id/context`: the known statuses above it, root
/// first, and those below it.
fn context(shared: &Shared, id: &str) -> (StatusCode, Value) {
    let Some(status) = id.parse::<u64>().ok().and_then(|id| shared.status(id)) else {
        return error(StatusCode::NOT_FOUND, "Record not found");
    };
    let mut ancestors = Vec::new();
    let mut parent = status.in_reply_to;
    while let Some(p) = parent.and_then(|p| shared.status(p)) {
        if ancestors.iter().any(|a: &&StoredStatus| a.id == p.id) {
            break;
        }
        ancestors.push(p);
        parent = p.in_reply_to;
    }
    ancestors.reverse();
    let descends = |s: &StoredStatus| {
        let mut parent = s.in_reply_to;
        let mut hops = 0;
        while let Some(p) = parent {
            if p == status.id {
                return true;
            }
            hops += 1;
            if hops > shared.statuses.len() {
                return false;
            }
            parent = shared.status(p).and_then(|p| p.in_reply_to);
        }
        false
    };
    let descendants: Vec<Value> = shared
        .statuses
        .iter()
        .filter(|s| descends(s))
        .map(|s| status_json(shared, s))
        .collect();
    (
        StatusCode::OK,
        json!({
            "ancestors": ancestors.iter().map(|s| status_json(shared, s)).collect::<Vec<_>>(),
            "descendants": descendants,
        }),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::connector::{Credentials, OutboundReply, Post, ReplyTarget, SendError};
    use crate::mastodon::{self, Instance, MastodonClient};
    use secrecy::SecretString;
    use ventanilla_social_domain::inbound::MessageKind;

    const TOKEN: &str = "user-token-1";
    const VECINA: &str = "vecina@outra.social";

    fn creds(token: &str) -> Credentials {
        Credentials {
            external_id: ACCOUNT_ID.into(),
            access_token: SecretString::from(token.to_owned()),
            signing_secret: SecretString::from(String::new()),
            verify_token: SecretString::from(String::new()),
            human_agent: false,
        }
    }

    async fn setup() -> (FakeMastodon, MastodonClient, Instance) {
        let fake = FakeMastodon::start().await;
        fake.allow_token(TOKEN);
        let instance = Instance::parse(fake.base_url()).unwrap();
        (fake, MastodonClient::new(reqwest::Client::new()), instance)
    }

    fn public(in_reply_to: &str, text: &str) -> OutboundReply {
        OutboundReply {
            target: ReplyTarget::Public {
                in_reply_to: in_reply_to.into(),
            },
            text: text.into(),
            now: Utc::now(),
        }
    }

    fn direct(recipient: &str, text: &str) -> OutboundReply {
        OutboundReply {
            target: ReplyTarget::Direct {
                recipient: recipient.into(),
                last_inbound_at: Utc::now(),
            },
            text: text.into(),
            now: Utc::now(),
        }
    }

    async fn get(
        fake: &FakeMastodon,
        path_and_query: &str,
        token: Option<&str>,
    ) -> reqwest::Response {
        let request = reqwest::Client::new().get(format!("{}{path_and_query}", fake.base_url()));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
        .await
        .unwrap()
    }

    async fn ids(response: reqwest::Response) -> Vec<String> {
        let body: Value = response.json().await.unwrap();
        body.as_array()
            .unwrap()
            .iter()
            .map(|n| n["id"].as_str().unwrap().to_owned())
            .collect()
    }

    #[tokio::test]
    async fn polling_reads_every_new_mention_once_across_pages_and_polls() {
        let (fake, client, instance) = setup().await;
        let c = creds(TOKEN);

        let nothing = client.mentions(&instance, &c, None).await.unwrap();
        assert_eq!(nothing, mastodon::Mentions::default());

        // The first poll of an account reads the latest page.
        let (n0, s0) = fake.push_mention(VECINA, "@concello ola", "public", None);
        let first = client.mentions(&instance, &c, None).await.unwrap();
        assert_eq!(first.messages.len(), 1);
        assert_eq!(first.messages[0].platform_id, s0);
        assert_eq!(first.newest_notification_id.as_deref(), Some(n0.as_str()));
        let request = fake.requests().pop().unwrap();
        assert_eq!(request.path, "/api/v1/notifications");
        assert_eq!(request.query_param("types[]"), Some("mention"));
        assert_eq!(request.query_param("limit"), Some("40"));
        assert_eq!(request.query_param("include_filtered"), Some("true"));
        assert_eq!(request.query_param("min_id"), None);
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer user-token-1")
        );

        // 45 mentions, favourites and follows among them: two pages forward.
        let mut pushed = Vec::new();
        for i in 0..45 {
            pushed.push(fake.push_mention(VECINA, &format!("@concello aviso {i}"), "public", None));
            if i % 10 == 0 {
                fake.push_notification("favourite", "outro@outra.social");
                fake.push_notification("follow", "outro@outra.social");
            }
        }
        let before = fake.requests().len();
        let cursor = first.newest_notification_id.unwrap();
        let second = client.mentions(&instance, &c, Some(&cursor)).await.unwrap();
        let read: Vec<&str> = second
            .messages
            .iter()
            .map(|m| m.platform_id.as_str())
            .collect();
        let expected: Vec<&str> = pushed.iter().map(|(_, s)| s.as_str()).collect();
        assert_eq!(read, expected, "all of them, oldest first, each once");
        assert!(!second.more);
        assert_eq!(
            second.newest_notification_id.as_deref(),
            Some(pushed[44].0.as_str())
        );
        let polls: Vec<Recorded> = fake.requests().split_off(before);
        assert_eq!(polls.len(), 2, "a full page, then the rest");
        assert_eq!(polls[0].query_param("min_id"), Some(cursor.as_str()));
        // The second page is the one the first's rel="prev" names.
        assert_eq!(polls[1].query_param("min_id"), Some(pushed[39].0.as_str()));
        assert!(
            second
                .messages
                .iter()
                .all(|m| m.kind == MessageKind::Mention)
        );
        assert_eq!(second.messages[0].text, "@concello aviso 0");
        assert_eq!(
            second.messages[0].author.handle.as_deref(),
            Some("@vecina@outra.social")
        );

        // Nothing new: nothing read, the cursor stays.
        let cursor = second.newest_notification_id.unwrap();
        let third = client.mentions(&instance, &c, Some(&cursor)).await.unwrap();
        assert!(third.messages.is_empty());
        assert_eq!(third.newest_notification_id, None);

        // Exactly a full page: read, then an empty page ends the poll.
        let forty: Vec<(String, String)> = (0..40)
            .map(|i| fake.push_mention(VECINA, &format!("@concello {i}"), "public", None))
            .collect();
        let before = fake.requests().len();
        let fourth = client.mentions(&instance, &c, Some(&cursor)).await.unwrap();
        assert_eq!(fourth.messages.len(), 40);
        assert_eq!(fourth.messages[39].platform_id, forty[39].1);
        assert_eq!(
            fourth.newest_notification_id.as_deref(),
            Some(forty[39].0.as_str())
        );
        assert_eq!(fake.requests().len() - before, 2);

        // The account's own statuses are not citizens' messages, but the
        // cursor passes them.
        let (own, _) = fake.push_mention(ACCOUNT_ACCT, "@concello nota", "public", None);
        let cursor = fourth.newest_notification_id.unwrap();
        let fifth = client.mentions(&instance, &c, Some(&cursor)).await.unwrap();
        assert!(fifth.messages.is_empty());
        assert_eq!(fifth.newest_notification_id, Some(own));
    }

    #[tokio::test]
    async fn the_fake_pages_like_mastodon() {
        let (fake, _, _) = setup().await;
        let n: Vec<String> = (0..5)
            .map(|i| {
                fake.push_mention(VECINA, &format!("@concello {i}"), "public", None)
                    .0
            })
            .collect();
        let follow = fake.push_notification("follow", "outro@outra.social");

        let all = get(&fake, "/api/v1/notifications", Some(TOKEN)).await;
        assert_eq!(
            ids(all).await,
            [
                follow.as_str(),
                n[4].as_str(),
                n[3].as_str(),
                n[2].as_str(),
                n[1].as_str(),
                n[0].as_str()
            ]
        );

        let response = get(
            &fake,
            "/api/v1/notifications?types[]=mention&limit=2",
            Some(TOKEN),
        )
        .await;
        let links = mastodon::page_links(response.headers());
        assert_eq!(ids(response).await, [n[4].as_str(), n[3].as_str()]);
        let next = reqwest::Url::parse(links.next.as_deref().unwrap()).unwrap();
        let prev = reqwest::Url::parse(links.prev.as_deref().unwrap()).unwrap();
        let pairs = |url: &reqwest::Url| -> Vec<(String, String)> {
            url.query_pairs().into_owned().collect()
        };
        assert_eq!(
            pairs(&next),
            [
                ("limit".into(), "2".into()),
                ("max_id".into(), n[3].clone()),
                ("types[]".into(), "mention".into())
            ]
        );
        assert!(pairs(&prev).contains(&("min_id".into(), n[4].clone())));
        assert!(prev.as_str().starts_with(fake.base_url()));

        // min_id: the page right after the cursor, newest first.
        let page = get(
            &fake,
            &format!(
                "/api/v1/notifications?types%5B%5D=mention&limit=2&min_id={}",
                n[0]
            ),
            Some(TOKEN),
        )
        .await;
        assert_eq!(ids(page).await, [n[2].as_str(), n[1].as_str()]);
        // since_id: the newest page above the bound.
        let page = get(
            &fake,
            &format!(
                "/api/v1/notifications?types[]=mention&limit=2&since_id={}",
                n[0]
            ),
            Some(TOKEN),
        )
        .await;
        assert_eq!(ids(page).await, [n[4].as_str(), n[3].as_str()]);
        // max_id: below the bound; with min_id, between both.
        let page = get(
            &fake,
            &format!("/api/v1/notifications?types[]=mention&max_id={}", n[3]),
            Some(TOKEN),
        )
        .await;
        assert_eq!(
            ids(page).await,
            [n[2].as_str(), n[1].as_str(), n[0].as_str()]
        );
        let page = get(
            &fake,
            &format!(
                "/api/v1/notifications?types[]=mention&min_id={}&max_id={}",
                n[0], n[3]
            ),
            Some(TOKEN),
        )
        .await;
        assert_eq!(ids(page).await, [n[2].as_str(), n[1].as_str()]);
        // exclude_types[].
        let page = get(
            &fake,
            "/api/v1/notifications?exclude_types[]=mention",
            Some(TOKEN),
        )
        .await;
        assert_eq!(ids(page).await, [follow.as_str()]);

        // An empty page has no Link header.
        let empty = get(
            &fake,
            &format!("/api/v1/notifications?min_id={follow}"),
            Some(TOKEN),
        )
        .await;
        assert!(empty.headers().get("link").is_none());
        assert_eq!(ids(empty).await, Vec::<String>::new());

        // limit: 40 by default, 80 at most.
        for i in 0..85 {
            fake.push_mention(VECINA, &format!("@concello más {i}"), "public", None);
        }
        for (query, count) in [
            ("", 40),
            ("?limit=80", 80),
            ("?limit=500", 80),
            ("?limit=3", 3),
        ] {
            let page = get(&fake, &format!("/api/v1/notifications{query}"), Some(TOKEN)).await;
            assert_eq!(ids(page).await.len(), count, "{query}");
        }

        // Without a known token: 401, with the rate-limit headers.
        let response = get(&fake, "/api/v1/notifications", Some("other")).await;
        assert_eq!(response.status(), 401);
        assert!(mastodon::rate_limit(response.headers()).is_some());
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"error": "The access token is invalid"}));
    }

    #[tokio::test]
    async fn a_direct_message_is_answered_directly_with_the_mention_once_per_key() {
        let (fake, client, instance) = setup().await;
        let c = creds(TOKEN);
        let (_, dm) = fake.push_mention(
            VECINA,
            "@concello Ola, hai un burato & unha farola rota",
            "direct",
            None,
        );
        let polled = client.mentions(&instance, &c, None).await.unwrap();
        let message = &polled.messages[0];
        assert_eq!(message.kind, MessageKind::Direct);
        assert_eq!(message.platform_id, dm);
        assert_eq!(
            message.text,
            "@concello Ola, hai un burato & unha farola rota"
        );
        let handle = message.author.handle.clone().unwrap();
        assert_eq!(handle, "@vecina@outra.social");
        assert_eq!(message.thread, message.author.platform_user_id);
        // A direct message needs no conversation root.
        assert!(
            fake.requests()
                .iter()
                .all(|r| !r.path.ends_with("/context"))
        );

        let reply = public(&dm, "Grazas, xa o temos anotado.");
        let sent = client
            .send(&instance, &c, &reply, "direct", &handle, "delivery-1")
            .await
            .unwrap();
        let request = fake.requests().pop().unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/api/v1/statuses");
        assert_eq!(request.idempotency_key.as_deref(), Some("delivery-1"));
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer user-token-1")
        );
        assert!(
            request
                .content_type
                .unwrap()
                .starts_with("application/json")
        );
        assert_eq!(
            request.body,
            Some(json!({
                "status": "@vecina@outra.social Grazas, xa o temos anotado.",
                "visibility": "direct",
                "in_reply_to_id": dm,
            }))
        );

        // A retry with the same key gives the same status, and no new one.
        let again = client
            .send(&instance, &c, &reply, "direct", &handle, "delivery-1")
            .await
            .unwrap();
        assert_eq!(again, sent);
        let statuses = fake.statuses();
        assert_eq!(statuses.len(), 1);
        assert_eq!(
            statuses[0],
            FakeStatus {
                id: sent.platform_id.clone(),
                text: "@vecina@outra.social Grazas, xa o temos anotado.".into(),
                in_reply_to_id: Some(dm.clone()),
                visibility: "direct".into(),
                idempotency_key: Some("delivery-1".into()),
            }
        );

        // As the service addresses DMs today (the citizen's id): a direct
        // status mentioning them, not threaded; the text keeps a mention
        // it already has.
        let sent = client
            .send(
                &instance,
                &c,
                &direct(
                    &message.author.platform_user_id,
                    "@vecina@outra.social Algo máis?",
                ),
                "public",
                "vecina@outra.social",
                "delivery-2",
            )
            .await
            .unwrap();
        let statuses = fake.statuses();
        assert_eq!(statuses.len(), 2);
        assert_eq!(statuses[1].id, sent.platform_id);
        assert_eq!(statuses[1].visibility, "direct");
        assert_eq!(statuses[1].in_reply_to_id, None);
        assert_eq!(statuses[1].text, "@vecina@outra.social Algo máis?");
    }

    #[tokio::test]
    async fn public_replies_keep_their_visibility_and_threads_find_their_root() {
        let (fake, client, instance) = setup().await;
        let c = creds(TOKEN);
        let (_, root) = fake.push_mention(
            VECINA,
            "@concello a fonte da praza non funciona",
            "public",
            None,
        );
        let first = client.mentions(&instance, &c, None).await.unwrap();
        assert_eq!(first.messages[0].thread, root);
        assert_eq!(first.messages[0].kind, MessageKind::Mention);

        let ours = client
            .send(
                &instance,
                &c,
                &public(&root, "Avisamos ao servizo de augas."),
                "public",
                VECINA,
                "d-1",
            )
            .await
            .unwrap();
        assert_eq!(fake.statuses()[0].visibility, "public");
        assert_eq!(
            fake.statuses()[0].in_reply_to_id.as_deref(),
            Some(root.as_str())
        );

        // The citizen answers our reply; a neighbour answers them
        // followers-only.
        let (_, answer) = fake.push_mention(
            VECINA,
            "@concello cando?",
            "public",
            Some(&ours.platform_id),
        );
        let (_, aside) = fake.push_mention(
            "outro@outra.social",
            "@vecina @concello a min tamén",
            "private",
            Some(&answer),
        );
        let cursor = first.newest_notification_id.unwrap();
        let polled = client.mentions(&instance, &c, Some(&cursor)).await.unwrap();
        assert_eq!(polled.messages.len(), 2);
        let (a, b) = (&polled.messages[0], &polled.messages[1]);
        assert_eq!(a.platform_id, answer);
        assert_eq!(a.kind, MessageKind::Reply);
        assert_eq!(a.in_reply_to.as_deref(), Some(ours.platform_id.as_str()));
        assert_eq!(
            a.thread, root,
            "the conversation's root, not the status answered"
        );
        assert_eq!(b.platform_id, aside);
        assert_eq!(b.kind, MessageKind::Mention);
        assert_eq!(b.thread, root);
        let context = fake
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/context"))
            .count();
        assert_eq!(context, 2);

        // A followers-only status is answered followers-only; an unknown
        // visibility directly.
        client
            .send(
                &instance,
                &c,
                &public(&aside, "Xa está avisado."),
                "private",
                "outro@outra.social",
                "d-2",
            )
            .await
            .unwrap();
        client
            .send(
                &instance,
                &c,
                &public(&aside, "De novo."),
                "",
                "outro@outra.social",
                "d-3",
            )
            .await
            .unwrap();
        let statuses = fake.statuses();
        assert_eq!(statuses[1].visibility, "private");
        assert_eq!(statuses[2].visibility, "direct");
    }

    #[tokio::test]
    async fn without_read_statuses_the_status_answered_stands_for_the_root() {
        let (fake, client, instance) = setup().await;
        fake.allow_token_scopes("narrow", &["read:notifications", "write:statuses"]);
        let (_, root) = fake.push_mention(VECINA, "@concello ola", "public", None);
        let (_, reply) = fake.push_mention(
            "outro@outra.social",
            "@concello @vecina si",
            "public",
            Some(&root),
        );
        let (_, deeper) = fake.push_mention(
            VECINA,
            "@concello @outro@outra.social non",
            "public",
            Some(&reply),
        );

        let narrow = client
            .mentions(&instance, &creds("narrow"), None)
            .await
            .unwrap();
        let threads: Vec<(&str, &str)> = narrow
            .messages
            .iter()
            .map(|m| (m.platform_id.as_str(), m.thread.as_str()))
            .collect();
        assert_eq!(
            threads,
            [
                (root.as_str(), root.as_str()),
                (reply.as_str(), root.as_str()),
                (deeper.as_str(), reply.as_str())
            ]
        );
        let refused = fake
            .requests()
            .into_iter()
            .filter(|r| r.path.ends_with("/context"))
            .count();
        assert_eq!(refused, 2, "one lookup per status answered");

        let full = client
            .mentions(&instance, &creds(TOKEN), None)
            .await
            .unwrap();
        assert_eq!(full.messages[2].thread, root);
        // Rendered mentions read back as written.
        assert_eq!(full.messages[2].text, "@concello @outro non");

        // Without write:statuses, a reply is refused for that scope.
        fake.allow_token_scopes("read-only", &["read"]);
        assert_eq!(
            client
                .send(
                    &instance,
                    &creds("read-only"),
                    &public(&deeper, "ola"),
                    "public",
                    VECINA,
                    "k"
                )
                .await,
            Err(SendError::PermissionMissing {
                network: "mastodon",
                permission: "write:statuses".into()
            })
        );
        assert!(fake.statuses().is_empty());
    }

    #[tokio::test]
    async fn rate_limits_are_reported_with_the_iso_reset() {
        let (fake, client, instance) = setup().await;
        let c = creds(TOKEN);
        fake.set_rate_limit(2);
        let response = get(&fake, "/api/v1/notifications", Some(TOKEN)).await;
        assert_eq!(response.status(), 200);
        let raw = response.headers()["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .to_owned();
        // 2026-11-29T10:15:00.123456Z: microseconds, not epoch seconds.
        assert_eq!(raw.len(), 27, "{raw}");
        assert!(raw.ends_with('Z') && raw.as_bytes()[19] == b'.', "{raw}");
        let limit = mastodon::rate_limit(response.headers()).unwrap();
        assert_eq!((limit.limit, limit.remaining), (2, 1));
        assert!(limit.reset > Utc::now());
        assert!(limit.reset <= Utc::now() + Duration::seconds(WINDOW_SECS));
        assert_eq!(limit.reset.timestamp_subsec_nanos() % 1000, 0);

        let (_, status) = fake.push_mention(VECINA, "@concello ola", "public", None);
        client.mentions(&instance, &c, None).await.unwrap();
        let result = client
            .send(
                &instance,
                &c,
                &public(&status, "ola"),
                "public",
                VECINA,
                "k-1",
            )
            .await;
        assert_eq!(
            result,
            Err(SendError::RateLimited {
                network: "mastodon",
                until: limit.reset
            })
        );
        let response = get(&fake, "/api/v1/notifications", Some(TOKEN)).await;
        assert_eq!(response.status(), 429);
        assert_eq!(
            mastodon::rate_limit(response.headers()).unwrap().remaining,
            0
        );
        let body: Value = response.json().await.unwrap();
        assert_eq!(body, json!({"error": "Too many requests"}));
        assert!(fake.statuses().is_empty());

        // An injected 429 says the same.
        fake.set_rate_limit(300);
        fake.fail_next(429);
        let error = client.mentions(&instance, &c, None).await.unwrap_err();
        assert!(matches!(error, SendError::RateLimited { until, .. } if until > Utc::now()));
        assert!(error.is_retryable() && error.degrades_account());
    }

    #[tokio::test]
    async fn tokens_scopes_deleted_posts_and_outages_map_to_send_errors() {
        let (fake, client, instance) = setup().await;
        let c = creds(TOKEN);
        let (_, status) = fake.push_mention(VECINA, "@concello ola", "public", None);

        let error = client
            .send(
                &instance,
                &creds("revoked-token-xyz"),
                &public(&status, "ola"),
                "public",
                VECINA,
                "k",
            )
            .await
            .unwrap_err();
        assert_eq!(
            error,
            SendError::TokenExpired {
                network: "mastodon"
            }
        );
        assert!(!error.to_string().contains("revoked-token-xyz"));
        assert!(!format!("{:?}", creds("revoked-token-xyz")).contains("revoked-token-xyz"));
        fake.fail_next(401);
        assert_eq!(
            client.mentions(&instance, &c, None).await,
            Err(SendError::TokenExpired {
                network: "mastodon"
            })
        );

        fake.fail_next(403);
        assert_eq!(
            client
                .send(
                    &instance,
                    &c,
                    &public(&status, "ola"),
                    "public",
                    VECINA,
                    "k"
                )
                .await,
            Err(SendError::PermissionMissing {
                network: "mastodon",
                permission: "write:statuses".into()
            })
        );

        let error = client
            .send(
                &instance,
                &c,
                &public("999999", "ola"),
                "public",
                VECINA,
                "k",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, SendError::Rejected { reason, .. } if reason.contains("no longer exists") && reason.contains("does not appear to exist")),
            "{error}"
        );
        assert!(!error.is_retryable());

        for status_code in [500, 502, 503] {
            fake.fail_next(status_code);
            let error = client
                .send(
                    &instance,
                    &c,
                    &public(&status, "ola"),
                    "public",
                    VECINA,
                    "k",
                )
                .await
                .unwrap_err();
            assert!(matches!(error, SendError::Temporary { .. }), "{error:?}");
            assert!(error.is_retryable());
        }

        fake.fail_next(422);
        assert!(matches!(
            client.send(&instance, &c, &public(&status, "ola"), "public", VECINA, "k").await,
            Err(SendError::Rejected { reason, .. }) if reason == "Validation failed: Text can't be blank"
        ));

        // The failures are spent: the next call goes through.
        assert!(
            client
                .send(
                    &instance,
                    &c,
                    &public(&status, "ola"),
                    "public",
                    VECINA,
                    "k"
                )
                .await
                .is_ok()
        );
        assert_eq!(fake.statuses().len(), 1);

        // A server that is down is temporary.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let down = Instance::parse(&format!("http://127.0.0.1:{port}")).unwrap();
        let error = client.mentions(&down, &c, None).await.unwrap_err();
        assert!(matches!(error, SendError::Temporary { .. }), "{error:?}");
    }

    #[tokio::test]
    async fn too_long_replies_are_refused_and_the_fake_agrees() {
        let (fake, client, instance) = setup().await;
        let c = creds(TOKEN);
        let (_, status) = fake.push_mention(VECINA, "@concello ola", "public", None);
        // "@vecina " counts 8 (the server is not counted): 492 more fit.
        let fits = "a".repeat(492);
        client
            .send(
                &instance,
                &c,
                &public(&status, &fits),
                "public",
                VECINA,
                "k-1",
            )
            .await
            .unwrap();
        let before = fake.requests().len();
        let error = client
            .send(
                &instance,
                &c,
                &public(&status, &format!("{fits}b")),
                "public",
                VECINA,
                "k-2",
            )
            .await
            .unwrap_err();
        assert!(
            matches!(&error, SendError::Rejected { reason, .. } if reason.contains("too long for Mastodon") && reason.contains("1 more than the 500")),
            "{error}"
        );
        assert_eq!(fake.requests().len(), before, "Mastodon is not called");

        // The fake refuses it as Mastodon does, for JSON and form bodies.
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/statuses", fake.base_url()))
            .bearer_auth(TOKEN)
            .json(&json!({"status": "x".repeat(501)}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422);
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "Validation failed: Text character limit of 500 exceeded"})
        );
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/statuses", fake.base_url()))
            .bearer_auth(TOKEN)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("idempotency-key", "form-1")
            .body(format!(
                "status=Ola+%26+adeus&visibility=unlisted&in_reply_to_id={status}"
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let created: Value = response.json().await.unwrap();
        assert_eq!(created["visibility"], "unlisted");
        assert_eq!(created["in_reply_to_id"], json!(status));
        assert_eq!(created["content"], "<p>Ola &amp; adeus</p>");
        assert_eq!(fake.statuses().last().unwrap().text, "Ola & adeus");
    }

    #[tokio::test]
    async fn publish_posts_a_public_status_once() {
        let (fake, client, instance) = setup().await;
        let c = creds(TOKEN);
        let post = Post {
            text: "Corte de auga mañá no centro.".into(),
            link: Some("https://concello.example/avisos/auga".into()),
            image_url: Some("https://concello.example/auga.jpg".into()),
        };
        let sent = client.publish(&instance, &c, &post, None).await.unwrap();
        let request = fake.requests().pop().unwrap();
        assert_eq!(
            request.body,
            Some(json!({
                "status": "Corte de auga mañá no centro.\n\nhttps://concello.example/avisos/auga",
                "visibility": "public"
            }))
        );
        assert!(
            request
                .idempotency_key
                .unwrap()
                .starts_with("ventanilla-post-")
        );
        // The same announcement again within the hour is the same status.
        assert_eq!(
            client.publish(&instance, &c, &post, None).await.unwrap(),
            sent
        );
        assert_eq!(fake.statuses().len(), 1);
        let content = get(
            &fake,
            &format!("/api/v1/statuses/{}", sent.platform_id),
            Some(TOKEN),
        )
        .await;
        let content: Value = content.json().await.unwrap();
        assert_eq!(
            mastodon::html_to_text(content["content"].as_str().unwrap()),
            "Corte de auga mañá no centro.\n\nhttps://concello.example/avisos/auga"
        );
        // With an explicit key (another publication), a new status.
        let other = client
            .publish(&instance, &c, &post, Some("publication-2"))
            .await
            .unwrap();
        assert_ne!(other, sent);
        assert_eq!(
            fake.requests().pop().unwrap().idempotency_key.as_deref(),
            Some("publication-2")
        );
        assert_eq!(fake.statuses().len(), 2);
        assert!(
            fake.statuses()
                .iter()
                .all(|s| s.visibility == "public" && s.in_reply_to_id.is_none())
        );
    }
}
