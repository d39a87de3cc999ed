//! Schedules: `Period` (calendar-aware intervals) and `Cron` (5-field crontab in a time zone).

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
