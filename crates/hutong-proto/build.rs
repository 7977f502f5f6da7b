//! Compiles `proto/` with protox (no system `protoc`) and writes the file
//! descriptor set that server reflection serves.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "hutong/v1/ingest.proto",
        "hutong/v1/admin.proto",
        "hutong/v1/profiles.proto",
        "hutong/v1/governance.proto",
        "hutong/v1/access.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={}", proto_root.join(f).display());
    }
    let fds = protox::compile(files, [&proto_root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("hutong_descriptor.bin"), prost::Message::encode_to_vec(&fds))?;
    // The services only with the `grpc` feature; the messages always.
    let grpc = env::var_os("CARGO_FEATURE_GRPC").is_some();
    tonic_prost_build::configure().build_client(grpc).build_server(grpc).compile_fds(fds)?;
    Ok(())
}
