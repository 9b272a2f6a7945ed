//! The organisation a citizen can address, as a tenant's admin sets it up:
//! the directory (departments, officials, topics), business hours and
//! holidays, and the portal's settings.
//!
//! - [`Organisation`] is the service: every change is made by an active
//!   admin of an active tenant, parses raw input into the domain's validated
//!   values (a refusal names the field), runs the `Directory`, `Schedule` or
//!   `Portal` decider through the [`CommandRunner`], and waits until the
//!   read models show the change (read-your-writes). It decides nothing
//!   itself.
//! - [`OrganisationProjection`] (`organisation`) keeps the read models
//!   `departments`, `officials`, `topics`, `business_hours`, `holidays` and
//!   `portal_settings` (`migrations/0007_organisation.sql`); removed entries
//!   are deleted from them. The public portal and the tickets service read
//!   them through [`Organisation::directory`], [`Organisation::official`],
//!   [`Organisation::business_hours`] and [`Organisation::portal`], or the
//!   query functions of this module inside their own tenant transaction.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;
use ventanilla_eventlog::{
    CommandContext, CommandError, CommandRunner, Decider, DomainEvent, Position, RecordedEvent,
};
use ventanilla_kernel::{Actor, StreamId, StreamIdError, TenantId};
use ventanilla_postgres::projection::{Projection, settle};
use ventanilla_postgres::sqlx::PgPool;
use ventanilla_postgres::{Handler, PgEventLog, TenantTx, begin_for_tenant};
use ventanilla_tenants_domain::organisation::{
    self as directory, DepartmentId, Directory, DirectoryCommand, DirectoryError, DirectoryEvent,
    DirectoryState, OfficialId, TopicId,
};
use ventanilla_tenants_domain::portal::{
    self, Portal, PortalCommand, PortalError, PortalEvent, PortalSettings, SocialLink,
    SocialNetwork,
};
use ventanilla_tenants_domain::schedule::{
    self, Holiday, OpenInterval, Schedule, ScheduleCommand, ScheduleError, ScheduleEvent,
};
use ventanilla_tenants_domain::staff::{self, Role, StaffId, StaffMember, StaffStatus};
use ventanilla_tenants_domain::tenant::{self, Tenant};
use ventanilla_tenants_domain::values::{Colour, InvalidValue, Language, Name, TimeZone, WebUrl};

use crate::access::{self, AccessError};

/// How long a change waits for the read models to show it.
pub const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(15);

/// The read models of this part of the service.
pub fn projections() -> Vec<Arc<dyn Projection>> {
    vec![Arc::new(OrganisationProjection)]
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Why a change to the organisation was refused. Messages say what to fix;
/// [`OrganisationError::code`] gives the API error code.
#[derive(Debug, thiserror::Error)]
pub enum OrganisationError {
    /// Malformed input; names the field (`VALIDATION`).
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// The caller is not an active admin of the tenant (`FORBIDDEN`).
    #[error(
        "only an active admin of this organisation may change its directory, hours or portal; ask one of its admins"
    )]
    Forbidden,
    /// The tenant is suspended or does not exist (`TENANT_SUSPENDED`,
    /// `NOT_FOUND`).
    #[error(transparent)]
    Access(#[from] AccessError),
    /// The directory refused: a name taken, an id unknown or in use, a
    /// department still staffed, a limit reached (`CONFLICT`, `NOT_FOUND`).
    #[error(transparent)]
    Directory(DirectoryError),
    /// The schedule refused: a holiday already declared or unknown, too many
    /// holidays (`CONFLICT`, `NOT_FOUND`).
    #[error(transparent)]
    Schedule(ScheduleError),
    /// Others kept changing the same record; try again (`CONFLICT`).
    #[error("the record changed while the command ran; try again")]
    Conflict,
    /// Anything else (`INTERNAL`).
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl OrganisationError {
    /// The stable error code the API reports.
    pub fn code(&self) -> &'static str {
        match self {
            OrganisationError::Invalid(_) => "VALIDATION",
            OrganisationError::Forbidden => "FORBIDDEN",
            OrganisationError::Access(e) => e.code(),
            OrganisationError::Directory(e) => match e {
                DirectoryError::Invalid(_) => "VALIDATION",
                DirectoryError::UnknownDepartment { .. }
                | DirectoryError::UnknownOfficial { .. }
                | DirectoryError::UnknownTopic { .. } => "NOT_FOUND",
                DirectoryError::DuplicateName { .. }
                | DirectoryError::IdInUse { .. }
                | DirectoryError::DepartmentHasOfficials { .. }
                | DirectoryError::TooMany { .. }
                | DirectoryError::OfficialNotAcceptingQuestions { .. } => "CONFLICT",
            },
            OrganisationError::Schedule(e) => match e {
                ScheduleError::UnknownHoliday { .. } => "NOT_FOUND",
                ScheduleError::DuplicateHoliday { .. } | ScheduleError::TooManyHolidays { .. } => {
                    "CONFLICT"
                }
                ScheduleError::Invalid(_)
                | ScheduleError::InvalidInterval { .. }
                | ScheduleError::TooManyIntervals { .. }
                | ScheduleError::NoOpenHours => "VALIDATION",
            },
            OrganisationError::Conflict => "CONFLICT",
            OrganisationError::Unexpected(_) => "INTERNAL",
        }
    }

    /// The input field a `VALIDATION` refusal is about.
    pub fn field(&self) -> Option<&'static str> {
        match self {
            OrganisationError::Invalid(v) => Some(v.field),
            OrganisationError::Directory(DirectoryError::Invalid(v))
            | OrganisationError::Schedule(ScheduleError::Invalid(v)) => Some(v.field),
            _ => None,
        }
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<CommandError<E>> for OrganisationError
where
    OrganisationError: From<E>,
{
    fn from(e: CommandError<E>) -> Self {
        match e {
            CommandError::Domain(e) => e.into(),
            CommandError::Conflict { .. } => OrganisationError::Conflict,
            CommandError::Invalid(e) => OrganisationError::Unexpected(e.into()),
            CommandError::Unexpected(e) => OrganisationError::Unexpected(e),
        }
    }
}

impl From<DirectoryError> for OrganisationError {
    fn from(e: DirectoryError) -> Self {
        match e {
            DirectoryError::Invalid(v) => OrganisationError::Invalid(v),
            other => OrganisationError::Directory(other),
        }
    }
}

/// The field of one weekday's intervals, Monday first.
const DAY_FIELDS: [&str; 7] = [
    "week.monday",
    "week.tuesday",
    "week.wednesday",
    "week.thursday",
    "week.friday",
    "week.saturday",
    "week.sunday",
];

fn day_field(weekday: Weekday) -> &'static str {
    DAY_FIELDS
        .get(weekday.num_days_from_monday() as usize)
        .copied()
        .unwrap_or("week")
}

impl From<ScheduleError> for OrganisationError {
    fn from(e: ScheduleError) -> Self {
        match e {
            ScheduleError::Invalid(v) => OrganisationError::Invalid(v),
            ScheduleError::InvalidInterval { weekday, .. }
            | ScheduleError::TooManyIntervals { weekday, .. } => {
                OrganisationError::Invalid(InvalidValue::new(day_field(weekday), e.to_string()))
            }
            ScheduleError::NoOpenHours => {
                OrganisationError::Invalid(InvalidValue::new("week", e.to_string()))
            }
            other => OrganisationError::Schedule(other),
        }
    }
}

impl From<PortalError> for OrganisationError {
    fn from(e: PortalError) -> Self {
        let field = match &e {
            PortalError::Invalid(v) => return OrganisationError::Invalid(v.clone()),
            PortalError::NoLanguages
            | PortalError::TooManyLanguages { .. }
            | PortalError::DuplicateLanguage { .. } => "languages",
            PortalError::TooManyLinks { .. } | PortalError::DuplicateLink { .. } => "social_links",
        };
        OrganisationError::Invalid(InvalidValue::new(field, e.to_string()))
    }
}

impl From<StreamIdError> for OrganisationError {
    fn from(e: StreamIdError) -> Self {
        OrganisationError::Unexpected(e.into())
    }
}

impl From<sqlx::Error> for OrganisationError {
    fn from(e: sqlx::Error) -> Self {
        OrganisationError::Unexpected(e.into())
    }
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

/// An official as typed by an admin.
#[derive(Debug, Clone, Copy, Default)]
pub struct OfficialInput<'a> {
    /// The person's or office's name, e.g. "Alcaldía".
    pub name: &'a str,
    /// Their role, e.g. "Alcaldesa".
    pub role: &'a str,
    /// The department they belong to, if any.
    pub department: Option<DepartmentId>,
    /// Whether citizens may address public questions to them.
    pub accepts_public_questions: bool,
}

/// The portal's settings as typed by an admin.
#[derive(Debug, Clone, Default)]
pub struct PortalInput<'a> {
    /// The name shown to citizens.
    pub public_name: &'a str,
    /// The logo's address (`https://…`); blank for none.
    pub logo_url: Option<&'a str>,
    /// The main colour, `#rrggbb`.
    pub primary_colour: &'a str,
    /// A highlight colour, `#rrggbb`; blank for none.
    pub accent_colour: Option<&'a str>,
    /// Language codes offered, in order (`es`, `gl`, `ca`…).
    pub languages: Vec<&'a str>,
    /// Social links as `(network, url)`: network is one of facebook,
    /// instagram, x, mastodon, telegram, bluesky, whatsapp, youtube, website.
    pub social_links: Vec<(&'a str, &'a str)>,
}

/// `None` for a missing or blank optional input.
fn non_blank(value: Option<&str>) -> Option<&str> {
    value.filter(|v| !v.trim().is_empty())
}

fn parse_description(value: Option<&str>) -> Result<Option<Name>, InvalidValue> {
    non_blank(value)
        .map(|d| Name::parse("description", d, directory::DESCRIPTION_MAX))
        .transpose()
}

/// Parses `HH:MM` (24-hour clock). `24:00` is accepted as an end and means
/// midnight at the end of the day, which the schedule writes as 00:00.
fn parse_time(field: &'static str, value: &str, is_end: bool) -> Result<NaiveTime, InvalidValue> {
    let v = value.trim();
    let bad = || {
        InvalidValue::new(
            field,
            format!(
                "{v:?} is not a time of day as HH:MM from 00:00 to 23:59 (24:00 may close a day)"
            ),
        )
    };
    let (h, m) = v.split_once(':').ok_or_else(bad)?;
    let digits = |s: &str| s.len() == 2 && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(h) || !digits(m) {
        return Err(bad());
    }
    let hour: u32 = h.parse().map_err(|_| bad())?;
    let minute: u32 = m.parse().map_err(|_| bad())?;
    if is_end && hour == 24 && minute == 0 {
        return Ok(NaiveTime::MIN);
    }
    NaiveTime::from_hms_opt(hour, minute, 0).ok_or_else(bad)
}

/// Parses a week of `(start, end)` pairs, Monday first; each day's refusal
/// names `week.<day>`.
fn parse_week(
    week: &[Vec<(&str, &str)>; 7],
) -> Result<[Vec<(NaiveTime, NaiveTime)>; 7], InvalidValue> {
    let mut parsed: [Vec<(NaiveTime, NaiveTime)>; 7] = Default::default();
    for ((slot, day), field) in parsed.iter_mut().zip(week).zip(DAY_FIELDS) {
        *slot = day
            .iter()
            .map(|(start, end)| {
                Ok((
                    parse_time(field, start, false)?,
                    parse_time(field, end, true)?,
                ))
            })
            .collect::<Result<_, InvalidValue>>()?;
    }
    Ok(parsed)
}

/// Parses a local date as `YYYY-MM-DD`.
fn parse_date(field: &'static str, value: &str) -> Result<NaiveDate, InvalidValue> {
    let v = value.trim();
    let shaped = v.len() == 10
        && v.bytes().enumerate().all(|(i, b)| {
            if i == 4 || i == 7 {
                b == b'-'
            } else {
                b.is_ascii_digit()
            }
        });
    shaped
        .then(|| NaiveDate::parse_from_str(v, "%Y-%m-%d").ok())
        .flatten()
        .ok_or_else(|| {
            InvalidValue::new(
                field,
                format!("{v:?} is not a date as YYYY-MM-DD, such as 2027-01-06"),
            )
        })
}

fn parse_network(value: &str) -> Result<SocialNetwork, InvalidValue> {
    let v = value.trim().to_lowercase();
    serde_json::from_value(serde_json::Value::String(v.clone())).map_err(|_| {
        InvalidValue::new(
            "social_links",
            format!(
                "{v:?} is not a network; use facebook, instagram, x, mastodon, telegram, bluesky, whatsapp, youtube or website"
            ),
        )
    })
}

fn parse_portal(input: &PortalInput<'_>) -> Result<PortalSettings, InvalidValue> {
    Ok(PortalSettings {
        public_name: Name::parse("public_name", input.public_name, portal::PUBLIC_NAME_MAX)?,
        logo_url: non_blank(input.logo_url)
            .map(|u| WebUrl::parse("logo_url", u))
            .transpose()?,
        primary_colour: Colour::parse("primary_colour", input.primary_colour)?,
        accent_colour: non_blank(input.accent_colour)
            .map(|c| Colour::parse("accent_colour", c))
            .transpose()?,
        languages: input
            .languages
            .iter()
            .map(|l| Language::parse("languages", l))
            .collect::<Result<_, _>>()?,
        social_links: input
            .social_links
            .iter()
            .map(|(network, url)| {
                Ok(SocialLink {
                    network: parse_network(network)?,
                    url: WebUrl::parse("social_links", url)?,
                })
            })
            .collect::<Result<_, InvalidValue>>()?,
    })
}

// ---------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------

/// A tenant admin's side of the organisation, and the reads of it.
pub struct Organisation {
    runner: CommandRunner<PgEventLog>,
    pool: PgPool,
}

impl Organisation {
    /// The service, writing to `log` (and reading the read models through
    /// its pool).
    pub fn new(log: Arc<PgEventLog>) -> Self {
        let pool = log.pool().clone();
        Self {
            runner: CommandRunner::new(log, 5),
            pool,
        }
    }

    fn ctx(tenant: TenantId, by: StaffId) -> CommandContext {
        CommandContext::new(tenant, Utc::now(), Actor::Staff { id: by.to_string() })
    }

    /// Succeeds when `tenant` is active and `by` is one of its active
    /// admins. Reads the streams, not a read model, so a suspension or a
    /// demotion a moment ago counts.
    async fn authorize(&self, tenant: TenantId, by: StaffId) -> Result<(), OrganisationError> {
        access::ensure_active(&self.runner, tenant).await?;
        let (_, events) = self
            .runner
            .load::<StaffMember>(tenant, &staff::stream_id(by)?)
            .await
            .map_err(|e| OrganisationError::Unexpected(e.into()))?;
        let member = StaffMember::fold(&events);
        if member.role == Some(Role::Admin) && member.status == Some(StaffStatus::Active) {
            Ok(())
        } else {
            Err(OrganisationError::Forbidden)
        }
    }

    /// Runs one command on `stream` and returns the position it wrote at
    /// (`None` when it changed nothing).
    async fn run<D: Decider>(
        &self,
        ctx: &CommandContext,
        stream: &StreamId,
        command: &D::Command,
    ) -> Result<(D::State, Option<Position>), OrganisationError>
    where
        OrganisationError: From<D::Error>,
    {
        let done = self.runner.execute::<D>(ctx, stream, command).await?;
        Ok((done.state, done.position))
    }

    /// Loads the current state of one of the tenant's aggregates.
    async fn state<D: Decider>(
        &self,
        tenant: TenantId,
        stream: &StreamId,
    ) -> Result<D::State, OrganisationError>
    where
        OrganisationError: From<D::Error>,
    {
        let (_, events) = self.runner.load::<D>(tenant, stream).await?;
        Ok(D::fold(&events))
    }

    /// Waits until the read models show everything up to `position`, so
    /// that the caller's next read sees its change. The change is recorded
    /// whatever happens here: if the projection is late (its process
    /// unhealthy) this only logs a warning.
    async fn settle(&self, position: Option<Position>) {
        settle(
            Arc::clone(self.runner.log()),
            self.pool.clone(),
            Arc::new(OrganisationProjection),
            position,
            CATCH_UP_TIMEOUT,
        )
        .await;
    }

    async fn change_directory(
        &self,
        tenant: TenantId,
        by: StaffId,
        command: DirectoryCommand,
    ) -> Result<(), OrganisationError> {
        let (_, position) = self
            .run::<Directory>(&Self::ctx(tenant, by), &directory::stream_id()?, &command)
            .await?;
        self.settle(position).await;
        Ok(())
    }

    async fn change_schedule(
        &self,
        tenant: TenantId,
        by: StaffId,
        command: ScheduleCommand,
    ) -> Result<(), OrganisationError> {
        let (_, position) = self
            .run::<Schedule>(&Self::ctx(tenant, by), &schedule::stream_id()?, &command)
            .await?;
        self.settle(position).await;
        Ok(())
    }

    /// Adds a department; returns its new id. Refused (`CONFLICT`) when a
    /// live department already has the name, ignoring case.
    pub async fn add_department(
        &self,
        tenant: TenantId,
        by: StaffId,
        name: &str,
        description: Option<&str>,
    ) -> Result<DepartmentId, OrganisationError> {
        self.authorize(tenant, by).await?;
        let id = DepartmentId(Uuid::new_v4());
        let command = DirectoryCommand::AddDepartment {
            id,
            name: Name::parse("name", name, directory::NAME_MAX)?,
            description: parse_description(description)?,
        };
        self.change_directory(tenant, by, command).await?;
        Ok(id)
    }

    /// Renames a department.
    pub async fn rename_department(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: DepartmentId,
        name: &str,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        let name = Name::parse("name", name, directory::NAME_MAX)?;
        self.change_directory(tenant, by, DirectoryCommand::RenameDepartment { id, name })
            .await
    }

    /// Replaces a department's description; `None` or a blank one clears
    /// it. Its name stays.
    pub async fn describe_department(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: DepartmentId,
        description: Option<&str>,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        let description = parse_description(description)?;
        self.change_directory(
            tenant,
            by,
            DirectoryCommand::DescribeDepartment { id, description },
        )
        .await
    }

    /// Removes a department; refused (`CONFLICT`) while officials belong to
    /// it. Removing it again is a no-op.
    pub async fn remove_department(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: DepartmentId,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        self.change_directory(tenant, by, DirectoryCommand::RemoveDepartment { id })
            .await
    }

    /// Adds an official; returns their new id. Refused (`NOT_FOUND`) when
    /// the department is not a live one.
    pub async fn add_official(
        &self,
        tenant: TenantId,
        by: StaffId,
        official: &OfficialInput<'_>,
    ) -> Result<OfficialId, OrganisationError> {
        self.authorize(tenant, by).await?;
        let id = OfficialId(Uuid::new_v4());
        let command = DirectoryCommand::AddOfficial {
            id,
            name: Name::parse("name", official.name, directory::NAME_MAX)?,
            role: Name::parse("role", official.role, directory::NAME_MAX)?,
            department: official.department,
            accepts_public_questions: official.accepts_public_questions,
        };
        self.change_directory(tenant, by, command).await?;
        Ok(id)
    }

    /// Replaces everything about an official.
    pub async fn update_official(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: OfficialId,
        official: &OfficialInput<'_>,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        let command = DirectoryCommand::UpdateOfficial {
            id,
            name: Name::parse("name", official.name, directory::NAME_MAX)?,
            role: Name::parse("role", official.role, directory::NAME_MAX)?,
            department: official.department,
            accepts_public_questions: official.accepts_public_questions,
        };
        self.change_directory(tenant, by, command).await
    }

    /// Removes an official. Removing them again is a no-op.
    pub async fn remove_official(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: OfficialId,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        self.change_directory(tenant, by, DirectoryCommand::RemoveOfficial { id })
            .await
    }

    /// Adds a topic citizens can subscribe to; returns its new id. Refused
    /// (`CONFLICT`) when a live topic already has the name, ignoring case.
    pub async fn add_topic(
        &self,
        tenant: TenantId,
        by: StaffId,
        name: &str,
        description: Option<&str>,
    ) -> Result<TopicId, OrganisationError> {
        self.authorize(tenant, by).await?;
        let id = TopicId(Uuid::new_v4());
        let command = DirectoryCommand::AddTopic {
            id,
            name: Name::parse("name", name, directory::TOPIC_NAME_MAX)?,
            description: parse_description(description)?,
        };
        self.change_directory(tenant, by, command).await?;
        Ok(id)
    }

    /// Renames a topic.
    pub async fn rename_topic(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TopicId,
        name: &str,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        let name = Name::parse("name", name, directory::TOPIC_NAME_MAX)?;
        self.change_directory(tenant, by, DirectoryCommand::RenameTopic { id, name })
            .await
    }

    /// Replaces a topic's description (what subscribers will hear about);
    /// `None` or a blank one clears it. Its name and subscribers stay.
    pub async fn describe_topic(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TopicId,
        description: Option<&str>,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        let description = parse_description(description)?;
        self.change_directory(
            tenant,
            by,
            DirectoryCommand::DescribeTopic { id, description },
        )
        .await
    }

    /// Removes a topic. Removing it again is a no-op.
    pub async fn remove_topic(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TopicId,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        self.change_directory(tenant, by, DirectoryCommand::RemoveTopic { id })
            .await
    }

    /// Replaces the business hours: an IANA `time_zone` and, Monday first,
    /// each day's `("HH:MM", "HH:MM")` opening intervals (an end of `24:00`
    /// or `00:00` is midnight). Refusals name `time_zone`, `week` or the day
    /// (`week.thursday`).
    pub async fn set_business_hours(
        &self,
        tenant: TenantId,
        by: StaffId,
        time_zone: &str,
        week: [Vec<(&str, &str)>; 7],
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        let command = ScheduleCommand::SetHours {
            time_zone: TimeZone::parse("time_zone", time_zone)?,
            week: parse_week(&week)?,
        };
        self.change_schedule(tenant, by, command).await
    }

    /// Declares a holiday on `date` (`YYYY-MM-DD`, the tenant's local date).
    /// Refused (`CONFLICT`) when the date already is one.
    pub async fn add_holiday(
        &self,
        tenant: TenantId,
        by: StaffId,
        date: &str,
        name: &str,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        let holiday = Holiday {
            date: parse_date("date", date)?,
            name: Name::parse("name", name, schedule::HOLIDAY_NAME_MAX)?,
        };
        self.change_schedule(tenant, by, ScheduleCommand::AddHoliday(holiday))
            .await
    }

    /// Removes the holiday on `date` (`YYYY-MM-DD`); `NOT_FOUND` when the
    /// date is not one.
    pub async fn remove_holiday(
        &self,
        tenant: TenantId,
        by: StaffId,
        date: &str,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        let date = parse_date("date", date)?;
        self.change_schedule(tenant, by, ScheduleCommand::RemoveHoliday { date })
            .await
    }

    /// Replaces the portal's settings as a whole.
    pub async fn configure_portal(
        &self,
        tenant: TenantId,
        by: StaffId,
        input: &PortalInput<'_>,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by).await?;
        let command = PortalCommand::Configure(parse_portal(input)?);
        let (_, position) = self
            .run::<Portal>(&Self::ctx(tenant, by), &portal::stream_id()?, &command)
            .await?;
        self.settle(position).await;
        Ok(())
    }

    /// Sets up a realistic Spanish council for demonstrations: four
    /// departments, four officials, four topics, office hours in
    /// Europe/Madrid, two holidays and the portal's name and colours.
    /// Idempotent: what already exists (by name, or hours and portal already
    /// set) is left as it is, so running it again writes nothing.
    pub async fn seed_demo(
        &self,
        tenant: TenantId,
        by_admin: StaffId,
    ) -> Result<(), OrganisationError> {
        self.authorize(tenant, by_admin).await?;
        let ctx = Self::ctx(tenant, by_admin);
        let mut last: Option<Position> = None;

        // Directory: departments, then officials (who refer to them), topics.
        let stream = directory::stream_id()?;
        let mut state = self.state::<Directory>(tenant, &stream).await?;
        for (name, description) in demo::DEPARTMENTS {
            if department_named(&state, name).is_some() {
                continue;
            }
            let command = DirectoryCommand::AddDepartment {
                id: DepartmentId(Uuid::new_v4()),
                name: Name::parse("name", name, directory::NAME_MAX)?,
                description: parse_description(Some(description))?,
            };
            let (next, position) = self.run::<Directory>(&ctx, &stream, &command).await?;
            state = next;
            last = last.max(position);
        }
        for (name, role, department, accepts) in demo::OFFICIALS {
            let key = name.to_lowercase();
            if state
                .officials()
                .any(|o| o.name.as_str().to_lowercase() == key)
            {
                continue;
            }
            let command = DirectoryCommand::AddOfficial {
                id: OfficialId(Uuid::new_v4()),
                name: Name::parse("name", name, directory::NAME_MAX)?,
                role: Name::parse("role", role, directory::NAME_MAX)?,
                department: department.and_then(|d| department_named(&state, d)),
                accepts_public_questions: accepts,
            };
            let (next, position) = self.run::<Directory>(&ctx, &stream, &command).await?;
            state = next;
            last = last.max(position);
        }
        for (name, description) in demo::TOPICS {
            let key = name.to_lowercase();
            if state
                .topics()
                .any(|t| t.name.as_str().to_lowercase() == key)
            {
                continue;
            }
            let command = DirectoryCommand::AddTopic {
                id: TopicId(Uuid::new_v4()),
                name: Name::parse("name", name, directory::TOPIC_NAME_MAX)?,
                description: parse_description(Some(description))?,
            };
            let (next, position) = self.run::<Directory>(&ctx, &stream, &command).await?;
            state = next;
            last = last.max(position);
        }

        // Schedule: hours unless already set, then the missing holidays.
        let stream = schedule::stream_id()?;
        let schedule_state = self.state::<Schedule>(tenant, &stream).await?;
        if schedule_state.hours.is_none() {
            let command = ScheduleCommand::SetHours {
                time_zone: TimeZone::parse("time_zone", demo::TIME_ZONE)?,
                week: parse_week(&demo::week())?,
            };
            let (_, position) = self.run::<Schedule>(&ctx, &stream, &command).await?;
            last = last.max(position);
        }
        for (date, name) in demo::HOLIDAYS {
            let date = parse_date("date", date)?;
            if schedule_state.is_holiday(date) {
                continue;
            }
            let command = ScheduleCommand::AddHoliday(Holiday {
                date,
                name: Name::parse("name", name, schedule::HOLIDAY_NAME_MAX)?,
            });
            let (_, position) = self.run::<Schedule>(&ctx, &stream, &command).await?;
            last = last.max(position);
        }

        // Portal: named after the tenant, in its languages, unless configured.
        let stream = portal::stream_id()?;
        if self
            .state::<Portal>(tenant, &stream)
            .await?
            .settings
            .is_none()
        {
            let (_, events) = self
                .runner
                .load::<Tenant>(tenant, &tenant::stream_id(tenant)?)
                .await
                .map_err(|e| OrganisationError::Unexpected(e.into()))?;
            let details = Tenant::fold(&events).tenant;
            let public_name = details
                .as_ref()
                .map_or(demo::PUBLIC_NAME, |t| t.name.as_str());
            let languages: Vec<&str> = match &details {
                Some(t) if !t.languages.is_empty() => {
                    t.languages.iter().map(Language::as_str).collect()
                }
                _ => vec!["es"],
            };
            let input = PortalInput {
                public_name,
                logo_url: None,
                primary_colour: demo::PRIMARY_COLOUR,
                accent_colour: Some(demo::ACCENT_COLOUR),
                languages,
                social_links: Vec::new(),
            };
            let command = PortalCommand::Configure(parse_portal(&input)?);
            let (_, position) = self.run::<Portal>(&ctx, &stream, &command).await?;
            last = last.max(position);
        }

        self.settle(last).await;
        tracing::info!(tenant_id = %tenant, "demo organisation seeded");
        Ok(())
    }

    /// Runs `read` on the read models in `tenant`'s scope.
    async fn read<T>(
        &self,
        tenant: TenantId,
        read: impl AsyncFnOnce(&mut PgConnection) -> sqlx::Result<T>,
    ) -> Result<T, OrganisationError> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let value = read(&mut tx).await?;
        tx.commit().await?;
        Ok(value)
    }

    /// The tenant's directory: departments, officials and topics, each by
    /// name.
    pub async fn directory(&self, tenant: TenantId) -> Result<DirectoryView, OrganisationError> {
        self.read(tenant, async |conn| {
            Ok(DirectoryView {
                departments: departments(conn).await?,
                officials: officials(conn).await?,
                topics: topics(conn).await?,
            })
        })
        .await
    }

    /// One live official of the tenant, if any (for instance to check that
    /// they accept public questions).
    pub async fn official(
        &self,
        tenant: TenantId,
        id: OfficialId,
    ) -> Result<Option<OfficialView>, OrganisationError> {
        self.read(tenant, async |conn| official(conn, id).await)
            .await
    }

    /// The tenant's business hours (if set) and holidays.
    pub async fn business_hours(
        &self,
        tenant: TenantId,
    ) -> Result<ScheduleView, OrganisationError> {
        self.read(tenant, async |conn| {
            Ok(ScheduleView {
                hours: hours(conn).await?,
                holidays: holidays(conn).await?,
            })
        })
        .await
    }

    /// The tenant's portal settings, once configured.
    pub async fn portal(&self, tenant: TenantId) -> Result<Option<PortalView>, OrganisationError> {
        self.read(tenant, async |conn| portal_settings(conn).await)
            .await
    }
}

/// The id of the live department named `name` (ignoring case).
fn department_named(state: &DirectoryState, name: &str) -> Option<DepartmentId> {
    let key = name.trim().to_lowercase();
    state
        .departments()
        .find(|d| d.name.as_str().to_lowercase() == key)
        .map(|d| d.id)
}

/// The demonstration council of [`Organisation::seed_demo`].
mod demo {
    /// Departments: name and description.
    pub const DEPARTMENTS: [(&str, &str); 4] = [
        (
            "Urbanismo",
            "Licencias de obra, planeamiento y disciplina urbanística",
        ),
        (
            "Servicios Sociales",
            "Ayudas, dependencia, atención a mayores y a familias",
        ),
        (
            "Cultura y Festejos",
            "Programación cultural, bibliotecas y fiestas patronales",
        ),
        ("Hacienda", "Impuestos, tasas, recaudación y presupuestos"),
    ];

    /// Officials: name, role, department, whether they take public questions.
    pub const OFFICIALS: [(&str, &str, Option<&str>, bool); 4] = [
        ("Alcaldía", "Alcaldesa", None, true),
        (
            "Concejalía de Urbanismo",
            "Concejal de Urbanismo",
            Some("Urbanismo"),
            true,
        ),
        (
            "Concejalía de Servicios Sociales",
            "Concejala de Servicios Sociales",
            Some("Servicios Sociales"),
            true,
        ),
        ("Intervención", "Interventor", Some("Hacienda"), false),
    ];

    /// Topics: name and description.
    pub const TOPICS: [(&str, &str); 4] = [
        (
            "Obras en la vía pública",
            "Cortes de calles, asfaltado y obras municipales",
        ),
        (
            "Agenda cultural",
            "Conciertos, teatro, exposiciones y fiestas",
        ),
        (
            "Impuestos y tasas",
            "Plazos de pago del IBI, el IVTM y otras tasas",
        ),
        (
            "Campamentos de verano",
            "Inscripciones y novedades de los campamentos municipales",
        ),
    ];

    /// The council's time zone.
    pub const TIME_ZONE: &str = "Europe/Madrid";

    /// Monday to Friday 09:00–14:00, and Thursday afternoons 16:00–19:00.
    pub fn week() -> [Vec<(&'static str, &'static str)>; 7] {
        let morning = ("09:00", "14:00");
        [
            vec![morning],
            vec![morning],
            vec![morning],
            vec![morning, ("16:00", "19:00")],
            vec![morning],
            vec![],
            vec![],
        ]
    }

    /// Holidays: date and name.
    pub const HOLIDAYS: [(&str, &str); 2] = [("2027-01-01", "Año Nuevo"), ("2027-01-06", "Reyes")];

    /// The portal's name when the tenant's cannot be read.
    pub const PUBLIC_NAME: &str = "Ayuntamiento";
    /// The portal's main colour.
    pub const PRIMARY_COLOUR: &str = "#1a5fb4";
    /// The portal's highlight colour.
    pub const ACCENT_COLOUR: &str = "#e5a50a";
}

// ---------------------------------------------------------------------------
// Read models
// ---------------------------------------------------------------------------

/// A live department.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DepartmentView {
    /// Its id.
    pub id: DepartmentId,
    /// Its name.
    pub name: String,
    /// What it deals with.
    pub description: Option<String>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A live official.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OfficialView {
    /// Their id.
    pub id: OfficialId,
    /// Their name.
    pub name: String,
    /// Their role.
    pub role: String,
    /// Their department, if any.
    pub department: Option<DepartmentId>,
    /// Whether citizens may address public questions to them.
    pub accepts_public_questions: bool,
    /// When they last changed.
    pub updated_at: DateTime<Utc>,
}

/// A live topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicView {
    /// Its id.
    pub id: TopicId,
    /// Its name.
    pub name: String,
    /// What subscribers will hear about.
    pub description: Option<String>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// A tenant's directory, each list by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DirectoryView {
    /// The departments.
    pub departments: Vec<DepartmentView>,
    /// The officials.
    pub officials: Vec<OfficialView>,
    /// The topics.
    pub topics: Vec<TopicView>,
}

/// One opening interval, as `HH:MM` wall-clock times in the tenant's zone;
/// an `end` of `00:00` is midnight at the end of the day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    /// When it opens.
    pub start: String,
    /// When it closes.
    pub end: String,
}

impl From<&OpenInterval> for Interval {
    fn from(i: &OpenInterval) -> Self {
        Self {
            start: i.start.format("%H:%M").to_string(),
            end: i.end.format("%H:%M").to_string(),
        }
    }
}

/// A tenant's business hours.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HoursView {
    /// The IANA zone the hours are in.
    pub time_zone: String,
    /// Each day's intervals, sorted, Monday first.
    pub week: [Vec<Interval>; 7],
}

/// A day the tenant is closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HolidayView {
    /// The local date.
    pub date: NaiveDate,
    /// Its name.
    pub name: String,
}

/// A tenant's hours and holidays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScheduleView {
    /// The business hours; `None` until set.
    pub hours: Option<HoursView>,
    /// The holidays, by date.
    pub holidays: Vec<HolidayView>,
}

/// A tenant's portal settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortalView {
    /// The settings as last configured.
    pub settings: PortalSettings,
    /// When they were configured.
    pub updated_at: DateTime<Utc>,
}

/// The live departments of the transaction's tenant, by name.
pub async fn departments(conn: &mut PgConnection) -> sqlx::Result<Vec<DepartmentView>> {
    let rows: Vec<(Uuid, String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT department_id, name, description, updated_at FROM departments \
         ORDER BY lower(name), department_id",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, description, updated_at)| DepartmentView {
            id: DepartmentId(id),
            name,
            description,
            updated_at,
        })
        .collect())
}

type OfficialRow = (Uuid, String, String, Option<Uuid>, bool, DateTime<Utc>);

fn official_view(
    (id, name, role, department, accepts_public_questions, updated_at): OfficialRow,
) -> OfficialView {
    OfficialView {
        id: OfficialId(id),
        name,
        role,
        department: department.map(DepartmentId),
        accepts_public_questions,
        updated_at,
    }
}

const OFFICIALS: &str = "SELECT official_id, name, role, department_id, accepts_public_questions, updated_at \
     FROM officials";

/// The live officials of the transaction's tenant, by name.
pub async fn officials(conn: &mut PgConnection) -> sqlx::Result<Vec<OfficialView>> {
    let rows: Vec<OfficialRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{OFFICIALS} ORDER BY lower(name), official_id"
    )))
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(official_view).collect())
}

/// One live official of the transaction's tenant.
pub async fn official(
    conn: &mut PgConnection,
    id: OfficialId,
) -> sqlx::Result<Option<OfficialView>> {
    let row: Option<OfficialRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{OFFICIALS} WHERE official_id = $1"
    )))
    .bind(id.0)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(official_view))
}

/// The live topics of the transaction's tenant, by name.
pub async fn topics(conn: &mut PgConnection) -> sqlx::Result<Vec<TopicView>> {
    let rows: Vec<(Uuid, String, Option<String>, DateTime<Utc>)> = sqlx::query_as(
        "SELECT topic_id, name, description, updated_at FROM topics ORDER BY lower(name), topic_id",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, name, description, updated_at)| TopicView {
            id: TopicId(id),
            name,
            description,
            updated_at,
        })
        .collect())
}

/// The business hours of the transaction's tenant, once set.
pub async fn hours(conn: &mut PgConnection) -> sqlx::Result<Option<HoursView>> {
    let row: Option<(String, Json<[Vec<Interval>; 7]>)> =
        sqlx::query_as("SELECT time_zone, week FROM business_hours")
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(time_zone, Json(week))| HoursView { time_zone, week }))
}

/// The holidays of the transaction's tenant, by date.
pub async fn holidays(conn: &mut PgConnection) -> sqlx::Result<Vec<HolidayView>> {
    let rows: Vec<(NaiveDate, String)> =
        sqlx::query_as("SELECT date, name FROM holidays ORDER BY date")
            .fetch_all(conn)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(date, name)| HolidayView { date, name })
        .collect())
}

/// The portal settings of the transaction's tenant, once configured.
pub async fn portal_settings(conn: &mut PgConnection) -> sqlx::Result<Option<PortalView>> {
    let row: Option<(Json<PortalSettings>, DateTime<Utc>)> =
        sqlx::query_as("SELECT settings, updated_at FROM portal_settings")
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(Json(settings), updated_at)| PortalView {
        settings,
        updated_at,
    }))
}

// ---------------------------------------------------------------------------
// The projection
// ---------------------------------------------------------------------------

/// The `organisation` projection: applies the `directory`, `schedule` and
/// `portal` streams' events to their read models, each in its tenant's
/// scope. It decides nothing: it only reflects what the events say.
#[derive(Debug, Default, Clone, Copy)]
pub struct OrganisationProjection;

impl Projection for OrganisationProjection {
    fn name(&self) -> &'static str {
        "organisation"
    }

    fn tables(&self) -> &'static [&'static str] {
        &[
            "departments",
            "officials",
            "topics",
            "business_hours",
            "holidays",
            "portal_settings",
        ]
    }
}

#[async_trait]
impl Handler for OrganisationProjection {
    async fn handle(&self, tx: &mut TenantTx<'_>, events: &[RecordedEvent]) -> anyhow::Result<()> {
        let tenant = tx.tenant().into_uuid();
        let (directory_stream, schedule_stream, portal_stream) = (
            directory::stream_id()?,
            schedule::stream_id()?,
            portal::stream_id()?,
        );
        for e in events {
            if e.stream == directory_stream && e.event_type.starts_with("directory.") {
                let event = DirectoryEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
                apply_directory(tx.conn().await?, tenant, &event, e.recorded_at).await?;
            } else if e.stream == schedule_stream && e.event_type.starts_with("schedule.") {
                let event = ScheduleEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
                apply_schedule(tx.conn().await?, tenant, &event).await?;
            } else if e.stream == portal_stream && e.event_type.starts_with("portal.") {
                let event = PortalEvent::from_stored(&e.event_type, e.schema_version, &e.data)?;
                apply_portal(tx.conn().await?, tenant, &event, e.recorded_at).await?;
            }
        }
        Ok(())
    }
}

async fn apply_directory(
    conn: &mut PgConnection,
    tenant: Uuid,
    event: &DirectoryEvent,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    let query = match event {
        DirectoryEvent::DepartmentAdded(e) => sqlx::query(
            "INSERT INTO departments (tenant_id, department_id, name, description, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant)
        .bind(e.id.0)
        .bind(e.name.as_str())
        .bind(e.description.as_ref().map(Name::as_str))
        .bind(at),
        DirectoryEvent::DepartmentRenamed(e) => sqlx::query(
            "UPDATE departments SET name = $3, updated_at = $4 \
             WHERE tenant_id = $1 AND department_id = $2",
        )
        .bind(tenant)
        .bind(e.id.0)
        .bind(e.name.as_str())
        .bind(at),
        DirectoryEvent::DepartmentDescribed(e) => sqlx::query(
            "UPDATE departments SET description = $3, updated_at = $4 \
             WHERE tenant_id = $1 AND department_id = $2",
        )
        .bind(tenant)
        .bind(e.id.0)
        .bind(e.description.as_ref().map(Name::as_str))
        .bind(at),
        DirectoryEvent::DepartmentRemoved(e) => {
            sqlx::query("DELETE FROM departments WHERE tenant_id = $1 AND department_id = $2")
                .bind(tenant)
                .bind(e.id.0)
        }
        DirectoryEvent::OfficialAdded(e) => sqlx::query(
            "INSERT INTO officials (tenant_id, official_id, name, role, department_id, \
               accepts_public_questions, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(tenant)
        .bind(e.id.0)
        .bind(e.name.as_str())
        .bind(e.role.as_str())
        .bind(e.department.map(|d| d.0))
        .bind(e.accepts_public_questions)
        .bind(at),
        DirectoryEvent::OfficialUpdated(e) => sqlx::query(
            "UPDATE officials SET name = $3, role = $4, department_id = $5, \
               accepts_public_questions = $6, updated_at = $7 \
             WHERE tenant_id = $1 AND official_id = $2",
        )
        .bind(tenant)
        .bind(e.id.0)
        .bind(e.name.as_str())
        .bind(e.role.as_str())
        .bind(e.department.map(|d| d.0))
        .bind(e.accepts_public_questions)
        .bind(at),
        DirectoryEvent::OfficialRemoved(e) => {
            sqlx::query("DELETE FROM officials WHERE tenant_id = $1 AND official_id = $2")
                .bind(tenant)
                .bind(e.id.0)
        }
        DirectoryEvent::TopicAdded(e) => sqlx::query(
            "INSERT INTO topics (tenant_id, topic_id, name, description, updated_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant)
        .bind(e.id.0)
        .bind(e.name.as_str())
        .bind(e.description.as_ref().map(Name::as_str))
        .bind(at),
        DirectoryEvent::TopicRenamed(e) => sqlx::query(
            "UPDATE topics SET name = $3, updated_at = $4 WHERE tenant_id = $1 AND topic_id = $2",
        )
        .bind(tenant)
        .bind(e.id.0)
        .bind(e.name.as_str())
        .bind(at),
        DirectoryEvent::TopicDescribed(e) => sqlx::query(
            "UPDATE topics SET description = $3, updated_at = $4 \
             WHERE tenant_id = $1 AND topic_id = $2",
        )
        .bind(tenant)
        .bind(e.id.0)
        .bind(e.description.as_ref().map(Name::as_str))
        .bind(at),
        DirectoryEvent::TopicRemoved(e) => {
            sqlx::query("DELETE FROM topics WHERE tenant_id = $1 AND topic_id = $2")
                .bind(tenant)
                .bind(e.id.0)
        }
    };
    query.execute(conn).await.map(|_| ())
}

async fn apply_schedule(
    conn: &mut PgConnection,
    tenant: Uuid,
    event: &ScheduleEvent,
) -> sqlx::Result<()> {
    let query = match event {
        ScheduleEvent::HoursSet(e) => {
            let week: Vec<Vec<Interval>> = e
                .hours
                .week
                .iter()
                .map(|day| day.iter().map(Interval::from).collect())
                .collect();
            sqlx::query(
                "INSERT INTO business_hours (tenant_id, time_zone, week) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET time_zone = EXCLUDED.time_zone, week = EXCLUDED.week",
            )
            .bind(tenant)
            .bind(e.hours.time_zone.as_str())
            .bind(Json(week))
        }
        ScheduleEvent::HolidayAdded(e) => {
            sqlx::query("INSERT INTO holidays (tenant_id, date, name) VALUES ($1, $2, $3)")
                .bind(tenant)
                .bind(e.date)
                .bind(e.name.as_str())
        }
        ScheduleEvent::HolidayRemoved(e) => {
            sqlx::query("DELETE FROM holidays WHERE tenant_id = $1 AND date = $2")
                .bind(tenant)
                .bind(e.date)
        }
    };
    query.execute(conn).await.map(|_| ())
}

async fn apply_portal(
    conn: &mut PgConnection,
    tenant: Uuid,
    event: &PortalEvent,
    at: DateTime<Utc>,
) -> sqlx::Result<()> {
    match event {
        PortalEvent::Configured(e) => {
            sqlx::query(
                "INSERT INTO portal_settings (tenant_id, settings, updated_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (tenant_id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = EXCLUDED.updated_at",
            )
            .bind(tenant)
            .bind(Json(&e.settings))
            .bind(at)
            .execute(conn)
            .await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_hh_mm() {
        assert_eq!(
            parse_time("f", "09:30", false).unwrap(),
            NaiveTime::from_hms_opt(9, 30, 0).unwrap()
        );
        assert_eq!(parse_time("f", "24:00", true).unwrap(), NaiveTime::MIN);
        for bad in ["25:00", "9:00", "09:60", "24:00", "0900", "ab:cd", ""] {
            let e = parse_time("week.monday", bad, false).unwrap_err();
            assert_eq!(e.field, "week.monday", "{bad}");
        }
        assert!(parse_time("f", "24:01", true).is_err());
    }

    #[test]
    fn dates_are_iso() {
        assert_eq!(
            parse_date("date", "2027-01-06").unwrap(),
            NaiveDate::from_ymd_opt(2027, 1, 6).unwrap()
        );
        for bad in ["2027-1-6", "2027-02-30", "06/01/2027", "2027-01-06T00:00"] {
            assert_eq!(parse_date("date", bad).unwrap_err().field, "date", "{bad}");
        }
    }

    #[test]
    fn networks_use_the_domain_names() {
        assert_eq!(parse_network(" Bluesky ").unwrap(), SocialNetwork::Bluesky);
        assert_eq!(parse_network("whatsapp").unwrap(), SocialNetwork::WhatsApp);
        assert_eq!(parse_network("myspace").unwrap_err().field, "social_links");
    }

    #[test]
    fn schedule_refusals_name_the_day() {
        let e = OrganisationError::from(ScheduleError::InvalidInterval {
            weekday: Weekday::Thu,
            start: NaiveTime::MIN,
            end: NaiveTime::MIN,
        });
        assert_eq!((e.code(), e.field()), ("VALIDATION", Some("week.thursday")));
        let e = OrganisationError::from(ScheduleError::DuplicateHoliday {
            date: NaiveDate::MIN,
        });
        assert_eq!((e.code(), e.field()), ("CONFLICT", None));
    }

    #[test]
    fn error_messages_are_lowercase_without_a_trailing_period() {
        for e in [
            OrganisationError::Forbidden,
            OrganisationError::Conflict,
            OrganisationError::from(PortalError::NoLanguages),
        ] {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }
}
