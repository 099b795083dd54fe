//! tollgate secret-mask: masks secrets in Claude API responses — streamed (SSE) and JSON —
//! with zero leaks across chunk and event boundaries and without buffering whole streams.
//!
//! - [`rules`]: what a secret looks like (default credential shapes, literals, custom regexes),
//!   compiled to anchored DFAs with a bounded window and look-alike checks.
//! - [`matcher`]: the streaming matcher that holds back only what could still become a match.
//! - [`sse`]: an incremental Server-Sent Events parser (any line ending, bounded events).
//! - [`jsonstr`]: an incremental tokenizer for the JSON fragments of `input_json_delta`.
//! - [`rewrite`]: the SSE stream rewriter and the JSON body masker.
//! - [`config`]: the policy (plugin configuration) and its compiled form.
//! - `filter`: the proxy-wasm glue (root and HTTP contexts).

pub mod config;
pub mod jsonstr;
pub mod matcher;
pub mod rewrite;
pub mod rules;
pub mod sse;

pub mod filter;

/// Shared test fixtures: the default rule set, compiled once per test thread.
#[cfg(test)]
pub(crate) mod testutil {
    use std::rc::Rc;

    use crate::matcher::{Replacement, RuleSet};
    use crate::rules::{default_rules, Rule};

    thread_local! {
        static DEFAULTS: Rc<RuleSet> = Rc::new(RuleSet::new(
            default_rules().iter().map(|s| Rule::compile(s).unwrap()).collect(),
            Replacement::default(),
        ));
    }

    pub fn defaults() -> Rc<RuleSet> {
        DEFAULTS.with(Rc::clone)
    }
}
