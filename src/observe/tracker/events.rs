//! Building wire events. Events are rare, so they may allocate (their strings are owned);
//! nothing here runs for an ordinary PUBLISH or PUBACK.

use crate::dissect::MqttRecord;
use crate::mqtt::PacketType;
use crate::mqtt::reason::is_failure_in;
use crate::observe::event::{Event, EventKind};

use super::conn::Conn;

/// An event about `rec`, carrying its time, frame, addresses and the connection's
/// client id and username when known.
pub fn event(rec: &MqttRecord<'_>, conn: Option<&Conn>, kind: EventKind) -> Event {
    let mut e = Event::new(rec.ts_ns, kind);
    e.client_addr = Some(rec.flow.client);
    e.broker_addr = Some(rec.flow.broker);
    e.frame = Some(rec.frame);
    if let Some(c) = conn {
        e.client_id = c.client_id_text();
        e.username = c.username.as_deref().map(String::from);
    }
    e
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// CONNACK refused? (3.x: any non-zero return code; 5: reason >= 0x80.)
pub fn connack_refused(code: u8, level: u8) -> bool {
    is_failure_in(PacketType::ConnAck, code, level)
}

/// A refusal about credentials or authorisation: 3.x return codes 4 (bad user name or
/// password) and 5 (not authorised); MQTT 5 0x86 (bad user name or password),
/// 0x87 (not authorised), 0x8C (bad authentication method).
pub fn is_auth_failure(code: u8, level: u8) -> bool {
    if level < 5 {
        matches!(code, 4 | 5)
    } else {
        matches!(code, 0x86 | 0x87 | 0x8C)
    }
}

/// The filter a shared subscription (`$share/<group>/<filter>`) applies to; other
/// filters unchanged. So `$share/g/#` is seen as the `#` it is.
fn unshare(f: &[u8]) -> &[u8] {
    match f.strip_prefix(b"$share/") {
        Some(rest) => match rest.iter().position(|&b| b == b'/') {
            Some(i) => rest.get(i + 1..).unwrap_or(&[]),
            None => rest,
        },
        None => f,
    }
}

/// Event kinds a subscription to `filter` raises: `#`-prefixed filters subscribe to
/// everything; `$SYS` filters read broker internals.
pub fn subscribe_alerts(filter: &[u8]) -> (bool, bool) {
    let f = unshare(filter);
    let all = f.first() == Some(&b'#');
    let sys = f == b"$SYS" || f.starts_with(b"$SYS/");
    (all, sys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_alerts() {
        assert_eq!(subscribe_alerts(b"#"), (true, false));
        assert_eq!(subscribe_alerts(b"$share/g1/#"), (true, false));
        assert_eq!(subscribe_alerts(b"a/#"), (false, false));
        assert_eq!(subscribe_alerts(b"+/#"), (false, false));
        assert_eq!(subscribe_alerts(b"$SYS/#"), (false, true));
        assert_eq!(subscribe_alerts(b"$SYS/broker/uptime"), (false, true));
        assert_eq!(subscribe_alerts(b"$SYSTEM"), (false, false));
        assert_eq!(subscribe_alerts(b"$share/g"), (false, false));
    }

    #[test]
    fn refusal_codes() {
        for c in 1..=5 {
            assert!(connack_refused(c, 4));
        }
        assert!(!connack_refused(0, 3));
        assert!(connack_refused(0x80, 5) && !connack_refused(0x7f, 5));
        assert!(is_auth_failure(4, 4) && is_auth_failure(5, 3) && !is_auth_failure(3, 4));
        assert!(is_auth_failure(0x86, 5) && is_auth_failure(0x87, 5));
        assert!(is_auth_failure(0x8C, 5) && !is_auth_failure(0x85, 5) && !is_auth_failure(5, 5));
    }
}
