//! `etcd-audit keys`: the key pairing alone, for DR runbooks.

use std::fmt::Write;

use serde::Serialize;

use super::scan::{keys_table, summary_line};
use super::{Entry, Format, Skipped};
use crate::audit::{Class, KeyUse, ScanReport, Summary};

pub const SCHEMA: &str = "etcd-audit.keys/v1";

#[derive(Debug, Serialize)]
pub struct Pairing {
    /// Every needed key is available and no value is undecryptable.
    pub restorable: bool,
    pub missing: Vec<String>,
    pub summary: Summary,
    pub keys: Vec<KeyUse>,
}

impl Pairing {
    pub fn of(report: ScanReport) -> Self {
        let missing: Vec<String> = report
            .keys
            .iter()
            .filter(|k| !k.available)
            .map(|k| match &k.key_id {
                Some(id) => format!("{}:{} (key id {id})", k.provider.as_str(), k.name),
                None => format!("{}:{}", k.provider.as_str(), k.name),
            })
            .collect();
        let restorable = missing.is_empty() && report.summary.get(Class::Undecryptable) == 0;
        Pairing { restorable, missing, summary: report.summary, keys: report.keys }
    }
}

pub fn render(
    out: &mut dyn std::io::Write,
    backups: &[Entry<Pairing>],
    skipped: &[Skipped],
    format: Format,
) -> std::io::Result<()> {
    super::render(out, SCHEMA, backups, skipped, format, table)
}

fn table(entry: &Entry<Pairing>) -> String {
    let mut out = format!("backup      {}\n", entry.source);
    let Some(p) = &entry.result else {
        let _ = writeln!(out, "error       {}", entry.error.as_deref().unwrap_or("unknown"));
        return out;
    };
    let _ = writeln!(out, "summary     {}", summary_line(&p.summary));
    if p.keys.is_empty() {
        let _ = writeln!(out, "keys        none needed (no encrypted values in scope)");
    } else {
        out.push_str(&keys_table(&p.keys));
    }
    let verdict = if p.restorable {
        "RESTORABLE with the supplied keys".to_string()
    } else if p.missing.is_empty() {
        "NOT RESTORABLE: some values do not decrypt with the supplied keys".to_string()
    } else {
        format!("NOT RESTORABLE: missing {}", p.missing.join(", "))
    };
    let _ = writeln!(out, "verdict     {verdict}");
    out
}
