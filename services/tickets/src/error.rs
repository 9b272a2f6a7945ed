//! Why a request to the tickets service was refused, with the stable code
//! the API reports ([`TicketsError::code`]). Messages say what to fix.

use ventanilla_tickets_domain::service_levels::ServiceLevelsError;
use ventanilla_tickets_domain::ticket::TicketError;
use ventanilla_tickets_domain::values::InvalidValue;

/// Why a request was refused. Nothing is written when it is.
#[derive(Debug, thiserror::Error)]
pub enum TicketsError {
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
    /// No such ticket in the tenant (`NOT_FOUND`).
    #[error("no such ticket")]
    NotFound,
    /// The ticket refused the command (codes in [`TicketsError::code`]).
    #[error(transparent)]
    Ticket(TicketError),
    /// The service levels refused the change (`VALIDATION`).
    #[error(transparent)]
    ServiceLevels(#[from] ServiceLevelsError),
    /// Others kept changing the same ticket; try again (`CONFLICT`).
    #[error("the ticket changed while the command ran; try again")]
    Conflict,
    /// Anything else (`INTERNAL`); the message reveals nothing internal.
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

impl TicketsError {
    /// The stable error code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            TicketsError::Invalid(_) | TicketsError::ServiceLevels(_) => "VALIDATION",
            TicketsError::Forbidden(_) => "FORBIDDEN",
            TicketsError::TenantSuspended { .. } => "TENANT_SUSPENDED",
            TicketsError::TenantUnavailable | TicketsError::NotFound => "NOT_FOUND",
            TicketsError::Ticket(e) => match e {
                TicketError::Invalid(_)
                | TicketError::NoContact
                | TicketError::NotOutbound { .. }
                | TicketError::MergeWithItself
                | TicketError::Unreachable { .. } => "VALIDATION",
                TicketError::NotOpened
                | TicketError::UnknownAddressee { .. }
                | TicketError::UnknownMessage { .. }
                | TicketError::ForeignAgent { .. }
                | TicketError::UnknownDepartment { .. } => "NOT_FOUND",
                TicketError::AlreadyOpened
                | TicketError::OfficialNotAcceptingQuestions { .. }
                | TicketError::Closed
                | TicketError::Merged { .. }
                | TicketError::StartNewTicket { .. }
                | TicketError::TooManyTags { .. } => "CONFLICT",
            },
            TicketsError::Conflict => "CONFLICT",
            TicketsError::Unexpected(_) => "INTERNAL",
        }
    }

    /// The input field a `VALIDATION` refusal is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            TicketsError::Invalid(v)
            | TicketsError::Ticket(TicketError::Invalid(v))
            | TicketsError::ServiceLevels(ServiceLevelsError::Invalid(v)) => Some(v.field),
            TicketsError::Ticket(TicketError::NoContact) => Some("contact"),
            _ => None,
        }
    }
}

impl From<TicketError> for TicketsError {
    fn from(e: TicketError) -> Self {
        match e {
            TicketError::Invalid(v) => TicketsError::Invalid(v),
            other => TicketsError::Ticket(other),
        }
    }
}

service_error_conversions!(TicketsError);

/// The conversions every error type of this service has (same variant
/// names: `TenantSuspended`, `TenantUnavailable`, `Conflict`,
/// `Unexpected`): the tenants' facts, the event log's command errors, and
/// the internal failures, which reveal nothing.
macro_rules! service_error_conversions {
    ($error:ident) => {
        impl From<ventanilla_tenancy::TenancyError> for $error {
            fn from(e: ventanilla_tenancy::TenancyError) -> Self {
                match e {
                    ventanilla_tenancy::TenancyError::TenantSuspended { reason } => {
                        $error::TenantSuspended { reason }
                    }
                    ventanilla_tenancy::TenancyError::TenantUnavailable => {
                        $error::TenantUnavailable
                    }
                    ventanilla_tenancy::TenancyError::Unexpected(e) => $error::Unexpected(e),
                }
            }
        }

        impl From<anyhow::Error> for $error {
            fn from(e: anyhow::Error) -> Self {
                $error::Unexpected(e)
            }
        }

        impl From<sqlx::Error> for $error {
            fn from(e: sqlx::Error) -> Self {
                $error::Unexpected(e.into())
            }
        }

        impl From<ventanilla_kernel::StreamIdError> for $error {
            fn from(e: ventanilla_kernel::StreamIdError) -> Self {
                $error::Unexpected(e.into())
            }
        }

        impl<E: std::error::Error + Send + Sync + 'static>
            From<ventanilla_eventlog::CommandError<E>> for $error
        where
            $error: From<E>,
        {
            fn from(e: ventanilla_eventlog::CommandError<E>) -> Self {
                match e {
                    ventanilla_eventlog::CommandError::Domain(e) => e.into(),
                    ventanilla_eventlog::CommandError::Conflict { .. } => $error::Conflict,
                    ventanilla_eventlog::CommandError::Invalid(e) => $error::Unexpected(e.into()),
                    ventanilla_eventlog::CommandError::Unexpected(e) => $error::Unexpected(e),
                }
            }
        }
    };
}
pub(crate) use service_error_conversions;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_reveal_nothing_and_refusals_name_their_field() {
        let e = TicketsError::Unexpected(anyhow::anyhow!("connection to 10.0.0.3 refused"));
        assert_eq!(
            (e.code(), e.to_string().as_str()),
            ("INTERNAL", "internal error")
        );
        let e: TicketsError =
            TicketError::Invalid(InvalidValue::new("body", "must not be empty")).into();
        assert_eq!((e.code(), e.field()), ("VALIDATION", Some("body")));
        let e: TicketsError = TicketError::Closed.into();
        assert_eq!(e.code(), "CONFLICT");
    }
}
