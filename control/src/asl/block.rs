//! Block files (sans-I/O): a 64-byte header, the data region, and after sealing a
//! 64-byte trailer. Normative: `specs/asl.md` §5.

/// Header magic.
pub const HEADER_MAGIC: [u8; 8] = *b"PFSASLB\0";
/// Trailer magic.
pub const TRAILER_MAGIC: [u8; 8] = *b"PFSASLS\0";
/// Block format version.
pub const BLOCK_VERSION: u32 = 1;
/// Header length; the data region starts here.
pub const HEADER_LEN: u64 = 64;
/// Trailer length.
pub const TRAILER_LEN: u64 = 64;

/// Block kinds (header byte 12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockKind {
    /// Many small artifacts packed one after another.
    Packed = 1,
    /// One large artifact.
    Single = 2,
}

/// A parsed block header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockHeader {
    /// Block id (also its file name).
    pub block_id: u64,
    /// Packed or single.
    pub kind: BlockKind,
}

/// A parsed seal trailer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockTrailer {
    /// Data region length.
    pub data_len: u64,
    /// BLAKE3 of the data region.
    pub checksum: [u8; 32],
}

/// Why a header or trailer did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Wrong magic.
    #[error("bad magic")]
    Magic,
    /// Unknown version.
    #[error("unknown block version {0}")]
    Version(u32),
    /// Unknown kind.
    #[error("unknown block kind {0}")]
    Kind(u32),
    /// CRC-32C mismatch.
    #[error("checksum mismatch")]
    Checksum,
    /// Reserved bytes not zero.
    #[error("reserved bytes not zero")]
    Reserved,
}

impl BlockHeader {
    /// The 64 header bytes.
    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&HEADER_MAGIC);
        b[8..12].copy_from_slice(&BLOCK_VERSION.to_le_bytes());
        b[12..16].copy_from_slice(&(self.kind as u32).to_le_bytes());
        b[16..24].copy_from_slice(&self.block_id.to_le_bytes());
        let crc = crc32c::crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks 64 header bytes.
    pub fn decode(b: &[u8; 64]) -> Result<BlockHeader, BlockError> {
        if b[0..8] != HEADER_MAGIC {
            return Err(BlockError::Magic);
        }
        if crc32c::crc32c(&b[0..60]).to_le_bytes() != b[60..64] {
            return Err(BlockError::Checksum);
        }
        let version = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
        if version != BLOCK_VERSION {
            return Err(BlockError::Version(version));
        }
        let kind = match u32::from_le_bytes([b[12], b[13], b[14], b[15]]) {
            1 => BlockKind::Packed,
            2 => BlockKind::Single,
            k => return Err(BlockError::Kind(k)),
        };
        if b[24..60].iter().any(|&x| x != 0) {
            return Err(BlockError::Reserved);
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&b[16..24]);
        Ok(BlockHeader {
            block_id: u64::from_le_bytes(id),
            kind,
        })
    }
}

impl BlockTrailer {
    /// The 64 trailer bytes.
    pub fn encode(&self) -> [u8; 64] {
        let mut b = [0u8; 64];
        b[0..8].copy_from_slice(&TRAILER_MAGIC);
        b[8..16].copy_from_slice(&self.data_len.to_le_bytes());
        b[16..48].copy_from_slice(&self.checksum);
        let crc = crc32c::crc32c(&b[0..60]);
        b[60..64].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Parses and checks 64 trailer bytes.
    pub fn decode(b: &[u8; 64]) -> Result<BlockTrailer, BlockError> {
        if b[0..8] != TRAILER_MAGIC {
            return Err(BlockError::Magic);
        }
        if crc32c::crc32c(&b[0..60]).to_le_bytes() != b[60..64] {
            return Err(BlockError::Checksum);
        }
        if b[48..60].iter().any(|&x| x != 0) {
            return Err(BlockError::Reserved);
        }
        let mut l = [0u8; 8];
        l.copy_from_slice(&b[8..16]);
        let mut checksum = [0u8; 32];
        checksum.copy_from_slice(&b[16..48]);
        Ok(BlockTrailer {
            data_len: u64::from_le_bytes(l),
            checksum,
        })
    }
}

/// The file name of a block: 16 lowercase hex digits and `.blk`.
pub fn file_name(block_id: u64) -> String {
    format!("{block_id:016x}.blk")
}

/// The block id in a block file name, if it is one.
pub fn parse_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_suffix(".blk")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_trailer_roundtrip_and_reject_flips() {
        let h = BlockHeader {
            block_id: 0x0102,
            kind: BlockKind::Packed,
        };
        let t = BlockTrailer {
            data_len: 5,
            checksum: *blake3::hash(b"hello").as_bytes(),
        };
        let hb = h.encode();
        let tb = t.encode();
        assert_eq!(BlockHeader::decode(&hb), Ok(h));
        assert_eq!(BlockTrailer::decode(&tb), Ok(t));
        for bit in 0..512 {
            let mut x = hb;
            x[bit / 8] ^= 1 << (bit % 8);
            assert!(BlockHeader::decode(&x).is_err());
            let mut y = tb;
            y[bit / 8] ^= 1 << (bit % 8);
            assert!(BlockTrailer::decode(&y).is_err());
        }
        assert_eq!(file_name(0x0102), "0000000000000102.blk");
        assert_eq!(parse_file_name("0000000000000102.blk"), Some(0x0102));
        assert_eq!(parse_file_name("102.blk"), None);
    }
}
