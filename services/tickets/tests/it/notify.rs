//! "Avísame cuando…" end to end on the real database and a real (local)
//! SMTP server: subscribe, confirm from the e-mail's link, hear about an
//! announcement once, leave in one click; digests, bounces, retries, signed
//! webhooks that get disabled, the citizens' pages, and bad input refused
//! with nothing stored.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use chrono::Utc;
use mail_parser::MessageParser;
use secrecy::SecretString;
use tower::ServiceExt;
use uuid::Uuid;
use ventanilla_eventlog::EventLog;
use ventanilla_mail::sink::{ReceivedMail, SmtpSink};
use ventanilla_mail::{Mailer, MailerConfig};
use ventanilla_postgres::projection::ensure_caught_up;
use ventanilla_postgres::{Handler, Subscription, SubscriptionConfig};
use ventanilla_tickets::notify::fanout::FanoutReactor;
use ventanilla_tickets::notify::projection::NotifyProjection;
use ventanilla_tickets::notify::service::{
    Notifications, NotifyConfig, PublishRequest, SubscribeRequest, TargetRequest, ViaRequest,
};
use ventanilla_tickets::notify::worker::{NotifyWorker, WorkerSettings};
use ventanilla_tickets::service::{Origin, ReplyRequest};
use ventanilla_tickets_domain::ticket::TicketId;
use ventanilla_webhooks::UrlPolicy;

use crate::support::{Council, World};

const KEY: &str = "bm90aWZ5LWtleS1vZi10aGUtdGVzdHMtMzItYnl0ZXM=";

struct Notify {
    world: World,
    sink: SmtpSink,
    service: Notifications,
    worker: NotifyWorker,
}

fn config(allow_private: bool) -> NotifyConfig {
    NotifyConfig {
        key: None,
        public_url: "https://ventanilla.test".into(),
        confirm_for: chrono::Duration::hours(48),
        url_policy: UrlPolicy { allow_private },
    }
    .with_key(&SecretString::from(KEY))
    .unwrap()
}

impl Notify {
    async fn new() -> Self {
        let world = World::new().await;
        let sink = SmtpSink::start().await.unwrap();
        let config = config(true);
        let service = Notifications::new(Arc::clone(&world.log), config.clone());
        let mailer = Mailer::new(&MailerConfig {
            url: sink.url(),
            pool_size: 4,
            timeout: Duration::from_secs(10),
        })
        .unwrap();
        let webhooks =
            ventanilla_webhooks::Sender::new(Duration::from_secs(2), config.url_policy).unwrap();
        let worker = NotifyWorker::new(
            Arc::clone(&world.log),
            Arc::new(config),
            Some(Arc::new(mailer)),
            Arc::new(webhooks),
            WorkerSettings {
                concurrency: 4,
                sender_address: "no-reply@ventanilla.test".into(),
            },
        );
        Self {
            world,
            sink,
            service,
            worker,
        }
    }

    async fn topic(&self, c: &Council, name: &str) -> Uuid {
        self.world
            .org
            .add_topic(c.tenant, c.admin, name, None)
            .await
            .unwrap()
            .0
    }

    /// Runs the fan-out reactor (as `name`) over everything committed.
    async fn fan_out(&self, name: &str) {
        let reactor: Arc<dyn Handler> = Arc::new(FanoutReactor::new(
            Arc::clone(&self.world.log),
            self.service.tenancy().clone(),
            8,
        ));
        let mut sub = Subscription::join(
            Arc::clone(&self.world.log),
            self.world.db.app.clone(),
            SubscriptionConfig::new(name, "test"),
            reactor,
        )
        .await
        .unwrap();
        let target = self.world.log.committed_head().await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
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
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sub.leave().await;
    }

    /// Fans out, then sends what is due now.
    async fn deliver(&self) {
        self.fan_out("notify:fanout").await;
        self.worker.drain().await.unwrap();
    }

    async fn settle(&self) {
        let head = self.world.log.committed_head().await.unwrap();
        ensure_caught_up(
            Arc::clone(&self.world.log),
            self.world.db.app.clone(),
            Arc::new(NotifyProjection),
            head,
            Duration::from_secs(15),
        )
        .await
        .unwrap();
    }

    async fn subscribe_email(&self, c: &Council, topic: Uuid, address: &str, digest: bool) -> Uuid {
        self.service
            .subscribe(
                c.tenant,
                &Origin::Web,
                &SubscribeRequest {
                    target: TargetRequest::Topic(topic),
                    via: ViaRequest::Email(address.into()),
                    language: Some("gl".into()),
                    daily_digest: digest,
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn publish(&self, c: &Council, topic: Uuid, title: &str) -> Uuid {
        self.service
            .publish(
                c.tenant,
                c.agent,
                &PublishRequest {
                    title: title.into(),
                    body: "Ábrese o prazo de inscrición.\n\nPrazas limitadas <25>.".into(),
                    link: Some("https://lugo.gal/campamentos".into()),
                    topics: vec![topic],
                    ..PublishRequest::default()
                },
            )
            .await
            .unwrap()
            .id
    }

    async fn outbox(&self, state: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM notify_outbox WHERE state = $1")
            .bind(state)
            .fetch_one(&self.world.db.admin)
            .await
            .unwrap()
    }

    async fn status(&self, c: &Council, id: Uuid) -> String {
        self.settle().await;
        self.service
            .subscription(c.tenant, id)
            .await
            .unwrap()
            .status
    }
}

fn header(mail: &ReceivedMail, name: &str) -> Option<String> {
    let parsed = MessageParser::default().parse(&mail.data).unwrap();
    parsed.header_raw(name).map(|v| v.trim().to_owned())
}

fn subject(mail: &ReceivedMail) -> String {
    let parsed = MessageParser::default().parse(&mail.data).unwrap();
    parsed.subject().unwrap_or_default().to_owned()
}

fn text(mail: &ReceivedMail) -> String {
    let parsed = MessageParser::default().parse(&mail.data).unwrap();
    parsed.body_text(0).unwrap_or_default().into_owned()
}

fn html(mail: &ReceivedMail) -> String {
    let parsed = MessageParser::default().parse(&mail.data).unwrap();
    parsed.body_html(0).unwrap_or_default().into_owned()
}

/// The token of the first `/notify/<path>?t=` link in the text body.
fn token(mail: &ReceivedMail, path: &str) -> String {
    let body = text(mail);
    let marker = format!("/notify/{path}?t=");
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {path} link in {body}"))
        + marker.len();
    body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test]
async fn an_email_subscriber_confirms_hears_an_announcement_once_and_leaves_in_one_click() {
    let n = Notify::new().await;
    let c = n.world.council("lugo").await;
    let topic = n.topic(&c, "Campamentos de verano").await;
    let id = n
        .subscribe_email(&c, topic, "Vecina@Correo.ES", false)
        .await;
    assert_eq!(n.status(&c, id).await, "pending");

    // The confirmation e-mail, and nothing else before it is confirmed.
    n.deliver().await;
    let mails = n.sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, vec!["Vecina@correo.es".to_owned()]);
    assert_eq!(
        subject(&mails[0]),
        "Confirma a túa subscrición: Campamentos de verano"
    );
    assert_eq!(header(&mails[0], "List-Unsubscribe"), None);
    let confirm = token(&mails[0], "confirm");
    n.publish(&c, topic, "Antes de confirmar").await;
    n.deliver().await;
    assert_eq!(
        n.sink.count(),
        1,
        "nothing but the confirmation before it is confirmed"
    );

    // Confirmed (twice is fine), then an announcement arrives once.
    n.service.confirm(&confirm).await.unwrap();
    n.service.confirm(&confirm).await.unwrap();
    assert_eq!(n.status(&c, id).await, "active");
    let announcement = n.publish(&c, topic, "Inscrición aberta: campamentos").await;
    n.deliver().await;
    let mails = n.sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 2);
    let mail = &mails[1];
    assert_eq!(subject(mail), "Inscrición aberta: campamentos");
    assert!(
        text(mail).contains("Prazas limitadas <25>."),
        "{}",
        text(mail)
    );
    assert!(html(mail).contains("Prazas limitadas &lt;25&gt;."));
    let unsubscribe = header(mail, "List-Unsubscribe").unwrap();
    assert!(
        unsubscribe.starts_with("<https://ventanilla.test/notify/unsubscribe?t="),
        "{unsubscribe}"
    );
    assert_eq!(
        header(mail, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert_eq!(
        header(mail, "Auto-Submitted").as_deref(),
        Some("auto-generated")
    );
    assert_eq!(header(mail, "Content-Language").as_deref(), Some("gl"));
    let message_id = header(mail, "Message-ID").unwrap();
    assert!(message_id.ends_with("@ventanilla.test>"), "{message_id}");
    let from = header(mail, "From").unwrap();
    assert!(
        from.contains("Concello de lugo") && from.contains("<no-reply@ventanilla.test>"),
        "{from}"
    );
    assert_eq!(
        header(mail, "Reply-To").as_deref(),
        Some("alcaldia@lugo.gal")
    );
    assert!(text(mail).contains("/notify/manage?t="));

    // The reactor replayed from the start under another name queues
    // nothing new; a second drain sends nothing again.
    let queued = n.outbox("sent").await;
    n.fan_out("notify:fanout-replay").await;
    n.worker.drain().await.unwrap();
    assert_eq!(n.outbox("sent").await, queued);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(n.sink.count(), 2);
    let view = n
        .service
        .announcement(c.tenant, announcement)
        .await
        .unwrap();
    assert_eq!((view.sent, view.queued, view.failed), (1, 0, 0));

    // One click on the unsubscribe link: cancelled, nothing more is sent.
    let t = unsubscribe
        .trim_start_matches("<https://ventanilla.test/notify/unsubscribe?t=")
        .trim_end_matches('>');
    n.service.unsubscribe(t).await.unwrap();
    assert_eq!(n.status(&c, id).await, "cancelled");
    n.publish(&c, topic, "Despois da baixa").await;
    n.deliver().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(n.sink.count(), 2);
}

#[tokio::test]
async fn one_address_subscribed_to_two_topics_hears_an_announcement_about_both_once() {
    let n = Notify::new().await;
    let c = n.world.council("lugo").await;
    let (a, b) = (n.topic(&c, "Obras").await, n.topic(&c, "Tráfico").await);
    let first = n.subscribe_email(&c, a, "vecina@correo.es", false).await;
    let second = n.subscribe_email(&c, b, "vecina@correo.es", false).await;
    assert_ne!(first, second);
    // Asking again for the same thing gives the same subscription.
    assert_eq!(
        n.subscribe_email(&c, a, "vecina@correo.es", false).await,
        first
    );
    n.deliver().await;
    let mails = n.sink.wait_for(2, Duration::from_secs(5)).await;
    for m in &mails {
        n.service.confirm(&token(m, "confirm")).await.unwrap();
    }
    n.service
        .publish(
            c.tenant,
            c.agent,
            &PublishRequest {
                title: "Corte na rúa Nova".into(),
                body: "Mañá de 8 a 14 h.".into(),
                topics: vec![a, b],
                ..PublishRequest::default()
            },
        )
        .await
        .unwrap();
    n.deliver().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mails = n.sink.received();
    assert_eq!(mails.len(), 3, "two confirmations and one announcement");
    // The manage link lists both and cancels one.
    let manage = token(&mails[2], "manage");
    let (_, listed) = n.service.manage(&manage).await.unwrap();
    assert_eq!(listed.len(), 2);
    n.service.cancel_from_manage(&manage, first).await.unwrap();
    assert_eq!(n.status(&c, first).await, "cancelled");
    assert_eq!(n.status(&c, second).await, "active");
    // Another council's manage link does not reach these.
    let other = n.world.council("vigo").await;
    let topic = n.topic(&other, "Obras").await;
    n.subscribe_email(&other, topic, "vecina@correo.es", false)
        .await;
    n.deliver().await;
    let mails = n.sink.wait_for(4, Duration::from_secs(5)).await;
    let vigo_confirm = token(&mails[3], "confirm");
    let e = n
        .service
        .cancel_from_manage(&vigo_confirm, second)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND");
}

#[tokio::test]
async fn a_daily_digest_groups_the_day_and_case_updates_reach_case_subscribers() {
    let n = Notify::new().await;
    let c = n.world.council("lugo").await;
    let topic = n.topic(&c, "Cultura").await;
    let id = n
        .subscribe_email(&c, topic, "lectora@correo.es", true)
        .await;
    n.deliver().await;
    let confirm = token(
        &n.sink.wait_for(1, Duration::from_secs(5)).await[0],
        "confirm",
    );
    n.service.confirm(&confirm).await.unwrap();
    n.publish(&c, topic, "Concerto no parque").await;
    n.publish(&c, topic, "Feira do libro").await;
    n.deliver().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        n.sink.count(),
        1,
        "digest subscribers are not told one by one"
    );
    assert_eq!(n.outbox("digest").await, 2);
    // Not before the digest hour; then one message with both.
    assert_eq!(n.worker.queue_digests(Utc::now()).await.unwrap(), 0);
    let later = Utc::now() + chrono::Duration::hours(25);
    assert_eq!(n.worker.queue_digests(later).await.unwrap(), 1);
    assert_eq!(
        n.worker.queue_digests(later).await.unwrap(),
        0,
        "folded once"
    );
    n.worker.tick(later).await.unwrap();
    let mails = n.sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(subject(&mails[1]), "Resumo de Concello de lugo: 2 avisos");
    let body = text(&mails[1]);
    assert!(
        body.contains("Concerto no parque") && body.contains("Feira do libro"),
        "{body}"
    );
    assert_eq!(n.status(&c, id).await, "active");

    // A case followed by e-mail: the reply and the resolution are told.
    let opened = n.world.question(&c, "Farola fundida").await;
    let case = n
        .service
        .subscribe(
            c.tenant,
            &Origin::Web,
            &SubscribeRequest {
                target: TargetRequest::Case {
                    reference: opened.reference.clone(),
                    tracking_token: opened.tracking_token.clone(),
                },
                via: ViaRequest::Email("vecina@correo.es".into()),
                language: Some("es".into()),
                daily_digest: false,
            },
        )
        .await
        .unwrap();
    n.deliver().await;
    let mails = n.sink.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(
        subject(&mails[2]),
        format!("Confirma tu suscripción: {}", opened.reference)
    );
    n.service
        .confirm(&token(&mails[2], "confirm"))
        .await
        .unwrap();
    n.world
        .tickets
        .reply(
            c.tenant,
            c.agent,
            opened.id,
            &ReplyRequest {
                body: "Mañana pasa la brigada.".into(),
                ..ReplyRequest::default()
            },
        )
        .await
        .unwrap();
    n.world
        .tickets
        .resolve(c.tenant, c.agent, opened.id)
        .await
        .unwrap();
    n.deliver().await;
    let mails = n.sink.wait_for(5, Duration::from_secs(5)).await;
    let subjects: Vec<String> = mails[3..].iter().map(subject).collect();
    assert!(
        subjects.contains(&format!("Respuesta a tu consulta {}", opened.reference)),
        "{subjects:?}"
    );
    assert!(
        subjects.contains(&format!("Tu consulta {} está resuelta", opened.reference)),
        "{subjects:?}"
    );
    assert_eq!(n.status(&c, case.id).await, "active");
}

#[tokio::test]
async fn a_bounced_address_ends_its_subscription_and_a_refusal_for_now_is_retried() {
    let n = Notify::new().await;
    let c = n.world.council("lugo").await;
    let topic = n.topic(&c, "Obras").await;
    let bounced = n
        .subscribe_email(&c, topic, "bounce@correo.es", false)
        .await;
    let later = n.subscribe_email(&c, topic, "later@correo.es", false).await;
    n.deliver().await;
    assert_eq!(n.status(&c, bounced).await, "bounced");
    assert_eq!(n.outbox("failed").await, 1);
    // 451 on the first try: retried, not before its backoff.
    assert_eq!(n.sink.count(), 0);
    assert_eq!(n.outbox("pending").await, 1);
    n.worker.drain().await.unwrap();
    assert_eq!(n.sink.count(), 0, "not before the backoff");
    n.worker
        .tick(Utc::now() + chrono::Duration::minutes(2))
        .await
        .unwrap();
    let mails = n.sink.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mails[0].to, vec!["later@correo.es".to_owned()]);
    assert_eq!(n.status(&c, later).await, "pending");
    // Nothing else is queued for the bounced address.
    n.service
        .confirm(&token(&mails[0], "confirm"))
        .await
        .unwrap();
    n.publish(&c, topic, "Obras na praza").await;
    n.deliver().await;
    let mails = n.sink.wait_for(2, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 2);
    assert_eq!(mails[1].to, vec!["later@correo.es".to_owned()]);
}

/// A local integrator's endpoint: records what it receives, answers with
/// the status it is told to.
#[derive(Clone, Default)]
struct Endpoint {
    received: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    status: Arc<Mutex<u16>>,
}

impl Endpoint {
    async fn start(&self) -> String {
        *self.status.lock().unwrap() = 200;
        let me = self.clone();
        let app = axum::Router::new().route(
            "/hooks",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let me = me.clone();
                async move {
                    me.received.lock().unwrap().push((headers, body));
                    StatusCode::from_u16(*me.status.lock().unwrap()).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{addr}/hooks")
    }
}

#[tokio::test]
async fn webhook_subscribers_get_signed_notifications_and_are_disabled_after_failing_ten_times() {
    let n = Notify::new().await;
    let c = n.world.council("lugo").await;
    let endpoint = Endpoint::default();
    let url = endpoint.start().await;
    let opened = n.world.question(&c, "Bache").await;
    let subscribed = n
        .service
        .subscribe(
            c.tenant,
            &Origin::Api {
                key: Uuid::new_v4(),
            },
            &SubscribeRequest {
                target: TargetRequest::Case {
                    reference: opened.reference.clone(),
                    tracking_token: opened.tracking_token.clone(),
                },
                via: ViaRequest::Webhook(url.clone()),
                language: None,
                daily_digest: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(subscribed.status, "active");
    let secret =
        ventanilla_webhooks::parse_secret(subscribed.webhook_secret.as_deref().unwrap()).unwrap();
    let reply = |body: &'static str| {
        let n = &n;
        let c = &c;
        let id: TicketId = opened.id;
        async move {
            n.world
                .tickets
                .reply(
                    c.tenant,
                    c.agent,
                    id,
                    &ReplyRequest {
                        body: body.into(),
                        ..ReplyRequest::default()
                    },
                )
                .await
                .unwrap();
        }
    };
    reply("Lo revisamos esta semana.").await;
    n.deliver().await;
    {
        let received = endpoint.received.lock().unwrap();
        assert_eq!(received.len(), 1);
        let (headers, body) = &received[0];
        let h = |name: &str| headers.get(name).unwrap().to_str().unwrap().to_owned();
        ventanilla_webhooks::verify(
            &secret,
            &h("webhook-id"),
            &h("webhook-timestamp"),
            body,
            &h("webhook-signature"),
            Utc::now().timestamp(),
            300,
        )
        .unwrap();
        let json: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(json["type"], "case.replied");
        assert_eq!(json["data"]["body"], "Lo revisamos esta semana.");
        assert_eq!(json["data"]["reference"], opened.reference.as_str());
        assert_eq!(json["id"].as_str().unwrap(), h("webhook-id"));
    }
    // The endpoint breaks: each failed attempt counts; after ten in a row
    // the subscription is disabled and nothing more is queued for it.
    *endpoint.status.lock().unwrap() = 503;
    reply("Primera").await;
    reply("Segunda").await;
    n.fan_out("notify:fanout").await;
    let mut at = Utc::now();
    for _ in 0..12 {
        n.worker.tick(at).await.unwrap();
        at += chrono::Duration::hours(2);
    }
    assert_eq!(n.status(&c, subscribed.id).await, "disabled");
    let attempts = endpoint.received.lock().unwrap().len();
    assert_eq!(attempts, 1 + 10, "ten failures, then disabled");
    reply("Tercera").await;
    n.deliver().await;
    n.worker
        .tick(at + chrono::Duration::hours(2))
        .await
        .unwrap();
    assert_eq!(endpoint.received.lock().unwrap().len(), attempts);
}

#[tokio::test]
async fn bad_input_is_refused_with_its_reason_and_nothing_is_stored() {
    let n = Notify::new().await;
    let c = n.world.council("lugo").await;
    let other = n.world.council("vigo").await;
    let topic = n.topic(&c, "Obras").await;
    let foreign_topic = n.topic(&other, "Obras").await;
    let opened = n.world.question(&c, "Por la web").await;
    let before = n.world.event_count().await;
    let subscribe = |target: TargetRequest, via: ViaRequest, origin: Origin| {
        let n = &n;
        let tenant = c.tenant;
        async move {
            n.service
                .subscribe(
                    tenant,
                    &origin,
                    &SubscribeRequest {
                        target,
                        via,
                        language: None,
                        daily_digest: false,
                    },
                )
                .await
                .unwrap_err()
        }
    };
    let api = Origin::Api {
        key: Uuid::new_v4(),
    };
    let e = subscribe(
        TargetRequest::Topic(topic),
        ViaRequest::Email("no es un correo".into()),
        Origin::Web,
    )
    .await;
    assert_eq!((e.code(), e.field()), ("VALIDATION", Some("email")));
    let e = subscribe(
        TargetRequest::Topic(Uuid::new_v4()),
        ViaRequest::Email("a@b.es".into()),
        Origin::Web,
    )
    .await;
    assert_eq!(e.code(), "NOT_FOUND");
    let e = subscribe(
        TargetRequest::Topic(foreign_topic),
        ViaRequest::Email("a@b.es".into()),
        Origin::Web,
    )
    .await;
    assert_eq!(e.code(), "NOT_FOUND", "another council's topic");
    let e = subscribe(
        TargetRequest::Case {
            reference: "LUGO-2026-000001".into(),
            tracking_token: Some("f".repeat(64)),
        },
        ViaRequest::Email("a@b.es".into()),
        Origin::Web,
    )
    .await;
    assert_eq!(e.code(), "NOT_FOUND");
    let e = subscribe(
        TargetRequest::Topic(topic),
        ViaRequest::Webhook("https://example.org/h".into()),
        Origin::Web,
    )
    .await;
    assert_eq!(e.code(), "FORBIDDEN", "webhooks are for API keys");
    let e = subscribe(
        TargetRequest::Topic(topic),
        ViaRequest::Webhook("ftp://example.org/h".into()),
        api.clone(),
    )
    .await;
    assert_eq!((e.code(), e.field()), ("VALIDATION", Some("url")));
    let e = subscribe(
        TargetRequest::Topic(topic),
        ViaRequest::Social {
            channel: "x".into(),
            handle: "@vecina".into(),
        },
        Origin::Web,
    )
    .await;
    assert_eq!(
        e.code(),
        "FORBIDDEN",
        "a portal form cannot name someone's account"
    );
    let e = subscribe(
        TargetRequest::Topic(topic),
        ViaRequest::Social {
            channel: "web".into(),
            handle: "x".into(),
        },
        api.clone(),
    )
    .await;
    assert_eq!((e.code(), e.field()), ("VALIDATION", Some("channel")));
    let e = subscribe(
        TargetRequest::Topic(topic),
        ViaRequest::Social {
            channel: "x".into(),
            handle: String::new(),
        },
        api.clone(),
    )
    .await;
    assert_eq!((e.code(), e.field()), ("VALIDATION", Some("handle")));
    let e = subscribe(
        TargetRequest::Case {
            reference: opened.reference.clone(),
            tracking_token: opened.tracking_token.clone(),
        },
        ViaRequest::Social {
            channel: "x".into(),
            handle: "@vecina".into(),
        },
        Origin::Web,
    )
    .await;
    assert_eq!(
        (e.code(), e.field()),
        ("VALIDATION", Some("channel")),
        "the case came on the web"
    );
    let e = subscribe(
        TargetRequest::Case {
            reference: opened.reference.clone(),
            tracking_token: None,
        },
        ViaRequest::Email("a@b.es".into()),
        Origin::Web,
    )
    .await;
    assert_eq!(
        (e.code(), e.field()),
        ("VALIDATION", Some("tracking_token"))
    );
    // Production policy: loopback and private addresses are refused.
    let production = Notifications::new(Arc::clone(&n.world.log), config(false));
    for url in [
        "http://127.0.0.1:9/h",
        "http://localhost/h",
        "http://10.0.0.7/h",
        "http://169.254.169.254/latest",
    ] {
        let e = production
            .subscribe(
                c.tenant,
                &api,
                &SubscribeRequest {
                    target: TargetRequest::Topic(topic),
                    via: ViaRequest::Webhook(url.into()),
                    language: None,
                    daily_digest: false,
                },
            )
            .await
            .unwrap_err();
        assert_eq!((e.code(), e.field()), ("VALIDATION", Some("url")), "{url}");
    }
    // Announcements: unknown topic, another council's topic, unknown
    // account, someone who is not staff.
    for (topics, accounts) in [
        (vec![Uuid::new_v4()], vec![]),
        (vec![foreign_topic], vec![]),
        (vec![topic], vec![Uuid::new_v4()]),
    ] {
        let e = n
            .service
            .publish(
                c.tenant,
                c.agent,
                &PublishRequest {
                    title: "T".into(),
                    body: "B".into(),
                    topics,
                    accounts,
                    ..PublishRequest::default()
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND");
    }
    let e = n
        .service
        .publish(
            c.tenant,
            other.agent,
            &PublishRequest {
                title: "T".into(),
                body: "B".into(),
                topics: vec![topic],
                ..PublishRequest::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "FORBIDDEN");
    let e = n
        .service
        .publish(
            c.tenant,
            c.agent,
            &PublishRequest {
                title: " ".into(),
                body: "B".into(),
                topics: vec![topic],
                ..PublishRequest::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.field()), ("VALIDATION", Some("title")));
    // Forged, mistyped or wrong-purpose links.
    for t in ["", "abc", &"A".repeat(66)] {
        assert_eq!(n.service.confirm(t).await.unwrap_err().code(), "NOT_FOUND");
        assert_eq!(
            n.service.unsubscribe(t).await.unwrap_err().code(),
            "NOT_FOUND"
        );
        assert_eq!(n.service.manage(t).await.unwrap_err().code(), "NOT_FOUND");
    }
    assert_eq!(n.world.event_count().await, before, "nothing was stored");

    // An expired confirmation link, then the expiry timer.
    let mut short = config(true);
    short.confirm_for = chrono::Duration::seconds(-1);
    let short = Notifications::new(Arc::clone(&n.world.log), short);
    let id = short
        .subscribe(
            c.tenant,
            &Origin::Web,
            &SubscribeRequest {
                target: TargetRequest::Topic(topic),
                via: ViaRequest::Email("tarde@correo.es".into()),
                language: None,
                daily_digest: false,
            },
        )
        .await
        .unwrap()
        .id;
    n.deliver().await;
    let mails = n.sink.wait_for(1, Duration::from_secs(5)).await;
    let e = n
        .service
        .confirm(&token(&mails[0], "confirm"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "CONFLICT");
    assert!(e.to_string().contains("expired"), "{e}");
    // The confirm token does not unsubscribe (another purpose).
    assert_eq!(
        n.service
            .unsubscribe(&token(&mails[0], "confirm"))
            .await
            .unwrap_err()
            .code(),
        "NOT_FOUND"
    );
    n.settle().await;
    assert_eq!(n.service.expire_due(Utc::now()).await.unwrap(), 1);
    assert_eq!(n.status(&c, id).await, "expired");
}

#[tokio::test]
async fn the_citizens_pages_never_change_anything_on_get_and_one_click_post_unsubscribes() {
    let n = Notify::new().await;
    let c = n.world.council("lugo").await;
    let topic = n.topic(&c, "Obras").await;
    let id = n
        .subscribe_email(&c, topic, "vecina@correo.es", false)
        .await;
    n.deliver().await;
    let mail = n.sink.wait_for(1, Duration::from_secs(5)).await.remove(0);
    let confirm = token(&mail, "confirm");
    let app = ventanilla_tickets::notify::pages::router(n.service.clone());
    let call = |method: &str, uri: String, body: &'static str| {
        let app = app.clone();
        let request = axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(axum::body::Body::from(body))
            .unwrap();
        async move {
            let response = app.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    let (status, page) = call("GET", format!("/notify/confirm?t={confirm}"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("Obras") && page.contains("<form method=\"post\""),
        "{page}"
    );
    assert_eq!(n.status(&c, id).await, "pending", "a GET changes nothing");
    let (status, page) = call(
        "POST",
        "/notify/confirm".into(),
        Box::leak(format!("t={confirm}").into_boxed_str()),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Subscrición confirmada"), "{page}");
    assert_eq!(n.status(&c, id).await, "active");

    n.publish(&c, topic, "Aviso").await;
    n.deliver().await;
    let mail = n.sink.wait_for(2, Duration::from_secs(5)).await.remove(1);
    let unsubscribe = token(&mail, "unsubscribe");
    let (status, _) = call("GET", format!("/notify/unsubscribe?t={unsubscribe}"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(n.status(&c, id).await, "active");
    // RFC 8058: the mail program POSTs to the URL of the header.
    let (status, page) = call(
        "POST",
        format!("/notify/unsubscribe?t={unsubscribe}"),
        "List-Unsubscribe=One-Click",
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("xa non recibirás"), "{page}");
    assert_eq!(n.status(&c, id).await, "cancelled");
    // The manage page lists nothing active now; a forged link is a 404.
    let manage = token(&mail, "manage");
    let (status, page) = call("GET", format!("/notify/manage?t={manage}"), "").await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("Non tes subscricións activas."), "{page}");
    let (status, _) = call("GET", "/notify/manage?t=forged".into(), "").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = call("POST", "/notify/confirm".into(), "t=forged").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_notify_tables_keep_each_council_to_itself() {
    let n = Notify::new().await;
    let mut seeded = Vec::new();
    for slug in ["lugo", "vigo"] {
        let c = n.world.council(slug).await;
        let topic = n.topic(&c, "Obras").await;
        let id = n.subscribe_email(&c, topic, "vecina@correo.es", true).await;
        n.deliver().await;
        let mails = n.sink.received();
        n.service
            .confirm(&token(mails.last().unwrap(), "confirm"))
            .await
            .unwrap();
        let announcement = n.publish(&c, topic, "Aviso").await;
        n.deliver().await;
        seeded.push((c, id, announcement));
    }
    n.settle().await;
    let (a, b) = (&seeded[0], &seeded[1]);
    let wider = vec![
        r#"notify_outbox.log_reader_sees_all ["ventanilla_log_reader"]"#.to_owned(),
        r#"notify_outbox.worker_sees_all ["ventanilla_notify_worker"]"#.to_owned(),
        r#"notify_subscriptions.log_reader_sees_all ["ventanilla_log_reader"]"#.to_owned(),
        r#"notify_subscriptions.worker_sees_all ["ventanilla_notify_worker"]"#.to_owned(),
    ];
    let checked = ventanilla_testkit::isolation::tables_stay_in_scope(
        &n.world.db,
        "notify",
        &[
            "notify_announcements",
            "notify_contents",
            "notify_outbox",
            "notify_subscriptions",
        ],
        &wider,
        "the timers read ids across tenants (log reader); the worker's claim, a SECURITY DEFINER \
         function, runs as the NOLOGIN ventanilla_notify_worker",
        (a.0.tenant, "lugo"),
        (b.0.tenant, "vigo"),
    )
    .await;
    // The service in one council's name never finds the other's.
    for (me, other) in [(a, b), (b, a)] {
        let e = n
            .service
            .subscription(me.0.tenant, other.1)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND");
        let e = n
            .service
            .announcement(me.0.tenant, other.2)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND");
        assert_eq!(
            n.service
                .subscription(me.0.tenant, me.1)
                .await
                .unwrap()
                .status,
            "active"
        );
    }
    checked.unchanged(&n.world.db, "the service's reads").await;
    // The claim returns only what the worker needs, and PUBLIC cannot run
    // it.
    let public: bool = sqlx::query_scalar(
        "SELECT has_function_privilege('public', 'notify_claim(timestamptz, timestamptz, integer)', 'EXECUTE')",
    )
    .fetch_one(&n.world.db.admin)
    .await
    .unwrap();
    assert!(!public);
}
