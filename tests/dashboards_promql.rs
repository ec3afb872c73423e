//! Every PromQL expression of every panel in `dashboards/*.json`, and every template
//! variable query, evaluated by a real Prometheus (`/usr/bin/prometheus`, Debian package
//! `prometheus`) against two running mqscope targets:
//!
//! - `mqscope run` capturing on loopback beside a real Mosquitto (password file + ACL,
//!   `$SYS` every second) while `mqscope simulate` drives devices, consumers and
//!   misbehaviours (brute force, ACL-denied topic, wildcard subscribe, takeover);
//! - `mqscope replay --listen` of every shared capture (`../shared/captures`), which adds
//!   decode errors, protocol violations and skipped frames that live traffic lacks.
//!
//! Prometheus scrapes both every second with the labels a PodMonitor gives in Kubernetes
//! (`cluster`, `pod`) and loads `rules/mqscope.rules.yml`, so the panels on `ALERTS` see
//! the alerts those rules raise. Template variables are substituted as Grafana would with
//! "All" selected (`.*`); each expression must parse and return a non-empty result (zero
//! values are fine). Needs root (or CAP_NET_RAW) for the loopback capture, as CI has.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

mod prom_common;
use prom_common::*;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Grafana's substitution with "All" selected and a 1 s scrape interval.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "20s")
        .replace("$__interval", "5s")
        .replace("$__range", "5m")
        .replace("$cluster", ".*")
        .replace("$pod", ".*")
        .replace("$topic", ".*")
}

/// (dashboard file, panel title, expression) for every target of every panel.
pub fn panel_exprs() -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(root().join("dashboards"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "dashboards/*.json missing");
    for f in files {
        let d: Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        let mut panels: Vec<Value> = d["panels"].as_array().unwrap().clone();
        while let Some(p) = panels.pop() {
            if let Some(inner) = p["panels"].as_array() {
                panels.extend(inner.iter().cloned());
            }
            for t in p["targets"].as_array().into_iter().flatten() {
                let e = t["expr"].as_str().unwrap().to_string();
                out.push((name.clone(), p["title"].as_str().unwrap().to_string(), e));
            }
        }
        for v in d["templating"]["list"].as_array().unwrap() {
            if v["type"] == "query" {
                let q = v["query"]["query"].as_str().unwrap().to_string();
                out.push((name.clone(), format!("variable {}", v["name"]), q));
            }
        }
    }
    out
}

/// Evaluates one expression; `label_values(SEL, LABEL)` becomes a series lookup.
/// Ok((series, a short rendering of the first values)) or Err(why).
fn evaluate(prom: &str, expr: &str) -> Result<(usize, String), String> {
    let q = substitute(expr);
    if let Some(inner) = q
        .strip_prefix("label_values(")
        .and_then(|s| s.strip_suffix(')'))
    {
        let (sel, label) = inner.rsplit_once(',').unwrap();
        let (code, body) = http_get(prom, &format!("/api/v1/series?match[]={}", encode(sel)))
            .ok_or("no answer")?;
        if code != 200 {
            return Err(format!("HTTP {code}: {body}"));
        }
        let v: Value = serde_json::from_str(&body).map_err(|e| e.to_string())?;
        let mut vals: Vec<String> = v["data"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s[label.trim()].as_str().map(str::to_string))
            .collect();
        vals.sort();
        vals.dedup();
        return if vals.is_empty() {
            Err("no label values".into())
        } else {
            Ok((vals.len(), vals.join(", ")))
        };
    }
    let (code, body) =
        http_get(prom, &format!("/api/v1/query?query={}", encode(&q))).ok_or("no answer")?;
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    if code != 200 || v["status"] != "success" {
        return Err(format!("HTTP {code}: {}", v["error"]));
    }
    let r = v["data"]["result"].as_array().ok_or("no result")?;
    if r.is_empty() {
        return Err("empty result".into());
    }
    let shown: Vec<String> = r
        .iter()
        .take(4)
        .map(|s| {
            let m = s["metric"].as_object().unwrap();
            let labels: Vec<String> = m
                .iter()
                .filter(|(k, _)| !matches!(k.as_str(), "cluster" | "job" | "instance"))
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect();
            format!(
                "{{{}}} {}",
                labels.join(","),
                s["value"][1].as_str().unwrap_or("?")
            )
        })
        .collect();
    Ok((r.len(), shown.join("; ")))
}

fn captures() -> Vec<PathBuf> {
    let base = [
        root().join("../shared/captures"),
        PathBuf::from("/work/shared/captures"),
    ]
    .into_iter()
    .find(|p| p.exists())
    .expect("shared captures (../shared/captures) missing");
    let mut out = Vec::new();
    let mut dirs = vec![base];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|e| e == "pcap" || e == "pcapng") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn mosquitto(dir: &Path, port: u16) -> Reap {
    let passwd = dir.join("passwd");
    for (i, (user, pw)) in [("operator", "op-pw"), ("mqscope", "mq-pw")]
        .iter()
        .enumerate()
    {
        let mut c = Command::new("mosquitto_passwd");
        if i == 0 {
            c.arg("-c");
        }
        let st = c.arg("-b").arg(&passwd).args([user, pw]).status();
        assert!(
            st.is_ok_and(|s| s.success()),
            "mosquitto_passwd failed: install the Debian package `mosquitto`"
        );
    }
    std::fs::copy(root().join("deploy/demo/acl"), dir.join("acl")).unwrap();
    let conf = dir.join("mosquitto.conf");
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nacl_file {}\nsys_interval 1\npersistence false\n",
            passwd.display(),
            dir.join("acl").display()
        ),
    )
    .unwrap();
    let g = Reap(
        Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto missing: install the Debian package `mosquitto`"),
    );
    wait_port(port, "mosquitto");
    g
}

#[test]
fn every_dashboard_expression_returns_data_from_real_prometheus() {
    let prom_bin = Path::new("/usr/bin/prometheus");
    assert!(
        prom_bin.exists(),
        "/usr/bin/prometheus missing: install the Debian package `prometheus`"
    );
    let uid = Command::new("id").arg("-u").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&uid.stdout).trim(),
        "0",
        "this test captures on loopback (mqscope run): run it as root or with CAP_NET_RAW"
    );
    let dir = std::env::temp_dir().join(format!("mqscope-dash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    let bin = env!("CARGO_BIN_EXE_mqscope");

    let broker_port = free_port();
    let _broker = mosquitto(&dir, broker_port);

    // The live sidecar, as configured in Kubernetes but on loopback.
    let live_port = free_port();
    let cfg = dir.join("mqscope.toml");
    std::fs::write(
        &cfg,
        format!(
            "[capture]\ninterface = \"lo\"\nports = [{broker_port}]\n\n\
             [broker]\nurl = \"mqtt://127.0.0.1:{broker_port}\"\nclient_id = \"mqscope-dash\"\n\
             username = \"mqscope\"\npassword_env = \"MQSCOPE_BROKER_PASSWORD\"\n\n\
             [http]\nlisten = \"127.0.0.1:{live_port}\"\nper_client_labels = true\n"
        ),
    )
    .unwrap();
    let _live = Reap(
        Command::new(bin)
            .args(["run", "--config"])
            .arg(&cfg)
            .env("MQSCOPE_BROKER_PASSWORD", "mq-pw")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("run.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    let t0 = Instant::now();
    while http_get(&format!("127.0.0.1:{live_port}"), "/readyz").map(|r| r.0) != Some(200) {
        let log = std::fs::read_to_string(dir.join("run.log")).unwrap_or_default();
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "mqscope run not ready:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every shared capture, replayed and served as a second target.
    let replay_port = free_port();
    let _replay = Reap(
        Command::new(bin)
            .args(["replay", "--no-progress", "--format", "none", "--listen"])
            .arg(format!("127.0.0.1:{replay_port}"))
            .args(["--linger", "300"])
            .args(captures())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let prom_port = free_port();
    let prom = format!("127.0.0.1:{prom_port}");
    let rules = root().join("rules/mqscope.rules.yml");
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\n\
             scrape_configs:\n  - job_name: mqscope\n    static_configs:\n\
             \x20     - targets: ['127.0.0.1:{live_port}']\n        labels: {{cluster: test, pod: mosquitto-0}}\n\
             \x20     - targets: ['127.0.0.1:{replay_port}']\n        labels: {{cluster: test, pod: replay-0}}\n",
            rules.display()
        ),
    )
    .unwrap();
    let _prom = Reap(
        Command::new(prom_bin)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={prom}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_port(prom_port, "prometheus");
    // Prometheus hands targets to its scrapers in batches (up to 5 s after start): the
    // simulator starts only once the live target has been scraped, or a fast brute force
    // is over before the first sample and the rules see no increase (seen in CI).
    let t0 = Instant::now();
    while query(&prom, r#"up{pod="mosquitto-0"}"#) != Some(1.0) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "prometheus never scraped the live target"
        );
        std::thread::sleep(Duration::from_millis(250));
    }

    // Live traffic with misbehaviours while Prometheus scrapes every second; the panels
    // are evaluated while it runs, so rates and quantiles show live values.
    std::fs::write(dir.join("op.pw"), "op-pw\n").unwrap();
    let sim = Reap(
        Command::new(bin)
            .args(["simulate", "--broker", &format!("127.0.0.1:{broker_port}")])
            .args(["--devices", "20", "--consumers", "3", "--duration", "100"])
            .args([
                "--interval-ms",
                "500",
                "--username",
                "operator",
                "--password-file",
            ])
            .arg(dir.join("op.pw"))
            .args(["--brute-force", "60", "--acl-topic", "admin/config"])
            .args(["--wildcard-subscribe", "--takeover"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_secs(20));

    let exprs = panel_exprs();
    // Series appear with the next scrape / rule evaluation: retry what is still empty,
    // while the simulator still runs (only a failing run waits the whole bound).
    let deadline = Instant::now() + Duration::from_secs(75);
    let mut results;
    loop {
        results = exprs
            .iter()
            .map(|(f, t, e)| (f, t, e, evaluate(&prom, e)))
            .collect::<Vec<_>>();
        if results.iter().all(|r| r.3.is_ok()) || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    drop(sim);
    let mut failures = Vec::new();
    for (f, t, e, r) in &results {
        match r {
            Ok((n, shown)) => println!("{f} | {t} | {n} series | {shown}"),
            Err(why) => failures.push(format!("{f} | {t}\n    {e}\n    -> {why}")),
        }
    }
    let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    if !failures.is_empty() {
        // What the alert rules see, to tell a slow simulator from a wrong rule.
        for q in [
            "sum by (pod) (mqscope_auth_failures_total)",
            "sum by (pod) (rate(mqscope_auth_failures_total[5m]))",
            "sum by (pod) (mqscope_acl_denials_total)",
        ] {
            eprintln!("{q} = {:?}", evaluate(&prom, q));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} expressions failed:\n{}\nprometheus log tail:\n{}",
        failures.len(),
        results.len(),
        failures.join("\n"),
        log.lines().rev().take(10).collect::<Vec<_>>().join("\n")
    );
    assert!(results.len() >= 80, "only {} expressions", results.len());
    let _ = std::fs::remove_dir_all(&dir);
}
