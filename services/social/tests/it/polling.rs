//! X mentions read by polling: the cursor is durable and only moves after
//! the mentions up to it are recorded, so nothing is fetched twice, missed,
//! or stored twice when the same mention also arrives by webhook.

use ventanilla_social::fake::x as fake_x;
use ventanilla_social::polling::MentionPoller;

use crate::support::{CONSUMER_SECRET, World, X_USER_ID};

const MENTIONS: &str = "SELECT count(*) FROM events WHERE event_type = 'social.message_received'";

#[tokio::test]
async fn mentions_are_polled_once_with_a_durable_cursor() {
    let w = World::new().await;
    let c = w.council("zamora").await;
    let (account, x_url) = w.link_x(&c).await;
    let first: Vec<String> = (0..3)
        .map(|n| {
            w.x.push_mention(
                X_USER_ID,
                "777",
                "vecina",
                &format!("@concello aviso {n}"),
                None,
            )
        })
        .collect();
    let poller = || {
        MentionPoller::new(
            w.accounts.clone(),
            std::sync::Arc::clone(&w.log),
            &w.x.base_url,
            std::time::Duration::from_secs(60),
        )
        .unwrap()
    };
    assert_eq!(poller().poll(c.tenant, account).await.unwrap(), 3);
    assert_eq!(
        w.accounts
            .state(c.tenant, account)
            .await
            .unwrap()
            .since_id
            .as_deref(),
        first.last().map(String::as_str)
    );
    // A restart (a new poller) asks only for what is newer.
    assert_eq!(poller().poll(c.tenant, account).await.unwrap(), 0);
    let asked = w.x.requests();
    let last = asked
        .iter()
        .rev()
        .find(|r| r.path.ends_with("/mentions"))
        .unwrap();
    assert_eq!(
        last.query_param("since_id"),
        first.last().map(String::as_str)
    );

    // A new mention arrives by webhook and is then polled: stored once.
    let id =
        w.x.push_mention(X_USER_ID, "888", "otro", "@concello farola", None);
    let event = fake_x::mention_event(
        X_USER_ID,
        &id,
        "@concello farola",
        "888",
        "otro",
        None,
        1_767_225_600_000,
    );
    let (body, signature) = fake_x::signed_webhook(CONSUMER_SECRET, &event);
    assert_eq!(
        w.post(&x_url, "x-twitter-webhooks-signature", &signature, body)
            .await
            .status(),
        200
    );
    assert_eq!(w.count(MENTIONS).await, 4);
    assert_eq!(
        poller().poll(c.tenant, account).await.unwrap(),
        0,
        "already stored by the webhook"
    );
    assert_eq!(w.count(MENTIONS).await, 4);
    assert_eq!(
        w.accounts.state(c.tenant, account).await.unwrap().since_id,
        Some(id)
    );

    // The tickets: one per conversation.
    w.settle().await;
    let tickets = w
        .count("SELECT count(*) FROM tickets WHERE channel = 'x'")
        .await;
    assert_eq!(tickets, 4);

    // A rate limit degrades the account and moves nothing.
    w.x.fail_next(fake_x::Failure::RateLimited { reset_in_secs: 900 });
    w.x.push_mention(X_USER_ID, "999", "tercera", "@concello otra", None);
    assert!(poller().poll(c.tenant, account).await.is_err());
    w.caught_up().await;
    let listed = w.accounts.list(c.tenant, c.agent).await.unwrap();
    assert_eq!(
        listed[0].health["state"], "degraded",
        "{:?}",
        listed[0].health
    );
    assert_eq!(
        poller().poll(c.tenant, account).await.unwrap(),
        1,
        "read after the limit"
    );
}
