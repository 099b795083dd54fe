//! The policy document as written (plugin configuration JSON), parsed with
//! `tollgate_common::config::parse_json` so errors name the failing field. Unknown fields are
//! errors everywhere. [`crate::policy::Policy`] is the compiled form; see `docs/prompt-guard.md`
//! for the reference.

use std::collections::BTreeMap;

use serde::Deserialize;
use tollgate_common::config::{parse_json, ConfigError};

use crate::policy::Policy;

/// Allow-list or deny-list operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Requests pass unless a `block` rule matches.
    #[default]
    Deny,
    /// Requests are blocked unless an `allow` rule matches (block and flag rules still apply).
    Allow,
}

/// How a rule's pattern is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A literal phrase, normalized like the request text (see `normalize`).
    #[default]
    Literal,
    /// A regular expression (regex crate syntax) matched against normalized text.
    Regex,
}

/// What a match does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// 403 `permission_error` naming the rule id.
    #[default]
    Block,
    /// The request passes; the rule id is counted and recorded in filter state.
    Flag,
    /// In `mode: "allow"`, a request must match at least one allow rule.
    Allow,
}

/// Which messages a rule reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Messages {
    /// Every message, plus the system prompt and tool definitions when the roles include them.
    #[default]
    All,
    /// Only the last entry of `messages` (clients write the whole history, so this is a
    /// convenience for flags, not a security boundary).
    Latest,
}

/// Role names as written in policies (`tool_results`: tool output sent back to the model).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoleName {
    User,
    Assistant,
    System,
    Tools,
    ToolResults,
}

/// What happens to a request whose `max_tokens` is over the cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OverLimit {
    /// 400 `invalid_request_error`.
    Reject,
    /// The body is rewritten with `max_tokens` set to the cap.
    Clamp,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    pub id: String,
    pub pattern: String,
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub case_sensitive: bool,
    /// Default: every role.
    #[serde(default)]
    pub roles: Option<Vec<RoleName>>,
    #[serde(default)]
    pub messages: Messages,
    #[serde(default)]
    pub action: Action,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimits {
    #[serde(default)]
    pub max_tokens: Option<u64>,
    #[serde(default)]
    pub max_tokens_action: Option<OverLimit>,
    #[serde(default)]
    pub stream: Option<bool>,
    #[serde(default)]
    pub max_messages: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// Ids of top-level rules that do not apply to this group (`"*"`: all of them).
    #[serde(default)]
    pub exempt: Vec<String>,
    /// Rules that apply only to this group.
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Models this group may use (replaces the top-level list for its members).
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub mode: Option<Mode>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    #[serde(default)]
    pub description: Option<String>,
    /// Guarded paths; default `/v1/messages`, `/v1/messages/count_tokens`, `/v1/chat/completions`.
    #[serde(default)]
    pub paths: Option<BTreeMap<String, ApiName>>,
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    #[serde(default)]
    pub mode: Mode,
    #[serde(default)]
    pub rules: Vec<RawRule>,
    /// Allowed models (exact names or `prefix*`); absent: any model.
    #[serde(default)]
    pub models: Option<Vec<String>>,
    #[serde(default)]
    pub limits: RawLimits,
    #[serde(default)]
    pub groups: BTreeMap<String, RawGroup>,
    /// Remember the scan results of long texts seen before (per worker; off by default: a hit
    /// is faster, which tells a caller that the same text went through recently).
    #[serde(default)]
    pub scan_cache: bool,
}

/// The request shape served on a configured path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApiName {
    Messages,
    CountTokens,
    ChatCompletions,
}

/// Parses and compiles a policy document: the one entry point shared by the filter's
/// `on_configure` and `tollgate check`.
pub fn load(raw: &[u8]) -> Result<Policy, ConfigError> {
    let parsed: RawPolicy = parse_json(raw)?;
    Policy::compile(&parsed)
}
