//! Renderers: JSON with a versioned schema for machines, tables for people.

pub mod catalog;
pub mod configs;
pub mod exposure;
pub mod html;
pub mod inspect;
pub mod junit;
pub mod keys;
pub mod metrics;
pub mod output;
pub mod sarif;
pub mod scan;
pub mod schema;

use std::io::Write;

use serde::Serialize;

/// How a report is written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
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

pub use crate::walk::Skipped;

#[derive(Serialize)]
struct Document<'a, T: Serialize> {
    schema: &'static str,
    tool_version: &'static str,
    backups: &'a [Entry<T>],
    skipped: &'a [Skipped],
}

/// Streams JSON to `out`: a report of 300k entries is never held twice in memory.
pub(crate) fn write_json(out: &mut dyn Write, doc: &impl Serialize) -> std::io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, doc)?;
    writeln!(out)
}

/// JSON of the versioned `schema`, or one table per backup and the skipped files.
fn render<T: Serialize>(
    out: &mut dyn Write,
    schema: &'static str,
    backups: &[Entry<T>],
    skipped: &[Skipped],
    format: Format,
    table: fn(&Entry<T>) -> String,
) -> std::io::Result<()> {
    match format {
        Format::Json => {
            write_json(out, &Document { schema, tool_version: crate::TOOL_VERSION, backups, skipped })
        }
        Format::Table => {
            for (i, backup) in backups.iter().enumerate() {
                if i > 0 {
                    writeln!(out)?;
                }
                out.write_all(table(backup).as_bytes())?;
            }
            out.write_all(skipped_table(skipped).as_bytes())
        }
    }
}

/// Text and attribute escaping for HTML and XML; characters XML 1.0 forbids
/// (control characters, U+FFFE, U+FFFF) become U+FFFD.
pub(crate) fn escape_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{FFFE}' || c == '\u{FFFF}' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// The table footer listing skipped files, if any.
fn skipped_table(skipped: &[Skipped]) -> String {
    skipped.iter().map(|s| format!("skipped     {} ({})\n", s.path, s.reason)).collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_is_escaped_and_forbidden_characters_replaced() {
        assert_eq!(
            super::escape_markup("<script>\"x\"&'y'\u{1}\n"),
            "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;\u{FFFD}\n"
        );
    }
}
