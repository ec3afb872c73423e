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
