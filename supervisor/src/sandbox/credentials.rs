//! Dropping root: every capability out of the bounding and ambient sets, no
//! supplementary groups, the plugin's own uid/gid (real, effective and saved), and
//! no_new_privs so nothing exec'd later can gain privileges back.

use std::io;

use super::sys::Sys;

/// Highest capability number to drop; unknown numbers are skipped by the kernel.
const LAST_CAP: u32 = 63;

/// Must run after the root filesystem is built (that needs CAP_SYS_ADMIN) and
/// before Landlock and seccomp.
pub fn drop_to(sys: &dyn Sys, uid: u32, gid: u32) -> io::Result<()> {
    if uid == 0 || gid == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "refusing to run a plugin as uid or gid 0",
        ));
    }
    // Dropping from the bounding set needs CAP_SETPCAP, so it comes first.
    for cap in 0..=LAST_CAP {
        sys.drop_bounding_cap(cap)?;
    }
    sys.clear_ambient_caps()?;
    sys.set_keep_caps_off()?;
    sys.setgroups_empty()?;
    sys.setresgid(gid)?;
    // setresuid away from 0 clears the permitted and effective sets (keep-caps is off).
    sys.setresuid(uid)?;
    sys.set_no_new_privs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::sys::RecordingSys;

    #[test]
    fn capabilities_go_before_the_uid_and_no_new_privs_comes_last() {
        let sys = RecordingSys::default();
        drop_to(&sys, 200_001, 200_001).unwrap();
        let last_cap = sys.index_of("capbset_drop 63");
        let groups = sys.index_of("setgroups []");
        let gid = sys.index_of("setresgid 200001");
        let uid = sys.index_of("setresuid 200001");
        let nnp = sys.index_of("no_new_privs");
        assert!(last_cap < groups && groups < gid && gid < uid && uid < nnp);
        assert_eq!(
            sys.calls()
                .iter()
                .filter(|c| c.starts_with("capbset_drop"))
                .count(),
            64
        );
    }

    #[test]
    fn root_is_refused() {
        let sys = RecordingSys::default();
        assert!(drop_to(&sys, 0, 5).is_err());
        assert!(drop_to(&sys, 5, 0).is_err());
        assert!(sys.calls().is_empty());
    }
}
