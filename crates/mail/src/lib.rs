//! Outgoing e-mail over real SMTP for Ventanilla.
//!
//! Two uses: notifications to citizens who asked for them (confirmations,
//! announcements, case updates, daily digests), with one-click unsubscribe
//! (RFC 8058) and `Auto-Submitted` (RFC 3834); and, later, replies to
//! citizens who wrote by e-mail, with `In-Reply-To` and `References` so mail
//! clients thread them.
//!
//! * [`OutgoingMail`] is one finished message to one recipient; it checks
//!   every field (addresses, message ids, header names and values: no header
//!   injection) and lettre writes it (RFC 2047 for UTF-8 subjects and names,
//!   `multipart/alternative` when there is HTML).
//! * [`Mailer`] sends it through a pool of SMTP connections (lettre, Tokio,
//!   rustls) and sorts failures into [`MailError`]: [`MailError::Invalid`]
//!   and [`MailError::Permanent`] (5xx: e.g. no such user) must not be
//!   retried, [`MailError::Temporary`] (4xx, connection trouble, timeouts)
//!   may be.
//! * [`receiver::SmtpReceiver`] is the SMTP server the platform runs for
//!   incoming mail (the MX points at it): it hands each message to a
//!   [`receiver::MailHandler`] and says `250` only once the handler stored it.
//! * With the `sink` feature, [`sink::SmtpSink`] is a local SMTP server for
//!   tests, the simulator and the benchmark.
//!
//! What this crate must not do: render wording or templates (callers pass
//! finished text and HTML), retry (callers decide with
//! [`MailError::is_permanent`] and their own schedule), or know about
//! tenants, subscriptions or unsubscribe tokens (callers build the URL).

mod error;
mod mailer;
mod message;
pub mod receiver;
#[cfg(feature = "sink")]
pub mod sink;

pub use error::MailError;
pub use mailer::{Mailer, MailerConfig};
pub use message::{Address, OutgoingMail};
