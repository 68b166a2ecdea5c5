//! Audits: open a backup once, then judge it (integrity, verdicts, findings,
//! key pairing) and turn the result into an exit code.

mod backup;
pub mod cluster;
pub mod configs;
pub mod exposure;
mod failon;
mod findings;
pub mod forensics;
pub mod hygiene;
mod inspect;
pub mod k3s;
mod pairing;
mod record;
pub mod risk;
mod rules;
mod scan;
mod scope;
pub mod sweep;
mod tally;
mod verdict;

pub use backup::{Backup, Integrity, MetaState};
pub use failon::{FailOn, FailOnError, DEFAULT as FAIL_ON_DEFAULT};
pub use findings::{Code, Finding, Reference, Severity};
pub use inspect::{inspect, EtcdFacts, Inspection, PageCounts};
pub use pairing::KeyUse;
pub use record::{
    Entries, EntryRecord, EtcdSummary, Forensics, HistoryRecord, Location, ResidueRecord, ScanReport,
    Summary, WalRecord,
};
pub use rules::Rule;
pub use scan::{scan, Input, PageReader, ScanOptions};
pub use scope::Scope;
pub use verdict::{Class, Judge, KmsOverride, Verdict};

use crate::bolt::BoltError;
use crate::source::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Walk(#[from] crate::walk::WalkError),
    #[error(transparent)]
    Container(#[from] crate::container::ContainerError),
    #[error("{0}")]
    NoDatabase(&'static str),
    #[error(transparent)]
    Bolt(#[from] BoltError),
    #[error("no `key` bucket: this bbolt file is not an etcd v3 database")]
    NotEtcd,
    #[error("spooling entries to scratch space: {0}")]
    Spool(#[source] std::io::Error),
}

/// Exit codes of DESIGN.md: with several sources the highest wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Clean = 0,
    Findings = 1,
    Failed = 2,
}
