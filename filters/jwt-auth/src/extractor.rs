//! Where the token is: configured headers, each with an optional scheme prefix
//! (`Authorization: Bearer <jwt>` by default; `x-api-key: <jwt>`, since the Anthropic SDKs
//! send their key there; any named header). Exactly one token per request: two headers, a
//! repeated header or a comma-joined value all count as more than one, and are refused.
//! Tokens anywhere else (query strings, cookies, unlisted headers) are never looked at.
//!
//! Header values arrive as bytes. A token must be visible ASCII: a value at a token location
//! with any other byte (non-UTF-8, control, non-ASCII) is a malformed token (401), never a trap.

use crate::verifier::Reject;

/// One place a token may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// Lowercase header name.
    pub header: String,
    /// Scheme prefix such as `Bearer ` (matched case-insensitively), or none.
    pub prefix: Option<String>,
}

impl Location {
    pub fn bearer() -> Location {
        Location {
            header: "authorization".into(),
            prefix: Some("Bearer ".into()),
        }
    }
}

/// A token and the header it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub token: String,
    pub header: String,
}

fn strip_prefix<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    if head.eq_ignore_ascii_case(prefix) {
        value.get(prefix.len()..)
    } else {
        None
    }
}

/// Finds the request's token. `Ok(None)`: no token at all. A header value at a configured
/// location that lacks the prefix (`Authorization: Basic …`) is not a token.
pub fn extract(
    headers: &[(String, Vec<u8>)],
    locations: &[Location],
) -> Result<Option<Found>, Reject> {
    let mut found: Option<Found> = None;
    for (name, raw) in headers {
        for loc in locations
            .iter()
            .filter(|l| name.eq_ignore_ascii_case(&l.header))
        {
            // Lossy: a scheme prefix is ASCII, and a replaced byte makes the token malformed.
            let value = String::from_utf8_lossy(raw);
            let token = match &loc.prefix {
                Some(prefix) => match strip_prefix(value.trim_start(), prefix) {
                    Some(rest) => rest.trim(),
                    None => continue,
                },
                None => value.trim(),
            };
            if token.contains(',') {
                return Err(Reject::Multiple);
            }
            if token.is_empty() || !token.bytes().all(|b| b.is_ascii_graphic()) {
                return Err(Reject::Malformed);
            }
            if found.is_some() {
                return Err(Reject::Multiple);
            }
            found = Some(Found {
                token: token.to_owned(),
                header: loc.header.clone(),
            });
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.as_bytes().to_vec()))
            .collect()
    }

    fn both() -> Vec<Location> {
        vec![
            Location::bearer(),
            Location {
                header: "x-api-key".into(),
                prefix: None,
            },
        ]
    }

    #[test]
    fn bearer_is_found_case_insensitively() {
        for v in [
            "Bearer abc.def.ghi",
            "bearer abc.def.ghi",
            "BEARER   abc.def.ghi  ",
        ] {
            let f = extract(&h(&[("authorization", v)]), &[Location::bearer()]).unwrap();
            assert_eq!(f.unwrap().token, "abc.def.ghi", "{v}");
        }
    }

    #[test]
    fn other_schemes_and_absent_headers_are_no_token() {
        let locs = [Location::bearer()];
        assert_eq!(
            extract(&h(&[("authorization", "Basic dXNlcjpw")]), &locs),
            Ok(None)
        );
        assert_eq!(
            extract(&h(&[("authorization", "Bearerabc")]), &locs),
            Ok(None)
        );
        assert_eq!(extract(&h(&[("content-type", "x")]), &locs), Ok(None));
    }

    #[test]
    fn tokens_in_unexpected_places_are_ignored() {
        let locs = [Location::bearer()];
        let headers = h(&[
            (":path", "/v1/messages?access_token=a.b.c"),
            ("cookie", "token=a.b.c"),
            ("x-api-key", "a.b.c"),
            ("x-token", "Bearer a.b.c"),
        ]);
        assert_eq!(extract(&headers, &locs), Ok(None));
    }

    #[test]
    fn x_api_key_and_named_headers_work() {
        let f = extract(&h(&[("x-api-key", "a.b.c")]), &both())
            .unwrap()
            .unwrap();
        assert_eq!(
            f,
            Found {
                token: "a.b.c".into(),
                header: "x-api-key".into()
            }
        );
    }

    #[test]
    fn more_than_one_token_is_refused() {
        let two_places = h(&[("authorization", "Bearer a.b.c"), ("x-api-key", "d.e.f")]);
        assert_eq!(extract(&two_places, &both()), Err(Reject::Multiple));
        let same_twice = h(&[("authorization", "Bearer a.b.c"), ("x-api-key", "a.b.c")]);
        assert_eq!(extract(&same_twice, &both()), Err(Reject::Multiple));
        let repeated = h(&[
            ("authorization", "Bearer a.b.c"),
            ("authorization", "Bearer d.e.f"),
        ]);
        assert_eq!(extract(&repeated, &both()), Err(Reject::Multiple));
        let joined = h(&[("authorization", "Bearer a.b.c, Bearer d.e.f")]);
        assert_eq!(extract(&joined, &both()), Err(Reject::Multiple));
    }

    #[test]
    fn empty_or_spaced_tokens_are_malformed() {
        assert_eq!(
            extract(&h(&[("authorization", "Bearer ")]), &both()),
            Err(Reject::Malformed)
        );
        assert_eq!(
            extract(&h(&[("authorization", "Bearer a b")]), &both()),
            Err(Reject::Malformed)
        );
        assert_eq!(
            extract(&h(&[("x-api-key", "")]), &both()),
            Err(Reject::Malformed)
        );
    }

    #[test]
    fn non_ascii_and_control_bytes_make_a_malformed_token() {
        for raw in [
            &b"Bearer caf\xe9.b.c"[..],
            b"Bearer \xff",
            b"Bearer a.b\x01.c",
            b"Bearer a.b.c\x7f",
            "Bearer a.b.\u{e9}".as_bytes(),
        ] {
            let headers = vec![("authorization".to_string(), raw.to_vec())];
            assert_eq!(
                extract(&headers, &both()),
                Err(Reject::Malformed),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn non_utf8_values_elsewhere_are_ignored() {
        let headers = vec![
            ("x-note".to_string(), b"caf\xe9".to_vec()),
            ("authorization".to_string(), b"Bearer a.b.c".to_vec()),
        ];
        let f = extract(&headers, &both()).unwrap().unwrap();
        assert_eq!(f.token, "a.b.c");
        let other_scheme = vec![("authorization".to_string(), b"Basic \xff\xfe".to_vec())];
        assert_eq!(extract(&other_scheme, &both()), Ok(None));
    }
}
