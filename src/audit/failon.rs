//! `--fail-on`: which findings make a scan exit 1. Tokens are the verdict
//! classes (`plaintext`, `unknown-key`, … counted over live entries),
//! `integrity`, every finding code, and group tokens (`hygiene`).

use std::collections::BTreeSet;

use super::findings::{Code, Finding};
use super::record::ScanReport;
use super::verdict::Class;

pub const DEFAULT: &str =
    "plaintext,unknown-key,undecryptable,malformed,integrity,bootstrap-unsealed,public-key,gcm-nonce-reuse";

/// `hygiene`: every key-hygiene and config-lint code.
pub const HYGIENE: &[Code] = &[
    Code::PublicKey,
    Code::WeakKey,
    Code::KeyReused,
    Code::GcmNonceReuse,
    Code::GcmWriteBudget,
    Code::IdentityFirst,
    Code::KmsV1,
    Code::AescbcInUse,
    Code::NonCisProvider,
    Code::SecretNotCovered,
];

/// One thing a policy can fail on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Token {
    Class(Class),
    Integrity,
    Code(Code),
}

impl Token {
    fn name(self) -> &'static str {
        match self {
            Token::Class(c) => c.as_str(),
            Token::Integrity => "integrity",
            Token::Code(c) => c.as_str(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown --fail-on token {0:?}; expected a verdict class, integrity, a finding code, hygiene or age (see etcd-audit scan --help)")]
pub struct FailOnError(String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FailOn(BTreeSet<Token>);

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
            if token == "hygiene" {
                set.extend(HYGIENE.iter().map(|c| Token::Code(*c)));
            } else if token == "age" {
                set.insert(Token::Code(Code::BackupTooOld));
                set.insert(Token::Code(Code::BackupGap));
            } else if token == "integrity" {
                set.insert(Token::Integrity);
            } else if let Some(class) = Class::ALL.iter().find(|c| c.as_str() == token) {
                set.insert(Token::Class(*class));
            } else if let Some(code) = Code::ALL.iter().find(|c| c.as_str() == token) {
                set.insert(Token::Code(*code));
            } else {
                return Err(FailOnError(token.into()));
            }
        }
        Ok(FailOn(set))
    }
}

impl FailOn {
    /// The tokens of `report` that this policy fails on.
    pub fn matched(&self, report: &ScanReport) -> Vec<&'static str> {
        let hit = |token: &Token| match token {
            Token::Class(class) => report.summary.get(*class) > 0,
            Token::Integrity => !report.integrity.ok,
            Token::Code(code) => report.findings.iter().any(|f| f.code == *code),
        };
        self.0.iter().filter(|t| hit(t)).map(|t| t.name()).collect()
    }

    /// The code tokens that `findings` (of a cluster group) match.
    pub fn matched_findings(&self, findings: &[Finding]) -> Vec<&'static str> {
        let hit =
            |token: &Token| matches!(token, Token::Code(code) if findings.iter().any(|f| f.code == *code));
        self.0.iter().filter(|t| hit(t)).map(|t| t.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_classes_codes_and_groups() {
        let all: FailOn = "plaintext,integrity,stale,hygiene".parse().unwrap();
        assert!(all.0.contains(&Token::Class(Class::Plaintext)));
        assert!(all.0.contains(&Token::Code(Code::Stale)));
        assert!(all.0.contains(&Token::Code(Code::WeakKey)) && all.0.contains(&Token::Code(Code::KmsV1)));
        for code in Code::ALL {
            assert!(code.as_str().parse::<FailOn>().is_ok(), "{code}");
        }
        assert!("plaintxt".parse::<FailOn>().is_err());
        let default = FailOn::default();
        for t in ["bootstrap-unsealed", "public-key", "gcm-nonce-reuse", "plaintext", "integrity"] {
            assert!(default.0.iter().any(|x| x.name() == t), "{t}");
        }
    }
}
