//! `build`: the four functions as Lambda zips, with cargo-lambda (installed on first use into
//! the project-local virtual environment). Skips the work when nothing it depends on changed.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::naming::FUNCTIONS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

impl Arch {
    pub fn as_str(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::Arm64 => "arm64",
        }
    }
}

impl std::str::FromStr for Arch {
    type Err = anyhow::Error;

    fn from_str(text: &str) -> anyhow::Result<Self> {
        match text {
            "x86_64" => Ok(Arch::X86_64),
            "arm64" => Ok(Arch::Arm64),
            other => anyhow::bail!("architecture {other:?}: expected x86_64 or arm64"),
        }
    }
}

/// One built function.
#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub function: &'static str,
    pub zip: PathBuf,
    pub bytes: u64,
    /// SHA-256 of the zip: the artifact's content address (its S3 key on deploy).
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct BuildReport {
    pub arch: Arch,
    /// `false` when the sources were unchanged and the existing zips were kept.
    pub built: bool,
    pub artifacts: Vec<Artifact>,
}

/// Builds every function's zip for `arch` unless the fingerprint of their inputs is unchanged.
pub fn build(root: &Path, arch: Arch) -> anyhow::Result<BuildReport> {
    let lambda_dir = root.join("target").join("lambda").join(arch.as_str());
    // One build at a time per architecture (parallel deploys, tests): the second waits and then
    // finds the fingerprint fresh instead of re-zipping (new zips would mean new hashes). The
    // OS releases the lock when the process ends, even on Ctrl-C.
    std::fs::create_dir_all(&lambda_dir)
        .with_context(|| format!("creating {}", lambda_dir.display()))?;
    let lock_path = lambda_dir.join("sfstack-build.lock");
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    if lock.try_lock().is_err() {
        eprintln!("build: another build is running; waiting for it");
        lock.lock()
            .with_context(|| format!("locking {}", lock_path.display()))?;
    }
    let stamp = lambda_dir.join("sfstack-inputs.sha256");
    let fingerprint = fingerprint(root, arch)?;
    let zips_present = FUNCTIONS
        .iter()
        .all(|function| zip_path(&lambda_dir, function).exists());
    let unchanged =
        zips_present && std::fs::read_to_string(&stamp).is_ok_and(|old| old.trim() == fingerprint);
    if unchanged {
        eprintln!(
            "build: sources unchanged since the last {} build, keeping the zips",
            arch.as_str()
        );
    } else {
        let bin = pytools::ensure_python_tools().context("installing cargo-lambda")?;
        if arch == Arch::Arm64 {
            ensure_rust_target("aarch64-unknown-linux-gnu")?;
        }
        eprintln!(
            "build: cargo lambda build --release --output-format zip ({})",
            arch.as_str()
        );
        let path = std::env::join_paths(std::iter::once(bin.clone()).chain(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        )))
        .context("building PATH")?;
        let mut command = Command::new(bin.join("cargo-lambda"));
        command
            .current_dir(root)
            .env("PATH", path)
            .args(["lambda", "build", "--release", "--output-format", "zip"])
            .arg(if arch == Arch::Arm64 {
                "--arm64"
            } else {
                "--x86-64"
            })
            .arg("--lambda-dir")
            .arg(&lambda_dir);
        for function in FUNCTIONS {
            command.args(["--package", function]);
        }
        let status = command.status().context("running cargo lambda build")?;
        if !status.success() {
            bail!(
                "cargo lambda build failed ({status})\nhint: the compiler output above names the problem"
            );
        }
        for function in FUNCTIONS {
            normalize_zip(&zip_path(&lambda_dir, function))?;
        }
        std::fs::write(&stamp, &fingerprint)
            .with_context(|| format!("writing {}", stamp.display()))?;
    }
    let artifacts = FUNCTIONS
        .iter()
        .map(|function| {
            let zip = zip_path(&lambda_dir, function);
            let bytes =
                std::fs::read(&zip).with_context(|| format!("reading {}", zip.display()))?;
            Ok(Artifact {
                function,
                bytes: bytes.len() as u64,
                sha256: hex(&Sha256::digest(&bytes)),
                zip,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(BuildReport {
        arch,
        built: !unchanged,
        artifacts,
    })
}

/// Rewrites a zip with fixed timestamps and modes, in name order: cargo-lambda stamps each
/// zip with the time it was made, so an unchanged binary would get a new hash, and so a new
/// artifact and a function update on every rebuild. Python's zipfile is used because the
/// pinned tools need Python anyway.
fn normalize_zip(zip: &Path) -> anyhow::Result<()> {
    const SCRIPT: &str = r#"
import sys, zipfile
path = sys.argv[1]
with zipfile.ZipFile(path) as source:
    entries = [(info, source.read(info.filename)) for info in source.infolist()]
with zipfile.ZipFile(path + ".tmp", "w", zipfile.ZIP_DEFLATED) as target:
    for info, data in sorted(entries, key=lambda entry: entry[0].filename):
        fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
        fixed.external_attr = (0o100755 if info.filename == "bootstrap" else 0o100644) << 16
        fixed.create_system = 3
        target.writestr(fixed, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
"#;
    let status = Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(zip)
        .status()
        .context("running python3 to normalize the zip\nhint: install Python 3 (the pinned tools need it too)")?;
    if !status.success() {
        bail!("could not normalize {}", zip.display());
    }
    let temporary = PathBuf::from(format!("{}.tmp", zip.display()));
    std::fs::rename(&temporary, zip)
        .with_context(|| format!("replacing {} with its normalized copy", zip.display()))
}

fn zip_path(lambda_dir: &Path, function: &str) -> PathBuf {
    lambda_dir.join(function).join("bootstrap.zip")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A hash of everything the zips are built from: every file under `lambdas/` (sources,
/// manifests), the workspace manifest and lockfile, the pinned tools, and the architecture.
pub fn fingerprint(root: &Path, arch: Arch) -> anyhow::Result<String> {
    let mut files = Vec::new();
    collect_files(&root.join("lambdas"), &mut files)?;
    for extra in ["Cargo.toml", "Cargo.lock", "python-tools.txt"] {
        files.push(root.join(extra));
    }
    files.sort();
    let mut hasher = Sha256::new();
    hasher.update(arch.as_str().as_bytes());
    for file in files {
        let relative = file.strip_prefix(root).unwrap_or(&file);
        hasher.update(relative.to_string_lossy().as_bytes());
        hasher.update([0]);
        hasher.update(std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?);
        hasher.update([0]);
    }
    Ok(hex(&hasher.finalize()))
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        if path.is_dir() {
            // Test fixtures and tests do not go into the zips.
            if !path.ends_with("tests") {
                collect_files(&path, files)?;
            }
        } else {
            files.push(path);
        }
    }
    Ok(())
}

fn ensure_rust_target(target: &str) -> anyhow::Result<()> {
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output();
    if let Ok(output) = &installed
        && String::from_utf8_lossy(&output.stdout)
            .lines()
            .any(|line| line.trim() == target)
    {
        return Ok(());
    }
    eprintln!("build: adding the Rust standard library for {target} (rustup target add {target})");
    let status = Command::new("rustup")
        .args(["target", "add", target])
        .status()
        .context("running rustup\nhint: arm64 builds need rustup, or build with --arch x86_64")?;
    if !status.success() {
        bail!(
            "rustup target add {target} failed\nhint: run it by hand, or build with --arch x86_64"
        );
    }
    Ok(())
}

/// Prints the report on stdout: a table, or one JSON document.
pub fn print(report: &BuildReport, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(report)?);
        return Ok(());
    }
    println!("{:<20} {:>10}  sha256", "function", "zip bytes");
    for artifact in &report.artifacts {
        println!(
            "{:<20} {:>10}  {}",
            artifact.function,
            artifact.bytes,
            &artifact.sha256[..16]
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprint_changes_with_sources_and_architecture() {
        let dir = std::env::temp_dir().join(format!("sfstack-fingerprint-{}", std::process::id()));
        let source = dir.join("lambdas").join("f").join("src");
        std::fs::create_dir_all(&source).expect("dirs");
        std::fs::create_dir_all(dir.join("lambdas").join("f").join("tests")).expect("dirs");
        for file in ["Cargo.toml", "Cargo.lock", "python-tools.txt"] {
            std::fs::write(dir.join(file), "x").expect("write");
        }
        std::fs::write(source.join("main.rs"), "fn main() {}").expect("write");
        let first = fingerprint(&dir, Arch::X86_64).expect("fingerprint");
        assert_eq!(
            first,
            fingerprint(&dir, Arch::X86_64).expect("fingerprint"),
            "stable"
        );
        assert_ne!(
            first,
            fingerprint(&dir, Arch::Arm64).expect("fingerprint"),
            "per architecture"
        );
        std::fs::write(dir.join("lambdas/f/tests/it.rs"), "// tests do not count").expect("write");
        assert_eq!(
            first,
            fingerprint(&dir, Arch::X86_64).expect("fingerprint"),
            "tests ignored"
        );
        std::fs::write(source.join("main.rs"), "fn main() { }").expect("write");
        assert_ne!(
            first,
            fingerprint(&dir, Arch::X86_64).expect("fingerprint"),
            "source change"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
