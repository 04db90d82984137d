//! PacketFS dataplane: the fast path as a library.
//!
//! Pure parts have no I/O: [`kernels`] (SIMD byte kernels with a scalar oracle),
//! [`ranges`] (the 1 MiB range planner), [`fill`] (deterministic blob content) and
//! [`exec`] (instructions split into windows and combined). [`workers`] pins
//! threads to cores, [`stats`] keeps latency histograms, [`mapped`] maps files.
//! [`io`] holds the batched UDP backends (mmsg, io_uring, AF_XDP) and
//! [`linerate`] the line-rate probe format and loops.

pub mod exec;
pub mod fill;
pub mod io;
pub mod iprog;
pub mod kernels;
pub mod linerate;
pub mod mapped;
pub mod netns;
pub mod ranges;
pub mod specvec;
pub mod stats;
pub mod workers;
