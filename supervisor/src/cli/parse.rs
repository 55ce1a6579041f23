//! Value parsers for the CLI's arguments: dates (`--expires`), points in time
//! (`--since`), durations (`--expires-in`, `--timeout`) and `--on-behalf-of`.

use std::time::Duration;

use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{Date, OffsetDateTime};

const DATE_FORMS: &str = "an RFC 3339 time (2027-01-31T00:00:00Z) or a date (2027-01-31)";
const TIME_FORMS: &str =
    "an RFC 3339 time (2027-01-31T00:00:00Z), a date (2027-01-31) or a duration ago (1h, 30m)";

/// `--expires DATE`: RFC 3339, or `YYYY-MM-DD` meaning midnight UTC; returns
/// Unix milliseconds as the protocol wants them.
pub fn date_ms(s: &str) -> Result<i64, String> {
    let time = absolute_time(s).ok_or_else(|| format!("expected {DATE_FORMS}"))?;
    to_unix_ms(time)
}

/// `--since TIME`: like [`date_ms`], or a duration meaning "that long ago".
pub fn since_ms(s: &str) -> Result<i64, String> {
    since_ms_at(s, OffsetDateTime::now_utc())
}

/// [`since_ms`] against an explicit clock, so tests are deterministic.
fn since_ms_at(s: &str, now: OffsetDateTime) -> Result<i64, String> {
    if let Some(time) = absolute_time(s) {
        return to_unix_ms(time);
    }
    let ago =
        humantime::parse_duration(s.trim()).map_err(|e| format!("expected {TIME_FORMS} ({e})"))?;
    let time = now
        .checked_sub(
            time::Duration::try_from(ago).map_err(|_| "duration is too large".to_string())?,
        )
        .ok_or_else(|| "duration reaches too far into the past".to_string())?;
    to_unix_ms(time)
}

fn absolute_time(s: &str) -> Option<OffsetDateTime> {
    let s = s.trim();
    if let Ok(time) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(time);
    }
    let date = Date::parse(s, format_description!("[year]-[month]-[day]")).ok()?;
    Some(date.midnight().assume_utc())
}

/// The protocol uses 0 for "none", and nothing sensible predates the epoch,
/// so such times are refused here rather than silently meaning "none".
fn to_unix_ms(time: OffsetDateTime) -> Result<i64, String> {
    let ms = time.unix_timestamp_nanos() / 1_000_000;
    match i64::try_from(ms) {
        Ok(ms) if ms > 0 => Ok(ms),
        _ => Err("time must be after 1970-01-01T00:00:00Z".to_string()),
    }
}

/// `--timeout DURATION`: a humantime duration (`500ms`, `30s`, `2m`). Zero is
/// refused because on the wire it would mean "the daemon's default".
pub fn duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("expected a duration such as 30s, 12h or 30d ({e})"))?;
    if d.is_zero() {
        return Err("duration must be greater than zero".to_string());
    }
    Ok(d)
}

/// `--expires-in DURATION` in whole seconds, as the protocol carries it.
/// Sub-second values are refused: they would truncate to 0, which the daemon
/// reads as "use the catalog default" — the opposite of what was asked.
pub fn expires_in_secs(s: &str) -> Result<u64, String> {
    let secs = duration(s)?.as_secs();
    if secs == 0 {
        return Err("expiry must be at least 1s".to_string());
    }
    Ok(secs)
}

/// `--on-behalf-of NAME`: must fit in a gRPC ASCII metadata value, checked at
/// parse time so a bad name is a usage error rather than a failed call.
pub fn on_behalf_of(s: &str) -> Result<String, String> {
    let valid =
        !s.is_empty() && s.trim() == s && s.chars().all(|c| c.is_ascii_graphic() || c == ' ');
    if valid {
        Ok(s.to_string())
    } else {
        Err("must be non-empty printable ASCII without leading or trailing blanks".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const JAN31_2027_MS: i64 = 1_801_353_600_000;

    #[test]
    fn date_accepts_rfc3339_and_plain_dates() {
        assert_eq!(date_ms("2027-01-31T00:00:00Z"), Ok(JAN31_2027_MS));
        assert_eq!(date_ms("2027-01-31"), Ok(JAN31_2027_MS));
        assert_eq!(
            date_ms("2027-01-31T02:00:00.5+02:00"),
            Ok(JAN31_2027_MS + 500)
        );
        assert_eq!(date_ms(" 2027-01-31 "), Ok(JAN31_2027_MS));
    }

    #[test]
    fn date_rejects_bad_input_clearly() {
        for bad in [
            "",
            "tomorrow",
            "2027-13-01",
            "2027-02-30",
            "31/01/2027",
            "30d",
        ] {
            let err = date_ms(bad).unwrap_err();
            assert!(
                err.contains("RFC 3339") && err.contains("2027-01-31"),
                "{bad}: {err}"
            );
        }
        assert!(date_ms("1969-12-31").unwrap_err().contains("after 1970"));
    }

    #[test]
    fn since_accepts_absolute_times_and_durations_ago() {
        let now = datetime!(2027-01-31 12:00 UTC);
        assert_eq!(since_ms_at("2027-01-31", now), Ok(JAN31_2027_MS));
        assert_eq!(since_ms_at("2027-01-31T00:00:00Z", now), Ok(JAN31_2027_MS));
        assert_eq!(since_ms_at("12h", now), Ok(JAN31_2027_MS));
        assert_eq!(
            since_ms_at("30m", now),
            Ok(JAN31_2027_MS + 11 * 3_600_000 + 1_800_000)
        );
    }

    #[test]
    fn since_rejects_bad_input_clearly() {
        let now = datetime!(2027-01-31 12:00 UTC);
        let err = since_ms_at("yesterday", now).unwrap_err();
        assert!(err.contains("duration ago"), "{err}");
        assert!(since_ms_at("100000y", now).is_err());
    }

    #[test]
    fn durations_parse_with_humantime() {
        assert_eq!(duration("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert_eq!(duration("12h"), Ok(Duration::from_secs(12 * 3_600)));
        assert_eq!(duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(duration("0s").unwrap_err().contains("greater than zero"));
        assert!(duration("soon")
            .unwrap_err()
            .contains("expected a duration"));
        assert!(duration("").is_err());
    }

    #[test]
    fn expires_in_is_whole_seconds() {
        assert_eq!(expires_in_secs("30d"), Ok(2_592_000));
        assert!(expires_in_secs("500ms")
            .unwrap_err()
            .contains("at least 1s"));
        assert!(expires_in_secs("later").is_err());
    }

    #[test]
    fn on_behalf_of_must_be_a_valid_header_value() {
        assert_eq!(
            on_behalf_of("alice@example.org"),
            Ok("alice@example.org".into())
        );
        assert_eq!(on_behalf_of("Alice Admin"), Ok("Alice Admin".into()));
        for bad in ["", " alice", "al\nice", "élise"] {
            assert!(on_behalf_of(bad).is_err(), "{bad:?}");
        }
    }
}
