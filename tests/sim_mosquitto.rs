//! `mqscope simulate` against a real Mosquitto (password file + ACL), recorded on
//! loopback by TShark (an independent capture tool), then replayed by mqscope: the
//! misbehaviours the simulator switched on are what the observation core reports.
//! Needs root (or CAP_NET_RAW) for the loopback capture, as CI has.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills the child when the test ends, however it ends.
struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn wait_for_port(port: u16) {
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "mosquitto did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn mqscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqscope"))
}

#[test]
fn simulated_misbehaviours_show_up_in_the_replay_report() {
    let dir = std::env::temp_dir().join(format!("mqscope-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let passwd = dir.join("passwd");
    let st = Command::new("mosquitto_passwd")
        .args(["-c", "-b"])
        .arg(&passwd)
        .args(["operator", "s3cret"])
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::write(
        dir.join("acl"),
        "user operator\ntopic readwrite acme/#\ntopic read $SYS/#\n",
    )
    .unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\n",
            passwd.display(),
            dir.join("acl").display()
        ),
    )
    .unwrap();
    let _broker = Guard(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_for_port(port);

    let pcap = dir.join("sim.pcapng");
    let mut tshark = Command::new("tshark")
        .args(["-i", "lo", "-f", &format!("tcp port {port}"), "-w"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // TShark says "Capturing on 'Loopback: lo'" once packets are being recorded.
    let mut err = BufReader::new(tshark.stderr.take().unwrap());
    let mut line = String::new();
    while err.read_line(&mut line).unwrap() > 0 && !line.contains("Capturing on") {
        line.clear();
    }
    let tshark = Guard(tshark);

    std::fs::write(dir.join("pw"), "s3cret\n").unwrap();
    let st = mqscope()
        .args([
            "simulate",
            "--broker",
            &format!("127.0.0.1:{port}"),
            "--devices",
            "4",
            "--consumers",
            "2",
            "--duration",
            "4",
        ])
        .args([
            "--interval-ms",
            "500",
            "--username",
            "operator",
            "--password-file",
        ])
        .arg(dir.join("pw"))
        .args([
            "--brute-force",
            "3",
            "--acl-topic",
            "admin/config",
            "--wildcard-subscribe",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    std::thread::sleep(Duration::from_millis(500));
    // SIGINT lets TShark finish the file.
    let _ = Command::new("kill")
        .args(["-INT", &tshark.0.id().to_string()])
        .status();
    std::thread::sleep(Duration::from_millis(1500));
    drop(tshark);

    let summary = dir.join("summary.json");
    let report = dir.join("report.json");
    let out = mqscope()
        .args(["replay", "--ports", &port.to_string(), "--summary-json"])
        .arg(&summary)
        .arg("--report-json")
        .arg(&report)
        .arg(&pcap)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let events: std::collections::HashMap<String, u64> = r["events_by_kind"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e[0].as_str().unwrap().to_string(), e[1].as_u64().unwrap()))
        .collect();
    eprintln!("packets {}; events {events:?}", s["packets_by_type"]);
    // 4 devices + 2 consumers + 2 intruders (3.1.1 and 5) + 1 wildcard tool + 3 guesses.
    assert_eq!(s["packets_by_type"]["CONNECT"], 12);
    // Every wrong password is refused (MQTT 3.1.1 code 5 / MQTT 5 0x86) and reported.
    assert_eq!(events["auth_failure"], 3);
    assert_eq!(events["connect_refused"], 3);
    assert_eq!(events["wildcard_subscribe"], 1);
    assert_eq!(events["sys_subscribe"], 1);
    // Mosquitto's acl_file refuses the MQTT 5 intruder's PUBLISH with PUBACK 0x87 (the
    // 3.1.1 one gets a plain PUBACK: 3.1.1 cannot say no); SUBSCRIBEs are granted
    // (read access is enforced at delivery).
    assert_eq!(events["publish_refused"], 1);
}
