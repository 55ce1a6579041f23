//! The supervisor's two versioned gRPC contracts, generated from `proto/`.
//! `broker::v1` is what plugins speak over fd 3; `admin::v1` is the operator/server API.

/// Protocol versions of `plexichat.broker.v1` this build speaks, newest last.
pub const BROKER_PROTOCOL_VERSIONS: &[u32] = &[1];

/// Upper bound on any single broker message, in both directions.
pub const MAX_BROKER_MESSAGE_BYTES: usize = 1024 * 1024;

/// Upper bound on any single admin API message (an upload streams a package in messages of at most 1 MiB of data).
pub const MAX_ADMIN_MESSAGE_BYTES: usize = 4 * 1024 * 1024;

/// Most records one `QueryAudit` page holds (`AuditQuery.page_size`); a page is also
/// cut short to fit [`MAX_ADMIN_MESSAGE_BYTES`].
pub const MAX_AUDIT_PAGE_RECORDS: u32 = 5000;

/// Metadata header a server-role caller sets to act for an end-user admin.
pub const ON_BEHALF_OF_HEADER: &str = "x-plexichat-on-behalf-of";

/// Both protos as a `FileDescriptorSet`, comments included (protoc's source info):
/// for reflection, the contract tests and the reference page.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/plexichat_descriptor.bin"));

/// Well-known types the admin API uses (`google.protobuf.Value`), with their JSON mapping.
pub use pbjson_types;

pub mod label;

pub mod broker {
    pub mod v1 {
        tonic::include_proto!("plexichat.broker.v1");
    }
}

pub mod admin {
    pub mod v1 {
        tonic::include_proto!("plexichat.admin.v1");
        // The canonical protobuf JSON mapping (pbjson): what `--output json` prints.
        include!(concat!(env!("OUT_DIR"), "/plexichat.admin.v1.serde.rs"));
    }
}
