//! Fake-clock tests of the remote JWKS state machine.

use super::*;
use jwt_simple::prelude::*;

fn settings(discovery: bool) -> RemoteSettings {
    RemoteSettings {
        cluster: "idp".into(),
        authority: "idp.local".into(),
        jwks_path: if discovery {
            None
        } else {
            Some("/jwks".into())
        },
        discovery_path: if discovery {
            Some("/.well-known/openid-configuration".into())
        } else {
            None
        },
        timeout_ms: 2000,
        ttl_secs: 600,
        min_interval_secs: 30,
        grace_secs: 300,
    }
}

fn jwks(kids: &[&str]) -> Vec<u8> {
    let keys: Vec<String> = kids
        .iter()
        .map(|k| {
            ES256KeyPair::generate()
                .with_key_id(k)
                .public_key()
                .to_jwk()
        })
        .collect();
    format!("{{\"keys\":[{}]}}", keys.join(",")).into_bytes()
}

fn remote(discovery: bool) -> RemoteJwks {
    RemoteJwks::new(settings(discovery), "https://idp.example", &Alg::ASYMMETRIC)
}

fn usable(r: &mut RemoteJwks, now: u64) -> Option<Rc<KeySet>> {
    match r.status(now) {
        KeyStatus::Usable(k) => Some(k),
        _ => None,
    }
}

#[test]
fn first_fetch_then_keys_are_usable_until_ttl_plus_grace() {
    let mut r = remote(false);
    assert!(matches!(r.status(100), KeyStatus::Loading));
    let f = r.next_fetch(100).unwrap();
    assert_eq!(
        f,
        FetchRequest {
            cluster: "idp".into(),
            authority: "idp.local".into(),
            path: "/jwks".into(),
            phase: Phase::Jwks,
            timeout_ms: 2000
        }
    );
    assert!(r.next_fetch(100).is_none(), "one fetch at a time");
    assert!(matches!(r.status(100), KeyStatus::Loading));
    assert_eq!(
        r.complete(101, 200, &jwks(&["a"])),
        Completion::Keys { count: 1 }
    );
    assert!(usable(&mut r, 101).unwrap().has_kid("a"));
    assert!(r.next_fetch(500).is_none(), "fresh keys need no fetch");
    // TTL passed: a refresh starts, keys stay usable meanwhile.
    assert!(r.next_fetch(701).is_some());
    assert!(usable(&mut r, 701).is_some());
    // The refresh fails: keys stay usable within the grace period only.
    assert!(matches!(r.complete(702, 0, b""), Completion::Failed(_)));
    assert!(usable(&mut r, 1000).is_some());
    assert!(usable(&mut r, 101 + 600 + 300).is_none());
}

#[test]
fn idp_down_at_start_is_unavailable_then_retried_after_the_interval() {
    let mut r = remote(false);
    r.next_fetch(0).unwrap();
    assert!(matches!(r.complete(1, 503, b"down"), Completion::Failed(m) if m.contains("503")));
    assert!(matches!(r.status(2), KeyStatus::Unavailable));
    assert!(r.next_fetch(10).is_none(), "rate-limited");
    assert!(matches!(r.status(30), KeyStatus::Loading));
    assert!(r.next_fetch(30).is_some());
    assert_eq!(
        r.complete(31, 200, &jwks(&["a"])),
        Completion::Keys { count: 1 }
    );
    assert!(usable(&mut r, 31).is_some());
}

#[test]
fn a_fetch_that_never_answers_times_out() {
    let mut r = remote(false);
    r.next_fetch(0).unwrap();
    assert!(r.is_fetching());
    assert!(matches!(r.status(2), KeyStatus::Loading));
    // timeout 2 s + 1 s slack
    assert!(matches!(r.status(3), KeyStatus::Unavailable));
    assert!(!r.is_fetching());
    // A late answer is not applied.
    assert!(matches!(
        r.complete(4, 200, &jwks(&["a"])),
        Completion::Failed(_)
    ));
    assert!(usable(&mut r, 4).is_none());
}

#[test]
fn unknown_kid_refetches_once_per_interval() {
    let mut r = remote(false);
    r.next_fetch(0).unwrap();
    r.complete(0, 200, &jwks(&["old"]));
    // The IdP rotated: a token with kid "new" arrives.
    assert!(r.unknown_kid(50));
    let f = r.next_fetch(50).unwrap();
    assert_eq!(f.phase, Phase::Jwks);
    assert!(r.unknown_kid(50), "waits for the fetch in flight");
    assert!(r.next_fetch(50).is_none());
    r.complete(51, 200, &jwks(&["new"]));
    let keys = usable(&mut r, 51).unwrap();
    assert!(keys.has_kid("new") && !keys.has_kid("old"));
    // A flood of random kids: no more fetches within the interval.
    for t in 52..80 {
        assert!(!r.unknown_kid(t));
        assert!(r.next_fetch(t).is_none());
    }
    assert!(r.unknown_kid(81));
    assert!(r.next_fetch(81).is_some());
}

#[test]
fn discovery_then_jwks() {
    let mut r = remote(true);
    let d = r.next_fetch(0).unwrap();
    assert_eq!(d.phase, Phase::Discovery);
    assert_eq!(d.path, "/.well-known/openid-configuration");
    let doc =
        br#"{"issuer":"https://idp.example","jwks_uri":"https://keys.idp.example/oauth/jwks"}"#;
    assert_eq!(r.complete(5, 200, doc), Completion::Discovered);
    assert!(matches!(r.status(5), KeyStatus::Loading));
    let j = r.next_fetch(5).unwrap();
    assert_eq!(
        (j.phase, j.path.as_str(), j.authority.as_str()),
        (Phase::Jwks, "/oauth/jwks", "keys.idp.example")
    );
    assert_eq!(j.cluster, "idp");
    assert_eq!(
        r.complete(6, 200, &jwks(&["k"])),
        Completion::Keys { count: 1 }
    );
    // Later refreshes go straight to the JWKS.
    assert_eq!(r.next_fetch(700).unwrap().phase, Phase::Jwks);
}

#[test]
fn discovery_for_another_issuer_or_without_jwks_uri_fails() {
    for doc in [
        &br#"{"issuer":"https://evil.example","jwks_uri":"https://idp.example/jwks"}"#[..],
        br#"{"issuer":"https://idp.example"}"#,
        br#"{"issuer":"https://idp.example","jwks_uri":"file:///etc/passwd"}"#,
        br#"{"issuer":"https://idp.example","issuer":"https://idp.example","jwks_uri":"https://a/b"}"#,
        b"not json",
    ] {
        let mut r = remote(true);
        r.next_fetch(0).unwrap();
        assert!(matches!(r.complete(1, 200, doc), Completion::Failed(_)), "{}", String::from_utf8_lossy(doc));
        assert!(r.next_fetch(1).is_none());
    }
}

#[test]
fn a_bad_jwks_keeps_the_previous_keys() {
    let mut r = remote(false);
    r.next_fetch(0).unwrap();
    r.complete(0, 200, &jwks(&["a"]));
    r.next_fetch(600).unwrap();
    assert!(matches!(
        r.complete(600, 200, b"{\"keys\":[]}"),
        Completion::Failed(_)
    ));
    assert!(usable(&mut r, 601).unwrap().has_kid("a"));
}

#[test]
fn keys_from_another_worker_are_adopted_when_newer() {
    let mut r = remote(false);
    assert!(r.adopt(&jwks(&["w"]), 10, 20));
    assert!(usable(&mut r, 20).unwrap().has_kid("w"));
    assert!(!r.adopt(&jwks(&["older"]), 5, 20), "older than ours");
    assert!(!r.adopt(&jwks(&["late"]), 11, 11 + 600), "already stale");
    assert!(!r.adopt(b"junk", 12, 20));
    assert!(
        r.next_fetch(20).is_none(),
        "fresh adopted keys need no fetch"
    );
}

#[test]
fn dispatch_failure_clears_the_flight() {
    let mut r = remote(false);
    r.next_fetch(0).unwrap();
    r.dispatch_failed();
    assert!(!r.is_fetching());
    assert!(matches!(r.status(1), KeyStatus::Unavailable));
}
