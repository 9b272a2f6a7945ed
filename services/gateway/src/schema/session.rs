//! Staff sessions: `login` (the one mutation an anonymous caller may run)
//! and `logout`.
//!
//! `login` names the organisation by its slug (the only argument in the
//! schema that names a tenant: before logging in there is no principal to
//! take it from) and returns the session token to send as
//! `Authorization: Bearer <token>`.
//!
//! What this module must not do: check passwords or keep sessions (the
//! tenants service does), or log a password or a token.

use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_tenants::operator::OperatorError;

use super::Services;
use super::access::{self, services};
use crate::auth::session_token;
use crate::error::{invalid, service_error};

/// A staff session just started.
#[derive(SimpleObject)]
pub struct Session {
    /// The token to send as `Authorization: Bearer <token>`. Shown once;
    /// keep it secret.
    pub token: String,
    /// When it stops working (log in again then).
    pub expires_at: DateTime<Utc>,
    /// The staff member logged in.
    pub staff_id: Uuid,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("token", &"…")
            .field("expires_at", &self.expires_at)
            .field("staff_id", &self.staff_id)
            .finish()
    }
}

/// The organisation a caller without a principal names by its slug (the
/// `tenant` argument of `login` and `acceptInvitation`).
pub(super) async fn named_tenant(services: &Services, slug: &str) -> Result<TenantId> {
    let found = services.operator.show(slug).await.map_err(|e| match e {
        // The service names the slug; here it is the `tenant` argument.
        OperatorError::Invalid(v) => invalid("tenant", format!("tenant: {}", v.problem)),
        other => service_error(&other),
    })?;
    Ok(TenantId::from_uuid(found.tenant_id))
}

/// Logs `email` of `tenant` in: the session and its token.
pub(super) async fn start_session(
    services: &Services,
    tenant: TenantId,
    email: &str,
    password: &str,
) -> Result<Session> {
    let session = services
        .staff
        .login(tenant, email, password)
        .await
        .map_err(|e| service_error(&e))?;
    Ok(Session {
        token: session_token(tenant, session.session_id, &session.token),
        expires_at: session.expires_at,
        staff_id: session.staff.0,
    })
}

/// Logging in and out.
#[derive(Default)]
pub struct SessionMutation;

#[Object]
impl SessionMutation {
    /// Logs a staff member of the organisation `tenant` (its slug, e.g.
    /// `lugo`) in. A wrong address and a wrong password get the same
    /// answer; repeated failures make the next attempts wait
    /// (`RATE_LIMITED`).
    async fn login(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        email: String,
        password: String,
    ) -> Result<Session> {
        let services = services(ctx)?;
        let tenant = named_tenant(services, &tenant).await?;
        start_session(services, tenant, &email, &password).await
    }

    /// Ends the session this request came with. Staff only.
    async fn logout(&self, ctx: &Context<'_>) -> Result<bool> {
        let by = access::staff_reader(ctx)?;
        services(ctx)?
            .staff
            .logout(by.tenant, by.staff, by.session)
            .await
            .map_err(|e| service_error(&e))?;
        Ok(true)
    }
}
