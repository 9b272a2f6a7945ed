//! One-time secrets (invitation codes, session tokens, API key secrets):
//! 256 random bits from the operating system, shown once in clear, stored
//! only as their SHA-256 digest. A digest is enough for random secrets of
//! this size (no dictionary to guess from); passwords, which people choose,
//! use argon2id instead.

use sha2::{Digest, Sha256};
use ventanilla_tenants_domain::staff::TokenHash;

/// A fresh secret: its clear text (64 lowercase hex characters, to show
/// once) and the digest to store.
pub fn new_token() -> anyhow::Result<(String, TokenHash)> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no randomness from the OS: {e}"))?;
    let clear = hex(&bytes);
    let hash = hash_token(&clear)?;
    Ok((clear, hash))
}

/// The stored form of a presented secret.
pub fn hash_token(clear: &str) -> anyhow::Result<TokenHash> {
    let digest = Sha256::digest(clear.trim().as_bytes());
    TokenHash::parse("token", &hex(&digest)).map_err(|e| anyhow::anyhow!("{e}"))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_their_hash_is_stable() {
        let (a, ha) = new_token().unwrap();
        let (b, _) = new_token().unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(hash_token(&a).unwrap(), ha);
        assert_eq!(
            hash_token(&format!(" {a}\n")).unwrap(),
            ha,
            "pasted with spaces"
        );
    }
}
