//! A scripted HTTP receiver for the alert tests: records every POST body with the status
//! it answered; answers come from a script (then 200). Plain std threads, independent of
//! the tokio runtime under test.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct Shared {
    pub requests: Vec<(String, u16, serde_json::Value)>,
    pub script: VecDeque<(u16, Option<u64>)>,
}

pub struct Recorder {
    pub port: u16,
    pub shared: Arc<Mutex<Shared>>,
    stop: Arc<AtomicBool>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Recorder {
    /// Listens on `port` (0 = any).
    pub fn start(port: u16, script: Vec<(u16, Option<u64>)>) -> Recorder {
        Recorder::start_with(port, script, None)
    }

    /// Same, serving https with the given PEM certificate chain and key.
    pub fn start_tls(cert: &std::path::Path, key: &std::path::Path) -> Recorder {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
            .expect("cert")
            .collect::<Result<_, _>>()
            .expect("cert");
        let key = PrivateKeyDer::from_pem_file(key).expect("key");
        let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
        Recorder::start_with(0, vec![], Some(Arc::new(cfg)))
    }

    fn start_with(
        port: u16,
        script: Vec<(u16, Option<u64>)>,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Recorder {
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind recorder");
        let port = listener.local_addr().expect("addr").port();
        let shared = Arc::new(Mutex::new(Shared {
            requests: Vec::new(),
            script: script.into(),
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (s2, st2) = (Arc::clone(&shared), Arc::clone(&stop));
        let thread = thread::spawn(move || {
            for conn in listener.incoming() {
                if st2.load(Ordering::SeqCst) {
                    break;
                }
                if let Ok(c) = conn {
                    let _ = c.set_read_timeout(Some(Duration::from_secs(5)));
                    match &tls {
                        Some(cfg) => {
                            if let Ok(sc) = rustls::ServerConnection::new(Arc::clone(cfg)) {
                                serve(rustls::StreamOwned::new(sc, c), &s2);
                            }
                        }
                        None => serve(c, &s2),
                    }
                }
            }
        });
        Recorder {
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Bodies answered with 2xx.
    pub fn accepted(&self) -> Vec<serde_json::Value> {
        let s = self.shared.lock().expect("lock");
        s.requests
            .iter()
            .filter(|r| (200..300).contains(&r.1))
            .map(|r| r.2.clone())
            .collect()
    }

    pub fn total(&self) -> usize {
        self.shared.lock().expect("lock").requests.len()
    }

    pub async fn wait_accepted(&self, n: usize, within: Duration) -> Vec<serde_json::Value> {
        let end = Instant::now() + within;
        loop {
            let got = self.accepted();
            if got.len() >= n || Instant::now() > end {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve<S: Read + Write>(mut c: S, shared: &Mutex<Shared>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_end, len) = loop {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, len);
        }
    };
    while buf.len() < head_end + len {
        match c.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let request_line = String::from_utf8_lossy(&buf[..head_end])
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    let body: serde_json::Value =
        serde_json::from_slice(&buf[head_end..head_end + len]).unwrap_or(serde_json::Value::Null);
    let (status, retry) = {
        let mut s = shared.lock().expect("lock");
        let answer = s.script.pop_front().unwrap_or((200, None));
        s.requests.push((request_line, answer.0, body));
        answer
    };
    let extra = retry
        .map(|r| format!("Retry-After: {r}\r\n"))
        .unwrap_or_default();
    let _ = write!(
        c,
        "HTTP/1.1 {status} X\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = c.flush();
}

/// A TCP port nobody listens on (bound then released).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("mqscope-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

pub const ALERTMANAGER: &str = "/usr/bin/prometheus-alertmanager";

/// A running Debian `prometheus-alertmanager` routing everything to one webhook receiver
/// `hook` at `http://127.0.0.1:{hook_port}/hook` (every alert its own group (`...`), so
/// each notification is about one alert; group_wait 0 s,
/// group_interval 1 s, send_resolved), killed on drop.
pub struct Am {
    child: Child,
}

impl Am {
    pub fn start(dir: &Path, port: u16, hook_port: u16) -> Am {
        let config = dir.join("alertmanager.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  resolve_timeout: 5m\n\
                 route:\n  receiver: hook\n  group_by: ['...']\n  group_wait: 0s\n  group_interval: 1s\n  repeat_interval: 1h\n\
                 receivers:\n- name: hook\n  webhook_configs:\n  - url: http://127.0.0.1:{hook_port}/hook\n    send_resolved: true\n"
            ),
        )
        .expect("write config");
        let storage: PathBuf = dir.join("data");
        let child = Command::new(ALERTMANAGER)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", storage.display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("alertmanager must be installed: apt-get install prometheus-alertmanager");
        let am = Am { child };
        let end = Instant::now() + Duration::from_secs(20);
        while !ready(port) {
            assert!(Instant::now() < end, "alertmanager did not become ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        am
    }
}

impl Drop for Am {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn ready(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /-/ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}
