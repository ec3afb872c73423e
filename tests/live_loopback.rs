//! `mqscope run` against a real Mosquitto on loopback: capture sees every packet the test's
//! clients exchanged (exact counts per type and direction, from the MQTT flows the clients
//! perform), SIGTERM shuts down cleanly within the bound, the $SYS input connects, and
//! capture without CAP_NET_RAW fails at start naming the capability.
//!
//! Needs root (or CAP_NET_RAW) for capture on `lo`, and the Debian `mosquitto`,
//! `mosquitto_pub`, `mosquitto_sub` binaries; CI has both.

mod live_common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use live_common::*;

/// Mosquitto on 127.0.0.1:`port`, `$SYS` every second; returns once it accepts (a bare
/// TCP connect before capture starts: invisible to the counts).
fn start_sys_mosquitto(dir: &Path, port: u16) -> Guard {
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nsys_interval 1\n"),
    )
    .unwrap();
    start_mosquitto(&conf, port, &dir.join("mosquitto.log"))
}

fn run_ok(cmd: &mut Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn loopback_capture_sees_every_packet_of_a_known_exchange() {
    exact_exchange("lo", 1);
}

/// `any` (Linux cooked capture, DLT 113) sees loopback traffic too, each packet once.
#[test]
fn the_any_interface_sees_the_same_exchange() {
    exact_exchange("any", 113);
}

fn exact_exchange(iface: &str, dlt: u64) {
    let dir = temp_dir(&format!("exact-{iface}"));
    let port = free_port();
    let _broker = start_sys_mosquitto(&dir, port);
    let p = port.to_string();
    let mq = start_mqscope(&dir, &["--interface", iface, "--ports", &p]);

    // One subscriber at QoS 2 waiting for 3 messages; `-d` reports its SUBACK (line
    // buffered through stdbuf) so the publishers only start once it is subscribed.
    let mut sub = Command::new("stdbuf")
        .args([
            "-oL",
            "mosquitto_sub",
            "-p",
            &p,
            "-q",
            "2",
            "-t",
            "lt/#",
            "-C",
            "3",
            "-d",
            "-i",
            &format!("lt-sub-{iface}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sub_out = lines_of(sub.stdout.take().unwrap());
    let mut sub = Guard(sub);
    let mut seen = Vec::new();
    wait_line(&sub_out, "SUBACK", Duration::from_secs(10), &mut seen);

    // QoS 2, 1, 0 in that order: the last delivery (QoS 0) has no handshake, so when the
    // subscriber disconnects after it every earlier acknowledgement is already sent.
    for (qos, topic) in [("2", "lt/2"), ("1", "lt/1"), ("0", "lt/0")] {
        run_ok(Command::new("mosquitto_pub").args(["-p", &p, "-q", qos, "-t", topic, "-m", "x"]));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = sub.0.try_wait().unwrap() {
            assert!(s.success());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "subscriber did not get 3 messages"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Let the last FIN/ACKs reach the capture thread's ring (it also drains on stop).
    std::thread::sleep(Duration::from_millis(200));
    // While it runs, /metrics (refreshed every second) shows the same 28 packets.
    let addr = mq.addr.clone();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let body = http_get(&addr, "/metrics");
        let total: f64 = body
            .lines()
            .filter(|l| l.starts_with("mqscope_mqtt_packets_total{"))
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum();
        if total == 28.0 {
            assert!(http_get(&addr, "/readyz").starts_with("HTTP/1.1 200"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "/metrics never showed 28 packets (last {total})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let stats = mq.terminate();

    // Expected from the MQTT flows (spec 3.1.1 §4.3): 3 publishers and 1 subscriber.
    //   each client: CONNECT →, ← CONNACK, DISCONNECT →
    //   subscriber:  SUBSCRIBE →, ← SUBACK
    //   publishers:  PUBLISH → (×3); QoS 1: ← PUBACK; QoS 2: ← PUBREC, PUBREL →, ← PUBCOMP
    //   deliveries:  ← PUBLISH (×3); QoS 1: PUBACK →; QoS 2: PUBREC →, ← PUBREL, PUBCOMP →
    let want: [(&str, (u64, u64)); 10] = [
        ("CONNECT", (4, 0)),
        ("CONNACK", (0, 4)),
        ("SUBSCRIBE", (1, 0)),
        ("SUBACK", (0, 1)),
        ("PUBLISH", (3, 3)),
        ("PUBACK", (1, 1)),
        ("PUBREC", (1, 1)),
        ("PUBREL", (1, 1)),
        ("PUBCOMP", (1, 1)),
        ("DISCONNECT", (4, 0)),
    ];
    for (ty, n) in want {
        assert_eq!(
            count(&stats, ty),
            n,
            "{ty}: {:#}",
            stats["packets_by_type_and_direction"]
        );
    }
    let d = &stats["dissect"];
    assert_eq!(d["mqtt_packets"], 28, "{d:#}");
    assert_eq!(d["flows"]["mqtt"], 4, "{d:#}");
    assert_eq!(d["stream"]["gaps"], 0, "{d:#}");
    assert_eq!(d["decode_errors"], serde_json::json!({}), "{d:#}");
    let c = &stats["capture"]["counters"];
    assert_eq!(c["frames_dropped"], 0, "{c:#}");
    assert_eq!(c["pcap_dropped"], 0, "{c:#}");
    assert_eq!(stats["capture"]["dlt"], dlt);
    let filter = stats["capture"]["filter"].as_str().unwrap();
    assert!(filter.contains(&format!("port {port}")), "{filter}");
    assert_eq!(stats["final"], true);
    // The observation core saw the same exchange: one subscriber connection's client id.
    let obs = serde_json::to_string(&stats["observer"]).unwrap();
    assert!(
        obs.contains(&format!("lt-sub-{iface}")),
        "observer snapshot lacks the client id"
    );
}

#[test]
fn sys_input_connects_and_feeds_broker_metrics() {
    let dir = temp_dir("sys");
    let port = free_port();
    let _broker = start_sys_mosquitto(&dir, port);
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut mq = start_mqscope(&dir, &["--no-capture", "--broker", &url]);
    // Mosquitto publishes $SYS every second (sys_interval 1); a few rounds arrive.
    wait_line(
        &mq.stderr,
        "broker input connected",
        Duration::from_secs(10),
        &mut mq.seen,
    );
    std::thread::sleep(Duration::from_millis(2500));
    let stats = mq.terminate();
    let b = &stats["broker"];
    assert_eq!(b["status"]["status"], "connected", "{b:#}");
    assert!(b["messages"].as_u64().unwrap() > 0, "{b:#}");
    assert_eq!(b["nodes"][0]["kind"], "mosquitto", "{b:#}");
    // mqscope's own connection is one of the broker's clients.
    assert!(
        b["nodes"][0]["clients_connected"].as_u64().unwrap() >= 1,
        "{b:#}"
    );
    assert!(stats["capture"].is_null());
}

#[test]
fn capture_without_cap_net_raw_fails_at_start_naming_it() {
    // Drop CAP_NET_RAW (and CAP_NET_ADMIN) from the bounding set: even root then execs
    // mqscope without them.
    let out = Command::new("setpriv")
        .args(["--bounding-set=-net_raw,-net_admin", "--"])
        .arg(env!("CARGO_BIN_EXE_mqscope"))
        .args([
            "run",
            "--interface",
            "lo",
            "--ports",
            "1883",
            "--listen",
            "127.0.0.1:0",
        ])
        .output()
        .expect("setpriv (util-linux) installed");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(77), "{stderr}");
    assert!(stderr.contains("CAP_NET_RAW"), "{stderr}");
    assert!(stderr.contains("\"lo\""), "{stderr}");
    assert!(stderr.contains("--no-capture"), "{stderr}");
}

#[test]
fn an_unknown_interface_fails_at_start() {
    let out = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args(["run", "--interface", "nosuch0", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(66), "{stderr}");
    assert!(stderr.contains("nosuch0"), "{stderr}");
}

/// The exporter hook: `app::run` in-process publishes a snapshot every second into the
/// slot, and a stop request ends it cleanly with a final snapshot.
#[test]
fn run_in_process_publishes_snapshots_and_stops_on_request() {
    use mqscope::app::{self, RunOptions, StopHandle};
    use mqscope::config::{Config, Overrides};

    let port = free_port();
    let cfg = Config::from_overrides(&Overrides {
        interface: Some("lo".into()),
        ports: Some(vec![port]),
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    })
    .unwrap();
    let slot = app::new_snapshot_slot();
    let stop = StopHandle::new();
    let opts = RunOptions {
        snapshot: Some(slot.clone()),
        stop: Some(stop.clone()),
        ..Default::default()
    };
    let t = std::thread::spawn(move || app::run(cfg, opts));
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        if let Some(s) = slot.lock().unwrap().clone() {
            break s;
        }
        assert!(Instant::now() < deadline, "no snapshot published");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!first.final_snapshot);
    assert!(first.ready());
    assert_eq!(first.capture.as_ref().unwrap().interface, "lo");
    let asked = Instant::now();
    stop.stop();
    let res = t.join().unwrap();
    assert!(res.is_ok(), "{res:?}");
    assert!(asked.elapsed() < mqscope::app::SHUTDOWN_LIMIT);
    let last = slot.lock().unwrap().clone().unwrap();
    assert!(last.final_snapshot);
    assert!(!last.ready());
    assert!(last.at_ns >= first.at_ns);
}
