//! The VirtualBlob (`specs/iprog.md` §1): a blob both sides generate from
//! `(name, size, seed)` — a 128-byte header, zero padding to 4096, a 256 KiB
//! palette that does not depend on the seed, then seeded filler.
//!
//! Any byte range can be generated independently ([`VirtualBlob::fill`]), so a
//! file can be written by several threads or compared without holding it whole.

use std::sync::OnceLock;

/// Header magic.
pub const MAGIC: [u8; 8] = *b"PFSVBLOB";
/// Header bytes.
pub const HEADER_LEN: usize = 128;
/// Offset of the palette.
pub const PALETTE_OFFSET: u64 = 4096;
/// Palette bytes (256 KiB).
pub const PALETTE_LEN: usize = 256 * 1024;
/// Offset of the filler; also the smallest blob.
pub const FILLER_OFFSET: u64 = PALETTE_OFFSET + PALETTE_LEN as u64;
/// Largest blob (1 TiB).
pub const MAX_SIZE: u64 = 1 << 40;
/// Longest name in bytes.
pub const MAX_NAME: usize = 64;
/// Bytes of each constant tile.
pub const TILE_LEN: usize = 512;

/// The palette's banks: `(name, offset within the palette, length)`.
pub const BANKS: [(&str, usize, usize); 8] = [
    ("constant tiles 0..255 (512 B each)", 0, 128 * 1024),
    ("ramp", 128 * 1024, 16 * 1024),
    ("gray code (u16 LE)", 144 * 1024, 16 * 1024),
    ("LFSR (x^16+x^14+x^13+x^11+1)", 160 * 1024, 16 * 1024),
    ("periodic stripes", 176 * 1024, 16 * 1024),
    ("numeric stride", 192 * 1024, 16 * 1024),
    ("ASCII tokens", 208 * 1024, 32 * 1024),
    ("ASCII alphabets and digits", 240 * 1024, 16 * 1024),
];

/// Why an identity is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VblobError {
    /// Name empty, too long, or with characters outside `[A-Za-z0-9._-]`.
    #[error("name {0:?}: must be 1..=64 bytes of [A-Za-z0-9._-]")]
    Name(String),
    /// Size outside the allowed range.
    #[error("size {0}: must be between {FILLER_OFFSET} and {MAX_SIZE} bytes")]
    Size(u64),
    /// A header that is not a VirtualBlob header.
    #[error("not a VirtualBlob header: {0}")]
    Header(&'static str),
}

/// The identity of a VirtualBlob.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Identity {
    /// Name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Seed of the filler.
    pub seed: u64,
}

/// A VirtualBlob: an identity whose bytes can be generated on demand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualBlob {
    id: Identity,
    filler_key: u64,
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl VirtualBlob {
    /// Checks the identity.
    pub fn new(id: Identity) -> Result<VirtualBlob, VblobError> {
        let ok = !id.name.is_empty()
            && id.name.len() <= MAX_NAME
            && id
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
        if !ok {
            return Err(VblobError::Name(id.name));
        }
        if !(FILLER_OFFSET..=MAX_SIZE).contains(&id.size) {
            return Err(VblobError::Size(id.size));
        }
        let h = blake3::hash(id.name.as_bytes());
        let mut k = [0u8; 8];
        k.copy_from_slice(&h.as_bytes()[..8]);
        let filler_key = u64::from_le_bytes(k) ^ id.seed;
        Ok(VirtualBlob { id, filler_key })
    }

    /// The identity.
    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// Size in bytes.
    pub fn size(&self) -> u64 {
        self.id.size
    }

    /// The 128-byte header (`specs/iprog.md` §1.1).
    pub fn header(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..8].copy_from_slice(&MAGIC);
        h[8..10].copy_from_slice(&1u16.to_le_bytes());
        h[10..12].copy_from_slice(&(self.id.name.len() as u16).to_le_bytes());
        h[16..24].copy_from_slice(&self.id.size.to_le_bytes());
        h[24..32].copy_from_slice(&self.id.seed.to_le_bytes());
        h[32..40].copy_from_slice(&PALETTE_OFFSET.to_le_bytes());
        h[40..48].copy_from_slice(&(PALETTE_LEN as u64).to_le_bytes());
        h[48..56].copy_from_slice(&FILLER_OFFSET.to_le_bytes());
        h[64..64 + self.id.name.len()].copy_from_slice(self.id.name.as_bytes());
        h
    }

    /// Reads an identity back from a header.
    pub fn parse_header(h: &[u8]) -> Result<Identity, VblobError> {
        if h.len() < HEADER_LEN {
            return Err(VblobError::Header("shorter than 128 bytes"));
        }
        if h[0..8] != MAGIC {
            return Err(VblobError::Header("bad magic"));
        }
        if h[8..10] != 1u16.to_le_bytes() {
            return Err(VblobError::Header("unsupported version"));
        }
        let n = usize::from(u16::from_le_bytes([h[10], h[11]]));
        if n == 0 || n > MAX_NAME {
            return Err(VblobError::Header("bad name length"));
        }
        let name = std::str::from_utf8(&h[64..64 + n])
            .map_err(|_| VblobError::Header("name is not UTF-8"))?
            .to_string();
        let rd = |a: usize| {
            let mut x = [0u8; 8];
            x.copy_from_slice(&h[a..a + 8]);
            u64::from_le_bytes(x)
        };
        Ok(Identity {
            name,
            size: rd(16),
            seed: rd(24),
        })
    }

    /// Writes blob bytes `[offset, offset + buf.len())` into `buf`. Bytes past
    /// the end of the blob are written as 0.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let header = self.header();
        let pal = palette();
        let mut o = offset;
        let mut i = 0usize;
        while i < buf.len() {
            if o >= self.id.size {
                buf[i..].fill(0);
                return;
            }
            if o < PALETTE_OFFSET {
                let n = ((PALETTE_OFFSET - o) as usize).min(buf.len() - i);
                for (j, b) in buf[i..i + n].iter_mut().enumerate() {
                    let a = o as usize + j;
                    *b = if a < HEADER_LEN { header[a] } else { 0 };
                }
                i += n;
                o += n as u64;
            } else if o < FILLER_OFFSET {
                let p = (o - PALETTE_OFFSET) as usize;
                let n = (PALETTE_LEN - p).min(buf.len() - i);
                buf[i..i + n].copy_from_slice(&pal[p..p + n]);
                i += n;
                o += n as u64;
            } else {
                let end = self.id.size.min(o + (buf.len() - i) as u64);
                // Unaligned head, aligned words, tail.
                while o < end {
                    let w = self.filler_word(o / 8).to_le_bytes();
                    let k = (o % 8) as usize;
                    let n = ((8 - k) as u64).min(end - o) as usize;
                    buf[i..i + n].copy_from_slice(&w[k..k + n]);
                    i += n;
                    o += n as u64;
                }
            }
        }
    }

    fn filler_word(&self, w: u64) -> u64 {
        mix(self.filler_key ^ w.wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    /// The whole blob in memory (for tests and small blobs).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = vec![0u8; usize::try_from(self.id.size).unwrap_or(0)];
        self.fill(0, &mut v);
        v
    }

    /// The fingerprint the blob's bytes must have, computed by generating them.
    pub fn fingerprint(&self) -> [u8; 32] {
        let mut h = blob_hasher();
        let mut buf = vec![0u8; 1 << 20];
        let mut o = 0u64;
        while o < self.id.size {
            let n = ((self.id.size - o) as usize).min(buf.len());
            self.fill(o, &mut buf[..n]);
            h.update(&buf[..n]);
            o += n as u64;
        }
        *h.finalize().as_bytes()
    }
}

fn blob_hasher() -> blake3::Hasher {
    blake3::Hasher::new_derive_key("PacketFS 2026 VirtualBlob v1 fingerprint")
}

/// The fingerprint of VirtualBlob bytes (header included, so it covers the identity).
pub fn fingerprint_bytes(blob: &[u8]) -> [u8; 32] {
    let mut h = blob_hasher();
    h.update(blob);
    *h.finalize().as_bytes()
}

/// The fingerprint of a shared base (any file both sides hold): BLAKE3 in
/// derive-key mode over its size (u64 LE) and its bytes.
pub fn base_fingerprint(base: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new_derive_key("PacketFS 2026 shared base v1 fingerprint");
    h.update(&(base.len() as u64).to_le_bytes());
    h.update(base);
    *h.finalize().as_bytes()
}

/// The 256 KiB palette (same for every identity).
pub fn palette() -> &'static [u8] {
    static P: OnceLock<Vec<u8>> = OnceLock::new();
    P.get_or_init(build_palette)
}

const TOKENS: &[&str] = &[
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "that",
    "for",
    "it",
    "as",
    "with",
    "on",
    "by",
    "this",
    "be",
    "are",
    "from",
    "or",
    "at",
    "an",
    "not",
    "data",
    "packet",
    "file",
    "block",
    "byte",
    "offset",
    "length",
    "value",
    "error",
    "true",
    "false",
    "null",
    "none",
    "fn",
    "let",
    "mut",
    "pub",
    "struct",
    "impl",
    "return",
    "if",
    "else",
    "match",
    "for",
    "while",
    "loop",
    "const",
    "static",
    "use",
    "mod",
    "self",
    "int",
    "char",
    "void",
    "def",
    "class",
    "import",
    "print",
    "GET",
    "POST",
    "HTTP/1.1",
    "200",
    "OK",
    "Content-Type:",
    "application/json",
    "text/plain",
    "{",
    "}",
    "[",
    "]",
    "(",
    ")",
    ";",
    ":",
    ",",
    ".",
    "=",
    "==",
    "->",
    "=>",
    "\"",
    "'",
    "#",
    "//",
    "/*",
    "*/",
    "<",
    ">",
    "</",
    "/>",
    "div",
    "span",
    "id",
    "name",
    "type",
    "key",
    "time",
    "date",
    "user",
    "host",
    "port",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
    "6",
    "7",
    "8",
    "9",
    "10",
    "100",
    "1000",
    "0x",
    "ff",
    "00",
    "INFO",
    "WARN",
    "ERROR",
    "DEBUG",
    "lorem",
    "ipsum",
];

fn build_palette() -> Vec<u8> {
    let mut p = Vec::with_capacity(PALETTE_LEN);
    // Constant tiles.
    for v in 0..=255u8 {
        p.extend(std::iter::repeat_n(v, TILE_LEN));
    }
    // Ramp.
    p.extend((0..16 * 1024).map(|j| j as u8));
    // Gray code, u16 LE.
    for j in 0..8 * 1024u32 {
        p.extend_from_slice(&((j ^ (j >> 1)) as u16).to_le_bytes());
    }
    // 16-bit Galois LFSR, taps 0xB400, from state 0xACE1, one byte per step.
    let mut s: u16 = 0xACE1;
    for _ in 0..16 * 1024 {
        let lsb = s & 1;
        s >>= 1;
        if lsb != 0 {
            s ^= 0xB400;
        }
        p.push(s as u8);
    }
    // Periodic stripes: 8 sub-banks of 2 KiB.
    for (period, a, b) in [
        (2usize, 0x00u8, 0xFFu8),
        (4, 0x00, 0xFF),
        (8, 0x00, 0xFF),
        (16, 0x00, 0xFF),
        (64, 0x00, 0xFF),
        (2, 0x55, 0xAA),
        (4, 0x0F, 0xF0),
        (8, 0x20, 0x0A),
    ] {
        p.extend((0..2048).map(|j| if j % period < period / 2 { a } else { b }));
    }
    // Numeric stride: u32 LE i, u32 LE 4096·i, u64 LE i, u16 LE i (4 KiB each).
    for i in 0..1024u32 {
        p.extend_from_slice(&i.to_le_bytes());
    }
    for i in 0..1024u32 {
        p.extend_from_slice(&(i * 4096).to_le_bytes());
    }
    for i in 0..512u64 {
        p.extend_from_slice(&i.to_le_bytes());
    }
    for i in 0..2048u16 {
        p.extend_from_slice(&i.to_le_bytes());
    }
    // ASCII tokens: 32 KiB of tokens in a fixed pseudo-random order.
    let start = p.len();
    let mut x: u64 = 0x005e_ed0f_706b_656e;
    while p.len() - start < 32 * 1024 {
        x = x
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        let t = TOKENS[(x >> 33) as usize % TOKENS.len()];
        p.extend_from_slice(t.as_bytes());
        p.push(if (x >> 20).is_multiple_of(13) {
            b'\n'
        } else {
            b' '
        });
    }
    p.truncate(start + 32 * 1024);
    // ASCII alphabets and digits, 4 KiB each.
    for alphabet in [
        &b"0123456789"[..],
        b"0123456789abcdef",
        b"abcdefghijklmnopqrstuvwxyz",
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZ",
    ] {
        p.extend((0..4096).map(|j| alphabet[j % alphabet.len()]));
    }
    debug_assert_eq!(p.len(), PALETTE_LEN);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> VirtualBlob {
        VirtualBlob::new(Identity {
            name: "t".into(),
            size: FILLER_OFFSET + 10_000,
            seed: 7,
        })
        .unwrap()
    }

    #[test]
    fn palette_layout() {
        let p = palette();
        assert_eq!(p.len(), PALETTE_LEN);
        for v in 0..256usize {
            assert!(
                p[v * TILE_LEN..(v + 1) * TILE_LEN]
                    .iter()
                    .all(|&b| b == v as u8)
            );
        }
        let mut end = 0;
        for (_, off, len) in BANKS {
            assert_eq!(off, end);
            end = off + len;
        }
        assert_eq!(end, PALETTE_LEN);
        assert!(p[208 * 1024..240 * 1024].iter().all(|b| b.is_ascii()));
    }

    #[test]
    fn fill_any_range_equals_whole() {
        let b = small();
        let whole = b.to_vec();
        assert_eq!(VirtualBlob::parse_header(&whole).unwrap(), *b.identity());
        for (o, n) in [
            (0usize, 5usize),
            (3, 200),
            (4090, 20),
            (266_235, 17),
            (266_241, 9),
            (whole.len() - 3, 10),
        ] {
            let mut buf = vec![0xAAu8; n];
            b.fill(o as u64, &mut buf);
            let want: Vec<u8> = (o..o + n)
                .map(|i| whole.get(i).copied().unwrap_or(0))
                .collect();
            assert_eq!(buf, want, "range {o}+{n}");
        }
        assert_eq!(b.fingerprint(), fingerprint_bytes(&whole));
    }

    #[test]
    fn identity_changes_fingerprint() {
        let a = small();
        let mut id = a.identity().clone();
        id.seed = 8;
        let b = VirtualBlob::new(id.clone()).unwrap();
        assert_ne!(a.fingerprint(), b.fingerprint());
        id.seed = 7;
        id.name = "u".into();
        assert_ne!(a.fingerprint(), VirtualBlob::new(id).unwrap().fingerprint());
    }

    #[test]
    fn bad_identities() {
        let id = |name: &str, size| Identity {
            name: name.into(),
            size,
            seed: 0,
        };
        assert!(matches!(
            VirtualBlob::new(id("", FILLER_OFFSET)),
            Err(VblobError::Name(_))
        ));
        assert!(matches!(
            VirtualBlob::new(id("a/b", FILLER_OFFSET)),
            Err(VblobError::Name(_))
        ));
        assert!(matches!(
            VirtualBlob::new(id("a", FILLER_OFFSET - 1)),
            Err(VblobError::Size(_))
        ));
        assert!(VirtualBlob::parse_header(&[0u8; 10]).is_err());
        assert!(VirtualBlob::parse_header(&[0u8; 128]).is_err());
    }
}
