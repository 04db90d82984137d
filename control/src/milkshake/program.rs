//! The pure part of Milkshake (`specs/milkshake.md` §2–§5): programs, the counter
//! rules they install, the packets they send, and the decoding of counters into a
//! result with its accounting. No I/O.

use std::fmt;
use std::str::FromStr;

use pfs_dataplane::kernels::Kernels;
use serde::Serialize;

use super::MilkshakeError;

/// Default UDP port (the seed's `port=51999`).
pub const DEFAULT_PORT: u16 = 51999;

/// Ports below this are reserved (well-known services) and refused (§3).
pub const FIRST_USABLE_PORT: u16 = 1024;

/// Byte offset, inside the UDP payload, of the byte a rule matches (§2).
pub const PAYLOAD_OFFSET: u16 = 0;

/// Payload byte of every `word` packet (§2.3); counters ignore it.
pub const WORD_PAYLOAD: u8 = b'm';

/// One counter rule: packets to UDP port `dport` (and, when `byte` is set, whose
/// payload byte at offset `.0` equals `.1`). Every rule a packet matches counts
/// it (§2); every program has one port-only rule per port (its total).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// Destination UDP port.
    pub dport: u16,
    /// `(payload offset, value)` the payload byte must equal, if any.
    pub byte: Option<(u16, u8)>,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.byte {
            Some((off, v)) => write!(f, "udp dport {} payload[{off}] == 0x{v:02x}", self.dport),
            None => write!(f, "udp dport {}", self.dport),
        }
    }
}

/// Which program (§2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ProgramKind {
    /// Byte histogram: 256 byte rules plus the port's total.
    Histogram,
    /// Count of bytes equal to an immediate.
    CountEq,
    /// A text sent as packet counts per port.
    Word,
}

impl ProgramKind {
    /// The program's name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ProgramKind::Histogram => "histogram",
            ProgramKind::CountEq => "counteq",
            ProgramKind::Word => "word",
        }
    }
}

impl FromStr for ProgramKind {
    type Err = MilkshakeError;
    fn from_str(s: &str) -> Result<ProgramKind, MilkshakeError> {
        match s {
            "histogram" => Ok(ProgramKind::Histogram),
            "counteq" => Ok(ProgramKind::CountEq),
            "word" => Ok(ProgramKind::Word),
            other => Err(MilkshakeError::UnknownProgram(other.to_string())),
        }
    }
}

/// A checked program: kind, immediate, port(s) and its input. Built only by
/// [`Program::new`], which enforces §3.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    kind: ProgramKind,
    imm: Option<u8>,
    port: u16,
    input: Vec<u8>,
}

/// One packet to send: its destination port and its one-byte payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// Destination UDP port.
    pub dport: u16,
    /// Payload (one byte).
    pub payload: u8,
}

impl Program {
    /// Checks a program (§3): non-empty input; `imm` only and always for
    /// `counteq`, in 0..=255; every port in 1024..=65535.
    pub fn new(
        kind: ProgramKind,
        imm: Option<i64>,
        port: u16,
        input: Vec<u8>,
    ) -> Result<Program, MilkshakeError> {
        if input.is_empty() {
            return Err(MilkshakeError::EmptyInput);
        }
        let imm = match (kind, imm) {
            (ProgramKind::CountEq, None) => return Err(MilkshakeError::MissingImm),
            (_, Some(v)) if !(0..=255).contains(&v) => {
                return Err(MilkshakeError::ImmOutOfRange(v));
            }
            (_, v) => v.map(|v| v as u8),
        };
        if port < FIRST_USABLE_PORT {
            return Err(MilkshakeError::ReservedPort(port));
        }
        if kind == ProgramKind::Word {
            let last = u32::from(port) + input.len() as u32 - 1;
            if last > u32::from(u16::MAX) {
                return Err(MilkshakeError::TextTooLong {
                    len: input.len(),
                    port,
                    available: usize::from(u16::MAX - port) + 1,
                });
            }
        }
        Ok(Program {
            kind,
            imm,
            port,
            input,
        })
    }

    /// The program kind.
    pub fn kind(&self) -> ProgramKind {
        self.kind
    }

    /// The immediate (`counteq` always has one; `histogram` may, to report that
    /// one count beside the histogram).
    pub fn imm(&self) -> Option<u8> {
        self.imm
    }

    /// The (first) port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The input bytes (file contents or text).
    pub fn input(&self) -> &[u8] {
        &self.input
    }

    /// The inclusive port range the program uses.
    pub fn ports(&self) -> (u16, u16) {
        match self.kind {
            ProgramKind::Word => (self.port, self.port + (self.input.len() - 1) as u16),
            _ => (self.port, self.port),
        }
    }

    /// The counter rules, in evaluation order (§2).
    pub fn rules(&self) -> Vec<Rule> {
        let p = self.port;
        match self.kind {
            ProgramKind::Histogram => {
                let mut r: Vec<Rule> = (0..=255u8)
                    .map(|v| Rule {
                        dport: p,
                        byte: Some((PAYLOAD_OFFSET, v)),
                    })
                    .collect();
                r.push(Rule {
                    dport: p,
                    byte: None,
                });
                r
            }
            ProgramKind::CountEq => vec![
                Rule {
                    dport: p,
                    byte: Some((PAYLOAD_OFFSET, self.imm.unwrap_or(0))),
                },
                Rule {
                    dport: p,
                    byte: None,
                },
            ],
            ProgramKind::Word => (0..self.input.len())
                .map(|i| Rule {
                    dport: p + i as u16,
                    byte: None,
                })
                .collect(),
        }
    }

    /// Number of packets the program sends.
    pub fn packet_count(&self) -> u64 {
        match self.kind {
            ProgramKind::Word => self.input.iter().map(|&b| u64::from(b)).sum(),
            _ => self.input.len() as u64,
        }
    }

    /// The packets, in sending order (§2): one per input byte for `histogram` and
    /// `counteq`; for `word`, byte *i*'s value many to port `port + i`.
    pub fn packets(&self) -> impl Iterator<Item = Packet> + '_ {
        let port = self.port;
        let word = self.kind == ProgramKind::Word;
        self.input.iter().enumerate().flat_map(move |(i, &b)| {
            let (dport, payload, n) = if word {
                (port + i as u16, WORD_PAYLOAD, usize::from(b))
            } else {
                (port, b, 1)
            };
            std::iter::repeat_n(Packet { dport, payload }, n)
        })
    }

    /// Packets per port `(port, count)` in port order, for the whole program.
    pub fn planned_per_port(&self) -> Vec<(u16, u64)> {
        match self.kind {
            ProgramKind::Word => self
                .input
                .iter()
                .enumerate()
                .map(|(i, &b)| (self.port + i as u16, u64::from(b)))
                .collect(),
            _ => vec![(self.port, self.input.len() as u64)],
        }
    }
}

/// What the sender did: packets sent per port, in port order (§4).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct SentTally {
    per_port: Vec<(u16, u64)>,
}

impl SentTally {
    /// An empty tally for a program's ports.
    pub fn for_program(p: &Program) -> SentTally {
        SentTally {
            per_port: p
                .planned_per_port()
                .into_iter()
                .map(|(q, _)| (q, 0))
                .collect(),
        }
    }

    /// Records one packet sent to `dport` (ignored if the port is not the program's).
    pub fn record(&mut self, dport: u16) {
        if let Some(first) = self.per_port.first().map(|e| e.0)
            && let Some(e) = self
                .per_port
                .get_mut(usize::from(dport.wrapping_sub(first)))
            && e.0 == dport
        {
            e.1 += 1;
        }
    }

    /// Packets sent to `dport`.
    pub fn sent_to(&self, dport: u16) -> u64 {
        self.per_port
            .iter()
            .find(|e| e.0 == dport)
            .map_or(0, |e| e.1)
    }

    /// Packets sent in total.
    pub fn total(&self) -> u64 {
        self.per_port.iter().map(|e| e.1).sum()
    }
}

/// Accounting (§4): counters against what was sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Accounting {
    /// Packets the program meant to send.
    pub planned: u64,
    /// Packets sent.
    pub sent: u64,
    /// Packets counted by the program's rules.
    pub counted: u64,
    /// Packets counted on a port beyond what was sent there (stray traffic).
    pub stray: u64,
    /// Packets sent to a port but not counted there.
    pub not_counted: u64,
    /// Every planned packet was sent.
    pub complete: bool,
    /// `complete`, no stray and nothing uncounted: the counters are the result.
    pub exact: bool,
}

/// The decoded result (§5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "program", rename_all = "lowercase")]
pub enum Decoded {
    /// Byte histogram and what follows from it.
    Histogram {
        /// Count of each byte value.
        #[serde(serialize_with = "ser_hist")]
        histogram: Box<[u64; 256]>,
        /// Bytes counted (Σ histogram).
        bytes: u64,
        /// Σ v·count(v), wrapping u64 (the `add` kernel).
        sum: u64,
        /// XOR of the values with an odd count (the `xor` kernel).
        xor: u8,
        /// counteq for the requested imm, if any.
        counteq: Option<(u8, u64)>,
        /// Packets on the port whose payload matched no byte rule (total − bytes).
        rest: u64,
    },
    /// counteq.
    CountEq {
        /// The immediate.
        imm: u8,
        /// Bytes equal to it.
        count: u64,
        /// Other packets on the port.
        rest: u64,
    },
    /// The message read back from the per-port counters.
    Word {
        /// Per-port counts; a count above 255 cannot be a byte.
        counts: Vec<u64>,
        /// The message as bytes (`None` where a count exceeds 255).
        bytes: Vec<Option<u8>>,
        /// The message as text (lossy UTF-8; `?` for impossible counts).
        text: String,
    },
}

fn ser_hist<S: serde::Serializer>(h: &[u64; 256], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(h.iter())
}

/// The CPU kernels' answer for the same data (§6), in the same shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Oracle {
    /// Kernel backend used.
    pub backend: String,
    /// The expected decoded result.
    pub expected: Decoded,
}

/// Decodes counters (one per rule of [`Program::rules`], in order) into a result
/// and accounts them against what was sent (§4, §5).
pub fn decode(
    p: &Program,
    counters: &[u64],
    sent: &SentTally,
) -> Result<(Decoded, Accounting), MilkshakeError> {
    let rules = p.rules();
    if counters.len() != rules.len() {
        return Err(MilkshakeError::CounterCount {
            expected: rules.len(),
            got: counters.len(),
        });
    }
    let decoded = match p.kind {
        ProgramKind::Histogram => {
            let mut h = Box::new([0u64; 256]);
            h.copy_from_slice(&counters[..256]);
            let bytes: u64 = h.iter().sum();
            decoded_histogram(h, counters[256].saturating_sub(bytes), p.imm)
        }
        ProgramKind::CountEq => Decoded::CountEq {
            imm: p.imm.unwrap_or(0),
            count: counters[0],
            rest: counters[1].saturating_sub(counters[0]),
        },
        ProgramKind::Word => decoded_word(counters.to_vec()),
    };
    // Per-port: seen on the port (its port-only rule) vs sent to it.
    let mut stray = 0u64;
    let mut not_counted = 0u64;
    let mut counted = 0u64;
    for (port, _) in p.planned_per_port() {
        let seen: u64 = rules
            .iter()
            .zip(counters)
            .filter(|(r, _)| r.dport == port && r.byte.is_none())
            .map(|(_, c)| *c)
            .sum();
        let s = sent.sent_to(port);
        counted += seen;
        stray += seen.saturating_sub(s);
        not_counted += s.saturating_sub(seen);
    }
    let planned = p.packet_count();
    let complete = sent.total() == planned;
    let acc = Accounting {
        planned,
        sent: sent.total(),
        counted,
        stray,
        not_counted,
        complete,
        exact: complete && stray == 0 && not_counted == 0,
    };
    Ok((decoded, acc))
}

fn decoded_histogram(h: Box<[u64; 256]>, rest: u64, imm: Option<u8>) -> Decoded {
    let mut sum = 0u64;
    let mut xor = 0u8;
    let mut bytes = 0u64;
    for (v, &c) in h.iter().enumerate() {
        sum = sum.wrapping_add((v as u64).wrapping_mul(c));
        if c % 2 == 1 {
            xor ^= v as u8;
        }
        bytes += c;
    }
    let counteq = imm.map(|v| (v, h[usize::from(v)]));
    Decoded::Histogram {
        histogram: h,
        bytes,
        sum,
        xor,
        counteq,
        rest,
    }
}

fn decoded_word(counts: Vec<u64>) -> Decoded {
    let bytes: Vec<Option<u8>> = counts.iter().map(|&c| u8::try_from(c).ok()).collect();
    let raw: Vec<u8> = bytes.iter().map(|b| b.unwrap_or(b'?')).collect();
    let text = String::from_utf8_lossy(&raw).into_owned();
    Decoded::Word {
        counts,
        bytes,
        text,
    }
}

/// The CPU oracle (§6): the same result computed by `pfs_dataplane::kernels` over
/// the input: counteq for every value (histogram), `add`, `xor`; for `word`, the
/// text itself. `rest` is what the program's own packets put there: 0 for
/// `histogram`, the non-matching bytes for `counteq`.
pub fn oracle(p: &Program, k: &Kernels) -> Oracle {
    let data = &p.input;
    let expected = match p.kind {
        ProgramKind::Histogram => {
            let mut h = Box::new([0u64; 256]);
            for (v, slot) in h.iter_mut().enumerate() {
                *slot = k.counteq(data, v as u8);
            }
            let imm = p.imm;
            // Cross-check sum and xor with their own kernels rather than the
            // histogram, so the oracle is three independent computations.
            let sum = k.add(data);
            let xor = k.xor(data);
            match decoded_histogram(h, 0, imm) {
                Decoded::Histogram {
                    histogram,
                    bytes,
                    counteq,
                    rest,
                    ..
                } => Decoded::Histogram {
                    histogram,
                    bytes,
                    sum,
                    xor,
                    counteq,
                    rest,
                },
                other => other,
            }
        }
        ProgramKind::CountEq => {
            let imm = p.imm.unwrap_or(0);
            let count = k.counteq(data, imm);
            Decoded::CountEq {
                imm,
                count,
                rest: data.len() as u64 - count,
            }
        }
        ProgramKind::Word => decoded_word(data.iter().map(|&b| u64::from(b)).collect()),
    };
    Oracle {
        backend: k.backend().name().to_string(),
        expected,
    }
}

/// The counters an ideal firewall shows after `packets` (every matching rule
/// counts): the reference the backends are tested against (§2).
pub fn simulate(rules: &[Rule], packets: impl Iterator<Item = Packet>) -> Vec<u64> {
    let mut c = vec![0u64; rules.len()];
    for pk in packets {
        for (i, r) in rules.iter().enumerate() {
            let hit = r.dport == pk.dport
                && match r.byte {
                    None => true,
                    Some((0, v)) => pk.payload == v,
                    Some(_) => false,
                };
            if hit {
                c[i] += 1;
            }
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prog(kind: ProgramKind, imm: Option<i64>, input: &[u8]) -> Program {
        Program::new(kind, imm, DEFAULT_PORT, input.to_vec()).expect("valid program")
    }

    fn run_ideal(p: &Program) -> (Decoded, Accounting) {
        let mut sent = SentTally::for_program(p);
        for pk in p.packets() {
            sent.record(pk.dport);
        }
        let c = simulate(&p.rules(), p.packets());
        decode(p, &c, &sent).expect("decode")
    }

    fn data(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    #[test]
    fn histogram_equals_oracle() {
        let k = Kernels::scalar();
        for (n, seed) in [(1, 1), (5, 2), (4096, 3), (70_001, 4)] {
            let p = prog(ProgramKind::Histogram, Some(7), &data(n, seed));
            let (d, acc) = run_ideal(&p);
            assert!(acc.exact, "{acc:?}");
            assert_eq!(acc.counted, n as u64);
            assert_eq!(d, oracle(&p, &k).expected);
        }
    }

    #[test]
    fn histogram_rules_shape() {
        let p = prog(ProgramKind::Histogram, None, b"x");
        let r = p.rules();
        assert_eq!(r.len(), 257);
        assert_eq!(r[65].byte, Some((0, 65)));
        assert_eq!(r[256].byte, None);
        assert!(r.iter().all(|r| r.dport == DEFAULT_PORT));
    }

    #[test]
    fn counteq_equals_oracle_for_every_imm() {
        let k = Kernels::scalar();
        let d = data(3000, 9);
        for imm in [0i64, 1, 127, 200, 255] {
            let p = prog(ProgramKind::CountEq, Some(imm), &d);
            let (got, acc) = run_ideal(&p);
            assert!(acc.exact);
            assert_eq!(got, oracle(&p, &k).expected);
        }
    }

    #[test]
    fn word_reads_back_message() {
        let p = prog(ProgramKind::Word, None, b"Milkshake!");
        assert_eq!(p.ports(), (51999, 52008));
        assert_eq!(
            p.packet_count(),
            b"Milkshake!".iter().map(|&b| b as u64).sum::<u64>()
        );
        let (d, acc) = run_ideal(&p);
        assert!(acc.exact);
        match &d {
            Decoded::Word { text, .. } => assert_eq!(text, "Milkshake!"),
            other => panic!("not a word: {other:?}"),
        }
        assert_eq!(d, oracle(&p, &Kernels::scalar()).expected);
    }

    #[test]
    fn word_zero_byte_sends_nothing_and_reads_back() {
        let p = prog(ProgramKind::Word, None, &[0, 3, 0]);
        assert_eq!(p.packet_count(), 3);
        let (d, acc) = run_ideal(&p);
        assert!(acc.exact);
        assert_eq!(d, oracle(&p, &Kernels::scalar()).expected);
    }

    #[test]
    fn stray_and_lost_are_reported() {
        let p = prog(ProgramKind::Histogram, None, b"abc");
        let mut sent = SentTally::for_program(&p);
        for pk in p.packets() {
            sent.record(pk.dport);
        }
        let mut c = simulate(&p.rules(), p.packets());
        c[b'z' as usize] += 2; // two stray packets: their byte rule and the total
        c[256] += 2;
        let (_, acc) = decode(&p, &c, &sent).expect("decode");
        assert_eq!((acc.stray, acc.not_counted, acc.exact), (2, 0, false));
        let mut c = simulate(&p.rules(), p.packets());
        c[b'a' as usize] -= 1; // one lost
        c[256] -= 1;
        let (_, acc) = decode(&p, &c, &sent).expect("decode");
        assert_eq!((acc.stray, acc.not_counted, acc.exact), (0, 1, false));
    }

    #[test]
    fn word_stray_on_one_port_lost_on_another_do_not_cancel() {
        let p = prog(ProgramKind::Word, None, b"ab");
        let mut sent = SentTally::for_program(&p);
        for pk in p.packets() {
            sent.record(pk.dport);
        }
        let c = vec![u64::from(b'a') + 1, u64::from(b'b') - 1];
        let (d, acc) = decode(&p, &c, &sent).expect("decode");
        assert_eq!((acc.stray, acc.not_counted, acc.exact), (1, 1, false));
        assert_eq!(acc.counted, acc.sent);
        match d {
            Decoded::Word { text, .. } => assert_eq!(text, "ba"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn incomplete_send_is_not_exact() {
        let p = prog(ProgramKind::CountEq, Some(1), &[1, 2, 3]);
        let mut sent = SentTally::for_program(&p);
        let pk: Vec<_> = p.packets().take(2).collect();
        for x in &pk {
            sent.record(x.dport);
        }
        let c = simulate(&p.rules(), pk.into_iter());
        let (_, acc) = decode(&p, &c, &sent).expect("decode");
        assert!(!acc.complete && !acc.exact);
        assert_eq!((acc.stray, acc.not_counted), (0, 0));
    }

    #[test]
    fn word_count_over_255_is_not_a_byte() {
        let p = prog(ProgramKind::Word, None, b"a");
        let (d, _) = decode(&p, &[300], &SentTally::for_program(&p)).expect("decode");
        match d {
            Decoded::Word { bytes, text, .. } => {
                assert_eq!(bytes, vec![None]);
                assert_eq!(text, "?");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_programs_are_refused() {
        use MilkshakeError as E;
        let p = |k, imm, port, input: &[u8]| Program::new(k, imm, port, input.to_vec());
        assert!(matches!(
            p(ProgramKind::Histogram, None, 51999, b""),
            Err(E::EmptyInput)
        ));
        assert!(matches!(
            p(ProgramKind::CountEq, None, 51999, b"x"),
            Err(E::MissingImm)
        ));
        assert!(matches!(
            p(ProgramKind::CountEq, Some(256), 51999, b"x"),
            Err(E::ImmOutOfRange(256))
        ));
        assert!(matches!(
            p(ProgramKind::Word, None, 80, b"x"),
            Err(E::ReservedPort(80))
        ));
        assert!(matches!(
            p(ProgramKind::Word, None, 65535, b"ab"),
            Err(E::TextTooLong { len: 2, .. })
        ));
        assert!(p(ProgramKind::Word, None, 65534, b"ab").is_ok());
        assert!(matches!(
            "sum".parse::<ProgramKind>(),
            Err(E::UnknownProgram(_))
        ));
        assert!(matches!(
            decode(
                &p(ProgramKind::Word, None, 2000, b"ab").expect("ok"),
                &[1],
                &SentTally::default()
            ),
            Err(E::CounterCount {
                expected: 2,
                got: 1
            })
        ));
    }

    #[test]
    fn tally_ignores_foreign_ports() {
        let p = prog(ProgramKind::Word, None, b"ab");
        let mut t = SentTally::for_program(&p);
        t.record(1);
        t.record(DEFAULT_PORT + 1);
        t.record(DEFAULT_PORT + 2);
        assert_eq!(t.total(), 1);
        assert_eq!(t.sent_to(DEFAULT_PORT + 1), 1);
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// decode(ideal firewall(encode(x))) equals the CPU oracle, exactly
        /// accounted, for every program and any input and port.
        #[test]
        fn every_program_round_trips(
            input in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..100),
            imm in 0i64..=255,
            port in 1024u16..=65535,
        ) {
            let k = Kernels::scalar();
            for kind in [ProgramKind::Histogram, ProgramKind::CountEq, ProgramKind::Word] {
                let Ok(p) = Program::new(kind, Some(imm), port, input.clone()) else {
                    // Only a word may not fit above the port.
                    proptest::prop_assert!(kind == ProgramKind::Word);
                    proptest::prop_assert!(usize::from(port) + input.len() - 1 > 65535);
                    continue;
                };
                let (d, acc) = run_ideal(&p);
                proptest::prop_assert!(acc.exact);
                proptest::prop_assert_eq!(acc.counted, p.packet_count());
                proptest::prop_assert_eq!(d, oracle(&p, &k).expected);
            }
        }
    }

    /// The vectors of `specs/milkshake.md` §7.
    #[test]
    fn spec_vectors() {
        let spec = include_str!("../../../specs/milkshake.md");
        let blocks = pfs_dataplane::specvec::blocks(spec, "vectors");
        assert!(!blocks.is_empty());
        let mut n = 0;
        for line in blocks.iter().flat_map(|b| b.lines()) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.is_empty() {
                continue;
            }
            let kind: ProgramKind = f[0].parse().expect("program");
            let input = pfs_dataplane::specvec::unhex(f[1]).expect("hex input");
            let imm = f
                .iter()
                .find_map(|x| x.strip_prefix("imm="))
                .map(|v| v.parse::<i64>().expect("imm"));
            let p = Program::new(kind, imm, DEFAULT_PORT, input).expect("program");
            let counters = simulate(&p.rules(), p.packets());
            let want: Vec<u64> = f
                .iter()
                .find_map(|x| x.strip_prefix("counters="))
                .expect("counters=")
                .split(',')
                .map(|kv| kv.parse().expect("counter"))
                .collect();
            // counters= lists the non-zero counters as index:count pairs flattened
            // into index,count,index,count…
            let mut nz = Vec::new();
            for (i, &c) in counters.iter().enumerate() {
                if c != 0 {
                    nz.push(i as u64);
                    nz.push(c);
                }
            }
            assert_eq!(nz, want, "{line}");
            let (d, _) = run_ideal(&p);
            for kv in &f[2..] {
                let (k, v) = kv.split_once('=').expect("k=v");
                let got = match (&d, k) {
                    (Decoded::Histogram { sum, .. }, "sum") => sum.to_string(),
                    (Decoded::Histogram { xor, .. }, "xor") => format!("{xor:02x}"),
                    (Decoded::CountEq { count, .. }, "count") => count.to_string(),
                    (Decoded::Word { text, .. }, "text") => text.clone(),
                    (_, "imm" | "counters" | "packets") => continue,
                    _ => panic!("unknown key {k} in {line}"),
                };
                assert_eq!(got, v, "{line}");
            }
            if let Some(pk) = f.iter().find_map(|x| x.strip_prefix("packets=")) {
                assert_eq!(p.packet_count().to_string(), pk, "{line}");
            }
            n += 1;
        }
        assert!(n >= 3);
    }
}
