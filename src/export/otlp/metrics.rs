//! The `/metrics` set as OTLP metrics. The source is the Prometheus exposition of the
//! same snapshot (`MetricsState::render`), read back family by family: that text is the
//! documented contract (`docs/metrics.md`), so OTLP carries exactly the names, label sets,
//! values and bucket bounds a scrape shows, and a family added to `prometheus.rs` needs
//! no change here.
//!
//! Mapping: counter → cumulative monotonic `Sum` (integer points), named without the
//! `_total` suffix (OpenTelemetry's convention; the collector's Prometheus exporters add
//! it back); gauge → `Gauge` (double points); histogram → cumulative explicit-bucket
//! `Histogram` with the exposition's `le` bounds (`+Inf` implicit), per-bucket counts,
//! `_sum` and `_count`. Labels become attributes; `le` does not. Units from the name:
//! `_seconds` → `s`, `_bytes` → `By`.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::{
    AggregationTemporality, Gauge, Histogram, HistogramDataPoint, Metric, NumberDataPoint, Sum,
    metric, number_data_point,
};

use super::logs::kv_str;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
    /// `untyped` / `summary`: not produced by `prometheus.rs`; exported as gauges.
    Other,
}

/// One histogram series being assembled from its `_bucket`, `_sum` and `_count` lines.
struct HistSeries {
    labels: Vec<(String, String)>,
    /// `(le, cumulative count)` in exposition order, `+Inf` excluded.
    buckets: Vec<(f64, f64)>,
    inf: Option<f64>,
    sum: f64,
    count: Option<f64>,
}

struct Family {
    name: String,
    help: String,
    kind: Kind,
    points: Vec<(Vec<(String, String)>, f64)>,
    hists: Vec<HistSeries>,
}

/// Converts an exposition (format 0.0.4) into OTLP metrics. Cumulative points carry
/// `start_ns`; all carry `now_ns`. Lines that do not parse are skipped (the text is ours,
/// so that would be a bug, not input to survive).
pub fn from_exposition(text: &str, start_ns: u64, now_ns: u64) -> Vec<Metric> {
    let mut fams: Vec<Family> = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            family(&mut fams, name).help = unescape_help(help);
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap_or((rest, ""));
            family(&mut fams, name).kind = match ty {
                "counter" => Kind::Counter,
                "gauge" => Kind::Gauge,
                "histogram" => Kind::Histogram,
                _ => Kind::Other,
            };
        } else if line.starts_with('#') || line.is_empty() {
            continue;
        } else if let Some((name, labels, value)) = parse_sample(line) {
            add_sample(&mut fams, name, labels, value);
        }
    }
    fams.into_iter()
        .filter_map(|f| to_metric(f, start_ns, now_ns))
        .collect()
}

fn family<'a>(fams: &'a mut Vec<Family>, name: &str) -> &'a mut Family {
    // Families arrive one after the other: the one being filled is the last.
    let i = match fams.iter().rposition(|f| f.name == name) {
        Some(i) => i,
        None => {
            fams.push(Family {
                name: name.to_string(),
                help: String::new(),
                kind: Kind::Other,
                points: Vec::new(),
                hists: Vec::new(),
            });
            fams.len() - 1
        }
    };
    &mut fams[i]
}

fn add_sample(fams: &mut Vec<Family>, name: &str, mut labels: Vec<(String, String)>, v: f64) {
    // A histogram's lines carry suffixes; find the family they belong to.
    for (suffix, part) in [("_bucket", 0u8), ("_sum", 1), ("_count", 2)] {
        let Some(base) = name.strip_suffix(suffix) else {
            continue;
        };
        let Some(f) = fams
            .iter_mut()
            .rev()
            .find(|f| f.name == base && f.kind == Kind::Histogram)
        else {
            continue;
        };
        let le = match part {
            0 => match labels.iter().position(|(k, _)| k == "le") {
                Some(i) => Some(labels.remove(i).1),
                None => return,
            },
            _ => None,
        };
        let h = match f.hists.iter().position(|h| h.labels == labels) {
            Some(i) => &mut f.hists[i],
            None => {
                f.hists.push(HistSeries {
                    labels,
                    buckets: Vec::new(),
                    inf: None,
                    sum: 0.0,
                    count: None,
                });
                let last = f.hists.len() - 1;
                &mut f.hists[last]
            }
        };
        match (part, le) {
            (0, Some(le)) => match parse_value(&le) {
                Some(b) if b == f64::INFINITY => h.inf = Some(v),
                Some(b) => h.buckets.push((b, v)),
                None => {}
            },
            (1, _) => h.sum = v,
            _ => h.count = Some(v),
        }
        return;
    }
    family(fams, name).points.push((labels, v));
}

fn to_metric(f: Family, start_ns: u64, now_ns: u64) -> Option<Metric> {
    let unit = if f.name.ends_with("_seconds") {
        "s"
    } else if f.name.ends_with("_bytes") || f.name.ends_with("_bytes_total") {
        "By"
    } else {
        ""
    };
    let (name, data) = match f.kind {
        Kind::Counter => {
            let pts = f
                .points
                .into_iter()
                .map(|(l, v)| NumberDataPoint {
                    attributes: attrs(&l),
                    start_time_unix_nano: start_ns,
                    time_unix_nano: now_ns,
                    value: Some(number(v)),
                    ..Default::default()
                })
                .collect::<Vec<_>>();
            let name = f.name.strip_suffix("_total").unwrap_or(&f.name).to_string();
            let sum = Sum {
                data_points: pts,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                is_monotonic: true,
            };
            (name, metric::Data::Sum(sum))
        }
        Kind::Gauge | Kind::Other => {
            let pts = f
                .points
                .into_iter()
                .map(|(l, v)| NumberDataPoint {
                    attributes: attrs(&l),
                    time_unix_nano: now_ns,
                    value: Some(number_data_point::Value::AsDouble(v)),
                    ..Default::default()
                })
                .collect();
            (f.name, metric::Data::Gauge(Gauge { data_points: pts }))
        }
        Kind::Histogram => {
            let pts = f
                .hists
                .into_iter()
                .map(|h| hist_point(h, start_ns, now_ns))
                .collect();
            let hist = Histogram {
                data_points: pts,
                aggregation_temporality: AggregationTemporality::Cumulative as i32,
            };
            (f.name, metric::Data::Histogram(hist))
        }
    };
    let empty = match &data {
        metric::Data::Sum(s) => s.data_points.is_empty(),
        metric::Data::Gauge(g) => g.data_points.is_empty(),
        metric::Data::Histogram(h) => h.data_points.is_empty(),
        _ => true,
    };
    (!empty).then(|| Metric {
        name,
        description: f.help,
        unit: unit.to_string(),
        data: Some(data),
        ..Default::default()
    })
}

/// Counters are integer counts rendered as floats: back to integers when exact.
fn number(v: f64) -> number_data_point::Value {
    if v.fract() == 0.0 && (0.0..9.007_199_254_740_992e15).contains(&v) {
        number_data_point::Value::AsInt(v as i64)
    } else {
        number_data_point::Value::AsDouble(v)
    }
}

/// Cumulative `le` counts → OTLP per-bucket counts (`bounds.len() + 1` of them, the last
/// for `(last bound, +Inf)`). Counts are clamped to be non-decreasing so a bucket can
/// never be negative.
fn hist_point(h: HistSeries, start_ns: u64, now_ns: u64) -> HistogramDataPoint {
    let count = h.count.or(h.inf).unwrap_or(0.0).max(0.0) as u64;
    let mut bounds = Vec::with_capacity(h.buckets.len());
    let mut counts = Vec::with_capacity(h.buckets.len() + 1);
    let mut prev = 0u64;
    for (b, cum) in h.buckets {
        let cum = (cum.max(0.0) as u64).clamp(prev, count.max(prev));
        bounds.push(b);
        counts.push(cum - prev);
        prev = cum;
    }
    counts.push(count.saturating_sub(prev));
    HistogramDataPoint {
        attributes: attrs(&h.labels),
        start_time_unix_nano: start_ns,
        time_unix_nano: now_ns,
        count,
        sum: Some(h.sum),
        bucket_counts: counts,
        explicit_bounds: bounds,
        ..Default::default()
    }
}

fn attrs(labels: &[(String, String)]) -> Vec<KeyValue> {
    labels.iter().map(|(k, v)| kv_str(k, v)).collect()
}

type Labels = Vec<(String, String)>;

/// `name{k="v",...} value [timestamp]` with the exposition's escapes (`\\`, `\"`, `\n`).
fn parse_sample(line: &str) -> Option<(&str, Labels, f64)> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let mut labels = Vec::new();
    let mut rest = &line[name_end..];
    if let Some(r) = rest.strip_prefix('{') {
        rest = r;
        loop {
            rest = rest.trim_start_matches(',');
            if let Some(r) = rest.strip_prefix('}') {
                rest = r;
                break;
            }
            let (key, r) = rest.split_once("=\"")?;
            let mut value = String::new();
            let mut chars = r.char_indices();
            let end = loop {
                let (i, c) = chars.next()?;
                match c {
                    '"' => break i,
                    '\\' => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    c => value.push(c),
                }
            };
            labels.push((key.to_string(), value));
            rest = &r[end + 1..];
        }
    }
    let v = rest.trim_start().split(' ').next()?;
    Some((name, labels, parse_value(v)?))
}

fn parse_value(s: &str) -> Option<f64> {
    match s {
        "+Inf" | "Inf" | "inf" => Some(f64::INFINITY),
        "-Inf" | "-inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => s.parse().ok(),
    }
}

/// `# HELP` text escapes only `\\` and `\n`.
fn unescape_help(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some(o) => out.push(o),
                None => out.push('\\'),
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::any_value;

    fn attr<'a>(kv: &'a [KeyValue], k: &str) -> Option<&'a str> {
        kv.iter()
            .find(|x| x.key == k)
            .and_then(|x| x.value.as_ref())
            .and_then(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            })
    }

    // Hand-written exposition in the encoder's layout.
    const TEXT: &str = r#"# HELP mqscope_x_total Things, by \\kind\nand more.
# TYPE mqscope_x_total counter
mqscope_x_total{kind="a\"b\\c\nd",direction="in"} 3
mqscope_x_total{kind="",direction="out"} 12345678901
# HELP mqscope_g A gauge.
# TYPE mqscope_g gauge
mqscope_g 0.25
# HELP mqscope_lat_seconds Latency.
# TYPE mqscope_lat_seconds histogram
mqscope_lat_seconds_bucket{exchange="connect",le="0.005"} 1
mqscope_lat_seconds_bucket{exchange="connect",le="0.01"} 1
mqscope_lat_seconds_bucket{exchange="connect",le="0.1"} 4
mqscope_lat_seconds_bucket{exchange="connect",le="+Inf"} 6
mqscope_lat_seconds_sum{exchange="connect"} 1.5
mqscope_lat_seconds_count{exchange="connect"} 6
mqscope_lat_seconds_bucket{exchange="x y}",le="0.005"} 0
mqscope_lat_seconds_bucket{exchange="x y}",le="0.01"} 0
mqscope_lat_seconds_bucket{exchange="x y}",le="0.1"} 0
mqscope_lat_seconds_bucket{exchange="x y}",le="+Inf"} 0
mqscope_lat_seconds_sum{exchange="x y}"} 0
mqscope_lat_seconds_count{exchange="x y}"} 0
# HELP mqscope_tcp_gap_bytes_total Bytes.
# TYPE mqscope_tcp_gap_bytes_total counter
mqscope_tcp_gap_bytes_total 0.5
"#;

    #[test]
    fn families_map_to_otlp_types() {
        let m = from_exposition(TEXT, 10, 20);
        let names: Vec<&str> = m.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "mqscope_x",
                "mqscope_g",
                "mqscope_lat_seconds",
                "mqscope_tcp_gap_bytes"
            ]
        );
        assert_eq!(m[0].description, "Things, by \\kind\nand more.");
        let Some(metric::Data::Sum(s)) = &m[0].data else {
            panic!("counter is a Sum")
        };
        assert!(s.is_monotonic);
        assert_eq!(
            s.aggregation_temporality,
            AggregationTemporality::Cumulative as i32
        );
        assert_eq!(
            attr(&s.data_points[0].attributes, "kind"),
            Some("a\"b\\c\nd")
        );
        assert_eq!(attr(&s.data_points[0].attributes, "direction"), Some("in"));
        assert_eq!(
            s.data_points[0].value,
            Some(number_data_point::Value::AsInt(3))
        );
        assert_eq!(
            s.data_points[1].value,
            Some(number_data_point::Value::AsInt(12_345_678_901))
        );
        assert_eq!(
            (
                s.data_points[0].start_time_unix_nano,
                s.data_points[0].time_unix_nano
            ),
            (10, 20)
        );
        let Some(metric::Data::Gauge(g)) = &m[1].data else {
            panic!("gauge")
        };
        assert_eq!(
            g.data_points[0].value,
            Some(number_data_point::Value::AsDouble(0.25))
        );
        assert!(g.data_points[0].attributes.is_empty());
        assert_eq!(m[2].unit, "s");
        assert_eq!(m[3].unit, "By");
        // A non-integer counter value stays a double.
        let Some(metric::Data::Sum(s)) = &m[3].data else {
            panic!("counter")
        };
        assert_eq!(
            s.data_points[0].value,
            Some(number_data_point::Value::AsDouble(0.5))
        );
    }

    #[test]
    fn histogram_buckets_are_per_bucket_counts() {
        let m = from_exposition(TEXT, 10, 20);
        let Some(metric::Data::Histogram(h)) = &m[2].data else {
            panic!("histogram")
        };
        assert_eq!(h.data_points.len(), 2);
        let p = &h.data_points[0];
        assert_eq!(attr(&p.attributes, "exchange"), Some("connect"));
        assert_eq!(p.attributes.len(), 1, "le is not an attribute");
        assert_eq!(p.explicit_bounds, [0.005, 0.01, 0.1]);
        // cumulative 1,1,4,(+Inf)6 → 1,0,3,2
        assert_eq!(p.bucket_counts, [1, 0, 3, 2]);
        assert_eq!((p.count, p.sum), (6, Some(1.5)));
        assert_eq!(p.start_time_unix_nano, 10);
        // A label value with a space and a brace is read whole.
        assert_eq!(attr(&h.data_points[1].attributes, "exchange"), Some("x y}"));
        assert_eq!(h.data_points[1].bucket_counts, [0, 0, 0, 0]);
    }

    #[test]
    fn inconsistent_buckets_never_go_negative() {
        let t = "# TYPE h histogram\nh_bucket{le=\"1\"} 5\nh_bucket{le=\"2\"} 3\nh_bucket{le=\"+Inf\"} 4\nh_sum 1\nh_count 4\n";
        let m = from_exposition(t, 0, 0);
        let Some(metric::Data::Histogram(h)) = &m[0].data else {
            panic!("histogram")
        };
        let p = &h.data_points[0];
        assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
        assert_eq!(p.bucket_counts, [4, 0, 0]);
    }
}
