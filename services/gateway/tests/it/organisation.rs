//! The organisation's directory, hours and portal as admins keep them:
//! renaming and removing departments and topics, officials, business hours
//! and holidays, the portal's settings, renaming API keys. Each mutation's
//! answer and the next query show the change; another organisation's ids
//! are `NOT_FOUND`; everyone but an admin is refused.

use std::sync::Arc;

use serde_json::{Value, json};
use ventanilla_tenants::staff::Staff;
use ventanilla_tenants_domain::staff::Role;

use crate::support::{Council, OPERATOR_TOKEN, PASSWORD, World, code, ok};

/// An active agent of `c`, logged in; their session token.
pub async fn agent_token(w: &World, c: &Council) -> String {
    let staff = Staff::new(Arc::clone(&w.log));
    let email = format!("axente@{}.gal", c.slug);
    let invitation = staff
        .invite(c.tenant, Some(c.admin), &email, "Axente", Role::Agent)
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
            "mutation($t: String!, $e: String!, $p: String!) { login(tenant: $t, email: $e, password: $p) { token } }",
            json!({ "t": c.slug, "e": email, "p": PASSWORD }),
        )
        .await;
    login["data"]["login"]["token"].as_str().unwrap().to_owned()
}

/// The first error's code and `extensions.field`.
fn refusal(answer: &Value) -> (&str, &Value) {
    (code(answer), &answer["errors"][0]["extensions"]["field"])
}

const OFFICIAL: &str = "id name role department { id name } acceptsPublicQuestions updatedAt";

#[tokio::test]
async fn an_admin_renames_and_removes_departments_topics_officials_and_keys() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    let t = Some(token.as_str());

    // Departments: renamed, and the next read sees the new name.
    let added = w
        .gql(
            t,
            "mutation { addDepartment(name: \"Urbanismo\", description: \"Obras\") { id } }",
            json!({}),
        )
        .await;
    let department = ok(&added)["addDepartment"]["id"].clone();
    let renamed = w
        .gql(
            t,
            "mutation($id: UUID!) { renameDepartment(id: $id, name: \"Urbanismo y Vivienda\") { id name description } }",
            json!({ "id": department }),
        )
        .await;
    assert_eq!(
        ok(&renamed)["renameDepartment"],
        json!({ "id": department, "name": "Urbanismo y Vivienda", "description": "Obras" })
    );
    let read = w.gql(t, "{ departments { name } }", json!({})).await;
    assert_eq!(
        ok(&read)["departments"],
        json!([{ "name": "Urbanismo y Vivienda" }])
    );
    let blank = w
        .gql(
            t,
            "mutation($id: UUID!) { renameDepartment(id: $id, name: \"  \") { id } }",
            json!({ "id": department }),
        )
        .await;
    assert_eq!(refusal(&blank), ("VALIDATION", &json!("name")), "{blank}");

    // Its description: replaced (the name stays), refused when too long,
    // cleared with null.
    let described = w
        .gql(
            t,
            "mutation($id: UUID!) { describeDepartment(id: $id, description: \"Licencias y obras\") { id name description } }",
            json!({ "id": department }),
        )
        .await;
    assert_eq!(
        ok(&described)["describeDepartment"],
        json!({ "id": department, "name": "Urbanismo y Vivienda", "description": "Licencias y obras" })
    );
    let long = w
        .gql(
            t,
            "mutation($id: UUID!, $d: String) { describeDepartment(id: $id, description: $d) { id } }",
            json!({ "id": department, "d": "x".repeat(1001) }),
        )
        .await;
    assert_eq!(
        refusal(&long),
        ("VALIDATION", &json!("description")),
        "{long}"
    );
    let read = w.gql(t, "{ departments { description } }", json!({})).await;
    assert_eq!(
        ok(&read)["departments"],
        json!([{ "description": "Licencias y obras" }]),
        "the refused description changed nothing"
    );
    let cleared = w
        .gql(
            t,
            "mutation($id: UUID!) { describeDepartment(id: $id, description: null) { description } }",
            json!({ "id": department }),
        )
        .await;
    assert_eq!(
        ok(&cleared)["describeDepartment"],
        json!({ "description": null })
    );

    // Officials: added to the department, updated, removed.
    let official = w
        .gql(
            t,
            &format!("mutation($i: OfficialInput!) {{ addOfficial(input: $i) {{ {OFFICIAL} }} }}"),
            json!({ "i": {
                "name": "Concejalía de Urbanismo",
                "role": "Concejal",
                "departmentId": department,
                "acceptsPublicQuestions": true,
            }}),
        )
        .await;
    let o = &ok(&official)["addOfficial"];
    assert_eq!(o["name"], "Concejalía de Urbanismo");
    assert_eq!(
        o["department"],
        json!({ "id": department, "name": "Urbanismo y Vivienda" })
    );
    assert_eq!(o["acceptsPublicQuestions"], true);
    let official_id = o["id"].clone();
    let listed = w
        .gql(t, "{ officials { id role department { id } } }", json!({}))
        .await;
    assert_eq!(
        ok(&listed)["officials"],
        json!([{ "id": official_id, "role": "Concejal", "department": { "id": department } }])
    );
    let no_role = w
        .gql(
            t,
            "mutation { addOfficial(input: { name: \"Alcaldía\", role: \"\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refusal(&no_role),
        ("VALIDATION", &json!("role")),
        "{no_role}"
    );

    // A department with officials stays.
    let staffed = w
        .gql(
            t,
            "mutation($id: UUID!) { removeDepartment(id: $id) }",
            json!({ "id": department }),
        )
        .await;
    assert_eq!(code(&staffed), "CONFLICT", "{staffed}");

    let updated = w
        .gql(
            t,
            &format!("mutation($id: UUID!, $i: OfficialInput!) {{ updateOfficial(id: $id, input: $i) {{ {OFFICIAL} }} }}"),
            json!({ "id": official_id, "i": { "name": "Alcaldía", "role": "Alcaldesa" } }),
        )
        .await;
    let u = &ok(&updated)["updateOfficial"];
    assert_eq!(
        (
            &u["name"],
            &u["role"],
            &u["department"],
            &u["acceptsPublicQuestions"]
        ),
        (
            &json!("Alcaldía"),
            &json!("Alcaldesa"),
            &Value::Null,
            &json!(false)
        )
    );
    let listed = w
        .gql(t, "{ officials { name department { id } } }", json!({}))
        .await;
    assert_eq!(
        ok(&listed)["officials"],
        json!([{ "name": "Alcaldía", "department": null }])
    );

    let removed = w
        .gql(
            t,
            "mutation($id: UUID!) { removeOfficial(id: $id) }",
            json!({ "id": official_id }),
        )
        .await;
    assert_eq!(ok(&removed)["removeOfficial"], true);
    let again = w
        .gql(
            t,
            "mutation($id: UUID!) { removeOfficial(id: $id) }",
            json!({ "id": official_id }),
        )
        .await;
    assert_eq!(
        ok(&again)["removeOfficial"],
        true,
        "removing again is a no-op"
    );
    let removed = w
        .gql(
            t,
            "mutation($id: UUID!) { removeDepartment(id: $id) }",
            json!({ "id": department }),
        )
        .await;
    assert_eq!(ok(&removed)["removeDepartment"], true);
    let read = w
        .gql(t, "{ departments { id } officials { id } }", json!({}))
        .await;
    assert_eq!(ok(&read), &json!({ "departments": [], "officials": [] }));

    // Topics: renamed (a taken name is a conflict), then removed.
    let topics = w
        .gql(
            t,
            "mutation { a: addTopic(name: \"Obras\") { id } b: addTopic(name: \"Agua\") { id } }",
            json!({}),
        )
        .await;
    let topic = ok(&topics)["a"]["id"].clone();
    let renamed = w
        .gql(
            t,
            "mutation($id: UUID!) { renameTopic(id: $id, name: \"Obras en la vía pública\") { id name } }",
            json!({ "id": topic }),
        )
        .await;
    assert_eq!(
        ok(&renamed)["renameTopic"],
        json!({ "id": topic, "name": "Obras en la vía pública" })
    );
    let taken = w
        .gql(
            t,
            "mutation($id: UUID!) { renameTopic(id: $id, name: \"agua\") { id } }",
            json!({ "id": topic }),
        )
        .await;
    assert_eq!(code(&taken), "CONFLICT", "{taken}");
    let described = w
        .gql(
            t,
            "mutation($id: UUID!) { describeTopic(id: $id, description: \"Calles cortadas y desvíos\") { id name description } }",
            json!({ "id": topic }),
        )
        .await;
    assert_eq!(
        ok(&described)["describeTopic"],
        json!({ "id": topic, "name": "Obras en la vía pública", "description": "Calles cortadas y desvíos" })
    );
    let read = w.gql(t, "{ topics { name } }", json!({})).await;
    assert_eq!(
        ok(&read)["topics"],
        json!([{ "name": "Agua" }, { "name": "Obras en la vía pública" }])
    );
    let removed = w
        .gql(
            t,
            "mutation($id: UUID!) { removeTopic(id: $id) }",
            json!({ "id": topic }),
        )
        .await;
    assert_eq!(ok(&removed)["removeTopic"], true);
    let read = w.gql(t, "{ topics { name } }", json!({})).await;
    assert_eq!(ok(&read)["topics"], json!([{ "name": "Agua" }]));

    // Keys: renamed; a revoked one may not be.
    let keys = w.gql(t, "{ apiKeys { id name } }", json!({})).await;
    let key = ok(&keys)["apiKeys"][0]["id"].clone();
    let renamed = w
        .gql(
            t,
            "mutation($id: UUID!) { renameApiKey(id: $id, name: \"panel de control\") { id name scope } }",
            json!({ "id": key }),
        )
        .await;
    assert_eq!(
        ok(&renamed)["renameApiKey"],
        json!({ "id": key, "name": "panel de control", "scope": "READ" })
    );
    let keys = w.gql(t, "{ apiKeys { name } }", json!({})).await;
    assert_eq!(
        ok(&keys)["apiKeys"],
        json!([{ "name": "panel de control" }, { "name": "sede" }])
    );
    let blank = w
        .gql(
            t,
            "mutation($id: UUID!) { renameApiKey(id: $id, name: \"\") { id } }",
            json!({ "id": key }),
        )
        .await;
    assert_eq!(refusal(&blank), ("VALIDATION", &json!("name")), "{blank}");
    let revoked = w
        .gql(
            t,
            "mutation($id: UUID!) { revokeApiKey(id: $id) { id } }",
            json!({ "id": key }),
        )
        .await;
    ok(&revoked);
    let late = w
        .gql(
            t,
            "mutation($id: UUID!) { renameApiKey(id: $id, name: \"otro\") { id } }",
            json!({ "id": key }),
        )
        .await;
    assert_eq!(code(&late), "CONFLICT", "{late}");
}

const HOURS: &str = "timeZone week { day intervals { start end } } holidays { date name }";

#[tokio::test]
async fn an_admin_sets_business_hours_and_holidays() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    let t = Some(token.as_str());

    let set = w
        .gql(
            t,
            &format!(
                "mutation($i: BusinessHoursInput!) {{ setBusinessHours(input: $i) {{ {HOURS} }} }}"
            ),
            json!({ "i": {
                "timeZone": "Atlantic/Canary",
                "week": {
                    "monday": [{ "start": "09:00", "end": "14:00" }],
                    "thursday": [
                        { "start": "09:00", "end": "14:00" },
                        { "start": "16:00", "end": "24:00" },
                    ],
                },
            }}),
        )
        .await;
    let morning = json!([{ "start": "09:00", "end": "14:00" }]);
    let closed = json!([]);
    let expected = json!({
        "timeZone": "Atlantic/Canary",
        "week": [
            { "day": "MONDAY", "intervals": morning },
            { "day": "TUESDAY", "intervals": closed },
            { "day": "WEDNESDAY", "intervals": closed },
            { "day": "THURSDAY", "intervals": [
                { "start": "09:00", "end": "14:00" },
                { "start": "16:00", "end": "24:00" },
            ] },
            { "day": "FRIDAY", "intervals": closed },
            { "day": "SATURDAY", "intervals": closed },
            { "day": "SUNDAY", "intervals": closed },
        ],
        "holidays": [],
    });
    assert_eq!(ok(&set)["setBusinessHours"], expected);
    let read = w
        .gql(t, &format!("{{ businessHours {{ {HOURS} }} }}"), json!({}))
        .await;
    assert_eq!(ok(&read)["businessHours"], expected);

    // Holidays: the answer, then the next read, show them.
    let added = w
        .gql(
            t,
            "mutation { addHoliday(date: \"2027-01-06\", name: \"Reyes\") { date name } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok(&added)["addHoliday"],
        json!({ "date": "2027-01-06", "name": "Reyes" })
    );
    let twice = w
        .gql(
            t,
            "mutation { addHoliday(date: \"2027-01-06\", name: \"Reyes\") { date } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&twice), "CONFLICT", "{twice}");
    let read = w
        .gql(
            t,
            "{ businessHours { timeZone holidays { date name } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok(&read)["businessHours"],
        json!({ "timeZone": "Atlantic/Canary", "holidays": [{ "date": "2027-01-06", "name": "Reyes" }] })
    );
    let removed = w
        .gql(
            t,
            "mutation { removeHoliday(date: \"2027-01-06\") }",
            json!({}),
        )
        .await;
    assert_eq!(ok(&removed)["removeHoliday"], true);
    let read = w
        .gql(t, "{ businessHours { holidays { date } } }", json!({}))
        .await;
    assert_eq!(ok(&read)["businessHours"]["holidays"], json!([]));
    let gone = w
        .gql(
            t,
            "mutation { removeHoliday(date: \"2027-01-06\") }",
            json!({}),
        )
        .await;
    assert_eq!(code(&gone), "NOT_FOUND", "{gone}");

    // Refusals name the field, and change nothing.
    let before = w.event_count().await;
    for (input, field) in [
        (
            json!({ "timeZone": "Europe/Atlantis", "week": { "monday": [{ "start": "09:00", "end": "14:00" }] } }),
            "timeZone",
        ),
        (
            json!({ "timeZone": "Europe/Madrid", "week": { "thursday": [{ "start": "14:00", "end": "09:00" }] } }),
            "week.thursday",
        ),
        (
            json!({ "timeZone": "Europe/Madrid", "week": { "monday": [{ "start": "24:00", "end": "24:00" }] } }),
            "week.monday",
        ),
        (json!({ "timeZone": "Europe/Madrid", "week": {} }), "week"),
    ] {
        let answer = w
            .gql(
                t,
                "mutation($i: BusinessHoursInput!) { setBusinessHours(input: $i) { timeZone } }",
                json!({ "i": input }),
            )
            .await;
        assert_eq!(refusal(&answer), ("VALIDATION", &json!(field)), "{answer}");
    }
    let malformed = w
        .gql(
            t,
            "mutation { setBusinessHours(input: { timeZone: \"Europe/Madrid\", week: { monday: [{ start: \"9:00\", end: \"14:00\" }] } }) { timeZone } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&malformed), "VALIDATION", "{malformed}");
    let unnamed = w
        .gql(
            t,
            "mutation { addHoliday(date: \"2027-05-17\", name: \"\") { date } }",
            json!({}),
        )
        .await;
    assert_eq!(
        refusal(&unnamed),
        ("VALIDATION", &json!("name")),
        "{unnamed}"
    );
    let not_a_date = w
        .gql(
            t,
            "mutation { addHoliday(date: \"2027-02-30\", name: \"Nada\") { date } }",
            json!({}),
        )
        .await;
    assert_eq!(code(&not_a_date), "VALIDATION", "{not_a_date}");
    assert_eq!(w.event_count().await, before, "nothing was written");
    let read = w
        .gql(t, &format!("{{ businessHours {{ {HOURS} }} }}"), json!({}))
        .await;
    assert_eq!(ok(&read)["businessHours"], expected);
}

const PORTAL: &str =
    "publicName logoUrl primaryColour accentColour languages socialLinks { network url } updatedAt";

#[tokio::test]
async fn an_admin_configures_the_portal() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let token = w.login(&c).await;
    let t = Some(token.as_str());

    let none = w
        .gql(t, "{ portalSettings { publicName } }", json!({}))
        .await;
    assert_eq!(ok(&none)["portalSettings"], Value::Null);

    let configured = w
        .gql(
            t,
            &format!(
                "mutation($i: PortalSettingsInput!) {{ configurePortal(input: $i) {{ {PORTAL} }} }}"
            ),
            json!({ "i": {
                "publicName": "Concello de Lugo",
                "logoUrl": "https://lugo.gal/logo.png",
                "primaryColour": "#1A5FB4",
                "languages": ["gl", "es"],
                "socialLinks": [
                    { "network": "MASTODON", "url": "https://mastodon.gal/@lugo" },
                    { "network": "WEBSITE", "url": "https://lugo.gal" },
                ],
            }}),
        )
        .await;
    let p = ok(&configured)["configurePortal"].clone();
    assert_eq!(p["publicName"], "Concello de Lugo");
    assert_eq!(p["primaryColour"], "#1a5fb4");
    assert_eq!(p["accentColour"], Value::Null);
    assert_eq!(p["languages"], json!(["gl", "es"]));
    assert_eq!(
        p["socialLinks"],
        json!([
            { "network": "MASTODON", "url": "https://mastodon.gal/@lugo" },
            { "network": "WEBSITE", "url": "https://lugo.gal" },
        ])
    );
    assert!(p["updatedAt"].is_string());
    let read = w
        .gql(
            t,
            &format!("{{ portalSettings {{ {PORTAL} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(ok(&read)["portalSettings"], p);

    let before = w.event_count().await;
    for (input, field) in [
        (
            json!({ "publicName": "", "primaryColour": "#1a5fb4", "languages": ["gl"] }),
            "publicName",
        ),
        (
            json!({ "publicName": "Lugo", "primaryColour": "azul", "languages": ["gl"] }),
            "primaryColour",
        ),
        (
            json!({ "publicName": "Lugo", "primaryColour": "#1a5fb4", "accentColour": "#12", "languages": ["gl"] }),
            "accentColour",
        ),
        (
            json!({ "publicName": "Lugo", "primaryColour": "#1a5fb4", "logoUrl": "ftp://x", "languages": ["gl"] }),
            "logoUrl",
        ),
        (
            json!({ "publicName": "Lugo", "primaryColour": "#1a5fb4", "languages": [] }),
            "languages",
        ),
        (
            json!({ "publicName": "Lugo", "primaryColour": "#1a5fb4", "languages": ["gl"], "socialLinks": [
                { "network": "X", "url": "https://x.com/lugo" },
                { "network": "X", "url": "https://x.com/lugo" },
            ] }),
            "socialLinks",
        ),
    ] {
        let answer = w
            .gql(
                t,
                "mutation($i: PortalSettingsInput!) { configurePortal(input: $i) { publicName } }",
                json!({ "i": input }),
            )
            .await;
        assert_eq!(refusal(&answer), ("VALIDATION", &json!(field)), "{answer}");
    }
    assert_eq!(w.event_count().await, before, "nothing was written");
    let read = w
        .gql(
            t,
            &format!("{{ portalSettings {{ {PORTAL} }} }}"),
            json!({}),
        )
        .await;
    assert_eq!(ok(&read)["portalSettings"], p);
}

#[tokio::test]
async fn another_organisations_ids_are_not_found_and_nothing_changes() {
    let w = World::new().await;
    let lugo = w.council("lugo").await;
    let ourense = w.council("ourense").await;
    let theirs = w.login(&ourense).await;
    let mine = w.login(&lugo).await;

    let made = w
        .gql(
            Some(&theirs),
            "mutation { addDepartment(name: \"Facenda\") { id } addTopic(name: \"Auga\") { id } addHoliday(date: \"2027-11-11\", name: \"San Martiño\") { date } }",
            json!({}),
        )
        .await;
    let department = ok(&made)["addDepartment"]["id"].clone();
    let topic = ok(&made)["addTopic"]["id"].clone();
    let official = w
        .gql(
            Some(&theirs),
            "mutation($d: UUID!) { addOfficial(input: { name: \"Intervención\", role: \"Interventor\", departmentId: $d }) { id } }",
            json!({ "d": department }),
        )
        .await;
    let official = ok(&official)["addOfficial"]["id"].clone();
    let keys = w.gql(Some(&theirs), "{ apiKeys { id } }", json!({})).await;
    let key = ok(&keys)["apiKeys"][0]["id"].clone();
    let read_theirs = "{ departments { id name description } officials { id name role department { id } } topics { id name description } apiKeys { id name } businessHours { holidays { date name } } }";
    let theirs_before = w.gql(Some(&theirs), read_theirs, json!({})).await;
    ok(&theirs_before);

    let before = w.event_count().await;
    let vars = json!({ "d": department, "t": topic, "o": official, "k": key });
    for query in [
        "mutation($d: UUID!) { renameDepartment(id: $d, name: \"Mía\") { id } }",
        "mutation($d: UUID!) { removeDepartment(id: $d) }",
        "mutation($d: UUID!) { addOfficial(input: { name: \"X\", role: \"Y\", departmentId: $d }) { id } }",
        "mutation($o: UUID!) { updateOfficial(id: $o, input: { name: \"X\", role: \"Y\" }) { id } }",
        "mutation($o: UUID!) { removeOfficial(id: $o) }",
        "mutation($t: UUID!) { renameTopic(id: $t, name: \"Mía\") { id } }",
        "mutation($d: UUID!) { describeDepartment(id: $d, description: \"Mía\") { id } }",
        "mutation($t: UUID!) { describeTopic(id: $t, description: \"Mía\") { id } }",
        "mutation($t: UUID!) { removeTopic(id: $t) }",
        "mutation($k: UUID!) { renameApiKey(id: $k, name: \"mía\") { id } }",
        "mutation { removeHoliday(date: \"2027-11-11\") }",
    ] {
        let answer = w.gql(Some(&mine), query, vars.clone()).await;
        assert_eq!(code(&answer), "NOT_FOUND", "{query}: {answer}");
    }
    assert_eq!(w.event_count().await, before, "nothing was written");
    let theirs_after = w.gql(Some(&theirs), read_theirs, json!({})).await;
    assert_eq!(theirs_after, theirs_before);
    let mine_now = w
        .gql(
            Some(&mine),
            "{ departments { id } officials { id } topics { id } businessHours { holidays { date } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        ok(&mine_now),
        &json!({ "departments": [], "officials": [], "topics": [], "businessHours": { "holidays": [] } })
    );
}

#[tokio::test]
async fn only_admins_keep_the_organisation() {
    let w = World::new().await;
    let c = w.council("lugo").await;
    let agent = agent_token(&w, &c).await;
    let some = "00000000-0000-0000-0000-000000000001";
    w.refused_to_all(
        &[
            Some(agent.as_str()),
            Some(&c.write_key),
            Some(&c.read_key),
            Some(OPERATOR_TOKEN),
            None,
        ],
        &[
            "{ businessHours { timeZone } }",
            "{ portalSettings { publicName } }",
            &format!("mutation {{ renameDepartment(id: \"{some}\", name: \"X\") {{ id }} }}"),
            &format!("mutation {{ removeDepartment(id: \"{some}\") }}"),
            "mutation { addOfficial(input: { name: \"X\", role: \"Y\" }) { id } }",
            &format!(
                "mutation {{ updateOfficial(id: \"{some}\", input: {{ name: \"X\", role: \"Y\" }}) {{ id }} }}"
            ),
            &format!("mutation {{ removeOfficial(id: \"{some}\") }}"),
            &format!("mutation {{ renameTopic(id: \"{some}\", name: \"X\") {{ id }} }}"),
            &format!("mutation {{ removeTopic(id: \"{some}\") }}"),
            &format!(
                "mutation {{ describeDepartment(id: \"{some}\", description: \"X\") {{ id }} }}"
            ),
            &format!("mutation {{ describeTopic(id: \"{some}\", description: \"X\") {{ id }} }}"),
            "mutation { setBusinessHours(input: { timeZone: \"Europe/Madrid\", week: { monday: [{ start: \"09:00\", end: \"14:00\" }] } }) { timeZone } }",
            "mutation { addHoliday(date: \"2027-01-06\", name: \"Reyes\") { date } }",
            "mutation { removeHoliday(date: \"2027-01-06\") }",
            "mutation { configurePortal(input: { publicName: \"X\", primaryColour: \"#000000\", languages: [\"es\"] }) { publicName } }",
            &format!("mutation {{ renameApiKey(id: \"{some}\", name: \"x\") {{ id }} }}"),
        ],
    )
    .await;
}
