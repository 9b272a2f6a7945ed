//! Rate limiting: a token bucket per API key and per client address, sized
//! by the tenant's plan (`api_requests_per_minute`); anonymous requests get
//! a bucket per address of [`ANONYMOUS_PER_MINUTE`].
//!
//! A bucket holds at most a minute's worth of requests and refills evenly
//! (a plan of 60 a minute: one a second, bursts of up to 60). A request
//! over it is refused before it runs, with the seconds until a request
//! would be allowed again (`Retry-After`).
//!
//! What is limited:
//! - an API key: its own bucket, and its tenant's bucket for the client's
//!   address, both sized by the plan;
//! - a staff session: its tenant's bucket for the client's address (the
//!   session's own when the address is unknown), sized by the plan;
//! - anonymous requests: a bucket per address (none when the address is
//!   unknown);
//! - the operator: nothing.
//!
//! The client address is the TCP peer as the server records it
//! (`ConnectInfo<SocketAddr>`); forwarded headers are not trusted. Plans are
//! read with [`Tenancy::plan_limits`] and cached for [`PLAN_TTL`], so a
//! change of plan takes up to that long to count.
//!
//! State is in this process only: several gateway processes each limit
//! separately (a client spread over N of them gets up to N times the plan).
//!
//! What this module must not do: look at the query, or decide who the
//! caller is (it is given the principal).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ventanilla_kernel::TenantId;
use ventanilla_tenancy::Tenancy;
use ventanilla_tenants_domain::api_key::ApiKeyId;
use ventanilla_tenants_domain::staff::SessionId;

use crate::auth::Principal;

/// Requests a minute an anonymous client address may make.
pub const ANONYMOUS_PER_MINUTE: u32 = 60;

/// How long a tenant's plan limit is kept before it is read again.
pub const PLAN_TTL: Duration = Duration::from_secs(60);

/// Above this many buckets, full ones (idle for a minute or more) are
/// dropped.
const PRUNE_ABOVE: usize = 50_000;

/// What a bucket belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum BucketKey {
    Key(ApiKeyId),
    Address(Option<TenantId>, IpAddr),
    Session(SessionId),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    per_minute: u32,
    at: Instant,
}

impl Bucket {
    fn full(per_minute: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(per_minute),
            per_minute,
            at: now,
        }
    }

    fn rate_per_sec(&self) -> f64 {
        f64::from(self.per_minute) / 60.0
    }

    fn refill(&mut self, per_minute: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.per_minute = per_minute;
        self.tokens = (self.tokens + elapsed * self.rate_per_sec()).min(f64::from(per_minute));
        self.at = now;
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self, per_minute: u32, now: Instant) -> Result<(), Duration> {
        self.refill(per_minute, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let rate = self.rate_per_sec();
        if rate <= 0.0 {
            return Err(Duration::from_secs(60));
        }
        Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
    }

    fn is_full(&self, now: Instant) -> bool {
        let mut b = *self;
        b.refill(self.per_minute, now);
        b.tokens >= f64::from(self.per_minute)
    }
}

/// A request refused: how many whole seconds to wait (at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    /// The `Retry-After` value.
    pub retry_after_secs: u64,
}

/// The buckets, and the plans' limits, of this process.
pub struct RateLimiter {
    tenancy: Tenancy,
    buckets: Mutex<HashMap<BucketKey, Bucket>>,
    plans: Mutex<HashMap<TenantId, (Instant, u32)>>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter").finish_non_exhaustive()
    }
}

impl RateLimiter {
    /// Limits read plans through `tenancy`.
    pub fn new(tenancy: Tenancy) -> Self {
        Self {
            tenancy,
            buckets: Mutex::new(HashMap::new()),
            plans: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one request of `principal` from `address`; `Err` when it is
    /// over a limit.
    pub async fn check(
        &self,
        principal: &Principal,
        address: Option<IpAddr>,
    ) -> Result<(), Limited> {
        let mut takes: Vec<(BucketKey, u32)> = Vec::with_capacity(2);
        match principal {
            Principal::Operator => {}
            Principal::Anonymous => {
                if let Some(ip) = address {
                    takes.push((BucketKey::Address(None, ip), ANONYMOUS_PER_MINUTE));
                }
            }
            Principal::ApiKey(key) => {
                let limit = self.plan_limit(key.tenant).await;
                takes.push((BucketKey::Key(key.key_id), limit));
                if let Some(ip) = address {
                    takes.push((BucketKey::Address(Some(key.tenant), ip), limit));
                }
            }
            Principal::Staff(staff) => {
                let limit = self.plan_limit(staff.tenant).await;
                takes.push((
                    match address {
                        Some(ip) => BucketKey::Address(Some(staff.tenant), ip),
                        None => BucketKey::Session(staff.session),
                    },
                    limit,
                ));
            }
        }
        if takes.is_empty() {
            return Ok(());
        }
        self.take_all(&takes, Instant::now())
    }

    fn take_all(&self, takes: &[(BucketKey, u32)], now: Instant) -> Result<(), Limited> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| !b.is_full(now));
        }
        let mut wait: Option<Duration> = None;
        for (key, per_minute) in takes {
            let bucket = buckets
                .entry(*key)
                .or_insert_with(|| Bucket::full(*per_minute, now));
            if let Err(w) = bucket.take(*per_minute, now) {
                wait = Some(wait.map_or(w, |old| old.max(w)));
            }
        }
        match wait {
            None => Ok(()),
            Some(w) => Err(Limited {
                retry_after_secs: w.as_secs_f64().ceil().max(1.0) as u64,
            }),
        }
    }

    /// The tenant's `api_requests_per_minute`, cached for [`PLAN_TTL`].
    async fn plan_limit(&self, tenant: TenantId) -> u32 {
        let now = Instant::now();
        if let Some((at, limit)) = self
            .plans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&tenant)
            && now.saturating_duration_since(*at) < PLAN_TTL
        {
            return *limit;
        }
        let limit = match self.tenancy.plan_limits(tenant).await {
            Ok(limits) => limits.api_requests_per_minute,
            Err(e) => {
                // Authentication just succeeded, so this is unexpected;
                // the request is limited as an anonymous one would be.
                tracing::warn!(tenant_id = %tenant, error = %e, "could not read the tenant's plan for rate limiting");
                return ANONYMOUS_PER_MINUTE;
            }
        };
        self.plans
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(tenant, (now, limit));
        limit
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_bucket_allows_a_minute_in_a_burst_then_refills_evenly() {
        let start = Instant::now();
        let mut b = Bucket::full(60, start);
        for _ in 0..60 {
            assert!(b.take(60, start).is_ok());
        }
        let wait = b.take(60, start).unwrap_err();
        assert!(
            wait <= Duration::from_secs(1) && wait > Duration::ZERO,
            "{wait:?}"
        );
        assert!(b.take(60, start + Duration::from_secs(1)).is_ok());
        assert!(b.take(60, start + Duration::from_secs(1)).is_err());
        assert!(!b.is_full(start + Duration::from_secs(1)));
        assert!(b.is_full(start + Duration::from_secs(61)));
    }

    #[test]
    fn a_plan_of_zero_never_allows() {
        let now = Instant::now();
        let mut b = Bucket::full(0, now);
        assert_eq!(b.take(0, now), Err(Duration::from_secs(60)));
    }
}
