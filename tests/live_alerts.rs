//! `mqscope run` end to end with alerting: a real Mosquitto with a password file, wrong
//! passwords from the real `mosquitto_pub` client, captured on loopback; the security
//! rules fire `auth_brute_force` and the configured webhook receiver (Alertmanager webhook
//! v4 JSON) gets it firing, then resolved once the cool-down passed. `/metrics` shows it
//! in `mqscope_alerts_firing` meanwhile.
//!
//! Needs root (capture on `lo`) and Debian's `mosquitto` and `mosquitto-clients`.

mod alerts_support;
mod live_common;
mod prom_common;

use std::process::Command;
use std::time::{Duration, Instant};

use alerts_support::{Am, Recorder};
use live_common::*;
use serde_json::Value;

/// Webhook bodies' alerts, flattened: (status, labels).
fn received(rec: &Recorder) -> Vec<(String, Value)> {
    rec.accepted()
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                a["status"].as_str().unwrap_or("").to_string(),
                a["labels"].clone(),
            )
        })
        .collect()
}

fn wait_for(rec: &Recorder, what: &str, within: Duration, ok: impl Fn(&[(String, Value)]) -> bool) {
    let deadline = Instant::now() + within;
    loop {
        let got = received(rec);
        if ok(&got) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "never received {what}; got {got:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A checked config file: capture on `lo` for `port`, then `more` (rules, receivers), in
/// which `SPOOL` stands for `dir/spool`.
fn write_config(dir: &std::path::Path, port: u16, more: &str) -> std::path::PathBuf {
    let cfg = dir.join("mqscope.toml");
    let more = more.replace("SPOOL", &dir.join("spool").display().to_string());
    std::fs::write(
        &cfg,
        format!("[capture]\ninterface = \"lo\"\nports = [{port}]\n{more}"),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    cfg
}

/// Six wrong passwords for user dev from 127.0.0.1 (real `mosquitto_pub`): the default
/// threshold is five failures within 60 s, per source address and per username.
fn brute_force(port: u16) {
    for i in 0..6 {
        assert!(
            !publish(port, &format!("guess-{i}"), "wrong"),
            "wrong password accepted"
        );
    }
}

#[test]
fn brute_force_alert_reaches_the_webhook_firing_then_resolved() {
    let dir = temp_dir("live-alerts");
    let (_broker, port) = password_broker(&dir);
    let hook = Recorder::start(0, vec![]);
    let cfg = write_config(
        &dir,
        port,
        &format!(
            r#"
[rules]
# Short, so the resolution arrives within the test.
cooldown_s = 2

[alerts]
spool_dir = "SPOOL"
generator_url = "http://mqscope.test/metrics"

[[alerts.receivers]]
name = "hook"
kind = "webhook"
url = "{}"
"#,
            hook.url("/alerts")
        ),
    );
    let mq = start_mqscope(&dir, &["--config", cfg.to_str().unwrap()]);
    brute_force(port);

    let fired = |got: &[(String, Value)], key: &str| {
        got.iter()
            .any(|(s, l)| s == "firing" && l["alertname"] == "auth_brute_force" && l["key"] == key)
    };
    wait_for(
        &hook,
        "auth_brute_force firing for ip and user",
        Duration::from_secs(15),
        |g| fired(g, "ip:127.0.0.1") && fired(g, "user:dev"),
    );
    let got = received(&hook);
    let ip = got
        .iter()
        .find(|(s, l)| s == "firing" && l["key"] == "ip:127.0.0.1")
        .unwrap();
    assert_eq!(ip.1["client_address"], "127.0.0.1");
    assert_eq!(ip.1["severity"], "high");
    // Both keys fire under one rule and severity.
    mq.wait_metrics(
        &[(
            r#"mqscope_alerts_firing{rule="auth_brute_force",severity="high"}"#,
            2.0,
        )],
        Duration::from_secs(5),
    );

    // No more failures: 2 s of cool-down, then the next second's publication resolves.
    wait_for(
        &hook,
        "auth_brute_force resolved",
        Duration::from_secs(15),
        |g| {
            g.iter()
                .filter(|(s, l)| s == "resolved" && l["alertname"] == "auth_brute_force")
                .count()
                == 2
        },
    );
    // Four notifications delivered (two firing, two resolved); the exposition with the
    // delivery families is valid for promtool.
    let body = mq.wait_metrics(
        &[
            (
                r#"mqscope_alerts_firing{rule="auth_brute_force",severity="high"}"#,
                0.0,
            ),
            (
                r#"mqscope_alert_notifications_total{receiver="hook",result="delivered"}"#,
                4.0,
            ),
            (
                r#"mqscope_alert_notifications_pending{receiver="hook"}"#,
                0.0,
            ),
        ],
        Duration::from_secs(5),
    );
    prom_common::promtool_check(&body);
    let stats = mq.terminate();
    // Exactly one notification per state change and key, nothing else.
    let got = received(&hook);
    assert_eq!(got.len(), 4, "{got:#?}");
    assert_eq!(stats["outputs"]["alerts_fired"], 2, "{stats:#}");
    assert_eq!(stats["outputs"]["alerts_resolved"], 2);
    let hits = stats["rules"]["hits"].as_array().unwrap();
    assert_eq!(hits.len(), 2, "{hits:#?}");
    assert!(
        hits.iter()
            .all(|h| h["rule"] == "auth_brute_force" && h["count"].as_u64() >= Some(5))
    );
}

/// (fingerprint, status) of every alert in Alertmanager's webhook messages.
fn am_seen(rec: &Recorder) -> Vec<(String, String)> {
    rec.accepted()
        .iter()
        .flat_map(|b| b["alerts"].as_array().cloned().unwrap_or_default())
        .map(|a| {
            (
                a["fingerprint"].as_str().unwrap_or("").to_string(),
                a["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

/// The issue's outage test, with real processes: Alertmanager is down while the alerts
/// fire, mqscope is stopped (SIGTERM) and started again, Alertmanager comes back: through
/// Alertmanager, the webhook receives each alert exactly once firing and once resolved.
/// The resolution comes from the restarted mqscope: the brute force is over, so the alerts
/// it took back from its last run resolve once `restore_grace_s` passes without a
/// recurrence.
#[test]
fn alertmanager_outage_and_mqscope_restart_deliver_each_change_once() {
    let dir = temp_dir("live-am-restart");
    let (_broker, port) = password_broker(&dir);
    let hook = Recorder::start(0, vec![]);
    let am_port = free_port();
    let cfg = write_config(
        &dir,
        port,
        &format!(
            r#"
[rules]
# Long: the alerts are still firing when mqscope stops.
cooldown_s = 600

[alerts]
spool_dir = "SPOOL"
restore_grace_s = 3

[[alerts.receivers]]
name = "am"
kind = "alertmanager"
url = "http://127.0.0.1:{am_port}"
"#
        ),
    );
    let args = ["--config", cfg.to_str().unwrap()];
    let mq = start_mqscope(&dir, &args);
    brute_force(port);
    mq.wait_metrics(
        &[(
            r#"mqscope_alerts_firing{rule="auth_brute_force",severity="high"}"#,
            2.0,
        )],
        Duration::from_secs(15),
    );
    let first = mq.terminate();
    assert_eq!(first["outputs"]["alerts_fired"], 2, "{first:#}");
    assert_eq!(first["outputs"]["alerts_resolved"], 0);
    // Nothing could be delivered: both wait in the spool.
    let spooled = std::fs::read_to_string(dir.join("spool").join("am.spool.jsonl"))
        .or_else(|_| {
            // The spool's file name is the receiver's; find it whatever its suffix.
            std::fs::read_dir(dir.join("spool"))
                .unwrap()
                .flatten()
                .find(|e| e.file_name().to_string_lossy().starts_with("am"))
                .map(|e| std::fs::read_to_string(e.path()).unwrap())
                .ok_or(())
        })
        .expect("spool file");
    assert!(spooled.contains("auth_brute_force"), "{spooled}");
    assert!(hook.accepted().is_empty());

    let _am = Am::start(&dir, am_port, hook.port);
    let mq = start_mqscope(&dir, &args);
    // Firing (from the spool), then resolved (grace over, no recurrence).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let seen = am_seen(&hook);
        if seen.iter().filter(|(_, s)| s == "resolved").count() >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "got {seen:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Alertmanager's group_interval (1 s) would show a duplicate by now.
    std::thread::sleep(Duration::from_secs(3));
    let second = mq.terminate();
    assert_eq!(second["outputs"]["alerts_restored"], 2, "{second:#}");
    assert_eq!(second["outputs"]["alerts_fired"], 0);
    assert_eq!(second["outputs"]["alerts_resolved"], 2);
    let seen = am_seen(&hook);
    let fps: std::collections::BTreeSet<&String> = seen.iter().map(|(f, _)| f).collect();
    assert_eq!(fps.len(), 2, "{seen:?}");
    for fp in fps {
        for state in ["firing", "resolved"] {
            let n = seen.iter().filter(|(f, s)| f == fp && s == state).count();
            assert_eq!(n, 1, "{fp} {state}: {seen:?}");
        }
    }
}

/// Issue #6: baselines are saved to disk and reloaded at start, so a restart does not
/// relearn from zero. A real publisher feeds a topic once every 200 ms; after SIGTERM the
/// file holds the learned series; the next start loads them (and says how many).
#[test]
fn anomaly_baselines_survive_a_restart() {
    let dir = temp_dir("live-baselines");
    let (_broker, port) = password_broker(&dir);
    let baselines = dir.join("baselines.json");
    let cfg = write_config(
        &dir,
        port,
        &format!(
            "\n[anomaly]\nbucket_secs = 1\nwarmup_s = 2\n[anomaly.persist]\npath = \"{}\"\ninterval_s = 10\n",
            baselines.display()
        ),
    );
    let args = ["--config", cfg.to_str().unwrap()];
    let mq = start_mqscope(&dir, &args);
    let p = port.to_string();
    for i in 0..20 {
        let m = i.to_string();
        let out = run_client(&[
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            &p,
            "-u",
            "dev",
            "-P",
            "devpw",
            "-i",
            "sensor-1",
            "-t",
            "plant/line1/temp",
            "-m",
            &m,
            "-q",
            "1",
        ]);
        assert!(out.status.success(), "{out:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    let first = mq.terminate();
    let series = first["anomalies"]["counters"].clone();
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&baselines).unwrap())
        .expect("baselines file is JSON");
    let text = saved.to_string();
    assert!(text.contains("plant/line1/temp"), "{series}");
    let mut mq = start_mqscope(&dir, &args);
    wait_line(
        &mq.stderr,
        "anomaly baselines loaded",
        Duration::from_secs(5),
        &mut mq.seen,
    );
    let line = mq
        .seen
        .iter()
        .find(|l| l.contains("anomaly baselines loaded"))
        .unwrap()
        .clone();
    let n: u64 = line
        .split("series=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(n >= 1, "{line}");
    assert!(line.contains("topics=1"), "{line}");
    mq.terminate();
}
