//! Validated values of the tenants domain. Each is parsed once at the edge
//! and is valid for as long as it exists; every refusal names the field, so
//! a form or an API can show it next to the right input.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a value was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidValue {
    /// The field, as named in the API (`slug`, `contact_email`…).
    pub field: &'static str,
    /// What is wrong, in words a person can act on.
    pub problem: String,
}

impl InvalidValue {
    /// A refusal of `field`.
    pub fn new(field: &'static str, problem: impl Into<String>) -> Self {
        Self {
            field,
            problem: problem.into(),
        }
    }
}

fn bounded_text(field: &'static str, value: &str, max: usize) -> Result<String, InvalidValue> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(InvalidValue::new(field, "must not be empty"));
    }
    let chars = trimmed.chars().count();
    if chars > max {
        return Err(InvalidValue::new(
            field,
            format!("must be at most {max} characters, got {chars}"),
        ));
    }
    if trimmed.chars().any(|c| c.is_control()) {
        return Err(InvalidValue::new(
            field,
            "must not contain control characters",
        ));
    }
    Ok(trimmed.to_owned())
}

macro_rules! string_value {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The value as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

string_value!(
    /// A human name (of a tenant, department, official, topic…): 1 to N
    /// characters after trimming, no control characters.
    Name
);

impl Name {
    /// Parses a name of at most `max` characters for `field`.
    pub fn parse(field: &'static str, value: &str, max: usize) -> Result<Self, InvalidValue> {
        bounded_text(field, value, max).map(Self)
    }
}

string_value!(
    /// A URL-safe identifier: 3 to 63 characters of `a-z`, `0-9` and `-`,
    /// starting with a letter, not ending with `-`, no `--` (it appears in
    /// portal addresses and ticket references).
    Slug
);

impl Slug {
    /// Parses a slug for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let v = value.trim();
        let ok_chars = v
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !(3..=63).contains(&v.len())
            || !ok_chars
            || !v.starts_with(|c: char| c.is_ascii_lowercase())
            || v.ends_with('-')
            || v.contains("--")
        {
            return Err(InvalidValue::new(
                field,
                "must be 3 to 63 characters of a-z, 0-9 and single '-', starting with a letter and not ending with '-'",
            ));
        }
        Ok(Self(v.to_owned()))
    }
}

string_value!(
    /// An e-mail address, checked for shape (one `@`, a dotted domain, no
    /// spaces, at most 254 characters) and stored with its domain lowercased.
    Email
);

impl Email {
    /// Parses an address for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let v = value.trim();
        let bad = || InvalidValue::new(field, format!("{v:?} is not an e-mail address"));
        if v.len() > 254 || v.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = v.rsplit_once('@').ok_or_else(bad)?;
        let domain_ok = domain.split('.').count() >= 2
            && domain.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && !l.starts_with('-')
                    && !l.ends_with('-')
                    && l.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
            return Err(bad());
        }
        Ok(Self(format!("{local}@{}", domain.to_lowercase())))
    }
}

string_value!(
    /// An IANA time zone name (`Europe/Madrid`, `Atlantic/Canary`).
    TimeZone
);

impl TimeZone {
    /// Parses a time zone name for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let v = value.trim();
        v.parse::<chrono_tz::Tz>()
            .map(|tz| Self(tz.name().to_owned()))
            .map_err(|_| {
                InvalidValue::new(
                    field,
                    format!("{v:?} is not an IANA time zone such as Europe/Madrid"),
                )
            })
    }

    /// The zone, for local-time arithmetic.
    pub fn tz(&self) -> chrono_tz::Tz {
        self.0.parse().unwrap_or(chrono_tz::UTC)
    }
}

string_value!(
    /// A language tag: a 2- or 3-letter ISO 639 language, optionally with a
    /// 2-letter region (`es`, `ca`, `eu`, `gl`, `es-ES`, `ast`), normalised
    /// to `ll` or `ll-RR`.
    Language
);

impl Language {
    /// Parses a language tag for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let v = value.trim().replace('_', "-");
        let mut parts = v.split('-');
        let lang = parts.next().unwrap_or_default();
        let region = parts.next();
        let ok = (2..=3).contains(&lang.len())
            && lang.chars().all(|c| c.is_ascii_alphabetic())
            && region.is_none_or(|r| r.len() == 2 && r.chars().all(|c| c.is_ascii_alphabetic()))
            && parts.next().is_none();
        if !ok {
            return Err(InvalidValue::new(
                field,
                format!("{value:?} is not a language code such as es, ca or es-ES"),
            ));
        }
        Ok(Self(match region {
            Some(r) => format!("{}-{}", lang.to_lowercase(), r.to_uppercase()),
            None => lang.to_lowercase(),
        }))
    }
}

string_value!(
    /// A colour as `#rrggbb` (lowercased).
    Colour
);

impl Colour {
    /// Parses a colour for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let v = value.trim();
        let ok =
            v.len() == 7 && v.starts_with('#') && v[1..].chars().all(|c| c.is_ascii_hexdigit());
        if !ok {
            return Err(InvalidValue::new(
                field,
                format!("{v:?} is not a colour like #1a5fb4"),
            ));
        }
        Ok(Self(v.to_lowercase()))
    }
}

string_value!(
    /// An absolute `https://` URL (or `http://` for local development) of at
    /// most 2,000 characters, without spaces.
    WebUrl
);

impl WebUrl {
    /// Parses a URL for `field`, by the rule every service shares
    /// ([`ventanilla_kernel::web`]).
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        ventanilla_kernel::web::web_url(value, ventanilla_kernel::web::Schemes::Web)
            .map(Self)
            .map_err(|e| InvalidValue::new(field, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs() {
        assert_eq!(
            Slug::parse("slug", "ayto-lugo").unwrap().as_str(),
            "ayto-lugo"
        );
        for bad in [
            "ab",
            "Ayto",
            "1ayto",
            "ayto-",
            "ay--to",
            "ayto lugo",
            "ayto_lugo",
            &"a".repeat(64),
        ] {
            let e = Slug::parse("slug", bad).unwrap_err();
            assert_eq!(e.field, "slug", "{bad}");
        }
    }

    #[test]
    fn emails() {
        assert_eq!(
            Email::parse("email", " Alcaldia@Lugo.GAL ")
                .unwrap()
                .as_str(),
            "Alcaldia@lugo.gal"
        );
        for bad in [
            "", "no-at", "a@b", "a@@b.es", "a b@c.es", "@c.es", "a@-c.es",
        ] {
            assert!(Email::parse("email", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_languages_colours_urls() {
        assert_eq!(
            TimeZone::parse("tz", "Atlantic/Canary").unwrap().as_str(),
            "Atlantic/Canary"
        );
        assert!(TimeZone::parse("tz", "Madrid").is_err());
        assert_eq!(Language::parse("lang", "es_es").unwrap().as_str(), "es-ES");
        assert_eq!(Language::parse("lang", "ast").unwrap().as_str(), "ast");
        assert!(Language::parse("lang", "spanish").is_err());
        assert_eq!(Colour::parse("c", "#1A5FB4").unwrap().as_str(), "#1a5fb4");
        assert!(Colour::parse("c", "blue").is_err());
        assert!(WebUrl::parse("u", "https://lugo.gal/logo.png").is_ok());
        assert!(WebUrl::parse("u", "ftp://x").is_err());
        assert!(WebUrl::parse("u", "https://").is_err());
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            Name::parse("name", "  Urbanismo ", 80).unwrap().as_str(),
            "Urbanismo"
        );
        let e = Name::parse("name", &"x".repeat(81), 80).unwrap_err();
        assert_eq!(e.to_string(), "name: must be at most 80 characters, got 81");
        assert!(Name::parse("name", "   ", 80).is_err());
    }
}
