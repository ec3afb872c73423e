//! Every threshold of the security rules, with defaults chosen so that ordinary device
//! traffic (periodic telemetry, a reconnect now and then) never reaches them.

use serde::{Deserialize, Serialize};

/// Largest count threshold accepted: windowed rules keep up to this many timestamps per
/// key, so it bounds memory (keys × threshold × 8 bytes).
pub const MAX_COUNT_THRESHOLD: u32 = 1000;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RulesConfig {
    /// auth_brute_force: this many authentication failures from one source address, or
    /// for one username, within `auth_window_s`.
    pub auth_failures: u32,
    pub auth_window_s: u64,
    /// acl_denial_burst: this many refused SUBSCRIBE/PUBLISH (or broker ACL denials) for
    /// one client within `acl_window_s`.
    pub acl_denials: u32,
    pub acl_window_s: u64,
    /// Client ids allowed to subscribe to `#` and `$SYS/#` (monitoring tools, bridges).
    pub admin_clients: Vec<String>,
    /// reconnect_storm: this many CONNECTs for one client id within `reconnect_window_s`.
    pub reconnects: u32,
    pub reconnect_window_s: u64,
    /// client_takeover: a client id taking over a connection that sent something within
    /// this many ms before (it was alive: a duplicate id or a hijack), or...
    pub takeover_active_ms: u64,
    /// ...this many takeovers of one client id within `takeover_window_s` (two live
    /// clients fighting over it). A single takeover of a silent connection is a device
    /// back from a dead link: an event, not an alert.
    pub takeovers: u32,
    pub takeover_window_s: u64,
    /// slowite: a CONNECT asking for a keepalive of at least this many seconds...
    pub slowite_keepalive_s: u16,
    /// ...whose connection then stays silent (nothing from the client) this long. 0: flag
    /// at the CONNECT itself (a keepalive this large has no legitimate use on a plant
    /// network, and waiting only lets the slots pile up).
    pub slowite_idle_s: u64,
    /// slowite also covers keepalive 0 (no keepalive at all), but only once the client
    /// has been silent this long: keepalive 0 is legal and used by some gateways. 0: off.
    pub zero_keepalive_idle_s: u64,
    /// publish_flood: one client's PUBLISH rate at or above this many per second,
    /// averaged over `flood_window_s`.
    pub flood_rate_per_s: u32,
    pub flood_window_s: u64,
    /// oversized_payload: a client PUBLISH payload of at least this many bytes.
    pub oversized_bytes: u32,
    /// retained_abuse: this many distinct retained topics published by one client within
    /// `retained_window_s`, or one retained payload of at least `retained_large_bytes`.
    pub retained_topics: u32,
    pub retained_window_s: u64,
    pub retained_large_bytes: u32,
    /// protocol_violation: this many malformed or protocol-violating packets from one
    /// client within `violation_window_s`.
    pub violations: u32,
    pub violation_window_s: u64,
    /// An active alert resolves once its condition has not recurred for this long.
    pub cooldown_s: u64,
    /// Ports where MQTT must be TLS: a plaintext CONNECT to one is a finding
    /// (`plain_mqtt_on_tls_port`). `mqscope replay` sets them from `--tls-ports`.
    pub tls_ports: Vec<u16>,
    /// Cap of each per-key table (per source address, username, client, flow).
    pub max_keys: usize,
    /// Cap of the hit list kept for reports.
    pub max_hits: usize,
}

impl Default for RulesConfig {
    fn default() -> Self {
        RulesConfig {
            auth_failures: 5,
            auth_window_s: 60,
            acl_denials: 5,
            acl_window_s: 60,
            admin_clients: Vec::new(),
            reconnects: 10,
            reconnect_window_s: 60,
            takeover_active_ms: 1000,
            takeovers: 3,
            takeover_window_s: 60,
            slowite_keepalive_s: 3600,
            slowite_idle_s: 0,
            zero_keepalive_idle_s: 600,
            flood_rate_per_s: 100,
            flood_window_s: 5,
            oversized_bytes: 256 * 1024,
            retained_topics: 50,
            retained_window_s: 60,
            retained_large_bytes: 64 * 1024,
            violations: 3,
            violation_window_s: 60,
            cooldown_s: 60,
            tls_ports: vec![8883],
            max_keys: 10_000,
            max_hits: 1000,
        }
    }
}

impl RulesConfig {
    /// Every problem found, as a sentence naming the field.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for (name, v) in [
            ("auth_failures", self.auth_failures),
            ("acl_denials", self.acl_denials),
            ("reconnects", self.reconnects),
            ("retained_topics", self.retained_topics),
            ("violations", self.violations),
            ("takeovers", self.takeovers),
        ] {
            if v == 0 || v > MAX_COUNT_THRESHOLD {
                errs.push(format!(
                    "rules.{name} must be between 1 and {MAX_COUNT_THRESHOLD}, not {v}"
                ));
            }
        }
        for (name, v) in [
            ("auth_window_s", self.auth_window_s),
            ("acl_window_s", self.acl_window_s),
            ("reconnect_window_s", self.reconnect_window_s),
            ("flood_window_s", self.flood_window_s),
            ("retained_window_s", self.retained_window_s),
            ("violation_window_s", self.violation_window_s),
            ("takeover_window_s", self.takeover_window_s),
        ] {
            if v == 0 || v > 86_400 {
                errs.push(format!(
                    "rules.{name} must be between 1 and 86400 seconds, not {v}"
                ));
            }
        }
        if self.flood_rate_per_s == 0 {
            errs.push("rules.flood_rate_per_s must be at least 1".into());
        }
        if self.slowite_keepalive_s == 0 {
            errs.push("rules.slowite_keepalive_s must be at least 1 (keepalive 0 is zero_keepalive_idle_s)".into());
        }
        if self.oversized_bytes == 0 || self.retained_large_bytes == 0 {
            errs.push(
                "rules.oversized_bytes and rules.retained_large_bytes must be at least 1".into(),
            );
        }
        if self.cooldown_s > 86_400 {
            errs.push(format!(
                "rules.cooldown_s must be at most 86400, not {}",
                self.cooldown_s
            ));
        }
        if self.max_keys == 0 || self.max_keys > 10_000_000 {
            errs.push(format!(
                "rules.max_keys must be between 1 and 10000000, not {}",
                self.max_keys
            ));
        }
        if self.max_hits == 0 || self.max_hits > 1_000_000 {
            errs.push(format!(
                "rules.max_hits must be between 1 and 1000000, not {}",
                self.max_hits
            ));
        }
        if self.admin_clients.len() > 10_000 {
            errs.push("rules.admin_clients holds more than 10000 ids".into());
        }
        errs
    }
}
