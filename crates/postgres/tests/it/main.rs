//! Integration tests of the PostgreSQL crate, each on a fresh database of the
//! real server (see `ventanilla-testkit`). One test binary; modules inside.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod command;
mod conformance;
mod database;
mod rebuild;
mod security;
