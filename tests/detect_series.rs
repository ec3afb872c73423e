//! `SeriesDetector` end to end: warm-up, obvious anomalies in both directions, quiet on
//! noise, and save/reload giving exactly the uninterrupted run.

use mqscope::detect::{DetectorConfig, SeriesDetector, Verdict, persist};

const STEP: u64 = 300_000_000_000; // 5 minutes in ns
const T0: u64 = 1_396_310_400_000_000_000; // 2014-04-01 00:00:00 UTC

/// Deterministic noise in [-1, 1) (an LCG, fixed seed) plus a daily sine.
fn series(n: usize) -> Vec<(u64, f64)> {
    let mut s = 12345u64;
    (0..n)
        .map(|i| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let noise = ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0;
            let day = (i as f64 / 288.0) * std::f64::consts::TAU;
            (T0 + i as u64 * STEP, 50.0 + 10.0 * day.sin() + noise)
        })
        .collect()
}

fn run(d: &mut SeriesDetector, xs: &[(u64, f64)]) -> Vec<Verdict> {
    xs.iter().map(|&(t, v)| d.update(t, v)).collect()
}

#[test]
fn spike_and_drop_alert_noise_mostly_does_not() {
    let mut xs = series(4000);
    xs[2500].1 += 40.0; // spike
    xs[3500].1 -= 40.0; // drop
    let mut d = SeriesDetector::new(DetectorConfig::default());
    let v = run(&mut d, &xs);
    let alerts: Vec<usize> = (0..v.len()).filter(|&i| v[i].alert).collect();
    assert!(alerts.contains(&2500), "{alerts:?}");
    assert!(alerts.contains(&3500), "{alerts:?}");
    assert!(
        alerts.len() <= 4,
        "too many alerts on a clean daily sine: {alerts:?}"
    );
    assert!(alerts.iter().all(|&i| i > d.config().warmup as usize));
    assert!(v.iter().all(|x| (0.0..1.0).contains(&x.score)));
    assert!(v[2500].score >= 0.5 && v[3500].score >= 0.5);
}

#[test]
fn no_alert_during_warmup() {
    let mut xs = series(400);
    xs[100].1 += 1e6;
    let mut d = SeriesDetector::new(DetectorConfig::default());
    let v = run(&mut d, &xs[..300]);
    assert!(v.iter().all(|x| !x.alert && x.score == 0.0));
}

#[test]
fn flat_series_stays_quiet_then_alerts_on_change() {
    let mut d = SeriesDetector::new(DetectorConfig::default());
    let xs: Vec<(u64, f64)> = (0..1000).map(|i| (T0 + i * STEP, 7.0)).collect();
    assert!(run(&mut d, &xs).iter().all(|v| !v.alert));
    assert!(d.update(T0 + 1000 * STEP, 8.0).alert);
    // Non-finite input is ignored rather than poisoning the baselines.
    assert!(!d.update(T0 + 1001 * STEP, f64::NAN).alert);
    assert_eq!(d.samples(), 1001);
}

#[test]
fn save_and_reload_continues_exactly() {
    let mut xs = series(3000);
    xs[2000].1 += 30.0;
    let mut whole = SeriesDetector::new(DetectorConfig::default());
    let expected = run(&mut whole, &xs);

    let mut first = SeriesDetector::new(DetectorConfig::default());
    let mut got = run(&mut first, &xs[..1234]);
    let path = std::env::temp_dir().join(format!("mqscope-detect-{}.json", std::process::id()));
    persist::save(&path, &first).unwrap();
    drop(first);
    let mut again: SeriesDetector = persist::load(&path).unwrap().expect("saved state");
    std::fs::remove_file(&path).unwrap();
    got.extend(run(&mut again, &xs[1234..]));
    assert_eq!(got, expected);
    assert_eq!(again, whole);
    // Nothing saved yet reads as a first start.
    assert!(persist::load::<SeriesDetector>(&path).unwrap().is_none());
}

/// A clean daily sine, a month of 5-minute samples: nothing is anomalous. Before the
/// profile was read with its mean removed, level and profile traded a constant during
/// each day and the step between the last and the first bucket alerted at 00:00; with a
/// bounded tail fit, a new maximum past the fitted end point alerted with score 0.99.
#[test]
fn clean_daily_sine_never_alerts() {
    let mut d = SeriesDetector::new(DetectorConfig::default());
    let xs: Vec<(u64, f64)> = (0..288 * 30)
        .map(|i| {
            let day = (i as f64 / 288.0) * std::f64::consts::TAU;
            (T0 + i as u64 * STEP, 50.0 + 10.0 * day.sin())
        })
        .collect();
    let v = run(&mut d, &xs);
    let alerts: Vec<usize> = (0..v.len()).filter(|&i| v[i].alert).collect();
    assert!(alerts.is_empty(), "{alerts:?}");
    // The expectation follows the sine once the profile is learned.
    let last = v.last().unwrap();
    let want = xs.last().unwrap().1;
    assert!(
        (last.expected - want).abs() < 1.5,
        "{} vs {want}",
        last.expected
    );
}

/// A sparse series: exact zeros with a spike of 20 every 50 samples. The winsorised
/// scale of the zeros decays toward 0, which made every routine spike look more
/// extreme than the last; the spread floor keeps a scale, so once learned the routine
/// spikes stay quiet, and a spike five times as large still alerts.
#[test]
fn routine_spikes_on_a_sparse_series_stay_quiet() {
    let mut xs: Vec<(u64, f64)> = (0..4000)
        .map(|i| (T0 + i as u64 * STEP, if i % 50 == 7 { 20.0 } else { 0.0 }))
        .collect();
    xs[3507].1 = 100.0;
    let mut d = SeriesDetector::new(DetectorConfig::default());
    let v = run(&mut d, &xs);
    let alerts: Vec<usize> = (0..v.len()).filter(|&i| v[i].alert).collect();
    assert!(
        alerts.iter().filter(|&&i| i > 1500 && i != 3507).count() == 0,
        "{alerts:?}"
    );
    assert!(alerts.contains(&3507), "{alerts:?}");
}

/// One incident, one alert: a second spike like the first right after it does not
/// alert (the bar is two decades above the first alert's surprise); one far larger
/// does; once the bar has decayed (half-life 100 samples) a spike like the first
/// alerts again.
#[test]
fn alerts_escalate_and_the_bar_decays() {
    let mut xs = series(6000);
    xs[3000].1 += 15.0;
    xs[3010].1 += 15.0;
    xs[3020].1 += 200.0;
    xs[5000].1 += 15.0;
    let mut d = SeriesDetector::new(DetectorConfig::default());
    let v = run(&mut d, &xs);
    assert!(v[3000].alert, "{:?}", v[3000]);
    assert!(
        !v[3010].alert && v[3010].probability < 5e-4,
        "{:?}",
        v[3010]
    );
    assert!(v[3020].alert, "{:?}", v[3020]);
    assert!(v[5000].alert, "{:?}", v[5000]);
}

/// The saved state names its format version; a state of another version (or one saved
/// before versions existed) is refused, so the caller starts afresh instead of
/// misreading old baselines.
#[test]
fn saved_state_is_versioned() {
    let mut d = SeriesDetector::new(DetectorConfig::default());
    run(&mut d, &series(500));
    let mut json: serde_json::Value = serde_json::to_value(&d).unwrap();
    assert_eq!(json["version"], mqscope::detect::series::STATE_VERSION);
    let back: SeriesDetector = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, d);
    json["version"] = 1.into();
    let e = serde_json::from_value::<SeriesDetector>(json.clone()).unwrap_err();
    assert!(e.to_string().contains("version 1"), "{e}");
    json.as_object_mut().unwrap().remove("version");
    assert!(serde_json::from_value::<SeriesDetector>(json).is_err());
}

/// A detector restored from its saved state carries on exactly as the original would
/// (same verdicts, bit for bit, alerts included), with a config whose half-lives and
/// alert level differ from the defaults: whatever the detector derives from its config
/// must come back with it.
#[test]
fn restored_state_carries_on_identically() {
    let cfg = DetectorConfig {
        fast_halflife: 7.0,
        slow_halflife: 300.0,
        scale_halflife: 50.0,
        bar_halflife: 5.0,
        alert_probability: 1e-3,
        ..DetectorConfig::default()
    };
    let mut xs = series(3000);
    for i in [2000, 2100, 2500] {
        xs[i].1 += 40.0;
    }
    let mut a = SeriesDetector::new(cfg);
    run(&mut a, &xs[..1500]);
    let saved = serde_json::to_string(&a).unwrap();
    let mut b: SeriesDetector = serde_json::from_str(&saved).unwrap();
    let (va, vb) = (run(&mut a, &xs[1500..]), run(&mut b, &xs[1500..]));
    assert!(va.iter().filter(|v| v.alert).count() >= 2, "alerts raised");
    for (i, (x, y)) in va.iter().zip(&vb).enumerate() {
        assert_eq!(
            (
                x.alert,
                x.score.to_bits(),
                x.probability.to_bits(),
                x.expected.to_bits()
            ),
            (
                y.alert,
                y.score.to_bits(),
                y.probability.to_bits(),
                y.expected.to_bits()
            ),
            "sample {i}"
        );
    }
    assert_eq!(a, b);
}

/// Memory is bounded: the four peak rings are full after a long run and the daily
/// profiles were sized at construction.
#[test]
fn memory_is_bounded() {
    let cfg = DetectorConfig::default();
    let bound = std::mem::size_of::<SeriesDetector>()
        + 4 * cfg.spot.capacity * 8
        + 2 * usize::from(cfg.season_buckets) * 24;
    let mut d = SeriesDetector::new(cfg);
    run(&mut d, &series(20_000));
    let used = d.memory_bytes();
    assert!(used <= bound, "{used} > {bound}");
    run(&mut d, &series(20_000));
    assert!(d.memory_bytes() <= bound);
}
