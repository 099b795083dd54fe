//! Shared by the benches: a ~64 KB request shaped like the Claude Agent SDK's and a 100-rule
//! policy (the shipped default plus generated literal and regex rules).

#![allow(dead_code)]

use serde_json::{json, Value};

const PROSE: &str =
    "The agent reads the repository, runs the test-suite and edits files — carefully, \
one change at a time. It explains what it does, keeps the user informed, and never guesses at \
paths it has not seen. Résumé of the task: make the build green again. ";

pub fn words(n: usize) -> String {
    PROSE.repeat(n / PROSE.len() + 1)[..n]
        .trim_end_matches(|c: char| !c.is_ascii())
        .to_string()
}

/// A request like one turn of the Claude Agent SDK, about `target` bytes long.
pub fn agent_request(target: usize) -> Vec<u8> {
    let tools: Vec<Value> = (0..12)
        .map(|i| {
            json!({"name": format!("Tool{i}"), "description": words(1100),
                   "input_schema": {"type":"object","properties":{
                       "command":{"type":"string","description": words(150)},
                       "path":{"type":"string","description":"Absolute path"}},
                       "required":["command"]}})
        })
        .collect();
    let mut body = json!({
        "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": true,
        "system": [
            {"type":"text","text":"You are Claude Code, Anthropic's official CLI for Claude."},
            {"type":"text","text": words(9000), "cache_control":{"type":"ephemeral"}},
            {"type":"text","text": words(3000)}],
        "tools": tools,
        "messages": [
            {"role":"user","content":[{"type":"text","text":"<system-reminder>context</system-reminder>"},
                                      {"type":"text","text":"Fix the failing test in src/parser.rs please 🙏"}]},
            {"role":"assistant","content":[{"type":"text","text":"I'll look at the test first."},
                {"type":"tool_use","id":"toolu_01","name":"Tool3","input":{"command":"cargo test -p parser 2>&1 | tail -50"}}]},
            {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_01","content":[{"type":"text","text":"FILL"}]}]},
            {"role":"assistant","content":[{"type":"text","text": words(800)}]},
            {"role":"user","content":"Looks good, now also update the docs and run rm -rf ./target before rebuilding."}
        ]
    });
    let len = body.to_string().len();
    let fill = words(target.saturating_sub(len));
    body["messages"][2]["content"][0]["content"][0]["text"] = Value::String(fill);
    body.to_string().into_bytes()
}

/// The default policy's rules plus generated ones, 100 in all. With `scoped`, the generated
/// rules read user text and tool output only (like the default policy's); otherwise they read
/// every role (worst case: the whole 64 KB is scanned by every rule).
pub fn hundred_rules(scoped: bool) -> String {
    let raw = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../policies/prompt-guard.json"
    ))
    .unwrap();
    let mut policy: Value = serde_json::from_slice(&raw).unwrap();
    let rules = policy["rules"].as_array_mut().unwrap();
    let mut i = 0;
    while rules.len() < 100 {
        let rule = match i % 3 {
            0 => {
                json!({"id": format!("lit-{i}"), "pattern": format!("forbidden phrase number {i}")})
            }
            1 => {
                json!({"id": format!("re-{i}"), "kind":"regex", "pattern": format!("\\bproject[- ]?codename[- ]?{i}\\b"), "action":"flag"})
            }
            _ => {
                json!({"id": format!("re-{i}"), "kind":"regex", "pattern": format!("(leak|expose) (the )?(build|deploy) key {i}"), "roles":["user","tool_results"]})
            }
        };
        let mut rule = rule;
        if scoped {
            rule["roles"] = json!(["user", "tool_results"]);
        }
        rules.push(rule);
        i += 1;
    }
    policy.to_string()
}

/// `policy` (JSON) with `scan_cache` on: the warm case, where every text of the request was seen
/// before (the benches resend the same request).
pub fn with_scan_cache(policy: &str) -> String {
    let mut v: Value = serde_json::from_str(policy).unwrap();
    v["scan_cache"] = Value::Bool(true);
    v.to_string()
}
