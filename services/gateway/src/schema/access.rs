//! What each kind of principal may reach, checked at the top of every
//! resolver that needs it, before any service is called.
//!
//! - anonymous: `login`, `acceptInvitation` (and `viewer`, which says it
//!   is anonymous);
//! - the operator: no tenant, so nothing of a tenant's;
//! - staff: the inbox, tickets, their mutations, presence figures,
//!   announcements (the services check again that the member is active,
//!   and the role each action needs);
//! - API keys: `openTicket`, `subscribeToTopic` and `subscribeToCase`, with
//!   scope `read_write` only; a `read` key is refused every mutation;
//! - staff and API keys alike: the directory (departments, officials,
//!   topics: what a question is addressed to and a citizen subscribes to)
//!   and the presence figures ([`member`]);
//! - staff: also the linked channel accounts (announcements go out on
//!   them) and the staff list (tickets are assigned to colleagues);
//! - the operator: the tenants' list and lifecycle, the plan catalogue
//!   ([`operator`]);
//! - admins: their organisation's configuration ([`admin`];
//!   [`super::admin`], [`super::organisation`], [`super::staff`]); agents
//!   are refused it.
//!
//! What this module must not do: look at arguments (the tenant is the
//! principal's, never an argument's).

use std::sync::Arc;

use async_graphql::{Context, Result};
use ventanilla_kernel::TenantId;
use ventanilla_tenants::api_keys::KeyPrincipal;
use ventanilla_tenants_domain::staff::Role;

use super::Services;
use crate::auth::{Principal, StaffPrincipal};
use crate::error::{INTERNAL_MESSAGE, code, coded};

const ANONYMOUS: Principal = Principal::Anonymous;

/// The request's principal (anonymous when none was put in the request).
pub fn principal<'a>(ctx: &Context<'a>) -> &'a Principal {
    ctx.data_opt::<Principal>().unwrap_or(&ANONYMOUS)
}

/// The services the schema calls.
pub fn services<'a>(ctx: &Context<'a>) -> Result<&'a Services> {
    ctx.data::<Arc<Services>>().map(|s| &**s).map_err(|_| {
        tracing::error!("the schema was built without its services");
        coded(code::INTERNAL, INTERNAL_MESSAGE)
    })
}

fn log_in_first() -> async_graphql::Error {
    coded(
        code::UNAUTHENTICATED,
        "this needs credentials: send `Authorization: Bearer <token>` with a session token from the login mutation or an API key",
    )
}

fn operator_has_no_tenant() -> async_graphql::Error {
    coded(
        code::FORBIDDEN,
        "the operator belongs to no organisation; log in as a staff member of one to work its tickets",
    )
}

fn read_only_key() -> async_graphql::Error {
    coded(
        code::FORBIDDEN,
        "this API key has the scope read and may not change anything; ask an admin of the organisation for a read_write key",
    )
}

/// A staff member, for reading the tenant's tickets.
pub fn staff_reader(ctx: &Context<'_>) -> Result<StaffPrincipal> {
    match principal(ctx) {
        Principal::Staff(s) => Ok(*s),
        Principal::Anonymous => Err(log_in_first()),
        Principal::Operator => Err(operator_has_no_tenant()),
        Principal::ApiKey(_) => Err(coded(
            code::FORBIDDEN,
            "the inbox and tickets are for the organisation's staff; an API key can open tickets and subscribe citizens",
        )),
    }
}

/// A staff member, for working tickets (a `read` key is told it may not
/// change anything at all).
pub fn staff_writer(ctx: &Context<'_>) -> Result<StaffPrincipal> {
    match principal(ctx) {
        Principal::ApiKey(key) if !key.allows_writes() => Err(read_only_key()),
        Principal::ApiKey(_) => Err(coded(
            code::FORBIDDEN,
            "working tickets needs a staff login; an API key can open tickets and subscribe citizens",
        )),
        _ => staff_reader(ctx),
    }
}

/// Anyone of an organisation — a staff member or an API key of either
/// scope — for what the organisation shows anyway: its directory
/// (departments, officials, topics), which integrators need to address a
/// question or subscribe a citizen. The organisation's id.
pub fn member(ctx: &Context<'_>) -> Result<TenantId> {
    match principal(ctx) {
        Principal::Staff(s) => Ok(s.tenant),
        Principal::ApiKey(key) => Ok(key.tenant),
        Principal::Anonymous => Err(log_in_first()),
        Principal::Operator => Err(operator_has_no_tenant()),
    }
}

/// An API key of scope `read_write`, for what integrators do.
pub fn integrator_writer(ctx: &Context<'_>) -> Result<KeyPrincipal> {
    match principal(ctx) {
        Principal::ApiKey(key) if key.allows_writes() => Ok(*key),
        Principal::ApiKey(_) => Err(read_only_key()),
        Principal::Anonymous => Err(log_in_first()),
        Principal::Operator => Err(operator_has_no_tenant()),
        Principal::Staff(_) => Err(coded(
            code::FORBIDDEN,
            "this is for integrators: call it with an API key of scope read_write",
        )),
    }
}

/// The operator of the install, for managing tenants and plans.
pub fn operator(ctx: &Context<'_>) -> Result<()> {
    match principal(ctx) {
        Principal::Operator => Ok(()),
        Principal::Anonymous => Err(log_in_first()),
        Principal::Staff(_) | Principal::ApiKey(_) => Err(coded(
            code::FORBIDDEN,
            "managing organisations and plans is for the operator of the install; send the operator token",
        )),
    }
}

/// An admin of the organisation, for configuring it (an agent, a key, the
/// operator are refused; the services check again that the admin is
/// active).
pub fn admin(ctx: &Context<'_>) -> Result<StaffPrincipal> {
    match principal(ctx) {
        Principal::Staff(s) if s.role == Role::Admin => Ok(*s),
        Principal::Staff(_) => Err(coded(
            code::FORBIDDEN,
            "only an admin of the organisation may configure it; ask one of its admins",
        )),
        Principal::ApiKey(_) => Err(coded(
            code::FORBIDDEN,
            "configuring the organisation needs an admin's staff login, not an API key",
        )),
        Principal::Anonymous => Err(log_in_first()),
        Principal::Operator => Err(operator_has_no_tenant()),
    }
}
