//! Object storage sources against a real S3-compatible server (moto) on
//! 127.0.0.1, started by this test: single object, prefix listing with the
//! k3s sidecar and user metadata, a >100 MB object downloaded through a proxy
//! that drops the connection, missing keys and buckets, wrong credentials.

use crate::util::*;
use serde_json::Value;

fn start_s3(mode: &str) -> SupportServer {
    SupportServer::start("s3_server.py", &[mode])
}

/// The paths the dropping proxy of `s3_server.py` has cut so far.
fn dropped(s3: &SupportServer) -> Vec<String> {
    get_json(&format!("{}/__dropped", s3.info["proxy"].as_str().unwrap()))
}

fn scan(env: &[(&str, String)], args: &[&str]) -> Run {
    let cfg = testdata("scan/config-current.yaml");
    let mut all = vec!["scan", "--format", "json", "-c", path_str(&cfg)];
    all.extend_from_slice(args);
    run_env(&all, env)
}

/// The `k3s/` prefix every object-storage fixture server holds: two backups
/// (the zip with its user metadata and sidecar), the README skipped, the
/// sidecar not audited itself.
pub fn assert_k3s_prefix(doc: &Value, scheme: &str, local_summary: &Value) {
    let sources: Vec<&str> =
        doc["backups"].as_array().unwrap().iter().map(|b| b["source"].as_str().unwrap()).collect();
    let url = |key: &str| format!("{scheme}://backups/k3s/{key}");
    assert_eq!(sources, [url("etcd-snapshot-node-1-1795800000.zip"), url("etcd-snapshot-node-2-1795800100")]);
    let zip = &doc["backups"][0];
    assert_eq!(zip["container"], serde_json::json!(["zip", "etcd-snapshot"]));
    assert_eq!(zip["object"]["user_metadata"]["k3s-node-name"], "node-1");
    assert_eq!(zip["object"]["sidecar"]["team"], "platform");
    assert_eq!(&zip["summary"], local_summary);
    assert_eq!(doc["skipped"][0]["path"], url("README.txt"));
}

#[test]
fn object_storage_sources() {
    let s3 = start_s3("open");
    let env = s3.s3_env("endpoint");
    let local = scan(&[], &[path_str(&testdata("etcd35-scan.snapshot.db"))]).json();
    let local_summary = &local["backups"][0]["summary"];

    // A single object: the same verdicts as the local file.
    let r = scan(&env, &["s3://backups/single/etcd35-scan.snapshot.db"]);
    let b = &r.json()["backups"][0];
    assert_eq!(b["error"], Value::Null, "{}", r.stderr);
    assert_eq!(&b["summary"], local_summary);
    assert_eq!(b["object"]["size"], 49184);
    assert!(b["object"]["e_tag"].is_string());

    // A prefix: every object below, one backup each, the k3s sidecar and user
    // metadata attached, the README skipped, the sidecar not audited itself.
    assert_k3s_prefix(&scan(&env, &["s3://backups/k3s/"]).json(), "s3", local_summary);

    // Missing key and missing bucket: exit 2 with the URL and the server's reason.
    let r = scan(&env, &["s3://backups/nope.db"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("s3://backups/nope.db") && r.stderr.contains("no such object"), "{}", r.stderr);
    let r = scan(&env, &["s3://no-such-bucket/x.db"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("NoSuchBucket"), "{}", r.stderr);

    // Several sources in one run, in the order given, the highest code wins.
    let r = scan(&env, &["s3://backups/single/etcd35-scan.snapshot.db", "s3://backups/nope.db"]);
    assert_eq!(r.code, 2);
    assert_eq!(r.json()["backups"].as_array().unwrap().len(), 2);
}

#[test]
fn large_object_survives_a_dropped_connection() {
    let s3 = start_s3("open");
    let proxied = s3.s3_env("proxy");
    let r = scan(&proxied, &["s3://backups/big/member-db"]);
    let b = &r.json()["backups"][0];
    assert_eq!(b["error"], Value::Null, "{}", r.stderr);
    assert!(b["object"]["size"].as_u64().unwrap() > 100 << 20);
    assert_eq!(b["container"], serde_json::json!(["bbolt"]));
    assert_eq!(b["summary"]["plaintext"], 5);
    assert_eq!(dropped(&s3), ["/backups/big/member-db"], "the proxy cut the first download");
    // Parts of 32 MiB, fetched as ranged GETs; the cut part resumed where it broke off.
    let ranges: Vec<(String, Option<String>)> =
        serde_json::from_value(get_json(&format!("{}/__ranges", s3.info["proxy"].as_str().unwrap())))
            .unwrap();
    let parts: Vec<&str> = ranges
        .iter()
        .filter(|(p, _)| p == "/backups/big/member-db")
        .filter_map(|(_, r)| r.as_deref())
        .collect();
    let size = b["object"]["size"].as_u64().unwrap();
    for part in 0..size.div_ceil(32 << 20) {
        let (start, end) = (part * (32 << 20), ((part + 1) * (32 << 20)).min(size) - 1);
        assert!(parts.contains(&format!("bytes={start}-{end}").as_str()), "{parts:?}");
    }
    assert!(parts.iter().any(|r| r.starts_with("bytes=10485760-")), "resumed at 10 MiB: {parts:?}");

    // A server that always drops: retries, then a clear error, exit 2.
    let r = scan(&proxied, &["s3://backups/flaky/always-drop.db"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("always-drop.db") && r.stderr.contains("download failed"), "{}", r.stderr);
}

/// An object uploaded long after its Leases were renewed: its Last-Modified
/// disagrees with `taken_at` (`taken-at-disagrees`, low).
#[test]
fn last_modified_is_checked_against_taken_at() {
    let s3 = start_s3("open");
    let r = scan(&s3.s3_env("endpoint"), &["s3://backups/late/alpha.db", "--fail-on", "taken-at-disagrees"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let b = &r.json()["backups"][0];
    assert_eq!(b["taken_at"]["estimate"], "2026-09-21T14:13:20Z");
    let f = b["findings"].as_array().unwrap().iter().find(|f| f["code"] == "taken-at-disagrees").unwrap();
    assert!(f["message"].as_str().unwrap().contains("Last-Modified"), "{f}");
}

#[test]
fn wrong_credentials_are_refused_clearly() {
    let s3 = start_s3("auth");
    let mut env = s3.s3_env("endpoint");
    let ok = scan(&env, &["s3://backups/single/etcd35-scan.snapshot.db"]);
    assert_eq!(ok.json()["backups"][0]["error"], Value::Null, "{}", ok.stderr);
    env[1].1 = "AKIAWRONGWRONGWRONG0".into();
    let r = scan(&env, &["s3://backups/single/etcd35-scan.snapshot.db"]);
    assert_eq!(r.code, 2);
    // moto answers HEAD with a bare 403 (no body to carry InvalidAccessKeyId).
    assert!(r.stderr.contains("403 Forbidden") && r.stderr.contains("privileges"), "{}", r.stderr);
}

/// The same source code path for `az://`, against a real Azure Blob Storage
/// emulator (Azurite) on 127.0.0.1.
#[test]
fn azure_blob_storage_through_azurite() {
    let azurite = SupportServer::start("azure_server.py", &[]);
    let info = &azurite.info;
    let env = vec![
        ("AZURE_STORAGE_USE_EMULATOR", "true".to_string()),
        ("AZURITE_BLOB_STORAGE_URL", info["url"].as_str().unwrap().to_string()),
    ];
    let local = scan(&[], &[path_str(&testdata("etcd35-scan.snapshot.db"))]).json();
    let doc = scan(&env, &["az://backups/etcd/"]).json();
    let backups = doc["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 2, "{doc}");
    for b in backups {
        assert_eq!(b["error"], Value::Null, "{b}");
        assert_eq!(b["summary"], local["backups"][0]["summary"]);
    }
    assert_eq!(backups[0]["container"], serde_json::json!(["zip", "etcd-snapshot"]));
    assert_eq!(backups[0]["object"]["user_metadata"]["k3s_node_name"], "node-1");
    crate::shard::assert_shards_record_once_in_postgres("az://backups/etcd/", &env, 2);
    let missing = scan(&env, &["az://backups/nope.db"]);
    assert_eq!(missing.code, 2);
}
