//! What an audit produces: the per-backup report and its records (live
//! entries, history, residue, WAL puts). Every other part of `audit` builds
//! or reads these; this module depends on none of them.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};

use serde::Serialize;
use serde_json::value::RawValue;

use super::findings::Finding;
use super::pairing::KeyUse;
use super::verdict::{Class, Verdict};
use super::Integrity;
use crate::bolt::Pgid;
use crate::k8s::RegistryKey;

#[derive(Debug, Serialize)]
pub struct ScanReport {
    pub container: Vec<String>,
    /// Which cluster: kube-system UID, Kubernetes version, nodes, etcd members.
    pub cluster: Option<super::cluster::Cluster>,
    /// When it was taken, from the newest Lease renewal in it; `null` when it has none.
    pub taken_at: Option<super::cluster::TakenAt>,
    pub integrity: Integrity,
    pub etcd: EtcdSummary,
    pub summary: Summary,
    pub forensics: Forensics,
    pub keys: Vec<KeyUse>,
    /// Every live entry in key order, spooled to a scratch file as judged
    /// (when the caller keeps entries) and written out from there.
    pub entries: Entries,
    /// Every older revision (`--history`), spooled the same way.
    pub history: Option<Entries>,
    pub residue: Option<Vec<ResidueRecord>>,
    pub wal: Option<Vec<WalRecord>>,
    pub findings: Vec<Finding>,
    /// k3s/RKE2 bootstrap data and snapshot name; `null` for other backups.
    pub k3s: Option<super::k3s::K3sReport>,
    /// The `--fail-on` tokens this backup matched (set by the caller's policy).
    pub failed_on: Vec<&'static str>,
}

#[derive(Debug, Serialize)]
pub struct EtcdSummary {
    pub revision: i64,
    pub compact_revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_compact_revision: Option<i64>,
    /// `None` for a delta snapshot or a range read, which have no pages.
    pub page_size: Option<usize>,
    pub size_bytes: u64,
    pub etcd_prefix: String,
    /// `key` bucket rows that are not a revision key with a KeyValue.
    pub undecodable_rows: u64,
}

/// Counts per class, every class present (zero when none).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Summary(pub BTreeMap<&'static str, u64>);

impl Default for Summary {
    fn default() -> Self {
        Summary(Class::ALL.iter().map(|c| (c.as_str(), 0)).collect())
    }
}

impl Summary {
    pub(super) fn of<'a>(verdicts: impl Iterator<Item = &'a Verdict>) -> Self {
        let mut summary = Summary::default();
        for v in verdicts {
            summary.add(v.class);
        }
        summary
    }

    pub fn add(&mut self, class: Class) {
        *self.0.entry(class.as_str()).or_default() += 1;
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: &Summary) {
        for (class, n) in &other.0 {
            *self.0.entry(class).or_default() += n;
        }
    }

    pub fn get(&self, class: Class) -> u64 {
        self.0.get(class.as_str()).copied().unwrap_or(0)
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Forensics {
    pub history: Option<Summary>,
    pub residue: Option<Summary>,
    pub wal: Option<Summary>,
}

/// Where a value lives: its etcd key and what that key names.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Location {
    pub key: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
}

impl Location {
    pub fn new(key: &[u8], rk: &RegistryKey) -> Location {
        Location {
            key: String::from_utf8_lossy(key).into_owned(),
            resource: rk.resource.to_string(),
            namespace: rk.namespace.map(str::to_owned),
            name: rk.name.to_owned(),
        }
    }
}

/// Records of a report (its live entries, or its history): how many, and
/// (when kept) the scratch file holding each as one line of JSON, in key
/// order. Serializes as a JSON array read back from the file, so a report of
/// millions of records is never held in memory.
#[derive(Debug, Default)]
pub struct Entries {
    count: u64,
    spool: Option<File>,
}

impl Entries {
    /// How many records there are (kept or not).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Reads each kept record back as `T` (any subset of its fields), in order.
    pub fn read<T: serde::de::DeserializeOwned>(&self, mut each: impl FnMut(T)) -> std::io::Result<()> {
        let Some(mut file) = self.spool.as_ref() else { return Ok(()) };
        file.seek(SeekFrom::Start(0))?;
        for line in BufReader::with_capacity(1 << 16, file).lines() {
            each(serde_json::from_str(&line?)?);
        }
        Ok(())
    }
}

impl Serialize for Entries {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeSeq};
        let mut seq = serializer.serialize_seq(self.spool.as_ref().map(|_| self.count as usize))?;
        if let Some(mut file) = self.spool.as_ref() {
            file.seek(SeekFrom::Start(0)).map_err(S::Error::custom)?;
            let mut reader = BufReader::with_capacity(1 << 16, file);
            let mut line = String::new();
            while reader.read_line(&mut line).map_err(S::Error::custom)? > 0 {
                let raw: &RawValue = serde_json::from_str(line.trim_end()).map_err(S::Error::custom)?;
                seq.serialize_element(raw)?;
                line.clear();
            }
        }
        seq.end()
    }
}

/// Where judged entries are written as they come: JSON lines in an unlinked
/// scratch file (0600).
pub(super) struct Spool {
    out: BufWriter<File>,
}

impl Spool {
    pub(super) fn new() -> std::io::Result<Spool> {
        Ok(Spool { out: BufWriter::with_capacity(1 << 20, crate::source::scratch::file()?) })
    }

    /// Appends entries already serialized, one JSON object per line.
    pub(super) fn write(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.out.write_all(lines)
    }

    pub(super) fn finish(spool: Option<Spool>, count: u64) -> std::io::Result<Entries> {
        let spool = spool.map(|s| s.out.into_inner().map_err(|e| e.into_error())).transpose()?;
        Ok(Entries { count, spool })
    }
}

/// The live (newest, not deleted) revision of one in-scope key.
#[derive(Debug, Serialize)]
pub struct EntryRecord {
    #[serde(flatten)]
    pub at: Location,
    pub mod_revision: i64,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// An older revision still in MVCC history (`--history`).
#[derive(Debug, Serialize)]
pub struct HistoryRecord {
    #[serde(flatten)]
    pub at: Location,
    pub mod_revision: i64,
    pub create_revision: i64,
    pub version: i64,
    /// True for every revision of a key whose newest revision is a tombstone.
    pub deleted: bool,
    pub tombstone: bool,
    /// `None` for a tombstone: it stores no value.
    #[serde(flatten)]
    pub verdict: Option<Verdict>,
    /// Serializes as `"class": null` for a tombstone (`Some(())` is JSON null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) class: Option<()>,
}

/// A revision carved from a page the tree no longer reaches (`--residue`).
#[derive(Debug, Serialize)]
pub struct ResidueRecord {
    #[serde(flatten)]
    pub at: Location,
    pub mod_revision: i64,
    /// The page the revision was carved from (the lowest, when several hold it).
    pub page: Pgid,
    /// A carved delete: it says the key existed, and stores no value.
    pub tombstone: bool,
    /// `None` for a tombstone.
    #[serde(flatten)]
    pub verdict: Option<Verdict>,
    /// Serializes as `"class": null` for a tombstone (`Some(())` is JSON null).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) class: Option<()>,
}

/// An in-scope put found in the write-ahead log of a data dir.
#[derive(Debug, Serialize)]
pub struct WalRecord {
    #[serde(flatten)]
    pub at: Location,
    /// Always null: a WAL entry is a proposal, not a committed revision.
    pub mod_revision: Option<i64>,
    pub wal_file: String,
    pub raft_index: u64,
    pub term: u64,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// `Some(())` (JSON `"class": null`) exactly when there is no verdict.
pub(super) fn null_class(verdict: &Option<Verdict>) -> Option<()> {
    verdict.is_none().then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spooled_entries_serialize_as_the_array_they_were_written_as() {
        let lines = [r#"{"key":"/a","n":1}"#, r#"{"key":"/b","nested":{"x":[1,2]}}"#];
        let mut spool = Some(Spool::new().unwrap());
        for line in lines {
            spool.as_mut().unwrap().write(format!("{line}\n").as_bytes()).unwrap();
        }
        let entries = Spool::finish(spool, 2).unwrap();
        let expected: Vec<serde_json::Value> =
            lines.iter().map(|l| serde_json::from_str(l).unwrap()).collect();
        for _ in 0..2 {
            let pretty = serde_json::to_string_pretty(&entries).unwrap();
            assert_eq!(serde_json::from_str::<Vec<serde_json::Value>>(&pretty).unwrap(), expected);
        }
        assert_eq!(entries.count(), 2);
        let mut read = vec![];
        entries.read(|v: serde_json::Value| read.push(v)).unwrap();
        assert_eq!(read, expected, "read back as written, as often as asked");
        let none = Spool::finish(None, 5).unwrap();
        assert_eq!((none.count(), serde_json::to_string(&none).unwrap()), (5, "[]".to_string()));
    }
}
