//! What the operator of the install does with organisations (tenants):
//! list them, look one up, provision, suspend, reactivate and re-plan them.
//! Operator token only; every other principal is `FORBIDDEN`.
//!
//! Each mutation answers with the tenant as it is after the change (the
//! tenants service waits for its registry before reading it back).
//!
//! What this module must not do: decide anything (the tenants service
//! does), or reach a tenant's own data (the operator belongs to none).

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ventanilla_tenants::operator::ProvisionRequest;
use ventanilla_tenants::registry::TenantSummary;

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
