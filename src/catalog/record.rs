//! What the catalog stores about one audited backup, and how a scan report
//! becomes such a record.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::audit::{Judge, KeyUse, ScanReport};
use crate::encryption::{KmsApi, Provider};
use crate::source::remote::RemoteObject;

/// One audited backup, keyed by the SHA-256 of its content: the same bytes
/// audited again (from anywhere) replace the record, never duplicate it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRecord {
    /// Where it was audited last (a URL or a path, as the caller names it).
    pub source: String,
    /// Lowercase hex SHA-256 of the content (the unwrapped bbolt bytes).
    pub sha256: String,
    /// Every source known to hold this content, sorted (maintained by the catalog:
    /// whatever a caller puts here is ignored by [`super::Catalog::record`]).
    #[serde(default)]
    pub sources: Vec<String>,
    /// Length of the hashed content in bytes.
    pub size: u64,
    /// Facts about `source` when it was audited last (ETag, mtime, …).
    pub origin: Origin,
    /// The etcd revision of the store.
    pub revision: i64,
    /// Unix seconds of the last audit.
    pub audited_at: u64,
    pub tool_version: String,
    /// Opaque fingerprint of the keyring the last audit used (see [`keyring_fingerprint`]).
    pub keyring: String,
    /// Live entries per verdict class.
    #[serde(default)]
    pub summary: BTreeMap<String, u64>,
    /// The keys the backup's values need.
    #[serde(default)]
    pub keys: Vec<NeededKey>,
    /// The kube-system Namespace's UID (schema 2; `null` when unknown).
    #[serde(default)]
    pub cluster_uid: Option<String>,
    /// What kubeadm recorded, else the newest kubelet (schema 2).
    #[serde(default)]
    pub kubernetes_version: Option<String>,
    /// `taken_at.estimate`, RFC 3339 (schema 2).
    #[serde(default)]
    pub taken_at: Option<String>,
}

/// A key a backup needs: its values are encrypted under it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeededKey {
    /// `aescbc`, `aesgcm`, `secretbox` or `kms`.
    pub provider: String,
    /// The key name (for KMS, the provider name). May contain `:`.
    pub name: String,
    /// `sha256:…` of the key material, when a supplied config held it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<String>,
    /// `v1` or `v2` for KMS keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_api: Option<String>,
    /// The KMS v2 key ID.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
    /// Live entries encrypted under it.
    pub entries: u64,
    /// The audit's keyring held it (or reached its KMS plugin).
    pub available: bool,
    /// kube-apiserver with the audit's first config writes with it (schema 2).
    #[serde(default)]
    pub write_key: bool,
}

impl NeededKey {
    pub fn is(&self, provider: &str, name: &str) -> bool {
        self.provider == provider && self.name == name
    }
}

impl From<&KeyUse> for NeededKey {
    fn from(k: &KeyUse) -> Self {
        NeededKey {
            provider: k.provider.as_str().to_string(),
            name: k.name.clone(),
            fingerprint: k.fingerprint.clone(),
            kms_api: k.kms_api.map(|api| match api {
                KmsApi::V1 => "v1".to_string(),
                KmsApi::V2 => "v2".to_string(),
            }),
            key_id: k.key_id.clone(),
            entries: k.entries,
            available: k.available,
            write_key: k.write_key,
        }
    }
}

/// What a source said about the bytes when they were fetched: what an
/// incremental sweep compares before downloading or reading them again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Origin {
    /// An object in object storage.
    Object {
        /// The object's size (before any unwrapping).
        size: u64,
        e_tag: Option<String>,
        last_modified: Option<String>,
    },
    /// A local file.
    File {
        /// The file's size (before any unwrapping).
        size: u64,
        /// Modification time, nanoseconds since the Unix epoch.
        mtime_ns: Option<i64>,
    },
    /// Anything else (a data dir, a member of an archive, …): never skipped.
    Other,
}

impl From<&crate::walk::Origin> for Origin {
    fn from(origin: &crate::walk::Origin) -> Origin {
        match origin {
            crate::walk::Origin::File(meta, _) => Origin::file(meta),
            crate::walk::Origin::Object(object) => Origin::object(object),
            crate::walk::Origin::Live | crate::walk::Origin::Other => Origin::Other,
        }
    }
}

impl Origin {
    pub fn object(o: &RemoteObject) -> Origin {
        Origin::Object { size: o.size, e_tag: o.e_tag.clone(), last_modified: Some(o.last_modified.clone()) }
    }

    pub fn file(meta: &std::fs::Metadata) -> Origin {
        let mtime_ns = meta.modified().ok().and_then(|t| match t.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_nanos()).ok(),
            Err(e) => i64::try_from(e.duration().as_nanos()).ok().map(|n| -n),
        });
        Origin::File { size: meta.len(), mtime_ns }
    }

    /// Both describe the same unchanged bytes: objects by ETag and size, files
    /// by size and mtime. Without an ETag or an mtime nothing matches.
    pub fn same_as(&self, other: &Origin) -> bool {
        match (self, other) {
            (
                Origin::Object { size: a, e_tag: Some(x), .. },
                Origin::Object { size: b, e_tag: Some(y), .. },
            ) => a == b && x == y,
            (Origin::File { size: a, mtime_ns: Some(m) }, Origin::File { size: b, mtime_ns: Some(n) }) => {
                a == b && m == n
            }
            _ => false,
        }
    }
}

/// The content's identity: SHA-256 and length of the bytes that were audited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContentId {
    pub sha256: String,
    pub size: u64,
}

impl ContentId {
    pub fn of(bytes: &[u8]) -> ContentId {
        ContentId { sha256: hex::encode(Sha256::digest(bytes)), size: bytes.len() as u64 }
    }
}

/// What one audit run has in common for every backup it records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRun {
    /// [`keyring_fingerprint`] of the keys (and KMS plugins) the run used.
    pub keyring: String,
    pub tool_version: String,
    /// Unix seconds.
    pub audited_at: u64,
}

impl AuditRun {
    /// This tool's version, audited now.
    pub fn now(keyring: impl Into<String>) -> AuditRun {
        AuditRun {
            keyring: keyring.into(),
            tool_version: crate::TOOL_VERSION.to_string(),
            audited_at: now_unix(),
        }
    }

    /// The question an incremental sweep asks before fetching `source`.
    pub fn seen(&self, source: impl Into<String>, origin: Origin) -> SeenKey {
        SeenKey {
            source: source.into(),
            origin,
            sha256: None,
            keyring: self.keyring.clone(),
            tool_version: self.tool_version.clone(),
        }
    }
}

/// "Was this exact thing already audited with these keys by this version?"
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeenKey {
    pub source: String,
    /// ETag + size for an object, size + mtime for a file.
    pub origin: Origin,
    /// When set, the recorded content hash must match too.
    pub sha256: Option<String>,
    pub keyring: String,
    pub tool_version: String,
}

impl BackupRecord {
    /// The record of one scanned backup.
    pub fn from_scan(
        source: impl Into<String>,
        content: &ContentId,
        origin: Origin,
        report: &ScanReport,
        run: &AuditRun,
    ) -> BackupRecord {
        let source = source.into();
        BackupRecord {
            sources: vec![source.clone()],
            source,
            sha256: content.sha256.clone(),
            size: content.size,
            origin,
            revision: report.etcd.revision,
            audited_at: run.audited_at,
            tool_version: run.tool_version.clone(),
            keyring: run.keyring.clone(),
            summary: report.summary.0.iter().map(|(class, n)| (class.to_string(), *n)).collect(),
            keys: report.keys.iter().map(NeededKey::from).collect(),
            cluster_uid: report.cluster.as_ref().and_then(|c| c.uid.clone()),
            kubernetes_version: report.cluster.as_ref().and_then(|c| c.kubernetes_version.clone()),
            taken_at: report.taken_at.as_ref().map(|t| t.estimate.clone()),
        }
    }

    pub fn needs(&self, provider: &str, name: &str) -> bool {
        self.keys.iter().any(|k| k.is(provider, name))
    }
}

/// Per source: which content it held when last audited, and how.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Sighting {
    pub sha256: String,
    pub origin: Origin,
    pub keyring: String,
    pub tool_version: String,
    pub audited_at: u64,
}

impl Sighting {
    pub fn of(r: &BackupRecord) -> Sighting {
        Sighting {
            sha256: r.sha256.clone(),
            origin: r.origin.clone(),
            keyring: r.keyring.clone(),
            tool_version: r.tool_version.clone(),
            audited_at: r.audited_at,
        }
    }

    pub fn matches(&self, seen: &SeenKey) -> bool {
        self.keyring == seen.keyring
            && self.tool_version == seen.tool_version
            && self.origin.same_as(&seen.origin)
            && seen.sha256.as_ref().is_none_or(|h| h.eq_ignore_ascii_case(&self.sha256))
    }
}

/// An opaque fingerprint of a keyring: SHA-256 over the sorted, deduplicated
/// item strings (e.g. `aescbc:key-new:sha256:…` per key, `kms:vault:unix:///…`
/// per plugin). Order and repeats do not change it.
pub fn keyring_fingerprint<I, S>(items: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut items: Vec<String> = items.into_iter().map(|s| s.as_ref().to_string()).collect();
    items.sort();
    items.dedup();
    let mut h = Sha256::new();
    for item in &items {
        h.update((item.len() as u64).to_le_bytes());
        h.update(item.as_bytes());
    }
    format!("sha256:{}", hex::encode(h.finalize()))
}

/// [`keyring_fingerprint`] of what a judge can decrypt with: every key
/// (provider, name, material fingerprint) and every KMS plugin (API, name,
/// endpoint, `--kms` overrides included). Config order does not change it.
pub fn keyring_of(judge: &Judge) -> String {
    let keys = judge
        .keyring
        .keys()
        .iter()
        .map(|k| format!("key\t{}\t{}\t{}", k.kind.as_str(), k.name, k.fingerprint()));
    let plugins =
        judge.configs.iter().flat_map(|c| &c.rules).flat_map(|r| &r.providers).filter_map(|p| match p {
            Provider::Kms(k) => Some(format!("kms\t{:?}\t{}\t{}", k.api, k.name, k.endpoint)),
            _ => None,
        });
    let overrides = judge.kms_overrides.iter().map(|o| format!("kms-override\t{}\t{}", o.name, o.endpoint));
    keyring_fingerprint(keys.chain(plugins).chain(overrides))
}

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
