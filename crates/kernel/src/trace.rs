//! The W3C Trace Context `traceparent` value
//! (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`).
//!
//! It is stored in every event's metadata, so a reactor that handles the
//! event continues the trace of the request that caused it, in whatever
//! process it runs.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a header is not a valid `traceparent`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("traceparent must look like 00-<32 hex>-<16 hex>-<2 hex> with non-zero ids")]
pub struct TraceParentError;

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TraceParent {
    trace_id: u128,
    parent_id: u64,
    flags: u8,
}

impl TraceParent {
    /// A new root trace. The caller supplies the randomness (this crate does
    /// no I/O and draws no random numbers).
    pub fn new_root(trace_id: u128, span_id: u64) -> Option<Self> {
        (trace_id != 0 && span_id != 0).then_some(Self {
            trace_id,
            parent_id: span_id,
            flags: 0x01,
        })
    }

    /// The same trace with `span_id` as the parent of what follows.
    pub fn child(&self, span_id: u64) -> Option<Self> {
        (span_id != 0).then_some(Self {
            parent_id: span_id,
            ..*self
        })
    }

    /// The 128-bit trace id.
    pub fn trace_id(&self) -> u128 {
        self.trace_id
    }

    /// The 64-bit id of the parent span.
    pub fn parent_id(&self) -> u64 {
        self.parent_id
    }

    /// Whether the caller sampled this trace.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 == 0x01
    }
}

impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "00-{:032x}-{:016x}-{:02x}",
            self.trace_id, self.parent_id, self.flags
        )
    }
}

impl FromStr for TraceParent {
    type Err = TraceParentError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.trim().split('-');
        let (Some(version), Some(trace), Some(parent), Some(flags)) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TraceParentError);
        };
        let hex = |p: &str, len: usize| {
            p.len() == len
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        // Version 00 has exactly four parts; a future version may append more.
        if !hex(version, 2) || version == "ff" || (version == "00" && parts.next().is_some()) {
            return Err(TraceParentError);
        }
        if !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2) {
            return Err(TraceParentError);
        }
        let trace_id = u128::from_str_radix(trace, 16).map_err(|_| TraceParentError)?;
        let parent_id = u64::from_str_radix(parent, 16).map_err(|_| TraceParentError)?;
        let flags = u8::from_str_radix(flags, 16).map_err(|_| TraceParentError)?;
        if trace_id == 0 || parent_id == 0 {
            return Err(TraceParentError);
        }
        Ok(Self {
            trace_id,
            parent_id,
            flags,
        })
    }
}

impl TryFrom<String> for TraceParent {
    type Error = TraceParentError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<TraceParent> for String {
    fn from(t: TraceParent) -> String {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn parses_the_w3c_example_and_prints_it_back() {
        let t: TraceParent = SAMPLE.parse().unwrap();
        assert_eq!(t.trace_id(), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert!(t.sampled());
        assert_eq!(t.to_string(), SAMPLE);
    }

    #[test]
    fn refuses_malformed_values() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(bad.parse::<TraceParent>().is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn a_child_keeps_the_trace_and_changes_the_parent() {
        let t: TraceParent = SAMPLE.parse().unwrap();
        let c = t.child(0xabc).unwrap();
        assert_eq!(c.trace_id(), t.trace_id());
        assert_eq!(c.parent_id(), 0xabc);
    }
}
