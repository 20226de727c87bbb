//! The admission keys: one signs, every one verifies, each named by its `kid`.
//!
//! Given as JSON, in `ADMISSION_KEYS` locally or in the Secrets Manager secret
//! `ADMISSION_KEYS_SECRET_ARN` names when deployed:
//! `{"signing": "<kid>", "seed": "<random text>"?, "keys": {"<kid>": "<key>", …}?}`. A key is an
//! Ed25519 private key (PKCS#8, PEM or base64 DER), or `seed:<random text>`: the key whose
//! 32-byte seed is the text's SHA-256. `seed` is the signing key's, as `seed:` would give it:
//! CloudFormation can generate such a secret (a random `seed` beside a fixed `signing`), but no
//! PKCS#8 key. Rotation: a new version with the new kid signing and the old key kept under
//! `keys` (tokens of both verify); drop the old one once its last token has expired (an hour at
//! most).

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::signature::{Ed25519KeyPair, KeyPair};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

pub struct KeySet {
    signing_kid: String,
    signing: EncodingKey,
    verifying: HashMap<String, DecodingKey>,
    /// The public keys as a JWK Set (RFC 7517), for `/api/v1/.well-known/jwks.json`.
    jwks: serde_json::Value,
}

impl std::fmt::Debug for KeySet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the private keys.
        f.debug_struct("KeySet")
            .field("signing_kid", &self.signing_kid)
            .field("kids", &self.verifying.keys().collect::<Vec<_>>())
            .finish()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    signing: String,
    #[serde(default)]
    seed: Option<String>,
    #[serde(default)]
    keys: BTreeMap<String, String>,
}

/// PKCS#8 (v1) of an Ed25519 key is this prefix, then the key's 32-byte seed (RFC 8410).
const PKCS8_ED25519_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

impl KeySet {
    /// The key set of a JSON document (see the module's documentation).
    pub fn parse(json: &str) -> Result<Self, String> {
        let document: Document = serde_json::from_str(json).map_err(|e| {
            format!("expected {{\"signing\": \"<kid>\", \"keys\": {{\"<kid>\": \"<PKCS#8 key>\"}}}}: {e}")
        })?;
        let mut keys = Vec::new();
        if let Some(seed) = &document.seed {
            if document.keys.contains_key(&document.signing) {
                return Err(format!(
                    "the signing kid {:?} has a seed and a key: give one",
                    document.signing
                ));
            }
            keys.push((document.signing.clone(), seeded(seed)?));
        }
        for (kid, raw) in &document.keys {
            if kid.is_empty() || !kid.chars().all(|c| c.is_ascii_graphic()) {
                return Err(format!(
                    "kid {kid:?} must be printable ASCII without spaces"
                ));
            }
            let der = match raw.strip_prefix("seed:") {
                Some(seed) => seeded(seed),
                None => pkcs8(raw),
            };
            keys.push((kid.clone(), der.map_err(|e| format!("key {kid}: {e}"))?));
        }
        Self::from_keys(&document.signing, keys)
    }

    /// A key made up now, for a process that was given none: its tokens verify in this process
    /// only.
    pub fn ephemeral() -> Self {
        let document = Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
            .expect("the system's random source works");
        let kid = format!("ephemeral-{}", uuid::Uuid::new_v4().simple());
        Self::from_keys(&kid, vec![(kid.clone(), document.as_ref().to_vec())])
            .expect("a generated key is valid")
    }

    fn from_keys(signing_kid: &str, keys: Vec<(String, Vec<u8>)>) -> Result<Self, String> {
        let mut signing = None;
        let mut verifying = HashMap::new();
        let mut jwks = Vec::new();
        for (kid, der) in keys {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der)
                .map_err(|e| format!("key {kid} is not an Ed25519 PKCS#8 private key: {e}"))?;
            let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
            let public = DecodingKey::from_ed_components(&x).map_err(|e| e.to_string())?;
            jwks.push(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": kid, "x": x,
            }));
            if kid == signing_kid {
                signing = Some(EncodingKey::from_ed_der(&der));
            }
            verifying.insert(kid, public);
        }
        let signing = signing
            .ok_or_else(|| format!("the signing kid {signing_kid:?} is not one of the keys"))?;
        Ok(KeySet {
            signing_kid: signing_kid.to_owned(),
            signing,
            verifying,
            jwks: serde_json::json!({ "keys": jwks }),
        })
    }

    pub fn signing_kid(&self) -> &str {
        &self.signing_kid
    }

    pub(crate) fn signing(&self) -> &EncodingKey {
        &self.signing
    }

    pub(crate) fn verifying(&self, kid: &str) -> Option<&DecodingKey> {
        self.verifying.get(kid)
    }

    pub fn jwks(&self) -> &serde_json::Value {
        &self.jwks
    }
}

/// The PKCS#8 key whose seed is the SHA-256 of `seed`.
fn seeded(seed: &str) -> Result<Vec<u8>, String> {
    if seed.len() < 32 {
        return Err("a seed must be at least 32 characters of random text".to_owned());
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, seed.as_bytes());
    Ok([&PKCS8_ED25519_PREFIX[..], digest.as_ref()].concat())
}

/// The DER bytes of a PKCS#8 key given as PEM or as bare base64.
fn pkcs8(raw: &str) -> Result<Vec<u8>, String> {
    let body: String = raw
        .lines()
        .map(str::trim)
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD
        .decode(body.trim())
        .map_err(|e| format!("not PEM or base64: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_set_names_its_signing_key_among_its_keys() {
        let key = STANDARD.encode(
            Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .unwrap()
                .as_ref(),
        );
        let pem = format!("-----BEGIN PRIVATE KEY-----\n{key}\n-----END PRIVATE KEY-----\n");
        let json = serde_json::json!({"signing": "b", "keys": {"a": key, "b": pem}}).to_string();
        let set = KeySet::parse(&json).unwrap();
        assert_eq!(set.signing_kid(), "b");
        assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 2);
        assert!(!format!("{set:?}").contains(&key));
        let missing = serde_json::json!({"signing": "c", "keys": {"a": key}}).to_string();
        assert!(KeySet::parse(&missing).is_err());
        let garbage = serde_json::json!({"signing": "a", "keys": {"a": "bm9wZQ=="}}).to_string();
        assert!(KeySet::parse(&garbage).is_err());
    }

    #[test]
    fn a_seed_makes_the_same_key_every_time_and_rotation_keeps_the_old_one() {
        let seed = "x".repeat(40);
        let one = KeySet::parse(&serde_json::json!({"signing": "k1", "seed": seed}).to_string());
        let again = KeySet::parse(&serde_json::json!({"signing": "k1", "seed": seed}).to_string());
        assert_eq!(one.unwrap().jwks(), again.unwrap().jwks());
        let rotated = serde_json::json!({
            "signing": "k2", "seed": "y".repeat(40), "keys": {"k1": format!("seed:{seed}")}
        });
        let rotated = KeySet::parse(&rotated.to_string()).unwrap();
        assert_eq!(rotated.signing_kid(), "k2");
        assert_eq!(rotated.jwks()["keys"].as_array().unwrap().len(), 2);
        let short = serde_json::json!({"signing": "k1", "seed": "short"}).to_string();
        assert!(KeySet::parse(&short).is_err());
    }
}
