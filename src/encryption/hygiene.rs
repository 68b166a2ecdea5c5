//! Key hygiene: keys that anyone can undo. Published keys are recognised by
//! the SHA-256 of their bytes (the binary holds digests only); weak keys by
//! a stated rule; nonces by the envelope a value was sealed in.

use std::collections::HashSet;

use sha2::{Digest, Sha256};

use super::envelope::{split_kms_v1, KmsV2Object};

/// The keys printed in the Kubernetes documentation (`encrypt-data.md`,
/// `decrypt-data.md`, the apiserver config reference), as SHA-256 of the
/// decoded bytes. Three of them (28, 25, 22 bytes) no provider accepts.
const PUBLISHED: [&str; 6] = [
    "66337256703eecc9d5e12f8b85a02fc86d98c832137fc075a9566dcc9dc8eb36", // c2VjcmV0IGlzIHNlY3VyZQ==
    "15a1b278f7e9cd1525e75fd9182d7bc0c6c00e4fa9e678c2184655491f98f1a2", // dGhpcyBpcyBwYXNzd29yZA==
    "f6d527e6d01865481134f29788be2afe7fc3c702e1a55d7ceafac5f35199e8dc", // YWJjZGVm…MTIzNDU2
    "58535344b6812f10423a2fc7ba41d3972bd0f275b5e3a94757c5b07b5b631ae0", // c2VjcmV0IGlz…aXQ/Cg== (28 bytes)
    "166f41cd7664c9c7afecf20e633907a6e615a3633b3a705b3a0b309e0b570c7f", // c2VjcmV0IGlz…aGluaw== (25 bytes)
    "112d307fe3d62bb20a8ad0d8614f29b56067da2e0529a8c5b50c41da298bbf01", // 2KfZgdiq…2YU= (22 bytes)
];

/// Keys known to be public: the documentation's, and any a user adds.
#[derive(Clone, Debug)]
pub struct KnownKeys {
    digests: HashSet<[u8; 32]>,
}

impl Default for KnownKeys {
    fn default() -> Self {
        let digests = PUBLISHED.iter().map(|h| hex::decode(h).unwrap().try_into().unwrap()).collect();
        KnownKeys { digests }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("line {line}: expected a base64 key or sha256:<64 hex digits>")]
pub struct KnownKeysError {
    pub line: usize,
}

impl KnownKeys {
    /// Adds the keys of a `--known-keys` file: one base64 key, or
    /// `sha256:<64 hex>` of the key bytes, a line; `#` starts a comment.
    pub fn add_file(&mut self, text: &str) -> Result<(), KnownKeysError> {
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let digest: [u8; 32] = match line.strip_prefix("sha256:") {
                Some(hex) => hex::decode(hex).ok().and_then(|d| d.try_into().ok()),
                None => {
                    use base64::Engine;
                    base64::engine::general_purpose::STANDARD
                        .decode(line)
                        .ok()
                        .map(|k| Sha256::digest(k).into())
                }
            }
            .ok_or(KnownKeysError { line: i + 1 })?;
            self.digests.insert(digest);
        }
        Ok(())
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.digests.contains(&<[u8; 32]>::from(Sha256::digest(key)))
    }
}

/// Why key bytes are not random.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Weakness {
    /// Every byte is printable ASCII: a passphrase, or base64 text pasted
    /// without decoding (`openssl rand -base64 32`).
    Printable,
    /// One byte repeated.
    RepeatedByte,
    /// A pattern of this many bytes repeated (at most half the key).
    RepeatedPattern(usize),
}

impl std::fmt::Display for Weakness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Weakness::Printable => {
                f.write_str("every byte is printable ASCII (a passphrase or undecoded base64)")
            }
            Weakness::RepeatedByte => f.write_str("one byte repeated"),
            Weakness::RepeatedPattern(n) => write!(f, "a {n}-byte pattern repeated"),
        }
    }
}

/// The rule: a key is weak when all its bytes are printable ASCII
/// (0x20–0x7e), when it is one byte repeated, or when it repeats a pattern
/// of at most half its length. For 32 random bytes the first happens with
/// probability (95/256)^32 ≈ 2e-14, the others never in practice.
pub fn weakness(key: &[u8]) -> Option<Weakness> {
    if key.is_empty() {
        return None;
    }
    if key.iter().all(|&b| b == key[0]) {
        return Some(Weakness::RepeatedByte);
    }
    if let Some(p) = (2..=key.len() / 2).find(|&p| key.iter().enumerate().all(|(i, &b)| b == key[i % p])) {
        return Some(Weakness::RepeatedPattern(p));
    }
    key.iter().all(|b| (0x20..=0x7e).contains(b)).then_some(Weakness::Printable)
}

/// Where a value's nonce was used: the key it was sealed under (a
/// configured key, or a KMS DEK named by the digest of its encrypted form),
/// the nonce, and a digest of the ciphertext.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Seal {
    /// `aesgcm:<name>`, `secretbox:<name>`, `kms-v1:<name>:dek:<digest>`, `kms-v2:<name>:dek:<digest>`.
    pub key: String,
    pub nonce: Vec<u8>,
    pub ciphertext: [u8; 16],
}

fn short(bytes: &[u8]) -> String {
    hex::encode(&Sha256::digest(bytes)[..8])
}

fn digest16(bytes: &[u8]) -> [u8; 16] {
    Sha256::digest(bytes)[..16].try_into().unwrap()
}

/// The nonce of a value sealed with a nonce-based cipher: aesgcm (12-byte
/// nonce), secretbox (24), KMS v1 data (12, per DEK) and KMS v2 AES_GCM_KEY
/// data (12, per DEK). `key_name` is the name the keyring resolved (names
/// may hold `:`).
pub fn seal_of(value: &[u8], key_name: &str) -> Option<Seal> {
    let rest = value.strip_prefix(b"k8s:enc:")?;
    let named = |provider: &[u8]| -> Option<&[u8]> {
        rest.strip_prefix(provider)?.strip_prefix(key_name.as_bytes())?.strip_prefix(b":")
    };
    let split = |key: String, payload: &[u8], n: usize| {
        (payload.len() > n).then(|| Seal {
            key,
            nonce: payload[..n].to_vec(),
            ciphertext: digest16(&payload[n..]),
        })
    };
    if let Some(payload) = named(b"aesgcm:v1:") {
        return split(format!("aesgcm:{key_name}"), payload, 12);
    }
    if let Some(payload) = named(b"secretbox:v1:") {
        return split(format!("secretbox:{key_name}"), payload, 24);
    }
    if let Some(payload) = named(b"kms:v1:") {
        let (dek, data) = split_kms_v1(payload).ok()?;
        return split(format!("kms-v1:{key_name}:dek:{}", short(dek)), data, 12);
    }
    if let Some(payload) = named(b"kms:v2:") {
        let object = KmsV2Object::decode(payload).ok()?;
        if object.dek_source_type != 0 {
            return None; // HKDF seeds derive a fresh key per value
        }
        let key = format!("kms-v2:{key_name}:dek:{}", short(&object.encrypted_dek_source));
        return split(key, &object.encrypted_data, 12);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_keys_are_known_by_digest() {
        use base64::Engine;
        let known = KnownKeys::default();
        for b64 in [
            "c2VjcmV0IGlzIHNlY3VyZQ==",
            "dGhpcyBpcyBwYXNzd29yZA==",
            "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY=",
            "c2VjcmV0IGlzIHNlY3VyZSwgb3IgaXMgaXQ/Cg==",
            "c2VjcmV0IGlzIHNlY3VyZSwgSSB0aGluaw==",
            "2KfZgdiq2K0g2YrYpyDYs9mF2LPZhQ==",
        ] {
            assert!(known.contains(&base64::engine::general_purpose::STANDARD.decode(b64).unwrap()), "{b64}");
        }
        assert!(!known.contains(&[7u8; 32]));
        let mut more = KnownKeys::default();
        let digest = hex::encode(Sha256::digest([9u8; 32]));
        more.add_file(&format!("# ours\nCQkJCQkJCQkJCQkJCQkJCQ==\nsha256:{digest}\n")).unwrap();
        assert!(more.contains(&[9u8; 16]) && more.contains(&[9u8; 32]));
        assert_eq!(more.add_file("ok\nsha256:zz").unwrap_err().line, 1);
    }

    #[test]
    fn weak_keys_by_rule_and_random_keys_never() {
        assert_eq!(weakness(b"abcdefghijklmnopqrstuvwxyz123456"), Some(Weakness::Printable));
        assert_eq!(weakness(&[0u8; 32]), Some(Weakness::RepeatedByte));
        assert_eq!(weakness(&[1, 2, 3, 4].repeat(8)), Some(Weakness::RepeatedPattern(4)));
        assert_eq!(weakness(&[0xde, 0xad].repeat(16)), Some(Weakness::RepeatedPattern(2)));
        use aes_gcm::aead::rand_core::RngCore;
        let mut key = [0u8; 32];
        for _ in 0..10_000 {
            aes_gcm::aead::OsRng.fill_bytes(&mut key);
            assert_eq!(weakness(&key), None, "{}", hex::encode(key));
        }
    }

    #[test]
    fn nonces_of_each_envelope() {
        let gcm = [&b"k8s:enc:aesgcm:v1:k:1:"[..], &[7u8; 12], b"ciphertext+tag.."].concat();
        let s = seal_of(&gcm, "k:1").unwrap();
        assert_eq!((s.key.as_str(), s.nonce.as_slice()), ("aesgcm:k:1", &[7u8; 12][..]));
        let sb = [&b"k8s:enc:secretbox:v1:sb:"[..], &[5u8; 24], b"sealed"].concat();
        assert_eq!(seal_of(&sb, "sb").unwrap().nonce, vec![5u8; 24]);
        let v1 = [&b"k8s:enc:kms:v1:vault:"[..], &[0, 3], b"dek", &[1u8; 12], b"data"].concat();
        assert!(seal_of(&v1, "vault").unwrap().key.starts_with("kms-v1:vault:dek:"));
        assert_eq!(seal_of(b"k8s:enc:aescbc:v1:k:xxxxxxxxxxxxxxxxxxxx", "k"), None);
        assert_eq!(seal_of(b"k8s\0plain", "k"), None);
    }
}
