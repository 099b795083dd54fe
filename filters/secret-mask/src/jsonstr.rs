//! Masking inside a JSON document that arrives in fragments (`input_json_delta.partial_json`).
//!
//! The fragments concatenate to a JSON text whose string contents are JSON-escaped, and a
//! fragment may end anywhere: inside a string, after a backslash, in the middle of `\u00e9` or
//! between the halves of a surrogate pair. [`JsonMasker`] tokenizes incrementally: text outside
//! strings passes through verbatim; the *unescaped* content of each string goes through a
//! [`TextMasker`] (flushed at the closing quote: a secret never spans two strings) and is
//! re-escaped on the way out. Lone surrogates become U+FFFD.

use std::rc::Rc;

use crate::matcher::{RuleSet, Stats, TextMasker};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Outside,
    InString,
    /// After a backslash.
    Escape,
    /// Inside `\uXXXX`: the digits so far, and a pending high surrogate.
    Hex {
        value: u32,
        digits: u8,
        high: Option<u32>,
    },
    /// After a high surrogate's `\uXXXX`: expecting `\` then `u`.
    AfterHigh {
        high: u32,
        backslash: bool,
    },
}

#[derive(Debug)]
pub struct JsonMasker {
    state: State,
    masker: TextMasker,
    /// The raw text of an escape sequence in progress (re-emitted verbatim if the document
    /// ends inside it).
    esc_raw: String,
}

impl JsonMasker {
    pub fn new(rules: Rc<RuleSet>) -> JsonMasker {
        JsonMasker {
            state: State::Outside,
            masker: TextMasker::new(rules),
            esc_raw: String::new(),
        }
    }

    pub fn held_back(&self) -> usize {
        self.masker.held_back() + self.esc_raw.len()
    }

    /// Adds a fragment; returns the (re-escaped) fragment text that can be released now.
    pub fn feed(&mut self, fragment: &str, stats: &mut Stats) -> String {
        let mut out = String::with_capacity(fragment.len());
        self.feed_into(fragment, &mut out, stats);
        out
    }

    /// Adds a fragment; appends the (re-escaped) fragment text that can be released now.
    pub fn feed_into(&mut self, fragment: &str, out: &mut String, stats: &mut Stats) {
        let mut seg = String::new();
        for c in fragment.chars() {
            self.step(c, &mut seg, out, stats);
        }
        if !seg.is_empty() {
            let released = self.masker.feed(&seg, stats);
            escape_into(&released, out);
        }
    }

    /// The end of the document (or of the block): releases everything left.
    pub fn finish(&mut self, stats: &mut Stats) -> String {
        let mut out = String::new();
        if let State::AfterHigh { .. } | State::Hex { .. } | State::Escape = self.state {
            // Unfinished escape: release the string text before it, then the raw escape.
            let released = self.masker.finish(stats);
            escape_into(&released, &mut out);
            out.push_str(&self.esc_raw);
        } else {
            let released = self.masker.finish(stats);
            escape_into(&released, &mut out);
        }
        self.esc_raw.clear();
        self.state = State::Outside;
        out
    }

    fn step(&mut self, c: char, seg: &mut String, out: &mut String, stats: &mut Stats) {
        match self.state {
            State::Outside => {
                out.push(c);
                if c == '"' {
                    self.state = State::InString;
                }
            }
            State::InString => match c {
                '\\' => {
                    self.esc_raw.clear();
                    self.esc_raw.push(c);
                    self.state = State::Escape;
                }
                '"' => {
                    let mut released = self.masker.feed(seg, stats);
                    seg.clear();
                    released.push_str(&self.masker.finish(stats));
                    escape_into(&released, out);
                    out.push('"');
                    self.state = State::Outside;
                }
                _ => seg.push(c),
            },
            State::Escape => {
                self.esc_raw.push(c);
                let un = match c {
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '/' => Some('/'),
                    'b' => Some('\u{8}'),
                    'f' => Some('\u{c}'),
                    'n' => Some('\n'),
                    'r' => Some('\r'),
                    't' => Some('\t'),
                    'u' => None,
                    // Not valid JSON; keep the character.
                    other => Some(other),
                };
                match un {
                    Some(ch) => {
                        seg.push(ch);
                        self.esc_raw.clear();
                        self.state = State::InString;
                    }
                    None => {
                        self.state = State::Hex {
                            value: 0,
                            digits: 0,
                            high: None,
                        }
                    }
                }
            }
            State::Hex {
                value,
                digits,
                high,
            } => {
                let Some(d) = c.to_digit(16) else {
                    // Broken escape: replace what we had, then handle `c` as string text.
                    seg.push('\u{FFFD}');
                    self.esc_raw.clear();
                    self.state = State::InString;
                    self.step(c, seg, out, stats);
                    return;
                };
                self.esc_raw.push(c);
                let value = value * 16 + d;
                if digits < 3 {
                    self.state = State::Hex {
                        value,
                        digits: digits + 1,
                        high,
                    };
                    return;
                }
                self.esc_raw.clear();
                self.state = State::InString;
                match (high, value) {
                    (Some(h), 0xDC00..=0xDFFF) => {
                        let cp = 0x10000 + ((h - 0xD800) << 10) + (value - 0xDC00);
                        seg.push(char::from_u32(cp).unwrap_or('\u{FFFD}'));
                    }
                    (high, 0xD800..=0xDBFF) => {
                        if high.is_some() {
                            seg.push('\u{FFFD}');
                        }
                        self.esc_raw.clear();
                        self.state = State::AfterHigh {
                            high: value,
                            backslash: false,
                        };
                    }
                    (high, v) => {
                        if high.is_some() {
                            seg.push('\u{FFFD}');
                        }
                        seg.push(char::from_u32(v).unwrap_or('\u{FFFD}'));
                    }
                }
            }
            State::AfterHigh { high, backslash } => {
                self.esc_raw.push(c);
                match (backslash, c) {
                    (false, '\\') => {
                        self.state = State::AfterHigh {
                            high,
                            backslash: true,
                        }
                    }
                    (true, 'u') => {
                        self.esc_raw.clear();
                        self.esc_raw.push_str("\\u");
                        self.state = State::Hex {
                            value: 0,
                            digits: 0,
                            high: Some(high),
                        }
                    }
                    (true, _) => {
                        // `\` then another escape: the high surrogate stands alone.
                        seg.push('\u{FFFD}');
                        self.esc_raw.clear();
                        self.esc_raw.push('\\');
                        self.state = State::Escape;
                        self.step(c, seg, out, stats);
                        // `step` pushed `c` again into esc_raw via Escape; nothing else to do.
                    }
                    (false, _) => {
                        seg.push('\u{FFFD}');
                        self.esc_raw.clear();
                        self.state = State::InString;
                        self.step(c, seg, out, stats);
                    }
                }
            }
        }
    }
}

/// Appends `s` JSON-escaped (without quotes) to `out`.
pub fn escape_into(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rc<RuleSet> {
        crate::testutil::defaults()
    }

    fn run(fragments: &[&str]) -> String {
        let mut m = JsonMasker::new(rules());
        let mut st = Stats::default();
        let mut out = String::new();
        for f in fragments {
            out += &m.feed(f, &mut st);
        }
        out += &m.finish(&mut st);
        out
    }

    fn value(s: &str) -> serde_json::Value {
        serde_json::from_str(s).unwrap()
    }

    #[test]
    fn masks_unescaped_string_content_at_every_split() {
        // The key is interrupted by an escaped newline in the JSON text? No: it is contiguous
        // once unescaped only if written with escapes that decode to key characters.
        let doc = r#"{"cmd": "export K=\u0041KIAZ2MQ4JXLS7RT5WHB\n", "n": [1, 2]}"#;
        let expected = value(r#"{"cmd": "export K=[REDACTED:aws_access_key_id]\n", "n": [1, 2]}"#);
        for i in 0..=doc.len() {
            if !doc.is_char_boundary(i) {
                continue;
            }
            let out = run(&[&doc[..i], &doc[i..]]);
            assert_eq!(value(&out), expected, "split at {i}: {out}");
            assert!(!out.contains("Z2MQ4JXLS7RT5WHB"));
        }
    }

    #[test]
    fn escapes_and_surrogates_round_trip() {
        let doc = r#"{"a": "q\"b\\s\/t\tn\nu\u00e9 \ud83e\udd80 lone \ud800x", "b": true}"#;
        for i in 0..=doc.len() {
            let out = run(&[&doc[..i], &doc[i..]]);
            let v = value(&out);
            assert_eq!(
                v["a"], "q\"b\\s/t\tn\nu\u{e9} \u{1f980} lone \u{FFFD}x",
                "split {i}"
            );
            assert_eq!(v["b"], true);
        }
    }

    #[test]
    fn structure_outside_strings_is_verbatim() {
        let doc = "{ \"k\" :\n [ 1 , null ] }";
        assert_eq!(run(&[doc]), doc);
    }

    #[test]
    fn truncated_document_keeps_its_tail() {
        assert_eq!(run(&[r#"{"a": "xy\u00"#]), r#"{"a": "xy\u00"#);
        assert_eq!(run(&[r#"{"a": "xy"#]), r#"{"a": "xy"#);
    }
}
