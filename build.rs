fn main() -> std::io::Result<()> {
    let protos = ["proto/etcd/kv.proto"];
    for p in &protos {
        println!("cargo:rerun-if-changed={p}");
    }
    prost_build::Config::new().compile_protos(&protos, &["proto/"])
}
