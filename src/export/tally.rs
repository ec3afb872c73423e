//! Counts of events by the label values the metrics need (`reason`, `action`), which
//! `ObserverSnapshot` only has by kind. Fed by whoever drains the event queue; every
//! label set is a fixed list, so the tally is bounded whatever the events say.

use crate::observe::{Event, EventKind, EventSource};

/// `mqscope_auth_failures_total{reason}` values, from the CONNACK code (3.x return codes
/// 4/5, MQTT 5 reason codes) or EMQX's authentication result.
pub const AUTH_REASONS: [&str; 6] = [
    "bad_username_or_password",
    "not_authorized",
    "bad_authentication_method",
    "banned",
    "other",
    // Counted by the tracker but never seen as an event (the event queue overflowed
    // before the tally read it).
    "unknown",
];

/// `mqscope_acl_denials_total{action}` values.
pub const ACL_ACTIONS: [&str; 4] = ["publish", "subscribe", "all", "other"];

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventTally {
    /// By `AUTH_REASONS` index.
    pub auth: [u64; AUTH_REASONS.len()],
    /// Of those, learned on the wire (compared with the tracker's exact count).
    pub auth_wire: u64,
    /// By `ACL_ACTIONS` index.
    pub acl: [u64; ACL_ACTIONS.len()],
}

fn auth_reason(code: Option<u8>) -> usize {
    match code {
        // 3.x 4 and MQTT 5 0x86: bad user name or password.
        Some(4 | 0x86) => 0,
        // 3.x 5 and MQTT 5 0x87: not authorised.
        Some(5 | 0x87) => 1,
        Some(0x8C) => 2,
        Some(0x8A) => 3,
        _ => 4,
    }
}

fn acl_action(d: Option<&str>) -> usize {
    match d {
        Some("publish") => 0,
        Some("subscribe") => 1,
        Some("all") => 2,
        _ => 3,
    }
}

impl EventTally {
    pub fn observe(&mut self, e: &Event) {
        match e.kind {
            EventKind::AuthFailure => {
                self.auth[auth_reason(e.code)] += 1;
                if e.source == EventSource::Wire {
                    self.auth_wire += 1;
                }
            }
            EventKind::AclDenied => self.acl[acl_action(e.detail)] += 1,
            // On the wire only "not authorised" (0x87, MQTT 5) is an ACL decision; other
            // refusals (quota, topic name invalid, 3.1.1's generic SUBACK 0x80) are not.
            EventKind::PublishRefused if e.code == Some(0x87) => self.acl[0] += 1,
            EventKind::SubscribeRefused if e.code == Some(0x87) => self.acl[1] += 1,
            _ => {}
        }
    }

    /// Auth failures by reason, where `wire_total` is the tracker's exact count of
    /// auth-failure CONNACKs: any it counted that never reached the tally are `unknown`,
    /// so the sum stays exact.
    pub fn auth_by_reason(&self, wire_total: u64) -> [u64; AUTH_REASONS.len()] {
        let mut out = self.auth;
        out[5] += wire_total.saturating_sub(self.auth_wire);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: EventKind, code: Option<u8>, detail: Option<&'static str>) -> Event {
        let mut e = Event::new(0, kind);
        e.code = code;
        e.detail = detail;
        e
    }

    #[test]
    fn reasons_and_actions() {
        let mut t = EventTally::default();
        t.observe(&ev(EventKind::AuthFailure, Some(4), None));
        t.observe(&ev(EventKind::AuthFailure, Some(0x86), None));
        t.observe(&ev(EventKind::AuthFailure, Some(5), None));
        let mut emqx = ev(EventKind::AuthFailure, Some(0x8A), Some("banned"));
        emqx.source = EventSource::EmqxEvent;
        t.observe(&emqx);
        t.observe(&ev(EventKind::ConnectRefused, Some(4), None));
        t.observe(&ev(EventKind::PublishRefused, Some(0x87), None));
        t.observe(&ev(EventKind::PublishRefused, Some(0x97), None));
        t.observe(&ev(EventKind::SubscribeRefused, Some(0x80), None));
        t.observe(&ev(EventKind::SubscribeRefused, Some(0x87), None));
        t.observe(&ev(EventKind::AclDenied, Some(0x87), Some("subscribe")));
        t.observe(&ev(EventKind::AclDenied, Some(0x87), Some("all")));
        assert_eq!(t.auth, [2, 1, 0, 1, 0, 0]);
        assert_eq!(t.auth_wire, 3);
        assert_eq!(t.acl, [1, 2, 1, 0]);
        // Tracker counted 5 on the wire, the tally saw 3: 2 unknown.
        assert_eq!(t.auth_by_reason(5), [2, 1, 0, 1, 0, 2]);
        assert_eq!(t.auth_by_reason(1), [2, 1, 0, 1, 0, 0]);
    }
}
