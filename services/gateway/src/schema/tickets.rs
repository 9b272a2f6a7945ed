//! The tickets area: the inbox as a Relay connection, a ticket with its
//! thread, and what agents do to tickets (reply, assign, tag, note,
//! priority, merge, resolve, close). Every mutation answers with the
//! ticket as it is after the change (the tickets service waits for its read
//! model, so this is read-your-writes).
//!
//! Everything here is staff-only and in the principal's tenant; ticket ids
//! are global ids ([`super::ids`]).
//!
//! A ticket's thread, notes and clocks are read whole once per ticket and
//! request, and the tickets of one request are read together
//! ([`TicketLoader`]): an inbox page asking for its threads costs three
//! queries, not three per ticket.
//!
//! What this module must not do: decide anything about tickets (the tickets
//! service does), or read a table.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, Enum, ID, InputObject, Object, OneofObject, Result, SimpleObject};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::OnceCell;
use uuid::Uuid;
use ventanilla_kernel::TenantId;
use ventanilla_tenants_domain::staff::StaffId;
use ventanilla_tickets::error::TicketsError;
use ventanilla_tickets::inbox::{self, Cursor, InboxItem, MessageView, TicketView};
use ventanilla_tickets::service::{AssignTo as ServiceAssignTo, MAX_BATCH, ReplyRequest};
use ventanilla_tickets_domain::ticket::{Status, TicketId};

use super::access::{self, services};
use super::{Services, ids};
use crate::auth::StaffPrincipal;
use crate::error::{INTERNAL_MESSAGE, code, coded, invalid, service_error};

/// Declares a GraphQL enum whose values are stored as lowercase strings
/// by the tickets service.
macro_rules! stored_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $stored:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The value as the tickets service stores it.
            pub fn as_stored(self) -> &'static str {
                match self {
                    $(Self::$variant => $stored),+
                }
            }

            /// The value the tickets service stored as `s`.
            pub fn from_stored(s: &str) -> Option<Self> {
                match s {
                    $($stored => Some(Self::$variant),)+
                    _ => None,
                }
            }
        }
    };
}

stored_enum!(
    /// Where a ticket is in its workflow.
    TicketStatus {
        /// Just opened; nobody has answered yet.
        New => "new",
        /// Being worked on.
        Open => "open",
        /// The staff asked the citizen something and wait for the answer.
        WaitingOnCitizen => "waiting_on_citizen",
        /// Answered; the citizen may still write again for a while.
        Resolved => "resolved",
        /// The citizen wrote again after it was resolved.
        Reopened => "reopened",
        /// Finished for good (or merged into another ticket).
        Closed => "closed",
    }
);

stored_enum!(
    /// What the citizen asked for.
    TicketKind {
        /// A question to the organisation.
        Question => "question",
        /// A suggestion.
        Suggestion => "suggestion",
        /// A question for a named department or official.
        QuestionFor => "question_for",
    }
);

stored_enum!(
    /// How urgent a ticket is.
    Priority {
        /// Can wait.
        Low => "low",
        /// The default.
        Normal => "normal",
        /// Before the normal ones.
        High => "high",
        /// At once.
        Urgent => "urgent",
    }
);

stored_enum!(
    /// Where a message came from or goes to.
    Channel {
        /// The organisation's citizen portal.
        Web => "web",
        /// An integrator, through this API.
        Api => "api",
        /// E-mail.
        Email => "email",
        /// X (formerly Twitter).
        X => "x",
        /// Facebook.
        Facebook => "facebook",
        /// Instagram.
        Instagram => "instagram",
        /// Mastodon.
        Mastodon => "mastodon",
        /// Telegram.
        Telegram => "telegram",
        /// Bluesky.
        Bluesky => "bluesky",
        /// WhatsApp.
        Whatsapp => "whatsapp",
    }
);

stored_enum!(
    /// Whether a message came from the citizen or went to them.
    MessageDirection {
        /// From the citizen.
        In => "in",
        /// A reply to the citizen.
        Out => "out",
    }
);

stored_enum!(
    /// How the delivery of a reply went.
    DeliveryState {
        /// Not handed to its channel yet.
        Pending => "pending",
        /// Handed to its channel.
        Sent => "sent",
        /// The channel says it reached the citizen's device.
        Delivered => "delivered",
        /// The channel says the citizen read it.
        Read => "read",
        /// Its channel refused it (see `failureReason`).
        Failed => "failed",
    }
);

/// How an inbox page is ordered.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InboxSort {
    /// Most recent activity first.
    #[default]
    LastActivity,
    /// Soonest due first; tickets with no running clock last.
    DueTime,
}

impl TicketStatus {
    fn to_domain(self) -> Status {
        match self {
            TicketStatus::New => Status::New,
            TicketStatus::Open => Status::Open,
            TicketStatus::WaitingOnCitizen => Status::WaitingOnCitizen,
            TicketStatus::Resolved => Status::Resolved,
            TicketStatus::Reopened => Status::Reopened,
            TicketStatus::Closed => Status::Closed,
        }
    }
}

/// A stored value this API has no name for: the read model and the API
/// disagree, which is our bug, not the caller's.
pub(super) fn stored<T>(what: &str, value: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    parse(value).ok_or_else(|| {
        tracing::error!(
            what,
            value,
            "a stored value the GraphQL schema does not know"
        );
        coded(code::INTERNAL, INTERNAL_MESSAGE)
    })
}

/// Which tickets an inbox page shows: every filter given must hold.
#[derive(InputObject, Debug, Default)]
#[graphql(name = "InboxFilter")]
pub struct InboxFilterInput {
    /// In this status.
    pub status: Option<TicketStatus>,
    /// Of this kind.
    pub kind: Option<TicketKind>,
    /// In this department's queue.
    pub department_id: Option<Uuid>,
    /// Assigned to this staff member.
    pub assignee_id: Option<Uuid>,
    /// Assigned to nobody (when true).
    pub unassigned: Option<bool>,
    /// Came on this channel.
    pub channel: Option<Channel>,
    /// Has this tag.
    pub tag: Option<String>,
    /// Whether a response-time clock was breached.
    pub breached: Option<bool>,
}

impl InboxFilterInput {
    fn to_service(&self) -> Result<inbox::InboxFilter> {
        let channel = self
            .channel
            .map(|c| {
                ventanilla_tickets_domain::values::Channel::parse("filter.channel", c.as_stored())
                    .map_err(|e| invalid("filter.channel", e.to_string()))
            })
            .transpose()?;
        Ok(inbox::InboxFilter {
            status: self.status.map(TicketStatus::to_domain),
            kind: self.kind.map(|k| k.as_stored().to_owned()),
            department: self.department_id,
            assignee: self.assignee_id,
            unassigned: self.unassigned.unwrap_or(false),
            channel,
            tag: self.tag.clone(),
            breached: self.breached,
        })
    }
}

/// To whom a ticket is given: exactly one of these.
#[derive(OneofObject, Debug)]
pub enum AssignTo {
    /// A staff member of the organisation.
    AgentId(Uuid),
    /// A department's queue (the agent, if any, lets it go).
    DepartmentId(Uuid),
    /// Nobody: the agent lets it go; the queue is kept. Must be true.
    Nobody(bool),
}

/// How to reach the citizen, as they gave it.
#[derive(SimpleObject, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Contact {
    /// Their name.
    pub name: Option<String>,
    /// Their e-mail address.
    pub email: Option<String>,
    /// Their phone number.
    pub phone: Option<String>,
    /// Their handle on the channel they wrote on.
    pub handle: Option<String>,
}

/// One message of a ticket's conversation.
pub struct Message(MessageView);

/// One message of a ticket's conversation: from the citizen, or a reply.
#[Object]
impl Message {
    /// Its id.
    async fn id(&self) -> Uuid {
        self.0.message_id
    }

    /// From the citizen or to them.
    async fn direction(&self) -> Result<MessageDirection> {
        stored(
            "message direction",
            &self.0.direction,
            MessageDirection::from_stored,
        )
    }

    /// The channel it came or went on.
    async fn channel(&self) -> Result<Channel> {
        stored("channel", &self.0.channel, Channel::from_stored)
    }

    /// What it says.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// For a reply, the staff member who wrote it.
    async fn author_id(&self) -> Option<Uuid> {
        self.0.author_id
    }

    /// For a reply, how its delivery went.
    async fn delivery_state(&self) -> Result<Option<DeliveryState>> {
        self.0
            .delivery_state
            .as_deref()
            .map(|s| stored("delivery state", s, DeliveryState::from_stored))
            .transpose()
    }

    /// For a reply its channel refused, why.
    async fn failure_reason(&self) -> Option<&str> {
        self.0.failure_reason.as_deref()
    }

    /// When it was recorded.
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
}

/// An internal note: staff only, never sent to the citizen.
#[derive(SimpleObject, Debug)]
pub struct Note {
    /// Its id.
    pub id: Uuid,
    /// The staff member who wrote it.
    pub author_id: Uuid,
    /// What it says.
    pub body: String,
    /// When it was written.
    pub at: DateTime<Utc>,
}

/// What a `ticket.note_added` event records.
#[derive(Deserialize)]
struct NoteData {
    note_id: Uuid,
    by: Uuid,
    body: String,
    at: DateTime<Utc>,
}

/// A citizen's request and its conversation.
pub struct Ticket {
    item: InboxItem,
    /// The whole ticket (thread, history, clocks), loaded when a field
    /// needs it, once.
    detail: OnceCell<TicketView>,
}

impl Ticket {
    /// A ticket as the inbox lists it.
    pub fn from_item(item: InboxItem) -> Self {
        Self {
            item,
            detail: OnceCell::new(),
        }
    }

    /// A ticket read whole.
    pub fn from_view(view: TicketView) -> Self {
        Self {
            item: view.item.clone(),
            detail: OnceCell::new_with(Some(view)),
        }
    }

    /// Its global id.
    pub fn global_id(&self) -> ID {
        ids::encode(ids::TICKET, self.item.ticket_id)
    }

    async fn detail(&self, ctx: &Context<'_>) -> Result<&TicketView> {
        self.detail
            .get_or_try_init(|| async {
                let by = access::staff_reader(ctx)?;
                let loader = ctx.data::<DataLoader<TicketLoader>>().map_err(|_| {
                    tracing::error!("the schema was built without its ticket loader");
                    coded(code::INTERNAL, INTERNAL_MESSAGE)
                })?;
                let key = TicketKey {
                    tenant: by.tenant,
                    staff: by.staff,
                    ticket: self.item.ticket_id,
                };
                loader
                    .load_one(key)
                    .await
                    .map_err(|e| service_error(&*e))?
                    .ok_or_else(|| service_error(&TicketsError::NotFound))
            })
            .await
    }
}

/// A ticket to read whole, for whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TicketKey {
    tenant: TenantId,
    staff: StaffId,
    ticket: Uuid,
}

/// Reads together the tickets the fields of a request ask for whole (the
/// loader waits a moment for them to gather), through the tickets
/// service's batch read, per tenant and staff member.
pub struct TicketLoader {
    services: Arc<Services>,
}

impl TicketLoader {
    /// The loader for a schema, to be wrapped in a [`DataLoader`].
    pub fn new(services: Arc<Services>) -> Self {
        Self { services }
    }
}

impl Loader<TicketKey> for TicketLoader {
    type Value = TicketView;
    type Error = Arc<TicketsError>;

    async fn load(
        &self,
        keys: &[TicketKey],
    ) -> Result<HashMap<TicketKey, TicketView>, Self::Error> {
        let mut asked: HashMap<(TenantId, StaffId), Vec<TicketId>> = HashMap::new();
        for k in keys {
            asked
                .entry((k.tenant, k.staff))
                .or_default()
                .push(TicketId(k.ticket));
        }
        let mut found = HashMap::with_capacity(keys.len());
        for ((tenant, staff), ids) in asked {
            for chunk in ids.chunks(MAX_BATCH) {
                let views = self
                    .services
                    .tickets
                    .tickets(tenant, staff, chunk)
                    .await
                    .map_err(Arc::new)?;
                found.extend(views.into_iter().map(|(id, view)| {
                    (
                        TicketKey {
                            tenant,
                            staff,
                            ticket: id.0,
                        },
                        view,
                    )
                }));
            }
        }
        Ok(found)
    }
}

/// A citizen's request (a question, a suggestion, a question for a
/// department or an official) and its conversation.
#[Object]
impl Ticket {
    /// Its global id.
    pub async fn id(&self) -> ID {
        self.global_id()
    }

    /// Its human reference, e.g. `LUGO-2026-000042`.
    async fn reference(&self) -> &str {
        &self.item.reference
    }

    /// What the citizen asked for.
    async fn kind(&self) -> Result<TicketKind> {
        stored("ticket kind", &self.item.kind, TicketKind::from_stored)
    }

    /// Where it is in the workflow.
    async fn status(&self) -> Result<TicketStatus> {
        stored(
            "ticket status",
            &self.item.status,
            TicketStatus::from_stored,
        )
    }

    /// The channel it came on.
    async fn channel(&self) -> Result<Channel> {
        stored("channel", &self.item.channel, Channel::from_stored)
    }

    /// Its subject.
    async fn subject(&self) -> &str {
        &self.item.subject
    }

    /// How to reach the citizen.
    async fn contact(&self) -> Result<Contact> {
        serde_json::from_value(self.item.contact.clone()).map_err(|e| {
            tracing::error!(error = %e, "a ticket's contact is not the shape expected");
            coded(code::INTERNAL, INTERNAL_MESSAGE)
        })
    }

    /// The department whose queue it is in.
    async fn department_id(&self) -> Option<Uuid> {
        self.item.department_id
    }

    /// The staff member working it.
    async fn assignee_id(&self) -> Option<Uuid> {
        self.item.assignee_id
    }

    /// Its tags.
    async fn tags(&self) -> &[String] {
        &self.item.tags
    }

    /// How urgent it is.
    async fn priority(&self) -> Result<Priority> {
        stored("priority", &self.item.priority, Priority::from_stored)
    }

    /// When it was opened.
    async fn opened_at(&self) -> DateTime<Utc> {
        self.item.opened_at
    }

    /// Its last activity.
    async fn last_activity_at(&self) -> DateTime<Utc> {
        self.item.last_activity_at
    }

    /// Whether the citizen wrote last (an answer is owed).
    async fn awaiting_reply(&self) -> bool {
        self.item.awaiting_reply
    }

    /// How many messages its conversation has.
    async fn messages_count(&self) -> i32 {
        self.item.messages_count
    }

    /// When the next running response-time clock falls due.
    async fn due_at(&self) -> Option<DateTime<Utc>> {
        self.item.due_at
    }

    /// Whether a response-time clock was breached.
    async fn breached(&self) -> bool {
        self.item.breached
    }

    /// When the staff first replied. Reads the whole ticket.
    #[graphql(complexity = 5)]
    async fn first_response_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        Ok(self.detail(ctx).await?.first_response_at)
    }

    /// When it was resolved. Reads the whole ticket.
    #[graphql(complexity = 5)]
    async fn resolved_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        Ok(self.detail(ctx).await?.resolved_at)
    }

    /// When it was closed. Reads the whole ticket.
    #[graphql(complexity = 5)]
    async fn closed_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime<Utc>>> {
        Ok(self.detail(ctx).await?.closed_at)
    }

    /// The ticket it was merged into. Reads the whole ticket.
    #[graphql(complexity = 5)]
    async fn merged_into(&self, ctx: &Context<'_>) -> Result<Option<ID>> {
        Ok(self
            .detail(ctx)
            .await?
            .merged_into
            .map(|t| ids::encode(ids::TICKET, t)))
    }

    /// The conversation, oldest first. Reads the whole ticket.
    #[graphql(complexity = "10 + child_complexity")]
    async fn messages(&self, ctx: &Context<'_>) -> Result<Vec<Message>> {
        Ok(self
            .detail(ctx)
            .await?
            .messages
            .iter()
            .cloned()
            .map(Message)
            .collect())
    }

    /// The internal notes, oldest first (staff only). Reads the whole
    /// ticket.
    #[graphql(complexity = "10 + child_complexity")]
    async fn notes(&self, ctx: &Context<'_>) -> Result<Vec<Note>> {
        access::staff_reader(ctx)?;
        self.detail(ctx)
            .await?
            .history
            .iter()
            .filter(|h| h.event_type == "ticket.note_added")
            .map(|h| {
                serde_json::from_value::<NoteData>(h.data.clone())
                    .map(|n| Note {
                        id: n.note_id,
                        author_id: n.by,
                        body: n.body,
                        at: n.at,
                    })
                    .map_err(|e| {
                        tracing::error!(error = %e, "a note in a ticket's history is not the shape expected");
                        coded(code::INTERNAL, INTERNAL_MESSAGE)
                    })
            })
            .collect()
    }
}

/// A ticket of the principal's tenant, read whole (`NOT_FOUND` when the
/// tenant has no such ticket, whoever else may have it).
pub async fn load(ctx: &Context<'_>, by: StaffPrincipal, id: TicketId) -> Result<Ticket> {
    let view = services(ctx)?
        .tickets
        .ticket(by.tenant, by.staff, id)
        .await
        .map_err(|e| service_error(&e))?;
    Ok(Ticket::from_view(view))
}

/// The inbox page: Relay's connection of tickets.
pub type InboxConnection = Connection<String, Ticket>;

/// How many of the organisation's tickets are in each status now: the
/// figures beside the inbox's tabs. Read from counters the tickets service
/// keeps as it records changes, so asking costs one small query.
#[derive(SimpleObject, Debug, Default, PartialEq, Eq)]
pub struct TicketCounts {
    /// Just opened; nobody has answered yet.
    pub new: i64,
    /// Being worked on.
    pub open: i64,
    /// Waiting for the citizen's answer.
    pub waiting_on_citizen: i64,
    /// Answered.
    pub resolved: i64,
    /// Written to again after they were resolved.
    pub reopened: i64,
    /// Finished for good (merged ones too).
    pub closed: i64,
    /// All of them.
    pub total: i64,
}

impl TicketCounts {
    fn from_stored(counts: &[(String, i64)]) -> Self {
        let mut out = Self::default();
        for (status, n) in counts {
            out.total += n;
            let Some(known) = TicketStatus::from_stored(status) else {
                tracing::warn!(status, "a ticket status the schema does not know");
                continue;
            };
            *match known {
                TicketStatus::New => &mut out.new,
                TicketStatus::Open => &mut out.open,
                TicketStatus::WaitingOnCitizen => &mut out.waiting_on_citizen,
                TicketStatus::Resolved => &mut out.resolved,
                TicketStatus::Reopened => &mut out.reopened,
                TicketStatus::Closed => &mut out.closed,
            } += n;
        }
        out
    }
}

/// Reading tickets.
#[derive(Default)]
pub struct TicketsQuery;

#[Object]
impl TicketsQuery {
    /// How many of the organisation's tickets are in each status now.
    /// Staff only.
    async fn ticket_counts(&self, ctx: &Context<'_>) -> Result<TicketCounts> {
        let by = access::staff_reader(ctx)?;
        let counts = services(ctx)?
            .tickets
            .status_counts(by.tenant, by.staff)
            .await
            .map_err(|e| service_error(&e))?;
        Ok(TicketCounts::from_stored(&counts))
    }

    /// The organisation's inbox, a page at a time: `first` tickets (at most
    /// the server's page size, 100 by default) after the cursor `after`
    /// (the `endCursor` of the previous page). Staff only.
    #[graphql(complexity = "first.clamp(1, 100) as usize * child_complexity + 1")]
    async fn inbox(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 25)] first: i32,
        after: Option<String>,
        filter: Option<InboxFilterInput>,
        #[graphql(default)] sort: InboxSort,
    ) -> Result<InboxConnection> {
        let by = access::staff_reader(ctx)?;
        let services = services(ctx)?;
        let max = services.max_page_size.clamp(1, inbox::MAX_PAGE);
        let first = u32::try_from(first)
            .ok()
            .filter(|f| (1..=max).contains(f))
            .ok_or_else(|| invalid("first", format!("first: must be between 1 and {max}")))?;
        let filter = filter.unwrap_or_default().to_service()?;
        let service_sort = match sort {
            InboxSort::LastActivity => inbox::InboxSort::LastActivity,
            InboxSort::DueTime => inbox::InboxSort::DueTime,
        };
        let page = services
            .tickets
            .inbox(
                by.tenant,
                by.staff,
                &filter,
                service_sort,
                first,
                after.as_deref(),
            )
            .await
            .map_err(|e| service_error(&e))?;
        let mut connection = Connection::new(after.is_some(), page.next.is_some());
        connection.edges = page
            .items
            .into_iter()
            .map(|item| {
                let cursor = Cursor {
                    key: match sort {
                        InboxSort::LastActivity => Some(item.last_activity_at),
                        InboxSort::DueTime => item.due_at,
                    },
                    ticket: item.ticket_id,
                }
                .encode();
                Edge::new(cursor, Ticket::from_item(item))
            })
            .collect();
        Ok(connection)
    }

    /// A ticket of the organisation with its thread. Staff only;
    /// `NOT_FOUND` when the organisation has no ticket with this id.
    async fn ticket(&self, ctx: &Context<'_>, id: ID) -> Result<Ticket> {
        let by = access::staff_reader(ctx)?;
        let id = ids::ticket("id", &id)?;
        load(ctx, by, id).await
    }

    /// The organisation's ticket with this reference (`AYTO-2026-000042`:
    /// what a citizen quotes on the phone or in a mail), with its thread.
    /// Staff only; `NOT_FOUND` when the organisation has none, `VALIDATION`
    /// when it is not shaped like a reference.
    async fn ticket_by_reference(&self, ctx: &Context<'_>, reference: String) -> Result<Ticket> {
        let by = access::staff_reader(ctx)?;
        let id = services(ctx)?
            .tickets
            .by_reference(by.tenant, by.staff, reference.trim())
            .await
            .map_err(|e| service_error(&e))?;
        load(ctx, by, id).await
    }
}

/// What agents do to tickets. Each answers with the ticket after the
/// change.
#[derive(Default)]
pub struct TicketsMutation;

#[Object]
impl TicketsMutation {
    /// Replies to the citizen, on `channel` (by default the one the ticket
    /// came on). `waitForCitizen`: the reply asks something and the ticket
    /// waits for the answer.
    async fn reply(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        body: String,
        #[graphql(default)] wait_for_citizen: bool,
        channel: Option<Channel>,
    ) -> Result<Ticket> {
        let by = access::staff_writer(ctx)?;
        let id = ids::ticket("ticketId", &ticket_id)?;
        let request = ReplyRequest {
            body,
            channel: channel.map(|c| c.as_stored().to_owned()),
            wait_for_citizen,
        };
        services(ctx)?
            .tickets
            .reply(by.tenant, by.staff, id, &request)
            .await
            .map_err(|e| service_error(&e))?;
        load(ctx, by, id).await
    }

    /// Gives the ticket to a staff member, a department's queue, or nobody.
    async fn assign(&self, ctx: &Context<'_>, ticket_id: ID, to: AssignTo) -> Result<Ticket> {
        let by = access::staff_writer(ctx)?;
        let id = ids::ticket("ticketId", &ticket_id)?;
        let to = match to {
            AssignTo::AgentId(agent) => ServiceAssignTo::Agent(StaffId(agent)),
            AssignTo::DepartmentId(department) => ServiceAssignTo::Department(department),
            AssignTo::Nobody(true) => ServiceAssignTo::Nobody,
            AssignTo::Nobody(false) => {
                return Err(invalid(
                    "to.nobody",
                    "to.nobody: must be true; to give the ticket to someone use agentId or departmentId",
                ));
            }
        };
        services(ctx)?
            .tickets
            .assign(by.tenant, by.staff, id, to)
            .await
            .map_err(|e| service_error(&e))?;
        load(ctx, by, id).await
    }

    /// Adds a tag.
    async fn tag(&self, ctx: &Context<'_>, ticket_id: ID, tag: String) -> Result<Ticket> {
        let by = access::staff_writer(ctx)?;
        let id = ids::ticket("ticketId", &ticket_id)?;
        services(ctx)?
            .tickets
            .tag(by.tenant, by.staff, id, &tag)
            .await
            .map_err(|e| service_error(&e))?;
        load(ctx, by, id).await
    }

    /// Removes a tag.
    async fn untag(&self, ctx: &Context<'_>, ticket_id: ID, tag: String) -> Result<Ticket> {
        let by = access::staff_writer(ctx)?;
        let id = ids::ticket("ticketId", &ticket_id)?;
        services(ctx)?
            .tickets
            .untag(by.tenant, by.staff, id, &tag)
            .await
            .map_err(|e| service_error(&e))?;
        load(ctx, by, id).await
    }

    /// Adds an internal note (never sent to the citizen).
    async fn add_note(&self, ctx: &Context<'_>, ticket_id: ID, body: String) -> Result<Ticket> {
        let by = access::staff_writer(ctx)?;
        let id = ids::ticket("ticketId", &ticket_id)?;
        services(ctx)?
            .tickets
            .add_note(by.tenant, by.staff, id, &body)
            .await
            .map_err(|e| service_error(&e))?;
        load(ctx, by, id).await
    }

    /// Changes how urgent the ticket is.
    async fn set_priority(
        &self,
        ctx: &Context<'_>,
        ticket_id: ID,
        priority: Priority,
    ) -> Result<Ticket> {
        let by = access::staff_writer(ctx)?;
        let id = ids::ticket("ticketId", &ticket_id)?;
        services(ctx)?
            .tickets
            .set_priority(by.tenant, by.staff, id, priority.as_stored())
            .await
            .map_err(|e| service_error(&e))?;
        load(ctx, by, id).await
    }

    /// Merges the duplicate `ticketId` into `intoTicketId`: the duplicate is
    /// closed and points at the other (`mergedInto`); both keep their
    /// histories. Both must be tickets of the organisation (`NOT_FOUND`
    /// otherwise); a refusal writes nothing. Answers with the duplicate.
    async fn merge(&self, ctx: &Context<'_>, ticket_id: ID, into_ticket_id: ID) -> Result<Ticket> {
        let by = access::staff_writer(ctx)?;
        let id = ids::ticket("ticketId", &ticket_id)?;
        let into = ids::ticket("intoTicketId", &into_ticket_id)?;
        services(ctx)?
            .tickets
            .merge(by.tenant, by.staff, id, into)
            .await
            .map_err(|e| service_error(&e))?;
        load(ctx, by, id).await
    }

    /// Marks the ticket resolved (the citizen may still write again for a
    /// while, which reopens it).
    async fn resolve(&self, ctx: &Context<'_>, ticket_id: ID) -> Result<Ticket> {
        let by = access::staff_writer(ctx)?;
        let id = ids::ticket("ticketId", &ticket_id)?;
        services(ctx)?
            .tickets
            .resolve(by.tenant, by.staff, id)
            .await
            .map_err(|e| service_error(&e))?;
        load(ctx, by, id).await
    }

    /// Closes the ticket for good.
    async fn close(&self, ctx: &Context<'_>, ticket_id: ID) -> Result<Ticket> {
        let by = access::staff_writer(ctx)?;
        let id = ids::ticket("ticketId", &ticket_id)?;
        services(ctx)?
            .tickets
            .close(by.tenant, by.staff, id)
            .await
            .map_err(|e| service_error(&e))?;
        load(ctx, by, id).await
    }
}
