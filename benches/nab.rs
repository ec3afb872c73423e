//! Runs `SeriesDetector` with its default (fixed) parameters over every NAB file in
//! `../shared/nab` and prints NAB's three normalised scores for the `alert` rows: the
//! fixed, deployed threshold (`alert_probability` in `DetectorConfig::default()`, never
//! chosen on the data here). For information only it also prints the score NAB itself
//! would report (the best threshold swept over `score`, with no alert logic) and a
//! robustness table: the three scores again with each main parameter moved by -20 % and
//! +20 %, one at a time.
//!
//! `cargo bench --bench nab`. Environment, for exploration:
//! - `NAB_CONFIG='{"escalation":1.5}'` overlays JSON on the defaults (nested objects
//!   merge, e.g. `{"spot":{"max_xi":0.2}}`);
//! - `NAB_VERBOSE=1` adds per-file counts, windows and alert rows;
//! - `NAB_DUMP=<part of a file name>` writes that file's rows (index, value, score,
//!   alert, window role) to stdout;
//! - `NAB_NO_TABLE=1` skips the perturbation table.

use std::path::Path;
use std::time::Instant;

use mqscope::detect::{DetectorConfig, SeriesDetector};
use mqscope::eval::corpus::{Corpus, score_detections, sweep_scores};
use mqscope::eval::nab;
use serde_json::Value;

/// The parameters of the robustness table: JSON paths into `DetectorConfig`.
const PERTURBED: &[&str] = &[
    "warmup",
    "fast_halflife",
    "slow_halflife",
    "scale_halflife",
    "winsor",
    "spread_weight",
    "spread_halflife",
    "season_buckets",
    "season_halflife_days",
    "season_scale_weight",
    "alert_probability",
    "escalation",
    "bar_halflife",
    "spot.threshold",
    "spot.zeta_halflife",
    "spot.capacity",
    "spot.min_peaks",
    "spot.max_xi",
    "spot.top_fraction",
];

/// Alerts and scores per file.
struct Run {
    alerts: Vec<Vec<bool>>,
    scores: Vec<Vec<f64>>,
}

fn run(corpus: &Corpus, cfg: &DetectorConfig) -> Run {
    let mut out = Run {
        alerts: Vec::new(),
        scores: Vec::new(),
    };
    for f in &corpus.files {
        let mut d = SeriesDetector::new(cfg.clone());
        let (mut a, mut s) = (Vec::with_capacity(f.rows.len()), Vec::new());
        for r in &f.rows {
            let v = d.update(r.ts_ns, r.value);
            a.push(v.alert);
            s.push(v.score);
        }
        out.alerts.push(a);
        out.scores.push(s);
    }
    out
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/nab");
    let corpus = Corpus::load(&root).expect("NAB corpus at ../shared/nab");
    let mut base = serde_json::to_value(DetectorConfig::default()).expect("config as JSON");
    if let Ok(j) = std::env::var("NAB_CONFIG") {
        merge(
            &mut base,
            serde_json::from_str(&j).expect("NAB_CONFIG: JSON"),
        );
    }
    let cfg: DetectorConfig = serde_json::from_value(base.clone()).expect("DetectorConfig");
    let t0 = Instant::now();
    let r = run(&corpus, &cfg);
    let el = t0.elapsed();
    let rows: usize = corpus.files.iter().map(|f| f.rows.len()).sum();
    if let Ok(pat) = std::env::var("NAB_DUMP") {
        for (k, f) in corpus.files.iter().enumerate() {
            if !f.name.contains(pat.as_str()) {
                continue;
            }
            for (i, row) in f.rows.iter().enumerate() {
                println!(
                    "dump {i} {} {:.6} {} {:?}",
                    row.value, r.scores[k][i], r.alerts[k][i] as u8, f.roles[i]
                );
            }
        }
    }
    if std::env::var_os("NAB_VERBOSE").is_some() {
        let std_cost = &corpus.profiles[0].cost;
        for (f, a) in corpus.files.iter().zip(&r.alerts) {
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
        "{} files, {} rows, {:.1} ms ({:.0} ns/sample); state per detector after the \
         longest file: {}",
        corpus.files.len(),
        rows,
        el.as_secs_f64() * 1e3,
        el.as_nanos() as f64 / rows as f64,
        state_bytes(&corpus, &cfg)
    );
    for (name, score, t) in score_detections(&corpus, &r.alerts) {
        println!(
            "fixed threshold  {name:20} {score:6.1}  (tp {} fn {} fp {})",
            t.tp, t.fn_, t.fp
        );
    }
    for (name, score, s) in sweep_scores(&corpus, &r.scores) {
        println!(
            "best sweep       {name:20} {score:6.1}  (threshold {:.4}; information only: \
             no alert logic, threshold chosen on this data)",
            s.threshold
        );
    }
    if std::env::var_os("NAB_NO_TABLE").is_some() {
        return;
    }
    println!();
    println!("robustness: one parameter at a time, fixed threshold, standard / low_FP / low_FN");
    println!(
        "{:24} {:>10} {:>22} {:>22}",
        "parameter", "default", "-20 %", "+20 %"
    );
    for path in PERTURBED {
        let Some(v) = get(&base, path).and_then(Value::as_f64) else {
            continue;
        };
        let integer = get(&base, path).is_some_and(|x| x.is_u64());
        let mut cells = Vec::new();
        for factor in [0.8, 1.2] {
            let mut c = base.clone();
            let nv = v * factor;
            let nv = if integer {
                Value::from(nv.round() as u64)
            } else {
                Value::from(nv)
            };
            let shown = if integer {
                nv.to_string()
            } else {
                format!("{:.4}", v * factor)
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_string()
            };
            set(&mut c, path, nv);
            let cfg: DetectorConfig = serde_json::from_value(c).expect("perturbed config");
            let r = run(&corpus, &cfg);
            let s: Vec<String> = score_detections(&corpus, &r.alerts)
                .iter()
                .map(|(_, score, _)| format!("{score:.1}"))
                .collect();
            cells.push(format!("{shown}: {}", s.join("/")));
        }
        println!(
            "{:24} {:>10} {:>22} {:>22}",
            path,
            get(&base, path).map(Value::to_string).unwrap_or_default(),
            cells[0],
            cells[1]
        );
    }
}

/// Serialised size of the detector state after the longest file (the peak rings are
/// full by then, so this is the steady state). JSON is larger than memory; the report
/// also gives the in-memory estimate.
fn state_bytes(corpus: &Corpus, cfg: &DetectorConfig) -> String {
    let Some(f) = corpus.files.iter().max_by_key(|f| f.rows.len()) else {
        return String::new();
    };
    let mut d = SeriesDetector::new(cfg.clone());
    for r in &f.rows {
        d.update(r.ts_ns, r.value);
    }
    format!(
        "{} in memory, {} as JSON",
        d.memory_bytes(),
        serde_json::to_string(&d).map(|s| s.len()).unwrap_or(0)
    )
}

fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

fn set(v: &mut Value, path: &str, new: Value) {
    let mut cur = v;
    for k in path.split('.') {
        match cur.get_mut(k) {
            Some(next) => cur = next,
            None => return,
        }
    }
    *cur = new;
}

/// Overlays `over` on `base`, object by object.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}
