//! The organisation's staff: every member lists them (tickets are assigned
//! to colleagues); admins invite, re-invite, change the role of, deactivate and reactivate its members and end their sessions;
//! an invited member accepts the invitation (the one mutation besides
//! `login` an anonymous caller may run) and is logged in by it.
//!
//! What this module must not do: check passwords or invitation codes (the
//! tenants service does), or show an invitation code anywhere but in the
//! answer that created it.

use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_tenants::staff::StaffSummary;
use ventanilla_tenants_domain::staff::{Role, StaffId};

use super::access::{self, services};
use super::session::{Session, named_tenant, start_session};
use super::viewer::StaffRole;
use crate::error::{INTERNAL_MESSAGE, code, coded, service_error};

/// Where a member stands.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum StaffStatus {
    /// Invited; has not accepted yet.
    Invited,
    /// Works.
    Active,
    /// May not log in (an admin can reactivate them).
    Deactivated,
}

/// A member of the organisation's staff.
#[derive(SimpleObject, Debug)]
pub struct StaffMember {
    /// Their id.
    pub id: Uuid,
    /// Their address (lowercased).
    pub email: String,
    /// Their name.
    pub name: String,
    /// What they may do.
    pub role: StaffRole,
    /// Where they stand.
    pub status: StaffStatus,
    /// When they were invited.
    pub invited_at: DateTime<Utc>,
    /// When they accepted the invitation.
    pub activated_at: Option<DateTime<Utc>>,
    /// When they were deactivated, while they are.
    pub deactivated_at: Option<DateTime<Utc>>,
}

impl TryFrom<StaffSummary> for StaffMember {
    type Error = async_graphql::Error;

    fn try_from(s: StaffSummary) -> Result<Self> {
        let role = match s.role.as_str() {
            "admin" => StaffRole::Admin,
            "agent" => StaffRole::Agent,
            other => return Err(unreadable("role", other)),
        };
        let status = match s.status.as_str() {
            "invited" => StaffStatus::Invited,
            "active" => StaffStatus::Active,
            "deactivated" => StaffStatus::Deactivated,
            other => return Err(unreadable("status", other)),
        };
        Ok(Self {
            id: s.staff_id,
            email: s.email,
            name: s.name,
            role,
            status,
            invited_at: s.invited_at,
            activated_at: s.activated_at,
            deactivated_at: s.deactivated_at,
        })
    }
}

fn unreadable(field: &str, value: &str) -> async_graphql::Error {
    tracing::error!(field, value, "a staff member's row the schema cannot read");
    coded(code::INTERNAL, INTERNAL_MESSAGE)
}

/// An invitation just made: the member and the one-time code they accept
/// it with (`acceptInvitation`). Give it to them by a channel you trust.
#[derive(SimpleObject)]
pub struct StaffInvitation {
    /// The member invited.
    pub staff_member: StaffMember,
    /// The one-time code. Shown only now: it is stored hashed.
    pub invitation_code: String,
    /// Until when it works.
    pub expires_at: DateTime<Utc>,
}

impl std::fmt::Debug for StaffInvitation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StaffInvitation")
            .field("staff_member", &self.staff_member)
            .field("invitation_code", &"…")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

fn role_of(role: StaffRole) -> Role {
    match role {
        StaffRole::Admin => Role::Admin,
        StaffRole::Agent => Role::Agent,
    }
}

/// The member `id`, read back after a change (`NOT_FOUND` when the
/// organisation has none).
async fn member(ctx: &Context<'_>, tenant: TenantId, id: Uuid) -> Result<StaffMember> {
    let all = services(ctx)?
        .staff
        .list(tenant)
        .await
        .map_err(|e| service_error(&e))?;
    all.into_iter()
        .find(|s| s.staff_id == id)
        .ok_or_else(|| {
            coded(
                code::NOT_FOUND,
                format!("there is no staff member {id} in this organisation"),
            )
        })?
        .try_into()
}

/// The staff, as its members see it.
#[derive(Default)]
pub struct StaffQuery;

#[Object]
impl StaffQuery {
    /// Every member of the organisation's staff, deactivated ones too (the
    /// colleagues a ticket can be assigned to). Staff; inviting and
    /// changing them is for admins.
    async fn staff_members(&self, ctx: &Context<'_>) -> Result<Vec<StaffMember>> {
        let by = access::staff_reader(ctx)?;
        services(ctx)?
            .staff
            .list(by.tenant)
            .await
            .map_err(|e| service_error(&e))?
            .into_iter()
            .map(TryInto::try_into)
            .collect()
    }
}

/// Managing the staff, and accepting an invitation.
#[derive(Default)]
pub struct StaffMutation;

#[Object]
impl StaffMutation {
    /// Accepts the invitation of the member `staffId` of the organisation
    /// `tenant` (its slug) with its one-time code, sets their first
    /// password (at least 12 characters) and logs them in. A wrong, used or
    /// expired code is `VALIDATION`; ask an admin for a new invitation.
    async fn accept_invitation(
        &self,
        ctx: &Context<'_>,
        tenant: String,
        staff_id: Uuid,
        invitation_code: String,
        password: String,
    ) -> Result<Session> {
        let services = services(ctx)?;
        let tenant = named_tenant(services, &tenant).await?;
        let staff = &services.staff;
        staff
            .accept_invitation(tenant, StaffId(staff_id), &invitation_code, &password)
            .await
            .map_err(|e| service_error(&e))?;
        let email = staff
            .list(tenant)
            .await
            .map_err(|e| service_error(&e))?
            .into_iter()
            .find(|s| s.staff_id == staff_id)
            .map(|s| s.email)
            .ok_or_else(|| {
                tracing::error!(%staff_id, "a member who just accepted is not in the staff list");
                coded(code::INTERNAL, INTERNAL_MESSAGE)
            })?;
        start_session(services, tenant, &email, &password).await
    }

    /// Invites a member (`QUOTA_EXCEEDED` when the plan has no agent left,
    /// `CONFLICT` when the address already belongs to a member). Admins
    /// only.
    async fn invite_staff(
        &self,
        ctx: &Context<'_>,
        email: String,
        name: String,
        role: StaffRole,
    ) -> Result<StaffInvitation> {
        let by = access::admin(ctx)?;
        let invitation = services(ctx)?
            .staff
            .invite(by.tenant, Some(by.staff), &email, &name, role_of(role))
            .await
            .map_err(|e| service_error(&e))?;
        Ok(StaffInvitation {
            staff_member: member(ctx, by.tenant, invitation.staff.0).await?,
            invitation_code: invitation.invitation_code,
            expires_at: invitation.expires_at,
        })
    }

    /// A new invitation code for a member who has not accepted yet (the
    /// old one stops working). Admins only.
    async fn reissue_invitation(
        &self,
        ctx: &Context<'_>,
        staff_id: Uuid,
    ) -> Result<StaffInvitation> {
        let by = access::admin(ctx)?;
        let invitation = services(ctx)?
            .staff
            .reissue_invitation(by.tenant, by.staff, StaffId(staff_id))
            .await
            .map_err(|e| service_error(&e))?;
        Ok(StaffInvitation {
            staff_member: member(ctx, by.tenant, staff_id).await?,
            invitation_code: invitation.invitation_code,
            expires_at: invitation.expires_at,
        })
    }

    /// Makes a member an admin or an agent (the last admin stays one:
    /// `CONFLICT`). Admins only.
    async fn change_staff_role(
        &self,
        ctx: &Context<'_>,
        staff_id: Uuid,
        role: StaffRole,
    ) -> Result<StaffMember> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .staff
            .change_role(by.tenant, by.staff, StaffId(staff_id), role_of(role))
            .await
            .map_err(|e| service_error(&e))?;
        member(ctx, by.tenant, staff_id).await
    }

    /// Stops a member from logging in and ends their sessions (the last
    /// admin cannot be deactivated: `CONFLICT`). Admins only.
    async fn deactivate_staff(&self, ctx: &Context<'_>, staff_id: Uuid) -> Result<StaffMember> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .staff
            .deactivate(by.tenant, by.staff, StaffId(staff_id))
            .await
            .map_err(|e| service_error(&e))?;
        member(ctx, by.tenant, staff_id).await
    }

    /// Lets a deactivated member log in again. Admins only.
    async fn reactivate_staff(&self, ctx: &Context<'_>, staff_id: Uuid) -> Result<StaffMember> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .staff
            .reactivate(by.tenant, by.staff, StaffId(staff_id))
            .await
            .map_err(|e| service_error(&e))?;
        member(ctx, by.tenant, staff_id).await
    }

    /// Ends every session of a member (a lost laptop); they log in again.
    /// Returns how many were ended. Admins only.
    async fn revoke_staff_sessions(&self, ctx: &Context<'_>, staff_id: Uuid) -> Result<i32> {
        let by = access::admin(ctx)?;
        let ended = services(ctx)?
            .staff
            .revoke_sessions(by.tenant, by.staff, StaffId(staff_id))
            .await
            .map_err(|e| service_error(&e))?;
        Ok(i32::try_from(ended).unwrap_or(i32::MAX))
    }
}
