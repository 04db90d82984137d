//! Scalar kernels: always compiled, the oracle every other backend is tested against.

/// FNV-1a 64-bit offset basis.
pub const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64-bit prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Count of bytes equal to `imm`.
pub fn counteq(data: &[u8], imm: u8) -> u64 {
    let mut n = 0u64;
    for &b in data {
        n += u64::from(b == imm);
    }
    n
}

/// XOR of all bytes (0 for empty input).
pub fn xor(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |acc, &b| acc ^ b)
}

/// Wrapping u64 sum of all bytes.
pub fn add(data: &[u8]) -> u64 {
    data.iter()
        .fold(0u64, |acc, &b| acc.wrapping_add(u64::from(b)))
}

/// Continues FNV-1a 64 from `state` over `data`. Start with [`FNV_OFFSET_BASIS`].
pub fn fnv(state: u64, data: &[u8]) -> u64 {
    let mut h = state;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

const CRC32C_POLY_REFLECTED: u32 = 0x82f6_3b78;

const fn crc32c_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                (c >> 1) ^ CRC32C_POLY_REFLECTED
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC32C_TABLE: [u32; 256] = crc32c_table();

/// Continues CRC32C (Castagnoli, reflected, init/xorout 0xFFFFFFFF) from a finished
/// CRC value `crc` over `data`. Start with 0.
pub fn crc32c(crc: u32, data: &[u8]) -> u32 {
    let mut c = !crc;
    for &b in data {
        c = CRC32C_TABLE[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}
