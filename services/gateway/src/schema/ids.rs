//! Global object ids (Relay): `base64("<Type>:<uuid>")`, e.g. a ticket's id
//! is `base64("Ticket:0190…")`. Clients treat them as opaque strings.
//!
//! An id names an object, never grants access to it: resolvers look the
//! object up in the principal's tenant, so another tenant's id is
//! `NOT_FOUND`.
//!
//! What this module must not do: look anything up.

use async_graphql::{ID, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use uuid::Uuid;
use ventanilla_tickets_domain::ticket::TicketId;

use crate::error::invalid;

/// The type name of tickets in ids.
pub const TICKET: &str = "Ticket";

/// The global id of the object `id` of type `kind`.
pub fn encode(kind: &str, id: Uuid) -> ID {
    ID(STANDARD.encode(format!("{kind}:{id}")))
}

/// The type and uuid of a global id, if it is one.
pub fn decode(id: &str) -> Option<(String, Uuid)> {
    let bytes = STANDARD.decode(id.trim()).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (kind, uuid) = text.split_once(':')?;
    Some((kind.to_owned(), Uuid::parse_str(uuid).ok()?))
}

/// The ticket a global id names, for the argument `field`; refused with
/// `VALIDATION` when it is not a ticket's id at all.
pub fn ticket(field: &str, id: &ID) -> Result<TicketId> {
    match decode(id) {
        Some((kind, uuid)) if kind == TICKET => Ok(TicketId(uuid)),
        _ => Err(invalid(
            field,
            format!("{field}: is not the id of a ticket; use the `id` field of a Ticket"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_others_are_refused() {
        let uuid = Uuid::new_v4();
        let id = encode(TICKET, uuid);
        assert_eq!(decode(&id), Some((TICKET.to_owned(), uuid)));
        assert!(matches!(ticket("id", &id), Ok(TicketId(u)) if u == uuid));
        for bad in [
            "nope".to_owned(),
            STANDARD.encode("Ticket:not-a-uuid"),
            encode("Staff", uuid).0,
        ] {
            assert!(ticket("id", &ID(bad.clone())).is_err(), "{bad}");
        }
    }
}
