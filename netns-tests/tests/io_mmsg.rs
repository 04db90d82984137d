//! The `mmsg` backend across a lab veth: TX of N probes (received by mmsg) and RX
//! of N probes (sent by mmsg), payload integrity checked per probe; and an echo
//! round trip through `reflect`.

mod io_common;

use pfs_netns_tests::require_root;

/// Fewer than the receiver's buffers hold (socket buffer, provided buffers), so
/// a receiver descheduled on a busy machine still loses nothing.
const N: u64 = 2000;

#[test]
fn mmsg_tx_across_veth() {
    if !require_root("mmsg_tx_across_veth") {
        return;
    }
    let lab = io_common::lab('m');
    let (t, r, _) = io_common::run(&lab.0, "mmsg", "mmsg", false, N, 1200);
    io_common::assert_exact(&t, &r, N, 1200);
}

#[test]
fn mmsg_rx_across_veth() {
    if !require_root("mmsg_rx_across_veth") {
        return;
    }
    let lab = io_common::lab('m');
    let (t, r, _) = io_common::run(&lab.0, "mmsg", "mmsg", false, N, 64);
    io_common::assert_exact(&t, &r, N, 64);
}

#[test]
fn mmsg_reflect_across_veth() {
    if !require_root("mmsg_reflect_across_veth") {
        return;
    }
    let lab = io_common::lab('m');
    let (t, r, _) = io_common::run(&lab.0, "mmsg", "mmsg", true, 1000, 100);
    io_common::assert_exact(&t, &r, 1000, 100);
    assert_eq!(r.echoed, 1000);
    assert_eq!(t.echoes, 1000);
    assert_eq!(t.rtt.count(), 1000);
}
