//! The `uring` backend across a lab veth: TX of N probes (received by mmsg) and RX
//! of N probes (sent by mmsg), payload integrity checked per probe; and an echo
//! round trip through `reflect`.

mod io_common;

use pfs_netns_tests::require_root;

/// Fewer than the receiver's buffers hold (socket buffer, provided buffers), so
/// a receiver descheduled on a busy machine still loses nothing.
const N: u64 = 2000;

#[test]
fn uring_tx_across_veth() {
    if !require_root("uring_tx_across_veth") {
        return;
    }
    let lab = io_common::lab('u');
    let (t, r, _) = io_common::run(&lab.0, "uring", "mmsg", false, N, 1200);
    io_common::assert_exact(&t, &r, N, 1200);
}

#[test]
fn uring_rx_across_veth() {
    if !require_root("uring_rx_across_veth") {
        return;
    }
    let lab = io_common::lab('u');
    let (t, r, _) = io_common::run(&lab.0, "mmsg", "uring", false, N, 64);
    io_common::assert_exact(&t, &r, N, 64);
}

#[test]
fn uring_reflect_across_veth() {
    if !require_root("uring_reflect_across_veth") {
        return;
    }
    let lab = io_common::lab('u');
    let (t, r, _) = io_common::run(&lab.0, "uring", "uring", true, 1000, 100);
    io_common::assert_exact(&t, &r, 1000, 100);
    assert_eq!(r.echoed, 1000);
    assert_eq!(t.echoes, 1000);
    assert_eq!(t.rtt.count(), 1000);
}
