//! The signer as a process: its config (with CRL timing), making and opening its state,
//! start-up checks and exit codes.

pub mod config;
pub mod init;
pub mod tasks;

use crate::Error;

/// sysexits.h EX_CONFIG: the configuration is unusable.
pub const EX_CONFIG: i32 = 78;

/// sysexits.h EX_TEMPFAIL: a temporary failure (the store's disk): systemd restarts the
/// signer (`Restart=on-failure`), and it starts once the cause is gone.
pub const EX_TEMPFAIL: i32 = 75;

/// The exit code of `castellan-signer` for an error: 75 for what a restart may heal (an I/O
/// failure of the store, a token not present or not answering: an HSM still starting after a
/// power cut), 78 when it cannot start with this configuration, PIN, token or store; 1
/// otherwise. The one mapping of errors to exit codes.
pub fn exit_code(e: &Error) -> i32 {
    match e {
        e if e.is_temporary() => EX_TEMPFAIL,
        Error::Config(_) | Error::Hsm(_) | Error::Store(_) => EX_CONFIG,
        _ => 1,
    }
}
