//! A local fake of X's API v2, and signed Account Activity deliveries, for
//! the tests, the simulator and the benchmark. Never used against X.
//!
//! [`FakeX`] serves, at `http://127.0.0.1:<port>`, the calls
//! [`crate::x::XClient`] makes, with X's request and answer shapes:
//! - `POST /2/tweets` (a post, or a reply with `reply.in_reply_to_tweet_id`;
//!   unknown fields, such as a top-level `in_reply_to_tweet_id`, are refused
//!   with 400 as X's schema check does; duplicate text 403) → 201
//!   `{"data":{"id","text","edit_history_tweet_ids"}}`;
//! - `POST /2/dm_conversations/with/:participant_id/messages` → 201
//!   `{"data":{"dm_conversation_id":"<low id>-<high id>","dm_event_id"}}`;
//! - `GET /2/users/:id/mentions` over the mentions queued with
//!   [`FakeX::push_mention`], newest first, with `since_id`,
//!   `max_results` (5–100, default 10), `pagination_token`, the requested
//!   `tweet.fields` only, `expansions=author_id` and `meta`.
//!
//! Every answer carries `x-rate-limit-*` headers for a per-token window
//! (300 calls per 15 minutes unless [`FakeX::set_rate_limit`] says
//! otherwise; over it, a real 429). Calls need a `Bearer` token registered
//! with [`FakeX::allow_token`] (else 401). [`FakeX::fail_next`] injects a
//! failure into the next call; [`FakeX::requests`] lists what was received.
//!
//! The webhook side: [`signed_webhook`] signs a payload as X does,
//! [`mention_event`] and [`dm_event`] build payloads in the v1.1 shapes of
//! Zammad's recorded deliveries, and [`crc_check`] checks a CRC answer the
//! way X does. Signatures here are computed independently of
//! [`crate::x`], so the tests check one against the other.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, TimeZone as _, Utc};
use hmac::{Hmac, KeyInit as _, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

/// X's epoch for snowflake ids, in Unix milliseconds.
const SNOWFLAKE_EPOCH_MS: i64 = 1_288_834_974_657;

/// The rate-limit window, in seconds.
const WINDOW_SECS: i64 = 15 * 60;

/// A failure to inject into the next call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// 429 `Too Many Requests`, with `x-rate-limit-remaining: 0` and
    /// `x-rate-limit-reset` this many seconds from now.
    RateLimited {
        /// Seconds until the reset the headers announce.
        reset_in_secs: u64,
    },
    /// 401 with X's v2 problem body (an expired or revoked token).
    Unauthorized,
    /// 403: "You attempted to reply to a Tweet that is deleted or not
    /// visible to you."
    ReplyNotAllowed,
    /// 403 `client-not-enrolled` (the app lacks the access level).
    NotEnrolled,
    /// 503 Service Unavailable.
    ServerError,
}

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `GET`, `POST`…
    pub method: String,
    /// The path, e.g. `/2/tweets`.
    pub path: String,
    /// The query parameters, decoded, in order.
    pub query: Vec<(String, String)>,
    /// The body, if it was JSON.
    pub body: Option<Value>,
    /// The `Authorization` header, as sent.
    pub authorization: Option<String>,
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

/// A post the fake knows: posted through it, or a queued mention.
#[derive(Debug, Clone)]
struct Tweet {
    id: u64,
    author_id: String,
    text: String,
    conversation_id: u64,
    /// The post answered and its author.
    replied_to: Option<(u64, Option<String>)>,
    /// The user whose mentions timeline lists it.
    mentioned: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Registered tokens → their user id.
    tokens: HashMap<String, String>,
    /// Known users → (username, name).
    users: HashMap<String, (String, String)>,
    requests: Vec<Recorded>,
    failures: VecDeque<Failure>,
    tweets: Vec<Tweet>,
    last_id: u64,
    limit: Option<u32>,
    /// Per token: (window reset, Unix seconds; calls in the window).
    windows: HashMap<String, (i64, u32)>,
}

impl Shared {
    /// A new snowflake id, later than every earlier one.
    fn next_id(&mut self) -> u64 {
        let now = Utc::now().timestamp_millis() - SNOWFLAKE_EPOCH_MS;
        let from_clock = u64::try_from(now.max(0)).unwrap_or(0) << 22;
        self.last_id = from_clock.max(self.last_id + 1);
        self.last_id
    }

    fn tweet(&self, id: u64) -> Option<&Tweet> {
        self.tweets.iter().find(|t| t.id == id)
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake X API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeX {
    /// Where it listens: `http://127.0.0.1:<port>` (give it to
    /// [`crate::x::XClient::new`]).
    pub base_url: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeX {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Starts a fake X API on a free local port.
///
/// # Panics
///
/// If no local port can be bound (the tests cannot run then).
pub async fn start() -> FakeX {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
        Ok(listener) => listener,
        Err(e) => panic!("the fake X API cannot bind a local port: {e}"),
    };
    let address = match listener.local_addr() {
        Ok(address) => address,
        Err(e) => panic!("the fake X API has no local address: {e}"),
    };
    let shared = Arc::new(Mutex::new(Shared {
        limit: Some(300),
        ..Shared::default()
    }));
    let app = Router::new()
        .fallback(handle)
        .with_state(Arc::clone(&shared));
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!(error = %e, "the fake X API stopped");
        }
    });
    FakeX {
        base_url: format!("http://{address}"),
        shared,
        server,
    }
}

impl FakeX {
    /// Accepts `token` as the OAuth 2.0 user token of the user `user_id`.
    pub fn allow_token(&self, token: &str, user_id: &str) {
        lock(&self.shared)
            .tokens
            .insert(token.to_owned(), user_id.to_owned());
    }

    /// Sets how many calls a token may make per 15-minute window (`None`:
    /// no limit; the headers then say 4294967295).
    pub fn set_rate_limit(&self, limit: Option<u32>) {
        let mut shared = lock(&self.shared);
        shared.limit = limit;
        shared.windows.clear();
    }

    /// Makes the next call (whatever it is) fail this way; several queue up.
    pub fn fail_next(&self, failure: Failure) {
        lock(&self.shared).failures.push_back(failure);
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.clone()
    }

    /// Queues a post by `author_id` (`@username`) mentioning the user
    /// `mentioned_user_id`, answering the post `in_reply_to` if given (its
    /// conversation and author are carried on when the fake knows the post;
    /// an unknown one is taken as a post of the mentioned user's), and
    /// returns its id (a snowflake later than every earlier id).
    pub fn push_mention(
        &self,
        mentioned_user_id: &str,
        author_id: &str,
        username: &str,
        text: &str,
        in_reply_to: Option<&str>,
    ) -> String {
        let mut shared = lock(&self.shared);
        let id = shared.next_id();
        let replied_to = in_reply_to.and_then(|r| r.parse::<u64>().ok()).map(|r| {
            let author = shared.tweet(r).map(|t| t.author_id.clone());
            (r, author)
        });
        let conversation_id = match replied_to {
            Some((parent, _)) => shared.tweet(parent).map_or(parent, |t| t.conversation_id),
            None => id,
        };
        shared
            .users
            .entry(author_id.to_owned())
            .or_insert_with(|| (username.to_owned(), username.to_owned()));
        shared.tweets.push(Tweet {
            id,
            author_id: author_id.to_owned(),
            text: text.to_owned(),
            conversation_id,
            replied_to,
            mentioned: Some(mentioned_user_id.to_owned()),
        });
        id.to_string()
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

fn problem(status: StatusCode, title: &str, detail: &str) -> (StatusCode, Value) {
    (
        status,
        json!({"title": title, "detail": detail, "type": "about:blank", "status": status.as_u16()}),
    )
}

fn invalid_request(message: String) -> (StatusCode, Value) {
    (
        StatusCode::BAD_REQUEST,
        json!({
            "errors": [{"message": message}],
            "title": "Invalid Request",
            "detail": "One or more parameters to your request was invalid.",
            "type": "https://api.twitter.com/2/problems/invalid-request"
        }),
    )
}

fn failure_answer(failure: &Failure) -> (StatusCode, Value, Option<i64>) {
    match failure {
        Failure::RateLimited { reset_in_secs } => {
            let (status, body) = problem(
                StatusCode::TOO_MANY_REQUESTS,
                "Too Many Requests",
                "Too Many Requests",
            );
            let reset = Utc::now().timestamp() + i64::try_from(*reset_in_secs).unwrap_or(0);
            (status, body, Some(reset))
        }
        Failure::Unauthorized => {
            let (status, body) = problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
            (status, body, None)
        }
        Failure::ReplyNotAllowed => {
            let (status, body) = problem(
                StatusCode::FORBIDDEN,
                "Forbidden",
                "You attempted to reply to a Tweet that is deleted or not visible to you.",
            );
            (status, body, None)
        }
        Failure::NotEnrolled => (
            StatusCode::FORBIDDEN,
            json!({
                "client_id": "29402810",
                "detail": "When authenticating requests to the Twitter API v2 endpoints, you must use keys and tokens from a Twitter developer App that is attached to a Project. You can create a project via the developer portal.",
                "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
                "title": "Client Forbidden",
                "required_enrollment": "Appropriate Level of API Access",
                "reason": "client-not-enrolled",
                "type": "https://api.twitter.com/2/problems/client-forbidden"
            }),
            None,
        ),
        Failure::ServerError => {
            let (status, body) = problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "Service Unavailable",
            );
            (status, body, None)
        }
    }
}

fn with_rate_headers(mut response: Response, limit: u32, remaining: u32, reset: i64) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        ("x-rate-limit-limit", limit.to_string()),
        ("x-rate-limit-remaining", remaining.to_string()),
        ("x-rate-limit-reset", reset.to_string()),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body.to_string(),
    )
        .into_response()
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
    let json_body: Option<Value> = serde_json::from_slice(&body).ok();
    shared.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: query.clone(),
        body: json_body.clone(),
        authorization: authorization.clone(),
    });

    let now = Utc::now().timestamp();
    if let Some(failure) = shared.failures.pop_front() {
        let (status, body, reset) = failure_answer(&failure);
        let response = json_response(status, &body);
        return match reset {
            Some(reset) => with_rate_headers(response, shared.limit.unwrap_or(u32::MAX), 0, reset),
            None => response,
        };
    }

    let token = authorization
        .as_deref()
        .and_then(|a| a.strip_prefix("Bearer "))
        .map(str::trim);
    let Some((token, user_id)) =
        token.and_then(|t| shared.tokens.get(t).map(|u| (t.to_owned(), u.clone())))
    else {
        let (status, body) = problem(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized");
        return json_response(status, &body);
    };

    // The token's window.
    let limit = shared.limit;
    let window = shared
        .windows
        .entry(token)
        .or_insert((now + WINDOW_SECS, 0));
    if window.0 <= now {
        *window = (now + WINDOW_SECS, 0);
    }
    let (reset, used) = *window;
    let shown_limit = limit.unwrap_or(u32::MAX);
    if limit.is_some_and(|l| used >= l) {
        let (status, body) = problem(
            StatusCode::TOO_MANY_REQUESTS,
            "Too Many Requests",
            "Too Many Requests",
        );
        return with_rate_headers(json_response(status, &body), shown_limit, 0, reset);
    }
    window.1 = used + 1;
    let remaining = shown_limit.saturating_sub(used + 1);

    let path = uri.path().trim_end_matches('/');
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (status, body) = match (method.clone(), segments.as_slice()) {
        (Method::POST, ["2", "tweets"]) => create_tweet(&mut shared, &user_id, json_body),
        (Method::POST, ["2", "dm_conversations", "with", participant, "messages"]) => {
            send_dm(&mut shared, &user_id, participant, json_body)
        }
        (Method::GET, ["2", "users", id, "mentions"]) => mentions(&shared, id, &query),
        _ => (
            StatusCode::NOT_FOUND,
            json!({"errors": [{"message": "Sorry, that page does not exist", "code": 34}]}),
        ),
    };
    with_rate_headers(json_response(status, &body), shown_limit, remaining, reset)
}

fn unknown_fields(
    object: &serde_json::Map<String, Value>,
    allowed: &[&str],
    at: &str,
) -> Option<String> {
    object
        .keys()
        .find(|k| !allowed.contains(&k.as_str()))
        .map(|k| {
            format!("{at}.{k}: is not defined in the schema and the schema does not allow additional properties")
        })
}

fn is_numeric_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit())
}

/// `POST /2/tweets`.
fn create_tweet(shared: &mut Shared, user_id: &str, body: Option<Value>) -> (StatusCode, Value) {
    const FIELDS: &[&str] = &[
        "text",
        "reply",
        "media",
        "quote_tweet_id",
        "poll",
        "reply_settings",
        "for_super_followers_only",
        "direct_message_deep_link",
        "geo",
        "nullcast",
        "card_uri",
        "community_id",
        "made_with_ai",
        "paid_partnership",
        "share_with_followers",
    ];
    const REPLY_FIELDS: &[&str] = &[
        "in_reply_to_tweet_id",
        "exclude_reply_user_ids",
        "auto_populate_reply_metadata",
    ];
    let Some(Value::Object(body)) = body else {
        return invalid_request("the request body is not a JSON object".into());
    };
    if let Some(message) = unknown_fields(&body, FIELDS, "$") {
        return invalid_request(message);
    }
    let text = match body.get("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => text.clone(),
        Some(Value::String(_)) | None if body.contains_key("media") => String::new(),
        _ => return invalid_request("$.text: a non-empty string is required".into()),
    };
    if crate::x::weighted_length(&text) > crate::x::MAX_POST_LENGTH {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Your Tweet text is too long. For more information on how Twitter determines text length see https://github.com/twitter/twitter-text.",
        );
    }
    let replied_to = match body.get("reply") {
        None => None,
        Some(Value::Object(reply)) => {
            if let Some(message) = unknown_fields(reply, REPLY_FIELDS, "$.reply") {
                return invalid_request(message);
            }
            match reply.get("in_reply_to_tweet_id").and_then(Value::as_str) {
                Some(id) if is_numeric_id(id) => id.parse::<u64>().ok(),
                _ => {
                    return invalid_request(
                        "$.reply.in_reply_to_tweet_id: a post id is required".into(),
                    );
                }
            }
        }
        Some(_) => return invalid_request("$.reply: must be an object".into()),
    };
    if !text.is_empty()
        && shared
            .tweets
            .iter()
            .any(|t| t.author_id == user_id && t.text == text && t.mentioned.is_none())
    {
        return problem(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "You are not allowed to create a Tweet with duplicate content.",
        );
    }
    let id = shared.next_id();
    let replied_to = replied_to.map(|parent| {
        let author = shared.tweet(parent).map(|t| t.author_id.clone());
        (parent, author)
    });
    let conversation_id = match replied_to {
        Some((parent, _)) => shared.tweet(parent).map_or(parent, |t| t.conversation_id),
        None => id,
    };
    shared.tweets.push(Tweet {
        id,
        author_id: user_id.to_owned(),
        text: text.clone(),
        conversation_id,
        replied_to,
        mentioned: None,
    });
    (
        StatusCode::CREATED,
        json!({"data": {"id": id.to_string(), "text": text, "edit_history_tweet_ids": [id.to_string()]}}),
    )
}

/// `POST /2/dm_conversations/with/:participant_id/messages`.
fn send_dm(
    shared: &mut Shared,
    user_id: &str,
    participant: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    if !is_numeric_id(participant) {
        return invalid_request(format!(
            "The `participant_id` path parameter value [{participant}] is not valid"
        ));
    }
    if participant == user_id {
        return invalid_request("You cannot send a Direct Message to yourself".into());
    }
    let Some(Value::Object(body)) = body else {
        return invalid_request("the request body is not a JSON object".into());
    };
    if let Some(message) = unknown_fields(&body, &["text", "attachments"], "$") {
        return invalid_request(message);
    }
    let text = body.get("text").and_then(Value::as_str).unwrap_or_default();
    let attachments = body
        .get("attachments")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    if text.is_empty() && attachments == 0 {
        return invalid_request("$: one of text or attachments is required".into());
    }
    if attachments > 1 {
        return invalid_request("$.attachments: at most 1 attachment is allowed".into());
    }
    if text.chars().count() > crate::x::MAX_DM_LENGTH {
        return invalid_request("$.text: must be at most 10000 characters".into());
    }
    let (a, b) = match (user_id.parse::<u64>(), participant.parse::<u64>()) {
        (Ok(u), Ok(p)) if u > p => (participant, user_id),
        _ => (user_id, participant),
    };
    let event_id = shared.next_id();
    (
        StatusCode::CREATED,
        json!({"data": {"dm_conversation_id": format!("{a}-{b}"), "dm_event_id": event_id.to_string()}}),
    )
}

fn snowflake_time(id: u64) -> DateTime<Utc> {
    let ms = i64::try_from(id >> 22).unwrap_or(0) + SNOWFLAKE_EPOCH_MS;
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// `GET /2/users/:id/mentions`.
fn mentions(shared: &Shared, user: &str, query: &[(String, String)]) -> (StatusCode, Value) {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    if !is_numeric_id(user) {
        return invalid_request(format!(
            "The `id` query parameter value [{user}] is not valid"
        ));
    }
    let max_results = match param("max_results") {
        None => 10,
        Some(m) => match m.parse::<usize>() {
            Ok(n) if (5..=100).contains(&n) => n,
            _ => {
                return invalid_request(format!(
                    "The `max_results` query parameter value [{m}] is not between 5 and 100"
                ));
            }
        },
    };
    let bound = |name: &str| match param(name) {
        None => Ok(None),
        Some(v) => v.parse::<u64>().map(Some).map_err(|_| {
            invalid_request(format!(
                "The `{name}` query parameter value [{v}] is not valid"
            ))
        }),
    };
    let since_id = match bound("since_id") {
        Ok(v) => v,
        Err(e) => return e,
    };
    let until_id = match bound("until_id") {
        Ok(v) => v,
        Err(e) => return e,
    };
    let below = match param("pagination_token") {
        None => None,
        Some(token) => match token
            .strip_prefix("7140dibd")
            .and_then(|t| u64::from_str_radix(t, 36).ok())
        {
            Some(id) => Some(id),
            None => {
                return invalid_request(format!(
                    "The `pagination_token` query parameter value [{token}] is not valid"
                ));
            }
        },
    };
    let fields: HashSet<&str> = param("tweet.fields")
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    let expand_authors =
        param("expansions").is_some_and(|e| e.split(',').any(|x| x == "author_id"));

    let mut matching: Vec<&Tweet> = shared
        .tweets
        .iter()
        .filter(|t| t.mentioned.as_deref() == Some(user))
        .filter(|t| since_id.is_none_or(|s| t.id > s))
        .filter(|t| until_id.is_none_or(|u| t.id < u))
        .filter(|t| below.is_none_or(|b| t.id < b))
        .collect();
    matching.sort_by_key(|t| std::cmp::Reverse(t.id));
    let more = matching.len() > max_results;
    matching.truncate(max_results);

    if matching.is_empty() {
        return (StatusCode::OK, json!({"meta": {"result_count": 0}}));
    }
    let data: Vec<Value> = matching
        .iter()
        .map(|t| {
            let mut tweet = json!({
                "id": t.id.to_string(),
                "text": t.text,
                "edit_history_tweet_ids": [t.id.to_string()],
            });
            let mut set = |field: &str, value: Value| {
                if fields.contains(field) {
                    tweet[field] = value;
                }
            };
            set("author_id", json!(t.author_id));
            set("conversation_id", json!(t.conversation_id.to_string()));
            set(
                "created_at",
                json!(
                    snowflake_time(t.id)
                        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
                        .to_string()
                ),
            );
            if let Some((parent, parent_author)) = &t.replied_to {
                set(
                    "referenced_tweets",
                    json!([{"type": "replied_to", "id": parent.to_string()}]),
                );
                set(
                    "in_reply_to_user_id",
                    json!(parent_author.clone().unwrap_or_else(|| user.to_owned())),
                );
            }
            tweet
        })
        .collect();
    let mut body = json!({"data": data});
    if expand_authors {
        let mut seen = HashSet::new();
        let users: Vec<Value> = matching
            .iter()
            .filter(|t| seen.insert(t.author_id.clone()))
            .map(|t| {
                let (username, name) = shared
                    .users
                    .get(&t.author_id)
                    .cloned()
                    .unwrap_or_else(|| (format!("user{}", t.author_id), String::new()));
                json!({"id": t.author_id, "username": username, "name": name})
            })
            .collect();
        body["includes"] = json!({"users": users});
    }
    let newest = matching.first().map(|t| t.id.to_string());
    let oldest = matching.last().map(|t| t.id);
    let mut meta = json!({
        "result_count": matching.len(),
        "newest_id": newest,
        "oldest_id": oldest.map(|o| o.to_string()),
    });
    if more && let Some(oldest) = oldest {
        meta["next_token"] = json!(format!("7140dibd{}", to_base36(oldest)));
    }
    body["meta"] = meta;
    (StatusCode::OK, body)
}

fn to_base36(mut n: u64) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[usize::try_from(n % 36).unwrap_or(0)]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------

fn sign(consumer_secret: &str, message: &[u8]) -> String {
    let mut mac = match Hmac::<Sha256>::new_from_slice(consumer_secret.as_bytes()) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    };
    mac.update(message);
    format!("sha256={}", BASE64.encode(mac.finalize().into_bytes()))
}

/// An Account Activity delivery as X sends it: the body bytes, and the
/// value of its `x-twitter-webhooks-signature` header
/// (`sha256=<base64 HMAC-SHA256(consumer secret, body)>`).
pub fn signed_webhook(consumer_secret: &str, payload: &Value) -> (Vec<u8>, String) {
    let body = payload.to_string().into_bytes();
    let signature = sign(consumer_secret, &body);
    (body, signature)
}

/// Checks a webhook's answer to X's CRC as X does: a JSON body whose
/// `response_token` is `sha256=<base64 HMAC-SHA256(consumer secret,
/// crc_token)>`.
pub fn crc_check(consumer_secret: &str, crc_token: &str, response_body: &[u8]) -> bool {
    serde_json::from_slice::<Value>(response_body)
        .ok()
        .and_then(|v| v.get("response_token")?.as_str().map(str::to_owned))
        .is_some_and(|token| token == sign(consumer_secret, crc_token.as_bytes()))
}

fn v1_created_at(timestamp_ms: i64) -> String {
    Utc.timestamp_millis_opt(timestamp_ms)
        .single()
        .unwrap_or_default()
        .format("%a %b %d %H:%M:%S +0000 %Y")
        .to_string()
}

/// A `tweet_create_events` delivery for the account `for_user_id`: the
/// post `tweet_id` by `user_id` (`@screen_name`) saying `text`, answering
/// `in_reply_to_status_id` if given (then a reply to the account's post),
/// in the v1.1 shape of Zammad's recorded deliveries.
pub fn mention_event(
    for_user_id: &str,
    tweet_id: &str,
    text: &str,
    user_id: &str,
    screen_name: &str,
    in_reply_to_status_id: Option<&str>,
    timestamp_ms: i64,
) -> Value {
    json!({
        "for_user_id": for_user_id,
        "user_has_blocked": false,
        "tweet_create_events": [{
            "created_at": v1_created_at(timestamp_ms),
            "id": tweet_id.parse::<u64>().ok(),
            "id_str": tweet_id,
            "text": text,
            "source": "<a href=\"https://mobile.twitter.com\" rel=\"nofollow\">Twitter Web App</a>",
            "truncated": false,
            "in_reply_to_status_id": in_reply_to_status_id.and_then(|i| i.parse::<u64>().ok()),
            "in_reply_to_status_id_str": in_reply_to_status_id,
            "in_reply_to_user_id": for_user_id.parse::<u64>().ok(),
            "in_reply_to_user_id_str": for_user_id,
            "user": {
                "id": user_id.parse::<u64>().ok(),
                "id_str": user_id,
                "name": screen_name,
                "screen_name": screen_name,
            },
            "is_quote_status": false,
            "retweet_count": 0,
            "favorite_count": 0,
            "entities": {
                "hashtags": [], "urls": [], "symbols": [],
                "user_mentions": [{"id_str": for_user_id, "indices": [0, 11]}]
            },
            "favorited": false,
            "retweeted": false,
            "filter_level": "low",
            "lang": "es",
            "timestamp_ms": timestamp_ms.to_string(),
        }]
    })
}

/// A `direct_message_events` delivery for the account `for_user_id`: the
/// DM event `event_id` from `sender_id` (`@screen_name`) to
/// `recipient_id` saying `text`, in the shape of Zammad's recorded
/// deliveries.
pub fn dm_event(
    for_user_id: &str,
    event_id: &str,
    sender_id: &str,
    recipient_id: &str,
    screen_name: &str,
    text: &str,
    created_timestamp_ms: i64,
) -> Value {
    json!({
        "for_user_id": for_user_id,
        "direct_message_events": [{
            "type": "message_create",
            "id": event_id,
            "created_timestamp": created_timestamp_ms.to_string(),
            "message_create": {
                "target": {"recipient_id": recipient_id},
                "sender_id": sender_id,
                "message_data": {
                    "text": text,
                    "entities": {"hashtags": [], "symbols": [], "user_mentions": [], "urls": []}
                }
            }
        }],
        "users": {
            sender_id: {
                "id": sender_id,
                "created_timestamp": "1576206816000",
                "name": screen_name,
                "screen_name": screen_name,
                "protected": false,
                "verified": false,
                "followers_count": 0,
                "friends_count": 1,
                "statuses_count": 3,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::connector::{
        Credentials, OutboundReply, Post, ReplyTarget, SendError, WebhookError,
    };
    use crate::x::{self, XClient};
    use secrecy::SecretString;
    use ventanilla_social_domain::inbound::MessageKind;

    const ACCOUNT: &str = "2975699229";
    const CITIZEN: &str = "1205290247124217856";
    const TOKEN: &str = "user-token-1";

    fn creds(token: &str) -> Credentials {
        Credentials {
            external_id: ACCOUNT.into(),
            access_token: SecretString::from(token.to_owned()),
            signing_secret: SecretString::from("consumer-secret".to_owned()),
            verify_token: SecretString::from(String::new()),
            human_agent: false,
        }
    }

    async fn setup() -> (FakeX, XClient) {
        let fake = start().await;
        fake.allow_token(TOKEN, ACCOUNT);
        let client = XClient::new(fake.base_url.clone(), reqwest::Client::new());
        (fake, client)
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

    fn direct(text: &str) -> OutboundReply {
        OutboundReply {
            target: ReplyTarget::Direct {
                recipient: CITIZEN.into(),
                last_inbound_at: Utc::now() - chrono::Duration::days(30),
            },
            text: text.into(),
            now: Utc::now(),
        }
    }

    #[tokio::test]
    async fn a_reply_carries_in_reply_to_inside_reply() {
        let (fake, client) = setup().await;
        let mention = fake.push_mention(ACCOUNT, CITIZEN, "vecina", "@ayto hay un bache", None);
        let sent = client
            .send(
                &creds(TOKEN),
                &public(&mention, "@vecina Gracias, lo revisamos."),
            )
            .await
            .unwrap();
        assert_eq!(sent.platform_id.len(), 19);
        assert!(sent.platform_id > mention);

        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let request = &requests[0];
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/2/tweets");
        assert_eq!(
            request.authorization.as_deref(),
            Some("Bearer user-token-1")
        );
        let body = request.body.as_ref().unwrap();
        assert_eq!(body["reply"]["in_reply_to_tweet_id"], json!(mention));
        assert_eq!(body["text"], "@vecina Gracias, lo revisamos.");
        assert!(body.get("in_reply_to_tweet_id").is_none());
    }

    #[tokio::test]
    async fn the_fake_refuses_a_top_level_in_reply_to_tweet_id() {
        let fake = start().await;
        fake.allow_token(TOKEN, ACCOUNT);
        let response = reqwest::Client::new()
            .post(format!("{}/2/tweets", fake.base_url))
            .bearer_auth(TOKEN)
            .json(&json!({"text": "hola", "in_reply_to_tweet_id": "1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400);
        let body: Value = response.json().await.unwrap();
        assert!(
            body["errors"][0]["message"]
                .as_str()
                .unwrap()
                .contains("in_reply_to_tweet_id")
        );
    }

    #[tokio::test]
    async fn answers_carry_rate_limit_headers_and_the_limit_is_enforced() {
        let fake = start().await;
        fake.allow_token(TOKEN, ACCOUNT);
        fake.set_rate_limit(Some(2));
        let call = || async {
            reqwest::Client::new()
                .post(format!("{}/2/tweets", fake.base_url))
                .bearer_auth(TOKEN)
                .json(&json!({"text": format!("aviso {}", Utc::now().timestamp_nanos_opt().unwrap())}))
                .send()
                .await
                .unwrap()
        };
        let first = call().await;
        assert_eq!(first.status(), 201);
        let limit = x::rate_limit(first.headers()).unwrap();
        assert_eq!((limit.limit, limit.remaining), (2, 1));
        assert!(limit.reset > Utc::now());
        call().await;

        let client = XClient::new(fake.base_url.clone(), reqwest::Client::new());
        let result = client
            .publish(
                &creds(TOKEN),
                &Post {
                    text: "otro aviso".into(),
                    link: None,
                    ..Post::default()
                },
            )
            .await;
        assert_eq!(
            result,
            Err(SendError::RateLimited {
                network: "x",
                until: limit.reset
            })
        );
    }

    #[tokio::test]
    async fn a_dm_goes_to_the_participant_path() {
        let (fake, client) = setup().await;
        let sent = client
            .send(
                &creds(TOKEN),
                &direct("Hola, ¿nos pasa su número de expediente?"),
            )
            .await
            .unwrap();
        let request = &fake.requests()[0];
        assert_eq!(
            request.path,
            format!("/2/dm_conversations/with/{CITIZEN}/messages")
        );
        assert_eq!(
            request.body,
            Some(json!({"text": "Hola, ¿nos pasa su número de expediente?"}))
        );
        assert!(sent.platform_id.bytes().all(|b| b.is_ascii_digit()));
    }

    #[tokio::test]
    async fn publish_appends_the_link() {
        let (fake, client) = setup().await;
        let post = Post {
            text: "Corte de agua mañana en el centro.".into(),
            link: Some("https://ayto.example/avisos/agua".into()),
            ..Post::default()
        };
        let sent = client.publish(&creds(TOKEN), &post).await.unwrap();
        let request = &fake.requests()[0];
        assert_eq!(
            request.body,
            Some(
                json!({"text": "Corte de agua mañana en el centro. https://ayto.example/avisos/agua"})
            )
        );
        assert_eq!(sent.platform_id.len(), 19);
        // X refuses the same text twice.
        assert!(matches!(
            client.publish(&creds(TOKEN), &post).await,
            Err(SendError::Rejected { reason, .. }) if reason.contains("duplicate")
        ));
    }

    #[tokio::test]
    async fn mentions_polling_honours_since_id_and_pages() {
        let (fake, client) = setup().await;
        let c = creds(TOKEN);
        let (messages, newest, next) = client.mentions(&c, None, None).await.unwrap();
        assert!(messages.is_empty());
        assert_eq!((newest, next), (None, None));

        let ours = fake.push_mention("999", "1", "otra", "@otra_cuenta hola", None);
        let first = fake.push_mention(ACCOUNT, CITIZEN, "vecina", "@ayto hay un bache", None);
        let second = fake.push_mention(ACCOUNT, "77", "otro", "@vecina @ayto cierto", Some(&first));
        let (messages, newest, next) = client.mentions(&c, None, None).await.unwrap();
        assert_eq!(next, None);
        assert_eq!(newest.as_deref(), Some(second.as_str()));
        let ids: Vec<&str> = messages.iter().map(|m| m.platform_id.as_str()).collect();
        assert_eq!(ids, [second.as_str(), first.as_str()]);
        assert!(!ids.contains(&ours.as_str()));
        assert_eq!(messages[0].thread, first);
        assert_eq!(messages[0].in_reply_to.as_deref(), Some(first.as_str()));
        // A reply to a citizen's post that mentions the account.
        assert_eq!(messages[0].kind, MessageKind::Mention);
        assert_eq!(messages[0].author.handle.as_deref(), Some("@otro"));
        assert_eq!(messages[1].author.handle.as_deref(), Some("@vecina"));

        let request = fake.requests().pop().unwrap();
        assert_eq!(request.path, format!("/2/users/{ACCOUNT}/mentions"));
        assert_eq!(request.query_param("max_results"), Some("100"));
        assert_eq!(request.query_param("expansions"), Some("author_id"));
        assert!(
            request
                .query_param("tweet.fields")
                .unwrap()
                .contains("conversation_id")
        );

        // Only newer ones after since_id.
        let third = fake.push_mention(ACCOUNT, CITIZEN, "vecina", "@ayto ¿alguna novedad?", None);
        let (messages, newest, _) = client.mentions(&c, Some(&second), None).await.unwrap();
        assert_eq!(messages.len(), 1);
        assert_eq!(messages[0].platform_id, third);
        assert_eq!(newest.as_deref(), Some(third.as_str()));
        let (messages, newest, _) = client.mentions(&c, Some(&third), None).await.unwrap();
        assert!(messages.is_empty());
        assert_eq!(newest, None);

        // 120 more: a page of 100, then one of 20.
        let pushed: Vec<String> = (0..120)
            .map(|i| fake.push_mention(ACCOUNT, CITIZEN, "vecina", &format!("@ayto {i}"), None))
            .collect();
        let (page1, newest, next) = client.mentions(&c, Some(&third), None).await.unwrap();
        assert_eq!(page1.len(), 100);
        assert_eq!(newest.as_deref(), pushed.last().map(String::as_str));
        let token = next.unwrap();
        let (page2, _, next) = client
            .mentions(&c, Some(&third), Some(&token))
            .await
            .unwrap();
        assert_eq!(page2.len(), 20);
        assert_eq!(next, None);
        let mut all: Vec<String> = page1
            .iter()
            .chain(&page2)
            .map(|m| m.platform_id.clone())
            .collect();
        all.reverse();
        assert_eq!(all, pushed);
    }

    #[tokio::test]
    async fn injected_failures_map_to_send_errors() {
        let (fake, client) = setup().await;
        let c = creds(TOKEN);

        fake.fail_next(Failure::RateLimited { reset_in_secs: 120 });
        let before = Utc::now().timestamp();
        let result = client
            .send(&c, &public("1900000000000000001", "hola"))
            .await;
        let after = Utc::now().timestamp();
        match result {
            Err(SendError::RateLimited {
                network: "x",
                until,
            }) => {
                assert!((before + 120..=after + 120).contains(&until.timestamp()));
                assert_eq!(until.timestamp_subsec_nanos(), 0);
            }
            other => panic!("{other:?}"),
        }

        fake.fail_next(Failure::Unauthorized);
        assert_eq!(
            client.send(&c, &direct("hola")).await,
            Err(SendError::TokenExpired { network: "x" })
        );

        fake.fail_next(Failure::ReplyNotAllowed);
        assert!(matches!(
            client.send(&c, &public("1900000000000000001", "hola")).await,
            Err(SendError::Rejected { network: "x", reason }) if reason.contains("deleted or not visible")
        ));

        fake.fail_next(Failure::NotEnrolled);
        assert_eq!(
            client.send(&c, &direct("hola")).await,
            Err(SendError::PermissionMissing {
                network: "x",
                permission: "dm.write".into()
            })
        );
        fake.fail_next(Failure::NotEnrolled);
        assert_eq!(
            client
                .send(&c, &public("1900000000000000001", "hola"))
                .await,
            Err(SendError::PermissionMissing {
                network: "x",
                permission: "tweet.write".into()
            })
        );

        fake.fail_next(Failure::ServerError);
        let error = client.mentions(&c, None, None).await.unwrap_err();
        assert!(matches!(error, SendError::Temporary { network: "x", .. }));
        assert!(error.is_retryable());

        // The failures are spent: the next call goes through.
        assert!(client.send(&c, &direct("hola")).await.is_ok());
    }

    #[tokio::test]
    async fn an_unknown_token_is_an_expired_token_and_never_shown() {
        let (_fake, client) = setup().await;
        let error = client
            .send(&creds("revoked-token-xyz"), &direct("hola"))
            .await
            .unwrap_err();
        assert_eq!(error, SendError::TokenExpired { network: "x" });
        assert!(!error.to_string().contains("revoked-token-xyz"));
        assert!(!format!("{:?}", creds("revoked-token-xyz")).contains("revoked-token-xyz"));
    }

    #[tokio::test]
    async fn a_server_that_is_down_is_temporary() {
        // A port that was free a moment ago and nobody listens on.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = XClient::new(format!("http://127.0.0.1:{port}"), reqwest::Client::new());
        let error = client
            .send(&creds(TOKEN), &direct("hola"))
            .await
            .unwrap_err();
        assert!(matches!(error, SendError::Temporary { .. }), "{error:?}");
        assert!(error.is_retryable());
    }

    #[test]
    fn signed_mentions_verify_and_parse() {
        let secret = SecretString::from("consumer-secret".to_owned());
        let payload = mention_event(
            ACCOUNT,
            "1900000000000000002",
            "@ayto la farola de mi calle no funciona",
            CITIZEN,
            "vecina",
            Some("1900000000000000001"),
            1_700_000_000_000,
        );
        let (body, signature) = signed_webhook("consumer-secret", &payload);
        assert_eq!(
            x::verify_signature(&secret, &body, Some(&signature)),
            Ok(())
        );
        assert_eq!(
            x::verify_signature(
                &SecretString::from("other".to_owned()),
                &body,
                Some(&signature)
            ),
            Err(WebhookError::BadSignature)
        );
        let delivery = x::parse(&body, ACCOUNT).unwrap();
        assert_eq!(delivery.messages.len(), 1);
        let message = &delivery.messages[0];
        assert_eq!(message.kind, MessageKind::Reply);
        assert_eq!(message.platform_id, "1900000000000000002");
        assert_eq!(message.in_reply_to.as_deref(), Some("1900000000000000001"));
        assert_eq!(message.author.handle.as_deref(), Some("@vecina"));
        assert_eq!(
            message.sent_at,
            Utc.timestamp_millis_opt(1_700_000_000_000).unwrap()
        );

        let plain = mention_event(ACCOUNT, "5", "@ayto hola", CITIZEN, "vecina", None, 1);
        let (body, _) = signed_webhook("consumer-secret", &plain);
        assert_eq!(
            x::parse(&body, ACCOUNT).unwrap().messages[0].kind,
            MessageKind::Mention
        );
    }

    #[test]
    fn signed_dms_verify_and_parse_and_our_own_are_dropped() {
        let secret = SecretString::from("consumer-secret".to_owned());
        let payload = dm_event(
            ACCOUNT,
            "1206724334791753732",
            CITIZEN,
            ACCOUNT,
            "vecina",
            "Buenos días, quería pedir cita",
            1_576_540_475_925,
        );
        let (body, signature) = signed_webhook("consumer-secret", &payload);
        assert_eq!(
            x::verify_signature(&secret, &body, Some(&signature)),
            Ok(())
        );
        let delivery = x::parse(&body, ACCOUNT).unwrap();
        let message = &delivery.messages[0];
        assert_eq!(message.kind, MessageKind::Direct);
        assert_eq!(message.thread, CITIZEN);
        assert_eq!(message.platform_id, "1206724334791753732");
        assert_eq!(message.author.name.as_deref(), Some("vecina"));

        let echo = dm_event(ACCOUNT, "2", ACCOUNT, CITIZEN, "ayto", "Hola", 1);
        let (body, _) = signed_webhook("consumer-secret", &echo);
        let delivery = x::parse(&body, ACCOUNT).unwrap();
        assert!(delivery.messages.is_empty());
        assert_eq!(delivery.ignored, 1);
    }

    #[test]
    fn the_crc_answer_passes_xs_check() {
        let secret = SecretString::from("consumer-secret".to_owned());
        let answer = x::crc_response(&secret, "crc-token-from-x");
        assert!(crc_check(
            "consumer-secret",
            "crc-token-from-x",
            answer.as_bytes()
        ));
        assert!(!crc_check(
            "other-secret",
            "crc-token-from-x",
            answer.as_bytes()
        ));
        assert!(!crc_check(
            "consumer-secret",
            "another-token",
            answer.as_bytes()
        ));
    }
}
