//! Cardinality attack: 1M distinct topics from 100k clients must leave the topic state
//! within its cap-derived budget, with every topic that did not get an exact group
//! accounted for by the routing/eviction counters. Full default caps (10 000 exact,
//! 1 000 templates), no scaling down.

use mqscope::mqtt::Direction;
use mqscope::observe::ObserveConfig;
use mqscope::observe::topics::Topics;

const S: u64 = 1_000_000_000;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// `site/dev-<uuid>/temp`, or levels of random lowercase letters (no identifiers).
fn topic(r: &mut Rng, i: u64, buf: &mut Vec<u8>) {
    use std::io::Write;
    buf.clear();
    if i.is_multiple_of(2) {
        let (a, b) = (r.next(), r.next());
        let _ = write!(
            buf,
            "site/dev-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}/temp",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        );
    } else {
        let levels = 2 + r.next() % 4;
        for l in 0..levels {
            if l > 0 {
                buf.push(b'/');
            }
            let len = 3 + r.next() % 10;
            for _ in 0..len {
                buf.push(b'a' + (r.next() % 26) as u8);
            }
        }
    }
}

#[test]
fn million_topics_stay_within_budget() {
    let cfg = ObserveConfig::default();
    let mut t = Topics::new(&cfg).unwrap();
    let mut r = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = Vec::new();
    let n: u64 = 1_000_000;
    // 1M topics over 100 s (within the 15-minute idle limit: no eviction possible).
    for i in 0..n {
        topic(&mut r, i, &mut buf);
        let ts = i * 100;
        let g = t.group_of(&buf, ts * 1000);
        let payload = (r.next() % 100_000) as usize;
        t.on_publish(
            g,
            Direction::C2S,
            i % 100_000,
            (i % 3) as u8,
            false,
            false,
            payload,
            ts * 1000,
        );
        if i % 7 == 0 {
            t.on_publish(
                g,
                Direction::S2C,
                (i * 31) % 100_000,
                1,
                false,
                false,
                payload,
                ts * 1000,
            );
        }
    }
    let k = t.counters();
    let cap = cfg.max_exact_topics + cfg.max_templates + 1;
    assert!(t.len() <= cap, "len {}", t.len());
    assert_eq!(k.exact_groups, cfg.max_exact_topics as u64);
    assert_eq!(k.template_groups, cfg.max_templates as u64);
    // Every topic was seen once: each either got an exact group or was routed.
    assert_eq!(
        k.exact_admitted + k.routed_to_template + k.routed_to_other,
        n
    );
    assert_eq!(k.exact_evicted, 0);
    assert_eq!(k.stale_ids, 0);
    // Budget: 3 KB per group slot (ring 1.4 KB, a payload sketch, names, map entries;
    // measured ~2.2 KB here), and 64 MB is the hard ceiling.
    let budget = cap * 3 * 1024;
    println!("counters: {k:?}");
    println!(
        "mem_bytes {} ({:.1} MB), budget {budget}",
        k.mem_bytes,
        k.mem_bytes as f64 / 1e6
    );
    assert!((k.mem_bytes as usize) < budget);
    assert!(k.mem_bytes < 64 << 20);

    // 16 minutes later, 20 000 new topics: idle exact topics give way (and fold into
    // their templates), idle templates too.
    let base = 100 * S + 16 * 60 * S;
    t.tick(base);
    let before = t.counters();
    let m: u64 = 20_000;
    for i in 0..m {
        topic(&mut r, i, &mut buf);
        let g = t.group_of(&buf, base + i * 1000);
        t.on_publish(g, Direction::C2S, i, 0, false, false, 10, base + i * 1000);
    }
    let k = t.counters();
    assert!(k.exact_evicted > 0);
    assert_eq!(
        k.exact_evicted,
        k.exact_folded_into_template + k.exact_folded_into_other
    );
    assert_eq!(k.exact_groups, k.exact_admitted - k.exact_evicted);
    assert_eq!(
        (k.exact_admitted + k.routed_to_template + k.routed_to_other)
            - (before.exact_admitted + before.routed_to_template + before.routed_to_other),
        m
    );
    assert!(t.len() <= cap);
    assert!((k.mem_bytes as usize) < budget);
    println!("after churn: {k:?}");
}
