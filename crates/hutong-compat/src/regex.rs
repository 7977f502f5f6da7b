//! Whether a `patternProperties` pattern matches a property name.
//!
//! Confluent decides whether a property is covered by a partially open content
//! model with Java's `Pattern.matcher(name).find()`. The `regex` crate (linear
//! time, so a hostile pattern cannot stall the checker) gives the same answer
//! for the ECMA-262/Java subset schemas use; a pattern it cannot compile
//! (lookaround, back-references) matches nothing. Compiled patterns are cached
//! per thread, since one diff asks about the same pattern for many names.

use std::{cell::RefCell, collections::HashMap};

thread_local! {
    static CACHE: RefCell<HashMap<String, Option<regex::Regex>>> = RefCell::new(HashMap::new());
}

/// Whether `pattern` is found anywhere in `text` (Java's `find()`).
pub(crate) fn pattern_finds(pattern: &str, text: &str) -> bool {
    CACHE.with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() > 1024 {
            cache.clear();
        }
        cache
            .entry(pattern.to_owned())
            .or_insert_with(|| regex::RegexBuilder::new(pattern).size_limit(1 << 20).build().ok())
            .as_ref()
            .is_some_and(|r| r.is_match(text))
    })
}

#[cfg(test)]
mod tests {
    use super::pattern_finds as f;

    #[test]
    fn anchors_and_literals() {
        assert!(f("^S_", "S_name"));
        assert!(!f("^S_", "xS_name"));
        assert!(f("S_", "xS_name"));
        assert!(f("name$", "S_name"));
        assert!(!f("^name$", "S_name"));
        assert!(f("", "anything"));
    }

    #[test]
    fn classes_and_quantifiers() {
        assert!(f("^[a-z]+_[0-9]{2,3}$", "abc_12"));
        assert!(!f("^[a-z]+_[0-9]{2,3}$", "abc_1"));
        assert!(!f("^[a-z]+_[0-9]{2,3}$", "abc_1234"));
        assert!(f("^\\d+$", "123"));
        assert!(!f("^\\d+$", "12a"));
        assert!(f("^[^_]*$", "abc"));
        assert!(!f("^[^_]*$", "a_c"));
        assert!(f("^\\w+\\.\\w+$", "a.b"));
        assert!(f("^a{2}$", "aa"));
    }

    #[test]
    fn groups_and_alternation() {
        assert!(f("^(foo|bar)_(?:x|y)+$", "bar_xyx"));
        assert!(!f("^(foo|bar)_(?:x|y)+$", "baz_x"));
        assert!(f("^(ab)*c$", "ababc"));
        assert!(f("^(a*)*b$", "aaab"));
        assert!(!f("^(a*)*b$", "aaaa"));
        assert!(f("^a.*?z$", "abcz"));
    }

    #[test]
    fn hostile_patterns_run_in_linear_time() {
        // On a thread of its own with a generous bound: a backtracking regression fails, not hangs.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let text = format!("{}b", "a".repeat(10_000));
            let _ = tx.send((f("^(a+)+$", &text), f("^(a|aa)*$", &text)));
        });
        let found = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("hostile patterns hang");
        assert_eq!(found, (false, false));
    }

    #[test]
    fn unsupported_matches_nothing() {
        assert!(!f("(?=x)", "x"));
        assert!(!f("(a", "a"));
        assert!(!f("(a)\\1", "aa"));
    }
}
