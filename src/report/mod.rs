//! Renderers: JSON with a versioned schema for machines, tables for people.

pub mod catalog;
pub mod configs;
pub mod inspect;
pub mod keys;
pub mod scan;

use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// A per-source result: the audit, or the reason it could not run.
#[derive(Debug, Serialize)]
pub struct Entry<T> {
    pub source: String,
    pub error: Option<String>,
    /// Object storage facts (size, ETag, user metadata, k3s sidecar) for remote sources.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub object: Option<crate::source::remote::RemoteObject>,
    #[serde(flatten)]
    pub result: Option<T>,
}

/// A file inside a walked folder or archive that is not a backup.
#[derive(Clone, Debug, Serialize)]
pub struct Skipped {
    pub path: String,
    pub reason: String,
}

#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    schema: &'static str,
    tool_version: &'static str,
    backups: &'a [Entry<T>],
    skipped: &'a [Skipped],
}

fn json<T: Serialize>(schema: &'static str, backups: &[Entry<T>], skipped: &[Skipped]) -> String {
    let doc = Document { schema, tool_version: crate::TOOL_VERSION, backups, skipped };
    serde_json::to_string_pretty(&doc).expect("report types always serialize") + "\n"
}

/// JSON of the versioned `schema`, or one table per backup and the skipped files.
fn render<T: Serialize>(
    schema: &'static str,
    backups: &[Entry<T>],
    skipped: &[Skipped],
    format: Format,
    table: fn(&Entry<T>) -> String,
) -> String {
    match format {
        Format::Json => json(schema, backups, skipped),
        Format::Table => backups.iter().map(table).collect::<Vec<_>>().join("\n") + &skipped_table(skipped),
    }
}

/// The table footer listing skipped files, if any.
fn skipped_table(skipped: &[Skipped]) -> String {
    skipped.iter().map(|s| format!("skipped     {} ({})\n", s.path, s.reason)).collect()
}
