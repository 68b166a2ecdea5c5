//! The figures of `etcdutl snapshot status` (etcdutl/snapshot/v3_snapshot.go).

use crate::bolt::{Db, Layout};
use serde::Serialize;

use super::{Revision, KEY_BUCKET};

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Status {
    /// CRC-32C over every top-level bucket: its name, then each key and value.
    pub hash: u32,
    /// Main revision of the last `key` bucket key (0 when there is none).
    pub revision: i64,
    /// etcdutl 3.4/3.5's count: every key/value pair of every bucket.
    pub total_keys: u64,
    /// `pgid * page_size`.
    pub total_size: u64,
}

/// Computed from whatever the walk could reach, even when the check found errors
/// (etcdutl refuses then; an auditor reports and goes on).
pub fn status(db: &Db, layout: &Layout) -> Status {
    let (mut hash, mut revision, mut total_keys) = (0u32, 0i64, 0u64);
    for bucket in &layout.buckets {
        hash = crc32c::crc32c_append(hash, bucket.name);
        let is_key_bucket = bucket.name == KEY_BUCKET;
        let items = bucket.leaves.iter().flat_map(|l| l.page.leaf_items().map_while(Result::ok));
        for item in items {
            hash = crc32c::crc32c_append(hash, item.key);
            // bbolt's ForEach yields a nil value for a nested bucket.
            if !item.is_bucket() {
                hash = crc32c::crc32c_append(hash, item.value);
            }
            if is_key_bucket {
                revision = Revision::main_of(item.key).unwrap_or(revision);
            }
            total_keys += 1;
        }
    }
    Status { hash, revision, total_keys, total_size: db.size() }
}
