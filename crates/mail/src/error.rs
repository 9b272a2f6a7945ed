//! What can go wrong when building or sending a mail, sorted by what the
//! caller should do about it: fix the message or the settings, drop it for
//! good, or try again later.

use std::error::Error as _;

use lettre::transport::smtp;

/// Why a mail was not sent.
///
/// The variants tell the caller what to do: [`MailError::is_permanent`] is
/// `true` when sending the same message again cannot succeed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MailError {
    /// The message cannot be built (bad address, header injection…): never
    /// retry, fix the data instead. Nothing was sent.
    #[error("the e-mail cannot be built: {0}")]
    Invalid(String),

    /// The mailer's configuration is wrong (bad URL, zero pool size…).
    #[error("the mail settings are wrong: {0}")]
    Config(String),

    /// The server refused the message for good (a 5xx reply, e.g. `550` no
    /// such user): never retry.
    #[error("the mail server refused the message for good: {message}")]
    Permanent {
        /// The SMTP reply code, when the server gave one.
        code: Option<u16>,
        /// The server's reply, starting with its code (`550 5.1.1 <…>: User
        /// unknown`).
        message: String,
    },

    /// The message could not be sent now; trying again later may work (a 4xx
    /// reply, connection refused or reset, timeout, TLS hiccup…).
    #[error("the mail could not be sent now, try again later: {message}")]
    Temporary {
        /// The SMTP reply code, when the server gave one.
        code: Option<u16>,
        /// The server's reply starting with its code, or what went wrong.
        message: String,
    },
}

/// SMTP reply codes about authentication (RFC 4954). They are 5xx, but they
/// say nothing about the message or its recipient: the mailer's credentials
/// are wrong, which an operator can fix, so they count as temporary.
const AUTH_CODES: [u16; 4] = [530, 534, 535, 538];

impl MailError {
    /// `true` when sending the same message again cannot succeed: the message
    /// is invalid, the settings are wrong, or the server refused it for good.
    ///
    /// Authentication refusals (530, 534, 535, 538) are *not* permanent even
    /// though they are 5xx: they come from the mailer's own credentials, not
    /// from the message, and must not make callers give up on recipients.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Self::Invalid(_) | Self::Config(_) | Self::Permanent { .. }
        )
    }

    /// The SMTP reply code of the server's refusal, if there was one.
    pub fn code(&self) -> Option<u16> {
        match self {
            Self::Permanent { code, .. } | Self::Temporary { code, .. } => *code,
            Self::Invalid(_) | Self::Config(_) => None,
        }
    }

    /// Sorts an error of lettre's SMTP transport. `server` names the server
    /// (host and port, never credentials) for messages about the connection.
    pub(crate) fn from_smtp(err: &smtp::Error, server: &str) -> Self {
        if let Some(status) = err.status() {
            let code = u16::from(status);
            // lettre keeps the server's reply text as the error's source.
            let reply = err
                .source()
                .map(ToString::to_string)
                .unwrap_or_else(|| "(the server gave no text)".to_owned());
            let message = format!("{code} {reply}");
            return if AUTH_CODES.contains(&code) {
                Self::Temporary {
                    code: Some(code),
                    message: format!(
                        "the SMTP server at {server} refused our credentials ({message}); \
                         check the user and password in the mail URL"
                    ),
                }
            } else if err.is_permanent() {
                Self::Permanent {
                    code: Some(code),
                    message,
                }
            } else {
                Self::Temporary {
                    code: Some(code),
                    message,
                }
            };
        }
        let message = if err.is_timeout() {
            format!("the SMTP server at {server} did not answer in time ({err})")
        } else if err.is_client() {
            format!("the SMTP client stopped talking to {server}: {err}")
        } else if err.is_transport_shutdown() {
            "the mailer has been closed".to_owned()
        } else {
            format!("could not talk to the SMTP server at {server}: {err}")
        };
        Self::Temporary {
            code: None,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permanence() {
        assert!(MailError::Invalid("x".into()).is_permanent());
        assert!(MailError::Config("x".into()).is_permanent());
        let permanent = MailError::Permanent {
            code: Some(550),
            message: "550 5.1.1 no such user".into(),
        };
        assert!(permanent.is_permanent());
        assert_eq!(permanent.code(), Some(550));
        let temporary = MailError::Temporary {
            code: None,
            message: "connection refused".into(),
        };
        assert!(!temporary.is_permanent());
        assert_eq!(temporary.code(), None);
    }

    #[test]
    fn messages_name_the_code() {
        let err = MailError::Permanent {
            code: Some(550),
            message: "550 5.1.1 <a@b.c>: User unknown".into(),
        };
        assert_eq!(
            err.to_string(),
            "the mail server refused the message for good: 550 5.1.1 <a@b.c>: User unknown"
        );
        let err = MailError::Temporary {
            code: None,
            message: "could not talk to the SMTP server at h:25: connection refused".into(),
        };
        assert_eq!(
            err.to_string(),
            "the mail could not be sent now, try again later: could not talk to the SMTP server at h:25: connection refused"
        );
    }
}
