//! What each finding code means, for readers outside the JSON report
//! (SARIF rules, JUnit test cases, the HTML report): a title, what it says,
//! what to do, and the severity it usually has (a finding's own severity
//! wins where they differ).

use super::findings::{Code, Severity};

pub struct Rule {
    pub code: Code,
    /// Short, capitalised: a SARIF `shortDescription`.
    pub title: &'static str,
    /// What the finding says about the backup.
    pub description: &'static str,
    /// What to do about it.
    pub remediation: &'static str,
    pub severity: Severity,
    /// Grouping for code-scanning UIs.
    pub tags: &'static [&'static str],
}

const SECRETS: &[&str] = &["security", "secrets"];
const KEYS: &[&str] = &["security", "encryption-keys"];
const FORENSICS: &[&str] = &["security", "secrets", "forensics"];
const RESTORE: &[&str] = &["reliability", "disaster-recovery"];
const K3S: &[&str] = &["security", "k3s"];

impl Code {
    pub fn rule(self) -> Rule {
        use Severity::*;
        let (title, description, remediation, severity, tags) = match self {
            Code::PlaintextSecret => ("Secrets stored unencrypted", "Secrets are stored in etcd without encryption at rest: anyone holding the backup reads them.", "Configure an EncryptionConfiguration with a KMS v2 (or secretbox/aescbc) provider for secrets, then rewrite every Secret (kubectl get secrets -A -o json | kubectl replace -f -).", High, SECRETS),
            Code::PlaintextValue => ("In-scope values stored unencrypted", "Values of other in-scope resources are stored without encryption at rest.", "Add the resources to an encrypting provider list and rewrite them, or narrow the scope if they hold nothing sensitive.", Medium, SECRETS),
            Code::UnknownKey => ("Values need a key no config holds", "Some values are sealed with a key name no supplied EncryptionConfiguration holds: the backup cannot be fully restored with these keys.", "Find the config that holds the missing key (catalog can-retire/needs) and keep it with the backup until no backup needs it.", High, RESTORE),
            Code::Undecryptable => ("Values fail to decrypt with the key of their name", "A key of the right name exists, but the values do not open with it: the key was replaced under the same name, or the data is damaged.", "Recover the original key material for that name; never reuse a key name for new material.", High, RESTORE),
            Code::Malformed => ("Broken encryption envelopes", "Values carry an encryption prefix whose envelope does not parse: they cannot be read by kube-apiserver.", "Restore these keys from another backup, or delete and recreate the objects.", High, RESTORE),
            Code::KeyNotInProviderList => ("Decryptable only with a key outside the provider list", "Values decrypt only with a key the resource's provider list (first config) lacks: kube-apiserver with that config cannot read them.", "Add the key to the provider list (after the write key) until every value is rewritten.", High, RESTORE),
            Code::PlaintextUnreadable => ("Plaintext where identity is not in the provider list", "Plaintext values exist for a resource whose provider list has no identity: kube-apiserver with that config fails to read them.", "Add identity (last) to the provider list until the values are rewritten encrypted.", High, RESTORE),
            Code::Stale => ("Values not written with the current write key", "Values decrypt, but not with the key kube-apiserver writes with today: the old key must stay until they are rewritten.", "Rewrite the resources (kubectl replace) so every value uses the write key, then retire the old key.", Low, KEYS),
            Code::Integrity => ("Backup integrity errors", "The SHA-256 trailer, a meta page or the bbolt structure does not check: the backup may not restore.", "Take a new backup; do not rely on this one for restore.", High, RESTORE),
            Code::HistoryPlaintext => ("Plaintext in MVCC history", "Older revisions still in MVCC history are plaintext, although the live value may be encrypted.", "Compact and defragment etcd after enabling encryption, then take a new backup and destroy the old ones.", High, FORENSICS),
            Code::DeletedPlaintextInHistory => ("Deleted Secrets readable in history", "Plaintext revisions of deleted keys are still in MVCC history.", "Compact and defragment, take a new backup, and rotate the credentials those Secrets held.", High, FORENSICS),
            Code::ConfigsDisagree => ("Control-plane configs disagree", "The supplied EncryptionConfigurations differ in a way that changes what each node can read or writes.", "Make every control-plane node's EncryptionConfiguration identical.", Medium, KEYS),
            Code::ResiduePlaintext => ("Plaintext in free pages", "Plaintext revisions survive in bbolt pages the tree no longer reaches (after compaction).", "Defragment etcd (etcdctl defrag) before taking backups, and destroy backups taken before.", High, FORENSICS),
            Code::WalPlaintext => ("Plaintext in the write-ahead log", "Plaintext puts are in the WAL of the data dir.", "Do not copy member/wal into backups; once encryption is on, let etcd purge old WAL segments.", High, FORENSICS),
            Code::KmsPluginUnavailable => ("KMS plugin unavailable", "A KMS plugin could not be reached or refused: its values could not be checked.", "Check the plugin endpoint (--kms NAME=unix:///path) and its health.", High, RESTORE),
            Code::BootstrapKeysInBackup => ("k3s bootstrap keys inside the backup", "The backup carries k3s/RKE2 bootstrap data (CA keys, the EncryptionConfiguration) sealed with the server token.", "Protect the server token like the keys; keep it apart from the backups.", Medium, K3S),
            Code::BootstrapUnsealed => ("k3s bootstrap data opens without a token", "The bootstrap data is sealed with the empty passphrase: the backup holds its own keys in the clear.", "Set a server token (k3s --token) and rotate the bootstrap keys and every key it held.", Critical, K3S),
            Code::K3sTokenMismatch => ("The supplied k3s token does not open the bootstrap data", "None of the supplied server tokens opens this backup's bootstrap data: it cannot be restored with them.", "Find the server token of the cluster that took the backup and keep it with the backup.", High, K3S),
            Code::K3sTokenHashMismatch => ("Object metadata names another token", "The object's metadata records a token hash other than the one the bootstrap data is sealed for.", "Fix the metadata of the backup, or find the right token.", Medium, K3S),
            Code::K3sRotationInProgress => ("k3s key rotation in progress", "The bootstrap's encryption stage says a key rotation was in progress when the backup was taken.", "Finish the rotation (k3s secrets-encrypt reencrypt) and take a new backup.", Medium, K3S),
            Code::K3sServerPasswordExposed => ("k3s server password in the bootstrap data", "The bootstrap data holds the server password file: whoever opens it can join servers.", "Rotate the server token and password.", High, K3S),
            Code::PublicKey => ("Key printed in the Kubernetes documentation", "An encryption key is one the Kubernetes documentation publishes: anyone can decrypt what it sealed.", "Generate a random key (head -c 32 /dev/urandom | base64), add it first, rewrite all Secrets, remove the published key.", Critical, KEYS),
            Code::WeakKey => ("Weak encryption key", "A key is all printable ASCII or repetitive: a passphrase or an undecoded base64 string, not random bytes.", "Replace it with 32 random bytes and rewrite the resources.", High, KEYS),
            Code::KeyReused => ("One key under two names", "The same key material is configured under two names.", "Give each key its own random material.", High, KEYS),
            Code::GcmNonceReuse => ("AES-GCM nonce reused", "Two different ciphertexts share one key and nonce: their XOR and the GCM authentication key leak.", "Rotate the key at once and rewrite every value it sealed.", Critical, KEYS),
            Code::GcmWriteBudget => ("AES-GCM key near its write budget", "An aesgcm key sealed about 200,000 values: random nonces start to risk collisions.", "Rotate the aesgcm key, or move to KMS v2 or secretbox.", Medium, KEYS),
            Code::IdentityFirst => ("identity is the first provider", "A resource list has identity first: kube-apiserver writes those resources in plaintext.", "Move identity last (keep it only while plaintext data remains), then rewrite the resources.", High, KEYS),
            Code::KmsV1 => ("KMS v1 provider", "KMS v1 is deprecated since Kubernetes 1.28 and off by default since 1.29.", "Migrate to a KMS v2 plugin (apiVersion: v2) and rewrite all Secrets.", Medium, KEYS),
            Code::AescbcInUse => ("aescbc in use", "The docs no longer recommend aescbc (padding-oracle prone, no authentication).", "Prefer a KMS v2 provider, or secretbox, for new writes.", Low, KEYS),
            Code::NonCisProvider => ("Provider the CIS benchmark does not accept", "aesgcm is not among the CIS benchmark's providers (aescbc, kms, secretbox) and needs rotation every 200,000 writes.", "Use a KMS v2 provider or secretbox instead of aesgcm.", Low, KEYS),
            Code::SecretNotCovered => ("Secrets not covered by the config", "No resource list names secrets: Secrets are written in plaintext.", "Add secrets to the resources of an encrypting provider list.", High, KEYS),
            Code::RestoreQuota => ("Database over etcd's default quota", "The database is larger than etcd's default 2 GiB backend quota: a restored member raises NOSPACE.", "Start restored members with --quota-backend-bytes above the database size, or defragment first.", Medium, RESTORE),
            Code::BackupTooOld => ("Backup too old", "The backup (or a cluster's newest backup) was taken longer ago than --max-age.", "Check the backup job; a restore from it would lose everything since.", Medium, RESTORE),
            Code::BackupGap => ("Gap between backups", "Two consecutive backups of a cluster are further apart than --expect-every.", "Check the backup schedule and its failures in that interval.", Medium, RESTORE),
            Code::RestoreMixedVersions => ("Backups span Kubernetes versions", "A cluster's backups span several Kubernetes minor versions: a restore may need the older control plane.", "Record the Kubernetes version with each backup and restore with the matching version.", Low, RESTORE),
            Code::KeySharedAcrossClusters => ("One key in several clusters", "The same key fingerprint appears in backups of different clusters: one leak opens them all.", "Give each cluster its own keys; rotate the shared one.", High, KEYS),
            Code::TakenAtDisagrees => ("Backup time disagrees", "The snapshot name or the object's Last-Modified is more than 10 minutes from the time the backup's content says.", "Check that the backup is the one its name claims.", Low, RESTORE),
            Code::KeyRotationOverdue => ("Key rotation overdue", "A write key has been in use in the cluster's backups longer than --rotate-every.", "Add a new key first, rewrite all Secrets, then retire the old key once no backup needs it.", Medium, KEYS),
        };
        Rule { code: self, title, description, remediation, severity, tags }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_rule_of_its_own() {
        let titles: std::collections::BTreeSet<&str> = Code::ALL.iter().map(|c| c.rule().title).collect();
        assert_eq!(titles.len(), Code::ALL.len(), "each title once");
        for code in Code::ALL {
            let r = code.rule();
            assert_eq!(r.code, code);
            assert!(r.description.ends_with('.') && r.remediation.ends_with('.'), "{code}");
        }
    }
}
