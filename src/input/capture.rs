//! Live capture: one dedicated thread owns the libpcap handle, reads frames into batches
//! and hands them to the processing side over a bounded channel. It never waits for the
//! consumer: when the channel is full the batch is dropped and counted, so a slow consumer
//! costs observations, never the kernel buffer (whose own drops are read from pcap's
//! counters every second).
//!
//! Batches are recycled through a second channel, so steady-state capture allocates
//! nothing; at most `channel_batches + 2` batches ever exist, each of at most
//! [`BATCH_MAX_BYTES`] plus one frame.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::capture::link::LinkType;
use crate::config::CaptureConfig;

/// Where one frame lies in its batch's buffer.
#[derive(Clone, Copy, Debug)]
struct FrameRef {
    ts_ns: u64,
    start: usize,
    len: usize,
}

/// Frames read in one go: their bytes back to back in one buffer.
#[derive(Debug, Default)]
pub struct Batch {
    data: Vec<u8>,
    frames: Vec<FrameRef>,
}

impl Batch {
    fn with_capacity(frames: usize, bytes: usize) -> Batch {
        Batch {
            data: Vec::with_capacity(bytes),
            frames: Vec::with_capacity(frames),
        }
    }

    fn push(&mut self, ts_ns: u64, frame: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(frame);
        self.frames.push(FrameRef {
            ts_ns,
            start,
            len: frame.len(),
        });
    }

    fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// `(timestamp ns, captured bytes)` of each frame, in capture order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, &[u8])> + '_ {
        self.frames.iter().map(|f| {
            (
                f.ts_ns,
                self.data.get(f.start..f.start + f.len).unwrap_or(&[]),
            )
        })
    }
}

/// Counters shared between the capture thread and readers (snapshots, logs).
#[derive(Debug, Default)]
pub struct CaptureCounters {
    /// Frames read from libpcap.
    pub frames: AtomicU64,
    /// Captured bytes of those frames.
    pub bytes: AtomicU64,
    pub batches_sent: AtomicU64,
    /// Batches (and their frames) dropped because the consumer's channel was full.
    pub batches_dropped: AtomicU64,
    pub frames_dropped: AtomicU64,
    /// libpcap read errors (the capture continues after each).
    pub read_errors: AtomicU64,
    /// libpcap's own counters since start, widened to 64 bits (libpcap's wrap at 2^32).
    /// On Linux loopback `pcap_received` also counts the outgoing copies libpcap discards
    /// (every packet appears twice there), so it can exceed `frames`.
    pub pcap_received: AtomicU64,
    /// Dropped by the kernel: no room in the capture buffer.
    pub pcap_dropped: AtomicU64,
    /// Dropped by the interface or its driver.
    pub pcap_if_dropped: AtomicU64,
    pub stats_errors: AtomicU64,
}

/// Plain copy of [`CaptureCounters`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CaptureCountersSnapshot {
    pub frames: u64,
    pub bytes: u64,
    pub batches_sent: u64,
    pub batches_dropped: u64,
    pub frames_dropped: u64,
    pub read_errors: u64,
    pub pcap_received: u64,
    pub pcap_dropped: u64,
    pub pcap_if_dropped: u64,
    pub stats_errors: u64,
}

impl CaptureCounters {
    pub fn snapshot(&self) -> CaptureCountersSnapshot {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CaptureCountersSnapshot {
            frames: g(&self.frames),
            bytes: g(&self.bytes),
            batches_sent: g(&self.batches_sent),
            batches_dropped: g(&self.batches_dropped),
            frames_dropped: g(&self.frames_dropped),
            read_errors: g(&self.read_errors),
            pcap_received: g(&self.pcap_received),
            pcap_dropped: g(&self.pcap_dropped),
            pcap_if_dropped: g(&self.pcap_if_dropped),
            stats_errors: g(&self.stats_errors),
        }
    }
}

/// Why capture could not start.
#[derive(Debug)]
pub enum CaptureError {
    /// The process lacks the capability to open a packet socket.
    Permission {
        interface: String,
        promiscuous: bool,
        detail: String,
    },
    NoSuchDevice {
        interface: String,
        detail: String,
    },
    /// The BPF filter built from the ports did not compile (a bug, or an exotic link type).
    Filter {
        filter: String,
        detail: String,
    },
    UnsupportedLink {
        interface: String,
        dlt: i32,
    },
    Other {
        interface: String,
        detail: String,
    },
}

impl CaptureError {
    pub fn is_permission(&self) -> bool {
        matches!(self, CaptureError::Permission { .. })
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Permission {
                interface,
                promiscuous,
                detail,
            } => {
                write!(
                    f,
                    "cannot capture on interface {interface:?}: permission denied ({detail}). \
                     Live capture needs the CAP_NET_RAW capability"
                )?;
                if *promiscuous {
                    f.write_str(" and, for promiscuous mode, CAP_NET_ADMIN")?;
                }
                f.write_str(
                    ": run as root, grant it to the binary (setcap cap_net_raw+ep mqscope), \
                     or add NET_RAW to the container's securityContext.capabilities.add; \
                     --no-capture runs on the broker's $SYS metrics and events alone",
                )
            }
            CaptureError::NoSuchDevice { interface, detail } => write!(
                f,
                "cannot capture on interface {interface:?}: no such interface ({detail})"
            ),
            CaptureError::Filter { filter, detail } => {
                write!(f, "capture filter {filter:?} rejected: {detail}")
            }
            CaptureError::UnsupportedLink { interface, dlt } => write!(
                f,
                "interface {interface:?} has link type {dlt}, which mqscope cannot decode"
            ),
            CaptureError::Other { interface, detail } => {
                write!(f, "cannot capture on interface {interface:?}: {detail}")
            }
        }
    }
}

impl std::error::Error for CaptureError {}

/// The BPF filter for the configured ports: only the broker's TCP traffic reaches user
/// space. Content detection needs every TCP flow's first bytes, so then it is all of TCP.
pub fn bpf_filter(cfg: &CaptureConfig) -> String {
    let mut ports: Vec<u16> = cfg.ports.iter().chain(&cfg.tls_ports).copied().collect();
    ports.sort_unstable();
    ports.dedup();
    if cfg.detect_by_content || ports.is_empty() {
        return "tcp".into();
    }
    let alts: Vec<String> = ports.iter().map(|p| format!("port {p}")).collect();
    format!("tcp and ({})", alts.join(" or "))
}

/// A running capture. Dropping it stops the thread (without waiting for it).
pub struct LiveCapture {
    /// Batches of frames; disconnected once the thread has stopped and sent its last one.
    pub rx: Receiver<Batch>,
    recycle: SyncSender<Batch>,
    pub link: LinkType,
    pub dlt: i32,
    pub filter: String,
    pub counters: Arc<CaptureCounters>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl LiveCapture {
    /// Opens the interface, installs the filter and starts the thread. Every error that
    /// can be seen at open time is returned here, so `mqscope run` fails at start.
    pub fn start(cfg: &CaptureConfig) -> Result<LiveCapture, CaptureError> {
        let (cap, dlt, link, filter) = open(cfg)?;
        let (tx, rx) = sync_channel(cfg.channel_batches.max(1));
        let (recycle, recycled) = sync_channel(cfg.channel_batches.max(1) + 2);
        let counters = Arc::new(CaptureCounters::default());
        let stop = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            cap,
            out: Handoff {
                tx,
                recycled,
                counters: counters.clone(),
                stop: stop.clone(),
                batch_frames: cfg.batch_frames.max(1),
                // Room for a full batch of average frames; grows (once) for jumbo traffic.
                batch_bytes: cfg.batch_frames.max(1).saturating_mul(512),
            },
            wait_ms: i32::try_from(cfg.read_timeout_ms).unwrap_or(100).max(1),
            ns_scale: NS_SCALE,
        };
        let thread = std::thread::Builder::new()
            .name("mqscope-capture".into())
            .spawn(move || worker.run())
            .map_err(|e| CaptureError::Other {
                interface: cfg.interface.clone(),
                detail: format!("cannot start capture thread: {e}"),
            })?;
        Ok(LiveCapture {
            rx,
            recycle,
            link,
            dlt,
            filter,
            counters,
            stop,
            thread: Some(thread),
        })
    }

    /// Gives a processed batch back for reuse (dropped if the pool is full).
    pub fn recycle(&self, b: Batch) {
        let _ = self.recycle.try_send(b);
    }

    /// Asks the thread to stop: it sends what it holds, reads the final counters and exits
    /// within one read timeout; `rx` then disconnects once drained.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for the thread to exit, up to `timeout`. True if it did.
    pub fn join(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(t) = &self.thread {
            if t.is_finished() {
                let _ = self.thread.take().map(JoinHandle::join);
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }

    /// Receives the next batch, waiting up to `timeout`.
    pub fn recv(&self, timeout: Duration) -> Result<Batch, RecvTimeoutError> {
        self.rx.recv_timeout(timeout)
    }
}

impl Drop for LiveCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Nanoseconds per unit of the timestamps' fractional field: libpcap gives nanoseconds
/// where we can ask for them (Linux), microseconds elsewhere.
#[cfg(target_os = "linux")]
const NS_SCALE: u64 = 1;
#[cfg(not(target_os = "linux"))]
const NS_SCALE: u64 = 1000;

fn open(
    cfg: &CaptureConfig,
) -> Result<(pcap::Capture<pcap::Active>, i32, LinkType, String), CaptureError> {
    let iface = cfg.interface.clone();
    let other = |e: pcap::Error| CaptureError::Other {
        interface: iface.clone(),
        detail: e.to_string(),
    };
    let inactive = pcap::Capture::from_device(cfg.interface.as_str()).map_err(other)?;
    let inactive = inactive
        .snaplen(i32::try_from(cfg.snaplen).unwrap_or(i32::MAX))
        .buffer_size(i32::try_from(cfg.buffer_bytes).unwrap_or(i32::MAX))
        .promisc(cfg.promiscuous)
        // Not immediate mode: on Linux that makes libpcap fall back to TPACKET_V2, whose
        // ring has one fixed slot per frame sized for the snaplen (~64 KiB on `lo`), so the
        // 16 MiB buffer held only ~250 frames and bursts of small MQTT frames overflowed it
        // (72k kernel drops in 20 s under `benches/live_load.sh`). TPACKET_V3 packs frames
        // into blocks by their real size; the kernel hands a partly filled block over after
        // the read timeout, which bounds the delivery delay. libpcap's timeout does not
        // fire on an idle interface, so reads are non-blocking and the thread waits in
        // poll(2) with its own timeout: that is how it sees the stop flag and flushes
        // partial batches at low rates.
        .immediate_mode(false)
        .timeout(i32::try_from(cfg.read_timeout_ms).unwrap_or(100).max(1));
    #[cfg(target_os = "linux")]
    let inactive = inactive.precision(pcap::Precision::Nano);
    let mut cap = inactive.open().map_err(|e| classify_open_error(cfg, e))?;
    let dlt = cap.get_datalink().0;
    let Some(link) = LinkType::from_dlt(dlt) else {
        return Err(CaptureError::UnsupportedLink {
            interface: iface,
            dlt,
        });
    };
    let filter = bpf_filter(cfg);
    cap.filter(&filter, true)
        .map_err(|e| CaptureError::Filter {
            filter: filter.clone(),
            detail: e.to_string(),
        })?;
    let cap = cap.setnonblock().map_err(|e| CaptureError::Other {
        interface: iface.clone(),
        detail: format!("cannot set non-blocking mode: {e}"),
    })?;
    Ok((cap, dlt, link, filter))
}

fn classify_open_error(cfg: &CaptureConfig, e: pcap::Error) -> CaptureError {
    let detail = e.to_string();
    let lower = detail.to_ascii_lowercase();
    let interface = cfg.interface.clone();
    // libpcap's texts for PCAP_ERROR_PERM_DENIED and PCAP_ERROR_NO_SUCH_DEVICE; the crate
    // passes the text, not the code.
    if lower.contains("permission") || lower.contains("operation not permitted") {
        CaptureError::Permission {
            interface,
            promiscuous: cfg.promiscuous,
            detail,
        }
    } else if lower.contains("no such device") || lower.contains("doesn't exist") {
        CaptureError::NoSuchDevice { interface, detail }
    } else {
        CaptureError::Other { interface, detail }
    }
}

struct Worker {
    cap: pcap::Capture<pcap::Active>,
    out: Handoff,
    wait_ms: i32,
    ns_scale: u64,
}

/// The capture thread's side of the channel: batch reuse, drop-on-full and its counting.
struct Handoff {
    tx: SyncSender<Batch>,
    recycled: Receiver<Batch>,
    counters: Arc<CaptureCounters>,
    stop: Arc<AtomicBool>,
    batch_frames: usize,
    batch_bytes: usize,
}

/// How long a partly filled batch may wait for more frames (in capture time).
const BATCH_MAX_AGE_NS: u64 = 20_000_000;
/// Bytes after which a batch is handed on whatever its frame count: bounds the memory held
/// in flight to about `channel_batches` × (this + one snaplen), even with jumbo frames.
pub const BATCH_MAX_BYTES: usize = 512 * 1024;
const STATS_EVERY: Duration = Duration::from_secs(1);

impl Handoff {
    fn fresh_batch(&self) -> Batch {
        match self.recycled.try_recv() {
            Ok(mut b) => {
                b.clear();
                b
            }
            Err(_) => Batch::with_capacity(self.batch_frames, self.batch_bytes),
        }
    }

    /// Hands a batch over without waiting; a full channel drops it (counted) and the
    /// buffer is kept for the next one.
    fn send(&self, batch: Batch) -> Batch {
        let n = batch.len() as u64;
        match self.tx.try_send(batch) {
            Ok(()) => {
                self.counters.batches_sent.fetch_add(1, Ordering::Relaxed);
                self.fresh_batch()
            }
            Err(TrySendError::Full(mut b)) => {
                self.counters
                    .batches_dropped
                    .fetch_add(1, Ordering::Relaxed);
                self.counters.frames_dropped.fetch_add(n, Ordering::Relaxed);
                b.clear();
                b
            }
            Err(TrySendError::Disconnected(mut b)) => {
                // The consumer is gone: nothing to do but stop.
                self.stop.store(true, Ordering::Relaxed);
                b.clear();
                b
            }
        }
    }

    /// At shutdown the consumer is draining, so this send may wait: the last frames are
    /// worth it.
    fn send_final(&self, batch: Batch) -> Batch {
        let n = batch.len() as u64;
        if self.tx.send(batch).is_ok() {
            self.counters.batches_sent.fetch_add(1, Ordering::Relaxed);
        } else {
            self.counters.frames_dropped.fetch_add(n, Ordering::Relaxed);
        }
        self.fresh_batch()
    }
}

impl Worker {
    fn run(mut self) {
        let out = &self.out;
        let mut batch = out.fresh_batch();
        let mut first_ts = 0u64;
        let mut last_stats = Instant::now();
        let mut base = PcapBase::default();
        while !out.stop.load(Ordering::Relaxed) {
            match self.cap.next_packet() {
                Ok(pkt) => {
                    let ts_ns = frame_ts_ns(pkt.header, self.ns_scale);
                    count(&out.counters, pkt.data.len());
                    if batch.is_empty() {
                        first_ts = ts_ns;
                    }
                    batch.push(ts_ns, pkt.data);
                    if batch.len() >= out.batch_frames
                        || batch.data.len() >= BATCH_MAX_BYTES
                        || ts_ns.saturating_sub(first_ts) >= BATCH_MAX_AGE_NS
                    {
                        batch = out.send(batch);
                    }
                }
                // Non-blocking: nothing ready. Hand over what we hold, then sleep until a
                // frame arrives or the timeout passes.
                Err(pcap::Error::TimeoutExpired) => {
                    if !batch.is_empty() {
                        batch = out.send(batch);
                    }
                    wait_readable(&self.cap, self.wait_ms);
                }
                Err(_) => {
                    out.counters.read_errors.fetch_add(1, Ordering::Relaxed);
                    // A persistent error (interface gone) must not spin a core.
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            if last_stats.elapsed() >= STATS_EVERY {
                last_stats = Instant::now();
                base.update(&mut self.cap, &out.counters);
            }
        }
        // Shutdown: what the kernel already holds was on the wire before the stop, so it is
        // read too (a clean stop must not lose the last packets), bounded in frames and
        // time on a busy interface.
        let deadline = Instant::now() + Duration::from_millis(500);
        // The kernel hands over its partly filled block (TPACKET_V3) within one read
        // timeout: wait for it once when nothing is readable, then stop at the next lull.
        let mut waited = false;
        for _ in 0..1_000_000 {
            let pkt = match self.cap.next_packet() {
                Ok(pkt) => pkt,
                Err(pcap::Error::TimeoutExpired) if !waited => {
                    waited = true;
                    wait_readable(&self.cap, self.wait_ms);
                    continue;
                }
                Err(_) => break,
            };
            let ts_ns = frame_ts_ns(pkt.header, self.ns_scale);
            let len = pkt.data.len();
            batch.push(ts_ns, pkt.data);
            count(&out.counters, len);
            if batch.len() >= out.batch_frames || batch.data.len() >= BATCH_MAX_BYTES {
                batch = out.send_final(batch);
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        if !batch.is_empty() {
            out.send_final(batch);
        }
        base.update(&mut self.cap, &out.counters);
    }
}

fn count(c: &CaptureCounters, bytes: usize) {
    c.frames.fetch_add(1, Ordering::Relaxed);
    c.bytes.fetch_add(bytes as u64, Ordering::Relaxed);
}

fn frame_ts_ns(h: &pcap::PacketHeader, ns_scale: u64) -> u64 {
    (h.ts.tv_sec.max(0) as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add((h.ts.tv_usec.max(0) as u64).saturating_mul(ns_scale))
}

#[cfg(unix)]
fn wait_readable(cap: &pcap::Capture<pcap::Active>, timeout_ms: i32) {
    use std::os::unix::io::AsRawFd;
    let mut p = libc::pollfd {
        fd: cap.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid, initialised pollfd on the stack and a count of 1. The result is
    // not needed: readable, timed out or interrupted, the caller just reads again.
    unsafe {
        libc::poll(&mut p, 1, timeout_ms);
    }
}

#[cfg(not(unix))]
fn wait_readable(_cap: &pcap::Capture<pcap::Active>, timeout_ms: i32) {
    std::thread::sleep(Duration::from_millis(timeout_ms as u64));
}

/// Widens libpcap's 32-bit counters: adds the wrapping difference since the last read.
#[derive(Default)]
struct PcapBase {
    last: Option<(u32, u32, u32)>,
}

impl PcapBase {
    fn update(&mut self, cap: &mut pcap::Capture<pcap::Active>, c: &CaptureCounters) {
        let s = match cap.stats() {
            Ok(s) => s,
            Err(_) => {
                c.stats_errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        let (r0, d0, i0) = self.last.unwrap_or((0, 0, 0));
        c.pcap_received
            .fetch_add(u64::from(s.received.wrapping_sub(r0)), Ordering::Relaxed);
        c.pcap_dropped
            .fetch_add(u64::from(s.dropped.wrapping_sub(d0)), Ordering::Relaxed);
        c.pcap_if_dropped
            .fetch_add(u64::from(s.if_dropped.wrapping_sub(i0)), Ordering::Relaxed);
        self.last = Some((s.received, s.dropped, s.if_dropped));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_from_ports() {
        let mut c = CaptureConfig {
            ports: vec![1884, 1883],
            tls_ports: vec![8883, 1883],
            ..CaptureConfig::default()
        };
        assert_eq!(
            bpf_filter(&c),
            "tcp and (port 1883 or port 1884 or port 8883)"
        );
        c.detect_by_content = true;
        assert_eq!(bpf_filter(&c), "tcp");
    }

    #[test]
    fn batch_frames_come_back_in_order() {
        let mut b = Batch::with_capacity(2, 4);
        b.push(1, b"ab");
        b.push(2, b"");
        b.push(3, b"cde");
        let got: Vec<(u64, &[u8])> = b.iter().collect();
        assert_eq!(got, [(1, &b"ab"[..]), (2, &b""[..]), (3, &b"cde"[..])]);
        b.clear();
        assert!(b.is_empty());
    }

    fn handoff(capacity: usize) -> (Handoff, Receiver<Batch>) {
        let (tx, rx) = sync_channel(capacity);
        let (_recycle, recycled) = sync_channel(1);
        let h = Handoff {
            tx,
            recycled,
            counters: Arc::new(CaptureCounters::default()),
            stop: Arc::new(AtomicBool::new(false)),
            batch_frames: 4,
            batch_bytes: 64,
        };
        (h, rx)
    }

    fn batch_of(n: usize) -> Batch {
        let mut b = Batch::with_capacity(n, 16);
        for i in 0..n {
            b.push(i as u64, b"frame");
        }
        b
    }

    #[test]
    fn a_full_channel_drops_and_counts_without_blocking() {
        let (h, rx) = handoff(1);
        let kept = h.send(batch_of(3));
        assert!(kept.is_empty());
        // No consumer: the next two do not fit. A blocking send would hang the test here.
        let kept = h.send(batch_of(2));
        assert!(
            kept.is_empty(),
            "the dropped batch comes back cleared, for reuse"
        );
        h.send(batch_of(5));
        let c = h.counters.snapshot();
        assert_eq!(
            (c.batches_sent, c.batches_dropped, c.frames_dropped),
            (1, 2, 7)
        );
        assert_eq!(rx.try_recv().unwrap().len(), 3);
        h.send(batch_of(1));
        assert_eq!(h.counters.snapshot().batches_sent, 2);
        // A vanished consumer stops the capture.
        drop(rx);
        h.send(batch_of(1));
        assert!(h.stop.load(Ordering::Relaxed));
    }

    #[test]
    fn permission_errors_name_the_capability() {
        let cfg = CaptureConfig {
            interface: "eth9".into(),
            promiscuous: true,
            ..CaptureConfig::default()
        };
        let e = classify_open_error(
            &cfg,
            pcap::Error::PcapError(
                "socket: Operation not permitted (You don't have permission to capture)".into(),
            ),
        );
        assert!(e.is_permission());
        let m = e.to_string();
        assert!(m.contains("CAP_NET_RAW") && m.contains("CAP_NET_ADMIN") && m.contains("eth9"));
        let e = classify_open_error(&cfg, pcap::Error::PcapError("No such device exists".into()));
        assert!(matches!(e, CaptureError::NoSuchDevice { .. }));
    }
}
