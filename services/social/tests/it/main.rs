//! Integration tests of the social service on a fresh database of the real
//! server, with the networks played by the local fakes: webhooks in (signed,
//! verified, deduplicated, parked), tickets opened from them, replies out on
//! the same channel, delivery states back on the ticket; publications and
//! the council's announcements posted on its accounts.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod announcements;
mod channels;
mod delivery;
mod end_to_end;
mod isolation;
mod notices;
mod polling;
mod publishing;
mod support;
mod webhooks;
