//! The union of every supplied config's keys, and the read path of
//! kube-apiserver's `prefixTransformers` over it.

use super::envelope::{split_kms_v1, split_name, Envelope, KmsV2Object};
use super::kms::{KmsError, KmsPlugins, Plugin};
use super::providers::{self, CryptoError, Plaintext};
use super::{EncryptionConfig, Key, KmsApi, KmsProvider, Provider, ProviderKind};

/// Index of a key in [`Keyring::keys`].
pub type KeyId = usize;

#[derive(Debug, Default)]
pub struct Keyring {
    keys: Vec<Key>,
    kms: Vec<KmsProvider>,
    plugins: KmsPlugins,
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
    /// Opened through a KMS plugin and accepted. `stale` says why
    /// kube-apiserver would not write it so today (KMS v2 keyID or DEK source
    /// type, KMS v1 CBC fallback); `note` flags an unhealthy plugin.
    KmsDecrypted {
        stale: Option<String>,
        note: Option<String>,
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
        Self::with_kms_overrides(configs, &[])
    }

    /// As [`Keyring::new`], with `--kms NAME=endpoint` overrides (name, endpoint)
    /// for the KMS plugins.
    pub fn with_kms_overrides(configs: &[EncryptionConfig], overrides: &[(String, String)]) -> Self {
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
        ring.plugins = KmsPlugins::new(&ring.kms, overrides);
        ring
    }

    pub fn keys(&self) -> &[Key] {
        &self.keys
    }

    pub fn key(&self, id: KeyId) -> &Key {
        &self.keys[id]
    }

    /// The KMS plugins of the configs and overrides.
    pub fn kms_plugins(&self) -> &KmsPlugins {
        &self.plugins
    }

    /// Whether any key of this provider has this name.
    pub fn has(&self, kind: ProviderKind, name: &str) -> bool {
        self.keys.iter().any(|k| k.kind == kind && k.name == name)
    }

    /// Reads `value` as the apiserver would: every configured key whose
    /// `name:` prefix matches is tried, and the first plaintext that
    /// `accept` takes wins (CBC has no authentication, so `accept` is what
    /// tells a right key from garbage). `aad` is the full etcd key.
    pub fn read<T, E: std::fmt::Display>(
        &self,
        value: &[u8],
        aad: &[u8],
        accept: impl Fn(&[u8]) -> Result<T, E>,
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
                reading.outcome = Outcome::Malformed(e.to_string());
                return reading;
            }
            Some(Ok(envelope)) => envelope,
        };
        reading.provider = Some(envelope.kind());
        reading.kms_api = envelope.kms_api();
        match envelope {
            Envelope::Keyed { kind, rest } => self.read_keyed(kind, rest, aad, accept, &mut reading),
            Envelope::KmsV1 { rest } => self.read_kms_v1(rest, aad, accept, &mut reading),
            Envelope::KmsV2 { name, object } => {
                reading.outcome = match object {
                    Err(e) => Outcome::Malformed(e.to_string()),
                    Ok(object) => {
                        let outcome = self.read_kms_v2(&name, &object, aad, accept);
                        reading.key_id = Some(object.key_id);
                        outcome
                    }
                };
                reading.key_name = Some(name);
            }
        }
        reading
    }

    fn read_keyed<T, E: std::fmt::Display>(
        &self,
        kind: ProviderKind,
        rest: &[u8],
        aad: &[u8],
        accept: impl Fn(&[u8]) -> Result<T, E>,
        reading: &mut Reading<T>,
    ) {
        // Keys of this kind whose name prefixes the value, in config order
        // (no allocation: this runs once per value).
        let mut candidates = self
            .keys
            .iter()
            .enumerate()
            .filter(|(_, k)| {
                k.kind == kind && rest.starts_with(k.name.as_bytes()) && rest.get(k.name.len()) == Some(&b':')
            })
            .peekable();
        let Some(&(_, first)) = candidates.peek() else {
            let (name, _) = split_name(rest);
            reading.outcome =
                Outcome::UnknownKey(format!("no supplied config holds {} key {name:?}", kind.as_str()));
            reading.key_name = Some(name);
            return;
        };
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
        reading.key_name = Some(first.name.clone());
        reading.outcome = if only_malformed {
            Outcome::Malformed(errors.swap_remove(0))
        } else {
            Outcome::Undecryptable(errors.join("; "))
        };
    }

    /// KMS v1 (`envelope.go`): configured names in order (they may contain
    /// `:`), the plugin unwraps the DEK, the data reads as AES-GCM, then
    /// AES-CBC (stale).
    fn read_kms_v1<T, E: std::fmt::Display>(
        &self,
        rest: &[u8],
        aad: &[u8],
        accept: impl Fn(&[u8]) -> Result<T, E>,
        reading: &mut Reading<T>,
    ) {
        let candidates = self.plugins.v1_matching(rest);
        let Some(first) = candidates.first() else {
            let (name, payload) = split_name(rest);
            reading.outcome = match split_kms_v1(payload) {
                Err(e) => Outcome::Malformed(e.to_string()),
                Ok(_) => Outcome::UnknownKey(no_provider(KmsApi::V1, &name)),
            };
            reading.key_name = Some(name);
            return;
        };
        reading.key_name = Some(first.name.clone());
        let mut failures = Vec::new();
        for plugin in candidates {
            let payload = &rest[plugin.name.len() + 1..];
            match self.read_kms_v1_with(plugin, payload, aad, &accept) {
                decrypted @ Outcome::KmsDecrypted { .. } => {
                    reading.key_name = Some(plugin.name.clone());
                    reading.outcome = decrypted;
                    return;
                }
                failed => failures.push(failed),
            }
        }
        // One name (the usual case) gives its own outcome; with overlapping
        // names a refusal outranks an unreachable plugin, which outranks a
        // split that made no structural sense.
        let rank = |o: &Outcome<T>| match o {
            Outcome::Undecryptable(_) => 0,
            Outcome::UnknownKey(_) => 1,
            _ => 2,
        };
        let best = (0..failures.len()).min_by_key(|&i| rank(&failures[i])).unwrap_or(0);
        reading.outcome = failures.swap_remove(best);
    }

    fn read_kms_v1_with<T, E: std::fmt::Display>(
        &self,
        plugin: &Plugin,
        payload: &[u8],
        aad: &[u8],
        accept: &impl Fn(&[u8]) -> Result<T, E>,
    ) -> Outcome<T> {
        let (encrypted_dek, data) = match split_kms_v1(payload) {
            Err(e) => return Outcome::Malformed(e.to_string()),
            Ok(split) => split,
        };
        if let Err(e) = providers::kms_v1_data_shape(data) {
            return Outcome::Malformed(e.to_string());
        }
        if let Err(e) = self.plugins.status(plugin) {
            return Outcome::UnknownKey(e.to_string());
        }
        let dek = match self.plugins.unwrap_dek(plugin, encrypted_dek, "", &[]) {
            Ok(dek) => dek,
            Err(e) => return kms_failure(e),
        };
        let (plain, cbc) = match providers::kms_v1_data(&dek, data, aad) {
            Ok(opened) => opened,
            Err(CryptoError::Malformed(e)) => return Outcome::Malformed(e),
            Err(CryptoError::Failed(e)) => {
                return Outcome::Undecryptable(format!("the plugin unwrapped the DEK, but {e}"))
            }
        };
        match accept(&plain) {
            Ok(accepted) => Outcome::KmsDecrypted {
                stale: cbc.then(|| "read through the AES-CBC fallback (KMS v1 data as 1.24 wrote it)".into()),
                note: self.plugins.health_note(plugin).map(|e| e.to_string()),
                accepted,
            },
            Err(e) if cbc => Outcome::Undecryptable(format!(
                "AES-GCM did not open the data and the AES-CBC fallback gave garbage: {e}"
            )),
            Err(e) => Outcome::Undecryptable(format!("decrypted, but {e}")),
        }
    }

    /// KMS v2 (`kmsv2/envelope.go`): the plugin unwraps the DEK or seed named
    /// by the EncryptedObject; stale when its keyID is not the plugin's
    /// current one or it is a type-0 DEK (1.29+ write seeds).
    fn read_kms_v2<T, E: std::fmt::Display>(
        &self,
        name: &str,
        object: &KmsV2Object,
        aad: &[u8],
        accept: impl Fn(&[u8]) -> Result<T, E>,
    ) -> Outcome<T> {
        let Some(plugin) = self.plugins.find(KmsApi::V2, name) else {
            return Outcome::UnknownKey(no_provider(KmsApi::V2, name));
        };
        if let Err(e) = providers::kms_v2_data_shape(object.dek_source_type, &object.encrypted_data) {
            return Outcome::Malformed(e.to_string());
        }
        let status = match self.plugins.status(plugin) {
            Ok(status) => status,
            Err(e) => return Outcome::UnknownKey(e.to_string()),
        };
        let dek = match self.plugins.unwrap_dek(
            plugin,
            &object.encrypted_dek_source,
            &object.key_id,
            &object.annotations,
        ) {
            Ok(dek) => dek,
            Err(e) => return kms_failure(e),
        };
        let plain = match providers::kms_v2_data(object.dek_source_type, &dek, &object.encrypted_data, aad) {
            Ok(plain) => plain,
            Err(CryptoError::Malformed(e)) => return Outcome::Malformed(e),
            Err(CryptoError::Failed(e)) => {
                return Outcome::Undecryptable(format!("the plugin unwrapped the DEK source, but {e}"))
            }
        };
        match accept(&plain) {
            Err(e) => Outcome::Undecryptable(format!("decrypted, but {e}")),
            Ok(accepted) => {
                let mut stale = Vec::new();
                if status.key_id.as_deref() != Some(object.key_id.as_str()) {
                    stale.push(format!(
                        "keyID {:?} is not the plugin's current key ID {:?}",
                        object.key_id,
                        status.key_id.as_deref().unwrap_or("")
                    ));
                }
                if object.dek_source_type == providers::KMS_V2_AES_GCM_KEY {
                    stale.push(
                        "a plain DEK (AES_GCM_KEY, as 1.27/1.28 wrote); kube-apiserver now writes HKDF seeds"
                            .into(),
                    );
                }
                Outcome::KmsDecrypted {
                    stale: (!stale.is_empty()).then(|| stale.join("; ")),
                    note: self.plugins.health_note(plugin).map(|e| e.to_string()),
                    accepted,
                }
            }
        }
    }
}

fn kms_failure<T>(e: KmsError) -> Outcome<T> {
    match e {
        KmsError::Unavailable(e) => Outcome::UnknownKey(e.to_string()),
        KmsError::Refused(e) => Outcome::Undecryptable(e.to_string()),
    }
}

fn no_provider(api: KmsApi, name: &str) -> String {
    let api = if api == KmsApi::V1 { "v1" } else { "v2" };
    format!("no supplied config or --kms override has a KMS {api} provider named {name:?}")
}
