//! Where backup bytes come from. Local files are memory-mapped read-only.

use std::fs::File;
use std::path::Path;

use memmap2::Mmap;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}: is a directory (directories are not supported yet)")]
    Directory(String),
}

/// A read-only view of one source's bytes.
pub struct SourceBytes {
    pub name: String,
    map: Option<Mmap>,
}

impl SourceBytes {
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }
}

/// Maps a local file read-only. The map is never written through; if another
/// process truncates the file while we read it, the kernel may signal us, as
/// with any mmap-based reader, so audit copies, not files still being written.
pub fn open_file(path: &Path) -> Result<SourceBytes, SourceError> {
    let name = path.display().to_string();
    let io = |source| SourceError::Io {
        path: name.clone(),
        source,
    };
    let file = File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.is_dir() {
        return Err(SourceError::Directory(name));
    }
    // A zero-length file cannot be mapped; it is simply empty.
    let map = if meta.len() == 0 {
        None
    } else {
        Some(unsafe { Mmap::map(&file) }.map_err(io)?)
    };
    Ok(SourceBytes { name, map })
}
