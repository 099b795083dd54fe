//! `tollgate-common`: the pieces every tollgate filter shares.
//!
//! - [`error`]: local replies shaped like the Claude API's errors, so the official SDKs raise
//!   their typed exceptions (`AuthenticationError`, `PermissionDeniedError`, …).
//! - [`identity`]: the filter-state keys jwt-auth writes and the other filters read.
//! - [`config`]: reading and parsing plugin configuration, with errors that name the failing
//!   field.
//! - [`reply`]: the thin proxy-wasm helper that sends an error as a local reply.
//! - [`hold`]: how a policy tells the bundle that its `Pause` holds the request for the body.
//! - [`host`]: the one byte-safe seam to the proxy-wasm host (headers, trailers, bodies,
//!   properties, local replies, resumes): values as bytes, every status a `Result`, no panic;
//!   [`wire`]: the ABI's map and path formats it decodes, as pure functions.

pub mod config;
pub mod error;
pub mod hold;
pub mod host;
pub mod identity;
pub mod reply;
pub mod wire;
