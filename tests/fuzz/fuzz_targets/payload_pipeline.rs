//! Any payload bytes, in any charset, for every adapter: adapter and
//! standard answer (publish or reject) and never panic.
#![no_main]

use hutong_proto::v1::{Op, SourceRecord};
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let p = common::pipeline();
    let (selector, payload) = data.split_first().map(|(s, rest)| (*s, rest)).unwrap_or((0, data));
    let adapters: Vec<_> = p.adapters().iter().collect();
    let adapter = adapters[selector as usize % adapters.len()];
    let charset = ["", "utf-8", "gbk", "gb18030", "latin1"][(selector / 32) as usize % 5];
    let rec = SourceRecord {
        kind: adapter.kind.clone(),
        source_id: "fuzz".into(),
        revision: 1,
        op: Op::Upsert as i32,
        occurred_at: None,
        payload: payload.to_vec(),
        charset: charset.into(),
    };
    let _ = p.prepare(&adapter.department, &rec, chrono::Utc::now());
});
