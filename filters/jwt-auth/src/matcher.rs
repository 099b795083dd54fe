//! Which rule applies to a request path, and what it requires: no token (health checks), any
//! valid caller, or membership in one of some groups (and optionally a given provider).
//!
//! Paths are matched without query string or fragment. `exact` compares the whole path;
//! `prefix` matches the prefix itself and anything below it on a segment boundary (`/v1`
//! matches `/v1` and `/v1/x`, not `/v1x`). The first matching rule wins; unmatched paths get
//! the configured default (by default: any valid token). A rule that needs no token only
//! applies to canonical paths: `//`, `.`/`..` segments, `%` escapes or backslashes skip it, so
//! `/healthz/../v1/messages` cannot borrow the health check's exemption.

/// How a rule's path is compared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathMatch {
    Exact(String),
    Prefix(String),
}

impl PathMatch {
    pub fn matches(&self, path: &str) -> bool {
        match self {
            PathMatch::Exact(p) => path == p,
            PathMatch::Prefix(p) => {
                if p.ends_with('/') {
                    path.starts_with(p.as_str())
                } else {
                    path == p
                        || (path.starts_with(p.as_str())
                            && path.as_bytes().get(p.len()) == Some(&b'/'))
                }
            }
        }
    }
}

/// What a request must present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// No token needed (a token, if sent, is ignored and left in place).
    Anonymous,
    /// A valid token; with non-empty `groups_any` the caller must be in one of them; with
    /// non-empty `providers` the token must come from one of them (indices into providers).
    Token {
        groups_any: Vec<String>,
        providers: Vec<usize>,
    },
    /// Refused whatever the token (403).
    Deny,
}

impl Requirement {
    pub fn any_token() -> Requirement {
        Requirement::Token {
            groups_any: Vec::new(),
            providers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub path: PathMatch,
    pub requirement: Requirement,
}

/// The path without query string or fragment.
pub fn strip_query(path: &str) -> &str {
    let end = path.find(['?', '#']).unwrap_or(path.len());
    &path[..end]
}

/// True if the path has no alternative spelling a router might normalise differently.
pub fn is_canonical(path: &str) -> bool {
    path.starts_with('/')
        && !path.contains("//")
        && !path.contains('%')
        && !path.contains('\\')
        && !path.split('/').any(|seg| seg == "." || seg == "..")
}

/// The requirement for `raw_path` (the `:path` header).
pub fn requirement_for<'a>(
    rules: &'a [Rule],
    default: &'a Requirement,
    raw_path: &str,
) -> &'a Requirement {
    let path = strip_query(raw_path);
    let canonical = is_canonical(path);
    rules
        .iter()
        .find(|r| r.path.matches(path) && (canonical || r.requirement != Requirement::Anonymous))
        .map(|r| &r.requirement)
        .unwrap_or(default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Vec<Rule> {
        vec![
            Rule {
                path: PathMatch::Exact("/healthz".into()),
                requirement: Requirement::Anonymous,
            },
            Rule {
                path: PathMatch::Prefix("/public".into()),
                requirement: Requirement::Anonymous,
            },
            Rule {
                path: PathMatch::Prefix("/v1/messages".into()),
                requirement: Requirement::Token {
                    groups_any: vec!["agents".into()],
                    providers: vec![],
                },
            },
            Rule {
                path: PathMatch::Prefix("/admin/".into()),
                requirement: Requirement::Deny,
            },
        ]
    }

    #[test]
    fn first_match_wins_and_query_is_ignored() {
        let r = rules();
        let d = Requirement::any_token();
        assert_eq!(requirement_for(&r, &d, "/healthz"), &Requirement::Anonymous);
        assert_eq!(
            requirement_for(&r, &d, "/healthz?x=1"),
            &Requirement::Anonymous
        );
        assert_eq!(
            requirement_for(&r, &d, "/healthz#f"),
            &Requirement::Anonymous
        );
        assert_eq!(requirement_for(&r, &d, "/healthz/x"), &d);
        assert_eq!(
            requirement_for(&r, &d, "/public/a/b"),
            &Requirement::Anonymous
        );
        assert!(
            matches!(requirement_for(&r, &d, "/v1/messages?beta=true"), Requirement::Token { groups_any, .. } if groups_any == &["agents"])
        );
        assert!(
            matches!(requirement_for(&r, &d, "/v1/messages/count_tokens"), Requirement::Token { groups_any, .. } if !groups_any.is_empty())
        );
        assert_eq!(requirement_for(&r, &d, "/v1/models"), &d);
        assert_eq!(requirement_for(&r, &d, "/admin/x"), &Requirement::Deny);
        assert_eq!(requirement_for(&r, &d, "/admin"), &d);
    }

    #[test]
    fn prefix_matches_on_segment_boundaries() {
        let p = PathMatch::Prefix("/v1/messages".into());
        assert!(p.matches("/v1/messages"));
        assert!(p.matches("/v1/messages/batches"));
        assert!(!p.matches("/v1/messagesX"));
        assert!(!p.matches("/v1/message"));
    }

    #[test]
    fn non_canonical_paths_never_get_an_exemption() {
        let r = rules();
        let d = Requirement::any_token();
        for p in [
            "/public/../v1/messages",
            "/public//x",
            "/public/%2e%2e/v1/messages",
            "/public/./x",
            "/public\\..\\v1",
        ] {
            assert_eq!(requirement_for(&r, &d, p), &d, "{p}");
        }
        assert!(is_canonical("/v1/messages"));
        assert!(!is_canonical("v1/messages"));
    }
}
