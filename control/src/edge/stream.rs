//! Computing instructions over bytes that arrive as ranges (`specs/edge-api.md`
//! §4), without I/O: a [`RangeFold`] takes the chunks of one range in order and
//! keeps, per instruction overlapping it, a combinable [`Partial`]; a [`JobFold`]
//! takes the finished ranges in offset order and combines them. Instructions may
//! start and end anywhere, so one may span several ranges and end in a partial
//! window. FNV-1a cannot be combined: a range keeps (by reference, no copy) the
//! chunks an `fnv` instruction covers until the job chains them in order, so at
//! most the ranges in flight are held, never the whole object.

use bytes::Bytes;
use pfs_dataplane::exec::Instruction;
use pfs_dataplane::kernels::{Kernels, Op, Partial};

/// A range's bytes did not match what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    /// More bytes than the range holds.
    #[error("range {offset}+{len}: the body ran {extra} bytes past the range")]
    Overrun {
        /// Range start.
        offset: u64,
        /// Range length.
        len: u64,
        /// Extra bytes.
        extra: u64,
    },
    /// The body ended early.
    #[error("range {offset}+{len}: the body ended after {got} bytes")]
    Short {
        /// Range start.
        offset: u64,
        /// Range length.
        len: u64,
        /// Bytes received.
        got: u64,
    },
}

/// Folds the chunks of one range, in order, into per-instruction partials.
#[derive(Debug)]
pub struct RangeFold {
    offset: u64,
    len: u64,
    pos: u64,
    /// (instruction index, op, span start, span end, partial) for every
    /// instruction overlapping the range, clipped to it.
    parts: Vec<(usize, Op, u64, u64, Partial)>,
    /// Chunks (absolute offset, bytes) kept for `fnv` instructions.
    kept: Vec<(u64, Bytes)>,
    keep: bool,
}

/// A finished range.
#[derive(Debug)]
pub struct RangeDone {
    /// Range start.
    pub offset: u64,
    /// Range length.
    pub len: u64,
    parts: Vec<(usize, Op, u64, u64, Partial)>,
    kept: Vec<(u64, Bytes)>,
}

impl RangeFold {
    /// A fold for `[offset, offset+len)` of the instructions `instrs`.
    pub fn new(instrs: &[Instruction], offset: u64, len: u64) -> RangeFold {
        let end = offset + len;
        let mut parts = Vec::new();
        let mut keep = false;
        for (i, ins) in instrs.iter().enumerate() {
            let (s, e) = (ins.offset, ins.offset.saturating_add(ins.length));
            if s < end && offset < e {
                keep |= ins.op == Op::Fnv;
                parts.push((i, ins.op, s.max(offset), e.min(end), Partial::empty(ins.op)));
            }
        }
        RangeFold {
            offset,
            len,
            pos: offset,
            parts,
            kept: Vec::new(),
            keep,
        }
    }

    /// Bytes received so far.
    pub fn received(&self) -> u64 {
        self.pos - self.offset
    }

    /// Takes the next chunk of the range.
    pub fn feed(&mut self, kernels: &Kernels, chunk: Bytes) -> Result<(), StreamError> {
        let n = chunk.len() as u64;
        let end = self.offset + self.len;
        if self.pos + n > end {
            return Err(StreamError::Overrun {
                offset: self.offset,
                len: self.len,
                extra: self.pos + n - end,
            });
        }
        let (cs, ce) = (self.pos, self.pos + n);
        for (_, op, s, e, partial) in &mut self.parts {
            if *op == Op::Fnv {
                continue;
            }
            let (a, b) = ((*s).max(cs), (*e).min(ce));
            if a < b {
                let slice = &chunk[(a - cs) as usize..(b - cs) as usize];
                *partial = partial.then(*op, kernels.partial(*op, slice));
            }
        }
        if self.keep && n > 0 {
            self.kept.push((cs, chunk));
        }
        self.pos = ce;
        Ok(())
    }

    /// Ends the range: every byte must have arrived.
    pub fn finish(self) -> Result<RangeDone, StreamError> {
        if self.pos != self.offset + self.len {
            return Err(StreamError::Short {
                offset: self.offset,
                len: self.len,
                got: self.pos - self.offset,
            });
        }
        Ok(RangeDone {
            offset: self.offset,
            len: self.len,
            parts: self.parts,
            kept: self.kept,
        })
    }
}

/// Combines finished ranges, in offset order, into one result per instruction.
#[derive(Debug)]
pub struct JobFold {
    acc: Vec<Partial>,
    /// Next byte each instruction expects (checks ranges come in order).
    next: Vec<u64>,
    ends: Vec<u64>,
}

impl JobFold {
    /// A fold for `instrs`.
    pub fn new(instrs: &[Instruction]) -> JobFold {
        JobFold {
            acc: instrs.iter().map(|i| Partial::empty(i.op)).collect(),
            next: instrs.iter().map(|i| i.offset).collect(),
            ends: instrs
                .iter()
                .map(|i| i.offset.saturating_add(i.length))
                .collect(),
        }
    }

    /// Takes the next finished range (ranges must come in offset order).
    pub fn absorb(&mut self, kernels: &Kernels, done: RangeDone) {
        for (i, op, s, e, partial) in done.parts {
            debug_assert_eq!(self.next[i], s, "ranges out of order");
            if op == Op::Fnv {
                let mut state = self.acc[i].value;
                for (at, chunk) in &done.kept {
                    let ce = at + chunk.len() as u64;
                    let (a, b) = (s.max(*at), e.min(ce));
                    if a < b {
                        state = kernels.fnv(state, &chunk[(a - at) as usize..(b - at) as usize]);
                    }
                }
                self.acc[i] = Partial {
                    value: state,
                    len: self.acc[i].len + (e - s),
                };
            } else {
                self.acc[i] = self.acc[i].then(op, partial);
            }
            self.next[i] = e;
        }
    }

    /// Whether every instruction got all its bytes.
    pub fn complete(&self) -> bool {
        self.next.iter().zip(&self.ends).all(|(n, e)| n == e)
    }

    /// The results, in instruction order.
    pub fn results(&self) -> Vec<u64> {
        self.acc.iter().map(|p| p.value).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pfs_dataplane::exec::oracle;
    use pfs_dataplane::kernels::Backend;
    use pfs_dataplane::ranges::{PlanOptions, Window, plan};

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 13 + i / 97) as u8).collect()
    }

    /// Every op over ranges of `align` bytes, fed in chunks of every size in
    /// `chunks`, equals the oracle; instructions cross range boundaries and end in
    /// partial windows.
    #[test]
    fn ranges_fold_to_the_oracle() {
        let align = 4096u64;
        let d = data(11 * 4096 + 777);
        let size = d.len() as u64;
        let mut instrs = Vec::new();
        for op in [Op::CountEq(7), Op::Xor, Op::Add, Op::Fnv, Op::Crc32c] {
            for (o, l) in [
                (0, 1),
                (100, 4096),
                (4095, 2),
                (3 * 4096 - 5, 5 * 4096 + 9),
                (0, size),
                (9 * 4096 + 1, size - 9 * 4096 - 1),
            ] {
                instrs.push(Instruction {
                    op,
                    offset: o,
                    length: l,
                });
            }
        }
        let want = oracle(&d, &instrs).unwrap();
        let windows: Vec<Window> = instrs
            .iter()
            .map(|i| Window {
                offset: i.offset,
                length: i.length,
            })
            .collect();
        for backend in Backend::available() {
            let k = Kernels::new(backend).unwrap();
            for max_len in [align, 3 * align] {
                let ranges = plan(
                    &windows,
                    PlanOptions {
                        align,
                        size: Some(size),
                        max_len: Some(max_len),
                    },
                )
                .unwrap();
                for chunk in [1000usize, 4096, 65536] {
                    let mut job = JobFold::new(&instrs);
                    for r in &ranges {
                        let mut f = RangeFold::new(&instrs, r.offset, r.length);
                        let bytes = Bytes::copy_from_slice(&d[r.offset as usize..r.end() as usize]);
                        let mut at = 0;
                        while at < bytes.len() {
                            let n = chunk.min(bytes.len() - at);
                            f.feed(&k, bytes.slice(at..at + n)).unwrap();
                            at += n;
                        }
                        job.absorb(&k, f.finish().unwrap());
                    }
                    assert!(job.complete());
                    assert_eq!(
                        job.results(),
                        want,
                        "{backend} max_len {max_len} chunk {chunk}"
                    );
                }
            }
        }
    }

    #[test]
    fn short_and_long_bodies_are_errors() {
        let k = Kernels::scalar();
        let instrs = [Instruction {
            op: Op::Xor,
            offset: 0,
            length: 10,
        }];
        let mut f = RangeFold::new(&instrs, 0, 10);
        f.feed(&k, Bytes::from_static(b"12345")).unwrap();
        assert_eq!(
            f.finish().unwrap_err(),
            StreamError::Short {
                offset: 0,
                len: 10,
                got: 5
            }
        );
        let mut f = RangeFold::new(&instrs, 0, 4);
        assert!(matches!(
            f.feed(&k, Bytes::from_static(b"12345")),
            Err(StreamError::Overrun { extra: 1, .. })
        ));
    }
}
