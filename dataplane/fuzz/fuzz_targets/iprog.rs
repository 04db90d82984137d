#![no_main]
//! IPROG reader and rebuild against a small blob.
use libfuzzer_sys::fuzz_target;
use pfs_dataplane::iprog::codec::IprogPacket;

fuzz_target!(|data: &[u8]| {
    let blob = vec![7u8; 8192];
    if let Ok(p) = IprogPacket::new_checked(data) {
        if p.header().object_size <= 1 << 20 {
            let _ = p.rebuild(&blob);
        }
    }
});
