//! The system calls that build a plugin's sandbox, behind a trait so the order and
//! arguments of the confinement sequence can be unit-tested without root (a
//! recording double stands in for the kernel), as youki does.

use std::ffi::CString;
use std::io;
use std::path::Path;

/// One privileged operation of the confinement sequence.
pub trait Sys {
    fn unshare(&self, flags: i32) -> io::Result<()>;
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()>;
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()>;
    fn umount_detach(&self, target: &Path) -> io::Result<()>;
    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()>;
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    fn create_file(&self, path: &Path) -> io::Result<()>;
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()>;
    fn chdir(&self, path: &Path) -> io::Result<()>;
    fn sethostname(&self, name: &str) -> io::Result<()>;
    fn set_keep_caps_off(&self) -> io::Result<()>;
    fn drop_bounding_cap(&self, cap: u32) -> io::Result<()>;
    fn clear_ambient_caps(&self) -> io::Result<()>;
    fn setgroups_empty(&self) -> io::Result<()>;
    fn setresgid(&self, gid: u32) -> io::Result<()>;
    fn setresuid(&self, uid: u32) -> io::Result<()>;
    fn set_no_new_privs(&self) -> io::Result<()>;
}

fn cstr(p: &Path) -> io::Result<CString> {
    use std::os::unix::ffi::OsStrExt;
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

fn cstr_s(s: &str) -> io::Result<CString> {
    CString::new(s).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "string contains NUL"))
}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn check_long(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// The real kernel.
pub struct LinuxSys;

// SAFETY (all methods): each wraps one system call whose pointer arguments are
// NUL-terminated strings that live until the call returns.
impl Sys for LinuxSys {
    fn unshare(&self, flags: i32) -> io::Result<()> {
        check(unsafe { libc::unshare(flags) })
    }

    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        let source = source.map(cstr_s).transpose()?;
        let target = cstr(target)?;
        let fstype = fstype.map(cstr_s).transpose()?;
        let data = data.map(cstr_s).transpose()?;
        let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
        check(unsafe {
            libc::mount(
                ptr(&source),
                target.as_ptr(),
                ptr(&fstype),
                flags as libc::c_ulong,
                ptr(&data) as *const libc::c_void,
            )
        })
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        let (a, b) = (cstr(new_root)?, cstr(put_old)?);
        check_long(unsafe { libc::syscall(libc::SYS_pivot_root, a.as_ptr(), b.as_ptr()) })
    }

    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        let t = cstr(target)?;
        check(unsafe { libc::umount2(t.as_ptr(), libc::MNT_DETACH) })
    }

    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        let p = cstr(path)?;
        match check(unsafe { libc::mkdir(p.as_ptr(), mode) }) {
            Err(e) if e.raw_os_error() == Some(libc::EEXIST) => Ok(()),
            // The mode asked for, not the one the umask leaves: the supervisor runs with
            // UMask=0077 under systemd, which would make every directory of a plugin's
            // root 0700 root-owned and the plugin unable to reach its own libraries.
            Ok(()) => check(unsafe { libc::chmod(p.as_ptr(), mode) }),
            other => other,
        }
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        let p = cstr(path)?;
        check(unsafe { libc::rmdir(p.as_ptr()) })
    }

    fn create_file(&self, path: &Path) -> io::Result<()> {
        let p = cstr(path)?;
        let fd = unsafe {
            libc::open(
                p.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            )
        };
        check(fd)?;
        check(unsafe { libc::close(fd) })
    }

    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        let (t, l) = (cstr(target)?, cstr(link)?);
        check(unsafe { libc::symlink(t.as_ptr(), l.as_ptr()) })
    }

    fn chdir(&self, path: &Path) -> io::Result<()> {
        let p = cstr(path)?;
        check(unsafe { libc::chdir(p.as_ptr()) })
    }

    fn sethostname(&self, name: &str) -> io::Result<()> {
        check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
    }

    fn set_keep_caps_off(&self) -> io::Result<()> {
        check(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) })
    }

    fn drop_bounding_cap(&self, cap: u32) -> io::Result<()> {
        match check(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) }) {
            // A capability number this kernel does not know is not held either.
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
            other => other,
        }
    }

    fn clear_ambient_caps(&self) -> io::Result<()> {
        check(unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        })
    }

    fn setgroups_empty(&self) -> io::Result<()> {
        check(unsafe { libc::setgroups(0, std::ptr::null()) })
    }

    fn setresgid(&self, gid: u32) -> io::Result<()> {
        check(unsafe { libc::setresgid(gid, gid, gid) })
    }

    fn setresuid(&self, uid: u32) -> io::Result<()> {
        check(unsafe { libc::setresuid(uid, uid, uid) })
    }

    fn set_no_new_privs(&self) -> io::Result<()> {
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
    }
}

/// A test double that records every call, for asserting the confinement sequence.
#[cfg(test)]
#[derive(Default)]
pub struct RecordingSys {
    pub calls: std::cell::RefCell<Vec<String>>,
}

#[cfg(test)]
impl RecordingSys {
    fn rec(&self, s: String) -> io::Result<()> {
        self.calls.borrow_mut().push(s);
        Ok(())
    }

    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    /// Index of the first call starting with `prefix`; panics if absent.
    pub fn index_of(&self, prefix: &str) -> usize {
        self.calls
            .borrow()
            .iter()
            .position(|c| c.starts_with(prefix))
            .unwrap_or_else(|| panic!("no call starting with `{prefix}` in {:?}", self.calls()))
    }
}

#[cfg(test)]
impl Sys for RecordingSys {
    fn unshare(&self, flags: i32) -> io::Result<()> {
        self.rec(format!("unshare {flags:#x}"))
    }
    fn mount(
        &self,
        source: Option<&str>,
        target: &Path,
        fstype: Option<&str>,
        flags: u64,
        data: Option<&str>,
    ) -> io::Result<()> {
        self.rec(format!(
            "mount {} {} {} {flags:#x} {}",
            source.unwrap_or("-"),
            target.display(),
            fstype.unwrap_or("-"),
            data.unwrap_or("-")
        ))
    }
    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> io::Result<()> {
        self.rec(format!(
            "pivot_root {} {}",
            new_root.display(),
            put_old.display()
        ))
    }
    fn umount_detach(&self, target: &Path) -> io::Result<()> {
        self.rec(format!("umount {}", target.display()))
    }
    fn mkdir(&self, path: &Path, mode: u32) -> io::Result<()> {
        self.rec(format!("mkdir {} {mode:o}", path.display()))
    }
    fn rmdir(&self, path: &Path) -> io::Result<()> {
        self.rec(format!("rmdir {}", path.display()))
    }
    fn create_file(&self, path: &Path) -> io::Result<()> {
        self.rec(format!("create {}", path.display()))
    }
    fn symlink(&self, target: &Path, link: &Path) -> io::Result<()> {
        self.rec(format!("symlink {} {}", target.display(), link.display()))
    }
    fn chdir(&self, path: &Path) -> io::Result<()> {
        self.rec(format!("chdir {}", path.display()))
    }
    fn sethostname(&self, name: &str) -> io::Result<()> {
        self.rec(format!("sethostname {name}"))
    }
    fn set_keep_caps_off(&self) -> io::Result<()> {
        self.rec("keepcaps off".into())
    }
    fn drop_bounding_cap(&self, cap: u32) -> io::Result<()> {
        self.rec(format!("capbset_drop {cap}"))
    }
    fn clear_ambient_caps(&self) -> io::Result<()> {
        self.rec("ambient clear".into())
    }
    fn setgroups_empty(&self) -> io::Result<()> {
        self.rec("setgroups []".into())
    }
    fn setresgid(&self, gid: u32) -> io::Result<()> {
        self.rec(format!("setresgid {gid}"))
    }
    fn setresuid(&self, uid: u32) -> io::Result<()> {
        self.rec(format!("setresuid {uid}"))
    }
    fn set_no_new_privs(&self) -> io::Result<()> {
        self.rec("no_new_privs".into())
    }
}
