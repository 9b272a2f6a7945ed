//! The `inbox` read model rebuilds from the log to the same rows as the live
//! projection wrote (`tickets`, `ticket_messages`, `ticket_timeline`), and
//! the swapped-in tables keep their row-level security, policies (the breach
//! timer's `log_reader_sees_all` included), indexes, constraints and grants:
//! `tickets_overdue()` answers the same after the swap, the application role
//! still sees only its tenant's rows, and the live projection carries on
//! from the rebuild's checkpoint.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sqlx::AssertSqlSafe;
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, EventLog};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::begin_for_tenant;
use ventanilla_postgres::projection::{Projection, ensure_caught_up, rebuild};
use ventanilla_tickets::inbox::InboxProjection;
use ventanilla_tickets::service::{AssignTo, Delivery, OpenRequest, Origin, ReplyRequest};
use ventanilla_tickets_domain::ticket::{self, MessageId, Ticket, TicketCommand, TicketId};
use ventanilla_tickets_domain::values::{Body, Channel};

use crate::support::{Council, World, question};

/// The read model's tables and the order their rows are compared in.
const TABLES: [(&str, &str); 3] = [
    ("tickets", "tenant_id, ticket_id"),
    ("ticket_messages", "tenant_id, ticket_id, seq, message_id"),
    ("ticket_timeline", "tenant_id, ticket_id, version"),
];

/// Makes the live projection current with everything committed.
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

/// Every row of the read model, as text, in a stable order (all tenants:
/// read as the owner).
async fn rows(w: &World) -> Vec<String> {
    let mut all = Vec::new();
    for (table, order) in TABLES {
        let rows: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT '{table} ' || row_to_json(t)::text FROM {table} t ORDER BY {order}"
        )))
        .fetch_all(&w.db.admin)
        .await
        .unwrap();
        all.extend(rows);
    }
    all
}

/// What the catalogue says of the read model's tables: columns,
/// constraints, indexes, row-level security, policies and grants.
async fn catalogue(w: &World) -> Vec<String> {
    let mut all = Vec::new();
    for (table, _) in TABLES {
        let queries = [
            "SELECT 'column ' || column_name || ' ' || data_type || ' ' || is_nullable || ' ' || \
                    coalesce(column_default, '-') \
               FROM information_schema.columns WHERE table_schema = 'public' AND table_name = $1 \
              ORDER BY ordinal_position",
            "SELECT 'constraint ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint \
              WHERE conrelid = format('public.%I', $1::text)::regclass ORDER BY conname",
            "SELECT 'index ' || indexname || ' ' || indexdef FROM pg_indexes \
              WHERE schemaname = 'public' AND tablename = $1 ORDER BY indexname",
            "SELECT 'security enabled=' || relrowsecurity || ' forced=' || relforcerowsecurity || \
                    ' owner=' || pg_get_userbyid(relowner) \
               FROM pg_class WHERE oid = format('public.%I', $1::text)::regclass",
            "SELECT 'policy ' || policyname || ' ' || permissive || ' ' || cmd || ' ' || roles::text || \
                    ' using=' || coalesce(qual, '-') || ' check=' || coalesce(with_check, '-') \
               FROM pg_policies WHERE schemaname = 'public' AND tablename = $1 ORDER BY policyname",
            "SELECT 'grant ' || CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END || \
                    ' ' || a.privilege_type \
               FROM pg_class c, aclexplode(c.relacl) a \
              WHERE c.oid = format('public.%I', $1::text)::regclass ORDER BY 1",
        ];
        for sql in queries {
            let rows: Vec<String> = sqlx::query_scalar(sql)
                .bind(table)
                .fetch_all(&w.db.admin)
                .await
                .unwrap();
            all.extend(rows.into_iter().map(|r| format!("{table}: {r}")));
        }
    }
    all
}

/// What `tickets_overdue()` answers the application role (no tenant set:
/// it is the breach timer's cross-tenant query), as a set.
async fn overdue(w: &World, now: DateTime<Utc>) -> BTreeSet<(Uuid, Uuid)> {
    sqlx::query_as("SELECT tenant_id, ticket_id FROM tickets_overdue($1, 100)")
        .bind(now)
        .fetch_all(&w.db.app)
        .await
        .unwrap()
        .into_iter()
        .collect()
}

/// A citizen writes on a ticket (what the inbound reactor and the portal
/// do), through the decider.
async fn citizen_writes(w: &World, c: &Council, id: TicketId, body: &str) {
    let now = Utc::now();
    w.runner()
        .execute::<Ticket>(
            &CommandContext::new(
                c.tenant,
                now,
                Actor::Citizen {
                    channel: "web".into(),
                },
            ),
            &ticket::stream_id(id).unwrap(),
            &TicketCommand::ReceiveMessage {
                message_id: MessageId(Uuid::new_v4()),
                channel: Channel::Web,
                body: Body::parse("body", body).unwrap(),
                platform_id: None,
                reopen_window: Duration::hours(72),
                resolution_due_on_reopen: Some(now + Duration::days(5)),
            },
        )
        .await
        .unwrap();
}

fn reply(body: &str, wait_for_citizen: bool) -> ReplyRequest {
    ReplyRequest {
        body: body.into(),
        channel: None,
        wait_for_citizen,
    }
}

/// Counts of `table`'s rows the application role sees in `tenant`'s scope
/// and with no tenant set.
async fn app_sees(w: &World, table: &str, tenant: TenantId) -> (i64, i64) {
    let sql = format!("SELECT count(*) FROM {table}");
    let mut tx = begin_for_tenant(&w.db.app, tenant).await.unwrap();
    let scoped: i64 = sqlx::query_scalar(AssertSqlSafe(sql.clone()))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let unscoped: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
        .fetch_one(&w.db.app)
        .await
        .unwrap();
    (scoped, unscoped)
}

#[tokio::test]
async fn a_rebuild_from_the_log_gives_the_same_read_model_as_the_live_projection() {
    let w = World::new().await;
    let a = w.council("betanzos").await;
    let b = w.council("ferrol").await;
    // B's own targets: its tickets get other due instants.
    w.tickets
        .configure_service_levels(b.tenant, b.admin, 90, 1200, 24)
        .await
        .unwrap();
    let t = &w.tickets;

    // A: a ticket through the whole workflow, reopened once.
    let t1 = w.question(&a, "Farola fundida").await;
    let asked = t
        .reply(
            a.tenant,
            a.agent,
            t1.id,
            &reply("¿En qué número de la calle?", true),
        )
        .await
        .unwrap();
    t.record_delivery(
        a.tenant,
        t1.id,
        asked,
        Delivery::Sent {
            platform_id: Some("<r1@betanzos.gal>".into()),
        },
    )
    .await
    .unwrap();
    citizen_writes(&w, &a, t1.id, "En el número 3.").await;
    t.add_note(a.tenant, a.agent, t1.id, "Aviso a alumbrado.")
        .await
        .unwrap();
    t.tag(a.tenant, a.agent, t1.id, "alumbrado").await.unwrap();
    t.tag(a.tenant, a.agent, t1.id, "urgente").await.unwrap();
    t.untag(a.tenant, a.agent, t1.id, "urgente").await.unwrap();
    t.set_priority(a.tenant, a.agent, t1.id, "high")
        .await
        .unwrap();
    t.assign(a.tenant, a.agent, t1.id, AssignTo::Agent(a.agent))
        .await
        .unwrap();
    t.resolve(a.tenant, a.agent, t1.id).await.unwrap();
    citizen_writes(&w, &a, t1.id, "Sigue sin funcionar.").await;
    t.reply(
        a.tenant,
        a.agent,
        t1.id,
        &reply("Volvemos a avisar.", false),
    )
    .await
    .unwrap();
    t.resolve(a.tenant, a.agent, t1.id).await.unwrap();
    t.close(a.tenant, a.agent, t1.id).await.unwrap();

    // A: a question for a department, through the API, in its queue, with a
    // reply that bounced; a question for an official merged into it.
    let t2 = t
        .open(
            a.tenant,
            Origin::Api {
                key: Uuid::new_v4(),
            },
            &OpenRequest {
                kind: "question_for".into(),
                department: Some(a.department),
                ..question("Licencia de obra menor")
            },
        )
        .await
        .unwrap();
    t.assign(a.tenant, a.agent, t2.id, AssignTo::Department(a.department))
        .await
        .unwrap();
    let bounced = t
        .reply(
            a.tenant,
            a.agent,
            t2.id,
            &reply("Necesitamos el plano.", false),
        )
        .await
        .unwrap();
    t.record_delivery(
        a.tenant,
        t2.id,
        bounced,
        Delivery::Failed {
            reason: "the citizen's mailbox is full".into(),
        },
    )
    .await
    .unwrap();
    let t3 = t
        .open(
            a.tenant,
            Origin::Web,
            &OpenRequest {
                kind: "question_for".into(),
                official: Some(a.official),
                ..question("La misma licencia")
            },
        )
        .await
        .unwrap();
    t.merge(a.tenant, a.agent, t3.id, t2.id).await.unwrap();

    // A: a suggestion with both clocks breached, a question with its first
    // response breached only, one left new, one assigned and let go.
    let t4 = t
        .open(
            a.tenant,
            Origin::Web,
            &OpenRequest {
                kind: "suggestion".into(),
                ..question("Más bancos en el parque")
            },
        )
        .await
        .unwrap();
    let later = Utc::now() + Duration::days(400);
    assert_eq!(t.record_breaches(a.tenant, t4.id, later).await.unwrap(), 2);
    let t5 = w.question(&a, "Bache").await;
    let view = t.ticket(a.tenant, a.agent, t5.id).await.unwrap();
    let (first_due, resolution_due) = (
        view.first_response_due.unwrap(),
        view.resolution_due.unwrap(),
    );
    assert!(first_due < resolution_due);
    assert_eq!(
        t.record_breaches(a.tenant, t5.id, first_due + Duration::seconds(1))
            .await
            .unwrap(),
        1
    );
    let t6 = w.question(&a, "Ruido nocturno").await;
    let t7 = w.question(&a, "Contenedor").await;
    t.assign(a.tenant, a.agent, t7.id, AssignTo::Agent(a.agent))
        .await
        .unwrap();
    t.assign(a.tenant, a.agent, t7.id, AssignTo::Nobody)
        .await
        .unwrap();

    // B: one answered and resolved, one suggestion with a note.
    let u1 = w.question(&b, "Horario de la biblioteca").await;
    t.reply(b.tenant, b.agent, u1.id, &reply("De 9 a 14.", false))
        .await
        .unwrap();
    t.resolve(b.tenant, b.agent, u1.id).await.unwrap();
    let u2 = t
        .open(
            b.tenant,
            Origin::Web,
            &OpenRequest {
                kind: "suggestion".into(),
                ..question("Carril bici")
            },
        )
        .await
        .unwrap();
    t.add_note(b.tenant, b.agent, u2.id, "Para el pleno.")
        .await
        .unwrap();
    t.set_priority(b.tenant, b.agent, u2.id, "urgent")
        .await
        .unwrap();
    catch_up(&w).await;

    // The live rows, and what the live projection made of the history.
    let before = rows(&w).await;
    let count = |table: &str| {
        before
            .iter()
            .filter(|r| r.starts_with(&format!("{table} ")))
            .count()
    };
    assert_eq!(count("tickets"), 9, "{before:#?}");
    assert!(count("ticket_messages") >= 14, "{before:#?}");
    assert!(count("ticket_timeline") > 40, "{before:#?}");
    let v1 = t.ticket(a.tenant, a.agent, t1.id).await.unwrap();
    assert_eq!(
        (v1.item.status.as_str(), v1.reopened_count, v1.notes_count),
        ("closed", 1, 1)
    );
    assert_eq!(v1.item.tags, vec!["alumbrado".to_owned()]);
    assert_eq!(v1.messages[1].delivery_state.as_deref(), Some("sent"));
    let v2 = t.ticket(a.tenant, a.agent, t2.id).await.unwrap();
    assert_eq!(v2.messages[1].delivery_state.as_deref(), Some("failed"));
    let v3 = t.ticket(a.tenant, a.agent, t3.id).await.unwrap();
    assert_eq!(v3.merged_into, Some(t2.id.0));
    let v4 = t.ticket(a.tenant, a.agent, t4.id).await.unwrap();
    assert!(v4.item.breached);
    let v5 = t.ticket(a.tenant, a.agent, t5.id).await.unwrap();
    assert!(v5.item.breached && v5.resolution_due.is_some());
    let views = [v1, v2, v3, v4, v5];

    let far = Utc::now() + Duration::days(3650);
    let due_before = overdue(&w, far).await;
    let owner_due: BTreeSet<(Uuid, Uuid)> = sqlx::query_as(
        "SELECT tenant_id, ticket_id FROM tickets WHERE next_breach_at IS NOT NULL AND next_breach_at <= $1",
    )
    .bind(far)
    .fetch_all(&w.db.admin)
    .await
    .unwrap()
    .into_iter()
    .collect();
    assert_eq!(due_before, owner_due);
    let (ta, tb) = (a.tenant.into_uuid(), b.tenant.into_uuid());
    let expected_due: BTreeSet<(Uuid, Uuid)> = [
        (ta, t2.id.0),
        (ta, t5.id.0),
        (ta, t6.id.0),
        (ta, t7.id.0),
        (tb, u2.id.0),
    ]
    .into_iter()
    .collect();
    assert_eq!(
        due_before, expected_due,
        "the running clocks: not the closed, merged, resolved or wholly breached tickets"
    );
    let schema = catalogue(&w).await;

    // Rebuild, and compare.
    let report = rebuild(&w.db.admin, w.log.as_ref(), &InboxProjection, 100, &())
        .await
        .unwrap();
    let events = w.event_count().await;
    eprintln!(
        "rebuild: {} rows compared ({} tickets, {} messages, {} timeline); replayed {} of {events} events in {:?}",
        before.len(),
        count("tickets"),
        count("ticket_messages"),
        count("ticket_timeline"),
        report.replayed,
        report.elapsed
    );
    assert_eq!(
        u64::try_from(events).unwrap(),
        report.replayed,
        "the whole log is replayed"
    );
    let after = rows(&w).await;
    if after != before {
        let gone: Vec<_> = before.iter().filter(|r| !after.contains(r)).collect();
        let new: Vec<_> = after.iter().filter(|r| !before.contains(r)).collect();
        panic!(
            "the rebuild differs from the live projection\nlive only: {gone:#?}\nrebuilt only: {new:#?}"
        );
    }
    assert_eq!(
        catalogue(&w).await,
        schema,
        "the swapped-in tables' catalogue"
    );
    let leftover: i64 =
        sqlx::query_scalar("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild_%'")
            .fetch_one(&w.db.admin)
            .await
            .unwrap();
    assert_eq!(leftover, 0, "the rebuild schema is gone");

    // The security that matters, spelled out (not only "as before").
    for (table, _) in TABLES {
        let (enabled, forced): (bool, bool) = sqlx::query_as(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class WHERE oid = format('public.%I', $1::text)::regclass",
        )
        .bind(table)
        .fetch_one(&w.db.admin)
        .await
        .unwrap();
        assert!(
            enabled && forced,
            "{table}: row-level security after the swap"
        );
        let privileges: Vec<bool> = sqlx::query_scalar(
            "SELECT has_table_privilege('ventanilla_app', format('public.%I', $1::text), p) \
               FROM unnest(ARRAY['SELECT', 'INSERT', 'UPDATE', 'DELETE']) p",
        )
        .bind(table)
        .fetch_all(&w.db.admin)
        .await
        .unwrap();
        assert_eq!(privileges, vec![true; 4], "{table}: the app role's grants");
        let owned: i64 = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = $1"
        )))
        .bind(ta)
        .fetch_one(&w.db.admin)
        .await
        .unwrap();
        assert!(owned > 0);
        assert_eq!(
            app_sees(&w, table, a.tenant).await,
            (owned, 0),
            "{table}: what the app role sees in A's scope, and with no tenant"
        );
    }
    let policies: Vec<String> = sqlx::query_scalar(
        "SELECT policyname::text FROM pg_policies WHERE schemaname = 'public' AND tablename = 'tickets' ORDER BY 1",
    )
    .fetch_all(&w.db.admin)
    .await
    .unwrap();
    assert_eq!(policies, vec!["log_reader_sees_all", "tenant_isolation"]);
    let reader: bool = sqlx::query_scalar(
        "SELECT has_table_privilege('ventanilla_log_reader', 'public.tickets', 'SELECT')",
    )
    .fetch_one(&w.db.admin)
    .await
    .unwrap();
    assert!(reader, "the breach timer's role still reads tickets");

    // The breach timer's query works on the swapped-in table, and the
    // service reads the same tickets.
    assert_eq!(overdue(&w, far).await, due_before);
    for v in &views {
        let id = TicketId(v.item.ticket_id);
        assert_eq!(&t.ticket(a.tenant, a.agent, id).await.unwrap(), v);
    }

    // The live projection carries on from the rebuild's checkpoint: a
    // change after the swap shows, once, and a second rebuild agrees.
    t.add_note(a.tenant, a.agent, t6.id, "Tras la reconstrucción.")
        .await
        .unwrap();
    citizen_writes(&w, &a, t6.id, "¿Alguna novedad?").await;
    catch_up(&w).await;
    let v6 = t.ticket(a.tenant, a.agent, t6.id).await.unwrap();
    assert_eq!((v6.notes_count, v6.messages.len()), (1, 2));
    let live = rows(&w).await;
    assert_eq!(
        live.len(),
        before.len() + 3,
        "one message, two timeline rows"
    );
    rebuild(&w.db.admin, w.log.as_ref(), &InboxProjection, 7, &())
        .await
        .unwrap();
    assert_eq!(rows(&w).await, live, "a second rebuild, in batches of 7");
    assert_eq!(catalogue(&w).await, schema);
}
