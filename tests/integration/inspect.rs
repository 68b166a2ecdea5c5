//! `inspect` against real etcd files: the figures of `etcdutl snapshot
//! status`, bbolt check errors, and damaged files that must fail cleanly.

use crate::util::*;
use serde_json::Value;

fn inspect_json(path: &str) -> (i32, Value) {
    let r = run(&["inspect", "--format", "json", path]);
    (r.code, r.json())
}

#[test]
fn figures_match_recorded_etcdutl_status_on_every_fixture() {
    let fixtures = status_fixtures();
    assert!(fixtures.len() >= 5, "expected the committed fixtures, found {fixtures:?}");
    for db in fixtures {
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(format!("{}.status.json", db.display())).unwrap())
                .unwrap();
        let (code, doc) = inspect_json(path_str(&db));
        assert_eq!(doc["schema"], "etcd-audit.inspect/v1");
        let b = &doc["backups"][0];
        assert_eq!(code, 0, "{}: {b}", db.display());
        assert_eq!(b["integrity"]["ok"], true, "{}", db.display());
        for (ours, theirs) in [
            ("hash", "hash"),
            ("revision", "revision"),
            ("total_keys", "totalKey"),
            ("size_bytes", "totalSize"),
        ] {
            assert_eq!(b["etcd"][ours], expected[theirs], "{}: {ours}", db.display());
        }
    }
}

#[test]
fn figures_match_etcdutl_run_now() {
    let etcdutl = etcd35("etcdutl");
    let scratch = tempfile::tempdir().unwrap();
    for db in status_fixtures() {
        // etcdutl opens bbolt itself: give it a copy, never the fixture.
        let copy = scratch.path().join(db.file_name().unwrap());
        std::fs::copy(&db, &copy).unwrap();
        let out = std::process::Command::new(&etcdutl)
            .args(["snapshot", "status", "-w", "json"])
            .arg(&copy)
            .output()
            .unwrap();
        assert!(out.status.success(), "etcdutl failed on {}", db.display());
        let theirs: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (_, doc) = inspect_json(path_str(&db));
        let ours = &doc["backups"][0]["etcd"];
        assert_eq!(ours["hash"], theirs["hash"], "{}", db.display());
        assert_eq!(ours["revision"], theirs["revision"], "{}", db.display());
        assert_eq!(ours["total_keys"], theirs["totalKey"], "{}", db.display());
        assert_eq!(ours["size_bytes"], theirs["totalSize"], "{}", db.display());
    }
}

#[test]
fn page_sizes_of_16k_and_64k() {
    for (name, size) in [("bolt-16k.db", 16384), ("bolt-64k.db", 65536)] {
        let (code, doc) = inspect_json(path_str(&testdata(name)));
        assert_eq!(code, 0);
        assert_eq!(doc["backups"][0]["etcd"]["page_size"], size);
        assert!(
            doc["backups"][0]["pages"]["overflow"].as_u64().unwrap() > 0,
            "{name} should have overflow pages"
        );
    }
}

#[test]
fn snapshot_trailer_and_free_pages() {
    let (_, doc) = inspect_json(path_str(&testdata("etcd35-basic.snapshot.db")));
    let b = &doc["backups"][0];
    assert_eq!(b["container"], serde_json::json!(["etcd-snapshot"]));
    assert_eq!(b["integrity"]["sha256_trailer"], "valid");
    assert!(b["pages"]["free"].as_u64().unwrap() > 0, "compaction leaves free pages");
    assert!(b["pages"]["branch"].as_u64().unwrap() > 0, "a multi-level tree");
    assert!(b["etcd"]["compact_revision"].as_i64().unwrap() > 0);
    let (_, doc) = inspect_json(path_str(&testdata("etcd35-basic.member.db")));
    assert_eq!(doc["backups"][0]["integrity"]["sha256_trailer"], "absent");
    assert_eq!(doc["backups"][0]["container"], serde_json::json!(["bbolt"]));
}

#[test]
fn upstream_corrupted_backup_gives_documented_check_errors() {
    let (code, doc) = inspect_json(path_str(&upstream("corrupted_backup.db")));
    assert_eq!(code, 1);
    let b = &doc["backups"][0];
    assert_eq!(
        b["integrity"]["bbolt_errors"],
        serde_json::json!(["page 3: already freed", "page 4: unreachable unfreed"])
    );
    assert_eq!(b["integrity"]["ok"], false);
    assert_eq!(b["etcd"]["revision"], 2);
    assert_eq!(b["etcd"]["page_size"], 4096);
    assert_eq!(b["etcd"]["size_bytes"], 5 * 4096);
    assert_eq!(b["buckets"].as_object().unwrap().len(), 10);
    assert_eq!(b["buckets"]["members"], 3);
}

#[test]
fn a_wal_file_is_not_a_database() {
    let r = run(&["inspect", path_str(&upstream("TestNew.wal"))]);
    assert_eq!(r.code, 2);
    assert_eq!(r.stderr.lines().count(), 1, "one line per failed source: {}", r.stderr);
    assert!(r.stderr.contains("not a recognized backup"), "{}", r.stderr);
}

#[test]
fn several_sources_the_highest_code_wins_and_json_is_still_printed() {
    let good = testdata("etcd35-basic.snapshot.db");
    let r = run(&["inspect", "--format", "json", path_str(&good), path_str(&upstream("TestNew.wal"))]);
    assert_eq!(r.code, 2);
    let doc = r.json();
    assert_eq!(doc["backups"][0]["error"], Value::Null);
    assert!(doc["backups"][1]["error"].as_str().unwrap().contains("not a recognized backup"));
}
