//! The threads that check password hashes: a fixed number, each with its own working memory.
//!
//! Password hashes are slow on purpose (argon2id also takes tens of megabytes per check), so
//! how many run at once is the limit that matters, and it must hold whatever happens to the
//! client that asked: a check whose CONNECT timed out or went away keeps its thread until
//! it ends (a running hash cannot be stopped), and the next check waits for that thread. A
//! check still waiting when its client has gone is skipped. Waiting checks are taken in turn
//! per client address (IPv6: per /64), so a flood of guesses from one place delays a client
//! from elsewhere by at most the checks already running.
//!
//! Each thread keeps its argon2 memory for the next check while checks are waiting, and
//! gives it back when none is, so a burst of logins leaves no hashing memory behind. With a
//! fixed set of threads the allocator also keeps at most that many arenas for them (the
//! blocking pool, with up to hundreds of threads, left hundreds of megabytes after a burst).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::Block;
use parking_lot::{Condvar, Mutex};
use tokio::sync::oneshot;

use super::hash::PasswordHash;
use crate::authentication::AddressKey;
use crate::secret::Secret;

/// One check to run.
struct Job {
    hash: Arc<PasswordHash>,
    password: Secret,
    answer: oneshot::Sender<bool>,
}

/// The checks waiting, per address, and whose turn is next.
#[derive(Default)]
struct Waiting {
    by_address: HashMap<AddressKey, VecDeque<Job>>,
    turns: VecDeque<AddressKey>,
    closed: bool,
}

impl Waiting {
    fn push(&mut self, address: AddressKey, job: Job) {
        let queue = self.by_address.entry(address).or_default();
        if queue.is_empty() {
            self.turns.push_back(address);
        }
        queue.push_back(job);
    }

    /// The next check: the first of the address whose turn it is.
    fn pop(&mut self) -> Option<Job> {
        let address = self.turns.pop_front()?;
        let queue = self.by_address.get_mut(&address)?;
        let job = queue.pop_front();
        if queue.is_empty() {
            self.by_address.remove(&address);
        } else {
            self.turns.push_back(address);
        }
        job
    }

    fn is_empty(&self) -> bool {
        self.turns.is_empty()
    }
}

/// The queue the threads share.
#[derive(Default)]
struct Shared {
    waiting: Mutex<Waiting>,
    ready: Condvar,
    counts: Counts,
}

/// A fixed set of hashing threads fed from one queue, taken in turn per address.
pub struct HashingPool {
    shared: Arc<Shared>,
    threads: usize,
}

impl Drop for HashingPool {
    fn drop(&mut self) {
        self.shared.waiting.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

/// What the pool's threads did.
#[derive(Debug, Default)]
struct Counts {
    running: AtomicUsize,
    most_running: AtomicUsize,
    checked: AtomicUsize,
    skipped: AtomicUsize,
}

impl HashingPool {
    /// Starts `threads` hashing threads (at least one). They end when the pool is dropped.
    pub fn new(name: &str, threads: usize) -> std::io::Result<HashingPool> {
        let threads = threads.max(1);
        let shared = Arc::new(Shared::default());
        for i in 0..threads {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name(format!("hash-{name}-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || run(&shared))?;
        }
        Ok(HashingPool { shared, threads })
    }

    /// The most checks that ever ran at once (never more than the threads).
    pub fn most_running(&self) -> usize {
        self.shared.counts.most_running.load(Ordering::Relaxed)
    }

    /// Checks run, and checks skipped because their client had gone.
    pub fn checked_and_skipped(&self) -> (usize, usize) {
        let counts = &self.shared.counts;
        (
            counts.checked.load(Ordering::Relaxed),
            counts.skipped.load(Ordering::Relaxed),
        )
    }

    /// How many checks can run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether `password` matches `hash`, checked on one of the pool's threads, in turn with
    /// the checks of other addresses than `from`. `None` if the pool has stopped.
    pub async fn verify(
        &self,
        hash: Arc<PasswordHash>,
        password: Secret,
        from: IpAddr,
    ) -> Option<bool> {
        let (answer, answered) = oneshot::channel();
        self.shared.waiting.lock().push(
            AddressKey::of(from),
            Job {
                hash,
                password,
                answer,
            },
        );
        self.shared.ready.notify_one();
        answered.await.ok()
    }
}

/// A hashing thread: takes checks until the pool is gone.
fn run(shared: &Shared) {
    let counts = &shared.counts;
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let job = {
            let mut waiting = shared.waiting.lock();
            if waiting.is_empty() {
                // Nothing waits: give the working memory back before waiting.
                memory = Vec::new();
            }
            loop {
                if let Some(job) = waiting.pop() {
                    break job;
                }
                if waiting.closed {
                    return;
                }
                shared.ready.wait(&mut waiting);
            }
        };
        if job.answer.is_closed() {
            // The client that asked is gone: nobody would hear the answer.
            counts.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let running = counts.running.fetch_add(1, Ordering::Relaxed) + 1;
        counts.most_running.fetch_max(running, Ordering::Relaxed);
        let matches = job
            .hash
            .verify_with_memory(job.password.expose(), &mut memory);
        counts.running.fetch_sub(1, Ordering::Relaxed);
        counts.checked.fetch_add(1, Ordering::Relaxed);
        let _ = job.answer.send(matches);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn here() -> IpAddr {
        "127.0.0.1".parse().unwrap()
    }

    #[test]
    fn waiting_checks_are_taken_in_turn_per_address() {
        let mut waiting = Waiting::default();
        let job = || Job {
            hash: Arc::new(PasswordHash::Sha512 {
                salt: Vec::new(),
                hash: vec![0; 64],
            }),
            password: Secret::new("x"),
            answer: oneshot::channel().0,
        };
        let attacker = AddressKey::of("10.0.0.1".parse().unwrap());
        let good = AddressKey::of("10.0.0.2".parse().unwrap());
        for _ in 0..5 {
            waiting.push(attacker, job());
        }
        waiting.push(good, job());
        let mut order = Vec::new();
        while !waiting.is_empty() {
            let next = *waiting.turns.front().unwrap();
            waiting.pop().unwrap();
            order.push(next == good);
        }
        assert_eq!(order, [false, true, false, false, false, false]);
    }

    #[tokio::test]
    async fn checks_run_on_the_pool_and_answer() {
        let pool = HashingPool::new("t", 2).unwrap();
        let phc = PasswordHash::create_argon2id(b"right").unwrap();
        let hash = Arc::new(PasswordHash::parse(&phc).unwrap());
        assert_eq!(
            pool.verify(Arc::clone(&hash), Secret::new("right"), here())
                .await,
            Some(true)
        );
        assert_eq!(
            pool.verify(hash, Secret::new("wrong"), here()).await,
            Some(false)
        );
        assert_eq!(pool.threads(), 2);
    }

    #[tokio::test]
    async fn at_most_the_pool_size_runs_at_once_and_abandoned_checks_are_skipped() {
        let pool = Arc::new(HashingPool::new("t", 2).unwrap());
        let phc = PasswordHash::create_argon2id(b"right").unwrap();
        let hash = Arc::new(PasswordHash::parse(&phc).unwrap());
        let mut kept = Vec::new();
        let mut abandoned = Vec::new();
        for i in 0..40 {
            let (pool, hash) = (pool.clone(), hash.clone());
            let task = tokio::spawn(async move {
                pool.verify(hash, Secret::new(format!("guess{i}")), here())
                    .await
            });
            if i % 2 == 0 {
                kept.push(task);
            } else {
                abandoned.push(task);
            }
        }
        // Let every check reach the queue, then give up on half of them (their CONNECTs
        // timed out, say).
        tokio::task::yield_now().await;
        for task in &abandoned {
            task.abort();
        }
        for task in kept {
            assert_eq!(task.await.unwrap(), Some(false));
        }
        for task in abandoned {
            let _ = task.await;
        }
        assert!(pool.most_running() <= 2, "{} at once", pool.most_running());
        let (checked, skipped) = pool.checked_and_skipped();
        assert!(checked >= 20, "every kept check ran");
        assert!(
            checked < 40,
            "some abandoned checks were skipped ({skipped})"
        );
    }
}
