//! The vocabulary every Ventanilla crate shares: identifiers, the actor behind a
//! change, the W3C trace context that follows a request across services, and
//! the one rule for web addresses ([`web`]) every service checks links by.
//!
//! This crate is pure: no I/O, no clock, no random numbers. Values are parsed
//! at the edge (`FromStr`/`TryFrom`) and are valid for as long as they exist.

mod actor;
mod id;
mod newtype;
mod stream;
mod trace;
pub mod web;

pub use actor::Actor;
pub use id::{EventId, IdParseError, TenantId};
pub use stream::{StreamId, StreamIdError};
pub use trace::{TraceParent, TraceParentError};
