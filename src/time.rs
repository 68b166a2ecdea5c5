//! Unix times as RFC 3339, without a date library.

/// Unix seconds of `fixed` (`--now`), else of the clock.
pub fn now_or(fixed: Option<i64>) -> i64 {
    fixed.unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
    })
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (days to civil date: H. Hinnant's algorithm).
pub fn rfc3339(secs: u64) -> String {
    let (days, rest) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", rest / 3600, rest % 3600 / 60, rest % 60)
}

#[derive(Debug, thiserror::Error)]
#[error("expected an RFC 3339 time like 2026-11-29T18:00:00Z, got {0:?}")]
pub struct TimeError(String);

/// Unix seconds of an RFC 3339 time (`Z` or a `±HH:MM` offset; fractions
/// of a second are dropped).
pub fn parse_rfc3339(s: &str) -> Result<i64, TimeError> {
    let bad = || TimeError(s.to_string());
    let num = |t: &str| t.parse::<i64>().map_err(|_| bad());
    let (date, rest) = s.split_once(['T', 't', ' ']).ok_or_else(bad)?;
    let mut d = date.splitn(3, '-');
    let (y, m, day) =
        (num(d.next().ok_or_else(bad)?)?, num(d.next().ok_or_else(bad)?)?, num(d.next().ok_or_else(bad)?)?);
    let (clock, offset) = match rest.find(['Z', 'z', '+', '-']) {
        Some(i) => (&rest[..i], &rest[i..]),
        None => return Err(bad()),
    };
    let clock = clock.split('.').next().unwrap_or(clock);
    let mut c = clock.splitn(3, ':');
    let (hh, mm, ss) =
        (num(c.next().ok_or_else(bad)?)?, num(c.next().ok_or_else(bad)?)?, num(c.next().ok_or_else(bad)?)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return Err(bad());
    }
    let offset = match offset {
        "Z" | "z" => 0,
        o => {
            let sign = if o.starts_with('-') { -1 } else { 1 };
            let (oh, om) = o[1..].split_once(':').ok_or_else(bad)?;
            sign * (num(oh)? * 3600 + num(om)? * 60)
        }
    };
    // Days from civil date (H. Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Ok(days * 86_400 + hh * 3600 + mm * 60 + ss - offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_round_trips() {
        for secs in [0u64, 951_782_400, 1_700_000_100, 1_795_900_000] {
            assert_eq!(parse_rfc3339(&rfc3339(secs)).unwrap(), secs as i64);
        }
        assert_eq!(parse_rfc3339("2026-11-28T23:06:40.5+02:00").unwrap(), 1_795_900_000);
        for bad in ["yesterday", "2026-13-01T00:00:00Z", "2026-11-28T21:06:40"] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_times_as_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_795_900_000), "2026-11-28T21:06:40Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
