//! A linked social account, stream `account-<uuid>` in its tenant: a
//! Facebook Page (with Messenger), an Instagram account (through its Page) or
//! an X account. An admin links it and unlinks it; the platform reports its
//! health (`ok`, or `degraded` with a reason a person understands and, for a
//! rate limit, until when).
//!
//! Credentials are not in the log: the service keeps them encrypted in its
//! own table, and the events record only that they were set (and when), so
//! the log can be copied, exported and replayed without secrets.
//!
//! What this module must not do: read a clock, draw ids, or check the plan's
//! quota (the service counts the tenant's accounts and tells the command).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

pub use crate::inbound::AccountId;

/// The longest display name or external id, in characters.
pub const NAME_MAX: usize = 200;
/// The longest health reason, in characters.
pub const REASON_MAX: usize = 500;

/// The stream of a linked account: `account-<uuid>`.
pub fn stream_id(id: AccountId) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("account", id.0)
}

/// The network an account is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// A Facebook Page: its feed comments and Messenger conversations.
    Facebook,
    /// An Instagram professional account, through its Facebook Page.
    Instagram,
    /// An X account.
    X,
    /// A Mastodon account, on the tenant's instance.
    Mastodon,
    /// A Telegram bot.
    Telegram,
    /// A WhatsApp Business phone number (Cloud API).
    WhatsApp,
    /// A Bluesky account, on its PDS.
    Bluesky,
    /// A mailbox: an address the platform's SMTP receiver takes mail for.
    Email,
}

impl Network {
    /// Every network, in a stable order.
    pub const ALL: [Network; 8] = [
        Network::Facebook,
        Network::Instagram,
        Network::X,
        Network::Mastodon,
        Network::Telegram,
        Network::WhatsApp,
        Network::Bluesky,
        Network::Email,
    ];

    /// The network's name, which is also the tickets service's channel name.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::Facebook => "facebook",
            Network::Instagram => "instagram",
            Network::X => "x",
            Network::Mastodon => "mastodon",
            Network::Telegram => "telegram",
            Network::WhatsApp => "whatsapp",
            Network::Bluesky => "bluesky",
            Network::Email => "email",
        }
    }

    /// Parses a network name.
    pub fn parse(value: &str) -> Option<Self> {
        let v = value.trim().to_ascii_lowercase();
        Self::ALL.into_iter().find(|n| n.as_str() == v)
    }
}

/// How an account is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Health {
    /// Working.
    Ok,
    /// Not working, or not fully.
    Degraded {
        /// Why, for the admin: "the page token was revoked; link the page
        /// again", "rate limited by X until 10:45"…
        reason: String,
        /// For a rate limit, when it lifts.
        until: Option<DateTime<Utc>>,
    },
}

/// What can be asked of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// Links the account. Refused when it exists (`AlreadyLinked`) or when
    /// the tenant's plan allows no more accounts (`quota_left == 0`).
    Link {
        /// The new account's id.
        id: AccountId,
        /// Its network.
        network: Network,
        /// The network's id of it (page id, Instagram id, X user id).
        external_id: String,
        /// Its name as shown on the network.
        name: String,
        /// Whether Meta approved the `HUMAN_AGENT` tag for this page
        /// (Messenger replies up to 7 days after the citizen's message).
        human_agent: bool,
        /// Whether the platform polls the account's mentions (X accounts
        /// without webhook access).
        poll_mentions: bool,
        /// How it is reached beyond its id.
        reach: Reach,
        /// How many more accounts the plan allows (the service counts).
        quota_left: u32,
    },
    /// Records how far the mentions were read by polling (the newest id
    /// seen), after the mentions up to it were recorded. A no-op unless it
    /// moves the cursor forward.
    AdvanceCursor {
        /// The newest platform id read.
        since_id: String,
    },
    /// Records that new credentials were stored (encrypted, by the
    /// service); clears a degraded health caused by old ones.
    CredentialsRotated,
    /// Unlinks the account: nothing more is received or sent on it.
    Unlink,
    /// Records the account's health, when it changed (a no-op otherwise).
    ReportHealth {
        /// The new health.
        health: Health,
    },
}

/// How the platform reaches an account beyond its id, where the network
/// needs it: a Mastodon account's instance, a bot's or account's handle,
/// the channel a Telegram bot posts announcements in.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reach {
    /// The base URL of the account's server (Mastodon: the tenant's
    /// instance, `https://social.example.gal`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// The account's handle on the network (a Telegram bot's username, a
    /// Mastodon `@user@server`), to recognise mentions of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handle: Option<String>,
    /// Where announcements are posted when it is not the account itself
    /// (a Telegram channel where the bot is an admin: `@canal` or its id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish_to: Option<String>,
}

/// `account.linked`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Linked {
    /// The account's id.
    pub id: AccountId,
    /// Its network.
    pub network: Network,
    /// The network's id of it.
    pub external_id: String,
    /// Its name.
    pub name: String,
    /// Whether the `HUMAN_AGENT` tag is approved.
    pub human_agent: bool,
    /// Whether its mentions are polled.
    #[serde(default)]
    pub poll_mentions: bool,
    /// How it is reached beyond its id.
    #[serde(default)]
    pub reach: Reach,
    /// When.
    pub at: DateTime<Utc>,
}

/// `account.cursor_advanced`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CursorAdvanced {
    /// The newest platform id read by polling.
    pub since_id: String,
    /// When.
    pub at: DateTime<Utc>,
}

/// `account.credentials_rotated`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsRotated {
    /// When.
    pub at: DateTime<Utc>,
}

/// `account.unlinked`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unlinked {
    /// When.
    pub at: DateTime<Utc>,
}

/// `account.health_changed`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthChanged {
    /// The new health.
    pub health: Health,
    /// When.
    pub at: DateTime<Utc>,
}

/// What an account's stream records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountEvent {
    /// `account.linked`
    Linked(Linked),
    /// `account.credentials_rotated`
    CredentialsRotated(CredentialsRotated),
    /// `account.unlinked`
    Unlinked(Unlinked),
    /// `account.health_changed`
    HealthChanged(HealthChanged),
    /// `account.cursor_advanced`
    CursorAdvanced(CursorAdvanced),
}

const LINKED: &str = "account.linked";
const CREDENTIALS_ROTATED: &str = "account.credentials_rotated";
const UNLINKED: &str = "account.unlinked";
const HEALTH_CHANGED: &str = "account.health_changed";
const CURSOR_ADVANCED: &str = "account.cursor_advanced";

/// Reads a stored payload of schema version 1.
fn decode<T: serde::de::DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    ventanilla_eventlog::decode_payload(event_type, schema_version, 1, data)
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> &'static str {
        match self {
            AccountEvent::Linked(_) => LINKED,
            AccountEvent::CredentialsRotated(_) => CREDENTIALS_ROTATED,
            AccountEvent::Unlinked(_) => UNLINKED,
            AccountEvent::HealthChanged(_) => HEALTH_CHANGED,
            AccountEvent::CursorAdvanced(_) => CURSOR_ADVANCED,
        }
    }

    fn to_data(&self) -> Value {
        match self {
            AccountEvent::Linked(e) => serde_json::to_value(e),
            AccountEvent::CredentialsRotated(e) => serde_json::to_value(e),
            AccountEvent::Unlinked(e) => serde_json::to_value(e),
            AccountEvent::HealthChanged(e) => serde_json::to_value(e),
            AccountEvent::CursorAdvanced(e) => serde_json::to_value(e),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        Ok(match event_type {
            LINKED => Self::Linked(decode(event_type, schema_version, data)?),
            CREDENTIALS_ROTATED => {
                Self::CredentialsRotated(decode(event_type, schema_version, data)?)
            }
            UNLINKED => Self::Unlinked(decode(event_type, schema_version, data)?),
            HEALTH_CHANGED => Self::HealthChanged(decode(event_type, schema_version, data)?),
            CURSOR_ADVANCED => Self::CursorAdvanced(decode(event_type, schema_version, data)?),
            other => {
                return Err(UpcastError {
                    event_type: other.to_owned(),
                    schema_version,
                    reason: "not an account event type".to_owned(),
                });
            }
        })
    }
}

/// Why an account command is refused. Nothing is written when it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    /// A value out of bounds; names the field.
    #[error("{field}: {problem}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        problem: String,
    },
    /// `Link` of an account that exists.
    #[error("the account is already linked")]
    AlreadyLinked,
    /// Anything but `Link` before it.
    #[error("no such account; link it first")]
    NotLinked,
    /// A change to an unlinked account.
    #[error("the account was unlinked; link it again to use it")]
    Unlinked,
    /// The plan allows no more accounts.
    #[error("the plan allows no more linked accounts; unlink one or change the plan")]
    QuotaExceeded,
}

/// A linked account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountDetails {
    /// Its id.
    pub id: AccountId,
    /// Its network.
    pub network: Network,
    /// The network's id of it.
    pub external_id: String,
    /// Its name.
    pub name: String,
    /// Whether the `HUMAN_AGENT` tag is approved.
    pub human_agent: bool,
    /// Whether its mentions are polled.
    pub poll_mentions: bool,
    /// How it is reached beyond its id.
    pub reach: Reach,
    /// The newest mention read by polling.
    pub since_id: Option<String>,
    /// Whether it is unlinked.
    pub unlinked: bool,
    /// How it is doing.
    pub health: Health,
}

/// What an account's stream says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountState {
    /// The account, once linked.
    pub account: Option<AccountDetails>,
}

/// The aggregate.
pub struct Account;

/// Whether platform id `a` is later than `b`: numeric ids (X's) compare as
/// numbers, others as text.
fn later_id(a: &str, b: &str) -> bool {
    match (a.parse::<u128>(), b.parse::<u128>()) {
        (Ok(x), Ok(y)) => x > y,
        _ => a > b,
    }
}

fn check(field: &'static str, value: &str) -> Result<(), AccountError> {
    let chars = value.chars().count();
    if value.trim().is_empty() || chars > NAME_MAX || value.chars().any(char::is_control) {
        return Err(AccountError::Invalid {
            field,
            problem: format!("must be 1 to {NAME_MAX} characters without control characters"),
        });
    }
    Ok(())
}

impl Decider for Account {
    type State = AccountState;
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(
        state: &AccountState,
        command: &AccountCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<AccountEvent>, AccountError> {
        if let AccountCommand::Link {
            id,
            network,
            external_id,
            name,
            human_agent,
            poll_mentions,
            reach,
            quota_left,
        } = command
        {
            if state.account.is_some() {
                return Err(AccountError::AlreadyLinked);
            }
            check("external_id", external_id)?;
            check("name", name)?;
            if external_id.contains(char::is_whitespace) {
                return Err(AccountError::Invalid {
                    field: "external_id",
                    problem: "must not contain spaces".into(),
                });
            }
            if *quota_left == 0 {
                return Err(AccountError::QuotaExceeded);
            }
            return Ok(vec![AccountEvent::Linked(Linked {
                id: *id,
                network: *network,
                external_id: external_id.trim().to_owned(),
                name: name.trim().to_owned(),
                human_agent: *human_agent,
                poll_mentions: *poll_mentions,
                reach: reach.clone(),
                at: now,
            })]);
        }
        let a = state.account.as_ref().ok_or(AccountError::NotLinked)?;
        match command {
            AccountCommand::Link { .. } => Err(AccountError::AlreadyLinked),
            AccountCommand::Unlink if a.unlinked => Ok(vec![]),
            AccountCommand::Unlink => Ok(vec![AccountEvent::Unlinked(Unlinked { at: now })]),
            _ if a.unlinked => Err(AccountError::Unlinked),
            AccountCommand::AdvanceCursor { since_id } => {
                let newer = match &a.since_id {
                    None => true,
                    // Bluesky's cursor is the last notification seen, not
                    // an ordered id.
                    Some(old) if a.network == Network::Bluesky => old != since_id,
                    Some(old) => later_id(since_id, old),
                };
                if !newer {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::CursorAdvanced(CursorAdvanced {
                    since_id: since_id.clone(),
                    at: now,
                })])
            }
            AccountCommand::CredentialsRotated => {
                Ok(vec![AccountEvent::CredentialsRotated(CredentialsRotated {
                    at: now,
                })])
            }
            AccountCommand::ReportHealth { health } => {
                if let Health::Degraded { reason, .. } = health {
                    let chars = reason.chars().count();
                    if reason.trim().is_empty() || chars > REASON_MAX {
                        return Err(AccountError::Invalid {
                            field: "reason",
                            problem: format!("must be 1 to {REASON_MAX} characters"),
                        });
                    }
                }
                if a.health == *health {
                    return Ok(vec![]);
                }
                Ok(vec![AccountEvent::HealthChanged(HealthChanged {
                    health: health.clone(),
                    at: now,
                })])
            }
        }
    }

    fn evolve(mut state: AccountState, event: &AccountEvent) -> AccountState {
        match event {
            AccountEvent::Linked(e) => {
                state.account = Some(AccountDetails {
                    id: e.id,
                    network: e.network,
                    external_id: e.external_id.clone(),
                    name: e.name.clone(),
                    human_agent: e.human_agent,
                    poll_mentions: e.poll_mentions,
                    reach: e.reach.clone(),
                    since_id: None,
                    unlinked: false,
                    health: Health::Ok,
                });
            }
            AccountEvent::CredentialsRotated(_) => {
                if let Some(a) = state.account.as_mut() {
                    a.health = Health::Ok;
                }
            }
            AccountEvent::Unlinked(_) => {
                if let Some(a) = state.account.as_mut() {
                    a.unlinked = true;
                }
            }
            AccountEvent::HealthChanged(e) => {
                if let Some(a) = state.account.as_mut() {
                    a.health = e.health.clone();
                }
            }
            AccountEvent::CursorAdvanced(e) => {
                if let Some(a) = state.account.as_mut() {
                    a.since_id = Some(e.since_id.clone());
                }
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
    use uuid::Uuid;
    use ventanilla_eventlog::testing::given;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
    }

    fn link(quota_left: u32) -> AccountCommand {
        AccountCommand::Link {
            id: AccountId(Uuid::from_u128(1)),
            network: Network::Facebook,
            external_id: "1029384756".into(),
            name: "Concello de Lugo".into(),
            human_agent: false,
            poll_mentions: false,
            reach: Reach::default(),
            quota_left,
        }
    }

    fn linked() -> AccountEvent {
        AccountEvent::Linked(Linked {
            id: AccountId(Uuid::from_u128(1)),
            network: Network::Facebook,
            external_id: "1029384756".into(),
            name: "Concello de Lugo".into(),
            human_agent: false,
            poll_mentions: false,
            reach: Reach::default(),
            at: now(),
        })
    }

    fn degraded() -> Health {
        Health::Degraded {
            reason: "the page token was revoked; link the page again".into(),
            until: None,
        }
    }

    #[test]
    fn an_account_is_linked_within_the_quota_once() {
        given::<Account>(vec![])
            .at(now())
            .when(&link(1))
            .then(vec![linked()]);
        given::<Account>(vec![])
            .when(&link(0))
            .then_error(|e| *e == AccountError::QuotaExceeded);
        given::<Account>(vec![linked()])
            .when(&link(1))
            .then_error(|e| *e == AccountError::AlreadyLinked);
        let AccountCommand::Link { .. } = link(1) else {
            unreachable!()
        };
        for (external_id, name, field) in [
            ("", "Lugo", "external_id"),
            ("12 34", "Lugo", "external_id"),
            ("1234", " ", "name"),
        ] {
            given::<Account>(vec![])
                .when(&AccountCommand::Link {
                    id: AccountId(Uuid::from_u128(1)),
                    network: Network::X,
                    external_id: external_id.into(),
                    name: name.into(),
                    human_agent: false,
                    poll_mentions: false,
                    reach: Reach::default(),
                    quota_left: 3,
                })
                .then_error(|e| matches!(e, AccountError::Invalid { field: f, .. } if *f == field));
        }
    }

    #[test]
    fn health_changes_are_recorded_once_and_new_credentials_clear_them() {
        given::<Account>(vec![linked()])
            .at(now())
            .when(&AccountCommand::ReportHealth { health: degraded() })
            .then(vec![AccountEvent::HealthChanged(HealthChanged {
                health: degraded(),
                at: now(),
            })]);
        let h = vec![
            linked(),
            AccountEvent::HealthChanged(HealthChanged {
                health: degraded(),
                at: now(),
            }),
        ];
        given::<Account>(h.clone())
            .when(&AccountCommand::ReportHealth { health: degraded() })
            .then(vec![]);
        given::<Account>(vec![linked()])
            .when(&AccountCommand::ReportHealth { health: Health::Ok })
            .then(vec![]);
        let mut rotated = h;
        rotated.push(AccountEvent::CredentialsRotated(CredentialsRotated {
            at: now(),
        }));
        assert_eq!(Account::fold(&rotated).account.unwrap().health, Health::Ok);
    }

    #[test]
    fn an_unlinked_account_refuses_changes_and_unlinking_twice_is_a_no_op() {
        let h = vec![linked(), AccountEvent::Unlinked(Unlinked { at: now() })];
        given::<Account>(h.clone())
            .when(&AccountCommand::Unlink)
            .then(vec![]);
        given::<Account>(h)
            .when(&AccountCommand::CredentialsRotated)
            .then_error(|e| *e == AccountError::Unlinked);
        given::<Account>(vec![])
            .when(&AccountCommand::Unlink)
            .then_error(|e| *e == AccountError::NotLinked);
    }

    #[test]
    fn events_round_trip_through_storage() {
        for e in [
            linked(),
            AccountEvent::HealthChanged(HealthChanged {
                health: Health::Degraded {
                    reason: "rate limited by X".into(),
                    until: Some(now()),
                },
                at: now(),
            }),
            AccountEvent::Unlinked(Unlinked { at: now() }),
            AccountEvent::CredentialsRotated(CredentialsRotated { at: now() }),
        ] {
            assert_eq!(
                AccountEvent::from_stored(e.event_type(), 1, &e.to_data()).unwrap(),
                e
            );
        }
        assert_eq!(Network::parse(" X "), Some(Network::X));
        assert_eq!(Network::parse("myspace"), None);
    }

    #[test]
    fn the_polling_cursor_only_moves_forward() {
        let advance = |id: &str| AccountCommand::AdvanceCursor {
            since_id: id.into(),
        };
        let moved = |id: &str| {
            AccountEvent::CursorAdvanced(CursorAdvanced {
                since_id: id.into(),
                at: now(),
            })
        };
        given::<Account>(vec![linked()])
            .at(now())
            .when(&advance("1800"))
            .then(vec![moved("1800")]);
        // 999 < 1800 as numbers, although "999" > "1800" as text.
        given::<Account>(vec![linked(), moved("1800")])
            .when(&advance("999"))
            .then(vec![]);
        given::<Account>(vec![linked(), moved("1800")])
            .when(&advance("1800"))
            .then(vec![]);
        given::<Account>(vec![linked(), moved("1800")])
            .at(now())
            .when(&advance("18000"))
            .then(vec![moved("18000")]);
        let e = moved("1");
        assert_eq!(
            AccountEvent::from_stored(e.event_type(), 1, &e.to_data()).unwrap(),
            e
        );
    }
}
