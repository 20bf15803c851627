//! Validity periods: notAfter = notBefore + N years − 1 day, same time of
//! day; times encoded as RFC 5280 wants (UTCTime through 2049, then
//! GeneralizedTime).

use std::time::Duration;

use der::asn1::{GeneralizedTime, UtcTime};
use der::{DateTime, Sequence};
use x509_cert::time::Time;

use super::IssueError;

/// RFC 5280 `Validity`, encoded exactly as held. (x509-cert's `Validity`
/// re-chooses the time types while encoding, which would hide a wrong
/// encoding from the linter.)
#[derive(Clone, Copy, Debug, Eq, PartialEq, Sequence)]
pub struct Validity {
    /// Start of validity.
    pub not_before: Time,
    /// End of validity, inclusive.
    pub not_after: Time,
}

const DAY: Duration = Duration::from_secs(86_400);

fn is_leap(year: u16) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

/// `start` + `years` years − 1 day. The anniversary of 29 February in a
/// common year is 1 March, so the period never falls short of `years` years.
pub fn not_after(start: DateTime, years: u32) -> Result<DateTime, IssueError> {
    let err = |e: der::Error| IssueError::Validity(e.to_string());
    let year = u16::try_from(u32::from(start.year()) + years)
        .map_err(|_| IssueError::Validity(format!("year overflow adding {years} years")))?;
    let (month, day) = if start.month() == 2 && start.day() == 29 && !is_leap(year) {
        (3, 1)
    } else {
        (start.month(), start.day())
    };
    let anniversary = DateTime::new(
        year,
        month,
        day,
        start.hour(),
        start.minutes(),
        start.seconds(),
    )
    .map_err(err)?;
    DateTime::from_unix_duration(anniversary.unix_duration() - DAY).map_err(err)
}

/// Encodes a time as RFC 5280 §4.1.2.5 requires.
pub fn rfc5280_time(at: DateTime) -> Result<Time, IssueError> {
    if at.year() < 2050 {
        UtcTime::from_date_time(at)
            .map(Time::UtcTime)
            .map_err(|e| IssueError::Validity(e.to_string()))
    } else {
        Ok(Time::GeneralTime(GeneralizedTime::from_date_time(at)))
    }
}

/// The validity of a certificate starting at `start` and lasting `years` − 1 day.
pub fn validity(start: DateTime, years: u32) -> Result<Validity, IssueError> {
    Ok(Validity {
        not_before: rfc5280_time(start)?,
        not_after: rfc5280_time(not_after(start, years)?)?,
    })
}

/// The DER of [`validity`]`(start, years)`, written directly: the same
/// octets (the unit test compares them across the UTCTime/GeneralizedTime
/// boundary), without der's calendar conversions, on the hot path of every
/// certificate.
pub fn validity_der(start: DateTime, years: u32) -> Result<Vec<u8>, IssueError> {
    let end = not_after(start, years)?;
    let mut out = Vec::with_capacity(2 + 2 * 17);
    out.extend_from_slice(&[0x30, 0]);
    put_time(&mut out, start);
    put_time(&mut out, end);
    // At most two 17-octet times: the short length form always fits.
    out[1] = (out.len() - 2) as u8;
    Ok(out)
}

/// Appends `at` as RFC 5280 §4.1.2.5 encodes it: UTCTime YYMMDDHHMMSSZ
/// through 2049, GeneralizedTime YYYYMMDDHHMMSSZ from 2050. (A `DateTime`
/// lies in 1970–9999, so the UTCTime years 1950–1969 never arise.)
fn put_time(out: &mut Vec<u8>, at: DateTime) {
    let year = at.year();
    let (tag, length) = if year < 2050 { (0x17, 13) } else { (0x18, 15) };
    out.extend_from_slice(&[tag, length]);
    let mut two_digits = |value: u8| out.extend_from_slice(&[b'0' + value / 10, b'0' + value % 10]);
    if year >= 2050 {
        two_digits((year / 100) as u8);
    }
    two_digits((year % 100) as u8);
    for value in [at.month(), at.day(), at.hour(), at.minutes(), at.seconds()] {
        two_digits(value);
    }
    out.push(b'Z');
}

/// Now, to the second.
pub fn now() -> Result<DateTime, IssueError> {
    DateTime::from_system_time(std::time::SystemTime::now())
        .map_err(|e| IssueError::Validity(e.to_string()))
}

/// How far before now a requested notBefore may lie: room for clocks that
/// run a little behind (a relying party's, a device's), never a certificate
/// that claims to predate its own issuance by more.
pub const MAX_BACKDATE: std::time::Duration = std::time::Duration::from_secs(60 * 60);

/// The notBefore to issue with: `requested` (`--not-before`), else `now`.
/// A start more than [`MAX_BACKDATE`] before now is refused (a certificate
/// dated before it was issued, possibly before its CA existed, or already
/// expired); a start before the issuing CA's own notBefore is refused again
/// by the lints.
pub fn requested_start(requested: Option<DateTime>, now: DateTime) -> Result<DateTime, IssueError> {
    let Some(start) = requested else {
        return Ok(now);
    };
    if start.unix_duration() + MAX_BACKDATE < now.unix_duration() {
        return Err(IssueError::Backdated {
            requested: start.to_string(),
            now: now.to_string(),
            max_minutes: MAX_BACKDATE.as_secs() / 60,
        });
    }
    Ok(start)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::Encode;

    #[test]
    fn validity_der_is_what_der_encodes() {
        for start in [
            "1970-01-01T00:00:00Z",
            "2026-11-22T05:07:09Z",
            "2028-02-29T23:59:59Z",
            "2046-12-31T12:00:00Z",
            "2047-03-01T00:00:01Z",
            "2049-12-31T23:59:59Z",
            "2050-01-01T00:00:00Z",
            "2099-06-15T08:30:00Z",
        ] {
            for years in [1, 3, 5, 10] {
                let start = dt(start);
                assert_eq!(
                    validity_der(start, years).unwrap(),
                    validity(start, years).unwrap().to_der().unwrap(),
                    "{start} + {years} years"
                );
            }
        }
    }

    fn dt(s: &str) -> DateTime {
        s.parse().unwrap()
    }

    #[test]
    fn three_years_minus_one_day_same_time_of_day() {
        assert_eq!(
            not_after(dt("2026-11-21T10:15:30Z"), 3).unwrap(),
            dt("2029-11-20T10:15:30Z")
        );
        // Crossing a year end.
        assert_eq!(
            not_after(dt("2026-01-01T00:00:00Z"), 3).unwrap(),
            dt("2028-12-31T00:00:00Z")
        );
        // Into a leap day.
        assert_eq!(
            not_after(dt("2025-03-01T08:00:00Z"), 3).unwrap(),
            dt("2028-02-29T08:00:00Z")
        );
    }

    #[test]
    fn leap_day_start_ends_on_the_last_day_of_february() {
        assert_eq!(
            not_after(dt("2028-02-29T12:00:00Z"), 3).unwrap(),
            dt("2031-02-28T12:00:00Z")
        );
        assert_eq!(
            not_after(dt("2028-02-29T12:00:00Z"), 4).unwrap(),
            dt("2032-02-28T12:00:00Z")
        );
    }

    #[test]
    fn utc_time_through_2049_then_generalized() {
        assert!(matches!(
            rfc5280_time(dt("2049-12-31T23:59:59Z")).unwrap(),
            Time::UtcTime(_)
        ));
        assert!(matches!(
            rfc5280_time(dt("2050-01-01T00:00:00Z")).unwrap(),
            Time::GeneralTime(_)
        ));
    }

    fn at(text: &str) -> DateTime {
        text.parse().unwrap()
    }

    #[test]
    fn no_request_starts_now_and_a_small_backdate_or_a_future_start_is_kept() {
        let now = at("2026-12-05T12:00:00Z");
        assert_eq!(requested_start(None, now).unwrap(), now);
        let hour_ago = at("2026-12-05T11:00:00Z");
        assert_eq!(requested_start(Some(hour_ago), now).unwrap(), hour_ago);
        let later = at("2026-12-06T09:00:00Z");
        assert_eq!(requested_start(Some(later), now).unwrap(), later);
    }

    #[test]
    fn a_start_more_than_an_hour_ago_is_refused() {
        let now = at("2026-12-05T12:00:00Z");
        for start in ["2026-12-05T10:59:59Z", "2001-01-01T00:00:00Z"] {
            let err = requested_start(Some(at(start)), now).unwrap_err();
            assert!(
                matches!(err, IssueError::Backdated { .. }),
                "{start}: {err}"
            );
            assert!(err.to_string().contains(start), "{err}");
        }
    }
}
