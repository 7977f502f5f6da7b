use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The secret key of keyed pseudonyms (HMAC-SHA256), e.g. `person_key`.
///
/// Comes from a file or the environment, never from config in git. `Debug`
/// prints `***`.
#[derive(Clone)]
pub struct PseudonymKey(Vec<u8>, String);

impl PseudonymKey {
    /// The shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A key from raw bytes; `None` when shorter than [`Self::MIN_LEN`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        (bytes.len() >= Self::MIN_LEN).then(|| {
            let mut key = Self(bytes, String::new());
            key.1 = format!("k{}", &key.pseudonym("hutong/key-id")[..8]);
            key
        })
    }

    /// The key's id: `k` and 8 hex digits derived from the key (never the key
    /// itself), so consumers can tell which key a pseudonym was made with
    /// and keys can rotate.
    pub fn key_id(&self) -> &str {
        &self.1
    }

    /// `<key id>:<hex HMAC-SHA256>` of `value`: a field pseudonymised on a topic.
    pub fn tagged_pseudonym(&self, value: &str) -> String {
        format!("{}:{}", self.1, self.pseudonym(value))
    }

    /// Hex HMAC-SHA256 of `value` under this key.
    pub fn pseudonym(&self, value: &str) -> String {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0).expect("hmac takes any key length");
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
        let key = PseudonymKey(b"Jefe".to_vec(), String::new());
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
