//! Recording what citizens wrote: each message a connector read (from a
//! webhook delivery or a poll) becomes a `social.message_received` event on
//! the account's inbound stream, with an id derived from the network and
//! the platform's message id — so the same message, delivered twice or read
//! both by webhook and by polling, is stored once.
//!
//! What this module must not do: verify or parse (the connectors do, before
//! this is called), or open tickets (the tickets service reads the events).

use uuid::Uuid;
use ventanilla_eventlog::{AppendError, EventLog, ExpectedVersion, Metadata, NewEvent};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::PgEventLog;
use ventanilla_social_domain::account::AccountId;
use ventanilla_social_domain::inbound::{
    MESSAGE_RECEIVED, MessageReceived, inbound_stream, message_event_id,
};

use crate::connector::Inbound;

/// Records `messages` received on `account` of `tenant`. Returns how many
/// were new (the others were stored before).
pub async fn record(
    log: &PgEventLog,
    tenant: TenantId,
    account: AccountId,
    messages: Vec<Inbound>,
) -> anyhow::Result<usize> {
    record_with(log, tenant, account, messages, |_| Extra::default()).await
}

/// What a message carries besides the connector's [`Inbound`].
#[derive(Debug, Clone, Default)]
pub struct Extra {
    /// What its network needs to answer it (`reply_context`).
    pub reply_context: Option<serde_json::Value>,
    /// Its subject, where the channel has one.
    pub subject: Option<String>,
}

/// [`record`], each message with its [`Extra`], by platform id.
pub async fn record_with(
    log: &PgEventLog,
    tenant: TenantId,
    account: AccountId,
    messages: Vec<Inbound>,
    extra: impl Fn(&str) -> Extra,
) -> anyhow::Result<usize> {
    let stream = inbound_stream(account)?;
    let correlation = Uuid::new_v4();
    let mut new = 0;
    for m in messages {
        let Extra {
            reply_context,
            subject,
        } = extra(&m.platform_id);
        let event = MessageReceived {
            reply_context,
            subject,
            account,
            channel: m.channel.to_owned(),
            kind: m.kind,
            platform_id: m.platform_id,
            thread: m.thread,
            in_reply_to: m.in_reply_to,
            author: m.author,
            text: m.text,
            sent_at: m.sent_at,
        };
        let id = message_event_id(&event.channel, &event.platform_id);
        let data = serde_json::to_value(&event)?;
        // One append per message: a redelivered message is a no-op whatever
        // else its batch holds.
        let appended = log
            .append(
                tenant,
                &stream,
                ExpectedVersion::Any,
                vec![NewEvent {
                    id,
                    event_type: MESSAGE_RECEIVED.to_owned(),
                    schema_version: 1,
                    data,
                    metadata: Metadata {
                        correlation_id: correlation,
                        causation_id: None,
                        traceparent: None,
                        actor: Actor::Citizen {
                            channel: event.channel.clone(),
                        },
                    },
                }],
            )
            .await
            .map_err(|e: AppendError| anyhow::anyhow!(e))?;
        if !appended.already_stored {
            new += 1;
        }
    }
    Ok(new)
}
