//! Presence health: per tenant and day, how the council listens and
//! answers — tickets received by channel, the share answered, the median
//! and 90th-percentile first response in business time, social messages
//! left unanswered, and tickets resolved and reopened.
//!
//! The figures are read from the `inbox` projection's tables (`tickets`,
//! `ticket_messages`, `ticket_timeline`, see `migrations/0008_tickets.sql`),
//! which are derived from the tickets' events, so they can be rebuilt, and
//! asked for, for any past period. Every instant counted is the one the
//! event records (when the ticket was opened, the message received, the
//! status changed); days are the tenant's local days.
//!
//! - [`presence`] runs on a connection already scoped to a tenant
//!   (`begin_for_tenant`), a few statements for the whole range (one per
//!   family of figures), never one per day.
//! - [`Tickets::presence_health`] wraps it with the caller's authorization
//!   and the tenant's time zone.
//!
//! What this module must not do: write anything, decide anything, or read
//! another service's tables or another tenant's rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, LocalResult, NaiveDate, NaiveTime, Offset, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use sqlx::PgConnection;
use ventanilla_kernel::TenantId;
use ventanilla_postgres::begin_for_tenant;
use ventanilla_tenants_domain::staff::StaffId;
use ventanilla_tickets_domain::ticket::Status;
use ventanilla_tickets_domain::values::{Channel, InvalidValue};

use crate::error::TicketsError;
use crate::service::Tickets;

/// The most days one request for presence figures covers (a leap year).
pub const MAX_DAYS: i64 = 366;

/// The presence figures of one of the tenant's days.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PresenceDay {
    /// The day, in the tenant's time zone.
    pub day: NaiveDate,
    /// Tickets opened that day.
    pub received: i64,
    /// Of those, how many came on each channel (`web`, `facebook`…);
    /// channels with none are left out.
    pub received_by_channel: BTreeMap<String, i64>,
    /// Of the tickets opened that day, how many have been answered (the
    /// staff replied at least once, whenever).
    pub answered: i64,
    /// `answered / received`, from 0 to 1; `None` when none was received.
    pub answered_share: Option<f64>,
    /// The median first response, in seconds of business time, of the
    /// tickets opened that day that were answered; `None` when none was.
    pub first_response_median_secs: Option<f64>,
    /// The 90th percentile of the same (interpolated, as
    /// `percentile_cont`); `None` when none was answered.
    pub first_response_p90_secs: Option<f64>,
    /// Messages received that day on a social network or messaging app
    /// (every channel but `web`, `api` and `email`) that no reply on their
    /// ticket has followed yet.
    pub social_unanswered: i64,
    /// Tickets resolved that day (a ticket resolved twice counts twice).
    pub resolved: i64,
    /// Tickets reopened that day by the citizen writing again.
    pub reopened: i64,
}

impl PresenceDay {
    fn quiet(day: NaiveDate) -> Self {
        Self {
            day,
            received: 0,
            received_by_channel: BTreeMap::new(),
            answered: 0,
            answered_share: None,
            first_response_median_secs: None,
            first_response_p90_secs: None,
            social_unanswered: 0,
            resolved: 0,
            reopened: 0,
        }
    }
}

/// The first instant of `day` in `tz`: its midnight, or, in a zone that
/// moves its clocks forward at midnight, the instant of the change.
fn start_of_day(tz: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&midnight) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => {
            // Midnight does not exist that day: the day starts when the
            // clocks jump, which is midnight at the offset in force before.
            let before = tz
                .offset_from_utc_datetime(&(midnight - Duration::days(1)))
                .fix();
            Utc.from_utc_datetime(&(midnight - Duration::seconds(before.local_minus_utc().into())))
        }
    }
}

/// Checks a range of days and gives its bounds: the first instant of `from`
/// and the first instant of the day after `to`, in `tz`.
fn bounds(
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<(DateTime<Utc>, DateTime<Utc>), InvalidValue> {
    if to < from {
        return Err(InvalidValue::new(
            "to",
            "must be the same day as from or later",
        ));
    }
    if (to - from).num_days() + 1 > MAX_DAYS {
        return Err(InvalidValue::new(
            "from",
            format!("the range covers at most {MAX_DAYS} days; ask for a shorter period"),
        ));
    }
    let after = to
        .succ_opt()
        .ok_or_else(|| InvalidValue::new("to", "is not a day of the calendar"))?;
    Ok((start_of_day(tz, from), start_of_day(tz, after)))
}

/// The channels whose unanswered messages [`PresenceDay::social_unanswered`]
/// counts.
fn social_channels() -> Vec<&'static str> {
    Channel::ALL
        .into_iter()
        .filter(|c| c.is_social())
        .map(Channel::as_str)
        .collect()
}

/// Tickets opened, per day and channel (`channel` NULL: the day's total,
/// with the first-response percentiles). `$1`, `$2`: the bounds; `$3`: the
/// time zone.
const RECEIVED: &str = "\
SELECT day, channel, count(*) AS received, count(first_response_at) AS answered,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY secs) FILTER (WHERE first_response_at IS NOT NULL),
       percentile_cont(0.9) WITHIN GROUP (ORDER BY secs) FILTER (WHERE first_response_at IS NOT NULL)
FROM (SELECT (opened_at AT TIME ZONE $3)::date AS day, channel, first_response_at,
             first_response_business_secs::float8 AS secs
      FROM tickets
      WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
        AND opened_at >= $1 AND opened_at < $2) AS opened
GROUP BY GROUPING SETS ((day, channel), (day))";

/// Inbound messages on the channels `$4` that no outbound message of their
/// ticket follows, per day.
const SOCIAL_UNANSWERED: &str = "\
SELECT (m.at AT TIME ZONE $3)::date AS day, count(*)
FROM ticket_messages m
WHERE m.tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
  AND m.direction = 'in' AND m.at >= $1 AND m.at < $2
  AND m.channel = ANY($4)
  AND NOT EXISTS (
      SELECT 1 FROM ticket_messages r
      WHERE r.tenant_id = m.tenant_id AND r.ticket_id = m.ticket_id
        AND r.seq > m.seq AND r.direction = 'out')
GROUP BY 1";

/// Moves into `$4` (resolved) and `$5` (reopened), per day of the instant
/// the event records (`ticket_timeline.at`, the decider's `now`), served by
/// the index `ticket_timeline_moves (tenant_id, at)`.
const MOVES: &str = "\
SELECT day, count(*) FILTER (WHERE moved_to = $4), count(*) FILTER (WHERE moved_to = $5)
FROM (SELECT (at AT TIME ZONE $3)::date AS day, data->>'to' AS moved_to
      FROM ticket_timeline
      WHERE tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid
        AND event_type = 'ticket.status_changed'
        AND at >= $1 AND at < $2
        AND data->>'to' IN ($4, $5)) AS moves
GROUP BY day";

/// The tenant's presence figures for every day from `from` to `to`
/// (inclusive; days with no activity give zeros), days being `tz`'s. Runs
/// on a connection scoped to the tenant (`begin_for_tenant`). Refuses (with
/// `VALIDATION`) a range that ends before it starts or covers more than
/// [`MAX_DAYS`] days.
pub async fn presence(
    conn: &mut PgConnection,
    tz: Tz,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<PresenceDay>, TicketsError> {
    let (start, end) = bounds(tz, from, to)?;
    let zone = tz.name();
    let mut days: BTreeMap<NaiveDate, PresenceDay> = from
        .iter_days()
        .take_while(|d| *d <= to)
        .map(|d| (d, PresenceDay::quiet(d)))
        .collect();

    type Received = (
        NaiveDate,
        Option<String>,
        i64,
        i64,
        Option<f64>,
        Option<f64>,
    );
    let received: Vec<Received> = sqlx::query_as(RECEIVED)
        .bind(start)
        .bind(end)
        .bind(zone)
        .fetch_all(&mut *conn)
        .await?;
    for (day, channel, count, answered, median, p90) in received {
        // A day the database's time zone rules place outside the range
        // (they could differ from chrono-tz's at the edges) is left out.
        let Some(d) = days.get_mut(&day) else {
            continue;
        };
        match channel {
            Some(channel) => {
                d.received_by_channel.insert(channel, count);
            }
            None => {
                d.received = count;
                d.answered = answered;
                d.answered_share = (count > 0).then(|| answered as f64 / count as f64);
                d.first_response_median_secs = median;
                d.first_response_p90_secs = p90;
            }
        }
    }

    let unanswered: Vec<(NaiveDate, i64)> = sqlx::query_as(SOCIAL_UNANSWERED)
        .bind(start)
        .bind(end)
        .bind(zone)
        .bind(social_channels())
        .fetch_all(&mut *conn)
        .await?;
    for (day, count) in unanswered {
        if let Some(d) = days.get_mut(&day) {
            d.social_unanswered = count;
        }
    }

    let moves: Vec<(NaiveDate, i64, i64)> = sqlx::query_as(MOVES)
        .bind(start)
        .bind(end)
        .bind(zone)
        .bind(Status::Resolved.as_str())
        .bind(Status::Reopened.as_str())
        .fetch_all(&mut *conn)
        .await?;
    for (day, resolved, reopened) in moves {
        if let Some(d) = days.get_mut(&day) {
            d.resolved = resolved;
            d.reopened = reopened;
        }
    }

    Ok(days.into_values().collect())
}

impl Tickets {
    /// The tenant's presence figures for every day from `from` to `to`
    /// (inclusive), in the tenant's time zone (see [`presence`]). For its
    /// active staff (agents and admins): anyone else is refused with
    /// `FORBIDDEN`; a suspended tenant with `TENANT_SUSPENDED`; a range
    /// that ends before it starts or covers more than [`MAX_DAYS`] days with
    /// `VALIDATION`.
    pub async fn presence_health(
        &self,
        tenant: TenantId,
        by: StaffId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<PresenceDay>, TicketsError> {
        if self.tenancy().working_role(tenant, by).await?.is_none() {
            return Err(TicketsError::Forbidden(
                "only active staff of this organisation may see its presence figures",
            ));
        }
        self.presence_days(tenant, from, to).await
    }

    /// [`Tickets::presence_health`] for an integrator of the organisation:
    /// an API key the caller (the gateway) has authenticated as the
    /// tenant's. The figures are counts and times, nothing about a citizen;
    /// the tenant must be active (`TENANT_SUSPENDED`, `NOT_FOUND`).
    pub async fn presence_health_for_integrator(
        &self,
        tenant: TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<PresenceDay>, TicketsError> {
        self.tenancy().active_tenant(tenant).await?;
        self.presence_days(tenant, from, to).await
    }

    async fn presence_days(
        &self,
        tenant: TenantId,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<PresenceDay>, TicketsError> {
        let tz = self.tenancy().calendar(tenant).await?.time_zone();
        // Refuse a bad range before opening a transaction.
        bounds(tz, from, to)?;
        let mut tx = begin_for_tenant(self.runner().log().pool(), tenant).await?;
        let days = presence(&mut tx, tz, from, to).await?;
        tx.commit().await?;
        Ok(days)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).unwrap()
    }

    #[test]
    fn days_start_at_the_tenants_midnight() {
        let madrid = chrono_tz::Europe::Madrid;
        // Winter (UTC+1) and summer (UTC+2).
        let (start, end) = bounds(madrid, day(2025, 3, 3), day(2025, 3, 4)).unwrap();
        assert_eq!(start.to_rfc3339(), "2025-03-02T23:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2025-03-04T23:00:00+00:00");
        let (start, end) = bounds(madrid, day(2025, 3, 30), day(2025, 3, 30)).unwrap();
        assert_eq!(start.to_rfc3339(), "2025-03-29T23:00:00+00:00");
        assert_eq!(end.to_rfc3339(), "2025-03-30T22:00:00+00:00");
        // Santiago de Chile moved its clocks forward at midnight on
        // 2024-09-08: that day began at 01:00 local, 04:00 UTC.
        let santiago = chrono_tz::America::Santiago;
        assert_eq!(
            start_of_day(santiago, day(2024, 9, 8)).to_rfc3339(),
            "2024-09-08T04:00:00+00:00"
        );
    }

    #[test]
    fn bad_ranges_are_refused_naming_the_field() {
        let tz = chrono_tz::Europe::Madrid;
        assert_eq!(
            bounds(tz, day(2025, 3, 4), day(2025, 3, 3))
                .unwrap_err()
                .field,
            "to"
        );
        assert!(bounds(tz, day(2024, 1, 1), day(2024, 12, 31)).is_ok());
        assert_eq!(
            bounds(tz, day(2024, 1, 1), day(2025, 1, 1))
                .unwrap_err()
                .field,
            "from"
        );
        assert_eq!(
            bounds(tz, NaiveDate::MAX, NaiveDate::MAX)
                .unwrap_err()
                .field,
            "to"
        );
    }

    #[test]
    fn social_channels_are_all_but_web_api_and_email() {
        let social = social_channels();
        assert!(social.contains(&"facebook") && social.contains(&"whatsapp"));
        assert!(!social.iter().any(|c| ["web", "api", "email"].contains(c)));
        assert_eq!(social.len(), Channel::ALL.len() - 3);
    }
}
