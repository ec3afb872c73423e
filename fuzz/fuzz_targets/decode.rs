//! Drives a `Session` over arbitrary bytes as one MQTT byte stream, the way the replay
//! glue does: frame by fixed header, skip oversized packets by length, decode, resolve
//! topic aliases, validate. Every successfully decoded packet is re-encoded and must
//! decode to the same value. The first input byte picks direction pattern and an
//! initial level hint so both directions and all levels get exercised.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mqscope::mqtt::{
    Direction, Packet, Session, SessionLimits, TopicResolution, decode_body, encode::encode,
    parse_fixed_header, validate::violations,
};

const MAX_SIZE: u32 = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, mut buf)) = data.split_first() else {
        return;
    };
    let mut s = Session::new(SessionLimits {
        max_aliases: 16,
        max_alias_bytes: 64,
        default_level: [3, 4, 5, 4][usize::from(ctl >> 6)],
    });
    let mut n = 0u32;
    let mut out = Vec::new();
    loop {
        // Direction per packet from the control byte's low bits, cycling.
        let dir = if (ctl >> (n % 6)) & 1 == 0 {
            Direction::C2S
        } else {
            Direction::S2C
        };
        n += 1;
        let h = match parse_fixed_header(buf) {
            Ok(Some(h)) => h,
            Ok(None) | Err(_) => return, // need more bytes / stream unframeable
        };
        let total = h.total_len();
        if h.remaining_length > MAX_SIZE {
            buf = buf.get(total..).unwrap_or_default();
            continue;
        }
        let Some(body) = buf.get(usize::from(h.header_len)..total) else {
            return;
        };
        buf = &buf[total..];
        let Ok(p) = s.decode(dir, &h, body) else {
            continue;
        };
        let level = s.effective_level();
        let v = violations(&h, &p, level);
        let _ = v.iter().map(|x| x.kind()).count();
        if let Packet::Publish(pb) = &p {
            match s.resolve_topic(dir, pb) {
                TopicResolution::FromAlias(t) => assert!(!t.is_empty()),
                TopicResolution::AsIs
                | TopicResolution::UnknownAlias(_)
                | TopicResolution::AliasRejected(_) => {}
            }
            assert!(s.alias_bytes() <= 64);
        }
        // Round trip. The level the packet was decoded at: CONNECT carries its own,
        // AUTH is always 5, everything else used the session's level.
        out.clear();
        encode(&p, level, &mut out);
        let h2 = parse_fixed_header(&out).unwrap().unwrap();
        assert_eq!(h2.total_len(), out.len());
        let back = decode_body(&h2, &out[usize::from(h2.header_len)..], level).unwrap();
        assert_eq!(p, back, "re-encode of {p:?} at level {level}: {out:02x?}");
    }
});
