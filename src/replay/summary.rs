//! The end-of-replay report: human-readable on stderr, or JSON for scripts and the
//! benchmark (`--summary-json`).

use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::capture::CaptureStats;
use crate::dissect::DissectStats;
use crate::mqtt::PacketType;

use super::FileReport;

#[derive(Clone, Debug)]
pub struct ReplayReport {
    pub files: Vec<FileReport>,
    pub stats: DissectStats,
    pub capture: CaptureStats,
    pub elapsed: Duration,
}

fn type_name(nibble: usize) -> &'static str {
    PacketType::from_nibble(nibble as u8).map_or("RESERVED", |t| t.name())
}

impl ReplayReport {
    pub fn had_file_errors(&self) -> bool {
        self.files.iter().any(|f| f.error.is_some())
    }

    /// Human-readable summary (several lines, ends with a newline).
    pub fn to_text(&self) -> String {
        let s = &self.stats;
        let mut o = String::new();
        let total = s.total_packets();
        let _ = writeln!(o, "mqscope replay summary");
        for f in &self.files {
            let _ = write!(o, "  file {}: {} frames", f.path.display(), f.frames);
            if let Some(l) = f.linktype {
                let _ = write!(o, ", link type {l}");
            }
            if let Some(e) = &f.error {
                let _ = write!(o, ", ERROR: {e}");
            }
            o.push('\n');
        }
        let _ = writeln!(
            o,
            "  frames:        {} ({} bytes), TCP segments {}",
            s.frames, s.frame_bytes, s.tcp_segments
        );
        if !s.frames_skipped.is_empty() {
            let _ = writeln!(o, "  frames skipped: {}", kinds(s.frames_skipped.iter()));
        }
        let _ = writeln!(
            o,
            "  flows:         {} MQTT ({} by content), {} TLS (not decoded), {} other",
            s.flows_mqtt, s.flows_mqtt_by_content, s.flows_tls, s.flows_not_mqtt
        );
        if s.flows_plaintext_on_tls_port > 0 {
            let _ = writeln!(
                o,
                "  WARNING:       {} flows sent plaintext MQTT on a TLS port (decoded above)",
                s.flows_plaintext_on_tls_port
            );
        }
        let _ = writeln!(
            o,
            "  MQTT packets:  {} ({} bytes client->broker, {} bytes broker->client)",
            total, s.mqtt_bytes[0], s.mqtt_bytes[1]
        );
        let by_type: Vec<String> = (0..16)
            .filter(|&t| s.packets[t][0] + s.packets[t][1] > 0)
            .map(|t| format!("{} {}", type_name(t), s.packets[t][0] + s.packets[t][1]))
            .collect();
        if !by_type.is_empty() {
            let _ = writeln!(o, "    by type:     {}", by_type.join(", "));
        }
        let _ = writeln!(
            o,
            "  decode errors: {}",
            if s.decode_errors.is_empty() {
                "none".into()
            } else {
                kinds(s.decode_errors.iter())
            }
        );
        if !s.violations.is_empty() {
            let _ = writeln!(o, "  violations:    {}", kinds(s.violations.iter()));
        }
        let c = &self.capture;
        let _ = writeln!(
            o,
            "  stream:        {} gaps ({} bytes), {} packets lost in gaps, {} resyncs ({} bytes skipped), {} oversized skipped",
            s.gaps,
            s.gap_bytes,
            s.packets_lost_in_gap,
            s.resyncs,
            s.resync_skipped_bytes,
            s.oversized
        );
        let _ = writeln!(
            o,
            "  tcp:           {} retransmitted, {} out of order, {} overlaps ({} conflicting)",
            c.retransmitted_segments, c.out_of_order_segments, c.overlaps, c.overlaps_conflicting
        );
        if s.pending_overflow + s.incomplete_at_close > 0 {
            let _ = writeln!(
                o,
                "  dropped:       {} partial packets over the buffer bound, {} flows ended mid-packet ({} bytes)",
                s.pending_overflow, s.incomplete_at_close, s.incomplete_at_close_bytes
            );
        }
        o
    }

    /// Machine-readable summary.
    pub fn to_json(&self) -> Value {
        let s = &self.stats;
        let mut by_type = Map::new();
        for t in 0..16 {
            let n = s.packets[t][0] + s.packets[t][1];
            if n > 0 {
                by_type.insert(type_name(t).to_string(), json!(n));
            }
        }
        let counts = |k: &crate::dissect::stats::KindCounts| -> Value {
            Value::Object(k.iter().map(|(k, v)| (k.to_string(), json!(v))).collect())
        };
        let c = &self.capture;
        json!({
            "files": self.files.iter().map(|f| json!({
                "path": f.path.display().to_string(), "frames": f.frames, "linktype": f.linktype, "error": f.error,
            })).collect::<Vec<_>>(),
            "frames": s.frames,
            "frame_bytes": s.frame_bytes,
            "tcp_segments": s.tcp_segments,
            "frames_skipped": counts(&s.frames_skipped),
            "flows": { "mqtt": s.flows_mqtt, "mqtt_by_content": s.flows_mqtt_by_content, "tls": s.flows_tls, "plaintext_on_tls_port": s.flows_plaintext_on_tls_port, "other": s.flows_not_mqtt },
            "mqtt_packets": s.total_packets(),
            "packets_by_type": by_type,
            "mqtt_bytes": { "c2s": s.mqtt_bytes[0], "s2c": s.mqtt_bytes[1] },
            "decode_errors": counts(&s.decode_errors),
            "violations": counts(&s.violations),
            "stream": {
                "gaps": s.gaps, "gap_bytes": s.gap_bytes, "packets_lost_in_gap": s.packets_lost_in_gap,
                "resyncs": s.resyncs, "resync_skipped_bytes": s.resync_skipped_bytes, "resyncs_abandoned": s.resyncs_abandoned, "oversized": s.oversized,
                "pending_overflow": s.pending_overflow, "incomplete_at_close": s.incomplete_at_close,
            },
            "tcp": {
                "retransmitted_segments": c.retransmitted_segments, "out_of_order_segments": c.out_of_order_segments,
                "overlaps": c.overlaps, "overlaps_conflicting": c.overlaps_conflicting,
            },
            "elapsed_seconds": self.elapsed.as_secs_f64(),
        })
    }
}

fn kinds(it: impl Iterator<Item = (&'static str, u64)>) -> String {
    it.map(|(k, n)| format!("{k} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}
