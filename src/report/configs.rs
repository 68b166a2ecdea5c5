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

pub fn render(out: &mut dyn std::io::Write, c: &Comparison, format: Format) -> std::io::Result<()> {
    if format == Format::Json {
        let doc = Document { schema: SCHEMA, tool_version: crate::TOOL_VERSION, comparison: c };
        return super::write_json(out, &doc);
    }
    let mut text = String::new();
    for config in &c.configs {
        let _ = writeln!(text, "{}", config.path);
        for r in &config.resources {
            let _ = writeln!(text, "  {:<24} {}", r.resource, r.providers.join(" > "));
            for k in &r.keys {
                let _ = writeln!(text, "  {:<24}   {} {} {}", "", k.provider, k.name, k.fingerprint);
            }
        }
    }
    if !c.findings.is_empty() {
        let _ = writeln!(text, "findings");
        for f in &c.findings {
            let sev = format!("{:?}", f.severity).to_uppercase();
            let _ = writeln!(text, "  {sev:<8} {} ({}): {}", f.code, f.count, f.message);
            for e in f.examples.iter().take(3) {
                let _ = writeln!(text, "           {e}");
            }
            if let Some(fix) = f.remediation {
                let _ = writeln!(text, "           fix: {fix}");
            }
        }
    }
    let serious = c.findings.iter().filter(|f| f.severity <= crate::audit::Severity::High).count();
    if serious > 0 {
        let _ = writeln!(text, "verdict     {serious} critical or high findings (exit 1)");
    }
    if c.differences.is_empty() {
        let _ = writeln!(text, "verdict     configs agree");
    } else {
        let _ = writeln!(text, "differences");
        for d in &c.differences {
            let mark = if d.breaks_reads { "BREAKS READS" } else { "differs" };
            let _ = writeln!(text, "  {mark:<12} {}: {}", d.resource, d.message);
        }
        let breaking = c.differences.iter().filter(|d| d.breaks_reads).count();
        let _ = writeln!(text, "verdict     {breaking} read-breaking differences");
    }
    out.write_all(text.as_bytes())
}
