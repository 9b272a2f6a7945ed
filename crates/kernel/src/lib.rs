//! The vocabulary every Ventanilla crate shares: identifiers, the actor behind a
//! change, and the W3C trace context that follows a request across services.
//!
//! This crate is pure: no I/O, no clock, no random numbers. Values are parsed
//! at the edge (`FromStr`/`TryFrom`) and are valid for as long as they exist.

mod actor;
mod id;
mod newtype;
mod stream;
mod trace;

pub use actor::Actor;
pub use id::{EventId, IdParseError, TenantId};
pub use stream::{StreamId, StreamIdError};
pub use trace::{TraceParent, TraceParentError};
