//! Rewriting responses: the SSE stream of a streaming Messages call, and JSON (or other) bodies.
//!
//! [`SseRewriter`] parses events incrementally. For each content block the concatenation of its
//! `text_delta` / `thinking_delta` texts — or the unescaped string contents of its
//! `input_json_delta` fragments — is one text stream through the streaming matcher; delta
//! events are re-emitted carrying the released (masked) text. Held-back text is flushed, as an
//! extra delta of the same type, before `content_block_stop`, before any other delta type for
//! the block (e.g. `signature_delta`), before `message_delta`, `message_stop` and `error`, and
//! at the end of the stream. Every other event passes through byte for byte — unless one of its
//! strings contains a secret (an upstream error echoing a key, say), in which case it is
//! re-serialized with the strings masked. The SSE envelope is masked too: an `event` name, `id`
//! or `retry` written anew is masked, and an event sent on as received goes through the masker
//! whole when it has lines besides `event` and `data` (comments, `id`, unknown fields). Deltas whose released text is empty are dropped
//! (their text comes later), unless they carry an SSE `id`.
//!
//! [`mask_body`] masks a complete non-streaming body: every string of a JSON document (content
//! block `text`, `thinking`, `tool_use.input` values, error messages…), or the raw bytes of
//! anything that is not JSON.

use std::collections::BTreeMap;
use std::rc::Rc;

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

use crate::jsonstr::JsonMasker;
use crate::matcher::{RuleSet, Stats, TextMasker};
use crate::sse::{write_event, BlockRef, Parser, SseError};

/// What a content block's text stream is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Thinking,
    Json,
}

impl Kind {
    fn of_delta(delta_type: &str) -> Option<Kind> {
        match delta_type {
            "text_delta" => Some(Kind::Text),
            "thinking_delta" => Some(Kind::Thinking),
            "input_json_delta" => Some(Kind::Json),
            _ => None,
        }
    }

    fn delta_type(self) -> &'static str {
        match self {
            Kind::Text => "text_delta",
            Kind::Thinking => "thinking_delta",
            Kind::Json => "input_json_delta",
        }
    }

    fn field(self) -> &'static str {
        match self {
            Kind::Text => "text",
            Kind::Thinking => "thinking",
            Kind::Json => "partial_json",
        }
    }
}

#[derive(Debug)]
enum Masker {
    Text(TextMasker),
    Json(JsonMasker),
}

#[derive(Debug)]
struct BlockStream {
    kind: Kind,
    masker: Masker,
    /// The `event:` name to use for flushed deltas.
    event_name: Option<String>,
}

impl BlockStream {
    fn new(kind: Kind, rules: &Rc<RuleSet>, event_name: Option<String>) -> BlockStream {
        let masker = match kind {
            Kind::Json => Masker::Json(JsonMasker::new(Rc::clone(rules))),
            _ => Masker::Text(TextMasker::new(Rc::clone(rules))),
        };
        BlockStream {
            kind,
            masker,
            event_name,
        }
    }

    fn feed(&mut self, s: &str, stats: &mut Stats) -> String {
        let mut out = String::new();
        self.feed_into(s, &mut out, stats);
        out
    }

    fn feed_into(&mut self, s: &str, out: &mut String, stats: &mut Stats) {
        match &mut self.masker {
            Masker::Text(m) => m.feed_into(s, out, stats),
            Masker::Json(m) => m.feed_into(s, out, stats),
        }
    }

    fn finish(&mut self, stats: &mut Stats) -> String {
        match &mut self.masker {
            Masker::Text(m) => m.finish(stats),
            Masker::Json(m) => m.finish(stats),
        }
    }

    fn held_back(&self) -> usize {
        match &self.masker {
            Masker::Text(m) => m.held_back(),
            Masker::Json(m) => m.held_back(),
        }
    }
}

/// The streaming rewriter for one `text/event-stream` response.
#[derive(Debug)]
pub struct SseRewriter {
    rules: Rc<RuleSet>,
    parser: Parser,
    blocks: BTreeMap<u64, BlockStream>,
    /// Released text of the current delta (kept to reuse its allocation).
    released: String,
    stats: Stats,
}

impl SseRewriter {
    pub fn new(rules: Rc<RuleSet>, max_event: usize) -> SseRewriter {
        SseRewriter {
            rules,
            parser: Parser::new(max_event),
            blocks: BTreeMap::new(),
            released: String::new(),
            stats: Stats::default(),
        }
    }

    /// Bytes received and not yet released (an unfinished event plus held-back text).
    pub fn held_back(&self) -> usize {
        self.parser.pending() + self.held_back_text()
    }

    /// Text held back by the matchers (what could still become a secret).
    pub fn held_back_text(&self) -> usize {
        self.blocks.values().map(BlockStream::held_back).sum()
    }

    /// Secrets masked so far (per rule index); [`Stats::take`] to consume.
    pub fn stats_mut(&mut self) -> &mut Stats {
        &mut self.stats
    }

    /// Adds a network chunk; appends the bytes to send on to `out`.
    pub fn feed(&mut self, chunk: &[u8], out: &mut Vec<u8>) -> Result<(), SseError> {
        let mut parser = std::mem::replace(&mut self.parser, Parser::new(0));
        let res = parser.feed_each(chunk, |block| self.block(block, out));
        self.parser = parser;
        res
    }

    /// The end of the stream: flushes every open block, then the bytes of an unterminated
    /// event (masked, still unterminated, as received).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.flush_all(out);
        if let Some(rest) = self.parser.finish() {
            match self.rules.mask_once(&rest.raw, &mut self.stats) {
                Some(masked) => out.extend_from_slice(&masked),
                None => out.extend_from_slice(&rest.raw),
            }
        }
    }

    fn block(&mut self, block: &BlockRef<'_>, out: &mut Vec<u8>) {
        let Some(data) = block.data else {
            // Comments and blank lines: nothing a client reads, but mask anyway.
            self.passthrough(block, out);
            return;
        };
        // Fastest path: a delta in the API's exact compact layout.
        if let Some((index, kind, text)) = canonical_delta(data) {
            self.fast_delta(block, index, kind, &text, out);
            return;
        }
        // Fast path: a plain text/thinking/input_json delta with exactly the known fields.
        if let Ok(fast) = serde_json::from_slice::<FastDelta>(data) {
            if fast.kind == "content_block_delta" {
                if let Some(kind) = Kind::of_delta(&fast.delta.kind) {
                    if let Some(text) = fast.delta.text(kind) {
                        self.fast_delta(block, fast.index, kind, text, out);
                        return;
                    }
                }
            }
        }
        let Ok(mut value) = serde_json::from_slice::<Value>(data) else {
            self.passthrough(block, out);
            return;
        };
        let ty = value
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or(block.name())
            .to_string();
        match ty.as_str() {
            "content_block_start" => self.start(block, value, out),
            "content_block_delta" => {
                let index = value.get("index").and_then(Value::as_u64);
                let delta_type = value
                    .pointer("/delta/type")
                    .and_then(Value::as_str)
                    .and_then(Kind::of_delta);
                match (index, delta_type) {
                    (Some(index), Some(kind)) => self.delta(block, &mut value, index, kind, out),
                    (Some(index), None) => {
                        self.flush(index, out);
                        self.passthrough_value(block, value, out);
                    }
                    _ => self.passthrough_value(block, value, out),
                }
            }
            "content_block_stop" => {
                if let Some(index) = value.get("index").and_then(Value::as_u64) {
                    self.flush(index, out);
                    self.blocks.remove(&index);
                }
                self.passthrough_value(block, value, out);
            }
            "message_delta" | "message_stop" | "error" => {
                self.flush_all(out);
                self.passthrough_value(block, value, out);
            }
            _ => self.passthrough_value(block, value, out),
        }
    }

    fn start(&mut self, block: &BlockRef<'_>, mut value: Value, out: &mut Vec<u8>) {
        let Some(index) = value.get("index").and_then(Value::as_u64) else {
            self.passthrough_value(block, value, out);
            return;
        };
        // A new block at an index still open: finish the old one first.
        self.flush(index, out);
        let kind = match value.pointer("/content_block/type").and_then(Value::as_str) {
            Some("text") => Some(Kind::Text),
            Some("thinking") => Some(Kind::Thinking),
            Some("tool_use" | "server_tool_use" | "mcp_tool_use") => Some(Kind::Json),
            _ => None,
        };
        let event_name = Some("content_block_delta".to_string());
        match kind {
            Some(kind @ (Kind::Text | Kind::Thinking)) => {
                let mut stream = BlockStream::new(kind, &self.rules, event_name);
                // Initial text (normally empty) is the start of the block's stream.
                let field = kind.field();
                let initial = value
                    .pointer(&format!("/content_block/{field}"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                let mut changed = false;
                if let Some(initial) = initial.filter(|s| !s.is_empty()) {
                    let released = stream.feed(&initial, &mut self.stats);
                    if let Some(slot) = value
                        .get_mut("content_block")
                        .and_then(|b| b.get_mut(field))
                    {
                        *slot = Value::String(released);
                        changed = true;
                    }
                }
                self.blocks.insert(index, stream);
                // Mask any other strings (ids, names) too.
                let masked = mask_value(&self.rules, &mut value, &mut self.stats);
                if changed || masked {
                    self.emit_value(block, &value, out);
                } else {
                    self.verbatim(block, out);
                }
            }
            Some(kind) => {
                self.blocks
                    .insert(index, BlockStream::new(kind, &self.rules, event_name));
                self.passthrough_value(block, value, out);
            }
            None => self.passthrough_value(block, value, out),
        }
    }

    fn delta(
        &mut self,
        block: &BlockRef<'_>,
        value: &mut Value,
        index: u64,
        kind: Kind,
        out: &mut Vec<u8>,
    ) {
        let field = kind.field();
        let Some(text) = value
            .pointer(&format!("/delta/{field}"))
            .and_then(Value::as_str)
            .map(str::to_string)
        else {
            self.flush(index, out);
            self.passthrough_value(block, value.take(), out);
            return;
        };
        if self.blocks.get(&index).is_some_and(|s| s.kind != kind) {
            self.flush(index, out);
            self.blocks.remove(&index);
        }
        if !self.blocks.contains_key(&index) {
            let event_name = self.masked_field(block.event);
            let stream = BlockStream::new(kind, &self.rules, event_name);
            self.blocks.insert(index, stream);
        }
        let Some(stream) = self.blocks.get_mut(&index) else {
            return;
        };
        let released = stream.feed(&text, &mut self.stats);
        if released.is_empty() && block.id.is_none() && block.retry.is_none() {
            return;
        }
        if released == text {
            // Unchanged text: keep the event's exact bytes, unless another string needs masking.
            let mut copy = value.clone();
            if mask_value(&self.rules, &mut copy, &mut self.stats) {
                self.emit_value(block, &copy, out);
            } else {
                self.verbatim(block, out);
            }
            return;
        }
        // Every other string of the event (fields the fast paths do not know) is masked too;
        // the text is already masked, by its stream.
        if let Some(slot) = value.get_mut("delta").and_then(|d| d.get_mut(field)) {
            *slot = Value::Null;
        }
        mask_value(&self.rules, value, &mut self.stats);
        if let Some(slot) = value.get_mut("delta").and_then(|d| d.get_mut(field)) {
            *slot = Value::String(released);
        }
        self.emit_value(block, value, out);
    }

    fn fast_delta(
        &mut self,
        block: &BlockRef<'_>,
        index: u64,
        kind: Kind,
        text: &str,
        out: &mut Vec<u8>,
    ) {
        if self.blocks.get(&index).is_some_and(|s| s.kind != kind) {
            self.flush(index, out);
            self.blocks.remove(&index);
        }
        if !self.blocks.contains_key(&index) {
            let event_name = self.masked_field(block.event);
            let stream = BlockStream::new(kind, &self.rules, event_name);
            self.blocks.insert(index, stream);
        }
        let mut released = std::mem::take(&mut self.released);
        released.clear();
        if let Some(stream) = self.blocks.get_mut(&index) {
            stream.feed_into(text, &mut released, &mut self.stats);
        }
        if released == text {
            self.verbatim(block, out);
        } else if !released.is_empty() || block.id.is_some() || block.retry.is_some() {
            let [event, id, retry] = self.envelope(block);
            write_delta(
                event.as_deref(),
                id.as_deref(),
                retry.as_deref(),
                index,
                kind,
                &released,
                out,
            );
        }
        self.released = released;
    }

    /// Flushes the held-back text of block `index` as one extra delta.
    fn flush(&mut self, index: u64, out: &mut Vec<u8>) {
        let Some(stream) = self.blocks.get_mut(&index) else {
            return;
        };
        let rest = stream.finish(&mut self.stats);
        if rest.is_empty() {
            return;
        }
        write_delta(
            stream.event_name.as_deref(),
            None,
            None,
            index,
            stream.kind,
            &rest,
            out,
        );
    }

    fn flush_all(&mut self, out: &mut Vec<u8>) {
        let indices: Vec<u64> = self.blocks.keys().copied().collect();
        for index in indices {
            self.flush(index, out);
        }
    }

    /// Passes a block through, masking its data as raw text if it contains a secret.
    fn passthrough(&mut self, block: &BlockRef<'_>, out: &mut Vec<u8>) {
        match block.data {
            Some(data) => match self.rules.mask_once(data, &mut self.stats) {
                Some(masked) => {
                    let [event, id, retry] = self.envelope(block);
                    write_event(
                        event.as_deref(),
                        id.as_deref(),
                        retry.as_deref(),
                        &masked,
                        out,
                    )
                }
                None => self.raw_or_masked(block.raw, out),
            },
            None => self.raw_or_masked(block.raw, out),
        }
    }

    fn raw_or_masked(&mut self, raw: &[u8], out: &mut Vec<u8>) {
        match self.rules.mask_once(raw, &mut self.stats) {
            Some(masked) => out.extend_from_slice(&masked),
            None => out.extend_from_slice(raw),
        }
    }

    fn passthrough_value(&mut self, block: &BlockRef<'_>, mut value: Value, out: &mut Vec<u8>) {
        if mask_value(&self.rules, &mut value, &mut self.stats) {
            self.emit_value(block, &value, out);
        } else {
            self.verbatim(block, out);
        }
    }

    fn emit_value(&mut self, block: &BlockRef<'_>, value: &Value, out: &mut Vec<u8>) {
        let data = serde_json::to_vec(value).unwrap_or_default();
        let [event, id, retry] = self.envelope(block);
        write_event(
            event.as_deref(),
            id.as_deref(),
            retry.as_deref(),
            &data,
            out,
        );
    }

    /// Sends a block on as received — unless a line other than its single `data` line (a
    /// comment, `id`, `retry`, an unknown field, or an `event` name) could hold a secret: then
    /// its raw bytes go through the masker. (The common `event: …\ndata: …\n\n` layout with a
    /// clean name is checked by comparison alone.)
    fn verbatim(&mut self, block: &BlockRef<'_>, out: &mut Vec<u8>) {
        let clean_name = block.event.is_none_or(|e| {
            self.rules
                .mask_once(e.as_bytes(), &mut Stats::default())
                .is_none()
        });
        if clean_name && is_bare(block) {
            out.extend_from_slice(block.raw);
        } else {
            self.raw_or_masked(block.raw, out);
        }
    }

    /// A field of the SSE envelope (`event`, `id`, `retry`) with any secret in it masked.
    fn masked_field(&mut self, value: Option<&str>) -> Option<String> {
        value.map(|v| {
            self.rules
                .mask_str(v, &mut self.stats)
                .unwrap_or_else(|| v.to_string())
        })
    }

    /// The block's `event`, `id` and `retry`, masked, for an event written anew.
    fn envelope<'b>(&mut self, block: &BlockRef<'b>) -> [Option<Cow<'b, str>>; 3] {
        [block.event, block.id, block.retry].map(|field| {
            field.map(|v| match self.rules.mask_str(v, &mut self.stats) {
                Some(masked) => Cow::Owned(masked),
                None => Cow::Borrowed(v),
            })
        })
    }
}

/// Whether `block.raw` holds nothing but an optional `event: NAME` line, one `data: …` line
/// and the blank line (LF endings): no comment, `id`, `retry` or unknown field.
fn is_bare(block: &BlockRef<'_>) -> bool {
    let Some(data) = block.data else {
        return false;
    };
    if block.id.is_some() || block.retry.is_some() {
        return false;
    }
    let mut rest = block.raw;
    if let Some(event) = block.event {
        match rest
            .strip_prefix(b"event: ")
            .and_then(|r| r.strip_prefix(event.as_bytes()))
            .and_then(|r| r.strip_prefix(b"\n"))
        {
            Some(r) => rest = r,
            None => return false,
        }
    }
    rest.strip_prefix(b"data: ")
        .and_then(|r| r.strip_prefix(data))
        .is_some_and(|r| r == b"\n\n")
}

const DELTA_HEAD: &[u8] = br#"{"type":"content_block_delta","index":"#;

/// Writes a delta event with `text`, as the API lays it out:
/// `{"type":"content_block_delta","index":…,"delta":{"type":…,<field>:…}}` on one `data:`
/// line (JSON escapes every line break), straight into `out`.
fn write_delta(
    event: Option<&str>,
    id: Option<&str>,
    retry: Option<&str>,
    index: u64,
    kind: Kind,
    text: &str,
    out: &mut Vec<u8>,
) {
    for (field, value) in [("event", event), ("id", id), ("retry", retry)] {
        if let Some(v) = value {
            out.extend_from_slice(field.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        }
    }
    out.extend_from_slice(b"data: ");
    out.extend_from_slice(DELTA_HEAD);
    push_decimal(index, out);
    out.extend_from_slice(br#","delta":{"type":""#);
    out.extend_from_slice(kind.delta_type().as_bytes());
    out.extend_from_slice(br#"",""#);
    out.extend_from_slice(kind.field().as_bytes());
    out.extend_from_slice(br#"":"#);
    // Serializing a string into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, text);
    out.extend_from_slice(b"}}\n\n");
}

/// Appends `n` in decimal (no allocation, unlike `to_string`).
fn push_decimal(mut n: u64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// Recognizes a delta event's data in the API's exact compact layout
/// (`{"type":"content_block_delta","index":N,"delta":{"type":"text_delta","text":"…"}}`, and
/// the same for `thinking_delta` / `input_json_delta`) without a JSON parser; anything else —
/// other field orders, spacing, extra fields, invalid JSON — returns `None` for the general
/// paths.
fn canonical_delta(data: &[u8]) -> Option<(u64, Kind, Cow<'_, str>)> {
    let rest = data.strip_prefix(DELTA_HEAD)?;
    let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 || (digits > 1 && rest[0] == b'0') {
        return None;
    }
    let index: u64 = std::str::from_utf8(&rest[..digits]).ok()?.parse().ok()?;
    let rest = rest[digits..].strip_prefix(br#","delta":{"type":""#)?;
    let (kind, rest) = [Kind::Text, Kind::Thinking, Kind::Json]
        .into_iter()
        .find_map(|k| {
            let r = rest.strip_prefix(k.delta_type().as_bytes())?;
            let r = r.strip_prefix(br#"",""#)?;
            let r = r.strip_prefix(k.field().as_bytes())?;
            Some((k, r.strip_prefix(br#"":""#)?))
        })?;
    // The string runs to the first unescaped quote; then exactly `}}` must end the data.
    let mut i = 0;
    let mut escaped = false;
    while i < rest.len() {
        match rest[i] {
            b'"' => break,
            b'\\' => {
                escaped = true;
                i += 1;
            }
            b if b < 0x20 => return None,
            _ => {}
        }
        i += 1;
    }
    if rest.get(i..)? != br#""}}"# {
        return None;
    }
    let text = if escaped {
        // Quoted, as serde_json reads a string (escapes checked and decoded).
        let quoted = data.get(data.len() - rest.len() - 1..data.len() - 2)?;
        Cow::Owned(serde_json::from_slice::<String>(quoted).ok()?)
    } else {
        Cow::Borrowed(std::str::from_utf8(&rest[..i]).ok()?)
    };
    Some((index, kind, text))
}

/// A delta event with exactly the fields the fast path knows (anything else takes the
/// general path, which preserves and masks every field).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastDelta<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    index: u64,
    #[serde(borrow)]
    delta: FastInner<'a>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FastInner<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    text: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    thinking: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    partial_json: Option<Cow<'a, str>>,
}

impl FastInner<'_> {
    /// The text of the field that `kind` uses, when it is the only one present.
    fn text(&self, kind: Kind) -> Option<&str> {
        match (kind, &self.text, &self.thinking, &self.partial_json) {
            (Kind::Text, Some(t), None, None) => Some(t),
            (Kind::Thinking, None, Some(t), None) => Some(t),
            (Kind::Json, None, None, Some(t)) => Some(t),
            _ => None,
        }
    }
}

/// Masks every string (and object key) in `value`; true if anything changed.
pub fn mask_value(rules: &Rc<RuleSet>, value: &mut Value, stats: &mut Stats) -> bool {
    match value {
        Value::String(s) => match rules.mask_str(s, stats) {
            Some(m) => {
                *s = m;
                true
            }
            None => false,
        },
        Value::Array(items) => {
            let mut changed = false;
            for v in items {
                changed |= mask_value(rules, v, stats);
            }
            changed
        }
        Value::Object(map) => {
            let mut changed = false;
            let keys_need_mask = map
                .keys()
                .any(|k| rules.mask_str(k, &mut Stats::default()).is_some());
            if keys_need_mask {
                let old = std::mem::take(map);
                for (k, mut v) in old {
                    let k = rules.mask_str(&k, stats).unwrap_or(k);
                    mask_value(rules, &mut v, stats);
                    map.insert(k, v);
                }
                return true;
            }
            for v in map.values_mut() {
                changed |= mask_value(rules, v, stats);
            }
            changed
        }
        _ => false,
    }
}

/// Masks a complete response body: the strings of a JSON document, else the raw bytes.
/// Returns `None` when nothing needed masking (send the body as it is).
pub fn mask_body(rules: &Rc<RuleSet>, body: &[u8], stats: &mut Stats) -> Option<Vec<u8>> {
    if let Ok(mut value) = serde_json::from_slice::<Value>(body) {
        if mask_value(rules, &mut value, stats) {
            return serde_json::to_vec(&value).ok();
        }
        return None;
    }
    rules.mask_once(body, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> Rc<RuleSet> {
        crate::testutil::defaults()
    }

    const AWS: &str = "AKIAZ2MQ4JXLS7RT5WHB";

    fn run(chunks: &[&[u8]]) -> Vec<u8> {
        let mut rw = SseRewriter::new(rules(), 1 << 20);
        let mut out = Vec::new();
        for c in chunks {
            rw.feed(c, &mut out).unwrap();
        }
        rw.finish(&mut out);
        out
    }

    #[test]
    fn secrets_in_the_sse_envelope_are_masked() {
        // Found by tests/stream_props.rs: a comment line, an `id`, or an `event` name of an event
        // whose data needed no change went out byte for byte, secret included; and a delta whose
        // text was rewritten kept the other strings of its event unmasked.
        let delta =
            r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}"#;
        let ping = r#"{"type":"ping"}"#;
        for event in [
            format!(": {AWS}\nevent: content_block_delta\ndata: {delta}\n\n"),
            format!("event: content_block_delta\nid: {AWS}\ndata: {delta}\n\n"),
            format!("event: {AWS}\ndata: {delta}\n\n"),
            format!("event: {AWS}\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"{AWS}\"}}}}\n\n"),
            format!("event: ping\nid: {AWS}\nretry: 10\ndata: {ping}\n\n"),
            format!(": {AWS}\r\ndata: {ping}\r\n\r\n"),
            format!("id: {AWS}\ndata: not json {AWS}\n\n"),
            // An unknown field next to a delta whose own text is rewritten.
            format!("data: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"x {AWS}\"}},\"extra\":\"{AWS}\"}}\n\n"),
        ] {
            let out = String::from_utf8(run(&[event.as_bytes()])).unwrap();
            assert!(!out.contains(&AWS[4..]), "{event:?} -> {out:?}");
            assert!(out.contains("[REDACTED:aws_access_key_id]"), "{out:?}");
        }
        // The common layout still passes byte for byte.
        let plain = format!("event: content_block_delta\ndata: {delta}\n\n");
        assert_eq!(run(&[plain.as_bytes()]), plain.as_bytes());
    }

    fn text_delta(i: u64, t: &str) -> String {
        let v = serde_json::json!({"type":"content_block_delta","index":i,"delta":{"type":"text_delta","text":t}});
        format!("event: content_block_delta\ndata: {v}\n\n")
    }

    #[test]
    fn clean_streams_pass_through_byte_for_byte() {
        let s = format!(
            "event: message_start\ndata: {{\"type\":\"message_start\",\"message\":{{}}}}\n\n{}{}: keepalive\n\nevent: ping\ndata: {{\"type\": \"ping\"}}\n\nevent: whatever\ndata: not json\n\n",
            text_delta(0, "hello "),
            text_delta(0, "world")
        );
        assert_eq!(run(&[s.as_bytes()]), s.as_bytes());
    }

    #[test]
    fn secret_across_deltas_and_chunks() {
        let s = format!(
            "{}{}{}event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":0}}\n\n",
            text_delta(0, "key AKIAZ2MQ"),
            text_delta(0, "4JXLS7RT"),
            text_delta(0, "5WHB done"),
        );
        let bytes = s.as_bytes();
        for cut in 0..bytes.len() {
            let out = run(&[&bytes[..cut], &bytes[cut..]]);
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("4JXLS7RT"), "{out}");
            let text: String = texts(&out).concat();
            assert_eq!(text, "key [REDACTED:aws_access_key_id] done");
        }
    }

    fn texts(out: &str) -> Vec<String> {
        let mut p = Parser::new(1 << 20);
        let mut blocks = Vec::new();
        p.feed(out.as_bytes(), &mut blocks).unwrap();
        blocks
            .iter()
            .filter_map(|b| b.data.as_ref())
            .filter_map(|d| serde_json::from_slice::<Value>(d).ok())
            .filter_map(|v| {
                v.pointer("/delta/text")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect()
    }

    #[test]
    fn held_text_is_flushed_before_error_and_at_the_end() {
        let s = format!(
            "{}event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"overloaded_error\",\"message\":\"x\"}}}}\n\n",
            text_delta(0, "tail AKIA"),
        );
        let out = String::from_utf8(run(&[s.as_bytes()])).unwrap();
        let err_at = out.find("event: error").unwrap();
        let akia_at = out.find("AKIA").unwrap();
        assert!(akia_at < err_at, "{out}");
        // No message_stop at all: flushed at the end of the stream.
        let out = String::from_utf8(run(&[text_delta(0, "x AKIA").as_bytes()])).unwrap();
        assert_eq!(texts(&out).concat(), "x AKIA");
    }

    #[test]
    fn error_events_echoing_a_key_are_masked() {
        let s = format!(
            "event: error\ndata: {{\"type\":\"error\",\"error\":{{\"type\":\"api_error\",\"message\":\"bad key {AWS}\"}}}}\n\n"
        );
        let out = String::from_utf8(run(&[s.as_bytes()])).unwrap();
        assert!(!out.contains(AWS));
        assert!(out.contains("[REDACTED:aws_access_key_id]"));
    }

    #[test]
    fn tool_input_json_is_masked_on_unescaped_text() {
        let frag = |f: &str| {
            let v = serde_json::json!({"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":f}});
            format!("event: content_block_delta\ndata: {v}\n\n")
        };
        let s = format!(
            "event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"bash\",\"input\":{{}}}}}}\n\n{}{}{}event: content_block_stop\ndata: {{\"type\":\"content_block_stop\",\"index\":1}}\n\n",
            frag(r#"{"command": "echo \"AKIAZ2"#),
            frag(r#"MQ4JXLS7RT5WHB\"\n"#),
            frag(r#"", "n": 1}"#),
        );
        let out = String::from_utf8(run(&[s.as_bytes()])).unwrap();
        assert!(!out.contains("LS7RT5WHB"), "{out}");
        let mut p = Parser::new(1 << 20);
        let mut blocks = Vec::new();
        p.feed(out.as_bytes(), &mut blocks).unwrap();
        let json: String = blocks
            .iter()
            .filter_map(|b| b.data.as_ref())
            .filter_map(|d| serde_json::from_slice::<Value>(d).ok())
            .filter_map(|v| {
                v.pointer("/delta/partial_json")
                    .and_then(Value::as_str)
                    .map(String::from)
            })
            .collect();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["command"], "echo \"[REDACTED:aws_access_key_id]\"\n");
        assert_eq!(v["n"], 1);
    }

    #[test]
    fn api_layout_deltas_take_the_parser_free_path_and_round_trip() {
        let data = br#"{"type":"content_block_delta","index":12,"delta":{"type":"text_delta","text":"a\"b\n\u00e9"}}"#;
        let (index, kind, text) = canonical_delta(data).unwrap();
        assert_eq!((index, kind, &*text), (12, Kind::Text, "a\"b\n\u{e9}"));
        let data = br#"{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":"{\"k\": "}}"#;
        let (_, kind, text) = canonical_delta(data).unwrap();
        assert_eq!((kind, &*text), (Kind::Json, "{\"k\": "));
        // Anything else goes to the JSON paths: other layouts, extra fields, bad JSON.
        for bad in [
            &br#"{"type":"content_block_delta","index":01,"delta":{"type":"text_delta","text":"x"}}"#[..],
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x","y":1}}"#,
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}} "#,
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x\"}}"#,
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"a	b"}}"#,
            br#"{"type":"content_block_delta","index":0,"delta":{"type":"signature_delta","signature":"x"}}"#,
            br#"{"index":0,"type":"content_block_delta","delta":{"type":"text_delta","text":"x"}}"#,
        ] {
            assert!(canonical_delta(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
        let mut out = Vec::new();
        write_delta(
            Some("content_block_delta"),
            None,
            None,
            907,
            Kind::Thinking,
            "q\"\n",
            &mut out,
        );
        assert_eq!(
            out,
            b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":907,\"delta\":{\"type\":\"thinking_delta\",\"thinking\":\"q\\\"\\n\"}}\n\n"
        );
    }

    #[test]
    fn oversized_event_is_an_error() {
        let mut rw = SseRewriter::new(rules(), 64);
        let mut out = Vec::new();
        let big = format!("data: {}", "x".repeat(100));
        assert!(rw.feed(big.as_bytes(), &mut out).is_err());
    }

    #[test]
    fn json_bodies_mask_every_string() {
        let body = format!(
            r#"{{"type":"message","content":[{{"type":"text","text":"k={AWS}"}},{{"type":"tool_use","id":"x","name":"n","input":{{"env":{{"K":"{AWS}"}},"list":["{AWS}"]}}}}]}}"#
        );
        let mut st = Stats::default();
        let out = mask_body(&rules(), body.as_bytes(), &mut st).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains(AWS));
        assert_eq!(st.total(), 3);
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["content"][0]["text"], "k=[REDACTED:aws_access_key_id]");
        assert!(mask_body(&rules(), br#"{"type":"message"}"#, &mut st).is_none());
        // Not JSON: masked as raw text.
        let out = mask_body(&rules(), format!("oops {AWS}").as_bytes(), &mut st).unwrap();
        assert_eq!(out, b"oops [REDACTED:aws_access_key_id]");
    }
}
