//! Ethernet II + IPv4 + UDP frames, as AF_XDP sends and receives them. Pure: no
//! I/O. [`UdpFrameRepr`] is the parsed form; `emit` writes the 42 header bytes in
//! front of a payload and `parse` checks a frame and returns its payload.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::ops::Range;

/// Ethernet header bytes.
pub const ETH_LEN: usize = 14;
/// IPv4 header bytes (no options).
pub const IPV4_LEN: usize = 20;
/// UDP header bytes.
pub const UDP_LEN: usize = 8;
/// All headers in front of the UDP payload.
pub const HEADERS: usize = ETH_LEN + IPV4_LEN + UDP_LEN;
/// The largest UDP payload in a 1500-byte-MTU IPv4 packet.
pub const MAX_UDP_PAYLOAD: usize = 1500 - IPV4_LEN - UDP_LEN;

const ETHERTYPE_IPV4: u16 = 0x0800;
const PROTO_UDP: u8 = 17;

mod field {
    use std::ops::Range;
    pub const DST_MAC: Range<usize> = 0..6;
    pub const SRC_MAC: Range<usize> = 6..12;
    pub const ETHERTYPE: Range<usize> = 12..14;
    // IPv4, relative to the frame start.
    pub const VER_IHL: usize = 14;
    pub const TOTAL_LEN: Range<usize> = 16..18;
    pub const IDENT: Range<usize> = 18..20;
    pub const FRAG: Range<usize> = 20..22;
    pub const TTL: usize = 22;
    pub const PROTO: usize = 23;
    pub const CHECKSUM: Range<usize> = 24..26;
    pub const SRC_IP: Range<usize> = 26..30;
    pub const DST_IP: Range<usize> = 30..34;
    // UDP (no IPv4 options).
    pub const SRC_PORT: Range<usize> = 34..36;
    pub const DST_PORT: Range<usize> = 36..38;
    pub const UDP_LEN: Range<usize> = 38..40;
    pub const UDP_SUM: Range<usize> = 40..42;
}

/// Why a frame is not an IPv4/UDP frame we accept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// Shorter than the headers or than its own length fields say.
    #[error("frame truncated")]
    Truncated,
    /// Not IPv4 (ethertype or version).
    #[error("not IPv4")]
    NotIpv4,
    /// IPv4 options, fragments or a bad header checksum.
    #[error("unsupported or damaged IPv4 header")]
    BadIpv4,
    /// Not UDP.
    #[error("not UDP")]
    NotUdp,
    /// The buffer cannot hold the headers and payload.
    #[error("buffer too small")]
    NoRoom,
}

/// A parsed Ethernet/IPv4/UDP header set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrameRepr {
    /// Ethernet source.
    pub src_mac: [u8; 6],
    /// Ethernet destination.
    pub dst_mac: [u8; 6],
    /// IPv4 source address and UDP source port.
    pub src: SocketAddrV4,
    /// IPv4 destination address and UDP destination port.
    pub dst: SocketAddrV4,
    /// IPv4 identification.
    pub ident: u16,
    /// UDP payload bytes.
    pub payload_len: usize,
}

fn be16(b: &[u8], r: Range<usize>) -> u16 {
    u16::from_be_bytes([b[r.start], b[r.start + 1]])
}

fn ip(b: &[u8], r: Range<usize>) -> Ipv4Addr {
    Ipv4Addr::new(b[r.start], b[r.start + 1], b[r.start + 2], b[r.start + 3])
}

/// The Internet checksum (RFC 1071) of `bytes`.
pub fn internet_checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(*last) << 8;
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

impl UdpFrameRepr {
    /// Total frame length (headers + payload).
    pub fn frame_len(&self) -> usize {
        HEADERS + self.payload_len
    }

    /// Writes the headers into `buf[..HEADERS]` (the payload goes in
    /// `buf[HEADERS..HEADERS + payload_len]`, written by the caller). UDP checksum 0
    /// (allowed for IPv4). Returns the frame length.
    pub fn emit(&self, buf: &mut [u8]) -> Result<usize, FrameError> {
        let len = self.frame_len();
        if buf.len() < len || self.payload_len > MAX_UDP_PAYLOAD {
            return Err(FrameError::NoRoom);
        }
        buf[field::DST_MAC].copy_from_slice(&self.dst_mac);
        buf[field::SRC_MAC].copy_from_slice(&self.src_mac);
        buf[field::ETHERTYPE].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        buf[field::VER_IHL] = 0x45;
        buf[field::VER_IHL + 1] = 0;
        let total = (IPV4_LEN + UDP_LEN + self.payload_len) as u16;
        buf[field::TOTAL_LEN].copy_from_slice(&total.to_be_bytes());
        buf[field::IDENT].copy_from_slice(&self.ident.to_be_bytes());
        buf[field::FRAG].copy_from_slice(&0x4000u16.to_be_bytes()); // DF
        buf[field::TTL] = 64;
        buf[field::PROTO] = PROTO_UDP;
        buf[field::CHECKSUM].copy_from_slice(&[0, 0]);
        buf[field::SRC_IP].copy_from_slice(&self.src.ip().octets());
        buf[field::DST_IP].copy_from_slice(&self.dst.ip().octets());
        let sum = internet_checksum(&buf[ETH_LEN..ETH_LEN + IPV4_LEN]);
        buf[field::CHECKSUM].copy_from_slice(&sum.to_be_bytes());
        buf[field::SRC_PORT].copy_from_slice(&self.src.port().to_be_bytes());
        buf[field::DST_PORT].copy_from_slice(&self.dst.port().to_be_bytes());
        let ulen = (UDP_LEN + self.payload_len) as u16;
        buf[field::UDP_LEN].copy_from_slice(&ulen.to_be_bytes());
        buf[field::UDP_SUM].copy_from_slice(&[0, 0]);
        Ok(len)
    }

    /// Checks `frame` and returns its headers and UDP payload.
    pub fn parse(frame: &[u8]) -> Result<(UdpFrameRepr, &[u8]), FrameError> {
        if frame.len() < HEADERS {
            return Err(FrameError::Truncated);
        }
        if be16(frame, field::ETHERTYPE) != ETHERTYPE_IPV4 || frame[field::VER_IHL] >> 4 != 4 {
            return Err(FrameError::NotIpv4);
        }
        if frame[field::VER_IHL] & 0x0f != 5
            || be16(frame, field::FRAG) & 0x3fff != 0
            || internet_checksum(&frame[ETH_LEN..ETH_LEN + IPV4_LEN]) != 0
        {
            return Err(FrameError::BadIpv4);
        }
        if frame[field::PROTO] != PROTO_UDP {
            return Err(FrameError::NotUdp);
        }
        let total = be16(frame, field::TOTAL_LEN) as usize;
        let ulen = be16(frame, field::UDP_LEN) as usize;
        if total < IPV4_LEN + UDP_LEN || ETH_LEN + total > frame.len() || ulen != total - IPV4_LEN {
            return Err(FrameError::Truncated);
        }
        let payload_len = ulen - UDP_LEN;
        let mut src_mac = [0u8; 6];
        src_mac.copy_from_slice(&frame[field::SRC_MAC]);
        let mut dst_mac = [0u8; 6];
        dst_mac.copy_from_slice(&frame[field::DST_MAC]);
        let repr = UdpFrameRepr {
            src_mac,
            dst_mac,
            src: SocketAddrV4::new(ip(frame, field::SRC_IP), be16(frame, field::SRC_PORT)),
            dst: SocketAddrV4::new(ip(frame, field::DST_IP), be16(frame, field::DST_PORT)),
            ident: be16(frame, field::IDENT),
            payload_len,
        };
        Ok((repr, &frame[HEADERS..HEADERS + payload_len]))
    }
}

/// Parses a MAC address `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim().split(':');
    for m in &mut mac {
        *m = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // The classic example header (checksum field zero) sums to 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&h), 0xb861);
    }

    fn repr(len: usize) -> UdpFrameRepr {
        UdpFrameRepr {
            src_mac: [2, 0, 0, 0, 0, 1],
            dst_mac: [2, 0, 0, 0, 0, 2],
            src: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 1), 47001),
            dst: SocketAddrV4::new(Ipv4Addr::new(10, 77, 0, 2), 47000),
            ident: 7,
            payload_len: len,
        }
    }

    #[test]
    fn emit_then_parse() {
        for len in [0, 1, 32, 1472] {
            let mut buf = vec![0u8; 2048];
            let r = repr(len);
            let n = r.emit(&mut buf).unwrap();
            for (i, b) in buf[HEADERS..n].iter_mut().enumerate() {
                *b = i as u8;
            }
            let (back, payload) = UdpFrameRepr::parse(&buf[..n]).unwrap();
            assert_eq!(back, r);
            assert_eq!(payload.len(), len);
            assert!(payload.iter().enumerate().all(|(i, b)| *b == i as u8));
        }
    }

    #[test]
    fn damaged_frames_are_refused_without_panic() {
        let mut buf = vec![0u8; 100];
        let n = repr(40).emit(&mut buf).unwrap();
        for cut in 0..n {
            assert!(UdpFrameRepr::parse(&buf[..cut]).is_err());
        }
        let mut bad = buf.clone();
        bad[field::TTL] ^= 1;
        assert_eq!(UdpFrameRepr::parse(&bad[..n]), Err(FrameError::BadIpv4));
        let mut bad = buf.clone();
        bad[field::ETHERTYPE.start] = 0x86;
        assert_eq!(UdpFrameRepr::parse(&bad[..n]), Err(FrameError::NotIpv4));
        assert_eq!(repr(1473).emit(&mut [0u8; 4096]), Err(FrameError::NoRoom));
        assert_eq!(repr(100).emit(&mut [0u8; 50]), Err(FrameError::NoRoom));
    }

    #[test]
    fn macs() {
        assert_eq!(
            parse_mac("02:00:0a:ff:00:01\n"),
            Some([2, 0, 0x0a, 0xff, 0, 1])
        );
        assert_eq!(parse_mac("02:00"), None);
        assert_eq!(parse_mac("02:00:0a:ff:00:01:02"), None);
        assert_eq!(parse_mac("zz:00:0a:ff:00:01"), None);
    }
}
