//! `mqscope detect-series` as a user meets it: columns, exit codes, line numbers.

use std::path::PathBuf;
use std::process::{Command, Output};

fn mqscope(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mqscope"))
        .args(args)
        .output()
        .expect("run mqscope")
}

fn tmp(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mqscope-detect-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn writes_one_row_per_input_row() {
    let mut text = String::from("timestamp,value\n");
    for i in 0..600 {
        let v = if i == 500 { 100.0 } else { (i % 7) as f64 };
        text += &format!("{},{v}\n", 1_400_000_000 + i * 60);
    }
    let input = tmp("ok.csv", &text);
    let out = input.with_extension("out.csv");
    let o = mqscope(&[
        "detect-series",
        input.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let res = std::fs::read_to_string(&out).unwrap();
    let lines: Vec<&str> = res.lines().collect();
    assert_eq!(lines[0], "timestamp,value,score,alert");
    assert_eq!(lines.len(), 601);
    assert!(lines[1].starts_with("1400000000,0,"));
    let spike: Vec<&str> = lines[501].split(',').collect();
    assert_eq!(spike[0], "1400030000");
    assert_eq!(spike[3], "1", "{}", lines[501]);
    for l in &lines[1..] {
        let f: Vec<&str> = l.split(',').collect();
        let score: f64 = f[2].parse().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert!(f[3] == "0" || f[3] == "1");
    }
    // Same through stdout.
    let o = mqscope(&["detect-series", input.to_str().unwrap()]);
    assert_eq!(String::from_utf8(o.stdout).unwrap(), res);
}

#[test]
fn bad_row_is_a_data_error_with_its_line() {
    let input = tmp(
        "bad.csv",
        "timestamp,value\n2014-01-01 00:00:00,1\n2014-01-01 00:05:00,zz\n",
    );
    let o = mqscope(&["detect-series", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 3"));
    let input = tmp("badts.csv", "timestamp,value\n2014-02-30 00:00:00,1\n");
    let o = mqscope(&["detect-series", input.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 2"));
}

#[test]
fn usage_errors_exit_64() {
    assert_eq!(mqscope(&["detect-series"]).status.code(), Some(64));
    assert_eq!(
        mqscope(&["detect-series", "a.csv", "--bogus"])
            .status
            .code(),
        Some(64)
    );
    let missing = mqscope(&["detect-series", "/nonexistent/x.csv"]);
    assert_eq!(missing.status.code(), Some(66));
}
