//! Generates the echo baseline service with the protoc from `protoc-bin-vendored`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    println!("cargo:rerun-if-changed=proto");
    tonic_prost_build::compile_protos("proto/echo.proto")?;
    Ok(())
}
