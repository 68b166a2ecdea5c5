//! The commands, end to end: the walk yields backups, each is audited, the
//! report is written. `main.rs` turns arguments into these settings and
//! calls one function; each writes its report to the writer it is given,
//! returns the exit outcome, and writes one line per failed backup to stderr.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;

use crate::audit::exposure::{self, BackupReading, Exposure, Model, Readable};
use crate::audit::sweep::{self, Member, SweepOptions};
use crate::audit::{
    self, AuditError, Backup, FailOn, Input, Inspection, Judge, KmsOverride, Outcome, ScanOptions,
    ScanReport, Scope,
};
use crate::catalog::{
    self, AuditRun, BackupRecord, Catalog, CatalogError, Claim, ContentId, KeyRef, Location, Worker,
};
use crate::container::{self, gardener, Limits, Trailer};
use crate::encryption::hygiene::KnownKeys;
use crate::encryption::{ConfigError, EncryptionConfig};
use crate::etcd::{wal, KeyValueRef};
use crate::progress::Progress;
use crate::report::catalog::Answer;
use crate::report::sarif::SarifOptions;
use crate::report::scan::ScanFormat;
use crate::report::{self, keys::Pairing, Entry, Format};
use crate::source::live::LiveOptions;
use crate::walk::{self, Item, LiveMode, Payload, SkipReason, Walk, Walked};

/// Where backups come from and how they are read (every command that reads backups).
pub struct SourceArgs {
    /// Paths, URLs and endpoints as the user wrote them.
    pub sources: Vec<String>,
    pub limits: Limits,
    /// Connections one object download uses at most.
    pub connections: usize,
    pub progress: Progress,
    pub live_mode: LiveMode,
    pub live: LiveOptions,
    /// `--shard`/`--shards`: this worker's share of prefixes and folders.
    pub shard: Option<walk::Shard>,
}

/// The keys values are judged with, and which values (every command that judges).
pub struct KeyArgs {
    pub configs: Vec<PathBuf>,
    /// Keys known to be public (the docs' and `--known-keys`).
    pub known_keys: KnownKeys,
    /// In scope besides Secrets (and what the configs name).
    pub resources: Vec<String>,
    /// `--kms NAME=unix:///path` plugin endpoint overrides.
    pub kms: Vec<KmsOverride>,
}

pub struct ScanArgs {
    pub input: SourceArgs,
    pub keys: KeyArgs,
    pub options: ScanOptions,
    pub fail_on: FailOn,
    /// `--expect-every`: the longest expected interval between two backups of a cluster.
    pub expect_every: Option<std::time::Duration>,
    /// `--rotate-every`: how long one write key may stay in use.
    pub rotate_every: std::time::Duration,
    /// The report on the writer the command is given (`keys`: table or JSON only).
    pub format: ScanFormat,
    /// `--output FORMAT=FILE`: more reports of the same run.
    pub also: Vec<(ScanFormat, PathBuf)>,
    pub sarif: SarifOptions,
    /// `--metrics-file PATH` (and `--metrics-per-backup`).
    pub metrics: Option<MetricsFile>,
    /// `--catalog[=PATH|URL]`: record every audited backup; skip what it
    /// already holds (or, in a database, what another worker is auditing).
    pub catalog: Option<Location>,
    /// `--rescan`: audit again what the catalog already holds.
    pub rescan: bool,
    /// `--claim-lease`: how long a database claim outlives this worker.
    pub claim_lease: std::time::Duration,
}

/// Where Prometheus metrics of a scan go.
pub struct MetricsFile {
    pub path: PathBuf,
    pub per_backup: bool,
}

/// `exposure`: what whoever holds the backups can read under a model.
pub struct ExposureArgs {
    pub input: SourceArgs,
    /// Values under a known public key count as readable with the file alone;
    /// ConfigMaps are always in scope.
    pub keys: KeyArgs,
    /// The etcd prefix, k3s tokens and `--now`; history and residue are always read.
    pub options: ScanOptions,
    pub assume: Model,
    pub format: report::exposure::Format,
}

/// Why a command could not run at all (exit 2).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{name} is not in the catalog {catalog}")]
    NotInCatalog { name: String, catalog: String },
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
    #[error("writing {}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    #[error(transparent)]
    Exposure(#[from] exposure::NeedsInput),
}

pub fn load_configs(paths: &[PathBuf]) -> Result<Vec<EncryptionConfig>, ConfigError> {
    paths.iter().map(|p| EncryptionConfig::load(p)).collect()
}

pub fn inspect(out: &mut dyn Write, args: &SourceArgs, format: Format) -> Result<Outcome, RunError> {
    let audit = |item: &Item| match &item.payload {
        Payload::Database { blob, .. } => {
            Ok(audit::inspect(&Backup::open(blob.bytes())?, item.chain.clone()))
        }
        Payload::Delta(_) => {
            Err(AuditError::NoDatabase("a Gardener delta snapshot has no bbolt pages to inspect"))
        }
        Payload::Range(_) => Err(AuditError::NoDatabase("--live-mode range reads no bbolt pages to inspect")),
    };
    let walked = walk::walk(&args.sources, &walk_settings(args, None, false), &audit);
    let outcome =
        worst(&walked, |i: &Inspection| if i.integrity.ok { Outcome::Clean } else { Outcome::Findings });
    let entries = entries(walked.backups);
    finish(report::inspect::render(out, &entries, &walked.skipped, format), outcome)
}

pub fn scan(out: &mut dyn Write, args: &ScanArgs) -> Result<Outcome, RunError> {
    let started = std::time::Instant::now();
    let (walked, catalogued) = scan_all(args)?;
    let outcome = worst(
        &walked,
        |r: &ScanReport| if r.failed_on.is_empty() { Outcome::Clean } else { Outcome::Findings },
    );
    let sweep = SweepOptions {
        expect_every: args.expect_every,
        max_age: args.options.max_age,
        now: args.options.now,
        rotate_every: Some(args.rotate_every),
        partial: args.input.shard.is_some(),
    };
    if let Some(shard) =
        args.input.shard.filter(|_| args.expect_every.is_some() || args.options.max_age.is_some())
    {
        eprintln!(
            "etcd-audit: shard {shard}: gaps and the age of each cluster's newest backup need every backup: \
             read them from the merged catalog (etcd-audit catalog clusters)"
        );
    }
    let audited: Vec<Member> = walked
        .backups
        .iter()
        .filter_map(|d| Some(Member::of_report(&d.name, d.result.as_ref().ok()?)))
        .collect();
    let seen: BTreeSet<String> = audited.iter().filter_map(|m| m.uid.clone()).collect();
    let shown = catalogued.is_some().then_some(&seen);
    let mut clusters = sweep::group(with_catalogued(audited, catalogued), shown, &sweep);
    for cluster in &mut clusters {
        cluster.failed_on = args.fail_on.matched_findings(&cluster.findings);
    }
    // Cluster-level findings count for the exit code like a backup's.
    let outcome = match clusters.iter().any(|c| !c.failed_on.is_empty()) {
        true => outcome.max(Outcome::Findings),
        false => outcome,
    };
    let entries = entries(walked.backups);
    let render = |out: &mut dyn Write, format| {
        report::scan::render_as(out, &entries, &clusters, &walked.skipped, format, &args.sarif)
    };
    for (format, path) in &args.also {
        report::output::write_file(path, |out| render(out, *format))
            .map_err(|source| RunError::File { path: path.clone(), source })?;
    }
    if let Some(metrics) = &args.metrics {
        let run = report::metrics::RunFacts {
            finished: crate::time::now_or(None),
            duration_seconds: started.elapsed().as_secs_f64(),
            now: crate::time::now_or(args.options.now),
            per_backup: metrics.per_backup,
            shard: args.input.shard.map(|s| s.to_string()),
        };
        report::output::write_file(&metrics.path, |out| {
            report::metrics::render(out, &entries, &clusters, &run)
        })
        .map_err(|source| RunError::File { path: metrics.path.clone(), source })?;
    }
    finish(render(out, args.format), outcome)
}

/// `keys`: exit 1 when a needed key is missing or any value is undecryptable.
pub fn keys(out: &mut dyn Write, args: &ScanArgs) -> Result<Outcome, RunError> {
    let (walked, _) = scan_all(args)?;
    let walked = walked.map(|_, result| result.map(Pairing::of));
    let outcome = worst(&walked, |p: &Pairing| if p.restorable { Outcome::Clean } else { Outcome::Findings });
    let entries = entries(walked.backups);
    let format = args.format.basic().unwrap_or(Format::Table);
    finish(report::keys::render(out, &entries, &walked.skipped, format), outcome)
}

/// `exposure`: exit 1 when the assumed holder can read any Secret (or a
/// credential-like object), 2 when a backup could not be read.
pub fn exposure(out: &mut dyn Write, args: &ExposureArgs) -> Result<Outcome, RunError> {
    let configs = load_configs(&args.keys.configs)?;
    let plan = exposure::Plan {
        assume: args.assume,
        configs: &configs,
        known_keys: &args.keys.known_keys,
        kms: &args.keys.kms,
    };
    let judges = plan.readings(&args.options)?;
    let extra = ["configmaps"].into_iter().chain(args.keys.resources.iter().map(String::as_str));
    let scope = Scope::new(extra, &configs);
    let audit = |item: &Item| -> Result<Vec<(Model, Readable)>, AuditError> {
        judges
            .iter()
            .map(|r| {
                let opts = ScanOptions { meter: item.meter.clone(), ..r.options.clone() };
                let report = audit_item(item, &r.judge, &scope, &opts, args.input.limits)?;
                Ok((r.model, Readable::of(&report).map_err(AuditError::Spool)?))
            })
            .collect()
    };
    let walked = walk::walk(&args.input.sources, &walk_settings(&args.input, None, false), &audit);
    let mut readings = Vec::new();
    let walked = walked.map(|name, result| {
        result.map(|models| readings.push(BackupReading { source: name.to_string(), models }))
    });
    let exposure = Exposure::build(args.assume, &readings);
    let listed = !exposure.secrets.is_empty() || !exposure.others.is_empty();
    let outcome = worst(&walked, |_| if listed { Outcome::Findings } else { Outcome::Clean });
    let entries = entries(walked.backups);
    finish(report::exposure::render(out, &exposure, &entries, &walked.skipped, args.format), outcome)
}

/// A question for the catalog.
pub enum CatalogQuery {
    /// Every record, or those of one cluster (UID).
    List {
        cluster: Option<String>,
    },
    /// Which records (of one cluster, or all) still need the key.
    CanRetire {
        key: KeyRef,
        cluster: Option<String>,
    },
    Needs(String),
    ForgetSource(String),
    ForgetOlderThan(std::time::Duration),
    /// Every record and sighting, as JSON lines (to move or merge catalogs).
    Export,
    /// The per-cluster sweep over every record (the fleet's view), with the
    /// policy its findings are checked against.
    Clusters {
        sweep: SweepOptions,
        fail_on: FailOn,
    },
    /// An export read into the catalog (created when missing): `-` is stdin.
    Import(PathBuf),
}

/// `catalog …` on an existing catalog (never created by a query): `can-retire`
/// exits 1 when a backup still needs the key, `needs` exits 2 for a source
/// never audited.
pub fn catalog(
    out: &mut dyn Write,
    at: Option<Location>,
    query: CatalogQuery,
    format: Format,
) -> Result<Outcome, RunError> {
    if let CatalogQuery::Import(file) = &query {
        let catalog = Catalog::open(catalog_location(at)?)?;
        let moved = match file.as_os_str() == "-" {
            true => catalog.import(std::io::stdin().lock())?,
            false => {
                let f = std::fs::File::open(file)
                    .map_err(|source| RunError::File { path: file.clone(), source })?;
                catalog.import(std::io::BufReader::new(f))?
            }
        };
        return finish(
            report::catalog::render(out, &Answer::Import { imported: moved }, format),
            Outcome::Clean,
        );
    }
    let catalog = Catalog::open_existing(catalog_location(at)?)?;
    let (answer, outcome) = match query {
        CatalogQuery::List { cluster } => {
            let backups = catalog.list()?.into_iter().filter(|r| of_cluster(r, &cluster)).collect();
            (Answer::List { backups }, Outcome::Clean)
        }
        CatalogQuery::CanRetire { key, cluster } => {
            let backups: Vec<BackupRecord> = catalog
                .can_retire(&key.provider, &key.name)?
                .into_iter()
                .filter(|r| of_cluster(r, &cluster))
                .collect();
            let outcome = if backups.is_empty() { Outcome::Clean } else { Outcome::Findings };
            (Answer::CanRetire { key: key.to_string(), backups }, outcome)
        }
        CatalogQuery::Needs(source) => match catalog.needs(&source)? {
            Some(keys) => (Answer::Needs { source, keys }, Outcome::Clean),
            None => {
                let catalog = catalog.location().to_string();
                return Err(RunError::NotInCatalog { name: source, catalog });
            }
        },
        CatalogQuery::ForgetSource(source) => {
            (Answer::Forget { forgotten: catalog.forget_source(&source)? }, Outcome::Clean)
        }
        CatalogQuery::ForgetOlderThan(age) => {
            (Answer::Forget { forgotten: catalog.forget_older_than(age)? }, Outcome::Clean)
        }
        CatalogQuery::Export => {
            catalog.export(out)?;
            return Ok(Outcome::Clean);
        }
        CatalogQuery::Clusters { sweep, fail_on } => {
            let members = catalog.members()?;
            let mut clusters = sweep::group(members, None, &sweep);
            for c in &mut clusters {
                c.failed_on = fail_on.matched_findings(&c.findings);
            }
            let failed = clusters.iter().any(|c| !c.failed_on.is_empty());
            (Answer::Clusters { clusters }, if failed { Outcome::Findings } else { Outcome::Clean })
        }
        CatalogQuery::Import(_) => unreachable!("imported above"),
    };
    finish(report::catalog::render(out, &answer, format), outcome)
}

/// Whether a record belongs to `cluster` (every record when `None`).
fn of_cluster(record: &BackupRecord, cluster: &Option<String>) -> bool {
    cluster.as_ref().is_none_or(|uid| record.cluster_uid.as_ref() == Some(uid))
}

/// The catalog: the one given, else `ETCD_AUDIT_CATALOG_URL`, else the default file.
pub fn catalog_location(at: Option<Location>) -> Result<Location, CatalogError> {
    at.map_or_else(Location::default_location, Ok)
}

/// `configs`: exit 1 on a read-breaking difference or a critical or high
/// hygiene finding (published or weak keys, identity first, …).
pub fn configs(
    out: &mut dyn Write,
    paths: &[PathBuf],
    known_keys: KnownKeys,
    format: Format,
) -> Result<Outcome, RunError> {
    let configs = load_configs(paths)?;
    let mut comparison = audit::configs::compare(&configs);
    let judge = Judge::new(configs, vec![]).with_known_keys(known_keys);
    comparison.findings = audit::hygiene::key_and_config_findings(&judge);
    let serious = comparison.findings.iter().any(|f| f.severity <= audit::Severity::High);
    let breaks = comparison.differences.iter().any(|d| d.breaks_reads);
    let outcome = if breaks || serious { Outcome::Findings } else { Outcome::Clean };
    finish(report::configs::render(out, &comparison, format), outcome)
}

/// A reader that stopped reading (`| head`) is no failure: the exit code is
/// the audit's, and nothing more is said.
fn finish(written: std::io::Result<()>, outcome: Outcome) -> Result<Outcome, RunError> {
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(outcome),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(outcome),
    }
}

fn walk_settings<'a>(
    args: &'a SourceArgs,
    pass_over: Option<&'a walk::PassOver<'a>>,
    salvage: bool,
) -> Walk<'a> {
    Walk {
        limits: args.limits,
        connections: args.connections,
        live_mode: args.live_mode,
        live: &args.live,
        progress: &args.progress,
        pass_over,
        salvage,
        shard: args.shard,
    }
}

/// What one scan run audited and, with `--catalog`, everything the catalog
/// holds afterwards (for the per-cluster sweep).
type ScanRun = (Walked<ScanReport, AuditError>, Option<Vec<Member>>);

fn scan_all(args: &ScanArgs) -> Result<ScanRun, RunError> {
    let configs = load_configs(&args.keys.configs)?;
    let scope = Scope::new(args.keys.resources.iter().map(String::as_str), &configs);
    let judge = Judge::new(configs, args.keys.kms.clone()).with_known_keys(args.keys.known_keys.clone());
    let catalog = match &args.catalog {
        Some(at) => Some(Catalog::open_as(at.clone(), Worker::this_process(args.claim_lease))?),
        None => None,
    };
    // A file: one sweep at a time, until this run has recorded what it
    // audited. A database: this worker's claims, renewed while it runs.
    let _sweeping = catalog.as_ref().map(Catalog::start_sweep).transpose()?;
    let run = AuditRun::now(catalog::keyring_of(&judge));
    let catalog_errors = std::sync::Mutex::new(Vec::new());
    let failed = |e: CatalogError| catalog_errors.lock().unwrap_or_else(|e| e.into_inner()).push(e);
    // What the catalog holds is passed over; in a database, so is what
    // another worker claimed, and a claim taken is checked once more (its
    // last holder may have recorded it just before).
    let pass_over = |source: &str, origin: &walk::Origin| {
        let catalog = catalog.as_ref().expect("only asked with a catalog");
        let seen = run.seen(source, origin.into());
        let audited = || !args.rescan && catalog.already_audited(&seen).unwrap_or(false);
        if audited() {
            return Some(SkipReason::AlreadyAudited);
        }
        match catalog.claim(source) {
            Ok(Claim::Taken) if audited() => {
                catalog.release(source).unwrap_or_else(failed);
                Some(SkipReason::AlreadyAudited)
            }
            Ok(Claim::HeldBy { .. }) => Some(SkipReason::ClaimedElsewhere),
            Ok(Claim::Taken | Claim::Unclaimed) => None,
            Err(e) => {
                failed(e);
                None
            }
        }
    };
    // Each backup is recorded as soon as it is audited: a sweep killed half
    // way resumes where it stopped (the next run skips what is recorded).
    let recorded = std::sync::atomic::AtomicUsize::new(0);
    // What every report gets from its item and the policy, however it was read.
    let complete = |item: &Item, mut report: ScanReport| {
        if let Some(name) = audit::k3s::snapshot_name(&item.name) {
            report.k3s.get_or_insert_with(Default::default).snapshot = Some(name);
        }
        if let Some(metadata) = item.origin.user_metadata() {
            audit::k3s::check_metadata(&mut report, metadata);
        }
        audit::cluster::check_taken_at(&mut report, item.origin.last_modified());
        report.failed_on = args.fail_on.matched(&report);
        let content = catalog
            .as_ref()
            .and_then(|c| Some((c, content_id(&item.payload, report.integrity.sha256_trailer)?)));
        if let Some((catalog, content)) = content {
            let record =
                BackupRecord::from_scan(item.name.clone(), &content, (&item.origin).into(), &report, &run);
            match catalog.record(&record) {
                Ok(()) => _ = recorded.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
                Err(e) => failed(e),
            }
        }
        Ok(report)
    };
    let audit = |item: &Item| -> Result<ScanReport, AuditError> {
        let opts = ScanOptions { meter: item.meter.clone(), ..args.options.clone() };
        let report = audit_item(item, &judge, &scope, &opts, args.input.limits)?;
        complete(item, report)
    };
    let settings =
        walk_settings(&args.input, catalog.is_some().then_some(&pass_over as _), args.options.salvage);
    let walked = walk::walk(&args.input.sources, &settings, &audit);
    let mut catalogued = None;
    if let Some(catalog) = &catalog {
        if let Some(e) = catalog_errors.into_inner().unwrap_or_else(|e| e.into_inner()).into_iter().next() {
            return Err(e.into());
        }
        let passed = |reason| walked.skipped.iter().filter(|s| s.reason == reason).count();
        let claimed = match passed(SkipReason::ClaimedElsewhere) {
            0 => String::new(),
            n => format!(", {n} being audited by other workers"),
        };
        eprintln!(
            "etcd-audit: catalog {}: recorded {} backups, skipped {} already audited{claimed}",
            catalog.location(),
            recorded.into_inner(),
            passed(SkipReason::AlreadyAudited),
        );
        catalogued = Some(catalog.members()?);
    }
    Ok((walked, catalogued))
}

/// One backup scanned with `judge`, however it was read (bbolt with its WAL,
/// salvaged pages, a Gardener delta, Range pages of a live cluster).
fn audit_item(
    item: &Item,
    judge: &Judge,
    scope: &Scope,
    opts: &ScanOptions,
    limits: Limits,
) -> Result<ScanReport, AuditError> {
    Ok(match &item.payload {
        Payload::Database { blob, wal } => {
            let backup = match Backup::open(blob.bytes()) {
                Err(e) if opts.salvage => {
                    let input = Input::Salvage { bytes: blob.bytes(), why: e.to_string() };
                    return audit::scan(input, item.chain.clone(), judge, scope, opts);
                }
                opened => opened?,
            };
            let segments: Option<Vec<(String, wal::WalFile)>> =
                wal.as_ref().map(|w| w.iter().map(|(n, b)| (n.clone(), wal::read_wal(b.bytes()))).collect());
            let input = Input::Bolt { backup: &backup, wal: segments.as_deref() };
            let mut report = audit::scan(input, item.chain.clone(), judge, scope, opts)?;
            for (name, segment) in segments.iter().flatten() {
                report.integrity.notes.extend(segment.notes.iter().map(|n| format!("{name}: {n}")));
            }
            report
        }
        Payload::Delta(blob) => {
            let delta = gardener::parse(blob.bytes(), limits.max_unpacked_bytes)?;
            let input = Input::Delta { delta: &delta, size_bytes: blob.bytes().len() as u64 };
            audit::scan(input, item.chain.clone(), judge, scope, opts)?
        }
        Payload::Range(live) => {
            let prefix = match &opts.etcd_prefix {
                Some(p) => p.clone(),
                None => live.detect_prefix(&crate::k8s::DEFAULT_PREFIXES)?,
            };
            let mut pages = |page: &mut dyn FnMut(&[KeyValueRef])| {
                let rows = |kvs: &[etcd_client::KeyValue]| {
                    let rows: Vec<KeyValueRef> = kvs
                        .iter()
                        .map(|k| KeyValueRef {
                            key: k.key(),
                            create_revision: k.create_revision(),
                            mod_revision: k.mod_revision(),
                            version: k.version(),
                            value: k.value(),
                            lease: k.lease(),
                        })
                        .collect();
                    page(&rows)
                };
                Ok(live.range(&prefix, &mut { rows })?)
            };
            let input = Input::Range { pages: &mut pages, source: &item.name, prefix: &prefix };
            audit::scan(input, item.chain.clone(), judge, scope, opts)?
        }
    })
}

/// The sweep's members: with a catalog, every backup of a known cluster it
/// holds (so a sharded or incremental sweep sees their whole history, and
/// keys shared with clusters this run did not read; this run's backups are
/// recorded there already), plus this run's backups of unknown clusters;
/// else this run's.
fn with_catalogued(audited: Vec<Member>, catalogued: Option<Vec<Member>>) -> Vec<Member> {
    let Some(members) = catalogued else { return audited };
    let known = members.into_iter().filter(|m| m.uid.is_some());
    known.chain(audited.into_iter().filter(|m| m.uid.is_none())).collect()
}

/// What the catalog keys a backup by: SHA-256 and length of the bbolt bytes
/// (without a snapshot trailer) or of the delta snapshot; a range read has
/// no content. A valid trailer already is that SHA-256.
fn content_id(payload: &Payload, trailer: Trailer) -> Option<ContentId> {
    match payload {
        Payload::Database { blob, .. } => {
            let bytes = blob.bytes();
            let content = container::split_trailer(bytes).0;
            Some(match trailer {
                Trailer::Valid => {
                    ContentId { sha256: hex::encode(&bytes[content.len()..]), size: content.len() as u64 }
                }
                _ => ContentId::of(content),
            })
        }
        Payload::Delta(blob) => Some(ContentId::of(blob.bytes())),
        Payload::Range(_) => None,
    }
}

/// Report entries in walk order; each failure is also one line on stderr.
fn entries<T>(backups: Vec<walk::Done<T, AuditError>>) -> Vec<Entry<T>> {
    backups
        .into_iter()
        .map(|d| {
            let object = d.origin.object(&d.name);
            match d.result {
                Ok(r) => Entry { source: d.name, error: None, result: Some(r), object },
                Err(e) => {
                    eprintln!("etcd-audit: {}: {e}", d.name);
                    Entry { source: d.name, error: Some(e.to_string()), result: None, object }
                }
            }
        })
        .collect()
}

/// The highest outcome over all backups. Nothing audited at all is a failure
/// (exit 2), unless the catalog showed everything was audited already.
fn worst<T, E>(walked: &Walked<T, E>, judge: impl Fn(&T) -> Outcome) -> Outcome {
    if walked.backups.is_empty() && walked.other_shards > 0 {
        eprintln!(
            "etcd-audit: nothing for this shard: all {} objects and files fall to other shards",
            walked.other_shards
        );
    }
    let nothing = if walked.nothing_to_do() { Outcome::Clean } else { Outcome::Failed };
    walked.backups.iter().map(|d| d.result.as_ref().map_or(Outcome::Failed, &judge)).max().unwrap_or(nothing)
}
