//! `notify.mail_sink` (development and demos): a local SMTP server in the
//! process that the notification worker sends to; each message it receives
//! is written to `.local/mail/<time>-<n>.eml` and logged with its recipient
//! and subject, so the confirm and unsubscribe links can be followed by hand.

use std::path::PathBuf;

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
    tracing::warn!(smtp = %url, dir = %dir.display(), "notify.mail_sink: e-mail goes to a local SMTP server, not to citizens");
    let writer = sink.keep_in(dir, "notify", shutdown);
    let task = tokio::spawn(async move { Ok(writer.await??) });
    Ok((url, task))
}
