//! Relative dates in `create`/`update` values: `<delta>|<format>`, computed at invocation time.
//!
//! A value is a relative date when it has exactly one `|` and the part after it (trimmed) is
//! `datetime` (`%Y-%m-%dT%H:%M:%SZ`), `date` (`%Y-%m-%d`) or `time` (`%H:%M:%S`). The part
//! before it is empty (now) or a whole number with an optional sign followed by a unit: `w`
//! weeks, `d` days, `h` hours, `m` minutes (case-insensitive), e.g. `2h|datetime`,
//! `-1d|date`, `|time`. Times are UTC. Any other value, including text with a pipe that does
//! not end in one of the three formats, is sent as it is.

use chrono::{DateTime, Duration, Utc};

/// The longest number of units accepted (nine digits keeps every product in range).
const MAX_DELTA_DIGITS: usize = 9;

/// Resolves `value` against `now`: `Ok(None)` when it is not a relative date, `Ok(Some(text))`
/// when it is, `Err(reason)` when it looks like one but is malformed.
pub fn resolve(value: &str, now: DateTime<Utc>) -> Result<Option<String>, String> {
    let Some((delta, format)) = value.split_once('|') else {
        return Ok(None);
    };
    if format.contains('|') {
        return Ok(None);
    }
    let pattern = match format.trim() {
        "datetime" => "%Y-%m-%dT%H:%M:%SZ",
        "date" => "%Y-%m-%d",
        "time" => "%H:%M:%S",
        _ => return Ok(None),
    };
    let offset =
        parse_delta(delta.trim()).map_err(|reason| format!("relative date {value:?}: {reason}"))?;
    let moment = now.checked_add_signed(offset).ok_or_else(|| {
        format!("relative date {value:?}: the result is outside the supported range")
    })?;
    Ok(Some(moment.format(pattern).to_string()))
}

fn parse_delta(delta: &str) -> Result<Duration, String> {
    if delta.is_empty() {
        return Ok(Duration::zero());
    }
    let unit_hint = "expected a whole number and a unit w, d, h or m, e.g. 2h or -1d";
    let Some(unit) = delta.chars().last() else {
        return Ok(Duration::zero());
    };
    let number = &delta[..delta.len() - unit.len_utf8()];
    let (negative, digits) = match number.as_bytes().first() {
        Some(b'-') => (true, &number[1..]),
        Some(b'+') => (false, &number[1..]),
        _ => (false, number),
    };
    if digits.is_empty()
        || digits.len() > MAX_DELTA_DIGITS
        || !digits.bytes().all(|byte| byte.is_ascii_digit())
    {
        return Err(unit_hint.into());
    }
    let amount: i64 = digits.parse().map_err(|_| unit_hint.to_owned())?;
    let amount = if negative { -amount } else { amount };
    let duration = match unit.to_ascii_lowercase() {
        'w' => Duration::try_weeks(amount),
        'd' => Duration::try_days(amount),
        'h' => Duration::try_hours(amount),
        'm' => Duration::try_minutes(amount),
        _ => return Err(unit_hint.into()),
    };
    duration.ok_or_else(|| "the offset is too large".to_owned())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn fixed_now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 2, 27, 22, 30, 15)
            .single()
            .unwrap_or_default()
    }

    #[test]
    fn relative_dates_are_computed_from_the_injected_clock() {
        let cases = [
            ("2h|datetime", Some("2026-02-28T00:30:15Z")),
            ("-1d|date", Some("2026-02-26")),
            ("|time", Some("22:30:15")),
            ("1w|date", Some("2026-03-06")),
            ("+90m|time", Some("00:00:15")),
            ("3D|date", Some("2026-03-02")),
            (" 2h | datetime ", Some("2026-02-28T00:30:15Z")),
            ("0d|datetime", Some("2026-02-27T22:30:15Z")),
            ("plain text", None),
            ("a|b", None),
            ("Order 12 | urgent", None),
            ("1d|date|x", None),
            ("2h|Date", None),
            ("", None),
        ];
        for (value, expected) in cases {
            assert_eq!(
                resolve(value, fixed_now()),
                Ok(expected.map(str::to_owned)),
                "{value}"
            );
        }
    }

    #[test]
    fn malformed_relative_dates_are_rejected() {
        let cases = [
            "2x|date",
            "abc|datetime",
            "h|time",
            "1.5h|date",
            "--1d|date",
            "1 d|date",
            "9999999999w|date",
            "999999999w|date",
            "2|date",
        ];
        for value in cases {
            assert!(resolve(value, fixed_now()).is_err(), "{value}");
        }
    }
}
