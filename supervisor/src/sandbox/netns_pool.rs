//! Fresh, empty network namespaces made ahead of time, so a plugin spawn joins one
//! (setns, microseconds) instead of creating it on the spawn path.

// Why: of the six namespaces a plugin gets, the network one is by far the dearest to
// create (~0.6 ms of the ~0.85 ms `unshare` here). A background thread keeps a couple
// ready, each with only loopback, up. Every namespace is handed out once and the pool
// never sees it again; when the pool is empty the trampoline creates one itself, so the
// result is the same either way, only the timing differs.

use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::mpsc::{sync_channel, Receiver};

/// Namespaces kept ready: a burst of spawns beyond this falls back to `unshare`.
const READY: usize = 2;

/// The receiving end of the pool; the maker thread ends when this is dropped.
pub struct NetnsPool {
    ready: Receiver<OwnedFd>,
}

impl NetnsPool {
    /// Starts the maker thread. It moves only itself into each namespace it makes.
    pub fn start() -> std::io::Result<NetnsPool> {
        let (tx, ready) = sync_channel(READY - 1);
        std::thread::Builder::new()
            .name("netns-pool".into())
            .spawn(move || loop {
                match make() {
                    // Blocks while the pool is full; errors when the pool is dropped.
                    Ok(ns) => {
                        if tx.send(ns).is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot prepare network namespaces; plugins create their own");
                        return;
                    }
                }
            })?;
        Ok(NetnsPool { ready })
    }

    /// An unused namespace, if one is ready.
    pub fn take(&self) -> Option<OwnedFd> {
        self.ready.try_recv().ok()
    }
}

/// A new network namespace with loopback up, as an fd; the calling thread is left in it.
fn make() -> std::io::Result<OwnedFd> {
    // SAFETY: unshare(CLONE_NEWNET) affects only the calling thread, which does nothing
    // else.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    super::namespaces::loopback_up()?;
    // SAFETY: open of a NUL-terminated constant path; the fd is ours.
    let fd = unsafe {
        libc::open(
            c"/proc/thread-self/ns/net".as_ptr(),
            libc::O_RDONLY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;
    use std::time::{Duration, Instant};

    fn inode(fd: i32) -> u64 {
        // SAFETY: fstat on an fd we hold, into a zeroed stat we own.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        assert_eq!(unsafe { libc::fstat(fd, &mut st) }, 0);
        st.st_ino
    }

    fn wait_take(pool: &NetnsPool) -> OwnedFd {
        let t = Instant::now();
        loop {
            if let Some(ns) = pool.take() {
                return ns;
            }
            assert!(t.elapsed() < Duration::from_secs(5), "pool never filled");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Joins `ns` on a throwaway thread: (interfaces listed, loopback is up).
    fn interfaces_in(ns: &OwnedFd) -> (usize, bool) {
        let fd = ns.as_raw_fd();
        std::thread::spawn(move || {
            // SAFETY: setns of this thread only, into a namespace fd we hold.
            assert_eq!(unsafe { libc::setns(fd, libc::CLONE_NEWNET) }, 0);
            let dev = std::fs::read_to_string("/proc/thread-self/net/dev").expect("net/dev");
            // SAFETY: a throwaway socket and SIOCGIFFLAGS into a zeroed ifreq we own.
            let up = unsafe {
                let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
                assert!(s >= 0);
                let mut req: libc::ifreq = std::mem::zeroed();
                for (d, c) in req.ifr_name.iter_mut().zip(b"lo\0") {
                    *d = *c as libc::c_char;
                }
                assert_eq!(libc::ioctl(s, libc::SIOCGIFFLAGS, &mut req), 0);
                libc::close(s);
                req.ifr_ifru.ifru_flags & libc::IFF_UP as libc::c_short != 0
            };
            (dev.lines().skip(2).count(), up)
        })
        .join()
        .expect("thread")
    }

    #[test]
    fn each_namespace_is_fresh_distinct_and_holds_only_loopback() {
        let pool = NetnsPool::start().expect("pool");
        let (a, b) = (wait_take(&pool), wait_take(&pool));
        let own = std::fs::File::open("/proc/self/ns/net").expect("own netns");
        assert_ne!(inode(a.as_raw_fd()), inode(b.as_raw_fd()));
        assert_ne!(inode(a.as_raw_fd()), inode(own.as_raw_fd()));
        let (count, lo) = interfaces_in(&a);
        assert_eq!(count, 1, "only loopback");
        assert!(lo, "loopback is up");
    }
}
