//! What integrators do with an API key of scope `read_write`: open a ticket
//! on the `api` channel, and subscribe a citizen to a topic or to a case
//! (by e-mail, which the citizen confirms, or at a signed webhook).
//!
//! What this module must not do: decide anything (the tickets and
//! notifications services do).

use async_graphql::{Context, Enum, ID, InputObject, Object, Result, SimpleObject};
use uuid::Uuid;
use ventanilla_tickets::notify::service::{SubscribeRequest, TargetRequest, ViaRequest};
use ventanilla_tickets::service::{OpenRequest, Origin};

use super::access::{self, services};
use super::ids;
use super::tickets::TicketKind;
use crate::error::{INTERNAL_MESSAGE, code, coded, invalid, service_error_named};
use ventanilla_tenants::api_keys::KeyPrincipal;

/// The tickets service's names of the citizen's details, and this API's.
const CONTACT_FIELDS: &[(&str, &str)] = &[
    ("contact.name", "name"),
    ("contact.email", "email"),
    ("contact.phone", "phone"),
    ("contact.handle", "handle"),
];

/// The notifications service's names of a subscription's fields, and this
/// API's.
const SUBSCRIBE_FIELDS: &[(&str, &str)] = &[("contact.email", "email"), ("url", "webhookUrl")];

/// A citizen's request, sent by an integrator.
#[derive(InputObject, Debug)]
pub struct OpenTicketInput {
    /// What the citizen asks for.
    pub kind: TicketKind,
    /// For `QUESTION_FOR`: the department addressed.
    pub department_id: Option<Uuid>,
    /// For `QUESTION_FOR`: the official addressed (instead of a department).
    pub official_id: Option<Uuid>,
    /// The citizen's name.
    pub name: Option<String>,
    /// Their e-mail address.
    pub email: Option<String>,
    /// Their phone number.
    pub phone: Option<String>,
    /// Their handle on some network.
    pub handle: Option<String>,
    /// The subject.
    pub subject: String,
    /// What they write.
    pub body: String,
    /// Whether they want to be told when the ticket moves.
    #[graphql(default)]
    pub notify: bool,
    /// Makes a retried request safe: the same key opens the same ticket
    /// once.
    pub idempotency_key: Option<Uuid>,
}

/// A ticket just opened.
#[derive(SimpleObject)]
pub struct OpenedTicket {
    /// Its global id.
    pub id: ID,
    /// Its human reference.
    pub reference: String,
    /// The secret with which the citizen follows the ticket; shown only
    /// now (null when this repeated a request already carried out).
    pub tracking_token: Option<String>,
}

/// A subscription to a topic: exactly one of `email` and `webhookUrl`.
#[derive(InputObject, Debug)]
pub struct SubscribeToTopicInput {
    /// The topic (one of the organisation's).
    pub topic_id: Uuid,
    /// Tell the citizen at this address (they confirm it first).
    pub email: Option<String>,
    /// Tell this `http(s)` URL (https strongly advised), with signed
    /// deliveries; private and loopback addresses are refused in production.
    pub webhook_url: Option<String>,
    /// The language of the notifications (the organisation's by default).
    pub language: Option<String>,
    /// One e-mail a day instead of one per notification.
    #[graphql(default)]
    pub daily_digest: bool,
}

/// A subscription to a case, "tell me when my ticket moves": exactly one
/// of `email` and `webhookUrl`.
#[derive(InputObject, Debug)]
pub struct SubscribeToCaseInput {
    /// The ticket's reference (`AYTO-2026-000042`).
    pub reference: String,
    /// The tracking token the citizen got when the ticket opened. May be
    /// left out: the key acts for the organisation, and a ticket that came
    /// from a social network has no token its citizen knows.
    pub tracking_token: Option<String>,
    /// Tell the citizen at this address (they confirm it first).
    pub email: Option<String>,
    /// Tell this `http(s)` URL (https strongly advised), with signed
    /// deliveries; private and loopback addresses are refused in production.
    pub webhook_url: Option<String>,
    /// The language of the notifications (the organisation's by default).
    pub language: Option<String>,
}

/// Whether a subscription is in force.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// Waits for the citizen to confirm their address.
    Pending,
    /// In force.
    Active,
}

/// A citizen's subscription just requested (or found, when the same was
/// asked before).
#[derive(SimpleObject)]
pub struct CitizenSubscription {
    /// Its id.
    pub id: Uuid,
    /// Whether it is in force yet.
    pub status: SubscriptionStatus,
    /// For a webhook: the secret its deliveries are signed with (`whsec_…`).
    /// The same request again gives the same secret, so a retry after a
    /// lost answer loses nothing; keep it as secret as the API key.
    pub webhook_secret: Option<String>,
    /// Whether the same subscription existed already (nothing new).
    pub existing: bool,
}

/// Integrators' mutations.
#[derive(Default)]
pub struct IntegrationsMutation;

#[Object]
impl IntegrationsMutation {
    /// Opens a ticket on the `api` channel for a citizen. API keys of scope
    /// `read_write` only.
    async fn open_ticket(&self, ctx: &Context<'_>, input: OpenTicketInput) -> Result<OpenedTicket> {
        let key = access::integrator_writer(ctx)?;
        let request = OpenRequest {
            kind: input.kind.as_stored().to_owned(),
            department: input.department_id,
            official: input.official_id,
            name: input.name,
            email: input.email,
            phone: input.phone,
            handle: input.handle,
            subject: input.subject,
            body: input.body,
            notify: input.notify,
            idempotency_key: input.idempotency_key,
        };
        let opened = services(ctx)?
            .tickets
            .open(key.tenant, Origin::Api { key: key.key_id.0 }, &request)
            .await
            .map_err(|e| service_error_named(&e, CONTACT_FIELDS))?;
        Ok(OpenedTicket {
            id: ids::encode(ids::TICKET, opened.id.0),
            reference: opened.reference,
            tracking_token: opened.tracking_token,
        })
    }

    /// Subscribes a citizen to a topic, by e-mail or at a webhook. API keys
    /// of scope `read_write` only.
    async fn subscribe_to_topic(
        &self,
        ctx: &Context<'_>,
        input: SubscribeToTopicInput,
    ) -> Result<CitizenSubscription> {
        let key = access::integrator_writer(ctx)?;
        let request = SubscribeRequest {
            target: TargetRequest::Topic(input.topic_id),
            via: via(input.email, input.webhook_url)?,
            language: input.language,
            daily_digest: input.daily_digest,
        };
        subscribe(ctx, key, &request).await
    }

    /// Subscribes a citizen to a case: they are told when staff answer the
    /// ticket and when it is resolved, closed or reopened. By e-mail (after
    /// they confirm) or at a webhook. `NOT_FOUND` when the organisation has
    /// no ticket with this reference (or the token given is not its). API
    /// keys of scope `read_write` only.
    async fn subscribe_to_case(
        &self,
        ctx: &Context<'_>,
        input: SubscribeToCaseInput,
    ) -> Result<CitizenSubscription> {
        let key = access::integrator_writer(ctx)?;
        let request = SubscribeRequest {
            target: TargetRequest::Case {
                reference: input.reference.trim().to_owned(),
                tracking_token: input.tracking_token,
            },
            via: via(input.email, input.webhook_url)?,
            language: input.language,
            daily_digest: false,
        };
        subscribe(ctx, key, &request).await
    }
}

/// How the citizen is told: exactly one of the two.
fn via(email: Option<String>, webhook_url: Option<String>) -> Result<ViaRequest> {
    match (email, webhook_url) {
        (Some(email), None) => Ok(ViaRequest::Email(email)),
        (None, Some(url)) => Ok(ViaRequest::Webhook(url)),
        _ => Err(invalid(
            "input",
            "input: give exactly one of email and webhookUrl",
        )),
    }
}

/// Asks the notifications service for the subscription, as the key.
async fn subscribe(
    ctx: &Context<'_>,
    key: KeyPrincipal,
    request: &SubscribeRequest,
) -> Result<CitizenSubscription> {
    let done = services(ctx)?
        .notifications
        .subscribe(key.tenant, &Origin::Api { key: key.key_id.0 }, request)
        .await
        .map_err(|e| service_error_named(&e, SUBSCRIBE_FIELDS))?;
    let status = match done.status.as_str() {
        "pending" => SubscriptionStatus::Pending,
        "active" => SubscriptionStatus::Active,
        other => {
            tracing::error!(
                status = other,
                "a new subscription in a status the schema does not know"
            );
            return Err(coded(code::INTERNAL, INTERNAL_MESSAGE));
        }
    };
    Ok(CitizenSubscription {
        id: done.id,
        status,
        webhook_secret: done.webhook_secret,
        existing: done.existing,
    })
}
