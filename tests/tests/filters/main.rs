//! Integration tests of each filter through the harness (one binary, one module per filter).

mod jwt_auth;
mod key_inject;
mod secret_mask;
