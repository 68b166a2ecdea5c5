//! Key hygiene on a real etcd snapshot written by an independent encoder
//! (testdata/gen/hygiene.py): a docs key, a passphrase used as a key, two
//! AES-GCM values sharing a nonce, the docs' secretbox key; and the config
//! lint of `configs`. Good random keys raise nothing; no key byte is printed.

use serde_json::Value;

use crate::util::*;

fn hygiene(name: &str) -> String {
    path_str(&testdata(&format!("hygiene/{name}"))).to_string()
}

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(hygiene("expected.json")).unwrap()).unwrap()
}

fn assert_no_key_bytes(r: &Run) {
    for secret in expected()["never_printed"].as_array().unwrap() {
        let s = secret.as_str().unwrap();
        assert!(!r.stdout.contains(s) && !r.stderr.contains(s), "output holds {s}");
    }
}

fn finding<'a>(backup: &'a Value, code: &str) -> Option<&'a Value> {
    backup["findings"].as_array().unwrap().iter().find(|f| f["code"] == code)
}

#[test]
fn published_weak_and_nonce_reusing_keys_are_named() {
    let exp = expected();
    let r = run(&[
        "scan",
        "--format",
        "json",
        "-c",
        &hygiene("config-hygiene.yaml"),
        &hygiene("hygiene.snapshot.db"),
    ]);
    assert_no_key_bytes(&r);
    assert_eq!(r.code, 1, "a backup encrypted with a docs key fails the default policy");
    let doc = r.json();
    let b = &doc["backups"][0];
    assert!(
        b["entries"].as_array().unwrap().iter().all(|e| e["class"] == "decryptable"),
        "classes never change"
    );
    assert_eq!(b["failed_on"], serde_json::json!(["public-key", "gcm-nonce-reuse"]));

    let public = finding(b, "public-key").unwrap();
    assert_eq!((public["severity"].as_str(), public["count"].as_u64()), (Some("critical"), Some(2)));
    for key in exp["public"].as_array().unwrap() {
        assert!(public["examples"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with(key.as_str().unwrap())));
    }
    assert!(public["remediation"].is_string() && public["references"][0]["url"].is_string());

    // The docs' secretbox key is printable too: public-key suppresses weak-key for it.
    let weak = finding(b, "weak-key").unwrap();
    assert_eq!((weak["severity"].as_str(), weak["count"].as_u64()), (Some("high"), Some(1)));
    assert!(weak["examples"][0].as_str().unwrap().starts_with("aescbc:passphrase-key"), "{weak}");

    let reuse = finding(b, "gcm-nonce-reuse").unwrap();
    assert_eq!((reuse["severity"].as_str(), reuse["count"].as_u64()), (Some("critical"), Some(1)));
    let keys: Vec<String> = reuse["details"][0]["etcd_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().split('@').next().unwrap().to_string())
        .collect();
    assert_eq!(serde_json::json!(keys), exp["nonce_reuse"]);
    assert!(reuse["details"][0]["nonce"].as_str().unwrap().starts_with("sha256:"));
    assert!(finding(b, "non-cis-provider").is_some() && finding(b, "aescbc-in-use").is_some());
    assert!(finding(b, "gcm-write-budget").is_none());
}

#[test]
fn good_random_keys_raise_no_hygiene_finding() {
    let (cur, old) = (testdata("scan/config-current.yaml"), testdata("scan/config-old.yaml"));
    let r = run(&[
        "scan",
        "--format",
        "json",
        "-c",
        path_str(&cur),
        "-c",
        path_str(&old),
        path_str(&testdata("etcd35-scan.snapshot.db")),
    ]);
    let doc = r.json();
    let codes = finding_codes(&doc["backups"][0]);
    for code in ["public-key", "weak-key", "key-reused", "gcm-nonce-reuse"] {
        assert!(!codes.iter().any(|c| c == code), "{code} on the scan fixture's random keys: {codes:?}");
    }
}

#[test]
fn known_keys_extend_the_published_list() {
    let exp = expected();
    let dir = tempfile::tempdir().unwrap();
    let known = dir.path().join("known");
    std::fs::write(
        &known,
        format!("# leaked in a ticket\nsha256:{}\n", exp["good_key_sha256"].as_str().unwrap()),
    )
    .unwrap();
    let r = run(&[
        "scan",
        "--format",
        "json",
        "--known-keys",
        path_str(&known),
        "-c",
        &hygiene("config-hygiene.yaml"),
        &hygiene("hygiene.snapshot.db"),
    ]);
    assert_no_key_bytes(&r);
    assert_eq!(finding(&r.json()["backups"][0], "public-key").unwrap()["count"], 3);
    std::fs::write(&known, "not base64!\n").unwrap();
    let bad = run(&["scan", "--known-keys", path_str(&known), &hygiene("hygiene.snapshot.db")]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("line 1: expected a base64 key or sha256:"), "{}", bad.stderr);
}

#[test]
fn configs_lint_and_exit_codes() {
    for (config, code, severity, exit) in [
        ("config-identity-first.yaml", "identity-first", "high", 1),
        ("config-kms-v1.yaml", "kms-v1", "medium", 0),
        ("config-key-reused.yaml", "key-reused", "high", 1),
        ("config-uncovered.yaml", "secret-not-covered", "high", 1),
        ("config-hygiene.yaml", "public-key", "critical", 1),
    ] {
        let r = run(&["configs", "--format", "json", &hygiene(config)]);
        assert_no_key_bytes(&r);
        assert_eq!(r.code, exit, "{config}: {}", r.stdout);
        let doc = r.json();
        let f = doc["findings"].as_array().unwrap().iter().find(|f| f["code"] == code);
        let f = f.unwrap_or_else(|| panic!("{config}: no {code} in {doc}"));
        assert_eq!(f["severity"], severity, "{config}");
        assert!(f["remediation"].is_string() && !f["references"].as_array().unwrap().is_empty());
    }
    // The same lint reaches every scanned backup's findings, and `--fail-on hygiene` selects it
    // (nonce reuse shows even without the key: same key name, same nonce, two ciphertexts).
    let r = run(&[
        "scan",
        "--format",
        "json",
        "--fail-on",
        "hygiene",
        "-c",
        &hygiene("config-kms-v1.yaml"),
        &hygiene("hygiene.snapshot.db"),
    ]);
    assert_eq!(r.code, 1);
    assert_eq!(r.json()["backups"][0]["failed_on"], serde_json::json!(["gcm-nonce-reuse", "kms-v1"]));
}
