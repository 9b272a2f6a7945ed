//! A fake WhatsApp Cloud API for tests, the simulator and the benchmark: a
//! local HTTP server answering `POST /v25.0/{phone-number-id}/messages`
//! (text messages) with the Cloud API's request checks, success shape and
//! error bodies; keeping WhatsApp's 24-hour window per recipient (told when
//! each citizen last wrote with [`FakeWhatsApp::set_last_inbound`]);
//! recording every request and every message it accepted; failing on
//! demand ([`Failure`]) the way the Cloud API fails. Plus builders of the
//! webhook payloads WhatsApp sends, and [`signed_webhook`], which
//! serialises and signs them byte for byte as Meta does (it is
//! [`crate::fake::meta::signed_webhook`]).
//!
//! It is never used against a real network. Tokens are only accepted in
//! the `Authorization` header: a token in the query string or the body is
//! refused, so a client leaking tokens into URLs fails its tests.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Map, Value, json};

pub use crate::fake::meta::Recorded;

/// The Graph API version the fake serves (its base URL ends with it).
pub const VERSION: &str = crate::fake::meta::VERSION;

/// The WhatsApp Business Account id the webhook builders put in
/// `entry[].id`.
pub const WABA_ID: &str = "102290129340398";

/// The display phone number the webhook builders put in `metadata`.
pub const DISPLAY_PHONE_NUMBER: &str = "15550783881";

/// The longest text body the Cloud API accepts, in characters.
const MAX_TEXT_CHARS: usize = 4096;

/// WhatsApp's customer service window.
const WINDOW: TimeDelta = TimeDelta::hours(24);

/// A failure to answer the next request with, as the Cloud API answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 400, code 130429: the Cloud API's message throughput was
    /// reached.
    RateLimited,
    /// HTTP 400, code 131056: too many messages from this number to the
    /// same recipient in a short time.
    PairRateLimited,
    /// HTTP 401, `OAuthException` code 190, subcode 463: the token expired.
    TokenExpired,
    /// HTTP 400, code 131047: more than 24 hours since the citizen last
    /// wrote (whatever the window the fake keeps says).
    OutsideWindow,
    /// HTTP 400, code 131026: the message cannot be delivered.
    Undeliverable,
    /// HTTP 403, code 10: the app lacks the permission.
    PermissionMissing,
    /// HTTP 500, code 131000: something went wrong.
    ServerError,
}

/// A message the fake accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// The phone-number id it was sent from.
    pub phone_number_id: String,
    /// The recipient's `wa_id`.
    pub to: String,
    /// The text.
    pub body: String,
    /// Whether a link preview was asked for.
    pub preview_url: bool,
    /// The `wamid` it answers (`context.message_id`), if any.
    pub context: Option<String>,
    /// The `wamid` the fake gave it.
    pub wamid: String,
}

#[derive(Debug, Default)]
struct Inner {
    tokens: HashSet<String>,
    last_inbound: HashMap<String, DateTime<Utc>>,
    now: Option<DateTime<Utc>>,
    requests: Vec<Recorded>,
    sent: Vec<SentMessage>,
    failures: VecDeque<Failure>,
    next_id: u64,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(state: &Shared) -> MutexGuard<'_, Inner> {
    state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Stops the server task when dropped.
#[derive(Debug)]
struct Server(tokio::task::JoinHandle<()>);

impl Drop for Server {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A running fake Cloud API. Clones share the same server and records; the
/// server stops when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct FakeWhatsApp {
    base_url: String,
    state: Shared,
    _server: Arc<Server>,
}

impl FakeWhatsApp {
    /// Starts the fake on 127.0.0.1 on a free port, serving on a tokio
    /// task of the current runtime.
    ///
    /// # Panics
    /// If no local port can be bound (a test environment problem).
    pub async fn start() -> FakeWhatsApp {
        let state = Shared::default();
        let app = Router::new()
            .route(&format!("/{VERSION}/{{id}}/messages"), post(messages))
            .fallback(unknown_path)
            .with_state(state.clone());
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("the fake WhatsApp Cloud API cannot bind a local port: {e}"),
        };
        let addr = match listener.local_addr() {
            Ok(addr) => addr,
            Err(e) => panic!("the fake WhatsApp Cloud API has no local address: {e}"),
        };
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the fake WhatsApp Cloud API stopped");
            }
        });
        FakeWhatsApp {
            base_url: format!("http://{addr}/{VERSION}"),
            state,
            _server: Arc::new(Server(server)),
        }
    }

    /// The base URL to give [`crate::whatsapp::WhatsAppClient`]:
    /// `http://127.0.0.1:<port>/v25.0`.
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Accepts `token` as a valid system user token from now on. Any other
    /// token is refused with code 190.
    pub fn allow_token(&self, token: &str) {
        lock(&self.state).tokens.insert(token.to_owned());
    }

    /// Records that the citizen `wa_id` last wrote at `at`: messages to them
    /// are accepted until 24 hours later. Messages to a citizen the fake
    /// was not told about, or later, are refused with code 131047, as
    /// WhatsApp refuses free-form messages outside the window.
    pub fn set_last_inbound(&self, wa_id: &str, at: DateTime<Utc>) {
        lock(&self.state).last_inbound.insert(wa_id.to_owned(), at);
    }

    /// The time the fake checks the window against: `Some` fixes it, `None`
    /// (the default) is the system clock.
    pub fn set_now(&self, now: Option<DateTime<Utc>>) {
        lock(&self.state).now = now;
    }

    /// Answers the next request with `failure` (failures queue up: each is
    /// used once, in order).
    pub fn fail_next(&self, failure: Failure) {
        lock(&self.state).failures.push_back(failure);
    }

    /// Every request received so far, in order (including refused ones).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.state).requests.clone()
    }

    /// Every message accepted so far, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        lock(&self.state).sent.clone()
    }
}

async fn messages(
    State(state): State<Shared>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&state, Some(id), &method, &uri, &headers, &body)
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

/// Records the request, then answers it as the Cloud API would.
fn handle(
    state: &Shared,
    phone_number_id: Option<String>,
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
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let query = decode_query(uri.query());
    let mut inner = lock(state);
    inner.requests.push(Recorded {
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: query.clone(),
        authorization: text_header(header::AUTHORIZATION),
        content_type: text_header(header::CONTENT_TYPE),
        body: parsed.clone(),
    });
    inner.next_id += 1;
    let n = inner.next_id;
    let trace = format!("AFakeWa{n:08}");
    let failure = inner.failures.pop_front();
    let token_known = bearer(headers).map(|t| inner.tokens.contains(t));
    let now = inner.now.unwrap_or_else(Utc::now);
    drop(inner);

    let Some(phone_number_id) = phone_number_id else {
        return api_error(
            StatusCode::BAD_REQUEST,
            2500,
            &format!("Unknown path components: {}", uri.path()),
            None,
            &trace,
        );
    };
    if let Some(failure) = failure {
        return failure_response(failure, &trace);
    }
    let token_in_url = query.iter().any(|(k, _)| k == "access_token");
    let token_in_body = parsed
        .as_ref()
        .is_some_and(|b| b.get("access_token").is_some());
    if token_in_url || token_in_body || token_known != Some(true) {
        // The Cloud API would take a token in the query string; the fake
        // refuses it, because a token in a URL ends up in logs.
        let message = if token_in_url || token_in_body {
            "The fake WhatsApp Cloud API only accepts tokens in the Authorization header"
        } else if token_known.is_none() {
            "An access token is required to request this resource."
        } else {
            "Invalid OAuth access token - Cannot parse access token"
        };
        return api_error(StatusCode::UNAUTHORIZED, 190, message, None, &trace);
    }
    let Some(Value::Object(params)) = parsed else {
        return invalid("The request body is not a JSON object", &trace);
    };
    let message = match read_message(&params) {
        Ok(message) => message,
        Err(details) => return invalid(&details, &trace),
    };
    let mut inner = lock(state);
    let within_window = inner
        .last_inbound
        .get(&message.to)
        .is_some_and(|last| now.signed_duration_since(*last) <= WINDOW);
    if !within_window {
        drop(inner);
        return api_error(
            StatusCode::BAD_REQUEST,
            131_047,
            "(#131047) Re-engagement message",
            Some(
                "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
            ),
            &trace,
        );
    }
    let wamid = format!("wamid.HBgLRkFLRV9XQV9NU0cVAgARGBI{n:012}");
    inner.sent.push(SentMessage {
        phone_number_id,
        to: message.to.clone(),
        body: message.body,
        preview_url: message.preview_url,
        context: message.context,
        wamid: wamid.clone(),
    });
    drop(inner);
    (
        StatusCode::OK,
        axum::Json(json!({
            "messaging_product": "whatsapp",
            "contacts": [{ "input": message.to, "wa_id": message.to }],
            "messages": [{ "id": wamid }],
        })),
    )
        .into_response()
}

/// A text message request, checked.
struct TextMessage {
    to: String,
    body: String,
    preview_url: bool,
    context: Option<String>,
}

/// Reads `{"messaging_product":"whatsapp","recipient_type":"individual",
/// "to","type":"text","text":{"body","preview_url"?},"context"?:
/// {"message_id"}}`, or says what is wrong as the Cloud API's `details`.
fn read_message(params: &Map<String, Value>) -> Result<TextMessage, String> {
    let str_field = |field: &str| {
        params
            .get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.trim().is_empty())
    };
    if str_field("messaging_product") != Some("whatsapp") {
        return Err("The parameter messaging_product is required and must be \"whatsapp\".".into());
    }
    match str_field("recipient_type") {
        None | Some("individual") => {}
        Some(other) => {
            return Err(format!(
                "Param recipient_type must be \"individual\", not {other:?}."
            ));
        }
    }
    let to = str_field("to").ok_or("The parameter to is required.")?;
    match str_field("type") {
        None | Some("text") => {}
        Some(other) => {
            return Err(format!(
                "The fake WhatsApp Cloud API only sends text messages, not {other:?}."
            ));
        }
    }
    let text = params
        .get("text")
        .filter(|t| t.is_object())
        .ok_or("The parameter text is required.")?;
    let body = text
        .get("body")
        .and_then(Value::as_str)
        .filter(|b| !b.trim().is_empty())
        .ok_or("The parameter text['body'] is required.")?;
    if body.chars().count() > MAX_TEXT_CHARS {
        return Err(format!(
            "Param text['body'] must be at most {MAX_TEXT_CHARS} characters long."
        ));
    }
    let preview_url = match text.get("preview_url") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err("Param text['preview_url'] must be a boolean.".into()),
    };
    let context = match params.get("context") {
        None => None,
        Some(context) => Some(
            context
                .get("message_id")
                .and_then(Value::as_str)
                .filter(|m| !m.is_empty())
                .ok_or("The parameter context['message_id'] is required.")?
                .to_owned(),
        ),
    };
    Ok(TextMessage {
        to: to.to_owned(),
        body: body.to_owned(),
        preview_url,
        context,
    })
}

/// The token of `Authorization: Bearer <token>`.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
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

/// Code 100, "Invalid parameter", with what is wrong in `details`.
fn invalid(details: &str, trace: &str) -> Response {
    api_error(
        StatusCode::BAD_REQUEST,
        100,
        "(#100) Invalid parameter",
        Some(details),
        trace,
    )
}

/// The Cloud API's error answer.
fn api_error(
    status: StatusCode,
    code: i64,
    message: &str,
    details: Option<&str>,
    trace: &str,
) -> Response {
    let mut error = json!({
        "message": message,
        "type": "OAuthException",
        "code": code,
        "fbtrace_id": trace,
    });
    if let (Some(details), Value::Object(error)) = (details, &mut error) {
        error.insert(
            "error_data".to_owned(),
            json!({ "messaging_product": "whatsapp", "details": details }),
        );
    }
    (status, axum::Json(json!({ "error": error }))).into_response()
}

fn failure_response(failure: Failure, trace: &str) -> Response {
    match failure {
        Failure::RateLimited => api_error(
            StatusCode::BAD_REQUEST,
            130_429,
            "(#130429) Rate limit hit",
            Some("Cloud API message throughput has been reached."),
            trace,
        ),
        Failure::PairRateLimited => api_error(
            StatusCode::BAD_REQUEST,
            131_056,
            "(#131056) (Business Account, Consumer Account) pair rate limit hit",
            Some(
                "Message failed to send because there were too many messages sent from this phone number to the same phone number in a short period of time.",
            ),
            trace,
        ),
        Failure::TokenExpired => (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"error":{
                "message":"Error validating access token: Session has expired on Thursday, 01-Jan-26 00:00:00 PST. The current time is Friday, 02-Jan-26 00:00:00 PST.",
                "type":"OAuthException","code":190,"error_subcode":463,"fbtrace_id":trace}})),
        )
            .into_response(),
        Failure::OutsideWindow => api_error(
            StatusCode::BAD_REQUEST,
            131_047,
            "(#131047) Re-engagement message",
            Some(
                "Message failed to send because more than 24 hours have passed since the customer last replied to this number.",
            ),
            trace,
        ),
        Failure::Undeliverable => api_error(
            StatusCode::BAD_REQUEST,
            131_026,
            "(#131026) Message undeliverable",
            Some("Message Undeliverable."),
            trace,
        ),
        Failure::PermissionMissing => api_error(
            StatusCode::FORBIDDEN,
            10,
            "(#10) Application does not have permission for this action",
            None,
            trace,
        ),
        Failure::ServerError => api_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            131_000,
            "(#131000) Something went wrong",
            Some("Something went wrong. Please retry later."),
            trace,
        ),
    }
}

// ---------------------------------------------------------------------------
// Webhooks
// ---------------------------------------------------------------------------

/// A webhook delivery as Meta sends it: the body bytes (compact JSON, with
/// non-ASCII escaped as `\uXXXX` in lowercase hex and `/` as `\/`) and the
/// `X-Hub-Signature-256` value signing exactly those bytes with
/// `app_secret` (this is [`crate::fake::meta::signed_webhook`]).
pub fn signed_webhook(app_secret: &str, payload: &Value) -> (Vec<u8>, String) {
    crate::fake::meta::signed_webhook(app_secret, payload)
}

/// A `messages` change for `phone_number_id` with `value`'s fields besides
/// `messaging_product` and `metadata`.
fn delivery(phone_number_id: &str, fields: Value) -> Value {
    let mut value = json!({
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": DISPLAY_PHONE_NUMBER,
            "phone_number_id": phone_number_id,
        },
    });
    if let (Value::Object(value), Value::Object(fields)) = (&mut value, fields) {
        value.extend(fields);
    }
    json!({"object":"whatsapp_business_account","entry":[{"id":WABA_ID,
        "changes":[{"value":value,"field":"messages"}]}]})
}

/// A text message from `from_wa_id` (whose profile name is `name`) to the
/// number `phone_number_id`, `timestamp` in Unix seconds.
pub fn text_message(
    phone_number_id: &str,
    from_wa_id: &str,
    name: &str,
    wamid: &str,
    text: &str,
    timestamp: i64,
) -> Value {
    delivery(
        phone_number_id,
        json!({
            "contacts": [{ "profile": { "name": name }, "wa_id": from_wa_id }],
            "messages": [{
                "from": from_wa_id, "id": wamid, "timestamp": timestamp.to_string(),
                "type": "text", "text": { "body": text },
            }],
        }),
    )
}

/// A photo from `from_wa_id`: the media `media_id` of `mime_type`, with a
/// `caption` if any (the `sha256` is derived from the media id).
#[allow(clippy::too_many_arguments, reason = "mirrors the payload's fields")]
pub fn image_message(
    phone_number_id: &str,
    from_wa_id: &str,
    name: &str,
    wamid: &str,
    media_id: &str,
    mime_type: &str,
    caption: Option<&str>,
    timestamp: i64,
) -> Value {
    use base64::Engine as _;
    use sha2::Digest as _;
    let sha256 =
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(media_id.as_bytes()));
    let mut image = json!({ "mime_type": mime_type, "sha256": sha256, "id": media_id });
    if let (Some(caption), Value::Object(image)) = (caption, &mut image) {
        image.insert("caption".to_owned(), Value::from(caption));
    }
    delivery(
        phone_number_id,
        json!({
            "contacts": [{ "profile": { "name": name }, "wa_id": from_wa_id }],
            "messages": [{
                "from": from_wa_id, "id": wamid, "timestamp": timestamp.to_string(),
                "type": "image", "image": image,
            }],
        }),
    )
}

/// A delivery receipt of our message `wamid` to `recipient`, `status`
/// being `sent`, `delivered`, `read` or `failed`, stamped now (see
/// [`status_receipt_at`]).
pub fn status_receipt(phone_number_id: &str, wamid: &str, status: &str, recipient: &str) -> Value {
    status_receipt_at(
        phone_number_id,
        wamid,
        status,
        recipient,
        Utc::now().timestamp(),
    )
}

/// [`status_receipt`] of a message sent with `biz_opaque_callback_data`
/// (WhatsApp echoes it on every status of the message).
pub fn status_receipt_with_callback(
    phone_number_id: &str,
    wamid: &str,
    status: &str,
    recipient: &str,
    callback: &str,
) -> Value {
    let mut payload = status_receipt(phone_number_id, wamid, status, recipient);
    if let Some(statuses) = payload
        .pointer_mut("/entry/0/changes/0/value/statuses")
        .and_then(Value::as_array_mut)
    {
        for status in statuses {
            if let Value::Object(fields) = status {
                fields.insert("biz_opaque_callback_data".to_owned(), json!(callback));
            }
        }
    }
    payload
}

/// [`status_receipt`] at `timestamp` (Unix seconds).
pub fn status_receipt_at(
    phone_number_id: &str,
    wamid: &str,
    status: &str,
    recipient: &str,
    timestamp: i64,
) -> Value {
    let mut receipt = json!({
        "id": wamid, "status": status, "timestamp": timestamp.to_string(),
        "recipient_id": recipient,
    });
    if status != "failed"
        && let Value::Object(fields) = &mut receipt
    {
        fields.insert(
            "conversation".to_owned(),
            json!({ "id": format!("CONVERSATION_{recipient}"), "origin": { "type": "service" } }),
        );
        fields.insert(
            "pricing".to_owned(),
            json!({ "billable": false, "pricing_model": "PMP", "category": "service" }),
        );
    }
    delivery(phone_number_id, json!({ "statuses": [receipt] }))
}

/// A `failed` receipt of our message `wamid`, with WhatsApp's error `code`,
/// `title` and `details` (e.g. 131047, "Re-engagement message", "Message
/// failed to send because more than 24 hours have passed…").
pub fn failed_receipt(
    phone_number_id: &str,
    wamid: &str,
    recipient: &str,
    code: i64,
    title: &str,
    details: &str,
    timestamp: i64,
) -> Value {
    delivery(
        phone_number_id,
        json!({ "statuses": [{
            "id": wamid, "status": "failed", "timestamp": timestamp.to_string(),
            "recipient_id": recipient,
            "errors": [{
                "code": code, "title": title, "message": title,
                "error_data": { "details": details },
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }],
        }]}),
    )
}

/// One delivery batching the entries of several payloads, in order (Meta
/// batches updates).
pub fn batch(payloads: &[Value]) -> Value {
    let entries: Vec<Value> = payloads
        .iter()
        .filter_map(|p| p.get("entry").and_then(Value::as_array))
        .flatten()
        .cloned()
        .collect();
    json!({ "object": "whatsapp_business_account", "entry": entries })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    async fn post(fake: &FakeWhatsApp, path: &str, token: Option<&str>, body: Value) -> Value {
        let mut request = reqwest::Client::new()
            .post(format!("{}{path}", fake.base_url()))
            .json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap().json().await.unwrap()
    }

    fn text(to: &str) -> Value {
        json!({"messaging_product":"whatsapp","recipient_type":"individual","to":to,
               "type":"text","text":{"body":"hola"}})
    }

    #[tokio::test]
    async fn requests_are_checked_as_the_cloud_api_does() {
        let fake = FakeWhatsApp::start().await;
        fake.allow_token("t");
        fake.set_last_inbound("34600000001", Utc::now());
        let code = |v: &Value| v["error"]["code"].as_i64();

        let ok = post(&fake, "/1065/messages", Some("t"), text("34600000001")).await;
        assert_eq!(ok["messaging_product"], "whatsapp");
        assert_eq!(ok["contacts"][0]["wa_id"], "34600000001");
        assert_eq!(ok["messages"][0]["id"], fake.sent()[0].wamid.as_str());
        assert_eq!(fake.sent()[0].phone_number_id, "1065");

        let leaked = post(
            &fake,
            "/1065/messages?access_token=t",
            None,
            text("34600000001"),
        )
        .await;
        assert_eq!(code(&leaked), Some(190));
        let unknown = post(&fake, "/1065/messages", Some("other"), text("34600000001")).await;
        assert_eq!(code(&unknown), Some(190));
        let stranger = post(&fake, "/1065/messages", Some("t"), text("34600000002")).await;
        assert_eq!(code(&stranger), Some(131_047));
        let mut no_product = text("34600000001");
        no_product["messaging_product"] = json!("sms");
        let invalid = post(&fake, "/1065/messages", Some("t"), no_product).await;
        assert_eq!(code(&invalid), Some(100));
        assert!(invalid["error"]["error_data"]["details"].is_string());
        let elsewhere = post(&fake, "/1065/feed", Some("t"), text("34600000001")).await;
        assert_eq!(code(&elsewhere), Some(2500));
        assert_eq!(fake.requests().len(), 6);
        assert_eq!(fake.sent().len(), 1);
    }

    #[test]
    fn webhook_builders_have_the_real_shape() {
        let failed = failed_receipt(
            "1065",
            "wamid.1",
            "34600000001",
            131_047,
            "Re-engagement message",
            "more than 24 hours",
            1_767_261_600,
        );
        let status = &failed["entry"][0]["changes"][0]["value"]["statuses"][0];
        assert_eq!(status["timestamp"], "1767261600");
        assert_eq!(status["errors"][0]["code"], 131_047);
        let both = batch(&[
            text_message("1065", "346", "A", "wamid.a", "a", 1),
            status_receipt_at("1065", "wamid.b", "read", "346", 2),
        ]);
        assert_eq!(both["object"], "whatsapp_business_account");
        assert_eq!(both["entry"].as_array().map(Vec::len), Some(2));
        let (raw, signature) = signed_webhook("s", &both);
        assert!(signature.starts_with("sha256="));
        assert_eq!(serde_json::from_slice::<Value>(&raw).unwrap(), both);
    }
}
