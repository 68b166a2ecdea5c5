//! Audits: open a backup once, then judge it (integrity, verdicts, findings).

mod backup;
mod inspect;

pub use backup::{Backup, Integrity, MetaState};
pub use inspect::{inspect, EtcdFacts, Inspection, PageCounts};

use crate::bolt::BoltError;
use crate::source::SourceError;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Bolt(#[from] BoltError),
}

/// Exit codes of DESIGN.md: with several sources the highest wins.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Clean = 0,
    Findings = 1,
    Failed = 2,
}
