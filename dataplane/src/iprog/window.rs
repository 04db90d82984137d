//! A compiled program cut into windows (`specs/udp-transfer.md` §3): each window
//! is a contiguous object range whose container fits one WIN datagram, so every
//! datagram can be applied on its own, in any order.

use super::WireError;
use super::codec::{
    CONTAINER_HEADER_LEN, Mode, Op, Section, container_section_len, encode_container,
};
use super::frame::MAX_CONTAINER;

/// Most object bytes one window produces (1 MiB): bounds the work one datagram
/// can cause and the repair unit.
pub const MAX_WIN_LEN: u64 = 1 << 20;

/// One window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Object offset of its first byte.
    pub offset: u64,
    /// Object bytes it produces.
    pub len: u32,
    /// The container (PVRT or OFFS).
    pub container: Vec<u8>,
}

fn advance(cursor: u64, s: &Section<'_>) -> u64 {
    match s {
        Section::Bref(b) => b.offset.wrapping_add(b.len),
        Section::Raw(r) => cursor.wrapping_add(r.len() as u64),
    }
}

/// Cuts `ops` (rebuilding `object`) into windows of `mode` with offsets relative
/// to `anchor`. Fails when OFFS is asked to carry RAW.
pub fn windows(
    ops: &[Op],
    object: &[u8],
    mode: Mode,
    anchor: u64,
) -> Result<Vec<Window>, WireError> {
    let mut out = Vec::new();
    let mut secs: Vec<Section<'_>> = Vec::new();
    let mut bytes = CONTAINER_HEADER_LEN;
    let mut len: u64 = 0;
    let mut start: u64 = 0;
    let mut cursor = anchor;
    let mut pos: u64 = 0;
    let close = |secs: &mut Vec<Section<'_>>,
                 out: &mut Vec<Window>,
                 start: &mut u64,
                 len: &mut u64,
                 bytes: &mut usize,
                 cursor: &mut u64|
     -> Result<(), WireError> {
        if secs.is_empty() {
            return Ok(());
        }
        let mut c = Vec::with_capacity(*bytes);
        encode_container(mode, anchor, secs, &mut c)?;
        out.push(Window {
            offset: *start,
            len: *len as u32,
            container: c,
        });
        *start += *len;
        *len = 0;
        *bytes = CONTAINER_HEADER_LEN;
        *cursor = anchor;
        secs.clear();
        Ok(())
    };
    for op in ops {
        let mut done: u64 = 0;
        while done < op.len() {
            let budget = MAX_WIN_LEN - len;
            if budget == 0 || secs.len() == usize::from(u16::MAX) {
                close(
                    &mut secs,
                    &mut out,
                    &mut start,
                    &mut len,
                    &mut bytes,
                    &mut cursor,
                )?;
                continue;
            }
            let take = (op.len() - done).min(budget);
            let piece = match *op {
                Op::Bref(mut b) => {
                    b.offset = b.offset.wrapping_add(done);
                    b.len = take;
                    Section::Bref(b)
                }
                Op::Raw(_) => {
                    let a = (pos + done) as usize;
                    Section::Raw(&object[a..a + take as usize])
                }
            };
            let Some(sl) = container_section_len(mode, cursor, &piece) else {
                return Err(WireError::Invalid {
                    field: "OFFS section (RAW is not expressible; use pvrt)",
                    at: (pos + done) as usize,
                });
            };
            if bytes + sl <= MAX_CONTAINER {
                bytes += sl;
                cursor = advance(cursor, &piece);
                secs.push(piece);
                len += take;
                done += take;
                continue;
            }
            // A RAW run is split to fill the window; anything else starts a new one.
            if let Section::Raw(r) = piece {
                let room = MAX_CONTAINER - bytes;
                let fit = if room > 32 {
                    let mut t = room - 1 - 1;
                    while 1 + super::codec::varint_len(t as u64) + t > room {
                        t -= 1;
                    }
                    t
                } else {
                    room.saturating_sub(1).min(31)
                };
                let fit = fit.min(r.len());
                if fit > 0 {
                    let s = Section::Raw(&r[..fit]);
                    bytes += container_section_len(mode, cursor, &s).unwrap_or(0);
                    cursor = advance(cursor, &s);
                    secs.push(s);
                    len += fit as u64;
                    done += fit as u64;
                }
            }
            close(
                &mut secs,
                &mut out,
                &mut start,
                &mut len,
                &mut bytes,
                &mut cursor,
            )?;
        }
        pos += op.len();
    }
    close(
        &mut secs,
        &mut out,
        &mut start,
        &mut len,
        &mut bytes,
        &mut cursor,
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iprog::codec::{Bref, ContainerPacket, Transform};
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn windows_rebuild_the_object(
            steps in proptest::collection::vec((any::<bool>(), 1u64..3000, 0u64..2000, 0u8..3), 1..300),
            pvrt in any::<bool>(),
        ) {
            let blob: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
            let mode = if pvrt { Mode::Pvrt } else { Mode::Offs };
            let mut ops = Vec::new();
            let mut object = Vec::new();
            for (raw, n, off, x) in steps {
                let n = n.min(3000);
                if raw && pvrt {
                    ops.push(Op::Raw(n));
                    object.extend((0..n).map(|i| (i * 13) as u8));
                } else {
                    let xf = [Transform::Identity, Transform::Xor(5), Transform::Add(30)][x as usize];
                    let off = off.min(5000 - n.min(2000));
                    let n = n.min(5000 - off);
                    ops.push(Op::Bref(Bref { offset: off, len: n, xf }));
                    object.extend(blob[off as usize..(off + n) as usize].iter().map(|b| xf.byte(*b)));
                }
            }
            let anchor = 2500;
            let ws = windows(&ops, &object, mode, anchor).unwrap();
            let mut rebuilt = vec![0u8; object.len()];
            let mut expect = 0u64;
            for w in &ws {
                prop_assert_eq!(w.offset, expect);
                prop_assert!(w.container.len() <= MAX_CONTAINER);
                prop_assert!(u64::from(w.len) <= MAX_WIN_LEN);
                let c = ContainerPacket::new_checked(&w.container[..], anchor, pvrt).unwrap();
                let a = w.offset as usize;
                c.apply(&blob, &mut rebuilt[a..a + w.len as usize]).unwrap();
                expect += u64::from(w.len);
            }
            prop_assert_eq!(expect, object.len() as u64);
            prop_assert_eq!(rebuilt, object);
        }
    }

    #[test]
    fn offs_refuses_raw() {
        let e = windows(&[Op::Raw(3)], &[1, 2, 3], Mode::Offs, 0).unwrap_err();
        assert!(matches!(e, WireError::Invalid { .. }));
    }
}
