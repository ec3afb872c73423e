//! Request bodies for each receiver, built from [`Alert`]s. Pure functions returning
//! `serde_json::Value`; shapes follow each service's documentation:
//!
//! * Alertmanager API v2 `POST /api/v2/alerts`: an array of `postableAlert`
//!   (`labels`, `annotations`, `startsAt`, `endsAt`, `generatorURL`). A firing alert
//!   omits `endsAt` (Alertmanager then applies its `resolve_timeout`, so firing alerts are
//!   re-posted every repeat interval); a resolved one carries its end time.
//! * Alertmanager webhook, `"version": "4"`: the message Alertmanager itself sends to
//!   `webhook_configs`, so receivers written for Alertmanager accept mqscope unchanged.
//!   A firing alert's `endsAt` is Go's zero time `0001-01-01T00:00:00Z`, as Alertmanager
//!   writes it.
//! * Slack incoming webhook: `text` (fallback, notifications) plus `blocks`.
//! * Microsoft Teams Workflows ("Post to a channel when a webhook request is received"):
//!   a `message` with one Adaptive Card 1.4 attachment.
//! * PagerDuty Events API v2: `routing_key`, `event_action` trigger/resolve,
//!   `dedup_key` = fingerprint, `payload` {summary, source, severity, timestamp,
//!   custom_details} (payload only on trigger; PagerDuty ignores it on resolve).

use serde_json::{Map, Value, json};

use super::model::{Alert, AlertState, LabelSet};

/// Go's zero `time.Time` in RFC 3339, Alertmanager's `endsAt` for a firing alert.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// PagerDuty rejects summaries over 1024 characters.
const PD_SUMMARY_MAX: usize = 1024;

fn labels_json(set: &LabelSet) -> Value {
    Value::Object(
        set.iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .collect::<Map<_, _>>(),
    )
}

/// Alertmanager v2 `postableAlerts`.
pub fn alertmanager_v2(alerts: &[Alert]) -> Value {
    Value::Array(
        alerts
            .iter()
            .map(|a| {
                let mut o = Map::new();
                o.insert("labels".into(), labels_json(&a.labels));
                o.insert("annotations".into(), labels_json(&a.annotations));
                o.insert("startsAt".into(), a.starts_at.to_rfc3339().into());
                if let Some(end) = a.ends_at {
                    o.insert("endsAt".into(), end.to_rfc3339().into());
                }
                if !a.generator_url.is_empty() {
                    o.insert("generatorURL".into(), a.generator_url.clone().into());
                }
                Value::Object(o)
            })
            .collect(),
    )
}

/// Pairs present with the same value in every set (Alertmanager's `commonLabels`).
fn common(sets: &mut dyn Iterator<Item = &LabelSet>) -> LabelSet {
    let Some(first) = sets.next() else {
        return LabelSet::new();
    };
    let mut out = first.clone();
    for s in sets {
        out.retain(|k, v| s.get(k) == Some(v));
    }
    out
}

/// `groupKey` in Alertmanager's form `{}:{name="value", ...}` (route path `{}`: mqscope
/// has no routing tree, every alert of a message belongs to the root route).
fn group_key(group_labels: &LabelSet) -> String {
    let inner: Vec<String> = group_labels
        .iter()
        .map(|(k, v)| format!("{k}={}", Value::String(v.clone())))
        .collect();
    format!("{{}}:{{{}}}", inner.join(", "))
}

/// Alertmanager webhook message, version 4. `group_labels` are taken from the alerts'
/// common labels restricted to `group_by` (empty `group_by` → no group labels).
pub fn webhook_v4(
    receiver: &str,
    external_url: &str,
    group_by: &[String],
    alerts: &[Alert],
) -> Value {
    let common_labels = common(&mut alerts.iter().map(|a| &a.labels));
    let common_annotations = common(&mut alerts.iter().map(|a| &a.annotations));
    let group_labels: LabelSet = common_labels
        .iter()
        .filter(|(k, _)| group_by.iter().any(|g| g == *k))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let status = if alerts.iter().any(|a| a.state() == AlertState::Firing) {
        "firing"
    } else {
        "resolved"
    };
    let items: Vec<Value> = alerts
        .iter()
        .map(|a| {
            json!({
                "status": a.state().as_str(),
                "labels": labels_json(&a.labels),
                "annotations": labels_json(&a.annotations),
                "startsAt": a.starts_at.to_rfc3339(),
                "endsAt": a.ends_at.map_or_else(|| GO_ZERO_TIME.to_string(), |t| t.to_rfc3339()),
                "generatorURL": a.generator_url,
                "fingerprint": a.fingerprint().to_string(),
            })
        })
        .collect();
    json!({
        "version": "4",
        "groupKey": group_key(&group_labels),
        "truncatedAlerts": 0,
        "status": status,
        "receiver": receiver,
        "groupLabels": labels_json(&group_labels),
        "commonLabels": labels_json(&common_labels),
        "commonAnnotations": labels_json(&common_annotations),
        "externalURL": external_url,
        "alerts": items,
    })
}

/// One-line human title: `[FIRING] name: summary` (summary/description annotation if any).
pub fn title(alert: &Alert) -> String {
    let state = match alert.state() {
        AlertState::Firing => "FIRING",
        AlertState::Resolved => "RESOLVED",
    };
    let name = if alert.name().is_empty() {
        "alert"
    } else {
        alert.name()
    };
    match alert
        .annotations
        .get("summary")
        .or_else(|| alert.annotations.get("description"))
    {
        Some(s) => format!("[{state}] {name}: {s}"),
        None => format!("[{state}] {name}"),
    }
}

/// `key=value` lines of the labels, for chat messages.
fn label_lines(alert: &Alert) -> String {
    alert
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Slack's mrkdwn treats `&`, `<`, `>` as control characters; they must be escaped.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Slack incoming webhook body.
pub fn slack(alert: &Alert) -> Value {
    let title = slack_escape(&title(alert));
    let mut detail = format!(
        "*Labels*\n```{}```\n*Started* {}",
        slack_escape(&label_lines(alert)),
        alert.starts_at.to_rfc3339()
    );
    if let Some(end) = alert.ends_at {
        detail.push_str(&format!("\n*Ended* {}", end.to_rfc3339()));
    }
    json!({
        "text": title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title_plain(alert)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": detail}},
        ],
    })
}

/// Slack header blocks take plain text of at most 150 characters.
fn title_plain(alert: &Alert) -> String {
    title(alert).chars().take(150).collect()
}

/// Teams Workflows webhook body: a message carrying one Adaptive Card 1.4.
pub fn teams(alert: &Alert) -> Value {
    let facts: Vec<Value> = alert
        .labels
        .iter()
        .map(|(k, v)| json!({"title": k, "value": v}))
        .collect();
    let mut body = vec![
        json!({
            "type": "TextBlock",
            "text": title(alert),
            "weight": "Bolder",
            "size": "Medium",
            "wrap": true,
            "color": if alert.state() == AlertState::Firing { "Attention" } else { "Good" },
        }),
        json!({"type": "FactSet", "facts": facts}),
        json!({"type": "TextBlock", "text": format!("Started {}", alert.starts_at.to_rfc3339()), "isSubtle": true, "wrap": true}),
    ];
    if let Some(end) = alert.ends_at {
        body.push(json!({"type": "TextBlock", "text": format!("Ended {}", end.to_rfc3339()), "isSubtle": true, "wrap": true}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
            },
        }],
    })
}

/// PagerDuty severity from the `severity` label: PagerDuty accepts only critical, error,
/// warning, info; anything else (or none) maps to `error`, Alertmanager's default.
pub fn pagerduty_severity(alert: &Alert) -> &'static str {
    match alert.labels.get("severity").map(|s| s.to_ascii_lowercase()) {
        Some(s) if s == "critical" => "critical",
        Some(s) if s == "warning" => "warning",
        Some(s) if s == "info" => "info",
        _ => "error",
    }
}

/// PagerDuty Events API v2 body. `routing_key` is the integration key (a secret: the
/// returned value must not be logged).
pub fn pagerduty(routing_key: &str, source: &str, alert: &Alert) -> Value {
    let dedup_key = alert.fingerprint().to_string();
    match alert.state() {
        AlertState::Resolved => json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        }),
        AlertState::Firing => {
            let summary: String = title(alert).chars().take(PD_SUMMARY_MAX).collect();
            json!({
                "routing_key": routing_key,
                "event_action": "trigger",
                "dedup_key": dedup_key,
                "payload": {
                    "summary": summary,
                    "source": source,
                    "severity": pagerduty_severity(alert),
                    "timestamp": alert.starts_at.to_rfc3339(),
                    "custom_details": {
                        "labels": labels_json(&alert.labels),
                        "annotations": labels_json(&alert.annotations),
                    },
                },
            })
        }
    }
}
