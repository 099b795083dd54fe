//! tollgate bundle: the four tollgate policies — jwt-auth, prompt-guard, key-inject and
//! secret-mask — in one proxy-wasm module, one VM and one stream context per request.
//!
//! Each policy is the same code as its standalone filter (the filter crates are linked as
//! libraries) and keeps its configuration format, metrics and filter state. What changes is
//! what Envoy does per request: one VM call per stream event instead of four, so the fixed cost
//! of a proxy-wasm filter in Envoy is paid once (figures in `docs/bundle.md`).
//!
//! - [`config`]: the bundle's configuration, one optional section per policy.
//! - `filter`: the proxy-wasm glue that runs the stages in the chain's order.

pub mod config;
pub mod filter;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(filter::BundleRoot::new(context_id))
    });
}}
