//! A cache of successful authentications, so a client that reconnects with the same
//! credentials does not cost another password hash or token verification.
//!
//! Only allows are cached, never denials or errors. Entries are keyed by a SHA-256 digest of
//! the credentials (the secrets themselves are not kept), expire after a TTL, and are ignored
//! once the authenticator's revision changes (a password file was reloaded).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use super::outcome::Identity;
use super::request::ConnectRequest;

/// Cached allows of one authenticator.
#[derive(Debug)]
pub struct AuthCache {
    ttl: Duration,
    capacity: usize,
    entries: Mutex<HashMap<[u8; 32], CachedAllow>>,
}

#[derive(Debug, Clone)]
struct CachedAllow {
    identity: Identity,
    revision: u64,
    stored_at: Instant,
}

impl AuthCache {
    /// A cache keeping each allow for `ttl`, holding at most `capacity` entries.
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        AuthCache {
            ttl,
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The digest under which a request's credentials are cached: the listener and the
    /// credentials always, the client identifier only when `with_client_id`, the client's
    /// address only when `with_peer`.
    pub fn key(request: &ConnectRequest, with_client_id: bool, with_peer: bool) -> [u8; 32] {
        let mut h = Sha256::new();
        let mut field = |bytes: &[u8]| {
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        field(request.listener.as_bytes());
        let peer = if with_peer {
            request.peer.ip().to_string()
        } else {
            "\0any".to_owned()
        };
        field(peer.as_bytes());
        field(if with_client_id {
            request.client_id.as_bytes()
        } else {
            b"\0any"
        });
        field(request.username.as_deref().unwrap_or("\0none").as_bytes());
        field(
            request
                .password
                .as_ref()
                .map_or(&b"\0none"[..], |p| p.expose()),
        );
        field(
            request
                .certificate
                .as_ref()
                .map_or("\0none", |c| c.fingerprint_sha256.as_str())
                .as_bytes(),
        );
        field(
            request
                .authentication_method
                .as_deref()
                .unwrap_or("\0none")
                .as_bytes(),
        );
        field(
            request
                .authentication_data
                .as_ref()
                .map_or(&b"\0none"[..], |d| d.expose()),
        );
        h.finalize().into()
    }

    /// The cached identity for `key`, if stored within the TTL at `revision`.
    pub fn get(&self, key: &[u8; 32], revision: u64, now: Instant) -> Option<Identity> {
        let mut entries = self.entries.lock();
        match entries.get(key) {
            Some(e) if e.revision == revision && now.duration_since(e.stored_at) < self.ttl => {
                if e.identity
                    .expires_at
                    .is_some_and(|exp| exp <= std::time::SystemTime::now())
                {
                    entries.remove(key);
                    return None;
                }
                Some(e.identity.clone())
            }
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Remembers an allow.
    pub fn put(&self, key: [u8; 32], identity: Identity, revision: u64, now: Instant) {
        let mut entries = self.entries.lock();
        if entries.len() >= self.capacity {
            let ttl = self.ttl;
            entries.retain(|_, e| now.duration_since(e.stored_at) < ttl);
            if entries.len() >= self.capacity {
                entries.clear();
            }
        }
        entries.insert(
            key,
            CachedAllow {
                identity,
                revision,
                stored_at: now,
            },
        );
    }

    /// Forgets every cached allow.
    pub fn flush(&self) {
        self.entries.lock().clear();
    }

    /// How many allows are cached.
    pub fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::Secret;

    fn request(password: &str) -> ConnectRequest {
        let mut r = ConnectRequest::new("l", "127.0.0.1:1".parse().unwrap(), "c");
        r.username = Some("u".into());
        r.password = Some(Secret::new(password));
        r
    }

    #[test]
    fn entries_expire_change_with_revision_and_differ_by_password() {
        let cache = AuthCache::new(Duration::from_secs(10), 100);
        let t0 = Instant::now();
        let key = AuthCache::key(&request("right"), true, false);
        assert_ne!(key, AuthCache::key(&request("wrong"), true, false));
        let mut other_client = request("right");
        other_client.client_id = "other".into();
        assert_ne!(key, AuthCache::key(&other_client, true, false));
        assert_eq!(
            AuthCache::key(&request("right"), false, false),
            AuthCache::key(&other_client, false, false)
        );
        let mut other_listener = request("right");
        other_listener.listener = "elsewhere".into();
        assert_ne!(key, AuthCache::key(&other_listener, true, false));
        let mut other_peer = request("right");
        other_peer.peer = "10.1.1.1:1".parse().unwrap();
        assert_eq!(key, AuthCache::key(&other_peer, true, false));
        assert_ne!(
            AuthCache::key(&request("right"), true, true),
            AuthCache::key(&other_peer, true, true)
        );
        cache.put(key, Identity::default(), 1, t0);
        assert!(cache.get(&key, 1, t0 + Duration::from_secs(5)).is_some());
        assert!(
            cache.get(&key, 2, t0 + Duration::from_secs(5)).is_none(),
            "a reload invalidates"
        );
        cache.put(key, Identity::default(), 1, t0);
        assert!(
            cache.get(&key, 1, t0 + Duration::from_secs(11)).is_none(),
            "expired"
        );
        cache.put(key, Identity::default(), 1, t0);
        cache.flush();
        assert!(cache.is_empty());
    }

    #[test]
    fn capacity_is_bounded() {
        let cache = AuthCache::new(Duration::from_secs(10), 2);
        let t0 = Instant::now();
        for i in 0..5u8 {
            cache.put([i; 32], Identity::default(), 0, t0);
        }
        assert!(cache.len() <= 2);
    }
}
