//! Announcements posted to the linked accounts: one post per chosen
//! account, the platform ids recorded, and the comments they draw coming
//! back as conversations.

use chrono::Utc;
use ventanilla_social::fake::meta as fake_meta;
use ventanilla_social::publications::Publications;

use crate::support::{APP_SECRET, PAGE_ID, World};

#[tokio::test]
async fn an_announcement_goes_out_to_each_chosen_account_and_its_comments_come_back() {
    let w = World::new().await;
    let c = w.council("soria").await;
    let (page, page_url) = w.link_page(&c).await;
    let (x, _) = w.link_x(&c).await;
    let publications = Publications::new(w.accounts.clone(), std::sync::Arc::clone(&w.log));

    let before = w.count("SELECT count(*) FROM events").await;
    for (accounts, text, link, field) in [
        (vec![page.0], "  ", None, "text"),
        (vec![], "Hola", None, "accounts"),
        (vec![page.0], "Hola", Some("javascript:alert(1)"), "link"),
    ] {
        let e = publications
            .publish(c.tenant, c.agent, &accounts, text, link)
            .await
            .unwrap_err();
        assert_eq!(e.code(), "VALIDATION", "{field}: {e}");
        assert!(e.to_string().starts_with(field), "{e}");
    }
    let e = publications
        .publish(c.tenant, c.agent, &[uuid::Uuid::new_v4()], "Hola", None)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND");
    assert_eq!(
        w.count("SELECT count(*) FROM events").await,
        before,
        "refusals write nothing"
    );

    let id = publications
        .publish(
            c.tenant,
            c.agent,
            &[page.0, x.0],
            "Abre la inscripción de los campamentos de verano",
            Some("https://soria.example/campamentos"),
        )
        .await
        .unwrap();
    w.worker.tick(Utc::now()).await.unwrap();
    let posts = publications.show(c.tenant, id).await.unwrap();
    assert_eq!(posts.len(), 2);
    assert!(posts.iter().all(|p| p.state == "posted"), "{posts:?}");
    let feed = w
        .graph
        .requests()
        .into_iter()
        .find(|r| r.path.ends_with(&format!("/{PAGE_ID}/feed")))
        .expect("a page post");
    assert_eq!(
        feed.body.clone().unwrap()["link"],
        "https://soria.example/campamentos"
    );
    let tweet =
        w.x.requests()
            .into_iter()
            .find(|r| r.path == "/2/tweets")
            .expect("an X post");
    let text = tweet.body.unwrap()["text"].as_str().unwrap().to_owned();
    assert!(text.contains("campamentos") && text.contains("https://soria.example/campamentos"));
    // Posted once, whatever the ticks.
    w.worker.tick(Utc::now()).await.unwrap();
    assert_eq!(
        w.x.requests()
            .iter()
            .filter(|r| r.path == "/2/tweets")
            .count(),
        1
    );

    // A citizen comments on the page post: a conversation in the inbox,
    // threaded on the post.
    let post_id = posts
        .iter()
        .find(|p| p.account_id == page.0)
        .and_then(|p| p.platform_id.clone())
        .unwrap();
    let comment = fake_meta::feed_comment(
        PAGE_ID,
        &post_id,
        &format!("{post_id}_9"),
        "31337",
        "Madre de Alumno",
        "¿Hasta qué edad se pueden apuntar?",
        "add",
        Utc::now().timestamp(),
    );
    let (body, signature) = fake_meta::signed_webhook(APP_SECRET, &comment);
    assert_eq!(
        w.post(&page_url, "x-hub-signature-256", &signature, body)
            .await
            .status(),
        200
    );
    w.settle().await;
    let thread: String =
        sqlx::query_scalar("SELECT thread FROM social_messages WHERE author_id = '31337'")
            .fetch_one(&w.db.admin)
            .await
            .unwrap();
    assert_eq!(thread, post_id);
    assert_eq!(
        w.count("SELECT count(*) FROM tickets WHERE channel = 'facebook'")
            .await,
        1
    );
}
