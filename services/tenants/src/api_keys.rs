//! Integrators' API keys: an admin creates a key with a name and a scope,
//! renames or revokes it; an integrator presents its secret on every call and
//! [`ApiKeys::authenticate`] turns it into a [`KeyPrincipal`].
//!
//! The secret is `vk_` followed by 64 lowercase hex characters (256 random
//! bits). It is shown once, in [`CreatedKey`], and never stored: the log and
//! the read model keep its SHA-256 and its first [`PREFIX_LEN`] characters
//! (the visible prefix, so admins can tell keys apart in lists).
//!
//! The read model is the `api_keys` projection (table `api_keys`,
//! `migrations/0006_api_keys.sql`). A presented secret is found from its
//! hash before the tenant is known, through the SQL function
//! `api_key_lookup` (the only cross-tenant read; the application role still
//! sees only the current tenant's rows of the table). What the read model
//! says is not trusted for access: authentication then loads the key's own
//! stream, so a key revoked a moment ago is refused on its next use, and a
//! key created a moment ago works before the projection has caught up (the
//! lookup catches the projection up once before refusing).
//!
//! The key's last use is not an event (it would be one per API call): this
//! module updates `last_used_at` in the read model, at most once a minute per
//! key.
//!
//! A key's [`Scope`] is enforced by the gateway: a [`KeyPrincipal`] whose
//! scope is [`Scope::Read`] may run queries only, and the gateway refuses
//! its mutations with `FORBIDDEN` before any service is called
//! ([`KeyPrincipal::allows_writes`]).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;
use ventanilla_eventlog::{
    CommandContext, CommandError, CommandRunner, Decider, DomainEvent, EventLog, Position,
    RecordedEvent,
};
use ventanilla_kernel::{Actor, StreamId, StreamIdError, TenantId};
use ventanilla_postgres::projection::{Projection, ensure_caught_up, subscription_name};
use ventanilla_postgres::{Handler, PgEventLog, TenantTx, begin_for_tenant};
use ventanilla_tenants_domain::api_key::{
    self, ApiKey, ApiKeyCommand, ApiKeyError, ApiKeyEvent, ApiKeyId, KeyPrefix, Scope,
};
use ventanilla_tenants_domain::staff::{self, Role, StaffError, StaffId, StaffMember, StaffStatus};
use ventanilla_tenants_domain::values::{InvalidValue, Name};

use crate::access::{self, AccessError};
use crate::secrets;

/// How every secret starts, so that a leaked one is recognisable (secret
/// scanners) and a malformed one is refused without a database query.
pub const SECRET_PREFIX: &str = "vk_";

/// How many characters of the secret are kept and shown as its prefix:
/// `vk_` and 9 hex characters.
pub const PREFIX_LEN: usize = 12;

/// How many live (not revoked) keys a tenant may have at once.
pub const MAX_LIVE_KEYS: i64 = 50;

/// How long a read waits for the read model to catch up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);

/// The read models of this part of the service.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(ApiKeysProjection)]
}

/// The `api_keys` projection: one row per key (table `api_keys`).
#[derive(Debug, Default, Clone, Copy)]
pub struct ApiKeysProjection;

impl Projection for ApiKeysProjection {
    fn name(&self) -> &'static str {
        "api_keys"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["api_keys"]
    }
}

/// The scope as stored and as typed: `read` or `read_write`.
fn scope_text(scope: Scope) -> &'static str {
    match scope {
        Scope::Read => "read",
        Scope::ReadWrite => "read_write",
    }
}

/// Parses a scope for `field`.
fn parse_scope(field: &'static str, value: &str) -> Result<Scope, InvalidValue> {
    match value.trim() {
        "read" => Ok(Scope::Read),
        "read_write" => Ok(Scope::ReadWrite),
        other => Err(InvalidValue::new(
            field,
            format!("{other:?} is not a scope; use read or read_write"),
        )),
    }
}

/// The key id of an `apikey-<uuid>` stream.
fn key_of(stream: &StreamId) -> anyhow::Result<Uuid> {
    let id = stream
        .as_str()
        .strip_prefix("apikey-")
        .ok_or_else(|| anyhow::anyhow!("{stream} is not an api key stream"))?;
    Ok(Uuid::parse_str(id)?)
}

#[async_trait]
impl Handler for ApiKeysProjection {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let tenant = tx.tenant().into_uuid();
        for e in events {
            if !e.event_type.starts_with("api_key.") {
                continue;
            }
            let key = key_of(&e.stream)?;
            let event = ApiKeyEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
            apply(tx.conn().await?, tenant, key, &event).await?;
        }
        Ok(())
    }
}

async fn apply(
    conn: &mut PgConnection,
    tenant: Uuid,
    key: Uuid,
    event: &ApiKeyEvent,
) -> sqlx::Result<()> {
    match event {
        ApiKeyEvent::Created(c) => {
            // `last_used_at` is not in the events. While the projection is
            // rebuilt, `api_keys` names the fresh copy and `public.api_keys`
            // the live table, so the last use survives the rebuild; in normal
            // running both are the same table and the row does not exist yet.
            sqlx::query(
                "INSERT INTO api_keys (tenant_id, key_id, name, scope, prefix, secret_hash, \
                   created_by, created_at, last_used_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, \
                   (SELECT live.last_used_at FROM public.api_keys live \
                     WHERE live.tenant_id = $1 AND live.key_id = $2))",
            )
            .bind(tenant)
            .bind(key)
            .bind(c.name.as_str())
            .bind(scope_text(c.scope))
            .bind(c.prefix.as_str())
            .bind(c.secret.as_str())
            .bind(c.created_by.0)
            .bind(c.at)
            .execute(conn)
            .await?;
        }
        ApiKeyEvent::Renamed(r) => {
            sqlx::query("UPDATE api_keys SET name = $3 WHERE tenant_id = $1 AND key_id = $2")
                .bind(tenant)
                .bind(key)
                .bind(r.name.as_str())
                .execute(conn)
                .await?;
        }
        ApiKeyEvent::Revoked(r) => {
            sqlx::query(
                "UPDATE api_keys SET revoked_at = $3 \
                 WHERE tenant_id = $1 AND key_id = $2 AND revoked_at IS NULL",
            )
            .bind(tenant)
            .bind(key)
            .bind(r.at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

/// A key just created. The secret is in clear here and nowhere else, ever:
/// show it once. `Debug` hides it.
#[derive(Clone)]
pub struct CreatedKey {
    /// The key's id.
    pub key_id: ApiKeyId,
    /// The secret the integrator sends (`vk_` and 64 hex characters).
    pub secret: String,
    /// Its first [`PREFIX_LEN`] characters, shown in lists.
    pub prefix: String,
    /// What it may do.
    pub scope: Scope,
    /// What admins call it.
    pub name: String,
}

impl std::fmt::Debug for CreatedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedKey")
            .field("key_id", &self.key_id)
            .field("secret", &format_args!("{}…", self.prefix))
            .field("prefix", &self.prefix)
            .field("scope", &self.scope)
            .field("name", &self.name)
            .finish()
    }
}

/// Who calls with a valid API key: the tenant (taken from the key, never
/// from the request), the key, and what it may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyPrincipal {
    /// The tenant the key belongs to.
    pub tenant: TenantId,
    /// The key.
    pub key_id: ApiKeyId,
    /// What it may do. The gateway refuses mutations (`FORBIDDEN`) to a key
    /// whose scope is [`Scope::Read`].
    pub scope: Scope,
}

impl KeyPrincipal {
    /// Whether the key may change data; the gateway refuses every mutation
    /// when it may not.
    pub fn allows_writes(&self) -> bool {
        self.scope.allows_writes()
    }

    /// The actor recorded on the events this key causes.
    pub fn actor(&self) -> Actor {
        Actor::ApiKey {
            id: self.key_id.to_string(),
        }
    }
}

/// One key as admins see it in a list. It has no field for the secret or
/// its hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeySummary {
    /// The key.
    pub key_id: ApiKeyId,
    /// What admins call it.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// The first [`PREFIX_LEN`] characters of its secret.
    pub prefix: String,
    /// The admin who created it.
    pub created_by: StaffId,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used (recorded at most once a minute), if ever.
    pub last_used_at: Option<DateTime<Utc>>,
}

/// Why an API key operation was refused. [`ApiKeysError::code`] gives the
/// API error code.
#[derive(Debug, thiserror::Error)]
pub enum ApiKeysError {
    /// Malformed input; names the field.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// The staff member is not an active admin of the tenant.
    #[error("only an active admin of this organisation may manage its API keys")]
    Forbidden,
    /// The presented secret is not an API key's shape.
    #[error("the API key is malformed; send the whole secret, which starts with vk_")]
    Malformed,
    /// The presented secret is no key's.
    #[error("the API key is not valid; check it was copied whole, or ask an admin for a new one")]
    Unauthenticated,
    /// The presented secret is a revoked key's.
    #[error("this API key was revoked; ask an admin of the organisation for a new one")]
    Revoked,
    /// No key of the tenant has this id.
    #[error("there is no API key with this id in this organisation")]
    NotFound,
    /// A revoked key cannot be renamed.
    #[error("the API key has been revoked and cannot be changed; create a new one")]
    KeyRevoked,
    /// The tenant has [`MAX_LIVE_KEYS`] live keys already.
    #[error(
        "this organisation already has {max} live API keys, the most allowed; revoke one it no longer uses first"
    )]
    QuotaExceeded {
        /// The limit.
        max: i64,
    },
    /// The tenant is suspended or unavailable.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// Others kept writing the key; try again.
    #[error("the API key changed while the command ran; try again")]
    Conflict,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl ApiKeysError {
    /// The stable error code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            ApiKeysError::Invalid(_) => "VALIDATION",
            ApiKeysError::Forbidden => "FORBIDDEN",
            ApiKeysError::Malformed | ApiKeysError::Unauthenticated | ApiKeysError::Revoked => {
                "UNAUTHENTICATED"
            }
            ApiKeysError::NotFound => "NOT_FOUND",
            ApiKeysError::KeyRevoked | ApiKeysError::Conflict => "CONFLICT",
            ApiKeysError::QuotaExceeded { .. } => "QUOTA_EXCEEDED",
            ApiKeysError::Access(e) => e.code(),
            ApiKeysError::Unexpected(_) => "INTERNAL",
        }
    }
}

impl From<ApiKeyError> for ApiKeysError {
    fn from(e: ApiKeyError) -> Self {
        match e {
            ApiKeyError::Invalid(v) => ApiKeysError::Invalid(v),
            ApiKeyError::Unknown => ApiKeysError::NotFound,
            ApiKeyError::Revoked => ApiKeysError::KeyRevoked,
            // Ids are drawn fresh, and commands here never present a secret.
            other @ (ApiKeyError::AlreadyExists | ApiKeyError::Mismatch) => {
                ApiKeysError::Unexpected(other.into())
            }
        }
    }
}

impl From<CommandError<ApiKeyError>> for ApiKeysError {
    fn from(e: CommandError<ApiKeyError>) -> Self {
        match e {
            CommandError::Domain(e) => e.into(),
            CommandError::Conflict { .. } => ApiKeysError::Conflict,
            CommandError::Invalid(e) => ApiKeysError::Unexpected(e.into()),
            CommandError::Unexpected(e) => ApiKeysError::Unexpected(e),
        }
    }
}

impl From<StreamIdError> for ApiKeysError {
    fn from(e: StreamIdError) -> Self {
        ApiKeysError::Unexpected(e.into())
    }
}

impl From<sqlx::Error> for ApiKeysError {
    fn from(e: sqlx::Error) -> Self {
        ApiKeysError::Unexpected(e.into())
    }
}

/// Whether `secret` has the shape of an API key: `vk_` and 64 lowercase hex
/// characters.
fn well_formed(secret: &str) -> bool {
    secret.strip_prefix(SECRET_PREFIX).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The API-key side of the tenants service.
pub struct ApiKeys {
    runner: CommandRunner<PgEventLog>,
    pool: PgPool,
}

impl ApiKeys {
    /// API keys on `log`.
    pub fn new(log: Arc<PgEventLog>) -> Self {
        let pool = log.pool().clone();
        Self {
            runner: CommandRunner::new(log, 5),
            pool,
        }
    }

    fn ctx(tenant: TenantId, by: StaffId) -> CommandContext {
        CommandContext::new(tenant, Utc::now(), Actor::Staff { id: by.to_string() })
    }

    /// Refuses unless `by` is an active admin of `tenant` (read from their
    /// own stream, so a demotion or deactivation counts at once).
    async fn ensure_admin(&self, tenant: TenantId, by: StaffId) -> Result<(), ApiKeysError> {
        let (_, events) = self
            .runner
            .load::<StaffMember>(tenant, &staff::stream_id(by)?)
            .await
            .map_err(|e: CommandError<StaffError>| ApiKeysError::Unexpected(e.into()))?;
        let member = StaffMember::fold(&events);
        if member.role == Some(Role::Admin) && member.status == Some(StaffStatus::Active) {
            Ok(())
        } else {
            Err(ApiKeysError::Forbidden)
        }
    }

    /// Makes the read model current up to `target`.
    async fn catch_up(&self, target: Position) -> Result<(), ApiKeysError> {
        ensure_caught_up(
            Arc::clone(self.runner.log()),
            self.pool.clone(),
            Arc::new(ApiKeysProjection),
            target,
            CATCH_UP_TIMEOUT,
        )
        .await?;
        Ok(())
    }

    /// Makes the read model current with everything committed so far.
    async fn catch_up_with_log(&self) -> Result<(), ApiKeysError> {
        let target = self
            .runner
            .log()
            .committed_head()
            .await
            .map_err(anyhow::Error::from)?;
        self.catch_up(target).await
    }

    /// Creates a key for `tenant` on behalf of the admin `by_admin`, named
    /// `name` (at most [`api_key::NAME_MAX`] characters) with `scope`
    /// (`read` or `read_write`). Refused with nothing written when the input
    /// is malformed (`VALIDATION`), the tenant suspended
    /// (`TENANT_SUSPENDED`), `by_admin` not an active admin of the tenant
    /// (`FORBIDDEN`) or the tenant at [`MAX_LIVE_KEYS`] live keys
    /// (`QUOTA_EXCEEDED`; two creations racing for the last place may both
    /// succeed).
    pub async fn create(
        &self,
        tenant: TenantId,
        by_admin: StaffId,
        name: &str,
        scope: &str,
    ) -> Result<CreatedKey, ApiKeysError> {
        let name = Name::parse("name", name, api_key::NAME_MAX)?;
        let scope = parse_scope("scope", scope)?;
        access::ensure_active(&self.runner, tenant).await?;
        self.ensure_admin(tenant, by_admin).await?;

        self.catch_up_with_log().await?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let live: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM api_keys WHERE tenant_id = $1 AND revoked_at IS NULL",
        )
        .bind(tenant.into_uuid())
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        if live >= MAX_LIVE_KEYS {
            return Err(ApiKeysError::QuotaExceeded { max: MAX_LIVE_KEYS });
        }

        let (random, _) = secrets::new_token()?;
        let secret = format!("{SECRET_PREFIX}{random}");
        let hash = secrets::hash_token(&secret)?;
        let visible = secret.get(..PREFIX_LEN).unwrap_or_default();
        let prefix = KeyPrefix::parse("prefix", visible)?;
        let key_id = ApiKeyId(Uuid::new_v4());
        self.runner
            .execute::<ApiKey>(
                &Self::ctx(tenant, by_admin),
                &api_key::stream_id(key_id)?,
                &ApiKeyCommand::Create {
                    id: key_id,
                    name: name.clone(),
                    scope,
                    prefix: prefix.clone(),
                    secret: hash,
                    created_by: by_admin,
                },
            )
            .await?;
        tracing::info!(tenant_id = %tenant, key_id = %key_id, prefix = %prefix, "api key created");
        Ok(CreatedKey {
            key_id,
            secret,
            prefix: prefix.to_string(),
            scope,
            name: name.to_string(),
        })
    }

    /// The tenant and key of the secret whose hash is `hash`, from the read
    /// model (revoked keys included).
    async fn lookup(&self, hash: &str) -> Result<Option<(TenantId, ApiKeyId)>, ApiKeysError> {
        let found: Option<(Uuid, Uuid)> =
            sqlx::query_as("SELECT tenant_id, key_id FROM api_key_lookup($1)")
                .bind(hash)
                .fetch_optional(&self.pool)
                .await?;
        Ok(found.map(|(t, k)| (TenantId::from_uuid(t), ApiKeyId(k))))
    }

    /// Whether the read model has applied every event up to `target`: a
    /// cheap check (two indexed reads) before the costlier catching up, as
    /// every well-formed but unknown secret asks for it.
    async fn reached(&self, target: Position) -> Result<bool, ApiKeysError> {
        let reached: (Option<i64>, Option<i64>) = sqlx::query_as(
            "SELECT min(checkpoint_commit), min(checkpoint_sequence) \
               FROM subscription_partitions WHERE subscription = $1",
        )
        .bind(subscription_name(&ApiKeysProjection))
        .fetch_one(&self.pool)
        .await?;
        Ok(match reached {
            (Some(c), Some(s)) => {
                Position {
                    commit: u64::try_from(c).unwrap_or_default(),
                    sequence: u64::try_from(s).unwrap_or_default(),
                } >= target
            }
            _ => target == Position::START,
        })
    }

    /// Authenticates a presented secret. Refused with `UNAUTHENTICATED` when
    /// it is malformed (without a database query), no key's, or a revoked
    /// key's (read from the key's stream, so a revocation counts at once);
    /// with `TENANT_SUSPENDED` when the key's tenant is suspended. Records
    /// the key's last use, at most once a minute.
    pub async fn authenticate(&self, secret: &str) -> Result<KeyPrincipal, ApiKeysError> {
        let secret = secret.trim();
        if !well_formed(secret) {
            return Err(ApiKeysError::Malformed);
        }
        let hash = secrets::hash_token(secret)?;

        let found = match self.lookup(hash.as_str()).await? {
            Some(found) => Some(found),
            None => {
                // A key created a moment ago may not be in the read model
                // yet: catch it up once before refusing.
                let target = self
                    .runner
                    .log()
                    .committed_head()
                    .await
                    .map_err(anyhow::Error::from)?;
                if self.reached(target).await? {
                    None
                } else {
                    self.catch_up(target).await?;
                    self.lookup(hash.as_str()).await?
                }
            }
        };
        let Some((tenant, key_id)) = found else {
            return Err(ApiKeysError::Unauthenticated);
        };

        let (_, events) = self
            .runner
            .load::<ApiKey>(tenant, &api_key::stream_id(key_id)?)
            .await
            .map_err(|e: CommandError<ApiKeyError>| ApiKeysError::Unexpected(e.into()))?;
        let scope = match ApiKey::fold(&events).authenticates(&hash) {
            Ok(scope) => scope,
            Err(ApiKeyError::Revoked) => return Err(ApiKeysError::Revoked),
            Err(e) => {
                // The read model disagrees with the key's stream.
                tracing::warn!(tenant_id = %tenant, key_id = %key_id, error = %e, "api key lookup found a key its stream does not confirm");
                return Err(ApiKeysError::Unauthenticated);
            }
        };
        access::ensure_active(&self.runner, tenant).await?;

        if let Err(e) = self.record_use(tenant, key_id).await {
            // The key is valid: failing to note its last use does not refuse it.
            tracing::warn!(tenant_id = %tenant, key_id = %key_id, error = %e, "could not record an api key's last use");
        }
        Ok(KeyPrincipal {
            tenant,
            key_id,
            scope,
        })
    }

    /// Sets the key's `last_used_at` to now unless it was set less than a
    /// minute ago, in the tenant's scope.
    async fn record_use(&self, tenant: TenantId, key_id: ApiKeyId) -> sqlx::Result<()> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        sqlx::query(
            "UPDATE api_keys SET last_used_at = now() \
             WHERE tenant_id = $1 AND key_id = $2 \
               AND (last_used_at IS NULL OR last_used_at < now() - interval '1 minute')",
        )
        .bind(tenant.into_uuid())
        .bind(key_id.0)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Runs `command` on a key of `tenant` on behalf of the admin `by_admin`,
    /// after checking the tenant is active and `by_admin` an active admin.
    async fn run(
        &self,
        tenant: TenantId,
        by_admin: StaffId,
        key_id: ApiKeyId,
        command: ApiKeyCommand,
    ) -> Result<(), ApiKeysError> {
        access::ensure_active(&self.runner, tenant).await?;
        self.ensure_admin(tenant, by_admin).await?;
        self.runner
            .execute::<ApiKey>(
                &Self::ctx(tenant, by_admin),
                &api_key::stream_id(key_id)?,
                &command,
            )
            .await?;
        Ok(())
    }

    /// Revokes a key of `tenant` for good, on behalf of the admin
    /// `by_admin`, with an optional reason (at most [`api_key::REASON_MAX`]
    /// characters). The key is refused from its next use. Revoking a revoked
    /// key succeeds and changes nothing; an unknown key is `NOT_FOUND`.
    pub async fn revoke(
        &self,
        tenant: TenantId,
        by_admin: StaffId,
        key_id: ApiKeyId,
        reason: Option<&str>,
    ) -> Result<(), ApiKeysError> {
        let reason = reason
            .map(|r| Name::parse("reason", r, api_key::REASON_MAX))
            .transpose()?;
        self.run(
            tenant,
            by_admin,
            key_id,
            ApiKeyCommand::Revoke {
                by: by_admin,
                reason,
            },
        )
        .await
    }

    /// Renames a key of `tenant` on behalf of the admin `by_admin` (at most
    /// [`api_key::NAME_MAX`] characters; the same name changes nothing). A
    /// revoked key is `CONFLICT`, an unknown one `NOT_FOUND`.
    pub async fn rename(
        &self,
        tenant: TenantId,
        by_admin: StaffId,
        key_id: ApiKeyId,
        name: &str,
    ) -> Result<(), ApiKeysError> {
        let name = Name::parse("name", name, api_key::NAME_MAX)?;
        self.run(tenant, by_admin, key_id, ApiKeyCommand::Rename { name })
            .await
    }

    /// Every key of `tenant`, revoked ones included, oldest first; never
    /// their secrets or hashes. Reads the read model once it has caught up
    /// with everything committed so far.
    pub async fn list(&self, tenant: TenantId) -> Result<Vec<KeySummary>, ApiKeysError> {
        access::ensure_active(&self.runner, tenant).await?;
        self.catch_up_with_log().await?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let rows = sqlx::query(
            "SELECT key_id, name, scope, prefix, created_by, created_at, revoked_at, last_used_at \
               FROM api_keys WHERE tenant_id = $1 ORDER BY created_at, key_id",
        )
        .bind(tenant.into_uuid())
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        rows.iter()
            .map(|row| -> Result<KeySummary, ApiKeysError> {
                let scope: String = row.try_get("scope")?;
                Ok(KeySummary {
                    key_id: ApiKeyId(row.try_get("key_id")?),
                    name: row.try_get("name")?,
                    scope: parse_scope("scope", &scope).map_err(anyhow::Error::from)?,
                    prefix: row.try_get("prefix")?,
                    created_by: StaffId(row.try_get("created_by")?),
                    created_at: row.try_get("created_at")?,
                    revoked_at: row.try_get("revoked_at")?,
                    last_used_at: row.try_get("last_used_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_checked_for_shape() {
        let hex = "0123456789abcdef".repeat(4);
        assert!(well_formed(&format!("vk_{hex}")));
        for bad in [
            String::new(),
            "vk_".to_owned(),
            hex.clone(),
            format!("vk_{}", &hex[1..]),
            format!("vk_{hex}0"),
            format!("xk_{hex}"),
            format!("vk_{}", hex.to_uppercase()),
            format!("vk_{}g", &hex[1..]),
        ] {
            assert!(!well_formed(&bad), "{bad}");
        }
    }

    #[test]
    fn the_visible_prefix_is_a_key_prefix() {
        let secret = format!("vk_{}", "ab".repeat(32));
        let prefix = KeyPrefix::parse("prefix", &secret[..PREFIX_LEN]).unwrap();
        assert_eq!(prefix.as_str(), "vk_ababababa");
    }

    #[test]
    fn scopes_parse_and_print() {
        for scope in [Scope::Read, Scope::ReadWrite] {
            assert_eq!(parse_scope("scope", scope_text(scope)), Ok(scope));
        }
        assert_eq!(parse_scope("scope", "admin").unwrap_err().field, "scope");
    }

    #[test]
    fn error_codes_and_messages() {
        let errors = [
            (ApiKeysError::Forbidden, "FORBIDDEN"),
            (ApiKeysError::Malformed, "UNAUTHENTICATED"),
            (ApiKeysError::Unauthenticated, "UNAUTHENTICATED"),
            (ApiKeysError::Revoked, "UNAUTHENTICATED"),
            (ApiKeysError::NotFound, "NOT_FOUND"),
            (ApiKeysError::KeyRevoked, "CONFLICT"),
            (ApiKeysError::QuotaExceeded { max: 50 }, "QUOTA_EXCEEDED"),
            (ApiKeysError::Conflict, "CONFLICT"),
            (
                ApiKeysError::Invalid(InvalidValue::new("name", "must not be empty")),
                "VALIDATION",
            ),
        ];
        for (e, code) in errors {
            assert_eq!(e.code(), code, "{e}");
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }

    #[test]
    fn a_created_key_hides_its_secret_in_debug() {
        let key = CreatedKey {
            key_id: ApiKeyId(Uuid::nil()),
            secret: format!("vk_{}", "cd".repeat(32)),
            prefix: "vk_cdcdcdcdc".to_owned(),
            scope: Scope::Read,
            name: "CRM".to_owned(),
        };
        let debug = format!("{key:?}");
        assert!(!debug.contains(&key.secret), "{debug}");
        assert!(debug.contains("vk_cdcdcdcdc…"), "{debug}");
    }
}
