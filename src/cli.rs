//! The command line: clap definitions, and their translation into the
//! library's settings. Every argument is parsed and validated here, before
//! anything runs; the library never sees clap.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use etcd_audit::audit::exposure::Model;
use etcd_audit::audit::sweep::SweepOptions;
use etcd_audit::audit::{FailOn, KmsOverride, ScanOptions, FAIL_ON_DEFAULT};
use etcd_audit::catalog::{parse_duration, KeyRef, Location};
use etcd_audit::container::Limits;
use etcd_audit::encryption::hygiene::KnownKeys;
use etcd_audit::encryption::k3s::Token;
use etcd_audit::progress::Progress;
use etcd_audit::report::exposure::Format as ExposureFormat;
use etcd_audit::report::sarif::SarifOptions;
use etcd_audit::report::scan::ScanFormat;
use etcd_audit::report::Format;
use etcd_audit::run::{CatalogQuery, ExposureArgs, KeyArgs, MetricsFile, ScanArgs, SourceArgs};
use etcd_audit::source::live::LiveOptions;
use etcd_audit::walk::{LiveMode, Shard};
use zeroize::Zeroizing;

#[derive(Parser)]
#[command(
    name = "etcd-audit",
    version,
    about = "Audit etcd backups of Kubernetes clusters, offline and read-only"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Write the report to FILE instead of stdout (whole or not at all: a temporary file in
    /// the same folder is renamed over it once complete).
    #[arg(short = 'o', long = "out", value_name = "FILE", global = true)]
    pub out: Option<PathBuf>,
}

#[derive(Subcommand)]
pub enum Command {
    /// A verdict for every in-scope value: plaintext, decryptable, unknown-key, undecryptable, malformed.
    Scan(ScanCli),
    /// Which keys each backup needs, and whether the supplied configs hold them all.
    Keys(ScanCli),
    /// Breach impact: which Secrets whoever holds these backups can read (live, history, free
    /// pages, WAL), one row each, ranked by risk; exit 1 when any. Never prints a value.
    Exposure(ExposureCli),
    /// Integrity and layout: what `etcdutl snapshot status` and `bbolt check` say.
    Inspect {
        /// Backup files (etcdctl snapshots, copies of member/snap/db), folders, data dirs, URLs.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: FormatArg,
        #[command(flatten)]
        reading: ReadingCli,
    },
    /// Query the catalog of audited backups (filled by `scan --catalog`).
    Catalog {
        /// The catalog: a file, or a postgres:// URL (default: ETCD_AUDIT_CATALOG_URL, else
        /// $XDG_DATA_HOME/etcd-audit/catalog.redb). It must exist.
        #[arg(long, value_name = "PATH|URL", global = true, value_parser = parse_location)]
        catalog: Option<Location>,
        #[arg(long, value_enum, default_value = "table", global = true)]
        format: FormatArg,
        #[command(subcommand)]
        query: CatalogCli,
    },
    /// Compare control-plane nodes' EncryptionConfiguration files and lint them (key hygiene,
    /// identity first, KMS v1, …); exit 1 on a read-breaking difference or a critical/high finding.
    Configs {
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: FormatArg,
        #[command(flatten)]
        known: KnownKeysCli,
    },
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    /// Print the JSON Schema (draft 2020-12) of a JSON document: scan, inspect, keys, configs,
    /// catalog or exposure.
    Schema {
        #[arg(value_enum)]
        name: SchemaName,
    },
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `etcd-audit man > etcd-audit.1`.
    Man,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum SchemaName {
    Scan,
    Inspect,
    Keys,
    Configs,
    Catalog,
    Exposure,
}

impl SchemaName {
    pub fn text(self) -> &'static str {
        let name = match self {
            SchemaName::Scan => "scan",
            SchemaName::Inspect => "inspect",
            SchemaName::Keys => "keys",
            SchemaName::Configs => "configs",
            SchemaName::Catalog => "catalog",
            SchemaName::Exposure => "exposure",
        };
        etcd_audit::report::schema::schema(name).expect("every name has a schema")
    }
}

#[derive(Clone, Copy, ValueEnum)]
pub enum FormatArg {
    Table,
    Json,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
        }
    }
}

#[derive(Args)]
pub struct ScanCli {
    /// Backups: files (snapshots, db copies, zip/gz/zstd/tar/Gardener), folders and data dirs,
    /// s3:// gs:// az:// URLs (object or prefix/), or live etcd://host:port / etcds://host:port.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    #[command(flatten)]
    keys: KeyCli,
    /// Report format (`keys`: table or json): sarif is SARIF 2.1.0 for GitHub code scanning,
    /// junit is JUnit XML for CI dashboards, html one self-contained page.
    #[arg(long, value_enum, default_value = "table")]
    format: ScanFormatArg,
    /// Also write the report in FORMAT to FILE, from the same run (repeatable), e.g.
    /// `--output sarif=audit.sarif --output junit=audit.xml`.
    #[arg(long = "output", value_name = "FORMAT=FILE", value_parser = parse_output)]
    outputs: Vec<(ScanFormatArg, PathBuf)>,
    /// SARIF locations are paths relative to DIR (the repository checkout), else the sources as written.
    #[arg(long, value_name = "DIR")]
    sarif_base: Option<PathBuf>,
    /// Write Prometheus metrics (node_exporter textfile collector format) to PATH, beside any
    /// report: per cluster, whole or not at all.
    #[arg(long, value_name = "PATH")]
    metrics_file: Option<PathBuf>,
    /// With --metrics-file: per-backup series too (one label value per backup: mind the cardinality).
    #[arg(long, requires = "metrics_file")]
    metrics_per_backup: bool,
    /// Comma-separated findings that make the exit code 1.
    #[arg(long, default_value = FAIL_ON_DEFAULT)]
    fail_on: FailOn,
    /// The kube-apiserver --etcd-prefix (default: detected, /registry or /kubernetes.io).
    #[arg(long)]
    etcd_prefix: Option<String>,
    /// Also judge every older revision still in MVCC history.
    #[arg(long)]
    history: bool,
    /// Also carve revisions from pages the tree no longer reaches (free pages).
    #[arg(long)]
    residue: bool,
    /// When a bbolt file does not open (both meta pages broken, truncated), carve its leaf
    /// pages for a best-effort audit, labelled as salvaged in the report.
    #[arg(long)]
    salvage: bool,
    /// Record every audited backup in the catalog (`--catalog=PATH` or `--catalog=postgres://…`;
    /// bare: ETCD_AUDIT_CATALOG_URL, else the default file), and skip backups it already holds
    /// with the same keys and tool version. Workers sharing a PostgreSQL catalog claim each
    /// object before reading it and pass over what another is auditing.
    #[arg(long, value_name = "PATH|URL", num_args = 0..=1, require_equals = true, value_parser = parse_location)]
    catalog: Option<Option<Location>>,
    /// With --catalog: audit again what the catalog already holds.
    #[arg(long, requires = "catalog")]
    rescan: bool,
    /// With a PostgreSQL catalog: how long this worker's claim on an object outlives the
    /// worker (renewed every third of it while it runs; a killed worker's objects are taken
    /// by the next sweep after this).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = parse_duration, requires = "catalog")]
    claim_lease: std::time::Duration,
    /// A k3s/RKE2 server token file (`K10…::server:<password>` or the bare password; `-` reads
    /// stdin), to open the bootstrap data k3s keeps in etcd; repeat for several clusters. Or the
    /// token itself in ETCD_AUDIT_K3S_TOKEN. Never on the command line.
    #[arg(long = "k3s-token", value_name = "FILE")]
    k3s_tokens: Vec<PathBuf>,
    /// A backup taken longer ago than this (e.g. 26h, 7d) is `backup-too-old`; its time comes
    /// from the newest Lease renewal in it (`taken_at`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    max_age: Option<Duration>,
    /// "Now" for --max-age, for reproducible runs (RFC 3339).
    #[arg(long, value_name = "RFC3339", value_parser = etcd_audit::time::parse_rfc3339)]
    now: Option<i64>,
    /// Backups of one cluster are expected at least this often (e.g. 1h, 1d): each longer
    /// interval between two of them is a gap (`backup-gap` in `clusters[]`).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    expect_every: Option<Duration>,
    /// A write key seen in a cluster's backups for longer than this is `key-rotation-overdue`.
    #[arg(long, value_name = "DURATION", default_value = "90d", value_parser = parse_duration)]
    rotate_every: Duration,
    #[command(flatten)]
    reading: ReadingCli,
}

#[derive(Args)]
pub struct ExposureCli {
    /// Backups: files, folders and data dirs (their WAL is read too), s3:// gs:// az:// URLs,
    /// or live etcd://host:port.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// What the holder has besides the files: `backup` (the files only; plaintext anywhere,
    /// keys the docs publish, a k3s bootstrap sealed without a token), `backup+token` (and the
    /// k3s/RKE2 server token), `backup+keys` (and the -c configs), `backup+keys+kms` (and the KMS).
    #[arg(long, value_name = "MODEL", default_value = "backup")]
    assume: Model,
    /// The configs' keys count under backup+keys, their published (docs) keys under every
    /// model; ConfigMaps are always read; the KMS is asked only under backup+keys+kms.
    #[command(flatten)]
    keys: KeyCli,
    #[arg(long, value_enum, default_value = "table")]
    format: ExposureFormatArg,
    /// The kube-apiserver --etcd-prefix (default: detected, /registry or /kubernetes.io).
    #[arg(long)]
    etcd_prefix: Option<String>,
    /// A k3s/RKE2 server token file (`-` reads stdin; or ETCD_AUDIT_K3S_TOKEN): counts under
    /// backup+token and above.
    #[arg(long = "k3s-token", value_name = "FILE")]
    k3s_tokens: Vec<PathBuf>,
    #[command(flatten)]
    reading: ReadingCli,
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ExposureFormatArg {
    Table,
    Json,
    Csv,
    Sarif,
}

impl ExposureCli {
    pub fn into_args(self) -> Result<ExposureArgs, ArgsError> {
        let k3s_tokens = load_tokens(&self.k3s_tokens)?;
        Ok(ExposureArgs {
            keys: self.keys.into_args()?,
            input: self.reading.into_args(self.sources)?,
            options: ScanOptions {
                etcd_prefix: self.etcd_prefix,
                k3s_tokens: std::sync::Arc::new(k3s_tokens),
                ..ScanOptions::default()
            },
            assume: self.assume,
            format: match self.format {
                ExposureFormatArg::Table => ExposureFormat::Table,
                ExposureFormatArg::Json => ExposureFormat::Json,
                ExposureFormatArg::Csv => ExposureFormat::Csv,
                ExposureFormatArg::Sarif => ExposureFormat::Sarif,
            },
        })
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScanFormatArg {
    Table,
    Json,
    Sarif,
    Junit,
    Html,
}

impl From<ScanFormatArg> for ScanFormat {
    fn from(f: ScanFormatArg) -> ScanFormat {
        match f {
            ScanFormatArg::Table => ScanFormat::Table,
            ScanFormatArg::Json => ScanFormat::Json,
            ScanFormatArg::Sarif => ScanFormat::Sarif,
            ScanFormatArg::Junit => ScanFormat::Junit,
            ScanFormatArg::Html => ScanFormat::Html,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum OutputError {
    #[error("expected FORMAT=FILE, got {0:?}")]
    Shape(String),
    #[error("unknown format {0:?}: one of table, json, sarif, junit, html")]
    Format(String),
}

/// A catalog location never fails to parse: a `postgres://` URL, else a path.
fn parse_location(s: &str) -> Result<Location, std::convert::Infallible> {
    Ok(Location::parse(s))
}

fn parse_output(s: &str) -> Result<(ScanFormatArg, PathBuf), OutputError> {
    let (format, path) =
        s.split_once('=').filter(|(_, p)| !p.is_empty()).ok_or_else(|| OutputError::Shape(s.into()))?;
    let format = ScanFormatArg::from_str(format, true).map_err(|_| OutputError::Format(format.into()))?;
    Ok((format, PathBuf::from(path)))
}

#[derive(Subcommand)]
pub enum CatalogCli {
    /// Every catalogued backup with the keys it needs.
    List {
        /// Only the backups of this cluster (the kube-system Namespace's UID).
        #[arg(long, value_name = "UID")]
        cluster: Option<String>,
    },
    /// May this key be deleted? Exit 0 when no catalogued backup needs it, 1 listing those that do.
    CanRetire {
        /// PROVIDER:NAME, split at the first ':' (names may contain ':'), e.g. aescbc:key-2025.
        key: KeyRef,
        /// Only the backups of this cluster (the kube-system Namespace's UID).
        #[arg(long, value_name = "UID")]
        cluster: Option<String>,
    },
    /// The keys a recorded backup needs.
    Needs { source: String },
    /// Drop backups that expired from storage: one source, or all audited longer ago than a duration.
    Forget {
        #[arg(required_unless_present = "older_than")]
        source: Option<String>,
        /// e.g. 90d, 12h, 2w.
        #[arg(long, value_name = "DURATION", conflicts_with = "source", value_parser = parse_duration)]
        older_than: Option<Duration>,
    },
    /// Every record and source as JSON lines (etcd-audit.catalog-export/v1), to move or merge catalogs.
    Export,
    /// The per-cluster sweep over everything the catalog holds (the fleet's view after merging
    /// shards): gaps, ages, versions, shared and overdue keys; exit 1 on a --fail-on match.
    Clusters {
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        expect_every: Option<Duration>,
        #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
        max_age: Option<Duration>,
        #[arg(long, value_name = "DURATION", default_value = "90d", value_parser = parse_duration)]
        rotate_every: Duration,
        #[arg(long, value_name = "RFC3339", value_parser = etcd_audit::time::parse_rfc3339)]
        now: Option<i64>,
        #[arg(long, default_value = FAIL_ON_DEFAULT)]
        fail_on: FailOn,
    },
    /// Read an export into the catalog (created when missing): records merge by content, the
    /// later sighting of a source wins; the catalogs of shards merge into the fleet's.
    Import {
        /// The export file; `-` reads stdin.
        file: PathBuf,
    },
}

impl From<CatalogCli> for CatalogQuery {
    fn from(c: CatalogCli) -> Self {
        match c {
            CatalogCli::List { cluster } => CatalogQuery::List { cluster },
            CatalogCli::CanRetire { key, cluster } => CatalogQuery::CanRetire { key, cluster },
            CatalogCli::Needs { source } => CatalogQuery::Needs(source),
            CatalogCli::Forget { older_than: Some(age), .. } => CatalogQuery::ForgetOlderThan(age),
            CatalogCli::Forget { source, .. } => CatalogQuery::ForgetSource(source.unwrap_or_default()),
            CatalogCli::Export => CatalogQuery::Export,
            CatalogCli::Clusters { expect_every, max_age, rotate_every, now, fail_on } => {
                CatalogQuery::Clusters {
                    sweep: SweepOptions {
                        expect_every,
                        max_age,
                        now,
                        rotate_every: Some(rotate_every),
                        partial: false,
                    },
                    fail_on,
                }
            }
            CatalogCli::Import { file } => CatalogQuery::Import(file),
        }
    }
}

/// How sources are read: unpacking limits, progress, live etcd access.
#[derive(Args)]
pub struct ReadingCli {
    /// No progress bars (they only ever go to a terminal's stderr).
    #[arg(long, short)]
    quiet: bool,
    /// Most bytes one backup file may unpack to (compressed layers, archives): 10G, 512M, 1048576.
    #[arg(long, value_name = "SIZE", default_value = "10G", value_parser = parse_size)]
    max_unpacked_bytes: u64,
    /// Parallel ranged GETs per object-storage download (parts of 32 MiB).
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=64))]
    connections: u16,
    /// How `etcd://` / `etcds://` sources are read.
    #[arg(long, value_enum, default_value = "snapshot")]
    live_mode: LiveModeArg,
    /// CA bundle for etcds:// (like etcdctl --cacert).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Client certificate for etcds:// (like etcdctl --cert).
    #[arg(long, value_name = "FILE", requires = "key")]
    cert: Option<PathBuf>,
    /// Client key for etcds:// (like etcdctl --key).
    #[arg(long, value_name = "FILE", requires = "cert")]
    key: Option<PathBuf>,
    /// etcd user; the password is read from ETCD_AUDIT_PASSWORD (never from the command line).
    #[arg(long)]
    user: Option<String>,
    /// Audit only this share of the objects of prefixes and the files of folders: INDEX/COUNT,
    /// 0 <= INDEX < COUNT (sources named one by one are not shared out). Shards split by the
    /// SHA-256 of each object key or relative path, the same way every run.
    #[arg(long, value_name = "INDEX/COUNT")]
    shard: Option<Shard>,
    /// COUNT shards, this one's INDEX from JOB_COMPLETION_INDEX (a Kubernetes Indexed Job);
    /// --shard wins.
    #[arg(long, value_name = "COUNT", value_parser = clap::value_parser!(u32).range(1..))]
    shards: Option<u32>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LiveModeArg {
    /// The Maintenance Snapshot RPC, then the offline pipeline (history, residue, inspect all work).
    Snapshot,
    /// Paginated Range requests at one revision, for users without snapshot permission.
    Range,
}

impl ReadingCli {
    /// `--shard`, else `--shards` with the index of an Indexed Job (the variable alone does nothing).
    fn shard(&self) -> Result<Option<Shard>, ArgsError> {
        match (self.shard, self.shards) {
            (Some(shard), _) => Ok(Some(shard)),
            (None, Some(count)) => {
                let index = std::env::var("JOB_COMPLETION_INDEX").unwrap_or_default();
                format!("{}/{count}", index.trim())
                    .parse()
                    .map(Some)
                    .map_err(|_| ArgsError::JobIndex(index, count))
            }
            (None, None) => Ok(None),
        }
    }

    pub fn into_args(self, sources: Vec<PathBuf>) -> Result<SourceArgs, ArgsError> {
        Ok(SourceArgs {
            shard: self.shard()?,
            sources: sources.iter().map(|p| p.to_string_lossy().into_owned()).collect(),
            limits: Limits { max_unpacked_bytes: self.max_unpacked_bytes },
            connections: usize::from(self.connections),
            progress: Progress::new(self.quiet),
            live_mode: match self.live_mode {
                LiveModeArg::Snapshot => LiveMode::Snapshot,
                LiveModeArg::Range => LiveMode::Range,
            },
            live: LiveOptions { cacert: self.cacert, cert: self.cert, key: self.key, user: self.user },
        })
    }
}

/// The keys values are judged with, and which values (scan, keys, exposure).
#[derive(Args)]
pub struct KeyCli {
    /// EncryptionConfiguration file; repeat for several control-plane nodes (the first gives the
    /// provider order).
    #[arg(short = 'c', long = "encryption-config")]
    configs: Vec<PathBuf>,
    /// Resources to judge besides secrets: `configmaps`, `deployments.apps`, `*.apps`, `*.`, `*.*`.
    #[arg(long, value_delimiter = ',')]
    resources: Vec<String>,
    /// KMS plugin endpoint for a provider name, replacing the config's (repeatable).
    #[arg(long = "kms", value_name = "NAME=unix:///path")]
    kms: Vec<KmsOverride>,
    #[command(flatten)]
    known: KnownKeysCli,
}

impl KeyCli {
    fn into_args(self) -> Result<KeyArgs, ArgsError> {
        Ok(KeyArgs {
            known_keys: self.known.load()?,
            configs: self.configs,
            resources: self.resources,
            kms: self.kms,
        })
    }
}

#[derive(Args)]
pub struct KnownKeysCli {
    /// More keys to treat as public (`public-key`): one base64 key or `sha256:<64 hex>` of the
    /// key bytes a line. The keys printed in the Kubernetes documentation are always known.
    #[arg(long = "known-keys", value_name = "FILE")]
    known_keys: Option<PathBuf>,
}

impl KnownKeysCli {
    pub fn load(&self) -> Result<KnownKeys, ArgsError> {
        let mut known = KnownKeys::default();
        if let Some(path) = &self.known_keys {
            let text = Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|source| ArgsError::File { path: path.clone(), source })?,
            );
            known.add_file(&text).map_err(|e| ArgsError::KnownKeys { path: path.clone(), e })?;
        }
        Ok(known)
    }
}

/// An argument that passed clap but cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ArgsError {
    #[error("keys writes table or json, one report, no metrics")]
    KeysFormat,
    #[error("--shards {1} needs JOB_COMPLETION_INDEX between 0 and {1}, got {0:?}")]
    JobIndex(String, u32),
    #[error(transparent)]
    Catalog(#[from] etcd_audit::catalog::CatalogError),
    #[error("--k3s-token {}: {source}", path.display())]
    Token { path: PathBuf, source: std::io::Error },
    #[error("{}: {source}", path.display())]
    File { path: PathBuf, source: std::io::Error },
    #[error("--known-keys {}: {e}", path.display())]
    KnownKeys { path: PathBuf, e: etcd_audit::encryption::hygiene::KnownKeysError },
}

#[derive(Debug, thiserror::Error)]
enum SizeError {
    #[error("expected a size like 10G, 512M or 1048576, got {0:?}")]
    Invalid(String),
    #[error("{0:?} is too large")]
    TooLarge(String),
}

fn parse_size(s: &str) -> Result<u64, SizeError> {
    let t = s.trim();
    let (digits, shift) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 10),
        Some((i, 'M' | 'm')) => (&t[..i], 20),
        Some((i, 'G' | 'g')) => (&t[..i], 30),
        Some((i, 'T' | 't')) => (&t[..i], 40),
        _ => (t, 0),
    };
    let n: u64 = digits.trim().parse().map_err(|_| SizeError::Invalid(s.into()))?;
    n.checked_mul(1 << shift).ok_or_else(|| SizeError::TooLarge(s.into()))
}

/// `--k3s-token FILE` (`-` is stdin) and `ETCD_AUDIT_K3S_TOKEN`.
fn load_tokens(paths: &[PathBuf]) -> Result<Vec<Token>, ArgsError> {
    let mut tokens = Vec::new();
    for path in paths {
        let text = if path.as_os_str() == "-" {
            std::io::read_to_string(std::io::stdin())
        } else {
            std::fs::read_to_string(path)
        };
        let text = Zeroizing::new(text.map_err(|source| ArgsError::Token { path: path.clone(), source })?);
        tokens.push(Token::parse(&text));
    }
    if let Ok(token) = std::env::var("ETCD_AUDIT_K3S_TOKEN") {
        tokens.push(Token::parse(&Zeroizing::new(token)));
    }
    Ok(tokens)
}

impl ScanCli {
    /// `keys`: a table or JSON report on stdout (or `-o`), nothing more.
    pub fn into_keys_args(self) -> Result<ScanArgs, ArgsError> {
        let mut args = self.into_args()?;
        if args.format.basic().is_none() || !args.also.is_empty() || args.metrics.is_some() {
            return Err(ArgsError::KeysFormat);
        }
        args.options.keep_entries = false;
        Ok(args)
    }

    /// The library's settings: a bare `--catalog` becomes the default path,
    /// token files are read.
    pub fn into_args(self) -> Result<ScanArgs, ArgsError> {
        let catalog = match self.catalog {
            Some(at) => Some(etcd_audit::run::catalog_location(at)?),
            None => None,
        };
        let k3s_tokens = load_tokens(&self.k3s_tokens)?;
        Ok(ScanArgs {
            keys: self.keys.into_args()?,
            input: self.reading.into_args(self.sources)?,
            options: ScanOptions {
                etcd_prefix: self.etcd_prefix,
                history: self.history,
                residue: self.residue,
                salvage: self.salvage,
                k3s_tokens: std::sync::Arc::new(k3s_tokens),
                max_age: self.max_age,
                now: self.now,
                // JSON lists entries, HTML charts them (`keys` clears it).
                keep_entries: std::iter::once(self.format)
                    .chain(self.outputs.iter().map(|(f, _)| *f))
                    .any(|f| matches!(f, ScanFormatArg::Json | ScanFormatArg::Html)),
                // Each backup's own, set as it is audited.
                meter: Default::default(),
            },
            fail_on: self.fail_on,
            expect_every: self.expect_every,
            rotate_every: self.rotate_every,
            format: self.format.into(),
            also: self.outputs.into_iter().map(|(f, p)| (f.into(), p)).collect(),
            sarif: SarifOptions { base: self.sarif_base },
            metrics: self.metrics_file.map(|path| MetricsFile { path, per_backup: self.metrics_per_backup }),
            catalog,
            rescan: self.rescan,
            claim_lease: self.claim_lease,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10G").unwrap(), 10 << 30);
        assert_eq!(parse_size("512m").unwrap(), 512 << 20);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        assert!(matches!(parse_size("ten"), Err(SizeError::Invalid(_))));
        assert!(matches!(parse_size("99999999999T"), Err(SizeError::TooLarge(_))));
    }

    #[test]
    fn the_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn catalog_flags_go_after_the_subcommand_too() {
        let cli =
            Cli::try_parse_from(["etcd-audit", "catalog", "list", "--catalog", "x.redb", "--format", "json"]);
        match cli.map(|c| c.command) {
            Ok(Command::Catalog {
                catalog,
                format: FormatArg::Json,
                query: CatalogCli::List { cluster: None },
            }) => {
                assert_eq!(catalog, Some(Location::File(PathBuf::from("x.redb"))))
            }
            _ => panic!("catalog list --catalog x.redb --format json"),
        }
    }

    #[test]
    fn a_bare_catalog_flag_never_takes_the_source() {
        let Ok(Command::Scan(scan)) =
            Cli::try_parse_from(["etcd-audit", "scan", "--catalog", "s3://b/"]).map(|c| c.command)
        else {
            panic!("scan --catalog s3://b/")
        };
        assert_eq!(scan.sources, [PathBuf::from("s3://b/")]);
        assert_eq!(scan.catalog, Some(None));
        let Ok(Command::Scan(scan)) =
            Cli::try_parse_from(["etcd-audit", "scan", "--catalog=c.redb", "x.db"]).map(|c| c.command)
        else {
            panic!("scan --catalog=c.redb x.db")
        };
        assert_eq!(scan.catalog, Some(Some(Location::File(PathBuf::from("c.redb")))));
        for url in ["postgres://u@db:5432/fleet", "postgresql://db/fleet?sslmode=require"] {
            let Ok(Command::Scan(scan)) =
                Cli::try_parse_from(["etcd-audit", "scan", &format!("--catalog={url}"), "x.db"])
                    .map(|c| c.command)
            else {
                panic!("scan --catalog={url} x.db")
            };
            assert_eq!(scan.catalog, Some(Some(Location::Postgres(url.into()))));
        }
    }
}
