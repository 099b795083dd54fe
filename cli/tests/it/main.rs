//! Integration tests of the `tollgate` command with real parts: a real OCI registry (the CNCF
//! distribution registry, Debian's `docker-registry`) on a free loopback port, `skopeo` as the
//! independent client that pulls the images back, a real Envoy (the venv's) loading the
//! `plugin.wasm` pulled from the registry, and the rendered manifests checked against the
//! OpenAPI schemas of the real CRDs (`tests/schemas/`).
//!
//! `make test` installs `docker-registry` and `skopeo` (target `debs`, as root). Without them
//! the tests that need them print a loud SKIPPED line and pass, except under `CI=true`, where
//! a missing tool fails the test.
//!
//! One module per subject:
//! - [`support`]: the registry guard, skopeo helpers, running the binary, skipping.
//! - [`registry`]: package → push → pull with skopeo → every digest agrees; reproducibility;
//!   basic and bearer auth; the OCI layout pushed by skopeo keeps the digests.
//! - [`manifests`]: rendered manifests against the CRD schemas (a typo fails); the committed
//!   examples under `deploy/` are current.
//! - [`envoy`]: Envoy serves the demo through the filters and the bundle pulled from the
//!   registry; the Wasm configuration of the header-holding Istio `EnvoyFilter` validates and
//!   serves requests.

// Test code: a failed unwrap is a failed test, with its message (the workspace denies these in
// library code; clippy's allow-*-in-tests covers #[test] functions but not their helpers).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod envoy;
mod manifests;
mod registry;
mod schema;
mod support;
