//! Who is calling: the `Authorization: Bearer <token>` header turned into a
//! [`Principal`], once per request, before the query runs.
//!
//! A token is, in this order:
//! - the operator token (`gateway.operator_token`), compared in constant
//!   time; the operator has no tenant;
//! - a staff session token, `vs1.<tenant>.<session>.<secret>` as the `login`
//!   mutation returns it, checked by the tenants service
//!   ([`Staff::authenticate`]: the session's own stream, so a logout or an
//!   expiry counts at once);
//! - otherwise an API key (`vk_…`), checked by [`ApiKeys::authenticate`].
//!
//! No header is the anonymous principal (it may only log in). A token that
//! is none of these, or no longer valid, is `UNAUTHENTICATED`; a suspended
//! tenant's is `TENANT_SUSPENDED`. The tenant of every request comes from
//! here and nowhere else.
//!
//! What this module must not do: decide what a principal may do (each field
//! does, and the services again), or log a token.

use std::sync::Arc;

use axum::http::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_tenancy::memo::TenantMemo;
use ventanilla_tenants::api_keys::{ApiKeys, ApiKeysError, KeyPrincipal};
use ventanilla_tenants::staff::Staff;
use ventanilla_tenants_domain::staff::{Role, SessionId, StaffId};

use crate::error::{ServiceError, code, coded, service_error};

/// How a staff session token starts (its version: a later format gets
/// another prefix).
pub const SESSION_TOKEN_PREFIX: &str = "vs1";

/// Who is calling, resolved once per request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No credentials: may only log in.
    Anonymous,
    /// The operator of the install: manages tenants, belongs to none.
    Operator,
    /// A logged-in staff member of one tenant.
    Staff(StaffPrincipal),
    /// An integrator's API key of one tenant.
    ApiKey(KeyPrincipal),
}

/// A staff member with a valid session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaffPrincipal {
    /// Their tenant (from the token, confirmed by the session).
    pub tenant: TenantId,
    /// Who.
    pub staff: StaffId,
    /// Admin or agent.
    pub role: Role,
    /// The session the request came with (what `logout` ends).
    pub session: SessionId,
}

impl Principal {
    /// The tenant the principal acts in, if any.
    pub fn tenant(&self) -> Option<TenantId> {
        match self {
            Principal::Staff(s) => Some(s.tenant),
            Principal::ApiKey(k) => Some(k.tenant),
            Principal::Anonymous | Principal::Operator => None,
        }
    }
}

/// The token a staff member presents: the tenant, the session and its
/// secret in one string (`vs1.<tenant>.<session>.<secret>`).
pub fn session_token(tenant: TenantId, session: SessionId, secret: &str) -> String {
    format!("{SESSION_TOKEN_PREFIX}.{tenant}.{session}.{secret}")
}

/// A parsed staff session token.
struct SessionToken<'a> {
    tenant: TenantId,
    session: SessionId,
    secret: &'a str,
}

fn parse_session_token(token: &str) -> Option<SessionToken<'_>> {
    let mut parts = token.split('.');
    let (Some(SESSION_TOKEN_PREFIX), Some(tenant), Some(session), Some(secret), None) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    Some(SessionToken {
        tenant: TenantId::from_uuid(Uuid::parse_str(tenant).ok()?),
        session: SessionId(Uuid::parse_str(session).ok()?),
        secret,
    })
}

/// Resolves principals; shared by every request.
pub struct Authenticator {
    operator_token: Option<SecretString>,
    staff: Arc<Staff>,
    api_keys: Arc<ApiKeys>,
    /// Principals already checked, by their token's SHA-256 (a process
    /// following the log only: see [`crate::live`]).
    memo: Option<PrincipalMemo>,
}

/// Principals a gateway process remembers between requests, by their
/// token's SHA-256, forgotten when the log shows a change to their tenant,
/// its staff or its keys ([`ventanilla_tenancy::memo`]).
pub type PrincipalMemo = TenantMemo<[u8; 32], Principal>;

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("operator_token", &self.operator_token.as_ref().map(|_| "…"))
            .finish_non_exhaustive()
    }
}

fn unauthenticated(message: &str) -> async_graphql::Error {
    coded(code::UNAUTHENTICATED, message)
}

/// A refusal from a service while authenticating: a tenant that does not
/// exist (a forged token) is an invalid token, not a missing object.
fn refused(e: &impl ServiceError, message: &str) -> async_graphql::Error {
    match e.code() {
        code::NOT_FOUND => unauthenticated(message),
        _ => service_error(e),
    }
}

impl Authenticator {
    /// Checks tokens with these services; `operator_token` unset (or empty)
    /// means no operator access.
    pub fn new(
        operator_token: Option<SecretString>,
        staff: Arc<Staff>,
        api_keys: Arc<ApiKeys>,
    ) -> Self {
        Self {
            operator_token: operator_token.filter(|t| !t.expose_secret().trim().is_empty()),
            staff,
            api_keys,
            memo: None,
        }
    }

    /// Remembers the principals it checks in `memo`, which the caller keeps
    /// told of the log's events.
    #[must_use]
    pub fn remembering(mut self, memo: PrincipalMemo) -> Self {
        self.memo = Some(memo);
        self
    }

    /// The principal of a request with this `Authorization` header,
    /// remembered when a memo is kept: a session or a key checked once is
    /// not read again until the log shows a change to its tenant, its staff
    /// or its keys, or [`ventanilla_tenancy::memo::MEMO_TTL`] passes.
    pub async fn principal(
        &self,
        header: Option<&HeaderValue>,
    ) -> Result<Principal, async_graphql::Error> {
        let Some(memo) = &self.memo else {
            return self.check(header).await;
        };
        let Some(key) = header.map(|h| <[u8; 32]>::from(Sha256::digest(h.as_bytes()))) else {
            return Ok(Principal::Anonymous);
        };
        if let Some((_, principal)) = memo.get(&key) {
            return Ok(principal);
        }
        let epoch = memo.epoch();
        let principal = self.check(header).await?;
        if let Some(tenant) = principal.tenant() {
            memo.put(epoch, tenant, key, principal.clone());
        }
        Ok(principal)
    }

    /// The principal of a request with this `Authorization` header, as
    /// the services say now.
    async fn check(&self, header: Option<&HeaderValue>) -> Result<Principal, async_graphql::Error> {
        let Some(header) = header else {
            return Ok(Principal::Anonymous);
        };
        let token = header
            .to_str()
            .ok()
            .and_then(|h| {
                let (scheme, token) = h.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                unauthenticated(
                    "the Authorization header must be `Bearer <token>`: a session token from the login mutation, or an API key",
                )
            })?;

        if let Some(expected) = &self.operator_token
            && bool::from(token.as_bytes().ct_eq(expected.expose_secret().as_bytes()))
        {
            return Ok(Principal::Operator);
        }

        if token
            .strip_prefix(SESSION_TOKEN_PREFIX)
            .is_some_and(|rest| rest.starts_with('.'))
        {
            const BAD_SESSION: &str = "the session token is not valid or has expired; log in again";
            let parsed = parse_session_token(token).ok_or_else(|| unauthenticated(BAD_SESSION))?;
            let principal = self
                .staff
                .authenticate(parsed.tenant, parsed.session, parsed.secret)
                .await
                .map_err(|e| refused(&e, BAD_SESSION))?;
            return Ok(Principal::Staff(StaffPrincipal {
                tenant: parsed.tenant,
                staff: principal.staff,
                role: principal.role,
                session: parsed.session,
            }));
        }

        const BAD_KEY: &str = "the token is neither a valid session nor a valid API key; log in again, or check the key was copied whole";
        match self.api_keys.authenticate(token).await {
            Ok(key) => Ok(Principal::ApiKey(key)),
            // Not a key's shape either: say what tokens are accepted.
            Err(ApiKeysError::Malformed) => Err(unauthenticated(BAD_KEY)),
            Err(e) => Err(refused(&e, BAD_KEY)),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn session_tokens_round_trip_and_garbage_is_not_one() {
        let tenant = TenantId::from_uuid(Uuid::new_v4());
        let session = SessionId(Uuid::new_v4());
        let token = session_token(tenant, session, "abc123");
        let parsed = parse_session_token(&token).unwrap();
        assert_eq!(
            (parsed.tenant, parsed.session, parsed.secret),
            (tenant, session, "abc123")
        );
        for bad in [
            "vs1",
            "vs1.x.y.z",
            &format!("vs2.{tenant}.{session}.abc"),
            &format!("{token}.more"),
        ] {
            assert!(parse_session_token(bad).is_none(), "{bad}");
        }
    }
}
