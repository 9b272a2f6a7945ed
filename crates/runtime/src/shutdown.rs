//! Turning the operator's signals into a shutdown request: SIGTERM (sent by
//! orchestrators) or Ctrl-C cancel a [`CancellationToken`], which every
//! module and the HTTP server watch to drain and stop.

use tokio_util::sync::CancellationToken;

/// Cancels `token` on the first SIGTERM or Ctrl-C (SIGINT). Spawns a task,
/// so it must be called inside a Tokio runtime; the task ends when `token`
/// is cancelled, whoever cancels it.
pub fn shutdown_on_signals(token: CancellationToken) {
    tokio::spawn(async move {
        tokio::select! {
            () = token.cancelled() => {}
            signal = next_signal() => {
                tracing::info!(signal, "shutdown requested");
                token.cancel();
            }
        }
    });
}

/// The name of the first shutdown signal received. Pending forever if no
/// signal handler could be installed (logged), rather than shutting down.
async fn next_signal() -> &'static str {
    let ctrl_c = async {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "SIGINT",
            Err(error) => {
                tracing::warn!(%error, "cannot listen for Ctrl-C");
                std::future::pending().await
            }
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => tokio::select! {
                _ = terminate.recv() => "SIGTERM",
                name = ctrl_c => name,
            },
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                ctrl_c.await
            }
        }
    }
    #[cfg(not(unix))]
    {
        ctrl_c.await
    }
}
