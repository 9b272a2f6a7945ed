//! Citizens' mail to linked mailboxes: the [`Mailbox`] is the handler of
//! the platform's SMTP receiver (`ventanilla_mail::receiver`, listening on
//! `social.mail_bind`). A recipient is accepted only when it is a linked
//! mailbox (550 otherwise); a message is answered 250 only once it is
//! recorded (`social.message_received`, the same id for the same
//! `Message-ID`, so a retried delivery stores nothing new), and a failure
//! to record is a 451 the sender retries — a crash loses nothing.
//!
//! Auto-replies, bounce reports and our own mail are accepted and dropped
//! (logged): they never open a ticket or cause a reply, so mail loops are
//! impossible. A mail whose program dropped the threading headers but whose
//! subject carries a ticket's reference continues that ticket (a `ref:`
//! thread the tickets service resolves).
//!
//! What this module must not do: open tickets (the tickets service does,
//! from the event), or answer anything but SMTP.

use std::sync::Arc;

use async_trait::async_trait;
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_mail::receiver::{Envelope, MailHandler, Refusal};
use ventanilla_postgres::PgEventLog;
use ventanilla_social_domain::account::AccountId;
use ventanilla_tenancy::{Tenancy, TenancyError};

use crate::email::{self, EmailThread, Parsed};
use crate::ingest;

/// The receiver's handler.
pub struct Mailbox {
    log: Arc<PgEventLog>,
    tenancy: Tenancy,
    max_bytes: usize,
}

impl Mailbox {
    /// Records mail for the mailboxes linked in `log`, refusing messages
    /// over `max_bytes`.
    pub fn new(log: Arc<PgEventLog>, tenancy: Tenancy, max_bytes: usize) -> Self {
        Self {
            log,
            tenancy,
            max_bytes,
        }
    }

    /// The tenant and account of the mailbox `address`, if linked.
    async fn lookup(&self, address: &str) -> Result<Option<(TenantId, AccountId)>, Refusal> {
        let found: Option<(Uuid, Uuid)> =
            sqlx::query_as("SELECT tenant_id, account_id FROM social_mailbox_lookup($1)")
                .bind(address.trim().to_ascii_lowercase())
                .fetch_optional(self.log.pool())
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "mailbox lookup failed");
                    Refusal::temporary("the mailbox cannot be reached right now; try again later")
                })?;
        Ok(found.map(|(t, a)| (TenantId::from_uuid(t), AccountId(a))))
    }

    /// Records one recipient's copy.
    async fn deliver_to(&self, rcpt: &str, data: &[u8]) -> Result<(), Refusal> {
        let Some((tenant, account)) = self.lookup(rcpt).await? else {
            return Err(Refusal::no_such_user());
        };
        match self.tenancy.active_tenant(tenant).await {
            Ok(_) => {}
            Err(TenancyError::Unexpected(e)) => {
                tracing::error!(error = %e, "reading the mailbox's tenant failed");
                return Err(Refusal::temporary("try again later"));
            }
            // Suspended or closed: the sender keeps it and tries again.
            Err(_) => {
                return Err(Refusal::temporary(
                    "this mailbox is not taking mail right now",
                ));
            }
        }
        let parsed =
            email::parse(data, &[rcpt.to_ascii_lowercase()], self.max_bytes).map_err(|e| {
                tracing::warn!(error = %e, "unreadable mail refused");
                Refusal::rejected(format!("the message could not be read: {e}"))
            })?;
        match parsed {
            Parsed::Message {
                mut inbound,
                references,
                reference_hint,
                subject,
                attachments,
                ..
            } => {
                // Attachments are metadata only: the agent sees what came.
                if !attachments.is_empty() {
                    let listed: Vec<String> = attachments.iter().map(describe).collect();
                    inbound.text = format!(
                        "{}\n\n[Adjuntos: {}]",
                        inbound.text.trim_end(),
                        listed.join("; ")
                    );
                }
                if references.is_empty()
                    && inbound.in_reply_to.is_none()
                    && let Some(reference) = reference_hint
                {
                    inbound.thread = format!("ref:{reference}");
                }
                let context = serde_json::to_value(EmailThread {
                    message_id: inbound.platform_id.clone(),
                    references,
                })
                .ok();
                let subject = crate::email::ticket_subject(&subject);
                ingest::record_with(&self.log, tenant, account, vec![inbound], |_| {
                    ingest::Extra {
                        reply_context: context.clone(),
                        subject: Some(subject.clone()),
                    }
                })
                .await
                .map_err(|e| {
                    tracing::error!(error = %e, "recording a mail failed");
                    Refusal::temporary("the message could not be stored; try again later")
                })?;
            }
            Parsed::Bounce {
                original_message_id,
                recipient,
                permanent,
                ..
            } => {
                tracing::info!(tenant_id = %tenant, account = %account.0, original = ?original_message_id, recipient = ?recipient, permanent, "a reply bounced (accepted, not answered)");
            }
            Parsed::Ignored { reason } => {
                tracing::info!(tenant_id = %tenant, account = %account.0, %reason, "mail accepted and dropped");
            }
        }
        Ok(())
    }
}

/// One attachment as the agent reads it: name, type, size, and whether it
/// was left out for its size.
fn describe(a: &crate::email::AttachmentMeta) -> String {
    let name = a.filename.as_deref().unwrap_or("(sin nombre)");
    let size = if a.size >= 1024 * 1024 {
        format!("{:.1} MB", a.size as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KB", a.size.div_ceil(1024))
    };
    let note = if a.too_large {
        ", demasiado grande: no se guardó"
    } else {
        ""
    };
    format!("{name} ({}, {size}{note})", a.mime_type)
}

#[async_trait]
impl MailHandler for Mailbox {
    async fn recipient(&self, rcpt: &str) -> Result<(), Refusal> {
        match self.lookup(rcpt).await? {
            Some(_) => Ok(()),
            None => Err(Refusal::no_such_user()),
        }
    }

    async fn deliver(&self, mail: Envelope) -> Result<(), Refusal> {
        for rcpt in &mail.to {
            self.deliver_to(rcpt, &mail.data).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachments_read_as_metadata() {
        let a = crate::email::AttachmentMeta {
            filename: Some("factura.pdf".into()),
            mime_type: "application/pdf".into(),
            size: 120 * 1024,
            too_large: false,
        };
        assert_eq!(describe(&a), "factura.pdf (application/pdf, 120 KB)");
        let big = crate::email::AttachmentMeta {
            filename: None,
            mime_type: "video/mp4".into(),
            size: 30 * 1024 * 1024,
            too_large: true,
        };
        assert_eq!(
            describe(&big),
            "(sin nombre) (video/mp4, 30.0 MB, demasiado grande: no se guardó)"
        );
    }
}
