//! What a process may remember of who is who between requests — a staff
//! member's working role, a token's principal — so that a request does
//! not read the same streams again and again. Only a process that follows
//! the event log may keep one: it forgets a tenant's entries as soon as the
//! log shows a change to who the tenant is or who works for it
//! ([`identity_change`]), and every entry is forgotten after a time-out
//! ([`MEMO_TTL`]) in case that news is late.
//!
//! What this module must not do: decide anything, or remember a refusal (a
//! suspended tenant, an unknown session are read again every time).

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ventanilla_kernel::TenantId;
use ventanilla_tenants_domain::plan;

/// How long an entry is trusted without news from the log.
pub const MEMO_TTL: Duration = Duration::from_secs(30);

/// Most entries kept; past it, everything is forgotten (and read again).
pub const MEMO_MAX_ENTRIES: usize = 100_000;

/// Which entries an event makes stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    /// None.
    Nothing,
    /// The event's tenant's.
    Tenant,
    /// Everyone's (the plan catalogue changed).
    Everything,
}

/// What an event of `stream` makes stale: the tenant's own stream, its
/// staff's and its API keys' change who may do what; the plan catalogue
/// changes every tenant's limits.
pub fn identity_change(stream: &str) -> Stale {
    if stream == plan::STREAM_NAME {
        Stale::Everything
    } else if ["tenant-", "staff-", "apikey-"]
        .iter()
        .any(|prefix| stream.starts_with(prefix))
    {
        Stale::Tenant
    } else {
        Stale::Nothing
    }
}

/// Entries, each of a tenant and trusted for [`MEMO_TTL`]. Clones share
/// them.
#[derive(Debug)]
pub struct TenantMemo<K, V> {
    entries: Arc<Mutex<Entries<K, V>>>,
}

#[derive(Debug)]
struct Entries<K, V> {
    by_key: HashMap<K, (TenantId, V, Instant)>,
    keys_of: HashMap<TenantId, HashSet<K>>,
    /// Counts what was forgotten, so that a value read before a change is
    /// not remembered after it ([`TenantMemo::epoch`]).
    epoch: u64,
}

impl<K, V> Clone for TenantMemo<K, V> {
    fn clone(&self) -> Self {
        Self {
            entries: Arc::clone(&self.entries),
        }
    }
}

impl<K: Eq + Hash + Clone, V: Clone> Default for TenantMemo<K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Eq + Hash + Clone, V: Clone> TenantMemo<K, V> {
    /// An empty memo.
    pub fn new() -> Self {
        Self {
            entries: Arc::new(Mutex::new(Entries {
                by_key: HashMap::new(),
                keys_of: HashMap::new(),
                epoch: 0,
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries<K, V>> {
        // A panic while holding the lock leaves maps that are still whole.
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The entry for `key` and its tenant, if it is there and fresh.
    pub fn get(&self, key: &K) -> Option<(TenantId, V)> {
        let entries = self.lock();
        let (tenant, value, at) = entries.by_key.get(key)?;
        (at.elapsed() < MEMO_TTL).then(|| (*tenant, value.clone()))
    }

    /// Where the memo stands: take it before reading what [`TenantMemo::put`]
    /// will remember.
    pub fn epoch(&self) -> u64 {
        self.lock().epoch
    }

    /// Remembers `value` for `key`, an entry of `tenant`, read since
    /// `epoch` — unless something was forgotten since, when the value may
    /// be older than the news.
    pub fn put(&self, epoch: u64, tenant: TenantId, key: K, value: V) {
        let mut entries = self.lock();
        if entries.epoch != epoch {
            return;
        }
        if entries.by_key.len() >= MEMO_MAX_ENTRIES {
            entries.by_key.clear();
            entries.keys_of.clear();
        }
        if let Some((before, _, _)) = entries
            .by_key
            .insert(key.clone(), (tenant, value, Instant::now()))
            && before != tenant
            && let Some(keys) = entries.keys_of.get_mut(&before)
        {
            keys.remove(&key);
        }
        entries.keys_of.entry(tenant).or_default().insert(key);
    }

    /// Forgets what an event of `stream` of `tenant` makes stale.
    pub fn saw(&self, tenant: TenantId, stream: &str) {
        match identity_change(stream) {
            Stale::Nothing => {}
            Stale::Tenant => self.forget(tenant),
            Stale::Everything => self.forget_all(),
        }
    }

    /// Forgets everything of `tenant`.
    pub fn forget(&self, tenant: TenantId) {
        let mut entries = self.lock();
        entries.epoch += 1;
        if let Some(keys) = entries.keys_of.remove(&tenant) {
            for key in keys {
                entries.by_key.remove(&key);
            }
        }
    }

    /// Forgets everything.
    pub fn forget_all(&self) {
        let mut entries = self.lock();
        entries.epoch += 1;
        entries.by_key.clear();
        entries.keys_of.clear();
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use uuid::Uuid;

    fn tenant() -> TenantId {
        TenantId::from_uuid(Uuid::new_v4())
    }

    #[test]
    fn entries_are_forgotten_per_tenant_on_identity_changes_only() {
        let memo: TenantMemo<u32, &str> = TenantMemo::new();
        let (a, b) = (tenant(), tenant());
        memo.put(memo.epoch(), a, 1, "admin");
        memo.put(memo.epoch(), b, 2, "agent");
        memo.saw(a, "ticket-0f8d3c1e-7d0a-4c4e-9d55-3a3f3c2b1a00");
        memo.saw(a, "directory");
        assert_eq!(memo.get(&1), Some((a, "admin")));
        memo.saw(a, &format!("staff-{}", Uuid::new_v4()));
        assert_eq!(memo.get(&1), None);
        assert_eq!(memo.get(&2), Some((b, "agent")));
        memo.saw(b, &format!("apikey-{}", Uuid::new_v4()));
        assert_eq!(memo.get(&2), None);
        memo.put(memo.epoch(), a, 3, "agent");
        memo.saw(b, &format!("tenant-{b}"));
        assert_eq!(memo.get(&3), Some((a, "agent")));
        memo.saw(b, plan::STREAM_NAME);
        assert_eq!(memo.get(&3), None);
    }

    #[test]
    fn a_full_memo_starts_again() {
        let memo: TenantMemo<usize, ()> = TenantMemo::new();
        let t = tenant();
        for k in 0..MEMO_MAX_ENTRIES {
            memo.put(memo.epoch(), t, k, ());
        }
        assert_eq!(memo.get(&0), Some((t, ())));
        memo.put(memo.epoch(), t, MEMO_MAX_ENTRIES, ());
        assert_eq!(memo.get(&0), None);
        assert_eq!(memo.get(&MEMO_MAX_ENTRIES), Some((t, ())));
        // Forgetting the tenant forgets what it had.
        memo.forget(t);
        assert_eq!(memo.get(&MEMO_MAX_ENTRIES), None);
        // A value read before a change is not remembered after it.
        let read_at = memo.epoch();
        memo.forget(tenant());
        memo.put(read_at, t, 1, ());
        assert_eq!(memo.get(&1), None);
    }
}
