//! Test plugin that starts but never handshakes (and never touches fd 3), so the suite
//! can check the supervisor's handshake deadline kills and reports it.

use std::time::Duration;

fn main() {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
