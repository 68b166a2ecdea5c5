//! Every container form, made by testdata/gen/make-containers.sh from real
//! etcd data: recognised by content, unwrapped with bounded resources, and
//! giving the verdicts of the bare snapshot; hostile archives refused.

use std::collections::BTreeSet;

use crate::util::*;
use serde_json::{json, Value};

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(testdata("containers/expected.json")).unwrap()).unwrap()
}

fn scan(paths: &[&str], extra: &[&str]) -> Run {
    let (cur, old) = (testdata("scan/config-current.yaml"), testdata("scan/config-old.yaml"));
    let mut args = vec!["scan", "--format", "json", "-c", path_str(&cur), "-c", path_str(&old)];
    let full: Vec<String> =
        paths.iter().map(|p| path_str(&testdata(&format!("containers/{p}"))).to_string()).collect();
    args.extend(full.iter().map(String::as_str));
    args.extend_from_slice(extra);
    run(&args)
}

/// The verdicts of a backup, without where it came from.
fn verdicts(b: &Value) -> Value {
    json!({"summary": b["summary"], "entries": b["entries"], "keys": b["keys"], "findings": b["findings"]})
}

#[test]
fn every_snapshot_container_gives_the_verdicts_of_the_bare_snapshot() {
    let exp = expected();
    let bare = run(&[
        "scan",
        "--format",
        "json",
        "-c",
        path_str(&testdata("scan/config-current.yaml")),
        "-c",
        path_str(&testdata("scan/config-old.yaml")),
        path_str(&testdata("etcd35-scan.snapshot.db")),
    ]);
    let bare = verdicts(&bare.json()["backups"][0]);
    let mut checked = 0;
    for (file, e) in exp["files"].as_object().unwrap() {
        if e["same_verdicts_as"] != "etcd35-scan.expected.json" {
            continue;
        }
        let r = scan(&[file], &[]);
        let b = &r.json()["backups"][0];
        assert_eq!(b["error"], Value::Null, "{file}: {}", r.stderr);
        assert_eq!(b["container"], e["container"], "{file}");
        assert_eq!(b["integrity"]["sha256_trailer"], "valid", "{file}");
        assert_eq!(verdicts(b), bare, "{file}");
        checked += 1;
    }
    assert!(checked >= 9, "zip, renamed zip, gz, zlib, LZW, plain, zstd, tar.gz…: {checked}");
}

#[test]
fn gardener_delta_snapshot_entries_and_history() {
    let exp = &expected()["delta"];
    let r = scan(&["gardener/v2/Incr-00000002-00000016-1795800100.gz"], &["--history"]);
    let b = &r.json()["backups"][0];
    assert_eq!(b["container"], json!(["gzip", "gardener-delta"]));
    assert_eq!(b["integrity"]["sha256_trailer"], "valid");
    assert_eq!(b["etcd"]["revision"], exp["last_revision"]);
    let set = |v: &Value, f: &[&str]| -> BTreeSet<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| f.iter().map(|k| r[*k].to_string()).collect::<Vec<_>>().join(" "))
            .collect()
    };
    let fields = ["key", "mod_revision", "class"];
    assert_eq!(set(&b["entries"], &fields), set(&exp["entries"], &fields));
    assert_eq!(set(&b["history"], &fields), set(&exp["history"], &fields));
    assert_eq!(b["summary"]["plaintext"], exp["summary"]["entries"]["plaintext"]);
    assert_eq!(b["summary"]["decryptable"], exp["summary"]["entries"]["decryptable"]);
    assert!(b["history"].as_array().unwrap().iter().any(|h| h["deleted"] == true && h["class"].is_null()));
}

#[test]
fn a_tampered_delta_is_an_integrity_failure() {
    let r = scan(&["gardener/v2/Incr-00000002-00000016-1795800101-tampered.gz"], &["--fail-on", "integrity"]);
    assert_eq!(r.code, 1);
    let b = &r.json()["backups"][0];
    assert_eq!(b["integrity"]["sha256_trailer"], "mismatch");
    assert_eq!(b["integrity"]["ok"], false);
}

#[test]
fn a_tarred_data_dir_is_audited_with_its_wal() {
    let exp = &expected()["files"]["datadir/etcd-data.tar.gz"];
    let r = scan(&["datadir/etcd-data.tar.gz"], &["--history"]);
    let b = &r.json()["backups"][0];
    assert_eq!(b["error"], Value::Null, "{}", r.stderr);
    assert_eq!(b["container"], json!(["gzip", "tar", "data-dir", "bbolt"]));
    assert!(b["source"].as_str().unwrap().ends_with("etcd-data.tar.gz!/etcd"), "{}", b["source"]);
    let live: BTreeSet<&str> =
        b["entries"].as_array().unwrap().iter().map(|e| e["key"].as_str().unwrap()).collect();
    let want: BTreeSet<&str> =
        exp["live_secret_keys"].as_array().unwrap().iter().map(|k| k.as_str().unwrap()).collect();
    assert_eq!(live, want);
    assert_eq!(b["etcd"]["revision"], exp["revision"]);
    let wal = b["wal"].as_array().unwrap();
    assert!(
        wal.iter().any(|w| w["key"] == "/registry/secrets/datadir/s3"),
        "the deleted secret's put is in the WAL"
    );
    assert_eq!(b["forensics"]["wal"]["plaintext"].as_u64().unwrap() as usize, wal.len());
}

#[test]
fn hostile_archives_are_refused_with_a_clear_reason() {
    let exp = expected();
    for file in [
        "hostile/bomb.gz",
        "hostile/bomb.zip",
        "hostile/traversal.tar",
        "hostile/traversal.zip",
        "hostile/not-a-backup.txt",
    ] {
        let e = &exp["files"][file];
        let r = scan(&[file], &["--max-unpacked-bytes", "64M"]);
        assert_eq!(r.code, 2, "{file}");
        let msg = e["expected_message"].as_str().unwrap();
        assert!(r.stderr.contains(msg), "{file}: expected {msg:?} in {}", r.stderr);
    }
    assert!(!testdata("containers/evil.db").exists() && !std::path::Path::new("/abs.db").exists());
}

#[test]
fn folders_are_walked_recursively_and_unrecognised_files_skipped() {
    let exp = expected();
    for (folder, want) in exp["folders"].as_object().unwrap() {
        let r = scan(&[folder], &["--max-unpacked-bytes", "64M"]);
        let doc = r.json();
        let prefix = path_str(&testdata("containers/")).to_string();
        let strip = |s: &str| s.strip_prefix(&prefix).unwrap_or(s).to_string();
        let ok: Vec<String> = doc["backups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| b["error"].is_null())
            .map(|b| strip(b["source"].as_str().unwrap()))
            .collect();
        let refused: Vec<String> = doc["backups"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|b| !b["error"].is_null())
            .map(|b| strip(b["source"].as_str().unwrap()))
            .collect();
        let skipped: Vec<String> =
            doc["skipped"].as_array().unwrap().iter().map(|s| strip(s["path"].as_str().unwrap())).collect();
        let list = |k: &str| -> Vec<String> {
            want[k].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect()
        };
        assert_eq!(ok, list("backups"), "{folder}");
        assert_eq!(refused, list("refused"), "{folder}");
        assert_eq!(skipped, list("skipped"), "{folder}");
        let code = if !refused.is_empty() {
            2
        } else if ok.is_empty() {
            0
        } else {
            1
        };
        assert_eq!(r.code, code, "{folder}");
    }
}

/// A tar holding one file.
fn tar_of(name: &str, bytes: &[u8]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    b.append_data(&mut header, name, bytes).unwrap();
    b.into_inner().unwrap()
}

fn scan_file(path: &std::path::Path, extra: &[&str]) -> Run {
    let mut args = vec!["scan", "--format", "json", path_str(path)];
    args.extend_from_slice(extra);
    run(&args)
}

/// Archives inside archives count against one depth limit: 10 nested tars
/// are refused, not unpacked level after level.
#[test]
fn nesting_is_limited_across_archives() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = std::fs::read(testdata("etcd35-scan.snapshot.db")).unwrap();
    let mut name = "etcd35-scan.snapshot.db".to_string();
    for level in 1..=10 {
        bytes = tar_of(&name, &bytes);
        name = format!("level-{level}.tar");
        if level == 3 {
            let path = dir.path().join(&name);
            std::fs::write(&path, &bytes).unwrap();
            let r = scan_file(&path, &[]);
            assert_eq!(r.code, 1, "{}", r.stderr);
            let b = &r.json()["backups"][0];
            assert_eq!(b["container"], json!(["tar", "tar", "tar", "etcd-snapshot"]));
        }
    }
    let path = dir.path().join(&name);
    std::fs::write(&path, &bytes).unwrap();
    let r = scan_file(&path, &[]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("containers nested more than 8 deep"), "{}", r.stderr);
}

/// Everything inside one archive shares the file's unpack budget: room for
/// the tar and one of its two gzipped snapshots is not room for both.
#[test]
fn an_archive_and_its_contents_share_one_budget() {
    use std::io::Write;
    let snapshot = std::fs::read(testdata("etcd35-scan.snapshot.db")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&snapshot).unwrap();
    let gz = gz.finish().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    for name in ["a.db.gz", "b.db.gz"] {
        let mut header = tar::Header::new_gnu();
        header.set_size(gz.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        b.append_data(&mut header, name, gz.as_slice()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("two.tar");
    std::fs::write(&path, b.into_inner().unwrap()).unwrap();
    let roomy = scan_file(&path, &["--max-unpacked-bytes", "1M"]);
    assert_eq!(roomy.json()["backups"].as_array().unwrap().len(), 2);
    assert!(roomy.json()["backups"].as_array().unwrap().iter().all(|b| b["error"].is_null()));
    // The tar's two members, one snapshot, and 10 KB to spare.
    let room = (2 * gz.len() + snapshot.len() + 10_000).to_string();
    let tight = scan_file(&path, &["--max-unpacked-bytes", &room]);
    assert_eq!(tight.code, 2, "{}", tight.stderr);
    let doc = tight.json();
    let errors: Vec<&Value> = doc["backups"].as_array().unwrap().iter().map(|b| &b["error"]).collect();
    assert!(errors[0].is_null(), "{errors:?}");
    assert!(errors[1].as_str().unwrap().contains("exceeds --max-unpacked-bytes"), "{errors:?}");
}
