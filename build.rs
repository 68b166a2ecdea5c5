fn main() -> std::io::Result<()> {
    let protos =
        ["proto/etcd/kv.proto", "proto/etcd/wal.proto", "proto/k8s/runtime.proto", "proto/k8s/kmsv2.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    prost_build::Config::new().compile_protos(&protos, &["proto/"])
}
