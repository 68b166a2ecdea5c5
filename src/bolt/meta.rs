//! Meta pages (bbolt internal/common/meta.go) and page-size detection (db.go).

use super::page::{u32_at, u64_at, Pgid};

pub const MAGIC: u32 = 0xED0C_DAED;
/// The magic as a little-endian reader sees a big-endian (s390x) file.
pub const MAGIC_SWAPPED: u32 = MAGIC.swap_bytes();
pub const VERSION: u32 = 2;
/// `meta.freelist` when the freelist is not synced to disk (etcd on Linux).
pub const PGID_NO_FREELIST: Pgid = u64::MAX;

const META_OFFSET: usize = 16;
const META_CHECKSUMMED_LEN: usize = 56;
const MIN_PAGE_SIZE: u32 = 1024;
const MAX_PAGE_SIZE: u32 = 16 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Meta {
    pub magic: u32,
    pub version: u32,
    pub page_size: u32,
    pub flags: u32,
    pub root: Pgid,
    pub root_sequence: u64,
    pub freelist: Pgid,
    pub pgid: Pgid,
    pub txid: u64,
    pub checksum: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MetaError {
    #[error("meta page is beyond the end of the file")]
    Missing,
    #[error("invalid magic {0:#010x}")]
    Magic(u32),
    #[error("big-endian meta page (made on s390x)")]
    BigEndian,
    #[error("version mismatch: {0}")]
    Version(u32),
    #[error("checksum error")]
    Checksum,
    #[error("invalid page size {0}")]
    PageSize(u32),
}

impl Meta {
    /// Decodes the meta at the start of `page` without validating it.
    pub fn decode(page: &[u8]) -> Option<Meta> {
        let m = page.get(META_OFFSET..META_OFFSET + 64)?;
        Some(Meta {
            magic: u32_at(m, 0)?,
            version: u32_at(m, 4)?,
            page_size: u32_at(m, 8)?,
            flags: u32_at(m, 12)?,
            root: u64_at(m, 16)?,
            root_sequence: u64_at(m, 24)?,
            freelist: u64_at(m, 32)?,
            pgid: u64_at(m, 40)?,
            txid: u64_at(m, 48)?,
            checksum: u64_at(m, 56)?,
        })
    }

    /// Decodes and validates in bbolt's order: magic, version, checksum;
    /// then the page size, which bbolt does not check.
    pub fn read(page: &[u8]) -> Result<Meta, MetaError> {
        let meta = Meta::decode(page).ok_or(MetaError::Missing)?;
        match meta.magic {
            MAGIC => {}
            MAGIC_SWAPPED => return Err(MetaError::BigEndian),
            other => return Err(MetaError::Magic(other)),
        }
        if meta.version != VERSION {
            return Err(MetaError::Version(meta.version));
        }
        if fnv1a64(&page[META_OFFSET..META_OFFSET + META_CHECKSUMMED_LEN]) != meta.checksum {
            return Err(MetaError::Checksum);
        }
        if !valid_page_size(meta.page_size) {
            return Err(MetaError::PageSize(meta.page_size));
        }
        Ok(meta)
    }

    pub fn freelist_synced(&self) -> bool {
        self.freelist != PGID_NO_FREELIST
    }
}

pub(super) fn valid_page_size(size: u32) -> bool {
    size.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&size)
}

pub fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// The page size, as bbolt finds it: meta 0 if it validates, else a valid
/// meta 1 probed at 1 KiB << i. The OS page size is never assumed.
pub fn detect_page_size(file: &[u8]) -> Result<u32, [MetaError; 2]> {
    let first = match Meta::read(file) {
        Ok(meta) => return Ok(meta.page_size),
        Err(e) => e,
    };
    let mut second = MetaError::Missing;
    for shift in 0..=14 {
        let pos = 1024usize << shift;
        if pos + 1024 >= file.len() {
            break;
        }
        match Meta::read(&file[pos..]) {
            Ok(meta) if meta.page_size as usize == pos => return Ok(meta.page_size),
            Ok(meta) => second = MetaError::PageSize(meta.page_size),
            // Keep the most telling error: a magic that matched says more than noise.
            Err(MetaError::Magic(_)) if second != MetaError::Missing => {}
            Err(e) => second = e,
        }
    }
    Err([first, second])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv_matches_reference_vectors() {
        assert_eq!(fnv1a64(b""), 0xcbf29ce484222325);
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x85944171f73967e8);
    }

    #[test]
    fn page_size_bounds() {
        assert!(valid_page_size(4096) && valid_page_size(65536));
        assert!(!valid_page_size(0) && !valid_page_size(4095) && !valid_page_size(512));
    }
}
