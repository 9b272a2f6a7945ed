//! A tenant's staff member (an admin or an agent) as an event-sourced
//! aggregate, stream `staff-<uuid>` in the tenant: invitation, activation,
//! password, role, sessions, deactivation and the slowing down of repeated
//! failed logins.
//!
//! What this module must not do: see a secret in clear, read a clock, or
//! look beyond one member. The service layer hashes every secret before a
//! command is built — passwords with argon2id ([`PasswordHash`]), random
//! invitation and session tokens with SHA-256 ([`TokenHash`]) — so commands,
//! events and state only ever hold hashes, and their `Debug` output hides
//! even those. Verifying a presented password against the stored argon2id
//! hash is the service's job too (it needs the argon2 crate); the decider
//! only compares token hashes, which are equal strings when they match.
//!
//! Rules that need the whole tenant are the service's:
//! - an e-mail is unique within a tenant: before [`StaffCommand::Invite`] the
//!   service claims the address in a claim stream (like slugs, e.g.
//!   `staffemail-<hash of the lowercased address>`), and the claim maps the
//!   address to the [`StaffId`] at login;
//! - the tenant never loses its last active admin (on
//!   [`StaffCommand::ChangeRole`] and [`StaffCommand::Deactivate`]);
//! - the plan's quota of agents (on [`StaffCommand::Invite`],
//!   [`StaffCommand::ChangeRole`] and [`StaffCommand::Reactivate`]);
//! - a suspended tenant's sessions are refused (`TENANT_SUSPENDED`) even when
//!   [`StaffState::session_valid`] says yes: the member does not know about
//!   its tenant's status.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

use crate::values::{Email, InvalidValue, Name};

/// The longest staff member's name, in characters.
pub const NAME_MAX: usize = 120;

/// How many sessions a member may have open at once; starting one more ends
/// the oldest.
pub const MAX_LIVE_SESSIONS: usize = 20;

/// How many consecutive failed logins are free of any delay.
pub const FREE_FAILED_LOGINS: u32 = 3;

/// The longest wait imposed after failed logins.
pub const MAX_LOGIN_DELAY: Duration = Duration::minutes(15);

/// The stream of one staff member: `staff-<uuid>`.
pub fn stream_id(id: StaffId) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("staff", id.0)
}

ventanilla_kernel::uuid_newtype!(
    /// Identifies a staff member within the platform.
    StaffId
);

ventanilla_kernel::uuid_newtype!(
    /// Identifies one login session of a staff member.
    SessionId
);

/// What a staff member may do in the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Sets the tenant up: organisation, staff, API keys, portal.
    Admin,
    /// Works the inbox.
    Agent,
}

/// Compares two byte strings in time that depends only on their lengths, so
/// that comparing secrets' hashes leaks nothing through timing.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The argon2id hash of a password, as a PHC string (`$argon2id$v=19$…`),
/// computed by the service layer. Its `Debug` prints `PasswordHash(…)`, never
/// the value, and it has no `Display`, so it does not end up in logs.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordHash(String);

impl PasswordHash {
    /// Wraps a PHC string for `field`; refuses anything that is not an
    /// argon2id hash (so a password in clear cannot be passed by mistake).
    pub fn parse(field: &'static str, phc: &str) -> Result<Self, InvalidValue> {
        let ok = phc.starts_with("$argon2id$")
            && phc.len() <= 512
            && !phc.chars().any(|c| c.is_whitespace() || c.is_control());
        if !ok {
            return Err(InvalidValue::new(
                field,
                "must be an argon2id hash ($argon2id$…)",
            ));
        }
        Ok(Self(phc.to_owned()))
    }

    /// The PHC string, to verify a presented password against.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for PasswordHash {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for PasswordHash {}

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(…)")
    }
}

/// The SHA-256 digest of a random token (an invitation, a session, an API
/// key's secret) as 64 lowercase hex characters, computed by the service
/// layer. Equality runs in constant time. Its `Debug` prints `TokenHash(…)`,
/// never the value, and it has no `Display`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(String);

impl TokenHash {
    /// Wraps a hex SHA-256 digest for `field` (upper case is lowercased).
    pub fn parse(field: &'static str, hex: &str) -> Result<Self, InvalidValue> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidValue::new(
                field,
                "must be a SHA-256 digest as 64 hexadecimal characters",
            ));
        }
        Ok(Self(hex.to_ascii_lowercase()))
    }

    /// The digest as hex, to store or look up.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for TokenHash {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for TokenHash {}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(…)")
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEndReason {
    /// The member logged out.
    Logout,
    /// An admin (or the member, elsewhere) revoked it.
    Revoked,
    /// It outlived its expiry.
    Expired,
    /// A newer session pushed it out of the [`MAX_LIVE_SESSIONS`].
    Evicted,
    /// The member was deactivated.
    Deactivated,
}

/// Where a member is in their life in the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffStatus {
    /// Invited; has not accepted the invitation yet (no password).
    Invited,
    /// Has a password and may log in.
    Active,
    /// May not log in, and has no sessions.
    Deactivated,
}

/// What can be asked of a staff member.
#[derive(Debug, Clone, PartialEq)]
pub enum StaffCommand {
    /// Invites a new member. The service first claims `email` in the tenant
    /// (unique addresses) and checks the plan's agent quota; the invitation
    /// token is shown once (a link, or a code printed by the operator's CLI
    /// for the first admin) and only its hash travels here.
    Invite {
        /// The new member's id.
        id: StaffId,
        /// Their address, unique in the tenant (checked by the service).
        email: Email,
        /// Their name, at most [`NAME_MAX`] characters.
        name: Name,
        /// What they will be allowed to do.
        role: Role,
        /// The hash of the one-time invitation token.
        invitation: TokenHash,
        /// When the invitation stops working; must be in the future.
        expires_at: DateTime<Utc>,
        /// The admin who invites; `None` for the operator's provisioning of
        /// the tenant's first admin.
        invited_by: Option<StaffId>,
    },
    /// Replaces the invitation token (the old one stops working), while the
    /// member has not accepted yet.
    ReissueInvitation {
        /// The hash of the new one-time token.
        invitation: TokenHash,
        /// When it stops working; must be in the future.
        expires_at: DateTime<Utc>,
    },
    /// Accepts the invitation with the presented token (hashed by the
    /// service) and sets the first password. One-time: once accepted, the
    /// same token is refused with [`StaffError::AlreadyActive`].
    AcceptInvitation {
        /// The hash of the token the person presented.
        invitation: TokenHash,
        /// The argon2id hash of their chosen password.
        password: PasswordHash,
    },
    /// Sets a new password (active members only). The service verifies the
    /// old one first and may revoke the other sessions afterwards.
    ChangePassword {
        /// The argon2id hash of the new password.
        password: PasswordHash,
    },
    /// Records a successful login (the service verified the password against
    /// [`StaffState::password`]). Resets the failed-login counter; ends
    /// expired sessions (reason `Expired`) and, when [`MAX_LIVE_SESSIONS`]
    /// are still open, the oldest (reason `Evicted`) first.
    StartSession {
        /// The new session's id.
        session: SessionId,
        /// The hash of the session token handed to the client.
        token: TokenHash,
        /// When the session stops working; must be in the future.
        expires_at: DateTime<Utc>,
    },
    /// Ends one session. Idempotent: an unknown or already ended session is
    /// a no-op, so a repeated logout succeeds.
    EndSession {
        /// The session.
        session: SessionId,
        /// Why.
        reason: SessionEndReason,
    },
    /// Ends every open session of the member (admin-forced), reason
    /// `Revoked`. With no session open it changes nothing.
    RevokeAllSessions {
        /// The admin who forces it.
        by: StaffId,
    },
    /// Changes the role. Setting the current role is a no-op. The service
    /// refuses demoting the last active admin and exceeding the agent quota.
    ChangeRole {
        /// The new role.
        role: Role,
    },
    /// Deactivates the member: ends every open session (reason
    /// `Deactivated`) and refuses logins from then on. Works on invited
    /// members too (it withdraws the invitation). The service refuses
    /// deactivating the last active admin.
    Deactivate {
        /// The admin who does it.
        by: StaffId,
    },
    /// Lets a deactivated member in again: back to active if they had
    /// accepted their invitation, else back to invited. The service checks
    /// the agent quota.
    Reactivate,
    /// Records a failed login (wrong password). Accepted in any status, so
    /// the service may count failures against invited or deactivated members
    /// without revealing their status. Refused while the delay of the
    /// previous failures has not passed (the attempt should not have been
    /// evaluated at all).
    RecordFailedLogin,
}

/// The member was invited.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invited {
    /// The member's id.
    pub id: StaffId,
    /// Their address.
    pub email: Email,
    /// Their name.
    pub name: Name,
    /// Their role.
    pub role: Role,
    /// The hash of the invitation token.
    pub invitation: TokenHash,
    /// When the invitation stops working.
    pub expires_at: DateTime<Utc>,
    /// Who invited them; `None` for the operator's provisioning.
    pub invited_by: Option<StaffId>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The invitation token was replaced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InvitationReissued {
    /// The hash of the new token.
    pub invitation: TokenHash,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The member accepted the invitation and set a password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Activated {
    /// The argon2id hash of the password.
    pub password: PasswordHash,
    /// When.
    pub at: DateTime<Utc>,
}

/// The member changed their password.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasswordChanged {
    /// The argon2id hash of the new password.
    pub password: PasswordHash,
    /// When.
    pub at: DateTime<Utc>,
}

/// The member logged in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionStarted {
    /// The session.
    pub session: SessionId,
    /// The hash of its token.
    pub token: TokenHash,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A session ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEnded {
    /// The session.
    pub session: SessionId,
    /// Why.
    pub reason: SessionEndReason,
    /// The admin who forced it (revocation of all sessions, deactivation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<StaffId>,
    /// When.
    pub at: DateTime<Utc>,
}

/// The member's role changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoleChanged {
    /// The new role.
    pub role: Role,
    /// When.
    pub at: DateTime<Utc>,
}

/// The member was deactivated (after their sessions ended).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deactivated {
    /// The admin who did it.
    pub by: StaffId,
    /// When.
    pub at: DateTime<Utc>,
}

/// The member was let in again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reactivated {
    /// When.
    pub at: DateTime<Utc>,
}

/// A login failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoginFailed {
    /// When.
    pub at: DateTime<Utc>,
    /// How many logins have failed in a row, this one included.
    pub consecutive: u32,
}

/// What a staff member's stream records.
#[derive(Debug, Clone, PartialEq)]
pub enum StaffEvent {
    /// `staff.invited`
    Invited(Invited),
    /// `staff.invitation_reissued`
    InvitationReissued(InvitationReissued),
    /// `staff.activated`
    Activated(Activated),
    /// `staff.password_changed`
    PasswordChanged(PasswordChanged),
    /// `staff.session_started`
    SessionStarted(SessionStarted),
    /// `staff.session_ended`
    SessionEnded(SessionEnded),
    /// `staff.role_changed`
    RoleChanged(RoleChanged),
    /// `staff.deactivated`
    Deactivated(Deactivated),
    /// `staff.reactivated`
    Reactivated(Reactivated),
    /// `staff.login_failed`
    LoginFailed(LoginFailed),
}

/// Reads a stored payload of schema version 1.
fn payload<T: DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    ventanilla_eventlog::decode_payload(event_type, schema_version, 1, data)
}

impl DomainEvent for StaffEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Invited(_) => "staff.invited",
            Self::InvitationReissued(_) => "staff.invitation_reissued",
            Self::Activated(_) => "staff.activated",
            Self::PasswordChanged(_) => "staff.password_changed",
            Self::SessionStarted(_) => "staff.session_started",
            Self::SessionEnded(_) => "staff.session_ended",
            Self::RoleChanged(_) => "staff.role_changed",
            Self::Deactivated(_) => "staff.deactivated",
            Self::Reactivated(_) => "staff.reactivated",
            Self::LoginFailed(_) => "staff.login_failed",
        }
    }

    fn to_data(&self) -> Value {
        match self {
            Self::Invited(p) => serde_json::to_value(p),
            Self::InvitationReissued(p) => serde_json::to_value(p),
            Self::Activated(p) => serde_json::to_value(p),
            Self::PasswordChanged(p) => serde_json::to_value(p),
            Self::SessionStarted(p) => serde_json::to_value(p),
            Self::SessionEnded(p) => serde_json::to_value(p),
            Self::RoleChanged(p) => serde_json::to_value(p),
            Self::Deactivated(p) => serde_json::to_value(p),
            Self::Reactivated(p) => serde_json::to_value(p),
            Self::LoginFailed(p) => serde_json::to_value(p),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        let (t, v, d) = (event_type, schema_version, data);
        Ok(match event_type {
            "staff.invited" => Self::Invited(payload(t, v, d)?),
            "staff.invitation_reissued" => Self::InvitationReissued(payload(t, v, d)?),
            "staff.activated" => Self::Activated(payload(t, v, d)?),
            "staff.password_changed" => Self::PasswordChanged(payload(t, v, d)?),
            "staff.session_started" => Self::SessionStarted(payload(t, v, d)?),
            "staff.session_ended" => Self::SessionEnded(payload(t, v, d)?),
            "staff.role_changed" => Self::RoleChanged(payload(t, v, d)?),
            "staff.deactivated" => Self::Deactivated(payload(t, v, d)?),
            "staff.reactivated" => Self::Reactivated(payload(t, v, d)?),
            "staff.login_failed" => Self::LoginFailed(payload(t, v, d)?),
            other => {
                return Err(UpcastError {
                    event_type: other.to_owned(),
                    schema_version,
                    reason: "not a staff event type".to_owned(),
                });
            }
        })
    }
}

/// Whole seconds in `d`, rounded up (for messages).
fn seconds_up(d: &Duration) -> i64 {
    let ms = d.num_milliseconds();
    ms / 1000 + i64::from(ms % 1000 > 0)
}

/// Why a staff command was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StaffError {
    /// A value is out of bounds (e.g. a name longer than [`NAME_MAX`]).
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// `Invite` on a member that already exists.
    #[error("this staff member has already been invited")]
    AlreadyInvited,
    /// The member does not exist.
    #[error("there is no such staff member; invite them first")]
    NotInvited,
    /// The invitation was already accepted.
    #[error("the invitation has already been accepted; log in instead")]
    AlreadyActive,
    /// The presented invitation token is not the current one.
    #[error("the invitation code is not valid; use the latest link or code sent")]
    InvitationMismatch,
    /// The invitation is past its expiry.
    #[error("the invitation expired at {expired_at}; ask an admin for a new one")]
    InvitationExpired {
        /// When it expired.
        expired_at: DateTime<Utc>,
    },
    /// The member has not accepted their invitation yet.
    #[error("the staff member has not accepted the invitation yet")]
    NotActive,
    /// The member is deactivated.
    #[error("the staff member is deactivated; an admin must reactivate them first")]
    Deactivated,
    /// `Deactivate` on a deactivated member.
    #[error("the staff member is already deactivated")]
    AlreadyDeactivated,
    /// `Reactivate` on a member who is not deactivated.
    #[error("the staff member is not deactivated")]
    NotDeactivated,
    /// A new session reuses the id of an open one.
    #[error("a session with this id is already open; use a new session id")]
    SessionAlreadyStarted,
    /// An invitation or session would expire at or before `now`.
    #[error("the expiry {expires_at} must be in the future")]
    ExpiryNotInFuture {
        /// The expiry given.
        expires_at: DateTime<Utc>,
    },
    /// Too many failed logins in a row: the next attempt must wait.
    #[error(
        "too many failed logins; try again in {} seconds",
        seconds_up(.retry_after)
    )]
    TooManyAttempts {
        /// How long until an attempt is evaluated again.
        retry_after: Duration,
    },
}

/// What a staff member's stream says about them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct StaffState {
    /// Their id; `None` while the stream is empty.
    pub id: Option<StaffId>,
    /// Where they are; `None` while the stream is empty.
    pub status: Option<StaffStatus>,
    /// Their address.
    pub email: Option<Email>,
    /// Their name.
    pub name: Option<Name>,
    /// Their role.
    pub role: Option<Role>,
    /// Who invited them (`None` also for the operator's provisioning).
    pub invited_by: Option<StaffId>,
    /// The hash of the pending invitation token and its expiry; cleared on
    /// acceptance (the token is one-time).
    pub invitation: Option<(TokenHash, DateTime<Utc>)>,
    /// The argon2id hash of the password, once the invitation is accepted:
    /// the service verifies a login against it.
    pub password: Option<PasswordHash>,
    /// The open sessions: token hash and expiry. A session past its expiry
    /// stays here (refused by [`Self::session_valid`]) until it is ended.
    pub sessions: BTreeMap<SessionId, (TokenHash, DateTime<Utc>)>,
    /// How many logins have failed in a row since the last success.
    pub failed_logins: u32,
    /// When the last of them happened.
    pub last_failed_login: Option<DateTime<Utc>>,
    /// The open sessions, oldest first (to evict the oldest).
    session_order: VecDeque<SessionId>,
}

impl StaffState {
    /// The full wait imposed after `consecutive` failed logins: none for
    /// fewer than [`FREE_FAILED_LOGINS`], then 1 s, 2 s, 4 s… doubling up to
    /// [`MAX_LOGIN_DELAY`] (`min(2^(n-3) s, 15 min)`).
    pub fn backoff(consecutive: u32) -> Duration {
        match consecutive.checked_sub(FREE_FAILED_LOGINS) {
            None => Duration::zero(),
            Some(exp) if exp >= 10 => MAX_LOGIN_DELAY,
            Some(exp) => Duration::seconds(1i64 << exp).min(MAX_LOGIN_DELAY),
        }
    }

    /// How long a login attempt at `now` must still wait: zero for fewer
    /// than [`FREE_FAILED_LOGINS`] failures in a row, or once
    /// [`Self::backoff`] has passed since the last failure; otherwise the
    /// time remaining until it has passed (the `retry_after` to give). The
    /// service refuses an attempt while this is not zero, before checking
    /// the password.
    pub fn login_delay(&self, now: DateTime<Utc>) -> Duration {
        let Some(last) = self.last_failed_login else {
            return Duration::zero();
        };
        let until = last.checked_add_signed(Self::backoff(self.failed_logins));
        match until {
            Some(until) if now < until => until - now,
            _ => Duration::zero(),
        }
    }

    /// Whether `token` opens `session` at `now`: the session is open, its
    /// token hash matches, it has not expired, and the member is active.
    /// (The tenant's suspension is checked by the service.)
    pub fn session_valid(&self, session: SessionId, token: &TokenHash, now: DateTime<Utc>) -> bool {
        self.status == Some(StaffStatus::Active)
            && self
                .sessions
                .get(&session)
                .is_some_and(|(hash, expires)| hash == token && now <= *expires)
    }

    /// The open sessions, oldest first.
    pub fn sessions_oldest_first(&self) -> impl Iterator<Item = SessionId> + '_ {
        self.session_order.iter().copied()
    }

    /// Refuses a login-related command while the failure delay runs.
    fn check_delay(&self, now: DateTime<Utc>) -> Result<(), StaffError> {
        let wait = self.login_delay(now);
        if wait > Duration::zero() {
            return Err(StaffError::TooManyAttempts { retry_after: wait });
        }
        Ok(())
    }

    /// The status, or [`StaffError::NotInvited`] for an empty stream.
    fn existing(&self) -> Result<StaffStatus, StaffError> {
        self.status.ok_or(StaffError::NotInvited)
    }

    /// The status, refused unless active.
    fn active(&self) -> Result<(), StaffError> {
        match self.existing()? {
            StaffStatus::Active => Ok(()),
            StaffStatus::Invited => Err(StaffError::NotActive),
            StaffStatus::Deactivated => Err(StaffError::Deactivated),
        }
    }
}

/// Refuses a name longer than `max` characters (commands carry parsed
/// names, but the bound belongs to this aggregate).
fn check_name(field: &'static str, name: &Name, max: usize) -> Result<(), InvalidValue> {
    let chars = name.as_str().chars().count();
    if chars > max {
        return Err(InvalidValue::new(
            field,
            format!("must be at most {max} characters, got {chars}"),
        ));
    }
    Ok(())
}

/// Refuses an expiry that is not after `now`.
fn check_future(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), StaffError> {
    if expires_at <= now {
        return Err(StaffError::ExpiryNotInFuture { expires_at });
    }
    Ok(())
}

/// The staff member aggregate.
pub struct StaffMember;

impl Decider for StaffMember {
    type State = StaffState;
    type Command = StaffCommand;
    type Event = StaffEvent;
    type Error = StaffError;

    fn decide(
        state: &StaffState,
        command: &StaffCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<StaffEvent>, StaffError> {
        match command {
            StaffCommand::Invite {
                id,
                email,
                name,
                role,
                invitation,
                expires_at,
                invited_by,
            } => {
                if state.status.is_some() {
                    return Err(StaffError::AlreadyInvited);
                }
                check_name("name", name, NAME_MAX)?;
                check_future(*expires_at, now)?;
                Ok(vec![StaffEvent::Invited(Invited {
                    id: *id,
                    email: email.clone(),
                    name: name.clone(),
                    role: *role,
                    invitation: invitation.clone(),
                    expires_at: *expires_at,
                    invited_by: *invited_by,
                    at: now,
                })])
            }

            StaffCommand::ReissueInvitation {
                invitation,
                expires_at,
            } => {
                match state.existing()? {
                    StaffStatus::Invited => {}
                    StaffStatus::Active => return Err(StaffError::AlreadyActive),
                    StaffStatus::Deactivated => return Err(StaffError::Deactivated),
                }
                check_future(*expires_at, now)?;
                Ok(vec![StaffEvent::InvitationReissued(InvitationReissued {
                    invitation: invitation.clone(),
                    expires_at: *expires_at,
                    at: now,
                })])
            }

            StaffCommand::AcceptInvitation {
                invitation,
                password,
            } => {
                match state.existing()? {
                    StaffStatus::Invited => {}
                    StaffStatus::Active => return Err(StaffError::AlreadyActive),
                    StaffStatus::Deactivated => return Err(StaffError::Deactivated),
                }
                let Some((expected, expires_at)) = &state.invitation else {
                    return Err(StaffError::InvitationMismatch);
                };
                // The token first: who does not hold it learns nothing more.
                if expected != invitation {
                    return Err(StaffError::InvitationMismatch);
                }
                if now > *expires_at {
                    return Err(StaffError::InvitationExpired {
                        expired_at: *expires_at,
                    });
                }
                Ok(vec![StaffEvent::Activated(Activated {
                    password: password.clone(),
                    at: now,
                })])
            }

            StaffCommand::ChangePassword { password } => {
                state.active()?;
                Ok(vec![StaffEvent::PasswordChanged(PasswordChanged {
                    password: password.clone(),
                    at: now,
                })])
            }

            StaffCommand::StartSession {
                session,
                token,
                expires_at,
            } => {
                state.active()?;
                state.check_delay(now)?;
                if state.sessions.contains_key(session) {
                    return Err(StaffError::SessionAlreadyStarted);
                }
                check_future(*expires_at, now)?;
                let ended = |session: SessionId, reason| {
                    StaffEvent::SessionEnded(SessionEnded {
                        session,
                        reason,
                        by: None,
                        at: now,
                    })
                };
                let (expired, open): (Vec<SessionId>, Vec<SessionId>) =
                    state.sessions_oldest_first().partition(|s| {
                        state
                            .sessions
                            .get(s)
                            .is_some_and(|(_, expires)| now > *expires)
                    });
                let evict = (open.len() + 1).saturating_sub(MAX_LIVE_SESSIONS);
                let mut events: Vec<StaffEvent> = expired
                    .into_iter()
                    .map(|s| ended(s, SessionEndReason::Expired))
                    .chain(
                        open.into_iter()
                            .take(evict)
                            .map(|s| ended(s, SessionEndReason::Evicted)),
                    )
                    .collect();
                events.push(StaffEvent::SessionStarted(SessionStarted {
                    session: *session,
                    token: token.clone(),
                    expires_at: *expires_at,
                    at: now,
                }));
                Ok(events)
            }

            StaffCommand::EndSession { session, reason } => {
                if !state.sessions.contains_key(session) {
                    return Ok(vec![]);
                }
                Ok(vec![StaffEvent::SessionEnded(SessionEnded {
                    session: *session,
                    reason: *reason,
                    by: None,
                    at: now,
                })])
            }

            StaffCommand::RevokeAllSessions { by } => {
                state.existing()?;
                Ok(end_all(state, SessionEndReason::Revoked, *by, now))
            }

            StaffCommand::ChangeRole { role } => {
                state.existing()?;
                if state.role == Some(*role) {
                    return Ok(vec![]);
                }
                Ok(vec![StaffEvent::RoleChanged(RoleChanged {
                    role: *role,
                    at: now,
                })])
            }

            StaffCommand::Deactivate { by } => {
                if state.existing()? == StaffStatus::Deactivated {
                    return Err(StaffError::AlreadyDeactivated);
                }
                let mut events = end_all(state, SessionEndReason::Deactivated, *by, now);
                events.push(StaffEvent::Deactivated(Deactivated { by: *by, at: now }));
                Ok(events)
            }

            StaffCommand::Reactivate => {
                if state.existing()? != StaffStatus::Deactivated {
                    return Err(StaffError::NotDeactivated);
                }
                Ok(vec![StaffEvent::Reactivated(Reactivated { at: now })])
            }

            StaffCommand::RecordFailedLogin => {
                state.existing()?;
                state.check_delay(now)?;
                Ok(vec![StaffEvent::LoginFailed(LoginFailed {
                    at: now,
                    consecutive: state.failed_logins.saturating_add(1),
                })])
            }
        }
    }

    fn evolve(mut state: StaffState, event: &StaffEvent) -> StaffState {
        match event {
            StaffEvent::Invited(e) => {
                state.id = Some(e.id);
                state.status = Some(StaffStatus::Invited);
                state.email = Some(e.email.clone());
                state.name = Some(e.name.clone());
                state.role = Some(e.role);
                state.invited_by = e.invited_by;
                state.invitation = Some((e.invitation.clone(), e.expires_at));
            }
            StaffEvent::InvitationReissued(e) => {
                state.invitation = Some((e.invitation.clone(), e.expires_at));
            }
            StaffEvent::Activated(e) => {
                state.status = Some(StaffStatus::Active);
                state.invitation = None;
                state.password = Some(e.password.clone());
            }
            StaffEvent::PasswordChanged(e) => {
                state.password = Some(e.password.clone());
            }
            StaffEvent::SessionStarted(e) => {
                state
                    .sessions
                    .insert(e.session, (e.token.clone(), e.expires_at));
                state.session_order.push_back(e.session);
                state.failed_logins = 0;
                state.last_failed_login = None;
            }
            StaffEvent::SessionEnded(e) => {
                state.sessions.remove(&e.session);
                state.session_order.retain(|s| *s != e.session);
            }
            StaffEvent::RoleChanged(e) => {
                state.role = Some(e.role);
            }
            StaffEvent::Deactivated(_) => {
                state.status = Some(StaffStatus::Deactivated);
                state.sessions.clear();
                state.session_order.clear();
            }
            StaffEvent::Reactivated(_) => {
                state.status = Some(if state.password.is_some() {
                    StaffStatus::Active
                } else {
                    StaffStatus::Invited
                });
            }
            StaffEvent::LoginFailed(e) => {
                state.failed_logins = e.consecutive;
                state.last_failed_login = Some(e.at);
            }
        }
        state
    }
}

/// Ends every open session, oldest first, for `reason`, forced by `by`.
fn end_all(
    state: &StaffState,
    reason: SessionEndReason,
    by: StaffId,
    now: DateTime<Utc>,
) -> Vec<StaffEvent> {
    state
        .sessions_oldest_first()
        .map(|session| {
            StaffEvent::SessionEnded(SessionEnded {
                session,
                reason,
                by: Some(by),
                at: now,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;
    use ventanilla_eventlog::testing::given;

    /// The default instant of `given`: 2026-01-15 10:00 UTC.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
    }

    fn hours(h: i64) -> DateTime<Utc> {
        now() + Duration::hours(h)
    }

    fn secs(s: i64) -> DateTime<Utc> {
        now() + Duration::seconds(s)
    }

    fn id() -> StaffId {
        StaffId(Uuid::from_u128(1))
    }

    fn admin() -> StaffId {
        StaffId(Uuid::from_u128(99))
    }

    fn sid(n: u128) -> SessionId {
        SessionId(Uuid::from_u128(0x5000 + n))
    }

    fn token(c: char) -> TokenHash {
        TokenHash::parse("token", &c.to_string().repeat(64)).unwrap()
    }

    fn password(s: &str) -> PasswordHash {
        PasswordHash::parse("password", &format!("$argon2id$v=19$m=19456,t=2,p=1${s}")).unwrap()
    }

    fn invite_cmd() -> StaffCommand {
        StaffCommand::Invite {
            id: id(),
            email: Email::parse("email", "ana@lugo.gal").unwrap(),
            name: Name::parse("name", "Ana Souto", NAME_MAX).unwrap(),
            role: Role::Agent,
            invitation: token('a'),
            expires_at: hours(72),
            invited_by: Some(admin()),
        }
    }

    fn invited() -> StaffEvent {
        invited_at(now() - Duration::hours(1))
    }

    fn invited_at(at: DateTime<Utc>) -> StaffEvent {
        StaffEvent::Invited(Invited {
            id: id(),
            email: Email::parse("email", "ana@lugo.gal").unwrap(),
            name: Name::parse("name", "Ana Souto", NAME_MAX).unwrap(),
            role: Role::Agent,
            invitation: token('a'),
            expires_at: at + Duration::hours(72),
            invited_by: Some(admin()),
            at,
        })
    }

    fn activated() -> StaffEvent {
        StaffEvent::Activated(Activated {
            password: password("first"),
            at: now() - Duration::minutes(30),
        })
    }

    fn started(n: u128, at: DateTime<Utc>, expires_at: DateTime<Utc>) -> StaffEvent {
        StaffEvent::SessionStarted(SessionStarted {
            session: sid(n),
            token: token('c'),
            expires_at,
            at,
        })
    }

    fn ended(n: u128, reason: SessionEndReason, by: Option<StaffId>) -> StaffEvent {
        StaffEvent::SessionEnded(SessionEnded {
            session: sid(n),
            reason,
            by,
            at: now(),
        })
    }

    fn failed(at: DateTime<Utc>, consecutive: u32) -> StaffEvent {
        StaffEvent::LoginFailed(LoginFailed { at, consecutive })
    }

    fn deactivated() -> StaffEvent {
        StaffEvent::Deactivated(Deactivated {
            by: admin(),
            at: now() - Duration::minutes(5),
        })
    }

    fn start_cmd(n: u128) -> StaffCommand {
        StaffCommand::StartSession {
            session: sid(n),
            token: token('d'),
            expires_at: hours(8),
        }
    }

    fn started_now(n: u128) -> StaffEvent {
        StaffEvent::SessionStarted(SessionStarted {
            session: sid(n),
            token: token('d'),
            expires_at: hours(8),
            at: now(),
        })
    }

    // --- Invite ---

    #[test]
    fn invite_records_the_invitation() {
        given::<StaffMember>(vec![])
            .when(&invite_cmd())
            .then(vec![invited_at(now())]);
    }

    #[test]
    fn the_operator_invites_the_first_admin() {
        let StaffCommand::Invite {
            id,
            email,
            name,
            invitation,
            expires_at,
            ..
        } = invite_cmd()
        else {
            unreachable!()
        };
        given::<StaffMember>(vec![])
            .when(&StaffCommand::Invite {
                id,
                email: email.clone(),
                name: name.clone(),
                role: Role::Admin,
                invitation: invitation.clone(),
                expires_at,
                invited_by: None,
            })
            .then(vec![StaffEvent::Invited(Invited {
                id,
                email,
                name,
                role: Role::Admin,
                invitation,
                expires_at,
                invited_by: None,
                at: now(),
            })]);
    }

    #[test]
    fn inviting_an_existing_member_is_refused() {
        given::<StaffMember>(vec![invited()])
            .when(&invite_cmd())
            .then_error(|e| *e == StaffError::AlreadyInvited);
        given::<StaffMember>(vec![invited(), activated(), deactivated()])
            .when(&invite_cmd())
            .then_error(|e| *e == StaffError::AlreadyInvited);
    }

    #[test]
    fn invite_refuses_an_over_long_name() {
        let StaffCommand::Invite {
            id,
            email,
            invitation,
            expires_at,
            ..
        } = invite_cmd()
        else {
            unreachable!()
        };
        let long = Name::parse("name", &"x".repeat(NAME_MAX + 1), 1000).unwrap();
        given::<StaffMember>(vec![])
            .when(&StaffCommand::Invite {
                id,
                email,
                name: long,
                role: Role::Agent,
                invitation,
                expires_at,
                invited_by: None,
            })
            .then_error(|e| {
                matches!(e, StaffError::Invalid(v) if v.field == "name")
                    && e.to_string() == "name: must be at most 120 characters, got 121"
            });
    }

    #[test]
    fn invite_refuses_an_expiry_in_the_past() {
        let StaffCommand::Invite {
            id,
            email,
            name,
            invitation,
            ..
        } = invite_cmd()
        else {
            unreachable!()
        };
        given::<StaffMember>(vec![])
            .when(&StaffCommand::Invite {
                id,
                email,
                name,
                role: Role::Agent,
                invitation,
                expires_at: now(),
                invited_by: None,
            })
            .then_error(|e| matches!(e, StaffError::ExpiryNotInFuture { .. }));
    }

    // --- ReissueInvitation ---

    fn reissue_cmd() -> StaffCommand {
        StaffCommand::ReissueInvitation {
            invitation: token('b'),
            expires_at: hours(48),
        }
    }

    #[test]
    fn reissue_replaces_the_token() {
        given::<StaffMember>(vec![invited()])
            .when(&reissue_cmd())
            .then(vec![StaffEvent::InvitationReissued(InvitationReissued {
                invitation: token('b'),
                expires_at: hours(48),
                at: now(),
            })]);
    }

    #[test]
    fn reissue_is_refused_unless_invited() {
        given::<StaffMember>(vec![])
            .when(&reissue_cmd())
            .then_error(|e| *e == StaffError::NotInvited);
        given::<StaffMember>(vec![invited(), activated()])
            .when(&reissue_cmd())
            .then_error(|e| *e == StaffError::AlreadyActive);
        given::<StaffMember>(vec![invited(), deactivated()])
            .when(&reissue_cmd())
            .then_error(|e| *e == StaffError::Deactivated);
    }

    #[test]
    fn reissue_refuses_an_expiry_in_the_past() {
        given::<StaffMember>(vec![invited()])
            .when(&StaffCommand::ReissueInvitation {
                invitation: token('b'),
                expires_at: hours(-1),
            })
            .then_error(|e| matches!(e, StaffError::ExpiryNotInFuture { expires_at } if *expires_at == hours(-1)));
    }

    // --- AcceptInvitation ---

    fn accept(c: char) -> StaffCommand {
        StaffCommand::AcceptInvitation {
            invitation: token(c),
            password: password("chosen"),
        }
    }

    #[test]
    fn accepting_activates_with_the_password() {
        given::<StaffMember>(vec![invited()])
            .when(&accept('a'))
            .then(vec![StaffEvent::Activated(Activated {
                password: password("chosen"),
                at: now(),
            })]);
    }

    #[test]
    fn accepting_with_another_token_is_refused() {
        given::<StaffMember>(vec![invited()])
            .when(&accept('f'))
            .then_error(|e| *e == StaffError::InvitationMismatch);
    }

    #[test]
    fn a_reissued_invitation_replaces_the_old_token() {
        let reissued = StaffEvent::InvitationReissued(InvitationReissued {
            invitation: token('b'),
            expires_at: hours(48),
            at: now(),
        });
        given::<StaffMember>(vec![invited(), reissued.clone()])
            .when(&accept('a'))
            .then_error(|e| *e == StaffError::InvitationMismatch);
        given::<StaffMember>(vec![invited(), reissued])
            .when(&accept('b'))
            .then(vec![StaffEvent::Activated(Activated {
                password: password("chosen"),
                at: now(),
            })]);
    }

    #[test]
    fn accepting_an_expired_invitation_is_refused() {
        let expiry = hours(71);
        given::<StaffMember>(vec![invited()])
            .at(expiry + Duration::seconds(1))
            .when(&accept('a'))
            .then_error(|e| *e == StaffError::InvitationExpired { expired_at: expiry });
        // At the very instant of expiry it still works.
        assert!(
            given::<StaffMember>(vec![invited()])
                .at(expiry)
                .when(&accept('a'))
                .into_result()
                .is_ok()
        );
    }

    #[test]
    fn the_invitation_is_one_time() {
        given::<StaffMember>(vec![invited(), activated()])
            .when(&accept('a'))
            .then_error(|e| *e == StaffError::AlreadyActive);
        let state = StaffMember::fold(&[invited(), activated()]);
        assert_eq!(state.invitation, None);
    }

    #[test]
    fn accepting_is_refused_for_the_unknown_and_the_deactivated() {
        given::<StaffMember>(vec![])
            .when(&accept('a'))
            .then_error(|e| *e == StaffError::NotInvited);
        given::<StaffMember>(vec![invited(), deactivated()])
            .when(&accept('a'))
            .then_error(|e| *e == StaffError::Deactivated);
    }

    // --- ChangePassword ---

    fn change_password() -> StaffCommand {
        StaffCommand::ChangePassword {
            password: password("new"),
        }
    }

    #[test]
    fn an_active_member_changes_their_password() {
        given::<StaffMember>(vec![invited(), activated()])
            .when(&change_password())
            .then(vec![StaffEvent::PasswordChanged(PasswordChanged {
                password: password("new"),
                at: now(),
            })]);
        let state = StaffMember::fold(&[
            invited(),
            activated(),
            StaffEvent::PasswordChanged(PasswordChanged {
                password: password("new"),
                at: now(),
            }),
        ]);
        assert_eq!(state.password, Some(password("new")));
    }

    #[test]
    fn changing_the_password_is_for_active_members_only() {
        given::<StaffMember>(vec![])
            .when(&change_password())
            .then_error(|e| *e == StaffError::NotInvited);
        given::<StaffMember>(vec![invited()])
            .when(&change_password())
            .then_error(|e| *e == StaffError::NotActive);
        given::<StaffMember>(vec![invited(), activated(), deactivated()])
            .when(&change_password())
            .then_error(|e| *e == StaffError::Deactivated);
    }

    // --- StartSession ---

    #[test]
    fn login_starts_a_session() {
        given::<StaffMember>(vec![invited(), activated()])
            .when(&start_cmd(1))
            .then(vec![started_now(1)]);
    }

    #[test]
    fn login_is_refused_unless_active() {
        given::<StaffMember>(vec![])
            .when(&start_cmd(1))
            .then_error(|e| *e == StaffError::NotInvited);
        given::<StaffMember>(vec![invited()])
            .when(&start_cmd(1))
            .then_error(|e| *e == StaffError::NotActive);
        given::<StaffMember>(vec![invited(), activated(), deactivated()])
            .when(&start_cmd(1))
            .then_error(|e| *e == StaffError::Deactivated);
    }

    #[test]
    fn login_refuses_a_reused_session_id_and_a_past_expiry() {
        given::<StaffMember>(vec![
            invited(),
            activated(),
            started(1, hours(-1), hours(7)),
        ])
        .when(&start_cmd(1))
        .then_error(|e| *e == StaffError::SessionAlreadyStarted);
        given::<StaffMember>(vec![invited(), activated()])
            .when(&StaffCommand::StartSession {
                session: sid(1),
                token: token('d'),
                expires_at: now(),
            })
            .then_error(|e| matches!(e, StaffError::ExpiryNotInFuture { .. }));
    }

    #[test]
    fn the_twenty_first_session_evicts_the_oldest() {
        let mut history = vec![invited(), activated()];
        // Started in an order unlike their ids: the oldest is session 20.
        history.push(started(20, hours(-3), hours(5)));
        for n in 1..=19 {
            history.push(started(n, hours(-2), hours(6)));
        }
        given::<StaffMember>(history)
            .when(&start_cmd(21))
            .then(vec![
                ended(20, SessionEndReason::Evicted, None),
                started_now(21),
            ]);
    }

    #[test]
    fn nineteen_open_sessions_leave_room_for_one_more() {
        let mut history = vec![invited(), activated()];
        for n in 1..=19 {
            history.push(started(n, hours(-2), hours(6)));
        }
        given::<StaffMember>(history)
            .when(&start_cmd(21))
            .then(vec![started_now(21)]);
    }

    #[test]
    fn login_ends_expired_sessions_before_counting() {
        let mut history = vec![invited(), activated()];
        history.push(started(1, hours(-10), hours(-2))); // expired
        for n in 2..=20 {
            history.push(started(n, hours(-1), hours(6)));
        }
        given::<StaffMember>(history)
            .when(&start_cmd(21))
            .then(vec![
                ended(1, SessionEndReason::Expired, None),
                started_now(21),
            ]);
    }

    #[test]
    fn login_is_slowed_down_after_failures_and_resets_the_counter() {
        let history = vec![
            invited(),
            activated(),
            failed(secs(-3), 1),
            failed(secs(-2), 2),
            failed(secs(-1), 3),
            failed(secs(0), 4),
        ];
        // 4 failures: wait 2 s after the last one.
        given::<StaffMember>(history.clone())
            .at(secs(1))
            .when(&start_cmd(1))
            .then_error(|e| {
                *e == StaffError::TooManyAttempts {
                    retry_after: Duration::seconds(1),
                }
            });
        let events = given::<StaffMember>(history.clone())
            .at(secs(2))
            .when(&start_cmd(1))
            .into_result()
            .unwrap();
        let mut all = history;
        all.extend(events);
        let state = StaffMember::fold(&all);
        assert_eq!(state.failed_logins, 0);
        assert_eq!(state.last_failed_login, None);
        assert_eq!(state.login_delay(secs(2)), Duration::zero());
    }

    // --- EndSession ---

    #[test]
    fn logout_ends_the_session() {
        let state_events = vec![invited(), activated(), started(1, hours(-1), hours(7))];
        given::<StaffMember>(state_events.clone())
            .when(&StaffCommand::EndSession {
                session: sid(1),
                reason: SessionEndReason::Logout,
            })
            .then(vec![ended(1, SessionEndReason::Logout, None)]);
        let mut all = state_events;
        all.push(ended(1, SessionEndReason::Logout, None));
        let state = StaffMember::fold(&all);
        assert!(state.sessions.is_empty());
        assert_eq!(state.sessions_oldest_first().count(), 0);
    }

    #[test]
    fn logout_is_idempotent() {
        let logout = StaffCommand::EndSession {
            session: sid(1),
            reason: SessionEndReason::Logout,
        };
        given::<StaffMember>(vec![
            invited(),
            activated(),
            started(1, hours(-1), hours(7)),
            ended(1, SessionEndReason::Logout, None),
        ])
        .when(&logout)
        .then(vec![]);
        given::<StaffMember>(vec![invited(), activated()])
            .when(&logout)
            .then(vec![]);
        given::<StaffMember>(vec![]).when(&logout).then(vec![]);
    }

    // --- RevokeAllSessions ---

    #[test]
    fn an_admin_revokes_every_session() {
        given::<StaffMember>(vec![
            invited(),
            activated(),
            started(2, hours(-2), hours(7)),
            started(1, hours(-1), hours(7)),
        ])
        .when(&StaffCommand::RevokeAllSessions { by: admin() })
        .then(vec![
            ended(2, SessionEndReason::Revoked, Some(admin())),
            ended(1, SessionEndReason::Revoked, Some(admin())),
        ]);
    }

    #[test]
    fn revoking_without_sessions_changes_nothing_and_needs_a_member() {
        given::<StaffMember>(vec![invited(), activated()])
            .when(&StaffCommand::RevokeAllSessions { by: admin() })
            .then(vec![]);
        given::<StaffMember>(vec![])
            .when(&StaffCommand::RevokeAllSessions { by: admin() })
            .then_error(|e| *e == StaffError::NotInvited);
    }

    // --- ChangeRole ---

    #[test]
    fn the_role_changes() {
        given::<StaffMember>(vec![invited(), activated()])
            .when(&StaffCommand::ChangeRole { role: Role::Admin })
            .then(vec![StaffEvent::RoleChanged(RoleChanged {
                role: Role::Admin,
                at: now(),
            })]);
    }

    #[test]
    fn setting_the_same_role_is_a_no_op_and_needs_a_member() {
        given::<StaffMember>(vec![invited()])
            .when(&StaffCommand::ChangeRole { role: Role::Agent })
            .then(vec![]);
        given::<StaffMember>(vec![])
            .when(&StaffCommand::ChangeRole { role: Role::Admin })
            .then_error(|e| *e == StaffError::NotInvited);
    }

    // --- Deactivate ---

    #[test]
    fn deactivation_ends_sessions_first() {
        given::<StaffMember>(vec![
            invited(),
            activated(),
            started(1, hours(-2), hours(7)),
            started(2, hours(-1), hours(7)),
        ])
        .when(&StaffCommand::Deactivate { by: admin() })
        .then(vec![
            ended(1, SessionEndReason::Deactivated, Some(admin())),
            ended(2, SessionEndReason::Deactivated, Some(admin())),
            StaffEvent::Deactivated(Deactivated {
                by: admin(),
                at: now(),
            }),
        ]);
    }

    #[test]
    fn an_invitation_can_be_withdrawn_by_deactivating() {
        given::<StaffMember>(vec![invited()])
            .when(&StaffCommand::Deactivate { by: admin() })
            .then(vec![StaffEvent::Deactivated(Deactivated {
                by: admin(),
                at: now(),
            })]);
    }

    #[test]
    fn deactivation_is_refused_twice_and_for_the_unknown() {
        given::<StaffMember>(vec![invited(), activated(), deactivated()])
            .when(&StaffCommand::Deactivate { by: admin() })
            .then_error(|e| *e == StaffError::AlreadyDeactivated);
        given::<StaffMember>(vec![])
            .when(&StaffCommand::Deactivate { by: admin() })
            .then_error(|e| *e == StaffError::NotInvited);
    }

    // --- Reactivate ---

    #[test]
    fn reactivation_restores_the_previous_status() {
        given::<StaffMember>(vec![invited(), activated(), deactivated()])
            .when(&StaffCommand::Reactivate)
            .then(vec![StaffEvent::Reactivated(Reactivated { at: now() })]);
        let back = StaffEvent::Reactivated(Reactivated { at: now() });
        let active = StaffMember::fold(&[invited(), activated(), deactivated(), back.clone()]);
        assert_eq!(active.status, Some(StaffStatus::Active));
        let pending = StaffMember::fold(&[invited(), deactivated(), back]);
        assert_eq!(pending.status, Some(StaffStatus::Invited));
    }

    #[test]
    fn reactivation_is_refused_unless_deactivated() {
        given::<StaffMember>(vec![invited(), activated()])
            .when(&StaffCommand::Reactivate)
            .then_error(|e| *e == StaffError::NotDeactivated);
        given::<StaffMember>(vec![invited()])
            .when(&StaffCommand::Reactivate)
            .then_error(|e| *e == StaffError::NotDeactivated);
        given::<StaffMember>(vec![])
            .when(&StaffCommand::Reactivate)
            .then_error(|e| *e == StaffError::NotInvited);
    }

    // --- RecordFailedLogin ---

    #[test]
    fn failed_logins_are_counted() {
        given::<StaffMember>(vec![invited(), activated()])
            .when(&StaffCommand::RecordFailedLogin)
            .then(vec![failed(now(), 1)]);
        given::<StaffMember>(vec![
            invited(),
            activated(),
            failed(secs(-5), 1),
            failed(secs(-4), 2),
        ])
        .when(&StaffCommand::RecordFailedLogin)
        .then(vec![failed(now(), 3)]);
    }

    #[test]
    fn failed_logins_are_refused_during_the_delay() {
        let history = vec![
            invited(),
            activated(),
            failed(secs(-3), 1),
            failed(secs(-2), 2),
            failed(secs(-1), 3),
        ];
        // The third failure imposes 1 s: at its instant, 1 s remains.
        given::<StaffMember>(history.clone())
            .at(secs(-1))
            .when(&StaffCommand::RecordFailedLogin)
            .then_error(|e| {
                *e == StaffError::TooManyAttempts {
                    retry_after: Duration::seconds(1),
                }
            });
        given::<StaffMember>(history)
            .at(secs(0))
            .when(&StaffCommand::RecordFailedLogin)
            .then(vec![failed(secs(0), 4)]);
    }

    #[test]
    fn failed_logins_count_whatever_the_status() {
        given::<StaffMember>(vec![invited()])
            .when(&StaffCommand::RecordFailedLogin)
            .then(vec![failed(now(), 1)]);
        given::<StaffMember>(vec![invited(), activated(), deactivated()])
            .when(&StaffCommand::RecordFailedLogin)
            .then(vec![failed(now(), 1)]);
    }

    #[test]
    fn failed_logins_need_a_member() {
        given::<StaffMember>(vec![])
            .when(&StaffCommand::RecordFailedLogin)
            .then_error(|e| *e == StaffError::NotInvited);
    }

    // --- State ---

    #[test]
    fn the_login_delay_doubles_up_to_fifteen_minutes() {
        let after = |n: u32| {
            let mut events = vec![invited(), activated()];
            events.extend((1..=n).map(|i| failed(now(), i)));
            StaffMember::fold(&events)
        };
        assert_eq!(after(0).login_delay(now()), Duration::zero());
        assert_eq!(after(2).login_delay(now()), Duration::zero());
        assert_eq!(after(3).login_delay(now()), Duration::seconds(1));
        assert_eq!(after(4).login_delay(now()), Duration::seconds(2));
        assert_eq!(after(5).login_delay(now()), Duration::seconds(4));
        assert_eq!(after(12).login_delay(now()), Duration::seconds(512));
        assert_eq!(after(13).login_delay(now()), Duration::minutes(15));
        assert_eq!(after(40).login_delay(now()), Duration::minutes(15));
        assert_eq!(StaffState::backoff(u32::MAX), Duration::minutes(15));
        // It counts from the last failure, and is zero once passed.
        assert_eq!(after(4).login_delay(secs(1)), Duration::seconds(1));
        assert_eq!(after(4).login_delay(secs(2)), Duration::zero());
        assert_eq!(after(40).login_delay(secs(15 * 60)), Duration::zero());
        let message = StaffError::TooManyAttempts {
            retry_after: Duration::milliseconds(1500),
        }
        .to_string();
        assert_eq!(message, "too many failed logins; try again in 2 seconds");
    }

    #[test]
    fn sessions_are_valid_only_while_open_matching_unexpired_and_active() {
        let open = vec![invited(), activated(), started(1, hours(-1), hours(7))];
        let state = StaffMember::fold(&open);
        assert!(state.session_valid(sid(1), &token('c'), now()));
        assert!(state.session_valid(sid(1), &token('c'), hours(7)));
        assert!(!state.session_valid(sid(1), &token('c'), hours(7) + Duration::seconds(1)));
        assert!(!state.session_valid(sid(1), &token('e'), now()));
        assert!(!state.session_valid(sid(2), &token('c'), now()));

        let mut ended_history = open.clone();
        ended_history.push(ended(1, SessionEndReason::Logout, None));
        assert!(!StaffMember::fold(&ended_history).session_valid(sid(1), &token('c'), now()));

        let mut gone = open;
        gone.push(ended(1, SessionEndReason::Deactivated, Some(admin())));
        gone.push(deactivated());
        let state = StaffMember::fold(&gone);
        assert!(!state.session_valid(sid(1), &token('c'), now()));
        assert_eq!(state.status, Some(StaffStatus::Deactivated));
    }

    #[test]
    fn the_state_knows_the_member() {
        let state = StaffMember::fold(&[invited(), activated()]);
        assert_eq!(state.id, Some(id()));
        assert_eq!(
            state.email.as_ref().map(Email::as_str),
            Some("ana@lugo.gal")
        );
        assert_eq!(state.name.as_ref().map(Name::as_str), Some("Ana Souto"));
        assert_eq!(state.role, Some(Role::Agent));
        assert_eq!(state.invited_by, Some(admin()));
        assert_eq!(state.password, Some(password("first")));
    }

    // --- Values ---

    #[test]
    fn hashes_never_show_in_debug() {
        let t = token('a');
        let p = password("s3cret");
        assert_eq!(format!("{t:?}"), "TokenHash(…)");
        assert_eq!(format!("{p:?}"), "PasswordHash(…)");
        let debug = format!("{:?}", StaffMember::fold(&[invited(), activated()]));
        assert!(
            !debug.contains("aaaa") && !debug.contains("argon2id"),
            "{debug}"
        );
        let debug = format!("{:?}", accept('a'));
        assert!(
            !debug.contains("aaaa") && !debug.contains("s3cret"),
            "{debug}"
        );
    }

    #[test]
    fn hashes_are_checked_for_shape() {
        assert_eq!(
            TokenHash::parse("t", &"AB".repeat(32)).unwrap().as_str(),
            "ab".repeat(32)
        );
        assert!(TokenHash::parse("t", "abc").is_err());
        assert!(TokenHash::parse("t", &"g".repeat(64)).is_err());
        assert_eq!(TokenHash::parse("token", "x").unwrap_err().field, "token");
        assert!(PasswordHash::parse("p", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA").is_ok());
        assert!(PasswordHash::parse("p", "hunter2").is_err());
        assert!(PasswordHash::parse("p", "$argon2i$v=19$x").is_err());
        assert!(PasswordHash::parse("p", "$argon2id$ with space").is_err());
        assert!(token('a') != token('b'));
    }

    #[test]
    fn ids_roles_and_streams() {
        assert_eq!(
            stream_id(id()).unwrap().as_str(),
            "staff-00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(serde_json::to_value(Role::Admin).unwrap(), "admin");
        assert_eq!(serde_json::to_value(Role::Agent).unwrap(), "agent");
        assert_eq!(
            serde_json::to_value(SessionEndReason::Evicted).unwrap(),
            "evicted"
        );
        assert_eq!(
            serde_json::to_value(id()).unwrap(),
            "00000000-0000-0000-0000-000000000001"
        );
    }

    #[test]
    fn every_event_survives_storage() {
        let events = vec![
            invited(),
            StaffEvent::InvitationReissued(InvitationReissued {
                invitation: token('b'),
                expires_at: hours(48),
                at: now(),
            }),
            activated(),
            StaffEvent::PasswordChanged(PasswordChanged {
                password: password("new"),
                at: now(),
            }),
            started_now(1),
            ended(1, SessionEndReason::Logout, None),
            ended(2, SessionEndReason::Revoked, Some(admin())),
            StaffEvent::RoleChanged(RoleChanged {
                role: Role::Admin,
                at: now(),
            }),
            deactivated(),
            StaffEvent::Reactivated(Reactivated { at: now() }),
            failed(now(), 7),
        ];
        for event in events {
            let data = event.to_data();
            assert!(data.is_object(), "{}", event.event_type());
            let back =
                StaffEvent::from_stored(event.event_type(), event.schema_version(), &data).unwrap();
            assert_eq!(back, event);
        }
        assert!(StaffEvent::from_stored("staff.vanished", 1, &serde_json::json!({})).is_err());
        assert!(StaffEvent::from_stored("staff.reactivated", 1, &serde_json::json!({})).is_err());
        assert!(StaffEvent::from_stored("staff.reactivated", 2, &invited().to_data()).is_err());
        let e = StaffEvent::from_stored("staff.vanished", 1, &serde_json::json!({})).unwrap_err();
        assert_eq!(e.event_type, "staff.vanished");
    }

    #[test]
    fn error_messages_are_lowercase_without_a_trailing_period() {
        let errors = [
            StaffError::AlreadyInvited,
            StaffError::NotInvited,
            StaffError::AlreadyActive,
            StaffError::InvitationMismatch,
            StaffError::InvitationExpired { expired_at: now() },
            StaffError::NotActive,
            StaffError::Deactivated,
            StaffError::AlreadyDeactivated,
            StaffError::NotDeactivated,
            StaffError::SessionAlreadyStarted,
            StaffError::ExpiryNotInFuture { expires_at: now() },
            StaffError::TooManyAttempts {
                retry_after: Duration::seconds(3),
            },
        ];
        for e in errors {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }
}
