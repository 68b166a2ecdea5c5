//! The protobuf types generated from `proto/` at build time (prost, tonic):
//! every module that decodes a protobuf message takes its types from here.

/// etcd `mvccpb`: `KeyValue`, `Event`.
pub mod mvccpb {
    include!(concat!(env!("OUT_DIR"), "/mvccpb.rs"));
}

/// etcd's WAL records, raft entries and the requests inside them (subsets).
pub mod etcdwal {
    include!(concat!(env!("OUT_DIR"), "/etcdwal.rs"));
}

/// Kubernetes `runtime.Unknown` and the object heads read from it (subsets).
pub mod k8s {
    include!(concat!(env!("OUT_DIR"), "/k8s.rs"));
}

/// KMS v2 `EncryptedObject`, the envelope around KMS v2 data.
pub mod kmsv2 {
    include!(concat!(env!("OUT_DIR"), "/kmsv2.rs"));
}

/// The KMS plugin gRPC APIs, client side (what kube-apiserver calls).
pub mod kms {
    /// `k8s.io/kms/apis/v2`: `v2.KeyManagementService`.
    pub mod v2 {
        include!(concat!(env!("OUT_DIR"), "/kms-client/v2.rs"));
    }
    /// `k8s.io/kms/apis/v1beta1`: `v1beta1.KeyManagementService`.
    pub mod v1beta1 {
        include!(concat!(env!("OUT_DIR"), "/kms-client/v1beta1.rs"));
    }
}

/// The plugin side of the KMS APIs, for test plugins only: the shipped
/// library has no server code (`examples/kms_plugin.rs` includes its own).
#[cfg(test)]
pub mod kms_server {
    pub mod v2 {
        include!(concat!(env!("OUT_DIR"), "/kms-server/v2.rs"));
    }
}
