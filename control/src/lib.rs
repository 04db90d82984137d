//! The `pfs` command and the PacketFS control process. Each subsystem is a module
//! with its own error type.

pub mod asl;
pub mod bench_local;
pub mod blob;
pub mod cli;
pub mod demo;
pub mod edge;
pub mod lab;
pub mod linerate;
pub mod milkshake;
pub mod pasm;
pub mod plan;
pub mod usage;
pub mod xfer;
