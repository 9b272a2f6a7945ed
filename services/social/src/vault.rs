//! Linked accounts' credentials at rest: AES-256-GCM with the key from
//! configuration (`social.credentials_key`, 32 bytes in base64), a fresh
//! 96-bit nonce per write, and the tenant and account ids as associated
//! data — a ciphertext copied to another account or tenant does not
//! decrypt. Secrets travel as [`SecretString`] and are never logged.
//!
//! What this module must not do: store anything (the accounts service writes
//! the row), or ever return a secret to an API caller.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use uuid::Uuid;

/// Why the vault cannot be opened or a secret read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VaultError {
    /// No key is configured.
    #[error(
        "no credentials key is configured: set social.credentials_key (VENTANILLA__SOCIAL__CREDENTIALS_KEY) to 32 random bytes in base64, e.g. `openssl rand -base64 32`"
    )]
    NoKey,
    /// The key is not 32 bytes of base64.
    #[error("social.credentials_key must be 32 bytes in base64 (44 characters)")]
    BadKey,
    /// The ciphertext does not decrypt with this key for this account.
    #[error("the stored credentials do not decrypt with the configured key")]
    Undecryptable,
    /// No randomness from the OS.
    #[error("no randomness from the operating system")]
    NoRandomness,
}

/// The secrets of an account, as stored (encrypted).
#[derive(Clone, Deserialize)]
pub struct Secrets {
    /// The token API calls carry.
    pub access_token: SecretString,
    /// The secret webhook signatures are made with.
    pub signing_secret: SecretString,
    /// The token Meta's verification request carries (empty for X).
    pub verify_token: SecretString,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(…)")
    }
}

#[derive(Serialize)]
struct Plain<'a> {
    access_token: &'a str,
    signing_secret: &'a str,
    verify_token: &'a str,
}

/// The configured key.
#[derive(Clone)]
pub struct Vault {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(…)")
    }
}

fn aad(tenant: Uuid, account: Uuid) -> [u8; 32] {
    let mut a = [0u8; 32];
    a[..16].copy_from_slice(tenant.as_bytes());
    a[16..].copy_from_slice(account.as_bytes());
    a
}

impl Vault {
    /// Opens the vault with the configured key (`None`: not configured).
    pub fn new(key: Option<&SecretString>) -> Result<Self, VaultError> {
        let key = key.ok_or(VaultError::NoKey)?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(key.expose_secret().trim())
            .map_err(|_| VaultError::BadKey)?;
        let cipher = Aes256Gcm::new_from_slice(&bytes).map_err(|_| VaultError::BadKey)?;
        Ok(Self { cipher })
    }

    /// Encrypts `secrets` for `account` of `tenant`: `(nonce, ciphertext)`.
    pub fn seal(
        &self,
        tenant: Uuid,
        account: Uuid,
        secrets: &Secrets,
    ) -> Result<(Vec<u8>, Vec<u8>), VaultError> {
        let mut nonce = [0u8; 12];
        getrandom::fill(&mut nonce).map_err(|_| VaultError::NoRandomness)?;
        let plain = serde_json::to_vec(&Plain {
            access_token: secrets.access_token.expose_secret(),
            signing_secret: secrets.signing_secret.expose_secret(),
            verify_token: secrets.verify_token.expose_secret(),
        })
        .map_err(|_| VaultError::Undecryptable)?;
        let aad = aad(tenant, account);
        let sealed = self
            .cipher
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: &plain,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Undecryptable)?;
        Ok((nonce.to_vec(), sealed))
    }

    /// Decrypts what [`Vault::seal`] gave for the same tenant and account.
    pub fn open(
        &self,
        tenant: Uuid,
        account: Uuid,
        nonce: &[u8],
        ciphertext: &[u8],
    ) -> Result<Secrets, VaultError> {
        let nonce: [u8; 12] = nonce.try_into().map_err(|_| VaultError::Undecryptable)?;
        let aad = aad(tenant, account);
        let plain = self
            .cipher
            .decrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| VaultError::Undecryptable)?;
        serde_json::from_slice(&plain).map_err(|_| VaultError::Undecryptable)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key() -> SecretString {
        SecretString::from(base64::engine::general_purpose::STANDARD.encode([7u8; 32]))
    }

    fn secrets() -> Secrets {
        Secrets {
            access_token: SecretString::from("EAAG-page-token"),
            signing_secret: SecretString::from("app-secret"),
            verify_token: SecretString::from("verify-me"),
        }
    }

    #[test]
    fn sealed_secrets_open_only_for_their_account_and_key() {
        let vault = Vault::new(Some(&key())).unwrap();
        let (t, a) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (nonce, sealed) = vault.seal(t, a, &secrets()).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("EAAG-page-token"));
        let opened = vault.open(t, a, &nonce, &sealed).unwrap();
        assert_eq!(opened.access_token.expose_secret(), "EAAG-page-token");
        assert_eq!(opened.verify_token.expose_secret(), "verify-me");
        assert!(vault.open(t, Uuid::from_u128(3), &nonce, &sealed).is_err());
        assert!(vault.open(Uuid::from_u128(9), a, &nonce, &sealed).is_err());
        let other = SecretString::from(base64::engine::general_purpose::STANDARD.encode([8u8; 32]));
        assert!(
            Vault::new(Some(&other))
                .unwrap()
                .open(t, a, &nonce, &sealed)
                .is_err()
        );
        // Two seals of the same secrets differ (fresh nonces).
        let (nonce2, _) = vault.seal(t, a, &secrets()).unwrap();
        assert_ne!(nonce, nonce2);
        assert_eq!(format!("{:?}", opened), "Secrets(…)");
    }

    #[test]
    fn a_missing_or_malformed_key_is_refused_with_a_fix() {
        assert!(matches!(Vault::new(None), Err(VaultError::NoKey)));
        assert!(
            VaultError::NoKey
                .to_string()
                .contains("VENTANILLA__SOCIAL__CREDENTIALS_KEY")
        );
        let short = SecretString::from("c2hvcnQ=");
        assert!(matches!(Vault::new(Some(&short)), Err(VaultError::BadKey)));
        let garbage = SecretString::from("not base64!");
        assert!(matches!(
            Vault::new(Some(&garbage)),
            Err(VaultError::BadKey)
        ));
    }
}
