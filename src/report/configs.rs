use std::fmt::Write;

use serde::Serialize;

use super::Format;
use crate::audit::configs::Comparison;

pub const SCHEMA: &str = "etcd-audit.configs/v1";

#[derive(Serialize)]
struct Document<'a> {
    schema: &'static str,
    tool_version: &'static str,
    #[serde(flatten)]
    comparison: &'a Comparison,
}

pub fn render(c: &Comparison, format: Format) -> String {
    if format == Format::Json {
        let doc = Document { schema: SCHEMA, tool_version: crate::TOOL_VERSION, comparison: c };
        return serde_json::to_string_pretty(&doc).expect("report types always serialize") + "\n";
    }
    let mut out = String::new();
    for config in &c.configs {
        let _ = writeln!(out, "{}", config.path);
        for r in &config.resources {
            let _ = writeln!(out, "  {:<24} {}", r.resource, r.providers.join(" > "));
            for k in &r.keys {
                let _ = writeln!(out, "  {:<24}   {} {} {}", "", k.provider, k.name, k.fingerprint);
            }
        }
    }
    if c.differences.is_empty() {
        let _ = writeln!(out, "verdict     configs agree");
    } else {
        let _ = writeln!(out, "differences");
        for d in &c.differences {
            let mark = if d.breaks_reads { "BREAKS READS" } else { "differs" };
            let _ = writeln!(out, "  {mark:<12} {}: {}", d.resource, d.message);
        }
        let breaking = c.differences.iter().filter(|d| d.breaks_reads).count();
        let _ = writeln!(out, "verdict     {breaking} read-breaking differences");
    }
    out
}
