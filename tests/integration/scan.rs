//! `scan`, `keys` and `configs` against the verdict scenario written to a
//! real etcd 3.5 by testdata/gen (values encoded and encrypted exactly as
//! kube-apiserver stores them, by an independent Python encoder).

use std::collections::BTreeMap;

use crate::util::*;
use serde_json::{json, Value};

fn expected(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(testdata(name)).unwrap()).unwrap()
}

fn cfg(name: &str) -> String {
    path_str(&testdata(&format!("scan/{name}"))).to_string()
}

fn scan(db: &str, extra: &[&str]) -> Run {
    let db = testdata(db);
    let (cur, old) = (cfg("config-current.yaml"), cfg("config-old.yaml"));
    let mut args = vec!["scan", path_str(&db), "-c", &cur, "-c", &old];
    args.extend_from_slice(extra);
    run(&args)
}

fn by_key(entries: &Value) -> BTreeMap<String, Value> {
    entries.as_array().unwrap().iter().map(|e| (e["key"].as_str().unwrap().to_string(), e.clone())).collect()
}

#[test]
fn every_verdict_matches_what_was_written() {
    let exp = expected("etcd35-scan.expected.json");
    let r = scan("etcd35-scan.snapshot.db", &["--format", "json"]);
    assert_eq!(r.code, 1, "plaintext and unknown keys fail the default policy");
    let doc = r.json();
    assert_eq!(doc["schema"], "etcd-audit.scan/v1");
    let b = &doc["backups"][0];
    assert_eq!(b["error"], Value::Null);
    let got = by_key(&b["entries"]);
    let want = exp["entries"].as_array().unwrap();
    assert_eq!(got.len(), want.len(), "one entry per live in-scope key");
    for e in want {
        let g = &got[e["key"].as_str().unwrap()];
        for field in [
            "class",
            "provider",
            "key_name",
            "stale",
            "encoding",
            "mod_revision",
            "resource",
            "namespace",
            "name",
        ] {
            assert_eq!(g[field], e[field], "{} {field}: {}", e["key"], g["detail"]);
        }
    }
    assert_eq!(b["summary"], exp["summary"]["entries"]);
    assert_eq!(b["etcd"]["revision"], exp["revision"]);
    assert_eq!(b["etcd"]["etcd_prefix"], "/registry");
    assert_eq!(b["history"], Value::Null, "history only with --history");
    assert_eq!(b["integrity"]["ok"], true);
}

#[test]
fn undecryptable_values_say_why() {
    let r = scan("etcd35-scan.snapshot.db", &["--format", "json"]);
    let got = by_key(&r.json()["backups"][0]["entries"]);
    let padok = &got["/registry/secrets/undecrypt/cbc-wrongkey-padok"];
    assert_eq!(padok["class"], "undecryptable");
    assert!(padok["detail"].as_str().unwrap().contains("not a Kubernetes object"), "{padok}");
    let copied: Vec<&Value> =
        got.values().filter(|e| e["detail"].as_str().is_some_and(|d| d.contains("copied"))).collect();
    assert!(!copied.is_empty(), "a value copied from another key is caught by the name check");
}

#[test]
fn history_holds_the_plaintext_left_behind() {
    let r = scan("etcd35-scan.snapshot.db", &["--format", "json", "--history"]);
    let b = &r.json()["backups"][0];
    let rows: Vec<(String, i64, Value, bool)> = b["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["key"].as_str().unwrap().into(),
                h["mod_revision"].as_i64().unwrap(),
                h["class"].clone(),
                h["deleted"].as_bool().unwrap(),
            )
        })
        .collect();
    // `deleted` marks every revision of a key whose newest revision is a tombstone (DESIGN.md).
    assert_eq!(
        rows,
        [
            ("/registry/secrets/hist/deleted".into(), 51, json!("plaintext"), true),
            ("/registry/secrets/hist/deleted".into(), 52, Value::Null, true),
            ("/registry/secrets/hist/rotated".into(), 49, json!("plaintext"), false),
        ]
    );
    assert_eq!(b["forensics"]["history"]["plaintext"], 2);
    assert_findings(b, &["history-plaintext", "deleted-plaintext-in-history"]);
}

#[test]
fn key_pairing_lists_every_needed_key() {
    let r = scan("etcd35-scan.snapshot.db", &["--format", "json"]);
    let b = &r.json()["backups"][0];
    let keys: BTreeMap<String, &Value> = b["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (format!("{}:{}", k["provider"].as_str().unwrap(), k["name"].as_str().unwrap()), k))
        .collect();
    assert_eq!(keys["aescbc:key-new"]["write_key"], true);
    assert_eq!(keys["aescbc:key-new"]["available"], true);
    assert!(keys["aescbc:key-new"]["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    assert_eq!(keys["aescbc:key:with:colons"]["available"], true);
    assert_eq!(keys["aescbc:key:with:colons"]["write_key"], false);
    assert_eq!(keys["aescbc:key-old"]["available"], true);
    assert_eq!(keys["aescbc:key-gone"]["available"], false);
    assert_eq!(keys["aescbc:key-gone"]["fingerprint"], Value::Null);
    assert_eq!(keys["aesgcm:cm-gcm"]["write_key"], true);
    assert_eq!(keys["kms:vault"]["kms_api"], "v2");
    assert_eq!(keys["kms:vault"]["key_id"], "kek-1");
    // 16-byte key fingerprint = sha256 of its material, as the manifest's key shows.
    let material = base64_decode(expected("etcd35-scan.expected.json")["keys"][1]["b64"].as_str().unwrap());
    use sha2::Digest;
    let fp = format!("sha256:{}", &hex::encode(sha2::Sha256::digest(&material))[..16]);
    assert_eq!(keys["aescbc:key:with:colons"]["fingerprint"], fp.as_str());
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

#[test]
fn stale_and_provider_list_findings() {
    let r = scan("etcd35-scan.snapshot.db", &["--format", "json"]);
    let b = &r.json()["backups"][0];
    let findings: BTreeMap<&str, &Value> =
        b["findings"].as_array().unwrap().iter().map(|f| (f["code"].as_str().unwrap(), f)).collect();
    assert_eq!(findings["stale"]["count"], 10);
    assert_eq!(findings["plaintext-secret"]["count"], 4);
    assert_eq!(findings["plaintext-value"]["count"], 1);
    assert_eq!(findings["unknown-key"]["count"], 9);
    // Only key-old (held by the second config alone) is outside the first config's list.
    let old_key_entries: Vec<Value> = expected("etcd35-scan.expected.json")["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["key_name"] == "key-old")
        .map(|e| e["key"].clone())
        .collect();
    assert_eq!(findings["key-not-in-provider-list"]["examples"], Value::Array(old_key_entries));
    assert_eq!(findings["configs-disagree"]["severity"], "medium");
    assert_eq!(b["findings"][0]["severity"], "high", "worst first");
}

#[test]
fn fail_on_selects_the_exit_code() {
    assert_eq!(scan("etcd35-scan.snapshot.db", &["--fail-on", "integrity"]).code, 0);
    assert_eq!(scan("etcd35-scan.snapshot.db", &["--fail-on", "stale"]).code, 1);
    assert_eq!(
        scan("etcd35-scan.snapshot.db", &["--fail-on", "history-plaintext"]).code,
        0,
        "history not asked"
    );
    assert_eq!(scan("etcd35-scan.snapshot.db", &["--fail-on", "history-plaintext", "--history"]).code, 1);
    let r = scan("etcd35-scan.snapshot.db", &["--fail-on", "bogus"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("bogus"));
}

#[test]
fn table_ends_with_a_one_line_verdict() {
    let r = scan("etcd35-scan.snapshot.db", &[]);
    assert_eq!(r.code, 1);
    let last = r.stdout.lines().last().unwrap();
    assert!(last.starts_with("verdict") && last.contains("FAIL on") && last.contains("plaintext"), "{last}");
    assert!(r.stdout.contains("keys needed") && r.stdout.contains("key-gone"));
}

#[test]
fn no_output_ever_contains_a_secret_value_or_key_material() {
    let exp = expected("etcd35-scan.expected.json");
    let mut needles: Vec<String> = Vec::new();
    for list in ["markers", "markers_b64", "key_materials_b64"] {
        needles.extend(exp[list].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()));
    }
    for k in exp["key_materials_b64"].as_array().unwrap() {
        needles.push(hex::encode(base64_decode(k.as_str().unwrap())));
    }
    assert!(needles.len() > 40);
    let db = path_str(&testdata("etcd35-scan.snapshot.db")).to_string();
    let (cur, old, kms, legacy) = (
        cfg("config-current.yaml"),
        cfg("config-old.yaml"),
        cfg("config-kms.yaml"),
        cfg("config-legacy.json"),
    );
    let runs = [
        run(&["scan", &db, "-c", &cur, "-c", &old, "--history", "--resources", "*.*"]),
        run(&[
            "scan",
            &db,
            "-c",
            &cur,
            "-c",
            &old,
            "-c",
            &legacy,
            "--history",
            "--format",
            "json",
            "--resources",
            "*.*",
        ]),
        run(&["keys", &db, "-c", &cur, "-c", &kms]),
        run(&["keys", &db, "-c", &old, "--format", "json"]),
        run(&["configs", &cur, &old, &legacy]),
        run(&["configs", &cur, &old, "--format", "json"]),
        run(&["inspect", &db, "--format", "json"]),
    ];
    for r in &runs {
        for n in &needles {
            assert!(!r.stdout.contains(n.as_str()) && !r.stderr.contains(n.as_str()), "leaked {n}");
        }
    }
    assert!(runs[1].stdout.contains("\"data_keys\""), "data key names are shown, their values are not");
}

#[test]
fn keys_command_answers_the_restore_question() {
    let db = path_str(&testdata("etcd35-scan.snapshot.db")).to_string();
    let r = run(&[
        "keys",
        &db,
        "-c",
        &cfg("config-current.yaml"),
        "-c",
        &cfg("config-old.yaml"),
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 1);
    let doc = r.json();
    assert_eq!(doc["schema"], "etcd-audit.keys/v1");
    let p = &doc["backups"][0];
    assert_eq!(p["restorable"], false);
    let missing: Vec<&str> = p["missing"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    assert!(missing.contains(&"aescbc:key-gone"), "{missing:?}");
    assert!(!missing.iter().any(|m| m.contains("key-old")), "config-old holds key-old");
    // Without the old node's config, key-old is missing too.
    let r = run(&["keys", &db, "-c", &cfg("config-current.yaml"), "--format", "json"]);
    assert!(r.json()["backups"][0]["missing"].to_string().contains("aescbc:key-old"));
    // OpenShift prefix, all values decryptable with the current config: restorable.
    let os = path_str(&testdata("etcd35-openshift.snapshot.db")).to_string();
    let r = run(&["keys", &os, "-c", &cfg("config-current.yaml")]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    assert!(r.stdout.contains("RESTORABLE"));
}

#[test]
fn openshift_prefix_is_detected() {
    let exp = expected("etcd35-openshift.expected.json");
    let r = scan("etcd35-openshift.snapshot.db", &["--format", "json"]);
    let b = &r.json()["backups"][0];
    assert_eq!(b["etcd"]["etcd_prefix"], "/kubernetes.io");
    assert_eq!(b["summary"]["plaintext"], exp["summary"]["entries"]["plaintext"]);
    assert_eq!(b["summary"]["decryptable"], exp["summary"]["entries"]["decryptable"]);
    let got = by_key(&b["entries"]);
    for e in exp["entries"].as_array().unwrap() {
        let g = &got[e["key"].as_str().unwrap()];
        assert_eq!(g["class"], e["class"], "{}", e["key"]);
        assert_eq!(g["stale"], e["stale"], "{}", e["key"]);
    }
    // Forcing the wrong prefix finds nothing in scope.
    let r = scan("etcd35-openshift.snapshot.db", &["--format", "json", "--etcd-prefix", "/registry"]);
    assert_eq!(r.json()["backups"][0]["entries"], json!([]));
}

#[test]
fn wildcard_scope_on_a_plaintext_cluster() {
    let exp = expected("etcd35-basic.expected.json");
    // `*.*` is every object key: not the allocator ranges or master leases (DESIGN.md).
    let not_objects = ["/registry/ranges/", "/registry/masterleases/"];
    let objects = exp["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["encoding"].is_string()
                && !not_objects.iter().any(|p| e["key"].as_str().unwrap().starts_with(p))
        })
        .count();
    let db = path_str(&testdata("etcd35-basic.snapshot.db")).to_string();
    let r = run(&["scan", &db, "--resources", "*.*", "--format", "json"]);
    let b = &r.json()["backups"][0];
    assert_eq!(b["summary"]["plaintext"].as_u64().unwrap() as usize, objects);
    assert_eq!(b["etcd"]["compact_revision"], exp["compact_revision"]);
    let secrets = run(&["scan", &db, "--format", "json"]);
    let only_secrets = secrets.json()["backups"][0]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["resource"] == "secrets");
    assert!(only_secrets);
}

#[test]
fn configs_command_finds_read_breaking_differences() {
    let r = run(&["configs", &cfg("config-current.yaml"), &cfg("config-old.yaml"), "--format", "json"]);
    assert_eq!(r.code, 1);
    let doc = r.json();
    assert_eq!(doc["schema"], "etcd-audit.configs/v1");
    let diffs = doc["differences"].as_array().unwrap();
    assert!(
        diffs.iter().any(|d| d["breaks_reads"] == true && d["message"].as_str().unwrap().contains("key-old")),
        "{diffs:?}"
    );
    let same = run(&["configs", &cfg("config-current.yaml"), &cfg("config-current.yaml")]);
    assert_eq!(same.code, 0, "{}", same.stdout);
}

#[test]
fn invalid_configs_exit_2_with_the_apiserver_message() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources:\n- resources: [secrets]\n  providers:\n  - secretbox:\n      keys:\n      - name: k\n        secret: c2VjcmV0IGlzIHNlY3VyZQ==\n",
    )
    .unwrap();
    let db = path_str(&testdata("etcd35-scan.snapshot.db")).to_string();
    let r = run(&["scan", &db, "-c", path_str(&bad)]);
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("secret is not of the expected length, got 16, expected one of [32]"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("c2VjcmV0"), "never echo the secret");
    let legacy = run(&["configs", &cfg("config-legacy.json")]);
    assert_eq!(legacy.code, 0, "the legacy v1 EncryptionConfig header in JSON parses: {}", legacy.stderr);
}

/// Which cluster a backup is: the kube-system Namespace's UID (computed here
/// the way the generator made it) and etcd's member list.
#[test]
fn the_cluster_is_named_by_its_kube_system_uid() {
    let out = std::process::Command::new("python3")
        .args(["-c", "import uuid; print(uuid.uuid5(uuid.NAMESPACE_URL, 'etcd-audit/None/kube-system'))"])
        .output()
        .unwrap();
    let uid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    for db in ["etcd35-basic.snapshot.db", "etcd34-basic.snapshot.db"] {
        let r = run(&["scan", "--format", "json", path_str(&testdata(db))]);
        let cluster = &r.json()["backups"][0]["cluster"];
        assert_eq!(cluster["uid"], uid.as_str(), "{db}");
        assert_eq!(cluster["kubernetes_version"], Value::Null, "no kubeadm-config, no Node: no guess");
        let members = cluster["etcd_members"].as_array().unwrap();
        assert_eq!(members.len(), 1, "{db}");
        assert!(members[0]["id"].as_str().unwrap().chars().all(|c| c.is_ascii_hexdigit()));
        assert!(members[0]["peer_urls"][0].as_str().unwrap().starts_with("http://127.0.0.1:"));
    }
}

/// When a backup was taken: the newest Lease renewal in it, checked against
/// the independent Python reader of testdata/gen decoding the same Leases.
#[test]
fn taken_at_is_the_newest_lease_renewal() {
    let db = testdata("etcd35-forensics.snapshot.db");
    let script = r#"
import datetime, sys
sys.path.insert(0, sys.argv[1])
from boltread import Bolt, kv_decode
from k8senc import pb_parse
field = lambda b, n: dict((k, v) for k, _, v in pb_parse(b))[n]
newest = 0
for _, v in Bolt(sys.argv[2]).buckets[b"key"]:
    kv = kv_decode(v)
    if kv.get("key", b"").startswith(b"/registry/leases/kube-node-lease/"):
        renew = field(field(field(field(kv["value"][4:], 2), 2), 4), 1)
        newest = max(newest, renew)
print(datetime.datetime.fromtimestamp(newest, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, path_str(&testdata("gen")), path_str(&db)])
        .output()
        .unwrap();
    let want = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(want.starts_with("20"), "{want} {}", String::from_utf8_lossy(&out.stderr));
    let r = run(&["scan", "--format", "json", path_str(&db)]);
    let taken = &r.json()["backups"][0]["taken_at"];
    assert_eq!(taken["estimate"], want.as_str());
    assert_eq!(
        (taken["source"].as_str(), taken["uncertainty_seconds"].as_u64()),
        (Some("lease-renew-time"), Some(10))
    );
    // A backup without Leases does not guess.
    let r = run(&["scan", "--format", "json", path_str(&testdata("etcd35-scan.snapshot.db"))]);
    assert_eq!(r.json()["backups"][0]["taken_at"], Value::Null);
}

/// `--max-age` against `taken_at`, with a fixed `--now`; `--fail-on age`.
#[test]
fn backups_older_than_max_age_are_named() {
    let db = testdata("etcd35-forensics.snapshot.db"); // taken 2023-11-14T22:15:00Z (newest Lease)
    let scan = |now: &str, extra: &[&str]| {
        let mut args = vec!["scan", "--format", "json", "--max-age", "1h", "--now", now];
        args.extend_from_slice(extra);
        args.push(path_str(&db));
        run(&args)
    };
    let old = scan("2023-11-14T23:15:01Z", &["--fail-on", "age"]);
    assert_eq!(old.code, 1);
    let doc = old.json();
    let b = &doc["backups"][0];
    assert_eq!(b["failed_on"], json!(["backup-too-old"]));
    let f = b["findings"].as_array().unwrap().iter().find(|f| f["code"] == "backup-too-old").unwrap();
    assert_eq!(f["severity"], "medium");
    assert!(f["message"].as_str().unwrap().contains("2023-11-14T22:15:00Z"), "{f}");
    let fresh = scan("2023-11-14T23:14:59Z", &["--fail-on", "age"]);
    assert_eq!(fresh.code, 0);
    assert!(!finding_codes(&fresh.json()["backups"][0]).contains(&"backup-too-old".to_string()));
    let bad = run(&["scan", "--now", "yesterday", path_str(&db)]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("expected an RFC 3339 time"), "{}", bad.stderr);
}

/// A data dir names its etcd cluster: the ID in its WAL's Metadata record,
/// as the independent Python WAL reader of testdata/gen decodes it.
#[test]
fn a_data_dir_names_its_etcd_cluster() {
    let dir = testdata("etcd35-forensics-datadir");
    let script = r#"
import glob, sys
sys.path.insert(0, sys.argv[1])
from walread import read_records, fields
for p in sorted(glob.glob(sys.argv[2] + "/member/wal/*.wal")):
    for _, t, _, d in read_records(open(p, "rb").read())[0]:
        if t == 1:
            print("%x" % fields(d).get(2, 0))
            sys.exit(0)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, path_str(&testdata("gen")), path_str(&dir)])
        .output()
        .unwrap();
    let want = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(!want.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = run(&["scan", "--format", "json", path_str(&dir)]);
    assert_eq!(r.json()["backups"][0]["cluster"]["etcd_cluster_id"], want.as_str());
    // A snapshot has no WAL: no cluster ID, not a guess.
    let r = run(&["scan", "--format", "json", path_str(&testdata("etcd35-forensics.snapshot.db"))]);
    assert_eq!(r.json()["backups"][0]["cluster"]["etcd_cluster_id"], Value::Null);
}

/// What a terminal's progress bar counts: the key bucket's leaf pages, then
/// every in-scope key (48 in this fixture), then, with `--history`, those
/// keys' older revisions; each stage ends at its total.
#[test]
fn the_meter_counts_keys() {
    use etcd_audit::audit::{self, Backup, Input, Judge, ScanOptions, Scope};
    use etcd_audit::progress::Meter;
    let bytes = std::fs::read(testdata("etcd35-scan.snapshot.db")).unwrap();
    let configs =
        vec![etcd_audit::encryption::EncryptionConfig::load(&testdata("scan/config-current.yaml")).unwrap()];
    let scope = Scope::new([], &configs);
    let judge = Judge::new(configs, vec![]);
    let backup = Backup::open(&bytes).unwrap();
    for (history, counted) in [(false, "keys"), (true, "keys' history")] {
        let meter = Meter::default();
        let opts = ScanOptions { history, meter: meter.clone(), ..ScanOptions::default() };
        let report =
            audit::scan(Input::Bolt { backup: &backup, wal: None }, vec![], &judge, &scope, &opts).unwrap();
        let (units, at, of) = meter.counted();
        assert_eq!((units.as_str(), Some(at)), (counted, of), "a stage ends at its total");
        if !history {
            assert_eq!(at, 48);
            assert_eq!(report.entries.count(), 48, "every in-scope key has its entry here");
        }
    }
}
