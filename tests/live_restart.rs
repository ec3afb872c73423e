//! The broker is killed and restarted under a running `mqscope run` (capture on `lo` and
//! the `$SYS` input on the same Mosquitto): the `$SYS` input sees the loss, reconnects,
//! detects the restart (uptime going backwards), capture keeps counting, nothing panics
//! and SIGTERM still exits 0 with the stats file.
//!
//! Needs root (or CAP_NET_RAW) for capture on `lo`, and Debian's `mosquitto` package.

mod live_common;

use std::path::Path;
use std::time::Duration;

use live_common::*;

fn conf(dir: &Path, port: u16) -> std::path::PathBuf {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nsys_interval 1\n"),
    )
    .unwrap();
    conf
}

fn publish(port: u16, id: &str) {
    let p = port.to_string();
    let out = run_client(&[
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        &p,
        "-i",
        id,
        "-q",
        "1",
        "-t",
        "rs/x",
        "-m",
        "x",
    ]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn broker_restart_mid_run_reconnects_sys_and_capture_continues() {
    let dir = temp_dir("restart");
    let port = free_port();
    let conf = conf(&dir, port);
    let mut broker = start_mosquitto(&conf, port, &dir.join("mosquitto-1.log"));
    let p = port.to_string();
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut mq = start_mqscope(
        &dir,
        &["--interface", "lo", "--ports", &p, "--broker", &url],
    );
    wait_line(
        &mq.stderr,
        "broker input connected",
        Duration::from_secs(10),
        &mut mq.seen,
    );
    publish(port, "before-restart");
    // Let the first lifetime's uptime reach 3 s so the next one starts visibly lower.
    let uptime = "mqscope_broker_uptime_seconds";
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while mq.metric(uptime) < 3.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no $SYS uptime >= 3 s on /metrics"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // A crash, not a clean stop: SIGKILL.
    broker.0.kill().unwrap();
    broker.0.wait().unwrap();
    wait_line(
        &mq.stderr,
        "broker unreachable",
        Duration::from_secs(10),
        &mut mq.seen,
    );
    let _broker2 = start_mosquitto(&conf, port, &dir.join("mosquitto-2.log"));
    // Reconnect within the backoff (500 ms doubling, jittered): session 2.
    wait_line(
        &mq.stderr,
        "broker input connected",
        Duration::from_secs(10),
        &mut mq.seen,
    );
    publish(port, "after-restart");
    // The new lifetime's uptime is lower: one restart detected, and capture has counted
    // both publishers' PUBLISH.
    mq.wait_metrics(
        &[
            ("mqscope_broker_restarts_total", 1.0),
            (
                r#"mqscope_mqtt_packets_total{type="publish",direction="in"}"#,
                2.0,
            ),
        ],
        Duration::from_secs(10),
    );
    assert!(
        mq.seen.iter().any(|l| l.contains("session=2")),
        "{:#?}",
        mq.seen
    );
    let stats = mq.terminate();

    let b = &stats["broker"];
    assert_eq!(b["connects"], 2, "{b:#}");
    assert!(b["failures"].as_u64().unwrap() >= 1, "{b:#}");
    assert_eq!(b["status"]["status"], "connected", "{b:#}");
    assert_eq!(b["status"]["session"], 2, "{b:#}");
    assert_eq!(b["sys"]["restarts"], 1, "{b:#}");
    assert_eq!(b["nodes"][0]["generation"], 1, "{b:#}");
    assert_eq!(b["nodes"][0]["kind"], "mosquitto", "{b:#}");
    // The broker input's loss is an event too.
    let unreachable = stats["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "broker_unreachable")
        .count();
    assert!(unreachable >= 1, "{:#}", stats["recent_events"]);

    // Capture across both lifetimes: mqscope's own two $SYS sessions and one publisher
    // before and one after the restart each sent one CONNECT; each publisher one PUBLISH.
    assert_eq!(
        count(&stats, "CONNECT"),
        (4, 0),
        "{:#}",
        stats["packets_by_type_and_direction"]
    );
    assert_eq!(count(&stats, "CONNACK"), (0, 4));
    assert_eq!(count(&stats, "PUBLISH").0, 2);
    // Every $SYS delivery to mqscope's own input was on the wire too: the capture's count
    // and the MQTT client's agree (up to the few that can land between capture stopping
    // and the input being closed at shutdown).
    let on_wire = count(&stats, "PUBLISH").1;
    let received = b["messages"].as_u64().unwrap();
    assert!(
        received > 0 && on_wire.abs_diff(received) <= 5,
        "{on_wire} vs {received}"
    );
    let obs = serde_json::to_string(&stats["observer"]).unwrap();
    for id in ["before-restart", "after-restart"] {
        assert!(obs.contains(id), "observer lacks client id {id}");
    }
    assert_eq!(stats["dissect"]["decode_errors"], serde_json::json!({}));
    let c = &stats["capture"]["counters"];
    assert_eq!(c["frames_dropped"], 0, "{c:#}");
    assert_eq!(stats["final"], true);
}
