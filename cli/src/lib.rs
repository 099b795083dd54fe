//! `tollgate`, the command: ships the filters to a mesh and (later) runs the control plane.
//!
//! Subcommands, one module each (the binary in `main.rs` only parses and dispatches):
//!
//! - [`package`]: `tollgate package` — one OCI image per filter and for the bundle, built from the
//!   `.wasm` files of `make wasm` in the Wasm image "compat" format the Istio and Envoy Gateway
//!   image fetchers accept, reproducibly (same `.wasm` → same manifest digest); pushes them with
//!   [`registry`] and writes a [`lock`] file of digests.
//! - [`render`]: `tollgate render --target istio|envoy-gateway` — Istio `WasmPlugin` (+ the
//!   `EnvoyFilter` that lets prompt-guard and secret-mask hold request headers) or Envoy Gateway
//!   `EnvoyExtensionPolicy` manifests, pinned by digest, configured from `policies/`.
//!
//! Shared pieces: [`artifacts`] (what ships and in which order the stages run), [`image`] (the
//! pure OCI image builder: tar, gzip, config, manifest, digests), [`registry`] (registry I/O
//! through the `oci-client` crate), [`layout`] (an OCI image layout directory, for pushing with
//! other tools), [`lock`] (the digests file `package` writes and `render` reads). Library modules return concrete error enums; `anyhow` lives in the binary only.

pub mod artifacts;
pub mod image;
pub mod layout;
pub mod lock;
pub mod package;
pub mod registry;
pub mod render;
