//! tollgate jwt-auth: verifies the caller's JWT (OIDC) before anything else happens, and
//! records the verified identity in filter state for the other tollgate filters.
//!
//! One job per module, like Envoy's `jwt_authn`:
//! - [`config`]: the policy (serde) and its compiled, immutable form.
//! - [`extractor`]: where the token is (`Authorization: Bearer`, `x-api-key`, named headers).
//! - [`json`]: strict JSON (duplicate keys rejected) for every untrusted document.
//! - [`jwks`]: key sets, each key bound to its own algorithm.
//! - [`verifier`]: header pre-checks, key selection, signature and claim validation.
//! - [`cache`]: verified tokens, keyed by a hash, bounded, never past `exp`.
//! - [`matcher`]: which paths need no token, and what each path requires.
//! - [`claims`]: subject, groups and forwarded claims taken from verified claims.
//! - [`remote`]: the remote JWKS state machine (fetch, TTL, refetch, grace), pure.
//! - `filter`: the proxy-wasm glue (root and HTTP contexts).
//!
//! RSA (RS256/384/512, PS256) and ES256 signatures are checked by tollgate's own verifiers, fast
//! in wasm, in their own crate: [`tollgate_verify`].

pub mod cache;
pub mod claims;
pub mod config;
pub mod extractor;
pub mod filter;
pub mod json;
pub mod jwks;
pub mod matcher;
pub mod remote;
pub mod verifier;

// The entry point of the standalone filter; off when linked into the one-module bundle.
#[cfg(all(target_arch = "wasm32", feature = "plugin"))]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(proxy_wasm::types::LogLevel::Info);
    proxy_wasm::set_root_context(|context_id| -> Box<dyn proxy_wasm::traits::RootContext> {
        Box::new(filter::JwtAuthRoot::new(context_id))
    });
}}
