//! `notify.mail_sink` (development and demos): a local SMTP server in the
//! process that the notification worker sends to; each message it receives
//! is written to `.local/mail/<time>-<n>.eml` and logged with its recipient
//! and subject, so the confirm and unsubscribe links can be followed by hand.

use std::path::PathBuf;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use ventanilla_mail::sink::SmtpSink;

/// Where received mail is written.
pub const MAIL_DIR: &str = ".local/mail";

/// Starts the server; returns its `smtp://` URL and the task that writes
/// what it receives until `shutdown`.
pub async fn start(
    shutdown: CancellationToken,
) -> anyhow::Result<(String, tokio::task::JoinHandle<anyhow::Result<()>>)> {
    let sink = SmtpSink::start().await?;
    let url = sink.url();
    let dir = PathBuf::from(MAIL_DIR);
    tokio::fs::create_dir_all(&dir).await?;
    tracing::warn!(smtp = %url, dir = %dir.display(), "notify.mail_sink: e-mail goes to a local SMTP server, not to citizens");
    let task = tokio::spawn(async move {
        let mut n: u64 = 0;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(Duration::from_millis(500)) => {}
            }
            for mail in sink.take() {
                n += 1;
                let name = format!("{}-{n:05}.eml", chrono::Utc::now().format("%Y%m%dT%H%M%S"));
                tokio::fs::write(dir.join(&name), &mail.data).await?;
                let subject = String::from_utf8_lossy(&mail.data)
                    .lines()
                    .find_map(|l| l.strip_prefix("Subject: ").map(str::to_owned))
                    .unwrap_or_default();
                tracing::info!(to = ?mail.to, subject = %subject, file = %name, "mail sink: received");
            }
        }
        Ok(())
    });
    Ok((url, task))
}
