//! The signer as a process: its config (with CRL timing), start-up checks and exit codes.

pub mod config;
