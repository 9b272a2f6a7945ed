//! The `tenant_registry` projection: the registry of tenants and the plan
//! catalogue, as read models (tables `tenant_registry` and `plans`,
//! `migrations/0004_tenant_registry.sql`), and the queries on them.
//!
//! It reads `tenant.*` events (each in its tenant's scope) and `plan.*`
//! events (in the operator scope). It must not decide anything: it only
//! reflects what the events say.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use sqlx::FromRow;
use sqlx::PgConnection;
use ventanilla_eventlog::{DomainEvent, RecordedEvent};
use ventanilla_kernel::TenantId;
use ventanilla_postgres::projection::Projection;
use ventanilla_postgres::{Handler, TenantTx};
use ventanilla_tenants_domain::plan::PlanCatalogueEvent;
use ventanilla_tenants_domain::tenant::{TenantEvent, TenantKind};

/// The projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct TenantRegistry;

impl Projection for TenantRegistry {
    fn name(&self) -> &'static str {
        "tenant_registry"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["tenant_registry", "plans"]
    }
}

fn kind_text(kind: TenantKind) -> &'static str {
    match kind {
        TenantKind::Council => "council",
        TenantKind::Business => "business",
    }
}

#[async_trait]
impl Handler for TenantRegistry {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let tenant = tx.tenant();
        for e in events {
            if e.event_type.starts_with("tenant.") {
                let event = TenantEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
                apply_tenant(tx.conn().await?, tenant, &event).await?;
            } else if e.event_type.starts_with("plan.") {
                let event =
                    PlanCatalogueEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
                apply_plan(tx.conn().await?, &event).await?;
            }
        }
        Ok(())
    }
}

async fn set_status(
    conn: &mut PgConnection,
    tenant: TenantId,
    status: &str,
    reason: Option<&str>,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query("UPDATE tenant_registry SET status = $2, status_reason = $3, updated_at = $4 WHERE tenant_id = $1")
        .bind(tenant.into_uuid())
        .bind(status)
        .bind(reason)
        .bind(at)
        .execute(conn)
        .await
        .map(|_| ())
}

async fn apply_tenant(
    conn: &mut PgConnection,
    tenant: TenantId,
    event: &TenantEvent,
) -> sqlx::Result<()> {
    match event {
        TenantEvent::Provisioned(p) => {
            let languages: Vec<&str> = p.languages.iter().map(|l| l.as_str()).collect();
            sqlx::query(
                "INSERT INTO tenant_registry (tenant_id, slug, name, kind, plan, status, time_zone, \
                   default_language, languages, contact_email, provisioned_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, 'active', $6, $7, $8, $9, $10, $10)",
            )
            .bind(tenant.into_uuid())
            .bind(p.slug.as_str())
            .bind(p.name.as_str())
            .bind(kind_text(p.kind))
            .bind(p.plan.as_str())
            .bind(p.time_zone.as_str())
            .bind(p.default_language.as_str())
            .bind(&languages)
            .bind(p.contact_email.as_str())
            .bind(p.at)
            .execute(conn)
            .await?;
        }
        TenantEvent::Suspended(s) => {
            set_status(conn, tenant, "suspended", Some(s.reason.as_str()), s.at).await?
        }
        TenantEvent::Reactivated(r) => set_status(conn, tenant, "active", None, r.at).await?,
        TenantEvent::Closed(c) => {
            set_status(conn, tenant, "closed", Some(c.reason.as_str()), c.at).await?
        }
        TenantEvent::PlanChanged(c) => {
            sqlx::query(
                "UPDATE tenant_registry SET plan = $2, updated_at = $3 WHERE tenant_id = $1",
            )
            .bind(tenant.into_uuid())
            .bind(c.to.as_str())
            .bind(c.at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

async fn apply_plan(conn: &mut PgConnection, event: &PlanCatalogueEvent) -> sqlx::Result<()> {
    match event {
        PlanCatalogueEvent::Defined(d) => {
            let l = &d.plan.limits;
            sqlx::query(
                "INSERT INTO plans (code, name, agents, channel_accounts, tickets_per_month, \
                   api_requests_per_minute, public, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(d.plan.code.as_str())
            .bind(d.plan.name.as_str())
            .bind(i64::from(l.agents))
            .bind(i64::from(l.channel_accounts))
            .bind(i64::from(l.tickets_per_month))
            .bind(i64::from(l.api_requests_per_minute))
            .bind(d.plan.public)
            .bind(d.at)
            .execute(conn)
            .await?;
        }
        PlanCatalogueEvent::Changed(c) => {
            let l = &c.limits;
            sqlx::query(
                "UPDATE plans SET name = $2, agents = $3, channel_accounts = $4, tickets_per_month = $5, \
                   api_requests_per_minute = $6, updated_at = $7 WHERE code = $1",
            )
            .bind(c.code.as_str())
            .bind(c.name.as_str())
            .bind(i64::from(l.agents))
            .bind(i64::from(l.channel_accounts))
            .bind(i64::from(l.tickets_per_month))
            .bind(i64::from(l.api_requests_per_minute))
            .bind(c.at)
            .execute(conn)
            .await?;
        }
        PlanCatalogueEvent::Retired(r) => {
            sqlx::query("UPDATE plans SET retired = true, updated_at = $2 WHERE code = $1")
                .bind(r.code.as_str())
                .bind(r.at)
                .execute(conn)
                .await?;
        }
    }
    Ok(())
}

/// One row of the registry.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct TenantSummary {
    /// The tenant.
    pub tenant_id: uuid::Uuid,
    /// Its unique slug.
    pub slug: String,
    /// Its display name.
    pub name: String,
    /// `council` or `business`.
    pub kind: String,
    /// Its plan's code.
    pub plan: String,
    /// `active`, `suspended` or `closed`.
    pub status: String,
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

const SUMMARY: &str = "SELECT tenant_id, slug, name, kind, plan, status, status_reason, time_zone, \
    default_language, languages, contact_email, provisioned_at FROM tenant_registry";

/// Every tenant, by slug (operator scope).
pub async fn list(conn: &mut PgConnection) -> sqlx::Result<Vec<TenantSummary>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SUMMARY} ORDER BY slug")))
        .fetch_all(conn)
        .await
}

/// The tenant with this slug, if the scope may see it.
pub async fn by_slug(conn: &mut PgConnection, slug: &str) -> sqlx::Result<Option<TenantSummary>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!("{SUMMARY} WHERE slug = $1")))
        .bind(slug)
        .fetch_optional(conn)
        .await
}
