//! The per-request decision, without proxy-wasm types: given what the glue read from the host
//! (authority, route cluster, identity filter state), either the key to inject or the error to
//! answer with. The glue strips client credentials in every case.

use tollgate_common::error::ErrorKind;

use crate::config::{MissingIdentity, Policy};
use crate::select::{Decision, Denial, Identity, Reason};
use crate::upstream::UpstreamDenial;

/// Identity filter state as read by the glue: usable, or present but unreadable/malformed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdentityState {
    Read(Identity),
    /// A hostcall failed or the value does not decode; never treated as "no identity".
    Malformed(&'static str),
}

/// Why a request was refused, as counted in metrics (`tollgate_key_inject_denied_<reason>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    Upstream,
    NoIdentity,
    NoMatchingKey,
    BadIdentity,
}

impl DenyReason {
    pub const ALL: [DenyReason; 4] = [
        DenyReason::Upstream,
        DenyReason::NoIdentity,
        DenyReason::NoMatchingKey,
        DenyReason::BadIdentity,
    ];

    pub fn label(self) -> &'static str {
        match self {
            DenyReason::Upstream => "upstream",
            DenyReason::NoIdentity => "no_identity",
            DenyReason::NoMatchingKey => "no_matching_key",
            DenyReason::BadIdentity => "bad_identity",
        }
    }
}

/// A refusal: the local reply to send and the reason to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deny {
    pub kind: ErrorKind,
    pub message: &'static str,
    /// Add `WWW-Authenticate: Bearer` (401 only).
    pub challenge: bool,
    pub reason: DenyReason,
}

/// The key to inject (index into `Policy::keys`) and why it was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inject {
    pub key: usize,
    pub reason: Reason,
}

/// Decides for one request. The upstream check runs first: a misrouted request is refused
/// whoever sent it.
pub fn decide(
    policy: &Policy,
    authority: Option<&str>,
    cluster: Option<&str>,
    identity: &IdentityState,
) -> Result<Inject, Deny> {
    if let Err(denial) = policy.upstream.check(authority, cluster) {
        let (kind, message) = match denial {
            UpstreamDenial::BadAuthority => (
                ErrorKind::InvalidRequest,
                "the request has no valid :authority; the gateway does not forward it",
            ),
            UpstreamDenial::AuthorityNotAllowed => (
                ErrorKind::Permission,
                "the requested host is not an allowed upstream for this gateway",
            ),
            UpstreamDenial::ClusterUnknown => (
                ErrorKind::Api,
                "the gateway cannot determine the upstream of this request",
            ),
            UpstreamDenial::ClusterNotAllowed => (
                ErrorKind::Api,
                "this route does not lead to an allowed upstream",
            ),
        };
        return Err(Deny {
            kind,
            message,
            challenge: false,
            reason: DenyReason::Upstream,
        });
    }
    let identity = match identity {
        IdentityState::Read(id) => id,
        IdentityState::Malformed(_) => {
            return Err(Deny {
                kind: ErrorKind::Api,
                message: "the caller's identity could not be read",
                challenge: false,
                reason: DenyReason::BadIdentity,
            })
        }
    };
    match policy.selector.select(identity) {
        Decision::Inject { key, reason } => Ok(Inject { key, reason }),
        Decision::Deny(Denial::NoIdentity) => Err(match policy.on_missing_identity {
            MissingIdentity::Unauthenticated => Deny {
                kind: ErrorKind::Authentication,
                message: "authentication required: the gateway found no verified caller identity",
                challenge: true,
                reason: DenyReason::NoIdentity,
            },
            MissingIdentity::Forbidden => Deny {
                kind: ErrorKind::Permission,
                message: "the gateway found no verified caller identity",
                challenge: false,
                reason: DenyReason::NoIdentity,
            },
        }),
        Decision::Deny(Denial::NoMatchingKey) => Err(Deny {
            kind: ErrorKind::Permission,
            message: "no upstream key is configured for this caller",
            challenge: false,
            reason: DenyReason::NoMatchingKey,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_common::config::parse_json;

    fn policy(json: &str) -> Policy {
        Policy::compile(parse_json(json.as_bytes()).unwrap(), |v| {
            Some(format!("sk-{v}"))
        })
        .unwrap()
    }

    fn identity(subject: Option<&str>, groups: Option<&[&str]>) -> IdentityState {
        IdentityState::Read(Identity {
            subject: subject.map(str::to_string),
            groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()),
        })
    }

    const GROUPS: &str = r#"{"keys":{"default":{"env":"D"},"team-a":{"env":"A"}},
        "select":[{"group":"agents","key":"team-a"}],"default_key":"default",
        "allowed_upstreams":["api.anthropic.com"]}"#;

    #[test]
    fn injects_the_selected_key() {
        let p = policy(GROUPS);
        let got = decide(
            &p,
            Some("api.anthropic.com"),
            None,
            &identity(Some("u"), Some(&["agents"])),
        )
        .unwrap();
        assert_eq!(p.keys[got.key].name, "team-a");
        let got = decide(&p, Some("api.anthropic.com"), None, &identity(None, None)).unwrap();
        assert_eq!(p.keys[got.key].name, "default");
    }

    #[test]
    fn wrong_upstream_is_refused_before_selection() {
        let p = policy(GROUPS);
        let deny = decide(
            &p,
            Some("evil.example"),
            None,
            &IdentityState::Malformed("x"),
        )
        .unwrap_err();
        assert_eq!(deny.reason, DenyReason::Upstream);
        assert_eq!(deny.kind, ErrorKind::Permission);
        let deny = decide(&p, None, None, &identity(None, None)).unwrap_err();
        assert_eq!(deny.kind, ErrorKind::InvalidRequest);
    }

    #[test]
    fn malformed_identity_never_gets_the_default() {
        let p = policy(GROUPS);
        let deny = decide(
            &p,
            Some("api.anthropic.com"),
            None,
            &IdentityState::Malformed("groups"),
        )
        .unwrap_err();
        assert_eq!(deny.reason, DenyReason::BadIdentity);
        assert_eq!(deny.kind.status(), 500);
    }

    #[test]
    fn missing_identity_answers_as_configured() {
        let p = policy(
            r#"{"keys":{"a":{"env":"A"}},"select":[{"subject":"svc","key":"a"}],
            "allowed_upstreams":["h"]}"#,
        );
        let deny = decide(&p, Some("h"), None, &identity(None, None)).unwrap_err();
        assert_eq!((deny.kind.status(), deny.challenge), (401, true));
        let p = policy(
            r#"{"keys":{"a":{"env":"A"}},"select":[{"subject":"svc","key":"a"}],
            "on_missing_identity":403,"allowed_upstreams":["h"]}"#,
        );
        let deny = decide(&p, Some("h"), None, &identity(None, None)).unwrap_err();
        assert_eq!((deny.kind.status(), deny.challenge), (403, false));
        let deny = decide(&p, Some("h"), None, &identity(Some("other"), None)).unwrap_err();
        assert_eq!(deny.reason, DenyReason::NoMatchingKey);
        assert_eq!(deny.kind.status(), 403);
    }

    #[test]
    fn cluster_check_fails_closed() {
        let p =
            policy(r#"{"keys":{"a":{"env":"A"}},"default_key":"a","allowed_clusters":["claude"]}"#);
        assert!(decide(&p, None, Some("claude"), &identity(None, None)).is_ok());
        let deny = decide(&p, None, None, &identity(None, None)).unwrap_err();
        assert_eq!(
            (deny.kind.status(), deny.reason),
            (500, DenyReason::Upstream)
        );
        let deny = decide(&p, None, Some("idp"), &identity(None, None)).unwrap_err();
        assert_eq!(deny.kind.status(), 500);
    }
}
