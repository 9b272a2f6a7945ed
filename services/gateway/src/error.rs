//! Errors as integrators see them: every error the API returns carries a
//! stable `extensions.code` and a message a person can act on.
//!
//! [`service_error`] is the one place a service's refusal becomes a GraphQL
//! error: the code comes from the service's own `code()`, a `VALIDATION`
//! refusal also names the input field (`extensions.field`, in the API's
//! camelCase), and an `INTERNAL` error says only "internal error" while its
//! cause chain is logged once, here. [`with_codes`] gives GraphQL's own
//! errors (syntax, unknown fields, variable types, limits) the code
//! `VALIDATION`, keeping async-graphql's message.
//!
//! What this module must not do: decide whether something is allowed (the
//! services and [`crate::schema::access`] do), or put anything internal in a
//! message.

use std::fmt::Display;

use async_graphql::{Error, ErrorExtensions, Response, ServerError};

/// The stable codes, as `extensions.code`.
pub mod code {
    /// No credentials, or credentials that are not valid (any more).
    pub const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    /// Valid credentials that may not do this.
    pub const FORBIDDEN: &str = "FORBIDDEN";
    /// No such thing in the caller's tenant.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    /// Malformed input, or a query the schema or the limits refuse.
    pub const VALIDATION: &str = "VALIDATION";
    /// The state does not allow it (or it changed meanwhile).
    pub const CONFLICT: &str = "CONFLICT";
    /// The tenant's plan does not allow more.
    pub const QUOTA_EXCEEDED: &str = "QUOTA_EXCEEDED";
    /// The tenant is suspended by the operator.
    pub const TENANT_SUSPENDED: &str = "TENANT_SUSPENDED";
    /// Too many attempts; wait.
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    /// Our fault; nothing more is said.
    pub const INTERNAL: &str = "INTERNAL";
}

/// The message of every `INTERNAL` error.
pub const INTERNAL_MESSAGE: &str = "internal error";

/// A refusal of one of the services, as the gateway needs to see it.
pub trait ServiceError: Display + std::fmt::Debug {
    /// The service's stable code.
    fn code(&self) -> &'static str;

    /// The input field a `VALIDATION` refusal is about, as the service
    /// names it.
    fn field(&self) -> Option<&'static str> {
        None
    }
}

/// An error with `code` and `message`.
pub fn coded(code: &'static str, message: impl Into<String>) -> Error {
    Error::new(message).extend_with(|_, e| e.set("code", code))
}

/// A `VALIDATION` error about `field` (named as in the API).
pub fn invalid(field: &str, message: impl Into<String>) -> Error {
    let field = field.to_owned();
    Error::new(message).extend_with(move |_, e| {
        e.set("code", code::VALIDATION);
        e.set("field", field);
    })
}

/// The one function turning a service's refusal into a GraphQL error.
pub fn service_error(e: &impl ServiceError) -> Error {
    let code = e.code();
    if code == code::INTERNAL {
        // The cause chain is in the debug form; it is logged, never sent.
        tracing::error!(error = ?e, "a request failed with an internal error");
        return coded(code::INTERNAL, INTERNAL_MESSAGE);
    }
    match (code, e.field()) {
        (code::VALIDATION, Some(field)) => invalid(&camel_case(field), e.to_string()),
        _ => coded(code, e.to_string()),
    }
}

/// [`service_error`] for an operation whose input names some fields
/// otherwise than the service: each `(service's name, input's name)` pair
/// renames the field of a `VALIDATION` refusal, in `extensions.field` and
/// at the start of the message (`contact.email: …` → `email: …`).
pub fn service_error_named(e: &impl ServiceError, names: &[(&str, &str)]) -> Error {
    let renamed = e
        .field()
        .filter(|_| e.code() == code::VALIDATION)
        .and_then(|field| names.iter().find(|(from, _)| *from == field));
    let Some((from, to)) = renamed else {
        return service_error(e);
    };
    let message = e.to_string();
    let message = message
        .strip_prefix(from)
        .map_or_else(|| message.clone(), |rest| format!("{to}{rest}"));
    invalid(to, message)
}

/// `wait_for_citizen` → `waitForCitizen`, `contact.email` unchanged: the
/// services name fields in snake_case, the API in camelCase.
pub fn camel_case(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut upper = false;
    for c in field.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// Gives every error of `response` that has no code (GraphQL's own: the
/// query does not parse, names an unknown field, a variable has the wrong
/// type, a limit is exceeded) the code `VALIDATION`.
pub fn with_codes(mut response: Response) -> Response {
    for error in &mut response.errors {
        let extensions = error.extensions.get_or_insert_with(Default::default);
        if extensions.get("code").is_none() {
            extensions.set("code", code::VALIDATION);
        }
    }
    response
}

/// A response carrying only `error` (the request was not executed).
pub fn response_of(error: Error) -> Response {
    Response::from_errors(vec![error.into_server_error(Default::default())])
}

/// A response refusing the request before GraphQL saw it (a body that is
/// not a GraphQL request, or one too large).
pub fn refusal(code: &'static str, message: impl Into<String>) -> Response {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code);
    error.extensions = Some(extensions);
    Response::from_errors(vec![error])
}

// --- The services' errors ---

impl ServiceError for ventanilla_tickets::error::TicketsError {
    fn code(&self) -> &'static str {
        Self::code(self)
    }

    fn field(&self) -> Option<&'static str> {
        Self::field(self)
    }
}

impl ServiceError for ventanilla_tickets::notify::error::NotifyError {
    fn code(&self) -> &'static str {
        Self::code(self)
    }

    fn field(&self) -> Option<&'static str> {
        Self::field(self)
    }
}

impl ServiceError for ventanilla_tenants::staff::StaffServiceError {
    fn code(&self) -> &'static str {
        Self::code(self)
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid(v) => Some(v.field),
            _ => None,
        }
    }
}

impl ServiceError for ventanilla_tenants::api_keys::ApiKeysError {
    fn code(&self) -> &'static str {
        Self::code(self)
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid(v) => Some(v.field),
            _ => None,
        }
    }
}

impl ServiceError for ventanilla_tenants::operator::OperatorError {
    fn code(&self) -> &'static str {
        use ventanilla_tenants::operator::OperatorError as E;
        // The operator's errors have no code of their own (they served the
        // command line until now).
        match self {
            E::Invalid(_) => code::VALIDATION,
            E::UnknownTenant { .. } => code::NOT_FOUND,
            E::SlugTaken { .. } | E::Tenant(_) | E::Plan(_) | E::Conflict => code::CONFLICT,
            E::Staff(e) => e.code(),
            E::Unexpected(_) => code::INTERNAL,
        }
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid(v) => Some(v.field),
            _ => None,
        }
    }
}

impl ServiceError for ventanilla_tenants::organisation::OrganisationError {
    fn code(&self) -> &'static str {
        Self::code(self)
    }

    fn field(&self) -> Option<&'static str> {
        Self::field(self)
    }
}

impl ServiceError for ventanilla_social::accounts::SocialError {
    fn code(&self) -> &'static str {
        Self::code(self)
    }

    fn field(&self) -> Option<&'static str> {
        match self {
            Self::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use ventanilla_tickets::error::TicketsError;
    use ventanilla_tickets_domain::values::InvalidValue;

    fn extensions(e: Error) -> serde_json::Value {
        let server = e.into_server_error(Default::default());
        serde_json::to_value(&server).unwrap()
    }

    #[test]
    fn internal_errors_say_nothing_more() {
        let e = TicketsError::Unexpected(anyhow::anyhow!("connection to 10.0.0.3 refused"));
        let json = extensions(service_error(&e));
        assert_eq!(json["message"], "internal error");
        assert_eq!(json["extensions"]["code"], "INTERNAL");
        assert!(!json.to_string().contains("10.0.0.3"));
    }

    #[test]
    fn validation_names_the_field_in_camel_case() {
        let e = TicketsError::Invalid(InvalidValue::new("wait_for_citizen", "must be given"));
        let json = extensions(service_error(&e));
        assert_eq!(json["extensions"]["code"], "VALIDATION");
        assert_eq!(json["extensions"]["field"], "waitForCitizen");
        assert_eq!(camel_case("contact.email"), "contact.email");
    }

    #[test]
    fn graphql_errors_get_validation_and_coded_ones_keep_theirs() {
        let mut response = Response::from_errors(vec![
            ServerError::new("Unknown field \"nope\"", None),
            coded(code::FORBIDDEN, "no").into_server_error(Default::default()),
        ]);
        response = with_codes(response);
        let json = serde_json::to_value(&response).unwrap();
        assert_eq!(json["errors"][0]["extensions"]["code"], "VALIDATION");
        assert_eq!(json["errors"][1]["extensions"]["code"], "FORBIDDEN");
    }
}
