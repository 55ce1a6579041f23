//! Generates the tonic/prost code from `proto/` with the protoc shipped in the
//! `protoc-bin-vendored` crate, so no system protoc is needed, and the canonical
//! protobuf JSON mapping (pbjson) of the admin API.

use std::path::PathBuf;

/// The descriptor set of both protos, with their comments (source info).
const DESCRIPTOR_SET: &str = "plexichat_descriptor.bin";

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    std::env::set_var("PROTOC", protoc);
    println!("cargo:rerun-if-changed=proto");
    let descriptors = PathBuf::from(std::env::var("OUT_DIR")?).join(DESCRIPTOR_SET);
    tonic_prost_build::configure()
        // Ordered maps: reports and log fields come out the same way every time.
        .btree_map(".")
        // Event payloads are shared by every queue that holds them, not copied per queue.
        .bytes(".plexichat.broker.v1.Event.payload")
        .bytes(".plexichat.broker.v1.EmitEventRequest.payload")
        .bytes(".plexichat.admin.v1.PluginEvent.payload")
        .bytes(".plexichat.admin.v1.PublishEventRequest.payload")
        // Well-known types with their canonical JSON (Value as any JSON value).
        .extern_path(".google.protobuf.Value", "::pbjson_types::Value")
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&["proto/broker.proto", "proto/admin.proto"], &["proto"])?;
    // Serialize/Deserialize following the proto3 JSON mapping: enums by name,
    // bytes as base64, 64-bit integers as strings, default values left out.
    pbjson_build::Builder::new()
        .register_descriptors(&std::fs::read(&descriptors)?)?
        .preserve_proto_field_names()
        .btree_map(["."])
        .build(&[".plexichat.admin.v1"])?;
    Ok(())
}
