//! Prometheus text exposition for node_exporter's textfile collector.
//! Label sets stay bounded for sweeps of thousands of objects: series are
//! per cluster (its UID, or `unknown`) unless per-backup series are asked
//! for. No timestamps on samples (the collector adds the scrape time).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use super::Entry;
use crate::audit::sweep::ClusterGroup;
use crate::audit::{Class, ScanReport};

/// What the run adds to the reports.
pub struct RunFacts {
    /// Unix seconds when the run ended.
    pub finished: i64,
    pub duration_seconds: f64,
    /// "Now" for ages (`--now`, else the clock).
    pub now: i64,
    /// Also per-backup series (`--metrics-per-backup`).
    pub per_backup: bool,
    /// `INDEX/COUNT` of a sharded run: a `shard` label on every series, so
    /// the shards' files sit side by side in one textfile folder.
    pub shard: Option<String>,
}

const UNKNOWN: &str = "unknown";

fn cluster_of(r: &ScanReport) -> &str {
    r.cluster.as_ref().and_then(|c| c.uid.as_deref()).unwrap_or(UNKNOWN)
}

pub fn render(
    out: &mut dyn std::io::Write,
    backups: &[Entry<ScanReport>],
    clusters: &[ClusterGroup],
    run: &RunFacts,
) -> std::io::Result<()> {
    let mut m = Metrics { shard: run.shard.clone(), ..Metrics::default() };
    m.gauge("etcd_audit_info", "The etcd-audit version that wrote these metrics.");
    m.sample("etcd_audit_info", &[("version", crate::TOOL_VERSION)], 1.0);

    // Backups by cluster and result.
    let mut by_cluster: BTreeMap<&str, Vec<&ScanReport>> = BTreeMap::new();
    let mut results: BTreeMap<(&str, &str), u64> = BTreeMap::new();
    let mut errors = 0u64;
    for b in backups {
        match &b.result {
            Some(r) => {
                let cluster = cluster_of(r);
                by_cluster.entry(cluster).or_default().push(r);
                let result = if r.failed_on.is_empty() { "ok" } else { "findings" };
                *results.entry((cluster, result)).or_default() += 1;
            }
            None => {
                errors += 1;
                *results.entry((UNKNOWN, "error")).or_default() += 1;
            }
        }
    }
    m.gauge(
        "etcd_audit_backups",
        "Backups audited by the last run, by cluster and result (ok, findings, error).",
    );
    for ((cluster, result), n) in &results {
        m.sample("etcd_audit_backups", &[("cluster", cluster), ("result", result)], *n as f64);
    }
    m.counter("etcd_audit_backup_errors_total", "Backups the last run could not audit.");
    m.sample("etcd_audit_backup_errors_total", &[], errors as f64);

    // The newest backup of each cluster says what the cluster holds now.
    let newest: BTreeMap<&str, &ScanReport> = by_cluster
        .iter()
        .filter_map(|(c, rs)| {
            let mut best: Option<&ScanReport> = None;
            for r in rs {
                let t = |r: &ScanReport| r.taken_at.as_ref().map(|t| t.unix);
                if best.is_none_or(|b| t(r) >= t(b)) {
                    best = Some(r);
                }
            }
            Some((*c, best?))
        })
        .collect();
    m.gauge("etcd_audit_entries", "In-scope live entries of the cluster's newest backup, by verdict class.");
    for (cluster, r) in &newest {
        for class in Class::ALL {
            m.sample(
                "etcd_audit_entries",
                &[("cluster", cluster), ("class", class.as_str())],
                r.summary.get(class) as f64,
            );
        }
    }
    m.gauge(
        "etcd_audit_findings",
        "Backups of the cluster (plus the cluster's own findings) that raise each finding code.",
    );
    let mut findings: BTreeMap<(&str, &str, &str), u64> = BTreeMap::new();
    for (cluster, rs) in &by_cluster {
        for f in rs.iter().flat_map(|r| &r.findings) {
            *findings.entry((cluster, f.code.as_str(), severity(f.severity))).or_default() += 1;
        }
    }
    for c in clusters {
        let cluster = c.uid.as_deref().unwrap_or(UNKNOWN);
        for f in &c.findings {
            *findings.entry((cluster, f.code.as_str(), severity(f.severity))).or_default() += 1;
        }
    }
    for ((cluster, code, sev), n) in &findings {
        m.sample(
            "etcd_audit_findings",
            &[("cluster", cluster), ("code", code), ("severity", sev)],
            *n as f64,
        );
    }
    m.gauge("etcd_audit_keys_missing", "Keys the cluster's backups need that no supplied config holds.");
    for (cluster, rs) in &by_cluster {
        let missing: BTreeSet<(String, &str)> = rs
            .iter()
            .flat_map(|r| &r.keys)
            .filter(|k| !k.available)
            .map(|k| (k.name.clone(), k.provider.as_str()))
            .collect();
        m.sample("etcd_audit_keys_missing", &[("cluster", cluster)], missing.len() as f64);
    }
    m.gauge(
        "etcd_audit_newest_backup_age_seconds",
        "Age of the cluster's newest backup, from the times in it.",
    );
    for (cluster, r) in &newest {
        if let Some(t) = &r.taken_at {
            m.sample(
                "etcd_audit_newest_backup_age_seconds",
                &[("cluster", cluster)],
                (run.now - t.unix) as f64,
            );
        }
    }
    if run.per_backup {
        m.gauge("etcd_audit_backup_entries", "In-scope live entries of each backup, by verdict class.");
        m.gauge("etcd_audit_backup_findings", "Finding counts of each backup, by code.");
        for b in backups {
            let Some(r) = &b.result else { continue };
            let cluster = cluster_of(r);
            for class in Class::ALL {
                let labels = [("cluster", cluster), ("backup", b.source.as_str()), ("class", class.as_str())];
                m.sample("etcd_audit_backup_entries", &labels, r.summary.get(class) as f64);
            }
            for f in &r.findings {
                let labels = [
                    ("cluster", cluster),
                    ("backup", b.source.as_str()),
                    ("code", f.code.as_str()),
                    ("severity", severity(f.severity)),
                ];
                m.sample("etcd_audit_backup_findings", &labels, f.count as f64);
            }
        }
    }
    m.gauge("etcd_audit_last_run_timestamp_seconds", "When the last run ended (Unix seconds).");
    m.sample("etcd_audit_last_run_timestamp_seconds", &[], run.finished as f64);
    m.gauge("etcd_audit_run_duration_seconds", "How long the last run took.");
    m.sample("etcd_audit_run_duration_seconds", &[], run.duration_seconds);
    out.write_all(m.text().as_bytes())
}

fn severity(s: crate::audit::Severity) -> &'static str {
    use crate::audit::Severity::*;
    match s {
        Critical => "critical",
        High => "high",
        Medium => "medium",
        Low => "low",
    }
}

/// Families in order of declaration, each with its samples.
#[derive(Default)]
struct Metrics {
    shard: Option<String>,
    families: Vec<(String, String)>,
    samples: BTreeMap<String, Vec<String>>,
}

impl Metrics {
    fn gauge(&mut self, name: &str, help: &str) {
        self.family(name, help, "gauge");
    }

    fn counter(&mut self, name: &str, help: &str) {
        self.family(name, help, "counter");
    }

    fn family(&mut self, name: &str, help: &str, kind: &str) {
        self.families.push((name.into(), format!("# HELP {name} {help}\n# TYPE {name} {kind}\n")));
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let mut line = name.to_string();
        let shard = self.shard.as_deref().map(|s| ("shard", s));
        let labels: Vec<(&str, &str)> = labels.iter().copied().chain(shard).collect();
        if !labels.is_empty() {
            let pairs: Vec<String> =
                labels.iter().map(|(k, v)| format!("{k}=\"{}\"", label_value(v))).collect();
            let _ = write!(line, "{{{}}}", pairs.join(","));
        }
        let _ = writeln!(line, " {value}");
        self.samples.entry(name.into()).or_default().push(line);
    }

    /// A family without samples is left out.
    fn text(&self) -> String {
        let mut out = String::new();
        for (name, head) in &self.families {
            if let Some(samples) = self.samples.get(name) {
                out.push_str(head);
                samples.iter().for_each(|s| out.push_str(s));
            }
        }
        out
    }
}

/// `\`, `"` and line feeds escaped, as the exposition format requires.
fn label_value(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn label_values_are_escaped() {
        assert_eq!(super::label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
    }
}
