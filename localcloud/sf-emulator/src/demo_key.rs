//! The demo org's JWT key pair. None is committed to the repository: a local cloud makes its
//! key once and keeps it in its state directory (`local up`, mode 0600), and a process that
//! starts the demo org in-process (the tests) gets a key made on first use, which only that
//! process knows.

use std::fmt;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{Context, anyhow};
use rsa::pkcs8::{DecodePrivateKey as _, EncodePrivateKey as _, EncodePublicKey as _, LineEnding};
use rsa::{RsaPrivateKey, RsaPublicKey};

/// The size Salesforce's JWT bearer flow expects of a connected app's certificate key.
const RSA_BITS: usize = 2048;

/// An RSA key pair: the private key (PKCS#8 PEM), which signs the JWT bearer assertion, and its
/// public key (SPKI PEM), which the demo org's connected app trusts. `Debug` hides the key.
#[derive(Clone)]
pub struct DemoKey {
    private_key_pem: String,
    public_key_pem: String,
}

impl fmt::Debug for DemoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DemoKey")
            .field("private_key_pem", &"[redacted]")
            .field("public_key_pem", &self.public_key_pem)
            .finish()
    }
}

impl DemoKey {
    /// A new RSA 2048 key pair.
    pub fn generate() -> anyhow::Result<Self> {
        let private = RsaPrivateKey::new(&mut rsa::rand_core::OsRng, RSA_BITS)
            .context("generating an RSA key")?;
        Self::from_private_key(&private)
    }

    /// The pair of a PKCS#8 PEM private key.
    pub fn from_private_key_pem(pem: &str) -> anyhow::Result<Self> {
        let private = RsaPrivateKey::from_pkcs8_pem(pem)
            .map_err(|error| anyhow!("not a PKCS#8 PEM RSA private key: {error}"))?;
        Self::from_private_key(&private)
    }

    fn from_private_key(private: &RsaPrivateKey) -> anyhow::Result<Self> {
        let private_key_pem = private
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|error| anyhow!("encoding the private key: {error}"))?
            .to_string();
        let public_key_pem = RsaPublicKey::from(private)
            .to_public_key_pem(LineEnding::LF)
            .map_err(|error| anyhow!("encoding the public key: {error}"))?;
        Ok(Self {
            private_key_pem,
            public_key_pem,
        })
    }

    /// The key kept at `path`.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read_to_string(path).with_context(|| {
            format!(
                "reading the demo org's key {}\nhint: run `cargo xtask local down`, then the command again, to make a new one",
                path.display()
            )
        })?;
        Self::from_private_key_pem(&pem).with_context(|| {
            format!(
                "reading the demo org's key {}\nhint: delete it, run `cargo xtask local down`, then the command again, to make a new one",
                path.display()
            )
        })
    }

    /// The key kept at `path`, made there (readable by its owner only) the first time. Two
    /// processes racing to make it end up with the same key: the file appears whole, once.
    pub fn load_or_create(path: &Path) -> anyhow::Result<Self> {
        if path.exists() {
            return Self::load(path);
        }
        let key = Self::generate()?;
        let temporary = path.with_extension(format!("tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&temporary)?;
            file.write_all(key.private_key_pem.as_bytes())?;
            file.sync_all()
        };
        write().with_context(|| format!("writing {}", temporary.display()))?;
        // A hard link fails if the name exists: whoever links first wins, the others read it.
        let linked = std::fs::hard_link(&temporary, path);
        let _ = std::fs::remove_file(&temporary);
        match linked {
            Ok(()) => Ok(key),
            Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(error) => Err(error).with_context(|| format!("writing {}", path.display())),
        }
    }

    /// The private key, PKCS#8 PEM.
    pub fn private_key_pem(&self) -> &str {
        &self.private_key_pem
    }

    /// The public key, SPKI PEM: what the connected app trusts.
    pub fn public_key_pem(&self) -> &str {
        &self.public_key_pem
    }
}

/// The key the demo org trusts when it is started without one ([`crate::OrgConfig::demo`]):
/// made on first use, known only to this process.
pub fn process_demo_key() -> &'static DemoKey {
    static KEY: OnceLock<DemoKey> = OnceLock::new();
    KEY.get_or_init(|| match DemoKey::generate() {
        Ok(key) => key,
        // Only a broken operating-system random source gets here.
        Err(error) => panic!("making the demo org's key: {error:#}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_key_is_made_once_private_to_its_owner_and_read_back() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("sf-emulator-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("demo-jwt-key.pem");
        let _ = std::fs::remove_file(&path);
        let made = DemoKey::load_or_create(&path)?;
        let again = DemoKey::load_or_create(&path)?;
        assert_eq!(made.private_key_pem(), again.private_key_pem());
        assert_eq!(made.public_key_pem(), again.public_key_pem());
        assert!(made.public_key_pem().contains("BEGIN PUBLIC KEY"));
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path)?.permissions().mode() & 0o777,
            0o600
        );
        assert!(!format!("{made:?}").contains("PRIVATE KEY"));
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }

    #[test]
    fn a_corrupt_kept_key_is_named() -> anyhow::Result<()> {
        let dir = std::env::temp_dir().join(format!("sf-emulator-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("demo-jwt-key.pem");
        std::fs::write(&path, "not a key")?;
        let error = DemoKey::load_or_create(&path).expect_err("refused");
        assert!(
            format!("{error:#}").contains("demo-jwt-key.pem"),
            "{error:#}"
        );
        std::fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
