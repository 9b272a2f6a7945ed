//! [`Tickets`], the service: citizens and integrators open tickets, staff
//! work them, the deliverer reports how replies went, and the inbox is read.
//!
//! Every method takes the tenant as an argument (the gateway passes the
//! authenticated principal's, never one from input), parses raw input into
//! the domain's validated values (a refusal names the field), looks up the
//! facts only it can know in the tenants service's events ([`Tenancy`]),
//! computes the response-time clocks on the tenant's business hours, runs
//! the `Ticket` decider through the [`CommandRunner`], and waits until the
//! inbox shows the change (read-your-writes). It decides nothing itself.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sha2::{Digest, Sha256};
use sqlx::PgPool;
use uuid::Uuid;
use ventanilla_eventlog::{CommandContext, CommandRunner, Decider, Position};
use ventanilla_kernel::{Actor, TenantId};
use ventanilla_postgres::projection::settle;
use ventanilla_postgres::{PgEventLog, begin_for_tenant};
use ventanilla_tenants_domain::organisation::DirectoryState;
use ventanilla_tenants_domain::staff::{Role, StaffId};
use ventanilla_tickets_domain::service_levels::{
    self, ServiceLevels, ServiceLevelsCommand, ServiceLevelsState,
};
use ventanilla_tickets_domain::ticket::{
    self as domain, Assignee, Clock, DeliveryOutcome, MessageId, NoteId, OpenTicket, Ticket,
    TicketCommand, TicketDetails, TicketError, TicketId,
};
use ventanilla_tickets_domain::values::{
    Addressee, AgentId, Body, Channel, Contact, DepartmentId, InvalidValue, Kind, OfficialId,
    Priority, Reference, Subject, Tag, Text, TrackingTokenHash,
};

use crate::error::TicketsError;
use crate::inbox::{
    self, Cursor, InboxFilter, InboxPage, InboxProjection, InboxSort, MessageView, TicketView,
};
use ventanilla_tenancy::Tenancy;

/// How long a change waits for the inbox to show it.
pub const CATCH_UP_TIMEOUT: StdDuration = StdDuration::from_secs(15);

/// How a ticket reached the platform through [`Tickets::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A citizen on the tenant's portal.
    Web,
    /// An integrator, with the id of the API key it used.
    Api {
        /// The key's id.
        key: Uuid,
    },
}

/// A citizen's request, as it arrives (raw strings, parsed here).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OpenRequest {
    /// `question`, `suggestion` or `question_for`.
    pub kind: String,
    /// For `question_for`: the department addressed.
    pub department: Option<Uuid>,
    /// For `question_for`: the official addressed (instead of a department).
    pub official: Option<Uuid>,
    /// The citizen's name, if given.
    pub name: Option<String>,
    /// Their e-mail address.
    pub email: Option<String>,
    /// Their phone number.
    pub phone: Option<String>,
    /// Their handle on some network.
    pub handle: Option<String>,
    /// The subject.
    pub subject: String,
    /// What they write.
    pub body: String,
    /// Whether they want to be told when the ticket moves.
    pub notify: bool,
    /// A key the caller chooses to make a retried request safe: the same key
    /// opens the same ticket once.
    pub idempotency_key: Option<Uuid>,
}

/// A ticket just opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedTicket {
    /// Its id.
    pub id: TicketId,
    /// Its human reference.
    pub reference: String,
    /// The secret with which the citizen follows the ticket, shown only
    /// now: the platform keeps its SHA-256 only. `None` when this was a
    /// repeat of a request already carried out (the token was shown then).
    pub tracking_token: Option<String>,
}

/// To whom [`Tickets::assign`] gives a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignTo {
    /// An agent of the tenant.
    Agent(StaffId),
    /// A department's queue.
    Department(Uuid),
    /// Nobody (the agent lets it go; the queue is kept).
    Nobody,
}

/// An agent's reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplyRequest {
    /// What it says.
    pub body: String,
    /// The channel it goes out on; `None`: the one the ticket came on.
    pub channel: Option<String>,
    /// Whether the agent asked something and waits for the citizen.
    pub wait_for_citizen: bool,
}

/// The tickets service.
#[derive(Clone)]
pub struct Tickets {
    runner: CommandRunner<PgEventLog>,
    pool: PgPool,
    tenancy: Tenancy,
}

/// The id, derived from an idempotency key, of what the key's request
/// creates (`what` tells the ticket from its first message).
fn derived(key: Uuid, what: &str) -> Uuid {
    Uuid::new_v5(&key, what.as_bytes())
}

/// A new tracking token: 256 random bits, hex, and its SHA-256.
fn new_tracking_token() -> Result<(String, TrackingTokenHash), TicketsError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| TicketsError::Unexpected(anyhow::anyhow!("no randomness from the OS: {e}")))?;
    let clear: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let hash = tracking_hash(&clear)?;
    Ok((clear, hash))
}

/// The stored form of a tracking token.
pub fn tracking_hash(clear: &str) -> Result<TrackingTokenHash, TicketsError> {
    let digest = Sha256::digest(clear.trim().as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(TrackingTokenHash::parse("tracking_token", &hex)?)
}

impl Tickets {
    /// The service, writing to `log` and reading the read models through
    /// its pool.
    pub fn new(log: Arc<PgEventLog>) -> Self {
        let pool = log.pool().clone();
        let runner = CommandRunner::new(log, 5);
        Self {
            tenancy: Tenancy::new(runner.clone()),
            runner,
            pool,
        }
    }

    /// Remembers staff members' working roles between calls in `memo`,
    /// which the caller keeps told of the log's events (see
    /// [`ventanilla_tenancy::memo`]): for a process following the log.
    #[must_use]
    pub fn remembering(mut self, memo: ventanilla_tenancy::RoleMemo) -> Self {
        self.tenancy = self.tenancy.remembering(memo);
        self
    }

    /// What the service reads of the tenants service.
    pub fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    /// The runner the service writes with.
    pub fn runner(&self) -> &CommandRunner<PgEventLog> {
        &self.runner
    }

    // -----------------------------------------------------------------------
    // Helpers
    // -----------------------------------------------------------------------

    /// The active staff member `by` of an active tenant, with `Forbidden`
    /// unless they are one (and an admin when `admin`).
    async fn authorize(
        &self,
        tenant: TenantId,
        by: StaffId,
        admin: bool,
    ) -> Result<AgentId, TicketsError> {
        match self.tenancy.working_role(tenant, by).await? {
            Some(role) if !admin || role == Role::Admin => Ok(AgentId(by.0)),
            Some(_) => Err(TicketsError::Forbidden(
                "only an admin of this organisation may change its service levels; ask one of its admins",
            )),
            _ => Err(TicketsError::Forbidden(
                "only active staff of this organisation may work its tickets",
            )),
        }
    }

    fn staff_ctx(tenant: TenantId, by: AgentId) -> CommandContext {
        CommandContext::new(tenant, Utc::now(), Actor::Staff { id: by.to_string() })
    }

    /// The ticket's state, `NotFound` when the tenant has no such ticket.
    pub(crate) async fn load(
        &self,
        tenant: TenantId,
        id: TicketId,
    ) -> Result<TicketDetails, TicketsError> {
        let (_, events) = self
            .runner
            .load::<Ticket>(tenant, &domain::stream_id(id)?)
            .await?;
        Ticket::fold(&events).ticket.ok_or(TicketsError::NotFound)
    }

    /// Runs `command` on ticket `id`; `NotFound` when it does not exist.
    pub(crate) async fn run(
        &self,
        ctx: &CommandContext,
        id: TicketId,
        command: &TicketCommand,
    ) -> Result<(TicketDetails, Option<Position>), TicketsError> {
        let done = self
            .runner
            .execute::<Ticket>(ctx, &domain::stream_id(id)?, command)
            .await
            .map_err(|e| match e {
                ventanilla_eventlog::CommandError::Domain(TicketError::NotOpened) => {
                    TicketsError::NotFound
                }
                other => other.into(),
            })?;
        let ticket = done.state.ticket.ok_or(TicketsError::NotFound)?;
        Ok((ticket, done.position))
    }

    /// Waits until the inbox shows everything up to `position`. The change
    /// is recorded whatever happens here: a late projection only logs.
    pub(crate) async fn settle(&self, position: Option<Position>) {
        settle(
            Arc::clone(self.runner.log()),
            self.pool.clone(),
            Arc::new(InboxProjection),
            position,
            CATCH_UP_TIMEOUT,
        )
        .await;
    }

    /// Waits until the inbox shows every event up to `position` (for a
    /// reader that learnt of a change from the log itself, such as the
    /// gateway's live subscriptions). Gives up quietly after
    /// [`CATCH_UP_TIMEOUT`], logging why.
    pub async fn inbox_caught_up(&self, position: Position) {
        self.settle(Some(position)).await;
    }

    /// The tenant's service levels, as its staff member `by` may read them
    /// (`FORBIDDEN` for anyone else).
    pub async fn service_levels_for(
        &self,
        tenant: TenantId,
        by: StaffId,
    ) -> Result<ServiceLevelsState, TicketsError> {
        self.authorize(tenant, by, false).await?;
        self.service_levels(tenant).await
    }

    /// The tenant's service levels (the defaults until an admin sets them).
    pub async fn service_levels(
        &self,
        tenant: TenantId,
    ) -> Result<ServiceLevelsState, TicketsError> {
        let (_, events) = self
            .runner
            .load::<ServiceLevels>(tenant, &service_levels::stream_id()?)
            .await?;
        Ok(ServiceLevels::fold(&events))
    }

    /// Draws the reference of ticket `id`: the same ticket always gets the
    /// same number (see `migrations/0008_tickets.sql`).
    pub(crate) async fn draw_reference(
        &self,
        tenant: TenantId,
        id: TicketId,
        prefix: &str,
        year: i32,
    ) -> Result<Reference, TicketsError> {
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let existing: Option<(i32, i64)> = sqlx::query_as(
            "SELECT year, number FROM ticket_references WHERE tenant_id = $1 AND ticket_id = $2",
        )
        .bind(tenant.into_uuid())
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await?;
        let (year, number) = match existing {
            Some(found) => found,
            None => {
                let number: i64 = sqlx::query_scalar(
                    "INSERT INTO ticket_reference_counters (tenant_id, year, last) VALUES ($1, $2, 1) \
                     ON CONFLICT (tenant_id, year) DO UPDATE SET last = ticket_reference_counters.last + 1 \
                     RETURNING last",
                )
                .bind(tenant.into_uuid())
                .bind(year)
                .fetch_one(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO ticket_references (tenant_id, ticket_id, year, number) VALUES ($1, $2, $3, $4)",
                )
                .bind(tenant.into_uuid())
                .bind(id.0)
                .bind(year)
                .bind(number)
                .execute(&mut *tx)
                .await?;
                (year, number)
            }
        };
        tx.commit().await?;
        Ok(Reference::format(
            prefix,
            year,
            u64::try_from(number).unwrap_or(0),
        )?)
    }

    // -----------------------------------------------------------------------
    // Citizens and integrators
    // -----------------------------------------------------------------------

    /// Opens a ticket on the portal (`web`) or through the API (`api`).
    /// Refused with nothing written: a malformed field (`VALIDATION`, naming
    /// it), no way to reach the citizen, an unknown department or official
    /// (`NOT_FOUND`), an official who does not take public questions
    /// (`CONFLICT`), a suspended tenant (`TENANT_SUSPENDED`).
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant))]
    pub async fn open(
        &self,
        tenant: TenantId,
        origin: Origin,
        request: &OpenRequest,
    ) -> Result<OpenedTicket, TicketsError> {
        let active = self.tenancy.active_tenant(tenant).await?;
        let (channel, actor) = match &origin {
            Origin::Web => (
                Channel::Web,
                Actor::Citizen {
                    channel: "web".into(),
                },
            ),
            Origin::Api { key } => (
                Channel::Api,
                Actor::ApiKey {
                    id: key.to_string(),
                },
            ),
        };
        let subject = Subject::parse("subject", &request.subject)?;
        let body = Body::parse("body", &request.body)?;
        let contact = Contact::parse(
            request.name.as_deref(),
            request.email.as_deref(),
            request.phone.as_deref(),
            request.handle.as_deref(),
        )?;
        let directory = if request.kind.trim() == "question_for" {
            Some(self.tenancy.directory(tenant).await?)
        } else {
            None
        };
        let (kind, addressee_accepts) = parse_kind(
            &request.kind,
            request.department,
            request.official,
            directory.as_ref(),
        )?;
        let (id, message_id) = match request.idempotency_key {
            Some(key) => (
                TicketId(derived(key, "ticket")),
                MessageId(derived(key, "message")),
            ),
            None => (TicketId(Uuid::new_v4()), MessageId(Uuid::new_v4())),
        };
        let now = Utc::now();
        let calendar = self.tenancy.calendar(tenant).await?;
        let levels = self.service_levels(tenant).await?;
        let reference = self
            .draw_reference(tenant, id, &active.reference_prefix, calendar.year(now))
            .await?;
        let (token, tracking) = new_tracking_token()?;
        let command = TicketCommand::Open(Box::new(OpenTicket {
            id,
            kind,
            channel,
            contact,
            subject,
            body,
            message_id,
            platform_id: None,
            reference: reference.clone(),
            tracking,
            notify_citizen: request.notify,
            addressee_accepts,
            first_response_due: Some(calendar.due(now, levels.first_response)),
            resolution_due: Some(calendar.due(now, levels.resolution)),
        }));
        let mut ctx = CommandContext::new(tenant, now, actor);
        if let Some(key) = request.idempotency_key {
            ctx = ctx.with_idempotency_key(key);
        }
        let done = self
            .runner
            .execute::<Ticket>(&ctx, &domain::stream_id(id)?, &command)
            .await?;
        self.settle(done.position).await;
        let ticket = done.state.ticket.ok_or(TicketsError::NotFound)?;
        Ok(OpenedTicket {
            id,
            reference: ticket.reference.as_str().to_owned(),
            tracking_token: (!done.replayed && done.position.is_some()).then_some(token),
        })
    }

    /// What a citizen sees of their ticket with its reference and tracking
    /// token: its status and the conversation (never the internal notes).
    /// `NOT_FOUND` when the two do not match, whichever is wrong.
    pub async fn follow(
        &self,
        tenant: TenantId,
        reference: &str,
        token: &str,
    ) -> Result<CitizenView, TicketsError> {
        self.tenancy.active_tenant(tenant).await?;
        let reference = Reference::parse("reference", reference)?;
        let hash = tracking_hash(token)?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let id = inbox::find_by_tracking(&mut tx, reference.as_str(), hash.as_str())
            .await?
            .ok_or(TicketsError::NotFound)?;
        let view = inbox::ticket_view(&mut tx, TicketId(id))
            .await?
            .ok_or(TicketsError::NotFound)?;
        tx.commit().await?;
        Ok(CitizenView {
            reference: view.item.reference,
            status: view.item.status,
            subject: view.item.subject,
            opened_at: view.item.opened_at,
            messages: view.messages,
        })
    }

    // -----------------------------------------------------------------------
    // Staff
    // -----------------------------------------------------------------------

    /// An agent replies. The reply goes out on `channel` (by default the
    /// one the ticket came on), which must reach the citizen; its delivery
    /// is `pending` until the deliverer records how it went.
    #[tracing::instrument(skip_all, fields(tenant_id = %tenant, ticket = %id))]
    pub async fn reply(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TicketId,
        request: &ReplyRequest,
    ) -> Result<MessageId, TicketsError> {
        let agent = self.authorize(tenant, by, false).await?;
        let body = Body::parse("body", &request.body)?;
        let channel = request
            .channel
            .as_deref()
            .map(|c| Channel::parse("channel", c))
            .transpose()?;
        let ticket = self.load(tenant, id).await?;
        let ctx = Self::staff_ctx(tenant, agent);
        let business_time_since_opened = if ticket.first_response_at.is_none() {
            let calendar = self.tenancy.calendar(tenant).await?;
            Some(calendar.elapsed(ticket.opened_at, ctx.now))
        } else {
            None
        };
        let message_id = MessageId(Uuid::new_v4());
        let (_, position) = self
            .run(
                &ctx,
                id,
                &TicketCommand::Reply {
                    message_id,
                    by: agent,
                    body,
                    channel,
                    wait_for_citizen: request.wait_for_citizen,
                    business_time_since_opened,
                },
            )
            .await?;
        self.settle(position).await;
        Ok(message_id)
    }

    /// Adds an internal note (never sent to the citizen).
    pub async fn add_note(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TicketId,
        body: &str,
    ) -> Result<NoteId, TicketsError> {
        let agent = self.authorize(tenant, by, false).await?;
        let body = Body::parse("body", body)?;
        let note_id = NoteId(Uuid::new_v4());
        let (_, position) = self
            .run(
                &Self::staff_ctx(tenant, agent),
                id,
                &TicketCommand::AddNote {
                    note_id,
                    by: agent,
                    body,
                },
            )
            .await?;
        self.settle(position).await;
        Ok(note_id)
    }

    /// Assigns a ticket to an agent of the tenant, a department's queue, or
    /// nobody. An agent of another tenant, or unknown, is refused
    /// (`NOT_FOUND`), as is a department not in the directory.
    pub async fn assign(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TicketId,
        to: AssignTo,
    ) -> Result<(), TicketsError> {
        let agent = self.authorize(tenant, by, false).await?;
        let (to, in_tenant) = match to {
            AssignTo::Agent(staff) => {
                let member = self.tenancy.member(tenant, staff).await?;
                (
                    Assignee::Agent(AgentId(staff.0)),
                    member.is_some_and(|m| m.active),
                )
            }
            AssignTo::Department(d) => {
                let directory = self.tenancy.directory(tenant).await?;
                let known = directory
                    .department(ventanilla_tenants_domain::organisation::DepartmentId(d))
                    .is_some();
                (Assignee::Department(DepartmentId(d)), known)
            }
            AssignTo::Nobody => (Assignee::Nobody, true),
        };
        self.change(
            tenant,
            agent,
            id,
            TicketCommand::Assign {
                to,
                assignee_in_tenant: in_tenant,
            },
        )
        .await
    }

    /// Adds a tag.
    pub async fn tag(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TicketId,
        tag: &str,
    ) -> Result<(), TicketsError> {
        let agent = self.authorize(tenant, by, false).await?;
        let tag = Tag::parse("tag", tag)?;
        self.change(tenant, agent, id, TicketCommand::Tag { tag })
            .await
    }

    /// Removes a tag.
    pub async fn untag(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TicketId,
        tag: &str,
    ) -> Result<(), TicketsError> {
        let agent = self.authorize(tenant, by, false).await?;
        let tag = Tag::parse("tag", tag)?;
        self.change(tenant, agent, id, TicketCommand::Untag { tag })
            .await
    }

    /// Changes the priority (`low`, `normal`, `high`, `urgent`).
    pub async fn set_priority(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TicketId,
        priority: &str,
    ) -> Result<(), TicketsError> {
        let agent = self.authorize(tenant, by, false).await?;
        let priority = Priority::parse("priority", priority)?;
        self.change(tenant, agent, id, TicketCommand::SetPriority { priority })
            .await
    }

    /// Marks a ticket resolved.
    pub async fn resolve(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TicketId,
    ) -> Result<(), TicketsError> {
        let agent = self.authorize(tenant, by, false).await?;
        self.change(tenant, agent, id, TicketCommand::Resolve { by: agent })
            .await
    }

    /// Closes a ticket for good.
    pub async fn close(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TicketId,
    ) -> Result<(), TicketsError> {
        let agent = self.authorize(tenant, by, false).await?;
        self.change(tenant, agent, id, TicketCommand::Close { by: Some(agent) })
            .await
    }

    async fn change(
        &self,
        tenant: TenantId,
        agent: AgentId,
        id: TicketId,
        command: TicketCommand,
    ) -> Result<(), TicketsError> {
        let (_, position) = self
            .run(&Self::staff_ctx(tenant, agent), id, &command)
            .await?;
        self.settle(position).await;
        Ok(())
    }

    /// Merges `duplicate` into `into`: the duplicate is closed and points at
    /// the other; both keep their histories. Both tickets are checked before
    /// anything is written; a merge interrupted half-way is completed by
    /// asking again.
    pub async fn merge(
        &self,
        tenant: TenantId,
        by: StaffId,
        duplicate: TicketId,
        into: TicketId,
    ) -> Result<(), TicketsError> {
        let agent = self.authorize(tenant, by, false).await?;
        let source = self.load(tenant, duplicate).await?;
        let target = self.load(tenant, into).await?;
        let merge_into = TicketCommand::MergeInto {
            target: into,
            target_reference: target.reference.clone(),
            by: agent,
        };
        let merge_from = TicketCommand::MergeFrom {
            source: duplicate,
            source_reference: source.reference.clone(),
            messages: source.messages.len(),
        };
        // Decide both in memory first, so a refusal writes nothing.
        let now = Utc::now();
        let check = |t: TicketDetails, c: &TicketCommand| {
            let state = domain::TicketState { ticket: Some(t) };
            Ticket::decide(&state, c, now)
        };
        check(source, &merge_into)?;
        check(target, &merge_from)?;
        let ctx = Self::staff_ctx(tenant, agent);
        let (_, p1) = self.run(&ctx, duplicate, &merge_into).await?;
        let (_, p2) = self.run(&ctx, into, &merge_from).await?;
        self.settle(p2.or(p1)).await;
        Ok(())
    }

    /// Records how the delivery of a reply went (for the deliverers: the
    /// social service's reactor, the e-mail sender). Repeating an outcome is
    /// a no-op.
    pub async fn record_delivery(
        &self,
        tenant: TenantId,
        id: TicketId,
        message: MessageId,
        outcome: Delivery,
    ) -> Result<(), TicketsError> {
        let outcome = match outcome {
            Delivery::Sent { platform_id } => DeliveryOutcome::Sent { platform_id },
            Delivery::Failed { reason } => DeliveryOutcome::Failed {
                reason: Text::parse("reason", &reason, domain::FAILURE_REASON_MAX)?,
            },
        };
        let ctx = CommandContext::new(tenant, Utc::now(), Actor::system("delivery"));
        let (_, position) = self
            .run(
                &ctx,
                id,
                &TicketCommand::RecordDelivery {
                    message_id: message,
                    outcome,
                },
            )
            .await?;
        self.settle(position).await;
        Ok(())
    }

    /// Sets the tenant's response-time targets (business minutes) and
    /// reopening window (hours). Admins only. Tickets opened from now on use
    /// them; running clocks keep the due instants they were given.
    pub async fn configure_service_levels(
        &self,
        tenant: TenantId,
        by: StaffId,
        first_response_minutes: i64,
        resolution_minutes: i64,
        reopen_window_hours: i64,
    ) -> Result<ServiceLevelsState, TicketsError> {
        let agent = self.authorize(tenant, by, true).await?;
        let done = self
            .runner
            .execute::<ServiceLevels>(
                &Self::staff_ctx(tenant, agent),
                &service_levels::stream_id()?,
                &ServiceLevelsCommand::Configure {
                    first_response: Duration::minutes(first_response_minutes),
                    resolution: Duration::minutes(resolution_minutes),
                    reopen_window: Duration::hours(reopen_window_hours),
                },
            )
            .await?;
        Ok(done.state)
    }

    /// Records the breach of every overdue clock of ticket `id` at `now`
    /// and waits for the inbox to show it. Returns how many breaches were
    /// recorded (none when no clock is overdue). The breach timer runs the
    /// same step for every overdue ticket.
    pub async fn record_breaches(
        &self,
        tenant: TenantId,
        id: TicketId,
        now: DateTime<Utc>,
    ) -> Result<usize, TicketsError> {
        let (recorded, position) = self.breach_clocks(tenant, id, now).await?;
        self.settle(position).await;
        Ok(recorded)
    }

    /// Runs `RecordBreach` for both clocks of ticket `id` at `now`.
    pub(crate) async fn breach_clocks(
        &self,
        tenant: TenantId,
        id: TicketId,
        now: DateTime<Utc>,
    ) -> Result<(usize, Option<Position>), TicketsError> {
        let ctx = CommandContext::new(tenant, now, Actor::system("sla-timer"));
        let mut recorded = 0;
        let mut last = None;
        for clock in [Clock::FirstResponse, Clock::Resolution] {
            let done = self
                .runner
                .execute::<Ticket>(
                    &ctx,
                    &domain::stream_id(id)?,
                    &TicketCommand::RecordBreach { clock },
                )
                .await?;
            recorded += done.events.len();
            last = done.position.or(last);
        }
        Ok((recorded, last))
    }

    // -----------------------------------------------------------------------
    // Reads (staff)
    // -----------------------------------------------------------------------

    /// One page of the inbox. `after` is the `next` of the previous page;
    /// a malformed one is refused (`VALIDATION`).
    pub async fn inbox(
        &self,
        tenant: TenantId,
        by: StaffId,
        filter: &InboxFilter,
        sort: InboxSort,
        first: u32,
        after: Option<&str>,
    ) -> Result<InboxPage, TicketsError> {
        self.authorize(tenant, by, false).await?;
        let after = after
            .map(|a| {
                Cursor::decode(a).ok_or_else(|| {
                    InvalidValue::new("after", "is not a cursor this inbox gave; start again")
                })
            })
            .transpose()?;
        if let Some(kind) = &filter.kind
            && !inbox::kind_names().contains(&kind.as_str())
        {
            return Err(InvalidValue::new(
                "kind",
                "must be one of question, suggestion, question_for",
            )
            .into());
        }
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let page = inbox::inbox_page(&mut tx, filter, sort, first, after).await?;
        tx.commit().await?;
        Ok(page)
    }

    /// How many tickets are in each status.
    pub async fn status_counts(
        &self,
        tenant: TenantId,
        by: StaffId,
    ) -> Result<Vec<(String, i64)>, TicketsError> {
        self.authorize(tenant, by, false).await?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let counts = inbox::status_counts(&mut tx).await?;
        tx.commit().await?;
        Ok(counts)
    }

    /// The id of the ticket with this reference (`NOT_FOUND` when the
    /// tenant has none).
    pub async fn by_reference(
        &self,
        tenant: TenantId,
        by: StaffId,
        reference: &str,
    ) -> Result<TicketId, TicketsError> {
        self.authorize(tenant, by, false).await?;
        let reference = Reference::parse("reference", reference)?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let id = inbox::find_by_reference(&mut tx, reference.as_str()).await?;
        tx.commit().await?;
        id.map(TicketId).ok_or(TicketsError::NotFound)
    }

    /// A ticket with its whole thread and history.
    pub async fn ticket(
        &self,
        tenant: TenantId,
        by: StaffId,
        id: TicketId,
    ) -> Result<TicketView, TicketsError> {
        self.authorize(tenant, by, false).await?;
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let view = inbox::ticket_view(&mut tx, id).await?;
        tx.commit().await?;
        view.ok_or(TicketsError::NotFound)
    }

    /// The tickets `ids` of `tenant`, read whole, as [`Tickets::ticket`]
    /// reads one, in one transaction and three queries (staff; at most
    /// 100 ids). Ids the tenant does not have are absent from the answer.
    pub async fn tickets(
        &self,
        tenant: TenantId,
        by: StaffId,
        ids: &[TicketId],
    ) -> Result<HashMap<TicketId, TicketView>, TicketsError> {
        if ids.len() > MAX_BATCH {
            return Err(
                InvalidValue::new("ids", format!("at most {MAX_BATCH} tickets at once")).into(),
            );
        }
        self.authorize(tenant, by, false).await?;
        let ids: Vec<Uuid> = ids.iter().map(|t| t.0).collect();
        let mut tx = begin_for_tenant(&self.pool, tenant).await?;
        let views = inbox::ticket_views(&mut tx, &ids).await?;
        tx.commit().await?;
        Ok(views.into_iter().map(|(id, v)| (TicketId(id), v)).collect())
    }
}

/// Most tickets [`Tickets::tickets`] reads at once.
pub const MAX_BATCH: usize = 100;

/// How a delivery went, as a deliverer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Handed to the channel.
    Sent {
        /// The platform's id of the sent message.
        platform_id: Option<String>,
    },
    /// Refused by the channel, with a reason a person understands.
    Failed {
        /// Why.
        reason: String,
    },
}

/// What a citizen sees of their ticket.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CitizenView {
    /// Its reference.
    pub reference: String,
    /// Where it is in the workflow.
    pub status: String,
    /// The subject.
    pub subject: String,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// The conversation (no internal notes).
    pub messages: Vec<MessageView>,
}

/// Parses the kind of a request and, for `question_for`, whom it is
/// addressed to and what the directory says of them.
fn parse_kind(
    kind: &str,
    department: Option<Uuid>,
    official: Option<Uuid>,
    directory: Option<&DirectoryState>,
) -> Result<(Kind, Option<bool>), TicketsError> {
    use ventanilla_tenants_domain::organisation as dir;
    let addressed = department.is_some() || official.is_some();
    match kind.trim() {
        "question" | "suggestion" if addressed => Err(InvalidValue::new(
            "kind",
            "only a question_for is addressed to a department or official; use question_for or leave them out",
        )
        .into()),
        "question" => Ok((Kind::Question, None)),
        "suggestion" => Ok((Kind::Suggestion, None)),
        "question_for" => {
            let empty = DirectoryState::default();
            let directory = directory.unwrap_or(&empty);
            match (department, official) {
                (Some(_), Some(_)) => Err(InvalidValue::new(
                    "official",
                    "address the question to a department or to an official, not both",
                )
                .into()),
                (None, None) => Err(InvalidValue::new(
                    "department",
                    "a question_for needs a department or an official",
                )
                .into()),
                (Some(d), None) => Ok((
                    Kind::QuestionFor(Addressee::Department(DepartmentId(d))),
                    directory.department(dir::DepartmentId(d)).map(|_| true),
                )),
                (None, Some(o)) => {
                    let found = directory.official(dir::OfficialId(o));
                    Ok((
                        Kind::QuestionFor(Addressee::Official {
                            official: OfficialId(o),
                            department: found
                                .and_then(|f| f.department)
                                .map(|d| DepartmentId(d.0)),
                        }),
                        found.map(|f| f.accepts_public_questions),
                    ))
                }
            }
        }
        other => {
            let shown: String = other.chars().take(40).collect();
            Err(InvalidValue::new(
                "kind",
                format!("{shown:?} is not a kind of request; use question, suggestion or question_for"),
            )
            .into())
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn kinds_are_parsed_and_misaddressed_requests_refused() {
        let d = Uuid::from_u128(1);
        assert_eq!(
            parse_kind("question", None, None, None).unwrap(),
            (Kind::Question, None)
        );
        let e = parse_kind("suggestion", Some(d), None, None).unwrap_err();
        assert_eq!(e.field(), Some("kind"));
        let e = parse_kind("question_for", None, None, None).unwrap_err();
        assert_eq!(e.field(), Some("department"));
        let e = parse_kind("question_for", Some(d), Some(d), None).unwrap_err();
        assert_eq!(e.field(), Some("official"));
        // Unknown in the directory: the decider refuses it (NOT_FOUND).
        assert_eq!(
            parse_kind("question_for", Some(d), None, None).unwrap().1,
            None
        );
        assert_eq!(
            parse_kind("complaint", None, None, None)
                .unwrap_err()
                .field(),
            Some("kind")
        );
    }

    #[test]
    fn ids_derived_from_a_key_are_stable_and_distinct() {
        let k = Uuid::from_u128(9);
        assert_eq!(derived(k, "ticket"), derived(k, "ticket"));
        assert_ne!(derived(k, "ticket"), derived(k, "message"));
    }
}
