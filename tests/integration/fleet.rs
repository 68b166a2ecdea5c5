//! Fleet sweeps at scale, on real parts: 50 distinct snapshots taken from
//! five real etcd 3.5 clusters hour by hour while their Secrets rotate from
//! the aescbc key `old` to `new` (`testdata/gen/make-fleet.sh`), stored under
//! 2,000 keys of a real S3 server (moto), swept into a real PostgreSQL
//! catalog by several `etcd-audit` processes at once: sharded, overlapping,
//! and killed half way.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

const OBJECTS: usize = 2000;
const PREFIX: &str = "s3://backups/fleet/";

/// The 50 snapshots and what their encoder wrote into each, generated once
/// per generator version into the target dir.
fn fleet() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let gen = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/gen");
        let mut stamp = Vec::new();
        for f in ["make-fleet.sh", "fleet.py", "k8senc.py"] {
            stamp.extend(std::fs::read(gen.join(f)).unwrap());
        }
        let hash = etcd_audit::catalog::ContentId::of(&stamp).sha256;
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fleet-{}", &hash[..12]));
        if !dir.join("config.yaml").is_file() {
            let tmp = dir.with_extension("tmp");
            let _ = std::fs::remove_dir_all(&tmp);
            let out = Command::new(gen.join("make-fleet.sh")).arg(&tmp).output().unwrap();
            assert!(out.status.success(), "make-fleet.sh: {}", String::from_utf8_lossy(&out.stderr));
            std::fs::rename(&tmp, &dir).unwrap();
        }
        dir
    })
}

/// Per snapshot file: the keys its encoder sealed values with.
fn expected() -> BTreeMap<String, BTreeSet<String>> {
    let text = std::fs::read_to_string(fleet().join("expected.jsonl")).unwrap();
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| {
            let needs =
                v["needs"].as_array().unwrap().iter().map(|k| k.as_str().unwrap().to_string()).collect();
            (v["file"].as_str().unwrap().to_string(), needs)
        })
        .collect()
}

fn s3() -> SupportServer {
    SupportServer::start("s3_server.py", &["fleet", path_str(fleet()), &OBJECTS.to_string()])
}

/// A sweep process, killed if the test fails before it was waited for.
struct Sweep(Option<Child>);

impl Drop for Sweep {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `etcd-audit scan` of the whole prefix into `catalog`, started, not waited for.
fn sweep(catalog: &str, extra: &[&str], env: &[(&str, String)]) -> Sweep {
    let config = fleet().join("config.yaml");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_etcd-audit"));
    cmd.args(["scan", "--quiet", "-c", path_str(&config), &format!("--catalog={catalog}")])
        .args(extra)
        .arg(PREFIX)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    Sweep(Some(cmd.spawn().expect("spawn etcd-audit")))
}

/// Waits (a hang guard, not a timing assertion); returns the exit code and stderr.
fn finish(mut sweep: Sweep) -> (i32, String) {
    let mut child = sweep.0.take().unwrap();
    let deadline = Instant::now() + Duration::from_secs(600);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("a sweep hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.code().unwrap_or(-1), stderr)
}

/// The numbers of a sweep's summary line: recorded, already audited, claimed elsewhere.
fn summary(stderr: &str) -> (usize, usize, usize) {
    let line = stderr.lines().find(|l| l.contains(": recorded ")).unwrap_or_else(|| panic!("{stderr}"));
    let number = |after: &str| -> usize {
        line.split(after).nth(1).map_or(0, |rest| rest.split_whitespace().next().unwrap().parse().unwrap())
    };
    let claimed =
        line.split(", ").nth(2).map_or(0, |s| s.split_whitespace().next().unwrap().parse().unwrap());
    (number("recorded "), number("skipped "), claimed)
}

/// Per content SHA-256: its sources and the keys it needs.
type Records = BTreeMap<String, (BTreeSet<String>, Vec<String>)>;
/// Per key asked: `can-retire`'s exit code and the contents still needing it.
type Retire = Vec<(i32, Vec<String>)>;

/// What the catalog answers, in a form both stores must agree on: per
/// content, its sources and the keys it needs (which source is the record's
/// latest and when it was audited differ from run to run).
fn answers(catalog: &str) -> (Records, Retire) {
    let list = run(&["catalog", "list", "--catalog", catalog, "--format", "json"]);
    assert_eq!(list.code, 0, "{}", list.stderr);
    let records = list.json()["backups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let sources =
                r["sources"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect();
            let keys = r["keys"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|k| k["entries"].as_u64().unwrap() > 0)
                .map(|k| format!("{}:{}", k["provider"].as_str().unwrap(), k["name"].as_str().unwrap()))
                .collect();
            (r["sha256"].as_str().unwrap().to_string(), (sources, keys))
        })
        .collect();
    let retire = ["aescbc:old", "aescbc:new", "aescbc:never-used"]
        .iter()
        .map(|key| {
            let r = run(&["catalog", "can-retire", key, "--catalog", catalog, "--format", "json"]);
            let mut needing: Vec<String> = r.json()["backups"]
                .as_array()
                .unwrap()
                .iter()
                .map(|b| b["sha256"].as_str().unwrap().to_string())
                .collect();
            needing.sort();
            (r.code, needing)
        })
        .collect();
    (records, retire)
}

fn count(db: &mut postgres::Client, sql: &str) -> i64 {
    db.query_one(sql, &[]).unwrap().get(0)
}

#[test]
fn four_shard_workers_on_postgres_record_each_object_once_and_agree_with_one_redb_sweep() {
    let s3 = s3();
    let env = s3.s3_env("endpoint");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("single.redb");
    let (code, stderr) = finish(sweep(path_str(&file), &[], &env));
    assert!(code <= 1, "{stderr}");
    assert_eq!(summary(&stderr), (OBJECTS, 0, 0), "{stderr}");

    let url = crate::pg::database();
    let workers: Vec<Sweep> = (0..4).map(|i| sweep(&url, &["--shard", &format!("{i}/4")], &env)).collect();
    let mut recorded = 0;
    for w in workers {
        let (code, stderr) = finish(w);
        assert!(code <= 1, "{stderr}");
        recorded += summary(&stderr).0;
    }
    assert_eq!(recorded, OBJECTS, "the shards together record every object once");
    let mut db = crate::pg::connect(&url);
    assert_eq!(count(&mut db, "SELECT count(*) FROM etcd_audit_audits"), OBJECTS as i64);
    assert_eq!(count(&mut db, "SELECT count(DISTINCT source) FROM etcd_audit_audits"), OBJECTS as i64);
    assert_eq!(count(&mut db, "SELECT count(*) FROM etcd_audit_claims"), 0, "every claim ended");
    assert_eq!(count(&mut db, "SELECT count(DISTINCT worker) FROM etcd_audit_audits"), 4);

    let (single, pg) = (answers(path_str(&file)), answers(&url));
    assert_eq!(single, pg, "the PostgreSQL catalog of four shards answers as one redb sweep's");
    // And both tell the truth the encoder wrote: 50 contents, 40 copies each;
    // the early hours still need the old key, the late ones only the new.
    let (records, retire) = pg;
    let truth = expected();
    assert_eq!(records.len(), truth.len());
    let mut needing_old = Vec::new();
    for (sha, (sources, keys)) in &records {
        assert_eq!(sources.len(), OBJECTS / truth.len(), "{sha}");
        let file = sources.first().unwrap().rsplit('/').next().unwrap();
        assert!(
            sources.iter().all(|s| s.ends_with(&format!("/{file}"))),
            "one content, one snapshot: {sources:?}"
        );
        let want: Vec<String> = truth[file].iter().cloned().collect();
        assert_eq!(keys, &want, "{file}");
        if truth[file].contains("aescbc:old") {
            needing_old.push(sha.clone());
        }
    }
    assert_eq!(retire[0], (1, needing_old), "can-retire aescbc:old");
    assert_eq!(retire[1].1.len(), records.len() - 15, "all but the hours before the rotation need new");
    assert_eq!(retire[2], (0, vec![]), "a key nobody used may go");
}

#[test]
fn overlapping_workers_never_audit_one_object_twice_and_a_killed_workers_objects_are_finished() {
    let s3 = s3();
    let env = s3.s3_env("endpoint");

    // Two unsharded sweeps of the same prefix at once: claims split the work.
    let url = crate::pg::database();
    let (a, b) = (sweep(&url, &[], &env), sweep(&url, &[], &env));
    let ((code_a, err_a), (code_b, err_b)) = (finish(a), finish(b));
    assert!(code_a <= 1 && code_b <= 1, "{err_a}\n{err_b}");
    let (sa, sb) = (summary(&err_a), summary(&err_b));
    assert_eq!(sa.0 + sb.0, OBJECTS, "{err_a}\n{err_b}");
    assert!(sa.0 > 0 && sb.0 > 0, "both did part of the work: {sa:?} {sb:?}");
    let mut db = crate::pg::connect(&url);
    assert_eq!(count(&mut db, "SELECT count(*) FROM etcd_audit_audits"), OBJECTS as i64, "no object twice");
    assert_eq!(count(&mut db, "SELECT count(DISTINCT source) FROM etcd_audit_audits"), OBJECTS as i64);

    // A worker killed half way: its claims outlive it for their lease, a
    // rerun meanwhile passes those objects over and does the rest, and the
    // next sweep after the lease takes them. Nothing is audited twice.
    let url = crate::pg::database();
    // Migrated first, so that the progress can be watched from the start.
    etcd_audit::catalog::Catalog::open(etcd_audit::catalog::Location::Postgres(url.clone())).unwrap();
    let lease = ["--claim-lease", "15s"];
    let victim = sweep(&url, &lease, &env);
    let pid = victim.0.as_ref().unwrap().id();
    let mut db = crate::pg::connect(&url);
    let deadline = Instant::now() + Duration::from_secs(300);
    while count(&mut db, "SELECT count(*) FROM etcd_audit_audits") < 300 {
        assert!(Instant::now() < deadline, "the first worker recorded too little");
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) of a child this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let _ = finish(victim);
    let done = count(&mut db, "SELECT count(*) FROM etcd_audit_audits") as usize;
    let held = count(&mut db, &format!("SELECT count(*) FROM etcd_audit_claims WHERE worker LIKE '%:{pid}'"));
    assert!(held > 0, "the killed worker held claims");

    let (code, stderr) = finish(sweep(&url, &lease, &env));
    assert!(code <= 1, "{stderr}");
    let (recorded, skipped, claimed) = summary(&stderr);
    assert_eq!(skipped, done, "what the killed worker recorded is not audited again: {stderr}");
    assert_eq!(claimed as i64, held, "its claimed objects are left alone while its lease runs: {stderr}");
    assert_eq!(recorded + skipped + claimed, OBJECTS);

    let deadline = Instant::now() + Duration::from_secs(60);
    while count(&mut db, "SELECT count(*) FROM etcd_audit_claims WHERE expires_at > now()") > 0 {
        assert!(Instant::now() < deadline, "the claims never expired");
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, stderr) = finish(sweep(&url, &lease, &env));
    assert!(code <= 1, "{stderr}");
    assert_eq!(summary(&stderr), (claimed, OBJECTS - claimed, 0), "the rerun finishes the rest: {stderr}");
    assert_eq!(count(&mut db, "SELECT count(*) FROM etcd_audit_audits"), OBJECTS as i64, "no object twice");
    assert_eq!(count(&mut db, "SELECT count(DISTINCT source) FROM etcd_audit_audits"), OBJECTS as i64);
    assert_eq!(count(&mut db, "SELECT count(*) FROM etcd_audit_claims"), 0);
}
