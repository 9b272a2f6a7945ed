//! The gateway through GraphQL clients we did not write: this test serves
//! the gateway (live subscriptions fed) on a real port, on a fresh
//! database with two councils and a ticket, and runs
//! `tests/clients/gateway.test.mjs` with Node — queries and mutations
//! through `graphql-request`, a live subscription through `graphql-ws`,
//! refusals as those libraries surface them.
//!
//! It needs `node` and the packages of `tests/clients` (`make test`
//! installs them, or `npm ci --prefix tests/clients`); without them it
//! fails, saying so, rather than being skipped.
//!
//! Run it alone: `cargo test -p ventanilla-gateway --test clients`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

// Shared with the `it` target, which uses what this one does not.
#[allow(dead_code)]
#[path = "it/support.rs"]
mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use ventanilla_gateway::Gateway;
use ventanilla_gateway::live::Live;
use ventanilla_runtime::Settings;
use ventanilla_tickets::service::Tickets;

use support::World;

/// How long the whole Node run may take (it takes a second or two).
const NODE_TIMEOUT: Duration = Duration::from_secs(120);

/// The packages `gateway.test.mjs` imports.
const PACKAGES: [&str; 4] = ["graphql", "graphql-request", "graphql-ws", "ws"];

const SUBJECT: &str = "Farola fundida en la Rúa Nova";

/// `tests/clients`, at the workspace's root.
fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/clients")
        .canonicalize()
        .expect("tests/clients is missing")
}

/// The Node to run: `$NODE`, or `node` on the `PATH`.
fn node() -> String {
    std::env::var("NODE").unwrap_or_else(|_| "node".to_owned())
}

/// Fails, saying how to install them, when Node or the packages are missing.
async fn require_node_and_packages(dir: &Path) {
    const INSTALL: &str =
        "run `make test` (which installs them) or `npm ci --prefix tests/clients`";
    let version = tokio::process::Command::new(node())
        .arg("--version")
        .output()
        .await;
    let node = node();
    match version {
        Ok(out) if out.status.success() => {
            let version = String::from_utf8_lossy(&out.stdout);
            let major: Option<u32> = version
                .trim()
                .trim_start_matches('v')
                .split('.')
                .next()
                .and_then(|m| m.parse().ok());
            assert!(
                major.is_some_and(|m| m >= 20),
                "this test needs Node.js 20 or later; `{node}` is {}",
                version.trim()
            );
        }
        Ok(out) => panic!(
            "`{node} --version` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => panic!(
            "this test needs Node.js 20 or later, and `{node}` cannot be run ({e}): install it, then {INSTALL}"
        ),
    }
    let missing: Vec<&str> = PACKAGES
        .into_iter()
        .filter(|p| {
            !dir.join("node_modules")
                .join(p)
                .join("package.json")
                .is_file()
        })
        .collect();
    assert!(
        missing.is_empty(),
        "tests/clients/node_modules lacks {missing:?}: {INSTALL}"
    );
}

/// Serves the gateway, its live subscriptions fed from the log, on a free
/// port of 127.0.0.1 until `shutdown`; its address.
async fn serve(w: &World, shutdown: &CancellationToken) -> SocketAddr {
    let settings = Settings::load_from(None, Vec::<(String, String)>::new()).unwrap();
    let live = Live::start(
        Arc::clone(&w.log),
        Tickets::new(Arc::clone(&w.log)),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let app = Gateway::new(Arc::clone(&w.log), &settings)
        .router_with(live)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_request_and_graphql_ws_drive_the_gateway() {
    let dir = clients_dir();
    require_node_and_packages(&dir).await;

    let w = World::new().await;
    let lugo = w.council("lugo").await;
    let vigo = w.council("vigo").await;
    let token = w.login(&lugo).await;
    let other = w.login(&vigo).await;
    let ticket = w.open_ticket(&lugo, SUBJECT).await;
    let shutdown = CancellationToken::new();
    let addr = serve(&w, &shutdown).await;

    let run = tokio::process::Command::new(node())
        .args(["--test", "--test-reporter=spec", "gateway.test.mjs"])
        .current_dir(&dir)
        .env("GATEWAY_HTTP_URL", format!("http://{addr}/graphql"))
        .env("GATEWAY_WS_URL", format!("ws://{addr}/graphql/ws"))
        .env("STAFF_TOKEN", &token)
        .env("OTHER_STAFF_TOKEN", &other)
        .env("TICKET_ID", &ticket)
        .env("TICKET_SUBJECT", SUBJECT)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(NODE_TIMEOUT, run)
        .await
        .unwrap_or_else(|_| panic!("node --test ran over {NODE_TIMEOUT:?} (killed)"))
        .expect("node could not be run");
    shutdown.cancel();

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node --test gateway.test.mjs failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    // What the clients did, shown with `--nocapture`.
    #[allow(clippy::print_stdout)]
    {
        println!("{stdout}{stderr}");
    }
}
