//! End-to-end tests of the `ventanilla` binary: each starts the real binary
//! against a fresh database of the real PostgreSQL server and talks to it
//! over HTTP, signals and exit codes, as an operator would.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use ventanilla_eventlog::conformance::{event, stream, tenant};
use ventanilla_eventlog::{EventLog, ExpectedVersion, Limits};
use ventanilla_postgres::PgEventLog;
use ventanilla_testkit::TestDb;

mod processes;

const BIN: &str = env!("CARGO_BIN_EXE_ventanilla");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn command(db_url: &str) -> Command {
    let mut c = Command::new(BIN);
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("VENTANILLA__DATABASE__URL", db_url)
        .env("VENTANILLA__LOG__FORMAT", "json")
        .env("VENTANILLA__EVENTLOG__POLL_INTERVAL_MS", "200");
    c
}

fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().unwrap()
}

struct Server {
    child: Child,
    base: String,
}

impl Server {
    async fn start(db_url: &str, args: &[&str]) -> Self {
        let port = free_port();
        let mut c = command(db_url);
        c.arg("serve")
            .args(args)
            .env("VENTANILLA__HTTP__BIND", format!("127.0.0.1:{port}"));
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let child = c.spawn().unwrap();
        let server = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if reqwest::get(format!("{}/healthz", server.base))
                .await
                .is_ok()
            {
                return server;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not come up within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let r = reqwest::get(format!("{}{path}", self.base)).await.unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = Instant::now() + Duration::from_secs(25);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop within 25 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_is_healthy_projects_events_and_drains_on_sigterm() {
    let db = TestDb::new().await;
    let server = Server::start(&db.admin_url, &[]).await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["projections.database"], "ok");
    assert_eq!(server.get("/healthz").await.0, 200);

    let r = reqwest::Client::new()
        .post(format!("{}/graphql", server.base))
        .json(&serde_json::json!({ "query": "{ viewer { kind } }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["viewer"]["kind"], "ANONYMOUS", "{body}");
    let r = reqwest::get(format!("{}/graphql", server.base))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "GraphiQL for browsers");

    let r = reqwest::Client::new()
        .get(format!("{}/", server.base))
        .header(
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        )
        .send()
        .await
        .unwrap();
    let echoed = r.headers()["traceparent"].to_str().unwrap().to_owned();
    assert!(
        echoed.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
        "the trace continues: {echoed}"
    );

    // The live projection follows the log.
    let log = PgEventLog::new(db.app.clone(), Limits::default());
    for i in 0..5 {
        log.append(
            tenant(1),
            &stream("ticket-1"),
            ExpectedVersion::Any,
            vec![event("ticket.noted", i)],
        )
        .await
        .unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut tx = ventanilla_postgres::begin_for_tenant(&db.app, tenant(1))
            .await
            .unwrap();
        let count: Option<i64> =
            sqlx::query_scalar("SELECT event_count FROM stream_index WHERE stream_id = 'ticket-1'")
                .fetch_optional(&mut *tx)
                .await
                .unwrap();
        tx.commit().await.unwrap();
        if count == Some(5) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the running projection did not catch up: {count:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let status = server.terminate();
    assert!(status.success(), "SIGTERM drains and exits 0: {status:?}");
    let members: i64 = sqlx::query_scalar("SELECT count(*) FROM subscription_members")
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(
        members, 0,
        "the process left its consumer groups on the way out"
    );
}

#[tokio::test]
async fn a_bad_database_url_fails_start_up_with_one_readable_line() {
    for (url, expected) in [
        (
            "postgres://root@127.0.0.1:1/ventanilla",
            "error: cannot connect to PostgreSQL at root@127.0.0.1:1/ventanilla",
        ),
        (
            "mysql://root@localhost/x",
            "error: `database.url` must be a postgres:// or postgresql:// URL",
        ),
    ] {
        let out = run({
            let mut c = command(url);
            c.args(["serve"])
                .env("VENTANILLA__DATABASE__CONNECT_TIMEOUT_SECS", "2");
            c
        });
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
        assert_eq!(lines.len(), 1, "one line, got: {stderr}");
        assert!(lines[0].starts_with(expected), "{}", lines[0]);
        assert!(!stderr.contains("panicked"));
    }
}

#[tokio::test]
async fn bad_configuration_names_the_key() {
    let db = TestDb::new().await;
    let out = run({
        let mut c = command(&db.admin_url);
        c.args(["migrate"]).env("VENTANILLA__HTTP__BIND", "nowhere");
        c
    });
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("http.bind"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[tokio::test]
async fn migrate_creates_a_missing_database() {
    let db = TestDb::new().await;
    let name = format!("{}_made", db.name());
    let url = db.admin_url.replace(db.name(), &name);
    let out = run({
        let mut c = command(&url);
        c.arg("migrate");
        c
    });
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&db.admin)
            .await
            .unwrap();
    assert!(exists);
    // Running it again changes nothing and succeeds.
    assert!(
        run({
            let mut c = command(&url);
            c.arg("migrate");
            c
        })
        .status
        .success()
    );
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE {name} WITH (FORCE)"
    )))
    .execute(&db.admin)
    .await
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_only_the_services_named() {
    let db = TestDb::new().await;
    let out = run({
        let mut c = command(&db.admin_url);
        c.args(["serve", "--services", "gateway,nope"]);
        c
    });
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("nope") && stderr.contains("tickets"),
        "the error names the known services: {stderr}"
    );

    let server = Server::start(&db.admin_url, &["--services", "gateway"]).await;
    let (status, body) = server.get("/readyz").await;
    assert_eq!(status, 200);
    assert!(
        body["checks"].get("projections.database").is_none(),
        "projections do not run here: {body}"
    );
    assert!(server.terminate().success());
    let subscriptions: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions")
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(
        subscriptions, 0,
        "no projection joined from a gateway-only process"
    );
}

#[tokio::test]
async fn projections_rebuild_replays_the_log_and_reports() {
    let db = TestDb::new().await;
    let log = PgEventLog::new(db.app.clone(), Limits::default());
    for i in 0..120 {
        log.append(
            tenant(i % 3),
            &stream(&format!("ticket-{}", i % 10)),
            ExpectedVersion::Any,
            vec![event("ticket.noted", i as u64)],
        )
        .await
        .unwrap();
    }
    let out = run({
        let mut c = command(&db.admin_url);
        c.args([
            "projections",
            "rebuild",
            "stream_index",
            "--batch-size",
            "25",
        ]);
        c
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("rebuilt stream_index: 120 events"),
        "{stdout}"
    );
    let mut tx = ventanilla_postgres::begin_for_tenant(&db.app, tenant(0))
        .await
        .unwrap();
    let total: i64 = sqlx::query_scalar("SELECT sum(event_count)::bigint FROM stream_index")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    assert_eq!(total, 40);
    tx.commit().await.unwrap();

    let listed = run({
        let mut c = command(&db.admin_url);
        c.args(["projections", "list"]);
        c
    });
    let listed = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.contains("stream_index"), "{listed}");

    let out = run({
        let mut c = command(&db.admin_url);
        c.args(["projections", "rebuild", "nope"]);
        c
    });
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("known: stream_index"));
}

/// `.env.sample` lists every setting with its default; it is generated from
/// the code's table of keys (run this test with `UPDATE_ENV_SAMPLE=1` to
/// rewrite it) and this test fails when the two differ.
#[test]
fn env_sample_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../.env.sample");
    let expected = ventanilla_runtime::env_sample();
    if std::env::var_os("UPDATE_ENV_SAMPLE").is_some() {
        std::fs::write(path, &expected).unwrap();
    }
    let actual = std::fs::read_to_string(path).unwrap_or_default();
    assert_eq!(
        actual, expected,
        ".env.sample is stale: run `UPDATE_ENV_SAMPLE=1 cargo test -p ventanilla --test e2e env_sample`"
    );
}

#[tokio::test]
async fn tenant_create_twice_fails_clearly_and_list_show_it() {
    let db = TestDb::new().await;
    let create = || {
        let mut c = command(&db.admin_url);
        c.args([
            "tenant",
            "create",
            "--name",
            "Concello de Lugo",
            "--slug",
            "lugo",
            "--admin-email",
            "alcaldia@lugo.gal",
        ]);
        c
    };
    let out = run(create());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("tenant lugo provisioned"), "{stdout}");
    let code = stdout.lines().last().unwrap().trim();
    assert_eq!(
        code.len(),
        64,
        "the invitation code is printed once: {stdout}"
    );

    let again = run(create());
    assert!(!again.status.success());
    assert_eq!(
        String::from_utf8_lossy(&again.stderr).trim(),
        "error: the slug lugo is taken by another tenant; choose another"
    );

    let list = run({
        let mut c = command(&db.admin_url);
        c.args(["tenant", "list"]);
        c
    });
    let listed = String::from_utf8_lossy(&list.stdout);
    assert!(
        listed.contains("lugo") && listed.contains("1 tenant(s)"),
        "{listed}"
    );

    let suspend = run({
        let mut c = command(&db.admin_url);
        c.args(["tenant", "suspend", "lugo", "--reason", "impago"]);
        c
    });
    assert!(suspend.status.success());
    let show = run({
        let mut c = command(&db.admin_url);
        c.args(["tenant", "show", "lugo"]);
        c
    });
    assert!(String::from_utf8_lossy(&show.stdout).contains("suspended (impago)"));
}

#[tokio::test]
async fn demo_is_provisioned_once_and_plans_are_operator_data() {
    let db = TestDb::new().await;
    let demo = || {
        let mut c = command(&db.admin_url);
        c.arg("demo");
        c
    };
    let first = run(demo());
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.admin)
        .await
        .unwrap();
    let second = run(demo());
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("admin login: admin@demo.ventanilla.test")
    );
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(before, after, "a second demo run writes nothing");
    let officials: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE event_type = 'directory.official_added'",
    )
    .fetch_one(&db.admin)
    .await
    .unwrap();
    assert!(officials >= 3, "the demo council has officials");
    let tickets: i64 = sqlx::query_scalar("SELECT count(*) FROM tickets")
        .fetch_one(&db.admin)
        .await
        .unwrap();
    assert_eq!(
        tickets, 3,
        "the demo inbox has its three sample tickets, once"
    );
    assert!(String::from_utf8_lossy(&second.stdout).contains("3 sample tickets"));

    let plan = |args: &[&str]| {
        let mut c = command(&db.admin_url);
        c.arg("plan").args(args);
        run(c)
    };
    let define = plan(&[
        "define",
        "ciudad",
        "--name",
        "Ciudad",
        "--agents",
        "100",
        "--channel-accounts",
        "40",
        "--tickets-per-month",
        "200000",
        "--api-requests-per-minute",
        "6000",
    ]);
    assert!(
        define.status.success(),
        "{}",
        String::from_utf8_lossy(&define.stderr)
    );
    let zero = plan(&[
        "change",
        "ciudad",
        "--name",
        "Ciudad",
        "--agents",
        "0",
        "--channel-accounts",
        "40",
        "--tickets-per-month",
        "200000",
        "--api-requests-per-minute",
        "6000",
    ]);
    assert!(!zero.status.success(), "a limit of 0 is refused");
    assert!(String::from_utf8_lossy(&zero.stderr).contains("agents"));
    assert!(plan(&["retire", "ciudad"]).status.success());
    let listed = String::from_utf8_lossy(&plan(&["list"]).stdout).to_string();
    assert!(
        listed.contains("ciudad") && listed.contains("retired") && listed.contains("municipio"),
        "{listed}"
    );
}
