//! State of one MQTT connection (one TCP flow), from CONNECT to close.

use std::net::SocketAddr;

use super::client::EndKind;

/// Client ids and other identity strings are kept at most this long: enough to name a
/// client, and an attacker sending 64 KiB ids cannot grow our state with them.
pub const MAX_ID_LEN: usize = 256;
/// Distinct subscription filters remembered (as hashes) per connection; beyond this the
/// held count keeps growing without de-duplication (`SubSet::overflow`).
pub const MAX_SUB_HASHES: usize = 32;
/// Filters kept as text per connection, for reports.
pub const MAX_LISTED_FILTERS: usize = 4;
/// Listed filters are cut to this many bytes.
pub const MAX_LISTED_FILTER_LEN: usize = 64;

/// The subscriptions a connection holds: a bounded set of filter hashes (so a filter
/// subscribed twice counts once) and the first few filters as text.
#[derive(Debug, Default)]
pub struct SubSet {
    hashes: Vec<u64>,
    /// Grants beyond `MAX_SUB_HASHES`, counted without de-duplication.
    overflow: u32,
    pub listed: Vec<Box<str>>,
}

impl SubSet {
    pub fn add(&mut self, h: u64, filter: &[u8]) {
        if self.hashes.contains(&h) {
            return;
        }
        if self.hashes.len() >= MAX_SUB_HASHES {
            self.overflow = self.overflow.saturating_add(1);
            return;
        }
        self.hashes.push(h);
        if self.listed.len() < MAX_LISTED_FILTERS {
            self.listed.push(clip(filter, MAX_LISTED_FILTER_LEN));
        }
    }

    pub fn remove(&mut self, h: u64, filter: &[u8]) {
        if let Some(i) = self.hashes.iter().position(|&x| x == h) {
            self.hashes.swap_remove(i);
            let shown = clip(filter, MAX_LISTED_FILTER_LEN);
            self.listed.retain(|f| *f != shown);
        } else if self.overflow > 0 {
            self.overflow -= 1;
        }
    }

    pub fn count(&self) -> u32 {
        self.hashes.len() as u32 + self.overflow
    }

    pub fn heap_bytes(&self) -> usize {
        self.hashes.capacity() * 8
            + self.listed.capacity() * 16
            + self.listed.iter().map(|s| s.len()).sum::<usize>()
    }
}

/// `bytes` as text (lossy), cut to at most `max` input bytes (a character split by the
/// cut shows as U+FFFD).
pub fn clip(bytes: &[u8], max: usize) -> Box<str> {
    let s = String::from_utf8_lossy(bytes.get(..max).unwrap_or(bytes));
    s.into_owned().into_boxed_str()
}

#[derive(Debug)]
pub struct Conn {
    pub client_addr: SocketAddr,
    /// The TCP handshake was seen, so the first client byte is the connection's first.
    pub from_start: bool,
    /// When the connection was last moved to the back of the LRU list.
    pub touched_ns: u64,
    /// Time of the (first) CONNECT.
    pub connected_at_ns: Option<u64>,
    /// Client id as on the wire, cut to `MAX_ID_LEN` (key into the client table).
    pub client_id: Option<Box<[u8]>>,
    pub username: Option<Box<str>>,
    pub level: u8,
    pub keep_alive: u16,
    pub clean_start: bool,
    pub will_topic: Option<Box<str>>,
    /// CONNACK return / reason code.
    pub connack: Option<u8>,
    /// `Tracker::client_key` of this connection.
    pub key: u64,
    /// PUBLISH packets and wire bytes (all packets) client → broker ("in") and back ("out").
    pub msgs_in: u64,
    pub bytes_in: u64,
    pub msgs_out: u64,
    pub bytes_out: u64,
    pub subs: SubSet,
    /// How the MQTT session ended, if a DISCONNECT said so.
    pub end: Option<EndKind>,
    /// A DISCONNECT's reason code (MQTT 5), if any.
    pub end_code: Option<u8>,
    /// Packets-before-CONNECT already reported (report once per connection).
    pub flagged_before_connect: bool,
}

impl Conn {
    pub fn new(client_addr: SocketAddr, from_start: bool, key: u64, ts_ns: u64) -> Conn {
        Conn {
            touched_ns: ts_ns,
            client_addr,
            from_start,
            connected_at_ns: None,
            client_id: None,
            username: None,
            level: 0,
            keep_alive: 0,
            clean_start: false,
            will_topic: None,
            connack: None,
            key,
            msgs_in: 0,
            bytes_in: 0,
            msgs_out: 0,
            bytes_out: 0,
            subs: SubSet::default(),
            end: None,
            end_code: None,
            flagged_before_connect: false,
        }
    }

    /// Client id for events and reports.
    pub fn client_id_text(&self) -> Option<String> {
        self.client_id
            .as_deref()
            .map(|b| String::from_utf8_lossy(b).into_owned())
    }

    pub fn heap_bytes(&self) -> usize {
        self.client_id.as_ref().map_or(0, |b| b.len())
            + self.username.as_ref().map_or(0, |b| b.len())
            + self.will_topic.as_ref().map_or(0, |b| b.len())
            + self.subs.heap_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subset_dedups_and_bounds() {
        let mut s = SubSet::default();
        s.add(1, b"a/#");
        s.add(1, b"a/#");
        assert_eq!(s.count(), 1);
        for h in 2..100u64 {
            s.add(h, b"x");
        }
        // 32 distinct remembered, 67 more counted without de-duplication.
        assert_eq!(s.count(), 99);
        assert_eq!(s.listed.len(), MAX_LISTED_FILTERS);
        s.remove(1, b"a/#");
        assert_eq!(s.count(), 98);
        assert!(!s.listed.iter().any(|f| &**f == "a/#"));
        assert_eq!(&*clip("é".repeat(100).as_bytes(), 5), "éé\u{fffd}");
    }
}
