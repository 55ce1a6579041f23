//! `plexichat-supervisor`: the daemon, or (with the internal launch argument) the
//! single-threaded trampoline that becomes a plugin process.

fn main() -> std::process::ExitCode {
    // Checked before anything else runs: the trampoline must stay single-threaded.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(
            plexichat_supervisor::launcher::LAUNCH_ARG,
        ))
    {
        plexichat_supervisor::launcher::trampoline::main();
    }
    plexichat_supervisor::daemon::main()
}
