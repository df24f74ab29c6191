//! `cargo xtask jwt-keygen`: the key pair for the Salesforce JWT bearer flow.
//!
//! An RSA 2048 private key and a self-signed X.509 certificate (SHA-256 with RSA). The
//! certificate is what the admin uploads to the connected app ("Use digital signatures"); the
//! private key is written only into the credentials JSON file (mode 0600) as `PrivateKey`,
//! next to `"AuthFlow": "jwt"`. The key is never printed.

use std::fmt::Write as _;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
use rsa::rand_core::{OsRng, RngCore};
use rsa::signature::{SignatureEncoding, Signer};
use rsa::{RsaPrivateKey, pkcs1v15};
use salesforce::Secret;
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use x509_cert::attr::AttributeTypeAndValue;
use x509_cert::der::asn1::{BitString, GeneralizedTime, OctetString, SetOfVec, UtcTime};
use x509_cert::der::oid::AssociatedOid;
use x509_cert::der::{Any, DateTime, Decode, DecodePem, Encode, EncodePem, Tag};
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::{BasicConstraints, SubjectKeyIdentifier};
use x509_cert::name::{Name, RdnSequence, RelativeDistinguishedName};
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::{AlgorithmIdentifierOwned, ObjectIdentifier, SubjectPublicKeyInfoOwned};
use x509_cert::time::{Time, Validity};
use x509_cert::{Certificate, TbsCertificate, Version};

/// The certificate's file name inside the output directory.
pub const CERTIFICATE_FILE: &str = "sfstack-jwt.crt";
/// The credentials file's name inside the output directory (when `--credentials` is absent).
pub const CREDENTIALS_FILE: &str = "credentials.json";
/// Where the files go by default, relative to the repository root.
pub const DEFAULT_OUT_DIR: &str = "target/sfstack/jwt";
/// The login URL a new credentials file gets.
pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";

const RSA_BITS: usize = 2048;
/// X.520 `ub-common-name`.
const MAX_COMMON_NAME_CHARS: usize = 64;
/// sha256WithRSAEncryption (RFC 4055).
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
/// id-at-commonName (X.520).
const COMMON_NAME: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.3");

/// The generated key pair: the private key (PKCS#8 PEM; `Debug` prints `[redacted]`) and the
/// self-signed certificate (PEM).
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub private_key_pem: Secret,
    pub certificate_pem: String,
}

/// The command's arguments.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the certificate goes; default: `target/sfstack/jwt` under the repository root.
    pub out_dir: Option<PathBuf>,
    /// The credentials JSON file; default: `<out-dir>/credentials.json`.
    pub credentials: Option<PathBuf>,
    pub common_name: String,
    pub days: u32,
    /// Replace a `PrivateKey` the credentials file already has.
    pub force: bool,
}

/// Generates an RSA 2048 key and a self-signed certificate for it: subject and issuer
/// `CN=<common_name>`, valid from now for `days` days, signed with SHA-256 with RSA.
pub fn generate(common_name: &str, days: u32) -> anyhow::Result<KeyPair> {
    let subject = common_name_to_name(common_name)?;
    if days == 0 {
        bail!("--days must be at least 1\nhint: pass --days 730 for two years");
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let not_after = u64::from(days)
        .checked_mul(86_400)
        .and_then(|seconds| seconds.checked_add(now))
        .context("--days is too large")?;
    let validity = Validity {
        not_before: certificate_time(now)?,
        not_after: certificate_time(not_after).with_context(|| {
            format!("--days {days} ends too far in the future\nhint: pass a smaller --days")
        })?,
    };

    let private_key =
        RsaPrivateKey::new(&mut OsRng, RSA_BITS).context("generating the RSA private key")?;
    let public_key_der = private_key
        .to_public_key()
        .to_public_key_der()
        .context("encoding the public key")?;
    let subject_public_key_info = SubjectPublicKeyInfoOwned::from_der(public_key_der.as_bytes())
        .context("reading back the public key")?;

    let signature_algorithm = AlgorithmIdentifierOwned {
        oid: SHA256_WITH_RSA,
        // RFC 4055: the parameters of sha256WithRSAEncryption are NULL.
        parameters: Some(Any::null()),
    };
    let tbs_certificate = TbsCertificate {
        version: Version::V3,
        serial_number: random_serial_number()?,
        signature: signature_algorithm.clone(),
        issuer: subject.clone(),
        validity,
        subject,
        extensions: Some(extensions(&subject_public_key_info)?),
        subject_public_key_info,
        issuer_unique_id: None,
        subject_unique_id: None,
    };
    let tbs_der = tbs_certificate
        .to_der()
        .context("encoding the certificate")?;
    let signing_key = pkcs1v15::SigningKey::<Sha256>::new(private_key.clone());
    let signature = signing_key
        .try_sign(&tbs_der)
        .context("signing the certificate")?;
    let certificate = Certificate {
        tbs_certificate,
        signature_algorithm,
        signature: BitString::from_bytes(&signature.to_bytes())
            .context("encoding the signature")?,
    };
    let certificate_pem = certificate
        .to_pem(LineEnding::LF)
        .context("encoding the certificate as PEM")?;
    let private_key_pem = private_key
        .to_pkcs8_pem(LineEnding::LF)
        .context("encoding the private key as PKCS#8 PEM")?;
    Ok(KeyPair {
        private_key_pem: Secret::new(private_key_pem.as_str()),
        certificate_pem,
    })
}

/// `CN=<common_name>` as a distinguished name (one UTF8String attribute, no RFC 4514 parsing:
/// commas and equals signs are part of the name).
fn common_name_to_name(common_name: &str) -> anyhow::Result<Name> {
    if common_name.trim().is_empty() {
        bail!("--common-name is empty\nhint: pass --common-name sfstack (or any short label)");
    }
    if common_name.chars().count() > MAX_COMMON_NAME_CHARS {
        bail!(
            "--common-name is longer than {MAX_COMMON_NAME_CHARS} characters\nhint: pass a shorter --common-name"
        );
    }
    if common_name.chars().any(char::is_control) {
        bail!("--common-name contains control characters\nhint: pass a plain-text --common-name");
    }
    let value =
        Any::new(Tag::Utf8String, common_name.as_bytes()).context("encoding the common name")?;
    let attribute = AttributeTypeAndValue {
        oid: COMMON_NAME,
        value,
    };
    let rdn = SetOfVec::try_from(vec![attribute]).context("encoding the common name")?;
    Ok(RdnSequence(vec![RelativeDistinguishedName(rdn)]))
}

/// A certificate time: UTCTime through 2049, GeneralizedTime from 2050 on (RFC 5280 4.1.2.5).
fn certificate_time(unix_seconds: u64) -> anyhow::Result<Time> {
    let date_time = DateTime::from_unix_duration(Duration::from_secs(unix_seconds))
        .context("the date is outside what a certificate can hold")?;
    Ok(if date_time.year() < 2050 {
        Time::UtcTime(UtcTime::from_date_time(date_time).context("encoding a UTCTime")?)
    } else {
        Time::GeneralTime(GeneralizedTime::from_date_time(date_time))
    })
}

/// 16 random bytes, positive and without a leading zero byte (RFC 5280 4.1.2.2).
fn random_serial_number() -> anyhow::Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    OsRng
        .try_fill_bytes(&mut bytes)
        .context("reading random bytes for the serial number")?;
    bytes[0] = (bytes[0] & 0x7f) | 0x40;
    SerialNumber::new(&bytes).context("encoding the serial number")
}

/// Basic constraints (not a CA) and the subject key identifier (RFC 7093 method 1: the leftmost
/// 160 bits of the SHA-256 of the public key).
fn extensions(public_key: &SubjectPublicKeyInfoOwned) -> anyhow::Result<Vec<Extension>> {
    let basic_constraints = BasicConstraints {
        ca: false,
        path_len_constraint: None,
    };
    let key_hash = Sha256::digest(public_key.subject_public_key.raw_bytes());
    let key_identifier = SubjectKeyIdentifier(
        OctetString::new(&key_hash[..20]).context("encoding the key identifier")?,
    );
    Ok(vec![
        Extension {
            extn_id: BasicConstraints::OID,
            critical: true,
            extn_value: OctetString::new(
                basic_constraints
                    .to_der()
                    .context("encoding basic constraints")?,
            )
            .context("encoding basic constraints")?,
        },
        Extension {
            extn_id: SubjectKeyIdentifier::OID,
            critical: false,
            extn_value: OctetString::new(
                key_identifier
                    .to_der()
                    .context("encoding the key identifier")?,
            )
            .context("encoding the key identifier")?,
        },
    ])
}

/// The certificate's SHA-256 fingerprint: upper-case hex bytes joined by colons, as
/// `openssl x509 -fingerprint -sha256` and the Salesforce setup pages show it.
pub fn fingerprint(certificate_pem: &str) -> anyhow::Result<String> {
    let certificate = Certificate::from_pem(certificate_pem.trim().as_bytes())
        .context("reading the certificate")?;
    let der = certificate.to_der().context("encoding the certificate")?;
    let mut text = String::with_capacity(95);
    for (index, byte) in Sha256::digest(&der).iter().enumerate() {
        if index > 0 {
            text.push(':');
        }
        let _ = write!(text, "{byte:02X}");
    }
    Ok(text)
}

/// Reads the credentials document `path` holds (a new one when absent) and checks that its
/// `PrivateKey` may be replaced.
fn load_credentials(path: &Path, force: bool) -> anyhow::Result<Map<String, Value>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let mut document = Map::new();
            document.insert("AuthFlow".into(), "jwt".into());
            document.insert("LoginUrl".into(), DEFAULT_LOGIN_URL.into());
            document.insert("ConsumerKey".into(), "".into());
            document.insert("Username".into(), "".into());
            return Ok(document);
        }
        Err(error) => {
            return Err(error).with_context(|| format!("reading {}", path.display()));
        }
    };
    let document = match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(document)) => document,
        Ok(_) => bail!(
            "{} is not a JSON object\nhint: fix the file, move it away, or pass --credentials with another path",
            path.display()
        ),
        Err(error) => bail!(
            "{} is not valid JSON ({error})\nhint: fix the file, move it away, or pass --credentials with another path",
            path.display()
        ),
    };
    let has_key = match document.get("PrivateKey") {
        None | Some(Value::Null) => false,
        Some(Value::String(key)) => !key.trim().is_empty(),
        Some(_) => true,
    };
    if has_key && !force {
        bail!(
            "{} already has a PrivateKey; an existing key would be replaced (and the certificate \
             uploaded for it would stop working)\nhint: pass --force to replace it",
            path.display()
        );
    }
    Ok(document)
}

/// Writes the certificate (PEM, mode 0644) to `certificate_path` and the private key into the
/// credentials file (mode 0600): its other keys are kept, `PrivateKey` and `"AuthFlow": "jwt"`
/// are set; a new file gets the skeleton to fill in. An existing `PrivateKey` is replaced only
/// with `force`. Both files are replaced atomically.
pub fn write(
    pair: &KeyPair,
    certificate_path: &Path,
    credentials_path: &Path,
    force: bool,
) -> anyhow::Result<()> {
    let mut document = load_credentials(credentials_path, force)?;
    document.insert("AuthFlow".into(), "jwt".into());
    document.insert(
        "PrivateKey".into(),
        pair.private_key_pem.expose().to_owned().into(),
    );
    let mut text =
        serde_json::to_string_pretty(&Value::Object(document)).context("encoding credentials")?;
    text.push('\n');
    write_atomically(certificate_path, pair.certificate_pem.as_bytes(), 0o644)?;
    write_atomically(credentials_path, text.as_bytes(), 0o600)
}

/// Writes `contents` to a temporary file next to `path` (created with `mode`), then renames it
/// over `path`, so readers see the old file or the new one, never a partial one.
fn write_atomically(path: &Path, contents: &[u8], mode: u32) -> anyhow::Result<()> {
    let directory = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    std::fs::create_dir_all(&directory)
        .with_context(|| format!("creating {}", directory.display()))?;
    let name = path
        .file_name()
        .with_context(|| format!("{} has no file name", path.display()))?
        .to_string_lossy();
    let temporary = directory.join(format!(
        ".{name}.{}.{:016x}.tmp",
        std::process::id(),
        OsRng.next_u64()
    ));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&temporary)
            .with_context(|| format!("creating {}", temporary.display()))?;
        // The umask may have taken bits away; the mode is part of the contract.
        file.set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("setting the mode of {}", temporary.display()))?;
        file.write_all(contents)
            .with_context(|| format!("writing {}", temporary.display()))?;
        file.sync_all()
            .with_context(|| format!("writing {}", temporary.display()))?;
        std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Runs the command: checks the credentials file, generates the pair, writes the files, and
/// returns the report to print (paths, fingerprint, next steps; never the key).
pub fn run(repository_root: &Path, options: &Options) -> anyhow::Result<String> {
    let out_dir = options
        .out_dir
        .clone()
        .unwrap_or_else(|| repository_root.join(DEFAULT_OUT_DIR));
    let certificate_path = out_dir.join(CERTIFICATE_FILE);
    let credentials_path = options
        .credentials
        .clone()
        .unwrap_or_else(|| out_dir.join(CREDENTIALS_FILE));
    if certificate_path == credentials_path {
        bail!(
            "--credentials is the certificate's path {}\nhint: pass another --credentials",
            certificate_path.display()
        );
    }
    // Refuse before spending time on the key.
    load_credentials(&credentials_path, options.force)?;
    let pair = generate(&options.common_name, options.days)?;
    write(&pair, &certificate_path, &credentials_path, options.force)?;
    let fingerprint = fingerprint(&pair.certificate_pem)?;

    let certificate = certificate_path.display();
    let credentials = credentials_path.display();
    let variable = crate::deploy::credentials::CREDENTIALS_FILE_VARIABLE;
    let mut report = String::new();
    let _ = writeln!(report, "certificate: {certificate}");
    let _ = writeln!(
        report,
        "credentials: {credentials} (PrivateKey and AuthFlow jwt set, mode 0600)"
    );
    let _ = writeln!(report, "certificate SHA-256 fingerprint: {fingerprint}");
    let _ = writeln!(
        report,
        "subject: CN={}, valid for {} days",
        options.common_name, options.days
    );
    let _ = writeln!(report, "next steps:");
    let _ = writeln!(
        report,
        "  1. upload {certificate} to the connected app (Use digital signatures)"
    );
    let _ = writeln!(
        report,
        "  2. fill ConsumerKey and Username in {credentials}"
    );
    let _ = writeln!(
        report,
        "  3. {variable}={credentials} cargo xtask deploy --target aws"
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh directory under the system temporary directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new() -> anyhow::Result<Self> {
            let path = std::env::temp_dir().join(format!(
                "sfstack-keygen-test-{}-{:016x}",
                std::process::id(),
                OsRng.next_u64()
            ));
            std::fs::create_dir_all(&path)?;
            Ok(Self(path))
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mode(path: &Path) -> anyhow::Result<u32> {
        Ok(std::fs::metadata(path)?.permissions().mode() & 0o777)
    }

    fn read_json(path: &Path) -> anyhow::Result<Map<String, Value>> {
        match serde_json::from_str(&std::fs::read_to_string(path)?)? {
            Value::Object(document) => Ok(document),
            other => anyhow::bail!("not an object: {other}"),
        }
    }

    fn options(dir: &Path, force: bool) -> Options {
        Options {
            out_dir: Some(dir.join("out")),
            credentials: None,
            common_name: "sfstack".into(),
            days: 730,
            force,
        }
    }

    async fn login(base_url: &str, private_key: &Secret) -> anyhow::Result<()> {
        let document = serde_json::json!({
            "AuthFlow": "jwt",
            "LoginUrl": base_url,
            "ConsumerKey": "keygen-app",
            "Username": "demo@sfstack.local",
            "PrivateKey": private_key.expose(),
        })
        .to_string();
        let credentials = salesforce::Credentials::from_json(&document)?;
        salesforce::Client::new(credentials, salesforce::ClientConfig::default())?
            .login()
            .await?;
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn the_certificate_and_key_log_in_through_the_jwt_bearer_flow() -> anyhow::Result<()> {
        let (pair, other) = tokio::task::spawn_blocking(|| {
            anyhow::Ok((generate("sfstack", 730)?, generate("sfstack", 730)?))
        })
        .await??;
        let emulator = sfstack_test_support::start_emulator().await?;
        let base_url = emulator.base_url().to_string();
        sfstack_test_support::emulator_admin(
            &base_url,
            reqwest::Method::POST,
            "connected-apps",
            Some(serde_json::json!({
                "consumer_key": "keygen-app",
                "consumer_secret": "s",
                "certificate": pair.certificate_pem,
                "flows": ["jwt_bearer"],
            })),
        )
        .await?;

        login(&base_url, &pair.private_key_pem).await?;
        match login(&base_url, &other.private_key_pem).await {
            Ok(()) => anyhow::bail!("the app accepted a key whose certificate it does not hold"),
            Err(error) => {
                let message = format!("{error:#}");
                assert!(
                    message.contains("login failed") && message.contains("invalid_grant"),
                    "{message}"
                );
            }
        }
        Ok(())
    }

    #[test]
    fn the_certificate_is_self_signed_sha256_with_rsa_for_the_common_name() -> anyhow::Result<()> {
        use rsa::pkcs8::DecodePrivateKey;
        use rsa::signature::Verifier;
        use rsa::traits::PublicKeyParts;
        use x509_cert::der::Tagged;

        let pair = generate("keygen, test=1", 30)?;
        assert!(
            pair.certificate_pem
                .starts_with("-----BEGIN CERTIFICATE-----\n")
        );
        let certificate = Certificate::from_pem(pair.certificate_pem.as_bytes())?;
        let tbs = &certificate.tbs_certificate;
        // One attribute, the whole name as a UTF8String: no RFC 4514 parsing of the argument.
        let attributes: Vec<&AttributeTypeAndValue> =
            tbs.subject.0.iter().flat_map(|rdn| rdn.0.iter()).collect();
        assert_eq!(attributes.len(), 1);
        assert_eq!(attributes[0].oid, COMMON_NAME);
        assert_eq!(attributes[0].value.tag(), Tag::Utf8String);
        assert_eq!(attributes[0].value.value(), b"keygen, test=1");
        assert_eq!(tbs.issuer, tbs.subject);
        assert_eq!(certificate.signature_algorithm.oid, SHA256_WITH_RSA);
        assert_eq!(tbs.signature, certificate.signature_algorithm);

        let not_before = tbs.validity.not_before.to_unix_duration().as_secs();
        let not_after = tbs.validity.not_after.to_unix_duration().as_secs();
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        assert!(not_before <= now && now - not_before < 600, "{not_before}");
        assert_eq!(not_after - not_before, 30 * 86_400);

        // The certificate holds the private key's public key and verifies with it.
        let private_key = RsaPrivateKey::from_pkcs8_pem(pair.private_key_pem.expose())?;
        assert_eq!(private_key.size() * 8, RSA_BITS);
        let public_key = private_key.to_public_key();
        assert_eq!(
            tbs.subject_public_key_info.to_der()?,
            public_key.to_public_key_der()?.as_bytes()
        );
        let verifying_key = pkcs1v15::VerifyingKey::<Sha256>::new(public_key);
        let signature = pkcs1v15::Signature::try_from(certificate.signature.raw_bytes())?;
        verifying_key.verify(&tbs.to_der()?, &signature)?;

        // The private key is PKCS#8 and never shows in Debug.
        let label = ["PRIVATE", "KEY"].join(" ");
        assert!(
            pair.private_key_pem
                .expose()
                .starts_with(&format!("-----BEGIN {label}-----\n"))
        );
        let debug = format!("{pair:?}");
        assert!(!debug.contains(&label), "{debug}");
        assert!(!debug.contains(pair.private_key_pem.expose()));
        assert!(debug.contains("[redacted]"), "{debug}");
        Ok(())
    }

    #[test]
    fn bad_arguments_are_errors_with_a_hint() {
        let long = "x".repeat(65);
        for (common_name, days) in [
            ("sfstack", 0),
            ("", 730),
            ("  ", 730),
            ("a\nb", 730),
            (long.as_str(), 730),
            ("sfstack", u32::MAX),
        ] {
            match generate(common_name, days) {
                Ok(_) => panic!("{common_name:?} {days}: accepted"),
                Err(error) => {
                    let message = format!("{error:#}");
                    assert!(message.contains("\nhint: "), "{message}");
                }
            }
        }
    }

    #[test]
    fn a_new_credentials_file_gets_the_skeleton_and_only_there_the_key() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let report = run(&dir.0, &options(&dir.0, false))?;
        let out = dir.0.join("out");
        let certificate_path = out.join(CERTIFICATE_FILE);
        let credentials_path = out.join(CREDENTIALS_FILE);
        assert_eq!(mode(&certificate_path)?, 0o644);
        assert_eq!(mode(&credentials_path)?, 0o600);

        let document = read_json(&credentials_path)?;
        let keys: Vec<&str> = document.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "AuthFlow",
                "LoginUrl",
                "ConsumerKey",
                "Username",
                "PrivateKey"
            ]
        );
        assert_eq!(document["AuthFlow"], "jwt");
        assert_eq!(document["LoginUrl"], DEFAULT_LOGIN_URL);
        assert_eq!(document["ConsumerKey"], "");
        let key = document["PrivateKey"].as_str().unwrap_or_default();
        assert!(key.contains("PRIVATE KEY"));
        let certificate = std::fs::read_to_string(&certificate_path)?;
        assert!(!certificate.contains("PRIVATE KEY"));
        let leftovers: Vec<_> = std::fs::read_dir(&out)?
            .filter_map(Result::ok)
            .map(|entry| entry.file_name())
            .filter(|name| name.to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");

        // The report names the files, the fingerprint and the steps, never the key.
        let certificate_text = certificate_path.display().to_string();
        let credentials_text = credentials_path.display().to_string();
        for expected in [
            format!("certificate: {certificate_text}"),
            format!("credentials: {credentials_text}"),
            format!("fingerprint: {}", fingerprint(&certificate)?),
            format!("1. upload {certificate_text} to the connected app (Use digital signatures)"),
            format!("2. fill ConsumerKey and Username in {credentials_text}"),
            format!(
                "3. SFSTACK_SF_CREDENTIALS_FILE={credentials_text} cargo xtask deploy --target aws"
            ),
        ] {
            assert!(
                report.contains(&expected),
                "{expected:?} missing in\n{report}"
            );
        }
        assert!(!report.contains("PRIVATE KEY"), "{report}");
        for line in key.lines().filter(|line| !line.starts_with("-----")) {
            assert!(!report.contains(line), "a key line leaked:\n{report}");
        }
        Ok(())
    }

    #[test]
    fn an_existing_file_keeps_its_keys_and_its_key_is_replaced_only_with_force()
    -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let credentials_path = dir.0.join("secrets").join("sf.json");
        std::fs::create_dir_all(dir.0.join("secrets"))?;
        std::fs::write(
            &credentials_path,
            r#"{"LoginUrl":"https://example.my.salesforce.com","ConsumerKey":"ck","ConsumerSecret":"cs","Username":"u@example.com","AuthFlow":"password","Password":"p"}"#,
        )?;
        std::fs::set_permissions(&credentials_path, std::fs::Permissions::from_mode(0o644))?;
        let mut options = options(&dir.0, false);
        options.credentials = Some(credentials_path.clone());

        run(&dir.0, &options)?;
        let first = read_json(&credentials_path)?;
        assert_eq!(mode(&credentials_path)?, 0o600);
        let keys: Vec<&str> = first.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "LoginUrl",
                "ConsumerKey",
                "ConsumerSecret",
                "Username",
                "AuthFlow",
                "Password",
                "PrivateKey"
            ]
        );
        assert_eq!(first["LoginUrl"], "https://example.my.salesforce.com");
        assert_eq!(first["ConsumerKey"], "ck");
        assert_eq!(first["ConsumerSecret"], "cs");
        assert_eq!(first["Username"], "u@example.com");
        assert_eq!(first["Password"], "p");
        assert_eq!(first["AuthFlow"], "jwt");
        let first_certificate = std::fs::read_to_string(dir.0.join("out").join(CERTIFICATE_FILE))?;

        // Without --force the key stays, and so does the certificate.
        let error = match run(&dir.0, &options) {
            Ok(_) => anyhow::bail!("an existing key was replaced without --force"),
            Err(error) => format!("{error:#}"),
        };
        assert!(
            error.contains("an existing key would be replaced"),
            "{error}"
        );
        assert!(error.contains("hint: pass --force"), "{error}");
        assert!(!error.contains("PRIVATE KEY"), "{error}");
        assert_eq!(read_json(&credentials_path)?, first);
        assert_eq!(
            std::fs::read_to_string(dir.0.join("out").join(CERTIFICATE_FILE))?,
            first_certificate
        );

        // With --force the key and the certificate are new; the rest stays.
        options.force = true;
        let report = run(&dir.0, &options)?;
        let second = read_json(&credentials_path)?;
        assert_ne!(second["PrivateKey"], first["PrivateKey"]);
        let mut unchanged = second.clone();
        unchanged.insert("PrivateKey".into(), first["PrivateKey"].clone());
        assert_eq!(unchanged, first);
        assert_eq!(mode(&credentials_path)?, 0o600);
        let second_certificate = std::fs::read_to_string(dir.0.join("out").join(CERTIFICATE_FILE))?;
        assert_ne!(second_certificate, first_certificate);
        assert!(report.contains(&fingerprint(&second_certificate)?));
        assert!(!report.contains("PRIVATE KEY"), "{report}");
        Ok(())
    }

    #[test]
    fn a_credentials_file_that_is_not_a_json_object_is_left_alone() -> anyhow::Result<()> {
        let dir = TempDir::new()?;
        let credentials_path = dir.0.join("credentials.json");
        let mut options = options(&dir.0, true);
        options.credentials = Some(credentials_path.clone());
        for contents in ["[1, 2]", "not json", ""] {
            std::fs::write(&credentials_path, contents)?;
            let error = match run(&dir.0, &options) {
                Ok(_) => anyhow::bail!("{contents:?} was accepted"),
                Err(error) => format!("{error:#}"),
            };
            assert!(error.contains("\nhint: "), "{error}");
            assert_eq!(std::fs::read_to_string(&credentials_path)?, contents);
        }
        assert!(!dir.0.join("out").join(CERTIFICATE_FILE).exists());
        Ok(())
    }
}
