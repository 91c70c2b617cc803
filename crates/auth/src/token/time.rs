//! Times from numbers a token or a provider sent: a claim's `exp` or `nbf`, an introspection
//! answer's, a webhook's `expires_at` or `expires_in`. The numbers are hostile: any size, any
//! JSON type. `UNIX_EPOCH + Duration::from_secs(n)` and `SystemTime::now() + …` panic when
//! the sum does not fit, so every conversion here is checked.
//!
//! The choice: a NumericDate (RFC 7519: seconds since the epoch) must be a non-negative
//! number (an integer, or a finite float, rounded down so an expiry is never later than sent);
//! anything else (a negative number, a float too large for 64 bits such as `1e300`, a string,
//! an array, an object) is refused by the caller, and `null` counts as absent. A valid date too
//! far ahead (up to `u64::MAX` seconds, which `SystemTime` cannot even hold) is taken as
//! [`MAX_EXPIRY`] from now: "far in the future", kept representable so that the broker's own
//! arithmetic on it (an `Instant` for the disconnect at expiry) cannot overflow either.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// The furthest ahead an expiry may lie: 100 years (of 365.25 days). A later one is taken as
/// this far from now.
pub const MAX_EXPIRY: Duration = Duration::from_secs(3_155_760_000);

/// The latest expiry accepted at `now`. Should even that not fit in a `SystemTime` (a clock
/// set absurdly far ahead), `now` itself: the credentials expire at once (fail closed).
fn latest(now: SystemTime) -> SystemTime {
    now.checked_add(MAX_EXPIRY).unwrap_or(now)
}

/// The time `secs` seconds after the epoch, at most [`MAX_EXPIRY`] after `now`.
pub(crate) fn at_unix_secs(secs: u64, now: SystemTime) -> SystemTime {
    let cap = latest(now);
    match UNIX_EPOCH.checked_add(Duration::from_secs(secs)) {
        Some(at) if at <= cap => at,
        _ => cap,
    }
}

/// The time `secs` seconds after `now`, at most [`MAX_EXPIRY`] after it.
pub(crate) fn after_secs(secs: u64, now: SystemTime) -> SystemTime {
    now.checked_add(Duration::from_secs(secs).min(MAX_EXPIRY))
        .unwrap_or_else(|| latest(now))
}

/// A NumericDate field (`exp`, `nbf`) as whole seconds since the epoch: `Ok(None)` when absent
/// or `null`, `Err` (saying why, never the value) when it is not a non-negative number that
/// fits 64 bits.
pub(crate) fn numeric_date(value: Option<&Value>) -> Result<Option<u64>, &'static str> {
    let number = match value {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Number(n)) => n,
        Some(_) => return Err("not a number"),
    };
    if let Some(secs) = number.as_u64() {
        return Ok(Some(secs));
    }
    if number.is_i64() {
        return Err("negative");
    }
    match number.as_f64() {
        // `u64::MAX as f64` is 2^64 exactly; anything below it floors into a u64.
        Some(f) if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 => Ok(Some(f.floor() as u64)),
        Some(f) if f < 0.0 => Err("negative"),
        _ => Err("too large"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(1_800_000_000)
    }

    #[test]
    fn dates_too_far_ahead_are_capped_at_a_hundred_years() {
        let cap = now() + MAX_EXPIRY;
        assert_eq!(at_unix_secs(u64::MAX, now()), cap);
        assert_eq!(at_unix_secs(i64::MAX as u64, now()), cap);
        assert_eq!(after_secs(u64::MAX, now()), cap);
        assert_eq!(
            at_unix_secs(1_800_000_600, now()),
            UNIX_EPOCH + Duration::from_secs(1_800_000_600)
        );
        assert_eq!(after_secs(60, now()), now() + Duration::from_secs(60));
        assert_eq!(at_unix_secs(0, now()), UNIX_EPOCH);
    }

    #[test]
    fn a_clock_at_the_end_of_time_expires_everything_at_once() {
        let Some(end) = UNIX_EPOCH.checked_add(Duration::from_secs(i64::MAX as u64)) else {
            return; // a platform whose SystemTime is narrower: nothing to check
        };
        assert_eq!(at_unix_secs(u64::MAX, end), end);
        assert_eq!(after_secs(u64::MAX, end), end);
    }

    #[test]
    fn only_non_negative_numbers_are_numeric_dates() {
        let date = |v: Value| numeric_date(Some(&v));
        assert_eq!(numeric_date(None), Ok(None));
        assert_eq!(date(json!(null)), Ok(None));
        assert_eq!(date(json!(u64::MAX)), Ok(Some(u64::MAX)));
        assert_eq!(date(json!(i64::MAX)), Ok(Some(i64::MAX as u64)));
        assert_eq!(date(json!(1_800_000_000.9)), Ok(Some(1_800_000_000)));
        assert_eq!(date(json!(0)), Ok(Some(0)));
        assert!(date(json!(-1)).is_err());
        assert!(date(json!(i64::MIN)).is_err());
        assert!(date(json!(-0.5)).is_err());
        assert!(date(json!(1e300)).is_err());
        assert!(date(json!(18_446_744_073_709_551_616.0)).is_err());
        assert!(date(json!("1800000000")).is_err());
        assert!(date(json!([1])).is_err());
        assert!(date(json!({"exp": 1})).is_err());
        assert!(date(json!(true)).is_err());
    }
}
