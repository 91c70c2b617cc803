//! The threads that check password hashes: a fixed number, each with its own working memory.
//!
//! Password hashes are slow on purpose (argon2id also takes tens of megabytes per check), so
//! how many run at once is the limit that matters, and it must hold whatever happens to the
//! client that asked: a check whose CONNECT timed out or went away keeps its thread until
//! it ends (a running hash cannot be stopped), and the next check waits for that thread. A
//! check still waiting when its client has gone is skipped.
//!
//! Each thread keeps its argon2 memory for the next check while checks are waiting, and
//! gives it back when none is, so a burst of logins leaves no hashing memory behind. With a
//! fixed set of threads the allocator also keeps at most that many arenas for them (the
//! blocking pool, with up to hundreds of threads, left hundreds of megabytes after a burst).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, TryRecvError};
use std::sync::Arc;

use argon2::Block;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::hash::PasswordHash;
use crate::secret::Secret;

/// One check to run.
struct Job {
    hash: Arc<PasswordHash>,
    password: Secret,
    answer: oneshot::Sender<bool>,
}

/// A fixed set of hashing threads fed from one queue.
pub struct HashingPool {
    jobs: Mutex<Sender<Job>>,
    threads: usize,
    counts: Arc<Counts>,
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
        let (sender, receiver) = mpsc::channel::<Job>();
        let receiver = Arc::new(Mutex::new(receiver));
        let counts = Arc::new(Counts::default());
        for i in 0..threads {
            let receiver = Arc::clone(&receiver);
            let counts = Arc::clone(&counts);
            std::thread::Builder::new()
                .name(format!("hash-{name}-{i}"))
                .stack_size(256 * 1024)
                .spawn(move || run(&receiver, &counts))?;
        }
        Ok(HashingPool {
            jobs: Mutex::new(sender),
            threads,
            counts,
        })
    }

    /// The most checks that ever ran at once (never more than the threads).
    pub fn most_running(&self) -> usize {
        self.counts.most_running.load(Ordering::Relaxed)
    }

    /// Checks run, and checks skipped because their client had gone.
    pub fn checked_and_skipped(&self) -> (usize, usize) {
        (
            self.counts.checked.load(Ordering::Relaxed),
            self.counts.skipped.load(Ordering::Relaxed),
        )
    }

    /// How many checks can run at once.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Whether `password` matches `hash`, checked on one of the pool's threads. `None` if the
    /// pool has stopped.
    pub async fn verify(&self, hash: Arc<PasswordHash>, password: Secret) -> Option<bool> {
        let (answer, answered) = oneshot::channel();
        self.jobs
            .lock()
            .send(Job {
                hash,
                password,
                answer,
            })
            .ok()?;
        answered.await.ok()
    }
}

/// A hashing thread: takes checks until the pool is gone.
fn run(receiver: &Mutex<Receiver<Job>>, counts: &Counts) {
    let mut memory: Vec<Block> = Vec::new();
    loop {
        let next = {
            let queue = receiver.lock();
            match queue.try_recv() {
                Ok(job) => Ok(job),
                Err(TryRecvError::Empty) => {
                    // Nothing waits: give the working memory back before waiting.
                    memory = Vec::new();
                    queue.recv().map_err(|_| ())
                }
                Err(TryRecvError::Disconnected) => Err(()),
            }
        };
        let Ok(job) = next else { return };
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

    #[tokio::test]
    async fn checks_run_on_the_pool_and_answer() {
        let pool = HashingPool::new("t", 2).unwrap();
        let phc = PasswordHash::create_argon2id(b"right").unwrap();
        let hash = Arc::new(PasswordHash::parse(&phc).unwrap());
        assert_eq!(
            pool.verify(Arc::clone(&hash), Secret::new("right")).await,
            Some(true)
        );
        assert_eq!(pool.verify(hash, Secret::new("wrong")).await, Some(false));
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
            let task =
                tokio::spawn(
                    async move { pool.verify(hash, Secret::new(format!("guess{i}"))).await },
                );
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
