//! The tenants service's domain: its commands, events, state and decisions
//! (tenant lifecycle, plans, departments and officials, topics, staff and API keys).
//!
//! Pure by construction: this crate depends on no database, HTTP or GraphQL
//! crate (`make check-deps` proves it with `cargo tree`), reads no clock and
//! draws no random ids — commands carry `now` and new ids.
//!
//! Empty until issue #3 brings the service's business.
