//! Standard Webhooks signatures: the secret's textual form (`whsec_…`),
//! signing `"{id}.{timestamp}.{body}"` with HMAC-SHA256, and verifying a
//! received delivery (for integrators and for our tests).
//!
//! Pure functions: no clock (the caller passes `now`), no I/O, no state.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::general_purpose::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// The prefix of a secret's textual form.
pub const SECRET_PREFIX: &str = "whsec_";

/// The version tag of the signatures we produce and accept.
pub const SIGNATURE_VERSION: &str = "v1";

/// The header carrying the notification's id (stable across retries).
pub const HEADER_ID: &str = "webhook-id";

/// The header carrying the attempt's Unix time in seconds.
pub const HEADER_TIMESTAMP: &str = "webhook-timestamp";

/// The header carrying the space-separated `v1,<base64>` signatures.
pub const HEADER_SIGNATURE: &str = "webhook-signature";

/// The tolerance the Standard Webhooks libraries use by default (5 minutes).
pub const DEFAULT_TOLERANCE_SECS: i64 = 300;

/// Base64 decoding that accepts the secret with or without its padding.
const LENIENT_BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// Why a secret could not be read or a delivery did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// The secret's text is not `whsec_<base64>`.
    #[error(
        "the webhook secret is not valid: {reason}; it must look like whsec_ followed by base64 \
         (copy it again from the subscription)"
    )]
    InvalidSecret {
        /// What is wrong with it.
        reason: String,
    },
    /// The secret is empty: anyone could forge signatures made with it.
    #[error(
        "the webhook secret is empty; configure the subscription's secret (whsec_…) before \
         verifying deliveries"
    )]
    EmptySecret,
    /// The `webhook-timestamp` header is not an integer number of seconds.
    #[error(
        "the webhook-timestamp header ({value:?}) is not a Unix time in whole seconds; the \
         delivery cannot be trusted"
    )]
    InvalidTimestamp {
        /// The header as received.
        value: String,
    },
    /// The delivery is older than the tolerance: possibly a replay.
    #[error(
        "the delivery was signed {age_secs} s ago, more than the {tolerance_secs} s allowed; it \
         may be a replay (if your clock is wrong, fix it with NTP)"
    )]
    TooOld {
        /// How old the timestamp is, in seconds.
        age_secs: u64,
        /// The tolerance that was applied, in seconds.
        tolerance_secs: u64,
    },
    /// The delivery is dated in the future beyond the tolerance.
    #[error(
        "the delivery is dated {ahead_secs} s in the future, more than the {tolerance_secs} s \
         allowed; check that your clock is right (NTP)"
    )]
    InFuture {
        /// How far ahead the timestamp is, in seconds.
        ahead_secs: u64,
        /// The tolerance that was applied, in seconds.
        tolerance_secs: u64,
    },
    /// The `webhook-signature` header holds no `v1,` signature.
    #[error(
        "the webhook-signature header holds no v1 signature (expected \"v1,<base64>\", several \
         separated by spaces)"
    )]
    NoSignature,
    /// No signature in the header matches the body, id and timestamp.
    #[error(
        "no signature in the webhook-signature header matches: the body, id or timestamp was \
         changed (verify the raw bytes received, not re-serialised JSON), or the secret is not \
         this subscription's"
    )]
    Mismatch,
}

/// The textual form of a secret given to integrators: `whsec_<base64>`.
pub fn secret_text(secret: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(secret))
}

/// Reads a secret's textual form back into its bytes (the inverse of
/// [`secret_text`]). Like the Standard Webhooks libraries, the `whsec_`
/// prefix may be left out; surrounding whitespace is ignored and padding
/// is optional. An empty secret is refused.
pub fn parse_secret(text: &str) -> Result<Vec<u8>, SignatureError> {
    let text = text.trim();
    let encoded = text.strip_prefix(SECRET_PREFIX).unwrap_or(text);
    if encoded.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    let secret = LENIENT_BASE64
        .decode(encoded)
        .map_err(|e| SignatureError::InvalidSecret {
            reason: format!("its base64 part does not decode ({e})"),
        })?;
    if secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    Ok(secret)
}

/// The raw HMAC-SHA256 of `"{id}.{timestamp}.{body}"`.
fn mac(secret: &[u8], id: &str, timestamp: &str, body: &[u8]) -> Option<Vec<u8>> {
    // HMAC accepts keys of any length: `new_from_slice` cannot fail here.
    let mut mac = HmacSha256::new_from_slice(secret).ok()?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Some(mac.finalize().into_bytes().to_vec())
}

/// The `webhook-signature` value for a delivery: `v1,<base64(HMAC-SHA256(
/// secret, "{id}.{timestamp}.{body}"))>`, over the body's exact bytes.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    // The fallback (an empty signature, which never verifies) is unreachable.
    let digest = mac(secret, id, &timestamp.to_string(), body).unwrap_or_default();
    format!("{SIGNATURE_VERSION},{}", STANDARD.encode(digest))
}

/// Verifies a received delivery, as an integrator would.
///
/// - `timestamp_header` must be an integer number of seconds with
///   `|now_unix - timestamp| <= tolerance_secs` (older deliveries may be
///   replays; a negative tolerance counts as 0);
/// - `signature_header` holds one or more space-separated signatures;
///   entries of other versions (`v1a,…`) are ignored, and the delivery
///   verifies when any `v1` signature matches (compared in constant time);
/// - `body` must be the raw bytes received.
///
/// The secret must not be empty.
pub fn verify(
    secret: &[u8],
    id: &str,
    timestamp_header: &str,
    body: &[u8],
    signature_header: &str,
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::EmptySecret);
    }
    let timestamp_text = timestamp_header.trim();
    let timestamp: i64 = timestamp_text
        .parse()
        .map_err(|_| SignatureError::InvalidTimestamp {
            value: timestamp_header.to_owned(),
        })?;
    let tolerance = u64::try_from(tolerance_secs).unwrap_or(0);
    let distance = now_unix.abs_diff(timestamp);
    if distance > tolerance {
        return Err(if timestamp < now_unix {
            SignatureError::TooOld {
                age_secs: distance,
                tolerance_secs: tolerance,
            }
        } else {
            SignatureError::InFuture {
                ahead_secs: distance,
                tolerance_secs: tolerance,
            }
        });
    }

    let candidates: Vec<&str> = signature_header
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == SIGNATURE_VERSION)
        .map(|(_, value)| value)
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::NoSignature);
    }
    // Signed over the timestamp as we parsed it, so "+1614265330" or
    // " 1614265330" cannot be made to verify with another text.
    let expected = mac(secret, id, &timestamp.to_string(), body).ok_or(SignatureError::Mismatch)?;
    let mut matched = subtle::Choice::from(0u8);
    for candidate in candidates {
        if let Ok(given) = LENIENT_BASE64.decode(candidate) {
            matched |= expected.as_slice().ct_eq(given.as_slice());
        }
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn secret_text_round_trips_and_accepts_missing_prefix_and_padding() {
        let secret = b"0123456789abcdefghijklm".to_vec(); // 23 bytes: padded base64
        let text = secret_text(&secret);
        assert!(text.starts_with("whsec_") && text.ends_with('='));
        assert_eq!(parse_secret(&text).unwrap(), secret);
        let bare = text.trim_start_matches("whsec_").trim_end_matches('=');
        assert_eq!(parse_secret(bare).unwrap(), secret);
        assert_eq!(parse_secret(&format!("  {text}\n")).unwrap(), secret);
    }

    #[test]
    fn bad_secrets_are_refused_with_a_reason() {
        assert_eq!(parse_secret("whsec_"), Err(SignatureError::EmptySecret));
        assert_eq!(parse_secret(""), Err(SignatureError::EmptySecret));
        let err = parse_secret("whsec_not base64!").unwrap_err();
        assert!(matches!(err, SignatureError::InvalidSecret { .. }));
        assert!(err.to_string().contains("whsec_"), "{err}");
    }

    #[test]
    fn timestamp_is_verified_as_parsed_not_as_text() {
        let secret = b"secret";
        let sig = sign(secret, "id", 100, b"{}");
        assert_eq!(verify(secret, "id", " 100 ", b"{}", &sig, 100, 0), Ok(()));
        assert!(matches!(
            verify(secret, "id", "1e2", b"{}", &sig, 100, 0),
            Err(SignatureError::InvalidTimestamp { .. })
        ));
    }

    #[test]
    fn extreme_timestamps_do_not_overflow() {
        let secret = b"secret";
        let sig = sign(secret, "id", i64::MIN, b"{}");
        assert!(matches!(
            verify(
                secret,
                "id",
                &i64::MIN.to_string(),
                b"{}",
                &sig,
                i64::MAX,
                i64::MAX
            ),
            Err(SignatureError::TooOld { .. })
        ));
    }

    #[test]
    fn an_empty_secret_never_verifies() {
        let sig = sign(b"", "id", 1, b"{}");
        assert_eq!(
            verify(b"", "id", "1", b"{}", &sig, 1, 10),
            Err(SignatureError::EmptySecret)
        );
    }
}
