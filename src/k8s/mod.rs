//! Kubernetes on top of etcd: registry keys and the identity encodings of
//! stored objects. Format: `docs/formats/k8s-encryption.md` §1, §8, §9.

mod key;
mod object;

pub use key::{
    detect_prefix, elect_prefix, prefix_votes, GroupResource, RegistryKey, ResourceRef, CORE_RESOURCES,
    DEFAULT_PREFIXES,
};
pub use object::{decode_object, event_seconds, lease_renew_seconds, Encoding, ObjectInfo};

pub(crate) use crate::proto::k8s as pb;
