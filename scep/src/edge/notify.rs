//! sd_notify(3) in a few lines: tell systemd we are ready (`Type=notify`).

/// Send `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET` if systemd gave us one.
pub fn notify(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = std::path::PathBuf::from(path);
    if path.as_os_str().as_encoded_bytes().first() == Some(&b'@') {
        tracing::warn!("abstract NOTIFY_SOCKET is not supported; not notifying systemd");
        return;
    }
    let result = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|s| s.send_to(state.as_bytes(), &path));
    if let Err(e) = result {
        tracing::warn!(error = %e, "cannot notify systemd");
    }
}
