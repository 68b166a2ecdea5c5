//! Reports where people already look, checked by the tools that read them:
//! SARIF by Microsoft's validator (with GitHub's rules too), JUnit by a JUnit
//! library, metrics by promtool; `-o` and `--output` write whole files.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::util::*;

fn td(name: &str) -> String {
    path_str(&testdata(name)).to_string()
}

/// One scan of the verdict fixture, the forensics data dir and a missing
/// file, writing `format` with `-o` plus a JSON report of the same run.
fn scan_to(dir: &Path, format: &str, extra: &[&str]) -> (Run, PathBuf, Value) {
    let (out, json) = (dir.join(format!("report.{format}")), dir.join("report.json"));
    let (scan, forensics, config) =
        (td("etcd35-scan.snapshot.db"), td("etcd35-forensics-datadir"), td("scan/config-current.yaml"));
    let mut args = vec![
        "scan",
        &scan,
        &forensics,
        "/nonexistent/backup.db",
        "-c",
        &config,
        "--history",
        "--residue",
        "--format",
        format,
        "-o",
        path_str(&out),
    ];
    let also = format!("json={}", path_str(&json));
    args.extend(["--output", &also]);
    args.extend(extra);
    let r = run(&args);
    assert_eq!(r.code, 2, "one source is missing: {}", r.stderr);
    assert!(r.stdout.is_empty(), "-o sends the report to the file only");
    let text = std::fs::read_to_string(&json).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_matches_schema(&doc, &text);
    (r, out, doc)
}

/// `sarif-multitool validate`, its results as (level, rule id).
pub fn validate_sarif(path: &Path, gh: bool) -> Vec<(String, String)> {
    require_command("sarif-multitool", "Microsoft's SARIF validator (npm @microsoft/sarif-multitool)");
    let log = path.with_extension("validation.sarif");
    let _ = std::fs::remove_file(&log);
    let mut cmd = Command::new("sarif-multitool");
    cmd.args(["validate", path_str(path), "-o", path_str(&log)]);
    if gh {
        cmd.args(["--rule-kind", "Gh"]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success() || log.exists(), "{}", String::from_utf8_lossy(&out.stdout));
    let doc: Value = serde_json::from_str(&std::fs::read_to_string(&log).unwrap()).unwrap();
    doc["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (r["level"].as_str().unwrap_or("warning").to_string(), r["ruleId"].as_str().unwrap().to_string())
        })
        .collect()
}

#[test]
fn sarif_passes_microsofts_validator_and_githubs_rules() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path, doc) = scan_to(dir.path(), "sarif", &["--sarif-base", env!("CARGO_MANIFEST_DIR")]);
    for gh in [false, true] {
        let issues = validate_sarif(&path, gh);
        assert!(issues.is_empty(), "validator (GitHub rules: {gh}) says {issues:?}");
    }
    let sarif: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let run = &sarif["runs"][0];
    assert_eq!(sarif["version"], "2.1.0");
    let rules = run["tool"]["driver"]["rules"].as_array().unwrap();
    for rule in rules {
        let severity: f64 = rule["properties"]["security-severity"].as_str().unwrap().parse().unwrap();
        assert!((0.0..=10.0).contains(&severity));
        assert!(rule["help"]["text"].as_str().is_some_and(|t| !t.is_empty()));
    }
    let results = run["results"].as_array().unwrap();
    // One result per (backup, finding code), at the backup, relative to --sarif-base.
    let backups = doc["backups"].as_array().unwrap();
    let mut want: Vec<(String, String)> = backups
        .iter()
        .filter(|b| b["error"].is_null())
        .flat_map(|b| {
            let uri = b["source"]
                .as_str()
                .unwrap()
                .strip_prefix(concat!(env!("CARGO_MANIFEST_DIR"), "/"))
                .unwrap()
                .to_string();
            b["findings"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |f| (uri.clone(), f["code"].as_str().unwrap().to_string()))
        })
        .collect();
    want.push(("file:///nonexistent/backup.db".into(), "backup-unreadable".into()));
    let mut got: Vec<(String, String)> = results
        .iter()
        .map(|r| {
            let uri = r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"].as_str().unwrap();
            assert_eq!(r["locations"][0]["physicalLocation"]["region"]["startLine"], 1);
            let index = r["ruleIndex"].as_u64().unwrap() as usize;
            assert_eq!(rules[index]["id"], r["ruleId"]);
            (uri.to_string(), r["ruleId"].as_str().unwrap().to_string())
        })
        .collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    let unreadable = results.iter().find(|r| r["ruleId"] == "backup-unreadable").unwrap();
    assert_eq!(unreadable["level"], "error");
    // The keys involved, as logical locations.
    let plaintext = results.iter().find(|r| r["ruleId"] == "plaintext-secret").unwrap();
    let logical = plaintext["locations"][0]["logicalLocations"].as_array().unwrap();
    assert!(!logical.is_empty());
    assert!(logical
        .iter()
        .all(|l| l["kind"] == "resource" && l["name"].as_str().unwrap().starts_with("/registry/secrets/")));

    // Fingerprints are stable across runs, and unique per result.
    let dir2 = tempfile::tempdir().unwrap();
    let (_, again, _) = scan_to(dir2.path(), "sarif", &["--sarif-base", env!("CARGO_MANIFEST_DIR")]);
    let prints = |p: &Path| -> Vec<String> {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap();
        v["runs"][0]["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["partialFingerprints"]["primaryLocationLineHash"].as_str().unwrap().to_string())
            .collect()
    };
    let first = prints(&path);
    assert_eq!(first, prints(&again));
    let unique: std::collections::BTreeSet<&String> = first.iter().collect();
    assert_eq!(unique.len(), first.len());
}

#[test]
fn junit_has_a_suite_per_backup_and_fails_what_fail_on_matched() {
    require_python(&["junitparser"]);
    let dir = tempfile::tempdir().unwrap();
    let (_, path, doc) = scan_to(dir.path(), "junit", &[]);
    let read = "import json, sys\nfrom junitparser import JUnitXml, Failure, Error\n\
                out = []\n\
                for s in JUnitXml.fromfile(sys.argv[1]):\n\
                \x20   cases = [{'name': c.name, 'failure': any(isinstance(r, Failure) for r in c.result),\n\
                \x20             'error': any(isinstance(r, Error) for r in c.result)} for c in s]\n\
                \x20   out.append({'name': s.name, 'tests': s.tests, 'failures': s.failures, 'errors': s.errors, 'cases': cases})\n\
                print(json.dumps(out))";
    let out = Command::new("python3").args(["-c", read, path_str(&path)]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let suites: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let backups = doc["backups"].as_array().unwrap();
    assert_eq!(suites.len(), backups.len(), "one suite per backup (no cluster has findings)");
    for (suite, b) in suites.iter().zip(backups) {
        assert_eq!(suite["name"], b["source"]);
        let cases = suite["cases"].as_array().unwrap();
        if !b["error"].is_null() {
            assert_eq!((suite["errors"].as_u64(), cases.len()), (Some(1), 1));
            continue;
        }
        let failed: Vec<&str> =
            b["failed_on"].as_array().unwrap().iter().map(|t| t.as_str().unwrap()).collect();
        let failing: Vec<String> = cases
            .iter()
            .filter(|c| c["failure"] == true)
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        let mut want: Vec<String> = failed
            .iter()
            .map(|t| match *t {
                "integrity" => "integrity".to_string(),
                "plaintext" | "unknown-key" | "undecryptable" | "malformed" => format!("verdict {t}"),
                code => {
                    let case = cases
                        .iter()
                        .find(|c| c["name"].as_str().unwrap().starts_with(&format!("finding {code} (")))
                        .unwrap();
                    case["name"].as_str().unwrap().to_string()
                }
            })
            .collect();
        let mut failing = failing;
        want.sort();
        failing.sort();
        assert_eq!(failing, want, "{}", b["source"]);
        // integrity, five verdict classes, and each finding that fired.
        assert_eq!(cases.len(), 6 + b["findings"].as_array().unwrap().len());
    }
}

fn promtool_check(path: &Path) {
    require_command("promtool", "promtool (Debian prometheus)");
    let out = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::from(std::fs::File::open(path).unwrap()))
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `name{labels}` → value, for every sample.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            (series.to_string(), value.parse().unwrap())
        })
        .collect()
}

#[test]
fn metrics_are_per_cluster_and_pass_promtool() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("etcd_audit.prom");
    let c = |f: &str| td(&format!("clusters/{f}"));
    let (alpha, bravo, charlie, delta, config) =
        (c("alpha.db"), c("bravo.db"), c("charlie.db"), c("delta.db"), c("config.yaml"));
    let now = "2026-09-21T18:00:00Z"; // 1790013600
    let r = run(&[
        "scan",
        &alpha,
        &bravo,
        &charlie,
        &delta,
        "/nonexistent.db",
        "-c",
        &config,
        "--now",
        now,
        "--metrics-file",
        path_str(&metrics),
    ]);
    assert_eq!(r.code, 2);
    promtool_check(&metrics);
    let text = std::fs::read_to_string(&metrics).unwrap();
    let s = samples(&text);
    let east = "11111111-1111-4111-8111-111111111111";
    let west = "22222222-2222-4222-8222-222222222222";
    assert_eq!(
        s[&format!("etcd_audit_newest_backup_age_seconds{{cluster=\"{east}\"}}")],
        (1790013600 - 1790011400) as f64
    );
    assert_eq!(
        s[&format!("etcd_audit_newest_backup_age_seconds{{cluster=\"{west}\"}}")],
        (1790013600 - 1790001800) as f64
    );
    assert_eq!(s[&format!("etcd_audit_entries{{cluster=\"{east}\",class=\"decryptable\"}}")], 1.0);
    assert_eq!(s[&format!("etcd_audit_keys_missing{{cluster=\"{east}\"}}")], 0.0);
    let backups: f64 = s
        .iter()
        .filter(|(k, _)| k.starts_with(&format!("etcd_audit_backups{{cluster=\"{east}\"")))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(backups, 3.0);
    assert_eq!(s["etcd_audit_backups{cluster=\"unknown\",result=\"error\"}"], 1.0);
    assert_eq!(s["etcd_audit_backup_errors_total"], 1.0);
    assert_eq!(s[&format!("etcd_audit_info{{version=\"{}\"}}", env!("CARGO_PKG_VERSION"))], 1.0);
    assert!(
        s["etcd_audit_last_run_timestamp_seconds"] > 1.7e9 && s["etcd_audit_run_duration_seconds"] >= 0.0
    );
    assert!(!text.contains("backup=\""), "no per-backup series unless asked");
    assert!(text.lines().filter(|l| !l.starts_with('#')).all(|l| l.split(' ').count() == 2), "no timestamps");

    let r = run(&[
        "scan",
        &alpha,
        &delta,
        "-c",
        &config,
        "--metrics-file",
        path_str(&metrics),
        "--metrics-per-backup",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    promtool_check(&metrics);
    let s = samples(&std::fs::read_to_string(&metrics).unwrap());
    let key =
        format!("etcd_audit_backup_entries{{cluster=\"{west}\",backup=\"{delta}\",class=\"decryptable\"}}");
    assert_eq!(s[&key], 1.0);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temporary file left beside the metrics"
    );
}

#[test]
fn out_files_are_whole_or_untouched_and_keys_takes_table_or_json_only() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.json");
    std::fs::write(&report, "previous").unwrap();
    let db = td("etcd35-scan.snapshot.db");
    // A run that cannot start leaves the file as it was.
    let r =
        run(&["scan", &db, "-c", "/nonexistent/config.yaml", "--format", "json", "-o", path_str(&report)]);
    assert_eq!(r.code, 2);
    assert_eq!(std::fs::read_to_string(&report).unwrap(), "previous");
    let r = run(&["inspect", &db, "--format", "json", "-o", path_str(&report)]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""));
    let text = std::fs::read_to_string(&report).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_matches_schema(&doc, &text);
    assert_eq!(doc["schema"], "etcd-audit.inspect/v1");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file left");

    for bad in [
        vec!["keys", db.as_str(), "--format", "sarif"],
        vec!["scan", db.as_str(), "--output", "pdf=x.pdf"],
        vec!["scan", db.as_str(), "--output", "json"],
    ] {
        let r = run(&bad);
        assert_eq!(r.code, 2, "{bad:?}");
        assert!(!r.stderr.is_empty());
    }
}

/// Headless Chromium (Debian `chromium`) with the flags a closed network needs;
/// its console log goes to stderr.
fn chromium(args: &[&str]) -> std::process::Output {
    require_command("chromium", "Chromium (Debian chromium)");
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1400,1800",
    ]);
    cmd.arg(format!("--user-data-dir={}", profile.path().display()));
    let out = cmd.args(["--enable-logging=stderr", "--v=0"]).args(args).output().unwrap();
    assert!(out.status.success(), "chromium {args:?} failed");
    out
}

#[test]
fn html_report_renders_in_a_real_browser_and_holds_no_value() {
    let dir = tempfile::tempdir().unwrap();
    let (_, path, doc) = scan_to(dir.path(), "html", &[]);
    let html = std::fs::read_to_string(&path).unwrap();
    for never in ["<script", "<link", "<img", "<iframe", "src="] {
        assert!(!html.contains(never), "self-contained: no {never}");
    }
    let markers: Value =
        serde_json::from_str(&std::fs::read_to_string(td("etcd35-scan.expected.json")).unwrap()).unwrap();
    for key in markers["key_materials_b64"].as_array().into_iter().flatten() {
        assert!(!html.contains(key.as_str().unwrap()));
    }
    assert!(!html.contains("ETCDAUDIT-SECRET-"), "no value is printed");

    let url = format!("file://{}", path_str(&path));
    let dom = String::from_utf8(chromium(&["--dump-dom", &url]).stdout).unwrap();
    // What the browser built: one summary row per backup, results as the JSON says.
    let table = dom.split("<table id=\"backups\">").nth(1).unwrap().split("</table>").next().unwrap();
    let rows: Vec<&str> = table.split("<tr>").skip(2).collect();
    let backups = doc["backups"].as_array().unwrap();
    assert_eq!(rows.len(), backups.len());
    for b in backups {
        let source = b["source"].as_str().unwrap();
        let row = rows
            .iter()
            .find(|r| r.contains(&format!("<code>{source}</code>")))
            .unwrap_or_else(|| panic!("{source}"));
        let want = match (b["error"].is_null(), b["failed_on"].as_array().is_some_and(|f| f.is_empty())) {
            (false, _) => "ERROR",
            (true, true) => "PASS",
            (true, false) => "FAIL on",
        };
        assert!(row.contains(want), "{source}: {want} in {row}");
    }
    assert!(
        dom.contains(&format!("{} backups: 1 pass, <span class=\"fail\">1 fail</span>", backups.len())),
        "{dom}"
    );
    for f in backups[0]["findings"].as_array().unwrap() {
        assert!(dom.contains(&format!("<code>{}</code>", f["code"].as_str().unwrap())));
    }
    let png = dir.path().join("report.png");
    chromium(&[&format!("--screenshot={}", path_str(&png)), &url]);
    let image = std::fs::read(&png).unwrap();
    assert!(
        image.starts_with(b"\x89PNG") && image.len() > 20_000,
        "a page was drawn ({} bytes)",
        image.len()
    );
}

/// `data-k` name → number, as the browser's DOM holds them.
fn dom_numbers(dom: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for part in dom.split("data-k=\"").skip(1) {
        let (key, rest) = part.split_once('"').unwrap();
        let value = rest.split_once('>').unwrap().1.split_once('<').unwrap().0;
        assert!(out.insert(key.replace("&amp;", "&"), value.parse().unwrap()).is_none(), "{key} twice");
    }
    out
}

/// The same numbers, computed from the JSON report.
fn json_numbers(doc: &Value) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let classes = ["plaintext", "decryptable", "unknown-key", "undecryptable", "malformed"];
    for (i, b) in doc["backups"].as_array().unwrap().iter().enumerate() {
        if !b["error"].is_null() {
            continue;
        }
        for c in classes {
            out.insert(format!("b{i}.summary.{c}"), b["summary"][c].as_u64().unwrap());
            for place in ["history", "residue", "wal"] {
                if let Some(n) = b["forensics"][place][c].as_u64() {
                    out.insert(format!("b{i}.{place}.{c}"), n);
                }
            }
        }
        let entries = b["entries"].as_array().unwrap();
        for e in entries.iter().filter(|e| e["resource"] == "secrets") {
            let ns = e["namespace"].as_str().unwrap();
            for c in classes {
                *out.entry(format!("b{i}.ns.{ns}.{c}")).or_default() += u64::from(e["class"] == c);
            }
        }
        let (mut write, mut encrypted) = (0, 0);
        for k in b["keys"].as_array().unwrap() {
            let id = format!("{}:{}", k["provider"].as_str().unwrap(), k["name"].as_str().unwrap());
            let n = k["entries"].as_u64().unwrap();
            out.insert(format!("b{i}.key.{id}.entries"), n);
            out.insert(format!("b{i}.key.{id}.decryptable"), k["decryptable"].as_u64().unwrap());
            let stale = entries
                .iter()
                .filter(|e| {
                    e["stale"] == true
                        && format!("{}:{}", e["provider"].as_str().unwrap(), e["key_name"].as_str().unwrap())
                            == id
                })
                .count();
            out.insert(format!("b{i}.key.{id}.stale"), stale as u64);
            encrypted += n;
            if k["write_key"] == true {
                write += n;
            }
        }
        if encrypted > 0 {
            out.insert(format!("b{i}.rotation.write"), write);
            out.insert(format!("b{i}.rotation.encrypted"), encrypted);
        }
    }
    out
}

/// Width and height of a PNG, from its IHDR chunk.
fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert!(bytes.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let be = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn html_numbers_equal_the_json_report_on_a_generated_cluster_and_the_page_requests_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/gen/make-report.sh");
    let made = Command::new("bash")
        .arg(&gen)
        .arg(dir.path())
        .arg("400")
        .env("ETCD35_BIN_DIR", etcd35("etcd").parent().unwrap())
        .output()
        .unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let (db, config) = (dir.path().join("report.db"), dir.path().join("config.yaml"));
    let (html, json) = (dir.path().join("report.html"), dir.path().join("report.json"));
    let (clusters, clusters_config) = (td("clusters"), td("clusters/config.yaml"));
    let also = format!("json={}", path_str(&json));
    let r = run(&[
        "scan",
        path_str(&db),
        &clusters,
        "/nonexistent.db",
        "-c",
        path_str(&config),
        "-c",
        &clusters_config,
        "--history",
        "--residue",
        "--expect-every",
        "1h",
        "--format",
        "html",
        "-o",
        path_str(&html),
        "--output",
        &also,
    ]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let text = std::fs::read_to_string(&json).unwrap();
    let doc: Value = serde_json::from_str(&text).unwrap();
    assert_matches_schema(&doc, &text);
    let summary = &doc["backups"][0]["summary"];
    for class in ["plaintext", "decryptable", "unknown-key", "undecryptable", "malformed"] {
        assert!(summary[class].as_u64().unwrap() >= 400, "{class}: {summary}");
    }

    let url = format!("file://{}", path_str(&html));
    let net_log = dir.path().join("net.json");
    let shown = chromium(&[&format!("--log-net-log={}", path_str(&net_log)), "--dump-dom", &url]);
    let console: Vec<&str> =
        std::str::from_utf8(&shown.stderr).unwrap().lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    // Requests: the page itself only (Chromium's own update and account checks aside).
    let log: Value = serde_json::from_str(&std::fs::read_to_string(&net_log).unwrap()).unwrap();
    let urls: std::collections::BTreeSet<&str> =
        log["events"].as_array().unwrap().iter().filter_map(|e| e["params"]["url"].as_str()).collect();
    for u in &urls {
        let chromium_own = ["google.com/", "googleapis.com/"].iter().any(|h| u.contains(h));
        assert!(chromium_own || *u == url, "the page requested {u}");
    }
    let dom = String::from_utf8(shown.stdout).unwrap();
    assert_eq!(dom_numbers(&dom), json_numbers(&doc), "the numbers on the page are the report's");
    assert!(dom.contains("aria-label=\"backups of cluster 11111111-1111-4111-8111-111111111111 over time\""));
    assert!(!dom.contains("ETCDAUDIT-SECRET-"));

    for (width, name) in [(1280, "desktop"), (390, "phone")] {
        let png = dir.path().join(format!("{name}.png"));
        chromium(&[
            &format!("--window-size={width},2000"),
            &format!("--screenshot={}", path_str(&png)),
            &url,
        ]);
        assert_eq!(png_size(&std::fs::read(&png).unwrap()), (width, 2000), "{name}");
    }
}
