//! Expected values: fingerprints from an independent Python FNV-1a computation of the
//! Prometheus algorithm; dates from GNU `date -u -d @N`; JSON shapes from each service's
//! documentation (see `payload`).

use serde_json::json;

use super::payload::{self, GO_ZERO_TIME};
use super::*;

fn ls(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn fingerprint_matches_prometheus_algorithm() {
    let l = ls(&[
        ("alertname", "ProbeFailure"),
        ("instance", "https://server.example.org"),
        ("job", "http_checks"),
        ("monitor", "master"),
        ("severity", "critical"),
    ]);
    assert_eq!(fingerprint(&l).to_string(), "fe986f5dcb3e6510");
    let l = ls(&[
        ("zone", "us-1"),
        ("alertname", "High memory usage"),
        ("team", "blue"),
    ]);
    assert_eq!(fingerprint(&l).to_string(), "b4ab7c4e8d6676fb");
    // Empty set: FNV-1a offset basis, as Prometheus' emptyLabelSignature.
    assert_eq!(
        fingerprint(&LabelSet::new()).to_string(),
        "cbf29ce484222325"
    );
}

#[test]
fn fingerprint_separates_name_and_value() {
    // Without the 0xFF separators these two would hash the same bytes.
    let a = ls(&[("ab", "c")]);
    let b = ls(&[("a", "bc")]);
    assert_ne!(fingerprint(&a), fingerprint(&b));
}

#[test]
fn rfc3339_against_gnu_date() {
    assert_eq!(
        Timestamp(1_700_000_000_123).to_rfc3339(),
        "2023-11-14T22:13:20.123Z"
    );
    assert_eq!(
        Timestamp::from_secs(951_782_400).to_rfc3339(),
        "2000-02-29T00:00:00.000Z"
    );
    assert_eq!(Timestamp(-1000).to_rfc3339(), "1969-12-31T23:59:59.000Z");
    assert_eq!(Timestamp(0).to_rfc3339(), "1970-01-01T00:00:00.000Z");
}

#[test]
fn book_turns_levels_into_edges() {
    let mut book = AlertBook::new(10).with_generator_url("http://mqscope:9464/");
    let l = ls(&[("alertname", "BrokerDown"), ("broker", "b1")]);
    let t0 = Timestamp(1_000);
    let Some(Transition::Fired(a)) = book.set(true, l.clone(), LabelSet::new(), t0) else {
        panic!("first activation must fire");
    };
    assert_eq!(a.starts_at, t0);
    assert_eq!(a.state(), AlertState::Firing);
    assert_eq!(a.generator_url, "http://mqscope:9464/");
    // Still active: no new edge, start time kept.
    assert_eq!(
        book.set(true, l.clone(), LabelSet::new(), Timestamp(2_000)),
        None
    );
    assert_eq!(book.firing_count(), 1);
    let Some(Transition::Resolved(r)) =
        book.set(false, l.clone(), LabelSet::new(), Timestamp(3_000))
    else {
        panic!("deactivation must resolve");
    };
    assert_eq!(r.starts_at, t0);
    assert_eq!(r.ends_at, Some(Timestamp(3_000)));
    assert_eq!(r.state(), AlertState::Resolved);
    assert_eq!(r.fingerprint(), a.fingerprint());
    // Already inactive: nothing.
    assert_eq!(
        book.set(false, l.clone(), LabelSet::new(), Timestamp(4_000)),
        None
    );
    // Fires again: a new episode with a new start.
    let Some(Transition::Fired(b)) = book.set(true, l, LabelSet::new(), Timestamp(5_000)) else {
        panic!("re-activation must fire");
    };
    assert_eq!(b.starts_at, Timestamp(5_000));
}

#[test]
fn book_is_capped_and_counts_refusals() {
    let mut book = AlertBook::new(2);
    for i in 0..5 {
        book.activate(ls(&[("n", &i.to_string())]), LabelSet::new(), Timestamp(0));
    }
    assert_eq!(book.firing_count(), 2);
    assert_eq!(book.refused_over_cap(), 3);
}

#[test]
fn book_end_never_before_start() {
    let mut book = AlertBook::new(1);
    let l = ls(&[("a", "b")]);
    book.activate(l.clone(), LabelSet::new(), Timestamp(10_000));
    let r = book
        .deactivate(&l, Timestamp(5_000))
        .map(Transition::into_alert);
    assert_eq!(r.and_then(|a| a.ends_at), Some(Timestamp(10_000)));
}

#[test]
fn long_labels_are_bounded_and_identity_stable() {
    let long = "é".repeat(2000); // 4000 bytes, 2-byte chars
    let mut book = AlertBook::new(4);
    let l = ls(&[("topic", &long)]);
    let Some(Transition::Fired(a)) = book.activate(l.clone(), LabelSet::new(), Timestamp(0)) else {
        panic!()
    };
    assert_eq!(a.labels["topic"].len(), 1024);
    // The unbounded set given back to deactivate finds the same alert.
    assert!(book.deactivate(&l, Timestamp(1)).is_some());
}

fn sample(resolved: bool) -> Alert {
    let mut a = Alert::firing(
        ls(&[
            ("alertname", "Flood"),
            ("severity", "warning"),
            ("client", "c<1>"),
        ]),
        ls(&[("summary", "publish flood")]),
        Timestamp(1_700_000_000_000),
    );
    a.generator_url = "http://mqscope/".into();
    if resolved {
        a.ends_at = Some(Timestamp(1_700_000_060_000));
    }
    a
}

#[test]
fn alertmanager_v2_body() {
    let v = payload::alertmanager_v2(&[sample(false), sample(true)]);
    assert_eq!(
        v,
        json!([
            {
                "labels": {"alertname": "Flood", "client": "c<1>", "severity": "warning"},
                "annotations": {"summary": "publish flood"},
                "startsAt": "2023-11-14T22:13:20.000Z",
                "generatorURL": "http://mqscope/"
            },
            {
                "labels": {"alertname": "Flood", "client": "c<1>", "severity": "warning"},
                "annotations": {"summary": "publish flood"},
                "startsAt": "2023-11-14T22:13:20.000Z",
                "endsAt": "2023-11-14T22:14:20.000Z",
                "generatorURL": "http://mqscope/"
            }
        ])
    );
}

#[test]
fn webhook_v4_message() {
    let mut other = sample(true);
    other.labels.insert("client".into(), "c2".into());
    let v = payload::webhook_v4(
        "team-x",
        "http://mqscope:9464",
        &["alertname".to_string()],
        &[sample(false), other.clone()],
    );
    assert_eq!(v["version"], "4");
    assert_eq!(v["status"], "firing");
    assert_eq!(v["receiver"], "team-x");
    assert_eq!(v["groupKey"], "{}:{alertname=\"Flood\"}");
    assert_eq!(v["groupLabels"], json!({"alertname": "Flood"}));
    assert_eq!(
        v["commonLabels"],
        json!({"alertname": "Flood", "severity": "warning"})
    );
    assert_eq!(v["commonAnnotations"], json!({"summary": "publish flood"}));
    assert_eq!(v["externalURL"], "http://mqscope:9464");
    assert_eq!(v["truncatedAlerts"], 0);
    let alerts = v["alerts"].as_array().cloned().unwrap_or_default();
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[0]["status"], "firing");
    assert_eq!(alerts[0]["endsAt"], GO_ZERO_TIME);
    assert_eq!(
        alerts[0]["fingerprint"],
        sample(false).fingerprint().to_string()
    );
    assert_eq!(alerts[1]["status"], "resolved");
    assert_eq!(alerts[1]["endsAt"], "2023-11-14T22:14:20.000Z");
    assert_eq!(alerts[1]["generatorURL"], "http://mqscope/");
    // All resolved → message resolved.
    let v = payload::webhook_v4("r", "", &[], &[other]);
    assert_eq!(v["status"], "resolved");
    assert_eq!(v["groupKey"], "{}:{}");
}

#[test]
fn slack_body_escapes_and_has_fallback_text() {
    let v = payload::slack(&sample(false));
    assert_eq!(v["text"], "[FIRING] Flood: publish flood");
    assert_eq!(v["blocks"][0]["type"], "header");
    assert_eq!(v["blocks"][0]["text"]["type"], "plain_text");
    let detail = v["blocks"][1]["text"]["text"].as_str().unwrap_or_default();
    assert!(detail.contains("client=c&lt;1&gt;"), "{detail}");
    let v = payload::slack(&sample(true));
    assert_eq!(v["text"], "[RESOLVED] Flood: publish flood");
}

#[test]
fn teams_body_is_workflows_adaptive_card() {
    let v = payload::teams(&sample(false));
    assert_eq!(v["type"], "message");
    let att = &v["attachments"][0];
    assert_eq!(
        att["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    assert_eq!(att["content"]["type"], "AdaptiveCard");
    assert_eq!(att["content"]["version"], "1.4");
    assert_eq!(
        att["content"]["body"][0]["text"],
        "[FIRING] Flood: publish flood"
    );
    assert_eq!(
        att["content"]["body"][1]["facts"][0],
        json!({"title": "alertname", "value": "Flood"})
    );
}

#[test]
fn pagerduty_trigger_and_resolve() {
    let fp = sample(false).fingerprint().to_string();
    let v = payload::pagerduty("R0UTING", "mqscope", &sample(false));
    assert_eq!(v["routing_key"], "R0UTING");
    assert_eq!(v["event_action"], "trigger");
    assert_eq!(v["dedup_key"], fp.as_str());
    assert_eq!(v["payload"]["summary"], "[FIRING] Flood: publish flood");
    assert_eq!(v["payload"]["severity"], "warning");
    assert_eq!(v["payload"]["source"], "mqscope");
    assert_eq!(v["payload"]["timestamp"], "2023-11-14T22:13:20.000Z");
    let v = payload::pagerduty("R0UTING", "mqscope", &sample(true));
    assert_eq!(
        v,
        json!({"routing_key": "R0UTING", "event_action": "resolve", "dedup_key": fp})
    );
}

#[test]
fn pagerduty_severity_maps_to_the_four_allowed() {
    let mut a = sample(false);
    for (given, want) in [
        ("CRITICAL", "critical"),
        ("page", "error"),
        ("info", "info"),
    ] {
        a.labels.insert("severity".into(), given.into());
        assert_eq!(payload::pagerduty_severity(&a), want);
    }
    a.labels.remove("severity");
    assert_eq!(payload::pagerduty_severity(&a), "error");
}

mod client_tests {
    use std::time::Duration;

    use super::super::client::{HttpTarget, UrlError, parse_head};

    #[test]
    fn parses_http_urls_only() {
        let t = HttpTarget::parse("http://127.0.0.1:9093").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.path(), "/");
        assert_eq!(t.join("/api/v2/alerts").path(), "/api/v2/alerts");
        let t = HttpTarget::parse("http://h/x/").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.join("/api/v2/alerts").path(), "/x/api/v2/alerts");
        assert!(HttpTarget::parse("http://[::1]:80/p").is_ok());
        let t = HttpTarget::parse("https://hooks.slack.com/x").unwrap_or_else(|e| panic!("{e}"));
        assert!(t.is_tls());
        // Debug leaves out the path, where webhook keys live.
        assert_eq!(format!("{t:?}"), "HttpTarget(hooks.slack.com:443/***)");
        assert_eq!(HttpTarget::parse("ftp://h/"), Err(UrlError::Scheme));
        assert_eq!(HttpTarget::parse("http://:80/"), Err(UrlError::Malformed));
        assert_eq!(
            HttpTarget::parse("http://h:99999/"),
            Err(UrlError::Malformed)
        );
        assert_eq!(HttpTarget::parse("http://u:p@h/"), Err(UrlError::Malformed));
        assert_eq!(HttpTarget::parse("http://h/a b"), Err(UrlError::Malformed));
    }

    #[test]
    fn reads_status_and_retry_after() {
        let r = parse_head(b"HTTP/1.1 429 Too Many Requests\r\nretry-after:  7\r\n\r\n");
        assert_eq!(
            r.map(|r| (r.status, r.retry_after)),
            Some((429, Some(Duration::from_secs(7))))
        );
        let r =
            parse_head(b"HTTP/1.0 200 OK\r\nRetry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n\r\n");
        assert_eq!(r.map(|r| (r.status, r.retry_after)), Some((200, None)));
        assert_eq!(parse_head(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(parse_head(b"HTTP/1.1 20 OK\r\n\r\n"), None);
        assert_eq!(parse_head(b""), None);
    }
}

mod spool_tests {
    use super::super::spool::Spool;
    use super::*;

    fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("mqscope-spool-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn alert(n: u32) -> Alert {
        Alert::firing(ls(&[("n", &n.to_string())]), LabelSet::new(), Timestamp(0))
    }

    #[test]
    fn survives_reopen_and_compacts() {
        let d = dir("reopen");
        {
            let mut s = Spool::open(&d, "r/1", 1 << 20).unwrap_or_else(|e| panic!("{e}"));
            for n in 0..3 {
                s.push(&alert(n)).unwrap_or_else(|e| panic!("{e}"));
            }
            assert_eq!(s.pop_front().ok().flatten(), Some(alert(0)));
        }
        let s = Spool::open(&d, "r/1", 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        let got: Vec<Alert> = s.iter().cloned().collect();
        assert_eq!(got, vec![alert(1), alert(2)]);
        // Name sanitised into a file name.
        assert!(d.join("r_1.spool.jsonl").exists());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn cap_drops_oldest_and_counts() {
        let d = dir("cap");
        let line = serde_json::to_vec(&alert(0))
            .map(|v| v.len() + 1)
            .unwrap_or(0);
        let mut s = Spool::open(&d, "r", line * 3).unwrap_or_else(|e| panic!("{e}"));
        for n in 0..5 {
            s.push(&alert(n)).unwrap_or_else(|e| panic!("{e}"));
        }
        assert_eq!(s.dropped(), 2);
        assert_eq!(s.front(), Some(&alert(2)));
        assert!(s.bytes() <= line * 3);
        drop(s);
        let s = Spool::open(&d, "r", line * 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.len(), 3);
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn torn_line_is_skipped_and_counted() {
        let d = dir("torn");
        {
            let mut s = Spool::open(&d, "r", 1 << 20).unwrap_or_else(|e| panic!("{e}"));
            s.push(&alert(1)).unwrap_or_else(|e| panic!("{e}"));
        }
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(d.join("r.spool.jsonl"))
            .unwrap_or_else(|e| panic!("{e}"));
        let _ = f.write_all(b"{\"labels\":{\"n\":");
        drop(f);
        let s = Spool::open(&d, "r", 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((s.len(), s.corrupt()), (1, 1));
        let _ = std::fs::remove_dir_all(&d);
    }
}

#[test]
fn secrets_do_not_debug_print() {
    let kind = ReceiverKind::PagerDuty {
        url: Secret::new("http://events/enqueue?token=abc"),
        routing_key: Secret::new("R0UTINGKEY"),
        source: "mqscope".into(),
    };
    let cfg = ReceiverConfig::new("pd", kind, std::env::temp_dir());
    let printed = format!("{cfg:?}");
    assert!(
        !printed.contains("abc") && !printed.contains("R0UTINGKEY"),
        "{printed}"
    );
    assert!(printed.contains("Secret(***)"));
}
