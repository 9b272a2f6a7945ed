//! Reading the networks' JSON payloads, shared by the connectors that
//! parse Meta-shaped deliveries (`meta`, `whatsapp`): ids that arrive as
//! strings or numbers, required and optional fields, short excerpts for
//! refusals — every refusal a [`WebhookError::Malformed`] naming the
//! network, the path and the field.

use serde_json::Value;

use crate::connector::WebhookError;

/// A reader of one network's payloads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Reader {
    network: &'static str,
}

impl Reader {
    /// A reader whose refusals name `network`.
    pub(crate) const fn new(network: &'static str) -> Self {
        Self { network }
    }

    /// A refusal of the payload.
    pub(crate) fn malformed(&self, problem: impl Into<String>) -> WebhookError {
        WebhookError::Malformed {
            network: self.network,
            problem: problem.into(),
        }
    }

    /// `v.field`, an id (a string, or a number some test tools send).
    pub(crate) fn required_id(
        &self,
        v: &Value,
        field: &str,
        at: &str,
    ) -> Result<String, WebhookError> {
        v.get(field)
            .and_then(id_string)
            .ok_or_else(|| self.malformed(format!("{at}.{field} is missing or not an id")))
    }

    /// `v.field`, a non-empty string.
    pub(crate) fn required_str(
        &self,
        v: &Value,
        field: &str,
        at: &str,
    ) -> Result<String, WebhookError> {
        v.get(field)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| self.malformed(format!("{at}.{field} is missing or not a string")))
    }

    /// `v.field`, an array (none when absent or null).
    pub(crate) fn optional_array<'v>(
        &self,
        v: &'v Value,
        field: &str,
        at: &str,
    ) -> Result<&'v [Value], WebhookError> {
        match v.get(field) {
            None | Some(Value::Null) => Ok(&[]),
            Some(Value::Array(items)) => Ok(items),
            Some(_) => Err(self.malformed(format!("{at}.{field} is not an array"))),
        }
    }
}

/// An id, which the networks send as a string (some test tools send
/// numbers).
pub(crate) fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// At most `max` characters of a value quoted back in a refusal.
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
