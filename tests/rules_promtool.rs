//! The Prometheus rules in `rules/` pass `promtool check rules`, their unit tests in
//! `rules/tests/` pass `promtool test rules`, and every alert has a unit test where it fires
//! and one where it does not (Debian package `prometheus` ships promtool).

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn promtool(args: &[&str]) -> (bool, String) {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(root())
        .output()
        .expect("promtool missing: install the Debian package `prometheus`");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn test_files() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(root().join("rules/tests"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| p.strip_prefix(root()).unwrap().display().to_string())
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no rules/tests/*.yml");
    v
}

#[test]
fn promtool_check_rules_accepts_the_rules() {
    let (ok, text) = promtool(&["check", "rules", "rules/mqscope.rules.yml"]);
    assert!(ok, "{text}");
    assert!(text.contains("SUCCESS"), "{text}");
}

#[test]
fn promtool_unit_tests_pass() {
    let files = test_files();
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    let (ok, text) = promtool(&args);
    assert!(ok, "{text}");
    assert_eq!(
        text.matches("SUCCESS").count(),
        files.len(),
        "every test file must succeed:\n{text}"
    );
}

/// Each `alertname:` in an `alert_rule_test` is followed by `exp_alerts: []` (does not
/// fire) or by a list of expected alerts (fires). Line-based: the test files keep that
/// layout.
#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let rules = std::fs::read_to_string(root().join("rules/mqscope.rules.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert!(alerts.len() >= 8, "alerts found: {alerts:?}");
    let mut fires = std::collections::BTreeSet::new();
    let mut quiet = std::collections::BTreeSet::new();
    for f in test_files() {
        let text = std::fs::read_to_string(root().join(f)).unwrap();
        let lines: Vec<&str> = text.lines().map(str::trim).collect();
        for (i, l) in lines.iter().enumerate() {
            if let Some(name) = l.strip_prefix("alertname: ") {
                match lines.get(i + 1) {
                    Some(&"exp_alerts: []") => quiet.insert(name.to_string()),
                    Some(&"exp_alerts:") => fires.insert(name.to_string()),
                    other => panic!("unexpected layout after alertname {name}: {other:?}"),
                };
            }
        }
    }
    let mut missing = Vec::new();
    for a in &alerts {
        if !fires.contains(*a) {
            missing.push(format!("{a}: no firing case"));
        }
        if !quiet.contains(*a) {
            missing.push(format!("{a}: no not-firing case"));
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
    // Every alert links its runbook, and the runbook has that section.
    let runbook = std::fs::read_to_string(root().join("rules/RUNBOOK.md")).unwrap();
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    let urls = rules.matches("runbook_url: ").count();
    assert_eq!(urls, alerts.len(), "one runbook_url per alert");
    for l in rules.lines() {
        if let Some(u) = l.trim().strip_prefix("runbook_url: ") {
            let anchor = u.trim_matches('"').rsplit('#').next().unwrap();
            assert!(
                anchors.iter().any(|a| a == anchor),
                "runbook section for {anchor} missing"
            );
        }
    }
}
