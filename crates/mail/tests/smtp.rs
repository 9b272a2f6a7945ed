//! The mailer against the local SMTP sink: real SMTP over TCP on 127.0.0.1,
//! no mock of the client. Messages are parsed back with `mail-parser`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use mail_parser::MessageParser;
use ventanilla_mail::{
    Address, MailError, Mailer, MailerConfig, OutgoingMail,
    sink::{ReceivedMail, SmtpSink},
};

const WAIT: Duration = Duration::from_secs(10);

fn config(url: &str, pool_size: u32) -> MailerConfig {
    MailerConfig {
        url: url.to_owned(),
        pool_size,
        timeout: Duration::from_secs(5),
    }
}

fn mail(n: usize, to: &str) -> OutgoingMail {
    OutgoingMail::new(
        format!("m{n}.0b5e6c1a@notify.lugo.example.org"),
        Address::named("Concello de Lugo", "avisos@lugo.example.org"),
        Address::new(to),
        format!("Aviso {n}"),
        format!("Mensaxe número {n}.\n"),
    )
}

fn parse(received: &ReceivedMail) -> mail_parser::Message<'_> {
    MessageParser::default()
        .parse(&received.data)
        .expect("the sink's message parses")
}

fn header<'a>(message: &'a mail_parser::Message<'_>, name: &'static str) -> Option<&'a str> {
    message.header_raw(name).map(str::trim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_notification_arrives_intact() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Mailer::new(&config(&sink.url(), 2)).unwrap();
    let text = "Ola Xiana,\n\nXa está aberta a inscrición.\nGrazas.\n";
    let html = "<p>Ola Xiana,</p><p>Xa está aberta a <b>inscrición</b>.</p>";
    let outgoing = OutgoingMail {
        message_id: "0b5e6c1a-1f7d-4a43-9d2e-5f0f0c1e2a3b@notify.lugo.example.org".into(),
        from: Address::named("Concello de Lugo", "avisos@lugo.example.org"),
        reply_to: Some(Address::named(
            "Atención á cidadanía",
            "cidadania@lugo.example.org",
        )),
        to: Address::named("Xiana Pérez Núñez", "xiana@example.net"),
        subject: "Inscripción abierta: campamentos de verano".into(),
        text: text.into(),
        html: Some(html.into()),
        list_unsubscribe: Some("https://lugo.example.org/baixa?t=3f9a2c".into()),
        list_id: Some("campamentos.lugo.ventanilla.example".into()),
        in_reply_to: Some("q1@mail.example.net".into()),
        references: vec!["q0@mail.example.net".into(), "q1@mail.example.net".into()],
        auto_submitted: true,
        language: Some("es".into()),
        envelope_from: None,
        headers: vec![(
            "X-Ventanilla-Notification".into(),
            "campamentos-2025".into(),
        )],
    };
    mailer.send(&outgoing).await.unwrap();

    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].from, "avisos@lugo.example.org");
    assert_eq!(received[0].to, vec!["xiana@example.net".to_owned()]);
    let message = parse(&received[0]);
    assert_eq!(
        message.subject(),
        Some("Inscripción abierta: campamentos de verano")
    );
    let from = message.from().unwrap().first().unwrap();
    assert_eq!(from.name(), Some("Concello de Lugo"));
    assert_eq!(from.address(), Some("avisos@lugo.example.org"));
    let to = message.to().unwrap().first().unwrap();
    assert_eq!(to.name(), Some("Xiana Pérez Núñez"));
    assert_eq!(to.address(), Some("xiana@example.net"));
    let reply_to = message.reply_to().unwrap().first().unwrap();
    assert_eq!(reply_to.name(), Some("Atención á cidadanía"));
    assert_eq!(message.body_text(0).unwrap().replace("\r\n", "\n"), text);
    assert_eq!(message.body_html(0).unwrap().replace("\r\n", "\n"), html);
    assert_eq!(
        message.message_id(),
        Some("0b5e6c1a-1f7d-4a43-9d2e-5f0f0c1e2a3b@notify.lugo.example.org")
    );
    assert_eq!(message.in_reply_to().as_text(), Some("q1@mail.example.net"));
    let references: Vec<&str> = message
        .references()
        .as_text_list()
        .unwrap()
        .iter()
        .map(AsRef::as_ref)
        .collect();
    assert_eq!(references, ["q0@mail.example.net", "q1@mail.example.net"]);
    assert_eq!(
        header(&message, "List-Unsubscribe"),
        Some("<https://lugo.example.org/baixa?t=3f9a2c>")
    );
    assert_eq!(
        header(&message, "List-Unsubscribe-Post"),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(
        header(&message, "List-Id"),
        Some("<campamentos.lugo.ventanilla.example>")
    );
    assert_eq!(header(&message, "Auto-Submitted"), Some("auto-generated"));
    assert_eq!(header(&message, "Content-Language"), Some("es"));
    assert_eq!(
        header(&message, "X-Ventanilla-Notification"),
        Some("campamentos-2025")
    );
    assert!(message.date().is_some(), "the builder sets Date");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envelope_sender_can_differ_from_the_author() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Mailer::new(&config(&sink.url(), 1)).unwrap();
    let mut outgoing = mail(1, "xiana@example.net");
    outgoing.envelope_from = Some("bounces+m1@lugo.example.org".into());
    mailer.send(&outgoing).await.unwrap();
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received[0].from, "bounces+m1@lugo.example.org");
    let message = parse(&received[0]);
    let from = message.from().unwrap().first().unwrap();
    assert_eq!(from.address(), Some("avisos@lugo.example.org"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_stuffing_keeps_lines_that_start_with_a_dot() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Mailer::new(&config(&sink.url(), 1)).unwrap();
    let text = ".first line\nmiddle\n.\n..two dots\n. space\nlast.\n";
    let mut outgoing = mail(1, "xiana@example.net");
    outgoing.text = text.into();
    mailer.send(&outgoing).await.unwrap();
    let received = sink.wait_for(1, WAIT).await;
    let raw = String::from_utf8(received[0].data.clone()).unwrap();
    assert!(
        raw.contains("\r\n\r\n.first line\r\nmiddle\r\n.\r\n..two dots\r\n. space\r\n"),
        "{raw}"
    );
    let message = parse(&received[0]);
    // lettre ends the message with an empty line before the final dot.
    assert_eq!(
        message
            .body_text(0)
            .unwrap()
            .replace("\r\n", "\n")
            .trim_end(),
        text.trim_end()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_is_permanent_and_nothing_is_stored() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Mailer::new(&config(&sink.url(), 2)).unwrap();
    let err = mailer
        .send(&mail(1, "bounce-7@example.net"))
        .await
        .unwrap_err();
    assert!(err.is_permanent(), "{err}");
    match &err {
        MailError::Permanent { code, message } => {
            assert_eq!(*code, Some(550));
            assert!(message.starts_with("550 "), "{message}");
            assert!(message.contains("User unknown"), "{message}");
        }
        other => panic!("expected Permanent, got {other:?}"),
    }
    assert!(err.to_string().contains("550"), "{err}");
    assert_eq!(sink.count(), 0);

    // The mailer still works after a refused recipient.
    mailer.send(&mail(2, "xiana@example.net")).await.unwrap();
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deferred_recipient_is_temporary_then_accepted() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Mailer::new(&config(&sink.url(), 2)).unwrap();
    let outgoing = mail(1, "later.xiana@example.net");
    let err = mailer.send(&outgoing).await.unwrap_err();
    assert!(!err.is_permanent(), "{err}");
    assert_eq!(err.code(), Some(451));
    assert!(matches!(
        err,
        MailError::Temporary {
            code: Some(451),
            ..
        }
    ));
    assert_eq!(sink.count(), 0);

    mailer.send(&outgoing).await.unwrap();
    let received = sink.wait_for(1, WAIT).await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].to, vec!["later.xiana@example.net".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outage_replies_are_temporary_until_it_ends() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Mailer::new(&config(&sink.url(), 2)).unwrap();
    sink.set_fail_all(Some((421, "4.3.2 Service shutting down".into())));
    let err = mailer
        .send(&mail(1, "xiana@example.net"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MailError::Temporary { code: Some(421), message } if message.contains("shutting down")),
        "{err:?}"
    );
    sink.set_fail_all(Some((554, "5.7.1 Relay access denied".into())));
    let err = mailer
        .send(&mail(2, "xiana@example.net"))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            MailError::Permanent {
                code: Some(554),
                ..
            }
        ),
        "{err:?}"
    );
    sink.set_fail_all(None);
    mailer.send(&mail(3, "xiana@example.net")).await.unwrap();
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_injection_is_invalid_and_nothing_is_sent() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Mailer::new(&config(&sink.url(), 2)).unwrap();
    let mut outgoing = mail(1, "xiana@example.net");
    outgoing.headers = vec![(
        "X-Ventanilla-Notification".into(),
        "x\r\nBcc: victim@example.com".into(),
    )];
    let err = mailer.send(&outgoing).await.unwrap_err();
    assert!(matches!(err, MailError::Invalid(_)), "{err:?}");
    assert!(err.is_permanent());

    let mut outgoing = mail(2, "xiana@example.net");
    outgoing.headers = vec![("Bad Name".into(), "x".into())];
    assert!(matches!(
        mailer.send(&outgoing).await,
        Err(MailError::Invalid(_))
    ));

    let outgoing = mail(3, "not an address");
    assert!(matches!(
        mailer.send(&outgoing).await,
        Err(MailError::Invalid(_))
    ));
    assert_eq!(sink.connections(), 0, "nothing may reach the server");
    assert_eq!(sink.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_url_is_a_config_error() {
    for url in [
        "",
        "smtp//localhost",
        "gopher://localhost:25",
        "smtp://h:25?tls=perhaps",
    ] {
        match Mailer::new(&config(url, 2)) {
            Err(MailError::Config(message)) => {
                assert!(message.contains("mail url"), "{message}");
            }
            other => panic!("{url:?}: expected Config, got {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_is_temporary() {
    let sink = SmtpSink::start().await.unwrap();
    let url = sink.url();
    drop(sink);
    // Let the aborted server task drop its listener.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mailer = Mailer::new(&config(&url, 2)).unwrap();
    let err = mailer
        .send(&mail(1, "xiana@example.net"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MailError::Temporary { code: None, message } if message.contains("127.0.0.1")),
        "{err:?}"
    );
    let err = mailer.test_connection().await.unwrap_err();
    assert!(!err.is_permanent(), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out() {
    // Accepts connections and says nothing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let mailer = Mailer::new(&MailerConfig {
        url: format!("smtp://{addr}"),
        pool_size: 1,
        timeout: Duration::from_millis(300),
    })
    .unwrap();
    let started = std::time::Instant::now();
    let err = mailer
        .send(&mail(1, "xiana@example.net"))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, MailError::Temporary { code: None, .. }),
        "{err:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    silent.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_check_answers() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Mailer::new(&config(&sink.url(), 2)).unwrap();
    assert!(mailer.test_connection().await.unwrap());
    mailer.send(&mail(1, "xiana@example.net")).await.unwrap();
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
    mailer.close().await;
    assert!(matches!(
        mailer.send(&mail(2, "xiana@example.net")).await,
        Err(MailError::Temporary { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequential_sends_reuse_one_connection() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Arc::new(Mailer::new(&config(&sink.url(), 4)).unwrap());
    // lettre parks a used connection from a task it spawns; from a runtime
    // worker (where services send from) that task runs before the next send,
    // from the test's `block_on` thread it may not, hence the spawn.
    let sender = Arc::clone(&mailer);
    tokio::spawn(async move {
        for n in 0..20 {
            sender
                .send(&mail(n, &format!("citizen{n}@example.net")))
                .await
                .unwrap();
        }
    })
    .await
    .unwrap();
    assert_eq!(sink.wait_for(20, WAIT).await.len(), 20);
    assert_eq!(sink.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_a_small_pool() {
    const TASKS: usize = 16;
    const PER_TASK: usize = 200 / TASKS + 1;
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Arc::new(Mailer::new(&config(&sink.url(), 4)).unwrap());
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let mailer = Arc::clone(&mailer);
        tasks.push(tokio::spawn(async move {
            for i in 0..PER_TASK {
                let n = task * PER_TASK + i;
                mailer
                    .send(&mail(n, &format!("citizen{n}@example.net")))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = TASKS * PER_TASK;
    let received = sink.wait_for(total, WAIT).await;
    assert_eq!(received.len(), total);
    let mut recipients: Vec<&str> = received.iter().map(|m| m.to[0].as_str()).collect();
    recipients.sort_unstable();
    recipients.dedup();
    assert_eq!(recipients.len(), total, "every message arrived once");
    // At most pool_size connections at a time; a few more may open over the
    // run when one is being parked just as another send starts.
    let connections = sink.connections();
    assert!(
        (1..=6).contains(&connections),
        "{connections} connections for pool_size 4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clear_and_take_empty_the_sink() {
    let sink = SmtpSink::start().await.unwrap();
    let mailer = Mailer::new(&config(&sink.url(), 1)).unwrap();
    mailer.send(&mail(1, "a@example.net")).await.unwrap();
    mailer.send(&mail(2, "b@example.net")).await.unwrap();
    assert_eq!(sink.wait_for(2, WAIT).await.len(), 2);
    assert_eq!(sink.take().len(), 2);
    assert_eq!(sink.count(), 0);
    mailer.send(&mail(3, "c@example.net")).await.unwrap();
    assert_eq!(sink.wait_for(1, WAIT).await.len(), 1);
    sink.clear();
    assert!(sink.received().is_empty());
    // wait_for gives up after its timeout with what it has.
    assert!(sink.wait_for(1, Duration::from_millis(50)).await.is_empty());
}
