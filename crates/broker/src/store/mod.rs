//! The store: what the broker must not forget across a restart, on disk.
//!
//! What is written: persistent sessions (their record, subscriptions, QoS 1/2 deliveries
//! queued or in flight, the QoS 2 deliveries past PUBREC, and the incoming QoS 2 packet
//! identifiers waiting for PUBREL), retained messages, and the bans and revocations made
//! through the admin API. What is not: sessions that end with
//! their connection, QoS 0 deliveries, `$SYS` topics.
//!
//! **Group commit.** Writers (connections, the deadline queue) append operations to a
//! pending batch and get a *ticket*: the number of the commit that will hold them. One
//! committer thread takes everything appended meanwhile, writes it as one atomic batch and
//! syncs it (`fsync = "always"`), then publishes that commit's number as durable. An
//! acknowledgement whose packet made writes waits until its ticket is durable
//! ([`Store::durable`], [`Store::watch_durable`]), so one sync covers every connection's
//! records: durability costs latency, not throughput.
//!
//! **Failure.** A commit or sync that fails is fatal: nothing more is acknowledged and the
//! process exits (a supervisor restarts it and recovery finds what was committed). It is
//! never retried: after a failed fsync the kernel may have dropped the dirty pages, and a
//! retry that succeeds would say data is on disk that is not.
//!
//! The store is fjall (an LSM tree with a journal), chosen by measurement against redb on
//! this workload (`bench/store-choice/RESULTS.md`): its commits are 3–5× shorter, and a
//! commit is what an acknowledgement waits for. `records.rs` holds the encoding of every key
//! and value; `recovery.rs` loads the store into a new broker.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fjall::{Database, Keyspace, PersistMode};
use parking_lot::{Condvar, Mutex};
use prometheus_client::metrics::histogram::Histogram;
use tokio::sync::watch;

use crate::config::{FsyncMode, PersistenceConfig, DEFAULT_INTERVAL_MS, DEFAULT_MIN_FREE_BYTES};
use crate::wake::SessionWake;

mod disk;
mod fold;
mod opening;
pub mod records;
pub mod recovery;

use fold::{Folded, Op};
pub use opening::{OpenError, Opened};
pub use recovery::Recovered;

/// The process's exit status when the store fails (a write or sync error).
pub const EXIT_STORE_FAILED: i32 = 74;

/// The buckets of latency histograms, seconds: 100 µs to 10 s.
pub const LATENCY_BUCKETS: [f64; 15] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    10.0,
];

/// How often the committer looks at the free space of the store's file system.
const DISK_CHECK_INTERVAL: Duration = Duration::from_secs(5);

/// The parts of the store, one keyspace each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Space {
    /// Persistent sessions by client identifier.
    Sessions,
    /// Subscriptions by session and filter.
    Subscriptions,
    /// QoS 1/2 deliveries by session and sequence number.
    Deliveries,
    /// Deliveries whose PUBREC came (PUBREL is what is sent again), by session and sequence.
    Released,
    /// Incoming QoS 2 packet identifiers waiting for PUBREL, by session and identifier.
    IncomingQos2,
    /// Retained messages by topic.
    Retained,
    /// Bans and revocations made through the admin API (`operator/records.rs`).
    Operator,
}

impl Space {
    const ALL: [Space; 7] = [
        Space::Sessions,
        Space::Subscriptions,
        Space::Deliveries,
        Space::Released,
        Space::IncomingQos2,
        Space::Retained,
        Space::Operator,
    ];

    fn name(self) -> &'static str {
        match self {
            Space::Sessions => "sessions",
            Space::Subscriptions => "subscriptions",
            Space::Deliveries => "deliveries",
            Space::Released => "released",
            Space::IncomingQos2 => "incoming_qos2",
            Space::Retained => "retained",
            Space::Operator => "operator",
        }
    }
}

/// Appended operations and how far commits have got.
#[derive(Debug, Default)]
struct Pending {
    ops: Vec<Op>,
    /// The number of the commit the operations appended now go into.
    filling: u64,
    /// Set when the store closes: the committer writes what is left and stops.
    closing: bool,
}

thread_local! {
    /// The highest ticket this thread was given since it last asked ([`take_ticket`]).
    static TICKET: Cell<u64> = const { Cell::new(0) };
}

/// The highest ticket of the writes this thread made since the last call, if it made any:
/// what an acknowledgement of the packet just handled must wait for. Handling a packet is
/// synchronous, so the writes a connection made for one packet are those of its thread
/// between two calls.
pub fn take_ticket() -> Option<u64> {
    let ticket = TICKET.with(|t| t.replace(0));
    (ticket > 0).then_some(ticket)
}

fn note_ticket(ticket: u64) {
    TICKET.with(|t| t.set(t.get().max(ticket)));
}

/// The open store.
pub struct Store {
    db: Database,
    spaces: Vec<Keyspace>,
    path: PathBuf,
    opened: Opened,
    mode: FsyncMode,
    pending: Mutex<Pending>,
    wake_committer: Condvar,
    durable: AtomicU64,
    durable_watch: watch::Sender<u64>,
    /// Connections waiting for a commit: woken once it is durable.
    waiters: Mutex<Vec<(u64, Arc<SessionWake>)>>,
    /// The file system has less free space than `min_free_bytes`.
    full: AtomicBool,
    committer: Mutex<Option<JoinHandle<()>>>,
    /// How long each commit took, its sync included (`/metrics`).
    commit_seconds: Histogram,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("durable", &self.durable)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store `config` names. A journal with a torn or corrupt tail is
    /// cut off there; a store that cannot be opened (damaged beyond what its journal
    /// recovery repairs) is moved aside, to `<path>.damaged-<unix seconds>`, and an empty one
    /// is created in its place: the broker always starts. Both are logged and kept in
    /// [`Store::opened`].
    pub fn open(config: &PersistenceConfig) -> Result<Arc<Store>, OpenError> {
        let path = config
            .path
            .clone()
            .expect("a store is opened only when persistence is on");
        let (db, spaces, opened) = opening::open_or_move_aside(&path)?;
        let (durable_watch, _) = watch::channel(0);
        let store = Arc::new(Store {
            db,
            spaces,
            path,
            opened,
            mode: config.fsync,
            pending: Mutex::new(Pending {
                filling: 1,
                ..Pending::default()
            }),
            wake_committer: Condvar::new(),
            durable: AtomicU64::new(0),
            durable_watch,
            waiters: Mutex::new(Vec::new()),
            full: AtomicBool::new(false),
            committer: Mutex::new(None),
            commit_seconds: Histogram::new(LATENCY_BUCKETS),
        });
        let interval = match config.fsync {
            FsyncMode::Interval => Some(Duration::from_millis(
                config.interval_ms.unwrap_or(DEFAULT_INTERVAL_MS).max(1),
            )),
            _ => None,
        };
        let min_free = config.min_free_bytes.unwrap_or(DEFAULT_MIN_FREE_BYTES);
        // Known before the first publish: the committer looks again every few seconds.
        if min_free > 0 {
            store.check_free_space(min_free);
        }
        let committer = Arc::clone(&store);
        let handle = std::thread::Builder::new()
            .name("tollgate-store".into())
            .spawn(move || committer.run_committer(interval, min_free))
            .map_err(|e| OpenError::Directory(store.path.clone(), e))?;
        *store.committer.lock() = Some(handle);
        Ok(store)
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What opening the store repaired: a journal tail cut off, a store moved aside.
    pub fn opened(&self) -> &Opened {
        &self.opened
    }

    /// When writes reach the disk.
    pub fn fsync_mode(&self) -> FsyncMode {
        self.mode
    }

    /// The number of the last commit that is durable (as the fsync mode defines it).
    pub fn durable(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Wakes `wake` once commit `ticket` is durable (at once if it is).
    pub fn wake_when_durable(&self, ticket: u64, wake: &Arc<SessionWake>) {
        let mut waiters = self.waiters.lock();
        if self.durable() >= ticket {
            drop(waiters);
            wake.notify();
            return;
        }
        waiters.push((ticket, Arc::clone(wake)));
    }

    /// Follows [`Store::durable`].
    pub fn watch_durable(&self) -> watch::Receiver<u64> {
        self.durable_watch.subscribe()
    }

    /// How long commits take, their sync included (a histogram for `/metrics`).
    pub fn commit_seconds(&self) -> &Histogram {
        &self.commit_seconds
    }

    /// Whether the file system is short of space: writes that can be refused are.
    pub fn is_full(&self) -> bool {
        self.full.load(Ordering::Relaxed)
    }

    /// Writes `value` under `key` in the next commit; returns that commit's ticket.
    pub fn put(&self, space: Space, key: Vec<u8>, value: Vec<u8>) -> u64 {
        self.append(Op::Put(space, key, value))
    }

    /// [`Store::put`] for a key that has never been in the store (a new delivery's sequence
    /// number): if it is deleted before the commit that would hold it, neither is written.
    pub fn insert_new(&self, space: Space, key: Vec<u8>, value: Vec<u8>) -> u64 {
        self.append(Op::Insert(space, key, value))
    }

    /// Deletes `key` in the next commit.
    pub fn delete(&self, space: Space, key: Vec<u8>) {
        self.append(Op::Delete(space, key));
    }

    /// Deletes every key starting with `prefix` in the next commit (those written before it,
    /// in this commit or earlier).
    pub fn delete_prefix(&self, space: Space, prefix: Vec<u8>) {
        self.append(Op::DeletePrefix(space, prefix));
    }

    fn append(&self, op: Op) -> u64 {
        let mut pending = self.pending.lock();
        let wake = pending.ops.is_empty();
        pending.ops.push(op);
        let ticket = pending.filling;
        drop(pending);
        note_ticket(ticket);
        if wake {
            self.wake_committer.notify_one();
        }
        ticket
    }

    /// Every record of `space`, in key order (recovery).
    pub(crate) fn scan(
        &self,
        space: Space,
    ) -> impl Iterator<Item = Result<(fjall::UserKey, fjall::UserValue), fjall::Error>> + '_ {
        self.keyspace(space).iter().map(|guard| guard.into_inner())
    }

    fn keyspace(&self, space: Space) -> &Keyspace {
        &self.spaces[Space::ALL
            .iter()
            .position(|s| *s == space)
            .expect("every space")]
    }

    /// Writes what is pending, waits for it to be durable, and stops the committer; then
    /// writes the in-memory tables out, so that the next start has no journal to replay.
    /// Called when the broker stops; later writes are lost.
    pub fn close(&self) {
        self.pending.lock().closing = true;
        self.wake_committer.notify_one();
        let Some(handle) = self.committer.lock().take() else {
            return;
        };
        let _ = handle.join();
        for keyspace in &self.spaces {
            if let Err(e) = keyspace.rotate_memtable_and_wait() {
                // Not fatal: the journal still holds what the table would have.
                tracing::warn!(store = %self.path.display(), error = %e, "the store's tables could not be written out at close: the next start replays the journal");
            }
        }
    }

    /// The committer: takes every pending operation, commits them as one batch, syncs as the
    /// mode says, and publishes the commit as durable. Syncs on its own every `interval`
    /// (`fsync = "interval"`), and checks the free space now and then.
    fn run_committer(&self, interval: Option<Duration>, min_free: u64) {
        let mut last_sync = Instant::now();
        let mut last_disk_check = Instant::now();
        let mut unsynced = false;
        loop {
            if min_free > 0 && last_disk_check.elapsed() >= DISK_CHECK_INTERVAL {
                self.check_free_space(min_free);
                last_disk_check = Instant::now();
            }
            let (ops, number, closing) = {
                let mut pending = self.pending.lock();
                while pending.ops.is_empty() && !pending.closing {
                    let wait = match interval {
                        Some(every) if unsynced => every.saturating_sub(last_sync.elapsed()),
                        _ => DISK_CHECK_INTERVAL,
                    };
                    if self.wake_committer.wait_for(&mut pending, wait).timed_out() {
                        break;
                    }
                }
                let number = pending.filling;
                if !pending.ops.is_empty() {
                    pending.filling += 1;
                }
                (std::mem::take(&mut pending.ops), number, pending.closing)
            };
            if !ops.is_empty() {
                let started = Instant::now();
                if let Err(e) = self.commit(ops) {
                    fail(&self.path, "commit", &e);
                }
                let synced = match self.mode {
                    FsyncMode::Always => true,
                    FsyncMode::Interval | FsyncMode::Never => false,
                };
                if synced {
                    if let Err(e) = self.db.persist(PersistMode::SyncData) {
                        fail(&self.path, "sync", &e);
                    }
                    last_sync = Instant::now();
                } else {
                    unsynced = true;
                }
                self.commit_seconds.observe(started.elapsed().as_secs_f64());
                self.publish_durable(number);
            }
            let sync_due = interval.is_some_and(|every| last_sync.elapsed() >= every);
            if unsynced && (sync_due || closing) {
                if let Err(e) = self.db.persist(PersistMode::SyncData) {
                    fail(&self.path, "sync", &e);
                }
                last_sync = Instant::now();
                unsynced = false;
            }
            if closing && self.pending.lock().ops.is_empty() {
                return;
            }
        }
    }

    /// Writes `ops` as one atomic batch, folded ([`fold::fold`]): a batch's items share
    /// one sequence number, so it must not hold a key twice.
    fn commit(&self, ops: Vec<Op>) -> Result<(), fjall::Error> {
        let folded = fold::fold(ops, |space, prefix| {
            self.keyspace(space)
                .prefix(prefix)
                .map(|guard| guard.key().map(|key| key.to_vec()))
                .collect()
        })?;
        let mut batch = self.db.batch();
        for ((space, key), value) in folded {
            let keyspace = self.keyspace(space);
            match value {
                Folded::New(value) | Folded::Put(value) => batch.insert(keyspace, key, value),
                Folded::Delete => batch.remove(keyspace, key),
            }
        }
        batch.commit()
    }

    /// Commit `number` is durable: say so, and wake whoever waited for it.
    fn publish_durable(&self, number: u64) {
        let due: Vec<Arc<SessionWake>> = {
            let mut waiters = self.waiters.lock();
            self.durable.store(number, Ordering::Release);
            let mut due = Vec::new();
            waiters.retain(|(ticket, wake)| {
                let ready = *ticket <= number;
                if ready {
                    due.push(Arc::clone(wake));
                }
                !ready
            });
            due
        };
        for wake in due {
            wake.notify();
        }
        self.durable_watch.send_replace(number);
    }

    fn check_free_space(&self, min_free: u64) {
        let Some(free) = disk::free_bytes(&self.path) else {
            return;
        };
        let full = free < min_free;
        let was = self.full.swap(full, Ordering::Relaxed);
        if full && !was {
            tracing::error!(store = %self.path.display(), free_bytes = free, min_free_bytes = min_free, "the store's disk is nearly full: publishes that need storage are refused until space is freed");
        } else if !full && was {
            tracing::warn!(store = %self.path.display(), free_bytes = free, "the store's disk has room again: publishes that need storage are accepted");
        }
    }
}

/// A write or sync failed: nothing more may be acknowledged. The process exits (a
/// supervisor restarts it; recovery finds what was committed).
fn fail(path: &Path, what: &str, error: &fjall::Error) -> ! {
    tracing::error!(store = %path.display(), error = %error, "the store's {what} failed: the broker stops acknowledging and exits (status {EXIT_STORE_FAILED}); restart it to recover what was committed");
    std::process::exit(EXIT_STORE_FAILED)
}
