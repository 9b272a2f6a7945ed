//! What integrators do with a `read_write` key: open a ticket on the `api`
//! channel (once per idempotency key, seen by staff at once) and subscribe
//! a citizen to a topic (by e-mail, pending until confirmed; or at a signed
//! webhook) — and the refusals, which change nothing.

use serde_json::{Value, json};

use super::support::{World, code, field, ok};

const OPEN: &str =
    "mutation($i: OpenTicketInput!) { openTicket(input: $i) { id reference trackingToken } }";
const SUBSCRIBE: &str = "mutation($i: SubscribeToTopicInput!) { subscribeToTopic(input: $i) { id status webhookSecret existing } }";

#[tokio::test]
async fn an_integrator_opens_a_ticket_once_per_key_and_staff_see_it_at_once() {
    let w = World::new().await;
    let c = w.council("ourense").await;
    let staff = w.login(&c).await;
    let key = "4b7c5a52-6a43-4c5e-9d0e-0f4f8c1a2b3c";
    let input = json!({ "i": {
        "kind": "SUGGESTION",
        "name": "Asociación de vecinos do Couto",
        "email": "avv.couto@correo.gal",
        "subject": "Más bancos en el parque",
        "body": "Los mayores del barrio no tienen dónde sentarse.",
        "idempotencyKey": key,
    }});

    let first = w.gql(Some(&c.write_key), OPEN, input.clone()).await;
    let opened = ok(&first)["openTicket"].clone();
    assert!(
        opened["trackingToken"]
            .as_str()
            .is_some_and(|t| t.len() >= 20),
        "{first}"
    );
    let events = w.event_count().await;

    // The retried request (a timeout on the integrator's side) opens
    // nothing new: the same ticket, and the token is not shown again.
    let again = w.gql(Some(&c.write_key), OPEN, input).await;
    let repeated = &ok(&again)["openTicket"];
    assert_eq!(repeated["id"], opened["id"]);
    assert_eq!(repeated["reference"], opened["reference"]);
    assert_eq!(repeated["trackingToken"], Value::Null);
    assert_eq!(w.event_count().await, events, "nothing new was recorded");

    // The next read by staff sees it, on the api channel, with its words.
    let read = w
        .gql(
            Some(&staff),
            "query($id: ID!) { node(id: $id) { ... on Ticket { reference kind channel subject status messages { body } } } }",
            json!({ "id": opened["id"] }),
        )
        .await;
    let ticket = &ok(&read)["node"];
    assert_eq!(ticket["reference"], opened["reference"]);
    assert_eq!(ticket["kind"], "SUGGESTION");
    assert_eq!(ticket["channel"], "API");
    assert_eq!(ticket["subject"], "Más bancos en el parque");
    assert_eq!(
        ticket["messages"][0]["body"],
        "Los mayores del barrio no tienen dónde sentarse."
    );
    let counts = w
        .gql(
            Some(&staff),
            "{ ticketCounts { new open closed total } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok(&counts)["ticketCounts"],
        json!({ "new": 1, "open": 0, "closed": 0, "total": 1 })
    );
    let answer = w
        .gql(Some(&c.write_key), "{ ticketCounts { total } }", json!({}))
        .await;
    assert_eq!(
        code(&answer),
        "FORBIDDEN",
        "the figures are staff's: {answer}"
    );
}

#[tokio::test]
async fn ticket_refusals_say_what_to_fix_and_open_nothing() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let other = w.council("vigo").await;
    let staff = w.login(&other).await;
    let their_department = w
        .gql(
            Some(&staff),
            "mutation { addDepartment(name: \"Urbanismo\") { id } }",
            json!({}),
        )
        .await;
    let their_department = ok(&their_department)["addDepartment"]["id"].clone();
    let before = w.event_count().await;

    let question = |extra: Value| {
        let mut i = json!({
            "kind": "QUESTION",
            "email": "vecina@correo.es",
            "subject": "Horario",
            "body": "¿A qué hora abre el registro?",
        });
        i.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({ "i": i })
    };
    for (variables, expected, named) in [
        (
            question(json!({ "email": "no-es-un-correo" })),
            "VALIDATION",
            Some("email"),
        ),
        (
            question(json!({ "subject": "   " })),
            "VALIDATION",
            Some("subject"),
        ),
        (question(json!({ "body": "" })), "VALIDATION", Some("body")),
        (
            question(json!({ "kind": "QUESTION_FOR" })),
            "VALIDATION",
            None,
        ),
        (
            question(json!({ "kind": "QUESTION_FOR", "departmentId": their_department })),
            "NOT_FOUND",
            None,
        ),
        (question(json!({ "kind": "DEMAND" })), "VALIDATION", None),
        (
            question(json!({ "idempotencyKey": "not-a-uuid" })),
            "VALIDATION",
            None,
        ),
    ] {
        let answer = w.gql(Some(&c.write_key), OPEN, variables.clone()).await;
        assert_eq!(code(&answer), expected, "{variables}: {answer}");
        let message = answer["errors"][0]["message"].as_str().unwrap();
        assert!(
            message.len() > 10,
            "a message a person can act on: {answer}"
        );
        if let Some(named) = named {
            assert_eq!(field(&answer), named, "{answer}");
        }
    }
    assert_eq!(w.event_count().await, before, "nothing was written");
    let mine = w.login(&c).await;
    let counts = w
        .gql(Some(&mine), "{ ticketCounts { total } }", json!({}))
        .await;
    assert_eq!(ok(&counts)["ticketCounts"]["total"], 0);
}

#[tokio::test]
async fn an_integrator_subscribes_a_citizen_by_email_or_at_a_webhook() {
    let w = World::with(&[
        ("VENTANILLA__NOTIFY__ALLOW_PRIVATE_WEBHOOKS", "true"),
        (
            "VENTANILLA__NOTIFY__KEY",
            "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
        ),
    ])
    .await;
    let c = w.council("ferrol").await;
    let other = w.council("naron").await;
    let admin = w.login(&c).await;
    let theirs = w.login(&other).await;
    let topic = w
        .gql(
            Some(&admin),
            "mutation { addTopic(name: \"Cortes de agua\") { id } }",
            json!({}),
        )
        .await;
    let topic = ok(&topic)["addTopic"]["id"].clone();
    let their_topic = w
        .gql(
            Some(&theirs),
            "mutation { addTopic(name: \"Cortes de agua\") { id } }",
            json!({}),
        )
        .await;
    let their_topic = ok(&their_topic)["addTopic"]["id"].clone();

    // By e-mail: pending until the citizen follows the link mailed to them;
    // asking again finds the same subscription.
    let by_mail =
        json!({ "i": { "topicId": topic, "email": "vecino@correo.gal", "language": "gl" } });
    let first = w.gql(Some(&c.write_key), SUBSCRIBE, by_mail.clone()).await;
    let subscribed = ok(&first)["subscribeToTopic"].clone();
    assert_eq!(subscribed["status"], "PENDING");
    assert_eq!(subscribed["existing"], false);
    assert_eq!(subscribed["webhookSecret"], Value::Null);
    let events = w.event_count().await;
    let again = w.gql(Some(&c.write_key), SUBSCRIBE, by_mail).await;
    assert_eq!(ok(&again)["subscribeToTopic"]["id"], subscribed["id"]);
    assert_eq!(ok(&again)["subscribeToTopic"]["existing"], true);
    assert_eq!(w.event_count().await, events, "nothing new was recorded");

    // At a webhook: in force at once, and the signing secret shown once.
    let hook = json!({ "i": { "topicId": topic, "webhookUrl": "https://127.0.0.1:8443/avisos" } });
    let answer = w.gql(Some(&c.write_key), SUBSCRIBE, hook.clone()).await;
    let webhook = ok(&answer)["subscribeToTopic"].clone();
    assert_eq!(webhook["status"], "ACTIVE");
    assert!(
        webhook["webhookSecret"]
            .as_str()
            .is_some_and(|s| s.starts_with("whsec_")),
        "{answer}"
    );
    let again = w.gql(Some(&c.write_key), SUBSCRIBE, hook).await;
    assert_eq!(ok(&again)["subscribeToTopic"]["id"], webhook["id"]);
    assert_eq!(
        ok(&again)["subscribeToTopic"]["webhookSecret"],
        webhook["webhookSecret"],
        "a retried request whose answer was lost still gets the secret"
    );

    // Refusals: each its code, and nothing written.
    let before = w.event_count().await;
    for (variables, expected, named) in [
        (
            json!({ "i": { "topicId": their_topic, "email": "vecino@correo.gal" } }),
            "NOT_FOUND",
            None,
        ),
        (
            json!({ "i": { "topicId": topic } }),
            "VALIDATION",
            Some("input"),
        ),
        (
            json!({ "i": { "topicId": topic, "email": "a@b.gal", "webhookUrl": "https://127.0.0.1/x" } }),
            "VALIDATION",
            Some("input"),
        ),
        (
            json!({ "i": { "topicId": topic, "email": "sin-arroba" } }),
            "VALIDATION",
            Some("email"),
        ),
        (
            json!({ "i": { "topicId": topic, "webhookUrl": "ftp://127.0.0.1/avisos" } }),
            "VALIDATION",
            Some("webhookUrl"),
        ),
        (
            json!({ "i": { "topicId": topic, "email": "a@b.gal", "language": "castellano!" } }),
            "VALIDATION",
            Some("language"),
        ),
    ] {
        let answer = w
            .gql(Some(&c.write_key), SUBSCRIBE, variables.clone())
            .await;
        assert_eq!(code(&answer), expected, "{variables}: {answer}");
        if let Some(named) = named {
            assert_eq!(field(&answer), named, "{answer}");
        }
    }
    for credentials in [Some(c.read_key.as_str()), Some(admin.as_str())] {
        let answer = w
            .gql(
                credentials,
                SUBSCRIBE,
                json!({ "i": { "topicId": topic, "email": "otra@correo.gal" } }),
            )
            .await;
        assert_eq!(code(&answer), "FORBIDDEN", "{answer}");
    }
    assert_eq!(w.event_count().await, before, "nothing was written");
}

#[tokio::test]
async fn an_integrator_subscribes_a_citizen_to_their_case() {
    let w = World::with(&[(
        "VENTANILLA__NOTIFY__KEY",
        "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    )])
    .await;
    let c = w.council("betanzos").await;
    let other = w.council("sada").await;
    let opened = w
        .gql(
            Some(&c.write_key),
            OPEN,
            json!({ "i": {
                "kind": "QUESTION",
                "email": "vecina@correo.gal",
                "subject": "Licencia de obra menor",
                "body": "¿Cuánto tarda la licencia para cambiar las ventanas?",
            }}),
        )
        .await;
    let opened = ok(&opened)["openTicket"].clone();
    let reference = opened["reference"].as_str().unwrap();
    let token = opened["trackingToken"].as_str().unwrap();
    let case =
        "mutation($i: SubscribeToCaseInput!) { subscribeToCase(input: $i) { id status existing } }";

    // With the citizen's tracking token, and again without it (the key acts
    // for the organisation): the same subscription.
    let first = w
        .gql(
            Some(&c.write_key),
            case,
            json!({ "i": { "reference": reference, "trackingToken": token, "email": "vecina@correo.gal" } }),
        )
        .await;
    let subscribed = ok(&first)["subscribeToCase"].clone();
    assert_eq!(subscribed["status"], "PENDING");
    assert_eq!(subscribed["existing"], false);
    let again = w
        .gql(
            Some(&c.write_key),
            case,
            json!({ "i": { "reference": reference, "email": "vecina@correo.gal" } }),
        )
        .await;
    assert_eq!(ok(&again)["subscribeToCase"]["id"], subscribed["id"]);
    assert_eq!(ok(&again)["subscribeToCase"]["existing"], true);

    let before = w.event_count().await;
    for (key, variables, expected) in [
        (
            &c.write_key,
            json!({ "i": { "reference": reference, "trackingToken": "f".repeat(43), "email": "otra@correo.gal" } }),
            "NOT_FOUND",
        ),
        (
            &other.write_key,
            json!({ "i": { "reference": reference, "email": "otra@correo.gal" } }),
            "NOT_FOUND",
        ),
        (
            &c.write_key,
            json!({ "i": { "reference": "licencia", "email": "otra@correo.gal" } }),
            "VALIDATION",
        ),
        (
            &c.write_key,
            json!({ "i": { "reference": reference } }),
            "VALIDATION",
        ),
        (
            &c.read_key,
            json!({ "i": { "reference": reference, "email": "otra@correo.gal" } }),
            "FORBIDDEN",
        ),
    ] {
        let answer = w.gql(Some(key), case, variables.clone()).await;
        assert_eq!(code(&answer), expected, "{variables}: {answer}");
    }
    assert_eq!(w.event_count().await, before, "nothing was written");
}
