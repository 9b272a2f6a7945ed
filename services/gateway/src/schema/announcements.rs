//! Announcements: staff publish news about the organisation's topics; every
//! confirmed subscriber of those topics is notified, and the chosen linked
//! social accounts post it. `announcement(id)` says how its notifications
//! are going.
//!
//! Staff only, in the principal's tenant; topics and accounts are the
//! tenant's (`NOT_FOUND` otherwise).
//!
//! `announcements` lists them, newest first, as a Relay connection.
//!
//! What this module must not do: decide anything about announcements (the
//! notifications service does), or read a table.

use async_graphql::connection::{Connection, Edge};
use async_graphql::{Context, InputObject, Object, Result, SimpleObject};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ventanilla_tickets::notify::service::{
    AnnouncementView, MAX_ANNOUNCEMENTS_PAGE, PublishRequest,
};

use super::access::{self, services};
use crate::error::{invalid, service_error};

/// A page of announcements (`AnnouncementConnection` in the schema).
pub type AnnouncementConnection = Connection<String, Announcement>;

/// An announcement to publish.
#[derive(InputObject, Debug)]
#[graphql(name = "PublishAnnouncementInput")]
pub struct PublishAnnouncementInput {
    /// Its title.
    pub title: String,
    /// Its text.
    pub body: String,
    /// A link (`http(s)`).
    pub link: Option<String>,
    /// An image (`https`).
    pub image_url: Option<String>,
    /// The topics it is about (the organisation's); their subscribers are
    /// notified.
    #[graphql(default)]
    pub topics: Vec<Uuid>,
    /// Its language (the organisation's default when not given).
    pub language: Option<String>,
    /// The linked social accounts it is also posted to (the
    /// organisation's).
    #[graphql(default)]
    pub accounts: Vec<Uuid>,
    /// Makes a retried request safe: the same key publishes once.
    pub idempotency_key: Option<Uuid>,
}

/// An announcement and how its notifications are going.
#[derive(SimpleObject, Debug)]
pub struct Announcement {
    /// Its id.
    pub id: Uuid,
    /// Its title.
    pub title: String,
    /// Its topics.
    pub topics: Vec<Uuid>,
    /// The linked social accounts it is posted to.
    pub accounts: Vec<Uuid>,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// Notifications queued and not sent yet (digests included).
    pub queued: i64,
    /// Notifications sent.
    pub sent: i64,
    /// Notifications that failed for good.
    pub failed: i64,
}

impl From<AnnouncementView> for Announcement {
    fn from(v: AnnouncementView) -> Self {
        Self {
            id: v.id,
            title: v.title,
            topics: v.topics,
            accounts: v.accounts,
            published_at: v.published_at,
            queued: v.queued,
            sent: v.sent,
            failed: v.failed,
        }
    }
}

/// Reading announcements.
#[derive(Default)]
pub struct AnnouncementsQuery;

#[Object]
impl AnnouncementsQuery {
    /// The organisation's announcements, newest first, each with how its
    /// notifications are going (at most `gateway.max_page_size` a page).
    /// Staff only.
    async fn announcements(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 25)] first: i32,
        after: Option<String>,
    ) -> Result<AnnouncementConnection> {
        let by = access::staff_reader(ctx)?;
        let services = services(ctx)?;
        let max = services.max_page_size.clamp(1, MAX_ANNOUNCEMENTS_PAGE);
        let first = u32::try_from(first)
            .ok()
            .filter(|f| (1..=max).contains(f))
            .ok_or_else(|| invalid("first", format!("first: must be between 1 and {max}")))?;
        let (page, more) = services
            .notifications
            .announcements(by.tenant, first, after.as_deref())
            .await
            .map_err(|e| service_error(&e))?;
        let mut connection = Connection::new(after.is_some(), more);
        connection.edges = page
            .into_iter()
            .map(|(view, cursor)| Edge::new(cursor, Announcement::from(view)))
            .collect();
        Ok(connection)
    }

    /// An announcement of the organisation and how its notifications are
    /// going. Staff only; `NOT_FOUND` when the organisation has no
    /// announcement with this id.
    async fn announcement(&self, ctx: &Context<'_>, id: Uuid) -> Result<Announcement> {
        let by = access::staff_reader(ctx)?;
        services(ctx)?
            .notifications
            .announcement(by.tenant, id)
            .await
            .map(Announcement::from)
            .map_err(|e| service_error(&e))
    }
}

/// Publishing announcements.
#[derive(Default)]
pub struct AnnouncementsMutation;

#[Object]
impl AnnouncementsMutation {
    /// Publishes an announcement: the subscribers of its topics are
    /// notified and the chosen accounts post it. Staff only. Refused with
    /// nothing written: a malformed field (`VALIDATION`), a topic or
    /// account that is not the organisation's (`NOT_FOUND`).
    async fn publish_announcement(
        &self,
        ctx: &Context<'_>,
        input: PublishAnnouncementInput,
    ) -> Result<Announcement> {
        let by = access::staff_writer(ctx)?;
        let request = PublishRequest {
            title: input.title,
            body: input.body,
            link: input.link,
            image_url: input.image_url,
            topics: input.topics,
            language: input.language,
            accounts: input.accounts,
            idempotency_key: input.idempotency_key,
        };
        services(ctx)?
            .notifications
            .publish(by.tenant, by.staff, &request)
            .await
            .map(Announcement::from)
            .map_err(|e| service_error(&e))
    }
}
