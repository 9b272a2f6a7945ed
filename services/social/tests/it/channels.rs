//! Telegram and Mastodon end to end, like the channels of the social
//! issue: a citizen writes → one ticket (whatever the redeliveries or
//! re-polls) → an agent replies → the reply goes back out on the same
//! channel, correctly shaped → the ticket shows it sent.

use secrecy::SecretString;
use ventanilla_social::accounts::LinkRequest;
use ventanilla_social::fake::telegram::{TelegramUser, deliver};
use ventanilla_social::polling::MentionPoller;
use ventanilla_tickets::inbox::{InboxFilter, InboxItem, InboxSort};
use ventanilla_tickets::service::ReplyRequest;
use ventanilla_tickets_domain::ticket::TicketId;

use crate::support::{Council, World};

const BOT_TOKEN: &str = "7000000001:AAF-fake-bot-token_abcdefghijklmnop";

async fn inbox(w: &World, c: &Council) -> Vec<InboxItem> {
    w.tickets
        .inbox(
            c.tenant,
            c.agent,
            &InboxFilter::default(),
            InboxSort::LastActivity,
            25,
            None,
        )
        .await
        .unwrap()
        .items
}

async fn reply(w: &World, c: &Council, ticket: uuid::Uuid, text: &str) {
    w.tickets
        .reply(
            c.tenant,
            c.agent,
            TicketId(ticket),
            &ReplyRequest {
                body: text.into(),
                ..ReplyRequest::default()
            },
        )
        .await
        .unwrap();
}

async fn sent_state(w: &World, c: &Council, ticket: uuid::Uuid) -> Option<String> {
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, TicketId(ticket))
        .await
        .unwrap();
    view.messages
        .iter()
        .rev()
        .find(|m| m.direction == "out")
        .and_then(|m| m.delivery_state.clone())
}

#[tokio::test]
async fn a_telegram_message_becomes_a_ticket_once_and_the_answer_goes_back_to_the_chat() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    w.telegram
        .add_bot(BOT_TOKEN, 7000000001, "concello_lugo_bot");
    // Telegram wants an https webhook: link as the platform published at
    // https://ventanilla.test, and deliver to the local server.
    let public = ventanilla_social::accounts::Accounts::new(
        std::sync::Arc::clone(&w.log),
        Some(&crate::support::key()),
        "https://ventanilla.test",
    )
    .with_telegram(ventanilla_social::telegram::TelegramClient::new(
        w.telegram.base_url(),
        reqwest::Client::new(),
    ));
    let (account, registered) = public
        .link(
            c.tenant,
            c.admin,
            &LinkRequest {
                network: "telegram".into(),
                external_id: String::new(),
                name: "Concello de Lugo (bot)".into(),
                access_token: SecretString::from(BOT_TOKEN),
                signing_secret: SecretString::from(""),
                verify_token: None,
                human_agent: false,
                instance: None,
                handle: None,
                publish_to: Some("@concellolugo".into()),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        registered,
        format!("https://ventanilla.test/webhooks/telegram/{}", account.0)
    );
    // Linking registered the webhook with a secret of ours.
    let webhook = w.telegram.webhook(BOT_TOKEN).unwrap();
    assert_eq!(webhook.url, registered);
    let url = format!("{}/webhooks/telegram/{}", w.base, account.0);
    let secret = webhook.secret_token.clone().unwrap();
    let state = w.accounts.state(c.tenant, account).await.unwrap();
    assert_eq!(state.external_id, "7000000001");
    assert_eq!(state.reach.handle.as_deref(), Some("concello_lugo_bot"));

    let vecina = TelegramUser::new(555001, "Vecina", Some("vecina_lugo"));
    let update =
        w.telegram
            .update_message(10, 555001, &vecina, "Hola, ¿cuándo abre el registro?", None);
    // A wrong or missing secret is refused before anything is read.
    assert_eq!(deliver(&url, Some("wrong"), &update).await.unwrap(), 401);
    assert_eq!(deliver(&url, None, &update).await.unwrap(), 401);
    assert_eq!(deliver(&url, Some(&secret), &update).await.unwrap(), 200);
    // Telegram repeats the update: stored once.
    assert_eq!(deliver(&url, Some(&secret), &update).await.unwrap(), 200);
    assert_eq!(
        deliver(&url, Some(&secret), b"{not json").await.unwrap(),
        400
    );
    w.settle().await;
    let tickets = inbox(&w, &c).await;
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert_eq!(tickets[0].channel, "telegram");

    reply(&w, &c, tickets[0].ticket_id, "Abre el lunes a las 9.").await;
    w.settle().await;
    let sent = w.telegram.sent();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].chat_id, 555001);
    assert_eq!(sent[0].text, "Abre el lunes a las 9.");
    assert_eq!(
        sent_state(&w, &c, tickets[0].ticket_id).await.as_deref(),
        Some("sent")
    );
}

#[tokio::test]
async fn a_mastodon_mention_and_a_direct_message_are_polled_once_and_answered_in_kind() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    w.mastodon.allow_token("mastodon-user-token");
    // A bad instance is refused with its reason, nothing linked.
    let request = |instance: &str| LinkRequest {
        network: "mastodon".into(),
        external_id: w.mastodon.account_id().into(),
        name: "@concello".into(),
        access_token: SecretString::from("mastodon-user-token"),
        signing_secret: SecretString::from(""),
        verify_token: None,
        human_agent: false,
        instance: Some(instance.into()),
        handle: None,
        publish_to: None,
    };
    let e = w
        .accounts
        .link(c.tenant, c.admin, &request("ftp://social.example"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "VALIDATION", "{e}");
    let (account, _) = w
        .accounts
        .link(c.tenant, c.admin, &request(w.mastodon.base_url()))
        .await
        .unwrap();

    let (_, public) = w.mastodon.push_mention(
        "vecina@social.example",
        "@concello hay un bache en la rúa Nova",
        "public",
        None,
    );
    let (_, direct) = w.mastodon.push_mention(
        "vecino@social.example",
        "@concello os escribo en privado",
        "direct",
        None,
    );
    let poller = MentionPoller::new(
        w.accounts.clone(),
        std::sync::Arc::clone(&w.log),
        &w.x.base_url,
        std::time::Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(poller.poll(c.tenant, account).await.unwrap(), 2);
    // Polled again: nothing new, nothing twice.
    assert_eq!(poller.poll(c.tenant, account).await.unwrap(), 0);
    w.settle().await;
    let tickets = inbox(&w, &c).await;
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    assert!(tickets.iter().all(|t| t.channel == "mastodon"));

    for t in &tickets {
        reply(&w, &c, t.ticket_id, "Gracias, lo revisamos.").await;
    }
    w.settle().await;
    let statuses = w.mastodon.statuses();
    let ours: Vec<_> = statuses
        .iter()
        .filter(|s| s.in_reply_to_id.is_some() || s.visibility == "direct")
        .filter(|s| s.text.contains("Gracias"))
        .collect();
    assert_eq!(ours.len(), 2, "{statuses:?}");
    let to_public = ours
        .iter()
        .find(|s| s.in_reply_to_id.as_deref() == Some(public.as_str()))
        .unwrap();
    assert_eq!(to_public.visibility, "public");
    assert!(
        to_public.text.starts_with("@vecina@social.example "),
        "{}",
        to_public.text
    );
    assert!(to_public.idempotency_key.is_some());
    let to_direct = ours.iter().find(|s| s.visibility == "direct").unwrap();
    assert!(
        to_direct.text.starts_with("@vecino@social.example "),
        "{}",
        to_direct.text
    );
    let _ = direct;
    for t in &tickets {
        assert_eq!(
            sent_state(&w, &c, t.ticket_id).await.as_deref(),
            Some("sent")
        );
    }
}

#[tokio::test]
async fn a_whatsapp_message_becomes_a_ticket_once_and_is_answered_within_the_window_only() {
    use ventanilla_social::fake::whatsapp::{signed_webhook, text_message};
    let w = World::new().await;
    let c = w.council("lugo").await;
    w.whatsapp.allow_token("wa-system-token");
    let (_, url) = w
        .accounts
        .link(
            c.tenant,
            c.admin,
            &LinkRequest {
                network: "whatsapp".into(),
                external_id: "106540352242922".into(),
                name: "Concello de Lugo (WhatsApp)".into(),
                access_token: SecretString::from("wa-system-token"),
                signing_secret: SecretString::from("wa-app-secret"),
                verify_token: Some(SecretString::from("wa-verify")),
                human_agent: false,
                instance: None,
                handle: None,
                publish_to: None,
            },
        )
        .await
        .unwrap();
    // Meta's verification request, then signed messages.
    let challenge = w
        .http
        .get(format!(
            "{url}?hub.mode=subscribe&hub.verify_token=wa-verify&hub.challenge=1158201444"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.text().await.unwrap(), "1158201444");
    let now = chrono::Utc::now();
    let fresh = text_message(
        "106540352242922",
        "34600111222",
        "Vecina",
        "wamid.HBgLMzQ2MDAxMTEyMjIVAgASGBQzQUFBQUFB",
        "¿Está abierto el punto limpio?",
        now.timestamp(),
    );
    let (body, signature) = signed_webhook("wa-app-secret", &fresh);
    for _ in 0..2 {
        let r = w
            .post(&url, "x-hub-signature-256", &signature, body.clone())
            .await;
        assert_eq!(r.status(), 200);
    }
    let r = w
        .post(&url, "x-hub-signature-256", "sha256=00", body.clone())
        .await;
    assert_eq!(r.status(), 401);
    let stale = text_message(
        "106540352242922",
        "34600333444",
        "Vecino",
        "wamid.HBgLMzQ2MDAzMzM0NDQVAgASGBQzQkJCQkJC",
        "Hola",
        (now - chrono::Duration::hours(30)).timestamp(),
    );
    let (body, signature) = signed_webhook("wa-app-secret", &stale);
    assert_eq!(
        w.post(&url, "x-hub-signature-256", &signature, body)
            .await
            .status(),
        200
    );
    w.settle().await;
    let tickets = inbox(&w, &c).await;
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    w.whatsapp.set_last_inbound("34600111222", now);
    for t in &tickets {
        reply(&w, &c, t.ticket_id, "Sí, de 9 a 14 h.").await;
    }
    w.settle().await;
    let sent = w.whatsapp.sent();
    assert_eq!(sent.len(), 1, "only inside the window: {sent:?}");
    assert_eq!(sent[0].to, "34600111222");
    assert_eq!(sent[0].body, "Sí, de 9 a 14 h.");
    // WhatsApp's status receipts move the reply to read (a late
    // "delivered" does not take it back); they find the reply by the
    // callback data it was sent with.
    let fresh_ticket = tickets
        .iter()
        .find(|t| {
            t.contact["handle"]
                .as_str()
                .unwrap_or_default()
                .contains("34600111222")
        })
        .unwrap()
        .ticket_id;
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, TicketId(fresh_ticket))
        .await
        .unwrap();
    let out = view.messages.iter().find(|m| m.direction == "out").unwrap();
    let wamid = out.delivery_platform_id.clone().unwrap();
    for status in ["read", "delivered"] {
        let receipt = ventanilla_social::fake::whatsapp::status_receipt_with_callback(
            "106540352242922",
            &wamid,
            status,
            "34600111222",
            &out.message_id.to_string(),
        );
        let (body, signature) = signed_webhook("wa-app-secret", &receipt);
        assert_eq!(
            w.post(&url, "x-hub-signature-256", &signature, body)
                .await
                .status(),
            200
        );
    }
    w.settle().await;
    for t in &tickets {
        let view = w
            .tickets
            .ticket(c.tenant, c.agent, TicketId(t.ticket_id))
            .await
            .unwrap();
        let out = view.messages.iter().find(|m| m.direction == "out").unwrap();
        if t.contact["handle"]
            .as_str()
            .unwrap_or_default()
            .contains("34600111222")
        {
            assert_eq!(out.delivery_state.as_deref(), Some("read"), "{out:?}");
            assert_eq!(out.delivery_platform_id.as_deref(), Some(wamid.as_str()));
        } else {
            assert_eq!(out.delivery_state.as_deref(), Some("failed"), "{out:?}");
            assert!(
                out.failure_reason
                    .as_deref()
                    .unwrap_or_default()
                    .contains("24 hours"),
                "{out:?}"
            );
        }
    }
}

#[tokio::test]
async fn bluesky_mentions_are_polled_once_and_answered_in_their_thread_with_one_sign_in() {
    use ventanilla_social::bluesky::Keepers;
    use ventanilla_social::fake::bluesky::{APP_PASSWORD, FakeBluesky, OWN_HANDLE};
    let w = World::new().await;
    let c = w.council("lugo").await;
    let pds = FakeBluesky::start().await;
    let (account, _) = w
        .accounts
        .link(
            c.tenant,
            c.admin,
            &LinkRequest {
                network: "bluesky".into(),
                external_id: OWN_HANDLE.into(),
                name: "Concello de Lugo".into(),
                access_token: SecretString::from(APP_PASSWORD),
                signing_secret: SecretString::from(""),
                verify_token: None,
                human_agent: false,
                instance: Some(pds.base_url().into()),
                handle: None,
                publish_to: None,
            },
        )
        .await
        .unwrap();
    let (own_uri, own_cid) = pds.push_own_post("Mañana, corte de agua en el centro.");
    let (mention, _) = pds.push_mention(
        "vecina.bsky.social",
        "@concello.bsky.social hay un bache en la rúa Nova",
        None,
    );
    let (answer, _) = pds.push_mention(
        "vecino.bsky.social",
        "¿A qué hora vuelve el agua?",
        Some((
            own_uri.as_str(),
            own_cid.as_str(),
            (own_uri.as_str(), own_cid.as_str()),
        )),
    );
    let keepers = std::sync::Arc::new(Keepers::new(reqwest::Client::new()));
    let poller = MentionPoller::new(
        w.accounts.clone(),
        std::sync::Arc::clone(&w.log),
        &w.x.base_url,
        std::time::Duration::from_secs(60),
    )
    .unwrap()
    .with_bluesky(std::sync::Arc::clone(&keepers));
    assert_eq!(poller.poll(c.tenant, account).await.unwrap(), 2);
    assert_eq!(
        poller.poll(c.tenant, account).await.unwrap(),
        0,
        "nothing twice"
    );
    let worker = ventanilla_social::outbound::DeliveryWorker::new(
        w.accounts.clone(),
        std::sync::Arc::clone(&w.log),
        &w.graph.base_url,
        &w.x.base_url,
        std::time::Duration::from_millis(100),
    )
    .unwrap()
    .with_bluesky(keepers);
    w.settle().await;
    let tickets = inbox(&w, &c).await;
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    for t in &tickets {
        reply(&w, &c, t.ticket_id, "Gracias, lo miramos.").await;
    }
    w.drain(ventanilla_social::outbound::SUBSCRIPTION, w.outbound())
        .await;
    worker.tick(chrono::Utc::now()).await.unwrap();
    w.settle().await;
    let replies: Vec<_> = pds
        .records()
        .into_iter()
        .filter(|r| r.record["text"] == "Gracias, lo miramos.")
        .collect();
    assert_eq!(replies.len(), 2, "{replies:?}");
    let to_mention = replies
        .iter()
        .find(|r| r.record["reply"]["parent"]["uri"] == mention.as_str())
        .unwrap();
    assert_eq!(to_mention.record["reply"]["root"]["uri"], mention.as_str());
    let to_answer = replies
        .iter()
        .find(|r| r.record["reply"]["parent"]["uri"] == answer.as_str())
        .unwrap();
    assert_eq!(
        to_answer.record["reply"]["root"]["uri"],
        own_uri.as_str(),
        "a reply to a reply keeps the thread's root"
    );
    assert_eq!(
        pds.logins(),
        1,
        "one sign-in, shared by the poller and the worker"
    );
    for t in &tickets {
        assert_eq!(
            sent_state(&w, &c, t.ticket_id).await.as_deref(),
            Some("sent")
        );
    }
}

#[tokio::test]
async fn a_mail_becomes_a_ticket_once_its_reply_is_threaded_and_loops_are_impossible() {
    use ventanilla_mail::receiver::{ReceiverConfig, SmtpReceiver};
    use ventanilla_mail::sink::SmtpSink;
    use ventanilla_mail::{Address, MailError, Mailer, MailerConfig, OutgoingMail};
    let w = World::new().await;
    let c = w.council("lugo").await;
    let (_, _) = w
        .accounts
        .link(
            c.tenant,
            c.admin,
            &LinkRequest {
                network: "email".into(),
                external_id: "Lugo@Correo.Ventanilla.test".into(),
                name: "Concello de Lugo".into(),
                access_token: SecretString::from(""),
                signing_secret: SecretString::from(""),
                verify_token: None,
                human_agent: false,
                instance: None,
                handle: None,
                publish_to: None,
            },
        )
        .await
        .unwrap();
    let receiver = SmtpReceiver::start(
        ReceiverConfig::new("127.0.0.1:0".parse().unwrap()),
        std::sync::Arc::new(ventanilla_social::mailbox::Mailbox::new(
            std::sync::Arc::clone(&w.log),
            w.accounts.tenancy().clone(),
            1 << 20,
        )),
    )
    .await
    .unwrap();
    let citizen = Mailer::new(&MailerConfig {
        url: format!("smtp://{}", receiver.addr()),
        pool_size: 1,
        timeout: std::time::Duration::from_secs(10),
    })
    .unwrap();
    let mail = |id: &str, subject: &str, text: &str| {
        OutgoingMail::new(
            id,
            Address::named("Vecina", "vecina@example.org"),
            Address::new("lugo@correo.ventanilla.test"),
            subject,
            text,
        )
    };
    let first = mail(
        "m1@example.org",
        "Farola fundida",
        "La farola de la plaza no funciona.",
    );
    citizen.send(&first).await.unwrap();
    citizen.send(&first).await.unwrap(); // retried by the sender: stored once
    let mut stranger = mail("m0@example.org", "Hola", "…");
    stranger.to = Address::new("nadie@correo.ventanilla.test");
    assert!(matches!(
        citizen.send(&stranger).await,
        Err(MailError::Permanent {
            code: Some(550),
            ..
        })
    ));
    w.settle().await;
    let tickets = inbox(&w, &c).await;
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    assert_eq!(tickets[0].channel, "email");
    let reference = tickets[0].reference.clone();

    // The reply goes out by mail, threaded under the citizen's.
    let sink = SmtpSink::start().await.unwrap();
    let worker = ventanilla_social::outbound::DeliveryWorker::new(
        w.accounts.clone(),
        std::sync::Arc::clone(&w.log),
        &w.graph.base_url,
        &w.x.base_url,
        std::time::Duration::from_millis(100),
    )
    .unwrap()
    .with_mailer(
        std::sync::Arc::new(
            Mailer::new(&MailerConfig {
                url: sink.url(),
                pool_size: 1,
                timeout: std::time::Duration::from_secs(10),
            })
            .unwrap(),
        ),
        "ventanilla.test",
    );
    reply(&w, &c, tickets[0].ticket_id, "Mañana la cambia la brigada.").await;
    w.drain(ventanilla_social::outbound::SUBSCRIPTION, w.outbound())
        .await;
    worker.tick(chrono::Utc::now()).await.unwrap();
    let sent = sink.wait_for(1, std::time::Duration::from_secs(5)).await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].to, vec!["vecina@example.org".to_owned()]);
    let raw = String::from_utf8_lossy(&sent[0].data).to_string();
    assert!(raw.contains("In-Reply-To: <m1@example.org>"), "{raw}");
    assert!(
        raw.contains(&format!("[{reference}] Farola fundida")),
        "{raw}"
    );
    let reply_id = raw
        .lines()
        .find_map(|l| l.strip_prefix("Message-ID: <"))
        .map(|v| v.trim_end_matches('>').to_owned())
        .unwrap();
    assert!(reply_id.ends_with("@ventanilla.test"), "{reply_id}");
    w.settle().await;
    assert_eq!(
        sent_state(&w, &c, tickets[0].ticket_id).await.as_deref(),
        Some("sent")
    );

    // The citizen answers in the same thread; then without threading
    // headers but with the reference in the subject: the same ticket.
    let mut again = mail(
        "m2@example.org",
        &format!("Re: [{reference}] Farola fundida"),
        "Gracias.",
    );
    again.in_reply_to = Some(reply_id.clone());
    again.references = vec!["m1@example.org".into(), reply_id.clone()];
    citizen.send(&again).await.unwrap();
    let headless = mail(
        "m3@example.org",
        &format!("[{reference}] otra vez"),
        "Sigue sin luz.",
    );
    citizen.send(&headless).await.unwrap();
    // An auto-reply never opens a ticket (nor is answered).
    let mut away = mail("m4@example.org", "Fuera de la oficina", "Vuelvo el lunes.");
    away.auto_submitted = true;
    citizen.send(&away).await.unwrap();
    w.settle().await;
    let tickets = inbox(&w, &c).await;
    assert_eq!(tickets.len(), 1, "{tickets:?}");
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, TicketId(tickets[0].ticket_id))
        .await
        .unwrap();
    let received = view.messages.iter().filter(|m| m.direction == "in").count();
    assert_eq!(received, 3, "{:?}", view.messages);
    receiver.shutdown().await;
}
