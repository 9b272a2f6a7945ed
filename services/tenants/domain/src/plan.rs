//! Plans and their limits: the aggregate [`PlanCatalogue`] (one stream,
//! `plans`, owned by [`TenantId::PLATFORM`]) holds the plans an operator
//! offers, as data that can be listed, defined, changed and retired; and the
//! limit vocabulary ([`PlanLimits`], [`LimitName`], [`Usage`],
//! [`QuotaExceeded`]) that other aggregates and services use to refuse a
//! command that would exceed what a tenant's plan allows.
//!
//! Pure like the rest of the crate: it counts nothing itself. Whoever checks
//! a limit passes in the current usage (read from a read model), and the
//! catalogue never looks at tenants — giving a plan to a tenant is the
//! [`crate::tenant`] aggregate's business, after the service has asked
//! [`PlanCatalogueState::assignable`].

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError, TenantId};

use crate::values::{InvalidValue, Name};

/// The tenant that owns the catalogue's stream: the install itself.
pub const STREAM_OWNER: TenantId = TenantId::PLATFORM;

/// The name of the catalogue's one stream.
pub const STREAM_NAME: &str = "plans";

/// The longest plan name accepted, in characters (parse a plan's name with
/// `Name::parse("name", s, PLAN_NAME_MAX)`).
pub const PLAN_NAME_MAX: usize = 80;

/// The stream of the plan catalogue (`plans`, in [`STREAM_OWNER`]'s space).
pub fn stream_id() -> Result<StreamId, StreamIdError> {
    StreamId::parse(STREAM_NAME)
}

/// The code of a plan (`free`, `municipio`): 2 to 32 characters of `a-z`,
/// `0-9`, `-` and `_`. It is what tenants and events refer to; the plan's
/// display name can change, its code cannot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PlanCode(String);

impl PlanCode {
    /// Parses a plan code for `field`.
    pub fn parse(field: &'static str, value: &str) -> Result<Self, InvalidValue> {
        let v = value.trim();
        let ok = (2..=32).contains(&v.len())
            && v.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_');
        if !ok {
            return Err(InvalidValue::new(
                field,
                format!(
                    "{v:?} is not a plan code: use 2 to 32 characters of a-z, 0-9, '-' and '_'"
                ),
            ));
        }
        Ok(Self(v.to_owned()))
    }

    /// The code as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PlanCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for PlanCode {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PlanCode {
    type Error = InvalidValue;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse("plan", &value)
    }
}

impl From<PlanCode> for String {
    fn from(code: PlanCode) -> String {
        code.0
    }
}

/// One of the limits a plan sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitName {
    /// Active staff accounts (admins and agents).
    Agents,
    /// Social network and e-mail accounts linked to the tenant.
    ChannelAccounts,
    /// Tickets opened in one calendar month.
    TicketsPerMonth,
    /// Requests by the tenant's API keys in one minute.
    ApiRequestsPerMinute,
}

impl LimitName {
    /// Every limit, in the order they are checked and reported.
    pub const ALL: [LimitName; 4] = [
        LimitName::Agents,
        LimitName::ChannelAccounts,
        LimitName::TicketsPerMonth,
        LimitName::ApiRequestsPerMinute,
    ];

    /// `n` of this limit in words, singular or plural: "1 agent",
    /// "5 agents", "200 tickets per month".
    pub fn count(self, n: u32) -> String {
        let one = n == 1;
        let words = match (self, one) {
            (LimitName::Agents, true) => "agent",
            (LimitName::Agents, false) => "agents",
            (LimitName::ChannelAccounts, true) => "linked channel account",
            (LimitName::ChannelAccounts, false) => "linked channel accounts",
            (LimitName::TicketsPerMonth, true) => "ticket per month",
            (LimitName::TicketsPerMonth, false) => "tickets per month",
            (LimitName::ApiRequestsPerMinute, true) => "API request per minute",
            (LimitName::ApiRequestsPerMinute, false) => "API requests per minute",
        };
        format!("{n} {words}")
    }
}

impl fmt::Display for LimitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LimitName::Agents => "agents",
            LimitName::ChannelAccounts => "linked channel accounts",
            LimitName::TicketsPerMonth => "tickets per month",
            LimitName::ApiRequestsPerMinute => "API requests per minute",
        })
    }
}

/// A command would take a tenant over one of its plan's limits.
///
/// Any module or service that refuses a command for this reason returns (or
/// wraps) this error, so the message always names the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the plan allows {}; {} in use", limit.count(*allowed), in_use(*used))]
pub struct QuotaExceeded {
    /// The limit that would be exceeded.
    pub limit: LimitName,
    /// What the plan allows.
    pub allowed: u32,
    /// What is in use now, before the refused command.
    pub used: u32,
}

fn in_use(used: u32) -> String {
    if used == 1 {
        "1 is".to_owned()
    } else {
        format!("{used} are")
    }
}

/// What a plan allows. Every limit is at least 1 in a defined plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlanLimits {
    /// Active staff accounts.
    pub agents: u32,
    /// Linked channel accounts.
    pub channel_accounts: u32,
    /// Tickets opened per calendar month.
    pub tickets_per_month: u32,
    /// API requests per minute.
    pub api_requests_per_minute: u32,
}

impl PlanLimits {
    /// The value of one limit.
    pub fn get(&self, limit: LimitName) -> u32 {
        match limit {
            LimitName::Agents => self.agents,
            LimitName::ChannelAccounts => self.channel_accounts,
            LimitName::TicketsPerMonth => self.tickets_per_month,
            LimitName::ApiRequestsPerMinute => self.api_requests_per_minute,
        }
    }

    /// Whether `adding` more of `limit` fit when `used` are in use; refuses
    /// with the limit named when `used + adding` is above what the plan
    /// allows. `adding = 0` checks that current usage is within the limit.
    pub fn check(&self, limit: LimitName, used: u32, adding: u32) -> Result<(), QuotaExceeded> {
        let allowed = self.get(limit);
        if used.saturating_add(adding) > allowed {
            return Err(QuotaExceeded {
                limit,
                allowed,
                used,
            });
        }
        Ok(())
    }

    /// Whether a tenant's current `usage` is within these limits (the first
    /// limit exceeded, in [`LimitName::ALL`] order, is reported). API
    /// requests are a rate, not a count, and are not part of [`Usage`].
    pub fn admits(&self, usage: &Usage) -> Result<(), QuotaExceeded> {
        self.check(LimitName::Agents, usage.agents, 0)?;
        self.check(LimitName::ChannelAccounts, usage.channel_accounts, 0)?;
        self.check(LimitName::TicketsPerMonth, usage.tickets_this_month, 0)
    }

    /// The first limit that is 0, if any: such limits cannot be defined.
    pub fn first_zero(&self) -> Option<LimitName> {
        LimitName::ALL.into_iter().find(|l| self.get(*l) == 0)
    }
}

/// What a tenant uses now, counted by the service from its read models.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Usage {
    /// Active staff accounts.
    pub agents: u32,
    /// Linked channel accounts.
    pub channel_accounts: u32,
    /// Tickets opened this calendar month (in the tenant's time zone).
    pub tickets_this_month: u32,
}

/// A plan: its code, display name, limits, and whether it is shown in the
/// public list of plans (a plan made for one customer is not).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// What tenants and events refer to; never changes.
    pub code: PlanCode,
    /// The name shown to people (at most [`PLAN_NAME_MAX`] characters).
    pub name: Name,
    /// What the plan allows.
    pub limits: PlanLimits,
    /// Whether the plan is listed publicly.
    pub public: bool,
}

/// The plans shipped with the install, defined by
/// [`PlanCatalogueCommand::InstallDefaults`]:
///
/// | code | agents | channel accounts | tickets/month | API req/min |
/// |---|---|---|---|---|
/// | `free` | 2 | 1 | 200 | 60 |
/// | `municipio` | 10 | 5 | 5,000 | 600 |
/// | `provincia` | 50 | 20 | 50,000 | 3,000 |
pub fn default_plans() -> Vec<Plan> {
    let shipped: [(&str, &str, PlanLimits); 3] = [
        ("free", "Free", limits(2, 1, 200, 60)),
        ("municipio", "Municipio", limits(10, 5, 5_000, 600)),
        ("provincia", "Provincia", limits(50, 20, 50_000, 3_000)),
    ];
    // The codes and names are constants that parse (a test proves all three
    // are here), so nothing is dropped by `ok()?`.
    shipped
        .into_iter()
        .filter_map(|(code, name, limits)| {
            Some(Plan {
                code: PlanCode::parse("code", code).ok()?,
                name: Name::parse("name", name, PLAN_NAME_MAX).ok()?,
                limits,
                public: true,
            })
        })
        .collect()
}

const fn limits(
    agents: u32,
    channel_accounts: u32,
    tickets_per_month: u32,
    api_requests_per_minute: u32,
) -> PlanLimits {
    PlanLimits {
        agents,
        channel_accounts,
        tickets_per_month,
        api_requests_per_minute,
    }
}

/// The aggregate of all plans on the install.
pub struct PlanCatalogue;

/// What the operator can ask of the plan catalogue.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanCatalogueCommand {
    /// Defines a new plan. Its code must not exist yet (retired codes
    /// included: a code always means one plan).
    Define(Plan),
    /// Changes a plan's name and limits (retired plans too: tenants on them
    /// keep them). Repeating the same change is a no-op.
    Change {
        /// The plan to change.
        code: PlanCode,
        /// Its new display name.
        name: Name,
        /// Its new limits.
        limits: PlanLimits,
    },
    /// Retires a plan: it can no longer be given to tenants, but tenants on
    /// it keep it. Retiring a retired plan is a no-op.
    Retire {
        /// The plan to retire.
        code: PlanCode,
    },
    /// Defines each of [`default_plans`] whose code is not defined yet (an
    /// operator's own plan with a default's code is left alone). A no-op
    /// once all exist, so it is safe to run at every start.
    InstallDefaults,
}

/// A plan was defined.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Defined {
    /// The plan as defined.
    pub plan: Plan,
    /// When.
    pub at: DateTime<Utc>,
}

/// A plan's name and limits were changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Changed {
    /// The plan.
    pub code: PlanCode,
    /// Its name now.
    pub name: Name,
    /// Its limits now.
    pub limits: PlanLimits,
    /// When.
    pub at: DateTime<Utc>,
}

/// A plan was retired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retired {
    /// The plan.
    pub code: PlanCode,
    /// When.
    pub at: DateTime<Utc>,
}

/// What the plan catalogue records.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanCatalogueEvent {
    /// `plan.defined`
    Defined(Defined),
    /// `plan.changed`
    Changed(Changed),
    /// `plan.retired`
    Retired(Retired),
}

/// Why the plan catalogue refuses a command, or a plan cannot be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `Define` with a code already in use.
    #[error("a plan with the code {code} already exists; choose another code or change that plan")]
    PlanExists {
        /// The code.
        code: PlanCode,
    },
    /// No plan has this code.
    #[error("there is no plan with the code {code}")]
    UnknownPlan {
        /// The code.
        code: PlanCode,
    },
    /// The plan is retired and cannot be given to a tenant.
    #[error("the plan {code} is retired and cannot be given to tenants; choose another plan")]
    RetiredPlan {
        /// The code.
        code: PlanCode,
    },
    /// A limit is 0.
    #[error("every limit must be at least 1; {limit} is 0")]
    InvalidLimit {
        /// The limit that is 0.
        limit: LimitName,
    },
}

/// The plans on the install, retired ones included.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PlanCatalogueState {
    /// Every plan by code, with whether it is retired.
    pub plans: BTreeMap<PlanCode, (Plan, bool)>,
}

impl PlanCatalogueState {
    /// The plan with this code, retired or not.
    pub fn plan(&self, code: &PlanCode) -> Option<&Plan> {
        self.plans.get(code).map(|(plan, _)| plan)
    }

    /// Whether the plan with this code is retired (false if unknown).
    pub fn is_retired(&self, code: &PlanCode) -> bool {
        self.plans.get(code).is_some_and(|(_, retired)| *retired)
    }

    /// The plan with this code if it can be given to a tenant now: refused
    /// when unknown or retired.
    pub fn assignable(&self, code: &PlanCode) -> Result<&Plan, PlanError> {
        match self.plans.get(code) {
            None => Err(PlanError::UnknownPlan { code: code.clone() }),
            Some((_, true)) => Err(PlanError::RetiredPlan { code: code.clone() }),
            Some((plan, false)) => Ok(plan),
        }
    }

    /// Every plan in code order, with whether it is retired (for listing).
    pub fn list(&self) -> impl Iterator<Item = (&Plan, bool)> {
        self.plans.values().map(|(plan, retired)| (plan, *retired))
    }
}

fn valid_limits(limits: &PlanLimits) -> Result<(), PlanError> {
    match limits.first_zero() {
        Some(limit) => Err(PlanError::InvalidLimit { limit }),
        None => Ok(()),
    }
}

impl Decider for PlanCatalogue {
    type State = PlanCatalogueState;
    type Command = PlanCatalogueCommand;
    type Event = PlanCatalogueEvent;
    type Error = PlanError;

    fn decide(
        state: &PlanCatalogueState,
        command: &PlanCatalogueCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<PlanCatalogueEvent>, PlanError> {
        match command {
            PlanCatalogueCommand::Define(plan) => {
                if state.plans.contains_key(&plan.code) {
                    return Err(PlanError::PlanExists {
                        code: plan.code.clone(),
                    });
                }
                valid_limits(&plan.limits)?;
                Ok(vec![PlanCatalogueEvent::Defined(Defined {
                    plan: plan.clone(),
                    at: now,
                })])
            }
            PlanCatalogueCommand::Change { code, name, limits } => {
                let current = state
                    .plan(code)
                    .ok_or_else(|| PlanError::UnknownPlan { code: code.clone() })?;
                valid_limits(limits)?;
                if current.name == *name && current.limits == *limits {
                    return Ok(vec![]);
                }
                Ok(vec![PlanCatalogueEvent::Changed(Changed {
                    code: code.clone(),
                    name: name.clone(),
                    limits: *limits,
                    at: now,
                })])
            }
            PlanCatalogueCommand::Retire { code } => match state.plans.get(code) {
                None => Err(PlanError::UnknownPlan { code: code.clone() }),
                Some((_, true)) => Ok(vec![]),
                Some((_, false)) => Ok(vec![PlanCatalogueEvent::Retired(Retired {
                    code: code.clone(),
                    at: now,
                })]),
            },
            PlanCatalogueCommand::InstallDefaults => Ok(default_plans()
                .into_iter()
                .filter(|plan| !state.plans.contains_key(&plan.code))
                .map(|plan| PlanCatalogueEvent::Defined(Defined { plan, at: now }))
                .collect()),
        }
    }

    fn evolve(mut state: PlanCatalogueState, event: &PlanCatalogueEvent) -> PlanCatalogueState {
        match event {
            PlanCatalogueEvent::Defined(e) => {
                state
                    .plans
                    .insert(e.plan.code.clone(), (e.plan.clone(), false));
            }
            PlanCatalogueEvent::Changed(e) => {
                if let Some((plan, _)) = state.plans.get_mut(&e.code) {
                    plan.name = e.name.clone();
                    plan.limits = e.limits;
                }
            }
            PlanCatalogueEvent::Retired(e) => {
                if let Some((_, retired)) = state.plans.get_mut(&e.code) {
                    *retired = true;
                }
            }
        }
        state
    }
}

const DEFINED: &str = "plan.defined";
const CHANGED: &str = "plan.changed";
const RETIRED: &str = "plan.retired";

/// Reads a stored payload of schema version 1.
fn decode<T: DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    ventanilla_eventlog::decode_payload(event_type, schema_version, 1, data)
}

impl DomainEvent for PlanCatalogueEvent {
    fn event_type(&self) -> &'static str {
        match self {
            PlanCatalogueEvent::Defined(_) => DEFINED,
            PlanCatalogueEvent::Changed(_) => CHANGED,
            PlanCatalogueEvent::Retired(_) => RETIRED,
        }
    }

    fn to_data(&self) -> Value {
        match self {
            PlanCatalogueEvent::Defined(e) => serde_json::to_value(e),
            PlanCatalogueEvent::Changed(e) => serde_json::to_value(e),
            PlanCatalogueEvent::Retired(e) => serde_json::to_value(e),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        match event_type {
            DEFINED => decode(event_type, schema_version, data).map(Self::Defined),
            CHANGED => decode(event_type, schema_version, data).map(Self::Changed),
            RETIRED => decode(event_type, schema_version, data).map(Self::Retired),
            _ => Err(UpcastError {
                event_type: event_type.to_owned(),
                schema_version,
                reason: "not a plan catalogue event".to_owned(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ventanilla_eventlog::testing::given;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
    }

    fn code(s: &str) -> PlanCode {
        PlanCode::parse("code", s).unwrap()
    }

    fn name(s: &str) -> Name {
        Name::parse("name", s, PLAN_NAME_MAX).unwrap()
    }

    fn gold() -> Plan {
        Plan {
            code: code("gold"),
            name: name("Gold"),
            limits: limits(5, 3, 1_000, 120),
            public: false,
        }
    }

    fn defined(plan: Plan) -> PlanCatalogueEvent {
        PlanCatalogueEvent::Defined(Defined { plan, at: now() })
    }

    fn retired(c: &str) -> PlanCatalogueEvent {
        PlanCatalogueEvent::Retired(Retired {
            code: code(c),
            at: now(),
        })
    }

    #[test]
    fn plan_codes_are_validated() {
        assert_eq!(code(" municipio_2 ").as_str(), "municipio_2");
        assert_eq!(code("ab").as_str(), "ab");
        assert_eq!(code(&"a".repeat(32)).as_str(), "a".repeat(32));
        for bad in [
            "a",
            "",
            "Free",
            "free plan",
            "grátis",
            &"a".repeat(33),
            "a.b",
        ] {
            let e = PlanCode::parse("plan", bad).unwrap_err();
            assert_eq!(e.field, "plan", "{bad}");
        }
        // Deserialising validates too.
        assert!(serde_json::from_value::<PlanCode>(serde_json::json!("Bad Code")).is_err());
        assert_eq!(
            serde_json::from_value::<PlanCode>(serde_json::json!("free")).unwrap(),
            code("free")
        );
    }

    #[test]
    fn limits_check_names_the_limit() {
        let l = limits(5, 1, 200, 60);
        assert!(l.check(LimitName::Agents, 4, 1).is_ok());
        assert!(l.check(LimitName::Agents, 5, 0).is_ok());
        let e = l.check(LimitName::Agents, 5, 1).unwrap_err();
        assert_eq!(
            e,
            QuotaExceeded {
                limit: LimitName::Agents,
                allowed: 5,
                used: 5
            }
        );
        assert_eq!(e.to_string(), "the plan allows 5 agents; 5 are in use");
        let e = l.check(LimitName::ChannelAccounts, 1, 1).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the plan allows 1 linked channel account; 1 is in use"
        );
        assert!(
            l.check(LimitName::TicketsPerMonth, u32::MAX, u32::MAX)
                .is_err()
        );
        assert_eq!(
            l.check(LimitName::ApiRequestsPerMinute, 60, 1)
                .unwrap_err()
                .to_string(),
            "the plan allows 60 API requests per minute; 60 are in use"
        );
    }

    #[test]
    fn limit_names_read_as_words() {
        let words: Vec<String> = LimitName::ALL.iter().map(ToString::to_string).collect();
        assert_eq!(
            words,
            [
                "agents",
                "linked channel accounts",
                "tickets per month",
                "API requests per minute"
            ]
        );
        assert_eq!(LimitName::TicketsPerMonth.count(1), "1 ticket per month");
    }

    #[test]
    fn admits_checks_every_counted_limit() {
        let l = limits(5, 2, 100, 60);
        assert!(
            l.admits(&Usage {
                agents: 5,
                channel_accounts: 2,
                tickets_this_month: 100
            })
            .is_ok()
        );
        let over = |u: Usage| l.admits(&u).unwrap_err().limit;
        assert_eq!(
            over(Usage {
                agents: 6,
                ..Usage::default()
            }),
            LimitName::Agents
        );
        assert_eq!(
            over(Usage {
                channel_accounts: 3,
                ..Usage::default()
            }),
            LimitName::ChannelAccounts
        );
        assert_eq!(
            over(Usage {
                tickets_this_month: 101,
                ..Usage::default()
            }),
            LimitName::TicketsPerMonth
        );
    }

    #[test]
    fn the_shipped_defaults_are_all_there_and_valid() {
        let plans = default_plans();
        let codes: Vec<&str> = plans.iter().map(|p| p.code.as_str()).collect();
        assert_eq!(codes, ["free", "municipio", "provincia"]);
        assert!(
            plans
                .iter()
                .all(|p| p.limits.first_zero().is_none() && p.public)
        );
        assert_eq!(plans[0].limits, limits(2, 1, 200, 60));
        assert_eq!(plans[1].limits, limits(10, 5, 5_000, 600));
        assert_eq!(plans[2].limits, limits(50, 20, 50_000, 3_000));
    }

    #[test]
    fn stream_is_plans() {
        assert_eq!(stream_id().unwrap().as_str(), "plans");
        assert_eq!(STREAM_OWNER, TenantId::PLATFORM);
    }

    #[test]
    fn define_records_a_new_plan() {
        given::<PlanCatalogue>(vec![])
            .when(&PlanCatalogueCommand::Define(gold()))
            .then(vec![defined(gold())]);
    }

    #[test]
    fn define_refuses_an_existing_code_even_retired() {
        given::<PlanCatalogue>(vec![defined(gold())])
            .when(&PlanCatalogueCommand::Define(gold()))
            .then_error(|e| matches!(e, PlanError::PlanExists { code: c } if c.as_str() == "gold"));
        given::<PlanCatalogue>(vec![defined(gold()), retired("gold")])
            .when(&PlanCatalogueCommand::Define(gold()))
            .then_error(|e| matches!(e, PlanError::PlanExists { .. }));
    }

    #[test]
    fn define_refuses_a_zero_limit() {
        let mut plan = gold();
        plan.limits.agents = 0;
        given::<PlanCatalogue>(vec![])
            .when(&PlanCatalogueCommand::Define(plan))
            .then_error(|e| {
                *e == PlanError::InvalidLimit {
                    limit: LimitName::Agents,
                } && e.to_string() == "every limit must be at least 1; agents is 0"
            });
        let mut plan = gold();
        plan.limits.api_requests_per_minute = 0;
        given::<PlanCatalogue>(vec![])
            .when(&PlanCatalogueCommand::Define(plan))
            .then_error(|e| {
                *e == PlanError::InvalidLimit {
                    limit: LimitName::ApiRequestsPerMinute,
                }
            });
    }

    #[test]
    fn change_records_new_name_and_limits() {
        let cmd = PlanCatalogueCommand::Change {
            code: code("gold"),
            name: name("Gold 2026"),
            limits: limits(8, 3, 1_000, 120),
        };
        given::<PlanCatalogue>(vec![defined(gold())])
            .when(&cmd)
            .then(vec![PlanCatalogueEvent::Changed(Changed {
                code: code("gold"),
                name: name("Gold 2026"),
                limits: limits(8, 3, 1_000, 120),
                at: now(),
            })]);
        // Retired plans can still be changed: tenants on them keep them.
        given::<PlanCatalogue>(vec![defined(gold()), retired("gold")])
            .when(&cmd)
            .then(vec![PlanCatalogueEvent::Changed(Changed {
                code: code("gold"),
                name: name("Gold 2026"),
                limits: limits(8, 3, 1_000, 120),
                at: now(),
            })]);
    }

    #[test]
    fn change_to_what_it_is_is_a_no_op() {
        given::<PlanCatalogue>(vec![defined(gold())])
            .when(&PlanCatalogueCommand::Change {
                code: code("gold"),
                name: gold().name,
                limits: gold().limits,
            })
            .then(vec![]);
    }

    #[test]
    fn change_refuses_an_unknown_plan() {
        given::<PlanCatalogue>(vec![])
            .when(&PlanCatalogueCommand::Change {
                code: code("gold"),
                name: name("Gold"),
                limits: limits(1, 1, 1, 1),
            })
            .then_error(|e| {
                matches!(e, PlanError::UnknownPlan { .. })
                    && e.to_string() == "there is no plan with the code gold"
            });
    }

    #[test]
    fn change_refuses_a_zero_limit() {
        given::<PlanCatalogue>(vec![defined(gold())])
            .when(&PlanCatalogueCommand::Change {
                code: code("gold"),
                name: name("Gold"),
                limits: limits(5, 3, 0, 120),
            })
            .then_error(|e| {
                *e == PlanError::InvalidLimit {
                    limit: LimitName::TicketsPerMonth,
                }
            });
    }

    #[test]
    fn retire_records_once_then_is_a_no_op() {
        given::<PlanCatalogue>(vec![defined(gold())])
            .when(&PlanCatalogueCommand::Retire { code: code("gold") })
            .then(vec![retired("gold")]);
        given::<PlanCatalogue>(vec![defined(gold()), retired("gold")])
            .when(&PlanCatalogueCommand::Retire { code: code("gold") })
            .then(vec![]);
    }

    #[test]
    fn retire_refuses_an_unknown_plan() {
        given::<PlanCatalogue>(vec![])
            .when(&PlanCatalogueCommand::Retire { code: code("gold") })
            .then_error(|e| matches!(e, PlanError::UnknownPlan { .. }));
    }

    #[test]
    fn install_defaults_defines_the_missing_ones_only() {
        let defaults = default_plans();
        given::<PlanCatalogue>(vec![])
            .when(&PlanCatalogueCommand::InstallDefaults)
            .then(defaults.iter().cloned().map(defined).collect());
        // An operator's own `free` (even retired) is left alone.
        let own_free = Plan {
            code: code("free"),
            name: name("Gratis"),
            limits: limits(3, 1, 100, 30),
            public: true,
        };
        given::<PlanCatalogue>(vec![defined(own_free), retired("free")])
            .when(&PlanCatalogueCommand::InstallDefaults)
            .then(defaults[1..].iter().cloned().map(defined).collect());
        given::<PlanCatalogue>(defaults.into_iter().map(defined).collect())
            .when(&PlanCatalogueCommand::InstallDefaults)
            .then(vec![]);
    }

    #[test]
    fn state_lists_and_tells_what_can_be_assigned() {
        let state = PlanCatalogue::fold(&[
            defined(gold()),
            PlanCatalogueEvent::Changed(Changed {
                code: code("gold"),
                name: name("Gold+"),
                limits: limits(9, 9, 9, 9),
                at: now(),
            }),
            defined(default_plans()[0].clone()),
            retired("free"),
        ]);
        assert_eq!(state.plan(&code("gold")).unwrap().name.as_str(), "Gold+");
        assert_eq!(state.assignable(&code("gold")).unwrap().limits.agents, 9);
        assert!(state.plan(&code("free")).is_some());
        assert!(state.is_retired(&code("free")));
        assert_eq!(
            state.assignable(&code("free")).unwrap_err(),
            PlanError::RetiredPlan { code: code("free") }
        );
        assert_eq!(
            state.assignable(&code("none")).unwrap_err(),
            PlanError::UnknownPlan { code: code("none") }
        );
        let listed: Vec<(&str, bool)> = state.list().map(|(p, r)| (p.code.as_str(), r)).collect();
        assert_eq!(listed, [("free", true), ("gold", false)]);
    }

    #[test]
    fn every_event_survives_the_log() {
        let events = [
            defined(gold()),
            PlanCatalogueEvent::Changed(Changed {
                code: code("gold"),
                name: name("Gold+"),
                limits: limits(9, 8, 7, 6),
                at: now(),
            }),
            retired("gold"),
        ];
        let types: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, ["plan.defined", "plan.changed", "plan.retired"]);
        for event in events {
            assert_eq!(event.schema_version(), 1);
            let back =
                PlanCatalogueEvent::from_stored(event.event_type(), 1, &event.to_data()).unwrap();
            assert_eq!(back, event);
        }
    }

    #[test]
    fn unknown_or_malformed_stored_events_are_refused() {
        assert!(
            PlanCatalogueEvent::from_stored("plan.exploded", 1, &serde_json::json!({})).is_err()
        );
        assert!(
            PlanCatalogueEvent::from_stored("plan.retired", 1, &serde_json::json!({})).is_err()
        );
        let bad_code = serde_json::json!({"code": "Not A Code", "at": now()});
        assert!(PlanCatalogueEvent::from_stored("plan.retired", 1, &bad_code).is_err());
        let ok = retired("gold").to_data();
        assert!(PlanCatalogueEvent::from_stored("plan.retired", 2, &ok).is_err());
    }
}
