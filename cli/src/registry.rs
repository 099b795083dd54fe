//! Pushing a built [`WasmImage`] to an OCI registry, through the `oci-client` crate (the
//! ORAS project's Rust client: the distribution API, token and basic auth, chunked uploads).
//!
//! The manifest is pushed as the exact bytes [`crate::image`] built
//! (`push_manifest_raw`), never re-serialized, so the digest the registry stores is the digest
//! computed offline; after the push the registry is asked for the tag's digest and a mismatch
//! is an error.

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};

use crate::image::{WasmImage, MANIFEST_MEDIA_TYPE};

/// How to authenticate to the registry.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    Anonymous,
    /// HTTP basic credentials (also exchanged for a token when the registry asks for one).
    Basic {
        username: String,
        password: String,
    },
    /// A bearer token sent as is.
    Bearer(String),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Anonymous => f.write_str("Anonymous"),
            Auth::Basic { username, .. } => write!(f, "Basic({username}, ***)"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
        }
    }
}

impl Auth {
    fn to_oci(&self) -> RegistryAuth {
        match self {
            Auth::Anonymous => RegistryAuth::Anonymous,
            Auth::Basic { username, password } => {
                RegistryAuth::Basic(username.clone(), password.clone())
            }
            Auth::Bearer(token) => RegistryAuth::Bearer(token.clone()),
        }
    }
}

/// Why a push failed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("`{reference}` is not a valid image reference: {reason}")]
    Reference { reference: String, reason: String },
    #[error("{step} {reference}: {source}")]
    Registry {
        step: &'static str,
        reference: String,
        source: oci_client::errors::OciDistributionError,
    },
    #[error(
        "{reference}: the registry reports digest {found} after the push, tollgate built {expected}"
    )]
    DigestMismatch {
        reference: String,
        expected: String,
        found: String,
    },
}

/// A registry connection (one per `tollgate package` run).
pub struct Registry {
    client: Client,
    auth: Auth,
}

impl Registry {
    /// A client for HTTPS registries, or plain HTTP when `insecure` (loopback test registries).
    pub fn new(auth: Auth, insecure: bool) -> Self {
        // reqwest is built without a bundled crypto provider; tollgate links ring rather than
        // aws-lc-rs (no C toolchain, cmake or 2-minute C build for a client that only pushes
        // images). rustls 0.23.48 deprecates ring's provider for lacking post-quantum key
        // exchange, which a registry push does not need. An Err means a provider is already
        // installed, which is as good.
        #[allow(deprecated)]
        let provider = rustls::crypto::ring::default_provider();
        let _ = provider.install_default();
        let client = Client::new(ClientConfig {
            protocol: if insecure {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            ..ClientConfig::default()
        });
        Self { client, auth }
    }

    /// Pushes `image` as `repository:tag` (layer, config, then the manifest bytes) and returns
    /// the manifest digest the registry reports, which is checked to be the built one.
    pub async fn push(
        &self,
        repository: &str,
        tag: &str,
        image: &WasmImage,
    ) -> Result<String, RegistryError> {
        let name = format!("{repository}:{tag}");
        let reference: Reference =
            name.parse()
                .map_err(|e: oci_client::ParseError| RegistryError::Reference {
                    reference: name.clone(),
                    reason: e.to_string(),
                })?;
        let err = |step: &'static str| {
            let reference = name.clone();
            move |source| RegistryError::Registry {
                step,
                reference,
                source,
            }
        };
        let auth = self.auth.to_oci();
        self.client
            .auth(&reference, &auth, RegistryOperation::Push)
            .await
            .map_err(err("authenticating to push"))?;
        for blob in [&image.layer, &image.config] {
            self.client
                .push_blob(&reference, blob.bytes.clone(), &blob.digest)
                .await
                .map_err(err("pushing a blob of"))?;
        }
        self.client
            .push_manifest_raw(
                &reference,
                image.manifest.bytes.clone(),
                http::HeaderValue::from_static(MANIFEST_MEDIA_TYPE),
            )
            .await
            .map_err(err("pushing the manifest of"))?;
        let found = self
            .client
            .fetch_manifest_digest(&reference, &auth)
            .await
            .map_err(err("reading back the digest of"))?;
        if found != image.digest() {
            return Err(RegistryError::DigestMismatch {
                reference: name,
                expected: image.digest().to_string(),
                found,
            });
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_debug_hides_secrets() {
        let basic = Auth::Basic {
            username: "ci".into(),
            password: "hunter2".into(),
        };
        assert_eq!(format!("{basic:?}"), "Basic(ci, ***)");
        assert!(!format!("{:?}", Auth::Bearer("tok".into())).contains("tok"));
    }
}
