//! Relay's `Node` interface and `node(id:)`: any object with a global id,
//! fetched by it, in the principal's tenant only.
//!
//! What this module must not do: answer with another tenant's object; a
//! global id of one is `NOT_FOUND`, like an id that names nothing.

use async_graphql::{Context, ID, Interface, Object, Result};
use ventanilla_tickets_domain::ticket::TicketId;

use super::access;
use super::ids;
use super::tickets::{self, Ticket};
use crate::error::{code, coded};

/// An object with a global id.
#[derive(Interface)]
#[graphql(field(name = "id", ty = "ID", desc = "Its global id."))]
pub enum Node {
    /// A ticket.
    Ticket(Ticket),
}

/// The `node` query.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The object with this global id, in the caller's organisation
    /// (`NOT_FOUND` when it has none: the answer is never null).
    async fn node(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Node>> {
        match ids::decode(&id) {
            Some((kind, uuid)) if kind == ids::TICKET => {
                let by = access::staff_reader(ctx)?;
                Ok(Some(Node::Ticket(
                    tickets::load(ctx, by, TicketId(uuid)).await?,
                )))
            }
            _ => Err(coded(
                code::NOT_FOUND,
                "nothing has this id; use the `id` field of an object this API returned",
            )),
        }
    }
}
