//! `scan --catalog` and `etcd-audit catalog …` end to end: real backups
//! before and after a key rotation, key retirement questions, re-audits
//! without duplicates, and an incremental sweep of a real S3 server.

use std::path::Path;

use crate::util::*;
use serde_json::Value;

fn configs() -> Vec<String> {
    ["config-current.yaml", "config-old.yaml"]
        .iter()
        .flat_map(|c| ["-c".to_string(), path_str(&testdata(&format!("scan/{c}"))).to_string()])
        .collect()
}

/// A catalog file's path, or a `postgres://` URL.
fn scan_into(
    catalog: &(impl AsRef<Path> + ?Sized),
    sources: &[&str],
    extra: &[&str],
    env: &[(&str, String)],
) -> Run {
    let mut args: Vec<String> = vec!["scan".into(), "--format".into(), "json".into()];
    args.extend(configs());
    args.push(format!("--catalog={}", path_str(catalog.as_ref())));
    args.extend(sources.iter().map(|s| s.to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    run_env(&args.iter().map(String::as_str).collect::<Vec<_>>(), env)
}

/// `catalog QUERY… --catalog PATH|URL --format json`: the flags after the subcommand.
fn query(catalog: &(impl AsRef<Path> + ?Sized), args: &[&str]) -> Run {
    let mut all = vec!["catalog"];
    all.extend_from_slice(args);
    all.extend(["--catalog", path_str(catalog.as_ref()), "--format", "json"]);
    run(&all)
}

fn sources_of(doc: &Value) -> Vec<String> {
    doc["backups"].as_array().unwrap().iter().map(|b| b["source"].as_str().unwrap().to_string()).collect()
}

#[test]
fn key_retirement_across_backups() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog.redb");
    let before = testdata("etcd35-scan.snapshot.db");
    let after = testdata("etcd35-forensics.snapshot.db");
    let (before, after) = (path_str(&before), path_str(&after));

    let r = scan_into(&cat, &[before, after], &[], &[]);
    assert!(r.stderr.contains("recorded 2 backups, skipped 0"), "{}", r.stderr);

    // Queries open the catalog read-only: its bytes and mtime stay as they are.
    let stamp = || (std::fs::read(&cat).unwrap(), std::fs::metadata(&cat).unwrap().modified().unwrap());
    let untouched = stamp();
    for q in [&["list"][..], &["can-retire", "aescbc:key-old"], &["needs", after]] {
        query(&cat, q);
    }
    assert!(stamp() == untouched, "a query changed the catalog file");
    key_retirement(path_str(&cat));
}

/// The same commands and answers with a PostgreSQL catalog; the URL may also
/// come from ETCD_AUDIT_CATALOG_URL, and a database that cannot be reached
/// exits 2 without showing its password.
#[test]
fn key_retirement_across_backups_in_postgres() {
    let url = crate::pg::database();
    assert_eq!(query(&url, &["list"]).code, 2, "a query creates no catalog");
    let (before, after) = (testdata("etcd35-scan.snapshot.db"), testdata("etcd35-forensics.snapshot.db"));
    let r = scan_into(&url, &[path_str(&before), path_str(&after)], &[], &[]);
    assert!(r.stderr.contains("recorded 2 backups, skipped 0"), "{}", r.stderr);
    key_retirement(&url);

    let from_env =
        run_env(&["catalog", "list", "--format", "json"], &[("ETCD_AUDIT_CATALOG_URL", url.clone())]);
    assert_eq!(from_env.stdout, query(&url, &["list"]).stdout);

    let unreachable = "postgres://auditor:s3cret-pw@127.0.0.1:1/fleet?connect_timeout=5";
    for r in [query(unreachable, &["list"]), scan_into(unreachable, &[path_str(&before)], &[], &[])] {
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert!(r.stderr.contains("postgres://auditor@127.0.0.1:1/fleet"), "{}", r.stderr);
        assert!(!r.stderr.contains("s3cret"), "{}", r.stderr);
    }
}

/// Both fixtures recorded in `cat`: what the catalog answers about their keys.
fn key_retirement(cat: &str) {
    let before = testdata("etcd35-scan.snapshot.db");
    let after = testdata("etcd35-forensics.snapshot.db");
    let (before, after) = (path_str(&before), path_str(&after));
    let list = query(cat, &["list"]);
    assert_eq!(list.code, 0);
    let list = list.json();
    assert_eq!(list["schema"], "etcd-audit.catalog/v1");
    assert_eq!(sources_of(&list), [after, before], "sorted by source");
    assert_eq!(list["backups"][1]["revision"], 75);
    // Keyed by the SHA-256 of the bbolt bytes (the snapshot without its trailer).
    let bytes = std::fs::read(testdata("etcd35-scan.snapshot.db")).unwrap();
    let bbolt = &bytes[..bytes.len() - 32];
    use sha2::Digest;
    assert_eq!(list["backups"][1]["sha256"], hex::encode(sha2::Sha256::digest(bbolt)));
    assert_eq!(list["backups"][1]["size"], bbolt.len());

    // The old key is needed by the backup from before the rotation only.
    let r = query(cat, &["can-retire", "aescbc:key-old"]);
    assert_eq!(r.code, 1);
    assert_eq!(sources_of(&r.json()), [before]);
    // The current key by both; an unused key by none; a name with ':' is split at the first ':'.
    assert_eq!(sources_of(&query(cat, &["can-retire", "aescbc:key-new"]).json()), [after, before]);
    let unused = query(cat, &["can-retire", "secretbox:never-used"]);
    assert_eq!((unused.code, sources_of(&unused.json()).len()), (0, 0));
    let colons = query(cat, &["can-retire", "aescbc:key:with:colons"]);
    assert_eq!((colons.code, sources_of(&colons.json())), (1, vec![before.to_string()]));
    assert_eq!(query(cat, &["can-retire", "no-colon"]).code, 2);

    // Audited again: skipped, nothing duplicated; --rescan audits again, still no duplicate.
    let again = scan_into(cat, &[before, after], &[], &[]);
    assert!(again.stderr.contains("recorded 0 backups, skipped 2"), "{}", again.stderr);
    assert_eq!(again.code, 0, "nothing new to audit is not a failure");
    assert_eq!(again.json()["skipped"].as_array().unwrap().len(), 2);
    let rescan = scan_into(cat, &[before], &["--rescan"], &[]);
    assert!(rescan.stderr.contains("recorded 1 backups, skipped 0"), "{}", rescan.stderr);
    assert_eq!(sources_of(&query(cat, &["list"]).json()).len(), 2);
    // Another keyring is another audit: not skipped.
    let cur = testdata("scan/config-current.yaml");
    let other = run(&["scan", "-c", path_str(&cur), &format!("--catalog={cat}"), before]);
    assert!(other.stderr.contains("recorded 1 backups, skipped 0"), "{}", other.stderr);

    let needs = query(cat, &["needs", after]).json();
    let keys: Vec<&str> =
        needs["keys"].as_array().unwrap().iter().map(|k| k["name"].as_str().unwrap()).collect();
    assert_eq!(keys, ["key-new"]);
    assert_eq!(query(cat, &["needs", "/nowhere.db"]).code, 2);

    // The old backup expires from storage: the old key may go.
    let forgot = query(cat, &["forget", before]).json();
    assert_eq!(forgot["forgotten"]["backups"], 1);
    assert_eq!(query(cat, &["can-retire", "aescbc:key-old"]).code, 0);
    let table = run(&["catalog", "--catalog", cat, "can-retire", "aescbc:key-old"]);
    assert!(table.stdout.contains("may be retired"), "{}", table.stdout);
}

#[test]
fn incremental_sweep_of_an_s3_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let cat = dir.path().join("catalog.redb");
    let s3 = SupportServer::start("s3_server.py", &["open"]);
    let env = s3.s3_env("endpoint");
    let first = scan_into(&cat, &["s3://backups/k3s/"], &[], &env);
    assert!(first.stderr.contains("recorded 2 backups, skipped 0"), "{}", first.stderr);
    let second = scan_into(&cat, &["s3://backups/k3s/"], &[], &env);
    assert!(second.stderr.contains("recorded 0 backups, skipped 2"), "{}", second.stderr);
    let second = second.json();
    let skipped: Vec<&str> =
        second["skipped"].as_array().unwrap().iter().map(|s| s["reason"].as_str().unwrap()).collect();
    assert_eq!(skipped.iter().filter(|r| r.starts_with("already audited")).count(), 2, "{skipped:?}");
    // Both objects hold the same snapshot: one record, keyed by content, with both sources.
    let list = query(&cat, &["list"]).json();
    let records = list["backups"].as_array().unwrap();
    assert_eq!(records.len(), 1, "{list}");
    assert_eq!(records[0]["sources"].as_array().unwrap().len(), 2);
    assert!(records[0]["origin"]["e_tag"].is_string(), "{list}");
    assert_eq!(records[0]["size"], 49152, "the bbolt bytes, without the snapshot trailer");
    let third = scan_into(&cat, &["s3://backups/k3s/"], &["--rescan"], &env);
    assert!(third.stderr.contains("recorded 2 backups, skipped 0"), "{}", third.stderr);
}

const EAST: &str = "11111111-1111-4111-8111-111111111111";
const WEST: &str = "22222222-2222-4222-8222-222222222222";

fn schema_version(catalog: &Path) -> u64 {
    let db = redb::Database::open(catalog).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    let meta = txn.open_table(redb::TableDefinition::<&str, u64>::new("meta")).unwrap();
    meta.get("schema_version").unwrap().unwrap().value()
}

/// `scan --catalog` on the two-cluster fixtures, with their own config.
fn sweep_into(catalog: &Path, files: &[&str], extra: &[&str]) -> Run {
    let mut args =
        vec!["scan".to_string(), "--format".into(), "json".into(), "--fail-on".into(), "integrity".into()];
    args.extend(["-c".into(), path_str(&testdata("clusters/config.yaml")).to_string()]);
    args.push(format!("--catalog={}", path_str(catalog)));
    args.extend(files.iter().map(|f| path_str(&testdata(&format!("clusters/{f}"))).to_string()));
    args.extend(extra.iter().map(|s| s.to_string()));
    run(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// A catalog written by the release before schema 2 (`testdata/catalog`) is
/// read as it is, and migrated by the first write: its records keep every
/// field, and re-audited backups gain their cluster, version and time.
#[test]
fn a_version_1_catalog_is_read_and_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("v1.redb");
    std::fs::copy(testdata("catalog/v1.redb"), &catalog).unwrap();
    assert_eq!(schema_version(&catalog), 1);
    let before = query(&catalog, &["list"]).json();
    assert_eq!(before["backups"].as_array().unwrap().len(), 2);
    assert_eq!(before["backups"][0]["cluster_uid"], Value::Null, "schema 1 had no cluster");
    assert_eq!(schema_version(&catalog), 1, "a query never writes");

    let r = sweep_into(&catalog, &["bravo.db"], &[]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(schema_version(&catalog), 2, "the first write migrates");
    let after = query(&catalog, &["list"]).json();
    let backups = after["backups"].as_array().unwrap();
    assert_eq!(backups.len(), 3);
    let old = backups.iter().find(|b| b["source"].as_str().unwrap().ends_with("alpha.db")).unwrap();
    let was = before["backups"].as_array().unwrap().iter().find(|b| b["sha256"] == old["sha256"]).unwrap();
    for field in ["sha256", "size", "revision", "audited_at", "keyring", "summary", "origin"] {
        assert_eq!(old[field], was[field], "{field} survives the migration");
    }
    assert_eq!(old["keys"][0]["name"], "shared");
    assert_eq!(old["keys"][0]["write_key"], false, "unknown in schema 1");
    let east = query(&catalog, &["list", "--cluster", EAST]).json();
    assert_eq!(sources_of(&east).len(), 1, "only bravo.db was audited with schema 2");
    assert_eq!(east["backups"][0]["kubernetes_version"], "v1.30.2");
    assert_eq!(east["backups"][0]["taken_at"], "2026-09-21T15:13:20Z");

    // Re-audited, the schema-1 records gain their cluster.
    assert_eq!(sweep_into(&catalog, &["alpha.db", "delta.db"], &["--rescan"]).code, 0);
    let east = query(&catalog, &["list", "--cluster", EAST]).json();
    assert_eq!(sources_of(&east).len(), 2);
    let r = query(&catalog, &["can-retire", "aescbc:shared", "--cluster", WEST]);
    assert_eq!(r.code, 1, "west's delta.db needs it");
    assert_eq!(sources_of(&r.json()).len(), 1);
    let r = query(
        &catalog,
        &["can-retire", "aescbc:shared", "--cluster", "33333333-3333-4333-8333-333333333333"],
    );
    assert_eq!(r.code, 0, "no backup of that cluster needs it");
}

/// With `--catalog`, a cluster's group spans everything the catalog holds
/// for it: a run that reads only the newest backup still sees the gap
/// before it.
#[test]
fn the_sweep_spans_the_catalogued_history_of_a_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("c.redb");
    assert_eq!(sweep_into(&catalog, &["alpha.db", "bravo.db", "delta.db"], &[]).code, 0);
    let r = sweep_into(&catalog, &["charlie.db"], &["--expect-every", "2h"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let doc = r.json();
    assert_eq!(doc["backups"].as_array().unwrap().len(), 1, "this run read one backup");
    let clusters = doc["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 1, "only the clusters this run saw: {doc}");
    assert_eq!(clusters[0]["uid"], EAST);
    assert_eq!(clusters[0]["backups"].as_array().unwrap().len(), 3);
    let found =
        |code: &str| clusters[0]["findings"].as_array().unwrap().iter().find(|f| f["code"] == code).cloned();
    let gap = found("backup-gap").unwrap();
    assert!(gap["details"][0]["from_source"].as_str().unwrap().ends_with("bravo.db"));
    let shared = found("key-shared-across-clusters").expect("west's catalogued backup holds the same key");
    assert_eq!(shared["details"][0]["clusters"], serde_json::json!([WEST]));
}

#[test]
fn a_second_sweep_of_one_catalog_is_refused_while_the_first_runs() {
    use std::io::{BufRead, Write};
    let dir = tempfile::tempdir().unwrap();
    let catalog = dir.path().join("catalog.redb");
    let db = testdata("clusters/alpha.db");
    let config = testdata("clusters/config.yaml");
    let sweep = || {
        run(&[
            "scan",
            path_str(&db),
            "-c",
            path_str(&config),
            &format!("--catalog={}", catalog.display()),
            "-q",
        ])
    };
    assert_eq!(sweep().code, 0);
    // Another sweep holds the lock (as a running etcd-audit does: flock on <catalog>.sweep.lock).
    let hold = "import fcntl, sys\n\
                f = open(sys.argv[1], 'a+')\n\
                fcntl.flock(f, fcntl.LOCK_EX)\n\
                f.truncate(0); f.write('pid 4242 since 2026-11-30T00:00:00Z'); f.flush()\n\
                print('locked', flush=True)\n\
                sys.stdin.read()";
    let lock = format!("{}.sweep.lock", catalog.display());
    let mut holder = std::process::Command::new("python3")
        .args(["-c", hold, &lock])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(holder.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "locked");
    let refused = sweep();
    assert_eq!(refused.code, 2);
    assert!(
        refused.stderr.contains("being swept by another etcd-audit (pid 4242 since 2026-11-30T00:00:00Z)"),
        "{}",
        refused.stderr
    );
    // Queries are not sweeps: they still answer.
    let list = run(&["catalog", "list", "--catalog", path_str(&catalog), "--format", "json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    holder.stdin.take().unwrap().write_all(b"done").unwrap();
    holder.wait().unwrap();
    assert_eq!(sweep().code, 0, "the lock went with its holder");
}

#[test]
fn a_killed_sweep_resumes_where_it_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, tmp) = (dir.path().join("backups"), dir.path().join("tmp"));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::create_dir_all(&tmp).unwrap();
    for name in ["alpha.db", "bravo.db"] {
        std::fs::copy(testdata(&format!("clusters/{name}")), folder.join(name)).unwrap();
    }
    // Unpacking this takes seconds: the sweep is still running when the two
    // snapshots beside it have been audited.
    crate::interrupt::slow_tar(&folder.join("zzz-slow.tar"), 4 << 10);
    let catalog = dir.path().join("catalog.redb");
    let catalog_arg = format!("--catalog={}", catalog.display());
    let config = testdata("clusters/config.yaml");
    let mut sweep = std::process::Command::new(env!("CARGO_BIN_EXE_etcd-audit"))
        .args(["scan", "-q", "--max-unpacked-bytes", "100G", "-c", path_str(&config), &catalog_arg])
        .arg(&folder)
        .env("TMPDIR", &tmp)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let recorded = || -> usize {
        let r = run(&["catalog", "list", "--catalog", path_str(&catalog), "--format", "json"]);
        if r.code != 0 {
            return 0;
        }
        r.json()["backups"].as_array().map_or(0, |b| b.len())
    };
    // A harness guard, not a timing assertion.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while recorded() < 2 {
        assert!(sweep.try_wait().unwrap().is_none(), "the sweep ended before it was killed");
        assert!(std::time::Instant::now() < deadline, "nothing was recorded while the sweep ran");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(sweep.try_wait().unwrap().is_none(), "recorded while still sweeping");
    sweep.kill().unwrap();
    sweep.wait().unwrap();
    std::fs::remove_file(folder.join("zzz-slow.tar")).unwrap();
    let again = run_env(
        &["scan", "-c", path_str(&config), &catalog_arg, path_str(&folder)],
        &[("TMPDIR", path_str(&tmp).to_string())],
    );
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.stderr.contains("recorded 0 backups, skipped 2 already audited"), "{}", again.stderr);
}

#[test]
fn shard_catalogs_merge_into_the_fleets_by_export_and_import() {
    let dir = tempfile::tempdir().unwrap();
    let (folder, config) = (testdata("clusters"), testdata("clusters/config.yaml"));
    let cat = |name: &str| dir.path().join(name);
    let sweep = |catalog: &std::path::Path, extra: &[&str]| {
        let arg = format!("--catalog={}", catalog.display());
        let mut args = vec!["scan", path_str(&folder), "-c", path_str(&config), arg.as_str(), "-q"];
        args.extend(extra);
        let r = run(&args);
        assert!(r.code <= 1, "{}", r.stderr);
    };
    sweep(&cat("full.redb"), &[]);
    sweep(&cat("shard0.redb"), &["--shard", "0/2"]);
    sweep(&cat("shard1.redb"), &["--shard", "1/2"]);
    let merged = cat("merged.redb");
    for shard in ["shard0.redb", "shard1.redb", "shard1.redb"] {
        let export =
            run(&["catalog", "export", "--catalog", path_str(&cat(shard)), "-o", path_str(&cat("x.jsonl"))]);
        assert_eq!(export.code, 0, "{}", export.stderr);
        let first = std::fs::read_to_string(cat("x.jsonl")).unwrap();
        assert!(first.starts_with("{\"format\":\"etcd-audit.catalog-export/v1\""), "{first}");
        let import = run(&["catalog", "import", path_str(&cat("x.jsonl")), "--catalog", path_str(&merged)]);
        assert_eq!(import.code, 0, "{}", import.stderr);
    }
    let listed = |c: &std::path::Path| -> Vec<Value> {
        let r = run(&["catalog", "list", "--catalog", path_str(c), "--format", "json"]);
        let mut rows: Vec<Value> = r.json()["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                serde_json::json!([
                    b["source"],
                    b["sha256"],
                    b["sources"],
                    b["keys"],
                    b["cluster_uid"],
                    b["taken_at"]
                ])
            })
            .collect();
        rows.sort_by_key(|v| v.to_string());
        rows
    };
    assert_eq!(listed(&merged), listed(&cat("full.redb")), "the shards' catalogs merged are the fleet's");
    let retire = |c: &std::path::Path| {
        let r =
            run(&["catalog", "can-retire", "aescbc:shared", "--catalog", path_str(c), "--format", "json"]);
        assert_eq!(r.code, 1);
        let mut sources: Vec<String> = r.json()["backups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["source"].as_str().unwrap().to_string())
            .collect();
        sources.sort();
        sources
    };
    assert_eq!(retire(&merged), retire(&cat("full.redb")));
    // A sweep against the merged catalog skips everything.
    let again = run(&[
        "scan",
        path_str(&folder),
        "-c",
        path_str(&config),
        &format!("--catalog={}", merged.display()),
    ]);
    assert!(again.stderr.contains("recorded 0 backups, skipped 5 already audited"), "{}", again.stderr);

    std::fs::write(cat("bad.jsonl"), "{\"backup\": 1}\n").unwrap();
    let bad = run(&["catalog", "import", path_str(&cat("bad.jsonl")), "--catalog", path_str(&merged)]);
    assert_eq!(bad.code, 2);
    assert!(bad.stderr.contains("import line 1"), "{}", bad.stderr);
}
