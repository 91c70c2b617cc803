//! The durability workload (issue 12) on candidate embedded stores, to choose one by
//! measurement.
//!
//!     cargo run --release -- --store redb  --writers 100 --records 100000 --size 256
//!     cargo run --release -- --store fjall --writers 100 --records 100000 --size 256
//!
//! `writers` threads stand for connections publishing QoS 1 messages to persistent sessions:
//! each appends one record (key: writer and sequence number, value: `size` bytes) and waits
//! until the commit that holds it is on disk, as a PUBACK would. One committer thread takes
//! everything appended meanwhile and writes it in one transaction with one fsync (group
//! commit); the same transaction deletes the records of the previous commit (they stand for
//! messages delivered and acknowledged since). At the end a tenth of the records are left in
//! the store, the store is closed, and reopening it and reading every record back is timed
//! (what recovery will cost). `--scan-only yes` only reopens and scans a store left by a run
//! that was killed (`kill -9` in the middle of commits: does it open, and what is in it).
//!
//! Printed: acknowledged records per second, commits per second, records per commit, commit
//! latency (p50, p99, max, each an fsync'd transaction), the store's size on disk after the
//! run, and the reopen-and-scan time.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// What a candidate store must do for the workload.
trait Store: Send {
    /// Writes `inserts` and removes `removes` in one transaction, durably (fsync) on return.
    fn commit(&mut self, inserts: &[(Vec<u8>, Vec<u8>)], removes: &[Vec<u8>]);
    /// How many records a fresh open of the store at `dir` finds, reading every one.
    fn reopen_and_scan(dir: &Path) -> usize
    where
        Self: Sized;
}

mod redb_store {
    use super::*;
    use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

    const MESSAGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("messages");

    pub struct RedbStore(Database);

    impl RedbStore {
        pub fn open(dir: &Path) -> RedbStore {
            std::fs::create_dir_all(dir).unwrap();
            RedbStore(Database::create(dir.join("store.redb")).unwrap())
        }
    }

    impl Store for RedbStore {
        fn commit(&mut self, inserts: &[(Vec<u8>, Vec<u8>)], removes: &[Vec<u8>]) {
            let txn = self.0.begin_write().unwrap();
            {
                let mut table = txn.open_table(MESSAGES).unwrap();
                for (key, value) in inserts {
                    table.insert(key.as_slice(), value.as_slice()).unwrap();
                }
                for key in removes {
                    table.remove(key.as_slice()).unwrap();
                }
            }
            // redb's default durability is Immediate: commit returns once the data is synced.
            txn.commit().unwrap();
        }

        fn reopen_and_scan(dir: &Path) -> usize {
            let db = Database::create(dir.join("store.redb")).unwrap();
            let txn = db.begin_read().unwrap();
            let table = txn.open_table(MESSAGES).unwrap();
            let mut n = 0;
            for entry in table.iter().unwrap() {
                let (_, value) = entry.unwrap();
                std::hint::black_box(value.value().len());
                n += 1;
            }
            n
        }
    }
}

mod fjall_store {
    use super::*;
    use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

    pub struct FjallStore {
        db: Database,
        messages: Keyspace,
    }

    impl FjallStore {
        pub fn open(dir: &Path) -> FjallStore {
            let db = Database::builder(dir).open().unwrap();
            let messages = db
                .keyspace("messages", KeyspaceCreateOptions::default)
                .unwrap();
            FjallStore { db, messages }
        }
    }

    impl Store for FjallStore {
        fn commit(&mut self, inserts: &[(Vec<u8>, Vec<u8>)], removes: &[Vec<u8>]) {
            let mut batch = self.db.batch();
            for (key, value) in inserts {
                batch.insert(&self.messages, key.as_slice(), value.as_slice());
            }
            for key in removes {
                batch.remove(&self.messages, key.as_slice());
            }
            batch.commit().unwrap();
            // The journal written, then synced: data and metadata.
            self.db.persist(PersistMode::SyncAll).unwrap();
        }

        fn reopen_and_scan(dir: &Path) -> usize {
            let store = FjallStore::open(dir);
            let mut n = 0;
            for entry in store.messages.iter() {
                let value = entry.value().unwrap();
                std::hint::black_box(value.len());
                n += 1;
            }
            n
        }
    }
}

/// Records appended and not yet committed, and how far commits have got.
#[derive(Default)]
struct Pending {
    records: Vec<(Vec<u8>, Vec<u8>)>,
    /// The number of the commit the records appended now go into.
    filling: u64,
    /// The number of the last commit on disk.
    committed: u64,
    /// Writers still running.
    writers: usize,
}

struct Shared {
    pending: Mutex<Pending>,
    appended: Condvar,
    committed: Condvar,
}

struct Options {
    store: String,
    writers: usize,
    records: usize,
    size: usize,
    dir: PathBuf,
    /// Only reopen and scan the store at `dir` (after a run was killed, say).
    scan_only: bool,
}

fn options() -> Options {
    let mut options = Options {
        store: "redb".into(),
        writers: 100,
        records: 100_000,
        size: 256,
        dir: std::env::temp_dir().join("tollgate-store-choice"),
        scan_only: false,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).cloned().unwrap_or_default();
        match pair[0].as_str() {
            "--store" => options.store = value,
            "--writers" => options.writers = value.parse().unwrap(),
            "--records" => options.records = value.parse().unwrap(),
            "--size" => options.size = value.parse().unwrap(),
            "--dir" => options.dir = value.into(),
            "--scan-only" => options.scan_only = value == "yes",
            other => panic!("unknown argument {other}"),
        }
    }
    options
}

fn main() {
    let options = options();
    if options.scan_only {
        let reopen = Instant::now();
        let found = match options.store.as_str() {
            "redb" => redb_store::RedbStore::reopen_and_scan(&options.dir),
            _ => fjall_store::FjallStore::reopen_and_scan(&options.dir),
        };
        println!("{}: reopened and scanned {found} records in {:?}", options.store, reopen.elapsed());
        return;
    }
    let _ = std::fs::remove_dir_all(&options.dir);
    let mut store: Box<dyn Store> = match options.store.as_str() {
        "redb" => Box::new(redb_store::RedbStore::open(&options.dir)),
        "fjall" => Box::new(fjall_store::FjallStore::open(&options.dir)),
        other => panic!("unknown store {other}"),
    };
    let shared = Arc::new(Shared {
        pending: Mutex::new(Pending {
            writers: options.writers,
            filling: 1,
            ..Pending::default()
        }),
        appended: Condvar::new(),
        committed: Condvar::new(),
    });
    let per_writer = options.records / options.writers;
    let started = Instant::now();
    let mut threads = Vec::new();
    for writer in 0..options.writers {
        let shared = Arc::clone(&shared);
        let size = options.size;
        threads.push(std::thread::spawn(move || {
            for seq in 0..per_writer as u64 {
                let mut key = Vec::with_capacity(12);
                key.extend_from_slice(&(writer as u32).to_be_bytes());
                key.extend_from_slice(&seq.to_be_bytes());
                let value = vec![(seq % 251) as u8; size];
                let mut pending = shared.pending.lock().unwrap();
                let durable_at = pending.filling;
                pending.records.push((key, value));
                shared.appended.notify_one();
                while pending.committed < durable_at {
                    pending = shared.committed.wait(pending).unwrap();
                }
            }
            let mut pending = shared.pending.lock().unwrap();
            pending.writers -= 1;
            shared.appended.notify_one();
        }));
    }

    let mut latencies = Vec::new();
    let mut batch_sizes = Vec::new();
    let mut previous: Vec<Vec<u8>> = Vec::new();
    let mut kept = 0usize;
    let keep_every = 10;
    loop {
        let (number, batch) = {
            let mut pending = shared.pending.lock().unwrap();
            while pending.records.is_empty() && pending.writers > 0 {
                pending = shared.appended.wait(pending).unwrap();
            }
            if pending.records.is_empty() && pending.writers == 0 {
                break;
            }
            pending.filling += 1;
            (pending.filling - 1, std::mem::take(&mut pending.records))
        };
        let t = Instant::now();
        // The previous commit's records were delivered and acknowledged meanwhile: deleted,
        // except one in ten, left for the reopen at the end.
        let removes: Vec<Vec<u8>> = previous
            .drain(..)
            .enumerate()
            .filter_map(|(i, key)| {
                if (kept + i) % keep_every == 0 {
                    None
                } else {
                    Some(key)
                }
            })
            .collect();
        kept += removes.len();
        store.commit(&batch, &removes);
        latencies.push(t.elapsed());
        batch_sizes.push(batch.len());
        previous = batch.into_iter().map(|(key, _)| key).collect();
        shared.pending.lock().unwrap().committed = number;
        shared.committed.notify_all();
    }
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = started.elapsed();
    drop(store);

    let records: usize = batch_sizes.iter().sum();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p) as usize];
    let size_on_disk = dir_size(&options.dir);
    let reopen = Instant::now();
    let found = match options.store.as_str() {
        "redb" => redb_store::RedbStore::reopen_and_scan(&options.dir),
        _ => fjall_store::FjallStore::reopen_and_scan(&options.dir),
    };
    let reopen = reopen.elapsed();
    println!(
        "{store}: writers {w}, {records} records of {size} B in {secs:.2} s: {rate:.0} acknowledged/s, \
         {commits} commits ({cps:.0}/s, {per:.1} records each), commit p50 {p50:?} p99 {p99:?} max {max:?}; \
         {disk:.1} MiB on disk; reopen and scan of {found} records {reopen:?}",
        store = options.store,
        w = options.writers,
        size = options.size,
        secs = elapsed.as_secs_f64(),
        rate = records as f64 / elapsed.as_secs_f64(),
        commits = latencies.len(),
        cps = latencies.len() as f64 / elapsed.as_secs_f64(),
        per = records as f64 / latencies.len() as f64,
        p50 = round(pct(0.5)),
        p99 = round(pct(0.99)),
        max = round(*latencies.last().unwrap()),
        disk = size_on_disk as f64 / (1 << 20) as f64,
    );
}

fn round(d: Duration) -> Duration {
    Duration::from_micros(d.as_micros() as u64)
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}
