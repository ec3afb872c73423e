//! Broker fan-out latency on a generated capture whose delays are known: publisher →
//! broker → 3 subscribers, each delivery delayed by an amount the scenario sets (not
//! round numbers, so a unit slip would show). Every measured fan-out sample must equal
//! its delay within 1 µs (the file's timestamps are nanoseconds, so in fact exactly).
//! The first message is published before any copy on its topic was seen leaving the
//! broker, so it is not timed (the observer remembers messages only of topics with a
//! subscriber; see `observe::tracker::fanout`): its deliveries are left out of the
//! expected samples, and the counters must say so.

use mqscope::dissect::DissectConfig;
use mqscope::observe::{Exchange, ObserveConfig, Observer};
use mqscope::replay::jsonl::JsonlWriter;
use mqscope::replay::replay_files;
use mqscope::replay::sink::ReplaySink;
use mqscope::synth::fanout::{FanoutScenario, write_fanout_capture};

fn run(sc: &FanoutScenario) -> (Vec<u64>, Vec<u64>, Observer) {
    let dir = std::env::temp_dir().join(format!(
        "mqscope-obs-fanout-{}-{}",
        std::process::id(),
        sc.qos
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("fanout.pcap");
    let truth = write_fanout_capture(&path, sc).unwrap();
    let mut obs = Observer::new(&ObserveConfig::default()).unwrap();
    obs.log_samples(1_000_000);
    let mut sink: ReplaySink<Vec<u8>> = ReplaySink {
        jsonl: None::<JsonlWriter<Vec<u8>>>,
        observer: Some(obs),
    };
    replay_files(&[path], DissectConfig::default(), None, &mut sink);
    let mut obs = sink.observer.unwrap();
    obs.finish();
    let mut got: Vec<u64> = obs
        .logged_samples()
        .iter()
        .filter(|s| s.exchange == Exchange::Fanout)
        .map(|s| (s.seconds * 1e9).round() as u64)
        .collect();
    let mut want: Vec<u64> = truth
        .iter()
        .filter(|d| d.message > 0)
        .map(|d| d.out_ns - d.in_ns)
        .collect();
    assert_eq!(
        want.len() + sc.delays_ns.len(),
        truth.len(),
        "only the first message's deliveries are left out"
    );
    got.sort();
    want.sort();
    (got, want, obs)
}

#[test]
fn fanout_latency_matches_the_generated_delays() {
    for qos in [0, 1] {
        let sc = FanoutScenario {
            qos,
            messages: 200,
            ..FanoutScenario::default()
        };
        let (got, want, obs) = run(&sc);
        assert_eq!(got.len(), want.len(), "qos {qos}: one sample per delivery");
        for (g, w) in got.iter().zip(&want) {
            assert!(
                g.abs_diff(*w) <= 1_000,
                "qos {qos}: measured {g} ns, generated {w} ns"
            );
        }
        // The per-topic view has the same samples: p50 is the middle delay (0.4205 ms),
        // within the sketch's 1 % relative accuracy.
        let snap = obs.snapshot();
        let t = snap.topics.iter().find(|t| t.name == sc.topic).unwrap();
        let f = t.latency.iter().find(|l| l.exchange == "fanout").unwrap();
        assert_eq!(f.count, want.len() as u64);
        let p50 = f.p50_s.unwrap();
        assert!((p50 - 420_500e-9).abs() <= 420_500e-9 * 0.01, "p50 {p50}");
        let fo = &snap.tracker.fanout;
        assert_eq!(fo.inbound, u64::from(sc.messages) - 1);
        assert_eq!(fo.untracked, 1);
        assert_eq!(fo.matched, want.len() as u64);
        // The first message's copies: nothing remembered to match them with.
        assert_eq!(fo.unmatched, sc.delays_ns.len() as u64);
        // Messages that already left the 5 s window went to all 3 subscribers; the
        // untimed first one has no outcome.
        assert_eq!((fo.delivered_0, fo.delivered_1), (0, 0));
        assert!(fo.delivered_n > 0);
    }
}
