//! Throttling of failed logins, per source address and per user name.
//!
//! Each failure doubles the wait before the next attempt from the same address (or for the
//! same user name) is even tried, up to a maximum; after a number of failures in a row the key
//! is banned for a while. A success clears the user name's record. Attempts refused here never
//! reach an authenticator, so a password cannot be tried at line rate and a flood of bad logins
//! costs no hashing.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Deserialize;

use super::outcome::DenyReason;

/// Throttling settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ThrottleConfig {
    /// Whether failed logins are throttled at all.
    pub enabled: bool,
    /// Failures allowed for one user name before any wait is imposed.
    pub free_failures: u32,
    /// Failures allowed from one address before any wait is imposed (higher than per user
    /// name: many devices can share an address behind NAT).
    pub address_free_failures: u32,
    /// First wait after the free failures, in milliseconds; doubles with each failure.
    pub initial_backoff_ms: u64,
    /// Longest wait, in milliseconds.
    pub max_backoff_ms: u64,
    /// Failures in a row that ban the address or user name.
    pub ban_after: u32,
    /// How long a ban lasts, in seconds.
    pub ban_seconds: u64,
    /// Most addresses and user names tracked at once (old records are dropped first).
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            free_failures: 3,
            address_free_failures: 10,
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            ban_after: 20,
            ban_seconds: 300,
            max_tracked: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    next_allowed: Instant,
    banned_until: Option<Instant>,
    last_seen: Instant,
}

/// The failure records.
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    by_address: Mutex<HashMap<IpAddr, Record>>,
    by_username: Mutex<HashMap<String, Record>>,
}

impl LoginThrottle {
    /// A throttle with these settings.
    pub fn new(config: ThrottleConfig) -> Self {
        LoginThrottle {
            config,
            by_address: Mutex::new(HashMap::new()),
            by_username: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an attempt from `address` for `username` may be tried at `now`; the refusal
    /// reason if not.
    pub fn check(
        &self,
        address: IpAddr,
        username: Option<&str>,
        now: Instant,
    ) -> Result<(), DenyReason> {
        if !self.config.enabled {
            return Ok(());
        }
        Self::check_record(self.by_address.lock().get(&address), now)?;
        if let Some(user) = username {
            Self::check_record(self.by_username.lock().get(user), now)?;
        }
        Ok(())
    }

    fn check_record(record: Option<&Record>, now: Instant) -> Result<(), DenyReason> {
        let Some(r) = record else { return Ok(()) };
        if r.banned_until.is_some_and(|until| now < until) {
            return Err(DenyReason::Banned);
        }
        if now < r.next_allowed {
            return Err(DenyReason::RateLimited);
        }
        Ok(())
    }

    /// Records a failed attempt (bad credentials).
    pub fn failure(&self, address: IpAddr, username: Option<&str>, now: Instant) {
        if !self.config.enabled {
            return;
        }
        self.bump(
            &mut self.by_address.lock(),
            address,
            now,
            self.config.address_free_failures,
        );
        if let Some(user) = username {
            self.bump(
                &mut self.by_username.lock(),
                user.to_owned(),
                now,
                self.config.free_failures,
            );
        }
    }

    /// Records a successful login: the user name's failures are forgotten (the address's are
    /// kept, so one good account does not unlock guessing at others from the same place).
    pub fn success(&self, username: Option<&str>) {
        if let Some(user) = username {
            self.by_username.lock().remove(user);
        }
    }

    fn bump<K: std::hash::Hash + Eq>(
        &self,
        map: &mut HashMap<K, Record>,
        key: K,
        now: Instant,
        free_failures: u32,
    ) {
        if map.len() >= self.config.max_tracked {
            map.retain(|_, r| r.banned_until.is_some_and(|u| u > now) || now < r.next_allowed);
            if map.len() >= self.config.max_tracked {
                map.clear();
            }
        }
        let c = &self.config;
        let r = map.entry(key).or_insert(Record {
            failures: 0,
            next_allowed: now,
            banned_until: None,
            last_seen: now,
        });
        // A record idle for longer than a ban is stale: start over.
        if now.duration_since(r.last_seen) > Duration::from_secs(c.ban_seconds) {
            *r = Record {
                failures: 0,
                next_allowed: now,
                banned_until: None,
                last_seen: now,
            };
        }
        r.failures += 1;
        r.last_seen = now;
        if r.failures >= c.ban_after {
            r.banned_until = Some(now + Duration::from_secs(c.ban_seconds));
            r.failures = 0;
        }
        if r.failures > free_failures {
            let exponent = (r.failures - free_failures - 1).min(20);
            let wait = c
                .initial_backoff_ms
                .saturating_mul(1 << exponent)
                .min(c.max_backoff_ms);
            r.next_allowed = now + Duration::from_millis(wait);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> LoginThrottle {
        LoginThrottle::new(ThrottleConfig {
            free_failures: 2,
            address_free_failures: 2,
            initial_backoff_ms: 100,
            max_backoff_ms: 400,
            ban_after: 6,
            ban_seconds: 60,
            ..ThrottleConfig::default()
        })
    }

    #[test]
    fn free_failures_then_doubling_backoff_then_ban() {
        let t = throttle();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        t.failure(ip, None, t0);
        t.failure(ip, None, t0);
        assert_eq!(t.check(ip, None, t0), Ok(()), "two failures are free");
        t.failure(ip, None, t0);
        assert_eq!(t.check(ip, None, t0), Err(DenyReason::RateLimited));
        assert_eq!(t.check(ip, None, t0 + Duration::from_millis(100)), Ok(()));
        t.failure(ip, None, t0);
        assert_eq!(
            t.check(ip, None, t0 + Duration::from_millis(150)),
            Err(DenyReason::RateLimited),
            "the wait doubled to 200 ms"
        );
        t.failure(ip, None, t0);
        t.failure(ip, None, t0);
        assert_eq!(
            t.check(ip, None, t0 + Duration::from_secs(1)),
            Err(DenyReason::Banned)
        );
        assert_eq!(t.check(ip, None, t0 + Duration::from_secs(61)), Ok(()));
    }

    #[test]
    fn an_address_gets_more_free_failures_than_a_user_name() {
        let t = LoginThrottle::new(ThrottleConfig {
            free_failures: 1,
            address_free_failures: 3,
            ..ThrottleConfig::default()
        });
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let t0 = Instant::now();
        t.failure(ip, Some("u1"), t0);
        t.failure(ip, Some("u2"), t0);
        t.failure(ip, Some("u3"), t0);
        assert_eq!(
            t.check(ip, Some("u4"), t0),
            Ok(()),
            "three failures from one address are free"
        );
        assert_eq!(
            t.check("10.0.0.10".parse().unwrap(), Some("u1"), t0),
            Ok(()),
            "one failure per user name is free"
        );
        t.failure(ip, Some("u1"), t0);
        assert_eq!(t.check(ip, Some("u5"), t0), Err(DenyReason::RateLimited));
        assert_eq!(
            t.check("10.0.0.10".parse().unwrap(), Some("u1"), t0),
            Err(DenyReason::RateLimited)
        );
    }

    #[test]
    fn user_names_are_throttled_across_addresses_and_cleared_by_success() {
        let t = throttle();
        let t0 = Instant::now();
        for i in 0..3u8 {
            t.failure(IpAddr::from([10, 0, 0, i]), Some("alice"), t0);
        }
        assert_eq!(
            t.check("10.9.9.9".parse().unwrap(), Some("alice"), t0),
            Err(DenyReason::RateLimited)
        );
        assert_eq!(
            t.check("10.9.9.9".parse().unwrap(), Some("bob"), t0),
            Ok(())
        );
        t.success(Some("alice"));
        assert_eq!(
            t.check("10.9.9.9".parse().unwrap(), Some("alice"), t0),
            Ok(())
        );
    }
}
