//! The checks behind tollgate's cargo-fuzz targets (docs/fuzzing.md): one function per parser
//! family, each fed raw fuzzer bytes. Besides "never panics", each asserts invariants that hold
//! for every input (a refusal is an `Err`, round trips, no forged token verifies, chunking never
//! changes what a client of a stream sees); an assertion failure is a crash, like a panic inside
//! a parser.
//!
//! Fixtures (keys, tokens, policies) come from the repository, compiled in.

use std::rc::Rc;

use serde_json::Value;

pub const HARNESS: &str = include_str!("../../filters/jwt-auth/testdata/harness.json");
pub const GUARD_DEFAULT: &[u8] = include_bytes!("../../policies/prompt-guard.json");
pub const GUARD_EXAMPLE: &[u8] = include_bytes!("../../policies/prompt-guard.example.json");

/// Splits `data` into (chunk lengths, stream): the first byte says how many of the following
/// bytes are chunk lengths (0–15); each length byte gives a chunk of 1–256 bytes, cycled over
/// the rest of the input. No length bytes: the stream is one chunk.
pub fn split_chunks(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&first, rest)) = data.split_first() else {
        return (Vec::new(), data);
    };
    let n = usize::from(first % 16).min(rest.len());
    let (lens, stream) = rest.split_at(n);
    (lens.iter().map(|&b| usize::from(b) + 1).collect(), stream)
}

/// The pieces of `stream` cut at the lengths from [`split_chunks`].
pub fn chunks<'a>(lens: &[usize], stream: &'a [u8]) -> Vec<&'a [u8]> {
    if lens.is_empty() {
        return vec![stream];
    }
    let mut out = Vec::new();
    let mut rest = stream;
    for len in lens.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (head, tail) = rest.split_at((*len).min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// tollgate-verify against RustCrypto (`verify_differential`), in its own file.
pub mod verify;

pub mod jwt {
    use super::*;
    use tollgate_jwt_auth::claims::{identity, ClaimsPolicy, MAX_FORWARDED_VALUE, MAX_GROUPS};
    use tollgate_jwt_auth::extractor::{extract, Location};
    use tollgate_jwt_auth::json::parse_strict;
    use tollgate_jwt_auth::jwks::{
        hs256_key, parse_jwks, Alg, KeySet, MAX_JWKS_KEYS, MAX_KID_BYTES,
    };
    use tollgate_jwt_auth::verifier::{self, decode, Policy, DEFAULT_MAX_TOKEN_BYTES};

    pub struct Fixture {
        pub now: u64,
        pub policy: Policy,
        pub keys: KeySet,
        /// The harness's signed tokens (valid and invalid ones).
        pub tokens: Vec<String>,
    }

    fn harness() -> Value {
        serde_json::from_str(HARNESS).expect("filters/jwt-auth/testdata/harness.json")
    }

    /// The harness's issuer, keys (its JWKS and HS256 secret) and tokens.
    pub fn fixture() -> Fixture {
        let h = harness();
        let issuer = h["issuer"].as_str().expect("issuer");
        let mut policy = Policy::new(issuer);
        policy.algorithms = Alg::ALL.to_vec();
        policy.audiences = vec!["tollgate".into()];
        let raw = serde_json::to_vec(&h["jwks"]).expect("jwks");
        let mut keys = parse_jwks(&raw, &Alg::ALL).expect("the harness's JWKS");
        let secret = h["hs256_secret"].as_str().expect("hs256_secret");
        keys.extend(KeySet {
            keys: vec![hs256_key(secret.as_bytes(), Some("hs1".into()))],
            skipped: 0,
        });
        let tokens = h["tokens"]
            .as_object()
            .map(|m| {
                m.values()
                    .filter_map(Value::as_str)
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default();
        Fixture {
            now: h["now"].as_u64().expect("now"),
            policy,
            keys,
            tokens,
        }
    }

    thread_local! {
        static FIXTURE: Rc<Fixture> = Rc::new(fixture());
    }

    fn claims_policy() -> ClaimsPolicy {
        ClaimsPolicy {
            subject_claim: "sub".into(),
            group_claims: vec!["groups".into(), "scope".into(), "realm_access.roles".into()],
            forward: vec![
                ("email".into(), "x-email".into()),
                ("realm_access".into(), "x-realm".into()),
            ],
        }
    }

    /// Header value → token → decoded claims → claim checks → signature → identity.
    pub fn token(data: &[u8]) {
        strict_json(data);
        let fx = FIXTURE.with(Rc::clone);
        let text = String::from_utf8_lossy(data);
        let headers = vec![("Authorization".to_string(), data.to_vec())];
        let locations = [
            Location::bearer(),
            Location {
                header: "x-api-key".into(),
                prefix: None,
            },
        ];
        let token = match extract(&headers, &locations) {
            Ok(Some(found)) => {
                assert!(!found.token.is_empty());
                assert!(!found.token.contains(','));
                assert!(found.token.bytes().all(|b| b.is_ascii_graphic()));
                assert!(text.contains(found.token.as_str()));
                found.token
            }
            Ok(None) | Err(_) => text.trim().to_string(),
        };
        let Ok(decoded) = decode(&token, DEFAULT_MAX_TOKEN_BYTES) else {
            return;
        };
        assert!(token.len() <= DEFAULT_MAX_TOKEN_BYTES);
        assert_eq!(token.split('.').count(), 3);
        assert!(decoded
            .kid
            .as_ref()
            .is_none_or(|k| k.len() <= MAX_KID_BYTES));
        let claims_ok = verifier::check_claims(&decoded, &fx.policy, fx.now);
        let verified = verifier::verify(&token, &decoded, &fx.policy, &[&fx.keys], fx.now);
        if verified.is_ok() {
            // A signature never stands without the claim checks, and nothing but a signed
            // header and payload of the harness verifies (the signing input is their text).
            assert!(claims_ok.is_ok());
            let input = token.rsplit_once('.').map(|(input, _)| input);
            assert!(
                fx.tokens
                    .iter()
                    .any(|t| t.rsplit_once('.').map(|(i, _)| i) == input),
                "forged token verified: {token}"
            );
        }
        let issuer = decoded.issuer.clone().unwrap_or_default();
        if let Ok(id) = identity(&decoded.claims, &claims_policy(), &issuer, decoded.exp) {
            assert!(!id.subject.is_empty());
            assert!(id.groups.len() <= MAX_GROUPS);
            for (i, g) in id.groups.iter().enumerate() {
                assert!(!g.is_empty());
                assert!(!id.groups[..i].contains(g));
            }
            for (_, v) in &id.forwarded {
                assert!(v.len() <= MAX_FORWARDED_VALUE);
                assert!(!v.chars().any(char::is_control));
            }
        }
    }

    /// Strict JSON: what it accepts, serde_json reads the same way, and its re-serialization
    /// is accepted again. (Not compared for equality: serde_json's default float parsing is
    /// not correctly rounded, so a re-read float may differ in its last bit.)
    pub fn strict_json(data: &[u8]) {
        if let Ok(v) = parse_strict(data) {
            assert_eq!(
                serde_json::from_slice::<Value>(data).ok().as_ref(),
                Some(&v)
            );
            let again = serde_json::to_vec(&v).unwrap_or_default();
            assert!(parse_strict(&again).is_ok());
        }
    }

    /// A JWKS document: never a symmetric key, bounded, and its keys usable without panics.
    pub fn jwks(data: &[u8]) {
        let fx = FIXTURE.with(Rc::clone);
        for allowed in [&Alg::ALL[..], &Alg::ASYMMETRIC[..]] {
            let Ok(set) = parse_jwks(data, allowed) else {
                continue;
            };
            assert!(!set.is_empty());
            assert!(set.len() <= MAX_JWKS_KEYS * allowed.len());
            for key in &set.keys {
                assert_ne!(key.key.alg(), Alg::HS256, "an HMAC key from a JWKS");
                assert!(allowed.contains(&key.key.alg()));
                assert!(key.kid.as_ref().is_none_or(|k| k.len() <= MAX_KID_BYTES));
            }
            // Verify the harness's tokens with the fuzzed keys (exercises RSA/P-256 code on
            // odd moduli and points); a token never verifies with a key of another algorithm.
            for token in &fx.tokens {
                let Ok(d) = decode(token, DEFAULT_MAX_TOKEN_BYTES) else {
                    continue;
                };
                let res = verifier::check_signature(token, &d, &fx.policy, &[&set], fx.now);
                if res.is_ok() {
                    assert!(set.candidates(d.alg, d.kid.as_deref()).next().is_some());
                }
            }
        }
        strict_json(data);
    }
}

pub mod guard {
    use super::*;
    use tollgate_prompt_guard::config::load;
    use tollgate_prompt_guard::extract::{extract, set_top_level_number, Api};
    use tollgate_prompt_guard::http::normalize_path;
    use tollgate_prompt_guard::policy::{Policy, Verdict};

    thread_local! {
        static POLICIES: Rc<(Policy, Policy)> = Rc::new((
            load(GUARD_DEFAULT).unwrap_or_else(|e| panic!("default policy: {e}")),
            load(GUARD_EXAMPLE).unwrap_or_else(|e| panic!("example policy: {e}")),
        ));
    }

    const APIS: [Api; 3] = [Api::Messages, Api::CountTokens, Api::ChatCompletions];
    /// The example policy's top-level clamp.
    const CLAMP: u64 = 4096;

    /// A request body through extraction and both shipped policies, for several callers.
    pub fn body(data: &[u8]) {
        let policies = POLICIES.with(Rc::clone);
        let (default, example) = (&policies.0, &policies.1);
        for api in APIS {
            let extracted = extract(api, data);
            if let Ok(e) = &extracted {
                assert!(e.segments.iter().all(|s| !s.text.is_empty()));
                assert!(e
                    .segments
                    .iter()
                    .all(|s| s.message.is_none_or(|m| m < e.message_count)));
            }
            let verdict = default.evaluate(api, data, &[]);
            if extracted.is_err() {
                assert!(
                    matches!(verdict, Verdict::Deny(_)),
                    "unreadable body passed"
                );
            }
            for groups in [
                &[][..],
                &["engineers".to_string()][..],
                &["support-kiosk".to_string(), "contractors".to_string()][..],
            ] {
                let verdict = example.evaluate(api, data, groups);
                if extracted.is_err() {
                    assert!(
                        matches!(verdict, Verdict::Deny(_)),
                        "unreadable body passed"
                    );
                }
                if let (
                    Verdict::Pass {
                        body: Some(new), ..
                    },
                    Ok(old),
                ) = (&verdict, &extracted)
                {
                    // A clamped body reads as the same request with its limits at the cap.
                    let again = extract(api, new)
                        .unwrap_or_else(|e| panic!("clamped body unreadable: {e}"));
                    assert_eq!(again.segments, old.segments);
                    assert_eq!(again.model, old.model);
                    assert_eq!(again.stream, old.stream);
                    assert_eq!(again.message_count, old.message_count);
                    if groups.is_empty() {
                        assert!(!again.max_tokens.is_empty());
                        assert!(again.max_tokens.iter().all(|(_, n)| *n <= CLAMP));
                    }
                }
            }
        }
        // Rewriting one number keeps every other byte's meaning.
        if let (Ok(old), Ok(new)) = (
            extract(Api::Messages, data),
            set_top_level_number(data, "max_tokens", 77),
        ) {
            let again = extract(Api::Messages, &new)
                .unwrap_or_else(|e| panic!("rewritten body unreadable: {e}"));
            assert_eq!(again.max_tokens, vec![("max_tokens", 77)]);
            assert_eq!(again.segments, old.segments);
        }
    }

    /// Anonymous paths in jwt-auth's sense stay anonymous under prompt-guard's normalization.
    pub fn path(data: &[u8]) {
        use tollgate_jwt_auth::matcher::{
            is_canonical, requirement_for, strip_query, PathMatch, Requirement, Rule,
        };
        let raw = String::from_utf8_lossy(data);
        let n = normalize_path(&raw);
        assert!(n.starts_with('/'));
        assert!(!n.contains("//"));
        assert!(n == "/" || !n.ends_with('/'));
        assert!(!n.contains(['\\', ';']));
        assert!(!n.bytes().any(|b| b.is_ascii_uppercase()));
        assert!(!n.split('/').any(|s| s == "." || s == ".."));
        let policies = POLICIES.with(Rc::clone);
        // Normalizing is idempotent once decoding reached a fixpoint (it decodes three levels
        // of escapes; a fourth may remain), so another hop's normalization routes alike.
        if !n.contains('%') {
            assert_eq!(normalize_path(&n), n);
            assert_eq!(policies.0.route(&raw), policies.0.route(&n));
        }

        let rules = [
            Rule {
                path: PathMatch::Exact("/healthz".into()),
                requirement: Requirement::Anonymous,
            },
            Rule {
                path: PathMatch::Prefix("/public".into()),
                requirement: Requirement::Anonymous,
            },
            Rule {
                path: PathMatch::Prefix("/admin/".into()),
                requirement: Requirement::Deny,
            },
        ];
        let default = Requirement::any_token();
        let stripped = strip_query(&raw);
        assert!(raw.starts_with(stripped));
        if requirement_for(&rules, &default, &raw) == &Requirement::Anonymous {
            assert!(is_canonical(stripped));
            assert!(
                n == "/healthz" || n == "/public" || n.starts_with("/public/"),
                "{raw:?} is anonymous in jwt-auth but normalizes to {n:?}"
            );
            assert_eq!(policies.0.route(&raw), None);
        }
    }
}

pub mod mask {
    use super::*;
    use tollgate_secret_mask::config::load;
    use tollgate_secret_mask::matcher::RuleSet;
    use tollgate_secret_mask::rewrite::SseRewriter;
    use tollgate_secret_mask::sse::{Block, Parser};

    thread_local! {
        static RULES: Rc<RuleSet> = load(b"{}", &|_| None)
            .map(|c| c.rules)
            .unwrap_or_else(|e| panic!("default rules: {e}"));
    }

    const MAX_EVENT: usize = 1 << 20;

    fn rewrite(pieces: &[&[u8]]) -> Vec<u8> {
        let mut rw = SseRewriter::new(RULES.with(Rc::clone), MAX_EVENT);
        let mut out = Vec::new();
        for p in pieces {
            if rw.feed(p, &mut out).is_err() {
                // The filter fails closed here; nothing more to compare.
                return Vec::new();
            }
        }
        rw.finish(&mut out);
        out
    }

    fn blocks(pieces: &[&[u8]]) -> (Vec<Block>, Option<Block>) {
        let mut p = Parser::new(MAX_EVENT);
        let mut out = Vec::new();
        for piece in pieces {
            let _ = p.feed(piece, &mut out);
        }
        (out, p.finish())
    }

    type Fields = (
        Option<String>,
        Option<Vec<u8>>,
        Option<String>,
        Option<String>,
    );

    /// What a client acts on: each block's fields (blocks with none dispatch nothing).
    fn fields(blocks: &[Block]) -> Vec<Fields> {
        blocks
            .iter()
            .map(|b| {
                (
                    b.event.clone(),
                    b.data.clone(),
                    b.id.clone(),
                    b.retry.clone(),
                )
            })
            .filter(|f| f != &(None, None, None, None))
            .collect()
    }

    /// An SSE response cut at fuzzer-chosen points: the parser and the rewriter give a client
    /// the same events as for the whole stream at once, and the parser loses no byte. (A CR
    /// and LF split across chunks may move the LF into the next block's raw bytes, so raw
    /// bytes are compared concatenated, and the rewriter's output as parsed events.)
    pub fn stream(data: &[u8]) {
        let (lens, stream) = split_chunks(data);
        let pieces = chunks(&lens, stream);
        let (whole_blocks, whole_rest) = blocks(&[stream]);
        let (cut_blocks, cut_rest) = blocks(&pieces);
        assert_eq!(fields(&whole_blocks), fields(&cut_blocks));
        let concat = |blocks: &[Block], rest: &Option<Block>| -> Vec<u8> {
            let mut raw: Vec<u8> = blocks.iter().flat_map(|b| b.raw.iter().copied()).collect();
            if let Some(rest) = rest {
                raw.extend_from_slice(&rest.raw);
            }
            raw
        };
        assert_eq!(
            concat(&whole_blocks, &whole_rest),
            stream,
            "the parser lost or invented bytes"
        );
        assert_eq!(
            concat(&cut_blocks, &cut_rest),
            stream,
            "the parser lost or invented bytes"
        );

        let whole = rewrite(&[stream]);
        let cut = rewrite(&pieces);
        let (whole_events, whole_tail) = blocks(&[&whole]);
        let (cut_events, cut_tail) = blocks(&[&cut]);
        assert_eq!(
            fields(&whole_events),
            fields(&cut_events),
            "the output depends on where the network cut the stream"
        );
        assert_eq!(whole_tail.map(|b| b.raw), cut_tail.map(|b| b.raw));
        if std::str::from_utf8(stream).is_ok() {
            assert!(std::str::from_utf8(&whole).is_ok(), "masking broke UTF-8");
        }
    }
}
