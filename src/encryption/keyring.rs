//! The union of every supplied config's keys, and the read path of
//! kube-apiserver's `prefixTransformers` over it.

use super::envelope::{split_kms_v1, split_name, Envelope};
use super::providers::{self, CryptoError, Plaintext};
use super::{EncryptionConfig, Key, KmsApi, KmsProvider, Provider, ProviderKind};

/// Index of a key in [`Keyring::keys`].
pub type KeyId = usize;

#[derive(Debug, Default)]
pub struct Keyring {
    keys: Vec<Key>,
    kms: Vec<KmsProvider>,
}

/// How one stored value reads with the keyring.
#[derive(Debug)]
pub struct Reading<T> {
    pub provider: Option<ProviderKind>,
    pub kms_api: Option<KmsApi>,
    /// The configured name, or for an unknown key the text up to the next `:`.
    pub key_name: Option<String>,
    /// KMS v2 key ID from the EncryptedObject.
    pub key_id: Option<String>,
    pub outcome: Outcome<T>,
}

#[derive(Debug)]
pub enum Outcome<T> {
    NotEncrypted,
    /// Opened, and the caller accepted the plaintext as what it should be.
    Decrypted {
        key: KeyId,
        accepted: T,
    },
    UnknownKey(String),
    Undecryptable(String),
    Malformed(String),
}

impl Keyring {
    /// Keys in config order, first config first; the same key (provider, name
    /// and material) listed by several configs is kept once.
    pub fn new(configs: &[EncryptionConfig]) -> Self {
        let mut ring = Keyring::default();
        for provider in configs.iter().flat_map(|c| &c.rules).flat_map(|r| &r.providers) {
            match provider {
                Provider::Keys(_, keys) => {
                    for key in keys {
                        if !ring.keys.iter().any(|k| k.same_as(key)) {
                            ring.keys.push(key.clone());
                        }
                    }
                }
                Provider::Kms(kms) => {
                    if !ring.kms.iter().any(|k| k.name == kms.name && k.api == kms.api) {
                        ring.kms.push(kms.clone());
                    }
                }
                Provider::Identity => {}
            }
        }
        ring
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn key(&self, id: KeyId) -> &Key {
        &self.keys[id]
    }

    pub fn kms_providers(&self) -> &[KmsProvider] {
        &self.kms
    }

    /// Whether any key of this provider has this name.
    pub fn has(&self, kind: ProviderKind, name: &str) -> bool {
        self.keys.iter().any(|k| k.kind == kind && k.name == name)
    }

    /// Reads `value` as the apiserver would: every configured key whose
    /// `name:` prefix matches is tried, and the first plaintext that
    /// `accept` takes wins (CBC has no authentication, so `accept` is what
    /// tells a right key from garbage). `aad` is the full etcd key.
    pub fn read<T>(
        &self,
        value: &[u8],
        aad: &[u8],
        accept: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Reading<T> {
        let mut reading = Reading {
            provider: None,
            kms_api: None,
            key_name: None,
            key_id: None,
            outcome: Outcome::NotEncrypted,
        };
        let envelope = match Envelope::parse(value) {
            None => return reading,
            Some(Err(e)) => {
                reading.outcome = Outcome::Malformed(e);
                return reading;
            }
            Some(Ok(envelope)) => envelope,
        };
        reading.provider = Some(envelope.kind());
        reading.kms_api = envelope.kms_api();
        match envelope {
            Envelope::Keyed { kind, rest } => self.read_keyed(kind, rest, aad, accept, &mut reading),
            Envelope::KmsV1 { rest } => self.read_kms_v1(rest, &mut reading),
            Envelope::KmsV2 { name, object } => {
                reading.outcome = match object {
                    Err(e) => Outcome::Malformed(e),
                    Ok(object) => {
                        reading.key_id = Some(object.key_id);
                        Outcome::UnknownKey(self.kms_unavailable(KmsApi::V2, &name))
                    }
                };
                reading.key_name = Some(name);
            }
        }
        reading
    }

    fn read_keyed<T>(
        &self,
        kind: ProviderKind,
        rest: &[u8],
        aad: &[u8],
        accept: impl Fn(&[u8]) -> Result<T, String>,
        reading: &mut Reading<T>,
    ) {
        let candidates: Vec<(KeyId, &Key)> = self
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| {
                k.kind == kind && rest.starts_with(k.name.as_bytes()) && rest.get(k.name.len()) == Some(&b':')
            })
            .collect();
        let Some((_, first)) = candidates.first() else {
            let (name, _) = split_name(rest);
            reading.outcome =
                Outcome::UnknownKey(format!("no supplied config holds {} key {name:?}", kind.as_str()));
            reading.key_name = Some(name);
            return;
        };
        reading.key_name = Some(first.name.clone());
        let mut errors = Vec::new();
        let mut only_malformed = true;
        for (id, key) in candidates {
            let payload = &rest[key.name.len() + 1..];
            let opened: Result<Plaintext, CryptoError> = match kind {
                ProviderKind::Aescbc => providers::aescbc(&key.secret, payload),
                ProviderKind::Aesgcm => providers::aesgcm(&key.secret, payload, aad),
                ProviderKind::Secretbox => providers::secretbox(&key.secret, payload),
                ProviderKind::Kms => unreachable!("KMS values are not keyed envelopes"),
            };
            match opened {
                Ok(plain) => match accept(&plain) {
                    Ok(accepted) => {
                        reading.key_name = Some(key.name.clone());
                        reading.outcome = Outcome::Decrypted { key: id, accepted };
                        return;
                    }
                    Err(e) => {
                        only_malformed = false;
                        errors.push(format!("{}: decrypted, but {e}", key.fingerprint()));
                    }
                },
                Err(CryptoError::Malformed(e)) => errors.push(e),
                Err(CryptoError::Failed(e)) => {
                    only_malformed = false;
                    errors.push(format!("{}: {e}", key.fingerprint()));
                }
            }
        }
        reading.outcome = if only_malformed {
            Outcome::Malformed(errors.swap_remove(0))
        } else {
            Outcome::Undecryptable(errors.join("; "))
        };
    }

    fn read_kms_v1<T>(&self, rest: &[u8], reading: &mut Reading<T>) {
        let configured = self
            .kms
            .iter()
            .filter(|k| k.api == KmsApi::V1)
            .find(|k| rest.starts_with(k.name.as_bytes()) && rest.get(k.name.len()) == Some(&b':'));
        let (name, payload) = match configured {
            Some(k) => (k.name.clone(), &rest[k.name.len() + 1..]),
            None => split_name(rest),
        };
        reading.outcome = match split_kms_v1(payload) {
            Err(e) => Outcome::Malformed(e.to_string()),
            Ok(_) => Outcome::UnknownKey(self.kms_unavailable(KmsApi::V1, &name)),
        };
        reading.key_name = Some(name);
    }

    fn kms_unavailable(&self, api: KmsApi, name: &str) -> String {
        match self.kms.iter().find(|k| k.api == api && k.name == name) {
            Some(k) => format!(
                "KMS plugin {name:?} at {} was not called: KMS decryption is not supported yet",
                k.endpoint
            ),
            None => format!("no supplied config has a KMS provider named {name:?}"),
        }
    }
}
