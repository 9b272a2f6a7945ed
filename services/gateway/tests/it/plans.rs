//! The operator's plan catalogue: list, define, change and retire plans;
//! refusals name the field; nobody but the operator may.

use serde_json::{Value, json};

use crate::organisation::agent_token;
use crate::support::{OPERATOR_TOKEN, World, code};

const PLAN: &str = "code name limits { agents channelAccounts ticketsPerMonth apiRequestsPerMinute } public retired";

fn limits(agents: i64, channels: i64, tickets: i64, api: i64) -> Value {
    json!({
        "agents": agents,
        "channelAccounts": channels,
        "ticketsPerMonth": tickets,
        "apiRequestsPerMinute": api,
    })
}

#[tokio::test]
async fn the_operator_lists_defines_changes_and_retires_plans() {
    let w = World::new().await;
    w.council("lugo").await;
    let op = Some(OPERATOR_TOKEN);

    let shipped = w.gql(op, "{ plans { code retired } }", json!({})).await;
    assert_eq!(
        shipped["data"]["plans"],
        json!([
            { "code": "free", "retired": false },
            { "code": "municipio", "retired": false },
            { "code": "provincia", "retired": false },
        ]),
        "{shipped}"
    );

    let defined = w
        .gql(
            op,
            &format!("mutation($i: DefinePlanInput!) {{ definePlan(input: $i) {{ {PLAN} }} }}"),
            json!({ "i": {
                "code": "deputacion",
                "name": "Deputación",
                "limits": limits(100, 40, 90_000, 5_000),
                "public": false,
            }}),
        )
        .await;
    let expected = json!({
        "code": "deputacion",
        "name": "Deputación",
        "limits": limits(100, 40, 90_000, 5_000),
        "public": false,
        "retired": false,
    });
    assert_eq!(defined["data"]["definePlan"], expected, "{defined}");
    let listed = w
        .gql(op, &format!("{{ plans {{ {PLAN} }} }}"), json!({}))
        .await;
    assert_eq!(listed["data"]["plans"][0], expected, "{listed}");

    let taken = w
        .gql(
            op,
            "mutation($l: PlanLimitsInput!) { definePlan(input: { code: \"deputacion\", name: \"Otra\", limits: $l }) { code } }",
            json!({ "l": limits(1, 1, 1, 1) }),
        )
        .await;
    assert_eq!(code(&taken), "CONFLICT", "{taken}");

    let changed = w
        .gql(
            op,
            &format!("mutation($i: ChangePlanLimitsInput!) {{ changePlanLimits(code: \"deputacion\", input: $i) {{ {PLAN} }} }}"),
            json!({ "i": { "name": "Deputación provincial", "limits": limits(120, 40, 100_000, 6_000) } }),
        )
        .await;
    let expected = json!({
        "code": "deputacion",
        "name": "Deputación provincial",
        "limits": limits(120, 40, 100_000, 6_000),
        "public": false,
        "retired": false,
    });
    assert_eq!(changed["data"]["changePlanLimits"], expected, "{changed}");
    let listed = w
        .gql(op, &format!("{{ plans {{ {PLAN} }} }}"), json!({}))
        .await;
    assert_eq!(listed["data"]["plans"][0], expected, "{listed}");

    let retired = w
        .gql(
            op,
            "mutation { retirePlan(code: \"deputacion\") { code retired } }",
            json!({}),
        )
        .await;
    assert_eq!(
        retired["data"]["retirePlan"],
        json!({ "code": "deputacion", "retired": true }),
        "{retired}"
    );
    let again = w
        .gql(
            op,
            "mutation { retirePlan(code: \"deputacion\") { retired } }",
            json!({}),
        )
        .await;
    assert_eq!(again["data"]["retirePlan"]["retired"], true, "{again}");
    let listed = w.gql(op, "{ plans { code retired } }", json!({})).await;
    assert_eq!(
        listed["data"]["plans"][0],
        json!({ "code": "deputacion", "retired": true })
    );
    // A retired plan cannot be given.
    let given = w
        .gql(
            op,
            "mutation { changeTenantPlan(slug: \"lugo\", plan: \"deputacion\") { plan } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&given), "CONFLICT", "{given}");
}

#[tokio::test]
async fn plan_refusals_name_the_field_and_change_nothing() {
    let w = World::new().await;
    w.council("lugo").await;
    let op = Some(OPERATOR_TOKEN);
    let catalogue = w
        .gql(op, &format!("{{ plans {{ {PLAN} }} }}"), json!({}))
        .await;
    assert!(catalogue.get("errors").is_none(), "{catalogue}");
    let before = w.event_count().await;

    let define = "mutation($i: DefinePlanInput!) { definePlan(input: $i) { code } }";
    for (input, field) in [
        (
            json!({ "code": "Con Espacios", "name": "X", "limits": limits(1, 1, 1, 1) }),
            "code",
        ),
        (
            json!({ "code": "nuevo", "name": " ", "limits": limits(1, 1, 1, 1) }),
            "name",
        ),
        (
            json!({ "code": "nuevo", "name": "Nuevo", "limits": limits(0, 1, 1, 1) }),
            "limits.agents",
        ),
        (
            json!({ "code": "nuevo", "name": "Nuevo", "limits": limits(1, 1, -5, 1) }),
            "limits.ticketsPerMonth",
        ),
        (
            json!({ "code": "nuevo", "name": "Nuevo", "limits": limits(1, 1, 1, 0) }),
            "limits.apiRequestsPerMinute",
        ),
    ] {
        let answer = w.gql(op, define, json!({ "i": input })).await;
        assert_eq!(code(&answer), "VALIDATION", "{answer}");
        assert_eq!(
            answer["errors"][0]["extensions"]["field"], field,
            "{answer}"
        );
    }
    let zero = w
        .gql(
            op,
            "mutation($l: PlanLimitsInput!) { changePlanLimits(code: \"free\", input: { name: \"Free\", limits: $l }) { code } }",
            json!({ "l": limits(2, 0, 200, 60) }),
        )
        .await;
    assert_eq!(code(&zero), "VALIDATION", "{zero}");
    assert_eq!(
        zero["errors"][0]["extensions"]["field"],
        "limits.channelAccounts"
    );

    for query in [
        "mutation($l: PlanLimitsInput!) { changePlanLimits(code: \"platinum\", input: { name: \"P\", limits: $l }) { code } }",
        "mutation { retirePlan(code: \"platinum\") { code } }",
    ] {
        let answer = w.gql(op, query, json!({ "l": limits(1, 1, 1, 1) })).await;
        assert_eq!(code(&answer), "NOT_FOUND", "{query}: {answer}");
    }
    assert_eq!(w.event_count().await, before, "nothing was written");
    let after = w
        .gql(op, &format!("{{ plans {{ {PLAN} }} }}"), json!({}))
        .await;
    assert_eq!(after, catalogue);
}

#[tokio::test]
async fn only_the_operator_manages_plans() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let admin = w.login(&c).await;
    let agent = agent_token(&w, &c).await;
    w.refused_to_all(
        &[
            Some(admin.as_str()),
            Some(agent.as_str()),
            Some(&c.write_key),
            Some(&c.read_key),
            None,
        ],
        &[
            "{ plans { code } }",
            "mutation { definePlan(input: { code: \"nuevo\", name: \"Nuevo\", limits: { agents: 1, channelAccounts: 1, ticketsPerMonth: 1, apiRequestsPerMinute: 1 } }) { code } }",
            "mutation { changePlanLimits(code: \"free\", input: { name: \"Gratis\", limits: { agents: 99, channelAccounts: 99, ticketsPerMonth: 99, apiRequestsPerMinute: 99 } }) { code } }",
            "mutation { retirePlan(code: \"free\") { code } }",
        ],
    )
    .await;
}
