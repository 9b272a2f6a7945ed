//! Live subscriptions over a real WebSocket (`graphql-transport-ws`),
//! through the whole server: a staff member hears `inboxChanged` when a
//! ticket of their organisation changes, and `ticketUpdated` re-reads the
//! ticket; another organisation hears nothing; a bad token is refused at
//! `connection_init`.

use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_util::sync::CancellationToken;
use ventanilla_gateway::live::Live;

use crate::support::World;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(w: &World, shutdown: &CancellationToken) -> String {
    let settings =
        ventanilla_runtime::config::Settings::load_from(None, Vec::<(String, String)>::new())
            .unwrap();
    let live = Live::start(
        Arc::clone(&w.log),
        ventanilla_tickets::service::Tickets::new(Arc::clone(&w.log)),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let app = ventanilla_gateway::Gateway::new(Arc::clone(&w.log), &settings)
        .router_with(live)
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .await
    });
    format!("ws://{addr}/graphql/ws")
}

async fn connect(url: &str, token: &str) -> (Socket, Value) {
    let mut request = url.into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "graphql-transport-ws"
    );
    socket
        .send(Message::text(
            json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}})
                .to_string(),
        ))
        .await
        .unwrap();
    let first = next(&mut socket).await;
    (socket, first)
}

async fn next(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("nothing within 10 s")
            .expect("the socket closed")
            .unwrap();
        match message {
            Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
            Message::Close(frame) => {
                return json!({"type": "closed", "frame": format!("{frame:?}")});
            }
            _ => {}
        }
    }
}

async fn subscribe(socket: &mut Socket, id: &str, query: &str) {
    socket
        .send(Message::text(
            json!({"id": id, "type": "subscribe", "payload": {"query": query}}).to_string(),
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn staff_hear_their_organisations_changes_live_and_nobody_else_does() {
    let w = World::new().await;
    let lugo = w.council("lugo").await;
    let vigo = w.council("vigo").await;
    let shutdown = CancellationToken::new();
    let url = serve(&w, &shutdown).await;
    let token = w.login(&lugo).await;
    let other = w.login(&vigo).await;
    let ticket = w.open_ticket(&lugo, "Farola fundida").await;

    let (mut socket, ack) = connect(&url, &token).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    subscribe(
        &mut socket,
        "1",
        "subscription { inboxChanged { ticketId event } }",
    )
    .await;
    subscribe(
        &mut socket,
        "2",
        &format!(
            "subscription {{ ticketUpdated(id: \"{ticket}\") {{ status messages {{ body }} }} }}"
        ),
    )
    .await;
    let (mut stranger, ack) = connect(&url, &other).await;
    assert_eq!(ack["type"], "connection_ack");
    subscribe(
        &mut stranger,
        "1",
        "subscription { inboxChanged { ticketId } }",
    )
    .await;
    // Another organisation's ticket by id: refused at once.
    subscribe(
        &mut stranger,
        "2",
        &format!("subscription {{ ticketUpdated(id: \"{ticket}\") {{ status }} }}"),
    )
    .await;
    let refused = next(&mut stranger).await;
    assert_eq!(refused["id"], "2", "{refused}");
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "NOT_FOUND",
        "{refused}"
    );
    assert!(refused["payload"]["data"].is_null(), "{refused}");
    let done = next(&mut stranger).await;
    assert_eq!(
        (&done["type"], &done["id"]),
        (&json!("complete"), &json!("2")),
        "{done}"
    );
    // The protocol does not say when a subscription is listening: tag the
    // ticket until both have heard a change (each try a new tag), then
    // drain what they heard.
    let mut heard = (false, false);
    for attempt in 0..20 {
        let tagged = w
            .gql(
                Some(&token),
                "mutation($id: ID!, $tag: String!) { tag(ticketId: $id, tag: $tag) { id } }",
                json!({ "id": ticket, "tag": format!("probe-{attempt}") }),
            )
            .await;
        assert!(tagged["errors"].is_null(), "{tagged}");
        while let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(Duration::from_millis(500), socket.next()).await
        {
            let m: Value = serde_json::from_str(text.as_str()).unwrap();
            match m["id"].as_str() {
                Some("1") => heard.0 = true,
                Some("2") => heard.1 = true,
                _ => panic!("unexpected {m}"),
            }
        }
        if heard == (true, true) {
            break;
        }
    }
    assert_eq!(heard, (true, true), "the subscriptions never listened");

    let replied = w
        .gql(
            Some(&token),
            "mutation($id: ID!) { reply(ticketId: $id, body: \"Mañana la cambian.\") { status } }",
            json!({ "id": ticket }),
        )
        .await;
    assert!(replied["errors"].is_null(), "{replied}");
    let mut heard_inbox = false;
    let mut heard_ticket = false;
    while !(heard_inbox && heard_ticket) {
        let m = next(&mut socket).await;
        assert_eq!(m["type"], "next", "{m}");
        match m["id"].as_str() {
            Some("1") => {
                assert_eq!(
                    m["payload"]["data"]["inboxChanged"]["ticketId"],
                    ticket.as_str()
                );
                heard_inbox = true;
            }
            Some("2") => {
                let messages = &m["payload"]["data"]["ticketUpdated"]["messages"];
                if messages
                    .as_array()
                    .is_some_and(|all| all.iter().any(|x| x["body"] == "Mañana la cambian."))
                {
                    heard_ticket = true;
                }
            }
            other => panic!("unexpected {other:?}: {m}"),
        }
    }
    // The other organisation heard nothing.
    let quiet = tokio::time::timeout(Duration::from_millis(700), stranger.next()).await;
    assert!(quiet.is_err(), "another organisation heard: {quiet:?}");

    // A bad token is refused at connection_init.
    let (_, refused) = connect(&url, "not-a-token").await;
    assert_eq!(refused["type"], "closed", "{refused}");
    assert!(
        refused["frame"].as_str().is_some_and(
            |f| f.contains("4403") && f.contains("neither a valid session nor a valid API key")
        ),
        "{refused}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn only_staff_may_listen_and_a_socket_without_the_subprotocol_is_refused() {
    let w = World::new().await;
    let shutdown = CancellationToken::new();
    let url = serve(&w, &shutdown).await;

    // Anonymous: connected, but told to bring credentials.
    let mut request = url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    socket
        .send(Message::text(
            json!({"type": "connection_init"}).to_string(),
        ))
        .await
        .unwrap();
    assert_eq!(next(&mut socket).await["type"], "connection_ack");
    subscribe(
        &mut socket,
        "1",
        "subscription { inboxChanged { ticketId } }",
    )
    .await;
    let refused = next(&mut socket).await;
    assert_eq!(
        refused["payload"]["errors"][0]["extensions"]["code"], "UNAUTHENTICATED",
        "{refused}"
    );

    // A subscription that does not validate gets the code HTTP would give.
    assert_eq!(next(&mut socket).await["type"], "complete");
    subscribe(&mut socket, "2", "subscription { inboxChanged { mood } }").await;
    let invalid = next(&mut socket).await;
    assert_eq!(invalid["id"], "2", "{invalid}");
    assert_eq!(
        invalid["payload"]["errors"][0]["extensions"]["code"], "VALIDATION",
        "{invalid}"
    );

    // No subprotocol: no WebSocket.
    let plain = url.as_str().into_client_request().unwrap();
    let error = tokio_tungstenite::connect_async(plain).await.unwrap_err();
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 400);
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    shutdown.cancel();
}
