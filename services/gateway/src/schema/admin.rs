//! What an admin of an organisation configures: departments and topics
//! (listing and adding them; renaming, removing and the rest of the
//! directory, hours and portal are in [`super::organisation`]), API keys
//! (creating, renaming, revoking), and the social network accounts
//! (linking, unlinking, their health).
//! Changes and the keys' list are for staff with the role admin only;
//! agents, keys and the operator are `FORBIDDEN`, and the services check
//! again that the admin is active. Reading the departments and topics is
//! open to staff and API keys, the linked accounts to staff.
//!
//! Each mutation answers with what it produced, read back after the
//! service's read model caught up.
//!
//! What this module must not do: decide anything, or show a key's secret
//! anywhere but in the answer to `createApiKey`.

use async_graphql::{Context, Enum, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::Deserialize;
use uuid::Uuid;
use ventanilla_social::accounts::{AccountView, LinkRequest};
use ventanilla_social_domain::account::AccountId;
use ventanilla_tenants::api_keys::KeySummary;
use ventanilla_tenants::organisation::{DepartmentView, TopicView};
use ventanilla_tenants_domain::api_key::{ApiKeyId, Scope};

use super::access::{self, services};
use super::organisation::directory;
use super::viewer::ApiKeyScope;
use crate::error::{INTERNAL_MESSAGE, code, coded, service_error};

/// A department of the organisation.
#[derive(SimpleObject, Debug)]
pub struct Department {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What it deals with.
    pub description: Option<String>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<DepartmentView> for Department {
    fn from(v: DepartmentView) -> Self {
        Self {
            id: v.id.0,
            name: v.name,
            description: v.description,
            updated_at: v.updated_at,
        }
    }
}

/// A topic citizens can subscribe to.
#[derive(SimpleObject, Debug)]
pub struct Topic {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
    /// What subscribers hear about.
    pub description: Option<String>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<TopicView> for Topic {
    fn from(v: TopicView) -> Self {
        Self {
            id: v.id.0,
            name: v.name,
            description: v.description,
            updated_at: v.updated_at,
        }
    }
}

/// An API key, as admins see it: never its secret.
#[derive(SimpleObject, Debug)]
pub struct ApiKey {
    /// Its id.
    pub id: Uuid,
    /// What admins call it.
    pub name: String,
    /// What it may do.
    pub scope: ApiKeyScope,
    /// The first characters of its secret, to recognise it.
    pub prefix: String,
    /// The admin who created it.
    pub created_by: Uuid,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When it was last used (recorded at most once a minute), if ever.
    pub last_used_at: Option<DateTime<Utc>>,
}

fn scope_of(scope: Scope) -> ApiKeyScope {
    match scope {
        Scope::Read => ApiKeyScope::Read,
        Scope::ReadWrite => ApiKeyScope::ReadWrite,
    }
}

impl From<KeySummary> for ApiKey {
    fn from(k: KeySummary) -> Self {
        Self {
            id: k.key_id.0,
            name: k.name,
            scope: scope_of(k.scope),
            prefix: k.prefix,
            created_by: k.created_by.0,
            created_at: k.created_at,
            revoked_at: k.revoked_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A key just created, with its secret.
#[derive(SimpleObject)]
pub struct CreatedApiKey {
    /// The key.
    pub api_key: ApiKey,
    /// The secret integrators send as `Authorization: Bearer <secret>`.
    /// Shown only now: it is stored hashed and cannot be shown again.
    pub secret: String,
}

impl std::fmt::Debug for CreatedApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedApiKey")
            .field("api_key", &self.api_key)
            .field("secret", &"…")
            .finish()
    }
}

/// Whether a channel account works.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelHealthState {
    /// Working.
    Ok,
    /// The network refuses it, or it is throttled, for now.
    Degraded,
}

/// A channel account's health.
#[derive(SimpleObject, Debug)]
pub struct ChannelHealth {
    /// Working or degraded.
    pub state: ChannelHealthState,
    /// Why it is degraded.
    pub reason: Option<String>,
    /// Until when it is expected to stay degraded, if known.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Deserialize)]
struct StoredHealth {
    state: String,
    reason: Option<String>,
    until: Option<DateTime<Utc>>,
}

impl ChannelHealth {
    fn parse(value: serde_json::Value) -> Result<Self> {
        let stored: StoredHealth = serde_json::from_value(value).map_err(|e| {
            tracing::error!(error = %e, "a channel account's health the schema cannot read");
            coded(code::INTERNAL, INTERNAL_MESSAGE)
        })?;
        let state = match stored.state.as_str() {
            "ok" => ChannelHealthState::Ok,
            _ => ChannelHealthState::Degraded,
        };
        Ok(Self {
            state,
            reason: stored.reason,
            until: stored.until,
        })
    }
}

/// A social network account linked to the organisation.
#[derive(SimpleObject, Debug)]
pub struct ChannelAccount {
    /// Its id.
    pub id: Uuid,
    /// Its network (`facebook`, `instagram`, `x`, `telegram`…).
    pub network: String,
    /// Its name, as shown to staff.
    pub name: String,
    /// Whether it works.
    pub health: ChannelHealth,
    /// When it was linked.
    pub linked_at: DateTime<Utc>,
}

impl ChannelAccount {
    fn from_view(a: AccountView) -> Result<Self> {
        Ok(Self {
            id: a.account_id,
            network: a.network,
            name: a.name,
            health: ChannelHealth::parse(a.health)?,
            linked_at: a.linked_at,
        })
    }
}

/// The networks an account can be linked on.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// A Facebook Page (Messenger and comments).
    Facebook,
    /// An Instagram professional account.
    Instagram,
    /// An X account.
    X,
    /// A Mastodon account, on its instance.
    Mastodon,
    /// A Telegram bot.
    Telegram,
    /// A WhatsApp Business number (Cloud API).
    Whatsapp,
    /// A Bluesky account.
    Bluesky,
    /// A mailbox the platform receives mail for.
    Email,
}

impl Network {
    fn code(self) -> &'static str {
        match self {
            Self::Facebook => "facebook",
            Self::Instagram => "instagram",
            Self::X => "x",
            Self::Mastodon => "mastodon",
            Self::Telegram => "telegram",
            Self::Whatsapp => "whatsapp",
            Self::Bluesky => "bluesky",
            Self::Email => "email",
        }
    }
}

/// What linking an account needs; which fields apply depends on the
/// network (docs/social.md says, network by network).
#[derive(InputObject)]
pub struct LinkChannelAccountInput {
    /// The network.
    pub network: Network,
    /// The network's id of the account: the page id (Meta), the user id
    /// (X), the phone number id (WhatsApp), the handle (Bluesky), the
    /// mailbox's address (e-mail); Telegram fills it from the bot.
    #[graphql(default)]
    pub external_id: String,
    /// Its name, as staff will see it.
    pub name: String,
    /// The access token: page token (Meta), user token (X, Mastodon), bot
    /// token (Telegram), app password (Bluesky); empty for e-mail.
    #[graphql(default)]
    pub access_token: String,
    /// The app secret (Meta, WhatsApp) or consumer secret (X).
    #[graphql(default)]
    pub signing_secret: String,
    /// Meta: the verification token chosen for the webhook.
    pub verify_token: Option<String>,
    /// Meta: whether the page has the `HUMAN_AGENT` tag approved.
    #[graphql(default)]
    pub human_agent: bool,
    /// Mastodon: the instance (`https://social.example.gal`); Bluesky: the
    /// PDS, when not bsky.social.
    pub instance: Option<String>,
    /// Mastodon: the account's `@user@server`.
    pub handle: Option<String>,
    /// Telegram: the channel announcements go to (`@canal`), where the bot
    /// is an admin.
    pub publish_to: Option<String>,
}

impl std::fmt::Debug for LinkChannelAccountInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkChannelAccountInput")
            .field("network", &self.network)
            .field("external_id", &self.external_id)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// An account just linked, and where its network must send its webhooks.
#[derive(SimpleObject, Debug)]
pub struct LinkedChannelAccount {
    /// The account.
    pub account: ChannelAccount,
    /// The URL to give the network as the webhook (Telegram's was
    /// registered already; polled networks need none).
    pub webhook_url: String,
}

/// Admins' queries.
#[derive(Default)]
pub struct AdminQuery;

#[Object]
impl AdminQuery {
    /// The organisation's departments, by name (what a `QUESTION_FOR`
    /// ticket may be addressed to). Staff and API keys.
    async fn departments(&self, ctx: &Context<'_>) -> Result<Vec<Department>> {
        let tenant = access::member(ctx)?;
        let directory = directory(ctx, tenant).await?;
        Ok(directory.departments.into_iter().map(Into::into).collect())
    }

    /// The organisation's topics, by name (what citizens subscribe to and
    /// announcements are about). Staff and API keys.
    async fn topics(&self, ctx: &Context<'_>) -> Result<Vec<Topic>> {
        let tenant = access::member(ctx)?;
        let directory = directory(ctx, tenant).await?;
        Ok(directory.topics.into_iter().map(Into::into).collect())
    }

    /// The organisation's API keys, revoked ones too, oldest first; never
    /// their secrets. Admins only.
    async fn api_keys(&self, ctx: &Context<'_>) -> Result<Vec<ApiKey>> {
        let by = access::admin(ctx)?;
        let keys = services(ctx)?
            .api_keys
            .list(by.tenant)
            .await
            .map_err(|e| service_error(&e))?;
        Ok(keys.into_iter().map(Into::into).collect())
    }

    /// The social network accounts linked to the organisation (not the
    /// unlinked ones), oldest first, with their health: where its
    /// announcements can go out. Staff (linking and unlinking is for
    /// admins).
    async fn channel_accounts(&self, ctx: &Context<'_>) -> Result<Vec<ChannelAccount>> {
        let by = access::staff_reader(ctx)?;
        let accounts = services(ctx)?
            .accounts
            .list(by.tenant, by.staff)
            .await
            .map_err(|e| service_error(&e))?;
        accounts
            .into_iter()
            .filter(|a| !a.unlinked)
            .map(ChannelAccount::from_view)
            .collect()
    }
}

/// Admins' mutations.
#[derive(Default)]
pub struct AdminMutation;

/// The one just added, read back (its read model has caught up).
fn added<T>(id: Uuid, items: Vec<T>, id_of: impl Fn(&T) -> Uuid) -> Result<T> {
    items.into_iter().find(|t| id_of(t) == id).ok_or_else(|| {
        tracing::error!(%id, "an object just added is not in the read model");
        coded(code::INTERNAL, INTERNAL_MESSAGE)
    })
}

#[Object]
impl AdminMutation {
    /// Adds a department. Refused (`CONFLICT`) when one already has the
    /// name, ignoring case. Admins only.
    async fn add_department(
        &self,
        ctx: &Context<'_>,
        name: String,
        description: Option<String>,
    ) -> Result<Department> {
        let by = access::admin(ctx)?;
        let organisation = &services(ctx)?.organisation;
        let id = organisation
            .add_department(by.tenant, by.staff, &name, description.as_deref())
            .await
            .map_err(|e| service_error(&e))?;
        let directory = directory(ctx, by.tenant).await?;
        added(id.0, directory.departments, |d| d.id.0).map(Into::into)
    }

    /// Adds a topic citizens can subscribe to. Refused (`CONFLICT`) when
    /// one already has the name, ignoring case. Admins only.
    async fn add_topic(
        &self,
        ctx: &Context<'_>,
        name: String,
        description: Option<String>,
    ) -> Result<Topic> {
        let by = access::admin(ctx)?;
        let organisation = &services(ctx)?.organisation;
        let id = organisation
            .add_topic(by.tenant, by.staff, &name, description.as_deref())
            .await
            .map_err(|e| service_error(&e))?;
        let directory = directory(ctx, by.tenant).await?;
        added(id.0, directory.topics, |t| t.id.0).map(Into::into)
    }

    /// Creates an API key for integrators; its secret is in the answer and
    /// nowhere else, ever. `QUOTA_EXCEEDED` when the organisation has the
    /// most live keys allowed. Admins only.
    async fn create_api_key(
        &self,
        ctx: &Context<'_>,
        name: String,
        scope: ApiKeyScope,
    ) -> Result<CreatedApiKey> {
        let by = access::admin(ctx)?;
        let api_keys = &services(ctx)?.api_keys;
        let scope = match scope {
            ApiKeyScope::Read => "read",
            ApiKeyScope::ReadWrite => "read_write",
        };
        let created = api_keys
            .create(by.tenant, by.staff, &name, scope)
            .await
            .map_err(|e| service_error(&e))?;
        let keys = api_keys
            .list(by.tenant)
            .await
            .map_err(|e| service_error(&e))?;
        Ok(CreatedApiKey {
            api_key: added(created.key_id.0, keys, |k| k.key_id.0)?.into(),
            secret: created.secret,
        })
    }

    /// Revokes an API key for good: it is refused from its next use.
    /// Revoking a revoked key changes nothing; `NOT_FOUND` when the
    /// organisation has no such key. Admins only.
    async fn revoke_api_key(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        reason: Option<String>,
    ) -> Result<ApiKey> {
        let by = access::admin(ctx)?;
        let api_keys = &services(ctx)?.api_keys;
        api_keys
            .revoke(by.tenant, by.staff, ApiKeyId(id), reason.as_deref())
            .await
            .map_err(|e| service_error(&e))?;
        let keys = api_keys
            .list(by.tenant)
            .await
            .map_err(|e| service_error(&e))?;
        added(id, keys, |k| k.key_id.0).map(Into::into)
    }

    /// Renames an API key (what admins call it; its secret and scope stay).
    /// `CONFLICT` when the key is revoked; `NOT_FOUND` when the
    /// organisation has no such key. Admins only.
    async fn rename_api_key(&self, ctx: &Context<'_>, id: Uuid, name: String) -> Result<ApiKey> {
        let by = access::admin(ctx)?;
        let api_keys = &services(ctx)?.api_keys;
        api_keys
            .rename(by.tenant, by.staff, ApiKeyId(id), &name)
            .await
            .map_err(|e| service_error(&e))?;
        let keys = api_keys
            .list(by.tenant)
            .await
            .map_err(|e| service_error(&e))?;
        added(id, keys, |k| k.key_id.0).map(Into::into)
    }

    /// Links a social network account: its credentials are encrypted and
    /// never shown again. `QUOTA_EXCEEDED` when the plan has no account
    /// left; `VALIDATION` names a missing or malformed field (Telegram
    /// checks the bot token with Telegram). Admins only.
    async fn link_channel_account(
        &self,
        ctx: &Context<'_>,
        input: LinkChannelAccountInput,
    ) -> Result<LinkedChannelAccount> {
        let by = access::admin(ctx)?;
        let accounts = &services(ctx)?.accounts;
        let request = LinkRequest {
            network: input.network.code().to_owned(),
            external_id: input.external_id,
            name: input.name,
            access_token: SecretString::from(input.access_token),
            signing_secret: SecretString::from(input.signing_secret),
            verify_token: input.verify_token.map(SecretString::from),
            human_agent: input.human_agent,
            instance: input.instance,
            handle: input.handle,
            publish_to: input.publish_to,
        };
        let (id, webhook_url) = accounts
            .link(by.tenant, by.staff, &request)
            .await
            .map_err(|e| service_error(&e))?;
        let all = accounts
            .list(by.tenant, by.staff)
            .await
            .map_err(|e| service_error(&e))?;
        let view = added(id.0, all, |a| a.account_id)?;
        Ok(LinkedChannelAccount {
            account: ChannelAccount::from_view(view)?,
            webhook_url,
        })
    }

    /// Replaces an account's credentials (a token that expired or was
    /// revoked); its health goes back to `OK`. `signingSecret` is for Meta,
    /// WhatsApp and X (the others keep theirs); `verifyToken` for Meta,
    /// kept when not given. `NOT_FOUND` when the organisation has no such
    /// account, `CONFLICT` when it was unlinked. Admins only.
    async fn rotate_channel_credentials(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        access_token: String,
        #[graphql(default)] signing_secret: String,
        verify_token: Option<String>,
    ) -> Result<ChannelAccount> {
        let by = access::admin(ctx)?;
        let accounts = &services(ctx)?.accounts;
        accounts
            .rotate_credentials(
                by.tenant,
                by.staff,
                AccountId(id),
                SecretString::from(access_token),
                SecretString::from(signing_secret),
                verify_token.map(SecretString::from),
            )
            .await
            .map_err(|e| service_error(&e))?;
        let all = accounts
            .list(by.tenant, by.staff)
            .await
            .map_err(|e| service_error(&e))?;
        ChannelAccount::from_view(added(id, all, |a| a.account_id)?)
    }

    /// Unlinks an account: nothing more is received or sent on it and its
    /// credentials are deleted. `NOT_FOUND` when the organisation has no
    /// such account. Admins only.
    async fn unlink_channel_account(&self, ctx: &Context<'_>, id: Uuid) -> Result<bool> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .accounts
            .unlink(by.tenant, by.staff, AccountId(id))
            .await
            .map_err(|e| service_error(&e))?;
        Ok(true)
    }
}
