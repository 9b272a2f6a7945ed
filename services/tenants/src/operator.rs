//! What an operator of the hosted install does with tenants: provision one
//! in a single step (slug claimed, tenant provisioned, first admin invited),
//! list and show them, suspend, reactivate and re-plan them.
//!
//! This is the service layer: it parses raw input into the domain's
//! validated values (so a refusal names the field), loads what a decision
//! needs, and runs the domain's deciders through the [`CommandRunner`]. It
//! decides nothing itself.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandError, CommandRunner, EventLog, Position};
use ventanilla_kernel::{Actor, StreamId, StreamIdError, TenantId};
use ventanilla_postgres::projection::{Projection, ensure_caught_up};
use ventanilla_postgres::sqlx::PgPool;
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_tenants_domain::plan::{
    self, PlanCatalogue, PlanCatalogueCommand, PlanCode, PlanError, Usage,
};
use ventanilla_tenants_domain::staff::{self, Role, StaffId};
use ventanilla_tenants_domain::tenant::{
    self, ProvisionTenant, SlugClaim, SlugClaimCommand, SlugClaimError, Tenant, TenantCommand,
    TenantError, TenantKind,
};
use ventanilla_tenants_domain::values::{Email, InvalidValue, Language, Name, Slug, TimeZone};

use crate::registry::{self, TenantRegistry, TenantSummary};
use crate::staff::{Staff, StaffServiceError};

/// What `tenant create` asks for, as typed by the operator.
#[derive(Debug, Clone, Default)]
pub struct ProvisionRequest {
    /// Display name.
    pub name: String,
    /// Unique slug.
    pub slug: String,
    /// `council` or `business`.
    pub kind: String,
    /// Plan code (default `free`).
    pub plan: Option<String>,
    /// IANA time zone (default `Europe/Madrid`).
    pub time_zone: Option<String>,
    /// Default language (default `es`).
    pub default_language: Option<String>,
    /// Languages offered (default: the default language).
    pub languages: Vec<String>,
    /// The first admin's address; also the contact address unless given.
    pub admin_email: String,
    /// The first admin's name (default: the address).
    pub admin_name: Option<String>,
    /// Contact address of the tenant.
    pub contact_email: Option<String>,
}

/// What provisioning produced. The invitation code is shown once.
#[derive(Debug, Clone)]
pub struct Provisioned {
    /// The new tenant.
    pub tenant: TenantId,
    /// Its slug.
    pub slug: String,
    /// The first admin.
    pub admin: StaffId,
    /// The one-time invitation code for the first admin (clear text).
    pub invitation_code: String,
    /// Until when the code works.
    pub invitation_expires_at: DateTime<Utc>,
}

/// Why an operator command was refused. Messages say what to fix.
#[derive(Debug, thiserror::Error)]
pub enum OperatorError {
    /// Malformed input; names the field.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// The slug belongs to another tenant.
    #[error("the slug {slug} is taken by another tenant; choose another")]
    SlugTaken {
        /// The slug.
        slug: String,
    },
    /// No tenant has this slug.
    #[error("there is no tenant with the slug {slug}")]
    UnknownTenant {
        /// The slug.
        slug: String,
    },
    /// The tenant refused.
    #[error(transparent)]
    Tenant(#[from] TenantError),
    /// The plan catalogue refused.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// Inviting the first admin was refused.
    #[error(transparent)]
    Staff(#[from] StaffServiceError),
    /// Others kept writing; try again.
    #[error("the record changed while the command ran; try again")]
    Conflict,
    /// Anything else.
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl<E: std::error::Error + Send + Sync + 'static> From<CommandError<E>> for OperatorError
where
    OperatorError: From<E>,
{
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Domain(e) => e.into(),
            CommandError::Conflict { .. } => OperatorError::Conflict,
            CommandError::Invalid(e) => OperatorError::Unexpected(e.into()),
            CommandError::Unexpected(e) => OperatorError::Unexpected(e),
        }
    }
}

impl From<StreamIdError> for OperatorError {
    fn from(e: StreamIdError) -> Self {
        OperatorError::Unexpected(e.into())
    }
}

impl From<SlugClaimError> for OperatorError {
    fn from(e: SlugClaimError) -> Self {
        match e {
            SlugClaimError::SlugTaken { slug, .. } => OperatorError::SlugTaken {
                slug: slug.to_string(),
            },
            other => OperatorError::Unexpected(other.into()),
        }
    }
}

impl From<ventanilla_postgres::sqlx::Error> for OperatorError {
    fn from(e: ventanilla_postgres::sqlx::Error) -> Self {
        OperatorError::Unexpected(e.into())
    }
}

/// The operator's side of the tenants service.
pub struct Operator {
    runner: CommandRunner<PgEventLog>,
    pool: PgPool,
    actor: Actor,
}

fn parse_kind(s: &str) -> Result<TenantKind, InvalidValue> {
    match s.trim() {
        "council" => Ok(TenantKind::Council),
        "business" => Ok(TenantKind::Business),
        other => Err(InvalidValue::new(
            "kind",
            format!("{other:?} is not a kind of tenant; use council or business"),
        )),
    }
}

impl Operator {
    /// The operator `operator_id` (recorded as the actor of every change),
    /// writing to `log`.
    pub fn new(log: Arc<PgEventLog>, operator_id: &str) -> Self {
        let pool = log.pool().clone();
        Self {
            runner: CommandRunner::new(log, 5),
            pool,
            actor: Actor::Operator {
                id: operator_id.to_owned(),
            },
        }
    }

    fn ctx(&self, tenant: TenantId) -> CommandContext {
        CommandContext::new(tenant, Utc::now(), self.actor.clone())
    }

    /// Installs the default plans that are not defined yet.
    pub async fn install_default_plans(&self) -> Result<plan::PlanCatalogueState, OperatorError> {
        let done = self
            .runner
            .execute::<PlanCatalogue>(
                &self.ctx(plan::STREAM_OWNER),
                &plan::stream_id()?,
                &PlanCatalogueCommand::InstallDefaults,
            )
            .await?;
        Ok(done.state)
    }

    /// Provisions a tenant in one step: claims the slug, provisions the
    /// tenant and invites its first admin. Refused, with nothing created,
    /// when the input is malformed, the plan unknown or the slug taken.
    pub async fn provision(
        &self,
        request: &ProvisionRequest,
    ) -> Result<Provisioned, OperatorError> {
        let name = Name::parse("name", &request.name, tenant::TENANT_NAME_MAX)?;
        let slug = Slug::parse("slug", &request.slug)?;
        let kind = parse_kind(&request.kind)?;
        let plan_code = PlanCode::parse("plan", request.plan.as_deref().unwrap_or("free"))?;
        let time_zone = TimeZone::parse(
            "time_zone",
            request.time_zone.as_deref().unwrap_or("Europe/Madrid"),
        )?;
        let default_language = Language::parse(
            "default_language",
            request.default_language.as_deref().unwrap_or("es"),
        )?;
        let languages = if request.languages.is_empty() {
            vec![default_language.clone()]
        } else {
            request
                .languages
                .iter()
                .map(|l| Language::parse("languages", l))
                .collect::<Result<Vec<_>, _>>()?
        };
        let admin_email = Email::parse("admin_email", &request.admin_email)?;
        let contact_email = match &request.contact_email {
            Some(c) => Email::parse("contact_email", c)?,
            None => admin_email.clone(),
        };
        let admin_name = Name::parse(
            "admin_name",
            request
                .admin_name
                .as_deref()
                .unwrap_or(admin_email.as_str()),
            staff::NAME_MAX,
        )?;
        let provision = ProvisionTenant {
            name,
            slug: slug.clone(),
            kind,
            plan: plan_code.clone(),
            time_zone,
            default_language,
            languages,
            contact_email,
        };

        let catalogue = self.install_default_plans().await?;
        catalogue.assignable(&plan_code)?;

        let tenant = TenantId::from_uuid(Uuid::new_v4());
        // The slug first: the log's expected-version check makes the claim
        // atomic, so two operators racing for it cannot both win.
        self.runner
            .execute::<SlugClaim>(
                &self.ctx(tenant::SLUG_STREAM_OWNER),
                &tenant::slug_stream_id(&slug)?,
                &SlugClaimCommand::Claim {
                    slug: slug.clone(),
                    tenant,
                },
            )
            .await?;
        if let Err(e) = self
            .runner
            .execute::<Tenant>(
                &self.ctx(tenant),
                &tenant::stream_id(tenant)?,
                &TenantCommand::Provision(provision),
            )
            .await
        {
            self.release_slug(&slug, tenant).await;
            return Err(e.into());
        }

        // The first admin, invited by the platform itself (the staff
        // service also claims the address within the tenant).
        let invitation = Staff::new(Arc::clone(self.runner.log()))
            .invite(
                tenant,
                None,
                admin_email.as_str(),
                admin_name.as_str(),
                Role::Admin,
            )
            .await?;
        tracing::info!(tenant_id = %tenant, slug = %slug, "tenant provisioned");
        Ok(Provisioned {
            tenant,
            slug: slug.to_string(),
            admin: invitation.staff,
            invitation_code: invitation.invitation_code,
            invitation_expires_at: invitation.expires_at,
        })
    }

    async fn release_slug(&self, slug: &Slug, tenant: TenantId) {
        let Ok(stream) = tenant::slug_stream_id(slug) else {
            return;
        };
        if let Err(e) = self
            .runner
            .execute::<SlugClaim>(
                &self.ctx(tenant::SLUG_STREAM_OWNER),
                &stream,
                &SlugClaimCommand::Release { tenant },
            )
            .await
        {
            tracing::warn!(slug = %slug, error = %e, "could not release the slug of a refused tenant");
        }
    }

    /// Makes the registry read model current, then runs `read` on it in the
    /// operator scope.
    async fn read<T>(
        &self,
        read: impl AsyncFnOnce(
            &mut ventanilla_postgres::sqlx::PgConnection,
        ) -> ventanilla_postgres::sqlx::Result<T>,
    ) -> Result<T, OperatorError> {
        let log = Arc::clone(self.runner.log());
        let target = log.committed_head().await.map_err(anyhow::Error::from)?;
        let projection: Arc<dyn Projection> = Arc::new(TenantRegistry);
        ensure_caught_up(
            log,
            self.pool.clone(),
            projection,
            target,
            Duration::from_secs(15),
        )
        .await?;
        let mut tx = begin_for_tenant(&self.pool, TenantId::PLATFORM).await?;
        let value = read(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    /// Every tenant.
    pub async fn list(&self) -> Result<Vec<TenantSummary>, OperatorError> {
        self.read(async |conn| registry::list(conn).await).await
    }

    /// The tenant with this slug.
    pub async fn show(&self, slug: &str) -> Result<TenantSummary, OperatorError> {
        let slug = Slug::parse("slug", slug)?;
        let found = self
            .read(async |conn| registry::by_slug(conn, slug.as_str()).await)
            .await?;
        found.ok_or_else(|| OperatorError::UnknownTenant {
            slug: slug.to_string(),
        })
    }

    /// The tenant owning `slug`, from the log (always current).
    async fn tenant_of(&self, slug: &str) -> Result<TenantId, OperatorError> {
        let parsed = Slug::parse("slug", slug)?;
        let (_, events) = self
            .runner
            .load::<SlugClaim>(tenant::SLUG_STREAM_OWNER, &tenant::slug_stream_id(&parsed)?)
            .await
            .map_err(|e: CommandError<SlugClaimError>| OperatorError::from(e))?;
        let state = <SlugClaim as ventanilla_eventlog::Decider>::fold(&events);
        state.owner.ok_or_else(|| OperatorError::UnknownTenant {
            slug: slug.to_owned(),
        })
    }

    async fn run(
        &self,
        slug: &str,
        command: TenantCommand,
    ) -> Result<Option<Position>, OperatorError> {
        let tenant = self.tenant_of(slug).await?;
        let done = self
            .runner
            .execute::<Tenant>(&self.ctx(tenant), &tenant::stream_id(tenant)?, &command)
            .await?;
        Ok(done.position)
    }

    /// Suspends a tenant: its staff and API keys are refused until it is
    /// reactivated; its data is kept.
    pub async fn suspend(&self, slug: &str, reason: &str) -> Result<(), OperatorError> {
        let reason = Name::parse("reason", reason, tenant::REASON_MAX)?;
        self.run(slug, TenantCommand::Suspend { reason })
            .await
            .map(|_| ())
    }

    /// Reactivates a suspended tenant.
    pub async fn reactivate(&self, slug: &str) -> Result<(), OperatorError> {
        self.run(slug, TenantCommand::Reactivate).await.map(|_| ())
    }

    /// Moves a tenant to another plan, refused when its current usage is
    /// above the new plan's limits.
    pub async fn change_plan(&self, slug: &str, plan: &str) -> Result<(), OperatorError> {
        let code = PlanCode::parse("plan", plan)?;
        let catalogue = self.install_default_plans().await?;
        let limits = catalogue.assignable(&code)?.limits;
        // Usage is counted by the services that own it. Agents are counted
        // here; linked channel accounts and tickets arrive with the social
        // and tickets services and count as zero until then.
        let tenant = self.tenant_of(slug).await?;
        let usage = Usage {
            agents: Staff::new(Arc::clone(self.runner.log()))
                .agents_in_use(tenant)
                .await?,
            ..Usage::default()
        };
        self.run(
            slug,
            TenantCommand::ChangePlan {
                plan: code,
                limits,
                usage,
            },
        )
        .await
        .map(|_| ())
    }
}

/// A plan as the operator sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanView {
    /// The plan.
    pub plan: plan::Plan,
    /// Whether it can no longer be given to tenants.
    pub retired: bool,
}

impl Operator {
    async fn run_catalogue(&self, command: PlanCatalogueCommand) -> Result<(), OperatorError> {
        self.install_default_plans().await?;
        self.runner
            .execute::<PlanCatalogue>(&self.ctx(plan::STREAM_OWNER), &plan::stream_id()?, &command)
            .await?;
        Ok(())
    }

    /// Every plan, the shipped defaults included.
    pub async fn plans(&self) -> Result<Vec<PlanView>, OperatorError> {
        let catalogue = self.install_default_plans().await?;
        Ok(catalogue
            .list()
            .map(|(plan, retired)| PlanView {
                plan: plan.clone(),
                retired,
            })
            .collect())
    }

    /// Defines a new plan (`public`: offered to new tenants in listings).
    pub async fn define_plan(
        &self,
        code: &str,
        name: &str,
        limits: plan::PlanLimits,
        public: bool,
    ) -> Result<(), OperatorError> {
        let plan = plan::Plan {
            code: PlanCode::parse("code", code)?,
            name: Name::parse("name", name, plan::PLAN_NAME_MAX)?,
            limits,
            public,
        };
        self.run_catalogue(PlanCatalogueCommand::Define(plan)).await
    }

    /// Changes a plan's name and limits; tenants on it get the new limits.
    pub async fn change_plan_limits(
        &self,
        code: &str,
        name: &str,
        limits: plan::PlanLimits,
    ) -> Result<(), OperatorError> {
        self.run_catalogue(PlanCatalogueCommand::Change {
            code: PlanCode::parse("code", code)?,
            name: Name::parse("name", name, plan::PLAN_NAME_MAX)?,
            limits,
        })
        .await
    }

    /// Retires a plan: no new tenant gets it; tenants on it keep it.
    pub async fn retire_plan(&self, code: &str) -> Result<(), OperatorError> {
        self.run_catalogue(PlanCatalogueCommand::Retire {
            code: PlanCode::parse("code", code)?,
        })
        .await
    }
}

/// The stream of a tenant, for callers outside this module.
pub fn tenant_stream(tenant: TenantId) -> Result<StreamId, StreamIdError> {
    tenant::stream_id(tenant)
}
