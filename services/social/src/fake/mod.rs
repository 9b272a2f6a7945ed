//! Local HTTP servers that reproduce the networks' APIs — request and
//! response shapes, signatures, redeliveries, 429s with reset headers,
//! expired tokens and server errors — for the tests, the simulator and the
//! benchmark. Never used against a real network.

pub mod bluesky;
pub mod mastodon;
pub mod meta;
pub mod telegram;
pub mod whatsapp;
pub mod x;
