//! End to end with the real Debian `prometheus-alertmanager` (package
//! `prometheus-alertmanager`, binary `/usr/bin/prometheus-alertmanager`): mqscope posts
//! to Alertmanager's `POST /api/v2/alerts`, Alertmanager routes to a webhook receiver
//! (the recorder in this test), which receives Alertmanager's own webhook v4 messages.
//! Alertmanager computes the fingerprint itself, so these tests also check that ours is
//! the same.

mod alerts_support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use alerts_support::{Am, Recorder, free_port, temp_dir};
use mqscope::export::alerts::{
    AlertBook, LabelSet, Receiver, ReceiverConfig, ReceiverKind, Secret, Timestamp,
};

fn ls(pairs: &[(&str, &str)]) -> LabelSet {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn am_receiver(port: u16, dir: PathBuf) -> Receiver {
    let mut cfg = ReceiverConfig::new(
        "am",
        ReceiverKind::Alertmanager {
            url: Secret::new(format!("http://127.0.0.1:{port}")),
        },
        dir,
    );
    cfg.backoff_initial = Duration::from_millis(50);
    cfg.backoff_max = Duration::from_millis(400);
    Receiver::start(cfg).expect("start receiver")
}

/// (alertname, alert status, fingerprint) for every alert of every webhook message.
fn seen(bodies: &[serde_json::Value]) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for b in bodies {
        assert_eq!(b["version"], "4", "{b}");
        assert_eq!(b["receiver"], "hook");
        for a in b["alerts"].as_array().cloned().unwrap_or_default() {
            out.push((
                a["labels"]["alertname"].as_str().unwrap_or("").to_string(),
                a["status"].as_str().unwrap_or("").to_string(),
                a["fingerprint"].as_str().unwrap_or("").to_string(),
            ));
        }
    }
    out
}

#[tokio::test]
async fn firing_then_resolved_through_alertmanager() {
    let dir = temp_dir("am-e2e");
    let hook = Recorder::start(0, vec![]);
    let am_port = free_port();
    let _am = Am::start(&dir, am_port, hook.port);
    let r = am_receiver(am_port, dir.join("spool"));

    let mut book = AlertBook::new(8).with_generator_url("http://mqscope.test/");
    let labels = ls(&[
        ("alertname", "MqscopeFlood"),
        ("broker", "b1"),
        ("severity", "warning"),
    ]);
    let ann = ls(&[("summary", "publish flood on b1")]);
    let fired = book
        .activate(labels.clone(), ann, Timestamp::now())
        .expect("fires")
        .into_alert();
    let fp = fired.fingerprint().to_string();
    r.notify(fired);

    let got = hook.wait_accepted(1, Duration::from_secs(15)).await;
    assert_eq!(
        seen(&got),
        vec![("MqscopeFlood".into(), "firing".into(), fp.clone())]
    );
    let m = &got[0];
    assert_eq!(m["status"], "firing");
    assert_eq!(m["groupLabels"]["alertname"], "MqscopeFlood");
    assert_eq!(m["alerts"][0]["labels"]["broker"], "b1");
    assert_eq!(
        m["alerts"][0]["annotations"]["summary"],
        "publish flood on b1"
    );
    assert_eq!(m["alerts"][0]["generatorURL"], "http://mqscope.test/");

    r.notify(
        book.deactivate(&labels, Timestamp::now())
            .expect("resolves")
            .into_alert(),
    );
    let got = hook.wait_accepted(2, Duration::from_secs(15)).await;
    assert_eq!(
        seen(&got[1..]),
        vec![("MqscopeFlood".into(), "resolved".into(), fp)]
    );
    assert_eq!(got[1]["status"], "resolved");
}

#[tokio::test]
async fn alertmanager_outage_and_mqscope_restart_deliver_each_change_once() {
    let dir = temp_dir("am-outage");
    let hook = Recorder::start(0, vec![]);
    let am_port = free_port();
    let spool = dir.join("spool");
    let (la, lb) = (ls(&[("alertname", "A")]), ls(&[("alertname", "B")]));
    let mut book = AlertBook::new(8);
    {
        // Alertmanager is down (nobody listens on its port): A and B fire, get spooled.
        let r = am_receiver(am_port, spool.clone());
        for t in [
            book.activate(la.clone(), LabelSet::new(), Timestamp::now()),
            book.activate(lb.clone(), LabelSet::new(), Timestamp::now()),
        ]
        .into_iter()
        .flatten()
        {
            assert!(r.notify(t.into_alert()));
        }
        let end = Instant::now() + Duration::from_secs(5);
        while r
            .stats()
            .failed_attempts
            .load(std::sync::atomic::Ordering::Relaxed)
            < 2
        {
            assert!(Instant::now() < end);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // mqscope stops here.
    }
    // mqscope restarts; its detector reports B (still active) again.
    let r = am_receiver(am_port, spool);
    let mut book2 = AlertBook::new(8);
    r.notify(
        book2
            .activate(lb.clone(), LabelSet::new(), Timestamp::now())
            .expect("fires")
            .into_alert(),
    );
    // Alertmanager comes back.
    let _am = Am::start(&dir, am_port, hook.port);
    let got = hook.wait_accepted(2, Duration::from_secs(20)).await;
    let mut s = seen(&got);
    s.sort();
    assert_eq!(
        s.iter()
            .map(|(n, st, _)| (n.as_str(), st.as_str()))
            .collect::<Vec<_>>(),
        vec![("A", "firing"), ("B", "firing")]
    );
    // Now A resolves (Alertmanager up): one resolved notification for A.
    r.notify(
        book.deactivate(&la, Timestamp::now())
            .expect("resolves")
            .into_alert(),
    );
    let got = hook.wait_accepted(3, Duration::from_secs(15)).await;
    // Settle: group_interval is 1 s; nothing more may arrive (no duplicates).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = seen(&hook.accepted());
    assert_eq!(all.len(), 3, "{all:?}");
    assert_eq!(
        (all[2].0.as_str(), all[2].1.as_str()),
        ("A", "resolved"),
        "{got:?}"
    );
}
