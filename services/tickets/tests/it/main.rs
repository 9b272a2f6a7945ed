//! Integration tests of the tickets service on a fresh database of the real
//! server: citizens open tickets, staff work them, the inbox and presence
//! read models show them (and rebuild to the same rows), the breach timer
//! records overdue clocks, and social messages become tickets once.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod health;
mod inbound;
mod inbox_scale;
mod isolation;
mod notify;
mod rebuild;
mod support;
mod timers;
mod workflow;
