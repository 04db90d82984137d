#![no_main]
//! PVRT/OFFS container decoders (checked view and one-pass apply) against a
//! small blob; both must agree.
use libfuzzer_sys::fuzz_target;
use pfs_dataplane::iprog::codec::{ContainerPacket, apply_container};

fuzz_target!(|data: &[u8]| {
    let blob: Vec<u8> = (0..8192u32).map(|i| i as u8).collect();
    let mut a = vec![0u8; 4096];
    let one = apply_container(data, 4096, true, &blob, &mut a);
    if let Ok(c) = ContainerPacket::new_checked(data, 4096, true) {
        let n = c.decoded_len().min(1 << 16) as usize;
        let mut out = vec![0u8; n];
        let two = c.apply(&blob, &mut out);
        if n == 4096 {
            assert_eq!(one.is_ok(), two.is_ok());
            if one.is_ok() {
                assert_eq!(a, out);
            }
        }
    }
});
