//! Tests of the `Topics` facade: grouping tiers, eviction and folding, statistics.

use super::*;

const S: u64 = 1_000_000_000;
const MIN: u64 = 60 * S;

fn cfg(max_exact: usize, max_templates: usize) -> ObserveConfig {
    ObserveConfig {
        max_exact_topics: max_exact,
        max_templates,
        ..ObserveConfig::default()
    }
}

fn publish_in(t: &mut Topics, g: GroupId, client: u64, len: usize, ts: u64) {
    t.on_publish(g, Direction::C2S, client, 0, false, false, len, ts);
}

#[test]
fn config_errors_are_all_reported() {
    let mut c = ObserveConfig {
        topic_templates: vec!["a/+/b".into(), "a+/b".into(), "x/#/y".into(), "".into()],
        bucket_secs: 0,
        ..ObserveConfig::default()
    };
    let err = Topics::new(&c).err().expect("invalid");
    assert_eq!(err.problems.len(), 4, "{err}");
    assert!(err.to_string().contains("\"a+/b\""));
    assert!(err.to_string().contains("\"x/#/y\""));
    c.topic_templates = vec!["+/+/+/line/+/#".into()];
    c.bucket_secs = 10;
    assert!(Topics::new(&c).is_ok());
}

#[test]
fn exact_then_template_then_other() {
    let mut t = Topics::new(&cfg(2, 1)).unwrap();
    let a = t.group_of(b"site/1/temp", 0);
    let b = t.group_of(b"site/2/temp", 0);
    assert_eq!(t.group_of(b"site/1/temp", 1), a);
    assert_ne!(a, b);
    assert_eq!(t.group_kind(a), GroupKind::Exact);
    assert_eq!(t.group_name(b), "site/2/temp");
    // Cap reached: the automatic template.
    let c = t.group_of(b"site/3/temp", 2);
    assert_eq!(t.group_kind(c), GroupKind::Template);
    assert_eq!(t.group_name(c), "site/+/temp");
    assert_eq!(t.group_of(b"site/4/temp", 3), c);
    // A different template does not fit (cap 1): `__other__`.
    let o = t.group_of(b"plant/7/rpm", 4);
    assert_eq!(t.group_kind(o), GroupKind::Other);
    assert_eq!(t.group_name(o), "__other__");
    assert_eq!(t.len(), 4);
    let k = t.counters();
    assert_eq!(
        (k.exact_groups, k.template_groups, k.other_groups),
        (2, 1, 1)
    );
    assert_eq!(
        (k.exact_admitted, k.routed_to_template, k.routed_to_other),
        (2, 2, 1)
    );
}

#[test]
fn operator_templates_come_first_and_auto_can_be_off() {
    let mut c = cfg(0, 10);
    c.topic_templates = vec!["acme/plant1/#".into(), "+/+/+/line/+/#".into()];
    c.auto_template = false;
    let mut t = Topics::new(&c).unwrap();
    let g = t.group_of(b"acme/plant1/area2/line-3/cell4/press-17/temperature", 0);
    assert_eq!(t.group_name(g), "acme/plant1/#");
    let g = t.group_of(b"acme/p2/a/line/c/x", 0);
    assert_eq!(t.group_name(g), "+/+/+/line/+/#");
    // No template and no automatic templating: `__other__`.
    let g = t.group_of(b"home/kitchen/light", 0);
    assert_eq!(t.group_kind(g), GroupKind::Other);
}

#[test]
fn long_topics_skip_the_exact_tier() {
    let mut t = Topics::new(&cfg(10, 10)).unwrap();
    let long = format!("dev/{}/x", "a".repeat(300));
    let g = t.group_of(long.as_bytes(), 0);
    // Its automatic template is as long: `__other__`.
    assert_eq!(t.group_kind(g), GroupKind::Other);
    let long_id = format!("dev/{}/x", "7".repeat(300));
    let g = t.group_of(long_id.as_bytes(), 0);
    assert_eq!(t.group_name(g), "dev/+/x");
    assert_eq!(t.counters().too_long, 2);
    // Invalid UTF-8 is interned under its raw bytes and shown lossily.
    let g = t.group_of(b"bad/\xff/x", 0);
    assert_eq!(t.group_kind(g), GroupKind::Exact);
    assert_eq!(t.group_name(g), "bad/\u{fffd}/x");
    assert_eq!(t.group_of(b"bad/\xff/x", 1), g);
}

#[test]
fn idle_exact_topic_is_evicted_and_folded() {
    let mut t = Topics::new(&cfg(2, 10)).unwrap();
    let a = t.group_of(b"room/kitchen/temp", 0);
    for i in 0..3 {
        publish_in(&mut t, a, 1, 10, i * S);
    }
    let b = t.group_of(b"room/hall/temp", 0);
    // 10 minutes later `b` is used again, `a` is not.
    assert_eq!(t.group_of(b"room/hall/temp", 10 * MIN), b);
    // Not idle long enough yet: the new topic gets its template.
    let c = t.group_of(b"room/attic/temp", 12 * MIN);
    assert_eq!(t.group_kind(c), GroupKind::Template);
    // 16 minutes after its last use, `a` gives way; `b` (idle 6 min) stays.
    let d = t.group_of(b"room/cellar/temp", 16 * MIN);
    assert_eq!(t.group_kind(d), GroupKind::Exact);
    assert!(!t.is_live(a));
    assert!(t.is_live(b));
    // `a`'s lifetime statistics went to its template (its own name: no id levels).
    let k = t.counters();
    assert_eq!((k.exact_evicted, k.exact_folded_into_template), (1, 1));
    assert_eq!(k.exact_groups, k.exact_admitted - k.exact_evicted);
    let snaps = t.snapshot(16 * MIN);
    let folded = snaps
        .iter()
        .find(|s| s.name == "room/kitchen/temp" && s.kind == "template")
        .expect("folded template");
    assert_eq!(folded.msgs_in.total, 3);
    assert_eq!(folded.bytes_in.total, 30);
    assert_eq!(folded.folded_topics, 1);
    assert_eq!(folded.publishers, 1);
    // The stale id is refused, not misattributed to the slot's next tenant.
    publish_in(&mut t, a, 1, 10, 16 * MIN);
    assert_eq!(t.counters().stale_ids, 1);
    assert_eq!(t.group_name(a), "");
    // New ids never equal a retired one.
    assert_ne!(d, a);
    // The topic comes back: a fresh exact group if there is room.
    t.tick(40 * MIN);
    let a2 = t.group_of(b"room/kitchen/temp", 40 * MIN);
    assert_eq!(t.group_kind(a2), GroupKind::Exact);
    assert_ne!(a2, a);
}

#[test]
fn tick_evicts_idle_templates_into_other() {
    let mut t = Topics::new(&cfg(0, 1)).unwrap();
    let g = t.group_of(b"s/1/t", 0);
    publish_in(&mut t, g, 1, 5, 0);
    t.tick(20 * MIN);
    let k = t.counters();
    assert_eq!((k.template_evicted, k.template_groups), (1, 0));
    let other = t.snapshot(20 * MIN);
    let o = other.iter().find(|s| s.kind == "other").unwrap();
    assert_eq!(o.msgs_in.total, 1);
    // Room again for a new template.
    let h = t.group_of(b"q/2/t", 20 * MIN);
    assert_eq!(t.group_name(h), "q/+/t");
}

#[test]
fn publish_statistics_by_hand() {
    let mut t = Topics::new(&ObserveConfig::default()).unwrap();
    let g = t.group_of(b"plant/line/temp", 0);
    // Inbound at 100, 110, 120 s with payloads 10, 20, 30; QoS 0, 1, 1; clients 7, 7, 8;
    // the second retained.
    t.on_publish(g, Direction::C2S, 7, 0, false, false, 10, 100 * S);
    t.on_publish(g, Direction::C2S, 7, 1, true, false, 20, 110 * S);
    t.on_publish(g, Direction::C2S, 8, 1, false, false, 30, 120 * S);
    // A retransmission: counted, but not an arrival.
    t.on_publish(g, Direction::C2S, 8, 1, false, true, 30, 121 * S);
    // Out to two subscribers, one of them twice.
    t.on_publish(g, Direction::S2C, 50, 0, false, false, 10, 100 * S);
    t.on_publish(g, Direction::S2C, 51, 1, false, false, 20, 110 * S);
    t.on_publish(g, Direction::S2C, 51, 2, true, false, 30, 120 * S);
    t.on_publish(g, Direction::S2C, 51, 3, false, false, 1, 120 * S);
    t.on_latency(g, Exchange::PublishQos1, 0.002);
    t.on_latency(g, Exchange::PublishQos1, 0.004);
    t.on_latency(g, Exchange::Fanout, 0.0001);
    t.on_latency(g, Exchange::Connect, 1.0);
    let s = t.snapshot_of(g, 125 * S).unwrap();
    assert_eq!(s.name, "plant/line/temp");
    assert_eq!(s.kind, "exact");
    assert_eq!(s.msgs_in.total, 4);
    assert_eq!(s.msgs_in.last_1m, 4);
    assert_eq!(s.bytes_in.total, 90);
    assert_eq!(s.msgs_out.total, 4);
    assert_eq!(s.bytes_out.total, 61);
    assert_eq!(s.qos_in, [1, 3, 0]);
    assert_eq!(s.qos_out, [1, 1, 1]);
    assert_eq!(s.qos_invalid, 1);
    assert_eq!((s.retained_in, s.retained_out), (1, 1));
    assert_eq!((s.dup_in, s.dup_out), (1, 0));
    assert_eq!((s.publishers, s.subscribers), (2, 2));
    assert_eq!(s.first_seen_ns, Some(100 * S));
    assert_eq!(s.last_seen_ns, Some(121 * S));
    // Gaps 10 and 10 s.
    assert_eq!(s.interarrival.gaps, 2);
    assert_eq!(s.interarrival.mean_s, Some(10.0));
    assert_eq!(s.interarrival.jitter_s, Some(0.0));
    assert_eq!(s.interarrival.period_s, None, "too few gaps");
    // Payloads 10, 20, 30, 30: rank floor(0.5 * 3) = 1 → 20; max 30.
    let p50 = s.payload_in.p50.unwrap();
    assert!((p50 - 20.0).abs() <= 0.2, "{p50}");
    assert_eq!(s.payload_in.max, Some(30.0));
    assert_eq!(s.latency.len(), 2);
    let q1 = &s.latency[0];
    assert_eq!((q1.exchange, q1.count), ("publish_qos1", 2));
    assert!((q1.p50_s.unwrap() - 0.002).abs() <= 0.00002);
    assert_eq!(s.latency[1].exchange, "fanout");
    // Views roll off: 2 minutes later the 1-minute view is empty, 5 minutes is not.
    let later = t.snapshot_of(g, 240 * S).unwrap();
    assert_eq!(later.msgs_in.last_1m, 0);
    assert_eq!(later.msgs_in.last_5m, 4);
    assert_eq!(later.msgs_in.total, 4);
    // Serialisable for reports.
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains("\"publish_qos1\""));
}

#[test]
fn periodic_topic_learns_its_period() {
    let mut t = Topics::new(&ObserveConfig::default()).unwrap();
    let g = t.group_of(b"meter/42/power", 0);
    for i in 0..20u64 {
        // 30 s period with ±0.5 s of alternating jitter.
        let ts = i * 30 * S + if i % 2 == 0 { 0 } else { S / 2 };
        publish_in(&mut t, g, 1, 8, ts);
    }
    let s = t.snapshot_of(g, 600 * S).unwrap();
    let p = s.interarrival.period_s.expect("periodic");
    assert!((p - 30.0).abs() < 0.6, "{p}");
    let m = s.interarrival.mean_s.unwrap();
    // Gaps: 30.5, 29.5, ... (19 gaps, first and last 30.5): mean (19*30 + 0.5) / 19.
    assert!((m - (570.5 / 19.0)).abs() < 1e-9, "{m}");
}

#[test]
fn memory_of_an_empty_and_a_small_table() {
    let mut t = Topics::new(&ObserveConfig::default()).unwrap();
    let empty = t.mem_bytes();
    let g = t.group_of(b"a/b", 0);
    publish_in(&mut t, g, 1, 100, 0);
    let one = t.mem_bytes() - empty;
    // One young group: its slot (statistics inline) and its payload sketch; the ring
    // holds nothing yet (the newest bucket lives in the slot).
    assert!(one >= std::mem::size_of::<GroupStats>(), "{one}");
    assert!(one <= 4096, "{one}");
    // After 15 minutes of traffic the ring holds all its buckets (90 × 4 lanes × 4
    // bytes): memory follows the history a group has, up to that.
    for sec in 1..=900 {
        publish_in(&mut t, g, 1, 100, sec * S);
    }
    let full = t.mem_bytes() - empty;
    assert!(full >= one + 90 * 16, "{one} -> {full}");
    assert!(full <= 4096 + 90 * 16, "{full}");
}

/// `GroupStats::brief` reads the same figures as the full snapshot, for every group
/// (exact, template, folded, with and without a learned period), through the queue.
#[test]
fn brief_agrees_with_snapshot() {
    let mut t = Topics::new(&cfg(3, 1)).unwrap();
    let mut x: u64 = 99;
    for step in 0..2_000u64 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        // One topic publishes every second exactly (a period to learn), first, so it
        // holds an exact group; the others at jittered times.
        let p = t.key_prefetched(b"beat");
        let g = t.group_for_publish(b"beat", p, Direction::C2S, step * S).g;
        t.record_publish(g, Direction::C2S, 1, 0, false, false, 10, step * S);
        let topic = format!("site/{}/m{}", (x >> 40) % 6, (x >> 50) % 2);
        let ts = step * S + (x >> 20) % S;
        let k = t.key_prefetched(topic.as_bytes());
        let g = t
            .group_for_publish(topic.as_bytes(), k, Direction::C2S, ts)
            .g;
        let dir = if x & 3 == 0 {
            Direction::S2C
        } else {
            Direction::C2S
        };
        t.record_publish(g, dir, x % 5, 1, false, false, (x % 900) as usize, ts);
        if step % 250 == 0 {
            t.tick(ts);
        }
    }
    let now = 2_001 * S;
    let mut n = 0;
    let mut periodic = 0;
    t.for_each_group(|name, kind, s| {
        let b = s.brief();
        let snap = s.snapshot(name, kind, now);
        assert_eq!(b.msgs_in, snap.msgs_in.total, "{name}");
        assert_eq!(b.msgs_out, snap.msgs_out.total, "{name}");
        assert_eq!(b.last_seen_ns, snap.last_seen_ns, "{name}");
        assert_eq!(b.gaps, snap.interarrival.gaps, "{name}");
        assert_eq!(b.period_s, snap.interarrival.period_s, "{name}");
        assert_eq!(b.folded_topics, snap.folded_topics, "{name}");
        n += 1;
        periodic += usize::from(b.period_s.is_some());
        assert!(b.msgs_in + b.msgs_out > 0, "{name}");
    });
    assert!(n >= 4, "exact and template groups: {n}");
    assert!(periodic >= 1, "a group with a learned period");
}
