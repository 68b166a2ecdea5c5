//! One walk over every bucket's B+tree.
//!
//! Branch pages are walked sequentially to list leaf pages in key order;
//! leaves are then read in parallel (rayon) to check their elements and find
//! nested buckets. Scanners reuse the leaf lists the same way: list first,
//! process in parallel after.

use rayon::prelude::*;

use super::page::{u64_at, Page, Pgid};
use super::{BoltError, Db, PageSet, Problems};

/// A bucket's tree: a root page, or an inline page image inside its parent's value.
#[derive(Clone, Copy, Debug)]
pub enum BucketRoot<'a> {
    Page(Pgid),
    Inline(Page<'a>),
}

/// Why a bucket value does not name a tree.
#[derive(Debug, thiserror::Error)]
pub enum BucketValueError {
    #[error("bucket value shorter than its 16-byte header")]
    Short,
    #[error(transparent)]
    Page(#[from] BoltError),
    #[error("inline bucket page has flags {0:#x}, not a leaf")]
    NotLeaf(u16),
}

impl<'a> BucketRoot<'a> {
    /// Decodes an `InBucket` value (bbolt internal/common/bucket.go): the
    /// root page id and sequence (16 bytes), then for root 0 the inline page.
    pub fn from_value(value: &'a [u8]) -> Result<Self, BucketValueError> {
        let root = u64_at(value, 0).ok_or(BucketValueError::Short)?;
        if root != 0 {
            return Ok(BucketRoot::Page(root));
        }
        let page = Page::parse(None, value.get(16..).ok_or(BucketValueError::Short)?)?;
        if !page.is_leaf() {
            return Err(BucketValueError::NotLeaf(page.flags));
        }
        Ok(BucketRoot::Inline(page))
    }
}

/// A leaf page with the key range its ancestors allow: `[lo, hi)`.
#[derive(Clone, Copy, Debug)]
pub struct Leaf<'a> {
    pub page: Page<'a>,
    lo: Option<&'a [u8]>,
    hi: Option<&'a [u8]>,
}

#[derive(Debug)]
pub struct BucketLayout<'a> {
    pub name: &'a [u8],
    pub leaves: Vec<Leaf<'a>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PageStats {
    pub branch: u64,
    pub leaf: u64,
    pub overflow: u64,
}

#[derive(Debug)]
pub struct Layout<'a> {
    /// Top-level buckets in key order, each with its leaves in key order.
    pub buckets: Vec<BucketLayout<'a>>,
    /// Metas, the freelist page and every page of every bucket tree.
    pub reachable: PageSet,
    pub stats: PageStats,
    /// Problems found on the way, in `bbolt check` wording where it has one.
    pub errors: Problems,
}

impl<'a> Layout<'a> {
    pub fn bucket(&self, name: &[u8]) -> Option<&BucketLayout<'a>> {
        self.buckets.iter().find(|b| b.name == name)
    }
}

pub fn layout<'a>(db: &Db<'a>) -> Layout<'a> {
    let reachable = PageSet::new(db.hwm());
    let mut walk = Walk { db, reachable, stats: PageStats::default(), errors: Problems::default() };
    walk.reachable.insert(0);
    walk.reachable.insert(1);

    let root_leaves = walk.tree(BucketRoot::Page(db.meta().root));
    let mut buckets = Vec::new();
    for (name, root) in walk.check_leaves(&root_leaves) {
        buckets.push(BucketLayout { name, leaves: walk.tree(root) });
    }
    // Deeper buckets only matter for reachability and errors.
    let mut pending: Vec<_> = buckets.iter().flat_map(|b| b.leaves.iter().copied()).collect();
    while !pending.is_empty() {
        let nested = walk.check_leaves(&pending);
        pending = nested.into_iter().flat_map(|(_, root)| walk.tree(root)).collect();
    }
    // Trees first: a damaged meta may name a tree page as the freelist, and
    // the keys on it must still be read.
    walk.mark_freelist();
    Layout { buckets, reachable: walk.reachable, stats: walk.stats, errors: walk.errors }
}

struct Walk<'d, 'a> {
    db: &'d Db<'a>,
    reachable: PageSet,
    stats: PageStats,
    errors: Problems,
}

impl<'a> Walk<'_, 'a> {
    fn mark_freelist(&mut self) {
        let meta = self.db.meta();
        if !meta.freelist_synced() {
            return;
        }
        match self.db.page(meta.freelist) {
            Ok(p) => {
                for i in p.id..=p.id + u64::from(p.overflow) {
                    if !self.reachable.insert(i) {
                        self.errors
                            .push(format!("page {i}: named as the freelist, but a bucket tree reaches it"));
                    }
                }
            }
            Err(e) => self.errors.push(format!("freelist: {e}")),
        }
    }

    /// Lists the leaves of one tree, marking its pages reachable. A page seen
    /// before is reported and not entered again, so cycles end here.
    fn tree(&mut self, root: BucketRoot<'a>) -> Vec<Leaf<'a>> {
        let mut leaves = Vec::new();
        let root = match root {
            BucketRoot::Inline(page) => return vec![Leaf { page, lo: None, hi: None }],
            BucketRoot::Page(id) => id,
        };
        let mut stack = vec![(root, None, None)];
        while let Some((id, lo, hi)) = stack.pop() {
            let page = match self.db.page(id) {
                Ok(page) => page,
                Err(e) => {
                    self.errors.push(e.to_string());
                    continue;
                }
            };
            let mut seen_before = false;
            for i in id..=id + u64::from(page.overflow) {
                if !self.reachable.insert(i) {
                    self.errors.push(format!("page {i}: multiple references"));
                    seen_before = true;
                }
            }
            if seen_before {
                continue;
            }
            self.stats.overflow += u64::from(page.overflow);
            if page.is_branch() {
                self.stats.branch += 1;
                let children = self.branch_children(&page, lo, hi);
                stack.extend(children.into_iter().rev());
            } else if page.is_leaf() {
                self.stats.leaf += 1;
                leaves.push(Leaf { page, lo, hi });
            } else {
                self.errors.push(format!("page {id}: invalid type: {}", page.type_name()));
            }
        }
        leaves
    }

    /// The children of a branch page with their key ranges, after checking
    /// that its keys ascend strictly within `[lo, hi)`.
    #[allow(clippy::type_complexity)]
    fn branch_children(
        &mut self,
        page: &Page<'a>,
        lo: Option<&'a [u8]>,
        hi: Option<&'a [u8]>,
    ) -> Vec<(Pgid, Option<&'a [u8]>, Option<&'a [u8]>)> {
        let mut items = Vec::with_capacity(page.count as usize);
        for item in page.branch_items() {
            match item {
                Ok(item) => items.push(item),
                Err(e) => {
                    self.errors.push(e.to_string());
                    break;
                }
            }
        }
        let keys: Vec<&[u8]> = items.iter().map(|i| i.key).collect();
        self.errors.extend(key_order_errors(page, &keys, lo, hi));
        let bound = |i: usize| items.get(i + 1).map(|n| n.key).or(hi);
        items.iter().enumerate().map(|(i, item)| (item.child, Some(item.key), bound(i))).collect()
    }

    /// Reads every element of `leaves` in parallel: element bounds, key order,
    /// and the nested buckets they hold, returned in key order.
    fn check_leaves(&mut self, leaves: &[Leaf<'a>]) -> Vec<(&'a [u8], BucketRoot<'a>)> {
        let results: Vec<_> = leaves.par_iter().map(check_leaf).collect();
        let mut nested = Vec::new();
        for (errors, buckets) in results {
            self.errors.extend(errors);
            nested.extend(buckets);
        }
        nested
    }
}

type LeafCheck<'a> = (Vec<String>, Vec<(&'a [u8], BucketRoot<'a>)>);

fn check_leaf<'a>(leaf: &Leaf<'a>) -> LeafCheck<'a> {
    let (mut errors, mut nested, mut keys) = (vec![], vec![], vec![]);
    for item in leaf.page.leaf_items() {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                errors.push(e.to_string());
                break;
            }
        };
        keys.push(item.key);
        if item.is_bucket() {
            match BucketRoot::from_value(item.value) {
                Ok(root) => nested.push((item.key, root)),
                Err(e) => errors.push(leaf.page.error(e.to_string()).to_string()),
            }
        }
    }
    errors.extend(key_order_errors(&leaf.page, &keys, leaf.lo, leaf.hi));
    (errors, nested)
}

fn key_order_errors(page: &Page, keys: &[&[u8]], lo: Option<&[u8]>, hi: Option<&[u8]>) -> Vec<String> {
    let mut errors = Vec::new();
    let at = || match page.index {
        Some(id) => format!("{} page({id})", page.type_name()),
        None => "inline page".to_string(),
    };
    if let (Some(first), Some(lo)) = (keys.first(), lo) {
        if *first < lo {
            errors.push(format!(
                "the first key[0]=(hex){} on {} needs to be >= the key in the ancestor (hex){}",
                hex::encode(first),
                at(),
                hex::encode(lo)
            ));
        }
    }
    for (i, pair) in keys.windows(2).enumerate() {
        if pair[1] <= pair[0] {
            errors.push(format!(
                "key[{}]=(hex){} on {} needs to be > than previous element (hex){}",
                i + 1,
                hex::encode(pair[1]),
                at(),
                hex::encode(pair[0])
            ));
        }
    }
    if let (Some(last), Some(hi)) = (keys.last(), hi) {
        if *last >= hi {
            errors.push(format!(
                "the last key[{}]=(hex){} on {} needs to be < than key of the next element in ancestor (hex){}",
                keys.len() - 1, hex::encode(last), at(), hex::encode(hi)
            ));
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by a structure-aware mutation of a real snapshot: a bucket value
    /// of 8–15 bytes with root 0 made `inspect` and `scan` panic.
    #[test]
    fn a_short_inline_bucket_value_is_an_error_not_a_panic() {
        for len in 0..16 {
            let value = vec![0u8; len];
            assert!(matches!(BucketRoot::from_value(&value), Err(BucketValueError::Short)), "{len} bytes");
        }
        let mut value = vec![0u8; 16];
        value[0] = 7;
        assert!(matches!(BucketRoot::from_value(&value), Ok(BucketRoot::Page(7))));
        assert!(matches!(BucketRoot::from_value(&[0u8; 20]), Err(BucketValueError::Page(_))));
    }
}
