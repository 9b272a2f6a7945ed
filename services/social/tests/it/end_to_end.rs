//! The end-to-end test: a fake Facebook comment and a fake X
//! mention arrive → tickets open → an agent replies → the fakes receive
//! correctly shaped replies → the tickets show them as sent.

use chrono::Utc;
use ventanilla_social::fake::{meta as fake_meta, x as fake_x};
use ventanilla_tickets::inbox::{InboxFilter, InboxSort};
use ventanilla_tickets::service::ReplyRequest;
use ventanilla_tickets_domain::ticket::TicketId;

use crate::support::{APP_SECRET, CONSUMER_SECRET, PAGE_ID, World, X_USER_ID};

#[tokio::test]
async fn a_comment_and_a_mention_become_tickets_and_the_answers_go_back_out() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let (_, page_url) = w.link_page(&c).await;
    let (_, x_url) = w.link_x(&c).await;

    let now = Utc::now().timestamp();
    let comment = fake_meta::feed_comment(
        PAGE_ID,
        &format!("{PAGE_ID}_111"),
        &format!("{PAGE_ID}_111_222"),
        "987654321",
        "Vecina Ejemplo",
        "La farola de la calle Mayor está fundida",
        "add",
        now,
    );
    let (body, signature) = fake_meta::signed_webhook(APP_SECRET, &comment);
    let r = w
        .post(&page_url, "x-hub-signature-256", &signature, body.clone())
        .await;
    assert_eq!(r.status(), 200);
    // Meta redelivers: nothing new.
    let r = w
        .post(&page_url, "x-hub-signature-256", &signature, body)
        .await;
    assert_eq!(r.status(), 200);

    let mention = fake_x::mention_event(
        X_USER_ID,
        "1800000000000000001",
        "@concello hay un bache enorme en la rúa Nova",
        "1205290247124217856",
        "pennbrooke1",
        None,
        now * 1000,
    );
    let (body, signature) = fake_x::signed_webhook(CONSUMER_SECRET, &mention);
    let r = w
        .post(&x_url, "x-twitter-webhooks-signature", &signature, body)
        .await;
    assert_eq!(r.status(), 200);

    w.settle().await;
    let inbox = w
        .tickets
        .inbox(
            c.tenant,
            c.agent,
            &InboxFilter::default(),
            InboxSort::LastActivity,
            25,
            None,
        )
        .await
        .unwrap();
    assert_eq!(inbox.items.len(), 2, "{:?}", inbox.items);
    let fb = inbox
        .items
        .iter()
        .find(|t| t.channel == "facebook")
        .unwrap();
    let tw = inbox.items.iter().find(|t| t.channel == "x").unwrap();
    assert_eq!(fb.subject, "La farola de la calle Mayor está fundida");
    assert_eq!(tw.contact["handle"], "@pennbrooke1");

    for (ticket, text) in [
        (fb.ticket_id, "Gracias, avisamos al servicio de alumbrado."),
        (tw.ticket_id, "Gracias, lo revisa la brigada mañana."),
    ] {
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
    w.settle().await;

    // Facebook: a reply under the citizen's comment, with the page token.
    let sent: Vec<_> = w
        .graph
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert!(
        sent[0]
            .path
            .ends_with(&format!("/{PAGE_ID}_111_222/comments")),
        "{}",
        sent[0].path
    );
    // X: a reply inside `reply`, to the mention.
    let posted: Vec<_> =
        w.x.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect();
    assert_eq!(posted.len(), 1, "{posted:?}");
    let body = posted[0].body.clone().unwrap();
    assert_eq!(body["reply"]["in_reply_to_tweet_id"], "1800000000000000001");
    assert_eq!(body["text"], "Gracias, lo revisa la brigada mañana.");
    assert_eq!(
        posted[0].authorization.as_deref(),
        Some("Bearer x-user-token")
    );

    for ticket in [fb.ticket_id, tw.ticket_id] {
        let view = w
            .tickets
            .ticket(c.tenant, c.agent, TicketId(ticket))
            .await
            .unwrap();
        let reply = view.messages.iter().find(|m| m.direction == "out").unwrap();
        assert_eq!(reply.delivery_state.as_deref(), Some("sent"), "{reply:?}");
        assert!(reply.delivery_platform_id.is_some());
    }
    // Sent once, whatever the ticks.
    w.settle().await;
    assert_eq!(
        w.x.requests().iter().filter(|r| r.method == "POST").count(),
        1
    );
}
