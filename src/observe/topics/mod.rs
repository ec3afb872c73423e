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
//! Hot path: a known topic costs two hashes of its bytes and one lookup in the exact
//! index (`exact`: one cache line, prefetchable from the hashes; no allocation, no key
//! comparison). The observer's PUBLISHes and latency samples reach their group through
//! a small queue applied with software prefetching (`queue`), and a group's statistics
//! are laid out so that an update touches few adjacent lines (`stats`). A topic
//! already routed to a template is found in a direct-mapped cache (one cache line);
//! other unknown topics beyond the cap cost a template computation into a reused
//! buffer and a second lookup.
//!
//! Topic identity. Exact topics are keyed by a fingerprint: two 64-bit hashes with
//! independent random keys (`fingerprint`, one pass over the bytes), not by their bytes, so a
//! lookup compares integers held in the index instead of chasing a pointer to the
//! stored name. The exact index keeps 93 of its bits (all of the first hash but its
//! lowest bit, 30 bits of the second); two topics would share a group only if those
//! collided: with seeds unknown to senders, about n^2 / 2^94 for n topics (6e-17 for a
//! million), far below any other error source here. The routed-topic cache compares
//! the second hash and half of the first.
//!
//! Idle scans. A full table looks for an idle group only when one can exist: a CLOCK
//! lap that found none records the earliest time any group it saw can turn idle (its
//! oldest `last_used + IDLE_EVICT_SECS`), and until then neither `admit` nor `tick`
//! scans (groups only get younger, and new groups start at `now`).

mod arrivals;
mod auto;
mod chunks;
mod distinct;
mod exact;
mod filter;
mod fingerprint;
mod queue;
mod snapshot;
mod stats;

use std::collections::HashMap;

use crate::mqtt::Direction;
use crate::observe::{Exchange, GroupId, GroupKind, ObserveConfig};

pub use arrivals::Arrivals;
pub use auto::{auto_template, is_identifier};
use chunks::ChunkVec;
pub use distinct::Distinct;
use exact::ExactIndex;
pub use filter::Filter;
use queue::{QUEUE_CAP, Queued, Update};
pub use snapshot::{ArrivalSnapshot, LatencySnapshot, TopicCounters, TopicSnapshot, WindowCounts};
use stats::PublishInfo;
pub use stats::{GroupBrief, GroupStats};

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

/// 128-bit fingerprint of a topic (see the module doc).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TopicKey {
    h1: u64,
    h2: u64,
}

/// One entry of the routed-topic cache: `tag` holds the high half of `h1` (the low
/// bits chose the entry), `gid` is the template group + 1 (0 = empty).
#[derive(Clone, Copy, Default)]
struct Route {
    h2: u64,
    tag: u32,
    gid: u32,
}

/// Routed-topic cache entries: 64 K (1 MB) at the default caps; smaller tables get a
/// smaller cache (four entries per group slot, at least 1 K).
const ROUTE_CACHE_MAX: usize = 1 << 16;

/// Where `Topics::group_for_publish` sends a PUBLISH.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PublishRoute {
    pub g: GroupId,
    /// The group is the exact topic (its name is the topic).
    pub exact: bool,
    /// The message takes part in fan-out matching. False only for an exact topic
    /// with no copy seen leaving the broker yet (inbound), or with no inbound message
    /// remembered yet (outbound): see `ExactIndex::get_for_fanout`. Template and
    /// `__other__` groups mix topics, so their messages always take part.
    pub fanout: bool,
}

/// Progress of one CLOCK lap over the slots for one kind of group.
#[derive(Clone, Copy)]
struct Lap {
    hand: usize,
    /// Slots visited in this lap, and the slot count when it began.
    seen: usize,
    len: usize,
    /// Oldest `last_used_ns` among groups of the kind met in this lap.
    oldest: u64,
    /// No group of the kind can be idle before this time.
    floor_ns: u64,
}

impl Default for Lap {
    fn default() -> Self {
        Lap {
            hand: 0,
            seen: 0,
            len: 0,
            oldest: u64::MAX,
            floor_ns: 0,
        }
    }
}

/// The configuration cannot be used; lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic configuration: {}", .problems.join("; "))]
pub struct TopicsConfigError {
    pub problems: Vec<String>,
}

/// One slot of the group table: a live group, or free (`live` false). Groups live
/// inline in the slot vector (no pointer to chase per PUBLISH), each slot starting on a
/// cache line. Field order is fixed (`repr(C)`): a 16-byte header (what `group_of`
/// reads and writes) followed by the statistics, whose own order puts what a PUBLISH
/// updates in the slot's first four lines (see `GroupStats`).
#[repr(C, align(64))]
struct Slot {
    generation: u16,
    live: bool,
    kind: GroupKind,
    last_used_ns: u64,
    stats: GroupStats,
    /// The topic or template bytes.
    key: Box<[u8]>,
    /// Display name, only when `key` is not valid UTF-8 (lossy).
    lossy_name: Option<Box<str>>,
}

/// A live slot.
type Group = Slot;

impl Default for Slot {
    fn default() -> Self {
        Slot {
            generation: 0,
            live: false,
            kind: GroupKind::Other,
            last_used_ns: 0,
            stats: GroupStats::empty(),
            key: Box::default(),
            lossy_name: None,
        }
    }
}

impl Slot {
    fn name(&self) -> &str {
        match &self.lossy_name {
            Some(n) => n,
            None => std::str::from_utf8(&self.key).unwrap_or(""),
        }
    }
}

use crate::observe::prefetch::prefetch;

pub struct Topics {
    bucket_secs: u32,
    auto: bool,
    templates: Vec<Filter>,
    max_exact: usize,
    max_templates: usize,
    slots: ChunkVec<Slot>,
    free: Vec<u32>,
    exact: ExactIndex,
    templ: Map,
    other: Option<GroupId>,
    /// CLOCK laps for exact groups and templates.
    laps: [Lap; 2],
    /// Routed-topic cache (allocated at the first routed topic).
    routes: Vec<Route>,
    fp: fingerprint::Fingerprinter,
    scratch: Vec<u8>,
    /// Group updates not yet applied (see `queue`).
    queue: Vec<Queued>,
    c: TopicCounters,
}

fn lap_index(kind: GroupKind) -> usize {
    match kind {
        GroupKind::Exact => 0,
        _ => 1,
    }
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
        // Sized once so that filling the table never rehashes on the packet path.
        let exact = ExactIndex::with_capacity(cfg.max_exact_topics.min(1 << 20));
        Ok(Topics {
            bucket_secs: cfg.bucket_secs,
            auto: cfg.auto_template,
            templates,
            max_exact: cfg.max_exact_topics,
            max_templates: cfg.max_templates,
            slots: ChunkVec::new(total),
            free: Vec::new(),
            exact,
            templ: Map::with_hasher(Default::default()),
            other: None,
            laps: [Lap::default(); 2],
            routes: Vec::new(),
            fp: fingerprint::Fingerprinter::new(),
            scratch: Vec::with_capacity(MAX_NAME_LEN),
            queue: Vec::with_capacity(QUEUE_CAP),
            c: TopicCounters::default(),
        })
    }

    #[inline]
    fn key_of(&self, topic: &[u8]) -> TopicKey {
        let (h1, h2) = self.fp.hashes(topic);
        TopicKey { h1, h2 }
    }

    /// The group of a PUBLISH topic (alias-resolved) at time `now_ns`, interning it.
    #[inline]
    pub fn group_of(&mut self, topic: &[u8], now_ns: u64) -> GroupId {
        let k = self.key_of(topic);
        if let Some(g) = self.exact.get(k.h1, k.h2)
            && let Some(group) = self.get_mut(g)
        {
            group.last_used_ns = group.last_used_ns.max(now_ns);
            // The caller usually records a PUBLISH for this group next (after other
            // work): start fetching the lines that will touch.
            for p in group.stats.hot_lines() {
                prefetch(p);
            }
            return g;
        }
        if let Some(g) = self.cached_route(k, now_ns) {
            return g;
        }
        self.admit(topic, k, now_ns)
    }

    /// The fingerprint of `topic`, with the line its lookup reads first prefetched:
    /// the caller does other work before `group_for_publish`.
    #[inline]
    pub(crate) fn key_prefetched(&self, topic: &[u8]) -> TopicKey {
        let k = self.key_of(topic);
        self.exact.prefetch(k.h1);
        // A topic beyond the exact cap is answered by the route cache instead.
        if let Some(r) = self.route_index(k).and_then(|i| self.routes.get(i)) {
            prefetch((r as *const Route).cast());
        }
        k
    }

    /// `group_of` for a PUBLISH (topic `topic`, fingerprint `k` from
    /// `key_prefetched`, travelling `dir`) that the caller records with
    /// `record_publish` (same time) right after: a topic with an exact group is
    /// answered from the index alone, without touching the group (`record_publish`
    /// marks it used, through the queue that fetches its lines; see `queue`). Other
    /// topics go through `group_of`'s path. Also says, from the same index entry,
    /// whether the group is the exact topic and whether the message takes part in
    /// fan-out matching (`PublishRoute::fanout`).
    #[inline]
    pub(crate) fn group_for_publish(
        &mut self,
        topic: &[u8],
        k: TopicKey,
        dir: Direction,
        now_ns: u64,
    ) -> PublishRoute {
        let outbound = dir == Direction::S2C;
        // Index entries name live groups (eviction removes them first).
        if let Some((g, fanout)) = self.exact.get_for_fanout(k.h1, k.h2, outbound) {
            return PublishRoute {
                g,
                exact: true,
                fanout,
            };
        }
        let g = match self.cached_route(k, now_ns) {
            Some(g) => g,
            None => {
                let g = self.admit(topic, k, now_ns);
                // Admitted as an exact topic: in the index now, its flags start here.
                if let Some((g, fanout)) = self.exact.get_for_fanout(k.h1, k.h2, outbound) {
                    return PublishRoute {
                        g,
                        exact: true,
                        fanout,
                    };
                }
                g
            }
        };
        PublishRoute {
            g,
            exact: false,
            fanout: true,
        }
    }

    /// Whether a new topic could get an exact group at `now_ns` (room, or possibly an
    /// idle group to evict).
    #[inline]
    fn exact_may_admit(&self, now_ns: u64) -> bool {
        self.c.exact_groups < self.max_exact as u64 || now_ns >= self.laps[0].floor_ns
    }

    fn route_index(&self, k: TopicKey) -> Option<usize> {
        if self.routes.is_empty() {
            return None;
        }
        Some((k.h1 as usize) & (self.routes.len() - 1))
    }

    /// The template group a topic was routed to before, if it still is where the slow
    /// path would send it (no exact room could open, the template is live).
    #[inline]
    fn cached_route(&mut self, k: TopicKey, now_ns: u64) -> Option<GroupId> {
        let i = self.route_index(k)?;
        let r = *self.routes.get(i)?;
        if r.gid == 0 || r.h2 != k.h2 || r.tag != (k.h1 >> 32) as u32 {
            return None;
        }
        if self.exact_may_admit(now_ns) {
            return None;
        }
        let g = GroupId(r.gid - 1);
        let group = self.get_mut(g)?;
        if group.kind != GroupKind::Template {
            return None;
        }
        group.last_used_ns = group.last_used_ns.max(now_ns);
        for p in group.stats.hot_lines() {
            prefetch(p);
        }
        self.c.routed_to_template += 1;
        Some(g)
    }

    fn remember_route(&mut self, k: TopicKey, g: GroupId) {
        if self.routes.is_empty() {
            let slots = self.max_exact.saturating_add(self.max_templates);
            let n = slots
                .saturating_mul(4)
                .next_power_of_two()
                .clamp(1024, ROUTE_CACHE_MAX);
            self.routes = vec![Route::default(); n];
        }
        if let Some(i) = self.route_index(k)
            && let Some(r) = self.routes.get_mut(i)
        {
            *r = Route {
                h2: k.h2,
                tag: (k.h1 >> 32) as u32,
                gid: g.0.saturating_add(1),
            };
        }
    }

    #[cold]
    fn admit(&mut self, topic: &[u8], k: TopicKey, now_ns: u64) -> GroupId {
        if topic.len() > MAX_NAME_LEN {
            self.c.too_long += 1;
        } else if self.c.exact_groups < self.max_exact as u64 || self.evict_idle_exact(now_ns) {
            self.c.exact_admitted += 1;
            self.c.exact_groups += 1;
            let g = self.create(topic, GroupKind::Exact, now_ns);
            self.exact.insert(k.h1, k.h2, g);
            return g;
        }
        match self.template_group(topic, now_ns) {
            Some(g) => {
                self.c.routed_to_template += 1;
                if topic.len() <= MAX_NAME_LEN {
                    self.remember_route(k, g);
                }
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
        let stats = GroupStats::new(self.bucket_secs);
        // A group younger than the recorded floor (reordered timestamps) lowers it.
        let lap = &mut self.laps[lap_index(kind)];
        lap.floor_ns = lap.floor_ns.min(now_ns.saturating_add(IDLE_NS));
        let idx = match self.free.pop() {
            Some(i) => i as usize,
            None => {
                // Slots never move (chunks), and never exceed the most groups that
                // can exist.
                self.slots.push(Slot::default())
            }
        };
        let Some(slot) = self.slots.get_mut(idx) else {
            return GroupId(u32::MAX);
        };
        slot.live = true;
        slot.kind = kind;
        slot.last_used_ns = now_ns;
        slot.stats = stats;
        slot.key = key.into();
        slot.lossy_name = lossy_name;
        GroupId((u32::from(slot.generation) << SLOT_BITS) | idx as u32)
    }

    /// Removes the group in slot `idx`, freeing the slot for a new generation; returns
    /// its statistics and key.
    fn take_slot(&mut self, idx: usize) -> Option<(GroupStats, Box<[u8]>)> {
        let slot = self.slots.get_mut(idx).filter(|s| s.live)?;
        slot.live = false;
        let stats = std::mem::replace(&mut slot.stats, GroupStats::empty());
        let key = std::mem::take(&mut slot.key);
        slot.lossy_name = None;
        slot.generation = slot.generation.wrapping_add(1) & GEN_MASK;
        self.free.push(idx as u32);
        Some((stats, key))
    }

    /// CLOCK scan of up to `budget` slots for idle groups of `kind`, evicting them; stops
    /// after the first eviction when `first_only`. Returns how many were evicted. Skipped
    /// while no group of `kind` can be idle yet (see the module doc).
    fn evict_idle(
        &mut self,
        kind: GroupKind,
        now_ns: u64,
        budget: usize,
        first_only: bool,
    ) -> usize {
        let li = lap_index(kind);
        if now_ns < self.laps[li].floor_ns {
            return 0;
        }
        // A group may go: queued updates first (they may also make a group not idle).
        self.apply_queued();
        let mut evicted = 0;
        for _ in 0..budget.min(self.slots.len()) {
            let n = self.slots.len();
            let mut lap = self.laps[li];
            if lap.len != n {
                // The slot vector grew: start the lap over.
                lap.seen = 0;
                lap.len = n;
                lap.oldest = u64::MAX;
            }
            let i = lap.hand % n;
            lap.hand = (i + 1) % n;
            lap.seen += 1;
            let mut idle = false;
            if let Some(g) = self.slots.get(i).filter(|s| s.live)
                && g.kind == kind
            {
                idle = g.last_used_ns.saturating_add(IDLE_NS) <= now_ns;
                lap.oldest = lap.oldest.min(g.last_used_ns);
            }
            if idle {
                lap.seen = 0;
                lap.oldest = u64::MAX;
            } else if lap.seen >= n {
                // A whole lap without an idle group: none can be idle before the
                // oldest one seen reaches the limit.
                lap.floor_ns = if lap.oldest == u64::MAX {
                    now_ns
                } else {
                    lap.oldest.saturating_add(IDLE_NS)
                };
                lap.seen = 0;
                lap.oldest = u64::MAX;
            }
            self.laps[li] = lap;
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
            if now_ns < self.laps[li].floor_ns {
                break;
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
        let Some((stats, key)) = self.take_slot(idx) else {
            return;
        };
        let k = self.key_of(&key);
        self.exact.remove(k.h1, k.h2);
        self.c.exact_groups -= 1;
        self.c.exact_evicted += 1;
        let target = match self.template_group(&key, now_ns) {
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
            t.stats.fold(&stats);
        }
    }

    fn evict_template(&mut self, idx: usize, now_ns: u64) {
        let Some((stats, key)) = self.take_slot(idx) else {
            return;
        };
        self.templ.remove(&key);
        self.c.template_groups -= 1;
        self.c.template_evicted += 1;
        let other = self.other_group(now_ns);
        if let Some(o) = self.get_mut(other) {
            o.stats.fold(&stats);
        }
    }

    #[inline]
    fn get(&self, g: GroupId) -> Option<&Group> {
        let slot = self.slots.get((g.0 & SLOT_MASK) as usize)?;
        if u32::from(slot.generation) != g.0 >> SLOT_BITS || !slot.live {
            return None;
        }
        Some(slot)
    }

    #[inline]
    fn get_mut(&mut self, g: GroupId) -> Option<&mut Group> {
        let slot = self.slots.get_mut((g.0 & SLOT_MASK) as usize)?;
        if u32::from(slot.generation) != g.0 >> SLOT_BITS || !slot.live {
            return None;
        }
        Some(slot)
    }

    /// Whether `g` names a live group.
    pub fn is_live(&self, g: GroupId) -> bool {
        self.get(g).is_some()
    }

    /// Name of a live group (topic, template or `__other__`); "" for a stale id.
    pub fn group_name(&self, g: GroupId) -> &str {
        self.get(g).map_or("", Group::name)
    }

    /// The topic of a live exact group (its name); `None` for other kinds and stale ids.
    pub fn exact_topic(&self, g: GroupId) -> Option<&str> {
        self.get(g)
            .filter(|s| s.kind == GroupKind::Exact)
            .map(Group::name)
    }

    /// Kind of a live group; `Other` for a stale id.
    pub fn group_kind(&self, g: GroupId) -> GroupKind {
        self.get(g).map_or(GroupKind::Other, |g| g.kind)
    }

    /// Visits every live group with its name, kind and statistics (for exporters that
    /// read the sketches themselves). Allocates nothing.
    pub fn for_each_group(&self, mut f: impl FnMut(&str, GroupKind, &GroupStats)) {
        let queued = self.queued_ids();
        for (i, g) in self.slots.iter().enumerate().filter(|(_, s)| s.live) {
            f(g.name(), g.kind, &self.view_in(i, g, Some(&queued)));
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
        self.apply_queued();
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

    /// `on_publish` for a group returned by `group_for_publish` at `ts_ns`, queued (same
    /// results; see `queue`): also marks the group used at that time.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn record_publish(
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
        self.queue(Queued {
            g,
            u: Update::Publish(info),
        });
    }

    /// A latency sample for group `g`; kept per group for `PublishQos1`, `PublishQos2`
    /// and `Fanout`, other exchanges are ignored.
    pub fn on_latency(&mut self, g: GroupId, ex: Exchange, seconds: f64) {
        self.apply_queued();
        match self.get_mut(g) {
            Some(group) => group.stats.on_latency(ex, seconds),
            None => self.c.stale_ids += 1,
        }
    }

    /// `on_latency`, queued with the PUBLISHes of `record_publish` (same results; see
    /// `queue`).
    #[inline]
    pub(crate) fn record_latency(&mut self, g: GroupId, ex: Exchange, seconds: f64) {
        // Samples a group does not keep (QoS 2 legs) are dropped here, not queued: a
        // queued update costs its prefetches and a pass of `apply_queued` whatever it is.
        if stats::latency_slot(ex).is_none() {
            return;
        }
        self.queue(Queued {
            g,
            u: Update::Latency(ex, seconds),
        });
    }

    /// Housekeeping: while a table is full, evicts idle groups (up to `TICK_SCAN` slots
    /// looked at per table) so new topics find room.
    pub fn tick(&mut self, now_ns: u64) {
        self.apply_queued();
        if self.c.exact_groups >= self.max_exact as u64 {
            self.evict_idle(GroupKind::Exact, now_ns, TICK_SCAN, false);
        }
        if self.c.template_groups >= self.max_templates as u64 {
            self.evict_idle(GroupKind::Template, now_ns, TICK_SCAN, false);
        }
    }

    /// Statistics of every live group.
    pub fn snapshot(&self, now_ns: u64) -> Vec<TopicSnapshot> {
        let mut out = Vec::with_capacity(self.len());
        let queued = self.queued_ids();
        out.extend(
            self.slots
                .iter()
                .enumerate()
                .filter(|(_, s)| s.live)
                .map(|(i, g)| {
                    self.view_in(i, g, Some(&queued))
                        .snapshot(g.name(), g.kind, now_ns)
                }),
        );
        out
    }

    /// Statistics of one live group.
    pub fn snapshot_of(&self, g: GroupId, now_ns: u64) -> Option<TopicSnapshot> {
        let idx = (g.0 & SLOT_MASK) as usize;
        self.get(g)
            .map(|grp| self.view(idx, grp).snapshot(grp.name(), grp.kind, now_ns))
    }

    pub fn counters(&self) -> TopicCounters {
        TopicCounters {
            mem_bytes: self.mem_bytes() as u64,
            ..self.c.clone()
        }
    }

    /// Estimated bytes of all topic state: slots (groups are inline), the groups' heap
    /// parts and names, both maps (keys, values and an allowance for the table's
    /// control bytes) and the routed-topic cache.
    pub fn mem_bytes(&self) -> usize {
        let exact_entry = 16;
        let templ_entry = std::mem::size_of::<(Box<[u8]>, GroupId)>() + 1;
        let groups: usize = self
            .slots
            .iter()
            .filter(|s| s.live)
            .map(|g| {
                g.key.len() + g.lossy_name.as_ref().map_or(0, |n| n.len()) + g.stats.mem_bytes()
                    - std::mem::size_of::<GroupStats>()
            })
            .sum();
        let templ_keys: usize = self.templ.keys().map(|k| k.len()).sum();
        std::mem::size_of::<Self>()
            + self.slots.capacity() * std::mem::size_of::<Slot>()
            + self.free.capacity() * 4
            + groups
            + self.exact.capacity() * exact_entry
            + self.templ.capacity() * templ_entry
            + templ_keys
            + self.routes.capacity() * std::mem::size_of::<Route>()
            + self.scratch.capacity()
            + self.queue_bytes()
            + self
                .templates
                .iter()
                .map(|f| 64 + 2 * f.text().len())
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_layout;
