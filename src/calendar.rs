//! Calendar arithmetic on ISO dates (`YYYY-MM-DD`), proleptic Gregorian, without time zones:
//! enough for the demo generator, for telling the model today's date and for timestamps.

use std::time::{SystemTime, UNIX_EPOCH};

/// Days since 1970-01-01 for an ISO date; `None` when it is not a valid `YYYY-MM-DD`.
pub fn day_number(iso: &str) -> Option<i64> {
    let mut parts = iso.split('-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

/// ISO date for a day number (inverse of `day_number`).
pub fn iso_date(day: i64) -> String {
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Today's date (UTC).
pub fn today() -> String {
    iso_date((unix_seconds() / 86_400) as i64)
}

/// The time now as an ISO 8601 timestamp in UTC, e.g. `2026-11-27T10:15:00Z`.
pub fn now() -> String {
    let secs = unix_seconds();
    let of_day = secs % 86_400;
    format!(
        "{}T{:02}:{:02}:{:02}Z",
        iso_date((secs / 86_400) as i64),
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

fn unix_seconds() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        for iso in ["1970-01-01", "2024-02-29", "2026-06-01", "2026-10-31", "2000-12-31"] {
            assert_eq!(day_number(iso).map(iso_date).as_deref(), Some(iso));
        }
        assert_eq!(day_number("1970-01-02"), Some(1));
        assert_eq!(day_number("2026-13-01"), None);
        assert_eq!(day_number("yesterday"), None);
    }
}
