//! Named time intervals (`time_intervals:`) for `mute_time_intervals` and
//! `active_time_intervals`, with Alertmanager's syntax: `times` (`HH:MM` start inclusive, end
//! exclusive), `weekdays`, `days_of_month` (negative counts from the month's end), `months`,
//! `years`, each a list of values or `a:b` ranges, evaluated in `location` (IANA, default UTC).

use jiff::tz::TimeZone;

use super::config::{TimeIntervalConfig, TimeIntervalSpec};

/// An inclusive range of integers.
type Range = (i32, i32);

#[derive(Clone, Debug)]
struct Interval {
    /// Minutes of the day, `[start, end)`.
    times: Vec<Range>,
    weekdays: Vec<Range>,
    days_of_month: Vec<Range>,
    months: Vec<Range>,
    years: Vec<Range>,
    tz: TimeZone,
}

/// A named set of intervals: active when any interval contains the instant.
#[derive(Clone, Debug)]
pub struct TimeIntervals {
    pub name: String,
    intervals: Vec<Interval>,
}

const WEEKDAYS: [&str; 7] = [
    "sunday",
    "monday",
    "tuesday",
    "wednesday",
    "thursday",
    "friday",
    "saturday",
];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

impl TimeIntervals {
    pub fn compile(cfg: &TimeIntervalConfig) -> Result<TimeIntervals, String> {
        let ctx = |e: String| format!("time interval {:?}: {e}", cfg.name);
        let intervals = cfg
            .time_intervals
            .iter()
            .map(compile_one)
            .collect::<Result<Vec<_>, _>>()
            .map_err(ctx)?;
        Ok(TimeIntervals {
            name: cfg.name.clone(),
            intervals,
        })
    }

    /// Whether `ms` (Unix milliseconds) falls in any of the intervals.
    pub fn contains(&self, ms: i64) -> bool {
        self.intervals.iter().any(|i| i.contains(ms))
    }
}

fn compile_one(spec: &TimeIntervalSpec) -> Result<Interval, String> {
    let times = spec
        .times
        .iter()
        .map(|t| {
            let s = parse_hhmm(&t.start_time)?;
            let e = parse_hhmm(&t.end_time)?;
            if s >= e {
                return Err(format!(
                    "start time {:?} must be before end time {:?}",
                    t.start_time, t.end_time
                ));
            }
            Ok((s, e))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let named = |v: &[String], names: &[&str], first: i32, what: &str| {
        v.iter()
            .map(|s| {
                parse_range(s, |x| {
                    let lower = x.trim().to_ascii_lowercase();
                    if let Some(i) = names.iter().position(|n| *n == lower) {
                        return Ok(i as i32 + first);
                    }
                    match lower.parse::<i32>() {
                        Ok(n) if what == "month" && (1..=12).contains(&n) => Ok(n),
                        _ => Err(format!("invalid {what} {x:?}")),
                    }
                })
            })
            .collect::<Result<Vec<_>, String>>()
    };
    let weekdays = named(&spec.weekdays, &WEEKDAYS, 0, "weekday")?;
    let months = named(&spec.months, &MONTHS, 1, "month")?;
    let days_of_month = spec
        .days_of_month
        .iter()
        .map(|s| {
            parse_range(s, |x| match x.trim().parse::<i32>() {
                Ok(n) if n != 0 && (-31..=31).contains(&n) => Ok(n),
                _ => Err(format!("invalid day of month {x:?}")),
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let years = spec
        .years
        .iter()
        .map(|s| {
            parse_range(s, |x| {
                x.trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("invalid year {x:?}"))
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let tz = match spec.location.as_deref() {
        None | Some("") | Some("UTC") => TimeZone::UTC,
        Some("Local") => TimeZone::system(),
        Some(name) => TimeZone::get(name).map_err(|e| format!("unknown location {name:?}: {e}"))?,
    };
    Ok(Interval {
        times,
        weekdays,
        days_of_month,
        months,
        years,
        tz,
    })
}

fn parse_hhmm(s: &str) -> Result<i32, String> {
    let (h, m) = s
        .trim()
        .split_once(':')
        .ok_or_else(|| format!("invalid time {s:?}: want HH:MM"))?;
    let h: i32 = h.parse().map_err(|_| format!("invalid time {s:?}"))?;
    let m: i32 = m.parse().map_err(|_| format!("invalid time {s:?}"))?;
    if !(0..=24).contains(&h) || !(0..60).contains(&m) || (h == 24 && m != 0) {
        return Err(format!("invalid time {s:?}"));
    }
    Ok(h * 60 + m)
}

fn parse_range(s: &str, one: impl Fn(&str) -> Result<i32, String>) -> Result<Range, String> {
    match s.split_once(':') {
        Some((a, b)) => {
            let (a, b) = (one(a)?, one(b)?);
            // Day-of-month ranges may mix signs; they are checked against the month later.
            if a > b && (a > 0) == (b > 0) {
                return Err(format!("invalid range {s:?}: start after end"));
            }
            Ok((a, b))
        }
        None => {
            let v = one(s)?;
            Ok((v, v))
        }
    }
}

impl Interval {
    fn contains(&self, ms: i64) -> bool {
        let Ok(ts) = jiff::Timestamp::from_millisecond(ms) else {
            return false;
        };
        let z = ts.to_zoned(self.tz.clone());
        let in_any = |ranges: &[Range], v: i32| {
            ranges.is_empty() || ranges.iter().any(|&(a, b)| a <= v && v <= b)
        };
        let minute = i32::from(z.hour()) * 60 + i32::from(z.minute());
        if !self.times.is_empty() && !self.times.iter().any(|&(a, b)| a <= minute && minute < b) {
            return false;
        }
        let weekday = i32::from(z.weekday().to_sunday_zero_offset());
        if !in_any(&self.weekdays, weekday) {
            return false;
        }
        if !in_any(&self.months, i32::from(z.month())) || !in_any(&self.years, i32::from(z.year()))
        {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let days = i32::from(z.days_in_month());
            let abs = |d: i32| if d < 0 { days + 1 + d } else { d.min(days) };
            let day = i32::from(z.day());
            if !self
                .days_of_month
                .iter()
                .any(|&(a, b)| abs(a) <= day && day <= abs(b))
            {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(s: &str) -> i64 {
        s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    fn compile(yaml: &str) -> TimeIntervals {
        let cfg: TimeIntervalConfig = serde_yaml::from_str(yaml).unwrap();
        TimeIntervals::compile(&cfg).unwrap()
    }

    #[test]
    fn office_hours_in_a_time_zone() {
        let t = compile(
            r#"
name: office
time_intervals:
  - times: [{start_time: "09:00", end_time: "17:00"}]
    weekdays: ['monday:friday']
    location: Europe/Berlin
"#,
        );
        // 2024-05-06 is a Monday; Berlin is UTC+2 in May.
        assert!(t.contains(ms("2024-05-06T07:00:00Z")));
        assert!(!t.contains(ms("2024-05-06T06:59:00Z")));
        assert!(
            !t.contains(ms("2024-05-06T15:00:00Z")),
            "17:00 local is exclusive"
        );
        assert!(!t.contains(ms("2024-05-05T10:00:00Z")), "Sunday");
    }

    #[test]
    fn days_months_years() {
        let t = compile(
            r#"
name: eom
time_intervals:
  - days_of_month: ['-2:-1']
    months: ['february', '12']
    years: ['2024:2025']
"#,
        );
        assert!(t.contains(ms("2024-02-28T12:00:00Z")));
        assert!(t.contains(ms("2024-02-29T12:00:00Z")));
        assert!(!t.contains(ms("2024-02-27T12:00:00Z")));
        assert!(t.contains(ms("2025-12-31T00:00:00Z")));
        assert!(!t.contains(ms("2025-11-30T00:00:00Z")));
        assert!(!t.contains(ms("2026-02-28T12:00:00Z")));
        let bad: TimeIntervalConfig =
            serde_yaml::from_str("name: x\ntime_intervals: [{weekdays: [funday]}]\n").unwrap();
        assert!(TimeIntervals::compile(&bad).unwrap_err().contains("funday"));
        let bad: TimeIntervalConfig =
            serde_yaml::from_str("name: x\ntime_intervals: [{location: Mars/Base}]\n").unwrap();
        assert!(TimeIntervals::compile(&bad).is_err());
    }
}
