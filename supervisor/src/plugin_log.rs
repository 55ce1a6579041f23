//! A plugin's own log file (`<log_dir>/plugins/<name>.log`): its stdout/stderr
//! and the lines it sends through the broker, each stamped with time and source.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

use crate::clock::{now_ms, rfc3339_ms};

/// Longest line kept; the rest of an overlong line is cut so one plugin cannot
/// fill the disk with a single write.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

pub struct PluginLog {
    file: Mutex<File>,
}

impl PluginLog {
    pub fn open(log_dir: &Path, plugin: &str) -> std::io::Result<PluginLog> {
        let dir = log_dir.join("plugins");
        std::fs::create_dir_all(&dir)?;
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{plugin}.log")))?;
        Ok(PluginLog {
            file: Mutex::new(file),
        })
    }

    pub fn line(&self, source: &str, text: &str) {
        let text = truncate(text.trim_end_matches(['\n', '\r']), MAX_LINE_BYTES);
        let line = format!("{} [{source}] {text}\n", rfc3339_ms(now_ms()));
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
