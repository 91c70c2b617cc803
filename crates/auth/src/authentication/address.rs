//! Client addresses as limits see them, and counts of things held per address.
//!
//! One IPv6 host usually has a whole /64 to pick addresses from, so an IPv6 address counts by
//! its /64 prefix; an IPv4 address (also when mapped into IPv6) counts as itself.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;

/// The key an address is counted and throttled under: IPv4 as is, IPv6 by its /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressKey(IpAddr);

impl AddressKey {
    /// The key of `address`.
    pub fn of(address: IpAddr) -> AddressKey {
        match address {
            IpAddr::V4(v4) => AddressKey(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => AddressKey(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    AddressKey(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl std::fmt::Display for AddressKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// How many of something each address holds, and in all, each under a limit.
#[derive(Debug)]
pub struct HeldPerAddress {
    per_address: AtomicUsize,
    total: AtomicUsize,
    held: Mutex<(usize, HashMap<AddressKey, usize>)>,
    /// Woken when the last hold is released.
    none_held: tokio::sync::Notify,
}

/// A limit as stored: 0 (none) is the largest count.
fn unlimited(n: usize) -> usize {
    if n == 0 {
        usize::MAX
    } else {
        n
    }
}

/// Why [`HeldPerAddress::try_hold`] refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldRefused {
    /// The address holds its most.
    Address,
    /// Everyone together holds the most.
    Total,
}

impl HeldPerAddress {
    /// Limits of `per_address` per address and `total` in all (0: no limit).
    pub fn new(per_address: usize, total: usize) -> Arc<HeldPerAddress> {
        Arc::new(HeldPerAddress {
            per_address: AtomicUsize::new(unlimited(per_address)),
            total: AtomicUsize::new(unlimited(total)),
            held: Mutex::new((0, HashMap::new())),
            none_held: tokio::sync::Notify::new(),
        })
    }

    /// Changes the limits (0: no limit). What is held stays held; a holder above a lowered
    /// limit is refused more until it is back under it.
    pub fn set_limits(&self, per_address: usize, total: usize) {
        self.per_address
            .store(unlimited(per_address), Ordering::Relaxed);
        self.total.store(unlimited(total), Ordering::Relaxed);
    }

    /// One more for `address`, if the limits allow; released when the returned hold drops.
    pub fn try_hold(self: &Arc<Self>, address: IpAddr) -> Result<Held, HoldRefused> {
        let key = AddressKey::of(address);
        let mut held = self.held.lock();
        if held.0 >= self.total.load(Ordering::Relaxed) {
            return Err(HoldRefused::Total);
        }
        let count = held.1.entry(key).or_insert(0);
        if *count >= self.per_address.load(Ordering::Relaxed) {
            return Err(HoldRefused::Address);
        }
        *count += 1;
        held.0 += 1;
        Ok(Held {
            counts: Arc::clone(self),
            key,
        })
    }

    /// How many are held in all.
    pub fn total(&self) -> usize {
        self.held.lock().0
    }

    /// Waits until nothing is held (at once if nothing is).
    pub async fn none_held(&self) {
        loop {
            let mut released = std::pin::pin!(self.none_held.notified());
            released.as_mut().enable();
            if self.total() == 0 {
                return;
            }
            released.await;
        }
    }
}

/// One held unit; dropping it gives it back.
#[derive(Debug)]
pub struct Held {
    counts: Arc<HeldPerAddress>,
    key: AddressKey,
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut held = self.counts.held.lock();
        held.0 -= 1;
        if held.0 == 0 {
            self.counts.none_held.notify_waiters();
        }
        if let Some(count) = held.1.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                held.1.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_counts_by_its_64_prefix_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(AddressKey::of(a), AddressKey::of(b));
        assert_ne!(AddressKey::of(a), AddressKey::of(other));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            AddressKey::of(mapped),
            AddressKey::of("10.0.0.1".parse().unwrap())
        );
        assert_eq!(AddressKey::of(a).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn holds_are_limited_per_address_and_in_all_and_given_back() {
        let counts = HeldPerAddress::new(2, 3);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let one = counts.try_hold(a).unwrap();
        let _two = counts.try_hold(a).unwrap();
        assert_eq!(counts.try_hold(a).unwrap_err(), HoldRefused::Address);
        let _three = counts.try_hold(b).unwrap();
        assert_eq!(counts.try_hold(b).unwrap_err(), HoldRefused::Total);
        drop(one);
        let _four = counts.try_hold(b).expect("given back");
        assert_eq!(counts.total(), 3);
    }

    #[test]
    fn waiting_for_none_held_ends_with_the_last_release() {
        use std::future::Future;
        use std::task::{Context, Waker};
        let counts = HeldPerAddress::new(0, 0);
        let mut cx = Context::from_waker(Waker::noop());
        assert!(std::pin::pin!(counts.none_held()).poll(&mut cx).is_ready());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let (one, two) = (counts.try_hold(a).unwrap(), counts.try_hold(a).unwrap());
        let mut waiting = std::pin::pin!(counts.none_held());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        drop(one);
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        drop(two);
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
    }
}
