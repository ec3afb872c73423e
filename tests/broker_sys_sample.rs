//! `SysState` on the shared Mosquitto sample (`../shared/samples/mosquitto-sys.txt`, 200
//! lines of `mosquitto_sub -v -t '$SYS/#'` from mosquitto 2.0.11). Expected values were
//! read off the file by hand: for each topic, its last line.

use mqscope::broker::{BrokerKind, SysOutcome, SysState};

const S: u64 = 1_000_000_000;

fn sample() -> String {
    let p = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/samples/mosquitto-sys.txt"
    );
    std::fs::read_to_string(p).expect("shared sample present beside the repository")
}

/// `-v` prints `<topic> <payload>`, and both the topic `retained messages/count` and the
/// payloads `6 seconds` / `mosquitto version 2.0.11` hold spaces. No payload in the sample
/// holds a '/', so the topic ends at the first space after the line's last '/'.
fn split(line: &str) -> (&str, &str) {
    let slash = line.rfind('/').expect("topic has a '/'");
    let sp = slash + line[slash..].find(' ').expect("payload after topic");
    (&line[..sp], &line[sp + 1..])
}

fn data_lines(s: &str) -> Vec<&str> {
    s.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .collect()
}

/// Feeds the sample, the clock following the broker's uptime (each uptime line starts a
/// new `sys_interval` tick; the first tick is at t = 6 s).
fn feed(st: &mut SysState, lines: &[&str]) -> u64 {
    let mut t = 6 * S;
    for l in lines {
        let (topic, payload) = split(l);
        if topic == "$SYS/broker/uptime" {
            let secs: u64 = payload.trim_end_matches(" seconds").parse().unwrap();
            t = secs * S;
        }
        let out = st.on_message(topic, payload.as_bytes(), t);
        assert!(
            matches!(out, SysOutcome::Applied | SysOutcome::Ignored),
            "{topic:?} {payload:?} -> {out:?}"
        );
    }
    t
}

#[test]
fn all_200_lines_normalise_to_the_values_in_the_file() {
    let s = sample();
    let lines = data_lines(&s);
    assert_eq!(lines.len(), 200);
    let mut st = SysState::default();
    let t_end = feed(&mut st, &lines);
    assert_eq!(t_end, 16 * S);

    assert_eq!(st.stats.messages, 200);
    assert_eq!(st.stats.unknown_topics, 0);
    assert_eq!(st.stats.unparseable, 0);
    // clients/active, clients/inactive, messages/stored: deprecated duplicates.
    assert_eq!(st.stats.ignored, 4);
    assert_eq!(st.kind(), BrokerKind::Mosquitto);

    let m = st.primary().unwrap();
    assert_eq!(m.node, None);
    assert_eq!(m.version.as_deref(), Some("2.0.11"));
    assert_eq!(m.uptime_s, Some(16));
    assert_eq!(m.clients_total, Some(2));
    assert_eq!(m.clients_connected, Some(2));
    assert_eq!(m.clients_disconnected, Some(0));
    assert_eq!(m.clients_maximum, Some(2));
    assert_eq!(m.clients_expired, Some(0));
    assert_eq!(m.packets_received, Some(354));
    assert_eq!(m.packets_sent, Some(443));
    assert_eq!(m.publish_received, Some(50));
    assert_eq!(m.publish_sent, Some(290));
    assert_eq!(m.publish_dropped, Some(0));
    assert_eq!(m.publish_bytes_received, Some(932));
    assert_eq!(m.publish_bytes_sent, Some(1785));
    assert_eq!(m.bytes_received, Some(3886));
    assert_eq!(m.bytes_sent, Some(10453));
    assert_eq!(m.retained_messages, Some(54));
    assert_eq!(m.subscriptions, Some(2));
    assert_eq!(m.shared_subscriptions, Some(0));
    assert_eq!(m.store_messages, Some(54));
    assert_eq!(m.store_bytes, Some(240));
    assert_eq!(m.heap_current, Some(53136));
    assert_eq!(m.heap_maximum, Some(54424));

    let l = &m.load;
    let v = |a: &mqscope::broker::LoadAvg| (a.m1, a.m5, a.m15);
    assert_eq!(
        v(&l.messages_received),
        (Some(313.53), Some(69.56), Some(23.46))
    );
    assert_eq!(
        v(&l.messages_sent),
        (Some(301.85), Some(65.99), Some(22.26))
    );
    // publish/received/15min was not republished in the last full block: 3.32 from t=12.
    assert_eq!(
        v(&l.publish_received),
        (Some(44.31), Some(9.83), Some(3.32))
    );
    assert_eq!(v(&l.publish_sent), (Some(159.04), Some(34.55), Some(11.66)));
    assert_eq!(v(&l.publish_dropped), (Some(0.0), Some(0.0), Some(0.0)));
    assert_eq!(
        v(&l.bytes_received),
        (Some(3441.82), Some(763.58), Some(257.54))
    );
    assert_eq!(
        v(&l.bytes_sent),
        (Some(4774.20), Some(1044.33), Some(352.64))
    );
    assert_eq!(v(&l.sockets), (Some(93.37), Some(20.04), Some(6.76)));
    assert_eq!(v(&l.connections), (Some(93.37), Some(20.04), Some(6.76)));

    // EMQX-only fields stay absent.
    assert_eq!(m.dropped_no_subscribers, None);
    assert_eq!(m.authz_denied, None);
}

#[test]
fn staleness_follows_uptime_not_value_changes() {
    let s = sample();
    let mut st = SysState::default();
    feed(&mut st, &data_lines(&s));
    // Uptime went 6, 8, ..., 16: one update every 2 s.
    assert_eq!(st.learned_interval_ms(None), Some(2000));
    assert!(!st.is_stale(16 * S));
    assert!(!st.is_stale(22 * S), "3 intervals not yet over");
    assert!(st.is_stale(22 * S + 1), "3 intervals without uptime");

    // Only uptime keeps arriving (a quiet broker republishes nothing else): the unchanged
    // values are still current, nothing is stale.
    for up in [18u64, 20, 22, 24, 26, 28, 30] {
        st.on_message(
            "$SYS/broker/uptime",
            format!("{up} seconds").as_bytes(),
            up * S,
        );
    }
    assert!(!st.is_stale(31 * S));
    let m = st.primary().unwrap();
    assert_eq!(
        m.clients_maximum,
        Some(2),
        "published once at t=8, still the value"
    );
    assert_eq!(m.uptime_s, Some(30));
    assert!(st.stale_nodes(31 * S).is_empty());
    assert_eq!(st.stale_nodes(37 * S), vec![None]);
}

#[test]
fn uptime_going_backwards_is_a_restart() {
    let s = sample();
    let mut st = SysState::default();
    feed(&mut st, &data_lines(&s));
    assert_eq!(st.primary().unwrap().generation, 0);

    // Within one session (no reconnect seen): values of the old lifetime are cleared.
    st.on_message("$SYS/broker/uptime", b"1 seconds", 17 * S);
    let m = st.primary().unwrap();
    assert_eq!(st.stats.restarts, 1);
    assert_eq!(m.generation, 1);
    assert_eq!(m.uptime_s, Some(1));
    assert_eq!(m.bytes_sent, None);
    assert_eq!(m.version.as_deref(), Some("2.0.11"), "identity survives");

    // Across a reconnect: the session start cleared values; the snapshot that follows
    // (values before uptime included) is kept, and the restart still counts.
    st.on_message("$SYS/broker/uptime", b"9 seconds", 25 * S);
    st.on_session_start();
    st.on_message("$SYS/broker/version", b"mosquitto version 2.0.11", 40 * S);
    st.on_message("$SYS/broker/clients/maximum", b"1", 40 * S);
    st.on_message("$SYS/broker/uptime", b"2 seconds", 40 * S);
    let m = st.primary().unwrap();
    assert_eq!(st.stats.restarts, 2);
    assert_eq!(m.generation, 2);
    assert_eq!(m.clients_maximum, Some(1));
    assert_eq!(m.uptime_s, Some(2));
}

#[test]
fn unknown_and_unparseable_are_counted_not_errors() {
    let mut st = SysState::default();
    assert_eq!(
        st.on_message("$SYS/broker/newthing", b"1", 0),
        SysOutcome::Unknown
    );
    assert_eq!(st.on_message("$SYS/other/x", b"1", 0), SysOutcome::Unknown);
    assert_eq!(st.on_message("plain/topic", b"1", 0), SysOutcome::NotSys);
    assert_eq!(
        st.on_message("$SYS/broker/clients/connected", b"lots", 0),
        SysOutcome::Unparseable
    );
    assert_eq!(
        st.on_message("$SYS/broker/clients/connected", &[0xff], 0),
        SysOutcome::Unparseable
    );
    assert_eq!(
        st.on_message("$SYS/broker/uptime", b"6 fortnights", 0),
        SysOutcome::Unparseable
    );
    assert_eq!(
        st.on_message("$SYS/broker/load/bytes/received/2min", b"1.0", 0),
        SysOutcome::Unknown
    );
    assert_eq!(st.stats.unknown_topics, 3);
    assert_eq!(st.stats.not_sys, 1);
    assert_eq!(st.stats.unparseable, 3);
    assert_eq!(
        st.stats.unparseable_by_topic,
        vec![
            ("$SYS/broker/clients/connected".to_string(), 2),
            ("$SYS/broker/uptime".to_string(), 1)
        ]
    );
    assert_eq!(st.primary().unwrap().clients_connected, None);
}

#[test]
fn a_restart_during_a_gap_is_seen_even_when_uptime_is_larger() {
    let mut st = SysState::default();
    for up in [10u64, 12, 14] {
        st.on_message(
            "$SYS/broker/uptime",
            format!("{up} seconds").as_bytes(),
            up * S,
        );
    }
    // Silence for 60 s; the broker died at ~15 s and came back at ~50 s: at t = 74 s it
    // says 24 s. Larger than 14, but it implies a start 50 s later than before.
    st.on_message("$SYS/broker/uptime", b"24 seconds", 74 * S);
    assert_eq!(st.stats.restarts, 1);
    // A gap without restart (uptime kept pace with the clock) is not one.
    st.on_message("$SYS/broker/uptime", b"84 seconds", 134 * S);
    assert_eq!(st.stats.restarts, 1);
}
