//! Iteration over a source array (`[[output.each]]`), conditions on the normalised value
//! (`when` reading `value`), and a field joined from several source fields.

use std::path::{Path, PathBuf};

use hutong_adapter::{Adapter, MapContext, PseudonymKey};
use hutong_standard::Standard;
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

const EVENT: &str = r#"
version = 1
department = "rexian"
kind = "trail_test"
source-version = "1"
title = "t"

[[output]]
entity = "event"

[[output.field]]
to = "/event_key"
expr = "'rexian:' + src.no"

[[output.field]]
to = "/title"
from = "title"
transforms = ["trim", "nfkc"]

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
from = "state"
# `value` is the source value trimmed and NFKC-normalised: '　无 ' reads '无'.
when = "value != '无'"
transforms = ["trim", { map = { table = { "已受理" = "accepted", "办结" = "closed" }, unknown = "reject" } }]

[[output.each]]
over = "flow"
to = "/status_history"
when = "item.node != '备注'"

[[output.each.field]]
to = "/status"
from = "node"
transforms = ["trim", { map = { table = { "登记" = "reported", "受理" = "accepted", "办结" = "closed" }, unknown = "reject" } }]

[[output.each.field]]
to = "/at"
from = "time"
transforms = ["trim", { datetime = { formats = ["%Y-%m-%d %H:%M:%S"], timezone = "+08:00" } }]

[[output.each.field]]
to = "/note"
expr = "'第' + string(index + 1) + '步: ' + item.node + ' / ' + src.no"
"#;

fn adapter(text: &str) -> Result<Adapter, String> {
    let standard = Standard::load(&root()).unwrap();
    Adapter::parse(text, Path::new("trail_test.toml"), &standard).map_err(|e| e.to_string())
}

#[test]
fn each_maps_every_element_with_item_and_index() {
    let a = adapter(EVENT).unwrap();
    let key = PseudonymKey::new(b"adapter-test-key-0123".to_vec()).unwrap();
    let ctx = MapContext { key: &key, source_id: "t", revision: 1, op: "event" };
    let flow: Vec<_> = (0..14)
        .map(|i| {
            let node = match i {
                0 => "登记",
                5 => "备注",
                13 => "办结",
                _ => "受理",
            };
            json!({"node": node, "time": format!("2024-05-{:02} 09:00:00", i + 1)})
        })
        .collect();
    let row = json!({"no": "GD1", "title": "占道经营", "state": "　已受理 ", "flow": flow});
    let out = a.map(&row, &ctx).unwrap();
    let history = out[0].record["status_history"].as_array().unwrap();
    assert_eq!(history.len(), 13, "every step past any fixed limit, the 备注 step left out by `when`");
    assert_eq!(
        history[0],
        json!({"status": "reported", "at": "2024-05-01T09:00:00+08:00", "note": "第1步: 登记 / GD1"})
    );
    assert_eq!(history[5]["note"], "第7步: 受理 / GD1", "index is the source position");
    assert_eq!(history[12]["status"], "closed");
    assert_eq!(out[0].record["status"], "accepted");

    // `value` is the normalised value: a padded full-width 无 is dropped, not refused by the map.
    let none = json!({"no": "GD2", "title": "t", "state": "　无 "});
    let out = a.map(&none, &ctx).unwrap();
    assert!(out[0].record.get("status").is_none() && out[0].record.get("status_history").is_none());

    // An element's error names the element; a source that is not an array is refused.
    let bad = json!({"no": "GD3", "title": "t", "flow": [{"node": "登记", "time": "2024-05-01 09:00:00"}, {"node": "挂账", "time": "x"}]});
    let errs = a.map(&bad, &ctx).unwrap_err();
    let at: Vec<(&str, &str)> = errs.iter().map(|v| (v.pointer.as_str(), v.rule.as_str())).collect();
    assert_eq!(at, [("/status_history/1/status", "adapter:code"), ("/status_history/1/at", "adapter:datetime")]);
    assert!(errs[0].message.contains("flow[1].node"), "{}", errs[0].message);
    let errs = a.map(&json!({"no": "GD4", "title": "t", "flow": "登记"}), &ctx).unwrap_err();
    assert_eq!((errs[0].pointer.as_str(), errs[0].rule.as_str()), ("/status_history", "adapter:type"));
}

#[test]
fn each_targets_are_checked_against_the_standard() {
    let wrong = EVENT.replace("to = \"/note\"", "to = \"/remark\"");
    let e = adapter(&wrong).unwrap_err();
    assert!(e.contains("/status_history/0/remark") && e.contains("not in the standard"), "{e}");
    let e = adapter(
        &EVENT.replace("over = \"flow\"\nto = \"/status_history\"", "over = \"flow\"\nto = \"status_history\""),
    )
    .unwrap_err();
    assert!(e.contains("must be a JSON pointer"), "{e}");
    // Variables that do not exist where they stand fail at the check, not on every record.
    let e = adapter(&EVENT.replace("expr = \"'rexian:' + src.no\"", "expr = \"'rexian:' + item.no\"")).unwrap_err();
    assert!(e.contains("reads `item`") && e.contains("[[output.each]]"), "{e}");
    let e = adapter(&EVENT.replace("when = \"item.node != '备注'\"", "when = \"value != ''\"")).unwrap_err();
    assert!(e.contains("reads `value`"), "{e}");
    // A string 'value' or a field named value is not the variable.
    let ok = EVENT.replace("when = \"value != '无'\"", "when = \"has(src.state) && src.state != 'value'\"");
    adapter(&ok).unwrap();
    // Two writers of one array are refused.
    let twice = format!(
        "{EVENT}\n[[output.each]]\nover = \"flow2\"\nto = \"/status_history\"\n\n[[output.each.field]]\nto = \"/status\"\nfrom = \"node\"\n"
    );
    let e = adapter(&twice).unwrap_err();
    assert!(e.contains("one array, one writer"), "{e}");
}

#[test]
fn joined_fields_need_every_part_and_keep_numbers_and_booleans_as_written() {
    let joined = EVENT.replace(
        "from = \"title\"\ntransforms = [\"trim\", \"nfkc\"]",
        "from = [\"street\", \"building\", \"flag\"]\nsep = \"·\"",
    );
    assert_ne!(joined, EVENT, "the title is joined");
    let a = adapter(&joined).unwrap();
    let key = PseudonymKey::new(b"adapter-test-key-0123".to_vec()).unwrap();
    let ctx = MapContext { key: &key, source_id: "t", revision: 1, op: "upsert" };
    let title = |row: serde_json::Value| a.map(&row, &ctx).unwrap()[0].record.get("title").cloned();
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
        json!({"no": "J5", "street": "a", "building": " \u{3000}", "flag": true}),
    ] {
        assert_eq!(title(missing.clone()), None, "{missing}");
    }
    // An object is no part, even after a missing one.
    for bad in [json!({"no": "J6", "street": {"x": 1}, "building": "b", "flag": "c"}), json!({"no": "J7", "flag": [1]})]
    {
        let errs = a.map(&bad, &ctx).unwrap_err();
        assert_eq!((errs[0].pointer.as_str(), errs[0].rule.as_str()), ("/title", "adapter:type"), "{bad}");
    }
}
