//! The SMTP receiver the platform runs for incoming e-mail: the MX of a
//! council's contact address (or a relay in front of it) points at it, and
//! every message it accepts is handed to a [`MailHandler`] — the platform —
//! which stores it before the receiver says yes.
//!
//! What it speaks (RFC 5321): `EHLO`/`HELO`, `MAIL FROM` (with the `SIZE=`
//! and `BODY=` parameters, and `SMTPUTF8`), `RCPT TO`, `DATA`, `RSET`,
//! `NOOP`, `QUIT`, `VRFY` (always `252`); it advertises `SIZE`, `8BITMIME`,
//! `SMTPUTF8`, `PIPELINING` (RFC 2920: replies are written when the client's
//! input runs dry, in order) and `ENHANCEDSTATUSCODES` (RFC 2034: the
//! `x.y.z` codes are sent to clients that said `EHLO`).
//!
//! The guarantees:
//! - **Nothing is lost.** `DATA` is answered `250` only after
//!   [`MailHandler::deliver`] returned `Ok`; a handler error is answered
//!   with its [`Refusal`] (a `4xx` makes the sender retry), and if the
//!   process dies before answering, the sender retries too.
//! - **Bounded resources.** At most `max_connections` sessions (the next one
//!   gets `421 4.7.0` and is closed); per session, a command line of at most
//!   [`MAX_COMMAND_LINE`] octets, a message of at most `max_message_bytes`
//!   (refused up front by `SIZE=`, or with `552 5.3.4` after the rest was
//!   read and discarded), message lines of at most [`MAX_DATA_LINE`]
//!   octets, `max_recipients` recipients; every read and write is limited
//!   by `idle_timeout` (`421 4.4.2` and closed); too many errors or idle
//!   commands close the session with `421 4.7.0`.
//! - **No smuggling, no loops.** The message ends only at
//!   `<CR><LF>.<CR><LF>` (a bare `<LF>` is kept as data, never a line end
//!   for the end marker or dot-unstuffing), and a message that went through
//!   more than [`MAX_HOPS`] `Received:` hops is refused (`554 5.4.6`,
//!   RFC 5321 §6.3).
//!
//! What it must not do: parse or judge the content (the handler does),
//! keep messages itself, retry, relay mail anywhere else, or speak TLS or
//! AUTH. There is no `STARTTLS` and no `AUTH` yet: run it behind a relay or
//! a TLS terminator (e.g. the MX's Postfix relaying to it on a private
//! network); TLS is a later step.

use std::{
    fmt, io,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use async_trait::async_trait;
use tokio::{
    io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpListener, TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::Semaphore,
    task::{JoinHandle, JoinSet},
};
use tokio_util::sync::CancellationToken;

/// Longest command line accepted, `<CR><LF>` included (RFC 5321 allows 512;
/// parameters and UTF-8 addresses make real ones longer). A longer line gets
/// `500 5.5.2` and the session is closed.
pub const MAX_COMMAND_LINE: usize = 2048;

/// Longest line of a message accepted (RFC 5322 allows 998 octets, which
/// real mail often exceeds; this only stops a message without line breaks).
pub const MAX_DATA_LINE: usize = 64 * 1024;

/// Most `Received:` headers a message may carry (Postfix's default
/// `hopcount_limit`); more means it is going round in circles.
pub const MAX_HOPS: usize = 50;

/// Errors (bad commands, refused recipients) after which the session is
/// closed with `421 4.7.0`.
const MAX_ERRORS: u32 = 20;

/// Commands that do not move a transaction forward (`NOOP`, `RSET`, `VRFY`,
/// `HELO`…) allowed between two delivered messages: a client cannot keep a
/// connection slot forever with `NOOP`s.
const MAX_JUNK_COMMANDS: u32 = 100;

/// Longest time [`SmtpReceiver::shutdown`] waits for sessions in progress.
const MAX_SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// Longest time a closing session waits for the client to close its side.
const MAX_LINGER: Duration = Duration::from_secs(2);

/// Most octets a closing session reads (and drops) while it waits.
const MAX_LINGER_BYTES: usize = 64 * 1024;

/// Longest address (path) accepted in `MAIL FROM` or `RCPT TO` (RFC 5321
/// §4.5.3.1.3).
const MAX_PATH: usize = 256;

/// Where and how the receiver listens, and its limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// The address to listen on (`0.0.0.0:25`, or `127.0.0.1:0` for a free
    /// port in tests).
    pub bind: SocketAddr,
    /// The name the receiver gives itself in its greeting and `EHLO` reply
    /// (the MX host name, e.g. `mx.ventanilla.example`).
    pub hostname: String,
    /// The largest message accepted, in octets, as received (advertised as
    /// `SIZE`).
    pub max_message_bytes: usize,
    /// Most recipients in one transaction; more get `452 4.5.3` (the
    /// sender sends the rest in another transaction).
    pub max_recipients: usize,
    /// Most simultaneous sessions; one more gets `421 4.7.0` and is closed.
    pub max_connections: usize,
    /// How long the receiver waits for the client to send (or take)
    /// anything before it says `421 4.4.2` and closes. RFC 5321 suggests 5
    /// minutes.
    pub idle_timeout: Duration,
}

impl ReceiverConfig {
    /// A configuration listening on `bind` with production defaults: host
    /// name `localhost`, 25 MiB messages, 100 recipients, 200 connections,
    /// a 5-minute idle timeout.
    pub fn new(bind: SocketAddr) -> Self {
        Self {
            bind,
            hostname: "localhost".to_owned(),
            max_message_bytes: 25 * 1024 * 1024,
            max_recipients: 100,
            max_connections: 200,
            idle_timeout: Duration::from_secs(300),
        }
    }

    fn check(&self) -> io::Result<()> {
        let invalid =
            |what: &str| Err(io::Error::new(io::ErrorKind::InvalidInput, what.to_owned()));
        let hostname_ok = !self.hostname.is_empty()
            && self.hostname.len() <= 255
            && self.hostname.bytes().all(|b| b.is_ascii_graphic());
        if !hostname_ok {
            return invalid(
                "the SMTP receiver's hostname must be 1 to 255 printable ASCII characters without spaces",
            );
        }
        if self.max_message_bytes == 0 {
            return invalid("the SMTP receiver's max_message_bytes is 0; it must allow a message");
        }
        if self.max_recipients == 0 {
            return invalid("the SMTP receiver's max_recipients is 0; it must allow a recipient");
        }
        if self.max_connections == 0 {
            return invalid("the SMTP receiver's max_connections is 0; it must allow a connection");
        }
        if self.idle_timeout.is_zero() {
            return invalid("the SMTP receiver's idle_timeout is 0; give it minutes (e.g. 5)");
        }
        Ok(())
    }
}

/// One message as received: its SMTP envelope and its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The envelope sender (`MAIL FROM`), empty for the null sender `<>`
    /// (bounces and other automatic mail).
    pub from: String,
    /// The accepted envelope recipients (`RCPT TO`), in order, each once.
    pub to: Vec<String>,
    /// The message: RFC 5322 bytes as sent (CRLF line endings),
    /// dot-unstuffed, without the terminating `.` line.
    pub data: Vec<u8>,
    /// Who sent it (the client's address), for logs and abuse reports.
    pub peer: SocketAddr,
}

/// The answer a [`MailHandler`] gives to refuse a recipient or a message:
/// an SMTP reply. A `4xx` code makes the sender try again later, a `5xx`
/// makes it give up (and usually bounce).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The reply code, 400 to 599 (anything else is sent as `451`).
    pub code: u16,
    /// The enhanced status code (RFC 3463), `4.x.y` or `5.x.y` matching the
    /// code's class (otherwise `4.0.0` / `5.0.0` is sent).
    pub enhanced: String,
    /// The text after the codes; one line (line breaks and control
    /// characters become spaces).
    pub text: String,
}

impl Refusal {
    /// A refusal with every part given.
    pub fn new(code: u16, enhanced: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            code,
            enhanced: enhanced.into(),
            text: text.into(),
        }
    }

    /// `550 5.1.1`: no such mailbox here.
    pub fn no_such_user() -> Self {
        Self::new(550, "5.1.1", "Recipient address rejected: User unknown")
    }

    /// `451 4.3.0`: something failed on our side; the sender retries later.
    pub fn temporary(text: impl Into<String>) -> Self {
        Self::new(451, "4.3.0", text)
    }

    /// `554 5.7.1`: refused for good by policy.
    pub fn rejected(text: impl Into<String>) -> Self {
        Self::new(554, "5.7.1", text)
    }

    /// Parses a reply as a server writes it after the code, `4.3.2 Service
    /// shutting down` or just `Service shutting down`: the enhanced code is
    /// taken from the text when it starts with one.
    pub fn from_reply(code: u16, reply: &str) -> Self {
        let reply = reply.trim();
        match reply.split_once(' ') {
            Some((first, rest)) if is_enhanced_code(first) => Self::new(code, first, rest),
            None if is_enhanced_code(reply) => Self::new(code, reply, ""),
            _ => Self::new(code, "", reply),
        }
    }

    /// Whether the sender must give up (a `5xx`).
    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// The code, enhanced code and text as they go on the wire (without
    /// CRLF), made safe: a code outside 400..=599 becomes 451, an enhanced
    /// code of the wrong shape or class is replaced, the text is one line.
    fn normalized(&self) -> (u16, String, String) {
        let code = if (400..=599).contains(&self.code) {
            self.code
        } else {
            tracing::warn!(
                code = self.code,
                "a mail handler refused with a code that is not 4xx or 5xx; sending 451"
            );
            451
        };
        let class = if code >= 500 { '5' } else { '4' };
        let enhanced = if is_enhanced_code(&self.enhanced) && self.enhanced.starts_with(class) {
            self.enhanced.clone()
        } else {
            format!("{class}.0.0")
        };
        let mut text: String = self
            .text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(400)
            .collect();
        if text.trim().is_empty() {
            text = if code >= 500 {
                "Refused".to_owned()
            } else {
                "Try again later".to_owned()
            };
        }
        (code, enhanced, text)
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (code, enhanced, text) = self.normalized();
        write!(f, "{code} {enhanced} {text}")
    }
}

/// `x.y.z` with x in 2, 4, 5 and y, z of 1 to 3 digits.
fn is_enhanced_code(value: &str) -> bool {
    let mut parts = value.split('.');
    let digits = |part: Option<&str>| {
        part.is_some_and(|p| (1..=3).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()))
    };
    matches!(parts.next(), Some("2" | "4" | "5"))
        && digits(parts.next())
        && digits(parts.next())
        && parts.next().is_none()
}

/// What the platform does with incoming mail. Both calls may be slow (a
/// database lookup, a durable write): the client waits. They should bound
/// their own time; a sender waits up to 10 minutes for the answer to
/// `DATA`.
#[async_trait]
pub trait MailHandler: Send + Sync {
    /// Whether mail for `rcpt` (the address in `RCPT TO`, without angle
    /// brackets) is accepted here. `Err(Refusal::no_such_user())` for an
    /// address that is not ours.
    async fn recipient(&self, rcpt: &str) -> Result<(), Refusal>;

    /// Takes one message for good. Return `Ok` only once it is stored
    /// durably: the sender then forgets it. An `Err` is sent to the client
    /// as is (a `4xx` makes it retry later).
    async fn deliver(&self, mail: Envelope) -> Result<(), Refusal>;
}

struct Shared {
    config: ReceiverConfig,
    handler: Arc<dyn MailHandler>,
    slots: Arc<Semaphore>,
    accepted: AtomicU64,
}

/// A running SMTP receiver. [`SmtpReceiver::shutdown`] stops it politely;
/// dropping it stops it at once (connections are closed mid-session, and
/// their senders retry).
pub struct SmtpReceiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
    cancel: CancellationToken,
    server: Option<JoinHandle<()>>,
}

impl fmt::Debug for SmtpReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpReceiver")
            .field("addr", &self.addr)
            .field("hostname", &self.shared.config.hostname)
            .field("active", &self.active_connections())
            .finish_non_exhaustive()
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.cancel.cancel();
        if let Some(server) = &self.server {
            // Aborting the accept loop drops its JoinSet, which aborts every
            // session.
            server.abort();
        }
    }
}

impl SmtpReceiver {
    /// Checks `config`, binds its address and starts serving; mail goes to
    /// `handler`. Must run inside a Tokio runtime.
    pub async fn start(config: ReceiverConfig, handler: Arc<dyn MailHandler>) -> io::Result<Self> {
        config.check()?;
        let listener = TcpListener::bind(config.bind).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            slots: Arc::new(Semaphore::new(config.max_connections)),
            config,
            handler,
            accepted: AtomicU64::new(0),
        });
        let cancel = CancellationToken::new();
        let server = tokio::spawn(serve(listener, Arc::clone(&shared), cancel.clone()));
        tracing::info!(%addr, hostname = %shared.config.hostname, "SMTP receiver listening");
        Ok(Self {
            addr,
            shared,
            cancel,
            server: Some(server),
        })
    }

    /// The address it listens on (with the actual port when the
    /// configuration asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections were accepted since the start (those refused
    /// for being too many included).
    pub fn connections_accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::Relaxed)
    }

    /// How many sessions are open now.
    pub fn active_connections(&self) -> usize {
        self.shared
            .config
            .max_connections
            .saturating_sub(self.shared.slots.available_permits())
    }

    /// Stops accepting connections, lets every session finish the command
    /// in progress (a message being received is received and delivered),
    /// then answers `421 4.3.2` to its next command and closes it. Waits
    /// for that at most 30 seconds (or the idle timeout, if shorter); the
    /// sessions still open then are dropped, and their senders retry.
    pub async fn shutdown(mut self) {
        self.cancel.cancel();
        let grace = self.shared.config.idle_timeout.min(MAX_SHUTDOWN_GRACE);
        if let Some(mut server) = self.server.take()
            && tokio::time::timeout(grace, &mut server).await.is_err()
        {
            tracing::warn!(
                addr = %self.addr,
                "SMTP receiver: sessions still open after {grace:?}; closing them"
            );
            server.abort();
        }
        tracing::info!(addr = %self.addr, "SMTP receiver stopped");
    }
}

async fn serve(listener: TcpListener, shared: Arc<Shared>, cancel: CancellationToken) {
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => break,
            Some(finished) = sessions.join_next(), if !sessions.is_empty() => {
                if let Err(err) = finished
                    && err.is_panic()
                {
                    tracing::error!(error = %err, "an SMTP session panicked; its connection was dropped");
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    shared.accepted.fetch_add(1, Ordering::Relaxed);
                    match Arc::clone(&shared.slots).try_acquire_owned() {
                        Ok(permit) => {
                            let shared = Arc::clone(&shared);
                            let cancel = cancel.clone();
                            sessions.spawn(async move {
                                let _permit = permit;
                                if let Err(err) = session(stream, peer, &shared, &cancel).await {
                                    tracing::debug!(%peer, error = %err, "SMTP session ended with an error");
                                }
                            });
                        }
                        Err(_) => {
                            tracing::warn!(%peer, "SMTP receiver: too many connections; refusing one");
                            let reply = format!(
                                "421 4.7.0 {} Too many connections, try again later\r\n",
                                shared.config.hostname
                            );
                            // A fresh socket's send buffer is empty: this does
                            // not block, and a client that does not read is
                            // not waited for.
                            let _ = stream.try_write(reply.as_bytes());
                        }
                    }
                }
                Err(err) => {
                    // Out of file descriptors and the like: do not spin.
                    tracing::warn!(error = %err, "SMTP receiver could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    while let Some(finished) = sessions.join_next().await {
        if let Err(err) = finished
            && err.is_panic()
        {
            tracing::error!(error = %err, "an SMTP session panicked; its connection was dropped");
        }
    }
}

/// What came of waiting for input.
enum Input {
    /// A line (or the first [`MAX_COMMAND_LINE`] octets of one) is in the
    /// buffer.
    Line,
    /// The client closed the connection.
    Closed,
    /// Nothing came within the idle timeout.
    TimedOut,
}

/// Reads up to and including the next `\n`, at most `limit` octets.
async fn read_line<R>(
    reader: &mut R,
    line: &mut Vec<u8>,
    limit: usize,
    idle: Duration,
) -> io::Result<Input>
where
    R: AsyncBufRead + Unpin,
{
    line.clear();
    let limit = u64::try_from(limit).unwrap_or(u64::MAX);
    match tokio::time::timeout(idle, reader.take(limit).read_until(b'\n', line)).await {
        Err(_elapsed) => Ok(Input::TimedOut),
        Ok(Ok(0)) => Ok(Input::Closed),
        Ok(Ok(_)) => Ok(Input::Line),
        Ok(Err(err)) => Err(err),
    }
}

/// Whether the session goes on after a command.
enum Next {
    Continue,
    Close,
}

/// The envelope of the transaction in progress.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    /// The `SIZE=` the client declared, if any.
    declared_size: Option<usize>,
    to: Vec<String>,
}

struct Session<'a> {
    shared: &'a Shared,
    config: &'a ReceiverConfig,
    peer: SocketAddr,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    /// Replies not written yet (pipelining: written when the client's input
    /// runs dry).
    out: Vec<u8>,
    line: Vec<u8>,
    /// `EHLO` was used: enhanced status codes are sent.
    extended: bool,
    greeted: bool,
    transaction: Transaction,
    errors: u32,
    junk: u32,
}

async fn session(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    cancel: &CancellationToken,
) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let (read, writer) = stream.into_split();
    let mut session = Session {
        shared,
        config: &shared.config,
        peer,
        reader: BufReader::with_capacity(16 * 1024, read),
        writer,
        out: Vec::with_capacity(512),
        line: Vec::with_capacity(512),
        extended: false,
        greeted: false,
        transaction: Transaction::default(),
        errors: 0,
        junk: 0,
    };
    session.run(cancel).await?;
    session.close().await;
    Ok(())
}

impl Session<'_> {
    async fn run(&mut self, cancel: &CancellationToken) -> io::Result<()> {
        let greeting = format!("220 {} ESMTP Ventanilla\r\n", self.config.hostname);
        self.out.extend_from_slice(greeting.as_bytes());
        loop {
            if self.reader.buffer().is_empty() {
                self.flush().await?;
            }
            let input = tokio::select! {
                biased;
                () = cancel.cancelled() => None,
                input = read_line(
                    &mut self.reader,
                    &mut self.line,
                    MAX_COMMAND_LINE,
                    self.config.idle_timeout,
                ) => Some(input),
            };
            let Some(input) = input else {
                self.reply(421, "4.3.2", "Service shutting down, try again later");
                return self.flush().await;
            };
            match input? {
                Input::Closed => return Ok(()),
                Input::TimedOut => return self.timed_out().await,
                Input::Line => {}
            }
            if self.line.last() != Some(&b'\n') {
                if self.line.len() < MAX_COMMAND_LINE {
                    return Ok(()); // cut short by the client closing
                }
                self.reply(500, "5.5.2", "Line too long");
                return self.flush().await;
            }
            let next = self.command().await?;
            if matches!(next, Next::Close) {
                return self.flush().await;
            }
            if self.errors >= MAX_ERRORS {
                self.reply(421, "4.7.0", "Too many errors, closing the connection");
                return self.flush().await;
            }
            if self.junk >= MAX_JUNK_COMMANDS {
                self.reply(421, "4.7.0", "Too many commands without mail, closing");
                return self.flush().await;
            }
        }
    }

    /// Ends the session politely: our side of the connection is shut
    /// (FIN) and what the client still sends is read and dropped for a
    /// moment, so a last reply is not lost to a reset (closing a socket
    /// with unread input resets it).
    async fn close(&mut self) {
        let _ = self.writer.shutdown().await;
        let linger = async {
            let mut sink = [0_u8; 4096];
            let mut drained = 0_usize;
            while drained < MAX_LINGER_BYTES {
                match self.reader.read(&mut sink).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => drained += n,
                }
            }
        };
        let _ = tokio::time::timeout(self.config.idle_timeout.min(MAX_LINGER), linger).await;
    }

    /// Queues one reply line.
    fn reply(&mut self, code: u16, enhanced: &str, text: &str) {
        use std::fmt::Write as _;
        let mut line = String::with_capacity(text.len() + 16);
        let _ = write!(line, "{code} ");
        if self.extended && !enhanced.is_empty() {
            line.push_str(enhanced);
            line.push(' ');
        }
        line.push_str(text);
        line.push_str("\r\n");
        self.out.extend_from_slice(line.as_bytes());
    }

    fn refuse(&mut self, refusal: &Refusal) {
        let (code, enhanced, text) = refusal.normalized();
        self.reply(code, &enhanced, &text);
    }

    /// A client mistake: the reply, and one more error.
    fn error(&mut self, code: u16, enhanced: &str, text: &str) {
        self.errors += 1;
        self.reply(code, enhanced, text);
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let written =
            tokio::time::timeout(self.config.idle_timeout, self.writer.write_all(&self.out)).await;
        self.out.clear();
        match written {
            Ok(result) => result,
            Err(_elapsed) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client did not take our reply in time",
            )),
        }
    }

    async fn timed_out(&mut self) -> io::Result<()> {
        tracing::debug!(peer = %self.peer, "SMTP session idle for too long; closing");
        self.out.clear();
        let text = format!("{} Error: timeout exceeded", self.config.hostname);
        self.reply(421, "4.4.2", &text);
        self.flush().await
    }

    async fn command(&mut self) -> io::Result<Next> {
        let Ok(command) = std::str::from_utf8(trim_eol(&self.line)) else {
            self.error(500, "5.5.2", "Command is not valid UTF-8");
            return Ok(Next::Continue);
        };
        let (verb, argument) = match command.split_once(' ') {
            Some((verb, argument)) => (verb, argument.trim()),
            None => (command.trim(), ""),
        };
        let verb = verb.to_ascii_uppercase();
        let argument = argument.to_owned();
        match verb.as_str() {
            "EHLO" | "HELO" => self.hello(&verb, &argument),
            "MAIL" => self.mail(&argument),
            "RCPT" => self.rcpt(&argument).await,
            "DATA" => return self.data(&argument).await,
            "RSET" => {
                self.junk += 1;
                self.transaction = Transaction::default();
                self.reply(250, "2.0.0", "Ok");
            }
            "NOOP" => {
                self.junk += 1;
                self.reply(250, "2.0.0", "Ok");
            }
            "QUIT" => {
                self.reply(221, "2.0.0", "Bye");
                return Ok(Next::Close);
            }
            "VRFY" => {
                self.junk += 1;
                self.reply(
                    252,
                    "2.5.0",
                    "Cannot VRFY user, but will accept message and attempt delivery",
                );
            }
            "EXPN" | "HELP" | "TURN" | "ETRN" | "BDAT" | "AUTH" | "STARTTLS" | "ATRN" => {
                self.junk += 1;
                self.error(502, "5.5.1", "Command not implemented");
            }
            // Someone speaking HTTP (a proxy abuse attempt): nothing to say.
            "GET" | "POST" | "HEAD" | "PUT" | "CONNECT" | "OPTIONS" => {
                tracing::debug!(peer = %self.peer, "HTTP request on the SMTP port; closing");
                self.out.clear();
                return Ok(Next::Close);
            }
            _ => {
                self.junk += 1;
                self.error(500, "5.5.2", "Command unrecognized");
            }
        }
        Ok(Next::Continue)
    }

    fn hello(&mut self, verb: &str, argument: &str) {
        self.junk += 1;
        if argument.is_empty() || argument.chars().any(char::is_control) {
            let syntax = format!("Syntax: {verb} hostname");
            self.error(501, "5.5.4", &syntax);
            return;
        }
        self.greeted = true;
        self.transaction = Transaction::default();
        let hostname = &self.config.hostname;
        if verb == "EHLO" {
            self.extended = true;
            let reply = format!(
                "250-{hostname}\r\n250-SIZE {}\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n\
                 250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n",
                self.config.max_message_bytes
            );
            self.out.extend_from_slice(reply.as_bytes());
        } else {
            self.extended = false;
            let reply = format!("250 {hostname}\r\n");
            self.out.extend_from_slice(reply.as_bytes());
        }
    }

    fn mail(&mut self, argument: &str) {
        if !self.greeted {
            self.error(503, "5.5.1", "Error: send HELO/EHLO first");
            return;
        }
        if self.transaction.from.is_some() {
            self.error(503, "5.5.1", "Error: nested MAIL command");
            return;
        }
        let Some((path, parameters)) = path_after(argument, "FROM:") else {
            self.error(501, "5.5.4", "Syntax: MAIL FROM:<address>");
            return;
        };
        if !valid_path(path) {
            self.error(501, "5.1.7", "Bad sender address syntax");
            return;
        }
        let mut declared_size = None;
        for parameter in parameters.split_ascii_whitespace() {
            let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
            if key.eq_ignore_ascii_case("SIZE") {
                let Ok(size) = value.parse::<u64>() else {
                    self.error(501, "5.5.4", "Syntax: SIZE=<number of octets>");
                    return;
                };
                let fits =
                    usize::try_from(size).is_ok_and(|size| size <= self.config.max_message_bytes);
                if !fits {
                    let text = format!(
                        "Message size exceeds fixed maximum message size of {} octets",
                        self.config.max_message_bytes
                    );
                    self.reply(552, "5.3.4", &text);
                    return;
                }
                declared_size = usize::try_from(size).ok();
            } else if key.eq_ignore_ascii_case("BODY") {
                if !(value.eq_ignore_ascii_case("7BIT") || value.eq_ignore_ascii_case("8BITMIME")) {
                    self.error(555, "5.5.4", "Unsupported BODY type (7BIT or 8BITMIME)");
                    return;
                }
            } else if key.eq_ignore_ascii_case("SMTPUTF8") && value.is_empty() {
                // Advertised; UTF-8 addresses and headers are taken as they are.
            } else {
                let text = format!("Unsupported MAIL parameter {key}");
                self.error(555, "5.5.4", &text);
                return;
            }
        }
        self.transaction = Transaction {
            from: Some(path.to_owned()),
            declared_size,
            to: Vec::new(),
        };
        self.reply(250, "2.1.0", "Ok");
    }

    async fn rcpt(&mut self, argument: &str) {
        if self.transaction.from.is_none() {
            self.error(503, "5.5.1", "Error: need MAIL command");
            return;
        }
        let Some((path, parameters)) = path_after(argument, "TO:") else {
            self.error(501, "5.5.4", "Syntax: RCPT TO:<address>");
            return;
        };
        if path.is_empty() || !valid_path(path) {
            self.error(501, "5.1.3", "Bad recipient address syntax");
            return;
        }
        if !parameters.trim().is_empty() {
            self.error(555, "5.5.4", "RCPT parameters are not supported");
            return;
        }
        if self
            .transaction
            .to
            .iter()
            .any(|known| known.eq_ignore_ascii_case(path))
        {
            self.reply(250, "2.1.5", "Ok");
            return;
        }
        if self.transaction.to.len() >= self.config.max_recipients {
            self.reply(452, "4.5.3", "Too many recipients");
            return;
        }
        match self.shared.handler.recipient(path).await {
            Ok(()) => {
                self.transaction.to.push(path.to_owned());
                self.reply(250, "2.1.5", "Ok");
            }
            Err(refusal) => {
                tracing::debug!(peer = %self.peer, rcpt = %path, reply = %refusal, "recipient refused");
                self.errors += 1;
                self.refuse(&refusal);
            }
        }
    }

    async fn data(&mut self, argument: &str) -> io::Result<Next> {
        if self.transaction.from.is_none() {
            self.error(503, "5.5.1", "Error: need MAIL command");
            return Ok(Next::Continue);
        }
        if self.transaction.to.is_empty() {
            self.error(554, "5.5.1", "Error: no valid recipients");
            return Ok(Next::Continue);
        }
        if !argument.is_empty() {
            self.error(501, "5.5.4", "Syntax: DATA");
            return Ok(Next::Continue);
        }
        self.reply(354, "", "End data with <CR><LF>.<CR><LF>");
        self.flush().await?;
        // Clients often write the message and the final `.` line
        // separately; with Nagle on their side the `.` waits for our ACK,
        // which Linux would delay by up to 40 ms.
        #[cfg(target_os = "linux")]
        let _ = AsRef::<TcpStream>::as_ref(&self.writer).set_quickack(true);

        let max = self.config.max_message_bytes;
        let capacity = self
            .transaction
            .declared_size
            .unwrap_or(8 * 1024)
            .min(max)
            // A declared size is a hint, not a promise: do not reserve
            // megabytes for a client that may send nothing.
            .min(64 * 1024);
        let mut data = Vec::with_capacity(capacity);
        let check = match read_data(
            &mut self.reader,
            &mut self.line,
            &mut data,
            max,
            self.config.idle_timeout,
        )
        .await?
        {
            DataEnd::Complete(check) => check,
            DataEnd::Closed => return Ok(Next::Close),
            DataEnd::TimedOut => {
                self.timed_out().await?;
                return Ok(Next::Close);
            }
        };
        let transaction = std::mem::take(&mut self.transaction);
        if check.too_big {
            let text = format!("Message size exceeds fixed maximum message size of {max} octets");
            self.reply(552, "5.3.4", &text);
            return Ok(Next::Continue);
        }
        if check.long_line {
            let text = format!("Message has a line longer than {MAX_DATA_LINE} octets");
            self.reply(500, "5.6.0", &text);
            return Ok(Next::Continue);
        }
        if check.hops > MAX_HOPS {
            tracing::warn!(peer = %self.peer, hops = check.hops, "refused a message that went through too many hops");
            self.reply(554, "5.4.6", "Too many hops, the message may be looping");
            return Ok(Next::Continue);
        }
        let envelope = Envelope {
            from: transaction.from.unwrap_or_default(),
            to: transaction.to,
            data,
            peer: self.peer,
        };
        match self.shared.handler.deliver(envelope).await {
            Ok(()) => {
                self.junk = 0;
                self.reply(250, "2.0.0", "Ok: queued");
            }
            Err(refusal) => {
                tracing::debug!(peer = %self.peer, reply = %refusal, "message refused by the handler");
                self.refuse(&refusal);
            }
        }
        Ok(Next::Continue)
    }
}

/// What was wrong with a message, found while reading it.
#[derive(Debug, Default, PartialEq, Eq)]
struct DataCheck {
    /// Over `max_message_bytes` (the rest was read and discarded).
    too_big: bool,
    /// A line over [`MAX_DATA_LINE`].
    long_line: bool,
    /// `Received:` headers counted.
    hops: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum DataEnd {
    Complete(DataCheck),
    Closed,
    TimedOut,
}

/// Reads the message after `354` up to the `<CR><LF>.<CR><LF>`, undoing
/// dot-stuffing, into `data`. Keeps at most `max` octets: past that, or
/// after a line over [`MAX_DATA_LINE`], the rest is read and discarded.
async fn read_data<R>(
    reader: &mut R,
    line: &mut Vec<u8>,
    data: &mut Vec<u8>,
    max: usize,
    idle: Duration,
) -> io::Result<DataEnd>
where
    R: AsyncBufRead + Unpin,
{
    let mut check = DataCheck::default();
    // At the start of a line: after a CRLF (a bare LF does not count, so
    // `<LF>.<CR><LF>` can never end the message).
    let mut line_start = true;
    let mut in_headers = true;
    let mut keep = true;
    loop {
        match read_line(reader, line, MAX_DATA_LINE, idle).await? {
            Input::Line => {}
            Input::Closed => return Ok(DataEnd::Closed),
            Input::TimedOut => return Ok(DataEnd::TimedOut),
        }
        if line_start && line.as_slice() == b".\r\n" {
            if !keep {
                data.clear();
            }
            return Ok(DataEnd::Complete(check));
        }
        let content = if line_start {
            line.strip_prefix(b".").unwrap_or(line)
        } else {
            line.as_slice()
        };
        if line_start && in_headers {
            if content == b"\r\n" || content == b"\n" {
                in_headers = false;
            } else if content
                .get(..9)
                .is_some_and(|name| name.eq_ignore_ascii_case(b"received:"))
            {
                check.hops += 1;
            }
        }
        let complete = line.last() == Some(&b'\n');
        if !complete && line.len() >= MAX_DATA_LINE {
            check.long_line = true;
            keep = false;
        }
        if keep && data.len() + content.len() > max {
            check.too_big = true;
            keep = false;
        }
        if keep {
            data.extend_from_slice(content);
        } else if !data.is_empty() {
            // Give the memory back now rather than after the whole message.
            *data = Vec::new();
        }
        line_start = line.ends_with(b"\r\n");
    }
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// The path and the parameters in `PREFIX<path> parameters` (prefix
/// case-insensitive, optional spaces after the colon, brackets optional);
/// a source route (`<@a,@b:user@c>`) is dropped. `None` when the argument
/// does not start with `prefix` or a bracket is not closed.
fn path_after<'a>(argument: &'a str, prefix: &str) -> Option<(&'a str, &'a str)> {
    let head = argument.get(..prefix.len())?;
    if !head.eq_ignore_ascii_case(prefix) {
        return None;
    }
    let rest = argument.get(prefix.len()..)?.trim_start();
    let (path, parameters) = if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        (inner.get(..end)?, inner.get(end + 1..)?)
    } else {
        rest.split_once(' ').unwrap_or((rest, ""))
    };
    let path = match path.strip_prefix('@') {
        Some(_) => path.split_once(':').map_or(path, |(_, mailbox)| mailbox),
        None => path,
    };
    Some((path, parameters.trim()))
}

/// No spaces, control characters or angle brackets, at most [`MAX_PATH`]
/// octets.
fn valid_path(path: &str) -> bool {
    path.len() <= MAX_PATH
        && !path
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '<' || c == '>')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn paths_are_parsed() {
        assert_eq!(
            path_after("FROM:<a@b.c> BODY=8BITMIME SIZE=10", "FROM:"),
            Some(("a@b.c", "BODY=8BITMIME SIZE=10"))
        );
        assert_eq!(path_after("from: <>", "FROM:"), Some(("", "")));
        assert_eq!(path_after("TO:x@y.z", "TO:"), Some(("x@y.z", "")));
        assert_eq!(
            path_after("TO:<@relay.example,@b.example:x@y.z>", "TO:"),
            Some(("x@y.z", ""))
        );
        assert_eq!(path_after("TO:<x@y.z", "TO:"), None);
        assert_eq!(path_after("", "TO:"), None);
        assert!(valid_path("cidadá@concello.gal"));
        assert!(!valid_path("a b@c"));
        assert!(!valid_path(&"a".repeat(MAX_PATH + 1)));
    }

    #[test]
    fn refusals_are_made_safe() {
        assert_eq!(
            Refusal::no_such_user().to_string(),
            "550 5.1.1 Recipient address rejected: User unknown"
        );
        assert_eq!(
            Refusal::new(250, "2.0.0", "sure\r\nRCPT TO:<x>").to_string(),
            "451 4.0.0 sure  RCPT TO:<x>"
        );
        assert_eq!(
            Refusal::new(550, "4.1.1", "").to_string(),
            "550 5.0.0 Refused"
        );
        assert_eq!(
            Refusal::from_reply(421, "4.3.2 Service shutting down"),
            Refusal::new(421, "4.3.2", "Service shutting down")
        );
        assert_eq!(
            Refusal::from_reply(554, "Relay access denied"),
            Refusal::new(554, "", "Relay access denied")
        );
        assert!(Refusal::rejected("no").is_permanent());
        assert!(!Refusal::temporary("later").is_permanent());
        assert!(is_enhanced_code("5.7.1"));
        assert!(!is_enhanced_code("5.7"));
        assert!(!is_enhanced_code("3.1.1"));
    }

    async fn data_of(input: &[u8], max: usize) -> (DataEnd, Vec<u8>) {
        let mut reader = BufReader::new(input);
        let mut line = Vec::new();
        let mut data = Vec::new();
        let end = read_data(
            &mut reader,
            &mut line,
            &mut data,
            max,
            Duration::from_secs(1),
        )
        .await
        .unwrap();
        (end, data)
    }

    #[tokio::test]
    async fn data_is_unstuffed_and_ends_only_at_crlf_dot_crlf() {
        let (end, data) = data_of(
            b"Subject: t\r\n\r\n..one\r\n.two\r\nx\n.\r\ny\r\n.\r\n",
            1000,
        )
        .await;
        assert_eq!(end, DataEnd::Complete(DataCheck::default()));
        // `x<LF>.<CR><LF>` is not the end: a bare LF is not a line end.
        assert_eq!(data, b"Subject: t\r\n\r\n.one\r\ntwo\r\nx\n.\r\ny\r\n");
        let (end, _) = data_of(b"Subject: t\r\n\r\nbody\n.\n", 1000).await;
        assert_eq!(end, DataEnd::Closed);
    }

    #[tokio::test]
    async fn data_limits_are_checked() {
        let (end, data) = data_of(b"Subject: t\r\n\r\n0123456789\r\n.\r\n", 20).await;
        assert!(matches!(
            end,
            DataEnd::Complete(DataCheck { too_big: true, .. })
        ));
        assert!(data.is_empty());
        let mut long = b"Subject: t\r\n\r\n".to_vec();
        long.extend(std::iter::repeat_n(b'a', MAX_DATA_LINE + 10));
        long.extend_from_slice(b"\r\n.\r\n");
        let (end, _) = data_of(&long, 10 * MAX_DATA_LINE).await;
        assert!(matches!(
            end,
            DataEnd::Complete(DataCheck {
                long_line: true,
                ..
            })
        ));
        let mut looping = Vec::new();
        for n in 0..3 {
            looping.extend_from_slice(format!("Received: from hop{n}\r\n").as_bytes());
        }
        looping.extend_from_slice(b"\r\nReceived: in the body\r\n.\r\n");
        let (end, _) = data_of(&looping, 1000).await;
        assert_eq!(
            end,
            DataEnd::Complete(DataCheck {
                hops: 3,
                ..DataCheck::default()
            })
        );
    }
}
