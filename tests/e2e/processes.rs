//! The whole platform end to end, as a council lives it, through the real
//! binary: the operator provisions a council through GraphQL, its first
//! admin accepts the invitation and links a Telegram bot, a citizen writes
//! to the bot (a webhook shaped and signed like Telegram's), a ticket
//! opens, the admin answers through GraphQL, the answer reaches the
//! (fake) Telegram as a reply to the citizen's message, and a live
//! subscription over WebSocket heard it all.
//!
//! The same test runs twice: with every service in one process (the
//! default `serve`), and with the gateway, tenants, tickets and social
//! each in a process of its own (`serve --services …`), sharing only the
//! database — the event log and each service's own tables. Nothing but
//! the gateway's port is used for the API and nothing but the social
//! process's for the webhook.

use std::fs::File;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use ventanilla_social::fake::telegram::{FakeTelegram, TelegramUser, deliver};
use ventanilla_testkit::TestDb;

use crate::{command, free_port};

const OPERATOR: &str = "e2e-operator-token-0123456789abcdef";
const CREDENTIALS_KEY: &str = "ZGV2LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24tdXNlISE=";
const BOT_TOKEN: &str = "7345123456:AAE-e2e-token-of-the-concello-bot";
const PASSWORD: &str = "unha-clave-longa-para-o-e2e";

/// One `ventanilla serve` process; what it writes to stderr goes to a
/// file, shown when the test fails.
struct Process {
    name: String,
    child: Child,
    log: std::path::PathBuf,
}

impl Process {
    async fn start(
        name: &str,
        db_url: &str,
        port: u16,
        env: &[(String, String)],
        args: &[&str],
    ) -> Self {
        let log = std::env::temp_dir().join(format!(
            "ventanilla-e2e-{}-{name}-{port}.log",
            std::process::id()
        ));
        let mut c = command(db_url);
        c.arg("serve")
            .args(args)
            .env("VENTANILLA__HTTP__BIND", format!("127.0.0.1:{port}"));
        for (k, v) in env {
            c.env(k, v);
        }
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).unwrap());
        let mut process = Self {
            name: name.to_owned(),
            child: c.spawn().unwrap(),
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/readyz")).await
                && r.status() == 200
            {
                return process;
            }
            if let Some(status) = process.child.try_wait().unwrap() {
                panic!("{} exited with {status}:\n{}", process.name, process.logs());
            }
            assert!(
                Instant::now() < deadline,
                "{} was not ready within 60 s:\n{}",
                process.name,
                process.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn logs(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} (last lines) ---\n{}", self.name, self.logs());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The platform as started for a test: where its API and its webhooks are.
struct Platform {
    api: String,
    _processes: Vec<Process>,
}

impl Platform {
    async fn start(db: &TestDb, telegram: &FakeTelegram, separate: bool) -> Self {
        let api_port = free_port();
        let social_port = if separate { free_port() } else { api_port };
        let env: Vec<(String, String)> = [
            ("VENTANILLA__GATEWAY__OPERATOR_TOKEN", OPERATOR.to_owned()),
            (
                "VENTANILLA__SOCIAL__CREDENTIALS_KEY",
                CREDENTIALS_KEY.to_owned(),
            ),
            (
                "VENTANILLA__SOCIAL__TELEGRAM_BASE_URL",
                telegram.base_url().to_owned(),
            ),
            (
                "VENTANILLA__SOCIAL__PUBLIC_URL",
                format!("http://127.0.0.1:{social_port}"),
            ),
            ("VENTANILLA__SOCIAL__DELIVERY_INTERVAL_MS", "200".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let mut processes = Vec::new();
        if separate {
            // Each service where an operator would put it; the order is
            // only so that start-up logs read well.
            for (service, port) in [
                ("tenants", free_port()),
                ("tickets", free_port()),
                ("social", social_port),
                ("gateway", api_port),
            ] {
                processes.push(
                    Process::start(service, &db.admin_url, port, &env, &["--services", service])
                        .await,
                );
            }
        } else {
            processes.push(Process::start("all", &db.admin_url, api_port, &env, &[]).await);
        }
        Self {
            api: format!("http://127.0.0.1:{api_port}"),
            _processes: processes,
        }
    }

    async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut request = reqwest::Client::new()
            .post(format!("{}/graphql", self.api))
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let answer: Value = request.send().await.unwrap().json().await.unwrap();
        assert!(answer.get("errors").is_none(), "{query}\n→ {answer}");
        answer["data"].clone()
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn listen(api: &str, token: &str, query: &str) -> Socket {
    let mut request = format!("{}/graphql/ws", api.replacen("http", "ws", 1))
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let init =
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}});
    socket.send(Message::text(init.to_string())).await.unwrap();
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    let subscribe = json!({"id": "1", "type": "subscribe", "payload": {"query": query}});
    socket
        .send(Message::text(subscribe.to_string()))
        .await
        .unwrap();
    socket
}

async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(60), socket.next())
            .await
            .expect("the live subscription said nothing within 60 s")
            .expect("the live subscription closed")
            .unwrap();
        if let Message::Text(text) = message {
            return serde_json::from_str(text.as_str()).unwrap();
        }
    }
}

/// Polls `check` every 100 ms for up to 60 s (a loaded CI machine hands
/// partitions over slowly).
async fn eventually<T, F: std::future::Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what}: not within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn a_council_answers_a_telegram_message(separate: bool) {
    let db = TestDb::new().await;
    let telegram = FakeTelegram::start().await;
    telegram.add_bot(BOT_TOKEN, 7_345_123_456, "concello_lugo_bot");
    // The platform's address here is http on a high port, which the real
    // Telegram would refuse as a webhook.
    telegram.accept_any_webhook_url();
    let platform = Platform::start(&db, &telegram, separate).await;

    // The operator provisions the council; its first admin accepts.
    let provisioned = platform
        .gql(
            Some(OPERATOR),
            "mutation($input: ProvisionTenantInput!) { provisionTenant(input: $input) { tenant { slug } adminId invitationCode } }",
            json!({"input": {"name": "Concello de Lugo", "slug": "lugo", "kind": "COUNCIL", "adminEmail": "alcaldia@lugo.gal", "plan": "municipio"}}),
        )
        .await;
    let p = &provisioned["provisionTenant"];
    let session = platform
        .gql(
            None,
            "mutation($id: UUID!, $code: String!, $password: String!) { acceptInvitation(tenant: \"lugo\", staffId: $id, invitationCode: $code, password: $password) { token } }",
            json!({"id": p["adminId"], "code": p["invitationCode"], "password": PASSWORD}),
        )
        .await;
    let token = session["acceptInvitation"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = Some(token.as_str());

    // The admin links the council's Telegram bot: Telegram is told where
    // to send its updates, with a secret of the platform's.
    let linked = platform
        .gql(
            t,
            "mutation($input: LinkChannelAccountInput!) { linkChannelAccount(input: $input) { account { id network health { state } } webhookUrl } }",
            json!({"input": {"network": "TELEGRAM", "name": "Bot do Concello", "accessToken": BOT_TOKEN}}),
        )
        .await;
    let webhook = telegram
        .webhook(BOT_TOKEN)
        .expect("the bot's webhook was set");
    assert_eq!(
        webhook.url,
        linked["linkChannelAccount"]["webhookUrl"].as_str().unwrap()
    );

    let mut live = listen(
        &platform.api,
        &token,
        "subscription { inboxChanged { ticketId event } }",
    )
    .await;

    // A citizen writes to the bot.
    let citizen = TelegramUser::new(5_551_234, "Uxía", Some("uxia_lugo"));
    let update = telegram.update_message(
        901,
        5_551_234,
        &citizen,
        "Ola, cando abre a piscina de verán?",
        None,
    );
    let status = deliver(&webhook.url, webhook.secret_token.as_deref(), &update)
        .await
        .unwrap();
    assert_eq!(status, 200);
    // Telegram retries what it thinks was not received: still one ticket.
    let status = deliver(&webhook.url, webhook.secret_token.as_deref(), &update)
        .await
        .unwrap();
    assert_eq!(status, 200);

    let opened = next(&mut live).await;
    let ticket = opened["payload"]["data"]["inboxChanged"]["ticketId"]
        .as_str()
        .unwrap_or_else(|| panic!("{opened}"))
        .to_owned();
    assert_eq!(
        opened["payload"]["data"]["inboxChanged"]["event"], "ticket.opened",
        "{opened}"
    );
    let inbox = platform
        .gql(
            t,
            "{ inbox(first: 10) { edges { node { id channel status messages { body } } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        inbox["inbox"]["edges"].as_array().map(Vec::len),
        Some(1),
        "{inbox}"
    );
    let node = &inbox["inbox"]["edges"][0]["node"];
    assert_eq!(node["id"], ticket.as_str());
    assert_eq!(node["channel"], "TELEGRAM");
    assert_eq!(
        node["messages"][0]["body"],
        "Ola, cando abre a piscina de verán?"
    );

    // The admin answers; the answer leaves on Telegram, in the citizen's
    // private chat with the bot.
    let answer = "Abre o 15 de xuño, de 11 a 20 h.";
    let replied = platform
        .gql(
            t,
            "mutation($id: ID!, $body: String!) { reply(ticketId: $id, body: $body) { status messages { body } } }",
            json!({"id": ticket, "body": answer}),
        )
        .await;
    assert_eq!(replied["reply"]["messages"][1]["body"], answer);
    let sent = eventually("the reply reaches Telegram", || async {
        telegram.sent().into_iter().find(|m| m.text == answer)
    })
    .await;
    assert_eq!(sent.chat_id, 5_551_234);
    assert_eq!(
        telegram.sent().len(),
        1,
        "one answer, sent once: {:?}",
        telegram.sent()
    );

    // The live subscription heard the reply, then its delivery.
    let mut heard = Vec::new();
    while !heard.iter().any(|e| e == "ticket.delivery_recorded") {
        let m = next(&mut live).await;
        assert_eq!(
            m["payload"]["data"]["inboxChanged"]["ticketId"],
            ticket.as_str(),
            "{m}"
        );
        heard.push(
            m["payload"]["data"]["inboxChanged"]["event"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    assert!(heard.contains(&"ticket.replied".to_owned()), "{heard:?}");
    let state = eventually("the reply shows as sent", || {
        let platform = &platform;
        let ticket = ticket.clone();
        async move {
            let read = platform
                .gql(
                    t,
                    "query($id: ID!) { ticket(id: $id) { messages { body deliveryState } } }",
                    json!({"id": ticket}),
                )
                .await;
            let state = read["ticket"]["messages"][1]["deliveryState"].clone();
            (state == "SENT").then_some(state)
        }
    })
    .await;
    assert_eq!(state, "SENT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_council_answers_a_telegram_message_with_every_service_in_one_process() {
    a_council_answers_a_telegram_message(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_council_answers_a_telegram_message_with_each_service_in_its_own_process() {
    a_council_answers_a_telegram_message(true).await;
}
