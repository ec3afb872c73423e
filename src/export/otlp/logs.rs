//! `LogRecord` (events and alert edges) → OTLP log records. Body: the message.
//! Severity: `severity_text` is ours verbatim; `severity_number` puts the scale on
//! OpenTelemetry's (info → INFO 9, low → WARN 13, medium → WARN2 14, high → ERROR 17,
//! critical → FATAL 21). Attributes: `mqscope.<field>` for each field present (the
//! Azure table's columns in snake case; `code` as an integer), then every entry of
//! `attributes` as `mqscope.<key>` (a key that would shadow a field is skipped). Time:
//! `ts_ns` (packet time); observed time: when the exporter took the record.

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use opentelemetry_proto::tonic::logs::v1::{LogRecord as OtlpLogRecord, SeverityNumber};

use crate::export::LogRecord;

pub(super) fn kv_str(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.to_string())),
        }),
        ..Default::default()
    }
}

fn kv_int(k: &str, v: i64) -> KeyValue {
    KeyValue {
        key: k.to_string(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(v)),
        }),
        ..Default::default()
    }
}

/// OpenTelemetry severity number for mqscope's severity words.
pub fn severity_number(s: &str) -> SeverityNumber {
    match s {
        "info" => SeverityNumber::Info,
        "low" => SeverityNumber::Warn,
        "medium" => SeverityNumber::Warn2,
        "high" => SeverityNumber::Error,
        "critical" => SeverityNumber::Fatal,
        _ => SeverityNumber::Unspecified,
    }
}

/// Field names as attribute keys (the `attributes` map may not reuse them).
const FIELDS: [&str; 11] = [
    "record_type",
    "kind",
    "severity",
    "source",
    "client_id",
    "username",
    "client_address",
    "broker_address",
    "topic",
    "code",
    "detail",
];

pub fn to_otlp(r: &LogRecord, observed_ns: u64) -> OtlpLogRecord {
    let mut a = Vec::with_capacity(8 + r.attributes.len());
    a.push(kv_str("mqscope.record_type", r.record_type));
    a.push(kv_str("mqscope.kind", &r.kind));
    a.push(kv_str("mqscope.severity", &r.severity));
    a.push(kv_str("mqscope.source", &r.source));
    for (k, v) in [
        ("mqscope.client_id", &r.client_id),
        ("mqscope.username", &r.username),
        ("mqscope.client_address", &r.client_address),
        ("mqscope.broker_address", &r.broker_address),
        ("mqscope.topic", &r.topic),
    ] {
        if let Some(v) = v {
            a.push(kv_str(k, v));
        }
    }
    if let Some(c) = r.code {
        a.push(kv_int("mqscope.code", i64::from(c)));
    }
    if let Some(d) = &r.detail {
        a.push(kv_str("mqscope.detail", d));
    }
    for (k, v) in &r.attributes {
        if !FIELDS.contains(&k.as_str()) {
            a.push(kv_str(&format!("mqscope.{k}"), v));
        }
    }
    OtlpLogRecord {
        time_unix_nano: r.ts_ns,
        observed_time_unix_nano: observed_ns,
        severity_number: severity_number(&r.severity) as i32,
        severity_text: r.severity.clone(),
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(r.message.clone())),
        }),
        attributes: a,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::alerts::{AlertBook, LabelSet, Timestamp};
    use crate::observe::{Event, EventKind};

    fn get<'a>(r: &'a OtlpLogRecord, k: &str) -> Option<&'a any_value::Value> {
        r.attributes
            .iter()
            .find(|x| x.key == k)
            .and_then(|x| x.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn s(v: &str) -> any_value::Value {
        any_value::Value::StringValue(v.into())
    }

    #[test]
    fn event_fields_become_attributes() {
        let mut e = Event::new(1_700_000_000_123_456_789, EventKind::AuthFailure);
        e.client_id = Some("dev-1".into());
        e.code = Some(0x87);
        e.client_addr = Some("10.0.0.7:51000".parse().unwrap());
        let rec = LogRecord::from_event(&e);
        let o = to_otlp(&rec, 42);
        assert_eq!(o.time_unix_nano, 1_700_000_000_123_456_789);
        assert_eq!(o.observed_time_unix_nano, 42);
        assert_eq!(o.severity_number, SeverityNumber::Info as i32);
        assert_eq!(o.severity_text, "info");
        assert_eq!(o.body.as_ref().unwrap().value, Some(s(&rec.message)));
        assert_eq!(get(&o, "mqscope.kind"), Some(&s("auth_failure")));
        assert_eq!(get(&o, "mqscope.record_type"), Some(&s("event")));
        assert_eq!(get(&o, "mqscope.source"), Some(&s("wire")));
        assert_eq!(get(&o, "mqscope.client_id"), Some(&s("dev-1")));
        assert_eq!(
            get(&o, "mqscope.client_address"),
            Some(&s("10.0.0.7:51000"))
        );
        assert_eq!(
            get(&o, "mqscope.code"),
            Some(&any_value::Value::IntValue(0x87))
        );
        assert_eq!(get(&o, "mqscope.topic"), None, "absent fields are left out");
    }

    #[test]
    fn alert_edge_carries_labels_and_severity() {
        let mut labels = LabelSet::new();
        labels.insert("alertname".into(), "auth_brute_force".into());
        labels.insert("severity".into(), "high".into());
        labels.insert("client_id".into(), "plc-9".into());
        let mut ann = LabelSet::new();
        ann.insert("summary".into(), "12 failed logins".into());
        let t = AlertBook::new(4)
            .activate(labels, ann, Timestamp(1_000))
            .expect("fires");
        let mut rec = LogRecord::from_transition(&t);
        // A map key that names a field must not shadow it.
        rec.attributes.insert("kind".into(), "spoof".into());
        let o = to_otlp(&rec, 0);
        assert_eq!(o.severity_number, SeverityNumber::Error as i32);
        assert_eq!(o.time_unix_nano, 1_000_000_000);
        assert_eq!(o.body.as_ref().unwrap().value, Some(s("12 failed logins")));
        assert_eq!(get(&o, "mqscope.kind"), Some(&s("auth_brute_force")));
        assert_eq!(get(&o, "mqscope.source"), Some(&s("firing")));
        assert_eq!(get(&o, "mqscope.client_id"), Some(&s("plc-9")));
        assert_eq!(
            get(&o, "mqscope.label.alertname"),
            Some(&s("auth_brute_force"))
        );
        assert!(get(&o, "mqscope.fingerprint").is_some());
        assert_eq!(
            o.attributes
                .iter()
                .filter(|k| k.key == "mqscope.kind")
                .count(),
            1
        );
    }

    #[test]
    fn severity_scale() {
        let n = |s| severity_number(s) as i32;
        assert_eq!(
            [
                n("info"),
                n("low"),
                n("medium"),
                n("high"),
                n("critical"),
                n("x")
            ],
            [9, 13, 14, 17, 21, 0]
        );
    }
}
