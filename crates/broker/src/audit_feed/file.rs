//! The `[audit] file`: the feed's events appended as JSON lines by a thread of its own (a
//! connection never waits for the disk), rotated by size: `file` becomes `file.1`, `file.1`
//! becomes `file.2`, up to `keep_files`; the oldest is overwritten. Events lost because the
//! writer fell behind are written as a `{"type":"lost","count":N}` line. A write that fails
//! is logged (once a minute at most) and the broker goes on: the log keeps every audit line.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{AuditFeed, FeedListener, Received};
use crate::config::AuditConfig;

/// The least time between two log lines about failed writes.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// The audit file, open for appending.
#[derive(Debug)]
pub struct AuditFile {
    path: PathBuf,
    file: File,
    size: u64,
    max_bytes: u64,
    keep: u64,
}

impl AuditFile {
    /// Opens (or creates) the file `config` names.
    pub fn open(config: &AuditConfig, path: &Path) -> io::Result<AuditFile> {
        let file = append(path)?;
        let size = file.metadata()?.len();
        Ok(AuditFile {
            path: path.to_owned(),
            file,
            size,
            max_bytes: config.max_file_bytes,
            keep: config.keep_files,
        })
    }

    /// Writes the feed's events until it closes, on a thread of its own.
    pub fn start(mut self, feed: &AuditFeed) -> io::Result<JoinHandle<()>> {
        let mut listener = feed.listen();
        std::thread::Builder::new()
            .name("tollgate-audit-file".into())
            .spawn(move || self.run(&mut listener))
    }

    fn run(&mut self, listener: &mut FeedListener) {
        let mut last_error: Option<Instant> = None;
        loop {
            let line = match listener.next_blocking() {
                Received::Event(event) => event.json.clone(),
                Received::Lagged(lost) => format!("{{\"type\":\"lost\",\"count\":{lost}}}"),
                Received::Closed => return,
            };
            if let Err(e) = self.write_line(&line) {
                if last_error.is_none_or(|at| at.elapsed() >= ERROR_LOG_INTERVAL) {
                    tracing::error!(file = %self.path.display(), error = %e, "audit file: write failed (the log still has every audit line)");
                    last_error = Some(Instant::now());
                }
            }
        }
    }

    /// Appends one line, rotating first if it would take the file past its size.
    pub fn write_line(&mut self, line: &str) -> io::Result<()> {
        let bytes = line.len() as u64 + 1;
        if self.size > 0 && self.size + bytes > self.max_bytes {
            self.rotate()?;
        }
        let mut buffer = Vec::with_capacity(line.len() + 1);
        buffer.extend_from_slice(line.as_bytes());
        buffer.push(b'\n');
        self.file.write_all(&buffer)?;
        self.size += bytes;
        Ok(())
    }

    fn rotate(&mut self) -> io::Result<()> {
        let numbered = |n: u64| {
            let mut name = self.path.clone().into_os_string();
            name.push(format!(".{n}"));
            PathBuf::from(name)
        };
        for n in (1..self.keep).rev() {
            let from = numbered(n);
            if from.exists() {
                std::fs::rename(&from, numbered(n + 1))?;
            }
        }
        std::fs::rename(&self.path, numbered(1))?;
        self.file = append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

fn append(path: &Path) -> io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o640);
    }
    options.open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_rotates_by_size_and_keeps_keep_files() {
        let dir =
            std::env::temp_dir().join(format!("tollgate-audit-rotate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("audit.jsonl");
        let config = AuditConfig {
            file: Some(path.clone()),
            max_file_bytes: 100,
            keep_files: 2,
        };
        let mut file = AuditFile::open(&config, &path).unwrap();
        let line = "x".repeat(59); // 60 bytes with its newline: one per file
        for n in 0..4 {
            file.write_line(&format!("{n}{line}")).unwrap();
        }
        let read = |p: &Path| std::fs::read_to_string(p).unwrap();
        assert!(read(&path).starts_with('3'));
        assert!(read(&dir.join("audit.jsonl.1")).starts_with('2'));
        assert!(read(&dir.join("audit.jsonl.2")).starts_with('1'));
        assert!(
            !dir.join("audit.jsonl.3").exists(),
            "only keep_files rotated files"
        );
        assert_eq!(read(&path).lines().count(), 1);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
