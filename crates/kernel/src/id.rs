//! UUID-backed identifiers. Each is its own type so that a tenant id can never
//! be passed where an event id is expected.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A string that is not a UUID was given where an identifier was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} must be a UUID, got {value:?}")]
pub struct IdParseError {
    kind: &'static str,
    value: String,
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Wraps an existing UUID.
            pub const fn from_uuid(uuid: Uuid) -> Self {
                Self(uuid)
            }

            /// The UUID inside.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Consumes the id, giving the UUID inside.
            pub const fn into_uuid(self) -> Uuid {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self).map_err(|_| IdParseError {
                    kind: $kind,
                    value: s.chars().take(64).collect(),
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(uuid: Uuid) -> Self {
                Self(uuid)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    };
}

uuid_id!(
    /// A tenant: one council or business on the shared install.
    ///
    /// [`TenantId::PLATFORM`] (the nil UUID) owns what belongs to the install
    /// itself rather than to any tenant, such as the plans an operator offers.
    TenantId,
    "tenant id"
);

uuid_id!(
    /// The identity of one event. Stable across retries: appending an event
    /// whose id is already stored is a no-op, which is how a webhook delivered
    /// twice is stored once (derive the id with [`EventId::derived`]).
    EventId,
    "event id"
);

impl TenantId {
    /// The install itself: the owner of platform-wide streams.
    pub const PLATFORM: TenantId = TenantId(Uuid::nil());
}

/// Namespace for [`EventId::derived`], fixed forever: changing it would make
/// redelivered messages look new.
const EVENT_ID_NAMESPACE: Uuid = Uuid::from_u128(0x5f1c_2a4e_8d3b_4c71_9a60_7e2d_b4f8_0c13);

impl EventId {
    /// A deterministic id for the event that records an outside fact, such as
    /// a platform's message id: the same `(scope, key)` always gives the same
    /// id, so a second delivery of the same message appends nothing.
    ///
    /// `scope` names where the key is unique (e.g. `"facebook:<page id>"`).
    pub fn derived(scope: &str, key: &str) -> Self {
        let mut name = Vec::with_capacity(scope.len() + key.len() + 1);
        name.extend_from_slice(scope.as_bytes());
        name.push(0);
        name.extend_from_slice(key.as_bytes());
        Self(Uuid::new_v5(&EVENT_ID_NAMESPACE, &name))
    }

    /// The `index`-th event id for a command carrying an idempotency key: a
    /// retried command produces the same ids, so its events are stored once.
    pub fn for_command(idempotency_key: Uuid, index: usize) -> Self {
        let mut name = [0u8; 24];
        name[..16].copy_from_slice(idempotency_key.as_bytes());
        name[16..].copy_from_slice(&(index as u64).to_be_bytes());
        Self(Uuid::new_v5(&EVENT_ID_NAMESPACE, &name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_round_trip() {
        let id: TenantId = "6f1d2c8e-4b8a-4c5e-9f0a-1b2c3d4e5f60".parse().unwrap();
        assert_eq!(id.to_string(), "6f1d2c8e-4b8a-4c5e-9f0a-1b2c3d4e5f60");
    }

    #[test]
    fn refuses_a_non_uuid_naming_the_kind() {
        let err = "not-a-uuid".parse::<TenantId>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "tenant id must be a UUID, got \"not-a-uuid\""
        );
    }

    #[test]
    fn derived_ids_are_stable_and_scoped() {
        let a = EventId::derived("facebook:123", "m_abc");
        assert_eq!(a, EventId::derived("facebook:123", "m_abc"));
        assert_ne!(a, EventId::derived("facebook:124", "m_abc"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(EventId::derived("ab", "c"), EventId::derived("a", "bc"));
    }

    #[test]
    fn command_ids_differ_by_index() {
        let key = Uuid::from_u128(7);
        assert_eq!(EventId::for_command(key, 0), EventId::for_command(key, 0));
        assert_ne!(EventId::for_command(key, 0), EventId::for_command(key, 1));
    }
}
