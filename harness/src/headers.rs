//! Header maps as Envoy keeps them: ordered, lowercase keys, repeated keys allowed.
//!
//! `get` returns the first value, `add` appends (Envoy `addCopy`), `replace` sets the first and
//! drops the others or inserts when missing (`setCopy`), `remove` drops every value and is fine
//! on a missing key. Values are bytes: an empty value is not a missing header.

/// An ordered multimap of lowercase header names to byte values. Lookups compare names ASCII
/// case-insensitively, so they need no lowercased copy of the name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HeaderMap {
    entries: Vec<(String, Vec<u8>)>,
}

impl HeaderMap {
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a map from pairs; names are lowercased.
    pub fn from_pairs<K: AsRef<str>, V: AsRef<[u8]>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.add(k.as_ref(), v.as_ref());
        }
        map
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.entries
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// The first value as UTF-8 text (lossy).
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Every value of `name`, in order.
    pub fn get_all(&self, name: &str) -> Vec<&[u8]> {
        self.entries
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .collect()
    }

    pub fn add(&mut self, name: &str, value: &[u8]) {
        self.entries
            .push((name.to_ascii_lowercase(), value.to_vec()));
    }

    pub fn replace(&mut self, name: &str, value: &[u8]) {
        match self
            .entries
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(name))
        {
            Some(first) => {
                self.entries[first].1 = value.to_vec();
                let mut index = 0;
                self.entries.retain(|(k, _)| {
                    let keep = index <= first || !k.eq_ignore_ascii_case(name);
                    index += 1;
                    keep
                });
            }
            None => self.add(name, value),
        }
    }

    /// Drops every value of `name`; a missing name is not an error.
    pub fn remove(&mut self, name: &str) {
        self.entries.retain(|(k, _)| !k.eq_ignore_ascii_case(name));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }

    /// Pairs as text (values decoded lossily), for assertions and reports.
    pub fn to_pairs(&self) -> Vec<(String, String)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    /// The proxy-wasm wire format: count, then (key len, value len) pairs, then each key and
    /// value followed by a NUL byte; all integers little-endian u32.
    pub fn serialize(&self) -> Vec<u8> {
        serialize_pairs(
            self.entries
                .iter()
                .map(|(k, v)| (k.as_bytes(), v.as_slice())),
        )
    }

    /// Parses the proxy-wasm wire format. `None` on any inconsistency.
    pub fn deserialize(bytes: &[u8]) -> Option<HeaderMap> {
        let pairs = deserialize_pairs(bytes)?;
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            let key = String::from_utf8(k).ok()?;
            map.add(&key, &v);
        }
        Some(map)
    }
}

pub(crate) fn serialize_pairs<'a>(
    pairs: impl Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
) -> Vec<u8> {
    let count = pairs.clone().count();
    let mut out = Vec::new();
    out.extend_from_slice(&(count as u32).to_le_bytes());
    for (k, v) in pairs.clone() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

pub(crate) fn deserialize_pairs(bytes: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let read_u32 = |at: usize| -> Option<usize> {
        let raw: [u8; 4] = bytes.get(at..at.checked_add(4)?)?.try_into().ok()?;
        Some(u32::from_le_bytes(raw) as usize)
    };
    let count = read_u32(0)?;
    let mut data_at = count.checked_mul(8)?.checked_add(4)?;
    if data_at > bytes.len() {
        return None;
    }
    let mut pairs = Vec::with_capacity(count);
    for n in 0..count {
        let key_len = read_u32(4 + n * 8)?;
        let value_len = read_u32(8 + n * 8)?;
        let key = bytes.get(data_at..data_at.checked_add(key_len)?)?.to_vec();
        data_at += key_len + 1;
        let value = bytes
            .get(data_at..data_at.checked_add(value_len)?)?
            .to_vec();
        data_at += value_len + 1;
        pairs.push((key, value));
    }
    Some(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envoy_map_semantics() {
        let mut map = HeaderMap::from_pairs([("X-A", "1"), ("x-b", "2"), ("x-a", "3")]);
        assert_eq!(map.get("x-a"), Some(&b"1"[..]));
        assert_eq!(map.get_all("X-A").len(), 2);
        map.replace("x-a", b"9");
        assert_eq!(map.get_all("x-a"), vec![&b"9"[..]]);
        map.replace("x-new", b"");
        assert_eq!(map.get("x-new"), Some(&b""[..]));
        map.remove("x-missing");
        map.remove("x-a");
        assert_eq!(map.get("x-a"), None);
        assert_eq!(map.len(), 2);
    }

    #[test]
    fn wire_format_round_trips() {
        let map = HeaderMap::from_pairs([(":path", "/v1"), ("empty", ""), ("k", "v\u{e9}")]);
        let bytes = map.serialize();
        assert_eq!(HeaderMap::deserialize(&bytes), Some(map));
        assert_eq!(HeaderMap::deserialize(&[]), Some(HeaderMap::new()));
    }

    #[test]
    fn truncated_wire_format_is_rejected() {
        let bytes = HeaderMap::from_pairs([("key", "value")]).serialize();
        for cut in 1..bytes.len() - 1 {
            assert_eq!(HeaderMap::deserialize(&bytes[..cut]), None, "cut at {cut}");
        }
        assert_eq!(HeaderMap::deserialize(&[255, 255, 255, 255]), None);
    }
}
