//! Time values read from configuration files.
//!
//! A count of seconds (or milliseconds) in a file is added to the clock wherever it is used
//! (`Instant + Duration`), and that addition panics past the clock's range. Every such key is
//! therefore read through [`deserialize`] or [`deserialize_ms`], which refuse anything longer
//! than [`MAX_SECONDS`] (ten years) at load time, naming the file, line and key like any other
//! bad value. Both give a [`Duration`], so the unit is settled where the key is read and the
//! settings carry typed times from there on.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The longest time any configuration key may hold: ten years, in seconds.
pub const MAX_SECONDS: u64 = 10 * 366 * 86_400;

/// Reads a count of seconds, at most [`MAX_SECONDS`].
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let seconds = u64::deserialize(deserializer)?;
    if seconds > MAX_SECONDS {
        return Err(serde::de::Error::custom(format!(
            "{seconds} seconds is more than ten years ({MAX_SECONDS})"
        )));
    }
    Ok(Duration::from_secs(seconds))
}

/// Reads a count of milliseconds, at most [`MAX_SECONDS`] of them in seconds.
pub fn deserialize_ms<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    let ms = u64::deserialize(deserializer)?;
    if ms / 1000 > MAX_SECONDS {
        return Err(serde::de::Error::custom(format!(
            "{ms} milliseconds is more than ten years"
        )));
    }
    Ok(Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Holder {
        #[serde(deserialize_with = "super::deserialize")]
        timeout: std::time::Duration,
    }

    #[test]
    fn ten_years_is_accepted_and_more_is_refused() {
        let ok: Holder = toml::from_str(&format!("timeout = {}", super::MAX_SECONDS)).unwrap();
        assert_eq!(ok.timeout.as_secs(), super::MAX_SECONDS);
        let err = toml::from_str::<Holder>("timeout = 9223372036854775807")
            .err()
            .expect("refused");
        assert!(err.to_string().contains("more than ten years"), "{err}");
    }
}
