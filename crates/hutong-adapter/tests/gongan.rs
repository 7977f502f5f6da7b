//! The 公安 household-registration adapter as shipped, and the adapter
//! format's refusals (unknown keys, targets outside the standard).

use std::path::{Path, PathBuf};

use hutong_adapter::{Adapter, AdapterError, Adapters, MapContext, PseudonymKey};
use hutong_standard::Standard;
use serde_json::json;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

fn key() -> PseudonymKey {
    PseudonymKey::new(b"adapter-test-key-0123".to_vec()).unwrap()
}

#[test]
fn maps_a_household_row_to_a_person() {
    let standard = Standard::load(&root()).unwrap();
    let adapters = Adapters::load(&root().join("departments"), &standard).unwrap();
    let a = adapters.get("gongan", "household_registration").expect("gongan adapter");
    let row = json!({"GMSFHM": " １１０１０５１９４９１２３１００２x ", "XM": "　张三 ", "XB": "女", "MZ": "汉族",
        "CSRQ": "19491231", "HJDZ_XZQH": "110105", "HJDZ_QHNXXDZ": "朝阳路１号"});
    let out = a.map(&row, &MapContext { key: &key(), source_id: "t", revision: 1, op: "upsert" }).unwrap();
    assert_eq!(out.len(), 1);
    let p = &out[0];
    assert_eq!(p.entity, "person");
    assert_eq!(
        p.record,
        json!({
            "person_key": key().pseudonym("11010519491231002X"),
            "citizen_id": "11010519491231002X",
            "name": "张三",
            "sex": "2",
            "birth_date": "1949-12-31",
            "ethnicity": "01",
            "household_registration": {"division_code": "110105", "address_text": "朝阳路1号"}
        })
    );
    assert_eq!(p.key.as_deref(), Some(key().pseudonym("11010519491231002X").as_str()));
    assert_eq!(standard.validate("person", &p.record), vec![]);
}

#[test]
fn reports_every_adapter_violation_with_its_target() {
    let standard = Standard::load(&root()).unwrap();
    let adapters = Adapters::load(&root().join("departments"), &standard).unwrap();
    let a = adapters.get("gongan", "household_registration").unwrap();
    let row =
        json!({"GMSFHM": "11010519491231002X", "XM": "张三", "XB": "M", "MZ": "火星族", "CSRQ": "1949年12月31日"});
    let err = a.map(&row, &MapContext { key: &key(), source_id: "t", revision: 1, op: "upsert" }).unwrap_err();
    let got: Vec<(&str, &str)> = err.iter().map(|v| (v.pointer.as_str(), v.rule.as_str())).collect();
    assert_eq!(got, [("/sex", "adapter:code"), ("/birth_date", "adapter:date"), ("/ethnicity", "adapter:code")]);
    assert!(err[0].message.contains("XB"), "names the source field: {}", err[0].message);
}

fn parse(text: &str) -> Result<Adapter, AdapterError> {
    let standard = Standard::load(&root()).unwrap();
    Adapter::parse(text, Path::new("test.toml"), &standard)
}

const HEAD: &str = "version = 1\ndepartment = \"d\"\nkind = \"k\"\nsource-version = \"1\"\ntitle = \"t\"\n";
const KEY: &str = "[[output]]\nentity = \"person\"\n[[output.field]]\nto = \"/person_key\"\nfrom = \"ID\"\ntransforms = [\"pseudonym\"]\n[[output.field]]\nto = \"/citizen_id\"\nfrom = \"ID\"\n[[output.field]]\nto = \"/name\"\nfrom = \"N\"\n";

#[test]
fn a_minimal_adapter_loads() {
    let a = parse(&format!("{HEAD}{KEY}")).unwrap();
    assert_eq!((a.department.as_str(), a.kind.as_str(), a.source_version.as_str()), ("d", "k", "1"));
    assert_eq!(a.entities().collect::<Vec<_>>(), ["person"]);
    let out = a
        .map(
            &json!({"ID": "11010519491231002X", "N": "张三", "unused": 1}),
            &MapContext { key: &key(), source_id: "s", revision: 1, op: "upsert" },
        )
        .unwrap();
    assert_eq!(out.len(), 1);
    let pseudonym = key().pseudonym("11010519491231002X");
    assert_eq!(out[0].entity, "person");
    assert_eq!(out[0].key.as_deref(), Some(pseudonym.as_str()));
    assert_eq!(
        out[0].record,
        json!({"person_key": pseudonym, "citizen_id": "11010519491231002X", "name": "张三"}),
        "exactly the three mapped fields"
    );
}

#[test]
fn unknown_keys_are_errors_naming_file_and_key() {
    let e = parse(&format!("{HEAD}colour = \"red\"\n{KEY}")).unwrap_err().to_string();
    assert!(e.contains("test.toml") && e.contains("colour"), "{e}");
    let e = parse(&format!("{HEAD}{KEY}tranforms = []\n")).unwrap_err().to_string();
    assert!(e.contains("tranforms"), "{e}");
}

#[test]
fn static_checks_refuse_what_does_not_fit_the_standard() {
    for (extra, words) in [
        ("[[output.field]]\nto = \"/shoe_size\"\nfrom = \"X\"\n", "/shoe_size is not in the standard"),
        (
            "[[output.field]]\nto = \"/sex\"\nfrom = \"X\"\ntransforms = [{ code = { list = \"nope\", unknown = \"reject\" } }]\n",
            "unknown code list",
        ),
        (
            "[[output.field]]\nto = \"/sex\"\nfrom = \"X\"\ntransforms = [{ code = { list = \"gb-t-2261.1\", unknown = { other = \"7\" } } }]\n",
            "not a code of",
        ),
        ("[[output.field]]\nto = \"/residence/nope\"\nfrom = \"X\"\n", "/residence/nope is not in the standard"),
        // A constant must be a code of its target's list (a new department's id not yet in
        // codes/department.json, most often): refused here, not on every record.
        ("[[output.field]]\nto = \"/ethnicity\"\nvalue = \"tuiyi\"\n", "value \"tuiyi\" is not a code of gb-t-3304"),
        // A date format that can never give a date.
        (
            "[[output.field]]\nto = \"/birth_date\"\nfrom = \"X\"\ntransforms = [{ date = [\"%m月%d日\"] }]\n",
            "has no year",
        ),
        (
            "[[output.field]]\nto = \"/sex\"\nfrom = \"X\"\ndefault = \"F\"\n",
            "default \"F\" is not a code of gb-t-2261.1",
        ),
    ] {
        let text = format!("{HEAD}{KEY}{extra}");
        let e = parse(&text).unwrap_err().to_string();
        assert!(e.contains(words), "{e} should mention {words}");
        // Errors point to the file and the line of the field.
        let line = text.lines().position(|l| l.starts_with("to = ") && extra.contains(l)).map(|i| i + 1);
        if let Some(line) = line.filter(|_| words.contains('/')) {
            assert!(e.contains(&format!("test.toml: line {line}:")), "{e} should point to line {line}");
        }
    }
    let no_name = KEY.replace("to = \"/name\"", "to = \"/sex\"");
    let e = parse(&format!("{HEAD}{no_name}")).unwrap_err().to_string();
    assert!(e.contains("required field /name"), "{e}");
    let e = parse(&HEAD.replace("version = 1", "version = 2").to_string()).unwrap_err().to_string();
    assert!(e.contains("output") || e.contains("version"), "{e}");
}
