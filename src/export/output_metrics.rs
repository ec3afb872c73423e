//! mqscope's own delivery health: alert receivers (notifications delivered, failed,
//! refused, spooled) and log sinks (records sent, dropped, queued). The label values are
//! receiver names from the config and sink names from the code, so the set is bounded.

use super::prometheus::Families;

/// One alert receiver's counters (from `alerts::ReceiverStats`).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReceiverSeries {
    pub receiver: String,
    pub delivered: u64,
    pub failed_attempts: u64,
    /// Refused by the receiver with a status that retrying cannot fix.
    pub rejected: u64,
    pub queue_full: u64,
    pub spool_dropped: u64,
    /// Waiting in the spool.
    pub pending: u64,
}

/// One log sink's counters (Azure Logs Ingestion, OTLP logs).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SinkSeries {
    pub sink: String,
    pub sent: u64,
    pub dropped: u64,
    pub queued: u64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputSeries {
    pub receivers: Vec<ReceiverSeries>,
    pub sinks: Vec<SinkSeries>,
}

pub(super) fn outputs(f: &mut Families, o: &OutputSeries) {
    if !o.receivers.is_empty() {
        let mut n = f.counter(
            "mqscope_alert_notifications_total",
            "Alert notifications per receiver, by result: delivered; failed (an attempt that will be retried); rejected (a 4xx that retrying cannot fix); queue_full and spool_dropped (lost).",
        );
        let mut p = f.gauge(
            "mqscope_alert_notifications_pending",
            "Alert notifications waiting in a receiver's spool (receiver down or slow).",
        );
        for r in &o.receivers {
            let name = r.receiver.as_str();
            for (result, v) in [
                ("delivered", r.delivered),
                ("failed", r.failed_attempts),
                ("rejected", r.rejected),
                ("queue_full", r.queue_full),
                ("spool_dropped", r.spool_dropped),
            ] {
                n.counter(&[("receiver", name), ("result", result)], v);
            }
            p.gauge(&[("receiver", name)], r.pending as f64);
        }
        f.push(n);
        f.push(p);
    }
    if !o.sinks.is_empty() {
        let mut n = f.counter(
            "mqscope_log_records_total",
            "Event and alert log records per sink (azure_logs, otlp), by result: sent or dropped (queue full, rejected, retries exhausted, unsent at shutdown).",
        );
        let mut q = f.gauge(
            "mqscope_log_records_queued",
            "Log records waiting to be sent, per sink.",
        );
        for s in &o.sinks {
            let name = s.sink.as_str();
            n.counter(&[("sink", name), ("result", "sent")], s.sent);
            n.counter(&[("sink", name), ("result", "dropped")], s.dropped);
            q.gauge(&[("sink", name)], s.queued as f64);
        }
        f.push(n);
        f.push(q);
    }
}
