//! Admins' fields: departments, topics, API keys, channel accounts; agents
//! and everyone else are refused the changes and the keys. The directory is
//! read by staff and API keys, the linked accounts by staff.

use std::sync::Arc;

use serde_json::json;
use ventanilla_tenants::staff::Staff;
use ventanilla_tenants_domain::staff::Role;

use crate::organisation::agent_token;
use crate::support::{OPERATOR_TOKEN, PASSWORD, World, code};

#[tokio::test]
async fn an_admin_adds_departments_and_topics_and_manages_keys() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    let t = Some(token.as_str());

    let added = w
        .gql(
            t,
            "mutation { addDepartment(name: \"Urbanismo\", description: \"Obras y licencias\") { id name description } }",
            json!({}),
        )
        .await;
    assert!(added.get("errors").is_none(), "{added}");
    assert_eq!(added["data"]["addDepartment"]["name"], "Urbanismo");
    let department = added["data"]["addDepartment"]["id"].clone();
    let duplicate = w
        .gql(
            t,
            "mutation { addDepartment(name: \"urbanismo\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&duplicate), "CONFLICT", "{duplicate}");
    let empty = w
        .gql(t, "mutation { addTopic(name: \"\") { id } }", json!({}))
        .await;
    assert_eq!(code(&empty), "VALIDATION", "{empty}");
    assert_eq!(empty["errors"][0]["extensions"]["field"], "name");

    let topic = w
        .gql(
            t,
            "mutation { addTopic(name: \"Cortes de agua\") { id name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        topic["data"]["addTopic"]["name"], "Cortes de agua",
        "{topic}"
    );

    let read = w
        .gql(
            t,
            "{ departments { id name } topics { name } channelAccounts { network name health { state } linkedAt } }",
            json!({}),
        )
        .await;
    assert!(read.get("errors").is_none(), "{read}");
    assert_eq!(
        read["data"]["departments"],
        json!([{ "id": department, "name": "Urbanismo" }])
    );
    assert_eq!(
        read["data"]["topics"],
        json!([{ "name": "Cortes de agua" }])
    );
    assert_eq!(read["data"]["channelAccounts"], json!([]));

    // A key: its secret once, then it works, then it is revoked.
    let created = w
        .gql(
            t,
            "mutation { createApiKey(name: \"portal\", scope: READ_WRITE) { secret apiKey { id name scope prefix revokedAt } } }",
            json!({}),
        )
        .await;
    assert!(created.get("errors").is_none(), "{created}");
    let key = &created["data"]["createApiKey"];
    let secret = key["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(key["apiKey"]["prefix"].as_str().unwrap()));
    assert_eq!(key["apiKey"]["scope"], "READ_WRITE");
    let id = key["apiKey"]["id"].clone();
    let viewer = w
        .gql(Some(&secret), "{ viewer { apiKeyId } }", json!({}))
        .await;
    assert_eq!(viewer["data"]["viewer"]["apiKeyId"], id, "{viewer}");

    let keys = w.gql(t, "{ apiKeys { name scope } }", json!({})).await;
    assert_eq!(
        keys["data"]["apiKeys"],
        json!([
            { "name": "panel", "scope": "READ" },
            { "name": "sede", "scope": "READ_WRITE" },
            { "name": "portal", "scope": "READ_WRITE" },
        ]),
        "{keys}"
    );
    assert!(!keys.to_string().contains(&secret));

    let revoked = w
        .gql(
            t,
            "mutation($id: UUID!) { revokeApiKey(id: $id) { id revokedAt } }",
            json!({ "id": id }),
        )
        .await;
    assert!(
        revoked["data"]["revokeApiKey"]["revokedAt"].is_string(),
        "{revoked}"
    );
    let refused = w.gql(Some(&secret), "{ viewer { kind } }", json!({})).await;
    assert_eq!(code(&refused), "UNAUTHENTICATED", "{refused}");
    let unknown = w
        .gql(
            t,
            "mutation { revokeApiKey(id: \"00000000-0000-0000-0000-000000000001\") { id } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&unknown), "NOT_FOUND", "{unknown}");
}

#[tokio::test]
async fn agents_keys_and_the_operator_may_not_configure() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let staff = Staff::new(Arc::clone(&w.log));
    let invitation = staff
        .invite(
            c.tenant,
            Some(c.admin),
            "axente@lugo.gal",
            "Axente",
            Role::Agent,
        )
        .await
        .unwrap();
    staff
        .accept_invitation(
            c.tenant,
            invitation.staff,
            &invitation.invitation_code,
            PASSWORD,
        )
        .await
        .unwrap();
    let login = w
        .gql(
            None,
            "mutation($p: String!) { login(tenant: \"lugo\", email: \"axente@lugo.gal\", password: $p) { token } }",
            json!({ "p": PASSWORD }),
        )
        .await;
    let agent = login["data"]["login"]["token"].as_str().unwrap().to_owned();

    w.refused_to_all(
        &[
            Some(agent.as_str()),
            Some(&c.write_key),
            Some(&c.read_key),
            Some(OPERATOR_TOKEN),
            None,
        ],
        &[
            "{ apiKeys { id } }",
            "mutation { addDepartment(name: \"Urbanismo\") { id } }",
            "mutation { addTopic(name: \"Agua\") { id } }",
            "mutation { createApiKey(name: \"x\", scope: READ) { secret } }",
            "mutation { revokeApiKey(id: \"00000000-0000-0000-0000-000000000001\") { id } }",
        ],
    )
    .await;
}

#[tokio::test]
async fn staff_and_keys_read_the_directory_and_staff_see_the_accounts() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let other = w.council("vigo").await;
    let admin = w.login(&c).await;
    for mutation in [
        "mutation { addDepartment(name: \"Urbanismo\", description: \"Licencias\") { id } }",
        "mutation { addTopic(name: \"Cortes de agua\") { id } }",
        "mutation { addOfficial(input: { name: \"Ana Pérez\", role: \"Alcaldesa\", acceptsPublicQuestions: true }) { id } }",
    ] {
        let answer = w.gql(Some(&admin), mutation, json!({})).await;
        assert!(answer.get("errors").is_none(), "{answer}");
    }
    let agent = agent_token(&w, &c).await;
    let directory = "{ departments { name description } topics { name } officials { name role acceptsPublicQuestions } }";
    let wanted = json!({
        "departments": [{ "name": "Urbanismo", "description": "Licencias" }],
        "topics": [{ "name": "Cortes de agua" }],
        "officials": [{ "name": "Ana Pérez", "role": "Alcaldesa", "acceptsPublicQuestions": true }],
    });
    for credentials in [agent.as_str(), &c.write_key, &c.read_key] {
        let answer = w.gql(Some(credentials), directory, json!({})).await;
        assert_eq!(answer["data"], wanted, "{answer}");
    }
    // Another organisation's key sees its own (empty) directory.
    let theirs = w.gql(Some(&other.read_key), directory, json!({})).await;
    assert_eq!(
        theirs["data"],
        json!({ "departments": [], "topics": [], "officials": [] })
    );

    // The accounts announcements go out on: staff, not keys.
    let accounts = w
        .gql(Some(&agent), "{ channelAccounts { id } }", json!({}))
        .await;
    assert_eq!(accounts["data"]["channelAccounts"], json!([]), "{accounts}");
    for query in ["{ channelAccounts { id } }", "{ staffMembers { id } }"] {
        let answer = w.gql(Some(&c.write_key), query, json!({})).await;
        assert_eq!(code(&answer), "FORBIDDEN", "{query}: {answer}");
    }
    for (credentials, expected) in [
        (Some(OPERATOR_TOKEN), "FORBIDDEN"),
        (None, "UNAUTHENTICATED"),
    ] {
        let answer = w.gql(credentials, directory, json!({})).await;
        assert_eq!(code(&answer), expected, "{answer}");
    }
}
