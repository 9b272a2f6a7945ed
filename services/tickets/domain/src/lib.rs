//! The tickets service's domain: its commands, events, state and decisions
//! (tickets and their conversations, the inbox, response-time clocks and
//! citizens' subscriptions).
//!
//! - [`values`]: validated values (channels, kinds of request, the citizen's
//!   contact, subjects, bodies, tags, priorities, references, tracking token
//!   hashes) and the identifiers the tickets refer to.
//! - [`ticket`]: the [`ticket::Ticket`] aggregate, stream `ticket-<uuid>` in
//!   the tenant: a citizen's question or suggestion, its conversation, its
//!   workflow (new → open → waiting on the citizen → resolved → closed, with
//!   reopening), assignment, tags, priority, internal notes and merging,
//!   and its response-time clocks (due instants set by the service, breaches
//!   recorded when a timer finds a clock overdue).
//! - [`service_levels`]: a tenant's response-time targets and reopening
//!   window, stream `ticket-settings`.
//! - [`subscription`]: a citizen's "Avísame cuando…" subscription to a topic
//!   or a case, by e-mail (double opt-in), social identity or webhook;
//! - [`announcement`]: an announcement published once to the subscribers of
//!   its topics and the chosen social accounts;
//! - [`sender`]: who a tenant's notification e-mails come from;
//! - [`notice`]: a notification handed to the social service to deliver on
//!   a social network.
//!
//! Pure by construction: this crate depends on no database, HTTP or GraphQL
//! crate (`make check-deps` proves it with `cargo tree`), reads no clock and
//! draws no random ids — commands carry `now`, new ids, already-hashed
//! tracking tokens and the facts only the service can look up (whether an
//! official accepts public questions, whether an agent belongs to the
//! tenant). Projections, response-time clocks and timers belong to the
//! service.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod announcement;
pub mod notice;
pub mod sender;
pub mod service_levels;
pub mod subscription;
pub mod ticket;
pub mod values;
