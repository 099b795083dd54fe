//! The proxy-wasm ABI's byte formats for header maps and property paths, as pure functions.
//!
//! A serialized map is `count: u32le`, then `count` pairs of `(name_len: u32le, value_len:
//! u32le)`, then each name and value followed by a NUL byte. The host writes it; a value may
//! hold any byte (HTTP allows obs-text), so values stay bytes and a malformed map is an error,
//! never a panic.

/// A header name (lowercase ASCII in Envoy; decoded lossily if a host ever sends other bytes)
/// and its value as the bytes that arrived.
pub type Pair = (String, Vec<u8>);

/// The host sent a map whose sizes do not fit its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MalformedMap;

fn read_u32(bytes: &[u8], at: usize) -> Option<usize> {
    let end = at.checked_add(4)?;
    let raw: [u8; 4] = bytes.get(at..end)?.try_into().ok()?;
    usize::try_from(u32::from_le_bytes(raw)).ok()
}

/// Decodes a serialized header map; an empty buffer is an empty map.
pub fn decode_map(bytes: &[u8]) -> Result<Vec<Pair>, MalformedMap> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let count = read_u32(bytes, 0).ok_or(MalformedMap)?;
    // Each pair takes at least 8 size bytes and 2 NULs: bound the count before allocating.
    let sizes_end = count
        .checked_mul(8)
        .and_then(|n| n.checked_add(4))
        .filter(|end| *end <= bytes.len() && count.saturating_mul(10) <= bytes.len())
        .ok_or(MalformedMap)?;
    let mut pairs = Vec::with_capacity(count);
    let mut data = sizes_end;
    for i in 0..count {
        let name_len = read_u32(bytes, 4 + i * 8).ok_or(MalformedMap)?;
        let value_len = read_u32(bytes, 8 + i * 8).ok_or(MalformedMap)?;
        let name = take(bytes, &mut data, name_len)?;
        let value = take(bytes, &mut data, value_len)?;
        pairs.push((String::from_utf8_lossy(name).into_owned(), value.to_vec()));
    }
    Ok(pairs)
}

/// The `len` bytes at `*at` followed by their NUL; advances `*at` past the NUL.
fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Result<&'a [u8], MalformedMap> {
    let end = at.checked_add(len).ok_or(MalformedMap)?;
    let field = bytes.get(*at..end).ok_or(MalformedMap)?;
    if bytes.get(end) != Some(&0) {
        return Err(MalformedMap);
    }
    *at = end + 1;
    Ok(field)
}

/// Encodes pairs in the map format (for local replies). Sizes beyond `u32` cannot occur for
/// header data; such a pair would be truncated by the host's own limits first.
pub fn encode_map(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| k.len() + v.len() + 10)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    let len32 = |n: usize| u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes();
    out.extend_from_slice(&len32(pairs.len()));
    for (k, v) in pairs {
        out.extend_from_slice(&len32(k.len()));
        out.extend_from_slice(&len32(v.len()));
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// A property path (`["tollgate.subject"]`, `["request", "path"]`) joined by NULs.
pub fn encode_path(path: &[&str]) -> Vec<u8> {
    let mut out = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            out.push(0);
        }
        out.extend_from_slice(part.as_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_any_value_bytes() {
        let pairs: Vec<(&str, &[u8])> = vec![
            (":path", b"/v1/messages"),
            ("x-note", b"caf\xe9"),
            ("empty", b""),
            ("nul", b"a\0b"),
        ];
        let decoded = decode_map(&encode_map(&pairs)).unwrap();
        let expected: Vec<Pair> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_vec()))
            .collect();
        assert_eq!(decoded, expected);
    }

    #[test]
    fn empty_buffer_is_an_empty_map() {
        assert_eq!(decode_map(&[]), Ok(Vec::new()));
        assert_eq!(decode_map(&encode_map(&[])), Ok(Vec::new()));
    }

    #[test]
    fn malformed_maps_are_errors() {
        let good = encode_map(&[("a", b"b")]);
        for cut in 1..good.len() {
            assert_eq!(decode_map(&good[..cut]), Err(MalformedMap), "cut {cut}");
        }
        let mut no_nul = good.clone();
        let last = no_nul.len() - 1;
        no_nul[last] = b'x';
        assert_eq!(decode_map(&no_nul), Err(MalformedMap));
        let huge_count = [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        assert_eq!(decode_map(&huge_count), Err(MalformedMap));
        let mut huge_len = good;
        huge_len[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode_map(&huge_len), Err(MalformedMap));
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            let _ = decode_map(&bytes);
        }
    }

    #[test]
    fn paths_join_with_nul() {
        assert_eq!(encode_path(&["tollgate.subject"]), b"tollgate.subject");
        assert_eq!(encode_path(&["request", "path"]), b"request\0path");
        assert!(encode_path(&[]).is_empty());
    }
}
