//! Calendar-aligned SLO periods: the month or quarter containing an instant, in an IANA time
//! zone (read from the system tz database by `jiff`). A period starts at local midnight of its
//! first day (or the first valid local time after it, if a DST gap swallows midnight).

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::spec::CalendarUnit;

/// Fails with a readable message when `name` is not a known IANA time zone.
pub fn check_time_zone(name: &str) -> Result<(), String> {
    TimeZone::get(name)
        .map(|_| ())
        .map_err(|e| format!("unknown time zone {name:?}: {e}"))
}

/// `[start, end)` in milliseconds since the epoch of the calendar period containing `now_ms`.
pub fn period_bounds(
    unit: CalendarUnit,
    time_zone: &str,
    now_ms: i64,
) -> Result<(i64, i64), String> {
    let tz =
        TimeZone::get(time_zone).map_err(|e| format!("unknown time zone {time_zone:?}: {e}"))?;
    let now = Timestamp::from_millisecond(now_ms).map_err(|e| e.to_string())?;
    let local = now.to_zoned(tz.clone()).date();
    let first_month = match unit {
        CalendarUnit::Month => local.month(),
        CalendarUnit::Quarter => (local.month() - 1) / 3 * 3 + 1,
    };
    let start = Date::new(local.year(), first_month, 1).map_err(|e| e.to_string())?;
    let months: i64 = match unit {
        CalendarUnit::Month => 1,
        CalendarUnit::Quarter => 3,
    };
    let end = start
        .checked_add(months.months())
        .map_err(|e| e.to_string())?;
    let at = |d: Date| -> Result<i64, String> {
        Ok(d.to_zoned(tz.clone())
            .map_err(|e| e.to_string())?
            .timestamp()
            .as_millisecond())
    };
    Ok((at(start)?, at(end)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<Timestamp>()
            .map(|t| t.as_millisecond())
            .unwrap_or(i64::MIN)
    }

    #[test]
    fn month_boundary_follows_the_time_zone() {
        // 2024-03-31T23:30Z is already April 1st in Berlin (UTC+2 after the DST change).
        let (s, e) = period_bounds(
            CalendarUnit::Month,
            "Europe/Berlin",
            ms("2024-03-31T23:30:00Z"),
        )
        .unwrap_or((0, 0));
        assert_eq!(s, ms("2024-03-31T22:00:00Z"));
        assert_eq!(e, ms("2024-04-30T22:00:00Z"));
        // In UTC the same instant is still in March.
        let (s, e) =
            period_bounds(CalendarUnit::Month, "UTC", ms("2024-03-31T23:30:00Z")).unwrap_or((0, 0));
        assert_eq!(s, ms("2024-03-01T00:00:00Z"));
        assert_eq!(e, ms("2024-04-01T00:00:00Z"));
    }

    #[test]
    fn quarter_starts_on_its_first_month() {
        let (s, e) = period_bounds(
            CalendarUnit::Quarter,
            "America/New_York",
            ms("2024-05-15T12:00:00Z"),
        )
        .unwrap_or((0, 0));
        assert_eq!(s, ms("2024-04-01T04:00:00Z"));
        assert_eq!(e, ms("2024-07-01T04:00:00Z"));
    }

    #[test]
    fn unknown_zone_is_an_error() {
        assert!(check_time_zone("Mars/Olympus").is_err());
        assert!(check_time_zone("Europe/Paris").is_ok());
    }
}
