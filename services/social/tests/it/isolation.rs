//! Tenant isolation of the social service's tables, in the manner of the
//! tickets service's suite (`services/tickets/tests/it/isolation.rs`).
//!
//! Two councils, A and B, are seeded through the real service, each with
//! its own page, X accounts, ids and secrets, so that every table of the
//! service holds rows of both: linked accounts (one of them unlinked), their
//! credentials, the citizens' messages from signed webhooks, a reply sent
//! and a reply waiting for X's rate limit to lift, and a webhook delivery
//! parked for the unlinked account. Then:
//!
//! - **the schema**: every base table of `public` whose name starts with
//!   `social` and has a `tenant_id` column — found from the catalogue, so a
//!   table added later is covered — has row-level security enabled and
//!   forced, is not owned by the application role, and its policies for the
//!   application role read `app.tenant_id`; the only wider ones are the log
//!   reader's `log_reader_sees_all` on `social_accounts` and
//!   `social_deliveries`, which only read and belong to a role the
//!   application role is not a member of;
//! - **raw SQL as the application role**, on every such table: nothing is
//!   visible with no tenant set (nor in the platform's scope); in one
//!   tenant's scope the other's rows can be neither read, updated, deleted
//!   nor claimed by an insert, and one's own rows cannot be handed over; the
//!   other tenant's rows are proved unchanged through the owner's connection;
//! - **the query functions and the service's methods**: the conversations'
//!   lookups see nothing with no tenant set nor in the other tenant's scope;
//!   `Accounts` in one tenant's name lists exactly its own accounts, and an
//!   account id of the other tenant is `NOT_FOUND` for reads and writes
//!   alike, and writes nothing;
//! - **the webhooks**: a delivery to one tenant's account signed with the
//!   other's secret is refused (401), a verification with the other's token
//!   too (403), and an entry naming the other's page is not recorded;
//! - **`social_account_lookup()` and `social_deliveries_due()`**, the two
//!   cross-tenant reads (SECURITY DEFINER): they return ids, the network and
//!   flags only, run as the log reader, and are not executable by PUBLIC.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use secrecy::SecretString;
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Column, Row};
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_postgres::begin_for_tenant;
use ventanilla_social::conversations;
use ventanilla_social::fake::meta as fake_meta;
use ventanilla_social::fake::x::{self as fake_x, Failure as XFailure};
use ventanilla_social_domain::account::{AccountId, Health};
use ventanilla_tickets_domain::ticket::{MessageId, TicketId};

use ventanilla_testkit::isolation::{self, APP_ROLE};

use crate::support::{Council, World};

/// The tables that must have a `tenant_id` today; the suite covers whatever
/// else the catalogue lists too.
const EXPECTED_TABLES: [&str; 5] = [
    "social_accounts",
    "social_credentials",
    "social_deliveries",
    "social_messages",
    "social_parked",
];

/// The role the cross-tenant reads run as.
const LOG_READER: &str = "ventanilla_log_reader";

/// What one council holds on the networks: ids and secrets of its own.
struct Networks {
    page_id: String,
    app_secret: String,
    verify_token: String,
    x_user: String,
    consumer_secret: String,
}

impl Networks {
    fn of(slug: &str, n: u8) -> Self {
        Self {
            page_id: format!("10293847{n}0"),
            app_secret: format!("meta-app-secret-{slug}"),
            verify_token: format!("verify-{slug}"),
            x_user: format!("29756992{n}0"),
            consumer_secret: format!("x-consumer-secret-{slug}"),
        }
    }

    fn comment_id(&self) -> String {
        format!("{}_111_222", self.page_id)
    }
}

/// A seeded council.
struct Seeded {
    c: Council,
    net: Networks,
    page: AccountId,
    page_url: String,
    x: AccountId,
    x_url: String,
    /// An X account unlinked after a delivery was parked for it.
    parked: AccountId,
    /// The Facebook ticket and its reply (sent).
    ticket: TicketId,
    reply: MessageId,
    /// The reply on X, waiting for X's rate limit to lift.
    waiting: MessageId,
}

/// Provisions `slug` and fills every table of the service for it.
async fn seed(w: &World, slug: &str, n: u8) -> Seeded {
    let c = w.council(slug).await;
    let net = Networks::of(slug, n);
    let (page, page_url) = w
        .link_page_with(
            &c,
            &net.page_id,
            &format!("EAApage-{slug}"),
            &net.app_secret,
            &net.verify_token,
        )
        .await;
    let (x, x_url) = w
        .link_x_with(
            &c,
            &net.x_user,
            &format!("x-token-{slug}"),
            &net.consumer_secret,
        )
        .await;
    let parked_user = format!("{}1", net.x_user);
    let (parked, parked_url) = w
        .link_x_with(
            &c,
            &parked_user,
            &format!("x-token-parked-{slug}"),
            &net.consumer_secret,
        )
        .await;

    // A comment on the page and a mention on X.
    let now = Utc::now();
    let comment = fake_meta::feed_comment(
        &net.page_id,
        &format!("{}_111", net.page_id),
        &net.comment_id(),
        &format!("98765432{n}"),
        "Vecina Ejemplo",
        &format!("La farola de {slug} está fundida"),
        "add",
        now.timestamp(),
    );
    let (body, signature) = fake_meta::signed_webhook(&net.app_secret, &comment);
    let r = w
        .post(&page_url, "x-hub-signature-256", &signature, body)
        .await;
    assert_eq!(r.status(), 200, "{slug}: the comment");
    let mention = fake_x::mention_event(
        &net.x_user,
        &format!("18000000000000000{n}1"),
        &format!("@concello hay un bache en {slug}"),
        &format!("12052902471242178{n}6"),
        &format!("vecino{n}"),
        None,
        now.timestamp_millis(),
    );
    let (body, signature) = fake_x::signed_webhook(&net.consumer_secret, &mention);
    let r = w
        .post(&x_url, "x-twitter-webhooks-signature", &signature, body)
        .await;
    assert_eq!(r.status(), 200, "{slug}: the mention");
    w.settle_all().await;

    // A reply on Facebook, sent; one on X, waiting for the rate limit.
    let ticket = w.ticket_on(c.tenant, "facebook").await;
    let reply = w
        .reply(&c, ticket, &format!("Avisamos a alumbrado de {slug}."))
        .await;
    w.settle_all().await;
    assert_eq!(
        w.reply_view(&c, ticket, reply)
            .await
            .delivery_state
            .as_deref(),
        Some("sent")
    );
    let x_ticket = w.ticket_on(c.tenant, "x").await;
    let waiting = w
        .reply(&c, x_ticket, &format!("Lo revisa la brigada de {slug}."))
        .await;
    w.x.fail_next(XFailure::RateLimited {
        reset_in_secs: 3600,
    });
    w.settle_all().await;
    assert_eq!(
        w.reply_view(&c, x_ticket, waiting)
            .await
            .delivery_state
            .as_deref(),
        Some("pending")
    );

    // A delivery for an unlinked account: parked.
    w.accounts.unlink(c.tenant, c.admin, parked).await.unwrap();
    let late = fake_x::mention_event(
        &parked_user,
        &format!("18000000000000000{n}2"),
        "@concello ¿seguís ahí?",
        &format!("12052902471242178{n}6"),
        &format!("vecino{n}"),
        None,
        now.timestamp_millis(),
    );
    let (body, signature) = fake_x::signed_webhook(&net.consumer_secret, &late);
    let r = w
        .post(
            &parked_url,
            "x-twitter-webhooks-signature",
            &signature,
            body,
        )
        .await;
    assert_eq!(r.status(), 200, "{slug}: acknowledged and parked");

    Seeded {
        c,
        net,
        page,
        page_url,
        x,
        x_url,
        parked,
        ticket,
        reply,
        waiting,
    }
}

/// The account ids of `tenant` the owner sees.
async fn owner_accounts(w: &World, tenant: TenantId, linked_only: bool) -> BTreeSet<Uuid> {
    sqlx::query_scalar(
        "SELECT account_id FROM social_accounts WHERE tenant_id = $1 AND (NOT $2 OR NOT unlinked)",
    )
    .bind(tenant.into_uuid())
    .bind(linked_only)
    .fetch_all(&w.db.admin)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

/// One citizen's message of `tenant` as the owner sees it: channel,
/// platform id, account, author.
async fn a_message(w: &World, tenant: TenantId) -> (String, String, Uuid, String) {
    sqlx::query_as(
        "SELECT channel, platform_id, account_id, author_id FROM social_messages \
          WHERE tenant_id = $1 ORDER BY channel, platform_id LIMIT 1",
    )
    .bind(tenant.into_uuid())
    .fetch_one(&w.db.admin)
    .await
    .unwrap()
}

/// The conversations' lookups (what the outbound reactor and the delivery
/// worker read) see a tenant's messages in its scope only.
async fn conversations_stay_in_scope(w: &World, a: &Seeded, b: &Seeded) {
    for (owner, other) in [(a, b), (b, a)] {
        let (channel, platform_id, account, author) = a_message(w, owner.c.tenant).await;
        for scope in [None, Some(other.c.tenant), Some(owner.c.tenant)] {
            let mut tx = match scope {
                None => w.db.app.begin().await.unwrap(),
                Some(t) => begin_for_tenant(&w.db.app, t).await.unwrap(),
            };
            let found = conversations::find(&mut tx, &channel, &platform_id)
                .await
                .unwrap();
            let last = conversations::last_written(&mut tx, account, &author)
                .await
                .unwrap();
            tx.rollback().await.unwrap();
            if scope == Some(owner.c.tenant) {
                let found = found.unwrap_or_else(|| panic!("{platform_id} in its own scope"));
                assert_eq!(found.account_id, account);
                assert!(last.is_some(), "{platform_id}: its author's last message");
            } else {
                assert_eq!(
                    found, None,
                    "{}'s message {platform_id} found in scope {scope:?}",
                    owner.c.slug
                );
                assert_eq!(
                    last, None,
                    "{}'s author {author} seen in scope {scope:?}",
                    owner.c.slug
                );
            }
        }
    }
}

/// The accounts service in `me`'s name: exactly `me`'s accounts; an account
/// of `other`'s is `NOT_FOUND`, for reads and writes alike.
async fn accounts_stay_in_scope(w: &World, me: &Seeded, other: &Seeded) {
    let accounts = &w.accounts;
    let (tenant, admin, agent) = (me.c.tenant, me.c.admin, me.c.agent);
    let mine = owner_accounts(w, tenant, false).await;
    let theirs = owner_accounts(w, other.c.tenant, false).await;
    assert!(mine.len() == 3 && theirs.len() == 3 && mine.is_disjoint(&theirs));

    // What staff list, and what the platform's tools see: mine only.
    for by in [admin, agent] {
        let listed: BTreeSet<Uuid> = accounts
            .list(tenant, by)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.account_id)
            .collect();
        assert_eq!(listed, mine, "{}'s accounts", me.c.slug);
    }
    let linked: BTreeSet<Uuid> = accounts
        .linked(tenant)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.account_id)
        .collect();
    assert_eq!(linked, owner_accounts(w, tenant, true).await);
    // Their staff are nobody here.
    for by in [other.c.admin, other.c.agent] {
        let e = accounts.list(tenant, by).await.unwrap_err();
        assert_eq!(e.code(), "FORBIDDEN", "{e}");
    }

    // My own account, for contrast.
    let state = accounts.state(tenant, me.page).await.unwrap();
    assert_eq!(state.external_id, me.net.page_id);
    let creds = accounts.credentials(tenant, me.page).await.unwrap();
    assert_eq!(creds.external_id, me.net.page_id);

    // Theirs: not found, whatever is asked.
    for id in [other.page, other.x, other.parked] {
        let what = |call: &str| format!("{call} of {}'s account {}", other.c.slug, id.0);
        let e = accounts.state(tenant, id).await.unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND", "{}: {e}", what("state"));
        let e = accounts.credentials(tenant, id).await.unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND", "{}: {e}", what("credentials"));
        let e = accounts
            .rotate_credentials(
                tenant,
                admin,
                id,
                SecretString::from("intruder-token"),
                SecretString::from("intruder-secret"),
                Some(SecretString::from("intruder-verify")),
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND", "{}: {e}", what("rotate_credentials"));
        let e = accounts.unlink(tenant, admin, id).await.unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND", "{}: {e}", what("unlink"));
        let e = accounts
            .report_health(
                tenant,
                id,
                Health::Degraded {
                    reason: "intrusion".into(),
                    until: None,
                },
            )
            .await
            .unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND", "{}: {e}", what("report_health"));
    }
}

/// The webhook endpoints: an account's URL only takes what its own secrets
/// sign, and only its own entries.
async fn webhooks_stay_in_scope(w: &World, a: &Seeded, b: &Seeded) {
    for (me, other) in [(a, b), (b, a)] {
        let (slug, other_slug) = (&me.c.slug, &other.c.slug);
        // My page's comment, signed with their app secret.
        let comment = fake_meta::feed_comment(
            &me.net.page_id,
            &format!("{}_111", me.net.page_id),
            &format!("{}_111_999", me.net.page_id),
            "55",
            "Intruso",
            "Firmado con otro secreto",
            "add",
            Utc::now().timestamp(),
        );
        let (body, forged) = fake_meta::signed_webhook(&other.net.app_secret, &comment);
        let r = w
            .post(&me.page_url, "x-hub-signature-256", &forged, body)
            .await;
        assert_eq!(
            r.status(),
            401,
            "{slug}'s page URL took a delivery signed with {other_slug}'s secret"
        );
        // A mention for my X account, signed with their consumer secret.
        let mention = fake_x::mention_event(
            &me.net.x_user,
            "1800000000000000999",
            "@concello firmado con otro secreto",
            "42",
            "intruso",
            None,
            Utc::now().timestamp_millis(),
        );
        let (body, forged) = fake_x::signed_webhook(&other.net.consumer_secret, &mention);
        let r = w
            .post(&me.x_url, "x-twitter-webhooks-signature", &forged, body)
            .await;
        assert_eq!(
            r.status(),
            401,
            "{slug}'s X URL took a delivery signed with {other_slug}'s secret"
        );
        // Meta's verification with their token; X's CRC answered with mine.
        let r = w
            .http
            .get(format!(
                "{}?hub.mode=subscribe&hub.verify_token={}&hub.challenge=1158201444",
                me.page_url, other.net.verify_token
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            403,
            "{slug}'s page verified with {other_slug}'s token"
        );
        let r = w
            .http
            .get(format!("{}?crc_token=abc123", me.x_url))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let answer = r.bytes().await.unwrap();
        assert!(fake_x::crc_check(
            &me.net.consumer_secret,
            "abc123",
            &answer
        ));
        assert!(!fake_x::crc_check(
            &other.net.consumer_secret,
            "abc123",
            &answer
        ));
        // A batch signed with my secret, but naming their page only: none
        // of it is mine to record.
        let theirs = fake_meta::feed_comment(
            &other.net.page_id,
            &format!("{}_111", other.net.page_id),
            &format!("{}_111_888", other.net.page_id),
            "56",
            "Ajeno",
            "Una entrada de otra página",
            "add",
            Utc::now().timestamp(),
        );
        let (body, signature) = fake_meta::signed_webhook(&me.net.app_secret, &theirs);
        let r = w
            .post(&me.page_url, "x-hub-signature-256", &signature, body)
            .await;
        assert_eq!(r.status(), 200, "{slug}: acknowledged, nothing of its own");
    }
}

/// The columns of the first row, by name.
fn column_names(rows: &[PgRow]) -> Vec<String> {
    rows.first()
        .map(|r| r.columns().iter().map(|c| c.name().to_owned()).collect())
        .unwrap_or_default()
}

/// A query being built.
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Runs `sql`, its parameters bound by `bind`, as the application role, in
/// `scope`'s tenant or with none set.
async fn app_rows(
    w: &World,
    scope: Option<TenantId>,
    sql: &str,
    bind: impl Fn(PgQuery<'_>) -> PgQuery<'_>,
) -> Vec<PgRow> {
    let query = bind(sqlx::query(AssertSqlSafe(sql.to_owned())));
    match scope {
        None => query.fetch_all(&w.db.app).await.unwrap(),
        Some(tenant) => {
            let mut tx = begin_for_tenant(&w.db.app, tenant).await.unwrap();
            let rows = query.fetch_all(&mut *tx).await.unwrap();
            tx.rollback().await.unwrap();
            rows
        }
    }
}

/// The two cross-tenant reads: ids, network and flags only, as the log
/// reader, not for PUBLIC.
async fn cross_tenant_reads_return_ids_only(w: &World, a: &Seeded, b: &Seeded) {
    for (signature, expected) in [
        (
            "social_account_lookup(uuid)",
            "TABLE(tenant_id uuid, network text, unlinked boolean)",
        ),
        (
            "social_deliveries_due(timestamptz, integer)",
            "TABLE(tenant_id uuid, message_id uuid)",
        ),
    ] {
        let (result, definer, owner, public, app): (String, bool, String, bool, bool) =
            sqlx::query_as(AssertSqlSafe(format!(
                "SELECT pg_get_function_result(p.oid), p.prosecdef, pg_get_userbyid(p.proowner)::text, \
                        EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x \
                                 WHERE x.grantee = 0 AND x.privilege_type = 'EXECUTE'), \
                        has_function_privilege($1, p.oid, 'EXECUTE') \
                   FROM pg_proc p WHERE p.oid = 'public.{signature}'::regprocedure"
            )))
            .bind(APP_ROLE)
            .fetch_one(&w.db.admin)
            .await
            .unwrap();
        assert_eq!(result, expected, "{signature}: ids, network and flags only");
        assert!(definer, "{signature} must be SECURITY DEFINER");
        assert_eq!(owner, LOG_READER, "{signature}");
        assert!(!public, "PUBLIC may execute {signature}");
        assert!(app, "{APP_ROLE} may not execute {signature}");
    }

    // The lookup finds an account's tenant whatever the scope (a webhook
    // arrives before any tenant is known), and says nothing more.
    for s in [a, b] {
        for scope in [None, Some(a.c.tenant), Some(b.c.tenant)] {
            let rows = app_rows(w, scope, "SELECT * FROM social_account_lookup($1)", |q| {
                q.bind(s.page.0)
            })
            .await;
            assert_eq!(rows.len(), 1);
            assert_eq!(column_names(&rows), ["tenant_id", "network", "unlinked"]);
            let row = &rows[0];
            assert_eq!(row.get::<Uuid, _>("tenant_id"), s.c.tenant.into_uuid());
            assert_eq!(row.get::<String, _>("network"), "facebook");
            assert!(!row.get::<bool, _>("unlinked"));
        }
        let rows = app_rows(w, None, "SELECT * FROM social_account_lookup($1)", |q| {
            q.bind(s.parked.0)
        })
        .await;
        assert!(rows[0].get::<bool, _>("unlinked"));
    }

    // The due replies: ids only, across tenants (by design), exactly the
    // ones waiting.
    let now = Utc::now();
    let later = now + Duration::hours(2);
    let expected: BTreeSet<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT tenant_id, message_id FROM social_deliveries WHERE NOT done AND next_attempt_at <= $1",
    )
    .bind(later)
    .fetch_all(&w.db.admin)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(
        expected,
        [
            (a.c.tenant.into_uuid(), a.waiting.0),
            (b.c.tenant.into_uuid(), b.waiting.0)
        ]
        .into_iter()
        .collect(),
        "the replies waiting for X"
    );
    for scope in [None, Some(a.c.tenant)] {
        let rows = app_rows(
            w,
            scope,
            "SELECT * FROM social_deliveries_due($1, 100)",
            |q| q.bind(later),
        )
        .await;
        assert_eq!(column_names(&rows), ["tenant_id", "message_id"], "ids only");
        let got: BTreeSet<(Uuid, Uuid)> = rows
            .iter()
            .map(|r| (r.get("tenant_id"), r.get("message_id")))
            .collect();
        assert_eq!(got, expected, "in scope {scope:?}");
        let rows = app_rows(
            w,
            scope,
            "SELECT * FROM social_deliveries_due($1, 100)",
            |q| q.bind(now),
        )
        .await;
        assert!(rows.is_empty(), "nothing is due before X's reset");
    }
}

#[tokio::test]
async fn two_councils_cannot_reach_each_others_social_accounts_and_messages() {
    let w = World::new().await;
    let a = seed(&w, "ribadeo", 1).await;
    let b = seed(&w, "mondonedo", 2).await;
    w.caught_up_all().await;

    let checked = isolation::tables_stay_in_scope(
        &w.db,
        "social",
        &EXPECTED_TABLES,
        &[
            format!("social_accounts.log_reader_sees_all [\"{LOG_READER}\"]"),
            format!("social_deliveries.log_reader_sees_all [\"{LOG_READER}\"]"),
        ],
        "the only wider policies are the log reader's reads of accounts and deliveries",
        (a.c.tenant, a.c.slug.as_str()),
        (b.c.tenant, b.c.slug.as_str()),
    )
    .await;

    conversations_stay_in_scope(&w, &a, &b).await;
    let events = w.event_count().await;
    for (me, other) in [(&b, &a), (&a, &b)] {
        accounts_stay_in_scope(&w, me, other).await;
    }
    webhooks_stay_in_scope(&w, &a, &b).await;
    w.caught_up_all().await;
    assert_eq!(
        w.event_count().await,
        events,
        "a refused call or a forged webhook wrote an event"
    );
    checked
        .unchanged(&w.db, "a service call or a webhook in one tenant's name")
        .await;
    // The replies are where the seeding left them.
    for s in [&a, &b] {
        let view = w.reply_view(&s.c, s.ticket, s.reply).await;
        assert_eq!(view.delivery_state.as_deref(), Some("sent"));
    }

    cross_tenant_reads_return_ids_only(&w, &a, &b).await;
}
