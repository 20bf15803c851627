//! Turkish business-day calendar for certmint's deadlines.
//!
//! A business day is Monday–Friday and not a public holiday. Half days (the
//! afternoon before Republic Day and before each bayram) count as business
//! days unless the calendar is told otherwise. Holidays come from an embedded
//! table (`data/tr-holidays-2024-2032.csv`); an operator may add extra closed
//! days (administrative leave declared by circular).
//!
//! The calendar covers 1 January of the first year in its table through
//! 31 December of the last year, and refuses — with
//! [`CalendarError::OutOfRange`] — any computation that would need a day
//! outside that range, rather than guess.
//!
//! "Deleted after N business days": day 1 is the first business day *after*
//! the upload day, and the purge is due at the *end* of business day N, i.e.
//! once the local date in Turkey is after that day.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use std::collections::{BTreeMap, BTreeSet};

use time::{Date, Month, OffsetDateTime, UtcOffset, Weekday};

/// The embedded holiday table: header `date,kind,name`, kind `public` or
/// `half_day`; the name is everything after the second comma.
const TURKEY_HOLIDAY_TABLE: &str = include_str!("../data/tr-holidays-2024-2032.csv");

/// Turkey's offset from UTC: +03:00 all year (no daylight saving since 2016).
pub const TURKEY_UTC_OFFSET: UtcOffset = time::macros::offset!(+3);

/// Everything that can go wrong while building or asking the calendar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CalendarError {
    /// A computation needed a day the calendar does not cover.
    #[error(
        "date {date} is outside the business calendar's covered range \
         {first}..={last}; refusing to guess whether it is a business day"
    )]
    OutOfRange {
        /// The first day needed that lies outside the covered range.
        date: Date,
        /// First covered day.
        first: Date,
        /// Last covered day.
        last: Date,
    },
    /// A line of an operator's closed-days file could not be read.
    #[error("closed-days file, line {line}: {reason}: {}", crate::text::quoted(.text))]
    BadClosedDayLine {
        /// 1-based line number.
        line: usize,
        /// The line as written (without its line ending).
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A row of a holiday table could not be read.
    #[error("holiday table, line {line}: {reason}: {}", crate::text::quoted(.text))]
    BadHolidayRow {
        /// 1-based line number (the header is line 1).
        line: usize,
        /// The line as written (without its line ending).
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A holiday table had a header but no rows.
    #[error("holiday table has no rows")]
    EmptyHolidayTable,
    /// A holiday table skips a whole year inside the range it spans, so that
    /// year's holidays would be guessed as "none".
    #[error(
        "holiday table has no rows for {year}, inside the years it spans ({first_year}..={last_year})"
    )]
    HolidayTableGap {
        /// The year without any row.
        year: i32,
        /// First year of the table.
        first_year: i32,
        /// Last year of the table.
        last_year: i32,
    },
    /// Zero business days was asked for; day 1 is the first business day
    /// after the given day, so "day 0" is not defined.
    #[error(
        "0 business days is not a deadline: day 1 is the first business day after the given day"
    )]
    ZeroBusinessDays,
}

impl CalendarError {
    /// A bad line of the operator's closed-days file is invalid input; the
    /// embedded table and the calendar's range are failures.
    pub fn kind(&self) -> crate::error::ErrorKind {
        use crate::error::ErrorKind;
        match self {
            CalendarError::BadClosedDayLine { .. } => ErrorKind::InvalidInput,
            CalendarError::OutOfRange { .. }
            | CalendarError::BadHolidayRow { .. }
            | CalendarError::EmptyHolidayTable
            | CalendarError::HolidayTableGap { .. }
            | CalendarError::ZeroBusinessDays => ErrorKind::Failure,
        }
    }
}

/// Kind of a row of the holiday table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HolidayKind {
    /// Closed all day.
    Public,
    /// Closed from 1 pm; a business day unless configured otherwise.
    HalfDay,
}

/// One parsed row of a holiday table.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HolidayRow {
    date: Date,
    kind: HolidayKind,
    name: String,
}

/// Business-day calendar over a fixed, finite range of days.
///
/// Built with [`BusinessCalendar::turkey`] (the embedded Turkish table) or
/// [`BusinessCalendar::from_holiday_table`], then optionally adjusted with
/// [`BusinessCalendar::with_extra_closed_days`] and
/// [`BusinessCalendar::with_half_days_as_business_days`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BusinessCalendar {
    first: Date,
    last: Date,
    /// Days closed all day: public holidays and operator-declared closures.
    closed: BTreeSet<Date>,
    /// Half days that are not also closed all day.
    half_days: BTreeSet<Date>,
    /// Holiday names from the table; several rows on one date are joined
    /// with "; ".
    names: BTreeMap<Date, String>,
    half_days_are_business_days: bool,
}

impl BusinessCalendar {
    /// The Turkish calendar from the embedded 2024–2032 holiday table, with
    /// half days counted as business days.
    pub fn turkey() -> Self {
        // The table is compiled into the binary and checked by the test
        // `embedded_table_parses_with_expected_row_count`; it cannot fail at
        // run time unless that test fails too.
        #[allow(clippy::expect_used)]
        Self::from_holiday_table(TURKEY_HOLIDAY_TABLE)
            .expect("embedded Turkish holiday table is valid (checked by a unit test)")
    }

    /// A calendar from a holiday table in the embedded table's format
    /// (header `date,kind,name`; kind `public` or `half_day`; the name is
    /// everything after the second comma). Half days count as business days.
    ///
    /// The covered range runs from 1 January of the first year in the table
    /// to 31 December of the last; every year in between must have a row.
    /// A date listed as both `public` and `half_day` is closed all day.
    pub fn from_holiday_table(csv: &str) -> Result<Self, CalendarError> {
        let rows = parse_holiday_table(csv)?;
        let (Some(min), Some(max)) = (
            rows.iter().map(|r| r.date).min(),
            rows.iter().map(|r| r.date).max(),
        ) else {
            return Err(CalendarError::EmptyHolidayTable);
        };
        let (first_year, last_year) = (min.year(), max.year());
        let years: BTreeSet<i32> = rows.iter().map(|r| r.date.year()).collect();
        if let Some(year) = (first_year..=last_year).find(|y| !years.contains(y)) {
            return Err(CalendarError::HolidayTableGap {
                year,
                first_year,
                last_year,
            });
        }
        // Every year a `Date` can hold has a 1 January and a 31 December, so
        // these fall back to the table's own extremes only in theory.
        let first = Date::from_calendar_date(first_year, Month::January, 1).unwrap_or(min);
        let last = Date::from_calendar_date(last_year, Month::December, 31).unwrap_or(max);

        let closed: BTreeSet<Date> = rows
            .iter()
            .filter(|r| r.kind == HolidayKind::Public)
            .map(|r| r.date)
            .collect();
        let half_days = rows
            .iter()
            .filter(|r| r.kind == HolidayKind::HalfDay && !closed.contains(&r.date))
            .map(|r| r.date)
            .collect();
        let mut names: BTreeMap<Date, String> = BTreeMap::new();
        for row in &rows {
            names
                .entry(row.date)
                .and_modify(|n| {
                    n.push_str("; ");
                    n.push_str(&row.name);
                })
                .or_insert_with(|| row.name.clone());
        }
        Ok(Self {
            first,
            last,
            closed,
            half_days,
            names,
            half_days_are_business_days: true,
        })
    }

    /// Adds operator-declared closed days (e.g. administrative leave by
    /// circular). Refuses any day outside [`Self::covered_range`]. A closed
    /// day that is already a weekend or holiday changes nothing; a closed day
    /// on a half day makes it closed all day.
    pub fn with_extra_closed_days(
        mut self,
        days: impl IntoIterator<Item = Date>,
    ) -> Result<Self, CalendarError> {
        for day in days {
            self.check_covered(day)?;
            self.half_days.remove(&day);
            self.closed.insert(day);
        }
        Ok(self)
    }

    /// Reads an operator's closed-days file: one ISO date (`YYYY-MM-DD`) per
    /// line, optionally followed by free text separated by whitespace or a
    /// comma; blank lines and lines starting with `#` are ignored. The first
    /// bad line is reported with its 1-based line number and text. Range is
    /// not checked here but by [`Self::with_extra_closed_days`].
    pub fn parse_closed_days_file(text: &str) -> Result<Vec<Date>, CalendarError> {
        let mut days = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let content = raw.trim();
            if content.is_empty() || content.starts_with('#') {
                continue;
            }
            let date_part = content
                .split(|c: char| c.is_whitespace() || c == ',')
                .next()
                .unwrap_or(content);
            let date =
                parse_iso_date(date_part).map_err(|reason| CalendarError::BadClosedDayLine {
                    line: index + 1,
                    text: raw.trim_end_matches('\r').to_owned(),
                    reason,
                })?;
            days.push(date);
        }
        Ok(days)
    }

    /// Sets whether half days count as business days (default `true`).
    pub fn with_half_days_as_business_days(mut self, yes: bool) -> Self {
        self.half_days_are_business_days = yes;
        self
    }

    /// Whether half days count as business days.
    pub fn half_days_are_business_days(&self) -> bool {
        self.half_days_are_business_days
    }

    /// First and last day covered, both inclusive.
    pub fn covered_range(&self) -> (Date, Date) {
        (self.first, self.last)
    }

    /// Whether `day` is a business day: Monday–Friday, not a public holiday
    /// or extra closed day, and — if half days are configured as
    /// non-business — not a half day. Refuses days outside the covered range.
    pub fn is_business_day(&self, day: Date) -> Result<bool, CalendarError> {
        self.check_covered(day)?;
        if matches!(day.weekday(), Weekday::Saturday | Weekday::Sunday) {
            return Ok(false);
        }
        if self.closed.contains(&day) {
            return Ok(false);
        }
        if self.half_days.contains(&day) {
            return Ok(self.half_days_are_business_days);
        }
        Ok(true)
    }

    /// The holiday table's name for `day` (public or half day), if any.
    /// Operator-declared closed days have no name here.
    pub fn holiday_name(&self, day: Date) -> Result<Option<&str>, CalendarError> {
        self.check_covered(day)?;
        Ok(self.names.get(&day).map(String::as_str))
    }

    /// The `n`th business day strictly after `day` (day 1 is the first
    /// business day after `day`, whatever `day` itself is). `day` must be in
    /// the covered range, and so must every day up to the result; otherwise
    /// the error names the first day needed outside it. `n` must be ≥ 1.
    pub fn nth_business_day_after(&self, day: Date, n: u32) -> Result<Date, CalendarError> {
        self.check_covered(day)?;
        if n == 0 {
            return Err(CalendarError::ZeroBusinessDays);
        }
        let mut current = day;
        let mut counted = 0u32;
        while counted < n {
            current = current
                .next_day()
                .ok_or_else(|| self.out_of_range(current))?;
            if self.is_business_day(current)? {
                counted += 1;
            }
        }
        Ok(current)
    }

    /// The date of business day `business_days` after an upload on
    /// `uploaded_on` (Turkish local date); the purge is due at the end of
    /// that day.
    pub fn purge_deadline(
        &self,
        uploaded_on: Date,
        business_days: u32,
    ) -> Result<Date, CalendarError> {
        self.nth_business_day_after(uploaded_on, business_days)
    }

    /// The Turkish local date (UTC+03:00) of an upload timestamp, refused if
    /// outside the covered range.
    pub fn upload_day(&self, uploaded_at: OffsetDateTime) -> Result<Date, CalendarError> {
        let day = uploaded_at
            .checked_to_offset(TURKEY_UTC_OFFSET)
            .map(|local| local.date())
            .ok_or_else(|| self.out_of_range(uploaded_at.date()))?;
        self.check_covered(day)?;
        Ok(day)
    }

    /// [`Self::purge_deadline`] for an upload timestamp, taking the upload
    /// day as the Turkish local date of `uploaded_at`.
    pub fn purge_deadline_for_upload(
        &self,
        uploaded_at: OffsetDateTime,
        business_days: u32,
    ) -> Result<Date, CalendarError> {
        self.purge_deadline(self.upload_day(uploaded_at)?, business_days)
    }

    /// Whether the purge of an upload on `uploaded_on` is due at `now`: true
    /// once the local date of `now` at `tz_offset` (pass
    /// [`TURKEY_UTC_OFFSET`]) is after the deadline date, i.e. from local
    /// midnight ending business day `business_days`. Only the deadline
    /// computation is range-checked; `now` may be any instant.
    pub fn is_purge_due(
        &self,
        uploaded_on: Date,
        business_days: u32,
        now: OffsetDateTime,
        tz_offset: UtcOffset,
    ) -> Result<bool, CalendarError> {
        let deadline = self.purge_deadline(uploaded_on, business_days)?;
        match now.checked_to_offset(tz_offset) {
            Some(local) => Ok(local.date() > deadline),
            // Only instants at the very edge of `time`'s range (year ±9999)
            // fail to convert; they are far beyond any covered deadline
            // (or far before), which their UTC date tells.
            None => Ok(now.date() > deadline),
        }
    }

    fn check_covered(&self, day: Date) -> Result<(), CalendarError> {
        if day < self.first || day > self.last {
            return Err(self.out_of_range(day));
        }
        Ok(())
    }

    fn out_of_range(&self, date: Date) -> CalendarError {
        CalendarError::OutOfRange {
            date,
            first: self.first,
            last: self.last,
        }
    }
}

/// Parses a strict `YYYY-MM-DD` date; the error is a reason for a message.
fn parse_iso_date(text: &str) -> Result<Date, &'static str> {
    const NOT_ISO: &str = "not an ISO date (YYYY-MM-DD)";
    let bytes = text.as_bytes();
    if bytes.len() != 10 || bytes[4] != b'-' || bytes[7] != b'-' {
        return Err(NOT_ISO);
    }
    let number = |range: std::ops::Range<usize>| -> Result<u16, &'static str> {
        let part = &bytes[range];
        if !part.iter().all(u8::is_ascii_digit) {
            return Err(NOT_ISO);
        }
        Ok(part
            .iter()
            .fold(0u16, |acc, b| acc * 10 + u16::from(b - b'0')))
    };
    let year = number(0..4)?;
    let month = number(5..7)?;
    let day = number(8..10)?;
    let month = u8::try_from(month)
        .ok()
        .and_then(|m| Month::try_from(m).ok())
        .ok_or("no such month")?;
    let day = u8::try_from(day).map_err(|_| "no such day in that month")?;
    Date::from_calendar_date(i32::from(year), month, day).map_err(|_| "no such day in that month")
}

/// Parses a holiday table (see [`BusinessCalendar::from_holiday_table`]).
fn parse_holiday_table(csv: &str) -> Result<Vec<HolidayRow>, CalendarError> {
    let mut lines = csv.lines().enumerate();
    let header = lines
        .next()
        .map(|(_, l)| l.trim_start_matches('\u{feff}').trim())
        .unwrap_or("");
    if header != "date,kind,name" {
        return Err(CalendarError::BadHolidayRow {
            line: 1,
            text: header.to_owned(),
            reason: "expected header `date,kind,name`",
        });
    }
    let mut rows = Vec::new();
    for (index, raw) in lines {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let bad = |reason| CalendarError::BadHolidayRow {
            line: index + 1,
            text: line.to_owned(),
            reason,
        };
        // The name may itself contain commas: it is everything after the
        // second comma.
        let mut fields = line.splitn(3, ',');
        let (Some(date), Some(kind), Some(name)) = (fields.next(), fields.next(), fields.next())
        else {
            return Err(bad("expected `date,kind,name`"));
        };
        let date = parse_iso_date(date.trim()).map_err(bad)?;
        let kind = match kind.trim() {
            "public" => HolidayKind::Public,
            "half_day" => HolidayKind::HalfDay,
            _ => return Err(bad("kind must be `public` or `half_day`")),
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(bad("empty holiday name"));
        }
        rows.push(HolidayRow {
            date,
            kind,
            name: name.to_owned(),
        });
    }
    Ok(rows)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use time::macros::{date, datetime};

    fn cal() -> BusinessCalendar {
        BusinessCalendar::turkey()
    }

    // 152 data lines: 153 lines in the file (`wc -l`, trailing newline
    // present) minus the header; `cut -d, -f2 | sort | uniq -c` gives 125
    // `public` and 27 `half_day`. 2029-04-23 appears twice (Eid al-Adha eve
    // half day and National Sovereignty Day), so 151 distinct dates.
    #[test]
    fn embedded_table_parses_with_expected_row_count() {
        let rows = parse_holiday_table(TURKEY_HOLIDAY_TABLE).unwrap();
        assert_eq!(rows.len(), 152);
        let public = rows
            .iter()
            .filter(|r| r.kind == HolidayKind::Public)
            .count();
        assert_eq!(public, 125);
        assert_eq!(rows.len() - public, 27);
        let distinct: BTreeSet<Date> = rows.iter().map(|r| r.date).collect();
        assert_eq!(distinct.len(), 151);

        // A name with a comma in it keeps everything after the second comma.
        let may19 = rows
            .iter()
            .find(|r| r.date == date!(2024 - 05 - 19))
            .unwrap();
        assert_eq!(may19.kind, HolidayKind::Public);
        assert_eq!(may19.name, "Commemoration of Atatürk, Youth and Sports Day");

        let c = cal();
        assert_eq!(
            c.covered_range(),
            (date!(2024 - 01 - 01), date!(2032 - 12 - 31))
        );
        assert!(c.half_days_are_business_days());
        // 2029-04-23 (Monday) is both a half day and a public holiday:
        // public wins, so it is closed even with half days as business days.
        assert!(!c.is_business_day(date!(2029 - 04 - 23)).unwrap());
        assert_eq!(
            c.holiday_name(date!(2029 - 04 - 23)).unwrap(),
            Some("Eid al-Adha (from 1pm); National Sovereignty and Children's Day")
        );
    }

    #[test]
    fn is_business_day_basics() {
        let c = cal();
        // 2026-11-16 is a Monday with no holiday.
        assert!(c.is_business_day(date!(2026 - 11 - 16)).unwrap());
        // 2026-11-14 Saturday, 2026-11-15 Sunday.
        assert!(!c.is_business_day(date!(2026 - 11 - 14)).unwrap());
        assert!(!c.is_business_day(date!(2026 - 11 - 15)).unwrap());
        // 2026-10-29 Thursday, Republic Day (public).
        assert!(!c.is_business_day(date!(2026 - 10 - 29)).unwrap());
        // 2026-10-28 Wednesday, half day: business by default, not when
        // configured otherwise.
        assert!(c.is_business_day(date!(2026 - 10 - 28)).unwrap());
        let strict = cal().with_half_days_as_business_days(false);
        assert!(!strict.is_business_day(date!(2026 - 10 - 28)).unwrap());
        // Range edges.
        assert!(!c.is_business_day(date!(2024 - 01 - 01)).unwrap()); // New Year
        assert!(c.is_business_day(date!(2032 - 12 - 31)).unwrap()); // Friday
    }

    // 1. Upload Mon 2026-11-16; November 2026 has no rows in the table.
    //    Counted: Tue 17 (1), Wed 18 (2), Thu 19 (3), Fri 20 (4),
    //    [Sat 21, Sun 22 skipped], Mon 23 (5), Tue 24 (6), Wed 25 (7),
    //    Thu 26 (8), Fri 27 (9), [Sat 28, Sun 29 skipped], Mon 30 (10).
    #[test]
    fn ordinary_weeks() {
        let c = cal();
        assert_eq!(
            c.nth_business_day_after(date!(2026 - 11 - 16), 1).unwrap(),
            date!(2026 - 11 - 17)
        );
        assert_eq!(
            c.purge_deadline(date!(2026 - 11 - 16), 10).unwrap(),
            date!(2026 - 11 - 30)
        );
    }

    // 2a. Upload Fri 2026-11-13: [Sat 14, Sun 15 skipped], Mon 16 (1),
    //     Tue 17 (2), Wed 18 (3), Thu 19 (4), Fri 20 (5), [21, 22],
    //     Mon 23 (6), Tue 24 (7), Wed 25 (8), Thu 26 (9), Fri 27 (10).
    // 2b. Upload Sat 2026-11-14: [Sun 15 skipped], Mon 16 (1), then as 2a
    //     → Fri 27 (10). Same for an upload on Sun 2026-11-15.
    #[test]
    fn across_a_weekend() {
        let c = cal();
        assert_eq!(
            c.nth_business_day_after(date!(2026 - 11 - 13), 1).unwrap(),
            date!(2026 - 11 - 16)
        );
        assert_eq!(
            c.purge_deadline(date!(2026 - 11 - 13), 10).unwrap(),
            date!(2026 - 11 - 27)
        );
        assert_eq!(
            c.nth_business_day_after(date!(2026 - 11 - 14), 1).unwrap(),
            date!(2026 - 11 - 16)
        );
        assert_eq!(
            c.purge_deadline(date!(2026 - 11 - 14), 10).unwrap(),
            date!(2026 - 11 - 27)
        );
        assert_eq!(
            c.purge_deadline(date!(2026 - 11 - 15), 10).unwrap(),
            date!(2026 - 11 - 27)
        );
    }

    // 3a. Ramazan Bayramı 2026 in the CSV: 2026-03-19 (Thu) half_day,
    //     2026-03-20 (Fri), 21 (Sat), 22 (Sun) public. Upload Mon 2026-03-16.
    //     Half days business (default): Tue 17 (1), Wed 18 (2), Thu 19 half
    //     day (3), [Fri 20 public, Sat 21, Sun 22 skipped], Mon 23 (4),
    //     Tue 24 (5), Wed 25 (6), Thu 26 (7), Fri 27 (8), [28, 29],
    //     Mon 30 (9), Tue 31 (10) → 2026-03-31.
    //     Half days non-business: Tue 17 (1), Wed 18 (2), [Thu 19 half,
    //     Fri 20, 21, 22], Mon 23 (3), Tue 24 (4), Wed 25 (5), Thu 26 (6),
    //     Fri 27 (7), Mon 30 (8), Tue 31 (9), Wed 2026-04-01 (10).
    //     (No table rows between 2026-03-23 and 2026-04-22.)
    #[test]
    fn across_ramazan_bayrami_2026() {
        let c = cal();
        assert_eq!(
            c.purge_deadline(date!(2026 - 03 - 16), 10).unwrap(),
            date!(2026 - 03 - 31)
        );
        let strict = cal().with_half_days_as_business_days(false);
        assert_eq!(
            strict.purge_deadline(date!(2026 - 03 - 16), 10).unwrap(),
            date!(2026 - 04 - 01)
        );
    }

    // 3b. Kurban Bayramı 2026 in the CSV: 2026-05-26 (Tue) half_day,
    //     2026-05-27 (Wed), 28 (Thu), 29 (Fri), 30 (Sat) public.
    //     Upload Mon 2026-05-25.
    //     Default: Tue 26 half day (1), [Wed 27, Thu 28, Fri 29 public,
    //     Sat 30, Sun 31 skipped], Mon 06-01 (2), Tue 2 (3), Wed 3 (4),
    //     Thu 4 (5), Fri 5 (6), [6, 7], Mon 8 (7), Tue 9 (8), Wed 10 (9),
    //     Thu 2026-06-11 (10).
    //     Half days non-business: [Tue 26 skipped too], Mon 06-01 (1) …
    //     Fri 5 (5), Mon 8 (6) … Thu 11 (9), Fri 2026-06-12 (10).
    //     (No table rows in June 2026: next is 2026-07-15.)
    #[test]
    fn across_kurban_bayrami_2026() {
        let c = cal();
        assert_eq!(
            c.purge_deadline(date!(2026 - 05 - 25), 10).unwrap(),
            date!(2026 - 06 - 11)
        );
        // Day 1 is the half day itself.
        assert_eq!(
            c.nth_business_day_after(date!(2026 - 05 - 25), 1).unwrap(),
            date!(2026 - 05 - 26)
        );
        let strict = cal().with_half_days_as_business_days(false);
        assert_eq!(
            strict.purge_deadline(date!(2026 - 05 - 25), 10).unwrap(),
            date!(2026 - 06 - 12)
        );
        assert_eq!(
            strict
                .nth_business_day_after(date!(2026 - 05 - 25), 1)
                .unwrap(),
            date!(2026 - 06 - 01)
        );
    }

    // 4. Upload Thu 2026-12-24 (25 December is not a Turkish holiday):
    //    Fri 25 (1), [Sat 26, Sun 27], Mon 28 (2), Tue 29 (3), Wed 30 (4),
    //    Thu 31 (5), [Fri 2027-01-01 New Year's Day, Sat 2, Sun 3],
    //    Mon 4 (6), Tue 5 (7), Wed 6 (8), Thu 7 (9), Fri 2027-01-08 (10).
    #[test]
    fn across_a_year_end() {
        assert_eq!(
            cal().purge_deadline(date!(2026 - 12 - 24), 10).unwrap(),
            date!(2027 - 01 - 08)
        );
    }

    // 5. Same upload as test 1 (Mon 2026-11-16, deadline Mon 30) with
    //    Fri 2026-11-20 declared closed: Tue 17 (1), Wed 18 (2), Thu 19 (3),
    //    [Fri 20 closed, 21, 22], Mon 23 (4) … Fri 27 (8), Mon 30 (9),
    //    Tue 2026-12-01 (10). (December 2026 has no table rows.)
    #[test]
    fn extra_closed_day_from_file_shifts_deadline() {
        let file = "# Circular 2026/14: administrative leave\n\
                    \n\
                    2026-11-20 administrative leave\n";
        let days = BusinessCalendar::parse_closed_days_file(file).unwrap();
        assert_eq!(days, vec![date!(2026 - 11 - 20)]);
        let c = cal().with_extra_closed_days(days).unwrap();
        assert!(!c.is_business_day(date!(2026 - 11 - 20)).unwrap());
        assert_eq!(
            c.purge_deadline(date!(2026 - 11 - 16), 10).unwrap(),
            date!(2026 - 12 - 01)
        );
        // A closed day on a half day closes it even when half days count.
        let c = cal()
            .with_extra_closed_days([date!(2026 - 10 - 28)])
            .unwrap();
        assert!(!c.is_business_day(date!(2026 - 10 - 28)).unwrap());
    }

    #[test]
    fn extra_closed_days_outside_range_are_refused() {
        let err = cal()
            .with_extra_closed_days([date!(2033 - 01 - 03)])
            .unwrap_err();
        assert_eq!(
            err,
            CalendarError::OutOfRange {
                date: date!(2033 - 01 - 03),
                first: date!(2024 - 01 - 01),
                last: date!(2032 - 12 - 31),
            }
        );
    }

    // 6. Upload Fri 2032-12-24: Mon 27 (1), Tue 28 (2), Wed 29 (3),
    //    Thu 30 (4), Fri 31 (5); day 6 would need 2033-01-01 onwards, which
    //    the table does not cover → refused, naming 2033-01-01.
    //    With 5 business days the deadline is exactly the last covered day.
    #[test]
    fn refuses_past_table_end() {
        let c = cal();
        let err = c.purge_deadline(date!(2032 - 12 - 24), 10).unwrap_err();
        assert_eq!(
            err,
            CalendarError::OutOfRange {
                date: date!(2033 - 01 - 01),
                first: date!(2024 - 01 - 01),
                last: date!(2032 - 12 - 31),
            }
        );
        let message = err.to_string();
        assert!(message.contains("2033-01-01"), "{message}");
        assert!(message.contains("2024-01-01..=2032-12-31"), "{message}");
        assert_eq!(
            c.purge_deadline(date!(2032 - 12 - 24), 5).unwrap(),
            date!(2032 - 12 - 31)
        );
        assert!(matches!(
            c.is_business_day(date!(2033 - 01 - 03)),
            Err(CalendarError::OutOfRange { .. })
        ));
    }

    #[test]
    fn refuses_before_table_start() {
        let c = cal();
        for day in [date!(2023 - 12 - 29), date!(2023 - 12 - 31)] {
            assert_eq!(
                c.purge_deadline(day, 10).unwrap_err(),
                CalendarError::OutOfRange {
                    date: day,
                    first: date!(2024 - 01 - 01),
                    last: date!(2032 - 12 - 31),
                }
            );
            assert!(c.is_business_day(day).is_err());
        }
        // Uploaded 2023-12-31 21:30 UTC = 2024-01-01 00:30 in Turkey: in
        // range. 2024-01-01 is New Year's Day (upload day itself may be a
        // holiday); Tue 2 (1), Wed 3 (2), Thu 4 (3), Fri 5 (4), Mon 8 (5),
        // Tue 9 (6), Wed 10 (7), Thu 11 (8), Fri 12 (9), Mon 2024-01-15 (10).
        assert_eq!(
            c.purge_deadline_for_upload(datetime!(2023-12-31 21:30 UTC), 10)
                .unwrap(),
            date!(2024 - 01 - 15)
        );
        assert!(
            c.upload_day(datetime!(2023-12-31 20:59:59 UTC)).is_err(),
            "23:59:59 on 2023-12-31 in Turkey is before the table"
        );
    }

    #[test]
    fn zero_business_days_is_refused() {
        assert_eq!(
            cal().purge_deadline(date!(2026 - 11 - 16), 0).unwrap_err(),
            CalendarError::ZeroBusinessDays
        );
    }

    // 7. Line 1 comment, 2 good, 3 blank, 4 good with comma text,
    //    5 bad (no such day), 6 never reached.
    #[test]
    fn closed_days_file_reports_bad_line_number() {
        let file = "# leave\n2026-11-20\n\n2026-11-23, circular 14\n2026-02-30 leave\n2026-11-24\n";
        assert_eq!(
            BusinessCalendar::parse_closed_days_file(file).unwrap_err(),
            CalendarError::BadClosedDayLine {
                line: 5,
                text: "2026-02-30 leave".to_owned(),
                reason: "no such day in that month",
            }
        );
        let err =
            BusinessCalendar::parse_closed_days_file("2026-11-20\n  20/11/2026\n").unwrap_err();
        assert!(matches!(
            err,
            CalendarError::BadClosedDayLine { line: 2, .. }
        ));
        let message = err.to_string();
        assert!(message.contains("line 2"), "{message}");
        assert!(message.contains("20/11/2026"), "{message}");
    }

    #[test]
    fn closed_days_file_accepted_forms() {
        let file =
            "2026-11-20\r\n  2026-11-23\tleave\n2026-11-24,x\n\n   # note\n2026-11-25 # why\n";
        assert_eq!(
            BusinessCalendar::parse_closed_days_file(file).unwrap(),
            vec![
                date!(2026 - 11 - 20),
                date!(2026 - 11 - 23),
                date!(2026 - 11 - 24),
                date!(2026 - 11 - 25),
            ]
        );
        for bad in ["+2026-11-20", "2026-1-20", "2026-11-20x", "2026-13-01"] {
            assert!(
                BusinessCalendar::parse_closed_days_file(bad).is_err(),
                "{bad}"
            );
        }
    }

    // 8. Upload Mon 2026-11-16 → deadline Mon 2026-11-30 (test 1). The
    //    purge is due once the Turkish date (UTC+3) is 2026-12-01, i.e. from
    //    2026-11-30 21:00 UTC.
    #[test]
    fn is_purge_due_end_of_day_in_turkey() {
        let c = cal();
        let due = |now| {
            c.is_purge_due(date!(2026 - 11 - 16), 10, now, TURKEY_UTC_OFFSET)
                .unwrap()
        };
        // Before: Turkey 2026-11-29 23:00 / deadline day itself.
        assert!(!due(datetime!(2026-11-29 20:00 UTC)));
        assert!(!due(datetime!(2026-11-30 10:00 UTC)));
        // At: 23:59:59 in Turkey on the deadline date, still not due.
        assert!(!due(datetime!(2026-11-30 20:59:59 UTC)));
        // After: 00:00 in Turkey on 2026-12-01.
        assert!(due(datetime!(2026-11-30 21:00 UTC)));
        // 23:30 UTC on the deadline date is 02:30 on 1 December in Turkey.
        assert!(due(datetime!(2026-11-30 23:30 UTC)));
        // `now` in another offset: 2026-12-01 00:30 +05:00 is 19:30 UTC,
        // 22:30 in Turkey on the deadline date → not due.
        assert!(!due(datetime!(2026-12-01 00:30 +05:00)));
        assert!(due(datetime!(2026-12-02 00:00 UTC)));
    }

    // Upload timestamps: Sun 2026-11-15 22:30 UTC is Mon 2026-11-16 01:30
    // in Turkey → deadline Mon 2026-11-30 (test 1); Sun 20:59 UTC is still
    // Sun 2026-11-15 23:59 in Turkey → deadline Fri 2026-11-27 (test 2b).
    #[test]
    fn upload_timestamp_uses_turkish_date() {
        let c = cal();
        assert_eq!(
            c.upload_day(datetime!(2026-11-15 22:30 UTC)).unwrap(),
            date!(2026 - 11 - 16)
        );
        assert_eq!(
            c.purge_deadline_for_upload(datetime!(2026-11-15 22:30 UTC), 10)
                .unwrap(),
            date!(2026 - 11 - 30)
        );
        assert_eq!(
            c.purge_deadline_for_upload(datetime!(2026-11-15 20:59 UTC), 10)
                .unwrap(),
            date!(2026 - 11 - 27)
        );
    }

    #[test]
    fn holiday_table_errors() {
        assert!(matches!(
            BusinessCalendar::from_holiday_table("date,kind,name\n"),
            Err(CalendarError::EmptyHolidayTable)
        ));
        assert!(matches!(
            BusinessCalendar::from_holiday_table("date,name\n2024-01-01,New Year"),
            Err(CalendarError::BadHolidayRow { line: 1, .. })
        ));
        assert!(matches!(
            BusinessCalendar::from_holiday_table(
                "date,kind,name\n2024-01-01,public,A\n2024-01-02,closed,B\n"
            ),
            Err(CalendarError::BadHolidayRow { line: 3, .. })
        ));
        assert_eq!(
            BusinessCalendar::from_holiday_table(
                "date,kind,name\n2024-01-01,public,A\n2026-01-01,public,B\n"
            ),
            Err(CalendarError::HolidayTableGap {
                year: 2025,
                first_year: 2024,
                last_year: 2026,
            })
        );
    }
}
