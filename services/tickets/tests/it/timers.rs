//! Response-time clocks: due instants counted in the tenant's business
//! hours, and breaches recorded by the timer once, as events in the
//! ticket's history.

use std::time::Duration as StdDuration;

use chrono::{Datelike, Duration, Timelike, Utc, Weekday};
use ventanilla_tickets::inbox::{InboxFilter, InboxSort};
use ventanilla_tickets::service::ReplyRequest;
use ventanilla_tickets::timers::BreachTimer;

use crate::support::World;

#[tokio::test]
async fn the_timer_records_each_overdue_clock_once_and_answered_tickets_never() {
    let w = World::new().await;
    let c = w.council("zamora").await;
    let other = w.council("toro").await;
    // Targets of 1 and 2 hours; no business hours set: calendar time.
    w.tickets
        .configure_service_levels(c.tenant, c.admin, 60, 120, 24)
        .await
        .unwrap();
    let late = w.question(&c, "Sin respuesta").await;
    let answered = w.question(&c, "Respondida a tiempo").await;
    let elsewhere = w.question(&other, "De otro concello").await;
    w.tickets
        .reply(
            c.tenant,
            c.agent,
            answered.id,
            &ReplyRequest {
                body: "Respondemos enseguida.".into(),
                ..ReplyRequest::default()
            },
        )
        .await
        .unwrap();
    let view = w.tickets.ticket(c.tenant, c.agent, late.id).await.unwrap();
    let due = view.first_response_due.unwrap();
    let opened = view.item.opened_at;
    assert!((due - opened - Duration::hours(1)).num_seconds().abs() <= 2);

    let timer = BreachTimer::new(w.tickets.clone(), StdDuration::from_secs(60));
    assert_eq!(timer.tick(Utc::now()).await.unwrap(), 0, "nothing due yet");
    // 90 minutes later: the unanswered ticket's first response is overdue;
    // the other council's ticket (4 h default) is not.
    let at = opened + Duration::minutes(90);
    assert_eq!(timer.tick(at).await.unwrap(), 1);
    // Again (another process, a repeated tick): nothing more.
    assert_eq!(timer.tick(at).await.unwrap(), 0);
    // 3 hours later: both tickets' resolution clocks are overdue, and the
    // unanswered one's breach is already recorded.
    assert_eq!(
        w.tickets
            .record_breaches(c.tenant, late.id, opened + Duration::hours(3))
            .await
            .unwrap(),
        1
    );
    assert_eq!(timer.tick(opened + Duration::hours(3)).await.unwrap(), 1);
    assert_eq!(timer.tick(opened + Duration::hours(3)).await.unwrap(), 0);
    // Five hours on, the other council's clocks are overdue too.
    assert_eq!(timer.tick(opened + Duration::hours(5)).await.unwrap(), 1);

    // The timer does not wait for the inbox; a reader right after does.
    let head = ventanilla_eventlog::EventLog::head(&*w.log).await.unwrap();
    ventanilla_postgres::projection::ensure_caught_up(
        std::sync::Arc::clone(&w.log),
        w.db.app.clone(),
        std::sync::Arc::new(ventanilla_tickets::inbox::InboxProjection),
        head,
        StdDuration::from_secs(15),
    )
    .await
    .unwrap();
    let view = w.tickets.ticket(c.tenant, c.agent, late.id).await.unwrap();
    assert!(view.item.breached);
    let breaches: Vec<&str> = view
        .history
        .iter()
        .filter(|h| h.event_type == "ticket.sla_breached")
        .map(|h| h.data["clock"].as_str().unwrap())
        .collect();
    assert_eq!(breaches, vec!["first_response", "resolution"]);
    // Still unanswered: it stays due (overdue) since its first-response due.
    assert_eq!(view.item.due_at, view.first_response_due);

    // The inbox filters on breaches.
    let breached = w
        .tickets
        .inbox(
            c.tenant,
            c.agent,
            &InboxFilter {
                breached: Some(true),
                ..InboxFilter::default()
            },
            InboxSort::DueTime,
            25,
            None,
        )
        .await
        .unwrap();
    assert_eq!(breached.items.len(), 2);
    let elsewhere = w
        .tickets
        .ticket(other.tenant, other.agent, elsewhere.id)
        .await
        .unwrap();
    assert!(elsewhere.item.breached);

    // Resolved tickets stop their clock: no more breaches, nothing overdue.
    w.tickets
        .resolve(c.tenant, c.agent, answered.id)
        .await
        .unwrap();
    w.tickets.resolve(c.tenant, c.agent, late.id).await.unwrap();
    let overdue: Vec<(uuid::Uuid, uuid::Uuid)> =
        sqlx::query_as("SELECT tenant_id, ticket_id FROM tickets_overdue($1, 100)")
            .bind(opened + Duration::days(30))
            .fetch_all(&w.db.app)
            .await
            .unwrap();
    assert_eq!(
        overdue,
        vec![(other.tenant.into_uuid(), elsewhere.item.ticket_id)],
        "only the other council's resolution clock still runs"
    );
}

#[tokio::test]
async fn due_instants_are_counted_in_business_hours() {
    let w = World::new().await;
    let c = w.council("teruel").await;
    let morning = vec![("09:00", "14:00")];
    w.org
        .set_business_hours(
            c.tenant,
            c.admin,
            "Europe/Madrid",
            [
                morning.clone(),
                morning.clone(),
                morning.clone(),
                morning.clone(),
                morning,
                vec![],
                vec![],
            ],
        )
        .await
        .unwrap();
    let t = w.question(&c, "Horario").await;
    let view = w.tickets.ticket(c.tenant, c.agent, t.id).await.unwrap();
    let due = view
        .first_response_due
        .unwrap()
        .with_timezone(&chrono_tz::Europe::Madrid);
    // Four business hours: the due instant falls inside opening hours on a
    // weekday, and the business time from opening to it is four hours.
    assert!(
        !matches!(due.weekday(), Weekday::Sat | Weekday::Sun),
        "{due}"
    );
    assert!((9..=14).contains(&due.hour()), "{due}");
    let calendar = w.tickets.tenancy().calendar(c.tenant).await.unwrap();
    assert_eq!(
        calendar.elapsed(view.item.opened_at, view.first_response_due.unwrap()),
        Duration::hours(4)
    );
    let resolution = view.resolution_due.unwrap();
    assert_eq!(
        calendar.elapsed(view.item.opened_at, resolution),
        Duration::hours(40)
    );
    assert!(
        resolution - view.item.opened_at >= Duration::days(8),
        "40 h of 5 h days"
    );
}
