//! Where the token PIN comes from: a private file, or a systemd credential.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use crate::error::PinError;

/// The source of the user PIN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinSource {
    /// A file that only its owner (and at most the group, read-only) can access.
    File(PathBuf),
    /// A systemd credential (`LoadCredential=NAME:...`), read from `$CREDENTIALS_DIRECTORY/NAME`.
    Credential(String),
}

impl PinSource {
    /// Read the PIN, refusing a file that others can read or write (or the group can write).
    pub fn read(&self) -> Result<String, PinError> {
        match self {
            PinSource::File(path) => read_private_file(path),
            PinSource::Credential(name) => {
                let dir = std::env::var_os("CREDENTIALS_DIRECTORY")
                    .ok_or_else(|| PinError::NoCredentialsDirectory { name: name.clone() })?;
                // systemd makes the credential directory private to the unit.
                read_private_file(&Path::new(&dir).join(name))
            }
        }
    }
}

/// Check that a file holding a secret is not exposed, then read it (trailing newline dropped).
pub fn read_private_file(path: &Path) -> Result<String, PinError> {
    check_private(path)?;
    let text = std::fs::read_to_string(path).map_err(|source| PinError::Read {
        path: path.to_owned(),
        source,
    })?;
    let pin = text.trim_end_matches(['\n', '\r']).to_owned();
    if pin.is_empty() {
        return Err(PinError::Empty {
            path: path.to_owned(),
        });
    }
    Ok(pin)
}

/// Refuse a file that others can read or write, or that its group can write.
pub fn check_private(path: &Path) -> Result<(), PinError> {
    let meta = std::fs::metadata(path).map_err(|source| PinError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o027 != 0 {
        return Err(PinError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn pin_file(mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pin");
        std::fs::write(&path, "1234\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    #[test]
    fn private_pin_file_is_read_without_newline() {
        let (_d, path) = pin_file(0o600);
        assert_eq!(PinSource::File(path).read().unwrap(), "1234");
    }

    #[test]
    fn world_readable_pin_file_is_refused() {
        let (_d, path) = pin_file(0o644);
        let err = PinSource::File(path).read().unwrap_err();
        assert!(
            matches!(err, PinError::Permissions { mode: 0o644, .. }),
            "{err}"
        );
    }

    #[test]
    fn group_writable_pin_file_is_refused() {
        let (_d, path) = pin_file(0o660);
        assert!(PinSource::File(path).read().is_err());
    }

    #[test]
    fn group_readable_pin_file_is_allowed() {
        let (_d, path) = pin_file(0o640);
        assert!(PinSource::File(path).read().is_ok());
    }
}
