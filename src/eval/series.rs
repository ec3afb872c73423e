//! Univariate series as CSV: `timestamp,value` rows, timestamps either
//! `YYYY-MM-DD HH:MM:SS[.fraction]` (NAB's form, read as UTC) or epoch seconds.
//!
//! Own parser rather than a date crate: the formats are fixed and small, and every
//! malformed row must become an error that names its line.

use std::fmt;

/// One row of a series; the raw fields are kept so output can echo the input exactly.
#[derive(Clone, Debug, PartialEq)]
pub struct SeriesRow {
    pub raw_ts: String,
    pub raw_value: String,
    pub ts_ns: u64,
    pub value: f64,
}

/// A malformed row, with the 1-based line number it was found on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeriesError {
    pub line: usize,
    pub msg: String,
}

impl fmt::Display for SeriesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {}", self.line, self.msg)
    }
}

impl std::error::Error for SeriesError {}

/// Parses a whole CSV text. A header is optional: if present it must name `timestamp`
/// and `value` columns (other columns are ignored); without one, columns 1 and 2 are used.
/// Blank lines are skipped. Timestamps may repeat or step back (real NAB files do, e.g.
/// around a clock change); rows stay in file order, which is the order a stream sees.
pub fn parse_series(text: &str) -> Result<Vec<SeriesRow>, SeriesError> {
    let mut rows = Vec::new();
    let mut cols: Option<(usize, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if cols.is_none() {
            let lower: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
            let t = lower.iter().position(|f| f == "timestamp");
            let v = lower.iter().position(|f| f == "value");
            match (t, v) {
                (Some(t), Some(v)) if t != v => {
                    cols = Some((t, v));
                    continue;
                }
                _ if parse_timestamp(fields.first().copied().unwrap_or("")).is_ok() => {
                    cols = Some((0, 1));
                }
                _ => {
                    return Err(SeriesError {
                        line: lineno,
                        msg: "expected a header naming `timestamp` and `value` columns, or a data row"
                            .into(),
                    });
                }
            }
        }
        let (tc, vc) = cols.unwrap_or((0, 1));
        let (Some(ts), Some(v)) = (fields.get(tc), fields.get(vc)) else {
            return Err(SeriesError {
                line: lineno,
                msg: format!("expected at least {} columns", tc.max(vc) + 1),
            });
        };
        let ts_ns = parse_timestamp(ts).map_err(|m| SeriesError {
            line: lineno,
            msg: format!("bad timestamp {ts:?}: {m}"),
        })?;
        let value: f64 = v.parse().map_err(|_| SeriesError {
            line: lineno,
            msg: format!("bad value {v:?}: not a number"),
        })?;
        if !value.is_finite() {
            return Err(SeriesError {
                line: lineno,
                msg: format!("bad value {v:?}: not finite"),
            });
        }
        rows.push(SeriesRow {
            raw_ts: (*ts).to_string(),
            raw_value: (*v).to_string(),
            ts_ns,
            value,
        });
    }
    Ok(rows)
}

/// `YYYY-MM-DD HH:MM:SS[.f]` (also with `T`) as UTC, or epoch seconds (integer or
/// decimal), to nanoseconds since the Unix epoch. Times before 1970 are rejected
/// because the detector's clock is unsigned.
pub fn parse_timestamp(s: &str) -> Result<u64, &'static str> {
    let s = s.trim();
    if s.len() >= 10 && s.as_bytes().get(4) == Some(&b'-') {
        parse_datetime(s)
    } else {
        parse_epoch(s)
    }
}

fn parse_epoch(s: &str) -> Result<u64, &'static str> {
    let (int, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return Err("not a date-time nor epoch seconds");
    }
    let secs: u64 = int.parse().map_err(|_| "epoch seconds out of range")?;
    let nanos = parse_fraction(frac)?;
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .ok_or("epoch seconds out of range")
}

/// Digits after a decimal point as nanoseconds (extra digits beyond 9 are truncated).
fn parse_fraction(frac: &str) -> Result<u64, &'static str> {
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err("bad fractional seconds");
    }
    let mut nanos = 0u64;
    for k in 0..9 {
        let d = frac.as_bytes().get(k).map_or(0, |b| u64::from(b - b'0'));
        nanos = nanos * 10 + d;
    }
    Ok(nanos)
}

fn parse_datetime(s: &str) -> Result<u64, &'static str> {
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Result<i64, &'static str> {
        let part = s.get(from..from + len).ok_or("truncated date-time")?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return Err("expected YYYY-MM-DD HH:MM:SS");
        }
        part.parse::<i64>()
            .map_err(|_| "expected YYYY-MM-DD HH:MM:SS")
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(7) != Some(&b'-') {
        return Err("expected YYYY-MM-DD");
    }
    let (mut h, mut mi, mut sec, mut nanos) = (0, 0, 0, 0u64);
    if b.len() > 10 {
        if !matches!(b.get(10), Some(b' ' | b'T')) || b.get(13) != Some(&b':') {
            return Err("expected YYYY-MM-DD HH:MM:SS");
        }
        h = num(11, 2)?;
        mi = num(14, 2)?;
        if b.len() > 16 {
            if b.get(16) != Some(&b':') {
                return Err("expected HH:MM:SS");
            }
            sec = num(17, 2)?;
            match b.get(19) {
                None => {}
                Some(b'.') => nanos = parse_fraction(s.get(20..).unwrap_or(""))?,
                Some(_) => return Err("trailing characters after the time"),
            }
        }
    }
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return Err("no such date");
    }
    if h > 23 || mi > 59 || sec > 60 {
        return Err("no such time");
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    if secs < 0 {
        return Err("before 1970");
    }
    (secs as u64)
        .checked_mul(1_000_000_000)
        .map(|n| n + nanos)
        .ok_or("date out of range")
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm: years
/// are counted from March so the leap day falls at the end of the cycle).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_match_known_epochs() {
        // Values from `date -u -d '...' +%s`.
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Ok(0));
        assert_eq!(
            parse_timestamp("2014-04-10 07:15:00"),
            Ok(1_397_114_100 * 1_000_000_000)
        );
        assert_eq!(
            parse_timestamp("2000-02-29 23:59:59.5"),
            Ok(951_868_799 * 1_000_000_000 + 500_000_000)
        );
        assert_eq!(
            parse_timestamp("2014-04-10 07:15:00.000000"),
            parse_timestamp("2014-04-10T07:15:00")
        );
        assert_eq!(parse_timestamp("1397114100"), Ok(1_397_114_100_000_000_000));
        assert_eq!(parse_timestamp("12.25"), Ok(12_250_000_000));
    }

    #[test]
    fn bad_timestamps_are_errors() {
        for s in [
            "2014-02-30 00:00:00",
            "2014-13-01 00:00:00",
            "2014-01-01 24:00:00",
            "1969-12-31 23:59:59",
            "2014-01-01 00:00:00x",
            "abc",
            "-5",
            "",
            "2014-01-0a",
        ] {
            assert!(parse_timestamp(s).is_err(), "{s:?}");
        }
    }

    #[test]
    fn csv_with_header_and_errors_with_line_numbers() {
        let ok =
            parse_series("timestamp,value\n2014-01-01 00:00:00,1.5\n\n1388534700,2\n").unwrap();
        assert_eq!(ok.len(), 2);
        assert_eq!(ok[1].value, 2.0);
        assert_eq!(ok[1].ts_ns, 1_388_534_700_000_000_000);
        let e = parse_series("timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,x\n")
            .unwrap_err();
        assert_eq!(e.line, 3);
        let back = parse_series("value,timestamp\n3,2014-01-01 00:00:00\n2,2013-01-01 00:00:00\n")
            .unwrap();
        assert_eq!(back[1].value, 2.0);
        let e = parse_series("value,timestamp\n3,2014-01-01 00:00:00\n2,2013-01-01 0:00:00\n")
            .unwrap_err();
        assert_eq!(e.line, 3);
        let e = parse_series("hello,world\n").unwrap_err();
        assert_eq!(e.line, 1);
        let e = parse_series("1,2\n3\n").unwrap_err();
        assert_eq!(e.line, 2);
    }
}
