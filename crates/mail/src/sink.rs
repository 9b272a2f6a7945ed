//! A small but real SMTP server on 127.0.0.1 for tests, the simulator and
//! the benchmark: it speaks enough RFC 5321 for lettre (EHLO/HELO, MAIL,
//! RCPT, DATA, RSET, NOOP, QUIT; 8BITMIME and SMTPUTF8, no TLS, no AUTH, no
//! pipelining), serves many connections at once, keeps every accepted
//! message as raw bytes, and fails on cue:
//!
//! * recipients whose local part starts with `bounce` get
//!   `550 5.1.1 <addr>: Recipient address rejected: User unknown`;
//! * recipients whose local part starts with `later` get
//!   `451 4.3.0 Try again later` the first time each address is tried, and
//!   are accepted afterwards;
//! * [`SmtpSink::set_fail_all`] answers every `RCPT` with a given reply.

use std::{
    collections::HashSet,
    io,
    net::SocketAddr,
    sync::{
        Arc, Mutex, MutexGuard, PoisonError,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{TcpListener, TcpStream},
    sync::Notify,
    task::{JoinHandle, JoinSet},
};

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

/// Longest command line accepted.
const MAX_COMMAND_LINE: u64 = 4096;
/// Largest message accepted; larger ones get `552`.
const MAX_MESSAGE: usize = 32 * 1024 * 1024;

#[derive(Default)]
struct State {
    mails: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
    connections: AtomicUsize,
    /// `later…` addresses already answered with 451 (lower case).
    deferred: Mutex<HashSet<String>>,
    fail_all: Mutex<Option<(u16, String)>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running SMTP server on 127.0.0.1. Dropping it stops the server and
/// closes its connections.
pub struct SmtpSink {
    addr: SocketAddr,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .field("received", &self.count())
            .finish_non_exhaustive()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection task.
        self.server.abort();
    }
}

impl SmtpSink {
    /// Binds 127.0.0.1 on a free port and starts serving.
    pub async fn start() -> io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State::default());
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));
        Ok(Self {
            addr,
            state,
            server,
        })
    }

    /// The address the sink listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL for [`crate::MailerConfig::url`]: `smtp://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    /// A copy of every message accepted so far, in order of arrival.
    pub fn received(&self) -> Vec<ReceivedMail> {
        lock(&self.state.mails).clone()
    }

    /// Takes the messages accepted so far, leaving none.
    pub fn take(&self) -> Vec<ReceivedMail> {
        std::mem::take(&mut *lock(&self.state.mails))
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
        self.state.connections.load(Ordering::Relaxed)
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    state.connections.fetch_add(1, Ordering::Relaxed);
                    let state = Arc::clone(&state);
                    sessions.spawn(async move {
                        if let Err(err) = session(stream, &state).await {
                            tracing::debug!(error = %err, "SMTP sink session ended with an error");
                        }
                    });
                }
                Err(err) => {
                    tracing::warn!(error = %err, "SMTP sink could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            },
            Some(_finished) = sessions.join_next(), if !sessions.is_empty() => {}
        }
    }
}

/// The envelope of the transaction in progress.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

async fn session(stream: TcpStream, state: &State) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(16 * 1024, read);
    let mut line = Vec::with_capacity(512);
    let mut reply = String::with_capacity(128);
    let mut greeted = false;
    let mut transaction = Transaction::default();
    let mut data_capacity = 4096;

    write
        .write_all(b"220 127.0.0.1 ESMTP ventanilla-mail sink\r\n")
        .await?;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(MAX_COMMAND_LINE)
            .read_until(b'\n', &mut line)
            .await?;
        if read == 0 {
            return Ok(());
        }
        if line.last() != Some(&b'\n') {
            write
                .write_all(b"500 5.5.0 Line too long or cut short\r\n")
                .await?;
            return Ok(());
        }
        let command = trim_eol(&line);
        let verb = command.get(..4).unwrap_or(command);
        reply.clear();
        if verb.eq_ignore_ascii_case(b"EHLO") {
            greeted = true;
            transaction = Transaction::default();
            reply.push_str("250-127.0.0.1 greets ");
            reply.push_str(&String::from_utf8_lossy(argument(command)));
            reply.push_str("\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
        } else if verb.eq_ignore_ascii_case(b"HELO") {
            greeted = true;
            transaction = Transaction::default();
            reply.push_str("250 127.0.0.1\r\n");
        } else if verb.eq_ignore_ascii_case(b"MAIL") {
            match path_after(command, b"MAIL FROM:") {
                _ if !greeted => reply.push_str("503 5.5.1 Error: send HELO/EHLO first\r\n"),
                _ if transaction.from.is_some() => {
                    reply.push_str("503 5.5.1 Error: nested MAIL command\r\n");
                }
                Some(path) => {
                    transaction.from = Some(String::from_utf8_lossy(path).into_owned());
                    reply.push_str("250 2.1.0 Ok\r\n");
                }
                None => reply.push_str("501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
            }
        } else if verb.eq_ignore_ascii_case(b"RCPT") {
            match path_after(command, b"RCPT TO:") {
                _ if transaction.from.is_none() => {
                    reply.push_str("503 5.5.1 Error: need MAIL command\r\n");
                }
                Some(path) => {
                    let rcpt = String::from_utf8_lossy(path).into_owned();
                    match recipient_verdict(state, &rcpt) {
                        Some(refusal) => reply.push_str(&refusal),
                        None => {
                            transaction.to.push(rcpt);
                            reply.push_str("250 2.1.5 Ok\r\n");
                        }
                    }
                }
                None => reply.push_str("501 5.5.4 Syntax: RCPT TO:<address>\r\n"),
            }
        } else if verb.eq_ignore_ascii_case(b"DATA") {
            if transaction.to.is_empty() {
                reply.push_str("554 5.5.1 Error: no valid recipients\r\n");
            } else {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                // lettre writes the message and the final `.` line separately;
                // with Nagle on its side, the `.` waits for our ACK of the
                // message, which Linux would delay by up to 40 ms.
                #[cfg(target_os = "linux")]
                let _ = AsRef::<TcpStream>::as_ref(&write).set_quickack(true);
                let mut data = Vec::with_capacity(data_capacity);
                if !read_data(&mut reader, &mut line, &mut data).await? {
                    return Ok(()); // the client went away mid-message
                }
                let envelope = std::mem::take(&mut transaction);
                if data.len() > MAX_MESSAGE {
                    reply.push_str("552 5.3.4 Message too big\r\n");
                } else {
                    data_capacity = data.len().max(1024);
                    let id = store(
                        state,
                        ReceivedMail {
                            from: envelope.from.unwrap_or_default(),
                            to: envelope.to,
                            data,
                        },
                    );
                    reply.push_str("250 2.0.0 Ok: queued as ");
                    reply.push_str(&id.to_string());
                    reply.push_str("\r\n");
                }
            }
        } else if verb.eq_ignore_ascii_case(b"RSET") {
            transaction = Transaction::default();
            reply.push_str("250 2.0.0 Ok\r\n");
        } else if verb.eq_ignore_ascii_case(b"NOOP") {
            reply.push_str("250 2.0.0 Ok\r\n");
        } else if verb.eq_ignore_ascii_case(b"QUIT") {
            write.write_all(b"221 2.0.0 Bye\r\n").await?;
            return Ok(());
        } else {
            reply.push_str("502 5.5.2 Error: command not implemented\r\n");
        }
        write.write_all(reply.as_bytes()).await?;
    }
}

/// Reads the message after `354` up to the `.` line, undoing dot-stuffing.
/// Returns `false` if the connection closed first. Bytes past
/// [`MAX_MESSAGE`] are counted but not kept.
async fn read_data<R>(reader: &mut R, line: &mut Vec<u8>, data: &mut Vec<u8>) -> io::Result<bool>
where
    R: AsyncBufReadExt + Unpin,
{
    loop {
        line.clear();
        if reader.read_until(b'\n', line).await? == 0 {
            return Ok(false);
        }
        if line == b".\r\n" || line == b".\n" {
            return Ok(true);
        }
        let content = line.strip_prefix(b".").unwrap_or(line);
        if data.len() <= MAX_MESSAGE {
            data.extend_from_slice(content);
        }
    }
}

fn store(state: &State, mail: ReceivedMail) -> usize {
    let id = {
        let mut mails = lock(&state.mails);
        mails.push(mail);
        mails.len()
    };
    state.arrived.notify_waiters();
    id
}

/// `None` to accept the recipient, or the refusal line.
fn recipient_verdict(state: &State, rcpt: &str) -> Option<String> {
    if let Some((code, text)) = &*lock(&state.fail_all) {
        return Some(format!("{code} {text}\r\n"));
    }
    let local = rcpt.split('@').next().unwrap_or_default();
    if starts_with_ignore_case(local, "bounce") {
        return Some(format!(
            "550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n"
        ));
    }
    if starts_with_ignore_case(local, "later") && lock(&state.deferred).insert(rcpt.to_lowercase())
    {
        return Some("451 4.3.0 Try again later\r\n".to_owned());
    }
    None
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.get(..prefix.len())
        .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// What follows the verb, trimmed.
fn argument(command: &[u8]) -> &[u8] {
    command.get(4..).unwrap_or_default().trim_ascii()
}

/// The address in `PREFIX<address> [parameters]` (case-insensitive prefix,
/// optional spaces after the colon, brackets optional); `None` when the
/// command does not start with `prefix`.
fn path_after<'a>(command: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = command.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = command.get(prefix.len()..)?.trim_ascii_start();
    if let Some(inner) = rest.strip_prefix(b"<") {
        let end = inner.iter().position(|&b| b == b'>')?;
        inner.get(..end)
    } else {
        rest.split(|&b| b == b' ').next()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn paths_are_parsed() {
        assert_eq!(
            path_after(b"MAIL FROM:<a@b.c> BODY=8BITMIME", b"MAIL FROM:"),
            Some(&b"a@b.c"[..])
        );
        assert_eq!(path_after(b"mail from: <>", b"MAIL FROM:"), Some(&b""[..]));
        assert_eq!(
            path_after(b"RCPT TO:x@y.z", b"RCPT TO:"),
            Some(&b"x@y.z"[..])
        );
        assert_eq!(path_after(b"RCPT TO:<x@y.z", b"RCPT TO:"), None);
        assert_eq!(path_after(b"RCPT", b"RCPT TO:"), None);
    }

    #[test]
    fn scripted_recipients() {
        let state = State::default();
        assert!(
            recipient_verdict(&state, "Bounce7@x.org")
                .unwrap()
                .starts_with("550 5.1.1 <Bounce7@x.org>")
        );
        assert!(
            recipient_verdict(&state, "later@x.org")
                .unwrap()
                .starts_with("451 ")
        );
        assert_eq!(recipient_verdict(&state, "later@x.org"), None);
        assert_eq!(recipient_verdict(&state, "x@bounce.org"), None);
        *lock(&state.fail_all) = Some((421, "4.3.2 Shutting down".into()));
        assert_eq!(
            recipient_verdict(&state, "x@y.org").as_deref(),
            Some("421 4.3.2 Shutting down\r\n")
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
            ("DATA\r\n", "554"),
            ("MAIL FROM:<a@b.c>\r\n", "250"),
            ("RCPT TO:<bounce@x.org>\r\n", "550"),
            ("RCPT TO:<ok@x.org>\r\n", "250"),
            ("DATA\r\n", "354"),
            ("Subject: t\r\n\r\n..one\r\n.\r\n", "250"),
            ("NOOP\r\n", "250"),
            ("RSET\r\n", "250"),
            ("VRFY x\r\n", "502"),
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
