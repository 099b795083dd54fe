//! `tollgate package --push` against a real registry, checked by an independent client:
//! skopeo pulls every image back; the manifest has one `tar+gzip` layer holding exactly
//! `plugin.wasm`, byte-identical to the build; the digest printed, the one in the lock file,
//! the one skopeo computes and the one `tollgate render` pins are the same; packaging again
//! gives the same digests; basic and bearer auth work and anonymous pushes are refused.

use std::collections::BTreeMap;

use serde_yaml::Value as Yaml;
use tollgate::artifacts::{self, ARTIFACTS};
use tollgate::image::{sha256_digest, LAYER_MEDIA_TYPE, MANIFEST_MEDIA_TYPE, PLUGIN_FILE};
use tollgate_tests::process::ScratchDir;

use crate::support::{self, RegistryAuth, RegistryServer, REVISION, TEST_PASSWORD, TEST_USER};

/// Every rendered document of `tollgate render ARGS` as YAML values.
fn render(args: &[&str]) -> Vec<Yaml> {
    let out = support::tollgate(args, None, &[]);
    assert!(
        out.status.success(),
        "render failed: {}",
        support::stderr(&out)
    );
    serde_yaml::Deserializer::from_str(&support::stdout(&out))
        .map(|d| serde::Deserialize::deserialize(d).expect("YAML"))
        .collect()
}

#[test]
fn pushed_images_pull_back_identical_and_every_digest_agrees() {
    let Some((registry_bin, skopeo)) = support::tools() else {
        return;
    };
    let registry = RegistryServer::start(&registry_bin, RegistryAuth::None);
    let scratch = ScratchDir::new("oci-push").unwrap();
    let lock_path = scratch.join("tollgate.lock.json");
    let wasm_dir = support::snapshot_wasm(&scratch.join("wasm"));
    let (lock, urls) = support::package_push(&registry, &wasm_dir, &lock_path);

    // One line per artifact, in shipping order, pinned by digest.
    assert_eq!(urls.len(), ARTIFACTS.len(), "{urls:?}");
    for (name, url) in ARTIFACTS.iter().zip(&urls) {
        let locked = &lock.artifacts[*name];
        assert_eq!(url, &locked.url);
        assert_eq!(
            url,
            &format!(
                "oci://{}/tollgate/{name}@{}",
                registry.host(),
                locked.digest
            )
        );
    }
    assert_eq!(lock.revision.as_deref(), Some(REVISION));

    let pulled = support::pull_all(&skopeo, &lock, &scratch.join("pulled"));
    for (name, p) in &pulled {
        let locked = &lock.artifacts[name];
        // The digest skopeo recorded, and the digest of the manifest bytes the registry serves.
        assert_eq!(p.digest, locked.digest, "{name}");
        let raw = support::skopeo_raw_manifest(&skopeo, &locked.reference(), None).unwrap();
        assert_eq!(sha256_digest(&raw), locked.digest, "{name}");

        // The compat format: OCI manifest, one tar+gzip layer, the variant annotation.
        let m = &p.manifest;
        assert_eq!(m["mediaType"], MANIFEST_MEDIA_TYPE, "{name}");
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{name}: {m}");
        assert_eq!(layers[0]["mediaType"], LAYER_MEDIA_TYPE, "{name}");
        assert_eq!(
            m["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        let a = &m["annotations"];
        assert_eq!(a["module.wasm.image/variant"], "compat", "{name}");
        assert_eq!(a["org.opencontainers.image.title"], name.as_str());
        assert_eq!(a["org.opencontainers.image.revision"], REVISION);
        assert_eq!(
            a["org.opencontainers.image.version"],
            env!("CARGO_PKG_VERSION")
        );
        assert!(a["org.opencontainers.image.source"].is_string(), "{a}");
        assert_eq!(layers[0]["digest"], sha256_digest(&p.layer).as_str());

        // Exactly one file, plugin.wasm, root-owned, mode 0644, mtime 0, identical to the build.
        let files: Vec<_> = std::fs::read_dir(&p.unpacked)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(files, [PLUGIN_FILE], "{name}");
        let listing: Vec<&str> = p.listing.lines().collect();
        assert_eq!(listing.len(), 1, "{name}: {}", p.listing);
        assert!(listing[0].starts_with("-rw-r--r-- 0/0"), "{}", listing[0]);
        assert!(listing[0].contains("1970-01-01 00:00"), "{}", listing[0]);
        assert!(listing[0].ends_with(PLUGIN_FILE), "{}", listing[0]);
        let built = std::fs::read(wasm_dir.join(artifacts::wasm_file_name(name))).unwrap();
        let pulled_wasm = std::fs::read(p.unpacked.join(PLUGIN_FILE)).unwrap();
        assert!(
            pulled_wasm == built,
            "{name}: plugin.wasm differs from the build"
        );
        assert_eq!(
            locked.wasm_sha256.as_deref(),
            Some(sha256_digest(&built).as_str())
        );
    }

    // What render pins is what was pushed: Istio url + sha256, Envoy Gateway url + sha256.
    let lock_arg = lock_path.display().to_string();
    let mut pinned: BTreeMap<String, (String, String)> = BTreeMap::new();
    for doc in render(&["render", "--target", "istio", "--lock", &lock_arg])
        .into_iter()
        .chain(render(&[
            "render", "--target", "istio", "--bundle", "--lock", &lock_arg,
        ]))
    {
        if doc["kind"] == "WasmPlugin" {
            let name = doc["spec"]["pluginName"].as_str().unwrap().to_string();
            let url = doc["spec"]["url"].as_str().unwrap().to_string();
            let sha = doc["spec"]["sha256"].as_str().unwrap().to_string();
            pinned.insert(name, (url, sha));
        }
    }
    assert_eq!(pinned.len(), ARTIFACTS.len(), "{pinned:?}");
    for (name, (url, sha)) in &pinned {
        let locked = &lock.artifacts[name];
        assert_eq!(url, &locked.url);
        assert_eq!(format!("sha256:{sha}"), pulled[name].digest);
    }
    for bundle in [false, true] {
        let mut args = vec!["render", "--target", "envoy-gateway", "--lock", &lock_arg];
        if bundle {
            args.push("--bundle");
        }
        for doc in render(&args) {
            for w in doc["spec"]["wasm"].as_sequence().unwrap() {
                let name = w["rootID"].as_str().unwrap();
                let image = &w["code"]["image"];
                assert_eq!(
                    image["url"].as_str().unwrap(),
                    lock.artifacts[name].reference()
                );
                assert_eq!(
                    format!("sha256:{}", image["sha256"].as_str().unwrap()),
                    pulled[name].digest
                );
            }
        }
    }
}

#[test]
fn packaging_is_reproducible_with_or_without_a_registry() {
    let Some((registry_bin, _)) = support::tools() else {
        return;
    };
    let registry = RegistryServer::start(&registry_bin, RegistryAuth::None);
    let scratch = ScratchDir::new("oci-repro").unwrap();
    let wasm_dir = support::snapshot_wasm(&scratch.join("wasm"));
    let wasm_arg = wasm_dir.display().to_string();
    let first = support::package_push(&registry, &wasm_dir, &scratch.join("a.json")).0;
    // Pushed again: the registry already has the blobs; the digests cannot move.
    let second = support::package_push(&registry, &wasm_dir, &scratch.join("b.json")).0;
    assert_eq!(first, second);
    // Without pushing, under the same name: the very same digests (computed offline).
    let prefix = format!("{}/tollgate", registry.host());
    let offline = scratch.join("c.json").display().to_string();
    let out = support::tollgate(
        &[
            "package",
            "--wasm-dir",
            &wasm_arg,
            "--repository",
            &prefix,
            "--revision",
            REVISION,
            "--lock",
            &offline,
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let third = tollgate::lock::Lock::read(std::path::Path::new(&offline)).unwrap();
    assert_eq!(first, third);
    // Another revision changes the manifest (annotations) but not the layer.
    let other = support::tollgate(
        &[
            "package",
            "--wasm-dir",
            &wasm_arg,
            "--revision",
            "other",
            "--only",
            "key-inject",
        ],
        None,
        &[],
    );
    assert!(other.status.success(), "{}", support::stderr(&other));
    let digest = support::stdout(&other);
    assert!(
        !digest.contains(&first.artifacts["key-inject"].digest),
        "{digest}"
    );
}

#[test]
fn basic_auth_pushes_and_anonymous_pushes_are_refused() {
    let Some((registry_bin, skopeo)) = support::tools() else {
        return;
    };
    let registry = RegistryServer::start(&registry_bin, RegistryAuth::Basic);
    let prefix = format!("{}/tollgate", registry.host());
    let scratch = ScratchDir::new("oci-auth").unwrap();
    let wasm_arg = support::snapshot_wasm(&scratch.join("wasm"))
        .display()
        .to_string();
    let base = [
        "package",
        "--wasm-dir",
        &wasm_arg,
        "--push",
        &prefix,
        "--insecure",
        "--revision",
        REVISION,
        "--only",
        "key-inject",
    ];

    let anonymous = support::tollgate(&base, None, &[]);
    assert!(!anonymous.status.success(), "an anonymous push must fail");
    let err = support::stderr(&anonymous);
    assert!(err.contains("tollgate package"), "{err}");

    let wrong = support::tollgate(
        &[&base[..], &["--username", TEST_USER, "--password-stdin"]].concat(),
        Some("not-the-password\n"),
        &[],
    );
    assert!(!wrong.status.success(), "a wrong password must fail");

    let ok = support::tollgate(
        &[&base[..], &["--username", TEST_USER, "--password-stdin"]].concat(),
        Some(&format!("{TEST_PASSWORD}\n")),
        &[],
    );
    assert!(
        ok.status.success(),
        "{}\n{}",
        support::stderr(&ok),
        registry.log()
    );
    let url = support::stdout(&ok);
    let reference = url.trim().trim_start_matches("oci://");
    let digest = reference.split_once('@').unwrap().1;
    let creds = format!("{TEST_USER}:{TEST_PASSWORD}");
    let raw = support::skopeo_raw_manifest(&skopeo, reference, Some(&creds)).unwrap();
    assert_eq!(sha256_digest(&raw), digest);
    assert!(
        support::skopeo_raw_manifest(&skopeo, reference, None).is_err(),
        "the registry must require auth"
    );

    // The password from the environment works too (no stdin).
    let env = support::tollgate(
        &[&base[..], &["--username", TEST_USER]].concat(),
        None,
        &[("TOLLGATE_REGISTRY_PASSWORD", TEST_PASSWORD)],
    );
    assert!(env.status.success(), "{}", support::stderr(&env));
    assert_eq!(support::stdout(&env), url);
    // No secret in what tollgate prints.
    for out in [&anonymous, &wrong, &ok, &env] {
        assert!(!support::stderr(out).contains(TEST_PASSWORD));
        assert!(!support::stdout(out).contains(TEST_PASSWORD));
    }
}

#[test]
fn bearer_tokens_are_sent() {
    let Some((registry_bin, _)) = support::tools() else {
        return;
    };
    let registry = RegistryServer::start(&registry_bin, RegistryAuth::Bearer);
    let prefix = format!("{}/tollgate", registry.host());
    let scratch = ScratchDir::new("oci-auth").unwrap();
    let wasm_arg = support::snapshot_wasm(&scratch.join("wasm"))
        .display()
        .to_string();
    let base = [
        "package",
        "--wasm-dir",
        &wasm_arg,
        "--push",
        &prefix,
        "--insecure",
        "--revision",
        REVISION,
        "--only",
        "secret-mask",
    ];
    let anonymous = support::tollgate(&base, None, &[]);
    assert!(
        !anonymous.status.success(),
        "without a token the registry refuses"
    );
    let stdin = support::tollgate(
        &[&base[..], &["--token-stdin"]].concat(),
        Some("tok-123\n"),
        &[],
    );
    assert!(
        stdin.status.success(),
        "{}\n{}",
        support::stderr(&stdin),
        registry.log()
    );
    let env = support::tollgate(&base, None, &[("TOLLGATE_REGISTRY_TOKEN", "tok-456")]);
    assert!(env.status.success(), "{}", support::stderr(&env));
    assert_eq!(support::stdout(&stdin), support::stdout(&env));
    assert!(support::stdout(&env).contains("/tollgate/secret-mask@sha256:"));
}

#[test]
fn the_oci_layout_pushed_by_skopeo_keeps_every_digest() {
    let Some((registry_bin, skopeo)) = support::tools() else {
        return;
    };
    let registry = RegistryServer::start(&registry_bin, RegistryAuth::None);
    let scratch = ScratchDir::new("oci-layout").unwrap();
    let wasm_arg = support::snapshot_wasm(&scratch.join("wasm"))
        .display()
        .to_string();
    let layout = scratch.join("layout").display().to_string();
    let out = support::tollgate(
        &[
            "package",
            "--wasm-dir",
            &wasm_arg,
            "--revision",
            REVISION,
            "--oci-layout",
            &layout,
        ],
        None,
        &[],
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let printed: BTreeMap<String, String> = support::stdout(&out)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, d)| (n.to_string(), d.to_string()))
        .collect();
    assert_eq!(printed.len(), ARTIFACTS.len());
    for (name, digest) in &printed {
        // Another pusher, from the layout: the registry stores the very same manifest.
        let dest = format!("{}/mirror/{name}:copied", registry.host());
        let copy = std::process::Command::new(&skopeo)
            .args([
                "copy",
                "--quiet",
                "--preserve-digests",
                "--dest-tls-verify=false",
            ])
            .arg(format!("oci:{layout}:{name}"))
            .arg(format!("docker://{dest}"))
            .output()
            .unwrap();
        assert!(
            copy.status.success(),
            "{}",
            String::from_utf8_lossy(&copy.stderr)
        );
        let raw = support::skopeo_raw_manifest(&skopeo, &dest, None).unwrap();
        assert_eq!(&sha256_digest(&raw), digest, "{name}");
    }
}
