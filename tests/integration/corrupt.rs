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
