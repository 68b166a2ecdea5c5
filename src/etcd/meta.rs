use serde::Serialize;

use super::Revision;
use crate::bolt::BucketLayout;

/// The `meta` bucket (etcd server/storage/schema): where the backend stands.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EtcdMeta {
    pub consistent_index: Option<u64>,
    pub term: Option<u64>,
    pub scheduled_compact_revision: Option<i64>,
    pub finished_compact_revision: Option<i64>,
    pub storage_version: Option<String>,
}

impl EtcdMeta {
    pub fn read(bucket: &BucketLayout) -> EtcdMeta {
        let mut meta = EtcdMeta::default();
        let items = bucket.leaves.iter().flat_map(|l| l.page.leaf_items().map_while(Result::ok));
        for item in items {
            let v = item.value;
            match item.key {
                b"consistent_index" => meta.consistent_index = be_u64(v),
                b"term" => meta.term = be_u64(v),
                b"scheduledCompactRev" => meta.scheduled_compact_revision = Revision::main_of(v),
                b"finishedCompactRev" => meta.finished_compact_revision = Revision::main_of(v),
                b"storageVersion" => meta.storage_version = Some(String::from_utf8_lossy(v).into()),
                _ => {}
            }
        }
        meta
    }
}

fn be_u64(v: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(v.try_into().ok()?))
}
