//! An announcement the council publishes once, stream
//! `announcement-<uuid>`: title, body, an optional link and image, the
//! topics it is about, its language, and the linked social accounts it is
//! also posted to. Publishing it is the event that (a) notifies every
//! confirmed subscriber of those topics and (b) asks the social service to
//! post it on the chosen accounts — both reactors of issue #5, not built
//! yet; this module is the decision.
//!
//! What this module must not do: read a clock, look up topics or accounts
//! (the service says whether they are the tenant's), or send anything.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::web::{Schemes, web_url};
use ventanilla_kernel::{StreamId, StreamIdError, uuid_newtype};

use crate::subscription::TopicId;
use crate::values::{AgentId, InvalidValue};

uuid_newtype!(
    /// Identifies an announcement within the tenant.
    AnnouncementId
);

/// The longest title, in characters.
pub const TITLE_MAX: usize = 200;
/// The longest body, in characters.
pub const BODY_MAX: usize = 10_000;
/// The most topics an announcement is about.
pub const TOPICS_MAX: usize = 20;

/// The stream of an announcement: `announcement-<uuid>`.
pub fn stream_id(id: AnnouncementId) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("announcement", id.0)
}

/// What is published, already validated by [`Publish::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// A link, `http(s)`.
    pub link: Option<String>,
    /// An image, `https`.
    pub image_url: Option<String>,
    /// The topics it is about (at least one, the tenant's).
    pub topics: Vec<TopicId>,
    /// Its language (`es`, `gl`…).
    pub language: String,
    /// The linked social accounts it is also posted to (the tenant's).
    pub accounts: Vec<Uuid>,
    /// Who publishes it.
    pub by: AgentId,
    /// Whether every topic and account is the tenant's (the service looks).
    pub all_known: bool,
}

/// The link or image as checked by the one rule every service shares
/// ([`ventanilla_kernel::web`]): trimmed, its scheme in lower case.
fn url_ok(
    field: &'static str,
    url: Option<&String>,
    https_only: bool,
) -> Result<Option<String>, InvalidValue> {
    let Some(url) = url else {
        return Ok(None);
    };
    let schemes = if https_only {
        Schemes::HttpsOnly
    } else {
        Schemes::Web
    };
    web_url(url, schemes)
        .map(Some)
        .map_err(|e| InvalidValue::new(field, e.to_string()))
}

fn text_ok(field: &'static str, text: &str, max: usize) -> Result<(), InvalidValue> {
    let chars = text.chars().count();
    if text.trim().is_empty() || chars > max {
        return Err(InvalidValue::new(
            field,
            format!("must be 1 to {max} characters, got {chars}"),
        ));
    }
    Ok(())
}

impl Publish {
    /// Checks every field, naming the first that is wrong.
    pub fn check(&self) -> Result<(), InvalidValue> {
        text_ok("title", &self.title, TITLE_MAX)?;
        text_ok("body", &self.body, BODY_MAX)?;
        url_ok("link", self.link.as_ref(), false)?;
        url_ok("image_url", self.image_url.as_ref(), true)?;
        if self.topics.is_empty() || self.topics.len() > TOPICS_MAX {
            return Err(InvalidValue::new(
                "topics",
                format!("choose 1 to {TOPICS_MAX} topics"),
            ));
        }
        let l = self.language.trim();
        if !(2..=8).contains(&l.len()) || !l.chars().all(|c| c.is_ascii_alphabetic() || c == '-') {
            return Err(InvalidValue::new(
                "language",
                "must be a language tag like es or gl",
            ));
        }
        Ok(())
    }
}

/// `announcement.published`: the announcement, as its readers need it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// A link.
    pub link: Option<String>,
    /// An image.
    pub image_url: Option<String>,
    /// Its topics, without repeats, in order.
    pub topics: Vec<TopicId>,
    /// Its language.
    pub language: String,
    /// The social accounts it goes to, without repeats, in order.
    pub accounts: Vec<Uuid>,
    /// Who published it.
    pub by: AgentId,
    /// When.
    pub at: DateTime<Utc>,
}

/// What an announcement's stream records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnnouncementEvent {
    /// `announcement.published`
    Published(Published),
}

const PUBLISHED: &str = "announcement.published";

impl DomainEvent for AnnouncementEvent {
    fn event_type(&self) -> &'static str {
        PUBLISHED
    }

    fn to_data(&self) -> Value {
        let AnnouncementEvent::Published(p) = self;
        serde_json::to_value(p).unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        if event_type != PUBLISHED {
            return Err(UpcastError {
                event_type: event_type.to_owned(),
                schema_version,
                reason: "not an announcement event type".to_owned(),
            });
        }
        Ok(Self::Published(ventanilla_eventlog::decode_payload(
            event_type,
            schema_version,
            1,
            data,
        )?))
    }
}

/// Why an announcement is refused. Nothing is written when it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnnouncementError {
    /// A malformed field; names it.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// A topic or account that is not the tenant's.
    #[error("a topic or account is not this organisation's; choose from its own")]
    Unknown,
    /// Published already (with other content).
    #[error("the announcement was published already; publish a new one")]
    AlreadyPublished,
}

/// The aggregate: published once.
pub struct Announcement;

/// Without repeats, first occurrence kept.
fn unique<T: PartialEq + Copy>(items: &[T]) -> Vec<T> {
    let mut out: Vec<T> = Vec::with_capacity(items.len());
    for i in items {
        if !out.contains(i) {
            out.push(*i);
        }
    }
    out
}

impl Decider for Announcement {
    type State = Option<Published>;
    type Command = Publish;
    type Event = AnnouncementEvent;
    type Error = AnnouncementError;

    fn decide(
        state: &Option<Published>,
        p: &Publish,
        now: DateTime<Utc>,
    ) -> Result<Vec<AnnouncementEvent>, AnnouncementError> {
        if let Some(done) = state {
            let same =
                done.title == p.title && done.body == p.body && done.topics == unique(&p.topics);
            return if same {
                Ok(vec![])
            } else {
                Err(AnnouncementError::AlreadyPublished)
            };
        }
        p.check()?;
        if !p.all_known {
            return Err(AnnouncementError::Unknown);
        }
        Ok(vec![AnnouncementEvent::Published(Published {
            title: p.title.trim().to_owned(),
            body: p.body.clone(),
            link: url_ok("link", p.link.as_ref(), false)?,
            image_url: url_ok("image_url", p.image_url.as_ref(), true)?,
            topics: unique(&p.topics),
            language: p.language.trim().to_ascii_lowercase(),
            accounts: unique(&p.accounts),
            by: p.by,
            at: now,
        })])
    }

    fn evolve(_: Option<Published>, event: &AnnouncementEvent) -> Option<Published> {
        let AnnouncementEvent::Published(p) = event;
        Some(p.clone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::TimeZone;
    use ventanilla_eventlog::testing::given;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap()
    }

    fn camps() -> Publish {
        Publish {
            title: "Abre la inscripción de los campamentos".into(),
            body: "Del 1 al 15 de junio, en la sede electrónica.".into(),
            link: Some("https://villademo.es/campamentos".into()),
            image_url: None,
            topics: vec![TopicId(Uuid::from_u128(1)), TopicId(Uuid::from_u128(1))],
            language: "es".into(),
            accounts: vec![Uuid::from_u128(9)],
            by: AgentId(Uuid::from_u128(7)),
            all_known: true,
        }
    }

    #[test]
    fn an_announcement_is_published_once() {
        let events = given::<Announcement>(vec![])
            .at(now())
            .when(&camps())
            .into_result()
            .unwrap();
        let AnnouncementEvent::Published(p) = &events[0];
        assert_eq!(
            p.topics,
            vec![TopicId(Uuid::from_u128(1))],
            "without repeats"
        );
        given::<Announcement>(events.clone())
            .when(&camps())
            .then(vec![]);
        let mut other = camps();
        other.title = "Otra cosa".into();
        given::<Announcement>(events.clone())
            .when(&other)
            .then_error(|e| *e == AnnouncementError::AlreadyPublished);
        let e = &events[0];
        assert_eq!(
            AnnouncementEvent::from_stored(e.event_type(), 1, &e.to_data()).unwrap(),
            *e
        );
    }

    #[test]
    fn links_are_recorded_as_every_service_reads_them() {
        let mut shouted = camps();
        shouted.link = Some(" HTTPS://Villademo.es/Campamentos ".into());
        shouted.image_url = Some("Https://villademo.es/cartel.png".into());
        let events = given::<Announcement>(vec![])
            .at(now())
            .when(&shouted)
            .into_result()
            .unwrap();
        let AnnouncementEvent::Published(p) = &events[0];
        assert_eq!(p.link.as_deref(), Some("https://Villademo.es/Campamentos"));
        assert_eq!(
            p.image_url.as_deref(),
            Some("https://villademo.es/cartel.png")
        );
    }

    #[test]
    fn bad_announcements_are_refused_naming_the_field() {
        type Change = Box<dyn Fn(&mut Publish)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|p| p.title = " ".into()), "title"),
            (Box::new(|p| p.body = "x".repeat(BODY_MAX + 1)), "body"),
            (
                Box::new(|p| p.link = Some("javascript:alert(1)".into())),
                "link",
            ),
            (
                Box::new(|p| p.image_url = Some("http://inseguro.example/a.png".into())),
                "image_url",
            ),
            (Box::new(|p| p.topics.clear()), "topics"),
            (Box::new(|p| p.language = "español".into()), "language"),
        ];
        for (change, field) in cases {
            let mut p = camps();
            change(&mut p);
            given::<Announcement>(vec![])
                .when(&p)
                .then_error(|e| matches!(e, AnnouncementError::Invalid(v) if v.field == field));
        }
        let mut foreign = camps();
        foreign.all_known = false;
        given::<Announcement>(vec![])
            .when(&foreign)
            .then_error(|e| *e == AnnouncementError::Unknown);
    }
}
