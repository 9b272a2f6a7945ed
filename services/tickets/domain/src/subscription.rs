//! "Avísame cuando…": a citizen's subscription, stream
//! `subscription-<uuid>` in the tenant, to a *topic* of the tenant or to a
//! *case* (a ticket), told by e-mail, on the social identity they wrote
//! from, or — for integrators — at a signed webhook URL.
//!
//! E-mail subscriptions are double opt-in: `requested` with the hash of a
//! confirmation token and an expiry; nothing is sent until `confirmed`; an
//! unconfirmed one `expired` after its expiry. Every subscription can be
//! cancelled (the one-click unsubscribe link); a permanent bounce stops an
//! e-mail subscription; repeated webhook failures disable a webhook one.
//!
//! What this module must not do: read a clock, draw tokens, look up whether
//! a topic or ticket exists (the service tells the command), or send.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError, uuid_newtype};

use crate::ticket::TicketId;
use crate::values::{Channel, Contact, InvalidValue, TrackingTokenHash};

uuid_newtype!(
    /// Identifies a subscription within the tenant.
    SubscriptionId
);

uuid_newtype!(
    /// A topic of the tenant's directory (the tenants service's).
    TopicId
);

/// After this many webhook deliveries failing in a row, a webhook
/// subscription is disabled.
pub const WEBHOOK_FAILURES_MAX: u32 = 10;

/// The longest webhook URL accepted, in characters.
pub const URL_MAX: usize = 2000;

/// The stream of a subscription: `subscription-<uuid>`.
pub fn stream_id(id: SubscriptionId) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("subscription", id.0)
}

/// What the citizen wants to hear about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Target {
    /// A topic of the tenant ("summer camps", "roadworks in my street").
    Topic(TopicId),
    /// A case: a ticket, when it gets a reply or changes status.
    Case(TicketId),
}

/// How the citizen is told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum Via {
    /// By e-mail (double opt-in).
    Email {
        /// The address, canonical (see `Contact::parse`).
        address: String,
    },
    /// On the social identity they wrote from (a DM or a mention where the
    /// network allows it).
    Social {
        /// The network.
        channel: Channel,
        /// Their handle or id on it.
        handle: String,
    },
    /// At an integrator's URL, signed with a per-subscription secret.
    Webhook {
        /// The `http(s)` URL.
        url: String,
    },
}

impl Via {
    /// Parses and checks a way of being told (addresses in canonical
    /// form, `http(s)` URLs, no spaces). Whether a webhook URL points at a
    /// private address is the service's check (it resolves names).
    pub fn check(&self) -> Result<(), InvalidValue> {
        match self {
            Via::Email { address } => {
                let parsed = Contact::parse(None, Some(address), None, None)?;
                if parsed.email.as_deref() != Some(address.as_str()) {
                    return Err(InvalidValue::new(
                        "email",
                        "is not in its canonical form; build it with Contact::parse",
                    ));
                }
                Ok(())
            }
            Via::Social { channel, handle } => {
                if !channel.is_social() {
                    return Err(InvalidValue::new(
                        "channel",
                        format!("{channel} is not a social network; subscribe by e-mail instead"),
                    ));
                }
                Contact::parse(None, None, None, Some(handle)).map(|_| ())
            }
            Via::Webhook { url } => {
                let lower = url.to_ascii_lowercase();
                let chars = url.chars().count();
                let ok = (lower.starts_with("https://") || lower.starts_with("http://"))
                    && chars <= URL_MAX
                    && url.len() > "https://".len()
                    && !url.chars().any(|c| c.is_whitespace() || c.is_control());
                if !ok {
                    return Err(InvalidValue::new(
                        "url",
                        format!("must be an http(s) URL of at most {URL_MAX} characters"),
                    ));
                }
                Ok(())
            }
        }
    }
}

/// Where a subscription is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Waiting for the e-mail confirmation.
    Pending,
    /// Notifications are sent.
    Active,
    /// Cancelled by the citizen.
    Cancelled,
    /// Not confirmed in time.
    Expired,
    /// The address bounced for good.
    Bounced,
    /// The webhook failed too often.
    Disabled,
}

/// Everything needed to subscribe, already validated by the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    /// The new subscription's id.
    pub id: SubscriptionId,
    /// What about.
    pub target: Target,
    /// How.
    pub via: Via,
    /// The language notifications are written in (`es`, `gl`…).
    pub language: String,
    /// Whether the citizen wants one daily digest instead of one message
    /// per notification.
    pub daily_digest: bool,
    /// For e-mail: the hash of the confirmation token sent to the address,
    /// and when the request expires. `None` for other ways (active at once).
    pub confirmation: Option<(TrackingTokenHash, DateTime<Utc>)>,
    /// Whether the topic or ticket exists in the tenant (the service looks).
    pub target_known: bool,
}

/// What can be asked of a subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionCommand {
    /// Subscribes. Repeating the same request is a no-op.
    Subscribe(Box<Subscribe>),
    /// Confirms an e-mail subscription with the token's hash (a no-op when
    /// active already).
    Confirm {
        /// The hash of the token the citizen brought back.
        token: TrackingTokenHash,
    },
    /// Cancels (a no-op when cancelled already).
    Cancel,
    /// Expires an unconfirmed request past its expiry (the service's timer;
    /// a no-op otherwise).
    Expire,
    /// An e-mail bounced; a permanent bounce stops the subscription.
    RecordBounce {
        /// Whether it is permanent (the address does not exist).
        permanent: bool,
        /// What the mail server said.
        reason: String,
    },
    /// A webhook delivery failed (`failed`) or succeeded (`!failed`); after
    /// [`WEBHOOK_FAILURES_MAX`] failures in a row the subscription is
    /// disabled.
    RecordWebhookResult {
        /// Whether it failed.
        failed: bool,
    },
}

/// What a subscription's stream records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SubscriptionEvent {
    /// `subscription.requested`
    Requested {
        /// What about.
        target: Target,
        /// How.
        via: Via,
        /// The language.
        language: String,
        /// Daily digest or not.
        daily_digest: bool,
        /// For e-mail: the confirmation token's hash and the expiry.
        confirmation: Option<(TrackingTokenHash, DateTime<Utc>)>,
        /// When.
        at: DateTime<Utc>,
    },
    /// `subscription.confirmed` (e-mail: when confirmed; other ways: at
    /// once).
    Confirmed {
        /// When.
        at: DateTime<Utc>,
    },
    /// `subscription.cancelled`
    Cancelled {
        /// When.
        at: DateTime<Utc>,
    },
    /// `subscription.expired`
    Expired {
        /// When.
        at: DateTime<Utc>,
    },
    /// `subscription.bounced`
    Bounced {
        /// Whether it stopped the subscription.
        permanent: bool,
        /// What the mail server said.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
    /// `subscription.webhook_failed` (one more failure in a row)
    WebhookFailed {
        /// How many in a row now.
        in_a_row: u32,
        /// When.
        at: DateTime<Utc>,
    },
    /// `subscription.webhook_recovered` (a success after failures)
    WebhookRecovered {
        /// When.
        at: DateTime<Utc>,
    },
    /// `subscription.disabled` (too many webhook failures)
    Disabled {
        /// Why.
        reason: String,
        /// When.
        at: DateTime<Utc>,
    },
}

const TYPES: [&str; 8] = [
    "subscription.requested",
    "subscription.confirmed",
    "subscription.cancelled",
    "subscription.expired",
    "subscription.bounced",
    "subscription.webhook_failed",
    "subscription.webhook_recovered",
    "subscription.disabled",
];

impl DomainEvent for SubscriptionEvent {
    fn event_type(&self) -> &'static str {
        match self {
            SubscriptionEvent::Requested { .. } => TYPES[0],
            SubscriptionEvent::Confirmed { .. } => TYPES[1],
            SubscriptionEvent::Cancelled { .. } => TYPES[2],
            SubscriptionEvent::Expired { .. } => TYPES[3],
            SubscriptionEvent::Bounced { .. } => TYPES[4],
            SubscriptionEvent::WebhookFailed { .. } => TYPES[5],
            SubscriptionEvent::WebhookRecovered { .. } => TYPES[6],
            SubscriptionEvent::Disabled { .. } => TYPES[7],
        }
    }

    fn to_data(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        ventanilla_eventlog::decode_tagged(&TYPES, "subscription", event_type, schema_version, data)
    }
}

/// Why a subscription command is refused. Nothing is written when it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// A malformed value; names the field.
    #[error(transparent)]
    Invalid(#[from] InvalidValue),
    /// The topic or ticket is not the tenant's.
    #[error("no such topic or case in this organisation; choose one of its topics")]
    UnknownTarget,
    /// An e-mail subscription without a confirmation, or another way with
    /// one.
    #[error("e-mail subscriptions are confirmed by e-mail; other ways are not")]
    ConfirmationMismatch,
    /// `Subscribe` of an existing subscription with another request.
    #[error("the subscription exists already")]
    AlreadyExists,
    /// Anything but `Subscribe` before it.
    #[error("no such subscription")]
    NotFound,
    /// A confirmation with a token that is not this subscription's.
    #[error("the confirmation link is not valid; subscribe again to get a new one")]
    InvalidToken,
    /// A confirmation after the request expired (or was cancelled).
    #[error("the confirmation link has expired; subscribe again to get a new one")]
    Expired,
    /// A change to a subscription that has ended.
    #[error("the subscription has ended ({status:?}); subscribe again")]
    Ended {
        /// How it ended.
        status: Status,
    },
}

/// A subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionDetails {
    /// What about.
    pub target: Target,
    /// How.
    pub via: Via,
    /// The language.
    pub language: String,
    /// Daily digest or not.
    pub daily_digest: bool,
    /// Where it is.
    pub status: Status,
    /// For e-mail: the confirmation token's hash and expiry.
    pub confirmation: Option<(TrackingTokenHash, DateTime<Utc>)>,
    /// Webhook failures in a row.
    pub webhook_failures: u32,
}

/// What a subscription's stream says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionState {
    /// The subscription, once requested.
    pub subscription: Option<SubscriptionDetails>,
}

/// The aggregate.
pub struct Subscription;

fn ended(status: Status) -> bool {
    matches!(
        status,
        Status::Cancelled | Status::Expired | Status::Bounced | Status::Disabled
    )
}

impl Decider for Subscription {
    type State = SubscriptionState;
    type Command = SubscriptionCommand;
    type Event = SubscriptionEvent;
    type Error = SubscriptionError;

    fn decide(
        state: &SubscriptionState,
        command: &SubscriptionCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<SubscriptionEvent>, SubscriptionError> {
        if let SubscriptionCommand::Subscribe(s) = command {
            if let Some(existing) = &state.subscription {
                let same = existing.target == s.target
                    && existing.via == s.via
                    && existing.confirmation == s.confirmation;
                return if same {
                    Ok(vec![])
                } else {
                    Err(SubscriptionError::AlreadyExists)
                };
            }
            s.via.check()?;
            let language = s.language.trim();
            if !(2..=8).contains(&language.len())
                || !language
                    .chars()
                    .all(|c| c.is_ascii_alphabetic() || c == '-')
            {
                return Err(
                    InvalidValue::new("language", "must be a language tag like es or gl").into(),
                );
            }
            if !s.target_known {
                return Err(SubscriptionError::UnknownTarget);
            }
            let email = matches!(s.via, Via::Email { .. });
            if email != s.confirmation.is_some() {
                return Err(SubscriptionError::ConfirmationMismatch);
            }
            let mut events = vec![SubscriptionEvent::Requested {
                target: s.target,
                via: s.via.clone(),
                language: language.to_ascii_lowercase(),
                daily_digest: s.daily_digest,
                confirmation: s.confirmation.clone(),
                at: now,
            }];
            if !email {
                events.push(SubscriptionEvent::Confirmed { at: now });
            }
            return Ok(events);
        }
        let sub = state
            .subscription
            .as_ref()
            .ok_or(SubscriptionError::NotFound)?;
        match command {
            SubscriptionCommand::Subscribe(_) => Err(SubscriptionError::AlreadyExists),
            SubscriptionCommand::Confirm { token } => match sub.status {
                Status::Active => Ok(vec![]),
                Status::Pending => {
                    let Some((expected, expires)) = &sub.confirmation else {
                        return Err(SubscriptionError::InvalidToken);
                    };
                    if expected != token {
                        return Err(SubscriptionError::InvalidToken);
                    }
                    if now > *expires {
                        return Err(SubscriptionError::Expired);
                    }
                    Ok(vec![SubscriptionEvent::Confirmed { at: now }])
                }
                Status::Expired | Status::Cancelled => Err(SubscriptionError::Expired),
                status => Err(SubscriptionError::Ended { status }),
            },
            SubscriptionCommand::Cancel => {
                if ended(sub.status) {
                    Ok(vec![])
                } else {
                    Ok(vec![SubscriptionEvent::Cancelled { at: now }])
                }
            }
            SubscriptionCommand::Expire => {
                let due = sub.status == Status::Pending
                    && sub.confirmation.as_ref().is_some_and(|(_, e)| now > *e);
                Ok(if due {
                    vec![SubscriptionEvent::Expired { at: now }]
                } else {
                    vec![]
                })
            }
            SubscriptionCommand::RecordBounce { permanent, reason } => {
                if ended(sub.status) {
                    return Ok(vec![]);
                }
                Ok(vec![SubscriptionEvent::Bounced {
                    permanent: *permanent,
                    reason: reason.chars().take(500).collect(),
                    at: now,
                }])
            }
            SubscriptionCommand::RecordWebhookResult { failed } => {
                if ended(sub.status) || !matches!(sub.via, Via::Webhook { .. }) {
                    return Ok(vec![]);
                }
                if !failed {
                    return Ok(if sub.webhook_failures > 0 {
                        vec![SubscriptionEvent::WebhookRecovered { at: now }]
                    } else {
                        vec![]
                    });
                }
                let in_a_row = sub.webhook_failures + 1;
                let mut events = vec![SubscriptionEvent::WebhookFailed { in_a_row, at: now }];
                if in_a_row >= WEBHOOK_FAILURES_MAX {
                    events.push(SubscriptionEvent::Disabled {
                        reason: format!(
                            "the webhook failed {in_a_row} times in a row; fix the endpoint and subscribe again"
                        ),
                        at: now,
                    });
                }
                Ok(events)
            }
        }
    }

    fn evolve(mut state: SubscriptionState, event: &SubscriptionEvent) -> SubscriptionState {
        if let SubscriptionEvent::Requested {
            target,
            via,
            language,
            daily_digest,
            confirmation,
            ..
        } = event
        {
            state.subscription = Some(SubscriptionDetails {
                target: *target,
                via: via.clone(),
                language: language.clone(),
                daily_digest: *daily_digest,
                status: Status::Pending,
                confirmation: confirmation.clone(),
                webhook_failures: 0,
            });
            return state;
        }
        let Some(s) = state.subscription.as_mut() else {
            return state;
        };
        match event {
            SubscriptionEvent::Requested { .. } => {}
            SubscriptionEvent::Confirmed { .. } => s.status = Status::Active,
            SubscriptionEvent::Cancelled { .. } => s.status = Status::Cancelled,
            SubscriptionEvent::Expired { .. } => s.status = Status::Expired,
            SubscriptionEvent::Bounced { permanent, .. } => {
                if *permanent {
                    s.status = Status::Bounced;
                }
            }
            SubscriptionEvent::WebhookFailed { in_a_row, .. } => s.webhook_failures = *in_a_row,
            SubscriptionEvent::WebhookRecovered { .. } => s.webhook_failures = 0,
            SubscriptionEvent::Disabled { .. } => s.status = Status::Disabled,
        }
        state
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::{Duration, TimeZone};
    use uuid::Uuid;
    use ventanilla_eventlog::testing::given;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 6, 1, 10, 0, 0).unwrap()
    }

    fn token(c: char) -> TrackingTokenHash {
        TrackingTokenHash::parse("token", &c.to_string().repeat(64)).unwrap()
    }

    fn topic() -> Target {
        Target::Topic(TopicId(Uuid::from_u128(5)))
    }

    fn email() -> Via {
        Via::Email {
            address: "vecina@correo.es".into(),
        }
    }

    fn subscribe(
        via: Via,
        confirmation: Option<(TrackingTokenHash, DateTime<Utc>)>,
    ) -> SubscriptionCommand {
        SubscriptionCommand::Subscribe(Box::new(Subscribe {
            id: SubscriptionId(Uuid::from_u128(1)),
            target: topic(),
            via,
            language: "es".into(),
            daily_digest: false,
            confirmation,
            target_known: true,
        }))
    }

    fn requested(
        via: Via,
        confirmation: Option<(TrackingTokenHash, DateTime<Utc>)>,
    ) -> SubscriptionEvent {
        SubscriptionEvent::Requested {
            target: topic(),
            via,
            language: "es".into(),
            daily_digest: false,
            confirmation,
            at: now(),
        }
    }

    fn pending() -> Vec<SubscriptionEvent> {
        vec![requested(
            email(),
            Some((token('a'), now() + Duration::days(2))),
        )]
    }

    #[test]
    fn an_email_subscription_waits_for_its_confirmation() {
        let c = Some((token('a'), now() + Duration::days(2)));
        given::<Subscription>(vec![])
            .at(now())
            .when(&subscribe(email(), c.clone()))
            .then(vec![requested(email(), c)]);
        given::<Subscription>(pending())
            .at(now() + Duration::hours(1))
            .when(&SubscriptionCommand::Confirm { token: token('a') })
            .then(vec![SubscriptionEvent::Confirmed {
                at: now() + Duration::hours(1),
            }]);
        assert_eq!(
            Subscription::fold(&pending()).subscription.unwrap().status,
            Status::Pending
        );
    }

    #[test]
    fn forged_or_late_confirmations_are_refused_and_unconfirmed_requests_expire() {
        given::<Subscription>(pending())
            .when(&SubscriptionCommand::Confirm { token: token('b') })
            .then_error(|e| *e == SubscriptionError::InvalidToken);
        given::<Subscription>(pending())
            .at(now() + Duration::days(3))
            .when(&SubscriptionCommand::Confirm { token: token('a') })
            .then_error(|e| *e == SubscriptionError::Expired);
        given::<Subscription>(pending())
            .at(now() + Duration::days(1))
            .when(&SubscriptionCommand::Expire)
            .then(vec![]);
        given::<Subscription>(pending())
            .at(now() + Duration::days(3))
            .when(&SubscriptionCommand::Expire)
            .then(vec![SubscriptionEvent::Expired {
                at: now() + Duration::days(3),
            }]);
    }

    #[test]
    fn social_and_webhook_subscriptions_are_active_at_once() {
        let social = Via::Social {
            channel: Channel::X,
            handle: "@vecina".into(),
        };
        given::<Subscription>(vec![])
            .at(now())
            .when(&subscribe(social.clone(), None))
            .then(vec![
                requested(social, None),
                SubscriptionEvent::Confirmed { at: now() },
            ]);
        given::<Subscription>(vec![])
            .when(&subscribe(email(), None))
            .then_error(|e| *e == SubscriptionError::ConfirmationMismatch);
    }

    #[test]
    fn bad_requests_are_refused_naming_the_field() {
        for (via, field) in [
            (
                Via::Email {
                    address: "no-es-un-correo".into(),
                },
                "contact.email",
            ),
            (
                Via::Webhook {
                    url: "ftp://integrador.example/hook".into(),
                },
                "url",
            ),
            (
                Via::Social {
                    channel: Channel::Web,
                    handle: "x".into(),
                },
                "channel",
            ),
        ] {
            given::<Subscription>(vec![])
                .when(&subscribe(via, None))
                .then_error(|e| matches!(e, SubscriptionError::Invalid(v) if v.field == field));
        }
        let SubscriptionCommand::Subscribe(mut s) = subscribe(email(), Some((token('a'), now())))
        else {
            unreachable!()
        };
        s.target_known = false;
        given::<Subscription>(vec![])
            .when(&SubscriptionCommand::Subscribe(s))
            .then_error(|e| *e == SubscriptionError::UnknownTarget);
    }

    #[test]
    fn cancelling_bouncing_and_failing_webhooks_end_a_subscription() {
        let mut active = pending();
        active.push(SubscriptionEvent::Confirmed { at: now() });
        given::<Subscription>(active.clone())
            .at(now())
            .when(&SubscriptionCommand::Cancel)
            .then(vec![SubscriptionEvent::Cancelled { at: now() }]);
        let mut bounced = active.clone();
        bounced.push(SubscriptionEvent::Bounced {
            permanent: true,
            reason: "550 no such user".into(),
            at: now(),
        });
        assert_eq!(
            Subscription::fold(&bounced).subscription.unwrap().status,
            Status::Bounced
        );
        given::<Subscription>(bounced)
            .when(&SubscriptionCommand::Confirm { token: token('a') })
            .then_error(|e| {
                matches!(
                    e,
                    SubscriptionError::Ended {
                        status: Status::Bounced
                    }
                )
            });

        let hook = Via::Webhook {
            url: "https://integrador.example/hook".into(),
        };
        let mut h = vec![
            requested(hook, None),
            SubscriptionEvent::Confirmed { at: now() },
        ];
        for n in 1..WEBHOOK_FAILURES_MAX {
            h.push(SubscriptionEvent::WebhookFailed {
                in_a_row: n,
                at: now(),
            });
        }
        let events = given::<Subscription>(h)
            .at(now())
            .when(&SubscriptionCommand::RecordWebhookResult { failed: true })
            .into_result()
            .unwrap();
        assert!(
            matches!(events.last(), Some(SubscriptionEvent::Disabled { .. })),
            "{events:?}"
        );
        for e in events {
            assert_eq!(
                SubscriptionEvent::from_stored(e.event_type(), 1, &e.to_data()).unwrap(),
                e
            );
        }
    }
}
