//! The scorer reproduces the published NAB scores of two detectors on the development
//! split (numbers from `../shared/nab/README.md`, computed there with NAB's own code).

use std::path::Path;

use mqscope::eval::corpus::{Corpus, sweep_scores};

fn corpus() -> Corpus {
    Corpus::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/nab")).expect("NAB corpus")
}

fn check(detector: &str, expected: [f64; 3]) {
    let c = corpus();
    assert_eq!(c.files.len(), 18);
    assert_eq!(c.windows(), 25);
    let scores = c.reference_scores(detector).unwrap();
    let got = sweep_scores(&c, &scores);
    for ((name, score, r), want) in got.iter().zip(expected) {
        eprintln!(
            "{detector} {name}: {score:.3} (threshold {}, raw {:.4})",
            r.threshold, r.raw
        );
        assert_eq!(
            format!("{score:.1}"),
            format!("{want:.1}"),
            "{detector} {name}"
        );
    }
}

#[test]
fn numenta_htm() {
    check("numenta", [61.3, 54.3, 66.2]);
}

#[test]
fn random_cut_forest() {
    check("randomCutForest", [47.1, 34.7, 56.7]);
}
