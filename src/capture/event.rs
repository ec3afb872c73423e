//! What a reassembled direction hands to its consumer.

/// One step of a reassembled byte stream, in sequence order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// The next bytes of the stream. In the in-order case this borrows straight from the
    /// captured frame; it is only valid during the `data` call.
    Data(&'a [u8]),
    /// `missing` bytes of the stream were never captured (loss, snaplen truncation, or a
    /// hole still open when the flow ended). A parser must resynchronise after this.
    Gap { missing: u64 },
}

/// The consumer's answer to each event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    /// Keep delivering this flow.
    Continue,
    /// Stop: drop buffers, deliver nothing more for this flow (it is still closed once).
    Ignore,
}

/// Which endpoint of a flow sent a segment. `A` is whoever sent the first segment the
/// flow table saw, which is the client only if the capture started before the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }

    /// 0 for A, 1 for B: index into per-direction arrays.
    pub fn index(self) -> usize {
        match self {
            Side::A => 0,
            Side::B => 1,
        }
    }
}
