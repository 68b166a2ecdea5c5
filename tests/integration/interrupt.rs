//! Interrupts against a real process: SIGINT or SIGTERM while a large tar
//! unpacks stops the run at once, removes every temporary copy of the backup,
//! and exits 130 / 143 with one line; after SIGKILL the next run removes what
//! the killed one left.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::*;

/// A tar holding one file of `mib` MiB of zeros, written sparse (it takes no
/// disk space), so unpacking it writes for a while.
pub fn slow_tar(path: &Path, mib: u64) {
    let mut header = tar::Header::new_gnu();
    header.set_path("zeros.bin").unwrap();
    header.set_size(mib << 20);
    header.set_mode(0o644);
    header.set_cksum();
    let mut out = std::fs::File::create(path).unwrap();
    out.write_all(header.as_bytes()).unwrap();
    out.set_len(512 + (mib << 20) + 1024).unwrap();
}

fn spawn_scan(source: &Path, tmp: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_etcd-audit"))
        .args(["scan", "--format", "json", "--max-unpacked-bytes", "100G"])
        .arg(source)
        .env("TMPDIR", tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Bytes under `dir`, recursively (unlinked files are not counted: they are gone).
fn bytes_under(dir: &Path) -> u64 {
    std::fs::read_dir(dir).map_or(0, |rd| {
        rd.flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => bytes_under(&e.path()),
                _ => e.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}

/// Waits (a harness guard, not a timing assertion) until the unpacking has
/// written a few MiB into the scratch folder.
fn wait_for_unpacking(child: &mut Child, tmp: &Path) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while bytes_under(tmp) < 8 << 20 {
        assert!(child.try_wait().unwrap().is_none(), "the scan ended before it was interrupted");
        assert!(Instant::now() < deadline, "nothing was unpacked");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn finish(mut child: Child) -> (i32, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "etcd-audit did not stop");
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// A scan unpacking a large tar into a scratch folder of its own (`tmp`),
/// caught in the act; `dir` holds the tar.
struct Unpacking {
    dir: tempfile::TempDir,
    tmp: tempfile::TempDir,
    child: Child,
}

fn unpacking() -> Unpacking {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("big.tar");
    slow_tar(&source, 4096);
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn_scan(&source, tmp.path());
    wait_for_unpacking(&mut child, tmp.path());
    Unpacking { dir, tmp, child }
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
}

#[test]
fn sigint_and_sigterm_leave_no_temporary_copies() {
    for (signal, code, name) in [("-INT", 130, "SIGINT"), ("-TERM", 143, "SIGTERM")] {
        let Unpacking { dir: _dir, tmp, child } = unpacking();
        assert!(!entries(tmp.path()).is_empty());
        Command::new("kill").args([signal, &child.id().to_string()]).status().unwrap();
        let (got, stderr) = finish(child);
        assert_eq!(got, code, "{stderr}");
        assert!(stderr.contains(&format!("interrupted by {name}")), "{stderr}");
        assert_eq!(entries(tmp.path()), Vec::<String>::new(), "left behind after {name}");
    }
}

/// The reader of its stderr is gone (a closed pipe, as when the caller was
/// killed first): SIGTERM still stops it, cleans up and exits 143.
#[test]
fn sigterm_stops_a_run_whose_stderr_is_closed() {
    let Unpacking { dir: _dir, tmp, mut child } = unpacking();
    drop(child.stderr.take());
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let (got, _) = finish(child);
    assert_eq!(got, 143);
    assert_eq!(entries(tmp.path()), Vec::<String>::new(), "left behind");
}

#[test]
fn after_sigkill_the_next_run_removes_what_was_left() {
    let Unpacking { dir: _dir, tmp, mut child } = unpacking();
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    assert!(bytes_under(tmp.path()) >= 8 << 20, "SIGKILL left the unpacked copy");
    let next = Command::new(env!("CARGO_BIN_EXE_etcd-audit"))
        .args(["inspect"])
        .arg(testdata("etcd35-scan.snapshot.db"))
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert_eq!(next.status.code(), Some(0));
    assert_eq!(entries(tmp.path()), Vec::<String>::new());
}
