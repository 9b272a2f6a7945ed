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
