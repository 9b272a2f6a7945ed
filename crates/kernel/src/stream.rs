//! Stream identifiers: the name of one aggregate's history inside a tenant,
//! by convention `category-id` (e.g. `ticket-0193…`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a string is not a stream id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    /// The id is empty.
    #[error("stream id must not be empty")]
    Empty,
    /// The id is longer than [`StreamId::MAX_LEN`] bytes.
    #[error("stream id must be at most {max} bytes, got {len}")]
    TooLong {
        /// The limit.
        max: usize,
        /// What was given.
        len: usize,
    },
    /// The id contains whitespace or a control character.
    #[error("stream id must not contain whitespace or control characters")]
    BadCharacter,
}

/// The name of one stream of events within a tenant. Streams are unique per
/// tenant: two tenants may each have a `settings` stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// The longest stream id accepted, in bytes.
    pub const MAX_LEN: usize = 200;

    /// Parses and validates a stream id.
    pub fn parse(s: impl Into<String>) -> Result<Self, StreamIdError> {
        let s = s.into();
        if s.is_empty() {
            return Err(StreamIdError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(StreamIdError::TooLong {
                max: Self::MAX_LEN,
                len: s.len(),
            });
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(StreamIdError::BadCharacter);
        }
        Ok(Self(s))
    }

    /// The stream of one aggregate: `category-id`.
    pub fn for_aggregate(category: &str, id: impl fmt::Display) -> Result<Self, StreamIdError> {
        Self::parse(format!("{category}-{id}"))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category: the part before the first `-` (the whole id if none).
    pub fn category(&self) -> &str {
        self.0.split_once('-').map_or(self.0.as_str(), |(c, _)| c)
    }

    /// A stable 32-bit hash of the id (FNV-1a), used to spread streams over
    /// the partitions of a consumer group. Fixed forever: every backend and
    /// every version must compute the same value, or a stream would change
    /// owner and lose its ordering guarantee.
    pub fn partition_hash(&self) -> u32 {
        const OFFSET: u32 = 0x811c_9dc5;
        const PRIME: u32 = 0x0100_0193;
        self.0
            .bytes()
            .fold(OFFSET, |h, b| (h ^ u32::from(b)).wrapping_mul(PRIME))
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for StreamId {
    type Err = StreamIdError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for StreamId {
    type Error = StreamIdError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.0
    }
}

impl AsRef<str> for StreamId {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids_and_names_the_category() {
        let id = StreamId::parse("ticket-42").unwrap();
        assert_eq!(id.category(), "ticket");
        assert_eq!(StreamId::parse("settings").unwrap().category(), "settings");
    }

    #[test]
    fn refuses_empty_long_and_spaced_ids() {
        assert_eq!(StreamId::parse(""), Err(StreamIdError::Empty));
        assert_eq!(
            StreamId::parse("x".repeat(201)),
            Err(StreamIdError::TooLong { max: 200, len: 201 })
        );
        assert_eq!(StreamId::parse("a b"), Err(StreamIdError::BadCharacter));
        assert_eq!(StreamId::parse("a\u{0}"), Err(StreamIdError::BadCharacter));
    }

    #[test]
    fn partition_hash_is_the_published_fnv1a() {
        // Reference values of 32-bit FNV-1a.
        assert_eq!(StreamId::parse("a").unwrap().partition_hash(), 0xe40c_292c);
        assert_eq!(
            StreamId::parse("foobar").unwrap().partition_hash(),
            0xbf9c_f968
        );
    }
}
