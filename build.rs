fn main() -> std::io::Result<()> {
    let protos =
        ["proto/etcd/kv.proto", "proto/etcd/wal.proto", "proto/k8s/runtime.proto", "proto/k8s/kmsv2.proto"];
    // The KMS plugin APIs: gRPC client for the auditor, server for the test plugin.
    let plugin_protos = ["proto/kms/v2.proto", "proto/kms/v1beta1.proto"];
    for p in protos.iter().chain(&plugin_protos) {
        println!("cargo:rerun-if-changed={p}");
    }
    prost_build::Config::new().compile_protos(&protos, &["proto/"])?;
    tonic_build::configure().build_client(true).build_server(true).compile_protos(&plugin_protos, &["proto/"])
}
