//! Identity in filter state: jwt-auth writes these properties, the other filters read them.
//!
//! In Envoy `set_property(["tollgate.subject"], …)` writes filter state `wasm.tollgate.subject`,
//! readable by every wasm filter on the stream and by access logs, and not forgeable by a client.

/// The verified subject (`sub` claim).
pub const SUBJECT: &str = "tollgate.subject";
/// The verified groups, encoded with [`encode_groups`].
pub const GROUPS: &str = "tollgate.groups";
/// The issuer that verified the token.
pub const ISSUER: &str = "tollgate.issuer";

/// Groups travel as a JSON array of strings: unambiguous whatever the names contain, and
/// readable as-is in an access log.
pub fn encode_groups(groups: &[String]) -> Vec<u8> {
    serde_json::to_vec(groups).unwrap_or_else(|_| b"[]".to_vec())
}

/// Decodes [`encode_groups`]' output; anything else yields `None` (callers fail closed).
pub fn decode_groups(raw: &[u8]) -> Option<Vec<String>> {
    serde_json::from_slice(raw).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_round_trip_with_awkward_names() {
        let groups = vec!["agents".to_string(), "a,b \"c\"".to_string()];
        assert_eq!(decode_groups(&encode_groups(&groups)), Some(groups));
    }

    #[test]
    fn garbage_is_not_groups() {
        assert_eq!(decode_groups(b"agents"), None);
        assert_eq!(decode_groups(b"{\"a\":1}"), None);
        assert_eq!(decode_groups(&[0xff, 0xfe]), None);
    }
}
