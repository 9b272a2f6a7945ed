//! Presence health: a small history placed on chosen days (events written
//! through the runner at chosen instants), and the figures it must give,
//! day by day in the tenant's time zone (Europe/Madrid, UTC+1 in March
//! 2025): channels, answered share, first-response percentiles, social
//! messages left unanswered, resolutions and reopenings; quiet days as
//! zeros; another tenant's tickets never counted; bad ranges and strangers
//! refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, Position};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::projection::ensure_caught_up;
use ventanilla_tenants_domain::staff::StaffId;
use ventanilla_tickets::health::{PresenceDay, presence};
use ventanilla_tickets::inbox::InboxProjection;
use ventanilla_tickets::service::tracking_hash;
use ventanilla_tickets_domain::ticket::{
    self as domain, MessageId, OpenTicket, Ticket, TicketCommand, TicketId,
};
use ventanilla_tickets_domain::values::{
    AgentId, Body, Channel, Contact, Kind, Reference, Subject,
};

use crate::support::{Council, World};

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// Writes a tenant's ticket events at chosen instants, straight through the
/// runner, and then waits for the inbox to show them.
struct History<'w> {
    w: &'w World,
    tenant: TenantId,
    agent: AgentId,
    prefix: &'static str,
    opened: u64,
    last: Option<Position>,
}

impl<'w> History<'w> {
    fn new(w: &'w World, c: &Council, prefix: &'static str) -> Self {
        Self {
            w,
            tenant: c.tenant,
            agent: AgentId(c.agent.0),
            prefix,
            opened: 0,
            last: None,
        }
    }

    async fn run(&mut self, now: &str, id: TicketId, command: TicketCommand) {
        let done = self
            .w
            .runner()
            .execute::<Ticket>(
                &CommandContext::new(self.tenant, at(now), Actor::system("test")),
                &domain::stream_id(id).unwrap(),
                &command,
            )
            .await
            .unwrap();
        assert!(!done.events.is_empty(), "{command:?} changed nothing");
        self.last = done.position.or(self.last);
    }

    /// Opens a ticket on `channel` at `now`.
    async fn open(&mut self, now: &str, channel: Channel) -> TicketId {
        self.opened += 1;
        let id = TicketId(Uuid::new_v4());
        let command = TicketCommand::Open(Box::new(OpenTicket {
            id,
            kind: Kind::Question,
            channel,
            contact: Contact::parse(
                Some("Vecina"),
                Some("vecina@correo.es"),
                None,
                Some("@vecina"),
            )
            .unwrap(),
            subject: Subject::parse("subject", "Farola fundida").unwrap(),
            body: Body::parse("body", "La farola de mi calle no luce.").unwrap(),
            message_id: MessageId(Uuid::new_v4()),
            platform_id: channel.is_social().then(|| format!("m{}", self.opened)),
            // Year 2025: the service draws this year's numbers.
            reference: Reference::format(self.prefix, 2025, self.opened).unwrap(),
            tracking: tracking_hash(&format!("token-{id}")).unwrap(),
            notify_citizen: false,
            addressee_accepts: None,
            first_response_due: None,
            resolution_due: None,
        }));
        self.run(now, id, command).await;
        id
    }

    /// The first reply, `business` of business time after the opening (the
    /// service would measure it on the tenant's hours).
    async fn reply(&mut self, now: &str, id: TicketId, business: Duration) {
        let command = TicketCommand::Reply {
            message_id: MessageId(Uuid::new_v4()),
            by: self.agent,
            body: Body::parse("body", "Gracias, lo miramos.").unwrap(),
            channel: None,
            wait_for_citizen: false,
            business_time_since_opened: Some(business),
        };
        self.run(now, id, command).await;
    }

    async fn resolve(&mut self, now: &str, id: TicketId) {
        let by = self.agent;
        self.run(now, id, TicketCommand::Resolve { by }).await;
    }

    /// The citizen writes again on `channel` (reopening a resolved ticket).
    async fn receive(&mut self, now: &str, id: TicketId, channel: Channel) {
        let command = TicketCommand::ReceiveMessage {
            message_id: MessageId(Uuid::new_v4()),
            channel,
            body: Body::parse("body", "Sigue igual.").unwrap(),
            platform_id: None,
            reopen_window: Duration::hours(72),
            resolution_due_on_reopen: None,
        };
        self.run(now, id, command).await;
    }

    /// Waits until the inbox shows everything written.
    async fn settle(&self) {
        let Some(target) = self.last else { return };
        ensure_caught_up(
            Arc::clone(&self.w.log),
            self.w.db.app.clone(),
            Arc::new(InboxProjection),
            target,
            StdDuration::from_secs(30),
        )
        .await
        .unwrap();
    }
}

fn quiet(d: &str) -> PresenceDay {
    PresenceDay {
        day: day(d),
        received: 0,
        received_by_channel: BTreeMap::new(),
        answered: 0,
        answered_share: None,
        first_response_median_secs: None,
        first_response_p90_secs: None,
        social_unanswered: 0,
        resolved: 0,
        reopened: 0,
    }
}

fn channels(counts: &[(&str, i64)]) -> BTreeMap<String, i64> {
    counts.iter().map(|(c, n)| ((*c).to_owned(), *n)).collect()
}

/// The history of the main test, in Madrid days (UTC+1):
///
/// - 2025-03-02: a Facebook ticket opened and resolved at 23:59 local, the
///   day before the range, never answered.
/// - 2025-03-03 (D1): web, e-mail and two Facebook tickets; three answered
///   after 1800, 600 and 3600 business seconds; one Facebook ticket never
///   answered, the other answered the next day; the web ticket resolved at
///   13:00 local.
/// - 2025-03-04 (D2): a web ticket opened at 00:30 local (23:30 UTC the day
///   before), answered after 7200 s; an API ticket not answered; the web
///   ticket of D1 reopened at 00:30 local and the e-mail ticket resolved at
///   00:45 local (both the day before in UTC); a second Facebook message on
///   the ticket answered that morning, after the answer, left unanswered.
/// - 2025-03-05 (D3): nothing.
/// - 2025-03-06 (D4): a WhatsApp ticket at 23:59 local, never answered; a
///   web ticket at 00:00 local the next day (outside the range).
async fn lugo_history(w: &World, c: &Council) {
    let mut h = History::new(w, c, "HIST");
    let before = h.open("2025-03-02T22:59:00Z", Channel::Facebook).await;
    h.resolve("2025-03-02T22:59:30Z", before).await;

    let t1 = h.open("2025-03-03T09:00:00Z", Channel::Web).await;
    h.reply("2025-03-03T09:30:00Z", t1, Duration::minutes(30))
        .await;
    h.resolve("2025-03-03T12:00:00Z", t1).await;
    h.receive("2025-03-03T23:30:00Z", t1, Channel::Web).await;

    let t2 = h.open("2025-03-03T10:00:00Z", Channel::Email).await;
    h.reply("2025-03-03T10:10:00Z", t2, Duration::minutes(10))
        .await;
    h.resolve("2025-03-03T23:45:00Z", t2).await;

    let _t3 = h.open("2025-03-03T11:00:00Z", Channel::Facebook).await;

    let t4 = h.open("2025-03-03T13:00:00Z", Channel::Facebook).await;
    h.reply("2025-03-04T08:00:00Z", t4, Duration::hours(1))
        .await;
    h.receive("2025-03-04T09:00:00Z", t4, Channel::Facebook)
        .await;

    let t5 = h.open("2025-03-03T23:30:00Z", Channel::Web).await;
    h.reply("2025-03-04T09:00:00Z", t5, Duration::hours(2))
        .await;
    let _t6 = h.open("2025-03-04T10:00:00Z", Channel::Api).await;

    let _t7 = h.open("2025-03-06T22:59:00Z", Channel::Whatsapp).await;
    let after = h.open("2025-03-06T23:00:00Z", Channel::Web).await;
    h.resolve("2025-03-06T23:00:30Z", after).await;
    h.settle().await;
}

/// The figures `lugo_history` must give for 2025-03-03 to 2025-03-06.
fn lugo_figures() -> Vec<PresenceDay> {
    vec![
        PresenceDay {
            received: 4,
            received_by_channel: channels(&[("email", 1), ("facebook", 2), ("web", 1)]),
            answered: 3,
            answered_share: Some(0.75),
            // [600, 1800, 3600]: the median is 1800; the 90th percentile
            // lies at 0.9 × 2 = 1.8 → 1800 + 0.8 × (3600 − 1800) = 3240.
            first_response_median_secs: Some(1800.0),
            first_response_p90_secs: Some(3240.0),
            social_unanswered: 1,
            resolved: 1,
            reopened: 0,
            ..quiet("2025-03-03")
        },
        PresenceDay {
            received: 2,
            received_by_channel: channels(&[("api", 1), ("web", 1)]),
            answered: 1,
            answered_share: Some(0.5),
            first_response_median_secs: Some(7200.0),
            first_response_p90_secs: Some(7200.0),
            social_unanswered: 1,
            resolved: 1,
            reopened: 1,
            ..quiet("2025-03-04")
        },
        quiet("2025-03-05"),
        PresenceDay {
            received: 1,
            received_by_channel: channels(&[("whatsapp", 1)]),
            answered: 0,
            answered_share: Some(0.0),
            social_unanswered: 1,
            ..quiet("2025-03-06")
        },
    ]
}

#[tokio::test]
async fn presence_figures_count_each_local_day_exactly() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let other = w.council("ourense").await;
    lugo_history(&w, &c).await;

    // Another tenant, busy on the same days, with the same references.
    let mut o = History::new(&w, &other, "HIST");
    let x = o.open("2025-03-03T09:00:00Z", Channel::Facebook).await;
    let y = o.open("2025-03-04T10:00:00Z", Channel::Web).await;
    o.reply("2025-03-04T10:05:00Z", y, Duration::minutes(5))
        .await;
    o.resolve("2025-03-04T11:00:00Z", y).await;
    o.receive("2025-03-04T12:00:00Z", y, Channel::Web).await;
    o.resolve("2025-03-06T12:00:00Z", x).await;
    o.settle().await;

    let figures = w
        .tickets
        .presence_health(c.tenant, c.agent, day("2025-03-03"), day("2025-03-06"))
        .await
        .unwrap();
    assert_eq!(figures, lugo_figures());

    // The other tenant sees its own, and the admin as much as an agent.
    let theirs = w
        .tickets
        .presence_health(
            other.tenant,
            other.admin,
            day("2025-03-03"),
            day("2025-03-06"),
        )
        .await
        .unwrap();
    assert_eq!(
        theirs,
        vec![
            PresenceDay {
                received: 1,
                received_by_channel: channels(&[("facebook", 1)]),
                answered_share: Some(0.0),
                social_unanswered: 1,
                ..quiet("2025-03-03")
            },
            PresenceDay {
                received: 1,
                received_by_channel: channels(&[("web", 1)]),
                answered: 1,
                answered_share: Some(1.0),
                first_response_median_secs: Some(300.0),
                first_response_p90_secs: Some(300.0),
                resolved: 1,
                reopened: 1,
                ..quiet("2025-03-04")
            },
            quiet("2025-03-05"),
            PresenceDay {
                resolved: 1,
                ..quiet("2025-03-06")
            },
        ]
    );

    // One day, and the same days asked for in another time zone (UTC):
    // the boundary events fall on the other side.
    let one = w
        .tickets
        .presence_health(c.tenant, c.agent, day("2025-03-05"), day("2025-03-05"))
        .await
        .unwrap();
    assert_eq!(one, vec![quiet("2025-03-05")]);
    let mut tx = ventanilla_postgres::begin_for_tenant(&w.db.app, c.tenant)
        .await
        .unwrap();
    let utc = presence(
        &mut tx,
        chrono_tz::UTC,
        day("2025-03-03"),
        day("2025-03-04"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let d1 = &utc[0];
    assert_eq!(
        (d1.received, d1.resolved, d1.reopened),
        (5, 2, 1),
        "at 23:30 and 23:45 UTC it is still the 3rd in UTC: {d1:?}"
    );
    assert_eq!(
        d1.received_by_channel,
        channels(&[("email", 1), ("facebook", 2), ("web", 2)])
    );
}

#[tokio::test]
async fn a_scoped_connection_without_a_tenant_sees_nothing() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    lugo_history(&w, &c).await;
    // No tenant set: the filter (and row-level security) match no row.
    let mut tx = w.db.app.begin().await.unwrap();
    let figures = presence(
        &mut tx,
        chrono_tz::Europe::Madrid,
        day("2025-03-03"),
        day("2025-03-06"),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let quiet_days: Vec<PresenceDay> = ["2025-03-03", "2025-03-04", "2025-03-05", "2025-03-06"]
        .into_iter()
        .map(quiet)
        .collect();
    assert_eq!(figures, quiet_days);
}

#[tokio::test]
async fn todays_tickets_opened_through_the_service_count_today() {
    let w = World::new().await;
    let c = w.council("vigo").await;
    let opened = w.question(&c, "Bache en la avenida").await;
    let view = w
        .tickets
        .ticket(c.tenant, c.agent, opened.id)
        .await
        .unwrap();
    let today = view
        .item
        .opened_at
        .with_timezone(&chrono_tz::Europe::Madrid)
        .date_naive();
    let figures = w
        .tickets
        .presence_health(c.tenant, c.agent, today - Duration::days(1), today)
        .await
        .unwrap();
    assert_eq!(figures.len(), 2);
    assert_eq!(figures[0], quiet(&(today - Duration::days(1)).to_string()));
    assert_eq!(
        (
            figures[1].received,
            figures[1].answered,
            figures[1].answered_share
        ),
        (1, 0, Some(0.0))
    );
    assert_eq!(figures[1].received_by_channel, channels(&[("web", 1)]));
}

#[tokio::test]
async fn bad_ranges_and_strangers_are_refused() {
    let w = World::new().await;
    let c = w.council("leon").await;
    let other = w.council("burgos").await;
    let from = day("2025-03-03");

    let e = w
        .tickets
        .presence_health(c.tenant, c.agent, from, from - Duration::days(1))
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.field()), ("VALIDATION", Some("to")));
    let e = w
        .tickets
        .presence_health(c.tenant, c.agent, from, from + Duration::days(366))
        .await
        .unwrap_err();
    assert_eq!((e.code(), e.field()), ("VALIDATION", Some("from")));
    // 366 days is the most: a row for each.
    let year = w
        .tickets
        .presence_health(c.tenant, c.agent, from, from + Duration::days(365))
        .await
        .unwrap();
    assert_eq!(year.len(), 366);
    assert_eq!(year.last().unwrap().day, from + Duration::days(365));
    assert!(year.iter().all(|d| d.received == 0 && d.resolved == 0));

    // Staff of another tenant, someone unknown, an invitation not accepted.
    let e = w
        .tickets
        .presence_health(c.tenant, other.agent, from, from)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "FORBIDDEN", "{e}");
    let e = w
        .tickets
        .presence_health(c.tenant, StaffId(Uuid::new_v4()), from, from)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "FORBIDDEN", "{e}");
    let invited = w
        .staff(
            c.tenant,
            ventanilla_tenants_domain::staff::Role::Agent,
            false,
        )
        .await;
    let e = w
        .tickets
        .presence_health(c.tenant, invited, from, from)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "FORBIDDEN", "{e}");

    // A suspended tenant is refused whoever asks.
    w.op.suspend(&c.slug, "impago").await.unwrap();
    let e = w
        .tickets
        .presence_health(c.tenant, c.agent, from, from)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "TENANT_SUSPENDED");
}
