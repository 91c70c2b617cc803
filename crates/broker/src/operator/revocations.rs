//! Revocations made through the admin API. They act as entries of the revocation file do
//! (the list in force is the file's and these together): a connected client they name is
//! disconnected at once, a new one refused, cached authentications forgotten.

use std::collections::BTreeMap;
use std::time::SystemTime;

use tollgate_auth::revocation::{RevocationKind, RevocationList};

use super::OperatorEntry;

/// One revocation an operator made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperatorRevocation {
    /// What it names.
    pub kind: RevocationKind,
    /// The token id, user name or client identifier.
    pub value: String,
    /// Why, until when, by whom.
    pub entry: OperatorEntry,
}

/// The revocations operators made, by kind and value.
#[derive(Debug, Clone, Default)]
pub struct OperatorRevocations {
    entries: BTreeMap<(RevocationKind, String), OperatorEntry>,
}

impl OperatorRevocations {
    /// How many there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether there is one of `value` of `kind` (in force or not).
    pub fn holds(&self, kind: RevocationKind, value: &str) -> bool {
        self.entries.contains_key(&(kind, value.to_owned()))
    }

    /// Adds (or replaces) one; whether it replaced one.
    pub fn insert(&mut self, revocation: OperatorRevocation) -> bool {
        self.entries
            .insert((revocation.kind, revocation.value), revocation.entry)
            .is_some()
    }

    /// Removes the revocation of `value` of `kind`, if there is one.
    pub fn remove(&mut self, kind: RevocationKind, value: &str) -> Option<OperatorEntry> {
        self.entries.remove(&(kind, value.to_owned()))
    }

    /// Every revocation, sorted by kind and value.
    pub fn all(&self) -> Vec<OperatorRevocation> {
        self.entries
            .iter()
            .map(|((kind, value), entry)| OperatorRevocation {
                kind: *kind,
                value: value.clone(),
                entry: entry.clone(),
            })
            .collect()
    }

    /// Removes those that ended before `now`; what they named.
    pub fn remove_ended(&mut self, now: SystemTime) -> Vec<(RevocationKind, String)> {
        let ended: Vec<_> = self
            .entries
            .iter()
            .filter(|(_, entry)| !entry.in_force(now))
            .map(|(key, _)| key.clone())
            .collect();
        for key in &ended {
            self.entries.remove(key);
        }
        ended
    }

    /// The list in force: the file's entries and these.
    pub fn merged_with(&self, file: &RevocationList) -> RevocationList {
        let mut list = file.clone();
        for ((kind, value), entry) in &self.entries {
            list.insert(*kind, value.clone(), entry.until);
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tollgate_auth::Principal;

    #[test]
    fn the_list_in_force_holds_the_file_and_the_operators_entries_until_their_end() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let file = RevocationList::parse("revoked.txt", "client from-file\n").unwrap();
        let mut made = OperatorRevocations::default();
        made.insert(OperatorRevocation {
            kind: RevocationKind::User,
            value: "mallory".into(),
            entry: OperatorEntry {
                reason: "stolen laptop".into(),
                until: Some(t0 + Duration::from_secs(60)),
                made_at: t0,
                by: "ops".into(),
            },
        });
        let list = made.merged_with(&file);
        assert!(list
            .revoked(&Principal::anonymous("from-file"), t0)
            .is_some());
        let mallory = Principal {
            username: Some("mallory".into()),
            ..Principal::anonymous("c")
        };
        assert!(list.revoked(&mallory, t0).is_some());
        assert!(list
            .revoked(&mallory, t0 + Duration::from_secs(60))
            .is_none());
        assert!(made.remove_ended(t0).is_empty());
        assert_eq!(made.remove_ended(t0 + Duration::from_secs(60)).len(), 1);
        assert!(made.is_empty());
    }
}
