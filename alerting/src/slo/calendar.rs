//! Calendar-aligned SLO periods: the month or quarter containing an instant, in an IANA time
//! zone (read from the system tz database by `jiff`). A period starts at local midnight of its
//! first day (or the first valid local time after it, if a DST gap swallows midnight); and
//! OpenSLO's anchored calendar windows (`1w` from a `startTime`), see [`aligned_bounds`].

use jiff::civil::{Date, DateTime};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use super::spec::{AlignedUnit, CalendarUnit, Period};

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
        CalendarUnit::Year => 1,
    };
    let start = Date::new(local.year(), first_month, 1).map_err(|e| e.to_string())?;
    let months: i64 = match unit {
        CalendarUnit::Month => 1,
        CalendarUnit::Quarter => 3,
        CalendarUnit::Year => 12,
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

/// Parses an OpenSLO `startTime` (`2022-01-01 12:00:00`, or with a `T`) as a civil date-time.
pub fn parse_anchor(anchor: &str) -> Result<DateTime, String> {
    anchor
        .trim()
        .replacen(' ', "T", 1)
        .parse::<DateTime>()
        .map_err(|e| format!("invalid calendar startTime {anchor:?}: {e}"))
}

/// `[start, end)` in milliseconds of the anchored window containing `now_ms`: windows of
/// `count × unit` follow each other from `anchor` (local time in `time_zone`), backwards and
/// forwards. Minutes and hours are exact lengths; days and weeks are added in civil time.
pub fn aligned_bounds(
    count: u32,
    unit: AlignedUnit,
    anchor: &str,
    time_zone: &str,
    now_ms: i64,
) -> Result<(i64, i64), String> {
    if count == 0 {
        return Err("calendar window length must be positive".into());
    }
    let tz =
        TimeZone::get(time_zone).map_err(|e| format!("unknown time zone {time_zone:?}: {e}"))?;
    let start = parse_anchor(anchor)?
        .to_zoned(tz)
        .map_err(|e| e.to_string())?;
    let start_ms = start.timestamp().as_millisecond();
    let len_ms = i64::from(count) * unit.seconds() as i64 * 1000;
    let nth = |k: i64| -> Result<i64, String> {
        let n = k * i64::from(count);
        match unit {
            AlignedUnit::Minute | AlignedUnit::Hour => Ok(start_ms + k * len_ms),
            AlignedUnit::Day | AlignedUnit::Week => {
                let span = if unit == AlignedUnit::Day {
                    n.days()
                } else {
                    n.weeks()
                };
                Ok(start
                    .checked_add(span)
                    .map_err(|e| e.to_string())?
                    .timestamp()
                    .as_millisecond())
            }
        }
    };
    let mut k = (now_ms - start_ms).div_euclid(len_ms);
    // Civil days and weeks differ from the nominal length by DST hours: step to the window.
    while nth(k)? > now_ms {
        k -= 1;
    }
    while nth(k + 1)? <= now_ms {
        k += 1;
    }
    Ok((nth(k)?, nth(k + 1)?))
}

/// `[start, end)` of a calendar or anchored period at `now_ms`; `None` for rolling periods.
pub fn bounds(period: &Period, now_ms: i64) -> Result<Option<(i64, i64)>, String> {
    match period {
        Period::Rolling(_) => Ok(None),
        Period::Calendar { unit, time_zone } => period_bounds(*unit, time_zone, now_ms).map(Some),
        Period::Aligned {
            count,
            unit,
            anchor,
            time_zone,
        } => aligned_bounds(*count, *unit, anchor, time_zone, now_ms).map(Some),
    }
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
    fn anchored_weeks_follow_the_start_time_across_dst() {
        // OpenSLO's example: weekly windows from Saturday 2022-01-01 12:00 New York time.
        let at = |now: &str| {
            aligned_bounds(
                1,
                AlignedUnit::Week,
                "2022-01-01 12:00:00",
                "America/New_York",
                ms(now),
            )
            .unwrap_or((0, 0))
        };
        assert_eq!(
            at("2022-01-05T00:00:00Z"),
            (ms("2022-01-01T17:00:00Z"), ms("2022-01-08T17:00:00Z"))
        );
        // The week holding the March 13 DST change is 167 hours long; noon stays noon.
        assert_eq!(
            at("2022-03-14T00:00:00Z"),
            (ms("2022-03-12T17:00:00Z"), ms("2022-03-19T16:00:00Z"))
        );
        // Before the anchor, windows continue backwards.
        assert_eq!(
            at("2021-12-31T00:00:00Z"),
            (ms("2021-12-25T17:00:00Z"), ms("2022-01-01T17:00:00Z"))
        );
        // Minutes are exact lengths from the anchor.
        let (s, e) = aligned_bounds(
            1,
            AlignedUnit::Minute,
            "2022-01-01T12:00:00",
            "UTC",
            ms("2024-03-11T00:00:30Z"),
        )
        .unwrap_or((0, 0));
        assert_eq!(
            (s, e),
            (ms("2024-03-11T00:00:00Z"), ms("2024-03-11T00:01:00Z"))
        );
        assert!(parse_anchor("2022-13-01 00:00:00").is_err());
    }

    #[test]
    fn year_starts_on_january_first() {
        let (s, e) =
            period_bounds(CalendarUnit::Year, "UTC", ms("2024-05-15T12:00:00Z")).unwrap_or((0, 0));
        assert_eq!(
            (s, e),
            (ms("2024-01-01T00:00:00Z"), ms("2025-01-01T00:00:00Z"))
        );
    }

    #[test]
    fn unknown_zone_is_an_error() {
        assert!(check_time_zone("Mars/Olympus").is_err());
        assert!(check_time_zone("Europe/Paris").is_ok());
    }
}
