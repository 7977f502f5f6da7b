//! Generated code for Hutong's wire contract (`proto/hutong/v1`): the prost messages,
//! and with the `grpc` feature (on by default) the tonic clients and servers.

/// `hutong.v1`: the ingest and admin services and their messages.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/hutong.v1.rs"));
}

/// Encoded `FileDescriptorSet` of all Hutong protos, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hutong_descriptor.bin"));

pub use prost_types::Timestamp;

#[cfg(feature = "json")]
pub mod json;
