//! The world the tests run in: a fresh database, councils provisioned with
//! an admin who has a real password and API keys, and the gateway's router
//! driven over HTTP (`oneshot`, the whole axum stack).

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;
use ventanilla_eventlog::Limits;
use ventanilla_gateway::Gateway;
use ventanilla_kernel::TenantId;
use ventanilla_postgres::PgEventLog;
use ventanilla_runtime::Settings;
use ventanilla_tenants::api_keys::ApiKeys;
use ventanilla_tenants::operator::{Operator, ProvisionRequest};
use ventanilla_tenants::staff::Staff;
use ventanilla_tenants_domain::staff::StaffId;
use ventanilla_testkit::TestDb;

/// The admins' password.
pub const PASSWORD: &str = "correct horse battery staple";

/// The operator token the tests configure.
pub const OPERATOR_TOKEN: &str = "op-9f1c2e7a5b3d4c6e8f0a1b2c3d4e5f60";

pub struct World {
    pub db: TestDb,
    pub log: Arc<PgEventLog>,
    pub app: Router,
}

/// A council with an active admin (who logs in with [`PASSWORD`]) and two
/// API keys.
pub struct Council {
    pub tenant: TenantId,
    pub slug: String,
    pub admin: StaffId,
    pub admin_email: String,
    pub read_key: String,
    pub write_key: String,
}

impl World {
    /// The gateway with default settings (and an operator token).
    pub async fn new() -> Self {
        Self::with(&[]).await
    }

    /// The gateway with these `VENTANILLA__…` settings too.
    pub async fn with(vars: &[(&str, &str)]) -> Self {
        ventanilla_testkit::init_logging();
        let db = TestDb::new().await;
        let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
        let mut env: Vec<(String, String)> = vec![(
            "VENTANILLA__GATEWAY__OPERATOR_TOKEN".into(),
            OPERATOR_TOKEN.into(),
        )];
        env.extend(vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
        let settings = Settings::load_from(None, env).unwrap();
        let app = Gateway::new(Arc::clone(&log), &settings).router().unwrap();
        Self { db, log, app }
    }

    /// The gateway as `serve` runs it: fed by the log (live subscriptions,
    /// and the memory of who is who the log keeps honest) until `shutdown`.
    pub async fn following_the_log(shutdown: &tokio_util::sync::CancellationToken) -> Self {
        let mut world = Self::new().await;
        let live = ventanilla_gateway::live::Live::start(
            Arc::clone(&world.log),
            ventanilla_tickets::service::Tickets::new(Arc::clone(&world.log)),
            shutdown.clone(),
        )
        .await
        .unwrap();
        let settings = Settings::load_from(
            None,
            vec![(
                "VENTANILLA__GATEWAY__OPERATOR_TOKEN".to_owned(),
                OPERATOR_TOKEN.to_owned(),
            )],
        )
        .unwrap();
        world.app = Gateway::new(Arc::clone(&world.log), &settings)
            .router_with(live)
            .unwrap();
        world
    }

    /// Provisions `slug`, activates its admin and creates its keys.
    pub async fn council(&self, slug: &str) -> Council {
        let admin_email = format!("alcaldia@{slug}.gal");
        let provisioned = Operator::new(Arc::clone(&self.log), "test-operator")
            .provision(&ProvisionRequest {
                name: format!("Concello de {slug}"),
                slug: slug.to_owned(),
                kind: "council".into(),
                admin_email: admin_email.clone(),
                ..ProvisionRequest::default()
            })
            .await
            .unwrap();
        let tenant = provisioned.tenant;
        Staff::new(Arc::clone(&self.log))
            .accept_invitation(
                tenant,
                provisioned.admin,
                &provisioned.invitation_code,
                PASSWORD,
            )
            .await
            .unwrap();
        let keys = ApiKeys::new(Arc::clone(&self.log));
        let read_key = keys
            .create(tenant, provisioned.admin, "panel", "read")
            .await
            .unwrap()
            .secret;
        let write_key = keys
            .create(tenant, provisioned.admin, "sede", "read_write")
            .await
            .unwrap()
            .secret;
        Council {
            tenant,
            slug: provisioned.slug,
            admin: provisioned.admin,
            admin_email,
            read_key,
            write_key,
        }
    }

    /// Sends `body` to `POST /graphql` with `token`; the status and the
    /// JSON answer.
    pub async fn post_raw(&self, token: Option<&str>, body: Body) -> (StatusCode, Value) {
        let mut request =
            Request::post("/graphql").header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(body).unwrap()).await
    }

    /// Sends `request` through the router; the status and the JSON answer.
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)));
        (status, value)
    }

    /// Runs a GraphQL request; the JSON answer (the status must be 200).
    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let body = json!({ "query": query, "variables": variables }).to_string();
        let (status, value) = self.post_raw(token, Body::from(body)).await;
        assert_eq!(status, StatusCode::OK, "{value}");
        value
    }

    /// Logs the council's admin in; their session token.
    pub async fn login(&self, c: &Council) -> String {
        let answer = self
            .gql(
                None,
                "mutation($t: String!, $e: String!, $p: String!) { login(tenant: $t, email: $e, password: $p) { token expiresAt staffId } }",
                json!({ "t": c.slug, "e": c.admin_email, "p": PASSWORD }),
            )
            .await;
        assert!(answer.get("errors").is_none(), "{answer}");
        assert_eq!(answer["data"]["login"]["staffId"], c.admin.to_string());
        answer["data"]["login"]["token"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Opens a question through the API with the council's read_write key;
    /// its global id.
    pub async fn open_ticket(&self, c: &Council, subject: &str) -> String {
        let answer = self
            .gql(
                Some(&c.write_key),
                "mutation($i: OpenTicketInput!) { openTicket(input: $i) { id reference trackingToken } }",
                json!({ "i": {
                    "kind": "QUESTION",
                    "name": "Vecina del número 3",
                    "email": "vecina@correo.es",
                    "subject": subject,
                    "body": "La farola de mi calle lleva una semana fundida.",
                }}),
            )
            .await;
        assert!(answer.get("errors").is_none(), "{answer}");
        assert!(answer["data"]["openTicket"]["trackingToken"].is_string());
        answer["data"]["openTicket"]["id"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Asks every query with every credential and expects each refused —
    /// `UNAUTHENTICATED` without credentials, `FORBIDDEN` with them — and
    /// nothing written.
    pub async fn refused_to_all(&self, credentials: &[Option<&str>], queries: &[&str]) {
        let before = self.event_count().await;
        for &credentials in credentials {
            for &query in queries {
                let answer = self.gql(credentials, query, json!({})).await;
                let expected = if credentials.is_none() {
                    "UNAUTHENTICATED"
                } else {
                    "FORBIDDEN"
                };
                assert_eq!(code(&answer), expected, "{query}: {answer}");
            }
        }
        assert_eq!(self.event_count().await, before, "nothing was written");
    }

    /// How many events the log holds.
    pub async fn event_count(&self) -> i64 {
        ventanilla_postgres::sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.db.admin)
            .await
            .unwrap()
    }
}

/// The `extensions.code` of the first error of `answer`.
pub fn code(answer: &Value) -> &str {
    answer["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {answer}"))
}

/// `answer`'s data, failing on any error.
pub fn ok(answer: &Value) -> &Value {
    assert!(answer.get("errors").is_none(), "{answer}");
    &answer["data"]
}

/// The input field the first error names (`extensions.field`).
pub fn field(answer: &Value) -> &Value {
    &answer["errors"][0]["extensions"]["field"]
}
