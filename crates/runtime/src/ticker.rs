//! Periodic work of a module (a timer, a worker, a poller): [`every`] runs a
//! step at a fixed interval until shutdown. A failed step is logged and the
//! next one runs as planned; a slow step delays the next rather than
//! piling them up.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `step` every `interval` until `shutdown`, naming it `what` in the
/// log when a step fails.
pub async fn every<F, Fut>(interval: Duration, shutdown: CancellationToken, what: &str, mut step: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {
                if let Err(e) = step().await {
                    tracing::warn!(error = %e, "{what}: a step failed; trying again at the next tick");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn steps_run_at_the_interval_survive_failures_and_stop_on_shutdown() {
        let shutdown = CancellationToken::new();
        let count = Arc::new(AtomicU32::new(0));
        let (c, s) = (Arc::clone(&count), shutdown.clone());
        let task = tokio::spawn(async move {
            every(Duration::from_secs(10), s, "test", || {
                let c = Arc::clone(&c);
                async move {
                    let n = c.fetch_add(1, Ordering::SeqCst);
                    anyhow::ensure!(n % 2 == 0, "odd step");
                    Ok(())
                }
            })
            .await;
        });
        tokio::time::sleep(Duration::from_secs(35)).await;
        assert_eq!(count.load(Ordering::SeqCst), 4, "at 0, 10, 20 and 30 s");
        shutdown.cancel();
        task.await.unwrap_or_default();
    }
}
