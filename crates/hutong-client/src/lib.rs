//! The client side of Hutong: connecting to a gateway with an identity
//! ([`ClientAuth`]: a PKI folder made by `hutong certs`, certificate files, or
//! a development token) and reading a department's export — NDJSON, CSV
//! (UTF-8 or GBK/GB18030) or a workbook — into source records ([`read_records`]). The CLI, the tests and other clients
//! share it; it links no server code.
#![warn(missing_docs)]

mod auth;
mod records;
mod table;

pub use auth::{ClientAuth, ClientError};
pub use records::{Identity, Line, RecordError, decoded_payload, read_export, read_ndjson};
pub use table::{Format, ReadOptions, csv_encoding, read_records};
