//! Entrypoint parameters on the command line, with Modal's rules: `--name VALUE` for strings,
//! integers, floats and date-times, `--x/--no-x` for `bool`, `Option<T>` not required.

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::registry::ParamKind;

/// A type a `#[modal::local_entrypoint]` parameter may have.
///
/// ```
/// use modal::CliArg;
/// assert_eq!(<i64 as CliArg>::from_cli(Some("42")), Ok(42));
/// assert_eq!(<Option<f64> as CliArg>::from_cli(None), Ok(None));
/// let t = <chrono::NaiveDateTime as CliArg>::from_cli(Some("2024-05-01 12:30:00")).unwrap();
/// assert_eq!(t.to_string(), "2024-05-01 12:30:00");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a command-line parameter of a local entrypoint",
    label = "unsupported parameter type",
    note = "supported: String, integers, floats, bool (as --x/--no-x), chrono::NaiveDateTime, chrono::NaiveDate, chrono::DateTime<Utc>, and Option<T> of these"
)]
pub trait CliArg: Sized {
    /// How the parameter is written.
    #[doc(hidden)]
    const KIND: ParamKind = ParamKind::Value;
    /// Whether the flag must be given.
    const REQUIRED: bool = true;
    /// What the value looks like, for `--help`.
    const HINT: &'static str;
    /// Parses the flag's value (`None`: the flag was not given).
    fn from_cli(value: Option<&str>) -> Result<Self, String>;
}

fn given(value: Option<&str>) -> Result<&str, String> {
    value.ok_or_else(|| "is required".to_owned())
}

impl CliArg for String {
    const HINT: &'static str = "TEXT";
    fn from_cli(value: Option<&str>) -> Result<Self, String> {
        given(value).map(str::to_owned)
    }
}

macro_rules! numeric {
    ($hint:literal: $($t:ty),*) => {$(
        impl CliArg for $t {
            const HINT: &'static str = $hint;
            fn from_cli(value: Option<&str>) -> Result<Self, String> {
                let v = given(value)?;
                v.trim().parse::<$t>().map_err(|_| format!("`{v}` is not a valid {} ({})", $hint, stringify!($t)))
            }
        }
    )*};
}
numeric!("INTEGER": i8, i16, i32, i64, i128, isize, u8, u16, u32, u64, u128, usize);
numeric!("FLOAT": f32, f64);

impl CliArg for bool {
    const KIND: ParamKind = ParamKind::Flag;
    const HINT: &'static str = "";
    fn from_cli(value: Option<&str>) -> Result<Self, String> {
        match given(value)? {
            "true" => Ok(true),
            "false" => Ok(false),
            v => Err(format!("`{v}` is not a boolean")),
        }
    }
}

/// The three formats Modal (click's `DateTime`) accepts.
const DATETIME_FORMATS: [&str; 2] = ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"];

fn parse_datetime(v: &str) -> Result<NaiveDateTime, String> {
    for f in DATETIME_FORMATS {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, f) {
            return Ok(t);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(v, "%Y-%m-%d") {
        return Ok(d.and_time(chrono::NaiveTime::MIN));
    }
    Err(format!(
        "`{v}` is not a date-time in one of the formats %Y-%m-%d, %Y-%m-%dT%H:%M:%S, %Y-%m-%d %H:%M:%S"
    ))
}

impl CliArg for NaiveDateTime {
    const HINT: &'static str = "DATETIME";
    fn from_cli(value: Option<&str>) -> Result<Self, String> {
        parse_datetime(given(value)?)
    }
}

impl CliArg for DateTime<Utc> {
    const HINT: &'static str = "DATETIME";
    fn from_cli(value: Option<&str>) -> Result<Self, String> {
        parse_datetime(given(value)?).map(|t| t.and_utc())
    }
}

impl CliArg for NaiveDate {
    const HINT: &'static str = "DATE";
    fn from_cli(value: Option<&str>) -> Result<Self, String> {
        let v = given(value)?;
        NaiveDate::parse_from_str(v, "%Y-%m-%d")
            .map_err(|_| format!("`{v}` is not a date in the format %Y-%m-%d"))
    }
}

impl<T: CliArg> CliArg for Option<T> {
    const KIND: ParamKind = T::KIND;
    const REQUIRED: bool = false;
    const HINT: &'static str = T::HINT;
    fn from_cli(value: Option<&str>) -> Result<Self, String> {
        value.map(|v| T::from_cli(Some(v))).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(i64::from_cli(Some("-3")), Ok(-3));
        assert!(
            u8::from_cli(Some("300"))
                .unwrap_err()
                .contains("not a valid INTEGER")
        );
        assert_eq!(f64::from_cli(Some("2.5")), Ok(2.5));
        assert!(i64::from_cli(None).is_err());
    }

    #[test]
    fn datetimes_in_modals_three_formats() {
        let want = NaiveDate::from_ymd_opt(2024, 5, 1)
            .unwrap()
            .and_hms_opt(12, 30, 0)
            .unwrap();
        assert_eq!(
            NaiveDateTime::from_cli(Some("2024-05-01T12:30:00")),
            Ok(want)
        );
        assert_eq!(
            NaiveDateTime::from_cli(Some("2024-05-01 12:30:00")),
            Ok(want)
        );
        assert_eq!(
            NaiveDateTime::from_cli(Some("2024-05-01")),
            Ok(want.date().and_time(chrono::NaiveTime::MIN))
        );
        assert!(NaiveDateTime::from_cli(Some("05/01/2024")).is_err());
        assert_eq!(
            DateTime::<Utc>::from_cli(Some("2024-05-01T12:30:00")),
            Ok(want.and_utc())
        );
    }

    #[test]
    fn options_and_bools() {
        assert_eq!(<Option<String>>::from_cli(None), Ok(None));
        assert_eq!(<Option<i32>>::from_cli(Some("4")), Ok(Some(4)));
        const { assert!(!<Option<i32> as CliArg>::REQUIRED) };
        assert_eq!(<bool as CliArg>::KIND, ParamKind::Flag);
        assert_eq!(bool::from_cli(Some("false")), Ok(false));
    }
}
