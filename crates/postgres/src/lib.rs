//! Everything Ventanilla keeps in PostgreSQL, behind the contracts of
//! `ventanilla-eventlog`:
//!
//! - [`db`]: connecting (as the owner for migrations, as the unprivileged
//!   application role otherwise), creating the database, migrating, and
//!   transactions scoped to one tenant for row-level security.
//! - [`eventlog`]: [`PgEventLog`], the PostgreSQL backend of the event log,
//!   with LISTEN/NOTIFY wake-ups.
//! - [`subscription`]: durable named subscriptions with checkpoints stored in
//!   the same transaction as the handler's writes, run as consumer groups.
//! - [`projection`]: read models fed by subscriptions, and their rebuild
//!   into a fresh copy that is swapped in once caught up.
//! - [`stream_index`]: the built-in reference projection.
//!
//! Services' domain code never depends on this crate; their projections and
//! repositories do.

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod db;
pub mod eventlog;
pub mod projection;
pub mod stream_index;
pub mod subscription;

pub use db::{Database, DbError, PoolSettings, begin_for_tenant};
pub use eventlog::PgEventLog;
pub use projection::{Projection, ProjectionRunner, RebuildProgress, rebuild};
pub use subscription::{Handler, Subscription, SubscriptionConfig, TenantTx};

/// The SQL toolkit, re-exported so callers use the same version.
pub use sqlx;

/// The schema migrations, embedded from the repository's `migrations/`.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations");
