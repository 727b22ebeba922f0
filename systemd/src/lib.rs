//! What castellan-signer, castellan-edge (and later the MDM connector) need from systemd,
//! in one small crate so each daemon does it the same way:
//!
//! - [`notify`]: sd_notify(3), for `Type=notify` units (`READY=1` once the sockets are
//!   bound, `STOPPING=1` on a stop signal);
//! - [`init_logging`]: one `tracing` set-up. Lines go to stderr, one line per event, with
//!   no ANSI colour codes unless stderr is a terminal, and without a timestamp when stderr
//!   is the journal (journald stamps every line itself).
#![forbid(unsafe_code)]

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// Send `state` (e.g. `READY=1`) to `$NOTIFY_SOCKET` if systemd gave us one.
///
/// Abstract sockets (`@name`) are not supported without unsafe code; systemd hands a
/// path-based socket to services, so this only matters for exotic supervisors.
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

/// How log lines are written, decided once from the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStyle {
    /// ANSI colours: only when stderr is a terminal (never in the journal or a log file).
    pub ansi: bool,
    /// A timestamp at the start of the line: not when stderr is the journal.
    pub timestamp: bool,
}

impl LogStyle {
    /// The style for this process's stderr.
    pub fn detect() -> Self {
        LogStyle {
            ansi: io::stderr().is_terminal(),
            timestamp: !stderr_is_journal(),
        }
    }
}

/// Whether stderr is connected to journald: systemd sets `JOURNAL_STREAM=DEV:INODE` for the
/// service's stdout/stderr stream, and the variable is only meaningful if stderr is still
/// that stream (systemd.exec(5), "$JOURNAL_STREAM"); a child whose stderr was redirected
/// inherits the variable, so the device and inode are compared.
pub fn stderr_is_journal() -> bool {
    let Some(value) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.to_str().and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(io::stderr()) {
        #[allow(clippy::useless_conversion)] // st_dev/st_ino widths differ between targets
        Ok(st) => u64::from(st.st_dev) == dev && u64::from(st.st_ino) == ino,
        Err(_) => false,
    }
}

/// Install the process-wide `tracing` subscriber: level from `RUST_LOG`, else `info`;
/// stderr; one line per event ([`OneLine`]); colours and timestamp per [`LogStyle::detect`].
///
/// Call it first thing in `main`. A second call (e.g. from a test) does nothing.
pub fn init_logging() {
    let style = LogStyle::detect();
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_writer(OneLine(io::stderr))
        .with_ansi(style.ansi)
        .with_env_filter(filter);
    let result = if style.timestamp {
        builder.try_init()
    } else {
        builder.without_time().try_init()
    };
    // Already installed: keep the first subscriber.
    drop(result);
}

/// A writer that keeps each event on one line: a line break inside an event (an error
/// message that spans lines, a multi-line field) is written as the two characters `\n`
/// (or `\r`), so the journal and `grep` see one record per event.
///
/// tracing-subscriber formats an event completely and then writes it with one call, so a
/// line break before the last byte of a write is always inside the event.
#[derive(Debug, Clone, Copy)]
pub struct OneLine<F>(pub F);

impl<'a, F, W> MakeWriter<'a> for OneLine<F>
where
    F: Fn() -> W,
    W: Write,
{
    type Writer = OneLineWriter<W>;

    fn make_writer(&'a self) -> Self::Writer {
        OneLineWriter((self.0)())
    }
}

/// The writer of [`OneLine`].
#[derive(Debug)]
pub struct OneLineWriter<W>(W);

impl<W: Write> Write for OneLineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(&one_line(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// `buf` with every CR or LF before its final byte escaped (`\r`, `\n`).
fn one_line(buf: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let Some((last, body)) = buf.split_last() else {
        return buf.into();
    };
    if !body.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        return buf.into();
    }
    let mut out = Vec::with_capacity(buf.len() + 8);
    for &b in body {
        match b {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => out.push(b),
        }
    }
    out.push(*last);
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_breaks_inside_an_event_are_escaped() {
        assert_eq!(&*one_line(b"plain line\n"), b"plain line\n");
        assert_eq!(
            &*one_line(b"error: first\nsecond\r\n"),
            b"error: first\\nsecond\\r\n"
        );
        assert_eq!(&*one_line(b""), b"");
        assert_eq!(&*one_line(b"\n"), b"\n");
    }
}
