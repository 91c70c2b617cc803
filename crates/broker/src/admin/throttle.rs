//! Failed admin authentications, counted per address: after `max_failures` within a ban's
//! length, the address is refused (429) until the ban has passed since its last failure.
//! The table is bounded: when it is full, records whose ban has passed go first, then the
//! oldest.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The most addresses remembered at once.
pub const MAX_ADDRESSES: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
}

/// Failure counts by address.
#[derive(Debug)]
pub struct AdminThrottle {
    max_failures: u32,
    ban: Duration,
    records: Mutex<HashMap<IpAddr, Record>>,
}

impl AdminThrottle {
    /// A throttle refusing an address after `max_failures` failures, for `ban`.
    pub fn new(max_failures: u32, ban: Duration) -> AdminThrottle {
        AdminThrottle {
            max_failures: max_failures.max(1),
            ban,
            records: Mutex::new(HashMap::new()),
        }
    }

    /// How long `address` is still refused at `now`, if it is.
    pub fn refused_for(&self, address: IpAddr, now: Instant) -> Option<Duration> {
        let records = self.records.lock();
        let record = records.get(&address)?;
        let until = record.last + self.ban;
        (record.failures >= self.max_failures && until > now).then(|| until - now)
    }

    /// Counts a failure of `address` at `now`.
    pub fn failed(&self, address: IpAddr, now: Instant) {
        let mut records = self.records.lock();
        if records.len() >= MAX_ADDRESSES && !records.contains_key(&address) {
            let ban = self.ban;
            records.retain(|_, r| now.saturating_duration_since(r.last) < ban);
            if records.len() >= MAX_ADDRESSES {
                if let Some(oldest) = records.iter().min_by_key(|(_, r)| r.last).map(|(a, _)| *a) {
                    records.remove(&oldest);
                }
            }
        }
        let record = records.entry(address).or_insert(Record {
            failures: 0,
            last: now,
        });
        if now.saturating_duration_since(record.last) >= self.ban {
            record.failures = 0;
        }
        record.failures = record.failures.saturating_add(1);
        record.last = now;
    }

    /// `address` authenticated: its failures are forgotten.
    pub fn succeeded(&self, address: IpAddr) {
        self.records.lock().remove(&address);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_is_refused_after_its_failures_until_the_ban_has_passed() {
        let throttle = AdminThrottle::new(3, Duration::from_secs(60));
        let address: IpAddr = "192.0.2.7".parse().unwrap();
        let other: IpAddr = "192.0.2.8".parse().unwrap();
        let t0 = Instant::now();
        throttle.failed(address, t0);
        throttle.failed(address, t0);
        assert_eq!(throttle.refused_for(address, t0), None);
        throttle.failed(address, t0 + Duration::from_secs(1));
        assert_eq!(
            throttle.refused_for(address, t0 + Duration::from_secs(11)),
            Some(Duration::from_secs(50))
        );
        assert_eq!(throttle.refused_for(other, t0), None);
        assert_eq!(
            throttle.refused_for(address, t0 + Duration::from_secs(61)),
            None
        );
    }

    #[test]
    fn failures_older_than_a_ban_are_forgotten_and_a_success_clears_them() {
        let throttle = AdminThrottle::new(2, Duration::from_secs(10));
        let address: IpAddr = "2001:db8::1".parse().unwrap();
        let t0 = Instant::now();
        throttle.failed(address, t0);
        throttle.failed(address, t0 + Duration::from_secs(20));
        assert_eq!(
            throttle.refused_for(address, t0 + Duration::from_secs(20)),
            None
        );
        throttle.succeeded(address);
        throttle.failed(address, t0 + Duration::from_secs(21));
        assert_eq!(
            throttle.refused_for(address, t0 + Duration::from_secs(21)),
            None
        );
    }

    #[test]
    fn the_table_stays_bounded() {
        let throttle = AdminThrottle::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        for i in 0..(MAX_ADDRESSES as u32 + 100) {
            throttle.failed(IpAddr::from(i.to_be_bytes()), t0);
        }
        assert!(throttle.records.lock().len() <= MAX_ADDRESSES);
    }
}
