//! What the operator of the install does with organisations (tenants):
//! list them, look one up, provision, suspend, reactivate and re-plan them;
//! and with the plan catalogue: list the plans, define, change and retire
//! them. Operator token only; every other principal is `FORBIDDEN`.
//!
//! Each mutation answers with the tenant, or the plan, as it is after the
//! change (the tenants service waits for its registry before reading a
//! tenant back; the catalogue is read from its own stream).
//!
//! What this module must not do: decide anything (the tenants service
//! does), or reach a tenant's own data (the operator belongs to none).

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ventanilla_tenants::operator::{OperatorError, PlanView, ProvisionRequest};
use ventanilla_tenants::registry::TenantSummary;
use ventanilla_tenants_domain::plan::{LimitName, PlanError, PlanLimits as Limits};

use super::access::{self, services};
use crate::error::{INTERNAL_MESSAGE, code, coded, invalid, service_error};

/// Whether an organisation is a council or a business.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantKind {
    /// A council (concello, ayuntamiento).
    Council,
    /// A business.
    Business,
}

impl TenantKind {
    fn as_stored(self) -> &'static str {
        match self {
            TenantKind::Council => "council",
            TenantKind::Business => "business",
        }
    }
}

/// Whether an organisation may work.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantStatus {
    /// Working.
    Active,
    /// Suspended by the operator: its staff and keys are refused.
    Suspended,
    /// Closed for good.
    Closed,
}

/// An organisation as the operator sees it.
#[derive(SimpleObject, Debug)]
pub struct TenantDetails {
    /// Its id.
    pub id: Uuid,
    /// Its unique slug (what staff name at `login`).
    pub slug: String,
    /// Its name.
    pub name: String,
    /// Council or business.
    pub kind: TenantKind,
    /// Its plan's code (`free`, `municipio`, `provincia`…).
    pub plan: String,
    /// Whether it may work.
    pub status: TenantStatus,
    /// Why it is suspended or closed.
    pub status_reason: Option<String>,
    /// Its IANA time zone.
    pub time_zone: String,
    /// Its default language.
    pub default_language: String,
    /// The languages it offers.
    pub languages: Vec<String>,
    /// Its contact address.
    pub contact_email: String,
    /// When it was provisioned.
    pub provisioned_at: DateTime<Utc>,
}

impl TenantDetails {
    fn from_summary(s: TenantSummary) -> Result<Self> {
        let kind = match s.kind.as_str() {
            "council" => TenantKind::Council,
            "business" => TenantKind::Business,
            other => return Err(unknown("kind", other)),
        };
        let status = match s.status.as_str() {
            "active" => TenantStatus::Active,
            "suspended" => TenantStatus::Suspended,
            "closed" => TenantStatus::Closed,
            other => return Err(unknown("status", other)),
        };
        Ok(Self {
            id: s.tenant_id,
            slug: s.slug,
            name: s.name,
            kind,
            plan: s.plan,
            status,
            status_reason: s.status_reason,
            time_zone: s.time_zone,
            default_language: s.default_language,
            languages: s.languages,
            contact_email: s.contact_email,
            provisioned_at: s.provisioned_at,
        })
    }
}

fn unknown(what: &str, value: &str) -> async_graphql::Error {
    tracing::error!(
        what,
        value,
        "a tenant in the registry with a value the schema does not know"
    );
    coded(code::INTERNAL, INTERNAL_MESSAGE)
}

/// A new organisation.
#[derive(InputObject, Debug)]
pub struct ProvisionTenantInput {
    /// Its name ("Concello de Lugo").
    pub name: String,
    /// Its unique slug (lower-case letters, digits and dashes).
    pub slug: String,
    /// Council or business.
    pub kind: TenantKind,
    /// Its plan's code (`free` by default).
    pub plan: Option<String>,
    /// Its IANA time zone (`Europe/Madrid` by default).
    pub time_zone: Option<String>,
    /// Its default language (`es` by default).
    pub default_language: Option<String>,
    /// The languages it offers (the default language by default).
    #[graphql(default)]
    pub languages: Vec<String>,
    /// The first admin's address (also the contact address unless given).
    pub admin_email: String,
    /// The first admin's name (their address by default).
    pub admin_name: Option<String>,
    /// The organisation's contact address.
    pub contact_email: Option<String>,
}

/// An organisation just provisioned, and the invitation of its first admin.
#[derive(SimpleObject)]
pub struct ProvisionedTenant {
    /// The organisation, as it now is.
    pub tenant: TenantDetails,
    /// Its first admin (invited, not yet active).
    pub admin_id: Uuid,
    /// The code with which the first admin accepts the invitation and sets
    /// a password. Shown once; send it to them by a safe way.
    pub invitation_code: String,
    /// Until when the code works.
    pub invitation_expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for ProvisionedTenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvisionedTenant")
            .field("tenant", &self.tenant)
            .field("admin_id", &self.admin_id)
            .field("invitation_code", &"…")
            .finish_non_exhaustive()
    }
}

/// A page of organisations.
pub type TenantConnection = Connection<String, TenantDetails>;

const CURSOR_PREFIX: &str = "tenant:";

fn encode_cursor(slug: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{CURSOR_PREFIX}{slug}"))
}

fn decode_cursor(cursor: &str) -> Result<String> {
    URL_SAFE_NO_PAD
        .decode(cursor.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix(CURSOR_PREFIX).map(str::to_owned))
        .ok_or_else(|| {
            invalid(
                "after",
                "after: is not a cursor of this list; pass the endCursor of the previous page",
            )
        })
}

async fn show(ctx: &Context<'_>, slug: &str) -> Result<TenantDetails> {
    let found = services(ctx)?
        .operator
        .show(slug)
        .await
        .map_err(|e| service_error(&e))?;
    TenantDetails::from_summary(found)
}

/// What a plan allows.
#[derive(SimpleObject, Debug)]
pub struct PlanLimits {
    /// Active staff accounts (admins and agents).
    pub agents: i32,
    /// Linked channel accounts.
    pub channel_accounts: i32,
    /// Tickets opened in one calendar month.
    pub tickets_per_month: i32,
    /// Requests a minute (the API rate limit).
    pub api_requests_per_minute: i32,
}

impl From<Limits> for PlanLimits {
    fn from(l: Limits) -> Self {
        let int = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        Self {
            agents: int(l.agents),
            channel_accounts: int(l.channel_accounts),
            tickets_per_month: int(l.tickets_per_month),
            api_requests_per_minute: int(l.api_requests_per_minute),
        }
    }
}

/// A plan of the catalogue.
#[derive(SimpleObject, Debug)]
pub struct Plan {
    /// What organisations and events refer to (`free`, `municipio`…); it
    /// never changes.
    pub code: String,
    /// The name shown to people.
    pub name: String,
    /// What it allows.
    pub limits: PlanLimits,
    /// Whether it is listed publicly (a plan made for one customer is
    /// not).
    pub public: bool,
    /// Whether it is retired: no organisation can be given it any more;
    /// those on it keep it.
    pub retired: bool,
}

impl From<PlanView> for Plan {
    fn from(v: PlanView) -> Self {
        Self {
            code: v.plan.code.as_str().to_owned(),
            name: v.plan.name.as_str().to_owned(),
            limits: v.plan.limits.into(),
            public: v.plan.public,
            retired: v.retired,
        }
    }
}

/// What a plan allows; every limit is at least 1.
#[derive(InputObject, Debug)]
pub struct PlanLimitsInput {
    /// Active staff accounts (admins and agents).
    pub agents: i32,
    /// Linked channel accounts.
    pub channel_accounts: i32,
    /// Tickets opened in one calendar month.
    pub tickets_per_month: i32,
    /// Requests a minute (the API rate limit).
    pub api_requests_per_minute: i32,
}

/// The API's name of a limit, as `extensions.field` names it.
fn limit_field(limit: LimitName) -> &'static str {
    match limit {
        LimitName::Agents => "limits.agents",
        LimitName::ChannelAccounts => "limits.channelAccounts",
        LimitName::TicketsPerMonth => "limits.ticketsPerMonth",
        LimitName::ApiRequestsPerMinute => "limits.apiRequestsPerMinute",
    }
}

impl PlanLimitsInput {
    /// The limits as the service takes them; a negative one is refused
    /// here (a zero one by the catalogue).
    fn to_limits(&self) -> Result<Limits> {
        let count = |limit: LimitName, n: i32| {
            u32::try_from(n).map_err(|_| {
                let field = limit_field(limit);
                invalid(field, format!("{field}: must be at least 1, got {n}"))
            })
        };
        Ok(Limits {
            agents: count(LimitName::Agents, self.agents)?,
            channel_accounts: count(LimitName::ChannelAccounts, self.channel_accounts)?,
            tickets_per_month: count(LimitName::TicketsPerMonth, self.tickets_per_month)?,
            api_requests_per_minute: count(
                LimitName::ApiRequestsPerMinute,
                self.api_requests_per_minute,
            )?,
        })
    }
}

/// A new plan.
#[derive(InputObject, Debug)]
pub struct DefinePlanInput {
    /// Its code: 2 to 32 characters of `a-z`, `0-9`, `-` and `_`; never
    /// reused, retired plans' codes included.
    pub code: String,
    /// The name shown to people.
    pub name: String,
    /// What it allows.
    pub limits: PlanLimitsInput,
    /// Whether it is listed publicly (`true` by default).
    #[graphql(default = true)]
    pub public: bool,
}

/// A plan's new name and limits (both replaced).
#[derive(InputObject, Debug)]
pub struct ChangePlanLimitsInput {
    /// The name shown to people.
    pub name: String,
    /// What it allows.
    pub limits: PlanLimitsInput,
}

/// The catalogue's refusals as the API reports them: an unknown code is
/// `NOT_FOUND` (the plan is the object asked for here, unlike
/// `changeTenantPlan`, where it is a choice the organisation's state
/// refuses), a limit of 0 is `VALIDATION` naming it; the rest as the
/// service says.
fn plan_error(e: &OperatorError) -> async_graphql::Error {
    match e {
        OperatorError::Plan(PlanError::UnknownPlan { .. }) => coded(code::NOT_FOUND, e.to_string()),
        OperatorError::Plan(PlanError::InvalidLimit { limit }) => {
            let field = limit_field(*limit);
            invalid(field, format!("{field}: must be at least 1, got 0"))
        }
        other => service_error(other),
    }
}

/// The plan `code`, read back after a change.
async fn plan(ctx: &Context<'_>, code: &str) -> Result<Plan> {
    services(ctx)?
        .operator
        .plans()
        .await
        .map_err(|e| service_error(&e))?
        .into_iter()
        .find(|p| p.plan.code.as_str() == code.trim())
        .map(Into::into)
        .ok_or_else(|| {
            coded(
                code::NOT_FOUND,
                format!("there is no plan with the code {code}"),
            )
        })
}

/// The operator's queries.
#[derive(Default)]
pub struct OperatorQuery;

#[Object]
impl OperatorQuery {
    /// Every organisation of the install, by slug, a page at a time:
    /// `first` (at most the server's page size) after the cursor `after`.
    /// Operator only.
    #[graphql(complexity = "first.clamp(1, 100) as usize * child_complexity + 1")]
    async fn tenants(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 25)] first: i32,
        after: Option<String>,
    ) -> Result<TenantConnection> {
        access::operator(ctx)?;
        let services = services(ctx)?;
        let max = services.max_page_size.max(1);
        let first = u32::try_from(first)
            .ok()
            .filter(|f| (1..=max).contains(f))
            .ok_or_else(|| invalid("first", format!("first: must be between 1 and {max}")))?;
        let after_slug = after.as_deref().map(decode_cursor).transpose()?;
        // The registry is small (one row per organisation) and the service
        // lists it whole, by slug; the page is cut here.
        let all = services
            .operator
            .list()
            .await
            .map_err(|e| service_error(&e))?;
        let mut rest = all
            .into_iter()
            .filter(|t| after_slug.as_deref().is_none_or(|a| t.slug.as_str() > a))
            .peekable();
        let mut edges = Vec::new();
        for _ in 0..first {
            let Some(t) = rest.next() else { break };
            edges.push(Edge::new(
                encode_cursor(&t.slug),
                TenantDetails::from_summary(t)?,
            ));
        }
        let mut connection = Connection::new(after.is_some(), rest.peek().is_some());
        connection.edges = edges;
        Ok(connection)
    }

    /// The organisation with this slug; `NOT_FOUND` when there is none.
    /// Operator only.
    async fn tenant(&self, ctx: &Context<'_>, slug: String) -> Result<TenantDetails> {
        access::operator(ctx)?;
        show(ctx, &slug).await
    }

    /// Every plan of the catalogue, the shipped ones (`free`, `municipio`,
    /// `provincia`) and retired ones included, by code. Operator only.
    async fn plans(&self, ctx: &Context<'_>) -> Result<Vec<Plan>> {
        access::operator(ctx)?;
        let plans = services(ctx)?
            .operator
            .plans()
            .await
            .map_err(|e| service_error(&e))?;
        Ok(plans.into_iter().map(Into::into).collect())
    }
}

/// The operator's mutations.
#[derive(Default)]
pub struct OperatorMutation;

#[Object]
impl OperatorMutation {
    /// Provisions an organisation in one step: claims the slug, creates it
    /// on its plan and invites its first admin. Refused with nothing
    /// created when the input is malformed (`VALIDATION`), the slug taken
    /// or the plan not assignable (`CONFLICT`). Operator only.
    async fn provision_tenant(
        &self,
        ctx: &Context<'_>,
        input: ProvisionTenantInput,
    ) -> Result<ProvisionedTenant> {
        access::operator(ctx)?;
        let request = ProvisionRequest {
            name: input.name,
            slug: input.slug,
            kind: input.kind.as_stored().to_owned(),
            plan: input.plan,
            time_zone: input.time_zone,
            default_language: input.default_language,
            languages: input.languages,
            admin_email: input.admin_email,
            admin_name: input.admin_name,
            contact_email: input.contact_email,
        };
        let done = services(ctx)?
            .operator
            .provision(&request)
            .await
            .map_err(|e| service_error(&e))?;
        Ok(ProvisionedTenant {
            tenant: show(ctx, &done.slug).await?,
            admin_id: done.admin.0,
            invitation_code: done.invitation_code,
            invitation_expires_at: done.invitation_expires_at,
        })
    }

    /// Suspends an organisation: its staff and API keys are refused until
    /// it is reactivated; its data is kept. Operator only.
    async fn suspend_tenant(
        &self,
        ctx: &Context<'_>,
        slug: String,
        reason: String,
    ) -> Result<TenantDetails> {
        access::operator(ctx)?;
        services(ctx)?
            .operator
            .suspend(&slug, &reason)
            .await
            .map_err(|e| service_error(&e))?;
        show(ctx, &slug).await
    }

    /// Reactivates a suspended organisation. Operator only.
    async fn reactivate_tenant(&self, ctx: &Context<'_>, slug: String) -> Result<TenantDetails> {
        access::operator(ctx)?;
        services(ctx)?
            .operator
            .reactivate(&slug)
            .await
            .map_err(|e| service_error(&e))?;
        show(ctx, &slug).await
    }

    /// Moves an organisation to another plan; refused (`CONFLICT`) when
    /// its current usage is above the new plan's limits. Operator only.
    async fn change_tenant_plan(
        &self,
        ctx: &Context<'_>,
        slug: String,
        plan: String,
    ) -> Result<TenantDetails> {
        access::operator(ctx)?;
        services(ctx)?
            .operator
            .change_plan(&slug, &plan)
            .await
            .map_err(|e| service_error(&e))?;
        show(ctx, &slug).await
    }

    /// Defines a plan. `CONFLICT` when the code is taken (by a retired
    /// plan too); `VALIDATION` names a malformed code or name, or a limit
    /// below 1 (`limits.agents`…). Operator only.
    async fn define_plan(&self, ctx: &Context<'_>, input: DefinePlanInput) -> Result<Plan> {
        access::operator(ctx)?;
        let limits = input.limits.to_limits()?;
        services(ctx)?
            .operator
            .define_plan(&input.code, &input.name, limits, input.public)
            .await
            .map_err(|e| plan_error(&e))?;
        plan(ctx, &input.code).await
    }

    /// Replaces a plan's name and limits (a retired plan's too); the
    /// organisations on it get the new limits (the rate limit within a
    /// minute). `NOT_FOUND` when no plan has the code; `VALIDATION` as for
    /// `definePlan`. Operator only.
    async fn change_plan_limits(
        &self,
        ctx: &Context<'_>,
        code: String,
        input: ChangePlanLimitsInput,
    ) -> Result<Plan> {
        access::operator(ctx)?;
        let limits = input.limits.to_limits()?;
        services(ctx)?
            .operator
            .change_plan_limits(&code, &input.name, limits)
            .await
            .map_err(|e| plan_error(&e))?;
        plan(ctx, &code).await
    }

    /// Retires a plan: no organisation can be given it any more; those on
    /// it keep it. Retiring it again changes nothing; `NOT_FOUND` when no
    /// plan has the code. Operator only.
    async fn retire_plan(&self, ctx: &Context<'_>, code: String) -> Result<Plan> {
        access::operator(ctx)?;
        services(ctx)?
            .operator
            .retire_plan(&code)
            .await
            .map_err(|e| plan_error(&e))?;
        plan(ctx, &code).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn cursors_round_trip_and_others_are_refused() {
        assert_eq!(decode_cursor(&encode_cursor("lugo")).unwrap(), "lugo");
        assert!(decode_cursor("nope!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("Ticket:x")).is_err());
    }
}
