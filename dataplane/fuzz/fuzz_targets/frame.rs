#![no_main]
//! Datagram decoder: any bytes → error or a frame that re-encodes to the same bytes.
use libfuzzer_sys::fuzz_target;
use pfs_dataplane::iprog::frame::decode;

fuzz_target!(|data: &[u8]| {
    if let Ok((session, f)) = decode(data) {
        let again = f.to_datagram(session).expect("a decoded frame re-encodes");
        assert_eq!(again, data);
    }
});
