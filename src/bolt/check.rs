//! The equivalent of `bbolt check` (tx_check.go), plus the free page set the
//! forensics carve: the synced freelist, or when etcd left it unsynced, every
//! page below the high-water mark that no tree reaches (bbolt `freepages()`).

use super::{Db, Layout, PageSet, Pgid, Problems};

#[derive(Debug)]
pub struct CheckReport {
    /// Errors in `bbolt check` wording, plus element and key-order checks it lacks.
    pub errors: Problems,
    /// Free pages, sorted: listed on the freelist, or rebuilt when it is not synced.
    pub free: Vec<Pgid>,
    /// Pages taken by the freelist itself (0 when not synced).
    pub freelist_pages: u64,
    pub freelist_synced: bool,
}

pub fn check(db: &Db, layout: &Layout) -> CheckReport {
    let hwm = db.hwm();
    let mut errors = Problems::default();
    let mut freed = PageSet::new(hwm);
    let listed = match db.freelist() {
        Ok(listed) => listed,
        Err(e) => {
            errors.push(format!("freelist: {e}"));
            None
        }
    };
    let freelist_pages = listed.as_ref().map_or(0, |_| freelist_span(db));
    if let Some(ids) = &listed {
        for &id in ids {
            if id >= hwm {
                errors.push(format!("page {id}: freed page beyond the high-water mark {hwm}"));
            } else if !freed.insert(id) {
                errors.push(format!("page {id}: already freed"));
            }
        }
    }
    errors.append(&layout.errors);

    let metas_and_freelist = |id: Pgid| {
        id < 2
            || (listed.is_some() && (db.meta().freelist..db.meta().freelist + freelist_pages).contains(&id))
    };
    let mut free = Vec::new();
    for id in 0..hwm {
        let (reachable, is_freed) = (layout.reachable.contains(id), freed.contains(id));
        if listed.is_none() {
            // Rebuilt freelist: unreachable means free, as bbolt's freepages().
            if !reachable && id >= 2 {
                free.push(id);
            }
            continue;
        }
        match (reachable, is_freed) {
            (true, true) if !metas_and_freelist(id) => errors.push(format!("page {id}: reachable freed")),
            (false, false) => errors.push(format!("page {id}: unreachable unfreed")),
            (_, true) => free.push(id),
            _ => {}
        }
    }
    CheckReport { errors, free, freelist_pages, freelist_synced: listed.is_some() }
}

fn freelist_span(db: &Db) -> u64 {
    db.page(db.meta().freelist).map_or(1, |p| 1 + u64::from(p.overflow))
}
