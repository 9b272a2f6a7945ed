//! Who caused a change. Recorded in every event's metadata, so the history of
//! a ticket says which agent answered and which integration opened it.

use serde::{Deserialize, Serialize};

/// The principal on whose behalf an event was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Actor {
    /// The platform itself: a timer, a reactor, a migration.
    System {
        /// Which part of the platform (e.g. `"tickets.sla-timer"`).
        component: String,
    },
    /// An operator of the hosted install.
    Operator {
        /// The operator's account or token name.
        id: String,
    },
    /// A member of a tenant's staff (admin or agent).
    Staff {
        /// The staff member's id.
        id: String,
    },
    /// An integrator, through an API key.
    ApiKey {
        /// The key's id (never its secret).
        id: String,
    },
    /// A citizen, through the portal, e-mail or a social network.
    Citizen {
        /// The channel they wrote on (e.g. `"web"`, `"facebook"`).
        channel: String,
    },
}

impl Actor {
    /// A platform component as actor.
    pub fn system(component: impl Into<String>) -> Self {
        Self::System {
            component: component.into(),
        }
    }
}
