//! The org's mutable state: records, users, connected apps, sessions, limits, faults and the
//! request log, all behind one lock so concurrent clients always see a consistent org.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use chrono::Utc;
use jsonwebtoken::DecodingKey;
use rand::Rng;
use rand::distr::Alphanumeric;
use serde::Serialize;
use serde_json::Value;

use crate::config::{ConnectedAppConfig, Flow, OrgConfig};
use crate::schema::Schema;
use crate::store::Store;

/// A connected app with its verification key parsed.
pub struct ConnectedApp {
    pub config: ConnectedAppConfig,
    pub jwt_key: Option<DecodingKey>,
}

impl ConnectedApp {
    pub fn new(config: ConnectedAppConfig) -> anyhow::Result<Self> {
        let jwt_key =
            match &config.certificate {
                Some(pem) => Some(decoding_key(pem).with_context(|| {
                    format!("connected app {}: certificate", config.consumer_key)
                })?),
                None => None,
            };
        Ok(Self { config, jwt_key })
    }

    pub fn allows(&self, flow: Flow) -> bool {
        self.config.flows.contains(&flow)
    }
}

/// Reads an RSA public key from a PEM X.509 certificate or a PEM public key.
fn decoding_key(pem: &str) -> anyhow::Result<DecodingKey> {
    if pem.contains("BEGIN CERTIFICATE") {
        use x509_cert::der::DecodePem;
        let certificate = x509_cert::Certificate::from_pem(pem.trim().as_bytes())
            .map_err(|error| anyhow!("not a PEM X.509 certificate: {error}"))?;
        let public_key = certificate
            .tbs_certificate
            .subject_public_key_info
            .subject_public_key
            .raw_bytes()
            .to_vec();
        // The subject public key of an RSA certificate is the PKCS#1 RSAPublicKey.
        Ok(DecodingKey::from_rsa_der(&public_key))
    } else if pem.contains("BEGIN PUBLIC KEY") || pem.contains("BEGIN RSA PUBLIC KEY") {
        DecodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|error| anyhow!("not an RSA public key: {error}"))
    } else {
        bail!("expected a PEM certificate or public key")
    }
}

/// A user account that can log in.
#[derive(Debug, Clone)]
pub struct Account {
    pub user_id: String,
    pub username: String,
    pub password: String,
    pub security_token: String,
    pub active: bool,
}

/// An issued access token.
#[derive(Debug, Clone)]
pub struct AccessGrant {
    pub user_id: String,
    pub expires_at: Instant,
    /// The refresh token this session came from, so revoking it revokes the session.
    pub refresh_token: Option<String>,
}

/// An issued refresh token.
#[derive(Debug, Clone)]
pub struct RefreshGrant {
    pub user_id: String,
    pub consumer_key: String,
}

/// An authorization code from `/services/oauth2/authorize`.
#[derive(Debug, Clone)]
pub struct AuthorizationCode {
    pub user_id: String,
    pub consumer_key: String,
    pub redirect_uri: String,
    pub expires_at: Instant,
    pub code_challenge: Option<(String, String)>,
}

/// Open query cursors kept at once; older ones answer `INVALID_QUERY_LOCATOR`.
pub const MAX_OPEN_CURSORS: usize = 100;

/// A query's remaining pages.
#[derive(Debug, Clone)]
pub struct Cursor {
    pub records: Vec<Value>,
    pub batch_size: usize,
    pub all_rows: bool,
}

/// A pending injected fault.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    Status(u16),
    Delay(Duration),
}

/// One line of the request log.
#[derive(Debug, Clone, Serialize)]
pub struct LogEntry {
    pub seq: u64,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub soql: Option<String>,
    pub sosl: Option<String>,
    pub grant_type: Option<String>,
    pub body: Option<Value>,
    pub status: u16,
    /// Time spent serving the request, injected delays included (benchmarks subtract it).
    pub duration_us: u64,
}

/// A Chatter feed element and its comments.
#[derive(Debug, Clone)]
pub struct FeedElement {
    pub id: String,
    pub value: Value,
    pub comments: Vec<Value>,
}

pub struct Org {
    pub org_id: String,
    pub base_url: String,
    pub api_versions: Vec<String>,
    pub query_batch_size: usize,
    pub phone_match: crate::sosl::PhoneMatch,
    pub access_token_ttl: Duration,
    pub jwt_audiences: Vec<String>,
    pub schema: Schema,
    pub store: Store,
    pub apps: Vec<ConnectedApp>,
    pub accounts: Vec<Account>,
    pub access_tokens: HashMap<String, AccessGrant>,
    pub refresh_tokens: HashMap<String, RefreshGrant>,
    pub codes: HashMap<String, AuthorizationCode>,
    pub cursors: HashMap<String, Cursor>,
    /// Cursor ids, oldest first: Salesforce closes the oldest open cursors past a limit.
    pub cursor_order: VecDeque<String>,
    pub feed: Vec<FeedElement>,
    pub next_chatter_id: u64,
    pub api_used: u64,
    pub api_max: u64,
    /// Set by the admin API: every refresh-token grant rotates, whatever the app says.
    pub rotate_all_refresh_tokens: bool,
    pub faults: VecDeque<Fault>,
    pub log: Vec<LogEntry>,
    pub next_seq: u64,
}

/// The org behind one lock, shared by every handler.
#[derive(Clone)]
pub struct Shared(Arc<Mutex<Org>>);

impl Shared {
    pub fn new(org: Org) -> Self {
        Self(Arc::new(Mutex::new(org)))
    }

    /// Locks the org. A handler that panicked mid-update cannot leave it half-written in a
    /// way later requests care about, so a poisoned lock is simply taken over.
    pub fn lock(&self) -> MutexGuard<'_, Org> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A random opaque string of alphanumerics.
pub fn random_string(length: usize) -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

impl Org {
    pub fn new(config: &OrgConfig, base_url: String) -> anyhow::Result<Self> {
        let schema = Schema::standard();
        let mut store = Store::new();
        let now = Utc::now();
        let user_object = schema
            .object("User")
            .context("schema has no User object")?
            .clone();
        let mut accounts = Vec::new();
        for user in &config.users {
            let mut fields = BTreeMap::new();
            fields.insert("Username", Value::String(user.username.clone()));
            if let Some(first) = &user.first_name {
                fields.insert("FirstName", Value::String(first.clone()));
            }
            fields.insert("LastName", Value::String(user.last_name.clone()));
            fields.insert("Email", Value::String(user.email.clone()));
            fields.insert("IsActive", Value::Bool(user.active));
            let alias: String = user.username.chars().take(8).collect();
            fields.insert("Alias", Value::String(alias));
            let user_id = store.insert_seed(&user_object, fields, None, now);
            accounts.push(Account {
                user_id,
                username: user.username.clone(),
                password: user.password.clone(),
                security_token: user.security_token.clone(),
                active: user.active,
            });
        }
        let owner = accounts.first().map(|account| account.user_id.clone());

        let mut references: HashMap<String, String> = HashMap::new();
        for (index, seed) in config.records.iter().enumerate() {
            let object = schema
                .object(&seed.sobject)
                .with_context(|| format!("records[{index}]: unknown sobject {:?}", seed.sobject))?
                .clone();
            let mut fields = BTreeMap::new();
            for (name, value) in &seed.fields {
                let field = object.field(name).with_context(|| {
                    format!("records[{index}]: {} has no field {name:?}", object.name)
                })?;
                let value = match value {
                    toml::Value::String(text) if text.starts_with('@') => {
                        let id = references.get(&text[1..]).with_context(|| {
                            format!(
                                "records[{index}].{name}: no earlier record has ref {:?}",
                                &text[1..]
                            )
                        })?;
                        Value::String(id.clone())
                    }
                    other => serde_json::to_value(other)
                        .with_context(|| format!("records[{index}].{name}: unsupported value"))?,
                };
                fields.insert(field.name, value);
            }
            let id = store.insert_seed(&object, fields, owner.as_deref(), now);
            if let Some(reference) = &seed.reference {
                references.insert(reference.clone(), id);
            }
        }

        let apps = config
            .connected_apps
            .iter()
            .cloned()
            .map(ConnectedApp::new)
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Self {
            org_id: config.org_id.clone(),
            base_url,
            api_versions: config.api_versions.clone(),
            query_batch_size: config.query_batch_size,
            phone_match: config.phone_match,
            access_token_ttl: Duration::from_secs(config.access_token_ttl_seconds),
            jwt_audiences: config.jwt_audiences.clone(),
            schema,
            store,
            apps,
            accounts,
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            codes: HashMap::new(),
            cursors: HashMap::new(),
            cursor_order: VecDeque::new(),
            feed: Vec::new(),
            next_chatter_id: 0,
            api_used: 0,
            api_max: config.api_limit,
            rotate_all_refresh_tokens: false,
            faults: VecDeque::new(),
            log: Vec::new(),
            next_seq: 0,
        })
    }

    pub fn app(&self, consumer_key: &str) -> Option<&ConnectedApp> {
        self.apps
            .iter()
            .find(|app| app.config.consumer_key == consumer_key)
    }

    pub fn account_by_username(&self, username: &str) -> Option<&Account> {
        self.accounts
            .iter()
            .find(|account| account.username.eq_ignore_ascii_case(username))
    }

    /// The user an access token belongs to, if the token is live.
    pub fn session_user(&self, token: &str) -> Option<String> {
        self.access_tokens
            .get(token)
            .filter(|grant| grant.expires_at > Instant::now())
            .map(|grant| grant.user_id.clone())
    }

    /// Issues an access token shaped like Salesforce's: `<OrgId15>!<opaque>`.
    pub fn issue_access_token(&mut self, user_id: &str, refresh_token: Option<String>) -> String {
        let token = format!("{}!AQ{}", &self.org_id[..15], random_string(94));
        self.access_tokens.insert(
            token.clone(),
            AccessGrant {
                user_id: user_id.to_string(),
                expires_at: Instant::now() + self.access_token_ttl,
                refresh_token,
            },
        );
        token
    }

    pub fn issue_refresh_token(&mut self, user_id: &str, consumer_key: &str) -> String {
        let token = format!("5Aep861{}", random_string(80));
        self.refresh_tokens.insert(
            token.clone(),
            RefreshGrant {
                user_id: user_id.to_string(),
                consumer_key: consumer_key.to_string(),
            },
        );
        token
    }

    /// Revokes a refresh token and every session that came from it.
    pub fn revoke_refresh_token(&mut self, token: &str) -> bool {
        let existed = self.refresh_tokens.remove(token).is_some();
        if existed {
            self.access_tokens
                .retain(|_, grant| grant.refresh_token.as_deref() != Some(token));
        }
        existed
    }

    /// The org's next Chatter ID for a key prefix (`0D5` feed items, `0D7` comments).
    pub fn next_chatter_id(&mut self, prefix: &str) -> String {
        self.next_chatter_id += 1;
        crate::ids::generate(prefix, self.next_chatter_id)
    }

    /// Keeps a query's remaining pages, closing the oldest cursor past `MAX_OPEN_CURSORS` so a
    /// long-running emulator does not grow without bound.
    pub fn keep_cursor(&mut self, id: String, cursor: Cursor) {
        if self.cursors.insert(id.clone(), cursor).is_none() {
            self.cursor_order.push_back(id);
        }
        while self.cursor_order.len() > MAX_OPEN_CURSORS {
            if let Some(oldest) = self.cursor_order.pop_front() {
                self.cursors.remove(&oldest);
            }
        }
    }

    /// Forgets a cursor whose last page was served.
    pub fn close_cursor(&mut self, id: &str) {
        if self.cursors.remove(id).is_some() {
            self.cursor_order.retain(|open| open != id);
        }
    }

    pub fn limit_header(&self) -> String {
        format!("api-usage={}/{}", self.api_used, self.api_max)
    }
}
