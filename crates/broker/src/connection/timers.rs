//! A connection's timers, as one table: each [`Timer`] is armed at an instant or not, the
//! earliest armed one is the connection's deadline, and the first due in the table's order is
//! the one handled (an expiry before a re-check before the keep alive). Instants are passed
//! in; the one clock read here is the wall clock in [`deadline_of`], which places a
//! credential's expiry date on the connection's clock.

use std::time::{Duration, Instant};

/// What a connection times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// CONNECT must arrive by then; or, during an authentication exchange, the answer to the
    /// broker's challenge (at CONNECT or at a re-authentication).
    Connect,
    /// The principal's credentials (a token's `exp`) end then.
    CredentialsExpiry,
    /// The credentials are checked again then.
    Recheck,
    /// One and a half keep-alive periods after the last packet: the client is gone.
    KeepAlive,
    /// A device grant's next poll of the token endpoint, or its token's renewal.
    DeviceGrant,
}

impl Timer {
    /// Every timer, in the order the due ones are handled.
    const ALL: [Timer; 5] = [
        Timer::Connect,
        Timer::CredentialsExpiry,
        Timer::Recheck,
        Timer::KeepAlive,
        Timer::DeviceGrant,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// When each timer fires, if it is armed.
#[derive(Debug, Default)]
pub(super) struct Timers([Option<Instant>; 5]);

impl Timers {
    /// Arms `timer` at `at`, or disarms it with `None`.
    pub(super) fn set(&mut self, timer: Timer, at: Option<Instant>) {
        self.0[timer.index()] = at;
    }

    /// When `timer` fires, if armed.
    pub(super) fn get(&self, timer: Timer) -> Option<Instant> {
        self.0[timer.index()]
    }

    /// Disarms every timer.
    pub(super) fn clear(&mut self) {
        self.0 = [None; 5];
    }

    /// The earliest instant any timer fires.
    pub(super) fn next(&self) -> Option<Instant> {
        self.0.iter().flatten().min().copied()
    }

    /// The first timer, in the table's order, that is due at `now`.
    pub(super) fn due(&self, now: Instant) -> Option<Timer> {
        Timer::ALL
            .into_iter()
            .find(|&timer| self.get(timer).is_some_and(|at| now >= at))
    }
}

/// The instant credentials valid until `expiry` (wall clock) end, on the clock of `now`;
/// `None` when they have already ended. A date too far ahead to represent is capped (at
/// about 136 years), never a panic.
pub(super) fn deadline_of(expiry: std::time::SystemTime, now: Instant) -> Option<Instant> {
    let left = expiry
        .duration_since(std::time::SystemTime::now())
        .unwrap_or_default();
    if left.is_zero() {
        return None;
    }
    Some(later(now, left))
}

/// `after` from `now`, capped (at about 136 years) rather than overflowing the clock.
pub(super) fn later(now: Instant, after: Duration) -> Instant {
    let capped = after.min(Duration::from_secs(u64::from(u32::MAX)));
    now.checked_add(capped)
        .unwrap_or(now + Duration::from_secs(86_400 * 365))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_the_earliest_armed_timer() {
        let now = Instant::now();
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.set(Timer::KeepAlive, Some(now + Duration::from_secs(15)));
        timers.set(Timer::Recheck, Some(now + Duration::from_secs(60)));
        assert_eq!(timers.next(), Some(now + Duration::from_secs(15)));
        timers.set(Timer::KeepAlive, None);
        assert_eq!(timers.next(), Some(now + Duration::from_secs(60)));
        timers.clear();
        assert_eq!(timers.next(), None);
    }

    #[test]
    fn of_timers_due_together_the_expiry_comes_first_and_the_keep_alive_last() {
        let now = Instant::now();
        let mut timers = Timers::default();
        timers.set(Timer::KeepAlive, Some(now));
        timers.set(Timer::Recheck, Some(now));
        assert_eq!(timers.due(now - Duration::from_secs(1)), None);
        assert_eq!(timers.due(now), Some(Timer::Recheck));
        timers.set(Timer::CredentialsExpiry, Some(now + Duration::from_secs(1)));
        assert_eq!(timers.due(now), Some(Timer::Recheck));
        assert_eq!(
            timers.due(now + Duration::from_secs(1)),
            Some(Timer::CredentialsExpiry)
        );
        timers.set(Timer::Recheck, None);
        timers.set(Timer::CredentialsExpiry, None);
        assert_eq!(timers.due(now), Some(Timer::KeepAlive));
    }

    #[test]
    fn deadlines_far_ahead_are_capped_not_a_panic() {
        let now = Instant::now();
        let far = std::time::SystemTime::UNIX_EPOCH
            .checked_add(Duration::from_secs(u64::from(u32::MAX) * 1000))
            .unwrap();
        assert!(deadline_of(far, now).is_some());
        assert!(deadline_of(std::time::SystemTime::UNIX_EPOCH, now).is_none());
    }
}
