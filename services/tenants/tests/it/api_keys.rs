//! API keys end to end on a fresh database: creation by an active admin
//! only, authentication at once (before the read model runs), revocation at
//! once, suspension, the throttled record of the last use, the quota, and
//! isolation between tenants under row-level security.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandRunner, Limits};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_tenants::api_keys::{
    ApiKeys, ApiKeysError, ApiKeysProjection, CreatedKey, MAX_LIVE_KEYS, PREFIX_LEN,
};
use ventanilla_tenants::operator::{Operator, ProvisionRequest};
use ventanilla_tenants::secrets;
use ventanilla_tenants_domain::api_key::{ApiKeyId, Scope};
use ventanilla_tenants_domain::staff::{
    self, PasswordHash, Role, StaffCommand, StaffId, StaffMember,
};
use ventanilla_tenants_domain::values::{Email, Name};
use ventanilla_testkit::TestDb;

const PHC: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaA";

fn request(slug: &str) -> ProvisionRequest {
    ProvisionRequest {
        name: format!("Concello de {slug}"),
        slug: slug.to_owned(),
        kind: "council".into(),
        admin_email: format!("alcaldia@{slug}.gal"),
        ..ProvisionRequest::default()
    }
}

struct World {
    db: TestDb,
    log: Arc<PgEventLog>,
    op: Operator,
    keys: ApiKeys,
}

impl World {
    async fn new() -> Self {
        let db = TestDb::new().await;
        let log = Arc::new(PgEventLog::new(db.app.clone(), Limits::default()));
        let op = Operator::new(Arc::clone(&log), "test-operator");
        let keys = ApiKeys::new(Arc::clone(&log));
        Self { db, log, op, keys }
    }

    fn runner(&self) -> CommandRunner<PgEventLog> {
        CommandRunner::new(Arc::clone(&self.log), 3)
    }

    /// Provisions a tenant and activates its first admin with the domain's
    /// own command (the staff service is not needed for that).
    async fn tenant(&self, slug: &str) -> (TenantId, StaffId) {
        let p = self.op.provision(&request(slug)).await.unwrap();
        self.accept(p.tenant, p.admin, &p.invitation_code).await;
        (p.tenant, p.admin)
    }

    async fn accept(&self, tenant: TenantId, member: StaffId, code: &str) {
        self.runner()
            .execute::<StaffMember>(
                &CommandContext::new(
                    tenant,
                    Utc::now(),
                    Actor::Staff {
                        id: member.to_string(),
                    },
                ),
                &staff::stream_id(member).unwrap(),
                &StaffCommand::AcceptInvitation {
                    invitation: secrets::hash_token(code).unwrap(),
                    password: PasswordHash::parse("password", PHC).unwrap(),
                },
            )
            .await
            .unwrap();
    }

    /// Invites a member with `role`; activates them when `active`.
    async fn member(&self, tenant: TenantId, by: StaffId, role: Role, active: bool) -> StaffId {
        let id = StaffId(Uuid::new_v4());
        let (code, invitation) = secrets::new_token().unwrap();
        self.runner()
            .execute::<StaffMember>(
                &CommandContext::new(tenant, Utc::now(), Actor::Staff { id: by.to_string() }),
                &staff::stream_id(id).unwrap(),
                &StaffCommand::Invite {
                    id,
                    email: Email::parse("email", &format!("{}@example.org", id.0.simple()))
                        .unwrap(),
                    name: Name::parse("name", "Ana Souto", staff::NAME_MAX).unwrap(),
                    role,
                    invitation,
                    expires_at: Utc::now() + chrono::Duration::days(1),
                    invited_by: Some(by),
                },
            )
            .await
            .unwrap();
        if active {
            self.accept(tenant, id, &code).await;
        }
        id
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&self.db.admin)
            .await
            .unwrap()
    }

    async fn events(&self) -> i64 {
        self.count("SELECT count(*) FROM events").await
    }

    async fn last_used(&self, key: ApiKeyId) -> Option<DateTime<Utc>> {
        sqlx::query_scalar("SELECT last_used_at FROM api_keys WHERE key_id = $1")
            .bind(key.0)
            .fetch_one(&self.db.admin)
            .await
            .unwrap()
    }
}

fn field(e: &ApiKeysError) -> &'static str {
    match e {
        ApiKeysError::Invalid(v) => v.field,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_created_key_authenticates_at_once_with_its_scope_and_tenant() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("lugo").await;

    let rw = w
        .keys
        .create(tenant, admin, "  CRM sync ", "read_write")
        .await
        .unwrap();
    assert_eq!(rw.secret.len(), 3 + 64);
    assert!(rw.secret.starts_with("vk_"));
    assert_eq!(rw.prefix, rw.secret[..PREFIX_LEN]);
    assert_eq!((rw.name.as_str(), rw.scope), ("CRM sync", Scope::ReadWrite));
    let ro = w
        .keys
        .create(tenant, admin, "Dashboard", "read")
        .await
        .unwrap();
    assert_ne!(ro.secret, rw.secret);

    // Nothing ran the projection since: the lookup catches it up itself.
    let who = w.keys.authenticate(&rw.secret).await.unwrap();
    assert_eq!(
        (who.tenant, who.key_id, who.scope),
        (tenant, rw.key_id, Scope::ReadWrite)
    );
    assert!(who.allows_writes());
    assert_eq!(
        who.actor(),
        Actor::ApiKey {
            id: rw.key_id.to_string()
        }
    );
    let who = w
        .keys
        .authenticate(&format!("{}\n", ro.secret))
        .await
        .unwrap();
    assert_eq!((who.key_id, who.scope), (ro.key_id, Scope::Read));
    assert!(!who.allows_writes(), "a read key is refused mutations");

    let listed = w.keys.list(tenant).await.unwrap();
    let summary: Vec<(ApiKeyId, &str, Scope, &str, StaffId, bool)> = listed
        .iter()
        .map(|k| {
            (
                k.key_id,
                k.name.as_str(),
                k.scope,
                k.prefix.as_str(),
                k.created_by,
                k.revoked_at.is_none(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                rw.key_id,
                "CRM sync",
                Scope::ReadWrite,
                rw.prefix.as_str(),
                admin,
                true
            ),
            (
                ro.key_id,
                "Dashboard",
                Scope::Read,
                ro.prefix.as_str(),
                admin,
                true
            ),
        ]
    );
    assert!(
        !format!("{rw:?}").contains(&rw.secret),
        "Debug hides the secret"
    );
}

#[tokio::test]
async fn the_clear_secret_is_stored_nowhere_and_lists_never_show_hashes() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("ourense").await;
    let key = w
        .keys
        .create(tenant, admin, "Padrón", "read")
        .await
        .unwrap();
    let listed = w.keys.list(tenant).await.unwrap();
    let hash = secrets::hash_token(&key.secret).unwrap();
    let hidden = &key.secret[PREFIX_LEN..];

    let events: Vec<String> = sqlx::query_scalar("SELECT data::text || metadata::text FROM events")
        .fetch_all(&w.db.admin)
        .await
        .unwrap();
    let rows: Vec<String> = sqlx::query_scalar("SELECT row_to_json(k)::text FROM api_keys k")
        .fetch_all(&w.db.admin)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].contains(hash.as_str()),
        "the read model keeps the hash"
    );
    for stored in events.iter().chain(&rows) {
        assert!(
            !stored.contains(hidden),
            "the secret beyond its prefix must not be stored: {stored}"
        );
    }

    let shown = serde_json::to_string(&listed).unwrap() + &format!("{listed:?}");
    assert!(!shown.contains(hash.as_str()), "{shown}");
    assert!(!shown.contains(hidden), "{shown}");
    assert!(shown.contains(&key.prefix));
}

#[tokio::test]
async fn wrong_or_malformed_secrets_are_unauthenticated() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("vigo").await;
    let key = w.keys.create(tenant, admin, "CRM", "read").await.unwrap();

    let mut wrong = key.secret.clone();
    let last = if wrong.ends_with('0') { "1" } else { "0" };
    wrong.replace_range(wrong.len() - 1.., last);
    let unknown = format!("vk_{}", "0".repeat(64));
    for secret in [wrong.as_str(), unknown.as_str()] {
        let e = w.keys.authenticate(secret).await.unwrap_err();
        assert!(matches!(e, ApiKeysError::Unauthenticated), "{e:?}");
        assert_eq!(e.code(), "UNAUTHENTICATED");
    }

    // Malformed secrets are refused before any query: this service's
    // database cannot even be reached.
    let nowhere = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy("postgres://nobody@127.0.0.1:9/nowhere")
        .unwrap();
    let offline = ApiKeys::new(Arc::new(PgEventLog::new(nowhere, Limits::default())));
    let upper = format!("vk_{}", key.secret[3..].to_uppercase());
    let long = format!("{}0", key.secret);
    let bare = key.secret[3..].to_owned();
    for bad in [
        "",
        "vk_",
        "Bearer x",
        &key.secret[..40],
        &long,
        &bare,
        &upper,
    ] {
        let e = offline.authenticate(bad).await.unwrap_err();
        assert!(matches!(e, ApiKeysError::Malformed), "{bad}: {e:?}");
        assert_eq!(e.code(), "UNAUTHENTICATED");
    }
    let e = offline.authenticate(&key.secret).await.unwrap_err();
    assert_eq!(e.code(), "INTERNAL", "a well-formed secret is looked up");
}

#[tokio::test]
async fn a_revoked_key_is_refused_at_once_and_revoking_twice_is_fine() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("lalin").await;
    let key = w
        .keys
        .create(tenant, admin, "CRM", "read_write")
        .await
        .unwrap();
    let other = w.keys.create(tenant, admin, "BI", "read").await.unwrap();
    w.keys.authenticate(&key.secret).await.unwrap();

    w.keys
        .revoke(
            tenant,
            admin,
            key.key_id,
            Some("leaked in a public repository"),
        )
        .await
        .unwrap();
    // The read model has not applied the revocation: the key's stream says so.
    let e = w.keys.authenticate(&key.secret).await.unwrap_err();
    assert!(matches!(e, ApiKeysError::Revoked), "{e:?}");
    assert_eq!(e.code(), "UNAUTHENTICATED");
    assert_eq!(
        e.to_string(),
        "this API key was revoked; ask an admin of the organisation for a new one"
    );
    w.keys.authenticate(&other.secret).await.unwrap();

    w.keys
        .revoke(tenant, admin, key.key_id, None)
        .await
        .unwrap();
    assert_eq!(
        w.count("SELECT count(*) FROM events WHERE event_type = 'api_key.revoked'")
            .await,
        1,
        "revoking twice records one revocation"
    );

    let e = w
        .keys
        .rename(tenant, admin, key.key_id, "CRM old")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "CONFLICT", "{e}");
    let unknown = ApiKeyId(Uuid::new_v4());
    for e in [
        w.keys
            .revoke(tenant, admin, unknown, None)
            .await
            .unwrap_err(),
        w.keys
            .rename(tenant, admin, unknown, "X")
            .await
            .unwrap_err(),
    ] {
        assert!(matches!(e, ApiKeysError::NotFound), "{e:?}");
    }

    let listed = w.keys.list(tenant).await.unwrap();
    let revoked: Vec<bool> = listed.iter().map(|k| k.revoked_at.is_some()).collect();
    assert_eq!(revoked, vec![true, false]);
}

#[tokio::test]
async fn keys_are_renamed() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("tui").await;
    let key = w.keys.create(tenant, admin, "CRM", "read").await.unwrap();
    w.keys
        .rename(tenant, admin, key.key_id, "Padrón sync")
        .await
        .unwrap();
    let before = w.events().await;
    w.keys
        .rename(tenant, admin, key.key_id, "Padrón sync")
        .await
        .unwrap();
    assert_eq!(w.events().await, before, "the same name changes nothing");
    let listed = w.keys.list(tenant).await.unwrap();
    assert_eq!(listed[0].name, "Padrón sync");
    w.keys.authenticate(&key.secret).await.unwrap();
}

#[tokio::test]
async fn only_an_active_admin_of_the_tenant_manages_keys() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("sarria").await;
    let (other_tenant, other_admin) = w.tenant("monforte").await;
    let key = w.keys.create(tenant, admin, "CRM", "read").await.unwrap();
    let agent = w.member(tenant, admin, Role::Agent, true).await;
    let invited_admin = w.member(tenant, admin, Role::Admin, false).await;
    let stranger = StaffId(Uuid::new_v4());

    let before = w.events().await;
    for by in [agent, invited_admin, stranger, other_admin] {
        let e = w.keys.create(tenant, by, "Mine", "read").await.unwrap_err();
        assert!(matches!(e, ApiKeysError::Forbidden), "{e:?}");
        assert_eq!(e.code(), "FORBIDDEN");
        for e in [
            w.keys
                .revoke(tenant, by, key.key_id, None)
                .await
                .unwrap_err(),
            w.keys
                .rename(tenant, by, key.key_id, "Mine")
                .await
                .unwrap_err(),
        ] {
            assert!(matches!(e, ApiKeysError::Forbidden), "{e:?}");
        }
    }
    // Another tenant's admin, in their own tenant, does not find the key.
    let e = w
        .keys
        .revoke(other_tenant, other_admin, key.key_id, None)
        .await
        .unwrap_err();
    assert!(matches!(e, ApiKeysError::NotFound), "{e:?}");
    assert_eq!(w.events().await, before, "nothing was written");
    w.keys.authenticate(&key.secret).await.unwrap();
}

#[tokio::test]
async fn malformed_input_names_the_field_and_writes_nothing() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("betanzos").await;
    let key = w.keys.create(tenant, admin, "CRM", "read").await.unwrap();
    let before = w.events().await;
    let long_name = "k".repeat(81);
    for (name, scope, expected) in [
        ("  ", "read", "name"),
        (long_name.as_str(), "read", "name"),
        ("CRM", "admin", "scope"),
        ("CRM", "", "scope"),
    ] {
        let e = w.keys.create(tenant, admin, name, scope).await.unwrap_err();
        assert_eq!(field(&e), expected, "{e}");
        assert_eq!(e.code(), "VALIDATION");
    }
    let e = w
        .keys
        .rename(tenant, admin, key.key_id, &long_name)
        .await
        .unwrap_err();
    assert_eq!(field(&e), "name");
    let e = w
        .keys
        .revoke(tenant, admin, key.key_id, Some(&"r".repeat(201)))
        .await
        .unwrap_err();
    assert_eq!(field(&e), "reason");
    assert_eq!(w.events().await, before);
}

#[tokio::test]
async fn a_suspended_tenants_keys_are_refused_until_reactivation() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("noia").await;
    let key = w.keys.create(tenant, admin, "CRM", "read").await.unwrap();
    w.keys.authenticate(&key.secret).await.unwrap();

    w.op.suspend("noia", "impago").await.unwrap();
    let e = w.keys.authenticate(&key.secret).await.unwrap_err();
    assert_eq!(e.code(), "TENANT_SUSPENDED", "{e}");
    let before = w.events().await;
    let e = w
        .keys
        .create(tenant, admin, "New", "read")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "TENANT_SUSPENDED", "{e}");
    assert_eq!(w.events().await, before);

    w.op.reactivate("noia").await.unwrap();
    let who = w.keys.authenticate(&key.secret).await.unwrap();
    assert_eq!(who.tenant, tenant);
}

#[tokio::test]
async fn the_last_use_is_recorded_at_most_once_a_minute() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("cee").await;
    let key = w.keys.create(tenant, admin, "CRM", "read").await.unwrap();
    let listed = w.keys.list(tenant).await.unwrap();
    assert_eq!(listed[0].last_used_at, None);

    w.keys.authenticate(&key.secret).await.unwrap();
    let first = w.last_used(key.key_id).await.expect("recorded on use");
    w.keys.authenticate(&key.secret).await.unwrap();
    assert_eq!(
        w.last_used(key.key_id).await,
        Some(first),
        "not rewritten within the minute"
    );

    // Two minutes later, the next use is recorded again.
    sqlx::query("UPDATE api_keys SET last_used_at = last_used_at - interval '2 minutes'")
        .execute(&w.db.admin)
        .await
        .unwrap();
    let older = w.last_used(key.key_id).await.unwrap();
    w.keys.authenticate(&key.secret).await.unwrap();
    let again = w.last_used(key.key_id).await.unwrap();
    assert!(again > older && again >= first, "{again} after {older}");
    assert_eq!(
        w.keys.list(tenant).await.unwrap()[0].last_used_at,
        Some(again)
    );
}

#[tokio::test]
async fn tenants_see_and_change_only_their_own_keys() {
    let w = World::new().await;
    let (a, a_admin) = w.tenant("muros").await;
    let (b, b_admin) = w.tenant("carnota").await;
    let a_key = w
        .keys
        .create(a, a_admin, "A's CRM", "read_write")
        .await
        .unwrap();
    let b_key = w.keys.create(b, b_admin, "B's CRM", "read").await.unwrap();
    w.keys.authenticate(&a_key.secret).await.unwrap();
    w.keys.authenticate(&b_key.secret).await.unwrap();

    let listed: Vec<ApiKeyId> = w
        .keys
        .list(b)
        .await
        .unwrap()
        .iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(listed, vec![b_key.key_id]);

    // Raw SQL as the application role in B's scope.
    let mut tx = begin_for_tenant(&w.db.app, b).await.unwrap();
    let seen: Vec<Uuid> = sqlx::query_scalar("SELECT key_id FROM api_keys")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    assert_eq!(seen, vec![b_key.key_id.0]);
    for sql in [
        "UPDATE api_keys SET revoked_at = now(), name = 'hacked' WHERE key_id = $1",
        "UPDATE api_keys SET last_used_at = NULL WHERE key_id = $1",
        "DELETE FROM api_keys WHERE key_id = $1",
    ] {
        let changed = sqlx::query(sql)
            .bind(a_key.key_id.0)
            .execute(&mut *tx)
            .await
            .unwrap()
            .rows_affected();
        assert_eq!(changed, 0, "{sql}");
    }
    let moved = sqlx::query("UPDATE api_keys SET tenant_id = $1 WHERE key_id = $2")
        .bind(a.into_uuid())
        .bind(b_key.key_id.0)
        .execute(&mut *tx)
        .await;
    assert!(moved.is_err(), "a row cannot be moved to another tenant");
    tx.rollback().await.unwrap();

    let mut tx = begin_for_tenant(&w.db.app, b).await.unwrap();
    let planted = sqlx::query(
        "INSERT INTO api_keys (tenant_id, key_id, name, scope, prefix, secret_hash, created_by, created_at) \
         VALUES ($1, $2, 'planted', 'read_write', 'vk_000000000', $3, $4, now())",
    )
    .bind(a.into_uuid())
    .bind(Uuid::new_v4())
    .bind("0".repeat(64))
    .bind(b_admin.0)
    .execute(&mut *tx)
    .await;
    assert!(planted.is_err(), "B cannot write a row of A");
    tx.rollback().await.unwrap();

    let unscoped: i64 = sqlx::query_scalar("SELECT count(*) FROM api_keys")
        .fetch_one(&w.db.app)
        .await
        .unwrap();
    assert_eq!(unscoped, 0, "with no tenant set nothing is visible");
    let became = sqlx::query("SET ROLE ventanilla_log_reader")
        .execute(&w.db.app)
        .await;
    assert!(
        became.is_err(),
        "the application cannot become the log reader"
    );

    // A's key is untouched.
    let who = w.keys.authenticate(&a_key.secret).await.unwrap();
    assert_eq!((who.tenant, who.scope), (a, Scope::ReadWrite));
    let a_rows = w.keys.list(a).await.unwrap();
    assert_eq!(
        (a_rows.len(), a_rows[0].name.as_str(), a_rows[0].revoked_at),
        (1, "A's CRM", None)
    );
}

#[tokio::test]
async fn a_tenant_has_at_most_fifty_live_keys() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("fisterra").await;
    let mut made: Vec<CreatedKey> = Vec::new();
    for i in 0..MAX_LIVE_KEYS {
        made.push(
            w.keys
                .create(tenant, admin, &format!("key {i}"), "read")
                .await
                .unwrap(),
        );
    }
    let before = w.events().await;
    let e = w
        .keys
        .create(tenant, admin, "one too many", "read")
        .await
        .unwrap_err();
    assert_eq!(e.code(), "QUOTA_EXCEEDED");
    assert!(e.to_string().contains("API keys"), "{e}");
    assert_eq!(w.events().await, before);

    w.keys
        .revoke(tenant, admin, made[0].key_id, None)
        .await
        .unwrap();
    w.keys
        .create(tenant, admin, "replacement", "read")
        .await
        .unwrap();
}

#[tokio::test]
async fn rebuilding_the_read_model_keeps_keys_and_their_last_use() {
    let w = World::new().await;
    let (tenant, admin) = w.tenant("camarinas").await;
    let used = w.keys.create(tenant, admin, "CRM", "read").await.unwrap();
    let gone = w.keys.create(tenant, admin, "Old", "read").await.unwrap();
    w.keys
        .revoke(tenant, admin, gone.key_id, None)
        .await
        .unwrap();
    w.keys.authenticate(&used.secret).await.unwrap();
    let before = w.keys.list(tenant).await.unwrap();
    assert!(before[0].last_used_at.is_some());

    ventanilla_postgres::rebuild(&w.db.admin, w.log.as_ref(), &ApiKeysProjection, 100, &())
        .await
        .unwrap();
    assert_eq!(w.keys.list(tenant).await.unwrap(), before);
    let who = w.keys.authenticate(&used.secret).await.unwrap();
    assert_eq!(who.key_id, used.key_id);
    assert!(matches!(
        w.keys.authenticate(&gone.secret).await.unwrap_err(),
        ApiKeysError::Revoked
    ));
}
