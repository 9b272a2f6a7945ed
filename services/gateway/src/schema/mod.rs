//! The GraphQL schema, v1: one `MergedObject` per area, so that later work
//! adds an area (operator, admin, subscriptions…) without touching the
//! others.
//!
//! - [`viewer`]: who is calling;
//! - [`session`]: `login` / `logout`;
//! - [`tickets`]: the inbox, a ticket and its thread, agents' mutations;
//! - [`integrations`]: `openTicket`, `subscribeToTopic`, `subscribeToCase` (API
//!   keys);
//! - [`operator`]: the organisations' list and lifecycle, and the plan
//!   catalogue (the operator);
//! - [`admin`]: adding departments and topics, API keys, channel accounts
//!   (admins);
//! - [`organisation`]: the directory (renaming and removing departments and
//!   topics, officials), business hours and holidays, the portal's settings
//!   (admins);
//! - [`staff`]: the staff members, invitations and their acceptance;
//! - [`settings`]: service levels (staff read, admins set) and the
//!   notifications' sender (admins);
//! - [`health`]: presence figures per day (staff);
//! - [`announcements`]: publishing announcements and their progress
//!   (staff);
//! - [`node`]: Relay's `Node` and global ids ([`ids`]);
//! - [`access`]: what each principal may reach.
//!
//! The served SDL is [`sdl`]; `schema/ventanilla.graphql` at the repository
//! root is a copy a test keeps equal to it.
//!
//! What this module must not do: hold business rules or read tables; every
//! resolver calls a service's client API with the principal's tenant.

use std::sync::Arc;

use async_graphql::{MergedObject, MergedSubscription, Schema, SchemaBuilder};
use ventanilla_social::accounts::Accounts;
use ventanilla_tenants::api_keys::ApiKeys;
use ventanilla_tenants::operator::Operator;
use ventanilla_tenants::organisation::Organisation;
use ventanilla_tenants::staff::Staff;
use ventanilla_tickets::notify::service::Notifications;
use ventanilla_tickets::service::Tickets;

pub mod access;
pub mod admin;
pub mod announcements;
pub mod health;
pub mod ids;
pub mod integrations;
pub mod live;
mod node;
pub mod operator;
pub mod organisation;
pub mod session;
pub mod settings;
pub mod staff;
pub mod tickets;
pub mod viewer;

/// Every query.
#[derive(MergedObject, Default)]
pub struct Query(
    viewer::ViewerQuery,
    tickets::TicketsQuery,
    node::NodeQuery,
    operator::OperatorQuery,
    admin::AdminQuery,
    organisation::OrganisationQuery,
    health::HealthQuery,
    announcements::AnnouncementsQuery,
    staff::StaffQuery,
    settings::SettingsQuery,
);

/// Every mutation.
#[derive(MergedObject, Default)]
pub struct Mutation(
    session::SessionMutation,
    tickets::TicketsMutation,
    integrations::IntegrationsMutation,
    operator::OperatorMutation,
    admin::AdminMutation,
    organisation::OrganisationMutation,
    announcements::AnnouncementsMutation,
    staff::StaffMutation,
    settings::SettingsMutation,
);

/// The schema the gateway serves.
pub type VentanillaSchema = Schema<Query, Mutation, Subscription>;

/// The live subscriptions (over WebSocket).
#[derive(MergedSubscription, Default)]
pub struct Subscription(live::LiveSubscription);

/// The services' client APIs the resolvers call (schema data).
pub struct Services {
    /// Staff logins and sessions.
    pub staff: Arc<Staff>,
    /// Finds the organisation a login names (by slug); the operator's
    /// fields (organisations and the plan catalogue).
    pub operator: Operator,
    /// The directory (departments, officials, topics), business hours and
    /// holidays, the portal's settings.
    pub organisation: Organisation,
    /// API keys.
    pub api_keys: Arc<ApiKeys>,
    /// Linked social network accounts.
    pub accounts: Accounts,
    /// Tickets and the inbox.
    pub tickets: Tickets,
    /// "Avísame cuando…" subscriptions.
    pub notifications: Notifications,
    /// Most items one page may ask for (`gateway.max_page_size`).
    pub max_page_size: u32,
}

/// The schema's types, without data or limits.
pub fn builder() -> SchemaBuilder<Query, Mutation, Subscription> {
    Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
}

/// The SDL of the schema the gateway serves.
pub fn sdl() -> String {
    builder().finish().sdl()
}
