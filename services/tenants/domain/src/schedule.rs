//! A tenant's business hours and holidays, and the business-time arithmetic
//! that response-time (SLA) clocks are built on.
//!
//! One [`Schedule`] aggregate per tenant, in the stream `schedule` owned by
//! the tenant's id. Hours are wall-clock intervals per weekday in the
//! tenant's IANA time zone; holidays are local dates. The arithmetic
//! ([`ScheduleState::business_time_between`],
//! [`ScheduleState::add_business_time`]) is pure and converts through the
//! zone day by day, so it stays right across daylight-saving changes. This
//! module must not do I/O or read a clock: callers pass the instants.

use std::collections::BTreeMap;

use chrono::{
    DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, NaiveTime, TimeZone as _, Timelike,
    Utc, Weekday,
};
use chrono_tz::Tz;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

use crate::values::{InvalidValue, Name, TimeZone};

/// The longest holiday name, in characters.
pub const HOLIDAY_NAME_MAX: usize = 120;
/// The most opening intervals one weekday may have.
pub const MAX_INTERVALS_PER_DAY: usize = 12;
/// The most holidays a schedule may hold (about 60 years of them).
pub const MAX_HOLIDAYS: usize = 1000;
/// How far ahead [`ScheduleState::add_business_time`] looks, in days (three
/// years, leap days included).
pub const SEARCH_DAYS: u32 = 3 * 366;

/// The weekdays in the order of a week's slots: Monday first.
pub const WEEKDAYS: [Weekday; 7] = [
    Weekday::Mon,
    Weekday::Tue,
    Weekday::Wed,
    Weekday::Thu,
    Weekday::Fri,
    Weekday::Sat,
    Weekday::Sun,
];

/// The stream of a tenant's schedule: `schedule`.
pub fn stream_id() -> Result<StreamId, StreamIdError> {
    StreamId::parse("schedule")
}

fn hm(hour: u32, minute: u32) -> NaiveTime {
    NaiveTime::from_hms_opt(hour, minute, 0).unwrap_or(NaiveTime::MIN)
}

/// The time zone suggested with [`default_week`].
pub const DEFAULT_TIME_ZONE: &str = "Europe/Madrid";

/// A week a console can offer as a starting point: Monday to Friday,
/// 09:00–14:00 (meant with [`DEFAULT_TIME_ZONE`]). The aggregate never
/// assumes it: a schedule without `SetHours` has no hours at all.
pub fn default_week() -> [Vec<(NaiveTime, NaiveTime)>; 7] {
    let office = vec![(hm(9, 0), hm(14, 0))];
    [
        office.clone(),
        office.clone(),
        office.clone(),
        office.clone(),
        office,
        vec![],
        vec![],
    ]
}

/// One opening interval of a day, in wall-clock time. An `end` of 00:00
/// means midnight at the end of the day (so 00:00–00:00 is the whole day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInterval {
    /// When it opens.
    pub start: NaiveTime,
    /// When it closes (exclusive); 00:00 is the end of the day.
    pub end: NaiveTime,
}

/// `start` as a point of the day, comparable with [`end_key`].
fn start_key(t: NaiveTime) -> (bool, NaiveTime) {
    (false, t)
}

/// `end` as a point of the day: 00:00 is after every other time.
fn end_key(t: NaiveTime) -> (bool, NaiveTime) {
    (t == NaiveTime::MIN, t)
}

/// When a tenant is open: per weekday (Monday first) a sorted list of
/// non-overlapping intervals, in the tenant's time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BusinessHours {
    /// The zone the intervals and holidays are read in.
    pub time_zone: TimeZone,
    /// Monday's intervals first, Sunday's last.
    pub week: [Vec<OpenInterval>; 7],
}

impl BusinessHours {
    /// The intervals of `weekday`.
    pub fn on(&self, weekday: Weekday) -> &[OpenInterval] {
        self.week
            .get(weekday.num_days_from_monday() as usize)
            .map_or(&[], Vec::as_slice)
    }
}

/// A day the tenant is closed, in its own calendar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holiday {
    /// The local date.
    pub date: NaiveDate,
    /// What it is, e.g. "Día de la Comunidad".
    pub name: Name,
}

/// The schedule aggregate of one tenant.
pub struct Schedule;

/// What can be asked of a schedule.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleCommand {
    /// Replaces the business hours. Each interval needs a start before its
    /// end (an end of 00:00 means midnight), intervals of a day must not
    /// overlap (touching is fine), and the week needs some open time.
    /// Setting exactly the hours already set is a no-op.
    SetHours {
        /// The tenant's zone.
        time_zone: TimeZone,
        /// Monday's `(start, end)` intervals first, Sunday's last, in any order.
        week: [Vec<(NaiveTime, NaiveTime)>; 7],
    },
    /// Declares a holiday. Refused when the date is already one.
    AddHoliday(Holiday),
    /// Removes a holiday. Refused when the date is not one.
    RemoveHoliday {
        /// The holiday's date.
        date: NaiveDate,
    },
}

/// The business hours were set (the payload is the whole week, sorted).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoursSet {
    /// The new hours.
    pub hours: BusinessHours,
}

/// A holiday was declared.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HolidayAdded {
    /// The local date.
    pub date: NaiveDate,
    /// Its name.
    pub name: Name,
}

/// A holiday was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HolidayRemoved {
    /// The local date.
    pub date: NaiveDate,
    /// The name it had.
    pub name: Name,
}

/// What the schedule records.
#[derive(Debug, Clone, PartialEq)]
pub enum ScheduleEvent {
    /// `schedule.hours_set`
    HoursSet(HoursSet),
    /// `schedule.holiday_added`
    HolidayAdded(HolidayAdded),
    /// `schedule.holiday_removed`
    HolidayRemoved(HolidayRemoved),
}

const HOURS_SET: &str = "schedule.hours_set";
const HOLIDAY_ADDED: &str = "schedule.holiday_added";
const HOLIDAY_REMOVED: &str = "schedule.holiday_removed";

/// Reads a stored payload of schema version 1.
fn payload<T: DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    ventanilla_eventlog::decode_payload(event_type, schema_version, 1, data)
}

impl DomainEvent for ScheduleEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::HoursSet(_) => HOURS_SET,
            Self::HolidayAdded(_) => HOLIDAY_ADDED,
            Self::HolidayRemoved(_) => HOLIDAY_REMOVED,
        }
    }

    fn to_data(&self) -> Value {
        match self {
            Self::HoursSet(p) => serde_json::to_value(p),
            Self::HolidayAdded(p) => serde_json::to_value(p),
            Self::HolidayRemoved(p) => serde_json::to_value(p),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        let (t, v) = (event_type, schema_version);
        match t {
            HOURS_SET => payload(t, v, data).map(Self::HoursSet),
            HOLIDAY_ADDED => payload(t, v, data).map(Self::HolidayAdded),
            HOLIDAY_REMOVED => payload(t, v, data).map(Self::HolidayRemoved),
            _ => Err(UpcastError {
                event_type: t.to_owned(),
                schema_version: v,
                reason: "not a schedule event".to_owned(),
            }),
        }
    }
}

/// Why the schedule refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// A holiday name breaks its length limit.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// An interval is empty, reversed, or overlaps an earlier one that day.
    #[error(
        "the interval {start}–{end} on {weekday} is empty or overlaps another; give each interval a start before its end, without overlaps"
    )]
    InvalidInterval {
        /// The day.
        weekday: Weekday,
        /// The interval's start.
        start: NaiveTime,
        /// The interval's end.
        end: NaiveTime,
    },
    /// A day has more intervals than allowed.
    #[error("the day {weekday} has more than {max} intervals; merge some")]
    TooManyIntervals {
        /// The day.
        weekday: Weekday,
        /// The limit.
        max: usize,
    },
    /// The week has no open time at all.
    #[error("the week has no open hours; open at least one interval")]
    NoOpenHours,
    /// The date is already a holiday.
    #[error("the date {date} is already a holiday; remove it first to rename it")]
    DuplicateHoliday {
        /// The date.
        date: NaiveDate,
    },
    /// The date is not a holiday.
    #[error("the date {date} is not a holiday")]
    UnknownHoliday {
        /// The date.
        date: NaiveDate,
    },
    /// The schedule holds as many holidays as allowed.
    #[error("a schedule can hold at most {max} holidays; remove past ones first")]
    TooManyHolidays {
        /// The limit.
        max: usize,
    },
}

/// What the schedule remembers.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ScheduleState {
    /// The business hours; `None` until set (nothing is assumed).
    pub hours: Option<BusinessHours>,
    /// The holidays, by local date.
    pub holidays: BTreeMap<NaiveDate, Name>,
}

/// The earliest instant at which the wall clock of `tz` reads `local`: the
/// first of two when the time repeats (autumn), the moment the clock jumps
/// when the time is skipped (spring).
fn first_instant(tz: Tz, local: NaiveDateTime) -> Option<DateTime<Utc>> {
    if let Some(t) = tz.from_local_datetime(&local).earliest() {
        return Some(t.with_timezone(&Utc));
    }
    // In a gap: walk forward a minute at a time (offsets change on minute
    // boundaries) to the first wall time that exists. Gaps are at most a day.
    let mut t = local.with_second(0)?.with_nanosecond(0)?;
    for _ in 0..(2 * 24 * 60) {
        t = t.checked_add_signed(Duration::minutes(1))?;
        if let Some(found) = tz.from_local_datetime(&t).earliest() {
            return Some(found.with_timezone(&Utc));
        }
    }
    None
}

impl ScheduleState {
    /// Whether `date` (local) is a holiday.
    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        self.holidays.contains_key(&date)
    }

    /// The open spans of one local date, as instants, in order.
    fn spans(
        &self,
        hours: &BusinessHours,
        tz: Tz,
        date: NaiveDate,
    ) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        if self.is_holiday(date) {
            return vec![];
        }
        hours
            .on(date.weekday())
            .iter()
            .filter_map(|interval| {
                let start = first_instant(tz, date.and_time(interval.start))?;
                let end_local = if interval.end == NaiveTime::MIN {
                    date.succ_opt()?.and_time(NaiveTime::MIN)
                } else {
                    date.and_time(interval.end)
                };
                let end = first_instant(tz, end_local)?;
                (start < end).then_some((start, end))
            })
            .collect()
    }

    /// The open time between two instants: the part of `[from, to)` inside
    /// business hours, read in the tenant's zone, holidays skipped. Zero when
    /// `to` is not after `from` or no hours are set. The cost grows with the
    /// number of days between the instants.
    pub fn business_time_between(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
        let Some(hours) = &self.hours else {
            return Duration::zero();
        };
        if to <= from {
            return Duration::zero();
        }
        let tz = hours.time_zone.tz();
        let first = from.with_timezone(&tz).date_naive();
        let last = to.with_timezone(&tz).date_naive();
        let mut date = first.pred_opt().unwrap_or(first);
        let mut total = Duration::zero();
        while date <= last {
            for (start, end) in self.spans(hours, tz, date) {
                let (start, end) = (start.max(from), end.min(to));
                if start < end {
                    total += end - start;
                }
            }
            match date.succ_opt() {
                Some(next) => date = next,
                None => break,
            }
        }
        total
    }

    /// The instant at which `amount` of open time has elapsed after `from`
    /// (`from` itself for a zero or negative amount). `None` when no hours
    /// are set, or when the open time does not add up within
    /// [`SEARCH_DAYS`] days (e.g. a week with no open hours). The inverse of
    /// [`Self::business_time_between`]:
    /// `business_time_between(a, add_business_time(a, d)) == d`.
    pub fn add_business_time(
        &self,
        from: DateTime<Utc>,
        amount: Duration,
    ) -> Option<DateTime<Utc>> {
        let hours = self.hours.as_ref()?;
        if amount <= Duration::zero() {
            return Some(from);
        }
        let tz = hours.time_zone.tz();
        let first = from.with_timezone(&tz).date_naive();
        let mut date = first.pred_opt().unwrap_or(first);
        let mut remaining = amount;
        for _ in 0..=SEARCH_DAYS {
            for (start, end) in self.spans(hours, tz, date) {
                let start = start.max(from);
                if start >= end {
                    continue;
                }
                let open = end - start;
                if remaining <= open {
                    return start.checked_add_signed(remaining);
                }
                remaining -= open;
            }
            date = date.succ_opt()?;
        }
        None
    }
}

/// Validates and sorts one day's intervals.
fn day_intervals(
    weekday: Weekday,
    day: &[(NaiveTime, NaiveTime)],
) -> Result<Vec<OpenInterval>, ScheduleError> {
    if day.len() > MAX_INTERVALS_PER_DAY {
        return Err(ScheduleError::TooManyIntervals {
            weekday,
            max: MAX_INTERVALS_PER_DAY,
        });
    }
    let mut intervals: Vec<OpenInterval> = day
        .iter()
        .map(|&(start, end)| OpenInterval { start, end })
        .collect();
    let bad = |i: &OpenInterval| ScheduleError::InvalidInterval {
        weekday,
        start: i.start,
        end: i.end,
    };
    if let Some(empty) = intervals
        .iter()
        .find(|i| start_key(i.start) >= end_key(i.end))
    {
        return Err(bad(empty));
    }
    intervals.sort_by_key(|i| (start_key(i.start), end_key(i.end)));
    for pair in intervals.windows(2) {
        if let [before, after] = pair
            && end_key(before.end) > start_key(after.start)
        {
            return Err(bad(after));
        }
    }
    Ok(intervals)
}

impl Decider for Schedule {
    type State = ScheduleState;
    type Command = ScheduleCommand;
    type Event = ScheduleEvent;
    type Error = ScheduleError;

    fn decide(
        state: &ScheduleState,
        command: &ScheduleCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<ScheduleEvent>, ScheduleError> {
        match command {
            ScheduleCommand::SetHours { time_zone, week } => {
                let mut sorted: [Vec<OpenInterval>; 7] = Default::default();
                for ((slot, day), weekday) in sorted.iter_mut().zip(week).zip(WEEKDAYS) {
                    *slot = day_intervals(weekday, day)?;
                }
                if sorted.iter().all(Vec::is_empty) {
                    return Err(ScheduleError::NoOpenHours);
                }
                let hours = BusinessHours {
                    time_zone: time_zone.clone(),
                    week: sorted,
                };
                if state.hours.as_ref() == Some(&hours) {
                    return Ok(vec![]);
                }
                Ok(vec![ScheduleEvent::HoursSet(HoursSet { hours })])
            }
            ScheduleCommand::AddHoliday(Holiday { date, name }) => {
                Name::parse("name", name.as_str(), HOLIDAY_NAME_MAX)?;
                if state.is_holiday(*date) {
                    return Err(ScheduleError::DuplicateHoliday { date: *date });
                }
                if state.holidays.len() >= MAX_HOLIDAYS {
                    return Err(ScheduleError::TooManyHolidays { max: MAX_HOLIDAYS });
                }
                Ok(vec![ScheduleEvent::HolidayAdded(HolidayAdded {
                    date: *date,
                    name: name.clone(),
                })])
            }
            ScheduleCommand::RemoveHoliday { date } => {
                let name = state
                    .holidays
                    .get(date)
                    .ok_or(ScheduleError::UnknownHoliday { date: *date })?;
                Ok(vec![ScheduleEvent::HolidayRemoved(HolidayRemoved {
                    date: *date,
                    name: name.clone(),
                })])
            }
        }
    }

    fn evolve(mut state: ScheduleState, event: &ScheduleEvent) -> ScheduleState {
        match event {
            ScheduleEvent::HoursSet(e) => state.hours = Some(e.hours.clone()),
            ScheduleEvent::HolidayAdded(e) => {
                state.holidays.insert(e.date, e.name.clone());
            }
            ScheduleEvent::HolidayRemoved(e) => {
                state.holidays.remove(&e.date);
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ventanilla_eventlog::testing::given;

    fn t(h: u32, m: u32) -> NaiveTime {
        NaiveTime::from_hms_opt(h, m, 0).unwrap()
    }

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    fn madrid() -> TimeZone {
        TimeZone::parse("time_zone", "Europe/Madrid").unwrap()
    }

    /// A Madrid wall-clock time as an instant.
    fn at(y: i32, mo: u32, day: u32, h: u32, mi: u32) -> DateTime<Utc> {
        chrono_tz::Europe::Madrid
            .with_ymd_and_hms(y, mo, day, h, mi, 0)
            .single()
            .unwrap()
            .with_timezone(&Utc)
    }

    fn utc(y: i32, mo: u32, day: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, day, h, mi, 0).single().unwrap()
    }

    fn split_week() -> [Vec<(NaiveTime, NaiveTime)>; 7] {
        let day = vec![(t(16, 0), t(19, 0)), (t(9, 0), t(14, 0))];
        [
            day.clone(),
            day.clone(),
            day.clone(),
            day.clone(),
            day,
            vec![],
            vec![],
        ]
    }

    fn sorted_split_week() -> [Vec<OpenInterval>; 7] {
        let day = vec![
            OpenInterval {
                start: t(9, 0),
                end: t(14, 0),
            },
            OpenInterval {
                start: t(16, 0),
                end: t(19, 0),
            },
        ];
        [
            day.clone(),
            day.clone(),
            day.clone(),
            day.clone(),
            day,
            vec![],
            vec![],
        ]
    }

    fn hours_set(week: [Vec<OpenInterval>; 7]) -> ScheduleEvent {
        ScheduleEvent::HoursSet(HoursSet {
            hours: BusinessHours {
                time_zone: madrid(),
                week,
            },
        })
    }

    fn holiday_added(date: NaiveDate, name: &str) -> ScheduleEvent {
        ScheduleEvent::HolidayAdded(HolidayAdded {
            date,
            name: Name::parse("name", name, 120).unwrap(),
        })
    }

    fn name(s: &str) -> Name {
        Name::parse("name", s, 1000).unwrap()
    }

    fn set_hours(week: [Vec<(NaiveTime, NaiveTime)>; 7]) -> ScheduleCommand {
        ScheduleCommand::SetHours {
            time_zone: madrid(),
            week,
        }
    }

    fn split_schedule(holidays: &[NaiveDate]) -> ScheduleState {
        let mut history = vec![hours_set(sorted_split_week())];
        history.extend(holidays.iter().map(|&h| holiday_added(h, "Fiesta")));
        Schedule::fold(&history)
    }

    #[test]
    fn the_stream_is_schedule() {
        assert_eq!(stream_id().unwrap().as_str(), "schedule");
    }

    // --- SetHours

    #[test]
    fn sets_hours_sorted_by_start() {
        given::<Schedule>(vec![])
            .when(&set_hours(split_week()))
            .then(vec![hours_set(sorted_split_week())]);
    }

    #[test]
    fn setting_the_same_hours_again_is_a_no_op_and_other_hours_replace_them() {
        given::<Schedule>(vec![hours_set(sorted_split_week())])
            .when(&set_hours(split_week()))
            .then(vec![]);
        let week = default_week();
        let expected = week.clone().map(|day| {
            day.into_iter()
                .map(|(start, end)| OpenInterval { start, end })
                .collect()
        });
        given::<Schedule>(vec![hours_set(sorted_split_week())])
            .when(&set_hours(week))
            .then(vec![hours_set(expected)]);
    }

    #[test]
    fn accepts_touching_intervals_and_midnight_as_an_end() {
        let mut week: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        week[5] = vec![(t(20, 0), t(0, 0)), (t(9, 0), t(20, 0))];
        week[6] = vec![(t(0, 0), t(0, 0))];
        let mut expected: [Vec<OpenInterval>; 7] = Default::default();
        expected[5] = vec![
            OpenInterval {
                start: t(9, 0),
                end: t(20, 0),
            },
            OpenInterval {
                start: t(20, 0),
                end: t(0, 0),
            },
        ];
        expected[6] = vec![OpenInterval {
            start: t(0, 0),
            end: t(0, 0),
        }];
        given::<Schedule>(vec![])
            .when(&set_hours(week))
            .then(vec![hours_set(expected)]);
    }

    #[test]
    fn refuses_empty_and_reversed_intervals() {
        let mut week = split_week();
        week[2].push((t(20, 0), t(20, 0)));
        given::<Schedule>(vec![])
            .when(&set_hours(week))
            .then_error(|e| {
                *e == ScheduleError::InvalidInterval {
                    weekday: Weekday::Wed,
                    start: t(20, 0),
                    end: t(20, 0),
                }
            });
        let mut week = split_week();
        week[6] = vec![(t(14, 0), t(9, 0))];
        given::<Schedule>(vec![])
            .when(&set_hours(week))
            .then_error(|e| {
                *e == ScheduleError::InvalidInterval {
                    weekday: Weekday::Sun,
                    start: t(14, 0),
                    end: t(9, 0),
                }
            });
    }

    #[test]
    fn refuses_overlapping_intervals() {
        let mut week = split_week();
        week[0].push((t(13, 0), t(15, 0)));
        given::<Schedule>(vec![])
            .when(&set_hours(week))
            .then_error(|e| {
                *e == ScheduleError::InvalidInterval {
                    weekday: Weekday::Mon,
                    start: t(13, 0),
                    end: t(15, 0),
                }
            });
        let mut week = split_week();
        week[4] = vec![(t(20, 0), t(0, 0)), (t(22, 0), t(23, 0))];
        given::<Schedule>(vec![])
            .when(&set_hours(week))
            .then_error(|e| {
                matches!(
                    e,
                    ScheduleError::InvalidInterval {
                        weekday: Weekday::Fri,
                        ..
                    }
                )
            });
    }

    #[test]
    fn refuses_a_week_with_no_open_hours() {
        given::<Schedule>(vec![])
            .when(&set_hours(Default::default()))
            .then_error(|e| *e == ScheduleError::NoOpenHours);
    }

    #[test]
    fn refuses_too_many_intervals_in_a_day() {
        let mut week: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
        week[1] = (0..13).map(|h| (t(h, 0), t(h, 30))).collect();
        given::<Schedule>(vec![])
            .when(&set_hours(week))
            .then_error(|e| {
                *e == ScheduleError::TooManyIntervals {
                    weekday: Weekday::Tue,
                    max: 12,
                }
            });
    }

    // --- AddHoliday

    #[test]
    fn adds_a_holiday() {
        given::<Schedule>(vec![])
            .when(&ScheduleCommand::AddHoliday(Holiday {
                date: d(2026, 5, 2),
                name: name("Fiesta de la Comunidad de Madrid"),
            }))
            .then(vec![holiday_added(
                d(2026, 5, 2),
                "Fiesta de la Comunidad de Madrid",
            )]);
    }

    #[test]
    fn refuses_a_date_that_is_already_a_holiday() {
        given::<Schedule>(vec![holiday_added(d(2026, 5, 2), "Fiesta")])
            .when(&ScheduleCommand::AddHoliday(Holiday {
                date: d(2026, 5, 2),
                name: name("Otra fiesta"),
            }))
            .then_error(|e| {
                *e == ScheduleError::DuplicateHoliday {
                    date: d(2026, 5, 2),
                }
            });
    }

    #[test]
    fn refuses_an_over_long_holiday_name() {
        given::<Schedule>(vec![])
            .when(&ScheduleCommand::AddHoliday(Holiday {
                date: d(2026, 5, 2),
                name: name(&"x".repeat(121)),
            }))
            .then_error(|e| matches!(e, ScheduleError::Invalid(v) if v.field == "name"));
    }

    #[test]
    fn refuses_more_holidays_than_allowed() {
        let history = (0..1000)
            .map(|i| holiday_added(d(2000, 1, 1) + Duration::days(i), "Fiesta"))
            .collect();
        given::<Schedule>(history)
            .when(&ScheduleCommand::AddHoliday(Holiday {
                date: d(2030, 1, 1),
                name: name("Año nuevo"),
            }))
            .then_error(|e| *e == ScheduleError::TooManyHolidays { max: 1000 });
    }

    // --- RemoveHoliday

    #[test]
    fn removes_a_holiday() {
        given::<Schedule>(vec![holiday_added(d(2026, 5, 2), "Fiesta")])
            .when(&ScheduleCommand::RemoveHoliday {
                date: d(2026, 5, 2),
            })
            .then(vec![ScheduleEvent::HolidayRemoved(HolidayRemoved {
                date: d(2026, 5, 2),
                name: name("Fiesta"),
            })]);
    }

    #[test]
    fn refuses_removing_a_date_that_is_not_a_holiday() {
        given::<Schedule>(vec![])
            .when(&ScheduleCommand::RemoveHoliday {
                date: d(2026, 5, 2),
            })
            .then_error(|e| {
                *e == ScheduleError::UnknownHoliday {
                    date: d(2026, 5, 2),
                }
            });
    }

    #[test]
    fn the_state_follows_the_events() {
        let state = Schedule::fold(&[
            holiday_added(d(2026, 5, 2), "Fiesta"),
            holiday_added(d(2026, 5, 15), "San Isidro"),
            ScheduleEvent::HolidayRemoved(HolidayRemoved {
                date: d(2026, 5, 2),
                name: name("Fiesta"),
            }),
        ]);
        assert!(state.hours.is_none(), "no hours are assumed");
        assert!(!state.is_holiday(d(2026, 5, 2)));
        assert!(state.is_holiday(d(2026, 5, 15)));
    }

    // --- Business time

    #[test]
    fn friday_afternoon_plus_eight_business_hours_lands_on_monday() {
        let state = split_schedule(&[]);
        // 2026-01-16 is a Friday; Madrid is on CET (UTC+1).
        let friday = at(2026, 1, 16, 14, 0);
        assert_eq!(friday, utc(2026, 1, 16, 13, 0));
        let due = state.add_business_time(friday, Duration::hours(8)).unwrap();
        // Friday 16–19 (3 h) + Monday 09–14 (5 h): Monday 14:00 Madrid.
        assert_eq!(due, at(2026, 1, 19, 14, 0));
        assert_eq!(state.business_time_between(friday, due), Duration::hours(8));
        // One more minute crosses the lunch break.
        assert_eq!(
            state.add_business_time(friday, Duration::hours(8) + Duration::minutes(1)),
            Some(at(2026, 1, 19, 16, 1))
        );
    }

    #[test]
    fn a_holiday_is_skipped() {
        let state = split_schedule(&[d(2026, 1, 19)]);
        let friday = at(2026, 1, 16, 14, 0);
        let due = state.add_business_time(friday, Duration::hours(8)).unwrap();
        assert_eq!(
            due,
            at(2026, 1, 20, 14, 0),
            "Tuesday, the Monday being a holiday"
        );
        assert_eq!(state.business_time_between(friday, due), Duration::hours(8));
        assert_eq!(
            state.business_time_between(at(2026, 1, 19, 0, 0), at(2026, 1, 20, 0, 0)),
            Duration::zero()
        );
    }

    #[test]
    fn the_spring_dst_change_in_madrid_is_handled() {
        let state = split_schedule(&[]);
        // Friday 2026-03-27 18:00 CET (17:00 UTC); the clocks go forward on
        // Sunday 29 at 02:00; Monday 30 is on CEST (UTC+2).
        let friday = at(2026, 3, 27, 18, 0);
        assert_eq!(friday, utc(2026, 3, 27, 17, 0));
        let due = state.add_business_time(friday, Duration::hours(2)).unwrap();
        assert_eq!(due, at(2026, 3, 30, 10, 0));
        assert_eq!(due, utc(2026, 3, 30, 8, 0));
        // A whole business week across the change is still 40 hours.
        assert_eq!(
            state.business_time_between(at(2026, 3, 23, 0, 0), at(2026, 3, 30, 0, 0)),
            Duration::hours(40)
        );
        assert_eq!(
            state.business_time_between(at(2026, 3, 27, 9, 0), at(2026, 3, 30, 19, 0)),
            Duration::hours(16)
        );
    }

    #[test]
    fn a_round_the_clock_schedule_counts_real_hours_on_dst_days() {
        let week: [Vec<OpenInterval>; 7] = std::array::from_fn(|_| {
            vec![OpenInterval {
                start: t(0, 0),
                end: t(0, 0),
            }]
        });
        let state = Schedule::fold(&[hours_set(week)]);
        // Sunday 2026-03-29 has 23 hours in Madrid, Sunday 2026-10-25 has 25.
        assert_eq!(
            state.business_time_between(at(2026, 3, 29, 0, 0), at(2026, 3, 30, 0, 0)),
            Duration::hours(23)
        );
        assert_eq!(
            state.business_time_between(at(2026, 10, 25, 0, 0), at(2026, 10, 26, 0, 0)),
            Duration::hours(25)
        );
        let start = at(2026, 3, 28, 12, 0);
        assert_eq!(
            state.add_business_time(start, Duration::hours(24)),
            Some(start + Duration::hours(24))
        );
    }

    #[test]
    fn an_interval_inside_the_spring_gap_starts_when_the_clock_jumps() {
        let mut week: [Vec<OpenInterval>; 7] = Default::default();
        week[6] = vec![OpenInterval {
            start: t(2, 30),
            end: t(4, 0),
        }];
        let state = Schedule::fold(&[hours_set(week)]);
        // On 2026-03-29 02:30 does not exist: open from 03:00 CEST (01:00 UTC)
        // to 04:00 CEST.
        assert_eq!(
            state.business_time_between(utc(2026, 3, 28, 0, 0), utc(2026, 3, 30, 0, 0)),
            Duration::hours(1)
        );
        assert_eq!(
            state.add_business_time(utc(2026, 3, 28, 0, 0), Duration::minutes(1)),
            Some(utc(2026, 3, 29, 1, 1))
        );
    }

    #[test]
    fn adding_then_measuring_gives_back_the_amount() {
        let state = split_schedule(&[d(2026, 1, 6), d(2026, 4, 2), d(2026, 4, 3)]);
        let starts = [
            at(2026, 1, 2, 8, 0),
            at(2026, 1, 5, 13, 59),
            at(2026, 1, 16, 14, 0),
            at(2026, 3, 27, 18, 30),
            at(2026, 3, 28, 3, 0),
            at(2026, 4, 1, 17, 45),
            at(2026, 10, 23, 12, 0),
        ];
        let amounts = [1, 17, 60, 299, 301, 480, 2400, 60 * 24 * 30];
        for a in starts {
            for minutes in amounts {
                let amount = Duration::minutes(minutes);
                let due = state.add_business_time(a, amount).unwrap();
                assert!(due > a);
                assert_eq!(
                    state.business_time_between(a, due),
                    amount,
                    "{a} + {minutes} min"
                );
            }
        }
    }

    #[test]
    fn within_and_between_spans() {
        let state = split_schedule(&[]);
        let monday = at(2026, 1, 19, 10, 0);
        assert_eq!(
            state.add_business_time(monday, Duration::hours(1)),
            Some(at(2026, 1, 19, 11, 0))
        );
        assert_eq!(
            state.add_business_time(at(2026, 1, 19, 14, 30), Duration::hours(1)),
            Some(at(2026, 1, 19, 17, 0))
        );
        assert_eq!(
            state.add_business_time(monday, Duration::zero()),
            Some(monday)
        );
        assert_eq!(
            state.business_time_between(at(2026, 1, 19, 13, 0), at(2026, 1, 19, 17, 0)),
            Duration::hours(2)
        );
        assert_eq!(
            state.business_time_between(monday, monday - Duration::hours(1)),
            Duration::zero()
        );
    }

    #[test]
    fn without_hours_there_is_no_business_time() {
        let state = ScheduleState::default();
        let a = utc(2026, 1, 19, 10, 0);
        assert_eq!(
            state.business_time_between(a, a + Duration::days(7)),
            Duration::zero()
        );
        assert_eq!(state.add_business_time(a, Duration::hours(1)), None);
        // Hours with nothing open (not reachable through SetHours) end the
        // search after three years instead of looping.
        let closed = ScheduleState {
            hours: Some(BusinessHours {
                time_zone: madrid(),
                week: Default::default(),
            }),
            holidays: BTreeMap::new(),
        };
        assert_eq!(closed.add_business_time(a, Duration::hours(1)), None);
        // An amount beyond three years of open time is not found either.
        let state = split_schedule(&[]);
        assert_eq!(
            state.add_business_time(a, Duration::hours(8 * 5 * 52 * 4)),
            None
        );
    }

    #[test]
    fn the_default_week_is_a_valid_madrid_week() {
        let tz = TimeZone::parse("time_zone", DEFAULT_TIME_ZONE).unwrap();
        let result = given::<Schedule>(vec![])
            .when(&ScheduleCommand::SetHours {
                time_zone: tz,
                week: default_week(),
            })
            .into_result()
            .unwrap();
        assert_eq!(result.len(), 1);
    }

    // --- Storage

    #[test]
    fn every_event_survives_storage() {
        let events = vec![
            hours_set(sorted_split_week()),
            holiday_added(d(2026, 5, 2), "Fiesta"),
            ScheduleEvent::HolidayRemoved(HolidayRemoved {
                date: d(2026, 5, 2),
                name: name("Fiesta"),
            }),
        ];
        for event in events {
            let t = event.event_type();
            assert!(t.starts_with("schedule."), "{t}");
            let back =
                ScheduleEvent::from_stored(t, event.schema_version(), &event.to_data()).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn refuses_unknown_stored_events() {
        let data = serde_json::json!({});
        assert!(ScheduleEvent::from_stored("schedule.melted", 1, &data).is_err());
        assert!(ScheduleEvent::from_stored(HOLIDAY_ADDED, 1, &data).is_err());
        let ok = holiday_added(d(2026, 5, 2), "Fiesta").to_data();
        assert!(ScheduleEvent::from_stored(HOLIDAY_ADDED, 2, &ok).is_err());
    }

    #[test]
    fn error_messages_are_lowercase_without_a_trailing_period() {
        for e in [
            ScheduleError::Invalid(InvalidValue::new("name", "must not be empty")),
            ScheduleError::InvalidInterval {
                weekday: Weekday::Mon,
                start: t(9, 0),
                end: t(9, 0),
            },
            ScheduleError::TooManyIntervals {
                weekday: Weekday::Mon,
                max: 12,
            },
            ScheduleError::NoOpenHours,
            ScheduleError::DuplicateHoliday {
                date: d(2026, 5, 2),
            },
            ScheduleError::UnknownHoliday {
                date: d(2026, 5, 2),
            },
            ScheduleError::TooManyHolidays { max: 1000 },
        ] {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }
}
