//! The broker input against a real Mosquitto (Debian's `/usr/sbin/mosquitto`), started by
//! each test on a free 127.0.0.1 port with `sys_interval 1` and killed when the test ends.
//! Independent truth: `mosquitto_sub` run in the same test, its `$SYS` output parsed apart
//! from the input's path.

use std::collections::HashSet;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use mqscope::broker::{BrokerKind, SysState};
use mqscope::input::broker::status_event;
use mqscope::input::{BrokerInput, BrokerInputConfig, BrokerMsg, BrokerStatus, FeedDriver};
use mqscope::observe::EventKind;
use serde_json::Value;

const MOSQUITTO: &str = "/usr/sbin/mosquitto";

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("mqscope-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running mosquitto; killed (and reaped) on drop, so a failing test leaves none behind.
struct Mosquitto {
    child: Child,
    log: PathBuf,
}

impl Mosquitto {
    /// `extra` is appended to the listener's configuration.
    fn start(dir: &Path, port: u16, extra: &str) -> Mosquitto {
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        // `user root`: started as root, mosquitto would otherwise switch to the
        // `mosquitto` user and could not read the test's key files.
        std::fs::write(
            &conf,
            format!(
                "user root\nper_listener_settings false\nsys_interval 1\npersistence false\n\
                 log_dest stderr\nlog_type error\nlog_type warning\n\
                 listener {port} 127.0.0.1\n{extra}\n"
            ),
        )
        .unwrap();
        let log = dir.join(format!("mosquitto-{port}.log"));
        let child = Command::new(MOSQUITTO)
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("mosquitto installed");
        let mut m = Mosquitto { child, log };
        let deadline = Instant::now() + Duration::from_secs(5);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = m.child.try_wait() {
                panic!("mosquitto exited {st}: {}", m.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto not listening: {}",
                m.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(port: u16) -> BrokerInputConfig {
    BrokerInputConfig {
        url: format!("mqtt://127.0.0.1:{port}"),
        client_id: Some(format!("mqscope-test-{port}")),
        backoff_initial_ms: 100,
        backoff_max_ms: 400,
        ..BrokerInputConfig::default()
    }
}

/// The consumer side: applies messages, keeps what the tests look at.
struct Consumer {
    driver: FeedDriver,
    raw: HashSet<(String, Vec<u8>)>,
    /// The normalised metrics after every `$SYS` message, as JSON.
    history: Vec<Value>,
    statuses: Vec<BrokerStatus>,
    unreachable_events: usize,
}

impl Consumer {
    fn new() -> Consumer {
        Consumer {
            driver: FeedDriver::default(),
            raw: HashSet::new(),
            history: Vec::new(),
            statuses: Vec::new(),
            unreachable_events: 0,
        }
    }

    fn apply(&mut self, msg: BrokerMsg) {
        if let Some(e) = self.driver.on_msg(&msg)
            && e.kind == EventKind::BrokerUnreachable
        {
            self.unreachable_events += 1;
        }
        match msg {
            BrokerMsg::Message { topic, payload, .. } => {
                if let Some(m) = self.driver.feed.sys.primary() {
                    self.history.push(serde_json::to_value(m).unwrap());
                }
                self.raw.insert((topic, payload));
            }
            BrokerMsg::Status { status, .. } => self.statuses.push(status),
        }
    }

    /// Drains the input until `done` holds or `timeout` passes; returns whether it held.
    async fn run_until(
        &mut self,
        input: &mut BrokerInput,
        timeout: Duration,
        mut done: impl FnMut(&Consumer) -> bool,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if done(self) {
                return true;
            }
            match tokio::time::timeout_at(deadline, input.rx.recv()).await {
                Ok(Some(m)) => self.apply(m),
                Ok(None) => panic!("input task ended"),
                Err(_) => return done(self),
            }
        }
    }

    fn uptime(&self) -> Option<u64> {
        self.driver.feed.sys.primary().and_then(|m| m.uptime_s)
    }

    fn sessions_connected(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|s| matches!(s, BrokerStatus::Connected { .. }))
            .count() as u64
    }
}

/// Leaf values of a JSON object by path (`load.bytes_sent.m1`).
fn leaves(v: &Value, prefix: &str, out: &mut Vec<(String, Value)>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                let p = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &p, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |v, k| &v[k])
}

#[tokio::test]
async fn sys_values_arrive_normalised_and_agree_with_mosquitto_sub() {
    let dir = TempDir::new("sys");
    let port = free_port();
    let _broker = Mosquitto::start(&dir.0, port, "allow_anonymous true");
    let mut input = BrokerInput::start(config(port)).unwrap();
    let mut c = Consumer::new();
    assert!(
        c.run_until(&mut input, Duration::from_secs(8), |c| c.uptime().is_some())
            .await,
        "no uptime from the input"
    );

    // The independent reader, over the same seconds.
    let out_path = dir.0.join("sub.tsv");
    let mut sub = Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-t", "$SYS/#"])
        .args(["-F", "%t\t%p", "-W", "3"])
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if sub.try_wait().unwrap().is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "mosquitto_sub did not stop");
        c.run_until(&mut input, Duration::from_millis(50), |_| false)
            .await;
    }
    // Whatever mosquitto_sub printed was published before it exited; let the input's copy
    // of the last tick arrive.
    c.run_until(&mut input, Duration::from_millis(300), |_| false)
        .await;

    let text = std::fs::read_to_string(&out_path).unwrap();
    let lines: Vec<(&str, &str)> = text
        .lines()
        .map(|l| l.split_once('\t').expect("topic\\tpayload"))
        .collect();
    assert!(
        lines.len() >= 50,
        "mosquitto_sub printed {} lines",
        lines.len()
    );

    // 1. Raw: every message mosquitto_sub got, the input got too (same topic, same bytes).
    for (t, p) in &lines {
        assert!(
            c.raw.contains(&(t.to_string(), p.as_bytes().to_vec())),
            "input missed {t:?} = {p:?}"
        );
    }

    // 2. Normalised: mosquitto_sub's lines through a separate SysState give values the
    // input's state held at some moment.
    let mut truth = SysState::default();
    for (t, p) in &lines {
        truth.on_message(t, p.as_bytes(), 0);
    }
    assert_eq!(truth.stats.unknown_topics, 0);
    assert_eq!(truth.stats.unparseable, 0);
    let tm = truth.primary().unwrap();
    let mut fields = Vec::new();
    leaves(&serde_json::to_value(tm).unwrap(), "", &mut fields);
    let mut compared = 0;
    for (path, want) in fields.iter().filter(|(_, v)| !v.is_null()) {
        assert!(
            c.history.iter().any(|h| at(h, path) == want),
            "{path} = {want} (mosquitto_sub) never held by the input"
        );
        compared += 1;
    }
    assert!(compared >= 40, "only {compared} fields compared");

    // 3. A few by name.
    let live = c.driver.feed.sys.primary().unwrap();
    assert_eq!(live.kind, BrokerKind::Mosquitto);
    assert_eq!(live.version, tm.version);
    assert_eq!(live.version.as_deref(), Some("2.0.11"));
    assert!(live.uptime_s >= tm.uptime_s);
    // While mosquitto_sub was on, both clients were connected.
    assert_eq!(tm.clients_connected, Some(2));
    assert!(c.history.iter().any(|h| h["clients_connected"] == 2));
    // The interval as mosquitto_sub saw it: the smallest step between its uptime lines
    // (mosquitto 2.0.11 publishes every 2 s with `sys_interval 1`).
    let ups: Vec<u64> = lines
        .iter()
        .filter(|(t, _)| *t == "$SYS/broker/uptime")
        .map(|(_, p)| p.trim_end_matches(" seconds").parse().unwrap())
        .collect();
    let step = ups
        .windows(2)
        .map(|w| w[1] - w[0])
        .min()
        .expect("two uptimes");
    assert_eq!(
        c.driver.feed.sys.learned_interval_ms(None),
        Some(step * 1000)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    assert!(!c.driver.feed.sys.is_stale(now));
    assert_eq!(
        input
            .stats
            .dropped_channel_full
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
}

#[tokio::test]
async fn broker_restart_mid_test_reconnects_and_keeps_receiving() {
    let dir = TempDir::new("restart");
    let port = free_port();
    let broker = Mosquitto::start(&dir.0, port, "allow_anonymous true");
    let mut input = BrokerInput::start(config(port)).unwrap();
    let mut c = Consumer::new();
    assert!(
        c.run_until(&mut input, Duration::from_secs(10), |c| c.uptime()
            >= Some(5))
            .await,
        "uptime never reached 5 s"
    );
    let before = c.uptime().unwrap();

    drop(broker); // SIGKILL: no clean goodbye.
    assert!(
        c.run_until(&mut input, Duration::from_secs(5), |c| c
            .statuses
            .iter()
            .any(|s| matches!(s, BrokerStatus::Unreachable { .. })))
            .await,
        "no unreachable report after the broker died"
    );
    let BrokerStatus::Unreachable { error, class, .. } = c
        .statuses
        .iter()
        .find(|s| matches!(s, BrokerStatus::Unreachable { .. }))
        .unwrap()
    else {
        unreachable!()
    };
    assert!(!error.is_empty());
    assert!(!class.is_empty());
    assert!(c.unreachable_events >= 1);
    assert!(matches!(
        *input.status.borrow(),
        BrokerStatus::Unreachable { .. }
    ));

    // Let a reconnect attempt or two fail, then bring the broker back on the same port.
    c.run_until(&mut input, Duration::from_millis(300), |_| false)
        .await;
    let _broker2 = Mosquitto::start(&dir.0, port, "allow_anonymous true");
    assert!(
        c.run_until(&mut input, Duration::from_secs(8), |c| c
            .sessions_connected()
            >= 2
            && c.driver.feed.sys.stats.sessions >= 2
            && c.uptime().is_some())
            .await,
        "did not reconnect and resume receiving: {:?}",
        c.statuses
    );
    // The new broker's uptime restarted from ~0: a restart, seen across the reconnect.
    let sys = &c.driver.feed.sys;
    assert!(c.uptime().unwrap() < before, "{:?} !< {before}", c.uptime());
    assert_eq!(sys.stats.restarts, 1);
    assert_eq!(sys.primary().unwrap().generation, 1);
    assert_eq!(sys.stats.sessions, 2);
    // And it keeps receiving: uptime advances in the new session.
    let now_up = c.uptime().unwrap();
    assert!(
        c.run_until(&mut input, Duration::from_secs(5), |c| c.uptime()
            > Some(now_up))
            .await
    );
    assert!(matches!(
        *input.status.borrow(),
        BrokerStatus::Connected { session: 2, .. }
    ));
}

#[tokio::test]
async fn unreachable_until_the_broker_appears() {
    let dir = TempDir::new("late");
    let port = free_port();
    let mut input = BrokerInput::start(config(port)).unwrap();
    let mut c = Consumer::new();
    // Nothing listens: refused, again and again, with backoff.
    assert!(
        c.run_until(&mut input, Duration::from_secs(5), |c| c.statuses.len()
            >= 3)
            .await
    );
    for s in &c.statuses {
        let BrokerStatus::Unreachable {
            class,
            attempt,
            retry_in_ms,
            ..
        } = s
        else {
            panic!("{s:?}");
        };
        assert_eq!(*class, "connection_refused");
        assert!(*attempt >= 1 && *retry_in_ms <= 400);
    }
    let e = status_event(1, &c.statuses[0]).unwrap();
    assert_eq!(e.broker_addr.unwrap().port(), port);

    let _broker = Mosquitto::start(&dir.0, port, "allow_anonymous true");
    assert!(
        c.run_until(&mut input, Duration::from_secs(5), |c| c.uptime().is_some())
            .await
    );
    assert_eq!(c.sessions_connected(), 1);
}

#[tokio::test]
async fn password_auth_and_no_password_in_reports() {
    let dir = TempDir::new("auth");
    let port = free_port();
    let pwfile = dir.0.join("passwd");
    let st = Command::new("mosquitto_passwd")
        .arg("-c")
        .arg("-b")
        .arg(&pwfile)
        .args(["watcher", "right-horse-battery"])
        .status()
        .unwrap();
    assert!(st.success());
    let _broker = Mosquitto::start(
        &dir.0,
        port,
        &format!("allow_anonymous false\npassword_file {}", pwfile.display()),
    );

    let wrong = dir.0.join("wrong");
    std::fs::write(&wrong, "wrong-staple-LEAKCHECK\n").unwrap();
    let mut input = BrokerInput::start(BrokerInputConfig {
        username: Some("watcher".into()),
        password_file: Some(wrong),
        ..config(port)
    })
    .unwrap();
    let mut c = Consumer::new();
    assert!(
        c.run_until(&mut input, Duration::from_secs(5), |c| !c
            .statuses
            .is_empty())
            .await
    );
    let s = &c.statuses[0];
    assert!(
        matches!(s, BrokerStatus::Unreachable { class: "auth", .. }),
        "{s:?}"
    );
    let shown = format!("{s:?} {}", serde_json::to_string(s).unwrap());
    assert!(!shown.contains("LEAKCHECK"), "{shown}");
    drop(input);

    let right = dir.0.join("right");
    std::fs::write(&right, "right-horse-battery\n").unwrap();
    let mut input = BrokerInput::start(BrokerInputConfig {
        username: Some("watcher".into()),
        password_file: Some(right),
        ..config(port)
    })
    .unwrap();
    let mut c = Consumer::new();
    assert!(
        c.run_until(&mut input, Duration::from_secs(5), |c| c.uptime().is_some())
            .await,
        "{:?}",
        c.statuses
    );
}

/// CA, server (SAN IP 127.0.0.1) and client certificates made with the openssl CLI.
fn make_pki(dir: &Path) {
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
    ];
    let mut a = vec!["req", "-x509"];
    a.extend(ec);
    a.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=mqscope test CA",
    ]);
    run(&a);
    for (name, ext) in [
        (
            "server",
            "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        ),
        ("client", "extendedKeyUsage=clientAuth\n"),
    ] {
        let mut a = vec!["req"];
        a.extend(ec);
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let subj = format!("/CN=mqscope-test-{name}");
        a.extend(["-keyout", &key, "-out", &csr, "-subj", &subj]);
        run(&a);
        let extf = format!("{name}.ext");
        std::fs::write(dir.join(&extf), format!("basicConstraints=CA:FALSE\n{ext}")).unwrap();
        let pem = format!("{name}.pem");
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &extf,
        ]);
    }
}

#[tokio::test]
async fn mutual_tls_with_client_certificate() {
    let dir = TempDir::new("tls");
    make_pki(&dir.0);
    let port = free_port();
    let d = dir.0.display();
    let _broker = Mosquitto::start(
        &dir.0,
        port,
        &format!(
            "allow_anonymous true\ncafile {d}/ca.pem\ncertfile {d}/server.pem\n\
             keyfile {d}/server.key\nrequire_certificate true"
        ),
    );
    let tls = |cert: bool| BrokerInputConfig {
        url: format!("mqtts://127.0.0.1:{port}"),
        ca_file: Some(dir.0.join("ca.pem")),
        client_cert_file: cert.then(|| dir.0.join("client.pem")),
        client_key_file: cert.then(|| dir.0.join("client.key")),
        ..config(port)
    };

    // With the client certificate: connected, `$SYS` flows.
    let mut input = BrokerInput::start(tls(true)).unwrap();
    let mut c = Consumer::new();
    assert!(
        c.run_until(&mut input, Duration::from_secs(8), |c| c.uptime().is_some())
            .await,
        "{:?}",
        c.statuses
    );
    assert_eq!(c.driver.feed.sys.kind(), BrokerKind::Mosquitto);
    drop(input);

    // Without it the broker refuses the handshake: unreachable, not connected.
    let mut input = BrokerInput::start(tls(false)).unwrap();
    let mut c = Consumer::new();
    assert!(
        c.run_until(&mut input, Duration::from_secs(5), |c| !c
            .statuses
            .is_empty())
            .await
    );
    assert!(
        matches!(c.statuses[0], BrokerStatus::Unreachable { .. }),
        "{:?}",
        c.statuses
    );

    // A CA that did not sign the server's certificate: verification fails.
    let other = TempDir::new("tls-other");
    make_pki(&other.0);
    let mut input = BrokerInput::start(BrokerInputConfig {
        ca_file: Some(other.0.join("ca.pem")),
        ..tls(true)
    })
    .unwrap();
    let mut c = Consumer::new();
    assert!(
        c.run_until(&mut input, Duration::from_secs(5), |c| !c
            .statuses
            .is_empty())
            .await
    );
    assert!(
        matches!(
            c.statuses[0],
            BrokerStatus::Unreachable { class: "tls", .. }
        ),
        "{:?}",
        c.statuses
    );
}

#[test]
fn bad_tls_files_are_reported_at_start() {
    let dir = TempDir::new("badtls");
    let junk = dir.0.join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let errs = BrokerInput::start(BrokerInputConfig {
            url: "mqtts://127.0.0.1:1".into(),
            ca_file: Some(junk.clone()),
            ..BrokerInputConfig::default()
        })
        .err()
        .expect("junk CA refused");
        assert!(errs[0].contains("ca_file"), "{errs:?}");
        let errs = BrokerInput::start(BrokerInputConfig {
            url: "mqtt://127.0.0.1:1".into(),
            ca_file: Some(dir.0.join("missing.pem")),
            keepalive_secs: 0,
            ..BrokerInputConfig::default()
        })
        .err()
        .expect("invalid config refused");
        assert_eq!(errs.len(), 3, "{errs:?}");
    });
}
