//! Delivery against a scripted local HTTP receiver: retries, Retry-After, permanent
//! rejections, dedup, repeat interval, resolved notifications, and the spool surviving a
//! receiver outage plus a restart of the delivery side.

mod alerts_support;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use alerts_support::{Recorder, free_port, temp_dir};
use mqscope::export::alerts::{
    AlertBook, LabelSet, Receiver, ReceiverConfig, ReceiverKind, Secret, Timestamp, Transition,
};

fn ls(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn webhook(url: String) -> ReceiverKind {
    ReceiverKind::Webhook {
        url: Secret::new(url),
        external_url: "http://mqscope.test".into(),
        group_by: vec!["alertname".into()],
    }
}

fn fast(mut cfg: ReceiverConfig) -> ReceiverConfig {
    cfg.backoff_initial = Duration::from_millis(40);
    cfg.backoff_max = Duration::from_millis(300);
    cfg.request_timeout = Duration::from_secs(2);
    cfg
}

/// (alertname, status) of each accepted webhook v4 message (one alert per message).
fn seen(bodies: &[serde_json::Value]) -> Vec<(String, String)> {
    bodies
        .iter()
        .map(|b| {
            assert_eq!(b["version"], "4");
            assert_eq!(b["alerts"].as_array().map(Vec::len), Some(1));
            (
                b["alerts"][0]["labels"]["alertname"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                b["alerts"][0]["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn retries_on_5xx_and_429_honouring_retry_after() {
    let rec = Recorder::start(0, vec![(503, None), (429, Some(1))]);
    let dir = temp_dir("retry");
    let r = Receiver::start(fast(ReceiverConfig::new(
        "wh",
        webhook(rec.url("/hook")),
        dir,
    )))
    .expect("start");
    let mut book = AlertBook::new(8);
    let t0 = Instant::now();
    let Some(Transition::Fired(a)) =
        book.activate(ls(&[("alertname", "A")]), LabelSet::new(), Timestamp::now())
    else {
        panic!("fires")
    };
    assert!(r.notify(a));
    let got = rec.wait_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(seen(&got), vec![("A".into(), "firing".into())]);
    assert_eq!(rec.total(), 3, "503, 429, then 200");
    assert_eq!(r.stats().failed_attempts.load(Ordering::Relaxed), 2);
    assert_eq!(r.stats().delivered.load(Ordering::Relaxed), 1);
    // Retry-After: 1 means the third attempt came at least a second after the second.
    assert!(t0.elapsed() >= Duration::from_secs(1), "{:?}", t0.elapsed());
}

#[tokio::test]
async fn permanent_rejection_is_dropped_and_the_queue_moves_on() {
    let rec = Recorder::start(0, vec![(400, None)]);
    let dir = temp_dir("reject");
    let r = Receiver::start(fast(ReceiverConfig::new("wh", webhook(rec.url("/")), dir)))
        .expect("start");
    let mut book = AlertBook::new(8);
    for name in ["A", "B"] {
        if let Some(t) = book.activate(
            ls(&[("alertname", name)]),
            LabelSet::new(),
            Timestamp::now(),
        ) {
            r.notify(t.into_alert());
        }
    }
    let got = rec.wait_accepted(1, Duration::from_secs(5)).await;
    assert_eq!(seen(&got), vec![("B".into(), "firing".into())]);
    assert_eq!(r.stats().rejected.load(Ordering::Relaxed), 1);
}

#[tokio::test]
async fn dedup_by_fingerprint_and_state_then_resolved() {
    let rec = Recorder::start(0, vec![]);
    let dir = temp_dir("dedup");
    let r = Receiver::start(fast(ReceiverConfig::new("wh", webhook(rec.url("/")), dir)))
        .expect("start");
    let mut book = AlertBook::new(8);
    let labels = ls(&[("alertname", "A"), ("broker", "b1")]);
    let fired = book
        .activate(labels.clone(), LabelSet::new(), Timestamp::now())
        .expect("fires")
        .into_alert();
    // The same firing alert handed over twice (e.g. two detectors): one notification.
    r.notify(fired.clone());
    r.notify(fired.clone());
    let resolved = book
        .deactivate(&labels, Timestamp::now())
        .expect("resolves")
        .into_alert();
    r.notify(resolved.clone());
    r.notify(resolved);
    let got = rec.wait_accepted(2, Duration::from_secs(5)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got2 = rec.accepted();
    assert_eq!(got.len(), got2.len(), "nothing after the two");
    assert_eq!(
        seen(&got2),
        vec![
            ("A".into(), "firing".into()),
            ("A".into(), "resolved".into())
        ]
    );
    assert_eq!(r.stats().deduplicated.load(Ordering::Relaxed), 2);
    assert_eq!(
        got2[1]["alerts"][0]["fingerprint"],
        fired.fingerprint().to_string().as_str()
    );
}

#[tokio::test]
async fn repeats_while_firing_and_stops_once_resolved() {
    let rec = Recorder::start(0, vec![]);
    let dir = temp_dir("repeat");
    let mut cfg = fast(ReceiverConfig::new("wh", webhook(rec.url("/")), dir));
    cfg.repeat_interval = Duration::from_millis(400);
    let r = Receiver::start(cfg).expect("start");
    let mut book = AlertBook::new(8);
    let labels = ls(&[("alertname", "A")]);
    r.notify(
        book.activate(labels.clone(), LabelSet::new(), Timestamp::now())
            .expect("fires")
            .into_alert(),
    );
    // Repeats are scheduled when the task wakes; it wakes at least every repeat interval.
    let got = rec.wait_accepted(2, Duration::from_secs(5)).await;
    assert_eq!(
        seen(&got)[..2],
        [("A".into(), "firing".into()), ("A".into(), "firing".into())]
    );
    assert!(r.stats().repeats.load(Ordering::Relaxed) >= 1);
    r.notify(
        book.deactivate(&labels, Timestamp::now())
            .expect("resolves")
            .into_alert(),
    );
    let n = rec.accepted().len();
    let got = rec.wait_accepted(n + 1, Duration::from_secs(5)).await;
    assert_eq!(seen(&got).last(), Some(&("A".into(), "resolved".into())));
    let settled = got.len();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(rec.accepted().len(), settled, "no repeats after resolution");
}

#[tokio::test]
async fn outage_and_restart_deliver_each_state_change_exactly_once() {
    let port = free_port();
    let dir = temp_dir("outage");
    let url = format!("http://127.0.0.1:{port}/hook");
    let mut book = AlertBook::new(8);
    let (la, lb) = (ls(&[("alertname", "A")]), ls(&[("alertname", "B")]));
    {
        // Receiver down: A fires, B fires, A resolves. All spooled.
        let r = Receiver::start(fast(ReceiverConfig::new(
            "wh",
            webhook(url.clone()),
            dir.clone(),
        )))
        .expect("start");
        for t in [
            book.activate(la.clone(), LabelSet::new(), Timestamp::now()),
            book.activate(lb.clone(), LabelSet::new(), Timestamp::now()),
            book.deactivate(&la, Timestamp::now()),
        ]
        .into_iter()
        .flatten()
        {
            assert!(r.notify(t.into_alert()));
        }
        let end = Instant::now() + Duration::from_secs(5);
        while r.stats().failed_attempts.load(Ordering::Relaxed) < 2 && Instant::now() < end {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(r.stats().pending.load(Ordering::Relaxed), 3);
        // Dropped: mqscope restarts.
    }
    let r = Receiver::start(fast(ReceiverConfig::new("wh", webhook(url), dir))).expect("restart");
    assert_eq!(
        r.stats().pending.load(Ordering::Relaxed),
        3,
        "spool reloaded"
    );
    // The restarted detector sees B still active and reports it again: not a new change.
    let mut book2 = AlertBook::new(8);
    r.notify(
        book2
            .activate(lb, LabelSet::new(), Timestamp::now())
            .expect("fires")
            .into_alert(),
    );
    // Receiver comes back.
    let rec = Recorder::start(port, vec![]);
    let got = rec.wait_accepted(3, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rec.accepted().len(), 3, "exactly once each");
    assert_eq!(
        seen(&got),
        vec![
            ("A".into(), "firing".into()),
            ("B".into(), "firing".into()),
            ("A".into(), "resolved".into()),
        ]
    );
    assert_eq!(r.stats().deduplicated.load(Ordering::Relaxed), 1);
    assert_eq!(r.stats().pending.load(Ordering::Relaxed), 0);
}

#[tokio::test]
async fn every_kind_posts_its_shape() {
    let rec = Recorder::start(0, vec![]);
    let dir = temp_dir("kinds");
    let kinds = [
        (
            "am",
            ReceiverKind::Alertmanager {
                url: Secret::new(rec.url("")),
            },
        ),
        (
            "slack",
            ReceiverKind::Slack {
                url: Secret::new(rec.url("/services/T/B/K")),
            },
        ),
        (
            "teams",
            ReceiverKind::Teams {
                url: Secret::new(rec.url("/workflows/x")),
            },
        ),
        (
            "pd",
            ReceiverKind::PagerDuty {
                url: Secret::new(rec.url("/v2/enqueue")),
                routing_key: Secret::new("KEY"),
                source: "mqscope".into(),
            },
        ),
    ];
    let alert = AlertBook::new(1)
        .activate(ls(&[("alertname", "A")]), LabelSet::new(), Timestamp::now())
        .expect("fires")
        .into_alert();
    let mut receivers = Vec::new();
    for (name, kind) in kinds {
        let r = Receiver::start(fast(ReceiverConfig::new(name, kind, dir.clone()))).expect("start");
        r.notify(alert.clone());
        receivers.push(r);
        // One at a time so the recorded order is known.
        rec.wait_accepted(receivers.len(), Duration::from_secs(5))
            .await;
    }
    let reqs = rec.shared.lock().expect("lock").requests.clone();
    assert_eq!(reqs.len(), 4);
    assert!(
        reqs[0].0.starts_with("POST /api/v2/alerts HTTP/1.1"),
        "{}",
        reqs[0].0
    );
    assert_eq!(reqs[0].2[0]["labels"]["alertname"], "A");
    assert!(reqs[1].0.starts_with("POST /services/T/B/K "));
    assert_eq!(reqs[1].2["text"], "[FIRING] A");
    assert_eq!(
        reqs[2].2["attachments"][0]["content"]["type"],
        "AdaptiveCard"
    );
    assert!(reqs[3].0.starts_with("POST /v2/enqueue "));
    assert_eq!(reqs[3].2["event_action"], "trigger");
    assert_eq!(
        reqs[3].2["dedup_key"],
        alert.fingerprint().to_string().as_str()
    );
}

/// A CA and a leaf for 127.0.0.1 made with the openssl CLI.
fn make_certs(
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let run = |args: &[&str]| {
        let st = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl");
        assert!(st.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=test-ca",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("leaf.pem"),
        dir.join("leaf.key"),
    )
}

#[tokio::test]
async fn https_with_a_private_ca() {
    let dir = temp_dir("https");
    let (ca, cert, key) = make_certs(&dir);
    let rec = Recorder::start_tls(&cert, &key);
    let url = format!("https://127.0.0.1:{}/services/T/B/K", rec.port);
    let mut cfg = fast(ReceiverConfig::new(
        "slack",
        ReceiverKind::Slack {
            url: Secret::new(url.clone()),
        },
        dir.join("spool"),
    ));
    cfg.ca_file = Some(ca);
    let r = Receiver::start(cfg).expect("start");
    let alert = AlertBook::new(1)
        .activate(ls(&[("alertname", "A")]), LabelSet::new(), Timestamp::now())
        .expect("fires")
        .into_alert();
    r.notify(alert.clone());
    let got = rec.wait_accepted(1, Duration::from_secs(10)).await;
    assert_eq!(
        got.len(),
        1,
        "failed attempts: {}",
        r.stats().failed_attempts.load(Ordering::Relaxed)
    );
    assert_eq!(got[0]["text"], "[FIRING] A");

    // Without the CA the server is not trusted: nothing delivered, attempts fail.
    let mut cfg = fast(ReceiverConfig::new(
        "slack2",
        ReceiverKind::Slack {
            url: Secret::new(url),
        },
        dir.join("spool"),
    ));
    cfg.ca_file = Some(cert.with_file_name("leaf.pem")); // a leaf, not the issuing CA
    let r2 = Receiver::start(cfg).expect("start");
    r2.notify(alert);
    let end = Instant::now() + Duration::from_secs(5);
    while r2.stats().failed_attempts.load(Ordering::Relaxed) < 2 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(r2.stats().failed_attempts.load(Ordering::Relaxed) >= 2);
    assert_eq!(rec.accepted().len(), 1);
}

#[tokio::test]
async fn spool_cap_drops_oldest_and_a_dropped_alert_can_be_sent_again() {
    let port = free_port();
    let dir = temp_dir("cap");
    let mut cfg = fast(ReceiverConfig::new(
        "wh",
        webhook(format!("http://127.0.0.1:{port}/")),
        dir,
    ));
    let mut book = AlertBook::new(8);
    let alerts: Vec<_> = ["A", "B", "C"]
        .iter()
        .filter_map(|n| book.activate(ls(&[("alertname", n)]), LabelSet::new(), Timestamp(1)))
        .map(Transition::into_alert)
        .collect();
    let line = serde_json::to_vec(&alerts[0])
        .map(|v| v.len() + 1)
        .unwrap_or(0);
    cfg.spool_max_bytes = line * 2;
    let r = Receiver::start(cfg).expect("start");
    for a in &alerts {
        assert!(r.notify(a.clone()));
    }
    let end = Instant::now() + Duration::from_secs(5);
    while r.stats().spool_dropped.load(Ordering::Relaxed) < 1 && Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(r.stats().spool_dropped.load(Ordering::Relaxed), 1);
    assert_eq!(r.stats().pending.load(Ordering::Relaxed), 2);
    // A was dropped undelivered: notifying it again is not a duplicate (B drops for room).
    r.notify(alerts[0].clone());
    let rec = Recorder::start(port, vec![]);
    let got = rec.wait_accepted(2, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen(&rec.accepted()),
        vec![("C".into(), "firing".into()), ("A".into(), "firing".into())],
        "{got:?}"
    );
    assert_eq!(r.stats().deduplicated.load(Ordering::Relaxed), 0);
}
