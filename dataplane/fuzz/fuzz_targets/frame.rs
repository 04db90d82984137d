#![no_main]
//! Datagram decoder: any bytes → error or a frame that re-encodes to the same
//! bytes. A second pass fixes the length and CRC16 fields first, so the fuzzer
//! reaches the payload parsers instead of stopping at the checksum.
use libfuzzer_sys::fuzz_target;
use pfs_dataplane::iprog::crc16::crc16;
use pfs_dataplane::iprog::frame::decode;

fn roundtrip(data: &[u8]) {
    if let Ok((session, f)) = decode(data) {
        let again = f.to_datagram(session).expect("a decoded frame re-encodes");
        assert_eq!(again, data);
    }
}

fuzz_target!(|data: &[u8]| {
    roundtrip(data);
    if data.len() >= 10 && data.len() <= 1188 {
        let mut d = b"PF\x01".to_vec();
        d.extend_from_slice(&data[..7]);
        let payload = &data[10..];
        d[8..10].copy_from_slice(&(payload.len() as u16).to_le_bytes());
        d.extend_from_slice(payload);
        let c = crc16(&d);
        d.extend_from_slice(&c.to_be_bytes());
        roundtrip(&d);
    }
});
