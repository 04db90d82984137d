//! Executes instructions (`{op, offset, length}`) over a byte buffer: each
//! instruction is split into window-aligned pieces computed in parallel on pinned
//! workers and combined in order (see `specs/kernels.md` §3). FNV-1a, which is
//! byte-serial, is never split: its windows run in order on one worker, each
//! continuing the last one's state.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::kernels::{Kernels, Op, Partial};
use crate::ranges::WINDOW;
use crate::stats::Latency;
use crate::workers::{self, Placement};

/// One unit of work a caller asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instruction {
    /// The kernel.
    pub op: Op,
    /// First byte.
    pub offset: u64,
    /// Length in bytes (> 0).
    pub length: u64,
}

/// An instruction that cannot run on the buffer it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExecError {
    /// Length 0.
    #[error("instructions[{index}].length: 0 is not allowed")]
    ZeroLength {
        /// The instruction's index.
        index: usize,
    },
    /// The span runs past the data.
    #[error(
        "instructions[{index}]: bytes {offset}..{end} run past the end of the data ({size} bytes)"
    )]
    PastEnd {
        /// The instruction's index.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Its end (saturated on overflow).
        end: u64,
        /// Bytes available.
        size: u64,
    },
}

/// Options for [`execute`].
#[derive(Debug, Clone, Copy)]
pub struct ExecOptions {
    /// Worker threads.
    pub workers: usize,
    /// Pin worker `i` to core `i mod cores`.
    pub pin: bool,
    /// Window size that instructions are split at (aligned to multiples of it).
    pub window: u64,
}

impl Default for ExecOptions {
    fn default() -> ExecOptions {
        ExecOptions {
            workers: workers::cores().len().max(1),
            pin: true,
            window: WINDOW,
        }
    }
}

/// The outcome of [`execute`].
#[derive(Debug, Clone)]
pub struct ExecReport {
    /// One result per instruction, in input order.
    pub results: Vec<u64>,
    /// Windows computed.
    pub windows: u64,
    /// Bytes computed.
    pub bytes: u64,
    /// Wall time from the first worker start to the last worker end.
    pub elapsed: Duration,
    /// Per-window compute latency.
    pub latency: Latency,
    /// Where the workers ran.
    pub placement: Placement,
    /// Workers that computed at least one window.
    pub busy_workers: usize,
}

/// A piece of work: a window of one instruction, or a whole serial instruction.
#[derive(Debug, Clone, Copy)]
enum Item {
    Window {
        instr: usize,
        seq: usize,
        offset: u64,
        len: u64,
    },
    Serial {
        instr: usize,
    },
}

/// Checks every instruction against a buffer of `size` bytes.
pub fn validate(instrs: &[Instruction], size: u64) -> Result<(), ExecError> {
    for (index, ins) in instrs.iter().enumerate() {
        if ins.length == 0 {
            return Err(ExecError::ZeroLength { index });
        }
        match ins.offset.checked_add(ins.length) {
            Some(end) if end <= size => {}
            end => {
                return Err(ExecError::PastEnd {
                    index,
                    offset: ins.offset,
                    end: end.unwrap_or(u64::MAX),
                    size,
                });
            }
        }
    }
    Ok(())
}

/// Splits `[offset, offset+length)` at multiples of `window`.
pub fn split(offset: u64, length: u64, window: u64) -> impl Iterator<Item = (u64, u64)> {
    let end = offset + length;
    let mut at = offset;
    std::iter::from_fn(move || {
        if at >= end {
            return None;
        }
        let next = ((at / window) + 1).saturating_mul(window).min(end);
        let piece = (at, next - at);
        at = next;
        Some(piece)
    })
}

/// Runs every instruction over `data` with `kernels`.
pub fn execute(
    kernels: &Kernels,
    data: &[u8],
    instrs: &[Instruction],
    opts: ExecOptions,
) -> Result<ExecReport, ExecError> {
    validate(instrs, data.len() as u64)?;
    let window = opts.window.max(1);
    let mut items = Vec::new();
    let mut pieces_per_instr = Vec::with_capacity(instrs.len());
    for (i, ins) in instrs.iter().enumerate() {
        if ins.op.is_splittable() {
            let mut n = 0;
            for (seq, (offset, len)) in split(ins.offset, ins.length, window).enumerate() {
                items.push(Item::Window {
                    instr: i,
                    seq,
                    offset,
                    len,
                });
                n += 1;
            }
            pieces_per_instr.push(n);
        } else {
            items.push(Item::Serial { instr: i });
            pieces_per_instr.push(1);
        }
    }
    // Serial items are the longest: start them first.
    items.sort_by_key(|it| !matches!(it, Item::Serial { .. }));

    struct WorkerState {
        done: Vec<(usize, usize, Partial)>,
        latency: Latency,
        windows: u64,
        started: Option<Instant>,
        ended: Option<Instant>,
    }
    let (states, placement) = workers::run(
        opts.workers,
        opts.pin,
        items.len(),
        |_| WorkerState {
            done: Vec::new(),
            latency: Latency::new(),
            windows: 0,
            started: None,
            ended: None,
        },
        |st, idx| {
            st.started.get_or_insert_with(Instant::now);
            match items[idx] {
                Item::Window {
                    instr,
                    seq,
                    offset,
                    len,
                } => {
                    let t = Instant::now();
                    let slice = &data[offset as usize..(offset + len) as usize];
                    let p = kernels.partial(instrs[instr].op, slice);
                    st.latency.record_ns(t.elapsed().as_nanos() as u64);
                    st.windows += 1;
                    st.done.push((instr, seq, p));
                }
                Item::Serial { instr } => {
                    let ins = instrs[instr];
                    let mut state = ins.op.identity();
                    for (offset, len) in split(ins.offset, ins.length, window) {
                        let t = Instant::now();
                        let slice = &data[offset as usize..(offset + len) as usize];
                        state = kernels.eval_from(ins.op, state, slice);
                        st.latency.record_ns(t.elapsed().as_nanos() as u64);
                        st.windows += 1;
                    }
                    st.done.push((
                        instr,
                        0,
                        Partial {
                            value: state,
                            len: ins.length,
                        },
                    ));
                }
            }
            st.ended = Some(Instant::now());
        },
    );

    let mut per_instr: Vec<Vec<(usize, Partial)>> = pieces_per_instr
        .iter()
        .map(|&n| Vec::with_capacity(n))
        .collect();
    let mut latency = Latency::new();
    let mut windows = 0;
    let mut busy_workers = 0;
    let mut first = None::<Instant>;
    let mut last = None::<Instant>;
    for st in states {
        latency.merge(&st.latency);
        windows += st.windows;
        busy_workers += usize::from(st.windows > 0);
        if let Some(s) = st.started {
            first = Some(first.map_or(s, |f| f.min(s)));
        }
        if let Some(e) = st.ended {
            last = Some(last.map_or(e, |l| l.max(e)));
        }
        for (instr, seq, p) in st.done {
            per_instr[instr].push((seq, p));
        }
    }
    let results = instrs
        .iter()
        .zip(per_instr)
        .map(|(ins, mut parts)| {
            parts.sort_unstable_by_key(|(seq, _)| *seq);
            parts
                .into_iter()
                .fold(Partial::empty(ins.op), |acc, (_, p)| acc.then(ins.op, p))
                .value
        })
        .collect();
    let elapsed = match (first, last) {
        (Some(f), Some(l)) => l.duration_since(f),
        _ => Duration::ZERO,
    };
    Ok(ExecReport {
        results,
        windows,
        bytes: instrs.iter().map(|i| i.length).sum(),
        elapsed,
        latency,
        placement,
        busy_workers,
    })
}

/// Computes the instructions with the scalar oracle, one thread, no splitting.
pub fn oracle(data: &[u8], instrs: &[Instruction]) -> Result<Vec<u64>, ExecError> {
    validate(instrs, data.len() as u64)?;
    let k = Kernels::scalar();
    Ok(instrs
        .iter()
        .map(|ins| {
            k.eval(
                ins.op,
                &data[ins.offset as usize..(ins.offset + ins.length) as usize],
            )
        })
        .collect())
}

/// An instruction as written in JSON: `{"op": "counteq", "imm": 0, "offset": 0,
/// "length": 1048576}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructionSpec {
    /// Op name.
    pub op: String,
    /// Immediate (required for counteq).
    #[serde(default)]
    pub imm: Option<i64>,
    /// First byte.
    pub offset: u64,
    /// Length in bytes.
    pub length: u64,
}

impl InstructionSpec {
    /// Parses the op and imm.
    pub fn instruction(&self) -> Result<Instruction, crate::kernels::KernelError> {
        Ok(Instruction {
            op: Op::parse(&self.op, self.imm)?,
            offset: self.offset,
            length: self.length,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Backend;

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    #[test]
    fn parallel_equals_oracle_across_window_boundaries() {
        let d = data(5 * 4096 + 123);
        let ops = [Op::CountEq(3), Op::Xor, Op::Add, Op::Fnv, Op::Crc32c];
        let mut instrs = Vec::new();
        for op in ops {
            for (o, l) in [
                (0, 1),
                (0, 4096),
                (100, 3 * 4096),
                (4095, 2),
                (0, d.len() as u64),
                (17, d.len() as u64 - 17),
            ] {
                instrs.push(Instruction {
                    op,
                    offset: o,
                    length: l,
                });
            }
        }
        let want = oracle(&d, &instrs).unwrap();
        for backend in Backend::available() {
            let k = Kernels::new(backend).unwrap();
            for workers in [1, 3] {
                let r = execute(
                    &k,
                    &d,
                    &instrs,
                    ExecOptions {
                        workers,
                        pin: true,
                        window: 4096,
                    },
                )
                .unwrap();
                assert_eq!(r.results, want, "{backend} workers {workers}");
            }
        }
    }

    #[test]
    fn bad_instructions_are_named() {
        let d = data(100);
        let k = Kernels::scalar();
        let bad = [Instruction {
            op: Op::Xor,
            offset: 0,
            length: 0,
        }];
        assert_eq!(
            execute(&k, &d, &bad, ExecOptions::default()).unwrap_err(),
            ExecError::ZeroLength { index: 0 }
        );
        let bad = [
            Instruction {
                op: Op::Xor,
                offset: 0,
                length: 1,
            },
            Instruction {
                op: Op::Xor,
                offset: 99,
                length: 2,
            },
        ];
        assert!(matches!(
            execute(&k, &d, &bad, ExecOptions::default()).unwrap_err(),
            ExecError::PastEnd {
                index: 1,
                end: 101,
                size: 100,
                ..
            }
        ));
        let bad = [Instruction {
            op: Op::Xor,
            offset: u64::MAX,
            length: 2,
        }];
        assert!(matches!(
            validate(&bad, 100).unwrap_err(),
            ExecError::PastEnd {
                index: 0,
                end: u64::MAX,
                ..
            }
        ));
    }

    #[test]
    fn split_pieces_are_aligned() {
        let v: Vec<_> = split(10, 30, 16).collect();
        assert_eq!(v, vec![(10, 6), (16, 16), (32, 8)]);
    }
}
