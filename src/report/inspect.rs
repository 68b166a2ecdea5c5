use std::fmt::Write;

use super::{Entry, Format, Skipped};
use crate::audit::Inspection;

pub const SCHEMA: &str = "etcd-audit.inspect/v1";

pub fn render(
    out: &mut dyn std::io::Write,
    backups: &[Entry<Inspection>],
    skipped: &[Skipped],
    format: Format,
) -> std::io::Result<()> {
    super::render(out, SCHEMA, backups, skipped, format, table)
}

fn table(entry: &Entry<Inspection>) -> String {
    let mut out = format!("{:<12} {}\n", "backup", entry.source);
    let Some(i) = &entry.result else {
        let _ = writeln!(out, "{:<12} {}", "error", entry.error.as_deref().unwrap_or("unknown"));
        return out;
    };
    let row = |out: &mut String, k: &str, v: String| _ = writeln!(out, "{k:<12} {v}");
    row(&mut out, "container", i.container.join(" > "));
    let metas: Vec<String> = i
        .integrity
        .meta
        .iter()
        .map(|m| match (&m.error, m.txid) {
            (None, Some(txid)) => format!("meta {} ok (txid {txid})", m.page),
            (e, _) => format!("meta {} INVALID ({})", m.page, e.as_deref().unwrap_or("?")),
        })
        .collect();
    let verdict = if i.integrity.ok { "OK" } else { "ERRORS" };
    let trailer = format!("{:?}", i.integrity.sha256_trailer).to_lowercase();
    row(&mut out, "integrity", format!("{verdict}: sha256 trailer {trailer}, {}", metas.join(", ")));
    for e in &i.integrity.bbolt_errors {
        row(&mut out, "", e.clone());
    }
    if !i.integrity.bbolt_errors.is_empty() {
        row(&mut out, "", format!("{} errors found", i.integrity.bbolt_errors_total));
    }
    let e = &i.etcd;
    let compact = e.compact_revision.map_or("never compacted".into(), |c| format!("compacted at {c}"));
    row(&mut out, "revision", format!("{} ({compact})", e.revision));
    row(&mut out, "hash", format!("{:x} ({})", e.hash, e.hash));
    row(&mut out, "total keys", e.total_keys.to_string());
    row(&mut out, "size", format!("{} bytes ({} pages of {})", e.size_bytes, i.pages.total, e.page_size));
    if let Some(v) = &e.storage_version {
        row(&mut out, "version", v.clone());
    }
    let p = &i.pages;
    row(
        &mut out,
        "pages",
        format!(
            "meta {}, branch {}, leaf {}, overflow {}, freelist {}, free {}",
            p.meta, p.branch, p.leaf, p.overflow, p.freelist, p.free
        ),
    );
    let buckets: Vec<String> = i.buckets.iter().map(|(k, v)| format!("{k} {v}")).collect();
    row(&mut out, "buckets", buckets.join(", "));
    out
}
