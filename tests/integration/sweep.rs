//! A sweep grouped per cluster, on snapshots of two real clusters taken at
//! known times (`testdata/clusters`, made by `testdata/gen/make-clusters.sh`;
//! `expected.json` holds each file's cluster, version and time).

use crate::util::*;
use serde_json::{json, Value};

fn sweep(extra: &[&str]) -> Run {
    let dir = testdata("clusters");
    let cfg = testdata("clusters/config.yaml");
    let mut args = vec!["scan", "--format", "json", "-c", path_str(&cfg), path_str(&dir)];
    args.extend_from_slice(extra);
    run(&args)
}

fn finding<'a>(group: &'a Value, code: &str) -> Option<&'a Value> {
    group["findings"].as_array().unwrap().iter().find(|f| f["code"] == code)
}

/// Including the OpenShift-style etcd 3.4 backup without Leases, whose time
/// comes from its Events (`event-time`, within their one-hour TTL).
#[test]
fn every_backup_knows_its_cluster_and_time() {
    let expected: Value =
        serde_json::from_str(&std::fs::read_to_string(testdata("clusters/expected.json")).unwrap()).unwrap();
    let doc = sweep(&[]).json();
    let backups = doc["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 5);
    for b in backups {
        let file = b["source"].as_str().unwrap().rsplit('/').next().unwrap();
        let truth = &expected[file];
        assert_eq!(b["cluster"]["uid"], truth["uid"], "{file}");
        assert_eq!(b["cluster"]["kubernetes_version"], truth["kubernetes_version"], "{file}");
        let estimate = b["taken_at"]["estimate"].as_str().unwrap();
        let at = etcd_audit::time::parse_rfc3339(estimate).unwrap();
        let truth_at = truth["taken_at"].as_i64().unwrap();
        assert!((at - truth_at).abs() <= 15, "{file}: {estimate} vs {truth_at}");
        let source = if file == "echo.db" { "event-time" } else { "lease-renew-time" };
        assert_eq!(b["taken_at"]["source"], source, "{file}");
    }
}

#[test]
fn one_group_per_cluster_with_its_gap_versions_and_shared_key() {
    let r = sweep(&["--expect-every", "2h", "--fail-on", "integrity"]);
    assert_eq!(r.code, 0, "no --fail-on token for cluster findings: {}", r.stderr);
    let doc = r.json();
    let clusters = doc["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 3, "{doc}");
    let (east, west, north) = (&clusters[0], &clusters[1], &clusters[2]);
    assert_eq!(north["kubernetes_versions"], json!(["v1.28.5+a1b2c3d"]), "OpenShift: the kubelet's version");
    assert_eq!(east["uid"], "11111111-1111-4111-8111-111111111111");
    assert_eq!(east["kubernetes_versions"], json!(["v1.30.2", "v1.31.0"]));
    let names: Vec<&str> = east["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(names, ["alpha.db", "bravo.db", "charlie.db"], "oldest first");
    assert!(east["newest"]["source"].as_str().unwrap().ends_with("charlie.db"));
    assert_eq!(east["newest"]["taken_at"], "2026-09-21T17:23:20Z");
    assert!(east["oldest"]["source"].as_str().unwrap().ends_with("alpha.db"));
    let gap = finding(east, "backup-gap").expect("the one gap");
    assert_eq!((gap["count"].as_u64(), gap["severity"].as_str()), (Some(1), Some("medium")));
    assert_eq!(gap["details"][0]["seconds"], 7800);
    assert!(gap["details"][0]["to_source"].as_str().unwrap().ends_with("charlie.db"));
    assert!(finding(east, "restore-mixed-versions").is_some());
    assert!(finding(west, "backup-gap").is_none() && finding(west, "restore-mixed-versions").is_none());
    for group in [east, west, north] {
        let shared = finding(group, "key-shared-across-clusters").expect("one aescbc key in every cluster");
        assert_eq!(shared["severity"], "high");
        let keys = group["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(
            (keys[0]["key"].as_str(), keys[0]["write_key"].as_bool()),
            (Some("aescbc:shared"), Some(true))
        );
        assert!(keys[0]["fingerprint"].as_str().unwrap().starts_with("sha256:"));
    }
    assert_eq!(east["keys"][0]["first_seen"], "2026-09-21T14:13:20Z");
    assert_eq!(east["keys"][0]["last_seen"], "2026-09-21T17:23:20Z");
    let also = &finding(west, "key-shared-across-clusters").unwrap()["details"][0]["clusters"];
    assert_eq!(also, &json!([east["uid"], north["uid"]]));
    // Every interval is shorter than 3 h: no gap.
    let doc = sweep(&["--expect-every", "3h"]).json();
    assert!(finding(&doc["clusters"][0], "backup-gap").is_none());
}

#[test]
fn age_counts_for_backups_and_clusters_alike() {
    let now = ["--now", "2026-09-21T18:13:20Z", "--max-age", "2h"];
    let mut args = now.to_vec();
    args.extend(["--expect-every", "2h", "--fail-on", "age"]);
    let r = sweep(&args);
    assert_eq!(r.code, 1, "--fail-on age: {}", r.stderr);
    let doc = r.json();
    let old: Vec<&str> = doc["backups"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|b| b["findings"].as_array().unwrap().iter().any(|f| f["code"] == "backup-too-old"))
        .map(|b| b["source"].as_str().unwrap().rsplit('/').next().unwrap())
        .collect();
    assert_eq!(old, ["alpha.db", "bravo.db", "delta.db", "echo.db"], "older than 2 h at 18:13:20");
    let (east, west) = (&doc["clusters"][0], &doc["clusters"][1]);
    assert!(finding(east, "backup-too-old").is_none(), "east's newest is 50 min old");
    assert!(finding(west, "backup-too-old").is_some(), "west's only backup is 3.5 h old");
    assert_eq!(east["failed_on"], json!(["backup-gap"]));
    // A cluster finding alone decides the exit code too.
    let r = sweep(&["--expect-every", "2h", "--fail-on", "backup-gap"]);
    assert_eq!(r.code, 1);
    let table = run(&[
        "scan",
        "-c",
        path_str(&testdata("clusters/config.yaml")),
        path_str(&testdata("clusters")),
        "--expect-every",
        "2h",
    ]);
    assert!(table
        .stdout
        .contains("cluster     11111111-1111-4111-8111-111111111111 (v1.30.2, v1.31.0): 3 backups"));
    assert!(table.stdout.contains("backup-gap (1)"), "{}", table.stdout);
}

/// A k3s snapshot name carries the time it was taken: more than 10 minutes
/// from the Leases' time is `taken-at-disagrees` (low).
#[test]
fn a_snapshot_name_that_disagrees_with_the_leases_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = 1_790_000_000; // alpha.db's Leases
    for (name, off) in [("etcd-snapshot-cp-1", 3600), ("on-demand-cp-1", 120)] {
        std::fs::copy(testdata("clusters/alpha.db"), dir.path().join(format!("{name}-{}", t0 + off)))
            .unwrap();
    }
    let doc = run(&["scan", "--format", "json", "--fail-on", "integrity", path_str(dir.path())]).json();
    let codes = |b: &Value| -> Vec<String> {
        b["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
    };
    let (far, near) = (&doc["backups"][0], &doc["backups"][1]);
    assert!(far["source"].as_str().unwrap().contains("etcd-snapshot-cp-1-"));
    assert!(codes(far).contains(&"taken-at-disagrees".to_string()), "{far}");
    let f = finding(far, "taken-at-disagrees").unwrap();
    assert_eq!(f["severity"], "low");
    assert!(f["message"].as_str().unwrap().contains("60 min off"), "{f}");
    assert!(!codes(near).contains(&"taken-at-disagrees".to_string()), "2 min apart is fine: {near}");
}

/// The write key has been in the backups since the oldest one: past
/// `--rotate-every` (90 days unless given) it is `key-rotation-overdue`.
#[test]
fn a_write_key_older_than_the_rotation_schedule_is_overdue() {
    let later = ["--now", "2027-01-01T00:00:00Z", "--fail-on", "key-rotation-overdue"];
    let r = sweep(&later);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let doc = r.json();
    for group in doc["clusters"].as_array().unwrap() {
        let f = finding(group, "key-rotation-overdue").expect("101 days after the first backup");
        assert_eq!((f["severity"].as_str(), f["count"].as_u64()), (Some("medium"), Some(1)));
        assert!(f["examples"][0].as_str().unwrap().starts_with("aescbc:shared (sha256:"), "{f}");
    }
    let mut relaxed = later.to_vec();
    relaxed.extend(["--rotate-every", "120d"]);
    let r = sweep(&relaxed);
    assert_eq!(r.code, 0);
    assert!(finding(&r.json()["clusters"][0], "key-rotation-overdue").is_none());
}

/// Every full-snapshot container form says which cluster and when, as the
/// bare snapshot does: gzip, zstd, zip, tar.gz and a data dir's member db.
#[test]
fn every_container_form_keeps_cluster_and_time() {
    use std::io::Write;
    let bytes = std::fs::read(testdata("clusters/bravo.db")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let gz = |data: &[u8]| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    };
    std::fs::write(dir.path().join("a.db.gz"), gz(&bytes)).unwrap();
    std::fs::write(dir.path().join("b.db.zst"), zstd::encode_all(&bytes[..], 3).unwrap()).unwrap();
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    zip.start_file("snapshot/bravo", zip::write::SimpleFileOptions::default()).unwrap();
    zip.write_all(&bytes).unwrap();
    std::fs::write(dir.path().join("c.zip"), zip.finish().unwrap().into_inner()).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(bytes.len() as u64);
    header.set_mode(0o600);
    tar.append_data(&mut header, "backup/db", &bytes[..]).unwrap();
    std::fs::write(dir.path().join("d.tar.gz"), gz(&tar.into_inner().unwrap())).unwrap();
    let member = dir.path().join("e-datadir/member/snap");
    std::fs::create_dir_all(&member).unwrap();
    std::fs::write(member.join("db"), &bytes[..bytes.len() - 32]).unwrap(); // no trailer: a member db
    let bare = run(&[
        "scan",
        "--format",
        "json",
        "--fail-on",
        "integrity",
        path_str(&testdata("clusters/bravo.db")),
    ]);
    let want = &bare.json()["backups"][0];
    let doc = run(&["scan", "--format", "json", "--fail-on", "integrity", path_str(dir.path())]).json();
    let backups = doc["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 5, "{doc}");
    for b in backups {
        assert_eq!(b["error"], Value::Null, "{b}");
        assert_eq!(b["cluster"]["uid"], want["cluster"]["uid"], "{}", b["source"]);
        assert_eq!(
            b["cluster"]["kubernetes_version"], want["cluster"]["kubernetes_version"],
            "{}",
            b["source"]
        );
        assert_eq!(b["taken_at"], want["taken_at"], "{}", b["source"]);
    }
    let clusters = doc["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1, "one cluster, five copies");
}
