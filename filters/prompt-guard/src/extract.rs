//! Request extraction: parse a request body strictly and turn it into the text the model would
//! see, as [`Segment`]s tagged with a role and a message index, plus the fields the model/limit
//! policy needs (`model`, `max_tokens`, `stream`, the number of messages).
//!
//! Parsing is strict on purpose (a request we read differently from the upstream is a smuggling
//! channel): invalid JSON, invalid UTF-8, lone surrogate escapes, nesting deeper than serde_json's
//! recursion limit (128) and **duplicate object keys at any depth** are errors (→ 400).
//!
//! What is extracted:
//! - Messages API (`/v1/messages`, `/v1/messages/count_tokens`): `system` (string or blocks);
//!   each message's `content` (string or blocks): `text`, `thinking`, `tool_use`-like blocks
//!   (name and every string leaf of `input`), `tool_result`-like blocks (`content` string or
//!   blocks, recursively), `document` (`title`, `context`, text source `data`, content source
//!   blocks), `search_result`; `image`, `redacted_thinking` and base64/URL sources are skipped;
//!   blocks of unknown type contribute every string leaf. `tools`: names, descriptions and every
//!   string leaf of `input_schema`.
//! - OpenAI chat completions (`/v1/chat/completions`): each message's `content` (string or
//!   parts: `text`, `refusal`; unknown parts contribute every string leaf), `tool_calls` /
//!   `function_call` (name, and the string leaves of `arguments` parsed as JSON, or the raw
//!   string), `tools` / `functions` (name, description, string leaves of `parameters`).
//!   `system`/`developer` messages have the system role, `tool`/`function` messages the
//!   tool-results role; unknown roles are checked as user text.
//!
//! Tool output (`tool_result`-like blocks) gets its own segment with the role
//! [`Role::ToolResults`] and the index of the message that carries it, so policies can treat
//! what the user typed and what tools returned differently.
//!
//! Within one message, adjacent text blocks are joined without a separator (the model reads them
//! as one text, so a phrase split across blocks still matches); other pieces are separated by a
//! newline.

use std::fmt;

use std::borrow::Cow;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Who a piece of text belongs to, as rules scope it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    User,
    Assistant,
    System,
    /// Tool definitions.
    Tools,
    /// Tool output sent back to the model (`tool_result` blocks, chat `tool` messages).
    ToolResults,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tools => "tools",
            Role::ToolResults => "tool_results",
        }
    }
}

/// The request shapes the guard understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST /v1/messages`.
    Messages,
    /// `POST /v1/messages/count_tokens` (Messages shape, no `max_tokens`).
    CountTokens,
    /// `POST /v1/chat/completions` (OpenAI shape).
    ChatCompletions,
}

/// One piece of model-visible text. `message` is the index in `messages` (None for the system
/// prompt of the Messages API and for tool definitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    pub role: Role,
    pub message: Option<usize>,
    pub text: String,
}

/// What the policy needs from a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    pub model: Option<String>,
    /// Token-limit fields present at the top level, with their values (`max_tokens`, and for
    /// chat completions also `max_completion_tokens`).
    pub max_tokens: Vec<(&'static str, u64)>,
    pub stream: bool,
    pub message_count: usize,
    pub segments: Vec<Segment>,
}

/// Why a body could not be read. Messages never quote the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtractError {
    Empty,
    Json(String),
    NotAnObject,
    Field {
        field: String,
        problem: &'static str,
    },
}

impl fmt::Display for ExtractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtractError::Empty => write!(f, "request body is empty"),
            ExtractError::Json(e) => write!(f, "request body is not valid JSON: {e}"),
            ExtractError::NotAnObject => write!(f, "request body must be a JSON object"),
            ExtractError::Field { field, problem } => write!(f, "{field}: {problem}"),
        }
    }
}

impl std::error::Error for ExtractError {}

/// A JSON value parsed strictly (duplicate keys refused at every depth). Strings borrow from
/// the body when they hold no escape sequence (most text), so parsing copies no prompt text.
#[derive(Debug)]
enum Json<'a> {
    Null,
    Bool(bool),
    /// A non-negative integer that fits `u64`.
    Uint(u64),
    /// Any other number (negative, fractional, huge).
    Number,
    Str(Cow<'a, str>),
    Array(Vec<Json<'a>>),
    Object(Object<'a>),
}

/// A JSON object's members in document order (keys are unique: checked while parsing).
#[derive(Debug, Default)]
struct Object<'a>(Vec<(Cow<'a, str>, Json<'a>)>);

impl<'a> Object<'a> {
    fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
    fn values(&self) -> impl Iterator<Item = &Json<'a>> {
        self.0.iter().map(|(_, v)| v)
    }
    /// The first key that occurs twice, if any.
    fn duplicate(&self) -> Option<&str> {
        let keys = &self.0;
        if keys.len() <= 16 {
            return keys.iter().enumerate().find_map(|(i, (k, _))| {
                keys.get(..i)
                    .is_some_and(|before| before.iter().any(|(b, _)| b == k))
                    .then_some(k.as_ref())
            });
        }
        let mut sorted: Vec<&str> = keys.iter().map(|(k, _)| k.as_ref()).collect();
        sorted.sort_unstable();
        sorted.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
    }
}

impl<'a> Json<'a> {
    fn get(&self, key: &str) -> Option<&Json<'a>> {
        match self {
            Json::Object(o) => o.get(key),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Json<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Json::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(Json::Number, Json::Uint))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Json::Uint(v))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Json::Number)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
        Ok(Json::Str(Cow::Owned(v)))
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_none<E>(self) -> Result<Self::Value, E> {
        Ok(Json::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(1024));
        while let Some(v) = seq.next_element()? {
            out.push(v);
        }
        Ok(Json::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut out = Object::default();
        while let Some(Key(key)) = map.next_key()? {
            let v = map.next_value()?;
            out.0.push((key, v));
        }
        if let Some(key) = out.duplicate() {
            return Err(de::Error::custom(format_args!(
                "duplicate object key {:?}",
                truncate(key, 64)
            )));
        }
        Ok(Json::Object(out))
    }
}

/// An object key, borrowed from the body when it holds no escape sequence.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Parses `body` strictly (see the module docs) into a JSON object.
fn parse_strict(body: &[u8]) -> Result<Object<'_>, ExtractError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ExtractError::Empty);
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value = Json::deserialize(&mut de).map_err(|e| ExtractError::Json(e.to_string()))?;
    de.end().map_err(|e| ExtractError::Json(e.to_string()))?;
    match value {
        Json::Object(map) => Ok(map),
        _ => Err(ExtractError::NotAnObject),
    }
}

/// Parses `body` and extracts what the guard checks.
pub fn extract(api: Api, body: &[u8]) -> Result<Extracted, ExtractError> {
    let top = parse_strict(body)?;
    let model = match top.get("model") {
        None => None,
        Some(Json::Str(s)) => Some(s.to_string()),
        Some(_) => return Err(field("model", "must be a string")),
    };
    let stream = match top.get("stream") {
        None | Some(Json::Null) => false,
        Some(Json::Bool(b)) => *b,
        Some(_) => return Err(field("stream", "must be a boolean")),
    };
    let token_fields: &[&'static str] = match api {
        Api::Messages => &["max_tokens"],
        Api::CountTokens => &[],
        Api::ChatCompletions => &["max_tokens", "max_completion_tokens"],
    };
    let mut max_tokens = Vec::new();
    for &name in token_fields {
        match top.get(name) {
            None | Some(Json::Null) => {}
            Some(Json::Uint(n)) => max_tokens.push((name, *n)),
            Some(_) => return Err(field(name, "must be a non-negative integer")),
        }
    }
    let messages: &[Json<'_>] = match top.get("messages") {
        None => &[],
        Some(Json::Array(a)) => a,
        Some(_) => return Err(field("messages", "must be an array")),
    };
    let mut segments = Vec::new();
    match api {
        Api::Messages | Api::CountTokens => messages_api(&top, messages, &mut segments)?,
        Api::ChatCompletions => chat_api(&top, messages, &mut segments)?,
    }
    segments.retain(|s| !s.text.is_empty());
    Ok(Extracted {
        model,
        max_tokens,
        stream,
        message_count: messages.len(),
        segments,
    })
}

fn field(name: impl Into<String>, problem: &'static str) -> ExtractError {
    ExtractError::Field {
        field: name.into(),
        problem,
    }
}

/// Text of one message (or of the system prompt / the tools), built piece by piece.
#[derive(Default)]
struct Text {
    out: String,
    last_was_text: bool,
}

impl Text {
    /// A text block: joined to a preceding text block without a separator.
    fn text(&mut self, s: &str) {
        if !self.out.is_empty() && !self.last_was_text {
            self.out.push('\n');
        }
        self.out.push_str(s);
        self.last_was_text = true;
    }
    /// Any other piece: separated by a newline.
    fn other(&mut self, s: &str) {
        if s.is_empty() {
            return;
        }
        if !self.out.is_empty() {
            self.out.push('\n');
        }
        self.out.push_str(s);
        self.last_was_text = false;
    }
    /// Every string leaf of `v` (object keys are not model instructions and are skipped).
    fn leaves(&mut self, v: &Json<'_>) {
        match v {
            Json::Str(s) => self.other(s),
            Json::Array(a) => a.iter().for_each(|v| self.leaves(v)),
            Json::Object(m) => m.values().for_each(|v| self.leaves(v)),
            _ => {}
        }
    }
    fn finish(self, role: Role, message: Option<usize>, out: &mut Vec<Segment>) {
        out.push(Segment {
            role,
            message,
            text: self.out,
        });
    }
}

fn messages_api(
    top: &Object<'_>,
    messages: &[Json<'_>],
    out: &mut Vec<Segment>,
) -> Result<(), ExtractError> {
    if let Some(system) = top.get("system") {
        let mut t = Text::default();
        content(system, &mut t, None, "system")?;
        t.finish(Role::System, None, out);
    }
    for (i, m) in messages.iter().enumerate() {
        let Json::Object(m) = m else {
            return Err(field(format!("messages[{i}]"), "must be an object"));
        };
        let role = match m.get("role") {
            Some(Json::Str(r)) if r == "assistant" => Role::Assistant,
            Some(Json::Str(_)) => Role::User,
            _ => return Err(field(format!("messages[{i}].role"), "must be a string")),
        };
        let (mut t, mut results) = (Text::default(), Text::default());
        if let Some(c) = m.get("content") {
            content(c, &mut t, Some(&mut results), "messages[].content")?;
        }
        t.finish(role, Some(i), out);
        results.finish(Role::ToolResults, Some(i), out);
    }
    if let Some(tools) = top.get("tools") {
        let Json::Array(tools) = tools else {
            return Err(field("tools", "must be an array"));
        };
        let mut t = Text::default();
        for tool in tools {
            match tool {
                Json::Object(o) => {
                    for k in ["name", "description"] {
                        if let Some(Json::Str(s)) = o.get(k) {
                            t.other(s);
                        }
                    }
                    if let Some(schema) = o.get("input_schema") {
                        t.leaves(schema);
                    }
                }
                other => t.leaves(other),
            }
        }
        t.finish(Role::Tools, None, out);
    }
    Ok(())
}

/// A Messages API `content`/`system` value: a string or an array of blocks. Tool results go to
/// `results` when given.
fn content(
    v: &Json<'_>,
    t: &mut Text,
    mut results: Option<&mut Text>,
    what: &'static str,
) -> Result<(), ExtractError> {
    match v {
        Json::Str(s) => t.text(s),
        Json::Array(blocks) => {
            for b in blocks {
                block(b, t, results.as_deref_mut());
            }
        }
        Json::Null => {}
        _ => {
            return Err(field(
                what,
                "must be a string or an array of content blocks",
            ))
        }
    }
    Ok(())
}

fn str_of<'a>(o: &'a Object<'_>, k: &str) -> Option<&'a str> {
    match o.get(k) {
        Some(Json::Str(s)) => Some(s),
        _ => None,
    }
}

/// One content block; unknown shapes contribute every string leaf (fail closed). Tool results
/// are written to `results` when given, else to `t`.
fn block(b: &Json<'_>, t: &mut Text, results: Option<&mut Text>) {
    let o = match b {
        Json::Object(o) => o,
        Json::Str(s) => return t.text(s),
        other => return t.leaves(other),
    };
    match str_of(o, "type").unwrap_or("") {
        "text" => match o.get("text") {
            Some(Json::Str(s)) => t.text(s),
            Some(other) => t.leaves(other),
            None => {}
        },
        "thinking" => {
            if let Some(s) = str_of(o, "thinking") {
                t.other(s);
            }
        }
        "image" | "redacted_thinking" => {}
        "tool_use" | "server_tool_use" | "mcp_tool_use" => {
            if let Some(s) = str_of(o, "name") {
                t.other(s);
            }
            if let Some(input) = o.get("input") {
                t.leaves(input);
            }
        }
        "tool_result"
        | "mcp_tool_result"
        | "web_search_tool_result"
        | "web_fetch_tool_result"
        | "code_execution_tool_result"
        | "bash_code_execution_tool_result" => {
            let r: &mut Text = match results {
                Some(r) => r,
                None => t,
            };
            match o.get("content") {
                Some(Json::Str(s)) => r.other(s),
                Some(Json::Array(blocks)) => {
                    r.last_was_text = false;
                    for b in blocks {
                        block(b, r, None);
                    }
                    r.last_was_text = false;
                }
                Some(other) => r.leaves(other),
                None => {}
            }
        }
        "document" | "search_result" => {
            for k in ["title", "context"] {
                if let Some(s) = str_of(o, k) {
                    t.other(s);
                }
            }
            if let Some(s) = str_of(o, "source") {
                // search_result: `source` is a URL or name.
                t.other(s);
            }
            if let Some(Json::Object(src)) = o.get("source") {
                match str_of(src, "type").unwrap_or("") {
                    "text" => {
                        if let Some(s) = str_of(src, "data") {
                            t.other(s);
                        }
                    }
                    "content" => {
                        if let Some(Json::Array(blocks)) = src.get("content") {
                            t.last_was_text = false;
                            blocks.iter().for_each(|b| block(b, t, None));
                        } else if let Some(c) = src.get("content") {
                            t.leaves(c);
                        }
                    }
                    // base64 (PDF), url, file: not readable here.
                    _ => {}
                }
            }
            if let Some(Json::Array(blocks)) = o.get("content") {
                t.last_was_text = false;
                blocks.iter().for_each(|b| block(b, t, None));
            }
        }
        _ => t.leaves(b),
    }
}

fn chat_api(
    top: &Object<'_>,
    messages: &[Json<'_>],
    out: &mut Vec<Segment>,
) -> Result<(), ExtractError> {
    for (i, m) in messages.iter().enumerate() {
        let Json::Object(m) = m else {
            return Err(field(format!("messages[{i}]"), "must be an object"));
        };
        let role = match m.get("role") {
            Some(Json::Str(r)) => match r.as_ref() {
                "system" | "developer" => Role::System,
                "assistant" => Role::Assistant,
                "tool" | "function" => Role::ToolResults,
                _ => Role::User,
            },
            _ => return Err(field(format!("messages[{i}].role"), "must be a string")),
        };
        let mut t = Text::default();
        match m.get("content") {
            None | Some(Json::Null) => {}
            Some(Json::Str(s)) => t.text(s),
            Some(Json::Array(parts)) => {
                for p in parts {
                    chat_part(p, &mut t);
                }
            }
            Some(_) => {
                return Err(field(
                    format!("messages[{i}].content"),
                    "must be a string or an array of content parts",
                ))
            }
        }
        if let Some(s) = str_of(m, "refusal") {
            t.other(s);
        }
        if let Some(Json::Array(calls)) = m.get("tool_calls") {
            for c in calls {
                match c.get("function") {
                    Some(Json::Object(f)) => function_call(f, &mut t),
                    _ => t.leaves(c),
                }
            }
        }
        if let Some(Json::Object(f)) = m.get("function_call") {
            function_call(f, &mut t);
        }
        t.finish(role, Some(i), out);
    }
    let mut t = Text::default();
    for key in ["tools", "functions"] {
        match top.get(key) {
            None | Some(Json::Null) => {}
            Some(Json::Array(tools)) => {
                for tool in tools {
                    let f = match tool.get("function") {
                        Some(Json::Object(f)) => f,
                        _ => match tool {
                            Json::Object(f) => f,
                            other => {
                                t.leaves(other);
                                continue;
                            }
                        },
                    };
                    for k in ["name", "description"] {
                        if let Some(s) = str_of(f, k) {
                            t.other(s);
                        }
                    }
                    if let Some(p) = f.get("parameters") {
                        t.leaves(p);
                    }
                }
            }
            Some(_) => return Err(field(key, "must be an array")),
        }
    }
    t.finish(Role::Tools, None, out);
    Ok(())
}

fn chat_part(p: &Json<'_>, t: &mut Text) {
    let Json::Object(o) = p else {
        return t.leaves(p);
    };
    match str_of(o, "type").unwrap_or("") {
        "text" => {
            if let Some(s) = str_of(o, "text") {
                t.text(s);
            }
        }
        "refusal" => {
            if let Some(s) = str_of(o, "refusal") {
                t.other(s);
            }
        }
        "image_url" | "input_audio" | "file" => {}
        _ => t.leaves(p),
    }
}

/// A chat `function` object: its name, and the string leaves of `arguments` (a JSON document in
/// a string; when it does not parse, the raw string is checked).
fn function_call(f: &Object<'_>, t: &mut Text) {
    if let Some(s) = str_of(f, "name") {
        t.other(s);
    }
    match f.get("arguments") {
        Some(Json::Str(args)) => match parse_strict(args.as_bytes()) {
            Ok(map) => map.values().for_each(|v| t.leaves(v)),
            Err(_) => t.other(args),
        },
        Some(other) => t.leaves(other),
        None => {}
    }
}

/// The top-level members of a JSON object, values unparsed (used to rewrite one field in place).
struct TopLevel<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for TopLevel<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TopLevel<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(k) = map.next_key::<String>()? {
                    out.push((k, map.next_value::<&RawValue>()?));
                }
                Ok(TopLevel(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// Sets the top-level numeric field `name` to `value`, replacing only the bytes of its old value
/// (everything else, key order and formatting included, is preserved). A missing field is
/// inserted as the first member.
pub fn set_top_level_number(body: &[u8], name: &str, value: u64) -> Result<Vec<u8>, ExtractError> {
    let top: TopLevel<'_> =
        serde_json::from_slice(body).map_err(|e| ExtractError::Json(e.to_string()))?;
    let new = value.to_string();
    let base = body.as_ptr() as usize;
    if let Some((_, raw)) = top.0.iter().find(|(k, _)| k == name) {
        let start = (raw.get().as_ptr() as usize).wrapping_sub(base);
        let end = start.saturating_add(raw.get().len());
        if end > body.len() || start > end {
            return Err(ExtractError::Json("cannot locate field".into()));
        }
        let mut out = Vec::with_capacity(body.len() + new.len());
        out.extend_from_slice(&body[..start]);
        out.extend_from_slice(new.as_bytes());
        out.extend_from_slice(&body[end..]);
        return Ok(out);
    }
    let open = body
        .iter()
        .position(|&b| b == b'{')
        .ok_or(ExtractError::NotAnObject)?;
    let member = serde_json::to_string(name).map_err(|e| ExtractError::Json(e.to_string()))?;
    let sep = if top.0.is_empty() { "" } else { "," };
    let mut out = Vec::with_capacity(body.len() + member.len() + new.len() + 2);
    out.extend_from_slice(&body[..=open]);
    out.extend_from_slice(format!("{member}:{new}{sep}").as_bytes());
    out.extend_from_slice(&body[open + 1..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn ex(api: Api, v: Value) -> Extracted {
        extract(api, v.to_string().as_bytes()).unwrap()
    }

    fn texts(e: &Extracted) -> Vec<(Role, Option<usize>, &str)> {
        e.segments
            .iter()
            .map(|s| (s.role, s.message, s.text.as_str()))
            .collect()
    }

    #[test]
    fn messages_string_content_and_fields() {
        let e = ex(
            Api::Messages,
            json!({"model":"claude-x","max_tokens":100,"stream":true,"system":"be nice",
                   "messages":[{"role":"user","content":"hello"}]}),
        );
        assert_eq!(e.model.as_deref(), Some("claude-x"));
        assert_eq!(e.max_tokens, vec![("max_tokens", 100)]);
        assert!(e.stream);
        assert_eq!(e.message_count, 1);
        assert_eq!(
            texts(&e),
            vec![
                (Role::System, None, "be nice"),
                (Role::User, Some(0), "hello")
            ]
        );
    }

    #[test]
    fn messages_blocks_of_every_kind() {
        let e = ex(
            Api::Messages,
            json!({"system":[{"type":"text","text":"sys one"},{"type":"text","text":" sys two","cache_control":{"type":"ephemeral"}}],
                   "messages":[
                     {"role":"user","content":[{"type":"text","text":"ign"},{"type":"text","text":"ore this"},
                        {"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},
                        {"type":"document","title":"doc title","source":{"type":"text","media_type":"text/plain","data":"doc body"}}]},
                     {"role":"assistant","content":[{"type":"thinking","thinking":"hmm","signature":"sig"},
                        {"type":"tool_use","id":"t1","name":"Bash","input":{"command":"ls -la","opts":{"deep":["x1"]}}}]},
                     {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":[{"type":"text","text":"file list"}]},
                        {"type":"tool_result","tool_use_id":"t2","content":"plain result"},
                        {"type":"future_block","payload":{"note":"unknown text"}}]}],
                   "tools":[{"name":"Bash","description":"Run a command","input_schema":{"type":"object","properties":{"command":{"type":"string","description":"the cmd"}}}}]}),
        );
        let t = texts(&e);
        assert_eq!(t[0], (Role::System, None, "sys one sys two"));
        assert_eq!(
            t[1],
            (Role::User, Some(0), "ignore this\ndoc title\ndoc body")
        );
        assert_eq!(t[2], (Role::Assistant, Some(1), "hmm\nBash\nls -la\nx1"));
        assert_eq!(t[3], (Role::User, Some(2), "unknown text\nfuture_block"));
        assert_eq!(
            t[4],
            (Role::ToolResults, Some(2), "file list\nplain result")
        );
        assert_eq!(t[5].0, Role::Tools);
        assert!(t[5].2.contains("Run a command") && t[5].2.contains("the cmd"));
    }

    #[test]
    fn chat_completions_shape() {
        let e = ex(
            Api::ChatCompletions,
            json!({"model":"m","max_completion_tokens":50,"max_tokens":10,"messages":[
                {"role":"developer","content":"dev rules"},
                {"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"http://x"}}]},
                {"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function","function":{"name":"sh","arguments":"{\"cmd\":\"rm -rf /\"}"}}]},
                {"role":"tool","tool_call_id":"c","content":"done"}],
              "tools":[{"type":"function","function":{"name":"sh","description":"shell","parameters":{"type":"object"}}}]}),
        );
        assert_eq!(
            e.max_tokens,
            vec![("max_tokens", 10), ("max_completion_tokens", 50)]
        );
        let t = texts(&e);
        assert_eq!(t[0], (Role::System, Some(0), "dev rules"));
        assert_eq!(t[1], (Role::User, Some(1), "hi"));
        assert_eq!(t[2], (Role::Assistant, Some(2), "sh\nrm -rf /"));
        assert_eq!(t[3], (Role::ToolResults, Some(3), "done"));
        assert_eq!(t[4].0, Role::Tools);
    }

    #[test]
    fn bad_bodies_are_errors() {
        let bad: &[&[u8]] = &[
            b"",
            b"   ",
            b"{",
            b"[1]",
            b"{\"a\":1} x",
            b"{\"a\":\"\\ud800\"}",
            b"{\"a\":\"\xff\"}",
            b"{\"model\":\"a\",\"model\":\"b\"}",
            b"{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\",\"text\":\"b\"}]}]}",
            b"{\"model\":7}",
            b"{\"stream\":\"yes\"}",
            b"{\"max_tokens\":-1}",
            b"{\"max_tokens\":1.5}",
            b"{\"messages\":{}}",
            b"{\"messages\":[1]}",
            b"{\"messages\":[{\"content\":\"x\"}]}",
            b"{\"messages\":[{\"role\":\"user\",\"content\":5}]}",
        ];
        for body in bad {
            assert!(
                extract(Api::Messages, body).is_err(),
                "{:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert_eq!(
            extract(Api::Messages, b"").unwrap_err(),
            ExtractError::Empty
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
        assert!(matches!(
            extract(Api::Messages, deep.as_bytes()),
            Err(ExtractError::Json(_))
        ));
        let ok = format!("{{\"a\":{}1{}}}", "[".repeat(100), "]".repeat(100));
        assert!(extract(Api::Messages, ok.as_bytes()).is_ok());
    }

    #[test]
    fn duplicate_key_error_names_the_key() {
        let err = extract(Api::Messages, br#"{"x":{"k":1,"k":2}}"#).unwrap_err();
        assert!(
            err.to_string().contains("duplicate object key \"k\""),
            "{err}"
        );
    }

    #[test]
    fn rewrite_replaces_only_the_value() {
        let body = br#"{ "model" : "m", "max_tokens" : 100000 , "nested":{"max_tokens":5}}"#;
        let out = set_top_level_number(body, "max_tokens", 1024).unwrap();
        assert_eq!(
            std::str::from_utf8(&out).unwrap(),
            r#"{ "model" : "m", "max_tokens" : 1024 , "nested":{"max_tokens":5}}"#
        );
        let out = set_top_level_number(br#" {"a":1}"#, "max_tokens", 7).unwrap();
        assert_eq!(out, br#" {"max_tokens":7,"a":1}"#);
        let out = set_top_level_number(b"{}", "max_tokens", 7).unwrap();
        assert_eq!(out, br#"{"max_tokens":7}"#);
    }
}
