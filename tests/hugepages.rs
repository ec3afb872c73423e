//! The binary re-executes itself with glibc's huge-page tunable exactly when the kernel
//! gives huge pages only on request, and never with `MQSCOPE_NO_HUGEPAGES` or in
//! secure-execution mode (the container's file capability, where glibc strips the
//! tunable and a re-exec would loop): read from the running process's own environment
//! (`/proc/<pid>/environ`), with the process parked on a FIFO that has no writer yet.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const TUNABLE: &str = "GLIBC_TUNABLES=glibc.malloc.hugetlb=1";
const MARKER: &str = "MQSCOPE_HUGEPAGES_REEXEC=1";

fn environ(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/environ"))
        .unwrap_or_default()
        .split(|b| *b == 0)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// Blocked in `open` of the FIFO: the process got past `main`'s start (and any exec).
fn parked_on(pid: u32, fifo: &Path) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let sleeping = stat
        .rsplit(')')
        .next()
        .is_some_and(|r| r.trim_start().starts_with('S'));
    let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    sleeping && String::from_utf8_lossy(&cmd).contains(&*fifo.to_string_lossy())
}

fn start(fifo: &Path, opt_out: bool) -> Child {
    start_with(Command::new(env!("CARGO_BIN_EXE_mqscope")), fifo, opt_out)
}

fn start_with(mut c: Command, fifo: &Path, opt_out: bool) -> Child {
    c.args(["replay", "--format", "none"])
        .arg(fifo)
        .env_remove("GLIBC_TUNABLES")
        .env_remove("MQSCOPE_HUGEPAGES_REEXEC")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if opt_out {
        c.env("MQSCOPE_NO_HUGEPAGES", "1");
    } else {
        c.env_remove("MQSCOPE_NO_HUGEPAGES");
    }
    c.spawn().expect("spawn mqscope")
}

/// The environment once the process is parked on the FIFO (after any re-exec).
fn settled_environ(child: &Child, fifo: &Path) -> Vec<String> {
    let t0 = Instant::now();
    // The re-exec happens before anything opens the file; once the process sleeps on
    // the FIFO, twice in a row 50 ms apart, its environment is final.
    let mut seen = 0;
    while t0.elapsed() < Duration::from_secs(10) {
        if parked_on(child.id(), fifo) {
            seen += 1;
            if seen == 2 {
                return environ(child.id());
            }
        } else {
            seen = 0;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("mqscope never blocked on the FIFO");
}

#[test]
fn reexecs_with_huge_pages_only_in_madvise_mode() {
    let dir = std::env::temp_dir().join(format!("mqscope-hugepages-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fifo = dir.join("capture.pcap");
    let ok = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(ok.success());
    let mode =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let expect = mode.contains("[madvise]") && cfg!(target_env = "gnu");

    for opt_out in [false, true] {
        let child = start(&fifo, opt_out);
        let env = settled_environ(&child, &fifo);
        let want = expect && !opt_out;
        let has = |x: &str| env.iter().any(|v| v == x);
        assert_eq!(
            has(TUNABLE),
            want,
            "opt_out {opt_out}, THP mode {mode:?}: {env:?}"
        );
        assert_eq!(has(MARKER), want, "{env:?}");
        finish(child, &fifo);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Let the parked process go (a writer that closes at once gives it an empty file).
fn finish(mut child: Child, fifo: &Path) {
    drop(std::fs::OpenOptions::new().write(true).open(fifo).unwrap());
    let t0 = Instant::now();
    while child.try_wait().unwrap().is_none() && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// As the container runs it: a non-root user and `cap_net_raw` as a file capability,
/// so glibc's secure mode (which strips the tunable). The binary must not re-execute
/// (before this was handled it exec'd itself in a loop). Needs root (CI is) to set
/// the capability and switch user.
#[test]
fn no_reexec_under_a_file_capability() {
    if !can_set_capabilities() {
        return;
    }
    let (dir, bin) = capped_copy("cap");
    let fifo = dir.join("capture.pcap");
    let made = Command::new("mkfifo")
        .arg("-m")
        .arg("666")
        .arg(&fifo)
        .status();
    assert!(made.unwrap().success());
    let mut c = Command::new("setpriv");
    c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin);
    let child = start_with(c, &fifo, false);
    let env = settled_environ(&child, &fifo);
    assert!(!env.iter().any(|v| v == MARKER || v == TUNABLE), "{env:?}");
    finish(child, &fifo);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A fresh directory and in it a copy of the binary with `cap_net_raw` as a file
/// capability (as in the container image).
fn capped_copy(tag: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("mqscope-hugepages-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let bin = dir.join("mqscope");
    std::fs::copy(env!("CARGO_BIN_EXE_mqscope"), &bin).unwrap();
    let set = Command::new("setcap")
        .arg("cap_net_raw+ep")
        .arg(&bin)
        .status();
    assert!(
        set.is_ok_and(|s| s.success()),
        "setcap (libcap2-bin) on {}",
        bin.display()
    );
    (dir, bin)
}

/// Root (as in CI) can set a file capability and switch user; otherwise say why the
/// container case is not run here.
fn can_set_capabilities() -> bool {
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        eprintln!("not root: cannot set a file capability here (CI runs as root)");
    }
    root
}

/// The sidecar's fallback: `mqscope run` as the container runs it (non-root, file
/// capability, so no re-exec) advises its heap for huge pages, and says so.
#[test]
fn sidecar_advises_its_heap_under_a_file_capability() {
    if !can_set_capabilities() {
        return;
    }
    let (dir, bin) = capped_copy("run");
    let mode =
        std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let mut child = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["run", "--interface", "lo", "--ports", "1", "--no-broker"])
        .args(["--listen", "127.0.0.1:0", "--log-level", "debug"])
        .env_remove("GLIBC_TUNABLES")
        .env_remove("MQSCOPE_NO_HUGEPAGES")
        .env_remove("MQSCOPE_HUGEPAGES_REEXEC")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(err).lines().map_while(Result::ok) {
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    let t0 = Instant::now();
    let (mut started, mut advised) = (false, false);
    while t0.elapsed() < Duration::from_secs(10) && !(started && advised) {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            started |= l.contains("capture started");
            advised |= l.contains("heap advised for transparent huge pages");
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        started,
        "capture started as non-root with the file capability"
    );
    assert_eq!(advised, mode.contains("[madvise]"), "THP mode {mode:?}");
}
