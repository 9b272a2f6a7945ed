//! The SMTP receiver over real TCP on 127.0.0.1: this crate's own
//! [`Mailer`] (lettre) as the client for what mail servers do, and raw
//! sockets for the edge cases a well-behaved client never produces.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
    sync::Semaphore,
};
use ventanilla_mail::{
    Address, MailError, Mailer, MailerConfig, OutgoingMail,
    receiver::{Envelope, MailHandler, ReceiverConfig, Refusal, SmtpReceiver},
};

const WAIT: Duration = Duration::from_secs(5);
const OURS: &str = "contacto@lugo.example.org";

/// The platform's stand-in: accepts mail for [`OURS`] only, keeps what it
/// is given, and can be told to refuse or to hold deliveries.
struct Inbox {
    mails: Mutex<Vec<Envelope>>,
    refuse_delivery: Mutex<Option<Refusal>>,
    /// Deliveries wait for a permit (many unless a test holds them).
    gate: Semaphore,
}

impl Inbox {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            mails: Mutex::new(Vec::new()),
            refuse_delivery: Mutex::new(None),
            gate: Semaphore::new(1_000_000),
        })
    }

    fn holding() -> Arc<Self> {
        Arc::new(Self {
            mails: Mutex::new(Vec::new()),
            refuse_delivery: Mutex::new(None),
            gate: Semaphore::new(0),
        })
    }

    fn mails(&self) -> Vec<Envelope> {
        self.mails.lock().unwrap().clone()
    }
}

#[async_trait]
impl MailHandler for Inbox {
    async fn recipient(&self, rcpt: &str) -> Result<(), Refusal> {
        if rcpt.eq_ignore_ascii_case(OURS) || rcpt.ends_with("@concello.example.org") {
            Ok(())
        } else {
            Err(Refusal::no_such_user())
        }
    }

    async fn deliver(&self, mail: Envelope) -> Result<(), Refusal> {
        let _permit = self.gate.acquire().await.unwrap();
        if let Some(refusal) = self.refuse_delivery.lock().unwrap().clone() {
            return Err(refusal);
        }
        self.mails.lock().unwrap().push(mail);
        Ok(())
    }
}

fn config() -> ReceiverConfig {
    ReceiverConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        hostname: "mx.test.example".to_owned(),
        max_message_bytes: 64 * 1024,
        max_recipients: 5,
        max_connections: 8,
        idle_timeout: Duration::from_secs(10),
    }
}

async fn start(config: ReceiverConfig, inbox: &Arc<Inbox>) -> SmtpReceiver {
    let handler: Arc<dyn MailHandler> = Arc::clone(inbox) as Arc<dyn MailHandler>;
    SmtpReceiver::start(config, handler).await.unwrap()
}

fn mailer(receiver: &SmtpReceiver) -> Mailer {
    Mailer::new(&MailerConfig {
        url: format!("smtp://{}", receiver.addr()),
        pool_size: 1,
        timeout: WAIT,
    })
    .unwrap()
}

fn mail(n: usize, to: &str) -> OutgoingMail {
    OutgoingMail::new(
        format!("m{n}.c1t1zen@example.net"),
        Address::named("Xiana Pérez", "xiana@example.net"),
        Address::new(to),
        format!("Farola fundida {n}"),
        format!("A farola da rúa do Castelo número {n} non acende.\n"),
    )
}

/// A raw SMTP client.
struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let (read, writer) = TcpStream::connect(addr).await.unwrap().into_split();
        Self {
            reader: BufReader::new(read),
            writer,
        }
    }

    async fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).await.unwrap();
    }

    /// One whole reply (continuation lines included), or "" at EOF.
    async fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let read = tokio::time::timeout(WAIT, self.reader.read_line(&mut line))
                .await
                .expect("a reply in time")
                .unwrap();
            reply.push_str(&line);
            if read == 0 || line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    async fn expect(&mut self, code: &str) -> String {
        let reply = self.reply().await;
        assert!(reply.starts_with(code), "expected {code}, got {reply:?}");
        reply
    }

    /// Reads until the server closes the connection.
    async fn expect_closed(&mut self) {
        let mut rest = Vec::new();
        let read = tokio::time::timeout(WAIT, self.reader.read_to_end(&mut rest))
            .await
            .expect("the server closes the connection");
        // A reset counts as closed too.
        if let Ok(n) = read {
            assert_eq!(
                n,
                0,
                "unexpected data: {:?}",
                String::from_utf8_lossy(&rest)
            );
        }
    }

    async fn hello(addr: SocketAddr) -> Self {
        let mut client = Self::connect(addr).await;
        client.expect("220 mx.test.example").await;
        client.send("EHLO client.example.net\r\n").await;
        client.expect("250").await;
        client
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mail_is_delivered_with_its_envelope() {
    let inbox = Inbox::new();
    let receiver = start(config(), &inbox).await;
    let mailer = mailer(&receiver);
    let mut outgoing = mail(1, OURS);
    outgoing.envelope_from = Some("bounces+x1@example.net".into());
    mailer.send(&outgoing).await.unwrap();

    let mails = inbox.mails();
    assert_eq!(mails.len(), 1, "stored before the client heard 250");
    assert_eq!(mails[0].from, "bounces+x1@example.net");
    assert_eq!(mails[0].to, vec![OURS.to_owned()]);
    assert_eq!(mails[0].peer.ip(), Ipv4Addr::LOCALHOST);
    let parsed = mail_parser::MessageParser::default()
        .parse(&mails[0].data)
        .unwrap();
    assert_eq!(parsed.subject(), Some("Farola fundida 1"));
    assert_eq!(parsed.message_id(), Some("m1.c1t1zen@example.net"));
    assert!(
        parsed
            .body_text(0)
            .unwrap()
            .contains("rúa do Castelo número 1")
    );
    mailer.close().await;
    receiver.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_recipient_is_refused_for_good() {
    let inbox = Inbox::new();
    let receiver = start(config(), &inbox).await;
    let mailer = mailer(&receiver);
    let err = mailer
        .send(&mail(1, "nadie@otro.example.org"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MailError::Permanent { code: Some(550), message } if message.contains("5.1.1")),
        "{err:?}"
    );
    assert!(inbox.mails().is_empty());
    // The same connection goes on.
    mailer.send(&mail(2, OURS)).await.unwrap();
    assert_eq!(inbox.mails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_declared_size_over_the_limit_is_refused_up_front() {
    let inbox = Inbox::new();
    let receiver = start(config(), &inbox).await;
    let mut client = Client::connect(receiver.addr()).await;
    client.expect("220").await;
    client.send("EHLO client.example.net\r\n").await;
    let ehlo = client.expect("250-mx.test.example").await;
    for extension in [
        "250-SIZE 65536\r\n",
        "250-8BITMIME\r\n",
        "250-SMTPUTF8\r\n",
        "250-PIPELINING\r\n",
        "250 ENHANCEDSTATUSCODES\r\n",
    ] {
        assert!(ehlo.contains(extension), "{ehlo}");
    }
    client
        .send("MAIL FROM:<xiana@example.net> SIZE=65537 BODY=8BITMIME\r\n")
        .await;
    client.expect("552 5.3.4 ").await;
    client
        .send("MAIL FROM:<xiana@example.net> SIZE=abc\r\n")
        .await;
    client.expect("501 5.5.4").await;
    client
        .send("MAIL FROM:<xiana@example.net> SIZE=65536 BODY=8BITMIME SMTPUTF8\r\n")
        .await;
    client.expect("250 2.1.0").await;
    client.send("QUIT\r\n").await;
    client.expect("221").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_is_read_then_refused() {
    let inbox = Inbox::new();
    let receiver = start(config(), &inbox).await;
    let mailer = mailer(&receiver);
    let mut big = mail(1, OURS);
    big.text = "Unha liña longa de texto para encher a mensaxe.\n".repeat(2000);
    let err = mailer.send(&big).await.unwrap_err();
    assert!(
        matches!(&err, MailError::Permanent { code: Some(552), message } if message.contains("5.3.4")),
        "{err:?}"
    );
    assert!(inbox.mails().is_empty());
    mailer.send(&mail(2, OURS)).await.unwrap();
    assert_eq!(inbox.mails().len(), 1);

    // By hand: the rest is read, so the session is still in step.
    let mut client = Client::hello(receiver.addr()).await;
    client
        .send(&format!(
            "MAIL FROM:<a@example.net>\r\nRCPT TO:<{OURS}>\r\nDATA\r\n"
        ))
        .await;
    client.expect("250").await;
    client.expect("250").await;
    client.expect("354").await;
    let line = format!("{}\r\n", "x".repeat(998));
    client
        .send(&format!("Subject: big\r\n\r\n{}.\r\n", line.repeat(70)))
        .await;
    client.expect("552 5.3.4").await;
    client
        .send(&format!(
            "MAIL FROM:<a@example.net>\r\nRCPT TO:<{OURS}>\r\nDATA\r\n"
        ))
        .await;
    client.expect("250").await;
    client.expect("250").await;
    client.expect("354").await;
    client.send("Subject: small\r\n\r\nok\r\n.\r\n").await;
    client.expect("250 2.0.0").await;
    assert_eq!(inbox.mails().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_failure_is_temporary_for_the_sender() {
    let inbox = Inbox::new();
    *inbox.refuse_delivery.lock().unwrap() = Some(Refusal::temporary("Storage unavailable"));
    let receiver = start(config(), &inbox).await;
    let mailer = mailer(&receiver);
    let err = mailer.send(&mail(1, OURS)).await.unwrap_err();
    assert!(
        matches!(&err, MailError::Temporary { code: Some(451), message } if message.contains("Storage unavailable")),
        "{err:?}"
    );
    assert!(!err.is_permanent());
    // The sender retries once the platform is back.
    *inbox.refuse_delivery.lock().unwrap() = None;
    mailer.send(&mail(1, OURS)).await.unwrap();
    assert_eq!(inbox.mails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_is_acknowledged_only_after_the_handler_stored_it() {
    let inbox = Inbox::holding();
    let receiver = start(config(), &inbox).await;
    let mut client = Client::hello(receiver.addr()).await;
    client.send("MAIL FROM:<xiana@example.net>\r\n").await;
    client.expect("250").await;
    client.send(&format!("RCPT TO:<{OURS}>\r\n")).await;
    client.expect("250").await;
    client.send("DATA\r\n").await;
    client.expect("354").await;
    client.send("Subject: ola\r\n\r\nfarola\r\n.\r\n").await;
    let early = tokio::time::timeout(Duration::from_millis(300), client.reply()).await;
    assert!(early.is_err(), "answered before storing: {early:?}");
    inbox.gate.add_permits(1);
    client.expect("250 2.0.0").await;
    assert_eq!(inbox.mails().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_limit_are_turned_away() {
    let inbox = Inbox::new();
    let receiver = start(
        ReceiverConfig {
            max_connections: 2,
            ..config()
        },
        &inbox,
    )
    .await;
    let mut first = Client::connect(receiver.addr()).await;
    first.expect("220").await;
    let mut second = Client::connect(receiver.addr()).await;
    second.expect("220").await;
    assert_eq!(receiver.active_connections(), 2);
    let mut third = Client::connect(receiver.addr()).await;
    third.expect("421 4.7.0").await;
    third.expect_closed().await;

    first.send("QUIT\r\n").await;
    first.expect("221").await;
    first.expect_closed().await;
    drop(first);
    // The slot is free again once the session has ended.
    let deadline = tokio::time::Instant::now() + WAIT;
    while receiver.active_connections() > 1 {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut fourth = Client::connect(receiver.addr()).await;
    fourth.expect("220").await;
    second.send("NOOP\r\n").await;
    second.expect("250").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_client_is_disconnected() {
    let inbox = Inbox::new();
    let receiver = start(
        ReceiverConfig {
            idle_timeout: Duration::from_millis(300),
            ..config()
        },
        &inbox,
    )
    .await;
    let mut client = Client::hello(receiver.addr()).await;
    client.send("MAIL FROM:<xiana@example.net>\r\n").await;
    client.expect("250").await;
    let started = std::time::Instant::now();
    client.expect("421 4.4.2 mx.test.example").await;
    assert!(started.elapsed() >= Duration::from_millis(250));
    client.expect_closed().await;

    // Also in the middle of a message.
    let mut client = Client::hello(receiver.addr()).await;
    client.send("MAIL FROM:<xiana@example.net>\r\n").await;
    client.expect("250").await;
    client.send(&format!("RCPT TO:<{OURS}>\r\n")).await;
    client.expect("250").await;
    client.send("DATA\r\n").await;
    client.expect("354").await;
    client.send("Subject: a medias\r\n\r\nfar").await;
    client.expect("421 4.4.2").await;
    client.expect_closed().await;
    assert!(inbox.mails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_stuffed_lines_arrive_intact() {
    let inbox = Inbox::new();
    let receiver = start(config(), &inbox).await;
    let mailer = mailer(&receiver);
    let text = ".first line\nmiddle\n.\n..two dots\n. space\nlast.\n";
    let mut outgoing = mail(1, OURS);
    outgoing.text = text.into();
    mailer.send(&outgoing).await.unwrap();
    let raw = String::from_utf8(inbox.mails()[0].data.clone()).unwrap();
    assert!(
        raw.contains("\r\n\r\n.first line\r\nmiddle\r\n.\r\n..two dots\r\n. space\r\n"),
        "{raw}"
    );

    // By hand, and a bare LF never ends the message (no SMTP smuggling).
    let mut client = Client::hello(receiver.addr()).await;
    client
        .send(&format!("MAIL FROM:<>\r\nRCPT TO:<{OURS}>\r\nDATA\r\n"))
        .await;
    client.expect("250").await;
    client.expect("250").await;
    client.expect("354").await;
    client
        .send("Subject: s\r\n\r\n..a\r\nb\n.\nMAIL FROM:<evil@example.com>\n.\r\n")
        .await;
    let early = tokio::time::timeout(Duration::from_millis(200), client.reply()).await;
    assert!(early.is_err(), "a bare LF ended the message: {early:?}");
    client.send("\r\n.\r\n").await;
    client.expect("250").await;
    let mails = inbox.mails();
    assert_eq!(mails[1].from, "");
    assert_eq!(
        mails[1].data,
        b"Subject: s\r\n\r\n.a\r\nb\n.\nMAIL FROM:<evil@example.com>\n.\r\n\r\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_messages_on_one_connection() {
    let inbox = Inbox::new();
    let receiver = start(config(), &inbox).await;
    let mailer = Arc::new(mailer(&receiver));
    // From a runtime worker, so lettre parks the connection for reuse
    // before the next send (see the mailer's own tests).
    let sender = Arc::clone(&mailer);
    tokio::spawn(async move {
        for n in 0..20 {
            sender.send(&mail(n, OURS)).await.unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(inbox.mails().len(), 20);
    assert_eq!(receiver.connections_accepted(), 1);

    // Pipelined (RFC 2920): several transactions in one write, replies in
    // order.
    let mut client = Client::hello(receiver.addr()).await;
    let mut batch = String::new();
    for n in 0..3 {
        batch.push_str(&format!(
            "MAIL FROM:<v{n}@example.net>\r\nRCPT TO:<nadie@fuera.example>\r\n\
             RCPT TO:<alcaldia@concello.example.org>\r\nDATA\r\n"
        ));
        client.send(&batch).await;
        batch.clear();
        if n > 0 {
            client.expect("250 2.0.0").await; // the previous message
        }
        client.expect("250 2.1.0").await;
        client.expect("550 5.1.1").await;
        client.expect("250 2.1.5").await;
        client.expect("354").await;
        batch.push_str(&format!("Subject: {n}\r\n\r\nmensaxe {n}\r\n.\r\n"));
    }
    batch.push_str("QUIT\r\n");
    client.send(&batch).await;
    client.expect("250 2.0.0").await;
    client.expect("221").await;
    let mails = inbox.mails();
    assert_eq!(mails.len(), 23);
    assert_eq!(mails[22].from, "v2@example.net");
    assert_eq!(
        mails[22].to,
        vec!["alcaldia@concello.example.org".to_owned()]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_out_of_order_and_unknown_ones() {
    let inbox = Inbox::new();
    let receiver = start(config(), &inbox).await;
    let mut client = Client::connect(receiver.addr()).await;
    client.expect("220").await;
    for (command, code) in [
        ("MAIL FROM:<a@example.net>\r\n", "503"),
        ("HELO\r\n", "501"),
        ("HELO client.example.net\r\n", "250 mx.test.example"),
        // After HELO, no enhanced codes.
        ("RCPT TO:<contacto@lugo.example.org>\r\n", "503 Error"),
        ("EHLO client.example.net\r\n", "250"),
        ("DATA\r\n", "503 5.5.1"),
        ("MAIL FROM:<a@example.net> AUTH=<>\r\n", "555 5.5.4"),
        ("MAIL FROM:<a@example.net> BODY=BINARYMIME\r\n", "555 5.5.4"),
        ("MAIL FROM:<a@example.net>\r\n", "250 2.1.0"),
        ("MAIL FROM:<a@example.net>\r\n", "503 5.5.1"),
        ("RCPT TO:<>\r\n", "501 5.1.3"),
        (
            "RCPT TO:<contacto@lugo.example.org> NOTIFY=NEVER\r\n",
            "555",
        ),
        ("DATA\r\n", "554 5.5.1"),
        ("VRFY contacto\r\n", "252 2.5.0"),
        ("STARTTLS\r\n", "502 5.5.1"),
        ("AUTH PLAIN AGFAAGI=\r\n", "502 5.5.1"),
        ("FROB\r\n", "500 5.5.2"),
        ("NOOP\r\n", "250 2.0.0"),
        ("RSET\r\n", "250 2.0.0"),
        ("RCPT TO:<contacto@lugo.example.org>\r\n", "503 5.5.1"),
    ] {
        client.send(command).await;
        client.expect(code).await;
    }
    let too_long = format!("NOOP {}\r\n", "x".repeat(3000));
    client.send(&too_long).await;
    client.expect("500 5.5.2 Line too long").await;
    client.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recipients_are_capped_and_errors_end_the_session() {
    let inbox = Inbox::new();
    let receiver = start(config(), &inbox).await;
    let mut client = Client::hello(receiver.addr()).await;
    client.send("MAIL FROM:<a@example.net>\r\n").await;
    client.expect("250").await;
    for n in 0..5 {
        client
            .send(&format!("RCPT TO:<r{n}@concello.example.org>\r\n"))
            .await;
        client.expect("250").await;
    }
    client.send("RCPT TO:<r5@concello.example.org>\r\n").await;
    client.expect("452 4.5.3").await;
    // A duplicate is not counted again.
    client.send("RCPT TO:<R0@concello.example.org>\r\n").await;
    client.expect("250").await;

    let mut client = Client::hello(receiver.addr()).await;
    for _ in 0..19 {
        client.send("FROB\r\n").await;
        client.expect("500").await;
    }
    client.send("FROB\r\n").await;
    client.expect("500").await;
    client.expect("421 4.7.0").await;
    client.expect_closed().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_sessions_finish_and_closes_them() {
    let inbox = Inbox::new();
    let receiver = start(config(), &inbox).await;
    let addr = receiver.addr();
    let mut client = Client::hello(addr).await;
    let stopping = tokio::spawn(receiver.shutdown());
    client.expect("421 4.3.2").await;
    client.expect_closed().await;
    drop(client);
    tokio::time::timeout(WAIT, stopping).await.unwrap().unwrap();
    assert!(TcpStream::connect(addr).await.is_err(), "still listening");
}

#[tokio::test]
async fn bad_configurations_are_refused() {
    let inbox = Inbox::new();
    for bad in [
        ReceiverConfig {
            hostname: "mx example".into(),
            ..config()
        },
        ReceiverConfig {
            max_message_bytes: 0,
            ..config()
        },
        ReceiverConfig {
            max_connections: 0,
            ..config()
        },
        ReceiverConfig {
            idle_timeout: Duration::ZERO,
            ..config()
        },
    ] {
        let handler: Arc<dyn MailHandler> = Arc::clone(&inbox) as Arc<dyn MailHandler>;
        let err = SmtpReceiver::start(bad, handler).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
}
