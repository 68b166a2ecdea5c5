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
use super::pairing::pairing;
use super::record::{
    null_class, EntryRecord, EtcdSummary, Forensics, HistoryRecord, Location, ResidueRecord, ScanReport,
    Summary, WalRecord,
};
use super::verdict::Judge;
use super::{AuditError, Backup, Integrity, Scope};
use crate::container::gardener::Delta;
use crate::container::Trailer;
use crate::encryption::k3s::Token;
use crate::etcd::wal::WalFile;
use crate::etcd::{KeyValueRef, Revision, KEY_BUCKET};
use crate::k8s::{detect_prefix, RegistryKey};

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
    let read = match input {
        Input::Bolt { backup, wal } => bolt(backup, wal, judge, scope, opts)?,
        Input::Delta { delta, size_bytes } => self::delta(delta, size_bytes, judge, scope, opts),
        Input::Range { pages, source, prefix } => range(pages, source, prefix, judge, scope)?,
        Input::Salvage { bytes, why } => salvage(bytes, &why, judge, scope, opts),
    };
    Ok(assemble(container, read, judge, opts))
}

/// One row of the `key` bucket (or its equivalent) that passed the prefix filter.
struct Row<'a> {
    rev: Revision,
    kv: KeyValueRef<'a>,
}

/// What an attacker reads beyond the live entries, as far as it was asked for.
#[derive(Default)]
struct Exposure {
    history: Option<Vec<HistoryRecord>>,
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
    entries: Vec<EntryRecord>,
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
) -> Result<Read, AuditError> {
    let bucket = backup.layout.bucket(KEY_BUCKET).ok_or(AuditError::NotEtcd)?;
    let (rows, undecodable) = read_rows(&bucket.leaves);
    let cluster_id = wal.into_iter().flatten().find_map(|(_, w)| w.cluster_id);
    let carved = if opts.residue { carved_bootstrap(backup, &rows) } else { vec![] };
    let boot = bootstrap(&rows, wal, carved, opts);
    let extended = boot.as_ref().and_then(|b| b.config.clone()).map(|c| judge.with_config(c));
    let judge = extended.as_ref().unwrap_or(judge);
    let prefix = prefix_of(opts, &rows);
    let filter = KeyFilter { prefix: &prefix, scope };
    let residue = opts.residue.then(|| {
        let in_tree: HashSet<(i64, i64)> = rows.iter().map(|r| (r.rev.main, r.rev.sub)).collect();
        forensics::residue(&backup.db, &backup.layout.reachable, &in_tree, &filter, judge)
    });
    let wal = wal.map(|segments| forensics::wal_entries(segments, &filter, judge));
    let (mut cluster, taken_at) = cluster_of(&rows, &prefix, Some(&backup.layout));
    cluster.etcd_cluster_id = cluster_id.map(|id| format!("{id:x}"));
    let cluster = Some(cluster);
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
    let k3s = boot.map(|b| b.report);
    Ok(Read {
        cluster,
        taken_at,
        integrity: backup.integrity.clone(),
        etcd,
        entries,
        exposure,
        k3s,
        judge: extended,
    })
}

fn delta(delta: &Delta, size_bytes: u64, judge: &Judge, scope: &Scope, opts: &ScanOptions) -> Read {
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
    let (cluster, taken_at) = cluster_of(&rows, &prefix, None);
    let cluster = Some(cluster);
    let (entries, history) = judge_rows(rows, &filter, judge, opts.history);
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
    let exposure = Exposure { history, ..Exposure::default() };
    Read {
        cluster,
        taken_at,
        integrity,
        etcd,
        entries,
        exposure,
        k3s: boot.map(|b| b.report),
        judge: extended,
    }
}

fn range(
    pages: &mut PageReader,
    source: &str,
    prefix: &str,
    judge: &Judge,
    scope: &Scope,
) -> Result<Read, AuditError> {
    let filter = KeyFilter { prefix, scope };
    let mut entries = Vec::new();
    let revision = pages(&mut |page| {
        let rows: Vec<Row> = page
            .iter()
            .map(|kv| Row { rev: Revision { main: kv.mod_revision, sub: 0, tombstone: false }, kv: *kv })
            .collect();
        entries.extend(judge_rows(rows, &filter, judge, false).0);
    })?;
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
        cluster: None,
        taken_at: None,
        integrity,
        etcd,
        entries,
        exposure: Exposure::default(),
        k3s: None,
        judge: None,
    })
}

fn salvage(bytes: &[u8], why: &str, judge: &Judge, scope: &Scope, opts: &ScanOptions) -> Read {
    let (db_bytes, _) = crate::container::split_trailer(bytes);
    let salvaged = crate::bolt::salvage(db_bytes);
    let mut seen = HashSet::new();
    let rows: Vec<Row> = salvaged
        .leaves
        .iter()
        .flat_map(|page| page.leaf_items().map_while(Result::ok))
        .filter(|item| !item.is_bucket())
        .filter_map(|item| {
            Some(Row { rev: Revision::parse(item.key)?, kv: KeyValueRef::decode(item.value).ok()? })
        })
        // Every leaf rewrite leaves an older copy of a page behind: keep one.
        .filter(|row| seen.insert((row.rev.main, row.rev.sub)))
        .collect();
    let prefix = prefix_of(opts, &rows);
    let filter = KeyFilter { prefix: &prefix, scope };
    let revision = rows.iter().map(|r| r.rev.main).max().unwrap_or(0);
    let (cluster, taken_at) = cluster_of(&rows, &prefix, None);
    let cluster = Some(cluster);
    let (entries, history) = judge_rows(rows, &filter, judge, opts.history);
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
    let exposure = Exposure { history, ..Exposure::default() };
    Read { cluster, taken_at, integrity, etcd, entries, exposure, k3s: None, judge: None }
}

/// `backup-too-old`: taken longer ago than `--max-age` (a backup whose time
/// is unknown is not judged).
fn age_finding(taken_at: Option<&TakenAt>, opts: &ScanOptions) -> Option<crate::audit::Finding> {
    let (max_age, taken) = (opts.max_age?, taken_at?);
    let now = opts.now.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    });
    let age = now - taken.unix;
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

/// The cluster's identity from the newest revision of the few keys that
/// carry it (and etcd's members bucket when there are pages), and when the
/// backup was taken.
fn cluster_of(
    rows: &[Row],
    prefix: &str,
    layout: Option<&crate::bolt::Layout>,
) -> (Cluster, Option<TakenAt>) {
    let (namespace, kubeadm, nodes) = (
        format!("{prefix}/namespaces/kube-system"),
        format!("{prefix}/configmaps/kube-system/kubeadm-config"),
        format!("{prefix}/minions/"),
    );
    let wanted =
        |k: &[u8]| k == namespace.as_bytes() || k == kubeadm.as_bytes() || k.starts_with(nodes.as_bytes());
    let cluster = cluster::identify(prefix, newest_live(rows, wanted).into_iter(), layout);
    let (node_leases, system_leases) =
        (format!("{prefix}/leases/kube-node-lease/"), format!("{prefix}/leases/kube-system/"));
    let leases = newest_live(rows, |k| {
        k.starts_with(node_leases.as_bytes()) || k.starts_with(system_leases.as_bytes())
    });
    (cluster, cluster::taken_at(prefix, leases.into_iter()))
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
    let entries: Vec<EntryRecord> = live
        .par_iter()
        .map(|(rk, row)| EntryRecord {
            at: Location::new(row.kv.key, rk),
            mod_revision: row.rev.main,
            verdict: judge.judge(row.kv.key, rk, row.kv.value),
        })
        .collect();
    let history = with_history.then(|| history(&in_scope, judge));
    (entries, history)
}

fn assemble(container: Vec<String>, read: Read, judge: &Judge, opts: &ScanOptions) -> ScanReport {
    let Read { cluster, taken_at, integrity, etcd, entries, exposure: x, k3s, judge: extended } = read;
    let judge = extended.as_ref().unwrap_or(judge);
    let summary = Summary::of(entries.iter().map(|e| &e.verdict));
    let forensics = Forensics {
        history: x.history.as_ref().map(|h| Summary::of(h.iter().filter_map(|r| r.verdict.as_ref()))),
        residue: x.residue.as_ref().map(|r| Summary::of(r.iter().filter_map(|r| r.verdict.as_ref()))),
        wal: x.wal.as_ref().map(|w| Summary::of(w.iter().map(|r| &r.verdict))),
    };
    let keys = pairing(&entries, judge);
    let facts = Facts {
        integrity: &integrity,
        db_size: etcd.page_size.map(|_| etcd.size_bytes),
        entries: &entries,
        history: x.history.as_deref(),
        residue: x.residue.as_deref(),
        wal: x.wal.as_deref(),
        keys: &keys,
        k3s: k3s.as_ref(),
    };
    let mut findings = findings(&facts, judge);
    findings.extend(age_finding(taken_at.as_ref(), opts));
    ScanReport {
        container,
        cluster,
        taken_at,
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
        k3s,
        failed_on: Vec::new(),
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

fn history(in_scope: &[(RegistryKey, &[Row])], judge: &Judge) -> Vec<HistoryRecord> {
    in_scope
        .par_iter()
        .flat_map_iter(|(rk, g)| {
            let deleted = g.last().is_some_and(|r| r.rev.tombstone);
            let older = if deleted { *g } else { &g[..g.len() - 1] };
            older.iter().map(move |row| {
                let verdict = (!row.rev.tombstone).then(|| judge.judge(row.kv.key, rk, row.kv.value));
                HistoryRecord {
                    at: Location::new(row.kv.key, rk),
                    mod_revision: row.rev.main,
                    create_revision: row.kv.create_revision,
                    version: row.kv.version,
                    deleted,
                    tombstone: row.rev.tombstone,
                    class: null_class(&verdict),
                    verdict,
                }
            })
        })
        .collect()
}
