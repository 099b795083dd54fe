//! The pattern engine: many patterns compiled once, matched against a text in one call.
//!
//! With the default `regex` feature all patterns of a rule set are compiled into one
//! `regex::RegexSet` (one lazy-DFA pass over the text, literal prefilters), which keeps 100
//! rules over a 64 KB request within the latency budget. The `lite` feature swaps in
//! `regex-lite` (one backtracking/PikeVM search per pattern) for size/speed comparisons; see
//! `docs/prompt-guard.md` for the measured figures behind the default.

#[cfg(not(any(feature = "regex", feature = "lite")))]
compile_error!("enable exactly one of the features `regex` (default) or `lite`");

/// A pattern that does not compile: its index in the input and the engine's message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PatternError {
    pub index: usize,
    pub message: String,
}

/// Escapes `literal` so that it matches itself.
pub fn escape(literal: &str) -> String {
    #[cfg(feature = "regex")]
    {
        regex::escape(literal)
    }
    #[cfg(all(feature = "lite", not(feature = "regex")))]
    {
        regex_lite::escape(literal)
    }
}

/// Upper bound for one compiled pattern or set (bytes of compiled program).
const SIZE_LIMIT: usize = 8 << 20;

/// A compiled set of patterns.
#[derive(Debug)]
pub struct PatternSet {
    #[cfg(feature = "regex")]
    set: regex::RegexSet,
    #[cfg(all(feature = "lite", not(feature = "regex")))]
    each: Vec<regex_lite::Regex>,
    len: usize,
}

impl PatternSet {
    /// Compiles `patterns` (regex syntax). Errors name the first pattern that fails.
    pub fn new(patterns: &[String]) -> Result<Self, PatternError> {
        #[cfg(feature = "regex")]
        {
            let set = regex::RegexSetBuilder::new(patterns)
                .size_limit(SIZE_LIMIT.saturating_mul(4))
                .dfa_size_limit(SIZE_LIMIT)
                .build();
            match set {
                Ok(set) => Ok(PatternSet {
                    set,
                    len: patterns.len(),
                }),
                // Only on failure compile the patterns one by one, to name the culprit.
                Err(set_error) => {
                    for (index, p) in patterns.iter().enumerate() {
                        if let Err(e) = regex::RegexBuilder::new(p).size_limit(SIZE_LIMIT).build() {
                            return Err(PatternError {
                                index,
                                message: e.to_string(),
                            });
                        }
                    }
                    Err(PatternError {
                        index: 0,
                        message: format!("the rules together are too large: {set_error}"),
                    })
                }
            }
        }
        #[cfg(all(feature = "lite", not(feature = "regex")))]
        {
            let mut each = Vec::with_capacity(patterns.len());
            for (index, p) in patterns.iter().enumerate() {
                let re = regex_lite::RegexBuilder::new(p)
                    .size_limit(SIZE_LIMIT)
                    .build()
                    .map_err(|e| PatternError {
                        index,
                        message: e.to_string(),
                    })?;
                each.push(re);
            }
            Ok(PatternSet {
                each,
                len: patterns.len(),
            })
        }
    }

    /// A set with no patterns (matches nothing).
    pub fn empty() -> Self {
        PatternSet {
            #[cfg(feature = "regex")]
            set: regex::RegexSet::empty(),
            #[cfg(all(feature = "lite", not(feature = "regex")))]
            each: Vec::new(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends the indices of every pattern that matches somewhere in `hay`, ascending.
    pub fn matches_into(&self, hay: &str, out: &mut Vec<usize>) {
        if self.len == 0 {
            return;
        }
        #[cfg(feature = "regex")]
        {
            out.extend(self.set.matches(hay).iter());
        }
        #[cfg(all(feature = "lite", not(feature = "regex")))]
        {
            out.extend(
                self.each
                    .iter()
                    .enumerate()
                    .filter(|(_, re)| re.is_match(hay))
                    .map(|(i, _)| i),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_all_matches_in_order() {
        let set = PatternSet::new(&[
            escape("a.b"),
            "(?i)hello\\s+world".to_string(),
            "zzz".to_string(),
        ])
        .unwrap();
        let mut out = Vec::new();
        set.matches_into("say HELLO  world to a.b", &mut out);
        assert_eq!(out, vec![0, 1]);
        out.clear();
        set.matches_into("axb", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn errors_name_the_pattern() {
        let err = PatternSet::new(&["ok".to_string(), "(unclosed".to_string()]).unwrap_err();
        assert_eq!(err.index, 1);
        assert!(!err.message.is_empty());
    }

    #[test]
    fn empty_set_matches_nothing() {
        let set = PatternSet::new(&[]).unwrap();
        let mut out = Vec::new();
        set.matches_into("anything", &mut out);
        assert!(out.is_empty() && set.is_empty());
    }
}
