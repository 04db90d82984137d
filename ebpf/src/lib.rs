//! PacketFS eBPF: the XDP programs (C sources and committed objects under `bpf/`)
//! and the loader that embeds and attaches them.
