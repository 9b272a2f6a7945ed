//! The tickets service's domain: its commands, events, state and decisions
//! (tickets and their conversations, the inbox, response-time clocks and citizens' subscriptions).
//!
//! Pure by construction: this crate depends on no database, HTTP or GraphQL
//! crate (`make check-deps` proves it with `cargo tree`), reads no clock and
//! draws no random ids — commands carry `now` and new ids.
//!
//! Empty until issue #4 and #5 brings the service's business.
