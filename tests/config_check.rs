//! `mqscope check-config` and `run --config`: every problem of a broken file is listed at
//! once with its `section.key` path, exit code 64; the shipped example is valid and
//! documents the real defaults.

use std::path::PathBuf;
use std::process::Command;

use mqscope::config::Config;
use mqscope::input::BrokerInputConfig;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqscope"))
}

fn example() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/mqscope.example.toml")
}

fn temp_file(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mqscope-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn the_example_is_valid_and_states_the_defaults() {
    let out = bin().arg("check-config").arg(example()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("ok: "), "{stdout}");
    assert!(stdout.contains("capture on any ports [1883]"), "{stdout}");
    // Every value written in the example is the built-in default: the file documents
    // what running without it does (besides enabling the broker input).
    let cfg = Config::load(&example()).unwrap();
    let want = Config {
        broker: Some(BrokerInputConfig::default()),
        ..Config::default()
    };
    assert_eq!(cfg, want);
}

/// Seven independent mistakes: each must be reported, in one run.
const BROKEN: &str = r#"[capture]
interface = "lo"
ports = [1883, 0]
snaplen = "big"
colour = "blue"

[limits]
max_flowz = 10

[broker]
url = "mqtts://broker.example:8883"
ca_file = "/nonexistent/mqscope-test/ca.pem"

[http]
listen = "nowhere"

[extra]
x = 1
"#;

fn expected() -> [(&'static str, &'static str); 7] {
    [
        ("line 3: capture.ports:", "port 0"),
        ("line 4: capture.snaplen:", "invalid type"),
        ("line 5: capture.colour:", "unknown field"),
        ("line 8: limits.max_flowz:", "unknown field"),
        (
            "line 10: broker:",
            "ca_file /nonexistent/mqscope-test/ca.pem",
        ),
        ("line 15: http.listen:", "not ip:port"),
        ("line 17: extra:", "unknown section"),
    ]
}

fn assert_all_listed(stderr: &str) {
    for (at, what) in expected() {
        assert!(
            stderr.lines().any(|l| l.contains(at) && l.contains(what)),
            "missing {at} {what} in:\n{stderr}"
        );
    }
}

#[test]
fn check_config_lists_every_error_and_exits_64() {
    let p = temp_file("broken.toml", BROKEN);
    let out = bin().arg("check-config").arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_all_listed(&stderr);
    // One line per error plus the count; nothing else.
    assert_eq!(stderr.lines().count(), 8, "{stderr}");
    assert!(stderr.contains("7 error(s)"), "{stderr}");
}

#[test]
fn run_refuses_the_same_file_before_opening_anything() {
    let p = temp_file("broken-run.toml", BROKEN);
    // Interface "lo" would be capturable as root: an exit 64 (not a capture start) shows
    // validation came first.
    let out = bin().args(["run", "--config"]).arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert_all_listed(&stderr);
    assert!(!stderr.contains("capture started"), "{stderr}");
}

#[test]
fn flags_override_the_file() {
    // The file's bad port and bad listen address are replaced by flags: valid, so `run`
    // would start; check through the library (no capture needed).
    let ov = mqscope::config::Overrides {
        ports: Some(vec![1884]),
        listen: Some("127.0.0.1:9999".into()),
        ..Default::default()
    };
    let text = "[capture]\nports = [0]\n[http]\nlisten = \"x\"\n";
    let c = Config::from_str_with(text, &ov).unwrap();
    assert_eq!(c.capture.ports, [1884]);
    assert_eq!(c.http.listen, "127.0.0.1:9999");
    // And a bad flag is reported like a bad file value.
    let out = bin()
        .args(["run", "--ports", "1883,0", "--listen", "127.0.0.1:0"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("capture.ports: port 0"), "{stderr}");
}

#[test]
fn syntax_errors_have_a_line_and_exit_64() {
    let p = temp_file("syntax.toml", "[capture]\nports = [1883\nsnaplen = 9000\n");
    let out = bin().arg("check-config").arg(&p).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("syntax error"), "{stderr}");
    assert!(stderr.contains("line "), "{stderr}");
}

#[test]
fn a_missing_file_is_a_config_error() {
    let out = bin()
        .args(["check-config", "/nonexistent/mqscope-test/none.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read"));
}

/// The rule engine's view of a config: `[capture] tls_ports` join `[rules] tls_ports`, and
/// mqscope's own `$SYS` client is an admin (its `$SYS/#` subscription is on the wire, and
/// was once flagged as `wildcard_subscription` against itself).
#[test]
fn rules_know_the_capture_tls_ports_and_the_own_sys_client() {
    let f = temp_file(
        "rules.toml",
        "[capture]\ntls_ports = [8883, 18883]\n[broker]\nurl = \"mqtt://127.0.0.1:1883\"\nclient_id = \"mqscope-a\"\n[rules]\nadmin_clients = [\"historian\"]\n",
    );
    let cfg = Config::load(&f).unwrap();
    let r = cfg.rules_config();
    assert!(r.tls_ports.contains(&8883) && r.tls_ports.contains(&18883));
    assert_eq!(r.admin_clients, ["historian", "mqscope-a"]);
}

/// Every error of the new sections, with its key, in one run: receivers, Azure, OTLP,
/// anomalies.
#[test]
fn output_and_detection_sections_are_checked_too() {
    let f = temp_file(
        "outputs.toml",
        r#"
[alerts]
max_firing = 0
[[alerts.receivers]]
name = "pd"
kind = "pagerduty"
[azure_logs]
enabled = true
dcr_immutable_id = "nope"
[otlp]
enabled = true
endpoint = "not a url"
[anomaly]
bucket_secs = 0
"#,
    );
    let out = bin().arg("check-config").arg(&f).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    for key in [
        "alerts.max_firing",
        "alerts.receivers[0]",
        "azure_logs.dcr_immutable_id",
        "otlp",
        "anomaly.bucket_secs",
    ] {
        assert!(err.contains(key), "{key} missing from:\n{err}");
    }
    assert!(err.contains("routing_key"), "{err}");
}
