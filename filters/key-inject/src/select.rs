//! Key selection: which configured key a caller gets, from the identity jwt-auth left in filter
//! state (`tollgate.subject`, `tollgate.groups`).
//!
//! Semantics (also in `docs/key-inject.md`):
//! - Rules are tried in order; the first rule whose every given matcher holds wins (`group`: the
//!   caller's groups contain it, exactly; `subject`: equal, exactly).
//! - A caller *has an identity* when either property is present (a non-empty subject, or a
//!   groups list, even an empty one).
//! - No rule matched, identity present: the `default_key` if configured, else
//!   [`Denial::NoMatchingKey`] (403).
//! - No identity: [`Denial::NoIdentity`] (401/403 as configured) when `require_identity` is set
//!   or there is no default; otherwise the `default_key`.
//! - There is no other fallback: unreadable or malformed identity state never reaches this
//!   module (the glue fails closed with 500 before), so a broken identity cannot pick up the
//!   default key.

/// A compiled rule; `key` indexes `Policy::keys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub group: Option<String>,
    pub subject: Option<String>,
    pub key: usize,
}

impl Rule {
    fn matches(&self, id: &Identity) -> bool {
        let group_ok = match &self.group {
            Some(g) => id
                .groups
                .as_deref()
                .is_some_and(|gs| gs.iter().any(|x| x == g)),
            None => true,
        };
        let subject_ok = match &self.subject {
            Some(s) => id.subject.as_deref() == Some(s.as_str()),
            None => true,
        };
        group_ok && subject_ok
    }
}

/// The caller's identity as read from filter state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Identity {
    /// The verified subject; `None` when absent or empty.
    pub subject: Option<String>,
    /// The verified groups; `None` when the property is absent.
    pub groups: Option<Vec<String>>,
}

impl Identity {
    pub fn is_present(&self) -> bool {
        self.subject.is_some() || self.groups.is_some()
    }
}

/// Why a key was chosen (for debug logs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// `select[i]` matched.
    Rule(usize),
    /// No rule matched; `default_key`.
    Default,
}

/// Why no key was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// No identity filter state and no key for anonymous callers.
    NoIdentity,
    /// An identity that no rule matched, and no default.
    NoMatchingKey,
}

/// The outcome of selection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Inject { key: usize, reason: Reason },
    Deny(Denial),
}

/// The compiled selection rules.
#[derive(Debug)]
pub struct Selector {
    rules: Vec<Rule>,
    default: Option<usize>,
    require_identity: bool,
}

impl Selector {
    pub fn new(rules: Vec<Rule>, default: Option<usize>, require_identity: bool) -> Selector {
        Selector {
            rules,
            default,
            require_identity,
        }
    }

    /// Whether any rule looks at identity (when not, the glue skips reading filter state unless
    /// `require_identity` needs it).
    pub fn needs_identity(&self) -> bool {
        !self.rules.is_empty() || self.require_identity || self.default.is_none()
    }

    pub fn select(&self, id: &Identity) -> Decision {
        if !id.is_present() {
            return match self.default {
                Some(key) if !self.require_identity => Decision::Inject {
                    key,
                    reason: Reason::Default,
                },
                _ => Decision::Deny(Denial::NoIdentity),
            };
        }
        if let Some((i, rule)) = self.rules.iter().enumerate().find(|(_, r)| r.matches(id)) {
            return Decision::Inject {
                key: rule.key,
                reason: Reason::Rule(i),
            };
        }
        match self.default {
            Some(key) => Decision::Inject {
                key,
                reason: Reason::Default,
            },
            None => Decision::Deny(Denial::NoMatchingKey),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(subject: Option<&str>, groups: Option<&[&str]>) -> Identity {
        Identity {
            subject: subject.map(str::to_string),
            groups: groups.map(|g| g.iter().map(|s| s.to_string()).collect()),
        }
    }

    fn rule(group: Option<&str>, subject: Option<&str>, key: usize) -> Rule {
        Rule {
            group: group.map(str::to_string),
            subject: subject.map(str::to_string),
            key,
        }
    }

    fn selector(default: Option<usize>, require_identity: bool) -> Selector {
        Selector::new(
            vec![
                rule(None, Some("svc-1"), 3),
                rule(Some("admins"), Some("alice"), 2),
                rule(Some("agents"), None, 1),
            ],
            default,
            require_identity,
        )
    }

    #[test]
    fn first_matching_rule_wins() {
        let s = selector(Some(0), false);
        assert_eq!(
            s.select(&id(Some("svc-1"), Some(&["agents"]))),
            Decision::Inject {
                key: 3,
                reason: Reason::Rule(0)
            }
        );
        assert_eq!(
            s.select(&id(Some("bob"), Some(&["x", "agents"]))),
            Decision::Inject {
                key: 1,
                reason: Reason::Rule(2)
            }
        );
    }

    #[test]
    fn combined_rules_need_every_matcher() {
        let s = selector(None, false);
        assert_eq!(
            s.select(&id(Some("alice"), Some(&["admins"]))),
            Decision::Inject {
                key: 2,
                reason: Reason::Rule(1)
            }
        );
        // alice without the group, or the group without alice: not rule 1.
        assert_eq!(
            s.select(&id(Some("alice"), Some(&[]))),
            Decision::Deny(Denial::NoMatchingKey)
        );
        assert_eq!(
            s.select(&id(Some("mallory"), Some(&["admins"]))),
            Decision::Deny(Denial::NoMatchingKey)
        );
    }

    #[test]
    fn matching_is_exact() {
        let s = selector(None, false);
        for groups in [
            &["Agents"][..],
            &["agents "],
            &["agent"],
            &["agents,admins"],
        ] {
            assert_eq!(
                s.select(&id(Some("x"), Some(groups))),
                Decision::Deny(Denial::NoMatchingKey),
                "{groups:?}"
            );
        }
        assert_eq!(
            s.select(&id(Some("SVC-1"), None)),
            Decision::Deny(Denial::NoMatchingKey)
        );
    }

    #[test]
    fn unmatched_identity_uses_default_only_if_configured() {
        assert_eq!(
            selector(Some(0), false).select(&id(Some("bob"), Some(&["other"]))),
            Decision::Inject {
                key: 0,
                reason: Reason::Default
            }
        );
        assert_eq!(
            selector(None, false).select(&id(Some("bob"), Some(&["other"]))),
            Decision::Deny(Denial::NoMatchingKey)
        );
        // require_identity does not affect identified callers.
        assert_eq!(
            selector(Some(0), true).select(&id(Some("bob"), None)),
            Decision::Inject {
                key: 0,
                reason: Reason::Default
            }
        );
    }

    #[test]
    fn anonymous_callers_get_default_unless_identity_is_required() {
        let anon = Identity::default();
        assert_eq!(
            selector(Some(0), false).select(&anon),
            Decision::Inject {
                key: 0,
                reason: Reason::Default
            }
        );
        assert_eq!(
            selector(Some(0), true).select(&anon),
            Decision::Deny(Denial::NoIdentity)
        );
        assert_eq!(
            selector(None, false).select(&anon),
            Decision::Deny(Denial::NoIdentity)
        );
    }

    #[test]
    fn groups_alone_or_subject_alone_is_an_identity() {
        assert!(id(None, Some(&[])).is_present());
        assert!(id(Some("s"), None).is_present());
        assert!(!id(None, None).is_present());
        // Empty groups, no default: an identity without a key, so 403 rather than 401.
        assert_eq!(
            selector(None, false).select(&id(None, Some(&[]))),
            Decision::Deny(Denial::NoMatchingKey)
        );
    }

    #[test]
    fn needs_identity_only_when_it_can_change_the_outcome() {
        assert!(!Selector::new(vec![], Some(0), false).needs_identity());
        assert!(Selector::new(vec![], Some(0), true).needs_identity());
        assert!(selector(Some(0), false).needs_identity());
    }
}
