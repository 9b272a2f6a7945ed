//! Social messages become tickets exactly once: the inbound reactor reads
//! `social.message_received` events from the log (as the social service
//! will write them), continues conversations, reopens or opens tickets, and
//! never adds a message twice — not when the event is redelivered, not when
//! the reactor replays the log.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;
use ventanilla_eventlog::{EventLog, ExpectedVersion, Metadata, NewEvent, Position};
use ventanilla_kernel::TenantId;
use ventanilla_postgres::projection::ensure_caught_up;
use ventanilla_postgres::{Handler, Subscription, SubscriptionConfig};
use ventanilla_social_domain::inbound::{
    AccountId, Author, MESSAGE_RECEIVED, MessageKind, MessageReceived, inbound_stream,
    message_event_id,
};
use ventanilla_tickets::inbound::{InboundReactor, SUBSCRIPTION};
use ventanilla_tickets::inbox::{InboxFilter, InboxProjection, InboxSort};
use ventanilla_tickets::service::ReplyRequest;
use ventanilla_tickets_domain::ticket::TicketId;

use crate::support::{Council, World};

fn message(
    channel: &str,
    kind: MessageKind,
    platform_id: &str,
    thread: &str,
    user: &str,
    text: &str,
) -> MessageReceived {
    MessageReceived {
        reply_context: None,
        subject: None,
        account: AccountId(Uuid::from_u128(77)),
        channel: channel.into(),
        kind,
        platform_id: platform_id.into(),
        thread: thread.into(),
        in_reply_to: None,
        author: Author {
            platform_user_id: user.into(),
            handle: Some(format!("@{user}")),
            name: Some("Vecina Ejemplo".into()),
        },
        text: text.into(),
        sent_at: Utc::now(),
    }
}

impl World {
    /// Records a social message as the social service does: on the
    /// account's stream, with the id derived from the platform's id.
    async fn social(&self, tenant: TenantId, m: &MessageReceived) -> Position {
        let appended = self
            .log
            .append(
                tenant,
                &inbound_stream(m.account).unwrap(),
                ExpectedVersion::Any,
                vec![NewEvent {
                    id: message_event_id(&m.channel, &m.platform_id),
                    event_type: MESSAGE_RECEIVED.into(),
                    schema_version: 1,
                    data: serde_json::to_value(m).unwrap(),
                    metadata: Metadata::system("social-test", Uuid::new_v4()),
                }],
            )
            .await
            .unwrap();
        appended.last_position().unwrap_or(Position::START)
    }

    /// Runs the inbound reactor (under `name`) until it has nothing left,
    /// then waits for the inbox to show what it wrote.
    async fn react(&self, name: &str) {
        let reactor: Arc<dyn Handler> = Arc::new(InboundReactor::new(self.tickets.clone()));
        let mut sub = Subscription::join(
            Arc::clone(&self.log),
            self.db.app.clone(),
            SubscriptionConfig::new(name, "test"),
            reactor,
        )
        .await
        .unwrap();
        // Read until every event committed so far is applied: one pass may
        // stop early while another transaction on the server is open.
        let target = self.log.committed_head().await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            sub.rebalance().await.unwrap();
            sub.catch_up().await.unwrap();
            if sub
                .checkpoints()
                .values()
                .min()
                .is_some_and(|p| *p >= target)
            {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} did not catch up"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        sub.leave().await;
        let head = self.log.committed_head().await.unwrap();
        ensure_caught_up(
            Arc::clone(&self.log),
            self.db.app.clone(),
            Arc::new(InboxProjection),
            head,
            std::time::Duration::from_secs(15),
        )
        .await
        .unwrap();
    }

    async fn all_tickets(&self, c: &Council) -> Vec<ventanilla_tickets::inbox::InboxItem> {
        self.tickets
            .inbox(
                c.tenant,
                c.agent,
                &InboxFilter::default(),
                InboxSort::LastActivity,
                100,
                None,
            )
            .await
            .unwrap()
            .items
    }
}

#[tokio::test]
async fn a_comment_opens_one_ticket_however_often_it_is_delivered_or_replayed() {
    let w = World::new().await;
    let c = w.council("ferrol").await;
    let comment = message(
        "facebook",
        MessageKind::Comment,
        "1234_5678",
        "post_1234",
        "9001",
        "¿Cuándo arreglan el bache de la calle Real?\nGracias",
    );
    w.social(c.tenant, &comment).await;
    w.social(c.tenant, &comment).await; // redelivered by the platform
    w.react(SUBSCRIPTION).await;
    let tickets = w.all_tickets(&c).await;
    assert_eq!(tickets.len(), 1);
    let t = &tickets[0];
    assert_eq!(
        (t.channel.as_str(), t.kind.as_str(), t.subject.as_str()),
        (
            "facebook",
            "question",
            "¿Cuándo arreglan el bache de la calle Real?"
        )
    );
    assert_eq!(t.contact["handle"], "@9001");
    assert!(t.reference.starts_with("FERROL-"), "{}", t.reference);
    assert!(t.due_at.is_some(), "the clocks run for social tickets too");

    // The reactor replays the whole log (a new subscription, a lost
    // checkpoint): nothing is added.
    w.react("tickets:inbound-replay").await;
    // Even with its conversation keys lost (a crash before the checkpoint).
    sqlx::query("DELETE FROM ticket_conversations")
        .execute(&w.db.admin)
        .await
        .unwrap();
    w.react("tickets:inbound-replay-2").await;
    let tickets = w.all_tickets(&c).await;
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].messages_count, 1);
    let opened: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ticket.opened'")
            .fetch_one(&w.db.admin)
            .await
            .unwrap();
    assert_eq!(opened, 1);

    // The agent's reply goes out on Facebook, under the citizen's comment.
    let id = TicketId(tickets[0].ticket_id);
    w.tickets
        .reply(
            c.tenant,
            c.agent,
            id,
            &ReplyRequest {
                body: "Mañana pasa la brigada.".into(),
                ..ReplyRequest::default()
            },
        )
        .await
        .unwrap();
    let replied: serde_json::Value = sqlx::query_scalar(
        "SELECT data FROM events WHERE event_type = 'ticket.replied' AND stream_id = $1",
    )
    .bind(format!("ticket-{}", id.0))
    .fetch_one(&w.db.admin)
    .await
    .unwrap();
    assert_eq!(replied["channel"], "facebook");
    assert_eq!(replied["in_reply_to_platform_id"], "1234_5678");
    assert_eq!(replied["to"]["handle"], "@9001");
}

#[tokio::test]
async fn conversations_continue_reopen_or_start_a_new_ticket() {
    let w = World::new().await;
    let c = w.council("lalin").await;
    // A private conversation on Messenger: two messages, one ticket.
    w.social(
        c.tenant,
        &message(
            "facebook",
            MessageKind::Direct,
            "m_1",
            "t_55",
            "55",
            "Hola, una duda",
        ),
    )
    .await;
    w.social(
        c.tenant,
        &message(
            "facebook",
            MessageKind::Direct,
            "m_2",
            "t_55",
            "55",
            "¿Abren el sábado?",
        ),
    )
    .await;
    // A public mention on X in a new conversation: a ticket of its own.
    w.social(
        c.tenant,
        &message(
            "x",
            MessageKind::Mention,
            "1800",
            "1800",
            "55",
            "@concello luz fundida",
        ),
    )
    .await;
    w.react(SUBSCRIPTION).await;
    let tickets = w.all_tickets(&c).await;
    assert_eq!(tickets.len(), 2, "{tickets:?}");
    let messenger = tickets.iter().find(|t| t.channel == "facebook").unwrap();
    assert_eq!(messenger.messages_count, 2);
    let on_x = tickets.iter().find(|t| t.channel == "x").unwrap();
    assert_eq!(
        on_x.messages_count, 1,
        "the same user id on another network is another person"
    );

    // Resolved: the citizen writes again within the window → reopened.
    let id = TicketId(messenger.ticket_id);
    w.tickets.resolve(c.tenant, c.agent, id).await.unwrap();
    w.social(
        c.tenant,
        &message(
            "facebook",
            MessageKind::Direct,
            "m_3",
            "t_55",
            "55",
            "Sigue sin funcionar",
        ),
    )
    .await;
    w.react(SUBSCRIPTION).await;
    let view = w.tickets.ticket(c.tenant, c.agent, id).await.unwrap();
    assert_eq!(
        (view.item.status.as_str(), view.reopened_count),
        ("open", 1)
    );
    assert_eq!(view.messages.len(), 3);
    assert!(
        view.resolution_due.is_some(),
        "reopening restarts the resolution clock"
    );

    // Closed: the next message opens a new ticket, and the conversation
    // continues there.
    w.tickets.close(c.tenant, c.agent, id).await.unwrap();
    w.social(
        c.tenant,
        &message(
            "facebook",
            MessageKind::Direct,
            "m_4",
            "t_55",
            "55",
            "Otra cosa",
        ),
    )
    .await;
    w.social(
        c.tenant,
        &message(
            "facebook",
            MessageKind::Direct,
            "m_5",
            "t_55",
            "55",
            "Y otra más",
        ),
    )
    .await;
    w.react(SUBSCRIPTION).await;
    let tickets = w.all_tickets(&c).await;
    assert_eq!(tickets.len(), 3);
    let newest = tickets
        .iter()
        .find(|t| t.channel == "facebook" && t.ticket_id != id.0)
        .unwrap();
    assert_eq!((newest.status.as_str(), newest.messages_count), ("new", 2));

    // Another tenant's account: its own tickets, never this council's.
    let other = w.council("silleda").await;
    w.social(
        other.tenant,
        &message("facebook", MessageKind::Direct, "m_9", "t_55", "55", "Hola"),
    )
    .await;
    w.react(SUBSCRIPTION).await;
    assert_eq!(w.all_tickets(&c).await.len(), 3);
    assert_eq!(w.all_tickets(&other).await.len(), 1);
}

#[tokio::test]
async fn a_message_with_no_text_or_a_huge_one_is_kept_and_an_unknown_channel_skipped() {
    let w = World::new().await;
    let c = w.council("cangas").await;
    w.social(
        c.tenant,
        &message(
            "instagram",
            MessageKind::Direct,
            "ig_1",
            "ig_t1",
            "ig_u1",
            "   ",
        ),
    )
    .await;
    w.social(
        c.tenant,
        &message(
            "telegram",
            MessageKind::Direct,
            "tg_1",
            "tg_t1",
            "tg_u1",
            &"a".repeat(30_000),
        ),
    )
    .await;
    w.social(
        c.tenant,
        &message(
            "myspace",
            MessageKind::Direct,
            "ms_1",
            "ms_t1",
            "ms_u1",
            "hola",
        ),
    )
    .await;
    w.react(SUBSCRIPTION).await;
    let tickets = w.all_tickets(&c).await;
    assert_eq!(
        tickets.len(),
        2,
        "the unknown channel is skipped, the rest kept"
    );
    let photo = tickets.iter().find(|t| t.channel == "instagram").unwrap();
    assert_eq!(photo.subject, "Mensaje en instagram");
    let long = tickets.iter().find(|t| t.channel == "telegram").unwrap();
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, TicketId(long.ticket_id))
        .await
        .unwrap();
    assert_eq!(view.messages[0].body.chars().count(), 20_000);
    assert!(view.messages[0].body.ends_with('…'));
}
