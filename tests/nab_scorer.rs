//! NAB scoring on hand-made files. Expected values are computed independently with
//! python3 from the formulas in NAB's paper / `nab/sweeper.py`; the one-liner is
//! `s = lambda y: -1 if y > 3 else 2/(1+math.exp(5*y)) - 1`.

use mqscope::eval::nab::{
    CostMatrix, FileLabels, RowRole, normalise, null_and_perfect, parse_profiles,
    probationary_length, row_roles, scaled_sigmoid, score_file, sweep,
};

const STANDARD: CostMatrix = CostMatrix {
    tp_weight: 1.0,
    fp_weight: 0.11,
    fn_weight: 1.0,
};
const LOW_FN: CostMatrix = CostMatrix {
    tp_weight: 1.0,
    fp_weight: 0.11,
    fn_weight: 2.0,
};

/// 100 rows (probation = 15), one window over rows 40..=49 (width 10).
fn one_window() -> Vec<RowRole> {
    row_roles(&FileLabels {
        rows: 100,
        windows: vec![(40, 49)],
    })
}

fn score(roles: &[RowRole], cost: &CostMatrix, rows: &[usize]) -> f64 {
    score_file(roles, cost, |i| rows.contains(&i)).raw
}

fn close(a: f64, b: f64) {
    assert!((a - b).abs() < 1e-9, "{a} != {b}");
}

#[test]
fn sigmoid_and_probation() {
    // s(-1) = tanh(2.5); s(0) = 0; s(3.5) clamps to -1.
    close(scaled_sigmoid(-1.0), 0.9866142981514305);
    close(scaled_sigmoid(0.0), 0.0);
    close(scaled_sigmoid(3.5), -1.0);
    assert_eq!(probationary_length(100), 15);
    assert_eq!(probationary_length(4032), 604);
    assert_eq!(probationary_length(22695), 750);
}

#[test]
fn detection_at_window_start_earns_full_tp() {
    let r = one_window();
    close(score(&r, &STANDARD, &[40]), 1.0);
    // Later detections in the same window add nothing: only the first counts.
    close(score(&r, &STANDARD, &[40, 41, 49]), 1.0);
    let s = score_file(&r, &STANDARD, |i| i == 40 || i == 45);
    assert_eq!((s.tp, s.fn_, s.fp), (1, 0, 0));
}

#[test]
fn detection_at_window_end_earns_little() {
    // s(-0.1)/s(-1) = 0.24824154977542992; at row 45: s(-0.5)/s(-1) = 0.8597925669097837.
    let r = one_window();
    close(score(&r, &STANDARD, &[49]), 0.24824154977542992);
    close(score(&r, &STANDARD, &[45, 49]), 0.8597925669097837);
}

#[test]
fn missed_window_costs_fn_weight() {
    let r = one_window();
    close(score(&r, &STANDARD, &[]), -1.0);
    close(score(&r, &LOW_FN, &[]), -2.0);
}

#[test]
fn false_positive_right_after_a_window_is_cheap() {
    // Row 50: y = (50-49)/(10-1); 0.11 * s(1/9) = -0.029793183036839352.
    // Row 60: y = 11/9; 0.11 * s(11/9) = -0.10951310130369775. Row 99: y > 3, -0.11.
    let r = one_window();
    close(score(&r, &STANDARD, &[40, 50]), 1.0 - 0.029793183036839352);
    close(score(&r, &STANDARD, &[40, 60]), 1.0 - 0.10951310130369775);
    close(score(&r, &STANDARD, &[40, 99]), 1.0 - 0.11);
    let s = score_file(&r, &STANDARD, |i| i == 50 || i == 60);
    assert_eq!((s.tp, s.fn_, s.fp), (0, 1, 2));
}

#[test]
fn false_positive_without_preceding_window_costs_full_fp_weight() {
    let r = one_window();
    close(score(&r, &STANDARD, &[20, 40]), 1.0 - 0.11);
    close(score(&r, &STANDARD, &[20, 39, 40]), 1.0 - 0.22);
    // A file without windows: each detection is a full false positive.
    let none = row_roles(&FileLabels {
        rows: 100,
        windows: vec![],
    });
    close(score(&none, &STANDARD, &[20, 30, 99]), -0.33);
}

#[test]
fn probationary_detections_are_ignored() {
    let r = one_window();
    close(score(&r, &STANDARD, &[0, 14]), -1.0);
    close(score(&r, &STANDARD, &[14, 15]), -1.11);
    // A window overlapping the probationary period only scores from row 15 on, still
    // weighted by its position in the whole window (rows 10..=19, width 10):
    // row 15: s(-(19-15+1)/10)/s(-1) = 0.8597925669097837.
    let early = row_roles(&FileLabels {
        rows: 100,
        windows: vec![(10, 19)],
    });
    close(score(&early, &STANDARD, &[10, 15]), 0.8597925669097837);
}

#[test]
fn windows_from_timestamps_follow_exact_matches() {
    // Timestamps step back once (as in a NAB file): the window opens at the first row
    // equal to its start and closes at the first later row equal to its end.
    let ts = [0u64, 10, 20, 30, 5, 15, 40, 50];
    let l = FileLabels::from_timestamps(&ts, &[(20, 40), (50, 50)]);
    assert_eq!(l.windows, vec![(2, 6), (7, 7)]);
    assert_eq!(l.rows, 8);
}

#[test]
fn normalisation_and_profiles() {
    let (null, perfect) = null_and_perfect(25, &STANDARD);
    close(null, -25.0);
    close(perfect, 25.0);
    close(normalise(5.0, null, perfect), 60.0);
    close(normalise(null, null, perfect), 0.0);
    close(normalise(perfect, null, perfect), 100.0);
    let p = parse_profiles(
        r#"{"standard":{"CostMatrix":{"tpWeight":1.0,"fnWeight":1.0,"fpWeight":0.11,"tnWeight":1.0}},
            "reward_low_FP_rate":{"CostMatrix":{"tpWeight":1.0,"fnWeight":1.0,"fpWeight":0.22,"tnWeight":1.0}},
            "reward_low_FN_rate":{"CostMatrix":{"tpWeight":1.0,"fnWeight":2.0,"fpWeight":0.11,"tnWeight":1.0}}}"#,
    )
    .unwrap();
    assert_eq!(p[0].cost, STANDARD);
    assert_eq!(p[2].cost, LOW_FN);
    assert_eq!(p[1].name, "reward_low_FP_rate");
    assert!(parse_profiles("{}").is_err());
}

#[test]
fn sweep_finds_the_best_inclusive_threshold() {
    let r = one_window();
    let mut scores = vec![0.0; 100];
    scores[5] = 0.99; // probation: ignored whatever the threshold
    scores[20] = 0.9; // FP before the window: -0.11
    scores[40] = 0.8; // window start: +1
    scores[45] = 0.8;
    scores[60] = 0.5; // FP after: -0.10951310130369775
    let best = sweep(&[(&r, &scores)], &STANDARD);
    // Thresholds: inf -> -1; 0.9 -> -1.11; 0.8 -> 0.89; 0.5 -> 0.7804868986963023; 0 -> lots of FPs.
    assert_eq!(best.threshold, 0.8);
    close(best.raw, 0.89);
    // With the FP scored above everything else, detecting nothing but the window is
    // impossible, and raising the FP cost makes "no detections" (-1) no better than 0.89.
    let only_fp = {
        let mut s = vec![0.0; 100];
        s[20] = 0.9;
        s
    };
    let best = sweep(&[(&r, &only_fp)], &STANDARD);
    assert_eq!(best.threshold, f64::INFINITY);
    close(best.raw, -1.0);
}

#[test]
fn sweep_combines_files_under_one_threshold() {
    // File A: window detected only at 0.6; file B (no window) has an FP at 0.7 and 0.65.
    let a = one_window();
    let b = row_roles(&FileLabels {
        rows: 100,
        windows: vec![],
    });
    let mut sa = vec![0.0; 100];
    sa[40] = 0.6;
    let mut sb = vec![0.0; 100];
    sb[50] = 0.7;
    sb[51] = 0.65;
    // threshold 0.6: 1 - 0.22 = 0.78, better than inf (-1).
    let best = sweep(&[(&a, &sa), (&b, &sb)], &STANDARD);
    assert_eq!(best.threshold, 0.6);
    close(best.raw, 0.78);
    // The same when scored with fixed detections.
    close(
        score(&a, &STANDARD, &[40]) + score(&b, &STANDARD, &[50, 51]),
        0.78,
    );
}
