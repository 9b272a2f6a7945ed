//! The links citizens get by e-mail — confirm, unsubscribe, manage — and
//! the secrets webhook subscribers sign with, all derived from one key
//! (`notify.key`) so that none of them is stored anywhere: the log holds
//! only the SHA-256 of a confirmation token, and the worker rebuilds a link
//! or a secret when it needs it.
//!
//! A link token is `base64url(purpose ‖ tenant ‖ id ‖ tag)`, where `tag`
//! is the first 16 bytes of HMAC-SHA256(key, label ‖ purpose ‖ tenant ‖
//! id): it names its tenant (links are platform-wide, the token is the only
//! principal of a citizen without an account), cannot be forged or turned
//! into another purpose, and is checked in constant time.
//!
//! Rotating the key invalidates every link sent and every webhook secret
//! given; the docs say so.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use hmac::{KeyInit, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;
use ventanilla_kernel::TenantId;

type HmacSha256 = hmac::Hmac<Sha256>;

const LINK_LABEL: &[u8] = b"ventanilla/notify/link/v1";
const WEBHOOK_LABEL: &[u8] = b"ventanilla/notify/webhook/v1";
const TAG_LEN: usize = 16;
const TOKEN_LEN: usize = 1 + 16 + 16 + TAG_LEN;

/// What a link does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Confirms an e-mail subscription (id = the subscription).
    Confirm,
    /// Cancels one subscription in one click (id = the subscription).
    Unsubscribe,
    /// Lists and cancels an address's subscriptions (id = the subscriber).
    Manage,
}

impl Purpose {
    fn byte(self) -> u8 {
        match self {
            Purpose::Confirm => b'c',
            Purpose::Unsubscribe => b'u',
            Purpose::Manage => b'm',
        }
    }
}

/// The key, checked.
#[derive(Clone)]
pub struct LinkKey([u8; 32]);

impl std::fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LinkKey(…)")
    }
}

/// Why `notify.key` cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not set.
    #[error(
        "no notification key is configured: set notify.key (VENTANILLA__NOTIFY__KEY) to 32 random bytes in base64, e.g. `openssl rand -base64 32`"
    )]
    Missing,
    /// Not 32 bytes of base64.
    #[error("notify.key must be 32 bytes in base64 (44 characters)")]
    Malformed,
}

impl LinkKey {
    /// The key from its configured base64 form.
    pub fn new(key: Option<&SecretString>) -> Result<Self, KeyError> {
        let key = key.ok_or(KeyError::Missing)?;
        let bytes = STANDARD
            .decode(key.expose_secret().trim())
            .map_err(|_| KeyError::Malformed)?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| KeyError::Malformed)?;
        Ok(Self(bytes))
    }

    fn mac(&self, label: &[u8], parts: &[&[u8]]) -> [u8; 32] {
        #[allow(clippy::expect_used)]
        let mut mac = <HmacSha256 as KeyInit>::new_from_slice(&self.0)
            .expect("HMAC takes a key of any length");
        mac.update(label);
        for p in parts {
            mac.update(p);
        }
        mac.finalize().into_bytes().into()
    }

    /// The token of a link for `purpose` on `id` in `tenant`.
    pub fn token(&self, purpose: Purpose, tenant: TenantId, id: Uuid) -> String {
        let tenant = tenant.into_uuid();
        let tag = self.mac(
            LINK_LABEL,
            &[&[purpose.byte()], tenant.as_bytes(), id.as_bytes()],
        );
        let mut raw = Vec::with_capacity(TOKEN_LEN);
        raw.push(purpose.byte());
        raw.extend_from_slice(tenant.as_bytes());
        raw.extend_from_slice(id.as_bytes());
        raw.extend_from_slice(&tag[..TAG_LEN]);
        URL_SAFE_NO_PAD.encode(raw)
    }

    /// The tenant and id of a token made for `purpose`; `None` for anything
    /// else (malformed, forged, another purpose, another key).
    pub fn open(&self, purpose: Purpose, token: &str) -> Option<(TenantId, Uuid)> {
        let raw = URL_SAFE_NO_PAD.decode(token.trim()).ok()?;
        if raw.len() != TOKEN_LEN || raw[0] != purpose.byte() {
            return None;
        }
        let tenant = Uuid::from_slice(&raw[1..17]).ok()?;
        let id = Uuid::from_slice(&raw[17..33]).ok()?;
        let tag = self.mac(
            LINK_LABEL,
            &[&[purpose.byte()], tenant.as_bytes(), id.as_bytes()],
        );
        if bool::from(tag[..TAG_LEN].ct_eq(&raw[33..])) {
            Some((TenantId::from_uuid(tenant), id))
        } else {
            None
        }
    }

    /// The secret webhook subscription `subscription` signs with (shown to
    /// the integrator once, as `whsec_…`).
    pub fn webhook_secret(&self, tenant: TenantId, subscription: Uuid) -> [u8; 32] {
        self.mac(
            WEBHOOK_LABEL,
            &[tenant.into_uuid().as_bytes(), subscription.as_bytes()],
        )
    }
}

/// The subscriber an address is in a tenant: what groups an address's
/// subscriptions for its "manage" link.
pub fn subscriber_id(tenant: TenantId, via_key: &str) -> Uuid {
    Uuid::new_v5(&tenant.into_uuid(), via_key.as_bytes())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(byte: u8) -> LinkKey {
        LinkKey::new(Some(&SecretString::from(STANDARD.encode([byte; 32])))).unwrap()
    }

    #[test]
    fn a_token_opens_only_for_its_purpose_and_key() {
        let (k, tenant, id) = (key(1), TenantId::from_uuid(Uuid::new_v4()), Uuid::new_v4());
        let t = k.token(Purpose::Confirm, tenant, id);
        assert_eq!(k.open(Purpose::Confirm, &t), Some((tenant, id)));
        assert_eq!(k.open(Purpose::Unsubscribe, &t), None);
        assert_eq!(key(2).open(Purpose::Confirm, &t), None);
        // Any flipped character is refused.
        let mut bytes = t.clone().into_bytes();
        let last = bytes.len() - 3;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            k.open(Purpose::Confirm, &String::from_utf8(bytes).unwrap()),
            None
        );
        assert_eq!(k.open(Purpose::Confirm, "not a token"), None);
        assert_eq!(k.open(Purpose::Confirm, ""), None);
    }

    #[test]
    fn secrets_differ_per_subscription_and_keys_are_checked() {
        let (k, tenant) = (key(1), TenantId::from_uuid(Uuid::new_v4()));
        assert_ne!(
            k.webhook_secret(tenant, Uuid::new_v4()),
            k.webhook_secret(tenant, Uuid::new_v4())
        );
        assert_eq!(LinkKey::new(None).unwrap_err(), KeyError::Missing);
        assert_eq!(
            LinkKey::new(Some(&SecretString::from("c2hvcnQ="))).unwrap_err(),
            KeyError::Malformed
        );
    }
}
