//! The memory layout the hot path relies on (see `Slot` and `GroupStats`).

use std::mem::offset_of;

use super::Slot;
use super::stats::GroupStats;

#[test]
fn layout_keeps_publish_lines_together() {
    assert_eq!(std::mem::align_of::<Slot>(), 64);
    // Header: what `group_of` reads and writes, then the statistics.
    assert!(offset_of!(Slot, last_used_ns) < 16);
    assert_eq!(offset_of!(Slot, stats), 16);
    let at = |off: usize| 16 + off;
    // Every PUBLISH: lines 0 and 1.
    assert!(
        at(GroupStats::offset_head_end()) <= 64,
        "ring head and times in line 0"
    );
    let (d0, d1) = GroupStats::offset_deltas();
    assert!(at(d0) >= 64 && at(d1) <= 128, "keys and deltas in line 1");
    // Inbound: lines 2 and 3 (the sketch's counters and bucket pointer: its first 64
    // bytes).
    let (a0, s0) = GroupStats::offset_arrivals_sketch();
    assert!(
        at(a0) >= 128 && at(s0) + 64 <= 256,
        "arrivals and sketch head in lines 2-3"
    );
}
