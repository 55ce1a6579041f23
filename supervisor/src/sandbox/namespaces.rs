//! The namespaces every plugin gets (mount, pid, net, ipc, uts, cgroup) and the
//! little set-up inside them: a hostname, and the loopback interface up in the
//! otherwise empty network namespace.

use std::io;
use std::os::fd::BorrowedFd;

use super::sys::Sys;

pub const FLAGS: i32 = libc::CLONE_NEWNS
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP;

pub const NAMES: [&str; 6] = ["mnt", "pid", "net", "ipc", "uts", "cgroup"];

/// Enters fresh namespaces. The pid namespace applies to the next child, which the
/// trampoline forks right after. `fresh_net` is an unused network namespace made
/// ahead of time (see `netns_pool`); without one a new one is created here.
pub fn enter(sys: &dyn Sys, fresh_net: Option<BorrowedFd<'_>>) -> io::Result<()> {
    match fresh_net {
        Some(net) => {
            sys.setns(net, libc::CLONE_NEWNET)?;
            sys.unshare(FLAGS & !libc::CLONE_NEWNET)
        }
        None => sys.unshare(FLAGS),
    }
}

/// Inside the namespaces, as root, before credentials are dropped. A network
/// namespace from the pool already has loopback up.
pub fn set_up(sys: &dyn Sys, hostname: &str, loopback_is_up: bool) -> io::Result<()> {
    sys.sethostname(hostname)?;
    if loopback_is_up {
        return Ok(());
    }
    loopback_up()
}

/// `ip link set lo up` without netlink: SIOCSIFFLAGS on a throwaway socket.
pub(crate) fn loopback_up() -> io::Result<()> {
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
