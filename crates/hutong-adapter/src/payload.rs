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
    let text: std::borrow::Cow<'_, str> = match charset.trim().to_ascii_lowercase().as_str() {
        "" | "utf-8" | "utf8" => std::str::from_utf8(bytes)
            .map_err(|e| {
                Violation::new("", "payload:charset", format!("payload is not valid UTF-8: {e}; set charset"))
            })?
            .into(),
        "gb18030" | "gbk" | "gb2312" => {
            let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(bytes);
            if had_errors {
                return Err(Violation::new("", "payload:charset", format!("payload is not valid {charset}")));
            }
            text
        }
        other => {
            return Err(Violation::new(
                "",
                "payload:charset",
                format!("unsupported charset {other:?}; use utf-8, gb18030 or gbk"),
            ));
        }
    };
    if nesting_depth(&text) > limits.max_depth {
        return Err(Violation::new("", "payload:depth", format!("payload nests deeper than {}", limits.max_depth)));
    }
    let value: Value = serde_json::from_str(&text)
        .map_err(|e| Violation::new("", "payload:json", format!("payload is not JSON: {e}")))?;
    if !value.is_object() {
        return Err(Violation::new("", "payload:json", "payload must be a JSON object"));
    }
    Ok(value)
}

/// Maximum bracket nesting outside strings; cheap and run before parsing.
fn nesting_depth(text: &str) -> usize {
    let (mut depth, mut max, mut in_str, mut escaped) = (0usize, 0usize, false, false);
    for b in text.bytes() {
        if in_str {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_str = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'{' | b'[' => {
                depth += 1;
                max = max.max(depth);
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gbk_payload_decodes() {
        let (bytes, _, _) = encoding_rs::GBK.encode(r#"{"XM":"张三"}"#);
        let v = decode_payload(&bytes, "GBK", PayloadLimits::default()).unwrap();
        assert_eq!(v["XM"], "张三");
    }

    #[test]
    fn bad_inputs_are_violations() {
        let lim = PayloadLimits { max_bytes: 64, max_depth: 3 };
        assert_eq!(decode_payload(&[0xff, 0xfe], "", lim).unwrap_err().rule, "payload:charset");
        assert_eq!(decode_payload(&[b' '; 65], "", lim).unwrap_err().rule, "payload:size");
        assert_eq!(decode_payload(br#"{"a":[[[1]]]}"#, "", lim).unwrap_err().rule, "payload:depth");
        assert_eq!(decode_payload(br#"{"a":"[[[[["}"#, "", lim).unwrap()["a"], "[[[[[");
        assert_eq!(decode_payload(b"[1]", "", lim).unwrap_err().rule, "payload:json");
        assert_eq!(decode_payload(b"{", "", lim).unwrap_err().rule, "payload:json");
        assert_eq!(decode_payload(b"{}", "latin1", lim).unwrap_err().rule, "payload:charset");
    }
}
