//! Integration tests of each filter through the harness (one binary, one module per filter).

mod bundle;
mod hardening;
mod jwt_auth;
mod key_inject;
mod prompt_guard;
mod secret_mask;
