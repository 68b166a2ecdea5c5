//! One self-contained HTML page for people who read a page, not JSON: a
//! summary row per backup, the per-cluster sweep, then each backup's keys
//! and findings. No script, no stylesheet or image from elsewhere (it is
//! read offline and mailed around); every string from a backup is escaped.

use std::fmt::Write as _;

use super::{Entry, Skipped};
use crate::audit::sweep::ClusterGroup;
use crate::audit::{Class, Finding, ScanReport, Severity};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:2em;color:#1b1f24}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:2em}h3{font-size:1.05em}\
table{border-collapse:collapse;margin:.5em 0 1.5em}th,td{border:1px solid #d0d7de;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td.n{text-align:right}code{font-size:.92em;word-break:break-all}\
.pass{color:#116329;font-weight:600}.fail{color:#a40e26;font-weight:600}.error{color:#7d4e00;font-weight:600}\
.critical{background:#a40e26;color:#fff}.high{background:#d1242f;color:#fff}.medium{background:#bf8700;color:#fff}.low{background:#57606a;color:#fff}\
.sev{padding:0 .4em;border-radius:3px;font-size:.85em}footer{margin-top:3em;color:#57606a;font-size:.85em}";

pub fn render(
    out: &mut dyn std::io::Write,
    backups: &[Entry<ScanReport>],
    clusters: &[ClusterGroup],
    skipped: &[Skipped],
) -> std::io::Result<()> {
    let mut h = String::new();
    let failed =
        backups.iter().filter(|b| b.result.as_ref().is_some_and(|r| !r.failed_on.is_empty())).count();
    let errors = backups.iter().filter(|b| b.result.is_none()).count();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>etcd-audit report</title><style>{STYLE}</style></head><body>\n\
         <h1>etcd-audit report</h1>\n<p id=\"overall\">{} backups: {} pass, <span class=\"fail\">{failed} fail</span>, \
         <span class=\"error\">{errors} could not be audited</span>.</p>\n",
        backups.len(),
        backups.len() - failed - errors
    );
    h.push_str("<h2>Backups</h2>\n<table id=\"backups\"><tr><th>backup</th><th>result</th><th>cluster</th><th>taken at</th><th>integrity</th>");
    for class in Class::ALL {
        let _ = write!(h, "<th>{}</th>", class.as_str());
    }
    h.push_str("<th>findings</th></tr>\n");
    for (i, b) in backups.iter().enumerate() {
        let _ = write!(h, "<tr><td><a href=\"#backup-{i}\"><code>{}</code></a></td>", esc(&b.source));
        let Some(r) = &b.result else {
            let _ = writeln!(
                h,
                "<td class=\"error\">ERROR</td><td colspan=\"{}\">{}</td></tr>",
                Class::ALL.len() + 4,
                esc(b.error.as_deref().unwrap_or("unknown error"))
            );
            continue;
        };
        let result = match r.failed_on.is_empty() {
            true => "<td class=\"pass\">PASS</td>".to_string(),
            false => format!("<td class=\"fail\">FAIL on {}</td>", esc(&r.failed_on.join(", "))),
        };
        let cluster = r.cluster.as_ref().and_then(|c| c.uid.as_deref()).unwrap_or("unknown");
        let taken = r.taken_at.as_ref().map_or("unknown", |t| t.estimate.as_str());
        let integrity = if r.integrity.salvaged {
            "salvaged"
        } else if r.integrity.ok {
            "OK"
        } else {
            "errors"
        };
        let _ = write!(
            h,
            "{result}<td><code>{}</code></td><td>{}</td><td>{integrity}</td>",
            esc(cluster),
            esc(taken)
        );
        for class in Class::ALL {
            let _ = write!(h, "<td class=\"n\">{}</td>", r.summary.get(class));
        }
        let _ = writeln!(h, "<td>{}</td></tr>", severity_counts(&r.findings));
    }
    h.push_str("</table>\n");

    if clusters.iter().any(|c| c.uid.is_some() || !c.findings.is_empty()) {
        h.push_str("<h2>Clusters</h2>\n");
        for c in clusters {
            let _ = writeln!(
                h,
                "<h3>Cluster <code>{}</code></h3>\n<p>{} backup{}; Kubernetes {}.{}{}</p>",
                esc(c.uid.as_deref().unwrap_or("unknown")),
                c.backups.len(),
                if c.backups.len() == 1 { "" } else { "s" },
                esc(&if c.kubernetes_versions.is_empty() {
                    "version unknown".into()
                } else {
                    c.kubernetes_versions.join(", ")
                }),
                c.newest.as_ref().map_or(String::new(), |d| format!(
                    " Newest: <code>{}</code> at {}.",
                    esc(&d.source),
                    esc(&d.taken_at)
                )),
                c.oldest.as_ref().map_or(String::new(), |d| format!(
                    " Oldest: <code>{}</code> at {}.",
                    esc(&d.source),
                    esc(&d.taken_at)
                )),
            );
            findings(&mut h, &c.findings);
        }
    }

    h.push_str("<h2>Details</h2>\n");
    for (i, b) in backups.iter().enumerate() {
        let _ = writeln!(h, "<h3 id=\"backup-{i}\"><code>{}</code></h3>", esc(&b.source));
        let Some(r) = &b.result else {
            let _ = writeln!(
                h,
                "<p class=\"error\">Could not be audited: {}</p>",
                esc(b.error.as_deref().unwrap_or(""))
            );
            continue;
        };
        let _ = writeln!(
            h,
            "<p>etcd revision {}, {} bytes, prefix <code>{}</code>; read as {}.</p>",
            r.etcd.revision,
            r.etcd.size_bytes,
            esc(&r.etcd.etcd_prefix),
            esc(&r.container.join(" > "))
        );
        if !r.keys.is_empty() {
            h.push_str("<table class=\"keys\"><tr><th>key</th><th>entries</th><th>decrypted</th><th>available</th><th>write key</th><th>fingerprint</th></tr>\n");
            for k in &r.keys {
                let yes = |b: bool| if b { "yes" } else { "<span class=\"fail\">NO</span>" };
                let _ = writeln!(
                    h,
                    "<tr><td><code>{}:{}</code></td><td class=\"n\">{}</td><td class=\"n\">{}</td><td>{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    k.provider.as_str(),
                    esc(&k.name),
                    k.entries,
                    k.decryptable,
                    yes(k.available),
                    if k.write_key { "yes" } else { "no" },
                    esc(k.fingerprint.as_deref().unwrap_or("-"))
                );
            }
            h.push_str("</table>\n");
        }
        findings(&mut h, &r.findings);
    }
    if !skipped.is_empty() {
        h.push_str("<h2>Skipped</h2>\n<ul>\n");
        for s in skipped {
            let _ = writeln!(h, "<li><code>{}</code>: {}</li>", esc(&s.path), esc(&s.reason.to_string()));
        }
        h.push_str("</ul>\n");
    }
    let _ = writeln!(
        h,
        "<footer>etcd-audit {}: names, counts and fingerprints only, never a value.</footer>\n</body></html>",
        crate::TOOL_VERSION
    );
    out.write_all(h.as_bytes())
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "critical",
        Severity::High => "high",
        Severity::Medium => "medium",
        Severity::Low => "low",
    }
}

fn severity_counts(findings: &[Finding]) -> String {
    let parts: Vec<String> = [Severity::Critical, Severity::High, Severity::Medium, Severity::Low]
        .into_iter()
        .filter_map(|s| {
            let n = findings.iter().filter(|f| f.severity == s).count();
            (n > 0).then(|| format!("<span class=\"sev {0}\">{n} {0}</span>", severity_name(s)))
        })
        .collect();
    if parts.is_empty() {
        "none".into()
    } else {
        parts.join(" ")
    }
}

fn findings(h: &mut String, findings: &[Finding]) {
    if findings.is_empty() {
        h.push_str("<p>No findings.</p>\n");
        return;
    }
    h.push_str("<table class=\"findings\"><tr><th>severity</th><th>finding</th><th>count</th><th>what it says</th><th>what to do</th></tr>\n");
    for f in findings {
        let rule = f.code.rule();
        let examples = match f.examples.is_empty() {
            true => String::new(),
            false => format!(
                "<br>e.g. {}",
                f.examples.iter().map(|e| format!("<code>{}</code>", esc(e))).collect::<Vec<_>>().join(", ")
            ),
        };
        let links: String = f
            .references
            .iter()
            .map(|r| format!(" <a href=\"{}\" rel=\"noreferrer\">{}</a>", esc(r.url), esc(r.title)))
            .collect();
        let _ = writeln!(
            h,
            "<tr><td><span class=\"sev {0}\">{0}</span></td><td><code>{1}</code><br>{2}</td><td class=\"n\">{3}</td><td>{4}{5}</td><td>{6}{7}</td></tr>",
            severity_name(f.severity),
            f.code.as_str(),
            esc(rule.title),
            f.count,
            esc(&f.message),
            examples,
            esc(f.remediation.unwrap_or(rule.remediation)),
            links
        );
    }
    h.push_str("</table>\n");
}

/// HTML text and attribute escaping.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_in_names_is_escaped() {
        assert_eq!(super::esc("<script>\"x\"&'y'"), "&lt;script&gt;&quot;x&quot;&amp;&#39;y&#39;");
    }
}
