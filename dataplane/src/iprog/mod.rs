//! Arithmetic transfer ("send programs, not bytes"), the pure parts: no sockets,
//! no clock, no files.
//!
//! - [`vblob`]: the deterministic VirtualBlob (header, 256 KiB palette, filler)
//!   and its BLAKE3 fingerprint.
//! - [`crc16`]: CRC-16/CCITT-FALSE, the datagram checksum.
//! - [`codec`]: BREF/RAW sections, the IPROG object program, PVRT and OFFS window
//!   containers (`specs/iprog.md`).
//! - [`frame`]: the datagram frames PREFACE, MFST, NEED, WIN, END, DONE
//!   (`specs/udp-transfer.md`), each a byte view plus a parsed form.
//! - [`compile`]: the palette / shared-base compiler (4-byte k-gram index).
//! - [`window`]: a compiled program cut into windows that fit one datagram.
//! - [`proto`]: the sans-I/O sender and receiver state machines.

pub mod codec;
pub mod compile;
pub mod crc16;
pub mod frame;
pub mod proto;
pub mod vblob;
pub mod window;

#[cfg(test)]
mod sim;
#[cfg(test)]
mod vectors;

/// Errors of the byte codecs. Small and `Copy`: decoding never allocates an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer bytes than the format needs.
    #[error("truncated at byte {at}: need {need} more byte(s)")]
    Truncated {
        /// Byte offset where more input was needed.
        at: usize,
        /// How many more bytes were needed.
        need: usize,
    },
    /// The magic bytes are wrong.
    #[error("bad magic at byte {at}")]
    BadMagic {
        /// Byte offset of the magic.
        at: usize,
    },
    /// A version this code does not speak.
    #[error("unsupported version {0}")]
    Version(u8),
    /// The CRC16 trailer does not match the datagram.
    #[error("bad CRC16: computed {computed:#06x}, carried {carried:#06x}")]
    Crc {
        /// CRC computed over the datagram.
        computed: u16,
        /// CRC carried in the trailer.
        carried: u16,
    },
    /// A frame type this code does not know.
    #[error("unknown frame type {0}")]
    UnknownType(u8),
    /// A field holds a value the format forbids.
    #[error("invalid {field} at byte {at}")]
    Invalid {
        /// The field's name, as in the spec.
        field: &'static str,
        /// Byte offset of the field.
        at: usize,
    },
    /// Bytes left over after the last field.
    #[error("{extra} trailing byte(s) at byte {at}")]
    Trailing {
        /// Byte offset of the first extra byte.
        at: usize,
        /// How many bytes were left.
        extra: usize,
    },
    /// An encoding does not fit the space it must fit (e.g. a datagram > 1200 bytes).
    #[error("{what} needs {need} bytes, at most {max} allowed")]
    TooLarge {
        /// What was being encoded.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes allowed.
        max: usize,
    },
}
