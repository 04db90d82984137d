//! Shared measurement helpers for the PacketFS benches.
