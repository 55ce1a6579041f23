//! The supervisor's own process figures for Prometheus, read from /proc/self in the
//! standard `process_*` names (as the official clients export them).

// Why not the `prometheus` crate: it would bring a registry, its own encoder and
// protobuf support to export six numbers that are a few lines each of /proc parsing;
// the endpoint already writes the text format by hand.

use std::path::Path;

#[derive(Debug, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    /// The soft `RLIMIT_NOFILE`; `None` when unlimited.
    pub max_fds: Option<u64>,
    pub start_time_seconds: f64,
    pub threads: u64,
}

/// The figures of this process now.
pub fn read_self() -> std::io::Result<ProcessStats> {
    let proc = Path::new("/proc");
    let stat = std::fs::read_to_string(proc.join("self/stat"))?;
    let boot_time = boot_time(&std::fs::read_to_string(proc.join("stat"))?)
        .ok_or_else(|| invalid("/proc/stat has no btime line"))?;
    let mut stats = parse_stat(&stat, clock_ticks(), page_size(), boot_time)
        .ok_or_else(|| invalid("/proc/self/stat has fewer fields than expected"))?;
    stats.open_fds = std::fs::read_dir(proc.join("self/fd"))?.count() as u64;
    stats.max_fds = max_open_files(&std::fs::read_to_string(proc.join("self/limits"))?);
    Ok(stats)
}

fn invalid(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

fn clock_ticks() -> f64 {
    // SAFETY: sysconf reads a constant of the running system.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

fn page_size() -> u64 {
    // SAFETY: sysconf reads a constant of the running system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).unwrap_or(4096)
}

/// `/proc/[pid]/stat` (proc(5)); fields counted after the `(comm)`, which may hold
/// spaces and parentheses itself. File descriptors are filled in by the caller.
fn parse_stat(text: &str, ticks: f64, page: u64, boot_time: u64) -> Option<ProcessStats> {
    let (_, rest) = text.rsplit_once(')')?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // Field n of proc(5) is f[n - 3]: the state (field 3) comes first.
    let num = |n: usize| f.get(n - 3).and_then(|v| v.parse::<u64>().ok());
    let (utime, stime) = (num(14)?, num(15)?);
    Some(ProcessStats {
        cpu_seconds: (utime + stime) as f64 / ticks,
        threads: num(20)?,
        start_time_seconds: boot_time as f64 + num(22)? as f64 / ticks,
        virtual_bytes: num(23)?,
        resident_bytes: num(24)? * page,
        open_fds: 0,
        max_fds: None,
    })
}

fn boot_time(proc_stat: &str) -> Option<u64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// The soft limit of the `Max open files` row of `/proc/self/limits`.
fn max_open_files(limits: &str) -> Option<u64> {
    let row = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    row.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stat_line_is_read_after_a_comm_with_spaces_and_parentheses() {
        let stat = "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 7 0 1000 123456789 512 18446744073709551615";
        let s = parse_stat(stat, 100.0, 4096, 1_700_000_000).expect("parsed");
        assert!((s.cpu_seconds - 3.0).abs() < 1e-9, "{s:?}");
        assert_eq!(s.threads, 7);
        assert!((s.start_time_seconds - 1_700_000_010.0).abs() < 1e-6);
        assert_eq!(s.virtual_bytes, 123_456_789);
        assert_eq!(s.resident_bytes, 512 * 4096);
        assert_eq!(parse_stat("4242 (short) S 1 2", 100.0, 4096, 0), None);
    }

    #[test]
    fn limits_and_boot_time_rows_are_found() {
        let limits = "Limit                     Soft Limit           Hard Limit           Units\nMax processes             63478                63478                processes\nMax open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024));
        assert_eq!(
            max_open_files(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1764590000\nprocesses 9\n"),
            Some(1_764_590_000)
        );
    }

    #[test]
    fn this_process_reads_sane_figures() {
        let s = read_self().expect("/proc/self");
        assert!(
            s.open_fds > 0 && s.max_fds.is_none_or(|m| s.open_fds < m),
            "{s:?}"
        );
        assert!(s.threads >= 1 && s.resident_bytes > 0, "{s:?}");
        assert!(s.start_time_seconds > 1_500_000_000.0, "{s:?}");
    }
}
