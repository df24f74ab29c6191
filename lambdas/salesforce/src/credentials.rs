//! Credentials: which OAuth grant to use and what it needs, read from a JSON secret.

use std::fmt;
use std::str::FromStr;

use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// The login host used when the credentials document names none.
pub const DEFAULT_LOGIN_URL: &str = "https://login.salesforce.com";

/// The OAuth grant a [`Credentials`] value logs in with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthFlow {
    /// `urn:ietf:params:oauth:grant-type:jwt-bearer`, an RS256 assertion. The default.
    JwtBearer,
    /// Username + password + security token (legacy; Salesforce is retiring it).
    Password,
    /// A long-lived refresh token obtained through the authorization-code flow.
    RefreshToken,
    /// Client id + secret of a connected app with a run-as user (My Domain hosts only).
    ClientCredentials,
}

impl AuthFlow {
    /// The `AuthFlow` value in a credentials document.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthFlow::JwtBearer => "jwt",
            AuthFlow::Password => "password",
            AuthFlow::RefreshToken => "refresh_token",
            AuthFlow::ClientCredentials => "client_credentials",
        }
    }
}

impl fmt::Display for AuthFlow {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for AuthFlow {
    type Err = Error;

    fn from_str(value: &str) -> Result<Self> {
        match value.trim() {
            "jwt" => Ok(AuthFlow::JwtBearer),
            "password" => Ok(AuthFlow::Password),
            "refresh_token" => Ok(AuthFlow::RefreshToken),
            "client_credentials" => Ok(AuthFlow::ClientCredentials),
            other => Err(Error::InvalidCredentials(format!(
                "AuthFlow {other:?} is not one of jwt, password, refresh_token, client_credentials"
            ))),
        }
    }
}

/// What a client logs in with. Secrets are [`Secret`]s, so `Debug` never shows them.
#[derive(Debug, Clone)]
pub struct Credentials {
    login_url: String,
    client_id: String,
    pub(crate) grant: Grant,
}

#[derive(Debug, Clone)]
pub(crate) enum Grant {
    JwtBearer {
        username: String,
        private_key: Secret,
        audience: Option<String>,
    },
    Password {
        username: String,
        client_secret: Secret,
        /// The password with the security token already appended, as Salesforce wants it.
        password_and_token: Secret,
    },
    RefreshToken {
        client_secret: Option<Secret>,
        refresh_token: Secret,
    },
    ClientCredentials {
        client_secret: Secret,
    },
}

impl Credentials {
    /// JWT bearer credentials. `private_key_pem` is the connected app's RSA private key (PKCS#1
    /// or PKCS#8 PEM); it is checked here so a bad key fails at start-up, not at first login.
    pub fn jwt_bearer(
        client_id: impl Into<String>,
        username: impl Into<String>,
        private_key_pem: Secret,
    ) -> Result<Self> {
        check_private_key(&private_key_pem)?;
        Ok(Self {
            login_url: DEFAULT_LOGIN_URL.to_owned(),
            client_id: client_id.into(),
            grant: Grant::JwtBearer {
                username: username.into(),
                private_key: private_key_pem,
                audience: None,
            },
        })
    }

    /// Username-password credentials; the security token (if any) is appended to the password.
    pub fn password(
        client_id: impl Into<String>,
        client_secret: Secret,
        username: impl Into<String>,
        password: &Secret,
        security_token: Option<&Secret>,
    ) -> Self {
        let token = security_token.map(Secret::expose).unwrap_or_default();
        Self {
            login_url: DEFAULT_LOGIN_URL.to_owned(),
            client_id: client_id.into(),
            grant: Grant::Password {
                username: username.into(),
                client_secret,
                password_and_token: Secret::new(format!("{}{token}", password.expose())),
            },
        }
    }

    /// Refresh-token credentials; the client secret is optional for this grant.
    pub fn refresh_token(
        client_id: impl Into<String>,
        client_secret: Option<Secret>,
        refresh_token: Secret,
    ) -> Self {
        Self {
            login_url: DEFAULT_LOGIN_URL.to_owned(),
            client_id: client_id.into(),
            grant: Grant::RefreshToken {
                client_secret,
                refresh_token,
            },
        }
    }

    /// Client-credentials credentials (the login URL must be the org's My Domain).
    pub fn client_credentials(client_id: impl Into<String>, client_secret: Secret) -> Self {
        Self {
            login_url: DEFAULT_LOGIN_URL.to_owned(),
            client_id: client_id.into(),
            grant: Grant::ClientCredentials { client_secret },
        }
    }

    /// Uses another login host (`https://test.salesforce.com`, a My Domain, an emulator).
    pub fn with_login_url(mut self, login_url: &str) -> Result<Self> {
        self.login_url = normalize_login_url(login_url)?;
        Ok(self)
    }

    /// Sets the JWT `aud` claim, which defaults to the login URL. Salesforce wants
    /// `https://login.salesforce.com` or `https://test.salesforce.com` even when logging in
    /// through a My Domain host. Ignored by the other flows.
    pub fn with_jwt_audience(mut self, audience: impl Into<String>) -> Self {
        if let Grant::JwtBearer {
            audience: current, ..
        } = &mut self.grant
        {
            *current = Some(audience.into());
        }
        self
    }

    /// Reads a credentials document (see the crate documentation for its keys).
    pub fn from_json(document: &str) -> Result<Self> {
        Self::from_json_with_username(document, None)
    }

    /// Like [`Credentials::from_json`], with a username from elsewhere (the original package
    /// kept it in an environment variable). A `Username` in the document wins over this one.
    pub fn from_json_with_username(document: &str, username: Option<&str>) -> Result<Self> {
        let value: Value = serde_json::from_str(document).map_err(|error| {
            Error::InvalidCredentials(format!(
                "the credentials document is not valid JSON (line {}, column {})",
                error.line(),
                error.column()
            ))
        })?;
        let Value::Object(map) = value else {
            return Err(Error::InvalidCredentials(
                "the credentials document is not a JSON object".into(),
            ));
        };
        let document = Document { map: &map };

        let client_id = document.aliased(&["ClientId", "ConsumerKey"])?;
        let client_secret = document.aliased(&["ClientSecret", "ConsumerSecret"])?;
        let security_token = document.aliased(&["SecurityToken", "AccessToken", "AuthToken"])?;
        let username = document
            .aliased(&["Username"])?
            .or_else(|| username.map(str::trim).filter(|name| !name.is_empty()))
            .map(str::to_owned);
        let private_key = document.aliased(&["PrivateKey"])?;
        let refresh_token = document.aliased(&["RefreshToken"])?;
        let password = document.aliased(&["Password"])?;
        let audience = document.aliased(&["JwtAudience"])?;
        let login_url = match document.aliased(&["LoginUrl"])? {
            Some(url) => normalize_login_url(url)?,
            None => DEFAULT_LOGIN_URL.to_owned(),
        };

        let flow = match document.aliased(&["AuthFlow"])? {
            Some(flow) => flow.parse()?,
            None if private_key.is_some() => AuthFlow::JwtBearer,
            None if refresh_token.is_some() => AuthFlow::RefreshToken,
            None if password.is_some() => AuthFlow::Password,
            None => {
                return Err(Error::InvalidCredentials(
                    "cannot tell which auth flow to use: set AuthFlow, or provide PrivateKey \
                     (jwt), RefreshToken (refresh_token) or Password (password)"
                        .into(),
                ));
            }
        };
        let require = |value: Option<&str>, key: &str| {
            value.map(str::to_owned).ok_or_else(|| {
                Error::InvalidCredentials(format!("auth flow {flow} needs {key}, which is missing"))
            })
        };
        let client_id = require(client_id, "ClientId (or ConsumerKey)")?;
        let grant = match flow {
            AuthFlow::JwtBearer => {
                let username = require(username.as_deref(), "Username")?;
                let private_key = Secret::new(require(private_key, "PrivateKey")?);
                check_private_key(&private_key)?;
                Grant::JwtBearer {
                    username,
                    private_key,
                    audience: audience.map(str::to_owned),
                }
            }
            AuthFlow::Password => {
                let username = require(username.as_deref(), "Username")?;
                let client_secret = require(client_secret, "ClientSecret (or ConsumerSecret)")?;
                let password = require(password, "Password")?;
                let token = security_token.unwrap_or_default();
                Grant::Password {
                    username,
                    client_secret: Secret::new(client_secret),
                    password_and_token: Secret::new(format!("{password}{token}")),
                }
            }
            AuthFlow::RefreshToken => Grant::RefreshToken {
                client_secret: client_secret.map(Secret::from),
                refresh_token: Secret::new(require(refresh_token, "RefreshToken")?),
            },
            AuthFlow::ClientCredentials => Grant::ClientCredentials {
                client_secret: Secret::new(require(
                    client_secret,
                    "ClientSecret (or ConsumerSecret)",
                )?),
            },
        };
        Ok(Self {
            login_url,
            client_id,
            grant,
        })
    }

    pub fn flow(&self) -> AuthFlow {
        match self.grant {
            Grant::JwtBearer { .. } => AuthFlow::JwtBearer,
            Grant::Password { .. } => AuthFlow::Password,
            Grant::RefreshToken { .. } => AuthFlow::RefreshToken,
            Grant::ClientCredentials { .. } => AuthFlow::ClientCredentials,
        }
    }

    /// The login host, without a trailing slash.
    pub fn login_url(&self) -> &str {
        &self.login_url
    }

    /// The connected app's consumer key.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The user the flow logs in as, for the flows that name one.
    pub fn username(&self) -> Option<&str> {
        match &self.grant {
            Grant::JwtBearer { username, .. } | Grant::Password { username, .. } => Some(username),
            Grant::RefreshToken { .. } | Grant::ClientCredentials { .. } => None,
        }
    }

    /// Replaces the refresh token after Salesforce rotated it.
    pub(crate) fn rotate_refresh_token(&mut self, new_token: &Secret) {
        if let Grant::RefreshToken { refresh_token, .. } = &mut self.grant {
            *refresh_token = new_token.clone();
        }
    }
}

/// Reads string values by key; empty strings count as absent, because secret templates often
/// leave placeholder keys empty.
struct Document<'a> {
    map: &'a Map<String, Value>,
}

impl<'a> Document<'a> {
    /// The value of the first present key among `aliases`; two aliases with different values
    /// are an error, since silently picking one would hide a misconfiguration.
    fn aliased(&self, aliases: &[&str]) -> Result<Option<&'a str>> {
        let mut found: Option<(&str, &'a str)> = None;
        for key in aliases {
            let value = match self.map.get(*key) {
                None | Some(Value::Null) => continue,
                Some(Value::String(value)) => value.trim(),
                Some(_) => {
                    return Err(Error::InvalidCredentials(format!("{key} must be a string")));
                }
            };
            if value.is_empty() {
                continue;
            }
            match found {
                Some((first_key, first_value)) if first_value != value => {
                    return Err(Error::InvalidCredentials(format!(
                        "{first_key} and {key} are both set, to different values; keep one"
                    )));
                }
                Some(_) => {}
                None => found = Some((key, value)),
            }
        }
        Ok(found.map(|(_, value)| value))
    }
}

fn normalize_login_url(login_url: &str) -> Result<String> {
    let trimmed = login_url.trim().trim_end_matches('/');
    crate::transport::secure_url(trimmed, "LoginUrl")
        .map(|_| trimmed.to_owned())
        .map_err(|reason| {
            Error::InvalidCredentials(format!(
                "{reason}; use an https URL such as {DEFAULT_LOGIN_URL}"
            ))
        })
}

fn check_private_key(private_key: &Secret) -> Result<()> {
    jsonwebtoken::EncodingKey::from_rsa_pem(private_key.expose().as_bytes())
        .map(|_| ())
        .map_err(|_| {
            Error::InvalidCredentials("PrivateKey is not an RSA private key in PEM form".into())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> &'static str {
        sf_emulator::process_demo_key().private_key_pem()
    }

    fn jwt_document(extra: &str) -> String {
        let key = serde_json::to_string(key()).unwrap_or_default();
        format!(r#"{{"ConsumerKey":"ck","Username":"u@x","PrivateKey":{key}{extra}}}"#)
    }

    #[test]
    fn documents_select_the_expected_flow() {
        let jwt = jwt_document("");
        let jwt_with_password = jwt_document(r#","Password":"p","ConsumerSecret":"s""#);
        let cases: Vec<(&str, AuthFlow)> = vec![
            (&jwt, AuthFlow::JwtBearer),
            (&jwt_with_password, AuthFlow::JwtBearer),
            (
                r#"{"ConsumerKey":"ck","RefreshToken":"rt","Password":"p"}"#,
                AuthFlow::RefreshToken,
            ),
            (
                r#"{"ConsumerKey":"ck","ConsumerSecret":"s","Username":"u","Password":"p","AccessToken":"tok"}"#,
                AuthFlow::Password,
            ),
            (
                r#"{"ClientId":"ck","ClientSecret":"s","AuthFlow":"client_credentials"}"#,
                AuthFlow::ClientCredentials,
            ),
            (
                r#"{"ClientId":"ck","ClientSecret":"s","Username":"u","Password":"p","RefreshToken":"rt","AuthFlow":"password"}"#,
                AuthFlow::Password,
            ),
            (
                r#"{"ClientId":"ck","PrivateKey":"","RefreshToken":"rt"}"#,
                AuthFlow::RefreshToken,
            ),
        ];
        for (document, expected) in cases {
            let flow = Credentials::from_json(document).map(|credentials| credentials.flow());
            assert_eq!(flow, Ok(expected), "document {document}");
        }
    }

    #[test]
    fn incomplete_documents_name_the_missing_key() {
        // A malformed PEM, assembled so no complete key header sits in the source.
        let pem_label = ["PRIVATE", "KEY"].join(" ");
        let bad_key = format!(
            r#"{{"ConsumerKey":"ck","Username":"u","PrivateKey":"-----BEGIN {pem_label}-----\nAAAA\n-----END {pem_label}-----"}}"#
        );
        let bad_key = bad_key.as_str();
        let cases: &[(&str, &str)] = &[
            (
                "not json",
                "the credentials document is not valid JSON (line 1, column 2)",
            ),
            ("[1]", "the credentials document is not a JSON object"),
            (
                r#"{"ConsumerKey":"ck"}"#,
                "cannot tell which auth flow to use: set AuthFlow, or provide PrivateKey (jwt), \
                 RefreshToken (refresh_token) or Password (password)",
            ),
            (
                r#"{"Username":"u","Password":"p","ConsumerSecret":"s"}"#,
                "auth flow password needs ClientId (or ConsumerKey), which is missing",
            ),
            (
                r#"{"ConsumerKey":"ck","Username":"u","Password":"p"}"#,
                "auth flow password needs ClientSecret (or ConsumerSecret), which is missing",
            ),
            (
                r#"{"ConsumerKey":"ck","ConsumerSecret":"s","Password":"p"}"#,
                "auth flow password needs Username, which is missing",
            ),
            (
                r#"{"ConsumerKey":"ck","AuthFlow":"jwt","Username":"u"}"#,
                "auth flow jwt needs PrivateKey, which is missing",
            ),
            (
                r#"{"ConsumerKey":"ck","AuthFlow":"refresh_token","Password":"p"}"#,
                "auth flow refresh_token needs RefreshToken, which is missing",
            ),
            (
                r#"{"ConsumerKey":"ck","AuthFlow":"client_credentials"}"#,
                "auth flow client_credentials needs ClientSecret (or ConsumerSecret), which is missing",
            ),
            (
                r#"{"ConsumerKey":"ck","AuthFlow":"saml","Password":"p"}"#,
                "AuthFlow \"saml\" is not one of jwt, password, refresh_token, client_credentials",
            ),
            (
                r#"{"ConsumerKey":"ck","ClientId":"other","RefreshToken":"rt"}"#,
                "ClientId and ConsumerKey are both set, to different values; keep one",
            ),
            (
                r#"{"ConsumerKey":"ck","RefreshToken":42}"#,
                "RefreshToken must be a string",
            ),
            (
                r#"{"ConsumerKey":"ck","RefreshToken":"rt","LoginUrl":"login.salesforce.com"}"#,
                "LoginUrl \"login.salesforce.com\" is not a URL; use an https URL such as https://login.salesforce.com",
            ),
            (
                r#"{"ConsumerKey":"ck","RefreshToken":"rt","LoginUrl":"http://login.salesforce.com"}"#,
                "LoginUrl \"http://login.salesforce.com\" is not https: credentials and tokens only travel over TLS (plain http is accepted for 127.0.0.1 only, the local cloud); use an https URL such as https://login.salesforce.com",
            ),
            (bad_key, "PrivateKey is not an RSA private key in PEM form"),
        ];
        for (document, message) in cases {
            let result = Credentials::from_json(document).map(|credentials| credentials.flow());
            assert_eq!(
                result,
                Err(Error::InvalidCredentials((*message).to_owned())),
                "document {document}"
            );
        }
    }

    #[test]
    fn password_flow_appends_the_security_token_under_any_alias() {
        let cases = [
            (r#""AccessToken":"TOKEN""#, "pwTOKEN"),
            (r#""AuthToken":"TOKEN""#, "pwTOKEN"),
            (r#""SecurityToken":"TOKEN""#, "pwTOKEN"),
            (r#""AccessToken":"""#, "pw"),
        ];
        for (token_entry, expected) in cases {
            let document = format!(
                r#"{{"ConsumerKey":"ck","ConsumerSecret":"s","Username":"u","Password":"pw",{token_entry}}}"#
            );
            let password = match Credentials::from_json(&document).map(|c| c.grant) {
                Ok(Grant::Password {
                    password_and_token, ..
                }) => password_and_token.expose().to_owned(),
                other => format!("{other:?}"),
            };
            assert_eq!(password, expected, "document {document}");
        }
    }

    #[test]
    fn username_can_come_from_outside_the_document() {
        let document = r#"{"ConsumerKey":"ck","ConsumerSecret":"s","Password":"p"}"#;
        let credentials = Credentials::from_json_with_username(document, Some("env@x"));
        assert_eq!(
            credentials.as_ref().ok().and_then(Credentials::username),
            Some("env@x")
        );
        let with_own =
            r#"{"ConsumerKey":"ck","ConsumerSecret":"s","Password":"p","Username":"doc@x"}"#;
        let credentials = Credentials::from_json_with_username(with_own, Some("env@x"));
        assert_eq!(
            credentials.as_ref().ok().and_then(Credentials::username),
            Some("doc@x")
        );
    }

    #[test]
    fn login_url_defaults_and_loses_its_trailing_slash() {
        let cases = [
            (
                r#"{"ConsumerKey":"ck","RefreshToken":"rt"}"#,
                DEFAULT_LOGIN_URL,
            ),
            (
                r#"{"ConsumerKey":"ck","RefreshToken":"rt","LoginUrl":"https://test.salesforce.com/"}"#,
                "https://test.salesforce.com",
            ),
            (
                r#"{"ConsumerKey":"ck","RefreshToken":"rt","LoginUrl":"http://127.0.0.1:8788"}"#,
                "http://127.0.0.1:8788",
            ),
        ];
        for (document, expected) in cases {
            let url = Credentials::from_json(document).map(|c| c.login_url().to_owned());
            assert_eq!(url, Ok(expected.to_owned()), "document {document}");
        }
    }

    #[test]
    fn debug_output_contains_no_secret_values() {
        let documents = [
            jwt_document(""),
            r#"{"ConsumerKey":"ck","ConsumerSecret":"SECRET-1","Username":"u","Password":"SECRET-2","AccessToken":"SECRET-3"}"#.to_owned(),
            r#"{"ConsumerKey":"ck","ConsumerSecret":"SECRET-1","RefreshToken":"SECRET-4"}"#.to_owned(),
            r#"{"ConsumerKey":"ck","ConsumerSecret":"SECRET-1","AuthFlow":"client_credentials"}"#.to_owned(),
        ];
        for document in documents {
            let debug = format!("{:?}", Credentials::from_json(&document));
            assert!(debug.contains("[redacted]"), "{debug}");
            for secret in ["SECRET-", "PRIVATE KEY", "MII"] {
                assert!(!debug.contains(secret), "{secret} leaked in {debug}");
            }
        }
    }
}
