//! What replay does with each record: write it as jsonl, feed the observation core,
//! both, or neither (decode-only, for timing).

use std::io::Write;

use crate::capture::CloseReason;
use crate::dissect::{FlowMeta, MqttRecord, RecordSink};
use crate::observe::Observer;

use super::jsonl::JsonlWriter;

pub struct ReplaySink<W: Write> {
    pub jsonl: Option<JsonlWriter<W>>,
    pub observer: Option<Observer>,
}

impl<W: Write> RecordSink for ReplaySink<W> {
    fn record(&mut self, rec: &MqttRecord<'_>) {
        if let Some(w) = &mut self.jsonl {
            w.write(rec);
        }
        if let Some(o) = &mut self.observer {
            o.record(rec);
        }
    }

    #[inline]
    fn publish_ahead(&mut self, topic: &[u8]) {
        if let Some(o) = &mut self.observer {
            o.publish_ahead(topic);
        }
    }

    fn flow_closed(&mut self, flow: &FlowMeta, ts_ns: u64, why: CloseReason) {
        if let Some(o) = &mut self.observer {
            o.flow_closed(flow, ts_ns, why);
        }
    }
}
