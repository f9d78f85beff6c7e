//! The simulated server's data: numbered keyspaces of typed values with lazy, virtual-time expiry.
//!
//! Everything is kept in ordered maps so iteration (KEYS, SCAN, HGETALL, SMEMBERS) is the same on
//! every run. A key whose deadline is at or before `now` is gone: it is removed the first time
//! anything looks at it, and that removal counts as a modification for WATCH.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

/// How many numbered keyspaces the server has (`databases 16`).
pub(crate) const DATABASES: usize = 16;

/// A stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    /// A string (bytes).
    Str(Vec<u8>),
    /// A hash of fields to values.
    Hash(BTreeMap<Vec<u8>, Vec<u8>>),
    /// A list.
    List(VecDeque<Vec<u8>>),
    /// A set.
    Set(BTreeSet<Vec<u8>>),
}

impl Value {
    /// The name `TYPE` answers.
    pub(crate) fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::List(_) => "list",
            Value::Set(_) => "set",
        }
    }

    fn is_empty_collection(&self) -> bool {
        match self {
            Value::Str(_) => false,
            Value::Hash(h) => h.is_empty(),
            Value::List(l) => l.is_empty(),
            Value::Set(s) => s.is_empty(),
        }
    }
}

/// A key's value and deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    /// The value.
    pub(crate) value: Value,
    /// When the key expires, if ever.
    pub(crate) expires: Option<Instant>,
    /// Creation order, the SCAN cursor's position (stable while the key lives).
    seq: u64,
}

/// One numbered keyspace.
#[derive(Debug, Default)]
pub(crate) struct Db {
    map: BTreeMap<Vec<u8>, Entry>,
    order: BTreeMap<u64, Vec<u8>>,
    next_seq: u64,
    touched: Vec<Vec<u8>>,
}

impl Db {
    /// Removes `key` if its deadline has been reached (recording the modification).
    fn expire_if_due(&mut self, key: &[u8], now: Instant) {
        let due = self
            .map
            .get(key)
            .is_some_and(|e| e.expires.is_some_and(|at| at <= now));
        if due {
            self.remove_entry(key);
        }
    }

    /// The live entry at `key`.
    pub(crate) fn get(&mut self, key: &[u8], now: Instant) -> Option<&Entry> {
        self.expire_if_due(key, now);
        self.map.get(key)
    }

    /// The live entry at `key`, for writing. The caller records the write with [`Db::touch`].
    pub(crate) fn get_mut(&mut self, key: &[u8], now: Instant) -> Option<&mut Entry> {
        self.expire_if_due(key, now);
        self.map.get_mut(key)
    }

    /// Stores `value` at `key` with deadline `expires`, replacing any value (its SCAN position
    /// is kept), and records the write.
    pub(crate) fn set(&mut self, key: &[u8], value: Value, expires: Option<Instant>, now: Instant) {
        self.expire_if_due(key, now);
        self.touch(key);
        if let Some(e) = self.map.get_mut(key) {
            e.value = value;
            e.expires = expires;
            return;
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        self.order.insert(seq, key.to_vec());
        let entry = Entry {
            value,
            expires,
            seq,
        };
        self.map.insert(key.to_vec(), entry);
    }

    /// Deletes `key`; whether a live key was there.
    pub(crate) fn remove(&mut self, key: &[u8], now: Instant) -> bool {
        self.expire_if_due(key, now);
        self.remove_entry(key)
    }

    fn remove_entry(&mut self, key: &[u8]) -> bool {
        match self.map.remove(key) {
            Some(e) => {
                self.order.remove(&e.seq);
                self.touch(key);
                true
            }
            None => false,
        }
    }

    /// Deletes `key` if it holds an empty hash, list or set (Redis never keeps those).
    pub(crate) fn remove_if_empty(&mut self, key: &[u8]) {
        if self
            .map
            .get(key)
            .is_some_and(|e| e.value.is_empty_collection())
        {
            self.remove_entry(key);
        }
    }

    /// Records that `key` was modified (for WATCH).
    pub(crate) fn touch(&mut self, key: &[u8]) {
        self.touched.push(key.to_vec());
    }

    /// Takes the keys modified since the last call.
    pub(crate) fn take_touched(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.touched)
    }

    /// Removes every key whose deadline has been reached.
    pub(crate) fn purge(&mut self, now: Instant) {
        let due: Vec<Vec<u8>> = self
            .map
            .iter()
            .filter(|(_, e)| e.expires.is_some_and(|at| at <= now))
            .map(|(k, _)| k.clone())
            .collect();
        for key in due {
            self.remove_entry(&key);
        }
    }

    /// Live keys, sorted.
    pub(crate) fn keys(&mut self, now: Instant) -> Vec<Vec<u8>> {
        self.purge(now);
        self.map.keys().cloned().collect()
    }

    /// How many live keys.
    pub(crate) fn len(&mut self, now: Instant) -> usize {
        self.purge(now);
        self.map.len()
    }

    /// How many live keys have a deadline.
    pub(crate) fn expiring(&mut self, now: Instant) -> usize {
        self.purge(now);
        self.map.values().filter(|e| e.expires.is_some()).count()
    }

    /// Deletes every key (recording each as modified).
    pub(crate) fn flush(&mut self) {
        let keys: Vec<Vec<u8>> = self.map.keys().cloned().collect();
        for key in keys {
            self.remove_entry(&key);
        }
    }

    /// One SCAN step: up to `count` live keys in creation order from `cursor`, and the next
    /// cursor (`0` when done). A key alive for the whole iteration is returned exactly once.
    pub(crate) fn scan(&mut self, cursor: u64, count: usize, now: Instant) -> (u64, Vec<Vec<u8>>) {
        self.purge(now);
        let mut keys = Vec::new();
        let mut iter = self.order.range(cursor..);
        for (_, key) in iter.by_ref().take(count) {
            keys.push(key.clone());
        }
        let next = iter.next().map_or(0, |(seq, _)| *seq);
        (next, keys)
    }
}

/// Redis's glob (`stringmatchlen`): `*`, `?`, `[abc]`, `[^a-z]`, `\x` escapes.
///
/// Linear backtracking on the last `*` only, so no pattern can make it slow.
pub(crate) fn glob_match(pattern: &[u8], s: &[u8]) -> bool {
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        let step = match pattern.get(p) {
            Some(b'*') => {
                star = Some((p + 1, i));
                p += 1;
                continue;
            }
            Some(b'?') => Some(p + 1),
            Some(b'[') => match class_match(pattern, p + 1, s[i]) {
                (true, next) => Some(next),
                (false, _) => None,
            },
            Some(b'\\') if p + 1 < pattern.len() => (pattern[p + 1] == s[i]).then_some(p + 2),
            Some(&c) => (c == s[i]).then_some(p + 1),
            None => None,
        };
        match (step, star) {
            (Some(next), _) => {
                p = next;
                i += 1;
            }
            (None, Some((sp, si))) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            (None, None) => return false,
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class starting at `p` (just after `[`); returns the match and the
/// index after the closing `]` (or the pattern's end when the class is unclosed, as Redis does).
fn class_match(pattern: &[u8], mut p: usize, c: u8) -> (bool, usize) {
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    while p < pattern.len() && pattern[p] != b']' {
        if pattern[p] == b'\\' && p + 1 < pattern.len() {
            hit |= pattern[p + 1] == c;
            p += 2;
        } else if p + 2 < pattern.len() && pattern[p + 1] == b'-' && pattern[p + 2] != b']' {
            let (a, b) = (
                pattern[p].min(pattern[p + 2]),
                pattern[p].max(pattern[p + 2]),
            );
            hit |= (a..=b).contains(&c);
            p += 3;
        } else {
            hit |= pattern[p] == c;
            p += 1;
        }
    }
    (hit != negate, (p + 1).min(pattern.len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn glob_cases() {
        let m = |p: &str, s: &str| glob_match(p.as_bytes(), s.as_bytes());
        assert!(m("*", ""));
        assert!(m("*", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("a\\*b", "a*b"));
        assert!(!m("a\\*b", "axb"));
        assert!(m("user:*:name", "user:42:name"));
        assert!(!m("user:*:name", "user:42:age"));
        assert!(m("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!m("*a*b*c*", "xxaxxcxxbxx"));
        assert!(m("[abc", "a"));
        let long = "a".repeat(2000);
        assert!(!m(&("*a".repeat(50) + "b"), &long));
    }

    #[test]
    fn expiry_is_lazy_and_counts_as_a_modification() {
        let t0 = Instant::now();
        let mut db = Db::default();
        db.set(
            b"k",
            Value::Str(b"v".to_vec()),
            Some(t0 + Duration::from_secs(1)),
            t0,
        );
        db.take_touched();
        assert!(db.get(b"k", t0 + Duration::from_millis(999)).is_some());
        assert!(db.take_touched().is_empty());
        assert!(db.get(b"k", t0 + Duration::from_secs(1)).is_none());
        assert_eq!(db.take_touched(), vec![b"k".to_vec()]);
        assert_eq!(db.len(t0), 0);
    }

    #[test]
    fn scan_returns_keys_alive_throughout_exactly_once() {
        let t0 = Instant::now();
        let mut db = Db::default();
        for i in 0..10u8 {
            db.set(&[i], Value::Str(vec![i]), None, t0);
        }
        let (c1, first) = db.scan(0, 4, t0);
        assert_eq!(first.len(), 4);
        db.remove(&[0], t0);
        db.remove(&[5], t0);
        db.set(&[50], Value::Str(vec![]), None, t0);
        let mut seen = first;
        let mut cursor = c1;
        while cursor != 0 {
            let (next, keys) = db.scan(cursor, 4, t0);
            seen.extend(keys);
            cursor = next;
        }
        for i in (1..10u8).filter(|i| *i != 5) {
            assert_eq!(seen.iter().filter(|k| k.as_slice() == [i]).count(), 1);
        }
    }
}
