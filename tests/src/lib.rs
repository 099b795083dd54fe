//! tollgate's test support: what the end-to-end tests of every filter, the differential tests
//! and the SDK checks share.
//!
//! - [`paths`]: artifacts (`wasm_path("key_inject")`), the venv's `envoy` and `python`, policies.
//! - [`render`]: the one renderer of `envoy/gateway.yaml.tmpl` ([`GatewayConfig`], [`Filter`],
//!   [`Upstream`]); the `tollgate-render` binary exposes it to scripts.
//! - [`envoy`]: [`Envoy`], a real Envoy child process on ephemeral ports, killed on drop;
//!   [`envoy::validate`] runs `envoy --mode validate`.
//! - [`idp`]: [`Idp`], the dev OIDC identity provider (tokens, key rotation, outages).
//! - [`http`]: a small blocking HTTP/1.1 client with streaming reads and an SSE parser.
//! - [`sdk`]: the official `anthropic` Python SDK run against a gateway with expectations.
//!
//! A filter's end-to-end test, with the mock Claude API (crate `tollgate-mock`):
//!
//! ```no_run
//! use tollgate_tests::{http::Request, Envoy, EnvoyOptions, Filter, GatewayConfig, Upstream};
//! # fn mock_addr() -> std::net::SocketAddr { unimplemented!() }
//! let cfg = GatewayConfig::ephemeral(Upstream::Mock(mock_addr().into()))
//!     .filter(Filter::new("key-inject", r#"{"keys":{"default":"ANTHROPIC_API_KEY"}}"#));
//! let envoy = Envoy::start_with(&cfg, &EnvoyOptions::default().env("ANTHROPIC_API_KEY", "sk-test"))
//!     .expect("envoy starts");
//! let resp = envoy
//!     .send(&Request::post("/v1/messages").json(&tollgate_tests::http::messages_body("hi", false)))
//!     .unwrap();
//! assert_eq!(resp.status, 200);
//! ```

pub mod envoy;
pub mod http;
pub mod idp;
pub mod paths;
pub mod process;
pub mod render;
pub mod sdk;

pub use envoy::{Envoy, EnvoyOptions};
pub use idp::Idp;
pub use paths::{envoy_bin, python_bin, wasm_dir, wasm_path, workspace_root};
pub use render::{shipped_chain, Endpoint, Filter, GatewayConfig, Upstream};

// Tests share guards across threads (concurrent requests against one Envoy).
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Envoy>();
    send_sync::<Idp>();
    send_sync::<process::ChildGuard>();
};
