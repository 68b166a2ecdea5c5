//! SARIF 2.1.0 for code-scanning UIs (GitHub): one rule per finding code,
//! one result per (backup, code) and per (cluster, code), located at the
//! backup (line 1: GitHub requires a line), with the etcd keys involved as
//! logical locations and a fingerprint stable across runs.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::Entry;
use crate::audit::sweep::ClusterGroup;
use crate::audit::{Code, Finding, ScanReport, Severity};

/// The rule of a backup that could not be audited.
const UNREADABLE: &str = "backup-unreadable";

/// Where result locations are relative to (`--sarif-base DIR`).
#[derive(Clone, Debug, Default)]
pub struct SarifOptions {
    pub base: Option<PathBuf>,
}

pub fn render(
    out: &mut dyn std::io::Write,
    backups: &[Entry<ScanReport>],
    clusters: &[ClusterGroup],
    options: &SarifOptions,
) -> std::io::Result<()> {
    let mut results = Vec::new();
    for b in backups {
        let uri = uri(&b.source, options.base.as_deref());
        match (&b.result, &b.error) {
            (Some(report), _) => {
                results.extend(report.findings.iter().map(|f| result(f, &uri, &b.source)));
            }
            (None, error) => {
                results.push(unreadable_result(&b.source, error.as_deref(), &uri, Code::ALL.len()))
            }
        }
    }
    for c in clusters {
        // A cluster's findings sit at its newest backup (every group has one).
        let Some(at) = c.newest.as_ref().map(|d| d.source.as_str()).or(c.backups.last().map(String::as_str))
        else {
            continue;
        };
        let identity = format!("cluster {}", c.uid.as_deref().unwrap_or("unknown"));
        let uri = uri(at, options.base.as_deref());
        results.extend(c.findings.iter().map(|f| result(f, &uri, &identity)));
    }
    let mut rules: Vec<Value> = Code::ALL.iter().map(|c| rule(*c)).collect();
    rules.push(unreadable_rule());
    super::write_json(out, &log(rules, results))
}

/// A SARIF log of one run of this tool.
pub(super) fn log(rules: Vec<Value>, results: Vec<Value>) -> Value {
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "etcd-audit",
                "semanticVersion": crate::TOOL_VERSION,
                "informationUri": "https://github.com/etcd-audit/etcd-audit",
                "rules": rules,
            }},
            "results": results,
            "columnKind": "unicodeCodePoints",
        }],
    })
}

/// The rule of a backup that could not be read at all.
pub(super) fn unreadable_rule() -> Value {
    json!({
        "id": UNREADABLE,
        "name": "BackupUnreadable",
        "shortDescription": {"text": "Backup could not be audited"},
        "fullDescription": {"text": "The backup could not be read or is not an etcd database: nothing in it was checked."},
        "help": {"text": "Check the error: a missing or truncated file, a wrong format, an unreachable endpoint. A damaged bbolt file may be read with --salvage."},
        "defaultConfiguration": {"level": "error"},
        "properties": {"security-severity": "8.0", "tags": ["reliability", "disaster-recovery"]},
    })
}

/// A backup that could not be read, as a result of [`unreadable_rule`] at `index`.
pub(super) fn unreadable_result(source: &str, error: Option<&str>, uri: &str, index: usize) -> Value {
    let message = format!("{source} could not be audited: {}", error.unwrap_or("unknown error"));
    json!({
        "ruleId": UNREADABLE,
        "ruleIndex": index,
        "level": "error",
        "message": {"text": message},
        "locations": [location(uri, &[])],
        "partialFingerprints": {"primaryLocationLineHash": fingerprint(UNREADABLE, source, &[])},
    })
}

pub(super) fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

/// GitHub's `security-severity`: critical ≥ 9, high 7–8.9, medium 4–6.9, low < 4.
pub(super) fn security_severity(severity: Severity) -> &'static str {
    match severity {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "3.0",
    }
}

fn rule(code: Code) -> Value {
    let r = code.rule();
    let name: String = code
        .as_str()
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    let mut rule = json!({
        "id": code.as_str(),
        "shortDescription": {"text": r.title},
        "fullDescription": {"text": r.description},
        "help": {
            "text": r.remediation,
            "markdown": format!("**{}**\n\n{}\n\nRemediation: {}", r.title, r.description, r.remediation),
        },
        "defaultConfiguration": {"level": level(r.severity)},
        "properties": {"security-severity": security_severity(r.severity), "tags": r.tags},
    });
    // SARIF1001: a name equal to the id (as `integrity`/`Integrity` are) is left out.
    if !name.eq_ignore_ascii_case(code.as_str()) {
        rule["name"] = Value::String(name);
    }
    rule
}

/// The etcd keys a finding names (its examples that are keys, without `@revision`).
fn keys(f: &Finding) -> Vec<&str> {
    let mut keys: Vec<&str> = f
        .examples
        .iter()
        .filter(|e| e.starts_with('/'))
        .map(|e| {
            e.rsplit_once('@').filter(|(_, rev)| rev.parse::<i64>().is_ok()).map_or(e.as_str(), |(k, _)| k)
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

fn result(f: &Finding, uri: &str, identity: &str) -> Value {
    let keys = keys(f);
    let index = Code::ALL.iter().position(|c| *c == f.code).unwrap_or(0);
    json!({
        "ruleId": f.code.as_str(),
        "ruleIndex": index,
        "level": level(f.severity),
        "message": {"text": f.message},
        "locations": [location(uri, &keys)],
        "partialFingerprints": {"primaryLocationLineHash": fingerprint(f.code.as_str(), identity, &keys)},
        "properties": {"severity": f.severity, "count": f.count},
    })
}

pub(super) fn location(uri: &str, keys: &[&str]) -> Value {
    let logical: Vec<Value> =
        keys.iter().map(|k| json!({"name": k, "fullyQualifiedName": k, "kind": "resource"})).collect();
    let mut loc = json!({"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": 1}}});
    if !logical.is_empty() {
        loc["logicalLocations"] = Value::Array(logical);
    }
    loc
}

/// Rule, backup (or cluster) and key set: the same finding on the same
/// backup gets the same fingerprint run after run.
pub(super) fn fingerprint(rule: &str, identity: &str, keys: &[&str]) -> String {
    let mut h = Sha256::new();
    for part in [rule, identity].into_iter().chain(keys.iter().copied()) {
        h.update(part.as_bytes());
        h.update([0]);
    }
    format!("{}:1", &hex::encode(h.finalize())[..16])
}

/// The backup as a URI reference: relative to `base` when it is a local path
/// under it, else as written (an absolute path as a `file://` URI); bytes
/// outside RFC 3986's path characters are percent-encoded. URLs (`s3://…`)
/// stay as they are.
pub(super) fn uri(source: &str, base: Option<&Path>) -> String {
    if source.contains("://") {
        return source.to_string();
    }
    let path = Path::new(source);
    let relative = base
        .and_then(|base| {
            let (abs, base) = (std::path::absolute(path).ok()?, std::path::absolute(base).ok()?);
            abs.strip_prefix(base).ok().map(Path::to_path_buf)
        })
        .unwrap_or_else(|| path.to_path_buf());
    let text = relative.to_string_lossy();
    let mut out = String::with_capacity(text.len() + 7);
    if relative.is_absolute() {
        out.push_str("file://");
    }
    for b in text.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'/'
            | b'!'
            | b'+'
            | b'='
            | b'@' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_are_relative_to_the_base_and_encoded() {
        assert_eq!(uri("backups/a b#1.db", None), "backups/a%20b%231.db");
        assert_eq!(uri("s3://bucket/k3s/x.zip", Some(Path::new("/tmp"))), "s3://bucket/k3s/x.zip");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(uri("testdata/x.db", Some(&cwd)), "testdata/x.db");
        assert_eq!(uri(&cwd.join("testdata/x.db").to_string_lossy(), Some(&cwd.join("testdata"))), "x.db");
        assert_eq!(uri("/elsewhere/x y.db", Some(&cwd)), "file:///elsewhere/x%20y.db");
    }

    #[test]
    fn fingerprints_depend_on_rule_backup_and_keys_only() {
        let a = fingerprint("plaintext-secret", "b.db", &["/registry/secrets/a/b"]);
        assert_eq!(a, fingerprint("plaintext-secret", "b.db", &["/registry/secrets/a/b"]));
        assert_ne!(a, fingerprint("plaintext-secret", "c.db", &["/registry/secrets/a/b"]));
        assert_ne!(a, fingerprint("stale", "b.db", &["/registry/secrets/a/b"]));
        assert_ne!(fingerprint("r", "ab", &[]), fingerprint("r", "a", &["b"]));
        assert!(a.ends_with(":1") && a.len() == 18);
    }
}
