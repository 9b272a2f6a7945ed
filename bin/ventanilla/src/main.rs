//! `ventanilla`: the one binary of the platform.
//!
//! - `serve` runs every service in this process, or only those named with
//!   `--services`, each after what it depends on;
//! - `migrate` creates the database if needed and applies the migrations;
//! - `projections list` / `projections rebuild NAME` rebuilds a read model
//!   from the log into a fresh copy and swaps it in once caught up.
//!
//! Errors end the process with one readable line on stderr and a non-zero
//! exit code; nothing panics on bad configuration.

mod platform;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;
use tokio_util::sync::CancellationToken;
use ventanilla_runtime::{ModuleRegistry, Settings, shutdown_on_signals, telemetry};

use crate::platform::Platform;

/// Ventanilla: citizen service for councils and businesses, on the web and
/// the social networks they already use.
#[derive(Parser)]
#[command(name = "ventanilla", version)]
struct Cli {
    /// A TOML configuration file (VENTANILLA__SECTION__KEY variables override it).
    #[arg(long, global = true, env = "VENTANILLA_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the platform's services until SIGTERM or Ctrl-C.
    Serve {
        /// Only these services (and what they depend on), comma-separated:
        /// gateway, tenants, tickets, social, projections. Default: all.
        #[arg(long, value_delimiter = ',')]
        services: Vec<String>,
    },
    /// Creates the database if it is missing and applies the migrations.
    Migrate,
    /// Read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
}

#[derive(Subcommand)]
enum ProjectionsCommand {
    /// Lists the projections and their checkpoints.
    List,
    /// Replays the log into a fresh copy of a read model and swaps it in.
    Rebuild {
        /// The projection's name (see `projections list`).
        name: String,
        /// Events per transaction.
        #[arg(long, default_value_t = 1000)]
        batch_size: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    telemetry::init(&settings.log)?;
    match cli.command {
        Command::Serve { services } => serve(settings, services).await,
        Command::Migrate => {
            Platform::connect(&settings).await?;
            tracing::info!("database ready and migrated");
            Ok(())
        }
        Command::Projections { command } => {
            let platform = Platform::connect(&settings).await?;
            match command {
                ProjectionsCommand::List => platform.list_projections().await,
                ProjectionsCommand::Rebuild { name, batch_size } => {
                    platform.rebuild(&settings, &name, batch_size).await
                }
            }
        }
    }
}

async fn serve(settings: Settings, services: Vec<String>) -> anyhow::Result<()> {
    let platform = Platform::connect(&settings).await?;
    let shutdown = CancellationToken::new();
    shutdown_on_signals(shutdown.clone());
    let notifications = platform.log.spawn_notifications(shutdown.clone());

    let mut registry = ModuleRegistry::new();
    registry.register(platform.projections_module(&settings))?;
    registry.register(ventanilla_tenants::TenantsService)?;
    registry.register(ventanilla_tickets::TicketsService)?;
    registry.register(ventanilla_social::SocialService)?;
    registry.register(ventanilla_gateway::Gateway)?;
    let targets = registry.resolve(&services)?;
    tracing::info!(
        services = ?targets,
        http = %settings.http.bind,
        database = %redact(settings.database.url.expose_secret()),
        "starting Ventanilla"
    );
    let result = registry.run(&services, &settings, shutdown.clone()).await;
    shutdown.cancel();
    let _ = notifications.await;
    platform.close().await;
    result?;
    tracing::info!("stopped");
    Ok(())
}

/// The URL without its password, for logs.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}
