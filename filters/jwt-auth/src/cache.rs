//! The verified-token cache: an agent reusing its token costs a hash-map lookup, not a
//! signature check. Bounded in size (oldest entries evicted first); an entry never outlives the
//! token's `exp` nor the configured maximum age.
//!
//! Entries are keyed by the token itself and a hit is an exact byte comparison, so no crafted
//! token can ever collide with a verified one. The map hashes with std's `RandomState` (SipHash
//! with per-VM random keys), which keeps hash flooding out without a cryptographic digest per
//! request (SHA-256 of a ~600-byte RS256 token cost ~3 µs in wasm). The price: verified tokens
//! stay in the VM's memory until they expire or are evicted, as in Envoy's own `jwt_authn` cache.

use std::collections::{HashMap, VecDeque};
use std::rc::Rc;

#[derive(Debug)]
struct Entry<V> {
    value: V,
    /// Seconds since the epoch; the entry is dead from this instant on.
    expires_at: u64,
}

/// A bounded map from token hashes to verified values.
#[derive(Debug)]
pub struct TokenCache<V> {
    entries: HashMap<Rc<str>, Entry<V>>,
    order: VecDeque<Rc<str>>,
    max_entries: usize,
    max_age_secs: u64,
}

impl<V> TokenCache<V> {
    pub fn new(max_entries: usize, max_age_secs: u64) -> Self {
        TokenCache {
            entries: HashMap::new(),
            order: VecDeque::new(),
            max_entries,
            max_age_secs,
        }
    }

    /// The cached value for `token` if it is still alive at `now`.
    pub fn get(&mut self, token: &str, now: u64) -> Option<&V> {
        let alive = self.entries.get(token).map(|e| now < e.expires_at)?;
        if !alive {
            self.entries.remove(token);
            return None;
        }
        self.entries.get(token).map(|e| &e.value)
    }

    /// Caches `value` for `token` until `exp` (if any), capped by the maximum age.
    pub fn insert(&mut self, token: &str, value: V, exp: Option<u64>, now: u64) {
        if self.max_entries == 0 {
            return;
        }
        let cap = now.saturating_add(self.max_age_secs);
        let expires_at = exp.map_or(cap, |e| e.min(cap));
        if expires_at <= now {
            return;
        }
        if let Some(entry) = self.entries.get_mut(token) {
            *entry = Entry { value, expires_at };
        } else {
            let key: Rc<str> = Rc::from(token);
            self.order.push_back(Rc::clone(&key));
            self.entries.insert(key, Entry { value, expires_at });
        }
        while self.entries.len() > self.max_entries {
            self.evict_one(now);
        }
        // Keep the order queue from growing with keys already removed on expiry.
        if self.order.len() > 2 * self.max_entries.max(1) {
            let entries = &self.entries;
            self.order.retain(|k| entries.contains_key(k.as_ref()));
        }
    }

    fn evict_one(&mut self, now: u64) {
        // Expired entries go first; otherwise the oldest insertion.
        self.entries.retain(|_, e| now < e.expires_at);
        if self.entries.len() <= self.max_entries {
            return;
        }
        while let Some(oldest) = self.order.pop_front() {
            if self.entries.remove(oldest.as_ref()).is_some() {
                return;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_until_exp_then_miss() {
        let mut c = TokenCache::new(10, 3600);
        c.insert("t1", 1, Some(1100), 1000);
        assert_eq!(c.get("t1", 1000), Some(&1));
        assert_eq!(c.get("t1", 1099), Some(&1));
        assert_eq!(c.get("t1", 1100), None, "never past exp");
        assert_eq!(c.get("t2", 1000), None);
        assert!(c.is_empty());
    }

    #[test]
    fn max_age_caps_long_lived_and_exp_less_tokens() {
        let mut c = TokenCache::new(10, 60);
        c.insert("a", 1, Some(10_000), 1000);
        c.insert("b", 2, None, 1000);
        assert_eq!(c.get("a", 1059), Some(&1));
        assert_eq!(c.get("a", 1060), None);
        assert_eq!(c.get("b", 1060), None);
    }

    #[test]
    fn expired_tokens_are_not_cached() {
        let mut c = TokenCache::new(10, 60);
        c.insert("a", 1, Some(1000), 1000);
        c.insert("b", 1, Some(900), 1000);
        assert!(c.is_empty());
    }

    #[test]
    fn size_is_bounded_and_oldest_goes_first() {
        let mut c = TokenCache::new(3, 3600);
        for (i, t) in ["a", "b", "c", "d"].iter().enumerate() {
            c.insert(t, i, Some(5000), 1000);
        }
        assert_eq!(c.len(), 3);
        assert_eq!(c.get("a", 1000), None);
        assert_eq!(c.get("d", 1000), Some(&3));
        // An expired entry is evicted before a live old one.
        let mut c = TokenCache::new(2, 3600);
        c.insert("old-live", 1, Some(5000), 1000);
        c.insert("short", 2, Some(1001), 1000);
        c.insert("new", 3, Some(5000), 1002);
        assert_eq!(c.get("old-live", 1002), Some(&1));
        assert_eq!(c.get("new", 1002), Some(&3));
    }

    #[test]
    fn zero_capacity_disables_the_cache() {
        let mut c = TokenCache::new(0, 3600);
        c.insert("a", 1, None, 0);
        assert_eq!(c.get("a", 0), None);
    }

    #[test]
    fn a_hit_needs_the_exact_token() {
        let mut c = TokenCache::new(10, 3600);
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln";
        c.insert(token, 1, None, 1000);
        assert_eq!(c.get(token, 1000), Some(&1));
        // Every one-byte change, truncation and extension misses.
        for i in 0..token.len() {
            let mut forged = token.as_bytes().to_vec();
            forged[i] ^= 1;
            let forged = String::from_utf8(forged).unwrap();
            assert_eq!(c.get(&forged, 1000), None, "byte {i}");
            assert_eq!(c.get(&token[..i], 1000), None, "prefix {i}");
        }
        assert_eq!(c.get(&format!("{token}x"), 1000), None);
    }

    #[test]
    fn reinserting_a_token_keeps_one_entry() {
        let mut c = TokenCache::new(2, 3600);
        c.insert("a", 1, None, 1000);
        c.insert("a", 2, None, 1000);
        c.insert("b", 3, None, 1000);
        assert_eq!(c.len(), 2);
        assert_eq!(c.get("a", 1000), Some(&2));
        assert_eq!(c.get("b", 1000), Some(&3));
    }
}
