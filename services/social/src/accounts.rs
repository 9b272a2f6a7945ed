//! Linked accounts: [`Accounts`], the service an admin links, re-keys and
//! unlinks a tenant's social accounts with, and that the webhooks and the
//! delivery worker read credentials through; and [`AccountsProjection`]
//! (`social_accounts`), the read model of the accounts and their health.
//!
//! Credentials go to `social_credentials`, encrypted ([`crate::vault`]);
//! the log records only that they were set. No method returns a secret.
//!
//! What this module must not do: call a network (the connectors do), or
//! read another service's tables (the tenant and the caller come from the
//! tenants service's events, through `ventanilla-tenancy`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;
use ventanilla_eventlog::{
    CommandContext, CommandError, CommandRunner, Decider, DomainEvent, RecordedEvent,
};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::projection::Projection;
use ventanilla_postgres::{Handler, PgEventLog, TenantTx, begin_for_tenant};
use ventanilla_social_domain::account::{
    self, Account, AccountCommand, AccountError, AccountEvent, AccountId, Health, Network, Reach,
};
use ventanilla_tenancy::{Tenancy, TenancyError};
use ventanilla_tenants_domain::staff::{Role, StaffId};

use crate::connector::Credentials;
use crate::vault::{Secrets, Vault, VaultError};

/// The longest secret accepted, in characters.
pub const SECRET_MAX: usize = 4096;

/// Why a request about accounts was refused; [`SocialError::code`] gives
/// the API code. Nothing is written when it is.
#[derive(Debug, thiserror::Error)]
pub enum SocialError {
    /// Malformed input (`VALIDATION`), naming the field.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What to fix.
        problem: String,
    },
    /// Not an active admin of the tenant (`FORBIDDEN`).
    #[error("only an active admin of this organisation may link or unlink its social accounts")]
    Forbidden,
    /// No such account in the tenant (`NOT_FOUND`).
    #[error("no such linked account")]
    NotFound,
    /// The account refused (`CONFLICT`, `QUOTA_EXCEEDED`).
    #[error(transparent)]
    Account(AccountError),
    /// The tenant may not be used (`TENANT_SUSPENDED`, `NOT_FOUND`).
    #[error(transparent)]
    Tenancy(#[from] TenancyError),
    /// The vault is not configured or cannot read a secret (`INTERNAL` for
    /// callers; the message tells the operator what to set).
    #[error(transparent)]
    Vault(#[from] VaultError),
    /// Anything else (`INTERNAL`).
    #[error("internal error")]
    Unexpected(#[source] anyhow::Error),
}

impl SocialError {
    /// The stable API error code.
    pub fn code(&self) -> &'static str {
        match self {
            SocialError::Invalid { .. } => "VALIDATION",
            SocialError::Forbidden => "FORBIDDEN",
            SocialError::NotFound => "NOT_FOUND",
            SocialError::Account(AccountError::QuotaExceeded) => "QUOTA_EXCEEDED",
            SocialError::Account(AccountError::Invalid { .. }) => "VALIDATION",
            SocialError::Account(AccountError::NotLinked) => "NOT_FOUND",
            SocialError::Account(_) => "CONFLICT",
            SocialError::Tenancy(TenancyError::TenantSuspended { .. }) => "TENANT_SUSPENDED",
            SocialError::Tenancy(TenancyError::TenantUnavailable) => "NOT_FOUND",
            SocialError::Tenancy(TenancyError::Unexpected(_))
            | SocialError::Vault(_)
            | SocialError::Unexpected(_) => "INTERNAL",
        }
    }
}

impl From<CommandError<AccountError>> for SocialError {
    fn from(e: CommandError<AccountError>) -> Self {
        match e {
            CommandError::Domain(AccountError::Invalid { field, problem }) => {
                SocialError::Invalid { field, problem }
            }
            CommandError::Domain(e) => SocialError::Account(e),
            CommandError::Conflict { .. } => {
                SocialError::Unexpected(anyhow::anyhow!("the account kept changing"))
            }
            CommandError::Invalid(e) => SocialError::Unexpected(e.into()),
            CommandError::Unexpected(e) => SocialError::Unexpected(e),
        }
    }
}

impl From<sqlx::Error> for SocialError {
    fn from(e: sqlx::Error) -> Self {
        SocialError::Unexpected(e.into())
    }
}

impl From<ventanilla_kernel::StreamIdError> for SocialError {
    fn from(e: ventanilla_kernel::StreamIdError) -> Self {
        SocialError::Unexpected(e.into())
    }
}

/// An admin's request to link an account.
#[derive(Debug, Clone)]
pub struct LinkRequest {
    /// `facebook`, `instagram` or `x`.
    pub network: String,
    /// The network's id of the account (page id, Instagram id, X user id).
    pub external_id: String,
    /// Its name, as shown to staff.
    pub name: String,
    /// The page token (Meta) or the user token (X).
    pub access_token: SecretString,
    /// The app secret (Meta) or the consumer secret (X).
    pub signing_secret: SecretString,
    /// The verification token Meta's subscription check must carry (Meta
    /// only; chosen by the admin when subscribing the app).
    pub verify_token: Option<SecretString>,
    /// Whether Meta approved the `HUMAN_AGENT` tag for the page.
    pub human_agent: bool,
    /// Mastodon: the account's instance (`https://social.example.gal`).
    pub instance: Option<String>,
    /// Mastodon: the account's `@user@server` (Telegram: filled from the
    /// bot).
    pub handle: Option<String>,
    /// Telegram: the channel announcements go to (`@canal`), where the bot
    /// is an admin.
    pub publish_to: Option<String>,
}

/// A linked account, as staff see it (never a secret).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct AccountView {
    /// Its id.
    pub account_id: Uuid,
    /// Its network.
    pub network: String,
    /// The network's id of it.
    pub external_id: String,
    /// Its name.
    pub name: String,
    /// Whether the `HUMAN_AGENT` tag is approved.
    pub human_agent: bool,
    /// Whether it was unlinked.
    pub unlinked: bool,
    /// `{"state":"ok"}` or `{"state":"degraded","reason":…,"until":…}`.
    pub health: serde_json::Value,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
}

/// The accounts service.
#[derive(Clone)]
pub struct Accounts {
    runner: CommandRunner<PgEventLog>,
    pool: PgPool,
    tenancy: Tenancy,
    vault: Arc<Result<Vault, VaultError>>,
    public_url: String,
    telegram: Option<crate::telegram::TelegramClient>,
}

fn secret_ok(field: &'static str, s: &SecretString) -> Result<(), SocialError> {
    use secrecy::ExposeSecret;
    let v = s.expose_secret();
    if v.trim().is_empty() || v.chars().count() > SECRET_MAX || v.chars().any(char::is_whitespace) {
        return Err(SocialError::Invalid {
            field,
            problem: format!("must be 1 to {SECRET_MAX} characters without spaces"),
        });
    }
    Ok(())
}

impl Accounts {
    /// The service over `log`, encrypting with `key` (`social.credentials_key`),
    /// building webhook URLs on `public_url`.
    pub fn new(log: Arc<PgEventLog>, key: Option<&SecretString>, public_url: &str) -> Self {
        let pool = log.pool().clone();
        let runner = CommandRunner::new(log, 5);
        Self {
            tenancy: Tenancy::new(runner.clone()),
            runner,
            pool,
            vault: Arc::new(Vault::new(key)),
            public_url: public_url.trim_end_matches('/').to_owned(),
            telegram: None,
        }
    }

    /// Registers Telegram bots' webhooks through `client` when they are
    /// linked (without it, Telegram bots cannot be linked).
    pub fn with_telegram(mut self, client: crate::telegram::TelegramClient) -> Self {
        self.telegram = Some(client);
        self
    }

    /// What the service reads of the tenants service.
    pub fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    fn vault(&self) -> Result<&Vault, SocialError> {
        self.vault
            .as_ref()
            .as_ref()
            .map_err(|e| SocialError::Vault(*e))
    }

    async fn authorize_admin(&self, tenant: TenantId, by: StaffId) -> Result<(), SocialError> {
        match self.tenancy.working_role(tenant, by).await? {
            Some(Role::Admin) => Ok(()),
            _ => Err(SocialError::Forbidden),
        }
    }

    /// The URL the network must send this account's webhooks to.
    pub fn webhook_url(&self, network: Network, account: AccountId) -> String {
        let path = match network {
            Network::Facebook | Network::Instagram => "meta",
            Network::X => "x",
            Network::Telegram => "telegram",
            Network::WhatsApp => "whatsapp",
            Network::Bluesky => "bluesky",
            // Received by the SMTP receiver: the address is the way in.
            Network::Email => "email",
            // Polled: no webhook (the URL is not used).
            Network::Mastodon => "mastodon",
        };
        format!("{}/webhooks/{path}/{}", self.public_url, account.0)
    }

    /// How many more accounts the tenant's plan allows.
    async fn quota_left(&self, tenant: TenantId) -> Result<u32, SocialError> {
        let plan = self.tenancy.plan_limits(tenant).await?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let linked: i64 =
            sqlx::query_scalar("SELECT count(*) FROM social_accounts WHERE NOT unlinked")
                .fetch_one(&mut *tx)
                .await?;
        tx.commit().await?;
        Ok(plan
            .channel_accounts
            .saturating_sub(u32::try_from(linked).unwrap_or(u32::MAX)))
    }

    /// Links an account: its credentials are encrypted and stored, the
    /// account recorded. Returns its id and the webhook URL to give the
    /// network. Refused: a malformed field (`VALIDATION`), the plan's quota
    /// reached (`QUOTA_EXCEEDED`), not an admin (`FORBIDDEN`), no
    /// credentials key configured (`INTERNAL`, the log says what to set).
    pub async fn link(
        &self,
        tenant: TenantId,
        by: StaffId,
        request: &LinkRequest,
    ) -> Result<(AccountId, String), SocialError> {
        self.authorize_admin(tenant, by).await?;
        let network = Network::parse(&request.network).ok_or_else(|| SocialError::Invalid {
            field: "network",
            problem: "must be one of facebook, instagram, x, mastodon, telegram, whatsapp, bluesky, email"
                .into(),
        })?;
        if network != Network::Email {
            secret_ok("access_token", &request.access_token)?;
        }
        let id = AccountId(Uuid::new_v4());
        let mut external_id = request.external_id.clone();
        let mut reach = Reach {
            instance: None,
            handle: request.handle.clone().filter(|h| !h.trim().is_empty()),
            publish_to: request.publish_to.clone().filter(|h| !h.trim().is_empty()),
        };
        let mut signing_secret = request.signing_secret.clone();
        match network {
            Network::Mastodon => {
                let instance = crate::mastodon::Instance::parse(
                    request.instance.as_deref().unwrap_or_default(),
                )
                .map_err(|e| SocialError::Invalid {
                    field: "instance",
                    problem: e.to_string(),
                })?;
                reach.instance = Some(instance.as_str().to_owned());
                // Polled with the user token: no signing secret.
                signing_secret = SecretString::from("");
            }
            Network::Email => {
                // A mailbox: its address is its id (mail to it arrives
                // through the platform's SMTP receiver; replies leave
                // through the platform's relay, From this address).
                let address = external_id.trim().to_ascii_lowercase();
                let ok = address.split_once('@').is_some_and(|(l, d)| {
                    !l.is_empty() && d.contains('.') && !address.contains(char::is_whitespace)
                });
                if !ok {
                    return Err(SocialError::Invalid {
                        field: "external_id",
                        problem:
                            "must be the mailbox's address, e.g. lugo@correo.ventanilla.example"
                                .into(),
                    });
                }
                external_id = address;
                signing_secret = SecretString::from("");
            }
            Network::Bluesky => {
                // The account's PDS (bsky.social unless it has its own), its
                // handle or DID as the identifier, an app password as the
                // token; signed in once per process and refreshed.
                let pds = crate::mastodon::Instance::parse(
                    request
                        .instance
                        .as_deref()
                        .unwrap_or(crate::bluesky::DEFAULT_PDS),
                )
                .map_err(|e| SocialError::Invalid {
                    field: "instance",
                    problem: e.to_string(),
                })?;
                reach.instance = Some(pds.as_str().to_owned());
                reach.handle = Some(request.external_id.trim().to_owned());
                signing_secret = SecretString::from("");
            }
            Network::Telegram => {
                // The bot says who it is; its webhook is registered with a
                // secret of ours, checked on every update.
                let client = self.telegram.as_ref().ok_or_else(|| {
                    SocialError::Unexpected(anyhow::anyhow!(
                        "no Telegram client is configured in this process"
                    ))
                })?;
                let probe = Credentials {
                    external_id: crate::telegram::bot_id_from_token(&request.access_token)
                        .unwrap_or_default(),
                    access_token: request.access_token.clone(),
                    signing_secret: SecretString::from(""),
                    verify_token: SecretString::from(""),
                    human_agent: false,
                };
                let bot = client
                    .get_me(&probe)
                    .await
                    .map_err(|e| SocialError::Invalid {
                        field: "access_token",
                        problem: format!("Telegram did not accept the bot token: {e}"),
                    })?;
                external_id = bot.id.clone();
                reach.handle = Some(bot.username.clone());
                let secret = crate::telegram::new_secret_token().map_err(|e| {
                    SocialError::Unexpected(anyhow::anyhow!("no randomness from the OS: {e}"))
                })?;
                let secret = SecretString::from(secret);
                client
                    .set_webhook(
                        &probe,
                        &self.webhook_url(network, id),
                        &secret,
                        &crate::telegram::ALLOWED_UPDATES,
                    )
                    .await
                    .map_err(|e| SocialError::Invalid {
                        field: "access_token",
                        problem: format!("Telegram refused the webhook: {e}"),
                    })?;
                signing_secret = secret;
            }
            _ => secret_ok("signing_secret", &signing_secret)?,
        }
        let verify_token = match (network, &request.verify_token) {
            (
                Network::X
                | Network::Mastodon
                | Network::Telegram
                | Network::Bluesky
                | Network::Email,
                _,
            ) => SecretString::from(""),
            (_, Some(v)) => {
                secret_ok("verify_token", v)?;
                v.clone()
            }
            (_, None) => {
                return Err(SocialError::Invalid {
                    field: "verify_token",
                    problem: "Meta accounts need the verification token chosen for the webhook"
                        .into(),
                });
            }
        };
        let vault = self.vault()?;
        let secrets = Secrets {
            access_token: request.access_token.clone(),
            signing_secret,
            verify_token,
        };
        let (nonce, sealed) = vault.seal(tenant.into_uuid(), id.0, &secrets)?;
        let command = AccountCommand::Link {
            id,
            network,
            external_id,
            name: request.name.clone(),
            human_agent: request.human_agent,
            // X accounts are polled for mentions (with or without webhook
            // access: a mention read both ways is stored once); Mastodon has
            // no webhooks for mentions.
            poll_mentions: matches!(network, Network::X | Network::Mastodon | Network::Bluesky),
            reach,
            quota_left: self.quota_left(tenant).await?,
        };
        // Decide first (a refusal writes nothing), store the secret, then
        // record the account: a crash in between leaves an unused secret
        // row, never an account without credentials.
        Account::decide(&Default::default(), &command, Utc::now())
            .map_err(|e| SocialError::from(CommandError::<AccountError>::Domain(e)))?;
        self.store_secrets(tenant, id, &nonce, &sealed).await?;
        let ctx = CommandContext::new(tenant, Utc::now(), Actor::Staff { id: by.to_string() });
        let done = self
            .runner
            .execute::<Account>(&ctx, &account::stream_id(id)?, &command)
            .await?;
        self.settle(tenant, done.position).await;
        Ok((id, self.webhook_url(network, id)))
    }

    async fn store_secrets(
        &self,
        tenant: TenantId,
        id: AccountId,
        nonce: &[u8],
        sealed: &[u8],
    ) -> Result<(), SocialError> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        sqlx::query(
            "INSERT INTO social_credentials (tenant_id, account_id, nonce, ciphertext, updated_at) \
             VALUES ($1, $2, $3, $4, now()) \
             ON CONFLICT (tenant_id, account_id) DO UPDATE SET nonce = EXCLUDED.nonce, \
               ciphertext = EXCLUDED.ciphertext, updated_at = now()",
        )
        .bind(tenant.into_uuid())
        .bind(id.0)
        .bind(nonce)
        .bind(sealed)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Replaces an account's credentials (a new token after one expired);
    /// its health goes back to `ok`.
    pub async fn rotate_credentials(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: AccountId,
        access_token: SecretString,
        signing_secret: SecretString,
        verify_token: Option<SecretString>,
    ) -> Result<(), SocialError> {
        self.authorize_admin(tenant, by).await?;
        secret_ok("access_token", &access_token)?;
        let state = self.state(tenant, id).await?;
        if state.unlinked {
            return Err(SocialError::Account(AccountError::Unlinked));
        }
        let signing_secret = match state.network {
            // Telegram's is ours (registered with the webhook), Mastodon has
            // none: keep them.
            Network::Telegram | Network::Mastodon | Network::Bluesky | Network::Email => {
                self.credentials_of(tenant, &state).await?.signing_secret
            }
            _ => {
                secret_ok("signing_secret", &signing_secret)?;
                signing_secret
            }
        };
        let verify_token = match (state.network, verify_token) {
            (
                Network::X
                | Network::Mastodon
                | Network::Telegram
                | Network::Bluesky
                | Network::Email,
                _,
            ) => SecretString::from(""),
            (_, Some(v)) => {
                secret_ok("verify_token", &v)?;
                v
            }
            (_, None) => self.credentials_of(tenant, &state).await?.verify_token,
        };
        let (nonce, sealed) = self.vault()?.seal(
            tenant.into_uuid(),
            id.0,
            &Secrets {
                access_token,
                signing_secret,
                verify_token,
            },
        )?;
        self.store_secrets(tenant, id, &nonce, &sealed).await?;
        let ctx = CommandContext::new(tenant, Utc::now(), Actor::Staff { id: by.to_string() });
        let done = self
            .runner
            .execute::<Account>(
                &ctx,
                &account::stream_id(id)?,
                &AccountCommand::CredentialsRotated,
            )
            .await?;
        self.settle(tenant, done.position).await;
        Ok(())
    }

    /// Unlinks an account: nothing more is received or sent on it, and its
    /// credentials are deleted.
    pub async fn unlink(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: AccountId,
    ) -> Result<(), SocialError> {
        self.authorize_admin(tenant, by).await?;
        self.state(tenant, id).await?;
        let ctx = CommandContext::new(tenant, Utc::now(), Actor::Staff { id: by.to_string() });
        let done = self
            .runner
            .execute::<Account>(&ctx, &account::stream_id(id)?, &AccountCommand::Unlink)
            .await?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        sqlx::query("DELETE FROM social_credentials WHERE tenant_id = $1 AND account_id = $2")
            .bind(tenant.into_uuid())
            .bind(id.0)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.settle(tenant, done.position).await;
        Ok(())
    }

    /// Records an account's health as the platform found it (a no-op when
    /// unchanged).
    pub async fn report_health(
        &self,
        tenant: TenantId,
        id: AccountId,
        health: Health,
    ) -> Result<(), SocialError> {
        let ctx = CommandContext::new(tenant, Utc::now(), Actor::system("social"));
        match self
            .runner
            .execute::<Account>(
                &ctx,
                &account::stream_id(id)?,
                &AccountCommand::ReportHealth { health },
            )
            .await
        {
            Ok(_) | Err(CommandError::Domain(AccountError::Unlinked)) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The tenant's accounts and their health (staff of the tenant).
    pub async fn list(
        &self,
        tenant: TenantId,
        by: StaffId,
    ) -> Result<Vec<AccountView>, SocialError> {
        if self.tenancy.working_role(tenant, by).await?.is_none() {
            return Err(SocialError::Forbidden);
        }
        self.views(tenant, true).await
    }

    /// The tenant's accounts, for the platform's own tools (the demo, the
    /// simulator): no caller check, never exposed to an API.
    pub async fn linked(&self, tenant: TenantId) -> Result<Vec<AccountView>, SocialError> {
        self.views(tenant, false).await
    }

    /// The tenant's accounts as staff see them, oldest first; the unlinked
    /// ones too when `unlinked`.
    async fn views(
        &self,
        tenant: TenantId,
        unlinked: bool,
    ) -> Result<Vec<AccountView>, SocialError> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let rows = sqlx::query_as(
            "SELECT account_id, network, external_id, name, human_agent, unlinked, health, linked_at \
             FROM social_accounts WHERE tenant_id = $1 AND ($2 OR NOT unlinked) ORDER BY linked_at",
        )
        .bind(tenant.into_uuid())
        .bind(unlinked)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(rows)
    }

    /// The account as its stream says (`NOT_FOUND` when the tenant has no
    /// such account).
    pub async fn state(
        &self,
        tenant: TenantId,
        id: AccountId,
    ) -> Result<account::AccountDetails, SocialError> {
        let (_, events) = self
            .runner
            .load::<Account>(tenant, &account::stream_id(id)?)
            .await?;
        Account::fold(&events).account.ok_or(SocialError::NotFound)
    }

    /// The account's credentials, decrypted for one use (never returned by
    /// an API).
    pub async fn credentials(
        &self,
        tenant: TenantId,
        id: AccountId,
    ) -> Result<Credentials, SocialError> {
        let state = self.state(tenant, id).await?;
        self.credentials_of(tenant, &state).await
    }

    /// The credentials of an account whose state the caller already loaded
    /// (saves reading its stream twice).
    pub async fn credentials_of(
        &self,
        tenant: TenantId,
        state: &account::AccountDetails,
    ) -> Result<Credentials, SocialError> {
        let id = state.id;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let row: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT nonce, ciphertext FROM social_credentials WHERE tenant_id = $1 AND account_id = $2",
        )
        .bind(tenant.into_uuid())
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        let (nonce, sealed) = row.ok_or(SocialError::NotFound)?;
        let secrets = self
            .vault()?
            .open(tenant.into_uuid(), id.0, &nonce, &sealed)?;
        Ok(Credentials {
            external_id: state.external_id.clone(),
            access_token: secrets.access_token,
            signing_secret: secrets.signing_secret,
            verify_token: secrets.verify_token,
            human_agent: state.human_agent,
        })
    }

    /// Waits until the accounts read model shows `position`.
    async fn settle(&self, _tenant: TenantId, position: Option<ventanilla_eventlog::Position>) {
        ventanilla_postgres::projection::settle(
            Arc::clone(self.runner.log()),
            self.pool.clone(),
            Arc::new(AccountsProjection),
            position,
            std::time::Duration::from_secs(15),
        )
        .await;
    }
}

/// The `social_accounts` projection.
#[derive(Debug, Default, Clone, Copy)]
pub struct AccountsProjection;

impl Projection for AccountsProjection {
    fn name(&self) -> &'static str {
        "social_accounts"
    }

    fn tables(&self) -> &'static [&'static str] {
        &["social_accounts"]
    }
}

#[async_trait]
impl Handler for AccountsProjection {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let tenant = tx.tenant().into_uuid();
        for e in events {
            if !e.event_type.starts_with("account.") || e.stream.category() != "account" {
                continue;
            }
            let Some(id) = e
                .stream
                .as_str()
                .strip_prefix("account-")
                .and_then(|s| Uuid::parse_str(s).ok())
            else {
                continue;
            };
            let event = AccountEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
            let conn = tx.conn().await?;
            match event {
                AccountEvent::Linked(l) => {
                    sqlx::query(
                        "INSERT INTO social_accounts (tenant_id, account_id, network, external_id, name, \
                           human_agent, poll_mentions, health, linked_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $9, $7, $8, $8) ON CONFLICT DO NOTHING",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(l.network.as_str())
                    .bind(&l.external_id)
                    .bind(&l.name)
                    .bind(l.human_agent)
                    .bind(serde_json::to_value(Health::Ok)?)
                    .bind(l.at)
                    .bind(l.poll_mentions)
                    .execute(conn)
                    .await?;
                }
                AccountEvent::CursorAdvanced(_) => {}
                AccountEvent::CredentialsRotated(c) => {
                    sqlx::query(
                        "UPDATE social_accounts SET health = $3, updated_at = $4 \
                         WHERE tenant_id = $1 AND account_id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(serde_json::to_value(Health::Ok)?)
                    .bind(c.at)
                    .execute(conn)
                    .await?;
                }
                AccountEvent::Unlinked(u) => {
                    sqlx::query(
                        "UPDATE social_accounts SET unlinked = true, updated_at = $3 \
                         WHERE tenant_id = $1 AND account_id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(u.at)
                    .execute(conn)
                    .await?;
                }
                AccountEvent::HealthChanged(h) => {
                    sqlx::query(
                        "UPDATE social_accounts SET health = $3, updated_at = $4 \
                         WHERE tenant_id = $1 AND account_id = $2",
                    )
                    .bind(tenant)
                    .bind(id)
                    .bind(serde_json::to_value(&h.health)?)
                    .bind(h.at)
                    .execute(conn)
                    .await?;
                }
            }
        }
        Ok(())
    }
}

/// Where the API of an account on its own server is (a Mastodon instance,
/// a Bluesky PDS): the server it was linked with — or, in simulator mode,
/// the simulated server of its network, whatever was linked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Servers {
    /// The simulated Mastodon instance, in simulator mode.
    pub mastodon: Option<String>,
    /// The simulated Bluesky PDS, in simulator mode.
    pub bluesky: Option<String>,
}

impl Servers {
    /// The base URL to call for `state`'s account.
    pub fn base_of(&self, state: &ventanilla_social_domain::account::AccountDetails) -> String {
        let linked = state.reach.instance.clone();
        match state.network {
            Network::Mastodon => self.mastodon.clone().or(linked).unwrap_or_default(),
            Network::Bluesky => self
                .bluesky
                .clone()
                .or(linked)
                .unwrap_or_else(|| crate::bluesky::DEFAULT_PDS.to_owned()),
            _ => linked.unwrap_or_default(),
        }
    }
}
