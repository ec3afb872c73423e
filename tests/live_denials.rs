//! Denials and authentication failures from a real Mosquitto, seen by `mqscope run` on
//! loopback: each is recorded with client id, topic and reason code.
//!
//! Mosquitto 2.0's `acl_file` grants every SUBSCRIBE (read access is only enforced at
//! delivery), so the broker uses the dynamic-security plugin, which refuses SUBSCRIBE on
//! the wire. Observed with Mosquitto 2.0.11 and the expected codes from the MQTT specs:
//! - MQTT 5 PUBLISH QoS 1 to a denied topic: PUBACK 0x87 "Not authorized" (5.0 §3.4.2.1);
//! - MQTT 5 SUBSCRIBE to a denied filter: SUBACK 0x87 (5.0 §3.9.3);
//! - MQTT 3.1.1 SUBSCRIBE to a denied filter: SUBACK 0x80 "Failure" (3.1.1 §3.9.3);
//! - wrong password: 3.1.1 CONNACK 5 "not authorized" (§3.2.2.3), MQTT 5 CONNACK 0x87
//!   (Mosquitto answers "not authorized" rather than 0x86 "bad user name or password").
//!
//! Needs root (or CAP_NET_RAW) for capture on `lo` and Debian's `mosquitto` package
//! (broker, clients, `mosquitto_ctrl`, `mosquitto_dynamic_security.so`).

mod live_common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use live_common::*;
use serde_json::Value;

const PLUGIN_PATHS: [&str; 2] = [
    "/usr/lib/x86_64-linux-gnu/mosquitto_dynamic_security.so",
    "/usr/lib/aarch64-linux-gnu/mosquitto_dynamic_security.so",
];

fn dynsec_plugin() -> String {
    if let Some(p) = PLUGIN_PATHS.iter().find(|p| Path::new(p).exists()) {
        return p.to_string();
    }
    // Elsewhere: ask dpkg where the package put it.
    let out = Command::new("dpkg")
        .args(["-L", "mosquitto"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find(|l| l.ends_with("mosquitto_dynamic_security.so"))
        .expect("mosquitto_dynamic_security.so (Debian package mosquitto)")
        .to_string()
}

fn ok(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Broker with dynamic security: admin `admin`, client `dev` (password `devpw`) allowed
/// to publish, subscribe and receive on `ok/#` only (the plugin's defaults deny the rest).
fn start_secured_broker(dir: &Path, port: u16) -> Guard {
    let dynsec = dir.join("dynsec.json");
    ok(
        &Command::new("mosquitto_ctrl")
            .args(["dynsec", "init"])
            .arg(&dynsec)
            .args(["admin", "adminpw"])
            .output()
            .expect("mosquitto_ctrl installed"),
        "dynsec init",
    );
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\nplugin {}\nplugin_opt_config_file {}\n",
            dynsec_plugin(),
            dynsec.display()
        ),
    )
    .unwrap();
    let g = start_mosquitto(&conf, port, &dir.join("mosquitto.log"));
    let p = port.to_string();
    let ctrl = |args: &[&str]| {
        let out = Command::new("mosquitto_ctrl")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &p,
                "-u",
                "admin",
                "-P",
                "adminpw",
                "dynsec",
            ])
            .args(args)
            .output()
            .unwrap();
        ok(&out, &format!("mosquitto_ctrl dynsec {args:?}"));
    };
    ctrl(&["createClient", "dev", "-p", "devpw"]);
    ctrl(&["createRole", "dev"]);
    for acl in [
        "publishClientSend",
        "publishClientReceive",
        "subscribePattern",
    ] {
        ctrl(&["addRoleACL", "dev", acl, "ok/#", "allow"]);
    }
    ctrl(&["addClientRole", "dev", "dev"]);
    g
}

/// `mosquitto_pub`/`mosquitto_sub` as user `dev` with `-d` (which prints the codes the
/// broker sent, independently of mqscope).
fn client(tool: &str, port: u16, version: &str, id: &str, password: &str, rest: &[&str]) -> String {
    let p = port.to_string();
    let mut args = vec![
        tool,
        "-h",
        "127.0.0.1",
        "-p",
        &p,
        "-V",
        version,
        "-i",
        id,
        "-u",
        "dev",
        "-P",
        password,
        "-d",
    ];
    args.extend_from_slice(rest);
    let out = run_client(&args);
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The recorded events of `kind` for client `id`.
fn events<'a>(stats: &'a Value, kind: &str, id: &str) -> Vec<&'a Value> {
    stats["recent_events"]
        .as_array()
        .expect("recent_events in the stats file")
        .iter()
        .filter(|e| e["kind"] == kind && e["client_id"] == id)
        .collect()
}

#[test]
fn acl_denials_and_bad_passwords_are_recorded_with_client_topic_and_code() {
    let dir = temp_dir("denials");
    let port = free_port();
    let _broker = start_secured_broker(&dir, port);
    let p = port.to_string();
    // Started after the dynsec setup, so the admin's $CONTROL traffic is not captured.
    let mq = start_mqscope(&dir, &["--interface", "lo", "--ports", &p, "--no-broker"]);

    // Control: an allowed QoS 1 publish is accepted (0x10 "No matching subscribers" is a
    // success code, 5.0 §3.4.2.1) and raises nothing.
    let out = client(
        "mosquitto_pub",
        port,
        "mqttv5",
        "pub-ok",
        "devpw",
        &["-q", "1", "-t", "ok/a", "-m", "x"],
    );
    assert!(out.contains("received PUBACK (Mid: 1, RC:16)"), "{out}");
    // MQTT 5 publish to a denied topic: PUBACK 0x87 (135).
    let out = client(
        "mosquitto_pub",
        port,
        "mqttv5",
        "pub5-deny",
        "devpw",
        &["-q", "1", "-t", "secret/a", "-m", "x"],
    );
    assert!(out.contains("received PUBACK (Mid: 1, RC:135)"), "{out}");
    // Subscribes to a denied filter: MQTT 5 SUBACK 0x87, 3.1.1 SUBACK 0x80 (128); the
    // client exits when all its subscriptions are refused.
    let out = client(
        "mosquitto_sub",
        port,
        "mqttv5",
        "sub5-deny",
        "devpw",
        &["-t", "secret/#", "-W", "5"],
    );
    assert!(out.contains("Subscribed (mid: 1): 135"), "{out}");
    let out = client(
        "mosquitto_sub",
        port,
        "mqttv311",
        "sub3-deny",
        "devpw",
        &["-t", "secret/#", "-W", "5"],
    );
    assert!(out.contains("Subscribed (mid: 1): 128"), "{out}");
    // Wrong passwords: 3.1.1 CONNACK 5, MQTT 5 CONNACK 0x87.
    let out = client(
        "mosquitto_pub",
        port,
        "mqttv311",
        "bad3",
        "wrong",
        &["-t", "ok/a", "-m", "x"],
    );
    assert!(out.contains("received CONNACK (5)"), "{out}");
    let out = client(
        "mosquitto_pub",
        port,
        "mqttv5",
        "bad5",
        "wrong",
        &["-t", "ok/a", "-m", "x"],
    );
    assert!(out.contains("received CONNACK (135)"), "{out}");

    // Every client has exited; /metrics (refreshed every second) shows all of it. ACL
    // denials count only "not authorised" (0x87): 3.1.1's 0x80 says nothing about why.
    mq.wait_metrics(
        &[
            (r#"mqscope_events_total{kind="publish_refused"}"#, 1.0),
            (r#"mqscope_events_total{kind="subscribe_refused"}"#, 2.0),
            (r#"mqscope_events_total{kind="auth_failure"}"#, 2.0),
            (r#"mqscope_events_total{kind="connect_refused"}"#, 2.0),
            (r#"mqscope_acl_denials_total{action="publish"}"#, 1.0),
            (r#"mqscope_acl_denials_total{action="subscribe"}"#, 1.0),
            (
                r#"mqscope_auth_failures_total{reason="not_authorized"}"#,
                2.0,
            ),
            (r#"mqscope_auth_failures_total{reason="unknown"}"#, 0.0),
            (r#"mqscope_connections_total{result="accepted"}"#, 4.0),
            (r#"mqscope_connections_total{result="refused"}"#, 2.0),
        ],
        Duration::from_secs(10),
    );
    let stats = mq.terminate();

    let one = |kind: &str, id: &str| -> Value {
        let v = events(&stats, kind, id);
        assert_eq!(v.len(), 1, "{kind} for {id}: {:#}", stats["recent_events"]);
        v[0].clone()
    };
    let e = one("publish_refused", "pub5-deny");
    assert_eq!(
        (&e["topic"], &e["code"], &e["username"]),
        (&"secret/a".into(), &135.into(), &"dev".into()),
        "{e:#}"
    );
    let e = one("subscribe_refused", "sub5-deny");
    assert_eq!(
        (&e["topic"], &e["code"], &e["username"]),
        (&"secret/#".into(), &135.into(), &"dev".into()),
        "{e:#}"
    );
    let e = one("subscribe_refused", "sub3-deny");
    assert_eq!(
        (&e["topic"], &e["code"], &e["username"]),
        (&"secret/#".into(), &128.into(), &"dev".into()),
        "{e:#}"
    );
    for (id, code) in [("bad3", 5), ("bad5", 0x87)] {
        for kind in ["auth_failure", "connect_refused"] {
            let e = one(kind, id);
            assert_eq!(
                (&e["code"], &e["username"]),
                (&code.into(), &"dev".into()),
                "{e:#}"
            );
            assert_eq!(e["source"], "wire");
            assert_eq!(e["broker_addr"], format!("127.0.0.1:{port}"), "{e:#}");
        }
    }
    // Nothing else was refused: the allowed publish raised no event.
    let refusals = stats["recent_events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["kind"].as_str().unwrap().ends_with("_refused") || e["kind"] == "auth_failure"
        })
        .count();
    assert_eq!(refusals, 7, "{:#}", stats["recent_events"]);
    assert!(events(&stats, "publish_refused", "pub-ok").is_empty());
    let c = &stats["capture"]["counters"];
    assert_eq!(c["frames_dropped"], 0, "{c:#}");
    // 6 clients, each one CONNECT.
    assert_eq!(count(&stats, "CONNECT"), (6, 0));
    assert_eq!(count(&stats, "CONNACK"), (0, 6));
}
