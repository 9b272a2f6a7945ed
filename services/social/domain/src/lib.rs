//! The social service's domain: its commands, events, state and decisions
//! (linked social and e-mail accounts, inbound ingestion, outbound delivery and channel health).
//!
//! Pure by construction: this crate depends on no database, HTTP or GraphQL
//! crate (`make check-deps` proves it with `cargo tree`), reads no clock and
//! draws no random ids — commands carry `now` and new ids.
//!
//! - [`account`]: a linked account (`account-<uuid>`): link, unlink,
//!   credentials rotated, health;
//! - [`inbound`]: the contract of `social.message_received`, what citizens
//!   write (read by the tickets service);
//! - [`delivery`]: the delivery of a reply (`delivery-<uuid>`), attempts
//!   recorded before the call; `delivery.sent` / `delivery.failed` are read
//!   by the tickets service;
//! - [`publication`]: an announcement posted to linked accounts
//!   (`publication-<uuid>`), each post's attempt recorded first.

pub mod account;
pub mod delivery;
pub mod inbound;
pub mod publication;
