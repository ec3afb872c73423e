//! Topic grouping with bounded cardinality, and per-group statistics.
//!
//! A topic is interned once into a `GroupId`; later work uses the integer.
//!
//! Grouping, in order:
//! 1. Exact: the topic has its own group, up to `max_exact_topics` of them (and names of
//!    at most `MAX_NAME_LEN` bytes).
//! 2. Template: beyond that, the first operator template (`topic_templates`, MQTT filters)
//!    that matches, else the automatic template (`auto`: identifier-like levels → `+`),
//!    up to `max_templates` templates.
//! 3. `__other__` for the rest.
//!
//! Eviction policy. When a table is full, a new entry may take the place of one that has
//! been idle (not returned by `group_of`) for `IDLE_EVICT_SECS` (15 minutes, the longest
//! view, so an evicted group's windows are empty anyway). Idle entries are found with a
//! CLOCK hand over the group slots: a full table scans at most `EVICT_SCAN` slots per new
//! topic (cheap even under a flood of new topics), and `tick` sweeps further while a
//! table is full. An evicted exact topic's lifetime statistics are folded into its
//! template group (or `__other__` if it has none / templates are full); an evicted
//! template folds into `__other__`. Active groups are never evicted, so a flood of new
//! topics cannot push out the topics that are in use: it lands in templates/`__other__`.
//!
//! Ids. A `GroupId` is a slot index (low 22 bits) plus the slot's generation (high 10
//! bits), bumped when the slot is freed. A slot is reused only after its group was idle
//! 15 minutes, so an id would have to be held through 1024 such reuses (over 10 days) to
//! alias; any id that does not name a live group is ignored and counted (`stale_ids`).
//!
//! Hot path: a known topic costs one hash of its bytes and one map lookup in `group_of`
//! (no allocation), and one slot index in `on_publish`. Unknown topics beyond the cap
//! cost a template computation into a reused buffer and a second lookup.

mod arrivals;
mod auto;
mod distinct;
mod filter;
mod snapshot;
mod stats;

use std::collections::HashMap;

use crate::mqtt::Direction;
use crate::observe::{Exchange, GroupId, GroupKind, ObserveConfig};

pub use arrivals::Arrivals;
pub use auto::{auto_template, is_identifier};
pub use distinct::Distinct;
pub use filter::Filter;
pub use snapshot::{ArrivalSnapshot, LatencySnapshot, TopicCounters, TopicSnapshot, WindowCounts};
pub use stats::GroupStats;
use stats::PublishInfo;

/// Longest topic (or template) name stored; longer topics skip the exact tier.
pub const MAX_NAME_LEN: usize = 256;
/// Idle time after which a group may be evicted to make room.
pub const IDLE_EVICT_SECS: u64 = 15 * 60;
/// Slots looked at per new topic when a table is full.
pub const EVICT_SCAN: usize = 16;
/// Slots looked at per `tick` while a table is full.
pub const TICK_SCAN: usize = 1024;
/// Name of the catch-all group.
pub const OTHER_NAME: &str = "__other__";

const SLOT_BITS: u32 = 22;
const SLOT_MASK: u32 = (1 << SLOT_BITS) - 1;
const GEN_MASK: u16 = (1 << (32 - SLOT_BITS)) - 1;
const IDLE_NS: u64 = IDLE_EVICT_SECS * 1_000_000_000;

type Map = HashMap<Box<[u8]>, GroupId, foldhash::fast::RandomState>;

/// The configuration cannot be used; lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic configuration: {}", .problems.join("; "))]
pub struct TopicsConfigError {
    pub problems: Vec<String>,
}

struct Group {
    /// The topic or template bytes (the map key).
    key: Box<[u8]>,
    /// Display name, only when `key` is not valid UTF-8 (lossy).
    lossy_name: Option<Box<str>>,
    kind: GroupKind,
    last_used_ns: u64,
    stats: GroupStats,
}

impl Group {
    fn name(&self) -> &str {
        match &self.lossy_name {
            Some(n) => n,
            None => std::str::from_utf8(&self.key).unwrap_or(""),
        }
    }
}

#[derive(Default)]
struct Slot {
    generation: u16,
    group: Option<Box<Group>>,
}

pub struct Topics {
    bucket_secs: u32,
    auto: bool,
    templates: Vec<Filter>,
    max_exact: usize,
    max_templates: usize,
    slots: Vec<Slot>,
    free: Vec<u32>,
    exact: Map,
    templ: Map,
    other: Option<GroupId>,
    hand: usize,
    scratch: Vec<u8>,
    c: TopicCounters,
}

impl Topics {
    pub fn new(cfg: &ObserveConfig) -> Result<Topics, TopicsConfigError> {
        let mut problems = Vec::new();
        let mut templates = Vec::new();
        for t in &cfg.topic_templates {
            match Filter::parse(t) {
                Ok(_) if t.len() > MAX_NAME_LEN => {
                    problems.push(format!("template {t:?}: longer than {MAX_NAME_LEN} bytes"));
                }
                Ok(f) => templates.push(f),
                Err(why) => problems.push(format!("template {t:?}: {why}")),
            }
        }
        if cfg.bucket_secs == 0 {
            problems.push("bucket_secs must be at least 1".into());
        }
        let total = cfg
            .max_exact_topics
            .saturating_add(cfg.max_templates)
            .saturating_add(1);
        if total > SLOT_MASK as usize {
            problems.push(format!(
                "max_exact_topics + max_templates must stay below {}",
                SLOT_MASK
            ));
        }
        if !problems.is_empty() {
            return Err(TopicsConfigError { problems });
        }
        let mut exact = Map::with_hasher(Default::default());
        // Reserved once so that filling the table never rehashes on the packet path.
        exact.reserve(cfg.max_exact_topics.min(1 << 20));
        Ok(Topics {
            bucket_secs: cfg.bucket_secs,
            auto: cfg.auto_template,
            templates,
            max_exact: cfg.max_exact_topics,
            max_templates: cfg.max_templates,
            slots: Vec::new(),
            free: Vec::new(),
            exact,
            templ: Map::with_hasher(Default::default()),
            other: None,
            hand: 0,
            scratch: Vec::with_capacity(MAX_NAME_LEN),
            c: TopicCounters::default(),
        })
    }

    /// The group of a PUBLISH topic (alias-resolved) at time `now_ns`, interning it.
    #[inline]
    pub fn group_of(&mut self, topic: &[u8], now_ns: u64) -> GroupId {
        if let Some(&g) = self.exact.get(topic)
            && let Some(group) = self.get_mut(g)
        {
            group.last_used_ns = group.last_used_ns.max(now_ns);
            return g;
        }
        self.admit(topic, now_ns)
    }

    #[cold]
    fn admit(&mut self, topic: &[u8], now_ns: u64) -> GroupId {
        if topic.len() > MAX_NAME_LEN {
            self.c.too_long += 1;
        } else if self.c.exact_groups < self.max_exact as u64 || self.evict_idle_exact(now_ns) {
            self.c.exact_admitted += 1;
            self.c.exact_groups += 1;
            let g = self.create(topic, GroupKind::Exact, now_ns);
            self.exact.insert(topic.into(), g);
            return g;
        }
        match self.template_group(topic, now_ns) {
            Some(g) => {
                self.c.routed_to_template += 1;
                g
            }
            None => {
                self.c.routed_to_other += 1;
                self.other_group(now_ns)
            }
        }
    }

    /// The template group for `topic`, creating it if there is room; `None` when no
    /// template applies or the template table is full of active templates.
    fn template_group(&mut self, topic: &[u8], now_ns: u64) -> Option<GroupId> {
        let mut key = std::mem::take(&mut self.scratch);
        let found = if let Some(f) = self.templates.iter().find(|f| f.matches(topic)) {
            key.clear();
            key.extend_from_slice(f.text().as_bytes());
            true
        } else if self.auto {
            auto_template(topic, &mut key);
            key.len() <= MAX_NAME_LEN
        } else {
            false
        };
        let result = if !found {
            None
        } else if let Some(&g) = self.templ.get(&key[..]) {
            if let Some(group) = self.get_mut(g) {
                group.last_used_ns = group.last_used_ns.max(now_ns);
            }
            Some(g)
        } else if self.c.template_groups < self.max_templates as u64
            || self.evict_idle_template(now_ns)
        {
            self.c.template_admitted += 1;
            self.c.template_groups += 1;
            let g = self.create(&key, GroupKind::Template, now_ns);
            self.templ.insert(key[..].into(), g);
            Some(g)
        } else {
            None
        };
        self.scratch = key;
        result
    }

    fn other_group(&mut self, now_ns: u64) -> GroupId {
        if let Some(g) = self.other {
            if let Some(group) = self.get_mut(g) {
                group.last_used_ns = group.last_used_ns.max(now_ns);
            }
            return g;
        }
        self.c.other_groups = 1;
        let g = self.create(OTHER_NAME.as_bytes(), GroupKind::Other, now_ns);
        self.other = Some(g);
        g
    }

    fn create(&mut self, key: &[u8], kind: GroupKind, now_ns: u64) -> GroupId {
        let lossy_name = match std::str::from_utf8(key) {
            Ok(_) => None,
            Err(_) => Some(String::from_utf8_lossy(key).into()),
        };
        let group = Box::new(Group {
            key: key.into(),
            lossy_name,
            kind,
            last_used_ns: now_ns,
            stats: GroupStats::new(self.bucket_secs),
        });
        let idx = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                self.slots.push(Slot::default());
                self.slots.len() - 1
            }
        };
        let slot = &mut self.slots[idx];
        slot.group = Some(group);
        GroupId((u32::from(slot.generation) << SLOT_BITS) | idx as u32)
    }

    /// Removes the group in slot `idx`, freeing the slot for a new generation.
    fn take_slot(&mut self, idx: usize) -> Option<Box<Group>> {
        let slot = self.slots.get_mut(idx)?;
        let group = slot.group.take()?;
        slot.generation = slot.generation.wrapping_add(1) & GEN_MASK;
        self.free.push(idx as u32);
        Some(group)
    }

    /// CLOCK scan of up to `budget` slots for idle groups of `kind`, evicting them; stops
    /// after the first eviction when `first_only`. Returns how many were evicted.
    fn evict_idle(
        &mut self,
        kind: GroupKind,
        now_ns: u64,
        budget: usize,
        first_only: bool,
    ) -> usize {
        let mut evicted = 0;
        for _ in 0..budget.min(self.slots.len()) {
            let n = self.slots.len();
            let i = self.hand % n;
            self.hand = (i + 1) % n;
            let idle = self.slots[i].group.as_ref().is_some_and(|g| {
                g.kind == kind && g.last_used_ns.saturating_add(IDLE_NS) <= now_ns
            });
            if idle {
                match kind {
                    GroupKind::Exact => self.evict_exact(i, now_ns),
                    GroupKind::Template => self.evict_template(i, now_ns),
                    GroupKind::Other => {}
                }
                evicted += 1;
                if first_only {
                    break;
                }
            }
        }
        evicted
    }

    fn evict_idle_exact(&mut self, now_ns: u64) -> bool {
        self.evict_idle(GroupKind::Exact, now_ns, EVICT_SCAN, true) > 0
    }

    fn evict_idle_template(&mut self, now_ns: u64) -> bool {
        self.evict_idle(GroupKind::Template, now_ns, EVICT_SCAN, true) > 0
    }

    fn evict_exact(&mut self, idx: usize, now_ns: u64) {
        let Some(group) = self.take_slot(idx) else {
            return;
        };
        self.exact.remove(&group.key);
        self.c.exact_groups -= 1;
        self.c.exact_evicted += 1;
        let target = match self.template_group(&group.key, now_ns) {
            Some(t) => {
                self.c.exact_folded_into_template += 1;
                t
            }
            None => {
                self.c.exact_folded_into_other += 1;
                self.other_group(now_ns)
            }
        };
        if let Some(t) = self.get_mut(target) {
            t.stats.fold(&group.stats);
        }
    }

    fn evict_template(&mut self, idx: usize, now_ns: u64) {
        let Some(group) = self.take_slot(idx) else {
            return;
        };
        self.templ.remove(&group.key);
        self.c.template_groups -= 1;
        self.c.template_evicted += 1;
        let other = self.other_group(now_ns);
        if let Some(o) = self.get_mut(other) {
            o.stats.fold(&group.stats);
        }
    }

    #[inline]
    fn get(&self, g: GroupId) -> Option<&Group> {
        let slot = self.slots.get((g.0 & SLOT_MASK) as usize)?;
        if u32::from(slot.generation) != g.0 >> SLOT_BITS {
            return None;
        }
        slot.group.as_deref()
    }

    #[inline]
    fn get_mut(&mut self, g: GroupId) -> Option<&mut Group> {
        let slot = self.slots.get_mut((g.0 & SLOT_MASK) as usize)?;
        if u32::from(slot.generation) != g.0 >> SLOT_BITS {
            return None;
        }
        slot.group.as_deref_mut()
    }

    /// Whether `g` names a live group.
    pub fn is_live(&self, g: GroupId) -> bool {
        self.get(g).is_some()
    }

    /// Name of a live group (topic, template or `__other__`); "" for a stale id.
    pub fn group_name(&self, g: GroupId) -> &str {
        self.get(g).map_or("", Group::name)
    }

    /// Kind of a live group; `Other` for a stale id.
    pub fn group_kind(&self, g: GroupId) -> GroupKind {
        self.get(g).map_or(GroupKind::Other, |g| g.kind)
    }

    /// Visits every live group with its name, kind and statistics (for exporters that
    /// read the sketches themselves). Allocates nothing.
    pub fn for_each_group(&self, mut f: impl FnMut(&str, GroupKind, &GroupStats)) {
        for g in self.slots.iter().filter_map(|s| s.group.as_deref()) {
            f(g.name(), g.kind, &g.stats);
        }
    }

    /// Live groups of all kinds.
    pub fn len(&self) -> usize {
        (self.c.exact_groups + self.c.template_groups + self.c.other_groups) as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records one PUBLISH seen on the wire for group `g`: `C2S` into the broker ("in"),
    /// `S2C` toward a subscriber ("out"). `client_key` identifies the client (publisher
    /// for `C2S`, subscriber for `S2C`).
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub fn on_publish(
        &mut self,
        g: GroupId,
        dir: Direction,
        client_key: u64,
        qos: u8,
        retain: bool,
        dup: bool,
        payload_len: usize,
        ts_ns: u64,
    ) {
        let info = PublishInfo {
            dir,
            client_key,
            qos,
            retain,
            dup,
            payload_len,
            ts_ns,
        };
        match self.get_mut(g) {
            Some(group) => group.stats.on_publish(&info),
            None => self.c.stale_ids += 1,
        }
    }

    /// A latency sample for group `g`; kept per group for `PublishQos1`, `PublishQos2`
    /// and `Fanout`, other exchanges are ignored.
    pub fn on_latency(&mut self, g: GroupId, ex: Exchange, seconds: f64) {
        match self.get_mut(g) {
            Some(group) => group.stats.on_latency(ex, seconds),
            None => self.c.stale_ids += 1,
        }
    }

    /// Housekeeping: while a table is full, evicts idle groups (up to `TICK_SCAN` slots
    /// looked at per table) so new topics find room.
    pub fn tick(&mut self, now_ns: u64) {
        if self.c.exact_groups >= self.max_exact as u64 {
            self.evict_idle(GroupKind::Exact, now_ns, TICK_SCAN, false);
        }
        if self.c.template_groups >= self.max_templates as u64 {
            self.evict_idle(GroupKind::Template, now_ns, TICK_SCAN, false);
        }
    }

    /// Statistics of every live group.
    pub fn snapshot(&self, now_ns: u64) -> Vec<TopicSnapshot> {
        self.slots
            .iter()
            .filter_map(|s| s.group.as_deref())
            .map(|g| g.stats.snapshot(g.name(), g.kind, now_ns))
            .collect()
    }

    /// Statistics of one live group.
    pub fn snapshot_of(&self, g: GroupId, now_ns: u64) -> Option<TopicSnapshot> {
        self.get(g)
            .map(|grp| grp.stats.snapshot(grp.name(), grp.kind, now_ns))
    }

    pub fn counters(&self) -> TopicCounters {
        TopicCounters {
            mem_bytes: self.mem_bytes() as u64,
            ..self.c.clone()
        }
    }

    /// Estimated bytes of all topic state: slots, groups with their statistics and
    /// names, both maps (keys, values and an allowance for the table's control bytes).
    pub fn mem_bytes(&self) -> usize {
        let map_entry = std::mem::size_of::<(Box<[u8]>, GroupId)>() + 1;
        let groups: usize = self
            .slots
            .iter()
            .filter_map(|s| s.group.as_deref())
            .map(|g| {
                std::mem::size_of::<Group>()
                    + g.key.len()
                    + g.lossy_name.as_ref().map_or(0, |n| n.len())
                    + g.stats.mem_bytes()
                    - std::mem::size_of::<GroupStats>()
            })
            .sum();
        let map_keys: usize = self
            .exact
            .keys()
            .chain(self.templ.keys())
            .map(|k| k.len())
            .sum();
        std::mem::size_of::<Self>()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free.capacity() * 4
            + groups
            + (self.exact.capacity() + self.templ.capacity()) * map_entry
            + map_keys
            + self.scratch.capacity()
            + self
                .templates
                .iter()
                .map(|f| 64 + 2 * f.text().len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests;
