//! Generates the protobuf types of `proto/` (see `src/proto.rs`). The KMS
//! plugin APIs are generated twice: clients for the library, servers (into
//! their own folder) for the test plugin only.
fn main() -> std::io::Result<()> {
    let protos =
        ["proto/etcd/kv.proto", "proto/etcd/wal.proto", "proto/k8s/runtime.proto", "proto/k8s/kmsv2.proto"];
    let plugin_protos = ["proto/kms/v2.proto", "proto/kms/v1beta1.proto"];
    for p in protos.iter().chain(&plugin_protos) {
        println!("cargo:rerun-if-changed={p}");
    }
    prost_build::Config::new().compile_protos(&protos, &["proto/"])?;
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    for (dir, client) in [("kms-client", true), ("kms-server", false)] {
        let dir = out.join(dir);
        std::fs::create_dir_all(&dir)?;
        tonic_build::configure()
            .build_client(client)
            .build_server(!client)
            .out_dir(&dir)
            .compile_protos(&plugin_protos, &["proto/"])?;
    }
    Ok(())
}
