//! A fake Graph API for tests, the simulator and the benchmark: a local
//! HTTP server answering the Send API (`POST /v25.0/{page_id}/messages`),
//! comment replies (`POST /v25.0/{comment_id}/comments`, and Instagram's
//! `/replies`), Page posts (`POST /v25.0/{page_id}/feed`) and Page photo
//! posts by URL (`POST /v25.0/{page_id}/photos`) with Graph's
//! real request checks, success shapes and error bodies; recording every
//! request; failing on demand ([`Failure`]) the way Graph fails. Plus
//! signed webhook deliveries serialised byte for byte the way Meta sends
//! them ([`signed_webhook`]) and builders of their payloads.
//!
//! It is never used against a real network. Tokens are only accepted in
//! the `Authorization` header: a token in the query string or the body is
//! refused, so a client leaking tokens into URLs fails its tests.

use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Map, Value, json};

use crate::meta::signature_header;

/// The Graph API version the fake serves (its base URL ends with it).
pub const VERSION: &str = "v25.0";

/// The longest Messenger text Graph accepts.
const MAX_TEXT_CHARS: usize = 2000;

/// Tags Graph accepts with `messaging_type: "MESSAGE_TAG"`.
const MESSAGE_TAGS: [&str; 4] = [
    "HUMAN_AGENT",
    "ACCOUNT_UPDATE",
    "CONFIRMED_EVENT_UPDATE",
    "POST_PURCHASE_UPDATE",
];

/// A failure to answer the next request with, as Graph answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 400 with code 80001 (the Business Use Case limit of Page
    /// tokens: "There have been too many calls to this Page account") and
    /// an `X-Business-Use-Case-Usage` header at 100 % whose
    /// `estimated_time_to_regain_access` is `retry_minutes`.
    RateLimited {
        /// Minutes until the limit lifts.
        retry_minutes: u32,
    },
    /// HTTP 400, `OAuthException` code 190, subcode 463 (the session
    /// expired), with Graph's `WWW-Authenticate` header.
    TokenExpired,
    /// HTTP 400, code 10, subcode 2018278: a message outside the allowed
    /// window.
    OutsideWindow,
    /// HTTP 500, code 2, `is_transient: true`.
    ServerError,
    /// HTTP 403, code 200: the permission the endpoint needs is missing
    /// (named in the message, as Graph does).
    PermissionMissing,
    /// HTTP 400, `GraphMethodException` code 100, subcode 33: the object
    /// does not exist (a deleted comment or post).
    ObjectMissing,
}

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The HTTP method (`POST`).
    pub method: String,
    /// The path, e.g. `/v25.0/1029384756/messages`.
    pub path: String,
    /// The query parameters, decoded, in order (they must never carry a
    /// token).
    pub query: Vec<(String, String)>,
    /// The `Authorization` header as sent (kept for assertions: it is a
    /// test token).
    pub authorization: Option<String>,
    /// The `Content-Type` header.
    pub content_type: Option<String>,
    /// The body: the JSON sent, or a form's fields as a JSON object;
    /// `None` when empty or unreadable.
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

#[derive(Debug, Default)]
struct Inner {
    tokens: HashSet<String>,
    requests: Vec<Recorded>,
    failures: VecDeque<Failure>,
    usage_percent: Option<u32>,
    next_id: u64,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(state: &Shared) -> MutexGuard<'_, Inner> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake Graph API. Clones share the same server and records;
/// the server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct FakeGraph {
    /// The base URL to give [`crate::meta::GraphClient`]:
    /// `http://127.0.0.1:<port>/v25.0`.
    pub base_url: String,
    state: Shared,
    _server: Arc<Server>,
}

/// Stops the server task when dropped.
#[derive(Debug)]
struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts a fake Graph API ([`FakeGraph::start`]).
///
/// # Panics
/// If no local port can be bound (a test environment problem).
pub async fn start() -> FakeGraph {
    FakeGraph::start().await
}

impl FakeGraph {
    /// Starts the fake on 127.0.0.1 on a free port, serving on a tokio
    /// task of the current runtime.
    ///
    /// # Panics
    /// If no local port can be bound (a test environment problem).
    pub async fn start() -> FakeGraph {
        let state = Shared::default();
        let app = Router::new()
            .route(&format!("/{VERSION}/{{id}}/messages"), post(messages))
            .route(&format!("/{VERSION}/{{id}}/comments"), post(comments))
            .route(&format!("/{VERSION}/{{id}}/replies"), post(comments))
            .route(&format!("/{VERSION}/{{id}}/feed"), post(feed))
            .route(&format!("/{VERSION}/{{id}}/photos"), post(photos))
            .fallback(unknown_path)
            .with_state(state.clone());
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("the fake Graph API cannot bind a local port: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("the fake Graph API has no local address: {e}"),
        };
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the fake Graph API stopped");
            }
        });
        FakeGraph {
            base_url: format!("http://{addr}/{VERSION}"),
            state,
            _server: Arc::new(Server(server)),
        }
    }

    /// Accepts `token` as a valid Page (or Instagram) access token from now
    /// on. Any other token is refused with code 190.
    pub fn allow_token(&self, token: &str) {
        lock(&self.state).tokens.insert(token.to_owned());
    }

    /// Every request received so far, in order (including refused ones).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// Answers the next request with `failure` (failures queue up: each is
    /// used once, in order).
    pub fn fail_next(&self, failure: Failure) {
        lock(&self.state).failures.push_back(failure);
    }

    /// Reports this usage (percent) in an `X-Business-Use-Case-Usage`
    /// header on every answer from now on, as Graph does once enough
    /// calls were made; `None` stops reporting it.
    pub fn report_usage(&self, percent: Option<u32>) {
        lock(&self.state).usage_percent = percent;
    }
}

/// The Graph edges the fake serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Edge {
    Messages,
    Comments,
    Feed,
    Photos,
}

async fn messages(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(
        &state,
        Some((Edge::Messages, id)),
        &method,
        &uri,
        &headers,
        &body,
    )
}

async fn comments(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(
        &state,
        Some((Edge::Comments, id)),
        &method,
        &uri,
        &headers,
        &body,
    )
}

async fn feed(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(
        &state,
        Some((Edge::Feed, id)),
        &method,
        &uri,
        &headers,
        &body,
    )
}

async fn photos(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(
        &state,
        Some((Edge::Photos, id)),
        &method,
        &uri,
        &headers,
        &body,
    )
}

async fn unknown_path(
    State(state): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&state, None, &method, &uri, &headers, &body)
}

/// Records the request, then answers it as Graph would.
fn handle(
    state: &Shared,
    edge: Option<(Edge, String)>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Response {
    let text_header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = text_header(header::CONTENT_TYPE);
    let parsed = read_body(content_type.as_deref(), body);
    let mut inner = lock(state);
    inner.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: decode_query(uri.query()),
        authorization: text_header(header::AUTHORIZATION),
        content_type,
        body: parsed
            .clone()
            .filter(|b| b.as_object().is_none_or(|o| !o.is_empty())),
    });
    inner.next_id += 1;
    let n = inner.next_id;
    let trace = format!("AFake{n:08}");
    let usage = inner.usage_percent;
    let failure = inner.failures.pop_front();
    let token_known = bearer(headers).map(|t| inner.tokens.contains(t));
    drop(inner);

    let Some((edge, id)) = edge else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            2500,
            None,
            &format!("Unknown path components: {}", uri.path()),
            &trace,
        );
    };
    if let Some(failure) = failure {
        return failure_response(&failure, edge, &id, &trace);
    }
    let token_in_url = decode_query(uri.query())
        .iter()
        .any(|(k, _)| k == "access_token");
    let token_in_body = parsed
        .as_ref()
        .is_some_and(|b| b.get("access_token").is_some());
    if token_in_url || token_in_body {
        // Graph would accept it; the fake refuses it, because a token in a
        // URL or a body ends up in logs.
        return graph_error(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            190,
            None,
            "The fake Graph API only accepts tokens in the Authorization header",
            &trace,
        );
    }
    match token_known {
        None => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "OAuthException",
                104,
                None,
                "An access token is required to request this resource.",
                &trace,
            );
        }
        Some(false) => {
            return graph_error(
                StatusCode::BAD_REQUEST,
                "OAuthException",
                190,
                None,
                "Invalid OAuth access token - Cannot parse access token",
                &trace,
            );
        }
        Some(true) => {}
    }
    let Some(Value::Object(params)) = parsed else {
        return graph_error(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            100,
            None,
            "(#100) The request body could not be read",
            &trace,
        );
    };
    let result = match edge {
        Edge::Messages => send_message(&params, n),
        Edge::Comments => reply_to_comment(&id, &params, n),
        Edge::Feed => publish(&id, &params, n),
        Edge::Photos => publish_photo(&id, &params, n),
    };
    let mut response = match result {
        Ok(answer) => (StatusCode::OK, axum::Json(answer)).into_response(),
        Err(message) => graph_error(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            100,
            None,
            &message,
            &trace,
        ),
    };
    if let Some(percent) = usage {
        let value = buc_usage(&id, percent, 0);
        if let Ok(value) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert("x-business-use-case-usage", value);
        }
    }
    response
}

/// The token of `Authorization: Bearer <token>` (Graph also takes
/// `OAuth <token>`).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (["bearer", "oauth"].contains(&scheme.to_ascii_lowercase().as_str()) && !token.is_empty())
        .then_some(token)
}

/// The query string's parameters, decoded.
fn decode_query(query: Option<&str>) -> Vec<(String, String)> {
    let Some(query) = query else {
        return Vec::new();
    };
    reqwest::Url::parse(&format!("http://query.invalid/?{query}"))
        .map(|url| {
            url.query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// The body as JSON, or a form's fields as a JSON object (Graph accepts
/// both; JSON-valued form fields such as `recipient={"id":…}` are decoded
/// too). An empty body is an empty object.
fn read_body(content_type: Option<&str>, body: &[u8]) -> Option<Value> {
    let content_type = content_type.unwrap_or_default().to_ascii_lowercase();
    if body.is_empty() {
        return Some(Value::Object(Map::new()));
    }
    if content_type.starts_with("application/x-www-form-urlencoded") {
        let text = std::str::from_utf8(body).ok()?;
        let url = reqwest::Url::parse(&format!("http://form.invalid/?{text}")).ok()?;
        let fields = url
            .query_pairs()
            .map(|(k, v)| {
                let value = if v.starts_with('{') {
                    serde_json::from_str(&v).unwrap_or_else(|_| Value::from(v.as_ref()))
                } else {
                    Value::from(v.as_ref())
                };
                (k.into_owned(), value)
            })
            .collect();
        return Some(Value::Object(fields));
    }
    serde_json::from_slice(body).ok()
}

fn non_empty_str<'a>(params: &'a Map<String, Value>, field: &str) -> Option<&'a str> {
    params
        .get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// The Send API: `{"recipient":{"id"},"messaging_type","message":{"text"},
/// "tag"?}` → `{"recipient_id","message_id"}`.
fn send_message(params: &Map<String, Value>, n: u64) -> Result<Value, String> {
    let recipient = params
        .get("recipient")
        .and_then(|r| r.get("id"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or("(#100) The parameter recipient is required")?;
    let messaging_type = non_empty_str(params, "messaging_type").ok_or(
        "(#100) The parameter messaging_type is required: RESPONSE, UPDATE or MESSAGE_TAG",
    )?;
    match messaging_type {
        "RESPONSE" | "UPDATE" => {}
        "MESSAGE_TAG" => {
            let tag = non_empty_str(params, "tag")
                .ok_or("(#100) Tag is required for MESSAGE_TAG messaging type")?;
            if !MESSAGE_TAGS.contains(&tag) {
                return Err(format!("(#100) Param tag must be one of {MESSAGE_TAGS:?}"));
            }
        }
        other => {
            return Err(format!(
                "(#100) Param messaging_type must be one of RESPONSE, UPDATE, MESSAGE_TAG, not {other}"
            ));
        }
    }
    let message = params
        .get("message")
        .filter(|m| m.is_object())
        .ok_or("(#100) The parameter message is required")?;
    match (message.get("text"), message.get("attachment")) {
        (Some(Value::String(text)), _) if !text.is_empty() => {
            if text.chars().count() > MAX_TEXT_CHARS {
                return Err(format!(
                    "(#100) Length of param message[text] must be less than or equal to {MAX_TEXT_CHARS}"
                ));
            }
        }
        (None, Some(attachment)) if attachment.is_object() => {}
        _ => {
            return Err("(#100) param message[text] must be non-empty UTF-8 encoded string".into());
        }
    }
    Ok(json!({
        "recipient_id": recipient,
        "message_id": format!("m_fake{n:012}"),
    }))
}

/// A reply under a comment: `message` → `{"id"}`, the new comment's id in
/// the same post as the one answered (`<post>_<n>`).
fn reply_to_comment(id: &str, params: &Map<String, Value>, n: u64) -> Result<Value, String> {
    if non_empty_str(params, "message").is_none()
        && non_empty_str(params, "attachment_url").is_none()
    {
        return Err("(#100) Missing message or attachment".into());
    }
    let post = id.rsplit_once('_').map_or(id, |(post, _)| post);
    Ok(json!({ "id": format!("{post}_{n}") }))
}

/// A Page post: `message` and/or `link` → `{"id":"<page>_<n>"}`.
fn publish(page: &str, params: &Map<String, Value>, n: u64) -> Result<Value, String> {
    if non_empty_str(params, "message").is_none() && non_empty_str(params, "link").is_none() {
        return Err("(#100) Either message or link must be set".into());
    }
    Ok(json!({ "id": format!("{page}_{n}") }))
}

/// A Page photo post by URL: `url` (and a `caption`) →
/// `{"id":"<photo>","post_id":"<page>_<n>"}`. Graph fetches the image; the
/// fake only checks it is an http(s) URL.
fn publish_photo(page: &str, params: &Map<String, Value>, n: u64) -> Result<Value, String> {
    let Some(url) = non_empty_str(params, "url") else {
        return Err("(#100) No photo was uploaded: set url or source".into());
    };
    if !(url.starts_with("https://") || url.starts_with("http://")) {
        return Err("(#100) url should represent a valid URL".into());
    }
    Ok(json!({ "id": format!("{n}"), "post_id": format!("{page}_{n}") }))
}

/// Graph's error answer.
fn graph_error(
    status: StatusCode,
    kind: &str,
    code: i64,
    subcode: Option<i64>,
    message: &str,
    trace: &str,
) -> Response {
    let mut error = json!({
        "message": message,
        "type": kind,
        "code": code,
        "fbtrace_id": trace,
    });
    if let (Some(subcode), Value::Object(error)) = (subcode, &mut error) {
        error.insert("error_subcode".to_owned(), Value::from(subcode));
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

/// The `X-Business-Use-Case-Usage` value for the object `id`.
fn buc_usage(id: &str, percent: u32, regain_minutes: u32) -> String {
    let owner = id.split('_').next().unwrap_or(id);
    json!({ owner: [{
        "type": "pages",
        "call_count": percent,
        "total_cputime": percent / 2,
        "total_time": percent / 2,
        "estimated_time_to_regain_access": regain_minutes,
    }]})
    .to_string()
}

fn failure_response(failure: &Failure, edge: Edge, id: &str, trace: &str) -> Response {
    match failure {
        Failure::RateLimited { retry_minutes } => {
            let mut response = graph_error(
                StatusCode::BAD_REQUEST,
                "OAuthException",
                80_001,
                None,
                "There have been too many calls to this Page account. Wait a bit and try again. For more info, please refer to https://developers.facebook.com/docs/graph-api/overview/rate-limiting.",
                trace,
            );
            if let Ok(value) = HeaderValue::from_str(&buc_usage(id, 100, *retry_minutes)) {
                response
                    .headers_mut()
                    .insert("x-business-use-case-usage", value);
            }
            response
        }
        Failure::TokenExpired => {
            let message = "Error validating access token: Session has expired on Thursday, 01-Jan-26 00:00:00 PST. The current time is Friday, 02-Jan-26 00:00:00 PST.";
            let mut response = graph_error(
                StatusCode::BAD_REQUEST,
                "OAuthException",
                190,
                Some(463),
                message,
                trace,
            );
            let www = format!("OAuth \"Facebook Platform\" \"invalid_token\" \"{message}\"");
            if let Ok(value) = HeaderValue::from_str(&www) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            response
        }
        Failure::OutsideWindow => graph_error(
            StatusCode::BAD_REQUEST,
            "OAuthException",
            10,
            Some(2_018_278),
            "(#10) This message is sent outside of allowed window. Learn more about the new policy here: https://developers.facebook.com/docs/messenger-platform/policy-overview",
            trace,
        ),
        Failure::ServerError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            axum::Json(json!({"error":{
                "message":"An unexpected error has occurred. Please retry your request later.",
                "type":"OAuthException","code":2,"is_transient":true,"fbtrace_id":trace}})),
        )
            .into_response(),
        Failure::PermissionMissing => {
            let message = match edge {
                Edge::Messages => "(#200) Requires pages_messaging permission to manage the object",
                Edge::Comments => {
                    "(#200) Requires pages_manage_engagement permission to manage the object"
                }
                Edge::Feed | Edge::Photos => {
                    "(#200) If posting to a page, requires both pages_read_engagement and pages_manage_posts permission with page token"
                }
            };
            graph_error(
                StatusCode::FORBIDDEN,
                "OAuthException",
                200,
                None,
                message,
                trace,
            )
        }
        Failure::ObjectMissing => graph_error(
            StatusCode::BAD_REQUEST,
            "GraphMethodException",
            100,
            Some(33),
            &format!(
                "Unsupported post request. Object with ID '{id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api"
            ),
            trace,
        ),
    }
}

// ---------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------

/// A webhook delivery as Meta sends it: the body bytes (compact JSON, with
/// non-ASCII escaped as `\uXXXX` in lowercase hex, characters beyond the
/// BMP as surrogate pairs, and `/` as `\/`) and the `X-Hub-Signature-256`
/// value (for the [`crate::meta::SIGNATURE_HEADER`] header) signing exactly
/// those bytes with `app_secret`.
pub fn signed_webhook(app_secret: &str, payload: &Value) -> (Vec<u8>, String) {
    let mut body = String::new();
    write_meta_json(payload, &mut body);
    let body = body.into_bytes();
    let signature = signature_header(app_secret.as_bytes(), &body);
    (body, signature)
}

fn write_meta_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::String(s) => write_meta_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_meta_json(item, out);
            }
            out.push(']');
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (key, item)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_meta_string(key, out);
                out.push(':');
                write_meta_json(item, out);
            }
            out.push('}');
        }
    }
}

fn write_meta_string(s: &str, out: &mut String) {
    use std::fmt::Write as _;
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '/' => out.push_str("\\/"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if c.is_ascii() && !c.is_ascii_control() => out.push(c),
            c => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    // Writing to a String cannot fail.
                    let _ = write!(out, "\\u{unit:04x}");
                }
            }
        }
    }
    out.push('"');
}

/// A Messenger text message from `psid` to the Page `page_id`
/// (`object: "page"`, `entry[].messaging[]`).
pub fn messenger_message(
    page_id: &str,
    psid: &str,
    mid: &str,
    text: &str,
    timestamp_ms: i64,
) -> Value {
    json!({"object":"page","entry":[{"id":page_id,"time":timestamp_ms,"messaging":[{
        "sender":{"id":psid},"recipient":{"id":page_id},"timestamp":timestamp_ms,
        "message":{"mid":mid,"text":text}}]}]})
}

/// A comment event on the Page's feed (`field: "feed"`, `item:
/// "comment"`), `verb` being `add`, `edited` or `remove` (which carries no
/// message), `created_time` in seconds. A top-level comment: its
/// `parent_id` is the post.
#[allow(clippy::too_many_arguments, reason = "mirrors the payload's fields")]
pub fn feed_comment(
    page_id: &str,
    post_id: &str,
    comment_id: &str,
    from_id: &str,
    from_name: &str,
    message: &str,
    verb: &str,
    created_time: i64,
) -> Value {
    let mut value = json!({
        "from":{"id":from_id,"name":from_name},
        "item":"comment","comment_id":comment_id,"post_id":post_id,"parent_id":post_id,
        "verb":verb,"created_time":created_time,
    });
    if verb != "remove"
        && let Value::Object(fields) = &mut value
    {
        fields.insert("message".to_owned(), Value::from(message));
    }
    json!({"object":"page","entry":[{"id":page_id,"time":created_time,
        "changes":[{"field":"feed","value":value}]}]})
}

/// An Instagram direct message from `igsid` to the account `ig_id`
/// (`object: "instagram"`, `entry[].messaging[]`).
pub fn instagram_message(
    ig_id: &str,
    igsid: &str,
    mid: &str,
    text: &str,
    timestamp_ms: i64,
) -> Value {
    json!({"object":"instagram","entry":[{"id":ig_id,"time":timestamp_ms,"messaging":[{
        "sender":{"id":igsid},"recipient":{"id":ig_id},"timestamp":timestamp_ms,
        "message":{"mid":mid,"text":text}}]}]})
}

/// A comment on the account's media (`object: "instagram"`, `field:
/// "comments"`), `time` in seconds (the entry's: Instagram's comment
/// carries no time of its own).
pub fn instagram_comment(
    ig_id: &str,
    media_id: &str,
    comment_id: &str,
    from_id: &str,
    from_username: &str,
    text: &str,
    time: i64,
) -> Value {
    json!({"object":"instagram","entry":[{"id":ig_id,"time":time,"changes":[{"field":"comments",
        "value":{"from":{"id":from_id,"username":from_username},
        "media":{"id":media_id,"media_product_type":"FEED"},"id":comment_id,"text":text}}]}]})
}

/// One delivery batching the entries of several payloads of the same
/// `object` (Meta batches up to 1000 updates).
pub fn batch(payloads: &[Value]) -> Value {
    let object = payloads
        .first()
        .and_then(|p| p.get("object"))
        .cloned()
        .unwrap_or(Value::Null);
    let entries: Vec<Value> = payloads
        .iter()
        .filter_map(|p| p.get("entry").and_then(Value::as_array))
        .flatten()
        .cloned()
        .collect();
    json!({ "object": object, "entry": entries })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::connector::{Credentials, OutboundReply, Post, ReplyTarget, SendError};
    use crate::meta::{self, GraphClient};
    use chrono::{DateTime, TimeDelta, Utc};
    use secrecy::SecretString;
    use ventanilla_social_domain::inbound::MessageKind;

    const PAGE: &str = "1029384756";
    const TOKEN: &str = "EAAfake-page-token";

    fn creds(human_agent: bool) -> Credentials {
        Credentials {
            external_id: PAGE.into(),
            access_token: SecretString::from(TOKEN.to_owned()),
            signing_secret: SecretString::from("app-secret".to_owned()),
            verify_token: SecretString::from("verify".to_owned()),
            human_agent,
        }
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_767_261_600, 0).unwrap()
    }

    fn direct(hours_ago: i64, text: &str) -> OutboundReply {
        OutboundReply {
            target: ReplyTarget::Direct {
                recipient: "5550001".into(),
                last_inbound_at: now() - TimeDelta::hours(hours_ago),
            },
            text: text.into(),
            now: now(),
        }
    }

    fn public(comment: &str) -> OutboundReply {
        OutboundReply {
            target: ReplyTarget::Public {
                in_reply_to: comment.into(),
            },
            text: "Gracias, lo revisamos".into(),
            now: now(),
        }
    }

    async fn setup() -> (FakeGraph, GraphClient) {
        let fake = FakeGraph::start().await;
        fake.allow_token(TOKEN);
        let client = GraphClient::new(fake.base_url.clone(), reqwest::Client::new());
        (fake, client)
    }

    #[tokio::test]
    async fn a_reply_within_24_hours_is_a_response() {
        let (fake, client) = setup().await;
        let sent = client
            .send(&creds(false), &direct(23, "Ya está anotado / gracias"))
            .await
            .unwrap();
        assert!(sent.platform_id.starts_with("m_"), "{sent:?}");

        let requests = fake.requests();
        assert_eq!(requests.len(), 1);
        let r = &requests[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.path, format!("/v25.0/{PAGE}/messages"));
        assert!(r.query.is_empty());
        assert_eq!(
            r.authorization.as_deref(),
            Some("Bearer EAAfake-page-token")
        );
        assert_eq!(
            r.body,
            Some(
                json!({"recipient":{"id":"5550001"},"messaging_type":"RESPONSE",
                   "message":{"text":"Ya está anotado / gracias"}})
            )
        );
    }

    #[tokio::test]
    async fn after_24_hours_without_human_agent_nothing_is_sent() {
        let (fake, client) = setup().await;
        let result = client.send(&creds(false), &direct(72, "hola")).await;
        assert_eq!(
            result,
            Err(SendError::OutsideWindow {
                network: "facebook",
                hours: 24
            })
        );
        assert!(fake.requests().is_empty());
    }

    #[tokio::test]
    async fn within_7_days_with_human_agent_the_tag_is_used() {
        let (fake, client) = setup().await;
        client
            .send(&creds(true), &direct(72, "Seguimos con su caso"))
            .await
            .unwrap();
        let body = fake.requests()[0].body.clone().unwrap();
        assert_eq!(body["messaging_type"], "MESSAGE_TAG");
        assert_eq!(body["tag"], "HUMAN_AGENT");
        assert_eq!(body["message"]["text"], "Seguimos con su caso");

        // and past 7 days, not even with it
        let result = client.send(&creds(true), &direct(169, "x")).await;
        assert_eq!(
            result,
            Err(SendError::OutsideWindow {
                network: "facebook",
                hours: 168
            })
        );
        assert_eq!(fake.requests().len(), 1);
    }

    #[tokio::test]
    async fn a_comment_is_answered_under_it() {
        let (fake, client) = setup().await;
        let sent = client
            .send(&creds(false), &public("444_555"))
            .await
            .unwrap();
        assert_eq!(sent.platform_id.split('_').next(), Some("444"));
        // an edited comment's recorded id answers the comment itself
        client
            .send(&creds(false), &public("444_555:edited:1767262000"))
            .await
            .unwrap();
        let requests = fake.requests();
        for r in &requests {
            assert_eq!(r.path, "/v25.0/444_555/comments");
            assert_eq!(r.body, Some(json!({"message":"Gracias, lo revisamos"})));
        }
        assert_eq!(requests.len(), 2);
    }

    #[tokio::test]
    async fn instagram_comments_are_answered_with_replies() {
        let fake = FakeGraph::start().await;
        fake.allow_token(TOKEN);
        let client = GraphClient::instagram(fake.base_url.clone(), reqwest::Client::new());
        client
            .send(&creds(false), &public("17800000000000001"))
            .await
            .unwrap();
        assert_eq!(fake.requests()[0].path, "/v25.0/17800000000000001/replies");
        let refused = client
            .publish(
                &creds(false),
                &Post {
                    text: "x".into(),
                    link: None,
                    ..Post::default()
                },
            )
            .await;
        assert!(matches!(
            refused,
            Err(SendError::Rejected {
                network: "instagram",
                ..
            })
        ));
        assert_eq!(fake.requests().len(), 1);
    }

    #[tokio::test]
    async fn an_announcement_is_published_on_the_page() {
        let (fake, client) = setup().await;
        let sent = client
            .publish(
                &creds(false),
                &Post {
                    text: "Corte de agua el martes".into(),
                    link: Some("https://ayto.example/avisos/1".into()),
                    ..Post::default()
                },
            )
            .await
            .unwrap();
        assert!(
            sent.platform_id.starts_with(&format!("{PAGE}_")),
            "{sent:?}"
        );
        let r = &fake.requests()[0];
        assert_eq!(r.path, format!("/v25.0/{PAGE}/feed"));
        assert_eq!(
            r.body,
            Some(
                json!({"message":"Corte de agua el martes","link":"https://ayto.example/avisos/1"})
            )
        );
    }

    #[tokio::test]
    async fn an_announcement_with_an_image_is_a_photo_post() {
        let (fake, client) = setup().await;
        let sent = client
            .publish(
                &creds(false),
                &Post {
                    text: "Corte de agua el martes".into(),
                    link: Some("https://ayto.example/avisos/1".into()),
                    image_url: Some("https://ayto.example/avisos/1.jpg".into()),
                },
            )
            .await
            .unwrap();
        // The post's id (comments name it), not the photo's.
        assert!(
            sent.platform_id.starts_with(&format!("{PAGE}_")),
            "{sent:?}"
        );
        let r = &fake.requests()[0];
        assert_eq!(r.path, format!("/v25.0/{PAGE}/photos"));
        assert_eq!(
            r.body,
            Some(json!({
                "url": "https://ayto.example/avisos/1.jpg",
                "caption": "Corte de agua el martes\n\nhttps://ayto.example/avisos/1"
            }))
        );
        // A caption that already carries the link does not repeat it.
        client
            .publish(
                &creds(false),
                &Post {
                    text: "Aviso\n\nhttps://ayto.example/avisos/1".into(),
                    link: Some("https://ayto.example/avisos/1".into()),
                    image_url: Some("https://ayto.example/avisos/1.jpg".into()),
                },
            )
            .await
            .unwrap();
        assert_eq!(
            fake.requests()[1].body.as_ref().unwrap()["caption"],
            "Aviso\n\nhttps://ayto.example/avisos/1"
        );
    }

    #[tokio::test]
    async fn injected_failures_map_to_send_errors() {
        let (fake, client) = setup().await;
        let c = creds(false);
        let reply = direct(1, "hola");

        fake.fail_next(Failure::RateLimited { retry_minutes: 19 });
        assert_eq!(
            client.send(&c, &reply).await,
            Err(SendError::RateLimited {
                network: "facebook",
                until: now() + TimeDelta::minutes(19)
            })
        );

        fake.fail_next(Failure::TokenExpired);
        assert_eq!(
            client.send(&c, &reply).await,
            Err(SendError::TokenExpired {
                network: "facebook"
            })
        );

        fake.fail_next(Failure::OutsideWindow);
        assert_eq!(
            client.send(&c, &reply).await,
            Err(SendError::OutsideWindow {
                network: "facebook",
                hours: 24
            })
        );

        fake.fail_next(Failure::ServerError);
        let e = client.send(&c, &reply).await.unwrap_err();
        assert!(matches!(e, SendError::Temporary { .. }), "{e:?}");
        assert!(e.is_retryable());

        fake.fail_next(Failure::PermissionMissing);
        assert_eq!(
            client.send(&c, &reply).await,
            Err(SendError::PermissionMissing {
                network: "facebook",
                permission: "pages_messaging".into()
            })
        );
        fake.fail_next(Failure::PermissionMissing);
        assert_eq!(
            client.send(&c, &public("444_555")).await,
            Err(SendError::PermissionMissing {
                network: "facebook",
                permission: "pages_manage_engagement".into()
            })
        );
        fake.fail_next(Failure::PermissionMissing);
        assert_eq!(
            client
                .publish(
                    &c,
                    &Post {
                        text: "x".into(),
                        ..Post::default()
                    }
                )
                .await,
            Err(SendError::PermissionMissing {
                network: "facebook",
                permission: "pages_manage_posts".into()
            })
        );

        fake.fail_next(Failure::ObjectMissing);
        let e = client.send(&c, &public("444_555")).await.unwrap_err();
        match e {
            SendError::Rejected { network, reason } => {
                assert_eq!(network, "facebook");
                assert!(reason.contains("does not exist"), "{reason}");
            }
            other => panic!("{other:?}"),
        }

        // each failure was used once: the next call goes through
        assert!(client.send(&c, &reply).await.is_ok());
        assert_eq!(fake.requests().len(), 9);
    }

    #[tokio::test]
    async fn an_unknown_token_is_an_expired_token() {
        let (fake, client) = setup().await;
        let mut c = creds(false);
        c.access_token = SecretString::from("EAAnot-registered".to_owned());
        let e = client.send(&c, &direct(1, "hola")).await.unwrap_err();
        assert_eq!(
            e,
            SendError::TokenExpired {
                network: "facebook"
            }
        );
        assert!(!e.to_string().contains("EAAnot-registered"));
        assert_eq!(fake.requests().len(), 1);
    }

    #[tokio::test]
    async fn the_fake_checks_the_send_api_shape() {
        let (fake, _) = setup().await;
        let http = reqwest::Client::new();
        let url = format!("{}/{PAGE}/messages", fake.base_url);
        let post = |body: Value| http.post(&url).bearer_auth(TOKEN).json(&body).send();
        let error_code = |v: Value| v["error"]["code"].as_i64();
        for bad in [
            json!({"messaging_type":"RESPONSE","message":{"text":"x"}}),
            json!({"recipient":{"id":"1"},"message":{"text":"x"}}),
            json!({"recipient":{"id":"1"},"messaging_type":"MESSAGE_TAG","message":{"text":"x"}}),
            json!({"recipient":{"id":"1"},"messaging_type":"MESSAGE_TAG","tag":"NOPE","message":{"text":"x"}}),
            json!({"recipient":{"id":"1"},"messaging_type":"RESPONSE","message":{"text":""}}),
            json!({"recipient":{"id":"1"},"messaging_type":"RESPONSE","message":{"text":"x".repeat(2001)}}),
        ] {
            let response = post(bad.clone()).await.unwrap();
            assert_eq!(response.status(), 400, "{bad}");
            assert_eq!(
                error_code(response.json().await.unwrap()),
                Some(100),
                "{bad}"
            );
        }
        let ok = post(
            json!({"recipient":{"id":"1"},"messaging_type":"RESPONSE","message":{"text":"x"}}),
        )
        .await
        .unwrap();
        assert_eq!(ok.status(), 200);
        let answer: Value = ok.json().await.unwrap();
        assert_eq!(answer["recipient_id"], "1");
        assert!(answer["message_id"].as_str().unwrap().starts_with("m_"));

        // no token; a token in the URL
        let response = http
            .post(&url)
            .json(
                &json!({"recipient":{"id":"1"},"messaging_type":"RESPONSE","message":{"text":"x"}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response.json().await.unwrap()), Some(104));
        let response = http
            .post(format!("{url}?access_token={TOKEN}"))
            .json(
                &json!({"recipient":{"id":"1"},"messaging_type":"RESPONSE","message":{"text":"x"}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(error_code(response.json().await.unwrap()), Some(190));
    }

    #[tokio::test]
    async fn usage_is_reported_with_the_answer() {
        let (fake, client) = setup().await;
        fake.report_usage(Some(93));
        let (result, usage) = client
            .send_with_usage(&creds(false), &direct(1, "hola"))
            .await;
        assert!(result.is_ok());
        let usage = usage.unwrap();
        assert_eq!(usage.call_count, 93);
        assert!(usage.near_limit());
    }

    #[tokio::test]
    async fn an_unreachable_graph_is_temporary() {
        // Bind a port, then free it: nothing listens there any more.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let client = GraphClient::new(format!("http://{addr}/v25.0"), reqwest::Client::new());
        let e = client
            .send(&creds(false), &direct(1, "hola"))
            .await
            .unwrap_err();
        assert!(matches!(e, SendError::Temporary { .. }), "{e:?}");
        assert!(e.is_retryable());
        assert!(!e.to_string().contains(TOKEN));
    }

    // -- webhooks ---------------------------------------------------------------

    #[test]
    fn webhooks_are_serialised_as_meta_does() {
        let payload = json!({"text":"est\u{e1} rota / \u{1F6A7} \"ya\"\n"});
        let (body, _) = signed_webhook("s", &payload);
        assert_eq!(
            String::from_utf8(body).unwrap(),
            r#"{"text":"est\u00e1 rota \/ \ud83d\udea7 \"ya\"\n"}"#
        );
    }

    #[test]
    fn signed_webhooks_verify_and_parse() {
        let secret = "app-secret";
        let app_secret = SecretString::from(secret.to_owned());

        let (body, signature) = signed_webhook(
            secret,
            &messenger_message(
                PAGE,
                "5550001",
                "m_1",
                "La calle Mayor está rota",
                1_767_261_600_000,
            ),
        );
        assert!(String::from_utf8_lossy(&body).contains(r"est\u00e1"));
        meta::verify_signature(&app_secret, &body, Some(&signature)).unwrap();
        let delivery = meta::parse(&body, PAGE).unwrap();
        assert_eq!(delivery.messages.len(), 1);
        assert_eq!(delivery.messages[0].text, "La calle Mayor está rota");
        assert_eq!(delivery.messages[0].kind, MessageKind::Direct);

        // a batch of every kind
        let payload = batch(&[
            feed_comment(
                PAGE,
                "1029384756_444",
                "444_1",
                "987",
                "Lucía",
                "Farola rota",
                "add",
                1_767_261_600,
            ),
            feed_comment(
                PAGE,
                "1029384756_444",
                "444_1",
                "987",
                "Lucía",
                "Farola rota ya",
                "edited",
                1_767_261_700,
            ),
            feed_comment(
                PAGE,
                "1029384756_444",
                "444_1",
                "987",
                "Lucía",
                "",
                "remove",
                1_767_261_800,
            ),
            feed_comment(
                PAGE,
                "1029384756_444",
                "444_2",
                PAGE,
                "Ayuntamiento",
                "Gracias",
                "add",
                1_767_261_900,
            ),
        ]);
        let (body, signature) = signed_webhook(secret, &payload);
        meta::verify_signature(&app_secret, &body, Some(&signature)).unwrap();
        let delivery = meta::parse(&body, PAGE).unwrap();
        let ids: Vec<&str> = delivery
            .messages
            .iter()
            .map(|m| m.platform_id.as_str())
            .collect();
        assert_eq!(ids, ["444_1", "444_1:edited:1767261700"]);
        assert_eq!(delivery.removed, ["444_1"]);
        assert_eq!(delivery.ignored, 1);

        let ig = "17841400000000001";
        let payload = batch(&[
            instagram_message(ig, "IGSID-1", "aWdf1", "¿Horario?", 1_767_261_600_000),
            instagram_comment(
                ig,
                "1790",
                "1780",
                "IGSID-2",
                "vecina",
                "¿Poda?",
                1_767_261_600,
            ),
        ]);
        let (body, signature) = signed_webhook(secret, &payload);
        meta::verify_signature(&app_secret, &body, Some(&signature)).unwrap();
        let delivery = meta::parse(&body, ig).unwrap();
        assert_eq!(delivery.messages.len(), 2);
        assert!(delivery.messages.iter().all(|m| m.channel == "instagram"));
        assert_eq!(
            delivery.messages[1].author.handle.as_deref(),
            Some("vecina")
        );

        // a signature from another secret does not verify
        let (_, other) = signed_webhook("other", &payload);
        assert!(meta::verify_signature(&app_secret, &body, Some(&other)).is_err());
    }
}
