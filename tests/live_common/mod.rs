//! Helpers shared by the live tests against a real Mosquitto (`live_denials.rs`,
//! `live_restart.rs`): child-process guards, free ports, starting `mqscope run`, reading
//! its stderr, scraping `/metrics`, SIGTERM with the exit bound; a password-protected
//! Mosquitto and a `mosquitto_pub` login.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Kills (and reaps) a child process when the test ends, however it ends.
pub struct Guard(pub Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("mqscope-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts `mosquitto -c conf` and returns once 127.0.0.1:`port` accepts TCP. The probe is
/// a bare TCP connect (no MQTT), invisible to the MQTT counts.
pub fn start_mosquitto(conf: &Path, port: u16, log: &Path) -> Guard {
    let log = std::fs::File::create(log).unwrap();
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(conf)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("mosquitto installed");
    let g = Guard(child);
    wait_accepting(port, Duration::from_secs(10));
    g
}

pub fn wait_accepting(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing accepts on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Lines of a child's stream, read on a thread.
pub fn lines_of(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits for a line containing `needle`, appending every line read to `seen`.
pub fn wait_line(rx: &Receiver<String>, needle: &str, within: Duration, seen: &mut Vec<String>) {
    let deadline = Instant::now() + within;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                let hit = l.contains(needle);
                seen.push(l);
                if hit {
                    return;
                }
            }
            Err(_) => panic!("no line with {needle:?} within {within:?}; got:\n{seen:#?}"),
        }
    }
}

pub struct Mqscope {
    pub guard: Guard,
    pub stderr: Receiver<String>,
    pub seen: Vec<String>,
    pub stats: PathBuf,
    /// Where `/metrics` is served.
    pub addr: String,
}

/// `mqscope run --listen 127.0.0.1:0 --stats-file DIR/stats.json EXTRA...`, returned once
/// capture has started and the HTTP endpoint is bound.
pub fn start_mqscope(dir: &Path, extra: &[&str]) -> Mqscope {
    let stats = dir.join("stats.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args(["run", "--listen", "127.0.0.1:0", "--stats-file"])
        .arg(&stats)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err: ChildStderr = child.stderr.take().unwrap();
    let mut m = Mqscope {
        guard: Guard(child),
        stderr: lines_of(err),
        seen: Vec::new(),
        stats,
        addr: String::new(),
    };
    // "capture started" is logged before the HTTP listener is bound.
    wait_line(
        &m.stderr,
        "serving /metrics",
        Duration::from_secs(10),
        &mut m.seen,
    );
    let line = m
        .seen
        .iter()
        .find(|l| l.contains("serving /metrics"))
        .unwrap();
    m.addr = line
        .split("listen=")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    m
}

impl Mqscope {
    /// SIGTERM, then the exit (code 0) must come within the shutdown bound (5 s) plus
    /// slack for a loaded CI machine; returns the final statistics.
    pub fn terminate(mut self) -> Value {
        let pid = self.guard.0.id().to_string();
        let sent = Instant::now();
        let st = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(st.success());
        let status = loop {
            if let Some(s) = self.guard.0.try_wait().unwrap() {
                break s;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(8),
                "mqscope did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            self.seen.push(l);
        }
        assert_eq!(status.code(), Some(0), "{:#?}", self.seen);
        for l in &self.seen {
            assert!(!l.contains("panicked"), "{:#?}", self.seen);
        }
        let text = std::fs::read_to_string(&self.stats).expect("stats file written");
        serde_json::from_str(&text).unwrap()
    }

    /// The value of one sample of `/metrics`, e.g. `mqscope_events_total{kind="auth_failure"}`;
    /// 0 if absent.
    pub fn metric(&self, sample: &str) -> f64 {
        metric_in(&http_get(&self.addr, "/metrics"), sample)
    }

    /// Polls `/metrics` (refreshed every second) until every `(sample, value)` holds;
    /// panics with the last body otherwise.
    pub fn wait_metrics(&self, want: &[(&str, f64)], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            let body = http_get(&self.addr, "/metrics");
            if want.iter().all(|(s, v)| metric_in(&body, s) == *v) {
                return body;
            }
            if Instant::now() >= deadline {
                let got: Vec<_> = want
                    .iter()
                    .map(|(s, _)| (*s, metric_in(&body, s)))
                    .collect();
                panic!("/metrics never showed {want:?}; last {got:?}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

pub fn metric_in(body: &str, sample: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(sample).and_then(|r| r.strip_prefix(' ')))
        .map_or(0.0, |v| v.trim().parse().unwrap())
}

/// Runs a client to completion (bounded by `timeout`), returning its output.
pub fn run_client(args: &[&str]) -> Output {
    let out = Command::new("timeout")
        .arg("10")
        .args(args)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(124), "{args:?} timed out");
    out
}

/// A plain HTTP/1.1 GET; the body for /metrics, the whole response otherwise.
pub fn http_get(addr: &str, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    c.read_to_string(&mut resp).unwrap();
    if path == "/metrics" {
        resp.split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default()
    } else {
        resp
    }
}

pub fn count(stats: &Value, ty: &str) -> (u64, u64) {
    let t = &stats["packets_by_type_and_direction"][ty];
    (
        t["c2s"].as_u64().unwrap_or(0),
        t["s2c"].as_u64().unwrap_or(0),
    )
}

/// Mosquitto on a free port, user `dev` / `devpw`, anonymous refused.
pub fn password_broker(dir: &Path) -> (Guard, u16) {
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
    let broker = start_mosquitto(&conf, port, &dir.join("mosquitto.log"));
    (broker, port)
}

/// One `mosquitto_pub` over MQTT 3.1.1 (QoS 0: CONNECT, CONNACK, PUBLISH, DISCONNECT when
/// accepted; CONNECT, CONNACK when refused).
pub fn publish(port: u16, id: &str, password: &str) -> bool {
    let p = port.to_string();
    let out = run_client(&[
        "mosquitto_pub",
        "-h",
        "127.0.0.1",
        "-p",
        &p,
        "-u",
        "dev",
        "-P",
        password,
        "-i",
        id,
        "-t",
        "plant/line1/temp",
        "-m",
        "21.5",
        "-V",
        "mqttv311",
    ]);
    out.status.success()
}
