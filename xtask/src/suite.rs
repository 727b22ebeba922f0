//! `cargo xtask test`: what CI runs (`.ci/run`), and what a developer runs before pushing.

use std::process::Command;

use crate::Result;
use crate::tools::{self, Requirements};

/// The tools the integration tests drive: SoftHSM2 tokens, pkcs11-tool, openssl (with the
/// PKCS#11 engine for `pkcs11:` key URIs), micromdm's SCEP client, libfaketime (a
/// signer whose clock went back), and Chromium with its WebDriver and NSS's tools (the web
/// console in a real browser, with an officer's certificate imported into its NSS store).
pub(crate) const TEST_TOOLS: Requirements = Requirements {
    programs: &[
        "softhsm2-util",
        "pkcs11-tool",
        "openssl",
        "scepclient",
        "faketime",
        // The MDM tests fetch NDES-style challenges as an MDM does.
        "curl",
        "chromium",
        "chromedriver",
        "pk12util",
        "certutil",
    ],
    libraries: &["libengine-pkcs11-openssl"],
    packages: &[
        "softhsm2",
        "opensc",
        "openssl",
        "scep",
        "libengine-pkcs11-openssl",
        "faketime",
        "curl",
        "chromium",
        "chromium-driver",
        "libnss3-tools",
    ],
};

/// Python's `cryptography` (the PKCS#12 tests' independent parser): installed with pip if the
/// `python3` on PATH lacks it.
fn ensure_python_cryptography() -> Result<()> {
    let probe = || {
        Command::new("python3")
            .args([
                "-c",
                "from cryptography.hazmat.primitives.serialization import pkcs12; pkcs12.load_pkcs12",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if probe() {
        return Ok(());
    }
    println!("==> python3 lacks cryptography: python3 -m pip install cryptography");
    tools::run_step(Command::new("python3").args(["-m", "pip", "install", "cryptography"]))?;
    if probe() {
        Ok(())
    } else {
        Err(crate::Failure::new(
            "python3 still cannot import cryptography's pkcs12 after pip install",
        ))
    }
}

#[derive(Debug, Default)]
pub struct Options {
    /// Appended to `cargo test --workspace`.
    pub cargo_test_args: Vec<String>,
}

/// Steps, in order, stopping at the first failure with its exit code:
///
/// 1. install missing test tools (Debian packages, as root);
/// 2. `cargo fmt --all -- --check`;
/// 3. `cargo clippy --workspace --all-targets -- -D warnings`;
/// 4. `cargo build --workspace --lib --bins --examples` (the integration tests run the real
///    binaries, crl-bench, and load the fault-injecting PKCS#11 module `p11fault`);
/// 5. `cargo test --workspace [ARGS]`;
/// 6. a smoke run of every fuzz target, 5 s each (`cargo xtask fuzz --seconds 5`; skipped
///    when test arguments narrow the run).
pub fn run(options: &Options) -> Result<()> {
    println!(
        "==> checking test tools ({})",
        TEST_TOOLS.programs.join(", ")
    );
    tools::ensure(&TEST_TOOLS)?;
    ensure_python_cryptography()?;

    let root = crate::workspace_root();
    let cargo = |args: &[&str]| {
        let mut cmd = Command::new(crate::cargo());
        cmd.args(args).current_dir(&root);
        cmd
    };
    tools::run_step(&mut cargo(&["fmt", "--all", "--", "--check"]))?;
    tools::run_step(&mut cargo(&[
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    tools::run_step(&mut cargo(&[
        "build",
        "--workspace",
        "--lib",
        "--bins",
        "--examples",
    ]))?;
    let mut test = cargo(&["test", "--workspace"]);
    test.args(&options.cargo_test_args);
    tools::run_step(&mut test)?;
    if options.cargo_test_args.is_empty() {
        println!("==> fuzz smoke run: every target for 5 s");
        crate::fuzz::run(&crate::fuzz::Options {
            target: None,
            seconds: 5,
        })?;
    }
    println!("==> all checks passed");
    Ok(())
}
