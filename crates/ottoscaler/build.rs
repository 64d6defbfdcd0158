//! Compiles `proto/ottoscaler.proto` with protox (a protobuf compiler in Rust, so the
//! build needs no system `protoc`) and generates the tonic services from the
//! resulting descriptor set. The set is also written out for gRPC reflection.
//! The worker status types also derive `serde::Serialize`: `status -o json|yaml`
//! prints them as the API defines them.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let fds = protox::compile(["ottoscaler.proto"], ["proto"])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("ottoscaler_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .type_attribute("ottoscaler.v1.WorkerInfo", "#[derive(serde::Serialize)]")
        .type_attribute(
            "ottoscaler.v1.WorkerStatusResponse",
            "#[derive(serde::Serialize)]",
        )
        .compile_fds(fds)?;
    Ok(())
}
