//! Transparent huge pages for the heap: the binary re-executes itself once with glibc's
//! `glibc.malloc.hugetlb=1` tunable when the kernel gives huge pages only on request
//! (`madvise` mode, the default of Debian and Ubuntu, so of most AKS nodes).
//!
//! Why. The observation state is tens of MB touched at random (10 000 topic groups,
//! their sketch buckets, the fan-out and request tables): with 4 KiB pages nearly every
//! PUBLISH misses the TLB several times. With 2 MiB pages the replay benchmark's
//! observation cost fell by about a sixth (best of 15 interleaved runs: 534 → 491 ms of
//! CPU for the 1M-packet capture) for 8 % more peak memory (129 → 140 MB). mimalloc
//! (which maps huge pages itself) was as fast but peaked at 192 MB.
//!
//! How. glibc reads tunables only when a process starts, so the setting cannot be made
//! from inside; `exec` replaces the process image (same pid, arguments, descriptors).
//! Nothing happens when the tunable is already present (the operator chose a value),
//! when this process is the re-executed one (`MQSCOPE_HUGEPAGES_REEXEC` in its
//! environment), when the kernel gives huge pages to every mapping (`always`) or to
//! none (`never`), when `MQSCOPE_NO_HUGEPAGES` is set, or on other platforms; if `exec`
//! fails the program carries on as it is.
//!
//! Not in secure-execution mode. The container image gives the binary `cap_net_raw` as
//! a file capability (to capture as a non-root user), which runs it in glibc's secure
//! mode: the loader strips this tunable from `GLIBC_TUNABLES`, so the re-executed
//! process would not see it and would exec again, forever. That mode is detected
//! (`AT_SECURE`) and left alone, and the marker variable stops any other way back into
//! the loop.
//!
//! The sidecar instead. There, `mqscope run` calls `advise_heap` at start and every
//! `ADVISE_EVERY` when the tunable is not in force: it marks the process's large
//! anonymous mappings (the `[heap]` and big `mmap`s, not thread stacks) with
//! `MADV_HUGEPAGE`; ranges not yet touched then fault in as huge pages and khugepaged
//! collapses the touched ones over the following tens of seconds. In a replay
//! experiment that advised every 5 ms (with a larger heap top pad) this got 47 MB of huge
//! pages and most of the tunable's gain; a long-running sidecar gets the rest from
//! khugepaged.

/// The environment variable glibc reads its tunables from.
const VAR: &str = "GLIBC_TUNABLES";
/// The tunable's name, and the setting: back `malloc`'s memory with transparent huge
/// pages (glibc 2.35+; an older glibc ignores it).
const TUNABLE_NAME: &str = "glibc.malloc.hugetlb";
const TUNABLE: &str = "glibc.malloc.hugetlb=1";
/// Set (to anything) to keep the default pages.
pub const OPT_OUT: &str = "MQSCOPE_NO_HUGEPAGES";
/// Set in the re-executed process: never re-execute twice.
pub const MARKER: &str = "MQSCOPE_HUGEPAGES_REEXEC";
/// How often `mqscope run` re-advises its mappings (new ones appear as the heap grows).
pub const ADVISE_EVERY: std::time::Duration = std::time::Duration::from_secs(10);
/// Mappings smaller than this are left alone: thread stacks (2 MiB) and small `mmap`s,
/// where a huge page would mostly hold untouched memory.
const MIN_ADVISE: u64 = 8 << 20;
const HUGE: u64 = 2 << 20;

/// The 2 MiB-aligned ranges to advise from `/proc/self/maps` text: private read-write
/// anonymous mappings (no file, or the `[heap]`) of at least `MIN_ADVISE` bytes.
pub fn ranges_to_advise(maps: &str) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    for line in maps.lines() {
        let mut f = line.split_whitespace();
        let (Some(range), Some(perms), Some(offset), Some(_dev), Some(inode)) =
            (f.next(), f.next(), f.next(), f.next(), f.next())
        else {
            continue;
        };
        let path = f.next();
        if perms != "rw-p" || inode != "0" || u64::from_str_radix(offset, 16) != Ok(0) {
            continue;
        }
        if path.is_some_and(|p| p != "[heap]") {
            continue;
        }
        let Some((a, b)) = range.split_once('-') else {
            continue;
        };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if b.saturating_sub(a) < MIN_ADVISE {
            continue;
        }
        let start = a.div_ceil(HUGE).saturating_mul(HUGE);
        let end = b / HUGE * HUGE;
        if end > start {
            out.push((start, end));
        }
    }
    out
}

/// The kernel's transparent-huge-page mode line (the bracketed word is the mode;
/// `madvise`, huge pages on request, is the one where asking changes anything).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn thp_mode() -> String {
    std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default()
}

/// Secure-execution mode (setuid, or file capabilities): glibc ignores tunables.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn secure_mode() -> bool {
    // SAFETY: `getauxval` only reads the auxiliary vector the kernel passed in.
    unsafe { libc::getauxval(libc::AT_SECURE) != 0 }
}

/// Whether `mqscope run` should call `advise_heap`: the kernel gives huge pages on
/// request and no `glibc.malloc.hugetlb` tunable is in force (secure mode strips it;
/// an operator's own value is respected), unless opted out.
pub fn should_advise() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os(OPT_OUT).is_some() || !thp_mode().contains("[madvise]") {
            return false;
        }
        // Outside secure mode a `glibc.malloc.hugetlb` in the environment is in force
        // (ours, or the operator's choice, which stands).
        let set = std::env::var_os(VAR).is_some_and(|v| v.to_string_lossy().contains(TUNABLE_NAME));
        secure_mode() || !set
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Marks the large anonymous mappings of this process `MADV_HUGEPAGE` (see the module
/// doc); returns the bytes advised. Errors (an unreadable maps file, a refused
/// `madvise`) only mean fewer huge pages.
pub fn advise_heap() -> u64 {
    #[cfg(target_os = "linux")]
    {
        let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
        let mut n = 0;
        for (start, end) in ranges_to_advise(&maps) {
            let len = (end - start) as usize;
            // SAFETY: advice only (no memory is changed or freed), on whole pages of a
            // mapping this process owns; a range that went away since the maps file was
            // read gets ENOMEM, which is ignored.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_HUGEPAGE) };
            if rc == 0 {
                n += end - start;
            }
        }
        n
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// The `GLIBC_TUNABLES` value to re-execute with, if any: `current` is its value now
/// (`None`: unset; `Some(None)`: not UTF-8), `thp_mode` the content of
/// `/sys/kernel/mm/transparent_hugepage/enabled` (the bracketed word is the mode).
pub fn tunables_to_set(
    current: Option<Option<&str>>,
    thp_mode: &str,
    opt_out: bool,
) -> Option<String> {
    if opt_out || !thp_mode.contains("[madvise]") {
        return None;
    }
    match current {
        None => Some(TUNABLE.to_owned()),
        Some(Some(v)) if v.trim().is_empty() => Some(TUNABLE.to_owned()),
        Some(Some(v)) if v.contains(TUNABLE_NAME) => None,
        // Tunables are colon-separated.
        Some(Some(v)) => Some(format!("{v}:{TUNABLE}")),
        // Not UTF-8: leave the operator's setting alone.
        Some(None) => None,
    }
}

/// Re-executes the running binary with huge pages for the heap when that helps (see
/// the module doc). Returns only if it did not re-execute. Call it first thing in
/// `main`, never from a library caller (it replaces the process).
pub fn reexec_with_huge_pages() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::os::unix::process::CommandExt;
        if secure_mode() || std::env::var_os(MARKER).is_some() {
            return;
        }
        let opt_out = std::env::var_os(OPT_OUT).is_some();
        let cur = std::env::var_os(VAR);
        let current = cur.as_ref().map(|v| v.to_str());
        let Some(value) = tunables_to_set(current, &thp_mode(), opt_out) else {
            return;
        };
        let Ok(exe) = std::env::current_exe() else {
            return;
        };
        let mut args = std::env::args_os();
        let arg0 = args.next().unwrap_or_else(|| exe.clone().into_os_string());
        // `exec` returns only on failure; then carry on with the default pages.
        let _err = std::process::Command::new(&exe)
            .arg0(arg0)
            .args(args)
            .env(VAR, value)
            .env(MARKER, "1")
            .exec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advises_big_anonymous_mappings_only() {
        let maps = "\
55d0c0000000-55d0c0021000 r--p 00000000 fd:01 123 /usr/local/bin/mqscope
55d0c2000000-55d0c4300000 rw-p 00000000 00:00 0 [heap]
7f0000100000-7f0000d00000 rw-p 00000000 00:00 0
7f0001000000-7f0001200000 rw-p 00000000 00:00 0
7f0002000000-7f0003000000 rw-p 00000000 fd:01 77 /dev/shm/x
7f0004000000-7f0005000000 r--p 00000000 00:00 0
7ffd00000000-7ffd01000000 rw-p 00000000 00:00 0 [stack]
garbage line
";
        assert_eq!(
            ranges_to_advise(maps),
            vec![
                // The heap, aligned inward to 2 MiB.
                (0x55d0_c200_0000, 0x55d0_c420_0000),
                // 12 MiB anonymous, starting mid-2MiB.
                (0x7f00_0020_0000, 0x7f00_00c0_0000),
            ]
        );
    }

    /// A fresh 64 MiB allocation (its own mapping) comes out marked for huge pages.
    #[cfg(target_os = "linux")]
    #[test]
    fn advised_mapping_carries_the_flag() {
        let v = vec![1u8; 64 << 20];
        let at = v.as_ptr() as u64;
        assert!(advise_heap() >= 32 << 20);
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut inside = false;
        let mut flagged = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ')
                && let Some((a, b)) = range.split_once('-')
                && let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16))
            {
                inside = a <= at + (32 << 20) && at + (32 << 20) < b;
            } else if inside && line.starts_with("VmFlags:") {
                flagged |= line.split_whitespace().any(|f| f == "hg");
            }
        }
        assert!(
            flagged,
            "the middle of the allocation is in an `hg` mapping"
        );
        drop(v);
    }

    const MADVISE: &str = "always [madvise] never\n";

    #[test]
    fn sets_the_tunable_only_in_madvise_mode() {
        assert_eq!(
            tunables_to_set(None, MADVISE, false).as_deref(),
            Some(TUNABLE)
        );
        assert_eq!(
            tunables_to_set(None, "[always] madvise never\n", false),
            None
        );
        assert_eq!(
            tunables_to_set(None, "always madvise [never]\n", false),
            None
        );
        assert_eq!(tunables_to_set(None, "", false), None);
        assert_eq!(tunables_to_set(None, MADVISE, true), None);
    }

    #[test]
    fn keeps_the_operators_tunables_and_never_loops() {
        assert_eq!(
            tunables_to_set(Some(Some("glibc.malloc.arena_max=2")), MADVISE, false).as_deref(),
            Some("glibc.malloc.arena_max=2:glibc.malloc.hugetlb=1")
        );
        // Already there (the re-executed process, or the operator's own choice).
        assert_eq!(tunables_to_set(Some(Some(TUNABLE)), MADVISE, false), None);
        assert_eq!(
            tunables_to_set(Some(Some("glibc.malloc.hugetlb=0")), MADVISE, false),
            None
        );
        assert_eq!(
            tunables_to_set(Some(Some(" ")), MADVISE, false).as_deref(),
            Some(TUNABLE)
        );
        assert_eq!(tunables_to_set(Some(None), MADVISE, false), None);
    }
}
