//! Many connections per task: futures are grouped, and the groups shared out among a few
//! worker tasks, each polling its futures together (a `FuturesUnordered` wakes only the ones
//! whose socket or signal is ready).

use std::future::Future;
use std::pin::Pin;

use futures_util::stream::{FuturesUnordered, StreamExt};

/// A boxed future the workers can own.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// Runs every future of `groups` on `workers` tasks and returns their outputs in the order of
/// the groups and of the futures within each group.
///
/// The futures of one group always share a task (a publisher and its subscriber, say); groups
/// are dealt to the workers in turn.
pub async fn run_grouped<T: Send + 'static>(
    groups: Vec<Vec<BoxFuture<T>>>,
    workers: usize,
) -> Vec<T> {
    let workers = workers.max(1);
    let mut per_worker: Vec<Vec<(usize, BoxFuture<T>)>> =
        (0..workers).map(|_| Vec::new()).collect();
    let mut index = 0;
    for (g, group) in groups.into_iter().enumerate() {
        for fut in group {
            per_worker[g % workers].push((index, fut));
            index += 1;
        }
    }
    let total = index;
    let handles: Vec<_> = per_worker
        .into_iter()
        .filter(|futs| !futs.is_empty())
        .map(|futs| {
            tokio::spawn(async move {
                let mut set: FuturesUnordered<_> = futs
                    .into_iter()
                    .map(|(i, fut)| async move { (i, fut.await) })
                    .collect();
                let mut done = Vec::new();
                while let Some(out) = set.next().await {
                    done.push(out);
                }
                done
            })
        })
        .collect();
    let mut slots: Vec<Option<T>> = (0..total).map(|_| None).collect();
    for handle in handles {
        match handle.await {
            Ok(done) => {
                for (i, out) in done {
                    slots[i] = Some(out);
                }
            }
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    slots
        .into_iter()
        .map(|s| s.expect("every future ran to completion"))
        .collect()
}

/// Runs `futures` in one task, at most `concurrency` at a time, and returns their outputs in
/// order. For setup work (connecting thousands of clients) where one task is plenty.
pub async fn run_limited<T>(futures: Vec<BoxFuture<T>>, concurrency: usize) -> Vec<T> {
    let total = futures.len();
    let mut slots: Vec<Option<T>> = (0..total).map(|_| None).collect();
    let mut stream = futures_util::stream::iter(
        futures
            .into_iter()
            .enumerate()
            .map(|(i, fut)| async move { (i, fut.await) }),
    )
    .buffer_unordered(concurrency.max(1));
    while let Some((i, out)) = stream.next().await {
        slots[i] = Some(out);
    }
    slots
        .into_iter()
        .map(|s| s.expect("every future ran to completion"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn outputs_come_back_in_order() {
        let groups: Vec<Vec<BoxFuture<usize>>> = (0..5usize)
            .map(|g| {
                (0..3usize)
                    .map(|k| Box::pin(async move { g * 10 + k }) as BoxFuture<usize>)
                    .collect()
            })
            .collect();
        let out = run_grouped(groups, 2).await;
        assert_eq!(
            out,
            vec![0, 1, 2, 10, 11, 12, 20, 21, 22, 30, 31, 32, 40, 41, 42]
        );
    }

    #[tokio::test]
    async fn limited_runs_everything() {
        let futs: Vec<BoxFuture<u32>> = (0..50u32)
            .map(|i| Box::pin(async move { i * 2 }) as _)
            .collect();
        let out = run_limited(futs, 4).await;
        assert_eq!(out, (0..50).map(|i| i * 2).collect::<Vec<_>>());
    }
}
