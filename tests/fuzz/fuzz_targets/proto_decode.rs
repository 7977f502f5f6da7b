//! Any bytes as a SubmitRequest on the wire: decoding fails cleanly or the
//! records go through the pipeline without panicking.
#![no_main]

use hutong_proto::v1::SubmitRequest;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = SubmitRequest::decode(data) {
        let p = common::pipeline();
        for rec in req.records.iter().take(16) {
            let _ = p.prepare("gongan", rec, chrono::Utc::now());
        }
    }
});
