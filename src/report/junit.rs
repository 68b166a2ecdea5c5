//! JUnit XML for CI dashboards: one `<testsuite>` per backup (and per
//! cluster with findings), one `<testcase>` per check: integrity, each
//! verdict class, each finding code that fired. A check fails where
//! `--fail-on` matched it; a backup that could not be audited is one test
//! case with an `<error>`.

use std::fmt::Write as _;

use super::{escape_markup as escape, Entry};
use crate::audit::sweep::ClusterGroup;
use crate::audit::{Class, Finding, ScanReport};

/// One test case: name, and its failure (message, body) if any.
struct Case {
    name: String,
    failure: Option<(String, String)>,
    error: Option<String>,
}

struct Suite {
    name: String,
    cases: Vec<Case>,
}

pub fn render(
    out: &mut dyn std::io::Write,
    backups: &[Entry<ScanReport>],
    clusters: &[ClusterGroup],
) -> std::io::Result<()> {
    let mut suites: Vec<Suite> = backups.iter().map(backup_suite).collect();
    for c in clusters.iter().filter(|c| !c.findings.is_empty()) {
        let name = format!("cluster {}", c.uid.as_deref().unwrap_or("unknown"));
        let cases = c.findings.iter().map(|f| finding_case(f, &c.failed_on)).collect();
        suites.push(Suite { name, cases });
    }
    let count = |f: fn(&Case) -> bool| suites.iter().flat_map(|s| &s.cases).filter(|c| f(c)).count();
    let (tests, failures, errors) =
        (count(|_| true), count(|c| c.failure.is_some()), count(|c| c.error.is_some()));
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        xml,
        "<testsuites name=\"etcd-audit\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
    );
    for s in &suites {
        let failures = s.cases.iter().filter(|c| c.failure.is_some()).count();
        let errors = s.cases.iter().filter(|c| c.error.is_some()).count();
        let _ = writeln!(
            xml,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\" errors=\"{errors}\" skipped=\"0\">",
            escape(&s.name),
            s.cases.len()
        );
        for c in &s.cases {
            let _ =
                write!(xml, "    <testcase classname=\"{}\" name=\"{}\"", escape(&s.name), escape(&c.name));
            match (&c.failure, &c.error) {
                (Some((message, body)), _) => {
                    let _ = writeln!(
                        xml,
                        ">\n      <failure message=\"{}\" type=\"fail-on\">{}</failure>\n    </testcase>",
                        escape(message),
                        escape(body)
                    );
                }
                (None, Some(error)) => {
                    let _ = writeln!(
                        xml,
                        ">\n      <error message=\"{}\" type=\"unreadable\"/>\n    </testcase>",
                        escape(error)
                    );
                }
                (None, None) => xml.push_str("/>\n"),
            }
        }
        xml.push_str("  </testsuite>\n");
    }
    xml.push_str("</testsuites>\n");
    out.write_all(xml.as_bytes())
}

fn backup_suite(b: &Entry<ScanReport>) -> Suite {
    let Some(r) = &b.result else {
        let error = b.error.clone().unwrap_or_else(|| "unknown error".into());
        return Suite {
            name: b.source.clone(),
            cases: vec![Case { name: "audit".into(), failure: None, error: Some(error) }],
        };
    };
    let failed = |token: &str| r.failed_on.contains(&token);
    let mut cases = Vec::new();
    let integrity = match r.integrity.ok {
        true => "the SHA-256 trailer, meta pages and bbolt check pass".to_string(),
        false => format!(
            "{} bbolt errors; trailer {:?}",
            r.integrity.bbolt_errors_total, r.integrity.sha256_trailer
        ),
    };
    cases.push(Case {
        name: "integrity".into(),
        failure: failed("integrity").then(|| ("integrity errors".into(), integrity)),
        error: None,
    });
    for class in Class::ALL {
        let n = r.summary.get(class);
        // Stable names (dashboards track a test by name); the count goes with a failure.
        let name = format!("verdict {}", class.as_str());
        let failure =
            failed(class.as_str()).then(|| (format!("{n} {} entries", class.as_str()), String::new()));
        cases.push(Case { name, failure, error: None });
    }
    cases.extend(r.findings.iter().map(|f| finding_case(f, &r.failed_on)));
    Suite { name: b.source.clone(), cases }
}

/// A finding named like a verdict class (`unknown-key`, …) fails in that
/// class's test case, not twice.
fn finding_case(f: &Finding, failed_on: &[&str]) -> Case {
    let class = Class::ALL.iter().any(|c| c.as_str() == f.code.as_str());
    let failure = (!class && failed_on.contains(&f.code.as_str())).then(|| {
        let body = f.examples.iter().map(|e| format!("{e}\n")).collect();
        (f.message.clone(), body)
    });
    Case { name: format!("finding {} ({})", f.code.as_str(), f.code.rule().title), failure, error: None }
}
