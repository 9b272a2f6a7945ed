//! A small but real SMTP server on 127.0.0.1 for tests, the simulator and
//! the benchmark: the platform's own [`SmtpReceiver`] (so it speaks what
//! the receiver speaks: EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, VRFY,
//! QUIT; SIZE, 8BITMIME, SMTPUTF8, PIPELINING; no TLS, no AUTH) with a
//! handler that keeps every accepted message as raw bytes in memory and
//! fails on cue:
//!
//! * recipients whose local part starts with `bounce` get
//!   `550 5.1.1 <addr>: Recipient address rejected: User unknown`;
//! * recipients whose local part starts with `later` get
//!   `451 4.3.0 Try again later` the first time each address is tried, and
//!   are accepted afterwards;
//! * [`SmtpSink::set_fail_all`] answers every `RCPT` with a given reply.
//!
//! What it must not do: run in production (it keeps everything in memory
//! and accepts mail for anyone).

use std::{
    collections::HashSet,
    io,
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use async_trait::async_trait;
use tokio::sync::Notify;

use crate::receiver::{Envelope, MailHandler, ReceiverConfig, Refusal, SmtpReceiver};

/// A message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMail {
    /// The envelope sender (`MAIL FROM`), empty for the null sender `<>`.
    pub from: String,
    /// The accepted envelope recipients (`RCPT TO`).
    pub to: Vec<String>,
    /// The message as received: RFC 5322 bytes with CRLF line endings,
    /// dot-unstuffed, without the terminating `.` line.
    pub data: Vec<u8>,
}

/// Largest message accepted; larger ones get `552`.
const MAX_MESSAGE: usize = 32 * 1024 * 1024;

#[derive(Default)]
struct State {
    mails: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
    /// `later…` addresses already answered with 451 (lower case).
    deferred: Mutex<HashSet<String>>,
    fail_all: Mutex<Option<(u16, String)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The receiver's handler: stores, or refuses on cue.
struct Keeper(Arc<State>);

#[async_trait]
impl MailHandler for Keeper {
    async fn recipient(&self, rcpt: &str) -> Result<(), Refusal> {
        recipient_verdict(&self.0, rcpt).map_or(Ok(()), Err)
    }

    async fn deliver(&self, mail: Envelope) -> Result<(), Refusal> {
        store(
            &self.0,
            ReceivedMail {
                from: mail.from,
                to: mail.to,
                data: mail.data,
            },
        );
        Ok(())
    }
}

/// A running SMTP server on 127.0.0.1. Dropping it stops the server and
/// closes its connections.
pub struct SmtpSink {
    receiver: SmtpReceiver,
    state: Arc<State>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr())
            .field("received", &self.count())
            .finish_non_exhaustive()
    }
}

impl SmtpSink {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start() -> io::Result<Self> {
        let state = Arc::new(State::default());
        let config = ReceiverConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            hostname: "127.0.0.1".to_owned(),
            max_message_bytes: MAX_MESSAGE,
            max_recipients: 1000,
            max_connections: 1024,
            idle_timeout: Duration::from_secs(300),
        };
        let receiver = SmtpReceiver::start(config, Arc::new(Keeper(Arc::clone(&state)))).await?;
        Ok(Self { receiver, state })
    }

    /// The address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.receiver.addr()
    }

    /// The URL for [`crate::MailerConfig::url`]: `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr())
    }

    /// A copy of every message accepted so far, in order of arrival.
    pub fn received(&self) -> Vec<ReceivedMail> {
        lock(&self.state.mails).clone()
    }

    /// Takes the messages accepted so far, leaving none.
    pub fn take(&self) -> Vec<ReceivedMail> {
        std::mem::take(&mut *lock(&self.state.mails))
    }

    /// Development (`make run`): until `shutdown`, writes each message
    /// received to `dir/<time>-<label>-<n>.eml` and logs its recipients and
    /// subject; the messages are not kept in memory.
    pub fn keep_in(
        self,
        dir: std::path::PathBuf,
        label: &'static str,
        shutdown: tokio_util::sync::CancellationToken,
    ) -> tokio::task::JoinHandle<std::io::Result<()>> {
        tokio::spawn(async move {
            tokio::fs::create_dir_all(&dir).await?;
            let mut n: u64 = 0;
            loop {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    () = tokio::time::sleep(std::time::Duration::from_millis(500)) => {}
                }
                for mail in self.take() {
                    n += 1;
                    let name = format!(
                        "{}-{label}-{n:05}.eml",
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs())
                            .unwrap_or_default()
                    );
                    tokio::fs::write(dir.join(&name), &mail.data).await?;
                    let subject = String::from_utf8_lossy(&mail.data)
                        .lines()
                        .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
                        .unwrap_or_default();
                    tracing::info!(to = ?mail.to, subject = %subject, file = %name, label, "mail sink: received");
                }
            }
            Ok(())
        })
    }

    /// How many messages are stored.
    pub fn count(&self) -> usize {
        lock(&self.state.mails).len()
    }

    /// Waits until at least `n` messages are stored, then returns them all;
    /// on timeout returns what there is.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.state.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if self.count() >= n {
                break;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                break;
            }
        }
        self.received()
    }

    /// Forgets the stored messages (not the `later…` addresses already
    /// deferred, nor the connection count).
    pub fn clear(&self) {
        lock(&self.state.mails).clear();
    }

    /// Answers every `RCPT` with `reply` (e.g. `(421, "4.3.2 System
    /// shutting down".into())`; a 4xx or 5xx code), or behaves normally
    /// again with `None`.
    pub fn set_fail_all(&self, reply: Option<(u16, String)>) {
        *lock(&self.state.fail_all) = reply;
    }

    /// How many connections have been opened since the start.
    pub fn connections(&self) -> usize {
        usize::try_from(self.receiver.connections_accepted()).unwrap_or(usize::MAX)
    }
}

fn store(state: &State, mail: ReceivedMail) {
    lock(&state.mails).push(mail);
    state.arrived.notify_waiters();
}

/// `None` to accept the recipient, or the refusal.
fn recipient_verdict(state: &State, rcpt: &str) -> Option<Refusal> {
    if let Some((code, text)) = &*lock(&state.fail_all) {
        return Some(Refusal::from_reply(*code, text));
    }
    let local = rcpt.split('@').next().unwrap_or_default();
    if starts_with_ignore_case(local, "bounce") {
        return Some(Refusal::new(
            550,
            "5.1.1",
            format!("<{rcpt}>: Recipient address rejected: User unknown"),
        ));
    }
    if starts_with_ignore_case(local, "later") && lock(&state.deferred).insert(rcpt.to_lowercase())
    {
        return Some(Refusal::temporary("Try again later"));
    }
    None
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::{
        io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
        net::TcpStream,
    };

    use super::*;

    #[test]
    fn scripted_recipients() {
        let state = State::default();
        assert!(
            recipient_verdict(&state, "Bounce7@x.org")
                .unwrap()
                .to_string()
                .starts_with("550 5.1.1 <Bounce7@x.org>")
        );
        assert!(
            recipient_verdict(&state, "later@x.org")
                .unwrap()
                .to_string()
                .starts_with("451 ")
        );
        assert_eq!(recipient_verdict(&state, "later@x.org"), None);
        assert_eq!(recipient_verdict(&state, "x@bounce.org"), None);
        *lock(&state.fail_all) = Some((421, "4.3.2 Shutting down".into()));
        assert_eq!(
            recipient_verdict(&state, "x@y.org").map(|r| r.to_string()),
            Some("421 4.3.2 Shutting down".to_owned())
        );
    }

    /// Reads one reply (skipping continuation lines) and checks its code.
    async fn expect(reader: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, code: &str) {
        let mut line = String::new();
        loop {
            line.clear();
            reader.read_line(&mut line).await.unwrap();
            if line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
    }

    #[tokio::test]
    async fn speaks_smtp_with_dot_stuffing() {
        let sink = SmtpSink::start().await.unwrap();
        let stream = TcpStream::connect(sink.addr()).await.unwrap();
        let (read, mut write) = stream.into_split();
        let mut reader = BufReader::new(read);
        expect(&mut reader, "220").await;
        for (command, code) in [
            ("MAIL FROM:<a@b.c>\r\n", "503"),
            ("EHLO test\r\n", "250"),
            ("DATA\r\n", "503"),
            ("MAIL FROM:<a@b.c>\r\n", "250"),
            ("RCPT TO:<bounce@x.org>\r\n", "550"),
            ("RCPT TO:<ok@x.org>\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: t\r\n\r\n..one\r\n.\r\n", "250"),
            ("NOOP\r\n", "250"),
            ("RSET\r\n", "250"),
            ("VRFY x\r\n", "252"),
            ("QUIT\r\n", "221"),
        ] {
            write.write_all(command.as_bytes()).await.unwrap();
            expect(&mut reader, code).await;
        }
        let mails = sink.received();
        assert_eq!(mails.len(), 1);
        assert_eq!(mails[0].from, "a@b.c");
        assert_eq!(mails[0].to, vec!["ok@x.org".to_owned()]);
        assert_eq!(mails[0].data, b"Subject: t\r\n\r\n.one\r\n");
        assert_eq!(sink.connections(), 1);
    }
}
