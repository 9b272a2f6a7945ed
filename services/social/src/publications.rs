//! [`Publications`]: staff post an announcement to the tenant's linked
//! accounts they choose. The request is recorded (`publication-<uuid>`)
//! and one post per account is queued in the same step; the delivery worker
//! publishes each (page feed post, X post) with the same guarantees as a
//! reply, and records the platform id of each post. The comments and
//! replies the posts draw come back as ordinary messages, and so as
//! conversations in the inbox.
//!
//! (The "Avísame cuando…" announcement of the subscriptions issue, with its
//! notifications to subscribers, will request its posts through this.)

use std::sync::Arc;

use chrono::Utc;
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandError, CommandRunner, Decider};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_social_domain::account::AccountId;
use ventanilla_social_domain::publication::{
    self, PostState, Publication, PublicationCommand, PublicationError,
};
use ventanilla_tenants_domain::staff::StaffId;

use crate::accounts::{Accounts, SocialError};
use crate::outbound;

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
        let mut chosen = Vec::new();
        for id in accounts {
            let state = self.accounts.state(tenant, AccountId(*id)).await?;
            if state.unlinked {
                return Err(SocialError::NotFound);
            }
            chosen.push((AccountId(*id), state.network));
        }
        let command = PublicationCommand::Request {
            text: text.to_owned(),
            link: link.map(str::to_owned),
            accounts: chosen.iter().map(|(a, _)| *a).collect(),
        };
        let now = Utc::now();
        Publication::decide(&Default::default(), &command, now)
            .map_err(|e| refused(CommandError::Domain(e)))?;
        let id = Uuid::new_v4();
        let ctx = CommandContext::new(tenant, now, Actor::Staff { id: by.to_string() })
            .with_idempotency_key(id);
        self.runner
            .execute::<Publication>(&ctx, &publication::stream_id(id)?, &command)
            .await
            .map_err(refused)?;
        // Queued after the request is recorded: a crash in between leaves a
        // request whose posts show as `pending` and never go out (the staff
        // see it with `show` and publish again); queueing in the same
        // transaction as the request needs the log and the queue in one
        // transaction, which the event log's API does not offer yet.
        let mut tx = begin_for_tenant(self.runner.log().pool(), tenant).await?;
        for (account, network) in chosen {
            outbound::queue_post(&mut tx, tenant, id, account, network, text, link, now).await?;
        }
        tx.commit().await?;
        Ok(id)
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
