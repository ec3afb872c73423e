//! A SIGTERM that arrives while `mqscope run` is still starting (a pod deleted as it
//! starts) stops it like any other: exit 0 and the statistics file written, not death by
//! the signal's default action because no handler existed yet. The first log line
//! ("starting") comes once the signals are caught, before the capture and the HTTP
//! listener are set up (which take milliseconds), so a SIGTERM sent on that line lands
//! in the middle of start-up.
//!
//! Needs root (or CAP_NET_RAW) for capture on `lo`.

mod live_common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use live_common::*;

#[test]
fn sigterm_during_start_up_exits_cleanly() {
    let dir = temp_dir("early-sigterm");
    for round in 0..5 {
        let stats = dir.join(format!("stats-{round}.json"));
        let port = free_port().to_string();
        let mut child = Command::new(env!("CARGO_BIN_EXE_mqscope"))
            .args(["run", "--interface", "lo", "--ports", &port, "--no-broker"])
            .args(["--listen", "127.0.0.1:0", "--stats-file"])
            .arg(&stats)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = lines_of(child.stderr.take().unwrap());
        let first = lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a first log line");
        assert!(first.contains("starting"), "{first}");
        let pid = child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let sent = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(8),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        };
        let mut seen = vec![first];
        while let Ok(l) = lines.recv_timeout(Duration::from_millis(200)) {
            seen.push(l);
        }
        assert_eq!(status.code(), Some(0), "round {round}: {seen:#?}");
        assert!(
            seen.iter().any(|l| l.contains("reason=\"SIGTERM\"")),
            "round {round}: {seen:#?}"
        );
        let text = std::fs::read_to_string(&stats).expect("stats file written");
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert!(v.is_object(), "{text}");
    }
}
