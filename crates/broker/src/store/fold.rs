//! Folding the operations appended since the last commit into what the commit writes: one
//! change per key, the last one winning, and nothing at all for a new key deleted again in
//! the same batch (a QoS 1 delivery its subscriber acknowledged before the commit).

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use super::Space;

/// One change waiting for the next commit.
#[derive(Debug)]
pub(super) enum Op {
    /// A key that has never been in the store.
    Insert(Space, Vec<u8>, Vec<u8>),
    /// A key written, perhaps again.
    Put(Space, Vec<u8>, Vec<u8>),
    /// A key deleted.
    Delete(Space, Vec<u8>),
    /// Every key with this prefix deleted: those written earlier in the batch and those in
    /// the store.
    DeletePrefix(Space, Vec<u8>),
}

/// What a commit does to one key.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Folded {
    /// Written for the first time.
    New(Vec<u8>),
    /// Written.
    Put(Vec<u8>),
    /// Deleted.
    Delete,
}

/// Folds `ops`, in order, into one change per key. `stored_with_prefix` lists the keys of a
/// space in the store that start with a prefix (for [`Op::DeletePrefix`]).
pub(super) fn fold<E>(
    ops: Vec<Op>,
    mut stored_with_prefix: impl FnMut(Space, &[u8]) -> Result<Vec<Vec<u8>>, E>,
) -> Result<HashMap<(Space, Vec<u8>), Folded>, E> {
    let mut folded: HashMap<(Space, Vec<u8>), Folded> = HashMap::with_capacity(ops.len());
    for op in ops {
        match op {
            Op::Insert(space, key, value) => {
                folded.insert((space, key), Folded::New(value));
            }
            Op::Put(space, key, value) => match folded.entry((space, key)) {
                Entry::Occupied(mut entry) => match entry.get_mut() {
                    Folded::New(held) => *held = value,
                    other => *other = Folded::Put(value),
                },
                Entry::Vacant(entry) => {
                    entry.insert(Folded::Put(value));
                }
            },
            Op::Delete(space, key) => {
                let key = (space, key);
                if let Some(Folded::New(_)) = folded.get(&key) {
                    folded.remove(&key);
                } else {
                    folded.insert(key, Folded::Delete);
                }
            }
            Op::DeletePrefix(space, prefix) => {
                folded.retain(|(s, key), value| {
                    if *s != space || !key.starts_with(&prefix) {
                        return true;
                    }
                    if let Folded::New(_) = value {
                        return false;
                    }
                    *value = Folded::Delete;
                    true
                });
                for key in stored_with_prefix(space, &prefix)? {
                    folded.insert((space, key), Folded::Delete);
                }
            }
        }
    }
    Ok(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folded(ops: Vec<Op>, stored: &[&[u8]]) -> Vec<(Vec<u8>, Folded)> {
        let mut out: Vec<_> = fold(ops, |_, prefix| {
            Ok::<_, ()>(
                stored
                    .iter()
                    .filter(|k| k.starts_with(prefix))
                    .map(|k| k.to_vec())
                    .collect(),
            )
        })
        .unwrap()
        .into_iter()
        .map(|((_, key), value)| (key, value))
        .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }

    const D: Space = Space::Deliveries;

    #[test]
    fn a_new_key_deleted_in_the_same_batch_is_not_written() {
        let ops = vec![
            Op::Insert(D, b"a1".to_vec(), b"x".to_vec()),
            Op::Insert(D, b"a2".to_vec(), b"y".to_vec()),
            Op::Delete(D, b"a1".to_vec()),
        ];
        assert_eq!(
            folded(ops, &[]),
            vec![(b"a2".to_vec(), Folded::New(b"y".to_vec()))]
        );
    }

    #[test]
    fn a_key_put_then_deleted_is_deleted_and_the_last_put_wins() {
        let ops = vec![
            Op::Put(D, b"k".to_vec(), b"1".to_vec()),
            Op::Delete(D, b"k".to_vec()),
            Op::Put(D, b"m".to_vec(), b"1".to_vec()),
            Op::Put(D, b"m".to_vec(), b"2".to_vec()),
            Op::Insert(D, b"n".to_vec(), b"1".to_vec()),
            Op::Put(D, b"n".to_vec(), b"2".to_vec()),
        ];
        assert_eq!(
            folded(ops, &[]),
            vec![
                (b"k".to_vec(), Folded::Delete),
                (b"m".to_vec(), Folded::Put(b"2".to_vec())),
                (b"n".to_vec(), Folded::New(b"2".to_vec())),
            ]
        );
    }

    #[test]
    fn a_prefix_delete_reaches_the_batch_and_the_store_but_not_later_writes() {
        let ops = vec![
            Op::Insert(D, b"s1/new".to_vec(), b"x".to_vec()),
            Op::Put(D, b"s1/old".to_vec(), b"x".to_vec()),
            Op::Put(D, b"s2/kept".to_vec(), b"x".to_vec()),
            Op::DeletePrefix(D, b"s1/".to_vec()),
            Op::Put(D, b"s1/after".to_vec(), b"z".to_vec()),
        ];
        assert_eq!(
            folded(ops, &[b"s1/old", b"s1/stored", b"s2/other"]),
            vec![
                (b"s1/after".to_vec(), Folded::Put(b"z".to_vec())),
                (b"s1/old".to_vec(), Folded::Delete),
                (b"s1/stored".to_vec(), Folded::Delete),
                (b"s2/kept".to_vec(), Folded::Put(b"x".to_vec())),
            ]
        );
    }
}
