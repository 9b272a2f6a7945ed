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
use std::sync::Arc;

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
    /// Operator tasks on tenants (councils and businesses).
    Tenant {
        #[command(subcommand)]
        command: Box<TenantCommand>,
    },
    /// Operator tasks on the plans tenants are given.
    Plan {
        #[command(subcommand)]
        command: PlanCommand,
    },
    /// Provisions (once) the demo council `demo` with its organisation, and
    /// prints its admin's login. For a development machine.
    Demo,
    /// Sends a realistic, signed webhook of a simulated network to the
    /// running server, as a citizen would (needs `make run`, which links the
    /// demo council to the simulated accounts). Actions: facebook-comment,
    /// messenger, x-mention, x-dm, telegram, whatsapp, mastodon, mastodon-dm,
    /// bluesky, email (the last six simulated inside the running server);
    /// and `reply --ticket REF`, the demo admin
    /// answering a ticket, `subscribe ADDRESS --topic NAME`, a citizen
    /// subscribing by e-mail, and `announce TITLE --topic NAME`, the demo
    /// admin publishing an announcement (until the portal and the console
    /// exist).
    Simulate {
        /// What the citizen does.
        action: String,
        /// What they write.
        text: String,
        /// The tenant whose simulated accounts receive it.
        #[arg(long, default_value = "demo")]
        tenant: String,
        /// The citizen's id on the network: the same id continues one
        /// conversation.
        #[arg(long, default_value = "4242424242")]
        from: String,
        /// For `reply`: the reference of the ticket answered.
        #[arg(long)]
        ticket: Option<String>,
        /// For `subscribe` and `announce`: the topic (its name, or the start
        /// of it: "Obras").
        #[arg(long)]
        topic: Option<String>,
    },
    /// Read models.
    Projections {
        #[command(subcommand)]
        command: ProjectionsCommand,
    },
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Provisions a tenant and invites its first admin (prints the
    /// one-time invitation code).
    Create {
        /// Display name, e.g. "Concello de Lugo".
        #[arg(long)]
        name: String,
        /// Unique slug (a-z, 0-9, '-'), e.g. "lugo".
        #[arg(long)]
        slug: String,
        /// council or business.
        #[arg(long, default_value = "council")]
        kind: String,
        /// The first admin's e-mail address.
        #[arg(long)]
        admin_email: String,
        /// The first admin's name.
        #[arg(long)]
        admin_name: Option<String>,
        /// Plan code (see the plans shipped: free, municipio, provincia).
        #[arg(long, default_value = "free")]
        plan: String,
        /// IANA time zone.
        #[arg(long, default_value = "Europe/Madrid")]
        time_zone: String,
        /// Default language.
        #[arg(long, default_value = "es")]
        language: String,
        /// Languages offered, comma-separated (default: the default language).
        #[arg(long, value_delimiter = ',')]
        languages: Vec<String>,
        /// Contact address (default: the admin's).
        #[arg(long)]
        contact_email: Option<String>,
    },
    /// Lists every tenant.
    List,
    /// Shows one tenant.
    Show {
        /// The tenant's slug.
        slug: String,
    },
    /// Suspends a tenant: its staff and API keys are refused; data is kept.
    Suspend {
        /// The tenant's slug.
        slug: String,
        /// Why (recorded in its history).
        #[arg(long)]
        reason: String,
    },
    /// Reactivates a suspended tenant.
    Reactivate {
        /// The tenant's slug.
        slug: String,
    },
    /// Moves a tenant to another plan.
    Plan {
        /// The tenant's slug.
        slug: String,
        /// The plan's code.
        plan: String,
    },
}

#[derive(clap::Args)]
struct PlanLimitsArgs {
    /// Display name.
    #[arg(long)]
    name: String,
    /// Staff accounts allowed (agents).
    #[arg(long)]
    agents: u32,
    /// Linked social or e-mail accounts allowed.
    #[arg(long)]
    channel_accounts: u32,
    /// Tickets opened per calendar month.
    #[arg(long)]
    tickets_per_month: u32,
    /// API requests per minute.
    #[arg(long)]
    api_requests_per_minute: u32,
}

#[derive(Subcommand)]
enum PlanCommand {
    /// Lists the plans and their limits.
    List,
    /// Defines a new plan.
    Define {
        /// Its code (a-z, 0-9, '-', '_').
        code: String,
        #[command(flatten)]
        limits: PlanLimitsArgs,
        /// Not offered in public listings.
        #[arg(long)]
        private: bool,
    },
    /// Changes a plan's name and limits.
    Change {
        /// Its code.
        code: String,
        #[command(flatten)]
        limits: PlanLimitsArgs,
    },
    /// Retires a plan: no new tenant gets it; tenants on it keep it.
    Retire {
        /// Its code.
        code: String,
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
        Command::Tenant { command } => {
            let platform = Platform::connect(&settings).await?;
            let result = tenant_command(&platform, *command).await;
            platform.close().await;
            result
        }
        Command::Plan { command } => {
            let platform = Platform::connect(&settings).await?;
            let result = plan_command(&platform, command).await;
            platform.close().await;
            result
        }
        Command::Demo => {
            let platform = Platform::connect(&settings).await?;
            let result = platform::demo(&platform, &settings).await;
            platform.close().await;
            result
        }
        Command::Simulate {
            action,
            text,
            tenant,
            from,
            ticket,
            topic,
        } => {
            let platform = Platform::connect(&settings).await?;
            let result = match (action.as_str(), ticket) {
                ("telegram" | "whatsapp" | "mastodon" | "mastodon-dm" | "bluesky" | "email", _) => {
                    platform::simulate_channel(&platform, &settings, &action, &tenant, &from, &text)
                        .await
                }
                ("subscribe" | "announce", _) => {
                    platform::simulate_notify(
                        &platform,
                        &settings,
                        &action,
                        &tenant,
                        topic.as_deref(),
                        &text,
                    )
                    .await
                }
                ("reply", Some(reference)) => {
                    platform::simulate_reply(&platform, &tenant, &reference, &text).await
                }
                ("reply", None) => Err(anyhow::anyhow!(
                    "reply needs --ticket REFERENCE (e.g. DEMO-2026-000004)"
                )),
                _ => platform::simulate(&platform, &settings, &action, &tenant, &from, &text).await,
            };
            platform.close().await;
            result
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

#[allow(clippy::print_stdout)]
async fn tenant_command(platform: &Platform, command: TenantCommand) -> anyhow::Result<()> {
    use ventanilla_tenants::operator::{Operator, ProvisionRequest};
    let operator_id = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
    let operator = Operator::new(std::sync::Arc::clone(&platform.log), &operator_id);
    match command {
        TenantCommand::Create {
            name,
            slug,
            kind,
            admin_email,
            admin_name,
            plan,
            time_zone,
            language,
            languages,
            contact_email,
        } => {
            let done = operator
                .provision(&ProvisionRequest {
                    name,
                    slug,
                    kind,
                    plan: Some(plan),
                    time_zone: Some(time_zone),
                    default_language: Some(language),
                    languages,
                    admin_email: admin_email.clone(),
                    admin_name,
                    contact_email,
                })
                .await?;
            println!("tenant {} provisioned (id {})", done.slug, done.tenant);
            println!(
                "first admin {admin_email}: invitation code, shown once, valid until {}:",
                done.invitation_expires_at.format("%Y-%m-%d %H:%M UTC")
            );
            println!("  {}", done.invitation_code);
        }
        TenantCommand::List => {
            let tenants = operator.list().await?;
            println!(
                "{:<24} {:<10} {:<10} {:<10} NAME",
                "SLUG", "KIND", "PLAN", "STATUS"
            );
            for t in &tenants {
                println!(
                    "{:<24} {:<10} {:<10} {:<10} {}",
                    t.slug, t.kind, t.plan, t.status, t.name
                );
            }
            println!("{} tenant(s)", tenants.len());
        }
        TenantCommand::Show { slug } => {
            let t = operator.show(&slug).await?;
            println!("slug:             {}", t.slug);
            println!("id:               {}", t.tenant_id);
            println!("name:             {}", t.name);
            println!("kind:             {}", t.kind);
            println!("plan:             {}", t.plan);
            match &t.status_reason {
                Some(reason) => println!("status:           {} ({reason})", t.status),
                None => println!("status:           {}", t.status),
            }
            println!("time zone:        {}", t.time_zone);
            println!(
                "languages:        {} (default {})",
                t.languages.join(", "),
                t.default_language
            );
            println!("contact:          {}", t.contact_email);
            println!(
                "provisioned:      {}",
                t.provisioned_at.format("%Y-%m-%d %H:%M UTC")
            );
        }
        TenantCommand::Suspend { slug, reason } => {
            operator.suspend(&slug, &reason).await?;
            println!("tenant {slug} suspended");
        }
        TenantCommand::Reactivate { slug } => {
            operator.reactivate(&slug).await?;
            println!("tenant {slug} reactivated");
        }
        TenantCommand::Plan { slug, plan } => {
            operator.change_plan(&slug, &plan).await?;
            println!("tenant {slug} moved to plan {plan}");
        }
    }
    Ok(())
}

fn limits_of(args: &PlanLimitsArgs) -> ventanilla_tenants_domain::plan::PlanLimits {
    ventanilla_tenants_domain::plan::PlanLimits {
        agents: args.agents,
        channel_accounts: args.channel_accounts,
        tickets_per_month: args.tickets_per_month,
        api_requests_per_minute: args.api_requests_per_minute,
    }
}

#[allow(clippy::print_stdout)]
async fn plan_command(platform: &Platform, command: PlanCommand) -> anyhow::Result<()> {
    let operator_id = std::env::var("USER").unwrap_or_else(|_| "operator".to_owned());
    let operator = ventanilla_tenants::operator::Operator::new(
        std::sync::Arc::clone(&platform.log),
        &operator_id,
    );
    match command {
        PlanCommand::List => {
            println!(
                "{:<14} {:<24} {:>7} {:>9} {:>13} {:>9}  STATE",
                "CODE", "NAME", "AGENTS", "CHANNELS", "TICKETS/MONTH", "API/MIN"
            );
            for p in operator.plans().await? {
                let l = &p.plan.limits;
                let state = match (p.retired, p.plan.public) {
                    (true, _) => "retired",
                    (false, true) => "public",
                    (false, false) => "private",
                };
                println!(
                    "{:<14} {:<24} {:>7} {:>9} {:>13} {:>9}  {state}",
                    p.plan.code.as_str(),
                    p.plan.name.as_str(),
                    l.agents,
                    l.channel_accounts,
                    l.tickets_per_month,
                    l.api_requests_per_minute
                );
            }
        }
        PlanCommand::Define {
            code,
            limits,
            private,
        } => {
            operator
                .define_plan(&code, &limits.name, limits_of(&limits), !private)
                .await?;
            println!("plan {code} defined");
        }
        PlanCommand::Change { code, limits } => {
            operator
                .change_plan_limits(&code, &limits.name, limits_of(&limits))
                .await?;
            println!("plan {code} changed");
        }
        PlanCommand::Retire { code } => {
            operator.retire_plan(&code).await?;
            println!("plan {code} retired");
        }
    }
    Ok(())
}

async fn serve(settings: Settings, services: Vec<String>) -> anyhow::Result<()> {
    let platform = Platform::connect(&settings).await?;
    let shutdown = CancellationToken::new();
    shutdown_on_signals(shutdown.clone());
    let notifications = platform.log.spawn_notifications(shutdown.clone());

    let mut registry = ModuleRegistry::new();
    registry.register(platform.projections_module(&settings))?;
    registry.register(ventanilla_tenants::TenantsService)?;
    registry.register(
        ventanilla_tickets::TicketsService::new(Arc::clone(&platform.log), platform::member_id())
            .with_notify(settings.notify.clone()),
    )?;
    registry.register(ventanilla_social::SocialService::new(
        Arc::clone(&platform.log),
        settings.social.clone(),
        platform::member_id(),
    ))?;
    registry.register(ventanilla_gateway::Gateway::new(
        Arc::clone(&platform.log),
        &settings,
    ))?;
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
