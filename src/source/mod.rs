//! Where backup bytes come from. Local files are memory-mapped read-only;
//! a directory is an etcd data dir (its `member/snap/db` and `member/wal`).

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{0}: a directory without an etcd database (looked for member/snap/db and server/db/etcd/member/snap/db)")]
    NoDatabase(String),
}

/// A read-only view of one file's bytes.
pub struct SourceBytes {
    pub name: String,
    map: Option<Mmap>,
}

impl SourceBytes {
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// One backup to audit: the database, and the WAL segments when the source
/// is a data dir.
pub struct Input {
    pub db: SourceBytes,
    /// `None` when the source has no WAL (a snapshot file).
    pub wal: Option<Vec<SourceBytes>>,
}

/// Opens a file, or a data dir: `<dir>/member`, or k3s/rke2's
/// `<dir>/server/db/etcd/member`.
pub fn open(path: &Path) -> Result<Input, SourceError> {
    if !path.is_dir() {
        return Ok(Input { db: open_file(path)?, wal: None });
    }
    let member = [path.join("member"), path.join("server/db/etcd/member")]
        .into_iter()
        .find(|m| m.join("snap/db").is_file())
        .ok_or_else(|| SourceError::NoDatabase(path.display().to_string()))?;
    let db = open_file(&member.join("snap/db"))?;
    let wal = wal_segments(&member.join("wal"))?.iter().map(|p| open_file(p)).collect::<Result<_, _>>()?;
    Ok(Input { db, wal: Some(wal) })
}

/// `*.wal` in sequence order (the names are `%016x-%016x.wal`, so names sort).
fn wal_segments(dir: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let io = |source| SourceError::Io { path: dir.display().to_string(), source };
    if !dir.is_dir() {
        return Ok(vec![]);
    }
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segments.sort();
    Ok(segments)
}

/// Maps a local file read-only. The map is never written through; if another
/// process truncates the file while we read it, the kernel may signal us, as
/// with any mmap-based reader, so audit copies, not files still being written.
pub fn open_file(path: &Path) -> Result<SourceBytes, SourceError> {
    let name = path.display().to_string();
    let io = |source| SourceError::Io { path: name.clone(), source };
    let file = File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    // A zero-length file cannot be mapped; it is simply empty.
    let map = if len == 0 { None } else { Some(unsafe { Mmap::map(&file) }.map_err(io)?) };
    Ok(SourceBytes { name, map })
}
