//! A standing room's weekly schedule and when its meetings start: pure functions, time passed in.
//!
//! JSON shape: `{"weekdays": ["tue","thu"], "start": "19:00", "time_zone": "Europe/London",
//! "duration_mins": 90}`. A local start time that does not exist on a day (the clocks go forward
//! over it) moves forward by the gap; one that happens twice (the clocks go back) takes the earlier.

use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveTime, TimeZone, Weekday};
use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// Shortest meeting, in minutes.
pub const MIN_DURATION_MINS: u32 = 5;
/// Longest meeting, in minutes (12 hours: an occurrence never reaches the next day's end).
pub const MAX_DURATION_MINS: u32 = 720;

/// Milliseconds in a minute.
const MINUTE_MS: u64 = 60_000;

/// Why a schedule was refused; each message names the field and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidSchedule {
    /// Not an object, a missing field, or a field the schedule does not have.
    #[error("{0}")]
    Shape(String),
    /// The weekdays are empty, repeated or not mon..sun.
    #[error("{0}")]
    Weekdays(String),
    /// The start time is not HH:MM.
    #[error("{0}")]
    Start(String),
    /// The time zone is not an IANA name.
    #[error("{0}")]
    TimeZone(String),
    /// The duration is out of range.
    #[error("{0}")]
    Duration(String),
}

/// When a group meets, every week.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The days it meets, Monday first, no repeats, at least one.
    pub weekdays: Vec<Weekday>,
    /// The local start time.
    pub start: NaiveTime,
    /// The zone the start time is in (its DST rules apply).
    pub time_zone: Tz,
    /// How long a meeting is planned to last, 5 to 720 minutes.
    pub duration_mins: u32,
}

const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

fn day_name(day: Weekday) -> &'static str {
    DAY_NAMES[day.num_days_from_monday() as usize].0
}

impl Schedule {
    /// Parses the JSON shape, with one clear message for the first problem found.
    pub fn parse(value: Value) -> Result<Schedule, InvalidSchedule> {
        let Value::Object(mut map) = value else {
            return Err(InvalidSchedule::Shape(
                "a schedule is an object with weekdays, start, time_zone and duration_mins".into(),
            ));
        };
        let weekdays = parse_weekdays(take(&mut map, "weekdays")?)?;
        let start = parse_start(take(&mut map, "start")?)?;
        let time_zone = parse_time_zone(take(&mut map, "time_zone")?)?;
        let duration_mins = parse_duration(take(&mut map, "duration_mins")?)?;
        if let Some(unknown) = map.keys().next() {
            return Err(InvalidSchedule::Shape(format!(
                "a schedule has no field {unknown:?} (fields: weekdays, start, time_zone, duration_mins)"
            )));
        }
        Ok(Schedule {
            weekdays,
            start,
            time_zone,
            duration_mins,
        })
    }

    /// Checks a schedule built in code (the fields are public): the same rules as [`Self::parse`].
    pub fn check(&self) -> Result<(), InvalidSchedule> {
        Self::parse(self.to_json()).map(|_| ())
    }

    /// The JSON shape.
    pub fn to_json(&self) -> Value {
        let days: Vec<Value> = self
            .weekdays
            .iter()
            .map(|d| Value::from(day_name(*d)))
            .collect();
        serde_json::json!({
            "weekdays": days,
            "start": self.start.format("%H:%M").to_string(),
            "time_zone": self.time_zone.name(),
            "duration_mins": self.duration_mins,
        })
    }

    /// The occurrence in progress at `now` or the next one: (starts_at, ends_at) in Unix ms.
    /// An occurrence is in progress from its start (inclusive) to its end (exclusive).
    pub fn current_or_next(&self, now_ms: u64) -> (u64, u64) {
        let duration_ms = u64::from(self.duration_mins) * MINUTE_MS;
        let Some(now) = i64::try_from(now_ms)
            .ok()
            .and_then(DateTime::from_timestamp_millis)
        else {
            // Beyond any calendar chrono knows: no schedule applies; treat it as starting now.
            return (now_ms, now_ms.saturating_add(duration_ms));
        };
        let today = now.with_timezone(&self.time_zone).date_naive();
        // From yesterday (a meeting up to 12 h long may run past midnight) to a week ahead (the
        // same weekday next week), the first occurrence that has not ended is the answer.
        for offset in -1..=7 {
            let Some(date) = today.checked_add_signed(Duration::days(offset)) else {
                continue;
            };
            if !self.weekdays.contains(&date.weekday()) {
                continue;
            }
            let Some(starts) = self.starts_on(date) else {
                continue;
            };
            let ends = starts.saturating_add(duration_ms);
            if ends > now_ms {
                return (starts, ends);
            }
        }
        // Unreachable with at least one weekday; an empty list (a schedule built in code and not
        // checked) has no occurrence: treat it as starting now rather than panic.
        (now_ms, now_ms.saturating_add(duration_ms))
    }

    /// When the waiting room opens for the occurrence in progress or the next: starts_at - early.
    pub fn opens_at(&self, now_ms: u64, early_open_mins: u32) -> u64 {
        let (starts, _) = self.current_or_next(now_ms);
        starts.saturating_sub(u64::from(early_open_mins) * MINUTE_MS)
    }

    /// The instant, in Unix ms, that the start time on `date` (local) names.
    fn starts_on(&self, date: NaiveDate) -> Option<u64> {
        let local = date.and_time(self.start);
        let instant = match self.time_zone.from_local_datetime(&local) {
            LocalResult::Single(t) => t,
            // The clocks went back over the start time: it happens twice; the first one counts.
            LocalResult::Ambiguous(earlier, later) => earlier.min(later),
            // The clocks went forward over it: read it in the offset in force before the jump,
            // which lands the same distance after the jump as the time was after the jump's start
            // (01:30 in a 01:00→02:00 gap becomes 02:30). A day earlier is before the jump and, in
            // every real zone, after the previous change.
            LocalResult::None => {
                let before = self
                    .time_zone
                    .offset_from_utc_datetime(&(local - Duration::days(1)));
                let utc = local - Duration::seconds(i64::from(before.fix().local_minus_utc()));
                self.time_zone.from_utc_datetime(&utc)
            }
        };
        u64::try_from(instant.timestamp_millis()).ok()
    }
}

use chrono::Offset as _;

fn take(map: &mut Map<String, Value>, field: &'static str) -> Result<Value, InvalidSchedule> {
    map.remove(field)
        .ok_or_else(|| InvalidSchedule::Shape(format!("a schedule needs {field}")))
}

fn parse_weekdays(value: Value) -> Result<Vec<Weekday>, InvalidSchedule> {
    let Value::Array(items) = value else {
        return Err(InvalidSchedule::Weekdays(
            "weekdays is a list such as [\"tue\", \"thu\"]".into(),
        ));
    };
    if items.is_empty() {
        return Err(InvalidSchedule::Weekdays(
            "weekdays needs at least one day".into(),
        ));
    }
    let mut days = Vec::with_capacity(items.len());
    for item in items {
        let day = item
            .as_str()
            .and_then(|name| DAY_NAMES.iter().find(|(n, _)| *n == name))
            .map(|(_, d)| *d)
            .ok_or_else(|| {
                InvalidSchedule::Weekdays(format!(
                    "unknown weekday {item}: use mon, tue, wed, thu, fri, sat or sun"
                ))
            })?;
        if days.contains(&day) {
            return Err(InvalidSchedule::Weekdays(format!(
                "weekday {} is listed twice",
                day_name(day)
            )));
        }
        days.push(day);
    }
    days.sort_by_key(|d| d.num_days_from_monday());
    Ok(days)
}

fn parse_start(value: Value) -> Result<NaiveTime, InvalidSchedule> {
    let bad = || InvalidSchedule::Start("start is a 24-hour time HH:MM, such as \"19:00\"".into());
    let text = value.as_str().ok_or_else(bad)?;
    let bytes = text.as_bytes();
    let shaped = bytes.len() == 5
        && bytes[2] == b':'
        && [0, 1, 3, 4].iter().all(|&i| bytes[i].is_ascii_digit());
    if !shaped {
        return Err(bad());
    }
    let hour: u32 = text[..2].parse().map_err(|_| bad())?;
    let minute: u32 = text[3..].parse().map_err(|_| bad())?;
    NaiveTime::from_hms_opt(hour, minute, 0).ok_or_else(|| {
        InvalidSchedule::Start(format!(
            "start {text:?} is not a time of day (00:00 to 23:59)"
        ))
    })
}

fn parse_time_zone(value: Value) -> Result<Tz, InvalidSchedule> {
    let name = value.as_str().ok_or_else(|| {
        InvalidSchedule::TimeZone("time_zone is an IANA name such as \"Europe/London\"".into())
    })?;
    Tz::from_str(name).map_err(|_| {
        InvalidSchedule::TimeZone(format!(
            "unknown time zone {name:?}: use an IANA name such as \"Europe/London\""
        ))
    })
}

fn parse_duration(value: Value) -> Result<u32, InvalidSchedule> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .filter(|n| (MIN_DURATION_MINS..=MAX_DURATION_MINS).contains(n))
        .ok_or_else(|| {
            InvalidSchedule::Duration(format!(
                "duration_mins is a whole number of minutes from {MIN_DURATION_MINS} to {MAX_DURATION_MINS}"
            ))
        })
}

impl Serialize for Schedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Schedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Schedule::parse(value).map_err(serde::de::Error::custom)
    }
}
