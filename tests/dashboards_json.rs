//! Static checks of `dashboards/*.json`: up to date with `dashboards/generate.py`,
//! importable shape (`__inputs` DS_PROMETHEUS, every panel and target on
//! `${DS_PROMETHEUS}`, unique ids), the template variables, and PromQL hygiene: only
//! metrics documented in docs/metrics.md, counters and bucket series only inside
//! rate()/increase(), histogram_quantile over `sum by (le, ...)`, heatmaps on bucket rates
//! with format=heatmap. Whether each expression parses and returns data on a real
//! Prometheus is tests/dashboards_promql.rs.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn dashboards() -> Vec<(String, Value)> {
    let mut v: Vec<_> = std::fs::read_dir(root().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let d = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
            (p.file_name().unwrap().to_string_lossy().to_string(), d)
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn documented_metrics() -> BTreeSet<String> {
    let doc = std::fs::read_to_string(root().join("docs/metrics.md")).unwrap();
    let mut out = BTreeSet::new();
    for part in doc.split('`') {
        let name: String = part
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name.starts_with("mqscope_") {
            out.insert(name.clone());
            // Histograms expose _bucket, _sum and _count.
            for s in ["_bucket", "_sum", "_count"] {
                out.insert(format!("{name}{s}"));
            }
        }
    }
    out
}

/// Metric names in an expression: identifiers starting with `mqscope_`.
fn metrics_in(expr: &str) -> Vec<(usize, String)> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(off) = expr[i..].find("mqscope_") {
        let start = i + off;
        let prev_ok = start == 0 || !(b[start - 1].is_ascii_alphanumeric() || b[start - 1] == b'_');
        let mut end = start;
        while end < b.len() && (b[end].is_ascii_alphanumeric() || b[end] == b'_') {
            end += 1;
        }
        if prev_ok {
            out.push((start, expr[start..end].to_string()));
        }
        i = end;
    }
    out
}

#[test]
fn json_matches_the_generator() {
    let out = Command::new("python3")
        .arg(root().join("dashboards/generate.py"))
        .arg("--check")
        .output()
        .expect("python3 missing");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dashboards_are_importable_with_the_prometheus_input_and_variables() {
    let ds = serde_json::json!({"type": "prometheus", "uid": "${DS_PROMETHEUS}"});
    let all = dashboards();
    let names: Vec<&str> = all.iter().map(|d| d.0.as_str()).collect();
    for want in ["overview", "topics", "clients", "security", "health"] {
        assert!(
            names.iter().any(|n| n.contains(want)),
            "no {want} dashboard"
        );
    }
    let mut uids = BTreeSet::new();
    for (name, d) in &all {
        assert!(
            uids.insert(d["uid"].as_str().unwrap().to_string()),
            "{name}: uid reused"
        );
        let inputs = d["__inputs"].as_array().unwrap();
        assert_eq!(inputs.len(), 1, "{name}");
        assert_eq!(inputs[0]["name"], "DS_PROMETHEUS");
        assert_eq!(inputs[0]["pluginId"], "prometheus");
        let vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["name"].as_str().unwrap())
            .collect();
        for v in ["cluster", "pod"] {
            assert!(vars.contains(&v), "{name}: variable {v}");
        }
        if name.contains("topics") || name.contains("overview") {
            assert!(vars.contains(&"topic"), "{name}: variable topic");
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["type"] == "query" {
                assert_eq!(v["datasource"], ds, "{name}: variable {}", v["name"]);
                assert_eq!(v["allValue"], ".*", "{name}: All must match absent labels");
            }
        }
        let mut ids = BTreeSet::new();
        for p in d["panels"].as_array().unwrap() {
            assert!(
                ids.insert(p["id"].as_u64().unwrap()),
                "{name}: panel id reused"
            );
            if p["type"] == "row" {
                continue;
            }
            let title = p["title"].as_str().unwrap();
            assert_eq!(p["datasource"], ds, "{name}/{title}");
            let targets = p["targets"].as_array().unwrap();
            assert!(!targets.is_empty(), "{name}/{title}: no query");
            for t in targets {
                assert_eq!(t["datasource"], ds, "{name}/{title}");
                if p["type"] == "heatmap" {
                    assert_eq!(t["format"], "heatmap", "{name}/{title}");
                    let e = t["expr"].as_str().unwrap();
                    assert!(
                        e.starts_with("sum by (le) (rate(") && e.contains("_bucket{"),
                        "{name}/{title}: heatmaps plot bucket rates: {e}"
                    );
                }
            }
        }
    }
}

#[test]
fn promql_uses_documented_metrics_rates_and_quantiles_correctly() {
    let known = documented_metrics();
    assert!(known.contains("mqscope_latency_seconds_bucket"));
    let mut problems = Vec::new();
    for (name, d) in dashboards() {
        for p in d["panels"].as_array().unwrap() {
            for t in p["targets"].as_array().into_iter().flatten() {
                let e = t["expr"].as_str().unwrap();
                let at = format!("{name}/{}: {e}", p["title"]);
                for (pos, m) in metrics_in(e) {
                    if !known.contains(&m) {
                        problems.push(format!("undocumented metric {m} in {at}"));
                    }
                    let before = &e[..pos];
                    let counter = m.ends_with("_total")
                        || m.ends_with("_bucket")
                        || m.ends_with("_sum")
                        || m.ends_with("_count");
                    if counter && !(before.ends_with("rate(") || before.ends_with("increase(")) {
                        problems.push(format!("counter {m} outside rate()/increase() in {at}"));
                    }
                    if (before.ends_with("rate(") || before.ends_with("increase("))
                        && !e[pos..].split(')').next().unwrap().contains('[')
                    {
                        problems.push(format!("rate without a range in {at}"));
                    }
                }
                if counter_rate_window_bad(e) {
                    problems.push(format!(
                        "rate() window is not $__rate_interval / $__range in {at}"
                    ));
                }
                let mut rest = e;
                while let Some(i) = rest.find("histogram_quantile(") {
                    rest = &rest[i + 19..];
                    if !rest.contains("sum by (le") {
                        problems.push(format!(
                            "histogram_quantile without sum by (le, ...) in {at}"
                        ));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Every range selector is `[$__rate_interval]` or `[$__range]` (so Grafana picks a window
/// of at least four scrapes and stat panels cover the time range).
fn counter_rate_window_bad(e: &str) -> bool {
    e.split('[').skip(1).any(|s| {
        let w = s.split(']').next().unwrap_or("");
        w != "$__rate_interval" && w != "$__range"
    })
}
