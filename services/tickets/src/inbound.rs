//! Tickets from what citizens write on social networks: the
//! [`InboundReactor`] reads the social service's `social.message_received`
//! events (subscription `tickets:inbound`) and, for each, adds the message to
//! the ticket its conversation continues or opens a new ticket. It also
//! reads the social service's `delivery.sent` and `delivery.failed` events
//! and records them on the reply's ticket, so the agent sees whether the
//! answer went out — or, for a notice of "Avísame cuando…" (a nil ticket),
//! settles its notification in `notify_outbox`.
//!
//! Which ticket a message continues: the ticket its platform thread already
//! has (`thread:<id>`), or — for a private message — the ticket the same
//! author last wrote in on that channel (`author:<platform user id>`). The
//! `Ticket` decider then says whether the message fits it: added to an open
//! ticket, reopening a resolved one within the tenant's window, or refused
//! (closed, or resolved too long ago) — then a new ticket opens. Identities
//! are never matched across channels.
//!
//! Exactly once: the message's id is the social event's id (itself derived
//! from the platform's message id), so a message recorded twice is a no-op
//! on the ticket; a new ticket's id and events are derived from the event
//! too (an idempotent command), so a crash between opening it and the
//! checkpoint opens the same ticket again — a no-op — on redelivery. The
//! conversation keys are written in the subscription's transaction, with
//! its checkpoint. All messages of one linked account are in one stream
//! (see `ventanilla_social_domain::inbound`), so one partition sees a
//! conversation's messages in order.
//!
//! What it must not do: call the social service, or send anything (replies
//! go out because the social service reads the tickets' events).

use async_trait::async_trait;
use sqlx::PgConnection;
use uuid::Uuid;
use ventanilla_eventlog::DomainEvent;
use ventanilla_eventlog::{CommandContext, CommandError, RecordedEvent};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::{Handler, TenantTx};
use ventanilla_social_domain::delivery::{self, DeliveryEvent, ReceiptStatus};
use ventanilla_social_domain::inbound::{MESSAGE_RECEIVED, MessageKind, MessageReceived};
use ventanilla_tickets_domain::ticket::{
    self as domain, DeliveryOutcome, MessageId, OpenTicket, Ticket, TicketCommand, TicketError,
    TicketId,
};
use ventanilla_tickets_domain::values::{
    BODY_MAX, Body, CONTACT_NAME_MAX, Channel, Contact, HANDLE_MAX, Kind, SUBJECT_MAX, Subject,
    Text,
};

use crate::error::TicketsError;
use crate::service::Tickets;
use ventanilla_tenancy::Calendar;
use ventanilla_tickets_domain::service_levels::ServiceLevelsState;

/// The subscription's name.
pub const SUBSCRIPTION: &str = "tickets:inbound";

/// How many merges the reactor follows to find the ticket a message
/// belongs to.
const MAX_MERGE_HOPS: usize = 5;

/// Turns social messages into tickets.
#[derive(Clone)]
pub struct InboundReactor {
    tickets: Tickets,
}

impl InboundReactor {
    /// A reactor writing through `tickets`.
    pub fn new(tickets: Tickets) -> Self {
        Self { tickets }
    }
}

#[async_trait]
impl Handler for InboundReactor {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let mut facts: Option<Facts> = None;
        for e in events {
            if e.event_type == delivery::SENT
                || e.event_type == delivery::FAILED
                || e.event_type == delivery::RECEIPT
            {
                if let Some(settled) = notice_delivered(e) {
                    // A notice of "Avísame cuando…": settle its notification.
                    let (notification, state, reason) = settled;
                    sqlx::query(
                        "UPDATE notify_outbox SET state = $3, last_error = $4, \
                                sent_at = CASE WHEN $3 = 'sent' THEN $5 ELSE sent_at END \
                         WHERE tenant_id = $1 AND notification_id = $2 AND state IN ('handed', 'sending')",
                    )
                    .bind(tx.tenant().into_uuid())
                    .bind(notification)
                    .bind(state)
                    .bind(reason)
                    .bind(e.recorded_at)
                    .execute(tx.conn().await?)
                    .await?;
                    continue;
                }
                match self.delivered(tx.tenant(), e).await {
                    Ok(()) => {}
                    Err(Skip(reason)) => {
                        tracing::warn!(event = %e.id, reason, "delivery outcome skipped")
                    }
                    Err(Retry(err)) => return Err(err),
                }
                continue;
            }
            if e.event_type != MESSAGE_RECEIVED {
                continue;
            }
            let message: MessageReceived = match serde_json::from_value(e.data.clone()) {
                Ok(m) => m,
                Err(err) => {
                    // A malformed contract event would be refused forever:
                    // log it once and go on.
                    tracing::error!(event = %e.id, error = %err, "unreadable social.message_received; skipped");
                    continue;
                }
            };
            let tenant = tx.tenant();
            // What every message of this tenant's run needs, read once.
            if facts.is_none() {
                facts = Some(match self.facts(tenant).await {
                    Ok(f) => f,
                    Err(Retry(err)) => return Err(err),
                    Err(Skip(reason)) => return Err(anyhow::anyhow!("{reason}")),
                });
            }
            let Some(f) = facts.as_ref() else {
                continue;
            };
            match self.receive(tx.conn().await?, tenant, f, e, &message).await {
                Ok(ticket) => {
                    tracing::debug!(tenant_id = %tenant, ticket = %ticket, "social message recorded")
                }
                Err(Skip(reason)) => {
                    tracing::warn!(tenant_id = %tenant, event = %e.id, reason, "social message skipped")
                }
                Err(Retry(err)) => return Err(err),
            }
        }
        Ok(())
    }
}

/// A delivery of a notice (a nil ticket): the notification it settles,
/// its new state and the failure's reason.
fn notice_delivered(e: &RecordedEvent) -> Option<(Uuid, &'static str, Option<String>)> {
    match DeliveryEvent::from_stored(&e.event_type, e.schema_version, &e.data).ok()? {
        DeliveryEvent::Sent(s) if s.ticket.is_nil() => Some((s.message, "sent", None)),
        DeliveryEvent::Failed(f) if f.ticket.is_nil() => Some((
            f.message,
            "failed",
            Some(f.reason.chars().take(500).collect()),
        )),
        DeliveryEvent::Receipt(r) if r.ticket.is_nil() => match r.status {
            ReceiptStatus::Failed => Some((
                r.message,
                "failed",
                Some(r.reason.unwrap_or_default().chars().take(500).collect()),
            )),
            // Delivered or read: it stays sent (a no-op on a settled row).
            _ => Some((r.message, "sent", None)),
        },
        _ => None,
    }
}

/// What the messages of one tenant's run need to know of it.
struct Facts {
    levels: ServiceLevelsState,
    calendar: Calendar,
    prefix: String,
}

/// Why a message was not recorded.
enum Outcome {
    /// It can never be (a malformed value): logged and skipped.
    Skip(String),
    /// A failure that may pass (the database): the batch is retried.
    Retry(anyhow::Error),
}
use Outcome::{Retry, Skip};

impl From<TicketsError> for Outcome {
    fn from(e: TicketsError) -> Self {
        match e {
            TicketsError::Unexpected(e) => Retry(e),
            TicketsError::Conflict => Retry(anyhow::anyhow!("conflict")),
            other => Skip(other.to_string()),
        }
    }
}

impl From<ventanilla_tenancy::TenancyError> for Outcome {
    fn from(e: ventanilla_tenancy::TenancyError) -> Self {
        TicketsError::from(e).into()
    }
}

impl From<ventanilla_kernel::StreamIdError> for Outcome {
    fn from(e: ventanilla_kernel::StreamIdError) -> Self {
        Retry(e.into())
    }
}

impl From<sqlx::Error> for Outcome {
    fn from(e: sqlx::Error) -> Self {
        Retry(e.into())
    }
}

/// Cuts `text` to at most `max` characters, marking the cut.
fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// The body of the ticket's message: the text (cut at the limit, a social
/// post is never refused for its length), or a placeholder for a message
/// with no text (a photo, a sticker).
fn body_of(m: &MessageReceived) -> Result<Body, Outcome> {
    let text = if m.text.trim().is_empty() {
        "[mensaje sin texto]".to_owned()
    } else {
        cut(&m.text, BODY_MAX)
    };
    Body::parse("text", &text).map_err(|e| Skip(e.to_string()))
}

/// A subject for a new ticket: the first line of the text, cut.
fn subject_of(m: &MessageReceived, channel: Channel) -> Result<Subject, Outcome> {
    // A mail has its own subject (without the replies' prefixes).
    if let Some(subject) = m
        .subject
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        return Subject::parse("subject", &cut(subject, SUBJECT_MAX))
            .map_err(|e| Skip(e.to_string()));
    }
    let first = m.text.lines().map(str::trim).find(|l| !l.is_empty());
    let subject = match first {
        Some(line) => cut(line, 80),
        None => format!("Mensaje en {channel}"),
    };
    Subject::parse("subject", &cut(&subject, SUBJECT_MAX)).map_err(|e| Skip(e.to_string()))
}

/// The citizen's contact on the channel: their handle (or the network's id
/// of them), and their name when it is a valid one.
fn contact_of(m: &MessageReceived) -> Result<Contact, Outcome> {
    let handle = m
        .author
        .handle
        .as_deref()
        .filter(|h| !h.trim().is_empty() && !h.contains(char::is_whitespace))
        .unwrap_or(&m.author.platform_user_id);
    let handle = cut(handle, HANDLE_MAX);
    let name = m.author.name.as_deref().map(|n| cut(n, CONTACT_NAME_MAX));
    Contact::parse(name.as_deref(), None, None, Some(&handle))
        .or_else(|_| Contact::parse(None, None, None, Some(&handle)))
        .map_err(|e| Skip(e.to_string()))
}

impl InboundReactor {
    /// Records on the ticket how the social service's delivery of a reply
    /// went (`delivery.sent`, `delivery.failed`). Repeating it is a no-op.
    async fn delivered(&self, tenant: TenantId, e: &RecordedEvent) -> Result<(), Outcome> {
        let event = DeliveryEvent::from_stored(&e.event_type, e.schema_version, &e.data)
            .map_err(|err| Skip(err.to_string()))?;
        let (ticket, message, outcome) = match event {
            DeliveryEvent::Sent(s) => (
                s.ticket,
                s.message,
                DeliveryOutcome::Sent {
                    platform_id: Some(cut(&s.platform_id, domain::PLATFORM_ID_MAX)),
                },
            ),
            DeliveryEvent::Receipt(r) => (
                r.ticket,
                r.message,
                match r.status {
                    ReceiptStatus::Delivered => DeliveryOutcome::Delivered,
                    ReceiptStatus::Read => DeliveryOutcome::Read,
                    ReceiptStatus::Failed => DeliveryOutcome::Failed {
                        reason: Text::parse(
                            "reason",
                            &cut(
                                r.reason
                                    .as_deref()
                                    .unwrap_or("the network could not deliver it"),
                                domain::FAILURE_REASON_MAX,
                            ),
                            domain::FAILURE_REASON_MAX,
                        )
                        .map_err(|err| Skip(err.to_string()))?,
                    },
                },
            ),
            DeliveryEvent::Failed(f) => (
                f.ticket,
                f.message,
                DeliveryOutcome::Failed {
                    reason: Text::parse(
                        "reason",
                        &cut(&f.reason, domain::FAILURE_REASON_MAX),
                        domain::FAILURE_REASON_MAX,
                    )
                    .map_err(|err| Skip(err.to_string()))?,
                },
            ),
            _ => return Ok(()),
        };
        let ctx = CommandContext {
            causation_id: Some(e.id.into_uuid()),
            correlation_id: e.metadata.correlation_id,
            traceparent: e.metadata.traceparent,
            ..CommandContext::new(tenant, e.recorded_at, Actor::system("social-delivery"))
        };
        self.tickets
            .runner()
            .execute::<Ticket>(
                &ctx,
                &domain::stream_id(TicketId(ticket))?,
                &TicketCommand::RecordDelivery {
                    message_id: MessageId(message),
                    outcome,
                },
            )
            .await
            .map_err(TicketsError::from)?;
        Ok(())
    }

    /// The tenant's facts a message needs.
    async fn facts(&self, tenant: TenantId) -> Result<Facts, Outcome> {
        Ok(Facts {
            levels: self.tickets.service_levels(tenant).await?,
            calendar: self.tickets.tenancy().calendar(tenant).await?,
            // A suspended tenant's citizens are still heard: the message is
            // kept, and staff see it when the tenant is reactivated.
            prefix: self.tickets.tenancy().reference_prefix(tenant).await?,
        })
    }

    /// Records one social message; returns the ticket it went to.
    async fn receive(
        &self,
        conn: &mut PgConnection,
        tenant: TenantId,
        facts: &Facts,
        e: &RecordedEvent,
        m: &MessageReceived,
    ) -> Result<TicketId, Outcome> {
        let channel = Channel::parse("channel", &m.channel).map_err(|e| Skip(e.to_string()))?;
        let body = body_of(m)?;
        let message_id = MessageId(e.id.into_uuid());
        let at = e.recorded_at;
        let mut keys = vec![format!("thread:{}", m.thread)];
        // A private message continues its author's latest conversation on
        // the channel; a mail continues only its own thread (a new mail is
        // a new matter).
        if m.kind == MessageKind::Direct && channel != Channel::Email {
            keys.push(format!("author:{}", m.author.platform_user_id));
        }
        let ctx = CommandContext {
            causation_id: Some(e.id.into_uuid()),
            correlation_id: e.metadata.correlation_id,
            traceparent: e.metadata.traceparent,
            ..CommandContext::new(
                tenant,
                at,
                Actor::Citizen {
                    channel: channel.as_str().to_owned(),
                },
            )
        };
        let (levels, calendar) = (&facts.levels, &facts.calendar);

        let mut target = route(conn, tenant, channel, &keys).await?;
        // A mail whose program dropped the threading headers names its
        // ticket in the subject (`Re: [LUGO-2026-000123] …`): the connector
        // says so with a `ref:` thread.
        if target.is_none()
            && let Some(reference) = m.thread.strip_prefix("ref:")
        {
            target = crate::inbox::find_by_reference(&mut *conn, reference)
                .await
                .map_err(|err| Retry(err.into()))?
                .map(TicketId);
        }
        let mut hops = 0;
        let ticket = loop {
            let Some(existing) = target else {
                break self
                    .open(tenant, facts, &ctx, e, m, channel, body.clone(), message_id)
                    .await?;
            };
            let command = TicketCommand::ReceiveMessage {
                message_id,
                channel,
                body: body.clone(),
                platform_id: Some(cut(&m.platform_id, domain::PLATFORM_ID_MAX)),
                reopen_window: levels.reopen_window,
                resolution_due_on_reopen: Some(calendar.due(at, levels.resolution)),
            };
            match self
                .tickets
                .runner()
                .execute::<Ticket>(&ctx, &domain::stream_id(existing)?, &command)
                .await
            {
                Ok(_) => break existing,
                Err(CommandError::Domain(TicketError::Merged { into }))
                    if hops < MAX_MERGE_HOPS =>
                {
                    hops += 1;
                    target = Some(into);
                }
                Err(CommandError::Domain(
                    TicketError::StartNewTicket { .. }
                    | TicketError::NotOpened
                    | TicketError::Merged { .. },
                )) => target = None,
                Err(other) => return Err(TicketsError::from(other).into()),
            }
        };
        for key in &keys {
            sqlx::query(
                "INSERT INTO ticket_conversations (tenant_id, channel, key, ticket_id, updated_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (tenant_id, channel, key) DO UPDATE SET ticket_id = EXCLUDED.ticket_id, updated_at = EXCLUDED.updated_at",
            )
            .bind(tenant.into_uuid())
            .bind(channel.as_str())
            .bind(key)
            .bind(ticket.0)
            .bind(at)
            .execute(&mut *conn)
            .await?;
        }
        Ok(ticket)
    }

    /// Opens a new ticket for the message, with ids and events derived from
    /// the social event (a redelivery opens nothing new).
    #[allow(clippy::too_many_arguments)]
    async fn open(
        &self,
        tenant: TenantId,
        facts: &Facts,
        ctx: &CommandContext,
        e: &RecordedEvent,
        m: &MessageReceived,
        channel: Channel,
        body: Body,
        message_id: MessageId,
    ) -> Result<TicketId, Outcome> {
        let source = e.id.into_uuid();
        let id = TicketId(Uuid::new_v5(&source, b"ticket"));
        let (prefix, calendar, levels) = (&facts.prefix, &facts.calendar, &facts.levels);
        let reference = self
            .tickets
            .draw_reference(tenant, id, prefix, calendar.year(ctx.now))
            .await?;
        // The citizen on a social network follows the ticket there; the
        // tracking token is drawn (every ticket has one) and not shown.
        let tracking =
            crate::service::tracking_hash(&format!("{}{}", Uuid::new_v4(), Uuid::new_v4()))?;
        let command = TicketCommand::Open(Box::new(OpenTicket {
            id,
            kind: Kind::Question,
            channel,
            contact: contact_of(m)?,
            subject: subject_of(m, channel)?,
            body,
            message_id,
            platform_id: Some(cut(&m.platform_id, domain::PLATFORM_ID_MAX)),
            reference,
            tracking,
            notify_citizen: false,
            addressee_accepts: None,
            first_response_due: Some(calendar.due(ctx.now, levels.first_response)),
            resolution_due: Some(calendar.due(ctx.now, levels.resolution)),
        }));
        let ctx = ctx.clone().with_idempotency_key(source);
        self.tickets
            .runner()
            .execute::<Ticket>(&ctx, &domain::stream_id(id)?, &command)
            .await
            .map_err(TicketsError::from)?;
        Ok(id)
    }
}

/// The ticket a conversation continues, if any: the thread's first.
async fn route(
    conn: &mut PgConnection,
    tenant: TenantId,
    channel: Channel,
    keys: &[String],
) -> Result<Option<TicketId>, sqlx::Error> {
    let found: Option<Uuid> = sqlx::query_scalar(
        "SELECT ticket_id FROM ticket_conversations \
         WHERE tenant_id = $1 AND channel = $2 AND key = ANY($3) \
         ORDER BY key LIKE 'thread:%' DESC LIMIT 1",
    )
    .bind(tenant.into_uuid())
    .bind(channel.as_str())
    .bind(keys)
    .fetch_optional(conn)
    .await?;
    Ok(found.map(TicketId))
}
