//! `etcd-audit catalog …` answers.

use std::fmt::Write;

use serde::Serialize;

use super::Format;
use crate::catalog::{BackupRecord, Forgotten, NeededKey};

pub const SCHEMA: &str = "etcd-audit.catalog/v1";

/// One answer of the catalog, in the shape its JSON takes.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Answer {
    List { backups: Vec<BackupRecord> },
    CanRetire { key: String, backups: Vec<BackupRecord> },
    Needs { source: String, keys: Vec<NeededKey> },
    Forget { forgotten: Forgotten },
    Import { imported: crate::catalog::Moved },
    Clusters { clusters: Vec<crate::audit::sweep::ClusterGroup> },
}

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    tool_version: &'static str,
    #[serde(flatten)]
    answer: &'a Answer,
}

pub fn render(out: &mut dyn std::io::Write, answer: &Answer, format: Format) -> std::io::Result<()> {
    if format == Format::Json {
        let doc = Document { schema: SCHEMA, tool_version: crate::TOOL_VERSION, answer };
        return super::write_json(out, &doc);
    }
    let mut text = String::new();
    match answer {
        Answer::List { backups } => {
            for b in backups {
                let keys: Vec<String> = b.keys.iter().map(key_label).collect();
                let _ = writeln!(
                    out,
                    "{}  revision {}  sha256:{}  keys: {}",
                    b.source,
                    b.revision,
                    &b.sha256[..16.min(b.sha256.len())],
                    if keys.is_empty() { "none".into() } else { keys.join(", ") }
                );
            }
            let _ = writeln!(text, "{} backups catalogued", backups.len());
        }
        Answer::CanRetire { key, backups } if backups.is_empty() => {
            let _ = writeln!(text, "{key} may be retired: no catalogued backup needs it");
        }
        Answer::CanRetire { key, backups } => {
            let _ = writeln!(text, "{key} is still needed by {} backups:", backups.len());
            for b in backups {
                let _ = writeln!(text, "  {} (revision {})", b.source, b.revision);
            }
        }
        Answer::Needs { source, keys } => {
            let _ = writeln!(text, "{source} needs {} keys", keys.len());
            for k in keys {
                let available = if k.available { "available" } else { "MISSING" };
                let _ = writeln!(text, "  {} ({} entries, {available})", key_label(k), k.entries);
            }
        }
        Answer::Forget { forgotten } => {
            let _ = writeln!(text, "forgot {} backups ({} sources)", forgotten.backups, forgotten.sources);
        }
        Answer::Clusters { clusters } => text.push_str(&super::scan::clusters_table(clusters)),
        Answer::Import { imported } => {
            let _ =
                writeln!(text, "imported {} backups, {} newer sources", imported.backups, imported.sources);
        }
    }
    out.write_all(text.as_bytes())
}

fn key_label(k: &NeededKey) -> String {
    match &k.key_id {
        Some(id) => format!("{}:{} (key id {id})", k.provider, k.name),
        None => format!("{}:{}", k.provider, k.name),
    }
}
