//! Breach impact: which objects whoever holds a backup can read, under a
//! stated model of what else they hold; one row per object (not per
//! revision), with every place and revision it can be read from, ranked by
//! what rotating it is worth. A model's reading of a backup is an ordinary
//! scan with only the keys that model grants (history, residue and the WAL
//! included); this module turns such scans into rows.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::risk::{self, Rank, Risk};
use super::{Class, Judge, KmsOverride, Location, ScanOptions, ScanReport, Verdict};
use crate::encryption::hygiene::KnownKeys;
use crate::encryption::EncryptionConfig;
use crate::k8s::ObjectInfo;

/// What the holder of a backup has besides the file. Each model grants what
/// the one before it does, and more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Model {
    /// The file(s) only: plaintext anywhere in them, values under a key the
    /// documentation publishes, and what a k3s bootstrap sealed with the
    /// empty passphrase opens.
    Backup,
    /// Also the k3s/RKE2 server token.
    BackupToken,
    /// Also the EncryptionConfigurations (the control plane leaked too).
    BackupKeys,
    /// Also a reachable KMS: the configs' KMS plugins decrypt.
    BackupKeysKms,
}

impl Model {
    pub const ALL: [Model; 4] = [Model::Backup, Model::BackupToken, Model::BackupKeys, Model::BackupKeysKms];

    pub fn as_str(self) -> &'static str {
        match self {
            Model::Backup => "backup",
            Model::BackupToken => "backup+token",
            Model::BackupKeys => "backup+keys",
            Model::BackupKeysKms => "backup+keys+kms",
        }
    }

    /// Whether the holder has the k3s/RKE2 server token.
    pub fn has_token(self) -> bool {
        self >= Model::BackupToken
    }

    /// Whether the holder has every key of the supplied configs.
    pub fn has_keys(self) -> bool {
        self >= Model::BackupKeys
    }

    /// Whether the holder can ask the KMS to decrypt.
    pub fn has_kms(self) -> bool {
        self == Model::BackupKeysKms
    }
}

impl std::fmt::Display for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Model {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("expected one of backup, backup+token, backup+keys, backup+keys+kms; got {0:?}")]
pub struct ModelError(String);

impl std::str::FromStr for Model {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Model::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| ModelError(s.into()))
    }
}

/// The assumed model lacks what it assumes the holder has.
#[derive(Debug, thiserror::Error)]
#[error("--assume {model} needs {needs}")]
pub struct NeedsInput {
    pub model: Model,
    pub needs: &'static str,
}

/// What the holder may have: the assumed model and every key supplied.
pub struct Plan<'p> {
    pub assume: Model,
    pub configs: &'p [EncryptionConfig],
    /// Keys known to be public: under every model.
    pub known_keys: &'p KnownKeys,
    /// `--kms` overrides: only under a model that reaches the KMS.
    pub kms: &'p [KmsOverride],
}

/// One reading of every backup: a model, a judge holding only the keys that
/// model grants, and scan options reading history and residue (and the k3s
/// tokens only where granted).
pub struct ModelReading {
    pub model: Model,
    pub judge: Judge,
    pub options: ScanOptions,
}

impl Plan<'_> {
    /// A reading per model the inputs can tell apart, weakest first: always
    /// `backup`; `backup+token` with a token; `backup+keys` with a config (so
    /// the summary can say what a leaked config adds); `backup+keys+kms` only
    /// when assumed (a KMS is asked only then).
    pub fn readings(&self, base: &ScanOptions) -> Result<Vec<ModelReading>, NeedsInput> {
        let tokens = !base.k3s_tokens.is_empty();
        let needs = |needs| Err(NeedsInput { model: self.assume, needs });
        match self.assume {
            Model::BackupToken if !tokens => return needs("--k3s-token"),
            m if m.has_keys() && self.configs.is_empty() && self.kms.is_empty() => return needs("-c CONFIG"),
            _ => {}
        }
        let evaluated = Model::ALL.into_iter().filter(|&m| match m {
            Model::Backup => true,
            Model::BackupToken => tokens,
            Model::BackupKeys => !self.configs.is_empty(),
            Model::BackupKeysKms => self.assume.has_kms(),
        });
        Ok(evaluated
            .map(|model| {
                let granted =
                    |k: &crate::encryption::Key| model.has_keys() || self.known_keys.contains(&k.secret);
                let configs = self.configs.iter().map(|c| c.restricted(granted, model.has_kms())).collect();
                let kms = if model.has_kms() { self.kms.to_vec() } else { vec![] };
                let judge = Judge::new(configs, kms).with_known_keys(self.known_keys.clone());
                let k3s_tokens = if model.has_token() { base.k3s_tokens.clone() } else { Default::default() };
                let options = ScanOptions {
                    history: true,
                    residue: true,
                    keep_entries: true,
                    k3s_tokens,
                    ..base.clone()
                };
                ModelReading { model, judge, options }
            })
            .collect())
    }
}

/// Where in a backup a value can be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    Live,
    History,
    Residue,
    Wal,
}

impl Place {
    pub fn as_str(self) -> &'static str {
        match self {
            Place::Live => "live",
            Place::History => "history",
            Place::Residue => "residue",
            Place::Wal => "wal",
        }
    }
}

/// Where one object can be read in one backup: revisions (live, MVCC
/// history, carved from free pages) and raft indexes of WAL puts.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Places {
    pub live_revisions: BTreeSet<i64>,
    pub history_revisions: BTreeSet<i64>,
    pub residue_revisions: BTreeSet<i64>,
    pub wal_raft_indexes: BTreeSet<u64>,
}

impl Places {
    pub fn places(&self) -> impl Iterator<Item = Place> + '_ {
        [
            (Place::Live, self.live_revisions.is_empty()),
            (Place::History, self.history_revisions.is_empty()),
            (Place::Residue, self.residue_revisions.is_empty()),
            (Place::Wal, self.wal_raft_indexes.is_empty()),
        ]
        .into_iter()
        .filter_map(|(p, empty)| (!empty).then_some(p))
    }
}

/// One object one backup gives away under one model.
#[derive(Clone, Debug)]
struct Sighting {
    at: Location,
    secret_type: Option<String>,
    data_keys: BTreeSet<String>,
    places: Places,
}

/// What one backup, read under one model, lets its holder read.
#[derive(Debug, Default)]
pub struct Readable {
    /// By etcd key.
    objects: BTreeMap<String, Sighting>,
    /// Every in-scope key live in the backup, readable or not.
    live: BTreeSet<String>,
    /// Every Secret key anywhere in the backup, readable or not.
    secrets_seen: BTreeSet<String>,
}

/// A record of a scan report, as spooled (only what this module reads).
#[derive(Deserialize)]
struct Spooled {
    #[serde(flatten)]
    at: Location,
    mod_revision: Option<i64>,
    class: Option<Class>,
    object: Option<ObjectInfo>,
    #[serde(default)]
    tombstone: bool,
}

fn readable(class: Option<Class>) -> bool {
    matches!(class, Some(Class::Plaintext | Class::Decryptable))
}

fn is_secret(at: &Location) -> bool {
    at.resource == "secrets"
}

impl Readable {
    /// What a scan (with history and residue, and the WAL when the backup
    /// has one) found readable. The report must have kept its entries.
    pub fn of(report: &ScanReport) -> std::io::Result<Readable> {
        let mut r = Readable::default();
        report.entries.read(|s: Spooled| {
            r.live.insert(s.at.key.clone());
            r.note(s, |p, rev| p.live_revisions.insert(rev));
        })?;
        if let Some(history) = &report.history {
            history.read(|s: Spooled| r.note(s, |p, rev| p.history_revisions.insert(rev)))?;
        }
        for x in report.residue.iter().flatten() {
            r.sighting(&x.at, x.verdict.as_ref(), |p| p.residue_revisions.insert(x.mod_revision));
        }
        for x in report.wal.iter().flatten() {
            r.sighting(&x.at, Some(&x.verdict), |p| p.wal_raft_indexes.insert(x.raft_index));
        }
        Ok(r)
    }

    fn note(&mut self, s: Spooled, place: impl FnOnce(&mut Places, i64) -> bool) {
        if is_secret(&s.at) {
            self.secrets_seen.insert(s.at.key.clone());
        }
        if s.tombstone || !readable(s.class) {
            return;
        }
        let Some(rev) = s.mod_revision else { return };
        let seen = self.objects.entry(s.at.key.clone()).or_insert_with(|| Sighting::new(s.at));
        seen.learn(s.object.as_ref());
        place(&mut seen.places, rev);
    }

    fn sighting(
        &mut self,
        at: &Location,
        verdict: Option<&Verdict>,
        place: impl FnOnce(&mut Places) -> bool,
    ) {
        if is_secret(at) {
            self.secrets_seen.insert(at.key.clone());
        }
        let Some(verdict) = verdict.filter(|v| readable(Some(v.class))) else { return };
        let seen = self.objects.entry(at.key.clone()).or_insert_with(|| Sighting::new(at.clone()));
        seen.learn(verdict.object.as_deref());
        place(&mut seen.places);
    }
}

impl Sighting {
    fn new(at: Location) -> Sighting {
        Sighting { at, secret_type: None, data_keys: BTreeSet::new(), places: Places::default() }
    }

    /// Type and data key names from every readable revision (the newest type wins).
    fn learn(&mut self, object: Option<&ObjectInfo>) {
        let Some(object) = object else { return };
        if object.secret_type.is_some() {
            self.secret_type.clone_from(&object.secret_type);
        }
        self.data_keys.extend(object.data_keys.iter().cloned());
    }
}

/// One backup's part in a row.
#[derive(Debug, Serialize)]
pub struct InBackup {
    pub source: String,
    pub still_live: bool,
    #[serde(flatten)]
    pub places: Places,
}

/// One object readable under the assumed model, over every backup.
#[derive(Debug, Serialize)]
pub struct Exposed {
    #[serde(flatten)]
    pub at: Location,
    #[serde(rename = "type")]
    pub secret_type: Option<String>,
    pub data_keys: BTreeSet<String>,
    #[serde(flatten)]
    pub rank: Rank,
    /// The weakest model evaluated under which it is readable.
    pub readable_from: Model,
    /// It exists in a backup: its current value may be the leaked one.
    pub still_live: bool,
    pub exposed_in: Vec<Place>,
    pub backups: Vec<InBackup>,
}

/// How much one model gives away.
#[derive(Debug, Serialize)]
pub struct ModelCount {
    pub model: Model,
    pub secrets: usize,
    pub critical: usize,
    pub others: usize,
}

/// The answer: rows under the assumed model and the count under every model evaluated.
#[derive(Debug, Serialize)]
pub struct Exposure {
    pub assume: Model,
    pub models: Vec<ModelCount>,
    /// Secrets seen in the backups (any place) that the assumed model cannot read.
    pub secrets_unreadable: usize,
    /// Readable Secrets, by risk, then namespace and name.
    pub secrets: Vec<Exposed>,
    /// Other readable objects (ConfigMaps, …) whose data key names look like credentials.
    pub others: Vec<Exposed>,
}

/// One backup read under each model evaluated (weakest first).
pub struct BackupReading {
    pub source: String,
    pub models: Vec<(Model, Readable)>,
}

impl BackupReading {
    fn under(&self, model: Model) -> Option<&Readable> {
        self.models.iter().find(|(m, _)| *m == model).map(|(_, r)| r)
    }
}

impl Exposure {
    /// Merges every backup's readings into rows for `assume` (which must be
    /// among the models read).
    pub fn build(assume: Model, backups: &[BackupReading]) -> Exposure {
        let mut evaluated: Vec<Model> =
            backups.iter().flat_map(|b| b.models.iter().map(|(m, _)| *m)).collect();
        evaluated.sort();
        evaluated.dedup();
        // Every model's rows are counted; the assumed model's are also kept.
        let mut listed = (Vec::new(), Vec::new());
        let mut models = Vec::new();
        for &model in &evaluated {
            let (secrets, others) = rows(model, backups, &evaluated);
            let critical = secrets.iter().filter(|r| r.rank.risk == Risk::Critical).count();
            models.push(ModelCount { model, secrets: secrets.len(), critical, others: others.len() });
            if model == assume {
                listed = (secrets, others);
            }
        }
        let (secrets, others) = listed;
        let seen: BTreeSet<&String> =
            backups.iter().filter_map(|b| b.under(assume)).flat_map(|r| &r.secrets_seen).collect();
        let secrets_unreadable = seen.len().saturating_sub(secrets.len());
        Exposure { assume, models, secrets_unreadable, secrets, others }
    }

    /// The readable-Secret count under `model`, if it was evaluated.
    pub fn count(&self, model: Model) -> Option<&ModelCount> {
        self.models.iter().find(|m| m.model == model)
    }
}

/// The rows of one model: Secrets, and other objects with credential-like data keys.
fn rows(model: Model, backups: &[BackupReading], evaluated: &[Model]) -> (Vec<Exposed>, Vec<Exposed>) {
    let mut merged: BTreeMap<&str, Exposed> = BTreeMap::new();
    for backup in backups {
        let Some(readable) = backup.under(model) else { continue };
        for (key, seen) in &readable.objects {
            let row = merged.entry(key).or_insert_with(|| Exposed {
                at: seen.at.clone(),
                secret_type: None,
                data_keys: BTreeSet::new(),
                rank: risk::of_secret(None, None, &[]),
                readable_from: model,
                still_live: false,
                exposed_in: vec![],
                backups: vec![],
            });
            if seen.secret_type.is_some() {
                row.secret_type.clone_from(&seen.secret_type);
            }
            row.data_keys.extend(seen.data_keys.iter().cloned());
            let still_live = readable.live.contains(key);
            row.still_live |= still_live;
            let places = seen.places.clone();
            row.backups.push(InBackup { source: backup.source.clone(), still_live, places });
        }
    }
    let (mut secrets, mut others) = (vec![], vec![]);
    for (key, mut row) in merged {
        row.readable_from = evaluated
            .iter()
            .copied()
            .find(|&m| backups.iter().any(|b| b.under(m).is_some_and(|r| r.objects.contains_key(key))))
            .unwrap_or(model);
        let mut places: Vec<Place> = row.backups.iter().flat_map(|b| b.places.places()).collect();
        places.sort();
        places.dedup();
        row.exposed_in = places;
        if is_secret(&row.at) {
            row.rank =
                risk::of_secret(row.at.namespace.as_deref(), row.secret_type.as_deref(), &row.data_keys);
            secrets.push(row);
        } else if let Some(rank) = risk::of_data_keys(&row.data_keys) {
            row.rank = rank;
            others.push(row);
        }
    }
    let order = |r: &Exposed| (r.rank.risk, r.at.namespace.clone(), r.at.name.clone(), r.at.key.clone());
    secrets.sort_by_key(order);
    others.sort_by_key(order);
    (secrets, others)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> EncryptionConfig {
        let text = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n\
                    - resources: [secrets]\n  providers:\n  - aescbc:\n      keys:\n\
                    \x20     - name: random\n        secret: G86x0mK0/LQD+OABuJI693ByKS9q4TxcNTOb1Qq5A0g=\n\
                    \x20     - name: docs\n        secret: c2VjcmV0IGlzIHNlY3VyZQ==\n\
                    \x20 - kms:\n      apiVersion: v2\n      name: vault\n      endpoint: unix:///nonexistent.sock\n\
                    \x20 - identity: {}\n";
        EncryptionConfig::parse("c.yaml", text.as_bytes()).unwrap()
    }

    #[test]
    fn each_model_holds_only_the_keys_it_grants() {
        let configs = [config()];
        let known = KnownKeys::default();
        let plan = |assume| Plan { assume, configs: &configs, known_keys: &known, kms: &[] };
        let models = |r: &[ModelReading]| r.iter().map(|r| r.model).collect::<Vec<_>>();
        let readings = plan(Model::Backup).readings(&ScanOptions::default()).unwrap();
        assert_eq!(
            models(&readings),
            [Model::Backup, Model::BackupKeys],
            "the config is counted, the KMS is not asked"
        );
        let names =
            |r: &ModelReading| r.judge.keyring.keys().iter().map(|k| k.name.clone()).collect::<Vec<_>>();
        assert_eq!(names(&readings[0]), ["docs"], "the file alone: the published key only");
        assert_eq!(names(&readings[1]), ["random", "docs"]);
        assert!(readings.iter().all(|r| r.judge.keyring.kms_plugins().plugins().is_empty()));
        assert!(readings.iter().all(|r| r.options.history && r.options.residue && r.options.keep_entries));

        let kms = plan(Model::BackupKeysKms).readings(&ScanOptions::default()).unwrap();
        assert_eq!(models(&kms), [Model::Backup, Model::BackupKeys, Model::BackupKeysKms]);
        assert_eq!(kms[2].judge.keyring.kms_plugins().plugins().len(), 1);

        let err = |assume| plan(assume).readings(&ScanOptions::default()).err().map(|e| e.to_string());
        assert_eq!(err(Model::BackupToken).as_deref(), Some("--assume backup+token needs --k3s-token"));
        let none = Plan { assume: Model::BackupKeys, configs: &[], known_keys: &known, kms: &[] };
        assert_eq!(none.readings(&ScanOptions::default()).err().map(|e| e.needs), Some("-c CONFIG"));
    }
}
