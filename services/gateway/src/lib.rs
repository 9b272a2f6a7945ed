//! The gateway: the platform's public door, a GraphQL API (async-graphql on
//! axum) for integrators, staff and, later, the web pages.
//!
//! - `POST /graphql` runs one GraphQL request (a JSON object with `query`,
//!   `variables`, `operationName`); `GET /graphql` is GraphiQL for
//!   browsers;
//! - [`auth`] turns `Authorization: Bearer …` into the request's principal,
//!   and with it the tenant: nothing else names one;
//! - [`schema`] is the schema, one area per module; [`error`] the one place
//!   refusals get their `extensions.code`; [`introspection`] tells
//!   introspection queries apart.
//!
//! Limits: the request body ([`MAX_BODY_BYTES`], else `413` with a
//! GraphQL-shaped error), query depth and complexity, page size
//! (`[gateway]` settings); requests per key and per address
//! ([`rate_limit`], else `429` with `Retry-After`); introspection can be
//! switched off.
//!
//! What this crate must not do: hold business rules, read or write a
//! table, or take a tenant from input. It calls each service through that
//! service's client API.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use async_graphql::dataloader::DataLoader;
use async_graphql::http::GraphiQLSource;
use async_graphql::parser::types::OperationType;
use async_graphql::{Request, Response};
use async_trait::async_trait;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::header::{AUTHORIZATION, CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tower_http::limit::RequestBodyLimitLayer;
use ventanilla_postgres::PgEventLog;
use ventanilla_runtime::{Module, Running, Settings, StartContext};
use ventanilla_social::SocialService;
use ventanilla_tenants::api_keys::ApiKeys;
use ventanilla_tenants::operator::Operator;
use ventanilla_tenants::organisation::Organisation;
use ventanilla_tenants::staff::Staff;
use ventanilla_tickets::notify::service::{Notifications, NotifyConfig};
use ventanilla_tickets::service::Tickets;

pub mod auth;
pub mod error;
pub mod introspection;
pub mod live;
pub mod rate_limit;
pub mod schema;

use crate::auth::{Authenticator, Principal};
use crate::error::{code, coded, refusal, response_of, with_codes};
use crate::introspection::{INTROSPECTION_MAX_DEPTH, Introspection};
use crate::rate_limit::{Limited, RateLimiter};
use crate::schema::{Services, VentanillaSchema};

/// The largest request body `/graphql` reads; larger ones are refused with
/// `413`.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The path of the API.
pub const GRAPHQL_PATH: &str = "/graphql";

/// The path of the live subscriptions (WebSocket, `graphql-transport-ws`).
pub const GRAPHQL_WS_PATH: &str = "/graphql/ws";

/// The gateway as a module of the binary.
pub struct Gateway {
    log: Arc<PgEventLog>,
    settings: Settings,
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").finish_non_exhaustive()
    }
}

impl Gateway {
    /// The gateway over `log`, configured by `settings` (`[gateway]`, and
    /// `[notify]` for the subscriptions integrators create).
    pub fn new(log: Arc<PgEventLog>, settings: &Settings) -> Self {
        Self {
            log,
            settings: settings.clone(),
        }
    }

    /// The routes: `/` (what this process serves) and `/graphql`. Fails
    /// when the settings cannot be used (a malformed `notify.key`).
    pub fn router(&self) -> anyhow::Result<Router> {
        self.router_with(live::Live::idle())
    }

    /// [`Gateway::router`], its live subscriptions fed by `live`.
    pub fn router_with(&self, live: live::Live) -> anyhow::Result<Router> {
        let endpoint = Endpoint::new(Arc::clone(&self.log), &self.settings, live)?;
        Ok(router(Arc::new(endpoint)))
    }
}

#[async_trait]
impl Module for Gateway {
    fn name(&self) -> &'static str {
        "gateway"
    }

    async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
        let live = live::Live::start(
            Arc::clone(&self.log),
            Tickets::new(Arc::clone(&self.log)),
            ctx.shutdown(),
        )
        .await?;
        ctx.add_routes(self.router_with(live)?);
        Ok(Running::until_shutdown(ctx.shutdown()))
    }
}

/// What every request to `/graphql` shares.
struct Endpoint {
    /// The schema, with the configured limits.
    schema: VentanillaSchema,
    /// The same types, for queries made only of introspection: deeper, and
    /// unable to run anything else. `None` when introspection is off.
    introspection: Option<VentanillaSchema>,
    auth: Authenticator,
    /// Requests per key and per address.
    limiter: RateLimiter,
    /// What this process remembers of who is who (when it follows the
    /// log); a mutation run here forgets its tenant's at once.
    memos: Option<live::Memos>,
}

impl Endpoint {
    fn new(log: Arc<PgEventLog>, settings: &Settings, live: live::Live) -> anyhow::Result<Self> {
        let gateway = &settings.gateway;
        let staff = Arc::new(Staff::new(Arc::clone(&log)));
        let api_keys = Arc::new(ApiKeys::new(Arc::clone(&log)));
        let services = Arc::new(Services {
            staff: Arc::clone(&staff),
            operator: Operator::new(Arc::clone(&log), "gateway"),
            organisation: Organisation::new(Arc::clone(&log)),
            api_keys: Arc::clone(&api_keys),
            // The social service's client API, as its module builds it (so
            // that linking a Telegram bot can register its webhook).
            accounts: SocialService::new(Arc::clone(&log), settings.social.clone(), "gateway")
                .accounts(),
            tickets: match live.memos() {
                Some(memos) => Tickets::new(Arc::clone(&log)).remembering(memos.roles.clone()),
                None => Tickets::new(Arc::clone(&log)),
            },
            notifications: Notifications::new(
                Arc::clone(&log),
                NotifyConfig::from_settings(&settings.notify)?,
            ),
            max_page_size: gateway.max_page_size,
        });
        let limiter = RateLimiter::new(services.tickets.tenancy().clone());
        let build = |depth: usize| {
            schema::builder()
                .data(Arc::clone(&services))
                .data(live.clone())
                .data(DataLoader::new(
                    schema::tickets::TicketLoader::new(Arc::clone(&services)),
                    tokio::spawn,
                ))
                .limit_depth(depth)
                .limit_complexity(gateway.max_complexity)
        };
        let (schema, introspection) = if gateway.introspection {
            let deeper = INTROSPECTION_MAX_DEPTH.max(gateway.max_depth);
            (
                build(gateway.max_depth).finish(),
                Some(build(deeper).introspection_only().finish()),
            )
        } else {
            (
                build(gateway.max_depth).disable_introspection().finish(),
                None,
            )
        };
        Ok(Self {
            schema,
            introspection,
            auth: match live.memos() {
                Some(memos) => Authenticator::new(gateway.operator_token.clone(), staff, api_keys)
                    .remembering(memos.principals.clone()),
                None => Authenticator::new(gateway.operator_token.clone(), staff, api_keys),
            },
            memos: live.memos().cloned(),
            limiter,
        })
    }

    /// Runs one request: parse, authenticate, count it against the rate
    /// limits, pick the schema, execute. `Err` when it is over a limit.
    async fn execute(
        &self,
        authorization: Option<&HeaderValue>,
        address: Option<IpAddr>,
        mut request: Request,
    ) -> Result<Response, Limited> {
        let (introspection, mutates) = match request.parsed_query() {
            Ok(doc) => (
                Introspection::of(doc),
                doc.operations
                    .iter()
                    .any(|(_, op)| op.node.ty == OperationType::Mutation),
            ),
            Err(e) => return Ok(with_codes(Response::from_errors(vec![e]))),
        };
        let schema = if introspection.touches {
            let Some(introspection_schema) = &self.introspection else {
                return Ok(response_of(coded(
                    code::FORBIDDEN,
                    "introspection is switched off on this server; the schema is published as schema/ventanilla.graphql",
                )));
            };
            if !introspection.bounded() {
                return Ok(response_of(coded(
                    code::VALIDATION,
                    format!(
                        "this introspection query nests more than {} lists (types, fields, args…); ask for less at a time",
                        introspection::MAX_NESTED_LISTS
                    ),
                )));
            }
            if introspection.only {
                introspection_schema
            } else {
                &self.schema
            }
        } else {
            &self.schema
        };
        let principal = match self.auth.principal(authorization).await {
            Ok(principal) => principal,
            Err(e) => return Ok(response_of(e)),
        };
        self.limiter.check(&principal, address).await?;
        let tenant = principal.tenant();
        let operator = principal == Principal::Operator;
        let response = with_codes(schema.execute(request.data(principal)).await);
        // Read-your-writes for who is who: a change made here counts from
        // the next request, before the log's reader has seen it.
        if mutates && let Some(memos) = &self.memos {
            match tenant {
                Some(tenant) => memos.forget(tenant),
                None if operator => memos.forget_all(),
                None => {}
            }
        }
        Ok(response)
    }
}

fn router(endpoint: Arc<Endpoint>) -> Router {
    let graphql = Router::new()
        .route(GRAPHQL_PATH, get(graphiql).post(graphql))
        .route(GRAPHQL_WS_PATH, get(graphql_ws))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(shape_too_large))
        .with_state(endpoint);
    Router::new().route("/", get(index)).merge(graphql)
}

async fn index() -> impl IntoResponse {
    Json(json!({
        "name": "Ventanilla",
        "version": env!("CARGO_PKG_VERSION"),
        "endpoints": {
            "health": "/healthz",
            "readiness": "/readyz",
            "graphql": GRAPHQL_PATH,
            "subscriptions": GRAPHQL_WS_PATH,
        },
    }))
}

async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint(GRAPHQL_PATH)
            .subscription_endpoint(GRAPHQL_WS_PATH)
            .title("Ventanilla GraphQL")
            .finish(),
    )
}

async fn graphql(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Result<Bytes, BytesRejection>,
) -> axum::response::Response {
    let body = match body {
        Ok(body) => body,
        Err(rejection) if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return too_large();
        }
        Err(_) => {
            return answer(
                StatusCode::BAD_REQUEST,
                &refusal(
                    code::VALIDATION,
                    "the request body could not be read; send a JSON object {\"query\": …}",
                ),
            );
        }
    };
    let request: Request = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return answer(
                StatusCode::BAD_REQUEST,
                &refusal(
                    code::VALIDATION,
                    format!(
                        "the body is not a GraphQL request: send a JSON object {{\"query\": \"…\", \"variables\": {{…}}}} ({e})"
                    ),
                ),
            );
        }
    };
    if request.query.trim().is_empty() {
        return answer(
            StatusCode::BAD_REQUEST,
            &refusal(
                code::VALIDATION,
                "the request has no query: send a JSON object {\"query\": \"…\"}",
            ),
        );
    }
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    match endpoint
        .execute(headers.get(AUTHORIZATION), address, request)
        .await
    {
        Ok(response) => answer(StatusCode::OK, &response),
        Err(limited) => rate_limited(limited),
    }
}

/// The live subscriptions: a WebSocket speaking `graphql-transport-ws`
/// (or the older `graphql-ws`). The principal comes in the
/// `connection_init` payload (`{"Authorization": "Bearer …"}`), is checked
/// like a request's, and counts once against the rate limits.
async fn graphql_ws(
    State(endpoint): State<Arc<Endpoint>>,
    headers: HeaderMap,
    extensions: Extensions,
    upgrade: axum::extract::ws::WebSocketUpgrade,
) -> axum::response::Response {
    use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols};
    let protocol = headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .and_then(|list| {
            list.split(',')
                .find_map(|p| p.trim().parse::<WebSocketProtocols>().ok())
        });
    let Some(protocol) = protocol else {
        return answer(
            StatusCode::BAD_REQUEST,
            &refusal(
                code::VALIDATION,
                "ask for the graphql-transport-ws subprotocol (Sec-WebSocket-Protocol)",
            ),
        );
    };
    let address = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| peer.ip());
    upgrade
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |socket| serve_ws(endpoint, socket, protocol, address))
}

async fn serve_ws(
    endpoint: Arc<Endpoint>,
    socket: axum::extract::ws::WebSocket,
    protocol: async_graphql::http::WebSocketProtocols,
    address: Option<IpAddr>,
) {
    use async_graphql::futures_util::{SinkExt, StreamExt, future};
    use async_graphql::http::{WebSocket, WsMessage};
    use axum::extract::ws::{CloseFrame, Message};
    let (mut sink, stream) = socket.split();
    let input = stream
        .take_while(|m| future::ready(m.is_ok()))
        .filter_map(|m| {
            future::ready(match m {
                Ok(Message::Text(text)) => Some(text.as_str().as_bytes().to_vec()),
                Ok(Message::Binary(bytes)) => Some(bytes.to_vec()),
                _ => None,
            })
        });
    let init = Arc::clone(&endpoint);
    // Set when `connection_init` is refused, so that the close says
    // `4403: Forbidden`, as the protocol recommends (async-graphql says
    // 1002, a protocol error, which the client did not make).
    let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let refuse = Arc::clone(&refused);
    let mut output = WebSocket::new(endpoint.schema.clone(), input, protocol)
        .on_connection_init(move |payload: serde_json::Value| async move {
            let token = payload
                .get("Authorization")
                .or_else(|| payload.get("authorization"))
                .and_then(serde_json::Value::as_str)
                .and_then(|t| HeaderValue::from_str(t).ok());
            let refusing = |e: async_graphql::Error| {
                refuse.store(true, std::sync::atomic::Ordering::Relaxed);
                e
            };
            let principal = init
                .auth
                .principal(token.as_ref())
                .await
                .map_err(refusing)?;
            if init.limiter.check(&principal, address).await.is_err() {
                return Err(refusing(async_graphql::Error::new(
                    "too many requests for your plan's rate limit; connect again later",
                )));
            }
            let mut data = async_graphql::Data::default();
            data.insert(principal);
            Ok(data)
        })
        .map(|message| match message {
            WsMessage::Text(text) => Message::Text(with_ws_codes(text).into()),
            WsMessage::Close(code, mut reason) => {
                let code = if code == 1002 && refused.load(std::sync::atomic::Ordering::Relaxed) {
                    4403
                } else {
                    code
                };
                // A close frame's reason holds at most 123 bytes.
                let mut end = reason.len().min(123);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                reason.truncate(end);
                Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                }))
            }
        });
    while let Some(message) = output.next().await {
        if sink.send(message).await.is_err() {
            break;
        }
    }
}

/// A message of the subscription protocol with [`with_codes`] applied to
/// the errors it carries (a subscription that does not validate is
/// answered inside the protocol, where the HTTP path's mapping does not
/// reach): `next`'s `payload.errors`, `error`'s `payload`.
fn with_ws_codes(text: String) -> String {
    if !text.contains("\"errors\"") && !text.contains("\"type\":\"error\"") {
        return text;
    }
    let Ok(mut message) = serde_json::from_str::<serde_json::Value>(&text) else {
        return text;
    };
    let errors = match message.get_mut("payload") {
        Some(serde_json::Value::Array(errors)) => Some(errors),
        Some(payload) => payload
            .get_mut("errors")
            .and_then(serde_json::Value::as_array_mut),
        None => None,
    };
    let Some(errors) = errors else {
        return text;
    };
    for error in errors
        .iter_mut()
        .filter_map(serde_json::Value::as_object_mut)
    {
        let extensions = error
            .entry("extensions")
            .or_insert_with(|| serde_json::json!({}));
        if let Some(extensions) = extensions.as_object_mut() {
            extensions
                .entry("code")
                .or_insert_with(|| code::VALIDATION.into());
        }
    }
    message.to_string()
}

/// A GraphQL response as JSON, never cached.
fn answer(status: StatusCode, response: &Response) -> axum::response::Response {
    (
        status,
        [(CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        Json(response),
    )
        .into_response()
}

/// `429` with `Retry-After` and the code `RATE_LIMITED`.
fn rate_limited(limited: Limited) -> axum::response::Response {
    let seconds = limited.retry_after_secs;
    let mut response = answer(
        StatusCode::TOO_MANY_REQUESTS,
        &refusal(
            code::RATE_LIMITED,
            format!("too many requests for your plan's rate limit; retry in {seconds} seconds"),
        ),
    );
    response
        .headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn too_large() -> axum::response::Response {
    answer(
        StatusCode::PAYLOAD_TOO_LARGE,
        &refusal(
            code::VALIDATION,
            format!(
                "the request body is larger than {MAX_BODY_BYTES} bytes; send a smaller query, and large values as fewer, smaller requests"
            ),
        ),
    )
}

/// The body limit answers `413` in plain text when the declared length is
/// too large; integrators get the same GraphQL-shaped error either way.
async fn shape_too_large(response: axum::response::Response) -> axum::response::Response {
    let is_json = response
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE && !is_json {
        too_large()
    } else {
        response
    }
}
