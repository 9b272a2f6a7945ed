//! The social service's domain: its commands, events, state and decisions
//! (linked social and e-mail accounts, inbound ingestion, outbound delivery and channel health).
//!
//! Pure by construction: this crate depends on no database, HTTP or GraphQL
//! crate (`make check-deps` proves it with `cargo tree`), reads no clock and
//! draws no random ids — commands carry `now` and new ids.
//!
//! Until issue #6 brings the service's business, it holds the contract its
//! readers depend on: [`inbound`], the `social.message_received` event.

pub mod inbound;
