//! Opening the store's files, and what opening them repaired: a journal whose tail was cut
//! off (a torn or corrupt write), or a store so damaged that it is moved aside and started
//! again empty. Either is logged and reported ([`Opened`]), so that a restart says what it
//! dropped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fjall::{Database, Keyspace, KeyspaceCreateOptions};

use super::Space;

/// What opening the store found and repaired.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opened {
    /// Bytes cut off the ends of the journal files: the writes in them are gone. With
    /// `fsync = "always"` no acknowledgement waited for them; with `"interval"` or `"never"`
    /// some may have been acknowledged.
    pub journal_bytes_cut: u64,
    /// Where a store that could not be opened was moved; the broker started empty.
    pub moved_aside: Option<PathBuf>,
}

/// Why the store could not be opened.
#[derive(Debug)]
pub enum OpenError {
    /// The directory could not be created or used.
    Directory(PathBuf, std::io::Error),
    /// A damaged store could not be moved aside.
    MoveAside(PathBuf, std::io::Error),
    /// The store could not be opened, even empty.
    Open(PathBuf, fjall::Error),
}

impl std::fmt::Display for OpenError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpenError::Directory(path, e) => {
                write!(f, "cannot use the store directory {}: {e}", path.display())
            }
            OpenError::MoveAside(path, e) => write!(
                f,
                "the store at {} is damaged and cannot be moved aside: {e}",
                path.display()
            ),
            OpenError::Open(path, e) => {
                write!(f, "cannot open the store at {}: {e}", path.display())
            }
        }
    }
}

impl std::error::Error for OpenError {}

/// Opens the database at `path` (creating it if needed) with one keyspace per [`Space`].
/// A store that cannot be opened because its files are damaged is moved aside, to
/// `<path>.damaged-<unix seconds>`, and an empty one is created in its place.
pub(super) fn open_or_move_aside(
    path: &Path,
) -> Result<(Database, Vec<Keyspace>, Opened), OpenError> {
    std::fs::create_dir_all(path).map_err(|e| OpenError::Directory(path.to_owned(), e))?;
    let before = journal_written_ends(path);
    match open_db(path) {
        Ok((db, spaces)) => {
            let cut = bytes_cut(&before, &journal_lengths(path));
            if cut > 0 {
                tracing::warn!(store = %path.display(), bytes_cut = cut, "the store's journal ended in a torn or corrupt write: it was cut off there and what it held is lost (with fsync = \"always\" none of it had been acknowledged)");
            }
            let opened = Opened {
                journal_bytes_cut: cut,
                moved_aside: None,
            };
            Ok((db, spaces, opened))
        }
        Err(e) if !is_damage(&e) => Err(OpenError::Open(path.to_owned(), e)),
        Err(e) => {
            let aside = damaged_name(path);
            tracing::error!(store = %path.display(), moved_to = %aside.display(), error = %e, "the store cannot be opened: it is moved aside and the broker starts with an empty one (sessions and retained messages in it are not restored)");
            std::fs::rename(path, &aside).map_err(|e| OpenError::MoveAside(path.to_owned(), e))?;
            std::fs::create_dir_all(path).map_err(|e| OpenError::Directory(path.to_owned(), e))?;
            let (db, spaces) = open_db(path).map_err(|e| OpenError::Open(path.to_owned(), e))?;
            let opened = Opened {
                journal_bytes_cut: 0,
                moved_aside: Some(aside),
            };
            Ok((db, spaces, opened))
        }
    }
}

fn open_db(path: &Path) -> Result<(Database, Vec<Keyspace>), fjall::Error> {
    let db = Database::builder(path).open()?;
    let spaces = Space::ALL
        .iter()
        .map(|space| db.keyspace(space.name(), KeyspaceCreateOptions::default))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((db, spaces))
}

/// Whether an error opening the store says its files are damaged (rather than locked by
/// another process, or not accessible): only then is it moved aside.
fn is_damage(error: &fjall::Error) -> bool {
    match error {
        fjall::Error::Locked | fjall::Error::Poisoned => false,
        fjall::Error::Io(e) => matches!(
            e.kind(),
            std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::InvalidData
        ),
        _ => true,
    }
}

fn damaged_name(path: &Path) -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".damaged-{secs}"));
    PathBuf::from(name)
}

/// Every journal file (`*.jnl`) directly in `path`, with `measure` of it; files that cannot
/// be measured are left out.
fn journals(path: &Path, measure: impl Fn(&Path) -> Option<u64>) -> BTreeMap<PathBuf, u64> {
    let Ok(entries) = std::fs::read_dir(path) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .map(|entry| entry.path())
        .filter(|file| file.extension().is_some_and(|ext| ext == "jnl"))
        .filter_map(|file| Some((file.clone(), measure(&file)?)))
        .collect()
}

/// Where the written part of every journal file ends: just after its last byte that is not
/// zero. (Journal files are made longer than what is written in them, and filled with
/// zeros; opening cuts them to their last valid commit.)
fn journal_written_ends(path: &Path) -> BTreeMap<PathBuf, u64> {
    journals(path, |file| written_end(file).ok())
}

/// The length of every journal file.
fn journal_lengths(path: &Path) -> BTreeMap<PathBuf, u64> {
    journals(path, |file| Some(std::fs::metadata(file).ok()?.len()))
}

/// The offset just after the last byte of `file` that is not zero (0 for a file of zeros),
/// read backwards in blocks.
fn written_end(file: &Path) -> std::io::Result<u64> {
    use std::io::{Read, Seek, SeekFrom};
    const BLOCK: u64 = 64 * 1024;
    let mut f = std::fs::File::open(file)?;
    let mut end = f.metadata()?.len();
    let mut buf = vec![0u8; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let chunk = &mut buf[..(end - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(chunk)?;
        if let Some(last) = chunk.iter().rposition(|b| *b != 0) {
            return Ok(start + last as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// How many written bytes the journal files that are still there lost between `before`
/// (where their written part ended) and `after` (a journal removed after its writes
/// reached the tables lost nothing).
fn bytes_cut(before: &BTreeMap<PathBuf, u64>, after: &BTreeMap<PathBuf, u64>) -> u64 {
    before
        .iter()
        .filter_map(|(file, len)| Some(len.saturating_sub(*after.get(file)?)))
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_end_is_after_the_last_byte_that_is_not_zero() {
        let dir = std::env::temp_dir().join(format!("tollgate-written-end-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("0.jnl");
        for (content, end) in [
            (vec![], 0),
            (vec![0u8; 200_000], 0),
            ([vec![1u8; 70_000], vec![0u8; 200_000]].concat(), 70_000),
            ([vec![0u8; 5], vec![7u8], vec![0u8; 131_072]].concat(), 6),
        ] {
            std::fs::write(&file, &content).unwrap();
            assert_eq!(written_end(&file).unwrap(), end);
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn bytes_cut_counts_shrunk_journals_only() {
        let before = BTreeMap::from([
            (PathBuf::from("0.jnl"), 100),
            (PathBuf::from("1.jnl"), 50),
            (PathBuf::from("2.jnl"), 10),
        ]);
        let after = BTreeMap::from([(PathBuf::from("1.jnl"), 20), (PathBuf::from("2.jnl"), 30)]);
        assert_eq!(bytes_cut(&before, &after), 30);
    }
}
