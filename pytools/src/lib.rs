//! The pinned tools sfstack uses, installed on first use from PyPI and npm: the Python-packaged
//! ones (the moto server, cargo-lambda with zig, cfn-lint, the workflow linters) from `python-tools.txt` into
//! `target/tools/venv`, checkov from `python-checkov.txt` into `target/tools/checkov-venv`, and the aws-gateway's IAM evaluator (`@cloud-copilot/iam-simulate`,
//! pinned by `localcloud/aws-gateway/evaluator/package-lock.json`) into
//! `target/tools/iam-simulate`: project-local, never global, and once across parallel processes.

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
    ensure_venv(
        &venv_dir(),
        "python-tools.txt",
        "moto, cargo-lambda, cfn-lint, zizmor, actionlint",
    )
}

/// Installs checkov, pinned by `python-checkov.txt`, into `target/tools/checkov-venv` and
/// returns its `bin` directory. A venv of its own: checkov pins boto3 and botocore to versions
/// that would change the moto server's behaviour.
pub fn ensure_checkov() -> anyhow::Result<PathBuf> {
    ensure_venv(
        &workspace_root()
            .join("target")
            .join("tools")
            .join("checkov-venv"),
        "python-checkov.txt",
        "checkov",
    )
}

/// Installs the pinned Salesforce client libraries (`python-clients.txt`: simple-salesforce)
/// into `target/tools/clients-venv` unless they are already there, and returns its `bin`
/// directory. The emulator's tests check that these clients parse its answers.
pub fn ensure_salesforce_clients() -> anyhow::Result<PathBuf> {
    ensure_venv(
        &workspace_root()
            .join("target")
            .join("tools")
            .join("clients-venv"),
        "python-clients.txt",
        "simple-salesforce",
    )
}

fn ensure_venv(venv: &Path, requirements_file: &str, what: &str) -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    let requirements = root.join(requirements_file);
    let pinned = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
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
        "installing pinned Python tools ({what}) into {} ...",
        venv.display()
    );
    if !bin.join("python").exists() {
        run(
            Command::new("python3").arg("-m").arg("venv").arg(venv),
            "python3 -m venv",
        )?;
    }
    run(
        Command::new(bin.join("pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
        &format!("pip install -r {requirements_file}"),
    )?;
    std::fs::write(&stamp, pinned).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(bin)
}

/// `target/tools/iam-simulate`, where the aws-gateway's IAM evaluator is installed.
pub fn node_tools_dir() -> PathBuf {
    workspace_root()
        .join("target")
        .join("tools")
        .join("iam-simulate")
}

/// Installs the aws-gateway evaluator's pinned npm packages (`package.json` and
/// `package-lock.json` of `localcloud/aws-gateway/evaluator`) into `target/tools/iam-simulate`
/// with `npm ci` unless they are already there, and returns that directory (it holds
/// `node_modules`). Safe to call from many test processes at once: one installs, the others
/// wait.
pub fn ensure_node_tools() -> anyhow::Result<PathBuf> {
    let source = workspace_root()
        .join("localcloud")
        .join("aws-gateway")
        .join("evaluator");
    let read = |name: &str| {
        let path = source.join(name);
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let (manifest, lockfile) = (read("package.json")?, read("package-lock.json")?);
    let pinned = format!("{manifest}{lockfile}");
    let dir = node_tools_dir();
    let stamp = dir.join("sfstack-installed.txt");
    if std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == pinned) {
        return Ok(dir);
    }
    let tools_dir = dir.parent().context("iam-simulate has a parent")?;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let _lock = FileLock::acquire(
        &tools_dir.join("iam-simulate.flock"),
        Duration::from_secs(600),
    )
    .context("waiting for another process's npm install of the IAM evaluator")?;
    if std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == pinned) {
        return Ok(dir);
    }
    check_node()?;
    eprintln!(
        "installing the pinned IAM evaluator (@cloud-copilot/iam-simulate) into {} ...",
        dir.display()
    );
    // An install interrupted half-way must not look complete.
    let _ = std::fs::remove_file(&stamp);
    for (name, text) in [
        ("package.json", &manifest),
        ("package-lock.json", &lockfile),
    ] {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    let status = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .current_dir(&dir)
        .status()
        .context("running npm ci\nhint: install Node.js 18 or newer (node and npm)")?;
    if !status.success() {
        bail!(
            "npm ci in {} failed ({status})\nhint: it needs Node.js 18 or newer (node and npm) and access to the npm registry",
            dir.display()
        );
    }
    std::fs::write(&stamp, pinned).with_context(|| format!("writing {}", stamp.display()))?;
    Ok(dir)
}

/// Fails with a hint unless `node` (18 or newer) and `npm` are on the `PATH`.
fn check_node() -> anyhow::Result<()> {
    const HINT: &str = "hint: install Node.js 18 or newer (node and npm)";
    let version = |program: &str| -> anyhow::Result<String> {
        let output = Command::new(program)
            .arg("--version")
            .output()
            .with_context(|| format!("running `{program} --version`\n{HINT}"))?;
        if !output.status.success() {
            bail!("`{program} --version` failed ({})\n{HINT}", output.status);
        }
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    };
    let node = version("node")?;
    let major = node
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|major| major.parse::<u32>().ok());
    if major.is_none_or(|major| major < 18) {
        bail!("node {node} is too old: the IAM evaluator needs 18 or newer\n{HINT}");
    }
    version("npm")?;
    Ok(())
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

/// The CloudFormation registry's resource schemas that the pinned cfn-lint ships
/// (`cfnlint/data/schemas/resources/*.json`, one per resource type, each with its handlers'
/// `permissions`), in the project-local virtual environment; `None` before the tools are
/// installed.
pub fn cfn_lint_resource_schemas() -> Option<PathBuf> {
    let lib = venv_dir().join("lib");
    std::fs::read_dir(&lib)
        .ok()?
        .filter_map(Result::ok)
        .map(|python| {
            python
                .path()
                .join("site-packages/cfnlint/data/schemas/resources")
        })
        .find(|dir| dir.is_dir())
}
