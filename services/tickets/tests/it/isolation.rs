//! Tenant isolation of the tickets service's tables, in the manner of the
//! tenants service's suite (`services/tenants/tests/it/isolation.rs`, which
//! leaves the `ticket…` tables to this one).
//!
//! Two councils, A and B, are seeded through the real service with data in
//! every table of the service (references and their counters, the inbox's
//! tickets, messages and timeline; the inbound reactor's conversations are
//! written directly as the owner while no reactor writes them in tests).
//! Then:
//!
//! - **the schema**: every base table of `public` whose name starts with
//!   `ticket` and has a `tenant_id` column — found from the catalogue, so a
//!   table added later is covered — has row-level security enabled and
//!   forced, is not owned by the application role, and its policies for the
//!   application role read `app.tenant_id`; the one wider policy (the breach
//!   timer's `log_reader_sees_all` on `tickets`) only reads and belongs to a
//!   role the application role is not a member of;
//! - **raw SQL as the application role**, on every such table: nothing is
//!   visible with no tenant set (nor in the platform's scope); in one
//!   tenant's scope the other's rows can be neither read, updated, deleted
//!   nor claimed by an insert, and one's own rows cannot be handed over; the
//!   other tenant's rows are proved unchanged through the owner's connection;
//! - **the query functions and the service's methods**: with no tenant set
//!   they see nothing; in each tenant's name they return exactly its own
//!   tickets; a ticket id, or a reference and tracking token, of the other
//!   tenant is `NOT_FOUND`, for reads and writes alike, and writes nothing;
//! - **`tickets_overdue()`**, the one cross-tenant read (SECURITY DEFINER):
//!   it returns ids only, `(tenant_id, ticket_id)`, runs as the log reader,
//!   and is not executable by PUBLIC.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use sqlx::{Column, Row};
use uuid::Uuid;
use ventanilla_eventlog::EventLog;
use ventanilla_kernel::TenantId;
use ventanilla_postgres::begin_for_tenant;
use ventanilla_postgres::projection::{Projection, ensure_caught_up};
use ventanilla_tickets::inbox::{self, InboxFilter, InboxProjection, InboxSort};
use ventanilla_tickets::service::{
    AssignTo, Delivery, OpenRequest, OpenedTicket, Origin, ReplyRequest, tracking_hash,
};
use ventanilla_tickets_domain::ticket::MessageId;

use ventanilla_testkit::isolation;

use crate::support::{Council, World, question};

/// The tables that must have a `tenant_id` today; the suite covers whatever
/// else the catalogue lists too.
const EXPECTED_TABLES: [&str; 6] = [
    "ticket_conversations",
    "ticket_messages",
    "ticket_reference_counters",
    "ticket_references",
    "ticket_timeline",
    "tickets",
];

/// A seeded council and what its citizens hold.
struct Seeded {
    c: Council,
    /// A question, answered and tagged.
    first: OpenedTicket,
    /// Its tracking token.
    token: String,
    /// A question for a department, in its queue.
    second: OpenedTicket,
    /// The reply on the first ticket.
    reply: MessageId,
}

/// Provisions `slug` and fills every table of the service for it.
async fn seed(w: &World, slug: &str) -> Seeded {
    let c = w.council(slug).await;
    let t = &w.tickets;
    let first = w.question(&c, "Farola fundida").await;
    let token = first.tracking_token.clone().unwrap();
    let reply = t
        .reply(
            c.tenant,
            c.agent,
            first.id,
            &ReplyRequest {
                body: "Avisamos a alumbrado.".into(),
                channel: None,
                wait_for_citizen: false,
            },
        )
        .await
        .unwrap();
    t.add_note(c.tenant, c.agent, first.id, "Nota interna.")
        .await
        .unwrap();
    t.tag(c.tenant, c.agent, first.id, "alumbrado")
        .await
        .unwrap();
    let second = t
        .open(
            c.tenant,
            Origin::Web,
            &OpenRequest {
                kind: "question_for".into(),
                department: Some(c.department),
                ..question("Licencia de obra")
            },
        )
        .await
        .unwrap();
    t.assign(c.tenant, c.agent, second.id, AssignTo::Agent(c.agent))
        .await
        .unwrap();
    Seeded {
        c,
        first,
        token,
        second,
        reply,
    }
}

/// The conversations the inbound reactor keeps: written here as the owner
/// for a tenant that has none (no reactor runs in these tests).
async fn seed_conversations(w: &World, s: &Seeded) {
    let tenant = s.c.tenant.into_uuid();
    let existing: i64 =
        sqlx::query_scalar("SELECT count(*) FROM ticket_conversations WHERE tenant_id = $1")
            .bind(tenant)
            .fetch_one(&w.db.admin)
            .await
            .unwrap();
    if existing == 0 {
        for (channel, key, ticket) in [
            ("x", format!("thread:{}", s.c.slug), s.first.id),
            ("mastodon", format!("author:{}", s.c.slug), s.second.id),
        ] {
            sqlx::query(
                "INSERT INTO ticket_conversations (tenant_id, channel, key, ticket_id, updated_at) \
                 VALUES ($1, $2, $3, $4, now())",
            )
            .bind(tenant)
            .bind(channel)
            .bind(key)
            .bind(ticket.0)
            .execute(&w.db.admin)
            .await
            .unwrap();
        }
    }
}

/// Makes the inbox current with everything committed so far.
async fn catch_up(w: &World) {
    let target = w.log.committed_head().await.unwrap();
    let projection: Arc<dyn Projection> = Arc::new(InboxProjection);
    ensure_caught_up(
        Arc::clone(&w.log),
        w.db.app.clone(),
        projection,
        target,
        StdDuration::from_secs(30),
    )
    .await
    .unwrap();
}

/// The ticket ids of `tenant` the owner sees.
async fn owner_tickets(w: &World, tenant: TenantId) -> BTreeSet<Uuid> {
    sqlx::query_scalar("SELECT ticket_id FROM tickets WHERE tenant_id = $1")
        .bind(tenant.into_uuid())
        .fetch_all(&w.db.admin)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// With no tenant set, the inbox's query functions see nothing.
async fn nothing_is_visible_without_a_tenant(w: &World, some: &Seeded) {
    let mut tx = w.db.app.begin().await.unwrap();
    let c = &mut *tx;
    for sort in [InboxSort::LastActivity, InboxSort::DueTime] {
        let page = inbox::inbox_page(c, &InboxFilter::default(), sort, 100, None)
            .await
            .unwrap();
        assert!(page.items.is_empty() && page.next.is_none());
    }
    assert!(inbox::status_counts(c).await.unwrap().is_empty());
    assert!(
        inbox::ticket_view(c, some.first.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(inbox::messages(c, some.first.id).await.unwrap().is_empty());
    let hash = tracking_hash(&some.token).unwrap();
    assert!(
        inbox::find_by_tracking(c, &some.first.reference, hash.as_str())
            .await
            .unwrap()
            .is_none()
    );
    tx.rollback().await.unwrap();
}

/// Every service read in `me`'s name returns `me`'s tickets exactly; no
/// ticket of `other`'s can be read or changed through `me`.
async fn services_stay_in_scope(w: &World, me: &Seeded, other: &Seeded) {
    let t = &w.tickets;
    let (tenant, agent) = (me.c.tenant, me.c.agent);
    let mine = owner_tickets(w, tenant).await;
    let theirs = owner_tickets(w, other.c.tenant).await;
    assert!(mine.len() >= 2 && theirs.len() >= 2 && mine.is_disjoint(&theirs));

    // The inbox, both sorts, and filters naming the other's agent or queue.
    for sort in [InboxSort::LastActivity, InboxSort::DueTime] {
        let page = t
            .inbox(tenant, agent, &InboxFilter::default(), sort, 100, None)
            .await
            .unwrap();
        let ids: BTreeSet<Uuid> = page.items.iter().map(|i| i.ticket_id).collect();
        assert_eq!(ids, mine, "{}'s inbox", me.c.slug);
    }
    for filter in [
        InboxFilter {
            assignee: Some(other.c.agent.0),
            ..InboxFilter::default()
        },
        InboxFilter {
            department: Some(other.c.department),
            ..InboxFilter::default()
        },
        InboxFilter {
            tag: Some("alumbrado".into()),
            ..InboxFilter::default()
        },
    ] {
        let page = t
            .inbox(tenant, agent, &filter, InboxSort::LastActivity, 100, None)
            .await
            .unwrap();
        assert!(
            page.items.iter().all(|i| mine.contains(&i.ticket_id)),
            "{filter:?}: {page:?}"
        );
    }
    let counts = t.status_counts(tenant, agent).await.unwrap();
    let owner_counts: Vec<(String, i64)> = sqlx::query_as(
        "SELECT status, count(*) FROM tickets WHERE tenant_id = $1 GROUP BY status ORDER BY status",
    )
    .bind(tenant.into_uuid())
    .fetch_all(&w.db.admin)
    .await
    .unwrap();
    assert_eq!(counts, owner_counts);

    // My tickets are there; theirs are not found, by id or by reference and
    // token, even with their own valid token.
    let view = t.ticket(tenant, agent, me.first.id).await.unwrap();
    assert_eq!(view.item.ticket_id, me.first.id.0);
    for id in [other.first.id, other.second.id] {
        let e = t.ticket(tenant, agent, id).await.unwrap_err();
        assert_eq!(e.code(), "NOT_FOUND", "{e}");
    }
    // Read together, mine come whole — the same as one by one — and theirs
    // are absent.
    let batch = t
        .tickets(
            tenant,
            agent,
            &[me.first.id, other.first.id, me.second.id, other.second.id],
        )
        .await
        .unwrap();
    assert_eq!(batch.len(), 2, "{:?}", batch.keys());
    for id in [me.first.id, me.second.id] {
        assert_eq!(batch[&id], t.ticket(tenant, agent, id).await.unwrap());
    }
    let seen = t
        .follow(tenant, &me.first.reference, &me.token)
        .await
        .unwrap();
    assert_eq!(seen.reference, me.first.reference);
    let e = t
        .follow(tenant, &other.first.reference, &other.token)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND", "{e}");
    // Their agent is nobody here.
    let e = t
        .ticket(tenant, other.c.agent, me.first.id)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "FORBIDDEN", "{e}");

    // Nothing of theirs can be changed through me: each is NOT_FOUND.
    let id = other.first.id;
    let results = [
        (
            "reply",
            t.reply(
                tenant,
                agent,
                id,
                &ReplyRequest {
                    body: "Intrusión".into(),
                    ..ReplyRequest::default()
                },
            )
            .await
            .map(|_| ()),
        ),
        (
            "note",
            t.add_note(tenant, agent, id, "Intrusión").await.map(|_| ()),
        ),
        ("tag", t.tag(tenant, agent, id, "intrusion").await),
        ("untag", t.untag(tenant, agent, id, "alumbrado").await),
        (
            "priority",
            t.set_priority(tenant, agent, id, "urgent").await,
        ),
        (
            "assign",
            t.assign(tenant, agent, id, AssignTo::Agent(agent)).await,
        ),
        ("resolve", t.resolve(tenant, agent, id).await),
        ("close", t.close(tenant, agent, id).await),
        (
            "merge theirs into mine",
            t.merge(tenant, agent, id, me.first.id).await,
        ),
        (
            "merge mine into theirs",
            t.merge(tenant, agent, me.second.id, id).await,
        ),
        (
            "delivery",
            t.record_delivery(
                tenant,
                id,
                other.reply,
                Delivery::Sent { platform_id: None },
            )
            .await,
        ),
        (
            "breaches",
            t.record_breaches(tenant, id, Utc::now() + Duration::days(400))
                .await
                .map(|_| ()),
        ),
    ];
    for (what, result) in results {
        match result {
            Err(e) => assert_eq!(e.code(), "NOT_FOUND", "{what}: {e}"),
            Ok(()) => panic!(
                "{what}: {}'s ticket changed in {}'s name",
                other.c.slug, me.c.slug
            ),
        }
    }
}

/// `tickets_overdue()` is the breach timer's cross-tenant read: ids only, as
/// the log reader, not for PUBLIC.
async fn overdue_returns_ids_only(w: &World, a: &Seeded, b: &Seeded) {
    let (result, definer, owner, public): (String, bool, String, bool) = sqlx::query_as(
        "SELECT pg_get_function_result(p.oid), p.prosecdef, pg_get_userbyid(p.proowner)::text, \
                EXISTS (SELECT 1 FROM aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) x \
                         WHERE x.grantee = 0 AND x.privilege_type = 'EXECUTE') \
           FROM pg_proc p WHERE p.oid = 'public.tickets_overdue(timestamptz, integer)'::regprocedure",
    )
    .fetch_one(&w.db.admin)
    .await
    .unwrap();
    assert_eq!(result, "TABLE(tenant_id uuid, ticket_id uuid)");
    assert!(definer, "tickets_overdue must be SECURITY DEFINER");
    assert_eq!(owner, "ventanilla_log_reader");
    assert!(!public, "PUBLIC may execute tickets_overdue");

    // As the application role, in a tenant's scope or none: the columns are
    // the two ids, and the rows span both tenants (by design).
    let far = Utc::now() + Duration::days(3650);
    let expected: BTreeSet<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT tenant_id, ticket_id FROM tickets WHERE next_breach_at IS NOT NULL AND next_breach_at <= $1",
    )
    .bind(far)
    .fetch_all(&w.db.admin)
    .await
    .unwrap()
    .into_iter()
    .collect();
    for scope in [None, Some(a.c.tenant)] {
        let rows = match scope {
            None => sqlx::query("SELECT * FROM tickets_overdue($1, 100)")
                .bind(far)
                .fetch_all(&w.db.app)
                .await
                .unwrap(),
            Some(tenant) => {
                let mut tx = begin_for_tenant(&w.db.app, tenant).await.unwrap();
                let rows = sqlx::query("SELECT * FROM tickets_overdue($1, 100)")
                    .bind(far)
                    .fetch_all(&mut *tx)
                    .await
                    .unwrap();
                tx.rollback().await.unwrap();
                rows
            }
        };
        assert!(!rows.is_empty());
        let columns: Vec<&str> = rows[0].columns().iter().map(|c| c.name()).collect();
        assert_eq!(columns, vec!["tenant_id", "ticket_id"], "ids only");
        let got: BTreeSet<(Uuid, Uuid)> = rows
            .iter()
            .map(|r| (r.get("tenant_id"), r.get("ticket_id")))
            .collect();
        assert_eq!(got, expected, "in scope {scope:?}");
        let tenants: BTreeSet<Uuid> = got.iter().map(|r| r.0).collect();
        assert_eq!(
            tenants,
            [a.c.tenant.into_uuid(), b.c.tenant.into_uuid()]
                .into_iter()
                .collect()
        );
    }
}

#[tokio::test]
async fn two_councils_cannot_reach_each_others_tickets() {
    let w = World::new().await;
    let a = seed(&w, "ribadeo").await;
    let b = seed(&w, "mondonedo").await;
    seed_conversations(&w, &a).await;
    seed_conversations(&w, &b).await;
    catch_up(&w).await;

    let checked = isolation::tables_stay_in_scope(
        &w.db,
        "ticket",
        &EXPECTED_TABLES,
        &["tickets.log_reader_sees_all [\"ventanilla_log_reader\"]".to_owned()],
        "the only wider policy is the breach timer's read of tickets",
        (a.c.tenant, a.c.slug.as_str()),
        (b.c.tenant, b.c.slug.as_str()),
    )
    .await;

    nothing_is_visible_without_a_tenant(&w, &a).await;
    let events = w.event_count().await;
    for (me, other) in [(&b, &a), (&a, &b)] {
        services_stay_in_scope(&w, me, other).await;
    }
    catch_up(&w).await;
    assert_eq!(
        w.event_count().await,
        events,
        "a refused call wrote an event"
    );
    checked
        .unchanged(&w.db, "a service call in one tenant's name")
        .await;

    overdue_returns_ids_only(&w, &a, &b).await;
}
