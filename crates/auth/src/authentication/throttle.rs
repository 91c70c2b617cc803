//! Throttling of failed logins, per source address and per user name.
//!
//! The model (docs/authentication.md, "Throttling"):
//!
//! - Each key (an address, IPv6 by /64; a user name) has some free failures; past them each
//!   failure doubles the wait before that key's next attempt is even tried, up to a maximum;
//!   after `ban_after` failures in a row the key is banned for `ban_seconds`.
//! - An attempt is **reserved** before any authenticator runs, atomically with the check: it
//!   counts as pending until it ends, so parallel attempts count as much as serial ones.
//!   Within the free failures, as many attempts as failures are left may run at once; past
//!   them, one at a time, after its wait. A key whose last attempt succeeded (and that has
//!   failed none since) is *proven*: its parallel attempts are not held to the free failures,
//!   so a gateway reconnecting a hundred devices at once, or a fleet sharing one user name,
//!   is not refused once one of them got in.
//! - How an attempt ends: bad credentials count a failure for the address and the user name;
//!   a timeout (the client's CONNECT abandoned before an answer) counts a failure for the
//!   address only; a success clears the failures of the user name the authenticator vouched
//!   for, and only if that is the name attempted (the address keeps its record); anything
//!   else (a backend down) counts nothing.
//! - A user name is throttled only when it names a user: a marker (`JWT`), a token in the
//!   user name or a free user name beside a token is not a name, and the chain leaves it
//!   out.
//! - A user name under attack from other addresses does not lock out a client from an
//!   address with no failures and no pending attempts: that client's attempt is tried (its
//!   failure then marks its address too).
//! - Re-checks and re-authentications of connected clients are never throttled (the chain
//!   does not ask the throttle for them).

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Deserialize;

use super::address::AddressKey;
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
    #[serde(deserialize_with = "crate::seconds::deserialize_ms")]
    pub initial_backoff_ms: Duration,
    /// Longest wait, in milliseconds.
    #[serde(deserialize_with = "crate::seconds::deserialize_ms")]
    pub max_backoff_ms: Duration,
    /// Failures in a row that ban the address or user name.
    pub ban_after: u32,
    /// How long a ban lasts, in seconds.
    #[serde(deserialize_with = "crate::seconds::deserialize")]
    pub ban_seconds: Duration,
    /// Most addresses and user names tracked at once (old records are dropped first).
    pub max_tracked: usize,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            enabled: true,
            free_failures: 3,
            address_free_failures: 10,
            initial_backoff_ms: Duration::from_millis(500),
            max_backoff_ms: Duration::from_secs(30),
            ban_after: 20,
            ban_seconds: Duration::from_secs(300),
            max_tracked: 100_000,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    pending: u32,
    next_allowed: Instant,
    banned_until: Option<Instant>,
    /// When the last failure was counted: a record whose last failure is older than a ban
    /// is forgotten, however busy the key is with attempts that succeed.
    last_failure: Instant,
    /// An attempt succeeded since the last failure: parallel attempts may all run.
    proven: bool,
}

impl Record {
    fn new(now: Instant) -> Record {
        Record {
            failures: 0,
            pending: 0,
            next_allowed: now,
            banned_until: None,
            last_failure: now,
            proven: false,
        }
    }

    /// Whether another attempt may start now.
    fn admits(&self, free_failures: u32, now: Instant) -> Result<(), DenyReason> {
        if self.banned_until.is_some_and(|until| now < until) {
            return Err(DenyReason::Banned);
        }
        if now < self.next_allowed {
            return Err(DenyReason::RateLimited);
        }
        // Pending attempts may all fail: only as many may run as failures are left free, and
        // past the free failures one at a time.
        let committed = self.failures + self.pending;
        let proven = self.proven && self.failures == 0;
        if self.pending > 0 && committed >= free_failures && !proven {
            return Err(DenyReason::RateLimited);
        }
        Ok(())
    }

    fn is_clean(&self) -> bool {
        self.failures == 0 && self.pending == 0 && self.banned_until.is_none()
    }
}

/// One map of records, with its free failures.
#[derive(Debug)]
struct Records<K> {
    free_failures: u32,
    map: HashMap<K, Record>,
}

/// The failure records.
#[derive(Debug)]
pub struct LoginThrottle {
    config: ThrottleConfig,
    state: Mutex<(Records<AddressKey>, Records<String>)>,
}

/// How a reserved attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptEnd<'a> {
    /// The credentials were wrong.
    BadCredentials,
    /// Allowed; the authenticator vouched for this user name (if it names one).
    Allowed(Option<&'a str>),
    /// Neither (a backend failed, the method was not supported…): nothing is counted.
    Undecided,
}

/// A reserved attempt. End it with [`Attempt::end`]; dropped without an end (the CONNECT was
/// abandoned, the authentication timed out), it counts a failure for the address.
#[derive(Debug)]
pub struct Attempt {
    throttle: Option<Arc<LoginThrottle>>,
    address: AddressKey,
    username: Option<String>,
}

impl Attempt {
    /// An attempt that nothing throttles.
    pub fn unthrottled(address: IpAddr) -> Attempt {
        Attempt {
            throttle: None,
            address: AddressKey::of(address),
            username: None,
        }
    }

    /// Ends the attempt at `now`.
    pub fn end(mut self, how: AttemptEnd<'_>, now: Instant) {
        if let Some(throttle) = self.throttle.take() {
            throttle.finish(self.address, self.username.as_deref(), how, false, now);
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if let Some(throttle) = self.throttle.take() {
            throttle.finish(
                self.address,
                self.username.as_deref(),
                AttemptEnd::Undecided,
                true,
                Instant::now(),
            );
        }
    }
}

impl LoginThrottle {
    /// A throttle with these settings.
    pub fn new(config: ThrottleConfig) -> Self {
        let addresses = Records {
            free_failures: config.address_free_failures,
            map: HashMap::new(),
        };
        let names = Records {
            free_failures: config.free_failures,
            map: HashMap::new(),
        };
        LoginThrottle {
            config,
            state: Mutex::new((addresses, names)),
        }
    }

    /// The settings it was made with.
    pub fn config(&self) -> &ThrottleConfig {
        &self.config
    }

    /// Reserves an attempt from `address`, for `username` when it names a user, at `now`;
    /// the refusal reason if the attempt may not be tried.
    pub fn begin(
        self: &Arc<Self>,
        address: IpAddr,
        username: Option<&str>,
        now: Instant,
    ) -> Result<Attempt, DenyReason> {
        let key = AddressKey::of(address);
        if !self.config.enabled {
            return Ok(Attempt::unthrottled(address));
        }
        let mut guard = self.state.lock();
        let (addresses, names) = &mut *guard;
        let stale = self.config.ban_seconds;
        let address_record = addresses
            .map
            .get(&key)
            .copied()
            .filter(|r| !is_stale(r, now, stale));
        if let Some(r) = &address_record {
            r.admits(addresses.free_failures, now)?;
        }
        let address_clean = address_record.is_none_or(|r| r.is_clean());
        if let Some(user) = username {
            if let Some(r) = names.map.get(user).filter(|r| !is_stale(r, now, stale)) {
                // A name under attack elsewhere does not lock out a clean address.
                if !address_clean {
                    r.admits(names.free_failures, now)?;
                }
            }
        }
        reserve(&self.config, addresses, key, now);
        if let Some(user) = username {
            reserve(&self.config, names, user.to_owned(), now);
        }
        Ok(Attempt {
            throttle: Some(Arc::clone(self)),
            address: key,
            username: username.map(str::to_owned),
        })
    }

    fn finish(
        &self,
        address: AddressKey,
        username: Option<&str>,
        how: AttemptEnd<'_>,
        abandoned: bool,
        now: Instant,
    ) {
        let mut guard = self.state.lock();
        let (addresses, names) = &mut *guard;
        let address_failed = how == AttemptEnd::BadCredentials || abandoned;
        let address_end = if address_failed {
            Settled::Failed
        } else if matches!(how, AttemptEnd::Allowed(_)) {
            Settled::Succeeded
        } else {
            Settled::Neither
        };
        settle(&self.config, addresses, &address, address_end, now);
        if let Some(user) = username {
            let name_end = match how {
                AttemptEnd::BadCredentials => Settled::Failed,
                // A success clears only the name it vouched for.
                AttemptEnd::Allowed(Some(vouched)) if vouched == user => Settled::Cleared,
                _ => Settled::Neither,
            };
            settle(&self.config, names, user, name_end, now);
        }
    }
}

fn is_stale(record: &Record, now: Instant, stale: Duration) -> bool {
    record.pending == 0
        && now.saturating_duration_since(record.last_failure) > stale
        && record.banned_until.is_none_or(|u| u <= now)
}

/// Adds a pending attempt to `key`'s record, making room in the map if it is full.
fn reserve<K: Hash + Eq>(config: &ThrottleConfig, records: &mut Records<K>, key: K, now: Instant) {
    if !records.map.contains_key(&key) && records.map.len() >= config.max_tracked {
        let stale = config.ban_seconds;
        records.map.retain(|_, r| !is_stale(r, now, stale));
        if records.map.len() >= config.max_tracked {
            // Everything is fresh: forget the records that neither ban nor wait on anything
            // (a flood of new keys must not keep the map full, nor lift bans).
            records
                .map
                .retain(|_, r| r.pending > 0 || r.banned_until.is_some_and(|u| u > now));
        }
        if records.map.len() >= config.max_tracked {
            // Bans and pending attempts fill it: this key goes untracked.
            return;
        }
    }
    let stale = config.ban_seconds;
    let record = records.map.entry(key).or_insert_with(|| Record::new(now));
    if is_stale(record, now, stale) {
        *record = Record::new(now);
    }
    record.pending += 1;
}

/// How an attempt ended, for one key's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settled {
    /// A failure for this key.
    Failed,
    /// It succeeded (the key is proven) and its failures are forgotten.
    Cleared,
    /// It succeeded; the key's failures stay (an address, which a success elsewhere in its
    /// record does not vouch for).
    Succeeded,
    /// Nothing to count (a backend down).
    Neither,
}

/// Ends a pending attempt on `key`'s record: a failure counts (and sets the wait), a clear
/// forgets the failures, a success proves the key.
fn settle<K, Q>(
    config: &ThrottleConfig,
    records: &mut Records<K>,
    key: &Q,
    end: Settled,
    now: Instant,
) where
    K: std::borrow::Borrow<Q> + Hash + Eq,
    Q: Hash + Eq + ?Sized,
{
    let free_failures = records.free_failures;
    let Some(record) = records.map.get_mut(key) else {
        return;
    };
    record.pending = record.pending.saturating_sub(1);
    if end == Settled::Cleared {
        record.failures = 0;
        record.next_allowed = now;
    }
    if matches!(end, Settled::Cleared | Settled::Succeeded) {
        record.proven = true;
    }
    if end == Settled::Failed {
        record.proven = false;
        record.failures += 1;
        record.last_failure = now;
        if record.failures >= config.ban_after {
            record.banned_until = Some(now + config.ban_seconds);
            record.failures = 0;
        }
        if record.failures > free_failures {
            let exponent = (record.failures - free_failures - 1).min(20);
            let wait = config
                .initial_backoff_ms
                .saturating_mul(1 << exponent)
                .min(config.max_backoff_ms);
            record.next_allowed = now + wait;
        }
    }
    if record.is_clean() && !record.proven {
        records.map.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn throttle() -> Arc<LoginThrottle> {
        Arc::new(LoginThrottle::new(ThrottleConfig {
            free_failures: 2,
            address_free_failures: 2,
            initial_backoff_ms: Duration::from_millis(100),
            max_backoff_ms: Duration::from_millis(400),
            ban_after: 6,
            ban_seconds: Duration::from_secs(60),
            ..ThrottleConfig::default()
        }))
    }

    fn fail(t: &Arc<LoginThrottle>, ip: IpAddr, user: Option<&str>, now: Instant) {
        t.begin(ip, user, now)
            .expect("admitted")
            .end(AttemptEnd::BadCredentials, now);
    }

    #[test]
    fn free_failures_then_doubling_backoff_then_ban() {
        let t = throttle();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        fail(&t, ip, None, t0);
        fail(&t, ip, None, t0);
        assert!(t.begin(ip, None, t0).is_ok(), "two failures are free");
        // (That attempt was dropped unended: an abandoned attempt counts for the address.)
        assert_eq!(t.begin(ip, None, t0).unwrap_err(), DenyReason::RateLimited);
        // (The abandoned attempt was counted when it was dropped, just after t0.)
        let t1 = t0 + Duration::from_millis(150);
        fail(&t, ip, None, t1);
        assert_eq!(
            t.begin(ip, None, t1 + Duration::from_millis(150))
                .unwrap_err(),
            DenyReason::RateLimited,
            "the wait doubled to 200 ms"
        );
        let mut now = t1;
        for _ in 0..2 {
            now += Duration::from_secs(1);
            fail(&t, ip, None, now);
        }
        assert_eq!(
            t.begin(ip, None, now + Duration::from_secs(1)).unwrap_err(),
            DenyReason::Banned
        );
        assert!(t.begin(ip, None, now + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn parallel_attempts_are_reserved_so_they_count_before_they_end() {
        let t = throttle();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        let first = t.begin(ip, Some("alice"), t0).unwrap();
        let second = t.begin(ip, Some("alice"), t0).unwrap();
        assert_eq!(
            t.begin(ip, Some("alice"), t0).unwrap_err(),
            DenyReason::RateLimited,
            "two free failures, two attempts pending: no third at once"
        );
        first.end(AttemptEnd::BadCredentials, t0);
        second.end(AttemptEnd::BadCredentials, t0);
        let third = t.begin(ip, Some("alice"), t0).unwrap();
        assert_eq!(
            t.begin(ip, Some("alice"), t0).unwrap_err(),
            DenyReason::RateLimited,
            "past the free failures: one at a time"
        );
        third.end(AttemptEnd::BadCredentials, t0);
        assert_eq!(
            t.begin(ip, Some("alice"), t0).unwrap_err(),
            DenyReason::RateLimited,
            "and only after the wait"
        );
    }

    #[test]
    fn once_a_key_has_succeeded_its_parallel_attempts_all_run_until_one_fails() {
        let t = throttle();
        let gateway: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        // A gateway reconnecting its devices, all as one user: two at once before any success.
        let first = t.begin(gateway, Some("fleet"), t0).unwrap();
        let _second = t.begin(gateway, Some("fleet"), t0).unwrap();
        assert_eq!(
            t.begin(gateway, Some("fleet"), t0).unwrap_err(),
            DenyReason::RateLimited
        );
        first.end(AttemptEnd::Allowed(Some("fleet")), t0);
        // Proven, address and name: the rest go in at once.
        let many: Vec<_> = (0..50)
            .map(|_| t.begin(gateway, Some("fleet"), t0).expect("admitted"))
            .collect();
        // One failure ends the trust: back to the free failures, counting those pending.
        let mut many = many.into_iter();
        many.next().unwrap().end(AttemptEnd::BadCredentials, t0);
        assert_eq!(
            t.begin(gateway, Some("fleet"), t0).unwrap_err(),
            DenyReason::RateLimited
        );
        for attempt in many {
            attempt.end(AttemptEnd::Allowed(Some("fleet")), t0);
        }
    }

    #[test]
    fn a_timed_out_attempt_counts_for_the_address_only() {
        let t = throttle();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..3 {
            drop(t.begin(ip, Some("alice"), t0).unwrap());
        }
        assert_eq!(t.begin(ip, None, t0).unwrap_err(), DenyReason::RateLimited);
        assert!(
            t.begin("10.0.0.2".parse().unwrap(), Some("alice"), t0)
                .is_ok(),
            "the user name counted nothing"
        );
    }

    #[test]
    fn a_success_clears_only_the_name_it_vouched_for() {
        let t = throttle();
        let t0 = Instant::now();
        for i in 0..3u8 {
            fail(&t, IpAddr::from([10, 0, 0, i]), Some("alice"), t0);
        }
        let bad: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.9.9.9".parse().unwrap();
        // A success as somebody else (a webhook mapped the name "alice" to "bob").
        t.begin(other, Some("alice"), t0)
            .unwrap()
            .end(AttemptEnd::Allowed(Some("bob")), t0);
        assert_eq!(
            t.begin(bad, Some("alice"), t0 + Duration::from_millis(50))
                .unwrap_err(),
            DenyReason::RateLimited,
            "alice's failures are still there"
        );
        t.begin(other, Some("alice"), t0)
            .unwrap()
            .end(AttemptEnd::Allowed(Some("alice")), t0);
        assert!(t
            .begin(bad, Some("alice"), t0 + Duration::from_millis(50))
            .is_ok());
    }

    #[test]
    fn a_name_under_attack_does_not_lock_out_a_clean_address() {
        let t = throttle();
        let t0 = Instant::now();
        for i in 0..5u8 {
            let _ = t
                .begin(IpAddr::from([10, 0, 0, i]), Some("alice"), t0)
                .map(|a| a.end(AttemptEnd::BadCredentials, t0));
        }
        let attacker: IpAddr = "10.0.0.1".parse().unwrap();
        assert!(t.begin(attacker, Some("alice"), t0).is_err());
        let home: IpAddr = "192.168.1.7".parse().unwrap();
        let attempt = t
            .begin(home, Some("alice"), t0)
            .expect("a clean address is tried");
        attempt.end(AttemptEnd::Allowed(Some("alice")), t0);
    }

    #[test]
    fn ipv6_addresses_are_throttled_by_their_64_prefix() {
        let t = throttle();
        let t0 = Instant::now();
        for i in 1..=3u16 {
            let ip = IpAddr::from([0x2001, 0xdb8, 0, 1, i, 0, 0, 1]);
            fail(&t, ip, None, t0);
        }
        let same_64 = IpAddr::from([0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 9]);
        assert_eq!(
            t.begin(same_64, None, t0).unwrap_err(),
            DenyReason::RateLimited
        );
        let next_64 = IpAddr::from([0x2001, 0xdb8, 0, 2, 0, 0, 0, 1]);
        assert!(t.begin(next_64, None, t0).is_ok());
    }

    #[test]
    fn failures_are_forgotten_a_ban_length_after_the_last_one_however_busy_the_address() {
        let t = throttle();
        let nat: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        fail(&t, nat, None, t0);
        fail(&t, nat, None, t0);
        // Steady successful logins from behind the same address.
        let mut now = t0;
        for _ in 0..7 {
            now += Duration::from_secs(10);
            t.begin(nat, None, now)
                .unwrap()
                .end(AttemptEnd::Allowed(None), now);
        }
        // 70 s after the last failure (bans last 60 s): the record has gone.
        fail(&t, nat, None, now);
        fail(&t, nat, None, now);
        assert!(
            t.begin(nat, None, now).is_ok(),
            "two fresh failures are free"
        );
    }

    #[test]
    fn a_full_record_map_keeps_its_bans() {
        let t = Arc::new(LoginThrottle::new(ThrottleConfig {
            address_free_failures: 0,
            ban_after: 1,
            max_tracked: 2,
            ..ThrottleConfig::default()
        }));
        let t0 = Instant::now();
        let banned: IpAddr = "10.0.0.1".parse().unwrap();
        fail(&t, banned, None, t0);
        assert_eq!(t.begin(banned, None, t0).unwrap_err(), DenyReason::Banned);
        for i in 2..50u8 {
            let _ = t
                .begin(IpAddr::from([10, 0, 1, i]), None, t0)
                .map(|a| a.end(AttemptEnd::Undecided, t0));
        }
        assert_eq!(
            t.begin(banned, None, t0).unwrap_err(),
            DenyReason::Banned,
            "new addresses did not push the ban out"
        );
    }

    #[test]
    fn an_undecided_attempt_counts_nothing() {
        let t = throttle();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..10 {
            t.begin(ip, Some("alice"), t0)
                .unwrap()
                .end(AttemptEnd::Undecided, t0);
        }
        assert!(t.begin(ip, Some("alice"), t0).is_ok());
    }
}
