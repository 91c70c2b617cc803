//! Bans: client identifiers, user names and addresses (or networks) refused at CONNECT
//! (reason code 0x8A, 3.x return code 5) before any authenticator is asked, and disconnected
//! when the ban is made. Looking a client up costs one hash lookup per kind, and one per
//! distinct network prefix length banned.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::time::SystemTime;

use super::OperatorEntry;
use crate::network::Network;

/// What a ban names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BanTarget {
    /// A client identifier.
    Client(String),
    /// A user name (the one a client sends, and the principal's).
    User(String),
    /// An address or network.
    Address(Network),
}

impl BanTarget {
    /// The kind's word in the API: `client`, `user` or `address`.
    pub fn kind(&self) -> &'static str {
        match self {
            BanTarget::Client(_) => "client",
            BanTarget::User(_) => "user",
            BanTarget::Address(_) => "address",
        }
    }

    /// The target of `kind` and `value`, or why there is none.
    pub fn parse(kind: &str, value: &str) -> Result<BanTarget, String> {
        if value.is_empty() || value.len() > super::MAX_VALUE_BYTES {
            return Err(format!(
                "a value of 1 to {} bytes is needed",
                super::MAX_VALUE_BYTES
            ));
        }
        match kind {
            "client" => Ok(BanTarget::Client(value.to_owned())),
            "user" => Ok(BanTarget::User(value.to_owned())),
            "address" => Network::parse(value)
                .map(BanTarget::Address)
                .map_err(|e| e.to_string()),
            _ => Err("kind must be client, user or address".to_owned()),
        }
    }
}

impl fmt::Display for BanTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanTarget::Client(id) | BanTarget::User(id) => f.write_str(id),
            BanTarget::Address(network) => network.fmt(f),
        }
    }
}

/// A ban: its target and the operator's entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// Who is banned.
    pub target: BanTarget,
    /// Why, until when, by whom.
    pub entry: OperatorEntry,
}

impl Ban {
    /// Whether it names `subject` (whatever its end).
    pub fn names(&self, subject: BanSubject<'_>) -> bool {
        match &self.target {
            BanTarget::Client(id) => id == subject.client_id,
            BanTarget::User(user) => subject.users.iter().flatten().any(|u| u == user),
            BanTarget::Address(network) => subject.address.is_some_and(|a| network.contains(a)),
        }
    }
}

/// What a client is, as a ban sees it.
#[derive(Debug, Clone, Copy)]
pub struct BanSubject<'a> {
    /// Its client identifier.
    pub client_id: &'a str,
    /// The user names it goes by (sent in CONNECT, given by its authenticator).
    pub users: [Option<&'a str>; 2],
    /// The address it connects from (`None`: unknown, no ban by address applies).
    pub address: Option<IpAddr>,
}

/// The bans in force.
#[derive(Debug, Clone, Default)]
pub struct BanList {
    clients: HashMap<String, OperatorEntry>,
    users: HashMap<String, OperatorEntry>,
    networks: HashMap<Network, OperatorEntry>,
    /// How many of `networks` have each (IPv4?, prefix length).
    prefixes: BTreeMap<(bool, u8), usize>,
}

impl BanList {
    /// How many bans there are.
    pub fn len(&self) -> usize {
        self.clients.len() + self.users.len() + self.networks.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether there is a ban of `target` (in force or not).
    pub fn holds(&self, target: &BanTarget) -> bool {
        match target {
            BanTarget::Client(id) => self.clients.contains_key(id),
            BanTarget::User(user) => self.users.contains_key(user),
            BanTarget::Address(network) => self.networks.contains_key(network),
        }
    }

    /// Adds (or replaces) a ban; whether it replaced one.
    pub fn insert(&mut self, ban: Ban) -> bool {
        match ban.target {
            BanTarget::Client(id) => self.clients.insert(id, ban.entry).is_some(),
            BanTarget::User(user) => self.users.insert(user, ban.entry).is_some(),
            BanTarget::Address(network) => {
                let replaced = self.networks.insert(network, ban.entry).is_some();
                if !replaced {
                    *self
                        .prefixes
                        .entry((network.is_ipv4(), network.prefix()))
                        .or_default() += 1;
                }
                replaced
            }
        }
    }

    /// Removes the ban of `target`, if there is one.
    pub fn remove(&mut self, target: &BanTarget) -> Option<OperatorEntry> {
        match target {
            BanTarget::Client(id) => self.clients.remove(id),
            BanTarget::User(user) => self.users.remove(user),
            BanTarget::Address(network) => {
                let removed = self.networks.remove(network)?;
                let key = (network.is_ipv4(), network.prefix());
                if let Some(count) = self.prefixes.get_mut(&key) {
                    *count -= 1;
                    if *count == 0 {
                        self.prefixes.remove(&key);
                    }
                }
                Some(removed)
            }
        }
    }

    /// The ban in force at `now` that `subject` falls under, if any: its client identifier
    /// first, then its user names, then its address.
    pub fn find(&self, subject: BanSubject<'_>, now: SystemTime) -> Option<Ban> {
        if self.is_empty() {
            return None;
        }
        let live = |entry: &OperatorEntry| entry.in_force(now);
        if let Some(entry) = self.clients.get(subject.client_id).filter(|e| live(e)) {
            return Some(ban(BanTarget::Client(subject.client_id.to_owned()), entry));
        }
        for user in subject.users.into_iter().flatten() {
            if let Some(entry) = self.users.get(user).filter(|e| live(e)) {
                return Some(ban(BanTarget::User(user.to_owned()), entry));
            }
        }
        let address = subject.address?;
        for &(ipv4, prefix) in self.prefixes.keys() {
            let Some(network) = Network::enclosing(address, prefix, ipv4) else {
                continue;
            };
            if let Some(entry) = self.networks.get(&network).filter(|e| live(e)) {
                return Some(ban(BanTarget::Address(network), entry));
            }
        }
        None
    }

    /// Every ban, sorted by kind and value.
    pub fn all(&self) -> Vec<Ban> {
        let mut bans: Vec<Ban> = self
            .clients
            .iter()
            .map(|(id, e)| ban(BanTarget::Client(id.clone()), e))
            .chain(
                self.users
                    .iter()
                    .map(|(user, e)| ban(BanTarget::User(user.clone()), e)),
            )
            .chain(
                self.networks
                    .iter()
                    .map(|(network, e)| ban(BanTarget::Address(*network), e)),
            )
            .collect();
        bans.sort_by(|a, b| a.target.cmp(&b.target));
        bans
    }

    /// Removes the bans that ended before `now`; their targets.
    pub fn remove_ended(&mut self, now: SystemTime) -> Vec<BanTarget> {
        let ended = |entry: &OperatorEntry| !entry.in_force(now);
        let mut gone: Vec<BanTarget> = Vec::new();
        gone.extend(
            self.clients
                .iter()
                .filter(|(_, e)| ended(e))
                .map(|(id, _)| BanTarget::Client(id.clone())),
        );
        gone.extend(
            self.users
                .iter()
                .filter(|(_, e)| ended(e))
                .map(|(u, _)| BanTarget::User(u.clone())),
        );
        gone.extend(
            self.networks
                .iter()
                .filter(|(_, e)| ended(e))
                .map(|(n, _)| BanTarget::Address(*n)),
        );
        for target in &gone {
            self.remove(target);
        }
        gone
    }
}

fn ban(target: BanTarget, entry: &OperatorEntry) -> Ban {
    Ban {
        target,
        entry: entry.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(until: Option<SystemTime>) -> OperatorEntry {
        OperatorEntry {
            reason: "test".into(),
            until,
            made_at: SystemTime::UNIX_EPOCH,
            by: "ops".into(),
        }
    }

    fn subject<'a>(client_id: &'a str, user: Option<&'a str>, address: &str) -> BanSubject<'a> {
        BanSubject {
            client_id,
            users: [user, None],
            address: Some(address.parse().unwrap()),
        }
    }

    #[test]
    fn a_client_is_found_by_its_identifier_user_or_network() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let mut bans = BanList::default();
        for (kind, value) in [
            ("client", "bad-1"),
            ("user", "mallory"),
            ("address", "10.0.0.0/8"),
            ("address", "2001:db8::7"),
        ] {
            let target = BanTarget::parse(kind, value).unwrap();
            assert!(!bans.insert(Ban {
                target,
                entry: entry(None)
            }));
        }
        let found = |bans: &BanList, s| bans.find(s, now).map(|b| b.target.to_string());
        assert_eq!(
            found(&bans, subject("bad-1", None, "192.0.2.1")).as_deref(),
            Some("bad-1")
        );
        assert_eq!(
            found(&bans, subject("ok", Some("mallory"), "192.0.2.1")).as_deref(),
            Some("mallory")
        );
        assert_eq!(
            found(&bans, subject("ok", None, "::ffff:10.2.3.4")).as_deref(),
            Some("10.0.0.0/8")
        );
        assert_eq!(
            found(&bans, subject("ok", None, "2001:db8::7")).as_deref(),
            Some("2001:db8::7")
        );
        assert_eq!(found(&bans, subject("ok", Some("alice"), "11.0.0.1")), None);
        assert_eq!(found(&bans, subject("ok", None, "2001:db8::8")), None);

        let network = BanTarget::parse("address", "10.0.0.0/8").unwrap();
        assert!(bans.remove(&network).is_some());
        assert_eq!(found(&bans, subject("ok", None, "10.2.3.4")), None);
        assert_eq!(bans.len(), 3);
    }

    #[test]
    fn a_ban_ends_at_its_time_and_is_then_removed() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let end = t0 + Duration::from_secs(60);
        let mut bans = BanList::default();
        bans.insert(Ban {
            target: BanTarget::parse("client", "c").unwrap(),
            entry: entry(Some(end)),
        });
        assert!(bans.find(subject("c", None, "10.0.0.1"), t0).is_some());
        assert!(bans.find(subject("c", None, "10.0.0.1"), end).is_none());
        assert!(bans.remove_ended(t0).is_empty());
        assert_eq!(bans.remove_ended(end).len(), 1);
        assert!(bans.is_empty());
    }

    #[test]
    fn targets_are_bounded_and_checked() {
        assert!(BanTarget::parse("client", "").is_err());
        assert!(
            BanTarget::parse("client", &"x".repeat(super::super::MAX_VALUE_BYTES + 1)).is_err()
        );
        assert!(BanTarget::parse("address", "10.0.0.0/40").is_err());
        assert!(BanTarget::parse("jti", "x").is_err());
    }
}
