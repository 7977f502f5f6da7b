//! A field's source value: one payload field, or several joined by `sep`.

use std::path::{Path, PathBuf};

use hutong_adapter::{Adapter, MapContext, PseudonymKey};
use hutong_standard::Standard;
use serde_json::{Value, json};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

const EVENT: &str = r#"
version = 1
department = "rexian"
kind = "join_test"
source-version = "1"
title = "t"

[[output]]
entity = "event"

[[output.field]]
to = "/event_key"
from = "no"

[[output.field]]
to = "/title"
from = ["street", "building", "flag"]
sep = "·"

[[output.field]]
to = "/category"
value = "0602"

[[output.field]]
to = "/channel"
value = "02"

[[output.field]]
to = "/reported_at"
value = "2024-05-03T09:00:00+08:00"

[[output.field]]
to = "/status"
value = "reported"
"#;

fn title(row: Value) -> Option<Value> {
    let standard = Standard::load(&root()).unwrap();
    let a = Adapter::parse(EVENT, Path::new("join_test.toml"), &standard).unwrap();
    let key = PseudonymKey::new(b"adapter-test-key-0123".to_vec()).unwrap();
    let ctx = MapContext { key: &key, source_id: "t", revision: 1, op: "upsert" };
    let out = a.map(&row, &ctx).unwrap();
    out[0].record.get("title").cloned()
}

#[test]
fn joined_fields_need_every_part_and_keep_numbers_and_booleans_as_written() {
    // Strings, numbers and booleans joined in the order named, by `sep`.
    assert_eq!(
        title(json!({"no": "J1", "street": "石灰桥", "building": 5, "flag": true})),
        Some(json!("石灰桥·5·true"))
    );
    assert_eq!(title(json!({"no": "J2", "street": "a", "building": "2.5", "flag": false})), Some(json!("a·2.5·false")));
    // A missing, null or blank part leaves the whole field out.
    for missing in [
        json!({"no": "J3", "street": "a", "flag": true}),
        json!({"no": "J4", "street": "a", "building": null, "flag": true}),
        json!({"no": "J5", "street": "a", "building": " 　", "flag": true}),
    ] {
        assert_eq!(title(missing.clone()), None, "{missing}");
    }
    // A single source field is taken as it is.
    let standard = Standard::load(&root()).unwrap();
    let a = Adapter::parse(EVENT, Path::new("join_test.toml"), &standard).unwrap();
    let key = PseudonymKey::new(b"adapter-test-key-0123".to_vec()).unwrap();
    let ctx = MapContext { key: &key, source_id: "t", revision: 1, op: "upsert" };
    let out = a.map(&json!({"no": "J6", "street": "a", "building": "b", "flag": "c"}), &ctx).unwrap();
    assert_eq!(out[0].record["event_key"], "J6");
    assert_eq!(out[0].record["title"], "a·b·c");
    // An object is no part.
    let errs = a.map(&json!({"no": "J7", "street": {"x": 1}, "building": "b", "flag": "c"}), &ctx).unwrap_err();
    assert_eq!((errs[0].pointer.as_str(), errs[0].rule.as_str()), ("/title", "adapter:type"));
}
