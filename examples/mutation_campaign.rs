//! A structure-aware mutation campaign against the real binary: N inputs
//! made from real fixtures by the edits of `etcd_audit::fuzz` (page headers,
//! element headers, freelists and metas with resealed checksums; WAL frame
//! lengths, padding, bytes and types with a re-chained CRC), each audited by
//! `etcd-audit scan --history --residue` (and every fifth by `inspect`) in a
//! process of its own. Every run must exit 0, 1 or 2 within 10 s without a
//! panic; a run that does not is saved and reported.
//!
//! ```text
//! mutation_campaign BIN [N] [SEED]     (scripts/mutation-campaign.sh builds and runs it)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use etcd_audit::fuzz::{mutate_bolt, mutate_wal};

const LIMIT: Duration = Duration::from_secs(10);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Runs one audit; `None` when it had to be killed at the limit.
fn audit(bin: &Path, args: &[&str], source: &Path) -> (Option<i32>, Duration, String) {
    let start = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .arg(source)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run etcd-audit");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || std::io::read_to_string(stderr).unwrap_or_default());
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status.code().unwrap_or(-1));
        }
        if start.elapsed() > LIMIT {
            child.kill().ok();
            child.wait().ok();
            break None;
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    (code, start.elapsed(), reader.join().unwrap())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let bin = PathBuf::from(args.get(1).expect("usage: mutation_campaign BIN [N] [SEED]"));
    let n: usize = args.get(2).map_or(5000, |a| a.parse().expect("N"));
    let mut rng = Rng(args.get(3).map_or(0x5eed_e7cd, |a| a.parse().expect("SEED")));
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let testdata = root.join("testdata");
    let seeds: Vec<Vec<u8>> =
        ["etcd35-scan.snapshot.db", "etcd35-forensics.member.db", "etcd35-openshift.snapshot.db"]
            .iter()
            .map(|f| std::fs::read(testdata.join(f)).unwrap())
            .collect();
    let datadir = testdata.join("etcd35-forensics-datadir/member");
    let wal_name = std::fs::read_dir(datadir.join("wal")).unwrap().next().unwrap().unwrap().file_name();
    let wal_seed = std::fs::read(datadir.join("wal").join(&wal_name)).unwrap();
    let configs = ["-c", "testdata/scan/config-current.yaml", "-c", "testdata/scan/config-old.yaml"]
        .map(|a| if a.starts_with("testdata") { root.join(a).display().to_string() } else { a.to_string() });
    let mut scan: Vec<&str> = vec!["scan", "--format", "json", "--history", "--residue"];
    scan.extend(configs.iter().map(String::as_str));

    let work = tempfile::tempdir().unwrap();
    let saved = root.join("fuzz/regressions/campaign");
    let (mut codes, mut slowest, mut bad) = (BTreeMap::<String, usize>::new(), Duration::ZERO, 0);
    for i in 0..n {
        let len = 16 + (rng.next() % 240) as usize;
        let edits = rng.bytes(len);
        let (source, kind) = if i % 10 < 7 {
            let seed = &seeds[(rng.next() % seeds.len() as u64) as usize];
            let path = work.path().join("mutated.db");
            std::fs::write(&path, mutate_bolt(seed, &edits)).unwrap();
            (path, "bolt")
        } else {
            let dir = work.path().join("datadir/member");
            std::fs::create_dir_all(dir.join("snap")).unwrap();
            std::fs::create_dir_all(dir.join("wal")).unwrap();
            std::fs::copy(datadir.join("snap/db"), dir.join("snap/db")).unwrap();
            std::fs::write(dir.join("wal").join(&wal_name), mutate_wal(&wal_seed, &edits)).unwrap();
            (work.path().join("datadir"), "wal")
        };
        let mut runs = vec![audit(&bin, &scan, &source)];
        if i % 5 == 0 {
            runs.push(audit(&bin, &["inspect", "--format", "json"], &source));
        }
        for (code, took, stderr) in runs {
            slowest = slowest.max(took);
            let ok = matches!(code, Some(0..=2)) && !stderr.contains("panicked");
            *codes.entry(code.map_or("killed".into(), |c| c.to_string())).or_default() += 1;
            if !ok {
                bad += 1;
                std::fs::create_dir_all(&saved).unwrap();
                let keep = saved.join(format!("{kind}-{i}"));
                if source.is_dir() {
                    std::fs::write(&keep, mutate_wal(&wal_seed, &edits)).unwrap();
                } else {
                    std::fs::copy(&source, &keep).unwrap();
                }
                eprintln!(
                    "input {i} ({kind}): exit {code:?} after {took:?}, saved as {}\n{stderr}",
                    keep.display()
                );
            }
        }
    }
    println!("{n} inputs: exit codes {codes:?}, slowest run {slowest:?}, {bad} runs outside exit 0/1/2 within 10 s");
    std::process::exit(i32::from(bad > 0));
}
