//! Server reflection (`grpc.reflection.v1` and `v1alpha`) on the admin socket: the
//! descriptors of what this socket serves, so grpcurl and grpcui need no `.proto`.

// Only what the socket serves is described: the admin API's files (and what they
// import), health and reflection. The broker's protocol is spoken on plugins' fd 3,
// not here, so its file is left out of the set both protos are compiled into.

use std::collections::{BTreeSet, HashMap};

use prost::Message;
use tonic_reflection::server::v1::{ServerReflection as V1, ServerReflectionServer as V1Server};
use tonic_reflection::server::v1alpha::{
    ServerReflection as V1Alpha, ServerReflectionServer as V1AlphaServer,
};
use tonic_reflection::server::{Builder, Error};

use prost_types::{FileDescriptorProto, FileDescriptorSet};

/// The protobuf package of the admin API.
const ADMIN_PACKAGE: &str = "plexichat.admin.v1";

#[derive(Debug, thiserror::Error)]
pub enum ReflectionError {
    #[error("the compiled-in descriptor set does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("the reflection service refused the descriptors: {0}")]
    Build(#[from] Error),
}

/// Files declaring `package` and, transitively, the files they import.
fn package_with_imports(set: FileDescriptorSet, package: &str) -> FileDescriptorSet {
    let by_name: HashMap<&str, &FileDescriptorProto> =
        set.file.iter().map(|f| (f.name(), f)).collect();
    let mut keep = BTreeSet::new();
    let mut todo: Vec<&str> = set
        .file
        .iter()
        .filter(|f| f.package() == package)
        .map(FileDescriptorProto::name)
        .collect();
    while let Some(name) = todo.pop() {
        if keep.insert(name.to_string()) {
            if let Some(file) = by_name.get(name) {
                todo.extend(file.dependency.iter().map(String::as_str));
            }
        }
    }
    let file = set
        .file
        .iter()
        .filter(|f| keep.contains(f.name()))
        .cloned()
        .collect();
    FileDescriptorSet { file }
}

/// The reflection builder with every file this socket serves; each version then
/// lists the same services (the admin API, health, and both reflection versions).
fn builder() -> Result<Builder<'static>, ReflectionError> {
    let all = FileDescriptorSet::decode(broker_proto::FILE_DESCRIPTOR_SET)?;
    Ok(Builder::configure()
        .include_reflection_service(false)
        .register_file_descriptor_set(package_with_imports(all, ADMIN_PACKAGE))
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET))
}

/// Both reflection services.
pub fn services() -> Result<(V1Server<impl V1>, V1AlphaServer<impl V1Alpha>), ReflectionError> {
    Ok((builder()?.build_v1()?, builder()?.build_v1alpha()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_files_are_kept_and_the_broker_file_is_not() {
        let all = FileDescriptorSet::decode(broker_proto::FILE_DESCRIPTOR_SET).unwrap();
        let kept = package_with_imports(all, ADMIN_PACKAGE);
        let names: Vec<&str> = kept.file.iter().map(|f| f.name()).collect();
        assert!(names.contains(&"admin.proto"), "{names:?}");
        assert!(!names.contains(&"broker.proto"), "{names:?}");
        let admin = kept
            .file
            .iter()
            .find(|f| f.name() == "admin.proto")
            .unwrap();
        for dep in &admin.dependency {
            assert!(names.contains(&dep.as_str()), "import {dep} kept");
        }
        assert!(admin.service.iter().any(|s| s.name() == "Admin"));
    }

    #[test]
    fn both_versions_build() {
        services().expect("reflection builds from the compiled-in descriptors");
    }
}
