//! Breach impact on a real etcd 3.5 snapshot and data dir (db + WAL) written
//! by an independent encoder (testdata/gen/exposure.py): plaintext live
//! Secrets, plaintext left in history by a rewrite, deleted Secrets,
//! plaintext only in free pages or the WAL after a compaction, Secrets under
//! config keys, under a published docs key and under a key nobody has.
//! expected.json says what each model reads where, computed from the files
//! with the Python bbolt and WAL readers.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::{json, Value};

use crate::util::*;

fn fixture(name: &str) -> String {
    path_str(&testdata(&format!("exposure/{name}"))).to_string()
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixture("expected.json")).unwrap()).unwrap()
}

/// `exposure --format json` with `-c config.yaml`, and what it printed.
fn exposure(sources: &[&str], extra: &[&str]) -> (Run, Value) {
    let config = fixture("config.yaml");
    let mut args = vec!["exposure", "--format", "json", "-c", &config];
    args.extend(extra);
    args.extend(sources);
    let r = run(&args);
    assert_no_values(&r);
    let doc = r.json();
    (r, doc)
}

fn assert_no_values(r: &Run) {
    for s in expected()["never_printed"].as_array().unwrap() {
        let s = s.as_str().unwrap();
        assert!(!r.stdout.contains(s) && !r.stderr.contains(s), "output holds {s}");
    }
}

/// Every listed row (Secrets and others) as {key: {place: [revisions]}} of its only backup.
fn places(doc: &Value) -> BTreeMap<String, Value> {
    let rows = doc["secrets"].as_array().unwrap().iter().chain(doc["others"].as_array().unwrap());
    rows.map(|row| {
        let b = &row["backups"][0];
        assert_eq!(row["backups"].as_array().unwrap().len(), 1);
        let mut places = serde_json::Map::new();
        for (place, field) in [
            ("live", "live_revisions"),
            ("history", "history_revisions"),
            ("residue", "residue_revisions"),
            ("wal", "wal_raft_indexes"),
        ] {
            if !b[field].as_array().unwrap().is_empty() {
                places.insert(place.into(), b[field].clone());
            }
        }
        (row["key"].as_str().unwrap().to_string(), Value::Object(places))
    })
    .collect()
}

/// What expected.json says `model` reads in `file`, ConfigMaps kept only when
/// a data key names a credential (the fixture's db-config).
fn expected_places(model: &str, file: &str) -> BTreeMap<String, Value> {
    let exp = expected();
    exp["models"][model][file]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(key, _)| !key.contains("/configmaps/") || key.ends_with("/db-config"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

fn row<'a>(doc: &'a Value, key: &str) -> Option<&'a Value> {
    doc["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .chain(doc["others"].as_array().unwrap())
        .find(|r| r["key"] == key)
}

#[test]
fn the_file_alone_gives_away_exactly_the_plaintext_and_the_published_key() {
    for (source, file) in [("snapshot.db", "snapshot"), ("datadir", "datadir")] {
        let (r, doc) = exposure(&[&fixture(source)], &[]);
        assert_eq!(r.code, 1, "{source}: readable Secrets exit 1");
        assert_eq!(doc["assume"], "backup");
        assert_eq!(places(&doc), expected_places("backup", file), "{source}");
        // Each Secret once, with every place it can be read from.
        let docs = row(&doc, "/registry/secrets/default/docs-sealed").unwrap();
        assert_eq!(docs["readable_from"], "backup", "the docs key is anyone's");
        for key in ["/registry/secrets/web/tls-frontend", "/registry/secrets/vault/lost"] {
            assert!(row(&doc, key).is_none(), "{key}: no key the holder lacks is used");
        }
        assert!(row(&doc, "/registry/configmaps/default/web-content").is_none());
        let deleted = row(&doc, "/registry/secrets/gone/s1").unwrap();
        assert_eq!(
            (deleted["still_live"].as_bool(), deleted["exposed_in"][0].as_str()),
            (Some(false), Some("residue"))
        );
        let rotated = row(&doc, "/registry/secrets/prod/db-credentials").unwrap();
        assert_eq!(rotated["still_live"], true, "rewritten encrypted, but its old value leaks");
    }
}

#[test]
fn the_encryption_config_adds_exactly_the_decryptable_ones() {
    for (source, file) in [("snapshot.db", "snapshot"), ("datadir", "datadir")] {
        let (r, doc) = exposure(&[&fixture(source)], &["--assume", "backup+keys"]);
        assert_eq!(r.code, 1);
        assert_eq!(places(&doc), expected_places("backup+keys", file), "{source}");
        let tls = row(&doc, "/registry/secrets/web/tls-frontend").unwrap();
        assert_eq!(
            (tls["readable_from"].as_str(), tls["risk"].as_str()),
            (Some("backup+keys"), Some("high"))
        );
        assert!(row(&doc, "/registry/secrets/vault/lost").is_none(), "sealed with a key no config holds");
        // compacted/s1's plaintext is in the WAL of the data dir only.
        let s1 = row(&doc, "/registry/secrets/compacted/s1").unwrap();
        let from = if file == "datadir" { "backup" } else { "backup+keys" };
        assert_eq!(s1["readable_from"], from, "{source}");

        let backup = expected_places("backup", file).keys().filter(|k| k.contains("/secrets/")).count();
        let keys = expected_places("backup+keys", file).keys().filter(|k| k.contains("/secrets/")).count();
        assert_eq!(
            doc["models"][0],
            json!({"model": "backup", "secrets": backup, "critical": 2, "others": 1})
        );
        assert_eq!(doc["models"][1]["secrets"], keys);
        assert_eq!(doc["secrets_unreadable"], 1, "vault/lost");
        let summary = format!(
            "{backup} Secrets readable by whoever holds this backup (2 critical); {} more if the encryption \
             config leaked too",
            keys - backup
        );
        assert!(doc["summary"].as_str().unwrap().starts_with(&summary), "{}", doc["summary"]);
    }
}

#[test]
fn risk_ranks_a_kube_system_token_above_an_opaque_secret_in_default() {
    let (_, doc) = exposure(&[&fixture("snapshot.db")], &[]);
    let secrets = doc["secrets"].as_array().unwrap();
    let at = |key: &str| secrets.iter().position(|r| r["key"] == key).unwrap();
    let token = &secrets[at("/registry/secrets/kube-system/default-token-x7k2p")];
    let opaque = &secrets[at("/registry/secrets/default/app-settings")];
    assert_eq!((token["risk"].as_str(), opaque["risk"].as_str()), (Some("critical"), Some("low")));
    assert_eq!(token["type"], "kubernetes.io/service-account-token");
    assert_eq!(token["data_keys"], json!(["ca.crt", "namespace", "token"]));
    assert!(
        at("/registry/secrets/kube-system/default-token-x7k2p")
            < at("/registry/secrets/default/app-settings")
    );
    let registry = &secrets[at("/registry/secrets/default/registry-old")];
    assert_eq!(registry["risk"], "high");
    // Sorted by risk, then namespace and name.
    let rank =
        |r: &Value| ["critical", "high", "medium", "low"].iter().position(|x| r["risk"] == *x).unwrap();
    let order: Vec<_> =
        secrets.iter().map(|r| (rank(r), r["namespace"].to_string(), r["name"].to_string())).collect();
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(order, sorted);
    let cm = row(&doc, "/registry/configmaps/default/db-config").unwrap();
    assert_eq!(
        (cm["risk"].as_str(), cm["data_keys"].clone()),
        (Some("high"), json!(["DB_HOST", "DB_PASSWORD"]))
    );
}

#[test]
fn several_backups_merge_into_one_row_per_secret() {
    let (snapshot, datadir) = (fixture("snapshot.db"), fixture("datadir"));
    let (_, doc) = exposure(&[&snapshot, &datadir], &[]);
    let exp = expected();
    let listed = |file: &str| expected_places("backup", file);
    let union: std::collections::BTreeSet<String> =
        listed("snapshot").into_keys().chain(listed("datadir").into_keys()).collect();
    let rows: Vec<&Value> =
        doc["secrets"].as_array().unwrap().iter().chain(doc["others"].as_array().unwrap()).collect();
    assert_eq!(
        rows.iter()
            .map(|r| r["key"].as_str().unwrap().to_string())
            .collect::<std::collections::BTreeSet<_>>(),
        union
    );
    assert_eq!(rows.len(), union.len(), "one row per object");
    let s1 = row(&doc, "/registry/secrets/compacted/s1").unwrap();
    assert_eq!(s1["backups"].as_array().unwrap().len(), 1, "its plaintext is in the WAL only");
    assert_eq!(s1["backups"][0]["source"], datadir.as_str());
    let s7 = row(&doc, "/registry/secrets/compacted/s7").unwrap();
    let sources: Vec<&str> =
        s7["backups"].as_array().unwrap().iter().map(|b| b["source"].as_str().unwrap()).collect();
    assert_eq!(sources, [snapshot.as_str(), datadir.as_str()]);
    assert_eq!(s7["exposed_in"], json!(["residue", "wal"]));
    assert!(doc["summary"].as_str().unwrap().contains("whoever holds these backups"));
    assert_eq!(exp["never_readable"], json!(["/registry/secrets/vault/lost"]));
}

#[test]
fn csv_and_table_list_the_same_rows_and_no_value() {
    let config = fixture("config.yaml");
    let source = fixture("datadir");
    let (_, doc) = exposure(&[&source], &[]);
    let csv = run(&["exposure", "--format", "csv", "-c", &config, &source]);
    assert_no_values(&csv);
    assert_eq!(csv.code, 1);
    let parse = "import csv, json, sys; print(json.dumps(list(csv.DictReader(sys.stdin))))";
    let mut child = Command::new("python3")
        .args(["-c", parse])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(csv.stdout.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let records: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let rows: Vec<&Value> =
        doc["secrets"].as_array().unwrap().iter().chain(doc["others"].as_array().unwrap()).collect();
    assert_eq!(records.len(), rows.len());
    for (rec, row) in records.iter().zip(rows) {
        assert_eq!(rec["key"], row["key"]);
        assert_eq!(rec["risk"], row["risk"]);
        assert_eq!(rec["reason"], row["reason"], "quoted fields survive");
        let keys: Vec<&str> =
            row["data_keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
        assert_eq!(rec["data_keys"], keys.join(";"));
    }
    let table = run(&["exposure", "-c", &config, &source]);
    assert_no_values(&table);
    assert!(table.stdout.starts_with(doc["summary"].as_str().unwrap()), "the summary line leads");
    assert!(table.stdout.contains("kube-system/default-token-x7k2p"));
}

#[test]
fn without_the_config_a_published_key_cannot_be_told_and_the_summary_says_so() {
    let r = run(&["exposure", "--format", "json", &fixture("snapshot.db")]);
    let doc = r.json();
    assert!(row(&doc, "/registry/secrets/default/docs-sealed").is_none());
    assert!(doc["summary"].as_str().unwrap().contains("pass -c CONFIG"));
    assert_eq!(doc["models"].as_array().unwrap().len(), 1);
}

#[test]
fn a_model_without_its_inputs_is_refused() {
    let source = fixture("snapshot.db");
    let keys = run(&["exposure", "--assume", "backup+keys", &source]);
    assert_eq!(keys.code, 2);
    assert!(keys.stderr.contains("--assume backup+keys needs -c CONFIG"), "{}", keys.stderr);
    let token = run(&["exposure", "--assume", "backup+token", &source]);
    assert_eq!(token.code, 2);
    let bad = run(&["exposure", "--assume", "everything", &source]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("backup+keys+kms"));
}

#[test]
fn k3s_bootstrap_keys_count_under_the_token_model_unless_sealed_without_one() {
    let k3s = |p: &str| path_str(&testdata(&format!("k3s/{p}"))).to_string();
    let snapshot = k3s("etcd-snapshot-server-1-1795900000");
    let r = run(&["exposure", "--format", "json", &snapshot]);
    assert_eq!(r.code, 0, "nothing readable with the file alone: {}", r.stdout);
    assert_eq!(r.json()["secrets_unreadable"], 5);
    let r = run(&[
        "exposure",
        "--format",
        "json",
        "--assume",
        "backup+token",
        "--k3s-token",
        &k3s("token"),
        &snapshot,
    ]);
    assert_eq!(r.code, 1);
    let doc = r.json();
    let secrets = doc["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 5);
    assert!(secrets.iter().all(|s| s["readable_from"] == "backup+token"));
    assert!(doc["summary"].as_str().unwrap().starts_with(
        "0 Secrets readable by whoever holds this backup (0 critical); 5 more with the k3s/RKE2 server token"
    ));
    // Sealed with the empty passphrase: the file alone opens it.
    let r = run(&["exposure", "--format", "json", &k3s("empty/on-demand-server-1-1795900100")]);
    let doc = r.json();
    let keys: Vec<&str> =
        doc["secrets"].as_array().unwrap().iter().map(|s| s["key"].as_str().unwrap()).collect();
    assert_eq!(keys.len(), 2);
    assert!(
        keys.contains(&"/registry/secrets/default/db") && keys.contains(&"/registry/secrets/default/legacy")
    );
}

#[test]
fn reports_match_the_published_schema() {
    require_python(&["jsonschema"]);
    let schema =
        path_str(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/schema/exposure.v1.json"))
            .to_string();
    let k3s_token = path_str(&testdata("k3s/token")).to_string();
    let k3s = path_str(&testdata("k3s/etcd-snapshot-server-1-1795900000")).to_string();
    let reports = [
        exposure(&[&fixture("snapshot.db"), &fixture("datadir")], &["--assume", "backup+keys"]).0.stdout,
        run(&[
            "exposure",
            "--format",
            "json",
            "--assume",
            "backup+token",
            "--k3s-token",
            &k3s_token,
            &k3s,
            "/nonexistent",
        ])
        .stdout,
    ];
    for report in reports {
        let check = "import json, sys, jsonschema; s = json.load(open(sys.argv[1])); \
                     jsonschema.validators.validator_for(s).check_schema(s); \
                     jsonschema.validate(json.load(sys.stdin), s)";
        let mut child = Command::new("python3")
            .args(["-c", check, &schema])
            .stdin(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child.stdin.take().unwrap().write_all(report.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

#[test]
fn sarif_has_a_result_per_readable_object_under_its_risk_rule() {
    let dir = tempfile::tempdir().unwrap();
    let sarif = dir.path().join("exposure.sarif");
    let (config, source) = (fixture("config.yaml"), fixture("datadir"));
    let r = run(&[
        "exposure",
        "-c",
        &config,
        &source,
        "/nonexistent.db",
        "--format",
        "sarif",
        "-o",
        path_str(&sarif),
    ]);
    assert_eq!(r.code, 2, "a source is missing");
    for gh in [false, true] {
        let issues = crate::outputs::validate_sarif(&sarif, gh);
        assert!(issues.is_empty(), "validator (GitHub rules: {gh}): {issues:?}");
    }
    let log: Value = serde_json::from_str(&std::fs::read_to_string(&sarif).unwrap()).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    let (_, doc) = exposure(&[&source], &[]);
    let rows: Vec<&Value> =
        doc["secrets"].as_array().unwrap().iter().chain(doc["others"].as_array().unwrap()).collect();
    assert_eq!(results.len(), rows.len() + 1, "one per row, one for the missing backup");
    for row in rows {
        let key = row["key"].as_str().unwrap();
        let result =
            results.iter().find(|r| r["locations"][0]["logicalLocations"][0]["name"] == key).unwrap();
        assert_eq!(result["ruleId"], format!("exposure-{}", row["risk"].as_str().unwrap()), "{key}");
    }
    assert!(results.iter().any(|r| r["ruleId"] == "backup-unreadable"));
    assert!(!std::fs::read_to_string(&sarif).unwrap().contains("ETCDAUDIT-SECRET-"));
}
