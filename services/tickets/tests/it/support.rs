//! The world the tests run in: a fresh database, the tenants service to
//! provision councils and their staff, and the tickets service.

use std::sync::Arc;

use chrono::{Duration, Utc};
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandRunner, Limits};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::PgEventLog;
use ventanilla_tenants::operator::{Operator, ProvisionRequest};
use ventanilla_tenants::organisation::{OfficialInput, Organisation};
use ventanilla_tenants::secrets;
use ventanilla_tenants_domain::staff::{
    self, PasswordHash, Role, StaffCommand, StaffId, StaffMember,
};
use ventanilla_tenants_domain::values::{Email, Name};
use ventanilla_testkit::TestDb;
use ventanilla_tickets::service::{OpenRequest, OpenedTicket, Origin, Tickets};

const PASSWORD_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";

pub struct World {
    pub db: TestDb,
    pub log: Arc<PgEventLog>,
    pub op: Operator,
    pub org: Organisation,
    pub tickets: Tickets,
}

/// A council with an admin, an agent, a department and two officials (one
/// who takes public questions, one who does not).
pub struct Council {
    pub tenant: TenantId,
    pub slug: String,
    pub admin: StaffId,
    pub agent: StaffId,
    pub department: Uuid,
    pub official: Uuid,
    pub private_official: Uuid,
}

impl World {
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
        Self {
            op: Operator::new(Arc::clone(&log), "test-operator"),
            org: Organisation::new(Arc::clone(&log)),
            tickets: Tickets::new(Arc::clone(&log)),
            log,
            db,
        }
    }

    pub fn runner(&self) -> CommandRunner<PgEventLog> {
        CommandRunner::new(Arc::clone(&self.log), 3)
    }

    /// Provisions `slug` with its staff and directory.
    pub async fn council(&self, slug: &str) -> Council {
        let provisioned = self
            .op
            .provision(&ProvisionRequest {
                name: format!("Concello de {slug}"),
                slug: slug.to_owned(),
                kind: "council".into(),
                admin_email: format!("alcaldia@{slug}.gal"),
                languages: vec!["es".into(), "gl".into()],
                ..ProvisionRequest::default()
            })
            .await
            .unwrap();
        let tenant = provisioned.tenant;
        let admin = provisioned.admin;
        self.runner()
            .execute::<StaffMember>(
                &CommandContext::new(
                    tenant,
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
        let agent = self.staff(tenant, Role::Agent, true).await;
        let department = self
            .org
            .add_department(tenant, admin, "Obras y Urbanismo", None)
            .await
            .unwrap()
            .0;
        let official = self
            .org
            .add_official(
                tenant,
                admin,
                &OfficialInput {
                    name: "Ana Pérez",
                    role: "Concejala de Obras",
                    department: Some(ventanilla_tenants_domain::organisation::DepartmentId(
                        department,
                    )),
                    accepts_public_questions: true,
                },
            )
            .await
            .unwrap()
            .0;
        let private_official = self
            .org
            .add_official(
                tenant,
                admin,
                &OfficialInput {
                    name: "Luis Gómez",
                    role: "Secretario",
                    department: None,
                    accepts_public_questions: false,
                },
            )
            .await
            .unwrap()
            .0;
        Council {
            tenant,
            slug: provisioned.slug,
            admin,
            agent,
            department,
            official,
            private_official,
        }
    }

    /// Invites a staff member of `role` into `tenant`; accepts when `accept`.
    pub async fn staff(&self, tenant: TenantId, role: Role, accept: bool) -> StaffId {
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

    /// Opens a question on the portal.
    pub async fn question(&self, c: &Council, subject: &str) -> OpenedTicket {
        self.tickets
            .open(c.tenant, Origin::Web, &question(subject))
            .await
            .unwrap()
    }

    /// How many events the log holds.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.db.admin)
            .await
            .unwrap()
    }
}

/// A citizen's question on the portal.
pub fn question(subject: &str) -> OpenRequest {
    OpenRequest {
        kind: "question".into(),
        name: Some("Vecina del número 3".into()),
        email: Some("vecina@correo.es".into()),
        subject: subject.into(),
        body: "La farola de mi calle lleva una semana fundida.".into(),
        notify: true,
        ..OpenRequest::default()
    }
}

impl World {
    /// Opens a question, returning the refusal if any.
    pub async fn question_result(
        &self,
        c: &Council,
    ) -> Result<OpenedTicket, ventanilla_tickets::error::TicketsError> {
        self.tickets
            .open(c.tenant, Origin::Web, &question("Consulta"))
            .await
    }
}
