//! The sign-in link, the OAuth `state` and the PKCE pair: pure functions of a key, checked in
//! memory so that a refused request costs no AWS call.
//!
//! # The sign-in link (made by the WhatsApp side, checked by `/start`)
//!
//! ```text
//! https://<function-url>/start?link=wa:<wa_id>.<issued_at>.<signature>
//! wa:whatsapp:+15555550100.1767225600.3q2-7wX…
//! ```
//!
//! - `<wa_id>` is the WhatsApp address `whatsapp:+<E.164 number>` (7 to 15 digits).
//! - `<issued_at>` is when the link was made, in Unix seconds.
//! - `<signature>` is `base64url(HMAC-SHA256(key, "wa:<wa_id>.<issued_at>"))` without padding,
//!   where the key is the UTF-8 bytes of `StateSigningKey` from the credentials secret.
//!
//! [`sign_link`] makes one (percent-encode it in the URL: the `+` becomes `%2B`). A link can be
//! opened more than once within its age (chat apps fetch links for previews), but every opening
//! starts a new sign-in bound to the browser that opened it.
//!
//! # The state (made by `/start`, checked by the callback)
//!
//! ```text
//! v2.<id>.<digits>.<expires_at>.<signature>
//! ```
//!
//! - `<id>`: 16 random bytes, base64url (22 characters); the key of the single-use record.
//! - `<digits>`: the WhatsApp number without its `+`.
//! - `<expires_at>`: Unix seconds.
//! - `<signature>`: `base64url(HMAC-SHA256(key, "sfstack-oauth-state.v2.<id>.<digits>.<expires_at>.<nonce-hash>"))`
//!   where `<nonce-hash>` is `base64url(SHA-256(nonce))` of the nonce that `/start` put in the
//!   browser's cookie. The state alone cannot be completed: only the browser holding the nonce
//!   can, which closes login CSRF and the "send the victim my sign-in link" token swap.
//!
//! The PKCE verifier is derived, not stored: `base64url(HMAC-SHA256(key, "sfstack-pkce.v2.<id>"))`
//! (43 characters, as RFC 7636 requires), and the challenge is `base64url(SHA-256(verifier))`.

use std::time::Duration;

use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

/// The prefix of every sign-in link.
pub const LINK_PREFIX: &str = "wa:";
/// The prefix of every state this version issues.
const STATE_VERSION: &str = "v2";
/// How far in the future a timestamp may be (clock skew between signer and callback).
const CLOCK_SKEW_SECONDS: i64 = 60;

type HmacSha256 = Hmac<Sha256>;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a link or a state was refused. The message is the 400 answer's body: it tells the
/// person in the browser what to do, and reveals nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    #[error("the sign-in link is malformed; open it again from WhatsApp")]
    Malformed,
    #[error("the sign-in link does not start with wa:whatsapp:+")]
    WrongPrefix,
    #[error("the sign-in link does not hold a valid WhatsApp number")]
    InvalidNumber,
    #[error("the sign-in link's signature is invalid")]
    BadSignature,
    #[error("the sign-in link has expired; ask for a new one in WhatsApp")]
    Expired,
    #[error("the sign-in link is not valid yet")]
    FromTheFuture,
    #[error("state is malformed; start the sign-in again from WhatsApp")]
    StateMalformed,
    #[error("state has expired; start the sign-in again from WhatsApp")]
    StateExpired,
    #[error(
        "this sign-in was not started in this browser (or its cookie was blocked); open the link from WhatsApp again in this browser"
    )]
    NoBrowserNonce,
    #[error(
        "state does not belong to this browser's sign-in; start the sign-in again from WhatsApp"
    )]
    StateMismatch,
    #[error("this sign-in has already been used; start the sign-in again from WhatsApp")]
    StateUsed,
}

/// Makes a sign-in link's `link` value for `wa_id` (`whatsapp:+15555550100`, or just
/// `+15555550100`) at `now` (Unix seconds), signed with `key` (the `StateSigningKey` bytes).
pub fn sign_link(key: &[u8], wa_id: &str, now: i64) -> Result<String, StateError> {
    let number = wa_id.strip_prefix("whatsapp:").unwrap_or(wa_id);
    if !is_e164(number) {
        return Err(StateError::InvalidNumber);
    }
    let payload = format!("{LINK_PREFIX}whatsapp:{number}.{now}");
    Ok(format!("{payload}.{}", mac(key, &payload)))
}

/// A link that passed the checks that need no key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncheckedLink {
    number: String,
    issued_at: i64,
    signature: Vec<u8>,
}

impl UncheckedLink {
    /// Checks the form and the age of a link: everything but its signature.
    pub fn parse(link: &str, now: i64, max_age: Duration) -> Result<Self, StateError> {
        let mut parts = link.trim().rsplitn(3, '.');
        let (Some(signature_text), Some(issued_at), Some(payload)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(StateError::Malformed);
        };
        let Some(address) = payload.strip_prefix(LINK_PREFIX) else {
            return Err(StateError::WrongPrefix);
        };
        let Some(number) = address.strip_prefix("whatsapp:") else {
            return Err(StateError::WrongPrefix);
        };
        // A `+` that a lax encoder left unescaped arrives decoded as a space.
        let number = match number.strip_prefix(' ') {
            Some(rest) => format!("+{rest}"),
            None => number.to_owned(),
        };
        if !number.starts_with('+') {
            return Err(StateError::WrongPrefix);
        }
        if !is_e164(&number) {
            return Err(StateError::InvalidNumber);
        }
        let issued_at: i64 = issued_at.parse().map_err(|_| StateError::Malformed)?;
        let signature = B64
            .decode(signature_text)
            .map_err(|_| StateError::BadSignature)?;
        check_age(issued_at, now, max_age)?;
        Ok(Self {
            number,
            issued_at,
            signature,
        })
    }

    /// Checks the signature (in constant time) and returns the WhatsApp address.
    pub fn verify(self, key: &[u8]) -> Result<String, StateError> {
        let canonical = format!("{LINK_PREFIX}whatsapp:{}.{}", self.number, self.issued_at);
        let mut mac = HmacSha256::new_from_slice(key).map_err(|_| StateError::BadSignature)?;
        mac.update(canonical.as_bytes());
        mac.verify_slice(&self.signature)
            .map_err(|_| StateError::BadSignature)?;
        Ok(format!("whatsapp:{}", self.number))
    }
}

/// Checks a link completely and returns its WhatsApp address (`whatsapp:+15555550100`).
pub fn verify_link(
    key: &[u8],
    link: &str,
    now: i64,
    max_age: Duration,
) -> Result<String, StateError> {
    UncheckedLink::parse(link, now, max_age)?.verify(key)
}

fn check_age(issued_at: i64, now: i64, max_age: Duration) -> Result<(), StateError> {
    let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    if now.saturating_sub(issued_at) > max_age {
        return Err(StateError::Expired);
    }
    if issued_at.saturating_sub(now) > CLOCK_SKEW_SECONDS {
        return Err(StateError::FromTheFuture);
    }
    Ok(())
}

/// One sign-in, as `/start` begins it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignIn {
    /// The single-use record's key.
    pub id: String,
    /// `whatsapp:+15555550100`.
    pub wa_id: String,
    /// Unix seconds.
    pub expires_at: i64,
}

impl SignIn {
    /// A new sign-in for `wa_id` with a random id.
    pub fn new(wa_id: &str, expires_at: i64) -> Result<Self, getrandom::Error> {
        Ok(Self {
            id: random_token::<16>()?,
            wa_id: wa_id.to_owned(),
            expires_at,
        })
    }

    /// The `state` to send to the authorize endpoint, bound to the browser's `nonce`.
    pub fn state(&self, key: &[u8], nonce: &str) -> String {
        let digits = self.wa_id.trim_start_matches("whatsapp:+");
        let payload = format!("{STATE_VERSION}.{}.{digits}.{}", self.id, self.expires_at);
        format!("{payload}.{}", mac(key, &state_canonical(&payload, nonce)))
    }

    /// The PKCE verifier of this sign-in (RFC 7636: 43 characters of the unreserved set).
    pub fn code_verifier(&self, key: &[u8]) -> String {
        mac(key, &format!("sfstack-pkce.{STATE_VERSION}.{}", self.id))
    }
}

/// The S256 code challenge of a verifier.
pub fn code_challenge(verifier: &str) -> String {
    B64.encode(Sha256::digest(verifier.as_bytes()))
}

/// A fresh random nonce for the browser's cookie (32 bytes, base64url).
pub fn new_nonce() -> Result<String, getrandom::Error> {
    random_token::<32>()
}

fn random_token<const N: usize>() -> Result<String, getrandom::Error> {
    let mut bytes = [0_u8; N];
    getrandom::fill(&mut bytes)?;
    Ok(B64.encode(bytes))
}

/// A state that passed the checks that need no key: its form and its expiry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UncheckedState {
    sign_in: SignIn,
    payload: String,
    signature: Vec<u8>,
}

impl UncheckedState {
    /// Checks a state's form and expiry: `max_age` bounds how far ahead its expiry may be.
    pub fn parse(state: &str, now: i64, max_age: Duration) -> Result<Self, StateError> {
        let state = state.trim();
        let parts: Vec<&str> = state.split('.').collect();
        let [version, id, digits, expires_at, signature] = parts[..] else {
            return Err(StateError::StateMalformed);
        };
        if version != STATE_VERSION
            || id.len() != 22
            || !id
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
            || !is_e164(&format!("+{digits}"))
        {
            return Err(StateError::StateMalformed);
        }
        let expires_at: i64 = expires_at.parse().map_err(|_| StateError::StateMalformed)?;
        let signature = B64
            .decode(signature)
            .map_err(|_| StateError::StateMalformed)?;
        if expires_at <= now {
            return Err(StateError::StateExpired);
        }
        let max_age = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
        if expires_at.saturating_sub(now) > max_age.saturating_add(CLOCK_SKEW_SECONDS) {
            return Err(StateError::StateMalformed);
        }
        Ok(Self {
            payload: format!("{version}.{id}.{digits}.{expires_at}"),
            sign_in: SignIn {
                id: id.to_owned(),
                wa_id: format!("whatsapp:+{digits}"),
                expires_at,
            },
            signature,
        })
    }

    /// Checks the signature against the browser's nonce (in constant time).
    pub fn verify(self, key: &[u8], nonce: &str) -> Result<SignIn, StateError> {
        let mut mac = HmacSha256::new_from_slice(key).map_err(|_| StateError::StateMismatch)?;
        mac.update(state_canonical(&self.payload, nonce).as_bytes());
        mac.verify_slice(&self.signature)
            .map_err(|_| StateError::StateMismatch)?;
        Ok(self.sign_in)
    }
}

fn state_canonical(payload: &str, nonce: &str) -> String {
    format!(
        "sfstack-oauth-state.{payload}.{}",
        B64.encode(Sha256::digest(nonce.as_bytes()))
    )
}

fn mac(key: &[u8], payload: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail; an empty MAC would never verify.
    match HmacSha256::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(payload.as_bytes());
            B64.encode(mac.finalize().into_bytes())
        }
        Err(_) => String::new(),
    }
}

fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (7..=15).contains(&digits.len())
            && digits.bytes().all(|byte| byte.is_ascii_digit())
            && !digits.starts_with('0')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef-test-key";
    const NOW: i64 = 1_767_225_600;
    const MAX_AGE: Duration = Duration::from_secs(600);

    #[test]
    fn signed_links_verify_and_name_the_whatsapp_address() -> Result<(), StateError> {
        for wa_id in ["whatsapp:+15555550100", "+15555550100"] {
            let link = sign_link(KEY, wa_id, NOW)?;
            assert!(
                link.starts_with("wa:whatsapp:+15555550100.1767225600."),
                "{link}"
            );
            assert_eq!(
                verify_link(KEY, &link, NOW + 599, MAX_AGE)?,
                "whatsapp:+15555550100"
            );
            // A `+` decoded as a space by a lax encoder.
            let spaced = link.replacen('+', " ", 1);
            assert_eq!(
                verify_link(KEY, &spaced, NOW, MAX_AGE)?,
                "whatsapp:+15555550100"
            );
        }
        Ok(())
    }

    #[test]
    fn bad_links_are_refused_with_a_reason() -> Result<(), StateError> {
        let good = sign_link(KEY, "whatsapp:+15555550100", NOW)?;
        let forged_signature = format!(
            "{}.{}",
            good.rsplit_once('.')
                .map(|(payload, _)| payload)
                .unwrap_or_default(),
            mac(b"another key entirely", "x")
        );
        let signed = |payload: &str| format!("{payload}.{}", mac(KEY, payload));
        let cases = [
            (good.clone(), NOW + 601, StateError::Expired),
            (good.clone(), NOW - 61, StateError::FromTheFuture),
            (forged_signature, NOW, StateError::BadSignature),
            (good.replace("0100", "0199"), NOW, StateError::BadSignature),
            (
                signed(&format!("sms:whatsapp:+15555550100.{NOW}")),
                NOW,
                StateError::WrongPrefix,
            ),
            (
                signed(&format!("wa:sms:+15555550100.{NOW}")),
                NOW,
                StateError::WrongPrefix,
            ),
            (
                signed(&format!("wa:whatsapp:15555550100.{NOW}")),
                NOW,
                StateError::WrongPrefix,
            ),
            (
                signed(&format!("wa:whatsapp:+1555x.{NOW}")),
                NOW,
                StateError::InvalidNumber,
            ),
            (
                signed("wa:whatsapp:+15555550100.soon"),
                NOW,
                StateError::Malformed,
            ),
            (
                "wa:whatsapp:+15555550100".to_owned(),
                NOW,
                StateError::Malformed,
            ),
            (format!("{good}!"), NOW, StateError::BadSignature),
        ];
        for (link, now, expected) in cases {
            assert_eq!(
                verify_link(KEY, &link, now, MAX_AGE),
                Err(expected.clone()),
                "{link}"
            );
        }
        assert_eq!(
            sign_link(KEY, "whatsapp:15555550100", NOW),
            Err(StateError::InvalidNumber)
        );
        Ok(())
    }

    #[test]
    fn a_state_verifies_only_with_the_nonce_it_was_bound_to() -> Result<(), StateError> {
        let sign_in = SignIn::new("whatsapp:+15555550100", NOW + 600).expect("randomness");
        let state = sign_in.state(KEY, "browser-a-nonce");
        assert!(state.starts_with("v2."), "{state}");
        let verified =
            UncheckedState::parse(&state, NOW, MAX_AGE)?.verify(KEY, "browser-a-nonce")?;
        assert_eq!(verified, sign_in);
        assert_eq!(
            UncheckedState::parse(&state, NOW, MAX_AGE)?.verify(KEY, "browser-b-nonce"),
            Err(StateError::StateMismatch)
        );
        assert_eq!(
            UncheckedState::parse(&state, NOW, MAX_AGE)?
                .verify(b"another key entirely", "browser-a-nonce"),
            Err(StateError::StateMismatch)
        );
        // The number is covered by the signature.
        let other_number = state.replace(".15555550100.", ".15555550199.");
        assert_eq!(
            UncheckedState::parse(&other_number, NOW, MAX_AGE)?.verify(KEY, "browser-a-nonce"),
            Err(StateError::StateMismatch)
        );
        assert_eq!(
            UncheckedState::parse(&state, NOW + 600, MAX_AGE),
            Err(StateError::StateExpired)
        );
        // An expiry further ahead than any state this function issues.
        let far = SignIn::new("whatsapp:+15555550100", NOW + 7_200)
            .expect("randomness")
            .state(KEY, "n");
        assert_eq!(
            UncheckedState::parse(&far, NOW, MAX_AGE),
            Err(StateError::StateMalformed)
        );
        for malformed in [
            "",
            "v2",
            "v1.aaaaaaaaaaaaaaaaaaaaaa.15555550100.1767226200.sig",
            "v2.short.15555550100.1767226200.c2ln",
            "v2.aaaaaaaaaaaaaaaaaaaaaa.+15555550100.1767226200.c2ln",
            "v2.aaaaaaaaaaaaaaaaaaaaaa.15555550100.soon.c2ln",
            "v2.aaaaaaaaaaaaaaaaaaaaaa.15555550100.1767226200.not base64",
            "wa:whatsapp:+15555550100.1767225600.c2ln",
        ] {
            assert_eq!(
                UncheckedState::parse(malformed, NOW, MAX_AGE),
                Err(StateError::StateMalformed),
                "{malformed}"
            );
        }
        Ok(())
    }

    #[test]
    fn the_pkce_pair_follows_rfc_7636() {
        // RFC 7636 appendix B.
        assert_eq!(
            code_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let sign_in = SignIn::new("whatsapp:+15555550100", NOW).expect("randomness");
        let verifier = sign_in.code_verifier(KEY);
        assert_eq!(verifier.len(), 43);
        assert!(
            verifier
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_')
        );
        let other = SignIn::new("whatsapp:+15555550100", NOW).expect("randomness");
        assert_ne!(other.id, sign_in.id, "ids are random");
        assert_ne!(other.code_verifier(KEY), verifier);
    }
}
