//! What tollgate ships and where each stage sits in the request path.
//!
//! Request order (ARCHITECTURE.md): audit, jwt-auth, prompt-guard, approval, limits, key-inject,
//! then the response-path stages tool-guard and secret-mask. Envoy runs response callbacks in
//! reverse, so secret-mask, placed after audit on the request path, masks the answer before audit
//! records it. Stages that do not exist yet (audit, approval, limits, tool-guard) only reserve
//! their slot here, so adding them later does not move the others.

/// One stage of the request path: its name and its Istio `priority` (higher runs first within
/// a phase; every tollgate plugin uses the same phase, [`ISTIO_PHASE`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stage {
    pub name: &'static str,
    pub priority: i32,
    /// Built and shipped today (false: the slot is reserved).
    pub shipped: bool,
}

/// Every stage in request order, with the reserved ones.
pub const STAGES: [Stage; 8] = [
    Stage {
        name: "audit",
        priority: 1000,
        shipped: false,
    },
    Stage {
        name: "jwt-auth",
        priority: 900,
        shipped: true,
    },
    Stage {
        name: "prompt-guard",
        priority: 800,
        shipped: true,
    },
    Stage {
        name: "approval",
        priority: 700,
        shipped: false,
    },
    Stage {
        name: "limits",
        priority: 600,
        shipped: false,
    },
    Stage {
        name: "key-inject",
        priority: 500,
        shipped: true,
    },
    Stage {
        name: "tool-guard",
        priority: 400,
        shipped: false,
    },
    Stage {
        name: "secret-mask",
        priority: 300,
        shipped: true,
    },
];

/// The Istio phase of every tollgate plugin: before Istio's own authentication filters, so a
/// refused request costs nothing further and the order between tollgate plugins is decided by
/// `priority` alone.
pub const ISTIO_PHASE: &str = "AUTHN";

/// The bundle's Istio priority: the slot of its first stage (jwt-auth), after audit.
pub const BUNDLE_PRIORITY: i32 = 900;

/// The shipped filters, in request order.
pub const FILTERS: [&str; 4] = ["jwt-auth", "prompt-guard", "key-inject", "secret-mask"];

/// The bundle artifact's name.
pub const BUNDLE: &str = "bundle";

/// Everything `tollgate package` builds: the four filters and the bundle.
pub const ARTIFACTS: [&str; 5] = [
    "jwt-auth",
    "prompt-guard",
    "key-inject",
    "secret-mask",
    BUNDLE,
];

/// Filters that may hold the request headers until they have judged the request body, so they
/// need Envoy's `allow_on_headers_stop_iteration: true` (Envoy ≥ 1.35): prompt-guard (every
/// guarded request), secret-mask (when its policy masks request bodies, `request.enabled`) and
/// the bundle that contains both. jwt-auth and key-inject decide on the headers alone.
pub const HOLDS_HEADERS: [&str; 3] = ["prompt-guard", "secret-mask", BUNDLE];

/// `make wasm`'s file name of an artifact: `key-inject` → `tollgate_key_inject.wasm`.
pub fn wasm_file_name(name: &str) -> String {
    format!("tollgate_{}.wasm", name.replace('-', "_"))
}

/// The bundle's configuration section of a filter: `key-inject` → `key_inject`.
pub fn bundle_section(name: &str) -> String {
    name.replace('-', "_")
}

/// The stage entry of a shipped filter.
pub fn stage(name: &str) -> Option<&'static Stage> {
    STAGES.iter().find(|s| s.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_follow_the_request_order() {
        for pair in STAGES.windows(2) {
            assert!(pair[0].priority > pair[1].priority, "{pair:?}");
        }
        let shipped: Vec<_> = STAGES
            .iter()
            .filter(|s| s.shipped)
            .map(|s| s.name)
            .collect();
        assert_eq!(shipped, FILTERS);
        assert_eq!(stage("jwt-auth").map(|s| s.priority), Some(BUNDLE_PRIORITY));
        assert!(stage("audit").map(|s| s.priority).unwrap_or(0) > BUNDLE_PRIORITY);
    }

    #[test]
    fn names_map_to_files_and_sections() {
        assert_eq!(wasm_file_name("key-inject"), "tollgate_key_inject.wasm");
        assert_eq!(wasm_file_name("bundle"), "tollgate_bundle.wasm");
        assert_eq!(bundle_section("secret-mask"), "secret_mask");
    }
}
