//! k3s / RKE2 bootstrap data in a backup: found by its key, matched to the
//! supplied server tokens by hash before any key derivation, opened, and
//! listed by name and fingerprint. Its EncryptionConfiguration joins the
//! keyring for that backup, so a k3s snapshot plus its token is restorable.

use serde::Serialize;

use crate::encryption::k3s::{self, Token, EMPTY_TOKEN_HASH};
use crate::encryption::EncryptionConfig;

/// `backups[].k3s`.
#[derive(Debug, Default, Serialize)]
pub struct K3sReport {
    /// Every bootstrap value found (placeholders left out), live first.
    pub bootstrap: Vec<BootstrapRecord>,
    /// Whether a supplied token opens the live bootstrap data; `null` when
    /// no token was supplied or there is no live bootstrap data.
    pub token_matches: Option<bool>,
    /// The hashes of the supplied tokens (what a token is known by).
    pub supplied_token_hashes: Vec<String>,
    /// What the snapshot's name says (`etcd-snapshot-<node>-<unix>`).
    pub snapshot: Option<SnapshotName>,
}

#[derive(Debug, Serialize)]
pub struct BootstrapRecord {
    pub etcd_key: String,
    pub token_hash: String,
    /// `live`, `history` or `wal`.
    pub found_in: &'static str,
    pub mod_revision: Option<i64>,
    pub sealed_bytes: usize,
    pub unsealed: bool,
    /// Opened with the empty passphrase: no token needed.
    pub no_token_needed: bool,
    /// The files inside, by name, with the SHA-256 of each (never the content).
    pub contents: Vec<Content>,
    /// The `EncryptionHash` stage (`start`, `reencrypt_finished`, …).
    pub encryption_stage: Option<String>,
    pub server_password: bool,
    /// Why it did not open, or why its EncryptionConfiguration was not used.
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct Content {
    pub name: String,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SnapshotName {
    pub node: String,
    pub unix_time: u64,
}

/// `etcd-snapshot-<node>-<unix>` or `on-demand-<node>-<unix>`, with any
/// extension (`.zip`) and the path left out.
pub fn snapshot_name(name: &str) -> Option<SnapshotName> {
    let base = name.rsplit(['/', '!']).next()?;
    let base = base.split('.').next()?;
    let rest = base.strip_prefix("etcd-snapshot-").or_else(|| base.strip_prefix("on-demand-"))?;
    let (node, unix) = rest.rsplit_once('-')?;
    if node.is_empty() || unix.len() < 9 {
        return None;
    }
    Some(SnapshotName { node: node.into(), unix_time: unix.parse().ok()? })
}

/// The token hash of a bootstrap key: `…/bootstrap/<12 lowercase hex>` under any prefix.
pub fn bootstrap_hash(key: &[u8]) -> Option<&str> {
    let at = key.windows(11).rposition(|w| w == b"/bootstrap/")?;
    let hash = &key[at + 11..];
    let ok = hash.len() == 12 && hash.iter().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b));
    ok.then(|| std::str::from_utf8(hash).ok()).flatten()
}

/// One bootstrap value as found in the backup.
pub struct Found<'a> {
    pub key: &'a [u8],
    pub value: &'a [u8],
    pub mod_revision: Option<i64>,
    pub found_in: &'static str,
}

/// What the backup's bootstrap data gives the audit.
pub struct Bootstrap {
    pub report: K3sReport,
    /// The live bootstrap's EncryptionConfiguration, when it opened.
    pub config: Option<EncryptionConfig>,
}

/// Opens what the tokens open (matched by hash first: no key derivation for
/// a token that cannot fit) and reports every value found.
pub fn read(found: Vec<Found>, tokens: &[Token]) -> Bootstrap {
    let mut config = None;
    let mut bootstrap = Vec::new();
    let mut token_matches = None;
    for f in found.into_iter().filter(|f| !f.value.is_empty()) {
        let Some(hash) = bootstrap_hash(f.key) else { continue };
        let passphrase = if hash == EMPTY_TOKEN_HASH {
            Some("")
        } else {
            tokens.iter().find_map(|t| t.passphrase_for(hash))
        };
        let mut record = BootstrapRecord {
            etcd_key: String::from_utf8_lossy(f.key).into_owned(),
            token_hash: hash.to_string(),
            found_in: f.found_in,
            mod_revision: f.mod_revision,
            sealed_bytes: f.value.len(),
            unsealed: false,
            no_token_needed: hash == EMPTY_TOKEN_HASH,
            contents: vec![],
            encryption_stage: None,
            server_password: false,
            error: None,
        };
        let live = f.found_in == "live";
        if live && hash != EMPTY_TOKEN_HASH && !tokens.is_empty() {
            token_matches = Some(passphrase.is_some());
        }
        if let Some(passphrase) = passphrase {
            match k3s::unseal(f.value, passphrase)
                .map_err(|e| e.to_string())
                .and_then(|plain| k3s::open(&plain).map_err(|e| e.to_string()))
            {
                Ok(opened) => {
                    record.unsealed = true;
                    record.contents = opened
                        .files
                        .iter()
                        .map(|f| Content { name: f.name.clone(), sha256: f.sha256() })
                        .collect();
                    record.encryption_stage = opened.stage;
                    record.server_password = opened.server_password;
                    match opened.config {
                        Some(Ok(c)) if live && config.is_none() => config = Some(c),
                        Some(Err(e)) => record.error = Some(format!("its EncryptionConfig is invalid: {e}")),
                        _ => {}
                    }
                }
                Err(e) => record.error = Some(e),
            }
        }
        bootstrap.push(record);
    }
    // Live first, then by where and when.
    bootstrap.sort_by_key(|b| (b.found_in != "live", b.found_in, b.mod_revision));
    let supplied_token_hashes = tokens.iter().map(Token::hash).collect();
    Bootstrap {
        report: K3sReport { bootstrap, token_matches, supplied_token_hashes, snapshot: None },
        config,
    }
}

/// Where the backup came from says which token it needs: k3s puts the hash
/// in the object's metadata (`K3s-Token-Hash`, RKE2 `Rke2-Token-Hash`). When
/// that disagrees with the backup's own bootstrap key, say so.
pub fn check_metadata(report: &mut super::ScanReport, metadata: &std::collections::BTreeMap<String, String>) {
    let Some(k3s) = &report.k3s else { return };
    let claimed = metadata.iter().find_map(|(k, v)| {
        let k = k.to_ascii_lowercase();
        (k.ends_with("k3s-token-hash") || k.ends_with("rke2-token-hash")).then(|| v.trim().to_string())
    });
    let live = k3s.bootstrap.iter().find(|b| b.found_in == "live");
    if let (Some(claimed), Some(live)) = (claimed, live) {
        if claimed != live.token_hash {
            report.findings.push(super::Finding::new(
                super::Severity::Medium,
                super::Code::K3sTokenHashMismatch,
                1,
                format!(
                    "the object's metadata names token hash {claimed}, but the backup's bootstrap data is sealed \
                     for {}: the wrong token is recorded next to this backup",
                    live.token_hash
                ),
                [live.etcd_key.clone()].into_iter(),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_keys_under_any_prefix() {
        assert_eq!(bootstrap_hash(b"/bootstrap/3eb1bd439947"), Some("3eb1bd439947"));
        assert_eq!(bootstrap_hash(b"/k3s/bootstrap/e3b0c44298fc"), Some("e3b0c44298fc"));
        assert_eq!(bootstrap_hash(b"/bootstrap/3EB1BD439947"), None);
        assert_eq!(bootstrap_hash(b"/bootstrap/3eb1bd43994"), None);
        assert_eq!(bootstrap_hash(b"/registry/secrets/bootstrap/x"), None);
    }

    #[test]
    fn snapshot_names() {
        let n = |s: &str| snapshot_name(s).map(|n| (n.node, n.unix_time));
        assert_eq!(n("etcd-snapshot-server-1-1795900000"), Some(("server-1".into(), 1795900000)));
        assert_eq!(n("s3://b/k3s/on-demand-node-a-1795900100.zip"), Some(("node-a".into(), 1795900100)));
        assert_eq!(n("x.zip!/etcd-snapshot-n-1795900000"), Some(("n".into(), 1795900000)));
        assert_eq!(n("etcd35-scan.snapshot.db"), None);
        assert_eq!(n("etcd-snapshot-1795900000"), None);
    }
}
