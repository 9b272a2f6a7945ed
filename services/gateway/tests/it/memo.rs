//! A gateway that follows the log remembers who is who between requests —
//! and forgets at once what a change makes stale: a change made through it
//! counts from the next request; a change made elsewhere (another process,
//! the command line) counts as soon as its reader sees it in the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use ventanilla_tenants::operator::Operator;
use ventanilla_tenants::staff::Staff;
use ventanilla_tenants_domain::staff::Role;

use crate::support::{OPERATOR_TOKEN, World, code};

const INBOX: &str = "{ inbox(first: 1) { edges { cursor } } }";

/// Asks until the answer's code is `expected`, for up to 10 s.
async fn until_code(w: &World, token: &str, expected: &str) -> Duration {
    let started = Instant::now();
    loop {
        let answer: Value = w.gql(Some(token), INBOX, json!({})).await;
        if answer.get("errors").is_some() && code(&answer) == expected {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "still {answer} after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn changes_made_through_the_gateway_count_from_the_next_request() {
    let shutdown = CancellationToken::new();
    let w = World::following_the_log(&shutdown).await;
    let c = w.council("lugo").await;
    let admin = w.login(&c).await;
    let invited = w
        .gql(
            Some(&admin),
            "mutation { inviteStaff(email: \"ana@lugo.gal\", name: \"Ana\", role: AGENT) { staffMember { id } invitationCode } }",
            json!({}),
        )
        .await;
    let i = &invited["data"]["inviteStaff"];
    let accepted = w
        .gql(
            None,
            "mutation($id: UUID!, $code: String!) { acceptInvitation(tenant: \"lugo\", staffId: $id, invitationCode: $code, password: \"unha-clave-longa-e-boa\") { token } }",
            json!({"id": i["staffMember"]["id"], "code": i["invitationCode"]}),
        )
        .await;
    let agent = accepted["data"]["acceptInvitation"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("{accepted}"))
        .to_owned();
    // Remembered now.
    for _ in 0..3 {
        let ok = w.gql(Some(&agent), INBOX, json!({})).await;
        assert!(ok.get("errors").is_none(), "{ok}");
    }
    let done = w
        .gql(
            Some(&admin),
            "mutation($id: UUID!) { deactivateStaff(staffId: $id) { status } }",
            json!({"id": i["staffMember"]["id"]}),
        )
        .await;
    assert_eq!(
        done["data"]["deactivateStaff"]["status"], "DEACTIVATED",
        "{done}"
    );
    let refused = w.gql(Some(&agent), INBOX, json!({})).await;
    assert_eq!(code(&refused), "UNAUTHENTICATED", "{refused}");

    // Logging out ends the remembered session at once too.
    let ok = w.gql(Some(&admin), INBOX, json!({})).await;
    assert!(ok.get("errors").is_none(), "{ok}");
    let out = w.gql(Some(&admin), "mutation { logout }", json!({})).await;
    assert_eq!(out["data"]["logout"], true, "{out}");
    let after = w.gql(Some(&admin), INBOX, json!({})).await;
    assert_eq!(code(&after), "UNAUTHENTICATED", "{after}");

    // The operator suspends the organisation: its staff are refused next.
    let admin = w.login(&c).await;
    let ok = w.gql(Some(&admin), INBOX, json!({})).await;
    assert!(ok.get("errors").is_none(), "{ok}");
    let suspended = w
        .gql(
            Some(OPERATOR_TOKEN),
            "mutation { suspendTenant(slug: \"lugo\", reason: \"impago\") { status } }",
            json!({}),
        )
        .await;
    assert_eq!(
        suspended["data"]["suspendTenant"]["status"], "SUSPENDED",
        "{suspended}"
    );
    let refused = w.gql(Some(&admin), INBOX, json!({})).await;
    assert_eq!(code(&refused), "TENANT_SUSPENDED", "{refused}");
    shutdown.cancel();
}

#[tokio::test]
async fn changes_made_elsewhere_count_once_the_log_shows_them() {
    let shutdown = CancellationToken::new();
    let w = World::following_the_log(&shutdown).await;
    let c = w.council("vigo").await;
    let other = w.council("ourense").await;
    let admin = w.login(&c).await;
    let theirs = w.login(&other).await;
    for token in [&admin, &theirs, &c.read_key] {
        let ok = w.gql(Some(token), "{ viewer { kind } }", json!({})).await;
        assert!(ok.get("errors").is_none(), "{ok}");
    }

    // Another process (here: the services themselves) revokes the key and
    // makes the admin an agent, then suspends the tenant.
    let keys = ventanilla_tenants::api_keys::ApiKeys::new(Arc::clone(&w.log));
    let listed = keys.list(c.tenant).await.unwrap();
    let read_key = listed.iter().find(|k| k.name == "panel").unwrap().key_id;
    keys.revoke(c.tenant, c.admin, read_key, Some("filtrada"))
        .await
        .unwrap();
    let answer = until_code_of(&w, &c.read_key).await;
    assert_eq!(answer, "UNAUTHENTICATED");

    let staff = Staff::new(Arc::clone(&w.log));
    let second = staff
        .invite(
            c.tenant,
            Some(c.admin),
            "xefa@vigo.gal",
            "Xefa",
            Role::Admin,
        )
        .await
        .unwrap();
    staff
        .accept_invitation(
            c.tenant,
            second.staff,
            &second.invitation_code,
            "outra-clave-longa-e-boa",
        )
        .await
        .unwrap();
    staff
        .change_role(c.tenant, second.staff, c.admin, Role::Agent)
        .await
        .unwrap();
    // An agent may not list the API keys: the new role counts.
    let started = Instant::now();
    loop {
        let answer = w.gql(Some(&admin), "{ apiKeys { id } }", json!({})).await;
        if code(&answer) == "FORBIDDEN" {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    Operator::new(Arc::clone(&w.log), "cli")
        .suspend("vigo", "impago")
        .await
        .unwrap();
    until_code(&w, &admin, "TENANT_SUSPENDED").await;
    // Another organisation is not affected.
    let ok = w.gql(Some(&theirs), INBOX, json!({})).await;
    assert!(ok.get("errors").is_none(), "{ok}");
    shutdown.cancel();
}

/// The code a key gets on `viewer`, once it is an error (up to 10 s).
async fn until_code_of(w: &World, key: &str) -> String {
    let started = Instant::now();
    loop {
        let answer = w.gql(Some(key), "{ viewer { kind } }", json!({})).await;
        if answer.get("errors").is_some() {
            return code(&answer).to_owned();
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{answer}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
