//! Check digits and structural checks of national identifiers.
//!
//! - GB 11643-1999 citizen identity number: ISO 7064 MOD 11-2.
//! - GB 32100-2015 unified social credit code: MOD 31, with the embedded
//!   GB 11714 organisation code and its own MOD 11 check.

use chrono::NaiveDate;

const GB11643_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const GB11643_CHECK: &[u8; 11] = b"10X98765432";

/// Why a citizen identity number is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CitizenIdError {
    /// A legacy 15-digit number (GB 11643-1989): no century, no check digit.
    #[error("legacy 15-digit number (GB 11643-1989); it must be converted to 18 characters")]
    Legacy15,
    /// Not 18 characters.
    #[error("must be 18 characters, got {0}")]
    Length(usize),
    /// Something other than 17 digits and a digit or `X`.
    #[error("must be 17 digits followed by a digit or X")]
    Charset,
    /// The birth date in positions 7-14 is not a real date.
    #[error("birth date {0} is not a real date")]
    BirthDate(String),
    /// The check character does not match ISO 7064 MOD 11-2.
    #[error("check character is {found}, expected {expected} (ISO 7064 MOD 11-2)")]
    CheckDigit {
        /// The character in the number.
        found: char,
        /// The character the first 17 digits require.
        expected: char,
    },
}

/// The ISO 7064 MOD 11-2 check character for the first 17 digits of a citizen ID.
///
/// Returns `None` when `body` is not exactly 17 ASCII digits.
pub fn gb11643_check_char(body: &str) -> Option<char> {
    let bytes = body.as_bytes();
    if bytes.len() != 17 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let sum: u32 = bytes.iter().zip(GB11643_WEIGHTS).map(|(b, w)| u32::from(b - b'0') * w).sum();
    Some(char::from(GB11643_CHECK[(sum % 11) as usize]))
}

/// A valid, made-up citizen identity number for sequence number `seq`, for benchmarks,
/// tests and demonstrations: division 110105, a birth date from 1950-01-01 on, distinct for
/// every `seq` below 19,980,000.
pub fn synthetic_citizen_id(seq: u32) -> String {
    let day =
        chrono::NaiveDate::from_ymd_opt(1950, 1, 1).expect("a date") + chrono::Days::new(u64::from(seq / 999) % 20_000);
    let body = format!("110105{}{:03}", day.format("%Y%m%d"), 1 + seq % 999);
    let check = gb11643_check_char(&body).expect("17 digits");
    format!("{body}{check}")
}

/// Checks an 18-character citizen identity number: charset, real birth date,
/// check character. (The address prefix is checked by the standard against the
/// division list, since retired codes stay valid in old numbers.)
pub fn check_gb11643(id: &str) -> Result<(), CitizenIdError> {
    let len = id.chars().count();
    if len == 15 && id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CitizenIdError::Legacy15);
    }
    if len != 18 {
        return Err(CitizenIdError::Length(len));
    }
    let (body, check) = id.split_at(17);
    let found = check.chars().next().unwrap_or(' ');
    if !body.bytes().all(|b| b.is_ascii_digit()) || !(found.is_ascii_digit() || found == 'X') {
        return Err(CitizenIdError::Charset);
    }
    let birth = &body[6..14];
    if NaiveDate::parse_from_str(birth, "%Y%m%d").is_err() || &birth[..2] < "18" {
        return Err(CitizenIdError::BirthDate(birth.to_owned()));
    }
    let expected = gb11643_check_char(body).ok_or(CitizenIdError::Charset)?;
    if found != expected {
        return Err(CitizenIdError::CheckDigit { found, expected });
    }
    Ok(())
}

/// What a valid citizen identity number says of its holder that a record can contradict: the
/// name of the check (`citizen-id-sex`, `citizen-id-birth-date`), the record's field, and the
/// value the number implies (sex code of GB/T 2261.1: odd 17th digit `1`, even `2`; birth date
/// as ISO 8601). Empty for a number that is not valid.
pub fn citizen_id_implies(id: &str) -> Vec<(&'static str, &'static str, String)> {
    if check_gb11643(id).is_err() {
        return Vec::new();
    }
    let birth = format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]);
    vec![(CITIZEN_ID_SEX, "sex", citizen_id_sex(id).to_owned()), (CITIZEN_ID_BIRTH_DATE, "birth_date", birth)]
}

/// The sex code (GB/T 2261.1) a citizen ID's 17th digit gives: odd `1` 男, even `2` 女. The
/// number is not checked; one shorter than 17 characters gives `0` 未知的性别.
pub fn citizen_id_sex(id: &str) -> &'static str {
    match id.as_bytes().get(16) {
        Some(d) if d.is_ascii_digit() && d % 2 == 1 => "1",
        Some(d) if d.is_ascii_digit() => "2",
        _ => "0",
    }
}

/// The check of a record's `sex` against its citizen ID's 17th digit.
pub const CITIZEN_ID_SEX: &str = "citizen-id-sex";
/// The check of a record's `birth_date` against its citizen ID's digits 7–14.
pub const CITIZEN_ID_BIRTH_DATE: &str = "citizen-id-birth-date";

/// Whether `value` of `field` contradicts what the citizen ID implies (`expected`). A sex of
/// `0` 未知的性别 or `9` 未说明的性别 says nothing the number could contradict.
pub fn contradicts(field: &str, value: &str, expected: &str) -> bool {
    value != expected && (field != "sex" || matches!(value, "1" | "2"))
}

/// Converts a legacy 15-digit number to 18 characters (century `19`, check
/// character appended), as public security offices do. `None` if not 15 digits.
pub fn gb11643_from_legacy15(id: &str) -> Option<String> {
    if id.len() != 15 || !id.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let body = format!("{}19{}", &id[..6], &id[6..]);
    let check = gb11643_check_char(&body)?;
    Some(format!("{body}{check}"))
}

const GB32100_ALPHABET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
const GB32100_WEIGHTS: [u32; 17] = [1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28];
const GB11714_WEIGHTS: [u32; 8] = [3, 7, 9, 10, 5, 8, 4, 2];

/// Why a unified social credit code is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditCodeError {
    /// Not 18 characters.
    #[error("must be 18 characters, got {0}")]
    Length(usize),
    /// A character outside `0-9A-Y` without I, O, S, V, Z.
    #[error("character {0:?} is not in the GB 32100 alphabet (no I, O, S, V, Z)")]
    Charset(char),
    /// The embedded GB 11714 organisation code fails its own check.
    #[error("embedded organisation code (GB 11714) check is {found}, expected {expected}")]
    OrganisationCode {
        /// The character in the code.
        found: char,
        /// The character GB 11714 requires.
        expected: char,
    },
    /// The final check character does not match MOD 31.
    #[error("check character is {found}, expected {expected} (GB 32100 MOD 31)")]
    CheckDigit {
        /// The character in the code.
        found: char,
        /// The character the first 17 require.
        expected: char,
    },
}

fn gb32100_value(c: char) -> Option<u32> {
    GB32100_ALPHABET.find(c).map(|i| i as u32)
}

/// The GB 32100 check character for the first 17 characters.
pub fn gb32100_check_char(body: &str) -> Option<char> {
    let values: Vec<u32> = body.chars().map(gb32100_value).collect::<Option<_>>()?;
    if values.len() != 17 {
        return None;
    }
    let sum: u32 = values.iter().zip(GB32100_WEIGHTS).map(|(v, w)| v * w).sum();
    let check = (31 - sum % 31) % 31;
    GB32100_ALPHABET.chars().nth(check as usize)
}

/// The GB 11714 check character for the first 8 characters of an organisation code.
pub fn gb11714_check_char(body: &str) -> Option<char> {
    let values: Vec<u32> = body.chars().map(|c| c.to_digit(36)).collect::<Option<_>>()?;
    if values.len() != 8 {
        return None;
    }
    let sum: u32 = values.iter().zip(GB11714_WEIGHTS).map(|(v, w)| v * w).sum();
    Some(match 11 - sum % 11 {
        10 => 'X',
        11 => '0',
        n => char::from_digit(n, 10)?,
    })
}

/// Checks an 18-character unified social credit code (GB 32100), including
/// the embedded GB 11714 organisation code (characters 9-17).
pub fn check_gb32100(code: &str) -> Result<(), CreditCodeError> {
    let len = code.chars().count();
    if len != 18 {
        return Err(CreditCodeError::Length(len));
    }
    if let Some(bad) = code.chars().find(|c| gb32100_value(*c).is_none()) {
        return Err(CreditCodeError::Charset(bad));
    }
    let org = &code[8..17];
    let org_found = org.chars().last().unwrap_or(' ');
    match gb11714_check_char(&org[..8]) {
        Some(expected) if expected == org_found => {}
        Some(expected) => return Err(CreditCodeError::OrganisationCode { found: org_found, expected }),
        None => return Err(CreditCodeError::Charset(org_found)),
    }
    let found = code.chars().last().unwrap_or(' ');
    let expected = gb32100_check_char(&code[..17]).ok_or(CreditCodeError::Length(len))?;
    if found != expected {
        return Err(CreditCodeError::CheckDigit { found, expected });
    }
    Ok(())
}

/// A normalised Chinese mainland phone number: an 11-digit mobile
/// (`1[3-9]` + 9 digits), or a landline `0AREA-LOCAL[-EXT]` with a 3- or
/// 4-digit area code (010, 02x: 3; others: 4), a 7- or 8-digit local number
/// not starting with 0 or 1, and an optional extension of up to 6 digits.
pub fn check_cn_phone(s: &str) -> bool {
    let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
    let b = s.as_bytes();
    if b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) && digits(s) {
        return true;
    }
    let mut parts = s.split('-');
    let (Some(area), Some(local), ext, None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let area_ok = digits(area)
        && area.starts_with('0')
        && match area.as_bytes().get(1) {
            Some(b'1' | b'2') => area.len() == 3,
            Some(b'3'..=b'9') => area.len() == 4,
            _ => false,
        };
    let local_ok = digits(local) && (7..=8).contains(&local.len()) && !local.starts_with(['0', '1']);
    let ext_ok = ext.is_none_or(|e| digits(e) && e.len() <= 6);
    area_ok && local_ok && ext_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_ids_are_valid_and_distinct() {
        let ids: std::collections::BTreeSet<String> = (0..5_000).map(synthetic_citizen_id).collect();
        assert_eq!(ids.len(), 5_000);
        assert!(
            ids.iter().all(|id| check_gb11643(id).is_ok()),
            "{:?}",
            ids.iter().find(|id| check_gb11643(id).is_err())
        );
        assert_eq!(
            synthetic_citizen_id(0),
            format!("11010519500101001{}", gb11643_check_char("11010519500101001").unwrap())
        );
    }

    #[test]
    fn gb11643_published_example() {
        // The worked example of GB 11643-1999 annex: 11010519491231002X.
        assert_eq!(gb11643_check_char("11010519491231002"), Some('X'));
        assert_eq!(check_gb11643("11010519491231002X"), Ok(()));
        // 440524188001010014 is the other commonly cited example.
        assert_eq!(check_gb11643("440524188001010014"), Ok(()));
    }

    #[test]
    fn gb11643_rejects_wrong_check_digit() {
        assert_eq!(check_gb11643("110105194912310021"), Err(CitizenIdError::CheckDigit { found: '1', expected: 'X' }));
    }

    #[test]
    fn gb11643_rejects_bad_dates_charset_and_length() {
        // 1980-02-30 does not exist
        let body = "11010519800230001";
        let id = format!("{body}{}", gb11643_check_char(body).unwrap());
        assert!(matches!(check_gb11643(&id), Err(CitizenIdError::BirthDate(_))));
        assert_eq!(check_gb11643("11010519491231002x"), Err(CitizenIdError::Charset));
        assert_eq!(check_gb11643("1101051949123100"), Err(CitizenIdError::Length(16)));
        assert_eq!(check_gb11643("110105491231002"), Err(CitizenIdError::Legacy15));
    }

    #[test]
    fn cn_phones() {
        for ok in ["13800138000", "19912345678", "010-62751234", "0571-87654321", "0571-87654321-801", "020-8888888"] {
            assert!(check_cn_phone(ok), "{ok}");
        }
        for bad in [
            "12800138000",
            "1380013800",
            "+8613800138000",
            "0571 87654321",
            "571-87654321",
            "0571-0765432",
            "0571-876543210",
            "010-62751234-1234567",
            "0571-87654321-801-1",
            "13800138000-1",
        ] {
            assert!(!check_cn_phone(bad), "{bad}");
        }
    }

    #[test]
    fn gb11643_legacy_conversion() {
        assert_eq!(gb11643_from_legacy15("110105491231002").as_deref(), Some("11010519491231002X"));
        assert_eq!(gb11643_from_legacy15("11010549123100"), None);
    }

    #[test]
    fn gb32100_known_codes() {
        // Codes published on business licences of well-known companies.
        for code in ["9144030071526726XG", "91330100799655058B", "914403001922038216", "91110000802100433B"] {
            assert_eq!(check_gb32100(code), Ok(()), "{code}");
        }
        assert!(matches!(check_gb32100("911100001011234567"), Err(CreditCodeError::CheckDigit { .. })));
        // Build one from parts and check it round-trips.
        let org_body = "MA1K4L0A";
        let org = format!("{org_body}{}", gb11714_check_char(org_body).unwrap());
        let body = format!("91110105{org}");
        let code = format!("{body}{}", gb32100_check_char(&body).unwrap());
        assert_eq!(check_gb32100(&code), Ok(()));
        let mut broken = code.clone();
        broken.replace_range(17..18, if code.ends_with('0') { "1" } else { "0" });
        assert!(matches!(check_gb32100(&broken), Err(CreditCodeError::CheckDigit { .. })));
        assert!(matches!(check_gb32100("91110105MA1K4L0AZ0"), Err(CreditCodeError::Charset('Z'))));
    }

    #[test]
    fn gb11714_embedded_in_published_codes() {
        // Tencent's organisation code 71526726-X, Huawei's 19220382-1.
        assert_eq!(gb11714_check_char("71526726"), Some('X'));
        assert_eq!(gb11714_check_char("19220382"), Some('1'));
        assert!(matches!(check_gb32100("9144030071526727XG"), Err(CreditCodeError::OrganisationCode { .. })));
    }
}
