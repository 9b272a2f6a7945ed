//! Integration tests of the tenants service on a fresh database of the real
//! server: the operator's commands end to end through the log and the
//! registry read model, and the registry's isolation.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod api_keys;
mod isolation;
mod organisation;
mod staff;

use std::sync::Arc;

use ventanilla_eventlog::Limits;
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_tenants::operator::{Operator, OperatorError, ProvisionRequest};
use ventanilla_testkit::TestDb;

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

async fn event_count(db: &TestDb) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.admin)
        .await
        .unwrap()
}

fn operator(db: &TestDb) -> Operator {
    Operator::new(
        Arc::new(PgEventLog::new(db.app.clone(), Limits::default())),
        "test-operator",
    )
}

#[tokio::test]
async fn provisioning_creates_the_tenant_and_invites_its_admin() {
    let db = TestDb::new().await;
    let op = operator(&db);
    let done = op.provision(&request("lugo")).await.unwrap();
    assert_eq!(done.invitation_code.len(), 64);
    let shown = op.show("lugo").await.unwrap();
    assert_eq!(shown.tenant_id, done.tenant.into_uuid());
    assert_eq!(
        (
            shown.status.as_str(),
            shown.plan.as_str(),
            shown.kind.as_str()
        ),
        ("active", "free", "council")
    );
    assert_eq!(shown.languages, vec!["es".to_owned(), "gl".to_owned()]);
    assert_eq!(shown.contact_email, "alcaldia@lugo.gal");

    // The invitation is stored hashed only: the clear code appears nowhere.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT data::text FROM events WHERE event_type = 'staff.invited'")
            .fetch_all(&db.admin)
            .await
            .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(
        !stored[0].contains(&done.invitation_code),
        "the clear invitation code must not be stored"
    );
    assert!(stored[0].contains("\"admin\""));

    // The default plans were installed once.
    let plans: i64 =
        sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'plan.defined'")
            .fetch_one(&db.admin)
            .await
            .unwrap();
    assert_eq!(plans, 3);
}

#[tokio::test]
async fn a_second_create_with_the_same_slug_fails_clearly_and_creates_nothing() {
    let db = TestDb::new().await;
    let op = operator(&db);
    op.provision(&request("ourense")).await.unwrap();
    let before = event_count(&db).await;
    let err = op.provision(&request("ourense")).await.unwrap_err();
    assert!(matches!(err, OperatorError::SlugTaken { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the slug ourense is taken by another tenant; choose another"
    );
    assert_eq!(event_count(&db).await, before, "nothing was written");
    assert_eq!(op.list().await.unwrap().len(), 1);
}

#[tokio::test]
async fn malformed_input_names_the_field_and_writes_nothing() {
    let db = TestDb::new().await;
    let op = operator(&db);
    let cases: Vec<(ProvisionRequest, &str)> = vec![
        (
            ProvisionRequest {
                slug: "Bad Slug".into(),
                ..request("x")
            },
            "slug",
        ),
        (
            ProvisionRequest {
                admin_email: "nope".into(),
                ..request("vigo")
            },
            "admin_email",
        ),
        (
            ProvisionRequest {
                time_zone: Some("Mars/Base".into()),
                ..request("vigo")
            },
            "time_zone",
        ),
        (
            ProvisionRequest {
                languages: vec!["spanish".into()],
                ..request("vigo")
            },
            "languages",
        ),
        (
            ProvisionRequest {
                kind: "club".into(),
                ..request("vigo")
            },
            "kind",
        ),
        (
            ProvisionRequest {
                name: "x".repeat(121),
                ..request("vigo")
            },
            "name",
        ),
    ];
    for (req, field) in cases {
        match op.provision(&req).await {
            Err(OperatorError::Invalid(e)) => assert_eq!(e.field, field, "{e}"),
            other => panic!("expected a refusal of {field}, got {other:?}"),
        }
    }
    let err = op
        .provision(&ProvisionRequest {
            plan: Some("gold".into()),
            ..request("vigo")
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "there is no plan with the code gold");
    let tenants: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type LIKE 'tenant.%' OR event_type LIKE 'slug.%'",
    )
    .fetch_one(&db.admin)
    .await
    .unwrap();
    assert_eq!(tenants, 0, "no tenant and no slug claim were written");
}

#[tokio::test]
async fn suspend_reactivate_and_replan() {
    let db = TestDb::new().await;
    let op = operator(&db);
    op.provision(&request("lalin")).await.unwrap();
    op.suspend("lalin", "impago").await.unwrap();
    let err = op.suspend("lalin", "otra vez").await.unwrap_err();
    assert_eq!(err.to_string(), "the tenant is already suspended");
    let shown = op.show("lalin").await.unwrap();
    assert_eq!(
        (shown.status.as_str(), shown.status_reason.as_deref()),
        ("suspended", Some("impago"))
    );
    op.reactivate("lalin").await.unwrap();
    assert!(op.reactivate("lalin").await.is_err());
    op.change_plan("lalin", "municipio").await.unwrap();
    let shown = op.show("lalin").await.unwrap();
    assert_eq!(
        (shown.status.as_str(), shown.plan.as_str()),
        ("active", "municipio")
    );
    assert!(matches!(
        op.show("nadie").await.unwrap_err(),
        OperatorError::UnknownTenant { .. }
    ));
    assert!(matches!(
        op.suspend("nadie", "x").await.unwrap_err(),
        OperatorError::UnknownTenant { .. }
    ));
}

#[tokio::test]
async fn the_registry_shows_a_tenant_only_its_own_row() {
    let db = TestDb::new().await;
    let op = operator(&db);
    let a = op.provision(&request("tui")).await.unwrap();
    let b = op.provision(&request("sarria")).await.unwrap();
    assert_eq!(
        op.list().await.unwrap().len(),
        2,
        "the operator scope sees every tenant"
    );

    let mut tx = begin_for_tenant(&db.app, a.tenant).await.unwrap();
    let seen: Vec<String> = sqlx::query_scalar("SELECT slug FROM tenant_registry")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, vec!["tui".to_owned()]);
    let updated = sqlx::query("UPDATE tenant_registry SET name = 'hacked' WHERE tenant_id = $1")
        .bind(b.tenant.into_uuid())
        .execute(&mut *tx)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(updated, 0, "tenant a cannot change b's row");
    let plans: i64 = sqlx::query_scalar("SELECT count(*) FROM plans")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(plans, 3, "every tenant can read the plan catalogue");
    assert!(
        sqlx::query("UPDATE plans SET agents = 1000")
            .execute(&mut *tx)
            .await
            .unwrap()
            .rows_affected()
            == 0,
        "a tenant cannot change the catalogue"
    );
    tx.rollback().await.unwrap();

    let mut operator_scope = begin_for_tenant(&db.app, ventanilla_kernel::TenantId::PLATFORM)
        .await
        .unwrap();
    let deleted = sqlx::query("DELETE FROM tenant_registry")
        .execute(&mut *operator_scope)
        .await
        .unwrap()
        .rows_affected();
    assert_eq!(
        deleted, 0,
        "the operator scope reads every row but changes none"
    );
    operator_scope.rollback().await.unwrap();

    let none: i64 = sqlx::query_scalar("SELECT count(*) FROM tenant_registry")
        .fetch_one(&db.app)
        .await
        .unwrap();
    assert_eq!(none, 0, "with no tenant set nothing is visible");

    // The registry is a projection: rebuilding it gives the same rows.
    let log = PgEventLog::new(db.app.clone(), Limits::default());
    let before = op.list().await.unwrap();
    ventanilla_postgres::rebuild(
        &db.admin,
        &log,
        &ventanilla_tenants::registry::TenantRegistry,
        100,
        &(),
    )
    .await
    .unwrap();
    assert_eq!(op.list().await.unwrap(), before);
}
