//! Runs `SeriesDetector` with its default (fixed) parameters over every NAB file in
//! `../shared/nab` and prints NAB's three normalised scores: for the `alert` rows (the
//! fixed, deployed threshold) and for the best threshold swept over `score` (how NAB
//! ranks published detectors). `cargo bench --bench nab`; `NAB_VERBOSE=1` adds per-file
//! counts.

use std::path::Path;
use std::time::Instant;

use mqscope::detect::{DetectorConfig, SeriesDetector};
use mqscope::eval::corpus::{Corpus, score_detections, sweep_scores};
use mqscope::eval::nab;

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/nab");
    let corpus = Corpus::load(&root).expect("NAB corpus at ../shared/nab");
    // NAB_CONFIG='{"refractory":100}' overrides defaults for exploration only; the
    // reported numbers are the defaults'.
    let cfg: DetectorConfig = match std::env::var("NAB_CONFIG") {
        Ok(j) => serde_json::from_str(&j).expect("NAB_CONFIG: DetectorConfig JSON"),
        Err(_) => DetectorConfig::default(),
    };
    let t0 = Instant::now();
    let mut alerts = Vec::new();
    let mut scores = Vec::new();
    let mut rows = 0usize;
    for f in &corpus.files {
        let mut d = SeriesDetector::new(cfg.clone());
        let (mut a, mut s) = (Vec::new(), Vec::new());
        for r in &f.rows {
            let v = d.update(r.ts_ns, r.value);
            a.push(v.alert);
            s.push(v.score);
        }
        rows += f.rows.len();
        // NAB_DUMP=<part of a file name> writes that file's rows with scores to stdout
        // (index, value, score, alert, window role) for offline inspection.
        if let Ok(pat) = std::env::var("NAB_DUMP")
            && f.name.contains(pat.as_str())
        {
            for (i, r) in f.rows.iter().enumerate() {
                println!(
                    "dump {i} {} {:.6} {} {:?}",
                    r.value, s[i], a[i] as u8, f.roles[i]
                );
            }
        }
        alerts.push(a);
        scores.push(s);
    }
    let el = t0.elapsed();
    if std::env::var_os("NAB_VERBOSE").is_some() {
        let std_cost = &corpus.profiles[0].cost;
        for (f, a) in corpus.files.iter().zip(&alerts) {
            let s = nab::score_file(&f.roles, std_cost, |i| a[i]);
            let rows: Vec<usize> = (0..a.len())
                .filter(|&i| a[i] && f.roles[i] != nab::RowRole::Probation)
                .collect();
            println!(
                "{:55} tp {} fn {} fp {:2} raw {:+.3} windows {:?} alerts {:?}",
                f.name, s.tp, s.fn_, s.fp, s.raw, f.labels.windows, rows
            );
        }
    }
    println!(
        "{} files, {} rows, {:.1} ms ({:.0} ns/sample)",
        corpus.files.len(),
        rows,
        el.as_secs_f64() * 1e3,
        el.as_nanos() as f64 / rows as f64
    );
    for (name, score, t) in score_detections(&corpus, &alerts) {
        println!(
            "fixed threshold  {name:20} {score:6.1}  (tp {} fn {} fp {})",
            t.tp, t.fn_, t.fp
        );
    }
    for (name, score, r) in sweep_scores(&corpus, &scores) {
        println!(
            "best sweep       {name:20} {score:6.1}  (threshold {:.4})",
            r.threshold
        );
    }
}
