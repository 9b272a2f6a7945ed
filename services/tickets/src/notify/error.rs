//! Why a request about subscriptions or announcements was refused, with the
//! stable code the API reports ([`NotifyError::code`]). Messages say what
//! to fix; internal errors reveal nothing.

use ventanilla_tickets_domain::announcement::AnnouncementError;
use ventanilla_tickets_domain::subscription::SubscriptionError;
use ventanilla_tickets_domain::values::InvalidValue;

use super::links::KeyError;
use crate::error::service_error_conversions;

/// Why a request was refused. Nothing is written when it is.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Malformed input; names the field (`VALIDATION`).
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// The caller may not do this (`FORBIDDEN`).
    #[error("{0}")]
    Forbidden(&'static str),
    /// The tenant is suspended (`TENANT_SUSPENDED`).
    #[error("this organisation's account is suspended ({reason}); contact the platform operator")]
    TenantSuspended {
        /// Why, as the operator said.
        reason: String,
    },
    /// The tenant does not exist or is closed (`NOT_FOUND`).
    #[error("this organisation's account does not exist or is closed")]
    TenantUnavailable,
    /// No such subscription, announcement, topic, case or account in the
    /// tenant (`NOT_FOUND`); says which.
    #[error("{0}")]
    NotFound(String),
    /// A link that is not valid: forged, mistyped, or made for something
    /// else (`NOT_FOUND`).
    #[error("this link is not valid; check that it was copied whole, or subscribe again")]
    InvalidLink,
    /// The subscription refused the command (codes in [`NotifyError::code`]).
    #[error(transparent)]
    Subscription(SubscriptionError),
    /// The announcement refused the command.
    #[error(transparent)]
    Announcement(AnnouncementError),
    /// A way of being told that this installation does not offer (yet)
    /// (`UNIMPLEMENTED`); the message says what to use instead.
    #[error("{0}")]
    Unimplemented(&'static str),
    /// The installation is not configured for it (`UNAVAILABLE`): the
    /// operator must set a key; the message names it.
    #[error("{0}")]
    NotConfigured(KeyError),
    /// Others kept changing the same thing; try again (`CONFLICT`).
    #[error("the subscription changed while the request ran; try again")]
    Conflict,
    /// Anything else (`INTERNAL`).
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

impl NotifyError {
    /// The stable error code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            NotifyError::Invalid(_) => "VALIDATION",
            NotifyError::Forbidden(_) => "FORBIDDEN",
            NotifyError::TenantSuspended { .. } => "TENANT_SUSPENDED",
            NotifyError::TenantUnavailable
            | NotifyError::NotFound(_)
            | NotifyError::InvalidLink => "NOT_FOUND",
            NotifyError::Subscription(e) => match e {
                SubscriptionError::Invalid(_) | SubscriptionError::ConfirmationMismatch => {
                    "VALIDATION"
                }
                SubscriptionError::UnknownTarget
                | SubscriptionError::NotFound
                | SubscriptionError::InvalidToken => "NOT_FOUND",
                SubscriptionError::AlreadyExists
                | SubscriptionError::Expired
                | SubscriptionError::Ended { .. } => "CONFLICT",
            },
            NotifyError::Announcement(e) => match e {
                AnnouncementError::Invalid(_) => "VALIDATION",
                AnnouncementError::Unknown => "NOT_FOUND",
                AnnouncementError::AlreadyPublished => "CONFLICT",
            },
            NotifyError::Unimplemented(_) => "UNIMPLEMENTED",
            NotifyError::NotConfigured(_) => "UNAVAILABLE",
            NotifyError::Conflict => "CONFLICT",
            NotifyError::Unexpected(_) => "INTERNAL",
        }
    }

    /// The input field a `VALIDATION` refusal is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            NotifyError::Invalid(v)
            | NotifyError::Subscription(SubscriptionError::Invalid(v))
            | NotifyError::Announcement(AnnouncementError::Invalid(v)) => Some(v.field),
            _ => None,
        }
    }
}

impl From<SubscriptionError> for NotifyError {
    fn from(e: SubscriptionError) -> Self {
        match e {
            SubscriptionError::Invalid(v) => NotifyError::Invalid(v),
            other => NotifyError::Subscription(other),
        }
    }
}

impl From<AnnouncementError> for NotifyError {
    fn from(e: AnnouncementError) -> Self {
        match e {
            AnnouncementError::Invalid(v) => NotifyError::Invalid(v),
            other => NotifyError::Announcement(other),
        }
    }
}

impl From<KeyError> for NotifyError {
    fn from(e: KeyError) -> Self {
        NotifyError::NotConfigured(e)
    }
}

service_error_conversions!(NotifyError);
