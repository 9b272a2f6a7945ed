//! The mention poller: for X accounts (webhook access is an expensive tier,
//! and polling also fills gaps when a webhook delivery was lost) and
//! Mastodon and Bluesky accounts (which have no webhooks for mentions),
//! reads the
//! account's mentions newer than its cursor, page by page, records each as
//! a `social.message_received` event (the same id as by webhook, so a
//! mention read both ways is stored once), and only then moves the cursor
//! forward (`account.cursor_advanced`, in the account's stream). A crash
//! before the cursor moves reads the same mentions again and stores nothing
//! twice; nothing is skipped, because the cursor never passes a mention that
//! was not recorded.
//!
//! Rate limits and expired tokens degrade the account's health and the
//! account is tried again at the next tick.
//!
//! What this module must not do: open tickets, or poll an unlinked account.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandRunner};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::PgEventLog;
use ventanilla_social_domain::account::{
    self, Account, AccountCommand, AccountId, Health, Network,
};

use crate::accounts::{Accounts, Servers};
use crate::connector::SendError;
use crate::{bluesky, ingest, mastodon, x};

/// The most pages read per account and tick (100 mentions each).
pub const MAX_PAGES: usize = 10;

/// Polls X mentions.
#[derive(Clone)]
pub struct MentionPoller {
    accounts: Accounts,
    log: Arc<PgEventLog>,
    x: x::XClient,
    mastodon: mastodon::MastodonClient,
    bluesky: Arc<bluesky::Keepers>,
    servers: Servers,
    interval: Duration,
}

impl MentionPoller {
    /// A poller over `log`, calling X at `x_base` every `interval`.
    pub fn new(
        accounts: Accounts,
        log: Arc<PgEventLog>,
        x_base: &str,
        interval: Duration,
    ) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()?;
        Ok(Self {
            accounts,
            log,
            x: x::XClient::new(x_base, http.clone()),
            mastodon: mastodon::MastodonClient::new(http.clone()),
            bluesky: Arc::new(bluesky::Keepers::new(http)),
            servers: Servers::default(),
            interval,
        })
    }

    /// Polls the simulated Mastodon and Bluesky servers (simulator mode).
    pub fn with_servers(mut self, servers: Servers) -> Self {
        self.servers = servers;
        self
    }

    /// Shares Bluesky sessions with the delivery worker (one sign-in per
    /// account and process).
    pub fn with_bluesky(mut self, keepers: Arc<bluesky::Keepers>) -> Self {
        self.bluesky = keepers;
        self
    }

    /// One pass over every polled account. Returns how many new mentions
    /// were recorded.
    pub async fn tick(&self) -> anyhow::Result<usize> {
        let accounts: Vec<(Uuid, Uuid)> =
            sqlx::query_as("SELECT tenant_id, account_id FROM social_accounts_to_poll()")
                .fetch_all(self.log.pool())
                .await?;
        let mut recorded = 0;
        for (tenant, account) in accounts {
            let (tenant, account) = (TenantId::from_uuid(tenant), AccountId(account));
            match self.poll(tenant, account).await {
                Ok(n) => recorded += n,
                Err(e) => {
                    tracing::warn!(tenant_id = %tenant, account = %account.0, error = %e, "polling mentions failed; retried next tick");
                }
            }
        }
        Ok(recorded)
    }

    /// Reads one account's new mentions, records them, moves its cursor.
    pub async fn poll(&self, tenant: TenantId, account: AccountId) -> anyhow::Result<usize> {
        let state = self.accounts.state(tenant, account).await?;
        if state.unlinked || !state.poll_mentions {
            return Ok(0);
        }
        let creds = self.accounts.credentials_of(tenant, &state).await?;
        let since = state.since_id.clone();
        let (recorded, newest) = match state.network {
            Network::Mastodon => {
                let instance = mastodon::Instance::parse(&self.servers.base_of(&state))
                    .map_err(|e| anyhow::anyhow!("the account's instance: {e}"))?;
                let found = match self
                    .mastodon
                    .mentions(&instance, &creds, since.as_deref())
                    .await
                {
                    Ok(found) => found,
                    Err(e) => {
                        if e.degrades_account() {
                            self.health(tenant, account, &e).await;
                        }
                        anyhow::bail!("{e}");
                    }
                };
                let recorded = ingest::record(&self.log, tenant, account, found.messages).await?;
                (recorded, found.newest_notification_id)
            }
            Network::Bluesky => {
                let pds = self.servers.base_of(&state);
                let keeper = self.bluesky.for_base(&pds);
                let key = account.0.to_string();
                let polled = async {
                    let session = keeper.session(&key, &creds).await?;
                    match keeper.client().mentions(&session, since.as_deref()).await {
                        Err(SendError::TokenExpired { .. }) => {
                            let renewed = keeper.renew(&key, &creds, &session).await?;
                            keeper.client().mentions(&renewed, since.as_deref()).await
                        }
                        other => other,
                    }
                };
                let found = match polled.await {
                    Ok(found) => found,
                    Err(e) => {
                        if e.degrades_account() {
                            self.health(tenant, account, &e).await;
                        }
                        anyhow::bail!("{e}");
                    }
                };
                let refs = found.refs;
                let recorded =
                    ingest::record_with(&self.log, tenant, account, found.messages, |uri| {
                        ingest::Extra {
                            reply_context: refs.get(uri).and_then(|r| serde_json::to_value(r).ok()),
                            subject: None,
                        }
                    })
                    .await?;
                (recorded, found.newest_uri)
            }
            _ => self.poll_x(tenant, account, &creds, since).await?,
        };
        if let Some(since_id) = newest {
            let ctx = CommandContext::new(tenant, Utc::now(), Actor::system("mention-poller"));
            CommandRunner::new(Arc::clone(&self.log), 5)
                .execute::<Account>(
                    &ctx,
                    &account::stream_id(account)?,
                    &AccountCommand::AdvanceCursor { since_id },
                )
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        if recorded > 0 {
            tracing::info!(tenant_id = %tenant, account = %account.0, recorded, "mentions read by polling");
        }
        Ok(recorded)
    }

    /// X: pages of mentions newer than `since`, recorded; the newest id.
    async fn poll_x(
        &self,
        tenant: TenantId,
        account: AccountId,
        creds: &crate::connector::Credentials,
        since: Option<String>,
    ) -> anyhow::Result<(usize, Option<String>)> {
        let mut newest: Option<String> = None;
        let mut page: Option<String> = None;
        let mut recorded = 0;
        for _ in 0..MAX_PAGES {
            let (mentions, newest_id, next) = match self
                .x
                .mentions(creds, since.as_deref(), page.as_deref())
                .await
            {
                Ok(found) => found,
                Err(e) => {
                    if e.degrades_account() {
                        self.health(tenant, account, &e).await;
                    }
                    anyhow::bail!("{e}");
                }
            };
            recorded += ingest::record(&self.log, tenant, account, mentions).await?;
            // The first page's newest id is the newest of all pages.
            if newest.is_none() {
                newest = newest_id;
            }
            match next {
                Some(token) => page = Some(token),
                None => break,
            }
        }
        Ok((recorded, newest))
    }

    async fn health(&self, tenant: TenantId, account: AccountId, e: &SendError) {
        let health = Health::Degraded {
            reason: e.to_string(),
            until: match e {
                SendError::RateLimited { until, .. } => Some(*until),
                _ => None,
            },
        };
        if let Err(e) = self.accounts.report_health(tenant, account, health).await {
            tracing::warn!(error = %e, "could not record an account's health");
        }
    }

    /// Runs until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) {
        ventanilla_runtime::ticker::every(
            self.interval,
            shutdown,
            "the mention poller",
            || async { self.tick().await.map(|_| ()) },
        )
        .await;
    }
}
