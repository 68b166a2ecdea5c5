//! The `etcd-audit` command line: parse arguments, call the library, exit.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use etcd_audit::audit::{self, AuditError, Backup, Inspection, Outcome};
use etcd_audit::report::{self, Entry, Format};
use etcd_audit::source;

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
    /// Integrity and layout: what `etcdutl snapshot status` and `bbolt check` say.
    Inspect {
        /// Backup files (etcdctl snapshots or copies of member/snap/db).
        #[arg(required = true)]
        sources: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "table")]
        format: Format,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Inspect { sources, format } => inspect(&sources, format),
    };
    ExitCode::from(outcome as u8)
}

fn inspect(sources: &[PathBuf], format: Format) -> Outcome {
    let mut worst = Outcome::Clean;
    let entries: Vec<Entry<Inspection>> = sources
        .iter()
        .map(|path| {
            let source = path.display().to_string();
            match inspect_one(path) {
                Ok(result) => {
                    let outcome = if result.integrity.ok {
                        Outcome::Clean
                    } else {
                        Outcome::Findings
                    };
                    worst = worst.max(outcome);
                    Entry {
                        source,
                        error: None,
                        result: Some(result),
                    }
                }
                Err(e) => {
                    eprintln!("etcd-audit: {source}: {e}");
                    worst = Outcome::Failed;
                    Entry {
                        source,
                        error: Some(e.to_string()),
                        result: None,
                    }
                }
            }
        })
        .collect();
    print!("{}", report::inspect::render(&entries, format));
    worst
}

fn inspect_one(path: &std::path::Path) -> Result<Inspection, AuditError> {
    let bytes = source::open_file(path)?;
    let backup = Backup::open(bytes.bytes())?;
    Ok(audit::inspect(&backup))
}
