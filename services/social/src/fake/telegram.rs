//! A local fake of Telegram's Bot API, and webhook deliveries shaped like
//! Telegram's, for the tests, the simulator and the benchmark. Never used
//! against Telegram.
//!
//! [`FakeTelegram`] serves, at `http://127.0.0.1:<port>`, the calls
//! [`crate::telegram::TelegramClient`] makes, as `POST
//! /bot<token>/<method>` with a JSON body (query parameters work too), and
//! answers like the Bot API: `{"ok":true,"result":…}` or
//! `{"ok":false,"error_code":N,"description":"…"[,"parameters":{…}]}` with
//! the HTTP status `N`:
//! - `getMe` → the bot's User (`can_read_all_group_messages: false`);
//! - `setWebhook` records `url`, `secret_token`, `allowed_updates` and
//!   `drop_pending_updates` ([`FakeTelegram::webhook`]) after Telegram's
//!   checks: an `https` URL on port 443, 80, 88 or 8443 ("Bad Request: bad
//!   webhook: …"), a secret of 1–256 characters from `A-Z a-z 0-9 _ -`
//!   ("Bad Request: secret token contains unallowed characters"); an empty
//!   `url`, like `deleteWebhook`, removes it;
//! - `sendMessage` → the Message created, numbered per chat (the citizens'
//!   messages and the bot's share the numbering, as on Telegram). It
//!   records whether the reply used Bot API 7.0's `reply_parameters` or the
//!   legacy `reply_to_message_id` (which Telegram still accepts)
//!   ([`FakeTelegram::sent`]); a quoted message the chat does not have is
//!   "Bad Request: message to be replied not found" unless
//!   `allow_sending_without_reply`. A private chat whose citizen never
//!   wrote is "Forbidden: bot can't initiate conversation with a user", a
//!   blocked one ([`FakeTelegram::block_chat`]) "Forbidden: bot was blocked
//!   by the user", an unknown group or channel "Bad Request: chat not
//!   found", a channel where the bot is not an administrator "Bad Request:
//!   need administrator rights in the channel chat"; more than the flood
//!   limit per second in one chat ([`FakeTelegram::set_flood_limit`]) is a
//!   real 429 with `parameters.retry_after`.
//!
//! An unknown token is 401 `Unauthorized`, a path that is not
//! `/bot<token>/<method>` or an unknown method 404 `Not Found`.
//! [`FakeTelegram::fail_next`] injects a failure into the next call;
//! [`FakeTelegram::requests`] lists what was received. Chats are one
//! namespace for every bot the fake knows.
//!
//! The webhook side: [`FakeTelegram::update_message`] and
//! [`FakeTelegram::update_edit`] build Updates in Telegram's shape (with
//! `mention` and `bot_command` entities in UTF-16 offsets, and the quoted
//! message in `reply_to_message`), and [`deliver`] POSTs one with the
//! `X-Telegram-Bot-Api-Secret-Token` header, as Telegram does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use serde_json::{Map, Value, json};

/// The header Telegram sends the webhook's secret token in.
const SECRET_HEADER: &str = "X-Telegram-Bot-Api-Secret-Token";

/// The longest message text, in characters.
const MAX_TEXT: usize = 4096;

/// Supergroup and channel ids are below this (`-100…`).
const SUPERGROUP_IDS_BELOW: i64 = -1_000_000_000_000;

/// A Telegram user, as the fake writes it into updates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TelegramUser {
    /// The user id (in a private chat, also the chat id).
    pub id: i64,
    /// Their first name.
    pub first_name: String,
    /// Their last name, if any.
    pub last_name: Option<String>,
    /// Their username, without `@`, if any.
    pub username: Option<String>,
    /// Whether it is a bot.
    pub is_bot: bool,
}

impl TelegramUser {
    /// A citizen (not a bot) without a last name.
    pub fn new(id: i64, first_name: &str, username: Option<&str>) -> Self {
        TelegramUser {
            id,
            first_name: first_name.to_owned(),
            last_name: None,
            username: username.map(str::to_owned),
            is_bot: false,
        }
    }

    fn to_json(&self) -> Value {
        let mut user = json!({"id": self.id, "is_bot": self.is_bot, "first_name": self.first_name});
        if let Some(last) = &self.last_name {
            user["last_name"] = json!(last);
        }
        if let Some(username) = &self.username {
            user["username"] = json!(username);
        }
        if !self.is_bot {
            user["language_code"] = json!("es");
        }
        user
    }
}

/// How a `sendMessage` asked to quote a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplyStyle {
    /// It quoted nothing.
    None,
    /// Bot API 7.0's `reply_parameters`.
    ReplyParameters {
        /// `reply_parameters.message_id`.
        message_id: i64,
        /// `reply_parameters.allow_sending_without_reply`.
        allow_sending_without_reply: bool,
    },
    /// The legacy top-level `reply_to_message_id`.
    LegacyReplyToMessageId(i64),
}

/// A message the fake's bots sent.
#[derive(Debug, Clone, PartialEq)]
pub struct SentMessage {
    /// The chat it went to.
    pub chat_id: i64,
    /// Its id in that chat.
    pub message_id: i64,
    /// Its text.
    pub text: String,
    /// How the request asked to quote a message.
    pub reply: ReplyStyle,
    /// The message it quotes, when the chat had it.
    pub replied_to: Option<i64>,
    /// The `link_preview_options` sent, if any.
    pub link_preview_options: Option<Value>,
}

/// A request the fake received.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// `POST`, `GET`…
    pub http_method: String,
    /// The bot token in the path ("" when the path had none).
    pub token: String,
    /// The Bot API method (`sendMessage`…).
    pub method: String,
    /// The parameters: the JSON body, or the query parameters as strings.
    pub params: Map<String, Value>,
}

/// A bot's webhook, as `setWebhook` set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSet {
    /// The URL Telegram posts updates to.
    pub url: String,
    /// The `secret_token`, if one was given.
    pub secret_token: Option<String>,
    /// The `allowed_updates`, if given.
    pub allowed_updates: Option<Vec<String>>,
    /// Whether `drop_pending_updates` was set.
    pub drop_pending_updates: bool,
}

#[derive(Debug)]
struct Bot {
    user: TelegramUser,
    webhook: Option<WebhookSet>,
}

#[derive(Debug, Clone)]
struct ChatInfo {
    /// The Chat object.
    json: Value,
    channel: bool,
    bot_is_admin: bool,
}

#[derive(Debug)]
struct Shared {
    bots: HashMap<String, Bot>,
    requests: Vec<Recorded>,
    failures: VecDeque<(u16, Option<String>)>,
    sent: Vec<SentMessage>,
    chats: HashMap<i64, ChatInfo>,
    /// Public usernames (lowercase, no `@`) of groups and channels.
    usernames: HashMap<String, i64>,
    /// Per chat, every message, in order.
    messages: HashMap<i64, Vec<Value>>,
    blocked: HashSet<i64>,
    /// (messages per second per chat, retry_after seconds).
    flood: Option<(u32, u64)>,
    recent: HashMap<i64, VecDeque<Instant>>,
    flooded_until: HashMap<i64, Instant>,
    /// The simulator's leniency: any webhook URL (a development machine has
    /// no https on 443).
    insecure_webhooks: bool,
}

impl Shared {
    fn next_message_id(&self, chat_id: i64) -> i64 {
        self.messages
            .get(&chat_id)
            .and_then(|m| m.last())
            .and_then(|m| m.get("message_id"))
            .and_then(Value::as_i64)
            .unwrap_or(0)
            + 1
    }

    fn message(&self, chat_id: i64, message_id: i64) -> Option<&Value> {
        self.messages
            .get(&chat_id)?
            .iter()
            .find(|m| m.get("message_id").and_then(Value::as_i64) == Some(message_id))
    }

    /// The message quoted in `reply_to_message` (Telegram does not nest a
    /// further `reply_to_message` in it).
    fn quoted(&self, chat_id: i64, message_id: i64) -> Option<Value> {
        let mut quoted = self.message(chat_id, message_id)?.clone();
        if let Value::Object(fields) = &mut quoted {
            fields.remove("reply_to_message");
        }
        Some(quoted)
    }

    /// The chat a citizen writes in, registered the first time.
    fn incoming_chat(&mut self, chat_id: i64, from: &TelegramUser) -> Value {
        if let Some(chat) = self.chats.get(&chat_id) {
            return chat.json.clone();
        }
        let json = if chat_id > 0 {
            let mut chat = json!({"id": chat_id, "first_name": from.first_name, "type": "private"});
            if let Some(last) = &from.last_name {
                chat["last_name"] = json!(last);
            }
            if let Some(username) = &from.username {
                chat["username"] = json!(username);
            }
            chat
        } else if chat_id < SUPERGROUP_IDS_BELOW {
            json!({"id": chat_id, "title": "Vecinos", "type": "supergroup"})
        } else {
            json!({"id": chat_id, "title": "Vecinos", "type": "group", "all_members_are_administrators": true})
        };
        self.chats.insert(
            chat_id,
            ChatInfo {
                json: json.clone(),
                channel: false,
                bot_is_admin: false,
            },
        );
        json
    }

    /// Whether a message to `chat_id` now goes over the flood limit; if so,
    /// the seconds to wait.
    fn flooded(&mut self, chat_id: i64) -> Option<u64> {
        let (limit, retry_after) = self.flood?;
        let now = Instant::now();
        if let Some(until) = self.flooded_until.get(&chat_id) {
            if *until > now {
                let left = until.duration_since(now);
                return Some(left.as_secs() + u64::from(left.subsec_nanos() > 0));
            }
            self.flooded_until.remove(&chat_id);
        }
        let recent = self.recent.entry(chat_id).or_default();
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            recent.pop_front();
        }
        if recent.len() >= usize::try_from(limit).unwrap_or(usize::MAX) {
            self.flooded_until
                .insert(chat_id, now + Duration::from_secs(retry_after));
            return Some(retry_after);
        }
        recent.push_back(now);
        None
    }
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(PoisonError::into_inner)
}

fn now_secs() -> i64 {
    Utc::now().timestamp()
}

/// A running fake Bot API. Dropping it stops the server.
#[derive(Debug)]
pub struct FakeTelegram {
    base_url: String,
    shared: Arc<Mutex<Shared>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FakeTelegram {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl FakeTelegram {
    /// Starts a fake Bot API on a free local port, with a flood limit of 20
    /// messages per second per chat (`retry_after` 5).
    ///
    /// # Panics
    ///
    /// If no local port can be bound (the tests cannot run then).
    pub async fn start() -> FakeTelegram {
        let listener = match tokio::net::TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("the fake Bot API cannot bind a local port: {e}"),
        };
        let address = match listener.local_addr() {
            Ok(address) => address,
            Err(e) => panic!("the fake Bot API has no local address: {e}"),
        };
        let shared = Arc::new(Mutex::new(Shared {
            bots: HashMap::new(),
            requests: Vec::new(),
            failures: VecDeque::new(),
            sent: Vec::new(),
            chats: HashMap::new(),
            usernames: HashMap::new(),
            messages: HashMap::new(),
            blocked: HashSet::new(),
            flood: Some((20, 5)),
            recent: HashMap::new(),
            flooded_until: HashMap::new(),
            insecure_webhooks: false,
        }));
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::warn!(error = %e, "the fake Bot API stopped");
            }
        });
        FakeTelegram {
            base_url: format!("http://{address}"),
            shared,
            server,
        }
    }

    /// Where it listens: `http://127.0.0.1:<port>` (give it to
    /// [`crate::telegram::TelegramClient::new`]).
    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Accepts `token` as the token of the bot `id` (`@username`).
    pub fn add_bot(&self, token: &str, id: i64, username: &str) {
        let user = TelegramUser {
            id,
            first_name: "Ayuntamiento".to_owned(),
            last_name: None,
            username: Some(username.trim_start_matches('@').to_owned()),
            is_bot: true,
        };
        lock(&self.shared).bots.insert(
            token.to_owned(),
            Bot {
                user,
                webhook: None,
            },
        );
    }

    /// Accepts any webhook URL, `http://127.0.0.1:8080/…` included (the
    /// simulator's; Telegram itself wants https on 443, 80, 88 or 8443).
    pub fn accept_any_webhook_url(&self) {
        lock(&self.shared).insecure_webhooks = true;
    }

    /// Revokes `token` (as @BotFather's /revoke does): calls with it get
    /// 401 from now on.
    pub fn revoke(&self, token: &str) {
        lock(&self.shared).bots.remove(token);
    }

    /// Adds a channel (`-100…` id, public `@username`) where the bot is an
    /// administrator who can post, or not.
    pub fn add_channel(&self, id: i64, username: &str, bot_is_admin: bool) {
        let username = username.trim_start_matches('@');
        let mut shared = lock(&self.shared);
        shared.chats.insert(
            id,
            ChatInfo {
                json: json!({"id": id, "title": "Avisos del Ayuntamiento", "username": username, "type": "channel"}),
                channel: true,
                bot_is_admin,
            },
        );
        shared.usernames.insert(username.to_ascii_lowercase(), id);
    }

    /// The citizen of the private chat `chat_id` blocks the bot: sends
    /// there get 403 "Forbidden: bot was blocked by the user".
    pub fn block_chat(&self, chat_id: i64) {
        lock(&self.shared).blocked.insert(chat_id);
    }

    /// Sets the flood limit: more than `per_chat_per_second` messages in a
    /// second to one chat get 429 with `retry_after_secs`, and that chat
    /// stays refused for that long (`None`: no limit).
    pub fn set_flood_limit(&self, per_chat_per_second: Option<u32>, retry_after_secs: u64) {
        let mut shared = lock(&self.shared);
        shared.flood = per_chat_per_second.map(|limit| (limit, retry_after_secs.max(1)));
        shared.recent.clear();
        shared.flooded_until.clear();
    }

    /// Makes the next call (whatever it is) fail with `status` and
    /// Telegram's usual words for it: 400 "Bad Request: chat not found",
    /// 401 "Unauthorized", 403 "Forbidden: bot was blocked by the user",
    /// 409 a `getUpdates` conflict, 429 "Too Many Requests: retry after 5"
    /// (`parameters.retry_after: 5`), 500 "Internal Server Error"; 502 and
    /// 504 are the HTML page of Telegram's front proxy. Several queue up.
    pub fn fail_next(&self, status: u16) {
        lock(&self.shared).failures.push_back((status, None));
    }

    /// Like [`FakeTelegram::fail_next`] with Telegram's `description` (for
    /// 429, "Too Many Requests: retry after N" sets `retry_after` N).
    pub fn fail_next_with(&self, status: u16, description: &str) {
        lock(&self.shared)
            .failures
            .push_back((status, Some(description.to_owned())));
    }

    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared).requests.clone()
    }

    /// The messages the bots sent, in order.
    pub fn sent(&self) -> Vec<SentMessage> {
        lock(&self.shared).sent.clone()
    }

    /// The webhook of the bot with `token`, if one is set.
    pub fn webhook(&self, token: &str) -> Option<WebhookSet> {
        lock(&self.shared)
            .bots
            .get(token)
            .and_then(|b| b.webhook.clone())
    }

    /// An Update carrying a new message from `from` in the chat `chat_id`
    /// (a positive id: the private chat with `from`; `-100…`: a
    /// supergroup; another negative id: a group), saying `text`, quoting
    /// the message `reply_to` of that chat if given (the whole message goes
    /// in `reply_to_message` when the chat has it). The message gets the
    /// chat's next id and is kept, so replies can quote it; `@mentions`
    /// and `/commands` become entities, as Telegram marks them. Returns the
    /// body Telegram would POST.
    pub fn update_message(
        &self,
        update_id: i64,
        chat_id: i64,
        from: &TelegramUser,
        text: &str,
        reply_to: Option<i64>,
    ) -> Vec<u8> {
        let mut shared = lock(&self.shared);
        let chat = shared.incoming_chat(chat_id, from);
        let message_id = shared.next_message_id(chat_id);
        let mut message = json!({
            "message_id": message_id,
            "from": from.to_json(),
            "chat": chat,
            "date": now_secs(),
            "text": text,
        });
        let entities = entities_of(text);
        if !entities.is_empty() {
            message["entities"] = Value::Array(entities);
        }
        if let Some(quoted) = reply_to.and_then(|r| shared.quoted(chat_id, r)) {
            message["reply_to_message"] = quoted;
        }
        shared
            .messages
            .entry(chat_id)
            .or_default()
            .push(message.clone());
        json!({"update_id": update_id, "message": message})
            .to_string()
            .into_bytes()
    }

    /// An Update carrying the edit of the message `message_id` of the chat
    /// `chat_id` (as [`FakeTelegram::update_message`] made it), now saying
    /// `text`, with an `edit_date` later than its `date`. `None` when the
    /// chat has no such message.
    pub fn update_edit(
        &self,
        update_id: i64,
        chat_id: i64,
        message_id: i64,
        text: &str,
    ) -> Option<Vec<u8>> {
        let mut shared = lock(&self.shared);
        let stored = shared
            .messages
            .get_mut(&chat_id)?
            .iter_mut()
            .find(|m| m.get("message_id").and_then(Value::as_i64) == Some(message_id))?;
        let date = stored.get("date").and_then(Value::as_i64).unwrap_or(0);
        let edit_date = now_secs().max(date + 1);
        stored["text"] = json!(text);
        stored["edit_date"] = json!(edit_date);
        let entities = entities_of(text);
        if let Value::Object(fields) = stored {
            if entities.is_empty() {
                fields.remove("entities");
            } else {
                fields.insert("entities".to_owned(), Value::Array(entities));
            }
        }
        let edited = stored.clone();
        Some(
            json!({"update_id": update_id, "edited_message": edited})
                .to_string()
                .into_bytes(),
        )
    }
}

/// POSTs an Update to a webhook `url` as Telegram does: `Content-Type:
/// application/json` and, when the webhook has a secret, the
/// `X-Telegram-Bot-Api-Secret-Token` header. Returns the status answered.
///
/// # Errors
///
/// When the webhook cannot be reached.
pub async fn deliver(
    url: &str,
    secret: Option<&str>,
    body: &[u8],
) -> Result<reqwest::StatusCode, reqwest::Error> {
    let mut request = reqwest::Client::new()
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    if let Some(secret) = secret {
        request = request.header(SECRET_HEADER, secret);
    }
    Ok(request.send().await?.status())
}

/// `mention` and `bot_command` entities of `text`, in UTF-16 offsets.
fn entities_of(text: &str) -> Vec<Value> {
    let chars: Vec<char> = text.chars().collect();
    let mut offsets = Vec::with_capacity(chars.len() + 1);
    let mut offset = 0;
    for c in &chars {
        offsets.push(offset);
        offset += c.len_utf16();
    }
    offsets.push(offset);
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut entities = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let starts = chars[i] == '@' || chars[i] == '/';
        let boundary = i == 0 || chars[i - 1].is_whitespace();
        if starts && boundary {
            let mut end = i + 1;
            while end < chars.len() && word(chars[end]) {
                end += 1;
            }
            if chars[i] == '/' && end < chars.len() && chars[end] == '@' {
                let mut to = end + 1;
                while to < chars.len() && word(chars[to]) {
                    to += 1;
                }
                if to > end + 1 {
                    end = to;
                }
            }
            if end > i + 1 {
                let kind = if chars[i] == '@' {
                    "mention"
                } else {
                    "bot_command"
                };
                entities.push(json!({
                    "offset": offsets[i],
                    "length": offsets[end] - offsets[i],
                    "type": kind,
                }));
                i = end;
                continue;
            }
        }
        i += 1;
    }
    entities
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

fn api_error(status: StatusCode, description: &str, parameters: Option<Value>) -> Response {
    let mut body = json!({"ok": false, "error_code": status.as_u16(), "description": description});
    if let Some(parameters) = parameters {
        body["parameters"] = parameters;
    }
    json_response(status, &body)
}

fn bad_request(description: &str) -> Response {
    api_error(StatusCode::BAD_REQUEST, description, None)
}

fn ok(result: Value) -> Response {
    json_response(StatusCode::OK, &json!({"ok": true, "result": result}))
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn too_many_requests(retry_after: u64) -> Response {
    api_error(
        StatusCode::TOO_MANY_REQUESTS,
        &format!("Too Many Requests: retry after {retry_after}"),
        Some(json!({"retry_after": retry_after})),
    )
}

fn injected(status: u16, description: Option<String>) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if description.is_none()
        && (status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT)
    {
        let reason = status.canonical_reason().unwrap_or("Error");
        let page = format!(
            "<html>\r\n<head><title>{code} {reason}</title></head>\r\n<body>\r\n<center><h1>{code} {reason}</h1></center>\r\n<hr><center>nginx/1.18.0</center>\r\n</body>\r\n</html>\r\n",
            code = status.as_u16()
        );
        return (status, [(header::CONTENT_TYPE, "text/html")], page).into_response();
    }
    if status == StatusCode::TOO_MANY_REQUESTS {
        let description = description.unwrap_or_else(|| "Too Many Requests: retry after 5".into());
        let retry_after = description
            .rsplit(' ')
            .next()
            .and_then(|n| n.parse::<u64>().ok())
            .unwrap_or(5);
        return api_error(
            status,
            &description,
            Some(json!({"retry_after": retry_after})),
        );
    }
    let description = description.unwrap_or_else(|| {
        match status.as_u16() {
            400 => "Bad Request: chat not found",
            401 => "Unauthorized",
            403 => "Forbidden: bot was blocked by the user",
            404 => "Not Found",
            409 => {
                "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"
            }
            500 => "Internal Server Error",
            _ => "Error",
        }
        .to_owned()
    });
    api_error(status, &description, None)
}

/// The parameters of a call: the JSON body's fields, else the query
/// parameters (JSON-serialised objects and arrays among them read back).
fn params_of(uri: &Uri, body: &[u8]) -> Map<String, Value> {
    if let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) {
        return fields;
    }
    let query = Query::<Vec<(String, String)>>::try_from_uri(uri)
        .map(|q| q.0)
        .unwrap_or_default();
    query
        .into_iter()
        .map(|(k, v)| {
            let value = match serde_json::from_str::<Value>(&v) {
                Ok(parsed @ (Value::Object(_) | Value::Array(_))) => parsed,
                _ => Value::String(v),
            };
            (k, value)
        })
        .collect()
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    method: Method,
    uri: Uri,
    body: Bytes,
) -> Response {
    let mut shared = lock(&shared);
    let params = params_of(&uri, &body);
    let (token, api_method) = uri
        .path()
        .strip_prefix("/bot")
        .and_then(|rest| rest.split_once('/'))
        .map(|(t, m)| (t.to_owned(), m.trim_end_matches('/').to_owned()))
        .unwrap_or_default();
    shared.requests.push(Recorded {
        http_method: method.to_string(),
        token: token.clone(),
        method: api_method.clone(),
        params: params.clone(),
    });

    if let Some((status, description)) = shared.failures.pop_front() {
        return injected(status, description);
    }
    if token.is_empty() || api_method.is_empty() {
        return api_error(StatusCode::NOT_FOUND, "Not Found", None);
    }
    let Some(bot) = shared.bots.get(&token).map(|b| b.user.clone()) else {
        return api_error(StatusCode::UNAUTHORIZED, "Unauthorized", None);
    };
    match api_method.to_ascii_lowercase().as_str() {
        "getme" => {
            let mut user = bot.to_json();
            user["can_join_groups"] = json!(true);
            user["can_read_all_group_messages"] = json!(false);
            user["supports_inline_queries"] = json!(false);
            ok(user)
        }
        "setwebhook" => set_webhook(&mut shared, &token, &params),
        "deletewebhook" => {
            if let Some(bot) = shared.bots.get_mut(&token) {
                bot.webhook = None;
            }
            json_response(
                StatusCode::OK,
                &json!({"ok": true, "result": true, "description": "Webhook was deleted"}),
            )
        }
        "sendmessage" => send_message(&mut shared, &bot, &params),
        _ => api_error(StatusCode::NOT_FOUND, "Not Found", None),
    }
}

/// `setWebhook`.
fn set_webhook(shared: &mut Shared, token: &str, params: &Map<String, Value>) -> Response {
    let url = params
        .get("url")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .trim()
        .to_owned();
    if url.is_empty() {
        if let Some(bot) = shared.bots.get_mut(token) {
            bot.webhook = None;
        }
        return json_response(
            StatusCode::OK,
            &json!({"ok": true, "result": true, "description": "Webhook was deleted"}),
        );
    }
    match reqwest::Url::parse(&url) {
        Ok(_) if shared.insecure_webhooks => {}
        Ok(parsed) if parsed.scheme() == "https" && parsed.host_str().is_some() => {
            if !matches!(parsed.port_or_known_default(), Some(443 | 80 | 88 | 8443)) {
                return bad_request(
                    "Bad Request: bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443",
                );
            }
        }
        Ok(_) => {
            return bad_request(
                "Bad Request: bad webhook: An HTTPS URL must be provided for webhook",
            );
        }
        Err(_) => {
            return bad_request(
                "Bad Request: bad webhook: Failed to resolve host: Name or service not known",
            );
        }
    }
    let secret_token = match params.get("secret_token") {
        None | Some(Value::Null) => None,
        Some(Value::String(secret)) => {
            let valid = (1..=256).contains(&secret.len())
                && secret
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !valid {
                return bad_request("Bad Request: secret token contains unallowed characters");
            }
            Some(secret.clone())
        }
        Some(_) => return bad_request("Bad Request: secret token contains unallowed characters"),
    };
    let allowed_updates = match params.get("allowed_updates") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
        ),
        Some(_) => return bad_request("Bad Request: can't parse allowed updates JSON object"),
    };
    let drop_pending_updates = params
        .get("drop_pending_updates")
        .is_some_and(|v| v.as_bool() == Some(true) || v.as_str() == Some("true"));
    if let Some(bot) = shared.bots.get_mut(token) {
        bot.webhook = Some(WebhookSet {
            url,
            secret_token,
            allowed_updates,
            drop_pending_updates,
        });
    }
    json_response(
        StatusCode::OK,
        &json!({"ok": true, "result": true, "description": "Webhook was set"}),
    )
}

fn as_i64(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// `sendMessage`.
fn send_message(shared: &mut Shared, bot: &TelegramUser, params: &Map<String, Value>) -> Response {
    let chat_id = match params.get("chat_id") {
        None | Some(Value::Null) => return bad_request("Bad Request: chat_id is empty"),
        Some(value) => match (as_i64(value), value.as_str()) {
            (Some(id), _) => id,
            (None, Some(name)) if name.starts_with('@') => {
                match shared
                    .usernames
                    .get(&name.trim_start_matches('@').to_ascii_lowercase())
                {
                    Some(id) => *id,
                    None => return bad_request("Bad Request: chat not found"),
                }
            }
            _ => return bad_request("Bad Request: chat not found"),
        },
    };
    let text = params
        .get("text")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if text.trim().is_empty() {
        return bad_request("Bad Request: message text is empty");
    }
    if text.chars().count() > MAX_TEXT {
        return bad_request("Bad Request: message is too long");
    }
    let Some(chat) = shared.chats.get(&chat_id).cloned() else {
        return if chat_id > 0 {
            api_error(
                StatusCode::FORBIDDEN,
                "Forbidden: bot can't initiate conversation with a user",
                None,
            )
        } else {
            bad_request("Bad Request: chat not found")
        };
    };
    if shared.blocked.contains(&chat_id) {
        return api_error(
            StatusCode::FORBIDDEN,
            "Forbidden: bot was blocked by the user",
            None,
        );
    }
    if chat.channel && !chat.bot_is_admin {
        return bad_request("Bad Request: need administrator rights in the channel chat");
    }
    let (reply, allow_without) = match (
        params.get("reply_parameters"),
        params.get("reply_to_message_id"),
    ) {
        (Some(Value::Object(parameters)), _) => {
            let Some(message_id) = parameters.get("message_id").and_then(as_i64) else {
                return bad_request("Bad Request: message to be replied not found");
            };
            let allow = parameters
                .get("allow_sending_without_reply")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            (
                ReplyStyle::ReplyParameters {
                    message_id,
                    allow_sending_without_reply: allow,
                },
                allow,
            )
        }
        (Some(Value::Null) | None, Some(id)) if !id.is_null() => {
            let Some(message_id) = as_i64(id) else {
                return bad_request("Bad Request: message to be replied not found");
            };
            let allow = params
                .get("allow_sending_without_reply")
                .and_then(Value::as_bool)
                .unwrap_or(false);
            (ReplyStyle::LegacyReplyToMessageId(message_id), allow)
        }
        (Some(Value::Null) | None, _) => (ReplyStyle::None, false),
        (Some(_), _) => {
            return bad_request("Bad Request: can't parse reply parameters JSON object");
        }
    };
    let quoted_id = match &reply {
        ReplyStyle::ReplyParameters { message_id, .. }
        | ReplyStyle::LegacyReplyToMessageId(message_id) => Some(*message_id),
        ReplyStyle::None => None,
    };
    let quoted = quoted_id.and_then(|id| shared.quoted(chat_id, id));
    if quoted_id.is_some() && quoted.is_none() && !allow_without {
        return bad_request("Bad Request: message to be replied not found");
    }
    if let Some(retry_after) = shared.flooded(chat_id) {
        return too_many_requests(retry_after);
    }

    let message_id = shared.next_message_id(chat_id);
    let mut message = json!({
        "message_id": message_id,
        "chat": chat.json.clone(),
        "date": now_secs(),
        "text": text,
    });
    if chat.channel {
        message["sender_chat"] = chat.json.clone();
    } else {
        message["from"] = bot.to_json();
    }
    let entities = entities_of(text);
    if !entities.is_empty() {
        message["entities"] = Value::Array(entities);
    }
    let replied_to = quoted
        .as_ref()
        .and_then(|q| q.get("message_id"))
        .and_then(Value::as_i64);
    if let Some(quoted) = quoted {
        message["reply_to_message"] = quoted;
    }
    let link_preview_options = params
        .get("link_preview_options")
        .filter(|v| v.is_object())
        .cloned();
    if let Some(options) = &link_preview_options {
        message["link_preview_options"] = options.clone();
    }
    shared
        .messages
        .entry(chat_id)
        .or_default()
        .push(message.clone());
    shared.sent.push(SentMessage {
        chat_id,
        message_id,
        text: text.to_owned(),
        reply,
        replied_to,
        link_preview_options,
    });
    ok(message)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::connector::{Credentials, OutboundReply, Post, ReplyTarget, SendError};
    use crate::telegram::{self, ALLOWED_UPDATES, TelegramClient};
    use axum::http::HeaderMap;
    use secrecy::SecretString;
    use ventanilla_social_domain::inbound::MessageKind;

    const TOKEN: &str = "7000000001:AAH-fake_bot_token";
    const BOT_ID: i64 = 7_000_000_001;
    const BOT_NAME: &str = "AytoVillanuevaBot";
    const CITIZEN: i64 = 111_111;
    const GROUP: i64 = -1_001_234_567_890;

    fn creds(token: &str) -> Credentials {
        Credentials {
            external_id: BOT_ID.to_string(),
            access_token: SecretString::from(token.to_owned()),
            signing_secret: SecretString::from("webhook-secret_1".to_owned()),
            verify_token: SecretString::from(String::new()),
            human_agent: false,
        }
    }

    async fn setup() -> (FakeTelegram, TelegramClient) {
        let fake = FakeTelegram::start().await;
        fake.add_bot(TOKEN, BOT_ID, BOT_NAME);
        let client = TelegramClient::new(fake.base_url(), reqwest::Client::new());
        (fake, client)
    }

    fn citizen() -> TelegramUser {
        TelegramUser::new(CITIZEN, "Ana", Some("ana_vecina"))
    }

    fn reply(target: ReplyTarget, text: &str) -> OutboundReply {
        OutboundReply {
            target,
            text: text.into(),
            now: Utc::now(),
        }
    }

    fn public(in_reply_to: &str) -> ReplyTarget {
        ReplyTarget::Public {
            in_reply_to: in_reply_to.into(),
        }
    }

    fn direct(chat: i64) -> ReplyTarget {
        ReplyTarget::Direct {
            recipient: chat.to_string(),
            last_inbound_at: Utc::now() - chrono::Duration::days(30),
        }
    }

    #[tokio::test]
    async fn a_group_mention_is_answered_with_reply_parameters() {
        let (fake, client) = setup().await;
        let body = fake.update_message(
            1,
            GROUP,
            &citizen(),
            "Hola @AytoVillanuevaBot, hay un bache en la calle Mayor",
            None,
        );
        let (update_id, delivery) =
            telegram::parse(&body, &BOT_ID.to_string(), Some(BOT_NAME)).unwrap();
        assert_eq!(update_id, 1);
        let message = &delivery.messages[0];
        assert_eq!(message.kind, MessageKind::Mention);
        assert_eq!(message.platform_id, format!("{GROUP}:1"));
        assert_eq!(message.author.handle.as_deref(), Some("@ana_vecina"));

        let sent = client
            .send(
                &creds(TOKEN),
                &reply(public(&message.platform_id), "Gracias, lo revisamos."),
            )
            .await
            .unwrap();
        assert_eq!(sent.platform_id, format!("{GROUP}:2"));

        let request = fake.requests().pop().unwrap();
        assert_eq!(
            (
                request.http_method.as_str(),
                request.method.as_str(),
                request.token.as_str()
            ),
            ("POST", "sendMessage", TOKEN)
        );
        assert_eq!(request.params["chat_id"], json!(GROUP));
        assert_eq!(request.params["text"], "Gracias, lo revisamos.");
        assert_eq!(
            request.params["reply_parameters"],
            json!({"message_id": 1, "allow_sending_without_reply": true})
        );
        assert!(!request.params.contains_key("reply_to_message_id"));
        let out = &fake.sent()[0];
        assert_eq!(
            out.reply,
            ReplyStyle::ReplyParameters {
                message_id: 1,
                allow_sending_without_reply: true
            }
        );
        assert_eq!(out.replied_to, Some(1));

        // The citizen answers the bot: a Reply quoting our message.
        let body = fake.update_message(2, GROUP, &citizen(), "Sigue igual", Some(2));
        let (_, delivery) = telegram::parse(&body, &BOT_ID.to_string(), Some(BOT_NAME)).unwrap();
        assert_eq!(delivery.messages[0].kind, MessageKind::Reply);
        assert_eq!(
            delivery.messages[0].in_reply_to.as_deref(),
            Some(format!("{GROUP}:2").as_str())
        );
    }

    #[tokio::test]
    async fn a_private_chat_and_an_edit_are_answered_in_place() {
        let (fake, client) = setup().await;
        fake.update_message(1, CITIZEN, &citizen(), "Hola", None);
        let sent = client
            .send(
                &creds(TOKEN),
                &reply(direct(CITIZEN), "Buenos días, ¿en qué calle?"),
            )
            .await
            .unwrap();
        assert_eq!(sent.platform_id, format!("{CITIZEN}:2"));
        assert_eq!(fake.sent()[0].reply, ReplyStyle::None);

        let body = fake
            .update_edit(2, CITIZEN, 1, "Hola, en la calle Mayor")
            .unwrap();
        let (_, delivery) = telegram::parse(&body, &BOT_ID.to_string(), Some(BOT_NAME)).unwrap();
        let edit = &delivery.messages[0];
        assert_eq!(edit.kind, MessageKind::Direct);
        assert!(
            edit.platform_id
                .starts_with(&format!("{CITIZEN}:1:edited:"))
        );
        client
            .send(&creds(TOKEN), &reply(public(&edit.platform_id), "Gracias"))
            .await
            .unwrap();
        assert_eq!(fake.sent()[1].replied_to, Some(1));
    }

    #[tokio::test]
    async fn a_deleted_quoted_message_does_not_stop_the_reply() {
        let (fake, client) = setup().await;
        fake.update_message(1, CITIZEN, &citizen(), "Hola", None);
        let sent = client
            .send(
                &creds(TOKEN),
                &reply(public(&format!("{CITIZEN}:99")), "Hola"),
            )
            .await
            .unwrap();
        assert_eq!(sent.platform_id, format!("{CITIZEN}:2"));
        assert_eq!(fake.sent()[0].replied_to, None);

        // A server still refusing it: sent again without the quote.
        fake.fail_next_with(400, "Bad Request: message to be replied not found");
        client
            .send(
                &creds(TOKEN),
                &reply(public(&format!("{CITIZEN}:1")), "Otra"),
            )
            .await
            .unwrap();
        let requests = fake.requests();
        let last_two = &requests[requests.len() - 2..];
        assert!(last_two[0].params.contains_key("reply_parameters"));
        assert!(!last_two[1].params.contains_key("reply_parameters"));
        assert_eq!(fake.sent().len(), 2);
    }

    #[tokio::test]
    async fn flood_limits_come_back_as_rate_limited_until_retry_after() {
        let (fake, client) = setup().await;
        fake.update_message(1, CITIZEN, &citizen(), "Hola", None);
        fake.set_flood_limit(Some(1), 7);
        let first = reply(direct(CITIZEN), "uno");
        client.send(&creds(TOKEN), &first).await.unwrap();
        let second = reply(direct(CITIZEN), "dos");
        assert_eq!(
            client.send(&creds(TOKEN), &second).await,
            Err(SendError::RateLimited {
                network: "telegram",
                until: second.now + chrono::Duration::seconds(7)
            })
        );
        let request = fake.requests().pop().unwrap();
        assert_eq!(request.method, "sendMessage");

        fake.set_flood_limit(None, 0);
        fake.fail_next(429);
        let third = reply(direct(CITIZEN), "tres");
        let error = client.send(&creds(TOKEN), &third).await.unwrap_err();
        assert_eq!(
            error,
            SendError::RateLimited {
                network: "telegram",
                until: third.now + chrono::Duration::seconds(5)
            }
        );
        assert!(error.is_retryable() && error.degrades_account());
        assert!(client.send(&creds(TOKEN), &third).await.is_ok());
    }

    #[tokio::test]
    async fn blocked_or_never_started_chats_say_what_the_citizen_must_do() {
        let (fake, client) = setup().await;
        fake.update_message(1, CITIZEN, &citizen(), "Hola", None);
        fake.block_chat(CITIZEN);
        let error = client
            .send(&creds(TOKEN), &reply(direct(CITIZEN), "Hola"))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, SendError::Rejected { network: "telegram", reason } if reason.contains("unblock")),
            "{error:?}"
        );
        assert!(!error.is_retryable() && !error.degrades_account());

        let error = client
            .send(&creds(TOKEN), &reply(direct(222_222), "Hola"))
            .await
            .unwrap_err();
        assert!(
            matches!(&error, SendError::Rejected { reason, .. } if reason.contains("write to it")),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_revoked_token_must_be_linked_again_and_is_never_shown() {
        let (fake, client) = setup().await;
        fake.update_message(1, CITIZEN, &citizen(), "Hola", None);
        assert_eq!(
            client.get_me(&creds(TOKEN)).await.unwrap(),
            telegram::BotInfo {
                id: BOT_ID.to_string(),
                username: BOT_NAME.into(),
                can_read_all_group_messages: false,
            }
        );
        fake.revoke(TOKEN);
        for error in [
            client.get_me(&creds(TOKEN)).await.unwrap_err(),
            client
                .send(&creds(TOKEN), &reply(direct(CITIZEN), "Hola"))
                .await
                .unwrap_err(),
        ] {
            assert_eq!(
                error,
                SendError::TokenExpired {
                    network: "telegram"
                }
            );
            assert!(!error.to_string().contains("AAH-fake_bot_token"));
        }
        assert!(!format!("{:?}", creds(TOKEN)).contains("AAH-fake_bot_token"));
    }

    #[tokio::test]
    async fn server_errors_are_temporary_and_carry_no_token() {
        let (fake, client) = setup().await;
        fake.update_message(1, CITIZEN, &citizen(), "Hola", None);
        for status in [502, 500] {
            fake.fail_next(status);
            let error = client
                .send(&creds(TOKEN), &reply(direct(CITIZEN), "Hola"))
                .await
                .unwrap_err();
            assert!(matches!(error, SendError::Temporary { .. }), "{error:?}");
            assert!(!error.to_string().contains("AAH"));
        }
        // A server that is gone.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let gone = TelegramClient::new(format!("http://127.0.0.1:{port}"), reqwest::Client::new());
        let error = gone
            .send(&creds(TOKEN), &reply(direct(CITIZEN), "Hola"))
            .await
            .unwrap_err();
        assert!(matches!(&error, SendError::Temporary { reason, .. } if !reason.contains("AAH")));
    }

    #[tokio::test]
    async fn set_webhook_records_the_secret_and_telegram_checks_the_url() {
        let (fake, client) = setup().await;
        let secret = SecretString::from(telegram::new_secret_token().unwrap());
        let url = "https://ventanilla.example/webhooks/telegram/0b9c";
        client
            .set_webhook(&creds(TOKEN), url, &secret, &ALLOWED_UPDATES)
            .await
            .unwrap();
        let webhook = fake.webhook(TOKEN).unwrap();
        assert_eq!(webhook.url, url);
        assert_eq!(
            webhook.secret_token.as_deref(),
            Some(secrecy::ExposeSecret::expose_secret(&secret))
        );
        assert_eq!(
            webhook.allowed_updates,
            Some(vec!["message".to_owned(), "edited_message".to_owned()])
        );
        assert!(!webhook.drop_pending_updates);

        let refused = client
            .set_webhook(
                &creds(TOKEN),
                "http://ventanilla.example/hook",
                &secret,
                &ALLOWED_UPDATES,
            )
            .await;
        assert!(
            matches!(&refused, Err(SendError::Rejected { reason, .. }) if reason.contains("HTTPS URL")),
            "{refused:?}"
        );
        let refused = client
            .set_webhook(
                &creds(TOKEN),
                "https://ventanilla.example:8080/hook",
                &secret,
                &ALLOWED_UPDATES,
            )
            .await;
        assert!(
            matches!(&refused, Err(SendError::Rejected { reason, .. }) if reason.contains("ports"))
        );
        // A secret Telegram would refuse is not sent at all.
        let calls = fake.requests().len();
        let bad_secret = SecretString::from("con espacios".to_owned());
        assert!(matches!(
            client
                .set_webhook(&creds(TOKEN), url, &bad_secret, &ALLOWED_UPDATES)
                .await,
            Err(SendError::Rejected { .. })
        ));
        assert_eq!(fake.requests().len(), calls);
        // The fake refuses it too, with Telegram's words.
        let answer: Value = reqwest::Client::new()
            .post(format!("{}/bot{TOKEN}/setWebhook", fake.base_url()))
            .json(&json!({"url": url, "secret_token": "con espacios"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            answer,
            json!({"ok": false, "error_code": 400, "description": "Bad Request: secret token contains unallowed characters"})
        );

        client.delete_webhook(&creds(TOKEN)).await.unwrap();
        assert_eq!(fake.webhook(TOKEN), None);
    }

    #[tokio::test]
    async fn deliveries_carry_the_secret_header_like_telegram() {
        let (fake, _client) = setup().await;
        let expected = SecretString::from("webhook-secret_1".to_owned());
        let app = Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let expected = expected.clone();
            async move {
                let header = headers
                    .get(telegram::SECRET_HEADER)
                    .and_then(|v| v.to_str().ok());
                if telegram::verify_secret(&expected, header).is_err() {
                    return StatusCode::UNAUTHORIZED;
                }
                match telegram::parse(&body, &BOT_ID.to_string(), Some(BOT_NAME)) {
                    Ok((_, delivery)) if delivery.messages.len() == 1 => StatusCode::OK,
                    _ => StatusCode::BAD_REQUEST,
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!(
            "http://{}/webhooks/telegram",
            listener.local_addr().unwrap()
        );
        let server = tokio::spawn(async move { axum::serve(listener, app).await });

        let body = fake.update_message(41, CITIZEN, &citizen(), "Hola", None);
        assert_eq!(
            deliver(&url, Some("webhook-secret_1"), &body)
                .await
                .unwrap(),
            StatusCode::OK
        );
        assert_eq!(
            deliver(&url, Some("webhook-secret_2"), &body)
                .await
                .unwrap(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            deliver(&url, None, &body).await.unwrap(),
            StatusCode::UNAUTHORIZED
        );
        server.abort();
    }

    #[tokio::test]
    async fn publishing_on_a_channel_shows_the_link_preview() {
        let (fake, client) = setup().await;
        let channel_id = -1_009_876_543_210;
        fake.add_channel(channel_id, "ayto_avisos", true);
        let post = Post {
            text: "Corte de agua mañana en el centro.".into(),
            link: Some("https://ayto.example/avisos/agua".into()),
            ..Post::default()
        };
        let sent = client
            .publish(&creds(TOKEN), "@ayto_avisos", &post)
            .await
            .unwrap();
        assert_eq!(sent.platform_id, format!("{channel_id}:1"));
        let request = fake.requests().pop().unwrap();
        assert_eq!(request.params["chat_id"], "@ayto_avisos");
        assert_eq!(
            request.params["text"],
            "Corte de agua mañana en el centro.\n\nhttps://ayto.example/avisos/agua"
        );
        assert_eq!(
            request.params["link_preview_options"],
            json!({"is_disabled": false, "url": "https://ayto.example/avisos/agua"})
        );
        // By id too.
        let sent = client
            .publish(&creds(TOKEN), &channel_id.to_string(), &post)
            .await
            .unwrap();
        assert_eq!(sent.platform_id, format!("{channel_id}:2"));

        // Not an administrator there; a channel that does not exist.
        fake.add_channel(-1_005_555_555_555, "otro_canal", false);
        let error = client
            .publish(&creds(TOKEN), "@otro_canal", &post)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, SendError::PermissionMissing { permission, .. } if permission.contains("@otro_canal")),
            "{error:?}"
        );
        assert!(error.degrades_account());
        let error = client
            .publish(&creds(TOKEN), "@no_existe", &post)
            .await
            .unwrap_err();
        assert!(
            matches!(&error, SendError::Rejected { reason, .. } if reason.contains("@no_existe") && reason.contains("administrator")),
            "{error:?}"
        );
    }
}
