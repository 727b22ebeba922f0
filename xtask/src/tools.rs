//! Finding the external programs the tasks need, installing Debian packages when they are
//! missing, and running commands with a visible trace.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::{Context, Failure, Result};

/// What a task needs from the system.
#[derive(Debug)]
pub struct Requirements {
    /// Programs that must be on PATH.
    pub programs: &'static [&'static str],
    /// Packages that are not checked through a program (libraries, engines): checked with
    /// `dpkg-query` where it exists.
    pub libraries: &'static [&'static str],
    /// The Debian packages to install when anything above is missing.
    pub packages: &'static [&'static str],
}

/// Make sure every requirement is met, installing the packages with apt-get if needed:
///
/// 1. look for each program on PATH and each library package with `dpkg-query`;
/// 2. if something is missing and we are not root (or there is no apt-get), fail and say what
///    to install;
/// 3. otherwise `apt-get update`, `apt-get install -y` the packages, and check again.
pub fn ensure(req: &Requirements) -> Result<()> {
    let missing = missing(req);
    if missing.is_empty() {
        return Ok(());
    }
    let packages = req.packages.join(" ");
    let listed = missing.join(", ");
    if find_program("apt-get").is_none() {
        return Err(Failure::new(format!(
            "missing: {listed}. There is no apt-get here: install the equivalents of the Debian \
             packages `{packages}` and try again."
        )));
    }
    if !is_root() {
        return Err(Failure::new(format!(
            "missing: {listed}. Run this as root (e.g. `sudo -E cargo xtask ...`) so it can \
             install them, or install them yourself: sudo apt-get install {packages}"
        )));
    }
    println!("==> missing {listed}: installing {packages}");
    let mut update = Command::new("apt-get");
    update.arg("update");
    run_quietly(&mut update, "apt-get update")?;
    let mut install = Command::new("apt-get");
    install
        .args(["install", "-y", "--no-install-recommends"])
        .args(req.packages)
        .env("DEBIAN_FRONTEND", "noninteractive");
    run_quietly(&mut install, &format!("apt-get install {packages}"))?;
    let still = self::missing(req);
    if !still.is_empty() {
        return Err(Failure::new(format!(
            "still missing after installing {packages}: {}",
            still.join(", ")
        )));
    }
    Ok(())
}

fn missing(req: &Requirements) -> Vec<String> {
    let mut missing: Vec<String> = req
        .programs
        .iter()
        .filter(|p| find_program(p).is_none())
        .map(|p| p.to_string())
        .collect();
    if find_program("dpkg-query").is_some() {
        missing.extend(
            req.libraries
                .iter()
                .filter(|pkg| !dpkg_installed(pkg))
                .map(|pkg| format!("package {pkg}")),
        );
    }
    missing
}

/// The first executable file called `name` on PATH.
pub fn find_program(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(name))
        .find(|candidate| {
            candidate
                .metadata()
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

fn dpkg_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .stderr(Stdio::null())
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).ends_with(" installed"))
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Run a command with inherited output, announcing it first; fail with its exit code.
pub fn run_step(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    println!("==> {line}");
    let status = cmd.status().context(format!("cannot run `{line}`"))?;
    if !status.success() {
        return Err(Failure::with_code(
            format!("`{line}` failed ({status})"),
            status.code(),
        ));
    }
    Ok(())
}

/// Run a command with captured output, showing the output only if it fails.
pub fn run_quietly(cmd: &mut Command, what: &str) -> Result<String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .context(format!("cannot run {what}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(Failure::with_code(
            format!(
                "{what} failed ({}):\n{}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            ),
            output.status.code(),
        ));
    }
    Ok(stdout)
}

/// [`run_quietly`], but the command is killed (SIGKILL) if it has not finished after
/// `timeout`. The output is collected by a thread, so the caller sees the exit at once.
pub fn run_quietly_within(cmd: &mut Command, what: &str, timeout: Duration) -> Result<String> {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context(format!("cannot run {what}"))?;
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let output = match rx.recv_timeout(timeout) {
        Ok(output) => output.context(format!("cannot run {what}"))?,
        Err(_) => {
            // Not reaped yet (the waiter still waits), so the pid is still this child's.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
            let _ = waiter.join();
            return Err(Failure::new(format!(
                "{what} did not finish within {} s (killed)",
                timeout.as_secs()
            )));
        }
    };
    let _ = waiter.join();
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    if !output.status.success() {
        return Err(Failure::with_code(
            format!(
                "{what} failed ({}):\n{}{}",
                output.status,
                stdout,
                String::from_utf8_lossy(&output.stderr)
            ),
            output.status.code(),
        ));
    }
    Ok(stdout)
}

/// `program arg arg` for messages, the program by its file name (this is for people, not a
/// shell).
pub fn describe(cmd: &Command) -> String {
    let program = cmd.get_program();
    let program = Path::new(program).file_name().unwrap_or(program);
    std::iter::once(program)
        .chain(cmd.get_args())
        .map(OsStr::to_string_lossy)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Quote a path for a POSIX shell line the user may paste.
pub fn shell_quote(path: &Path) -> String {
    let s = path.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:,=@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn finds_sh_and_not_nonsense() {
        assert!(find_program("sh").is_some());
        assert!(find_program("castellan-no-such-program").is_none());
    }

    #[test]
    fn run_quietly_within_returns_output_and_kills_on_timeout() {
        let mut echo = Command::new("sh");
        echo.args(["-c", "echo hi"]);
        assert_eq!(
            run_quietly_within(&mut echo, "echo", Duration::from_secs(10)).unwrap(),
            "hi\n"
        );
        let mut slow = Command::new("sleep");
        slow.arg("30");
        let started = std::time::Instant::now();
        assert!(run_quietly_within(&mut slow, "sleep", Duration::from_millis(200)).is_err());
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn shell_quote_leaves_plain_paths_alone() {
        assert_eq!(shell_quote(Path::new("/a/b-c.pem")), "/a/b-c.pem");
        assert_eq!(shell_quote(Path::new("/a b/it's")), r"'/a b/it'\''s'");
    }
}
