//! Per-plugin cgroups: cgroup v2 with proper delegation (the supervisor moves itself
//! into a leaf and enables cpu, memory and pids for its plugins), or, on hybrid
//! hosts whose controllers live on v1, the v1 hierarchies — said so, never silently.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
const CONTROLLERS: [&str; 3] = ["cpu", "memory", "pids"];
/// CPU quota period in microseconds (100 ms, the kernel default).
const PERIOD_US: u64 = 100_000;

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cgroup: {0}")]
    Unusable(String),
    #[error("cgroup {path}: {source}")]
    Io { path: String, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> CgroupError + '_ {
    move |source| CgroupError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(io_err(path))
}

fn read(path: &Path) -> Result<String, CgroupError> {
    fs::read_to_string(path).map_err(io_err(path))
}

/// Limits applied to one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// CPU in cores (0.5 = 50 ms per 100 ms).
    pub cpu: f64,
    pub memory_bytes: u64,
    pub pids: u32,
}

impl Limits {
    fn quota_us(&self) -> u64 {
        ((self.cpu * PERIOD_US as f64) as u64).max(1000)
    }
}

/// Counters that become runtime security events when they grow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Events {
    pub oom_kills: u64,
    pub pids_max_hits: u64,
    pub throttled_periods: u64,
}

/// High-water marks and the files they were read from (see [`PluginCgroup::peaks`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Peaks {
    pub memory: Option<(u64, &'static str)>,
    pub pids: Option<(u64, &'static str)>,
}

/// Current consumption.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub cpu_usec: u64,
    pub memory_bytes: u64,
    pub pids: u64,
}

#[derive(Debug, Clone)]
enum Layout {
    /// Plugins live under `base/plugins/<name>`.
    V2 { plugins: PathBuf },
    /// One directory per controller hierarchy: `<mount>/plexichat/<name>`.
    V1 {
        cpu: PathBuf,
        cpuacct: Option<PathBuf>,
        memory: PathBuf,
        pids: PathBuf,
    },
}

#[derive(Debug, Clone)]
pub struct Cgroups {
    layout: Layout,
}

impl Cgroups {
    /// Finds a hierarchy that can enforce cpu, memory and pids and prepares it.
    /// v2 first; v1 only when the controllers are bound to v1 (hybrid hosts).
    pub fn prepare(name: &str) -> Result<Cgroups, CgroupError> {
        if is_cgroup2(Path::new(CGROUP_ROOT)) {
            return prepare_v2(Path::new(CGROUP_ROOT), name).map(|plugins| Cgroups {
                layout: Layout::V2 { plugins },
            });
        }
        let mounts = v1_mounts()?;
        let find = |c: &str| {
            mounts
                .iter()
                .find(|(ctl, _)| ctl == c)
                .map(|(_, p)| p.clone())
        };
        let (Some(cpu), Some(memory), Some(pids)) = (find("cpu"), find("memory"), find("pids"))
        else {
            return Err(CgroupError::Unusable(format!(
                "{CGROUP_ROOT} is not cgroup2 and cpu, memory and pids are not all mounted as cgroup v1; plugins cannot be limited"
            )));
        };
        let cpuacct = find("cpuacct");
        let mut roots = vec![cpu.clone(), memory.clone(), pids.clone()];
        roots.extend(cpuacct.clone());
        for root in &roots {
            let dir = root.join(name);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        }
        let plex = |p: PathBuf| p.join(name);
        Ok(Cgroups {
            layout: Layout::V1 {
                cpu: plex(cpu),
                cpuacct: cpuacct.map(plex),
                memory: plex(memory),
                pids: plex(pids),
            },
        })
    }

    /// The directory of the supervisor's own subtree (on v1, its cpu hierarchy's).
    pub fn subtree(&self) -> &Path {
        match &self.layout {
            Layout::V2 { plugins } => plugins,
            Layout::V1 { cpu, .. } => cpu,
        }
    }

    pub fn version(&self) -> &'static str {
        match self.layout {
            Layout::V2 { .. } => "v2",
            Layout::V1 { .. } => "v1",
        }
    }

    fn dirs(&self, plugin: &str) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V2 { plugins } => vec![plugins.join(plugin)],
            Layout::V1 {
                cpu,
                cpuacct,
                memory,
                pids,
            } => {
                let mut v = vec![cpu.join(plugin), memory.join(plugin), pids.join(plugin)];
                v.extend(cpuacct.as_ref().map(|c| c.join(plugin)));
                v
            }
        }
    }

    /// Removes the supervisor's (now empty) v1 parent directories at shutdown.
    pub fn remove_parents(&self) {
        if let Layout::V1 {
            cpu,
            cpuacct,
            memory,
            pids,
        } = &self.layout
        {
            for d in [Some(cpu), cpuacct.as_ref(), Some(memory), Some(pids)]
                .into_iter()
                .flatten()
            {
                let _ = fs::remove_dir(d);
            }
        }
    }

    /// Kills and removes cgroups left by a previous supervisor that died.
    pub fn clean_leftovers(&self) -> Vec<String> {
        let parents: Vec<PathBuf> = match &self.layout {
            Layout::V2 { plugins } => vec![plugins.clone()],
            Layout::V1 {
                cpu,
                memory,
                pids,
                cpuacct,
            } => {
                let mut v = vec![cpu.clone(), memory.clone(), pids.clone()];
                v.extend(cpuacct.clone());
                v
            }
        };
        let mut names: Vec<String> = parents
            .iter()
            .filter_map(|p| fs::read_dir(p).ok())
            .flat_map(|rd| rd.filter_map(|e| e.ok()))
            .filter(|e| e.path().is_dir())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        names.sort();
        names.dedup();
        for name in &names {
            let cg = PluginCgroup {
                version: self.version(),
                dirs: self.dirs(name),
            };
            cg.kill();
            cg.remove();
        }
        names
    }

    /// Names the plugin's cgroup without touching the filesystem yet.
    pub fn plan(&self, plugin: &str, limits: Limits) -> PendingCgroup {
        PendingCgroup {
            cgroup: PluginCgroup {
                version: self.version(),
                dirs: self.dirs(plugin),
            },
            limits,
        }
    }

    /// Creates (or recreates) the plugin's cgroup with `limits` applied and
    /// verified by reading them back.
    pub fn create(&self, plugin: &str, limits: Limits) -> Result<PluginCgroup, CgroupError> {
        let pending = self.plan(plugin, limits);
        pending.make()?;
        Ok(pending.cgroup)
    }
}

/// A plugin's cgroup that is named but not made yet: the launcher makes it where that
/// costs a spawn least (v1: while the trampoline is still exec'ing; v2: right before
/// `clone3` needs it). Either way it exists, limited, before the trampoline gets its spec.
#[derive(Debug, Clone)]
pub struct PendingCgroup {
    cgroup: PluginCgroup,
    limits: Limits,
}

impl PendingCgroup {
    /// The cgroup this will be; removing or killing it before `make` is harmless.
    pub fn cgroup(&self) -> &PluginCgroup {
        &self.cgroup
    }

    /// Creates the directories (replacing leftovers) and applies the limits.
    pub fn make(&self) -> Result<(), CgroupError> {
        self.cgroup.make_bare()?;
        self.apply_limits()
    }

    /// Takes over `warm`, a cgroup made ahead of time that already holds the
    /// process: renamed to this cgroup's name (replacing leftovers), then limited.
    /// A rename moves no process, so nothing waits on a cgroup migration here.
    pub fn adopt(&self, warm: &PluginCgroup) -> Result<(), CgroupError> {
        let cg = &self.cgroup;
        if cg.dirs.iter().any(|d| d.exists()) {
            cg.kill();
            cg.remove();
        }
        for (from, to) in warm.dirs.iter().zip(&cg.dirs) {
            fs::rename(from, to).map_err(io_err(to))?;
        }
        self.apply_limits()
    }

    fn apply_limits(&self) -> Result<(), CgroupError> {
        match self.cgroup.version {
            "v2" => self.cgroup.limit_v2(self.limits),
            _ => self.cgroup.limit_v1(self.limits),
        }
    }
}

/// One plugin's cgroup (one directory on v2, one per controller on v1).
#[derive(Debug, Clone)]
pub struct PluginCgroup {
    version: &'static str,
    dirs: Vec<PathBuf>,
}

impl PluginCgroup {
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// The cgroup named `name` beside this one (same hierarchies and parents).
    pub fn sibling(&self, name: &str) -> PluginCgroup {
        PluginCgroup {
            version: self.version,
            dirs: self.dirs.iter().map(|d| d.with_file_name(name)).collect(),
        }
    }

    /// Creates the directories without limits, replacing leftovers of the same name.
    pub fn make_bare(&self) -> Result<(), CgroupError> {
        if self.dirs.iter().any(|d| d.exists()) {
            self.kill();
            self.remove();
        }
        for d in &self.dirs {
            fs::create_dir(d).map_err(io_err(d))?;
        }
        Ok(())
    }

    pub fn path(&self) -> String {
        self.dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn main(&self) -> &Path {
        &self.dirs[0]
    }

    fn find(&self, file: &str) -> Option<PathBuf> {
        self.dirs.iter().map(|d| d.join(file)).find(|p| p.exists())
    }

    fn limit_v2(&self, l: Limits) -> Result<(), CgroupError> {
        let d = self.main();
        write(&d.join("cpu.max"), &format!("{} {PERIOD_US}", l.quota_us()))?;
        write(&d.join("memory.max"), &l.memory_bytes.to_string())?;
        let swap = d.join("memory.swap.max");
        if swap.exists() {
            write(&swap, "0")?;
        }
        write(&d.join("memory.oom.group"), "1")?;
        write(&d.join("pids.max"), &l.pids.to_string())?;
        let got = read(&d.join("memory.max"))?;
        if got.trim() != l.memory_bytes.to_string() {
            return Err(CgroupError::Unusable(format!(
                "memory.max did not take: wrote {}, reads {}",
                l.memory_bytes,
                got.trim()
            )));
        }
        Ok(())
    }

    fn limit_v1(&self, l: Limits) -> Result<(), CgroupError> {
        let cpu = self.find("cpu.cfs_quota_us").ok_or_else(|| {
            CgroupError::Unusable("cpu.cfs_quota_us missing in the v1 cpu hierarchy".into())
        })?;
        let cpu_dir = cpu.parent().unwrap_or(Path::new("/"));
        write(&cpu_dir.join("cpu.cfs_period_us"), &PERIOD_US.to_string())?;
        write(&cpu, &l.quota_us().to_string())?;
        let mem = self.find("memory.limit_in_bytes").ok_or_else(|| {
            CgroupError::Unusable("memory.limit_in_bytes missing in the v1 memory hierarchy".into())
        })?;
        write(&mem, &l.memory_bytes.to_string())?;
        let mem_dir = mem.parent().unwrap_or(Path::new("/"));
        // Without swap accounting there is no memsw file; swappiness 0 then keeps
        // the plugin's pages out of swap as far as v1 allows.
        let memsw = mem_dir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            write(&memsw, &l.memory_bytes.to_string())?;
        }
        let swappiness = mem_dir.join("memory.swappiness");
        if swappiness.exists() {
            let _ = write(&swappiness, "0");
        }
        let pids = self.find("pids.max").ok_or_else(|| {
            CgroupError::Unusable("pids.max missing in the v1 pids hierarchy".into())
        })?;
        write(&pids, &l.pids.to_string())?;
        Ok(())
    }

    /// On v2, the cgroup directory opened for `clone3(CLONE_INTO_CGROUP)`.
    pub fn v2_dir_fd(&self) -> Option<std::os::fd::OwnedFd> {
        use std::os::unix::fs::OpenOptionsExt;
        if self.version != "v2" {
            return None;
        }
        fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(self.main())
            .ok()
            .map(std::os::fd::OwnedFd::from)
    }

    /// Moves `pid` (and its future children) into the cgroup.
    pub fn add(&self, pid: i32) -> Result<(), CgroupError> {
        for d in &self.dirs {
            write(&d.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    pub fn procs(&self) -> Vec<i32> {
        fs::read_to_string(self.main().join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Kills every process in the cgroup: `cgroup.kill` on v2, else SIGKILL to each
    /// member until none is left (a fork bomb is bounded by pids.max).
    pub fn kill(&self) {
        let kill_file = self.main().join("cgroup.kill");
        if kill_file.exists() && fs::write(&kill_file, "1").is_ok() {
            return;
        }
        for _ in 0..100 {
            let procs: Vec<i32> = self
                .dirs
                .iter()
                .flat_map(|d| {
                    fs::read_to_string(d.join("cgroup.procs"))
                        .unwrap_or_default()
                        .lines()
                        .filter_map(|l| l.trim().parse().ok())
                        .collect::<Vec<i32>>()
                })
                .collect();
            if procs.is_empty() {
                return;
            }
            for pid in procs {
                // SAFETY: kill(2) with a pid read from our own cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Removes the directories once empty (retries briefly while the kernel
    /// finishes reaping).
    pub fn remove(&self) {
        for d in &self.dirs {
            for _ in 0..50 {
                match fs::remove_dir(d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
                }
            }
        }
    }

    /// Removes the directories if they are empty now, without waiting; true once
    /// none is left.
    pub fn try_remove(&self) -> bool {
        self.dirs.iter().all(|d| match fs::remove_dir(d) {
            Ok(()) => true,
            Err(e) => e.kind() == io::ErrorKind::NotFound,
        })
    }

    fn keyed(&self, file: &str, key: &str) -> u64 {
        self.find(file)
            .and_then(|p| fs::read_to_string(p).ok())
            .and_then(|text| {
                text.lines().find_map(|l| {
                    let mut it = l.split_whitespace();
                    (it.next() == Some(key)).then(|| it.next()?.parse().ok())?
                })
            })
            .unwrap_or(0)
    }

    fn single(&self, file: &str) -> u64 {
        self.find(file)
            .and_then(|p| fs::read_to_string(p).ok())
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn events(&self) -> Events {
        match self.version {
            "v2" => Events {
                oom_kills: self.keyed("memory.events", "oom_kill"),
                pids_max_hits: self.keyed("pids.events", "max"),
                throttled_periods: self.keyed("cpu.stat", "nr_throttled"),
            },
            _ => Events {
                oom_kills: self.keyed("memory.oom_control", "oom_kill"),
                pids_max_hits: self.keyed("pids.events", "max"),
                throttled_periods: self.keyed("cpu.stat", "nr_throttled"),
            },
        }
    }

    pub fn usage(&self) -> Usage {
        match self.version {
            "v2" => Usage {
                cpu_usec: self.keyed("cpu.stat", "usage_usec"),
                memory_bytes: self.single("memory.current"),
                pids: self.single("pids.current"),
            },
            _ => Usage {
                cpu_usec: self.single("cpuacct.usage") / 1000,
                memory_bytes: self.single("memory.usage_in_bytes"),
                pids: self.single("pids.current"),
            },
        }
    }

    /// The kernel's high-water marks, each with the file it came from: v2
    /// `memory.peak` and `pids.peak`, v1 `memory.max_usage_in_bytes` (v1 has no pids
    /// peak); `None` where the kernel keeps none.
    pub fn peaks(&self) -> Peaks {
        let read = |file: &'static str| {
            let path = self.find(file)?;
            let value = fs::read_to_string(path).ok()?.trim().parse().ok()?;
            Some((value, file))
        };
        let memory = match self.version {
            "v2" => read("memory.peak"),
            _ => read("memory.max_usage_in_bytes"),
        };
        Peaks {
            memory,
            pids: read("pids.peak"),
        }
    }

    /// The limits as the kernel reports them now.
    pub fn enforced(&self) -> Limits {
        let (quota, mem) = match self.version {
            "v2" => {
                let cpu_max = self
                    .find("cpu.max")
                    .and_then(|p| fs::read_to_string(p).ok())
                    .unwrap_or_default();
                let quota = cpu_max
                    .split_whitespace()
                    .next()
                    .and_then(|q| q.parse::<u64>().ok());
                (quota.unwrap_or(0), self.single("memory.max"))
            }
            _ => (
                self.single("cpu.cfs_quota_us"),
                self.single("memory.limit_in_bytes"),
            ),
        };
        Limits {
            cpu: quota as f64 / PERIOD_US as f64,
            memory_bytes: mem,
            pids: self.single("pids.max") as u32,
        }
    }
}

fn is_cgroup2(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == CGROUP2_SUPER_MAGIC)
        .unwrap_or(false)
}

/// v2 delegation: leave our own cgroup for a `supervisor` leaf (no internal
/// processes), enable the controllers for the subtree, and check they took.
fn prepare_v2(mount: &Path, name: &str) -> Result<PathBuf, CgroupError> {
    let own = own_v2_cgroup()?;
    let mut base = mount.join(own.trim_start_matches('/'));
    if own == "/" {
        // In the root cgroup (no systemd, e.g. a VM or container init): the root
        // may have controllers that are not yet enabled for its children.
        let enable = CONTROLLERS.map(|c| format!("+{c}")).join(" ");
        write(&mount.join("cgroup.subtree_control"), &enable)?;
        base = mount.join(name);
        fs::create_dir_all(&base).map_err(io_err(&base))?;
    }
    let available = read(&base.join("cgroup.controllers"))?;
    let missing: Vec<&str> = CONTROLLERS
        .iter()
        .copied()
        .filter(|c| !available.split_whitespace().any(|a| a == *c))
        .collect();
    if !missing.is_empty() {
        return Err(CgroupError::Unusable(format!(
            "controllers {} are not delegated to {} (is the unit Delegate=yes?)",
            missing.join(", "),
            base.display()
        )));
    }
    let leaf = base.join("supervisor");
    fs::create_dir_all(&leaf).map_err(io_err(&leaf))?;
    write(&leaf.join("cgroup.procs"), &std::process::id().to_string())?;
    let enable = CONTROLLERS.map(|c| format!("+{c}")).join(" ");
    write(&base.join("cgroup.subtree_control"), &enable)?;
    let plugins = base.join("plugins");
    fs::create_dir_all(&plugins).map_err(io_err(&plugins))?;
    write(&plugins.join("cgroup.subtree_control"), &enable)?;
    let enabled = read(&plugins.join("cgroup.subtree_control"))?;
    for c in CONTROLLERS {
        if !enabled.split_whitespace().any(|e| e == c) {
            return Err(CgroupError::Unusable(format!(
                "enabling {c} in {} did not take",
                plugins.join("cgroup.subtree_control").display()
            )));
        }
    }
    Ok(plugins)
}

fn own_v2_cgroup() -> Result<String, CgroupError> {
    let text = read(Path::new("/proc/self/cgroup"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .map(|p| p.trim().to_string())
        .ok_or_else(|| CgroupError::Unusable("no cgroup v2 entry in /proc/self/cgroup".into()))
}

/// `(controller, mount point)` for every cgroup v1 hierarchy.
fn v1_mounts() -> Result<Vec<(String, PathBuf)>, CgroupError> {
    let text = read(Path::new("/proc/self/mountinfo"))?;
    Ok(parse_v1_mounts(&text))
}

fn parse_v1_mounts(mountinfo: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split_whitespace();
        if post.next() != Some("cgroup") {
            continue;
        }
        let super_opts = post.nth(1).unwrap_or_default();
        let Some(mount_point) = pre.split_whitespace().nth(4) else {
            continue;
        };
        for opt in super_opts.split(',') {
            if ["cpu", "cpuacct", "memory", "pids"].contains(&opt) {
                out.push((opt.to_string(), PathBuf::from(mount_point)));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_mounts_are_found_in_mountinfo_including_comounted_cpu_cpuacct() {
        let info = "\
30 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
31 25 0:27 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory
32 25 0:28 / /sys/fs/cgroup/pids rw shared:11 - cgroup cgroup rw,pids
33 25 0:29 / /sys/fs/cgroup/unified rw shared:12 - cgroup2 cgroup2 rw
";
        let m = parse_v1_mounts(info);
        assert!(m.contains(&("cpu".into(), PathBuf::from("/sys/fs/cgroup/cpu,cpuacct"))));
        assert!(m.contains(&(
            "cpuacct".into(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        )));
        assert!(m.contains(&("memory".into(), PathBuf::from("/sys/fs/cgroup/memory"))));
        assert!(m.contains(&("pids".into(), PathBuf::from("/sys/fs/cgroup/pids"))));
        assert_eq!(m.len(), 4);
    }

    #[test]
    fn cpu_quota_is_per_100ms_period_with_a_floor() {
        let l = |cpu| Limits {
            cpu,
            memory_bytes: 0,
            pids: 1,
        };
        assert_eq!(l(0.5).quota_us(), 50_000);
        assert_eq!(l(2.0).quota_us(), 200_000);
        assert_eq!(l(0.0001).quota_us(), 1000);
    }
}
