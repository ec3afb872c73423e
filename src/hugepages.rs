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
//! the loop. The hardened sidecar therefore runs with 4 KiB pages; a root or
//! capability-less run (replay, the demo, `mqscope run` as root) gets huge pages.

/// The environment variable glibc reads its tunables from.
const VAR: &str = "GLIBC_TUNABLES";
/// The tunable: back `malloc`'s memory with transparent huge pages (glibc 2.35+; an
/// older glibc ignores it).
const TUNABLE: &str = "glibc.malloc.hugetlb=1";
/// Set (to anything) to keep the default pages.
pub const OPT_OUT: &str = "MQSCOPE_NO_HUGEPAGES";
/// Set in the re-executed process: never re-execute twice.
pub const MARKER: &str = "MQSCOPE_HUGEPAGES_REEXEC";

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
        Some(Some(v)) if v.contains("glibc.malloc.hugetlb") => None,
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
        // SAFETY: `getauxval` only reads the auxiliary vector the kernel passed in.
        let secure = unsafe { libc::getauxval(libc::AT_SECURE) } != 0;
        if secure || std::env::var_os(MARKER).is_some() {
            return;
        }
        let opt_out = std::env::var_os(OPT_OUT).is_some();
        let cur = std::env::var_os(VAR);
        let current = cur.as_ref().map(|v| v.to_str());
        let mode = std::fs::read_to_string("/sys/kernel/mm/transparent_hugepage/enabled")
            .unwrap_or_default();
        let Some(value) = tunables_to_set(current, &mode, opt_out) else {
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
