//! `LogRecord`: the one owned, flat shape in which events and alert transitions leave
//! mqscope as log lines (OTLP log records, Azure Monitor Logs Ingestion rows). Exporters
//! map from this type only, so a new event source needs no exporter change.
//!
//! Field names follow the Azure custom table (`deploy/azure/`), which is also the set of
//! OTLP attributes (`mqscope.<field>`), so the two sinks agree column for column.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::observe::{Event, EventSource};

use super::alerts::{AlertState, Transition};

/// One log line. `None` fields are omitted from JSON.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct LogRecord {
    /// Event time, ns since the Unix epoch (packet time in replay).
    #[serde(skip)]
    pub ts_ns: u64,
    /// RFC 3339 UTC with milliseconds, e.g. `2026-11-24T18:39:22.123Z` (`TimeGenerated`).
    pub time_generated: String,
    /// `event` (wire / broker events) or `alert` (an alert fired or resolved).
    pub record_type: &'static str,
    /// Event kind (`auth_failure`, ...) or alert name (`auth_brute_force`, ...).
    pub kind: String,
    /// `info`, `low`, `medium`, `high`, `critical`.
    pub severity: String,
    /// `wire`, `emqx_event`, `detector`, `broker_input`, or `firing` / `resolved` for alerts.
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub broker_address: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Human text (the alert's summary, or a one-line description of the event).
    pub message: String,
    /// Everything else (alert labels and annotations, fingerprint), bounded by the alert
    /// model's own caps.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
}

fn source_name(s: EventSource) -> &'static str {
    match s {
        EventSource::Wire => "wire",
        EventSource::EmqxEvent => "emqx_event",
        EventSource::Detector => "detector",
        EventSource::BrokerInput => "broker_input",
    }
}

/// RFC 3339 UTC with milliseconds from ns since the epoch.
pub fn rfc3339_ms(ts_ns: u64) -> String {
    super::alerts::Timestamp((ts_ns / 1_000_000) as i64).to_rfc3339()
}

impl LogRecord {
    pub fn from_event(e: &Event) -> LogRecord {
        let mut message = e.kind.name().to_string();
        if let Some(id) = &e.client_id {
            message.push_str(" client=");
            message.push_str(id);
        }
        if let Some(t) = &e.topic {
            message.push_str(" topic=");
            message.push_str(t);
        }
        if let Some(c) = e.code {
            message.push_str(&format!(" code=0x{c:02x}"));
        }
        LogRecord {
            ts_ns: e.ts_ns,
            time_generated: rfc3339_ms(e.ts_ns),
            record_type: "event",
            kind: e.kind.name().to_string(),
            severity: "info".to_string(),
            source: source_name(e.source).to_string(),
            client_id: e.client_id.clone(),
            username: e.username.clone(),
            client_address: e.client_addr.map(|a| a.to_string()),
            broker_address: e.broker_addr.map(|a| a.to_string()),
            topic: e.topic.clone(),
            code: e.code,
            detail: e.detail.map(str::to_string),
            message,
            attributes: BTreeMap::new(),
        }
    }

    /// An alert edge: time is `starts_at` when it fired, `ends_at` when it resolved.
    pub fn from_transition(t: &Transition) -> LogRecord {
        let a = t.alert();
        let state = a.state();
        let at = match state {
            AlertState::Firing => a.starts_at,
            AlertState::Resolved => a.ends_at.unwrap_or(a.starts_at),
        };
        let ts_ns = (at.millis().max(0) as u64).saturating_mul(1_000_000);
        let label = |k: &str| a.labels.get(k).cloned();
        let mut attributes = BTreeMap::new();
        for (k, v) in &a.labels {
            attributes.insert(format!("label.{k}"), v.clone());
        }
        for (k, v) in &a.annotations {
            attributes.insert(format!("annotation.{k}"), v.clone());
        }
        attributes.insert("fingerprint".to_string(), a.fingerprint().to_string());
        LogRecord {
            ts_ns,
            time_generated: rfc3339_ms(ts_ns),
            record_type: "alert",
            kind: a.name().to_string(),
            severity: label("severity").unwrap_or_else(|| "info".to_string()),
            source: state.as_str().to_string(),
            client_id: label("client_id"),
            username: label("username"),
            client_address: label("client_address"),
            broker_address: None,
            topic: label("topic"),
            code: None,
            detail: label("key"),
            message: a
                .annotations
                .get("summary")
                .cloned()
                .unwrap_or_else(|| a.name().to_string()),
            attributes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::alerts::{Alert, LabelSet, Timestamp};
    use crate::observe::EventKind;

    #[test]
    fn event_maps_field_for_field() {
        let mut e = Event::new(1_700_000_000_123_456_789, EventKind::AuthFailure);
        e.client_id = Some("dev-1".into());
        e.code = Some(0x87);
        e.client_addr = Some("10.0.0.7:51000".parse().unwrap());
        let r = LogRecord::from_event(&e);
        // 1_700_000_000 s = 2023-11-14T22:13:20Z (date -u -d @1700000000).
        assert_eq!(r.time_generated, "2023-11-14T22:13:20.123Z");
        assert_eq!(r.kind, "auth_failure");
        assert_eq!(r.source, "wire");
        assert_eq!(r.client_address.as_deref(), Some("10.0.0.7:51000"));
        let j = serde_json::to_value(&r).unwrap();
        assert_eq!(j["Code"], 0x87);
        assert_eq!(j["RecordType"], "event");
        assert!(j.get("Topic").is_none());
    }

    #[test]
    fn resolved_alert_uses_end_time() {
        let mut labels = LabelSet::new();
        labels.insert("alertname".into(), "auth_brute_force".into());
        labels.insert("severity".into(), "high".into());
        let mut a = Alert::firing(labels, LabelSet::new(), Timestamp(1_000));
        a.ends_at = Some(Timestamp(61_000));
        let r = LogRecord::from_transition(&Transition::Resolved(a));
        assert_eq!(r.ts_ns, 61_000_000_000);
        assert_eq!(r.source, "resolved");
        assert_eq!(r.severity, "high");
        assert_eq!(r.kind, "auth_brute_force");
    }
}
