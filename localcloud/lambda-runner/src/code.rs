//! The deployed code: finds the zip a function's `CodeSha256` names in the local S3, verifies
//! it, and extracts it once per content hash under `work_dir/code/<hex>/`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use base64::Engine;
use sha2::{Digest, Sha256};

/// Where the extracted code of one content hash lives, inside `work_dir/code/<hex>/`.
const TASK_DIR: &str = "task";
const ZIP_NAME: &str = "code.zip";

/// Zips by content hash: located in S3, downloaded, verified and extracted once.
pub(crate) struct CodeStore {
    s3: aws_sdk_s3::Client,
    endpoint: String,
    root: PathBuf,
    /// hex sha256 → (bucket, key) of an object named `…/<hex>.zip`.
    locations: Mutex<HashMap<String, (String, String)>>,
    /// One preparation at a time per hash (two functions may share a zip).
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// The decoded `CodeSha256` of a function: the digest and its lowercase hex form.
pub(crate) struct CodeHash {
    digest: [u8; 32],
    hex: String,
}

impl CodeHash {
    /// Decodes a configuration's `CodeSha256` (base64 of the zip's SHA-256).
    pub(crate) fn from_code_sha256(code_sha256: &str) -> anyhow::Result<Self> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(code_sha256.trim())
            .ok()
            .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
            .with_context(|| {
                format!("the function's CodeSha256 {code_sha256:?} is not a base64 SHA-256")
            })?;
        Ok(Self {
            hex: hex(&bytes),
            digest: bytes,
        })
    }
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(64), |mut out, byte| {
            let _ = write!(out, "{byte:02x}");
            out
        })
}

/// `<hex>` if `key` is an artifact key `…/<64 hex digits>.zip`.
fn artifact_hex(key: &str) -> Option<String> {
    let (prefix, file) = key.rsplit_once('/')?;
    let stem = file.strip_suffix(".zip")?;
    (!prefix.is_empty() && stem.len() == 64 && stem.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| stem.to_ascii_lowercase())
}

impl CodeStore {
    pub(crate) fn new(s3: aws_sdk_s3::Client, endpoint: &str, work_dir: &Path) -> Self {
        Self {
            s3,
            endpoint: endpoint.to_string(),
            root: work_dir.join("code"),
            locations: Mutex::default(),
            locks: Mutex::default(),
        }
    }

    /// The directory holding the extracted code for `hash`, preparing it if needed.
    pub(crate) async fn prepare(&self, hash: &CodeHash) -> anyhow::Result<PathBuf> {
        let lock = {
            let mut locks = self
                .locks
                .lock()
                .map_err(|_| anyhow::anyhow!("code lock poisoned"))?;
            locks.entry(hash.hex.clone()).or_default().clone()
        };
        let _guard = lock.lock().await;

        let dir = self.root.join(&hash.hex);
        let task = dir.join(TASK_DIR);
        if tokio::fs::metadata(&task)
            .await
            .is_ok_and(|meta| meta.is_dir())
        {
            return Ok(task);
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .with_context(|| format!("creating {}", dir.display()))?;
        let zip = dir.join(ZIP_NAME);
        let cached = tokio::fs::read(&zip)
            .await
            .is_ok_and(|bytes| Sha256::digest(&bytes)[..] == hash.digest[..]);
        if !cached {
            let bytes = self.download(hash).await?;
            let partial = dir.join(format!("{ZIP_NAME}.partial-{}", unique_suffix()));
            tokio::fs::write(&partial, &bytes)
                .await
                .with_context(|| format!("writing {}", partial.display()))?;
            tokio::fs::rename(&partial, &zip)
                .await
                .with_context(|| format!("moving the zip to {}", zip.display()))?;
        }
        extract(&zip, &dir, &task).await?;
        Ok(task)
    }

    fn cached_location(&self, hex: &str) -> Option<(String, String)> {
        self.locations.lock().ok()?.get(hex).cloned()
    }

    fn forget_location(&self, hex: &str) {
        if let Ok(mut locations) = self.locations.lock() {
            locations.remove(hex);
        }
    }

    /// Downloads the zip for `hash` and checks its digest.
    async fn download(&self, hash: &CodeHash) -> anyhow::Result<Vec<u8>> {
        let (location, from_cache) = match self.cached_location(&hash.hex) {
            Some(location) => (location, true),
            None => (self.locate(&hash.hex).await?, false),
        };
        let (bucket, key, bytes) = match self.get_object(&location.0, &location.1).await {
            Ok(bytes) => (location.0, location.1, bytes),
            Err(_) if from_cache => {
                // The object moved or was deleted since we saw it: look again, once.
                self.forget_location(&hash.hex);
                let (bucket, key) = self.locate(&hash.hex).await?;
                let bytes = self.get_object(&bucket, &key).await?;
                (bucket, key, bytes)
            }
            Err(error) => return Err(error),
        };
        let actual = Sha256::digest(&bytes);
        if actual[..] != hash.digest[..] {
            self.forget_location(&hash.hex);
            bail!(
                "s3://{bucket}/{key} has sha256 {}, not the deployed code's sha256 {} \
                 (the artifact was overwritten after the deployment); redeploy the function",
                hex(&actual),
                hash.hex
            );
        }
        Ok(bytes)
    }

    async fn get_object(&self, bucket: &str, key: &str) -> anyhow::Result<Vec<u8>> {
        let object = self
            .s3
            .get_object()
            .bucket(bucket)
            .key(key)
            .send()
            .await
            .map_err(|error| {
                anyhow::anyhow!(
                    "downloading s3://{bucket}/{key} from {}: {}",
                    self.endpoint,
                    aws_sdk_s3::error::DisplayErrorContext(error)
                )
            })?;
        let body = object
            .body
            .collect()
            .await
            .with_context(|| format!("reading s3://{bucket}/{key}"))?;
        Ok(body.into_bytes().to_vec())
    }

    /// Scans every bucket for artifact keys, remembering all it sees, and returns the
    /// location of `hex`.
    async fn locate(&self, hex: &str) -> anyhow::Result<(String, String)> {
        let mut buckets = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .s3
                .list_buckets()
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|error| {
                    anyhow::anyhow!(
                        "listing the buckets of the local S3 at {}: {}",
                        self.endpoint,
                        aws_sdk_s3::error::DisplayErrorContext(error)
                    )
                })?;
            buckets.extend(
                page.buckets()
                    .iter()
                    .filter_map(|bucket| bucket.name().map(str::to_string)),
            );
            match page.continuation_token() {
                Some(next) if !next.is_empty() => token = Some(next.to_string()),
                _ => break,
            }
        }
        let mut found = Vec::new();
        for bucket in &buckets {
            let mut pages = self
                .s3
                .list_objects_v2()
                .bucket(bucket)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                // A bucket we cannot list holds nothing we can use; keep looking elsewhere.
                let Ok(page) = page else { break };
                for object in page.contents() {
                    if let Some(key) = object.key()
                        && let Some(object_hex) = artifact_hex(key)
                    {
                        found.push((object_hex, (bucket.clone(), key.to_string())));
                    }
                }
            }
        }
        if let Ok(mut locations) = self.locations.lock() {
            for (object_hex, location) in found {
                locations.entry(object_hex).or_insert(location);
            }
        }
        self.cached_location(hex).with_context(|| {
            format!(
                "the deployed code (sha256 {hex}) could not be found in the local S3 at {}: \
                 no object key in its {} bucket(s) ends in /{hex}.zip (the local cloud was \
                 probably reset or the artifact deleted); redeploy the function",
                self.endpoint,
                buckets.len()
            )
        })
    }
}

fn unique_suffix() -> String {
    format!("{}-{:016x}", std::process::id(), rand::random::<u64>())
}

/// Extracts `zip` into a scratch directory of `dir`, makes `bootstrap` executable and moves
/// the result to `task` (atomically, so a half-extracted tree is never used).
async fn extract(zip: &Path, dir: &Path, task: &Path) -> anyhow::Result<()> {
    let scratch = dir.join(format!("{TASK_DIR}.partial-{}", unique_suffix()));
    tokio::fs::create_dir_all(&scratch)
        .await
        .with_context(|| format!("creating {}", scratch.display()))?;
    let output = tokio::process::Command::new("python3")
        .args(["-m", "zipfile", "-e"])
        .arg(zip)
        .arg(&scratch)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .context("running python3 -m zipfile")?;
    if !output.status.success() {
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        bail!(
            "could not extract {} ({}): {}",
            zip.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let bootstrap = scratch.join("bootstrap");
    if tokio::fs::metadata(&bootstrap).await.is_ok() {
        use std::os::unix::fs::PermissionsExt;
        tokio::fs::set_permissions(&bootstrap, std::fs::Permissions::from_mode(0o755))
            .await
            .with_context(|| format!("making {} executable", bootstrap.display()))?;
    }
    if let Err(error) = tokio::fs::rename(&scratch, task).await {
        let _ = tokio::fs::remove_dir_all(&scratch).await;
        // Another runner process may have extracted the same zip meanwhile.
        if !tokio::fs::metadata(task)
            .await
            .is_ok_and(|meta| meta.is_dir())
        {
            return Err(error).with_context(|| format!("moving the code to {}", task.display()));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_artifact_keys() {
        let hex = "ab".repeat(32);
        assert_eq!(artifact_hex(&format!("fn/{hex}.zip")), Some(hex.clone()));
        assert_eq!(
            artifact_hex(&format!("a/b/{}.zip", hex.to_uppercase())),
            Some(hex.clone())
        );
        assert_eq!(artifact_hex(&format!("{hex}.zip")), None);
        assert_eq!(artifact_hex(&format!("fn/{hex}.tar")), None);
        assert_eq!(artifact_hex("fn/abc.zip"), None);
    }

    #[test]
    fn decodes_code_sha256() {
        let digest = Sha256::digest(b"zip");
        let encoded = base64::engine::general_purpose::STANDARD.encode(digest);
        let hash = CodeHash::from_code_sha256(&encoded).expect("valid hash");
        assert_eq!(hash.hex, hex(&digest));
        assert!(CodeHash::from_code_sha256("not base64!").is_err());
        assert!(CodeHash::from_code_sha256("AAAA").is_err());
    }
}
