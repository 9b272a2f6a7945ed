//! An integrator's API key as an event-sourced aggregate, stream
//! `apikey-<uuid>` in the tenant: created by an admin with a name and a
//! scope, renamed, revoked.
//!
//! What this module must not do: see the secret in clear, or record each use.
//! The service layer draws the secret, shows it once, and passes only its
//! SHA-256 ([`TokenHash`]) and a short visible [`KeyPrefix`] (so admins can
//! tell keys apart in lists). The key's last use is NOT an event — it would
//! be one event per API call: the service records it in the read model only,
//! throttled (at most one write per key every few minutes). Whether the
//! tenant is suspended (`TENANT_SUSPENDED`) is also the service's check:
//! [`ApiKeyState::authenticates`] knows only the key.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

use crate::staff::{StaffId, TokenHash};
use crate::values::{InvalidValue, Name};

/// The longest key name, in characters.
pub const NAME_MAX: usize = 80;

/// The longest revocation reason, in characters.
pub const REASON_MAX: usize = 200;

/// The stream of one API key: `apikey-<uuid>`.
pub fn stream_id(id: ApiKeyId) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("apikey", id.0)
}

ventanilla_kernel::uuid_newtype!(
    /// Identifies an API key within the platform.
    ApiKeyId
);

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Queries only.
    Read,
    /// Queries and mutations.
    ReadWrite,
}

impl Scope {
    /// Whether the key may change data.
    pub fn allows_writes(self) -> bool {
        matches!(self, Self::ReadWrite)
    }
}

/// The visible start of a key's secret (e.g. its first 8 characters), shown
/// in lists so admins can tell keys apart: 4 to 16 characters of
/// `A-Z a-z 0-9 _`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyPrefix(String);

impl KeyPrefix {
    /// Parses a prefix for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let ok = (4..=16).contains(&value.len())
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !ok {
            return Err(InvalidValue::new(
                field,
                "must be 4 to 16 characters of A-Z, a-z, 0-9 and _",
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The prefix as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What can be asked of an API key.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiKeyCommand {
    /// Creates the key (the service checks the creator is an admin of the
    /// tenant). The secret is shown once by the service; only its hash
    /// travels here.
    Create {
        /// The new key's id.
        id: ApiKeyId,
        /// What admins call it, at most [`NAME_MAX`] characters.
        name: Name,
        /// What it may do.
        scope: Scope,
        /// The visible start of the secret.
        prefix: KeyPrefix,
        /// The SHA-256 of the secret.
        secret: TokenHash,
        /// The admin who creates it.
        created_by: StaffId,
    },
    /// Renames the key. The same name is a no-op.
    Rename {
        /// The new name, at most [`NAME_MAX`] characters.
        name: Name,
    },
    /// Revokes the key for good. Revoking a revoked key is a no-op, so a
    /// repeated request succeeds.
    Revoke {
        /// The admin who revokes it.
        by: StaffId,
        /// Why, at most [`REASON_MAX`] characters.
        reason: Option<Name>,
    },
}

/// The key was created.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Created {
    /// The key's id.
    pub id: ApiKeyId,
    /// Its name.
    pub name: Name,
    /// What it may do.
    pub scope: Scope,
    /// The visible start of the secret.
    pub prefix: KeyPrefix,
    /// The SHA-256 of the secret.
    pub secret: TokenHash,
    /// The admin who created it.
    pub created_by: StaffId,
    /// When.
    pub at: DateTime<Utc>,
}

/// The key was renamed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Renamed {
    /// The new name.
    pub name: Name,
    /// When.
    pub at: DateTime<Utc>,
}

/// The key was revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Revoked {
    /// The admin who revoked it.
    pub by: StaffId,
    /// Why, if given.
    pub reason: Option<Name>,
    /// When.
    pub at: DateTime<Utc>,
}

/// What an API key's stream records.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiKeyEvent {
    /// `api_key.created`
    Created(Created),
    /// `api_key.renamed`
    Renamed(Renamed),
    /// `api_key.revoked`
    Revoked(Revoked),
}

/// Reads a stored payload of schema version 1.
fn payload<T: DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    ventanilla_eventlog::decode_payload(event_type, schema_version, 1, data)
}

impl DomainEvent for ApiKeyEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Created(_) => "api_key.created",
            Self::Renamed(_) => "api_key.renamed",
            Self::Revoked(_) => "api_key.revoked",
        }
    }

    fn to_data(&self) -> Value {
        match self {
            Self::Created(p) => serde_json::to_value(p),
            Self::Renamed(p) => serde_json::to_value(p),
            Self::Revoked(p) => serde_json::to_value(p),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        let (t, v, d) = (event_type, schema_version, data);
        Ok(match event_type {
            "api_key.created" => Self::Created(payload(t, v, d)?),
            "api_key.renamed" => Self::Renamed(payload(t, v, d)?),
            "api_key.revoked" => Self::Revoked(payload(t, v, d)?),
            other => {
                return Err(UpcastError {
                    event_type: other.to_owned(),
                    schema_version,
                    reason: "not an api key event type".to_owned(),
                });
            }
        })
    }
}

/// Why an API key command was refused, or a key did not authenticate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiKeyError {
    /// A value is out of bounds (a name or a reason too long).
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// `Create` on a key that already exists.
    #[error("an api key with this id already exists; use a new id")]
    AlreadyExists,
    /// The key does not exist.
    #[error("there is no such api key")]
    Unknown,
    /// The key was revoked.
    #[error("the api key has been revoked; create a new one")]
    Revoked,
    /// The presented secret is not the key's.
    #[error("the api key's secret does not match")]
    Mismatch,
}

/// What an API key's stream says about it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ApiKeyState {
    /// Its id; `None` while the stream is empty.
    pub id: Option<ApiKeyId>,
    /// Its name.
    pub name: Option<Name>,
    /// What it may do.
    pub scope: Option<Scope>,
    /// The visible start of the secret.
    pub prefix: Option<KeyPrefix>,
    /// The SHA-256 of the secret.
    pub secret: Option<TokenHash>,
    /// The admin who created it.
    pub created_by: Option<StaffId>,
    /// When it was created.
    pub created_at: Option<DateTime<Utc>>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<DateTime<Utc>>,
}

impl ApiKeyState {
    /// Whether the key exists and is revoked.
    pub fn is_revoked(&self) -> bool {
        self.revoked_at.is_some()
    }

    /// The scope `secret` (the SHA-256 of the presented secret) grants:
    /// `Unknown` for a key that does not exist, `Mismatch` for another
    /// secret, `Revoked` for a revoked key. The secret is checked before
    /// the revocation, so only its holder learns that the key is revoked.
    pub fn authenticates(&self, secret: &TokenHash) -> Result<Scope, ApiKeyError> {
        let (Some(stored), Some(scope)) = (&self.secret, self.scope) else {
            return Err(ApiKeyError::Unknown);
        };
        if stored != secret {
            return Err(ApiKeyError::Mismatch);
        }
        if self.is_revoked() {
            return Err(ApiKeyError::Revoked);
        }
        Ok(scope)
    }

    /// Refuses commands on a key that does not exist or is revoked.
    fn usable(&self) -> Result<(), ApiKeyError> {
        if self.id.is_none() {
            return Err(ApiKeyError::Unknown);
        }
        if self.is_revoked() {
            return Err(ApiKeyError::Revoked);
        }
        Ok(())
    }
}

/// Refuses a name longer than `max` characters (commands carry parsed
/// names, but the bound belongs to this aggregate).
fn check_name(field: &'static str, name: &Name, max: usize) -> Result<(), InvalidValue> {
    let chars = name.as_str().chars().count();
    if chars > max {
        return Err(InvalidValue::new(
            field,
            format!("must be at most {max} characters, got {chars}"),
        ));
    }
    Ok(())
}

/// The API key aggregate.
pub struct ApiKey;

impl Decider for ApiKey {
    type State = ApiKeyState;
    type Command = ApiKeyCommand;
    type Event = ApiKeyEvent;
    type Error = ApiKeyError;

    fn decide(
        state: &ApiKeyState,
        command: &ApiKeyCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<ApiKeyEvent>, ApiKeyError> {
        match command {
            ApiKeyCommand::Create {
                id,
                name,
                scope,
                prefix,
                secret,
                created_by,
            } => {
                if state.id.is_some() {
                    return Err(ApiKeyError::AlreadyExists);
                }
                check_name("name", name, NAME_MAX)?;
                Ok(vec![ApiKeyEvent::Created(Created {
                    id: *id,
                    name: name.clone(),
                    scope: *scope,
                    prefix: prefix.clone(),
                    secret: secret.clone(),
                    created_by: *created_by,
                    at: now,
                })])
            }

            ApiKeyCommand::Rename { name } => {
                state.usable()?;
                check_name("name", name, NAME_MAX)?;
                if state.name.as_ref() == Some(name) {
                    return Ok(vec![]);
                }
                Ok(vec![ApiKeyEvent::Renamed(Renamed {
                    name: name.clone(),
                    at: now,
                })])
            }

            ApiKeyCommand::Revoke { by, reason } => {
                if state.id.is_none() {
                    return Err(ApiKeyError::Unknown);
                }
                if state.is_revoked() {
                    return Ok(vec![]);
                }
                if let Some(reason) = reason {
                    check_name("reason", reason, REASON_MAX)?;
                }
                Ok(vec![ApiKeyEvent::Revoked(Revoked {
                    by: *by,
                    reason: reason.clone(),
                    at: now,
                })])
            }
        }
    }

    fn evolve(mut state: ApiKeyState, event: &ApiKeyEvent) -> ApiKeyState {
        match event {
            ApiKeyEvent::Created(e) => {
                state.id = Some(e.id);
                state.name = Some(e.name.clone());
                state.scope = Some(e.scope);
                state.prefix = Some(e.prefix.clone());
                state.secret = Some(e.secret.clone());
                state.created_by = Some(e.created_by);
                state.created_at = Some(e.at);
            }
            ApiKeyEvent::Renamed(e) => {
                state.name = Some(e.name.clone());
            }
            ApiKeyEvent::Revoked(e) => {
                state.revoked_at = Some(e.at);
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};
    use uuid::Uuid;
    use ventanilla_eventlog::testing::given;

    /// The default instant of `given`: 2026-01-15 10:00 UTC.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
    }

    fn key() -> ApiKeyId {
        ApiKeyId(Uuid::from_u128(7))
    }

    fn admin() -> StaffId {
        StaffId(Uuid::from_u128(99))
    }

    fn secret(c: char) -> TokenHash {
        TokenHash::parse("secret", &c.to_string().repeat(64)).unwrap()
    }

    fn name(s: &str) -> Name {
        Name::parse("name", s, 1000).unwrap()
    }

    fn prefix() -> KeyPrefix {
        KeyPrefix::parse("prefix", "vk_3fA9").unwrap()
    }

    fn create_cmd(n: Name) -> ApiKeyCommand {
        ApiKeyCommand::Create {
            id: key(),
            name: n,
            scope: Scope::ReadWrite,
            prefix: prefix(),
            secret: secret('a'),
            created_by: admin(),
        }
    }

    fn created() -> ApiKeyEvent {
        created_at(now() - Duration::days(3))
    }

    fn created_at(at: DateTime<Utc>) -> ApiKeyEvent {
        ApiKeyEvent::Created(Created {
            id: key(),
            name: name("CRM sync"),
            scope: Scope::ReadWrite,
            prefix: prefix(),
            secret: secret('a'),
            created_by: admin(),
            at,
        })
    }

    fn revoked() -> ApiKeyEvent {
        ApiKeyEvent::Revoked(Revoked {
            by: admin(),
            reason: None,
            at: now() - Duration::days(1),
        })
    }

    fn revoke_cmd() -> ApiKeyCommand {
        ApiKeyCommand::Revoke {
            by: admin(),
            reason: None,
        }
    }

    // --- Create ---

    #[test]
    fn an_admin_creates_a_key() {
        given::<ApiKey>(vec![])
            .when(&create_cmd(name("CRM sync")))
            .then(vec![created_at(now())]);
    }

    #[test]
    fn creating_an_existing_key_is_refused() {
        given::<ApiKey>(vec![created()])
            .when(&create_cmd(name("CRM sync")))
            .then_error(|e| *e == ApiKeyError::AlreadyExists);
        given::<ApiKey>(vec![created(), revoked()])
            .when(&create_cmd(name("CRM sync")))
            .then_error(|e| *e == ApiKeyError::AlreadyExists);
    }

    #[test]
    fn creating_refuses_an_over_long_name() {
        given::<ApiKey>(vec![])
            .when(&create_cmd(name(&"k".repeat(NAME_MAX + 1))))
            .then_error(|e| matches!(e, ApiKeyError::Invalid(v) if v.field == "name"));
        given::<ApiKey>(vec![])
            .when(&create_cmd(name(&"k".repeat(NAME_MAX))))
            .into_result()
            .unwrap();
    }

    // --- Rename ---

    #[test]
    fn a_key_is_renamed() {
        given::<ApiKey>(vec![created()])
            .when(&ApiKeyCommand::Rename {
                name: name("Padrón sync"),
            })
            .then(vec![ApiKeyEvent::Renamed(Renamed {
                name: name("Padrón sync"),
                at: now(),
            })]);
    }

    #[test]
    fn renaming_to_the_same_name_is_a_no_op() {
        given::<ApiKey>(vec![created()])
            .when(&ApiKeyCommand::Rename {
                name: name("CRM sync"),
            })
            .then(vec![]);
    }

    #[test]
    fn renaming_is_refused_when_unknown_revoked_or_too_long() {
        let rename = ApiKeyCommand::Rename { name: name("X") };
        given::<ApiKey>(vec![])
            .when(&rename)
            .then_error(|e| *e == ApiKeyError::Unknown);
        given::<ApiKey>(vec![created(), revoked()])
            .when(&rename)
            .then_error(|e| *e == ApiKeyError::Revoked);
        given::<ApiKey>(vec![created()])
            .when(&ApiKeyCommand::Rename {
                name: name(&"k".repeat(NAME_MAX + 1)),
            })
            .then_error(|e| matches!(e, ApiKeyError::Invalid(v) if v.field == "name"));
    }

    // --- Revoke ---

    #[test]
    fn a_key_is_revoked() {
        given::<ApiKey>(vec![created()])
            .when(&revoke_cmd())
            .then(vec![ApiKeyEvent::Revoked(Revoked {
                by: admin(),
                reason: None,
                at: now(),
            })]);
        given::<ApiKey>(vec![created()])
            .when(&ApiKeyCommand::Revoke {
                by: admin(),
                reason: Some(name("leaked in a public repository")),
            })
            .then(vec![ApiKeyEvent::Revoked(Revoked {
                by: admin(),
                reason: Some(name("leaked in a public repository")),
                at: now(),
            })]);
    }

    #[test]
    fn revoking_a_revoked_key_is_a_no_op() {
        given::<ApiKey>(vec![created(), revoked()])
            .when(&revoke_cmd())
            .then(vec![]);
    }

    #[test]
    fn revoking_is_refused_when_unknown_or_the_reason_is_too_long() {
        given::<ApiKey>(vec![])
            .when(&revoke_cmd())
            .then_error(|e| *e == ApiKeyError::Unknown);
        given::<ApiKey>(vec![created()])
            .when(&ApiKeyCommand::Revoke {
                by: admin(),
                reason: Some(name(&"r".repeat(REASON_MAX + 1))),
            })
            .then_error(|e| {
                matches!(e, ApiKeyError::Invalid(v) if v.field == "reason")
                    && e.to_string() == "reason: must be at most 200 characters, got 201"
            });
    }

    // --- State ---

    #[test]
    fn authentication() {
        assert_eq!(
            ApiKeyState::default().authenticates(&secret('a')),
            Err(ApiKeyError::Unknown)
        );
        let live = ApiKey::fold(&[created()]);
        assert_eq!(live.authenticates(&secret('a')), Ok(Scope::ReadWrite));
        assert_eq!(live.authenticates(&secret('b')), Err(ApiKeyError::Mismatch));
        let gone = ApiKey::fold(&[created(), revoked()]);
        assert_eq!(gone.authenticates(&secret('a')), Err(ApiKeyError::Revoked));
        assert_eq!(gone.authenticates(&secret('b')), Err(ApiKeyError::Mismatch));
        assert!(gone.is_revoked());
        assert_eq!(gone.revoked_at, Some(now() - Duration::days(1)));
    }

    #[test]
    fn the_state_knows_the_key() {
        let state = ApiKey::fold(&[
            created(),
            ApiKeyEvent::Renamed(Renamed {
                name: name("Padrón sync"),
                at: now(),
            }),
        ]);
        assert_eq!(state.id, Some(key()));
        assert_eq!(state.name, Some(name("Padrón sync")));
        assert_eq!(
            state.prefix.as_ref().map(KeyPrefix::as_str),
            Some("vk_3fA9")
        );
        assert_eq!(state.created_by, Some(admin()));
        assert_eq!(state.created_at, Some(now() - Duration::days(3)));
        assert!(!state.is_revoked());
        let debug = format!("{state:?}");
        assert!(!debug.contains("aaaa"), "{debug}");
    }

    #[test]
    fn scopes_and_prefixes() {
        assert!(Scope::ReadWrite.allows_writes());
        assert!(!Scope::Read.allows_writes());
        assert_eq!(serde_json::to_value(Scope::Read).unwrap(), "read");
        assert_eq!(
            serde_json::to_value(Scope::ReadWrite).unwrap(),
            "read_write"
        );
        for ok in ["abcd", "vk_3fA9x", &"Z".repeat(16)] {
            assert_eq!(KeyPrefix::parse("prefix", ok).unwrap().as_str(), ok);
        }
        for bad in ["abc", &"a".repeat(17), "vk-3fA9", "vk 3f", "clé_1234", ""] {
            assert_eq!(
                KeyPrefix::parse("prefix", bad).unwrap_err().field,
                "prefix",
                "{bad}"
            );
        }
        assert_eq!(
            stream_id(key()).unwrap().as_str(),
            "apikey-00000000-0000-0000-0000-000000000007"
        );
    }

    #[test]
    fn every_event_survives_storage() {
        let events = vec![
            created(),
            ApiKeyEvent::Renamed(Renamed {
                name: name("Padrón sync"),
                at: now(),
            }),
            revoked(),
            ApiKeyEvent::Revoked(Revoked {
                by: admin(),
                reason: Some(name("rotated")),
                at: now(),
            }),
        ];
        for event in events {
            let data = event.to_data();
            assert!(data.is_object(), "{}", event.event_type());
            let back = ApiKeyEvent::from_stored(event.event_type(), event.schema_version(), &data)
                .unwrap();
            assert_eq!(back, event);
        }
        assert!(ApiKeyEvent::from_stored("api_key.used", 1, &serde_json::json!({})).is_err());
        assert!(ApiKeyEvent::from_stored("api_key.renamed", 1, &serde_json::json!({})).is_err());
        assert!(ApiKeyEvent::from_stored("api_key.created", 9, &created().to_data()).is_err());
    }

    #[test]
    fn error_messages_are_lowercase_without_a_trailing_period() {
        for e in [
            ApiKeyError::AlreadyExists,
            ApiKeyError::Unknown,
            ApiKeyError::Revoked,
            ApiKeyError::Mismatch,
        ] {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }
}
