//! The one form of every time certmint records or reports: RFC 3339 in UTC,
//! to the second (`2026-12-05T21:45:13Z`), as certificates state their own
//! validity. Sequence numbers, not times, order the audit records.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// `at` in UTC, to the second.
pub fn format(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    let at = at.replace_nanosecond(0).unwrap_or(at);
    // A whole-second UTC time within years 0–9999 always formats.
    at.format(&Rfc3339).unwrap_or_default()
}

/// The time now, as [`format`] writes it.
pub fn now() -> String {
    format(OffsetDateTime::now_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_to_the_second() {
        let at = OffsetDateTime::parse("2026-12-05T23:45:13.987654+02:00", &Rfc3339).unwrap();
        assert_eq!(format(at), "2026-12-05T21:45:13Z");
        let now = now();
        assert_eq!(now.len(), "2026-12-05T21:45:13Z".len(), "{now}");
        assert!(now.ends_with('Z'));
    }
}
