//! `mqscope simulate` against a fresh real Mosquitto (password file + ACL), recorded on
//! loopback by TShark. Needs root (or CAP_NET_RAW) for the capture, as CI has.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the child when the test ends, however it ends.
pub struct Guard(pub Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
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

pub fn mqscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqscope"))
}

/// A finished simulation: the capture, the broker port it used, its working directory.
pub struct SimCapture {
    pub dir: PathBuf,
    pub port: u16,
    pub pcap: PathBuf,
}

/// Starts Mosquitto (user `operator`, password `s3cret`, ACL `acme/#` read-write and
/// `$SYS/#` read), starts TShark on `lo`, runs `mqscope simulate` as that user with
/// `extra` arguments, and stops TShark so the file is complete.
pub fn simulate_captured(tag: &str, extra: &[&str]) -> SimCapture {
    let dir = std::env::temp_dir().join(format!("mqscope-{tag}-{}", std::process::id()));
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
        .args(["simulate", "--broker", &format!("127.0.0.1:{port}")])
        .args(["--username", "operator", "--password-file"])
        .arg(dir.join("pw"))
        .args(extra)
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
    SimCapture { dir, port, pcap }
}
