//! A read-only bbolt reader over a borrowed byte slice (normally a read-only
//! memory map). Format: bbolt `internal/common`, `db.go`, `tx_check.go`;
//! summarised in `docs/formats/etcd-bbolt.md` §1–§4.
//!
//! Nothing here trusts the file: offsets and lengths are bounds-checked,
//! page walks stop at pages already seen, and counts are capped by the size
//! of the page that holds them.

mod carve;
mod check;
mod freelist;
mod meta;
mod page;
mod pageset;
mod tree;

pub use carve::{salvage, Salvaged};
pub use check::{check, CheckReport};
pub use meta::{fnv1a64, Meta, MetaError, MAGIC, PGID_NO_FREELIST};
pub use page::{BranchItem, LeafItem, Page, Pgid, BUCKET_LEAF_FLAG};
pub use pageset::PageSet;
pub use tree::{BucketLayout, BucketRoot, Layout, Leaf, PageStats};

use page::FREELIST_PAGE_FLAG;

#[derive(Debug, thiserror::Error)]
pub enum BoltError {
    #[error("not a bbolt database: {0}")]
    NotBbolt(String),
    #[error("big-endian bbolt file (written on s390x); only little-endian files are supported")]
    BigEndian,
    #[error("both meta pages are invalid (meta 0: {0}; meta 1: {1})")]
    NoValidMeta(MetaError, MetaError),
    #[error("file is truncated: {len} bytes, but the high-water mark needs {need} bytes")]
    Truncated { len: u64, need: u64 },
    #[error("page {id}: {reason}")]
    Page { id: Pgid, reason: String },
}

impl BoltError {
    pub(crate) fn page(id: Pgid, reason: impl Into<String>) -> Self {
        BoltError::Page { id, reason: reason.into() }
    }
}

/// Integrity problems, in `bbolt check` wording where it has one. A hostile
/// file can have one per page, so at most [`Problems::MAX`] are kept and the
/// rest only counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems {
    kept: Vec<String>,
    total: u64,
}

impl Problems {
    pub const MAX: usize = 1000;

    pub fn push(&mut self, problem: impl Into<String>) {
        self.total += 1;
        if self.kept.len() < Self::MAX {
            self.kept.push(problem.into());
        }
    }

    pub fn extend(&mut self, problems: impl IntoIterator<Item = String>) {
        problems.into_iter().for_each(|p| self.push(p));
    }

    pub fn append(&mut self, other: &Problems) {
        self.extend(other.kept.iter().cloned());
        self.total += other.total - other.kept.len() as u64;
    }

    /// The first [`Problems::MAX`] problems.
    pub fn list(&self) -> &[String] {
        &self.kept
    }

    /// How many there were, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// An open bbolt file. Cheap to share between threads: it only borrows.
#[derive(Clone, Copy, Debug)]
pub struct Db<'a> {
    data: &'a [u8],
    page_size: usize,
    meta: Meta,
    metas: [Result<Meta, MetaError>; 2],
}

impl<'a> Db<'a> {
    pub fn open(data: &'a [u8]) -> Result<Self, BoltError> {
        if data.len() < 1024 {
            return Err(BoltError::NotBbolt(format!("only {} bytes", data.len())));
        }
        let page_size = meta::detect_page_size(data).map_err(open_error)?;
        let ps = page_size as usize;
        let metas = [Meta::read(data), data.get(ps..).map_or(Err(MetaError::Missing), Meta::read)];
        let meta = match metas {
            [Ok(a), Ok(b)] => {
                if b.txid > a.txid {
                    b
                } else {
                    a
                }
            }
            [Ok(m), Err(_)] | [Err(_), Ok(m)] => m,
            [Err(a), Err(b)] => return Err(open_error([a, b])),
        };
        let need = meta.pgid.saturating_mul(ps as u64);
        if need > data.len() as u64 || meta.pgid < 2 {
            return Err(BoltError::Truncated { len: data.len() as u64, need });
        }
        Ok(Db { data, page_size: ps, meta, metas })
    }

    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// The meta in force: the higher valid txid.
    pub fn meta(&self) -> &Meta {
        &self.meta
    }

    /// Both meta pages as read, for integrity reporting.
    pub fn metas(&self) -> &[Result<Meta, MetaError>; 2] {
        &self.metas
    }

    /// The high-water mark: pages `[0, hwm)` belong to the database.
    pub fn hwm(&self) -> Pgid {
        self.meta.pgid
    }

    /// The database size as etcd reports it: `pgid * page_size`.
    pub fn size(&self) -> u64 {
        self.meta.pgid * self.page_size as u64
    }

    /// The whole mapped file, including anything past the high-water mark.
    pub fn file(&self) -> &'a [u8] {
        self.data
    }

    /// Page `id` of the committed tree, with its overflow pages, checked
    /// against the high-water mark and its own id field.
    pub fn page(&self, id: Pgid) -> Result<Page<'a>, BoltError> {
        if id >= self.hwm() {
            return Err(BoltError::page(id, format!("out of bounds: {}", self.hwm())));
        }
        let page = self.raw_page(id, self.hwm())?;
        if page.id != id {
            return Err(BoltError::page(
                id,
                format!("Page expected to be: {id}, but self identifies as {}", page.id),
            ));
        }
        Ok(page)
    }

    /// Page `id` without the id check, its span limited to pages below `limit`.
    /// Used to carve free pages, whose headers are stale by nature.
    pub fn raw_page(&self, id: Pgid, limit: Pgid) -> Result<Page<'a>, BoltError> {
        let ps = self.page_size as u64;
        let start = id.checked_mul(ps).filter(|&s| s + ps <= self.data.len() as u64);
        let start = start.ok_or_else(|| BoltError::page(id, "beyond the end of the file"))?;
        let header = Page::parse(Some(id), &self.data[start as usize..(start + ps) as usize])?;
        let last = id.checked_add(u64::from(header.overflow));
        let end = last.filter(|&l| l < limit).map(|l| (l + 1) * ps);
        let end = end.ok_or_else(|| {
            BoltError::page(id, format!("overflow {} runs past page {limit}", header.overflow))
        })?;
        Ok(Page { buf: &self.data[start as usize..end as usize], ..header })
    }

    /// The ids on the freelist page, or `None` when the freelist is not synced.
    pub fn freelist(&self) -> Result<Option<Vec<Pgid>>, BoltError> {
        if !self.meta.freelist_synced() {
            return Ok(None);
        }
        let page = self.page(self.meta.freelist)?;
        if page.flags & FREELIST_PAGE_FLAG == 0 {
            return Err(page.error(format!("invalid freelist page type: {}", page.type_name())));
        }
        freelist::ids(&page).map(Some)
    }

    /// Walks every bucket's tree once: leaves per top-level bucket, the
    /// reachable page set and walk errors. See [`tree`].
    pub fn layout(&self) -> Layout<'a> {
        tree::layout(self)
    }
}

fn open_error([first, second]: [MetaError; 2]) -> BoltError {
    use MetaError::*;
    match (first, second) {
        (BigEndian, _) | (_, BigEndian) => BoltError::BigEndian,
        (Magic(_) | Missing, Magic(_) | Missing) => {
            BoltError::NotBbolt("no bbolt meta page (magic 0xED0CDAED at offset 16)".into())
        }
        (a, b) => BoltError::NoValidMeta(a, b),
    }
}
