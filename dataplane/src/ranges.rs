//! The range planner: windows → ranges aligned to the window size (1 MiB),
//! sorted, disjoint and coalesced. Normative text: `specs/ranges.md`.

use serde::{Deserialize, Serialize};

/// The window size and range alignment: 1 MiB.
pub const WINDOW: u64 = 1 << 20;

/// A span of bytes asked for by a caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Window {
    /// First byte.
    pub offset: u64,
    /// Length in bytes (> 0).
    pub length: u64,
}

impl Window {
    /// One past the last byte, or `None` on overflow.
    pub fn end(&self) -> Option<u64> {
        self.offset.checked_add(self.length)
    }
}

/// An aligned span to fetch: `[offset, offset + length)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// First byte (a multiple of the alignment).
    pub offset: u64,
    /// Length in bytes (a multiple of the alignment, except a last range clamped
    /// to the object size).
    pub length: u64,
}

impl Range {
    /// One past the last byte.
    pub fn end(&self) -> u64 {
        self.offset + self.length
    }
}

/// A window the planner cannot accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// A window of length 0.
    #[error("windows[{index}].length: 0 is not allowed (a window must cover at least one byte)")]
    ZeroLength {
        /// Index of the window in the input.
        index: usize,
    },
    /// `offset + length` overflows, or its aligned end does.
    #[error("windows[{index}]: offset {offset} + length {length} overflows u64")]
    Overflow {
        /// Index of the window.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Its length.
        length: u64,
    },
    /// The window ends past the object's size.
    #[error(
        "windows[{index}]: bytes {offset}..{end} run past the end of the object ({size} bytes)"
    )]
    PastEnd {
        /// Index of the window.
        index: usize,
        /// Its offset.
        offset: u64,
        /// Its end.
        end: u64,
        /// The object size.
        size: u64,
    },
    /// Alignment or maximum range length of 0 or not a multiple of the alignment.
    #[error("align: {0} must be a power of two > 0")]
    BadAlign(u64),
}

/// Planner settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlanOptions {
    /// Alignment of range boundaries (a power of two; default 1 MiB).
    pub align: u64,
    /// The object size, when known: windows past it are refused and the last
    /// range is clamped to it.
    pub size: Option<u64>,
    /// Split coalesced ranges longer than this (rounded down to `align`), so a
    /// fetcher can run several streams. `None`: no limit.
    pub max_len: Option<u64>,
}

impl Default for PlanOptions {
    fn default() -> PlanOptions {
        PlanOptions {
            align: WINDOW,
            size: None,
            max_len: None,
        }
    }
}

/// Plans ranges covering every window: each window is widened to `align`
/// boundaries, the results are sorted and every overlapping or touching pair is
/// merged. Without `max_len` the output is the fewest aligned ranges that cover
/// the windows.
pub fn plan(windows: &[Window], opts: PlanOptions) -> Result<Vec<Range>, RangeError> {
    let align = opts.align;
    if align == 0 || !align.is_power_of_two() {
        return Err(RangeError::BadAlign(align));
    }
    let mut spans: Vec<(u64, u64)> = Vec::with_capacity(windows.len());
    for (index, w) in windows.iter().enumerate() {
        if w.length == 0 {
            return Err(RangeError::ZeroLength { index });
        }
        let overflow = RangeError::Overflow {
            index,
            offset: w.offset,
            length: w.length,
        };
        let end = w.end().ok_or(overflow.clone())?;
        if let Some(size) = opts.size
            && end > size
        {
            return Err(RangeError::PastEnd {
                index,
                offset: w.offset,
                end,
                size,
            });
        }
        let start = w.offset & !(align - 1);
        let aligned_end = end.checked_next_multiple_of(align).ok_or(overflow)?;
        spans.push((start, aligned_end));
    }
    spans.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    let max_len = opts
        .max_len
        .map(|m| (m & !(align - 1)).max(align))
        .unwrap_or(u64::MAX);
    let mut out = Vec::with_capacity(merged.len());
    for (s, e) in merged {
        let e = opts.size.map_or(e, |size| e.min(size));
        let mut at = s;
        while at < e {
            let len = (e - at).min(max_len);
            out.push(Range {
                offset: at,
                length: len,
            });
            at += len;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const M: u64 = WINDOW;

    fn w(offset: u64, length: u64) -> Window {
        Window { offset, length }
    }

    #[test]
    fn seed_example_coalesces_to_one_range() {
        let r = plan(&[w(0, 65536), w(65536, 65536)], PlanOptions::default()).unwrap();
        assert_eq!(
            r,
            vec![Range {
                offset: 0,
                length: M
            }]
        );
    }

    #[test]
    fn adjacent_aligned_windows_merge_and_gaps_do_not() {
        let r = plan(&[w(3 * M, 1), w(0, M), w(M, M)], PlanOptions::default()).unwrap();
        assert_eq!(
            r,
            vec![
                Range {
                    offset: 0,
                    length: 2 * M
                },
                Range {
                    offset: 3 * M,
                    length: M
                }
            ]
        );
    }

    #[test]
    fn size_clamps_and_refuses() {
        let opts = PlanOptions {
            size: Some(M + 10),
            ..PlanOptions::default()
        };
        assert_eq!(
            plan(&[w(M, 10)], opts).unwrap(),
            vec![Range {
                offset: M,
                length: 10
            }]
        );
        assert!(matches!(
            plan(&[w(M, 11)], opts),
            Err(RangeError::PastEnd { index: 0, .. })
        ));
    }

    #[test]
    fn bad_windows_are_named() {
        assert_eq!(
            plan(&[w(0, 1), w(5, 0)], PlanOptions::default()),
            Err(RangeError::ZeroLength { index: 1 })
        );
        assert!(matches!(
            plan(&[w(u64::MAX, 1)], PlanOptions::default()),
            Err(RangeError::Overflow { index: 0, .. })
        ));
        assert!(matches!(
            plan(&[w(u64::MAX - M, 5)], PlanOptions::default()),
            Err(RangeError::Overflow { index: 0, .. })
        ));
    }

    #[test]
    fn max_len_splits() {
        let opts = PlanOptions {
            max_len: Some(2 * M),
            ..PlanOptions::default()
        };
        let r = plan(&[w(0, 5 * M)], opts).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(
            r[2],
            Range {
                offset: 4 * M,
                length: M
            }
        );
    }

    proptest! {
        #[test]
        fn planned_ranges_are_aligned_disjoint_covering_and_minimal(
            raw in proptest::collection::vec((0u64..64 * M, 1u64..4 * M), 1..40)
        ) {
            let windows: Vec<Window> = raw.iter().map(|&(o, l)| w(o, l)).collect();
            let ranges = plan(&windows, PlanOptions::default()).unwrap();
            // aligned
            for r in &ranges {
                prop_assert_eq!(r.offset % M, 0);
                prop_assert_eq!(r.length % M, 0);
                prop_assert!(r.length > 0);
            }
            // sorted, disjoint and not touching (so none could merge: minimal)
            for p in ranges.windows(2) {
                prop_assert!(p[0].end() < p[1].offset);
            }
            // every window covered by one range
            for win in &windows {
                prop_assert!(ranges.iter().any(|r| r.offset <= win.offset && win.end().unwrap() <= r.end()));
            }
            // every aligned block in a range is touched by some window (no waste),
            // which with the gaps above makes the count minimal
            for r in &ranges {
                let mut b = r.offset;
                while b < r.end() {
                    prop_assert!(windows.iter().any(|win| win.offset < b + M && b < win.end().unwrap()));
                    b += M;
                }
            }
        }
    }
}
