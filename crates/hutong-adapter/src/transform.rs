//! The runtime form of transforms: a source string in, a string or a failure out.

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, SecondsFormat};
use hutong_standard::{CodeList, checks};
use unicode_normalization::UnicodeNormalization;

use crate::{
    pseudonym::PseudonymKey,
    spec::{Coordinate, Legacy15Policy, UnknownPolicy},
};

/// A checked, ready-to-run transform.
#[derive(Debug, Clone)]
pub(crate) enum Transform {
    Trim,
    Nfkc,
    Upper,
    Lower,
    Date(Vec<DateFormat>),
    Datetime { formats: Vec<DateFormat>, offset: FixedOffset },
    Code { list: Box<CodeList>, unknown: UnknownPolicy },
    Map { table: std::collections::BTreeMap<String, String>, unknown: UnknownPolicy },
    CitizenId(Legacy15Policy),
    Pseudonym,
    IdBirthDate,
    IdSex,
    IdDivision,
    Phone,
    Gcj02ToWgs84(Coordinate),
    Split { sep: String, index: usize },
    Replace { from: String, to: String },
}

/// A date or date-time format (`chrono` strftime, or `excel` for spreadsheet serials), parsed
/// once when the adapter loads rather than for every value.
#[derive(Debug, Clone)]
pub(crate) struct DateFormat {
    text: String,
    /// The parsed format; `None` for `excel`, or for a format `chrono` cannot parse (the static
    /// check refuses those for dates; it is read as written then, and fails as before).
    items: Option<Vec<chrono::format::Item<'static>>>,
    excel: bool,
    /// It carries its own offset (`%z`, `%:z`).
    offset: bool,
}

impl DateFormat {
    pub(crate) fn new(text: &str) -> Self {
        let excel = text == "excel";
        let items = (!excel).then(|| chrono::format::StrftimeItems::new(text).parse_to_owned().ok()).flatten();
        let offset = text.contains("%z") || text.contains("%:z");
        Self { text: text.to_owned(), items, excel, offset }
    }

    pub(crate) fn list(texts: &[String]) -> Vec<Self> {
        texts.iter().map(|t| Self::new(t)).collect()
    }

    /// What `value` states in this format, if it is written in it.
    fn parse(&self, value: &str) -> Option<chrono::format::Parsed> {
        let mut parsed = chrono::format::Parsed::new();
        match &self.items {
            Some(items) => chrono::format::parse(&mut parsed, value, items.iter()).ok()?,
            None => chrono::format::parse(&mut parsed, value, chrono::format::StrftimeItems::new(&self.text)).ok()?,
        }
        Some(parsed)
    }
}

/// The formats as written, for messages.
fn texts(formats: &[DateFormat]) -> Vec<&str> {
    formats.iter().map(|f| f.text.as_str()).collect()
}

/// Why a transform failed: a rule name and a message (never a raw identifier).
pub(crate) type Failure = (&'static str, String);

/// What a transform yields: a value, or nothing (the field stays unset).
pub(crate) type Applied = Result<Option<String>, Failure>;

impl Transform {
    pub(crate) fn apply(&self, value: String, key: &PseudonymKey) -> Applied {
        let some = |s: String| Ok(Some(s));
        match self {
            // Most values need no trimming: keep the allocation then.
            Self::Trim => match value.trim_matches(char::is_whitespace) {
                t if t.len() == value.len() => some(value),
                t => some(t.to_owned()),
            },
            // Most values are already NFKC (ASCII, common CJK): skip the rewrite then.
            Self::Nfkc if nfkc_stable(&value) => some(value),
            Self::Nfkc => match unicode_normalization::is_nfkc_quick(value.chars()) {
                unicode_normalization::IsNormalized::Yes => some(value),
                _ => some(value.nfkc().collect()),
            },
            Self::Upper => some(value.to_ascii_uppercase()),
            Self::Lower => some(value.to_ascii_lowercase()),
            Self::Date(formats) => parse_date(&value, formats)
                .map(|d| Some(d.format("%Y-%m-%d").to_string()))
                .ok_or_else(|| ("adapter:date", format!("{value:?} is not a date in any of {:?}", texts(formats)))),
            Self::Datetime { formats, offset } => parse_datetime(&value, formats, *offset)
                .map(|t| Some(t.to_rfc3339_opts(SecondsFormat::AutoSi, true)))
                .ok_or_else(|| {
                    ("adapter:datetime", format!("{value:?} is not a date-time in any of {:?}", texts(formats)))
                }),
            Self::Code { list, unknown } => match list.lookup(&value) {
                Some(code) => some(code.code.clone()),
                None => unknown_value(unknown, value, &format!("code list {}", list.id)),
            },
            Self::Map { table, unknown } => match table.get(&value) {
                Some(code) => some(code.clone()),
                None => unknown_value(unknown, value, "the department code map"),
            },
            Self::CitizenId(policy) => {
                let value = value.to_ascii_uppercase();
                if value.len() == 15 && value.bytes().all(|b| b.is_ascii_digit()) {
                    return match policy {
                        Legacy15Policy::Convert => checks::gb11643_from_legacy15(&value)
                            .map(Some)
                            .ok_or(("adapter:citizen-id", "cannot convert legacy number".to_owned())),
                        Legacy15Policy::Reject => Err((
                            "adapter:citizen-id",
                            "legacy 15-digit citizen ID; this adapter rejects them".to_owned(),
                        )),
                    };
                }
                some(value)
            }
            Self::Pseudonym => some(key.pseudonym(&value)),
            Self::IdBirthDate | Self::IdSex | Self::IdDivision => from_citizen_id(self, &value).map(Some),
            Self::Phone => normalise_phone(&value)
                .map(Some)
                .ok_or_else(|| ("adapter:phone", "not a Chinese mobile or landline number with area code".to_owned())),
            Self::Gcj02ToWgs84(which) => {
                let parsed = value
                    .split_once(',')
                    .and_then(|(lon, lat)| Some((lon.trim().parse::<f64>().ok()?, lat.trim().parse::<f64>().ok()?)));
                let Some((lon, lat)) = parsed else {
                    return Err(("adapter:coordinates", format!("{value:?} is not a `lon,lat` pair")));
                };
                let (wlon, wlat) = gcj02_to_wgs84(lon, lat);
                let v = if *which == Coordinate::Lon { wlon } else { wlat };
                some(format!("{:.7}", v).trim_end_matches('0').trim_end_matches('.').to_owned())
            }
            Self::Split { sep, index } => Ok(value.split(sep.as_str()).nth(*index).map(str::to_owned)),
            Self::Replace { from, to } => some(value.replace(from.as_str(), to)),
        }
    }
}

fn unknown_value(policy: &UnknownPolicy, value: String, what: &str) -> Applied {
    match policy {
        UnknownPolicy::Reject => Err(("adapter:code", format!("{value:?} is not in {what}"))),
        UnknownPolicy::Keep => Ok(Some(value)),
        UnknownPolicy::Other(code) => Ok(Some(code.clone())),
    }
}

/// Day 0 of spreadsheet serial dates (1899-12-30, so that serial 61 is 1900-03-01
/// despite Lotus's fictitious 1900-02-29).
fn excel_epoch() -> NaiveDateTime {
    NaiveDate::from_ymd_opt(1899, 12, 30).and_then(|d| d.and_hms_opt(0, 0, 0)).expect("valid epoch")
}

fn excel_serial(value: &str) -> Option<NaiveDateTime> {
    let serial: f64 = value.trim().parse().ok()?;
    if !(1.0..2_958_466.0).contains(&serial) {
        return None;
    }
    let millis = (serial * 86_400_000.0).round() as i64;
    excel_epoch().checked_add_signed(Duration::milliseconds(millis))
}

pub(crate) fn parse_date(value: &str, formats: &[DateFormat]) -> Option<NaiveDate> {
    formats.iter().find_map(|f| {
        if f.excel {
            return excel_serial(value).map(|t| t.date());
        }
        // A format without a day (`%Y年%m月`), or without month and day (`%Y`), names a period:
        // the date is its first day. (Looked at only when the plain parse fails: full dates pay
        // nothing for it.)
        f.parse(value).and_then(|p| p.to_naive_date().ok()).or_else(|| {
            let (f, p) = (&f.text, DatePrecision::of(&f.text));
            match (p.month, p.day) {
                (_, true) => None,
                (true, false) => NaiveDate::parse_from_str(&format!("{value}\u{1}01"), &format!("{f}\u{1}%d")).ok(),
                (false, false) => {
                    NaiveDate::parse_from_str(&format!("{value}\u{1}01\u{1}01"), &format!("{f}\u{1}%m\u{1}%d")).ok()
                }
            }
        })
    })
}

/// What a `chrono` date format states: the year, the month, the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DatePrecision {
    pub(crate) year: bool,
    pub(crate) month: bool,
    pub(crate) day: bool,
}

impl DatePrecision {
    pub(crate) fn of(format: &str) -> Self {
        let has = |specs: &[&str]| specs.iter().any(|s| format.contains(s));
        Self {
            year: has(&["%Y", "%y", "%G", "%F", "%D", "%x", "%c", "%+"]),
            month: has(&["%m", "%b", "%B", "%h", "%F", "%D", "%x", "%c", "%+"]),
            day: has(&["%d", "%e", "%j", "%F", "%D", "%x", "%c", "%+"]),
        }
    }
}

/// Why a date format can never give a date, if it cannot: a specifier `chrono` does not know,
/// no year, or a day without its month. Checked on a known date written in the format and read
/// back.
pub(crate) fn date_format_problem(format: &str) -> Option<String> {
    if format == "excel" {
        return None;
    }
    if chrono::format::StrftimeItems::new(format).any(|i| matches!(i, chrono::format::Item::Error)) {
        return Some(format!("date format {format:?} has a specifier chrono does not know"));
    }
    let p = DatePrecision::of(format);
    if !p.year {
        return Some(format!("date format {format:?} has no year: it can never give a date"));
    }
    if p.day && !p.month && !format.contains("%j") {
        return Some(format!("date format {format:?} has a day but no month: it can never give a date"));
    }
    let known = NaiveDate::from_ymd_opt(2001, 9, if p.day { 17 } else { 1 })?;
    let mut written = String::new();
    if std::fmt::Write::write_fmt(&mut written, format_args!("{}", known.format(format))).is_err() {
        return Some(format!("date format {format:?} cannot be written"));
    }
    let back = parse_date(&written, &[DateFormat::new(format)]);
    let expected = if p.month || p.day { known } else { NaiveDate::from_ymd_opt(2001, 1, 1)? };
    (back != Some(expected))
        .then(|| format!("date format {format:?} does not read back the date it writes ({written:?})"))
}

pub(crate) fn parse_datetime(
    value: &str,
    formats: &[DateFormat],
    offset: FixedOffset,
) -> Option<DateTime<FixedOffset>> {
    formats.iter().find_map(|f| {
        if f.excel {
            return excel_serial(value).and_then(|t| t.and_local_timezone(offset).single());
        }
        let parsed = f.parse(value)?;
        if f.offset {
            return parsed.to_datetime().ok();
        }
        // A date-time, or a date alone at midnight.
        let naive = parsed
            .to_naive_datetime_with_offset(0)
            .ok()
            .or_else(|| parsed.to_naive_date().ok().and_then(|d| d.and_hms_opt(0, 0, 0)))?;
        naive.and_local_timezone(offset).single()
    })
}

fn from_citizen_id(t: &Transform, id: &str) -> Result<String, Failure> {
    let id = id.trim().to_ascii_uppercase();
    let id = if id.len() == 15 { checks::gb11643_from_legacy15(&id).unwrap_or(id) } else { id };
    if let Err(e) = checks::check_gb11643(&id) {
        return Err(("adapter:citizen-id", format!("cannot derive from an invalid citizen ID: {e}")));
    }
    Ok(match t {
        Transform::IdBirthDate => format!("{}-{}-{}", &id[6..10], &id[10..12], &id[12..14]),
        Transform::IdSex => if (id.as_bytes()[16] - b'0') % 2 == 1 { "1" } else { "2" }.to_owned(),
        _ => id[..6].to_owned(),
    })
}

/// `+86 138-0013-8000` → `13800138000`; `(0571) 8888 8888` → `0571-88888888`.
pub(crate) fn normalise_phone(value: &str) -> Option<String> {
    let s: String = value.nfkc().filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '\u{3000}')).collect();
    let s = s.strip_prefix("+86").or_else(|| s.strip_prefix("0086")).unwrap_or(&s).to_owned();
    let s = if s.len() == 13 && s.starts_with("861") { s[2..].to_owned() } else { s };
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let b = s.as_bytes();
    if s.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]) {
        return Some(s);
    }
    if b.first() == Some(&b'0') && b.get(1).is_some_and(|c| *c != b'0') {
        let area = if matches!(b[1], b'1' | b'2') { 3 } else { 4 };
        let number = s.get(area..)?;
        if (7..=8).contains(&number.len()) && !number.starts_with(['0', '1']) {
            return Some(format!("{}-{number}", &s[..area]));
        }
    }
    None
}

const GCJ_A: f64 = 6_378_245.0;
const GCJ_EE: f64 = 0.006_693_421_622_965_943;

fn gcj_offset(lon: f64, lat: f64) -> (f64, f64) {
    use std::f64::consts::PI;
    let (x, y) = (lon - 105.0, lat - 35.0);
    let mut dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * x.abs().sqrt();
    dlat += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    dlat += (20.0 * (y * PI).sin() + 40.0 * (y / 3.0 * PI).sin()) * 2.0 / 3.0;
    dlat += (160.0 * (y / 12.0 * PI).sin() + 320.0 * (y * PI / 30.0).sin()) * 2.0 / 3.0;
    let mut dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * x.abs().sqrt();
    dlon += (20.0 * (6.0 * x * PI).sin() + 20.0 * (2.0 * x * PI).sin()) * 2.0 / 3.0;
    dlon += (20.0 * (x * PI).sin() + 40.0 * (x / 3.0 * PI).sin()) * 2.0 / 3.0;
    dlon += (150.0 * (x / 12.0 * PI).sin() + 300.0 * (x / 30.0 * PI).sin()) * 2.0 / 3.0;
    let rad = lat / 180.0 * PI;
    let magic = 1.0 - GCJ_EE * rad.sin() * rad.sin();
    let sqrt_magic = magic.sqrt();
    dlat = dlat * 180.0 / ((GCJ_A * (1.0 - GCJ_EE)) / (magic * sqrt_magic) * PI);
    dlon = dlon * 180.0 / (GCJ_A / sqrt_magic * rad.cos() * PI);
    (dlon, dlat)
}

fn outside_china(lon: f64, lat: f64) -> bool {
    !(72.004..=137.8347).contains(&lon) || !(0.8293..=55.8271).contains(&lat)
}

/// WGS-84 → GCJ-02 (the published obfuscation; identity outside China).
pub(crate) fn wgs84_to_gcj02(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    let (dlon, dlat) = gcj_offset(lon, lat);
    (lon + dlon, lat + dlat)
}

/// GCJ-02 → WGS-84 by fixed-point iteration of the forward transform
/// (converges to well under a centimetre in a few steps).
pub(crate) fn gcj02_to_wgs84(lon: f64, lat: f64) -> (f64, f64) {
    if outside_china(lon, lat) {
        return (lon, lat);
    }
    let (mut wlon, mut wlat) = (lon, lat);
    for _ in 0..10 {
        let (glon, glat) = wgs84_to_gcj02(wlon, wlat);
        let (elon, elat) = (glon - lon, glat - lat);
        wlon -= elon;
        wlat -= elat;
        if elon.abs() < 1e-10 && elat.abs() < 1e-10 {
            break;
        }
    }
    (wlon, wlat)
}

/// True when every character is one NFKC leaves alone whatever surrounds it:
/// ASCII, and the CJK Unified Ideographs (base block and extension A), which
/// have no decomposition, combining class 0 and never compose. The profile of
/// the gateway showed the general quick check on long Chinese addresses as
/// its largest cost; this test is a range comparison per character.
fn nfkc_stable(s: &str) -> bool {
    s.chars().all(|c| c.is_ascii() || ('\u{4E00}'..='\u{9FFF}').contains(&c) || ('\u{3400}'..='\u{4DBF}').contains(&c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nfkc_shortcut_agrees_with_full_normalisation() {
        for s in
            ["朝阳区建国路88号3号楼", "Zhang San 110105", "㐀䶿一鿿", "１２３", "Ａ区", "\u{F900}", "e\u{301}", "ｶ"]
        {
            let full: String = s.nfkc().collect();
            if nfkc_stable(s) {
                assert_eq!(full, s, "{s:?} is not stable under NFKC");
            }
            let out = Transform::Nfkc.apply(s.to_owned(), &PseudonymKey::new(vec![1; 16]).unwrap()).unwrap();
            assert_eq!(out.as_deref(), Some(full.as_str()), "{s:?}");
        }
        assert!(nfkc_stable("朝阳区建国路88号") && !nfkc_stable("１２３") && !nfkc_stable("\u{F900}"));
    }

    fn dates(fs: &[&str]) -> Vec<DateFormat> {
        fs.iter().map(|s| DateFormat::new(s)).collect()
    }

    #[test]
    fn department_date_spellings() {
        let f = dates(&["%Y%m%d", "%Y-%m-%d", "%Y/%m/%d", "%Y.%m.%d", "%Y年%m月%d日", "excel"]);
        for s in ["19800101", "1980-1-1", "1980/01/01", "1980.1.1", "1980年1月1日", "29221"] {
            assert_eq!(parse_date(s, &f), NaiveDate::from_ymd_opt(1980, 1, 1), "{s}");
        }
        assert_eq!(parse_date("1980-02-30", &f), None);
        assert_eq!(parse_date("x", &f), None);
    }

    /// Year-month and year-only values name a period: the date is its first day. A format
    /// that can never give a date is refused by the static check.
    #[test]
    fn periods_give_their_first_day_and_impossible_formats_are_named() {
        let f = dates(&["%Y年%m月%d日", "%Y年%m月", "%Y-%m", "%Y年", "%Y"]);
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d);
        assert_eq!(parse_date("2001年9月17日", &f), day(2001, 9, 17));
        assert_eq!(parse_date("2001年9月", &f), day(2001, 9, 1));
        assert_eq!(parse_date("2001-09", &f), day(2001, 9, 1));
        assert_eq!(parse_date("2001年", &f), day(2001, 1, 1));
        assert_eq!(parse_date("2001", &f), day(2001, 1, 1));
        assert_eq!(parse_date("2001年13月", &f), None);
        for ok in ["%Y年%m月", "%Y%m%d", "%Y-%m-%d", "%Y", "%Y.%m", "%F", "%Y/%j", "excel"] {
            assert_eq!(date_format_problem(ok), None, "{ok}");
        }
        for (bad, words) in
            [("%m月%d日", "no year"), ("%H:%M", "no year"), ("%Y %d", "day but no month"), ("%Y-%Q", "does not know")]
        {
            let p = date_format_problem(bad).unwrap_or_default();
            assert!(p.contains(words), "{bad}: {p}");
        }
    }

    #[test]
    fn datetimes_take_the_configured_offset() {
        let cst = FixedOffset::east_opt(8 * 3600).unwrap();
        let f = dates(&["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S%:z", "excel"]);
        let t = parse_datetime("2024-05-01 08:30:00", &f, cst).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-01T08:30:00+08:00");
        let t = parse_datetime("2024-05-01T00:30:00+00:00", &f, cst).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-05-01T00:30:00+00:00");
        let t = parse_datetime("45413.354166667", &f, cst).unwrap();
        assert_eq!(t.format("%Y-%m-%d %H:%M").to_string(), "2024-05-01 08:30");
    }

    #[test]
    fn phones() {
        assert_eq!(normalise_phone("+86 138-0013-8000").as_deref(), Some("13800138000"));
        assert_eq!(normalise_phone("８６１３８００１３８０００").as_deref(), Some("13800138000"));
        assert_eq!(normalise_phone("(0571) 8888 8888").as_deref(), Some("0571-88888888"));
        assert_eq!(normalise_phone("010-62751234").as_deref(), Some("010-62751234"));
        assert_eq!(normalise_phone("88888888"), None, "no area code");
        assert_eq!(normalise_phone("12345678901"), None);
        assert_eq!(normalise_phone("abc"), None);
    }

    #[test]
    fn gcj02_round_trip_and_offset_size() {
        // Tiananmen, WGS-84.
        let (lon, lat) = (116.391_275, 39.907_5);
        let (glon, glat) = wgs84_to_gcj02(lon, lat);
        // GCJ-02 shifts Beijing by roughly 600 m east and 150 m north.
        assert!((0.004..0.008).contains(&(glon - lon)), "{}", glon - lon);
        assert!((0.0005..0.003).contains(&(glat - lat)), "{}", glat - lat);
        let (wlon, wlat) = gcj02_to_wgs84(glon, glat);
        assert!((wlon - lon).abs() < 1e-8 && (wlat - lat).abs() < 1e-8);
        // Outside China nothing moves.
        assert_eq!(gcj02_to_wgs84(2.35, 48.85), (2.35, 48.85));
    }

    #[test]
    fn values_from_citizen_ids() {
        let id = "11010519491231002X".to_owned();
        let key = PseudonymKey::new(vec![1; 16]).unwrap();
        assert_eq!(Transform::IdBirthDate.apply(id.clone(), &key), Ok(Some("1949-12-31".into())));
        assert_eq!(Transform::IdSex.apply(id.clone(), &key), Ok(Some("2".into())));
        assert_eq!(Transform::IdDivision.apply(id, &key), Ok(Some("110105".into())));
        assert_eq!(Transform::IdSex.apply("110105491231003".into(), &key), Ok(Some("1".into())), "legacy 15");
        assert!(Transform::IdSex.apply("110105194912310021".into(), &key).is_err());
    }
}
