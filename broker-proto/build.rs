//! Generates the tonic/prost code from `proto/` with the protoc shipped in the
//! `protoc-bin-vendored` crate, so no system protoc is needed.

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
        .type_attribute(".plexichat.admin.v1", "#[derive(serde::Serialize)]")
        .file_descriptor_set_path(&descriptors)
        .compile_protos(&["proto/broker.proto", "proto/admin.proto"], &["proto"])?;
    Ok(())
}
