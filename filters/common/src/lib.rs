//! `tollgate-common`: the pieces every tollgate filter shares.
//!
//! - [`error`]: local replies shaped like the Claude API's errors, so the official SDKs raise
//!   their typed exceptions (`AuthenticationError`, `PermissionDeniedError`, …).
//! - [`identity`]: the filter-state keys jwt-auth writes and the other filters read.
//! - [`config`]: reading and parsing plugin configuration, with errors that name the failing
//!   field.
//! - [`reply`]: the thin proxy-wasm helper that sends an error as a local reply.

pub mod config;
pub mod error;
pub mod identity;
pub mod reply;
