//! Generates the modelwatch.v1 types, gRPC stubs and their JSON (proto3 mapping) from
//! the .proto files, with a pure-Rust protobuf compiler: no protoc needed.

fn main() -> anyhow::Result<()> {
    let files = ["modelwatch/v1/events.proto", "modelwatch/v1/inventory.proto", "modelwatch/v1/sensor.proto"];
    for file in files {
        println!("cargo::rerun-if-changed={file}");
    }
    let descriptors = protox::compile(files, ["."])?;
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .compile_well_known_types(true)
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptors.clone())?;
    let bytes = prost::Message::encode_to_vec(&descriptors);
    std::fs::write(out_dir.join("descriptors.bin"), &bytes)?;
    pbjson_build::Builder::new()
        .register_descriptors(&bytes)?
        .preserve_proto_field_names()
        .emit_fields()
        .build(&[".modelwatch"])?;
    Ok(())
}
