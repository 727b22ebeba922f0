//! The signer as a process: its config (with CRL timing), making and opening its state,
//! start-up checks and exit codes.

pub mod config;
pub mod init;
