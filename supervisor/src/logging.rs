//! Where the supervisor's own log goes: the journal's native protocol (priorities and
//! `PLEXICHAT_*` fields) when stderr is the journal stream, else plain text on stderr.

use std::os::fd::AsRawFd;

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Prefix of every field of an event or span: `plugin` becomes `PLEXICHAT_PLUGIN`, so
/// `journalctl PLEXICHAT_PLUGIN=hello` finds a plugin's lines. The message stays
/// `MESSAGE`.
pub const FIELD_PREFIX: &str = "PLEXICHAT";
pub const SYSLOG_IDENTIFIER: &str = "plexichat-supervisor";

/// Installs the global subscriber; `filter` is `--log` (an `EnvFilter`, `info` if bad).
pub fn init(filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let journal = stderr_is_journal().then(journal_layer);
    let unreachable = match &journal {
        Some(Err(e)) => Some(e.to_string()),
        _ => None,
    };
    let journal = journal.and_then(Result::ok);
    let plain = journal.is_none().then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            // A journal or a log file gets plain text: colour only on a terminal.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
    });
    tracing_subscriber::registry()
        .with(filter)
        .with(journal)
        .with(plain)
        .init();
    if let Some(error) = unreachable {
        tracing::warn!(
            %error,
            "stderr is the journal stream but the journal socket cannot be reached: logging plain text to stderr"
        );
    }
}

/// A layer speaking the native protocol to /run/systemd/journal/socket; fails if
/// nothing listens there.
fn journal_layer() -> std::io::Result<tracing_journald::Layer> {
    Ok(tracing_journald::layer()?
        .with_field_prefix(Some(FIELD_PREFIX.into()))
        .with_syslog_identifier(SYSLOG_IDENTIFIER.into())
        .with_priority_mappings(priorities()))
}

/// syslog priorities as `journalctl -p` reads them. The crate's default puts info at
/// notice (5); ours keeps info at 6 and debug at 7, so `-p info` is what `--log info`
/// printed.
fn priorities() -> PriorityMappings {
    PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

/// Whether stderr is the stream systemd connected to the journal: `$JOURNAL_STREAM`
/// names its device and inode (systemd.exec(5)). A redirected stderr (`2>file` in an
/// `ExecStart` wrapper) keeps the variable but is another file, and gets plain text.
fn stderr_is_journal() -> bool {
    let stream = std::env::var("JOURNAL_STREAM").ok();
    is_journal_stream(stream.as_deref(), std::io::stderr().as_raw_fd())
}

fn is_journal_stream(stream: Option<&str>, fd: std::os::fd::RawFd) -> bool {
    let Some((dev, ino)) = stream.and_then(parse_journal_stream) else {
        return false;
    };
    nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_dev == dev && st.st_ino == ino)
}

/// `<device>:<inode>`, both decimal.
fn parse_journal_stream(value: &str) -> Option<(u64, u64)> {
    let (dev, ino) = value.trim().split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_device_colon_inode() {
        assert_eq!(parse_journal_stream("8:1234"), Some((8, 1234)));
        assert_eq!(parse_journal_stream("0:9\n"), Some((0, 9)));
        for bad in ["", "8", "8:", ":9", "8:x", "-1:2", "8:9:10"] {
            assert_eq!(parse_journal_stream(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_stream_is_the_file_with_that_device_and_inode() {
        let ours = tempfile::NamedTempFile::new().expect("temp file");
        let other = tempfile::NamedTempFile::new().expect("temp file");
        let st = nix::sys::stat::fstat(ours.as_file().as_raw_fd()).expect("fstat");
        let stream = format!("{}:{}", st.st_dev, st.st_ino);
        assert!(is_journal_stream(Some(&stream), ours.as_file().as_raw_fd()));
        assert!(!is_journal_stream(
            Some(&stream),
            other.as_file().as_raw_fd()
        ));
        assert!(!is_journal_stream(None, ours.as_file().as_raw_fd()));
        assert!(!is_journal_stream(
            Some("garbage"),
            ours.as_file().as_raw_fd()
        ));
    }

    #[test]
    fn priorities_follow_syslog() {
        let p = priorities();
        let got = [p.error, p.warn, p.info, p.debug, p.trace].map(|p| p as u8 - b'0');
        assert_eq!(got, [3, 4, 6, 7, 7]);
    }
}
