//! The pinned Python-packaged tools sfstack uses (the moto server, cargo-lambda with zig,
//! cfn-lint), installed on first use from `python-tools.txt` into `target/tools/venv`:
//! project-local, never global, and once across parallel processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The workspace root (this crate lives in `pytools/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(1)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// `target/tools/venv`, the project-local virtual environment.
pub fn venv_dir() -> PathBuf {
    workspace_root().join("target").join("tools").join("venv")
}

/// Installs the pinned tools of `python-tools.txt` into the project-local virtual environment
/// unless they are already there, and returns its `bin` directory. Safe to call from many
/// test processes at once: one installs, the others wait.
pub fn ensure_python_tools() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let requirements = root.join("python-tools.txt");
    let pinned = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let venv = venv_dir();
    let bin = venv.join("bin");
    let stamp = venv.join("sfstack-installed.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == pinned) {
        return Ok(bin);
    }
    let tools_dir = venv.parent().context("venv has a parent")?.to_path_buf();
    std::fs::create_dir_all(&tools_dir)
        .with_context(|| format!("creating {}", tools_dir.display()))?;
    let _lock = FileLock::acquire(&tools_dir.join("install.flock"), Duration::from_secs(600))?;
    if std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == pinned) {
        return Ok(bin);
    }
    eprintln!(
        "installing pinned Python tools (moto, cargo-lambda, cfn-lint) into {} ...",
        venv.display()
    );
    if !bin.join("python").exists() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
            "python3 -m venv",
        )?;
    }
    run(
        Command::new(bin.join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        "pip install -r python-tools.txt",
    )?;
    std::fs::write(&stamp, pinned).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(bin)
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .status()
        .with_context(|| format!("running {what}"))?;
    if !status.success() {
        bail!(
            "{what} failed ({status})\nhint: the tools need python3 with venv and pip, and access to PyPI"
        );
    }
    Ok(())
}

/// An exclusive lock on a file, held until drop; the OS releases it when the process ends, so
/// an install interrupted by Ctrl-C never leaves a stale lock behind.
struct FileLock(std::fs::File);

impl FileLock {
    fn acquire(path: &Path, timeout: Duration) -> anyhow::Result<Self> {
        let started = Instant::now();
        let file = std::fs::File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(Self(file)),
                Err(std::fs::TryLockError::WouldBlock) => {
                    if started.elapsed() > timeout {
                        bail!(
                            "waited {timeout:?} for {} (another install of the Python tools)",
                            path.display()
                        );
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(std::fs::TryLockError::Error(error)) => {
                    return Err(error).with_context(|| format!("locking {}", path.display()));
                }
            }
        }
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}
