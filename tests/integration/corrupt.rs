//! Damaged and hostile files: each must give the right exit code and a clear
//! message, never a panic or a hang.

use crate::util::*;
use etcd_audit::audit::{self, Backup, Input, Judge, ScanOptions, Scope};
use etcd_audit::bolt::{BucketRoot, Db};

/// The bbolt bytes of a real etcd 3.5 snapshot (trailer removed).
fn base() -> Vec<u8> {
    let mut bytes = std::fs::read(testdata("etcd35-basic.snapshot.db")).unwrap();
    bytes.truncate(bytes.len() - 32);
    bytes
}

fn inspect_bytes(bytes: &[u8]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("damaged.db");
    std::fs::write(&path, bytes).unwrap();
    run(&["inspect", "--format", "json", path_str(&path)])
}

fn u64_le(b: &[u8], off: usize) -> u64 {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap())
}

const PS: usize = 4096;

/// The page id of the `key` bucket's root (a branch page in this fixture).
fn key_bucket_root(bytes: &[u8]) -> u64 {
    let db = Db::open(bytes).unwrap();
    let root = db.page(db.meta().root).unwrap();
    let item = root.leaf_items().map(Result::unwrap).find(|i| i.key == b"key").unwrap();
    match BucketRoot::from_value(item.value).unwrap() {
        BucketRoot::Page(id) => id,
        BucketRoot::Inline(_) => panic!("fixture key bucket should not be inline"),
    }
}

#[test]
fn both_metas_invalid_is_exit_2() {
    let mut b = base();
    b[72] ^= 0xff;
    b[PS + 72] ^= 0xff;
    let r = inspect_bytes(&b);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("both meta pages are invalid"), "{}", r.stderr);
}

#[test]
fn one_invalid_meta_is_an_integrity_error() {
    let mut b = base();
    b[64] ^= 0x01; // txid of meta 0 no longer matches its checksum
    let r = inspect_bytes(&b);
    assert_eq!(r.code, 1);
    let i = &r.json()["backups"][0]["integrity"];
    assert_eq!(i["meta"][0]["valid"], false);
    assert_eq!(i["meta"][0]["error"], "checksum error");
    assert_eq!(i["meta"][1]["valid"], true);
}

#[test]
fn truncated_below_high_water_mark_is_exit_2() {
    let b = base();
    let r = inspect_bytes(&b[..b.len() / 2]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("truncated"), "{}", r.stderr);
}

#[test]
fn random_bytes_are_not_bbolt() {
    let mut rng = Rng(7);
    let b: Vec<u8> = (0..65536).map(|_| rng.next() as u8).collect();
    let r = inspect_bytes(&b);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("not a recognized backup"), "{}", r.stderr);
}

#[test]
fn big_endian_files_are_refused() {
    let mut b = base();
    for meta in [16, PS + 16] {
        b[meta..meta + 4].copy_from_slice(&[0xED, 0x0C, 0xDA, 0xED]);
    }
    let r = inspect_bytes(&b);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("big-endian"), "{}", r.stderr);
}

#[test]
fn a_page_cycle_is_reported_not_followed() {
    let mut b = base();
    let root = key_bucket_root(&b) as usize;
    assert_eq!(u16::from_le_bytes([b[root * PS + 8], b[root * PS + 9]]), 0x01, "key bucket root is a branch");
    // Point the branch's first child at the branch itself.
    let child = root * PS + 16 + 8;
    b[child..child + 8].copy_from_slice(&(root as u64).to_le_bytes());
    let r = inspect_bytes(&b);
    assert_eq!(r.code, 1);
    let errors = r.json()["backups"][0]["integrity"]["bbolt_errors"].to_string();
    assert!(errors.contains(&format!("page {root}: multiple references")), "{errors}");
}

#[test]
fn absurd_counts_and_overflow_are_bounded() {
    let b = base();
    let root = key_bucket_root(&b) as usize;
    let first_leaf = u64_le(&b, root * PS + 16 + 8) as usize;
    for (off, value) in [(10, &[0xfe, 0xff][..]), (12, &[0xff, 0xff, 0xff, 0xff][..])] {
        let mut b = b.clone();
        b[first_leaf * PS + off..first_leaf * PS + off + value.len()].copy_from_slice(value);
        let r = inspect_bytes(&b);
        assert_eq!(r.code, 1, "{}", r.stdout);
        assert!(r.json()["backups"][0]["integrity"]["bbolt_errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e.as_str().unwrap().starts_with(&format!("page {first_leaf}"))));
    }
}

#[test]
fn scrambled_pages_never_panic() {
    let b = base();
    let hwm = u64_le(&b, 56) as usize;
    let mut rng = Rng(99);
    for _ in 0..20 {
        let mut b = b.clone();
        for _ in 0..8 {
            let page = 2 + rng.below(hwm - 2);
            for byte in &mut b[page * PS..page * PS + 64] {
                *byte = rng.next() as u8;
            }
        }
        let r = inspect_bytes(&b);
        assert!(r.code == 1 || r.code == 2, "exit {}: {}", r.code, r.stderr);
    }
}

/// Thousands of random byte flips through the whole library pipeline, in
/// process: any panic fails the test.
#[test]
fn random_mutations_through_inspect_and_scan() {
    let b = base();
    let judge = Judge::new(vec![], vec![]);
    let scope = Scope::new(["*.*"], &[]);
    let mut rng = Rng(0x5eed);
    for round in 0..400 {
        let mut m = b.clone();
        for _ in 0..1 + rng.below(16) {
            let at = rng.below(m.len());
            m[at] = rng.next() as u8;
        }
        if round % 50 == 0 {
            m.truncate(rng.below(m.len()));
        }
        if let Ok(backup) = Backup::open(&m) {
            let _ = audit::inspect(&backup, vec![]);
            let _ = audit::scan(
                Input::Bolt { backup: &backup, wal: None },
                vec![],
                &judge,
                &scope,
                &ScanOptions { history: true, residue: true, ..Default::default() },
            );
        }
    }
}

/// bbolt's meta checksum: FNV-1a 64 over the 56 bytes before it.
fn reseal_meta(b: &mut [u8], page: usize) {
    let at = page * PS + 16;
    let mut h: u64 = 0xcbf29ce484222325;
    for &byte in &b[at..at + 56] {
        h ^= u64::from(byte);
        h = h.wrapping_mul(0x100000001b3);
    }
    b[at + 56..at + 64].copy_from_slice(&h.to_le_bytes());
}

/// A damaged reference must not hide good data: a meta that names a leaf
/// of the `key` bucket as the freelist is an integrity error, and every key
/// on that leaf is still audited.
#[test]
fn a_freelist_pointing_at_a_leaf_hides_no_keys() {
    let good = base();
    let leaf = {
        let db = Db::open(&good).unwrap();
        let layout = db.layout();
        layout.bucket(b"key").unwrap().leaves[0].page.id
    };
    let mut bad = good.clone();
    for meta in 0..2 {
        bad[meta * PS + 48..meta * PS + 56].copy_from_slice(&leaf.to_le_bytes());
        reseal_meta(&mut bad, meta);
    }
    let dir = tempfile::tempdir().unwrap();
    let scan = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        run(&["scan", "--format", "json", "--resources", "*.*", path_str(&path)])
    };
    let (before, after) = (scan("good.db", &good), scan("bad.db", &bad));
    assert_eq!(after.code, 1, "{}", after.stderr);
    let keys = |r: &Run| -> Vec<String> {
        let doc = r.json();
        doc["backups"][0]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap().into())
            .collect()
    };
    assert!(!keys(&before).is_empty());
    assert_eq!(keys(&after), keys(&before), "keys on the leaf named as freelist were lost");
    let errors = after.json()["backups"][0]["integrity"]["bbolt_errors"].clone();
    let said = format!("page {leaf}: named as the freelist, but a bucket tree reaches it");
    assert!(errors.as_array().unwrap().iter().any(|e| e == said.as_str()), "{errors}");
}

/// A file with a problem on every page keeps a thousand of them and counts the rest.
#[test]
fn problems_are_capped_and_counted() {
    let mut b = base();
    // A new freelist page (with overflow pages) after the high-water mark,
    // listing 3000 pages beyond it: one problem each.
    let hwm = u64_le(&b, 56) as usize;
    const N: usize = 3000;
    let span = (16 + 8 * (N + 1)).div_ceil(PS);
    b.resize((hwm + span) * PS, 0);
    let at = hwm * PS;
    b[at..at + 8].copy_from_slice(&(hwm as u64).to_le_bytes());
    b[at + 8..at + 10].copy_from_slice(&0x10u16.to_le_bytes());
    b[at + 10..at + 12].copy_from_slice(&0xFFFFu16.to_le_bytes());
    b[at + 12..at + 16].copy_from_slice(&(span as u32 - 1).to_le_bytes());
    b[at + 16..at + 24].copy_from_slice(&(N as u64).to_le_bytes());
    for i in 0..N {
        let id = (hwm + span + 1 + i) as u64;
        b[at + 24 + i * 8..at + 32 + i * 8].copy_from_slice(&id.to_le_bytes());
    }
    for meta in 0..2 {
        b[meta * PS + 48..meta * PS + 56].copy_from_slice(&(hwm as u64).to_le_bytes());
        b[meta * PS + 56..meta * PS + 64].copy_from_slice(&((hwm + span) as u64).to_le_bytes());
        reseal_meta(&mut b, meta);
    }
    let r = inspect_bytes(&b);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let integrity = &r.json()["backups"][0]["integrity"];
    let total = integrity["bbolt_errors_total"].as_u64().unwrap();
    assert!(total >= N as u64, "{total}");
    let kept = integrity["bbolt_errors"].as_array().unwrap();
    assert_eq!(kept.len(), 1000);
    assert!(kept[0].as_str().unwrap().contains("freed page beyond the high-water mark"), "{}", kept[0]);
}

/// `--salvage`: both metas destroyed, the file does not open; carving its
/// leaf pages still audits every key, and the report says it was salvaged.
#[test]
fn salvage_reads_a_file_whose_metas_are_gone() {
    let good = std::fs::read(testdata("etcd35-scan.snapshot.db")).unwrap();
    let mut bad = good.clone();
    bad[20..2 * PS].fill(0xAB); // both metas (page 0 keeps its magic: still a bbolt file)
    let dir = tempfile::tempdir().unwrap();
    let (good_path, bad_path) = (dir.path().join("good.db"), dir.path().join("bad.db"));
    std::fs::write(&good_path, &good).unwrap();
    std::fs::write(&bad_path, &bad).unwrap();
    let cfg = [
        "-c".to_string(),
        path_str(&testdata("scan/config-current.yaml")).to_string(),
        "-c".to_string(),
        path_str(&testdata("scan/config-old.yaml")).to_string(),
    ];
    let scan = |path: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["scan", "--format", "json"];
        args.extend(cfg.iter().map(String::as_str));
        args.extend_from_slice(extra);
        args.push(path_str(path));
        run(&args)
    };
    let refused = scan(&bad_path, &[]);
    assert_eq!(refused.code, 2, "{}", refused.stderr);
    let salvaged = scan(&bad_path, &["--salvage"]);
    assert_eq!(salvaged.code, 1, "{}", salvaged.stderr);
    let (want, got) = (scan(&good_path, &[]).json(), salvaged.json());
    let verdicts = |doc: &serde_json::Value| -> Vec<(String, String)> {
        doc["backups"][0]["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["key"].as_str().unwrap().to_string(), e["class"].as_str().unwrap().to_string()))
            .collect()
    };
    assert!(!verdicts(&want).is_empty());
    assert_eq!(verdicts(&got), verdicts(&want), "salvage lost or changed entries");
    let integrity = &got["backups"][0]["integrity"];
    assert_eq!(integrity["salvaged"], true);
    assert_eq!(integrity["ok"], false);
    assert!(integrity["notes"][0].as_str().unwrap().starts_with("salvaged: "), "{integrity}");
    assert_eq!(want["backups"][0]["integrity"]["salvaged"], false);
    let table = run(&["scan", "--salvage", path_str(&bad_path)]);
    assert!(table.stdout.contains("SALVAGED"), "{}", table.stdout);

    // The first page gone entirely (no magic): no container recognises the
    // file, and --salvage still carves it (page size found by self-indexed pages).
    let mut headless = good.clone();
    headless[..PS].fill(0);
    let headless_path = dir.path().join("headless.db");
    std::fs::write(&headless_path, &headless).unwrap();
    assert_eq!(scan(&headless_path, &[]).code, 2);
    let salvaged = scan(&headless_path, &["--salvage"]);
    assert_eq!(salvaged.code, 1, "{}", salvaged.stderr);
    let got = salvaged.json();
    assert_eq!(verdicts(&got), verdicts(&want), "salvage lost or changed entries");
    assert_eq!(got["backups"][0]["container"], serde_json::json!(["unrecognized"]));
}

/// A database over etcd's default 2 GiB quota (a sparse file: the high-water
/// mark raised past 2 GiB) restores but alarms NOSPACE: `restore-quota` says
/// by how much to raise --quota-backend-bytes.
#[test]
fn a_database_over_the_default_quota_says_so() {
    let mut b = base();
    let pages = (2u64 << 30) / PS as u64 + 16;
    for meta in 0..2 {
        b[meta * PS + 56..meta * PS + 64].copy_from_slice(&pages.to_le_bytes());
        reseal_meta(&mut b, meta);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.db");
    std::fs::write(&path, &b).unwrap();
    std::fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(pages * PS as u64).unwrap();
    let r = run(&["scan", "--format", "json", path_str(&path)]);
    let doc = r.json();
    let f = doc["backups"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["code"] == "restore-quota")
        .cloned();
    let f = f.unwrap_or_else(|| panic!("no restore-quota in {}", doc["backups"][0]["findings"]));
    assert_eq!(f["severity"], "medium");
    assert!(f["message"].as_str().unwrap().contains(&format!("at least {}", pages * PS as u64)), "{f}");
    let small = run(&["scan", "--format", "json", path_str(&testdata("etcd35-scan.snapshot.db"))]);
    assert!(!finding_codes(&small.json()["backups"][0]).contains(&"restore-quota".to_string()));
}
