//! Generated tonic/prost code for Hutong's wire contract (`proto/hutong/v1`).

/// `hutong.v1`: the ingest (and later admin) services.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("hutong.v1");
}

/// Encoded `FileDescriptorSet` of all Hutong protos, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/hutong_descriptor.bin"));

pub use prost_types::Timestamp;
