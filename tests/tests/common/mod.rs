//! Test harness shared by the end-to-end suites: a real supervisor daemon on a
//! temporary directory, the real `plexichat` CLI, an admin-API client over the
//! real Unix socket, and plugin packages built from real SDK binaries.
#![allow(dead_code)]

pub mod attack;
pub mod declared;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use broker_proto::admin::v1::admin_client::AdminClient;
use tonic::transport::{Channel, Endpoint};

/// Directory holding the workspace's built binaries (target/debug).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    // target/debug/deps/<test> -> target/debug
    exe.parent()
        .and_then(Path::parent)
        .expect("test executable lives in target/<profile>/deps")
        .to_path_buf()
}

/// A workspace binary: `plexichat`, `plexichat-supervisor`, or a test plugin.
pub fn bin(name: &str) -> PathBuf {
    let env_name = format!("CARGO_BIN_EXE_{name}");
    if let Some(p) = std::env::var_os(env_name) {
        return PathBuf::from(p);
    }
    let p = target_dir().join(name);
    assert!(
        p.exists(),
        "{} is not built: run `make test` (it builds the workspace first)",
        p.display()
    );
    p
}

pub fn example(name: &str) -> PathBuf {
    let p = target_dir().join("examples").join(name);
    assert!(p.exists(), "{} is not built: run `make test`", p.display());
    p
}

/// The SDK bundle Python plugins get at /sdk (`make test` builds it with
/// scripts/python-sdk-bundle.sh); `PLEXICHAT_TEST_PYTHON_SDK` points elsewhere.
pub fn python_sdk_dir() -> PathBuf {
    std::env::var_os("PLEXICHAT_TEST_PYTHON_SDK")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let debug = target_dir();
            debug.parent().unwrap_or(&debug).join("python-sdk")
        })
}

/// Copies a directory tree (files and directories only), modes kept.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let kind = e.file_type().expect("file type");
        let dest = to.join(e.file_name());
        if e.file_name() == "__pycache__" {
            continue;
        }
        if kind.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if kind.is_file() {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

/// Publishes a `chat.message` and waits (10 s) for `plugin`'s `greeted` answer, as the
/// hello examples give: the published event's id and the reaction.
pub async fn greeted_reaction(
    admin: &mut AdminClient<Channel>,
    plugin: &str,
) -> (String, broker_proto::admin::v1::PluginEvent) {
    use broker_proto::admin::v1::{PublishEventRequest, WatchEventsRequest};
    let mut events = admin
        .watch_events(WatchEventsRequest {
            topics: vec![format!("plugin.{plugin}.*")],
        })
        .await
        .expect("watch events")
        .into_inner();
    let published = admin
        .publish_event(PublishEventRequest {
            topic: "chat.message".into(),
            payload: br#"{"text":"hi"}"#.to_vec().into(),
        })
        .await
        .expect("publish")
        .into_inner();
    assert_eq!(published.delivered_to, vec![plugin.to_string()]);
    let reaction = tokio::time::timeout(Duration::from_secs(10), events.message())
        .await
        .unwrap_or_else(|_| panic!("{plugin} reacts within 10s"))
        .expect("stream ok")
        .expect("an event");
    assert_eq!(reaction.topic, format!("plugin.{plugin}.greeted"));
    assert_eq!(reaction.plugin, plugin);
    (published.id, reaction)
}

/// Knobs of the generated supervisor.toml.
#[derive(Clone)]
pub struct Settings {
    pub handshake_timeout: &'static str,
    pub stop_grace: &'static str,
    pub health_interval: &'static str,
    pub backoff_initial: &'static str,
    pub backoff_max: &'static str,
    pub quarantine_after: u32,
    pub quarantine_window: &'static str,
    pub admin_uids: Vec<u32>,
    pub viewer_uids: Vec<u32>,
    pub server_uids: Vec<u32>,
    pub socket_mode: &'static str,
    pub landlock_minimum_abi: u8,
    /// Broker token buckets: calls per second and burst, per plugin and service.
    pub broker_rate: (f64, u32),
    /// How long a command run for execute_commands may take.
    pub exec_timeout: &'static str,
    /// How long an HTTP request made for network_outbound may take.
    pub http_timeout: &'static str,
    /// Extra environment for the daemon (e.g. NOTIFY_SOCKET).
    pub env: Vec<(&'static str, String)>,
    /// Copy the repository's policies/ into the daemon's directory and point
    /// `policy_dir` at it; the closure may then break them.
    pub own_policies: bool,
    /// Appended to the generated file as is: `[[alert]]` rules, `[monitor]`.
    pub extra: String,
    /// `python.interpreter`: the CPython Python plugins run on.
    pub python_interpreter: PathBuf,
    /// `python.sdk_dir`: the SDK bundle (default [`python_sdk_dir`]).
    pub python_sdk: PathBuf,
    /// `python.seccomp_policy`.
    pub python_seccomp_policy: &'static str,
    /// `install.require_signature`: off here, as most tests install unsigned
    /// directories; the signing tests turn it on.
    pub require_signature: bool,
    /// Plugin uids the daemon may hand out (`sandbox.uid_count`).
    pub uid_count: u32,
    /// RLIMIT_NOFILE (soft, hard) the daemon is started with; `None`: the test's own.
    pub nofile: Option<(u64, u64)>,
    /// A directory mounted over /run/systemd in the daemon's own mount namespace (so a
    /// socket at `journal/socket` in it is the journal's), with the daemon's stderr
    /// announced as the journal stream (`JOURNAL_STREAM`).
    pub journal: Option<PathBuf>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            handshake_timeout: "5s",
            stop_grace: "2s",
            health_interval: "2s",
            backoff_initial: "100ms",
            backoff_max: "2s",
            quarantine_after: 5,
            quarantine_window: "1m",
            admin_uids: vec![0],
            viewer_uids: vec![],
            server_uids: vec![],
            socket_mode: "0660",
            landlock_minimum_abi: 6,
            broker_rate: (500.0, 1000),
            exec_timeout: "10s",
            http_timeout: "10s",
            env: Vec::new(),
            own_policies: false,
            extra: String::new(),
            python_interpreter: PathBuf::from("/usr/bin/python3"),
            python_sdk: python_sdk_dir(),
            python_seccomp_policy: "python3",
            require_signature: false,
            uid_count: 100,
            nofile: None,
            journal: None,
        }
    }
}

/// A uid range of 100 no other daemon of this test run uses: RLIMIT_NPROC counts
/// a uid's tasks host-wide, so parallel daemons must not share plugin uids.
fn unique_uid_base(count: u32) -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % 64;
    if count > 100 {
        // Wide ranges (up to 1000 uids) come from a region of their own.
        assert!(count <= 1000, "at most 1000 plugin uids per daemon");
        return 100_000_000 + ((std::process::id() % 10_000) * 8 + n % 8) * 1000;
    }
    1_000_000 + ((std::process::id() % 10_000) * 64 + n) * 100
}

impl Settings {
    /// A cgroup name unique to this daemon, so parallel tests never share cgroups.
    fn cgroup_name(&self, root: &Path) -> String {
        let tag: String = root
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        format!("plexichat-test-{tag}")
    }

    fn render(&self, root: &Path) -> String {
        format!(
            r#"
state_dir = "{root}/state"
log_dir = "{root}/log"
admin_socket = "{root}/run/supervisor.sock"
{policy}

[access]
admin = {{ uids = {admin:?} }}
server = {{ uids = {server:?} }}
viewer = {{ uids = {viewer:?} }}
socket_mode = "{mode}"

[runtime]
handshake_timeout = "{hs}"
stop_grace = "{grace}"
health_interval = "{health}"
health_timeout = "2s"
command_timeout = "5s"
restart_backoff_initial = "{b0}"
restart_backoff_max = "{b1}"
quarantine_after = {qa}
quarantine_window = "{qw}"

[sandbox]
cgroup_name = "{cg}"
landlock_minimum_abi = {ll}
uid_base = {uid_base}
uid_count = {uid_count}

[python]
interpreter = "{interpreter}"
sdk_dir = "{sdk}"
seccomp_policy = "{py_policy}"

[install]
require_signature = {require_signature}

[broker]
rate_per_sec = {rate:?}
burst = {burst}
exec_timeout = "{exec_timeout}"
http_timeout = "{http_timeout}"
{extra}
"#,
            extra = self.extra,
            require_signature = self.require_signature,
            interpreter = self.python_interpreter.display(),
            sdk = self.python_sdk.display(),
            py_policy = self.python_seccomp_policy,
            exec_timeout = self.exec_timeout,
            http_timeout = self.http_timeout,
            rate = self.broker_rate.0,
            burst = self.broker_rate.1,
            cg = self.cgroup_name(root),
            uid_base = unique_uid_base(self.uid_count),
            uid_count = self.uid_count,
            ll = self.landlock_minimum_abi,
            root = root.display(),
            policy = if self.own_policies {
                format!("policy_dir = \"{}/policies\"", root.display())
            } else {
                String::new()
            },
            admin = self.admin_uids,
            server = self.server_uids,
            viewer = self.viewer_uids,
            mode = self.socket_mode,
            hs = self.handshake_timeout,
            grace = self.stop_grace,
            health = self.health_interval,
            b0 = self.backoff_initial,
            b1 = self.backoff_max,
            qa = self.quarantine_after,
            qw = self.quarantine_window,
        )
    }
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub socket: PathBuf,
    pub config: PathBuf,
    env: Vec<(&'static str, String)>,
    /// RLIMIT_NOFILE (soft, hard) for the next start; see `Settings::nofile`.
    pub nofile: Option<(u64, u64)>,
    /// See `Settings::journal`.
    pub journal: Option<PathBuf>,
}

pub struct Cli {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Cli {
    pub fn ok(&self) -> &Self {
        assert!(
            self.status.success(),
            "CLI failed: {}\nstdout: {}",
            self.stderr,
            self.stdout
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        self.ok();
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("CLI output is not JSON ({e}): {}", self.stdout))
    }

    /// The output decoded as its protobuf message by the canonical JSON mapping
    /// (pbjson): fails on an unknown field or a value of the wrong form.
    pub fn message<T: serde::de::DeserializeOwned>(&self) -> T {
        self.ok();
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "CLI output is not a canonical {} ({e}): {}",
                std::any::type_name::<T>(),
                self.stdout
            )
        })
    }
}

/// The plugin's output in `plugin invoke --output json` (an InvokeCommandResponse,
/// its bytes in base64) as text.
pub fn invoke_output(stdout: &str) -> Result<String, String> {
    let resp: broker_proto::admin::v1::InvokeCommandResponse = serde_json::from_str(stdout)
        .map_err(|e| format!("not a canonical InvokeCommandResponse ({e}): {stdout}"))?;
    String::from_utf8(resp.output).map_err(|e| format!("output is not UTF-8: {e}"))
}

/// A 64-bit integer of canonical protobuf JSON: a decimal string (or a number, as
/// decoders also accept); 0 when absent (the default value is left out).
pub fn int(v: &serde_json::Value) -> i64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or_else(|_| panic!("not an integer: {v}")),
        serde_json::Value::Null => 0,
        other => other
            .as_i64()
            .unwrap_or_else(|| panic!("not an integer: {other}")),
    }
}

/// An enum value of canonical JSON by its short lower-case name
/// (`PLUGIN_STATE_ENABLED` is `enabled`); `-` when absent (unspecified).
pub fn short(v: &serde_json::Value) -> String {
    let name = v.as_str().unwrap_or_default();
    const PREFIXES: [&str; 7] = [
        "PLUGIN_STATE_",
        "RUNTIME_PHASE_",
        "ROLE_",
        "OUTCOME_",
        "RISK_",
        "PERMISSION_STATUS_",
        "NOTIFICATION_KIND_",
    ];
    match PREFIXES.iter().find_map(|p| name.strip_prefix(p)) {
        Some(rest) => rest.to_ascii_lowercase(),
        None if name.is_empty() => "-".into(),
        None => panic!("not an admin-API enum value: {v}"),
    }
}

impl From<Output> for Cli {
    fn from(o: Output) -> Cli {
        Cli {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

/// The CLI running on a pseudo-terminal: the child, and the terminal's master side
/// (non-blocking) to read what it drew and type into it.
pub struct OnTerminal {
    pub child: Child,
    pub master: std::fs::File,
}

impl Daemon {
    /// Runs the CLI with `args` on a pseudo-terminal `cols` columns wide.
    pub fn cli_on_terminal(&self, args: &[&str], cols: u16) -> OnTerminal {
        use std::os::fd::{AsRawFd, OwnedFd};
        let winsize = nix::pty::Winsize {
            ws_row: 30,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let pty = nix::pty::openpty(Some(&winsize), None).expect("openpty");
        let slave = |fd: &OwnedFd| Stdio::from(fd.try_clone().expect("dup the pty"));
        let child = Command::new(bin("plexichat"))
            .args(args)
            .env("PLEXICHAT_SOCKET", &self.socket)
            .env("TERM", "xterm-256color")
            .stdin(slave(&pty.slave))
            .stdout(slave(&pty.slave))
            .stderr(slave(&pty.slave))
            .spawn()
            .expect("spawn the CLI");
        drop(pty.slave);
        let master = std::fs::File::from(pty.master);
        // SAFETY: fcntl on a descriptor we own, setting O_NONBLOCK.
        unsafe {
            let fd = master.as_raw_fd();
            libc::fcntl(
                fd,
                libc::F_SETFL,
                libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
            );
        }
        OnTerminal { child, master }
    }

    pub fn start() -> Daemon {
        Daemon::start_with(Settings::default())
    }

    /// Starts a daemon that is expected to refuse to start; returns its exit
    /// status and everything it printed. `prepare` may edit the daemon directory
    /// (e.g. break a policy) first.
    pub fn start_failing(
        settings: Settings,
        prepare: impl FnOnce(&Path),
    ) -> (std::process::ExitStatus, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("supervisor.toml");
        std::fs::write(&config, settings.render(dir.path())).expect("write config");
        if settings.own_policies {
            copy_policies(dir.path());
        }
        prepare(dir.path());
        let out = Command::new(bin("plexichat-supervisor"))
            .arg("--config")
            .arg(&config)
            .envs(settings.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .output()
            .expect("run supervisor");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status, text)
    }

    pub fn start_with(settings: Settings) -> Daemon {
        Daemon::start_prepared(settings, |_| {})
    }

    /// [`Daemon::start_with`], with `prepare` run on the daemon directory first (to
    /// mount a small filesystem at `state/`, say).
    pub fn start_prepared(settings: Settings, prepare: impl FnOnce(&Path)) -> Daemon {
        let dir = tempfile::tempdir().expect("tempdir");
        if settings.own_policies {
            copy_policies(dir.path());
        }
        prepare(dir.path());
        // Other uids (the viewer test) must reach the socket directory.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod tempdir");
        let config = dir.path().join("supervisor.toml");
        std::fs::write(&config, settings.render(dir.path())).expect("write config");
        let socket = dir.path().join("run/supervisor.sock");
        let mut d = Daemon {
            dir,
            child: None,
            socket,
            config,
            env: settings.env,
            nofile: settings.nofile,
            journal: settings.journal,
        };
        d.spawn();
        d
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    fn spawn(&mut self) {
        let log = std::fs::File::create(self.dir.path().join("daemon.log")).expect("daemon log");
        let mut command = Command::new(bin("plexichat-supervisor"));
        if let Some(dir) = &self.journal {
            journal_namespace(&mut command, dir, &log);
        }
        command
            .arg("--config")
            .arg(&self.config)
            .env("PLEXICHAT_LOG", "debug")
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup log"))
            .stderr(log);
        if let Some((soft, hard)) = self.nofile {
            use std::os::unix::process::CommandExt;
            let lim = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            // SAFETY: setrlimit is async-signal-safe; `lim` is a plain copied value.
            unsafe {
                command.pre_exec(move || {
                    if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        let child = command.spawn().expect("spawn supervisor");
        self.child = Some(child);
        let socket = self.socket.clone();
        wait_until(Duration::from_secs(20), "admin socket accepts", || {
            std::os::unix::net::UnixStream::connect(&socket).is_ok()
        });
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("daemon running")
    }

    /// SIGTERM and wait: the graceful stop systemd would do.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
    }

    /// SIGKILL: the supervisor dies without any chance to clean up.
    pub fn crash(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    pub fn cli(&self, args: &[&str]) -> Cli {
        self.cli_command(args)
            .output()
            .expect("run plexichat")
            .into()
    }

    pub fn cli_as(&self, uid: u32, args: &[&str]) -> Cli {
        use std::os::unix::process::CommandExt;
        self.cli_command(args)
            .uid(uid)
            .gid(uid)
            .output()
            .expect("run plexichat")
            .into()
    }

    fn cli_command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("plexichat"));
        c.env("PLEXICHAT_SOCKET", &self.socket).args(args);
        c
    }

    pub async fn admin(&self) -> AdminClient<Channel> {
        let path = self.socket.clone();
        let channel = Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_| {
                let p = path.clone();
                async move {
                    Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(
                        tokio::net::UnixStream::connect(p).await?,
                    ))
                }
            }))
            .await
            .expect("connect admin socket");
        AdminClient::new(channel)
    }

    /// Writes a plugin package: `plugin.toml` plus `binary` copied as `entry`. A
    /// manifest that declares no commands gets the ones `binary` answers
    /// (`declared::answered_by`), as a real plugin's manifest would declare them.
    pub fn package(&self, dir_name: &str, manifest: &str, binary: &Path, entry: &str) -> PathBuf {
        let dir = self.dir.path().join("packages").join(dir_name);
        std::fs::create_dir_all(&dir).expect("package dir");
        let manifest = declared::with_commands(manifest, binary);
        std::fs::write(dir.join("plugin.toml"), manifest).expect("manifest");
        std::fs::copy(binary, dir.join(entry)).expect("copy plugin binary");
        dir
    }

    /// A Python plugin's package: `source` (a directory holding plugin.toml and its
    /// code) copied as it is, so the manifest's declared commands are the author's.
    pub fn python_package(&self, dir_name: &str, source: &Path) -> PathBuf {
        let dir = self.dir.path().join("packages").join(dir_name);
        copy_tree(source, &dir);
        dir
    }

    /// The hello example, packaged with its shipped manifest.
    pub fn hello_package(&self) -> PathBuf {
        let manifest = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk/examples/hello/plugin.toml"),
        )
        .expect("hello manifest");
        self.package("hello", &manifest, &example("hello"), "hello")
    }

    /// Installs and enables `binary` as plugin `name` with a manifest asking for no
    /// permission; its pid once it runs.
    pub fn run_plugin(&self, name: &str, binary: &Path) -> i32 {
        let manifest = format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n");
        let pkg = self.package(name, &manifest, binary, name);
        self.cli(&["plugin", "install", pkg.to_str().expect("utf-8")])
            .ok();
        self.cli(&["plugin", "enable", name]).ok();
        self.wait_running(name)
    }

    /// Installs, approves and enables the hello example; its pid once it runs.
    pub fn run_hello(&self) -> i32 {
        let pkg = self.hello_package();
        self.cli(&["plugin", "install", pkg.to_str().expect("utf-8")])
            .ok();
        self.cli(&["plugin", "approve", "hello", "--comment", "ok"])
            .ok();
        self.cli(&["plugin", "enable", "hello"]).ok();
        self.wait_running("hello")
    }

    pub fn plugin_json(&self, name: &str) -> serde_json::Value {
        self.cli(&["--output", "json", "plugin", "show", name])
            .json()
    }

    /// `security plugin-status --plugin NAME` as JSON: that plugin's entry.
    pub fn security_of(&self, name: &str) -> serde_json::Value {
        let status = self
            .cli(&[
                "--output",
                "json",
                "security",
                "plugin-status",
                "--plugin",
                name,
            ])
            .json();
        status["plugins"][0].clone()
    }

    pub fn plugin_pid(&self, name: &str) -> Option<i32> {
        let v = self.plugin_json(name);
        let pid = int(&v["summary"]["pid"]) as i32;
        (pid > 0).then_some(pid)
    }

    pub fn runtime_of(&self, name: &str) -> String {
        short(&self.plugin_json(name)["summary"]["runtime"])
    }

    pub fn wait_running(&self, name: &str) -> i32 {
        wait_until(Duration::from_secs(20), &format!("{name} running"), || {
            self.runtime_of(name) == "running"
        });
        self.plugin_pid(name).expect("running plugin has a pid")
    }

    pub fn audit(&self, plugin: Option<&str>) -> Vec<serde_json::Value> {
        let mut args = vec![
            "audit",
            "plugins",
            "--output-format",
            "json",
            "--limit",
            "10000",
        ];
        if let Some(p) = plugin {
            args.extend(["--plugin", p]);
        }
        let v = self.cli(&args).json();
        v["records"].as_array().cloned().unwrap_or_default()
    }

    pub fn audit_actions(&self, plugin: Option<&str>) -> Vec<(String, String)> {
        self.audit(plugin)
            .iter()
            .map(|r| {
                (
                    r["action"].as_str().unwrap_or_default().to_string(),
                    short(&r["outcome"]),
                )
            })
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Copies the repository's policies/ (catalog and seccomp policies) into `root/policies`.
/// See `Settings::journal`: the daemon alone sees `dir` as /run/systemd.
fn journal_namespace(command: &mut Command, dir: &Path, stderr: &std::fs::File) {
    use std::os::fd::AsRawFd;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::process::CommandExt;
    let target = Path::new("/run/systemd");
    assert!(
        target.is_dir(),
        "{} is needed as a mount point",
        target.display()
    );
    let source = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("no NUL");
    let st = nix::sys::stat::fstat(stderr.as_raw_fd()).expect("fstat daemon.log");
    command.env("JOURNAL_STREAM", format!("{}:{}", st.st_dev, st.st_ino));
    // SAFETY: between fork and exec only unshare(2) and mount(2) on C strings made
    // before the fork.
    unsafe {
        command.pre_exec(move || {
            let null = std::ptr::null();
            let ok = |r: libc::c_int| {
                if r < 0 {
                    Err(std::io::Error::last_os_error())
                } else {
                    Ok(())
                }
            };
            ok(libc::unshare(libc::CLONE_NEWNS))?;
            // Nothing mounted here reaches the host's namespace.
            ok(libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                null as *const libc::c_void,
            ))?;
            ok(libc::mount(
                source.as_ptr(),
                c"/run/systemd".as_ptr(),
                null,
                libc::MS_BIND,
                null as *const libc::c_void,
            ))
        });
    }
}

pub fn copy_policies(root: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let dst = root.join("policies");
    std::fs::create_dir_all(dst.join("seccomp")).expect("policies dir");
    std::fs::copy(src.join("permissions.toml"), dst.join("permissions.toml"))
        .expect("copy catalog");
    for e in std::fs::read_dir(src.join("seccomp")).expect("seccomp dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dst.join("seccomp").join(e.file_name()))
            .expect("copy seccomp policy");
    }
}

/// The plugin process itself: the child of the trampoline the supervisor tracks.
pub fn plugin_process(trampoline: i32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{trampoline}/task/{trampoline}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

pub fn process_alive(pid: i32) -> bool {
    // A zombie still has /proc/<pid>; it is gone only once its stat says so.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// The lines a child prints on `stdout`, as they come (read on a thread of their own).
pub fn lines_of(stdout: std::process::ChildStdout) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("timed out after {timeout:?} waiting for: {what}");
}

/// The launcher's pool cgroups (`.warm-*`) in `parent`, the directory holding the
/// plugins' cgroups.
pub fn warm_cgroups(parent: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(parent)
        .map(|rd| {
            rd.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with(".warm-"))
                })
                .collect()
        })
        .unwrap_or_default()
}
