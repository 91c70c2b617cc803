//! Bans and revocations operators make through the admin API, applied to the running broker
//! and kept in its store (when persistence is on): a ban disconnects the clients it names at
//! once and refuses them at CONNECT; a revocation joins the revocation file's entries in the
//! list every connection checks.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use tollgate_auth::revocation::{RevocationKind, RevocationList};

use super::Broker;
use crate::operator::bans::{Ban, BanList, BanSubject, BanTarget};
use crate::operator::records::{self, OperatorRecord};
use crate::operator::revocations::{OperatorRevocation, OperatorRevocations};
use crate::store::Space;

/// A ban or revocation refused because the list is at its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListFull {
    /// The bound.
    pub most: usize,
}

/// What making a ban did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Banned {
    /// It replaced a ban of the same target.
    pub replaced: bool,
    /// How many connected clients it disconnected.
    pub disconnected: usize,
}

impl Broker {
    /// Bans `ban.target` (at most `most` bans in all) and disconnects the connected clients
    /// it names (5.0: DISCONNECT 0x98), as the admin token `by`.
    pub fn ban(&self, ban: Ban, most: usize, by: &str) -> Result<Banned, ListFull> {
        let now = SystemTime::now();
        let replaced = {
            let mut bans = self.bans.write();
            self.forget_ended_bans(&mut bans, now);
            if !bans.holds(&ban.target) && bans.len() >= most {
                return Err(ListFull { most });
            }
            if let Some(store) = &self.store {
                store.put(
                    Space::Operator,
                    records::ban_key(&ban.target),
                    records::encode_ban(&ban),
                );
            }
            bans.insert(ban.clone())
        };
        let mut disconnected = 0;
        if ban.entry.in_force(now) {
            for client in self.connected_clients() {
                let subject = BanSubject {
                    client_id: &client.client_id,
                    users: [client.principal.username.as_deref(), None],
                    address: Some(client.connection.peer.ip()),
                };
                if ban.names(subject) && self.kick(&client.client_id, by) {
                    disconnected += 1;
                }
            }
        }
        Ok(Banned {
            replaced,
            disconnected,
        })
    }

    /// Lifts the ban of `target`; whether there was one.
    pub fn unban(&self, target: &BanTarget) -> bool {
        let removed = self.bans.write().remove(target).is_some();
        if removed {
            if let Some(store) = &self.store {
                store.delete(Space::Operator, records::ban_key(target));
            }
        }
        removed
    }

    /// Every ban in force, sorted by kind and value (those that ended are forgotten).
    pub fn bans(&self) -> Vec<Ban> {
        let mut bans = self.bans.write();
        self.forget_ended_bans(&mut bans, SystemTime::now());
        bans.all()
    }

    /// The ban in force that a client falls under, if one does: checked at CONNECT before
    /// any authenticator is asked, and again for the principal it was admitted as.
    pub fn ban_of(
        &self,
        client_id: &str,
        users: [Option<&str>; 2],
        address: Option<IpAddr>,
    ) -> Option<Ban> {
        let subject = BanSubject {
            client_id,
            users,
            address,
        };
        self.bans.read().find(subject, SystemTime::now())
    }

    fn forget_ended_bans(&self, bans: &mut BanList, now: SystemTime) {
        for target in bans.remove_ended(now) {
            if let Some(store) = &self.store {
                store.delete(Space::Operator, records::ban_key(&target));
            }
        }
    }

    /// Revokes what `revocation` names (at most `most` revocations made this way): connected
    /// clients it names are disconnected (they check the list when told, as for the file).
    /// The caller forgets cached authentications. Whether it replaced one.
    pub fn revoke(&self, revocation: OperatorRevocation, most: usize) -> Result<bool, ListFull> {
        let replaced = {
            let mut made = self.operator_revocations.lock();
            self.forget_ended_revocations(&mut made, SystemTime::now());
            if !made.holds(revocation.kind, &revocation.value) && made.len() >= most {
                return Err(ListFull { most });
            }
            if let Some(store) = &self.store {
                store.put(
                    Space::Operator,
                    records::revocation_key(revocation.kind, &revocation.value),
                    records::encode_revocation(&revocation),
                );
            }
            made.insert(revocation)
        };
        self.apply_revocations();
        Ok(replaced)
    }

    /// Withdraws the revocation of `value` of `kind` made through the API; whether there was
    /// one. (An entry of the revocation file stays until the file changes.)
    pub fn unrevoke(&self, kind: RevocationKind, value: &str) -> bool {
        let removed = self
            .operator_revocations
            .lock()
            .remove(kind, value)
            .is_some();
        if removed {
            if let Some(store) = &self.store {
                store.delete(Space::Operator, records::revocation_key(kind, value));
            }
            self.apply_revocations();
        }
        removed
    }

    /// The revocations made through the API and in force, sorted by kind and value.
    pub fn operator_revocations(&self) -> Vec<OperatorRevocation> {
        let mut made = self.operator_revocations.lock();
        self.forget_ended_revocations(&mut made, SystemTime::now());
        made.all()
    }

    /// The revocation file's entries.
    pub fn file_revocations(&self) -> Arc<RevocationList> {
        Arc::clone(&self.file_revocations.read())
    }

    fn forget_ended_revocations(&self, made: &mut OperatorRevocations, now: SystemTime) {
        for (kind, value) in made.remove_ended(now) {
            if let Some(store) = &self.store {
                store.delete(Space::Operator, records::revocation_key(kind, &value));
            }
        }
    }

    /// Replaces the revocation file's entries (the list in force is them and the API's).
    /// Connected clients check it when told ([`Broker::permissions_changed`]).
    pub fn set_revocations(&self, file: Arc<RevocationList>) {
        *self.file_revocations.write() = file;
        let merged = self
            .operator_revocations
            .lock()
            .merged_with(&self.file_revocations.read());
        *self.revocations.write() = Arc::new(merged);
    }

    /// The list in force rebuilt after an API change, and every connection told.
    fn apply_revocations(&self) {
        self.set_revocations(self.file_revocations());
        self.permissions_changed();
    }

    /// Takes back the bans and revocations a store held (those that ended while the broker
    /// was down are deleted); how many bans and revocations are in force.
    pub(super) fn restore_operator(&self, records: Vec<OperatorRecord>) -> (usize, usize) {
        let now = SystemTime::now();
        let counts = {
            let mut bans = self.bans.write();
            let mut made = self.operator_revocations.lock();
            for record in records {
                match record {
                    OperatorRecord::Ban(ban) => {
                        bans.insert(ban);
                    }
                    OperatorRecord::Revocation(revocation) => {
                        made.insert(revocation);
                    }
                }
            }
            self.forget_ended_bans(&mut bans, now);
            self.forget_ended_revocations(&mut made, now);
            (bans.len(), made.len())
        };
        self.set_revocations(self.file_revocations());
        counts
    }
}
