//! The `plexichat` command-line client; everything lives in
//! `plexichat_supervisor::cli` so it can be unit-tested with the library.

fn main() -> std::process::ExitCode {
    plexichat_supervisor::cli::main()
}
