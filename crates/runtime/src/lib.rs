//! The process runtime of Ventanilla: what every process needs whatever
//! services it runs — layered [configuration](config), [telemetry]
//! (logging and W3C trace context over HTTP), the [module](modules) runner
//! that starts services in dependency order and stops them all on the
//! first failure, the [health] endpoints, and graceful [shutdown].
//!
//! It knows nothing of the services' business: a service is a [`Module`]
//! with a name, dependencies, routes and readiness checks.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod config;
pub mod health;
pub mod modules;
pub mod shutdown;
pub mod telemetry;
pub mod ticker;

pub use config::{ConfigError, LogFormat, Settings, env_sample};
pub use health::{ReadinessCheck, ops_router};
pub use modules::{Module, ModuleError, ModuleRegistry, RunError, Running, StartContext};
pub use shutdown::shutdown_on_signals;
pub use telemetry::trace_context::propagate_traceparent;
