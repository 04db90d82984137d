#![no_main]
//! PVRT/OFFS container decoder and applier against a small blob.
use libfuzzer_sys::fuzz_target;
use pfs_dataplane::iprog::codec::ContainerPacket;

fuzz_target!(|data: &[u8]| {
    let blob: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
    if let Ok(c) = ContainerPacket::new_checked(data, 4096, true) {
        let n = c.decoded_len().min(1 << 20) as usize;
        let mut out = vec![0u8; n];
        let _ = c.apply(&blob, &mut out);
    }
});
