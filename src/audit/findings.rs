//! Findings: what a reader of the report must act on, aggregated per code.

use serde::Serialize;

use super::hygiene::NonceLedger;
use super::k3s::K3sReport;
use super::pairing::KeyUse;
use super::record::{EntryRecord, HistoryRecord, ResidueRecord, WalRecord};
use super::verdict::{Class, Judge, Verdict};
use super::Integrity;

const MAX_EXAMPLES: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
}

/// A finding's stable identifier: the JSON `code`, a `--fail-on` token
/// where one exists, and (later) SARIF rule ids and metric labels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Code {
    PlaintextSecret,
    PlaintextValue,
    UnknownKey,
    Undecryptable,
    Malformed,
    KeyNotInProviderList,
    PlaintextUnreadable,
    Stale,
    Integrity,
    HistoryPlaintext,
    DeletedPlaintextInHistory,
    ConfigsDisagree,
    ResiduePlaintext,
    WalPlaintext,
    KmsPluginUnavailable,
    BootstrapKeysInBackup,
    BootstrapUnsealed,
    K3sTokenMismatch,
    K3sTokenHashMismatch,
    K3sRotationInProgress,
    K3sServerPasswordExposed,
    PublicKey,
    WeakKey,
    KeyReused,
    GcmNonceReuse,
    GcmWriteBudget,
    IdentityFirst,
    KmsV1,
    AescbcInUse,
    NonCisProvider,
    SecretNotCovered,
    RestoreQuota,
    BackupTooOld,
    BackupGap,
    RestoreMixedVersions,
    KeySharedAcrossClusters,
    TakenAtDisagrees,
    KeyRotationOverdue,
}

impl Code {
    pub const ALL: [Code; 38] = [
        Code::PlaintextSecret,
        Code::PlaintextValue,
        Code::UnknownKey,
        Code::Undecryptable,
        Code::Malformed,
        Code::KeyNotInProviderList,
        Code::PlaintextUnreadable,
        Code::Stale,
        Code::Integrity,
        Code::HistoryPlaintext,
        Code::DeletedPlaintextInHistory,
        Code::ConfigsDisagree,
        Code::ResiduePlaintext,
        Code::WalPlaintext,
        Code::KmsPluginUnavailable,
        Code::BootstrapKeysInBackup,
        Code::BootstrapUnsealed,
        Code::K3sTokenMismatch,
        Code::K3sTokenHashMismatch,
        Code::K3sRotationInProgress,
        Code::K3sServerPasswordExposed,
        Code::PublicKey,
        Code::WeakKey,
        Code::KeyReused,
        Code::GcmNonceReuse,
        Code::GcmWriteBudget,
        Code::IdentityFirst,
        Code::KmsV1,
        Code::AescbcInUse,
        Code::NonCisProvider,
        Code::SecretNotCovered,
        Code::RestoreQuota,
        Code::BackupTooOld,
        Code::BackupGap,
        Code::RestoreMixedVersions,
        Code::KeySharedAcrossClusters,
        Code::TakenAtDisagrees,
        Code::KeyRotationOverdue,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Code::PlaintextSecret => "plaintext-secret",
            Code::PlaintextValue => "plaintext-value",
            Code::UnknownKey => "unknown-key",
            Code::Undecryptable => "undecryptable",
            Code::Malformed => "malformed",
            Code::KeyNotInProviderList => "key-not-in-provider-list",
            Code::PlaintextUnreadable => "plaintext-unreadable",
            Code::Stale => "stale",
            Code::Integrity => "integrity",
            Code::HistoryPlaintext => "history-plaintext",
            Code::DeletedPlaintextInHistory => "deleted-plaintext-in-history",
            Code::ConfigsDisagree => "configs-disagree",
            Code::ResiduePlaintext => "residue-plaintext",
            Code::WalPlaintext => "wal-plaintext",
            Code::KmsPluginUnavailable => "kms-plugin-unavailable",
            Code::BootstrapKeysInBackup => "bootstrap-keys-in-backup",
            Code::BootstrapUnsealed => "bootstrap-unsealed",
            Code::K3sTokenMismatch => "k3s-token-mismatch",
            Code::K3sTokenHashMismatch => "k3s-token-hash-mismatch",
            Code::K3sRotationInProgress => "k3s-rotation-in-progress",
            Code::K3sServerPasswordExposed => "k3s-server-password-exposed",
            Code::PublicKey => "public-key",
            Code::WeakKey => "weak-key",
            Code::KeyReused => "key-reused",
            Code::GcmNonceReuse => "gcm-nonce-reuse",
            Code::GcmWriteBudget => "gcm-write-budget",
            Code::IdentityFirst => "identity-first",
            Code::KmsV1 => "kms-v1",
            Code::AescbcInUse => "aescbc-in-use",
            Code::NonCisProvider => "non-cis-provider",
            Code::SecretNotCovered => "secret-not-covered",
            Code::RestoreQuota => "restore-quota",
            Code::BackupTooOld => "backup-too-old",
            Code::BackupGap => "backup-gap",
            Code::RestoreMixedVersions => "restore-mixed-versions",
            Code::KeySharedAcrossClusters => "key-shared-across-clusters",
            Code::TakenAtDisagrees => "taken-at-disagrees",
            Code::KeyRotationOverdue => "key-rotation-overdue",
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub severity: Severity,
    pub code: Code,
    pub count: u64,
    pub message: String,
    pub examples: Vec<String>,
    /// Every occurrence, where one finding stands for several (e.g. each
    /// group of values sharing a nonce).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<serde_json::Value>,
    /// Where the rule comes from (CIS id, documentation page).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// What to do, in one sentence.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remediation: Option<&'static str>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Reference {
    pub title: &'static str,
    pub url: &'static str,
}

impl Finding {
    /// A finding with at most ten examples.
    pub fn new(
        severity: Severity,
        code: Code,
        count: u64,
        message: String,
        examples: impl Iterator<Item = String>,
    ) -> Finding {
        let examples = examples.take(MAX_EXAMPLES).collect();
        Finding {
            severity,
            code,
            count,
            message,
            examples,
            details: vec![],
            references: vec![],
            remediation: None,
        }
    }
}

/// A rule: which entries it counts, and what it tells the reader.
struct Rule {
    severity: Severity,
    code: Code,
    matches: fn(&EntryRecord) -> bool,
    message: fn(u64) -> String,
}

const ENTRY_RULES: &[Rule] = &[
    Rule {
        severity: Severity::High,
        code: Code::PlaintextSecret,
        matches: |e| e.verdict.class == Class::Plaintext && e.at.resource == "secrets",
        message: |n| format!("{n} Secrets are stored unencrypted: anyone holding this file can read them"),
    },
    Rule {
        severity: Severity::Medium,
        code: Code::PlaintextValue,
        matches: |e| e.verdict.class == Class::Plaintext && e.at.resource != "secrets",
        message: |n| format!("{n} in-scope values of other resources are stored unencrypted"),
    },
    Rule {
        severity: Severity::High,
        code: Code::UnknownKey,
        matches: |e| e.verdict.class == Class::UnknownKey,
        message: |n| {
            format!("{n} values need a key no supplied config holds: this backup cannot be fully restored with these keys")
        },
    },
    Rule {
        severity: Severity::High,
        code: Code::Undecryptable,
        matches: |e| e.verdict.class == Class::Undecryptable,
        message: |n| {
            format!("{n} values do not decrypt with the key of their name (wrong key material, a copied value, or corruption)")
        },
    },
    Rule {
        severity: Severity::High,
        code: Code::Malformed,
        matches: |e| e.verdict.class == Class::Malformed,
        message: |n| format!("{n} values carry a broken k8s:enc: envelope"),
    },
    Rule {
        severity: Severity::High,
        code: Code::KeyNotInProviderList,
        matches: |e| e.verdict.outside_provider_list,
        message: |n| {
            format!("{n} values decrypt only with a key missing from the resource's provider list in the first config: kube-apiserver with that config cannot read them")
        },
    },
    Rule {
        severity: Severity::High,
        code: Code::PlaintextUnreadable,
        matches: |e| e.verdict.plaintext_unreadable,
        message: |n| {
            format!("{n} plaintext values under a provider list without identity: kube-apiserver with the first config cannot read them")
        },
    },
    Rule {
        severity: Severity::Low,
        code: Code::Stale,
        matches: |e| e.verdict.stale == Some(true),
        message: |n| {
            format!("{n} values are not encrypted with the current write key: rewrite them before retiring old keys")
        },
    },
];

/// How many live entries each entry rule matched, with the first examples
/// (in the order entries are tallied: key order).
pub(super) struct RuleHits([(u64, Vec<String>); ENTRY_RULES.len()]);

impl Default for RuleHits {
    fn default() -> Self {
        RuleHits(std::array::from_fn(|_| (0, Vec::new())))
    }
}

impl RuleHits {
    pub(super) fn add(&mut self, entry: &EntryRecord) {
        for (rule, (count, examples)) in ENTRY_RULES.iter().zip(&mut self.0) {
            if (rule.matches)(entry) {
                *count += 1;
                if examples.len() < MAX_EXAMPLES {
                    examples.push(entry.at.key.clone());
                }
            }
        }
    }

    fn findings(self) -> impl Iterator<Item = Finding> {
        ENTRY_RULES.iter().zip(self.0).filter(|(_, (n, _))| *n > 0).map(|(rule, (n, examples))| {
            Finding::new(rule.severity, rule.code, n, (rule.message)(n), examples.into_iter())
        })
    }
}

/// Everything one backup's findings are drawn from.
pub struct Facts<'a> {
    pub integrity: &'a Integrity,
    /// The bbolt size (high-water mark), when the backup has pages.
    pub db_size: Option<u64>,
    /// The live entries, tallied as they were judged.
    pub(super) rules: RuleHits,
    /// The seals of the live entries and history; residue and WAL are added here.
    pub(super) nonces: NonceLedger,
    /// Older revisions (`--history`), tallied as they were judged.
    pub(super) history: Option<HistoryHits>,
    pub residue: Option<&'a [ResidueRecord]>,
    pub wal: Option<&'a [WalRecord]>,
    pub keys: &'a [KeyUse],
    pub k3s: Option<&'a K3sReport>,
}

pub fn findings(facts: Facts, judge: &Judge) -> Vec<Finding> {
    let Facts { integrity, db_size, rules, mut nonces, history, residue, wal, keys, k3s } = facts;
    let mut out = Vec::new();
    out.extend(db_size.and_then(quota_finding));
    if !integrity.ok {
        out.push(integrity_finding(integrity));
    }
    out.extend(rules.findings());
    out.extend(history.into_iter().flat_map(HistoryHits::findings));
    out.extend(exposure_findings(residue, wal));
    out.extend(kms_plugin_finding(keys));
    out.extend(super::hygiene::key_and_config_findings(judge));
    for r in residue.unwrap_or(&[]) {
        if let Some(v) = &r.verdict {
            nonces.add(v, || format!("{}@{}", r.at.key, r.mod_revision));
        }
    }
    for w in wal.unwrap_or(&[]) {
        nonces.add(&w.verdict, || format!("{} (WAL index {})", w.at.key, w.raft_index));
    }
    out.extend(nonces.findings());
    out.extend(k3s.map(k3s_findings).unwrap_or_default());
    out.extend(judge_findings(judge));
    out.sort_by(|a, b| {
        (a.severity, std::cmp::Reverse(a.count)).cmp(&(b.severity, std::cmp::Reverse(b.count)))
    });
    out
}

fn integrity_finding(i: &Integrity) -> Finding {
    let mut problems: Vec<String> = Vec::new();
    if i.sha256_trailer == crate::container::Trailer::Mismatch {
        problems.push("the SHA-256 trailer does not match the file: it was altered or torn".into());
    }
    if i.salvaged {
        problems
            .push("the file does not open as bbolt: entries were carved from leaf pages (--salvage)".into());
    }
    for m in i.meta.iter().filter(|m| !m.valid) {
        problems.push(format!("meta page {} is invalid: {}", m.page, m.error.as_deref().unwrap_or("?")));
    }
    let n = problems.len() as u64 + i.bbolt_errors_total;
    problems.extend(i.bbolt_errors.iter().cloned());
    Finding::new(
        Severity::High,
        Code::Integrity,
        n,
        format!("{n} integrity problems: restore may fail or lose data"),
        problems.into_iter(),
    )
}

fn is_plain(v: Option<&Verdict>) -> bool {
    v.is_some_and(|v| v.class == Class::Plaintext)
}

/// One high-severity finding for the plaintext among `rows`, if any.
fn plaintext_finding<R>(
    rows: &[&R],
    code: Code,
    message: fn(u64) -> String,
    example: impl Fn(&R) -> String,
) -> Option<Finding> {
    let n = rows.len() as u64;
    (n > 0).then(|| Finding::new(Severity::High, code, n, message(n), rows.iter().map(|r| example(r))))
}

/// Plaintext among older revisions, of keys still there and of deleted
/// ones: counts and first examples, tallied record by record.
#[derive(Default)]
pub(super) struct HistoryHits {
    kept: (u64, Vec<String>),
    deleted: (u64, Vec<String>),
}

impl HistoryHits {
    pub(super) fn add(&mut self, h: &HistoryRecord) {
        if is_plain(h.verdict.as_ref()) {
            let (count, examples) = if h.deleted { &mut self.deleted } else { &mut self.kept };
            *count += 1;
            if examples.len() < MAX_EXAMPLES {
                examples.push(format!("{}@{}", h.at.key, h.mod_revision));
            }
        }
    }

    fn findings(self) -> impl Iterator<Item = Finding> {
        let found = [
            (
                Code::HistoryPlaintext,
                self.kept,
                "older revisions in MVCC history are plaintext: compact and defragment, then take a new backup",
            ),
            (Code::DeletedPlaintextInHistory, self.deleted, "plaintext revisions of deleted keys are still in history"),
        ];
        found.into_iter().filter(|(_, (n, _), _)| *n > 0).map(|(code, (n, examples), what)| {
            Finding::new(Severity::High, code, n, format!("{n} {what}"), examples.into_iter())
        })
    }
}

/// etcd's default backend quota: a larger database restores, but the member
/// raises the NOSPACE alarm and refuses writes until the quota is raised.
pub const DEFAULT_QUOTA: u64 = 2 << 30;

fn quota_finding(size: u64) -> Option<Finding> {
    (size > DEFAULT_QUOTA).then(|| {
        let mib = size.div_ceil(1 << 20);
        let mut f = Finding::new(
            Severity::Medium,
            Code::RestoreQuota,
            1,
            format!(
                "the database is {mib} MiB, over etcd's default 2 GiB backend quota: `etcdutl snapshot restore` works, \
                 but the member alarms NOSPACE and refuses writes unless --quota-backend-bytes is at least {size}"
            ),
            std::iter::empty(),
        );
        f.remediation = Some("Start the restored members with --quota-backend-bytes above the database size (8 GiB at most is recommended), or defragment first.");
        f
    })
}

fn judge_findings(judge: &Judge) -> Vec<Finding> {
    let diffs = crate::audit::configs::breaking_differences(&judge.configs);
    if diffs.is_empty() {
        return vec![];
    }
    let n = diffs.len() as u64;
    vec![Finding::new(
        Severity::Medium,
        Code::ConfigsDisagree,
        n,
        format!("{n} differences between the supplied configs would break reads on some control-plane node (see `etcd-audit configs`)"),
        diffs.into_iter(),
    )]
}

/// Plaintext an attacker can read outside the tree: free pages and the WAL.
fn exposure_findings(residue: Option<&[ResidueRecord]>, wal: Option<&[WalRecord]>) -> Vec<Finding> {
    let residue: Vec<&ResidueRecord> =
        residue.unwrap_or(&[]).iter().filter(|r| is_plain(r.verdict.as_ref())).collect();
    let wal: Vec<&WalRecord> = wal.unwrap_or(&[]).iter().filter(|r| is_plain(Some(&r.verdict))).collect();
    let residue = plaintext_finding(
        &residue,
        Code::ResiduePlaintext,
        |n| {
            format!("{n} plaintext revisions are recoverable from free pages: defragment (etcdctl defrag) every member, then re-take the backup and destroy this one")
        },
        |r| format!("{}@{} (page {})", r.at.key, r.mod_revision, r.page),
    );
    let wal = plaintext_finding(
        &wal,
        Code::WalPlaintext,
        |n| {
            format!("{n} plaintext puts are in the write-ahead log: treat every copy of this data dir as holding those secrets")
        },
        |r| format!("{} ({} index {})", r.at.key, r.wal_file, r.raft_index),
    );
    residue.into_iter().chain(wal).collect()
}

/// KMS plugins that could not be used: their values stay unknown-key (or,
/// when only unhealthy, decrypt but would not on a real apiserver).
fn kms_plugin_finding(keys: &[KeyUse]) -> Option<Finding> {
    let broken: Vec<String> = keys
        .iter()
        .filter_map(|k| {
            let plugin = k.plugin.as_ref()?;
            Some(format!("{} ({}): {}", k.name, plugin.endpoint, plugin.error.as_deref()?))
        })
        .collect();
    let n = broken.len() as u64;
    (n > 0).then(|| {
        Finding::new(
            Severity::High,
            Code::KmsPluginUnavailable,
            n,
            format!("{n} KMS key rows need a plugin that is unreachable, unhealthy or refused: check the socket (--kms NAME=unix:///path) and the plugin's KEK"),
            broken.into_iter(),
        )
    })
}

/// What k3s/RKE2 bootstrap data in the backup means for whoever holds it.
fn k3s_findings(k3s: &K3sReport) -> Vec<Finding> {
    let mut out = Vec::new();
    let all: Vec<_> = k3s.bootstrap.iter().collect();
    let opened: Vec<_> = all.iter().filter(|b| b.unsealed).collect();
    let example = |b: &&&super::k3s::BootstrapRecord| format!("{} ({})", b.etcd_key, b.found_in);
    if !all.is_empty() {
        let (severity, message) = if opened.is_empty() {
            (
                Severity::High,
                "k3s/RKE2 bootstrap data is in this backup: the cluster CA private keys, the service-account \
                 signing key, the server password and the secrets encryption keys, sealed only by the server \
                 token. Whoever holds this file and the token can read every Secret and mint cluster-admin \
                 credentials: keep the token away from the backups, rotate it (k3s token rotate) if both leaked"
                    .to_string(),
            )
        } else {
            (
                Severity::Critical,
                "k3s/RKE2 bootstrap data in this backup was opened: it holds the cluster CA private keys \
                 (cluster-admin credentials can be minted from them), the service-account signing key and \
                 the keys that decrypt every Secret here"
                    .to_string(),
            )
        };
        let n = all.len() as u64;
        out.push(Finding::new(
            severity,
            Code::BootstrapKeysInBackup,
            n,
            message,
            all.iter().map(|b| example(&b)),
        ));
    }
    let no_token: Vec<_> = opened.iter().filter(|b| b.no_token_needed).collect();
    if !no_token.is_empty() {
        out.push(Finding::new(
            Severity::Critical,
            Code::BootstrapUnsealed,
            no_token.len() as u64,
            "bootstrap data sealed with the empty passphrase: anyone holding this file opens it without a \
             token, and with it every Secret"
                .into(),
            no_token.iter().map(|b| example(b)),
        ));
    }
    if k3s.token_matches == Some(false) {
        let live: Vec<_> = all.iter().filter(|b| b.found_in == "live").collect();
        let hashes: Vec<String> = live.iter().map(|b| b.token_hash.clone()).collect();
        out.push(Finding::new(
            Severity::High,
            Code::K3sTokenMismatch,
            live.len() as u64,
            format!(
                "no supplied --k3s-token opens this backup's bootstrap data: it needs the token with hash {}, \
                 the tokens given have {}; its Secrets stay unknown-key, and restoring it needs that token",
                hashes.join(", "),
                k3s.supplied_token_hashes.join(", ")
            ),
            live.iter().map(&example),
        ));
    }
    let rotating: Vec<_> = opened
        .iter()
        .filter(|b| b.found_in == "live")
        .filter(|b| b.encryption_stage.as_deref().is_some_and(|s| s != "start" && s != "reencrypt_finished"))
        .collect();
    if !rotating.is_empty() {
        let stage = rotating[0].encryption_stage.clone().unwrap_or_default();
        out.push(Finding::new(
            Severity::Medium,
            Code::K3sRotationInProgress,
            rotating.len() as u64,
            format!("the backup was taken during a secrets-encryption key rotation (stage {stage}): Secrets may be under either key"),
            rotating.iter().map(|b| example(b)),
        ));
    }
    let passwords: Vec<_> = opened.iter().filter(|b| b.server_password).collect();
    if !passwords.is_empty() {
        out.push(Finding::new(
            Severity::High,
            Code::K3sServerPasswordExposed,
            passwords.len() as u64,
            "the server password (the token's password) is in the opened bootstrap data: treat the token as \
             leaked with this backup"
                .into(),
            passwords.iter().map(|b| example(b)),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_they_print() {
        for code in Code::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
