//! What a blob is, recognised by content (not by name, except Gardener's
//! LZW, which has no magic), and unwrapping it: compressed layers go to an
//! unlinked temporary file that is then mapped; archives to a temporary
//! directory. Every byte written counts against one budget per source.

mod archive;
mod decompress;
pub mod gardener;
mod trailer;

use std::path::Path;

pub use decompress::OnRead;
pub use trailer::{split_trailer, verify_trailer, Trailer};

use crate::source::Blob;

#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("not a recognized backup (no bbolt meta page, and not gzip, zlib, zstd, zip, tar or a Gardener snapshot)")]
    Unrecognized,
    #[error("{layer}: unpacked data exceeds --max-unpacked-bytes ({limit} bytes); raise the limit if this is no bomb")]
    TooLarge { layer: &'static str, limit: u64 },
    #[error("{layer}: {reason}")]
    Corrupt { layer: &'static str, reason: String },
    #[error("{layer}: refusing entry {name:?}: {reason}")]
    UnsafeEntry { layer: &'static str, name: String, reason: &'static str },
    #[error("containers nested more than {0} deep")]
    TooDeep(usize),
    #[error("temporary file: {0}")]
    Temp(#[from] std::io::Error),
}

/// The formats this module recognises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    EtcdSnapshot,
    Bbolt,
    Gzip,
    Zlib,
    Zstd,
    Lzw,
    Zip,
    Tar,
    GardenerDelta,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::EtcdSnapshot => "etcd-snapshot",
            Kind::Bbolt => "bbolt",
            Kind::Gzip => "gzip",
            Kind::Zlib => "zlib",
            Kind::Zstd => "zstd",
            Kind::Lzw => "lzw",
            Kind::Zip => "zip",
            Kind::Tar => "tar",
            Kind::GardenerDelta => "gardener-delta",
        }
    }
}

const BBOLT_MAGIC_LE: [u8; 4] = [0xED, 0xDA, 0x0C, 0xED];
const BBOLT_MAGIC_BE: [u8; 4] = [0xED, 0x0C, 0xDA, 0xED];

/// Recognises `bytes`; `name` (a file or entry name) only decides LZW.
pub fn sniff(bytes: &[u8], name: &str) -> Option<Kind> {
    let magic = bytes.get(16..20);
    if magic == Some(&BBOLT_MAGIC_LE) || magic == Some(&BBOLT_MAGIC_BE) {
        return Some(if split_trailer(bytes).1 { Kind::EtcdSnapshot } else { Kind::Bbolt });
    }
    match bytes {
        [0x1f, 0x8b, ..] => return Some(Kind::Gzip),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => return Some(Kind::Zstd),
        [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => return Some(Kind::Zip),
        [cmf, flg, ..] if cmf & 0x0f == 8 && (u16::from(*cmf) << 8 | u16::from(*flg)) % 31 == 0 => {
            return Some(Kind::Zlib)
        }
        _ => {}
    }
    if bytes.get(257..262) == Some(b"ustar") {
        return Some(Kind::Tar);
    }
    if name.ends_with(".Z") {
        return Some(Kind::Lzw);
    }
    if gardener::looks_like_delta(bytes) {
        return Some(Kind::GardenerDelta);
    }
    None
}

/// How much a source may unpack in total.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_unpacked_bytes: u64,
}

impl Default for Limits {
    /// Sized for an 8 GB etcd (the largest quota etcd recommends) plus headroom.
    fn default() -> Self {
        Limits { max_unpacked_bytes: 10 << 30 }
    }
}

/// What was inside.
pub enum Content {
    /// bbolt bytes, with or without a SHA-256 trailer.
    Database(Blob),
    /// A Gardener delta snapshot, decompressed.
    Delta(Blob),
    /// An unpacked archive: walk it like a local folder.
    Directory(tempfile::TempDir),
}

pub struct Unwrapped {
    /// Outermost first, e.g. `["zip", "etcd-snapshot"]`.
    pub chain: Vec<&'static str>,
    pub content: Content,
}

/// The most containers one backup may be nested in, archives inside
/// archives included.
pub const MAX_LAYERS: usize = 8;

/// Peels layers until a database, a delta snapshot or a directory remains.
/// `budget` is what this backup file may still unpack, shared by all its
/// layers and by everything inside an archive it holds; `outer` is how many
/// layers it is already inside of.
/// `on_read` hears how far each compressed layer or tar has been read.
pub fn unwrap(
    blob: Blob,
    name: &str,
    budget: &mut u64,
    outer: usize,
    on_read: OnRead,
) -> Result<Unwrapped, ContainerError> {
    let (mut blob, mut name, mut chain) = (blob, base_name(name), Vec::new());
    loop {
        if outer + chain.len() >= MAX_LAYERS {
            return Err(ContainerError::TooDeep(MAX_LAYERS));
        }
        let kind = sniff(blob.bytes(), &name).ok_or(ContainerError::Unrecognized)?;
        chain.push(kind.name());
        let next = match kind {
            Kind::EtcdSnapshot | Kind::Bbolt => {
                return Ok(Unwrapped { chain, content: Content::Database(blob) })
            }
            Kind::GardenerDelta => return Ok(Unwrapped { chain, content: Content::Delta(blob) }),
            Kind::Tar => {
                let dir = archive::untar(blob.bytes(), budget, on_read)?;
                return Ok(Unwrapped { chain, content: Content::Directory(dir) });
            }
            Kind::Zip => match archive::unzip(blob.bytes(), budget)? {
                archive::Unzipped::One(entry, inner) => {
                    name = base_name(&entry);
                    inner
                }
                archive::Unzipped::Many(dir) => {
                    return Ok(Unwrapped { chain, content: Content::Directory(dir) })
                }
            },
            compressed => {
                name = strip_suffix(&name);
                decompress::to_temp(compressed, blob.bytes(), budget, on_read)?
            }
        };
        blob = next;
    }
}

fn base_name(name: &str) -> String {
    Path::new(name).file_name().map_or_else(|| name.to_string(), |n| n.to_string_lossy().into_owned())
}

fn strip_suffix(name: &str) -> String {
    [".gz", ".zlib", ".zst", ".Z"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(name).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_by_content() {
        let mut bolt = vec![0u8; 4096];
        bolt[16..20].copy_from_slice(&BBOLT_MAGIC_LE);
        assert_eq!(sniff(&bolt, "x"), Some(Kind::Bbolt));
        bolt.extend_from_slice(&[0; 32]);
        assert_eq!(sniff(&bolt, "x"), Some(Kind::EtcdSnapshot));
        assert_eq!(sniff(&[0x1f, 0x8b, 8], "backup-1"), Some(Kind::Gzip));
        assert_eq!(sniff(&[0x78, 0x9c, 1], "x"), Some(Kind::Zlib));
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd], "x"), Some(Kind::Zstd));
        assert_eq!(sniff(b"PK\x03\x04rest", "renamed"), Some(Kind::Zip));
        assert_eq!(sniff(b"\x01\x02", "Full-00000000-00000010-1700000000.Z"), Some(Kind::Lzw));
        assert_eq!(sniff(b"hello", "notes.txt"), None);
    }
}
