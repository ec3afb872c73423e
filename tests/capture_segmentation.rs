//! Property: whatever the segmentation, reordering (within a window), duplication and
//! overlapping retransmission, the flow table reproduces each direction's byte stream
//! exactly; and when segments are lost (or cut by snaplen), exactly those byte ranges
//! come out as gaps of the right size.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use mqscope::capture::{
    CloseReason, FlowInfo, FlowLimits, FlowTable, Interest, Side, StreamEvent, StreamSink,
    TcpSegment,
};
use proptest::prelude::*;

const CLIENT: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 40000);
const SERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)), 1883);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Ev {
    Data(Vec<u8>),
    Gap(u64),
}

/// Appends, merging neighbours of the same kind: segment boundaries are not part of the
/// contract, and one hole is one gap however many segments were lost in it.
fn push(out: &mut Vec<Ev>, ev: Ev) {
    match (out.last_mut(), ev) {
        (Some(Ev::Data(acc)), Ev::Data(d)) => acc.extend_from_slice(&d),
        (Some(Ev::Gap(acc)), Ev::Gap(n)) => *acc += n,
        (_, Ev::Data(d)) if d.is_empty() => {}
        (_, ev) => out.push(ev),
    }
}

#[derive(Default)]
struct Collect {
    streams: [Vec<Ev>; 2],
    client_side: Option<Side>,
    closes: Vec<CloseReason>,
}

impl StreamSink for Collect {
    type State = ();
    fn open(&mut self, flow: &FlowInfo) {
        assert!(self.client_side.is_none(), "exactly one flow expected");
        self.client_side = Some(if flow.a == CLIENT { Side::A } else { Side::B });
    }
    fn data(&mut self, _: &FlowInfo, _: &mut (), from: Side, ev: StreamEvent<'_>) -> Interest {
        let client = self.client_side.expect("opened");
        let dir = usize::from(from != client); // 0: client->server, 1: server->client
        match ev {
            StreamEvent::Data(d) => push(&mut self.streams[dir], Ev::Data(d.to_vec())),
            StreamEvent::Gap { missing } => push(&mut self.streams[dir], Ev::Gap(missing)),
        }
        Interest::Continue
    }
    fn close(&mut self, _: &FlowInfo, _: (), why: CloseReason) {
        self.closes.push(why);
    }
}

/// What becomes of one original segment in the lossy variant.
#[derive(Clone, Copy, Debug)]
enum Fate {
    Keep,
    Lose,
    /// Captured with only this many payload bytes (snaplen).
    Cut(usize),
}

#[derive(Clone, Debug)]
struct Dir {
    isn: u32,
    data: Vec<u8>,
    /// Segment boundaries as lengths (summing to at least data.len(); the rest is cut off).
    sizes: Vec<usize>,
}

fn dir_strategy() -> impl Strategy<Value = Dir> {
    (
        prop_oneof![any::<u32>(), (u32::MAX - 4000)..=u32::MAX],
        prop::collection::vec(any::<u8>(), 0..3000),
        prop::collection::vec(1usize..400, 1..40),
    )
        .prop_map(|(isn, data, mut sizes)| {
            // Make the sizes cover the data exactly.
            let mut out = Vec::new();
            let mut left = data.len();
            let mut i = 0;
            while left > 0 {
                let s = sizes[i % sizes.len()].min(left);
                out.push(s);
                left -= s;
                i += 1;
            }
            sizes.clear();
            Dir {
                isn,
                data,
                sizes: out,
            }
        })
}

/// One packet to send: direction (0 client, 1 server), stream offset, length captured,
/// bytes missing after it, FIN.
#[derive(Clone, Copy, Debug)]
struct Pkt {
    dir: usize,
    off: usize,
    len: usize,
    missing: usize,
    fin: bool,
}

/// Displaces every packet by up to `window` positions: stable sort by index + jitter.
fn reorder(pkts: Vec<Pkt>, jitter: &[usize], window: usize) -> Vec<Pkt> {
    let mut keyed: Vec<(usize, usize, Pkt)> = pkts
        .into_iter()
        .enumerate()
        .map(|(i, p)| (i + jitter.get(i).copied().unwrap_or(0) % (window + 1), i, p))
        .collect();
    keyed.sort_by_key(|&(k, i, _)| (k, i));
    keyed.into_iter().map(|(_, _, p)| p).collect()
}

fn run(dirs: &[Dir; 2], pkts: &[Pkt]) -> Collect {
    let mut table: FlowTable<()> = FlowTable::new(FlowLimits::default());
    let mut sink = Collect::default();
    let ends = [(CLIENT, SERVER), (SERVER, CLIENT)];
    // Handshake first so both streams start at ISN+1 and reordering cannot put data
    // "before the start". ACK numbers never acknowledge data, so no ACK-declared gaps.
    let syn = |d: usize, flags_ack: bool| TcpSegment {
        src: ends[d].0,
        dst: ends[d].1,
        seq: dirs[d].isn,
        ack: if flags_ack {
            dirs[1 - d].isn.wrapping_add(1)
        } else {
            0
        },
        syn: true,
        ack_flag: flags_ack,
        fin: false,
        rst: false,
        payload: &[],
        truncated: false,
        missing: 0,
    };
    table.on_segment(0, &syn(0, false), &mut sink);
    table.on_segment(1, &syn(1, true), &mut sink);
    for (ts, p) in pkts.iter().enumerate() {
        let d = &dirs[p.dir];
        let seg = TcpSegment {
            src: ends[p.dir].0,
            dst: ends[p.dir].1,
            seq: d.isn.wrapping_add(1).wrapping_add(p.off as u32),
            ack: dirs[1 - p.dir].isn.wrapping_add(1),
            syn: false,
            ack_flag: true,
            fin: p.fin,
            rst: false,
            payload: &d.data[p.off..p.off + p.len],
            truncated: p.missing > 0,
            missing: p.missing as u32,
        };
        table.on_segment(2 + ts as u64, &seg, &mut sink);
    }
    table.finish(&mut sink);
    assert_eq!(sink.closes.len(), 1, "one flow, closed once");
    assert_eq!(table.stats().ooo_bytes_buffered, 0);
    sink
}

fn fin_pkt(dir: usize, d: &Dir) -> Pkt {
    Pkt {
        dir,
        off: d.data.len(),
        len: 0,
        missing: 0,
        fin: true,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn reordered_duplicated_overlapping_segments_reassemble_exactly(
        client in dir_strategy(),
        server in dir_strategy(),
        window in 0usize..8,
        jitter in prop::collection::vec(0usize..64, 200),
        dups in prop::collection::vec(
            (0usize..2, any::<prop::sample::Index>(), any::<prop::sample::Index>()), 0..10),
        overlaps in prop::collection::vec(
            (0usize..2, any::<prop::sample::Index>(), 1usize..500, any::<prop::sample::Index>()),
            0..10),
        with_fin in any::<bool>(),
    ) {
        let dirs = [client, server];
        let mut pkts = Vec::new();
        for (di, d) in dirs.iter().enumerate() {
            let mut off = 0;
            for &s in &d.sizes {
                pkts.push(Pkt { dir: di, off, len: s, missing: 0, fin: false });
                off += s;
            }
        }
        // Duplicates of whole segments and retransmissions of arbitrary ranges
        // (repacketised, overlapping several segments), each inserted at a random place.
        let mut extras = Vec::new();
        for (di, idx, _) in &dups {
            let of_dir: Vec<Pkt> = pkts.iter().copied().filter(|p| p.dir == *di).collect();
            if !of_dir.is_empty() {
                extras.push(of_dir[idx.index(of_dir.len())]);
            }
        }
        for (di, start, len, _) in &overlaps {
            let n = dirs[*di].data.len();
            if n > 0 {
                let off = start.index(n);
                let len = (*len).min(n - off);
                extras.push(Pkt { dir: *di, off, len, missing: 0, fin: false });
            }
        }
        let mut mixed = pkts;
        let places = dups.iter().map(|d| d.2).chain(overlaps.iter().map(|o| o.3));
        for (p, at) in extras.into_iter().zip(places) {
            let i = at.index(mixed.len() + 1);
            mixed.insert(i, p);
        }
        let mut pkts = reorder(mixed, &jitter, window);
        if with_fin {
            pkts.push(fin_pkt(0, &dirs[0]));
            pkts.push(fin_pkt(1, &dirs[1]));
        }
        let out = run(&dirs, &pkts);
        for (di, (got, d)) in out.streams.iter().zip(&dirs).enumerate() {
            let want: Vec<Ev> = if d.data.is_empty() {
                vec![]
            } else {
                vec![Ev::Data(d.data.clone())]
            };
            prop_assert_eq!(got, &want, "direction {}", di);
        }
        if with_fin {
            prop_assert_eq!(&out.closes, &vec![CloseReason::Fin]);
        }
    }

    #[test]
    fn lost_and_cut_segments_become_gaps_of_their_size(
        client in dir_strategy(),
        server in dir_strategy(),
        window in 0usize..8,
        jitter in prop::collection::vec(0usize..64, 200),
        fates in prop::collection::vec(
            prop_oneof![6 => Just(0u8), 2 => Just(1u8), 1 => Just(2u8)], 80),
        cut_at in prop::collection::vec(any::<prop::sample::Index>(), 80),
        dup_mask in prop::collection::vec(any::<bool>(), 80),
    ) {
        let dirs = [client, server];
        let mut pkts = Vec::new();
        let mut want: [Vec<Ev>; 2] = [Vec::new(), Vec::new()];
        let mut k = 0;
        for (di, d) in dirs.iter().enumerate() {
            let mut off = 0;
            for &s in &d.sizes {
                let fate = match fates[k % fates.len()] {
                    0 => Fate::Keep,
                    1 => Fate::Lose,
                    _ => Fate::Cut(cut_at[k % cut_at.len()].index(s)),
                };
                match fate {
                    Fate::Keep => {
                        push(&mut want[di], Ev::Data(d.data[off..off + s].to_vec()));
                        pkts.push(Pkt { dir: di, off, len: s, missing: 0, fin: false });
                        // Only intact segments get duplicated: a full copy of a lost or cut
                        // segment would (rightly) fill its hole.
                        if dup_mask[k % dup_mask.len()] {
                            pkts.push(Pkt { dir: di, off, len: s, missing: 0, fin: false });
                        }
                    }
                    Fate::Lose => push(&mut want[di], Ev::Gap(s as u64)),
                    Fate::Cut(keep) => {
                        push(&mut want[di], Ev::Data(d.data[off..off + keep].to_vec()));
                        push(&mut want[di], Ev::Gap((s - keep) as u64));
                        pkts.push(Pkt { dir: di, off, len: keep, missing: s - keep, fin: false });
                    }
                }
                off += s;
                k += 1;
            }
        }
        let mut pkts = reorder(pkts, &jitter, window);
        // FINs mark where each stream ends, so a loss at the very end is a known hole too.
        pkts.push(fin_pkt(0, &dirs[0]));
        pkts.push(fin_pkt(1, &dirs[1]));
        let out = run(&dirs, &pkts);
        for (di, (got, want)) in out.streams.iter().zip(&want).enumerate() {
            prop_assert_eq!(got, want, "direction {}", di);
        }
    }
}
