use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The secret key of keyed pseudonyms (HMAC-SHA256), e.g. `person_key`.
///
/// Comes from a file or the environment, never from config in git. `Debug`
/// prints `***`.
#[derive(Clone)]
pub struct PseudonymKey {
    /// The MAC keyed once (its inner and outer pads absorbed); cloned per use.
    keyed: Hmac<Sha256>,
    /// `k` + 8 hex digits.
    id: String,
}

impl PseudonymKey {
    /// The shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A key from raw bytes; `None` when shorter than [`Self::MIN_LEN`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        (bytes.len() >= Self::MIN_LEN).then(|| Self::keyed(&bytes))
    }

    fn keyed(bytes: &[u8]) -> Self {
        // HMAC accepts keys of any length, so this cannot fail.
        let keyed = <Hmac<Sha256> as KeyInit>::new_from_slice(bytes).expect("hmac takes any key length");
        let mut key = Self { keyed, id: String::new() };
        key.id = format!("k{}", &key.pseudonym("hutong/key-id")[..8]);
        key
    }

    /// The key's id: `k` and 8 hex digits derived from the key (never the key
    /// itself), so consumers can tell which key a pseudonym was made with
    /// and keys can rotate.
    pub fn key_id(&self) -> &str {
        &self.id
    }

    /// `<key id>:<hex HMAC-SHA256>` of `value`: a field pseudonymised on a topic.
    pub fn tagged_pseudonym(&self, value: &str) -> String {
        format!("{}:{}", self.id, self.pseudonym(value))
    }

    /// Hex HMAC-SHA256 of `value` under this key.
    pub fn pseudonym(&self, value: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(value.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }
}

impl std::fmt::Debug for PseudonymKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PseudonymKey(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc4231_case_2() {
        // RFC 4231 test case 2 uses a 4-byte key; pad check aside, verify the MAC itself.
        let key = PseudonymKey::keyed(b"Jefe");
        assert_eq!(
            key.pseudonym("what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn short_keys_refused_and_debug_hides_key() {
        assert!(PseudonymKey::new(b"short".to_vec()).is_none());
        let k = PseudonymKey::new(vec![7u8; 32]).unwrap();
        assert_eq!(format!("{k:?}"), "PseudonymKey(***)");
        let (id, other) = (k.key_id(), PseudonymKey::new(vec![8u8; 32]).unwrap());
        assert!(id.len() == 9 && id.starts_with('k'), "{id}");
        assert_ne!(id, other.key_id(), "another key, another id");
        assert_eq!(k.tagged_pseudonym("x"), format!("{id}:{}", k.pseudonym("x")));
    }
}
