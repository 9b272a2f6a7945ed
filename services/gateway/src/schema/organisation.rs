//! The organisation's directory, hours and portal, as an admin keeps them:
//! renaming and removing departments and topics (adding them is in
//! [`super::admin`]), the officials citizens can address, the business
//! hours and holidays the response-time clocks count, and the public
//! portal's settings.
//!
//! Admins only, in the principal's tenant; agents, API keys and the
//! operator are `FORBIDDEN` (the tenants service checks again that the
//! admin is active) — except the officials' list, which staff and API keys
//! read like the rest of the directory. An id that is not the organisation's is `NOT_FOUND`,
//! whoever else it may belong to; malformed input is `VALIDATION` naming
//! the field as the API spells it (`name`, `timeZone`, `week.thursday`,
//! `primaryColour`, `socialLinks`…).
//!
//! Each mutation answers with what it produced, read back after the
//! service's read models caught up (the service waits for them), so a
//! query sent after it sees the change.
//!
//! What this module must not do: decide anything (whether an hour, a name,
//! a colour is acceptable is the tenants service's business; the scalars
//! here only check the shape of a value), or read a table.

use async_graphql::{
    Context, Enum, InputObject, InputValueError, InputValueResult, Object, Result, Scalar,
    ScalarType, SimpleObject, Value,
};
use chrono::{DateTime, Utc};
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_tenants::organisation::{
    self as service, DirectoryView, HolidayView, Interval, OfficialView, PortalView, ScheduleView,
};
use ventanilla_tenants_domain::organisation::{DepartmentId, OfficialId, TopicId};
use ventanilla_tenants_domain::portal::SocialNetwork;

use super::access::{self, services};
use super::admin::{Department, Topic};
use super::health::Date;
use crate::error::{INTERNAL_MESSAGE, code, coded, service_error};

// ---------------------------------------------------------------------------
// Scalars and enums
// ---------------------------------------------------------------------------

/// A wall-clock time of day in the organisation's time zone, `HH:MM` on the
/// 24-hour clock (`09:00`, `16:30`); `24:00` is midnight at the end of a
/// day and only ends an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Time(String);

impl Time {
    /// `HH:MM` with an hour of 00 to 24 and minutes of 00 to 59 (`24:00`
    /// the only time in hour 24). Whether it may start or end an interval
    /// is the service's to say.
    fn is_shaped(s: &str) -> bool {
        let &[h1, h2, b':', m1, m2] = s.as_bytes() else {
            return false;
        };
        if ![h1, h2, m1, m2].iter().all(u8::is_ascii_digit) {
            return false;
        }
        let hour = (h1 - b'0') * 10 + (h2 - b'0');
        let minute = (m1 - b'0') * 10 + (m2 - b'0');
        minute <= 59 && (hour <= 23 || (hour == 24 && minute == 0))
    }
}

/// A wall-clock time of day, `HH:MM` on the 24-hour clock (`09:00`,
/// `16:30`); `24:00` is midnight at the end of a day and only ends an
/// interval.
#[Scalar(name = "Time")]
impl ScalarType for Time {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) if Self::is_shaped(s) => Ok(Time(s.clone())),
            Value::String(s) => Err(InputValueError::custom(format!(
                "{s:?} is not a time of day as HH:MM from 00:00 to 24:00"
            ))),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.clone())
    }
}

/// A day of the week.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weekday {
    /// Monday.
    Monday,
    /// Tuesday.
    Tuesday,
    /// Wednesday.
    Wednesday,
    /// Thursday.
    Thursday,
    /// Friday.
    Friday,
    /// Saturday.
    Saturday,
    /// Sunday.
    Sunday,
}

/// Monday first, as the tenants service orders a week.
const WEEK: [Weekday; 7] = [
    Weekday::Monday,
    Weekday::Tuesday,
    Weekday::Wednesday,
    Weekday::Thursday,
    Weekday::Friday,
    Weekday::Saturday,
    Weekday::Sunday,
];

/// A network or site the portal links to.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocialLinkNetwork {
    /// Facebook.
    Facebook,
    /// Instagram.
    Instagram,
    /// X.
    X,
    /// A Mastodon account.
    Mastodon,
    /// A Telegram channel.
    Telegram,
    /// Bluesky.
    Bluesky,
    /// A WhatsApp channel or number.
    Whatsapp,
    /// YouTube.
    Youtube,
    /// Any other web site.
    Website,
}

impl SocialLinkNetwork {
    /// The service's name of the network.
    fn code(self) -> &'static str {
        match self {
            Self::Facebook => "facebook",
            Self::Instagram => "instagram",
            Self::X => "x",
            Self::Mastodon => "mastodon",
            Self::Telegram => "telegram",
            Self::Bluesky => "bluesky",
            Self::Whatsapp => "whatsapp",
            Self::Youtube => "youtube",
            Self::Website => "website",
        }
    }
}

impl From<SocialNetwork> for SocialLinkNetwork {
    fn from(n: SocialNetwork) -> Self {
        match n {
            SocialNetwork::Facebook => Self::Facebook,
            SocialNetwork::Instagram => Self::Instagram,
            SocialNetwork::X => Self::X,
            SocialNetwork::Mastodon => Self::Mastodon,
            SocialNetwork::Telegram => Self::Telegram,
            SocialNetwork::Bluesky => Self::Bluesky,
            SocialNetwork::WhatsApp => Self::Whatsapp,
            SocialNetwork::Youtube => Self::Youtube,
            SocialNetwork::Website => Self::Website,
        }
    }
}

// ---------------------------------------------------------------------------
// Output types
// ---------------------------------------------------------------------------

/// Someone citizens can address: a person or an office.
#[derive(SimpleObject, Debug)]
pub struct Official {
    /// Their id.
    pub id: Uuid,
    /// Their name ("Alcaldía").
    pub name: String,
    /// Their role ("Alcaldesa").
    pub role: String,
    /// The department they belong to, if any.
    pub department: Option<Department>,
    /// Whether citizens may address public questions to them.
    pub accepts_public_questions: bool,
    /// When they last changed.
    pub updated_at: DateTime<Utc>,
}

impl Official {
    /// `view`, with its department taken from the same `directory` read.
    fn from_view(view: OfficialView, directory: &DirectoryView) -> Self {
        let department = view.department.and_then(|id| {
            directory
                .departments
                .iter()
                .find(|d| d.id == id)
                .cloned()
                .map(Department::from)
        });
        Self {
            id: view.id.0,
            name: view.name,
            role: view.role,
            department,
            accepts_public_questions: view.accepts_public_questions,
            updated_at: view.updated_at,
        }
    }
}

/// One opening interval of a day.
#[derive(SimpleObject, Debug)]
pub struct OpenInterval {
    /// When it opens.
    pub start: Time,
    /// When it closes (`24:00`: at midnight).
    pub end: Time,
}

impl From<Interval> for OpenInterval {
    fn from(i: Interval) -> Self {
        // The service writes midnight at the end of a day as 00:00; 24:00
        // says the same without ambiguity, and is what an end is set with.
        let end = if i.end == "00:00" {
            "24:00".to_owned()
        } else {
            i.end
        };
        Self {
            start: Time(i.start),
            end: Time(end),
        }
    }
}

/// A day of the week and when the organisation is open on it.
#[derive(SimpleObject, Debug)]
pub struct BusinessDay {
    /// The day.
    pub day: Weekday,
    /// Its opening intervals, in order; none when closed all day.
    pub intervals: Vec<OpenInterval>,
}

/// A day the organisation is closed.
#[derive(SimpleObject, Debug)]
pub struct Holiday {
    /// The day, in the organisation's time zone.
    pub date: Date,
    /// Its name.
    pub name: String,
}

impl From<HolidayView> for Holiday {
    fn from(h: HolidayView) -> Self {
        Self {
            date: Date(h.date),
            name: h.name,
        }
    }
}

/// When the organisation is open: what its response-time clocks count.
#[derive(SimpleObject, Debug)]
pub struct BusinessHours {
    /// The IANA time zone the hours are in; null until the hours are set.
    pub time_zone: Option<String>,
    /// The seven days, Monday first; null until the hours are set.
    pub week: Option<Vec<BusinessDay>>,
    /// The holidays, by date.
    pub holidays: Vec<Holiday>,
}

impl From<ScheduleView> for BusinessHours {
    fn from(s: ScheduleView) -> Self {
        let (time_zone, week) = match s.hours {
            Some(hours) => {
                let week = WEEK
                    .into_iter()
                    .zip(hours.week)
                    .map(|(day, intervals)| BusinessDay {
                        day,
                        intervals: intervals.into_iter().map(Into::into).collect(),
                    })
                    .collect();
                (Some(hours.time_zone), Some(week))
            }
            None => (None, None),
        };
        Self {
            time_zone,
            week,
            holidays: s.holidays.into_iter().map(Into::into).collect(),
        }
    }
}

/// A social account the portal links to.
#[derive(SimpleObject, Debug)]
pub struct SocialLink {
    /// Which network.
    pub network: SocialLinkNetwork,
    /// The account's address.
    pub url: String,
}

/// The public portal's look and reach.
#[derive(SimpleObject, Debug)]
pub struct PortalSettings {
    /// The name shown to citizens.
    pub public_name: String,
    /// The logo's address.
    pub logo_url: Option<String>,
    /// The main colour, `#rrggbb`.
    pub primary_colour: String,
    /// The highlight colour, `#rrggbb`.
    pub accent_colour: Option<String>,
    /// The languages offered, in the order shown.
    pub languages: Vec<String>,
    /// The social accounts linked, in the order shown.
    pub social_links: Vec<SocialLink>,
    /// When they were last configured.
    pub updated_at: DateTime<Utc>,
}

impl From<PortalView> for PortalSettings {
    fn from(v: PortalView) -> Self {
        let s = v.settings;
        Self {
            public_name: s.public_name.as_str().to_owned(),
            logo_url: s.logo_url.map(|u| u.as_str().to_owned()),
            primary_colour: s.primary_colour.as_str().to_owned(),
            accent_colour: s.accent_colour.map(|c| c.as_str().to_owned()),
            languages: s.languages.iter().map(|l| l.as_str().to_owned()).collect(),
            social_links: s
                .social_links
                .into_iter()
                .map(|l| SocialLink {
                    network: l.network.into(),
                    url: l.url.as_str().to_owned(),
                })
                .collect(),
            updated_at: v.updated_at,
        }
    }
}

// ---------------------------------------------------------------------------
// Input types
// ---------------------------------------------------------------------------

/// Everything about an official (an update replaces all of it).
#[derive(InputObject, Debug)]
pub struct OfficialInput {
    /// Their name ("Alcaldía").
    pub name: String,
    /// Their role ("Alcaldesa").
    pub role: String,
    /// The department they belong to (one of the organisation's), if any.
    pub department_id: Option<Uuid>,
    /// Whether citizens may address public questions to them.
    #[graphql(default)]
    pub accepts_public_questions: bool,
}

impl OfficialInput {
    fn as_service(&self) -> service::OfficialInput<'_> {
        service::OfficialInput {
            name: &self.name,
            role: &self.role,
            department: self.department_id.map(DepartmentId),
            accepts_public_questions: self.accepts_public_questions,
        }
    }
}

/// One opening interval.
#[derive(InputObject, Debug)]
pub struct OpenIntervalInput {
    /// When it opens.
    pub start: Time,
    /// When it closes, after it opens (`24:00`: at midnight).
    pub end: Time,
}

/// Each day's opening intervals; a day left out is closed all day.
#[derive(InputObject, Debug)]
pub struct WeekInput {
    /// Monday's intervals.
    #[graphql(default)]
    pub monday: Vec<OpenIntervalInput>,
    /// Tuesday's intervals.
    #[graphql(default)]
    pub tuesday: Vec<OpenIntervalInput>,
    /// Wednesday's intervals.
    #[graphql(default)]
    pub wednesday: Vec<OpenIntervalInput>,
    /// Thursday's intervals.
    #[graphql(default)]
    pub thursday: Vec<OpenIntervalInput>,
    /// Friday's intervals.
    #[graphql(default)]
    pub friday: Vec<OpenIntervalInput>,
    /// Saturday's intervals.
    #[graphql(default)]
    pub saturday: Vec<OpenIntervalInput>,
    /// Sunday's intervals.
    #[graphql(default)]
    pub sunday: Vec<OpenIntervalInput>,
}

impl WeekInput {
    /// The week as the service takes it: Monday first, `(start, end)`.
    fn as_service(&self) -> [Vec<(&str, &str)>; 7] {
        [
            &self.monday,
            &self.tuesday,
            &self.wednesday,
            &self.thursday,
            &self.friday,
            &self.saturday,
            &self.sunday,
        ]
        .map(|day| {
            day.iter()
                .map(|i| (i.start.0.as_str(), i.end.0.as_str()))
                .collect()
        })
    }
}

/// The business hours, replaced as a whole (holidays are kept).
#[derive(InputObject, Debug)]
pub struct BusinessHoursInput {
    /// The IANA time zone the hours are in (`Europe/Madrid`,
    /// `Atlantic/Canary`).
    pub time_zone: String,
    /// Each day's opening intervals; the week must open at least once.
    pub week: WeekInput,
}

/// A social account for the portal to link to.
#[derive(InputObject, Debug)]
pub struct SocialLinkInput {
    /// Which network.
    pub network: SocialLinkNetwork,
    /// The account's address (`https://…`).
    pub url: String,
}

/// The portal's settings, replaced as a whole.
#[derive(InputObject, Debug)]
pub struct PortalSettingsInput {
    /// The name shown to citizens.
    pub public_name: String,
    /// The logo's address (`https://…`); none when not given or blank.
    pub logo_url: Option<String>,
    /// The main colour, `#rrggbb`.
    pub primary_colour: String,
    /// A highlight colour, `#rrggbb`; none when not given or blank.
    pub accent_colour: Option<String>,
    /// The language codes offered, in the order shown (`es`, `gl`…): one
    /// at least, each once.
    pub languages: Vec<String>,
    /// The social accounts linked, in the order shown, each once.
    #[graphql(default)]
    pub social_links: Vec<SocialLinkInput>,
}

// ---------------------------------------------------------------------------
// Reads
// ---------------------------------------------------------------------------

/// The organisation's directory (departments, officials, topics) as the
/// read model has it.
pub(super) async fn directory(ctx: &Context<'_>, tenant: TenantId) -> Result<DirectoryView> {
    services(ctx)?
        .organisation
        .directory(tenant)
        .await
        .map_err(|e| service_error(&e))
}

async fn schedule(ctx: &Context<'_>, tenant: TenantId) -> Result<ScheduleView> {
    services(ctx)?
        .organisation
        .business_hours(tenant)
        .await
        .map_err(|e| service_error(&e))
}

async fn portal(ctx: &Context<'_>, tenant: TenantId) -> Result<Option<PortalView>> {
    services(ctx)?
        .organisation
        .portal(tenant)
        .await
        .map_err(|e| service_error(&e))
}

/// The official `id` of `directory`, if it is there.
fn official_in(directory: &DirectoryView, id: Uuid) -> Option<Official> {
    let view = directory.officials.iter().find(|o| o.id.0 == id)?.clone();
    Some(Official::from_view(view, directory))
}

/// Department `id` as the read model now has it (after a change to it).
async fn department_now(ctx: &Context<'_>, tenant: TenantId, id: Uuid) -> Result<Department> {
    directory(ctx, tenant)
        .await?
        .departments
        .into_iter()
        .find(|d| d.id.0 == id)
        .map(Into::into)
        .ok_or_else(|| gone("department", id))
}

/// Topic `id` as the read model now has it (after a change to it).
async fn topic_now(ctx: &Context<'_>, tenant: TenantId, id: Uuid) -> Result<Topic> {
    directory(ctx, tenant)
        .await?
        .topics
        .into_iter()
        .find(|t| t.id.0 == id)
        .map(Into::into)
        .ok_or_else(|| gone("topic", id))
}

/// Something changed a moment ago is not in the read model any more:
/// someone removed it meanwhile.
fn gone(what: &str, id: impl std::fmt::Display) -> async_graphql::Error {
    coded(
        code::NOT_FOUND,
        format!("there is no {what} {id} in this organisation"),
    )
}

/// Something just added is not in the read model, which the service waited
/// for: our fault.
fn not_read_back(what: &str, id: impl std::fmt::Display) -> async_graphql::Error {
    tracing::error!(what, %id, "an entry just added is not in the read model");
    coded(code::INTERNAL, INTERNAL_MESSAGE)
}

// ---------------------------------------------------------------------------
// Resolvers
// ---------------------------------------------------------------------------

/// Admins' reads of the directory, hours and portal.
#[derive(Default)]
pub struct OrganisationQuery;

#[Object]
impl OrganisationQuery {
    /// The organisation's officials, by name, each with their department
    /// (whom a `QUESTION_FOR` ticket may be addressed to). Staff and API
    /// keys.
    async fn officials(&self, ctx: &Context<'_>) -> Result<Vec<Official>> {
        let tenant = access::member(ctx)?;
        let directory = directory(ctx, tenant).await?;
        Ok(directory
            .officials
            .iter()
            .cloned()
            .map(|o| Official::from_view(o, &directory))
            .collect())
    }

    /// When the organisation is open: its time zone, each day's opening
    /// intervals and its holidays. Admins only.
    async fn business_hours(&self, ctx: &Context<'_>) -> Result<BusinessHours> {
        let by = access::admin(ctx)?;
        schedule(ctx, by.tenant).await.map(Into::into)
    }

    /// The public portal's settings; null until they are first configured.
    /// Admins only.
    async fn portal_settings(&self, ctx: &Context<'_>) -> Result<Option<PortalSettings>> {
        let by = access::admin(ctx)?;
        portal(ctx, by.tenant).await.map(|p| p.map(Into::into))
    }
}

/// Admins' changes to the directory, hours and portal.
#[derive(Default)]
pub struct OrganisationMutation;

#[Object]
impl OrganisationMutation {
    /// Renames a department (its description stays). `CONFLICT` when
    /// another one has the name, ignoring case; `NOT_FOUND` when the
    /// organisation has no such department. Admins only.
    async fn rename_department(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        name: String,
    ) -> Result<Department> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .organisation
            .rename_department(by.tenant, by.staff, DepartmentId(id), &name)
            .await
            .map_err(|e| service_error(&e))?;
        department_now(ctx, by.tenant, id).await
    }

    /// Replaces a department's description (its name stays); null or a
    /// blank one clears it. `NOT_FOUND` when the organisation has no such
    /// department; `VALIDATION` past 1,000 characters. Admins only.
    async fn describe_department(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        description: Option<String>,
    ) -> Result<Department> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .organisation
            .describe_department(
                by.tenant,
                by.staff,
                DepartmentId(id),
                description.as_deref(),
            )
            .await
            .map_err(|e| service_error(&e))?;
        department_now(ctx, by.tenant, id).await
    }

    /// Removes a department; `true` once it is gone (removing it again
    /// changes nothing). `CONFLICT` while officials belong to it; move or
    /// remove them first. `NOT_FOUND` when the organisation never had it.
    /// Admins only.
    async fn remove_department(&self, ctx: &Context<'_>, id: Uuid) -> Result<bool> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .organisation
            .remove_department(by.tenant, by.staff, DepartmentId(id))
            .await
            .map_err(|e| service_error(&e))?;
        Ok(true)
    }

    /// Adds an official. `NOT_FOUND` when the department is not one of the
    /// organisation's. Admins only.
    async fn add_official(&self, ctx: &Context<'_>, input: OfficialInput) -> Result<Official> {
        let by = access::admin(ctx)?;
        let id = services(ctx)?
            .organisation
            .add_official(by.tenant, by.staff, &input.as_service())
            .await
            .map_err(|e| service_error(&e))?;
        official_in(&directory(ctx, by.tenant).await?, id.0)
            .ok_or_else(|| not_read_back("official", id.0))
    }

    /// Replaces everything about an official. `NOT_FOUND` when the
    /// organisation has no such official, or the department is not one of
    /// its. Admins only.
    async fn update_official(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        input: OfficialInput,
    ) -> Result<Official> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .organisation
            .update_official(by.tenant, by.staff, OfficialId(id), &input.as_service())
            .await
            .map_err(|e| service_error(&e))?;
        official_in(&directory(ctx, by.tenant).await?, id).ok_or_else(|| gone("official", id))
    }

    /// Removes an official; `true` once they are gone (removing them again
    /// changes nothing). `NOT_FOUND` when the organisation never had them.
    /// Admins only.
    async fn remove_official(&self, ctx: &Context<'_>, id: Uuid) -> Result<bool> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .organisation
            .remove_official(by.tenant, by.staff, OfficialId(id))
            .await
            .map_err(|e| service_error(&e))?;
        Ok(true)
    }

    /// Renames a topic (its description and subscribers stay). `CONFLICT`
    /// when another one has the name, ignoring case; `NOT_FOUND` when the
    /// organisation has no such topic. Admins only.
    async fn rename_topic(&self, ctx: &Context<'_>, id: Uuid, name: String) -> Result<Topic> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .organisation
            .rename_topic(by.tenant, by.staff, TopicId(id), &name)
            .await
            .map_err(|e| service_error(&e))?;
        topic_now(ctx, by.tenant, id).await
    }

    /// Replaces a topic's description, what its subscribers will hear about
    /// (its name and subscribers stay); null or a blank one clears it.
    /// `NOT_FOUND` when the organisation has no such topic; `VALIDATION`
    /// past 1,000 characters. Admins only.
    async fn describe_topic(
        &self,
        ctx: &Context<'_>,
        id: Uuid,
        description: Option<String>,
    ) -> Result<Topic> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .organisation
            .describe_topic(by.tenant, by.staff, TopicId(id), description.as_deref())
            .await
            .map_err(|e| service_error(&e))?;
        topic_now(ctx, by.tenant, id).await
    }

    /// Removes a topic; `true` once it is gone (removing it again changes
    /// nothing). `NOT_FOUND` when the organisation never had it. Admins
    /// only.
    async fn remove_topic(&self, ctx: &Context<'_>, id: Uuid) -> Result<bool> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .organisation
            .remove_topic(by.tenant, by.staff, TopicId(id))
            .await
            .map_err(|e| service_error(&e))?;
        Ok(true)
    }

    /// Replaces the business hours (the holidays stay). `VALIDATION` names
    /// `timeZone`, `week` (never open) or the day whose intervals are wrong
    /// (`week.thursday`: an end before its start, overlapping intervals,
    /// too many). Admins only.
    async fn set_business_hours(
        &self,
        ctx: &Context<'_>,
        input: BusinessHoursInput,
    ) -> Result<BusinessHours> {
        let by = access::admin(ctx)?;
        services(ctx)?
            .organisation
            .set_business_hours(
                by.tenant,
                by.staff,
                &input.time_zone,
                input.week.as_service(),
            )
            .await
            .map_err(|e| service_error(&e))?;
        schedule(ctx, by.tenant).await.map(Into::into)
    }

    /// Declares a holiday: the organisation is closed on `date` (its local
    /// date). `CONFLICT` when the date already is one. Admins only.
    async fn add_holiday(&self, ctx: &Context<'_>, date: Date, name: String) -> Result<Holiday> {
        let by = access::admin(ctx)?;
        let day = date.0.format("%Y-%m-%d").to_string();
        services(ctx)?
            .organisation
            .add_holiday(by.tenant, by.staff, &day, &name)
            .await
            .map_err(|e| service_error(&e))?;
        schedule(ctx, by.tenant)
            .await?
            .holidays
            .into_iter()
            .find(|h| h.date == date.0)
            .map(Into::into)
            .ok_or_else(|| not_read_back("holiday", &day))
    }

    /// Removes the holiday on `date`; `true` once it is gone. `NOT_FOUND`
    /// when the date is not a holiday. Admins only.
    async fn remove_holiday(&self, ctx: &Context<'_>, date: Date) -> Result<bool> {
        let by = access::admin(ctx)?;
        let day = date.0.format("%Y-%m-%d").to_string();
        services(ctx)?
            .organisation
            .remove_holiday(by.tenant, by.staff, &day)
            .await
            .map_err(|e| service_error(&e))?;
        Ok(true)
    }

    /// Replaces the public portal's settings. `VALIDATION` names the field
    /// (`publicName`, `logoUrl`, `primaryColour`, `accentColour`,
    /// `languages`, `socialLinks`). Admins only.
    async fn configure_portal(
        &self,
        ctx: &Context<'_>,
        input: PortalSettingsInput,
    ) -> Result<PortalSettings> {
        let by = access::admin(ctx)?;
        let request = service::PortalInput {
            public_name: &input.public_name,
            logo_url: input.logo_url.as_deref(),
            primary_colour: &input.primary_colour,
            accent_colour: input.accent_colour.as_deref(),
            languages: input.languages.iter().map(String::as_str).collect(),
            social_links: input
                .social_links
                .iter()
                .map(|l| (l.network.code(), l.url.as_str()))
                .collect(),
        };
        services(ctx)?
            .organisation
            .configure_portal(by.tenant, by.staff, &request)
            .await
            .map_err(|e| service_error(&e))?;
        portal(ctx, by.tenant)
            .await?
            .map(Into::into)
            .ok_or_else(|| not_read_back("portal settings", by.tenant))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_hh_mm_up_to_midnight() {
        for good in ["00:00", "09:30", "23:59", "24:00"] {
            assert!(Time::is_shaped(good), "{good}");
        }
        for bad in [
            "9:00", "24:01", "25:00", "09:60", "0900", "09:00:00", "ab:cd", "",
        ] {
            assert!(!Time::is_shaped(bad), "{bad}");
        }
    }
}
