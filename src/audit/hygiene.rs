//! Key hygiene and config lint: encryption that anyone can undo (published
//! keys, passphrases as keys, reused nonces) and configurations that write
//! plaintext or use what the docs and the CIS benchmark advise against.
//! Findings only: verdict classes never change here.

use std::collections::{BTreeMap, HashMap};

use serde_json::json;

use super::findings::{Code, Finding, Reference, Severity};
use super::verdict::{Judge, Verdict};
use crate::encryption::hygiene::{weakness, Seal};
use crate::encryption::{EncryptionConfig, Key, KmsApi, Provider, ProviderKind};

/// The docs say to rotate an aesgcm key every 200,000 writes.
pub const GCM_WRITE_BUDGET: usize = 200_000;

const DOCS_ENCRYPT: Reference = Reference {
    title: "Kubernetes docs: Encrypting Confidential Data at Rest",
    url: "https://kubernetes.io/docs/tasks/administer-cluster/encrypt-data/",
};
const DOCS_KMS: Reference = Reference {
    title: "Kubernetes docs: Using a KMS provider for data encryption",
    url: "https://kubernetes.io/docs/tasks/administer-cluster/kms-provider/",
};
const CIS: Reference = Reference {
    title: "CIS Kubernetes Benchmark 1.2.28 (v1.9-1.12 numbering): encryption providers are appropriately configured",
    url: "https://www.cisecurity.org/benchmark/kubernetes",
};

fn with(mut f: Finding, references: &[Reference], remediation: &'static str) -> Finding {
    f.references = references.to_vec();
    f.remediation = Some(remediation);
    f
}

/// `provider:name (fingerprint) in origin`: how findings name a key.
fn label(key: &Key) -> String {
    format!("{}:{} ({}) in {}", key.kind.as_str(), key.name, key.fingerprint(), key.origin)
}

/// Published, weak and reused keys, and the lint of every config.
pub fn key_and_config_findings(judge: &Judge) -> Vec<Finding> {
    let keys = judge.keyring.keys();
    let mut out = Vec::new();
    let public: Vec<&Key> = keys.iter().filter(|k| judge.known_keys.contains(&k.secret)).collect();
    if !public.is_empty() {
        let n = public.len() as u64;
        let f = Finding::new(
            Severity::Critical,
            Code::PublicKey,
            n,
            format!("{n} keys are keys published in the Kubernetes documentation (or --known-keys): anyone can decrypt what they encrypt"),
            public.iter().map(|k| label(k)),
        );
        out.push(with(f, &[DOCS_ENCRYPT], "Generate a new random key (head -c 32 /dev/urandom | base64), make it the first key, rewrite all Secrets, then remove the published one."));
    }
    let weak: Vec<(&Key, String)> = keys
        .iter()
        .filter(|k| !judge.known_keys.contains(&k.secret))
        .filter_map(|k| Some((k, weakness(&k.secret)?.to_string())))
        .collect();
    if !weak.is_empty() {
        let n = weak.len() as u64;
        let mut f = Finding::new(
            Severity::High,
            Code::WeakKey,
            n,
            format!("{n} keys are not random bytes: a passphrase, undecoded base64 text or a repeated pattern is far easier to guess than 256 random bits"),
            weak.iter().map(|(k, why)| format!("{}: {why}", label(k))),
        );
        f.details = weak.iter().map(|(k, why)| json!({"key": label(k), "reason": why})).collect();
        out.push(with(
            f,
            &[DOCS_ENCRYPT],
            "Use 32 random bytes, base64-encoded once (head -c 32 /dev/urandom | base64), and rotate.",
        ));
    }
    // The same bytes under two names or providers.
    let mut by_bytes: BTreeMap<&[u8], Vec<&Key>> = BTreeMap::new();
    for k in keys {
        by_bytes.entry(k.secret.as_slice()).or_default().push(k);
    }
    let reused: Vec<Vec<&Key>> = by_bytes.into_values().filter(|ks| ks.len() > 1).collect();
    if !reused.is_empty() {
        let n = reused.len() as u64;
        let mut f = Finding::new(
            Severity::High,
            Code::KeyReused,
            n,
            format!("{n} keys' bytes appear under more than one name or provider: retiring one name does not retire the key"),
            reused.iter().map(|ks| ks.iter().map(|k| label(k)).collect::<Vec<_>>().join(" = ")),
        );
        f.details = reused
            .iter()
            .map(|ks| json!({"keys": ks.iter().map(|k| label(k)).collect::<Vec<_>>()}))
            .collect();
        out.push(with(f, &[DOCS_ENCRYPT], "Give every key name its own random bytes."));
    }
    out.extend(lint(&judge.configs));
    out
}

/// What each config says about writes: `identity-first`, `kms-v1`,
/// `aescbc-in-use`, `non-cis-provider`, `secret-not-covered`.
pub fn lint(configs: &[EncryptionConfig]) -> Vec<Finding> {
    let mut hits: BTreeMap<Code, Vec<String>> = BTreeMap::new();
    for config in configs {
        let at = &config.path;
        let mut hit = |code: Code, what: String| hits.entry(code).or_default().push(format!("{at}: {what}"));
        let covers_secrets = config
            .rules
            .iter()
            .any(|r| r.resources.iter().any(|x| x == "secrets" || x == "*.*" || x == "*."));
        if !covers_secrets {
            hit(Code::SecretNotCovered, "no resource list names secrets".into());
        }
        for rule in &config.rules {
            let resources = rule.resources.join(",");
            if matches!(rule.providers.first(), Some(Provider::Identity)) && rule.providers.len() > 1 {
                hit(Code::IdentityFirst, format!("resources {resources}: identity is the first provider"));
            }
            for p in &rule.providers {
                match p {
                    Provider::Kms(k) if k.api == KmsApi::V1 => {
                        hit(Code::KmsV1, format!("resources {resources}: KMS v1 provider {}", k.name))
                    }
                    Provider::Keys(ProviderKind::Aescbc, _) => {
                        hit(Code::AescbcInUse, format!("resources {resources}"))
                    }
                    Provider::Keys(ProviderKind::Aesgcm, _) => {
                        hit(Code::NonCisProvider, format!("resources {resources}: aesgcm"))
                    }
                    _ => {}
                }
            }
        }
    }
    hits.into_iter()
        .map(|(code, examples)| {
            let n = examples.len() as u64;
            let (severity, message, refs, fix): (_, String, &[Reference], &'static str) = match code {
                Code::IdentityFirst => (
                    Severity::High,
                    format!("{n} resource lists have identity first: kube-apiserver writes those resources in plaintext"),
                    &[DOCS_ENCRYPT, CIS],
                    "Move identity last (keep it only while plaintext data remains), then rewrite the resources.",
                ),
                Code::KmsV1 => (
                    Severity::Medium,
                    format!("{n} KMS v1 providers: deprecated since 1.28 and off by default since 1.29"),
                    &[DOCS_KMS],
                    "Migrate to a KMS v2 plugin (apiVersion: v2) and rewrite all Secrets.",
                ),
                Code::AescbcInUse => (
                    Severity::Low,
                    format!("{n} resource lists use aescbc, which the docs no longer recommend"),
                    &[DOCS_ENCRYPT],
                    "Prefer a KMS v2 provider, or secretbox, for new writes.",
                ),
                Code::NonCisProvider => (
                    Severity::Low,
                    format!("{n} resource lists use aesgcm, which the CIS benchmark does not accept (only aescbc, kms, secretbox); it also needs rotation every 200,000 writes"),
                    &[CIS, DOCS_ENCRYPT],
                    "Use a KMS v2 provider or secretbox instead of aesgcm.",
                ),
                _ => (
                    Severity::High,
                    format!("{n} configs do not cover secrets: Secrets are written in plaintext"),
                    &[DOCS_ENCRYPT, CIS],
                    "Add secrets to the resources of an encrypting provider list.",
                ),
            };
            let f = Finding::new(severity, code, n, message, examples.into_iter());
            with(f, refs, fix)
        })
        .collect()
}

/// The ciphertexts one (key, nonce) sealed, distinct by digest, and where
/// the first of each is: one pair for a nonce used once, as it should be.
struct NonceGroup {
    first: ([u8; 16], Box<str>),
    more: Vec<([u8; 16], Box<str>)>,
}

/// Nonce reuse and write budgets over every value judged (live, history,
/// residue, WAL), tallied one verdict at a time: two different ciphertexts
/// under one key with one nonce reveal their XOR and, for GCM, the
/// authentication key. Holds one group per sealed value (about a hundred
/// bytes; plain and aescbc values cost nothing).
#[derive(Default)]
pub struct NonceLedger {
    keys: BTreeMap<String, HashMap<Vec<u8>, NonceGroup>>,
}

impl NonceLedger {
    /// Notes the seal of `verdict`, if any; `at` says where it is, and is
    /// only called for a ciphertext not seen before under that nonce.
    pub fn add(&mut self, verdict: &Verdict, at: impl FnOnce() -> String) {
        let Some(Seal { key, nonce, ciphertext }) = verdict.seal.as_deref() else { return };
        if !self.keys.contains_key(key.as_str()) {
            self.keys.insert(key.clone(), HashMap::new());
        }
        let Some(nonces) = self.keys.get_mut(key.as_str()) else { return };
        match nonces.get_mut(nonce.as_slice()) {
            None => {
                let first = (*ciphertext, at().into_boxed_str());
                nonces.insert(nonce.clone(), NonceGroup { first, more: vec![] });
            }
            Some(group) => {
                if group.first.0 != *ciphertext && group.more.iter().all(|(c, _)| c != ciphertext) {
                    group.more.push((*ciphertext, at().into_boxed_str()));
                }
            }
        }
    }

    pub fn findings(self) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut reused: Vec<(&str, &[u8], Vec<&str>)> = Vec::new();
        let mut spent: Vec<(&str, usize)> = Vec::new();
        for (key, nonces) in &self.keys {
            let mut here: Vec<(&[u8], Vec<&str>)> = nonces
                .iter()
                .filter(|(_, g)| !g.more.is_empty())
                .map(|(nonce, g)| {
                    let at = std::iter::once(&g.first).chain(&g.more).map(|(_, at)| &**at).collect();
                    (nonce.as_slice(), at)
                })
                .collect();
            here.sort();
            reused.extend(here.into_iter().map(|(nonce, at)| (key.as_str(), nonce, at)));
            let ciphertexts = nonces.values().map(|g| 1 + g.more.len()).sum();
            if key.starts_with("aesgcm:") && ciphertexts >= GCM_WRITE_BUDGET {
                spent.push((key, ciphertexts));
            }
        }
        if !reused.is_empty() {
            let n = reused.len() as u64;
            let nonce_digest = |nonce: &[u8]| format!("sha256:{}", hex::encode(&sha2_256(nonce)[..8]));
            let examples = reused
                .iter()
                .map(|(key, nonce, at)| format!("{key} nonce {}: {}", nonce_digest(nonce), at.join(", ")));
            let mut f = Finding::new(
                Severity::Critical,
                Code::GcmNonceReuse,
                n,
                format!("{n} nonces were used for more than one ciphertext under the same key: the plaintexts' XOR and, for AES-GCM, the authentication key are exposed"),
                examples,
            );
            f.details = reused
                .iter()
                .map(|(key, nonce, at)| json!({"key": key, "nonce": nonce_digest(nonce), "etcd_keys": at}))
                .collect();
            out.push(with(f, &[DOCS_ENCRYPT], "Rotate the key now (new key first, rewrite all Secrets, remove the old key) and treat the affected values as exposed."));
        }
        if !spent.is_empty() {
            let n = spent.len() as u64;
            let mut f = Finding::new(
                Severity::Medium,
                Code::GcmWriteBudget,
                n,
                format!("{n} aesgcm keys have at least {GCM_WRITE_BUDGET} distinct ciphertexts in this backup (a lower bound of their writes): the docs say to rotate every 200,000 writes"),
                spent.iter().map(|(k, c)| format!("{k}: {c} ciphertexts")),
            );
            f.details = spent.iter().map(|(k, c)| json!({"key": k, "ciphertexts": c})).collect();
            out.push(with(f, &[DOCS_ENCRYPT], "Rotate the aesgcm key, or move to KMS v2 or secretbox."));
        }
        out
    }
}

/// [`NonceLedger`] findings over a list of values and where they are.
#[cfg(test)]
fn nonce_findings<'a>(values: impl Iterator<Item = (&'a Verdict, String)>) -> Vec<Finding> {
    let mut ledger = NonceLedger::default();
    for (verdict, at) in values {
        ledger.add(verdict, || at);
    }
    ledger.findings()
}

fn sha2_256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::verdict::Class;

    fn sealed(key: &str, nonce: u8, ct: u8) -> Verdict {
        Verdict {
            class: Class::Decryptable,
            provider: None,
            kms_api: None,
            key_name: None,
            key_id: None,
            encoding: None,
            stale: None,
            detail: None,
            object: None,
            key: None,
            outside_provider_list: false,
            plaintext_unreadable: false,
            seal: Some(Box::new(Seal { key: key.into(), nonce: vec![nonce; 12], ciphertext: [ct; 16] })),
        }
    }

    #[test]
    fn nonce_reuse_needs_two_different_ciphertexts() {
        let same_value_twice = [sealed("aesgcm:k", 1, 9), sealed("aesgcm:k", 1, 9)];
        let f = nonce_findings(same_value_twice.iter().map(|v| (v, "/a".to_string())));
        assert!(f.is_empty(), "a copied value is not a reuse");
        let reused = [sealed("aesgcm:k", 1, 9), sealed("aesgcm:k", 1, 8), sealed("aesgcm:j", 1, 7)];
        let f = nonce_findings(reused.iter().enumerate().map(|(i, v)| (v, format!("/s/{i}"))));
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].code, f[0].count), (Code::GcmNonceReuse, 1));
        assert_eq!(f[0].details[0]["etcd_keys"], json!(["/s/0", "/s/1"]));
    }

    #[test]
    fn the_write_budget_counts_distinct_ciphertexts_per_aesgcm_key() {
        let seal = |i: usize| Verdict {
            seal: Some(Box::new(Seal {
                key: "aesgcm:k".into(),
                nonce: (i as u64).to_le_bytes().repeat(2)[..12].to_vec(),
                ciphertext: {
                    let mut c = [0u8; 16];
                    c[..8].copy_from_slice(&(i as u64).to_le_bytes());
                    c
                },
            })),
            ..sealed("x", 0, 0)
        };
        let under: Vec<Verdict> = (0..GCM_WRITE_BUDGET - 1).map(seal).collect();
        assert!(nonce_findings(under.iter().map(|v| (v, String::new()))).is_empty());
        let at: Vec<Verdict> = (0..GCM_WRITE_BUDGET).map(seal).collect();
        let f = nonce_findings(at.iter().map(|v| (v, String::new())));
        assert_eq!(
            (f[0].code, f[0].details[0]["ciphertexts"].as_u64()),
            (Code::GcmWriteBudget, Some(200_000))
        );
    }
}
