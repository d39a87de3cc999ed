//! Schedules: `Period` (calendar-aware intervals) and `Cron` (5-field crontab in a time zone).

use chrono::{DateTime, Days, Months, TimeDelta, TimeZone, Utc};

/// When a scheduled function fires.
#[derive(Debug, Clone, PartialEq)]
pub enum Schedule {
    /// A fixed, calendar-aware interval.
    Period(Period),
    /// A crontab expression.
    Cron(Cron),
}

/// A calendar-aware interval: `Period::days(1)` fires at the same wall-clock time every day.
///
/// ```
/// let p = modal::Period::hours(1).and_minutes(30);
/// assert_eq!(p.minutes, 30);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Period {
    /// Years.
    pub years: u32,
    /// Months.
    pub months: u32,
    /// Weeks.
    pub weeks: u32,
    /// Days.
    pub days: u32,
    /// Hours.
    pub hours: u32,
    /// Minutes.
    pub minutes: u32,
    /// Seconds (the only fractional field).
    pub seconds: f64,
}

macro_rules! period_ctor {
    ($($ctor:ident $and:ident $field:ident: $ty:ty),*) => {
        impl Period {
            $(
                #[doc = concat!("A period of `n` ", stringify!($field), ".")]
                pub fn $ctor(n: $ty) -> Self {
                    Period { $field: n, ..Period::default() }
                }
                #[doc = concat!("This period plus `n` ", stringify!($field), ".")]
                pub fn $and(mut self, n: $ty) -> Self {
                    self.$field = n;
                    self
                }
            )*
        }
    };
}

period_ctor!(
    years and_years years: u32,
    months and_months months: u32,
    weeks and_weeks weeks: u32,
    days and_days days: u32,
    hours and_hours hours: u32,
    minutes and_minutes minutes: u32,
    seconds and_seconds seconds: f64
);

/// A 5-field crontab (`minute hour day-of-month month day-of-week`) in an IANA time zone.
///
/// ```
/// let c = modal::Cron::new("0 9 * * 1-5").timezone("Europe/Paris");
/// assert_eq!(c.timezone, "Europe/Paris");
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    /// The crontab expression.
    pub expression: String,
    /// IANA time zone name (default `UTC`).
    pub timezone: String,
}

impl Cron {
    /// A crontab schedule in UTC.
    pub fn new(expression: impl Into<String>) -> Self {
        Cron {
            expression: expression.into(),
            timezone: "UTC".into(),
        }
    }

    /// The same schedule evaluated in `tz`.
    pub fn timezone(mut self, tz: impl Into<String>) -> Self {
        self.timezone = tz.into();
        self
    }
}

impl From<Period> for Schedule {
    fn from(p: Period) -> Self {
        Schedule::Period(p)
    }
}

impl From<Cron> for Schedule {
    fn from(c: Cron) -> Self {
        Schedule::Cron(c)
    }
}

// ---------------------------------------------------------------------------
// Evaluation: validation and next fire times (pure logic, no IO).
// ---------------------------------------------------------------------------

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Where a `Cron`'s "never fires" check starts searching (any fixed instant will do).
const CRON_PROBE_START_SECS: i64 = 946_684_800; // 2000-01-01T00:00:00Z

/// How long [`next_fire`] asks the caller to wait when a schedule has no next fire time
/// (invalid schedule, or arithmetic past chrono's range), so the caller re-checks later
/// instead of spinning.
const NO_NEXT_FIRE_RECHECK: TimeDelta = TimeDelta::hours(1);

impl Period {
    /// `years * 12 + months`, or `None` on overflow.
    fn total_months(&self) -> Option<u32> {
        self.years.checked_mul(12)?.checked_add(self.months)
    }

    /// `weeks * 7 + days`, or `None` on overflow.
    fn total_days(&self) -> Option<u64> {
        u64::from(self.weeks)
            .checked_mul(7)?
            .checked_add(u64::from(self.days))
    }

    /// Hours, minutes and seconds as exact nanoseconds (seconds rounded to the nearest
    /// nanosecond), or `None` if `seconds` is negative, not finite or absurdly large.
    fn fixed_nanos(&self) -> Option<i128> {
        let s = self.seconds;
        // 1e15 s is ~31 million years: far beyond anything chrono can add anyway.
        if !(0.0..=1e15).contains(&s) {
            return None;
        }
        let whole = s.trunc();
        // Both casts are exact: `whole` is an integer below 1e15 and the fraction is < 1e9.
        let frac_ns = ((s - whole) * 1e9).round() as i128;
        let secs = i128::from(self.hours) * 3600 + i128::from(self.minutes) * 60 + whole as i128;
        Some(secs * NANOS_PER_SEC + frac_ns)
    }

    /// `t + k·self`: `k·(years·12 + months)` months via `checked_add_months` (clamped to the
    /// month end), then `k·(weeks·7 + days)` calendar days, then `k·(h, m, s)` exactly.
    ///
    /// The period is scaled rather than added `k` times, so a monthly period starting on
    /// Jan 31 gives Feb 29, Mar 31, Apr 30, … instead of drifting to the 29th.
    fn add_times(&self, t: DateTime<Utc>, k: u64) -> Option<DateTime<Utc>> {
        let months = u64::from(self.total_months()?).checked_mul(k)?;
        let days = self.total_days()?.checked_mul(k)?;
        let fixed = self.fixed_nanos()?.checked_mul(i128::from(k))?;
        let t = if months == 0 {
            t
        } else {
            t.checked_add_months(Months::new(u32::try_from(months).ok()?))?
        };
        let t = if days == 0 {
            t
        } else {
            t.checked_add_days(Days::new(days))?
        };
        t.checked_add_signed(delta_from_nanos(fixed)?)
    }

    /// Whether the period adds nothing at all (every field zero, or under half a nanosecond).
    fn is_zero(&self) -> bool {
        self.total_months() == Some(0)
            && self.total_days() == Some(0)
            && self.fixed_nanos() == Some(0)
    }
}

/// Exact nanoseconds as a `TimeDelta`, or `None` when out of its range.
fn delta_from_nanos(nanos: i128) -> Option<TimeDelta> {
    let secs = i64::try_from(nanos.div_euclid(NANOS_PER_SEC)).ok()?;
    let sub = i64::try_from(nanos.rem_euclid(NANOS_PER_SEC)).ok()?;
    TimeDelta::try_seconds(secs)?.checked_add(&TimeDelta::nanoseconds(sub))
}

/// Parses a [`Cron`] into croner's 5-field form and its IANA time zone.
fn parse_cron(c: &Cron) -> Result<(croner::Cron, chrono_tz::Tz), String> {
    let fields = c.expression.split_whitespace().count();
    if fields != 5 {
        return Err(format!(
            "invalid cron expression {:?}: expected 5 fields \
             (minute hour day-of-month month day-of-week), got {fields}",
            c.expression
        ));
    }
    // Without `with_seconds_*`, croner rejects a seconds field and fixes second = 0.
    let cron = croner::Cron::new(&c.expression)
        .parse()
        .map_err(|e| format!("invalid cron expression {:?}: {e}", c.expression))?;
    let tz = c.timezone.parse::<chrono_tz::Tz>().map_err(|_| {
        format!(
            "unknown time zone {:?}: expected an IANA name such as \"UTC\" or \"Europe/Paris\"",
            c.timezone
        )
    })?;
    Ok((cron, tz))
}

/// First occurrence of `cron` (evaluated in `tz`) strictly after `after`.
fn cron_next_after(
    cron: &croner::Cron,
    tz: chrono_tz::Tz,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let mut cursor = after.with_timezone(&tz);
    // croner searches in local wall-clock time and maps an ambiguous local time (DST
    // fall-back) to its *earlier* instant. If `after` lies in the repeated hour, that
    // instant can be at or before `after`; then take the later instant of the same wall
    // time, or keep searching from it. A couple of rounds always suffice; the bound only
    // guards against surprises.
    for _ in 0..8 {
        let candidate = cron.find_next_occurrence(&cursor, false).ok()?;
        if candidate.with_timezone(&Utc) > after {
            return Some(candidate.with_timezone(&Utc));
        }
        let later = tz
            .from_local_datetime(&candidate.naive_local())
            .latest()
            .unwrap_or(candidate);
        if later.with_timezone(&Utc) > after {
            return Some(later.with_timezone(&Utc));
        }
        cursor = later;
    }
    None
}

impl Schedule {
    /// Checks the schedule: a `Period` must be non-zero with finite, non-negative
    /// seconds; a `Cron` must be a 5-field crontab (minute hour day-of-month month
    /// day-of-week) that croner accepts and that fires at least once, in a known IANA time
    /// zone. The error names the offending value.
    pub(crate) fn validate(&self) -> Result<(), String> {
        match self {
            Schedule::Period(p) => {
                if !p.seconds.is_finite() || p.seconds < 0.0 {
                    return Err(format!(
                        "invalid Period: seconds must be finite and non-negative, got {}",
                        p.seconds
                    ));
                }
                if p.fixed_nanos().is_none() || p.total_months().is_none() {
                    return Err(format!("invalid Period {p:?}: too large"));
                }
                if p.is_zero() {
                    return Err(format!("invalid Period {p:?}: the period must be non-zero"));
                }
                Ok(())
            }
            Schedule::Cron(c) => {
                let (cron, tz) = parse_cron(c)?;
                let probe = DateTime::from_timestamp(CRON_PROBE_START_SECS, 0)
                    .unwrap_or(DateTime::UNIX_EPOCH);
                if cron_next_after(&cron, tz, probe).is_none() {
                    return Err(format!(
                        "invalid cron expression {:?}: it never fires",
                        c.expression
                    ));
                }
                Ok(())
            }
        }
    }

    /// The first fire time strictly after `after`, or `None` if the schedule is invalid or
    /// the time would be out of chrono's range.
    ///
    /// A `Period` is anchored at `after` itself (`after + period`); a `Cron` is evaluated
    /// in its time zone (so DST shifts its UTC time) and returned in UTC.
    #[cfg(test)]
    pub(crate) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.next_after_from(after, after)
    }

    /// The first tick strictly after `after` of the schedule anchored at `origin`.
    ///
    /// For a `Period`, ticks are `origin + k·period` for `k ≥ 1`, where `k·period` is
    /// calendar arithmetic in UTC: `k·(years·12 + months)` months with chrono's
    /// `checked_add_months` (clamped to the month end, and scaled rather than repeated so
    /// month ends don't drift), then `k·(weeks·7 + days)` calendar days, then `k` times the
    /// hours, minutes and fractional seconds as an exact duration. The search jumps (by
    /// division when the period has no months or years, by galloping + binary search
    /// otherwise), so far-away `after`s are cheap. A `Cron` has no anchor: `origin` is
    /// ignored.
    pub(crate) fn next_after_from(
        &self,
        origin: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Cron(c) => {
                let (cron, tz) = parse_cron(c).ok()?;
                cron_next_after(&cron, tz, after)
            }
            Schedule::Period(p) => {
                if p.is_zero() {
                    return None;
                }
                if after < origin {
                    return p.add_times(origin, 1);
                }
                if p.total_months()? == 0 {
                    // Fixed length: calendar days are exactly 86 400 s in UTC.
                    let len =
                        i128::from(p.total_days()?) * 86_400 * NANOS_PER_SEC + p.fixed_nanos()?;
                    let elapsed = (after - origin).num_nanoseconds().map_or_else(
                        // Over ~292 years: fall back to whole seconds (plus the sub-second part).
                        || {
                            let d = after - origin;
                            i128::from(d.num_seconds()) * NANOS_PER_SEC
                                + i128::from(d.subsec_nanos())
                        },
                        i128::from,
                    );
                    let k = u64::try_from(elapsed / len + 1).ok()?;
                    return origin
                        .checked_add_signed(delta_from_nanos(len.checked_mul(i128::from(k))?)?);
                }
                // Calendar period: ticks are strictly increasing in k, so gallop to a k whose
                // tick is past `after` (or out of range), then binary-search the first one.
                let past = |k: u64| p.add_times(origin, k).is_none_or(|t| t > after);
                let mut lo = 0u64; // tick(lo) <= after (k = 0 is origin itself)
                let mut hi = 1u64;
                while !past(hi) {
                    lo = hi;
                    hi = hi.checked_mul(2)?;
                }
                while hi - lo > 1 {
                    let mid = lo + (hi - lo) / 2;
                    if past(mid) {
                        hi = mid;
                    } else {
                        lo = mid;
                    }
                }
                p.add_times(origin, hi)
            }
        }
    }
}

/// The control plane's firing rule: returns `(fire_now, next_wake)`.
///
/// * A schedule that has never fired (`last_fire == None`) uses `created` as its origin.
/// * The due tick is the first tick strictly after `last_fire` (or `created`). For a
///   `Period` the grid is always `created + k·period` ([`Schedule::next_after_from`] with
///   `origin = created`), so the grid neither drifts when `last_fire` is recorded a little
///   late nor when month-end clamping shortens one month; when `last_fire` is on the grid
///   this is simply `last_fire + period`. For a `Cron` it is the next cron time after
///   `last_fire` (or `created`).
/// * If that tick is `<= now`, fire now — exactly once, however many ticks were missed
///   (e.g. during downtime: a missed tick fires once on restart, not once per missed tick)
///   — and wake at the first tick strictly after `now`, on the same grid (a daily
///   `Period` keeps its wall-clock time; a `Cron` keeps its crontab times).
/// * Otherwise don't fire, and wake at that tick.
///
/// If the schedule has no next tick (invalid, which `validate` rejects, or out of
/// chrono's range), it doesn't fire and asks to be re-checked an hour later.
pub(crate) fn next_fire(
    schedule: &Schedule,
    last_fire: Option<DateTime<Utc>>,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (bool, DateTime<Utc>) {
    let recheck = || now.checked_add_signed(NO_NEXT_FIRE_RECHECK).unwrap_or(now);
    let after = last_fire.unwrap_or(created);
    let Some(due) = schedule.next_after_from(created, after) else {
        return (false, recheck());
    };
    if due > now {
        return (false, due);
    }
    let wake = schedule
        .next_after_from(created, now)
        .unwrap_or_else(recheck);
    (true, wake)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `YYYY-MM-DDTHH:MM:SS[.fff]Z` → UTC instant.
    fn t(s: &str) -> DateTime<Utc> {
        s.parse().expect("valid RFC 3339 test timestamp")
    }

    fn period(p: Period) -> Schedule {
        Schedule::Period(p)
    }

    fn cron(expr: &str, tz: &str) -> Schedule {
        Schedule::Cron(Cron::new(expr).timezone(tz))
    }

    #[test]
    fn period_next_after() {
        let cases = [
            (
                "days(1)",
                Period::days(1),
                "2024-03-09T10:00:00Z",
                "2024-03-10T10:00:00Z",
            ),
            (
                "months(1) clamps",
                Period::months(1),
                "2024-01-31T08:00:00Z",
                "2024-02-29T08:00:00Z",
            ),
            (
                "years(1) from leap day",
                Period::years(1),
                "2024-02-29T00:00:00Z",
                "2025-02-28T00:00:00Z",
            ),
            (
                "seconds(2.5)",
                Period::seconds(2.5),
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:00:02.500Z",
            ),
            (
                "seconds(0.1)",
                Period::seconds(0.1),
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:00:00.100Z",
            ),
            (
                "hours+minutes",
                Period::hours(1).and_minutes(30),
                "2024-01-01T23:00:00Z",
                "2024-01-02T00:30:00Z",
            ),
            (
                "weeks(2)",
                Period::weeks(2),
                "2024-12-25T06:00:00Z",
                "2025-01-08T06:00:00Z",
            ),
            (
                "all fields",
                Period::years(1)
                    .and_months(1)
                    .and_weeks(1)
                    .and_days(1)
                    .and_hours(1)
                    .and_minutes(1)
                    .and_seconds(1.5),
                "2024-01-31T00:00:00Z",
                // +13 months → 2025-02-28 (clamped), +8 days → 2025-03-08, +1h1m1.5s.
                "2025-03-08T01:01:01.500Z",
            ),
        ];
        for (name, p, after, want) in cases {
            assert_eq!(period(p).next_after(t(after)), Some(t(want)), "{name}");
        }
    }

    #[test]
    fn period_grid_from_origin() {
        let cases = [
            // (period, origin, after, want)
            (
                Period::hours(1),
                "2024-01-01T00:00:00Z",
                "2024-01-01T05:30:00Z",
                "2024-01-01T06:00:00Z",
            ),
            (
                Period::hours(1),
                "2024-01-01T00:00:00Z",
                "2024-01-01T06:00:00Z",
                "2024-01-01T07:00:00Z",
            ),
            // `after` before the origin: the first tick (k = 1).
            (
                Period::hours(1),
                "2024-01-01T00:00:00Z",
                "2023-01-01T00:00:00Z",
                "2024-01-01T01:00:00Z",
            ),
            // `after == origin`: k = 1.
            (
                Period::days(1),
                "2024-01-01T09:00:00Z",
                "2024-01-01T09:00:00Z",
                "2024-01-02T09:00:00Z",
            ),
            // Monthly from Jan 31 is scaled, not repeated: Feb 29, then Mar 31 (not Mar 29).
            (
                Period::months(1),
                "2024-01-31T00:00:00Z",
                "2024-02-29T00:00:00Z",
                "2024-03-31T00:00:00Z",
            ),
            (
                Period::months(1),
                "2024-01-31T00:00:00Z",
                "2024-04-01T00:00:00Z",
                "2024-04-30T00:00:00Z",
            ),
            // Calendar period far from the origin (binary search).
            (
                Period::months(1),
                "1970-01-01T00:00:00Z",
                "2024-06-15T12:00:00Z",
                "2024-07-01T00:00:00Z",
            ),
            // k = 2: Jan 1 + 2 months + 2 days.
            (
                Period::months(1).and_days(1),
                "2024-01-01T00:00:00Z",
                "2024-03-02T00:00:00Z",
                "2024-03-03T00:00:00Z",
            ),
            // Fixed period far from the origin (division).
            (
                Period::seconds(1.0),
                "2024-01-01T00:00:00Z",
                "2025-01-01T00:00:00.500Z",
                "2025-01-01T00:00:01Z",
            ),
            (
                Period::seconds(2.5),
                "2024-01-01T00:00:00Z",
                "2025-01-01T00:00:00Z",
                "2025-01-01T00:00:02.500Z",
            ),
            (
                Period::weeks(1),
                "1900-01-01T12:00:00Z",
                "2300-06-01T00:00:00Z",
                "2300-06-04T12:00:00Z",
            ),
        ];
        for (p, origin, after, want) in cases {
            assert_eq!(
                period(p).next_after_from(t(origin), t(after)),
                Some(t(want)),
                "{p:?} origin {origin} after {after}"
            );
        }
    }

    #[test]
    fn small_period_far_after_is_fast_and_on_grid() {
        let origin = t("2024-01-01T00:00:00Z");
        let after = t("2025-01-01T00:00:00.250Z");
        let start = std::time::Instant::now();
        for p in [
            Period::seconds(1.0),
            Period::seconds(0.001),
            Period::minutes(1).and_seconds(0.5),
        ] {
            let next = period(p).next_after_from(origin, after).expect("in range");
            let len = p.fixed_nanos().expect("valid");
            let offset = (next - origin).num_nanoseconds().expect("fits") as i128;
            assert!(next > after, "{p:?}");
            assert_eq!(offset % len, 0, "{p:?} lands on the grid");
            assert!(
                next - after <= delta_from_nanos(len).expect("fits"),
                "{p:?} is the first tick"
            );
        }
        // A calendar period far from its origin goes through the binary search.
        let p = Period::months(1).and_seconds(1.0);
        let next = period(p)
            .next_after_from(t("1970-01-01T00:00:00Z"), after)
            .expect("in range");
        assert!(next > after);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(1),
            "took {:?}",
            start.elapsed()
        );
    }

    #[test]
    fn cron_next_after() {
        let cases = [
            // (expr, tz, after, want)
            (
                "*/15 * * * *",
                "UTC",
                "2024-05-01T10:07:00Z",
                "2024-05-01T10:15:00Z",
            ),
            (
                "*/15 * * * *",
                "UTC",
                "2024-05-01T10:15:00Z",
                "2024-05-01T10:30:00Z",
            ), // exclusive
            (
                "*/15 * * * *",
                "UTC",
                "2024-05-01T10:14:59.999Z",
                "2024-05-01T10:15:00Z",
            ),
            (
                "*/15 * * * *",
                "UTC",
                "2024-05-01T23:50:00Z",
                "2024-05-02T00:00:00Z",
            ),
            // Paris 09:00 on weekdays: CET (UTC+1) before 2024-03-31, CEST (UTC+2) after.
            (
                "0 9 * * 1-5",
                "Europe/Paris",
                "2024-03-28T12:00:00Z",
                "2024-03-29T08:00:00Z",
            ),
            (
                "0 9 * * 1-5",
                "Europe/Paris",
                "2024-03-29T08:00:00Z",
                "2024-04-01T07:00:00Z",
            ),
            (
                "0 9 * * 1-5",
                "America/New_York",
                "2024-03-08T15:00:00Z",
                "2024-03-11T13:00:00Z",
            ),
            // Spring forward (Paris 02:00 → 03:00): a time in the gap fires at 03:00 CEST.
            (
                "30 2 * * *",
                "Europe/Paris",
                "2024-03-30T12:00:00Z",
                "2024-03-31T01:00:00Z",
            ),
            (
                "30 2 * * *",
                "Europe/Paris",
                "2024-03-31T01:00:00Z",
                "2024-04-01T00:30:00Z",
            ),
            // Fall back (Paris 03:00 CEST → 02:00 CET): a repeated wall time fires once, at
            // its first instant.
            (
                "30 2 * * *",
                "Europe/Paris",
                "2024-10-26T12:00:00Z",
                "2024-10-27T00:30:00Z",
            ),
            (
                "30 2 * * *",
                "Europe/Paris",
                "2024-10-27T00:30:00Z",
                "2024-10-28T01:30:00Z",
            ),
            // croner walks wall-clock time, so from the first 02:45 the next is 03:00 CET
            // (the repeated hour is skipped)…
            (
                "*/15 * * * *",
                "Europe/Paris",
                "2024-10-27T00:45:00Z",
                "2024-10-27T02:00:00Z",
            ),
            // …but starting inside the repeated hour stays strictly after `after`.
            (
                "*/15 * * * *",
                "Europe/Paris",
                "2024-10-27T01:20:00Z",
                "2024-10-27T01:30:00Z",
            ),
            (
                "*/15 * * * *",
                "Europe/Paris",
                "2024-10-27T01:45:00Z",
                "2024-10-27T02:00:00Z",
            ),
            // Day-of-month and day-of-week both restricted: OR (Vixie semantics).
            (
                "0 0 13 * 5",
                "UTC",
                "2024-10-05T00:00:00Z",
                "2024-10-11T00:00:00Z",
            ), // Friday
            (
                "0 0 13 * 5",
                "UTC",
                "2024-10-11T00:00:00Z",
                "2024-10-13T00:00:00Z",
            ), // the 13th (Sun)
            // One restricted, the other `*`: only the restricted one counts.
            (
                "0 0 * * 0",
                "UTC",
                "2024-10-01T00:00:00Z",
                "2024-10-06T00:00:00Z",
            ),
            (
                "0 0 29 2 *",
                "UTC",
                "2024-03-01T00:00:00Z",
                "2028-02-29T00:00:00Z",
            ),
            // 7 is Sunday too; names work.
            (
                "0 0 * * 7",
                "UTC",
                "2024-10-01T00:00:00Z",
                "2024-10-06T00:00:00Z",
            ),
            (
                "0 12 * JAN MON",
                "UTC",
                "2024-10-01T00:00:00Z",
                "2025-01-06T12:00:00Z",
            ),
        ];
        for (expr, tz, after, want) in cases {
            assert_eq!(
                cron(expr, tz).next_after(t(after)),
                Some(t(want)),
                "{expr:?} in {tz} after {after}"
            );
        }
    }

    #[test]
    fn cron_ignores_origin() {
        let s = cron("0 * * * *", "UTC");
        assert_eq!(
            s.next_after_from(t("2000-01-01T00:30:00Z"), t("2024-01-01T10:10:00Z")),
            Some(t("2024-01-01T11:00:00Z"))
        );
    }

    #[test]
    fn validate() {
        let cases: [(&str, Schedule, Option<&str>); 16] = [
            ("period ok", period(Period::days(1)), None),
            ("fractional ok", period(Period::seconds(0.5)), None),
            ("cron ok", cron("0 9 * * 1-5", "Europe/Paris"), None),
            ("cron names ok", cron("0 0 * jan-mar mon", "UTC"), None),
            ("zero period", period(Period::default()), Some("non-zero")),
            (
                "sub-ns period",
                period(Period::seconds(1e-12)),
                Some("non-zero"),
            ),
            (
                "negative seconds",
                period(Period::seconds(-1.0)),
                Some("got -1"),
            ),
            (
                "nan seconds",
                period(Period::seconds(f64::NAN)),
                Some("got NaN"),
            ),
            (
                "inf seconds",
                period(Period::minutes(1).and_seconds(f64::INFINITY)),
                Some("got inf"),
            ),
            (
                "six fields",
                cron("0 0 9 * * 1-5", "UTC"),
                Some("expected 5 fields (minute hour day-of-month month day-of-week), got 6"),
            ),
            (
                "seven fields",
                cron("0 0 9 * * 1-5 2024", "UTC"),
                Some("got 7"),
            ),
            (
                "nickname",
                cron("@daily", "UTC"),
                Some("\"@daily\": expected 5 fields"),
            ),
            (
                "garbage",
                cron("every day at 9", "UTC"),
                Some("\"every day at 9\""),
            ),
            (
                "out of range",
                cron("61 * * * *", "UTC"),
                Some("\"61 * * * *\""),
            ),
            (
                "never fires",
                cron("0 0 30 2 *", "UTC"),
                Some("never fires"),
            ),
            (
                "bad tz",
                cron("0 9 * * *", "Mars/Olympus_Mons"),
                Some("\"Mars/Olympus_Mons\""),
            ),
        ];
        for (name, schedule, want_err) in cases {
            match (schedule.validate(), want_err) {
                (Ok(()), None) => {}
                (Err(e), Some(needle)) => {
                    assert!(e.contains(needle), "{name}: {e:?} lacks {needle:?}")
                }
                (got, want) => panic!("{name}: got {got:?}, want error {want:?}"),
            }
        }
    }

    #[test]
    fn invalid_schedules_have_no_next() {
        assert_eq!(
            period(Period::default()).next_after(t("2024-01-01T00:00:00Z")),
            None
        );
        assert_eq!(
            period(Period::seconds(-1.0)).next_after(t("2024-01-01T00:00:00Z")),
            None
        );
        assert_eq!(
            cron("0 0 9 * * *", "UTC").next_after(t("2024-01-01T00:00:00Z")),
            None
        );
        assert_eq!(
            cron("0 9 * * *", "Nowhere").next_after(t("2024-01-01T00:00:00Z")),
            None
        );
    }

    #[test]
    fn next_fire_rule() {
        let hourly = period(Period::hours(1));
        let daily = period(Period::days(1));
        let cron9 = cron("0 9 * * *", "UTC");
        let cases = [
            // (name, schedule, last_fire, created, now, want_fire, want_wake)
            (
                "never fired, not due",
                &hourly,
                None,
                "2024-01-01T10:00:00Z",
                "2024-01-01T10:30:00Z",
                false,
                "2024-01-01T11:00:00Z",
            ),
            (
                "never fired, exactly due",
                &hourly,
                None,
                "2024-01-01T10:00:00Z",
                "2024-01-01T11:00:00Z",
                true,
                "2024-01-01T12:00:00Z",
            ),
            (
                "fired, not due",
                &hourly,
                Some("2024-01-01T11:00:00Z"),
                "2024-01-01T10:00:00Z",
                "2024-01-01T11:59:59Z",
                false,
                "2024-01-01T12:00:00Z",
            ),
            (
                "fired, exactly due",
                &hourly,
                Some("2024-01-01T11:00:00Z"),
                "2024-01-01T10:00:00Z",
                "2024-01-01T12:00:00Z",
                true,
                "2024-01-01T13:00:00Z",
            ),
            // Down from 10:00 to 15:30: ticks 11..15 missed → fire once, wake on the grid.
            (
                "missed 5 ticks",
                &hourly,
                Some("2024-01-01T10:00:00Z"),
                "2024-01-01T00:00:00Z",
                "2024-01-01T15:30:00Z",
                true,
                "2024-01-01T16:00:00Z",
            ),
            // last_fire recorded a little late still keeps the grid.
            (
                "late last_fire",
                &hourly,
                Some("2024-01-01T10:00:03Z"),
                "2024-01-01T00:00:00Z",
                "2024-01-01T11:00:00Z",
                true,
                "2024-01-01T12:00:00Z",
            ),
            (
                "daily keeps wall clock",
                &daily,
                Some("2024-03-05T09:00:00Z"),
                "2024-03-01T09:00:00Z",
                "2024-03-09T14:00:00Z",
                true,
                "2024-03-10T09:00:00Z",
            ),
            (
                "cron never fired, not due",
                &cron9,
                None,
                "2024-03-05T08:00:00Z",
                "2024-03-05T08:59:59Z",
                false,
                "2024-03-05T09:00:00Z",
            ),
            (
                "cron never fired, due",
                &cron9,
                None,
                "2024-03-05T08:00:00Z",
                "2024-03-05T09:00:00Z",
                true,
                "2024-03-06T09:00:00Z",
            ),
            (
                "cron missed days",
                &cron9,
                Some("2024-03-05T09:00:00Z"),
                "2024-03-01T00:00:00Z",
                "2024-03-09T14:00:00Z",
                true,
                "2024-03-10T09:00:00Z",
            ),
            (
                "cron fired, not due",
                &cron9,
                Some("2024-03-05T09:00:00.400Z"),
                "2024-03-01T00:00:00Z",
                "2024-03-05T12:00:00Z",
                false,
                "2024-03-06T09:00:00Z",
            ),
        ];
        for (name, schedule, last, created, now, want_fire, want_wake) in cases {
            assert_eq!(
                next_fire(schedule, last.map(t), t(created), t(now)),
                (want_fire, t(want_wake)),
                "{name}"
            );
        }
    }

    #[test]
    fn next_fire_without_next_tick_rechecks_later() {
        let now = t("2024-01-01T00:00:00Z");
        let bad = cron("not a cron", "UTC");
        assert_eq!(
            next_fire(&bad, None, now, now),
            (false, t("2024-01-01T01:00:00Z"))
        );
    }
}
