//! Per-connection state the packet rules need: who the client is (learned once, from
//! its CONNECT), its keepalive and silence, and the current window of each rate rule.

use std::net::SocketAddr;

/// Client ids longer than this are cut in keys and reports (ids are attacker-chosen).
const MAX_ID_LEN: usize = 128;
/// SUBSCRIBE filters remembered per pending request for the QoS comparison.
pub const MAX_PENDING_FILTERS: usize = 8;

pub struct FlowState {
    pub client: SocketAddr,
    pub client_id: Option<String>,
    pub keepalive: Option<u16>,
    pub connect_ts: u64,
    pub last_c2s_ts: u64,
    pub slowite_flagged: bool,
    /// publish_flood: start of the current window, PUBLISHes in it, first one's time.
    pub flood_start: u64,
    pub flood_count: u64,
    /// retained_abuse: start of the current window and the distinct retained topics seen
    /// in it (hashes, at most the threshold).
    pub retained_start: u64,
    pub retained_topics: Vec<u64>,
    pub retained_first_ts: u64,
    /// The last SUBSCRIBE awaiting its SUBACK: packet id, requested QoS per filter.
    pub pending_sub: Option<(u16, [u8; MAX_PENDING_FILTERS], usize, u64)>,
}

impl FlowState {
    pub fn new(client: SocketAddr, ts_ns: u64) -> FlowState {
        FlowState {
            client,
            client_id: None,
            keepalive: None,
            connect_ts: ts_ns,
            last_c2s_ts: ts_ns,
            slowite_flagged: false,
            flood_start: 0,
            flood_count: 0,
            retained_start: 0,
            retained_topics: Vec::new(),
            retained_first_ts: 0,
            pending_sub: None,
        }
    }

    pub fn set_client_id(&mut self, id: &[u8]) {
        let cut = &id[..id.len().min(MAX_ID_LEN)];
        self.client_id = Some(String::from_utf8_lossy(cut).into_owned());
    }

    /// The key hits are reported under: the client id once known (an empty id, which
    /// the broker replaces, counts as unknown), else the client address.
    pub fn key(&self) -> String {
        match &self.client_id {
            Some(id) if !id.is_empty() => format!("client:{id}"),
            _ => format!("addr:{}", self.client),
        }
    }
}
