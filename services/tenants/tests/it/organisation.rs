//! The organisation service end to end: a tenant admin sets up the directory,
//! business hours, holidays and portal through the log, reads them back from
//! the `organisation` read models, and is refused what they may not do; the
//! read models are isolated per tenant and rebuild to the same rows.

use std::sync::Arc;

use chrono::{Duration, NaiveDate, Utc};
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandRunner, Limits};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_tenants::operator::{Operator, ProvisionRequest};
use ventanilla_tenants::organisation::{
    DirectoryView, Interval, OfficialInput, Organisation, OrganisationError,
    OrganisationProjection, PortalInput, ScheduleView,
};
use ventanilla_tenants::secrets;
use ventanilla_tenants_domain::organisation::{DepartmentId, TopicId};
use ventanilla_tenants_domain::staff::{
    self, PasswordHash, Role, StaffCommand, StaffId, StaffMember,
};
use ventanilla_tenants_domain::values::{Email, Name};
use ventanilla_testkit::TestDb;

const PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";

fn request(slug: &str) -> ProvisionRequest {
    ProvisionRequest {
        name: format!("Concello de {slug}"),
        slug: slug.to_owned(),
        kind: "council".into(),
        admin_email: format!("alcaldia@{slug}.gal"),
        languages: vec!["es".into(), "gl".into()],
        ..ProvisionRequest::default()
    }
}

struct World {
    db: TestDb,
    log: Arc<PgEventLog>,
    op: Operator,
    org: Organisation,
}

/// A tenant and its first admin, who has accepted the invitation.
struct Council {
    tenant: TenantId,
    slug: String,
    admin: StaffId,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
        Self {
            op: Operator::new(Arc::clone(&log), "test-operator"),
            org: Organisation::new(Arc::clone(&log)),
            log,
            db,
        }
    }

    fn runner(&self) -> CommandRunner<PgEventLog> {
        CommandRunner::new(Arc::clone(&self.log), 3)
    }

    /// Provisions `slug`; its admin accepts the invitation (straight through
    /// the staff aggregate, not the staff service).
    async fn council(&self, slug: &str) -> Council {
        let provisioned = self.op.provision(&request(slug)).await.unwrap();
        let admin = provisioned.admin;
        self.runner()
            .execute::<StaffMember>(
                &CommandContext::new(
                    provisioned.tenant,
                    Utc::now(),
                    Actor::Staff {
                        id: admin.to_string(),
                    },
                ),
                &staff::stream_id(admin).unwrap(),
                &StaffCommand::AcceptInvitation {
                    invitation: secrets::hash_token(&provisioned.invitation_code).unwrap(),
                    password: PasswordHash::parse("password", PASSWORD_HASH).unwrap(),
                },
            )
            .await
            .unwrap();
        Council {
            tenant: provisioned.tenant,
            slug: provisioned.slug,
            admin,
        }
    }

    /// Invites a staff member of `role` into `tenant`; accepts the invitation
    /// when `accept`.
    async fn staff(&self, tenant: TenantId, role: Role, accept: bool) -> StaffId {
        let id = StaffId(Uuid::new_v4());
        let (code, invitation) = secrets::new_token().unwrap();
        let ctx = CommandContext::new(tenant, Utc::now(), Actor::system("test"));
        let stream = staff::stream_id(id).unwrap();
        self.runner()
            .execute::<StaffMember>(
                &ctx,
                &stream,
                &StaffCommand::Invite {
                    id,
                    email: Email::parse("email", &format!("{id}@example.org")).unwrap(),
                    name: Name::parse("name", "Persona", 120).unwrap(),
                    role,
                    invitation,
                    expires_at: Utc::now() + Duration::days(1),
                    invited_by: None,
                },
            )
            .await
            .unwrap();
        if accept {
            self.runner()
                .execute::<StaffMember>(
                    &ctx,
                    &stream,
                    &StaffCommand::AcceptInvitation {
                        invitation: secrets::hash_token(&code).unwrap(),
                        password: PasswordHash::parse("password", PASSWORD_HASH).unwrap(),
                    },
                )
                .await
                .unwrap();
        }
        id
    }

    /// How many events the organisation's streams hold.
    async fn organisation_events(&self) -> i64 {
        sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE stream_id IN ('directory', 'schedule', 'portal')",
        )
        .fetch_one(&self.db.admin)
        .await
        .unwrap()
    }

    /// Every row of the organisation's read models, as text, in a stable
    /// order (all tenants: read as the owner).
    async fn rows(&self) -> Vec<String> {
        let mut all = Vec::new();
        for (table, order) in [
            ("departments", "tenant_id, department_id"),
            ("officials", "tenant_id, official_id"),
            ("topics", "tenant_id, topic_id"),
            ("business_hours", "tenant_id"),
            ("holidays", "tenant_id, date"),
            ("portal_settings", "tenant_id"),
        ] {
            let rows: Vec<String> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                "SELECT '{table} ' || row_to_json(t)::text FROM {table} t ORDER BY {order}"
            )))
            .fetch_all(&self.db.admin)
            .await
            .unwrap();
            all.extend(rows);
        }
        all
    }
}

fn official<'a>(
    name: &'a str,
    role: &'a str,
    department: Option<DepartmentId>,
    accepts: bool,
) -> OfficialInput<'a> {
    OfficialInput {
        name,
        role,
        department,
        accepts_public_questions: accepts,
    }
}

fn office_week() -> [Vec<(&'static str, &'static str)>; 7] {
    [
        vec![("09:00", "14:00")],
        vec![("09:00", "14:00")],
        vec![("09:00", "14:00")],
        vec![("16:00", "19:00"), ("09:00", "14:00")],
        vec![("09:00", "14:00")],
        vec![],
        vec![],
    ]
}

fn interval(start: &str, end: &str) -> Interval {
    Interval {
        start: start.into(),
        end: end.into(),
    }
}

fn portal_input() -> PortalInput<'static> {
    PortalInput {
        public_name: "Concello de Lugo",
        logo_url: Some("https://lugo.gal/logo.png"),
        primary_colour: "#1A5FB4",
        accent_colour: Some("#e01b24"),
        languages: vec!["gl", "es"],
        social_links: vec![
            ("facebook", "https://facebook.com/concellodelugo"),
            ("bluesky", "https://bsky.app/profile/lugo.gal"),
        ],
    }
}

fn assert_refused(
    result: Result<impl std::fmt::Debug, OrganisationError>,
    code: &str,
) -> OrganisationError {
    let e = result.expect_err("expected a refusal");
    assert_eq!(e.code(), code, "{e}");
    let m = e.to_string();
    assert!(
        m.starts_with(|c: char| c.is_lowercase()) && !m.ends_with('.'),
        "{m}"
    );
    e
}

fn assert_invalid(result: Result<impl std::fmt::Debug, OrganisationError>, field: &str) {
    let e = assert_refused(result, "VALIDATION");
    assert_eq!(e.field(), Some(field), "{e}");
    assert!(
        matches!(e, OrganisationError::Invalid(ref v) if v.field == field),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_directory_reads_back_what_the_admin_wrote() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let (t, by) = (c.tenant, c.admin);

    let empty = w.org.directory(t).await.unwrap();
    assert!(empty.departments.is_empty() && empty.officials.is_empty() && empty.topics.is_empty());

    let urbanismo = w
        .org
        .add_department(t, by, " Urbanismo ", Some("Licencias de obra"))
        .await
        .unwrap();
    let cultura = w
        .org
        .add_department(t, by, "Cultura", Some("  "))
        .await
        .unwrap();
    let alcaldia = w
        .org
        .add_official(t, by, &official("Alcaldía", "Alcaldesa", None, true))
        .await
        .unwrap();
    let concejal = w
        .org
        .add_official(
            t,
            by,
            &official("Concejalía de Urbanismo", "Concejal", Some(urbanismo), true),
        )
        .await
        .unwrap();
    let interventor = w
        .org
        .add_official(t, by, &official("Intervención", "Interventor", None, false))
        .await
        .unwrap();
    let obras = w
        .org
        .add_topic(t, by, "Obras en la vía pública", Some("Cortes de calles"))
        .await
        .unwrap();
    let agenda = w
        .org
        .add_topic(t, by, "Agenda cultural", None)
        .await
        .unwrap();

    // Read-your-writes: no projection process runs, yet the reads show it all.
    let d = w.org.directory(t).await.unwrap();
    let departments: Vec<_> = d
        .departments
        .iter()
        .map(|x| (x.id, x.name.as_str(), x.description.as_deref()))
        .collect();
    assert_eq!(
        departments,
        vec![
            (cultura, "Cultura", None),
            (urbanismo, "Urbanismo", Some("Licencias de obra")),
        ]
    );
    let officials: Vec<_> = d
        .officials
        .iter()
        .map(|o| {
            (
                o.id,
                o.name.as_str(),
                o.role.as_str(),
                o.department,
                o.accepts_public_questions,
            )
        })
        .collect();
    assert_eq!(
        officials,
        vec![
            (alcaldia, "Alcaldía", "Alcaldesa", None, true),
            (
                concejal,
                "Concejalía de Urbanismo",
                "Concejal",
                Some(urbanismo),
                true
            ),
            (interventor, "Intervención", "Interventor", None, false),
        ]
    );
    let topics: Vec<_> = d
        .topics
        .iter()
        .map(|x| (x.id, x.name.as_str(), x.description.as_deref()))
        .collect();
    assert_eq!(
        topics,
        vec![
            (agenda, "Agenda cultural", None),
            (obras, "Obras en la vía pública", Some("Cortes de calles")),
        ]
    );
    let one = w.org.official(t, interventor).await.unwrap().unwrap();
    assert!(
        !one.accepts_public_questions,
        "accepts_public_questions is stored"
    );

    // Changes and removals show at once; removed entries leave the tables.
    w.org
        .rename_department(t, by, cultura, "Cultura y Festejos")
        .await
        .unwrap();
    w.org
        .update_official(
            t,
            by,
            interventor,
            &official("Intervención", "Interventora", Some(cultura), true),
        )
        .await
        .unwrap();
    w.org.rename_topic(t, by, agenda, "Agenda").await.unwrap();
    w.org
        .describe_topic(t, by, agenda, Some("Conciertos y exposiciones"))
        .await
        .unwrap();
    w.org
        .describe_department(t, by, cultura, Some("Bibliotecas y fiestas"))
        .await
        .unwrap();
    w.org
        .describe_department(t, by, cultura, Some("  "))
        .await
        .unwrap();
    w.org.remove_official(t, by, concejal).await.unwrap();
    w.org.remove_official(t, by, concejal).await.unwrap();
    w.org.remove_topic(t, by, obras).await.unwrap();
    w.org.remove_department(t, by, urbanismo).await.unwrap();

    let d = w.org.directory(t).await.unwrap();
    assert_eq!(
        d.departments
            .iter()
            .map(|x| x.name.as_str())
            .collect::<Vec<_>>(),
        vec!["Cultura y Festejos"]
    );
    assert_eq!(
        d.officials
            .iter()
            .map(|o| (
                o.name.as_str(),
                o.role.as_str(),
                o.department,
                o.accepts_public_questions
            ))
            .collect::<Vec<_>>(),
        vec![
            ("Alcaldía", "Alcaldesa", None, true),
            ("Intervención", "Interventora", Some(cultura), true),
        ]
    );
    assert_eq!(
        d.topics
            .iter()
            .map(|x| (x.name.as_str(), x.description.as_deref()))
            .collect::<Vec<_>>(),
        vec![("Agenda", Some("Conciertos y exposiciones"))]
    );
    assert_eq!(
        d.departments[0].description, None,
        "a blank description clears the one set before"
    );
    assert!(w.org.official(t, concejal).await.unwrap().is_none());
}

#[tokio::test]
async fn directory_refusals_write_nothing() {
    let w = World::new().await;
    let c = w.council("ourense").await;
    let (t, by) = (c.tenant, c.admin);
    let urbanismo = w
        .org
        .add_department(t, by, "Urbanismo", None)
        .await
        .unwrap();
    w.org
        .add_topic(t, by, "Agenda cultural", None)
        .await
        .unwrap();
    let concejal = w
        .org
        .add_official(
            t,
            by,
            &official("Concejalía", "Concejal", Some(urbanismo), true),
        )
        .await
        .unwrap();
    let before = w.organisation_events().await;
    let snapshot = w.org.directory(t).await.unwrap();

    // Duplicate names, ignoring case and spaces.
    let e = assert_refused(
        w.org.add_department(t, by, " URBANISMO ", None).await,
        "CONFLICT",
    );
    assert!(e.to_string().contains("already a department named"), "{e}");
    assert_refused(
        w.org.add_topic(t, by, "agenda cultural", None).await,
        "CONFLICT",
    );

    // An official in an unknown department.
    let unknown = DepartmentId(Uuid::new_v4());
    let e = assert_refused(
        w.org
            .add_official(t, by, &official("Nadie", "Nadie", Some(unknown), true))
            .await,
        "NOT_FOUND",
    );
    assert!(e.to_string().contains(&unknown.to_string()), "{e}");
    assert_refused(
        w.org
            .update_official(
                t,
                by,
                concejal,
                &official("Concejalía", "Concejal", Some(unknown), true),
            )
            .await,
        "NOT_FOUND",
    );

    // A department with officials cannot go.
    let e = assert_refused(w.org.remove_department(t, by, urbanismo).await, "CONFLICT");
    assert!(e.to_string().contains("move or remove them first"), "{e}");

    // Unknown ids, malformed names.
    assert_refused(
        w.org
            .rename_department(t, by, DepartmentId(Uuid::new_v4()), "Otro")
            .await,
        "NOT_FOUND",
    );
    assert_refused(
        w.org
            .describe_topic(t, by, TopicId(Uuid::new_v4()), Some("Otro"))
            .await,
        "NOT_FOUND",
    );
    assert_invalid(
        w.org
            .describe_department(t, by, urbanismo, Some(&"x".repeat(1001)))
            .await,
        "description",
    );
    assert_invalid(w.org.add_department(t, by, "   ", None).await, "name");
    assert_invalid(
        w.org
            .add_department(t, by, "Hacienda", Some(&"x".repeat(1001)))
            .await,
        "description",
    );
    assert_invalid(w.org.add_topic(t, by, &"x".repeat(81), None).await, "name");
    assert_invalid(
        w.org
            .add_official(t, by, &official("Alcaldía", "", None, true))
            .await,
        "role",
    );

    assert_eq!(w.organisation_events().await, before, "nothing was written");
    assert_eq!(w.org.directory(t).await.unwrap(), snapshot);
}

#[tokio::test]
async fn business_hours_and_holidays_round_trip() {
    let w = World::new().await;
    let c = w.council("vigo").await;
    let (t, by) = (c.tenant, c.admin);
    assert_eq!(
        w.org.business_hours(t).await.unwrap(),
        ScheduleView {
            hours: None,
            holidays: vec![]
        }
    );

    w.org
        .set_business_hours(t, by, "Atlantic/Canary", office_week())
        .await
        .unwrap();
    w.org
        .add_holiday(t, by, "2027-01-06", "Reyes")
        .await
        .unwrap();
    w.org
        .add_holiday(t, by, "2027-01-01", "Año Nuevo")
        .await
        .unwrap();
    w.org
        .add_holiday(t, by, "2027-05-17", "Día das Letras Galegas")
        .await
        .unwrap();
    w.org.remove_holiday(t, by, "2027-05-17").await.unwrap();

    let s = w.org.business_hours(t).await.unwrap();
    let hours = s.hours.unwrap();
    assert_eq!(hours.time_zone, "Atlantic/Canary");
    let morning = vec![interval("09:00", "14:00")];
    assert_eq!(
        hours.week,
        [
            morning.clone(),
            morning.clone(),
            morning.clone(),
            vec![interval("09:00", "14:00"), interval("16:00", "19:00")],
            morning,
            vec![],
            vec![],
        ],
        "intervals come back sorted"
    );
    assert_eq!(
        s.holidays
            .iter()
            .map(|h| (h.date, h.name.as_str()))
            .collect::<Vec<_>>(),
        vec![
            (NaiveDate::from_ymd_opt(2027, 1, 1).unwrap(), "Año Nuevo"),
            (NaiveDate::from_ymd_opt(2027, 1, 6).unwrap(), "Reyes"),
        ]
    );

    // Hours are replaced as a whole; a day may run to midnight.
    let mut week: [Vec<(&str, &str)>; 7] = Default::default();
    week[5] = vec![("20:00", "24:00")];
    w.org
        .set_business_hours(t, by, "Europe/Madrid", week)
        .await
        .unwrap();
    let hours = w.org.business_hours(t).await.unwrap().hours.unwrap();
    assert_eq!(hours.time_zone, "Europe/Madrid");
    assert_eq!(hours.week[5], vec![interval("20:00", "00:00")]);
    assert!(hours.week[0].is_empty());

    // The same date twice, or a date that is no holiday.
    let before = w.organisation_events().await;
    assert_refused(
        w.org.add_holiday(t, by, "2027-01-06", "Epifanía").await,
        "CONFLICT",
    );
    assert_refused(w.org.remove_holiday(t, by, "2027-12-25").await, "NOT_FOUND");
    assert_eq!(w.organisation_events().await, before);
}

#[tokio::test]
async fn malformed_hours_and_holidays_name_the_field_and_write_nothing() {
    let w = World::new().await;
    let c = w.council("lalin").await;
    let (t, by) = (c.tenant, c.admin);
    w.org
        .set_business_hours(t, by, "Europe/Madrid", office_week())
        .await
        .unwrap();
    let before = w.organisation_events().await;
    let snapshot = w.org.business_hours(t).await.unwrap();

    let mut late = office_week();
    late[0] = vec![("09:00", "25:00")];
    assert_invalid(
        w.org.set_business_hours(t, by, "Europe/Madrid", late).await,
        "week.monday",
    );
    let mut sloppy = office_week();
    sloppy[1] = vec![("9:00", "14:00")];
    assert_invalid(
        w.org
            .set_business_hours(t, by, "Europe/Madrid", sloppy)
            .await,
        "week.tuesday",
    );
    let mut overlapping = office_week();
    overlapping[3] = vec![("09:00", "14:00"), ("13:00", "19:00")];
    assert_invalid(
        w.org
            .set_business_hours(t, by, "Europe/Madrid", overlapping)
            .await,
        "week.thursday",
    );
    let mut reversed = office_week();
    reversed[4] = vec![("14:00", "09:00")];
    assert_invalid(
        w.org
            .set_business_hours(t, by, "Europe/Madrid", reversed)
            .await,
        "week.friday",
    );
    assert_invalid(
        w.org
            .set_business_hours(t, by, "Europe/Madrid", Default::default())
            .await,
        "week",
    );
    assert_invalid(
        w.org
            .set_business_hours(t, by, "Madrid", office_week())
            .await,
        "time_zone",
    );
    assert_invalid(w.org.add_holiday(t, by, "2027-02-30", "Nada").await, "date");
    assert_invalid(
        w.org.add_holiday(t, by, "06/01/2027", "Reyes").await,
        "date",
    );
    assert_invalid(w.org.add_holiday(t, by, "2027-01-06", " ").await, "name");
    assert_invalid(w.org.remove_holiday(t, by, "mañana").await, "date");

    assert_eq!(w.organisation_events().await, before, "nothing was written");
    assert_eq!(w.org.business_hours(t).await.unwrap(), snapshot);
}

#[tokio::test]
async fn portal_settings_round_trip_and_refusals_name_the_field() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let (t, by) = (c.tenant, c.admin);
    assert_eq!(w.org.portal(t).await.unwrap(), None);

    w.org
        .configure_portal(t, by, &portal_input())
        .await
        .unwrap();
    let view = w.org.portal(t).await.unwrap().unwrap();
    let s = &view.settings;
    assert_eq!(s.public_name.as_str(), "Concello de Lugo");
    assert_eq!(
        s.logo_url.as_ref().map(|u| u.as_str()),
        Some("https://lugo.gal/logo.png")
    );
    assert_eq!(
        s.primary_colour.as_str(),
        "#1a5fb4",
        "colours are lowercased"
    );
    assert_eq!(
        s.accent_colour.as_ref().map(|c| c.as_str()),
        Some("#e01b24")
    );
    assert_eq!(
        s.languages.iter().map(|l| l.as_str()).collect::<Vec<_>>(),
        vec!["gl", "es"]
    );
    assert_eq!(
        serde_json::to_value(&s.social_links).unwrap(),
        serde_json::json!([
            {"network": "facebook", "url": "https://facebook.com/concellodelugo"},
            {"network": "bluesky", "url": "https://bsky.app/profile/lugo.gal"},
        ])
    );

    // Replaced as a whole; blank optional fields mean none.
    let mut plain = portal_input();
    plain.logo_url = Some("");
    plain.accent_colour = None;
    plain.social_links = vec![];
    w.org.configure_portal(t, by, &plain).await.unwrap();
    let view = w.org.portal(t).await.unwrap().unwrap();
    assert_eq!(view.settings.logo_url, None);
    assert_eq!(view.settings.accent_colour, None);
    assert!(view.settings.social_links.is_empty());

    let before = w.organisation_events().await;
    let cases: Vec<(PortalInput<'static>, &str)> = vec![
        (
            PortalInput {
                primary_colour: "blue",
                ..portal_input()
            },
            "primary_colour",
        ),
        (
            PortalInput {
                accent_colour: Some("#12345"),
                ..portal_input()
            },
            "accent_colour",
        ),
        (
            PortalInput {
                public_name: "",
                ..portal_input()
            },
            "public_name",
        ),
        (
            PortalInput {
                logo_url: Some("ftp://lugo.gal/logo.png"),
                ..portal_input()
            },
            "logo_url",
        ),
        (
            PortalInput {
                languages: vec!["galego"],
                ..portal_input()
            },
            "languages",
        ),
        (
            PortalInput {
                languages: vec!["es", "ES"],
                ..portal_input()
            },
            "languages",
        ),
        (
            PortalInput {
                languages: vec![],
                ..portal_input()
            },
            "languages",
        ),
        (
            PortalInput {
                social_links: vec![("myspace", "https://myspace.com/lugo")],
                ..portal_input()
            },
            "social_links",
        ),
        (
            PortalInput {
                social_links: vec![("x", "x.com/lugo")],
                ..portal_input()
            },
            "social_links",
        ),
        (
            PortalInput {
                social_links: vec![("x", "https://x.com/lugo"), ("X", "https://x.com/lugo")],
                ..portal_input()
            },
            "social_links",
        ),
    ];
    for (input, field) in cases {
        assert_invalid(w.org.configure_portal(t, by, &input).await, field);
    }
    assert_eq!(w.organisation_events().await, before, "nothing was written");
}

#[tokio::test]
async fn only_an_active_admin_of_the_tenant_may_change_it() {
    let w = World::new().await;
    let a = w.council("tui").await;
    let b = w.council("sarria").await;
    let agent = w.staff(a.tenant, Role::Agent, true).await;
    let invited_admin = w.staff(a.tenant, Role::Admin, false).await;
    let before = w.organisation_events().await;

    let t = a.tenant;
    for by in [StaffId(Uuid::new_v4()), agent, invited_admin, b.admin] {
        assert_refused(
            w.org.add_department(t, by, "Urbanismo", None).await,
            "FORBIDDEN",
        );
        assert_refused(
            w.org
                .add_official(t, by, &official("Alcaldía", "Alcaldesa", None, true))
                .await,
            "FORBIDDEN",
        );
        assert_refused(w.org.add_topic(t, by, "Agenda", None).await, "FORBIDDEN");
        assert_refused(
            w.org
                .set_business_hours(t, by, "Europe/Madrid", office_week())
                .await,
            "FORBIDDEN",
        );
        assert_refused(
            w.org.add_holiday(t, by, "2027-01-06", "Reyes").await,
            "FORBIDDEN",
        );
        assert_refused(
            w.org.configure_portal(t, by, &portal_input()).await,
            "FORBIDDEN",
        );
        assert_refused(w.org.seed_demo(t, by).await, "FORBIDDEN");
    }
    // Refused before the input is even looked at.
    assert_refused(w.org.add_department(t, agent, "", None).await, "FORBIDDEN");
    assert_eq!(w.organisation_events().await, before, "nothing was written");

    // The same call by the tenant's own admin goes through.
    w.org
        .add_department(t, a.admin, "Urbanismo", None)
        .await
        .unwrap();
    assert_eq!(w.org.directory(t).await.unwrap().departments.len(), 1);
    assert!(
        w.org
            .directory(b.tenant)
            .await
            .unwrap()
            .departments
            .is_empty()
    );
}

#[tokio::test]
async fn a_suspended_tenant_is_refused_until_reactivated() {
    let w = World::new().await;
    let c = w.council("lalin").await;
    let (t, by) = (c.tenant, c.admin);
    w.org
        .add_department(t, by, "Urbanismo", None)
        .await
        .unwrap();
    w.op.suspend(&c.slug, "impago").await.unwrap();
    let before = w.organisation_events().await;

    let e = assert_refused(
        w.org.add_department(t, by, "Hacienda", None).await,
        "TENANT_SUSPENDED",
    );
    assert!(e.to_string().contains("impago"), "{e}");
    assert_refused(
        w.org
            .set_business_hours(t, by, "Europe/Madrid", office_week())
            .await,
        "TENANT_SUSPENDED",
    );
    assert_refused(
        w.org.configure_portal(t, by, &portal_input()).await,
        "TENANT_SUSPENDED",
    );
    assert_refused(w.org.seed_demo(t, by).await, "TENANT_SUSPENDED");
    assert_eq!(w.organisation_events().await, before, "nothing was written");
    // Its data is kept and still readable.
    assert_eq!(w.org.directory(t).await.unwrap().departments.len(), 1);

    w.op.reactivate(&c.slug).await.unwrap();
    w.org.add_department(t, by, "Hacienda", None).await.unwrap();
    assert_eq!(w.org.directory(t).await.unwrap().departments.len(), 2);

    // An unknown tenant is no tenant at all.
    assert_refused(
        w.org
            .add_department(TenantId::from_uuid(Uuid::new_v4()), by, "Urbanismo", None)
            .await,
        "NOT_FOUND",
    );
}

fn summary(d: &DirectoryView) -> Vec<String> {
    let department = |id: Option<DepartmentId>| {
        id.and_then(|id| d.departments.iter().find(|x| x.id == id))
            .map(|x| x.name.clone())
    };
    d.departments
        .iter()
        .map(|x| format!("department {}", x.name))
        .chain(d.officials.iter().map(|o| {
            format!(
                "official {} ({}) in {:?}, accepts: {}",
                o.name,
                o.role,
                department(o.department),
                o.accepts_public_questions
            )
        }))
        .chain(d.topics.iter().map(|x| format!("topic {}", x.name)))
        .collect()
}

#[tokio::test]
async fn seeding_the_demo_twice_leaves_the_same_read_model() {
    let w = World::new().await;
    let c = w.council("villanueva").await;
    let (t, by) = (c.tenant, c.admin);
    w.org.seed_demo(t, by).await.unwrap();

    let directory = w.org.directory(t).await.unwrap();
    let names = summary(&directory);
    for expected in [
        "department Urbanismo",
        "department Servicios Sociales",
        "department Cultura y Festejos",
        "department Hacienda",
        "official Alcaldía (Alcaldesa) in None, accepts: true",
        "official Concejalía de Urbanismo (Concejal de Urbanismo) in Some(\"Urbanismo\"), accepts: true",
        "official Intervención (Interventor) in Some(\"Hacienda\"), accepts: false",
        "topic Obras en la vía pública",
        "topic Agenda cultural",
        "topic Impuestos y tasas",
        "topic Campamentos de verano",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:#?}"
        );
    }
    let schedule = w.org.business_hours(t).await.unwrap();
    let hours = schedule.hours.clone().unwrap();
    assert_eq!(hours.time_zone, "Europe/Madrid");
    assert_eq!(
        hours.week[3],
        vec![interval("09:00", "14:00"), interval("16:00", "19:00")]
    );
    assert_eq!(hours.week[4], vec![interval("09:00", "14:00")]);
    assert!(hours.week[5].is_empty() && hours.week[6].is_empty());
    assert_eq!(
        schedule
            .holidays
            .iter()
            .map(|h| (h.date.to_string(), h.name.clone()))
            .collect::<Vec<_>>(),
        vec![
            ("2027-01-01".to_owned(), "Año Nuevo".to_owned()),
            ("2027-01-06".to_owned(), "Reyes".to_owned()),
        ]
    );
    let portal = w.org.portal(t).await.unwrap().unwrap();
    assert_eq!(
        portal.settings.public_name.as_str(),
        "Concello de villanueva"
    );
    assert_eq!(
        portal
            .settings
            .languages
            .iter()
            .map(|l| l.as_str())
            .collect::<Vec<_>>(),
        vec!["es", "gl"]
    );

    let events = w.organisation_events().await;
    let rows = w.rows().await;
    w.org.seed_demo(t, by).await.unwrap();
    assert_eq!(
        w.organisation_events().await,
        events,
        "the second run writes nothing"
    );
    assert_eq!(w.rows().await, rows);
    assert_eq!(w.org.directory(t).await.unwrap(), directory);

    // What an admin removed is put back by name; what exists is kept as is.
    let hacienda = directory
        .departments
        .iter()
        .find(|d| d.name == "Hacienda")
        .unwrap()
        .id;
    let interventor = directory
        .officials
        .iter()
        .find(|o| o.name == "Intervención")
        .unwrap()
        .id;
    w.org.remove_official(t, by, interventor).await.unwrap();
    w.org.remove_department(t, by, hacienda).await.unwrap();
    w.org.seed_demo(t, by).await.unwrap();
    assert_eq!(summary(&w.org.directory(t).await.unwrap()), names);
}

#[tokio::test]
async fn a_tenant_cannot_see_or_touch_another_tenants_rows() {
    let w = World::new().await;
    let a = w.council("tui").await;
    let b = w.council("sarria").await;
    w.org.seed_demo(a.tenant, a.admin).await.unwrap();
    w.org
        .add_department(b.tenant, b.admin, "Deportes", None)
        .await
        .unwrap();
    let rows = w.rows().await;

    let tables = [
        "departments",
        "officials",
        "topics",
        "business_hours",
        "holidays",
        "portal_settings",
    ];
    let mut tx = begin_for_tenant(&w.db.app, b.tenant).await.unwrap();
    for table in tables {
        let of_a: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE tenant_id = $1"
        )))
        .bind(a.tenant.into_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(of_a, 0, "b sees none of a's {table}");
        let others: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT count(*) FROM {table} WHERE tenant_id <> $1"
        )))
        .bind(b.tenant.into_uuid())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(others, 0, "b sees only its own {table}");
        let updated = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET tenant_id = tenant_id WHERE tenant_id = $1"
        )))
        .bind(a.tenant.into_uuid())
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(updated, 0, "b cannot update a's {table}");
        let deleted = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DELETE FROM {table} WHERE tenant_id = $1"
        )))
        .bind(a.tenant.into_uuid())
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
        assert_eq!(deleted, 0, "b cannot delete a's {table}");
    }
    let renamed = sqlx::query("UPDATE departments SET name = 'hacked'")
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(renamed, 1, "only b's own department");
    tx.rollback().await.unwrap();

    // Nor can it write a row in a's name.
    let mut tx = begin_for_tenant(&w.db.app, b.tenant).await.unwrap();
    let forged = sqlx::query(
        "INSERT INTO departments (tenant_id, department_id, name, updated_at) VALUES ($1, $2, 'Forged', now())",
    )
    .bind(a.tenant.into_uuid())
    .bind(Uuid::new_v4())
    .execute(&mut *tx)
    .await;
    assert!(forged.is_err(), "row-level security refuses the insert");
    tx.rollback().await.unwrap();

    // With no tenant set, nothing is visible.
    for table in tables {
        let visible: i64 =
            sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
                .fetch_one(&w.db.app)
                .await
                .unwrap();
        assert_eq!(visible, 0, "{table} without a tenant");
    }

    assert_eq!(w.rows().await, rows, "a's rows are untouched");
    let b_view = w.org.directory(b.tenant).await.unwrap();
    assert_eq!(summary(&b_view), vec!["department Deportes".to_owned()]);
    assert_eq!(w.org.business_hours(b.tenant).await.unwrap().hours, None);
    assert_eq!(w.org.portal(b.tenant).await.unwrap(), None);
}

#[tokio::test]
async fn the_projection_rebuilds_to_the_same_rows() {
    let w = World::new().await;
    let a = w.council("tui").await;
    let b = w.council("sarria").await;
    w.org.seed_demo(a.tenant, a.admin).await.unwrap();
    w.org.seed_demo(b.tenant, b.admin).await.unwrap();
    // Removals and changes too, so the rebuild must delete and update.
    let d = w.org.directory(a.tenant).await.unwrap();
    let topic = d.topics[0].id;
    w.org.remove_topic(a.tenant, a.admin, topic).await.unwrap();
    let official = d.officials[0].id;
    w.org
        .update_official(a.tenant, a.admin, official, &official_input_for_rebuild())
        .await
        .unwrap();
    w.org
        .remove_holiday(b.tenant, b.admin, "2027-01-01")
        .await
        .unwrap();
    let mut portal = portal_input();
    portal.public_name = "Concello de Sarria";
    w.org
        .configure_portal(b.tenant, b.admin, &portal)
        .await
        .unwrap();
    w.org
        .set_business_hours(b.tenant, b.admin, "Atlantic/Canary", office_week())
        .await
        .unwrap();

    let before = w.rows().await;
    assert_eq!(before.len(), 30, "{before:#?}");
    let directory = w.org.directory(a.tenant).await.unwrap();
    ventanilla_postgres::rebuild(
        &w.db.admin,
        w.log.as_ref(),
        &OrganisationProjection,
        100,
        &(),
    )
    .await
    .unwrap();
    assert_eq!(w.rows().await, before);
    assert_eq!(w.org.directory(a.tenant).await.unwrap(), directory);

    // The live projection carries on from the rebuilt tables.
    w.org
        .add_topic(a.tenant, a.admin, "Deportes", None)
        .await
        .unwrap();
    assert!(
        w.org
            .directory(a.tenant)
            .await
            .unwrap()
            .topics
            .iter()
            .any(|t| t.name == "Deportes")
    );
}

fn official_input_for_rebuild() -> OfficialInput<'static> {
    official("Alcaldía", "Alcalde accidental", None, false)
}
