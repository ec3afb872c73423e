//! Decides once per flow whether it carries MQTT and which side is the client, so that
//! direction is never guessed per packet.
//!
//! Order of evidence: a configured MQTT port (that side is the broker); a configured TLS
//! port (count, don't decode — unless the client opens with a plaintext CONNECT, which is
//! decoded and flagged: credentials in clear where TLS was meant); otherwise, if enabled,
//! content: the first bytes the client sends must be a CONNECT with a known protocol name
//! and level.

use crate::capture::{FlowInfo, Side, StreamEvent};
use crate::mqtt::{PacketType, parse_fixed_header, peek_connect_level};

use super::DissectConfig;

pub(super) enum Classification {
    NotMqtt,
    Tls,
    Mqtt {
        client_side: Side,
        by_content: bool,
        /// Plaintext MQTT on a port configured for MQTT over TLS.
        on_tls_port: bool,
    },
}

pub(super) enum Classifier {
    /// Decided from ports when the flow opened.
    ByPort {
        client_side: Side,
    },
    Tls,
    /// A TLS port: TLS unless the client's first bytes are a plaintext CONNECT.
    TlsPort,
    /// Wait for the first payload and look for a CONNECT.
    ByContent,
    NotMqtt,
}

impl Classifier {
    pub(super) fn new(cfg: &DissectConfig, flow: &FlowInfo) -> Classifier {
        let (pa, pb) = (flow.a.port(), flow.b.port());
        let a_broker = cfg.ports.contains(&pa);
        let b_broker = cfg.ports.contains(&pb);
        match (a_broker, b_broker) {
            (false, true) => {
                return Classifier::ByPort {
                    client_side: Side::A,
                };
            }
            (true, false) => {
                return Classifier::ByPort {
                    client_side: Side::B,
                };
            }
            // Both ends on a broker port (bridges between brokers on 1883): the SYN
            // sender is the client; midstream, the first sender seen.
            (true, true) => {
                return Classifier::ByPort {
                    client_side: flow.syn_from.unwrap_or(Side::A),
                };
            }
            (false, false) => {}
        }
        if cfg.tls_ports.contains(&pa) || cfg.tls_ports.contains(&pb) {
            return Classifier::TlsPort;
        }
        if cfg.detect_by_content {
            Classifier::ByContent
        } else {
            Classifier::NotMqtt
        }
    }

    pub(super) fn on_event(
        &mut self,
        _cfg: &DissectConfig,
        flow: &FlowInfo,
        from: Side,
        ev: &StreamEvent<'_>,
    ) -> Classification {
        match self {
            Classifier::ByPort { client_side } => Classification::Mqtt {
                client_side: *client_side,
                by_content: false,
                on_tls_port: false,
            },
            Classifier::Tls => Classification::Tls,
            Classifier::TlsPort => {
                // A TLS client speaks first with a ClientHello; a plaintext CONNECT from
                // the client instead is MQTT in clear on a port meant for TLS.
                let client_first = flow.syn_from.is_none_or(|c| c == from);
                if let StreamEvent::Data(bytes) = ev
                    && client_first
                    && starts_with_connect(bytes)
                {
                    *self = Classifier::ByPort { client_side: from };
                    return Classification::Mqtt {
                        client_side: from,
                        by_content: false,
                        on_tls_port: true,
                    };
                }
                *self = Classifier::Tls;
                Classification::Tls
            }
            Classifier::NotMqtt => Classification::NotMqtt,
            Classifier::ByContent => {
                let StreamEvent::Data(bytes) = ev else {
                    // The start of the stream is lost: content cannot be judged.
                    *self = Classifier::NotMqtt;
                    return Classification::NotMqtt;
                };
                // With a SYN seen, only the client's first bytes count; a server that
                // speaks first is not an MQTT broker.
                let decided = if flow.syn_from.is_some_and(|c| c != from) {
                    false
                } else {
                    starts_with_connect(bytes)
                };
                if decided {
                    *self = Classifier::ByPort { client_side: from };
                    Classification::Mqtt {
                        client_side: from,
                        by_content: true,
                        on_tls_port: false,
                    }
                } else {
                    *self = Classifier::NotMqtt;
                    Classification::NotMqtt
                }
            }
        }
    }
}

/// A CONNECT fixed header followed by a known protocol name and level.
pub(super) fn starts_with_connect(bytes: &[u8]) -> bool {
    match parse_fixed_header(bytes) {
        Ok(Some(h)) if h.packet_type() == Some(PacketType::Connect) && h.flags() == 0 => {
            let body = &bytes[h.header_len as usize..];
            peek_connect_level(body).is_some()
        }
        _ => false,
    }
}
