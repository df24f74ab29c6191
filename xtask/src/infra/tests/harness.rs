//! The moto harness the infra tests share: a server per test, fake zips, and read-backs of
//! what an environment holds.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use sfstack_test_support::MotoServer;
use sha2::Digest;

use crate::infra::*;
use crate::naming::{FUNCTIONS, Names};
use crate::render::repository_root;

/// moto's account.
pub(super) const ACCOUNT: &str = "123456789012";
pub(super) const REGION: &str = "us-east-1";

pub(super) fn tags(environment: &str) -> Tags {
    Tags {
        env: environment.to_string(),
        branch: format!("feature/{environment}#1"),
        commit: "0123456789abcdef0123456789abcdef01234567".to_string(),
        created_at: "2025-01-01T00:00:00Z".to_string(),
        expires_at: "2025-01-08T00:00:00Z".to_string(),
    }
}

pub(super) struct Moto {
    pub(super) clients: Clients,
    pub(super) config: aws_config::SdkConfig,
    // Dropped last: stops the server.
    _server: MotoServer,
}

pub(super) async fn moto() -> anyhow::Result<Moto> {
    let server = tokio::task::spawn_blocking(MotoServer::start).await??;
    let config = server.sdk_config().await;
    // A 127.0.0.1 endpoint cannot carry bucket names as host names: path style, as the local
    // target will use too.
    let clients = Clients::new(&config, true, None);
    Ok(Moto {
        clients,
        config,
        _server: server,
    })
}

/// Four small files standing in for the built zips, in a folder removed on drop.
pub(super) struct Zips {
    pub(super) folder: PathBuf,
    pub(super) artifacts: Vec<Artifact>,
}

impl Zips {
    pub(super) fn new(label: &str, version: &str) -> anyhow::Result<Self> {
        let folder = std::env::temp_dir().join(format!(
            "sfstack-infra-{}-{label}-{version}",
            std::process::id()
        ));
        std::fs::create_dir_all(&folder)?;
        let mut artifacts = Vec::new();
        for function in FUNCTIONS {
            let zip = folder.join(format!("{function}.zip"));
            let content = format!("zip of {function}, version {version}");
            std::fs::write(&zip, &content)?;
            let sha256 = sha2::Sha256::digest(content.as_bytes())
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            artifacts.push(Artifact {
                function,
                zip,
                bytes: content.len() as u64,
                sha256,
            });
        }
        Ok(Self { folder, artifacts })
    }
}

impl Drop for Zips {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.folder);
    }
}

pub(super) async fn ensure(
    moto: &Moto,
    names: &Names,
    tags: &Tags,
    credentials: &str,
    zips: &Zips,
) -> anyhow::Result<Infra> {
    ensure_environment(
        &moto.clients,
        names,
        tags,
        &repository_root(),
        ACCOUNT,
        REGION,
        Credentials::Given(credentials),
        false,
        None,
        &zips.artifacts,
        &artifacts_bucket_name(ACCOUNT, REGION),
    )
    .await
}

pub(super) const CREDENTIALS: &str = r#"{"AuthFlow":"jwt","ConsumerKey":"k","Username":"u"}"#;

/// Everything an ensure could change, read back from moto.
#[derive(Debug, PartialEq)]
pub(super) struct Snapshot {
    pub(super) key: (String, String, Option<String>, bool),
    pub(super) secret_versions: Vec<(String, Vec<String>)>,
    pub(super) roles: Vec<(String, String, String)>,
    pub(super) objects: Vec<(String, Option<String>, Option<String>)>,
}

pub(super) async fn snapshot(moto: &Moto, names: &Names) -> anyhow::Result<Snapshot> {
    let kms = &moto.clients.kms;
    let metadata = kms
        .describe_key()
        .key_id(names.key_alias())
        .send()
        .await?
        .key_metadata
        .context("no key metadata")?;
    let key_id = metadata.key_id().to_string();
    let policy = kms
        .get_key_policy()
        .key_id(&key_id)
        .policy_name("default")
        .send()
        .await?
        .policy;
    let rotation = kms
        .get_key_rotation_status()
        .key_id(&key_id)
        .send()
        .await?
        .key_rotation_enabled();
    let key = (
        key_id,
        format!("{:?}", metadata.key_state()),
        policy,
        rotation,
    );

    let mut secret_versions = Vec::new();
    for name in [names.credentials_secret(), names.session_secret()] {
        let versions = moto
            .clients
            .secrets
            .list_secret_version_ids()
            .secret_id(&name)
            .send()
            .await?
            .versions
            .unwrap_or_default()
            .into_iter()
            .filter_map(|version| version.version_id)
            .collect();
        secret_versions.push((name, versions));
    }

    let mut roles = Vec::new();
    for function in FUNCTIONS {
        let role_name = names.role(function);
        let role = moto
            .clients
            .iam
            .get_role()
            .role_name(&role_name)
            .send()
            .await?
            .role
            .context("no role")?;
        let policy = moto
            .clients
            .iam
            .get_role_policy()
            .role_name(&role_name)
            .policy_name(roles::POLICY_NAME)
            .send()
            .await?
            .policy_document;
        roles.push((role.role_id, role.create_date.to_string(), policy));
    }

    let objects = moto
        .clients
        .s3
        .list_objects_v2()
        .bucket(artifacts_bucket_name(ACCOUNT, REGION))
        .send()
        .await?
        .contents
        .unwrap_or_default()
        .into_iter()
        .map(|object| {
            (
                object.key.unwrap_or_default(),
                object.e_tag,
                object.last_modified.map(|date| date.to_string()),
            )
        })
        .collect();
    Ok(Snapshot {
        key,
        secret_versions,
        roles,
        objects,
    })
}

pub(super) async fn key_tags(
    moto: &Moto,
    key_id: &str,
) -> anyhow::Result<BTreeMap<String, String>> {
    Ok(moto
        .clients
        .kms
        .list_resource_tags()
        .key_id(key_id)
        .send()
        .await?
        .tags()
        .iter()
        .map(|tag| (tag.tag_key().to_string(), tag.tag_value().to_string()))
        .collect())
}

pub(super) async fn secret_value(moto: &Moto, name: &str) -> anyhow::Result<Option<String>> {
    Ok(moto
        .clients
        .secrets
        .get_secret_value()
        .secret_id(name)
        .send()
        .await?
        .secret_string)
}

pub(super) async fn role_exists(moto: &Moto, role: &str) -> anyhow::Result<bool> {
    match moto.clients.iam.get_role().role_name(role).send().await {
        Ok(_) => Ok(true),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_no_such_entity_exception()) =>
        {
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn secret_exists(moto: &Moto, name: &str) -> anyhow::Result<bool> {
    match moto
        .clients
        .secrets
        .describe_secret()
        .secret_id(name)
        .send()
        .await
    {
        Ok(output) => Ok(output.deleted_date.is_none()),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_resource_not_found_exception()) =>
        {
            Ok(false)
        }
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn alias_key_state(moto: &Moto, names: &Names) -> anyhow::Result<Option<String>> {
    match moto
        .clients
        .kms
        .describe_key()
        .key_id(names.key_alias())
        .send()
        .await
    {
        Ok(output) => Ok(output
            .key_metadata
            .and_then(|metadata| metadata.key_state)
            .map(|state| state.as_str().to_string())),
        Err(error)
            if error
                .as_service_error()
                .is_some_and(|error| error.is_not_found_exception()) =>
        {
            Ok(None)
        }
        Err(error) => Err(error.into()),
    }
}

pub(super) async fn key_state(moto: &Moto, key_id: &str) -> anyhow::Result<String> {
    Ok(moto
        .clients
        .kms
        .describe_key()
        .key_id(key_id)
        .send()
        .await?
        .key_metadata
        .and_then(|metadata| metadata.key_state)
        .map(|state| state.as_str().to_string())
        .unwrap_or_default())
}
