//! The simulator for newcomers: with `social.simulator = true` (what
//! `make run` sets), `serve` runs the local fakes of the Graph API and the X
//! API in its own process and sends replies there, logging what each
//! simulated network received; the demo council's accounts are linked to
//! them with the development credentials below; and `ventanilla simulate …`
//! sends a realistic signed webhook to the running server — so anyone can
//! watch a message become a ticket and the answer go out, with no real
//! credentials.
//!
//! What this module must not do: run unless asked (it is compiled only with
//! the `fakes` feature, and `serve` starts it only with the setting), or be
//! pointed at a real network.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::fake::{meta as fake_meta, x as fake_x};

/// The simulated Facebook Page's id.
pub const PAGE_ID: &str = "100000000000001";
/// The simulated page token.
pub const PAGE_TOKEN: &str = "simulated-page-token";
/// The simulated Meta app secret (webhooks are signed with it).
pub const APP_SECRET: &str = "simulated-app-secret";
/// The simulated Meta verification token.
pub const VERIFY_TOKEN: &str = "simulated-verify-token";
/// The simulated X account's user id.
pub const X_USER_ID: &str = "1500000000000000001";
/// The simulated X user token.
pub const X_TOKEN: &str = "simulated-x-token";
/// The simulated X consumer secret (webhooks are signed with it).
pub const CONSUMER_SECRET: &str = "simulated-consumer-secret";

/// The simulated networks running in this process.
pub struct Simulated {
    /// The fake Graph API.
    pub graph: Arc<fake_meta::FakeGraph>,
    /// The fake X API.
    pub x: Arc<fake_x::FakeX>,
}

/// Starts the simulated networks, accepting the development tokens, and a
/// task that logs every request they receive until `shutdown` (the task
/// keeps them running until then).
pub async fn start(shutdown: CancellationToken) -> Simulated {
    let graph = fake_meta::start().await;
    graph.allow_token(PAGE_TOKEN);
    let x = fake_x::start().await;
    x.allow_token(X_TOKEN, X_USER_ID);
    tracing::warn!(
        graph = %graph.base_url, x = %x.base_url,
        "SIMULATOR: replies go to local simulated Facebook and X APIs, not to the real networks"
    );
    let (graph, x) = (Arc::new(graph), Arc::new(x));
    let (g, t) = (Arc::clone(&graph), Arc::clone(&x));
    tokio::spawn(async move {
        let mut seen = (0usize, 0usize);
        let mut every = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                _ = every.tick() => {
                    let graph_requests = g.requests();
                    for r in graph_requests.iter().skip(seen.0) {
                        let body = r.body.as_ref().map(ToString::to_string).unwrap_or_default();
                        tracing::info!(network = "facebook (simulated)", method = %r.method, path = %r.path, body, "the simulated network received");
                    }
                    let x_requests = t.requests();
                    for r in x_requests.iter().skip(seen.1) {
                        let body = r.body.as_ref().map(ToString::to_string).unwrap_or_default();
                        tracing::info!(network = "x (simulated)", method = %r.method, path = %r.path, body, "the simulated network received");
                    }
                    seen = (graph_requests.len(), x_requests.len());
                }
            }
        }
    });
    Simulated { graph, x }
}

/// What a citizen can do in the simulator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// A comment on the page's latest post.
    FacebookComment,
    /// A Messenger message to the page.
    Messenger,
    /// A mention of the X account.
    XMention,
    /// A direct message to the X account.
    XDirectMessage,
}

impl Action {
    /// Every action, as the command line names them.
    pub const ALL: [(&'static str, Action); 4] = [
        ("facebook-comment", Action::FacebookComment),
        ("messenger", Action::Messenger),
        ("x-mention", Action::XMention),
        ("x-dm", Action::XDirectMessage),
    ];

    /// The action named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(n, _)| *n == name).map(|(_, a)| *a)
    }

    /// Whether it goes to the Meta webhook (else X's).
    pub fn is_meta(self) -> bool {
        matches!(self, Action::FacebookComment | Action::Messenger)
    }
}

/// A signed webhook for `action` by the citizen `citizen` (a stable id:
/// the same citizen's messages continue one conversation), saying `text`:
/// the body, the signature header's name and its value.
pub fn webhook(action: Action, citizen: &str, text: &str) -> (Vec<u8>, &'static str, String) {
    let n = Uuid::new_v4().simple().to_string();
    let now = Utc::now();
    let digits: String = n
        .chars()
        .map(|c| char::from(b'0' + (c as u8 % 10)))
        .take(15)
        .collect();
    let payload = match action {
        Action::FacebookComment => fake_meta::feed_comment(
            PAGE_ID,
            &format!("{PAGE_ID}_1"),
            &format!("{PAGE_ID}_1_{digits}"),
            citizen,
            "Vecina simulada",
            text,
            "add",
            now.timestamp(),
        ),
        Action::Messenger => fake_meta::messenger_message(
            PAGE_ID,
            citizen,
            &format!("m_{n}"),
            text,
            now.timestamp_millis(),
        ),
        Action::XMention => fake_x::mention_event(
            X_USER_ID,
            &format!("18{digits}"),
            &format!("@concello_demo {text}"),
            citizen,
            "vecina_simulada",
            None,
            now.timestamp_millis(),
        ),
        Action::XDirectMessage => fake_x::dm_event(
            X_USER_ID,
            &format!("17{digits}"),
            citizen,
            X_USER_ID,
            "vecina_simulada",
            text,
            now.timestamp_millis(),
        ),
    };
    if action.is_meta() {
        let (body, signature) = fake_meta::signed_webhook(APP_SECRET, &payload);
        (body, "x-hub-signature-256", signature)
    } else {
        let (body, signature) = fake_x::signed_webhook(CONSUMER_SECRET, &payload);
        (body, "x-twitter-webhooks-signature", signature)
    }
}
