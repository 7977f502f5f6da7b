//! The working-day calendar (工作日): China's official holidays and adjusted working days
//! (调休上班) as the State Council publishes them each year, one file per year in
//! `schemas/calendar/cn/<year>.toml` with its source. A date is a working day when the year's
//! notice makes it one (调休上班), else when it is a weekday outside the notice's rest periods.
//!
//! A year without a file is counted on weekdays alone: every deadline computed across it says
//! so ([`Count::uncovered`]), and the service warns loudly once per year.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    sync::Mutex,
};

use chrono::{Datelike, Days, NaiveDate, Weekday};
use serde::Deserialize;
use tracing::warn;

use crate::GovernanceError;

/// One year's notice as its file states it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct YearFile {
    version: u32,
    year: i32,
    source: String,
    #[serde(default)]
    document: Option<String>,
    published: NaiveDate,
    url: String,
    #[serde(default)]
    amended: Option<String>,
    #[serde(default)]
    workdays: Vec<NaiveDate>,
    #[serde(default)]
    holiday: Vec<Holiday>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct Holiday {
    name: String,
    from: NaiveDate,
    to: NaiveDate,
}

/// Where a year's arrangement comes from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct YearSource {
    /// The year.
    pub year: i32,
    /// The notice's title.
    pub source: String,
    /// Its document number (国办发明电〔…〕…号), where verified.
    pub document: Option<String>,
    /// When it was issued.
    pub published: NaiveDate,
    /// A copy of its text.
    pub url: String,
    /// A later notice that changed the year, if any.
    pub amended: Option<String>,
}

/// A count of working days, and the years it crossed without a calendar file (counted on
/// weekdays alone: the count may be wrong there).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Count<T> {
    /// The result.
    pub value: T,
    /// Years crossed that have no file.
    pub uncovered: BTreeSet<i32>,
}

/// The working-day calendar.
#[derive(Debug, Default)]
pub struct Calendar {
    years: BTreeMap<i32, YearSource>,
    rest: BTreeSet<NaiveDate>,
    work: BTreeSet<NaiveDate>,
    /// Years already warned about.
    warned: Mutex<BTreeSet<i32>>,
}

impl Calendar {
    /// Every `<year>.toml` of `dir`, checked: the year matches the file, periods run forward
    /// and do not overlap, every adjusted working day is a Saturday or Sunday outside every
    /// rest period.
    pub fn load(dir: &Path) -> Result<Self, GovernanceError> {
        let io = |path: &Path, e: std::io::Error| GovernanceError::Io { path: path.to_owned(), source: e };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(|e| io(dir, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(GovernanceError::Rules {
                path: dir.to_owned(),
                message: "no <year>.toml calendar file".into(),
            });
        }
        let mut calendar = Self::default();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(|e| io(&path, e))?;
            let file: YearFile = toml::from_str(&text)
                .map_err(|e| GovernanceError::Rules { path: path.clone(), message: e.to_string() })?;
            calendar.add(&path, file)?;
        }
        Ok(calendar)
    }

    fn add(&mut self, path: &Path, f: YearFile) -> Result<(), GovernanceError> {
        let fail = |message: String| GovernanceError::Rules { path: path.to_owned(), message };
        if f.version != 1 {
            return Err(fail(format!("version {}: this Hutong reads calendar files of version 1", f.version)));
        }
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if stem != f.year.to_string() {
            return Err(fail(format!("year {} in a file named {stem}.toml", f.year)));
        }
        let mut rest = BTreeSet::new();
        for h in &f.holiday {
            if h.to < h.from {
                return Err(fail(format!("{}: {} is before {}", h.name, h.to, h.from)));
            }
            let mut d = h.from;
            while d <= h.to {
                if !rest.insert(d) || self.rest.contains(&d) {
                    return Err(fail(format!("{}: {d} is in two rest periods", h.name)));
                }
                d = d + Days::new(1);
            }
        }
        for d in &f.workdays {
            if !matches!(d.weekday(), Weekday::Sat | Weekday::Sun) {
                return Err(fail(format!("workday {d} is a {:?}, not a weekend day made a working day", d.weekday())));
            }
            if rest.contains(d) || self.rest.contains(d) {
                return Err(fail(format!("workday {d} is inside a rest period")));
            }
        }
        self.rest.extend(rest);
        self.work.extend(f.workdays.iter().copied());
        self.years.insert(
            f.year,
            YearSource {
                year: f.year,
                source: f.source,
                document: f.document,
                published: f.published,
                url: f.url,
                amended: f.amended,
            },
        );
        Ok(())
    }

    /// The years with a file, with their sources.
    pub fn years(&self) -> impl Iterator<Item = &YearSource> {
        self.years.values()
    }

    /// Whether `year` has a file.
    pub fn covers(&self, year: i32) -> bool {
        self.years.contains_key(&year)
    }

    /// Whether `d` is a working day (工作日).
    pub fn is_working_day(&self, d: NaiveDate) -> bool {
        if self.work.contains(&d) {
            return true;
        }
        !self.rest.contains(&d) && !matches!(d.weekday(), Weekday::Sat | Weekday::Sun)
    }

    /// The `n`th working day after `start` (`start` itself not counted; 0: `start`).
    pub fn add_working_days(&self, start: NaiveDate, n: u32) -> Count<NaiveDate> {
        let mut uncovered = BTreeSet::new();
        let mut d = start;
        let mut left = n;
        while left > 0 {
            d = d + Days::new(1);
            if !self.covers(d.year()) {
                uncovered.insert(d.year());
            }
            if self.is_working_day(d) {
                left -= 1;
            }
        }
        self.warn(&uncovered);
        Count { value: d, uncovered }
    }

    /// The working days after `from` up to and including `to` (0 when `to` is not after
    /// `from`): how many working days a matter took, or is late by.
    pub fn working_days_between(&self, from: NaiveDate, to: NaiveDate) -> Count<u32> {
        let mut uncovered = BTreeSet::new();
        let mut n = 0;
        let mut d = from;
        while d < to {
            d = d + Days::new(1);
            if !self.covers(d.year()) {
                uncovered.insert(d.year());
            }
            if self.is_working_day(d) {
                n += 1;
            }
        }
        self.warn(&uncovered);
        Count { value: n, uncovered }
    }

    /// Warns once per process about each year counted without a file.
    fn warn(&self, years: &BTreeSet<i32>) {
        if years.is_empty() {
            return;
        }
        let mut warned = self.warned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        for y in years {
            if warned.insert(*y) {
                warn!(
                    year = y,
                    "NO WORKING-DAY CALENDAR for {y}: deadlines in {y} are counted on weekdays alone and marked so; add schemas/calendar/cn/{y}.toml from the State Council's notice (国务院办公厅关于{y}年部分节假日安排的通知)"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Calendar {
        Calendar::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/calendar/cn")).expect("calendar")
    }

    fn d(s: &str) -> NaiveDate {
        s.parse().expect("date")
    }

    #[test]
    fn holidays_and_adjusted_saturdays_count_as_the_notice_says() {
        let c = shipped();
        // 2026 春节: 2月15日–23日 off; 2月14日 (Saturday) and 2月28日 (Saturday) worked.
        assert!(!c.is_working_day(d("2026-02-16")), "Monday inside 春节");
        assert!(c.is_working_day(d("2026-02-14")), "an adjusted Saturday");
        assert!(c.is_working_day(d("2026-02-28")), "an adjusted Saturday");
        assert!(!c.is_working_day(d("2026-02-21")), "a Saturday inside 春节");
        assert!(c.is_working_day(d("2026-02-24")), "the first day back");
        assert!(!c.is_working_day(d("2026-03-07")), "an ordinary Saturday");
        // Five working days from Thursday 12 February 2026: Fri 13, Sat 14 (worked), then 春节,
        // Tue 24, Wed 25, Thu 26.
        assert_eq!(c.add_working_days(d("2026-02-12"), 5).value, d("2026-02-26"));
        // 2025 国庆节、中秋节 (10月1日–8日) with Saturday 11 October worked: from Tuesday 30
        // September, 3 working days are Thu 9, Fri 10 and Sat 11.
        assert_eq!(c.add_working_days(d("2025-09-30"), 3).value, d("2025-10-11"));
        assert_eq!(c.working_days_between(d("2025-09-30"), d("2025-10-11")).value, 3);
        assert_eq!(c.working_days_between(d("2025-10-11"), d("2025-09-30")).value, 0);
        assert!(c.add_working_days(d("2025-09-30"), 3).uncovered.is_empty());
    }

    #[test]
    fn a_year_without_a_file_is_counted_on_weekdays_and_marked() {
        let c = shipped();
        assert!(!c.covers(2031));
        let due = c.add_working_days(d("2030-12-30"), 4);
        assert_eq!(due.uncovered, BTreeSet::from([2030, 2031]));
        // Monday 30 December 2030: Tue 31, then Wed 1 January counts as a weekday (元旦 is a
        // holiday every year, but no file says so), Thu 2, Fri 3.
        assert_eq!(due.value, d("2031-01-03"));
    }

    #[test]
    fn every_shipped_year_has_its_source_and_bad_files_are_refused() {
        let c = shipped();
        let years: Vec<i32> = c.years().map(|y| y.year).collect();
        assert!((2006..=2026).all(|y| years.contains(&y)), "{years:?}");
        assert!(c.years().all(|y| y.source.contains(&format!("{}年", y.year)) && !y.url.is_empty()));
        let dir = tempfile::tempdir().expect("tmp");
        let file = |name: &str, body: &str| std::fs::write(dir.path().join(name), body).expect("write");
        let head = "version = 1\nyear = 2026\nsource = \"s\"\npublished = \"2025-11-04\"\nurl = \"u\"\n";
        file("2026.toml", &format!("{head}workdays = [\"2026-02-16\"]\n"));
        let err = Calendar::load(dir.path()).expect_err("a Monday workday").to_string();
        assert!(err.contains("2026.toml") && err.contains("not a weekend day"), "{err}");
        file("2026.toml", &format!("{head}[[holiday]]\nname = \"春节\"\nfrom = \"2026-02-23\"\nto = \"2026-02-15\"\n"));
        assert!(Calendar::load(dir.path()).expect_err("backwards").to_string().contains("before"));
        file("2026.toml", &head.replace("year = 2026", "year = 2025"));
        assert!(Calendar::load(dir.path()).expect_err("misnamed").to_string().contains("named 2026.toml"));
    }
}
