//! One binary, many roles: each service is a [`Module`] with a name and
//! the modules it depends on. A process runs the modules it is asked for
//! plus their dependencies, starting each after what it depends on, serves
//! their routes and the operational endpoints on one HTTP listener, and
//! stops everything when asked to or when any module fails.
//!
//! This is the shape of Grafana Loki's modules (dskit): the runner knows
//! nothing of what a module does, only how to start, watch and stop it.

use std::any::Any;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use futures::FutureExt;
use futures::future::BoxFuture;
use tokio::net::TcpListener;
use tokio::task::{Id, JoinSet};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::Settings;
use crate::health::{ReadinessCheck, ops_router};
use crate::telemetry::trace_context::propagate_traceparent;

/// A part of the process that can be started and stopped: a service, or
/// something services share.
#[async_trait]
pub trait Module: Send + Sync {
    /// The name operators use to select it, e.g. `tickets`.
    fn name(&self) -> &'static str;

    /// The modules that must be running before this one starts.
    fn depends_on(&self) -> &'static [&'static str] {
        &[]
    }

    /// Starts the module; returns once it is ready. The returned [`Running`]
    /// future runs until `ctx.shutdown()` is cancelled (then drains and
    /// returns `Ok`) or fails.
    async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running>;
}

/// What a module receives while it starts: the shutdown token to watch, and
/// where to put its routes and readiness checks.
#[derive(Debug)]
pub struct StartContext {
    module: &'static str,
    shutdown: CancellationToken,
    routes: Router,
    checks: Vec<ReadinessCheck>,
}

impl StartContext {
    /// A context for starting `module`; the runner makes one per module, a
    /// test may make its own to start a module alone.
    pub fn new(module: &'static str, shutdown: CancellationToken) -> Self {
        Self {
            module,
            shutdown,
            routes: Router::new(),
            checks: Vec::new(),
        }
    }

    /// The name of the module being started.
    pub fn module(&self) -> &'static str {
        self.module
    }

    /// Cancelled when the process shuts down or another module fails.
    pub fn shutdown(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Serves `router`'s routes on the process's HTTP listener.
    ///
    /// # Panics
    ///
    /// If a route overlaps one this module already added (a bug in the
    /// module; overlaps between modules are reported by the runner).
    pub fn add_routes(&mut self, router: Router) {
        self.routes = std::mem::take(&mut self.routes).merge(router);
    }

    /// Makes `/readyz` run `check`, shown as `<module>.<name>`.
    pub fn add_readiness_check<F, Fut>(&mut self, name: &str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let name = format!("{}.{name}", self.module);
        self.checks.push(ReadinessCheck::new(name, check));
    }

    /// The routes added so far.
    pub fn routes(&self) -> &Router {
        &self.routes
    }

    /// The readiness checks added so far.
    pub fn readiness_checks(&self) -> &[ReadinessCheck] {
        &self.checks
    }
}

/// A started module's work: a future that ends `Ok` after shutdown once the
/// module has drained, or with the error that stopped it.
pub struct Running(BoxFuture<'static, anyhow::Result<()>>);

impl Running {
    /// Wraps the module's own work (a consumer loop, a scheduler).
    pub fn new(work: impl Future<Output = anyhow::Result<()>> + Send + 'static) -> Self {
        Self(work.boxed())
    }

    /// For a module with nothing to run besides its routes: waits for
    /// `shutdown`.
    pub fn until_shutdown(shutdown: CancellationToken) -> Self {
        Self::new(async move {
            shutdown.cancelled_owned().await;
            Ok(())
        })
    }
}

impl fmt::Debug for Running {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Running(..)")
    }
}

/// Why a set of modules cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// Two modules have the same name.
    #[error("module `{0}` is registered twice")]
    Duplicate(&'static str),
    /// A target names no registered module.
    #[error("unknown module `{name}` (known modules: {})", known.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every registered module, sorted.
        known: Vec<&'static str>,
    },
    /// A module depends on a name no module has.
    #[error("module `{module}` depends on `{dependency}`, which is not registered")]
    UnknownDependency {
        /// The module declaring the dependency.
        module: &'static str,
        /// The missing name.
        dependency: &'static str,
    },
    /// Modules depend on each other in a loop.
    #[error("modules depend on each other in a cycle: {}", cycle.join(" -> "))]
    Cycle {
        /// The loop, its first module repeated at the end.
        cycle: Vec<&'static str>,
    },
}

/// Why [`ModuleRegistry::run`] returned an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The targets cannot be resolved.
    #[error(transparent)]
    Modules(#[from] ModuleError),
    /// The HTTP listener cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address from `http.bind`.
        addr: std::net::SocketAddr,
        /// What the system said.
        source: std::io::Error,
    },
    /// A module failed to start (or its routes overlap another's).
    #[error("module `{module}` failed to start")]
    Start {
        /// The module.
        module: &'static str,
        /// Its error.
        source: anyhow::Error,
    },
    /// A module's [`Running`] future failed or panicked.
    #[error("module `{module}` failed")]
    Failed {
        /// The module.
        module: &'static str,
        /// Its error.
        source: anyhow::Error,
    },
    /// A module's [`Running`] future ended before shutdown was requested.
    #[error("module `{module}` stopped before shutdown was requested")]
    EndedEarly {
        /// The module.
        module: &'static str,
    },
    /// The HTTP server stopped on its own.
    #[error("the HTTP server failed")]
    Http(#[source] std::io::Error),
}

impl RunError {
    /// The module at fault, if one is.
    pub fn module(&self) -> Option<&'static str> {
        match self {
            Self::Start { module, .. }
            | Self::Failed { module, .. }
            | Self::EndedEarly { module } => Some(module),
            Self::Modules(_) | Self::Bind { .. } | Self::Http(_) => None,
        }
    }
}

/// The modules a binary knows, by name.
#[derive(Default)]
pub struct ModuleRegistry {
    modules: BTreeMap<&'static str, Arc<dyn Module>>,
}

impl fmt::Debug for ModuleRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.modules.keys()).finish()
    }
}

impl ModuleRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `module`, refusing a second module of the same name.
    pub fn register(&mut self, module: impl Module + 'static) -> Result<(), ModuleError> {
        let name = module.name();
        if self.modules.contains_key(name) {
            return Err(ModuleError::Duplicate(name));
        }
        self.modules.insert(name, Arc::new(module));
        Ok(())
    }

    /// Every registered module's name, sorted.
    pub fn names(&self) -> Vec<&'static str> {
        self.modules.keys().copied().collect()
    }

    /// `targets` (every module when empty) and everything they depend on,
    /// each after its dependencies. The order depends only on the set of
    /// targets: they are taken alphabetically, dependencies in declared
    /// order.
    pub fn resolve(&self, targets: &[impl AsRef<str>]) -> Result<Vec<&'static str>, ModuleError> {
        let mut wanted = if targets.is_empty() {
            self.names()
        } else {
            targets
                .iter()
                .map(|target| self.lookup(target.as_ref()))
                .collect::<Result<Vec<_>, _>>()?
        };
        wanted.sort_unstable();
        wanted.dedup();
        let mut order = Vec::new();
        for name in wanted {
            self.visit(name, &mut Vec::new(), &mut order)?;
        }
        Ok(order)
    }

    fn lookup(&self, name: &str) -> Result<&'static str, ModuleError> {
        self.modules
            .get_key_value(name)
            .map(|(name, _)| *name)
            .ok_or_else(|| ModuleError::Unknown {
                name: name.to_owned(),
                known: self.names(),
            })
    }

    /// Depth-first: appends `name` to `order` after its dependencies;
    /// `path` holds the modules being visited, to report a cycle.
    fn visit(
        &self,
        name: &'static str,
        path: &mut Vec<&'static str>,
        order: &mut Vec<&'static str>,
    ) -> Result<(), ModuleError> {
        if order.contains(&name) {
            return Ok(());
        }
        if let Some(at) = path.iter().position(|visiting| *visiting == name) {
            let mut cycle = path[at..].to_vec();
            cycle.push(name);
            return Err(ModuleError::Cycle { cycle });
        }
        let dependencies = self.modules.get(name).map_or(&[][..], |m| m.depends_on());
        path.push(name);
        for &dependency in dependencies {
            let dependency =
                self.lookup(dependency)
                    .map_err(|_| ModuleError::UnknownDependency {
                        module: name,
                        dependency,
                    })?;
            self.visit(dependency, path, order)?;
        }
        path.pop();
        order.push(name);
        Ok(())
    }

    /// Binds `http.bind`, then runs like [`ModuleRegistry::run_on`].
    pub async fn run(
        self,
        targets: &[impl AsRef<str>],
        settings: &Settings,
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        let addr = settings.http.bind;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| RunError::Bind { addr, source })?;
        self.run_on(listener, targets, settings, shutdown).await
    }

    /// Runs `targets` and their dependencies until `shutdown` is cancelled
    /// or one of them fails:
    ///
    /// 1. starts the modules one by one, each after its dependencies; if
    ///    one fails, stops those already running and returns its error;
    /// 2. serves their routes, `/healthz` and `/readyz` on `listener`, with
    ///    trace propagation, `http.request_timeout_secs` and
    ///    `http.body_limit_bytes`;
    /// 3. waits for `shutdown`, or for a module's [`Running`] future to end
    ///    (an error, or an early end, stops everything and is returned);
    /// 4. stops the server gracefully and waits for the modules, at most
    ///    `shutdown.grace_secs` in all (then aborts what is left).
    ///
    /// Returns `Ok` after a requested shutdown, unless a module failed
    /// while draining. Cancelling `shutdown` while modules start stops
    /// those already started and returns `Ok`.
    pub async fn run_on(
        self,
        listener: TcpListener,
        targets: &[impl AsRef<str>],
        settings: &Settings,
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        let order = self.resolve(targets)?;
        let grace = settings.shutdown.grace();
        // Our own child token: a failing module stops the others without
        // cancelling the caller's token.
        let stop = shutdown.child_token();
        let mut running = RunningModules::default();
        let mut routes = Router::new();
        let mut checks = Vec::new();

        for name in order {
            let Some(module) = self.modules.get(name) else {
                continue; // `resolve` only returns registered names
            };
            let mut ctx = StartContext::new(name, stop.clone());
            tracing::info!(module = name, "starting module");
            let started = tokio::select! {
                biased;
                () = stop.cancelled() => {
                    tracing::info!(module = name, "shutdown requested while starting");
                    log_failures(&running.stop(Instant::now() + grace).await);
                    return Ok(());
                }
                started = module.start(&mut ctx) => started,
            };
            let merged = started.and_then(|work| {
                // Running from here on, so a failure below stops it too.
                running.spawn(name, work);
                let module_routes = std::mem::take(&mut ctx.routes);
                // Probe against the operational routes now, to blame the
                // right module for an overlap.
                let ops = ops_router(Vec::new(), CancellationToken::new());
                let _probed = try_merge(ops, module_routes.clone())?;
                routes = try_merge(std::mem::take(&mut routes), module_routes)?;
                Ok(())
            });
            if let Err(source) = merged {
                return Err(abort_start(name, source, &stop, running, grace).await);
            }
            checks.append(&mut ctx.checks);
            tracing::info!(module = name, "module started");
        }

        let app = match try_merge(routes, ops_router(checks, stop.clone())) {
            Ok(app) => app,
            Err(source) => return Err(abort_start("ops", source, &stop, running, grace).await),
        };
        let app = app
            .layer(DefaultBodyLimit::max(settings.http.body_limit_bytes))
            .layer(RequestBodyLimitLayer::new(settings.http.body_limit_bytes))
            .layer(TimeoutLayer::with_status_code(
                StatusCode::REQUEST_TIMEOUT,
                settings.http.request_timeout(),
            ))
            .layer(axum::middleware::from_fn(propagate_traceparent));
        if let Ok(addr) = listener.local_addr() {
            tracing::info!(%addr, "serving HTTP");
        }
        let mut server = tokio::spawn(
            // The peer's address reaches the handlers (the gateway's limits
            // per client address).
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(stop.clone().cancelled_owned())
            .into_future(),
        );

        let outcome = tokio::select! {
            biased;
            () = stop.cancelled() => Ok(()),
            Some((module, result)) = running.next() => Err(match result {
                Err(source) => RunError::Failed { module, source },
                Ok(()) => RunError::EndedEarly { module },
            }),
            served = &mut server => Err(RunError::Http(match served {
                Ok(Ok(())) => std::io::Error::other("stopped unexpectedly"),
                Ok(Err(error)) => error,
                Err(join) => std::io::Error::other(join),
            })),
        };
        match &outcome {
            Ok(()) => tracing::info!("shutting down"),
            Err(error) => tracing::error!(%error, "shutting down after a failure"),
        }

        stop.cancel();
        let deadline = Instant::now() + grace;
        if tokio::time::timeout_at(deadline, &mut server)
            .await
            .is_err()
        {
            tracing::warn!("HTTP connections still open after the grace period; closing them");
            server.abort();
        }
        let mut failures = running.stop(deadline).await;
        log_failures(&failures);
        match outcome {
            Err(error) => Err(error),
            Ok(()) if failures.is_empty() => Ok(()),
            Ok(()) => {
                let (module, source) = failures.swap_remove(0);
                Err(RunError::Failed { module, source })
            }
        }
    }
}

/// Stops the modules already running after `module` failed to start, and
/// returns the error to report.
async fn abort_start(
    module: &'static str,
    source: anyhow::Error,
    stop: &CancellationToken,
    mut running: RunningModules,
    grace: std::time::Duration,
) -> RunError {
    tracing::error!(module, error = %format!("{source:#}"), "module failed to start");
    stop.cancel();
    log_failures(&running.stop(Instant::now() + grace).await);
    RunError::Start { module, source }
}

fn log_failures(failures: &[(&'static str, anyhow::Error)]) {
    for (module, error) in failures {
        tracing::error!(module, error = %format!("{error:#}"), "module failed while stopping");
    }
}

/// Merges two routers, turning axum's panic on overlapping routes into an
/// error.
fn try_merge(routes: Router, more: Router) -> anyhow::Result<Router> {
    std::panic::catch_unwind(AssertUnwindSafe(|| routes.merge(more))).map_err(|panic| {
        anyhow::anyhow!(
            "its routes overlap those of another module: {}",
            panic_message(&*panic)
        )
    })
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("panicked")
}

/// The [`Running`] futures of the started modules, each in its own task.
#[derive(Default)]
struct RunningModules {
    tasks: JoinSet<anyhow::Result<()>>,
    names: HashMap<Id, &'static str>,
}

impl RunningModules {
    fn spawn(&mut self, module: &'static str, work: Running) {
        let handle = self.tasks.spawn(work.0);
        self.names.insert(handle.id(), module);
    }

    /// The next module to end and how it ended; `None` when none is left.
    async fn next(&mut self) -> Option<(&'static str, anyhow::Result<()>)> {
        let (id, result) = match self.tasks.join_next_with_id().await? {
            Ok((id, result)) => (id, result),
            Err(error) => {
                let id = error.id();
                let message = match error.try_into_panic() {
                    Ok(panic) => format!("panicked: {}", panic_message(&*panic)),
                    Err(error) => error.to_string(),
                };
                (id, Err(anyhow::anyhow!(message)))
            }
        };
        let module = self.names.remove(&id).unwrap_or("unknown");
        Some((module, result))
    }

    /// Waits until `deadline` for every module to end, then aborts the
    /// rest. Returns the modules that ended with an error.
    async fn stop(&mut self, deadline: Instant) -> Vec<(&'static str, anyhow::Error)> {
        let mut failures = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.next()).await {
                Ok(Some((_, Ok(())))) => {}
                Ok(Some((module, Err(error)))) => failures.push((module, error)),
                Ok(None) => break,
                Err(_) => {
                    let mut left: Vec<_> = self.names.values().copied().collect();
                    left.sort_unstable();
                    tracing::warn!(modules = ?left, "modules still running after the grace period; aborting them");
                    self.tasks.shutdown().await;
                    break;
                }
            }
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::time::Duration;

    use axum::routing::get;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    use super::*;

    /// What the test modules did, in order.
    type Journal = Arc<Mutex<Vec<String>>>;

    #[derive(Clone, Copy)]
    enum Behaviour {
        /// Runs until shutdown.
        Steady,
        /// Fails to start.
        FailStart,
        /// Starts, then fails shortly after.
        FailLater,
        /// Starts, then ends `Ok` without being asked to.
        EndEarly,
        /// Never finishes starting.
        HangStart,
        /// Ignores shutdown.
        Stubborn,
    }

    struct TestModule {
        name: &'static str,
        deps: &'static [&'static str],
        behaviour: Behaviour,
        journal: Journal,
    }

    impl TestModule {
        fn new(name: &'static str, deps: &'static [&'static str], journal: &Journal) -> Self {
            Self {
                name,
                deps,
                behaviour: Behaviour::Steady,
                journal: Arc::clone(journal),
            }
        }

        fn behaving(mut self, behaviour: Behaviour) -> Self {
            self.behaviour = behaviour;
            self
        }
    }

    fn note(journal: &Journal, entry: String) {
        journal.lock().unwrap().push(entry);
    }

    #[async_trait]
    impl Module for TestModule {
        fn name(&self) -> &'static str {
            self.name
        }

        fn depends_on(&self) -> &'static [&'static str] {
            self.deps
        }

        async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
            let name = self.name;
            match self.behaviour {
                Behaviour::FailStart => anyhow::bail!("database unreachable"),
                Behaviour::HangStart => std::future::pending().await,
                _ => {}
            }
            note(&self.journal, format!("{name} started"));
            ctx.add_routes(
                Router::new()
                    .route(
                        &format!("/{name}"),
                        get(move || async move { format!("hello from {name}") }),
                    )
                    .route(
                        &format!("/{name}/echo"),
                        axum::routing::post(|body: String| async move { body }),
                    ),
            );
            ctx.add_readiness_check("self", || async { Ok(()) });
            let shutdown = ctx.shutdown();
            let journal = Arc::clone(&self.journal);
            let behaviour = self.behaviour;
            Ok(Running::new(async move {
                match behaviour {
                    Behaviour::FailLater => {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        anyhow::bail!("consumer crashed")
                    }
                    Behaviour::EndEarly => return Ok(()),
                    Behaviour::Stubborn => std::future::pending().await,
                    _ => {}
                }
                shutdown.cancelled().await;
                note(&journal, format!("{name} stopped"));
                Ok(())
            }))
        }
    }

    fn registry(modules: Vec<TestModule>) -> ModuleRegistry {
        let mut registry = ModuleRegistry::new();
        for module in modules {
            registry.register(module).unwrap();
        }
        registry
    }

    fn settings() -> Settings {
        settings_with(&[])
    }

    fn settings_with(vars: &[(&str, &str)]) -> Settings {
        let env = [("VENTANILLA__SHUTDOWN__GRACE_SECS", "2")]
            .iter()
            .chain(vars);
        Settings::load_from(None, env.map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))).unwrap()
    }

    async fn listener() -> (TcpListener, SocketAddr) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (listener, addr)
    }

    fn entries(journal: &Journal) -> Vec<String> {
        journal.lock().unwrap().clone()
    }

    /// A plain HTTP/1.1 GET: status, head and body.
    async fn http_get(addr: SocketAddr, path: &str) -> (u16, String, String) {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let (head, body) = response.split_once("\r\n\r\n").unwrap();
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, head.to_owned(), body.to_owned())
    }

    #[test]
    fn resolve_orders_dependencies_first_and_deterministically() {
        let journal = Journal::default();
        let registry = registry(vec![
            TestModule::new("gateway", &["tickets", "social"], &journal),
            TestModule::new("tickets", &["tenants"], &journal),
            TestModule::new("social", &["tenants"], &journal),
            TestModule::new("tenants", &[], &journal),
            TestModule::new("metrics", &[], &journal),
        ]);
        assert_eq!(
            registry.resolve(&["gateway"]).unwrap(),
            ["tenants", "tickets", "social", "gateway"]
        );
        assert_eq!(
            registry.resolve(&["tickets", "social"]).unwrap(),
            registry.resolve(&["social", "tickets", "social"]).unwrap(),
        );
        assert_eq!(
            registry.resolve(&["social", "tickets"]).unwrap(),
            ["tenants", "social", "tickets"]
        );
        assert_eq!(
            registry.resolve(&[] as &[String]).unwrap(),
            ["tenants", "tickets", "social", "gateway", "metrics"]
        );
    }

    #[test]
    fn resolve_refuses_unknown_names_listing_the_known_ones() {
        let journal = Journal::default();
        let registry = registry(vec![
            TestModule::new("tickets", &[], &journal),
            TestModule::new("social", &[], &journal),
        ]);
        let err = registry.resolve(&["tickts"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown module `tickts` (known modules: social, tickets)"
        );
    }

    #[test]
    fn resolve_refuses_unknown_dependencies_and_cycles() {
        let journal = Journal::default();
        let dangling = registry(vec![TestModule::new("tickets", &["tenants"], &journal)]);
        assert_eq!(
            dangling.resolve(&["tickets"]).unwrap_err(),
            ModuleError::UnknownDependency {
                module: "tickets",
                dependency: "tenants"
            }
        );

        let cyclic = registry(vec![
            TestModule::new("a", &["b"], &journal),
            TestModule::new("b", &["c"], &journal),
            TestModule::new("c", &["a"], &journal),
        ]);
        let err = cyclic.resolve(&["b"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "modules depend on each other in a cycle: b -> c -> a -> b"
        );
    }

    #[test]
    fn registering_a_name_twice_is_refused() {
        let journal = Journal::default();
        let mut registry = registry(vec![TestModule::new("tickets", &[], &journal)]);
        assert_eq!(
            registry.register(TestModule::new("tickets", &[], &journal)),
            Err(ModuleError::Duplicate("tickets"))
        );
    }

    #[tokio::test]
    async fn a_failing_start_stops_the_modules_already_running() {
        let journal = Journal::default();
        let registry = registry(vec![
            TestModule::new("tenants", &[], &journal),
            TestModule::new("tickets", &["tenants"], &journal).behaving(Behaviour::FailStart),
            TestModule::new("gateway", &["tickets"], &journal),
        ]);
        let (listener, _) = listener().await;
        let err = registry
            .run_on(
                listener,
                &["gateway"],
                &settings(),
                CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.module(), Some("tickets"));
        assert!(matches!(err, RunError::Start { .. }), "{err:?}");
        assert_eq!(
            format!("{:#}", anyhow::Error::from(err)),
            "module `tickets` failed to start: database unreachable"
        );
        assert_eq!(entries(&journal), ["tenants started", "tenants stopped"]);
    }

    #[tokio::test]
    async fn a_module_failing_while_running_stops_the_others() {
        let journal = Journal::default();
        let registry = registry(vec![
            TestModule::new("tenants", &[], &journal),
            TestModule::new("tickets", &["tenants"], &journal).behaving(Behaviour::FailLater),
        ]);
        let (listener, _) = listener().await;
        let shutdown = CancellationToken::new();
        let err = registry
            .run_on(listener, &["tickets"], &settings(), shutdown.clone())
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RunError::Failed {
                    module: "tickets",
                    ..
                }
            ),
            "{err:?}"
        );
        assert_eq!(
            entries(&journal),
            ["tenants started", "tickets started", "tenants stopped"]
        );
        assert!(!shutdown.is_cancelled(), "the caller's token is left alone");
    }

    #[tokio::test]
    async fn a_module_ending_early_is_a_failure() {
        let journal = Journal::default();
        let registry = registry(vec![
            TestModule::new("tenants", &[], &journal),
            TestModule::new("social", &[], &journal).behaving(Behaviour::EndEarly),
        ]);
        let (listener, _) = listener().await;
        let err = registry
            .run_on(
                listener,
                &[] as &[&str],
                &settings(),
                CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, RunError::EndedEarly { module: "social" }),
            "{err:?}"
        );
        assert!(entries(&journal).contains(&"tenants stopped".to_owned()));
    }

    #[tokio::test]
    async fn shutdown_while_starting_stops_what_started() {
        let journal = Journal::default();
        let registry = registry(vec![
            TestModule::new("tenants", &[], &journal),
            TestModule::new("tickets", &["tenants"], &journal).behaving(Behaviour::HangStart),
        ]);
        let (listener, _) = listener().await;
        let shutdown = CancellationToken::new();
        let run = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                registry
                    .run_on(listener, &["tickets"], &settings(), shutdown)
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        shutdown.cancel();
        run.await.unwrap().unwrap();
        assert_eq!(entries(&journal), ["tenants started", "tenants stopped"]);
    }

    #[tokio::test]
    async fn serves_routes_health_and_readiness_then_shuts_down_gracefully() {
        let journal = Journal::default();
        let registry = registry(vec![
            TestModule::new("tenants", &[], &journal),
            TestModule::new("tickets", &["tenants"], &journal),
        ]);
        let (listener, addr) = listener().await;
        let shutdown = CancellationToken::new();
        let run = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                registry
                    .run_on(listener, &["tickets"], &settings(), shutdown)
                    .await
            }
        });

        let (status, _, body) = http_get(addr, "/healthz").await;
        assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));

        let (status, head, body) = http_get(addr, "/readyz").await;
        assert_eq!(status, 200);
        assert_eq!(
            body,
            r#"{"status":"ready","checks":{"tenants.self":"ok","tickets.self":"ok"}}"#
        );
        assert!(head.contains("traceparent: 00-"), "{head}");

        let (status, _, body) = http_get(addr, "/tickets").await;
        assert_eq!((status, body.as_str()), (200, "hello from tickets"));

        shutdown.cancel();
        run.await.unwrap().unwrap();
        let mut journal = entries(&journal);
        journal.sort();
        assert_eq!(
            journal,
            [
                "tenants started",
                "tenants stopped",
                "tickets started",
                "tickets stopped"
            ]
        );
    }

    #[tokio::test]
    async fn overlapping_routes_are_reported_against_the_module() {
        let journal = Journal::default();
        let registry = registry(vec![
            TestModule::new("tenants", &[], &journal),
            TestModule::new("healthz", &[], &journal),
        ]);
        let (listener, _) = listener().await;
        let err = registry
            .run_on(
                listener,
                &["tenants", "healthz"],
                &settings(),
                CancellationToken::new(),
            )
            .await
            .unwrap_err();
        // `/healthz` (the module's route) overlaps the operational one.
        assert_eq!(err.module(), Some("healthz"));
        assert_eq!(entries(&journal), ["healthz started", "healthz stopped"]);
    }

    #[tokio::test]
    async fn overlapping_routes_between_modules_are_reported_against_the_later_one() {
        let journal = Journal::default();
        let mut registry = registry(vec![TestModule::new("tickets", &[], &journal)]);
        registry.register(Copycat).unwrap();
        let (listener, _) = listener().await;
        let err = registry
            .run_on(
                listener,
                &[] as &[&str],
                &settings(),
                CancellationToken::new(),
            )
            .await
            .unwrap_err();
        assert_eq!(err.module(), Some("tickets"));
        assert_eq!(entries(&journal), ["tickets started", "tickets stopped"]);
    }

    /// Serves `/tickets`, like the `tickets` test module.
    struct Copycat;

    #[async_trait]
    impl Module for Copycat {
        fn name(&self) -> &'static str {
            "copycat"
        }

        async fn start(&self, ctx: &mut StartContext) -> anyhow::Result<Running> {
            ctx.add_routes(Router::new().route("/tickets", get(|| async { "copy" })));
            Ok(Running::until_shutdown(ctx.shutdown()))
        }
    }

    #[tokio::test]
    async fn request_bodies_over_the_limit_are_refused() {
        let journal = Journal::default();
        let registry = registry(vec![TestModule::new("tickets", &[], &journal)]);
        let (listener, addr) = listener().await;
        let shutdown = CancellationToken::new();
        let settings = settings_with(&[("VENTANILLA__HTTP__BODY_LIMIT_BYTES", "16")]);
        let run = tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                registry
                    .run_on(listener, &["tickets"], &settings, shutdown)
                    .await
            }
        });
        for (body, expected) in [("small", 200), ("far too large for sixteen bytes", 413)] {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            let request = format!(
                "POST /tickets/echo HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\
                 Content-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            assert!(
                response.starts_with(&format!("HTTP/1.1 {expected}")),
                "{response}"
            );
        }
        shutdown.cancel();
        run.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn modules_ignoring_shutdown_are_aborted_after_the_grace_period() {
        let journal = Journal::default();
        let registry = registry(vec![
            TestModule::new("tickets", &[], &journal).behaving(Behaviour::Stubborn),
        ]);
        let (listener, _) = listener().await;
        let shutdown = CancellationToken::new();
        tokio::spawn({
            let shutdown = shutdown.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                shutdown.cancel();
            }
        });
        let settings = settings_with(&[("VENTANILLA__SHUTDOWN__GRACE_SECS", "0")]);
        tokio::time::timeout(
            Duration::from_secs(5),
            registry.run_on(listener, &["tickets"], &settings, shutdown),
        )
        .await
        .unwrap()
        .unwrap();
        assert_eq!(entries(&journal), ["tickets started"]);
    }
}
