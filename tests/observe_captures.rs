//! The observation core on every shared capture, checked against numbers recomputed
//! here from TShark's decode (`<capture>.tshark.tsv`), not from mqscope's own output:
//! - every request/response latency (CONNECT→CONNACK, QoS 1 and each QoS 2 leg and the
//!   whole QoS 2 flow, SUBSCRIBE→SUBACK, UNSUBSCRIBE→UNSUBACK, PINGREQ→PINGRESP), from
//!   the TSV's nanosecond frame times, exactly;
//! - messages and payload bytes per topic and direction;
//! - refused CONNACKs, with their codes.

mod common;
use common::{Row, find_captures, shared_captures, tshark_rows};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use mqscope::dissect::DissectConfig;
use mqscope::observe::{EventKind, Exchange, ObserveConfig, Observer};
use mqscope::replay::jsonl::JsonlWriter;
use mqscope::replay::replay_files;
use mqscope::replay::sink::ReplaySink;

fn ns(epoch: &str) -> u64 {
    let (s, f) = epoch.split_once('.').unwrap_or((epoch, "0"));
    s.parse::<u64>().unwrap() * 1_000_000_000 + format!("{f:0<9}")[..9].parse::<u64>().unwrap()
}

/// The replay under test: the real pipeline with the observer logging exact samples.
fn observe(cap: &Path) -> Observer {
    let mut obs = Observer::new(&ObserveConfig::default()).unwrap();
    obs.log_samples(100_000);
    let mut sink: ReplaySink<Vec<u8>> = ReplaySink {
        jsonl: None::<JsonlWriter<Vec<u8>>>,
        observer: Some(obs),
    };
    replay_files(
        &[cap.to_path_buf()],
        DissectConfig::default(),
        None,
        &mut sink,
    );
    let mut obs = sink.observer.unwrap();
    obs.finish();
    obs
}

/// Latencies recomputed from the TSV: (exchange, nanoseconds), sorted.
fn tsv_latencies(rows: &[Row]) -> Vec<(Exchange, u64)> {
    // Keyed by (stream, request direction c2s?, kind tag, packet id).
    let mut pending: HashMap<(String, bool, &str, u64), u64> = HashMap::new();
    let mut out = Vec::new();
    let take = |pending: &mut HashMap<_, u64>,
                key,
                now: u64,
                ex: Exchange,
                out: &mut Vec<(Exchange, u64)>| {
        if let Some(t0) = pending.remove(&key) {
            out.push((ex, now - t0));
        }
    };
    for r in rows {
        let t = ns(&r["frame.time_epoch"]);
        let stream = r["tcp.stream"].clone();
        let c2s = r["dstport"] == "1883";
        let ty: u8 = r["mqtt.msgtype"].parse().unwrap();
        let id: u64 = r.get("mqtt.msgid").map_or(0, |m| m.parse().unwrap());
        let qos: u8 = r.get("mqtt.qos").map_or(0, |q| q.parse().unwrap());
        match ty {
            1 => {
                pending.insert((stream, c2s, "connect", 0), t);
            }
            2 => take(
                &mut pending,
                (stream, !c2s, "connect", 0),
                t,
                Exchange::Connect,
                &mut out,
            ),
            3 if qos == 1 => {
                pending.insert((stream, c2s, "qos1", id), t);
            }
            3 if qos == 2 => {
                pending.insert((stream.clone(), c2s, "qos2", id), t);
                pending.insert((stream, c2s, "qos2-whole", id), t);
            }
            4 => take(
                &mut pending,
                (stream, !c2s, "qos1", id),
                t,
                Exchange::PublishQos1,
                &mut out,
            ),
            5 => {
                take(
                    &mut pending,
                    (stream.clone(), !c2s, "qos2", id),
                    t,
                    Exchange::PubRec,
                    &mut out,
                );
                pending.insert((stream, c2s, "pubrec", id), t);
            }
            6 => {
                take(
                    &mut pending,
                    (stream.clone(), !c2s, "pubrec", id),
                    t,
                    Exchange::PubRel,
                    &mut out,
                );
                pending.insert((stream, c2s, "pubrel", id), t);
            }
            7 => {
                take(
                    &mut pending,
                    (stream.clone(), !c2s, "pubrel", id),
                    t,
                    Exchange::PubComp,
                    &mut out,
                );
                // The whole flow started with the PUBLISH sent by the side receiving this
                // PUBCOMP (PUBLISH and PUBREL go one way, PUBREC and PUBCOMP the other).
                take(
                    &mut pending,
                    (stream, !c2s, "qos2-whole", id),
                    t,
                    Exchange::PublishQos2,
                    &mut out,
                );
            }
            8 => {
                pending.insert((stream, c2s, "sub", id), t);
            }
            9 => take(
                &mut pending,
                (stream, !c2s, "sub", id),
                t,
                Exchange::Subscribe,
                &mut out,
            ),
            10 => {
                pending.insert((stream, c2s, "unsub", id), t);
            }
            11 => take(
                &mut pending,
                (stream, !c2s, "unsub", id),
                t,
                Exchange::Unsubscribe,
                &mut out,
            ),
            12 => {
                pending.insert((stream, c2s, "ping", 0), t);
            }
            13 => take(
                &mut pending,
                (stream, !c2s, "ping", 0),
                t,
                Exchange::Ping,
                &mut out,
            ),
            _ => {}
        }
    }
    out.sort();
    out
}

#[test]
fn latencies_match_the_tshark_timestamps_exactly() {
    let caps = find_captures(&shared_captures());
    assert!(caps.len() >= 40);
    let mut total = 0;
    let mut per_exchange: BTreeMap<&str, usize> = BTreeMap::new();
    for cap in &caps {
        let rows = tshark_rows(cap);
        let want = tsv_latencies(&rows);
        let obs = observe(cap);
        let mut got: Vec<(Exchange, u64)> = obs
            .logged_samples()
            .iter()
            .filter(|s| s.exchange != Exchange::Fanout)
            .map(|s| (s.exchange, (s.seconds * 1e9).round() as u64))
            .collect();
        got.sort();
        assert_eq!(got, want, "{}", cap.display());
        total += want.len();
        for (ex, _) in &want {
            *per_exchange.entry(ex.name()).or_default() += 1;
        }
    }
    eprintln!("{total} latencies checked: {per_exchange:?}");
    // The shared captures hold every exchange kind except none: make sure the check bites.
    for ex in [
        "connect",
        "publish_qos1",
        "pubrec",
        "pubrel",
        "pubcomp",
        "publish_qos2",
        "subscribe",
        "unsubscribe",
        "ping",
    ] {
        assert!(
            per_exchange.get(ex).copied().unwrap_or(0) > 0,
            "no {ex} latency in the captures"
        );
    }
}

#[test]
fn per_topic_messages_and_bytes_match_the_tsv() {
    let caps = find_captures(&shared_captures());
    for cap in &caps {
        let rows = tshark_rows(cap);
        // TShark decodes a stream without its CONNECT as if it were MQTT 3.1.1; on the
        // MQTT 5 midstream capture that shifts the payload length by the property-length
        // byte (see tshark_agreement.rs), so byte totals are compared only where TShark
        // knew the version.
        let version_known = rows.iter().all(|r| {
            !r.get("expert")
                .is_some_and(|e| e.contains("Unknown version"))
        });
        // (topic, c2s) -> (messages, payload bytes)
        let mut want: BTreeMap<(String, bool), (u64, u64)> = BTreeMap::new();
        for r in rows.iter().filter(|r| r["mqtt.msgtype"] == "3") {
            let e = want
                .entry((r["mqtt.topic"].clone(), r["dstport"] == "1883"))
                .or_default();
            e.0 += 1;
            e.1 += r.get("payload_len").map_or(0, |p| p.parse().unwrap());
        }
        let snap = observe(cap).snapshot();
        let mut got: BTreeMap<(String, bool), (u64, u64)> = BTreeMap::new();
        let (mut long_msgs, mut long_bytes) = (0, 0);
        for t in &snap.topics {
            for (c2s, m, b) in [
                (true, &t.msgs_in, &t.bytes_in),
                (false, &t.msgs_out, &t.bytes_out),
            ] {
                if m.total > 0 {
                    if t.kind == "exact" {
                        got.insert((t.name.clone(), c2s), (m.total, b.total));
                    } else {
                        long_msgs += m.total;
                        long_bytes += b.total;
                    }
                }
            }
        }
        // Topics longer than the stored-name limit (256 bytes) are grouped, not kept
        // exactly: compare them as a total.
        let long: Vec<_> = want
            .keys()
            .filter(|(t, _)| t.len() > 256)
            .cloned()
            .collect();
        let (lm, lb) = long
            .iter()
            .map(|k| want.remove(k).unwrap())
            .fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
        assert_eq!(
            (long_msgs, long_bytes),
            (lm, lb),
            "{}: long topics",
            cap.display()
        );
        if !version_known {
            let strip = |m: BTreeMap<(String, bool), (u64, u64)>| {
                m.into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect::<BTreeMap<_, _>>()
            };
            assert_eq!(strip(got), strip(want), "{}", cap.display());
        } else {
            assert_eq!(got, want, "{}", cap.display());
        }
    }
}

#[test]
fn refused_connacks_become_events_with_their_codes() {
    let caps = find_captures(&shared_captures());
    let mut refused_seen = 0;
    for cap in &caps {
        let rows = tshark_rows(cap);
        let mut want: Vec<u8> = rows
            .iter()
            .filter(|r| r["mqtt.msgtype"] == "2")
            .filter_map(|r| {
                r.get("mqtt.conack.val")
                    .or(r.get("mqtt.connack.reason_code"))
            })
            .map(|c| c.parse::<u8>().unwrap())
            .filter(|&c| c != 0)
            .collect();
        let mut obs = observe(cap);
        let events: Vec<_> = obs.events().drain().collect();
        let mut got: Vec<u8> = events
            .iter()
            .filter(|e| e.kind == EventKind::ConnectRefused)
            .map(|e| e.code.unwrap())
            .collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{}", cap.display());
        // Credential / authorisation refusals (MQTT 5: 0x86 bad user name or password,
        // 0x87 not authorised, 0x8C bad authentication method) are also auth failures.
        let auth_want: Vec<u8> = want
            .iter()
            .copied()
            .filter(|c| matches!(c, 0x86 | 0x87 | 0x8c | 4 | 5))
            .collect();
        let mut auth_got: Vec<u8> = events
            .iter()
            .filter(|e| e.kind == EventKind::AuthFailure)
            .map(|e| e.code.unwrap())
            .collect();
        auth_got.sort();
        assert_eq!(auth_got, auth_want, "{}", cap.display());
        refused_seen += want.len();
    }
    // connack134 (0x86) and customauth (0x8C) per the captures' README.
    assert!(refused_seen >= 2);
}
