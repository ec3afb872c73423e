//! Automatic templates: topic levels that look like identifiers become `+`, so the many
//! topics of a device fleet (`site/dev-<uuid>/temp`) share one group once exact topics
//! are over their cap.
//!
//! A level is an identifier when it is (case-insensitive hex):
//! - all decimal digits (`17`, `2024`);
//! - a UUID (`8-4-4-4-12` hex) or a MAC (`aa:bb:cc:dd:ee:ff`, `aa-bb-...`, `aabb.ccdd.eeff`);
//! - a hex string of 6 or more characters with at least one digit (`00a1b2`, 12-hex MACs,
//!   32-hex UUIDs, hashes); the digit keeps words made of a-f (`facade`) out;
//! - a name ending in digits (`plant1`, `device1234`, `VIN1HGCM82633A004352`);
//! - `<name><sep><id>` with `sep` one of `-` `_` `:` `@` and an id part by the rules above
//!   (`press-17`, `dev-<uuid>`, `sensor_00a1b2`);
//! - a long token (12+ characters of `[A-Za-z0-9_-]`) with at least two digits (random ids
//!   such as `a8Xk29LmQ0bZ`);
//! - anything holding control characters (not a name anyone chose).
//!
//! This is deliberately aggressive: templates only apply to topics beyond the exact cap,
//! where the risk is too many groups, not too few. `acme/plant1/area2/line-3/cell4/press-17/
//! temperature` becomes `acme/+/+/+/+/+/temperature`: the depth and the measurement stay,
//! the instances go. Operators who want, say, one group per plant configure a template
//! (`acme/plant1/#`), which is tried first. Words without digits (`temperature`, `line`,
//! `$SYS`) and empty levels are kept.

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

fn all_digits(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(u8::is_ascii_digit)
}

fn hex_with_digit(s: &[u8], min_len: usize) -> bool {
    s.len() >= min_len && s.iter().all(|&b| is_hex(b)) && s.iter().any(u8::is_ascii_digit)
}

/// `groups` hex groups of the given lengths separated by `sep`.
fn grouped_hex(s: &[u8], sep: u8, lens: &[usize]) -> bool {
    let mut parts = s.split(|&b| b == sep);
    for &len in lens {
        match parts.next() {
            Some(p) if p.len() == len && p.iter().all(|&b| is_hex(b)) => {}
            _ => return false,
        }
    }
    parts.next().is_none()
}

/// A pure identifier, with no name prefix.
fn is_bare_id(s: &[u8]) -> bool {
    all_digits(s)
        || hex_with_digit(s, 6)
        || grouped_hex(s, b'-', &[8, 4, 4, 4, 12])
        || grouped_hex(s, b':', &[2; 6])
        || grouped_hex(s, b'-', &[2; 6])
        || grouped_hex(s, b'.', &[4; 3])
}

/// Whether a topic level should be replaced by `+` (see the module doc).
pub fn is_identifier(level: &[u8]) -> bool {
    if level.is_empty() {
        return false;
    }
    if level.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return true;
    }
    if is_bare_id(level) {
        return true;
    }
    let token_like = level
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    // Name ending in digits: letters (or anything) then trailing decimal digits.
    if token_like && level.last().is_some_and(u8::is_ascii_digit) {
        return true;
    }
    if token_like && level.len() >= 12 && level.iter().filter(|b| b.is_ascii_digit()).count() >= 2 {
        return true;
    }
    // <name><sep><id>: try every separator position, so ids that contain the separator
    // themselves (a UUID after `dev-`) are found too.
    level.iter().enumerate().any(|(i, &b)| {
        matches!(b, b'-' | b'_' | b':' | b'@') && i > 0 && {
            let rest = level.get(i + 1..).unwrap_or(&[]);
            is_bare_id(rest)
        }
    })
}

/// Writes the automatic template of `topic` into `out` (cleared first). Returns whether
/// any level was replaced.
pub fn auto_template(topic: &[u8], out: &mut Vec<u8>) -> bool {
    out.clear();
    let mut replaced = false;
    for (i, level) in topic.split(|&b| b == b'/').enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        if is_identifier(level) {
            out.push(b'+');
            replaced = true;
        } else {
            out.extend_from_slice(level);
        }
    }
    replaced
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(topic: &str) -> String {
        let mut out = Vec::new();
        auto_template(topic.as_bytes(), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn isa95_hierarchy() {
        assert_eq!(
            t("acme/plant1/area2/line-3/cell4/press-17/temperature"),
            "acme/+/+/+/+/+/temperature"
        );
    }

    #[test]
    fn fleet_ids() {
        assert_eq!(
            t("site/dev-550e8400-e29b-41d4-a716-446655440000/temp"),
            "site/+/temp"
        );
        assert_eq!(t("d/550E8400-E29B-41D4-A716-446655440000"), "d/+");
        assert_eq!(t("d/550e8400e29b41d4a716446655440000/x"), "d/+/x");
        assert_eq!(t("mac/00:1a:2b:3c:4d:5e/rssi"), "mac/+/rssi");
        assert_eq!(t("mac/00-1A-2B-3C-4D-5E/rssi"), "mac/+/rssi");
        assert_eq!(t("mac/001a2b3c4d5e/rssi"), "mac/+/rssi");
        assert_eq!(t("mac/001a.2b3c.4d5e/rssi"), "mac/+/rssi");
        assert_eq!(t("v/VIN1HGCM82633A004352/gps"), "v/+/gps");
        assert_eq!(t("u/a8Xk29LmQ0bZ/state"), "u/+/state");
        assert_eq!(t("sensors/42/reading"), "sensors/+/reading");
        assert_eq!(t("s/sensor_00a1b2/x"), "s/+/x");
        assert_eq!(t("user@7/inbox"), "+/inbox");
        assert_eq!(t("bad/\u{1}\u{2}/x"), "bad/+/x");
    }

    #[test]
    fn names_are_kept() {
        for keep in [
            "temperature",
            "line",
            "$SYS",
            "facade",
            "cafe",
            "1min",
            "spBv1.0",
            "status-ok",
            "temperature_sensor_reading",
            "",
            "温度",
        ] {
            assert!(!is_identifier(keep.as_bytes()), "{keep:?}");
        }
        assert_eq!(
            t("$SYS/broker/load/bytes/received/1min"),
            "$SYS/broker/load/bytes/received/1min"
        );
        assert_eq!(t("a//b/"), "a//b/");
        let mut out = Vec::new();
        assert!(!auto_template(b"home/kitchen/light", &mut out));
        assert!(auto_template(b"home/kitchen/light2", &mut out));
    }
}
