//! Where backup bytes come from: local files (memory-mapped read-only) and
//! directories (an etcd data dir, a k3s/rke2 server dir, or any folder of
//! backups, walked recursively).

use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

pub mod live;
pub mod remote;
pub mod scratch;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// Shown after the URL the report already names.
    #[error("{reason}")]
    Remote { url: String, reason: String },
    #[error("{path}: not a regular file or directory ({kind})")]
    NotRegular { path: String, kind: &'static str },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> SourceError + '_ {
    move |source| SourceError::Io { path: path.display().to_string(), source }
}

/// A read-only view of one file's bytes (a source file, or a temporary file
/// that an unpacked container was written to).
pub struct Blob {
    map: Option<Mmap>,
}

impl Blob {
    /// Maps a local file read-only. The map is never written through; if another
    /// process truncates the file while we read it, the kernel may signal us, as
    /// with any mmap-based reader, so audit copies, not files still being written.
    pub fn open(path: &Path) -> Result<Blob, SourceError> {
        let file = File::open(path).map_err(io_error(path))?;
        Blob::map(&file).map_err(io_error(path))
    }

    pub fn map(file: &File) -> std::io::Result<Blob> {
        // A zero-length file cannot be mapped; it is simply empty.
        let map = if file.metadata()?.len() == 0 { None } else { Some(unsafe { Mmap::map(file) }?) };
        Ok(Blob { map })
    }

    /// A read-only copy of `bytes` in anonymous memory (tests and fuzzing).
    pub fn copy_of(bytes: &[u8]) -> std::io::Result<Blob> {
        if bytes.is_empty() {
            return Ok(Blob { map: None });
        }
        let mut map = memmap2::MmapMut::map_anon(bytes.len())?;
        map.copy_from_slice(bytes);
        Ok(Blob { map: Some(map.make_read_only()?) })
    }

    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// Something a source holds that may be a backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Found {
    /// A file: a snapshot, a db copy, or a container holding one.
    File(PathBuf),
    /// An etcd data dir: its `member/snap/db` and `member/wal/*.wal`.
    DataDir(PathBuf),
}

impl Found {
    pub fn path(&self) -> &Path {
        match self {
            Found::File(p) | Found::DataDir(p) => p,
        }
    }
}

/// What a path holds, in a stable order: a file is itself; a directory that
/// holds `member/snap/db` is a data dir; any other directory is walked.
pub fn discover(path: &Path) -> Result<Vec<Found>, SourceError> {
    let mut found = Vec::new();
    walk(path, &mut found, 0)?;
    Ok(found)
}

const MAX_DEPTH: usize = 32;

fn walk(path: &Path, found: &mut Vec<Found>, depth: usize) -> Result<(), SourceError> {
    // A path the user named is followed if it is a symlink (a loop is an
    // error); symlinks inside a walked folder are not: they can loop or escape.
    let meta = if depth == 0 { std::fs::metadata(path) } else { std::fs::symlink_metadata(path) };
    let meta = meta.map_err(io_error(path))?;
    if meta.is_file() {
        found.push(Found::File(path.to_path_buf()));
        return Ok(());
    }
    if !meta.is_dir() {
        // Devices, FIFOs and sockets are no backups (and reading one may never end).
        return match depth {
            0 => Err(SourceError::NotRegular { path: path.display().to_string(), kind: kind_of(&meta) }),
            _ => Ok(()),
        };
    }
    if depth > MAX_DEPTH {
        return Ok(());
    }
    if path.join("member/snap/db").is_file() {
        found.push(Found::DataDir(path.to_path_buf()));
        return Ok(());
    }
    // k3s sidecars describe the snapshots beside them; they are no backups.
    if depth > 0 && path.file_name().is_some_and(|n| n == ".metadata") {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> =
        std::fs::read_dir(path).map_err(io_error(path))?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    for entry in entries {
        walk(&entry, found, depth + 1)?;
    }
    Ok(())
}

fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a file"
    }
}

/// The database and WAL segments of a data dir. WAL names are
/// `%016x-%016x.wal`, so sorting by name is sequence order.
pub fn data_dir(dir: &Path) -> Result<(PathBuf, Vec<PathBuf>), SourceError> {
    let wal_dir = dir.join("member/wal");
    let mut segments: Vec<PathBuf> = match std::fs::read_dir(&wal_dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "wal"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => vec![],
        Err(e) => return Err(io_error(&wal_dir)(e)),
    };
    segments.sort();
    Ok((dir.join("member/snap/db"), segments))
}
