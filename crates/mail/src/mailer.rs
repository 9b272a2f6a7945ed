//! The SMTP client: a pooled lettre transport behind [`Mailer`], with a cap
//! on simultaneous connections, a time limit on every exchange, and lettre's
//! errors sorted into [`MailError`]s.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use lettre::{
    AsyncSmtpTransport, AsyncTransport, Tokio1Executor,
    transport::smtp::{AsyncSmtpTransportBuilder, PoolConfig},
};
use tokio::sync::Semaphore;

use crate::{MailError, OutgoingMail};

/// Where and how to send. Its `Debug` output hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct MailerConfig {
    /// The SMTP server, as lettre's `AsyncSmtpTransport::from_url` reads it:
    /// `smtp://host:port` (plain), `smtp://host:port?tls=opportunistic`
    /// (STARTTLS when offered), `smtp://host:port?tls=required` (STARTTLS or
    /// fail), `smtps://host:port` (implicit TLS). Credentials go in the
    /// userinfo, percent-encoded: `smtps://user:pa%40ss@host:465`.
    pub url: String,
    /// Most simultaneous SMTP connections; idle ones are kept for reuse.
    pub pool_size: u32,
    /// Time limit for connecting, and for the whole exchange of one message
    /// (lettre only limits connecting, so the mailer adds the rest).
    pub timeout: Duration,
}

impl MailerConfig {
    /// A configuration for `url` with 4 connections and a 30-second timeout.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 4,
            timeout: Duration::from_secs(30),
        }
    }
}

impl std::fmt::Debug for MailerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url = url::Url::parse(&self.url)
            .map(|url| redacted(&url))
            .unwrap_or_else(|_| "(not a URL)".to_owned());
        f.debug_struct("MailerConfig")
            .field("url", &url)
            .field("pool_size", &self.pool_size)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Sends [`OutgoingMail`]s over SMTP through a pool of connections.
///
/// Share one `Mailer` (behind an `Arc`) for the whole process: connections
/// are reused only within the same `Mailer`. It never retries; the caller
/// decides with [`MailError::is_permanent`].
pub struct Mailer {
    builder: AsyncSmtpTransportBuilder,
    /// The current transport and its generation. After a timed-out exchange
    /// the transport is replaced, so a connection left in the middle of a
    /// command is never handed out again (lettre's pool would reuse it).
    transport: Mutex<(u64, AsyncSmtpTransport<Tokio1Executor>)>,
    slots: Semaphore,
    timeout: Duration,
    /// Host and port, for messages (never the credentials).
    server: String,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("server", &self.server)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// Checks the configuration and prepares the pool; no connection is made
    /// until the first send. Must run inside a Tokio runtime (the pool starts
    /// a cleanup task).
    pub fn new(config: &MailerConfig) -> Result<Self, MailError> {
        if config.pool_size == 0 {
            return Err(MailError::Config(
                "the mail pool_size is 0; it must allow at least 1 connection".to_owned(),
            ));
        }
        if config.timeout.is_zero() {
            return Err(MailError::Config(
                "the mail timeout is 0; give it a few seconds (e.g. 30 s)".to_owned(),
            ));
        }
        let url = url::Url::parse(&config.url).map_err(|err| {
            MailError::Config(format!(
                "the mail url is not a URL ({err}); expected smtp://host:port, \
                 smtps://host:port or smtp://host:port?tls=required, with any credentials \
                 as user:password@"
            ))
        })?;
        let shown = redacted(&url);
        let server = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_owned(),
            (None, _) => shown.clone(),
        };
        let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(&config.url)
            .map_err(|err| {
                MailError::Config(format!(
                    "the mail url {shown} is not usable: {err}; expected smtp://host:port, \
                     smtps://host:port or smtp://host:port?tls=required|opportunistic"
                ))
            })?
            .timeout(Some(config.timeout))
            .pool_config(PoolConfig::new().max_size(config.pool_size));
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(MailError::Config(
                "Mailer::new must be called inside a Tokio runtime".to_owned(),
            ));
        }
        let transport = builder.clone().build();
        Ok(Self {
            builder,
            transport: Mutex::new((0, transport)),
            slots: Semaphore::new(config.pool_size as usize),
            timeout: config.timeout,
            server,
        })
    }

    /// The server's host and port, for logs (never the credentials).
    pub fn server(&self) -> &str {
        &self.server
    }

    /// Sends one message. Waits for a free connection slot when `pool_size`
    /// are busy (the timeout starts once it has one). `Ok` means the server
    /// accepted the message (`250` after `DATA`), not that it reached the
    /// mailbox.
    pub async fn send(&self, mail: &OutgoingMail) -> Result<(), MailError> {
        let message = mail.build()?;
        let _slot = self.slot().await?;
        let (generation, transport) = self.current();
        let result = tokio::time::timeout(self.timeout, transport.send(message)).await;
        // Let the pool park the connection (lettre does it in a spawned task)
        // before the slot is freed, so the next send reuses it rather than
        // opening another one.
        tokio::task::yield_now().await;
        match result {
            Ok(Ok(_response)) => Ok(()),
            Ok(Err(err)) => {
                let err = MailError::from_smtp(&err, &self.server);
                tracing::debug!(server = %self.server, error = %err, "mail not sent");
                Err(err)
            }
            Err(_elapsed) => {
                self.replace(generation);
                Err(self.timed_out("sending a message"))
            }
        }
    }

    /// Checks that the server answers (`NOOP` on a pooled or new connection):
    /// for readiness probes.
    pub async fn test_connection(&self) -> Result<bool, MailError> {
        let _slot = self.slot().await?;
        let (generation, transport) = self.current();
        let result = tokio::time::timeout(self.timeout, transport.test_connection()).await;
        tokio::task::yield_now().await; // as in `send`
        match result {
            Ok(Ok(connected)) => Ok(connected),
            Ok(Err(err)) => Err(MailError::from_smtp(&err, &self.server)),
            Err(_elapsed) => {
                self.replace(generation);
                Err(self.timed_out("testing the connection"))
            }
        }
    }

    /// Closes the pooled connections politely (`QUIT`); later sends fail.
    pub async fn close(&self) {
        self.slots.close();
        let (_, transport) = self.current();
        transport.shutdown().await;
    }

    async fn slot(&self) -> Result<tokio::sync::SemaphorePermit<'_>, MailError> {
        self.slots
            .acquire()
            .await
            .map_err(|_closed| MailError::Temporary {
                code: None,
                message: "the mailer has been closed".to_owned(),
            })
    }

    fn current(&self) -> (u64, AsyncSmtpTransport<Tokio1Executor>) {
        let guard = self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        (guard.0, guard.1.clone())
    }

    /// Drops the pool of `generation` (once, however many sends timed out on
    /// it) in favour of a fresh one.
    fn replace(&self, generation: u64) {
        let mut guard = self
            .transport
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if guard.0 == generation {
            *guard = (generation + 1, self.builder.clone().build());
            tracing::warn!(
                server = %self.server,
                "SMTP exchange timed out; connection pool renewed"
            );
        }
    }

    fn timed_out(&self, what: &str) -> MailError {
        MailError::Temporary {
            code: None,
            message: format!(
                "the SMTP server at {} did not finish {what} within {:?}",
                self.server, self.timeout
            ),
        }
    }
}

/// The URL with the password hidden, for error messages.
fn redacted(url: &url::Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        // Only fails for URLs that cannot have credentials, which these have.
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn config(url: &str) -> MailerConfig {
        MailerConfig::new(url)
    }

    fn config_error(config: &MailerConfig) -> String {
        match Mailer::new(config) {
            Err(MailError::Config(message)) => message,
            other => panic!("expected Config, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn bad_urls_are_config_errors() {
        assert!(config_error(&config("not a url")).contains("mail url"));
        assert!(config_error(&config("http://smtp.example.org")).contains("mail url"));
        assert!(config_error(&config("smtp://h:25?tls=maybe")).contains("mail url"));
        let message = config_error(&config("ftp://user:secret@h:25"));
        assert!(!message.contains("secret"), "{message}");
        let mut zero = config("smtp://127.0.0.1:25");
        zero.pool_size = 0;
        assert!(config_error(&zero).contains("pool_size"));
        let mut zero = config("smtp://127.0.0.1:25");
        zero.timeout = Duration::ZERO;
        assert!(config_error(&zero).contains("timeout"));
    }

    #[tokio::test]
    async fn good_urls_are_accepted() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtp://user:pass@mail.example.org:587?tls=required",
            "smtps://mail.example.org",
        ] {
            let mailer = Mailer::new(&config(url)).unwrap();
            assert!(!mailer.server().contains("pass"));
        }
    }

    #[test]
    fn debug_hides_the_password() {
        let shown = format!("{:?}", config("smtps://user:secret@mail.example.org"));
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("mail.example.org"), "{shown}");
    }

    #[test]
    fn outside_a_runtime_is_a_config_error() {
        assert!(config_error(&config("smtp://127.0.0.1:2525")).contains("Tokio"));
    }
}
