//! Test plugin that dies at once: exit status 1 before any handshake, with one line on
//! stderr, so the suite can check crash detection, restart backoff and log capture.

fn main() {
    eprintln!("crasher: failing on purpose before the handshake");
    std::process::exit(1);
}
