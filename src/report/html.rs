//! One self-contained HTML page for people who read a page, not JSON: a
//! card per backup (verdict, classes as a stacked bar, integrity), Secrets
//! by namespace and class, keys needed against keys held (write key, stale
//! values: rotation progress), history/residue/WAL exposure, findings with
//! remediation, and for sweeps a timeline per cluster. Charts are SVG drawn
//! here; no script, stylesheet, font or image from anywhere (a CSP forbids
//! it), so the page reads offline and makes no request. Every string from a
//! backup is escaped; no value or key byte is ever in it (names, counts and
//! fingerprints only). Numbers carry `data-k` names so tests (and scrapers)
//! can read them back.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Deserialize;

use super::{escape_markup as esc, Entry, Skipped};
use crate::audit::sweep::ClusterGroup;
use crate::audit::{Class, Finding, ScanReport, Severity, Summary};

const STYLE: &str = "body{font:14px/1.45 system-ui,sans-serif;margin:1.5em;color:#1b1f24;max-width:1200px}\
h1{font-size:1.5em}h2{font-size:1.25em;margin-top:2em}h3{font-size:1.05em;margin:1.2em 0 .4em}\
.scroll{overflow-x:auto}table{border-collapse:collapse;margin:.4em 0 1em}\
th,td{border:1px solid #d0d7de;padding:.25em .55em;text-align:left;vertical-align:top}\
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums}code{font-size:.92em;word-break:break-all}\
.card{border:1px solid #d0d7de;border-radius:6px;padding:.4em 1em 1em;margin:1em 0}\
.pass{color:#116329;font-weight:600}.fail{color:#a40e26;font-weight:600}.error{color:#7d4e00;font-weight:600}\
.sev{padding:0 .4em;border-radius:3px;font-size:.85em;color:#fff}.critical{background:#a40e26}.high{background:#d1242f}\
.medium{background:#bf8700}.low{background:#57606a}.legend span{margin-right:1em;white-space:nowrap}\
.sw{display:inline-block;width:.8em;height:.8em;margin-right:.3em;vertical-align:-.05em}\
svg{display:block;max-width:100%}footer{margin-top:3em;color:#57606a;font-size:.85em}\
@media (max-width:700px){body{margin:.6em}.scroll table{min-width:640px}.card{padding:.2em .6em .6em}}";

fn color(class: Class) -> &'static str {
    match class {
        Class::Plaintext => "#d1242f",
        Class::Decryptable => "#1a7f37",
        Class::UnknownKey => "#bf8700",
        Class::Undecryptable => "#8250df",
        Class::Malformed => "#57606a",
    }
}

/// What the page needs from each live entry (read back from the spool).
#[derive(Deserialize)]
struct Row {
    resource: String,
    namespace: Option<String>,
    class: Class,
    provider: Option<String>,
    key_name: Option<String>,
    stale: Option<bool>,
}

/// Per backup, from its entries: Secrets by namespace and class, stale values by key.
#[derive(Default)]
struct Tallies {
    namespaces: BTreeMap<String, Summary>,
    stale: BTreeMap<String, u64>,
}

fn tallies(r: &ScanReport) -> std::io::Result<Tallies> {
    let mut t = Tallies::default();
    r.entries.read(|row: Row| {
        if row.resource == "secrets" {
            let ns = row.namespace.unwrap_or_default();
            t.namespaces.entry(ns).or_default().add(row.class);
        }
        if row.stale == Some(true) {
            let key = format!("{}:{}", row.provider.unwrap_or_default(), row.key_name.unwrap_or_default());
            *t.stale.entry(key).or_default() += 1;
        }
    })?;
    Ok(t)
}

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
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\
         <title>etcd-audit report</title><style>{STYLE}</style></head><body>\n\
         <h1>etcd-audit report</h1>\n<p id=\"overall\">{} backups: {} pass, <span class=\"fail\">{failed} fail</span>, \
         <span class=\"error\">{errors} could not be audited</span>.</p>\n",
        backups.len(),
        backups.len() - failed - errors
    );
    overview(&mut h, backups);
    if clusters.iter().any(|c| c.uid.is_some() || !c.findings.is_empty()) {
        h.push_str("<h2>Clusters</h2>\n");
        for c in clusters {
            cluster(&mut h, c, backups);
        }
    }
    h.push_str("<h2>Backups</h2>\n");
    for (i, b) in backups.iter().enumerate() {
        card(&mut h, i, b)?;
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

/// One row per backup: result, cluster, time, integrity, classes, findings.
fn overview(h: &mut String, backups: &[Entry<ScanReport>]) {
    h.push_str("<div class=\"scroll\"><table id=\"backups\"><tr><th>backup</th><th>result</th><th>cluster</th><th>taken at</th><th>integrity</th>");
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
        let _ = write!(
            h,
            "{}<td><code>{}</code></td><td>{}</td><td>{}</td>",
            result(r),
            esc(cluster_of(r)),
            esc(r.taken_at.as_ref().map_or("unknown", |t| t.estimate.as_str())),
            integrity(r)
        );
        for class in Class::ALL {
            let _ = write!(h, "<td class=\"n\">{}</td>", r.summary.get(class));
        }
        let _ = writeln!(h, "<td>{}</td></tr>", severity_counts(&r.findings));
    }
    h.push_str("</table></div>\n");
}

fn cluster_of(r: &ScanReport) -> &str {
    r.cluster.as_ref().and_then(|c| c.uid.as_deref()).unwrap_or("unknown")
}

fn result(r: &ScanReport) -> String {
    match r.failed_on.is_empty() {
        true => "<td class=\"pass\">PASS</td>".to_string(),
        false => format!("<td class=\"fail\">FAIL on {}</td>", esc(&r.failed_on.join(", "))),
    }
}

fn integrity(r: &ScanReport) -> &'static str {
    if r.integrity.salvaged {
        "salvaged"
    } else if r.integrity.ok {
        "OK"
    } else {
        "errors"
    }
}

/// A backup: its card, charts and tables.
fn card(h: &mut String, i: usize, b: &Entry<ScanReport>) -> std::io::Result<()> {
    let _ = writeln!(h, "<section class=\"card\" id=\"backup-{i}\"><h3><code>{}</code></h3>", esc(&b.source));
    let Some(r) = &b.result else {
        let _ = writeln!(
            h,
            "<p class=\"error\">Could not be audited: {}</p></section>",
            esc(b.error.as_deref().unwrap_or(""))
        );
        return Ok(());
    };
    let verdict = match r.failed_on.is_empty() {
        true => "<span class=\"pass\">PASS</span>".to_string(),
        false => format!("<span class=\"fail\">FAIL</span> on {}", esc(&r.failed_on.join(", "))),
    };
    let _ = writeln!(
        h,
        "<p>{verdict}. Integrity: {}. Cluster <code>{}</code>, taken at {}. etcd revision {}, {} bytes, prefix <code>{}</code>; read as {}.</p>",
        integrity(r),
        esc(cluster_of(r)),
        esc(r.taken_at.as_ref().map_or("unknown", |t| t.estimate.as_str())),
        r.etcd.revision,
        r.etcd.size_bytes,
        esc(&r.etcd.etcd_prefix),
        esc(&r.container.join(" > "))
    );
    stacked_bar(h, &r.summary, 600, 22, &format!("b{i}.summary"), "in-scope live values by class");
    let t = tallies(r)?;
    if !t.namespaces.is_empty() {
        namespaces(h, i, &t.namespaces);
    }
    keys(h, i, r, &t.stale);
    exposure(h, i, r);
    findings(h, &r.findings);
    h.push_str("</section>\n");
    Ok(())
}

/// A horizontal bar, one segment per class, with a legend holding the numbers.
fn stacked_bar(h: &mut String, s: &Summary, width: u64, height: u64, key: &str, label: &str) {
    let total: u64 = Class::ALL.iter().map(|c| s.get(*c)).sum();
    let _ = write!(h, "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" role=\"img\" aria-label=\"{}\">", esc(label));
    let mut x = 0u64;
    for class in Class::ALL {
        let n = s.get(class);
        if n == 0 || total == 0 {
            continue;
        }
        let w = (n * width).div_ceil(total).min(width - x);
        let _ = write!(
            h,
            "<rect x=\"{x}\" y=\"0\" width=\"{w}\" height=\"{height}\" fill=\"{}\"><title>{} {n}</title></rect>",
            color(class),
            class.as_str()
        );
        x += w;
    }
    if total == 0 {
        let _ = write!(h, "<rect x=\"0\" y=\"0\" width=\"{width}\" height=\"{height}\" fill=\"#eaeef2\"/>");
    }
    h.push_str("</svg>\n<p class=\"legend\">");
    for class in Class::ALL {
        let _ = write!(
            h,
            "<span><i class=\"sw\" style=\"background:{}\"></i>{} <b data-k=\"{key}.{}\">{}</b></span>",
            color(class),
            class.as_str(),
            class.as_str(),
            s.get(class)
        );
    }
    h.push_str("</p>\n");
}

/// The namespaces with the most Secrets, a bar each; the rest summed.
fn namespaces(h: &mut String, i: usize, by_ns: &BTreeMap<String, Summary>) {
    const SHOWN: usize = 15;
    let total = |s: &Summary| Class::ALL.iter().map(|c| s.get(*c)).sum::<u64>();
    let mut rows: Vec<(&String, &Summary)> = by_ns.iter().collect();
    rows.sort_by(|a, b| total(b.1).cmp(&total(a.1)).then(a.0.cmp(b.0)));
    let mut other = Summary::default();
    for (_, s) in rows.iter().skip(SHOWN) {
        other.merge(s);
    }
    h.push_str("<h4>Secrets by namespace</h4>\n<div class=\"scroll\"><table class=\"namespaces\"><tr><th>namespace</th>");
    for class in Class::ALL {
        let _ = write!(h, "<th>{}</th>", class.as_str());
    }
    h.push_str("<th></th></tr>\n");
    let max = rows.iter().map(|(_, s)| total(s)).max().unwrap_or(1).max(1);
    let others = rows.len().saturating_sub(SHOWN);
    let shown = rows.iter().take(SHOWN).map(|(n, s)| (esc(n), (*n).clone(), *s));
    let rest = (others > 0).then(|| (format!("{others} more namespaces"), "(other)".to_string(), &other));
    for (label, ns, s) in shown.chain(rest) {
        let _ = write!(h, "<tr><td><code>{label}</code></td>");
        for class in Class::ALL {
            let _ = write!(
                h,
                "<td class=\"n\" data-k=\"b{i}.ns.{}.{}\">{}</td>",
                esc(&ns),
                class.as_str(),
                s.get(class)
            );
        }
        let width = (total(s) * 240).div_ceil(max).max(1);
        h.push_str("<td>");
        stacked_svg(h, s, width, 12);
        h.push_str("</td></tr>\n");
    }
    h.push_str("</table></div>\n");
}

/// A bare bar (no legend), for table cells.
fn stacked_svg(h: &mut String, s: &Summary, width: u64, height: u64) {
    let total: u64 = Class::ALL.iter().map(|c| s.get(*c)).sum::<u64>().max(1);
    let _ = write!(
        h,
        "<svg width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" aria-hidden=\"true\">"
    );
    let mut x = 0;
    for class in Class::ALL {
        let w = (s.get(class) * width) / total;
        if w > 0 {
            let _ = write!(
                h,
                "<rect x=\"{x}\" y=\"0\" width=\"{w}\" height=\"{height}\" fill=\"{}\"/>",
                color(class)
            );
            x += w;
        }
    }
    h.push_str("</svg>");
}

/// Keys needed against keys held; how far the write key has taken over.
fn keys(h: &mut String, i: usize, r: &ScanReport, stale: &BTreeMap<String, u64>) {
    if r.keys.is_empty() {
        return;
    }
    h.push_str("<h4>Keys</h4>\n<div class=\"scroll\"><table class=\"keys\"><tr><th>key</th><th>values</th><th>decrypted</th><th>stale</th><th>held</th><th>write key</th><th>fingerprint</th></tr>\n");
    let mut under_write = 0;
    let mut encrypted = 0;
    for k in &r.keys {
        let id = format!("{}:{}", k.provider.as_str(), k.name);
        let stale_n = stale.get(&id).copied().unwrap_or(0);
        encrypted += k.entries;
        if k.write_key {
            under_write += k.entries;
        }
        let held = if k.available { "yes" } else { "<span class=\"fail\">NO</span>" };
        let _ = writeln!(
            h,
            "<tr><td><code>{0}</code></td><td class=\"n\" data-k=\"b{i}.key.{0}.entries\">{1}</td>\
             <td class=\"n\" data-k=\"b{i}.key.{0}.decryptable\">{2}</td><td class=\"n\" data-k=\"b{i}.key.{0}.stale\">{3}</td>\
             <td>{4}</td><td>{5}</td><td><code>{6}</code></td></tr>",
            esc(&id),
            k.entries,
            k.decryptable,
            stale_n,
            held,
            if k.write_key { "yes" } else { "no" },
            esc(k.fingerprint.as_deref().unwrap_or("-"))
        );
    }
    h.push_str("</table></div>\n");
    if let Some(pct) = (under_write * 100).checked_div(encrypted) {
        let _ = writeln!(
            h,
            "<p>Rotation: <b data-k=\"b{i}.rotation.write\">{under_write}</b> of <b data-k=\"b{i}.rotation.encrypted\">{encrypted}</b> \
             encrypted values use the write key ({pct}%).</p>\
             <svg width=\"300\" height=\"10\" viewBox=\"0 0 300 10\" role=\"img\" aria-label=\"rotation progress\">\
             <rect width=\"300\" height=\"10\" fill=\"#eaeef2\"/><rect width=\"{}\" height=\"10\" fill=\"#1a7f37\"/></svg>",
            pct * 3
        );
    }
}

/// What history, free pages and the WAL still hold, when they were read.
fn exposure(h: &mut String, i: usize, r: &ScanReport) {
    let places =
        [("history", &r.forensics.history), ("residue", &r.forensics.residue), ("wal", &r.forensics.wal)];
    if places.iter().all(|(_, s)| s.is_none()) {
        return;
    }
    h.push_str("<h4>Beyond the live values</h4>\n");
    for (place, s) in places {
        if let Some(s) = s {
            let what = match place {
                "history" => "older revisions in MVCC history",
                "residue" => "revisions carved from free pages",
                _ => "puts in the write-ahead log",
            };
            let _ = writeln!(h, "<p>{what}:</p>");
            stacked_bar(h, s, 400, 14, &format!("b{i}.{place}"), what);
        }
    }
}

/// A cluster: its backups on a time axis (gaps in red), then its findings.
fn cluster(h: &mut String, c: &ClusterGroup, backups: &[Entry<ScanReport>]) {
    let uid = c.uid.as_deref().unwrap_or("unknown");
    let _ = writeln!(
        h,
        "<h3>Cluster <code>{}</code></h3>\n<p>{} backup{}; Kubernetes {}.</p>",
        esc(uid),
        c.backups.len(),
        if c.backups.len() == 1 { "" } else { "s" },
        esc(&if c.kubernetes_versions.is_empty() {
            "version unknown".into()
        } else {
            c.kubernetes_versions.join(", ")
        }),
    );
    let times: Vec<(i64, &str)> = c
        .backups
        .iter()
        .filter_map(|source| {
            let r = backups.iter().find(|b| &b.source == source)?.result.as_ref()?;
            Some((r.taken_at.as_ref()?.unix, source.as_str()))
        })
        .collect();
    if let (Some(first), Some(last)) = (times.iter().map(|t| t.0).min(), times.iter().map(|t| t.0).max()) {
        let (w, pad) = (800i64, 20i64);
        let span = (last - first).max(1);
        let x = |t: i64| pad + (t - first) * (w - 2 * pad) / span;
        let _ = write!(h, "<svg width=\"{w}\" height=\"56\" viewBox=\"0 0 {w} 56\" role=\"img\" aria-label=\"backups of cluster {} over time\"><line x1=\"{pad}\" y1=\"20\" x2=\"{}\" y2=\"20\" stroke=\"#8c959f\"/>", esc(uid), w - pad);
        let gaps =
            c.findings.iter().filter(|f| f.code == crate::audit::Code::BackupGap).flat_map(|f| &f.details);
        for gap in gaps {
            let at = |k: &str| gap[k].as_str().and_then(|s| crate::time::parse_rfc3339(s).ok());
            if let (Some(from), Some(to)) = (at("from"), at("to")) {
                let _ = write!(h, "<line x1=\"{}\" y1=\"20\" x2=\"{}\" y2=\"20\" stroke=\"#d1242f\" stroke-width=\"4\"><title>gap</title></line>", x(from), x(to));
            }
        }
        for (t, source) in &times {
            let _ = write!(
                h,
                "<circle cx=\"{}\" cy=\"20\" r=\"5\" fill=\"#0969da\"><title>{}</title></circle>",
                x(*t),
                esc(source)
            );
        }
        let date = |t: i64| crate::time::rfc3339(t.max(0) as u64);
        let _ = writeln!(
            h,
            "<text x=\"{pad}\" y=\"48\" font-size=\"11\">{}</text><text x=\"{}\" y=\"48\" font-size=\"11\" text-anchor=\"end\">{}</text></svg>",
            date(first),
            w - pad,
            date(last)
        );
    }
    findings(h, &c.findings);
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
    h.push_str("<div class=\"scroll\"><table class=\"findings\"><tr><th>severity</th><th>finding</th><th>count</th><th>what it says</th><th>what to do</th></tr>\n");
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
    h.push_str("</table></div>\n");
}
