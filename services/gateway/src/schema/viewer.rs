//! `viewer`: who the request is from, in which organisation, and with
//! what role or scope. Every principal may ask, the anonymous one too.
//!
//! What this module must not do: look anything up by an argument.

use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_tenants_domain::api_key::Scope;
use ventanilla_tenants_domain::staff::Role;
use ventanilla_tickets::error::TicketsError;

use super::access::{principal, services};
use crate::auth::Principal;
use crate::error::service_error;

/// What kind of caller a request is from.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// No credentials.
    Anonymous,
    /// The operator of the install.
    Operator,
    /// A logged-in staff member.
    Staff,
    /// An integrator's API key.
    ApiKey,
}

/// A staff member's role in their organisation.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffRole {
    /// Sets the organisation up.
    Admin,
    /// Works the inbox.
    Agent,
}

/// What an API key may do.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiKeyScope {
    /// Queries only.
    Read,
    /// Queries and mutations.
    ReadWrite,
}

/// An organisation (a tenant: a council or a business).
#[derive(SimpleObject, Debug)]
pub struct Tenant {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

/// Who is calling.
pub struct Viewer(Principal);

/// Who is calling: what kind of caller, in which organisation, with what
/// role or scope.
#[Object]
impl Viewer {
    /// What kind of caller.
    async fn kind(&self) -> PrincipalKind {
        match self.0 {
            Principal::Anonymous => PrincipalKind::Anonymous,
            Principal::Operator => PrincipalKind::Operator,
            Principal::Staff(_) => PrincipalKind::Staff,
            Principal::ApiKey(_) => PrincipalKind::ApiKey,
        }
    }

    /// The organisation the caller acts in (none for the operator and the
    /// anonymous caller).
    async fn tenant(&self, ctx: &Context<'_>) -> Result<Option<Tenant>> {
        let Some(tenant) = self.0.tenant() else {
            return Ok(None);
        };
        let active = services(ctx)?
            .tickets
            .tenancy()
            .active_tenant(tenant)
            .await
            .map_err(|e| service_error(&TicketsError::from(e)))?;
        Ok(Some(Tenant {
            id: TenantId::into_uuid(tenant),
            name: active.name,
        }))
    }

    /// The staff member, for a staff session.
    async fn staff_id(&self) -> Option<Uuid> {
        match &self.0 {
            Principal::Staff(s) => Some(s.staff.0),
            _ => None,
        }
    }

    /// The staff member's role, for a staff session.
    async fn role(&self) -> Option<StaffRole> {
        match &self.0 {
            Principal::Staff(s) => Some(match s.role {
                Role::Admin => StaffRole::Admin,
                Role::Agent => StaffRole::Agent,
            }),
            _ => None,
        }
    }

    /// The key, for an API key.
    async fn api_key_id(&self) -> Option<Uuid> {
        match &self.0 {
            Principal::ApiKey(k) => Some(k.key_id.0),
            _ => None,
        }
    }

    /// What the key may do, for an API key.
    async fn scope(&self) -> Option<ApiKeyScope> {
        match &self.0 {
            Principal::ApiKey(k) => Some(match k.scope {
                Scope::Read => ApiKeyScope::Read,
                Scope::ReadWrite => ApiKeyScope::ReadWrite,
            }),
            _ => None,
        }
    }
}

/// The `viewer` query.
#[derive(Default)]
pub struct ViewerQuery;

#[Object]
impl ViewerQuery {
    /// Who is calling, and in which organisation.
    async fn viewer(&self, ctx: &Context<'_>) -> Viewer {
        Viewer(principal(ctx).clone())
    }
}
