//! Admins manage the staff and link channel accounts through the API; an
//! invited member accepts their invitation anonymously and is logged in.

use serde_json::json;

use crate::support::{World, code, ok};

const KEY: &str = "ZGV2LWtleS1ub3QtZm9yLXByb2R1Y3Rpb24tdXNlISE=";
const ROTATE: &str = "mutation($id: UUID!) { rotateChannelCredentials(id: $id, accessToken: \"nova-clave-0123456789\") { id health { state } } }";

#[tokio::test]
async fn an_admin_invites_an_agent_who_accepts_and_can_then_be_deactivated() {
    let w = World::new().await;
    let lugo = w.council("lugo").await;
    let admin = w.login(&lugo).await;
    let a = Some(admin.as_str());

    let invited = w
        .gql(
            a,
            "mutation { inviteStaff(email: \"Ana@Lugo.gal\", name: \"Ana Pérez\", role: AGENT) { staffMember { id email role status } invitationCode expiresAt } }",
            json!({}),
        )
        .await;
    let invitation = ok(&invited)["inviteStaff"].clone();
    assert_eq!(invitation["staffMember"]["email"], "ana@lugo.gal");
    assert_eq!(invitation["staffMember"]["status"], "INVITED");
    let ana = invitation["staffMember"]["id"].as_str().unwrap().to_owned();
    let code_ = invitation["invitationCode"].as_str().unwrap().to_owned();
    let again = w
        .gql(
            a,
            "mutation { inviteStaff(email: \"ana@lugo.gal\", name: \"Ana\", role: AGENT) { invitationCode } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&again), "CONFLICT", "{again}");

    let accept = "mutation($tenant: String!, $id: UUID!, $code: String!, $password: String!) { acceptInvitation(tenant: $tenant, staffId: $id, invitationCode: $code, password: $password) { token staffId } }";
    let wrong = w
        .gql(
            None,
            accept,
            json!({"tenant": "lugo", "id": ana, "code": "not-the-code", "password": "unha-clave-longa-e-boa"}),
        )
        .await;
    assert_ne!(code(&wrong), "", "{wrong}");
    assert!(wrong["data"].is_null(), "{wrong}");
    let short = w
        .gql(
            None,
            accept,
            json!({"tenant": "lugo", "id": ana, "code": code_, "password": "curta"}),
        )
        .await;
    assert_eq!(code(&short), "VALIDATION", "{short}");
    let accepted = w
        .gql(
            None,
            accept,
            json!({"tenant": "lugo", "id": ana, "code": code_, "password": "unha-clave-longa-e-boa"}),
        )
        .await;
    let session = ok(&accepted)["acceptInvitation"].clone();
    assert_eq!(session["staffId"], ana.as_str());
    let agent = session["token"].as_str().unwrap().to_owned();
    let viewer = w
        .gql(Some(&agent), "{ viewer { kind role } }", json!({}))
        .await;
    assert_eq!(
        ok(&viewer)["viewer"],
        json!({"kind": "STAFF", "role": "AGENT"})
    );
    // Used once: the same code again is refused.
    let reused = w
        .gql(
            None,
            accept,
            json!({"tenant": "lugo", "id": ana, "code": code_, "password": "unha-clave-longa-e-boa"}),
        )
        .await;
    assert!(reused["data"].is_null(), "{reused}");

    // An agent manages nobody.
    let refused = w
        .gql(
            Some(&agent),
            "mutation { inviteStaff(email: \"x@lugo.gal\", name: \"X\", role: ADMIN) { invitationCode } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&refused), "FORBIDDEN", "{refused}");
    let colleagues = w
        .gql(Some(&agent), "{ staffMembers { email role } }", json!({}))
        .await;
    assert!(
        ok(&colleagues)["staffMembers"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["role"] == "ADMIN"),
        "an agent sees whom tickets can be assigned to: {colleagues}"
    );
    let list = w
        .gql(Some(&lugo.write_key), "{ staffMembers { id } }", json!({}))
        .await;
    assert_eq!(code(&list), "FORBIDDEN", "{list}");

    let list = w
        .gql(a, "{ staffMembers { email role status } }", json!({}))
        .await;
    let members = ok(&list)["staffMembers"].as_array().unwrap().clone();
    assert_eq!(members.len(), 2, "{list}");
    assert!(
        members.contains(&json!({"email": "ana@lugo.gal", "role": "AGENT", "status": "ACTIVE"}))
    );

    // Another organisation's admin cannot touch her.
    let vigo = w.council("vigo").await;
    let stranger = w.login(&vigo).await;
    let foreign = w
        .gql(
            Some(&stranger),
            "mutation($id: UUID!) { deactivateStaff(staffId: $id) { status } }",
            json!({"id": ana}),
        )
        .await;
    assert_eq!(code(&foreign), "NOT_FOUND", "{foreign}");

    let promoted = w
        .gql(
            a,
            "mutation($id: UUID!) { changeStaffRole(staffId: $id, role: ADMIN) { role } }",
            json!({"id": ana}),
        )
        .await;
    assert_eq!(ok(&promoted)["changeStaffRole"]["role"], "ADMIN");
    let deactivated = w
        .gql(
            a,
            "mutation($id: UUID!) { deactivateStaff(staffId: $id) { status deactivatedAt } }",
            json!({"id": ana}),
        )
        .await;
    assert_eq!(ok(&deactivated)["deactivateStaff"]["status"], "DEACTIVATED");
    let gone = w
        .gql(
            Some(&agent),
            "{ inbox(first: 1) { totalCount } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&gone), "UNAUTHENTICATED", "{gone}");
    let back = w
        .gql(
            a,
            "mutation($id: UUID!) { reactivateStaff(staffId: $id) { status } }",
            json!({"id": ana}),
        )
        .await;
    assert_eq!(ok(&back)["reactivateStaff"]["status"], "ACTIVE");
}

#[tokio::test]
async fn an_admin_links_and_unlinks_a_mailbox_and_nobody_else_can() {
    let w = World::with(&[("VENTANILLA__SOCIAL__CREDENTIALS_KEY", KEY)]).await;
    let lugo = w.council("lugo").await;
    let admin = w.login(&lugo).await;
    let a = Some(admin.as_str());
    let link = "mutation($input: LinkChannelAccountInput!) { linkChannelAccount(input: $input) { account { id network name health { state } } webhookUrl } }";

    let bad = w
        .gql(
            a,
            link,
            json!({"input": {"network": "EMAIL", "externalId": "not an address", "name": "Rexistro"}}),
        )
        .await;
    assert_eq!(code(&bad), "VALIDATION", "{bad}");
    assert_eq!(
        bad["errors"][0]["extensions"]["field"], "externalId",
        "{bad}"
    );

    let linked = w
        .gql(
            a,
            link,
            json!({"input": {"network": "EMAIL", "externalId": "Rexistro@Lugo.gal", "name": "Rexistro"}}),
        )
        .await;
    let account = ok(&linked)["linkChannelAccount"]["account"].clone();
    assert_eq!(account["network"], "email");
    assert_eq!(account["health"]["state"], "OK");
    let id = account["id"].as_str().unwrap().to_owned();
    let listed = w.gql(a, "{ channelAccounts { id name } }", json!({})).await;
    assert_eq!(
        ok(&listed)["channelAccounts"],
        json!([{"id": id, "name": "Rexistro"}])
    );

    let vigo = w.council("vigo").await;
    let stranger = w.login(&vigo).await;
    let foreign = w
        .gql(
            Some(&stranger),
            "mutation($id: UUID!) { unlinkChannelAccount(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(code(&foreign), "NOT_FOUND", "{foreign}");
    let theirs = w
        .gql(Some(&stranger), "{ channelAccounts { id } }", json!({}))
        .await;
    assert_eq!(ok(&theirs)["channelAccounts"], json!([]));

    // New credentials: the account stays, healthy; not for another
    // organisation.
    let rotated = w.gql(a, ROTATE, json!({"id": id})).await;
    assert_eq!(
        ok(&rotated)["rotateChannelCredentials"],
        json!({"id": id, "health": {"state": "OK"}})
    );
    let foreign = w.gql(Some(&stranger), ROTATE, json!({"id": id})).await;
    assert_eq!(code(&foreign), "NOT_FOUND", "{foreign}");

    let unlinked = w
        .gql(
            a,
            "mutation($id: UUID!) { unlinkChannelAccount(id: $id) }",
            json!({"id": id}),
        )
        .await;
    assert_eq!(ok(&unlinked)["unlinkChannelAccount"], true);
    let late = w.gql(a, ROTATE, json!({"id": id})).await;
    assert_eq!(code(&late), "CONFLICT", "{late}");
    let listed = w.gql(a, "{ channelAccounts { id } }", json!({})).await;
    assert_eq!(ok(&listed)["channelAccounts"], json!([]));
}
