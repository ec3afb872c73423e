//! Operator topic templates: MQTT topic filters (`+` one whole level, `#` the rest, only
//! last), validated once at start and matched against topic bytes without allocating.

/// One level of a parsed filter.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Level {
    Lit(Box<[u8]>),
    Plus,
    Hash,
}

/// A validated filter.
#[derive(Clone, Debug)]
pub struct Filter {
    text: Box<str>,
    levels: Box<[Level]>,
}

/// Why a template is not a valid MQTT topic filter.
pub fn check(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        return Err("empty filter");
    }
    if text.len() > 65_535 {
        return Err("longer than 65535 bytes");
    }
    if text.contains('\0') {
        return Err("contains U+0000");
    }
    let n = text.split('/').count();
    for (i, level) in text.split('/').enumerate() {
        if level.contains('+') && level != "+" {
            return Err("'+' must occupy a whole level");
        }
        if level.contains('#') && (level != "#" || i + 1 != n) {
            return Err("'#' must be a whole level and the last one");
        }
    }
    Ok(())
}

impl Filter {
    /// Parses a filter; `check` must have accepted it.
    pub fn parse(text: &str) -> Result<Filter, &'static str> {
        check(text)?;
        let levels = text
            .split('/')
            .map(|l| match l {
                "+" => Level::Plus,
                "#" => Level::Hash,
                lit => Level::Lit(lit.as_bytes().into()),
            })
            .collect();
        Ok(Filter {
            text: text.into(),
            levels,
        })
    }

    pub fn text(&self) -> &str {
        &self.text
    }

    /// MQTT matching (spec 4.7): `+` matches one level (possibly empty), `#` matches the
    /// parent level and any number of child levels, and a topic starting with `$` is not
    /// matched by a filter starting with a wildcard.
    pub fn matches(&self, topic: &[u8]) -> bool {
        if topic.first() == Some(&b'$')
            && matches!(self.levels.first(), Some(Level::Plus | Level::Hash))
        {
            return false;
        }
        let mut parts = topic.split(|&b| b == b'/');
        for level in self.levels.iter() {
            match level {
                Level::Hash => return true,
                Level::Plus => {
                    if parts.next().is_none() {
                        return false;
                    }
                }
                Level::Lit(lit) => match parts.next() {
                    Some(p) if p == &lit[..] => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(filter: &str, topic: &str) -> bool {
        Filter::parse(filter).unwrap().matches(topic.as_bytes())
    }

    #[test]
    fn validation_follows_the_spec() {
        for ok in [
            "#",
            "+",
            "a/+/c",
            "a/#",
            "+/+/+/line/+/#",
            "/",
            "a//b",
            "$SYS/#",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
        for bad in ["", "a+/b", "a/b+", "a/#/b", "a#", "#/a", "a/b#", "a\0b"] {
            assert!(check(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn matching_examples_from_the_spec() {
        // Spec 4.7.1.2 and 4.7.1.3 examples.
        assert!(m("sport/tennis/player1/#", "sport/tennis/player1"));
        assert!(m("sport/tennis/player1/#", "sport/tennis/player1/ranking"));
        assert!(m(
            "sport/tennis/player1/#",
            "sport/tennis/player1/score/wimbledon"
        ));
        assert!(m("sport/#", "sport"));
        assert!(m("sport/tennis/+", "sport/tennis/player1"));
        assert!(!m("sport/tennis/+", "sport/tennis/player1/ranking"));
        assert!(!m("sport/+", "sport"));
        assert!(m("sport/+", "sport/"));
        assert!(m("+/+", "/finance"));
        assert!(m("/+", "/finance"));
        assert!(!m("+", "/finance"));
        // 4.7.2: $-topics are not matched by leading wildcards.
        assert!(!m("#", "$SYS/broker"));
        assert!(!m("+/monitor/Clients", "$SYS/monitor/Clients"));
        assert!(m("$SYS/#", "$SYS/monitor/Clients"));
        assert!(m("$SYS/monitor/+", "$SYS/monitor/Clients"));
        assert!(m("+/+/+/line/+/#", "acme/p1/a2/line/c4/press/temp"));
        assert!(!m("+/+/+/line/+/#", "acme/p1/a2/cell/c4/press/temp"));
        assert!(!m("a/b", "a/b/c"));
        assert!(!m("a/b/c", "a/b"));
    }
}
