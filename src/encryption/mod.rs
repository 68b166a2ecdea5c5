//! Encryption at rest as kube-apiserver does it: EncryptionConfiguration
//! files, the keyring they form, and the providers that read each value.
//! Format: `docs/formats/k8s-encryption.md` §1–§7.

mod config;
mod envelope;
pub mod hygiene;
pub mod k3s;
mod keyring;
pub mod kms;
mod providers;

pub use config::Key;
pub use config::{ConfigError, EncryptionConfig, KmsApi, KmsProvider, Provider, ResourceRule};
pub use envelope::{Envelope, KmsV2Object};
pub use keyring::{KeyId, Keyring, Outcome as ReadOutcome, Reading};
pub use kms::{KmsError, KmsPlugins, PluginReport, PluginStatus, SocketAddress};
pub use providers::CryptoError;

use serde::Serialize;

/// The provider token in `k8s:enc:<provider>:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    Aescbc,
    Aesgcm,
    Secretbox,
    Kms,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Aescbc => "aescbc",
            ProviderKind::Aesgcm => "aesgcm",
            ProviderKind::Secretbox => "secretbox",
            ProviderKind::Kms => "kms",
        }
    }
}

/// `sha256:` and the first 16 hex digits of the SHA-256 of key material:
/// enough to tell keys apart, never enough to recover one.
pub fn fingerprint(material: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    format!("sha256:{}", &hex::encode(Sha256::digest(material))[..16])
}
