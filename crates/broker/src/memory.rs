//! The broker-wide memory budget, and what the broker gives up, in order, as it fills.
//!
//! Every byte a client can make the broker hold is charged here: messages (once each, for as
//! long as any session, in-flight window or the retained store holds them), each queued or
//! in-flight delivery, and every connection's buffers. As the charge grows past fixed shares
//! of the limit, the broker degrades in a stated order:
//!
//! 1. at 70 %: QoS 0 deliveries are shed (not queued);
//! 2. at 85 %: publishes are refused (5.0: PUBACK/PUBREC 0x97; 3.x: the connection is closed,
//!    3.x having no negative acknowledgement; QoS 0 publishes are dropped), and a connection
//!    receiving a large packet is closed;
//! 3. at 100 %: new connections are refused (CONNACK 0x97 for 5.0, 3 for 3.x).
//!
//! Each shed or refusal is counted, and logged at most once per [`LOG_INTERVAL`] with the
//! count since the last line, so a flood cannot flood the log too.
//!
//! Charges are made on every message and delivery, from every worker thread: one shared
//! counter written each time would bounce its cache line between cores on every message. So
//! each thread sums its charges locally and adds them to the shared counter once they reach
//! [`MemoryBudget::batch`] bytes either way (at most 64 KiB, and at most 1/256 of the limit):
//! the shared figure is exact to within that much per thread.

use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use std::time::{Duration, Instant};

/// The most bytes a thread charges or releases before it reports them.
const MAX_BATCH: usize = 64 * 1024;

/// How often an overload log line may be written, per kind.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How full the budget is, as the stages the broker acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pressure {
    /// Below 70 %: nothing is given up.
    Normal,
    /// 70 % or more: QoS 0 deliveries are shed.
    ShedQos0,
    /// 85 % or more: publishes are refused too.
    RefusePublishes,
    /// 100 % or more: new connections are refused too.
    RefuseConnections,
}

/// What the broker gave up, counted (for `$SYS` and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overload {
    /// A QoS 0 delivery was not queued.
    ShedQos0,
    /// A publish was refused.
    PublishRefused,
    /// A new connection was refused.
    ConnectionRefused,
    /// A message was dropped at a session's full queue (count or bytes).
    QueueFull,
    /// A new retained message was refused (retained store full).
    RetainedFull,
    /// A connection was refused by a connection limit or the connection rate.
    ConnectionLimited,
    /// An authentication was refused because too many were waiting.
    AuthenticationsBusy,
    /// An attempt was refused by the failed-login throttle.
    Throttled,
}

const KINDS: usize = 8;

impl Overload {
    /// Every kind.
    pub const ALL: [Overload; KINDS] = [
        Overload::ShedQos0,
        Overload::PublishRefused,
        Overload::ConnectionRefused,
        Overload::QueueFull,
        Overload::RetainedFull,
        Overload::ConnectionLimited,
        Overload::AuthenticationsBusy,
        Overload::Throttled,
    ];

    fn index(self) -> usize {
        self as usize
    }

    /// The kind as a metric label.
    pub fn label(self) -> &'static str {
        match self {
            Overload::ShedQos0 => "qos0_shed",
            Overload::PublishRefused => "publish_refused_memory",
            Overload::ConnectionRefused => "connection_refused_memory",
            Overload::QueueFull => "queue_full",
            Overload::RetainedFull => "retained_full",
            Overload::ConnectionLimited => "connection_limited",
            Overload::AuthenticationsBusy => "authentications_busy",
            Overload::Throttled => "throttled",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Overload::ShedQos0 => "QoS 0 deliveries shed (memory budget)",
            Overload::PublishRefused => "publishes refused (memory budget)",
            Overload::ConnectionRefused => "connections refused (memory budget)",
            Overload::QueueFull => "messages dropped at full session queues",
            Overload::RetainedFull => "retained messages refused (retained store full)",
            Overload::ConnectionLimited => "connections refused by connection limits",
            Overload::AuthenticationsBusy => {
                "connections refused: too many authentications waiting"
            }
            Overload::Throttled => "logins refused by the failed-login throttle",
        }
    }
}

/// A counter that also writes one log line per interval with what it counted meanwhile.
#[derive(Debug, Default)]
struct CountedLog {
    total: AtomicU64,
    unlogged: AtomicU64,
    /// Milliseconds since the budget's start at which the next line may be written.
    next_log_ms: AtomicU64,
}

/// The broker-wide memory budget.
#[derive(Debug)]
pub struct MemoryBudget {
    /// Names the budget for the [`Charge`]s made to it (see [`BUDGETS`]).
    id: u64,
    limit: usize,
    /// Bytes charged, as the threads have reported them (see [`LocalCharges`]); signed, since
    /// one thread may report a release before another reports the charge.
    used: AtomicIsize,
    peak: AtomicUsize,
    batch: isize,
    /// The charges (in bytes) at which [`Pressure`] moves to its next three stages.
    thresholds: [isize; 3],
    started: Instant,
    counts: [CountedLog; KINDS],
}

impl MemoryBudget {
    /// A budget of `limit` bytes; 0 means no limit (nothing is ever shed for memory).
    pub fn new(limit: usize) -> Arc<MemoryBudget> {
        let batch = match limit {
            0 => MAX_BATCH,
            limit => (limit / 256).clamp(1, MAX_BATCH),
        };
        let budget = Arc::new(MemoryBudget {
            id: NEXT_BUDGET_ID.fetch_add(1, Ordering::Relaxed),
            limit,
            used: AtomicIsize::new(0),
            peak: AtomicUsize::new(0),
            batch: batch as isize,
            thresholds: [70, 85, 100].map(|percent| {
                isize::try_from(limit as u128 * percent / 100).unwrap_or(isize::MAX)
            }),
            started: Instant::now(),
            counts: Default::default(),
        });
        let mut budgets = BUDGETS.lock();
        budgets.retain(|(_, live)| live.strong_count() > 0);
        budgets.push((budget.id, Arc::downgrade(&budget)));
        drop(budgets);
        budget
    }

    /// The limit in bytes (0: none).
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes charged now: what the threads have reported, with the calling thread's own
    /// charges not yet reported (other threads' are off by at most [`MemoryBudget::batch`]
    /// each).
    pub fn used(&self) -> usize {
        let local = LOCAL.with(|local| local.pending_for(self));
        let reported = self.used.load(Ordering::Relaxed);
        usize::try_from(reported + local).unwrap_or(0)
    }

    /// The most bytes charged at any time since start (as reported).
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    /// Bytes a thread may charge or release before it reports them.
    pub fn batch(&self) -> usize {
        self.batch as usize
    }

    /// Charges `bytes`.
    pub fn charge(self: &Arc<Self>, bytes: usize) {
        self.add(bytes as isize);
    }

    /// Releases `bytes` charged before.
    pub fn release(self: &Arc<Self>, bytes: usize) {
        self.add(-(bytes as isize));
    }

    /// Adds `delta` to this thread's batch (straight to the shared counter while the thread
    /// is ending and its batch is gone).
    fn add(self: &Arc<Self>, delta: isize) {
        if delta != 0 && LOCAL.try_with(|local| local.add(self, delta)).is_err() {
            self.report(delta);
        }
    }

    /// Adds `delta` to the shared counter.
    fn report(&self, delta: isize) {
        let now = self.used.fetch_add(delta, Ordering::Relaxed) + delta;
        let now = usize::try_from(now).unwrap_or(0);
        if now > self.peak.load(Ordering::Relaxed) {
            self.peak.fetch_max(now, Ordering::Relaxed);
        }
    }

    /// Moves a running charge from `*charged` to `now` bytes (for buffers that grow and
    /// shrink).
    pub fn adjust(self: &Arc<Self>, charged: &mut usize, now: usize) {
        if now > *charged {
            self.charge(now - *charged);
        } else {
            self.release(*charged - now);
        }
        *charged = now;
    }

    /// How full the budget is, as the threads have reported it (asked on every delivery, so
    /// it does not add the calling thread's unreported charges: the figure is exact to within
    /// [`MemoryBudget::batch`] per thread either way).
    pub fn pressure(&self) -> Pressure {
        if self.limit == 0 {
            return Pressure::Normal;
        }
        let used = self.used.load(Ordering::Relaxed);
        let [shed, refuse_publishes, refuse_connections] = self.thresholds;
        if used >= refuse_connections {
            Pressure::RefuseConnections
        } else if used >= refuse_publishes {
            Pressure::RefusePublishes
        } else if used >= shed {
            Pressure::ShedQos0
        } else {
            Pressure::Normal
        }
    }

    /// Counts one `what`, and logs the count since the last line if the interval has passed.
    pub fn record(&self, what: Overload) {
        let entry = &self.counts[what.index()];
        entry.total.fetch_add(1, Ordering::Relaxed);
        entry.unlogged.fetch_add(1, Ordering::Relaxed);
        let now_ms = self.started.elapsed().as_millis() as u64;
        let next = entry.next_log_ms.load(Ordering::Relaxed);
        if now_ms < next {
            return;
        }
        let following = now_ms + LOG_INTERVAL.as_millis() as u64;
        if entry
            .next_log_ms
            .compare_exchange(next, following, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            let count = entry.unlogged.swap(0, Ordering::Relaxed);
            tracing::warn!(
                count,
                total = entry.total.load(Ordering::Relaxed),
                used = self.used(),
                limit = self.limit,
                "{} (count since the last such line)",
                what.describe()
            );
        }
    }

    /// How many `what` have happened since start.
    pub fn count(&self, what: Overload) -> u64 {
        self.counts[what.index()].total.load(Ordering::Relaxed)
    }
}

thread_local! {
    /// This thread's charges not yet reported to their budget.
    static LOCAL: LocalCharges = const {
        LocalCharges {
            current_id: Cell::new(0),
            current_batch: Cell::new(0),
            pending: Cell::new(0),
            budget: RefCell::new(None),
        }
    };
}

/// One thread's charges not yet reported, for the budget it charged last (a process has one
/// broker, so one budget, unless it embeds several: then a change of budget reports first).
///
/// Charging the same budget again touches only cells; the `Arc` that keeps the budget alive
/// for the report is taken only when the budget changes.
struct LocalCharges {
    /// The id of the budget `pending` belongs to (0: none yet).
    current_id: Cell<u64>,
    /// That budget's batch.
    current_batch: Cell<isize>,
    pending: Cell<isize>,
    /// Keeps the current budget alive until its charges are reported.
    budget: RefCell<Option<Arc<MemoryBudget>>>,
}

impl LocalCharges {
    fn add(&self, budget: &Arc<MemoryBudget>, delta: isize) {
        if self.current_id.get() != budget.id {
            self.flush();
            self.current_id.set(budget.id);
            self.current_batch.set(budget.batch);
            *self.budget.borrow_mut() = Some(Arc::clone(budget));
        }
        self.bump(delta);
    }

    /// Releases `bytes` to the budget named `id`: counted here if it is this thread's current
    /// budget (the usual case), otherwise found among the live budgets (a budget that is gone
    /// needs no release).
    fn release_to(&self, id: u64, bytes: usize) {
        if self.current_id.get() == id {
            self.bump(-(bytes as isize));
        } else if let Some(budget) = find_budget(id) {
            self.add(&budget, -(bytes as isize));
        }
    }

    /// Adds `delta` to the current budget's pending charges, reporting them at a batch.
    fn bump(&self, delta: isize) {
        let pending = self.pending.get() + delta;
        self.pending.set(pending);
        if pending.abs() >= self.current_batch.get() {
            self.flush();
        }
    }

    fn pending_for(&self, budget: &MemoryBudget) -> isize {
        if self.current_id.get() == budget.id {
            self.pending.get()
        } else {
            0
        }
    }

    fn flush(&self) {
        let pending = self.pending.replace(0);
        if pending != 0 {
            if let Some(budget) = self.budget.borrow().as_ref() {
                budget.report(pending);
            }
        }
    }
}

impl Drop for LocalCharges {
    /// A thread that ends reports what it still holds.
    fn drop(&mut self) {
        self.flush();
    }
}

/// Where the next budget's id comes from (ids start at 1; 0 is "none").
static NEXT_BUDGET_ID: AtomicU64 = AtomicU64::new(1);

/// Every live budget by id, for the rare release made on a thread whose current budget is
/// another one. Dead entries are dropped whenever a budget is made.
static BUDGETS: Mutex<Vec<(u64, Weak<MemoryBudget>)>> = Mutex::new(Vec::new());

/// The live budget named `id`, if there is one.
fn find_budget(id: u64) -> Option<Arc<MemoryBudget>> {
    BUDGETS
        .lock()
        .iter()
        .find(|(live, _)| *live == id)
        .and_then(|(_, budget)| budget.upgrade())
}

/// Bytes charged to a budget for as long as this lives.
///
/// It names its budget by id rather than holding an `Arc`: a charge is made and dropped with
/// every message, on every worker thread, and a shared reference count would be written by all
/// of them each time.
#[derive(Debug)]
pub struct Charge {
    budget: u64,
    bytes: usize,
}

impl Charge {
    /// Charges `bytes` to `budget` until the charge is dropped.
    pub fn new(budget: &Arc<MemoryBudget>, bytes: usize) -> Charge {
        budget.charge(bytes);
        Charge {
            budget: budget.id,
            bytes,
        }
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        if self.bytes == 0 {
            return;
        }
        // A charge dropped while the thread itself is ending goes straight to its budget.
        if LOCAL
            .try_with(|local| local.release_to(self.budget, self.bytes))
            .is_err()
        {
            if let Some(budget) = find_budget(self.budget) {
                budget.report(-(self.bytes as isize));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pressure_rises_in_the_stated_order() {
        let budget = MemoryBudget::new(1000);
        assert_eq!(budget.pressure(), Pressure::Normal);
        budget.charge(700);
        assert_eq!(budget.pressure(), Pressure::ShedQos0);
        budget.charge(150);
        assert_eq!(budget.pressure(), Pressure::RefusePublishes);
        budget.charge(150);
        assert_eq!(budget.pressure(), Pressure::RefuseConnections);
        budget.release(1000);
        assert_eq!(budget.pressure(), Pressure::Normal);
        assert_eq!(MemoryBudget::new(0).pressure(), Pressure::Normal);
    }

    #[test]
    fn a_charge_is_released_when_dropped_and_adjust_tracks_a_buffer() {
        let budget = MemoryBudget::new(0);
        let charge = Charge::new(&budget, 42);
        assert_eq!(budget.used(), 42);
        drop(charge);
        assert_eq!(budget.used(), 0);
        let mut charged = 0;
        budget.adjust(&mut charged, 100);
        budget.adjust(&mut charged, 30);
        assert_eq!((budget.used(), charged), (30, 30));
    }

    #[test]
    fn a_charge_dropped_on_a_thread_charging_another_budget_is_released_to_its_own() {
        let first = MemoryBudget::new(0);
        let second = MemoryBudget::new(0);
        let charge = Charge::new(&first, 5000);
        second.charge(10);
        drop(charge);
        assert_eq!((first.used(), second.used()), (0, 10));
        let elsewhere = Charge::new(&first, 300);
        std::thread::spawn(move || drop(elsewhere))
            .join()
            .expect("the other thread ends");
        assert_eq!(
            first.used(),
            0,
            "released from a thread that never charged it"
        );
        let orphan = Charge::new(&second, 1);
        drop(second);
        drop(orphan);
    }

    #[test]
    fn records_are_counted_every_time() {
        let budget = MemoryBudget::new(10);
        for _ in 0..5 {
            budget.record(Overload::ShedQos0);
        }
        assert_eq!(budget.count(Overload::ShedQos0), 5);
        assert_eq!(budget.count(Overload::PublishRefused), 0);
    }
}
