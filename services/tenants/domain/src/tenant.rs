//! The tenant lifecycle: the aggregate [`Tenant`] (stream `tenant-<uuid>`,
//! owned by that tenant's own [`TenantId`]) records a council or business
//! being provisioned, suspended, reactivated, moved to another plan and
//! closed; and the aggregate [`SlugClaim`] (stream `slug-<slug>`, owned by
//! [`TenantId::PLATFORM`]) keeps slugs unique across tenants.
//!
//! # Provisioning a tenant, step by step (the service's job)
//!
//! 1. Parse the input into values (`Name::parse("name", s, TENANT_NAME_MAX)`,
//!    `Slug::parse`, …) and check the plan with
//!    [`crate::plan::PlanCatalogueState::assignable`].
//! 2. Claim the slug: run [`SlugClaimCommand::Claim`] on
//!    [`slug_stream_id`] in [`SLUG_STREAM_OWNER`]'s space through the command
//!    runner (or append `slug.claimed` with `ExpectedVersion::NoStream`). The
//!    log's expected-version check makes the claim atomic, so two operators
//!    racing for one slug cannot both win: the loser decides again, sees the
//!    winner's claim and gets [`SlugClaimError::SlugTaken`].
//! 3. Only then run [`TenantCommand::Provision`] on [`stream_id`]. If it is
//!    refused, release the slug with [`SlugClaimCommand::Release`].
//!
//! Pure: no I/O and no clock. It never reads other tenants or the plan
//! catalogue itself — slug uniqueness lives in [`SlugClaim`], and the
//! current usage a plan change is checked against comes inside the command.

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use ventanilla_eventlog::{Decider, DomainEvent, UpcastError};
use ventanilla_kernel::{StreamId, StreamIdError, TenantId};

use crate::plan::{LimitName, PlanCode, PlanLimits, QuotaExceeded, Usage};
use crate::values::{Email, Language, Name, Slug, TimeZone};

/// The longest tenant display name, in characters (parse it with
/// `Name::parse("name", s, TENANT_NAME_MAX)`).
pub const TENANT_NAME_MAX: usize = 120;

/// The longest reason for a suspension or a closure, in characters.
pub const REASON_MAX: usize = 500;

/// The most languages a tenant can offer.
pub const MAX_LANGUAGES: usize = 10;

/// The tenant that owns every `slug-<slug>` stream: the install itself.
pub const SLUG_STREAM_OWNER: TenantId = TenantId::PLATFORM;

/// The stream of one tenant's lifecycle: `tenant-<uuid>`, written in that
/// tenant's own space.
pub fn stream_id(tenant: TenantId) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("tenant", tenant)
}

/// The stream of one slug's claim: `slug-<slug>`, written in
/// [`SLUG_STREAM_OWNER`]'s space.
pub fn slug_stream_id(slug: &Slug) -> Result<StreamId, StreamIdError> {
    StreamId::for_aggregate("slug", slug)
}

/// What kind of organisation a tenant is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantKind {
    /// A council (ayuntamiento, diputación…) serving citizens.
    Council,
    /// A business serving customers.
    Business,
}

/// The aggregate of one tenant's lifecycle.
pub struct Tenant;

/// Everything needed to provision a tenant, already validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ProvisionTenant {
    /// The display name (at most [`TENANT_NAME_MAX`] characters).
    pub name: Name,
    /// The slug, already claimed through [`SlugClaim`].
    pub slug: Slug,
    /// Council or business.
    pub kind: TenantKind,
    /// The plan, already checked to be assignable.
    pub plan: PlanCode,
    /// The tenant's time zone (for business hours and monthly quotas).
    pub time_zone: TimeZone,
    /// The language used when nothing else is known.
    pub default_language: Language,
    /// Every language offered, `default_language` included, each once, at
    /// most [`MAX_LANGUAGES`].
    pub languages: Vec<Language>,
    /// Where the operator writes to the tenant.
    pub contact_email: Email,
}

/// What an operator can ask of a tenant. Once closed, every command is
/// refused with [`TenantError::Closed`].
#[derive(Debug, Clone, PartialEq)]
pub enum TenantCommand {
    /// Creates the tenant, active.
    Provision(ProvisionTenant),
    /// Suspends an active tenant: its staff and API keys are refused until
    /// it is reactivated; its data is kept.
    Suspend {
        /// Why (at most [`REASON_MAX`] characters).
        reason: Name,
    },
    /// Restores a suspended tenant's access.
    Reactivate,
    /// Moves the tenant to another plan (active or suspended), refused when
    /// its current usage is above the new plan's limits. Moving to the plan
    /// it is on is a no-op.
    ChangePlan {
        /// The new plan, already checked to be assignable.
        plan: PlanCode,
        /// The new plan's limits.
        limits: PlanLimits,
        /// What the tenant uses now.
        usage: Usage,
    },
    /// Closes the tenant for good.
    Close {
        /// Why (at most [`REASON_MAX`] characters).
        reason: Name,
    },
}

/// A tenant was provisioned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provisioned {
    /// The display name.
    pub name: Name,
    /// The slug.
    pub slug: Slug,
    /// Council or business.
    pub kind: TenantKind,
    /// The plan.
    pub plan: PlanCode,
    /// The time zone.
    pub time_zone: TimeZone,
    /// The default language.
    pub default_language: Language,
    /// The languages offered.
    pub languages: Vec<Language>,
    /// The contact address.
    pub contact_email: Email,
    /// When.
    pub at: DateTime<Utc>,
}

/// A tenant was suspended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suspended {
    /// Why.
    pub reason: Name,
    /// When.
    pub at: DateTime<Utc>,
}

/// A suspended tenant was reactivated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reactivated {
    /// When.
    pub at: DateTime<Utc>,
}

/// A tenant moved to another plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanChanged {
    /// The plan it was on.
    pub from: PlanCode,
    /// The plan it is on now.
    pub to: PlanCode,
    /// When.
    pub at: DateTime<Utc>,
}

/// A tenant was closed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Closed {
    /// Why.
    pub reason: Name,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a tenant's stream records.
#[derive(Debug, Clone, PartialEq)]
pub enum TenantEvent {
    /// `tenant.provisioned`
    Provisioned(Provisioned),
    /// `tenant.suspended`
    Suspended(Suspended),
    /// `tenant.reactivated`
    Reactivated(Reactivated),
    /// `tenant.plan_changed`
    PlanChanged(PlanChanged),
    /// `tenant.closed`
    Closed(Closed),
}

/// Why a tenant command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TenantError {
    /// `Provision` of a tenant that exists.
    #[error("the tenant is already provisioned")]
    AlreadyProvisioned,
    /// Any other command before `Provision`.
    #[error("the tenant does not exist; provision it first")]
    NotProvisioned,
    /// Any command after `Close`.
    #[error("the tenant is closed and cannot be changed")]
    Closed,
    /// `Suspend` of a suspended tenant.
    #[error("the tenant is already suspended")]
    AlreadySuspended,
    /// `Reactivate` of an active tenant.
    #[error("the tenant is not suspended, so it cannot be reactivated")]
    NotSuspended,
    /// The default language is not among the languages offered.
    #[error("languages: the default language {language} must be one of the languages offered")]
    DefaultLanguageNotOffered {
        /// The default language.
        language: Language,
    },
    /// A language is listed twice.
    #[error("languages: {language} is listed more than once; list each language once")]
    DuplicateLanguage {
        /// The repeated language.
        language: Language,
    },
    /// Too many languages.
    #[error("languages: at most {max} languages can be offered, got {count}")]
    TooManyLanguages {
        /// How many were given.
        count: usize,
        /// The most allowed.
        max: usize,
    },
    /// The tenant uses more than the new plan allows.
    #[error("the plan allows {}; the tenant has {used}", limit.count(*allowed))]
    QuotaExceeded {
        /// The limit the tenant is over.
        limit: LimitName,
        /// What the tenant uses now.
        used: u32,
        /// What the new plan allows.
        allowed: u32,
    },
}

impl From<QuotaExceeded> for TenantError {
    fn from(e: QuotaExceeded) -> Self {
        TenantError::QuotaExceeded {
            limit: e.limit,
            used: e.used,
            allowed: e.allowed,
        }
    }
}

/// Where a provisioned tenant is in its lifecycle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum TenantStatus {
    /// Working normally.
    Active,
    /// Staff and API keys are refused; data is kept.
    Suspended {
        /// Why.
        reason: Name,
    },
    /// Closed for good.
    Closed,
}

/// A provisioned tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct TenantDetails {
    /// Where it is in its lifecycle.
    pub status: TenantStatus,
    /// The display name.
    pub name: Name,
    /// The slug.
    pub slug: Slug,
    /// Council or business.
    pub kind: TenantKind,
    /// The plan it is on.
    pub plan: PlanCode,
    /// The time zone.
    pub time_zone: TimeZone,
    /// The default language.
    pub default_language: Language,
    /// The languages offered.
    pub languages: Vec<Language>,
    /// The contact address.
    pub contact_email: Email,
    /// When it was provisioned.
    pub provisioned_at: DateTime<Utc>,
}

/// What a tenant's stream says about it.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct TenantState {
    /// The tenant, once provisioned (`None` before).
    pub tenant: Option<TenantDetails>,
}

impl TenantState {
    /// Whether the tenant has been provisioned (closed ones included).
    pub fn is_provisioned(&self) -> bool {
        self.tenant.is_some()
    }

    /// Whether the tenant is provisioned and neither suspended nor closed:
    /// only then may its staff and API keys get in.
    pub fn is_active(&self) -> bool {
        self.status() == Some(&TenantStatus::Active)
    }

    /// The tenant's status, once provisioned.
    pub fn status(&self) -> Option<&TenantStatus> {
        self.tenant.as_ref().map(|t| &t.status)
    }
}

fn check_languages(default: &Language, languages: &[Language]) -> Result<(), TenantError> {
    if languages.len() > MAX_LANGUAGES {
        return Err(TenantError::TooManyLanguages {
            count: languages.len(),
            max: MAX_LANGUAGES,
        });
    }
    for (i, language) in languages.iter().enumerate() {
        if languages[..i].contains(language) {
            return Err(TenantError::DuplicateLanguage {
                language: language.clone(),
            });
        }
    }
    if !languages.contains(default) {
        return Err(TenantError::DefaultLanguageNotOffered {
            language: default.clone(),
        });
    }
    Ok(())
}

impl Decider for Tenant {
    type State = TenantState;
    type Command = TenantCommand;
    type Event = TenantEvent;
    type Error = TenantError;

    fn decide(
        state: &TenantState,
        command: &TenantCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<TenantEvent>, TenantError> {
        if state.status() == Some(&TenantStatus::Closed) {
            return Err(TenantError::Closed);
        }
        if let TenantCommand::Provision(p) = command {
            if state.is_provisioned() {
                return Err(TenantError::AlreadyProvisioned);
            }
            check_languages(&p.default_language, &p.languages)?;
            return Ok(vec![TenantEvent::Provisioned(Provisioned {
                name: p.name.clone(),
                slug: p.slug.clone(),
                kind: p.kind,
                plan: p.plan.clone(),
                time_zone: p.time_zone.clone(),
                default_language: p.default_language.clone(),
                languages: p.languages.clone(),
                contact_email: p.contact_email.clone(),
                at: now,
            })]);
        }
        let tenant = state.tenant.as_ref().ok_or(TenantError::NotProvisioned)?;
        let suspended = matches!(tenant.status, TenantStatus::Suspended { .. });
        match command {
            TenantCommand::Provision(_) => Err(TenantError::AlreadyProvisioned),
            TenantCommand::Suspend { reason } => {
                if suspended {
                    return Err(TenantError::AlreadySuspended);
                }
                Ok(vec![TenantEvent::Suspended(Suspended {
                    reason: reason.clone(),
                    at: now,
                })])
            }
            TenantCommand::Reactivate => {
                if !suspended {
                    return Err(TenantError::NotSuspended);
                }
                Ok(vec![TenantEvent::Reactivated(Reactivated { at: now })])
            }
            TenantCommand::ChangePlan {
                plan,
                limits,
                usage,
            } => {
                if *plan == tenant.plan {
                    return Ok(vec![]);
                }
                limits.admits(usage)?;
                Ok(vec![TenantEvent::PlanChanged(PlanChanged {
                    from: tenant.plan.clone(),
                    to: plan.clone(),
                    at: now,
                })])
            }
            TenantCommand::Close { reason } => Ok(vec![TenantEvent::Closed(Closed {
                reason: reason.clone(),
                at: now,
            })]),
        }
    }

    fn evolve(mut state: TenantState, event: &TenantEvent) -> TenantState {
        if let TenantEvent::Provisioned(e) = event {
            state.tenant = Some(TenantDetails {
                status: TenantStatus::Active,
                name: e.name.clone(),
                slug: e.slug.clone(),
                kind: e.kind,
                plan: e.plan.clone(),
                time_zone: e.time_zone.clone(),
                default_language: e.default_language.clone(),
                languages: e.languages.clone(),
                contact_email: e.contact_email.clone(),
                provisioned_at: e.at,
            });
            return state;
        }
        if let Some(tenant) = state.tenant.as_mut() {
            match event {
                TenantEvent::Provisioned(_) => {}
                TenantEvent::Suspended(e) => {
                    tenant.status = TenantStatus::Suspended {
                        reason: e.reason.clone(),
                    };
                }
                TenantEvent::Reactivated(_) => tenant.status = TenantStatus::Active,
                TenantEvent::PlanChanged(e) => tenant.plan = e.to.clone(),
                TenantEvent::Closed(_) => tenant.status = TenantStatus::Closed,
            }
        }
        state
    }
}

const PROVISIONED: &str = "tenant.provisioned";
const SUSPENDED: &str = "tenant.suspended";
const REACTIVATED: &str = "tenant.reactivated";
const PLAN_CHANGED: &str = "tenant.plan_changed";
const CLOSED: &str = "tenant.closed";
const SLUG_CLAIMED: &str = "slug.claimed";
const SLUG_RELEASED: &str = "slug.released";

/// Reads a stored payload of schema version 1.
fn decode<T: DeserializeOwned>(
    event_type: &str,
    schema_version: u16,
    data: &Value,
) -> Result<T, UpcastError> {
    ventanilla_eventlog::decode_payload(event_type, schema_version, 1, data)
}

fn unknown(event_type: &str, schema_version: u16, what: &str) -> UpcastError {
    UpcastError {
        event_type: event_type.to_owned(),
        schema_version,
        reason: format!("not a {what} event"),
    }
}

impl DomainEvent for TenantEvent {
    fn event_type(&self) -> &'static str {
        match self {
            TenantEvent::Provisioned(_) => PROVISIONED,
            TenantEvent::Suspended(_) => SUSPENDED,
            TenantEvent::Reactivated(_) => REACTIVATED,
            TenantEvent::PlanChanged(_) => PLAN_CHANGED,
            TenantEvent::Closed(_) => CLOSED,
        }
    }

    fn to_data(&self) -> Value {
        match self {
            TenantEvent::Provisioned(e) => serde_json::to_value(e),
            TenantEvent::Suspended(e) => serde_json::to_value(e),
            TenantEvent::Reactivated(e) => serde_json::to_value(e),
            TenantEvent::PlanChanged(e) => serde_json::to_value(e),
            TenantEvent::Closed(e) => serde_json::to_value(e),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        match event_type {
            PROVISIONED => decode(event_type, schema_version, data).map(Self::Provisioned),
            SUSPENDED => decode(event_type, schema_version, data).map(Self::Suspended),
            REACTIVATED => decode(event_type, schema_version, data).map(Self::Reactivated),
            PLAN_CHANGED => decode(event_type, schema_version, data).map(Self::PlanChanged),
            CLOSED => decode(event_type, schema_version, data).map(Self::Closed),
            _ => Err(unknown(event_type, schema_version, "tenant")),
        }
    }
}

/// The aggregate that keeps one slug for one tenant at a time. Its stream
/// is [`slug_stream_id`] in [`SLUG_STREAM_OWNER`]'s space; see the module
/// documentation for how the service uses it before provisioning.
pub struct SlugClaim;

/// What can be asked of a slug's claim.
#[derive(Debug, Clone, PartialEq)]
pub enum SlugClaimCommand {
    /// Claims the slug for `tenant`. Refused when another tenant holds it; a
    /// no-op when `tenant` already holds it (a retried provisioning).
    Claim {
        /// The slug: the one the stream is named after.
        slug: Slug,
        /// The tenant claiming it.
        tenant: TenantId,
    },
    /// Frees the slug. Only its owner may release it; releasing a slug that
    /// nobody holds is a no-op (a retried release).
    Release {
        /// The tenant releasing it.
        tenant: TenantId,
    },
}

/// A slug was claimed by a tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claimed {
    /// The slug.
    pub slug: Slug,
    /// The tenant that holds it now.
    pub tenant: TenantId,
    /// When.
    pub at: DateTime<Utc>,
}

/// A slug was released by its owner and is free again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Released {
    /// The slug.
    pub slug: Slug,
    /// The tenant that held it.
    pub tenant: TenantId,
    /// When.
    pub at: DateTime<Utc>,
}

/// What a slug's stream records.
#[derive(Debug, Clone, PartialEq)]
pub enum SlugClaimEvent {
    /// `slug.claimed`
    Claimed(Claimed),
    /// `slug.released`
    Released(Released),
}

/// Why a slug command is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugClaimError {
    /// Another tenant holds the slug.
    #[error("slug: {slug} is already taken; choose another slug")]
    SlugTaken {
        /// The slug.
        slug: Slug,
        /// The tenant that holds it.
        owner: TenantId,
    },
    /// Someone other than the owner tried to release it.
    #[error("slug: {slug} belongs to another tenant; only its owner can release it")]
    NotOwner {
        /// The slug.
        slug: Slug,
        /// The tenant that holds it.
        owner: TenantId,
    },
}

/// Who holds a slug.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct SlugClaimState {
    /// The slug, once the stream has any event.
    pub slug: Option<Slug>,
    /// The tenant holding it now (`None`: free).
    pub owner: Option<TenantId>,
}

impl Decider for SlugClaim {
    type State = SlugClaimState;
    type Command = SlugClaimCommand;
    type Event = SlugClaimEvent;
    type Error = SlugClaimError;

    fn decide(
        state: &SlugClaimState,
        command: &SlugClaimCommand,
        now: DateTime<Utc>,
    ) -> Result<Vec<SlugClaimEvent>, SlugClaimError> {
        match (command, state.owner, &state.slug) {
            (SlugClaimCommand::Claim { tenant, .. }, Some(owner), _) if owner == *tenant => {
                Ok(vec![])
            }
            (SlugClaimCommand::Claim { slug, .. }, Some(owner), _) => {
                Err(SlugClaimError::SlugTaken {
                    slug: slug.clone(),
                    owner,
                })
            }
            (SlugClaimCommand::Claim { slug, tenant }, None, _) => {
                Ok(vec![SlugClaimEvent::Claimed(Claimed {
                    slug: slug.clone(),
                    tenant: *tenant,
                    at: now,
                })])
            }
            (SlugClaimCommand::Release { tenant }, Some(owner), Some(slug)) => {
                if owner != *tenant {
                    return Err(SlugClaimError::NotOwner {
                        slug: slug.clone(),
                        owner,
                    });
                }
                Ok(vec![SlugClaimEvent::Released(Released {
                    slug: slug.clone(),
                    tenant: *tenant,
                    at: now,
                })])
            }
            (SlugClaimCommand::Release { .. }, _, _) => Ok(vec![]),
        }
    }

    fn evolve(mut state: SlugClaimState, event: &SlugClaimEvent) -> SlugClaimState {
        match event {
            SlugClaimEvent::Claimed(e) => {
                state.slug = Some(e.slug.clone());
                state.owner = Some(e.tenant);
            }
            SlugClaimEvent::Released(e) => {
                state.slug = Some(e.slug.clone());
                state.owner = None;
            }
        }
        state
    }
}

impl DomainEvent for SlugClaimEvent {
    fn event_type(&self) -> &'static str {
        match self {
            SlugClaimEvent::Claimed(_) => SLUG_CLAIMED,
            SlugClaimEvent::Released(_) => SLUG_RELEASED,
        }
    }

    fn to_data(&self) -> Value {
        match self {
            SlugClaimEvent::Claimed(e) => serde_json::to_value(e),
            SlugClaimEvent::Released(e) => serde_json::to_value(e),
        }
        .unwrap_or_default()
    }

    fn from_stored(
        event_type: &str,
        schema_version: u16,
        data: &Value,
    ) -> Result<Self, UpcastError> {
        match event_type {
            SLUG_CLAIMED => decode(event_type, schema_version, data).map(Self::Claimed),
            SLUG_RELEASED => decode(event_type, schema_version, data).map(Self::Released),
            _ => Err(unknown(event_type, schema_version, "slug claim")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use uuid::Uuid;
    use ventanilla_eventlog::testing::given;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 15, 10, 0, 0).unwrap()
    }

    fn lang(s: &str) -> Language {
        Language::parse("languages", s).unwrap()
    }

    fn reason(s: &str) -> Name {
        Name::parse("reason", s, REASON_MAX).unwrap()
    }

    fn plan(s: &str) -> PlanCode {
        PlanCode::parse("plan", s).unwrap()
    }

    fn slug(s: &str) -> Slug {
        Slug::parse("slug", s).unwrap()
    }

    fn provision() -> ProvisionTenant {
        ProvisionTenant {
            name: Name::parse("name", "Concello de Lugo", TENANT_NAME_MAX).unwrap(),
            slug: slug("concello-lugo"),
            kind: TenantKind::Council,
            plan: plan("municipio"),
            time_zone: crate::values::TimeZone::parse("time_zone", "Europe/Madrid").unwrap(),
            default_language: lang("gl"),
            languages: vec![lang("gl"), lang("es")],
            contact_email: Email::parse("contact_email", "alcaldia@lugo.gal").unwrap(),
        }
    }

    fn provisioned() -> TenantEvent {
        let p = provision();
        TenantEvent::Provisioned(Provisioned {
            name: p.name,
            slug: p.slug,
            kind: p.kind,
            plan: p.plan,
            time_zone: p.time_zone,
            default_language: p.default_language,
            languages: p.languages,
            contact_email: p.contact_email,
            at: now(),
        })
    }

    fn suspended() -> TenantEvent {
        TenantEvent::Suspended(Suspended {
            reason: reason("unpaid invoices"),
            at: now(),
        })
    }

    fn closed() -> TenantEvent {
        TenantEvent::Closed(Closed {
            reason: reason("contract ended"),
            at: now(),
        })
    }

    fn small() -> PlanLimits {
        PlanLimits {
            agents: 5,
            channel_accounts: 2,
            tickets_per_month: 1_000,
            api_requests_per_minute: 60,
        }
    }

    fn change_to(code: &str, usage: Usage) -> TenantCommand {
        TenantCommand::ChangePlan {
            plan: plan(code),
            limits: small(),
            usage,
        }
    }

    fn every_command() -> Vec<TenantCommand> {
        vec![
            TenantCommand::Provision(provision()),
            TenantCommand::Suspend {
                reason: reason("x"),
            },
            TenantCommand::Reactivate,
            change_to("free", Usage::default()),
            TenantCommand::Close {
                reason: reason("x"),
            },
        ]
    }

    // --- Provision ---

    #[test]
    fn provision_records_the_tenant() {
        given::<Tenant>(vec![])
            .when(&TenantCommand::Provision(provision()))
            .then(vec![provisioned()]);
    }

    #[test]
    fn provision_twice_is_refused() {
        given::<Tenant>(vec![provisioned()])
            .when(&TenantCommand::Provision(provision()))
            .then_error(|e| *e == TenantError::AlreadyProvisioned);
        given::<Tenant>(vec![provisioned(), suspended()])
            .when(&TenantCommand::Provision(provision()))
            .then_error(|e| *e == TenantError::AlreadyProvisioned);
    }

    #[test]
    fn provision_refuses_a_default_language_not_offered() {
        let mut p = provision();
        p.languages = vec![lang("es"), lang("en")];
        given::<Tenant>(vec![])
            .when(&TenantCommand::Provision(p))
            .then_error(|e| {
                *e == TenantError::DefaultLanguageNotOffered {
                    language: lang("gl"),
                } && e.to_string()
                    == "languages: the default language gl must be one of the languages offered"
            });
        let mut p = provision();
        p.languages = vec![];
        given::<Tenant>(vec![])
            .when(&TenantCommand::Provision(p))
            .then_error(|e| matches!(e, TenantError::DefaultLanguageNotOffered { .. }));
    }

    #[test]
    fn provision_refuses_duplicate_languages() {
        let mut p = provision();
        p.languages = vec![lang("gl"), lang("es"), lang("GL")];
        given::<Tenant>(vec![])
            .when(&TenantCommand::Provision(p))
            .then_error(|e| {
                *e == TenantError::DuplicateLanguage {
                    language: lang("gl"),
                }
            });
    }

    #[test]
    fn provision_refuses_more_than_ten_languages() {
        let mut p = provision();
        p.languages = [
            "gl", "es", "ca", "eu", "en", "fr", "pt", "de", "it", "ast", "oc",
        ]
        .into_iter()
        .map(lang)
        .collect();
        given::<Tenant>(vec![])
            .when(&TenantCommand::Provision(p.clone()))
            .then_error(|e| *e == TenantError::TooManyLanguages { count: 11, max: 10 });
        p.languages.pop();
        given::<Tenant>(vec![])
            .when(&TenantCommand::Provision(p))
            .into_result()
            .unwrap();
    }

    // --- Before provisioning, after closing ---

    #[test]
    fn commands_before_provisioning_are_refused() {
        for cmd in every_command().into_iter().skip(1) {
            given::<Tenant>(vec![])
                .when(&cmd)
                .then_error(|e| *e == TenantError::NotProvisioned);
        }
    }

    #[test]
    fn every_command_after_closing_is_refused() {
        for cmd in every_command() {
            given::<Tenant>(vec![provisioned(), closed()])
                .when(&cmd)
                .then_error(|e| *e == TenantError::Closed);
            given::<Tenant>(vec![provisioned(), suspended(), closed()])
                .when(&cmd)
                .then_error(|e| *e == TenantError::Closed);
        }
    }

    // --- Suspend / Reactivate ---

    #[test]
    fn suspend_records_the_reason() {
        given::<Tenant>(vec![provisioned()])
            .when(&TenantCommand::Suspend {
                reason: reason("unpaid invoices"),
            })
            .then(vec![suspended()]);
    }

    #[test]
    fn suspend_when_suspended_is_refused() {
        given::<Tenant>(vec![provisioned(), suspended()])
            .when(&TenantCommand::Suspend {
                reason: reason("again"),
            })
            .then_error(|e| {
                *e == TenantError::AlreadySuspended
                    && e.to_string() == "the tenant is already suspended"
            });
    }

    #[test]
    fn reactivate_restores_a_suspended_tenant() {
        given::<Tenant>(vec![provisioned(), suspended()])
            .when(&TenantCommand::Reactivate)
            .then(vec![TenantEvent::Reactivated(Reactivated { at: now() })]);
    }

    #[test]
    fn reactivate_when_active_is_refused() {
        given::<Tenant>(vec![provisioned()])
            .when(&TenantCommand::Reactivate)
            .then_error(|e| *e == TenantError::NotSuspended);
        given::<Tenant>(vec![
            provisioned(),
            suspended(),
            TenantEvent::Reactivated(Reactivated { at: now() }),
        ])
        .when(&TenantCommand::Reactivate)
        .then_error(|e| *e == TenantError::NotSuspended);
    }

    // --- ChangePlan ---

    #[test]
    fn change_plan_records_from_and_to() {
        let usage = Usage {
            agents: 5,
            channel_accounts: 2,
            tickets_this_month: 1_000,
        };
        let expected = vec![TenantEvent::PlanChanged(PlanChanged {
            from: plan("municipio"),
            to: plan("free"),
            at: now(),
        })];
        given::<Tenant>(vec![provisioned()])
            .when(&change_to("free", usage))
            .then(expected.clone());
        // A suspended tenant can be re-planned too.
        given::<Tenant>(vec![provisioned(), suspended()])
            .when(&change_to("free", usage))
            .then(expected);
    }

    #[test]
    fn change_to_the_same_plan_is_a_no_op() {
        let over = Usage {
            agents: 99,
            ..Usage::default()
        };
        given::<Tenant>(vec![provisioned()])
            .when(&change_to("municipio", over))
            .then(vec![]);
    }

    #[test]
    fn change_plan_refuses_when_usage_is_above_the_new_limits() {
        given::<Tenant>(vec![provisioned()])
            .when(&change_to(
                "free",
                Usage {
                    agents: 12,
                    ..Usage::default()
                },
            ))
            .then_error(|e| {
                *e == TenantError::QuotaExceeded {
                    limit: LimitName::Agents,
                    used: 12,
                    allowed: 5,
                } && e.to_string() == "the plan allows 5 agents; the tenant has 12"
            });
        given::<Tenant>(vec![provisioned()])
            .when(&change_to(
                "free",
                Usage {
                    channel_accounts: 3,
                    ..Usage::default()
                },
            ))
            .then_error(|e| {
                e.to_string() == "the plan allows 2 linked channel accounts; the tenant has 3"
            });
        given::<Tenant>(vec![provisioned()])
            .when(&change_to(
                "free",
                Usage {
                    tickets_this_month: 1_001,
                    ..Usage::default()
                },
            ))
            .then_error(|e| {
                matches!(
                    e,
                    TenantError::QuotaExceeded {
                        limit: LimitName::TicketsPerMonth,
                        ..
                    }
                )
            });
    }

    // --- Close ---

    #[test]
    fn close_records_the_reason_from_any_open_status() {
        let cmd = TenantCommand::Close {
            reason: reason("contract ended"),
        };
        given::<Tenant>(vec![provisioned()])
            .when(&cmd)
            .then(vec![closed()]);
        given::<Tenant>(vec![provisioned(), suspended()])
            .when(&cmd)
            .then(vec![closed()]);
    }

    // --- State ---

    #[test]
    fn state_follows_the_lifecycle() {
        assert!(!TenantState::default().is_active());
        assert!(!TenantState::default().is_provisioned());
        let s = Tenant::fold(&[provisioned()]);
        assert!(s.is_active());
        let t = s.tenant.as_ref().unwrap();
        assert_eq!(t.slug.as_str(), "concello-lugo");
        assert_eq!(t.kind, TenantKind::Council);
        assert_eq!(t.time_zone.as_str(), "Europe/Madrid");
        assert_eq!(t.languages, vec![lang("gl"), lang("es")]);
        assert_eq!(t.provisioned_at, now());

        let s = Tenant::fold(&[provisioned(), suspended()]);
        assert!(!s.is_active());
        assert_eq!(
            s.status(),
            Some(&TenantStatus::Suspended {
                reason: reason("unpaid invoices")
            })
        );
        let s = Tenant::fold(&[
            provisioned(),
            suspended(),
            TenantEvent::Reactivated(Reactivated { at: now() }),
            TenantEvent::PlanChanged(PlanChanged {
                from: plan("municipio"),
                to: plan("provincia"),
                at: now(),
            }),
        ]);
        assert!(s.is_active());
        assert_eq!(s.tenant.as_ref().unwrap().plan, plan("provincia"));
        let s = Tenant::fold(&[provisioned(), closed()]);
        assert!(!s.is_active());
        assert_eq!(s.status(), Some(&TenantStatus::Closed));
    }

    #[test]
    fn kinds_are_snake_case() {
        assert_eq!(
            serde_json::to_value(TenantKind::Council).unwrap(),
            serde_json::json!("council")
        );
        assert_eq!(
            serde_json::from_value::<TenantKind>(serde_json::json!("business")).unwrap(),
            TenantKind::Business
        );
    }

    #[test]
    fn streams_are_named_after_the_tenant_and_the_slug() {
        let id = TenantId::from_uuid(Uuid::from_u128(1));
        assert_eq!(
            stream_id(id).unwrap().as_str(),
            "tenant-00000000-0000-0000-0000-000000000001"
        );
        assert_eq!(
            slug_stream_id(&slug("concello-lugo")).unwrap().as_str(),
            "slug-concello-lugo"
        );
        assert_eq!(SLUG_STREAM_OWNER, TenantId::PLATFORM);
    }

    #[test]
    fn every_tenant_event_survives_the_log() {
        let events = [
            provisioned(),
            suspended(),
            TenantEvent::Reactivated(Reactivated { at: now() }),
            TenantEvent::PlanChanged(PlanChanged {
                from: plan("municipio"),
                to: plan("free"),
                at: now(),
            }),
            closed(),
        ];
        let types: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(
            types,
            [
                "tenant.provisioned",
                "tenant.suspended",
                "tenant.reactivated",
                "tenant.plan_changed",
                "tenant.closed"
            ]
        );
        for event in events {
            assert_eq!(event.schema_version(), 1);
            let back = TenantEvent::from_stored(event.event_type(), 1, &event.to_data()).unwrap();
            assert_eq!(back, event);
        }
        assert_eq!(provisioned().to_data()["kind"], "council");
    }

    #[test]
    fn unknown_or_malformed_stored_events_are_refused() {
        assert!(TenantEvent::from_stored("tenant.exploded", 1, &serde_json::json!({})).is_err());
        assert!(TenantEvent::from_stored("tenant.suspended", 1, &serde_json::json!({})).is_err());
        assert!(TenantEvent::from_stored("tenant.suspended", 2, &suspended().to_data()).is_err());
        assert!(SlugClaimEvent::from_stored("slug.stolen", 1, &serde_json::json!({})).is_err());
    }

    // --- SlugClaim ---

    fn tenant(n: u128) -> TenantId {
        TenantId::from_uuid(Uuid::from_u128(n))
    }

    fn claimed(n: u128) -> SlugClaimEvent {
        SlugClaimEvent::Claimed(Claimed {
            slug: slug("concello-lugo"),
            tenant: tenant(n),
            at: now(),
        })
    }

    fn released(n: u128) -> SlugClaimEvent {
        SlugClaimEvent::Released(Released {
            slug: slug("concello-lugo"),
            tenant: tenant(n),
            at: now(),
        })
    }

    fn claim(n: u128) -> SlugClaimCommand {
        SlugClaimCommand::Claim {
            slug: slug("concello-lugo"),
            tenant: tenant(n),
        }
    }

    #[test]
    fn claim_a_free_slug() {
        given::<SlugClaim>(vec![])
            .when(&claim(1))
            .then(vec![claimed(1)]);
        given::<SlugClaim>(vec![claimed(1), released(1)])
            .when(&claim(2))
            .then(vec![claimed(2)]);
    }

    #[test]
    fn claim_by_its_owner_again_is_a_no_op() {
        given::<SlugClaim>(vec![claimed(1)])
            .when(&claim(1))
            .then(vec![]);
    }

    #[test]
    fn claim_of_a_taken_slug_is_refused() {
        given::<SlugClaim>(vec![claimed(1)])
            .when(&claim(2))
            .then_error(|e| {
                *e == SlugClaimError::SlugTaken {
                    slug: slug("concello-lugo"),
                    owner: tenant(1),
                } && e.to_string() == "slug: concello-lugo is already taken; choose another slug"
            });
    }

    #[test]
    fn release_by_the_owner() {
        given::<SlugClaim>(vec![claimed(1)])
            .when(&SlugClaimCommand::Release { tenant: tenant(1) })
            .then(vec![released(1)]);
    }

    #[test]
    fn release_by_another_tenant_is_refused() {
        given::<SlugClaim>(vec![claimed(1)])
            .when(&SlugClaimCommand::Release { tenant: tenant(2) })
            .then_error(|e| {
                *e == SlugClaimError::NotOwner {
                    slug: slug("concello-lugo"),
                    owner: tenant(1),
                }
            });
    }

    #[test]
    fn release_of_a_free_slug_is_a_no_op() {
        given::<SlugClaim>(vec![])
            .when(&SlugClaimCommand::Release { tenant: tenant(1) })
            .then(vec![]);
        given::<SlugClaim>(vec![claimed(1), released(1)])
            .when(&SlugClaimCommand::Release { tenant: tenant(1) })
            .then(vec![]);
    }

    #[test]
    fn slug_state_knows_the_owner() {
        let s = SlugClaim::fold(&[claimed(1)]);
        assert_eq!(s.owner, Some(tenant(1)));
        assert_eq!(s.slug, Some(slug("concello-lugo")));
        let s = SlugClaim::fold(&[claimed(1), released(1)]);
        assert_eq!(s.owner, None);
    }

    #[test]
    fn every_slug_event_survives_the_log() {
        let events = [claimed(1), released(1)];
        let types: Vec<&str> = events.iter().map(DomainEvent::event_type).collect();
        assert_eq!(types, ["slug.claimed", "slug.released"]);
        for event in events {
            assert_eq!(event.schema_version(), 1);
            let back =
                SlugClaimEvent::from_stored(event.event_type(), 1, &event.to_data()).unwrap();
            assert_eq!(back, event);
        }
    }
}
