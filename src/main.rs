//! The `etcd-audit` command line: parse arguments, call the library, exit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use etcd_audit::audit::{FailOn, KmsOverride, Outcome, ScanOptions};
use etcd_audit::container::Limits;
use etcd_audit::progress::Progress;
use etcd_audit::report::Format;
use etcd_audit::run::{self, ScanArgs};

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
    /// Backup files (etcdctl snapshots, copies of member/snap/db) or etcd data dirs (WAL included).
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
    #[command(flatten)]
    unpack: UnpackCli,
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
        }
    }
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Inspect { sources, format, unpack } => {
            Ok(run::inspect(&sources, unpack.limits(), &Progress::new(unpack.quiet), format))
        }
        Command::Scan(cli) => run::scan(&cli.into_args()),
        Command::Keys(cli) => run::keys(&cli.into_args()),
        Command::Configs { configs, format } => run::configs(&configs, format),
    };
    let outcome = match result {
        Ok((stdout, outcome)) => {
            print!("{stdout}");
            outcome
        }
        Err(e) => {
            eprintln!("etcd-audit: {e}");
            Outcome::Failed
        }
    };
    ExitCode::from(outcome as u8)
}
