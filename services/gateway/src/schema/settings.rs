//! How the organisation works its tickets and whom its e-mails come from:
//! the service levels (first-response and resolution targets, the reopening
//! window) the inbox's due times and the presence figures count by, and the
//! sender of the notifications it mails citizens.
//!
//! Staff read the service levels (they see the due times they make);
//! admins change them and keep the sender.
//!
//! What this module must not do: decide anything (the tickets and
//! notifications services check the values and who may change them).

use async_graphql::{Context, Object, Result, SimpleObject};
use ventanilla_tickets_domain::sender::SenderState;
use ventanilla_tickets_domain::service_levels::ServiceLevelsState;

use super::access::{self, services};
use crate::error::service_error_named;

/// The targets tickets are worked to, in business time (the organisation's
/// business hours and holidays; round the clock while none are set).
#[derive(SimpleObject, Debug, PartialEq, Eq)]
pub struct ServiceLevels {
    /// A new ticket is due its first answer this many minutes after it
    /// arrives.
    pub first_response_minutes: i64,
    /// A ticket is due resolved this many minutes after it arrives.
    pub resolution_minutes: i64,
    /// For this many hours after it is resolved, a citizen's message
    /// reopens the ticket; later, it opens a new one.
    pub reopen_window_hours: i64,
}

impl From<ServiceLevelsState> for ServiceLevels {
    fn from(s: ServiceLevelsState) -> Self {
        Self {
            first_response_minutes: s.first_response.num_minutes(),
            resolution_minutes: s.resolution.num_minutes(),
            reopen_window_hours: s.reopen_window.num_hours(),
        }
    }
}

/// Whom the organisation's notification e-mails come from. Null fields take
/// the platform's defaults: the organisation's name, the platform's sending
/// address, and the organisation's contact address as Reply-To.
#[derive(SimpleObject, Debug, PartialEq, Eq)]
pub struct NotificationSender {
    /// The name shown as the sender.
    pub name: Option<String>,
    /// The From address. The platform's mail relay must be allowed to send
    /// as it (SPF/DKIM of the organisation's domain), or mail will bounce.
    pub address: Option<String>,
    /// Where citizens' answers go.
    pub reply_to: Option<String>,
}

impl From<SenderState> for NotificationSender {
    fn from(s: SenderState) -> Self {
        Self {
            name: s.name,
            address: s.address,
            reply_to: s.reply_to,
        }
    }
}

/// The services' names of these fields, and this API's.
const FIELDS: &[(&str, &str)] = &[
    ("first_response", "firstResponseMinutes"),
    ("resolution", "resolutionMinutes"),
    ("reopen_window", "reopenWindowHours"),
    ("sender_name", "name"),
    ("sender_address", "address"),
    ("reply_to", "replyTo"),
];

/// Reading the settings.
#[derive(Default)]
pub struct SettingsQuery;

#[Object]
impl SettingsQuery {
    /// The organisation's service levels (the defaults until an admin sets
    /// them). Staff only.
    async fn service_levels(&self, ctx: &Context<'_>) -> Result<ServiceLevels> {
        let by = access::staff_reader(ctx)?;
        services(ctx)?
            .tickets
            .service_levels_for(by.tenant, by.staff)
            .await
            .map(Into::into)
            .map_err(|e| service_error_named(&e, FIELDS))
    }

    /// Whom the organisation's notification e-mails come from. Admins only.
    async fn notification_sender(&self, ctx: &Context<'_>) -> Result<NotificationSender> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .notifications
            .sender(by.tenant)
            .await
            .map(Into::into)
            .map_err(|e| service_error_named(&e, FIELDS))
    }
}

/// Changing the settings.
#[derive(Default)]
pub struct SettingsMutation;

#[Object]
impl SettingsMutation {
    /// Sets the service levels; returns them. Each span is at least a
    /// minute and at most 365 days, and the first response may not be due
    /// after the resolution (`VALIDATION`, naming the argument). Tickets
    /// opened from now on are due by the new targets. Admins only.
    async fn configure_service_levels(
        &self,
        ctx: &Context<'_>,
        first_response_minutes: i32,
        resolution_minutes: i32,
        reopen_window_hours: i32,
    ) -> Result<ServiceLevels> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .tickets
            .configure_service_levels(
                by.tenant,
                by.staff,
                i64::from(first_response_minutes),
                i64::from(resolution_minutes),
                i64::from(reopen_window_hours),
            )
            .await
            .map(Into::into)
            .map_err(|e| service_error_named(&e, FIELDS))
    }

    /// Sets whom the notification e-mails come from; returns it. Each field
    /// left out, null or blank goes back to the platform's default.
    /// Malformed addresses are `VALIDATION`, naming the field. Admins only.
    async fn configure_notification_sender(
        &self,
        ctx: &Context<'_>,
        name: Option<String>,
        address: Option<String>,
        reply_to: Option<String>,
    ) -> Result<NotificationSender> {
        let by = access::admin(ctx)?;
        let given = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        let sender = SenderState {
            name: given(name),
            address: given(address),
            reply_to: given(reply_to),
        };
        services(ctx)?
            .notifications
            .configure_sender(by.tenant, by.staff, sender)
            .await
            .map(Into::into)
            .map_err(|e| service_error_named(&e, FIELDS))
    }
}
