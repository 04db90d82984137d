//! `pfs`: the PacketFS command.

fn main() -> std::process::ExitCode {
    pfs_control::cli::main()
}
