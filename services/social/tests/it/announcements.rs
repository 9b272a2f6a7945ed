//! The council's announcements posted on the accounts they name: the
//! tickets service's `announcement.published` (written here as the tickets
//! service writes it, with the `Announcement` decider) is read by the
//! outbound reactor, which records the publication and queues its posts;
//! the delivery worker posts them on the fakes. Once per account, whatever
//! the redeliveries; never on an unlinked account or another council's.

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, EventLog, Executed};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_social::announcements::publication_id;
use ventanilla_social::fake::meta::Recorded as GraphRequest;
use ventanilla_social::outbound::SUBSCRIPTION;
use ventanilla_social::publications::{NOT_LINKED, PostView, Publications, UNLINKED};
use ventanilla_social::x::weighted_length;
use ventanilla_social_domain::account::AccountId;
use ventanilla_tickets_domain::announcement::{self, Announcement, AnnouncementId, Publish};
use ventanilla_tickets_domain::subscription::TopicId;
use ventanilla_tickets_domain::values::AgentId;

use crate::support::{Council, PAGE_ID, PAGE_TOKEN, World};

const TITLE: &str = "Corte de auga na rúa Nova o martes";
const BODY: &str = "Informámoslle de que o próximo martes, de 9 a 14 horas, haberá un corte \
                    de subministración de auga na rúa Nova, na praza Maior e nas rúas \
                    próximas, por mor das obras de renovación da rede. Pedimos desculpas \
                    polas molestias e agradecemos a súa comprensión.";
const LINK: &str = "https://ourense.example/avisos/corte-de-auga-rua-nova";
const IMAGE: &str = "https://ourense.example/avisos/corte-de-auga.jpg";

/// What the tickets service publishes: the announcement `id` of `c` on
/// `accounts`, by its agent, idempotent under the announcement's id.
fn publish(c: &Council, accounts: &[AccountId], image_url: Option<&str>) -> Publish {
    Publish {
        title: TITLE.into(),
        body: BODY.into(),
        link: Some(LINK.into()),
        image_url: image_url.map(str::to_owned),
        topics: vec![TopicId(Uuid::new_v4())],
        language: "gl".into(),
        accounts: accounts.iter().map(|a| a.0).collect(),
        by: AgentId(c.agent.0),
        all_known: true,
    }
}

async fn announce_as(
    w: &World,
    c: &Council,
    id: AnnouncementId,
    p: &Publish,
) -> Executed<Announcement> {
    let ctx = CommandContext::new(
        c.tenant,
        Utc::now(),
        Actor::Staff {
            id: c.agent.to_string(),
        },
    )
    .with_idempotency_key(id.0);
    w.runner()
        .execute::<Announcement>(&ctx, &announcement::stream_id(id).unwrap(), p)
        .await
        .unwrap()
}

async fn announce(w: &World, c: &Council, p: &Publish) -> AnnouncementId {
    let id = AnnouncementId(Uuid::new_v4());
    let done = announce_as(w, c, id, p).await;
    assert_eq!(done.events.len(), 1);
    id
}

/// The outbound reactor reads everything written so far, then the worker
/// sends what is due.
async fn deliver(w: &World) {
    w.drain_all(SUBSCRIPTION, w.outbound()).await;
    w.worker.tick(Utc::now()).await.unwrap();
}

async fn posts(w: &World, tenant: TenantId, id: AnnouncementId) -> Vec<PostView> {
    Publications::new(w.accounts.clone(), Arc::clone(&w.log))
        .show(tenant, publication_id(id.0))
        .await
        .unwrap()
}

fn post_on(posts: &[PostView], account: AccountId) -> &PostView {
    posts
        .iter()
        .find(|p| p.account_id == account.0)
        .unwrap_or_else(|| panic!("no post on {}: {posts:?}", account.0))
}

fn graph_posts(w: &World) -> Vec<GraphRequest> {
    w.graph
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/feed") || r.path.ends_with("/photos"))
        .collect()
}

fn tweets(w: &World) -> Vec<String> {
    w.x.requests()
        .into_iter()
        .filter(|r| r.path == "/2/tweets")
        .map(|r| r.body.unwrap()["text"].as_str().unwrap().to_owned())
        .collect()
}

async fn publication_events(w: &World, tenant: TenantId, id: AnnouncementId) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT event_type FROM events WHERE tenant_id = $1 AND stream_id = $2 \
         ORDER BY stream_version",
    )
    .bind(tenant.into_uuid())
    .bind(format!("publication-{}", publication_id(id.0)))
    .fetch_all(&w.db.admin)
    .await
    .unwrap()
}

async fn queued_rows(w: &World, tenant: TenantId) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM social_deliveries WHERE tenant_id = $1")
        .bind(tenant.into_uuid())
        .fetch_one(&w.db.admin)
        .await
        .unwrap()
}

#[tokio::test]
async fn an_announcement_is_posted_once_on_each_account_it_names() {
    let w = World::new().await;
    let c = w.council("ourense").await;
    let (page, _) = w.link_page(&c).await;
    let (x, _) = w.link_x(&c).await;
    let p = publish(&c, &[page, x], None);
    let id = announce(&w, &c, &p).await;
    deliver(&w).await;

    // Facebook: title, blank line, body; the link as the post's link.
    let feed = graph_posts(&w);
    assert_eq!(feed.len(), 1, "{feed:?}");
    assert_eq!(feed[0].path, format!("/v25.0/{PAGE_ID}/feed"));
    let body = feed[0].body.clone().unwrap();
    assert_eq!(body["message"], format!("{TITLE}\n\n{BODY}"));
    assert_eq!(body["link"], LINK);
    assert_eq!(
        feed[0].authorization.as_deref(),
        Some(format!("Bearer {PAGE_TOKEN}").as_str())
    );

    // X: within 280 as X counts, the body cut at a word, the link last.
    let sent = tweets(&w);
    assert_eq!(sent.len(), 1);
    let tweet = &sent[0];
    assert!(weighted_length(tweet) <= 280, "{tweet}");
    assert!(
        tweet.starts_with(&format!("{TITLE}\n\nInformámoslle")),
        "{tweet}"
    );
    assert!(tweet.ends_with(&format!("…\n\n{LINK}")), "{tweet}");

    // Both posted, with the networks' ids.
    let shown = posts(&w, c.tenant, id).await;
    assert_eq!(shown.len(), 2);
    assert!(shown.iter().all(|p| p.state == "posted"), "{shown:?}");
    let on_page = post_on(&shown, page).platform_id.clone().unwrap();
    assert!(on_page.starts_with(&format!("{PAGE_ID}_")), "{on_page}");
    assert!(post_on(&shown, x).platform_id.is_some());
    let recorded = publication_events(&w, c.tenant, id).await;
    assert_eq!(recorded.len(), 5, "{recorded:?}");

    // Published again with the same key (the tickets service retrying): a
    // no-op on the announcement.
    let before = w.event_count().await;
    let again = announce_as(&w, &c, id, &p).await;
    assert!(again.replayed);
    assert_eq!(w.event_count().await, before);

    // The same event read again (a replayed subscription): nothing new
    // recorded, queued or posted.
    w.drain_all("social:outbound-replay", w.outbound()).await;
    deliver(&w).await;
    w.worker.tick(Utc::now()).await.unwrap();
    assert_eq!(graph_posts(&w).len(), 1);
    assert_eq!(tweets(&w).len(), 1);
    assert_eq!(publication_events(&w, c.tenant, id).await, recorded);
    assert_eq!(queued_rows(&w, c.tenant).await, 2);
    assert_eq!(posts(&w, c.tenant, id).await, shown);
}

#[tokio::test]
async fn a_crash_before_the_checkpoint_queues_the_posts_on_redelivery() {
    let w = World::new().await;
    let c = w.council("ferrol").await;
    let (page, _) = w.link_page(&c).await;
    let (x, _) = w.link_x(&c).await;
    let id = announce(&w, &c, &publish(&c, &[page, x], None)).await;

    // The reactor handles the event, then its transaction is lost before
    // the checkpoint commits: the request was recorded, nothing queued.
    let mut events = w
        .log
        .read_stream(c.tenant, &announcement::stream_id(id).unwrap(), 0, 10)
        .await
        .unwrap();
    let reactor = w.outbound();
    let mut tx = w.db.app.begin().await.unwrap();
    ventanilla_postgres::subscription::apply_runs(reactor.as_ref(), &mut tx, &mut events)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    assert_eq!(queued_rows(&w, c.tenant).await, 0);
    let pending = posts(&w, c.tenant, id).await;
    assert!(pending.iter().all(|p| p.state == "pending"), "{pending:?}");

    // Redelivered: recorded once, queued and posted once per account.
    deliver(&w).await;
    let shown = posts(&w, c.tenant, id).await;
    assert!(shown.iter().all(|p| p.state == "posted"), "{shown:?}");
    assert_eq!(
        publication_events(&w, c.tenant, id).await,
        [
            "publication.requested",
            "publication.post_started",
            "publication.posted",
            "publication.post_started",
            "publication.posted"
        ]
    );
    assert_eq!(graph_posts(&w).len(), 1);
    assert_eq!(tweets(&w).len(), 1);
}

#[tokio::test]
async fn with_an_image_the_page_gets_a_photo_post_and_x_the_text() {
    let w = World::new().await;
    let c = w.council("lalin").await;
    let (page, _) = w.link_page(&c).await;
    let (x, _) = w.link_x(&c).await;
    let id = announce(&w, &c, &publish(&c, &[page, x], Some(IMAGE))).await;
    deliver(&w).await;

    let photos = graph_posts(&w);
    assert_eq!(photos.len(), 1, "{photos:?}");
    assert_eq!(photos[0].path, format!("/v25.0/{PAGE_ID}/photos"));
    let body = photos[0].body.clone().unwrap();
    assert_eq!(body["url"], IMAGE);
    assert_eq!(body["caption"], format!("{TITLE}\n\n{BODY}\n\n{LINK}"));
    assert!(body.get("link").is_none(), "{body}");

    let tweet =
        w.x.requests()
            .into_iter()
            .find(|r| r.path == "/2/tweets")
            .unwrap();
    let tweet = tweet.body.unwrap();
    assert_eq!(
        tweet.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["text"],
        "no media on X: {tweet}"
    );

    let shown = posts(&w, c.tenant, id).await;
    assert!(shown.iter().all(|p| p.state == "posted"), "{shown:?}");
    // The photo's post id: comments on the post name it.
    let on_page = post_on(&shown, page).platform_id.clone().unwrap();
    assert!(on_page.starts_with(&format!("{PAGE_ID}_")), "{on_page}");
}

#[tokio::test]
async fn an_unlinked_account_gets_a_failed_post_and_the_others_go_out() {
    let w = World::new().await;
    let c = w.council("vigo").await;
    let (page, _) = w.link_page(&c).await;
    let (x, _) = w.link_x(&c).await;
    w.accounts.unlink(c.tenant, c.admin, x).await.unwrap();
    let id = announce(&w, &c, &publish(&c, &[page, x], None)).await;
    deliver(&w).await;

    let shown = posts(&w, c.tenant, id).await;
    assert_eq!(post_on(&shown, page).state, "posted");
    let on_x = post_on(&shown, x);
    assert_eq!(on_x.state, "failed");
    assert_eq!(on_x.reason.as_deref(), Some(UNLINKED));
    assert_eq!(graph_posts(&w).len(), 1);
    assert!(tweets(&w).is_empty());
    assert_eq!(queued_rows(&w, c.tenant).await, 1, "only the page's post");
}

#[tokio::test]
async fn an_announcement_without_accounts_queues_nothing() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    w.link_page(&c).await;
    w.link_x(&c).await;
    let id = announce(&w, &c, &publish(&c, &[], None)).await;
    deliver(&w).await;

    assert_eq!(queued_rows(&w, c.tenant).await, 0);
    assert!(publication_events(&w, c.tenant, id).await.is_empty());
    assert!(graph_posts(&w).is_empty());
    assert!(tweets(&w).is_empty());
}

#[tokio::test]
async fn an_announcement_never_posts_on_another_councils_accounts() {
    let w = World::new().await;
    let a = w.council("pontevedra").await;
    let b = w.council("monforte").await;
    let (a_page, _) = w.link_page(&a).await;
    let (b_page, _) = w
        .link_page_with(
            &b,
            "5550001",
            "EAAGmonforte",
            "monforte-secret",
            "monforte-verify",
        )
        .await;

    // The tickets service would refuse it; the social service must not
    // rely on that.
    let id = announce(&w, &a, &publish(&a, &[a_page, b_page], None)).await;
    deliver(&w).await;

    let shown = posts(&w, a.tenant, id).await;
    assert_eq!(post_on(&shown, a_page).state, "posted");
    let foreign = post_on(&shown, b_page);
    assert_eq!(foreign.state, "failed");
    assert_eq!(foreign.reason.as_deref(), Some(NOT_LINKED));

    let sent = graph_posts(&w);
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].path, format!("/v25.0/{PAGE_ID}/feed"));
    assert!(
        w.graph
            .requests()
            .iter()
            .all(|r| !r.path.contains("5550001")
                && r.authorization.as_deref() != Some("Bearer EAAGmonforte")),
        "nothing on the other council's page"
    );
    assert_eq!(queued_rows(&w, b.tenant).await, 0);
    assert_eq!(queued_rows(&w, a.tenant).await, 1);
    let b_events: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE tenant_id = $1 AND stream_id LIKE 'publication-%'",
    )
    .bind(b.tenant.into_uuid())
    .fetch_one(&w.db.admin)
    .await
    .unwrap();
    assert_eq!(b_events, 0);
    // And the other council does not see the publication.
    let e = Publications::new(w.accounts.clone(), Arc::clone(&w.log))
        .show(b.tenant, publication_id(id.0))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND");
}
