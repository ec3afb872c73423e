//! `mqscope run` end to end with alerting: a real Mosquitto with a password file, wrong
//! passwords from the real `mosquitto_pub` client, captured on loopback; the security
//! rules fire `auth_brute_force` and the configured webhook receiver (Alertmanager webhook
//! v4 JSON) gets it firing, then resolved once the cool-down passed. `/metrics` shows it
//! in `mqscope_alerts_firing` meanwhile.
//!
//! Needs root (capture on `lo`) and Debian's `mosquitto` and `mosquitto-clients`.

mod alerts_support;
mod live_common;

use std::process::Command;
use std::time::{Duration, Instant};

use alerts_support::Recorder;
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

#[test]
fn brute_force_alert_reaches_the_webhook_firing_then_resolved() {
    let dir = temp_dir("live-alerts");
    let port = free_port();
    let pwfile = dir.join("passwd");
    std::fs::write(&pwfile, "").unwrap();
    let st = Command::new("mosquitto_passwd")
        .args(["-b", pwfile.to_str().unwrap(), "dev", "devpw"])
        .status()
        .expect("mosquitto_passwd (Debian package mosquitto)");
    assert!(st.success());
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\n",
            pwfile.display()
        ),
    )
    .unwrap();
    let _broker = start_mosquitto(&conf, port, &dir.join("mosquitto.log"));

    let hook = Recorder::start(0, vec![]);
    let spool = dir.join("spool");
    let cfg = dir.join("mqscope.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
[capture]
interface = "lo"
ports = [{port}]

[rules]
# Short, so the resolution arrives within the test.
cooldown_s = 2

[alerts]
spool_dir = "{}"
generator_url = "http://mqscope.test/metrics"

[[alerts.receivers]]
name = "hook"
kind = "webhook"
url = "{}"
"#,
            spool.display(),
            hook.url("/alerts")
        ),
    )
    .unwrap();
    let check = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .arg("check-config")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let mq = start_mqscope(&dir, &["--config", cfg.to_str().unwrap()]);

    // Six wrong passwords for user dev from 127.0.0.1: the default threshold is five
    // failures within 60 s, per source address and per username.
    let p = port.to_string();
    for i in 0..6 {
        let out = run_client(&[
            "mosquitto_pub",
            "-h",
            "127.0.0.1",
            "-p",
            &p,
            "-u",
            "dev",
            "-P",
            "wrong",
            "-i",
            &format!("guess-{i}"),
            "-t",
            "x",
            "-m",
            "1",
            "-V",
            "mqttv311",
        ]);
        assert!(!out.status.success(), "wrong password accepted");
    }

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
    mq.wait_metrics(
        &[(
            r#"mqscope_alerts_firing{rule="auth_brute_force",severity="high"}"#,
            0.0,
        )],
        Duration::from_secs(5),
    );
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
