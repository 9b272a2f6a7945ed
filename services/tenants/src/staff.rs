//! A tenant's staff: invitations, passwords, login sessions, roles and
//! deactivation, on the domain's [`StaffMember`] aggregate, and the
//! `staff_directory` read model (tables `staff` and `staff_sessions`,
//! `migrations/0005_staff.sql`).
//!
//! Every method takes the tenant explicitly: the gateway passes the tenant of
//! the authenticated principal (or of the portal the request came through),
//! never one read from user input. Secrets are handled here and nowhere else:
//! passwords are hashed with argon2id (default parameters, random salt) and
//! invitation codes and session tokens are random and stored as their SHA-256
//! digest ([`crate::secrets`]); the clear values are returned once and never
//! written anywhere.
//!
//! What needs the whole tenant is checked here, before the aggregate is asked:
//! - an address is staff of a tenant at most once: the read model is checked
//!   first (it also holds the first admin, whom the operator invites), and a
//!   claim stream per (tenant, lowercased address), `staffemail-<sha256 hex>`,
//!   makes the check atomic between concurrent invitations;
//! - the plan's quota of agents (active and invited agents, from the read
//!   model, against the limits of the tenant's plan);
//! - the tenant keeps at least one active administrator;
//! - a suspended tenant is refused at once ([`access::ensure_active`]) on
//!   every use or creation of a session, even when the aggregate says yes.
//!
//! Whether a session is valid is decided on the member's stream, which is
//! always current: the read model only maps an address or a session id to
//! its member, so a row that lags behind never lets anyone in.

use std::sync::{Arc, OnceLock};

use anyhow::anyhow;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{FromRow, PgConnection};
use uuid::Uuid;
use ventanilla_eventlog::{
    CommandContext, CommandError, CommandRunner, Decider, DomainEvent, EventLog, Executed,
    Position, RecordedEvent, UpcastError,
};
use ventanilla_kernel::{Actor, StreamId, StreamIdError, TenantId};
use ventanilla_postgres::projection::{Projection, ensure_caught_up};
use ventanilla_postgres::sqlx::PgPool;
use ventanilla_postgres::{Handler, PgEventLog, TenantTx, begin_for_tenant};
use ventanilla_tenants_domain::plan::{
    self, LimitName, PlanCatalogue, PlanError, PlanLimits, QuotaExceeded,
};
use ventanilla_tenants_domain::staff::{
    self as domain, PasswordHash, Role, SessionEndReason, SessionId, StaffCommand, StaffError,
    StaffEvent, StaffId, StaffMember, StaffState, StaffStatus,
};
use ventanilla_tenants_domain::tenant::{self, Tenant, TenantError};
use ventanilla_tenants_domain::values::{Email, InvalidValue, Name};

use crate::access::{self, AccessError};
use crate::secrets;

/// How long an invitation stays valid, in days.
pub const INVITATION_TTL_DAYS: i64 = 7;

/// How long a session lasts after login.
pub const SESSION_TTL_HOURS: i64 = 12;

/// The fewest characters a password may have.
pub const PASSWORD_MIN_CHARS: usize = 12;

/// The most characters a password may have.
pub const PASSWORD_MAX_CHARS: usize = 128;

/// How long a command waits for the read model to catch up.
const CATCH_UP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15);

/// The actor of what the platform does on its own (invitations without an
/// inviting admin, failed logins by whoever typed the address).
const COMPONENT: &str = "tenants.staff";

/// The read models of this part of the service.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(StaffDirectory)]
}

/// Parses a role as the API spells it (`admin` or `agent`) for `field`.
pub fn parse_role(field: &'static str, value: &str) -> Result<Role, InvalidValue> {
    match value.trim() {
        "admin" => Ok(Role::Admin),
        "agent" => Ok(Role::Agent),
        other => Err(InvalidValue::new(
            field,
            format!("{other:?} is not a role; use admin or agent"),
        )),
    }
}

/// Refuses a password that breaks the policy: at least
/// [`PASSWORD_MIN_CHARS`] and at most [`PASSWORD_MAX_CHARS`] characters, not
/// all of them the same.
pub fn check_password(field: &'static str, password: &str) -> Result<(), InvalidValue> {
    let chars = password.chars().count();
    if chars < PASSWORD_MIN_CHARS {
        return Err(InvalidValue::new(
            field,
            format!("must be at least {PASSWORD_MIN_CHARS} characters, got {chars}"),
        ));
    }
    if chars > PASSWORD_MAX_CHARS {
        return Err(InvalidValue::new(
            field,
            format!("must be at most {PASSWORD_MAX_CHARS} characters, got {chars}"),
        ));
    }
    let mut all = password.chars();
    let first = all.next();
    if all.all(|c| Some(c) == first) {
        return Err(InvalidValue::new(
            field,
            "must not repeat one character only; choose a longer phrase",
        ));
    }
    Ok(())
}

fn role_text(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::Agent => "agent",
    }
}

/// The address as the read model and the claim stream know it.
fn email_key(email: &Email) -> String {
    email.as_str().to_lowercase()
}

/// The claim stream of a lowercased address: `staffemail-<sha256 hex>` (the
/// address itself stays out of stream ids).
fn email_stream(key: &str) -> Result<StreamId, StreamIdError> {
    let digest = Sha256::digest(key.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    StreamId::for_aggregate("staffemail", hex)
}

/// Whole seconds in `d`, rounded up, at least 1.
fn seconds_up(d: Duration) -> i64 {
    let ms = d.num_milliseconds();
    (ms / 1000 + i64::from(ms % 1000 > 0)).max(1)
}

fn staff_actor(id: StaffId) -> Actor {
    Actor::Staff { id: id.to_string() }
}

// --- Passwords ---

/// Runs CPU-heavy work (argon2 takes tens of milliseconds by design) on the
/// blocking pool, so it does not stall the async workers serving others.
async fn off_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, StaffServiceError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| anyhow!("password hashing task failed: {e}").into())
}

/// The argon2id hash of a password (default parameters, random salt).
fn hash_password(password: &str) -> Result<PasswordHash, StaffServiceError> {
    let phc = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| anyhow!("cannot hash the password: {e}"))?;
    Ok(PasswordHash::parse("password", &phc.to_string())?)
}

/// A hash of no one's password, verified against when there is no real one
/// to verify, so that an unknown address takes as long as a wrong password.
fn decoy_hash() -> Option<&'static str> {
    static DECOY: OnceLock<Option<String>> = OnceLock::new();
    DECOY
        .get_or_init(|| {
            Argon2::default()
                .hash_password(b"ventanilla: no such account")
                .ok()
                .map(|h| h.to_string())
        })
        .as_deref()
}

/// Spends the time of one verification, to answer in the same time whether
/// or not there was a password to check.
fn verify_decoy(presented: &str) {
    if let Some(decoy) = decoy_hash() {
        let _ = Argon2::default().verify_password(presented.as_bytes(), decoy);
    }
}

/// Whether `presented` is the password whose hash is `stored`.
fn password_matches(
    stored: Option<&PasswordHash>,
    presented: &str,
) -> Result<bool, StaffServiceError> {
    let Some(stored) = stored else {
        verify_decoy(presented);
        return Ok(false);
    };
    if presented.chars().count() > PASSWORD_MAX_CHARS {
        // Could not have been set; not worth hashing.
        return Ok(false);
    }
    match Argon2::default().verify_password(presented.as_bytes(), stored.as_str()) {
        Ok(()) => Ok(true),
        Err(argon2::password_hash::Error::PasswordInvalid) => Ok(false),
        Err(e) => Err(anyhow!("cannot verify against the stored password hash: {e}").into()),
    }
}

// --- The e-mail claim ---

/// Keeps one address for one member of a tenant: stream
/// [`email_stream`] in the tenant. Claimed before the member is invited;
/// released only when the invitation could not be recorded after all.
struct EmailClaim;

/// What can be asked of an address's claim.
#[derive(Debug)]
enum EmailClaimCommand {
    /// Claims the address for `staff`; a no-op when `staff` holds it.
    Claim { staff: StaffId },
    /// Frees the address held by `staff`; a no-op otherwise.
    Release { staff: StaffId },
}

/// `staff.email_claimed`: the address belongs to `staff`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EmailClaimed {
    staff: StaffId,
    at: DateTime<Utc>,
}

/// `staff.email_released`: the address is free again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct EmailReleased {
    staff: StaffId,
    at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq)]
enum EmailClaimEvent {
    Claimed(EmailClaimed),
    Released(EmailReleased),
}

const EMAIL_CLAIMED: &str = "staff.email_claimed";
const EMAIL_RELEASED: &str = "staff.email_released";

impl DomainEvent for EmailClaimEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Claimed(_) => EMAIL_CLAIMED,
            Self::Released(_) => EMAIL_RELEASED,
        }
    }

    fn to_data(&self) -> Value {
        match self {
            Self::Claimed(e) => serde_json::to_value(e),
            Self::Released(e) => serde_json::to_value(e),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        let fail = |reason: String| UpcastError {
            event_type: event_type.to_owned(),
            schema_version,
            reason,
        };
        if schema_version != 1 {
            return Err(fail(format!(
                "unknown schema version {schema_version} (this code reads version 1)"
            )));
        }
        let read = |e: serde_json::Error| fail(e.to_string());
        match event_type {
            EMAIL_CLAIMED => serde_json::from_value(data.clone())
                .map(Self::Claimed)
                .map_err(read),
            EMAIL_RELEASED => serde_json::from_value(data.clone())
                .map(Self::Released)
                .map_err(read),
            _ => Err(fail("not an e-mail claim event type".to_owned())),
        }
    }
}

/// Another member holds the address.
#[derive(Debug, thiserror::Error)]
#[error("the address belongs to staff member {owner}")]
struct EmailTaken {
    owner: StaffId,
}

#[derive(Debug, Default)]
struct EmailClaimState {
    owner: Option<StaffId>,
}

impl Decider for EmailClaim {
    type State = EmailClaimState;
    type Command = EmailClaimCommand;
    type Event = EmailClaimEvent;
    type Error = EmailTaken;

    fn decide(
        state: &EmailClaimState,
        command: &EmailClaimCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<EmailClaimEvent>, EmailTaken> {
        match (command, state.owner) {
            (EmailClaimCommand::Claim { staff }, Some(owner)) if owner == *staff => Ok(vec![]),
            (EmailClaimCommand::Claim { .. }, Some(owner)) => Err(EmailTaken { owner }),
            (EmailClaimCommand::Claim { staff }, None) => {
                Ok(vec![EmailClaimEvent::Claimed(EmailClaimed {
                    staff: *staff,
                    at: now,
                })])
            }
            (EmailClaimCommand::Release { staff }, Some(owner)) if owner == *staff => {
                Ok(vec![EmailClaimEvent::Released(EmailReleased {
                    staff: *staff,
                    at: now,
                })])
            }
            (EmailClaimCommand::Release { .. }, _) => Ok(vec![]),
        }
    }

    fn evolve(mut state: EmailClaimState, event: &EmailClaimEvent) -> EmailClaimState {
        match event {
            EmailClaimEvent::Claimed(e) => state.owner = Some(e.staff),
            EmailClaimEvent::Released(_) => state.owner = None,
        }
        state
    }
}

// --- Errors ---

/// Why a staff operation was refused. Messages say what to do; [`Self::code`]
/// gives the API's error code.
#[derive(Debug, thiserror::Error)]
pub enum StaffServiceError {
    /// Malformed input; names the field.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// The tenant is suspended, closed or unknown.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The caller is not an active administrator of the tenant.
    #[error("only an active administrator of this organisation can {action}")]
    Forbidden {
        /// What was attempted.
        action: &'static str,
    },
    /// No such member in this tenant.
    #[error("there is no staff member {staff} in this organisation")]
    UnknownMember {
        /// The id asked for.
        staff: StaffId,
    },
    /// The address already belongs to a member of this tenant.
    #[error(
        "email: {email} is already a staff member of this organisation; reactivate or re-invite them instead"
    )]
    EmailTaken {
        /// The address.
        email: String,
    },
    /// The change would leave the tenant without an active administrator.
    #[error(
        "this is the last administrator of the organisation; make another member an administrator first"
    )]
    LastAdmin,
    /// The plan's agent limit would be exceeded.
    #[error("{0}; deactivate an agent or move to a larger plan")]
    Quota(#[from] QuotaExceeded),
    /// Unknown address or wrong password (one answer for both).
    #[error("the e-mail or the password is wrong")]
    WrongCredentials,
    /// The right password of a deactivated member.
    #[error("this account is deactivated; ask an administrator")]
    AccountDeactivated,
    /// The session is unknown, ended or expired, or the token is wrong.
    #[error("the session has ended or expired; log in again")]
    SessionInvalid,
    /// Too many failed logins in a row.
    #[error("too many failed logins; try again in {retry_after_seconds} seconds")]
    RateLimited {
        /// How long to wait before the next attempt is evaluated.
        retry_after_seconds: i64,
    },
    /// The member refused the command.
    #[error(transparent)]
    Staff(StaffError),
    /// Others kept writing the same record; try again.
    #[error("the record changed while the command ran; try again")]
    Conflict,
    /// Anything else: the log or the database failed.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl StaffServiceError {
    /// The stable error code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Invalid(_) => "VALIDATION",
            Self::Access(e) => e.code(),
            Self::Forbidden { .. } => "FORBIDDEN",
            Self::UnknownMember { .. } => "NOT_FOUND",
            Self::EmailTaken { .. } | Self::LastAdmin | Self::Conflict => "CONFLICT",
            Self::Quota(_) => "QUOTA_EXCEEDED",
            Self::WrongCredentials | Self::AccountDeactivated | Self::SessionInvalid => {
                "UNAUTHENTICATED"
            }
            Self::RateLimited { .. } => "RATE_LIMITED",
            Self::Staff(e) => match e {
                StaffError::Invalid(_) => "VALIDATION",
                StaffError::NotInvited => "NOT_FOUND",
                StaffError::InvitationMismatch | StaffError::InvitationExpired { .. } => {
                    "UNAUTHENTICATED"
                }
                StaffError::TooManyAttempts { .. } => "RATE_LIMITED",
                StaffError::ExpiryNotInFuture { .. } => "INTERNAL",
                StaffError::AlreadyInvited
                | StaffError::AlreadyActive
                | StaffError::NotActive
                | StaffError::Deactivated
                | StaffError::AlreadyDeactivated
                | StaffError::NotDeactivated
                | StaffError::SessionAlreadyStarted => "CONFLICT",
            },
            Self::Unexpected(_) => "INTERNAL",
        }
    }
}

impl From<StaffError> for StaffServiceError {
    fn from(e: StaffError) -> Self {
        match e {
            StaffError::TooManyAttempts { retry_after } => Self::RateLimited {
                retry_after_seconds: seconds_up(retry_after),
            },
            StaffError::Invalid(v) => Self::Invalid(v),
            other => Self::Staff(other),
        }
    }
}

impl From<CommandError<StaffError>> for StaffServiceError {
    fn from(e: CommandError<StaffError>) -> Self {
        match e {
            CommandError::Domain(e) => e.into(),
            CommandError::Conflict { .. } => Self::Conflict,
            CommandError::Invalid(e) => Self::Unexpected(e.into()),
            CommandError::Unexpected(e) => Self::Unexpected(e),
        }
    }
}

impl From<StreamIdError> for StaffServiceError {
    fn from(e: StreamIdError) -> Self {
        Self::Unexpected(e.into())
    }
}

impl From<sqlx::Error> for StaffServiceError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

// --- What the service returns ---

/// A new invitation. The code is shown once (a link or a code to pass on)
/// and is stored only as its digest; `Debug` hides it.
#[derive(Clone)]
pub struct Invitation {
    /// The invited member.
    pub staff: StaffId,
    /// The one-time invitation code, in clear.
    pub invitation_code: String,
    /// Until when the code works.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Invitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invitation")
            .field("staff", &self.staff)
            .field("invitation_code", &"…")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A new login session. The token is shown once and is stored only as its
/// digest; `Debug` hides it.
#[derive(Clone)]
pub struct Session {
    /// The session, presented with the token on every request.
    pub session_id: SessionId,
    /// Who logged in.
    pub staff: StaffId,
    /// The session token (64 hexadecimal characters), in clear.
    pub token: String,
    /// When the session stops working.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("session_id", &self.session_id)
            .field("staff", &self.staff)
            .field("token", &"…")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Who a valid session belongs to, as the gateway needs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// The member.
    pub staff: StaffId,
    /// What they may do.
    pub role: Role,
}

/// One member as listed (no secret, no hash).
#[derive(Debug, Clone, PartialEq, Eq, FromRow, Serialize)]
pub struct StaffSummary {
    /// The member.
    pub staff_id: Uuid,
    /// Their address, lowercased.
    pub email: String,
    /// Their name.
    pub name: String,
    /// `admin` or `agent`.
    pub role: String,
    /// `invited`, `active` or `deactivated`.
    pub status: String,
    /// When they were invited.
    pub invited_at: DateTime<Utc>,
    /// When they accepted the invitation.
    pub activated_at: Option<DateTime<Utc>>,
    /// When they were deactivated, while they are.
    pub deactivated_at: Option<DateTime<Utc>>,
    /// When their row last changed.
    pub updated_at: DateTime<Utc>,
}

// --- The service ---

/// The staff side of the tenants service.
pub struct Staff {
    runner: CommandRunner<PgEventLog>,
    pool: PgPool,
}

impl Staff {
    /// The service, writing to `log` (and reading its read model on the
    /// log's pool).
    pub fn new(log: Arc<PgEventLog>) -> Self {
        let pool = log.pool().clone();
        Self {
            runner: CommandRunner::new(log, 5),
            pool,
        }
    }

    fn ctx(&self, tenant: TenantId, actor: Actor) -> CommandContext {
        CommandContext::new(tenant, Utc::now(), actor)
    }

    /// Runs `command` on `staff`'s stream; an empty stream is
    /// [`StaffServiceError::UnknownMember`].
    async fn run(
        &self,
        tenant: TenantId,
        actor: Actor,
        staff: StaffId,
        command: &StaffCommand,
    ) -> Result<Executed<StaffMember>, StaffServiceError> {
        self.runner
            .execute::<StaffMember>(
                &self.ctx(tenant, actor),
                &domain::stream_id(staff)?,
                command,
            )
            .await
            .map_err(|e| match e {
                CommandError::Domain(StaffError::NotInvited) => {
                    StaffServiceError::UnknownMember { staff }
                }
                other => other.into(),
            })
    }

    /// The member's current state, from their stream.
    async fn member(
        &self,
        tenant: TenantId,
        staff: StaffId,
    ) -> Result<StaffState, StaffServiceError> {
        let (_, events) = self
            .runner
            .load::<StaffMember>(tenant, &domain::stream_id(staff)?)
            .await?;
        Ok(StaffMember::fold(&events))
    }

    /// The member's current state; refused when there is no such member.
    async fn existing(
        &self,
        tenant: TenantId,
        staff: StaffId,
    ) -> Result<StaffState, StaffServiceError> {
        let state = self.member(tenant, staff).await?;
        if state.status.is_none() {
            return Err(StaffServiceError::UnknownMember { staff });
        }
        Ok(state)
    }

    /// Refuses unless `by` is an active administrator of the tenant.
    async fn require_admin(
        &self,
        tenant: TenantId,
        by: StaffId,
        action: &'static str,
    ) -> Result<(), StaffServiceError> {
        let state = self.member(tenant, by).await?;
        if state.status == Some(StaffStatus::Active) && state.role == Some(Role::Admin) {
            Ok(())
        } else {
            Err(StaffServiceError::Forbidden { action })
        }
    }

    /// Makes the read model current up to `target` (or every event
    /// committed now).
    async fn catch_up(&self, target: Option<Position>) -> Result<(), StaffServiceError> {
        let log = Arc::clone(self.runner.log());
        let target = match target {
            Some(p) => p,
            None => log.committed_head().await.map_err(anyhow::Error::from)?,
        };
        let projection: Arc<dyn Projection> = Arc::new(StaffDirectory);
        ensure_caught_up(log, self.pool.clone(), projection, target, CATCH_UP_TIMEOUT).await?;
        Ok(())
    }

    /// Runs `read` on the read model in the tenant's scope.
    async fn scoped<T>(
        &self,
        tenant: TenantId,
        read: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
    ) -> Result<T, StaffServiceError> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let value = read(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    /// The member with this (lowercased) address; the read model is made
    /// current only when it does not know the address yet (addresses never
    /// change, so a row found is right).
    async fn find_by_email(
        &self,
        tenant: TenantId,
        key: &str,
    ) -> Result<Option<StaffId>, StaffServiceError> {
        if let Some(found) = self
            .scoped(tenant, async |c| staff_by_email(c, key).await)
            .await?
        {
            return Ok(Some(StaffId(found)));
        }
        self.catch_up(None).await?;
        let found = self
            .scoped(tenant, async |c| staff_by_email(c, key).await)
            .await?;
        Ok(found.map(StaffId))
    }

    /// The member a session was started by, likewise.
    async fn find_session(
        &self,
        tenant: TenantId,
        session: SessionId,
    ) -> Result<Option<StaffId>, StaffServiceError> {
        if let Some(found) = self
            .scoped(tenant, async |c| session_owner(c, session).await)
            .await?
        {
            return Ok(Some(StaffId(found)));
        }
        self.catch_up(None).await?;
        let found = self
            .scoped(tenant, async |c| session_owner(c, session).await)
            .await?;
        Ok(found.map(StaffId))
    }

    /// The limits of the tenant's current plan, from its stream and the
    /// plan catalogue's (both always current).
    async fn plan_limits(&self, tenant: TenantId) -> Result<PlanLimits, StaffServiceError> {
        let (_, events) = self
            .runner
            .load::<Tenant>(tenant, &tenant::stream_id(tenant)?)
            .await
            .map_err(|e: CommandError<TenantError>| anyhow::Error::from(e))?;
        let code = Tenant::fold(&events)
            .tenant
            .map(|t| t.plan)
            .ok_or(AccessError::TenantUnavailable)?;
        let (_, events) = self
            .runner
            .load::<PlanCatalogue>(plan::STREAM_OWNER, &plan::stream_id()?)
            .await
            .map_err(|e: CommandError<PlanError>| anyhow::Error::from(e))?;
        PlanCatalogue::fold(&events)
            .plan(&code)
            .map(|p| p.limits)
            .ok_or_else(|| anyhow!("the tenant's plan {code} is not in the plan catalogue").into())
    }

    /// Refuses one more agent over the plan's limit. The read model must be
    /// current.
    async fn check_agent_quota(&self, tenant: TenantId) -> Result<(), StaffServiceError> {
        let used = self.scoped(tenant, async |c| count_agents(c).await).await?;
        let used = u32::try_from(used).unwrap_or(u32::MAX);
        self.plan_limits(tenant)
            .await?
            .check(LimitName::Agents, used, 1)?;
        Ok(())
    }

    /// Refuses when no active administrator but `staff` would be left. The
    /// read model must be current.
    async fn check_other_admin(
        &self,
        tenant: TenantId,
        staff: StaffId,
    ) -> Result<(), StaffServiceError> {
        let others = self
            .scoped(tenant, async |c| active_admins_except(c, staff.0).await)
            .await?;
        if others == 0 {
            return Err(StaffServiceError::LastAdmin);
        }
        Ok(())
    }

    /// How many agents (active and invited) count against the plan now.
    pub async fn agents_in_use(&self, tenant: TenantId) -> Result<u32, StaffServiceError> {
        self.catch_up(None).await?;
        let used = self.scoped(tenant, async |c| count_agents(c).await).await?;
        Ok(u32::try_from(used).unwrap_or(u32::MAX))
    }

    /// Invites a member by e-mail. `by` is the inviting admin (`None` only
    /// for the platform itself, e.g. an operator's tool; the gateway always
    /// passes the principal). Refused when `by` is not an active admin, the
    /// tenant is suspended, the address is already staff of the tenant, or
    /// an agent would exceed the plan's limit; nothing is written then.
    pub async fn invite(
        &self,
        tenant: TenantId,
        by: Option<StaffId>,
        email: &str,
        name: &str,
        role: Role,
    ) -> Result<Invitation, StaffServiceError> {
        let email = Email::parse("email", email)?;
        let name = Name::parse("name", name, domain::NAME_MAX)?;
        let key = email_key(&email);
        access::ensure_active(&self.runner, tenant).await?;
        if let Some(by) = by {
            self.require_admin(tenant, by, "invite staff").await?;
        }
        self.catch_up(None).await?;
        let taken = || StaffServiceError::EmailTaken { email: key.clone() };
        if self
            .scoped(tenant, async |c| staff_by_email(c, &key).await)
            .await?
            .is_some()
        {
            return Err(taken());
        }
        if role == Role::Agent {
            self.check_agent_quota(tenant).await?;
        }

        let id = StaffId(Uuid::new_v4());
        let (invitation_code, invitation) = secrets::new_token()?;
        let actor = by.map_or_else(|| Actor::system(COMPONENT), staff_actor);
        // The claim makes the address's uniqueness atomic: of two concurrent
        // invitations of one address, the log lets only one claim it.
        let claim = email_stream(&key)?;
        self.runner
            .execute::<EmailClaim>(
                &self.ctx(tenant, actor.clone()),
                &claim,
                &EmailClaimCommand::Claim { staff: id },
            )
            .await
            .map_err(|e| match e {
                CommandError::Domain(EmailTaken { .. }) | CommandError::Conflict { .. } => taken(),
                CommandError::Invalid(e) => StaffServiceError::Unexpected(e.into()),
                CommandError::Unexpected(e) => StaffServiceError::Unexpected(e),
            })?;

        let expires_at = Utc::now() + Duration::days(INVITATION_TTL_DAYS);
        let invited = self
            .run(
                tenant,
                actor.clone(),
                id,
                &StaffCommand::Invite {
                    id,
                    email,
                    name,
                    role,
                    invitation,
                    expires_at,
                    invited_by: by,
                },
            )
            .await;
        if let Err(e) = invited {
            self.release_email(tenant, &claim, id, actor).await;
            return Err(e);
        }
        tracing::info!(tenant_id = %tenant, staff_id = %id, role = role_text(role), "staff member invited");
        Ok(Invitation {
            staff: id,
            invitation_code,
            expires_at,
        })
    }

    /// Frees the address claimed for an invitation that was not recorded.
    async fn release_email(
        &self,
        tenant: TenantId,
        claim: &StreamId,
        staff: StaffId,
        actor: Actor,
    ) {
        if let Err(e) = self
            .runner
            .execute::<EmailClaim>(
                &self.ctx(tenant, actor),
                claim,
                &EmailClaimCommand::Release { staff },
            )
            .await
        {
            tracing::warn!(tenant_id = %tenant, staff_id = %staff, error = %e, "could not release the address of a refused invitation");
        }
    }

    /// Replaces a pending invitation's code (the old one stops working), for
    /// a member who lost it or let it expire. Admins only.
    pub async fn reissue_invitation(
        &self,
        tenant: TenantId,
        by_admin: StaffId,
        staff: StaffId,
    ) -> Result<Invitation, StaffServiceError> {
        access::ensure_active(&self.runner, tenant).await?;
        self.require_admin(tenant, by_admin, "reissue invitations")
            .await?;
        let (invitation_code, invitation) = secrets::new_token()?;
        let expires_at = Utc::now() + Duration::days(INVITATION_TTL_DAYS);
        self.run(
            tenant,
            staff_actor(by_admin),
            staff,
            &StaffCommand::ReissueInvitation {
                invitation,
                expires_at,
            },
        )
        .await?;
        Ok(Invitation {
            staff,
            invitation_code,
            expires_at,
        })
    }

    /// Accepts an invitation with its one-time code and sets the member's
    /// first password (see [`check_password`]).
    pub async fn accept_invitation(
        &self,
        tenant: TenantId,
        staff: StaffId,
        invitation_code: &str,
        password: &str,
    ) -> Result<(), StaffServiceError> {
        check_password("password", password)?;
        access::ensure_active(&self.runner, tenant).await?;
        let invitation = secrets::hash_token(invitation_code)?;
        let state = self.existing(tenant, staff).await?;
        // Ask the member first with a stand-in hash, so that a wrong, used or
        // expired code costs no argon2 work; the real command decides again.
        let stand_in = PasswordHash::parse(
            "password",
            "$argon2id$v=19$m=19456,t=2,p=1$c3RhbmQtaW4$c3RhbmQtaW4",
        )?;
        StaffMember::decide(
            &state,
            &StaffCommand::AcceptInvitation {
                invitation: invitation.clone(),
                password: stand_in,
            },
            Utc::now(),
        )?;
        let clear = password.to_owned();
        let password = off_thread(move || hash_password(&clear)).await??;
        self.run(
            tenant,
            staff_actor(staff),
            staff,
            &StaffCommand::AcceptInvitation {
                invitation,
                password,
            },
        )
        .await?;
        tracing::info!(tenant_id = %tenant, staff_id = %staff, "staff member activated");
        Ok(())
    }

    /// Logs a member in with e-mail and password and starts a session of
    /// [`SESSION_TTL_HOURS`]. An unknown address and a wrong password get the
    /// same answer; each wrong password is recorded, and after
    /// [`domain::FREE_FAILED_LOGINS`] failures in a row the next attempts
    /// must wait ([`StaffServiceError::RateLimited`]).
    pub async fn login(
        &self,
        tenant: TenantId,
        email: &str,
        password: &str,
    ) -> Result<Session, StaffServiceError> {
        access::ensure_active(&self.runner, tenant).await?;
        let email = Email::parse("email", email)?;
        let Some(staff) = self.find_by_email(tenant, &email_key(&email)).await? else {
            let clear = password.to_owned();
            off_thread(move || verify_decoy(&clear)).await?;
            return Err(StaffServiceError::WrongCredentials);
        };
        let state = self.member(tenant, staff).await?;
        let wait = state.login_delay(Utc::now());
        if wait > Duration::zero() {
            return Err(StaffServiceError::RateLimited {
                retry_after_seconds: seconds_up(wait),
            });
        }
        let (stored, clear) = (state.password.clone(), password.to_owned());
        if !off_thread(move || password_matches(stored.as_ref(), &clear)).await?? {
            self.run(
                tenant,
                Actor::system(COMPONENT),
                staff,
                &StaffCommand::RecordFailedLogin,
            )
            .await?;
            return Err(StaffServiceError::WrongCredentials);
        }
        if state.status == Some(StaffStatus::Deactivated) {
            return Err(StaffServiceError::AccountDeactivated);
        }
        let session_id = SessionId(Uuid::new_v4());
        let (token, hash) = secrets::new_token()?;
        let expires_at = Utc::now() + Duration::hours(SESSION_TTL_HOURS);
        self.run(
            tenant,
            staff_actor(staff),
            staff,
            &StaffCommand::StartSession {
                session: session_id,
                token: hash,
                expires_at,
            },
        )
        .await
        .map_err(|e| match e {
            StaffServiceError::Staff(StaffError::Deactivated) => {
                StaffServiceError::AccountDeactivated
            }
            other => other,
        })?;
        Ok(Session {
            session_id,
            staff,
            token,
            expires_at,
        })
    }

    /// Who the session belongs to, if `token` opens it now. A suspended
    /// tenant is refused at once, whatever the session.
    pub async fn authenticate(
        &self,
        tenant: TenantId,
        session: SessionId,
        token: &str,
    ) -> Result<Principal, StaffServiceError> {
        access::ensure_active(&self.runner, tenant).await?;
        let presented = secrets::hash_token(token)?;
        let Some(staff) = self.find_session(tenant, session).await? else {
            return Err(StaffServiceError::SessionInvalid);
        };
        let state = self.member(tenant, staff).await?;
        match state.role {
            Some(role) if state.session_valid(session, &presented, Utc::now()) => {
                Ok(Principal { staff, role })
            }
            _ => Err(StaffServiceError::SessionInvalid),
        }
    }

    /// Ends one of the member's sessions. Ending a session that is already
    /// over succeeds (a repeated logout). Allowed while the tenant is
    /// suspended: ending a session is always safe.
    pub async fn logout(
        &self,
        tenant: TenantId,
        staff: StaffId,
        session: SessionId,
    ) -> Result<(), StaffServiceError> {
        self.run(
            tenant,
            staff_actor(staff),
            staff,
            &StaffCommand::EndSession {
                session,
                reason: SessionEndReason::Logout,
            },
        )
        .await?;
        Ok(())
    }

    /// Ends every open session of `staff` (admins only); returns how many
    /// ended.
    pub async fn revoke_sessions(
        &self,
        tenant: TenantId,
        by_admin: StaffId,
        staff: StaffId,
    ) -> Result<usize, StaffServiceError> {
        access::ensure_active(&self.runner, tenant).await?;
        self.require_admin(tenant, by_admin, "revoke sessions")
            .await?;
        let done = self
            .run(
                tenant,
                staff_actor(by_admin),
                staff,
                &StaffCommand::RevokeAllSessions { by: by_admin },
            )
            .await?;
        Ok(done.events.len())
    }

    /// Deactivates a member (admins only): their sessions end and they may
    /// not log in. Refused for the last active administrator.
    pub async fn deactivate(
        &self,
        tenant: TenantId,
        by_admin: StaffId,
        staff: StaffId,
    ) -> Result<(), StaffServiceError> {
        access::ensure_active(&self.runner, tenant).await?;
        self.require_admin(tenant, by_admin, "deactivate staff")
            .await?;
        let state = self.existing(tenant, staff).await?;
        if state.role == Some(Role::Admin) && state.status == Some(StaffStatus::Active) {
            self.catch_up(None).await?;
            self.check_other_admin(tenant, staff).await?;
        }
        self.run(
            tenant,
            staff_actor(by_admin),
            staff,
            &StaffCommand::Deactivate { by: by_admin },
        )
        .await?;
        Ok(())
    }

    /// Lets a deactivated member in again (admins only), back to active or,
    /// if they never accepted their invitation, to invited. An agent counts
    /// against the plan's limit again.
    pub async fn reactivate(
        &self,
        tenant: TenantId,
        by_admin: StaffId,
        staff: StaffId,
    ) -> Result<(), StaffServiceError> {
        access::ensure_active(&self.runner, tenant).await?;
        self.require_admin(tenant, by_admin, "reactivate staff")
            .await?;
        let state = self.existing(tenant, staff).await?;
        if state.status == Some(StaffStatus::Deactivated) && state.role == Some(Role::Agent) {
            self.catch_up(None).await?;
            self.check_agent_quota(tenant).await?;
        }
        self.run(
            tenant,
            staff_actor(by_admin),
            staff,
            &StaffCommand::Reactivate,
        )
        .await?;
        Ok(())
    }

    /// Changes a member's role (admins only). Demoting the last active
    /// administrator is refused; a new agent counts against the plan.
    pub async fn change_role(
        &self,
        tenant: TenantId,
        by_admin: StaffId,
        staff: StaffId,
        role: Role,
    ) -> Result<(), StaffServiceError> {
        access::ensure_active(&self.runner, tenant).await?;
        self.require_admin(tenant, by_admin, "change roles").await?;
        let state = self.existing(tenant, staff).await?;
        if state.role == Some(role) {
            return Ok(());
        }
        if role == Role::Agent {
            let status = state.status;
            if status != Some(StaffStatus::Deactivated) {
                self.catch_up(None).await?;
                if status == Some(StaffStatus::Active) {
                    self.check_other_admin(tenant, staff).await?;
                }
                self.check_agent_quota(tenant).await?;
            }
        }
        self.run(
            tenant,
            staff_actor(by_admin),
            staff,
            &StaffCommand::ChangeRole { role },
        )
        .await?;
        Ok(())
    }

    /// Every member of the tenant, by address.
    pub async fn list(&self, tenant: TenantId) -> Result<Vec<StaffSummary>, StaffServiceError> {
        self.catch_up(None).await?;
        self.scoped(tenant, async |c| list(c).await).await
    }
}

// --- The read model ---

/// The `staff_directory` projection: the tables `staff` and
/// `staff_sessions`. It reads the events of `staff-<uuid>` streams (the
/// e-mail claims are not its business) and only reflects what they say.
#[derive(Debug, Default, Clone, Copy)]
pub struct StaffDirectory;

impl Projection for StaffDirectory {
    fn name(&self) -> &'static str {
        "staff_directory"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["staff", "staff_sessions"]
    }
}

#[async_trait]
impl Handler for StaffDirectory {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let tenant = tx.tenant();
        for e in events {
            if e.stream.category() != "staff" {
                continue;
            }
            let Some(staff) = e
                .stream
                .as_str()
                .strip_prefix("staff-")
                .and_then(|id| Uuid::parse_str(id).ok())
            else {
                tracing::warn!(tenant_id = %tenant, stream = %e.stream, "a staff stream without a member id; skipped");
                continue;
            };
            let event = StaffEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
            apply(tx.conn().await?, tenant.into_uuid(), staff, &event).await?;
        }
        Ok(())
    }
}

async fn touch(
    conn: &mut PgConnection,
    tenant: Uuid,
    staff: Uuid,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE staff SET updated_at = $3 WHERE tenant_id = $1 AND staff_id = $2")
        .bind(tenant)
        .bind(staff)
        .bind(at)
        .execute(conn)
        .await
        .map(|_| ())
}

async fn apply(
    conn: &mut PgConnection,
    tenant: Uuid,
    staff: Uuid,
    event: &StaffEvent,
) -> sqlx::Result<()> {
    match event {
        StaffEvent::Invited(i) => {
            let inserted = sqlx::query(
                "INSERT INTO staff (tenant_id, staff_id, email, name, role, status, invited_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'invited', $6, $6) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(staff)
            .bind(email_key(&i.email))
            .bind(i.name.as_str())
            .bind(role_text(i.role))
            .bind(i.at)
            .execute(conn)
            .await?
            .rows_affected();
            if inserted == 0 {
                // The service refuses a second member with one address; a
                // stalled projection would be worse than a missing row.
                tracing::warn!(tenant_id = %tenant, staff_id = %staff, "a staff member's address or id is already in the directory; the member is left out of it");
            }
        }
        StaffEvent::InvitationReissued(r) => touch(conn, tenant, staff, r.at).await?,
        StaffEvent::PasswordChanged(p) => touch(conn, tenant, staff, p.at).await?,
        StaffEvent::Activated(a) => {
            sqlx::query(
                "UPDATE staff SET status = 'active', activated_at = $3, updated_at = $3 \
                 WHERE tenant_id = $1 AND staff_id = $2",
            )
            .bind(tenant)
            .bind(staff)
            .bind(a.at)
            .execute(conn)
            .await?;
        }
        StaffEvent::SessionStarted(s) => {
            sqlx::query(
                "INSERT INTO staff_sessions (tenant_id, session_id, staff_id, token_hash, expires_at, started_at) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (tenant_id, session_id) DO NOTHING",
            )
            .bind(tenant)
            .bind(s.session.0)
            .bind(staff)
            .bind(s.token.as_str())
            .bind(s.expires_at)
            .bind(s.at)
            .execute(conn)
            .await?;
        }
        StaffEvent::SessionEnded(s) => {
            sqlx::query("DELETE FROM staff_sessions WHERE tenant_id = $1 AND session_id = $2")
                .bind(tenant)
                .bind(s.session.0)
                .execute(conn)
                .await?;
        }
        StaffEvent::RoleChanged(r) => {
            sqlx::query(
                "UPDATE staff SET role = $3, updated_at = $4 WHERE tenant_id = $1 AND staff_id = $2",
            )
            .bind(tenant)
            .bind(staff)
            .bind(role_text(r.role))
            .bind(r.at)
            .execute(conn)
            .await?;
        }
        StaffEvent::Deactivated(d) => {
            sqlx::query(
                "UPDATE staff SET status = 'deactivated', deactivated_at = $3, updated_at = $3 \
                 WHERE tenant_id = $1 AND staff_id = $2",
            )
            .bind(tenant)
            .bind(staff)
            .bind(d.at)
            .execute(&mut *conn)
            .await?;
            sqlx::query("DELETE FROM staff_sessions WHERE tenant_id = $1 AND staff_id = $2")
                .bind(tenant)
                .bind(staff)
                .execute(conn)
                .await?;
        }
        StaffEvent::Reactivated(r) => {
            sqlx::query(
                "UPDATE staff SET status = CASE WHEN activated_at IS NULL THEN 'invited' ELSE 'active' END, \
                   deactivated_at = NULL, updated_at = $3 WHERE tenant_id = $1 AND staff_id = $2",
            )
            .bind(tenant)
            .bind(staff)
            .bind(r.at)
            .execute(conn)
            .await?;
        }
        // Failed logins matter to the member's stream only.
        StaffEvent::LoginFailed(_) => {}
    }
    Ok(())
}

async fn staff_by_email(conn: &mut PgConnection, key: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT staff_id FROM staff WHERE email = $1")
        .bind(key)
        .fetch_optional(conn)
        .await
}

async fn session_owner(conn: &mut PgConnection, session: SessionId) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar("SELECT staff_id FROM staff_sessions WHERE session_id = $1")
        .bind(session.0)
        .fetch_optional(conn)
        .await
}

async fn count_agents(conn: &mut PgConnection) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM staff WHERE role = 'agent' AND status IN ('active', 'invited')",
    )
    .fetch_one(conn)
    .await
}

async fn active_admins_except(conn: &mut PgConnection, staff: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "SELECT count(*) FROM staff WHERE role = 'admin' AND status = 'active' AND staff_id <> $1",
    )
    .bind(staff)
    .fetch_one(conn)
    .await
}

async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<StaffSummary>> {
    sqlx::query_as(
        "SELECT staff_id, email, name, role, status, invited_at, activated_at, deactivated_at, updated_at \
         FROM staff ORDER BY email",
    )
    .fetch_all(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_policy_names_the_field() {
        assert!(check_password("password", "correct horse battery").is_ok());
        for bad in ["short", &"a".repeat(12), &"ab".repeat(65)] {
            let e = check_password("password", bad).unwrap_err();
            assert_eq!(e.field, "password");
        }
        assert!(check_password("password", &"ñ".repeat(11)).is_err());
        assert!(check_password("password", &format!("{}b", "a".repeat(127))).is_ok());
    }

    #[test]
    fn passwords_are_hashed_with_argon2id_and_verified() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.as_str().starts_with("$argon2id$"));
        assert!(password_matches(Some(&hash), "correct horse battery").unwrap());
        assert!(!password_matches(Some(&hash), "correct horse battere").unwrap());
        assert!(!password_matches(None, "correct horse battery").unwrap());
    }

    #[test]
    fn claims_and_waits_are_shaped() {
        let a = Email::parse("email", "Ana@Lugo.gal").unwrap();
        let b = Email::parse("email", "ana@lugo.GAL").unwrap();
        assert_eq!(email_key(&a), "ana@lugo.gal");
        let stream = email_stream(&email_key(&a)).unwrap();
        assert_eq!(stream, email_stream(&email_key(&b)).unwrap());
        assert_eq!(stream.category(), "staffemail");
        assert!(!stream.as_str().contains("lugo"));
        assert_eq!(seconds_up(Duration::milliseconds(1)), 1);
        assert_eq!(seconds_up(Duration::milliseconds(1500)), 2);
        assert_eq!(seconds_up(Duration::seconds(4)), 4);
        assert_eq!(parse_role("role", "agent").unwrap(), Role::Agent);
        assert_eq!(parse_role("role", "boss").unwrap_err().field, "role");
    }

    #[test]
    fn an_address_is_claimed_once() {
        let now = Utc::now();
        let (a, b) = (StaffId(Uuid::new_v4()), StaffId(Uuid::new_v4()));
        let claimed = EmailClaim::decide(
            &EmailClaimState::default(),
            &EmailClaimCommand::Claim { staff: a },
            now,
        )
        .unwrap();
        let state = EmailClaim::fold(&claimed);
        assert!(EmailClaim::decide(&state, &EmailClaimCommand::Claim { staff: b }, now).is_err());
        assert!(
            EmailClaim::decide(&state, &EmailClaimCommand::Claim { staff: a }, now)
                .unwrap()
                .is_empty()
        );
        assert!(
            EmailClaim::decide(&state, &EmailClaimCommand::Release { staff: b }, now)
                .unwrap()
                .is_empty()
        );
        let released =
            EmailClaim::decide(&state, &EmailClaimCommand::Release { staff: a }, now).unwrap();
        for e in claimed.iter().chain(&released) {
            let back = EmailClaimEvent::from_stored(e.event_type(), 1, &e.to_data()).unwrap();
            assert_eq!(&back, e);
        }
        let mut all = claimed;
        all.extend(released);
        assert_eq!(EmailClaim::fold(&all).owner, None);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let invitation = Invitation {
            staff: StaffId(Uuid::nil()),
            invitation_code: "feedface".repeat(8),
            expires_at: Utc::now(),
        };
        assert!(!format!("{invitation:?}").contains("feedface"));
        let session = Session {
            session_id: SessionId(Uuid::nil()),
            staff: StaffId(Uuid::nil()),
            token: "feedface".repeat(8),
            expires_at: Utc::now(),
        };
        assert!(!format!("{session:?}").contains("feedface"));
    }

    #[test]
    fn messages_are_lowercase_without_a_trailing_period_and_have_codes() {
        let errors = [
            StaffServiceError::Invalid(InvalidValue::new("password", "must be longer")),
            StaffServiceError::Forbidden {
                action: "invite staff",
            },
            StaffServiceError::UnknownMember {
                staff: StaffId(Uuid::nil()),
            },
            StaffServiceError::EmailTaken {
                email: "ana@lugo.gal".into(),
            },
            StaffServiceError::LastAdmin,
            StaffServiceError::Quota(QuotaExceeded {
                limit: LimitName::Agents,
                allowed: 2,
                used: 2,
            }),
            StaffServiceError::WrongCredentials,
            StaffServiceError::AccountDeactivated,
            StaffServiceError::SessionInvalid,
            StaffServiceError::RateLimited {
                retry_after_seconds: 4,
            },
            StaffServiceError::from(StaffError::AlreadyActive),
            StaffServiceError::Conflict,
        ];
        let codes: Vec<&str> = errors.iter().map(StaffServiceError::code).collect();
        assert_eq!(
            codes,
            [
                "VALIDATION",
                "FORBIDDEN",
                "NOT_FOUND",
                "CONFLICT",
                "CONFLICT",
                "QUOTA_EXCEEDED",
                "UNAUTHENTICATED",
                "UNAUTHENTICATED",
                "UNAUTHENTICATED",
                "RATE_LIMITED",
                "CONFLICT",
                "CONFLICT",
            ]
        );
        for e in errors {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
        let limited = StaffServiceError::from(StaffError::TooManyAttempts {
            retry_after: Duration::milliseconds(2500),
        });
        assert_eq!(
            limited.to_string(),
            "too many failed logins; try again in 3 seconds"
        );
    }
}
