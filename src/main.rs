//! The `etcd-audit` command line: parse arguments, call the library, exit.

use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use etcd_audit::audit::{FailOn, KmsOverride, Outcome, ScanOptions};
use etcd_audit::container::Limits;
use etcd_audit::progress::Progress;
use etcd_audit::report::Format;
use etcd_audit::run::{self, CatalogQuery, LiveArgs, LiveMode, ScanArgs};
use etcd_audit::source::live::LiveOptions;

#[derive(Parser)]
#[command(
    name = "etcd-audit",
    version,
    about = "Audit etcd backups of Kubernetes clusters, offline and read-only"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A verdict for every in-scope value: plaintext, decryptable, unknown-key, undecryptable, malformed.
    Scan(ScanCli),
    /// Which keys each backup needs, and whether the supplied configs hold them all.
    Keys(ScanCli),
    /// Integrity and layout: what `etcdutl snapshot status` and `bbolt check` say.
    Inspect {
        /// Backup files (etcdctl snapshots, copies of member/snap/db) or etcd data dirs.
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(flatten)]
        unpack: UnpackCli,
        #[command(flatten)]
        live: LiveCli,
    },
    /// Query the catalog of audited backups (filled by `scan --catalog`).
    Catalog {
        /// The catalog file (default: $XDG_DATA_HOME/etcd-audit/catalog.redb).
        #[arg(long, value_name = "PATH")]
        catalog: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
        #[command(subcommand)]
        query: CatalogCli,
    },
    /// Compare control-plane nodes' EncryptionConfiguration files.
    Configs {
        #[arg(required = true)]
        configs: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

#[derive(Args)]
struct ScanCli {
    /// Backups: files (snapshots, db copies, zip/gz/zstd/tar/Gardener), folders and data dirs,
    /// s3:// gs:// az:// URLs (object or prefix/), or live etcd://host:port / etcds://host:port.
    #[arg(required = true)]
    sources: Vec<PathBuf>,
    /// EncryptionConfiguration file; repeat for several control-plane nodes (the first gives the provider order).
    #[arg(short = 'c', long = "encryption-config")]
    configs: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "table")]
    format: Format,
    /// Comma-separated findings that make the exit code 1.
    #[arg(long, default_value = etcd_audit::audit::FAIL_ON_DEFAULT)]
    fail_on: FailOn,
    /// Resources to judge besides secrets: `configmaps`, `deployments.apps`, `*.apps`, `*.`, `*.*`.
    #[arg(long, value_delimiter = ',')]
    resources: Vec<String>,
    /// The kube-apiserver --etcd-prefix (default: detected, /registry or /kubernetes.io).
    #[arg(long)]
    etcd_prefix: Option<String>,
    /// Also judge every older revision still in MVCC history.
    #[arg(long)]
    history: bool,
    /// KMS plugin endpoint for a provider name, replacing the config's (repeatable).
    #[arg(long = "kms", value_name = "NAME=unix:///path")]
    kms: Vec<KmsOverride>,
    /// Also carve revisions from pages the tree no longer reaches (free pages).
    #[arg(long)]
    residue: bool,
    /// Record every audited backup in the catalog (default file when PATH is left out),
    /// and skip backups it already holds with the same keys and tool version.
    #[arg(long, value_name = "PATH", num_args = 0..=1, default_missing_value = "")]
    catalog: Option<PathBuf>,
    /// With --catalog: audit again what the catalog already holds.
    #[arg(long, requires = "catalog")]
    rescan: bool,
    #[command(flatten)]
    unpack: UnpackCli,
    #[command(flatten)]
    live: LiveCli,
}

#[derive(Subcommand)]
enum CatalogCli {
    /// Every catalogued backup with the keys it needs.
    List,
    /// May this key be deleted? Exit 0 when no catalogued backup needs it, 1 listing those that do.
    CanRetire {
        /// PROVIDER:NAME, split at the first ':' (names may contain ':'), e.g. aescbc:key-2025.
        key: String,
    },
    /// The keys a recorded backup needs.
    Needs { source: String },
    /// Drop backups that expired from storage: one source, or all audited longer ago than a duration.
    Forget {
        source: Option<String>,
        /// e.g. 90d, 12h, 2w.
        #[arg(long, value_name = "DURATION", conflicts_with = "source")]
        older_than: Option<String>,
    },
}

impl From<CatalogCli> for CatalogQuery {
    fn from(c: CatalogCli) -> Self {
        match c {
            CatalogCli::List => CatalogQuery::List,
            CatalogCli::CanRetire { key } => CatalogQuery::CanRetire(key),
            CatalogCli::Needs { source } => CatalogQuery::Needs(source),
            CatalogCli::Forget { source, older_than } => CatalogQuery::Forget { source, older_than },
        }
    }
}

#[derive(Args)]
struct LiveCli {
    /// How `etcd://` / `etcds://` sources are read.
    #[arg(long, value_enum, default_value = "snapshot")]
    live_mode: LiveMode,
    /// CA bundle for etcds:// (like etcdctl --cacert).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,
    /// Client certificate for etcds:// (like etcdctl --cert).
    #[arg(long, value_name = "FILE")]
    cert: Option<PathBuf>,
    /// Client key for etcds:// (like etcdctl --key).
    #[arg(long, value_name = "FILE")]
    key: Option<PathBuf>,
    /// etcd user; the password is read from ETCD_AUDIT_PASSWORD (never from the command line).
    #[arg(long)]
    user: Option<String>,
}

impl LiveCli {
    fn args(self) -> LiveArgs {
        let options = LiveOptions { cacert: self.cacert, cert: self.cert, key: self.key, user: self.user };
        LiveArgs { mode: self.live_mode, options }
    }
}

#[derive(Args)]
struct UnpackCli {
    /// No progress bars (they only ever go to a terminal's stderr).
    #[arg(long, short)]
    quiet: bool,
    /// Most bytes one backup file may unpack to (compressed layers, archives): 10G, 512M, 1048576.
    #[arg(long, value_name = "SIZE", default_value = "10G", value_parser = parse_size)]
    max_unpacked_bytes: u64,
}

impl UnpackCli {
    fn limits(&self) -> Limits {
        Limits { max_unpacked_bytes: self.max_unpacked_bytes }
    }
}

fn parse_size(s: &str) -> Result<u64, String> {
    let (digits, shift) = match s.trim().char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 10),
        Some((i, 'M' | 'm')) => (&s[..i], 20),
        Some((i, 'G' | 'g')) => (&s[..i], 30),
        Some((i, 'T' | 't')) => (&s[..i], 40),
        _ => (s, 0),
    };
    let n: u64 =
        digits.trim().parse().map_err(|_| format!("expected a size like 10G, 512M or 1048576, got {s:?}"))?;
    n.checked_mul(1 << shift).ok_or_else(|| format!("{s:?} is too large"))
}

impl ScanCli {
    fn into_args(self) -> ScanArgs {
        ScanArgs {
            sources: self.sources,
            configs: self.configs,
            resources: self.resources,
            kms: self.kms,
            options: ScanOptions {
                etcd_prefix: self.etcd_prefix,
                history: self.history,
                residue: self.residue,
            },
            fail_on: self.fail_on,
            format: self.format,
            limits: self.unpack.limits(),
            progress: Progress::new(self.unpack.quiet),
            live: self.live.args(),
            catalog: self.catalog,
            rescan: self.rescan,
        }
    }
}

fn main() -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = match Cli::parse().command {
        Command::Inspect { sources, format, unpack, live } => run::inspect(
            &mut out,
            &sources,
            unpack.limits(),
            &live.args(),
            &Progress::new(unpack.quiet),
            format,
        ),
        Command::Scan(cli) => run::scan(&mut out, &cli.into_args()),
        Command::Keys(cli) => run::keys(&mut out, &cli.into_args()),
        Command::Configs { configs, format } => run::configs(&mut out, &configs, format),
        Command::Catalog { catalog, format, query } => {
            run::catalog(&mut out, catalog.as_deref(), query.into(), format)
        }
    };
    let outcome = match result.and_then(|outcome| Ok(out.flush().map(|_| outcome)?)) {
        Ok(outcome) => outcome,
        Err(e) => {
            eprintln!("etcd-audit: {e}");
            Outcome::Failed
        }
    };
    ExitCode::from(outcome as u8)
}
