//! Per-client limits on the HTTP API (today: room creation), so one client cannot fill the server.
//!
//! A client is its network address, and the address is never kept: the limiter's key is a keyed hash
//! of it (a per-process random key, so the hash means nothing outside this process), and a key is
//! dropped as soon as its bucket is full again, i.e. as soon as it no longer limits anyone.

use axum::http::HeaderMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::{
    hash::{BuildHasher, RandomState},
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::atomic::{AtomicU64, Ordering},
};

/// Every this many checks, keys whose buckets are full again are forgotten.
const SWEEP_EVERY: u64 = 256;

/// A per-client token bucket over hashed addresses.
pub struct ClientLimiter {
    /// Buckets by hashed address.
    limiter: DefaultKeyedRateLimiter<u64>,
    /// Hashes addresses with a key made at start.
    key: RandomState,
    /// Checks since start, to sweep now and then.
    checks: AtomicU64,
}

impl ClientLimiter {
    /// `per_min` sustained, `burst` at once. Zero is refused by configuration validation; here it
    /// would mean "one".
    pub fn new(per_min: u32, burst: u32) -> Self {
        let nz = |v: u32| NonZeroU32::new(v).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(nz(per_min)).allow_burst(nz(burst));
        Self {
            limiter: RateLimiter::keyed(quota),
            key: RandomState::new(),
            checks: AtomicU64::new(0),
        }
    }

    /// Takes one token for `client`; false when its bucket is empty.
    pub fn check(&self, client: IpAddr) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        let hashed = self.key.hash_one(client);
        self.limiter.check_key(&hashed).is_ok()
    }

    /// How many clients are remembered now (for tests: the keys go away once they limit no one).
    pub fn remembered(&self) -> usize {
        self.limiter.retain_recent();
        self.limiter.len()
    }
}

/// The client a request comes from: the peer address, or, when the peer is a reverse proxy on this
/// machine (loopback), the last address it appended to `X-Forwarded-For`.
pub fn client_address(peer: Option<SocketAddr>, headers: &HeaderMap) -> Option<IpAddr> {
    let peer = peer?.ip();
    if !peer.is_loopback() {
        return Some(peer);
    }
    let forwarded = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .next_back();
    Some(forwarded.unwrap_or(peer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_client_has_its_own_bucket() {
        let l = ClientLimiter::new(1, 3);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!((0..3).all(|_| l.check(a)));
        assert!(!l.check(a));
        assert!(l.check(b));
    }

    #[test]
    fn forwarded_for_counts_only_behind_a_local_proxy() {
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            "198.51.100.7, 203.0.113.9".parse().unwrap(),
        );
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "192.0.2.4:5000".parse().unwrap();
        assert_eq!(
            client_address(Some(local), &h),
            Some("203.0.113.9".parse().unwrap())
        );
        assert_eq!(client_address(Some(remote), &h), Some(remote.ip()));
        assert_eq!(client_address(None, &h), None);
    }
}
