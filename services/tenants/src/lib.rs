//! The tenants service: the tenant lifecycle, plans and quotas, the
//! organisation a citizen can address, staff and API keys.
//!
//! - [`operator`]: what an operator does (provision, list, show, suspend,
//!   reactivate, re-plan), used by the `ventanilla tenant …` commands;
//! - [`registry`]: the `tenant_registry` projection and its queries;
//! - [`secrets`]: one-time secrets, shown once and stored hashed;
//! - [`access`]: whether a tenant may be used now (`TENANT_SUSPENDED`);
//! - [`staff`]: invitations, passwords, sessions; [`api_keys`]: integrators'
//!   keys; [`organisation`]: departments, officials, topics, business hours
//!   and portal settings.
//!
//! The domain (deciders) is the `ventanilla-tenants-domain` crate. Each
//! service here takes the tenant as an argument: the gateway (issue #8)
//! passes the authenticated principal's tenant, never one from user input.
//! The GraphQL surface of all this comes with the gateway issue.

use std::sync::Arc;

use async_trait::async_trait;
use ventanilla_postgres::projection::Projection;
use ventanilla_runtime::{Module, Running, StartContext};

pub mod access;
pub mod api_keys;
pub mod operator;
pub mod organisation;
pub mod registry;
pub mod secrets;
pub mod staff;

/// The read models this service maintains.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    let mut all: Vec<Arc<dyn Projection>> = vec![Arc::new(registry::TenantRegistry)];
    all.extend(staff::projections());
    all.extend(api_keys::projections());
    all.extend(organisation::projections());
    all
}

/// The tenants service as a module of the binary.
#[derive(Debug, Default)]
pub struct TenantsService;

#[async_trait]
impl Module for TenantsService {
    fn name(&self) -> &'static str {
        "tenants"
    }

    fn depends_on(&self) -> &'static [&'static str] {
        &["projections"]
    }

    async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
        tracing::info!(service = "tenants", "started");
        Ok(Running::until_shutdown(ctx.shutdown()))
    }
}
