//! The commands, end to end: sources → audit → report. `main.rs` only parses
//! arguments and calls these; each returns the text for stdout and the exit
//! outcome, and writes one line per failed source to stderr.

use std::path::{Path, PathBuf};

use crate::audit::{
    self, AuditError, Backup, FailOn, Inspection, Judge, KmsOverride, Outcome, ScanOptions, ScanReport, Scope,
};
use crate::encryption::{ConfigError, EncryptionConfig};
use crate::etcd::wal::{self, WalFile};
use crate::report::{self, keys::Pairing, Entry, Format};
use crate::source::{self, Input};

pub struct ScanArgs {
    pub sources: Vec<PathBuf>,
    pub configs: Vec<PathBuf>,
    pub resources: Vec<String>,
    /// `--kms NAME=unix:///path` plugin endpoint overrides.
    pub kms: Vec<KmsOverride>,
    pub options: ScanOptions,
    pub fail_on: FailOn,
    pub format: Format,
}

pub fn load_configs(paths: &[PathBuf]) -> Result<Vec<EncryptionConfig>, ConfigError> {
    paths.iter().map(|p| EncryptionConfig::load(p)).collect()
}

pub fn inspect(sources: &[PathBuf], format: Format) -> (String, Outcome) {
    let entries = each_source(sources, |input| {
        let backup = Backup::open(input.db.bytes())?;
        Ok(audit::inspect(&backup))
    });
    let outcome =
        worst(&entries, |i: &Inspection| if i.integrity.ok { Outcome::Clean } else { Outcome::Findings });
    (report::inspect::render(&entries, format), outcome)
}

pub fn scan(args: &ScanArgs) -> Result<(String, Outcome), ConfigError> {
    let entries = scan_all(args)?;
    let outcome = worst(
        &entries,
        |r: &ScanReport| {
            if r.failed_on.is_empty() {
                Outcome::Clean
            } else {
                Outcome::Findings
            }
        },
    );
    Ok((report::scan::render(&entries, args.format), outcome))
}

/// `keys`: exit 1 when a needed key is missing or any value is undecryptable.
pub fn keys(args: &ScanArgs) -> Result<(String, Outcome), ConfigError> {
    let entries: Vec<Entry<Pairing>> = scan_all(args)?
        .into_iter()
        .map(|e| Entry { source: e.source, error: e.error, result: e.result.map(Pairing::of) })
        .collect();
    let outcome =
        worst(&entries, |p: &Pairing| if p.restorable { Outcome::Clean } else { Outcome::Findings });
    Ok((report::keys::render(&entries, args.format), outcome))
}

pub fn configs(paths: &[PathBuf], format: Format) -> Result<(String, Outcome), ConfigError> {
    let configs = load_configs(paths)?;
    let comparison = audit::configs::compare(&configs);
    let breaks = comparison.differences.iter().any(|d| d.breaks_reads);
    Ok((
        report::configs::render(&comparison, format),
        if breaks { Outcome::Findings } else { Outcome::Clean },
    ))
}

fn scan_all(args: &ScanArgs) -> Result<Vec<Entry<ScanReport>>, ConfigError> {
    let configs = load_configs(&args.configs)?;
    let scope = Scope::new(args.resources.iter().map(String::as_str), &configs);
    let judge = Judge::new(configs, args.kms.clone());
    Ok(each_source(&args.sources, |input| {
        let backup = Backup::open(input.db.bytes())?;
        let wal: Option<Vec<(String, WalFile)>> = input.wal.as_ref().map(|segments| {
            segments.iter().map(|s| (file_name(&s.name), wal::read_wal(s.bytes()))).collect()
        });
        let mut report = audit::scan(&backup, &judge, &scope, &args.options, wal.as_deref())?;
        if let Some(wal) = &wal {
            for (name, segment) in wal {
                report.integrity.notes.extend(segment.notes.iter().map(|n| format!("{name}: {n}")));
            }
        }
        report.failed_on = args.fail_on.matched(&report);
        Ok(report)
    }))
}

fn file_name(path: &str) -> String {
    Path::new(path).file_name().map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

fn each_source<T: serde::Serialize>(
    sources: &[PathBuf],
    audit: impl Fn(&Input) -> Result<T, AuditError>,
) -> Vec<Entry<T>> {
    sources
        .iter()
        .map(|path| {
            let source = path.display().to_string();
            match open_and(path, &audit) {
                Ok(result) => Entry { source, error: None, result: Some(result) },
                Err(e) => {
                    eprintln!("etcd-audit: {source}: {e}");
                    Entry { source, error: Some(e.to_string()), result: None }
                }
            }
        })
        .collect()
}

fn open_and<T>(path: &Path, audit: impl Fn(&Input) -> Result<T, AuditError>) -> Result<T, AuditError> {
    audit(&source::open(path)?)
}

fn worst<T: serde::Serialize>(entries: &[Entry<T>], judge: impl Fn(&T) -> Outcome) -> Outcome {
    entries.iter().map(|e| e.result.as_ref().map_or(Outcome::Failed, &judge)).max().unwrap_or(Outcome::Clean)
}
