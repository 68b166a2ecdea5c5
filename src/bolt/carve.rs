//! Carving: reading leaf elements out of pages the committed tree does not
//! reach (free pages, the inactive meta's older tree, anything past the
//! high-water mark). Such pages are stale by nature: headers may be torn and
//! their content may even be newer than the snapshot (etcd-bbolt.md §3), so
//! nothing here assumes age or consistency; whatever does not parse is skipped.

use super::page::{Page, LEAF_PAGE_FLAG};
use super::{Db, LeafItem, PageSet, Pgid};

impl<'a> Db<'a> {
    /// Pages of the file, from 2 to its end, that the committed tree does not reach.
    pub fn unreachable_pages(&self, reachable: &PageSet) -> Vec<Pgid> {
        let file_pages = (self.file().len() / self.page_size()) as Pgid;
        (2..file_pages).filter(|&id| !reachable.contains(id)).collect()
    }

    /// The leaf items still readable on page `id`, up to the first broken
    /// element. A page whose header is not a leaf yields nothing; a leaf whose
    /// overflow runs past the file is read as a single page.
    pub fn carve_leaf(&self, id: Pgid) -> Vec<LeafItem<'a>> {
        let file_pages = (self.file().len() / self.page_size()) as Pgid;
        let page = match self.raw_page(id, file_pages) {
            Ok(page) => page,
            Err(_) => match self.single_page(id) {
                Some(page) => page,
                None => return vec![],
            },
        };
        if page.flags != LEAF_PAGE_FLAG {
            return vec![];
        }
        page.leaf_items().map_while(Result::ok).collect()
    }

    fn single_page(&self, id: Pgid) -> Option<Page<'a>> {
        let ps = self.page_size();
        let start = usize::try_from(id).ok()?.checked_mul(ps)?;
        let buf = self.file().get(start..start + ps)?;
        Page::parse(Some(id), buf).ok().map(|p| Page { overflow: 0, ..p })
    }
}
