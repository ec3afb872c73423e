//! Per-connection codec state: which protocol level the connection speaks, and the
//! MQTT 5 topic-alias maps of each direction (spec 3.3.2.3.4).
//!
//! The level is learned from the client's CONNECT. A capture that starts midstream has
//! none, so the session guesses from packets whose shape differs between 3.x and 5 and
//! remembers that evidence. Alias maps are bounded (alias count per direction and total
//! topic bytes) with eviction and counters, because their keys come off the wire.

use super::decode::{decode_body, peek_connect_level};
use super::{DecodeError, FixedHeader, MqttStr, Packet, PacketType, ProtocolLevel, Publish};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Direction {
    /// Client to broker.
    C2S,
    /// Broker to client.
    S2C,
}

impl Direction {
    fn idx(self) -> usize {
        match self {
            Direction::C2S => 0,
            Direction::S2C => 1,
        }
    }
}

/// Bounds on what one session may store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Highest topic alias accepted per direction (aliases above are rejected).
    pub max_aliases: u16,
    /// Total bytes of alias topics stored, both directions together.
    pub max_alias_bytes: usize,
    /// Level assumed when neither a CONNECT nor evidence has been seen.
    pub default_level: ProtocolLevel,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_aliases: 1024,
            max_alias_bytes: 64 * 1024,
            default_level: 4,
        }
    }
}

/// Counters over the life of the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStats {
    /// Alias mappings set or changed.
    pub aliases_registered: u64,
    /// Empty-topic PUBLISHes resolved through an alias.
    pub aliases_resolved: u64,
    /// Empty-topic PUBLISHes whose alias was never registered (or was evicted).
    pub unknown_aliases: u64,
    /// Aliases 0, above `max_aliases`, or topics larger than the byte cap.
    pub aliases_rejected: u64,
    /// Mappings dropped to stay under `max_alias_bytes`.
    pub alias_evictions: u64,
    /// Times the guessed level changed because a packet only made sense at the other level.
    pub level_guess_changes: u64,
}

/// What the topic of a PUBLISH is after alias handling.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TopicResolution<'s> {
    /// Use `Publish::topic` (no alias, or topic + alias which registers the mapping).
    AsIs,
    /// Empty topic; this is the topic the alias stands for.
    FromAlias(MqttStr<'s>),
    /// Empty topic with an alias never registered in this direction.
    UnknownAlias(u16),
    /// Alias 0, above the cap, or its topic too large to store.
    AliasRejected(u16),
}

/// Slot `alias - 1` holds the topic; an empty Vec means unset (a registration always
/// has a non-empty topic, an empty topic is a lookup).
#[derive(Debug, Default)]
struct AliasTable {
    slots: Vec<Vec<u8>>,
}

#[derive(Debug)]
pub struct Session {
    limits: SessionLimits,
    level: Option<ProtocolLevel>,
    guessed: Option<ProtocolLevel>,
    aliases: [AliasTable; 2],
    alias_bytes: usize,
    /// Round-robin eviction position over both tables (C2S slots first).
    evict_cursor: usize,
    stats: SessionStats,
}

impl Default for Session {
    fn default() -> Self {
        Session::new(SessionLimits::default())
    }
}

/// What the fixed header alone says about the level when no CONNECT was seen.
/// MQTT 5 CONNACKs always carry a property length (so > 2 bytes) and 3.x ones never do;
/// 3.x acks are exactly 2 bytes and 3.x DISCONNECT is empty; AUTH exists only in 5.
fn header_evidence(h: &FixedHeader) -> Option<ProtocolLevel> {
    let len = h.remaining_length;
    match h.packet_type()? {
        PacketType::ConnAck => Some(if len > 2 { 5 } else { 4 }),
        PacketType::PubAck
        | PacketType::PubRec
        | PacketType::PubRel
        | PacketType::PubComp
        | PacketType::UnsubAck => (len > 2).then_some(5),
        PacketType::Disconnect => (len > 0).then_some(5),
        PacketType::Auth => Some(5),
        _ => None,
    }
}

impl Session {
    pub fn new(limits: SessionLimits) -> Self {
        Session {
            limits,
            level: None,
            guessed: None,
            aliases: Default::default(),
            alias_bytes: 0,
            evict_cursor: 0,
            stats: SessionStats::default(),
        }
    }

    /// Level announced by the last client CONNECT, if any.
    pub fn level(&self) -> Option<ProtocolLevel> {
        self.level
    }

    /// Level from evidence when no CONNECT was seen.
    pub fn guessed_level(&self) -> Option<ProtocolLevel> {
        self.guessed
    }

    /// Learned level, else the guess, else `limits.default_level`.
    pub fn effective_level(&self) -> ProtocolLevel {
        self.level
            .or(self.guessed)
            .unwrap_or(self.limits.default_level)
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    pub fn limits(&self) -> &SessionLimits {
        &self.limits
    }

    /// Decodes one packet body, learning the level from a client CONNECT (a later
    /// CONNECT replaces it and starts a fresh alias space) or, midstream, guessing it.
    pub fn decode<'a>(
        &mut self,
        dir: Direction,
        h: &FixedHeader,
        body: &'a [u8],
    ) -> Result<Packet<'a>, DecodeError> {
        if dir == Direction::C2S && h.packet_type() == Some(PacketType::Connect) {
            self.on_connect(body);
            // CONNECT carries its own level; the argument is not used for it.
            return decode_body(h, body, self.effective_level());
        }
        if let Some(l) = self.level {
            return decode_body(h, body, l);
        }
        if let Some(l) = header_evidence(h) {
            self.set_guess(l);
            return decode_body(h, body, l);
        }
        let first = self.effective_level();
        match decode_body(h, body, first) {
            Ok(p) => Ok(p),
            Err(e) => {
                // The packet does not parse at the current guess; if it parses at the
                // other family, that is evidence for it.
                let alt = if first >= 5 { 4 } else { 5 };
                match decode_body(h, body, alt) {
                    Ok(p) => {
                        self.set_guess(alt);
                        Ok(p)
                    }
                    Err(_) => Err(e),
                }
            }
        }
    }

    fn on_connect(&mut self, body: &[u8]) {
        if let Some(l) = peek_connect_level(body) {
            self.level = Some(l);
            self.clear_aliases();
        }
    }

    fn set_guess(&mut self, l: ProtocolLevel) {
        // 3 and 4 cannot be told apart without a CONNECT; keep an earlier 3.x guess.
        let family = |x: ProtocolLevel| x >= 5;
        if self.guessed.is_some_and(|g| family(g) == family(l)) {
            return;
        }
        if self.guessed.is_some() {
            self.stats.level_guess_changes += 1;
        }
        self.guessed = Some(l);
    }

    fn clear_aliases(&mut self) {
        self.aliases = Default::default();
        self.alias_bytes = 0;
        self.evict_cursor = 0;
    }

    /// Topic-alias handling for a PUBLISH travelling in `dir`. Topic + alias registers
    /// (or replaces) the mapping; empty topic + alias looks it up.
    pub fn resolve_topic<'s>(&'s mut self, dir: Direction, p: &Publish<'_>) -> TopicResolution<'s> {
        let Some(alias) = p.properties.topic_alias() else {
            return TopicResolution::AsIs;
        };
        if alias == 0 || alias > self.limits.max_aliases {
            self.stats.aliases_rejected += 1;
            return TopicResolution::AliasRejected(alias);
        }
        let d = dir.idx();
        let slot = usize::from(alias - 1);
        if p.topic.is_empty() {
            return match self.aliases[d].slots.get(slot) {
                Some(t) if !t.is_empty() => {
                    self.stats.aliases_resolved += 1;
                    TopicResolution::FromAlias(MqttStr(&self.aliases[d].slots[slot]))
                }
                _ => {
                    self.stats.unknown_aliases += 1;
                    TopicResolution::UnknownAlias(alias)
                }
            };
        }
        self.register(d, slot, p.topic.0, alias)
    }

    fn register(
        &mut self,
        d: usize,
        slot: usize,
        topic: &[u8],
        alias: u16,
    ) -> TopicResolution<'static> {
        if self.aliases[d]
            .slots
            .get(slot)
            .is_some_and(|t| t.as_slice() == topic)
        {
            return TopicResolution::AsIs; // the common re-send of the same mapping
        }
        // Drop the old mapping first: if the new one cannot be stored, a later lookup
        // must report an unknown alias rather than a stale topic.
        self.free_slot(d, slot);
        if topic.len() > self.limits.max_alias_bytes {
            self.stats.aliases_rejected += 1;
            return TopicResolution::AliasRejected(alias);
        }
        while self.alias_bytes + topic.len() > self.limits.max_alias_bytes {
            if !self.evict_one() {
                break;
            }
        }
        let t = &mut self.aliases[d].slots;
        if t.len() <= slot {
            t.resize_with(slot + 1, Vec::new);
        }
        t[slot] = topic.to_vec();
        self.alias_bytes += topic.len();
        self.stats.aliases_registered += 1;
        TopicResolution::AsIs
    }

    fn free_slot(&mut self, d: usize, slot: usize) -> usize {
        let Some(t) = self.aliases[d].slots.get_mut(slot) else {
            return 0;
        };
        let n = t.len();
        *t = Vec::new();
        self.alias_bytes = self.alias_bytes.saturating_sub(n);
        n
    }

    /// Evicts the next stored mapping after the cursor (both directions, round robin).
    /// Returns false when nothing is stored.
    fn evict_one(&mut self) -> bool {
        let n0 = self.aliases[0].slots.len();
        let total = n0 + self.aliases[1].slots.len();
        for _ in 0..total {
            let i = self.evict_cursor % total;
            self.evict_cursor = (i + 1) % total;
            let (d, s) = if i < n0 { (0, i) } else { (1, i - n0) };
            if self.free_slot(d, s) > 0 {
                self.stats.alias_evictions += 1;
                return true;
            }
        }
        false
    }

    /// Bytes of alias topics currently stored.
    pub fn alias_bytes(&self) -> usize {
        self.alias_bytes
    }
}
