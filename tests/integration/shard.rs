//! Sharded sweeps (`--shard INDEX/COUNT`, `--shards COUNT` with an Indexed
//! Job's JOB_COMPLETION_INDEX): the files of a folder and the objects of an
//! S3 prefix (a real S3 server, moto) are split by the SHA-256 of their
//! relative path or key, each shard always gets the same share, and the
//! shards together audit everything exactly once.

use std::collections::BTreeSet;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::util::*;

/// The shard a key falls to, computed here as the README states it.
fn shard_of(key: &str, count: u64) -> u64 {
    let digest = Sha256::digest(key.as_bytes());
    u64::from_be_bytes(digest[..8].try_into().unwrap()) % count
}

fn sources(doc: &Value) -> Vec<String> {
    doc["backups"].as_array().unwrap().iter().map(|b| b["source"].as_str().unwrap().to_string()).collect()
}

fn scan(args: &[&str], env: &[(&str, String)]) -> Run {
    let config = testdata("clusters/config.yaml");
    let mut all = vec!["scan", "--format", "json", "-c", path_str(&config)];
    all.extend(args);
    run_env(&all, env)
}

#[test]
fn a_folder_is_split_by_relative_path_and_the_shards_cover_it_once() {
    let folder = path_str(&testdata("clusters")).to_string();
    let all = sources(&scan(&[&folder], &[]).json());
    assert_eq!(all.len(), 5);
    for count in [2u64, 3, 5] {
        let mut union = Vec::new();
        for index in 0..count {
            let shard = format!("{index}/{count}");
            let r = scan(&[&folder, "--shard", &shard], &[]);
            assert!(r.code <= 1, "{shard}: {}", r.stderr);
            let got = if r.stdout.trim().is_empty() { vec![] } else { sources(&r.json()) };
            for source in &got {
                let relative = source.strip_prefix(&format!("{folder}/")).unwrap();
                assert_eq!(shard_of(relative, count), index, "{source} in shard {shard}");
            }
            assert_eq!(
                got,
                sources(&scan(&[&folder, "--shard", &shard], &[]).json()),
                "the same share every run"
            );
            union.extend(got);
        }
        union.sort();
        assert_eq!(union, all, "{count} shards cover the folder exactly once");
    }
}

#[test]
fn an_empty_shard_exits_0_and_says_so() {
    let folder = path_str(&testdata("clusters")).to_string();
    // Files of the folder: 5 backups, config.yaml, expected.json.
    let names = ["alpha.db", "bravo.db", "charlie.db", "delta.db", "echo.db", "config.yaml", "expected.json"];
    let count = 40;
    let empty = (0..count).find(|i| names.iter().all(|n| shard_of(n, count) != *i)).unwrap();
    let r = scan(&[&folder, "--shard", &format!("{empty}/{count}")], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("nothing for this shard"), "{}", r.stderr);
    assert_eq!(r.json()["backups"], serde_json::json!([]));
}

#[test]
fn the_index_of_an_indexed_job_and_what_wins() {
    let folder = path_str(&testdata("clusters")).to_string();
    let job = |index: &str| vec![("JOB_COMPLETION_INDEX", index.to_string())];
    let by_flag = sources(&scan(&[&folder, "--shard", "1/2"], &[]).json());
    assert_eq!(sources(&scan(&[&folder, "--shards", "2"], &job("1")).json()), by_flag);
    // The variable alone does nothing; an explicit --shard wins over it.
    assert_eq!(sources(&scan(&[&folder], &job("1")).json()).len(), 5);
    assert_eq!(sources(&scan(&[&folder, "--shards", "2", "--shard", "1/2"], &job("0")).json()), by_flag);
    let r = scan(&[&folder, "--shards", "2"], &job("2"));
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("JOB_COMPLETION_INDEX"), "{}", r.stderr);
    // Sources named one by one are whole in every shard.
    let (alpha, bravo) = (testdata("clusters/alpha.db"), testdata("clusters/bravo.db"));
    for shard in ["0/3", "1/3", "2/3"] {
        let got = sources(&scan(&[path_str(&alpha), path_str(&bravo), "--shard", shard], &[]).json());
        assert_eq!(got.len(), 2, "{shard}");
    }
}

#[test]
fn metrics_of_a_shard_carry_its_label() {
    require_command("promtool", "promtool (Debian prometheus)");
    let dir = tempfile::tempdir().unwrap();
    let metrics = dir.path().join("m.prom");
    let folder = path_str(&testdata("clusters")).to_string();
    let r = scan(&[&folder, "--shard", "1/2", "--metrics-file", path_str(&metrics)], &[]);
    assert!(r.code <= 1, "{}", r.stderr);
    let text = std::fs::read_to_string(&metrics).unwrap();
    let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(!samples.is_empty() && samples.iter().all(|l| l.contains("shard=\"1/2\"")), "{text}");
    let out = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::fs::File::open(&metrics).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success() && out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn an_s3_prefix_is_split_by_object_key() {
    let s3 = SupportServer::start("s3_server.py", &["open"]);
    let env = s3.s3_env("endpoint");
    let prefix = "s3://backups/k3s/";
    let listed = |doc: &Value| -> BTreeSet<String> {
        let skipped =
            doc["skipped"].as_array().unwrap().iter().map(|s| s["path"].as_str().unwrap().to_string());
        sources(doc).into_iter().chain(skipped).collect()
    };
    let all = listed(&scan(&[prefix], &env).json());
    assert_eq!(all.len(), 3, "two snapshots and a README: {all:?}");
    let mut union = BTreeSet::new();
    for index in 0..2u64 {
        let r = scan(&[prefix, "--shard", &format!("{index}/2")], &env);
        assert!(r.code <= 1, "{}", r.stderr);
        let got = if r.stdout.trim().is_empty() { BTreeSet::new() } else { listed(&r.json()) };
        for url in &got {
            let key = url.strip_prefix("s3://backups/").unwrap();
            assert_eq!(shard_of(key, 2), index, "{url}");
        }
        assert!(union.is_disjoint(&got));
        union.extend(got);
    }
    assert_eq!(union, all);
    assert_shards_record_once_in_postgres(prefix, &env, 2);
}

/// Two shard workers of `prefix` at once into one PostgreSQL catalog: each
/// of the `backups` objects recorded by exactly one of them, exactly once,
/// and listed by the catalog (as on S3, so on Azure and Google Cloud Storage).
pub fn assert_shards_record_once_in_postgres(prefix: &str, env: &[(&str, String)], backups: i64) {
    let url = crate::pg::database();
    let config = testdata("clusters/config.yaml");
    let catalog = format!("--catalog={url}");
    std::thread::scope(|s| {
        let workers: Vec<_> = ["0/2", "1/2"]
            .map(|shard| {
                let args = ["scan", "-c", path_str(&config), &catalog, "--shard", shard, prefix];
                s.spawn(move || run_env(&args, env))
            })
            .into_iter()
            .collect();
        for w in workers {
            let r = w.join().unwrap();
            assert!(r.code <= 1, "{}", r.stderr);
        }
    });
    let mut db = crate::pg::connect(&url);
    let row = db.query_one("SELECT count(*), count(DISTINCT source) FROM etcd_audit_audits", &[]).unwrap();
    assert_eq!((row.get::<_, i64>(0), row.get::<_, i64>(1)), (backups, backups), "{prefix}");
    let list = run(&["catalog", "list", "--catalog", &url, "--format", "json"]).json();
    let listed: BTreeSet<String> = list["backups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|b| b["sources"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()))
        .collect();
    assert_eq!(listed.len() as i64, backups, "{listed:?}");
    assert!(listed.iter().all(|s| s.starts_with(prefix)), "{listed:?}");
}

#[test]
fn a_shard_reports_no_gaps_it_cannot_see() {
    let folder = path_str(&testdata("clusters")).to_string();
    let whole = scan(&[&folder, "--expect-every", "1h"], &[]).json();
    let gap = |doc: &Value| {
        doc["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["findings"].as_array().unwrap().iter().any(|f| f["code"] == "backup-gap"))
    };
    assert!(gap(&whole), "the whole sweep sees the east cluster's gap");
    for shard in ["0/2", "1/2"] {
        let r = scan(&[&folder, "--expect-every", "1h", "--shard", shard], &[]);
        assert!(!gap(&r.json()), "shard {shard} sees only part of each cluster");
        assert!(r.stderr.contains("catalog clusters"), "{}", r.stderr);
    }
}

#[test]
fn a_prefix_longer_than_one_listing_page_streams_and_shards() {
    let s3 = SupportServer::start("s3_server.py", &["many"]);
    let env = s3.s3_env("endpoint");
    let prefix = "s3://backups/many/";
    let count =
        |doc: &Value| (doc["backups"].as_array().unwrap().len(), doc["skipped"].as_array().unwrap().len());
    let r = scan(&[prefix], &env);
    let doc = r.json();
    assert_eq!(count(&doc), (1, 1100), "every key of both listing pages, once: {}", r.stderr);
    assert_eq!(doc["backups"][0]["source"], "s3://backups/many/zz-snapshot.db", "after the first page");
    let (mut backups, mut skipped) = (0, 0);
    for shard in ["0/3", "1/3", "2/3"] {
        let (b, s) = count(&scan(&[prefix, "--shard", shard], &env).json());
        backups += b;
        skipped += s;
    }
    assert_eq!((backups, skipped), (1, 1100), "the shards together cover both pages once");
}
