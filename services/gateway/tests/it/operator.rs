//! The operator's fields: list, show, provision, suspend, reactivate and
//! re-plan organisations; nobody else may.

use serde_json::json;

use crate::support::{OPERATOR_TOKEN, World, code};

const TENANT_FIELDS: &str = "slug name kind plan status statusReason";

#[tokio::test]
async fn the_operator_provisions_lists_suspends_reactivates_and_replans() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let op = Some(OPERATOR_TOKEN);

    let provisioned = w
        .gql(
            op,
            &format!("mutation($i: ProvisionTenantInput!) {{ provisionTenant(input: $i) {{ tenant {{ {TENANT_FIELDS} }} adminId invitationCode invitationExpiresAt }} }}"),
            json!({ "i": {
                "name": "Concello de Ourense",
                "slug": "ourense",
                "kind": "COUNCIL",
                "adminEmail": "alcaldia@ourense.gal",
            }}),
        )
        .await;
    assert!(provisioned.get("errors").is_none(), "{provisioned}");
    let p = &provisioned["data"]["provisionTenant"];
    assert_eq!(
        p["tenant"],
        json!({ "slug": "ourense", "name": "Concello de Ourense", "kind": "COUNCIL", "plan": "free", "status": "ACTIVE", "statusReason": null })
    );
    assert!(p["invitationCode"].as_str().is_some_and(|s| !s.is_empty()));

    // The slug is taken now; bad input names its field.
    let again = w
        .gql(
            op,
            "mutation { provisionTenant(input: { name: \"Otro\", slug: \"ourense\", kind: BUSINESS, adminEmail: \"a@b.es\" }) { adminId } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&again), "CONFLICT", "{again}");
    let bad = w
        .gql(
            op,
            "mutation { provisionTenant(input: { name: \"Otro\", slug: \"No Vale!\", kind: BUSINESS, adminEmail: \"a@b.es\" }) { adminId } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&bad), "VALIDATION", "{bad}");
    assert_eq!(bad["errors"][0]["extensions"]["field"], "slug");

    // A page at a time, by slug.
    let first = w
        .gql(
            op,
            "{ tenants(first: 1) { nodes { slug } pageInfo { hasNextPage endCursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        first["data"]["tenants"]["nodes"],
        json!([{ "slug": "lugo" }]),
        "{first}"
    );
    assert_eq!(first["data"]["tenants"]["pageInfo"]["hasNextPage"], true);
    let cursor = first["data"]["tenants"]["pageInfo"]["endCursor"].clone();
    let second = w
        .gql(
            op,
            "query($a: String) { tenants(first: 5, after: $a) { nodes { slug } pageInfo { hasNextPage } } }",
            json!({ "a": cursor }),
        )
        .await;
    assert_eq!(
        second["data"]["tenants"],
        json!({ "nodes": [{ "slug": "ourense" }], "pageInfo": { "hasNextPage": false } })
    );
    let made_up = w
        .gql(
            op,
            "{ tenants(after: \"xyz\") { nodes { slug } } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&made_up), "VALIDATION", "{made_up}");
    assert_eq!(made_up["errors"][0]["extensions"]["field"], "after");

    // Suspend: the tenant's credentials are refused at once.
    let suspended = w
        .gql(
            op,
            &format!("mutation {{ suspendTenant(slug: \"lugo\", reason: \"impago\") {{ {TENANT_FIELDS} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(
        suspended["data"]["suspendTenant"]["status"], "SUSPENDED",
        "{suspended}"
    );
    assert_eq!(suspended["data"]["suspendTenant"]["statusReason"], "impago");
    let refused = w
        .gql(Some(&c.read_key), "{ viewer { kind } }", json!({}))
        .await;
    assert_eq!(code(&refused), "TENANT_SUSPENDED", "{refused}");

    let reactivated = w
        .gql(
            op,
            "mutation { reactivateTenant(slug: \"lugo\") { status } }",
            json!({}),
        )
        .await;
    assert_eq!(
        reactivated["data"]["reactivateTenant"]["status"], "ACTIVE",
        "{reactivated}"
    );
    let back = w
        .gql(Some(&c.read_key), "{ viewer { kind } }", json!({}))
        .await;
    assert_eq!(back["data"]["viewer"]["kind"], "API_KEY", "{back}");

    let replanned = w
        .gql(
            op,
            "mutation { changeTenantPlan(slug: \"lugo\", plan: \"municipio\") { plan } }",
            json!({}),
        )
        .await;
    assert_eq!(
        replanned["data"]["changeTenantPlan"]["plan"], "municipio",
        "{replanned}"
    );
    let shown = w
        .gql(op, "{ tenant(slug: \"lugo\") { plan status } }", json!({}))
        .await;
    assert_eq!(
        shown["data"]["tenant"],
        json!({ "plan": "municipio", "status": "ACTIVE" })
    );

    for (query, expected) in [
        ("{ tenant(slug: \"nowhere\") { slug } }", "NOT_FOUND"),
        (
            "mutation { suspendTenant(slug: \"nowhere\", reason: \"x\") { slug } }",
            "NOT_FOUND",
        ),
        (
            "mutation { changeTenantPlan(slug: \"lugo\", plan: \"platinum\") { slug } }",
            "CONFLICT",
        ),
    ] {
        let answer = w.gql(op, query, json!({})).await;
        assert_eq!(code(&answer), expected, "{query}: {answer}");
    }
}

#[tokio::test]
async fn only_the_operator_manages_tenants() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    w.refused_to_all(
        &[
            Some(token.as_str()),
            Some(&c.write_key),
            Some(&c.read_key),
            None,
        ],
        &[
            "{ tenants { nodes { slug } } }",
            "{ tenant(slug: \"lugo\") { slug } }",
            "mutation { suspendTenant(slug: \"lugo\", reason: \"x\") { slug } }",
            "mutation { reactivateTenant(slug: \"lugo\") { slug } }",
            "mutation { changeTenantPlan(slug: \"lugo\", plan: \"municipio\") { slug } }",
            "mutation { provisionTenant(input: { name: \"X\", slug: \"xx\", kind: BUSINESS, adminEmail: \"a@b.es\" }) { adminId } }",
        ],
    )
    .await;
}
