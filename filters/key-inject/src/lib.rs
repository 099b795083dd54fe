//! tollgate key-inject: callers never see the upstream key.
//!
//! A proxy-wasm HTTP filter that, on every request,
//! 1. removes every client credential (`authorization`, `x-api-key`, `proxy-authorization`,
//!    configured headers, `cookie` if configured);
//! 2. checks that the request is headed to an allowed upstream ([`upstream`]);
//! 3. picks a key from the caller's identity in filter state (set by jwt-auth) with an ordered
//!    mapping and an optional default ([`select`]);
//! 4. injects it as `x-api-key` or `authorization: Bearer …`, and adds `anthropic-version` when
//!    the client sent none — or answers with an Anthropic-shaped 401/403/500 ([`decide`]).
//!
//! Key values come from the Envoy process environment (`host_env_keys`), read once at
//! `on_configure` ([`config`]); a missing variable rejects the configuration. Values never
//! appear in logs or metrics. [`filter`] is the thin proxy-wasm glue. See `docs/key-inject.md`.

pub mod config;
pub mod decide;
pub mod filter;
pub mod select;
pub mod upstream;

// The entry point of the standalone filter; off when linked into the one-module bundle.
#[cfg(all(target_arch = "wasm32", feature = "plugin"))]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|_| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::<filter::KeyInjectRoot>::default()
    });
}}
