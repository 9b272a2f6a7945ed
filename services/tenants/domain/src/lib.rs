//! The tenants service's domain: the tenant lifecycle, plans and their
//! limits, the organisation a citizen can address (departments, officials,
//! topics), business hours, portal settings, staff and API keys.
//!
//! Pure by construction: this crate depends on no database, HTTP or GraphQL
//! crate (`make check-deps` proves it with `cargo tree`), reads no clock and
//! draws no random ids — commands carry `now`, new ids, and already-hashed
//! secrets (hashing with argon2id happens in the service layer).
//!
//! Every aggregate is a [`ventanilla_eventlog::Decider`], tested
//! given/when/then.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod api_key;
pub mod organisation;
pub mod plan;
pub mod portal;
pub mod schedule;
pub mod staff;
pub mod tenant;
pub mod values;
