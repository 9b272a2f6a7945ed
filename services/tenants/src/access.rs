//! Whether a tenant may be used right now. Suspension takes effect at once:
//! this reads the tenant's own stream (a handful of events), not a read
//! model that could lag behind, so a session or an API key of a tenant
//! suspended a moment ago is refused on its next use.

use ventanilla_eventlog::{CommandRunner, Decider};
use ventanilla_kernel::TenantId;
use ventanilla_postgres::PgEventLog;
use ventanilla_tenants_domain::tenant::{self, Tenant, TenantError, TenantStatus};

/// Why a tenant may not be used. The gateway maps these to the error codes
/// `TENANT_SUSPENDED` and `NOT_FOUND`.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// Suspended by the operator: its data is kept; reactivation restores
    /// access.
    #[error("this organisation's account is suspended ({reason}); contact the platform operator")]
    TenantSuspended {
        /// The operator's reason.
        reason: String,
    },
    /// Closed, or never provisioned.
    #[error("this organisation's account does not exist or is closed")]
    TenantUnavailable,
    /// The log could not be read.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl AccessError {
    /// The stable error code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            AccessError::TenantSuspended { .. } => "TENANT_SUSPENDED",
            AccessError::TenantUnavailable => "NOT_FOUND",
            AccessError::Unexpected(_) => "INTERNAL",
        }
    }
}

/// Succeeds when `tenant` is provisioned and active.
pub async fn ensure_active(
    runner: &CommandRunner<PgEventLog>,
    tenant: TenantId,
) -> Result<(), AccessError> {
    let stream = tenant::stream_id(tenant).map_err(anyhow::Error::from)?;
    let (_, events) = runner
        .load::<Tenant>(tenant, &stream)
        .await
        .map_err(|e: ventanilla_eventlog::CommandError<TenantError>| anyhow::Error::from(e))?;
    match Tenant::fold(&events).status() {
        Some(TenantStatus::Active) => Ok(()),
        Some(TenantStatus::Suspended { reason }) => Err(AccessError::TenantSuspended {
            reason: reason.to_string(),
        }),
        _ => Err(AccessError::TenantUnavailable),
    }
}
