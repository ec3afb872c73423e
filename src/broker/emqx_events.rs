//! EMQX rule-engine events, republished by the rule in `deploy/emqx/` to a topic mqscope
//! subscribes to, turned into [`Event`]s of the same model as the wire events. They see
//! what capture cannot: authorisation and authentication outcomes on TLS listeners, and
//! messages the broker dropped.
//!
//! Input: the JSON of EMQX 5's event columns (`SELECT *` of the six events below), as
//! documented in "Data Sources and Fields" (rule-sql-events-and-fields) of the EMQX docs.
//! The event is named by the `event` column (`client.check_authz_complete`, ...), which
//! `SELECT *` always carries; when a hand-written SQL left it out, the topic's last level
//! is tried (`client_check_authz_complete`, `check_authz_complete`, or the dotted name).
//!
//! | event | becomes |
//! |---|---|
//! | `client.check_authz_complete`, `result = deny` | `AclDenied` (`allow` is counted only) |
//! | `client.check_authn_complete`, `reason_code != success` | `AuthFailure` |
//! | `client.disconnected`, `reason` `takenover`/`discarded` | `ClientTakeover` |
//! | `client.disconnected`, other reason but `normal` | `Disconnect` (detail = reason) |
//! | `client.connected` | counted only |
//! | `message.dropped` | `MessageDropped` (detail = reason) |
//! | `delivery.dropped` | `DeliveryDropped` (detail = reason) |
//!
//! Message payloads carried by the drop events are never read or kept.

use std::net::{IpAddr, SocketAddr};

use serde::{Deserialize, Serialize};

use crate::observe::{Event, EventKind, EventSource};

use super::parse::truncate;

/// Largest event JSON accepted: the drop events carry the dropped message's payload, and
/// one huge message must not cost a huge parse.
pub const MAX_EVENT_JSON: usize = 256 * 1024;
/// Longest client id, username or topic kept in an event.
const MAX_FIELD: usize = 512;

/// The six EMQX events understood.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EmqxEventType {
    CheckAuthzComplete,
    CheckAuthnComplete,
    ClientConnected,
    ClientDisconnected,
    MessageDropped,
    DeliveryDropped,
}

impl EmqxEventType {
    /// From the `event` column or a topic level, in any of EMQX's spellings: the column
    /// (`client.check_authz_complete`), the legacy event topic (`client_check_authz_complete`)
    /// or the last level of 5.10's namespaced topic (`auth/check_authz_complete`).
    pub fn from_name(name: &str) -> Option<EmqxEventType> {
        use EmqxEventType::*;
        Some(match name {
            "client.check_authz_complete"
            | "client_check_authz_complete"
            | "check_authz_complete" => CheckAuthzComplete,
            "client.check_authn_complete"
            | "client_check_authn_complete"
            | "check_authn_complete" => CheckAuthnComplete,
            "client.connected" | "client_connected" | "connected" => ClientConnected,
            "client.disconnected" | "client_disconnected" | "disconnected" => ClientDisconnected,
            "message.dropped" | "message_dropped" | "dropped" => MessageDropped,
            "delivery.dropped" | "delivery_dropped" => DeliveryDropped,
            _ => return None,
        })
    }
}

/// Why a message did not become an event (or a counted non-event).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventDrop {
    TooLarge,
    BadJson,
    /// Valid JSON, but not an object.
    NotObject,
    /// Neither the `event` column nor the topic names one of the six events.
    UnknownEvent,
    /// A field the event needs is missing or of the wrong type (e.g. authz without
    /// `result`).
    MissingField,
}

/// Fields read from any of the six events; everything else (payload, properties) is
/// skipped by serde without being kept.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Columns {
    event: Option<String>,
    clientid: Option<String>,
    username: Option<String>,
    peerhost: Option<String>,
    peername: Option<String>,
    topic: Option<String>,
    action: Option<String>,
    result: Option<String>,
    reason: Option<String>,
    reason_code: Option<String>,
    timestamp: Option<u64>,
}

/// Accepts strings; EMQX writes `undefined` for absent usernames and `null` is possible.
fn text(v: &Option<String>) -> Option<String> {
    match v.as_deref() {
        None | Some("") | Some("undefined") => None,
        Some(s) => Some(truncate(s, MAX_FIELD).to_owned()),
    }
}

/// The client address: `peername` is `ip:port`; `peerhost` is the IP alone, given with
/// port 0 (meaning "port unknown") because the event model holds a socket address.
fn client_addr(c: &Columns) -> Option<SocketAddr> {
    if let Some(sa) = c
        .peername
        .as_deref()
        .and_then(|p| p.parse::<SocketAddr>().ok())
    {
        return Some(sa);
    }
    let ip: IpAddr = c.peerhost.as_deref()?.parse().ok()?;
    Some(SocketAddr::new(ip, 0))
}

/// Parses one republished event. `Ok(None)`: understood, nothing worth an event (an
/// allowed authorisation, a successful login, a normal disconnect, a connect).
pub fn parse_event(topic: &str, payload: &[u8], now_ns: u64) -> Result<Option<Event>, EventDrop> {
    if payload.len() > MAX_EVENT_JSON {
        return Err(EventDrop::TooLarge);
    }
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|_| EventDrop::BadJson)?;
    if !value.is_object() {
        return Err(EventDrop::NotObject);
    }
    // Field types EMQX documents; a mistyped one (a number where text belongs) is a
    // malformed event, not a reason to guess.
    let c: Columns = serde_json::from_value(value).map_err(|_| EventDrop::MissingField)?;
    let ty = c
        .event
        .as_deref()
        .and_then(EmqxEventType::from_name)
        .or_else(|| topic.rsplit('/').next().and_then(EmqxEventType::from_name))
        .ok_or(EventDrop::UnknownEvent)?;

    let ts_ns = c
        .timestamp
        .and_then(|ms| ms.checked_mul(1_000_000))
        .unwrap_or(now_ns);
    let mut e = Event::new(ts_ns, EventKind::AclDenied);
    e.source = EventSource::EmqxEvent;
    e.client_id = text(&c.clientid);
    e.username = text(&c.username);
    e.client_addr = client_addr(&c);

    use EmqxEventType::*;
    match ty {
        CheckAuthzComplete => {
            match c.result.as_deref().ok_or(EventDrop::MissingField)? {
                "deny" => {}
                "allow" => return Ok(None),
                _ => return Err(EventDrop::MissingField),
            }
            e.kind = EventKind::AclDenied;
            e.topic = text(&c.topic);
            // MQTT 5 "Not authorized", what the client is told.
            e.code = Some(0x87);
            e.detail = Some(match c.action.as_deref() {
                Some("publish") => "publish",
                Some("subscribe") => "subscribe",
                Some("all") => "all",
                _ => "other",
            });
        }
        CheckAuthnComplete => {
            let rc = c.reason_code.as_deref().ok_or(EventDrop::MissingField)?;
            if rc == "success" {
                return Ok(None);
            }
            e.kind = EventKind::AuthFailure;
            let (code, detail) = authn_reason(rc);
            e.code = code;
            e.detail = Some(detail);
        }
        ClientConnected => return Ok(None),
        ClientDisconnected => {
            let reason = c.reason.as_deref().ok_or(EventDrop::MissingField)?;
            e.detail = Some(match reason {
                "normal" => return Ok(None),
                "takenover" | "discarded" => {
                    e.kind = EventKind::ClientTakeover;
                    if reason == "takenover" {
                        "takenover"
                    } else {
                        "discarded"
                    }
                }
                other => {
                    e.kind = EventKind::Disconnect;
                    disconnect_reason(other)
                }
            });
        }
        MessageDropped | DeliveryDropped => {
            e.kind = if ty == MessageDropped {
                EventKind::MessageDropped
            } else {
                EventKind::DeliveryDropped
            };
            e.topic = text(&c.topic);
            e.detail = Some(drop_reason(
                c.reason.as_deref().ok_or(EventDrop::MissingField)?,
            ));
        }
    }
    Ok(Some(e))
}

/// EMQX's `reason_code` names (MQTT 5 reason names; 3.1.1 names on 3.1.1 listeners) to
/// the MQTT 5 code, where the name maps to one.
fn authn_reason(rc: &str) -> (Option<u8>, &'static str) {
    match rc {
        "bad_username_or_password" | "malformed_username_or_password" => {
            (Some(0x86), "bad_username_or_password")
        }
        "not_authorized" | "unauthorized_client" => (Some(0x87), "not_authorized"),
        "banned" => (Some(0x8A), "banned"),
        "bad_authentication_method" => (Some(0x8C), "bad_authentication_method"),
        "client_identifier_not_valid" => (Some(0x85), "client_identifier_not_valid"),
        "server_unavailable" | "server_unavaliable" => (Some(0x88), "server_unavailable"),
        "server_busy" => (Some(0x89), "server_busy"),
        _ => (None, "other"),
    }
}

fn disconnect_reason(r: &str) -> &'static str {
    match r {
        "kicked" => "kicked",
        "keepalive_timeout" => "keepalive_timeout",
        "not_authorized" => "not_authorized",
        "tcp_closed" => "tcp_closed",
        "internal_error" => "internal_error",
        "sock_closed" => "sock_closed",
        _ => "other",
    }
}

fn drop_reason(r: &str) -> &'static str {
    match r {
        "no_subscribers" => "no_subscribers",
        "receive_maximum_exceeded" => "receive_maximum_exceeded",
        "packet_identifier_inuse" => "packet_identifier_inuse",
        "queue_full" => "queue_full",
        "no_local" => "no_local",
        "expired" => "expired",
        "qos0_msg" => "qos0_msg",
        _ => "other",
    }
}

/// Counts of what came in.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct EmqxEventStats {
    pub messages: u64,
    /// Became an `Event`.
    pub events: u64,
    /// Understood, no event (allowed, success, normal disconnect, connect).
    pub uneventful: u64,
    pub dropped_too_large: u64,
    pub dropped_bad_json: u64,
    pub dropped_not_object: u64,
    pub dropped_unknown_event: u64,
    pub dropped_missing_field: u64,
}

/// [`parse_event`] with counters.
#[derive(Clone, Debug, Default)]
pub struct EmqxEventParser {
    pub stats: EmqxEventStats,
}

impl EmqxEventParser {
    pub fn on_message(&mut self, topic: &str, payload: &[u8], now_ns: u64) -> Option<Event> {
        let s = &mut self.stats;
        s.messages += 1;
        match parse_event(topic, payload, now_ns) {
            Ok(Some(e)) => {
                s.events += 1;
                Some(e)
            }
            Ok(None) => {
                s.uneventful += 1;
                None
            }
            Err(d) => {
                *match d {
                    EventDrop::TooLarge => &mut s.dropped_too_large,
                    EventDrop::BadJson => &mut s.dropped_bad_json,
                    EventDrop::NotObject => &mut s.dropped_not_object,
                    EventDrop::UnknownEvent => &mut s.dropped_unknown_event,
                    EventDrop::MissingField => &mut s.dropped_missing_field,
                } += 1;
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::event::ALL_KINDS;

    #[test]
    fn all_kinds_is_in_declaration_order() {
        for (i, k) in ALL_KINDS.iter().enumerate() {
            assert_eq!(*k as usize, i, "{k:?}");
        }
    }

    #[test]
    fn authz_deny_from_the_documented_example_shape() {
        let p = br#"{"username":"u_emqx","topic":"t/a","action":"publish","result":"deny",
            "authz_source":"file","node":"emqx@127.0.0.1","clientid":"c_emqx",
            "peerhost":"10.0.0.7","event":"client.check_authz_complete","timestamp":1645003578536}"#;
        let e = parse_event("mqscope/emqx/events/x", p, 5).unwrap().unwrap();
        assert_eq!(e.kind, EventKind::AclDenied);
        assert_eq!(e.source, EventSource::EmqxEvent);
        assert_eq!(e.ts_ns, 1_645_003_578_536_000_000);
        assert_eq!(e.client_id.as_deref(), Some("c_emqx"));
        assert_eq!(e.username.as_deref(), Some("u_emqx"));
        assert_eq!(e.topic.as_deref(), Some("t/a"));
        assert_eq!(e.detail, Some("publish"));
        assert_eq!(e.client_addr, Some("10.0.0.7:0".parse().unwrap()));
    }

    #[test]
    fn event_named_by_topic_when_column_missing() {
        let p = br#"{"clientid":"c","reason":"queue_full","topic":"t/b"}"#;
        let e = parse_event("$events/delivery_dropped", p, 9)
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, EventKind::DeliveryDropped);
        assert_eq!(e.ts_ns, 9);
        assert_eq!(e.detail, Some("queue_full"));
        let e = parse_event("$events/message/delivery_dropped", p, 9)
            .unwrap()
            .unwrap();
        assert_eq!(e.kind, EventKind::DeliveryDropped);
    }

    #[test]
    fn drops_are_counted_with_reasons() {
        let mut p = EmqxEventParser::default();
        assert!(p.on_message("t", b"{not json", 0).is_none());
        assert!(p.on_message("t", b"[1,2]", 0).is_none());
        assert!(
            p.on_message("t", br#"{"event":"session.subscribed"}"#, 0)
                .is_none()
        );
        assert!(
            p.on_message("t", br#"{"event":"client.check_authz_complete"}"#, 0)
                .is_none()
        );
        assert!(
            p.on_message("t", br#"{"event":"client.connected","clientid":5}"#, 0)
                .is_none()
        );
        assert!(
            p.on_message("t", &vec![b' '; MAX_EVENT_JSON + 1], 0)
                .is_none()
        );
        let s = &p.stats;
        assert_eq!(s.messages, 6);
        assert_eq!(s.dropped_bad_json, 1);
        assert_eq!(s.dropped_not_object, 1);
        assert_eq!(s.dropped_unknown_event, 1);
        assert_eq!(s.dropped_missing_field, 2);
        assert_eq!(s.dropped_too_large, 1);
        assert_eq!(s.events + s.uneventful, 0);
    }
}
