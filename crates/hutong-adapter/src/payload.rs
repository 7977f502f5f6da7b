use hutong_standard::Violation;
use serde_json::Value;

/// Bounds on a source payload, checked before it is parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadLimits {
    /// Largest payload in bytes.
    pub max_bytes: usize,
    /// Deepest nesting of arrays and objects.
    pub max_depth: usize,
}

impl Default for PayloadLimits {
    fn default() -> Self {
        Self { max_bytes: 256 * 1024, max_depth: 32 }
    }
}

/// Decodes a payload in `charset` (empty or `utf-8`, `gb18030`, `gbk`) and parses
/// it as one JSON object, within `limits`. Errors are violations at the root.
pub fn decode_payload(bytes: &[u8], charset: &str, limits: PayloadLimits) -> Result<Value, Violation> {
    if bytes.len() > limits.max_bytes {
        return Err(Violation::new(
            "",
            "payload:size",
            format!("payload is {} bytes, the limit is {}", bytes.len(), limits.max_bytes),
        ));
    }
    let charset = charset.trim();
    let is = |names: &[&str]| names.iter().any(|n| charset.eq_ignore_ascii_case(n));
    let text: std::borrow::Cow<'_, str> = match charset {
        _ if is(&["", "utf-8", "utf8"]) => std::str::from_utf8(bytes)
            .map_err(|e| {
                Violation::new("", "payload:charset", format!("payload is not valid UTF-8: {e}; set charset"))
            })?
            .into(),
        _ if is(&["gb18030", "gbk", "gb2312"]) => {
            let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(bytes);
            if had_errors {
                return Err(Violation::new("", "payload:charset", format!("payload is not valid {charset}")));
            }
            text
        }
        other => {
            let other = other.to_ascii_lowercase();
            return Err(Violation::new(
                "",
                "payload:charset",
                format!("unsupported charset {other:?}; use utf-8, gb18030 or gbk"),
            ));
        }
    };
    // Depth is checked on the parsed value (a walk of the containers only, cheaper than a
    // scan of every byte); serde_json's own recursion limit (128) bounds the parse itself.
    // A payload it refuses is measured, on that error path only, to tell "too deep" from
    // "not JSON" without reading the error's words.
    let too_deep = || Violation::new("", "payload:depth", format!("payload nests deeper than {}", limits.max_depth));
    let mut de = serde_json::Deserializer::from_str(&text);
    let value = serde::Deserializer::deserialize_any(&mut de, Payload).and_then(|v| de.end().map(|()| v));
    let value: Value = value.map_err(|e| {
        if bracket_depth(&text) > limits.max_depth {
            too_deep()
        } else {
            Violation::new("", "payload:json", format!("payload is not JSON: {e}"))
        }
    })?;
    if nesting_depth(&value) > limits.max_depth {
        return Err(too_deep());
    }
    if !value.is_object() {
        return Err(Violation::new("", "payload:json", "payload must be a JSON object"));
    }
    Ok(value)
}

/// The deepest nesting of `[`/`{` in JSON text, brackets inside strings not counted
/// (text that is not JSON is measured as far as it goes).
fn bracket_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        match (in_string, escaped, b) {
            (true, true, _) => escaped = false,
            (true, false, b'\\') => escaped = true,
            (true, false, b'"') => in_string = false,
            (true, false, _) => {}
            (false, _, b'"') => in_string = true,
            (false, _, b'[' | b'{') => {
                depth += 1;
                max = max.max(depth);
            }
            (false, _, b']' | b'}') => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Nesting of arrays and objects (a scalar is 0, `{}` is 1).
fn nesting_depth(v: &Value) -> usize {
    match v {
        Value::Array(items) => 1 + items.iter().map(nesting_depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(nesting_depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A payload as `serde_json::Value` reads it, its top-level object sized once: a payload has
/// tens of fields, and an object grown from empty re-hashed every key several times. One
/// difference: where serde_json's `raw_value` feature is on (axum's `json` turns it on in builds
/// with the profile service), `Value` reads a top-level object whose first key is serde_json's
/// private raw-value marker as the JSON text of its value; here the top level is always the
/// object it is.
struct Payload;

impl<'de> serde::de::Visitor<'de> for Payload {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = serde_json::Map::with_capacity(map.size_hint().unwrap_or(0).max(TOP_LEVEL_FIELDS));
        while let Some((k, v)) = map.next_entry::<String, Value>()? {
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }

    // Anything else is read as serde_json reads it (and refused as no object afterwards).
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Value>()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// What a payload's top-level object is sized for before it is read: most departments' rows
/// have 15 to 60 fields.
const TOP_LEVEL_FIELDS: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_payload_decodes() {
        let (bytes, _, _) = encoding_rs::GBK.encode(r#"{"XM":"张三"}"#);
        let v = decode_payload(&bytes, "GBK", PayloadLimits::default()).unwrap();
        assert_eq!(v["XM"], "张三");
    }

    /// The payload is the value serde_json reads, keys in their order, the last of a repeated
    /// key kept; trailing text and other shapes are refused as before.
    #[test]
    fn a_payload_reads_as_serde_json_reads_it() {
        let wide: String = (0..70).map(|i| format!("\"f{i}\":{i},")).collect();
        for text in [
            r#"{"XM":"张三","b":{"c":[1,-2,3.5,18446744073709551615,true,null,"\u5f20"]},"a":"x"}"#.to_owned(),
            r#"{"k":1,"j":2,"k":3}"#.to_owned(),
            r#"{}"#.to_owned(),
            " {\"e\":1e3,\"n\":-0.0,\"z\":0} \n".to_owned(),
            format!("{{{wide}\"last\":[{{}},[]]}}"),
        ] {
            let ours = decode_payload(text.as_bytes(), "", PayloadLimits::default()).unwrap();
            let theirs: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(ours, theirs, "{text}");
            assert_eq!(ours.to_string(), theirs.to_string(), "key order: {text}");
        }
        let lim = PayloadLimits::default();
        for broken in [&br#"{"a":1} x"#[..], b"", b"  \n"] {
            assert_eq!(decode_payload(broken, "", lim).unwrap_err().rule, "payload:json");
        }
        for other in [&b"\"s\""[..], b"1", b"null", b"true", b"[{}]"] {
            assert_eq!(decode_payload(other, "", lim).unwrap_err().message, "payload must be a JSON object");
        }
    }

    #[test]
    fn bad_inputs_are_violations() {
        let lim = PayloadLimits { max_bytes: 64, max_depth: 3 };
        assert_eq!(decode_payload(&[0xff, 0xfe], "", lim).unwrap_err().rule, "payload:charset");
        assert_eq!(decode_payload(&[b' '; 65], "", lim).unwrap_err().rule, "payload:size");
        assert_eq!(decode_payload(br#"{"a":[[[1]]]}"#, "", lim).unwrap_err().rule, "payload:depth");
        assert_eq!(decode_payload(br#"{"a":"[[[[["}"#, "", lim).unwrap()["a"], "[[[[[");
        assert!(decode_payload(br#"{"a":[[1]]}"#, "", lim).is_ok(), "depth 3 is within 3");
        let hostile = format!("{{\"a\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
        let big = PayloadLimits { max_bytes: 1 << 20, max_depth: 32 };
        assert_eq!(decode_payload(hostile.as_bytes(), "", big).unwrap_err().rule, "payload:depth");
        assert_eq!(decode_payload(b"[1]", "", lim).unwrap_err().rule, "payload:json");
        assert_eq!(decode_payload(b"{", "", lim).unwrap_err().rule, "payload:json");
        assert_eq!(decode_payload(b"{}", "latin1", lim).unwrap_err().rule, "payload:charset");
        // Brackets inside strings are not nesting; a broken deep payload is still "too deep".
        assert_eq!(bracket_depth(r#"{"a":"[[[[{{{{\"[[","b":[1]}"#), 2);
        let broken = format!("{{\"a\":{}", "[".repeat(200));
        assert_eq!(decode_payload(broken.as_bytes(), "", big).unwrap_err().rule, "payload:depth");
        assert_eq!(decode_payload(br#"{"a":[1,}"#, "", big).unwrap_err().rule, "payload:json");
    }
}
