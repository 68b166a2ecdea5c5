use std::fmt::Write as _;

use serde::Serialize;

use super::{Entry, Format, Skipped};
use crate::audit::sweep::ClusterGroup;
use crate::audit::{Class, Finding, KeyUse, ScanReport};

pub const SCHEMA: &str = "etcd-audit.scan/v1";

/// Every format a scan report can be written in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ScanFormat {
    #[default]
    Table,
    Json,
    Sarif,
    Junit,
    Html,
}

impl ScanFormat {
    /// The format of the commands that know only table and JSON.
    pub fn basic(self) -> Option<Format> {
        match self {
            ScanFormat::Table => Some(Format::Table),
            ScanFormat::Json => Some(Format::Json),
            _ => None,
        }
    }
}

/// The scan report in `format`.
pub fn render_as(
    out: &mut dyn std::io::Write,
    backups: &[Entry<ScanReport>],
    clusters: &[ClusterGroup],
    skipped: &[Skipped],
    format: ScanFormat,
    sarif: &super::sarif::SarifOptions,
) -> std::io::Result<()> {
    match format {
        ScanFormat::Table => render(out, backups, clusters, skipped, Format::Table),
        ScanFormat::Json => render(out, backups, clusters, skipped, Format::Json),
        ScanFormat::Sarif => super::sarif::render(out, backups, clusters, sarif),
        ScanFormat::Junit => super::junit::render(out, backups, clusters),
        ScanFormat::Html => super::html::render(out, backups, clusters, skipped),
    }
}

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    tool_version: &'static str,
    backups: &'a [Entry<ScanReport>],
    /// The sweep grouped per cluster.
    clusters: &'a [ClusterGroup],
    skipped: &'a [Skipped],
}

pub fn render(
    out: &mut dyn std::io::Write,
    backups: &[Entry<ScanReport>],
    clusters: &[ClusterGroup],
    skipped: &[Skipped],
    format: Format,
) -> std::io::Result<()> {
    match format {
        Format::Json => super::write_json(
            out,
            &Document { schema: SCHEMA, tool_version: crate::TOOL_VERSION, backups, clusters, skipped },
        ),
        Format::Table => {
            for (i, backup) in backups.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                out.write_all(table(backup).as_bytes())?;
            }
            // One backup is its own cluster: the section only says more for a sweep.
            if backups.len() > 1 || clusters.iter().any(|c| !c.findings.is_empty()) {
                out.write_all(clusters_table(clusters).as_bytes())?;
            }
            out.write_all(super::skipped_table(skipped).as_bytes())
        }
    }
}

pub(super) fn clusters_table(clusters: &[ClusterGroup]) -> String {
    let mut out = String::new();
    for c in clusters {
        let versions = if c.kubernetes_versions.is_empty() {
            "version unknown".into()
        } else {
            c.kubernetes_versions.join(", ")
        };
        let _ = writeln!(
            out,
            "\ncluster     {} ({versions}): {} backups",
            c.uid.as_deref().unwrap_or("unknown"),
            c.backups.len()
        );
        for (label, dated) in [("newest", &c.newest), ("oldest", &c.oldest)] {
            if let Some(d) = dated {
                let _ = writeln!(out, "{label:<11} {} at {}", d.source, d.taken_at);
            }
        }
        findings_table(&mut out, &c.findings);
    }
    out
}

fn table(entry: &Entry<ScanReport>) -> String {
    let mut out = format!("backup      {}\n", entry.source);
    let Some(r) = &entry.result else {
        let _ = writeln!(out, "error       {}", entry.error.as_deref().unwrap_or("unknown"));
        let _ = writeln!(out, "verdict     CANNOT AUDIT (exit 2)");
        return out;
    };
    let e = &r.etcd;
    let compact = e.compact_revision.map_or("never compacted".into(), |c| format!("compacted at {c}"));
    let _ = writeln!(
        out,
        "etcd        revision {} ({compact}), {} bytes, prefix {}",
        e.revision, e.size_bytes, e.etcd_prefix
    );
    let _ = writeln!(out, "container   {}", r.container.join(" > "));
    let integrity = if r.integrity.salvaged {
        "SALVAGED: the file does not open; leaf pages carved, best effort (see notes)".to_string()
    } else if r.integrity.ok {
        "OK".to_string()
    } else {
        format!("{} problems (see findings)", r.integrity.bbolt_errors_total.max(1))
    };
    let _ = writeln!(out, "integrity   {integrity}");
    if let Some(k3s) = &r.k3s {
        for b in k3s.bootstrap.iter().filter(|b| b.found_in == "live") {
            let state = match (b.unsealed, b.no_token_needed, k3s.token_matches) {
                (true, true, _) => format!("OPEN WITHOUT A TOKEN ({} files)", b.contents.len()),
                (true, false, _) => format!("opened with the token ({} files)", b.contents.len()),
                (false, _, Some(false)) => "sealed; no supplied token matches".into(),
                (false, _, _) => format!("sealed by the token with hash {}", b.token_hash),
            };
            let _ = writeln!(out, "k3s         bootstrap {} {state}", b.etcd_key);
        }
        if let Some(s) = &k3s.snapshot {
            let _ = writeln!(out, "k3s         snapshot of node {} at unix time {}", s.node, s.unix_time);
        }
    }
    let _ = writeln!(out, "summary     {}", summary_line(&r.summary));
    for (name, s) in
        [("history", &r.forensics.history), ("residue", &r.forensics.residue), ("wal", &r.forensics.wal)]
    {
        if let Some(s) = s {
            let _ = writeln!(out, "{name:<11} {}", summary_line(s));
        }
    }
    if !r.keys.is_empty() {
        let _ = writeln!(out, "keys needed");
        out.push_str(&keys_table(&r.keys));
    }
    findings_table(&mut out, &r.findings);
    let verdict = if r.failed_on.is_empty() {
        "PASS (exit 0)".to_string()
    } else {
        format!("FAIL on {} (exit 1)", r.failed_on.join(", "))
    };
    let _ = writeln!(out, "verdict     {verdict}");
    out
}

pub(super) fn summary_line(s: &crate::audit::Summary) -> String {
    Class::ALL.iter().map(|c| format!("{} {}", c.as_str(), s.get(*c))).collect::<Vec<_>>().join(" · ")
}

pub(super) fn keys_table(keys: &[KeyUse]) -> String {
    let name_of = |k: &KeyUse| match &k.key_id {
        Some(id) => format!("{} (key id {id})", k.name),
        None => k.name.clone(),
    };
    // The name column fits the longest name (k3s names carry a timestamp).
    let width = keys.iter().map(|k| name_of(k).chars().count()).max().unwrap_or(0).max(24);
    let mut out = format!(
        "  {:<10} {:<width$} {:>7} {:>9}  {:<9} {:<5} {}\n",
        "PROVIDER", "NAME", "ENTRIES", "DECRYPTED", "AVAILABLE", "WRITE", "FINGERPRINT"
    );
    for k in keys {
        let provider = match (k.kms_api, &k.key_id) {
            (Some(api), _) => format!("kms {api:?}").to_lowercase(),
            _ => k.provider.as_str().to_string(),
        };
        let name = name_of(k);
        let yes = |b: bool| if b { "yes" } else { "NO" };
        let _ = writeln!(
            out,
            "  {provider:<10} {name:<width$} {:>7} {:>9}  {:<9} {:<5} {}",
            k.entries,
            k.decryptable,
            yes(k.available),
            if k.write_key { "yes" } else { "" },
            k.fingerprint.as_deref().unwrap_or("-")
        );
        if let Some(plugin) = &k.plugin {
            let state = plugin.error.as_deref().unwrap_or("ok");
            let _ = writeln!(
                out,
                "             plugin {}: {state}, {} Decrypt calls",
                plugin.endpoint, plugin.decrypt_calls
            );
        }
    }
    out
}

fn findings_table(out: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    let _ = writeln!(out, "findings");
    for f in findings {
        let sev = format!("{:?}", f.severity).to_uppercase();
        let _ = writeln!(out, "  {sev:<6} {} ({}): {}", f.code, f.count, f.message);
        if !f.examples.is_empty() {
            let more = if f.count as usize > f.examples.len() { ", …" } else { "" };
            let _ = writeln!(
                out,
                "         e.g. {}{more}",
                f.examples.iter().take(3).cloned().collect::<Vec<_>>().join(", ")
            );
        }
    }
}
