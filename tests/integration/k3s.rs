//! k3s/RKE2 backups carry their own keys: bootstrap data sealed by the server
//! token, written into a real etcd by an independent encoder
//! (testdata/gen/k3s.py). Without the token the Secrets stay unknown-key and
//! the sealed keys are reported; with it every Secret decrypts; a wrong token
//! opens nothing; the empty passphrase needs no token at all. No output ever
//! holds the token, a password, a private key or key material.

use serde_json::Value;

use crate::util::*;

fn expected(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(testdata(&format!("k3s/{name}"))).unwrap()).unwrap()
}

fn snapshot() -> String {
    path_str(&testdata("k3s/etcd-snapshot-server-1-1795900000")).to_string()
}

fn token() -> String {
    path_str(&testdata("k3s/token")).to_string()
}

/// `scan --format json ARGS…`, checked for leaks, with its first backup.
fn scan(args: &[&str]) -> (i32, Value) {
    let mut all = vec!["scan", "--format", "json"];
    all.extend_from_slice(args);
    let r = run(&all);
    assert_no_leak(&r);
    let doc = r.json();
    (r.code, doc)
}

fn assert_no_leak(r: &Run) {
    for secret in expected("expected.json")["never_printed"].as_array().unwrap() {
        let s = secret.as_str().unwrap();
        assert!(!r.stdout.contains(s) && !r.stderr.contains(s), "output holds {s}");
    }
}

fn classes(backup: &Value) -> Vec<(String, String, bool)> {
    backup["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let stale = e["stale"].as_bool().unwrap_or(false);
            (e["key"].as_str().unwrap().into(), e["class"].as_str().unwrap().into(), stale)
        })
        .collect()
}

fn finding<'a>(backup: &'a Value, code: &str) -> Option<&'a Value> {
    backup["findings"].as_array().unwrap().iter().find(|f| f["code"] == code)
}

#[test]
fn without_a_token_the_sealed_keys_are_reported() {
    let exp = expected("expected.json");
    let (code, doc) = scan(&[&snapshot()]);
    assert_eq!(code, 1);
    let b = &doc["backups"][0];
    assert!(classes(b).iter().all(|(_, class, _)| class == "unknown-key"), "{:?}", classes(b));
    assert_eq!(classes(b).len(), exp["secrets"].as_array().unwrap().len());
    let k3s = &b["k3s"];
    assert_eq!(k3s["token_matches"], Value::Null);
    assert_eq!(k3s["bootstrap"].as_array().unwrap().len(), 1, "the lock placeholder is no data: {k3s}");
    let boot = &k3s["bootstrap"][0];
    assert_eq!(boot["etcd_key"], exp["bootstrap_key"]);
    assert_eq!(boot["token_hash"], exp["token_hash"]);
    assert_eq!(boot["unsealed"], false);
    assert!(boot["sealed_bytes"].as_u64().unwrap() > 500);
    assert_eq!(k3s["snapshot"], serde_json::json!({"node": "server-1", "unix_time": 1795900000}));
    let f = finding(b, "bootstrap-keys-in-backup").expect("bootstrap-keys-in-backup");
    assert_eq!(f["severity"], "high");
}

#[test]
fn the_right_token_opens_every_secret() {
    let exp = expected("expected.json");
    for token_args in [vec!["--k3s-token".to_string(), token()]] {
        let mut args: Vec<&str> = token_args.iter().map(String::as_str).collect();
        let snap = snapshot();
        args.push(&snap);
        let (code, doc) = scan(&args);
        let b = &doc["backups"][0];
        assert_eq!(code, 0, "{b}");
        let want: Vec<(String, String, bool)> = exp["secrets"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| (s["key"].as_str().unwrap().into(), "decryptable".into(), s["stale"].as_bool().unwrap()))
            .collect();
        let mut got = classes(b);
        got.sort();
        let mut want = want;
        want.sort();
        assert_eq!(got, want);
        let k3s = &b["k3s"];
        assert_eq!(k3s["token_matches"], true);
        let boot = &k3s["bootstrap"][0];
        assert_eq!(boot["unsealed"], true);
        let names: Vec<&str> =
            boot["contents"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        let want_names: Vec<&str> =
            exp["contents"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
        assert_eq!(names, want_names);
        assert!(boot["contents"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["sha256"].as_str().unwrap().starts_with("sha256:")));
        assert_eq!(boot["encryption_stage"], "reencrypt_finished");
        for key in b["keys"].as_array().unwrap() {
            assert_eq!(key["origin"], "k3s-bootstrap", "{key}");
            let name = key["name"].as_str().unwrap();
            assert_eq!(key["fingerprint"], exp["keys"][name], "{name}");
            assert_eq!(key["write_key"], name == "aescbckey-2026-11-01T00:00:00Z", "{name}");
        }
        assert_eq!(finding(b, "bootstrap-keys-in-backup").unwrap()["severity"], "critical");
        assert_eq!(finding(b, "k3s-server-password-exposed").unwrap()["severity"], "high");
        assert!(finding(b, "k3s-rotation-in-progress").is_none());
    }
    // `keys`: restorable with the token alone.
    let r = run(&["keys", "--k3s-token", &token(), &snapshot()]);
    assert_no_leak(&r);
    assert_eq!(r.code, 0, "{}", r.stdout);
}

#[test]
fn the_token_also_comes_from_stdin_or_the_environment() {
    let env = [("ETCD_AUDIT_K3S_TOKEN", std::fs::read_to_string(testdata("k3s/token")).unwrap())];
    let r = run_env(&["scan", "--format", "json", &snapshot()], &env);
    assert_no_leak(&r);
    assert_eq!(r.json()["backups"][0]["k3s"]["token_matches"], true);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_etcd-audit"))
        .args(["scan", "--format", "json", "--k3s-token", "-", &snapshot()])
        .stdin(std::fs::File::open(testdata("k3s/token")).unwrap())
        .output()
        .unwrap();
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["backups"][0]["k3s"]["token_matches"], true);
    let missing = run(&["scan", "--k3s-token", "/nonexistent/token", &snapshot()]);
    assert_eq!(missing.code, 2);
    assert!(missing.stderr.contains("--k3s-token /nonexistent/token: No such file"), "{}", missing.stderr);
}

#[test]
fn a_wrong_token_opens_nothing_and_says_which_token_is_needed() {
    let exp = expected("expected.json");
    let wrong = path_str(&testdata("k3s/wrong-token")).to_string();
    let (code, doc) = scan(&["--k3s-token", &wrong, &snapshot()]);
    assert_eq!(code, 1);
    let b = &doc["backups"][0];
    assert_eq!(b["k3s"]["token_matches"], false);
    assert!(classes(b).iter().all(|(_, class, _)| class == "unknown-key"));
    let f = finding(b, "k3s-token-mismatch").expect("k3s-token-mismatch");
    assert_eq!(f["severity"], "high");
    let msg = f["message"].as_str().unwrap();
    assert!(msg.contains(exp["token_hash"].as_str().unwrap()), "{msg}");
    let supplied = b["k3s"]["supplied_token_hashes"][0].as_str().unwrap();
    assert!(msg.contains(supplied) && supplied != exp["token_hash"], "{msg}");
    let (code, _) = scan(&["--k3s-token", &wrong, "--fail-on", "k3s-token-mismatch", &snapshot()]);
    assert_eq!(code, 1);
}

#[test]
fn an_empty_passphrase_needs_no_token() {
    let exp = expected("empty-expected.json");
    let path = testdata("k3s/empty/on-demand-server-1-1795900100");
    let (code, doc) = scan(&[path_str(&path)]);
    assert_eq!(code, 1, "bootstrap-unsealed is in the default --fail-on");
    let b = &doc["backups"][0];
    let mut got = classes(b);
    got.sort();
    let mut want: Vec<(String, String, bool)> = exp["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["key"].as_str().unwrap().into(), "decryptable".into(), s["stale"].as_bool().unwrap()))
        .collect();
    want.sort();
    assert_eq!(got, want);
    assert_eq!(b["failed_on"], serde_json::json!(["bootstrap-unsealed"]));
    assert_eq!(finding(b, "bootstrap-unsealed").unwrap()["severity"], "critical");
    assert_eq!(finding(b, "k3s-rotation-in-progress").unwrap()["severity"], "medium");
    assert_eq!(b["k3s"]["bootstrap"][0]["no_token_needed"], true);
    assert_eq!(b["k3s"]["snapshot"]["node"], "server-1");
}

#[test]
fn every_form_and_the_history_of_rotated_tokens() {
    let exp = expected("expected.json");
    // The zipped snapshot and the server's data dir (its WAL holds the bootstrap puts too).
    let zip = path_str(&testdata("k3s/zip/etcd-snapshot-server-1-1795900000.zip")).to_string();
    let datadir = path_str(&testdata("k3s/server")).to_string();
    let (code, doc) = scan(&["--k3s-token", &token(), "--history", &zip, &datadir]);
    assert_eq!(code, 0, "{doc}");
    let backups = doc["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{doc}");
    for b in backups {
        assert!(classes(b).iter().all(|(_, class, _)| class == "decryptable"), "{b}");
        let boot = b["k3s"]["bootstrap"].as_array().unwrap();
        let live: Vec<&Value> = boot.iter().filter(|x| x["found_in"] == "live").collect();
        assert_eq!(live.len(), 1);
        assert_eq!(live[0]["etcd_key"], exp["bootstrap_key"]);
    }
    // The rotated-away token's bootstrap, sealed by a token we do not have: in the snapshot's
    // history, and in the WAL of the data dir (copied after a compaction took it from history).
    for (b, place) in backups.iter().zip(["history", "wal"]) {
        let boot = b["k3s"]["bootstrap"].as_array().unwrap();
        let old: Vec<&Value> = boot.iter().filter(|x| x["etcd_key"] == exp["old_bootstrap_key"]).collect();
        assert!(old.iter().any(|x| x["found_in"] == place && x["unsealed"] == false), "{place}: {boot:?}");
    }
    assert_eq!(backups[0]["k3s"]["snapshot"]["unix_time"], 1795900000);
    // The local `.metadata/` sidecar is attached to its snapshot, not listed as skipped.
    assert_eq!(backups[0]["object"]["sidecar"]["team"], "platform");
    assert_eq!(doc["skipped"], serde_json::json!([]));
    let wal: Vec<&Value> = backups[1]["k3s"]["bootstrap"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["found_in"] == "wal")
        .collect();
    assert!(wal.iter().any(|x| x["etcd_key"] == exp["bootstrap_key"] && x["unsealed"] == true), "{wal:?}");
}

#[test]
fn an_s3_prefix_as_k3s_uploads_it() {
    let exp = expected("expected.json");
    let s3 = SupportServer::start("s3_server.py", &["open"]);
    let env = s3.s3_env("endpoint");
    let r = run_env(&["scan", "--format", "json", "--k3s-token", &token(), "s3://backups/k3s-real/"], &env);
    assert_no_leak(&r);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.json();
    let b = &doc["backups"][0];
    assert!(classes(b).iter().all(|(_, class, _)| class == "decryptable"), "{b}");
    assert_eq!(b["k3s"]["token_matches"], true);
    assert_eq!(b["object"]["sidecar"]["team"], "platform");
    let metadata = b["object"]["user_metadata"].as_object().unwrap();
    assert!(metadata.values().any(|v| v == &exp["token_hash"]), "{metadata:?}");
    assert!(finding(b, "k3s-token-hash-mismatch").is_none());
    // The object's metadata names another token than the backup's own bootstrap key.
    let r = run_env(&["scan", "--format", "json", "s3://backups/k3s-wrong-hash/"], &env);
    assert_no_leak(&r);
    let doc = r.json();
    let f = finding(&doc["backups"][0], "k3s-token-hash-mismatch").expect("k3s-token-hash-mismatch");
    assert_eq!(f["severity"], "medium");
    assert!(f["message"].as_str().unwrap().contains("000000000000"), "{f}");
}

#[test]
fn a_rotated_tokens_bootstrap_is_found_in_free_pages_after_compaction() {
    let exp = expected("expected.json");
    let compacted = path_str(&testdata("k3s/compacted/etcd-snapshot-server-1-1795900200")).to_string();
    let (_, doc) = scan(&["--k3s-token", &token(), "--history", &compacted]);
    let boot = doc["backups"][0]["k3s"]["bootstrap"].as_array().unwrap().clone();
    assert!(
        boot.iter().all(|b| b["etcd_key"] != exp["old_bootstrap_key"]),
        "compaction took it out of history"
    );
    let (code, doc) = scan(&["--k3s-token", &token(), "--residue", &compacted]);
    assert_eq!(code, 0);
    let boot = doc["backups"][0]["k3s"]["bootstrap"].as_array().unwrap();
    let old: Vec<&Value> = boot.iter().filter(|b| b["etcd_key"] == exp["old_bootstrap_key"]).collect();
    assert_eq!(old.len(), 1, "{boot:?}");
    assert_eq!((old[0]["found_in"].as_str(), old[0]["unsealed"].as_bool()), (Some("residue"), Some(false)));
    assert_eq!(finding(&doc["backups"][0], "bootstrap-keys-in-backup").unwrap()["count"], 2);
}

/// A sidecar is a few hundred bytes: one over 1 MiB is not read.
#[test]
fn an_oversized_sidecar_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let name = "etcd-snapshot-server-1-1795900000";
    std::fs::copy(testdata(&format!("k3s/{name}")), dir.path().join(name)).unwrap();
    std::fs::create_dir(dir.path().join(".metadata")).unwrap();
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(2 << 20));
    std::fs::write(dir.path().join(".metadata").join(name), big).unwrap();
    let r = run(&["scan", "--format", "json", path_str(&dir.path().join(name))]);
    assert!(r.json()["backups"][0].get("object").is_none(), "{}", r.stdout.len());
    std::fs::write(dir.path().join(".metadata").join(name), r#"{"team":"platform"}"#).unwrap();
    let r = run(&["scan", "--format", "json", path_str(&dir.path().join(name))]);
    assert_eq!(r.json()["backups"][0]["object"]["sidecar"]["team"], "platform");
}
