//! Where the key may go: the allowed-upstream check, run before any key is injected.
//!
//! A filter on the request path sees two things that say where a request is headed:
//! - the `:authority` header (what Envoy's route table matched on; the router may rewrite it
//!   later with `host_rewrite_literal`, which a filter cannot see), checked against
//!   `allowed_upstreams` (`host` matches any port, `host:port` only that port; case-insensitive);
//! - the route's cluster (Envoy's `xds.cluster_name` attribute, resolved before the filter
//!   chain runs), checked against `allowed_clusters`.
//!
//! Each configured list must match; a value that cannot be read fails closed.

/// One `allowed_upstreams` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: String,
    port: Option<u16>,
}

impl AllowedHost {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; schemes and paths are errors.
    pub fn parse(s: &str) -> Result<AllowedHost, String> {
        if s.contains("://") || s.contains('/') {
            return Err(format!(
                "`{s}` must be a host or host:port, without scheme or path"
            ));
        }
        let (host, port) = split_authority(s).ok_or_else(|| format!("`{s}` is not a host"))?;
        Ok(AllowedHost {
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn matches(&self, host: &str, port: Option<u16>) -> bool {
        self.host.eq_ignore_ascii_case(host) && (self.port.is_none() || self.port == port)
    }
}

/// Splits an authority into host and optional port; `None` when malformed.
fn split_authority(s: &str) -> Option<(&str, Option<u16>)> {
    if s.is_empty() || s.bytes().any(|b| !b.is_ascii_graphic()) || s.contains('@') {
        return None;
    }
    let (host, rest) = if let Some(v6) = s.strip_prefix('[') {
        let end = v6.find(']')?;
        let host = &v6[..end];
        if host.is_empty() {
            return None;
        }
        (host, &v6[end + 1..])
    } else {
        match s.find(':') {
            Some(i) => (&s[..i], &s[i..]),
            None => (s, ""),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match rest {
        "" => None,
        r => Some(r.strip_prefix(':')?.parse::<u16>().ok()?),
    };
    Some((host, port))
}

/// Why a request may not carry the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamDenial {
    /// No (or a malformed) `:authority`.
    BadAuthority,
    /// `:authority` is not in `allowed_upstreams`.
    AuthorityNotAllowed,
    /// `allowed_clusters` is configured but the route's cluster cannot be read.
    ClusterUnknown,
    /// The route's cluster is not in `allowed_clusters`.
    ClusterNotAllowed,
}

/// The compiled check.
#[derive(Debug)]
pub struct UpstreamCheck {
    hosts: Vec<AllowedHost>,
    clusters: Vec<String>,
}

impl UpstreamCheck {
    pub fn new(hosts: Vec<AllowedHost>, clusters: Vec<String>) -> UpstreamCheck {
        UpstreamCheck { hosts, clusters }
    }

    /// Whether the glue must read the route's cluster.
    pub fn checks_cluster(&self) -> bool {
        !self.clusters.is_empty()
    }

    pub fn check(
        &self,
        authority: Option<&str>,
        cluster: Option<&str>,
    ) -> Result<(), UpstreamDenial> {
        if !self.hosts.is_empty() {
            let (host, port) = authority
                .and_then(split_authority)
                .ok_or(UpstreamDenial::BadAuthority)?;
            if !self.hosts.iter().any(|h| h.matches(host, port)) {
                return Err(UpstreamDenial::AuthorityNotAllowed);
            }
        }
        if !self.clusters.is_empty() {
            let cluster = cluster.ok_or(UpstreamDenial::ClusterUnknown)?;
            if !self.clusters.iter().any(|c| c == cluster) {
                return Err(UpstreamDenial::ClusterNotAllowed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(list: &[&str]) -> UpstreamCheck {
        UpstreamCheck::new(
            list.iter()
                .map(|h| AllowedHost::parse(h).unwrap())
                .collect(),
            vec![],
        )
    }

    #[test]
    fn host_without_port_matches_any_port() {
        let c = hosts(&["api.anthropic.com"]);
        assert_eq!(c.check(Some("api.anthropic.com"), None), Ok(()));
        assert_eq!(c.check(Some("API.Anthropic.com:443"), None), Ok(()));
        assert_eq!(
            c.check(Some("api.anthropic.com.evil.example"), None),
            Err(UpstreamDenial::AuthorityNotAllowed)
        );
        assert_eq!(
            c.check(Some("evil.example"), None),
            Err(UpstreamDenial::AuthorityNotAllowed)
        );
    }

    #[test]
    fn host_with_port_matches_only_that_port() {
        let c = hosts(&["127.0.0.1:8081", "[::1]:10000"]);
        assert_eq!(c.check(Some("127.0.0.1:8081"), None), Ok(()));
        assert_eq!(
            c.check(Some("127.0.0.1:8082"), None),
            Err(UpstreamDenial::AuthorityNotAllowed)
        );
        assert_eq!(
            c.check(Some("127.0.0.1"), None),
            Err(UpstreamDenial::AuthorityNotAllowed)
        );
        assert_eq!(c.check(Some("[::1]:10000"), None), Ok(()));
        assert_eq!(
            c.check(Some("[::1]"), None),
            Err(UpstreamDenial::AuthorityNotAllowed)
        );
    }

    #[test]
    fn malformed_or_missing_authority_fails_closed() {
        let c = hosts(&["a.example"]);
        for bad in [
            None,
            Some(""),
            Some("a.example:"),
            Some("a.example:99999"),
            Some("a.example:x"),
            Some("user@a.example"),
            Some("a.example extra"),
            Some("[::1"),
            Some(":443"),
        ] {
            assert_eq!(
                c.check(bad, None),
                Err(UpstreamDenial::BadAuthority),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn entries_are_validated() {
        for bad in [
            "https://api.anthropic.com",
            "a.example/v1",
            "",
            "a.example:0x",
            "[]",
        ] {
            assert!(AllowedHost::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn clusters_are_checked_when_configured() {
        let c = UpstreamCheck::new(vec![], vec!["anthropic".to_string()]);
        assert!(c.checks_cluster());
        assert_eq!(c.check(None, Some("anthropic")), Ok(()));
        assert_eq!(
            c.check(None, Some("other")),
            Err(UpstreamDenial::ClusterNotAllowed)
        );
        assert_eq!(c.check(None, None), Err(UpstreamDenial::ClusterUnknown));
    }

    #[test]
    fn both_lists_must_match() {
        let c = UpstreamCheck::new(
            vec![AllowedHost::parse("gw.local").unwrap()],
            vec!["anthropic".to_string()],
        );
        assert_eq!(c.check(Some("gw.local"), Some("anthropic")), Ok(()));
        assert_eq!(
            c.check(Some("gw.local"), Some("x")),
            Err(UpstreamDenial::ClusterNotAllowed)
        );
        assert_eq!(
            c.check(Some("x.local"), Some("anthropic")),
            Err(UpstreamDenial::AuthorityNotAllowed)
        );
    }
}
