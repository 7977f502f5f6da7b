use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The secret key of keyed pseudonyms (HMAC-SHA256), e.g. `person_key`.
///
/// Comes from a file or the environment, never from config in git. `Debug`
/// prints `***`.
#[derive(Clone)]
pub struct PseudonymKey(Vec<u8>);

impl PseudonymKey {
    /// The shortest key accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// A key from raw bytes; `None` when shorter than [`Self::MIN_LEN`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Option<Self> {
        let bytes = bytes.into();
        (bytes.len() >= Self::MIN_LEN).then_some(Self(bytes))
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
        let key = PseudonymKey(b"Jefe".to_vec());
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
    }
}
