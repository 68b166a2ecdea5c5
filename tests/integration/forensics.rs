//! Exposure forensics against a real etcd 3.5 scenario (testdata/gen,
//! `forensics`): secrets written in plaintext, re-written encrypted, deleted,
//! compacted; the snapshot, the member db, the data dir with its WAL, and a
//! defragmented copy. Expectations come from what the generator wrote and
//! from its own independent bbolt and WAL readers.

use std::collections::BTreeSet;

use crate::util::*;
use serde_json::Value;

fn expected() -> Value {
    serde_json::from_str(&std::fs::read_to_string(testdata("etcd35-forensics.expected.json")).unwrap())
        .unwrap()
}

fn scan(source: &str, extra: &[&str]) -> Run {
    let cfg = testdata("scan/config-current.yaml");
    let src = testdata(source);
    let mut args = vec!["scan", "--format", "json", "-c", path_str(&cfg), path_str(&src)];
    args.extend_from_slice(extra);
    run(&args)
}

fn rows(v: &Value, fields: &[&str]) -> BTreeSet<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|r| fields.iter().map(|f| r[*f].to_string()).collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn live_entries_are_all_encrypted() {
    let exp = expected();
    let r = scan("etcd35-forensics.snapshot.db", &[]);
    assert_eq!(r.code, 0, "nothing live is plaintext: {}", r.stdout);
    let b = &r.json()["backups"][0];
    assert_eq!(
        rows(&b["entries"], &["key", "class", "mod_revision"]),
        rows(&exp["entries"], &["key", "class", "mod_revision"])
    );
}

#[test]
fn history_holds_exactly_the_plaintext_revisions_left_behind() {
    let exp = expected();
    let r = scan("etcd35-forensics.snapshot.db", &["--history", "--fail-on", "history-plaintext"]);
    assert_eq!(r.code, 1);
    let b = &r.json()["backups"][0];
    let fields = ["key", "mod_revision", "class", "deleted", "tombstone", "create_revision", "version"];
    assert_eq!(rows(&b["history"], &fields), rows(&exp["history"], &fields));
    assert_eq!(b["forensics"]["history"]["plaintext"], exp["summary"]["history"]["plaintext"]);
    assert_findings(b, &["history-plaintext", "deleted-plaintext-in-history"]);
}

#[test]
fn residue_is_what_the_free_pages_hold() {
    let exp = expected();
    for file in ["etcd35-forensics.snapshot.db", "etcd35-forensics.member.db"] {
        let want = &exp["residue"][file]["revisions"];
        let r = scan(file, &["--residue", "--fail-on", "residue-plaintext"]);
        assert_eq!(r.code, 1, "{file}");
        let b = &r.json()["backups"][0];
        assert_eq!(
            rows(&b["residue"], &["key", "mod_revision", "class"]),
            rows(want, &["key", "mod_revision", "class"]),
            "{file}"
        );
        // The page reported is the lowest page that holds the revision.
        for (got, w) in b["residue"].as_array().unwrap().iter().zip(sorted(want)) {
            assert_eq!(got["page"], w["pages"][0], "{file} {}", w["key"]);
        }
        let plain = want.as_array().unwrap().iter().filter(|r| r["class"] == "plaintext").count();
        assert_eq!(b["forensics"]["residue"]["plaintext"].as_u64().unwrap() as usize, plain);
        let residue =
            b["findings"].as_array().unwrap().iter().find(|f| f["code"] == "residue-plaintext").unwrap();
        assert!(residue["message"].as_str().unwrap().contains("defrag"));
        // Never a revision the key bucket still holds, even with --history.
        let both = scan(file, &["--residue", "--history"]).json();
        let history = rows(&both["backups"][0]["history"], &["key", "mod_revision"]);
        let residue = rows(&both["backups"][0]["residue"], &["key", "mod_revision"]);
        assert!(history.is_disjoint(&residue), "{file}");
    }
}

fn sorted(v: &Value) -> Vec<Value> {
    let mut v = v.as_array().unwrap().clone();
    v.sort_by_key(|r| (r["mod_revision"].as_i64().unwrap(), r["key"].as_str().unwrap().to_string()));
    v
}

#[test]
fn a_defragmented_copy_has_no_residue() {
    let r = scan("etcd35-forensics-defrag.snapshot.db", &["--residue", "--fail-on", "residue-plaintext"]);
    assert_eq!(r.code, 0, "{}", r.stdout);
    let b = &r.json()["backups"][0];
    assert_eq!(b["residue"], serde_json::json!([]));
    assert_eq!(b["forensics"]["residue"]["plaintext"], 0);
}

#[test]
fn the_wal_of_a_data_dir_exposes_every_put() {
    let exp = expected();
    let r = scan("etcd35-forensics-datadir", &["--fail-on", "wal-plaintext"]);
    assert_eq!(r.code, 1);
    let b = &r.json()["backups"][0];
    assert_eq!(b["container"], serde_json::json!(["data-dir", "bbolt"]));
    let fields = ["wal_file", "raft_index", "term", "key", "class"];
    assert_eq!(rows(&b["wal"], &fields), rows(&exp["wal"], &fields));
    assert!(b["wal"].as_array().unwrap().iter().all(|w| w["mod_revision"].is_null()));
    assert_eq!(b["forensics"]["wal"]["plaintext"], exp["summary"]["wal"]["plaintext"]);
    assert_eq!(b["integrity"]["notes"], serde_json::json!([]), "the cut WAL ends cleanly");
    // A snapshot has no WAL: `wal` is null, not empty.
    assert_eq!(scan("etcd35-forensics.snapshot.db", &[]).json()["backups"][0]["wal"], Value::Null);
}

#[test]
fn a_torn_wal_tail_is_a_note_not_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let src = testdata("etcd35-forensics-datadir/member");
    for sub in ["snap", "wal"] {
        std::fs::create_dir_all(dir.path().join("member").join(sub)).unwrap();
        for f in std::fs::read_dir(src.join(sub)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dir.path().join("member").join(sub).join(f.file_name().unwrap())).unwrap();
        }
    }
    let wal = std::fs::read_dir(dir.path().join("member/wal")).unwrap().next().unwrap().unwrap().path();
    let bytes = std::fs::read(&wal).unwrap();
    std::fs::write(&wal, &bytes[..bytes.len() * 2 / 3 + 3]).unwrap();
    let cfg = testdata("scan/config-current.yaml");
    let r = run(&["scan", "--format", "json", "-c", path_str(&cfg), path_str(dir.path())]);
    let b = &r.json()["backups"][0];
    assert_eq!(b["error"], Value::Null);
    let notes = b["integrity"]["notes"].as_array().unwrap();
    assert!(
        notes.iter().any(|n| n.as_str().unwrap().contains("torn") || n.as_str().unwrap().contains("corrupt")),
        "{notes:?}"
    );
    let n = b["wal"].as_array().unwrap().len();
    assert!(
        n > 0 && n < expected()["wal"].as_array().unwrap().len(),
        "puts before the tear are still reported: {n}"
    );
}

#[test]
fn forensic_output_never_leaks_secret_values() {
    let exp = expected();
    let needles: Vec<String> = exp["markers"]
        .as_array()
        .unwrap()
        .iter()
        .chain(exp["key_materials_b64"].as_array().unwrap())
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    for r in [
        scan("etcd35-forensics-datadir", &["--history", "--residue"]),
        run(&[
            "scan",
            "--history",
            "--residue",
            "-c",
            path_str(&testdata("scan/config-current.yaml")),
            path_str(&testdata("etcd35-forensics.member.db")),
        ]),
    ] {
        for n in &needles {
            assert!(!r.stdout.contains(n.as_str()) && !r.stderr.contains(n.as_str()), "leaked {n}");
        }
    }
}
