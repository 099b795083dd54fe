//! Pure HTTP helpers: which request paths are guarded and whether the headers describe a body
//! the guard can read.
//!
//! Paths are compared after a normalization that undoes the spellings an upstream might treat
//! as the same resource (so they cannot be used to skip the guard): the query string, fragment
//! and `;` parameters are cut (before and after decoding), percent-escapes decoded, ASCII letters
//! lowercased, repeated slashes merged, `.`/`..` segments resolved and a trailing slash dropped.

/// Normalizes a request path as described in the module docs.
pub fn normalize_path(raw: &str) -> String {
    let end = raw.find(['?', '#']).unwrap_or(raw.len());
    let decoded = percent_decode(&raw[..end]);
    // Cut again after decoding: an escaped `;`, `?` or `#` (`%3B`, `%3F`, `%23`, or double
    // encoded) must not make a guarded path look like another one to the guard.
    let decoded = match decoded.find([';', '?', '#']) {
        Some(i) => &decoded[..i],
        None => &decoded[..],
    };
    let mut parts: Vec<&str> = Vec::new();
    for seg in decoded.split(['/', '\\']) {
        match seg {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    let mut out = String::with_capacity(decoded.len() + 1);
    for p in parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out.make_ascii_lowercase();
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Decodes `%XX` escapes (repeatedly, so double encoding does not hide a path); invalid
/// escapes are kept as they are.
fn percent_decode(s: &str) -> String {
    let mut cur = s.to_string();
    for _ in 0..3 {
        if !cur.contains('%') {
            break;
        }
        let b = cur.as_bytes();
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' && i + 2 < b.len() {
                if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
            }
            out.push(b[i]);
            i += 1;
        }
        let next = String::from_utf8_lossy(&out).into_owned();
        if next == cur {
            break;
        }
        cur = next;
    }
    cur
}

/// Whether a `content-type` value is JSON (`application/json`, any parameters).
pub fn is_json(content_type: &str) -> bool {
    let media = content_type.split(';').next().unwrap_or("").trim();
    media.eq_ignore_ascii_case("application/json")
}

/// Whether a `content-encoding` value leaves the body readable (absent or `identity`).
pub fn is_identity_encoding(content_encoding: Option<&str>) -> bool {
    match content_encoding {
        None => true,
        Some(v) => v
            .split(',')
            .all(|e| e.trim().is_empty() || e.trim().eq_ignore_ascii_case("identity")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_the_same_path_normalize_alike() {
        for p in [
            "/v1/messages",
            "/v1/messages?beta=true",
            "/v1/messages/",
            "//v1//messages",
            "/V1/Messages",
            "/v1/%6Dessages",
            "/v1/%256Dessages",
            "/v1/./x/../messages",
            "/v1/messages;jsessionid=1",
            "/v1/messages#frag",
            "/v1\\messages",
        ] {
            assert_eq!(normalize_path(p), "/v1/messages", "{p}");
        }
        assert_eq!(
            normalize_path("/v1/messages/count_tokens?x"),
            "/v1/messages/count_tokens"
        );
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/v1/models"), "/v1/models");
        assert_eq!(normalize_path("/%zz/%"), "/%zz/%");
    }

    #[test]
    fn escaped_query_fragment_and_parameter_marks_are_cut_too() {
        // Found by the `path` fuzz target: "%23" decoded to a '#' that stayed in the path, so
        // the guard saw "/v1/chat/completions#…" (unguarded) where a second normalization
        // (another hop) sees "/v1/chat/completions".
        for p in [
            "/v1/chat/completions%23%/x",
            "/v1/messages%3Fbeta=true",
            "/v1/messages%253F",
            "/v1/messages%3B%2F..",
            "/v1/messages%23",
        ] {
            let n = normalize_path(p);
            assert_eq!(normalize_path(&n), n, "{p}");
            assert!(
                n == "/v1/messages" || n == "/v1/chat/completions",
                "{p} -> {n}"
            );
        }
    }

    #[test]
    fn json_content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
        assert!(!is_json(""));
    }

    #[test]
    fn encodings() {
        assert!(is_identity_encoding(None));
        assert!(is_identity_encoding(Some("identity")));
        assert!(!is_identity_encoding(Some("gzip")));
        assert!(!is_identity_encoding(Some("identity, br")));
    }
}
