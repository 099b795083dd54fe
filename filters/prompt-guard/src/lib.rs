//! tollgate prompt-guard: a proxy-wasm HTTP filter that reads Claude Messages (and OpenAI chat
//! completions) request bodies and enforces a policy before they reach the model: a deny-list
//! (or allow-list) of literal and regex rules matched on normalized text, per-group exemptions and
//! extra rules, allowed models, `max_tokens` caps (reject or clamp), streaming, message count and
//! body size limits.
//!
//! - [`config`]: the policy document as written (serde, field-path errors) and [`config::load`].
//! - [`policy`]: the compiled policy and [`policy::Policy::evaluate`], the decision for one body.
//! - [`extract`]: strict JSON parsing and the model-visible text of a request, as segments.
//! - [`normalize`]: the text normalization applied before matching (what it covers and not).
//! - [`matcher`]: the pattern engine (one `RegexSet` per rule set).
//! - [`http`]: path normalization and header checks.
//! - [`filter`]: the proxy-wasm root and HTTP contexts (the only module that makes hostcalls).
//! - `cli` (native only): `tollgate check` and `tollgate eval`, run by the `tollgate` command.
//!
//! Reference: `docs/prompt-guard.md`; default policy: `policies/prompt-guard.json`.

#[cfg(not(target_arch = "wasm32"))]
pub mod cli;
pub mod config;
pub mod extract;
pub mod filter;
pub mod http;
pub mod matcher;
pub mod normalize;
pub mod policy;

// The entry point of the standalone filter; off when linked into the one-module bundle.
#[cfg(all(target_arch = "wasm32", feature = "plugin"))]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::<filter::Root>::default()
    });
}}
