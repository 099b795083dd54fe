//! `tollgate-harness`: a wasmtime host for the proxy-wasm ABI 0.2.1 that runs the very same
//! `wasm32-wasip1` filters Envoy loads, outside Envoy, with Envoy's semantics.
//!
//! A test describes what the client sends and what the upstream answers, runs it through a
//! chain of filters, and reads back outcomes: what the upstream received, what the client
//! received (status, headers, body, each chunk), callouts, metrics, logs and filter state.
//!
//! ```no_run
//! use tollgate_harness::{FilterSpec, Gateway, Host, Request, Upstream};
//!
//! let host = Host::new()?;
//! let mut gateway = Gateway::builder(&host)
//!     .filter(FilterSpec::new("target/wasm32-wasip1/release/tollgate_key_inject.wasm")
//!         .config(r#"{"keys":{"default":{"env":"ANTHROPIC_API_KEY"}}}"#)
//!         .env("ANTHROPIC_API_KEY", "sk-test"))
//!     .build()?;
//! let outcome = gateway.run(
//!     Request::post("/v1/messages").header("x-api-key", "client-key").body("{}"),
//!     Upstream::new(200).body("ok"),
//! );
//! assert_eq!(outcome.client.status, 200);
//! # Ok::<(), tollgate_harness::HarnessError>(())
//! ```
//!
//! Modules:
//! - [`host`]: the engine and the compiled-module cache (one per test process).
//! - `abi`: every `env.proxy_*` import, one function each; WASI preview 1 via `wasmtime-wasi`.
//! - [`gateway`]: the chain and Envoy's filter-manager scheduling (pause, buffering, local
//!   replies, callouts, ticks, failures).
//! - [`scenario`]: the plain-data request, upstream answer and outcome.
//! - [`headers`]: header maps with Envoy's semantics and the ABI's wire format.

mod abi;
pub mod error;
pub mod gateway;
pub mod headers;
pub mod host;
pub mod scenario;
mod vm;
mod world;

pub use error::HarnessError;
pub use gateway::{FilterSpec, Gateway, GatewayBuilder, StreamHandle};
pub use headers::HeaderMap;
pub use host::{artifact, wasm_dir, Host};
pub use scenario::{
    Callout, CalloutReply, ClientResponse, LogEntry, LogLevel, Outcome, Request, Upstream,
    UpstreamRequest,
};
