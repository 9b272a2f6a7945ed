//! Telemetry: the process-wide `tracing` subscriber ([`init`]) and the
//! propagation of W3C trace context through HTTP ([`trace_context`]).
//!
//! Logs go to standard error, so a subcommand's output on standard output
//! stays clean for pipes. Exporting spans over OTLP is not done here yet.

pub mod trace_context;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{LogFormat, LogSettings};

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `RUST_LOG` or `log.filter` holds directives `tracing` cannot parse.
    #[error("invalid log filter in {source_name}: {error}")]
    Filter {
        /// `RUST_LOG` or `log.filter`.
        source_name: &'static str,
        /// The parser's complaint.
        error: tracing_subscriber::filter::ParseError,
    },
    /// Installing the global subscriber failed.
    #[error("could not install the tracing subscriber: {0}")]
    Install(Box<dyn std::error::Error + Send + Sync>),
}

/// Installs the global `tracing` subscriber: `settings.format` lines on
/// standard error, filtered by `RUST_LOG` when set, else by
/// `settings.filter`.
///
/// If a global subscriber is already installed (by an earlier call, or by
/// a test), this does nothing and returns `Ok`.
pub fn init(settings: &LogSettings) -> Result<(), TelemetryError> {
    if tracing::dispatcher::has_been_set() {
        return Ok(());
    }
    let filter = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => parse_filter(&directives, "RUST_LOG")?,
        _ => parse_filter(&settings.filter, "log.filter")?,
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match settings.format {
        LogFormat::Pretty => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().with_current_span(true).try_init(),
    };
    match installed {
        // Another thread won the race: that is the "already installed" case.
        Err(_) if tracing::dispatcher::has_been_set() => Ok(()),
        other => other.map_err(TelemetryError::Install),
    }
}

fn parse_filter(directives: &str, source_name: &'static str) -> Result<EnvFilter, TelemetryError> {
    EnvFilter::try_new(directives).map_err(|error| TelemetryError::Filter { source_name, error })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_init_is_a_no_op() {
        let settings = LogSettings {
            format: LogFormat::Json,
            // Quiet: the subscriber is global to the test binary.
            filter: "off".to_owned(),
        };
        init(&settings).unwrap();
        init(&settings).unwrap();
        tracing::info!("telemetry initialised twice");
    }

    #[test]
    fn bad_filter_is_refused() {
        let err = parse_filter("info,[", "log.filter").unwrap_err();
        assert!(err.to_string().contains("log.filter"), "{err}");
    }
}
