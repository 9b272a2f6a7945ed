//! A tenant's public portal settings: its public name, logo, colours, the
//! languages it is offered in and the social accounts it links to.
//!
//! One [`Portal`] aggregate per tenant, in the stream `portal` owned by the
//! tenant's id. Settings are replaced as a whole (last write wins). This
//! module decides and records them; it must not do I/O, fetch the logo or
//! check that a link resolves: values arrive already parsed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

use crate::values::{Colour, InvalidValue, Language, Name, WebUrl};

/// The longest public name, in characters.
pub const PUBLIC_NAME_MAX: usize = 120;
/// The most languages a portal may offer.
pub const MAX_LANGUAGES: usize = 10;
/// The most social links a portal may show.
pub const MAX_SOCIAL_LINKS: usize = 20;

/// The stream of a tenant's portal settings: `portal`.
pub fn stream_id() -> Result<StreamId, StreamIdError> {
    StreamId::parse("portal")
}

/// A network or site a portal can link to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocialNetwork {
    /// Facebook.
    Facebook,
    /// Instagram.
    Instagram,
    /// X (formerly Twitter).
    X,
    /// A Mastodon account.
    Mastodon,
    /// A Telegram channel.
    Telegram,
    /// Bluesky.
    Bluesky,
    /// A WhatsApp channel or number.
    WhatsApp,
    /// YouTube.
    Youtube,
    /// Any other web site.
    Website,
}

/// One social account the portal links to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocialLink {
    /// Which network.
    pub network: SocialNetwork,
    /// The account's address.
    pub url: WebUrl,
}

/// Everything about the portal's look and reach.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortalSettings {
    /// The name shown to citizens (at most [`PUBLIC_NAME_MAX`] characters).
    pub public_name: Name,
    /// The logo's address.
    pub logo_url: Option<WebUrl>,
    /// The main colour.
    pub primary_colour: Colour,
    /// A second colour for highlights.
    pub accent_colour: Option<Colour>,
    /// The languages offered, in the order shown (1 to [`MAX_LANGUAGES`], no
    /// repeats).
    pub languages: Vec<Language>,
    /// The social accounts linked, in the order shown (at most
    /// [`MAX_SOCIAL_LINKS`], no repeats).
    pub social_links: Vec<SocialLink>,
}

/// The portal aggregate of one tenant.
pub struct Portal;

/// What can be asked of a portal.
#[derive(Debug, Clone, PartialEq)]
pub enum PortalCommand {
    /// Replaces all the settings. Configuring exactly the settings already
    /// recorded is a no-op.
    Configure(PortalSettings),
}

/// The portal was configured (the payload is the whole settings).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Configured {
    /// The new settings.
    pub settings: PortalSettings,
}

/// What the portal records.
#[derive(Debug, Clone, PartialEq)]
pub enum PortalEvent {
    /// `portal.configured`
    Configured(Configured),
}

const CONFIGURED: &str = "portal.configured";

impl DomainEvent for PortalEvent {
    fn event_type(&self) -> &'static str {
        match self {
            Self::Configured(_) => CONFIGURED,
        }
    }

    fn to_data(&self) -> Value {
        match self {
            Self::Configured(p) => serde_json::to_value(p),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        let error = |reason: String| UpcastError {
            event_type: event_type.to_owned(),
            schema_version,
            reason,
        };
        match (event_type, schema_version) {
            (CONFIGURED, 1) => serde_json::from_value(data.clone())
                .map(Self::Configured)
                .map_err(|e| error(e.to_string())),
            (CONFIGURED, _) => Err(error("unknown schema version".to_owned())),
            _ => Err(error("not a portal event".to_owned())),
        }
    }
}

/// Why the portal refuses a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PortalError {
    /// The public name breaks its length limit.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// No language is offered.
    #[error("the portal must offer at least one language")]
    NoLanguages,
    /// More languages than allowed.
    #[error("the portal can offer at most {max} languages")]
    TooManyLanguages {
        /// The limit.
        max: usize,
    },
    /// A language is listed twice.
    #[error("the language {language} is listed twice; list each language once")]
    DuplicateLanguage {
        /// The repeated language.
        language: Language,
    },
    /// More social links than allowed.
    #[error("the portal can show at most {max} social links")]
    TooManyLinks {
        /// The limit.
        max: usize,
    },
    /// The same network and address are listed twice.
    #[error("the {network:?} link {url} is listed twice; list each link once")]
    DuplicateLink {
        /// The network.
        network: SocialNetwork,
        /// The repeated address.
        url: WebUrl,
    },
}

/// What the portal remembers.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PortalState {
    /// The current settings; `None` until first configured.
    pub settings: Option<PortalSettings>,
}

fn validate(settings: &PortalSettings) -> Result<(), PortalError> {
    Name::parse(
        "public_name",
        settings.public_name.as_str(),
        PUBLIC_NAME_MAX,
    )?;
    if settings.languages.is_empty() {
        return Err(PortalError::NoLanguages);
    }
    if settings.languages.len() > MAX_LANGUAGES {
        return Err(PortalError::TooManyLanguages { max: MAX_LANGUAGES });
    }
    for (i, language) in settings.languages.iter().enumerate() {
        if settings.languages[..i].contains(language) {
            return Err(PortalError::DuplicateLanguage {
                language: language.clone(),
            });
        }
    }
    if settings.social_links.len() > MAX_SOCIAL_LINKS {
        return Err(PortalError::TooManyLinks {
            max: MAX_SOCIAL_LINKS,
        });
    }
    for (i, link) in settings.social_links.iter().enumerate() {
        if settings.social_links[..i].contains(link) {
            return Err(PortalError::DuplicateLink {
                network: link.network,
                url: link.url.clone(),
            });
        }
    }
    Ok(())
}

impl Decider for Portal {
    type State = PortalState;
    type Command = PortalCommand;
    type Event = PortalEvent;
    type Error = PortalError;

    fn decide(
        state: &PortalState,
        command: &PortalCommand,
        _now: DateTime<Utc>,
    ) -> Result<Vec<PortalEvent>, PortalError> {
        match command {
            PortalCommand::Configure(settings) => {
                validate(settings)?;
                if state.settings.as_ref() == Some(settings) {
                    return Ok(vec![]);
                }
                Ok(vec![PortalEvent::Configured(Configured {
                    settings: settings.clone(),
                })])
            }
        }
    }

    fn evolve(mut state: PortalState, event: &PortalEvent) -> PortalState {
        match event {
            PortalEvent::Configured(e) => state.settings = Some(e.settings.clone()),
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ventanilla_eventlog::testing::given;

    fn lang(s: &str) -> Language {
        Language::parse("languages", s).unwrap()
    }

    fn url(s: &str) -> WebUrl {
        WebUrl::parse("url", s).unwrap()
    }

    fn settings() -> PortalSettings {
        PortalSettings {
            public_name: Name::parse("public_name", "Concello de Lugo", 120).unwrap(),
            logo_url: Some(url("https://lugo.gal/logo.png")),
            primary_colour: Colour::parse("primary_colour", "#1a5fb4").unwrap(),
            accent_colour: None,
            languages: vec![lang("gl"), lang("es")],
            social_links: vec![
                SocialLink {
                    network: SocialNetwork::Facebook,
                    url: url("https://facebook.com/concellodelugo"),
                },
                SocialLink {
                    network: SocialNetwork::Bluesky,
                    url: url("https://bsky.app/profile/lugo.gal"),
                },
            ],
        }
    }

    fn configured(settings: PortalSettings) -> PortalEvent {
        PortalEvent::Configured(Configured { settings })
    }

    #[test]
    fn the_stream_is_portal() {
        assert_eq!(stream_id().unwrap().as_str(), "portal");
    }

    #[test]
    fn configures_the_portal() {
        given::<Portal>(vec![])
            .when(&PortalCommand::Configure(settings()))
            .then(vec![configured(settings())]);
    }

    #[test]
    fn configuring_identical_settings_is_a_no_op() {
        given::<Portal>(vec![configured(settings())])
            .when(&PortalCommand::Configure(settings()))
            .then(vec![]);
    }

    #[test]
    fn the_last_configuration_wins() {
        let mut changed = settings();
        changed.accent_colour = Some(Colour::parse("accent_colour", "#E01B24").unwrap());
        changed.languages = vec![lang("es"), lang("gl")];
        given::<Portal>(vec![configured(settings())])
            .when(&PortalCommand::Configure(changed.clone()))
            .then(vec![configured(changed.clone())]);
        let state = Portal::fold(&[configured(settings()), configured(changed.clone())]);
        assert_eq!(state.settings, Some(changed));
    }

    #[test]
    fn refuses_an_over_long_public_name() {
        let mut s = settings();
        s.public_name = Name::parse("public_name", &"x".repeat(121), 500).unwrap();
        given::<Portal>(vec![])
            .when(&PortalCommand::Configure(s))
            .then_error(|e| matches!(e, PortalError::Invalid(v) if v.field == "public_name"));
    }

    #[test]
    fn refuses_no_languages() {
        let mut s = settings();
        s.languages = vec![];
        given::<Portal>(vec![])
            .when(&PortalCommand::Configure(s))
            .then_error(|e| *e == PortalError::NoLanguages);
    }

    #[test]
    fn refuses_more_than_ten_languages() {
        let mut s = settings();
        s.languages = [
            "es", "ca", "gl", "eu", "en", "fr", "de", "it", "pt", "ast", "an",
        ]
        .iter()
        .map(|l| lang(l))
        .collect();
        given::<Portal>(vec![])
            .when(&PortalCommand::Configure(s))
            .then_error(|e| *e == PortalError::TooManyLanguages { max: 10 });
    }

    #[test]
    fn refuses_a_duplicate_language() {
        let mut s = settings();
        s.languages = vec![lang("es"), lang("gl"), lang("ES")];
        given::<Portal>(vec![])
            .when(&PortalCommand::Configure(s))
            .then_error(|e| {
                *e == PortalError::DuplicateLanguage {
                    language: lang("es"),
                }
            });
    }

    #[test]
    fn refuses_more_than_twenty_links() {
        let mut s = settings();
        s.social_links = (0..21)
            .map(|i| SocialLink {
                network: SocialNetwork::Website,
                url: url(&format!("https://lugo.gal/{i}")),
            })
            .collect();
        given::<Portal>(vec![])
            .when(&PortalCommand::Configure(s))
            .then_error(|e| *e == PortalError::TooManyLinks { max: 20 });
    }

    #[test]
    fn refuses_a_duplicate_link_but_not_two_accounts_on_one_network() {
        let mut s = settings();
        s.social_links.push(SocialLink {
            network: SocialNetwork::Facebook,
            url: url("https://facebook.com/concellodelugo"),
        });
        given::<Portal>(vec![])
            .when(&PortalCommand::Configure(s))
            .then_error(|e| {
                *e == PortalError::DuplicateLink {
                    network: SocialNetwork::Facebook,
                    url: url("https://facebook.com/concellodelugo"),
                }
            });
        let mut s = settings();
        s.social_links.push(SocialLink {
            network: SocialNetwork::Facebook,
            url: url("https://facebook.com/turismolugo"),
        });
        given::<Portal>(vec![])
            .when(&PortalCommand::Configure(s.clone()))
            .then(vec![configured(s)]);
    }

    #[test]
    fn networks_are_stored_in_lowercase() {
        let names: Vec<Value> = [
            SocialNetwork::Facebook,
            SocialNetwork::Instagram,
            SocialNetwork::X,
            SocialNetwork::Mastodon,
            SocialNetwork::Telegram,
            SocialNetwork::Bluesky,
            SocialNetwork::WhatsApp,
            SocialNetwork::Youtube,
            SocialNetwork::Website,
        ]
        .iter()
        .map(|n| serde_json::to_value(n).unwrap())
        .collect();
        assert_eq!(
            names,
            [
                "facebook",
                "instagram",
                "x",
                "mastodon",
                "telegram",
                "bluesky",
                "whatsapp",
                "youtube",
                "website"
            ]
            .map(Value::from)
        );
    }

    #[test]
    fn every_event_survives_storage() {
        let event = configured(settings());
        assert_eq!(event.event_type(), "portal.configured");
        let back =
            PortalEvent::from_stored(event.event_type(), event.schema_version(), &event.to_data())
                .unwrap();
        assert_eq!(back, event);
    }

    #[test]
    fn refuses_unknown_stored_events() {
        let data = configured(settings()).to_data();
        assert!(PortalEvent::from_stored("portal.exploded", 1, &data).is_err());
        assert!(PortalEvent::from_stored(CONFIGURED, 2, &data).is_err());
        assert!(PortalEvent::from_stored(CONFIGURED, 1, &serde_json::json!({})).is_err());
    }

    #[test]
    fn error_messages_are_lowercase_without_a_trailing_period() {
        for e in [
            PortalError::Invalid(InvalidValue::new("public_name", "must not be empty")),
            PortalError::NoLanguages,
            PortalError::TooManyLanguages { max: 10 },
            PortalError::DuplicateLanguage {
                language: lang("es"),
            },
            PortalError::TooManyLinks { max: 20 },
            PortalError::DuplicateLink {
                network: SocialNetwork::X,
                url: url("https://x.com/lugo"),
            },
        ] {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }
}
