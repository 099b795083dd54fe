//! What the benchmark sends and what the mock answers: the 4 KB Messages request, the 50 KB
//! request shaped like the Claude Agent SDK's (system text blocks, a dozen tools, two messages
//! of block arrays, `?beta=true`, the SDK's headers), the scripted SSE replies of 2 KB and 64 KB
//! that carry secrets, and the 100-rule prompt-guard policy. Everything is deterministic, so two
//! runs send the same bytes.

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use tollgate_mock::api::{FAKE_ANTHROPIC_KEY, FAKE_AWS_KEY_ID, FAKE_AWS_SECRET};
use tollgate_mock::{sse_event_list, sse_events, Reply, Script, ScriptBody, SSE_CONTENT_TYPE};

/// Benign technical prose (nothing a deny-list rule should match), cycled to any length.
const SENTENCES: [&str; 12] = [
    "The service reads its configuration at start-up and validates every field before it accepts traffic.",
    "Each request is parsed once, checked against the policy, and forwarded without copying the body twice.",
    "When the cache is warm the lookup costs a hash and a comparison, which is cheap compared with the network.",
    "Please summarise the module below and point out functions that could be split into smaller pieces.",
    "The integration tests start the server on an ephemeral port so that parallel runs never collide.",
    "A histogram of response times shows the median, the tail and the outliers caused by garbage collection.",
    "We keep the public interface small and document the invariants that callers are expected to uphold.",
    "The migration adds a nullable column first, backfills it in batches, and only then adds the constraint.",
    "Logging is structured as JSON lines so that the collector can index the request id and the status.",
    "Refactor the retry loop so that it backs off exponentially and gives up after a bounded number of attempts.",
    "The benchmark compares two builds on the same machine, interleaving runs to cancel out background noise.",
    "Explain why the borrow checker rejects this closure and suggest a version that compiles without cloning.",
];

/// Deterministic prose of exactly `len` bytes (ASCII).
pub fn prose(len: usize, offset: usize) -> String {
    let mut out = String::with_capacity(len + 128);
    let mut i = offset;
    while out.len() < len {
        out.push_str(SENTENCES[i % SENTENCES.len()]);
        out.push(' ');
        i += 1;
    }
    out.truncate(len);
    out
}

/// Grows the text at `pointer` until the serialized body is `target` bytes.
fn fill_to(mut body: Value, pointer: &str, target: usize) -> Result<String> {
    let base = body.to_string().len();
    if base >= target {
        bail!("the request skeleton ({base} bytes) is larger than the target {target}");
    }
    let slot = body
        .pointer_mut(pointer)
        .with_context(|| format!("no {pointer} in the request skeleton"))?;
    let current = slot.as_str().unwrap_or_default().len();
    *slot = Value::String(prose(current + target - base, 3));
    let out = body.to_string();
    if out.len() != target {
        bail!("filled body is {} bytes, not {target}", out.len());
    }
    Ok(out)
}

/// The small request: one user message, 4096 bytes of JSON in all.
pub fn body_4k(stream: bool) -> Result<String> {
    let body = json!({
        "model": "claude-sonnet-4-5",
        "max_tokens": 1024,
        "stream": stream,
        "messages": [{"role": "user", "content": ""}],
    });
    fill_to(body, "/messages/0/content", 4096)
}

fn tool(name: &str, description_len: usize, i: usize) -> Value {
    json!({
        "name": name,
        "description": prose(description_len, i),
        "input_schema": {
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "The absolute path of the file or directory to operate on."},
                "pattern": {"type": "string", "description": "A glob or regular expression; see the tool description for the syntax."},
                "limit": {"type": "integer", "description": "The maximum number of lines or entries to return."},
                "options": {
                    "type": "object",
                    "properties": {
                        "recursive": {"type": "boolean", "description": "Descend into sub-directories."},
                        "case_sensitive": {"type": "boolean", "description": "Match letter case exactly."}
                    },
                    "additionalProperties": false
                }
            },
            "required": ["path"],
            "additionalProperties": false,
            "$schema": "http://json-schema.org/draft-07/schema#"
        }
    })
}

/// The agent-shaped request (what the Claude Agent SDK's bundled CLI sends per turn), 51,200
/// bytes: `system` as text blocks, 12 tool definitions, a user message of text blocks and an
/// assistant message of text and tool_use blocks.
pub fn body_agent_50k() -> Result<String> {
    let names = [
        "Task",
        "Bash",
        "Glob",
        "Grep",
        "LS",
        "Read",
        "Edit",
        "MultiEdit",
        "Write",
        "WebFetch",
        "TodoWrite",
        "WebSearch",
    ];
    let tools: Vec<Value> = names
        .iter()
        .enumerate()
        .map(|(i, n)| tool(n, 1800, i))
        .collect();
    let body = json!({
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 32000,
        "stream": false,
        "system": [
            {"type": "text", "text": "You are Claude Code, Anthropic's official CLI for Claude.",
             "cache_control": {"type": "ephemeral"}},
            {"type": "text", "text": prose(6000, 5), "cache_control": {"type": "ephemeral"}}
        ],
        "tools": tools,
        "metadata": {"user_id": "user_bench_account__session_4f0c2b1e-8a47-4d2e-9a51-3c6f7d2e1b90"},
        "messages": [
            {"role": "user", "content": [
                {"type": "text", "text": format!("<system-reminder>\n{}\n</system-reminder>", prose(2500, 7))},
                {"type": "text", "text": ""}
            ]},
            {"role": "assistant", "content": [
                {"type": "text", "text": "I'll start by listing the files in the repository."},
                {"type": "tool_use", "id": "toolu_01BenchToolUseId0000000000", "name": "LS",
                 "input": {"path": "/work/project/src", "options": {"recursive": true}}}
            ]}
        ]
    });
    fill_to(body, "/messages/0/content/1/text", 51_200)
}

/// Headers both request shapes carry (the JWT is added by the caller).
pub fn common_headers() -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "application/json".into()),
        ("anthropic-version".into(), "2023-06-01".into()),
    ]
}

/// The extra headers the Claude Agent SDK's CLI sends.
pub fn agent_headers() -> Vec<(String, String)> {
    [
        ("anthropic-beta", "claude-code-20250219,interleaved-thinking-2025-05-14,fine-grained-tool-streaming-2025-05-14"),
        ("anthropic-dangerous-direct-browser-access", "true"),
        ("user-agent", "claude-cli/2.0.14 (external, sdk-ts)"),
        ("x-app", "cli"),
        ("x-stainless-arch", "x64"),
        ("x-stainless-lang", "js"),
        ("x-stainless-os", "Linux"),
        ("x-stainless-package-version", "0.60.0"),
        ("x-stainless-retry-count", "0"),
        ("x-stainless-runtime", "node"),
        ("x-stainless-runtime-version", "v22.19.0"),
        ("x-stainless-timeout", "600"),
        ("x-claude-code-session-id", "4f0c2b1e-8a47-4d2e-9a51-3c6f7d2e1b90"),
        ("accept-encoding", "gzip, deflate, br, zstd"),
        ("accept", "application/json"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// A GitHub token shape (`ghp_` + 36 alphanumerics, high entropy).
pub const FAKE_GITHUB_TOKEN: &str = "ghp_R8vQ2mZk7LwX4tNc9HpJ3sYf6BdE1gUa5KoW";

/// The secrets the streamed replies carry that secret-mask's default rules cover (they must
/// come back masked through the chain). The replies also carry an AWS secret access key, which
/// has no prefix to recognise and no built-in rule (docs/secret-mask.md): it passes, as documented.
pub fn secrets() -> [&'static str; 3] {
    [FAKE_ANTHROPIC_KEY, FAKE_AWS_KEY_ID, FAKE_GITHUB_TOKEN]
}

/// Answer text of exactly `len` bytes: paragraphs that each start with a secret-bearing line
/// (an Anthropic key, an AWS key pair, a GitHub token in a URL) followed by ~560 bytes of prose.
fn secret_text(len: usize) -> String {
    let mut out = String::new();
    let mut i = 0;
    while out.len() < len {
        out.push_str(&match i % 3 {
            0 => format!("export ANTHROPIC_API_KEY={FAKE_ANTHROPIC_KEY}\n\n"),
            1 => format!(
                "aws_access_key_id = {FAKE_AWS_KEY_ID}\naws_secret_access_key = {FAKE_AWS_SECRET}\n\n"
            ),
            _ => format!("git remote set-url origin https://{FAKE_GITHUB_TOKEN}@github.com/acme/app.git\n\n"),
        });
        out.push_str(&prose(560, i));
        out.push_str("\n\n");
        i += 1;
    }
    out.truncate(len);
    out
}

/// Text delta size of the scripted streams (the API sends a few tokens per delta).
pub const DELTA_SIZE: usize = 64;

/// A streamed reply whose SSE body is close to `target` bytes, with secrets split across deltas.
pub fn stream_reply(target: usize) -> Result<(Reply, usize)> {
    let mut len = target / 3;
    for _ in 0..40 {
        let reply = Reply::text(secret_text(len))
            .delta_size(DELTA_SIZE)
            .usage(20, (len / 4) as u64);
        let size = sse_events(&reply).len();
        let err = size as f64 / target as f64;
        if (0.97..=1.03).contains(&err) {
            return Ok((reply, size));
        }
        len = ((len as f64) / err).max(16.0) as usize;
    }
    bail!("could not size a stream reply to {target} bytes")
}

/// The mock script for a streamed reply: the reply's SSE events rendered once (the same bytes the
/// mock renders for a `stream` script), sent as a raw `text/event-stream` body cut at event
/// boundaries, so the mock does not re-serialize hundreds of events per request.
/// With `min_chunk` > 0, consecutive events are grouped into network chunks of at least that
/// many bytes (still cut between events), as TCP coalesces events sent back to back.
pub fn raw_stream_script(reply: &Reply, min_chunk: usize) -> Result<Script> {
    let events = sse_event_list(reply);
    let mut cuts = Vec::with_capacity(events.len());
    let mut offset = 0;
    let mut last_cut = 0;
    for e in events.iter().take(events.len().saturating_sub(1)) {
        offset += e.len();
        if offset - last_cut >= min_chunk {
            cuts.push(offset);
            last_cut = offset;
        }
    }
    let body = String::from_utf8(events.concat()).context("SSE events are UTF-8")?;
    Ok(Script::new(ScriptBody::Raw {
        body,
        content_type: SSE_CONTENT_TYPE.to_string(),
    })
    .boundaries(cuts))
}

/// The shipped prompt-guard policy grown to `total` rules: the shipped rules first, then a
/// deterministic mix of literal phrases (all roles) and regexes (user and tool results) of the
/// kind an organisation adds — internal code names, hostnames, ticket and account patterns.
/// None of them matches the benchmark's prompts, so every request passes all rules.
pub fn prompt_guard_policy(shipped: &str, total: usize) -> Result<String> {
    let mut policy: Value = serde_json::from_str(shipped).context("policies/prompt-guard.json")?;
    let rules = policy
        .get_mut("rules")
        .and_then(Value::as_array_mut)
        .context("policies/prompt-guard.json has no rules array")?;
    let words = [
        "nightingale",
        "bluebird",
        "kestrel",
        "osprey",
        "heron",
        "falcon",
        "merlin",
        "peregrine",
        "condor",
        "albatross",
    ];
    let mut i = 0;
    while rules.len() < total {
        let w = words[i % words.len()];
        let rule = if i % 2 == 0 {
            json!({
                "id": format!("bench-codename-{i:03}"),
                "description": "benchmark: an internal code name (literal, every role)",
                "pattern": format!("project {w} phase {i} rollout"),
            })
        } else {
            json!({
                "id": format!("bench-host-{i:03}"),
                "description": "benchmark: an internal hostname or account pattern (regex)",
                "kind": "regex",
                "pattern": format!("\\b(db|cache|queue|vault)-{w}-{i}\\.(prod|corp)\\.internal\\b|\\bacct-{i}-[0-9]{{8}}\\b"),
                "roles": ["user", "tool_results"],
            })
        };
        rules.push(rule);
        i += 1;
    }
    Ok(policy.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_their_sizes_and_shapes() {
        let small: Value = serde_json::from_str(&body_4k(false).unwrap()).unwrap();
        assert_eq!(small.to_string().len(), 4096);
        let agent = body_agent_50k().unwrap();
        assert_eq!(agent.len(), 51_200);
        let v: Value = serde_json::from_str(&agent).unwrap();
        assert_eq!(v["tools"].as_array().unwrap().len(), 12);
        assert_eq!(v["system"].as_array().unwrap().len(), 2);
        assert_eq!(v["messages"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn stream_replies_carry_secrets_and_their_size() {
        for target in [2048, 65_536] {
            let (reply, size) = stream_reply(target).unwrap();
            assert!(
                size.abs_diff(target) * 100 <= target * 3,
                "{size} vs {target}"
            );
            let text = reply.full_text();
            assert!(text.contains(FAKE_ANTHROPIC_KEY));
        }
    }

    #[test]
    fn bench_policy_has_100_rules() {
        let shipped = r#"{"rules":[{"id":"a","pattern":"x"}]}"#;
        let v: Value = serde_json::from_str(&prompt_guard_policy(shipped, 100).unwrap()).unwrap();
        assert_eq!(v["rules"].as_array().unwrap().len(), 100);
    }
}
