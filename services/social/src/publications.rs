//! [`Publications`]: staff post an announcement to the tenant's linked
//! accounts they choose. The request is recorded (`publication-<uuid>`)
//! and one post per account is queued in the same step; the delivery worker
//! publishes each (page feed post, X post) with the same guarantees as a
//! reply, and records the platform id of each post. The comments and
//! replies the posts draw come back as ordinary messages, and so as
//! conversations in the inbox.
//!
//! The council's announcements (`announcement.published`, "Avísame
//! cuando…") go through the same steps — the accounts looked up in the
//! tenant (`Publications::targets`), the request recorded idempotently
//! (`Publications::record`), the pending posts queued (`queue_pending`) —
//! from the outbound reactor ([`crate::announcements`]).

use std::sync::Arc;

use chrono::{DateTime, Utc};
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandError, CommandRunner, Decider};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_social_domain::account::{AccountId, Network};
use ventanilla_social_domain::publication::{
    self, PostState, Publication, PublicationCommand, PublicationError, PublicationState,
};
use ventanilla_tenants_domain::staff::StaffId;

use crate::accounts::{Accounts, SocialError};
use crate::connector::Post;
use crate::outbound;

/// Why nothing is posted on an account the tenant unlinked.
pub const UNLINKED: &str = "the account was unlinked before the announcement went out";

/// Why nothing is posted on an account the tenant does not have.
pub const NOT_LINKED: &str =
    "the account is not one of this organisation's linked accounts, so nothing was posted on it";

/// An account a publication goes to, as found in the tenant when it is
/// requested.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The account.
    pub account: AccountId,
    /// Its network, when the tenant has the account.
    pub network: Option<Network>,
    /// Why nothing can be posted on it, if so ([`UNLINKED`],
    /// [`NOT_LINKED`]).
    pub unavailable: Option<&'static str>,
}

/// One account's post of a publication, as staff see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PostView {
    /// The account.
    pub account_id: Uuid,
    /// `pending`, `posting`, `posted` or `failed`.
    pub state: &'static str,
    /// The post's id on the network, once posted.
    pub platform_id: Option<String>,
    /// Why it failed.
    pub reason: Option<String>,
}

/// The publications service.
#[derive(Clone)]
pub struct Publications {
    accounts: Accounts,
    runner: CommandRunner<PgEventLog>,
}

fn refused(e: CommandError<PublicationError>) -> SocialError {
    match e {
        CommandError::Domain(PublicationError::Invalid { field, problem }) => {
            SocialError::Invalid { field, problem }
        }
        CommandError::Domain(other) => SocialError::Unexpected(anyhow::anyhow!("{other}")),
        CommandError::Conflict { .. } => {
            SocialError::Unexpected(anyhow::anyhow!("the publication kept changing"))
        }
        CommandError::Invalid(e) => SocialError::Unexpected(e.into()),
        CommandError::Unexpected(e) => SocialError::Unexpected(e),
    }
}

impl Publications {
    /// The service over `log`, reading accounts through `accounts`.
    pub fn new(accounts: Accounts, log: Arc<PgEventLog>) -> Self {
        Self {
            accounts,
            runner: CommandRunner::new(log, 5),
        }
    }

    /// Posts `text` (and `link`) on each of `accounts`. Any active staff
    /// member may publish; every account must be linked in the tenant
    /// (`NOT_FOUND` otherwise, nothing written). Returns the publication's
    /// id; the posts go out within the delivery worker's interval.
    pub async fn publish(
        &self,
        tenant: TenantId,
        by: StaffId,
        accounts: &[Uuid],
        text: &str,
        link: Option<&str>,
    ) -> Result<Uuid, SocialError> {
        if self
            .accounts
            .tenancy()
            .working_role(tenant, by)
            .await?
            .is_none()
        {
            return Err(SocialError::Forbidden);
        }
        let targets = self.targets(tenant, accounts).await?;
        if targets.iter().any(|t| t.unavailable.is_some()) {
            return Err(SocialError::NotFound);
        }
        let command = PublicationCommand::Request {
            text: text.to_owned(),
            link: link.map(str::to_owned),
            accounts: targets.iter().map(|t| t.account).collect(),
            unavailable: Vec::new(),
        };
        let now = Utc::now();
        Publication::decide(&Default::default(), &command, now)
            .map_err(|e| refused(CommandError::Domain(e)))?;
        let id = Uuid::new_v4();
        let ctx = CommandContext::new(tenant, now, Actor::Staff { id: by.to_string() })
            .with_idempotency_key(id);
        let state = self.record(&ctx, id, &command).await.map_err(refused)?;
        // Queued after the request is recorded: a crash in between leaves a
        // request whose posts show as `pending` and never go out (the staff
        // see it with `show` and publish again); queueing in the same
        // transaction as the request needs the log and the queue in one
        // transaction, which the event log's API does not offer yet. (An
        // announcement has no such gap: the reactor that records it queues
        // its posts with its checkpoint, and records again — a no-op — on
        // redelivery.)
        let post = Post {
            text: text.to_owned(),
            link: link.map(str::to_owned),
            image_url: None,
        };
        let mut tx = begin_for_tenant(self.runner.log().pool(), tenant).await?;
        queue_pending(&mut tx, tenant, id, &state, &targets, |_| post.clone(), now).await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Each of `accounts` (without repeats, in order) as the tenant has it:
    /// its network, and whether it can be posted on. Reads only the
    /// tenant's streams: another tenant's account is not found.
    pub(crate) async fn targets(
        &self,
        tenant: TenantId,
        accounts: &[Uuid],
    ) -> Result<Vec<Target>, SocialError> {
        let mut targets: Vec<Target> = Vec::with_capacity(accounts.len());
        for id in accounts {
            let account = AccountId(*id);
            if targets.iter().any(|t| t.account == account) {
                continue;
            }
            let target = match self.accounts.state(tenant, account).await {
                Ok(state) => Target {
                    account,
                    network: Some(state.network),
                    unavailable: state.unlinked.then_some(UNLINKED),
                },
                Err(SocialError::NotFound) => Target {
                    account,
                    network: None,
                    unavailable: Some(NOT_LINKED),
                },
                Err(e) => return Err(e),
            };
            targets.push(target);
        }
        Ok(targets)
    }

    /// Records `command` on publication `id` under `ctx` (idempotent when
    /// `ctx` has a key: running it again returns what was recorded) and
    /// returns the publication's state.
    pub(crate) async fn record(
        &self,
        ctx: &CommandContext,
        id: Uuid,
        command: &PublicationCommand,
    ) -> Result<PublicationState, CommandError<PublicationError>> {
        let stream = publication::stream_id(id).map_err(|e| CommandError::Unexpected(e.into()))?;
        self.runner
            .execute::<Publication>(ctx, &stream, command)
            .await
            .map(|done| done.state)
    }

    /// Each account's post of a publication.
    pub async fn show(&self, tenant: TenantId, id: Uuid) -> Result<Vec<PostView>, SocialError> {
        let (_, events) = self
            .runner
            .load::<Publication>(tenant, &publication::stream_id(id)?)
            .await
            .map_err(refused)?;
        let state = Publication::fold(&events);
        if state.request.is_none() {
            return Err(SocialError::NotFound);
        }
        Ok(state
            .posts
            .into_iter()
            .map(|(account, post)| {
                let (state, platform_id, reason) = match post {
                    PostState::Pending => ("pending", None, None),
                    PostState::Started => ("posting", None, None),
                    PostState::Posted(p) => ("posted", Some(p), None),
                    PostState::Failed(r) => ("failed", None, Some(r)),
                };
                PostView {
                    account_id: account.0,
                    state,
                    platform_id,
                    reason,
                }
            })
            .collect())
    }
}

/// Queues the posts of publication `id` still `pending` in `state`, on
/// `conn` (the caller's tenant-scoped transaction), `post_for` saying what
/// to post on each network. Queueing a post already queued does nothing.
/// An account missing from `targets` (never the case: a pending post's
/// account was found when requested) is skipped.
pub(crate) async fn queue_pending(
    conn: &mut sqlx::PgConnection,
    tenant: TenantId,
    id: Uuid,
    state: &PublicationState,
    targets: &[Target],
    post_for: impl Fn(Network) -> Post,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    for (account, post) in &state.posts {
        if *post != PostState::Pending {
            continue;
        }
        let network = targets
            .iter()
            .find(|t| t.account == *account)
            .and_then(|t| t.network);
        let Some(network) = network else {
            tracing::warn!(tenant_id = %tenant, publication = %id, "a pending post's account was not found; not queued");
            continue;
        };
        outbound::queue_post(
            &mut *conn,
            tenant,
            id,
            (*account, network),
            &post_for(network),
            now,
        )
        .await?;
    }
    Ok(())
}
