//! Shared pieces of the benchmarks: a supervisor daemon on a temporary directory,
//! an admin client over its socket, and percentile statistics.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use broker_proto::admin::v1::admin_client::AdminClient;
use tonic::transport::{Channel, Endpoint};

/// Median and tail of a sample, in microseconds.
#[derive(Debug, Clone, Copy)]
pub struct Stats {
    pub n: usize,
    pub p50: f64,
    pub p99: f64,
    pub min: f64,
}

pub fn stats(samples_us: &[f64]) -> Stats {
    let mut v = samples_us.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let at = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        n: v.len(),
        p50: at(0.5),
        p99: at(0.99),
        min: v[0],
    }
}

/// Directory of the release binaries.
pub fn release_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe()?;
    Ok(exe
        .parent()
        .context("bench binary has a directory")?
        .to_path_buf())
}

pub struct Daemon {
    pub dir: tempfile::TempDir,
    child: Child,
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts the release supervisor with `extra` appended to a generated config.
    pub fn start(extra: &str) -> Result<Daemon> {
        let dir = tempfile::tempdir()?;
        let root = dir.path();
        let tag: String = root
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default()
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        let config = format!(
            "state_dir = \"{r}/state\"\nlog_dir = \"{r}/log\"\nadmin_socket = \"{r}/run/s.sock\"\n\
             [runtime]\nhealth_interval = \"1h\"\nrestart_backoff_initial = \"10ms\"\n\
             [sandbox]\ncgroup_name = \"plexichat-bench-{tag}\"\n\
             [install]\nrequire_signature = false\n{extra}\n",
            r = root.display()
        );
        std::fs::write(root.join("supervisor.toml"), config)?;
        let log = std::fs::File::create(root.join("daemon.log"))?;
        let child = Command::new(release_dir()?.join("plexichat-supervisor"))
            .arg("--config")
            .arg(root.join("supervisor.toml"))
            .env("PLEXICHAT_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("starting plexichat-supervisor (run `make bench`, which builds it)")?;
        let socket = root.join("run/s.sock");
        let start = Instant::now();
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if start.elapsed() > Duration::from_secs(20) {
                bail!(
                    "supervisor did not start: {}",
                    std::fs::read_to_string(root.join("daemon.log"))?
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Daemon { dir, child, socket })
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub async fn admin(&self) -> Result<AdminClient<Channel>> {
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
            .await?;
        Ok(AdminClient::new(channel))
    }

    /// A plugin package with no permissions around `binary`.
    pub fn package(&self, name: &str, binary: &Path) -> Result<PathBuf> {
        let dir = self.root().join("pkg").join(name);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("plugin.toml"),
            // bench_broker invokes `bench-calls` of the echo plugin; nothing else is invoked.
            format!("name = \"{name}\"\nversion = \"1.0.0\"\nentry = \"{name}\"\n[resources]\ncpu = 1.0\nmemory = \"128MiB\"\npids = 32\n[[commands]]\nname = \"bench-calls\"\n"),
        )?;
        std::fs::copy(binary, dir.join(name))?;
        Ok(dir)
    }
}

/// The repository checkout the benchmarks were built from.
pub fn repo_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The `[python]` section pointing at the SDK bundle `make bench` builds.
pub fn python_config() -> String {
    format!(
        "[python]\ninterpreter = \"/usr/bin/python3\"\nsdk_dir = \"{}\"\n",
        repo_dir().join("target/python-sdk").display()
    )
}

/// A Python plugin package: the files of `source` under the repository, with a
/// manifest of its own (no permissions, so no review is needed to start it).
pub fn python_package(
    daemon: &Daemon,
    name: &str,
    source: &str,
    commands: &[&str],
) -> Result<PathBuf> {
    let dir = daemon.root().join("pkg").join(name);
    std::fs::create_dir_all(&dir)?;
    std::fs::copy(repo_dir().join(source).join("main.py"), dir.join("main.py"))
        .with_context(|| format!("copying {source}/main.py"))?;
    let mut manifest = format!(
        "name = \"{name}\"\nversion = \"1.0.0\"\nruntime = \"python3\"\nentry = \"main.py\"\n\
         [resources]\ncpu = 1.0\nmemory = \"128MiB\"\npids = 32\n"
    );
    for c in commands {
        manifest.push_str(&format!("[[commands]]\nname = \"{c}\"\n"));
    }
    std::fs::write(dir.join("plugin.toml"), manifest)?;
    Ok(dir)
}

/// Installs the package at `dir` as the CLI does: read here, streamed to the
/// daemon (it opens no path of ours).
pub async fn install(admin: &mut AdminClient<Channel>, dir: &Path) -> Result<()> {
    use broker_proto::admin::v1::{UploadHeader, UploadIntent};
    use plexichat_supervisor::package::pack;
    let plan = pack::plan(dir)?;
    let header = UploadHeader {
        intent: UploadIntent::Install as i32,
        name: String::new(),
        origin: dir.display().to_string(),
        ..UploadHeader::default()
    };
    let (stream, packer) = pack::stream(plan, header);
    let answer = admin.upload_plugin(stream).await;
    packer.await??;
    answer?;
    Ok(())
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
