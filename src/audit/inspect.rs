//! `inspect`: integrity and layout, what `etcdutl snapshot status` and
//! `bbolt check` would say, without refusing a damaged file.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Backup, Integrity};
use crate::etcd;

#[derive(Debug, Serialize)]
pub struct Inspection {
    pub container: Vec<String>,
    pub integrity: Integrity,
    pub etcd: EtcdFacts,
    pub pages: PageCounts,
    pub buckets: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
pub struct EtcdFacts {
    pub revision: i64,
    pub compact_revision: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_compact_revision: Option<i64>,
    pub hash: u32,
    pub total_keys: u64,
    pub size_bytes: u64,
    pub page_size: usize,
    pub storage_version: Option<String>,
    pub consistent_index: Option<u64>,
    pub term: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct PageCounts {
    pub total: u64,
    pub meta: u64,
    pub branch: u64,
    pub leaf: u64,
    pub overflow: u64,
    pub freelist: u64,
    pub free: u64,
}

/// `container` is the chain of layers the backup came out of.
pub fn inspect(backup: &Backup, container: Vec<String>) -> Inspection {
    let (_, status) = rayon::join(|| backup.trailer(), || etcd::status(&backup.db, &backup.layout));
    let meta = &backup.etcd_meta;
    let scheduled = meta.scheduled_compact_revision.filter(|s| Some(*s) != meta.finished_compact_revision);
    let stats = backup.layout.stats;
    let buckets = backup
        .layout
        .buckets
        .iter()
        .map(|b| {
            let items = b.leaves.iter().map(|l| l.page.leaf_items().map_while(Result::ok).count() as u64);
            (String::from_utf8_lossy(b.name).into_owned(), items.sum())
        })
        .collect();
    Inspection {
        container,
        integrity: backup.integrity(),
        etcd: EtcdFacts {
            revision: status.revision,
            compact_revision: meta.finished_compact_revision,
            scheduled_compact_revision: scheduled,
            hash: status.hash,
            total_keys: status.total_keys,
            size_bytes: status.total_size,
            page_size: backup.db.page_size(),
            storage_version: meta.storage_version.clone(),
            consistent_index: meta.consistent_index,
            term: meta.term,
        },
        pages: PageCounts {
            total: backup.db.hwm(),
            meta: 2,
            branch: stats.branch,
            leaf: stats.leaf,
            overflow: stats.overflow,
            freelist: backup.check.freelist_pages,
            free: backup.check.free.len() as u64,
        },
        buckets,
    }
}
