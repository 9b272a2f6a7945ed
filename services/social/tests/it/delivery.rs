//! The delivery machinery's failure paths, end to end with the fakes: a
//! reply queued by the outbound reactor, sent by the delivery worker at
//! chosen instants, its outcome read back on the ticket.
//!
//! - a temporary failure (a 5xx) is retried after the backoff, then sent;
//! - X's rate limit: retried exactly at the reset X announced, the account
//!   `degraded` until then and `ok` after the next success;
//! - an expired token: failed for good, the admin told to link again;
//! - Messenger's 24-hour window: failed without calling the network;
//! - a crash between sending and recording: never sent again;
//! - eight temporary failures: given up;
//! - an unlinked account: failed with a reason;
//! - the same `ticket.replied` delivered again: nothing queued, nothing sent
//!   twice.
//!
//! Each test counts the requests the fakes received: what the networks saw
//! is the point.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandRunner};
use ventanilla_kernel::Actor;
use ventanilla_social::fake::meta::{self as fake_meta, Failure as GraphFailure};
use ventanilla_social::fake::x::{self as fake_x, Failure as XFailure};
use ventanilla_social::outbound::{MAX_ATTEMPTS, MAX_BACKOFF};
use ventanilla_social_domain::account::AccountId;
use ventanilla_social_domain::delivery::{self, Delivery, DeliveryCommand};
use ventanilla_tickets_domain::ticket::{MessageId, TicketId};

use crate::support::{APP_SECRET, CONSUMER_SECRET, Council, PAGE_ID, World, X_USER_ID};

const STARTED: &str = "delivery.attempt_started";
const RETRY: &str = "delivery.retry_scheduled";
const SENT: &str = "delivery.sent";
const FAILED: &str = "delivery.failed";

/// The citizen's comment every Facebook test answers.
fn comment_id() -> String {
    format!("{PAGE_ID}_111_222")
}

/// A council with its Page linked and a citizen's comment on it turned
/// into a ticket.
async fn commented(w: &World, slug: &str) -> (Council, AccountId, TicketId) {
    let c = w.council(slug).await;
    let (page, url) = w.link_page(&c).await;
    let comment = fake_meta::feed_comment(
        PAGE_ID,
        &format!("{PAGE_ID}_111"),
        &comment_id(),
        "987654321",
        "Vecina Ejemplo",
        "La farola de la calle Mayor está fundida",
        "add",
        Utc::now().timestamp(),
    );
    let (body, signature) = fake_meta::signed_webhook(APP_SECRET, &comment);
    let r = w.post(&url, "x-hub-signature-256", &signature, body).await;
    assert_eq!(r.status(), 200);
    w.settle_all().await;
    let ticket = w.ticket_on(c.tenant, "facebook").await;
    (c, page, ticket)
}

/// The POSTs the fake Graph API received.
fn graph_posts(w: &World) -> Vec<ventanilla_social::fake::meta::Recorded> {
    w.graph
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

/// The POSTs the fake X API received.
fn x_posts(w: &World) -> Vec<ventanilla_social::fake::x::Recorded> {
    w.x.requests()
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect()
}

/// The types of a delivery stream's events.
fn types(events: &[(String, Value)]) -> Vec<&str> {
    events.iter().map(|(t, _)| t.as_str()).collect()
}

/// An instant written in an event or a health.
fn instant(v: &Value) -> DateTime<Utc> {
    serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{v}: {e}"))
}

/// Whether two instants are the same to the microsecond (PostgreSQL's
/// precision).
fn same_instant(a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    (a - b).num_microseconds().is_some_and(|d| d.abs() <= 1)
}

/// The delivery state and failure reason of a reply.
async fn outcome(
    w: &World,
    c: &Council,
    ticket: TicketId,
    reply: MessageId,
) -> (Option<String>, Option<String>) {
    let view = w.reply_view(c, ticket, reply).await;
    (view.delivery_state, view.failure_reason)
}

#[tokio::test]
async fn a_server_error_is_retried_after_the_backoff_and_then_sent() {
    let w = World::new().await;
    let (c, _, ticket) = commented(&w, "lugo").await;
    let reply = w
        .reply(&c, ticket, "Avisamos ao servizo de alumbrado.")
        .await;
    w.queue().await;
    assert_eq!(
        outcome(&w, &c, ticket, reply).await,
        (Some("pending".into()), None)
    );

    // The first attempt meets a 500.
    w.graph.fail_next(GraphFailure::ServerError);
    let first = Utc::now();
    assert_eq!(w.tick_at(first).await, 1);
    assert_eq!(
        outcome(&w, &c, ticket, reply).await,
        (Some("pending".into()), None),
        "a temporary failure is not shown as failed"
    );
    assert_eq!(graph_posts(&w).len(), 1);
    let q = w.queued(c.tenant, reply).await;
    assert_eq!((q.attempts, q.done), (1, false));
    let wait = q.next_attempt_at - first;
    assert!(
        wait >= Duration::milliseconds(999) && wait <= Duration::milliseconds(3001),
        "2 s ± 50 % after the first attempt, not {wait}"
    );
    let events = w.delivery_events(c.tenant, reply).await;
    assert_eq!(types(&events), [STARTED, RETRY]);
    let retry = &events[1].1;
    assert_eq!(retry["attempt"], 1);
    let reason = retry["reason"].as_str().unwrap();
    assert!(
        reason.contains("facebook is not answering properly"),
        "{reason}"
    );
    assert!(same_instant(instant(&retry["next_at"]), q.next_attempt_at));

    // Not due yet: nothing happens.
    assert_eq!(
        w.tick_at(q.next_attempt_at - Duration::milliseconds(1))
            .await,
        0
    );
    assert_eq!(graph_posts(&w).len(), 1);

    // Due: sent.
    assert_eq!(w.tick_at(q.next_attempt_at).await, 1);
    let view = w.reply_view(&c, ticket, reply).await;
    assert_eq!(view.delivery_state.as_deref(), Some("sent"), "{view:?}");
    assert!(view.delivery_platform_id.is_some(), "{view:?}");
    assert_eq!(view.failure_reason, None);
    let posts = graph_posts(&w);
    assert_eq!(posts.len(), 2, "{posts:?}");
    for p in &posts {
        assert!(
            p.path.ends_with(&format!("/{}/comments", comment_id())),
            "{}",
            p.path
        );
    }
    let q = w.queued(c.tenant, reply).await;
    assert_eq!((q.attempts, q.done), (2, true));
    assert_eq!(
        types(&w.delivery_events(c.tenant, reply).await),
        [STARTED, RETRY, STARTED, SENT]
    );

    // Nothing more, whenever.
    assert_eq!(w.tick_at(q.next_attempt_at + Duration::hours(2)).await, 0);
    assert_eq!(graph_posts(&w).len(), 2);
}

#[tokio::test]
async fn x_rate_limit_waits_for_the_reset_and_degrades_the_account_meanwhile() {
    let w = World::new().await;
    let c = w.council("ourense").await;
    let (account, url) = w.link_x(&c).await;
    let mention = fake_x::mention_event(
        X_USER_ID,
        "1800000000000000001",
        "@concello hay un bache enorme en la rúa Nova",
        "1205290247124217856",
        "pennbrooke1",
        None,
        Utc::now().timestamp_millis(),
    );
    let (body, signature) = fake_x::signed_webhook(CONSUMER_SECRET, &mention);
    let r = w
        .post(&url, "x-twitter-webhooks-signature", &signature, body)
        .await;
    assert_eq!(r.status(), 200);
    w.settle_all().await;
    let ticket = w.ticket_on(c.tenant, "x").await;
    let reply = w
        .reply(&c, ticket, "Gracias, lo revisa la brigada mañana.")
        .await;
    w.queue().await;

    const RESET_IN: i64 = 900;
    w.x.fail_next(XFailure::RateLimited {
        reset_in_secs: RESET_IN as u64,
    });
    let before = Utc::now();
    assert_eq!(w.tick_at(before).await, 1);
    let after = Utc::now();
    assert_eq!(x_posts(&w).len(), 1);
    assert_eq!(
        outcome(&w, &c, ticket, reply).await,
        (Some("pending".into()), None)
    );

    // The retry is due exactly when X said the limit lifts (whole seconds).
    let q = w.queued(c.tenant, reply).await;
    assert_eq!((q.attempts, q.done), (1, false));
    let reset = q.next_attempt_at;
    assert_eq!(reset.timestamp_subsec_nanos(), 0, "{reset}");
    assert!(
        reset.timestamp() >= before.timestamp() + RESET_IN
            && reset.timestamp() <= after.timestamp() + RESET_IN,
        "{reset} is not the reset announced {RESET_IN} s after {before}"
    );
    let events = w.delivery_events(c.tenant, reply).await;
    assert_eq!(types(&events), [STARTED, RETRY]);
    assert_eq!(instant(&events[1].1["next_at"]), reset);
    assert!(
        events[1].1["reason"]
            .as_str()
            .unwrap()
            .contains("rate limited by x"),
        "{}",
        events[1].1
    );

    // The account is degraded until then.
    let health = w.account(&c, account).await.health;
    assert_eq!(health["state"], "degraded", "{health}");
    assert_eq!(instant(&health["until"]), reset, "{health}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("rate limited by x"),
        "{health}"
    );

    // A second before the reset: still waiting.
    assert_eq!(w.tick_at(reset - Duration::seconds(1)).await, 0);
    assert_eq!(x_posts(&w).len(), 1);

    // At the reset: sent, and the account is well again.
    assert_eq!(w.tick_at(reset).await, 1);
    let view = w.reply_view(&c, ticket, reply).await;
    assert_eq!(view.delivery_state.as_deref(), Some("sent"), "{view:?}");
    let posts = x_posts(&w);
    assert_eq!(posts.len(), 2, "{posts:?}");
    for p in &posts {
        assert_eq!(p.path, "/2/tweets");
        assert_eq!(
            p.body.as_ref().unwrap()["reply"]["in_reply_to_tweet_id"],
            "1800000000000000001"
        );
    }
    let health = w.account(&c, account).await.health;
    assert_eq!(health["state"], "ok", "{health}");
    assert!(health.get("until").is_none_or(Value::is_null), "{health}");
    assert_eq!(
        types(&w.delivery_events(c.tenant, reply).await),
        [STARTED, RETRY, STARTED, SENT]
    );
}

#[tokio::test]
async fn an_expired_token_fails_the_reply_at_once_and_asks_to_link_again() {
    let w = World::new().await;
    let (c, page, ticket) = commented(&w, "vigo").await;
    let reply = w.reply(&c, ticket, "Xa está avisado o servizo.").await;
    w.queue().await;

    w.graph.fail_next(GraphFailure::TokenExpired);
    let now = Utc::now();
    assert_eq!(w.tick_at(now).await, 1);
    let (state, reason) = outcome(&w, &c, ticket, reply).await;
    assert_eq!(state.as_deref(), Some("failed"));
    let reason = reason.unwrap();
    assert!(
        reason.contains("token expired") && reason.contains("link the account again"),
        "{reason}"
    );
    // No retry: done after one attempt.
    let q = w.queued(c.tenant, reply).await;
    assert_eq!((q.attempts, q.done), (1, true));
    let events = w.delivery_events(c.tenant, reply).await;
    assert_eq!(types(&events), [STARTED, FAILED]);
    assert_eq!(events[1].1["reason"], reason.as_str());
    // The admin sees why on the account.
    let health = w.account(&c, page).await.health;
    assert_eq!(health["state"], "degraded", "{health}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("link the account again"),
        "{health}"
    );
    assert!(health.get("until").is_none_or(Value::is_null), "{health}");

    assert_eq!(w.tick_at(now + Duration::hours(2)).await, 0);
    assert_eq!(graph_posts(&w).len(), 1);
}

#[tokio::test]
async fn a_messenger_reply_outside_the_24_hour_window_fails_without_calling_meta() {
    let w = World::new().await;
    let c = w.council("pontevedra").await;
    let (page, url) = w.link_page(&c).await;
    let written = Utc::now() - Duration::days(3);
    let dm = fake_meta::messenger_message(
        PAGE_ID,
        "5550000001",
        "m_written_three_days_ago",
        "¿Cuándo abre el registro?",
        written.timestamp_millis(),
    );
    let (body, signature) = fake_meta::signed_webhook(APP_SECRET, &dm);
    let r = w.post(&url, "x-hub-signature-256", &signature, body).await;
    assert_eq!(r.status(), 200);
    w.settle_all().await;
    let late = w.ticket_on(c.tenant, "facebook").await;
    let reply = w.reply(&c, late, "Abre a las nueve.").await;
    w.settle_all().await;

    let (state, reason) = outcome(&w, &c, late, reply).await;
    assert_eq!(state.as_deref(), Some("failed"));
    let reason = reason.unwrap();
    assert!(
        reason.contains("more than 24 hours ago") && reason.contains("answer on another channel"),
        "{reason}"
    );
    assert!(w.graph.requests().is_empty(), "{:?}", w.graph.requests());
    assert_eq!(
        types(&w.delivery_events(c.tenant, reply).await),
        [STARTED, FAILED]
    );
    let q = w.queued(c.tenant, reply).await;
    assert_eq!((q.attempts, q.done), (1, true));
    assert_eq!(w.account(&c, page).await.health["state"], "ok");

    // Control: a citizen who wrote just now is answered on Messenger.
    let dm = fake_meta::messenger_message(
        PAGE_ID,
        "5550000002",
        "m_written_now",
        "¿Y el padrón?",
        Utc::now().timestamp_millis(),
    );
    let (body, signature) = fake_meta::signed_webhook(APP_SECRET, &dm);
    let r = w.post(&url, "x-hub-signature-256", &signature, body).await;
    assert_eq!(r.status(), 200);
    w.settle_all().await;
    let fresh: Uuid = sqlx::query_scalar(
        "SELECT ticket_id FROM tickets WHERE tenant_id = $1 AND ticket_id <> $2",
    )
    .bind(c.tenant.into_uuid())
    .bind(late.0)
    .fetch_one(&w.db.admin)
    .await
    .unwrap();
    let fresh = TicketId(fresh);
    let answer = w.reply(&c, fresh, "En la oficina 2.").await;
    w.settle_all().await;
    assert_eq!(
        outcome(&w, &c, fresh, answer).await,
        (Some("sent".into()), None)
    );
    let posts = graph_posts(&w);
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(
        posts[0].path.ends_with(&format!("/{PAGE_ID}/messages")),
        "{}",
        posts[0].path
    );
    let sent = posts[0].body.as_ref().unwrap();
    assert_eq!(sent["recipient"]["id"], "5550000002");
    assert_eq!(sent["messaging_type"], "RESPONSE");
}

#[tokio::test]
async fn an_attempt_interrupted_by_a_crash_is_never_sent_again() {
    let w = World::new().await;
    let (c, _, ticket) = commented(&w, "ferrol").await;
    let reply = w.reply(&c, ticket, "Mañana pasa la brigada.").await;
    w.queue().await;

    // A previous process recorded attempt 1, called Meta (or not) and died
    // before recording what Meta answered.
    CommandRunner::new(Arc::clone(&w.log), 3)
        .execute::<Delivery>(
            &CommandContext::new(c.tenant, Utc::now(), Actor::system("social-delivery")),
            &delivery::stream_id(reply.0).unwrap(),
            &DeliveryCommand::Start {
                ticket: ticket.0,
                message: reply.0,
                channel: "facebook".into(),
                attempt: 1,
            },
        )
        .await
        .unwrap();

    let now = Utc::now();
    assert_eq!(w.tick_at(now).await, 1);
    let (state, reason) = outcome(&w, &c, ticket, reply).await;
    assert_eq!(state.as_deref(), Some("failed"));
    let reason = reason.unwrap();
    assert!(
        reason.contains("interrupted")
            && reason.contains("not sent again")
            && reason.contains("check on facebook"),
        "{reason}"
    );
    assert!(w.graph.requests().is_empty(), "{:?}", w.graph.requests());
    assert_eq!(
        types(&w.delivery_events(c.tenant, reply).await),
        [STARTED, FAILED]
    );
    let q = w.queued(c.tenant, reply).await;
    assert!(q.done);

    assert_eq!(w.tick_at(now + Duration::hours(2)).await, 0);
    assert!(w.graph.requests().is_empty());
}

#[tokio::test]
async fn a_reply_that_keeps_failing_is_given_up_after_max_attempts() {
    assert_eq!(MAX_ATTEMPTS, 8);
    let w = World::new().await;
    let (c, _, ticket) = commented(&w, "monforte").await;
    let reply = w.reply(&c, ticket, "Lo revisamos.").await;
    w.queue().await;

    let mut now = Utc::now();
    for attempt in 1..=MAX_ATTEMPTS {
        let due = w.queued(c.tenant, reply).await.next_attempt_at;
        now = due.max(Utc::now());
        w.graph.fail_next(GraphFailure::ServerError);
        assert_eq!(w.tick_at(now).await, 1, "attempt {attempt}");
        assert_eq!(graph_posts(&w).len(), attempt as usize);
        let q = w.queued(c.tenant, reply).await;
        assert_eq!(q.attempts, attempt);
        let (state, reason) = outcome(&w, &c, ticket, reply).await;
        if attempt < MAX_ATTEMPTS {
            assert_eq!(state.as_deref(), Some("pending"), "attempt {attempt}");
            assert_eq!(reason, None);
            assert!(!q.done);
            let wait = q.next_attempt_at - now;
            let base = 2f64.powi(attempt);
            assert!(
                wait >= Duration::milliseconds((base * 500.0) as i64 - 1)
                    && wait <= Duration::milliseconds((base * 1500.0) as i64 + 1)
                    && wait <= MAX_BACKOFF,
                "attempt {attempt}: waits {wait}"
            );
        } else {
            assert_eq!(state.as_deref(), Some("failed"));
            let reason = reason.unwrap();
            assert!(
                reason.starts_with("gave up after 8 attempts")
                    && reason.contains("facebook is not answering properly"),
                "{reason}"
            );
            assert!(q.done);
        }
    }
    let events = w.delivery_events(c.tenant, reply).await;
    let count = |t: &str| events.iter().filter(|(e, _)| e == t).count();
    assert_eq!(count(STARTED), 8);
    assert_eq!(count(RETRY), 7);
    assert_eq!(count(FAILED), 1);
    assert_eq!(count(SENT), 0);
    assert_eq!(events.last().unwrap().0, FAILED);

    // Given up means given up.
    assert_eq!(w.tick_at(now + Duration::days(1)).await, 0);
    assert_eq!(graph_posts(&w).len(), 8);
}

/// The reason a reply given up on shows the agent must not promise another
/// try: the last error's own words ("…; it will be retried") are quoted
/// into it.
#[tokio::test]
async fn a_reply_given_up_on_does_not_say_it_will_be_retried() {
    let w = World::new().await;
    let (c, _, ticket) = commented(&w, "viveiro").await;
    let reply = w.reply(&c, ticket, "Lo revisamos.").await;
    w.queue().await;
    for _ in 0..MAX_ATTEMPTS {
        let due = w.queued(c.tenant, reply).await.next_attempt_at;
        w.graph.fail_next(GraphFailure::ServerError);
        w.tick_at(due.max(Utc::now())).await;
    }
    let (state, reason) = outcome(&w, &c, ticket, reply).await;
    assert_eq!(state.as_deref(), Some("failed"));
    let reason = reason.unwrap();
    assert!(reason.starts_with("gave up after 8 attempts"), "{reason}");
    assert!(
        !reason.contains("will be retried"),
        "a reply failed for good tells the agent it will be retried: {reason}"
    );
}

#[tokio::test]
async fn a_reply_on_an_unlinked_account_fails_with_a_reason() {
    let w = World::new().await;
    let (c, page, ticket) = commented(&w, "lalin").await;

    // One reply is waiting for a retry when the account is unlinked; another
    // is written after.
    let waiting = w.reply(&c, ticket, "Primera respuesta.").await;
    w.queue().await;
    w.graph.fail_next(GraphFailure::ServerError);
    assert_eq!(w.tick_at(Utc::now()).await, 1);
    assert_eq!(graph_posts(&w).len(), 1);
    let due = w.queued(c.tenant, waiting).await.next_attempt_at;

    w.accounts.unlink(c.tenant, c.admin, page).await.unwrap();
    let later = w.reply(&c, ticket, "Segunda respuesta.").await;
    w.queue().await;
    // Both are due by then (on a loaded machine the second may have been
    // queued after the first's retry time).
    assert_eq!(w.tick_at(due.max(Utc::now())).await, 2);

    for reply in [waiting, later] {
        let (state, reason) = outcome(&w, &c, ticket, reply).await;
        assert_eq!(state.as_deref(), Some("failed"));
        let reason = reason.unwrap();
        assert!(
            reason.contains("facebook account")
                && reason.contains("was unlinked")
                && reason.contains("reply on another channel"),
            "{reason}"
        );
        assert!(w.queued(c.tenant, reply).await.done);
        assert_eq!(
            w.delivery_events(c.tenant, reply).await.last().unwrap().0,
            FAILED
        );
    }
    assert_eq!(graph_posts(&w).len(), 1, "nothing sent after the unlink");
}

#[tokio::test]
async fn a_redelivered_reply_is_queued_once_and_sent_once() {
    let w = World::new().await;
    let (c, _, ticket) = commented(&w, "betanzos").await;
    let reply = w.reply(&c, ticket, "Gracias por avisar.").await;
    w.queue().await;
    let rows = |w: &World| {
        let tenant = c.tenant.into_uuid();
        let db = w.db.admin.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM social_deliveries WHERE tenant_id = $1",
            )
            .bind(tenant)
            .fetch_one(&db)
            .await
            .unwrap()
        }
    };
    assert_eq!(rows(&w).await, 1);
    let pending = w.queued(c.tenant, reply).await;

    // The same ticket.replied, read again by another subscription while the
    // reply waits: nothing new.
    w.drain_all("social:outbound-replay", w.outbound()).await;
    assert_eq!(rows(&w).await, 1);
    assert_eq!(w.queued(c.tenant, reply).await, pending);

    let now = Utc::now();
    assert_eq!(w.tick_at(now).await, 1);
    assert_eq!(
        outcome(&w, &c, ticket, reply).await.0.as_deref(),
        Some("sent")
    );
    let sent = w.queued(c.tenant, reply).await;
    assert_eq!((sent.attempts, sent.done), (1, true));

    // And again once it was sent: not queued again, not sent again.
    w.drain_all("social:outbound-replay-after-sent", w.outbound())
        .await;
    assert_eq!(rows(&w).await, 1);
    assert_eq!(w.queued(c.tenant, reply).await, sent);
    assert_eq!(w.tick_at(now + Duration::hours(1)).await, 0);
    w.settle_all().await;
    assert_eq!(graph_posts(&w).len(), 1);
    assert_eq!(
        types(&w.delivery_events(c.tenant, reply).await),
        [STARTED, SENT]
    );
    assert_eq!(
        outcome(&w, &c, ticket, reply).await.0.as_deref(),
        Some("sent")
    );
}

#[tokio::test]
async fn a_page_near_its_call_budget_is_degraded_though_the_reply_went_out() {
    let w = World::new().await;
    let (c, page, ticket) = commented(&w, "lalin").await;
    let reply = w.reply(&c, ticket, "Grazas, xa o revisamos.").await;
    w.queue().await;
    w.graph.report_usage(Some(95));
    assert_eq!(w.tick_at(Utc::now()).await, 1);
    let (state, _) = outcome(&w, &c, ticket, reply).await;
    assert_eq!(state.as_deref(), Some("sent"));
    let health = w.account(&c, page).await.health;
    assert_eq!(health["state"], "degraded", "{health}");
    assert!(
        health["reason"]
            .as_str()
            .unwrap()
            .contains("95% of the call budget"),
        "{health}"
    );
    // Back under the budget: the next send makes it healthy again.
    w.graph.report_usage(Some(20));
    let again = w.reply(&c, ticket, "E mañá pasa a brigada.").await;
    w.queue().await;
    assert_eq!(w.tick_at(Utc::now()).await, 1);
    assert_eq!(
        outcome(&w, &c, ticket, again).await.0.as_deref(),
        Some("sent")
    );
    assert_eq!(w.account(&c, page).await.health["state"], "ok");
}
