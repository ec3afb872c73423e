//! Unit tests of the gates, the fire/clear life cycle of a series, configuration and
//! persistence. Expected thresholds are computed by hand in the comments.

use super::config::{AnomalyConfig, RateConfig};
use super::track::{self, Check, Step, StepParams, Track};
use super::{AnomalyEngine, detector_config};

#[test]
fn count_spike_threshold_is_the_largest_of_ratio_delta_and_poisson() {
    // e = 20: max(3 * 20 = 60, 20 + 10 = 30, 20 + 5 * sqrt(20) = 42.36) = 60.
    assert_eq!(track::count_spike(20.0, 59.0, 3.0, 10.0, 5.0), None);
    assert_eq!(
        track::count_spike(20.0, 60.0, 3.0, 10.0, 5.0),
        Some(Check {
            up: true,
            threshold: 60.0
        })
    );
    // e = 0: max(0, 0 + 10, 0 + 5 * sqrt(1)) = 10: a quiet topic needs 10 messages.
    assert!(track::count_spike(0.0, 9.0, 3.0, 10.0, 5.0).is_none());
    assert!(track::count_spike(0.0, 10.0, 3.0, 10.0, 5.0).is_some());
    // e = 400: max(1200, 410, 400 + 5 * 20 = 500) = 1200.
    let c = track::count_spike(400.0, 1200.0, 3.0, 10.0, 5.0).unwrap();
    assert_eq!(c.threshold, 1200.0);
}

#[test]
fn count_drop_needs_a_big_enough_expected_count() {
    // e = 100: min(0.3 * 100 = 30, 100 - 5 * 10 = 50) = 30.
    assert_eq!(track::count_drop(100.0, 31.0, 0.3, 20.0, 5.0), None);
    assert_eq!(
        track::count_drop(100.0, 30.0, 0.3, 20.0, 5.0),
        Some(Check {
            up: false,
            threshold: 30.0
        })
    );
    // e = 19 < min_expected 20: even 0 is no drop.
    assert_eq!(track::count_drop(19.0, 0.0, 0.3, 20.0, 5.0), None);
    // e = 25: min(7.5, 25 - 25 = 0) = 0: only a full stop counts.
    assert_eq!(track::count_drop(25.0, 1.0, 0.3, 20.0, 5.0), None);
    assert!(track::count_drop(25.0, 0.0, 0.3, 20.0, 5.0).is_some());
    let r = RateConfig::default();
    assert!(track::count_change(100.0, 300.0, &r).is_some_and(|c| c.up));
    assert!(track::count_change(100.0, 30.0, &r).is_some_and(|c| !c.up));
    assert!(track::count_change(100.0, 150.0, &r).is_none());
}

#[test]
fn shift_and_rise_thresholds() {
    // e = 60 bytes, ratio 0.5, floor 32: d = max(30, 32) = 32 -> 92 up, 28 down.
    assert_eq!(track::shift(60.0, 91.9, 0.5, 32.0), None);
    assert_eq!(
        track::shift(60.0, 92.0, 0.5, 32.0).map(|c| (c.up, c.threshold)),
        Some((true, 92.0))
    );
    assert_eq!(
        track::shift(60.0, 28.0, 0.5, 32.0).map(|c| (c.up, c.threshold)),
        Some((false, 28.0))
    );
    // 10 ms latency, ratio 3, floor 5 ms: max(30 ms, 15 ms) = 30 ms.
    let c = track::rise(0.010, 0.030, 3.0, 0.005).unwrap();
    assert!((c.threshold - 0.030).abs() < 1e-12);
    assert!(track::rise(0.010, 0.029, 3.0, 0.005).is_none());
}

fn params() -> StepParams {
    StepParams {
        warmup: 50,
        confirm: 2,
        clear: 3,
        max_firing_ns: 100 * 10_000_000_000,
        halflife: 30.0,
        unit: 1.0,
    }
}

/// 100 +- 5 (deterministic saw) for `n` samples from sample `from`.
fn normal(t: &mut Track, from: u64, n: u64) -> Vec<Step> {
    let p = params();
    (from..from + n)
        .map(|i| {
            let x = 100.0 + (i % 11) as f64 - 5.0;
            t.step(i * 10_000_000_000, x, &p, |e, x| {
                track::shift(e, x, 0.5, 10.0)
            })
        })
        .collect()
}

#[test]
fn a_step_fires_after_confirm_buckets_and_clears_after_clear_buckets() {
    let cfg = AnomalyConfig::default();
    let mut dc = detector_config(&cfg);
    dc.warmup = 50;
    let mut t = Track::new(&dc, false, 0);
    assert!(normal(&mut t, 0, 300).iter().all(|s| *s == Step::Quiet));
    assert!((t.baseline() - 100.0).abs() < 3.0, "{}", t.baseline());
    let p = params();
    let gate = |e: f64, x: f64| track::shift(e, x, 0.5, 10.0);
    // 400 is far outside 100 +- max(50, 10): first bucket is a candidate, second fires.
    assert_eq!(t.step(300 * 10_000_000_000, 400.0, &p, gate), Step::Quiet);
    match t.step(301 * 10_000_000_000, 400.0, &p, gate) {
        Step::Fire {
            up,
            expected,
            threshold,
            score,
        } => {
            assert!(up);
            assert!((expected - 100.0).abs() < 3.0);
            // threshold = e + max(0.5 e, 10) = 1.5 e.
            assert!((threshold - 1.5 * expected).abs() < 1e-9);
            assert!(score >= 0.5);
        }
        s => panic!("{s:?}"),
    }
    for i in 302..310 {
        assert_eq!(
            t.step(i * 10_000_000_000, 400.0, &p, gate),
            Step::Firing { up: true }
        );
    }
    // Back to normal: two buckets still "firing" (waiting), the third clears.
    let back = normal(&mut t, 310, 3);
    assert_eq!(back[0], Step::Firing { up: true });
    assert_eq!(back[1], Step::Firing { up: true });
    assert_eq!(
        back[2],
        Step::Clear {
            up: true,
            adapted: false
        }
    );
    // The baseline was frozen while firing: still about 100.
    assert!((t.baseline() - 100.0).abs() < 3.0, "{}", t.baseline());
}

#[test]
fn a_lasting_shift_becomes_the_new_baseline() {
    let cfg = AnomalyConfig::default();
    let mut dc = detector_config(&cfg);
    dc.warmup = 50;
    let mut t = Track::new(&dc, false, 0);
    normal(&mut t, 0, 300);
    let p = params();
    let gate = |e: f64, x: f64| track::shift(e, x, 0.5, 10.0);
    let mut fired_at = None;
    let mut cleared = None;
    for i in 300..500 {
        match t.step(i * 10_000_000_000, 400.0, &p, gate) {
            Step::Fire { .. } => fired_at = Some(i),
            Step::Clear { adapted, .. } => {
                assert!(adapted);
                cleared = Some(i);
                break;
            }
            _ => {}
        }
    }
    // max_firing is 100 buckets.
    assert_eq!(fired_at, Some(301));
    assert_eq!(cleared, Some(401));
    assert_eq!(t.baseline(), 400.0);
    assert!(!t.is_firing());
}

#[test]
fn no_alert_during_warm_up() {
    let cfg = AnomalyConfig::default();
    let dc = detector_config(&cfg);
    let mut t = Track::new(&dc, false, 0);
    let p = StepParams {
        warmup: 180,
        ..params()
    };
    let gate = |e: f64, x: f64| track::shift(e, x, 0.5, 10.0);
    for i in 0..170u64 {
        let x = if i % 20 == 19 { 1000.0 } else { 100.0 };
        assert!(!matches!(
            t.step(i * 10_000_000_000, x, &p, gate),
            Step::Fire { .. }
        ));
    }
}

#[test]
fn default_config_is_valid_and_bad_fields_are_named() {
    assert!(AnomalyConfig::default().validate().is_empty());
    let mut c = AnomalyConfig {
        bucket_secs: 0,
        alert_probability: 0.0,
        ..AnomalyConfig::default()
    };
    c.rate.drop_ratio = 1.5;
    c.peers.max_k = 0;
    let errs = c.validate();
    for f in [
        "bucket_secs",
        "rate.drop_ratio",
        "peers.max_k",
        "alert_probability",
    ] {
        assert!(errs.iter().any(|e| e.contains(f)), "{f}: {errs:?}");
    }
    assert!(AnomalyEngine::new(c).is_err());
    // Unknown fields are refused, also in sections.
    assert!(serde_json::from_str::<AnomalyConfig>(r#"{"rate": {"spike": 2}}"#).is_err());
    let c: AnomalyConfig =
        serde_json::from_str(r#"{"warmup_s": 60, "peers": {"min_peers": 4}}"#).unwrap();
    assert_eq!((c.warmup_s, c.peers.min_peers, c.bucket_secs), (60, 4, 10));
}

#[test]
fn load_refuses_another_format_version_or_bucket_width() {
    let e = AnomalyEngine::new(AnomalyConfig::default()).unwrap();
    let mut buf = Vec::new();
    e.save(&mut buf).unwrap();
    let text = String::from_utf8(buf).unwrap();
    assert!(
        text.starts_with(r#"{"format":"mqscope-anomaly-baselines","version":1,"bucket_secs":10"#),
        "{text}"
    );
    let mut fresh = AnomalyEngine::new(AnomalyConfig::default()).unwrap();
    assert!(fresh.load(text.as_bytes()).is_ok());
    let v2 = text.replace(r#""version":1"#, r#""version":2"#);
    assert!(fresh.load(v2.as_bytes()).unwrap_err().contains("version"));
    let b30 = text.replace(r#""bucket_secs":10"#, r#""bucket_secs":30"#);
    assert!(fresh.load(b30.as_bytes()).unwrap_err().contains("30 s"));
    assert!(fresh.load(&b"{not json"[..]).is_err());
}

/// The `[anomaly]` section as documented for `mqscope run` (every key, defaults shown).
pub const EXAMPLE_TOML: &str = r#"
[anomaly]
enabled = true
bucket_secs = 10
warmup_s = 1800
learn_s = 3600
max_series = 20000
max_topics = 20000
max_clients = 50000
max_known = 200000
idle_evict_s = 21600
seasonality = "daily"   # none | daily | weekly
season_buckets = 24
alert_probability = 0.001
confirm_buckets = 2
clear_buckets = 3
max_firing_s = 3600
cooldown_s = 600
max_hits = 1000
max_catchup_buckets = 360

[anomaly.rate]
enabled = true
spike_ratio = 3.0
spike_min_delta = 10.0
z = 5.0
drop_ratio = 0.3
drop_min_expected = 20.0
per_client = true

[anomaly.silence]
enabled = true
periods = 5.0
min_gaps = 10
min_silence_s = 30.0
client_min_gaps = 20
client_max_jitter = 0.5

[anomaly.payload]
enabled = true
ratio = 0.5
min_delta_bytes = 32.0
min_msgs = 3

[anomaly.latency]
enabled = true
ratio = 3.0
min_delta_ms = 5.0
min_samples = 5

[anomaly.fanout]
enabled = true
min_ratio = 0.5
loss_fraction = 0.2
min_expected = 10.0

[anomaly.unanswered]
enabled = true
min_count = 10.0
ratio = 3.0

[anomaly.new_names]
topics = true
clients = true
max_per_bucket = 5

[anomaly.peers]
enabled = true
every_buckets = 30
max_clients = 2000
min_clients = 10
min_peers = 3
max_k = 6
distance = 5.0
scale_floor = 0.5
seed = 7886211293411042609

[anomaly.broker]
enabled = true
spike_ratio = 3.0
min_delta = 10.0
drop_ratio = 0.3
drop_min_expected = 10.0

[anomaly.persist]
path = "/var/lib/mqscope/anomaly-baselines.json"
interval_s = 900
"#;

#[test]
fn example_toml_section_is_every_default() {
    #[derive(serde::Deserialize)]
    struct File {
        anomaly: AnomalyConfig,
    }
    let f: File = toml::from_str(EXAMPLE_TOML).unwrap();
    let mut want = AnomalyConfig::default();
    want.persist.path = Some("/var/lib/mqscope/anomaly-baselines.json".into());
    assert_eq!(f.anomaly, want);
    assert!(f.anomaly.validate().is_empty());
    // A path alone gets the default interval.
    let f: File = toml::from_str("[anomaly.persist]\npath = \"/x\"\n").unwrap();
    assert_eq!(f.anomaly.persist.interval_s, 900);
}
