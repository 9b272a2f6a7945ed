//! What the other services know of the tenants service: read from the
//! tenants service's own events in the log (streams `tenant-<id>`,
//! `directory`, `schedule`, `staff-<id>`), folded with the tenants domain's
//! deciders — never from the tenants service's tables, never by calling it.
//! Those streams are a handful of events each, and reading them is strongly
//! consistent: a suspension, a deactivated agent or an official who stopped
//! taking questions counts from the next request.
//!
//! A process that follows the log may let [`Tenancy`] remember working
//! roles between requests ([`Tenancy::remembering`], [`memo`]): then a
//! change counts from the moment that process reads it in the log.
//!
//! Also here: the arithmetic of response-time clocks on the tenant's
//! business hours ([`Calendar`]).

use chrono::{DateTime, Datelike, Duration, Utc};
use ventanilla_eventlog::{CommandRunner, Decider};
use ventanilla_kernel::TenantId;
use ventanilla_postgres::PgEventLog;
use ventanilla_tenants_domain::organisation::{self as directory, Directory, DirectoryState};
use ventanilla_tenants_domain::plan::{self, PlanCatalogue, PlanLimits};
use ventanilla_tenants_domain::schedule::{self, Schedule, ScheduleState};
use ventanilla_tenants_domain::staff::{self, Role, StaffId, StaffMember, StaffStatus};
use ventanilla_tenants_domain::tenant::{self, Tenant, TenantStatus};

pub mod memo;

use memo::TenantMemo;

/// Why a tenant's facts could not be read, or the tenant may not be used.
#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// The tenant is suspended (`TENANT_SUSPENDED`).
    #[error("this organisation's account is suspended ({reason}); contact the platform operator")]
    TenantSuspended {
        /// Why, as the operator said.
        reason: String,
    },
    /// The tenant does not exist or is closed (`NOT_FOUND`).
    #[error("this organisation's account does not exist or is closed")]
    TenantUnavailable,
    /// The log could not be read (`INTERNAL`).
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

impl From<ventanilla_kernel::StreamIdError> for TenancyError {
    fn from(e: ventanilla_kernel::StreamIdError) -> Self {
        TenancyError::Unexpected(e.into())
    }
}

/// The tenants service's facts, read from its streams.
#[derive(Clone)]
pub struct Tenancy {
    runner: CommandRunner<PgEventLog>,
    roles: Option<RoleMemo>,
}

/// Working roles a process remembers ([`Tenancy::remembering`]).
pub type RoleMemo = TenantMemo<(TenantId, StaffId), Role>;

/// An active tenant, as the tickets service needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveTenant {
    /// The letters of its references (`LUGO-2026-000001`): its slug's
    /// letters, upper-cased, at most 8 (`TK` when it has fewer than 2).
    pub reference_prefix: String,
    /// Its display name ("Concello de Lugo").
    pub name: String,
    /// Its default language (`es`, `gl`…).
    pub default_language: String,
    /// Its contact address.
    pub contact_email: String,
}

/// A staff member of the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// Their role.
    pub role: Role,
    /// Whether they may work (accepted the invitation, not deactivated).
    pub active: bool,
}

impl Tenancy {
    /// Reads through `runner`'s log.
    pub fn new(runner: CommandRunner<PgEventLog>) -> Self {
        Self {
            runner,
            roles: None,
        }
    }

    /// Remembers working roles in `memo`, which the caller must tell of the
    /// log's events ([`TenantMemo::saw`]): only a process following the log
    /// may.
    #[must_use]
    pub fn remembering(mut self, memo: RoleMemo) -> Self {
        self.roles = Some(memo);
        self
    }

    async fn fold<D: Decider>(
        &self,
        tenant: TenantId,
        stream: &ventanilla_kernel::StreamId,
    ) -> Result<D::State, TenancyError> {
        let (_, events) = self
            .runner
            .load::<D>(tenant, stream)
            .await
            .map_err(|e| TenancyError::Unexpected(anyhow::anyhow!("reading {stream}: {e}")))?;
        Ok(D::fold(&events))
    }

    /// The tenant, if it is active; `TENANT_SUSPENDED` or `NOT_FOUND`
    /// otherwise.
    pub async fn active_tenant(&self, tenant: TenantId) -> Result<ActiveTenant, TenancyError> {
        let state = self
            .fold::<Tenant>(tenant, &tenant::stream_id(tenant)?)
            .await?;
        let Some(details) = state.tenant else {
            return Err(TenancyError::TenantUnavailable);
        };
        match &details.status {
            TenantStatus::Active => Ok(ActiveTenant {
                reference_prefix: reference_prefix(details.slug.as_str()),
                name: details.name.to_string(),
                default_language: details.default_language.as_str().to_owned(),
                contact_email: details.contact_email.to_string(),
            }),
            TenantStatus::Suspended { reason } => Err(TenancyError::TenantSuspended {
                reason: reason.to_string(),
            }),
            TenantStatus::Closed => Err(TenancyError::TenantUnavailable),
        }
    }

    /// The letters of the tenant's references, whatever its status
    /// (`NOT_FOUND` when it was never provisioned).
    pub async fn reference_prefix(&self, tenant: TenantId) -> Result<String, TenancyError> {
        let state = self
            .fold::<Tenant>(tenant, &tenant::stream_id(tenant)?)
            .await?;
        state
            .tenant
            .map(|t| reference_prefix(t.slug.as_str()))
            .ok_or(TenancyError::TenantUnavailable)
    }

    /// A staff member of the tenant, if they are one (a member of another
    /// tenant has no stream in this one).
    pub async fn member(
        &self,
        tenant: TenantId,
        id: StaffId,
    ) -> Result<Option<Member>, TenancyError> {
        let state = self
            .fold::<StaffMember>(tenant, &staff::stream_id(id)?)
            .await?;
        Ok(match (state.role, state.status) {
            (Some(role), Some(status)) => Some(Member {
                role,
                active: status == StaffStatus::Active,
            }),
            _ => None,
        })
    }

    /// What the tenant's plan allows (read from the tenant's stream and
    /// the platform's plan catalogue).
    pub async fn plan_limits(&self, tenant: TenantId) -> Result<PlanLimits, TenancyError> {
        let state = self
            .fold::<Tenant>(tenant, &tenant::stream_id(tenant)?)
            .await?;
        let details = state.tenant.ok_or(TenancyError::TenantUnavailable)?;
        let catalogue = self
            .fold::<PlanCatalogue>(plan::STREAM_OWNER, &plan::stream_id()?)
            .await?;
        catalogue
            .plan(&details.plan)
            .map(|p| p.limits)
            .ok_or_else(|| {
                TenancyError::Unexpected(anyhow::anyhow!(
                    "the tenant's plan {} is not in the catalogue",
                    details.plan
                ))
            })
    }

    /// The role of `id` when the tenant is active (`TENANT_SUSPENDED` or
    /// `NOT_FOUND` otherwise) and `id` is an active staff member of it;
    /// `None` when they are not (another tenant's, invited, deactivated).
    pub async fn working_role(
        &self,
        tenant: TenantId,
        id: StaffId,
    ) -> Result<Option<Role>, TenancyError> {
        if let Some((_, role)) = self.roles.as_ref().and_then(|m| m.get(&(tenant, id))) {
            return Ok(Some(role));
        }
        let epoch = self.roles.as_ref().map(TenantMemo::epoch);
        self.active_tenant(tenant).await?;
        let role = self
            .member(tenant, id)
            .await?
            .filter(|m| m.active)
            .map(|m| m.role);
        if let (Some(memo), Some(epoch), Some(role)) = (&self.roles, epoch, role) {
            memo.put(epoch, tenant, (tenant, id), role);
        }
        Ok(role)
    }

    /// The tenant's directory (departments, officials, topics).
    pub async fn directory(&self, tenant: TenantId) -> Result<DirectoryState, TenancyError> {
        self.fold::<Directory>(tenant, &directory::stream_id()?)
            .await
    }

    /// The tenant's business hours and holidays.
    pub async fn calendar(&self, tenant: TenantId) -> Result<Calendar, TenancyError> {
        Ok(Calendar(
            self.fold::<Schedule>(tenant, &schedule::stream_id()?)
                .await?,
        ))
    }
}

/// The letters of a tenant's references, from its slug.
pub fn reference_prefix(slug: &str) -> String {
    let letters: String = slug
        .chars()
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
        .take(8)
        .collect();
    if letters.len() < 2 {
        "TK".to_owned()
    } else {
        letters
    }
}

/// A tenant's business hours, for the response-time clocks. A tenant that
/// has not set its hours is counted as always open (calendar time).
#[derive(Debug, Clone, Default)]
pub struct Calendar(pub ScheduleState);

impl Calendar {
    /// When `target` of business time has passed after `from`. When the
    /// hours never add up (a week with no open hours) the clock falls due
    /// after `target` of calendar time, rather than never.
    pub fn due(&self, from: DateTime<Utc>, target: Duration) -> DateTime<Utc> {
        match &self.0.hours {
            None => from + target,
            Some(_) => self
                .0
                .add_business_time(from, target)
                .unwrap_or(from + target),
        }
    }

    /// The business time between two instants.
    pub fn elapsed(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        match &self.0.hours {
            None => (to - from).max(Duration::zero()),
            Some(_) => self.0.business_time_between(from, to),
        }
    }

    /// The tenant's year at `at` (for reference numbering): in its time
    /// zone when hours are set, else UTC.
    pub fn year(&self, at: DateTime<Utc>) -> i32 {
        match &self.0.hours {
            Some(h) => at.with_timezone(&h.time_zone.tz()).year(),
            None => at.year(),
        }
    }

    /// The tenant's time zone (Europe/Madrid when its hours are not set).
    pub fn time_zone(&self) -> chrono_tz::Tz {
        self.0
            .hours
            .as_ref()
            .map_or(chrono_tz::Europe::Madrid, |h| h.time_zone.tz())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_prefixes_come_from_the_slug() {
        assert_eq!(reference_prefix("lugo"), "LUGO");
        assert_eq!(reference_prefix("a-coruna-concello"), "ACORUNAC");
        assert_eq!(reference_prefix("x1"), "TK");
    }

    #[test]
    fn without_business_hours_clocks_run_on_calendar_time() {
        let c = Calendar::default();
        let t = DateTime::from_timestamp(1_767_225_600, 0).unwrap_or_default();
        assert_eq!(c.due(t, Duration::hours(4)), t + Duration::hours(4));
        assert_eq!(c.elapsed(t, t + Duration::hours(3)), Duration::hours(3));
        assert_eq!(c.elapsed(t + Duration::hours(3), t), Duration::zero());
    }
}
