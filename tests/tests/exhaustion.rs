//! No caller and no number of plugins exhausts the supervisor: connections from a uid
//! with no role, per-uid and total caps with room kept for admins, idle connections
//! closed (open streams not), and plugins started only within the fd budget.

mod common;

use std::io::Read;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use broker_proto::admin::v1::{
    DisablePluginRequest, EnablePluginRequest, ListPluginsRequest, PluginRef, RuntimePhase,
    SecurityStatusRequest, WatchEventsRequest,
};
use common::*;

const NOBODY: u32 = 65534;

/// One test at a time: the 500-plugin run would load the machine under the others'
/// latency figures.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
/// Viewer uids of the caps test (no such users are needed: SO_PEERCRED carries uids).
const VIEWER_A: u32 = 61001;
const VIEWER_B: u32 = 61002;

/// Opens `n` connections to `socket` as `uid` (effective uid and gid switched on a
/// thread of its own with the raw syscalls: glibc's wrappers would switch every
/// thread).
fn connect_as(socket: &Path, uid: u32, n: usize) -> Vec<UnixStream> {
    let socket = socket.to_path_buf();
    std::thread::spawn(move || {
        // SAFETY: setresgid/setresuid on this thread only; -1 keeps a value as is.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_setresgid, -1i64, uid as i64, -1i64),
                0
            );
            assert_eq!(
                libc::syscall(libc::SYS_setresuid, -1i64, uid as i64, -1i64),
                0
            );
        }
        (0..n)
            .map(|_| UnixStream::connect(&socket).expect("connect admin socket"))
            .collect()
    })
    .join()
    .expect("connecting thread")
}

fn open_as(socket: &Path, uid: u32, n: usize) -> Vec<UnixStream> {
    connect_as(socket, uid, n)
}

/// Whether the supervisor closes `s` within `within` (end of file or a reset, after
/// whatever it wrote first).
fn closed_within(s: &mut UnixStream, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        s.set_read_timeout(Some(left)).expect("read timeout");
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn timed_plugin_list(d: &Daemon) -> Duration {
    let t = Instant::now();
    d.cli(&["plugin", "list"]).ok();
    t.elapsed()
}

/// The daemon's open fds, from its /proc entry.
fn daemon_fds(d: &Daemon) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", d.pid()))
        .map(|r| r.count())
        .unwrap_or(0)
}

/// Refused connections per (uid, reason) summed over every `admin.connection_refused` record.
fn refused_counts(d: &Daemon, uid: u32, reason: &str) -> u64 {
    d.audit(None)
        .iter()
        .filter(|r| r["action"] == "admin.connection_refused")
        .filter_map(|r| r.get("detail").cloned())
        .flat_map(|detail| detail["refused"].as_array().cloned().unwrap_or_default())
        .filter(|e| e["uid"] == uid && e["reason"] == reason)
        .map(|e| e["count"].as_u64().unwrap_or(0))
        .sum()
}

/// A child process that connects `n` times to `socket` as `uid`, reports how many
/// connections it made and how many of those the supervisor left open (10 s each)
/// (two u32 on `report`), then holds them until killed. A process of its own: the
/// hard RLIMIT_NOFILE here may be below 20 000 plus the test's own fds.
fn flood_process(socket: &Path, uid: u32, n: u32) -> (libc::pid_t, std::fs::File) {
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: a zeroed sockaddr_un is valid; the path is copied in below.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let path = socket.as_os_str().as_bytes();
    assert!(path.len() < addr.sun_path.len());
    for (dst, src) in addr.sun_path.iter_mut().zip(path) {
        *dst = *src as libc::c_char;
    }
    // Filled in by the child, which must not allocate.
    let mut sockets = vec![0i32; n as usize];
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: the child makes only async-signal-safe syscalls, then _exit or pause.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: in the forked child; raw syscalls on values prepared before fork.
        unsafe { flood_child(&addr, uid, &mut sockets, fds[1]) }
    }
    // SAFETY: our end of the pipe, owned from here on.
    unsafe { libc::close(fds[1]) };
    (pid, unsafe { std::fs::File::from_raw_fd(fds[0]) })
}

/// # Safety
/// Only in a child just forked: makes raw syscalls and never returns.
unsafe fn flood_child(addr: &libc::sockaddr_un, uid: u32, sockets: &mut [i32], report: i32) -> ! {
    let n = sockets.len() as u32;
    let lim = libc::rlimit {
        rlim_cur: n as u64 + 256,
        rlim_max: n as u64 + 256,
    };
    // Gone with the test thread that forked it, even if that one panics.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    let ok = libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0
        && libc::syscall(libc::SYS_setresgid, uid as i64, uid as i64, uid as i64) == 0
        && libc::syscall(libc::SYS_setresuid, uid as i64, uid as i64, uid as i64) == 0;
    let mut made = 0u32;
    while ok && made < n {
        let fd = libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0);
        if fd < 0 {
            break;
        }
        let len = std::mem::size_of::<libc::sockaddr_un>() as libc::socklen_t;
        if libc::connect(fd, (addr as *const libc::sockaddr_un).cast(), len) < 0 {
            break;
        }
        sockets[made as usize] = fd;
        made += 1;
    }
    libc::write(report, (&made as *const u32).cast(), 4);
    // Every connection, first to last, must have been closed by the supervisor.
    // Stragglers may still wait in the listen queue on a loaded machine.
    let tv = libc::timeval {
        tv_sec: 10,
        tv_usec: 0,
    };
    let mut open = 0u32;
    let mut buf = [0u8; 512];
    for &fd in &sockets[..made as usize] {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        );
        loop {
            let r = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
            if r > 0 {
                continue;
            }
            let errno = *libc::__errno_location();
            if r < 0 && (errno == libc::EAGAIN || errno == libc::EINTR) {
                open += 1;
            }
            break;
        }
    }
    libc::write(report, (&open as *const u32).cast(), 4);
    loop {
        libc::pause();
    }
}

fn read_u32(f: &mut std::fs::File) -> u32 {
    let mut b = [0u8; 4];
    f.read_exact(&mut b)
        .expect("report from the flooding process");
    u32::from_ne_bytes(b)
}

#[test]
fn twenty_thousand_connections_without_a_role_leave_root_answered_within_a_second() {
    const FLOOD: u32 = 20_000;
    const PROCESSES: u32 = 2;
    let _serial = serial();
    let d = Daemon::start_with(Settings {
        socket_mode: "0666",
        ..Settings::default()
    });
    let quiet: Vec<Duration> = (0..5).map(|_| timed_plugin_list(&d)).collect();
    let quiet_max = quiet.iter().max().copied().unwrap_or_default();

    let floods: Vec<_> = (0..PROCESSES)
        .map(|_| flood_process(&d.socket, NOBODY, FLOOD / PROCESSES))
        .collect();
    let pids: Vec<libc::pid_t> = floods.iter().map(|(pid, _)| *pid).collect();
    let reports = std::thread::spawn(move || {
        floods
            .into_iter()
            .map(|(_, mut f)| (read_u32(&mut f), read_u32(&mut f)))
            .collect::<Vec<_>>()
    });
    let mut during = Vec::new();
    let mut most_fds = 0;
    while !reports.is_finished() {
        during.push(timed_plugin_list(&d));
        most_fds = most_fds.max(daemon_fds(&d));
        // Dense sampling: a fast machine finishes the flood in a few hundred ms.
        std::thread::sleep(Duration::from_millis(5));
    }
    let sampled_during_flood = during.len();
    let reports = reports.join().expect("reports");
    // With all of them still open on the clients' side:
    for _ in 0..5 {
        during.push(timed_plugin_list(&d));
        most_fds = most_fds.max(daemon_fds(&d));
    }
    for pid in pids {
        // SAFETY: kill and reap our own children.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
    }
    let worst = during.iter().max().copied().unwrap_or_default();
    println!(
        "plugin list: quiet worst {quiet_max:?}; during and after {FLOOD} no-role connections: \
         {} samples ({sampled_during_flood} while flooding), worst {worst:?}; daemon fds at most \
         {most_fds}; clients: {reports:?} (made, left open)",
        during.len()
    );
    let made: u32 = reports.iter().map(|r| r.0).sum();
    let left_open: u32 = reports.iter().map(|r| r.1).sum();
    assert_eq!(made, FLOOD, "every connection was accepted");
    assert_eq!(left_open, 0, "connections the supervisor kept open");
    // The figure is only meaningful if root was asked while the flood ran.
    assert!(sampled_during_flood >= 2, "sampled while flooding");
    assert!(worst <= Duration::from_secs(1), "root waited {worst:?}");
    assert!(most_fds < 200, "the daemon held {most_fds} fds");

    // Refused at once, and audited in aggregate: one record per interval, not 20 000.
    wait_until(Duration::from_secs(20), "refusals audited", || {
        refused_counts(&d, NOBODY, "no_role") == u64::from(FLOOD)
    });
    let records = d
        .audit(None)
        .iter()
        .filter(|r| r["action"] == "admin.connection_refused")
        .count();
    println!("{FLOOD} refusals in {records} admin.connection_refused records");
    assert!(records < 20, "{records} records");
    let security =
        std::fs::read_to_string(d.root().join("log/security/plugin_security.log")).unwrap();
    assert!(security.contains("admin.connection_refused"));
    // The CLI of a caller with no role still hears why.
    let out = d.cli_as(NOBODY, &["plugin", "list"]);
    assert!(!out.status.success());
    assert!(
        out.stderr
            .contains("uid=65534 has no role on this supervisor (permission denied)"),
        "{}",
        out.stderr
    );
}

#[test]
fn caps_keep_room_for_admins_and_idle_connections_close_but_streams_stay() {
    let _serial = serial();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let mut d = Daemon::start_with(Settings {
        socket_mode: "0666",
        viewer_uids: vec![VIEWER_A, VIEWER_B],
        extra: "[access.connections]\nmax_per_uid = 4\nmax_total = 10\nadmin_reserve = 3\nidle_timeout = \"3s\"\n".into(),
        ..Settings::default()
    });
    let pkg = d.hello_package();
    d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
    d.cli(&["plugin", "approve", "hello", "--comment", "ok"])
        .ok();
    d.cli(&["plugin", "enable", "hello"]).ok();
    d.wait_running("hello");

    // An open event stream as root on a connection of its own: a call in flight, so
    // never idle. It holds one of the 10 slots.
    let watcher = rt.block_on(d.admin());
    let mut events = rt
        .block_on(watcher.clone().watch_events(WatchEventsRequest {
            topics: vec!["plugin.hello.*".into()],
        }))
        .expect("watch events")
        .into_inner();
    let watching = Instant::now();

    // Viewer A: 4 connections admitted, the 5th refused.
    let opened = Instant::now();
    let mut a = open_as(&d.socket, VIEWER_A, 4);
    for s in &mut a {
        assert!(!closed_within(s, Duration::from_millis(300)), "admitted");
    }
    let mut fifth = open_as(&d.socket, VIEWER_A, 1);
    assert!(
        closed_within(&mut fifth[0], Duration::from_secs(1)),
        "beyond max_per_uid"
    );
    let out = d.cli_as(VIEWER_A, &["plugin", "list"]);
    assert!(
        out.stderr
            .contains("uid=61001 already holds 4 admin-socket connections")
            && out.stderr.contains("resource exhausted"),
        "{}",
        out.stderr
    );
    // Viewer B takes what other roles may still have (10 - 3 kept for admins = 7,
    // less A's 4 and root's watcher)...
    let mut b = open_as(&d.socket, VIEWER_B, 2);
    for s in &mut b {
        assert!(!closed_within(s, Duration::from_millis(300)), "admitted");
    }
    let out = d.cli_as(VIEWER_B, &["plugin", "list"]);
    assert!(
        out.stderr.contains("connection limit for this role"),
        "{}",
        out.stderr
    );
    // ...while root still gets in, on the admins' reserve.
    let list = d.cli(&["--output", "json", "plugin", "list"]).json();
    assert_eq!(list["plugins"][0]["name"], "hello");

    // Idle connections close after the timeout (3 s), not before.
    for s in &mut a {
        assert!(closed_within(s, Duration::from_secs(6)), "idle closed");
    }
    let idle_for = opened.elapsed();
    println!("idle connections closed after {idle_for:?} (idle_timeout 3s)");
    assert!(idle_for >= Duration::from_millis(2500), "{idle_for:?}");
    for s in &mut b {
        assert!(closed_within(s, Duration::from_secs(6)), "idle closed");
    }
    // Their slots came back.
    d.cli_as(VIEWER_A, &["plugin", "list"]).ok();

    // The stream outlived two idle timeouts and still delivers.
    std::thread::sleep(Duration::from_secs(7).saturating_sub(watching.elapsed()));
    d.cli(&[
        "event",
        "publish",
        "chat.message",
        r#"{"text":"still there?"}"#,
    ])
    .ok();
    let reaction = rt
        .block_on(async { tokio::time::timeout(Duration::from_secs(10), events.message()).await })
        .expect("the stream delivers within 10 s")
        .expect("stream still open")
        .expect("an event");
    println!(
        "event stream open {:?}, still delivering",
        watching.elapsed()
    );
    assert_eq!(reaction.topic, "plugin.hello.greeted");

    wait_until(Duration::from_secs(15), "cap refusals audited", || {
        refused_counts(&d, VIEWER_A, "max_per_uid") >= 2
            && refused_counts(&d, VIEWER_B, "max_total") >= 1
    });
    drop(events);
    drop(watcher);
    d.stop();
}

/// A plugin package of the hello binary (stripped: 500 copies are installed) with no
/// permissions, so it needs no approval.
fn bare_package(d: &Daemon, stripped: &Path, name: &str) -> PathBuf {
    let manifest = format!(
        "name = \"{name}\"\nversion = \"0.1.0\"\ndescription = \"fd budget test\"\nauthor = \"tests\"\nentry = \"hello\"\n\n[resources]\ncpu = 0.1\nmemory = \"32MiB\"\npids = 8\n\n[events]\nsubscribe = [\"chat.message\"]\n"
    );
    d.package(name, &manifest, stripped, "hello")
}

async fn phases(admin: &mut Admin) -> (usize, usize, Vec<String>) {
    let list = admin
        .list_plugins(ListPluginsRequest {})
        .await
        .expect("list plugins")
        .into_inner()
        .plugins;
    let running = list
        .iter()
        .filter(|p| p.runtime() == RuntimePhase::Running)
        .count();
    let stopped: Vec<String> = list
        .iter()
        .filter(|p| p.runtime() == RuntimePhase::Stopped)
        .map(|p| p.name.clone())
        .collect();
    (list.len(), running, stopped)
}

type Admin = broker_proto::admin::v1::admin_client::AdminClient<tonic::transport::Channel>;

#[test]
fn five_hundred_plugins_fit_a_raised_limit_and_the_unaffordable_are_refused_clearly() {
    const PLUGINS: usize = 500;
    let _serial = serial();
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // First a hard limit of 1024: only what it affords may start.
    let mut d = Daemon::start_with(Settings {
        uid_count: 600,
        nofile: Some((1024, 1024)),
        handshake_timeout: "30s",
        health_interval: "30s",
        ..Settings::default()
    });
    let stripped = d.root().join("hello-stripped");
    std::fs::copy(example("hello"), &stripped).expect("copy hello");
    let status = std::process::Command::new("strip")
        .arg(&stripped)
        .status()
        .expect("run strip");
    assert!(status.success());
    let names: Vec<String> = (0..PLUGINS).map(|i| format!("fd-{i:03}")).collect();
    let t = Instant::now();
    for name in &names {
        let pkg = bare_package(&d, &stripped, name);
        d.cli(&["plugin", "install", pkg.to_str().unwrap()]).ok();
        std::fs::remove_dir_all(pkg).ok();
    }
    println!("{PLUGINS} installs: {:?}", t.elapsed());
    let mut admin = rt.block_on(d.admin());
    let t = Instant::now();
    for name in &names {
        rt.block_on(admin.enable_plugin(EnablePluginRequest {
            name: name.clone(),
            verify_security: false,
        }))
        .expect("enable");
    }
    let budget = rt
        .block_on(admin.security_status(SecurityStatusRequest::default()))
        .expect("security status")
        .into_inner()
        .fd_budget
        .expect("fd budget");
    println!("hard limit 1024: {budget:?}");
    assert_eq!(budget.limit, 1024);
    assert_eq!(budget.per_plugin, 7);
    let affordable = budget.affordable as usize;
    assert!(affordable > 0 && affordable < PLUGINS, "{affordable}");
    let mut last = (0, 0, Vec::new());
    for _ in 0..600 {
        last = rt.block_on(phases(&mut admin));
        if last.1 + last.2.len() == PLUGINS {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let (_, running, refused) = last;
    println!(
        "hard limit 1024: {running} running, {} refused, after {:?}",
        refused.len(),
        t.elapsed()
    );
    assert_eq!(running + refused.len(), PLUGINS, "every plugin settled");
    assert_eq!(running, affordable, "exactly what the budget affords runs");
    let detail = rt
        .block_on(admin.show_plugin(PluginRef {
            name: refused[0].clone(),
        }))
        .expect("show")
        .into_inner();
    let why = detail.last_exit;
    println!("refused: {why}");
    assert!(
        why.starts_with(&format!("cannot start {}: ", refused[0]))
            && why.contains("of 1024 file descriptors in use")
            && why.contains("a plugin needs 7")
            && why.contains("RLIMIT_NOFILE 1024; raise LimitNOFILE="),
        "{why}"
    );
    let refusals = d
        .audit(None)
        .iter()
        .filter(|r| r["action"] == "plugin.start_refused")
        .count();
    assert_eq!(
        refusals,
        refused.len(),
        "one audited refusal each, no retries"
    );
    let log = d.log();
    assert!(!log.contains("Too many open files"), "no EMFILE anywhere");
    // Root is still answered.
    d.cli(&["plugin", "list"]).ok();
    drop(admin);

    // Then a soft limit of 1024 under a hard one of 8192: raised at start, all run.
    d.nofile = Some((1024, 8192));
    let t = Instant::now();
    d.restart();
    let mut admin = rt.block_on(d.admin());
    let mut running = 0;
    for _ in 0..600 {
        running = rt.block_on(phases(&mut admin)).1;
        if running == PLUGINS {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    println!(
        "soft 1024, hard 8192: {running} of {PLUGINS} running after {:?}",
        t.elapsed()
    );
    assert_eq!(running, PLUGINS);
    assert!(d.log().contains("raised RLIMIT_NOFILE to its hard limit"));
    let budget = rt
        .block_on(admin.security_status(SecurityStatusRequest::default()))
        .expect("security status")
        .into_inner()
        .fd_budget
        .expect("fd budget");
    println!("soft 1024, hard 8192: {budget:?}");
    assert_eq!(budget.limit, 8192);
    assert_eq!(budget.plugins, PLUGINS as u64);
    assert!(budget.affordable >= PLUGINS as u64);
    // What a plugin really costs: the daemon's fds before and after 100 of them stop.
    const STOPPED: usize = 100;
    let before = daemon_fds(&d);
    for name in &names[..STOPPED] {
        rt.block_on(admin.disable_plugin(DisablePluginRequest {
            name: name.clone(),
            force: true,
        }))
        .expect("disable");
    }
    wait_until(Duration::from_secs(60), "100 plugins stopped", || {
        rt.block_on(phases(&mut admin)).1 == PLUGINS - STOPPED
    });
    std::thread::sleep(Duration::from_secs(3)); // drains and reapers finish
    let after = daemon_fds(&d);
    let measured = (before - after) as f64 / STOPPED as f64;
    println!(
        "daemon fds: {before} with {PLUGINS} running, {after} with {}: {measured:.2} per plugin",
        PLUGINS - STOPPED
    );
    assert!(
        measured <= budget.per_plugin as f64 + 0.05,
        "a plugin costs {measured} fds, the budget assumes {}",
        budget.per_plugin
    );
    assert!(!d.log().contains("Too many open files"));
    let text = d.cli(&["security", "plugin-status"]).ok().stdout.clone();
    assert!(
        text.contains("of 8192 in use (RLIMIT_NOFILE); 7 per plugin"),
        "{text}"
    );

    d.cli(&["plugin", "disable-all", "--force"]).ok();
    drop(admin);
    d.stop();
}
