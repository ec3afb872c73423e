//! A cache prefetch hint, for the few places that know an address well before they
//! read it (topic groups in the update queue, the fan-out index).

/// Hints the CPU to fetch the cache line at `p` (no effect on results; a no-op on
/// targets without a stable prefetch instruction).
#[inline(always)]
pub(crate) fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` only hints the cache; it never faults or reads into
    // program state, whatever the address (callers pass addresses of live data).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
