//! The webhook endpoints the networks call, one URL per linked account:
//! `/webhooks/meta/{account}` (Facebook Pages, Messenger, Instagram) and
//! `/webhooks/x/{account}` (X Account Activity). The URL names the account,
//! so its secret is known before anything in the body is read.
//!
//! For each delivery: find the account's tenant (`social_account_lookup`),
//! check the signature over the raw bytes (401 when wrong or missing),
//! refuse an oversized body (413), parse it (400 when malformed, logged
//! once), and record each citizen's message as a `social.message_received`
//! event with an id derived from the platform's message id — so a
//! redelivery stores nothing new — then answer 200 at once. The tickets
//! service does the rest from the log. A delivery for an unlinked account,
//! or a suspended tenant's, is acknowledged and parked (`social_parked`),
//! not lost.
//!
//! Verification requests: Meta's `hub.challenge` (403 for a wrong token),
//! X's CRC (`crc_token`).
//!
//! What this module must not do: open tickets, call a network, or log a
//! body or a secret.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_social_domain::account::{AccountId, Network};
use ventanilla_tenancy::TenancyError;

use crate::accounts::{Accounts, SocialError};
use crate::connector::{Delivery, WebhookError};
use crate::{meta, telegram, whatsapp, x};

/// The largest webhook body accepted, in bytes (Meta batches up to 1,000
/// updates; their bodies stay well under this).
pub const BODY_LIMIT: usize = 2 * 1024 * 1024;

/// What the endpoints need.
#[derive(Clone)]
pub struct Webhooks {
    accounts: Accounts,
    log: Arc<PgEventLog>,
}

impl Webhooks {
    /// The endpoints over `accounts` and `log`.
    pub fn new(accounts: Accounts, log: Arc<PgEventLog>) -> Self {
        Self { accounts, log }
    }

    /// The routes, to merge into the process's router.
    pub fn router(self) -> Router {
        Router::new()
            .route(
                "/webhooks/meta/{account}",
                get(meta_verify).post(meta_deliver),
            )
            .route("/webhooks/x/{account}", get(x_crc).post(x_deliver))
            .route("/webhooks/telegram/{account}", post(telegram_deliver))
            .route(
                "/webhooks/whatsapp/{account}",
                get(meta_verify).post(whatsapp_deliver),
            )
            .layer(DefaultBodyLimit::max(BODY_LIMIT))
            .with_state(self)
    }
}

/// Which account a URL names and what the platform knows of it.
struct Target {
    tenant: TenantId,
    account: AccountId,
    network: Network,
    unlinked: bool,
}

fn status(code: StatusCode, text: &'static str) -> Response {
    (code, text).into_response()
}

impl Webhooks {
    async fn target(&self, account: &str) -> Result<Target, Response> {
        let Ok(id) = Uuid::parse_str(account) else {
            return Err(status(StatusCode::NOT_FOUND, "no such account"));
        };
        let found: Option<(Uuid, String, bool)> =
            sqlx::query_as("SELECT tenant_id, network, unlinked FROM social_account_lookup($1)")
                .bind(id)
                .fetch_optional(self.log.pool())
                .await
                .map_err(|e| internal(&e))?;
        let Some((tenant, network, unlinked)) = found else {
            return Err(status(StatusCode::NOT_FOUND, "no such account"));
        };
        let network = Network::parse(&network)
            .ok_or_else(|| status(StatusCode::NOT_FOUND, "no such account"))?;
        Ok(Target {
            tenant: TenantId::from_uuid(tenant),
            account: AccountId(id),
            network,
            unlinked,
        })
    }

    /// Keeps a delivery that cannot be processed now.
    async fn park(&self, t: &Target, reason: &str, body: &[u8]) -> Response {
        let result = async {
            let mut tx = begin_for_tenant(self.log.pool(), t.tenant).await?;
            sqlx::query(
                "INSERT INTO social_parked (tenant_id, parked_id, account_id, network, reason, body, received_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, now())",
            )
            .bind(t.tenant.into_uuid())
            .bind(Uuid::new_v4())
            .bind(t.account.0)
            .bind(t.network.as_str())
            .bind(reason)
            .bind(body)
            .execute(&mut *tx)
            .await?;
            tx.commit().await
        }
        .await;
        match result {
            Ok(()) => {
                tracing::warn!(tenant_id = %t.tenant, account = %t.account.0, reason, "webhook parked");
                status(StatusCode::OK, "EVENT_RECEIVED")
            }
            Err(e) => internal(&e),
        }
    }

    /// Records the citizens' messages of a verified, parsed delivery.
    async fn ingest(&self, t: &Target, delivery: Delivery) -> Response {
        if !delivery.removed.is_empty() {
            tracing::info!(account = %t.account.0, removed = delivery.removed.len(), "citizens removed messages (kept in the tickets)");
        }
        match crate::ingest::record(&self.log, t.tenant, t.account, delivery.messages).await {
            Ok(_) => status(StatusCode::OK, "EVENT_RECEIVED"),
            Err(e) => internal(&e),
        }
    }

    /// The common path of a POST: account, suspension, signature, parse.
    async fn deliver(
        &self,
        account: &str,
        body: &[u8],
        verify: impl FnOnce(&crate::connector::Credentials) -> Result<(), WebhookError>,
        parse: impl FnOnce(&str) -> Result<Delivery, WebhookError>,
    ) -> Response {
        let t = match self.target(account).await {
            Ok(t) => t,
            Err(r) => return r,
        };
        if t.unlinked {
            return self
                .park(
                    &t,
                    "the account is unlinked; the signature was not checked",
                    body,
                )
                .await;
        }
        let creds = match self.accounts.credentials(t.tenant, t.account).await {
            Ok(c) => c,
            Err(SocialError::NotFound) => {
                return self
                    .park(
                        &t,
                        "the account has no credentials; the signature was not checked",
                        body,
                    )
                    .await;
            }
            Err(e) => return internal(&e),
        };
        if let Err(e) = verify(&creds) {
            tracing::warn!(account = %t.account.0, error = %e, "webhook refused");
            return status(StatusCode::UNAUTHORIZED, "bad signature");
        }
        match self.accounts.tenancy().active_tenant(t.tenant).await {
            Ok(_) => {}
            Err(TenancyError::TenantSuspended { .. }) => {
                return self.park(&t, "the tenant is suspended", body).await;
            }
            Err(TenancyError::TenantUnavailable) => {
                return self.park(&t, "the tenant is closed", body).await;
            }
            Err(e) => return internal(&e),
        }
        match parse(&creds.external_id) {
            Ok(delivery) => self.ingest(&t, delivery).await,
            Err(e) => {
                tracing::warn!(account = %t.account.0, error = %e, "malformed webhook refused");
                status(StatusCode::BAD_REQUEST, "malformed payload")
            }
        }
    }
}

fn internal(e: &dyn std::fmt::Display) -> Response {
    tracing::error!(error = %e, "webhook failed");
    status(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
}

/// Meta's verification request.
#[derive(Debug, Deserialize)]
struct HubQuery {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

async fn meta_verify(
    State(w): State<Webhooks>,
    Path(account): Path<String>,
    Query(q): Query<HubQuery>,
) -> Response {
    let t = match w.target(&account).await {
        Ok(t) if !t.unlinked => t,
        Ok(_) => return status(StatusCode::FORBIDDEN, "the account is unlinked"),
        Err(r) => return r,
    };
    let creds = match w.accounts.credentials(t.tenant, t.account).await {
        Ok(c) => c,
        Err(e) => return internal(&e),
    };
    match meta::verify_subscription(
        q.mode.as_deref(),
        q.verify_token.as_deref(),
        q.challenge.as_deref(),
        &creds.verify_token,
    ) {
        Ok(challenge) => ([(header::CONTENT_TYPE, "text/plain")], challenge).into_response(),
        Err(_) => status(StatusCode::FORBIDDEN, "verification token mismatch"),
    }
}

async fn meta_deliver(
    State(w): State<Webhooks>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    w.deliver(
        &account,
        &body,
        |c| meta::verify_signature(&c.signing_secret, &body, signature),
        // Only this account's entries: an app subscribed to several pages
        // batches them together, and each page has its own URL and tenant.
        |own| meta::parse_for_entry(&body, own, own),
    )
    .await
}

/// X's CRC check.
#[derive(Debug, Deserialize)]
struct CrcQuery {
    crc_token: Option<String>,
}

async fn x_crc(
    State(w): State<Webhooks>,
    Path(account): Path<String>,
    Query(q): Query<CrcQuery>,
) -> Response {
    let Some(token) = q.crc_token else {
        return status(StatusCode::BAD_REQUEST, "crc_token is missing");
    };
    let t = match w.target(&account).await {
        Ok(t) if !t.unlinked => t,
        Ok(_) => return status(StatusCode::FORBIDDEN, "the account is unlinked"),
        Err(r) => return r,
    };
    match w.accounts.credentials(t.tenant, t.account).await {
        Ok(c) => (
            [(header::CONTENT_TYPE, "application/json")],
            x::crc_response(&c.signing_secret, &token),
        )
            .into_response(),
        Err(e) => internal(&e),
    }
}

async fn x_deliver(
    State(w): State<Webhooks>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get("x-twitter-webhooks-signature")
        .and_then(|v| v.to_str().ok());
    w.deliver(
        &account,
        &body,
        |c| x::verify_signature(&c.signing_secret, &body, signature),
        |own| x::parse(&body, own),
    )
    .await
}

/// A Telegram update: the secret token we registered with the webhook,
/// compared in constant time before anything is parsed; one update at a
/// time (`update_id` repeats on redelivery: its message is stored once).
async fn telegram_deliver(
    State(w): State<Webhooks>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let secret = headers
        .get(telegram::SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    // The bot's username, to recognise mentions of it in groups.
    let handle = match w.target(&account).await {
        Ok(t) => w
            .accounts
            .state(t.tenant, t.account)
            .await
            .ok()
            .and_then(|s| s.reach.handle),
        Err(r) => return r,
    };
    w.deliver(
        &account,
        &body,
        |c| telegram::verify_secret(&c.signing_secret, secret.as_deref()),
        |own| telegram::parse(&body, own, handle.as_deref()).map(|(_, d)| d),
    )
    .await
}

/// A WhatsApp Cloud API delivery: Meta's signature over the raw bytes, then
/// the messages of this phone number; the status receipts of our replies
/// (found by the `biz_opaque_callback_data` they were sent with) are
/// recorded on their deliveries (`delivery.receipt`), once each.
async fn whatsapp_deliver(
    State(w): State<Webhooks>,
    Path(account): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let signature = headers
        .get(whatsapp::SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok());
    let receipts = std::sync::Mutex::new(Vec::new());
    let response = w
        .deliver(
            &account,
            &body,
            |c| whatsapp::verify_signature(c, &body, signature),
            |own| {
                whatsapp::parse(&body, own).map(|d| {
                    if let Ok(mut r) = receipts.lock() {
                        *r = d.receipts;
                    }
                    d.delivery
                })
            },
        )
        .await;
    let receipts = receipts.into_inner().unwrap_or_default();
    if response.status() == StatusCode::OK
        && !receipts.is_empty()
        && let Ok(t) = w.target(&account).await
    {
        for r in receipts {
            if let Err(e) = w.receipt(t.tenant, &r).await {
                tracing::warn!(account = %t.account.0, wamid = %r.wamid, error = %e, "a WhatsApp receipt could not be recorded");
            }
        }
    }
    response
}

impl Webhooks {
    /// Records a status receipt on the delivery of the reply it is about.
    async fn receipt(&self, tenant: TenantId, r: &whatsapp::Receipt) -> anyhow::Result<()> {
        use ventanilla_social_domain::delivery::{self, Delivery, DeliveryCommand, ReceiptStatus};
        let Some(message) = r.callback.as_deref().and_then(|c| Uuid::parse_str(c).ok()) else {
            return Ok(()); // not one of ours, or sent before receipts were tracked
        };
        let status = match r.status {
            whatsapp::ReceiptStatus::Sent => return Ok(()),
            whatsapp::ReceiptStatus::Delivered => ReceiptStatus::Delivered,
            whatsapp::ReceiptStatus::Read => ReceiptStatus::Read,
            whatsapp::ReceiptStatus::Failed => ReceiptStatus::Failed,
        };
        let key = Uuid::new_v5(&message, format!("receipt:{status:?}").as_bytes());
        let ctx = ventanilla_eventlog::CommandContext::new(
            tenant,
            r.at,
            ventanilla_kernel::Actor::system("whatsapp-receipts"),
        )
        .with_idempotency_key(key);
        ventanilla_eventlog::CommandRunner::new(Arc::clone(&self.log), 5)
            .execute::<Delivery>(
                &ctx,
                &delivery::stream_id(message)?,
                &DeliveryCommand::Receipt {
                    status,
                    reason: r.error.clone(),
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(())
    }
}
