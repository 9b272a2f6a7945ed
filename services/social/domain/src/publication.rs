//! An announcement posted to a tenant's linked accounts, stream
//! `publication-<uuid>`: requested once for the chosen accounts (those
//! that cannot be posted to — unlinked, not the tenant's — recorded failed
//! at once, with why), then posted on each (page feed or photo post, X
//! post), each post's attempt recorded
//! before the network is called — after a crash in between, that account's
//! post is marked failed rather than risk posting it twice. The platform id
//! of each post is recorded, so the comments and replies it draws (which
//! arrive as ordinary messages) can be told apart.
//!
//! What this module must not do: read a clock, call a network.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::web::{Schemes, web_url};
use ventanilla_kernel::{StreamId, StreamIdError};

use crate::account::AccountId;

/// The longest announcement text, in characters (the strictest network
/// refuses longer ones itself).
pub const TEXT_MAX: usize = 5000;

/// The stream of a publication: `publication-<uuid>`.
pub fn stream_id(id: Uuid) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("publication", id)
}

/// What can be asked of a publication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicationCommand {
    /// Requests the post on `accounts` and `unavailable` (at least one in
    /// all; the service checks which are linked).
    Request {
        /// What it says.
        text: String,
        /// A link to attach.
        link: Option<String>,
        /// Where it goes.
        accounts: Vec<AccountId>,
        /// Chosen accounts nothing can be posted on (unlinked, not the
        /// tenant's), with why, for the staff: their posts are recorded
        /// failed in the same decision.
        unavailable: Vec<(AccountId, String)>,
    },
    /// The post on `account` is about to be sent.
    Start {
        /// The account.
        account: AccountId,
    },
    /// The network published it.
    Posted {
        /// The account.
        account: AccountId,
        /// The post's id on the network.
        platform_id: String,
    },
    /// The attempt on `account` failed in a way that may pass; a new one
    /// may start.
    Retry {
        /// The account.
        account: AccountId,
        /// What happened.
        reason: String,
    },
    /// It could not be published on `account`.
    Fail {
        /// The account.
        account: AccountId,
        /// Why, for the staff.
        reason: String,
    },
}

/// What a publication's stream records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PublicationEvent {
    /// `publication.requested`
    Requested {
        /// What it says.
        text: String,
        /// A link.
        link: Option<String>,
        /// Where it goes.
        accounts: Vec<AccountId>,
        /// When.
        at: DateTime<Utc>,
    },
    /// `publication.post_started`
    PostStarted {
        /// The account.
        account: AccountId,
        /// When.
        at: DateTime<Utc>,
    },
    /// `publication.posted`
    Posted {
        /// The account.
        account: AccountId,
        /// The post's id on the network.
        platform_id: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// `publication.post_retry_scheduled`
    PostRetryScheduled {
        /// The account.
        account: AccountId,
        /// What happened.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// `publication.post_failed`
    PostFailed {
        /// The account.
        account: AccountId,
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
}

const TYPES: [&str; 5] = [
    "publication.requested",
    "publication.post_started",
    "publication.posted",
    "publication.post_failed",
    "publication.post_retry_scheduled",
];

impl DomainEvent for PublicationEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PublicationEvent::Requested { .. } => TYPES[0],
            PublicationEvent::PostStarted { .. } => TYPES[1],
            PublicationEvent::Posted { .. } => TYPES[2],
            PublicationEvent::PostFailed { .. } => TYPES[3],
            PublicationEvent::PostRetryScheduled { .. } => TYPES[4],
        }
    }

    fn to_data(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        ventanilla_eventlog::decode_tagged(&TYPES, "publication", event_type, schema_version, data)
    }
}

/// Why a publication command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PublicationError {
    /// Empty or over-long text, no account, a malformed link.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What to fix.
        problem: String,
    },
    /// Requested twice.
    #[error("the publication was already requested")]
    AlreadyRequested,
    /// A post on an account not chosen, or before the request.
    #[error("the account is not one this publication goes to")]
    UnknownAccount,
    /// The post on that account is finished (posted or failed).
    #[error("the post on this account is finished")]
    Finished,
    /// An earlier attempt on the account never recorded its outcome.
    #[error("an earlier attempt was interrupted; the post may have been published")]
    Interrupted,
}

/// Where one account's post is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PostState {
    /// Not tried yet.
    Pending,
    /// An attempt started.
    Started,
    /// Published, with its id.
    Posted(String),
    /// Failed, with why.
    Failed(String),
}

/// A publication's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicationState {
    /// The text and link, once requested.
    pub request: Option<(String, Option<String>)>,
    /// Each chosen account's post.
    pub posts: BTreeMap<AccountId, PostState>,
}

/// The aggregate.
pub struct Publication;

impl Decider for Publication {
    type State = PublicationState;
    type Command = PublicationCommand;
    type Event = PublicationEvent;
    type Error = PublicationError;

    fn decide(
        state: &PublicationState,
        command: &PublicationCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<PublicationEvent>, PublicationError> {
        let post = |account: &AccountId| {
            state
                .posts
                .get(account)
                .ok_or(PublicationError::UnknownAccount)
        };
        match command {
            PublicationCommand::Request {
                text,
                link,
                accounts,
                unavailable,
            } => {
                if state.request.is_some() {
                    return Err(PublicationError::AlreadyRequested);
                }
                let chars = text.chars().count();
                if text.trim().is_empty() || chars > TEXT_MAX {
                    return Err(PublicationError::Invalid {
                        field: "text",
                        problem: format!("must be 1 to {TEXT_MAX} characters, got {chars}"),
                    });
                }
                // The rule every service shares, so an announcement the
                // tickets service accepted is never refused here.
                let link = link
                    .as_deref()
                    .map(|l| web_url(l, Schemes::Web))
                    .transpose()
                    .map_err(|e| PublicationError::Invalid {
                        field: "link",
                        problem: e.to_string(),
                    })?;
                if accounts.is_empty() && unavailable.is_empty() {
                    return Err(PublicationError::Invalid {
                        field: "accounts",
                        problem: "choose at least one linked account".into(),
                    });
                }
                let mut unique = accounts.clone();
                unique.extend(unavailable.iter().map(|(a, _)| *a));
                unique.sort();
                unique.dedup();
                let mut events = vec![PublicationEvent::Requested {
                    text: text.clone(),
                    link,
                    accounts: unique,
                    at: now,
                }];
                let mut failed: Vec<AccountId> = Vec::new();
                for (account, reason) in unavailable {
                    if !failed.contains(account) {
                        failed.push(*account);
                        events.push(PublicationEvent::PostFailed {
                            account: *account,
                            reason: reason.chars().take(500).collect(),
                            at: now,
                        });
                    }
                }
                Ok(events)
            }
            PublicationCommand::Start { account } => match post(account)? {
                PostState::Pending => Ok(vec![PublicationEvent::PostStarted {
                    account: *account,
                    at: now,
                }]),
                PostState::Started => Err(PublicationError::Interrupted),
                PostState::Posted(_) | PostState::Failed(_) => Err(PublicationError::Finished),
            },
            PublicationCommand::Posted {
                account,
                platform_id,
            } => match post(account)? {
                PostState::Started => Ok(vec![PublicationEvent::Posted {
                    account: *account,
                    platform_id: platform_id.clone(),
                    at: now,
                }]),
                _ => Err(PublicationError::Finished),
            },
            PublicationCommand::Retry { account, reason } => match post(account)? {
                PostState::Started => Ok(vec![PublicationEvent::PostRetryScheduled {
                    account: *account,
                    reason: reason.chars().take(500).collect(),
                    at: now,
                }]),
                _ => Err(PublicationError::Finished),
            },
            PublicationCommand::Fail { account, reason } => match post(account)? {
                PostState::Posted(_) | PostState::Failed(_) => Err(PublicationError::Finished),
                _ => Ok(vec![PublicationEvent::PostFailed {
                    account: *account,
                    reason: reason.chars().take(500).collect(),
                    at: now,
                }]),
            },
        }
    }

    fn evolve(mut state: PublicationState, event: &PublicationEvent) -> PublicationState {
        match event {
            PublicationEvent::Requested {
                text,
                link,
                accounts,
                ..
            } => {
                state.request = Some((text.clone(), link.clone()));
                state.posts = accounts.iter().map(|a| (*a, PostState::Pending)).collect();
            }
            PublicationEvent::PostStarted { account, .. } => {
                state.posts.insert(*account, PostState::Started);
            }
            PublicationEvent::Posted {
                account,
                platform_id,
                ..
            } => {
                state
                    .posts
                    .insert(*account, PostState::Posted(platform_id.clone()));
            }
            PublicationEvent::PostRetryScheduled { account, .. } => {
                state.posts.insert(*account, PostState::Pending);
            }
            PublicationEvent::PostFailed {
                account, reason, ..
            } => {
                state
                    .posts
                    .insert(*account, PostState::Failed(reason.clone()));
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use ventanilla_eventlog::testing::given;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
    }

    fn a(n: u128) -> AccountId {
        AccountId(Uuid::from_u128(n))
    }

    fn requested() -> PublicationEvent {
        PublicationEvent::Requested {
            text: "Abre la inscripción de los campamentos".into(),
            link: Some("https://villademo.es/campamentos".into()),
            accounts: vec![a(1), a(2)],
            at: now(),
        }
    }

    #[test]
    fn a_publication_is_requested_once_and_posted_per_account() {
        given::<Publication>(vec![])
            .at(now())
            .when(&PublicationCommand::Request {
                text: "Abre la inscripción de los campamentos".into(),
                link: Some("https://villademo.es/campamentos".into()),
                accounts: vec![a(2), a(1), a(2)],
                unavailable: vec![],
            })
            .then(vec![requested()]);
        let started = PublicationEvent::PostStarted {
            account: a(1),
            at: now(),
        };
        given::<Publication>(vec![requested()])
            .at(now())
            .when(&PublicationCommand::Start { account: a(1) })
            .then(vec![started.clone()]);
        given::<Publication>(vec![requested(), started.clone()])
            .at(now())
            .when(&PublicationCommand::Posted {
                account: a(1),
                platform_id: "1_2".into(),
            })
            .then(vec![PublicationEvent::Posted {
                account: a(1),
                platform_id: "1_2".into(),
                at: now(),
            }]);
        given::<Publication>(vec![requested(), started])
            .when(&PublicationCommand::Start { account: a(1) })
            .then_error(|e| *e == PublicationError::Interrupted);
        given::<Publication>(vec![requested()])
            .when(&PublicationCommand::Start { account: a(9) })
            .then_error(|e| *e == PublicationError::UnknownAccount);
    }

    #[test]
    fn unavailable_accounts_are_requested_and_failed_at_once() {
        let gone = "the account was unlinked before the announcement went out";
        let failed = PublicationEvent::PostFailed {
            account: a(2),
            reason: gone.into(),
            at: now(),
        };
        given::<Publication>(vec![])
            .at(now())
            .when(&PublicationCommand::Request {
                text: "Abre la inscripción de los campamentos".into(),
                link: Some("https://villademo.es/campamentos".into()),
                accounts: vec![a(1)],
                unavailable: vec![(a(2), gone.into()), (a(2), gone.into())],
            })
            .then(vec![requested(), failed.clone()]);
        let state = Publication::fold(&[requested(), failed]);
        assert_eq!(state.posts[&a(1)], PostState::Pending);
        assert_eq!(state.posts[&a(2)], PostState::Failed(gone.into()));
        // Nothing is posted on it afterwards.
        given::<Publication>(vec![
            requested(),
            PublicationEvent::PostFailed {
                account: a(2),
                reason: gone.into(),
                at: now(),
            },
        ])
        .when(&PublicationCommand::Start { account: a(2) })
        .then_error(|e| *e == PublicationError::Finished);
        // Only unavailable accounts: requested, every post failed.
        given::<Publication>(vec![])
            .at(now())
            .when(&PublicationCommand::Request {
                text: "Hola".into(),
                link: None,
                accounts: vec![],
                unavailable: vec![(a(3), gone.into())],
            })
            .then(vec![
                PublicationEvent::Requested {
                    text: "Hola".into(),
                    link: None,
                    accounts: vec![a(3)],
                    at: now(),
                },
                PublicationEvent::PostFailed {
                    account: a(3),
                    reason: gone.into(),
                    at: now(),
                },
            ]);
    }

    #[test]
    fn a_link_any_service_accepts_is_accepted_and_recorded_in_lower_case() {
        given::<Publication>(vec![])
            .at(now())
            .when(&PublicationCommand::Request {
                text: "Abre la inscripción de los campamentos".into(),
                link: Some(" HTTPS://villademo.es/campamentos".into()),
                accounts: vec![a(1), a(2)],
                unavailable: vec![],
            })
            .then(vec![requested()]);
    }

    #[test]
    fn bad_requests_are_refused_naming_the_field() {
        for (text, link, accounts, field) in [
            ("  ", None, vec![a(1)], "text"),
            ("Hola", Some("ftp://x"), vec![a(1)], "link"),
            ("Hola", None, vec![], "accounts"),
        ] {
            given::<Publication>(vec![])
                .when(&PublicationCommand::Request {
                    text: text.into(),
                    link: link.map(str::to_owned),
                    accounts,
                    unavailable: vec![],
                })
                .then_error(
                    |e| matches!(e, PublicationError::Invalid { field: f, .. } if *f == field),
                );
        }
        let e = requested();
        assert_eq!(
            PublicationEvent::from_stored(e.event_type(), 1, &e.to_data()).unwrap(),
            e
        );
    }
}
