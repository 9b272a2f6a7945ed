//! Integration tests of the gateway: the GraphQL API over HTTP against the
//! real router, on a fresh database of the real server, through the real
//! services.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod access;
mod admin;
mod agents;
mod announcements;
mod inbox;
mod integrations;
mod limits;
mod live;
mod memo;
mod operator;
mod organisation;
mod plans;
mod presence;
mod rate_limit;
mod schema_file;
mod settings;
mod staff;
mod support;
