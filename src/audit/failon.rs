//! `--fail-on`: which findings make a scan exit 1.

use std::collections::BTreeSet;

use super::record::{ScanReport, Summary};
use super::verdict::Class;

pub const TOKENS: &[&str] = &[
    "plaintext",
    "unknown-key",
    "undecryptable",
    "malformed",
    "integrity",
    "stale",
    "history-plaintext",
    "residue-plaintext",
    "wal-plaintext",
    "bootstrap-unsealed",
    "k3s-token-mismatch",
];
pub const DEFAULT: &str = "plaintext,unknown-key,undecryptable,malformed,integrity,bootstrap-unsealed";

#[derive(Debug, thiserror::Error)]
#[error("unknown --fail-on token {token:?}; expected any of: {}", TOKENS.join(", "), token = .0)]
pub struct FailOnError(String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailOn(BTreeSet<&'static str>);

impl Default for FailOn {
    fn default() -> Self {
        DEFAULT.parse().expect("default tokens are valid")
    }
}

impl std::str::FromStr for FailOn {
    type Err = FailOnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut set = BTreeSet::new();
        for token in s.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let known = TOKENS.iter().find(|t| **t == token).ok_or_else(|| FailOnError(token.into()))?;
            set.insert(*known);
        }
        Ok(FailOn(set))
    }
}

impl FailOn {
    /// The tokens of `report` that this policy fails on.
    pub fn matched(&self, report: &ScanReport) -> Vec<&'static str> {
        let plain = |s: &Option<Summary>| s.as_ref().is_some_and(|s| s.get(Class::Plaintext) > 0);
        let hit = |token: &str| match token {
            "integrity" => !report.integrity.ok,
            "stale" => report.entries.iter().any(|e| e.verdict.stale == Some(true)),
            "history-plaintext" => plain(&report.forensics.history),
            "residue-plaintext" => plain(&report.forensics.residue),
            "wal-plaintext" => plain(&report.forensics.wal),
            code @ ("bootstrap-unsealed" | "k3s-token-mismatch") => {
                report.findings.iter().any(|f| f.code.as_str() == code)
            }
            class => Class::ALL.iter().any(|c| c.as_str() == class && report.summary.get(*c) > 0),
        };
        self.0.iter().copied().filter(|t| hit(t)).collect()
    }
}
