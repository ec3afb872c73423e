//! Named security rules over the wire: each has a severity, thresholds in
//! [`RulesConfig`] and evidence. [`RuleEngine`] is pure: it consumes observation
//! [`Event`]s and dissected [`MqttRecord`]s in capture order, and time is only what
//! they (or `tick`) carry, so replay and live give the same hits.
//!
//! Not implemented: plain MQTT on a TLS port. The dissector classifies a flow on a
//! configured TLS port as TLS and never decodes it, so no record reaches the rules; it
//! needs the classifier to peek for a CONNECT on TLS ports first.

pub mod config;
mod engine;
pub mod flow;
pub mod hit;
pub mod table;

#[cfg(test)]
mod tests;

pub use config::RulesConfig;
pub use engine::{RuleCounters, RuleEngine, RulesSnapshot};
pub use hit::{Evidence, RuleHit, Severity};

/// Every rule name, for reports and configuration.
pub const RULES: [&str; 13] = [
    "auth_brute_force",
    "acl_denial_burst",
    "wildcard_subscription",
    "publish_to_dollar_topic",
    "client_takeover",
    "reconnect_storm",
    "slowite",
    "publish_flood",
    "oversized_payload",
    "retained_abuse",
    "qos_downgrade",
    "protocol_violation",
    "plain_mqtt_on_tls_port",
];
