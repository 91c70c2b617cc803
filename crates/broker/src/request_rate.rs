//! How often one principal (a token request) or one address (a device grant) may ask: a
//! bucket per key, refilled continuously (`max_requests_per_minute`, a burst of as many),
//! the keys followed bounded.

use std::collections::HashMap;
use std::time::{Duration, Instant};

const MINUTE: Duration = Duration::from_secs(60);

/// One principal's requests left, as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// The request buckets of every principal that asked recently.
#[derive(Debug)]
pub struct RequestRate {
    per_minute: f64,
    most_tracked: usize,
    buckets: HashMap<String, Bucket>,
}

impl RequestRate {
    /// `per_minute` requests a principal (a burst of as many), at most `most_tracked`
    /// principals followed at once.
    pub fn new(per_minute: u32, most_tracked: usize) -> RequestRate {
        RequestRate {
            per_minute: f64::from(per_minute),
            most_tracked,
            buckets: HashMap::new(),
        }
    }

    fn level(&self, bucket: &Bucket, now: Instant) -> f64 {
        let refill = now.saturating_duration_since(bucket.at).as_secs_f64() / MINUTE.as_secs_f64()
            * self.per_minute;
        (bucket.tokens + refill).min(self.per_minute)
    }

    /// Whether `principal` may make one more request at `now` (taking it if so).
    pub fn take(&mut self, principal: &str, now: Instant) -> bool {
        if self.per_minute < 1.0 {
            return false;
        }
        if !self.buckets.contains_key(principal) && self.buckets.len() >= self.most_tracked {
            // Forget the principals whose bucket has refilled: they are as good as new.
            let full = self.per_minute;
            let buckets = std::mem::take(&mut self.buckets);
            self.buckets = buckets
                .into_iter()
                .filter(|(_, b)| self.level(b, now) < full)
                .collect();
            if self.buckets.len() >= self.most_tracked {
                return false;
            }
        }
        let level = match self.buckets.get(principal) {
            Some(bucket) => self.level(bucket, now),
            None => self.per_minute,
        };
        let allowed = level >= 1.0;
        self.buckets.insert(
            principal.to_owned(),
            Bucket {
                tokens: if allowed { level - 1.0 } else { level },
                at: now,
            },
        );
        allowed
    }

    /// Principals followed now.
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_of_the_minute_then_one_per_refill() {
        let start = Instant::now();
        let mut rate = RequestRate::new(3, 10);
        for _ in 0..3 {
            assert!(rate.take("alice", start));
        }
        assert!(!rate.take("alice", start), "the fourth in the same instant");
        assert!(
            rate.take("bob", start),
            "another principal has its own bucket"
        );
        assert!(!rate.take("alice", start + Duration::from_secs(19)));
        assert!(
            rate.take("alice", start + Duration::from_secs(21)),
            "a third of a minute refills one"
        );
    }

    #[test]
    fn zero_refuses_everything() {
        let mut rate = RequestRate::new(0, 10);
        assert!(!rate.take("alice", Instant::now()));
    }

    #[test]
    fn the_tracked_principals_are_bounded_and_refilled_ones_forgotten() {
        let start = Instant::now();
        let mut rate = RequestRate::new(2, 2);
        assert!(rate.take("a", start));
        assert!(rate.take("b", start));
        assert!(!rate.take("c", start), "full, and nobody has refilled");
        assert_eq!(rate.tracked(), 2);
        let later = start + Duration::from_secs(60);
        assert!(rate.take("c", later), "a and b refilled and were forgotten");
        assert_eq!(rate.tracked(), 1);
    }
}
