//! Scratch space: where downloads, decompressed layers and unpacked archives
//! go. They hold full copies of backups (every Secret in them), so:
//!
//! - all of one run's scratch lives in one folder, `$TMPDIR/etcd-audit-<pid>-<random>`,
//!   mode 0700 (files 0600), made on first use;
//! - files are unlinked as soon as they are created (only the open handle
//!   and its map keep them), folders are removed when dropped;
//! - [`cleanup`] removes the whole folder: the binary calls it when SIGINT or
//!   SIGTERM arrives, before it exits;
//! - a run killed with SIGKILL cannot clean up after itself: the next run
//!   removes folders of processes that no longer exist ([`remove_stale`]).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

const PREFIX: &str = "etcd-audit-";

static RUN_DIR: OnceLock<Mutex<Option<PathBuf>>> = OnceLock::new();

fn slot() -> &'static Mutex<Option<PathBuf>> {
    RUN_DIR.get_or_init(|| Mutex::new(None))
}

/// This run's scratch folder, made (mode 0700) on first use.
fn run_dir() -> std::io::Result<PathBuf> {
    let mut slot = slot().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = slot.as_ref().filter(|d| d.is_dir()) {
        return Ok(dir.clone());
    }
    let dir = tempfile::Builder::new()
        .prefix(&format!("{PREFIX}{}-", std::process::id()))
        .permissions(private())
        .tempdir()?
        .keep();
    *slot = Some(dir.clone());
    Ok(dir)
}

/// An unlinked temporary file (0600) in this run's scratch folder.
pub fn file() -> std::io::Result<File> {
    tempfile::tempfile_in(run_dir()?)
}

/// A temporary folder (0700) in this run's scratch folder, removed when dropped.
pub fn dir() -> std::io::Result<tempfile::TempDir> {
    tempfile::Builder::new().prefix("unpacked-").permissions(private()).tempdir_in(run_dir()?)
}

fn private() -> std::fs::Permissions {
    use std::os::unix::fs::PermissionsExt;
    std::fs::Permissions::from_mode(0o700)
}

/// Removes this run's scratch folder and all it holds. Safe to call at any
/// time, from any thread (a signal handler thread included); the next use
/// makes a new folder.
pub fn cleanup() {
    let mut slot = slot().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(dir) = slot.take() {
        // Another thread may be writing into it: try a few times.
        for _ in 0..5 {
            if std::fs::remove_dir_all(&dir).is_ok() || !dir.exists() {
                break;
            }
        }
    }
}

/// Removes the scratch folders that runs killed before they could clean up
/// left in `tmp` (their process no longer exists). Returns how many.
pub fn remove_stale(tmp: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(tmp) else { return 0 };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next().and_then(|p| p.parse::<u32>().ok()))
        else {
            continue;
        };
        let ours = entry.file_type().is_ok_and(|t| t.is_dir()) && owned_by_us(&entry.path());
        if ours
            && !Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_dir_all(entry.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

fn owned_by_us(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: getuid has no preconditions.
    std::fs::symlink_metadata(path).is_ok_and(|m| m.uid() == unsafe { libc::getuid() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_folders_of_dead_processes_go_and_live_ones_stay() {
        let tmp = tempfile::tempdir().unwrap();
        // No process has pid 4194304 (above Linux's pid_max limit).
        let dead = tmp.path().join(format!("{PREFIX}4194304-abc"));
        let live = tmp.path().join(format!("{PREFIX}{}-abc", std::process::id()));
        let other = tmp.path().join("unrelated-4194304");
        for d in [&dead, &live, &other] {
            std::fs::create_dir_all(d.join("unpacked-x")).unwrap();
            std::fs::write(d.join("unpacked-x/db"), b"secret").unwrap();
        }
        assert_eq!(remove_stale(tmp.path()), 1);
        assert!(!dead.exists() && live.exists() && other.exists());
    }

    #[test]
    fn scratch_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = dir().unwrap();
        assert_eq!(std::fs::metadata(d.path()).unwrap().permissions().mode() & 0o777, 0o700);
        let parent = d.path().parent().unwrap().to_path_buf();
        assert_eq!(std::fs::metadata(&parent).unwrap().permissions().mode() & 0o777, 0o700);
        assert!(parent.file_name().unwrap().to_str().unwrap().starts_with(PREFIX));
    }
}
