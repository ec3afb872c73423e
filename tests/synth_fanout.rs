//! The fan-out scenario capture is what it claims: TShark (an independent dissector)
//! finds each PUBLISH at the time the scenario's truth says, on the right connection.

use std::process::Command;

use mqscope::synth::fanout::{FanoutScenario, write_fanout_capture};

#[test]
fn tshark_sees_every_delivery_at_its_stated_time() {
    let dir = std::env::temp_dir().join(format!("mqscope-fanout-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fanout.pcap");
    let sc = FanoutScenario {
        messages: 20,
        ..FanoutScenario::default()
    };
    let truth = write_fanout_capture(&path, &sc).unwrap();
    assert_eq!(truth.len(), 20 * sc.delays_ns.len());
    let out = Command::new("tshark")
        .args([
            "-n",
            "-r",
            path.to_str().unwrap(),
            "-Y",
            "mqtt.msgtype == 3",
            "-T",
            "fields",
        ])
        .args([
            "-e",
            "frame.time_epoch",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "mqtt.topic",
        ])
        .output()
        .expect("tshark");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    // (time in ns, subscriber index or None for the publisher's inbound copy)
    let mut seen: Vec<(u64, Option<usize>)> = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f[3], sc.topic);
        let (secs, frac) = f[0].split_once('.').unwrap();
        let ns = secs.parse::<u64>().unwrap() * 1_000_000_000
            + format!("{frac:0<9}")[..9].parse::<u64>().unwrap();
        let (src, dst): (u16, u16) = (f[1].parse().unwrap(), f[2].parse().unwrap());
        // Publisher is client port 40000 (to the broker), subscriber i is 40000 + i + 1.
        let who = if dst == 1883 {
            assert_eq!(src, 40000);
            None
        } else {
            Some((dst - 40001) as usize)
        };
        seen.push((ns, who));
    }
    let mut want: Vec<(u64, Option<usize>)> = Vec::new();
    for d in &truth {
        if d.subscriber == 0 {
            want.push((d.in_ns, None));
        }
        want.push((d.out_ns, Some(d.subscriber)));
    }
    want.sort();
    seen.sort();
    assert_eq!(seen, want);
}
