//! The commands, end to end: sources → containers → audit → report.
//! `main.rs` only parses arguments and calls these; each writes its report to
//! the writer it is given, returns the exit outcome, and writes one line per
//! failed backup to stderr.

use std::io::Write;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::audit::{
    self, AuditError, Backup, FailOn, Inspection, Judge, KmsOverride, Outcome, ScanOptions, ScanReport, Scope,
};
use crate::catalog::{
    keyring_of, parse_duration, parse_key_ref, AuditRun, BackupRecord, Catalog, CatalogError, ContentId,
    Origin,
};
use crate::container::{self, gardener, ContainerError, Content, Limits, Trailer};
use crate::encryption::{ConfigError, EncryptionConfig};
use crate::etcd::wal::{self, WalFile};
use crate::progress::Progress;
use crate::report::catalog::Answer;
use crate::report::{self, keys::Pairing, Entry, Format, Skipped};
use crate::source::live::{Live, LiveKv, LiveOptions, LiveTarget};
use crate::source::remote::{ObjectUrl, Remote};
use crate::source::{self, Blob, Found, SourceError};

pub struct ScanArgs {
    pub sources: Vec<PathBuf>,
    pub configs: Vec<PathBuf>,
    pub resources: Vec<String>,
    /// `--kms NAME=unix:///path` plugin endpoint overrides.
    pub kms: Vec<KmsOverride>,
    pub options: ScanOptions,
    pub fail_on: FailOn,
    pub format: Format,
    pub limits: Limits,
    pub progress: Progress,
    pub live: LiveArgs,
    /// `--catalog PATH`: record every audited backup; skip what it already holds.
    pub catalog: Option<PathBuf>,
    /// `--rescan`: audit again what the catalog already holds.
    pub rescan: bool,
}

/// Why a command could not run at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{0}")]
    Usage(String),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

pub fn load_configs(paths: &[PathBuf]) -> Result<Vec<EncryptionConfig>, ConfigError> {
    paths.iter().map(|p| EncryptionConfig::load(p)).collect()
}

pub fn inspect(
    out: &mut dyn Write,
    sources: &[PathBuf],
    limits: Limits,
    live: &LiveArgs,
    progress: &Progress,
    format: Format,
) -> Result<Outcome, RunError> {
    let audit = |unit: &Unit| match unit {
        Unit::Database { bytes, chain, .. } => {
            let backup = Backup::open(bytes)?;
            let mut inspection = audit::inspect(&backup);
            inspection.container = chain.to_vec();
            Ok(inspection)
        }
        Unit::Delta { .. } => {
            Err(AuditError::NoDatabase("a Gardener delta snapshot has no bbolt pages to inspect"))
        }
        Unit::Range { .. } => {
            Err(AuditError::NoDatabase("--live-mode range reads no bbolt pages to inspect"))
        }
    };
    let audited = audit_sources(sources, &Ctx { limits, progress, live, sweep: None, audit: &audit });
    let outcome =
        worst(&audited, |i: &Inspection| if i.integrity.ok { Outcome::Clean } else { Outcome::Findings });
    report::inspect::render(out, &audited.0, &audited.1, format)?;
    Ok(outcome)
}

pub fn scan(out: &mut dyn Write, args: &ScanArgs) -> Result<Outcome, RunError> {
    let audited = scan_all(args)?;
    let outcome = worst(
        &audited,
        |r: &ScanReport| if r.failed_on.is_empty() { Outcome::Clean } else { Outcome::Findings },
    );
    let (entries, skipped) = audited;
    report::scan::render(out, &entries, &skipped, args.format)?;
    Ok(outcome)
}

/// `keys`: exit 1 when a needed key is missing or any value is undecryptable.
pub fn keys(out: &mut dyn Write, args: &ScanArgs) -> Result<Outcome, RunError> {
    let (entries, skipped) = scan_all(args)?;
    let entries: Vec<Entry<Pairing>> = entries
        .into_iter()
        .map(|e| Entry {
            source: e.source,
            error: e.error,
            result: e.result.map(Pairing::of),
            object: e.object,
        })
        .collect();
    let audited = (entries, skipped);
    let outcome =
        worst(&audited, |p: &Pairing| if p.restorable { Outcome::Clean } else { Outcome::Findings });
    report::keys::render(out, &audited.0, &audited.1, args.format)?;
    Ok(outcome)
}

/// A question for the catalog.
pub enum CatalogQuery {
    List,
    /// `PROVIDER:NAME`, split at the first `:` (key names may contain `:`).
    CanRetire(String),
    Needs(String),
    Forget {
        source: Option<String>,
        older_than: Option<String>,
    },
}

/// `catalog …`: `can-retire` exits 1 when a backup still needs the key,
/// `needs` exits 2 for a source never audited.
pub fn catalog(
    out: &mut dyn Write,
    path: Option<&Path>,
    query: CatalogQuery,
    format: Format,
) -> Result<Outcome, RunError> {
    let catalog = Catalog::open(catalog_path(path)?)?;
    let (answer, outcome) = match query {
        CatalogQuery::List => (Answer::List { backups: catalog.list()? }, Outcome::Clean),
        CatalogQuery::CanRetire(key) => {
            let (provider, name) = parse_key_ref(&key).ok_or_else(|| {
                RunError::Usage(format!("expected PROVIDER:NAME (e.g. aescbc:key1), got {key:?}"))
            })?;
            let backups = catalog.can_retire(provider, name)?;
            let outcome = if backups.is_empty() { Outcome::Clean } else { Outcome::Findings };
            (Answer::CanRetire { key, backups }, outcome)
        }
        CatalogQuery::Needs(source) => match catalog.needs(&source)? {
            Some(keys) => (Answer::Needs { source, keys }, Outcome::Clean),
            None => {
                return Err(RunError::Usage(format!(
                    "{source} is not in the catalog {}",
                    catalog.path().display()
                )))
            }
        },
        CatalogQuery::Forget { source, older_than } => {
            let forgotten = match (source, older_than) {
                (Some(source), None) => catalog.forget_source(&source)?,
                (None, Some(age)) => {
                    catalog.forget_older_than(parse_duration(&age).map_err(RunError::Usage)?)?
                }
                _ => {
                    return Err(RunError::Usage(
                        "catalog forget takes a SOURCE or --older-than DURATION".into(),
                    ))
                }
            };
            (Answer::Forget { forgotten }, Outcome::Clean)
        }
    };
    report::catalog::render(out, &answer, format)?;
    Ok(outcome)
}

/// `--catalog` without a path (or no flag for `catalog …`) means the default file.
pub fn catalog_path(path: Option<&Path>) -> Result<PathBuf, CatalogError> {
    match path {
        Some(p) if !p.as_os_str().is_empty() => Ok(p.to_path_buf()),
        _ => Catalog::default_path(),
    }
}

pub fn configs(out: &mut dyn Write, paths: &[PathBuf], format: Format) -> Result<Outcome, RunError> {
    let configs = load_configs(paths)?;
    let comparison = audit::configs::compare(&configs);
    let breaks = comparison.differences.iter().any(|d| d.breaks_reads);
    report::configs::render(out, &comparison, format)?;
    Ok(if breaks { Outcome::Findings } else { Outcome::Clean })
}

type Audited<T> = (Vec<Entry<T>>, Vec<Skipped>);

fn scan_all(args: &ScanArgs) -> Result<Audited<ScanReport>, RunError> {
    let configs = load_configs(&args.configs)?;
    let scope = Scope::new(args.resources.iter().map(String::as_str), &configs);
    let judge = Judge::new(configs, args.kms.clone());
    let catalog = match &args.catalog {
        Some(path) => Some(Catalog::open(catalog_path(Some(path))?)?),
        None => None,
    };
    let run = AuditRun::now(keyring_of(&judge));
    let sweep = catalog.as_ref().map(|catalog| Sweep { catalog, run: &run, rescan: args.rescan });
    let audit = |unit: &Unit| {
        let mut report = match unit {
            Unit::Database { bytes, chain, wal } => {
                let backup = Backup::open(bytes)?;
                let mut report = audit::scan(&backup, &judge, &scope, &args.options, wal.as_deref())?;
                report.container = chain.to_vec();
                for (name, segment) in wal.iter().flatten() {
                    report.integrity.notes.extend(segment.notes.iter().map(|n| format!("{name}: {n}")));
                }
                report
            }
            Unit::Range { live, source } => {
                let prefix = match &args.options.etcd_prefix {
                    Some(p) => p.clone(),
                    None => live.detect_prefix(&crate::k8s::DEFAULT_PREFIXES)?,
                };
                let mut read = |page: &mut dyn FnMut(Vec<LiveKv>)| Ok(live.range(&prefix, page)?);
                audit::scan_range(&mut read, source, &prefix, &judge, &scope)?
            }
            Unit::Delta { delta, chain, bytes } => {
                audit::scan_delta(delta, chain.to_vec(), bytes.len() as u64, &judge, &scope, &args.options)
            }
        };
        if catalog.is_some() {
            report.content = content_id(unit, report.integrity.sha256_trailer);
        }
        report.failed_on = args.fail_on.matched(&report);
        Ok(report)
    };
    let ctx = Ctx { limits: args.limits, progress: &args.progress, live: &args.live, sweep, audit: &audit };
    let (entries, mut skipped) = audit_sources(&args.sources, &ctx);
    if let Some(catalog) = &catalog {
        let records: Vec<BackupRecord> = entries.iter().filter_map(|e| record_of(e, &run)).collect();
        catalog.record_all(&records)?;
        let swept = skipped.iter().filter(|s| s.reason == ALREADY_AUDITED).count();
        eprintln!(
            "etcd-audit: catalog {}: recorded {} backups, skipped {swept} already audited",
            catalog.path().display(),
            records.len()
        );
    }
    skipped.sort_by(|a, b| a.path.cmp(&b.path));
    Ok((entries, skipped))
}

/// The catalog record of one audited backup (none for failures and for
/// range reads, which have no content to key it by).
fn record_of(entry: &Entry<ScanReport>, run: &AuditRun) -> Option<BackupRecord> {
    let report = entry.result.as_ref()?;
    let (sha256, size) = report.content.clone()?;
    let origin = match &entry.object {
        Some(object) => Origin::object(object),
        None => std::fs::metadata(&entry.source)
            .ok()
            .filter(|m| m.is_file())
            .map_or(Origin::Other, |m| Origin::file(&m)),
    };
    let content = ContentId { sha256, size };
    Some(BackupRecord::from_scan(entry.source.clone(), &content, origin, report, run))
}

const ALREADY_AUDITED: &str =
    "already audited with these keys and this tool version (--rescan audits it again)";

/// Incremental sweeps: skip what the catalog already holds, unless `--rescan`.
struct Sweep<'s> {
    catalog: &'s Catalog,
    run: &'s AuditRun,
    rescan: bool,
}

impl Sweep<'_> {
    fn seen(&self, source: &str, origin: Origin) -> Option<Skipped> {
        let seen =
            !self.rescan && self.catalog.already_audited(&self.run.seen(source, origin)).unwrap_or(false);
        seen.then(|| Skipped { path: source.to_string(), reason: ALREADY_AUDITED.to_string() })
    }
}

/// One backup, unwrapped and ready to audit.
enum Unit<'u> {
    Database {
        bytes: &'u [u8],
        chain: &'u [String],
        wal: Option<Vec<(String, WalFile)>>,
    },
    Delta {
        delta: &'u gardener::Delta,
        chain: &'u [String],
        bytes: &'u [u8],
    },
    /// A live cluster read key by key (`--live-mode range`).
    Range {
        live: &'u Live,
        source: &'u str,
    },
}

impl Unit<'_> {
    /// What the catalog keys a backup by: the bbolt bytes (without a snapshot
    /// trailer) or the delta snapshot; a range read has no content.
    fn content(&self) -> Option<&[u8]> {
        match self {
            Unit::Database { bytes, .. } => Some(container::split_trailer(bytes).0),
            Unit::Delta { bytes, .. } => Some(bytes),
            Unit::Range { .. } => None,
        }
    }
}

/// The catalog key of a unit: SHA-256 and length of its content. A valid
/// snapshot trailer already is the SHA-256 of the bbolt bytes, so those are
/// hashed again only when there is no trailer to take it from.
fn content_id(unit: &Unit, trailer: Trailer) -> Option<(String, u64)> {
    let content = unit.content()?;
    let sha256 = match unit {
        Unit::Database { bytes, .. } if trailer == Trailer::Valid => hex::encode(&bytes[content.len()..]),
        _ => ContentId::of(content).sha256,
    };
    Some((sha256, content.len() as u64))
}

/// How live `etcd://` sources are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LiveMode {
    /// The Maintenance Snapshot RPC, then the offline pipeline (history, residue, inspect all work).
    Snapshot,
    /// Paginated Range requests at one revision, for users without snapshot permission.
    Range,
}

#[derive(Clone, Debug)]
pub struct LiveArgs {
    pub mode: LiveMode,
    pub options: LiveOptions,
}

impl Default for LiveArgs {
    fn default() -> Self {
        LiveArgs { mode: LiveMode::Snapshot, options: LiveOptions::default() }
    }
}

type AuditFn<'f, T> = dyn Fn(&Unit) -> Result<T, AuditError> + Sync + 'f;

/// What every step of the walk over sources needs.
struct Ctx<'c, T> {
    limits: Limits,
    progress: &'c Progress,
    live: &'c LiveArgs,
    sweep: Option<Sweep<'c>>,
    audit: &'c AuditFn<'c, T>,
}

/// Every backup in every source, audited in parallel, reported in a stable
/// order (sources as given, then paths in sorted order).
fn audit_sources<T: Serialize + Send>(sources: &[PathBuf], ctx: &Ctx<T>) -> Audited<T> {
    let per_source: Vec<Audited<T>> = sources
        .par_iter()
        .map(|path| {
            let name = path.display().to_string();
            if let Some(url) = ObjectUrl::parse(&name) {
                return visit_remote(&url, ctx);
            }
            if let Some(target) = LiveTarget::parse(&name) {
                return visit_live(&target, ctx);
            }
            match source::discover(path) {
                Ok(found) => {
                    let explicit = found.len() == 1 && found[0].path() == path.as_path();
                    visit_all(&found, None, explicit, ctx)
                }
                Err(e) => (vec![failed(name, &e)], vec![]),
            }
        })
        .collect();
    merge(per_source)
}

/// Every object the URL names, downloaded (several at once) and audited.
fn visit_remote<T: Serialize + Send>(url: &ObjectUrl, ctx: &Ctx<T>) -> Audited<T> {
    let remote = match Remote::connect(url) {
        Ok(remote) => remote,
        Err(e) => return (vec![failed(format!("{}://{}/{}", url.scheme, url.bucket, url.key), &e)], vec![]),
    };
    let objects = match remote.objects() {
        Ok(objects) => objects,
        Err(e) => return (vec![failed(format!("{}://{}/{}", url.scheme, url.bucket, url.key), &e)], vec![]),
    };
    let explicit = objects.len() == 1;
    let results: Vec<Audited<T>> = objects
        .into_par_iter()
        .map(|mut object| {
            let name = object.url.clone();
            if let Some(skip) = ctx.sweep.as_ref().and_then(|s| s.seen(&name, Origin::object(&object))) {
                return (vec![], vec![skip]);
            }
            let bar = ctx.progress.download(&name, object.size);
            let downloaded = remote.download(&mut object, &|n| bar.inc(n));
            bar.finish_and_clear();
            let blob = match downloaded {
                Ok(blob) => blob,
                Err(e) => return (vec![failed(name, &e)], vec![]),
            };
            let (mut entries, skipped) = visit_blob(blob, &name, vec![], explicit, ctx);
            for e in &mut entries {
                e.object = Some(object.clone());
            }
            (entries, skipped)
        })
        .collect();
    merge(results)
}

/// A live cluster: a snapshot streamed to a temp file and audited like a
/// file, or (range mode) read key by key.
fn visit_live<T: Serialize + Send>(target: &LiveTarget, ctx: &Ctx<T>) -> Audited<T> {
    let live = match Live::connect(target, &ctx.live.options) {
        Ok(live) => live,
        Err(e) => return (vec![failed(target.url.clone(), &e)], vec![]),
    };
    if ctx.live.mode == LiveMode::Range {
        return one(target.url.clone(), (ctx.audit)(&Unit::Range { live: &live, source: &target.url }));
    }
    let bar = ctx.progress.download(&target.url, 0);
    let streamed = live.snapshot(&|n| bar.inc(n));
    bar.finish_and_clear();
    match streamed {
        Ok(blob) => visit_blob(blob, &target.url, vec!["etcd-live".to_string()], true, ctx),
        Err(e) => (vec![failed(target.url.clone(), &e)], vec![]),
    }
}

/// `archive` is `(display name, temp root, chain)` when `found` came out of an archive.
fn visit_all<T: Serialize + Send>(
    found: &[Found],
    archive: Option<(&str, &Path, &[String])>,
    explicit: bool,
    ctx: &Ctx<T>,
) -> Audited<T> {
    let results: Vec<Audited<T>> = found.par_iter().map(|f| visit(f, archive, explicit, ctx)).collect();
    merge(results)
}

fn visit<T: Serialize + Send>(
    found: &Found,
    archive: Option<(&str, &Path, &[String])>,
    explicit: bool,
    ctx: &Ctx<T>,
) -> Audited<T> {
    let (name, outer_chain) = match archive {
        Some((outer, root, chain)) => {
            let inner = found.path().strip_prefix(root).unwrap_or(found.path());
            (format!("{outer}!/{}", inner.display()), chain.to_vec())
        }
        None => (found.path().display().to_string(), vec![]),
    };
    match found {
        Found::DataDir(dir) => one(name, audit_data_dir(dir, outer_chain, ctx)),
        Found::File(path) if archive.is_none() && ctx.sweep.is_some() => {
            let origin = std::fs::metadata(path).map_or(Origin::Other, |m| Origin::file(&m));
            match ctx.sweep.as_ref().and_then(|s| s.seen(&name, origin)) {
                Some(skip) => (vec![], vec![skip]),
                None => visit_file(path, name, outer_chain, explicit, ctx),
            }
        }
        Found::File(path) => visit_file(path, name, outer_chain, explicit, ctx),
    }
}

fn visit_file<T: Serialize + Send>(
    path: &Path,
    name: String,
    outer_chain: Vec<String>,
    explicit: bool,
    ctx: &Ctx<T>,
) -> Audited<T> {
    match Blob::open(path) {
        Ok(blob) => visit_blob(blob, &name, outer_chain, explicit, ctx),
        Err(e) => (vec![failed(name, &e)], vec![]),
    }
}

/// Unwraps one file's bytes and audits what is inside.
fn visit_blob<T: Serialize + Send>(
    blob: Blob,
    name: &str,
    outer_chain: Vec<String>,
    explicit: bool,
    ctx: &Ctx<T>,
) -> Audited<T> {
    let mut budget = ctx.limits.max_unpacked_bytes;
    let bar = ctx.progress.task("unpacking", name);
    let unwrapped = container::unwrap(blob, name, &mut budget);
    bar.finish_and_clear();
    let audit = |unit: &Unit| {
        let bar = ctx.progress.task("auditing", name);
        let result = (ctx.audit)(unit);
        bar.finish_and_clear();
        result
    };
    let unwrapped = match unwrapped {
        Ok(u) => u,
        Err(ContainerError::Unrecognized) if !explicit => {
            let reason = ContainerError::Unrecognized.to_string();
            return (vec![], vec![Skipped { path: name.to_string(), reason }]);
        }
        Err(e) => return (vec![failed(name.to_string(), &e)], vec![]),
    };
    let chain: Vec<String> =
        outer_chain.into_iter().chain(unwrapped.chain.iter().map(|c| c.to_string())).collect();
    let result = match unwrapped.content {
        Content::Database(blob) => audit(&Unit::Database { bytes: blob.bytes(), chain: &chain, wal: None }),
        Content::Delta(blob) => gardener::parse(blob.bytes())
            .map_err(AuditError::from)
            .and_then(|delta| audit(&Unit::Delta { delta: &delta, chain: &chain, bytes: blob.bytes() })),
        Content::Directory(dir) => {
            return match source::discover(dir.path()) {
                Ok(inner) => visit_all(&inner, Some((name, dir.path(), &chain)), false, ctx),
                Err(e) => (vec![failed(name.to_string(), &e)], vec![]),
            };
        }
    };
    one(name.to_string(), result)
}

/// Concatenates per-part results, keeping their order.
fn merge<T: Serialize>(parts: Vec<Audited<T>>) -> Audited<T> {
    let (mut entries, mut skipped) = (Vec::new(), Vec::new());
    for (e, s) in parts {
        entries.extend(e);
        skipped.extend(s);
    }
    (entries, skipped)
}

fn one<T: Serialize>(name: String, result: Result<T, AuditError>) -> Audited<T> {
    match result {
        Ok(r) => (vec![Entry { source: name, error: None, result: Some(r), object: None }], vec![]),
        Err(e) => (vec![failed(name, &e)], vec![]),
    }
}

fn audit_data_dir<T>(dir: &Path, outer_chain: Vec<String>, ctx: &Ctx<T>) -> Result<T, AuditError> {
    let (db_path, segments) = source::data_dir(dir)?;
    let db = Blob::open(&db_path)?;
    let mut wal = Vec::with_capacity(segments.len());
    for segment in &segments {
        let blob = Blob::open(segment)?;
        wal.push((file_name(segment), wal::read_wal(blob.bytes())));
    }
    let chain: Vec<String> =
        outer_chain.into_iter().chain(["data-dir".to_string(), "bbolt".to_string()]).collect();
    let bar = ctx.progress.task("auditing", &dir.display().to_string());
    let result = (ctx.audit)(&Unit::Database { bytes: db.bytes(), chain: &chain, wal: Some(wal) });
    bar.finish_and_clear();
    result
}

fn file_name(path: &Path) -> String {
    path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
}

fn failed<T: Serialize>(source: String, e: &dyn std::fmt::Display) -> Entry<T> {
    eprintln!("etcd-audit: {source}: {e}");
    Entry { source, error: Some(e.to_string()), result: None, object: None }
}

/// The highest outcome over all backups. Nothing audited at all is a failure
/// (exit 2), unless the catalog showed everything was audited already.
fn worst<T: Serialize>(audited: &Audited<T>, judge: impl Fn(&T) -> Outcome) -> Outcome {
    let (entries, skipped) = audited;
    let nothing =
        if skipped.iter().any(|s| s.reason == ALREADY_AUDITED) { Outcome::Clean } else { Outcome::Failed };
    entries.iter().map(|e| e.result.as_ref().map_or(Outcome::Failed, &judge)).max().unwrap_or(nothing)
}

impl From<SourceError> for AuditError {
    fn from(e: SourceError) -> Self {
        AuditError::Source(e)
    }
}
