//! Staff end to end on a fresh database each: invitations, passwords,
//! sessions, the agent quota, the last administrator, suspension, secrets
//! kept out of storage, and tenant isolation of the `staff_directory` read
//! model.

use std::sync::Arc;
use std::time::Duration;

use sha2::{Digest, Sha256};
use ventanilla_eventlog::Limits;
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_tenants::operator::{Operator, ProvisionRequest, Provisioned};
use ventanilla_tenants::staff::{Principal, Session, Staff, StaffDirectory, StaffServiceError};
use ventanilla_tenants_domain::staff::{Role, StaffId};
use ventanilla_testkit::TestDb;

const PASSWORD: &str = "correct horse battery";
const AGENT_PASSWORD: &str = "cinco lobitos tiene";

fn request(slug: &str, plan: &str) -> ProvisionRequest {
    ProvisionRequest {
        name: format!("Concello de {slug}"),
        slug: slug.to_owned(),
        kind: "council".into(),
        plan: Some(plan.to_owned()),
        admin_email: format!("Alcaldia@{slug}.GAL"),
        languages: vec!["es".into(), "gl".into()],
        ..ProvisionRequest::default()
    }
}

struct World {
    db: TestDb,
    op: Operator,
    staff: Staff,
}

async fn world() -> World {
    let db = TestDb::new().await;
    let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
    World {
        op: Operator::new(Arc::clone(&log), "test-operator"),
        staff: Staff::new(log),
        db,
    }
}

async fn event_count(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.admin)
        .await
        .unwrap()
}

fn admin_email(slug: &str) -> String {
    format!("alcaldia@{slug}.gal")
}

impl World {
    /// A tenant whose first admin has accepted the invitation.
    async fn tenant(&self, slug: &str, plan: &str) -> Provisioned {
        let t = self.op.provision(&request(slug, plan)).await.unwrap();
        self.staff
            .accept_invitation(t.tenant, t.admin, &t.invitation_code, PASSWORD)
            .await
            .unwrap();
        t
    }

    /// A tenant and a live session of its first admin.
    async fn tenant_with_session(&self, slug: &str) -> (Provisioned, Session) {
        let t = self.tenant(slug, "free").await;
        let s = self
            .staff
            .login(t.tenant, &admin_email(slug), PASSWORD)
            .await
            .unwrap();
        (t, s)
    }

    /// An agent of `t` who has accepted the invitation.
    async fn agent(&self, t: &Provisioned, email: &str) -> StaffId {
        let inv = self
            .staff
            .invite(t.tenant, Some(t.admin), email, "Ana Souto", Role::Agent)
            .await
            .unwrap();
        self.staff
            .accept_invitation(t.tenant, inv.staff, &inv.invitation_code, AGENT_PASSWORD)
            .await
            .unwrap();
        inv.staff
    }
}

fn assert_code<T: std::fmt::Debug>(result: Result<T, StaffServiceError>, code: &str) -> String {
    match result {
        Err(e) => {
            assert_eq!(e.code(), code, "{e}");
            e.to_string()
        }
        Ok(v) => panic!("expected {code}, got {v:?}"),
    }
}

#[tokio::test]
async fn the_first_admin_accepts_the_invitation_and_logs_in() {
    let w = world().await;
    let t = w.op.provision(&request("lugo", "free")).await.unwrap();

    // The password policy names the field, and a refusal writes nothing.
    let before = event_count(&w.db).await;
    for bad in ["short", "aaaaaaaaaaaaaaaa", &"x1".repeat(65)] {
        match w
            .staff
            .accept_invitation(t.tenant, t.admin, &t.invitation_code, bad)
            .await
        {
            Err(StaffServiceError::Invalid(e)) => assert_eq!(e.field, "password", "{e}"),
            other => panic!("expected a refusal of the password, got {other:?}"),
        }
    }
    let wrong_code = w
        .staff
        .accept_invitation(t.tenant, t.admin, &"0".repeat(64), PASSWORD)
        .await;
    assert_code(wrong_code, "UNAUTHENTICATED");
    assert_eq!(event_count(&w.db).await, before, "nothing was written");

    w.staff
        .accept_invitation(t.tenant, t.admin, &t.invitation_code, PASSWORD)
        .await
        .unwrap();
    // The code works once.
    let again = w
        .staff
        .accept_invitation(t.tenant, t.admin, &t.invitation_code, "another long phrase")
        .await;
    let message = assert_code(again, "CONFLICT");
    assert_eq!(
        message,
        "the invitation has already been accepted; log in instead"
    );

    // The address is matched without regard to case.
    let session = w
        .staff
        .login(t.tenant, "ALCALDIA@lugo.gal", PASSWORD)
        .await
        .unwrap();
    assert_eq!(session.staff, t.admin);
    assert_eq!(session.token.len(), 64);
    let minutes = (session.expires_at - chrono::Utc::now()).num_minutes();
    assert!((11 * 60..=12 * 60).contains(&minutes), "{minutes} minutes");
    let principal = w
        .staff
        .authenticate(t.tenant, session.session_id, &session.token)
        .await
        .unwrap();
    assert_eq!(
        principal,
        Principal {
            staff: t.admin,
            role: Role::Admin
        }
    );
    let wrong_token = w
        .staff
        .authenticate(t.tenant, session.session_id, &"f".repeat(64))
        .await;
    assert_code(wrong_token, "UNAUTHENTICATED");

    let listed = w.staff.list(t.tenant).await.unwrap();
    assert_eq!(listed.len(), 1);
    let admin = &listed[0];
    assert_eq!(admin.staff_id, t.admin.0);
    assert_eq!(admin.email, "alcaldia@lugo.gal");
    assert_eq!(
        (admin.role.as_str(), admin.status.as_str()),
        ("admin", "active")
    );
    assert!(admin.activated_at.is_some() && admin.deactivated_at.is_none());
}

#[tokio::test]
async fn wrong_passwords_are_refused_then_slowed_down() {
    let w = world().await;
    let t = w.tenant("ourense", "free").await;
    let email = admin_email("ourense");

    // An unknown address gets the same answer as a wrong password.
    let unknown = w
        .staff
        .login(t.tenant, "nadie@ourense.gal", "not the password")
        .await;
    assert_eq!(
        assert_code(unknown, "UNAUTHENTICATED"),
        "the e-mail or the password is wrong"
    );

    for _ in 0..3 {
        let refused = w.staff.login(t.tenant, &email, "not the password").await;
        let message = assert_code(refused, "UNAUTHENTICATED");
        assert_eq!(message, "the e-mail or the password is wrong");
    }
    // After three failures in a row the next attempt must wait, even with
    // the right password, and the answer says how long.
    let limited = w.staff.login(t.tenant, &email, PASSWORD).await;
    match limited {
        Err(StaffServiceError::RateLimited {
            retry_after_seconds,
        }) => assert_eq!(retry_after_seconds, 1),
        other => panic!("expected RATE_LIMITED, got {other:?}"),
    }
    let failures: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'staff.login_failed'")
            .fetch_one(&w.db.admin)
            .await
            .unwrap();
    assert_eq!(failures, 3, "a refused attempt is not even evaluated");

    tokio::time::sleep(Duration::from_millis(1100)).await;
    let session = w.staff.login(t.tenant, &email, PASSWORD).await.unwrap();
    assert_eq!(session.staff, t.admin);
}

#[tokio::test]
async fn admins_invite_agents_within_the_plan() {
    let w = world().await;
    let t = w.tenant("lalin", "free").await;
    let invite = async |email: &str, role: Role| {
        w.staff
            .invite(t.tenant, Some(t.admin), email, "Persoal", role)
            .await
    };

    let first = invite("ana@lalin.gal", Role::Agent).await.unwrap();
    assert_eq!(first.invitation_code.len(), 64);
    let second = invite("brais@lalin.gal", Role::Agent).await.unwrap();

    // Only an active administrator invites: an invited agent is refused.
    let before = event_count(&w.db).await;
    let by_agent = w
        .staff
        .invite(
            t.tenant,
            Some(second.staff),
            "carme@lalin.gal",
            "Carme",
            Role::Agent,
        )
        .await;
    assert_code(by_agent, "FORBIDDEN");

    // The free plan allows two agents: the third is refused, naming the
    // limit, and nothing is written.
    let third = invite("carme@lalin.gal", Role::Agent).await;
    let message = assert_code(third, "QUOTA_EXCEEDED");
    assert!(
        message.contains("the plan allows 2 agents; 2 are in use"),
        "{message}"
    );
    assert_eq!(event_count(&w.db).await, before, "nothing was written");
    assert_eq!(w.staff.agents_in_use(t.tenant).await.unwrap(), 2);

    // Administrators are not agents.
    let admin2 = invite("secretaria@lalin.gal", Role::Admin).await.unwrap();

    // A deactivated agent frees a place; reactivating them needs one again,
    // and so does making an administrator an agent.
    w.staff
        .deactivate(t.tenant, t.admin, first.staff)
        .await
        .unwrap();
    invite("carme@lalin.gal", Role::Agent).await.unwrap();
    let back = w.staff.reactivate(t.tenant, t.admin, first.staff).await;
    assert_code(back, "QUOTA_EXCEEDED");
    let demoted = w
        .staff
        .change_role(t.tenant, t.admin, admin2.staff, Role::Agent)
        .await;
    assert_code(demoted, "QUOTA_EXCEEDED");

    let listed = w.staff.list(t.tenant).await.unwrap();
    let seen: Vec<(&str, &str, &str)> = listed
        .iter()
        .map(|s| (s.email.as_str(), s.role.as_str(), s.status.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("alcaldia@lalin.gal", "admin", "active"),
            ("ana@lalin.gal", "agent", "deactivated"),
            ("brais@lalin.gal", "agent", "invited"),
            ("carme@lalin.gal", "agent", "invited"),
            ("secretaria@lalin.gal", "admin", "invited"),
        ]
    );

    // The directory is a projection: rebuilding it gives the same rows.
    let log = PgEventLog::new(w.db.app.clone(), Limits::default());
    ventanilla_postgres::rebuild(&w.db.admin, &log, &StaffDirectory, 100, &())
        .await
        .unwrap();
    assert_eq!(w.staff.list(t.tenant).await.unwrap(), listed);
}

#[tokio::test]
async fn a_duplicate_address_is_refused_and_writes_nothing() {
    let w = world().await;
    let t = w.tenant("sarria", "municipio").await;
    w.staff
        .invite(
            t.tenant,
            Some(t.admin),
            "Ana@sarria.gal",
            "Ana",
            Role::Agent,
        )
        .await
        .unwrap();

    let before = event_count(&w.db).await;
    for (email, role) in [
        ("ana@SARRIA.gal", Role::Agent),
        ("ANA@sarria.gal", Role::Admin),
        ("alcaldia@sarria.gal", Role::Agent),
    ] {
        let again = w
            .staff
            .invite(t.tenant, Some(t.admin), email, "Outra", role)
            .await;
        let message = assert_code(again, "CONFLICT");
        assert!(message.starts_with("email: "), "{message}");
    }
    assert_eq!(event_count(&w.db).await, before, "nothing was written");

    // Two invitations of one address at once: the claim lets one through.
    let (a, b) = tokio::join!(
        w.staff.invite(
            t.tenant,
            Some(t.admin),
            "xoan@sarria.gal",
            "Xoán",
            Role::Agent
        ),
        w.staff.invite(
            t.tenant,
            Some(t.admin),
            "Xoan@sarria.gal",
            "Xoán",
            Role::Agent
        ),
    );
    assert!(a.is_ok() != b.is_ok(), "exactly one wins: {a:?} {b:?}");
    let loser = if a.is_ok() { b } else { a };
    assert_code(loser, "CONFLICT");
    let invited: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'staff.invited' AND data->>'email' ILIKE 'xoan@sarria.gal'",
    )
    .fetch_one(&w.db.admin)
    .await
    .unwrap();
    assert_eq!(invited, 1);
    assert_eq!(w.staff.list(t.tenant).await.unwrap().len(), 3);
}

#[tokio::test]
async fn logout_and_revocation_end_sessions() {
    let w = world().await;
    let (t, admin_session) = w.tenant_with_session("tui").await;
    let agent = w.agent(&t, "ana@tui.gal").await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(
            w.staff
                .login(t.tenant, "ana@tui.gal", AGENT_PASSWORD)
                .await
                .unwrap(),
        );
    }

    // Logout ends that session only, and may be repeated.
    let s0 = &sessions[0];
    w.staff
        .logout(t.tenant, agent, s0.session_id)
        .await
        .unwrap();
    w.staff
        .logout(t.tenant, agent, s0.session_id)
        .await
        .unwrap();
    assert_code(
        w.staff
            .authenticate(t.tenant, s0.session_id, &s0.token)
            .await,
        "UNAUTHENTICATED",
    );
    for s in &sessions[1..] {
        let p = w
            .staff
            .authenticate(t.tenant, s.session_id, &s.token)
            .await
            .unwrap();
        assert_eq!(p.role, Role::Agent);
    }

    // Only an administrator revokes; then every session of the agent ends.
    let by_agent = w.staff.revoke_sessions(t.tenant, agent, t.admin).await;
    assert_code(by_agent, "FORBIDDEN");
    let ended = w
        .staff
        .revoke_sessions(t.tenant, t.admin, agent)
        .await
        .unwrap();
    assert_eq!(ended, 2);
    for s in &sessions {
        assert_code(
            w.staff.authenticate(t.tenant, s.session_id, &s.token).await,
            "UNAUTHENTICATED",
        );
    }
    w.staff
        .authenticate(t.tenant, admin_session.session_id, &admin_session.token)
        .await
        .unwrap();

    // The read model dropped the agent's sessions and kept the admin's.
    w.staff.list(t.tenant).await.unwrap();
    let open: Vec<uuid::Uuid> = sqlx::query_scalar("SELECT staff_id FROM staff_sessions")
        .fetch_all(&w.db.admin)
        .await
        .unwrap();
    assert_eq!(open, vec![t.admin.0]);
}

#[tokio::test]
async fn deactivated_members_cannot_log_in_and_the_last_admin_stays() {
    let w = world().await;
    let (t, _) = w.tenant_with_session("vigo").await;
    let agent = w.agent(&t, "ana@vigo.gal").await;
    let session = w
        .staff
        .login(t.tenant, "ana@vigo.gal", AGENT_PASSWORD)
        .await
        .unwrap();

    w.staff.deactivate(t.tenant, t.admin, agent).await.unwrap();
    assert_code(
        w.staff
            .authenticate(t.tenant, session.session_id, &session.token)
            .await,
        "UNAUTHENTICATED",
    );
    let login = w
        .staff
        .login(t.tenant, "ana@vigo.gal", AGENT_PASSWORD)
        .await;
    assert_eq!(
        assert_code(login, "UNAUTHENTICATED"),
        "this account is deactivated; ask an administrator"
    );
    // Without the right password nothing tells that the account exists.
    let guess = w
        .staff
        .login(t.tenant, "ana@vigo.gal", "a wrong guess!")
        .await;
    assert_eq!(
        assert_code(guess, "UNAUTHENTICATED"),
        "the e-mail or the password is wrong"
    );

    // The last active administrator can be neither deactivated nor demoted;
    // an administrator who has not accepted yet does not count.
    let before = event_count(&w.db).await;
    let second = w
        .staff
        .invite(
            t.tenant,
            Some(t.admin),
            "secretaria@vigo.gal",
            "Secretaría",
            Role::Admin,
        )
        .await
        .unwrap();
    let alone = w.staff.deactivate(t.tenant, t.admin, t.admin).await;
    let message = assert_code(alone, "CONFLICT");
    assert!(message.contains("the last administrator"), "{message}");
    let demoted = w
        .staff
        .change_role(t.tenant, t.admin, t.admin, Role::Agent)
        .await;
    assert!(assert_code(demoted, "CONFLICT").contains("the last administrator"));
    assert_eq!(
        event_count(&w.db).await,
        before + 2,
        "only the address's claim and the invitation"
    );

    // With a second active administrator, the first may go.
    w.staff
        .accept_invitation(t.tenant, second.staff, &second.invitation_code, PASSWORD)
        .await
        .unwrap();
    w.staff
        .deactivate(t.tenant, second.staff, t.admin)
        .await
        .unwrap();
    let gone = w
        .staff
        .invite(t.tenant, Some(t.admin), "x@vigo.gal", "X", Role::Agent)
        .await;
    assert_code(gone, "FORBIDDEN");

    // Reactivated, the agent logs in again.
    w.staff
        .reactivate(t.tenant, second.staff, agent)
        .await
        .unwrap();
    let back = w
        .staff
        .login(t.tenant, "ana@vigo.gal", AGENT_PASSWORD)
        .await
        .unwrap();
    assert_eq!(back.staff, agent);
}

#[tokio::test]
async fn suspension_refuses_sessions_at_once() {
    let w = world().await;
    let (t, session) = w.tenant_with_session("lalin").await;
    let email = admin_email("lalin");

    w.op.suspend("lalin", "impago").await.unwrap();
    let auth = w
        .staff
        .authenticate(t.tenant, session.session_id, &session.token)
        .await;
    let message = assert_code(auth, "TENANT_SUSPENDED");
    assert!(message.contains("impago"), "{message}");
    assert_code(
        w.staff.login(t.tenant, &email, PASSWORD).await,
        "TENANT_SUSPENDED",
    );
    assert_code(
        w.staff
            .invite(t.tenant, Some(t.admin), "ana@lalin.gal", "Ana", Role::Agent)
            .await,
        "TENANT_SUSPENDED",
    );

    w.op.reactivate("lalin").await.unwrap();
    let principal = w
        .staff
        .authenticate(t.tenant, session.session_id, &session.token)
        .await
        .unwrap();
    assert_eq!(principal.staff, t.admin);
}

#[tokio::test]
async fn secrets_never_reach_the_log_or_the_read_model() {
    let w = world().await;
    let (t, session) = w.tenant_with_session("betanzos").await;
    let invitation = w
        .staff
        .invite(
            t.tenant,
            Some(t.admin),
            "ana@betanzos.gal",
            "Ana",
            Role::Agent,
        )
        .await
        .unwrap();
    w.staff.list(t.tenant).await.unwrap();

    let events: Vec<String> = sqlx::query_scalar("SELECT data::text FROM events")
        .fetch_all(&w.db.admin)
        .await
        .unwrap();
    let sessions: Vec<String> = sqlx::query_scalar("SELECT s::text FROM staff_sessions s")
        .fetch_all(&w.db.admin)
        .await
        .unwrap();
    let staff: Vec<String> = sqlx::query_scalar("SELECT s::text FROM staff s")
        .fetch_all(&w.db.admin)
        .await
        .unwrap();
    assert_eq!(sessions.len(), 1);
    for text in events.iter().chain(&sessions).chain(&staff) {
        for secret in [
            PASSWORD,
            session.token.as_str(),
            t.invitation_code.as_str(),
            invitation.invitation_code.as_str(),
        ] {
            assert!(!text.contains(secret), "a secret in clear: {text}");
        }
    }
    // What is kept instead: the token's digest, and the password's argon2id
    // hash in the member's stream only.
    let digest: String = Sha256::digest(session.token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert!(sessions[0].contains(&digest));
    assert!(events.iter().any(|e| e.contains("$argon2id$")));
    assert!(staff.iter().chain(&sessions).all(|s| !s.contains("argon2")));
}

#[tokio::test]
async fn tenants_cannot_see_each_others_staff() {
    let w = world().await;
    let (a, a_session) = w.tenant_with_session("lugo").await;
    let b = w.op.provision(&request("ribadeo", "free")).await.unwrap();
    let listed_b = w.staff.list(b.tenant).await.unwrap();
    assert_eq!(listed_b.len(), 1);
    assert_eq!(listed_b[0].staff_id, b.admin.0);

    // Through the service: A's session and address mean nothing in B.
    assert_code(
        w.staff
            .authenticate(b.tenant, a_session.session_id, &a_session.token)
            .await,
        "UNAUTHENTICATED",
    );
    assert_code(
        w.staff
            .login(b.tenant, &admin_email("lugo"), PASSWORD)
            .await,
        "UNAUTHENTICATED",
    );

    // Through raw SQL as the application role in B's scope.
    let mut tx = begin_for_tenant(&w.db.app, b.tenant).await.unwrap();
    let seen: Vec<String> = sqlx::query_scalar("SELECT email FROM staff")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, vec![admin_email("ribadeo")]);
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM staff_sessions")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    let updated =
        sqlx::query("UPDATE staff SET role = 'agent', status = 'deactivated' WHERE tenant_id = $1")
            .bind(a.tenant.into_uuid())
            .execute(&mut *tx)
            .await
            .unwrap()
            .rows_affected();
    assert_eq!(updated, 0, "b cannot change a's members");
    let deleted = sqlx::query("DELETE FROM staff_sessions WHERE tenant_id = $1")
        .bind(a.tenant.into_uuid())
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(deleted, 0, "b cannot end a's sessions");
    let planted = sqlx::query(
        "INSERT INTO staff (tenant_id, staff_id, email, name, role, status, invited_at, updated_at) \
         VALUES ($1, gen_random_uuid(), 'intruso@lugo.gal', 'Intruso', 'admin', 'active', now(), now())",
    )
    .bind(a.tenant.into_uuid())
    .execute(&mut *tx)
    .await;
    assert!(planted.is_err(), "b cannot add a member to a");
    tx.rollback().await.unwrap();

    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM staff")
        .fetch_one(&w.db.app)
        .await
        .unwrap();
    assert_eq!(none, 0, "with no tenant set nothing is visible");

    // A is untouched.
    let principal = w
        .staff
        .authenticate(a.tenant, a_session.session_id, &a_session.token)
        .await
        .unwrap();
    assert_eq!(principal.role, Role::Admin);
}
