//! "Avísame cuando…" on a social network, across both services: a citizen
//! mentions the council on X, an integrator subscribes them to the case on
//! X, the agent resolves it → the tickets service hands a notice to the
//! social service (`notice.requested`) → the fake X receives a reply to the
//! citizen's mention → the notification is settled as sent. And a notice to
//! a network with no linked account fails with its reason.

use std::sync::Arc;

use chrono::Utc;
use secrecy::SecretString;
use uuid::Uuid;
use ventanilla_postgres::Handler;
use ventanilla_social::fake::x as fake_x;
use ventanilla_tickets::inbox::{InboxFilter, InboxSort};
use ventanilla_tickets::notify::fanout::FanoutReactor;
use ventanilla_tickets::notify::service::{
    Notifications, NotifyConfig, SubscribeRequest, TargetRequest, ViaRequest,
};
use ventanilla_tickets::notify::worker::{NotifyWorker, WorkerSettings};
use ventanilla_tickets::service::Origin;
use ventanilla_tickets_domain::ticket::TicketId;
use ventanilla_webhooks::UrlPolicy;

use crate::support::{CONSUMER_SECRET, World, X_USER_ID};

fn notifications(w: &World) -> (Notifications, NotifyWorker) {
    let config = NotifyConfig {
        key: None,
        public_url: "https://ventanilla.test".into(),
        confirm_for: chrono::Duration::hours(48),
        url_policy: UrlPolicy {
            allow_private: true,
        },
    }
    .with_key(&SecretString::from(
        "bm90aWZ5LWtleS1vZi10aGUtdGVzdHMtMzItYnl0ZXM=",
    ))
    .unwrap();
    let worker = NotifyWorker::new(
        Arc::clone(&w.log),
        Arc::new(config.clone()),
        None,
        Arc::new(
            ventanilla_webhooks::Sender::new(std::time::Duration::from_secs(2), config.url_policy)
                .unwrap(),
        ),
        WorkerSettings {
            concurrency: 2,
            sender_address: "no-reply@ventanilla.test".into(),
        },
    );
    (Notifications::new(Arc::clone(&w.log), config), worker)
}

async fn outbox(w: &World) -> Vec<(String, Option<String>)> {
    sqlx::query_as("SELECT state, last_error FROM notify_outbox ORDER BY created_at")
        .fetch_all(&w.db.admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_case_followed_on_x_is_told_there_when_it_is_resolved() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let (_, x_url) = w.link_x(&c).await;
    let (service, worker) = notifications(&w);
    let mention = fake_x::mention_event(
        X_USER_ID,
        "1800000000000000001",
        "@concello hay un bache enorme en la rúa Nova",
        "1205290247124217856",
        "pennbrooke1",
        None,
        Utc::now().timestamp() * 1000,
    );
    let (body, signature) = fake_x::signed_webhook(CONSUMER_SECRET, &mention);
    let r = w
        .post(&x_url, "x-twitter-webhooks-signature", &signature, body)
        .await;
    assert_eq!(r.status(), 200);
    w.settle().await;
    let ticket = w
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
        .unwrap()
        .items
        .remove(0);

    // An integrator (the council's chatbot) subscribes the citizen to the
    // case on X; the handle comes from the case.
    let subscribed = service
        .subscribe(
            c.tenant,
            &Origin::Api {
                key: Uuid::new_v4(),
            },
            &SubscribeRequest {
                target: TargetRequest::Case {
                    reference: ticket.reference.clone(),
                    tracking_token: None,
                },
                via: ViaRequest::Social {
                    channel: "x".into(),
                    handle: String::new(),
                },
                language: Some("es".into()),
                daily_digest: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(subscribed.status, "active");
    assert_eq!(
        service
            .subscription(c.tenant, subscribed.id)
            .await
            .unwrap()
            .address,
        "@pennbrooke1"
    );

    w.tickets
        .resolve(c.tenant, c.agent, TicketId(ticket.ticket_id))
        .await
        .unwrap();
    let fanout: Arc<dyn Handler> = Arc::new(FanoutReactor::new(
        Arc::clone(&w.log),
        service.tenancy().clone(),
        8,
    ));
    w.drain(
        ventanilla_tickets::notify::fanout::SUBSCRIPTION,
        Arc::clone(&fanout),
    )
    .await;
    worker.drain().await.unwrap();
    assert_eq!(outbox(&w).await, vec![("handed".to_owned(), None)]);
    w.settle().await;

    // X received a reply to the citizen's mention saying it is resolved.
    let posted: Vec<_> =
        w.x.requests()
            .into_iter()
            .filter(|r| r.method == "POST")
            .collect();
    assert_eq!(posted.len(), 1, "{posted:?}");
    let body = posted[0].body.clone().unwrap();
    assert_eq!(body["reply"]["in_reply_to_tweet_id"], "1800000000000000001");
    let text = body["text"].as_str().unwrap();
    assert!(
        text.contains(&ticket.reference) && text.contains("resuelta"),
        "{text}"
    );
    assert_eq!(outbox(&w).await, vec![("sent".to_owned(), None)]);

    // Redelivered and re-run: told once.
    w.drain(ventanilla_tickets::notify::fanout::SUBSCRIPTION, fanout)
        .await;
    worker.drain().await.unwrap();
    w.settle().await;
    assert_eq!(
        w.x.requests().iter().filter(|r| r.method == "POST").count(),
        1
    );
}

#[tokio::test]
async fn a_notice_to_a_network_without_a_linked_account_fails_with_its_reason() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let (service, worker) = notifications(&w);
    let topic = ventanilla_tenants::organisation::Organisation::new(Arc::clone(&w.log))
        .add_topic(c.tenant, c.admin, "Obras", None)
        .await
        .unwrap()
        .0;
    service
        .subscribe(
            c.tenant,
            &Origin::Api {
                key: Uuid::new_v4(),
            },
            &SubscribeRequest {
                target: TargetRequest::Topic(topic),
                via: ViaRequest::Social {
                    channel: "x".into(),
                    handle: "1205290247124217856".into(),
                },
                language: None,
                daily_digest: false,
            },
        )
        .await
        .unwrap();
    service
        .publish(
            c.tenant,
            c.agent,
            &ventanilla_tickets::notify::service::PublishRequest {
                title: "Corte de tráfico".into(),
                body: "Mañana en la rúa Nova.".into(),
                topics: vec![topic],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let fanout: Arc<dyn Handler> = Arc::new(FanoutReactor::new(
        Arc::clone(&w.log),
        service.tenancy().clone(),
        8,
    ));
    w.drain(ventanilla_tickets::notify::fanout::SUBSCRIPTION, fanout)
        .await;
    worker.drain().await.unwrap();
    w.settle().await;
    let rows = outbox(&w).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "failed");
    assert!(
        rows[0]
            .1
            .as_deref()
            .unwrap_or_default()
            .contains("no x account is linked"),
        "{rows:?}"
    );
}
