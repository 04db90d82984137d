//! The `pfs` command and the PacketFS control process. Each subsystem is a module
//! with its own error type.

pub mod bench_local;
pub mod blob;
pub mod cli;
pub mod demo;
pub mod plan;
pub mod usage;
pub mod xfer;
