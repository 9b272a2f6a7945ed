//! Bad input at the webhook endpoints: refused with the right status and
//! nothing stored; verification requests answered; unlinked accounts'
//! deliveries parked, not lost.

use chrono::Utc;
use ventanilla_social::fake::{meta as fake_meta, x as fake_x};

use crate::support::{APP_SECRET, CONSUMER_SECRET, PAGE_ID, VERIFY_TOKEN, World, X_USER_ID};

const MESSAGES: &str = "SELECT count(*) FROM events WHERE event_type = 'social.message_received'";

#[tokio::test]
async fn bad_signatures_bodies_and_tokens_are_refused_and_store_nothing() {
    let w = World::new().await;
    let c = w.council("vigo").await;
    let (page, page_url) = w.link_page(&c).await;
    let (_, x_url) = w.link_x(&c).await;
    let comment = fake_meta::feed_comment(
        PAGE_ID,
        &format!("{PAGE_ID}_1"),
        &format!("{PAGE_ID}_1_2"),
        "55",
        "Veciño",
        "Ola",
        "add",
        Utc::now().timestamp(),
    );
    let (body, good) = fake_meta::signed_webhook(APP_SECRET, &comment);
    let (_, forged) = fake_meta::signed_webhook("another-secret", &comment);

    let r = w
        .post(&page_url, "x-hub-signature-256", &forged, body.clone())
        .await;
    assert_eq!(r.status(), 401);
    let r = w
        .http
        .post(&page_url)
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "no signature at all");
    let (garbage, garbage_sig) =
        fake_meta::signed_webhook(APP_SECRET, &serde_json::json!({"object": "page"}));
    let r = w
        .post(&page_url, "x-hub-signature-256", &garbage_sig, garbage)
        .await;
    assert_eq!(r.status(), 400, "signed but malformed");
    let (other, other_sig) = fake_meta::signed_webhook(
        APP_SECRET,
        &serde_json::json!({"object": "user", "entry": []}),
    );
    let r = w
        .post(&page_url, "x-hub-signature-256", &other_sig, other)
        .await;
    assert_eq!(r.status(), 400, "an object type not handled");
    let huge = vec![b'x'; 3 * 1024 * 1024];
    let r = w.post(&page_url, "x-hub-signature-256", &good, huge).await;
    assert_eq!(r.status(), 413);
    let r = w
        .post(
            &format!("{}/webhooks/meta/{}", w.base, uuid::Uuid::new_v4()),
            "x-hub-signature-256",
            &good,
            body.clone(),
        )
        .await;
    assert_eq!(r.status(), 404);
    let (xbody, _) = fake_x::signed_webhook(
        CONSUMER_SECRET,
        &serde_json::json!({"for_user_id": X_USER_ID}),
    );
    let r = w
        .post(&x_url, "x-twitter-webhooks-signature", "sha256=AAAA", xbody)
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(w.count(MESSAGES).await, 0, "nothing stored");

    // Verification: Meta's challenge, X's CRC.
    let challenge = w
        .http
        .get(format!(
            "{page_url}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=1158201444"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(challenge.status(), 200);
    assert_eq!(challenge.text().await.unwrap(), "1158201444");
    let wrong = w
        .http
        .get(format!(
            "{page_url}?hub.mode=subscribe&hub.verify_token=nope&hub.challenge=1"
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    let crc = w
        .http
        .get(format!("{x_url}?crc_token=abc123"))
        .send()
        .await
        .unwrap();
    assert_eq!(crc.status(), 200);
    let answer = crc.bytes().await.unwrap();
    assert!(fake_x::crc_check(CONSUMER_SECRET, "abc123", &answer));

    // The good one is stored once; an unlinked account's delivery is parked.
    let r = w
        .post(&page_url, "x-hub-signature-256", &good, body.clone())
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(w.count(MESSAGES).await, 1);
    w.accounts.unlink(c.tenant, c.admin, page).await.unwrap();
    let r = w.post(&page_url, "x-hub-signature-256", &good, body).await;
    assert_eq!(r.status(), 200, "acknowledged");
    assert_eq!(w.count(MESSAGES).await, 1);
    assert_eq!(
        w.count("SELECT count(*) FROM social_parked").await,
        1,
        "parked, not lost"
    );
}

#[tokio::test]
async fn linking_is_for_admins_within_the_plan_and_credentials_never_show() {
    let w = World::new().await;
    let c = w.council("leon").await;
    let (page, _) = w.link_page(&c).await;
    let listed = w.accounts.list(c.tenant, c.agent).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].account_id, page.0);
    assert_eq!(listed[0].health["state"], "ok");
    let shown = serde_json::to_string(&listed).unwrap();
    for secret in [crate::support::PAGE_TOKEN, APP_SECRET, VERIFY_TOKEN] {
        assert!(!shown.contains(secret));
        let in_log = w
            .count(&format!(
                "SELECT count(*) FROM events WHERE data::text LIKE '%{secret}%'"
            ))
            .await;
        assert_eq!(in_log, 0, "{secret} must not be in the log");
        let in_table = w
            .count(&format!(
                "SELECT count(*) FROM social_credentials WHERE encode(ciphertext, 'escape') LIKE '%{secret}%'"
            ))
            .await;
        assert_eq!(in_table, 0, "{secret} must be encrypted at rest");
    }
    // An agent may not link; the free plan allows so many accounts.
    let e = w
        .accounts
        .link(
            c.tenant,
            c.agent,
            &ventanilla_social::accounts::LinkRequest {
                network: "x".into(),
                external_id: "1".into(),
                name: "x".into(),
                access_token: secrecy::SecretString::from("t"),
                signing_secret: secrecy::SecretString::from("s"),
                verify_token: None,
                human_agent: false,
                instance: None,
                handle: None,
                publish_to: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "FORBIDDEN");
    let mut linked = 1;
    let quota = loop {
        match w
            .accounts
            .link(
                c.tenant,
                c.admin,
                &ventanilla_social::accounts::LinkRequest {
                    network: "x".into(),
                    external_id: format!("{linked}"),
                    name: format!("@cuenta{linked}"),
                    access_token: secrecy::SecretString::from("t"),
                    signing_secret: secrecy::SecretString::from("s"),
                    verify_token: None,
                    human_agent: false,
                    instance: None,
                    handle: None,
                    publish_to: None,
                },
            )
            .await
        {
            Ok(_) => linked += 1,
            Err(e) => break e,
        }
        assert!(linked < 100, "no quota enforced");
    };
    assert_eq!(quota.code(), "QUOTA_EXCEEDED", "{quota}");
}
