//! The three requests and the inbox workflow, end to end through the log
//! and the `inbox` read model; every refusal writes nothing.

use uuid::Uuid;
use ventanilla_tickets::inbox::{InboxFilter, InboxSort};
use ventanilla_tickets::service::{AssignTo, Delivery, OpenRequest, Origin, ReplyRequest};
use ventanilla_tickets_domain::ticket::{Status, TicketId};

use crate::support::{World, question};

#[tokio::test]
async fn a_question_is_opened_answered_resolved_and_followed_by_the_citizen() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let opened = w.question(&c, "Farola fundida").await;
    assert!(
        opened.reference.starts_with("LUGO-2026-") || opened.reference.starts_with("LUGO-20"),
        "{}",
        opened.reference
    );
    assert!(
        opened.reference.ends_with("-000001"),
        "{}",
        opened.reference
    );
    let token = opened.tracking_token.clone().unwrap();
    assert_eq!(token.len(), 64);

    // The inbox shows it at once (read-your-writes), due in business time.
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, opened.id)
        .await
        .unwrap();
    assert_eq!(view.item.status, "new");
    assert_eq!(view.item.channel, "web");
    assert!(view.item.awaiting_reply);
    assert!(view.first_response_due.is_some() && view.resolution_due.is_some());
    assert_eq!(view.messages.len(), 1);
    assert_eq!(view.messages[0].direction, "in");

    // The tracking token is stored hashed only.
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE data::text LIKE $1")
        .bind(format!("%{token}%"))
        .fetch_one(&w.db.admin)
        .await
        .unwrap();
    assert_eq!(stored, 0);

    let reply = w
        .tickets
        .reply(
            c.tenant,
            c.agent,
            opened.id,
            &ReplyRequest {
                body: "Gracias, avisamos al servicio de alumbrado.".into(),
                channel: None,
                wait_for_citizen: false,
            },
        )
        .await
        .unwrap();
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, opened.id)
        .await
        .unwrap();
    assert_eq!(view.item.status, "open");
    assert!(!view.item.awaiting_reply);
    assert!(view.first_response_at.is_some());
    assert_eq!(
        view.first_response_due, None,
        "the first-response clock stopped"
    );
    let out = &view.messages[1];
    assert_eq!(
        (
            out.direction.as_str(),
            out.channel.as_str(),
            out.delivery_state.as_deref()
        ),
        ("out", "web", Some("pending"))
    );

    w.tickets
        .record_delivery(
            c.tenant,
            opened.id,
            reply,
            Delivery::Failed {
                reason: "the citizen's mailbox is full".into(),
            },
        )
        .await
        .unwrap();
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, opened.id)
        .await
        .unwrap();
    assert_eq!(view.messages[1].delivery_state.as_deref(), Some("failed"));
    assert_eq!(
        view.messages[1].failure_reason.as_deref(),
        Some("the citizen's mailbox is full")
    );

    w.tickets
        .add_note(c.tenant, c.agent, opened.id, "Llamé a alumbrado.")
        .await
        .unwrap();
    w.tickets
        .tag(c.tenant, c.agent, opened.id, "alumbrado")
        .await
        .unwrap();
    w.tickets
        .set_priority(c.tenant, c.agent, opened.id, "high")
        .await
        .unwrap();
    w.tickets
        .assign(c.tenant, c.agent, opened.id, AssignTo::Agent(c.agent))
        .await
        .unwrap();
    w.tickets
        .resolve(c.tenant, c.agent, opened.id)
        .await
        .unwrap();
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, opened.id)
        .await
        .unwrap();
    assert_eq!(view.item.status, "resolved");
    assert_eq!(view.item.tags, vec!["alumbrado".to_owned()]);
    assert_eq!(view.item.priority, "high");
    assert_eq!(view.item.assignee_id, Some(c.agent.0));
    assert_eq!(view.notes_count, 1);
    assert_eq!(view.resolution_due, None);
    let types: Vec<&str> = view.history.iter().map(|h| h.event_type.as_str()).collect();
    assert!(types.contains(&"ticket.note_added"), "{types:?}");
    assert!(
        types
            .windows(2)
            .any(|p| p == ["ticket.resolved", "ticket.status_changed"])
    );

    // The citizen follows it with the token, and sees no internal note.
    let seen = w
        .tickets
        .follow(c.tenant, &opened.reference, &token)
        .await
        .unwrap();
    assert_eq!(seen.status, "resolved");
    assert_eq!(seen.messages.len(), 2);
    let wrong = w
        .tickets
        .follow(c.tenant, &opened.reference, &"0".repeat(64))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), "NOT_FOUND");
}

#[tokio::test]
async fn questions_for_a_department_or_official_land_in_the_queue_or_are_refused() {
    let w = World::new().await;
    let c = w.council("ourense").await;
    let for_department = w
        .tickets
        .open(
            c.tenant,
            Origin::Api {
                key: Uuid::new_v4(),
            },
            &OpenRequest {
                kind: "question_for".into(),
                department: Some(c.department),
                ..question("Licencia de obra menor")
            },
        )
        .await
        .unwrap();
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, for_department.id)
        .await
        .unwrap();
    assert_eq!(
        (
            view.item.kind.as_str(),
            view.item.channel.as_str(),
            view.item.department_id
        ),
        ("question_for", "api", Some(c.department))
    );
    let for_official = w
        .tickets
        .open(
            c.tenant,
            Origin::Web,
            &OpenRequest {
                kind: "question_for".into(),
                official: Some(c.official),
                ..question("Pregunta a la concejala")
            },
        )
        .await
        .unwrap();
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, for_official.id)
        .await
        .unwrap();
    assert_eq!(
        view.item.department_id,
        Some(c.department),
        "the official's department queue"
    );
    assert_eq!(view.addressee_official_id, Some(c.official));

    let before = w.event_count().await;
    let refusals = [
        (
            OpenRequest {
                kind: "question_for".into(),
                official: Some(c.private_official),
                ..question("Pregunta al secretario")
            },
            "CONFLICT",
        ),
        (
            OpenRequest {
                kind: "question_for".into(),
                department: Some(Uuid::new_v4()),
                ..question("Departamento inventado")
            },
            "NOT_FOUND",
        ),
        (
            OpenRequest {
                body: "   ".into(),
                ..question("Vacía")
            },
            "VALIDATION",
        ),
        (
            OpenRequest {
                body: "x".repeat(20_001),
                ..question("Demasiado larga")
            },
            "VALIDATION",
        ),
        (
            OpenRequest {
                email: None,
                ..question("Sin contacto")
            },
            "VALIDATION",
        ),
        (
            OpenRequest {
                kind: "queja".into(),
                ..question("Tipo inventado")
            },
            "VALIDATION",
        ),
    ];
    for (request, code) in refusals {
        let e = w
            .tickets
            .open(c.tenant, Origin::Web, &request)
            .await
            .unwrap_err();
        assert_eq!(e.code(), code, "{request:?}: {e}");
    }
    assert_eq!(w.event_count().await, before, "refusals write nothing");
}

#[tokio::test]
async fn a_retried_request_opens_one_ticket_with_one_reference() {
    let w = World::new().await;
    let c = w.council("vigo").await;
    let key = Uuid::new_v4();
    let request = OpenRequest {
        idempotency_key: Some(key),
        ..question("Bache en la avenida")
    };
    let first = w
        .tickets
        .open(c.tenant, Origin::Web, &request)
        .await
        .unwrap();
    let again = w
        .tickets
        .open(c.tenant, Origin::Web, &request)
        .await
        .unwrap();
    assert_eq!((first.id, &first.reference), (again.id, &again.reference));
    assert!(first.tracking_token.is_some());
    assert_eq!(again.tracking_token, None, "the token is shown once");
    let next = w.question(&c, "Otra cosa").await;
    assert!(next.reference.ends_with("-000002"), "{}", next.reference);
    let opened: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ticket.opened'")
            .fetch_one(&w.db.admin)
            .await
            .unwrap();
    assert_eq!(opened, 2);
}

#[tokio::test]
async fn staff_refusals_are_typed_and_write_nothing() {
    let w = World::new().await;
    let c = w.council("leon").await;
    let other = w.council("burgos").await;
    let t = w.question(&c, "Ruido nocturno").await;
    w.tickets.close(c.tenant, c.agent, t.id).await.unwrap();
    let before = w.event_count().await;
    let reply = ReplyRequest {
        body: "Respuesta".into(),
        ..ReplyRequest::default()
    };

    let e = w
        .tickets
        .reply(c.tenant, c.agent, t.id, &reply)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "CONFLICT", "{e}");
    let e = w
        .tickets
        .assign(c.tenant, c.agent, t.id, AssignTo::Agent(other.agent))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND", "{e}");
    let open = w.question(&c, "Otra").await;
    let before_open = w.event_count().await;
    let e = w
        .tickets
        .assign(c.tenant, c.agent, open.id, AssignTo::Agent(other.agent))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND", "an agent of another tenant: {e}");
    let e = w
        .tickets
        .assign(
            c.tenant,
            c.agent,
            open.id,
            AssignTo::Department(Uuid::new_v4()),
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND", "{e}");
    let e = w
        .tickets
        .reply(
            c.tenant,
            c.agent,
            open.id,
            &ReplyRequest {
                channel: Some("x".into()),
                ..reply.clone()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code(), "VALIDATION", "the citizen never wrote on X: {e}");
    // Staff of another tenant cannot touch this tenant's tickets, nor see them.
    let e = w
        .tickets
        .reply(c.tenant, other.agent, open.id, &reply)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "FORBIDDEN");
    let e = w
        .tickets
        .ticket(other.tenant, other.agent, open.id)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND");
    let e = w
        .tickets
        .reply(other.tenant, other.agent, open.id, &reply)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND");
    let e = w
        .tickets
        .ticket(c.tenant, c.agent, TicketId(Uuid::new_v4()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND");
    // Agents may not change the service levels; admins may, within bounds.
    let e = w
        .tickets
        .configure_service_levels(c.tenant, c.agent, 60, 600, 48)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "FORBIDDEN");
    let e = w
        .tickets
        .configure_service_levels(c.tenant, c.admin, 0, 600, 48)
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.field()),
        ("VALIDATION", Some("first_response"))
    );
    assert_eq!(w.event_count().await, before_open);
    assert!(before_open > before);

    // A suspended tenant is refused at once.
    w.op.suspend(&c.slug, "impago").await.unwrap();
    let e = w.question_result(&c).await.unwrap_err();
    assert_eq!(e.code(), "TENANT_SUSPENDED");
}

#[tokio::test]
async fn merging_keeps_both_histories_and_the_inbox_filters_and_counts() {
    let w = World::new().await;
    let c = w.council("soria").await;
    let a = w.question(&c, "Contenedor roto").await;
    let b = w.question(&c, "Contenedor roto (otra vez)").await;
    w.tickets
        .merge(c.tenant, c.agent, b.id, a.id)
        .await
        .unwrap();
    w.tickets
        .merge(c.tenant, c.agent, b.id, a.id)
        .await
        .unwrap();
    let dup = w.tickets.ticket(c.tenant, c.agent, b.id).await.unwrap();
    assert_eq!(
        (dup.item.status.as_str(), dup.merged_into),
        ("closed", Some(a.id.0))
    );
    assert_eq!(dup.messages.len(), 1, "the duplicate keeps its thread");
    let kept = w.tickets.ticket(c.tenant, c.agent, a.id).await.unwrap();
    assert!(
        kept.history
            .iter()
            .any(|h| h.event_type == "ticket.merged_from")
    );

    let third = w.question(&c, "Árbol caído").await;
    w.tickets
        .tag(c.tenant, c.agent, third.id, "parques")
        .await
        .unwrap();
    let counts = w.tickets.status_counts(c.tenant, c.agent).await.unwrap();
    assert_eq!(counts, vec![("closed".into(), 1), ("new".into(), 2)]);
    let page = w
        .tickets
        .inbox(
            c.tenant,
            c.agent,
            &InboxFilter {
                status: Some(Status::New),
                ..InboxFilter::default()
            },
            InboxSort::LastActivity,
            1,
            None,
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(
        page.items[0].ticket_id, third.id.0,
        "most recent activity first"
    );
    let rest = w
        .tickets
        .inbox(
            c.tenant,
            c.agent,
            &InboxFilter {
                status: Some(Status::New),
                ..InboxFilter::default()
            },
            InboxSort::LastActivity,
            10,
            page.next.as_deref(),
        )
        .await
        .unwrap();
    assert_eq!(rest.items.len(), 1);
    assert_eq!(rest.items[0].ticket_id, a.id.0);
    assert_eq!(rest.next, None);
    let tagged = w
        .tickets
        .inbox(
            c.tenant,
            c.agent,
            &InboxFilter {
                tag: Some("parques".into()),
                ..InboxFilter::default()
            },
            InboxSort::DueTime,
            25,
            None,
        )
        .await
        .unwrap();
    assert_eq!(tagged.items.len(), 1);
    let e = w
        .tickets
        .inbox(
            c.tenant,
            c.agent,
            &InboxFilter::default(),
            InboxSort::LastActivity,
            25,
            Some("garbage"),
        )
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.field()), ("VALIDATION", Some("after")));
}

#[tokio::test]
async fn staff_find_a_ticket_by_its_reference_in_their_tenant_only() {
    let w = World::new().await;
    let c = w.council("avila").await;
    let other = w.council("segovia").await;
    let t = w.question(&c, "Padrón").await;
    let found = w
        .tickets
        .by_reference(c.tenant, c.agent, &t.reference.to_lowercase())
        .await
        .unwrap();
    assert_eq!(found, t.id);
    let e = w
        .tickets
        .by_reference(other.tenant, other.agent, &t.reference)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "NOT_FOUND");
    let e = w
        .tickets
        .by_reference(c.tenant, c.agent, "no-es-una-referencia")
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.field()), ("VALIDATION", Some("reference")));
}
