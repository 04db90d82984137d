//! `pfs`: the PacketFS command.

fn main() -> std::process::ExitCode {
    // Like other Unix tools, end quietly when stdout's reader goes away (`pfs ... |
    // head`) instead of panicking inside println!.
    // SAFETY: setting SIGPIPE's disposition to the default before any other thread
    // exists; no handler code runs.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    pfs_control::cli::main()
}
