//! sd_notify(3) without libsystemd: one datagram with the state to `$NOTIFY_SOCKET`.
//! Used for READY=1, RELOADING=1, STOPPING=1 and the watchdog's WATCHDOG=1.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends `state` to the service manager. `Ok(false)`: not run by one (no socket).
pub fn notify(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
        None => SocketAddr::from_pathname(&path)?,
    };
    UnixDatagram::unbound()?.send_to_addr(state.as_bytes(), &addr)?;
    Ok(true)
}

/// [`notify`], logging a failure: systemd not hearing a state change is worth a
/// warning, not a stop.
pub fn notify_or_warn(state: &str) {
    if let Err(e) = notify(state) {
        tracing::warn!(error = %e, state, "sd_notify failed");
    }
}
