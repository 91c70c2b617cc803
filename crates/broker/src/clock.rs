//! The broker's clock. The protocol core (`connection/`, sessions, messages) never reads a
//! clock: it is given the time, as a `std::time::Instant`. The parts that run on tokio (the
//! driver, the deadline queue, the shared state when it stamps a will) read it here, from
//! tokio's clock, so a test that pauses tokio's time controls every deadline.

use std::time::Instant;

/// Now, on tokio's clock.
pub fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// `at`, as tokio's timers take it.
pub fn on_tokio(at: Instant) -> tokio::time::Instant {
    tokio::time::Instant::from_std(at)
}
