//! Staff work the inbox: log in, list, reply, and see their own writes.

use serde_json::json;

use crate::support::{World, code};

const TICKET: &str = "id reference status channel subject tags assigneeId messagesCount \
    contact { name email } \
    messages { id direction channel body authorId deliveryState at } \
    notes { id authorId body }";

#[tokio::test]
async fn login_inbox_reply_and_the_ticket_changed() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;

    let viewer = w
        .gql(
            Some(&token),
            "{ viewer { kind role staffId apiKeyId tenant { id name } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        viewer["data"]["viewer"],
        json!({
            "kind": "STAFF", "role": "ADMIN", "staffId": c.admin.to_string(), "apiKeyId": null,
            "tenant": { "id": c.tenant.to_string(), "name": "Concello de lugo" },
        })
    );

    let id = w.open_ticket(&c, "Farola fundida").await;
    let inbox = w
        .gql(
            Some(&token),
            "query($f: InboxFilter) { inbox(first: 10, filter: $f) { \
               edges { cursor node { id subject status channel } } \
               pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }",
            json!({ "f": { "status": "NEW", "channel": "API" } }),
        )
        .await;
    assert!(inbox.get("errors").is_none(), "{inbox}");
    let edges = inbox["data"]["inbox"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 1, "{inbox}");
    assert_eq!(
        edges[0]["node"],
        json!({ "id": id, "subject": "Farola fundida", "status": "NEW", "channel": "API" })
    );
    assert_eq!(inbox["data"]["inbox"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(
        inbox["data"]["inbox"]["pageInfo"]["endCursor"],
        edges[0]["cursor"]
    );

    // Each mutation answers with the state it produced…
    let replied = w
        .gql(
            Some(&token),
            &format!(
                "mutation($id: ID!) {{ reply(ticketId: $id, body: \"Mañana la cambiamos.\", waitForCitizen: true) {{ {TICKET} }} }}"
            ),
            json!({ "id": id }),
        )
        .await;
    assert!(replied.get("errors").is_none(), "{replied}");
    let ticket = &replied["data"]["reply"];
    assert_eq!(ticket["status"], "WAITING_ON_CITIZEN");
    assert_eq!(ticket["messagesCount"], 2);
    let messages = ticket["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[1]["direction"], "OUT");
    assert_eq!(messages[1]["body"], "Mañana la cambiamos.");
    assert_eq!(messages[1]["authorId"], c.admin.to_string());
    assert_eq!(messages[1]["deliveryState"], "PENDING");
    assert_eq!(ticket["contact"]["email"], "vecina@correo.es");

    let tagged = w
        .gql(
            Some(&token),
            "mutation($id: ID!) { tag(ticketId: $id, tag: \"alumbrado\") { tags } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        tagged["data"]["tag"]["tags"],
        json!(["alumbrado"]),
        "{tagged}"
    );
    let noted = w
        .gql(
            Some(&token),
            "mutation($id: ID!) { addNote(ticketId: $id, body: \"Avisar a la brigada\") { notes { body authorId } } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        noted["data"]["addNote"]["notes"],
        json!([{ "body": "Avisar a la brigada", "authorId": c.admin.to_string() }]),
        "{noted}"
    );
    let assigned = w
        .gql(
            Some(&token),
            "mutation($id: ID!, $to: AssignTo!) { assign(ticketId: $id, to: $to) { assigneeId } }",
            json!({ "id": id, "to": { "agentId": c.admin.to_string() } }),
        )
        .await;
    assert_eq!(
        assigned["data"]["assign"]["assigneeId"],
        c.admin.to_string(),
        "{assigned}"
    );

    // …and a query right after sees it (read-your-writes), by either path.
    for query in [
        format!("query($id: ID!) {{ ticket(id: $id) {{ {TICKET} }} }}"),
        format!("query($id: ID!) {{ node(id: $id) {{ ... on Ticket {{ {TICKET} }} }} }}"),
    ] {
        let read = w.gql(Some(&token), &query, json!({ "id": id })).await;
        assert!(read.get("errors").is_none(), "{read}");
        let t = read["data"].as_object().unwrap().values().next().unwrap();
        assert_eq!(t["status"], "WAITING_ON_CITIZEN");
        assert_eq!(t["tags"], json!(["alumbrado"]));
        assert_eq!(t["messages"].as_array().unwrap().len(), 2);
        assert_eq!(t["notes"].as_array().unwrap().len(), 1);
    }

    let resolved = w
        .gql(
            Some(&token),
            "mutation($id: ID!) { resolve(ticketId: $id) { status resolvedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(
        resolved["data"]["resolve"]["status"], "RESOLVED",
        "{resolved}"
    );
    assert!(resolved["data"]["resolve"]["resolvedAt"].is_string());
    let closed = w
        .gql(
            Some(&token),
            "mutation($id: ID!) { close(ticketId: $id) { status } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(closed["data"]["close"]["status"], "CLOSED", "{closed}");
    // A closed ticket refuses a reply: a conflict, with a message.
    let refused = w
        .gql(
            Some(&token),
            "mutation($id: ID!) { reply(ticketId: $id, body: \"¿Algo más?\") { id } }",
            json!({ "id": id }),
        )
        .await;
    assert_eq!(code(&refused), "CONFLICT", "{refused}");

    // Logging out ends the session at once.
    let out = w.gql(Some(&token), "mutation { logout }", json!({})).await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    let after = w.gql(Some(&token), "{ viewer { kind } }", json!({})).await;
    assert_eq!(code(&after), "UNAUTHENTICATED", "{after}");
}

#[tokio::test]
async fn the_inbox_pages_with_cursors_and_refuses_oversized_pages() {
    let w = World::new().await;
    let c = w.council("ourense").await;
    let token = w.login(&c).await;
    for n in 0..3 {
        w.open_ticket(&c, &format!("Consulta {n}")).await;
    }
    let page = |after: Option<String>| {
        let w = &w;
        let token = &token;
        async move {
            let answer = w
                .gql(
                    Some(token),
                    "query($after: String) { inbox(first: 2, after: $after) { \
                       edges { node { subject } } pageInfo { hasNextPage endCursor } } }",
                    json!({ "after": after }),
                )
                .await;
            assert!(answer.get("errors").is_none(), "{answer}");
            answer["data"]["inbox"].clone()
        }
    };
    let first = page(None).await;
    let subjects = |p: &serde_json::Value| -> Vec<String> {
        p["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["subject"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(subjects(&first), ["Consulta 2", "Consulta 1"]);
    assert_eq!(first["pageInfo"]["hasNextPage"], true);
    let second = page(first["pageInfo"]["endCursor"].as_str().map(str::to_owned)).await;
    assert_eq!(subjects(&second), ["Consulta 0"]);
    assert_eq!(second["pageInfo"]["hasNextPage"], false);

    let too_many = w
        .gql(
            Some(&token),
            "{ inbox(first: 101) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&too_many), "VALIDATION", "{too_many}");
    assert_eq!(too_many["errors"][0]["extensions"]["field"], "first");
    let bad_cursor = w
        .gql(
            Some(&token),
            "{ inbox(after: \"not-a-cursor\") { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&bad_cursor), "VALIDATION", "{bad_cursor}");
    assert_eq!(bad_cursor["errors"][0]["extensions"]["field"], "after");
}

#[tokio::test]
async fn a_page_with_its_threads_gives_each_ticket_its_own() {
    let w = World::new().await;
    let c = w.council("lalin").await;
    let token = w.login(&c).await;
    let mut ids = Vec::new();
    for n in 0..4 {
        let id = w.open_ticket(&c, &format!("Consulta {n}")).await;
        let replied = w
            .gql(
                Some(&token),
                "mutation($id: ID!, $body: String!) { reply(ticketId: $id, body: $body) { id } }",
                json!({ "id": id, "body": format!("Respuesta {n}") }),
            )
            .await;
        assert!(replied.get("errors").is_none(), "{replied}");
        ids.push(id);
    }
    // The threads of the page are read together (one batch for the page);
    // each ticket still gets its own.
    let page = w
        .gql(
            Some(&token),
            "{ inbox(first: 10) { edges { node { id subject messages { body } notes { body } firstResponseAt } } } }",
            json!({}),
        )
        .await;
    assert!(page.get("errors").is_none(), "{page}");
    let edges = page["data"]["inbox"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 4);
    for e in edges {
        let node = &e["node"];
        let n = node["subject"]
            .as_str()
            .unwrap()
            .trim_start_matches("Consulta ")
            .to_owned();
        assert_eq!(
            node["messages"],
            json!([
                { "body": "La farola de mi calle lleva una semana fundida." },
                { "body": format!("Respuesta {n}") },
            ]),
            "{node}"
        );
        assert_eq!(node["notes"], json!([]));
        assert!(node["firstResponseAt"].is_string(), "{node}");
        assert!(ids.contains(&node["id"].as_str().unwrap().to_owned()));
    }
}
