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

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDateTime, Timelike};
    use serde_json::json;

    /// Unix ms of a UTC time written "YYYY-MM-DD HH:MM".
    fn utc(text: &str) -> u64 {
        let t = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M").unwrap();
        u64::try_from(t.and_utc().timestamp_millis()).unwrap()
    }

    fn schedule(days: &[&str], start: &str, zone: &str, mins: u32) -> Schedule {
        Schedule::parse(json!({
            "weekdays": days, "start": start, "time_zone": zone, "duration_mins": mins
        }))
        .unwrap()
    }

    fn refused(value: Value) -> String {
        Schedule::parse(value).unwrap_err().to_string()
    }

    const MIN: u64 = MINUTE_MS;

    #[test]
    fn parses_the_json_shape_and_writes_it_back() {
        let value = json!({
            "weekdays": ["thu", "tue"], "start": "19:00", "time_zone": "Europe/London",
            "duration_mins": 90
        });
        let parsed = Schedule::parse(value).unwrap();
        assert_eq!(
            parsed.weekdays,
            [Weekday::Tue, Weekday::Thu],
            "Monday first"
        );
        assert_eq!(parsed.start, NaiveTime::from_hms_opt(19, 0, 0).unwrap());
        assert_eq!(parsed.time_zone, chrono_tz::Europe::London);
        assert_eq!(
            parsed.to_json(),
            json!({"weekdays": ["tue", "thu"], "start": "19:00", "time_zone": "Europe/London",
                   "duration_mins": 90})
        );
        let via_serde: Schedule = serde_json::from_value(parsed.to_json()).unwrap();
        assert_eq!(via_serde, parsed);
        assert_eq!(serde_json::to_value(&parsed).unwrap(), parsed.to_json());
    }

    #[test]
    fn each_problem_has_its_own_message() {
        let base = json!({"weekdays": ["tue"], "start": "19:00", "time_zone": "Europe/London",
                          "duration_mins": 90});
        let with = |field: &str, value: Value| {
            let mut v = base.clone();
            v[field] = value;
            refused(v)
        };
        assert!(refused(json!("tuesdays")).contains("is an object"));
        assert!(refused(json!({"weekdays": ["tue"]})).contains("needs start"));
        let mut extra = base.clone();
        extra["every"] = json!(2);
        assert!(refused(extra).contains("no field \"every\""));

        assert!(with("weekdays", json!([])).contains("at least one day"));
        assert!(with("weekdays", json!(["tues"])).contains("unknown weekday \"tues\""));
        assert!(with("weekdays", json!(["Tue"])).contains("unknown weekday"));
        assert!(with("weekdays", json!(["tue", "tue"])).contains("listed twice"));
        assert!(with("weekdays", json!("tue")).contains("is a list"));

        for bad in ["7pm", "9:00", "19:00:00", "19h00", "", "１９:００"] {
            assert!(with("start", json!(bad)).contains("HH:MM"), "{bad}");
        }
        assert!(with("start", json!("24:00")).contains("not a time of day"));
        assert!(with("start", json!("19:60")).contains("not a time of day"));
        assert!(with("start", json!(1900)).contains("HH:MM"));

        assert!(with("time_zone", json!("Mars/Olympus_Mons")).contains("unknown time zone"));
        assert!(with("time_zone", json!("europe/london")).contains("unknown time zone"));
        assert!(with("time_zone", json!(0)).contains("IANA"));

        for bad in [
            json!(4),
            json!(721),
            json!(0),
            json!(-90),
            json!(90.5),
            json!("90"),
            json!(u64::MAX),
        ] {
            assert!(
                with("duration_mins", bad.clone()).contains("5 to 720"),
                "{bad}"
            );
        }
        assert!(Schedule::parse(with_ok(&base, "duration_mins", json!(5))).is_ok());
        assert!(Schedule::parse(with_ok(&base, "duration_mins", json!(720))).is_ok());
        assert!(Schedule::parse(with_ok(&base, "start", json!("00:00"))).is_ok());
        assert!(Schedule::parse(with_ok(&base, "start", json!("23:59"))).is_ok());
    }

    fn with_ok(base: &Value, field: &str, value: Value) -> Value {
        let mut v = base.clone();
        v[field] = value;
        v
    }

    #[test]
    fn check_applies_the_parse_rules_to_a_schedule_built_in_code() {
        let good = schedule(&["tue"], "19:00", "Europe/London", 90);
        assert!(good.check().is_ok());
        let empty = Schedule {
            weekdays: vec![],
            ..good.clone()
        };
        assert!(matches!(empty.check(), Err(InvalidSchedule::Weekdays(_))));
        let twice = Schedule {
            weekdays: vec![Weekday::Mon, Weekday::Mon],
            ..good.clone()
        };
        assert!(matches!(twice.check(), Err(InvalidSchedule::Weekdays(_))));
        let short = Schedule {
            duration_mins: 1,
            ..good
        };
        assert!(matches!(short.check(), Err(InvalidSchedule::Duration(_))));
    }

    #[test]
    fn the_occurrence_in_progress_or_the_next() {
        // Winter in London: local time is UTC. 2026-12-01 is a Tuesday.
        let s = schedule(&["tue", "thu"], "19:00", "Europe/London", 90);
        let tuesday = (utc("2026-12-01 19:00"), utc("2026-12-01 20:30"));
        let thursday = (utc("2026-12-03 19:00"), utc("2026-12-03 20:30"));
        assert_eq!(
            s.current_or_next(utc("2026-12-01 12:00")),
            tuesday,
            "later today"
        );
        assert_eq!(
            s.current_or_next(utc("2026-12-01 19:00")),
            tuesday,
            "starting now"
        );
        assert_eq!(
            s.current_or_next(utc("2026-12-01 20:29")),
            tuesday,
            "in progress"
        );
        assert_eq!(
            s.current_or_next(utc("2026-12-01 20:30")),
            thursday,
            "ended: the next"
        );
        // Thursday evening to the next Tuesday, across the end of the week (Sunday to Monday).
        let next_week = (utc("2026-12-08 19:00"), utc("2026-12-08 20:30"));
        assert_eq!(s.current_or_next(utc("2026-12-03 21:00")), next_week);
        assert_eq!(s.current_or_next(utc("2026-12-06 23:59")), next_week);
        assert_eq!(s.current_or_next(utc("2026-12-07 00:00")), next_week);
    }

    #[test]
    fn one_day_a_week_waits_a_whole_week_after_it() {
        let s = schedule(&["tue"], "19:00", "Europe/London", 90);
        assert_eq!(
            s.current_or_next(utc("2026-12-01 20:31")).0,
            utc("2026-12-08 19:00")
        );
    }

    #[test]
    fn a_meeting_running_past_midnight_is_still_in_progress() {
        // Sunday 23:00 for two hours: at 00:30 on Monday the Sunday meeting is still on.
        let s = schedule(&["sun"], "23:00", "UTC", 120);
        assert_eq!(
            s.current_or_next(utc("2026-12-07 00:30")),
            (utc("2026-12-06 23:00"), utc("2026-12-07 01:00"))
        );
        assert_eq!(
            s.current_or_next(utc("2026-12-07 01:00")).0,
            utc("2026-12-13 23:00")
        );
    }

    #[test]
    fn the_start_follows_summer_time() {
        // 19:00 in London is 19:00 UTC in winter and 18:00 UTC in summer (from 2027-03-28).
        let s = schedule(&["tue", "thu"], "19:00", "Europe/London", 90);
        assert_eq!(
            s.current_or_next(utc("2027-03-25 12:00")).0,
            utc("2027-03-25 19:00")
        );
        assert_eq!(
            s.current_or_next(utc("2027-03-25 21:00")).0,
            utc("2027-03-30 18:00")
        );
        let ny = schedule(&["mon"], "09:00", "America/New_York", 60);
        assert_eq!(
            ny.current_or_next(utc("2027-03-10 00:00")).0,
            utc("2027-03-15 13:00")
        );
        assert_eq!(
            ny.current_or_next(utc("2027-03-05 00:00")).0,
            utc("2027-03-08 14:00")
        );
    }

    #[test]
    fn a_start_in_the_spring_gap_moves_forward_by_the_gap() {
        // London, 2027-03-28: 01:00 GMT jumps to 02:00 BST; 01:30 does not exist and becomes
        // 02:30 BST (01:30 UTC).
        let london = schedule(&["sun"], "01:30", "Europe/London", 60);
        let (starts, ends) = london.current_or_next(utc("2027-03-27 12:00"));
        assert_eq!(
            (starts, ends),
            (utc("2027-03-28 01:30"), utc("2027-03-28 02:30"))
        );
        let local = DateTime::from_timestamp_millis(starts as i64)
            .unwrap()
            .with_timezone(&chrono_tz::Europe::London);
        assert_eq!((local.hour(), local.minute()), (2, 30));
        // New York, 2027-03-14: 02:00 EST jumps to 03:00 EDT; 02:30 becomes 03:30 EDT (07:30 UTC).
        let ny = schedule(&["sun"], "02:30", "America/New_York", 60);
        assert_eq!(
            ny.current_or_next(utc("2027-03-13 12:00")).0,
            utc("2027-03-14 07:30")
        );
        // The week after, 02:30 exists again.
        assert_eq!(
            ny.current_or_next(utc("2027-03-14 09:00")).0,
            utc("2027-03-21 06:30")
        );
    }

    #[test]
    fn a_start_that_happens_twice_in_autumn_takes_the_earlier() {
        // London, 2027-10-31: 02:00 BST goes back to 01:00 GMT; 01:30 happens at 00:30 UTC (BST)
        // and again at 01:30 UTC (GMT). The meeting starts at the first.
        let s = schedule(&["sun"], "01:30", "Europe/London", 60);
        assert_eq!(
            s.current_or_next(utc("2027-10-30 12:00")),
            (utc("2027-10-31 00:30"), utc("2027-10-31 01:30"))
        );
        // At 01:30 UTC (the second 01:30 local) that meeting has ended: the next is a week on.
        assert_eq!(
            s.current_or_next(utc("2027-10-31 01:30")).0,
            utc("2027-11-07 01:30")
        );
    }

    #[test]
    fn the_waiting_room_opens_early_by_the_given_minutes() {
        let s = schedule(&["tue"], "19:00", "Europe/London", 90);
        let now = utc("2026-12-01 12:00");
        assert_eq!(s.opens_at(now, 15), utc("2026-12-01 18:45"));
        assert_eq!(s.opens_at(now, 0), utc("2026-12-01 19:00"));
        // Inside the early window, and during the meeting, the opening is already past.
        assert!(s.opens_at(utc("2026-12-01 18:50"), 15) <= utc("2026-12-01 18:50"));
        assert!(s.opens_at(utc("2026-12-01 20:00"), 15) <= utc("2026-12-01 20:00"));
        // After the meeting, the next one's opening.
        assert_eq!(
            s.opens_at(utc("2026-12-01 20:30"), 120),
            utc("2026-12-08 17:00")
        );
    }

    #[test]
    fn times_outside_the_calendar_do_not_panic() {
        let s = schedule(&["tue"], "19:00", "Pacific/Kiritimati", 720);
        for now in [0, 1, u64::MAX, u64::MAX / 2, i64::MAX as u64] {
            let (starts, ends) = s.current_or_next(now);
            assert!(starts <= ends);
            let _ = s.opens_at(now, 120);
        }
        assert_eq!(s.opens_at(0, 120), s.current_or_next(0).0 - 120 * MIN);
    }

    /// Across two years in zones with and without summer time, stepping every 37 minutes: the
    /// answer has not ended, lasts the duration, starts on a listed weekday at the start time (or
    /// just after, on a gap day), and never goes backwards as time moves on.
    #[test]
    fn every_answer_is_consistent_across_two_years() {
        let zones = [
            "Europe/London",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
        ];
        for zone in zones {
            let s = schedule(&["mon", "wed", "sat"], "01:30", zone, 45);
            let mut previous = 0;
            let mut now = utc("2026-01-01 00:00");
            while now < utc("2028-01-01 00:00") {
                let (starts, ends) = s.current_or_next(now);
                assert_eq!(ends - starts, 45 * MIN, "{zone} at {now}");
                assert!(ends > now, "{zone} at {now}");
                assert!(starts >= previous, "{zone} at {now}: went backwards");
                assert!(
                    starts - now.min(starts) <= 7 * 24 * 60 * MIN,
                    "{zone} at {now}"
                );
                let local = DateTime::from_timestamp_millis(starts as i64)
                    .unwrap()
                    .with_timezone(&s.time_zone);
                assert!(
                    s.weekdays.contains(&local.weekday()),
                    "{zone} at {now}: {local}"
                );
                let minutes = local.hour() * 60 + local.minute();
                // 01:30, or up to an hour later when the clocks jumped over it that day.
                assert!((90..=150).contains(&minutes), "{zone} at {now}: {local}");
                previous = starts;
                now += 37 * MIN;
            }
        }
    }
}
