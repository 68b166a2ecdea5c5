//! One verdict per stored value (DESIGN.md "Verdicts").

use serde::{Deserialize, Serialize};

use crate::encryption::hygiene::{seal_of, KnownKeys, Seal};
use crate::encryption::{EncryptionConfig, KeyId, Keyring, KmsApi, Provider, ProviderKind, ReadOutcome};
use crate::k8s::{decode_object, Encoding, ObjectInfo, RegistryKey, ResourceRef};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Class {
    Plaintext,
    Decryptable,
    UnknownKey,
    Undecryptable,
    Malformed,
}

impl Class {
    pub const ALL: [Class; 5] =
        [Class::Plaintext, Class::Decryptable, Class::UnknownKey, Class::Undecryptable, Class::Malformed];

    pub fn as_str(self) -> &'static str {
        match self {
            Class::Plaintext => "plaintext",
            Class::Decryptable => "decryptable",
            Class::UnknownKey => "unknown-key",
            Class::Undecryptable => "undecryptable",
            Class::Malformed => "malformed",
        }
    }
}

/// The verdict on one value, in the JSON entry shape.
#[derive(Clone, Debug, Serialize)]
pub struct Verdict {
    pub class: Class,
    pub provider: Option<ProviderKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_api: Option<KmsApi>,
    pub key_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    pub encoding: Option<Encoding>,
    /// Decryptable, but not as kube-apiserver would write it today.
    pub stale: Option<bool>,
    pub detail: Option<String>,
    /// Kind, apiVersion, a Secret's type, and data key names.
    /// Boxed: most of a report's memory is its entries, and most fields are small.
    pub object: Option<Box<ObjectInfo>>,
    #[serde(skip)]
    pub key: Option<KeyId>,
    /// Decryptable only with a key the resource's provider list lacks.
    #[serde(skip)]
    pub outside_provider_list: bool,
    /// Plaintext where the resource's provider list has no identity.
    #[serde(skip)]
    pub plaintext_unreadable: bool,
    /// The nonce a nonce-based cipher sealed it with (nonce-reuse check).
    #[serde(skip)]
    pub seal: Option<Box<Seal>>,
}

/// `--kms NAME=unix:///path`: a plugin endpoint that replaces the configured one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KmsOverride {
    pub name: String,
    pub endpoint: String,
}

#[derive(Debug, thiserror::Error)]
#[error("expected NAME=unix:///path, got {0:?}")]
pub struct KmsOverrideError(String);

impl std::str::FromStr for KmsOverride {
    type Err = KmsOverrideError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.split_once('=') {
            Some((name, endpoint)) if !name.is_empty() && endpoint.starts_with("unix://") => {
                Ok(KmsOverride { name: name.into(), endpoint: endpoint.into() })
            }
            _ => Err(KmsOverrideError(s.into())),
        }
    }
}

/// The keys and the first config's provider lists: everything a verdict needs.
pub struct Judge {
    pub configs: Vec<EncryptionConfig>,
    pub keyring: Keyring,
    pub kms_overrides: Vec<KmsOverride>,
    /// Keys known to be public (`public-key`): the documentation's and `--known-keys`.
    pub known_keys: KnownKeys,
}

impl Judge {
    /// KMS plugins come from the configs' `kms` providers; an override of the
    /// same name replaces the endpoint, and one no config names adds a provider.
    pub fn new(configs: Vec<EncryptionConfig>, kms_overrides: Vec<KmsOverride>) -> Self {
        let overrides: Vec<(String, String)> =
            kms_overrides.iter().map(|o| (o.name.clone(), o.endpoint.clone())).collect();
        let keyring = Keyring::with_kms_overrides(&configs, &overrides);
        Judge { configs, keyring, kms_overrides, known_keys: KnownKeys::default() }
    }

    /// This judge, also knowing the keys of a `--known-keys` file as public.
    pub fn with_known_keys(mut self, known_keys: KnownKeys) -> Judge {
        self.known_keys = known_keys;
        self
    }

    /// This judge with one more config after the supplied ones (k3s bootstrap
    /// data): its keys join the keyring; without `-c` files it gives the
    /// provider order. (KMS plugins are asked afresh.)
    pub fn with_config(&self, config: EncryptionConfig) -> Judge {
        let configs = self.configs.iter().cloned().chain([config]).collect();
        Judge::new(configs, self.kms_overrides.clone()).with_known_keys(self.known_keys.clone())
    }

    /// KMS plugin `Decrypt` calls made so far in this run (one per distinct DEK).
    pub fn kms_decrypt_calls(&self) -> u64 {
        self.keyring.kms_plugins().decrypt_calls()
    }

    /// The provider list kube-apiserver would use for `gr`, from the first config.
    pub fn providers_for<'s, 'g>(
        &'s self,
        gr: ResourceRef<'g>,
    ) -> Option<impl Iterator<Item = &'s Provider> + Clone + use<'s, 'g>> {
        self.configs.first()?.provider_list(gr)
    }

    pub fn judge(&self, etcd_key: &[u8], rk: &RegistryKey, value: &[u8]) -> Verdict {
        let reading = self.keyring.read(value, etcd_key, |plain| accept(plain, rk));
        let mut v = Verdict {
            class: Class::Plaintext,
            provider: reading.provider,
            kms_api: reading.kms_api,
            key_name: reading.key_name,
            key_id: reading.key_id,
            encoding: None,
            stale: None,
            detail: None,
            object: None,
            key: None,
            outside_provider_list: false,
            plaintext_unreadable: false,
            seal: None,
        };
        if matches!(v.provider, Some(ProviderKind::Aesgcm | ProviderKind::Secretbox | ProviderKind::Kms)) {
            v.seal = v.key_name.as_deref().and_then(|name| seal_of(value, name)).map(Box::new);
        }
        let list = self.providers_for(rk.resource);
        match reading.outcome {
            ReadOutcome::NotEncrypted => {
                let (encoding, object) = decode_object(value);
                v.encoding = Some(encoding);
                v.object = object.map(Box::new);
                v.plaintext_unreadable =
                    list.is_some_and(|mut l| !l.any(|p| matches!(p, Provider::Identity)));
            }
            ReadOutcome::Decrypted { key, accepted: (encoding, object) } => {
                let k = self.keyring.key(key);
                let holds =
                    |p: &Provider| matches!(p, Provider::Keys(_, keys) if keys.iter().any(|x| x.same_as(k)));
                let writes = matches!(list.clone().and_then(|mut l| l.next()), Some(Provider::Keys(_, keys)) if keys[0].same_as(k));
                v.class = Class::Decryptable;
                v.encoding = Some(encoding);
                v.object = Some(Box::new(object));
                v.stale = Some(!writes);
                v.key = Some(key);
                v.outside_provider_list = !list.is_some_and(|mut l| l.any(holds));
            }
            ReadOutcome::KmsDecrypted { stale, note, accepted: (encoding, object) } => {
                let (api, name) = (v.kms_api, v.key_name.as_deref());
                let this = |p: &Provider| matches!(p, Provider::Kms(k) if Some(k.api) == api && Some(k.name.as_str()) == name);
                let writes = list.clone().and_then(|mut l| l.next()).is_some_and(this);
                v.class = Class::Decryptable;
                v.encoding = Some(encoding);
                v.object = Some(Box::new(object));
                v.stale = Some(stale.is_some() || !writes);
                let detail: Vec<String> = stale.into_iter().chain(note).collect();
                v.detail = (!detail.is_empty()).then(|| detail.join("; "));
                v.outside_provider_list = !list.is_some_and(|mut l| l.any(this));
            }
            ReadOutcome::UnknownKey(d) => (v.class, v.detail) = (Class::UnknownKey, Some(d)),
            ReadOutcome::Undecryptable(d) => (v.class, v.detail) = (Class::Undecryptable, Some(d)),
            ReadOutcome::Malformed(d) => (v.class, v.detail) = (Class::Malformed, Some(d)),
        }
        v
    }
}

/// A decryption counts only when it yields a Kubernetes object whose metadata
/// matches the etcd key: AES-CBC has no authentication, so a wrong key can
/// "succeed" with garbage, and a value copied from another key must not pass.
fn accept(plain: &[u8], rk: &RegistryKey) -> Result<(Encoding, ObjectInfo), Rejected> {
    match decode_object(plain) {
        (Encoding::Unrecognized, _) => Err(Rejected::NotAnObject),
        (encoding, None) => Err(Rejected::Undecodable(encoding)),
        (encoding, Some(info)) => {
            let (name, namespace) = (info.name.as_deref().unwrap_or(""), info.namespace.as_deref());
            if name == rk.name && namespace == rk.namespace {
                Ok((encoding, info))
            } else {
                Err(Rejected::OtherObject {
                    object: format!("{}/{name}", namespace.unwrap_or("")),
                    key: format!("{}/{}", rk.namespace.unwrap_or(""), rk.name),
                })
            }
        }
    }
}

/// Why a decrypted value is not taken as the object its key names.
#[derive(Debug, thiserror::Error)]
enum Rejected {
    #[error("the result is not a Kubernetes object")]
    NotAnObject,
    #[error("the result does not decode as {0:?}")]
    Undecodable(Encoding),
    #[error("the object is {object}, not {key} (a value copied from another key?)")]
    OtherObject { object: String, key: String },
}
