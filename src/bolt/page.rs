//! Page and element layout (bbolt internal/common/page.go).
//!
//! Every read is bounds-checked against the page's own span: a page never
//! reads outside `(overflow + 1) * page_size` bytes, so a hostile element
//! offset yields an error instead of a panic or a read of another page.

use super::BoltError;

pub type Pgid = u64;

pub const PAGE_HEADER_SIZE: usize = 16;
pub const ELEMENT_SIZE: usize = 16;

pub const BRANCH_PAGE_FLAG: u16 = 0x01;
pub const LEAF_PAGE_FLAG: u16 = 0x02;
pub const META_PAGE_FLAG: u16 = 0x04;
pub const FREELIST_PAGE_FLAG: u16 = 0x10;

/// Leaf element flag: the value is an `InBucket` header, not user data.
pub const BUCKET_LEAF_FLAG: u32 = 0x01;

pub(crate) fn u16_at(b: &[u8], off: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(off..off + 2)?.try_into().ok()?))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(off..off + 4)?.try_into().ok()?))
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(off..off + 8)?.try_into().ok()?))
}

/// A page (or an inline bucket's page image) borrowed from the map.
#[derive(Clone, Copy, Debug)]
pub struct Page<'a> {
    /// The index this page was read from; `None` for an inline bucket image.
    pub index: Option<Pgid>,
    pub id: Pgid,
    pub flags: u16,
    pub count: u16,
    pub overflow: u32,
    /// The whole span: header, elements and data, overflow pages included.
    pub buf: &'a [u8],
}

/// One key/value of a leaf page.
#[derive(Clone, Copy, Debug)]
pub struct LeafItem<'a> {
    pub flags: u32,
    pub key: &'a [u8],
    pub value: &'a [u8],
}

impl LeafItem<'_> {
    pub fn is_bucket(&self) -> bool {
        self.flags & BUCKET_LEAF_FLAG != 0
    }
}

/// One child pointer of a branch page.
#[derive(Clone, Copy, Debug)]
pub struct BranchItem<'a> {
    pub key: &'a [u8],
    pub child: Pgid,
}

impl<'a> Page<'a> {
    /// Parses the header of `buf`, which must hold the whole span.
    pub fn parse(index: Option<Pgid>, buf: &'a [u8]) -> Result<Self, BoltError> {
        let short = || BoltError::page(index.unwrap_or(0), "page header out of bounds");
        Ok(Page {
            index,
            id: u64_at(buf, 0).ok_or_else(short)?,
            flags: u16_at(buf, 8).ok_or_else(short)?,
            count: u16_at(buf, 10).ok_or_else(short)?,
            overflow: u32_at(buf, 12).ok_or_else(short)?,
            buf,
        })
    }

    pub fn is_branch(&self) -> bool {
        self.flags & BRANCH_PAGE_FLAG != 0
    }

    pub fn is_leaf(&self) -> bool {
        self.flags & LEAF_PAGE_FLAG != 0
    }

    /// The bbolt name of the page type, as `bbolt check` prints it.
    pub fn type_name(&self) -> String {
        match self.flags {
            f if f & BRANCH_PAGE_FLAG != 0 => "branch".into(),
            f if f & LEAF_PAGE_FLAG != 0 => "leaf".into(),
            f if f & META_PAGE_FLAG != 0 => "meta".into(),
            f if f & FREELIST_PAGE_FLAG != 0 => "freelist".into(),
            f => format!("unknown<{f:02x}>"),
        }
    }

    fn element(&self, i: usize) -> Result<&'a [u8], BoltError> {
        let off = PAGE_HEADER_SIZE + i * ELEMENT_SIZE;
        self.buf.get(off..off + ELEMENT_SIZE).ok_or_else(|| self.error(format!("element {i} out of bounds")))
    }

    /// Bytes at `pos` relative to element `i`'s own address (bbolt's layout).
    fn data(&self, i: usize, pos: u32, len: u64) -> Result<&'a [u8], BoltError> {
        let start = (PAGE_HEADER_SIZE + i * ELEMENT_SIZE) as u64 + u64::from(pos);
        let end = start + len;
        if end > self.buf.len() as u64 {
            return Err(self.error(format!(
                "element {i} data [{start}, {end}) exceeds the page span of {} bytes",
                self.buf.len()
            )));
        }
        Ok(&self.buf[start as usize..end as usize])
    }

    pub fn leaf_item(&self, i: usize) -> Result<LeafItem<'a>, BoltError> {
        let e = self.element(i)?;
        let (flags, pos) = (u32_at(e, 0).unwrap(), u32_at(e, 4).unwrap());
        let (ksize, vsize) = (u32_at(e, 8).unwrap(), u32_at(e, 12).unwrap());
        let kv = self.data(i, pos, u64::from(ksize) + u64::from(vsize))?;
        let (key, value) = kv.split_at(ksize as usize);
        Ok(LeafItem { flags, key, value })
    }

    pub fn branch_item(&self, i: usize) -> Result<BranchItem<'a>, BoltError> {
        let e = self.element(i)?;
        let (pos, ksize, child) = (u32_at(e, 0).unwrap(), u32_at(e, 4).unwrap(), u64_at(e, 8).unwrap());
        let key = self.data(i, pos, u64::from(ksize))?;
        Ok(BranchItem { key, child })
    }

    /// All items of a leaf page; the first bad element ends the page with an error.
    pub fn leaf_items(&self) -> impl Iterator<Item = Result<LeafItem<'a>, BoltError>> + '_ {
        (0..self.count as usize).map(move |i| self.leaf_item(i))
    }

    pub fn branch_items(&self) -> impl Iterator<Item = Result<BranchItem<'a>, BoltError>> + '_ {
        (0..self.count as usize).map(move |i| self.branch_item(i))
    }

    pub fn error(&self, reason: impl Into<String>) -> BoltError {
        match self.index {
            Some(id) => BoltError::page(id, reason),
            None => BoltError::page(self.id, format!("inline bucket: {}", reason.into())),
        }
    }
}
