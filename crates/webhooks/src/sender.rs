//! Sending one signed delivery: [`Sender::send`] checks the URL again,
//! POSTs the body with the Standard Webhooks headers, and says in
//! [`SendError`]'s words whether a failure is worth retrying.
//!
//! It makes exactly one attempt: retries, backoff and giving up are the
//! caller's decisions (it gets `retry_after` when the endpoint asks).

use std::error::Error as _;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDateTime};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::redirect;
use url::Url;

use crate::policy::{PolicyResolver, UrlError, UrlPolicy, check_url};
use crate::signature::{HEADER_ID, HEADER_SIGNATURE, HEADER_TIMESTAMP, sign};

/// The `User-Agent` of every delivery.
pub const USER_AGENT: &str = "Ventanilla-Webhooks/1";

/// How much of an endpoint's answer is read, at most (the rest is dropped).
pub const MAX_RESPONSE_BYTES: usize = 4096;

/// The longest connect timeout, whatever the overall timeout.
const MAX_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an endpoint's answer is quoted in a reason, in characters.
const EXCERPT_CHARS: usize = 200;

/// The longest notification id accepted, in bytes.
const MAX_ID_LEN: usize = 256;

/// A delivery the endpoint accepted (answered 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delivered {
    /// The HTTP status the endpoint answered.
    pub status: u16,
    /// From sending the request to reading the answer.
    pub elapsed: Duration,
}

/// Why a delivery failed, and whether to try again.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Retry later: the endpoint could not be reached (connect error,
    /// timeout, a name that does not resolve or now resolves to a
    /// non-public address), or answered 5xx, 408, 425 or 429.
    #[error("{reason}")]
    Temporary {
        /// What happened, as a sentence (with the status code if any).
        reason: String,
        /// How long the endpoint asked to wait (`Retry-After`, in seconds or
        /// as an HTTP date), if it did. Not capped: callers should bound it.
        retry_after: Option<Duration>,
    },
    /// Do not retry this delivery: the URL is not allowed (bad scheme,
    /// credentials, a non-public IP literal, `localhost`…), the endpoint
    /// answered a redirect (3xx: redirects are not followed) or a 4xx other
    /// than 408, 425 and 429 (e.g. 410 Gone), or the notification itself
    /// cannot be sent (empty secret, id unusable in a header).
    #[error("{reason}")]
    Permanent {
        /// What happened, as a sentence (with the status code if any).
        reason: String,
        /// The HTTP status the endpoint answered, if it answered.
        status: Option<u16>,
    },
}

impl SendError {
    /// The human sentence saying what happened.
    pub fn reason(&self) -> &str {
        match self {
            Self::Temporary { reason, .. } | Self::Permanent { reason, .. } => reason,
        }
    }

    /// Whether trying again later may succeed.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Temporary { .. })
    }

    fn permanent(reason: impl Into<String>) -> Self {
        Self::Permanent {
            reason: reason.into(),
            status: None,
        }
    }

    fn temporary(reason: impl Into<String>) -> Self {
        Self::Temporary {
            reason: reason.into(),
            retry_after: None,
        }
    }
}

impl From<UrlError> for SendError {
    fn from(error: UrlError) -> Self {
        if error.is_permanent() {
            Self::permanent(error.to_string())
        } else {
            Self::temporary(error.to_string())
        }
    }
}

/// Why a [`Sender`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A zero timeout would fail every delivery.
    #[error("the webhook timeout must be greater than zero (a few seconds is usual)")]
    ZeroTimeout,
    /// The HTTP client could not be built (TLS roots, resolver…).
    #[error("the webhook HTTP client could not be set up: {0}")]
    Client(String),
}

/// Sends signed deliveries. Holds one HTTP client (cheap to clone and to
/// share) that never follows redirects, ignores proxy settings, and
/// resolves names through the [`UrlPolicy`], so that it can only connect to
/// addresses the policy allows.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    policy: UrlPolicy,
    timeout: Duration,
}

impl Sender {
    /// A sender whose attempts last at most `timeout` (connecting, sending
    /// and reading the answer), and which sends only where `policy` allows.
    pub fn new(timeout: Duration, policy: UrlPolicy) -> Result<Self, SetupError> {
        if timeout.is_zero() {
            return Err(SetupError::ZeroTimeout);
        }
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(MAX_CONNECT_TIMEOUT))
            // A proxy would connect (and resolve) on our behalf, out of the
            // policy's reach.
            .no_proxy()
            .dns_resolver(PolicyResolver { policy })
            .user_agent(USER_AGENT)
            .build()
            .map_err(|e| SetupError::Client(error_chain(&e)))?;
        Ok(Self {
            client,
            policy,
            timeout,
        })
    }

    /// The policy this sender applies.
    pub fn policy(&self) -> UrlPolicy {
        self.policy
    }

    /// POSTs `body` (JSON, sent byte for byte) to `url`, signed with
    /// `secret` for the notification `id` at `now_unix` (the
    /// `webhook-timestamp` of this attempt).
    ///
    /// The URL is checked against the policy again ([`check_url`], resolving
    /// the name), and the connection goes through the policy's resolver, so a
    /// DNS answer that changes between the check and the connection
    /// (DNS rebinding) cannot reach a non-public address. A 2xx answer is
    /// [`Delivered`]; anything else is a [`SendError`] saying whether to
    /// retry.
    pub async fn send(
        &self,
        url: &str,
        secret: &[u8],
        id: &str,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Delivered, SendError> {
        if secret.is_empty() {
            return Err(SendError::permanent(
                "the subscription has no signing secret; give it one before sending",
            ));
        }
        if id.is_empty() || id.len() > MAX_ID_LEN || !id.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(SendError::permanent(format!(
                "the notification id {id:?} cannot be sent in the webhook-id header: it must be \
                 1 to {MAX_ID_LEN} visible ASCII characters"
            )));
        }
        let url = check_url(url, &self.policy).await?;
        self.post(url, secret, id, body, now_unix).await
    }

    /// One signed POST to an already checked URL.
    async fn post(
        &self,
        url: Url,
        secret: &[u8],
        id: &str,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Delivered, SendError> {
        let host = url.host_str().unwrap_or_default().to_owned();
        let signature = sign(secret, id, now_unix, body);

        let started = Instant::now();
        let result = self
            .client
            .post(url)
            .header(CONTENT_TYPE, "application/json")
            .header(HEADER_ID, id)
            .header(HEADER_TIMESTAMP, now_unix.to_string())
            .header(HEADER_SIGNATURE, signature)
            .body(body.to_vec())
            .send()
            .await;
        let mut response = match result {
            Ok(response) => response,
            Err(error) => {
                let error = self.request_error(&host, &error);
                tracing::debug!(webhook_id = id, host, %error, "webhook not delivered");
                return Err(error);
            }
        };
        let status = response.status();
        let headers = response.headers().clone();
        let answer = read_limited(&mut response).await;
        let elapsed = started.elapsed();
        tracing::debug!(
            webhook_id = id,
            host,
            status = status.as_u16(),
            elapsed_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            "webhook answered"
        );
        if status.is_success() {
            return Ok(Delivered {
                status: status.as_u16(),
                elapsed,
            });
        }
        Err(status_error(status, &headers, &answer, now_unix))
    }

    /// The [`SendError`] of a request that got no answer.
    fn request_error(&self, host: &str, error: &reqwest::Error) -> SendError {
        let mut source = error.source();
        while let Some(inner) = source {
            if let Some(url_error) = inner.downcast_ref::<UrlError>() {
                return url_error.clone().into();
            }
            source = inner.source();
        }
        if error.is_timeout() {
            return SendError::temporary(format!(
                "the endpoint at {host} did not answer within {} s",
                self.timeout.as_secs_f64()
            ));
        }
        if error.is_builder() {
            return SendError::permanent(format!(
                "the request to {host} could not be built: {}",
                error_chain(error)
            ));
        }
        if error.is_connect() {
            return SendError::temporary(format!(
                "could not connect to the endpoint at {host}: {}",
                innermost(error)
            ));
        }
        SendError::temporary(format!(
            "the request to the endpoint at {host} failed: {}",
            innermost(error)
        ))
    }
}

/// The error for a non-2xx answer.
fn status_error(status: StatusCode, headers: &HeaderMap, answer: &[u8], now: i64) -> SendError {
    let code = status.as_u16();
    let answered = format!("the endpoint answered {}", status_text(status));
    let said = excerpt(answer)
        .map(|text| format!(" (it said: {text})"))
        .unwrap_or_default();
    if status.is_redirection() {
        let target = headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|location| format!(" to {}", truncate(location, EXCERPT_CHARS)))
            .unwrap_or_default();
        return SendError::Permanent {
            reason: format!(
                "{answered}, a redirect{target}; webhooks do not follow redirects: give the \
                 final URL"
            ),
            status: Some(code),
        };
    }
    let retryable = status.is_server_error()
        || matches!(
            status,
            StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_EARLY | StatusCode::TOO_MANY_REQUESTS
        );
    if retryable || !status.is_client_error() {
        let retry_after = headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, now));
        let asked = retry_after
            .map(|d| format!("; it asks to retry after {} s", d.as_secs()))
            .unwrap_or_default();
        return SendError::Temporary {
            reason: format!("{answered}{said}{asked}"),
            retry_after,
        };
    }
    let hint = match status {
        StatusCode::GONE => {
            "; the endpoint is gone: remove the subscription or give it a new URL".to_owned()
        }
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
            "; the endpoint refused the delivery: check that it verifies signatures with this \
             subscription's current secret"
                .to_owned()
        }
        StatusCode::NOT_FOUND => "; check the subscription's URL".to_owned(),
        _ => "; the endpoint refused the delivery".to_owned(),
    };
    SendError::Permanent {
        reason: format!("{answered}{said}{hint}"),
        status: Some(code),
    }
}

/// "503 Service Unavailable", or just "599" for codes without a name.
fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(name) => format!("{} {name}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// Reads at most [`MAX_RESPONSE_BYTES`] of the answer; a failure while
/// reading keeps what was read (the status is what counts).
async fn read_limited(response: &mut reqwest::Response) -> Vec<u8> {
    let mut answer = Vec::new();
    while answer.len() < MAX_RESPONSE_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES - answer.len();
                answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
            }
            Ok(None) | Err(_) => break,
        }
    }
    answer
}

/// The start of an answer, on one line, for a reason; `None` when empty.
fn excerpt(answer: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(answer);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let text: String = text.chars().filter(|c| !c.is_control()).collect();
    (!text.is_empty()).then(|| truncate(&text, EXCERPT_CHARS))
}

/// At most `max` characters of `text`, with "…" when cut.
fn truncate(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// An error and its sources, joined by ": ".
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if parts.last() != Some(&part) {
            parts.push(part);
        }
        source = inner.source();
    }
    parts.join(": ")
}

/// The innermost source's message (e.g. "Connection refused (os error
/// 111)"), without the URL reqwest's own message carries.
fn innermost(error: &reqwest::Error) -> String {
    let mut last: &dyn std::error::Error = error;
    while let Some(inner) = last.source() {
        last = inner;
    }
    last.to_string()
}

/// How long a `Retry-After` value asks to wait: whole seconds, or an
/// HTTP date (IMF-fixdate, RFC 850 or asctime) compared with `now_unix` (a
/// date in the past means now). `None` when it is neither.
pub fn parse_retry_after(value: &str, now_unix: i64) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .map(|d| d.timestamp())
        .ok()
        .or_else(|| {
            ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
                .map(|d| d.and_utc().timestamp())
        })?;
    let wait = u64::try_from(at.saturating_sub(now_unix)).unwrap_or(0);
    Some(Duration::from_secs(wait))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    // 1994-11-06T08:49:37Z
    const DATE: i64 = 784_111_777;

    #[test]
    fn retry_after_in_seconds_and_as_http_dates() {
        let secs = |s: u64| Some(Duration::from_secs(s));
        assert_eq!(parse_retry_after("7", 0), secs(7));
        assert_eq!(parse_retry_after(" 120 ", 0), secs(120));
        let now = DATE - 30;
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            secs(30)
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            secs(30)
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), secs(30));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", DATE + 5),
            secs(0)
        );
        assert_eq!(parse_retry_after("-1", 0), None);
        assert_eq!(parse_retry_after("soon", 0), None);
    }

    #[test]
    fn statuses_are_sorted_into_temporary_and_permanent() {
        let none = HeaderMap::new();
        let err = status_error(StatusCode::SERVICE_UNAVAILABLE, &none, b"", 0);
        assert_eq!(
            err,
            SendError::Temporary {
                reason: "the endpoint answered 503 Service Unavailable".into(),
                retry_after: None
            }
        );
        for code in [408, 425, 429, 500, 502] {
            let status = StatusCode::from_u16(code).unwrap();
            assert!(status_error(status, &none, b"", 0).is_temporary(), "{code}");
        }
        for code in [400, 401, 403, 404, 410, 413, 422] {
            let status = StatusCode::from_u16(code).unwrap();
            let err = status_error(status, &none, b"", 0);
            assert!(
                matches!(err, SendError::Permanent { status: Some(c), .. } if c == code),
                "{code}"
            );
            assert!(err.reason().contains(&code.to_string()));
        }
        let gone = status_error(StatusCode::GONE, &none, b"", 0);
        assert!(gone.reason().contains("410 Gone"), "{gone}");
        assert!(gone.reason().contains("gone"), "{gone}");
    }

    #[test]
    fn answers_are_quoted_short_and_on_one_line() {
        let none = HeaderMap::new();
        let body = format!("bad\r\n  request {}", "x".repeat(500));
        let err = status_error(StatusCode::BAD_REQUEST, &none, body.as_bytes(), 0);
        assert!(err.reason().contains("(it said: bad request xxx"), "{err}");
        assert!(err.reason().contains("…"), "{err}");
        assert!(!err.reason().contains('\n'));
    }

    /// DNS rebinding: a name that passed the check but now resolves to a
    /// loopback address is refused by the resolver, before any connection.
    #[tokio::test]
    async fn a_name_resolving_to_a_private_address_is_not_connected_to() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = Arc::clone(&accepted);
        tokio::spawn(async move {
            while listener.accept().await.is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
        });
        let sender = Sender::new(Duration::from_secs(2), UrlPolicy::PUBLIC_ONLY).unwrap();
        // Skips `check_url`, as if DNS had answered a public address then.
        let url = Url::parse(&format!("http://localhost:{port}/hook")).unwrap();
        let err = sender
            .post(url, b"secret", "msg_1", b"{}", 0)
            .await
            .unwrap_err();
        assert!(err.is_temporary(), "{err:?}");
        assert!(
            err.reason()
                .contains("resolves to 127.0.0.1, a loopback address"),
            "{err}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(accepted.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn zero_timeout_is_refused() {
        assert!(matches!(
            Sender::new(Duration::ZERO, UrlPolicy::PUBLIC_ONLY),
            Err(SetupError::ZeroTimeout)
        ));
    }
}
