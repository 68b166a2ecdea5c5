//! The scan pipeline, one entry point for every kind of input: rows of one
//! type ([`KeyValueRef`], borrowed from the map, the delta or a Range page)
//! are filtered to the etcd prefix, grouped by key, and the newest revision
//! of every in-scope key is judged in parallel.

use std::collections::HashSet;
use std::sync::Arc;

use rayon::prelude::*;

use super::cluster::{self, Cluster, TakenAt};
use super::findings::{findings, Facts};
use super::forensics::{self, KeyFilter};
use super::k3s::{self, Bootstrap, K3sReport};
use super::record::{
    null_class, EtcdSummary, Forensics, HistoryRecord, Location, ResidueRecord, ScanReport, Summary,
    WalRecord,
};
use super::tally::{KeyRev, Tally};
use super::verdict::Judge;
use super::{AuditError, Backup, Integrity, Scope};
use crate::container::gardener::Delta;
use crate::container::Trailer;
use crate::encryption::k3s::Token;
use crate::etcd::wal::WalFile;
use crate::etcd::{KeyValueRef, Revision, KEY_BUCKET};
use crate::k8s::{detect_prefix, elect_prefix, prefix_votes};
use crate::progress::Meter;

#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    /// `--etcd-prefix`; detected among `/registry` and `/kubernetes.io` when unset.
    pub etcd_prefix: Option<String>,
    /// `--history`: judge every older revision too.
    pub history: bool,
    /// `--residue`: carve revisions from pages the tree does not reach.
    pub residue: bool,
    /// `--salvage`: when a bbolt file does not open, carve its leaf pages.
    pub salvage: bool,
    /// `--k3s-token`: server tokens that may open k3s/RKE2 bootstrap data.
    pub k3s_tokens: Arc<Vec<Token>>,
    /// `--max-age`: a backup taken longer ago than this is `backup-too-old`.
    pub max_age: Option<std::time::Duration>,
    /// `--now` (Unix seconds) for reproducible ages; the clock when unset.
    pub now: Option<i64>,
    /// Keep every live entry for the report (spooled to a scratch file);
    /// otherwise entries are only counted and tallied into findings.
    pub keep_entries: bool,
    /// Where this backup's progress shows (leaf pages read, entries judged).
    pub meter: Meter,
}

/// Feeds every page of a Range read to its argument; returns the revision read at.
pub type PageReader<'r> = dyn FnMut(&mut dyn FnMut(&[KeyValueRef])) -> Result<i64, AuditError> + 'r;

/// What one scan reads.
pub enum Input<'i, 'r> {
    /// A bbolt database, opened and walked; `wal` holds the log segments of
    /// a data dir (`None` when the source has no WAL).
    Bolt { backup: &'i Backup<'i>, wal: Option<&'i [(String, WalFile)]> },
    /// A Gardener delta snapshot: the last PUT of each key is its entry,
    /// earlier PUTs and DELETEs are history (there are no pages to carve).
    Delta { delta: &'i Delta, size_bytes: u64 },
    /// A live cluster read with paginated Range requests at one revision
    /// under `prefix`: each page is judged as it arrives. There is no
    /// history, residue or bbolt integrity in this mode.
    Range { pages: &'r mut PageReader<'r>, source: &'i str, prefix: &'i str },
    /// `--salvage`: a bbolt file that does not open (`why`), read by carving
    /// every leaf page; the report says so.
    Salvage { bytes: &'i [u8], why: String },
}

/// Scans one backup. `container` is the chain of layers it came out of.
pub fn scan(
    input: Input,
    container: Vec<String>,
    judge: &Judge,
    scope: &Scope,
    opts: &ScanOptions,
) -> Result<ScanReport, AuditError> {
    // A range read has no history to tally.
    let history = opts.history && !matches!(input, Input::Range { .. });
    let tally = Tally::new(opts.keep_entries, history, opts.meter.clone()).map_err(AuditError::Spool)?;
    let read = match input {
        Input::Bolt { backup, wal } => {
            // The trailer's hash reads the whole file on one core while the scan runs.
            rayon::join(|| backup.trailer(), || bolt(backup, wal, judge, scope, opts, tally)).1?
        }
        Input::Delta { delta, size_bytes } => self::delta(delta, size_bytes, judge, scope, opts, tally)?,
        Input::Range { pages, source, prefix } => range(pages, source, prefix, judge, scope, tally)?,
        Input::Salvage { bytes, why } => salvage(bytes, &why, judge, scope, opts, tally)?,
    };
    assemble(container, read, judge, opts)
}

/// One row of the `key` bucket (or its equivalent).
#[derive(Clone, Copy)]
struct Row<'a> {
    rev: Revision,
    kv: KeyValueRef<'a>,
}

impl<'a> Row<'a> {
    fn key_rev(&self) -> KeyRev<'a> {
        KeyRev {
            key: self.kv.key,
            value: self.kv.value,
            main: self.rev.main,
            sub: u32::try_from(self.rev.sub).unwrap_or(u32::MAX),
            tombstone: self.rev.tombstone,
        }
    }
}

/// What an attacker reads beyond the live entries and history, as far as it
/// was asked for.
#[derive(Default)]
struct Exposure {
    residue: Option<Vec<ResidueRecord>>,
    wal: Option<Vec<WalRecord>>,
}

/// What one kind of input gives; `judge` is the keyring that judged it
/// (the caller's, or one that k3s bootstrap data extended).
struct Read {
    cluster: Option<Cluster>,
    taken_at: Option<TakenAt>,
    integrity: Integrity,
    etcd: EtcdSummary,
    /// The live entries, judged and tallied.
    tally: Tally,
    exposure: Exposure,
    k3s: Option<K3sReport>,
    judge: Option<Judge>,
}

/// k3s bootstrap data among `rows` (live and, with `--history`, older
/// revisions) and WAL puts; the judge to use (extended by its keys).
/// k3s bootstrap values carved from pages the tree no longer reaches
/// (`--residue`): what a rotated token sealed before compaction.
fn carved_bootstrap<'a>(backup: &Backup<'a>, rows: &[Row]) -> Vec<k3s::Found<'a>> {
    let in_tree: HashSet<(i64, i64)> = rows
        .iter()
        .filter(|r| k3s::bootstrap_hash(r.kv.key).is_some())
        .map(|r| (r.rev.main, r.rev.sub))
        .collect();
    let mut seen = HashSet::new();
    backup
        .db
        .unreachable_pages(&backup.layout.reachable)
        .into_iter()
        .flat_map(|page| backup.db.carve_leaf(page))
        .filter_map(|item| {
            let (rev, kv) = (Revision::parse(item.key)?, KeyValueRef::decode(item.value).ok()?);
            k3s::bootstrap_hash(kv.key)?;
            let new =
                !rev.tombstone && !in_tree.contains(&(rev.main, rev.sub)) && seen.insert((rev.main, rev.sub));
            new.then_some(k3s::Found {
                key: kv.key,
                value: kv.value,
                mod_revision: Some(rev.main),
                found_in: "residue",
            })
        })
        .collect()
}

fn bootstrap<'a>(
    rows: &[Row<'a>],
    wal: Option<&'a [(String, WalFile)]>,
    carved: Vec<k3s::Found<'a>>,
    opts: &ScanOptions,
) -> Option<Bootstrap> {
    let mut rows: Vec<&Row> = rows.iter().filter(|r| k3s::bootstrap_hash(r.kv.key).is_some()).collect();
    let puts = wal
        .into_iter()
        .flatten()
        .flat_map(|(_, w)| &w.puts)
        .filter(|p| k3s::bootstrap_hash(&p.key).is_some());
    let mut found = Vec::new();
    rows.sort_by(|a, b| (a.kv.key, a.rev).cmp(&(b.kv.key, b.rev)));
    for group in rows.chunk_by(|a, b| a.kv.key == b.kv.key) {
        let newest = group.len() - 1;
        for (i, row) in group.iter().enumerate() {
            let live = i == newest && !row.rev.tombstone;
            if (live || opts.history) && !row.rev.tombstone {
                let found_in = if live { "live" } else { "history" };
                found.push(k3s::Found {
                    key: row.kv.key,
                    value: row.kv.value,
                    mod_revision: Some(row.rev.main),
                    found_in,
                });
            }
        }
    }
    found.extend(carved);
    found.extend(puts.map(|p| k3s::Found {
        key: &p.key,
        value: &p.value,
        mod_revision: None,
        found_in: "wal",
    }));
    (!found.is_empty()).then(|| k3s::read(found, &opts.k3s_tokens))
}

fn bolt(
    backup: &Backup,
    wal: Option<&[(String, WalFile)]>,
    judge: &Judge,
    scope: &Scope,
    opts: &ScanOptions,
    mut tally: Tally,
) -> Result<Read, AuditError> {
    let bucket = backup.layout.bucket(KEY_BUCKET).ok_or(AuditError::NotEtcd)?;
    let prefix = opts.etcd_prefix.clone().unwrap_or_else(|| bucket_prefix(&bucket.leaves).to_string());
    let filter = KeyFilter { prefix: &prefix, scope };
    let wanted = Wanted::new(&prefix);
    let mut pass = read_bucket(&bucket.leaves, &filter, &wanted, opts);
    let cluster_id = wal.into_iter().flatten().find_map(|(_, w)| w.cluster_id);
    let carved = if opts.residue { carved_bootstrap(backup, &pass.special) } else { vec![] };
    let boot = bootstrap(&pass.special, wal, carved, opts);
    let extended = boot.as_ref().and_then(|b| b.config.clone()).map(|c| judge.with_config(c));
    let judge = extended.as_ref().unwrap_or(judge);
    let residue = opts.residue.then(|| {
        let in_tree = forensics::Revisions::new(std::mem::take(&mut pass.revisions));
        forensics::residue(&backup.db, &backup.layout.reachable, &in_tree, &filter, judge)
    });
    let wal = wal.map(|segments| forensics::wal_entries(segments, &filter, judge));
    let (mut cluster, taken_at) = cluster_of(&pass.special, &wanted, Some(&backup.layout));
    cluster.etcd_cluster_id = cluster_id.map(|id| format!("{id:x}"));
    let cluster = Some(cluster);
    match pass.rows {
        Some(mut rows) => judge_rows(&mut tally, &mut rows, &filter, judge)?,
        None => tally.judge(&newest(pass.revs), |r| Some(*r), &filter, judge).map_err(AuditError::Spool)?,
    }
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
        undecodable_rows: pass.undecodable,
    };
    let exposure = Exposure { residue, wal };
    let k3s = boot.map(|b| b.report);
    Ok(Read { cluster, taken_at, integrity: backup.integrity(), etcd, tally, exposure, k3s, judge: extended })
}

fn delta(
    delta: &Delta,
    size_bytes: u64,
    judge: &Judge,
    scope: &Scope,
    opts: &ScanOptions,
    mut tally: Tally,
) -> Result<Read, AuditError> {
    let mut rows: Vec<Row> = Vec::with_capacity(delta.events.len());
    let mut sub = 0;
    for (i, e) in delta.events.iter().enumerate() {
        // Events of one revision (a txn) keep their order as sub revisions.
        let same_txn = i > 0 && delta.events[i - 1].mod_revision == e.mod_revision;
        sub = if same_txn { sub + 1 } else { 0 };
        let kv = KeyValueRef {
            key: &e.key,
            create_revision: e.create_revision,
            mod_revision: e.mod_revision,
            version: e.version,
            value: &e.value,
            lease: 0,
        };
        rows.push(Row { rev: Revision { main: e.mod_revision, sub, tombstone: e.delete }, kv });
    }
    let boot = bootstrap(&rows, None, vec![], opts);
    let extended = boot.as_ref().and_then(|b| b.config.clone()).map(|c| judge.with_config(c));
    let judge = extended.as_ref().unwrap_or(judge);
    let prefix = prefix_of(opts, &rows);
    let filter = KeyFilter { prefix: &prefix, scope };
    let revision = delta.events.iter().map(|e| e.mod_revision).max().unwrap_or(0);
    let (cluster, taken_at) = cluster_of(&rows, &Wanted::new(&prefix), None);
    let cluster = Some(cluster);
    judge_rows(&mut tally, &mut rows, &filter, judge)?;
    let integrity = Integrity {
        sha256_trailer: delta.hash,
        meta: vec![],
        bbolt_errors: vec![],
        bbolt_errors_total: 0,
        notes: vec![],
        salvaged: false,
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
    let exposure = Exposure::default();
    Ok(Read {
        cluster,
        taken_at,
        integrity,
        etcd,
        tally,
        exposure,
        k3s: boot.map(|b| b.report),
        judge: extended,
    })
}

fn range(
    pages: &mut PageReader,
    source: &str,
    prefix: &str,
    judge: &Judge,
    scope: &Scope,
    mut tally: Tally,
) -> Result<Read, AuditError> {
    let filter = KeyFilter { prefix, scope };
    let wanted = Wanted::new(prefix);
    // The few keys identity and time are read from, copied: pages do not outlive their call.
    let mut kept: Vec<(Vec<u8>, Vec<u8>, i64)> = Vec::new();
    let mut spooled = Ok(());
    let revision = pages(&mut |page| {
        let mut rows: Vec<Row> = page
            .iter()
            .map(|kv| Row { rev: Revision { main: kv.mod_revision, sub: 0, tombstone: false }, kv: *kv })
            .collect();
        kept.extend(
            rows.iter()
                .filter(|r| wanted.any(r.kv.key))
                .map(|r| (r.kv.key.to_vec(), r.kv.value.to_vec(), r.rev.main)),
        );
        if spooled.is_ok() {
            spooled = judge_rows(&mut tally, &mut rows, &filter, judge);
        }
    })?;
    spooled?;
    let special: Vec<Row> = kept
        .iter()
        .map(|(key, value, main)| Row {
            rev: Revision { main: *main, sub: 0, tombstone: false },
            kv: KeyValueRef { key, value, mod_revision: *main, ..KeyValueRef::default() },
        })
        .collect();
    // No pages: no etcd members.
    let (cluster, taken_at) = cluster_of(&special, &wanted, None);
    let integrity = Integrity {
        sha256_trailer: Trailer::Absent,
        meta: vec![],
        bbolt_errors: vec![],
        bbolt_errors_total: 0,
        salvaged: false,
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
    Ok(Read {
        cluster: Some(cluster),
        taken_at,
        integrity,
        etcd,
        tally,
        exposure: Exposure::default(),
        k3s: None,
        judge: None,
    })
}

fn salvage(
    bytes: &[u8],
    why: &str,
    judge: &Judge,
    scope: &Scope,
    opts: &ScanOptions,
    mut tally: Tally,
) -> Result<Read, AuditError> {
    let (db_bytes, _) = crate::container::split_trailer(bytes);
    let salvaged = crate::bolt::salvage(db_bytes);
    let mut seen = HashSet::new();
    let mut rows: Vec<Row> = salvaged
        .leaves
        .iter()
        .flat_map(|page| page.leaf_items().map_while(Result::ok))
        .filter_map(|item| row(&item))
        // Every leaf rewrite leaves an older copy of a page behind: keep one.
        .filter(|row| seen.insert((row.rev.main, row.rev.sub)))
        .collect();
    let prefix = prefix_of(opts, &rows);
    let filter = KeyFilter { prefix: &prefix, scope };
    let revision = rows.iter().map(|r| r.rev.main).max().unwrap_or(0);
    let (cluster, taken_at) = cluster_of(&rows, &Wanted::new(&prefix), None);
    let cluster = Some(cluster);
    judge_rows(&mut tally, &mut rows, &filter, judge)?;
    let integrity = Integrity {
        sha256_trailer: crate::container::verify_trailer(bytes),
        meta: vec![],
        bbolt_errors: vec![],
        bbolt_errors_total: 0,
        notes: vec![format!(
            "salvaged: {why}; {} leaf pages of {} carved without the tree, the newest carved revision of each key \
             taken as live: best effort, keys on damaged pages are missing and deleted keys may reappear",
            salvaged.leaves.len(),
            salvaged.pages
        )],
        salvaged: true,
        ok: false,
    };
    let etcd = EtcdSummary {
        revision,
        compact_revision: None,
        scheduled_compact_revision: None,
        page_size: Some(salvaged.page_size),
        size_bytes: db_bytes.len() as u64,
        etcd_prefix: prefix.clone(),
        undecodable_rows: 0,
    };
    let exposure = Exposure::default();
    Ok(Read { cluster, taken_at, integrity, etcd, tally, exposure, k3s: None, judge: None })
}

/// `backup-too-old`: taken longer ago than `--max-age` (a backup whose time
/// is unknown is not judged).
fn age_finding(taken_at: Option<&TakenAt>, opts: &ScanOptions) -> Option<crate::audit::Finding> {
    let (max_age, taken) = (opts.max_age?, taken_at?);
    let age = crate::time::now_or(opts.now) - taken.unix;
    (age > max_age.as_secs() as i64).then(|| {
        let mut f = crate::audit::Finding::new(
            crate::audit::Severity::Medium,
            crate::audit::Code::BackupTooOld,
            1,
            format!(
                "taken at {} ({} h before now), older than --max-age ({} h)",
                taken.estimate,
                age / 3600,
                max_age.as_secs() / 3600
            ),
            std::iter::empty(),
        );
        f.remediation =
            Some("Check that scheduled backups run, and that this is the newest backup of its cluster.");
        f
    })
}

/// The newest live value of every key `wanted` picks.
fn newest_live<'a>(rows: &[Row<'a>], wanted: impl Fn(&[u8]) -> bool) -> Vec<(&'a [u8], &'a [u8])> {
    let mut newest: std::collections::HashMap<&[u8], &Row> = std::collections::HashMap::new();
    for row in rows.iter().filter(|r| wanted(r.kv.key)) {
        let slot = newest.entry(row.kv.key).or_insert(row);
        if row.rev > slot.rev {
            *slot = row;
        }
    }
    newest.into_values().filter(|r| !r.rev.tombstone).map(|r| (r.kv.key, r.kv.value)).collect()
}

/// The keys the cluster's identity and `taken_at` are read from.
struct Wanted {
    namespace: String,
    kubeadm: String,
    nodes: String,
    node_leases: String,
    system_leases: String,
    events: String,
    prefix: String,
}

impl Wanted {
    fn new(prefix: &str) -> Wanted {
        Wanted {
            namespace: format!("{prefix}/namespaces/kube-system"),
            kubeadm: format!("{prefix}/configmaps/kube-system/kubeadm-config"),
            nodes: format!("{prefix}/minions/"),
            node_leases: format!("{prefix}/leases/kube-node-lease/"),
            system_leases: format!("{prefix}/leases/kube-system/"),
            events: format!("{prefix}/events/"),
            prefix: prefix.to_string(),
        }
    }

    fn identity(&self, k: &[u8]) -> bool {
        k == self.namespace.as_bytes() || k == self.kubeadm.as_bytes() || k.starts_with(self.nodes.as_bytes())
    }

    fn lease(&self, k: &[u8]) -> bool {
        k.starts_with(self.node_leases.as_bytes()) || k.starts_with(self.system_leases.as_bytes())
    }

    fn event(&self, k: &[u8]) -> bool {
        k.starts_with(self.events.as_bytes())
    }

    /// Any key read apart from the entries: identity, time, k3s bootstrap data.
    fn any(&self, k: &[u8]) -> bool {
        self.identity(k) || self.lease(k) || self.event(k) || k3s::bootstrap_hash(k).is_some()
    }
}

/// The cluster's identity from the newest revision of the few keys that
/// carry it (and etcd's members bucket when there are pages), and when the
/// backup was taken.
fn cluster_of(
    rows: &[Row],
    wanted: &Wanted,
    layout: Option<&crate::bolt::Layout>,
) -> (Cluster, Option<TakenAt>) {
    let cluster =
        cluster::identify(&wanted.prefix, newest_live(rows, |k| wanted.identity(k)).into_iter(), layout);
    let leases = newest_live(rows, |k| wanted.lease(k));
    let events = newest_live(rows, |k| wanted.event(k));
    (cluster, cluster::taken_at(&wanted.prefix, leases.into_iter(), events.into_iter()))
}

fn prefix_of(opts: &ScanOptions, rows: &[Row]) -> String {
    opts.etcd_prefix.clone().unwrap_or_else(|| detect_prefix(rows.iter().map(|r| r.kv.key)).to_string())
}

/// The prefix most keys of the `key` bucket use, leaves counted in parallel.
fn bucket_prefix(leaves: &[crate::bolt::Leaf]) -> &'static str {
    let votes = leaves
        .par_iter()
        .map(|leaf| {
            prefix_votes(
                leaf.page.leaf_items().map_while(Result::ok).filter_map(|item| Some(row(&item)?.kv.key)),
            )
        })
        .reduce(Default::default, |a, b| std::array::from_fn(|i| a[i] + b[i]));
    elect_prefix(votes)
}

/// A `key` bucket item as a row: a revision key and a KeyValue.
fn row<'a>(item: &crate::bolt::LeafItem<'a>) -> Option<Row<'a>> {
    match (item.is_bucket(), Revision::parse(item.key), KeyValueRef::decode(item.value)) {
        (false, Some(rev), Ok(kv)) => Some(Row { rev, kv }),
        _ => None,
    }
}

/// What one pass over the `key` bucket keeps.
#[derive(Default)]
struct Pass<'a> {
    /// Every revision of the in-scope keys, small (without `--history`).
    revs: Vec<KeyRev<'a>>,
    /// Every in-scope row (with `--history`, which judges them all).
    rows: Option<Vec<Row<'a>>>,
    /// Every revision of the keys [`Wanted`] names, in or out of scope.
    special: Vec<Row<'a>>,
    /// (main, sub) of every row: what the tree holds (with `--residue`).
    revisions: Vec<(i64, i64)>,
    /// Items that are not a revision key with a KeyValue.
    undecodable: u64,
}

/// Leaves decoded at once: the rows of a batch are held until merged.
const LEAF_BATCH: usize = 1024;

/// One pass over the `key` bucket: leaves are decoded and filtered in
/// parallel, a batch at a time, and their rows kept in revision order.
fn read_bucket<'a>(
    leaves: &[crate::bolt::Leaf<'a>],
    filter: &KeyFilter,
    wanted: &Wanted,
    opts: &ScanOptions,
) -> Pass<'a> {
    /// A row, whether it is in scope, and whether [`Wanted`] reads it.
    type Kept<'a> = (Row<'a>, bool, bool);
    let mut pass = Pass { rows: opts.history.then(Vec::new), ..Pass::default() };
    opts.meter.stage("leaf pages", leaves.len() as u64);
    for batch in leaves.chunks(LEAF_BATCH) {
        let decoded: Vec<(Vec<Kept<'a>>, u64)> = batch
            .par_iter()
            .map(|leaf| {
                let (mut kept, mut bad) = (Vec::new(), 0);
                for item in leaf.page.leaf_items().map_while(Result::ok) {
                    let Some(row) = row(&item) else {
                        bad += 1;
                        continue;
                    };
                    let (in_scope, special) = (filter.parse(row.kv.key).is_some(), wanted.any(row.kv.key));
                    if in_scope || special || opts.residue {
                        kept.push((row, in_scope, special));
                    }
                }
                (kept, bad)
            })
            .collect();
        opts.meter.advance(batch.len() as u64);
        for (kept, bad) in decoded {
            pass.undecodable += bad;
            for (row, in_scope, special) in kept {
                if opts.residue {
                    pass.revisions.push((row.rev.main, row.rev.sub));
                }
                if special {
                    pass.special.push(row);
                }
                match &mut pass.rows {
                    _ if !in_scope => {}
                    Some(rows) => rows.push(row),
                    None => pass.revs.push(row.key_rev()),
                }
            }
        }
    }
    pass
}

/// The newest revision of every key, tombstones dropped, in key order;
/// sorted and deduplicated in place.
fn newest(mut revs: Vec<KeyRev>) -> Vec<KeyRev> {
    revs.par_sort_unstable_by(|a, b| a.key.cmp(b.key).then((b.main, b.sub).cmp(&(a.main, a.sub))));
    revs.dedup_by(|later, first| later.key == first.key);
    revs.retain(|r| !r.tombstone);
    revs
}

/// Rows in any order: the newest revision of every in-scope key that is
/// not deleted is its entry, every other revision its history (when
/// tallied); both judged in key order.
fn judge_rows<'a>(
    tally: &mut Tally,
    rows: &mut Vec<Row<'a>>,
    filter: &KeyFilter,
    judge: &Judge,
) -> Result<(), AuditError> {
    rows.retain(|r| r.kv.key.starts_with(filter.prefix.as_bytes()));
    rows.par_sort_unstable_by(|a, b| (a.kv.key, a.rev).cmp(&(b.kv.key, b.rev)));
    let keys: Vec<&[Row]> =
        rows.chunk_by(|a, b| a.kv.key == b.kv.key).filter(|g| filter.parse(g[0].kv.key).is_some()).collect();
    let newest = |g: &&[Row<'a>]| g.last().filter(|r| !r.rev.tombstone).map(Row::key_rev);
    tally.judge(&keys, newest, filter, judge).map_err(AuditError::Spool)?;
    tally.judge_history(&keys, |g, out| history(g, filter, judge, out)).map_err(AuditError::Spool)
}

fn assemble(
    container: Vec<String>,
    read: Read,
    judge: &Judge,
    opts: &ScanOptions,
) -> Result<ScanReport, AuditError> {
    let Read { cluster, taken_at, integrity, etcd, mut tally, exposure: x, k3s, judge: extended } = read;
    let judge = extended.as_ref().unwrap_or(judge);
    let (entries, history) = tally.spooled().map_err(AuditError::Spool)?;
    let Tally { summary, rules, keys, nonces, history: tallied, .. } = tally;
    let (history_summary, history_hits) = tallied.map(|h| (h.summary, h.hits)).unzip();
    let forensics = Forensics {
        history: history_summary,
        residue: x.residue.as_ref().map(|r| Summary::of(r.iter().filter_map(|r| r.verdict.as_ref()))),
        wal: x.wal.as_ref().map(|w| Summary::of(w.iter().map(|r| &r.verdict))),
    };
    let keys = keys.finish(judge);
    let facts = Facts {
        integrity: &integrity,
        db_size: etcd.page_size.map(|_| etcd.size_bytes),
        rules,
        nonces,
        history: history_hits,
        residue: x.residue.as_deref(),
        wal: x.wal.as_deref(),
        keys: &keys,
        k3s: k3s.as_ref(),
    };
    let mut findings = findings(facts, judge);
    findings.extend(age_finding(taken_at.as_ref(), opts));
    Ok(ScanReport {
        container,
        cluster,
        taken_at,
        integrity,
        etcd,
        summary,
        forensics,
        keys,
        entries,
        history,
        residue: x.residue,
        wal: x.wal,
        findings,
        k3s,
        failed_on: Vec::new(),
    })
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

/// The history records of one key's revisions (in revision order): all of
/// them when its newest revision deletes it, else all but the newest.
fn history(revisions: &[Row], filter: &KeyFilter, judge: &Judge, out: &mut Vec<HistoryRecord>) {
    let (Some(rk), Some(newest)) = (revisions.first().and_then(|r| filter.parse(r.kv.key)), revisions.last())
    else {
        return;
    };
    let deleted = newest.rev.tombstone;
    let older = if deleted { revisions } else { &revisions[..revisions.len() - 1] };
    out.extend(older.iter().map(|row| {
        let verdict = (!row.rev.tombstone).then(|| judge.judge(row.kv.key, &rk, row.kv.value));
        HistoryRecord {
            at: Location::new(row.kv.key, &rk),
            mod_revision: row.rev.main,
            create_revision: row.kv.create_revision,
            version: row.kv.version,
            deleted,
            tombstone: row.rev.tombstone,
            class: null_class(&verdict),
            verdict,
        }
    }));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rev<'a>(key: &'a str, main: i64, tombstone: bool) -> KeyRev<'a> {
        KeyRev { key: key.as_bytes(), value: b"v", main, sub: 0, tombstone }
    }

    fn keys_and_revisions(revs: Vec<KeyRev>) -> Vec<(String, i64)> {
        newest(revs).iter().map(|r| (String::from_utf8_lossy(r.key).into_owned(), r.main)).collect()
    }

    #[test]
    fn the_newest_revision_of_each_key_wins_and_deleted_keys_have_none() {
        let revs = vec![
            rev("/r/secrets/b/x", 2, false),
            rev("/r/secrets/a/y", 3, false),
            rev("/r/secrets/b/x", 5, false),
            rev("/r/secrets/a/z", 6, false),
            rev("/r/secrets/a/z", 7, true),
            rev("/r/secrets/a/y", 8, true),
            rev("/r/secrets/a/y", 9, false),
        ];
        assert_eq!(
            keys_and_revisions(revs),
            [("/r/secrets/a/y".to_string(), 9), ("/r/secrets/b/x".to_string(), 5)]
        );
    }

    #[test]
    fn revisions_out_of_order_in_a_damaged_file_still_pick_the_newest() {
        let revs = vec![rev("/k", 9, false), rev("/k", 4, true), rev("/j", 3, true), rev("/j", 1, false)];
        assert_eq!(keys_and_revisions(revs), [("/k".to_string(), 9)]);
        let sub = |sub, tombstone| KeyRev { sub, ..rev("/s", 7, tombstone) };
        assert_eq!(newest(vec![sub(1, true), sub(0, false)]).len(), 0, "sub revision 1 deleted it");
    }
}
