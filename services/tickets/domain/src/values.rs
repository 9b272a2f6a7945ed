//! Validated values of the tickets domain, and the identifiers a ticket
//! refers to. Each value is parsed once at the edge (`X::parse(field, s)`)
//! and every refusal names the field, so a form or an API can show it next
//! to the right input; over-long text is refused, never truncated.
//!
//! Values are stored in events as plain strings (`serde(transparent)`), so
//! a stored event always reads back. Because deserialising skips the
//! checks, every value also has a `check` that the decider runs on what a
//! command carries: a value that did not come through `parse` is refused
//! there, and nothing is written.
//!
//! What this module must not do: look anything up (whether a department or
//! an official exists is the service's question), or draw random tokens.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The longest subject, in characters.
pub const SUBJECT_MAX: usize = 200;

/// The longest message or note body, in characters.
pub const BODY_MAX: usize = 20_000;

/// The longest tag, in characters.
pub const TAG_MAX: usize = 40;

/// The longest name of a citizen, in characters.
pub const CONTACT_NAME_MAX: usize = 120;

/// The longest handle of a citizen on a channel, in characters.
pub const HANDLE_MAX: usize = 200;

/// The longest e-mail address, in characters.
pub const EMAIL_MAX: usize = 254;

/// Why a value was refused: the field and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct InvalidValue {
    /// The field, as named in the API (`body`, `contact.email`…).
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

use ventanilla_kernel::uuid_newtype;

uuid_newtype!(
    /// A member of the tenant's staff who works tickets (the tenants
    /// service's staff id).
    AgentId
);

uuid_newtype!(
    /// A department of the tenant's organisation (the tenants service's
    /// directory).
    DepartmentId
);

uuid_newtype!(
    /// An official (a person or office) a citizen can address a question to
    /// (the tenants service's directory).
    OfficialId
);

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

/// Refuses a value that does not read back as itself: what `parse` gives
/// for its text must be the value (so it is valid and canonical).
fn same<T: PartialEq>(
    field: &'static str,
    parsed: Result<T, InvalidValue>,
    value: &T,
) -> Result<(), InvalidValue> {
    match parsed {
        Ok(p) if p == *value => Ok(()),
        Ok(_) => Err(InvalidValue::new(
            field,
            "is not in its canonical form; build it with parse",
        )),
        Err(e) => Err(e),
    }
}

/// Trims `value` and checks it has 1 to `max` characters; control
/// characters are refused except, when `multiline`, new lines and tabs.
fn bounded(
    field: &'static str,
    value: &str,
    max: usize,
    multiline: bool,
) -> Result<String, InvalidValue> {
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
    let allowed = |c: char| multiline && matches!(c, '\n' | '\r' | '\t');
    if trimmed.chars().any(|c| c.is_control() && !allowed(c)) {
        return Err(InvalidValue::new(
            field,
            if multiline {
                "must not contain control characters other than new lines and tabs"
            } else {
                "must be one line without control characters"
            },
        ));
    }
    Ok(trimmed.to_owned())
}

string_value!(
    /// A short line of text (a citizen's name, a failure reason): 1 to N
    /// characters after trimming, one line, no control characters.
    Text
);

impl Text {
    /// Parses a text of at most `max` characters for `field`.
    pub fn parse(field: &'static str, value: &str, max: usize) -> Result<Self, InvalidValue> {
        bounded(field, value, max, false).map(Self)
    }

    /// Refuses this value unless `parse` with `max` would give it.
    pub fn check(&self, field: &'static str, max: usize) -> Result<(), InvalidValue> {
        same(field, Self::parse(field, &self.0, max), self)
    }
}

string_value!(
    /// A ticket's subject: 1 to [`SUBJECT_MAX`] characters, one line.
    Subject
);

impl Subject {
    /// Parses a subject for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        bounded(field, value, SUBJECT_MAX, false).map(Self)
    }

    /// Refuses this value unless `parse` would give it.
    pub fn check(&self, field: &'static str) -> Result<(), InvalidValue> {
        same(field, Self::parse(field, &self.0), self)
    }
}

string_value!(
    /// The text of a message or an internal note: 1 to [`BODY_MAX`]
    /// characters after trimming (an empty or blank body is refused), new
    /// lines and tabs allowed, no other control characters.
    Body
);

impl Body {
    /// Parses a body for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        bounded(field, value, BODY_MAX, true).map(Self)
    }

    /// Refuses this value unless `parse` would give it.
    pub fn check(&self, field: &'static str) -> Result<(), InvalidValue> {
        same(field, Self::parse(field, &self.0), self)
    }
}

string_value!(
    /// A label on a ticket: 1 to [`TAG_MAX`] characters of `a-z`, `0-9` and
    /// `-` (input is trimmed and lowercased: `Obras` becomes `obras`).
    Tag
);

impl Tag {
    /// Parses a tag for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let v = value.trim().to_ascii_lowercase();
        let ok = !v.is_empty()
            && v.len() <= TAG_MAX
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(InvalidValue::new(
                field,
                format!("must be 1 to {TAG_MAX} characters of a-z, 0-9 and -"),
            ));
        }
        Ok(Self(v))
    }

    /// Refuses this value unless `parse` would give it.
    pub fn check(&self, field: &'static str) -> Result<(), InvalidValue> {
        same(field, Self::parse(field, &self.0), self)
    }
}

string_value!(
    /// A ticket's human reference, `PREFIX-YEAR-NUMBER` with the number
    /// zero-padded to at least 6 digits: `AYTO-2026-000123`. The prefix is 2
    /// to 8 letters `A-Z`; the service chooses it per tenant and draws the
    /// number from a per-tenant, per-year sequence.
    Reference
);

impl Reference {
    /// The reference of ticket `number` of `year` for a tenant whose prefix
    /// is `prefix` (2 to 8 letters `A-Z`; lower case is upper-cased).
    pub fn format(prefix: &str, year: i32, number: u64) -> Result<Self, InvalidValue> {
        let prefix = prefix.trim().to_ascii_uppercase();
        if !(2..=8).contains(&prefix.len()) || !prefix.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(InvalidValue::new(
                "prefix",
                "must be 2 to 8 letters A-Z, like AYTO",
            ));
        }
        if !(1000..=9999).contains(&year) {
            return Err(InvalidValue::new("year", "must have four digits"));
        }
        Ok(Self(format!("{prefix}-{year}-{number:06}")))
    }

    /// Parses a reference a citizen or an agent typed, for `field` (lower
    /// case is upper-cased).
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let v = value.trim().to_ascii_uppercase();
        let mut parts = v.split('-');
        let (Some(prefix), Some(year), Some(number), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad_reference(field, value));
        };
        let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        let ok = (2..=8).contains(&prefix.len())
            && prefix.bytes().all(|b| b.is_ascii_uppercase())
            && year.len() == 4
            && digits(year)
            && !year.starts_with('0')
            && (6..=20).contains(&number.len())
            && digits(number);
        if !ok {
            return Err(bad_reference(field, value));
        }
        Ok(Self(v))
    }

    /// Refuses this value unless `parse` would give it.
    pub fn check(&self, field: &'static str) -> Result<(), InvalidValue> {
        same(field, Self::parse(field, &self.0), self)
    }
}

fn bad_reference(field: &'static str, value: &str) -> InvalidValue {
    let shown: String = value.chars().take(40).collect();
    InvalidValue::new(
        field,
        format!("{shown:?} is not a ticket reference like AYTO-2026-000123"),
    )
}

/// The SHA-256 (64 hexadecimal characters, lowercased) of a ticket's secret
/// tracking token, with which the citizen follows the ticket without an
/// account. The service draws the token, gives it to the citizen once, and
/// passes only its hash; looking a ticket up by token means hashing it and
/// finding the hash. `Debug` prints `TrackingTokenHash(…)`, never the value.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TrackingTokenHash(String);

impl TrackingTokenHash {
    /// Wraps a hex SHA-256 digest for `field`.
    pub fn parse(field: &'static str, hex: &str) -> Result<Self, InvalidValue> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidValue::new(
                field,
                "must be a SHA-256 digest as 64 hexadecimal characters",
            ));
        }
        Ok(Self(hex.to_ascii_lowercase()))
    }

    /// Refuses this value unless `parse` would give it.
    pub fn check(&self, field: &'static str) -> Result<(), InvalidValue> {
        same(field, Self::parse(field, &self.0), self)
    }

    /// The digest as hex, to store or look up.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TrackingTokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TrackingTokenHash(…)")
    }
}

/// Where a message came from or goes out on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// The tenant's citizen portal.
    Web,
    /// An integrator, through the API.
    Api,
    /// E-mail.
    Email,
    /// X (formerly Twitter).
    X,
    /// Facebook.
    Facebook,
    /// Instagram.
    Instagram,
    /// Mastodon.
    Mastodon,
    /// Telegram.
    Telegram,
    /// Bluesky.
    Bluesky,
    /// WhatsApp.
    Whatsapp,
}

impl Channel {
    /// Every channel, in a stable order.
    pub const ALL: [Channel; 10] = [
        Channel::Web,
        Channel::Api,
        Channel::Email,
        Channel::X,
        Channel::Facebook,
        Channel::Instagram,
        Channel::Mastodon,
        Channel::Telegram,
        Channel::Bluesky,
        Channel::Whatsapp,
    ];

    /// The channel's name as stored and in the API (`web`, `whatsapp`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Web => "web",
            Channel::Api => "api",
            Channel::Email => "email",
            Channel::X => "x",
            Channel::Facebook => "facebook",
            Channel::Instagram => "instagram",
            Channel::Mastodon => "mastodon",
            Channel::Telegram => "telegram",
            Channel::Bluesky => "bluesky",
            Channel::Whatsapp => "whatsapp",
        }
    }

    /// Parses a channel name for `field` (case and surrounding spaces are
    /// ignored).
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let v = value.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|c| c.as_str() == v)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::ALL.iter().map(|c| c.as_str()).collect();
                let shown: String = value.chars().take(40).collect();
                InvalidValue::new(
                    field,
                    format!(
                        "{shown:?} is not a channel; use one of {}",
                        names.join(", ")
                    ),
                )
            })
    }

    /// Whether it is a social network or messaging app (the social service
    /// delivers on it), as opposed to the portal, the API and e-mail.
    pub fn is_social(self) -> bool {
        !matches!(self, Channel::Web | Channel::Api | Channel::Email)
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whom a "Tengo una pregunta para…" question is addressed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Addressee {
    /// A department of the tenant.
    Department(DepartmentId),
    /// An official of the tenant, and the department they belong to, if any.
    Official {
        /// The official.
        official: OfficialId,
        /// Their department, whose queue the question lands in.
        department: Option<DepartmentId>,
    },
}

impl Addressee {
    /// The department whose queue a question to this addressee lands in.
    pub fn department(&self) -> Option<DepartmentId> {
        match self {
            Addressee::Department(d) => Some(*d),
            Addressee::Official { department, .. } => *department,
        }
    }
}

/// What a citizen asks for: the three requests of the portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// "Dudas y sugerencias": a question.
    Question,
    /// "Dudas y sugerencias": a suggestion.
    Suggestion,
    /// "Tengo una pregunta para…": a question for a department or official.
    QuestionFor(Addressee),
}

impl Kind {
    /// The kind's name as in the API: `question`, `suggestion`,
    /// `question_for`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Question => "question",
            Kind::Suggestion => "suggestion",
            Kind::QuestionFor(_) => "question_for",
        }
    }

    /// Whom the ticket is addressed to, for `question_for`.
    pub fn addressee(&self) -> Option<&Addressee> {
        match self {
            Kind::QuestionFor(a) => Some(a),
            Kind::Question | Kind::Suggestion => None,
        }
    }

    /// The department whose queue a new ticket of this kind lands in.
    pub fn queue(&self) -> Option<DepartmentId> {
        self.addressee().and_then(Addressee::department)
    }
}

/// How urgent a ticket is. New tickets are [`Priority::Normal`].
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    /// Can wait.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Before the normal ones.
    High,
    /// At once.
    Urgent,
}

impl Priority {
    /// Every priority, lowest first.
    pub const ALL: [Priority; 4] = [
        Priority::Low,
        Priority::Normal,
        Priority::High,
        Priority::Urgent,
    ];

    /// The priority's name as stored and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }

    /// Parses a priority name for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let v = value.trim().to_ascii_lowercase();
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == v)
            .ok_or_else(|| InvalidValue::new(field, "must be one of low, normal, high, urgent"))
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How to reach the citizen who opened a ticket: a name if given, and at
/// least one of an e-mail address, a phone number or their handle on the
/// channel they wrote on. A contact with no way to reach the citizen is a
/// valid value, but a ticket refuses it (`NoContact`).
///
/// Build it with [`Contact::parse`]; the e-mail is stored with its domain
/// lowercased, the phone as `+` and 6 to 15 digits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    /// The citizen's name, if given.
    pub name: Option<Text>,
    /// Their e-mail address.
    pub email: Option<String>,
    /// Their phone number in international form (`+34600123456`).
    pub phone: Option<String>,
    /// Their handle on the channel they wrote on (`@vecina@mastodon.social`,
    /// a Telegram chat id…).
    pub handle: Option<String>,
}

impl Contact {
    /// Parses a contact; blank parts count as not given. Refuses malformed
    /// parts naming the field (`contact.email`…), but not a contact with no
    /// way to reach the citizen: that is the ticket's rule.
    pub fn parse(
        name: Option<&str>,
        email: Option<&str>,
        phone: Option<&str>,
        handle: Option<&str>,
    ) -> Result<Self, InvalidValue> {
        Ok(Self {
            name: given(name)
                .map(|n| Text::parse("contact.name", n, CONTACT_NAME_MAX))
                .transpose()?,
            email: given(email).map(parse_email).transpose()?,
            phone: given(phone).map(parse_phone).transpose()?,
            handle: given(handle).map(parse_handle).transpose()?,
        })
    }

    /// Refuses this contact unless [`Contact::parse`] would give it.
    pub fn check(&self) -> Result<(), InvalidValue> {
        let again = Self::parse(
            self.name.as_ref().map(Text::as_str),
            self.email.as_deref(),
            self.phone.as_deref(),
            self.handle.as_deref(),
        )?;
        if again != *self {
            return Err(InvalidValue::new(
                "contact",
                "is not in its canonical form; build it with Contact::parse",
            ));
        }
        Ok(())
    }

    /// Whether there is at least one way to reach the citizen.
    pub fn is_reachable(&self) -> bool {
        self.email.is_some() || self.phone.is_some() || self.handle.is_some()
    }
}

/// A part of a contact, when given (blank counts as not given).
fn given(value: Option<&str>) -> Option<&str> {
    value.map(str::trim).filter(|v| !v.is_empty())
}

fn parse_email(value: &str) -> Result<String, InvalidValue> {
    let shown: String = value.chars().take(60).collect();
    let bad = || {
        InvalidValue::new(
            "contact.email",
            format!("{shown:?} is not an e-mail address"),
        )
    };
    if value.chars().count() > EMAIL_MAX
        || value.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(bad());
    }
    let Some((local, domain)) = value.split_once('@') else {
        return Err(bad());
    };
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |l: &&str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.chars().all(|c| c.is_alphanumeric() || c == '-')
    };
    if local.is_empty()
        || local.len() > 64
        || domain.contains('@')
        || labels.len() < 2
        || !labels.iter().all(label_ok)
    {
        return Err(bad());
    }
    Ok(format!("{local}@{}", domain.to_lowercase()))
}

fn parse_phone(value: &str) -> Result<String, InvalidValue> {
    let compact: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let digits = compact
        .strip_prefix('+')
        .or_else(|| compact.strip_prefix("00"));
    match digits {
        Some(d) if (6..=15).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()) => {
            Ok(format!("+{d}"))
        }
        _ => Err(InvalidValue::new(
            "contact.phone",
            "must be in international form: + and 6 to 15 digits, like +34 600 123 456",
        )),
    }
}

fn parse_handle(value: &str) -> Result<String, InvalidValue> {
    let chars = value.chars().count();
    if chars > HANDLE_MAX {
        return Err(InvalidValue::new(
            "contact.handle",
            format!("must be at most {HANDLE_MAX} characters, got {chars}"),
        ));
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidValue::new(
            "contact.handle",
            "must not contain spaces or control characters",
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_refuse_empty_blank_and_over_long_text_naming_the_field() {
        assert_eq!(
            Body::parse("body", "  Hola,\n\tuna duda.\n ")
                .unwrap()
                .as_str(),
            "Hola,\n\tuna duda."
        );
        for blank in ["", "   ", "\n\t "] {
            let e = Body::parse("body", blank).unwrap_err();
            assert_eq!(e.to_string(), "body: must not be empty");
        }
        let e = Body::parse("body", &"x".repeat(BODY_MAX + 1)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "body: must be at most 20000 characters, got 20001"
        );
        assert!(Body::parse("body", &"ñ".repeat(BODY_MAX)).is_ok());
        assert_eq!(Body::parse("body", "a\u{0}b").unwrap_err().field, "body");
    }

    #[test]
    fn subjects_and_texts_are_one_bounded_line() {
        assert_eq!(
            Subject::parse("subject", " Farola fundida ")
                .unwrap()
                .as_str(),
            "Farola fundida"
        );
        assert!(Subject::parse("subject", &"s".repeat(SUBJECT_MAX)).is_ok());
        assert_eq!(
            Subject::parse("subject", &"s".repeat(SUBJECT_MAX + 1))
                .unwrap_err()
                .field,
            "subject"
        );
        assert!(Subject::parse("subject", "two\nlines").is_err());
        assert!(Subject::parse("subject", " ").is_err());
        assert_eq!(
            Text::parse("reason", "timeout", 10).unwrap().as_str(),
            "timeout"
        );
        assert!(Text::parse("reason", "timeout!!!!", 10).is_err());
    }

    #[test]
    fn checks_refuse_values_that_bypassed_parse() {
        let body: Body = serde_json::from_value(serde_json::json!("  ")).unwrap();
        assert_eq!(body.check("body").unwrap_err().field, "body");
        let body: Body = serde_json::from_value(serde_json::json!(" padded ")).unwrap();
        assert!(body.check("body").is_err());
        assert!(Body::parse("body", "ok").unwrap().check("body").is_ok());
        let tag: Tag = serde_json::from_value(serde_json::json!("Obras")).unwrap();
        assert_eq!(tag.check("tag").unwrap_err().field, "tag");
        let subject: Subject = serde_json::from_value(serde_json::json!("")).unwrap();
        assert_eq!(subject.check("subject").unwrap_err().field, "subject");
        let text = Text::parse("x", "abcdef", 10).unwrap();
        assert_eq!(text.check("reason", 3).unwrap_err().field, "reason");
        let token: TrackingTokenHash = serde_json::from_value(serde_json::json!("xyz")).unwrap();
        assert_eq!(token.check("tracking").unwrap_err().field, "tracking");
        let reference: Reference = serde_json::from_value(serde_json::json!("nope")).unwrap();
        assert_eq!(reference.check("reference").unwrap_err().field, "reference");
    }

    #[test]
    fn tags() {
        assert_eq!(
            Tag::parse("tag", " Obras-2026 ").unwrap().as_str(),
            "obras-2026"
        );
        assert!(Tag::parse("tag", &"t".repeat(TAG_MAX)).is_ok());
        for bad in [
            "",
            " ",
            "alumbrado público",
            "a_b",
            "ñu",
            &"t".repeat(TAG_MAX + 1),
        ] {
            assert_eq!(Tag::parse("tag", bad).unwrap_err().field, "tag", "{bad}");
        }
    }

    #[test]
    fn references() {
        assert_eq!(
            Reference::format("AYTO", 2026, 123).unwrap().as_str(),
            "AYTO-2026-000123"
        );
        assert_eq!(
            Reference::format("lugo", 2026, 1_234_567).unwrap().as_str(),
            "LUGO-2026-1234567"
        );
        assert_eq!(Reference::format("A", 2026, 1).unwrap_err().field, "prefix");
        assert_eq!(
            Reference::format("AYUNTAMIE", 2026, 1).unwrap_err().field,
            "prefix"
        );
        assert_eq!(
            Reference::format("AY1", 2026, 1).unwrap_err().field,
            "prefix"
        );
        assert_eq!(Reference::format("AYTO", 26, 1).unwrap_err().field, "year");
        let r = Reference::format("AYTO", 2026, 123).unwrap();
        assert_eq!(
            Reference::parse("reference", " ayto-2026-000123 ").unwrap(),
            r
        );
        assert!(r.check("reference").is_ok());
        for bad in [
            "AYTO-2026-123",
            "AYTO-26-000123",
            "AYTO2026000123",
            "AYTO-2026-000123-1",
            "A-2026-000123",
            "AYTO-2026-00012a",
            "",
        ] {
            assert_eq!(
                Reference::parse("reference", bad).unwrap_err().field,
                "reference",
                "{bad}"
            );
        }
    }

    #[test]
    fn tracking_token_hashes_are_hex_digests_and_hidden() {
        let h = TrackingTokenHash::parse("tracking", &"AB".repeat(32)).unwrap();
        assert_eq!(h.as_str(), "ab".repeat(32));
        assert_eq!(format!("{h:?}"), "TrackingTokenHash(…)");
        assert!(TrackingTokenHash::parse("tracking", &"a".repeat(63)).is_err());
        assert!(TrackingTokenHash::parse("tracking", &"g".repeat(64)).is_err());
    }

    #[test]
    fn channels() {
        for c in Channel::ALL {
            assert_eq!(Channel::parse("channel", c.as_str()).unwrap(), c);
            assert_eq!(serde_json::to_value(c).unwrap(), c.as_str());
            assert_eq!(c.to_string(), c.as_str());
        }
        assert_eq!(
            Channel::parse("channel", " WhatsApp ").unwrap(),
            Channel::Whatsapp
        );
        let e = Channel::parse("channel", "twitter").unwrap_err();
        assert_eq!(e.field, "channel");
        assert!(e.problem.contains("bluesky"), "{e}");
        assert!(Channel::Mastodon.is_social());
        assert!(!Channel::Email.is_social());
    }

    #[test]
    fn priorities() {
        assert_eq!(Priority::default(), Priority::Normal);
        assert!(Priority::Urgent > Priority::High);
        assert_eq!(
            Priority::parse("priority", "URGENT").unwrap(),
            Priority::Urgent
        );
        assert!(Priority::parse("priority", "asap").is_err());
        assert_eq!(serde_json::to_value(Priority::Low).unwrap(), "low");
    }

    #[test]
    fn kinds_and_addressees() {
        let d = DepartmentId(uuid::Uuid::from_u128(1));
        let o = OfficialId(uuid::Uuid::from_u128(2));
        assert_eq!(Kind::Question.queue(), None);
        assert_eq!(Kind::QuestionFor(Addressee::Department(d)).queue(), Some(d));
        let to_official = Kind::QuestionFor(Addressee::Official {
            official: o,
            department: Some(d),
        });
        assert_eq!(to_official.queue(), Some(d));
        assert_eq!(to_official.as_str(), "question_for");
        assert_eq!(
            serde_json::to_value(Kind::Suggestion).unwrap(),
            "suggestion"
        );
        let json = serde_json::to_value(to_official).unwrap();
        assert_eq!(serde_json::from_value::<Kind>(json).unwrap(), to_official);
    }

    #[test]
    fn contacts() {
        let c = Contact::parse(
            Some(" Ana Pérez "),
            Some("Ana@Correo.ES"),
            Some("0034 600-12 34 56"),
            Some(" "),
        )
        .unwrap();
        assert_eq!(c.name.as_ref().unwrap().as_str(), "Ana Pérez");
        assert_eq!(c.email.as_deref(), Some("Ana@correo.es"));
        assert_eq!(c.phone.as_deref(), Some("+34600123456"));
        assert_eq!(c.handle, None);
        assert!(c.is_reachable());
        assert!(c.check().is_ok());
        let nobody = Contact::parse(Some("Ana"), None, Some(""), None).unwrap();
        assert!(!nobody.is_reachable());
        assert!(
            Contact::parse(None, None, None, Some("@ana@mastodon.social"))
                .unwrap()
                .is_reachable()
        );
        for (email, phone, handle, field) in [
            (Some("ana"), None, None, "contact.email"),
            (Some("ana@es"), None, None, "contact.email"),
            (Some("a na@x.es"), None, None, "contact.email"),
            (Some("a@b@x.es"), None, None, "contact.email"),
            (None, Some("600123456"), None, "contact.phone"),
            (None, Some("+12345"), None, "contact.phone"),
            (None, Some("+1234567890123456"), None, "contact.phone"),
            (None, Some("+34 6OO"), None, "contact.phone"),
            (None, None, Some("ana pérez"), "contact.handle"),
        ] {
            let e = Contact::parse(None, email, phone, handle).unwrap_err();
            assert_eq!(e.field, field, "{email:?} {phone:?} {handle:?}");
        }
        let long = Contact::parse(None, None, None, Some(&"h".repeat(HANDLE_MAX + 1)));
        assert_eq!(long.unwrap_err().field, "contact.handle");
        let raw = Contact {
            phone: Some("600 123 456".to_owned()),
            ..Contact::default()
        };
        assert_eq!(raw.check().unwrap_err().field, "contact.phone");
        let uncanonical = Contact {
            phone: Some("0034600123456".to_owned()),
            ..Contact::default()
        };
        assert_eq!(uncanonical.check().unwrap_err().field, "contact");
    }
}
