//! The client side of Hutong: connecting to a gateway with an identity
//! ([`ClientAuth`]: a PKI folder made by `hutong certs`, certificate files, or
//! a development token) and reading a department's NDJSON export into
//! source records ([`read_ndjson`]). The CLI, the tests and other clients
//! share it; it links no server code.
#![warn(missing_docs)]

mod auth;
mod records;

pub use auth::{ClientAuth, ClientError};
pub use records::{Identity, Line, RecordError, decoded_payload, read_export, read_ndjson};
