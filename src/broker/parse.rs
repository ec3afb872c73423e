//! Small payload parsers shared by the `$SYS` readers. Payloads are broker-written text
//! but still input: every parser returns `None` rather than panic or guess.

/// A decimal integer, surrounding ASCII whitespace allowed.
pub(crate) fn parse_u64(payload: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(payload).ok()?.trim();
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A finite decimal number (Mosquitto load averages: `8.85`).
pub(crate) fn parse_f64(payload: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(payload).ok()?.trim();
    // Only digits, one dot and a sign: `f64::from_str` also takes "inf" and "NaN".
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return None;
    }
    let v: f64 = s.parse().ok()?;
    v.is_finite().then_some(v)
}

/// A duration written as `<n> <unit>` parts separated by commas, units day(s), hour(s),
/// minute(s), second(s): Mosquitto's `6 seconds`, EMQX 4's `1 days, 2 hours, 3 minutes,
/// 4 seconds`. Returns milliseconds.
pub(crate) fn parse_worded_duration_ms(payload: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(payload).ok()?.trim();
    if s.is_empty() {
        return None;
    }
    let mut total_s: u64 = 0;
    for part in s.split(',') {
        let mut words = part.split_ascii_whitespace();
        let n: u64 = words.next()?.parse().ok()?;
        let unit = words.next()?;
        if words.next().is_some() {
            return None;
        }
        let mult = match unit {
            "second" | "seconds" => 1,
            "minute" | "minutes" => 60,
            "hour" | "hours" => 3600,
            "day" | "days" => 86_400,
            _ => return None,
        };
        total_s = total_s.checked_add(n.checked_mul(mult)?)?;
    }
    total_s.checked_mul(1000)
}

/// UTF-8 text, trimmed, cut to at most `max` bytes on a character boundary.
pub(crate) fn bounded_text(payload: &[u8], max: usize) -> Option<String> {
    let s = std::str::from_utf8(payload).ok()?.trim();
    Some(truncate(s, max).to_owned())
}

pub(crate) fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers() {
        assert_eq!(parse_u64(b"54"), Some(54));
        assert_eq!(parse_u64(b" 7\n"), Some(7));
        assert_eq!(parse_u64(b"-1"), None);
        assert_eq!(parse_u64(b"1.5"), None);
        assert_eq!(parse_u64(b""), None);
        assert_eq!(parse_u64(b"99999999999999999999999"), None);
        assert_eq!(parse_u64(&[0xff, 0x31]), None);
    }

    #[test]
    fn floats() {
        assert_eq!(parse_f64(b"8.85"), Some(8.85));
        assert_eq!(parse_f64(b"0.00"), Some(0.0));
        assert_eq!(parse_f64(b"inf"), None);
        assert_eq!(parse_f64(b"NaN"), None);
        assert_eq!(parse_f64(b"1e400"), None);
    }

    #[test]
    fn worded_durations() {
        assert_eq!(parse_worded_duration_ms(b"6 seconds"), Some(6_000));
        assert_eq!(parse_worded_duration_ms(b"1 second"), Some(1_000));
        assert_eq!(
            parse_worded_duration_ms(b"1 days, 2 hours, 3 minutes, 4 seconds"),
            Some((86_400 + 7_200 + 180 + 4) * 1000)
        );
        assert_eq!(parse_worded_duration_ms(b"6"), None);
        assert_eq!(parse_worded_duration_ms(b"6 fortnights"), None);
        assert_eq!(parse_worded_duration_ms(b"18446744073709551615 days"), None);
    }

    #[test]
    fn truncation_keeps_char_boundaries() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("abc", 5), "abc");
    }
}
