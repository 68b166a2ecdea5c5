//! The scan pipeline: list the `key` bucket's leaves, read them in parallel
//! (values stay borrowed from the map), keep the newest revision of every
//! in-scope key, then judge every value in parallel.

use std::collections::{BTreeMap, HashSet};

use rayon::prelude::*;
use serde::Serialize;

use super::findings::{findings, Finding};
use super::forensics::{self, KeyFilter, ResidueRecord, WalRecord};
use super::pairing::{pairing, KeyUse};
use super::verdict::{Class, Judge, Verdict};
use super::{AuditError, Backup, Integrity, Scope};
use crate::container::gardener::Delta;
use crate::container::Trailer;
use crate::etcd::wal::WalFile;
use crate::etcd::{KeyValueRef, Revision, KEY_BUCKET};
use crate::k8s::{detect_prefix, RegistryKey};
use crate::source::live::LiveKv;

#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// `--etcd-prefix`; detected among `/registry` and `/kubernetes.io` when unset.
    pub etcd_prefix: Option<String>,
    /// `--history`: judge every older revision too.
    pub history: bool,
    /// `--residue`: carve revisions from pages the tree does not reach.
    pub residue: bool,
}

#[derive(Debug, Serialize)]
pub struct ScanReport {
    pub container: Vec<String>,
    pub integrity: Integrity,
    pub etcd: EtcdSummary,
    pub summary: Summary,
    pub forensics: Forensics,
    pub keys: Vec<KeyUse>,
    pub entries: Vec<EntryRecord>,
    pub history: Option<Vec<HistoryRecord>>,
    pub residue: Option<Vec<ResidueRecord>>,
    pub wal: Option<Vec<WalRecord>>,
    pub findings: Vec<Finding>,
    /// The `--fail-on` tokens this backup matched (set by the caller's policy).
    pub failed_on: Vec<&'static str>,
    /// SHA-256 (hex) and length of the audited bytes, when a catalog asked for
    /// them (set by the caller).
    #[serde(skip)]
    pub content: Option<(String, u64)>,
}

#[derive(Debug, Serialize)]
pub struct EtcdSummary {
    pub revision: i64,
    pub compact_revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_compact_revision: Option<i64>,
    /// `None` for a delta snapshot, which has no pages.
    pub page_size: Option<usize>,
    pub size_bytes: u64,
    pub etcd_prefix: String,
    /// `key` bucket rows that are not a revision key with a KeyValue.
    pub undecodable_rows: u64,
}

/// Counts per class, every class present (zero when none).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Summary(pub BTreeMap<&'static str, u64>);

impl Summary {
    fn of<'a>(verdicts: impl Iterator<Item = &'a Verdict>) -> Self {
        let mut counts: BTreeMap<_, _> = Class::ALL.iter().map(|c| (c.as_str(), 0)).collect();
        for v in verdicts {
            *counts.entry(v.class.as_str()).or_default() += 1;
        }
        Summary(counts)
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
#[derive(Clone, Debug, Serialize)]
pub struct Location {
    pub key: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: String,
}

#[derive(Debug, Serialize)]
pub struct EntryRecord {
    #[serde(flatten)]
    pub at: Location,
    pub mod_revision: i64,
    #[serde(flatten)]
    pub verdict: Verdict,
}

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
    class: Option<()>,
}

/// One row of the `key` bucket that passed the prefix filter.
struct Row<'a> {
    rev: Revision,
    kv: KeyValueRef<'a>,
}

/// Scans one backup; `wal` holds the log segments of a data dir (`None`
/// when the source has no WAL).
pub fn scan(
    backup: &Backup,
    judge: &Judge,
    scope: &Scope,
    opts: &ScanOptions,
    wal: Option<&[(String, WalFile)]>,
) -> Result<ScanReport, AuditError> {
    let bucket = backup.layout.bucket(KEY_BUCKET).ok_or(AuditError::NotEtcd)?;
    let (rows, undecodable) = read_rows(&bucket.leaves);
    let prefix = prefix_of(opts, &rows);
    let filter = KeyFilter { prefix: &prefix, scope };
    let residue = opts.residue.then(|| {
        let in_tree: HashSet<(i64, i64)> = rows.iter().map(|r| (r.rev.main, r.rev.sub)).collect();
        forensics::residue(&backup.db, &backup.layout.reachable, &in_tree, &filter, judge)
    });
    let wal = wal.map(|segments| forensics::wal_entries(segments, &filter, judge));
    let (entries, history) = judge_rows(rows, &filter, judge, opts.history);
    let meta = &backup.etcd_meta;
    let etcd = EtcdSummary {
        revision: rows_revision(&bucket.leaves),
        compact_revision: meta.finished_compact_revision,
        scheduled_compact_revision: meta
            .scheduled_compact_revision
            .filter(|s| Some(*s) != meta.finished_compact_revision),
        page_size: Some(backup.db.page_size()),
        size_bytes: backup.db.size(),
        etcd_prefix: prefix.clone(),
        undecodable_rows: undecodable,
    };
    let exposure = Exposure { history, residue, wal };
    Ok(assemble(backup.container.clone(), backup.integrity.clone(), etcd, entries, exposure, judge))
}

/// Scans a Gardener delta snapshot: the last PUT of each key is its entry,
/// earlier PUTs and DELETEs are history (there are no pages to carve).
pub fn scan_delta(
    delta: &Delta,
    container: Vec<String>,
    size_bytes: u64,
    judge: &Judge,
    scope: &Scope,
    opts: &ScanOptions,
) -> ScanReport {
    let mut rows: Vec<Row> = Vec::with_capacity(delta.events.len());
    for (i, e) in delta.events.iter().enumerate() {
        // Events of one revision (a txn) keep their order as sub revisions.
        let sub = delta.events[..i].iter().rev().take_while(|p| p.mod_revision == e.mod_revision).count();
        let kv = KeyValueRef {
            key: &e.key,
            create_revision: e.create_revision,
            mod_revision: e.mod_revision,
            version: e.version,
            value: &e.value,
            lease: 0,
        };
        rows.push(Row { rev: Revision { main: e.mod_revision, sub: sub as i64, tombstone: e.delete }, kv });
    }
    let prefix = prefix_of(opts, &rows);
    let filter = KeyFilter { prefix: &prefix, scope };
    let revision = delta.events.iter().map(|e| e.mod_revision).max().unwrap_or(0);
    let (entries, history) = judge_rows(rows, &filter, judge, opts.history);
    let integrity = Integrity {
        sha256_trailer: delta.hash,
        meta: vec![],
        bbolt_errors: vec![],
        notes: vec![],
        ok: delta.hash != Trailer::Mismatch,
    };
    let etcd = EtcdSummary {
        revision,
        compact_revision: None,
        scheduled_compact_revision: None,
        page_size: None,
        size_bytes,
        etcd_prefix: prefix.clone(),
        undecodable_rows: 0,
    };
    let exposure = Exposure { history, residue: None, wal: None };
    assemble(container, integrity, etcd, entries, exposure, judge)
}

/// Feeds every page of a Range read to its argument; returns the revision read at.
pub type PageReader<'r> = dyn FnMut(&mut dyn FnMut(Vec<LiveKv>)) -> Result<i64, AuditError> + 'r;

/// Scans a live cluster read with paginated Range requests at one revision:
/// each page is judged as it arrives, so memory holds the report, not the
/// database. There is no history, residue or bbolt integrity in this mode.
pub fn scan_range(
    read: &mut PageReader,
    source: &str,
    prefix: &str,
    judge: &Judge,
    scope: &Scope,
) -> Result<ScanReport, AuditError> {
    let filter = KeyFilter { prefix, scope };
    let mut entries = Vec::new();
    let revision = read(&mut |page| {
        let rows: Vec<Row> = page
            .iter()
            .map(|kv| Row {
                rev: Revision { main: kv.mod_revision, sub: 0, tombstone: false },
                kv: KeyValueRef {
                    key: &kv.key,
                    create_revision: kv.create_revision,
                    mod_revision: kv.mod_revision,
                    version: kv.version,
                    value: &kv.value,
                    lease: 0,
                },
            })
            .collect();
        entries.extend(judge_rows(rows, &filter, judge, false).0);
    })?;
    let integrity = Integrity {
        sha256_trailer: Trailer::Absent,
        meta: vec![],
        bbolt_errors: vec![],
        notes: vec![format!(
            "{source} read with Range requests at revision {revision}: history, residue and bbolt integrity are unavailable in this mode"
        )],
        ok: true,
    };
    let etcd = EtcdSummary {
        revision,
        compact_revision: None,
        scheduled_compact_revision: None,
        page_size: None,
        size_bytes: 0,
        etcd_prefix: prefix.to_string(),
        undecodable_rows: 0,
    };
    let exposure = Exposure { history: None, residue: None, wal: None };
    Ok(assemble(vec!["etcd-range".to_string()], integrity, etcd, entries, exposure, judge))
}

fn prefix_of(opts: &ScanOptions, rows: &[Row]) -> String {
    opts.etcd_prefix.clone().unwrap_or_else(|| detect_prefix(rows.iter().map(|r| r.kv.key)).to_string())
}

/// Keeps the newest revision of every in-scope key as its entry (none when
/// it is a tombstone) and, when asked, judges every other revision too.
fn judge_rows(
    mut rows: Vec<Row>,
    filter: &KeyFilter,
    judge: &Judge,
    with_history: bool,
) -> (Vec<EntryRecord>, Option<Vec<HistoryRecord>>) {
    rows.retain(|r| r.kv.key.starts_with(filter.prefix.as_bytes()));
    rows.par_sort_unstable_by(|a, b| (a.kv.key, a.rev).cmp(&(b.kv.key, b.rev)));
    let in_scope: Vec<(RegistryKey, &[Row])> = rows
        .chunk_by(|a, b| a.kv.key == b.kv.key)
        .filter_map(|g| Some((filter.parse(g[0].kv.key)?, g)))
        .collect();
    // Live keys first, so the parallel map is indexed and collects in place
    // (a filtering parallel collect would hold the entries twice).
    let live: Vec<(&RegistryKey, &Row)> =
        in_scope.iter().filter_map(|(rk, g)| Some((rk, g.last().filter(|r| !r.rev.tombstone)?))).collect();
    let entries: Vec<EntryRecord> =
        live.par_iter().map(|(rk, row)| entry(rk, row, judge.judge(row.kv.key, rk, row.kv.value))).collect();
    let history = with_history.then(|| history(&in_scope, judge));
    (entries, history)
}

/// What an attacker reads beyond the live entries, as far as it was asked for.
struct Exposure {
    history: Option<Vec<HistoryRecord>>,
    residue: Option<Vec<ResidueRecord>>,
    wal: Option<Vec<WalRecord>>,
}

fn assemble(
    container: Vec<String>,
    integrity: Integrity,
    etcd: EtcdSummary,
    entries: Vec<EntryRecord>,
    x: Exposure,
    judge: &Judge,
) -> ScanReport {
    let summary = Summary::of(entries.iter().map(|e| &e.verdict));
    let forensics = Forensics {
        history: x.history.as_ref().map(|h| Summary::of(h.iter().filter_map(|r| r.verdict.as_ref()))),
        residue: x.residue.as_ref().map(|r| Summary::of(r.iter().filter_map(|r| r.verdict.as_ref()))),
        wal: x.wal.as_ref().map(|w| Summary::of(w.iter().map(|r| &r.verdict))),
    };
    let keys = pairing(&entries, judge);
    let findings = findings(
        &integrity,
        &entries,
        x.history.as_deref(),
        x.residue.as_deref(),
        x.wal.as_deref(),
        &keys,
        judge,
    );
    ScanReport {
        container,
        integrity,
        etcd,
        summary,
        forensics,
        keys,
        entries,
        history: x.history,
        residue: x.residue,
        wal: x.wal,
        findings,
        failed_on: Vec::new(),
        content: None,
    }
}

/// Decodes every row of the `key` bucket in parallel, borrowing from the map.
fn read_rows<'a>(leaves: &[crate::bolt::Leaf<'a>]) -> (Vec<Row<'a>>, u64) {
    let per_leaf: Vec<(Vec<Row<'a>>, u64)> = leaves
        .par_iter()
        .map(|leaf| {
            let (mut rows, mut bad) = (Vec::with_capacity(leaf.page.count as usize), 0);
            for item in leaf.page.leaf_items().map_while(Result::ok) {
                match (Revision::parse(item.key), KeyValueRef::decode(item.value)) {
                    (Some(rev), Ok(kv)) if !item.is_bucket() => rows.push(Row { rev, kv }),
                    _ => bad += 1,
                }
            }
            (rows, bad)
        })
        .collect();
    let bad = per_leaf.iter().map(|(_, b)| b).sum();
    (per_leaf.into_iter().flat_map(|(rows, _)| rows).collect(), bad)
}

/// The store's revision: the main revision of the last `key` bucket row.
fn rows_revision(leaves: &[crate::bolt::Leaf]) -> i64 {
    leaves
        .iter()
        .rev()
        .find_map(|l| l.page.leaf_items().map_while(Result::ok).last())
        .and_then(|item| Revision::main_of(item.key))
        .unwrap_or(0)
}

fn entry(rk: &RegistryKey, row: &Row, verdict: Verdict) -> EntryRecord {
    EntryRecord { at: forensics::location(row.kv.key, rk), mod_revision: row.rev.main, verdict }
}

fn history(in_scope: &[(RegistryKey, &[Row])], judge: &Judge) -> Vec<HistoryRecord> {
    in_scope
        .par_iter()
        .flat_map_iter(|(rk, g)| {
            let deleted = g.last().is_some_and(|r| r.rev.tombstone);
            let older = if deleted { *g } else { &g[..g.len() - 1] };
            older.iter().map(move |row| {
                let verdict = (!row.rev.tombstone).then(|| judge.judge(row.kv.key, rk, row.kv.value));
                HistoryRecord {
                    at: forensics::location(row.kv.key, rk),
                    mod_revision: row.rev.main,
                    create_revision: row.kv.create_revision,
                    version: row.kv.version,
                    deleted,
                    tombstone: row.rev.tombstone,
                    class: verdict.is_none().then_some(()),
                    verdict,
                }
            })
        })
        .collect()
}
