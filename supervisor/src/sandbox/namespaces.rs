//! The namespaces every plugin gets (mount, pid, net, ipc, uts, cgroup) and the
//! little set-up inside them: a hostname, and the loopback interface up in the
//! otherwise empty network namespace.

use std::io;

use super::sys::Sys;

pub const FLAGS: i32 = libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP;

pub const NAMES: [&str; 6] = ["mnt", "pid", "net", "ipc", "uts", "cgroup"];

/// Enters fresh namespaces. The pid namespace applies to the next child, which the
/// trampoline forks right after.
pub fn enter(sys: &dyn Sys) -> io::Result<()> {
    sys.unshare(FLAGS)
}

/// Like [`enter`] but the cgroup namespace, for a process that forks pid 1 into
/// another cgroup: the cgroup namespace's root is the cgroup it is entered in, so
/// pid 1 enters it itself, in the plugin's cgroup ([`enter_cgroup`]).
pub fn enter_all_but_cgroup(sys: &dyn Sys) -> io::Result<()> {
    sys.unshare(FLAGS & !libc::CLONE_NEWCGROUP)
}

pub fn enter_cgroup(sys: &dyn Sys) -> io::Result<()> {
    sys.unshare(libc::CLONE_NEWCGROUP)
}

/// Inside the namespaces, as root, before credentials are dropped: the plugin's
/// hostname (loopback is brought up before the plugin is known).
pub fn set_up(sys: &dyn Sys, hostname: &str) -> io::Result<()> {
    sys.sethostname(hostname)
}

/// `ip link set lo up` without netlink: SIOCSIFFLAGS on a throwaway socket.
pub fn loopback_up() -> io::Result<()> {
    // SAFETY: plain socket(2); the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ifreq is plain data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: ioctls on our socket with a valid ifreq; the union field written is
    // the flags member SIOCSIFFLAGS reads.
    let result = unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            Err(io::Error::last_os_error())
        } else {
            req.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            if libc::ioctl(fd, libc::SIOCSIFFLAGS, &req) < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(())
            }
        }
    };
    // SAFETY: closing the fd we opened.
    unsafe { libc::close(fd) };
    result
}
