//! etcd's MVCC data on top of bbolt: revision keys, `mvccpb.KeyValue`, the
//! `meta` bucket and the `etcdutl snapshot status` figures.
//! Format: `docs/formats/etcd-bbolt.md` §5–§6.

mod kv;
mod meta;
mod revision;
mod status;
pub mod wal;

pub use kv::KeyValueRef;
pub use meta::EtcdMeta;
pub use revision::Revision;
pub use status::{status, Status};

pub use crate::proto::mvccpb;

pub use mvccpb::KeyValue;

/// The bucket that holds every revision.
pub const KEY_BUCKET: &[u8] = b"key";
pub const META_BUCKET: &[u8] = b"meta";
