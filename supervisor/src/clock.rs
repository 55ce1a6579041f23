//! Wall-clock helpers: Unix milliseconds as stored everywhere, and their RFC 3339
//! rendering for logs and the CLI.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

pub fn now_ms() -> i64 {
    let now = OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}

/// `2026-11-29T17:31:47.123Z` for a Unix-millisecond timestamp.
pub fn rfc3339_ms(ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| ms.to_string())
}

/// `20261129-173147-123` for a Unix-millisecond timestamp (UTC): sortable, and
/// safe as a file name.
pub fn compact_utc_ms(ms: i64) -> String {
    let format = time::macros::format_description!("[year][month][day]-[hour][minute][second]");
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .map(|s| format!("{s}-{:03}", ms.rem_euclid(1000)))
        .unwrap_or_else(|| ms.to_string())
}

/// The UTC month `YYYY-MM` (empty: the current one) as its name and
/// `[from, until)` Unix milliseconds.
pub fn month_bounds(month: &str) -> Result<(String, i64, i64), String> {
    let (year, mon) = if month.is_empty() {
        let now = OffsetDateTime::now_utc();
        (now.year(), u8::from(now.month()))
    } else {
        let (y, m) = month
            .split_once('-')
            .ok_or_else(|| format!("`{month}` is not YYYY-MM"))?;
        let year: i32 = y.parse().map_err(|_| format!("`{month}` is not YYYY-MM"))?;
        let mon: u8 = m.parse().map_err(|_| format!("`{month}` is not YYYY-MM"))?;
        (year, mon)
    };
    let start = |y: i32, m: u8| -> Result<i64, String> {
        let month = time::Month::try_from(m).map_err(|_| format!("month {m} is not 1-12"))?;
        let date = time::Date::from_calendar_date(y, month, 1).map_err(|e| e.to_string())?;
        Ok(date.midnight().assume_utc().unix_timestamp() * 1000)
    };
    let from = start(year, mon)?;
    let until = if mon == 12 {
        start(year + 1, 1)?
    } else {
        start(year, mon + 1)?
    };
    Ok((format!("{year:04}-{mon:02}"), from, until))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_are_utc_calendar_months() {
        let (name, from, until) = month_bounds("2026-12").unwrap();
        assert_eq!(name, "2026-12");
        assert_eq!(rfc3339_ms(from), "2026-12-01T00:00:00Z");
        assert_eq!(rfc3339_ms(until), "2027-01-01T00:00:00Z");
        let (_, from, until) = month_bounds("2028-02").unwrap();
        assert_eq!((until - from) / 86_400_000, 29, "leap year");
        assert!(month_bounds("2026-13").is_err());
        assert!(month_bounds("november").is_err());
        let (_, from, until) = month_bounds("").unwrap();
        assert!(from <= now_ms() && now_ms() < until);
    }
}
