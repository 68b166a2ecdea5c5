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

/// What `--salvage` reads from a file whose metas are both unusable: every
/// page that still says it is a leaf at its own index.
pub struct Salvaged<'a> {
    pub page_size: usize,
    /// Pages of the file at that page size.
    pub pages: u64,
    pub leaves: Vec<Page<'a>>,
}

/// Carves leaf pages without trusting any meta: the page size is the first
/// meta's field when it is a valid size, else the size at which the most of
/// the first 64 pages carry their own index as id.
pub fn salvage(file: &[u8]) -> Salvaged<'_> {
    let self_indexed = |ps: usize| {
        (0..64u64)
            .filter(|&i| {
                let at = (i as usize) * ps;
                file.get(at..at + 8).is_some_and(|id| u64::from_le_bytes(id.try_into().unwrap()) == i)
            })
            .count()
    };
    let declared = file.get(24..28).map(|b| u32::from_le_bytes(b.try_into().unwrap()));
    let page_size = match declared {
        Some(size) if super::meta::valid_page_size(size) => size as usize,
        _ => [4096usize, 8192, 16384, 32768, 65536, 1024, 2048]
            .into_iter()
            .max_by_key(|&ps| (self_indexed(ps), std::cmp::Reverse(ps)))
            .unwrap_or(4096),
    };
    let pages = (file.len() / page_size) as u64;
    let leaves = (2..pages)
        .filter_map(|id| {
            let start = usize::try_from(id).ok()? * page_size;
            let page = Page::parse(Some(id), file.get(start..start + page_size)?).ok()?;
            // The whole span when it fits in the file, else the first page alone.
            let span = (u64::from(page.overflow) + 1).saturating_mul(page_size as u64);
            let buf = file.get(start..start.saturating_add(span as usize)).unwrap_or(page.buf);
            let page = Page::parse(Some(id), buf).ok()?;
            (page.id == id && page.flags == LEAF_PAGE_FLAG).then_some(page)
        })
        .collect();
    Salvaged { page_size, pages, leaves }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salvage_finds_the_leaves_of_a_file_without_metas() {
        let mut file =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/etcd35-scan.snapshot.db")).unwrap();
        let leaves_before = {
            let db = Db::open(&file).unwrap();
            let layout = db.layout();
            layout.buckets.iter().flat_map(|b| b.leaves.iter().map(|l| l.page.id)).collect::<Vec<_>>()
        };
        // Destroy both metas entirely, page size field included.
        file[..2 * 4096].fill(0xAB);
        let salvaged = salvage(&file);
        assert_eq!(salvaged.page_size, 4096);
        let found: Vec<Pgid> = salvaged.leaves.iter().map(|p| p.id).collect();
        for id in leaves_before.iter().filter(|&&id| id >= 2) {
            assert!(found.contains(id), "leaf {id} not salvaged");
        }
    }
}
