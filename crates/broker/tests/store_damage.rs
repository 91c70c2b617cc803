//! A damaged store never stops the broker from starting, and the start says what it dropped
//! ([`Server::recovered`] and its log lines): a torn journal tail is cut off and the rest
//! restored; flipped bytes in the journal or in a table, or files zeroed (as power loss has
//! done to Mosquitto's snapshot), lose what they touched, or the store is moved aside and
//! the broker starts empty. What comes back is never garbled.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use tollgate_broker::{Recovered, Server};
use tollgate_mqtt::*;

/// Retained messages each store is made with, `r/0` … `r/{COUNT-1}`, published (and
/// acknowledged, each its own commit) in that order.
const COUNT: usize = 40;

fn payload(i: usize) -> Vec<u8> {
    format!("message {i} ").repeat(20).into_bytes()
}

/// A store holding [`COUNT`] acknowledged retained messages. With `crashed`, a copy of the
/// files taken while the broker runs (what a crash leaves: the journal, not yet written out
/// to tables); without, the files of a broker that stopped cleanly (tables, no journal
/// to replay).
async fn made_store(tag: &str, crashed: bool) -> TestDir {
    let live = TestDir::new(&format!("damage-{tag}-live"));
    let (server, addr) = start_broker(persistent(&live.0)).await;
    let mut sender = TestClient::connect(addr, ProtocolVersion::V5, "sender").await;
    for i in 0..COUNT {
        let reason = sender
            .publish_packet(Publish {
                qos: QoS::AtLeastOnce,
                retain: true,
                topic: format!("r/{i}"),
                packet_id: Some(1),
                payload: payload(i).into(),
                ..Publish::default()
            })
            .await;
        assert!(reason.0 < 0x80, "r/{i} refused: {reason:?}");
    }
    let image = TestDir::new(&format!("damage-{tag}"));
    if crashed {
        copy_dir(&live.0, &image.0);
        drop(sender);
        server.shutdown().await;
    } else {
        drop(sender);
        server.shutdown().await;
        copy_dir(&live.0, &image.0);
    }
    image
}

/// Starts a broker on `dir`, checks it serves, and returns what it recovered with the
/// retained messages it delivers to a `r/#` subscriber, each checked against what was sent.
async fn restart_on(dir: &Path) -> (Server, Recovered, Vec<usize>) {
    let (server, addr) = start_broker(persistent(dir)).await;
    assert_served(addr).await;
    let recovered = server.recovered().clone();
    let mut reader = TestClient::connect(addr, ProtocolVersion::V5, "reader").await;
    reader.subscribe(1, "r/#", QoS::AtMostOnce).await;
    let mut found = Vec::new();
    for _ in 0..recovered.retained {
        let publish = reader.recv_publish().await;
        let i: usize = publish.topic.strip_prefix("r/").unwrap().parse().unwrap();
        assert_eq!(
            &publish.payload[..],
            &payload(i)[..],
            "r/{i} came back garbled"
        );
        found.push(i);
    }
    reader.expect_nothing().await;
    found.sort_unstable();
    (server, recovered, found)
}

#[tokio::test]
async fn a_torn_journal_tail_is_cut_off_and_everything_before_it_restored() {
    let store = made_store("torn", true).await;
    let journal = newest_journal(&store.0);
    // The last commit (r/{COUNT-1}) is half written.
    truncate(&journal, written_end(&journal) - 8);

    let (server, recovered, found) = restart_on(&store.0).await;
    assert!(recovered.journal_bytes_cut > 0, "{recovered:?}");
    assert_eq!(recovered.moved_aside, None);
    assert_eq!(found, (0..COUNT - 1).collect::<Vec<_>>(), "{recovered:?}");
    server.shutdown().await;
}

#[tokio::test]
async fn flipped_bytes_in_the_journal_lose_what_they_touched_and_say_so() {
    let store = made_store("journal-flip", true).await;
    let journal = newest_journal(&store.0);
    flip(&journal, written_end(&journal) / 2, 16);

    let (server, recovered, found) = restart_on(&store.0).await;
    let lost = COUNT - found.len();
    assert!(lost > 0, "corruption went unnoticed: {recovered:?}");
    assert!(
        recovered.moved_aside.is_some() || recovered.journal_bytes_cut > 0,
        "the start did not say what it dropped: {recovered:?}"
    );
    server.shutdown().await;
    remove_aside(&recovered);
}

#[tokio::test]
async fn flipped_bytes_in_a_table_lose_what_they_touched_and_say_so() {
    let store = made_store("table-flip", false).await;
    let table = largest_table(&store.0);
    let len = std::fs::metadata(&table).unwrap().len();
    flip(&table, len / 3, 64);

    let (server, recovered, found) = restart_on(&store.0).await;
    assert!(
        found.len() < COUNT,
        "corruption went unnoticed: {recovered:?}"
    );
    assert!(
        recovered.moved_aside.is_some() || recovered.damaged > 0,
        "the start did not say what it dropped: {recovered:?}"
    );
    server.shutdown().await;
    remove_aside(&recovered);
}

#[tokio::test]
async fn a_zeroed_store_is_moved_aside_and_the_broker_starts_empty() {
    for crashed in [true, false] {
        let store = made_store(&format!("zeroed-{crashed}"), crashed).await;
        for file in files_under(&store.0) {
            let len = std::fs::metadata(&file).unwrap().len() as usize;
            std::fs::write(&file, vec![0u8; len]).unwrap();
        }
        let (server, recovered, found) = restart_on(&store.0).await;
        assert!(found.is_empty(), "{found:?}");
        let aside = recovered.moved_aside.clone().expect("moved aside");
        assert!(aside.exists(), "{aside:?}");
        server.shutdown().await;
        remove_aside(&recovered);
    }
}

#[tokio::test]
async fn a_clean_restart_restores_everything_and_reports_nothing_dropped() {
    for crashed in [true, false] {
        let store = made_store(&format!("intact-{crashed}"), crashed).await;
        let (server, recovered, found) = restart_on(&store.0).await;
        assert_eq!(found, (0..COUNT).collect::<Vec<_>>());
        assert_eq!(
            (
                recovered.journal_bytes_cut,
                recovered.damaged,
                &recovered.moved_aside
            ),
            (0, 0, &None)
        );
        server.shutdown().await;
    }
}

fn copy_dir(from: &Path, to: &Path) {
    for file in files_under(from) {
        let target = to.join(file.strip_prefix(from).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&file, &target).unwrap();
    }
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// The journal file written last: the one with the highest number.
fn newest_journal(dir: &Path) -> PathBuf {
    files_under(dir)
        .into_iter()
        .filter(|f| f.parent() == Some(dir) && f.extension().is_some_and(|e| e == "jnl"))
        .max_by_key(|f| {
            let stem = f.file_stem().unwrap().to_string_lossy().into_owned();
            stem.parse::<u64>().unwrap()
        })
        .expect("a journal")
}

/// The largest table file (where the retained messages' payloads are).
fn largest_table(dir: &Path) -> PathBuf {
    files_under(dir)
        .into_iter()
        .filter(|f| f.parent().and_then(Path::file_name) == Some("tables".as_ref()))
        .max_by_key(|f| std::fs::metadata(f).unwrap().len())
        .expect("a table")
}

/// Where what was written in `file` ends (journal files are made longer, filled with zeros).
fn written_end(file: &Path) -> u64 {
    let bytes = std::fs::read(file).unwrap();
    bytes
        .iter()
        .rposition(|b| *b != 0)
        .map_or(0, |i| i as u64 + 1)
}

fn truncate(file: &Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(file)
        .unwrap()
        .set_len(len)
        .unwrap();
}

/// Inverts `count` bytes of `file` from `at`.
fn flip(file: &Path, at: u64, count: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    for b in &mut bytes[at as usize..at as usize + count] {
        *b = !*b;
    }
    std::fs::write(file, bytes).unwrap();
}

fn remove_aside(recovered: &Recovered) {
    if let Some(aside) = &recovered.moved_aside {
        let _ = std::fs::remove_dir_all(aside);
    }
}
