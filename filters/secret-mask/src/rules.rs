//! Masking rules: what a secret looks like, compiled for the streaming matcher.
//!
//! Every rule is a regular expression compiled to an anchored, longest-match dense DFA, plus a
//! *window*: the longest text a match may span. The window is what bounds the streaming
//! matcher's hold-back, so every rule has one (taken from the regex when it is bounded, else
//! given explicitly). Optional checks after a match reduce false positives on look-alikes:
//! a minimum Shannon entropy of the part after a fixed prefix (`ghp_xxxx…` is not a token), and
//! allowlists of exact strings or substrings (`…EXAMPLE`, the AWS documentation keys).
//!
//! [`default_rules`] lists the built-in credential shapes; `config` adds literal rules (the
//! upstream key read from the environment, custom literals) and custom regex rules.

use regex_automata::{
    dfa::{dense, Automaton, StartKind},
    nfa::thompson,
    util::{primitives::StateID, start, syntax},
    Anchored, MatchKind,
};

/// Bytes of DFA a single rule may use; a regex that needs more is a configuration error.
const DFA_SIZE_LIMIT: usize = 4 << 20;

/// Why a rule could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("invalid regex: {0}")]
    Regex(String),
    #[error("the regex can match empty text")]
    EmptyMatch,
    #[error("the regex has no maximum length; set max_len")]
    Unbounded,
    #[error("max_len must be between 1 and {max}")]
    Window { max: usize },
    #[error("a literal must be at least {min} bytes long")]
    ShortLiteral { min: usize },
    #[error("rule id must be 1 to 64 characters of [a-z0-9_]")]
    BadId,
}

/// The largest window a rule may have (it bounds per-stream memory).
pub const MAX_WINDOW: usize = 64 * 1024;
/// The shortest literal rule accepted: shorter ones would mask ordinary text.
pub const MIN_LITERAL: usize = 8;

/// A rule as written: the source of a compiled [`Rule`].
#[derive(Debug, Clone, PartialEq)]
pub struct RuleSpec {
    pub id: String,
    pub pattern: Pattern,
    /// Longest match; `None` takes the regex's own maximum (an error if it has none).
    pub max_len: Option<usize>,
    /// Matches whose text after `entropy_skip` bytes has less Shannon entropy (bits per byte)
    /// than this are look-alikes, not secrets.
    pub min_entropy: Option<f64>,
    pub entropy_skip: usize,
    /// Exact matched texts that are not secrets.
    pub allow: Vec<String>,
    /// Matched texts containing one of these are not secrets.
    pub allow_substrings: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Regex(String),
    Literal(String),
}

impl RuleSpec {
    pub fn regex(id: &str, regex: &str) -> Self {
        RuleSpec {
            id: id.to_string(),
            pattern: Pattern::Regex(regex.to_string()),
            max_len: None,
            min_entropy: None,
            entropy_skip: 0,
            allow: Vec::new(),
            allow_substrings: Vec::new(),
        }
    }

    pub fn literal(id: &str, literal: &str) -> Self {
        RuleSpec {
            pattern: Pattern::Literal(literal.to_string()),
            ..RuleSpec::regex(id, "")
        }
    }

    fn window(mut self, n: usize) -> Self {
        self.max_len = Some(n);
        self
    }

    fn entropy(mut self, skip: usize, bits: f64) -> Self {
        self.entropy_skip = skip;
        self.min_entropy = Some(bits);
        self
    }
}

/// Is `id` usable as a rule id (and so in a metric name and a replacement)?
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The built-in rules, in priority order (ties between equally long matches go to the first).
pub fn default_rules() -> Vec<RuleSpec> {
    vec![
        // sk-ant-api03-…, sk-ant-admin01-…, sk-ant-oat01-… (93 chars + "AA" for API keys).
        RuleSpec::regex(
            "anthropic_api_key",
            r"sk-ant-[a-z]{2,10}[0-9]{2}-[A-Za-z0-9_\-]{20,200}",
        )
        .entropy(13, 3.0),
        // Project / service-account / admin keys, and the legacy 48-character form.
        RuleSpec::regex(
            "openai_api_key",
            r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{20,}|[A-Za-z0-9]{48})",
        )
        .window(512)
        .entropy(3, 3.0),
        RuleSpec {
            allow_substrings: vec!["EXAMPLE".to_string()],
            ..RuleSpec::regex(
                "aws_access_key_id",
                r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}",
            )
            .entropy(4, 1.5)
        },
        RuleSpec::regex(
            "github_token",
            r"gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{82,244}",
        )
        .entropy(4, 3.0),
        RuleSpec::regex(
            "slack_token",
            r"xox[abposre]-[0-9A-Za-z\-]{10,250}|xapp-[0-9]-[0-9A-Za-z\-]{10,250}",
        )
        .entropy(5, 2.0),
        RuleSpec::regex("stripe_key", r"[sr]k_(?:live|test)_[0-9A-Za-z]{24,247}").entropy(8, 3.0),
        RuleSpec::regex("google_api_key", r"AIza[0-9A-Za-z_\-]{35}").entropy(4, 3.0),
        // The whole block: header, optional RFC 1421 headers, the body (also with indentation or
        // literal "\n" escapes), and the footer when present. Without a footer the body is
        // masked as far as it goes.
        RuleSpec::regex(
            "private_key",
            r"-----BEGIN (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----(?:\r?\n[ \t]*[A-Za-z\-]+:[ -~]*)*[A-Za-z0-9+/=\r\n\\ \t]*(?:-----END (?:[A-Z0-9]+ ){0,3}PRIVATE KEY(?: BLOCK)?-----)?",
        )
        .window(16 * 1024),
        RuleSpec::regex(
            "jwt",
            r"eyJ[A-Za-z0-9_\-]{5,}\.eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        )
        .window(8 * 1024),
    ]
}

/// A compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub id: String,
    dfa: dense::DFA<Vec<u32>>,
    /// Longest match in bytes.
    pub window: usize,
    /// Bytes that can start a match, whatever precedes them (a superset).
    pub first: [bool; 256],
    /// Literal prefixes, one of which every match starts with (each 2–8 bytes); `None` when
    /// the regex has no such finite set (the matcher then tries the DFA at every first byte).
    pub prefixes: Option<Vec<Vec<u8>>>,
    min_entropy: Option<f64>,
    entropy_skip: usize,
    allow: Vec<Vec<u8>>,
    allow_substrings: Vec<Vec<u8>>,
}

/// The outcome of trying a rule at one position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eval {
    /// No continuation of the text can make a match here.
    NoMatch,
    /// The longest match here has this length, whatever follows.
    Match(usize),
    /// The text so far is (or extends into) a possible match: more input is needed.
    NeedMore,
}

impl Rule {
    pub fn compile(spec: &RuleSpec) -> Result<Rule, RuleError> {
        if !valid_id(&spec.id) {
            return Err(RuleError::BadId);
        }
        let source = match &spec.pattern {
            Pattern::Regex(r) => r.clone(),
            Pattern::Literal(l) => {
                if l.len() < MIN_LITERAL {
                    return Err(RuleError::ShortLiteral { min: MIN_LITERAL });
                }
                regex_syntax::escape(l)
            }
        };
        let hir = regex_syntax::ParserBuilder::new()
            .build()
            .parse(&source)
            .map_err(|e| RuleError::Regex(e.to_string()))?;
        let props = hir.properties();
        if props.minimum_len().unwrap_or(0) == 0 {
            return Err(RuleError::EmptyMatch);
        }
        let window = match (spec.max_len, props.maximum_len()) {
            (Some(n), _) => n,
            (None, Some(n)) => n,
            (None, None) => return Err(RuleError::Unbounded),
        };
        if window == 0 || window > MAX_WINDOW {
            return Err(RuleError::Window { max: MAX_WINDOW });
        }
        let dfa = dense::Builder::new()
            .configure(
                dense::Config::new()
                    .match_kind(MatchKind::All)
                    .start_kind(StartKind::Anchored)
                    .minimize(false)
                    .byte_classes(true)
                    .dfa_size_limit(Some(DFA_SIZE_LIMIT))
                    .determinize_size_limit(Some(DFA_SIZE_LIMIT)),
            )
            .syntax(syntax::Config::new().utf8(true).unicode(true))
            .thompson(thompson::Config::new().utf8(true))
            .build(&source)
            .map_err(|e| RuleError::Regex(e.to_string()))?;
        let prefixes = literal_prefixes(&hir);
        let mut rule = Rule {
            id: spec.id.clone(),
            dfa,
            window,
            first: [false; 256],
            prefixes,
            min_entropy: spec.min_entropy,
            entropy_skip: spec.entropy_skip,
            allow: spec.allow.iter().map(|s| s.as_bytes().to_vec()).collect(),
            allow_substrings: spec
                .allow_substrings
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| s.as_bytes().to_vec())
                .collect(),
        };
        rule.first = rule.first_bytes()?;
        Ok(rule)
    }

    fn start(&self, prev: Option<u8>) -> Option<StateID> {
        let cfg = start::Config::new()
            .anchored(Anchored::Yes)
            .look_behind(prev);
        self.dfa.start_state(&cfg).ok()
    }

    /// Can a match start at the beginning of `tail` (the text from a position to the end of
    /// what has arrived)? False only when no literal prefix is there nor can still arrive there
    /// — then [`Rule::eval`] would answer [`Eval::NoMatch`] for any continuation.
    #[inline]
    pub fn may_start(&self, tail: &[u8]) -> bool {
        match &self.prefixes {
            None => true,
            Some(lits) => lits.iter().any(|l| {
                if tail.len() >= l.len() {
                    tail.starts_with(l)
                } else {
                    l.starts_with(tail)
                }
            }),
        }
    }

    /// Bytes after which the DFA is not dead, for each kind of preceding byte.
    fn first_bytes(&self) -> Result<[bool; 256], RuleError> {
        let mut first = [false; 256];
        for prev in [
            None,
            Some(b'a'),
            Some(b' '),
            Some(b'\n'),
            Some(b'\r'),
            Some(0xC3),
        ] {
            let Some(sid) = self.start(prev) else {
                return Err(RuleError::Regex("unsupported start state".to_string()));
            };
            for (b, slot) in first.iter_mut().enumerate() {
                let next = self.dfa.next_state(sid, b as u8);
                if !self.dfa.is_dead_state(next) {
                    *slot = true;
                }
            }
        }
        Ok(first)
    }

    /// Tries this rule at `hay[p..]`; `prev` is the byte before `p` (from the original text),
    /// `eof` says no more text will follow `hay`.
    pub fn eval(&self, hay: &[u8], p: usize, prev: Option<u8>, eof: bool) -> Eval {
        let Some(mut sid) = self.start(prev) else {
            return Eval::NoMatch;
        };
        let limit = p.saturating_add(self.window).min(hay.len());
        let mut last: Option<usize> = None;
        let mut i = p;
        while i < limit {
            sid = self.dfa.next_state(sid, hay[i]);
            if self.dfa.is_special_state(sid) {
                if self.dfa.is_match_state(sid) {
                    last = Some(i - p);
                } else if self.dfa.is_dead_state(sid) || self.dfa.is_quit_state(sid) {
                    return self.finish(hay, p, last, prev);
                }
            }
            i += 1;
        }
        // A match ending at `limit` is only reported after one more byte (or the end of input).
        if limit - p == self.window {
            if let Some(&b) = hay.get(limit) {
                sid = self.dfa.next_state(sid, b);
            } else if eof {
                sid = self.dfa.next_eoi_state(sid);
            } else {
                return Eval::NeedMore;
            }
            if self.dfa.is_match_state(sid) {
                last = Some(self.window);
            }
            return self.finish(hay, p, last, prev);
        }
        if !eof {
            // A match state with no live successor: nothing more can match, decide now.
            if self.dfa.is_match_state(sid) && self.is_terminal(sid) {
                return self.finish(hay, p, last, prev);
            }
            return Eval::NeedMore;
        }
        sid = self.dfa.next_eoi_state(sid);
        if self.dfa.is_match_state(sid) {
            last = Some(limit - p);
        }
        self.finish(hay, p, last, prev)
    }

    /// Applies the look-alike checks to the longest match. An allowlisted longest match vetoes
    /// the position; one that fails the entropy check gives way to the longest shorter match
    /// that passes (a real token followed by more token-like characters is still masked).
    fn finish(&self, hay: &[u8], p: usize, last: Option<usize>, prev: Option<u8>) -> Eval {
        let Some(len) = last.filter(|&l| l > 0) else {
            return Eval::NoMatch;
        };
        let text = &hay[p..p + len];
        if self.allowed(text) {
            return Eval::NoMatch;
        }
        if self.entropy_ok(text) {
            return Eval::Match(len);
        }
        // Rare: find the shorter match ends (a second pass over the longest match).
        let Some(mut sid) = self.start(prev) else {
            return Eval::NoMatch;
        };
        let mut ends = Vec::new();
        for (i, &b) in text.iter().enumerate() {
            sid = self.dfa.next_state(sid, b);
            if self.dfa.is_match_state(sid) && i > 0 {
                ends.push(i);
            }
        }
        ends.into_iter()
            .rev()
            .find(|&end| self.entropy_ok(&text[..end]))
            .map_or(Eval::NoMatch, Eval::Match)
    }

    /// Every byte leads to the dead state from `sid`.
    fn is_terminal(&self, sid: StateID) -> bool {
        (0..=255u8).all(|b| self.dfa.is_dead_state(self.dfa.next_state(sid, b)))
    }

    fn allowed(&self, text: &[u8]) -> bool {
        self.allow.iter().any(|a| a.as_slice() == text)
            || self
                .allow_substrings
                .iter()
                .any(|s| text.windows(s.len()).any(|w| w == s.as_slice()))
    }

    fn entropy_ok(&self, text: &[u8]) -> bool {
        match self.min_entropy {
            Some(min) => shannon_entropy(text.get(self.entropy_skip..).unwrap_or(&[])) >= min,
            None => true,
        }
    }

    /// The look-alike checks on a complete match.
    pub fn accepts(&self, text: &[u8]) -> bool {
        !self.allowed(text) && self.entropy_ok(text)
    }
}

/// Prefix literals of every match of `hir`, each cut to at most 8 bytes: usable when the set is
/// finite, small, and no literal is shorter than 2 bytes (look-around assertions count as
/// empty, so a literal after `\b` is still a prefix; the DFA checks the assertion).
fn literal_prefixes(hir: &regex_syntax::hir::Hir) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    const MAX_LEN: usize = 8;
    const MAX_COUNT: usize = 64;
    let seq = Extractor::new()
        .kind(ExtractKind::Prefix)
        .limit_total(MAX_COUNT * 4)
        .extract(hir);
    let lits = seq.literals()?;
    let mut out: Vec<Vec<u8>> = lits
        .iter()
        .map(|l| l.as_bytes()[..l.as_bytes().len().min(MAX_LEN)].to_vec())
        .collect();
    out.sort();
    out.dedup();
    if out.is_empty() || out.len() > MAX_COUNT || out.iter().any(|l| l.len() < 2) {
        return None;
    }
    Some(out)
}

/// Shannon entropy of `bytes` in bits per byte (0 for empty input).
pub fn shannon_entropy(bytes: &[u8]) -> f64 {
    if bytes.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in bytes {
        counts[b as usize] += 1;
    }
    let n = bytes.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str) -> Rule {
        let spec = default_rules().into_iter().find(|r| r.id == id).unwrap();
        Rule::compile(&spec).unwrap()
    }

    #[test]
    fn every_default_rule_compiles_with_a_window() {
        for spec in default_rules() {
            let r = Rule::compile(&spec).unwrap_or_else(|e| panic!("{}: {e}", spec.id));
            assert!(r.window > 0 && r.window <= MAX_WINDOW, "{}", spec.id);
        }
    }

    #[test]
    fn default_rules_have_literal_prefixes() {
        for spec in default_rules() {
            let r = Rule::compile(&spec).unwrap();
            assert!(r.prefixes.is_some(), "{}", spec.id);
        }
        let aws = rule("aws_access_key_id").prefixes.unwrap();
        let strs: Vec<&str> = aws
            .iter()
            .map(|l| std::str::from_utf8(l).unwrap())
            .collect();
        assert_eq!(strs, ["A3T", "ABIA", "ACCA", "AKIA", "ASIA"]);
        // A long literal keeps its first 8 bytes; a class first means no prefixes.
        let lit = Rule::compile(&RuleSpec::literal("canary", "CANARY-0123456789")).unwrap();
        assert_eq!(lit.prefixes, Some(vec![b"CANARY-0".to_vec()]));
        let hex = Rule::compile(&RuleSpec::regex("hex", "[a-f][0-9]{5}")).unwrap();
        assert_eq!(hex.prefixes, None);
        // A partial prefix at the end of the text may still start a match; a wrong one not.
        let aws = rule("aws_access_key_id");
        assert!(aws.may_start(b"AK"));
        assert!(aws.may_start(b"AKIAZ2"));
        assert!(!aws.may_start(b"AKIB"));
        assert!(!aws.may_start(b"AX"));
    }

    #[test]
    fn eval_distinguishes_need_more_from_no_match() {
        let r = rule("aws_access_key_id");
        let key = b"AKIAZ2MQ4JXLS7RT5WHB";
        assert_eq!(r.eval(b"AKI", 0, None, false), Eval::NeedMore);
        assert_eq!(r.eval(b"AKIB", 0, None, false), Eval::NoMatch);
        assert_eq!(r.eval(&key[..19], 0, None, false), Eval::NeedMore);
        assert_eq!(r.eval(&key[..19], 0, None, true), Eval::NoMatch);
        // Exactly the window long: the next byte (or the end) decides.
        assert_eq!(r.eval(key, 0, None, false), Eval::NeedMore);
        assert_eq!(r.eval(key, 0, None, true), Eval::Match(20));
        let mut more = key.to_vec();
        more.push(b' ');
        assert_eq!(r.eval(&more, 0, None, false), Eval::Match(20));
    }

    #[test]
    fn look_alikes_are_not_secrets() {
        let gh = rule("github_token");
        let fake = format!("ghp_{}", "x".repeat(36));
        assert_eq!(gh.eval(fake.as_bytes(), 0, None, true), Eval::NoMatch);
        let aws = rule("aws_access_key_id");
        assert_eq!(
            aws.eval(b"AKIAIOSFODNN7EXAMPLE ", 0, None, false),
            Eval::NoMatch
        );
    }

    #[test]
    fn a_token_followed_by_low_entropy_text_is_still_masked() {
        let gh = rule("github_token");
        let token = "ghp_Q7zK2mX9pL4vT8nB3cY6wH1jF5dG0sRaEuIo";
        let text = format!("{token}{} ", "a".repeat(150));
        // The longest match (all the a's) fails the entropy check; the longest shorter one
        // that passes covers the whole token (and some a's).
        match gh.eval(text.as_bytes(), 0, None, false) {
            Eval::Match(n) => assert!(n >= token.len() && n < token.len() + 150, "{n}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn literals_are_escaped_and_must_be_long() {
        let r = Rule::compile(&RuleSpec::literal("canary", "a.b*c+d(e)")).unwrap();
        assert_eq!(r.eval(b"a.b*c+d(e)!", 0, None, false), Eval::Match(10));
        assert_eq!(r.eval(b"aXb*c+d(e)!", 0, None, false), Eval::NoMatch);
        assert_eq!(
            Rule::compile(&RuleSpec::literal("short", "abc")).unwrap_err(),
            RuleError::ShortLiteral { min: MIN_LITERAL }
        );
    }

    #[test]
    fn regex_rules_need_a_bound_and_a_non_empty_match() {
        assert_eq!(
            Rule::compile(&RuleSpec::regex("x", "tok_[a-z]+")).unwrap_err(),
            RuleError::Unbounded
        );
        assert_eq!(
            Rule::compile(&RuleSpec::regex("x", "a*")).unwrap_err(),
            RuleError::EmptyMatch
        );
        assert!(matches!(
            Rule::compile(&RuleSpec::regex("x", "(")).unwrap_err(),
            RuleError::Regex(_)
        ));
        assert_eq!(
            Rule::compile(&RuleSpec::regex("Bad-Id", "abc")).unwrap_err(),
            RuleError::BadId
        );
        let r = Rule::compile(&RuleSpec::regex("x", "tok_[a-z]+").window(10)).unwrap();
        assert_eq!(r.eval(b"tok_abcdefghij", 0, None, false), Eval::Match(10));
    }

    #[test]
    fn word_boundaries_use_the_byte_before() {
        let r = Rule::compile(&RuleSpec::regex("x", r"(?-u:\b)secret[0-9]{4}")).unwrap();
        assert_eq!(
            r.eval(b"secret1234 ", 0, Some(b' '), false),
            Eval::Match(10)
        );
        assert_eq!(r.eval(b"secret1234 ", 0, Some(b'a'), false), Eval::NoMatch);
    }

    #[test]
    fn entropy_of_uniform_and_constant_text() {
        assert_eq!(shannon_entropy(b"aaaa"), 0.0);
        assert!((shannon_entropy(b"abcd") - 2.0).abs() < 1e-9);
    }
}
