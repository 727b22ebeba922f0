//! The signer as a process: its config (with CRL timing), making and opening its state,
//! start-up checks and exit codes.

pub mod config;
pub mod init;
pub mod tasks;

use crate::Error;

/// sysexits.h EX_CONFIG: the configuration is unusable.
pub const EX_CONFIG: i32 = 78;

/// The exit code of `castellan-signer` for an error: 78 when it cannot start with this
/// configuration, token or store; 1 otherwise. The one mapping of errors to exit codes.
pub fn exit_code(e: &Error) -> i32 {
    match e {
        Error::Config(_) | Error::Hsm(_) | Error::Store(_) => EX_CONFIG,
        _ => 1,
    }
}
