//! Outgoing signed webhooks for integrators: a council's integrator
//! subscribes a URL and is told, by an HTTP POST of a JSON body, when
//! something happens (a ticket gets a reply, an announcement is
//! published…).
//!
//! Deliveries are signed following the **Standard Webhooks** convention
//! (<https://www.standardwebhooks.com>, as Svix and Supabase do), so
//! integrators can verify them with existing libraries. Each POST carries:
//!
//! - `webhook-id`: the notification's id, the same on every retry of that
//!   notification (receivers use it to ignore duplicates);
//! - `webhook-timestamp`: the Unix time, in whole seconds, of this attempt;
//! - `webhook-signature`: `v1,<base64 signature>` (receivers must accept a
//!   space-separated list and check each `v1,` entry);
//! - `Content-Type: application/json` and `User-Agent: Ventanilla-Webhooks/1`.
//!
//! The subscription's secret is given to the integrator as
//! `whsec_<base64 of the secret bytes>` ([`secret_text`]).
//!
//! To verify a delivery, an integrator: takes the secret's bytes by
//! base64-decoding what follows `whsec_`; builds the text
//! `{webhook-id}.{webhook-timestamp}.{raw body}` from the body's bytes
//! exactly as received (not re-serialised JSON); computes its HMAC-SHA256
//! with the secret and base64-encodes it; accepts the delivery if that value
//! equals, compared in constant time, any `v1,` entry of `webhook-signature`
//! and if the timestamp is within a few minutes of their clock (older
//! deliveries may be replays); and then ignores ids it has already
//! processed. [`verify`] does exactly this.
//!
//! The pieces:
//! - [`signature`]: [`secret_text`], [`parse_secret`], [`sign`], [`verify`];
//! - [`policy`]: where webhooks may point ([`check_url`], [`UrlPolicy`]):
//!   http(s) only, no credentials in the URL, and no loopback, private,
//!   link-local (cloud metadata), CGNAT, unique-local, multicast or
//!   documentation addresses unless the policy allows private addresses;
//! - [`sender`]: [`Sender::send`] makes one signed attempt, re-checking the
//!   URL and connecting only to addresses the policy allows (proof against
//!   DNS rebinding), following no redirects, and says whether a failure is
//!   [`SendError::Temporary`] or [`SendError::Permanent`].
//!
//! What this crate must not do: schedule retries or backoff (the caller
//! decides, with [`SendError::Temporary`]'s `retry_after` as a hint), store
//! anything (subscriptions, secrets, delivery logs belong to the caller),
//! read the clock to sign (the caller passes `now_unix`), follow redirects,
//! or let a secret or signature reach an error or a log line.

pub mod policy;
pub mod sender;
pub mod signature;

pub use policy::{AddressKind, MAX_URL_LEN, UrlError, UrlPolicy, check_url, classify};
pub use sender::{
    Delivered, MAX_RESPONSE_BYTES, SendError, Sender, SetupError, USER_AGENT, parse_retry_after,
};
pub use signature::{
    DEFAULT_TOLERANCE_SECS, HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, SECRET_PREFIX,
    SignatureError, parse_secret, secret_text, sign, verify,
};
