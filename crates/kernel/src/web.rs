//! What every service accepts as a web address a citizen will follow or a
//! network will fetch: an announcement's link and image, a portal's logo
//! and social links, a publication's link. One rule for all, so that what
//! one service accepts another does not refuse later: `http` or `https`
//! (any case; written back in lower case), a host, at most [`MAX_LEN`]
//! characters, no spaces or control characters. Surrounding spaces are
//! trimmed.
//!
//! What this module must not do: resolve or fetch anything (whether an
//! address is reachable, or private, is the connectors' and the webhook
//! sender's business).

/// The longest web address accepted, in characters.
pub const MAX_LEN: usize = 2000;

/// Which schemes an address may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schemes {
    /// `http` or `https`.
    Web,
    /// `https` only (images other sites embed, logos).
    HttpsOnly,
}

/// Why a web address is refused, as a message after the field's name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebUrlError {
    /// Not `http(s)://` (or not `https://` when only that is allowed).
    #[error("must start with {}", if *.0 == Schemes::HttpsOnly { "https://" } else { "http:// or https://" })]
    Scheme(Schemes),
    /// No host after the scheme, spaces or control characters inside.
    #[error("{0:?} is not a web address")]
    Malformed(String),
    /// Longer than [`MAX_LEN`].
    #[error("must be at most {MAX_LEN} characters, got {0}")]
    TooLong(usize),
}

/// Checks `value` and returns it trimmed, with its scheme in lower case.
pub fn web_url(value: &str, schemes: Schemes) -> Result<String, WebUrlError> {
    let v = value.trim();
    let chars = v.chars().count();
    if chars > MAX_LEN {
        return Err(WebUrlError::TooLong(chars));
    }
    let (scheme, rest) = v.split_once("://").ok_or(WebUrlError::Scheme(schemes))?;
    let scheme = scheme.to_ascii_lowercase();
    let allowed = match schemes {
        Schemes::Web => scheme == "http" || scheme == "https",
        Schemes::HttpsOnly => scheme == "https",
    };
    if !allowed {
        return Err(WebUrlError::Scheme(schemes));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if host.is_empty() || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(WebUrlError::Malformed(v.to_owned()));
    }
    Ok(format!("{scheme}://{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_web_addresses_trimmed_with_a_lower_case_scheme() {
        assert_eq!(
            web_url(" https://lugo.gal/obras?x=1 ", Schemes::Web).unwrap(),
            "https://lugo.gal/obras?x=1"
        );
        assert_eq!(
            web_url("HTTPS://Lugo.gal/Obras", Schemes::HttpsOnly).unwrap(),
            "https://Lugo.gal/Obras"
        );
        assert_eq!(
            web_url("http://lugo.gal", Schemes::Web).unwrap(),
            "http://lugo.gal"
        );
    }

    #[test]
    fn refuses_what_is_not_one_and_says_why() {
        for (value, schemes, message) in [
            (
                "ftp://x.es",
                Schemes::Web,
                "must start with http:// or https://",
            ),
            (
                "lugo.gal",
                Schemes::Web,
                "must start with http:// or https://",
            ),
            (
                "http://lugo.gal/a.png",
                Schemes::HttpsOnly,
                "must start with https://",
            ),
            (
                "https://",
                Schemes::Web,
                "\"https://\" is not a web address",
            ),
            (
                "https:///path",
                Schemes::Web,
                "\"https:///path\" is not a web address",
            ),
            (
                "https://lugo.gal/a b",
                Schemes::Web,
                "\"https://lugo.gal/a b\" is not a web address",
            ),
            (
                "https://lugo.gal/\u{7}",
                Schemes::Web,
                "\"https://lugo.gal/\\u{7}\" is not a web address",
            ),
        ] {
            assert_eq!(
                web_url(value, schemes).unwrap_err().to_string(),
                message,
                "{value}"
            );
        }
        let long = format!("https://lugo.gal/{}", "a".repeat(MAX_LEN));
        assert_eq!(
            web_url(&long, Schemes::Web).unwrap_err(),
            WebUrlError::TooLong(MAX_LEN + 17)
        );
    }
}
