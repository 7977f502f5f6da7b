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
    /// This key's number in the process (its clones share it): what remembered pseudonyms are
    /// filed under, never the id, which two keys may share.
    instance: u64,
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
        static INSTANCES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let instance = INSTANCES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut key = Self { keyed, id: String::new(), instance };
        key.id = format!("k{}", &key.mac_hex("hutong/key-id")[..8]);
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
    ///
    /// A record asks for the same one twice (its `person_key`, then its citizen ID pseudonymised
    /// on the topic): the last few answers of the thread are remembered, by key instance and value.
    pub fn pseudonym(&self, value: &str) -> String {
        RECENT.with_borrow_mut(|recent| {
            if let Some((_, _, hex)) = recent.iter().find(|(k, v, _)| *k == self.instance && v == value) {
                return hex.clone();
            }
            let hex = self.mac_hex(value);
            if recent.len() == RECENT_LEN {
                recent.pop_front();
            }
            recent.push_back((self.instance, value.to_owned(), hex.clone()));
            hex
        })
    }

    /// Hex HMAC-SHA256 of `value`, computed.
    fn mac_hex(&self, value: &str) -> String {
        let mut mac = self.keyed.clone();
        mac.update(value.as_bytes());
        let mut out = [0u8; 64];
        hex::encode_to_slice(mac.finalize().into_bytes(), &mut out).expect("32 bytes are 64 hex digits");
        String::from_utf8(out.to_vec()).expect("hex digits are ASCII")
    }
}

/// How many pseudonyms a thread remembers ([`PseudonymKey::pseudonym`]).
const RECENT_LEN: usize = 4;

thread_local! {
    /// (key instance, value, pseudonym), oldest first.
    static RECENT: std::cell::RefCell<std::collections::VecDeque<(u64, String, String)>> =
        const { std::cell::RefCell::new(std::collections::VecDeque::new()) };
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

    /// Remembered answers are the key's own: another key, or another value, computes anew.
    #[test]
    fn remembered_pseudonyms_are_per_key_and_value() {
        let (a, b) = (PseudonymKey::keyed(b"Jefe"), PseudonymKey::new(vec![9u8; 32]).unwrap());
        let expected = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
        let text = "what do ya want for nothing?";
        assert_eq!(a.pseudonym(text), expected);
        assert_eq!(a.pseudonym(text), expected, "remembered");
        assert_ne!(b.pseudonym(text), expected, "another key");
        assert_ne!(a.pseudonym("what do ya want for nothing!"), expected, "another value");
        for i in 0..10 {
            a.pseudonym(&i.to_string());
        }
        assert_eq!(a.pseudonym(text), expected, "computed again once forgotten");
    }
}
