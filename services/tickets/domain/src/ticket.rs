//! A citizen's ticket as an event-sourced aggregate, stream `ticket-<uuid>`
//! in the tenant: opened from any channel as a question, a suggestion or a
//! question for a department or official; worked through the workflow
//! new → open → waiting_on_citizen → resolved → closed (reopened when the
//! citizen writes again within a window); assigned to an agent or a
//! department's queue; tagged, prioritised, annotated with internal notes;
//! merged into another ticket when it is a duplicate. Every inbound message
//! and every outbound reply is an event on the ticket, and every change of
//! status is also recorded as `ticket.status_changed`, so a subscriber
//! ("Avísame cuando…") can follow the moves.
//!
//! What this module must not do: read a clock (commands are decided at the
//! `now` the command path gives), draw ids or tokens (new ids and the
//! tracking token's hash travel inside commands), look anything up, or keep
//! time (response-time clocks and reminders are the service's; the state
//! only records the first response and the resolution instants). Facts only
//! the service can know come inside the commands:
//! - whether the department or official a question is addressed to is in
//!   the tenant's directory, and whether the official accepts public
//!   questions ([`OpenTicket::addressee_accepts`]);
//! - whether an agent is staff of this tenant, or a department is in its
//!   directory ([`TicketCommand::Assign`]);
//! - the window in which a citizen's message reopens a resolved ticket
//!   ([`TicketCommand::ReceiveMessage`]); after it, or on a closed ticket,
//!   the command is refused with [`TicketError::StartNewTicket`] and the
//!   service opens a new ticket for the message.
//!
//! # Merging, step by step (the service's job)
//!
//! Merging touches two streams, which cannot be written atomically. The
//! service loads both tickets, decides [`TicketCommand::MergeInto`] on the
//! duplicate and [`TicketCommand::MergeFrom`] on the target in memory (so
//! either refusal stops it before anything is written), then runs
//! `MergeInto` on the duplicate and `MergeFrom` on the target. Both are
//! no-ops when repeated, so a merge interrupted between the two is completed
//! by running it again.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError};

use crate::values::{
    Addressee, AgentId, Body, Channel, Contact, DepartmentId, InvalidValue, Kind, OfficialId,
    Priority, Reference, Subject, Tag, Text, TrackingTokenHash,
};
use ventanilla_kernel::uuid_newtype;

/// The most tags a ticket can have.
pub const MAX_TAGS: usize = 20;

/// The longest platform id of a message (an e-mail's `Message-ID`, a
/// social network's post or message id), in characters.
pub const PLATFORM_ID_MAX: usize = 1000;

/// The longest reason a delivery failed, in characters.
pub const FAILURE_REASON_MAX: usize = 500;

uuid_newtype!(
    /// Identifies a ticket within the tenant.
    TicketId
);

uuid_newtype!(
    /// Identifies a message (inbound or outbound) on a ticket. For an
    /// inbound message the service derives it from the platform's message
    /// id, so a message delivered twice is recorded once.
    MessageId
);

uuid_newtype!(
    /// Identifies an internal note on a ticket.
    NoteId
);

/// The stream of one ticket: `ticket-<uuid>`, in the tenant's space.
pub fn stream_id(id: TicketId) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("ticket", id.0)
}

/// Where a ticket is in its workflow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Just opened; nobody has answered yet.
    New,
    /// Being worked on by the staff.
    Open,
    /// The staff asked the citizen something and waits for the answer.
    WaitingOnCitizen,
    /// Answered; the citizen may still write again within the reopening
    /// window.
    Resolved,
    /// The citizen wrote again within the window. A ticket passes through
    /// this status on its way back to `open` (both moves are recorded), and
    /// is never left in it.
    Reopened,
    /// Finished for good (or merged into another ticket).
    Closed,
}

impl Status {
    /// The status's name as stored and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Open => "open",
            Status::WaitingOnCitizen => "waiting_on_citizen",
            Status::Resolved => "resolved",
            Status::Reopened => "reopened",
            Status::Closed => "closed",
        }
    }
}

/// Whether a message came from the citizen or went to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the citizen.
    In,
    /// A reply from the staff.
    Out,
}

/// Where an outbound message is in its delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryState {
    /// Not delivered yet.
    Pending,
    /// Handed to the channel.
    Sent {
        /// The platform's id of the sent message, if it gives one.
        platform_id: Option<String>,
    },
    /// The channel refused it.
    Failed {
        /// Why, as the channel said it.
        reason: Text,
    },
    /// The channel says it reached the citizen's device (a WhatsApp
    /// receipt).
    Delivered {
        /// The platform's id of the sent message, if it gave one.
        platform_id: Option<String>,
    },
    /// The channel says the citizen read it.
    Read {
        /// The platform's id of the sent message, if it gave one.
        platform_id: Option<String>,
    },
}

impl DeliveryState {
    /// How far along it is: a receipt never takes a message back
    /// (receipts arrive out of order), a failure ends it.
    fn rank(&self) -> u8 {
        match self {
            DeliveryState::Pending => 0,
            DeliveryState::Sent { .. } => 1,
            DeliveryState::Delivered { .. } => 2,
            DeliveryState::Read { .. } => 3,
            DeliveryState::Failed { .. } => 4,
        }
    }

    /// The platform id it carries.
    fn platform_id(&self) -> Option<String> {
        match self {
            DeliveryState::Sent { platform_id }
            | DeliveryState::Delivered { platform_id }
            | DeliveryState::Read { platform_id } => platform_id.clone(),
            _ => None,
        }
    }
}

/// What the delivery of an outbound message came to (reported by whoever
/// delivers it: the social service, the e-mail sender).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum DeliveryOutcome {
    /// Handed to the channel.
    Sent {
        /// The platform's id of the sent message, if it gives one (at most
        /// [`PLATFORM_ID_MAX`] characters, no spaces).
        platform_id: Option<String>,
    },
    /// The channel refused it.
    Failed {
        /// Why (at most [`FAILURE_REASON_MAX`] characters).
        reason: Text,
    },
    /// A receipt: it reached the citizen's device.
    Delivered,
    /// A receipt: the citizen read it.
    Read,
}

impl DeliveryOutcome {
    /// The delivery state a message is in after this outcome, from
    /// `previous` (a receipt keeps the platform id the send recorded).
    pub fn state_after(&self, previous: Option<&DeliveryState>) -> DeliveryState {
        let platform_id = previous.and_then(DeliveryState::platform_id);
        match self {
            DeliveryOutcome::Sent { platform_id } => DeliveryState::Sent {
                platform_id: platform_id.clone(),
            },
            DeliveryOutcome::Failed { reason } => DeliveryState::Failed {
                reason: reason.clone(),
            },
            DeliveryOutcome::Delivered => DeliveryState::Delivered { platform_id },
            DeliveryOutcome::Read => DeliveryState::Read { platform_id },
        }
    }

    /// The delivery state after this outcome alone (a send's or a
    /// failure's; a receipt without a previous send has no platform id).
    pub fn state(&self) -> DeliveryState {
        self.state_after(None)
    }
}

/// A response-time clock of a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Clock {
    /// From opening to the first reply.
    FirstResponse,
    /// From opening (or reopening) to resolution.
    Resolution,
}

impl Clock {
    /// The clock's name as stored and in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Clock::FirstResponse => "first_response",
            Clock::Resolution => "resolution",
        }
    }
}

/// Who a ticket is assigned to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assignee {
    /// An agent, who works it. The department queue is kept.
    Agent(AgentId),
    /// A department's queue, for any of its agents to pick up: the ticket
    /// is no longer assigned to an agent.
    Department(DepartmentId),
    /// Nobody: the agent is unassigned; the department queue is kept.
    Nobody,
}

/// Everything needed to open a ticket, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct OpenTicket {
    /// The new ticket's id.
    pub id: TicketId,
    /// What the citizen asks for. A `question_for` ticket starts in its
    /// department's queue.
    pub kind: Kind,
    /// The channel the citizen wrote on: replies go out on it by default.
    pub channel: Channel,
    /// How to reach the citizen: at least one way, or
    /// [`TicketError::NoContact`].
    pub contact: Contact,
    /// The subject.
    pub subject: Subject,
    /// The citizen's first message.
    pub body: Body,
    /// The id of the first message.
    pub message_id: MessageId,
    /// The platform's id of the first message, if it came from a platform
    /// (an e-mail's `Message-ID`, a social network's message id): replies
    /// on that channel thread under it.
    pub platform_id: Option<String>,
    /// The human reference, drawn by the service from the tenant's sequence.
    pub reference: Reference,
    /// The hash of the secret tracking token the service gives the citizen.
    pub tracking: TrackingTokenHash,
    /// Whether the citizen asked to be told when the ticket moves.
    pub notify_citizen: bool,
    /// For a `question_for` ticket, what the tenant's directory says of the
    /// addressee: `None` when it is not in the directory (refused with
    /// [`TicketError::UnknownAddressee`]); for a department `Some(_)`; for an
    /// official `Some(accepts public questions)` (`Some(false)` is refused
    /// with [`TicketError::OfficialNotAcceptingQuestions`]). Ignored for the
    /// other kinds.
    pub addressee_accepts: Option<bool>,
    /// When the first response falls due (the service computes it from the
    /// tenant's target and business hours); `None`: no clock.
    pub first_response_due: Option<DateTime<Utc>>,
    /// When the resolution falls due; `None`: no clock.
    pub resolution_due: Option<DateTime<Utc>>,
}

/// What can be asked of a ticket. Every command but `Open` is refused with
/// [`TicketError::NotOpened`] before the ticket exists, and, except
/// `RecordDelivery` (a fact about a reply already sent), with
/// [`TicketError::Merged`] once it has been merged into another ticket.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketCommand {
    /// Opens the ticket with the citizen's first message: status `new`.
    /// Running it again with the same id and first message is a no-op (a
    /// retried request); anything else on an existing ticket is refused.
    /// (Boxed: it is much larger than the other commands.)
    Open(Box<OpenTicket>),
    /// Records a message from the citizen. On `waiting_on_citizen` the
    /// ticket goes back to `open`; on `resolved` within `reopen_window` of
    /// the resolution it is reopened (`resolved` → `reopened` → `open`);
    /// on `resolved` after the window, or on `closed`, it is refused with
    /// [`TicketError::StartNewTicket`]. A message id already recorded is a
    /// no-op (a message delivered twice).
    ReceiveMessage {
        /// The message's id.
        message_id: MessageId,
        /// The channel it came on.
        channel: Channel,
        /// What it says.
        body: Body,
        /// The platform's id of the message, if it came from a platform.
        platform_id: Option<String>,
        /// How long after its resolution a message reopens the ticket (the
        /// tenant's setting).
        reopen_window: Duration,
        /// When the resolution falls due if this message reopens the ticket
        /// (the service computes it from now); recorded only then.
        resolution_due_on_reopen: Option<DateTime<Utc>>,
    },
    /// Sends a reply to the citizen, refused on a closed ticket. The first
    /// reply is the ticket's first response. On `new`, `open` and
    /// `waiting_on_citizen` the ticket becomes `waiting_on_citizen` when
    /// `wait_for_citizen`, `open` otherwise; a reply on a `resolved` ticket
    /// leaves it resolved. A message id already recorded is a no-op.
    Reply {
        /// The reply's id.
        message_id: MessageId,
        /// The agent who writes it.
        by: AgentId,
        /// What it says.
        body: Body,
        /// The channel it goes out on; `None` is the channel the ticket came
        /// on. It must be one the citizen can be reached on (see
        /// [`TicketDetails::can_reach`]).
        channel: Option<Channel>,
        /// Whether the agent asked the citizen something and waits.
        wait_for_citizen: bool,
        /// The business time from the ticket's opening to now, measured by
        /// the service on the tenant's schedule. Recorded on the first reply
        /// (the first response time of the presence figures); ignored on the
        /// others. `None` when the service could not measure it.
        business_time_since_opened: Option<Duration>,
    },
    /// Sets when the response-time clocks fall due (computed by the service
    /// from the tenant's targets and business hours). `None` stops a clock.
    /// A no-op when both are already so; refused on a closed ticket.
    SetDue {
        /// When the first response is due.
        first_response: Option<DateTime<Utc>>,
        /// When the resolution is due.
        resolution: Option<DateTime<Utc>>,
    },
    /// Records that a response-time clock is past its due instant (the
    /// service's timer asks). A no-op when the clock has stopped (the first
    /// response was given; the ticket was resolved, closed or merged), is not
    /// due yet at `now`, or its breach of this due instant is recorded: the
    /// timer may ask twice or late.
    RecordBreach {
        /// Which clock.
        clock: Clock,
    },
    /// Records how the delivery of a reply went. Repeating the outcome the
    /// message already has is a no-op; any other outcome is recorded (a
    /// retry that succeeded, a bounce after sending). Accepted on closed and
    /// merged tickets: it reports what happened to a reply already sent.
    RecordDelivery {
        /// The reply.
        message_id: MessageId,
        /// What happened to it.
        outcome: DeliveryOutcome,
    },
    /// Adds an internal note, never sent to the citizen. Accepted on closed
    /// tickets; a note id already recorded is a no-op.
    AddNote {
        /// The note's id.
        note_id: NoteId,
        /// The agent who writes it.
        by: AgentId,
        /// What it says.
        body: Body,
    },
    /// Assigns the ticket (see [`Assignee`]); refused on a closed ticket.
    /// Assigning to whom it is already assigned is a no-op.
    Assign {
        /// To whom.
        to: Assignee,
        /// Whether the agent is staff of this tenant, or the department is
        /// in its directory (the service looks it up). Ignored for
        /// [`Assignee::Nobody`].
        assignee_in_tenant: bool,
    },
    /// Adds a tag (a no-op when the ticket has it); at most [`MAX_TAGS`];
    /// refused on a closed ticket.
    Tag {
        /// The tag.
        tag: Tag,
    },
    /// Removes a tag (a no-op when the ticket does not have it); refused on
    /// a closed ticket.
    Untag {
        /// The tag.
        tag: Tag,
    },
    /// Changes the priority (a no-op when it is that already); refused on a
    /// closed ticket.
    SetPriority {
        /// The new priority.
        priority: Priority,
    },
    /// Marks the ticket resolved, from `new`, `open` or
    /// `waiting_on_citizen`. A no-op on a resolved ticket; refused on a
    /// closed one.
    Resolve {
        /// The agent who resolves it.
        by: AgentId,
    },
    /// Closes the ticket for good, from `resolved` or directly from any
    /// other status. A no-op on a closed ticket.
    Close {
        /// The agent who closes it; `None` when the platform does (e.g. a
        /// timer closing tickets resolved long ago).
        by: Option<AgentId>,
    },
    /// Merges this ticket, a duplicate, into `target`: it records where it
    /// went and is closed; its history is kept. Refused into itself and on
    /// a closed ticket; a no-op when already merged into `target`. See the
    /// module documentation for the two steps of a merge.
    MergeInto {
        /// The ticket it is merged into.
        target: TicketId,
        /// That ticket's reference, for readers of this one.
        target_reference: Reference,
        /// The agent who merges them.
        by: AgentId,
    },
    /// Records on the target that `source` was merged into it (the second
    /// step of a merge). Refused from itself and on a closed ticket; a
    /// no-op when `source` is already recorded.
    MergeFrom {
        /// The duplicate.
        source: TicketId,
        /// The duplicate's reference.
        source_reference: Reference,
        /// How many messages the duplicate has.
        messages: usize,
    },
}

/// A ticket was opened. Its first message follows as
/// `ticket.message_received`; its status is `new` (no
/// `ticket.status_changed` is recorded for it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Opened {
    /// The ticket's id.
    pub id: TicketId,
    /// Its human reference.
    pub reference: Reference,
    /// What the citizen asks for.
    pub kind: Kind,
    /// The channel it came on.
    pub channel: Channel,
    /// How to reach the citizen.
    pub contact: Contact,
    /// The subject.
    pub subject: Subject,
    /// The hash of the tracking token.
    pub tracking: TrackingTokenHash,
    /// Whether the citizen wants to be told when the ticket moves.
    pub notify_citizen: bool,
    /// The department queue it starts in (`question_for` tickets).
    pub queue: Option<DepartmentId>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A message from the citizen was received.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageReceived {
    /// The message's id.
    pub message_id: MessageId,
    /// The channel it came on.
    pub channel: Channel,
    /// What it says.
    pub body: Body,
    /// The platform's id of the message, if any.
    pub platform_id: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
}

/// An agent replied to the citizen; the reply's delivery is pending. It
/// carries what the deliverer needs to send it without reading the ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Replied {
    /// The reply's id.
    pub message_id: MessageId,
    /// The agent who wrote it.
    pub by: AgentId,
    /// What it says.
    pub body: Body,
    /// The channel it goes out on.
    pub channel: Channel,
    /// The citizen's contact, to address it.
    pub to: Contact,
    /// The ticket's reference (e.g. for an e-mail's subject line).
    pub reference: Reference,
    /// The ticket's subject.
    pub subject: Subject,
    /// The platform id of the last message the citizen sent on this
    /// channel, so the reply threads under it.
    pub in_reply_to_platform_id: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// On the ticket's first reply, the business time since it was opened,
    /// in seconds (the first response time of the presence figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_response_business_secs: Option<i64>,
}

/// The response-time clocks' due instants were set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DueSet {
    /// When the first response is due (`None`: no clock).
    pub first_response: Option<DateTime<Utc>>,
    /// When the resolution is due (`None`: no clock).
    pub resolution: Option<DateTime<Utc>>,
    /// When.
    pub at: DateTime<Utc>,
}

/// A response-time clock passed its due instant with the ticket unanswered
/// (first response) or unresolved (resolution).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlaBreached {
    /// Which clock.
    pub clock: Clock,
    /// The instant it was due.
    pub due: DateTime<Utc>,
    /// When the breach was recorded.
    pub at: DateTime<Utc>,
}

/// The delivery of a reply went one way or another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecorded {
    /// The reply.
    pub message_id: MessageId,
    /// The channel it went out on.
    pub channel: Channel,
    /// What happened.
    pub outcome: DeliveryOutcome,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// An internal note was added (never sent to the citizen).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoteAdded {
    /// The note's id.
    pub note_id: NoteId,
    /// The agent who wrote it.
    pub by: AgentId,
    /// What it says.
    pub body: Body,
    /// When.
    pub at: DateTime<Utc>,
}

/// The ticket was assigned (see [`Assignee`] for what each choice means).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assigned {
    /// To whom.
    pub to: Assignee,
    /// When.
    pub at: DateTime<Utc>,
}

/// A tag was added.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tagged {
    /// The tag.
    pub tag: Tag,
    /// When.
    pub at: DateTime<Utc>,
}

/// A tag was removed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Untagged {
    /// The tag.
    pub tag: Tag,
    /// When.
    pub at: DateTime<Utc>,
}

/// The priority changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorityChanged {
    /// The priority it had.
    pub from: Priority,
    /// The priority it has.
    pub to: Priority,
    /// When.
    pub at: DateTime<Utc>,
}

/// An agent resolved the ticket (the move itself is the
/// `ticket.status_changed` that follows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolved {
    /// The agent.
    pub by: AgentId,
    /// When.
    pub at: DateTime<Utc>,
}

/// The ticket was closed (the move itself is the `ticket.status_changed`
/// that follows).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    /// The agent, or `None` for the platform.
    pub by: Option<AgentId>,
    /// When.
    pub at: DateTime<Utc>,
}

/// This ticket, a duplicate, was merged into another; it is closed by the
/// `ticket.status_changed` that follows, and keeps its history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedInto {
    /// The ticket it was merged into.
    pub target: TicketId,
    /// That ticket's reference.
    pub target_reference: Reference,
    /// The agent who merged them.
    pub by: AgentId,
    /// When.
    pub at: DateTime<Utc>,
}

/// A duplicate was merged into this ticket; the duplicate keeps its own
/// history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MergedFrom {
    /// The duplicate.
    pub source: TicketId,
    /// Its reference.
    pub source_reference: Reference,
    /// How many messages it has.
    pub messages: usize,
    /// When.
    pub at: DateTime<Utc>,
}

/// The ticket moved from one status to another. Recorded alongside every
/// event that changes the status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusChanged {
    /// The status it had.
    pub from: Status,
    /// The status it has.
    pub to: Status,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a ticket's stream records.
#[derive(Debug, Clone, PartialEq)]
pub enum TicketEvent {
    /// `ticket.opened`
    Opened(Opened),
    /// `ticket.message_received`
    MessageReceived(MessageReceived),
    /// `ticket.replied`
    Replied(Replied),
    /// `ticket.delivery_recorded`
    DeliveryRecorded(DeliveryRecorded),
    /// `ticket.note_added`
    NoteAdded(NoteAdded),
    /// `ticket.assigned`
    Assigned(Assigned),
    /// `ticket.tagged`
    Tagged(Tagged),
    /// `ticket.untagged`
    Untagged(Untagged),
    /// `ticket.priority_changed`
    PriorityChanged(PriorityChanged),
    /// `ticket.resolved`
    Resolved(Resolved),
    /// `ticket.closed`
    Closed(Closed),
    /// `ticket.merged_into`
    MergedInto(MergedInto),
    /// `ticket.merged_from`
    MergedFrom(MergedFrom),
    /// `ticket.status_changed`
    StatusChanged(StatusChanged),
    /// `ticket.due_set`
    DueSet(DueSet),
    /// `ticket.sla_breached`
    SlaBreached(SlaBreached),
}

const OPENED: &str = "ticket.opened";
const MESSAGE_RECEIVED: &str = "ticket.message_received";
const REPLIED: &str = "ticket.replied";
const DELIVERY_RECORDED: &str = "ticket.delivery_recorded";
const NOTE_ADDED: &str = "ticket.note_added";
const ASSIGNED: &str = "ticket.assigned";
const TAGGED: &str = "ticket.tagged";
const UNTAGGED: &str = "ticket.untagged";
const PRIORITY_CHANGED: &str = "ticket.priority_changed";
const RESOLVED: &str = "ticket.resolved";
const CLOSED: &str = "ticket.closed";
const MERGED_INTO: &str = "ticket.merged_into";
const MERGED_FROM: &str = "ticket.merged_from";
const STATUS_CHANGED: &str = "ticket.status_changed";
const DUE_SET: &str = "ticket.due_set";
const SLA_BREACHED: &str = "ticket.sla_breached";

/// Reads a stored payload of schema version 1.
fn decode<T: DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    ventanilla_eventlog::decode_payload(event_type, schema_version, 1, data)
}

impl DomainEvent for TicketEvent {
    fn event_type(&self) -> &'static str {
        match self {
            TicketEvent::Opened(_) => OPENED,
            TicketEvent::MessageReceived(_) => MESSAGE_RECEIVED,
            TicketEvent::Replied(_) => REPLIED,
            TicketEvent::DeliveryRecorded(_) => DELIVERY_RECORDED,
            TicketEvent::NoteAdded(_) => NOTE_ADDED,
            TicketEvent::Assigned(_) => ASSIGNED,
            TicketEvent::Tagged(_) => TAGGED,
            TicketEvent::Untagged(_) => UNTAGGED,
            TicketEvent::PriorityChanged(_) => PRIORITY_CHANGED,
            TicketEvent::Resolved(_) => RESOLVED,
            TicketEvent::Closed(_) => CLOSED,
            TicketEvent::MergedInto(_) => MERGED_INTO,
            TicketEvent::MergedFrom(_) => MERGED_FROM,
            TicketEvent::StatusChanged(_) => STATUS_CHANGED,
            TicketEvent::DueSet(_) => DUE_SET,
            TicketEvent::SlaBreached(_) => SLA_BREACHED,
        }
    }

    fn to_data(&self) -> Value {
        match self {
            TicketEvent::Opened(e) => serde_json::to_value(e),
            TicketEvent::MessageReceived(e) => serde_json::to_value(e),
            TicketEvent::Replied(e) => serde_json::to_value(e),
            TicketEvent::DeliveryRecorded(e) => serde_json::to_value(e),
            TicketEvent::NoteAdded(e) => serde_json::to_value(e),
            TicketEvent::Assigned(e) => serde_json::to_value(e),
            TicketEvent::Tagged(e) => serde_json::to_value(e),
            TicketEvent::Untagged(e) => serde_json::to_value(e),
            TicketEvent::PriorityChanged(e) => serde_json::to_value(e),
            TicketEvent::Resolved(e) => serde_json::to_value(e),
            TicketEvent::Closed(e) => serde_json::to_value(e),
            TicketEvent::MergedInto(e) => serde_json::to_value(e),
            TicketEvent::MergedFrom(e) => serde_json::to_value(e),
            TicketEvent::StatusChanged(e) => serde_json::to_value(e),
            TicketEvent::DueSet(e) => serde_json::to_value(e),
            TicketEvent::SlaBreached(e) => serde_json::to_value(e),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        let (t, v, d) = (event_type, schema_version, data);
        Ok(match event_type {
            OPENED => Self::Opened(decode(t, v, d)?),
            MESSAGE_RECEIVED => Self::MessageReceived(decode(t, v, d)?),
            REPLIED => Self::Replied(decode(t, v, d)?),
            DELIVERY_RECORDED => Self::DeliveryRecorded(decode(t, v, d)?),
            NOTE_ADDED => Self::NoteAdded(decode(t, v, d)?),
            ASSIGNED => Self::Assigned(decode(t, v, d)?),
            TAGGED => Self::Tagged(decode(t, v, d)?),
            UNTAGGED => Self::Untagged(decode(t, v, d)?),
            PRIORITY_CHANGED => Self::PriorityChanged(decode(t, v, d)?),
            RESOLVED => Self::Resolved(decode(t, v, d)?),
            CLOSED => Self::Closed(decode(t, v, d)?),
            MERGED_INTO => Self::MergedInto(decode(t, v, d)?),
            MERGED_FROM => Self::MergedFrom(decode(t, v, d)?),
            STATUS_CHANGED => Self::StatusChanged(decode(t, v, d)?),
            DUE_SET => Self::DueSet(decode(t, v, d)?),
            SLA_BREACHED => Self::SlaBreached(decode(t, v, d)?),
            other => {
                return Err(UpcastError {
                    event_type: other.to_owned(),
                    schema_version,
                    reason: "not a ticket event type".to_owned(),
                });
            }
        })
    }
}

/// Why a ticket command is refused. Nothing is written when it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    /// A value in the command is malformed or out of bounds (an empty or
    /// over-long body, a malformed contact…); names the field.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// `Open` with no e-mail, phone or handle to reach the citizen.
    #[error(
        "contact: give at least one way to reach the citizen: an e-mail address, a phone number or a handle"
    )]
    NoContact,
    /// `Open` of a ticket that exists (with another first message).
    #[error("the ticket already exists; open a new ticket with a new id")]
    AlreadyOpened,
    /// Any other command before `Open`.
    #[error("the ticket does not exist; open it first")]
    NotOpened,
    /// `Open` of a question for a department or official that is not in the
    /// tenant's directory.
    #[error("the department or official addressed is not in the directory; choose one from it")]
    UnknownAddressee {
        /// Whom the question was addressed to.
        addressee: Addressee,
    },
    /// `Open` of a question for an official who does not accept public
    /// questions.
    #[error("the official does not accept public questions; address the question to a department")]
    OfficialNotAcceptingQuestions {
        /// The official.
        official: OfficialId,
    },
    /// A change to a closed ticket.
    #[error("the ticket is closed and cannot be changed")]
    Closed,
    /// A change to a ticket merged into another.
    #[error("the ticket was merged into ticket {into}; work on that ticket instead")]
    Merged {
        /// The ticket it was merged into.
        into: TicketId,
    },
    /// A citizen's message on a closed ticket, or on a resolved one after
    /// the reopening window: the service opens a new ticket for it.
    #[error("ticket {previous} can no longer be reopened; open a new ticket for this message")]
    StartNewTicket {
        /// The reference of the ticket the message was for, to link the new
        /// ticket to it.
        previous: Reference,
    },
    /// `RecordDelivery` for a message the ticket does not have.
    #[error("the ticket has no message {message_id}")]
    UnknownMessage {
        /// The message.
        message_id: MessageId,
    },
    /// `RecordDelivery` for a message from the citizen.
    #[error("message {message_id} came from the citizen; delivery is recorded for replies only")]
    NotOutbound {
        /// The message.
        message_id: MessageId,
    },
    /// `Assign` to an agent who is not staff of this tenant.
    #[error("the agent is not staff of this tenant; assign the ticket to one of its agents")]
    ForeignAgent {
        /// The agent.
        agent: AgentId,
    },
    /// `Assign` to a department that is not in the tenant's directory.
    #[error("the department is not in the directory; choose one from it")]
    UnknownDepartment {
        /// The department.
        department: DepartmentId,
    },
    /// `Tag` of a ticket that has the most tags already.
    #[error("a ticket can have at most {max} tags; remove one first")]
    TooManyTags {
        /// The most allowed.
        max: usize,
    },
    /// `MergeInto` or `MergeFrom` naming the ticket itself.
    #[error("a ticket cannot be merged with itself; choose another ticket")]
    MergeWithItself,
    /// `Reply` on a channel the citizen cannot be reached on.
    #[error(
        "the citizen cannot be reached on {channel}; reply on a channel they wrote on, on the portal, or by e-mail or whatsapp if their contact has an address or a phone"
    )]
    Unreachable {
        /// The channel asked for.
        channel: Channel,
    },
}

/// One message of a ticket's conversation, as the decider remembers it
/// (bodies live in the events and the read model).
#[derive(Debug, Clone, PartialEq)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// From the citizen or to them.
    pub direction: Direction,
    /// The channel it came or went on.
    pub channel: Channel,
    /// For an inbound message, the platform's id of it.
    pub platform_id: Option<String>,
    /// For a reply, where its delivery is; `None` for inbound messages.
    pub delivery: Option<DeliveryState>,
    /// When it was recorded.
    pub at: DateTime<Utc>,
}

/// An opened ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct TicketDetails {
    /// Its id.
    pub id: TicketId,
    /// Its human reference.
    pub reference: Reference,
    /// Where it is in the workflow.
    pub status: Status,
    /// What the citizen asks for.
    pub kind: Kind,
    /// The channel it came on.
    pub channel: Channel,
    /// How to reach the citizen.
    pub contact: Contact,
    /// The subject.
    pub subject: Subject,
    /// The hash of the tracking token.
    pub tracking: TrackingTokenHash,
    /// Whether the citizen wants to be told when it moves.
    pub notify_citizen: bool,
    /// The department queue it is in.
    pub queue: Option<DepartmentId>,
    /// The agent working it.
    pub assignee: Option<AgentId>,
    /// Its tags.
    pub tags: BTreeSet<Tag>,
    /// Its priority.
    pub priority: Priority,
    /// The conversation, oldest first.
    pub messages: Vec<Message>,
    /// The internal notes' ids, oldest first.
    pub notes: Vec<NoteId>,
    /// When it was opened.
    pub opened_at: DateTime<Utc>,
    /// When the staff first replied.
    pub first_response_at: Option<DateTime<Utc>>,
    /// When it was resolved (cleared when it is reopened).
    pub resolved_at: Option<DateTime<Utc>>,
    /// When it was closed.
    pub closed_at: Option<DateTime<Utc>>,
    /// The ticket it was merged into.
    pub merged_into: Option<TicketId>,
    /// The duplicates merged into it.
    pub merged_from: Vec<TicketId>,
    /// When the first response is due, while that clock runs.
    pub first_response_due: Option<DateTime<Utc>>,
    /// When the resolution is due, while that clock runs.
    pub resolution_due: Option<DateTime<Utc>>,
    /// The breaches recorded: each clock with the instant it was due.
    pub breaches: Vec<(Clock, DateTime<Utc>)>,
}

impl TicketDetails {
    /// The message with this id.
    pub fn message(&self, id: MessageId) -> Option<&Message> {
        self.messages.iter().find(|m| m.id == id)
    }

    /// How many internal notes it has.
    pub fn notes_count(&self) -> usize {
        self.notes.len()
    }

    /// Whether a reply on `channel` can reach the citizen: the channel the
    /// ticket came on or any the citizen wrote on since, the portal (the
    /// citizen follows the ticket with the tracking token), e-mail when the
    /// contact has an address, WhatsApp when it has a phone.
    pub fn can_reach(&self, channel: Channel) -> bool {
        channel == self.channel
            || channel == Channel::Web
            || self
                .messages
                .iter()
                .any(|m| m.direction == Direction::In && m.channel == channel)
            || (channel == Channel::Email && self.contact.email.is_some())
            || (channel == Channel::Whatsapp && self.contact.phone.is_some())
    }

    /// The platform id of the last message the citizen sent on `channel`.
    pub fn last_inbound_platform_id(&self, channel: Channel) -> Option<&str> {
        self.messages
            .iter()
            .rev()
            .filter(|m| m.direction == Direction::In && m.channel == channel)
            .find_map(|m| m.platform_id.as_deref())
    }

    /// Refuses changes to a merged or closed ticket.
    fn changeable(&self) -> Result<(), TicketError> {
        self.not_merged()?;
        if self.status == Status::Closed {
            return Err(TicketError::Closed);
        }
        Ok(())
    }

    /// Refuses changes to a merged ticket.
    fn not_merged(&self) -> Result<(), TicketError> {
        match self.merged_into {
            Some(into) => Err(TicketError::Merged { into }),
            None => Ok(()),
        }
    }
}

/// What a ticket's stream says about it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TicketState {
    /// The ticket, once opened (`None` before).
    pub ticket: Option<TicketDetails>,
}

impl TicketState {
    /// Whether the ticket has been opened.
    pub fn is_opened(&self) -> bool {
        self.ticket.is_some()
    }

    /// Where the ticket is in the workflow, once opened.
    pub fn status(&self) -> Option<Status> {
        self.ticket.as_ref().map(|t| t.status)
    }
}

/// The ticket aggregate.
pub struct Ticket;

/// Refuses a malformed platform id.
fn check_platform_id(field: &'static str, id: Option<&String>) -> Result<(), InvalidValue> {
    let Some(id) = id else {
        return Ok(());
    };
    let chars = id.chars().count();
    if chars == 0 || chars > PLATFORM_ID_MAX {
        return Err(InvalidValue::new(
            field,
            format!("must be 1 to {PLATFORM_ID_MAX} characters, got {chars}"),
        ));
    }
    if id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(InvalidValue::new(
            field,
            "must not contain spaces or control characters",
        ));
    }
    Ok(())
}

fn status_changed(from: Status, to: Status, at: DateTime<Utc>) -> TicketEvent {
    TicketEvent::StatusChanged(StatusChanged { from, to, at })
}

fn open(
    state: &TicketState,
    o: &OpenTicket,
    now: DateTime<Utc>,
) -> Result<Vec<TicketEvent>, TicketError> {
    if let Some(t) = &state.ticket {
        let same = t.id == o.id && t.messages.first().is_some_and(|m| m.id == o.message_id);
        return if same {
            Ok(vec![])
        } else {
            Err(TicketError::AlreadyOpened)
        };
    }
    o.subject.check("subject")?;
    o.body.check("body")?;
    o.contact.check()?;
    o.reference.check("reference")?;
    o.tracking.check("tracking")?;
    check_platform_id("platform_id", o.platform_id.as_ref())?;
    if !o.contact.is_reachable() {
        return Err(TicketError::NoContact);
    }
    if let Kind::QuestionFor(addressee) = o.kind {
        match (addressee, o.addressee_accepts) {
            (_, None) => return Err(TicketError::UnknownAddressee { addressee }),
            (Addressee::Official { official, .. }, Some(false)) => {
                return Err(TicketError::OfficialNotAcceptingQuestions { official });
            }
            _ => {}
        }
    }
    let mut events = vec![
        TicketEvent::Opened(Opened {
            id: o.id,
            reference: o.reference.clone(),
            kind: o.kind,
            channel: o.channel,
            contact: o.contact.clone(),
            subject: o.subject.clone(),
            tracking: o.tracking.clone(),
            notify_citizen: o.notify_citizen,
            queue: o.kind.queue(),
            at: now,
        }),
        TicketEvent::MessageReceived(MessageReceived {
            message_id: o.message_id,
            channel: o.channel,
            body: o.body.clone(),
            platform_id: o.platform_id.clone(),
            at: now,
        }),
    ];
    if o.first_response_due.is_some() || o.resolution_due.is_some() {
        events.push(TicketEvent::DueSet(DueSet {
            first_response: o.first_response_due,
            resolution: o.resolution_due,
            at: now,
        }));
    }
    Ok(events)
}

fn decide_on(
    t: &TicketDetails,
    command: &TicketCommand,
    now: DateTime<Utc>,
) -> Result<Vec<TicketEvent>, TicketError> {
    match command {
        TicketCommand::Open(_) => Err(TicketError::AlreadyOpened),

        TicketCommand::ReceiveMessage {
            message_id,
            channel,
            body,
            platform_id,
            reopen_window,
            resolution_due_on_reopen,
        } => {
            if t.message(*message_id).is_some() {
                return Ok(vec![]);
            }
            body.check("body")?;
            check_platform_id("platform_id", platform_id.as_ref())?;
            t.not_merged()?;
            let received = TicketEvent::MessageReceived(MessageReceived {
                message_id: *message_id,
                channel: *channel,
                body: body.clone(),
                platform_id: platform_id.clone(),
                at: now,
            });
            let start_new = || TicketError::StartNewTicket {
                previous: t.reference.clone(),
            };
            match t.status {
                Status::New | Status::Open | Status::Reopened => Ok(vec![received]),
                Status::WaitingOnCitizen => Ok(vec![
                    received,
                    status_changed(Status::WaitingOnCitizen, Status::Open, now),
                ]),
                Status::Resolved => {
                    let within = t
                        .resolved_at
                        .is_some_and(|resolved| now - resolved <= *reopen_window);
                    if !within {
                        return Err(start_new());
                    }
                    let mut events = vec![
                        received,
                        status_changed(Status::Resolved, Status::Reopened, now),
                        status_changed(Status::Reopened, Status::Open, now),
                    ];
                    if resolution_due_on_reopen.is_some() {
                        events.push(TicketEvent::DueSet(DueSet {
                            first_response: t.first_response_due,
                            resolution: *resolution_due_on_reopen,
                            at: now,
                        }));
                    }
                    Ok(events)
                }
                Status::Closed => Err(start_new()),
            }
        }

        TicketCommand::Reply {
            message_id,
            by,
            body,
            channel,
            wait_for_citizen,
            business_time_since_opened,
        } => {
            if t.message(*message_id).is_some() {
                return Ok(vec![]);
            }
            body.check("body")?;
            t.changeable()?;
            let channel = channel.unwrap_or(t.channel);
            if !t.can_reach(channel) {
                return Err(TicketError::Unreachable { channel });
            }
            let mut events = vec![TicketEvent::Replied(Replied {
                message_id: *message_id,
                by: *by,
                body: body.clone(),
                channel,
                to: t.contact.clone(),
                reference: t.reference.clone(),
                subject: t.subject.clone(),
                in_reply_to_platform_id: t.last_inbound_platform_id(channel).map(str::to_owned),
                at: now,
                first_response_business_secs: if t.first_response_at.is_none() {
                    business_time_since_opened.map(|d| d.num_seconds().max(0))
                } else {
                    None
                },
            })];
            let to = if *wait_for_citizen {
                Status::WaitingOnCitizen
            } else {
                Status::Open
            };
            let moves = matches!(
                t.status,
                Status::New | Status::Open | Status::Reopened | Status::WaitingOnCitizen
            );
            if moves && t.status != to {
                events.push(status_changed(t.status, to, now));
            }
            Ok(events)
        }

        TicketCommand::SetDue {
            first_response,
            resolution,
        } => {
            t.changeable()?;
            if t.first_response_due == *first_response && t.resolution_due == *resolution {
                return Ok(vec![]);
            }
            Ok(vec![TicketEvent::DueSet(DueSet {
                first_response: *first_response,
                resolution: *resolution,
                at: now,
            })])
        }

        TicketCommand::RecordBreach { clock } => {
            let running = t.merged_into.is_none()
                && match clock {
                    Clock::FirstResponse => {
                        t.first_response_at.is_none() && t.status != Status::Closed
                    }
                    Clock::Resolution => !matches!(t.status, Status::Resolved | Status::Closed),
                };
            let due = match clock {
                Clock::FirstResponse => t.first_response_due,
                Clock::Resolution => t.resolution_due,
            };
            match due {
                Some(due) if running && due <= now && !t.breaches.contains(&(*clock, due)) => {
                    Ok(vec![TicketEvent::SlaBreached(SlaBreached {
                        clock: *clock,
                        due,
                        at: now,
                    })])
                }
                _ => Ok(vec![]),
            }
        }

        TicketCommand::RecordDelivery {
            message_id,
            outcome,
        } => {
            let message = t.message(*message_id).ok_or(TicketError::UnknownMessage {
                message_id: *message_id,
            })?;
            if message.direction != Direction::Out {
                return Err(TicketError::NotOutbound {
                    message_id: *message_id,
                });
            }
            match outcome {
                DeliveryOutcome::Sent { platform_id } => {
                    check_platform_id("platform_id", platform_id.as_ref())?;
                }
                DeliveryOutcome::Failed { reason } => reason.check("reason", FAILURE_REASON_MAX)?,
                DeliveryOutcome::Delivered | DeliveryOutcome::Read => {}
            }
            let next = outcome.state_after(message.delivery.as_ref());
            if message.delivery.as_ref() == Some(&next) {
                return Ok(vec![]);
            }
            // A receipt (or a repeated send) never takes a message back:
            // receipts arrive out of order. After a failure, a send that
            // succeeded on a retry is news.
            if let Some(current) = &message.delivery
                && !matches!(outcome, DeliveryOutcome::Failed { .. })
                && !matches!(current, DeliveryState::Failed { .. })
                && current.rank() >= next.rank()
            {
                return Ok(vec![]);
            }
            Ok(vec![TicketEvent::DeliveryRecorded(DeliveryRecorded {
                message_id: *message_id,
                channel: message.channel,
                outcome: outcome.clone(),
                at: now,
            })])
        }

        TicketCommand::AddNote { note_id, by, body } => {
            if t.notes.contains(note_id) {
                return Ok(vec![]);
            }
            body.check("body")?;
            t.not_merged()?;
            Ok(vec![TicketEvent::NoteAdded(NoteAdded {
                note_id: *note_id,
                by: *by,
                body: body.clone(),
                at: now,
            })])
        }

        TicketCommand::Assign {
            to,
            assignee_in_tenant,
        } => {
            match to {
                Assignee::Agent(agent) if !assignee_in_tenant => {
                    return Err(TicketError::ForeignAgent { agent: *agent });
                }
                Assignee::Department(department) if !assignee_in_tenant => {
                    return Err(TicketError::UnknownDepartment {
                        department: *department,
                    });
                }
                _ => {}
            }
            t.changeable()?;
            let already = match to {
                Assignee::Agent(agent) => t.assignee == Some(*agent),
                Assignee::Department(department) => {
                    t.queue == Some(*department) && t.assignee.is_none()
                }
                Assignee::Nobody => t.assignee.is_none(),
            };
            if already {
                return Ok(vec![]);
            }
            Ok(vec![TicketEvent::Assigned(Assigned { to: *to, at: now })])
        }

        TicketCommand::Tag { tag } => {
            tag.check("tag")?;
            t.changeable()?;
            if t.tags.contains(tag) {
                return Ok(vec![]);
            }
            if t.tags.len() >= MAX_TAGS {
                return Err(TicketError::TooManyTags { max: MAX_TAGS });
            }
            Ok(vec![TicketEvent::Tagged(Tagged {
                tag: tag.clone(),
                at: now,
            })])
        }

        TicketCommand::Untag { tag } => {
            tag.check("tag")?;
            t.changeable()?;
            if !t.tags.contains(tag) {
                return Ok(vec![]);
            }
            Ok(vec![TicketEvent::Untagged(Untagged {
                tag: tag.clone(),
                at: now,
            })])
        }

        TicketCommand::SetPriority { priority } => {
            t.changeable()?;
            if t.priority == *priority {
                return Ok(vec![]);
            }
            Ok(vec![TicketEvent::PriorityChanged(PriorityChanged {
                from: t.priority,
                to: *priority,
                at: now,
            })])
        }

        TicketCommand::Resolve { by } => {
            t.not_merged()?;
            match t.status {
                Status::Resolved => Ok(vec![]),
                Status::Closed => Err(TicketError::Closed),
                from => Ok(vec![
                    TicketEvent::Resolved(Resolved { by: *by, at: now }),
                    status_changed(from, Status::Resolved, now),
                ]),
            }
        }

        TicketCommand::Close { by } => {
            t.not_merged()?;
            match t.status {
                Status::Closed => Ok(vec![]),
                from => Ok(vec![
                    TicketEvent::Closed(Closed { by: *by, at: now }),
                    status_changed(from, Status::Closed, now),
                ]),
            }
        }

        TicketCommand::MergeInto {
            target,
            target_reference,
            by,
        } => {
            target_reference.check("target_reference")?;
            if *target == t.id {
                return Err(TicketError::MergeWithItself);
            }
            if t.merged_into == Some(*target) {
                return Ok(vec![]);
            }
            t.changeable()?;
            Ok(vec![
                TicketEvent::MergedInto(MergedInto {
                    target: *target,
                    target_reference: target_reference.clone(),
                    by: *by,
                    at: now,
                }),
                status_changed(t.status, Status::Closed, now),
            ])
        }

        TicketCommand::MergeFrom {
            source,
            source_reference,
            messages,
        } => {
            source_reference.check("source_reference")?;
            if *source == t.id {
                return Err(TicketError::MergeWithItself);
            }
            if t.merged_from.contains(source) {
                return Ok(vec![]);
            }
            t.changeable()?;
            Ok(vec![TicketEvent::MergedFrom(MergedFrom {
                source: *source,
                source_reference: source_reference.clone(),
                messages: *messages,
                at: now,
            })])
        }
    }
}

impl Decider for Ticket {
    type State = TicketState;
    type Command = TicketCommand;
    type Event = TicketEvent;
    type Error = TicketError;

    fn decide(
        state: &TicketState,
        command: &TicketCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<TicketEvent>, TicketError> {
        match command {
            TicketCommand::Open(o) => open(state, o, now),
            other => {
                let ticket = state.ticket.as_ref().ok_or(TicketError::NotOpened)?;
                decide_on(ticket, other, now)
            }
        }
    }

    fn evolve(mut state: TicketState, event: &TicketEvent) -> TicketState {
        if let TicketEvent::Opened(e) = event {
            state.ticket = Some(TicketDetails {
                id: e.id,
                reference: e.reference.clone(),
                status: Status::New,
                kind: e.kind,
                channel: e.channel,
                contact: e.contact.clone(),
                subject: e.subject.clone(),
                tracking: e.tracking.clone(),
                notify_citizen: e.notify_citizen,
                queue: e.queue,
                assignee: None,
                tags: BTreeSet::new(),
                priority: Priority::default(),
                messages: Vec::new(),
                notes: Vec::new(),
                opened_at: e.at,
                first_response_at: None,
                resolved_at: None,
                closed_at: None,
                merged_into: None,
                merged_from: Vec::new(),
                first_response_due: None,
                resolution_due: None,
                breaches: Vec::new(),
            });
            return state;
        }
        let Some(t) = state.ticket.as_mut() else {
            return state;
        };
        match event {
            TicketEvent::Opened(_) => {}
            TicketEvent::MessageReceived(e) => t.messages.push(Message {
                id: e.message_id,
                direction: Direction::In,
                channel: e.channel,
                platform_id: e.platform_id.clone(),
                delivery: None,
                at: e.at,
            }),
            TicketEvent::Replied(e) => {
                t.messages.push(Message {
                    id: e.message_id,
                    direction: Direction::Out,
                    channel: e.channel,
                    platform_id: None,
                    delivery: Some(DeliveryState::Pending),
                    at: e.at,
                });
                if t.first_response_at.is_none() {
                    t.first_response_at = Some(e.at);
                    t.first_response_due = None;
                }
            }
            TicketEvent::DueSet(e) => {
                t.first_response_due = e.first_response;
                t.resolution_due = e.resolution;
            }
            TicketEvent::SlaBreached(e) => t.breaches.push((e.clock, e.due)),
            TicketEvent::DeliveryRecorded(e) => {
                if let Some(m) = t.messages.iter_mut().find(|m| m.id == e.message_id) {
                    m.delivery = Some(e.outcome.state_after(m.delivery.as_ref()));
                }
            }
            TicketEvent::NoteAdded(e) => t.notes.push(e.note_id),
            TicketEvent::Assigned(e) => match e.to {
                Assignee::Agent(agent) => t.assignee = Some(agent),
                Assignee::Department(department) => {
                    t.queue = Some(department);
                    t.assignee = None;
                }
                Assignee::Nobody => t.assignee = None,
            },
            TicketEvent::Tagged(e) => {
                t.tags.insert(e.tag.clone());
            }
            TicketEvent::Untagged(e) => {
                t.tags.remove(&e.tag);
            }
            TicketEvent::PriorityChanged(e) => t.priority = e.to,
            // The moves themselves are the `status_changed` that follow.
            TicketEvent::Resolved(_) | TicketEvent::Closed(_) => {}
            TicketEvent::MergedInto(e) => t.merged_into = Some(e.target),
            TicketEvent::MergedFrom(e) => t.merged_from.push(e.source),
            TicketEvent::StatusChanged(e) => {
                t.status = e.to;
                match e.to {
                    Status::Resolved => {
                        t.resolved_at = Some(e.at);
                        t.resolution_due = None;
                    }
                    Status::Reopened => t.resolved_at = None,
                    Status::Closed => {
                        t.closed_at = Some(e.at);
                        t.first_response_due = None;
                        t.resolution_due = None;
                    }
                    Status::New | Status::Open | Status::WaitingOnCitizen => {}
                }
            }
        }
        state
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use uuid::Uuid;
    use ventanilla_eventlog::testing::given;

    /// The default instant of `given`: 2026-01-15 10:00 UTC.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
    }

    /// When the ticket of the fixtures was opened.
    fn t0() -> DateTime<Utc> {
        now() - Duration::days(3)
    }

    fn ticket_id() -> TicketId {
        TicketId(Uuid::from_u128(1))
    }

    fn other_ticket() -> TicketId {
        TicketId(Uuid::from_u128(2))
    }

    fn msg(n: u128) -> MessageId {
        MessageId(Uuid::from_u128(100 + n))
    }

    fn note(n: u128) -> NoteId {
        NoteId(Uuid::from_u128(200 + n))
    }

    fn agent() -> AgentId {
        AgentId(Uuid::from_u128(7))
    }

    fn dept() -> DepartmentId {
        DepartmentId(Uuid::from_u128(20))
    }

    fn official() -> OfficialId {
        OfficialId(Uuid::from_u128(30))
    }

    fn body(s: &str) -> Body {
        Body::parse("body", s).unwrap()
    }

    fn tag(s: &str) -> Tag {
        Tag::parse("tag", s).unwrap()
    }

    fn reason(s: &str) -> Text {
        Text::parse("reason", s, FAILURE_REASON_MAX).unwrap()
    }

    fn reference() -> Reference {
        Reference::format("AYTO", 2026, 123).unwrap()
    }

    fn other_reference() -> Reference {
        Reference::format("AYTO", 2026, 124).unwrap()
    }

    fn tracking() -> TrackingTokenHash {
        TrackingTokenHash::parse("tracking", &"a".repeat(64)).unwrap()
    }

    fn contact() -> Contact {
        Contact::parse(Some("Ana Pérez"), Some("ana@correo.es"), None, None).unwrap()
    }

    fn subject() -> Subject {
        Subject::parse("subject", "Farola fundida en la calle Mayor").unwrap()
    }

    /// A value that did not come through `parse` (as from a careless
    /// deserialisation).
    fn raw<T: DeserializeOwned>(s: &str) -> T {
        serde_json::from_value(serde_json::json!(s)).unwrap()
    }

    const FIRST_PLATFORM_ID: &str = "<m1@correo.es>";

    fn open_cmd() -> OpenTicket {
        OpenTicket {
            id: ticket_id(),
            kind: Kind::Question,
            channel: Channel::Email,
            contact: contact(),
            subject: subject(),
            body: body("La farola del número 3 lleva una semana fundida."),
            message_id: msg(1),
            platform_id: Some(FIRST_PLATFORM_ID.to_owned()),
            reference: reference(),
            tracking: tracking(),
            notify_citizen: true,
            addressee_accepts: None,
            first_response_due: None,
            resolution_due: None,
        }
    }

    fn opened_events(
        o: &OpenTicket,
        queue: Option<DepartmentId>,
        at: DateTime<Utc>,
    ) -> Vec<TicketEvent> {
        vec![
            TicketEvent::Opened(Opened {
                id: o.id,
                reference: o.reference.clone(),
                kind: o.kind,
                channel: o.channel,
                contact: o.contact.clone(),
                subject: o.subject.clone(),
                tracking: o.tracking.clone(),
                notify_citizen: o.notify_citizen,
                queue,
                at,
            }),
            TicketEvent::MessageReceived(MessageReceived {
                message_id: o.message_id,
                channel: o.channel,
                body: o.body.clone(),
                platform_id: o.platform_id.clone(),
                at,
            }),
        ]
    }

    fn sc(from: Status, to: Status, at: DateTime<Utc>) -> TicketEvent {
        status_changed(from, to, at)
    }

    fn received(
        id: MessageId,
        channel: Channel,
        platform_id: Option<&str>,
        at: DateTime<Utc>,
    ) -> TicketEvent {
        TicketEvent::MessageReceived(MessageReceived {
            message_id: id,
            channel,
            body: body("Sigue fundida."),
            platform_id: platform_id.map(str::to_owned),
            at,
        })
    }

    fn replied(
        id: MessageId,
        channel: Channel,
        in_reply_to: Option<&str>,
        at: DateTime<Utc>,
    ) -> TicketEvent {
        TicketEvent::Replied(Replied {
            message_id: id,
            by: agent(),
            body: body("Gracias, avisamos al servicio de alumbrado."),
            channel,
            to: contact(),
            reference: reference(),
            subject: subject(),
            in_reply_to_platform_id: in_reply_to.map(str::to_owned),
            at,
            first_response_business_secs: None,
        })
    }

    fn reply_cmd(id: MessageId, channel: Option<Channel>, wait: bool) -> TicketCommand {
        TicketCommand::Reply {
            message_id: id,
            by: agent(),
            body: body("Gracias, avisamos al servicio de alumbrado."),
            channel,
            wait_for_citizen: wait,
            business_time_since_opened: None,
        }
    }

    fn receive_cmd(id: MessageId, window: Duration) -> TicketCommand {
        TicketCommand::ReceiveMessage {
            message_id: id,
            channel: Channel::Email,
            body: body("Sigue fundida."),
            platform_id: Some(format!("<m{}@correo.es>", id.0.as_u128())),
            reopen_window: window,
            resolution_due_on_reopen: None,
        }
    }

    /// When the ticket of the fixtures was resolved.
    fn resolved_at() -> DateTime<Utc> {
        now() - Duration::days(1)
    }

    /// A history that leaves the ticket in `status`.
    fn history(status: Status) -> Vec<TicketEvent> {
        let mut h = opened_events(&open_cmd(), None, t0());
        let reply_at = t0() + Duration::hours(1);
        match status {
            Status::New => {}
            Status::WaitingOnCitizen => {
                h.push(replied(
                    msg(2),
                    Channel::Email,
                    Some(FIRST_PLATFORM_ID),
                    reply_at,
                ));
                h.push(sc(Status::New, Status::WaitingOnCitizen, reply_at));
            }
            Status::Open | Status::Reopened => {
                h.push(replied(
                    msg(2),
                    Channel::Email,
                    Some(FIRST_PLATFORM_ID),
                    reply_at,
                ));
                h.push(sc(Status::New, Status::Open, reply_at));
            }
            Status::Resolved | Status::Closed => {
                h.extend(history(Status::Open).into_iter().skip(2));
                h.push(TicketEvent::Resolved(Resolved {
                    by: agent(),
                    at: resolved_at(),
                }));
                h.push(sc(Status::Open, Status::Resolved, resolved_at()));
                if status == Status::Closed {
                    let at = now() - Duration::hours(12);
                    h.push(TicketEvent::Closed(Closed {
                        by: Some(agent()),
                        at,
                    }));
                    h.push(sc(Status::Resolved, Status::Closed, at));
                }
            }
        }
        h
    }

    fn merged_into_other() -> Vec<TicketEvent> {
        let mut h = history(Status::Open);
        h.push(TicketEvent::MergedInto(MergedInto {
            target: other_ticket(),
            target_reference: other_reference(),
            by: agent(),
            at: now() - Duration::hours(1),
        }));
        h.push(sc(Status::Open, Status::Closed, now() - Duration::hours(1)));
        h
    }

    fn state_after(events: &[TicketEvent]) -> TicketDetails {
        Ticket::fold(events).ticket.unwrap()
    }

    fn with(
        mut history: Vec<TicketEvent>,
        more: impl IntoIterator<Item = TicketEvent>,
    ) -> Vec<TicketEvent> {
        history.extend(more);
        history
    }

    const WEEK: Duration = Duration::days(7);

    // --- Open ---

    #[test]
    fn a_question_is_opened_with_its_first_message() {
        let o = open_cmd();
        given::<Ticket>(vec![])
            .when(&TicketCommand::Open(Box::new(o.clone())))
            .then(opened_events(&o, None, now()));
        let t = state_after(&opened_events(&o, None, now()));
        assert_eq!(t.status, Status::New);
        assert_eq!(t.kind, Kind::Question);
        assert_eq!(t.channel, Channel::Email);
        assert_eq!(t.reference, reference());
        assert_eq!(t.priority, Priority::Normal);
        assert!(t.notify_citizen);
        assert_eq!(t.opened_at, now());
        assert_eq!(t.messages.len(), 1);
        assert_eq!(t.messages[0].direction, Direction::In);
        assert_eq!(t.messages[0].delivery, None);
        assert_eq!(t.first_response_at, None);
    }

    #[test]
    fn a_suggestion_ignores_the_addressee_answer() {
        let o = OpenTicket {
            kind: Kind::Suggestion,
            addressee_accepts: Some(false),
            notify_citizen: false,
            ..open_cmd()
        };
        given::<Ticket>(vec![])
            .when(&TicketCommand::Open(Box::new(o.clone())))
            .then(opened_events(&o, None, now()));
    }

    #[test]
    fn a_question_for_a_department_lands_in_its_queue() {
        let o = OpenTicket {
            kind: Kind::QuestionFor(Addressee::Department(dept())),
            addressee_accepts: Some(true),
            ..open_cmd()
        };
        given::<Ticket>(vec![])
            .when(&TicketCommand::Open(Box::new(o.clone())))
            .then(opened_events(&o, Some(dept()), now()));
        assert_eq!(
            state_after(&opened_events(&o, Some(dept()), now())).queue,
            Some(dept())
        );
    }

    #[test]
    fn a_question_for_an_official_who_accepts_lands_in_their_departments_queue() {
        for department in [Some(dept()), None] {
            let o = OpenTicket {
                kind: Kind::QuestionFor(Addressee::Official {
                    official: official(),
                    department,
                }),
                addressee_accepts: Some(true),
                ..open_cmd()
            };
            given::<Ticket>(vec![])
                .when(&TicketCommand::Open(Box::new(o.clone())))
                .then(opened_events(&o, department, now()));
        }
    }

    #[test]
    fn a_question_for_an_unknown_or_unwilling_addressee_is_refused() {
        let to_official = Addressee::Official {
            official: official(),
            department: Some(dept()),
        };
        for addressee in [Addressee::Department(dept()), to_official] {
            given::<Ticket>(vec![])
                .when(&TicketCommand::Open(Box::new(OpenTicket {
                    kind: Kind::QuestionFor(addressee),
                    addressee_accepts: None,
                    ..open_cmd()
                })))
                .then_error(|e| *e == TicketError::UnknownAddressee { addressee });
        }
        given::<Ticket>(vec![])
            .when(&TicketCommand::Open(Box::new(OpenTicket {
                kind: Kind::QuestionFor(to_official),
                addressee_accepts: Some(false),
                ..open_cmd()
            })))
            .then_error(|e| {
                *e == TicketError::OfficialNotAcceptingQuestions {
                    official: official(),
                }
            });
    }

    #[test]
    fn opening_without_a_way_to_reach_the_citizen_is_refused() {
        given::<Ticket>(vec![])
            .when(&TicketCommand::Open(Box::new(OpenTicket {
                contact: Contact::parse(Some("Ana"), None, None, None).unwrap(),
                ..open_cmd()
            })))
            .then_error(|e| *e == TicketError::NoContact);
        for reachable in [
            Contact::parse(None, None, Some("+34600123456"), None).unwrap(),
            Contact::parse(None, None, None, Some("@ana@mastodon.social")).unwrap(),
        ] {
            let o = OpenTicket {
                contact: reachable,
                ..open_cmd()
            };
            given::<Ticket>(vec![])
                .when(&TicketCommand::Open(Box::new(o.clone())))
                .then(opened_events(&o, None, now()));
        }
    }

    #[test]
    fn opening_refuses_bad_values_naming_the_field() {
        let cases: Vec<(OpenTicket, &str)> = vec![
            (
                OpenTicket {
                    body: raw(""),
                    ..open_cmd()
                },
                "body",
            ),
            (
                OpenTicket {
                    body: raw("  \n "),
                    ..open_cmd()
                },
                "body",
            ),
            (
                OpenTicket {
                    body: raw(&"x".repeat(BODY_MAX_TEST + 1)),
                    ..open_cmd()
                },
                "body",
            ),
            (
                OpenTicket {
                    subject: raw(""),
                    ..open_cmd()
                },
                "subject",
            ),
            (
                OpenTicket {
                    reference: raw("123"),
                    ..open_cmd()
                },
                "reference",
            ),
            (
                OpenTicket {
                    tracking: raw("abc"),
                    ..open_cmd()
                },
                "tracking",
            ),
            (
                OpenTicket {
                    contact: Contact {
                        email: Some("not-an-address".to_owned()),
                        ..Contact::default()
                    },
                    ..open_cmd()
                },
                "contact.email",
            ),
            (
                OpenTicket {
                    platform_id: Some("has space".to_owned()),
                    ..open_cmd()
                },
                "platform_id",
            ),
        ];
        for (o, field) in cases {
            given::<Ticket>(vec![])
                .when(&TicketCommand::Open(Box::new(o)))
                .then_error(|e| matches!(e, TicketError::Invalid(v) if v.field == field));
        }
    }

    const BODY_MAX_TEST: usize = crate::values::BODY_MAX;

    #[test]
    fn opening_again_is_a_no_op_when_retried_and_refused_otherwise() {
        given::<Ticket>(history(Status::New))
            .when(&TicketCommand::Open(Box::new(open_cmd())))
            .then(vec![]);
        given::<Ticket>(history(Status::New))
            .when(&TicketCommand::Open(Box::new(OpenTicket {
                message_id: msg(9),
                ..open_cmd()
            })))
            .then_error(|e| *e == TicketError::AlreadyOpened);
        given::<Ticket>(history(Status::New))
            .when(&TicketCommand::Open(Box::new(OpenTicket {
                id: other_ticket(),
                ..open_cmd()
            })))
            .then_error(|e| *e == TicketError::AlreadyOpened);
    }

    fn every_command_but_open() -> Vec<TicketCommand> {
        vec![
            receive_cmd(msg(50), WEEK),
            reply_cmd(msg(51), None, false),
            TicketCommand::RecordDelivery {
                message_id: msg(2),
                outcome: DeliveryOutcome::Sent { platform_id: None },
            },
            TicketCommand::AddNote {
                note_id: note(1),
                by: agent(),
                body: body("Llamar a alumbrado."),
            },
            TicketCommand::Assign {
                to: Assignee::Agent(agent()),
                assignee_in_tenant: true,
            },
            TicketCommand::Tag {
                tag: tag("alumbrado"),
            },
            TicketCommand::Untag {
                tag: tag("alumbrado"),
            },
            TicketCommand::SetPriority {
                priority: Priority::High,
            },
            TicketCommand::Resolve { by: agent() },
            TicketCommand::Close { by: Some(agent()) },
            TicketCommand::MergeInto {
                target: TicketId(Uuid::from_u128(3)),
                target_reference: Reference::format("AYTO", 2026, 125).unwrap(),
                by: agent(),
            },
            TicketCommand::MergeFrom {
                source: TicketId(Uuid::from_u128(4)),
                source_reference: Reference::format("AYTO", 2026, 126).unwrap(),
                messages: 1,
            },
        ]
    }

    #[test]
    fn every_command_before_open_is_refused() {
        for command in every_command_but_open() {
            given::<Ticket>(vec![])
                .when(&command)
                .then_error(|e| *e == TicketError::NotOpened);
        }
    }

    // --- Status transitions ---

    #[test]
    fn status_transitions() {
        use Status::*;
        let closed = Err(TicketError::Closed);
        let start_new = Err(TicketError::StartNewTicket {
            previous: reference(),
        });
        let receive = receive_cmd(msg(50), WEEK);
        let reply = reply_cmd(msg(51), None, false);
        let reply_and_wait = reply_cmd(msg(51), None, true);
        let resolve = TicketCommand::Resolve { by: agent() };
        let close = TicketCommand::Close { by: None };
        let merge = TicketCommand::MergeInto {
            target: other_ticket(),
            target_reference: other_reference(),
            by: agent(),
        };
        let table: Vec<(Status, &TicketCommand, Result<Status, TicketError>)> = vec![
            (New, &receive, Ok(New)),
            (Open, &receive, Ok(Open)),
            (WaitingOnCitizen, &receive, Ok(Open)),
            (Resolved, &receive, Ok(Open)),
            (Closed, &receive, start_new),
            (New, &reply, Ok(Open)),
            (Open, &reply, Ok(Open)),
            (WaitingOnCitizen, &reply, Ok(Open)),
            (Resolved, &reply, Ok(Resolved)),
            (Closed, &reply, closed.clone()),
            (New, &reply_and_wait, Ok(WaitingOnCitizen)),
            (Open, &reply_and_wait, Ok(WaitingOnCitizen)),
            (WaitingOnCitizen, &reply_and_wait, Ok(WaitingOnCitizen)),
            (Resolved, &reply_and_wait, Ok(Resolved)),
            (Closed, &reply_and_wait, closed.clone()),
            (New, &resolve, Ok(Resolved)),
            (Open, &resolve, Ok(Resolved)),
            (WaitingOnCitizen, &resolve, Ok(Resolved)),
            (Resolved, &resolve, Ok(Resolved)),
            (Closed, &resolve, closed.clone()),
            (New, &close, Ok(Closed)),
            (Open, &close, Ok(Closed)),
            (WaitingOnCitizen, &close, Ok(Closed)),
            (Resolved, &close, Ok(Closed)),
            (Closed, &close, Ok(Closed)),
            (New, &merge, Ok(Closed)),
            (Open, &merge, Ok(Closed)),
            (WaitingOnCitizen, &merge, Ok(Closed)),
            (Resolved, &merge, Ok(Closed)),
            (Closed, &merge, closed),
        ];
        for (from, command, expected) in table {
            let past = history(from);
            let before = Ticket::fold(&past);
            assert_eq!(before.status(), Some(from));
            let outcome = Ticket::decide(&before, command, now()).map(|events| {
                // Every move is recorded as a status change, chained.
                let moves: Vec<&StatusChanged> = events
                    .iter()
                    .filter_map(|e| match e {
                        TicketEvent::StatusChanged(s) => Some(s),
                        _ => None,
                    })
                    .collect();
                let mut at = from;
                for m in &moves {
                    assert_eq!(m.from, at, "{from:?} {command:?}");
                    at = m.to;
                }
                let after = events.iter().fold(before.clone(), Ticket::evolve);
                assert_eq!(after.status(), Some(at));
                at
            });
            assert_eq!(outcome, expected, "{from:?} {command:?}");
        }
    }

    // --- ReceiveMessage ---

    #[test]
    fn a_message_on_a_new_ticket_is_recorded() {
        given::<Ticket>(history(Status::New))
            .when(&receive_cmd(msg(50), WEEK))
            .then(vec![received(
                msg(50),
                Channel::Email,
                Some("<m150@correo.es>"),
                now(),
            )]);
    }

    #[test]
    fn a_message_while_waiting_on_the_citizen_opens_the_ticket() {
        given::<Ticket>(history(Status::WaitingOnCitizen))
            .when(&receive_cmd(msg(50), WEEK))
            .then(vec![
                received(msg(50), Channel::Email, Some("<m150@correo.es>"), now()),
                sc(Status::WaitingOnCitizen, Status::Open, now()),
            ]);
    }

    #[test]
    fn a_message_within_the_window_reopens_a_resolved_ticket() {
        let events = vec![
            received(msg(50), Channel::Email, Some("<m150@correo.es>"), now()),
            sc(Status::Resolved, Status::Reopened, now()),
            sc(Status::Reopened, Status::Open, now()),
        ];
        given::<Ticket>(history(Status::Resolved))
            .when(&receive_cmd(msg(50), WEEK))
            .then(events.clone());
        // Exactly at the end of the window still reopens.
        given::<Ticket>(history(Status::Resolved))
            .when(&receive_cmd(msg(50), now() - resolved_at()))
            .then(events.clone());
        let t = state_after(&with(history(Status::Resolved), events));
        assert_eq!(t.status, Status::Open);
        assert_eq!(t.resolved_at, None);
        assert_eq!(t.first_response_at, Some(t0() + Duration::hours(1)));
    }

    #[test]
    fn a_message_after_the_window_or_on_a_closed_ticket_asks_for_a_new_ticket() {
        given::<Ticket>(history(Status::Resolved))
            .when(&receive_cmd(msg(50), Duration::hours(23)))
            .then_error(|e| {
                *e == TicketError::StartNewTicket {
                    previous: reference(),
                }
            });
        given::<Ticket>(history(Status::Closed))
            .when(&receive_cmd(msg(50), WEEK))
            .then_error(|e| {
                *e == TicketError::StartNewTicket {
                    previous: reference(),
                }
            });
    }

    #[test]
    fn a_message_delivered_twice_is_recorded_once() {
        let past = with(
            history(Status::Open),
            [received(msg(50), Channel::Email, None, now())],
        );
        given::<Ticket>(past)
            .when(&receive_cmd(msg(50), WEEK))
            .then(vec![]);
        // Even when the ticket has moved on since.
        given::<Ticket>(history(Status::Closed))
            .when(&receive_cmd(msg(1), WEEK))
            .then(vec![]);
        given::<Ticket>(merged_into_other())
            .when(&receive_cmd(msg(1), WEEK))
            .then(vec![]);
    }

    #[test]
    fn a_message_on_a_merged_ticket_is_refused_naming_the_target() {
        given::<Ticket>(merged_into_other())
            .when(&receive_cmd(msg(50), WEEK))
            .then_error(|e| {
                *e == TicketError::Merged {
                    into: other_ticket(),
                }
            });
    }

    #[test]
    fn a_message_with_a_bad_body_or_platform_id_is_refused() {
        let bad_body = TicketCommand::ReceiveMessage {
            message_id: msg(50),
            channel: Channel::Email,
            body: raw(""),
            platform_id: None,
            reopen_window: WEEK,
            resolution_due_on_reopen: None,
        };
        given::<Ticket>(history(Status::Open))
            .when(&bad_body)
            .then_error(|e| matches!(e, TicketError::Invalid(v) if v.field == "body"));
        for platform_id in [
            "".to_owned(),
            "a b".to_owned(),
            "p".repeat(PLATFORM_ID_MAX + 1),
        ] {
            given::<Ticket>(history(Status::Open))
                .when(&TicketCommand::ReceiveMessage {
                    message_id: msg(50),
                    channel: Channel::Email,
                    body: body("Hola"),
                    platform_id: Some(platform_id),
                    reopen_window: WEEK,
                    resolution_due_on_reopen: None,
                })
                .then_error(|e| matches!(e, TicketError::Invalid(v) if v.field == "platform_id"));
        }
    }

    // --- Reply ---

    #[test]
    fn the_first_reply_opens_the_ticket_and_records_the_first_response() {
        let events = vec![
            replied(msg(51), Channel::Email, Some(FIRST_PLATFORM_ID), now()),
            sc(Status::New, Status::Open, now()),
        ];
        given::<Ticket>(history(Status::New))
            .when(&reply_cmd(msg(51), None, false))
            .then(events.clone());
        let t = state_after(&with(history(Status::New), events));
        assert_eq!(t.first_response_at, Some(now()));
        let reply = t.message(msg(51)).unwrap();
        assert_eq!(reply.direction, Direction::Out);
        assert_eq!(reply.delivery, Some(DeliveryState::Pending));
    }

    #[test]
    fn a_reply_that_asks_waits_on_the_citizen() {
        given::<Ticket>(history(Status::New))
            .when(&reply_cmd(msg(51), None, true))
            .then(vec![
                replied(msg(51), Channel::Email, Some(FIRST_PLATFORM_ID), now()),
                sc(Status::New, Status::WaitingOnCitizen, now()),
            ]);
    }

    #[test]
    fn later_replies_keep_the_first_response_instant() {
        let past = history(Status::Open);
        given::<Ticket>(past.clone())
            .when(&reply_cmd(msg(51), None, false))
            .then(vec![replied(
                msg(51),
                Channel::Email,
                Some(FIRST_PLATFORM_ID),
                now(),
            )]);
        let t = state_after(&with(
            past,
            [replied(
                msg(51),
                Channel::Email,
                Some(FIRST_PLATFORM_ID),
                now(),
            )],
        ));
        assert_eq!(t.first_response_at, Some(t0() + Duration::hours(1)));
    }

    #[test]
    fn a_reply_threads_under_the_last_message_on_its_channel() {
        let past = with(
            history(Status::Open),
            [
                received(msg(40), Channel::Email, Some("<m40@correo.es>"), now()),
                received(msg(41), Channel::Whatsapp, Some("wamid.41"), now()),
                received(msg(42), Channel::Email, None, now()),
            ],
        );
        given::<Ticket>(past.clone())
            .when(&reply_cmd(msg(51), None, false))
            .then(vec![replied(
                msg(51),
                Channel::Email,
                Some("<m40@correo.es>"),
                now(),
            )]);
        given::<Ticket>(past)
            .when(&reply_cmd(msg(51), Some(Channel::Whatsapp), false))
            .then(vec![replied(
                msg(51),
                Channel::Whatsapp,
                Some("wamid.41"),
                now(),
            )]);
    }

    #[test]
    fn a_reply_goes_out_only_where_the_citizen_can_be_reached() {
        // The portal always; e-mail with an address (the origin here).
        for channel in [Channel::Web, Channel::Email] {
            given::<Ticket>(history(Status::Open))
                .when(&reply_cmd(msg(51), Some(channel), false))
                .then(vec![replied(
                    msg(51),
                    channel,
                    (channel == Channel::Email).then_some(FIRST_PLATFORM_ID),
                    now(),
                )]);
        }
        for channel in [
            Channel::X,
            Channel::Whatsapp,
            Channel::Api,
            Channel::Telegram,
        ] {
            given::<Ticket>(history(Status::Open))
                .when(&reply_cmd(msg(51), Some(channel), false))
                .then_error(|e| *e == TicketError::Unreachable { channel });
        }
        // WhatsApp with a phone.
        let o = OpenTicket {
            contact: Contact::parse(None, None, Some("+34600123456"), None).unwrap(),
            channel: Channel::Web,
            platform_id: None,
            ..open_cmd()
        };
        let events = Ticket::decide(
            &TicketState::default(),
            &TicketCommand::Open(Box::new(o.clone())),
            t0(),
        )
        .unwrap();
        let reply = Ticket::decide(
            &Ticket::fold(&events),
            &reply_cmd(msg(51), Some(Channel::Whatsapp), false),
            now(),
        )
        .unwrap();
        assert!(
            matches!(&reply[0], TicketEvent::Replied(r) if r.channel == Channel::Whatsapp && r.in_reply_to_platform_id.is_none())
        );
        let email = Ticket::decide(
            &Ticket::fold(&events),
            &reply_cmd(msg(51), Some(Channel::Email), false),
            now(),
        );
        assert_eq!(
            email,
            Err(TicketError::Unreachable {
                channel: Channel::Email
            })
        );
    }

    #[test]
    fn a_reply_on_a_closed_or_merged_ticket_is_refused() {
        given::<Ticket>(history(Status::Closed))
            .when(&reply_cmd(msg(51), None, false))
            .then_error(|e| *e == TicketError::Closed);
        given::<Ticket>(merged_into_other())
            .when(&reply_cmd(msg(51), None, false))
            .then_error(|e| {
                *e == TicketError::Merged {
                    into: other_ticket(),
                }
            });
    }

    #[test]
    fn a_retried_reply_is_a_no_op_and_a_bad_body_is_refused() {
        given::<Ticket>(history(Status::Open))
            .when(&reply_cmd(msg(2), None, false))
            .then(vec![]);
        for bad in [raw::<Body>(""), raw(&"x".repeat(BODY_MAX_TEST + 1))] {
            given::<Ticket>(history(Status::Open))
                .when(&TicketCommand::Reply {
                    message_id: msg(51),
                    by: agent(),
                    body: bad,
                    channel: None,
                    wait_for_citizen: false,
                    business_time_since_opened: None,
                })
                .then_error(|e| matches!(e, TicketError::Invalid(v) if v.field == "body"));
        }
    }

    // --- RecordDelivery ---

    fn delivery(id: MessageId, outcome: DeliveryOutcome) -> TicketCommand {
        TicketCommand::RecordDelivery {
            message_id: id,
            outcome,
        }
    }

    fn delivered(id: MessageId, outcome: DeliveryOutcome) -> TicketEvent {
        TicketEvent::DeliveryRecorded(DeliveryRecorded {
            message_id: id,
            channel: Channel::Email,
            outcome,
            at: now(),
        })
    }

    #[test]
    fn delivery_states_show_on_the_reply() {
        let sent = DeliveryOutcome::Sent {
            platform_id: Some("<r2@lugo.gal>".to_owned()),
        };
        let failed = DeliveryOutcome::Failed {
            reason: reason("mailbox full"),
        };
        given::<Ticket>(history(Status::Open))
            .when(&delivery(msg(2), sent.clone()))
            .then(vec![delivered(msg(2), sent.clone())]);
        given::<Ticket>(history(Status::Open))
            .when(&delivery(msg(2), failed.clone()))
            .then(vec![delivered(msg(2), failed.clone())]);
        let after_failure = with(history(Status::Open), [delivered(msg(2), failed.clone())]);
        assert_eq!(
            state_after(&after_failure)
                .message(msg(2))
                .unwrap()
                .delivery,
            Some(DeliveryState::Failed {
                reason: reason("mailbox full")
            })
        );
        // A retry that succeeds is recorded.
        given::<Ticket>(after_failure.clone())
            .when(&delivery(msg(2), sent.clone()))
            .then(vec![delivered(msg(2), sent.clone())]);
        let after_send = with(after_failure, [delivered(msg(2), sent.clone())]);
        assert_eq!(
            state_after(&after_send).message(msg(2)).unwrap().delivery,
            Some(DeliveryState::Sent {
                platform_id: Some("<r2@lugo.gal>".to_owned())
            })
        );
        // The same outcome again changes nothing.
        given::<Ticket>(after_send)
            .when(&delivery(msg(2), sent))
            .then(vec![]);
    }

    #[test]
    fn delivery_is_recorded_on_closed_and_merged_tickets() {
        let sent = DeliveryOutcome::Sent { platform_id: None };
        given::<Ticket>(history(Status::Closed))
            .when(&delivery(msg(2), sent.clone()))
            .then(vec![delivered(msg(2), sent.clone())]);
        given::<Ticket>(merged_into_other())
            .when(&delivery(msg(2), sent.clone()))
            .then(vec![delivered(msg(2), sent)]);
    }

    #[test]
    fn delivery_of_an_unknown_or_inbound_message_or_with_bad_values_is_refused() {
        let sent = DeliveryOutcome::Sent { platform_id: None };
        given::<Ticket>(history(Status::Open))
            .when(&delivery(msg(99), sent.clone()))
            .then_error(|e| {
                *e == TicketError::UnknownMessage {
                    message_id: msg(99),
                }
            });
        given::<Ticket>(history(Status::Open))
            .when(&delivery(msg(1), sent))
            .then_error(|e| *e == TicketError::NotOutbound { message_id: msg(1) });
        given::<Ticket>(history(Status::Open))
            .when(&delivery(
                msg(2),
                DeliveryOutcome::Sent {
                    platform_id: Some(String::new()),
                },
            ))
            .then_error(|e| matches!(e, TicketError::Invalid(v) if v.field == "platform_id"));
        given::<Ticket>(history(Status::Open))
            .when(&delivery(
                msg(2),
                DeliveryOutcome::Failed {
                    reason: Text::parse("reason", &"r".repeat(FAILURE_REASON_MAX + 1), 10_000)
                        .unwrap(),
                },
            ))
            .then_error(|e| matches!(e, TicketError::Invalid(v) if v.field == "reason"));
    }

    // --- AddNote ---

    fn note_cmd(id: NoteId) -> TicketCommand {
        TicketCommand::AddNote {
            note_id: id,
            by: agent(),
            body: body("El vecino ya llamó por teléfono."),
        }
    }

    fn note_added(id: NoteId) -> TicketEvent {
        TicketEvent::NoteAdded(NoteAdded {
            note_id: id,
            by: agent(),
            body: body("El vecino ya llamó por teléfono."),
            at: now(),
        })
    }

    #[test]
    fn an_internal_note_is_added_even_to_a_closed_ticket() {
        for status in [Status::New, Status::Open, Status::Closed] {
            given::<Ticket>(history(status))
                .when(&note_cmd(note(1)))
                .then(vec![note_added(note(1))]);
        }
        let t = state_after(&with(
            history(Status::Open),
            [note_added(note(1)), note_added(note(2))],
        ));
        assert_eq!(t.notes_count(), 2);
        assert_eq!(t.messages.len(), 2, "notes are not messages");
    }

    #[test]
    fn a_retried_note_is_a_no_op() {
        given::<Ticket>(with(history(Status::Open), [note_added(note(1))]))
            .when(&note_cmd(note(1)))
            .then(vec![]);
    }

    #[test]
    fn a_note_with_a_bad_body_or_on_a_merged_ticket_is_refused() {
        given::<Ticket>(history(Status::Open))
            .when(&TicketCommand::AddNote {
                note_id: note(1),
                by: agent(),
                body: raw(" "),
            })
            .then_error(|e| matches!(e, TicketError::Invalid(v) if v.field == "body"));
        given::<Ticket>(merged_into_other())
            .when(&note_cmd(note(1)))
            .then_error(|e| {
                *e == TicketError::Merged {
                    into: other_ticket(),
                }
            });
    }

    // --- Assign ---

    fn assign(to: Assignee, in_tenant: bool) -> TicketCommand {
        TicketCommand::Assign {
            to,
            assignee_in_tenant: in_tenant,
        }
    }

    fn assigned(to: Assignee) -> TicketEvent {
        TicketEvent::Assigned(Assigned { to, at: now() })
    }

    #[test]
    fn a_ticket_is_assigned_to_an_agent_a_department_or_nobody() {
        let agent_to = Assignee::Agent(agent());
        let dept_to = Assignee::Department(dept());
        given::<Ticket>(history(Status::New))
            .when(&assign(agent_to, true))
            .then(vec![assigned(agent_to)]);
        given::<Ticket>(history(Status::New))
            .when(&assign(dept_to, true))
            .then(vec![assigned(dept_to)]);
        let with_agent = with(
            history(Status::Open),
            [assigned(dept_to), assigned(agent_to)],
        );
        let t = state_after(&with_agent);
        assert_eq!((t.queue, t.assignee), (Some(dept()), Some(agent())));
        given::<Ticket>(with_agent.clone())
            .when(&assign(Assignee::Nobody, false))
            .then(vec![assigned(Assignee::Nobody)]);
        let t = state_after(&with(with_agent.clone(), [assigned(Assignee::Nobody)]));
        assert_eq!((t.queue, t.assignee), (Some(dept()), None));
        // Back to the department's queue: the agent lets it go.
        given::<Ticket>(with_agent.clone())
            .when(&assign(dept_to, true))
            .then(vec![assigned(dept_to)]);
        let t = state_after(&with(with_agent, [assigned(dept_to)]));
        assert_eq!((t.queue, t.assignee), (Some(dept()), None));
    }

    #[test]
    fn assigning_to_whom_it_is_assigned_is_a_no_op() {
        let agent_to = Assignee::Agent(agent());
        let dept_to = Assignee::Department(dept());
        given::<Ticket>(with(history(Status::Open), [assigned(agent_to)]))
            .when(&assign(agent_to, true))
            .then(vec![]);
        given::<Ticket>(with(history(Status::Open), [assigned(dept_to)]))
            .when(&assign(dept_to, true))
            .then(vec![]);
        given::<Ticket>(history(Status::Open))
            .when(&assign(Assignee::Nobody, true))
            .then(vec![]);
    }

    #[test]
    fn assigning_to_staff_of_another_tenant_or_an_unknown_department_is_refused() {
        given::<Ticket>(history(Status::Open))
            .when(&assign(Assignee::Agent(agent()), false))
            .then_error(|e| *e == TicketError::ForeignAgent { agent: agent() });
        given::<Ticket>(history(Status::Open))
            .when(&assign(Assignee::Department(dept()), false))
            .then_error(|e| *e == TicketError::UnknownDepartment { department: dept() });
    }

    // --- Closed and merged tickets refuse changes ---

    #[test]
    fn a_closed_ticket_refuses_changes() {
        for command in [
            assign(Assignee::Agent(agent()), true),
            TicketCommand::Tag {
                tag: tag("alumbrado"),
            },
            TicketCommand::Untag {
                tag: tag("alumbrado"),
            },
            TicketCommand::SetPriority {
                priority: Priority::High,
            },
            reply_cmd(msg(51), None, false),
            TicketCommand::Resolve { by: agent() },
            TicketCommand::MergeFrom {
                source: other_ticket(),
                source_reference: other_reference(),
                messages: 3,
            },
        ] {
            given::<Ticket>(history(Status::Closed))
                .when(&command)
                .then_error(|e| *e == TicketError::Closed);
        }
    }

    #[test]
    fn a_merged_ticket_refuses_every_change_but_a_delivery_report() {
        for command in every_command_but_open() {
            if matches!(command, TicketCommand::RecordDelivery { .. }) {
                continue;
            }
            given::<Ticket>(merged_into_other())
                .when(&command)
                .then_error(|e| {
                    *e == TicketError::Merged {
                        into: other_ticket(),
                    }
                });
        }
    }

    // --- Tags ---

    #[test]
    fn tags_are_added_and_removed() {
        given::<Ticket>(history(Status::Open))
            .when(&TicketCommand::Tag {
                tag: tag("alumbrado"),
            })
            .then(vec![TicketEvent::Tagged(Tagged {
                tag: tag("alumbrado"),
                at: now(),
            })]);
        let tagged = with(
            history(Status::Open),
            [TicketEvent::Tagged(Tagged {
                tag: tag("alumbrado"),
                at: now(),
            })],
        );
        assert!(state_after(&tagged).tags.contains(&tag("alumbrado")));
        given::<Ticket>(tagged.clone())
            .when(&TicketCommand::Tag {
                tag: tag("alumbrado"),
            })
            .then(vec![]);
        given::<Ticket>(tagged.clone())
            .when(&TicketCommand::Untag {
                tag: tag("alumbrado"),
            })
            .then(vec![TicketEvent::Untagged(Untagged {
                tag: tag("alumbrado"),
                at: now(),
            })]);
        let untagged = with(
            tagged,
            [TicketEvent::Untagged(Untagged {
                tag: tag("alumbrado"),
                at: now(),
            })],
        );
        assert!(state_after(&untagged).tags.is_empty());
        given::<Ticket>(untagged)
            .when(&TicketCommand::Untag {
                tag: tag("alumbrado"),
            })
            .then(vec![]);
    }

    #[test]
    fn at_most_twenty_tags_and_no_malformed_ones() {
        let full = with(
            history(Status::Open),
            (0..MAX_TAGS).map(|i| {
                TicketEvent::Tagged(Tagged {
                    tag: tag(&format!("t{i}")),
                    at: now(),
                })
            }),
        );
        given::<Ticket>(full.clone())
            .when(&TicketCommand::Tag {
                tag: tag("one-more"),
            })
            .then_error(|e| *e == TicketError::TooManyTags { max: MAX_TAGS });
        // One it has already is still a no-op.
        given::<Ticket>(full)
            .when(&TicketCommand::Tag { tag: tag("t0") })
            .then(vec![]);
        for command in [
            TicketCommand::Tag {
                tag: raw("Bad Tag"),
            },
            TicketCommand::Untag { tag: raw("") },
        ] {
            given::<Ticket>(history(Status::Open))
                .when(&command)
                .then_error(|e| matches!(e, TicketError::Invalid(v) if v.field == "tag"));
        }
    }

    // --- Priority ---

    #[test]
    fn the_priority_changes() {
        given::<Ticket>(history(Status::Open))
            .when(&TicketCommand::SetPriority {
                priority: Priority::Urgent,
            })
            .then(vec![TicketEvent::PriorityChanged(PriorityChanged {
                from: Priority::Normal,
                to: Priority::Urgent,
                at: now(),
            })]);
        let urgent = with(
            history(Status::Open),
            [TicketEvent::PriorityChanged(PriorityChanged {
                from: Priority::Normal,
                to: Priority::Urgent,
                at: now(),
            })],
        );
        assert_eq!(state_after(&urgent).priority, Priority::Urgent);
        given::<Ticket>(urgent)
            .when(&TicketCommand::SetPriority {
                priority: Priority::Urgent,
            })
            .then(vec![]);
    }

    // --- Resolve and Close ---

    #[test]
    fn resolving_records_who_and_when() {
        given::<Ticket>(history(Status::WaitingOnCitizen))
            .when(&TicketCommand::Resolve { by: agent() })
            .then(vec![
                TicketEvent::Resolved(Resolved {
                    by: agent(),
                    at: now(),
                }),
                sc(Status::WaitingOnCitizen, Status::Resolved, now()),
            ]);
        assert_eq!(
            state_after(&history(Status::Resolved)).resolved_at,
            Some(resolved_at())
        );
        given::<Ticket>(history(Status::Resolved))
            .when(&TicketCommand::Resolve { by: agent() })
            .then(vec![]);
    }

    #[test]
    fn closing_from_resolved_or_directly() {
        given::<Ticket>(history(Status::Resolved))
            .when(&TicketCommand::Close { by: Some(agent()) })
            .then(vec![
                TicketEvent::Closed(Closed {
                    by: Some(agent()),
                    at: now(),
                }),
                sc(Status::Resolved, Status::Closed, now()),
            ]);
        given::<Ticket>(history(Status::New))
            .when(&TicketCommand::Close { by: None })
            .then(vec![
                TicketEvent::Closed(Closed {
                    by: None,
                    at: now(),
                }),
                sc(Status::New, Status::Closed, now()),
            ]);
        given::<Ticket>(history(Status::Closed))
            .when(&TicketCommand::Close { by: None })
            .then(vec![]);
        let t = state_after(&history(Status::Closed));
        assert_eq!(t.closed_at, Some(now() - Duration::hours(12)));
        assert_eq!(t.resolved_at, Some(resolved_at()));
    }

    // --- Merge ---

    #[test]
    fn merging_records_both_sides_and_keeps_both_histories() {
        let duplicate = history(Status::Open);
        given::<Ticket>(duplicate.clone())
            .when(&TicketCommand::MergeInto {
                target: other_ticket(),
                target_reference: other_reference(),
                by: agent(),
            })
            .then(vec![
                TicketEvent::MergedInto(MergedInto {
                    target: other_ticket(),
                    target_reference: other_reference(),
                    by: agent(),
                    at: now(),
                }),
                sc(Status::Open, Status::Closed, now()),
            ]);
        let source = state_after(&merged_into_other());
        assert_eq!(source.merged_into, Some(other_ticket()));
        assert_eq!(source.status, Status::Closed);
        assert_eq!(source.messages.len(), 2, "the duplicate keeps its messages");

        // The target: another ticket that records where the duplicate went.
        let target_open = OpenTicket {
            id: other_ticket(),
            reference: other_reference(),
            message_id: msg(60),
            ..open_cmd()
        };
        let target = opened_events(&target_open, None, t0());
        let merge_from = TicketCommand::MergeFrom {
            source: ticket_id(),
            source_reference: reference(),
            messages: source.messages.len(),
        };
        let merged_from = TicketEvent::MergedFrom(MergedFrom {
            source: ticket_id(),
            source_reference: reference(),
            messages: 2,
            at: now(),
        });
        given::<Ticket>(target.clone())
            .when(&merge_from)
            .then(vec![merged_from.clone()]);
        let t = state_after(&with(target.clone(), [merged_from.clone()]));
        assert_eq!(t.merged_from, vec![ticket_id()]);
        assert_eq!(t.status, Status::New);
        assert_eq!(t.messages.len(), 1, "the target keeps its own messages");
        // Both steps are no-ops when repeated.
        given::<Ticket>(with(target, [merged_from]))
            .when(&merge_from)
            .then(vec![]);
        given::<Ticket>(merged_into_other())
            .when(&TicketCommand::MergeInto {
                target: other_ticket(),
                target_reference: other_reference(),
                by: agent(),
            })
            .then(vec![]);
    }

    #[test]
    fn merging_with_itself_elsewhere_or_from_a_closed_ticket_is_refused() {
        given::<Ticket>(history(Status::Open))
            .when(&TicketCommand::MergeInto {
                target: ticket_id(),
                target_reference: reference(),
                by: agent(),
            })
            .then_error(|e| *e == TicketError::MergeWithItself);
        given::<Ticket>(history(Status::Open))
            .when(&TicketCommand::MergeFrom {
                source: ticket_id(),
                source_reference: reference(),
                messages: 1,
            })
            .then_error(|e| *e == TicketError::MergeWithItself);
        given::<Ticket>(merged_into_other())
            .when(&TicketCommand::MergeInto {
                target: TicketId(Uuid::from_u128(3)),
                target_reference: reference(),
                by: agent(),
            })
            .then_error(|e| {
                *e == TicketError::Merged {
                    into: other_ticket(),
                }
            });
        given::<Ticket>(history(Status::Closed))
            .when(&TicketCommand::MergeInto {
                target: other_ticket(),
                target_reference: other_reference(),
                by: agent(),
            })
            .then_error(|e| *e == TicketError::Closed);
        given::<Ticket>(history(Status::Open))
            .when(&TicketCommand::MergeInto {
                target: other_ticket(),
                target_reference: raw("nope"),
                by: agent(),
            })
            .then_error(|e| matches!(e, TicketError::Invalid(v) if v.field == "target_reference"));
        given::<Ticket>(history(Status::Open))
            .when(&TicketCommand::MergeFrom {
                source: other_ticket(),
                source_reference: raw("nope"),
                messages: 1,
            })
            .then_error(|e| matches!(e, TicketError::Invalid(v) if v.field == "source_reference"));
    }

    // --- Storage ---

    #[test]
    fn every_event_survives_storage() {
        let question_for = OpenTicket {
            kind: Kind::QuestionFor(Addressee::Official {
                official: official(),
                department: Some(dept()),
            }),
            contact: Contact::parse(
                Some("Ana"),
                Some("ana@correo.es"),
                Some("+34600123456"),
                Some("@ana"),
            )
            .unwrap(),
            platform_id: None,
            ..open_cmd()
        };
        let mut events = history(Status::Closed);
        events.extend(opened_events(&question_for, Some(dept()), now()));
        events.extend([
            delivered(
                msg(2),
                DeliveryOutcome::Sent {
                    platform_id: Some("x-1".to_owned()),
                },
            ),
            delivered(msg(2), DeliveryOutcome::Sent { platform_id: None }),
            delivered(
                msg(2),
                DeliveryOutcome::Failed {
                    reason: reason("rate limited"),
                },
            ),
            note_added(note(1)),
            assigned(Assignee::Agent(agent())),
            assigned(Assignee::Department(dept())),
            assigned(Assignee::Nobody),
            TicketEvent::Tagged(Tagged {
                tag: tag("alumbrado"),
                at: now(),
            }),
            TicketEvent::Untagged(Untagged {
                tag: tag("alumbrado"),
                at: now(),
            }),
            TicketEvent::PriorityChanged(PriorityChanged {
                from: Priority::Low,
                to: Priority::High,
                at: now(),
            }),
            TicketEvent::Closed(Closed {
                by: None,
                at: now(),
            }),
            TicketEvent::MergedFrom(MergedFrom {
                source: other_ticket(),
                source_reference: other_reference(),
                messages: 4,
                at: now(),
            }),
            sc(Status::Resolved, Status::Reopened, now()),
            sc(Status::Reopened, Status::Open, now()),
        ]);
        events.extend(merged_into_other());
        let mut types = BTreeSet::new();
        for event in events {
            let data = event.to_data();
            assert!(data.is_object(), "{}", event.event_type());
            let back = TicketEvent::from_stored(event.event_type(), event.schema_version(), &data)
                .unwrap();
            assert_eq!(back, event);
            types.insert(event.event_type());
        }
        assert_eq!(types.len(), 14, "every event type: {types:?}");
        assert!(TicketEvent::from_stored("ticket.reopened", 1, &serde_json::json!({})).is_err());
        assert!(TicketEvent::from_stored(REPLIED, 1, &serde_json::json!({})).is_err());
        let opened = &history(Status::New)[0];
        assert!(TicketEvent::from_stored(OPENED, 2, &opened.to_data()).is_err());
    }

    #[test]
    fn stored_shapes_are_readable_by_other_services() {
        let data = replied(msg(2), Channel::Email, Some(FIRST_PLATFORM_ID), now()).to_data();
        assert_eq!(data["channel"], "email");
        assert_eq!(data["to"]["email"], "ana@correo.es");
        assert_eq!(data["reference"], "AYTO-2026-000123");
        assert_eq!(data["in_reply_to_platform_id"], FIRST_PLATFORM_ID);
        let data = sc(Status::WaitingOnCitizen, Status::Open, now()).to_data();
        assert_eq!(data["from"], "waiting_on_citizen");
        let data = delivered(
            msg(2),
            DeliveryOutcome::Failed {
                reason: reason("blocked"),
            },
        )
        .to_data();
        assert_eq!(data["outcome"]["state"], "failed");
        assert_eq!(data["outcome"]["reason"], "blocked");
        let data = history(Status::New)[0].to_data();
        assert_eq!(data["kind"], "question");
        assert_eq!(data["tracking"], "a".repeat(64));
    }

    #[test]
    fn stream_ids_and_statuses() {
        assert_eq!(
            stream_id(ticket_id()).unwrap().as_str(),
            "ticket-00000000-0000-0000-0000-000000000001"
        );
        for s in [
            Status::New,
            Status::Open,
            Status::WaitingOnCitizen,
            Status::Resolved,
            Status::Reopened,
            Status::Closed,
        ] {
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!(!TicketState::default().is_opened());
        assert_eq!(
            Ticket::fold(&history(Status::New)).status(),
            Some(Status::New)
        );
    }

    #[test]
    fn error_messages_are_lowercase_without_a_trailing_period() {
        for e in [
            TicketError::NoContact,
            TicketError::AlreadyOpened,
            TicketError::NotOpened,
            TicketError::UnknownAddressee {
                addressee: Addressee::Department(dept()),
            },
            TicketError::OfficialNotAcceptingQuestions {
                official: official(),
            },
            TicketError::Closed,
            TicketError::Merged {
                into: other_ticket(),
            },
            TicketError::StartNewTicket {
                previous: reference(),
            },
            TicketError::UnknownMessage { message_id: msg(1) },
            TicketError::NotOutbound { message_id: msg(1) },
            TicketError::ForeignAgent { agent: agent() },
            TicketError::UnknownDepartment { department: dept() },
            TicketError::TooManyTags { max: MAX_TAGS },
            TicketError::MergeWithItself,
            TicketError::Unreachable {
                channel: Channel::X,
            },
            TicketError::Invalid(InvalidValue::new("body", "must not be empty")),
        ] {
            let m = e.to_string();
            assert!(m.starts_with(|c: char| c.is_lowercase()), "{m}");
            assert!(!m.ends_with('.'), "{m}");
        }
    }

    // --- Response-time clocks ---

    fn due_cmd(first: Option<DateTime<Utc>>, resolution: Option<DateTime<Utc>>) -> TicketCommand {
        TicketCommand::SetDue {
            first_response: first,
            resolution,
        }
    }

    fn due_set(first: Option<DateTime<Utc>>, resolution: Option<DateTime<Utc>>) -> TicketEvent {
        TicketEvent::DueSet(DueSet {
            first_response: first,
            resolution,
            at: now(),
        })
    }

    fn breached(clock: Clock, due: DateTime<Utc>) -> TicketEvent {
        TicketEvent::SlaBreached(SlaBreached {
            clock,
            due,
            at: now(),
        })
    }

    #[test]
    fn due_instants_are_set_once_and_refused_on_closed_tickets() {
        let (f, r) = (now() + Duration::hours(4), now() + Duration::days(5));
        given::<Ticket>(history(Status::New))
            .when(&due_cmd(Some(f), Some(r)))
            .then(vec![due_set(Some(f), Some(r))]);
        given::<Ticket>(with(history(Status::New), [due_set(Some(f), Some(r))]))
            .when(&due_cmd(Some(f), Some(r)))
            .then(vec![]);
        given::<Ticket>(history(Status::Closed))
            .when(&due_cmd(Some(f), None))
            .then_error(|e| matches!(e, TicketError::Closed));
        given::<Ticket>(vec![])
            .when(&due_cmd(Some(f), None))
            .then_error(|e| matches!(e, TicketError::NotOpened));
    }

    #[test]
    fn an_overdue_running_clock_is_breached_once() {
        let due = now() - Duration::minutes(5);
        let h = with(history(Status::New), [due_set(Some(due), Some(due))]);
        given::<Ticket>(h.clone())
            .when(&TicketCommand::RecordBreach {
                clock: Clock::FirstResponse,
            })
            .then(vec![breached(Clock::FirstResponse, due)]);
        given::<Ticket>(with(h.clone(), [breached(Clock::FirstResponse, due)]))
            .when(&TicketCommand::RecordBreach {
                clock: Clock::FirstResponse,
            })
            .then(vec![]);
        given::<Ticket>(h)
            .when(&TicketCommand::RecordBreach {
                clock: Clock::Resolution,
            })
            .then(vec![breached(Clock::Resolution, due)]);
    }

    #[test]
    fn a_clock_not_due_or_stopped_is_not_breached() {
        let later = now() + Duration::minutes(5);
        given::<Ticket>(with(history(Status::New), [due_set(Some(later), None)]))
            .when(&TicketCommand::RecordBreach {
                clock: Clock::FirstResponse,
            })
            .then(vec![]);
        // Answered: the first-response clock stopped (and its due is cleared).
        let past = now() - Duration::hours(30);
        let answered = {
            let mut h = history(Status::New);
            h.insert(2, due_set(Some(past), Some(past)));
            h.extend([replied(
                msg(9),
                Channel::Email,
                None,
                now() - Duration::hours(1),
            )]);
            h
        };
        assert_eq!(state_after(&answered).first_response_due, None);
        given::<Ticket>(answered.clone())
            .when(&TicketCommand::RecordBreach {
                clock: Clock::FirstResponse,
            })
            .then(vec![]);
        // Resolved: the resolution clock stopped.
        let mut resolved = history(Status::Resolved);
        resolved.insert(2, due_set(None, Some(past)));
        assert_eq!(state_after(&resolved).resolution_due, None);
        given::<Ticket>(resolved)
            .when(&TicketCommand::RecordBreach {
                clock: Clock::Resolution,
            })
            .then(vec![]);
        // No clock at all.
        given::<Ticket>(history(Status::Open))
            .when(&TicketCommand::RecordBreach {
                clock: Clock::Resolution,
            })
            .then(vec![]);
    }

    #[test]
    fn the_first_reply_records_the_business_time_to_answer_and_later_ones_do_not() {
        let cmd = |id| TicketCommand::Reply {
            message_id: id,
            by: agent(),
            body: body("Gracias, avisamos al servicio de alumbrado."),
            channel: None,
            wait_for_citizen: false,
            business_time_since_opened: Some(Duration::minutes(90)),
        };
        let events = given::<Ticket>(history(Status::New))
            .when(&cmd(msg(2)))
            .into_result()
            .unwrap();
        let TicketEvent::Replied(first) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(first.first_response_business_secs, Some(5400));
        let events = given::<Ticket>(history(Status::Open))
            .when(&cmd(msg(3)))
            .into_result()
            .unwrap();
        let TicketEvent::Replied(later) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(later.first_response_business_secs, None);
        // Stored and read back; an old payload without the field reads as None.
        let data = events[0].to_data();
        assert!(data.get("first_response_business_secs").is_none());
        let back = TicketEvent::from_stored("ticket.replied", 1, &data).unwrap();
        assert_eq!(back, events[0]);
    }

    #[test]
    fn clock_events_round_trip_through_storage() {
        for e in [
            due_set(Some(now()), None),
            breached(Clock::Resolution, now()),
        ] {
            let back = TicketEvent::from_stored(e.event_type(), 1, &e.to_data()).unwrap();
            assert_eq!(back, e);
        }
        assert_eq!(Clock::FirstResponse.as_str(), "first_response");
        assert_eq!(
            serde_json::to_value(Clock::Resolution).unwrap(),
            Clock::Resolution.as_str()
        );
    }

    #[test]
    fn opening_and_reopening_start_the_clocks_the_service_computed() {
        let (f, r) = (now() + Duration::hours(4), now() + Duration::days(5));
        let mut o = open_cmd();
        o.first_response_due = Some(f);
        o.resolution_due = Some(r);
        let mut expected = opened_events(&o, None, now());
        expected.push(due_set(Some(f), Some(r)));
        given::<Ticket>(vec![])
            .when(&TicketCommand::Open(Box::new(o)))
            .then(expected);

        let again = now() + Duration::days(2);
        let TicketCommand::ReceiveMessage {
            message_id,
            channel,
            body,
            platform_id,
            reopen_window,
            ..
        } = receive_cmd(msg(30), Duration::days(7))
        else {
            unreachable!()
        };
        let events = given::<Ticket>(history(Status::Resolved))
            .when(&TicketCommand::ReceiveMessage {
                message_id,
                channel,
                body,
                platform_id,
                reopen_window,
                resolution_due_on_reopen: Some(again),
            })
            .into_result()
            .unwrap();
        assert_eq!(events.last(), Some(&due_set(None, Some(again))));
        let t = state_after(&with(history(Status::Resolved), events));
        assert_eq!((t.status, t.resolution_due), (Status::Open, Some(again)));
    }

    #[test]
    fn receipts_move_a_reply_forward_only() {
        let sent = DeliveryOutcome::Sent {
            platform_id: Some("wamid.1".to_owned()),
        };
        let after_send = with(history(Status::Open), [delivered(msg(2), sent.clone())]);
        given::<Ticket>(after_send.clone())
            .when(&delivery(msg(2), DeliveryOutcome::Read))
            .then(vec![delivered(msg(2), DeliveryOutcome::Read)]);
        let after_read = with(after_send, [delivered(msg(2), DeliveryOutcome::Read)]);
        assert_eq!(
            state_after(&after_read).message(msg(2)).unwrap().delivery,
            Some(DeliveryState::Read {
                platform_id: Some("wamid.1".to_owned())
            })
        );
        // Late receipts and a repeated send take it nowhere.
        for late in [DeliveryOutcome::Delivered, sent] {
            given::<Ticket>(after_read.clone())
                .when(&delivery(msg(2), late))
                .then(vec![]);
        }
        // A failure reported after all is news.
        let failed = DeliveryOutcome::Failed {
            reason: reason("the number no longer has WhatsApp"),
        };
        given::<Ticket>(after_read)
            .when(&delivery(msg(2), failed.clone()))
            .then(vec![delivered(msg(2), failed)]);
    }
}
