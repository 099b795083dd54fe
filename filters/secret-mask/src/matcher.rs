//! The streaming matcher: masks secrets in a byte stream that arrives in pieces, holding back
//! only the smallest tail that could still become (or extend) a match.
//!
//! Semantics (identical for one-shot and streaming use, whatever the chunking): at every
//! position each rule takes its longest match (within its window, passing its look-alike
//! checks); the union of all matched byte ranges is masked; each maximal overlapping run of
//! matches becomes one replacement named after its leftmost (then longest, then first-listed)
//! rule. Adjacent, non-overlapping matches get one replacement each.
//!
//! Streaming: positions are tried left to right; a position whose outcome depends on bytes not
//! yet seen ([`Eval::NeedMore`]) blocks release from there on. Everything before the first
//! blocked position that is not inside an open masked run is released at once. Since a rule
//! only answers `NeedMore` while its DFA is alive and within its window, the hold-back never
//! exceeds the longest window (plus the open run in the rare case of chained matches, which is
//! itself bounded: see [`StreamMasker::MAX_RUN_FACTOR`]).

use std::rc::Rc;

use crate::rules::{Eval, Rule};

/// How a masked run is written out: `<kept prefix><before><rule id><after>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replacement {
    /// Text before the rule id (the whole text when the template has no `{rule}`).
    pub before: String,
    /// Text after the rule id.
    pub after: String,
    /// Whether the template names the rule (`{rule}`).
    pub with_id: bool,
    /// Keep up to this many leading bytes of the secret (never more than a quarter of it).
    pub keep_prefix: usize,
}

impl Default for Replacement {
    fn default() -> Self {
        Replacement::from_template("[REDACTED:{rule}]", 0)
    }
}

impl Replacement {
    /// Parses a template with one `{rule}` placeholder (or none).
    pub fn from_template(template: &str, keep_prefix: usize) -> Replacement {
        match template.split_once("{rule}") {
            Some((before, after)) => Replacement {
                before: before.to_string(),
                after: after.to_string(),
                with_id: true,
                keep_prefix,
            },
            None => Replacement {
                before: template.to_string(),
                after: String::new(),
                with_id: false,
                keep_prefix,
            },
        }
    }

    /// Appends the replacement for `secret` (matched by rule `id`) to `out`.
    pub fn write(&self, id: &str, secret: &[u8], out: &mut Vec<u8>) {
        let mut keep = self.keep_prefix.min(secret.len() / 4);
        // Keep whole characters only.
        while keep > 0 && keep < secret.len() && (secret[keep] & 0xC0) == 0x80 {
            keep -= 1;
        }
        out.extend_from_slice(&secret[..keep]);
        out.extend_from_slice(self.before.as_bytes());
        if self.with_id {
            out.extend_from_slice(id.as_bytes());
            out.extend_from_slice(self.after.as_bytes());
        }
    }
}

/// A compiled, immutable rule set shared by every stream.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<Rule>,
    /// For each byte, the rules that may start a match with it.
    by_first: Vec<Vec<u16>>,
    /// Whether any rule may start with the byte (the hot loop's first test).
    starts: [bool; 256],
    /// Bit `b0 * 256 + b1`: whether a match may start with the bytes `b0 b1` (the second test:
    /// the first two bytes of the rules' literal prefixes; every byte after a first byte of a
    /// rule without prefixes).
    pairs: Vec<u64>,
    max_window: usize,
    replacement: Replacement,
}

impl RuleSet {
    pub fn new(rules: Vec<Rule>, replacement: Replacement) -> RuleSet {
        let mut by_first = vec![Vec::new(); 256];
        for (i, rule) in rules.iter().enumerate() {
            for (b, &can) in rule.first.iter().enumerate() {
                if can {
                    by_first[b].push(i as u16);
                }
            }
        }
        let max_window = rules.iter().map(|r| r.window).max().unwrap_or(1);
        let mut starts = [false; 256];
        for (slot, list) in starts.iter_mut().zip(&by_first) {
            *slot = !list.is_empty();
        }
        let mut pairs = vec![0u64; 65536 / 64];
        let mut set = |b0: usize, b1: usize| {
            let bit = b0 * 256 + b1;
            pairs[bit / 64] |= 1 << (bit % 64);
        };
        for rule in &rules {
            match &rule.prefixes {
                Some(lits) => {
                    for l in lits {
                        set(usize::from(l[0]), usize::from(l[1]));
                    }
                }
                None => {
                    for (b0, _) in rule.first.iter().enumerate().filter(|(_, &f)| f) {
                        for b1 in 0..256 {
                            set(b0, b1);
                        }
                    }
                }
            }
        }
        RuleSet {
            rules,
            by_first,
            starts,
            pairs,
            max_window,
            replacement,
        }
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The longest window of any rule: the bound on hold-back.
    pub fn max_window(&self) -> usize {
        self.max_window
    }

    #[inline]
    fn pair(&self, b0: u8, b1: u8) -> bool {
        let bit = usize::from(b0) * 256 + usize::from(b1);
        self.pairs[bit / 64] & (1 << (bit % 64)) != 0
    }

    /// The first position from `p` on whose first byte starts a rule and whose first two
    /// bytes (when both have arrived) start a rule's prefix; `hay.len()` if none.
    #[inline]
    fn next_candidate(&self, hay: &[u8], mut p: usize) -> usize {
        while p + 1 < hay.len() {
            let (b0, b1) = (hay[p], hay[p + 1]);
            if self.pair(b0, b1) && self.starts[usize::from(b0)] {
                return p;
            }
            p += 1;
        }
        if p < hay.len() && self.starts[usize::from(hay[p])] {
            return p;
        }
        hay.len()
    }

    /// Whether some rule may start a match at `hay[p]` (a superset of the positions where
    /// [`Rule::eval`] can answer anything but `NoMatch`, whatever follows `hay`): the first
    /// byte, the first two bytes, then each candidate rule's literal prefixes.
    #[inline]
    fn may_start_at(&self, hay: &[u8], p: usize) -> bool {
        let b0 = hay[p];
        if !self.starts[usize::from(b0)] {
            return false;
        }
        if let Some(&b1) = hay.get(p + 1) {
            if !self.pair(b0, b1) {
                return false;
            }
        }
        self.by_first[usize::from(b0)]
            .iter()
            .any(|&ri| self.rules[usize::from(ri)].may_start(&hay[p..]))
    }

    /// Masks a complete text in one go. Returns `None` when nothing was masked.
    pub fn mask_once(self: &Rc<Self>, text: &[u8], stats: &mut Stats) -> Option<Vec<u8>> {
        if !(0..text.len()).any(|p| self.may_start_at(text, p)) {
            return None;
        }
        let before = stats.total();
        let mut m = StreamMasker::new(Rc::clone(self));
        let mut out = Vec::with_capacity(text.len());
        m.feed(text, &mut out, stats);
        m.finish(&mut out, stats);
        (stats.total() != before).then_some(out)
    }

    /// Masks a complete string in one go. Returns `None` when nothing was masked.
    pub fn mask_str(self: &Rc<Self>, text: &str, stats: &mut Stats) -> Option<String> {
        self.mask_once(text.as_bytes(), stats)
            .map(|out| String::from_utf8_lossy(&out).into_owned())
    }
}

/// What was masked, per rule index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub masked: Vec<u64>,
}

impl Stats {
    pub fn record(&mut self, rule: usize) {
        if self.masked.len() <= rule {
            self.masked.resize(rule + 1, 0);
        }
        self.masked[rule] += 1;
    }

    pub fn total(&self) -> u64 {
        self.masked.iter().sum()
    }

    /// Moves the counts out, leaving zeros.
    pub fn take(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.masked)
    }
}

#[derive(Debug, Clone, Copy)]
struct Run {
    start: usize,
    end: usize,
    rule: usize,
}

/// The per-stream state of the matcher.
#[derive(Debug)]
pub struct StreamMasker {
    rules: Rc<RuleSet>,
    /// Unreleased original bytes.
    buf: Vec<u8>,
    /// The original byte before `buf[0]`.
    prev: Option<u8>,
    /// Positions before this one have a final outcome.
    scan: usize,
    /// The masked run still growing, if any.
    open: Option<Run>,
}

impl StreamMasker {
    /// An open masked run longer than this many windows is written out in parts.
    pub const MAX_RUN_FACTOR: usize = 2;

    pub fn new(rules: Rc<RuleSet>) -> StreamMasker {
        StreamMasker {
            rules,
            buf: Vec::new(),
            prev: None,
            scan: 0,
            open: None,
        }
    }

    /// Bytes received but not yet released.
    pub fn held_back(&self) -> usize {
        self.buf.len()
    }

    /// Adds `input`; appends whatever can be released to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>, stats: &mut Stats) {
        if self.buf.is_empty() {
            // Nothing held (so no open run and nothing scanned): scan the input where it is
            // and keep only what cannot be released yet.
            let emitted = self.advance(input, false, out, stats);
            self.buf.extend_from_slice(&input[emitted..]);
        } else {
            let mut buf = std::mem::take(&mut self.buf);
            buf.extend_from_slice(input);
            let emitted = self.advance(&buf, false, out, stats);
            buf.drain(..emitted);
            self.buf = buf;
        }
    }

    /// The end of the stream: releases everything left, masked.
    pub fn finish(&mut self, out: &mut Vec<u8>, stats: &mut Stats) {
        let mut buf = std::mem::take(&mut self.buf);
        let emitted = self.advance(&buf, true, out, stats);
        buf.drain(..emitted);
        self.buf = buf;
        self.prev = None;
    }

    /// Decides what it can over `buf` (the unreleased bytes), appends the released part to
    /// `out`, and returns how many bytes of `buf` were released; positions and the open run
    /// are left relative to what remains.
    fn advance(&mut self, buf: &[u8], eof: bool, out: &mut Vec<u8>, stats: &mut Stats) -> usize {
        let rules = Rc::clone(&self.rules);
        let mut emitted = 0usize;
        let mut p = self.scan;
        let mut blocked = None;
        while p < buf.len() {
            // Skip positions whose first two bytes start no rule (one table lookup per byte).
            p = rules.next_candidate(buf, p);
            if p >= buf.len() {
                break;
            }
            let b0 = buf[p];
            let candidates = &rules.by_first[usize::from(b0)];
            let prev = if p == 0 { self.prev } else { Some(buf[p - 1]) };
            let mut best: Option<(usize, usize)> = None; // (len, rule)
            let mut need_more = false;
            for &ri in candidates {
                let ri = ri as usize;
                let rule = &rules.rules[ri];
                // The literal prefixes rule out almost every position before the DFA runs.
                if !rule.may_start(&buf[p..]) {
                    continue;
                }
                match rule.eval(buf, p, prev, eof) {
                    Eval::NeedMore => {
                        need_more = true;
                        break;
                    }
                    Eval::Match(len) => {
                        if best.is_none_or(|(l, _)| len > l) {
                            best = Some((len, ri));
                        }
                    }
                    Eval::NoMatch => {}
                }
            }
            if need_more {
                blocked = Some(p);
                break;
            }
            if let Some((len, rule)) = best {
                match &mut self.open {
                    Some(run) if p < run.end => run.end = run.end.max(p + len),
                    open => {
                        if let Some(run) = open.take() {
                            emit_run(&rules, buf, &mut emitted, run, out, stats);
                        }
                        *open = Some(Run {
                            start: p,
                            end: p + len,
                            rule,
                        });
                    }
                }
            }
            p += 1;
        }
        let frontier = blocked.unwrap_or(buf.len());
        if let Some(run) = self.open {
            if run.end <= frontier {
                self.open = None;
                emit_run(&rules, buf, &mut emitted, run, out, stats);
            } else if frontier - run.start > rules.max_window * Self::MAX_RUN_FACTOR {
                // A chain of overlapping matches: write out the covered part so far.
                let part = Run {
                    end: frontier,
                    ..run
                };
                emit_run(&rules, buf, &mut emitted, part, out, stats);
                self.open = Some(Run {
                    start: frontier,
                    ..run
                });
            }
        }
        let release_to = match self.open {
            Some(run) => run.start,
            None => frontier,
        };
        if release_to > emitted {
            out.extend_from_slice(&buf[emitted..release_to]);
            emitted = release_to;
        }
        if emitted > 0 {
            self.prev = Some(buf[emitted - 1]);
        }
        self.scan = p - emitted;
        if let Some(run) = &mut self.open {
            run.start -= emitted;
            run.end -= emitted;
        }
        emitted
    }
}

fn emit_run(
    rules: &RuleSet,
    buf: &[u8],
    emitted: &mut usize,
    run: Run,
    out: &mut Vec<u8>,
    stats: &mut Stats,
) {
    if run.start > *emitted {
        out.extend_from_slice(&buf[*emitted..run.start]);
    }
    rules
        .replacement
        .write(&rules.rules[run.rule].id, &buf[run.start..run.end], out);
    stats.record(run.rule);
    *emitted = run.end;
}

/// A [`StreamMasker`] over UTF-8 text: releases whole characters only.
#[derive(Debug)]
pub struct TextMasker {
    inner: StreamMasker,
    /// Released bytes that do not yet end a character.
    carry: Vec<u8>,
    scratch: Vec<u8>,
}

impl TextMasker {
    pub fn new(rules: Rc<RuleSet>) -> TextMasker {
        TextMasker {
            inner: StreamMasker::new(rules),
            carry: Vec::new(),
            scratch: Vec::new(),
        }
    }

    pub fn held_back(&self) -> usize {
        self.inner.held_back() + self.carry.len()
    }

    /// Adds `text`; returns the text that can be released now.
    pub fn feed(&mut self, text: &str, stats: &mut Stats) -> String {
        let mut out = String::new();
        self.feed_into(text, &mut out, stats);
        out
    }

    /// Adds `text`; appends the text that can be released now to `out`.
    pub fn feed_into(&mut self, text: &str, out: &mut String, stats: &mut Stats) {
        if self.carry.is_empty() && self.inner.held_back() == 0 {
            // The common case: nothing held. Released bytes are a prefix of `text` (untouched)
            // unless something was masked, so they usually need no UTF-8 check of their own.
            let mut bytes = std::mem::take(&mut self.scratch);
            bytes.clear();
            let before = stats.total();
            self.inner.feed(text.as_bytes(), &mut bytes, stats);
            if stats.total() == before && text.as_bytes().starts_with(&bytes) {
                let mut cut = bytes.len();
                while !text.is_char_boundary(cut) {
                    cut -= 1;
                }
                out.push_str(&text[..cut]);
                self.carry.extend_from_slice(&bytes[cut..]);
            } else {
                self.push_valid(&bytes, out);
            }
            self.scratch = bytes;
            return;
        }
        let mut bytes = std::mem::take(&mut self.scratch);
        bytes.clear();
        bytes.append(&mut self.carry);
        self.inner.feed(text.as_bytes(), &mut bytes, stats);
        self.push_valid(&bytes, out);
        self.scratch = bytes;
    }

    /// The end of the text: releases everything left, masked.
    pub fn finish(&mut self, stats: &mut Stats) -> String {
        let mut out = String::new();
        self.finish_into(&mut out, stats);
        out
    }

    /// The end of the text: appends everything left, masked, to `out`.
    pub fn finish_into(&mut self, out: &mut String, stats: &mut Stats) {
        let mut bytes = std::mem::take(&mut self.carry);
        self.inner.finish(&mut bytes, stats);
        out.push_str(&String::from_utf8_lossy(&bytes));
        bytes.clear();
        self.carry = bytes;
    }

    /// Appends the whole characters of `bytes` to `out`; an incomplete one at the end waits in
    /// `carry`.
    fn push_valid(&mut self, bytes: &[u8], out: &mut String) {
        match std::str::from_utf8(bytes) {
            Ok(s) => out.push_str(s),
            Err(e) => {
                let valid = e.valid_up_to();
                match e.error_len() {
                    // An incomplete character at the end: keep it for later.
                    None => {
                        self.carry.extend_from_slice(&bytes[valid..]);
                        out.push_str(&String::from_utf8_lossy(&bytes[..valid]));
                    }
                    // Cannot happen for input that came from a &str; never panic anyway.
                    Some(_) => out.push_str(&String::from_utf8_lossy(bytes)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::RuleSpec;

    fn set(specs: Vec<RuleSpec>) -> Rc<RuleSet> {
        let rules = specs.iter().map(|s| Rule::compile(s).unwrap()).collect();
        Rc::new(RuleSet::new(rules, Replacement::default()))
    }

    fn defaults() -> Rc<RuleSet> {
        crate::testutil::defaults()
    }

    fn mask(rs: &Rc<RuleSet>, text: &str) -> String {
        let mut st = Stats::default();
        rs.mask_str(text, &mut st)
            .unwrap_or_else(|| text.to_string())
    }

    const AWS: &str = "AKIAZ2MQ4JXLS7RT5WHB";

    #[test]
    fn masks_in_one_go() {
        let rs = defaults();
        assert_eq!(
            mask(&rs, &format!("key={AWS}; done")),
            "key=[REDACTED:aws_access_key_id]; done"
        );
        assert_eq!(mask(&rs, "nothing to see"), "nothing to see");
    }

    #[test]
    fn releases_as_soon_as_a_prefix_dies() {
        let rs = defaults();
        let mut m = TextMasker::new(rs);
        let mut st = Stats::default();
        assert_eq!(m.feed("hello AK", &mut st), "hello ");
        assert_eq!(m.held_back(), 2);
        assert_eq!(m.feed("IA", &mut st), "");
        assert_eq!(m.feed("!", &mut st), "AKIA!");
        assert_eq!(m.held_back(), 0);
    }

    #[test]
    fn secret_split_across_feeds_is_masked() {
        let rs = defaults();
        let text = format!("a {AWS} b");
        for cut in 0..=text.len() {
            let mut m = TextMasker::new(Rc::clone(&rs));
            let mut st = Stats::default();
            let mut out = m.feed(&text[..cut], &mut st);
            out += &m.feed(&text[cut..], &mut st);
            out += &m.finish(&mut st);
            assert_eq!(out, "a [REDACTED:aws_access_key_id] b", "cut {cut}");
            assert_eq!(st.total(), 1);
        }
    }

    #[test]
    fn overlapping_matches_merge_into_one_run() {
        let rs = set(vec![
            RuleSpec::literal("one", "abcdefgh"),
            RuleSpec::literal("two", "efghijkl"),
        ]);
        assert_eq!(mask(&rs, "xabcdefghijkly"), "x[REDACTED:one]y");
        // Adjacent matches stay separate.
        assert_eq!(
            mask(&rs, "abcdefghefghijkl"),
            "[REDACTED:one][REDACTED:two]"
        );
    }

    #[test]
    fn replacement_template_and_prefix() {
        let rs = Rc::new(RuleSet::new(
            vec![Rule::compile(&RuleSpec::literal("canary", "CANARY-0123456789")).unwrap()],
            Replacement::from_template("<{rule}>", 4),
        ));
        assert_eq!(mask(&rs, "x CANARY-0123456789 y"), "x CANA<canary> y");
        let rs = Rc::new(RuleSet::new(
            vec![Rule::compile(&RuleSpec::literal("canary", "CANARY-0123456789")).unwrap()],
            Replacement::from_template("***", 100),
        ));
        // keep_prefix is capped at a quarter of the secret.
        assert_eq!(mask(&rs, "CANARY-0123456789"), "CANA***");
    }

    #[test]
    fn multibyte_text_is_released_on_character_boundaries() {
        let rs = defaults();
        let mut m = TextMasker::new(rs);
        let mut st = Stats::default();
        let mut out = String::new();
        for piece in ["é", "日本", "AK", "IAé", "🦀"] {
            out += &m.feed(piece, &mut st);
        }
        out += &m.finish(&mut st);
        assert_eq!(out, "é日本AKIAé🦀");
    }
}
