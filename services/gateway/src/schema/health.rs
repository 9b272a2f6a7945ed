//! Presence health: the organisation's figures per day (tickets received by
//! channel, the share answered, first-response times, social messages left
//! unanswered, tickets resolved and reopened), as the tickets service
//! computes them.
//!
//! For everyone in the organisation: its active staff, and its integrators
//! (an API key of either scope: the figures are counts and times, nothing
//! about a citizen).
//!
//! What this module must not do: compute a figure (the tickets service
//! does), or read a table.

use async_graphql::{
    Context, InputValueError, InputValueResult, Object, Result, Scalar, ScalarType, SimpleObject,
    Value,
};
use chrono::NaiveDate;
use ventanilla_tickets::health::PresenceDay as ServiceDay;

use super::access::{self, services};
use super::tickets::{Channel, stored};
use crate::auth::Principal;
use crate::error::service_error;

/// A day of the calendar, `YYYY-MM-DD` (ISO 8601).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Date(pub NaiveDate);

/// A day of the calendar, `YYYY-MM-DD` (ISO 8601), e.g. `2026-03-01`.
#[Scalar(name = "Date")]
impl ScalarType for Date {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map(Date)
                .map_err(|_| InputValueError::custom(format!("{s:?} is not a day as YYYY-MM-DD"))),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.format("%Y-%m-%d").to_string())
    }
}

/// How many tickets came on one channel.
#[derive(SimpleObject, Debug)]
pub struct ChannelCount {
    /// The channel.
    pub channel: Channel,
    /// How many tickets came on it.
    pub count: i64,
}

/// The presence figures of one of the organisation's days (in its time
/// zone).
#[derive(SimpleObject, Debug)]
pub struct PresenceDay {
    /// The day.
    pub day: Date,
    /// Tickets opened that day.
    pub received: i64,
    /// Of those, how many came on each channel; channels with none are left
    /// out.
    pub received_by_channel: Vec<ChannelCount>,
    /// Of the tickets opened that day, how many have been answered (the
    /// staff replied at least once, whenever).
    pub answered: i64,
    /// `answered / received`, from 0 to 1; null when none was received.
    pub answered_share: Option<f64>,
    /// The median first response, in seconds of business time, of the
    /// tickets opened that day that were answered; null when none was.
    pub first_response_median_secs: Option<f64>,
    /// The 90th percentile of the same (interpolated); null when none was
    /// answered.
    pub first_response_p90_secs: Option<f64>,
    /// Messages received that day on a social network or messaging app
    /// (every channel but web, API and e-mail) that no reply on their
    /// ticket has followed yet.
    pub social_unanswered: i64,
    /// Tickets resolved that day (a ticket resolved twice counts twice).
    pub resolved: i64,
    /// Tickets reopened that day by the citizen writing again.
    pub reopened: i64,
}

impl PresenceDay {
    fn from_service(day: ServiceDay) -> Result<Self> {
        let received_by_channel = day
            .received_by_channel
            .into_iter()
            .map(|(channel, count)| {
                Ok(ChannelCount {
                    channel: stored("channel", &channel, Channel::from_stored)?,
                    count,
                })
            })
            .collect::<Result<_>>()?;
        Ok(Self {
            day: Date(day.day),
            received: day.received,
            received_by_channel,
            answered: day.answered,
            answered_share: day.answered_share,
            first_response_median_secs: day.first_response_median_secs,
            first_response_p90_secs: day.first_response_p90_secs,
            social_unanswered: day.social_unanswered,
            resolved: day.resolved,
            reopened: day.reopened,
        })
    }
}

/// Reading the organisation's presence figures.
#[derive(Default)]
pub struct HealthQuery;

#[Object]
impl HealthQuery {
    /// The organisation's presence figures for every day from `from` to
    /// `to` (inclusive, the organisation's days; quiet days give zeros).
    /// Staff and the organisation's API keys. At most 366 days; a range that
    /// ends before it starts or is longer is `VALIDATION`.
    #[graphql(complexity = "10 + child_complexity")]
    async fn presence_health(
        &self,
        ctx: &Context<'_>,
        from: Date,
        to: Date,
    ) -> Result<Vec<PresenceDay>> {
        let tickets = &services(ctx)?.tickets;
        let days = match access::principal(ctx) {
            // Integrators of the organisation, with a key of either scope.
            Principal::ApiKey(key) => {
                tickets
                    .presence_health_for_integrator(key.tenant, from.0, to.0)
                    .await
            }
            _ => {
                let by = access::staff_reader(ctx)?;
                tickets
                    .presence_health(by.tenant, by.staff, from.0, to.0)
                    .await
            }
        };
        days.map_err(|e| service_error(&e))?
            .into_iter()
            .map(PresenceDay::from_service)
            .collect()
    }
}
